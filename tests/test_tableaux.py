"""The project's Butcher tableaux (plateletpd.numerics.tableaux) and the method generated from
one (BogackiShampine3): order conditions from rooted trees, agreement with scipy's DOP853
coefficients to the last bit, and the generated method against a closed form, its observed
convergence order and its cost formula."""

import functools
import math

import numpy as np
import pytest

import plateletpd as pp
from plateletpd.numerics import tableaux

EXPLICIT_PAIRS = [tableaux.DORMAND_PRINCE_5, tableaux.BOGACKI_SHAMPINE_3,
                  tableaux.DOP853.tableau("E5"), tableaux.DOP853.tableau("E3"),
                  *tableaux.GENERATED]


@functools.lru_cache(maxsize=None)
def rooted_trees(order: int) -> tuple:
    """Every rooted tree with ``order`` nodes, a tree being the sorted tuple of its root's
    subtrees (so each tree has one spelling): the root plus one more subtree on a tree of
    the remaining order."""
    if order == 1:
        return ((),)
    found = set()
    for first in range(1, order):
        for child in rooted_trees(first):
            for rest in rooted_trees(order - first):
                found.add(tuple(sorted(rest + (child,))))
    return tuple(sorted(found))


def density(tree) -> int:
    """gamma(t): the tree's order times its subtrees' densities (Hairer, Norsett, Wanner,
    Solving ODEs I, section II.2, definition 2.10)."""
    return (1 + sum(size(child) for child in tree)) * math.prod(density(c) for c in tree)


def size(tree) -> int:
    return 1 + sum(size(child) for child in tree)


def stage_weights(a: np.ndarray, tree) -> np.ndarray:
    """The elementary weights' stage vector: the product over subtrees of A times theirs."""
    weights = np.ones(a.shape[0])
    for child in tree:
        weights = weights * (a @ stage_weights(a, child))
    return weights


def order_residual(a, b, order: int) -> float:
    """Largest |b . Phi(t) - 1/gamma(t)| over the trees of exactly ``order`` nodes: zero (to
    round-off) for every order up to the method's (HNW I, theorem II.2.13)."""
    return max(abs(b @ stage_weights(a, t) - 1.0 / density(t)) for t in rooted_trees(order))


def test_rooted_tree_counts():
    # OEIS A000081: 1, 1, 2, 4, 9, 20, 48, 115 rooted trees with 1..8 nodes
    assert [len(rooted_trees(n)) for n in range(1, 9)] == [1, 1, 2, 4, 9, 20, 48, 115]


@pytest.mark.parametrize("tableau", EXPLICIT_PAIRS, ids=lambda t: t.name)
def test_each_pair_has_exactly_its_stated_orders(tableau):
    a = tableau.a
    assert np.allclose(a.sum(axis=1), tableau.c, rtol=0, atol=1e-14)  # c_i = sum_j a_ij
    for weights, order in ((tableau.b, tableau.order), (tableau.embedded, tableau.error_order)):
        for n in range(1, order + 1):
            # coefficients are rounded to double precision; sums of terms up to ~40 in size
            assert order_residual(a, weights, n) < 1e-12, (n, order)
        # not of a higher order: some condition of order + 1 fails clearly
        assert order_residual(a, weights, order + 1) > 1e-6


def test_dop853_dense_output_stages_are_consistent():
    # the three extra stages of the 7th-order dense output also satisfy c_i = sum_j a_ij
    d = tableaux.DOP853
    assert np.allclose(d.A.sum(axis=1)[:16], d.C, rtol=0, atol=1e-14)
    assert np.array_equal(d.A[12, :12], d.B)


def test_dop853_coefficients_equal_scipys_to_the_last_bit():
    # scipy ships Hairer's dop853.f coefficients as data; the project's copy must be the
    # same doubles, bit for bit (so results did not change when the import was replaced)
    from scipy.integrate._ivp import dop853_coefficients as scipy_dop853

    for name in ("A", "B", "C", "E3", "E5", "D"):
        ours, theirs = getattr(tableaux.DOP853, name), getattr(scipy_dop853, name)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        assert np.array_equal(ours.view(np.int64), np.ascontiguousarray(theirs).view(np.int64))


def test_rosenbrock23_constants_are_shampine_and_reichelts():
    # Shampine & Reichelt 1997, section 3.1: d = 1/(2 + sqrt 2) (L-stability: d = 1 - 1/sqrt 2),
    # e32 = 6 + sqrt 2; published decimals 0.2928932188134524 and 7.414213562373095
    r = tableaux.ROSENBROCK_23
    assert r.d == pytest.approx(1.0 - 1.0 / math.sqrt(2.0), rel=2e-16)
    assert r.d == pytest.approx(0.2928932188134524, rel=1e-15)
    assert r.e32 == pytest.approx(7.414213562373095, rel=1e-15)


def test_a_tableau_must_be_explicit():
    with pytest.raises(ValueError, match="strictly lower triangular"):
        tableaux.ButcherTableau(name="implicit midpoint", a=[[0.5]], b=[1.0], c=[0.5],
                                error=[0.0], order=2, error_order=1, source="test")


def test_every_generated_tableau_has_a_solver_class():
    codes = {cls.tableau.name: cls.method_code for cls in pp.ExplicitRungeKutta.__subclasses__()}
    assert sorted(codes) == sorted(t.name for t in tableaux.GENERATED)
    assert len(set(codes.values())) == len(codes)


# ------------------------------------------------------------ the generated method (BS3)
RATE, DOSE = 0.8, 50.0  # tests/models/transit_chain.toml: transit rate 1/day; bolus (ug)


def last_compartment(times):
    """Closed form of a bolus through five transit compartments: D (kt)^4/4! exp(-kt)."""
    return DOSE * (RATE * times) ** 4 / math.factorial(4) * np.exp(-RATE * times)


def test_bogacki_shampine_meets_the_transit_chain_closed_form(transit_chain):
    times = np.linspace(0, 20, 81)
    exact = last_compartment(times)
    errors = []
    for rtol, atol in [(1e-5, 1e-8), (1e-7, 1e-10)]:
        result = pp.simulate(transit_chain, "tracer 50 ug d1", times=times,
                             solver=pp.BogackiShampine3(rtol=rtol, atol=atol))
        assert result.ok
        error = np.abs(result["last"] - exact)
        # a local-error controller does not bound the global error; measured 13.0 and 11.9
        # times the tolerance (at day 20, in the decaying tail; DOPRI5: 0.57); a wrong
        # coefficient or interpolant is off by orders of magnitude
        assert np.max(error / (atol + rtol * np.abs(exact))) < 20.0
        errors.append(np.max(error))
    # tolerance proportionality: 100x tighter tolerances, 100x smaller error (measured 109x)
    assert 50.0 < errors[0] / errors[1] < 200.0


def test_bogacki_shampine_converges_at_third_order(transit_chain):
    # steps of a fixed length h (max_step binds: the tolerance is loose enough that the
    # controller would take longer ones); the error at t = 10 days (a step end) falls as h^3
    # (measured orders 3.20, 3.10, 3.05)
    errors = []
    for h in (0.4, 0.2, 0.1, 0.05):
        result = pp.simulate(transit_chain, "tracer 50 ug d1", times=[10.0],
                             solver=pp.BogackiShampine3(rtol=0.5, atol=1e3, max_step=h))
        errors.append(abs(result["last"][0] - last_compartment(np.array([10.0]))[0]))
    observed = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((observed > 2.8) & (observed < 3.2)), observed


def test_bogacki_shampine_cost_follows_its_formula(transit_chain):
    # first same as last: 3 right-hand-side calls per attempted step, plus the first
    # derivative and Hairer's starting-step probe (one segment: one bolus at t = 0)
    result = pp.simulate(transit_chain, "tracer 50 ug d1", days=20,
                         solver=pp.BogackiShampine3(rtol=1e-6))
    steps, rejected, evaluations, jacobians = np.ravel(result.counters)
    assert evaluations == 2 + 3 * (steps + rejected)
    assert jacobians == 0


def test_lockstep_execution_refuses_the_generated_method(transit_chain):
    with pytest.raises(pp.SimulationInputError, match='execution="lockstep"'):
        pp.simulate_batch(transit_chain, "tracer 50 ug d1", days=2, n=3,
                          solver=pp.BogackiShampine3(), execution="lockstep")
