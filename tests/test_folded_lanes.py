"""Folded lock-step right-hand sides: a batch's idle states (a drug it does not give) read as
0 and their terms folded away (:func:`plateletpd.model.codegen.folded_lane_source`), and a
power of a base that is never negative written without the negative-base selects
(``vectormath.positive_power``).

Both must change no number: the folding uses identities that are exact in floating point
for finite operands (``x + 0 = x``, ``0 * x = 0``, ``x * 1 = x``, a test on numbers decided),
and ``positive_power`` is ``power`` on such a base. So the checks here are the identities
themselves, that the idle drugs' terms are gone from the folded text, and that lock-step
cohorts give the same outputs, states and step counts bit for bit with and without folding.
"""

import ast

import numpy as np
import pytest

import plateletpd as pp
from plateletpd.dosing.schedules import expand
from plateletpd.model import codegen
from plateletpd.model.codegen import check_generated, folded_lane_source, idle_states
from plateletpd.numerics import kernels
from plateletpd.numerics.jit import jit_disabled

from test_idle_states import drug_model, names

needs_jit = pytest.mark.skipif(jit_disabled(), reason="the folded variants are compiled code")


def folded(text, known=None):
    tree = ast.parse(text, mode="eval").body
    return ast.unparse(codegen._fold(tree, {"z": 0.0, **(known or {})}))


@pytest.mark.parametrize("text,expected", [
    ("x + z", "x"), ("z + x", "x"), ("x - z", "x"), ("z - x", "-x"),
    ("z * x", "0.0"), ("x * z", "0.0"), ("z / x", "0.0"),
    ("x * (1 + k * z)", "x"), ("x / (1 + z)", "x"),
    ("1000 * z / v", "0.0"),
    ("(a + z) / (b + a + z + z)", "a / (b + a)"),
    ("0.5 * (z - r + sqrt((z - r) ** 2 + 4 * r * z)) if z > 0 else 0", "0"),
    ("a if z >= 0 else b", "a"), ("z if x > y else 0", "0.0"),
    ("max(z, 0.5) + min(z, -1)", "-0.5"),
    ("sqrt(z) + abs(z) + x", "x"),
    # not folded: a zero divisor, a power of zero (0 ** 0 is 1), a function of zero
    # other than sqrt and abs, and names that are not known
    ("x / z", "x / 0.0"), ("z / z", "0.0 / 0.0"), ("z ** g", "0.0 ** g"),
    ("exp(z)", "exp(0.0)"),
    ("x * y + w", "x * y + w"),
])
def test_folding_uses_only_exact_identities(text, expected):
    assert folded(text) == expected


def test_folding_returns_unchanged_subtrees_as_they_are():
    # the generator's switch and power keys (ast.dump of a test or exponent) must still
    # match in a folded formula
    tree = ast.parse("(a + z) * b ** (1 / n) if mode >= 0.5 else c", mode="eval").body
    result = codegen._fold(tree, {"z": 0.0})
    assert result.test is tree.test and result.body.right is tree.body.right
    assert codegen._fold(tree.orelse, {"z": 0.0}) is tree.orelse


def test_the_folded_text_reads_no_idle_state_and_writes_their_derivatives_as_zero():
    model = pp.load_model("cit_marrow_reserve")
    state = {target.name: target.state_index for target in model.dose_targets}
    idle = idle_states(model, [state["chemotherapy"], state["hetrombopag"]])
    text = folded_lane_source(model, 1, idle)
    check_generated(text)
    body = text.split("def rhs_lanes_folded(")[1]
    own = model.source.split("def rhs_lanes_v1(")[1].split("\ndef ")[0]
    for drug in ("romiplostim", "eltrombopag", "avatrombopag", "il11", "rhtpo"):
        assert drug in own and drug not in body, drug
    assert "math.sqrt(" in own and "math.sqrt(" not in body  # romiplostim's binding
    assert "het_central" in body and "s_reserve" in body
    for i in idle:
        assert f"dydt[{i * codegen.LANES} + lane] = 0.0" in body
    # a regimen that gives romiplostim keeps its binding
    with_romiplostim = folded_lane_source(model, 1, idle_states(
        model, [state["chemotherapy"], state["hetrombopag"], state["romiplostim"]]))
    assert "math.sqrt(" in with_romiplostim and "eltrombopag" not in \
        with_romiplostim.split("def rhs_lanes_folded(")[1]


def test_free_text_reaches_the_folded_source_only_as_an_escaped_literal():
    model = drug_model()
    object.__setattr__(model, "name", 'x"\nimport os\nos.system("true")  #')
    text = folded_lane_source(model, 0, idle_states(model, [0]))
    check_generated(text)  # raises if a statement other than the generator's got in
    assert "\nimport os" not in text


def positive(text, bounded=("k",)):
    tree = ast.parse(text, mode="eval").body
    derived = {"pf": pp.model.expressions.parse_expression("max(1 + s, 0.01)"),
               "free": pp.model.expressions.parse_expression("s - r")}
    return codegen._positive(tree, derived, set(bounded))


@pytest.mark.parametrize("text,expected", [
    ("pf", True), ("max(s, 0.01)", True), ("max(s, 0)", False), ("exp(s)", True),
    ("k", True), ("r", False), ("k * pf / (k + 2)", True), ("k - 1", False),
    ("free", False), ("-k", False), ("sqrt(k)", False),  # sqrt(-0) is -0
])
def test_a_base_counts_as_never_negative_only_when_its_formula_shows_it(text, expected):
    # k: a parameter whose lower bound is above 0 (values outside bounds are refused)
    assert positive(text) == expected


def test_the_marrow_models_lanes_write_its_yield_power_without_negative_base_selects():
    # growth_target = production_factor ** mk_yield_share, production_factor = max(..., 0.01)
    # (models/cit_marrow_reserve.toml)
    lanes = pp.load_model("cit_marrow_reserve").source.split("def rhs_lanes_v1(")[1]
    assert "positive_power(d_production_factor, p_mk_yield_share)" in lanes.split(
        "\ndef ")[0]


def unfolded(monkeypatch):
    """Lock step with the loop variants as the model's (no idle states folded)."""
    build = kernels._lane_parameters
    monkeypatch.setattr(kernels, "_lane_parameters",
                        lambda kernel, generic, params, model=None, idle=(): build(
                            kernel, generic, params))


@needs_jit
@pytest.mark.parametrize("model_name,regimen", [
    ("cit_marrow_reserve", "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22"),
    ("cit_marrow_reserve", "chemotherapy 1 dose d1 + romiplostim 1 ug/kg qw d8-22"),
    ("cit_marrow_reserve", "chemotherapy 1 dose d1"),
])
def test_folded_lock_step_gives_the_same_numbers_bit_for_bit(monkeypatch, model_name,
                                                             regimen):
    monkeypatch.setenv("PLATELETPD_GENERIC_INTEGRATOR", "always")
    model = pp.load_model(model_name)
    n = 2 * 16 + 5  # two full groups and a partial one
    rng = np.random.default_rng(11)
    params = {"chemotherapy_sensitivity": model.parameters["chemotherapy_sensitivity"].value
              * np.exp(rng.normal(0, 0.3, n))}
    options = dict(times=np.arange(0, 36, 0.5), params=params,
                   covariates={"body_weight": 65.0}, solver=pp.DormandPrince853(rtol=1e-6), execution="lockstep",
                   keep_states=True)
    kernels._FOLDED_BY_MODEL.clear()
    folded_run = pp.simulate_batch(model, regimen, **options)
    idle = idle_states(model, expand(regimen, model.dose_targets).state)
    assert len(idle) >= 9  # at least four of the six drugs are not given
    assert [key[2] for key in kernels._FOLDED_BY_MODEL] == [idle]  # it ran folded
    unfolded(monkeypatch)
    plain = pp.simulate_batch(model, regimen, **options)
    assert np.all(folded_run.status == pp.Status.SUCCESS)
    for name in ("outputs", "states", "counters", "status"):
        assert np.array_equal(getattr(folded_run, name), getattr(plain, name)), name
    assert not np.array_equal(plain.outputs[0], plain.outputs[-1])  # subjects differ


@needs_jit
def test_each_set_of_idle_states_gets_its_own_folded_variant(monkeypatch):
    monkeypatch.setenv("PLATELETPD_GENERIC_INTEGRATOR", "always")
    model = pp.load_model("cit_marrow_reserve")
    params = {"platelets_baseline": np.linspace(150.0, 350.0, 16)}
    for regimen in ("chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22",
                    "chemotherapy 1 dose d1 + rhTPO 300 U/kg qd d2-8"):
        pp.simulate_batch(model, regimen, days=10, params=params,
                          covariates={"body_weight": 65.0}, solver=pp.DormandPrince853(),
                          execution="lockstep")
    sets = {key[2] for key in kernels._FOLDED_BY_MODEL if key[0] == model.source}
    state = {target.name: target.state_index for target in model.dose_targets}
    het = tuple(idle_states(model, [state["chemotherapy"], state["hetrombopag"]]))
    rhtpo = tuple(idle_states(model, [state["chemotherapy"], state["rhTPO"]]))
    assert {het, rhtpo} <= sets and het != rhtpo
    assert names(model, het) & names(model, rhtpo) >= {"romiplostim_sc", "il11_sc"}
