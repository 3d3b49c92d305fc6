"""Numba ODE integrators. They know nothing of any model.

This file is a *template*: the text below :data:`TEMPLATE_MARKER` is appended to every
generated kernel module (:mod:`plateletpd.model.codegen`), where the model's compiled functions
``rhs_hoisted``, ``constants``, ``initial``, ``outputs`` and ``dose_modifiers`` are module
globals. Calling them as globals, rather than passing compiled functions as arguments, is what lets numba cache the
whole solver on disk (numba cannot cache code that passes compiled functions on). Importing
this module directly gives the status codes and the template text; its functions only run
inside a kernel module. The generic kernel module (:func:`plateletpd.numerics.kernels.generic_kernel`)
is this template too, with those globals calling the model's functions by address.

* ``solve_subject_<form>``: the event loop for one subject (:data:`SUBJECT_LOOP`, one
  function per method so that a call compiles only the method it uses). Dose times are
  breakpoints: the integrator stops exactly there, applies boluses and infusion-rate
  changes, and restarts (fresh derivative, new starting step: :func:`_restart_step`)
  because the solution is not smooth across them. Outputs at a dose time are recorded
  after the dose (right-continuous states). ``solve_batch_<form>`` and
  ``solve_batch_lanes`` are the parallel batch drivers (:func:`batch_source`).
Every method's coefficients are the project's (:mod:`plateletpd.numerics.tableaux`, with
their published sources).

* :func:`dopri5_segment`: Dormand-Prince 5(4) with Hairer's step-size control and 4th-order
  dense output, so requested output times never shorten a step (Hairer, Norsett, Wanner,
  Solving ODEs I, 2nd ed., Springer 1993, sections II.4-II.6).
* :func:`rosenbrock23_segment`: the L-stable Rosenbrock 2(3) pair of Shampine and Reichelt
  (SIAM J Sci Comput 1997;18:1-22, MATLAB's ode23s) with a finite-difference Jacobian, for
  stiff models.
* :func:`explicit_segment`: any explicit pair of ``tableaux.GENERATED`` (Bogacki-Shampine
  3(2) today), run from its Butcher tableau: adding such a method adds no code here.
* Breakpoints are expanded once (:func:`_expand_events`, :func:`_breakpoint_order`,
  :func:`_apply_breakpoints`) for one subject and for lock-step groups alike.
* DOP853 (Hairer's dop853 with its 7th-order dense output) has one step loop,
  :data:`EXPLICIT_STEP_LOOP`, rendered by :func:`explicit_source` (appended to the template)
  as ``dop853_segment`` for one subject and ``dop853_lanes_segment`` for a lock-step group;
  the generic ``explicit_segment`` is a third form of the same loop. The forms differ only
  in the operations named in :data:`EXPLICIT_FORMS`.
* :func:`solve_group`: DOP853 for ``LANES`` subjects in lock
  step (one step size, the largest all of them accept), on lane-major flat arrays so the
  model's ``rhs_lanes`` and every stage combination are long vectorisable loops. The stage
  passes themselves are generated per state count (:func:`lockstep_source`, appended to
  the kernel module after this template), and once more with the group's width read at run
  time for the generic module (the same expressions, so the same numbers).

Glossary (kernel-local short names): ``h`` step size, ``k1..k7`` stage derivatives,
``sk`` error scale ``atol + rtol*|y|``, ``bp`` breakpoint, ``io`` index of the next output.

Return codes are the integer values of :class:`plateletpd.numerics.solvers.Status`.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from plateletpd.numerics.jit import KERNEL_OPTIONS, njit
from plateletpd.numerics.tableaux import DOP853 as _dop853

# Placeholders: in a kernel module these names are the model's compiled functions.
rhs = initial = outputs = dose_modifiers = constants = rhs_hoisted = rhs_inline = None
rhs_lanes = uniform_conditions = None
dop853_segment = dop853_lanes_segment = explicit_segment = None
dop853_lane_stages = dop853_lane_dense = dop853_lane_accept = None
LANE_WIDTH = 0
N_CONSTANTS = N_UNIFORM = N_UNIFORM_SWITCHES = 0
LANES = 16

#: Line after which this file's text is the kernel template.
TEMPLATE_MARKER = "# ---- kernel template: everything below is copied into kernel modules ----"


@functools.lru_cache(maxsize=None)
def template() -> str:
    """The integrator source appended to generated kernel modules: the text below
    :data:`TEMPLATE_MARKER`, then the explicit pairs' segments (:func:`explicit_source`)."""
    text = Path(__file__).read_text(encoding="utf-8")
    body = text[text.index(TEMPLATE_MARKER, text.index("def template")) + len(TEMPLATE_MARKER):]
    return f"{body}\n\n{explicit_source()}\n\n{subject_source()}"


#: Rows of a lock-step group's flat work array ``w`` (each ``LANE_WIDTH = n_states * LANES``
#: long): state, candidate state, stage state, interpolated state, the two error estimates,
#: the 16 stage derivatives of DOP853 and its 7 dense-output rows.
LANE_ROWS = {"y": 0, "y1": 1, "stage": 2, "y_out": 3, "e5": 4, "e3": 5, "k": 6, "dense": 22}
N_LANE_ROWS = 29


def _at(offset: int, array: str = "w") -> str:
    """Element ``j`` of the row starting at ``offset`` of the flat work array (or of its
    view ``v`` in an active-states pass)."""
    return f"{array}[{offset} + j]" if offset else f"{array}[j]"


def _weighted(terms, array: str = "w") -> str:
    """``c1 * row1 + c2 * row2 ...`` with literal coefficients, zero ones left out."""
    return " + ".join(f"{float(c)!r} * {_at(offset, array)}" for c, offset in terms
                      if c != 0.0)


#: The loop header of a pass over the group's active states only (``active``: flat
#: ``[start, end)`` pairs of state indices, :func:`plateletpd.model.codegen.active_ranges`).
#: The body indexes ``v``, a view of ``w`` from the range's first state, at literal row
#: offsets plus ``j`` counted from 0: LLVM then knows every index non-negative and
#: vectorises the loop as it does ``range(LANE_WIDTH)`` (a loop ``range(start, end)`` on
#: ``w`` itself keeps numba's negative-index wraparound per element and ran 10x slower).
_ACTIVE_LOOP = ["    for r in range(0, active.shape[0], 2):",
                "        v = w[active[r] * LANES:]",
                "        for j in range((active[r + 1] - active[r]) * LANES):"]


def _active_loop(generic: bool = False) -> list[str]:
    """:data:`_ACTIVE_LOOP`; generic (rows at run-time offsets ``np.uint64(i) * m``): ``j``
    unsigned too, so that numba indexes without its negative-index wraparound, which kept
    LLVM from vectorising the pass (2-3.5 times slower per subject, measured)."""
    if not generic:
        return _ACTIVE_LOOP
    return [*_ACTIVE_LOOP[:2],
            "        for j in range(np.uint64((active[r + 1] - active[r]) * LANES)):"]


def _fused(target: int, base: int, terms, generic: bool = False) -> list[str]:
    """One loop over the active states writing row ``target = base + h * sum(c * row)``."""
    return [*_active_loop(generic),
            f"            {_at(target, 'v')} = {_at(base, 'v')} + h * "
            f"({_weighted(terms, 'v')})"]


def lockstep_source(n_states: int, lanes: int, generic: bool = False) -> str:
    """Source of the lock-step DOP853 stages for ``n_states`` states (generated per model).

    Every stage combination, DOP853's two error estimates and its dense-output rows are one
    pass over the group's flat work array ``w`` with Hairer's coefficients as literals and
    every row at a literal offset. One array and literal offsets let LLVM prove the rows
    disjoint, so it vectorises each pass with no runtime alias checks, and a stage reads
    each of its stage rows once instead of loading and storing the target row once per
    coefficient (``_combine``'s row-at-a-time form, kept for the one-subject DOP853).

    Idle states (:func:`plateletpd.model.codegen.idle_states`: those of a drug not given,
    exactly zero throughout) are left out of the stage, new-state, dense-output and accept
    passes, which loop over the ``active`` ranges only; their rows keep the zeros the group
    starts with (``solve_group``), which are the values those passes would write. The
    error estimates are computed for every state and the error norm adds ``e * 0.0`` for
    an idle one (:func:`_dop853_error_lanes`), so a non-finite derivative of an idle state
    at a stage the estimates weigh (1 and 6-12) fails the step as it would without the
    skipping. (Not quite all: one only at stages 2-5 or of the new state would, without
    the skipping, have reached the later stages; that needs a zero times a non-finite
    factor that reaches no other state's derivative.)"""
    width = n_states * lanes

    def offset(index):
        """Where row ``index`` starts: a literal, or (generic) a multiple of the run-time
        width ``m``; index 0 is 0 in both, so each form's expressions are the same text."""
        return index * width if not generic or index == 0 else f"np.uint64({index}) * m"

    row = {name: offset(index) for name, index in LANE_ROWS.items()}

    def k(j):
        return offset(LANE_ROWS["k"] + j)

    def view(index):
        """Row ``index`` as a slice (generic: in signed integers, ``mi``, as numba slices)."""
        if generic:
            return f"w[{index} * mi:{index + 1} * mi]"
        return f"w[{index * width}:{(index + 1) * width}]"

    def dense_row(r):
        return offset(LANE_ROWS["dense"] + r)

    a, b, c = _dop853.A, _dop853.B, _dop853.C

    def stage(s):
        """Stage s's state from y and stage derivatives 0..s-1, then its derivative k[s]."""
        return [*_fused(row["stage"], row["y"], [(a[s, j], k(j)) for j in range(s)], generic),
                f"    _f_lanes(t + {float(c[s])!r} * h, {view(LANE_ROWS['stage'])}, q, rate, "
                f"has_rate, {view(LANE_ROWS['k'] + s)}, counters)"]

    # generic: the width is the work array's, read at run time (one module for all models)
    width_line = ["    mi = w.shape[0] // N_LANE_ROWS", "    m = np.uint64(mi)"] if generic else []
    lines = ["# ==== lock-step DOP853 stages (generated by plateletpd.numerics.integrator.lockstep_source"
             + (", generic: any state count)" if generic else ")"),
             *([] if generic else [f"LANE_WIDTH = {width}"]), f"N_LANE_ROWS = {N_LANE_ROWS}",
             "# fastmath=CONTRACT (plateletpd.numerics.kernels): multiply-adds may fuse into FMAs", "", "",
             "@njit(fastmath=CONTRACT, **KERNEL_OPTIONS)",
             "def dop853_lane_stages(t, h, w, q, rate, has_rate, counters, active):",
             "    \"\"\"Stages 2-12 of a step from y (stage derivative 1 in k[0]): the new",
             "    state in y1, its derivative in k[12], the 5th/3rd-order error estimates",
             "    (divided by h) in e5 and e3.\"\"\"", *width_line]
    for s in range(1, 12):
        lines += stage(s)
    lines += _fused(row["y1"], row["y"], [(b[j], k(j)) for j in range(12)], generic)
    lines.append(f"    _f_lanes(t + h, {view(LANE_ROWS['y1'])}, q, rate, has_rate, "
                 f"{view(LANE_ROWS['k'] + 12)}, counters)")
    lines += [f"    for j in range({'m' if generic else 'LANE_WIDTH'}):",
              f"        {_at(row['e5'])} = {_weighted(zip(_dop853.E5, map(k, range(13))))}",
              f"        {_at(row['e3'])} = {_weighted(zip(_dop853.E3, map(k, range(13))))}"]
    lines += ["", "", "@njit(fastmath=CONTRACT, **KERNEL_OPTIONS)",
              "def dop853_lane_dense(t, h, w, q, rate, has_rate, counters, active):",
              "    \"\"\"The three extra stages of an accepted step and its 7th-order",
              "    dense-output rows (Hairer's dop853 contd8).\"\"\"", *width_line]
    for s in range(13, 16):
        lines += stage(s)
    y, y1 = row["y"], row["y1"]
    lines += [*_active_loop(generic),
              f"            difference = {_at(y1, 'v')} - {_at(y, 'v')}",
              f"            {_at(dense_row(0), 'v')} = difference",
              f"            {_at(dense_row(1), 'v')} = h * {_at(k(0), 'v')} - difference",
              f"            {_at(dense_row(2), 'v')} = 2.0 * difference - h * ("
              f"{_at(k(12), 'v')} + {_at(k(0), 'v')})"]
    for r in range(4):
        lines.append(f"            {_at(dense_row(3 + r), 'v')} = "
                     f"h * ({_weighted(zip(_dop853.D[r], map(k, range(16))), 'v')})")
    lines += ["", "", "@njit(**KERNEL_OPTIONS)", "def dop853_lane_accept(w, active):",
              "    \"\"\"y <- y1 and k[0] <- k[12] (first same as last).\"\"\"", *width_line,
              *_active_loop(generic),
              f"            {_at(y, 'v')} = {_at(y1, 'v')}",
              f"            {_at(k(0), 'v')} = {_at(k(12), 'v')}"]
    return "\n".join(lines) + "\n"


# ---- one step loop for the explicit Runge-Kutta pairs (DOP853 one subject and lock step,
# ---- and every tableau of tableaux.GENERATED)
#: The step loop of an explicit embedded pair: Hairer's starting step and restart
#: (:func:`_restart_step`), the attempt checks (:func:`_next_step`), retries after a
#: non-finite error, accept/reject on the error norm, dense output at the output times
#: inside an accepted step, and no growth right after a rejection
#: (:func:`_next_after_accept`). :func:`explicit_source` renders it once per form of
#: :data:`EXPLICIT_FORMS`; a form only says how it evaluates its stages, norms the error,
#: chooses the step factor, prepares and evaluates the dense output, records an output and
#: accepts a step. Step control, output and failure handling are this one text in all.
EXPLICIT_STEP_LOOP = '''
@njit(**KERNEL_OPTIONS)
def {name}({arguments}):
    """{doc}"""
    {views}
    span = t_end - t
    if span <= 0.0:
        return SUCCESS, io, h_previous
    h_max = min(max_step, span)
    {derivative}
    h = {initial_step}
    h = _restart_step(h, h_previous, restart_growth, h_max)
    rejected_last = False
    while True:
        status, h, last = _next_step(t, t_end, h, counters, max_steps)
        if status != SUCCESS:
            return {stopped}, io, h
        {stages}
        {error}
        if not math.isfinite(err):
            status, h = _retry_after_non_finite(t, h, counters)
            if status != SUCCESS:
                return {non_finite}, io, h
            rejected_last = True
            continue
        factor = {factor}
        if err <= 1.0:
            counters[STEPS] += 1
            t_new = t_end if last else t + h
            {dense}
            while _output_due(io, output_times, t_new, t_end):
                {interpolate}
                {record}
                io += 1
            {accept}
            t = t_new
            h, done = _next_after_accept(h, factor, rejected_last, last, h_max, max_step)
            if done:
                return SUCCESS, io, h
            rejected_last = False
        else:
            counters[REJECTED] += 1
            rejected_last = True
            h *= factor
'''

#: The forms of :data:`EXPLICIT_STEP_LOOP`: its slots filled with each form's work arrays
#: and operations (template functions; the lock-step stage passes are generated per model
#: by :func:`lockstep_source`). Each slot is one statement or expression.
EXPLICIT_FORMS = {
    "dop853_segment": {
        "doc": "Same contract as :func:`dopri5_segment`, with Hairer's DOP853: an explicit "
               "8th-order pair with the 5th/3rd-order combined error estimate and 7th-order "
               "dense output (Hairer, Norsett and Wanner, Solving ODEs I, 2nd ed., II.10).",
        "arguments": "t, t_end, y, p, rate, output_times, io, rtol, atol, max_step, max_steps, "
                     "restart_growth, h_previous, outputs_out, states_out, counters, work, "
                     "failure",
        "views": ["n = y.shape[0]",
                  "y1, stage, y_out, e5, e3 = work[0], work[1], work[2], work[3], work[4]",
                  "k = work[5:21]  # stage derivatives (C-contiguous rows vectorise)",
                  "dense = work[21:28]  # dense-output polynomial rows"],
        "derivative": "_f(t, y, p, rate, k[0], counters)",
        "initial_step": "_initial_step(t, y, p, rate, k[0], h_max, rtol, atol, 8, y1, k[1], "
                        "counters)",
        "stopped": "_failed(status, t, y, failure)",
        # the statements themselves, not inlined helpers: a helper level more left numba's
        # reference counting in the step loop (one subject 10-15% slower, measured)
        "stages": ["for s in range(1, 13):  # stage 12 is the new solution y1 and its derivative",
                   "    if s < 12:",
                   "        _combine(y, k, _P_A[s], s, h, stage)",
                   "        _f_hot(t + _P_C[s] * h, stage, p, rate, k[s], counters)",
                   "    else:",
                   "        _combine(y, k, _P_B, 12, h, y1)",
                   "        _f_hot(t + h, y1, p, rate, k[12], counters)"],
        "error": ["_dop853_estimates(k, e5, e3)",
                  "err5 = 0.0",
                  "err3 = 0.0",
                  "for i in range(n):",
                  "    scale = atol[i] + rtol * max(abs(y[i]), abs(y1[i]))",
                  "    err5 += (e5[i] / scale) ** 2",
                  "    err3 += (e3[i] / scale) ** 2",
                  "err = _dop853_error(err5, err3, h, n)"],
        # stage 13's state is y1, built from row 12 of A (= B)
        "non_finite": "_stage_failure(t, h, y, k, _P_A, _P_C, 13, stage, failure)",
        "factor": "_dop853_factor(err)",
        "dense": ["if _output_due(io, output_times, t_new, t_end):",
                  "    for s in range(13, 16):",
                  "        _combine(y, k, _P_A[s], s, h, stage)",
                  "        _f(t + _P_C[s] * h, stage, p, rate, k[s], counters)",
                  "    _dop853_dense(y, y1, k, h, dense)"],
        "interpolate": "_dop853_interpolate(y, dense, (output_times[io] - t) / h, y_out)",
        "record": "_record(output_times[io], y_out, p, outputs_out, states_out, io)",
        "accept": ["for i in range(n):",
                   "    y[i] = y1[i]",
                   "    k[0, i] = k[12, i]"],
    },
    "dop853_lanes_segment": {
        "doc": "DOP853 for a lock-step group (same contract, same step control on the group's "
               "worst error norm, so every subject meets its tolerance at every step); its "
               "rows live in one flat array ``w`` (rows ``LANE_ROWS``). A failure returns "
               "the status only: the caller integrates each subject again on its own.",
        "arguments": "t, t_end, w, q, rate, has_rate, output_times, io, rtol, atol, max_step, "
                     "max_steps, restart_growth, h_previous, outputs_out, states_out, "
                     "counters, acc, lane_q, lane_y, first, count, active",
        # rows LANE_ROWS of width m (n_states * LANES, read from w: one text for every model)
        "views": ["m = w.shape[0] // N_LANE_ROWS",
                  "y, y1, y_out = w[0:m], w[m:2 * m], w[3 * m:4 * m]",
                  "e5, e3 = w[4 * m:5 * m], w[5 * m:6 * m]",
                  "k0, k1 = w[6 * m:7 * m], w[7 * m:8 * m]",
                  "dense = w[22 * m:29 * m].reshape((7, m))"],
        "derivative": "_f_lanes(t, y, q, rate, has_rate, k0, counters)",
        "initial_step": "_initial_step_lanes(t, y, q, rate, has_rate, k0, h_max, rtol, atol, 8, "
                        "y1, k1, counters, acc)",
        "stopped": "status",
        "stages": "dop853_lane_stages(t, h, w, q, rate, has_rate, counters, active)",
        "error": "err = _dop853_error_lanes(e5, e3, y, y1, h, rtol, atol, acc, active)",
        "non_finite": "status",
        "factor": "_dop853_factor(err)",
        "dense": ["if _output_due(io, output_times, t_new, t_end):",
                  "    dop853_lane_dense(t, h, w, q, rate, has_rate, counters, active)"],
        "interpolate": "_dop853_interpolate(y, dense, (output_times[io] - t) / h, y_out)",
        "record": "_record_lanes(output_times[io], y_out, lane_q, lane_y, outputs_out, "
                  "states_out, first, count, io)",
        "accept": "dop853_lane_accept(w, active)",
    },
    "explicit_segment": {
        "doc": ":func:`dopri5_segment`'s contract for any explicit embedded pair of "
               "``tableaux.GENERATED`` (``index``), read from its Butcher tableau: Hairer's "
               "starting step and error norm, the standard controller (safety 0.9, exponent "
               "1 / (embedded order + 1), change within [0.2, 5], no growth right after a "
               "rejection) and cubic Hermite dense output (3rd order, from the step's end "
               "values and derivatives).",
        "arguments": "index, t, t_end, y, p, rate, output_times, io, rtol, atol, max_step, "
                     "max_steps, restart_growth, h_previous, outputs_out, states_out, counters, "
                     "work, failure",
        "views": ["n = y.shape[0]",
                  "n_stages = _GEN_STAGES[index]",
                  "a, b, c, e = _GEN_A[index], _GEN_B[index], _GEN_C[index], _GEN_E[index]",
                  "fsal = _GEN_FSAL[index]",
                  "exponent = _GEN_EXPONENT[index]",
                  "k = work[0:n_stages + 1]  # stage derivatives; row n_stages: f(y1)",
                  "k_new = work[n_stages]",
                  "y1, stage, y_out = work[n_stages + 1], work[n_stages + 2], work[n_stages + 3]"],
        "derivative": "_f(t, y, p, rate, k[0], counters)",
        "initial_step": "_initial_step(t, y, p, rate, k[0], h_max, rtol, atol, "
                        "_GEN_ORDER[index], y1, k[1], counters)",
        "stopped": "_failed(status, t, y, failure)",
        "stages": ["for s in range(1, n_stages):",
                   "    out = y1 if fsal and s == n_stages - 1 else stage",
                   "    _combine(y, k, a[s], s, h, out)",
                   "    _f(t + c[s] * h, out, p, rate, k[s], counters)",
                   "if not fsal:",
                   "    _combine(y, k, b, n_stages, h, y1)",
                   "for i in range(n):",
                   "    total = 0.0",
                   "    for j in range(n_stages):",
                   "        total += e[j] * k[j, i]",
                   "    stage[i] = h * total"],
        "error": "err = _error_norm(stage, y, y1, rtol, atol)",
        "non_finite": "_stage_failure(t, h, y, k, a, c, n_stages, stage, failure)",
        "factor": "5.0 if err == 0.0 else min(5.0, max(0.2, 0.9 * err ** -exponent))",
        "dense": ["if fsal:",
                  "    for i in range(n):",
                  "        k_new[i] = k[n_stages - 1, i]",
                  "else:",
                  "    _f(t_new, y1, p, rate, k_new, counters)"],
        "interpolate": ["x = (output_times[io] - t) / h",
                        "for i in range(n):  # cubic Hermite on [t, t + h]",
                        "    difference = y1[i] - y[i]",
                        "    y_out[i] = y[i] + x * (difference + (x - 1.0) * (",
                        "        (1.0 - 2.0 * x) * difference + (x - 1.0) * h * k[0, i]",
                        "        + x * h * k_new[i]))"],
        "record": "_record(output_times[io], y_out, p, outputs_out, states_out, io)",
        "accept": ["for i in range(n):",
                   "    y[i] = y1[i]",
                   "    k[0, i] = k_new[i]"],
    },
}


def explicit_source() -> str:
    """Kernel-module source of the explicit pairs' segments, one per form of
    :data:`EXPLICIT_FORMS`, from the one :data:`EXPLICIT_STEP_LOOP`. A slot is an expression
    or a statement, or a list of statement lines set at the placeholder's indentation. A
    missing or unknown slot is a KeyError here, not a kernel that compiles wrong."""
    sources = []
    for name, form in EXPLICIT_FORMS.items():
        lines = []
        for line in EXPLICIT_STEP_LOOP.splitlines():
            slot = line.strip()[1:-1] if line.strip().startswith("{") else ""
            if isinstance(form.get(slot), list):
                indent = line[:len(line) - len(line.lstrip())]
                lines += [indent + statement for statement in form[slot]]
            else:
                lines.append(line)
        slots = {key: value for key, value in form.items() if not isinstance(value, list)}
        sources.append("\n".join(lines).format(**slots, name=name) + "\n")
    return "# ==== explicit Runge-Kutta segments (generated by " \
        "plateletpd.numerics.integrator.explicit_source)\n" + "\n\n".join(sources)


# ---- one subject, one method: the event loop of solve_subject_<form>
#: The event loop for one subject, rendered once per one-subject method
#: (:data:`SUBJECT_FORMS`) by :func:`subject_source` as ``solve_subject_<form>``. Dose times
#: are breakpoints: the integrator stops exactly there, applies boluses and infusion-rate
#: changes, and restarts (fresh derivative, new starting step: :func:`_restart_step`)
#: because the solution is not smooth across them. Outputs at a dose time are recorded
#: after the dose (right-continuous states). One function per method, not one dispatching
#: on ``method`` at run time: numba compiles every branch of a function, so a dispatching
#: ``solve_subject`` compiled all four methods for a call that used one (about 40% of a
#: first ``simulate()``'s compile, benchmarks/README.md "Time to first result"). The
#: arithmetic is the same text, so results are bit-identical to the dispatching form.
SUBJECT_LOOP = '''
@njit(**KERNEL_OPTIONS)
def {name}(method, n_states, n_targets, p, event_time, event_target, event_state,
        event_amount, event_duration, output_times, rtol, atol, max_step, max_steps,
        restart_growth, outputs_out, states_out, counters, failure):
    """Integrate one subject from t=0 through all output times with {doc}; return a
    status code (``method``: {methods}).

    Events: see :func:`_expand_events`. Outputs not reached stay NaN.
    ``restart_growth``: see :func:`_restart_step`. On failure, ``failure`` receives the
    model time and state where it happened (:func:`_failed`).
    """
    n_out = output_times.shape[0]
    outputs_out[:, :] = np.nan
    if states_out.shape[0] > 0:
        states_out[:, :] = np.nan
    # parameters then the parameter-only derived quantities, computed once per subject
    n_p = p.shape[0]
    q = np.empty(n_p + N_CONSTANTS)
    for i in range(n_p):  # a loop: a slice copy compiles numba's shape-error machinery
        q[i] = p[i]
    constants(q)
    p = q
    y = np.empty(n_states)
    t = np.float64(0.0)  # a numpy float: without JIT, formulas divide by zero as numba does
    initial(p, y)
    for i in range(n_states):
        if not math.isfinite(y[i]):
            return _failed(DOMAIN_ERROR, t, y, failure)  # an initial-value formula
    bioavailability = np.ones(max(n_targets, 1))
    lag = np.zeros(max(n_targets, 1))
    if not _dose_modifiers_valid(p, n_targets, bioavailability, lag):
        return INVALID_INPUT
    n_events = event_time.shape[0]
    bp_time, bp_state, bp_bolus, bp_rate, used = _breakpoint_arrays(n_events, 1)
    _expand_events(event_time, event_target, event_state, event_amount, event_duration,
                   bioavailability, lag, 0, bp_time, bp_state, bp_bolus, bp_rate, used)
    order = _breakpoint_order(bp_time, used)

    rate = np.zeros(n_states)
    work = np.empty((28, n_states))  # every segment's scratch rows, allocated once
    n_matrix = n_states if method == ROSENBROCK23 else 0  # Jacobian and iteration matrix
    matrices = np.empty((2, n_matrix, n_matrix))
    pivots = np.empty(n_matrix, dtype=np.int64)
    ib = 0
    io = 0
    t_end = output_times[n_out - 1]
    status = SUCCESS
    h_previous = 0.0  # the step the controller proposed when the last segment ended
    while True:
        ib = _apply_breakpoints(t, ib, order, bp_time, bp_state, bp_bolus, bp_rate, y, rate)
        while io < n_out and output_times[io] <= t:
            _record(t, y, p, outputs_out, states_out, io)
            io += 1
        if io >= n_out:
            break
        t_next = _segment_end(t_end, ib, order, bp_time)
        {segment}
        if status != SUCCESS:
            break
        t = t_next
    return status
'''

#: One-subject methods: the form's name, its method codes (a test of ``method``), the
#: description put in its docstring, and its segment call.
SUBJECT_FORMS = {
    "dopri5": {
        "doc": "Dormand-Prince 5(4) (:func:`dopri5_segment`)",
        "methods": ":data:`DOPRI5`",
        "segment": ["status, io, h_previous = dopri5_segment(",
                    "    t, t_next, y, p, rate, output_times, io, rtol, atol, max_step, max_steps,",
                    "    restart_growth, h_previous, outputs_out, states_out, counters, work, failure)"],
    },
    "rosenbrock23": {
        "doc": "Rosenbrock 2(3) (:func:`rosenbrock23_segment`)",
        "methods": ":data:`ROSENBROCK23`",
        "segment": ["status, io, h_previous = rosenbrock23_segment(",
                    "    t, t_next, y, p, rate, output_times, io, rtol, atol, max_step, max_steps,",
                    "    restart_growth, h_previous, outputs_out, states_out, counters, work,",
                    "    matrices, pivots, failure)"],
    },
    "dop853": {
        "doc": "DOP853 (``dop853_segment``)",
        "methods": ":data:`DOP853`",
        "segment": ["status, io, h_previous = dop853_segment(",
                    "    t, t_next, y, p, rate, output_times, io, rtol, atol, max_step, max_steps,",
                    "    restart_growth, h_previous, outputs_out, states_out, counters, work, failure)"],
    },
    "explicit": {
        "doc": "a tableau-driven explicit pair (``explicit_segment``)",
        "methods": ":data:`FIRST_GENERATED` + the pair's index in ``tableaux.GENERATED``",
        "segment": ["status, io, h_previous = explicit_segment(",
                    "    method - FIRST_GENERATED, t, t_next, y, p, rate, output_times, io, rtol, atol,",
                    "    max_step, max_steps, restart_growth, h_previous, outputs_out, states_out,",
                    "    counters, work, failure)"],
    },
}


def subject_form(method_code: int) -> str:
    """The one-subject form (a key of :data:`SUBJECT_FORMS`) that integrates ``method_code``."""
    named = {DOPRI5: "dopri5", ROSENBROCK23: "rosenbrock23", DOP853: "dop853"}
    return named.get(int(method_code), "explicit")


def subject_source() -> str:
    """Kernel-module source of ``solve_subject_<form>`` for every form of
    :data:`SUBJECT_FORMS` (the one :data:`SUBJECT_LOOP`, each with its own segment call)."""
    sources = []
    for name, form in SUBJECT_FORMS.items():
        lines = []
        for line in SUBJECT_LOOP.splitlines():
            if line.strip() == "{segment}":
                indent = line[:len(line) - len(line.lstrip())]
                lines += [indent + statement for statement in form["segment"]]
            else:
                lines.append(line)
        sources.append("\n".join(lines).replace("{name}", f"solve_subject_{name}")
                       .replace("{doc}", form["doc"]).replace("{methods}", form["methods"]) + "\n")
    return "# ==== one subject, one method (generated by " \
        "plateletpd.numerics.integrator.subject_source)\n" + "\n\n".join(sources)


#: The parallel batch drivers, appended to the kernel module after the lock-step stages:
#: ``solve_batch_<form>`` (subjects in parallel, one method) for every form of
#: :data:`SUBJECT_FORMS`, and ``solve_batch_lanes`` (groups of ``LANES`` subjects in lock
#: step with DOP853). A group that cannot run in lock step (dose times or a model switch
#: that differ, or a failure) leaves its subjects' status at :data:`LOCKSTEP_MISMATCH`:
#: the caller integrates them one at a time with ``solve_batch_dop853``
#: (:func:`plateletpd.numerics.kernels.integrate`), so that fallback is compiled only
#: when a cohort needs it.
BATCH_LOOP = '''
@njit(parallel=True, **KERNEL_OPTIONS)
def solve_batch_{form}(method, params, event_time, event_target, event_state, event_amount,
        event_duration, output_times, rtol, atol, max_step, max_steps, restart_growth,
        outputs_out, states_out, status, counters, failure):
    for subject in prange(params.shape[0]):
        status[subject] = solve_subject_{form}(
            method, N_STATES, N_DOSE_TARGETS, params[subject], event_time[subject],
            event_target, event_state,
            event_amount[subject], event_duration, output_times, rtol, atol, max_step,
            max_steps, restart_growth, outputs_out[subject], states_out[subject],
            counters[subject], failure[subject])
    return 0
'''

LANES_BATCH = '''
@njit(parallel=True, **KERNEL_OPTIONS)
def solve_batch_lanes(params, event_time, event_target, event_state, event_amount,
                      event_duration, output_times, rtol, atol, max_step, max_steps,
                      restart_growth, outputs_out, states_out, status, counters, active):
    n_subjects = params.shape[0]
    for group in prange((n_subjects + LANES - 1) // LANES):
        first = group * LANES
        count = min(LANES, n_subjects - first)
        group_status = solve_group(
            N_STATES, N_DOSE_TARGETS, N_UNIFORM, N_UNIFORM_SWITCHES, 0, params, first, count,
            event_time, event_target,
            event_state, event_amount, event_duration, output_times, rtol, atol,
            max_step, max_steps, restart_growth, outputs_out, states_out, counters, active)
        for subject in range(first, first + count):
            # not in lock step: integrated one subject at a time by the caller
            status[subject] = SUCCESS if group_status == SUCCESS else LOCKSTEP_MISMATCH
    return 0
'''


#: The generic kernel module's parallel driver (:func:`plateletpd.numerics.kernels.generic_kernel`):
#: :data:`BATCH_LOOP` with the state and dose-target counts as arguments instead of the
#: model's constants, so one compiled driver serves every model; each row of ``params``
#: carries the model's function addresses (:func:`plateletpd.numerics.kernels.generic_parameters`).
#: It calls the same ``solve_subject_<form>`` as the one-subject path, so a subject's
#: numbers are the same bit for bit alone, in this driver or in a model's own.
GENERIC_BATCH_LOOP = BATCH_LOOP.replace(
    "def solve_batch_{form}(method, params,",
    "def solve_batch_{form}(method, n_states, n_targets, params,").replace(
    "method, N_STATES, N_DOSE_TARGETS, params[subject]",
    "method, n_states, n_targets, params[subject]")


#: The generic module's lock-step driver: :data:`LANES_BATCH` with the model's sizes as
#: arguments; each row of ``params`` ends with the model's function addresses, ``rhs_lanes``
#: and ``uniform_conditions`` included (``generic_parameters(..., lanes=True)``).
GENERIC_LANES_BATCH = LANES_BATCH.replace(
    "def solve_batch_lanes(params,",
    "def solve_batch_lanes(n_states, n_targets, n_uniform, n_switches, params,").replace(
    "N_STATES, N_DOSE_TARGETS, N_UNIFORM, N_UNIFORM_SWITCHES, 0, params,",
    "n_states, n_targets, n_uniform, n_switches, MODEL_SLOTS, params,")


def generic_batch_source() -> str:
    """Source of the generic module's parallel drivers (:data:`GENERIC_BATCH_LOOP`,
    :data:`GENERIC_LANES_BATCH`) and its lock-step stage passes (:func:`lockstep_source`
    with the width read at run time: the same expressions, so the same numbers)."""
    return "# ==== generic batch drivers (generated by " \
        "plateletpd.numerics.integrator.generic_batch_source)\n" \
        + "\n\n".join(GENERIC_BATCH_LOOP.replace("{form}", name) for name in SUBJECT_FORMS) \
        + "\n\n" + lockstep_source(0, LANES, generic=True) + "\n\n" + GENERIC_LANES_BATCH


def batch_source() -> str:
    """Kernel-module source of the batch drivers (:data:`BATCH_LOOP`, :data:`LANES_BATCH`)."""
    return "# ==== batch drivers (generated by plateletpd.numerics.integrator.batch_source)\n" \
        + "\n\n".join(BATCH_LOOP.replace("{form}", name) for name in SUBJECT_FORMS) \
        + "\n\n" + LANES_BATCH



# ---- kernel template: everything below is copied into kernel modules ----
from plateletpd.numerics.jit import quiet  # noqa: E402

# NUMBA_DISABLE_JIT=1 only (identity otherwise): a formula's division by zero gives NaN
rhs_hoisted, rhs_inline, rhs_lanes = quiet(rhs_hoisted), quiet(rhs_inline), quiet(rhs_lanes)
constants, initial, outputs = quiet(constants), quiet(initial), quiet(outputs)
dose_modifiers = quiet(dose_modifiers)

# status codes (mirrored by plateletpd.numerics.solvers.Status)
SUCCESS = 0
MAX_STEPS = 1
STEP_SIZE_UNDERFLOW = 2
NON_FINITE = 3
SINGULAR_MATRIX = 4
INVALID_INPUT = 5
DOMAIN_ERROR = 6

# counters (mirrored by plateletpd.numerics.solvers.COUNTERS)
STEPS = 0
REJECTED = 1
RHS_EVALUATIONS = 2
JACOBIAN_EVALUATIONS = 3
N_COUNTERS = 4

# methods: hand-written segments, then the tableau-driven ones (explicit_segment), whose
# code is FIRST_GENERATED + their index in plateletpd.numerics.tableaux.GENERATED
DOPRI5 = 0
ROSENBROCK23 = 1
DOP853 = 2
FIRST_GENERATED = 3

# lock-step groups only (never a subject's status): the group's subjects cannot share
# breakpoints, so each is integrated on its own
LOCKSTEP_MISMATCH = -1

# Every method's coefficients come from the project's tableaux (plateletpd.numerics.tableaux,
# each with its published source). Global arrays are compile-time constants in numba.
from plateletpd.numerics import tableaux as _tableaux  # noqa: E402

# Dormand-Prince 8(5,3), with the three extra stages of its 7th-order dense output
_dop853 = _tableaux.DOP853

_P_A = np.ascontiguousarray(_dop853.A)    # (16, 16) stage coefficients, rows 13-15: dense
_P_B = np.ascontiguousarray(_dop853.B)    # (12,) 8th-order weights
_P_C = np.ascontiguousarray(_dop853.C)    # (16,) stage times
_P_E3 = np.ascontiguousarray(_dop853.E3)  # (13,) 3rd-order error weights
_P_E5 = np.ascontiguousarray(_dop853.E5)  # (13,) 5th-order error weights
_P_D = np.ascontiguousarray(_dop853.D)    # (4, 16) dense-output coefficients

_EPS = 2.220446049250313e-16


@njit(inline="always", **KERNEL_OPTIONS)
def _f(t, y, p, rate, out, counters):
    """Right-hand side plus zero-order input rates, counted. Compiled into its caller (no
    reference counting of the arrays passed on); the model's rhs itself stays a call."""
    rhs_hoisted(t, y, p, out)
    for i in range(y.shape[0]):
        out[i] += rate[i]
    counters[RHS_EVALUATIONS] += 1


@njit(inline="always", **KERNEL_OPTIONS)
def _f_hot(t, y, p, rate, out, counters):
    """:func:`_f` compiled into its caller (no call, no reference counting of the array
    arguments): used at the one stage-evaluation site of DOPRI5 and of DOP853 only, because
    every use adds a copy of the model to the compiled code (and seconds to compilation)."""
    rhs_inline(t, y, p, out)
    for i in range(y.shape[0]):
        out[i] += rate[i]
    counters[RHS_EVALUATIONS] += 1


@njit(**KERNEL_OPTIONS)
def _record(t, y, p, outputs_out, states_out, io):
    outputs(t, y, p, outputs_out[io])
    if states_out.shape[0] > 0:
        for i in range(y.shape[0]):
            states_out[io, i] = y[i]


@njit(inline="always", **KERNEL_OPTIONS)
def _error_norm(error, y, y_new, rtol, atol):
    total = 0.0
    for i in range(y.shape[0]):
        scale = atol[i] + rtol * max(abs(y[i]), abs(y_new[i]))
        total += (error[i] / scale) ** 2
    return math.sqrt(total / y.shape[0])


@njit(**KERNEL_OPTIONS)
def _initial_step(t, y, p, rate, f0, h_max, rtol, atol, order, y1, f1, counters):
    """Hairer's starting step (Solving ODEs I, II.4): one extra right-hand side call."""
    n = y.shape[0]
    dnf = 0.0
    dny = 0.0
    for i in range(n):
        sk = atol[i] + rtol * abs(y[i])
        dnf += (f0[i] / sk) ** 2
        dny += (y[i] / sk) ** 2
    h = 1e-6 if (dnf <= 1e-10 or dny <= 1e-10) else 0.01 * math.sqrt(dny / dnf)
    h = min(h, h_max)
    for i in range(n):
        y1[i] = y[i] + h * f0[i]
    _f(t + h, y1, p, rate, f1, counters)
    der2 = 0.0
    for i in range(n):
        sk = atol[i] + rtol * abs(y[i])
        der2 += ((f1[i] - f0[i]) / sk) ** 2
    der2 = math.sqrt(der2) / h
    der12 = max(abs(der2), math.sqrt(dnf))
    h1 = max(1e-6, h * 1e-3) if der12 <= 1e-15 else (0.01 / der12) ** (1.0 / order)
    return min(100.0 * h, h1, h_max)


@njit(inline="always", **KERNEL_OPTIONS)
def _restart_step(h_start, h_previous, restart_growth, h_max):
    """First step of a segment after a dose (a warm restart).

    Hairer's starting step (:func:`_initial_step`) is built for a cold start: it aims at
    1% of the tolerance for an Euler step, and on the bundled regimens it is 20-40x
    shorter than the step the error allows just after a dose, so every dose costs two or
    three tiny steps. The step may therefore grow ``restart_growth`` times beyond it, but
    never beyond ``h_previous``, the step the controller proposed before the dose (0 at
    the first segment: a cold start). The dose itself may need shorter steps; the usual
    rejection then shortens it. ``restart_growth = 1`` is the cold start at every dose."""
    if h_previous > h_start:
        h_start = min(h_previous, restart_growth * h_start)
    return min(h_start, h_max)


@njit(inline="always", **KERNEL_OPTIONS)
def _next_step(t, t_end, h, counters, max_steps):
    """Checks before an attempted step, shared by the one-step methods: (status, h, last).

    Stops at ``max_steps`` attempts or a step below round-off; stretches a step that would
    end within 1% of ``t_end`` to end exactly there."""
    if counters[STEPS] + counters[REJECTED] >= max_steps:
        return MAX_STEPS, h, False
    if h <= 16.0 * _EPS * max(abs(t), 1.0):
        return STEP_SIZE_UNDERFLOW, h, False
    last = t + 1.01 * h >= t_end
    if last:
        h = t_end - t
    return SUCCESS, h, last


@njit(inline="always", **KERNEL_OPTIONS)
def _retry_after_non_finite(t, h, counters):
    """A step whose error is NaN or infinite is rejected and retried 5x shorter: (status, h).

    NON_FINITE (with ``h`` unchanged, so the failed step's stages can be examined:
    :func:`_stage_failure`) once the step would fall below round-off or is itself NaN: the
    right-hand side is not finite however close to the current state it is evaluated."""
    counters[REJECTED] += 1
    if 0.2 * h > 16.0 * _EPS * max(abs(t), 1.0):
        return SUCCESS, 0.2 * h
    return NON_FINITE, h


@njit(inline="always", **KERNEL_OPTIONS)
def _failed(status, t, y, failure):
    """Record where an integration stopped (``failure``: model time, then the state) and
    return ``status``; plateletpd.numerics.failures turns it into the subject's message."""
    failure[0] = t
    for i in range(y.shape[0]):
        failure[1 + i] = y[i]
    return status


@njit(inline="always", **KERNEL_OPTIONS)
def _check_stage(t, state, derivative, failure):
    """SUCCESS if a stage's state and derivative are finite; NON_FINITE if the state is not
    (the solution exploded); DOMAIN_ERROR, recorded at this stage's time and state, if only
    the derivative is not: a model formula gave NaN or inf from finite values."""
    for i in range(state.shape[0]):
        if not math.isfinite(state[i]):
            return NON_FINITE
    for i in range(state.shape[0]):
        if not math.isfinite(derivative[i]):
            return _failed(DOMAIN_ERROR, t, state, failure)
    return SUCCESS


@njit(**KERNEL_OPTIONS)
def _stage_failure(t, h, y, k, tableau, nodes, n_stages, stage, failure):
    """Why an explicit Runge-Kutta step of length ``h`` from (t, y) stayed non-finite down to
    round-off: its first stage with a non-finite derivative (rebuilt from ``tableau``, the
    stage derivatives ``k`` being intact) gives DOMAIN_ERROR there; otherwise NON_FINITE."""
    for s in range(n_stages):
        if s == 0:
            status = _check_stage(t, y, k[0], failure)
        else:
            _combine(y, k, tableau[s], s, h, stage)
            status = _check_stage(t + nodes[s] * h, stage, k[s], failure)
        if status == DOMAIN_ERROR:
            return status
        if status != SUCCESS:
            break
    return _failed(NON_FINITE, t, y, failure)


@njit(inline="always", **KERNEL_OPTIONS)
def _output_due(io, output_times, t_new, t_end):
    """True if output ``io`` falls in the step ending at ``t_new`` (an output at the
    segment's end ``t_end`` is recorded after the breakpoint's doses instead)."""
    return io < output_times.shape[0] and output_times[io] <= t_new \
        and output_times[io] < t_end


@njit(inline="always", **KERNEL_OPTIONS)
def _dop853_error(err5, err3, h, n):
    """DOP853's combined error norm from the sums of squared scaled 5th- and 3rd-order
    estimates over ``n`` states (Hairer's dop853). NaN if either is NaN: a step whose
    stages are not finite must be rejected (a test ``err5 > 0 or err3 > 0`` returned 0 for
    NaN, so such steps were accepted and the NaN carried on as a success)."""
    if err5 == 0.0 and err3 == 0.0:
        return 0.0
    return h * err5 / math.sqrt((err5 + 0.01 * err3) * n)


@njit(inline="always", **KERNEL_OPTIONS)
def _next_after_accept(h, factor, rejected_last, last, h_max, max_step):
    """(next step, segment done) after an accepted step (DOP853 and the generated methods):
    no growth right after a rejection (Hairer); at the segment's end the proposal carried to
    the next segment."""
    if rejected_last:
        factor = min(factor, 1.0)
    if last:
        return min(h * factor, max_step), True
    return min(h * factor, h_max), False


@njit(inline="always", **KERNEL_OPTIONS)
def _dop853_factor(err):
    """DOP853's step-size factor: safety 0.9, exponent 1/8, within [1/3, 6]."""
    return 6.0 if err == 0.0 else min(6.0, max(1.0 / 3.0, 0.9 * err ** -0.125))


# ------------------------------------------------------------------ breakpoints (doses)
# One expansion serves one subject and lock-step groups: breakpoint arrays have a column per
# subject (one for solve_subject, LANES for solve_group); a group's subjects share the times.


@njit(**KERNEL_OPTIONS)
def _dose_modifiers_valid(q, n_targets, bioavailability, lag):
    """Fill each dose target's bioavailability and lag for parameters ``q``; False if one
    is negative or not finite (the subject's INVALID_INPUT)."""
    if n_targets > 0:
        dose_modifiers(q, bioavailability, lag)
    for k in range(n_targets):
        if not (math.isfinite(bioavailability[k]) and math.isfinite(lag[k])
                and bioavailability[k] >= 0.0 and lag[k] >= 0.0):
            return False
    return True


@njit(**KERNEL_OPTIONS)
def _breakpoint_arrays(n_events, columns):
    """Breakpoint times, states, boluses and rate changes (a column per subject) and the
    mask of those used, for ``n_events`` events (:func:`_expand_events`)."""
    return (np.empty(2 * n_events), np.empty(2 * n_events, dtype=np.int64),
            np.zeros((2 * n_events, columns)), np.zeros((2 * n_events, columns)),
            np.zeros(2 * n_events, dtype=np.bool_))


@njit(**KERNEL_OPTIONS)
def _expand_events(event_time, event_target, event_state, event_amount, event_duration,
                   bioavailability, lag, column, bp_time, bp_state, bp_bolus, bp_rate, used):
    """One subject's events (model time unit: ``event_time`` before lag, ``event_amount``
    before bioavailability, ``event_duration`` 0 for a bolus) as breakpoints in column
    ``column``: event e gives breakpoint 2e (the bolus, or an infusion's rate on) and 2e+1
    (its rate off); ``used`` marks those that change something (a dose of zero is none:
    skipped doses cost no restart). Column 0 sets the times; False if a later column's
    subject doses at other times (it cannot share the group's breakpoints)."""
    for e in range(event_time.shape[0]):
        k = event_target[e]
        start = event_time[e] + lag[k]
        amount = event_amount[e] * bioavailability[k]
        if column == 0:
            bp_time[2 * e] = start
            bp_time[2 * e + 1] = start + event_duration[e]
            bp_state[2 * e] = event_state[e]
            bp_state[2 * e + 1] = event_state[e]
        elif start != bp_time[2 * e]:
            return False
        if amount != 0.0:
            if event_duration[e] > 0.0:
                bp_rate[2 * e, column] = amount / event_duration[e]
                bp_rate[2 * e + 1, column] = -amount / event_duration[e]
                used[2 * e + 1] = True
            else:
                bp_bolus[2 * e, column] = amount
            used[2 * e] = True
    return True


@njit(**KERNEL_OPTIONS)
def _breakpoint_order(bp_time, used):
    """The used breakpoints in time order; at equal times in event order, an infusion's
    rate on before its rate off (a stable sort)."""
    n_bp = 0
    for b in range(used.shape[0]):
        if used[b]:
            n_bp += 1
    kept = np.empty(n_bp, dtype=np.int64)
    j = 0
    for b in range(used.shape[0]):
        if used[b]:
            kept[j] = b
            j += 1
    # a stable insertion sort (the order np.argsort(kind="mergesort") gave, equal times kept
    # in event order), which compiles in a fraction of numba's merge sort (1.3 s of a first
    # run). Breakpoints come nearly in time order (schedules are sorted; an infusion's end or
    # a concatenated schedule moves past at most the breakpoints it overlaps), so it costs
    # about one pass per subject.
    for j in range(1, n_bp):
        b = kept[j]
        i = j - 1
        while i >= 0 and bp_time[kept[i]] > bp_time[b]:
            kept[i + 1] = kept[i]
            i -= 1
        kept[i + 1] = b
    return kept


@njit(inline="always", **KERNEL_OPTIONS)
def _apply_breakpoints(t, ib, order, bp_time, bp_state, bp_bolus, bp_rate, y, rate):
    """Apply every breakpoint due at ``t`` from ``order[ib]`` on (boluses to ``y``, rate
    changes to ``rate``; lane-major for a group); the index of the next one."""
    columns = bp_bolus.shape[1]
    while ib < order.shape[0] and bp_time[order[ib]] <= t:
        b = order[ib]
        base = bp_state[b] * columns
        for column in range(columns):
            y[base + column] += bp_bolus[b, column]
            rate[base + column] += bp_rate[b, column]
        ib += 1
    return ib


@njit(inline="always", **KERNEL_OPTIONS)
def _segment_end(t_end, ib, order, bp_time):
    """Where the next segment ends: the next breakpoint, or the last output time."""
    if ib < order.shape[0] and bp_time[order[ib]] < t_end:
        return bp_time[order[ib]]
    return t_end


# solve_subject_<form> (one subject, one method each) and the batch drivers are rendered
# by subject_source() and batch_source() (above the template).


# ------------------------------------------------------------------ generated explicit methods
# Every tableau in plateletpd.numerics.tableaux.GENERATED, stacked and zero-padded.
_GEN_A, _GEN_B, _GEN_C, _GEN_E, _GEN_STAGES, _GEN_ORDER, _GEN_EXPONENT, _GEN_FSAL = \
    _tableaux.packed()


# ------------------------------------------------------------------ Dormand-Prince 5(4)
# the tableau: row s of A gives stage s+1 from stages 1..s; row 6 is the 5th-order solution
# (and stage 7, first same as last); E the error weights, D the dense output's
_DP5_A = _tableaux.DORMAND_PRINCE_5.a
_DP5_C = _tableaux.DORMAND_PRINCE_5.c
_E1, _, _E3, _E4, _E5, _E6, _E7 = (float(x) for x in _tableaux.DORMAND_PRINCE_5.error)
_D1, _, _D3, _D4, _D5, _D6, _D7 = (float(x) for x in _tableaux.DORMAND_PRINCE_5_DENSE)


@njit(**KERNEL_OPTIONS)
def dopri5_segment(t, t_end, y, p, rate, output_times, io, rtol, atol, max_step, max_steps,
                   restart_growth, h_previous, outputs_out, states_out, counters, work,
                   failure):
    """Advance ``y`` from ``t`` to exactly ``t_end``; record outputs strictly before it.

    Returns (status, index of the next output, the step proposed for after ``t_end``);
    ``h_previous`` is the one the previous segment returned (:func:`_restart_step`). On
    failure ``failure`` says where (:func:`_failed`); outputs are recorded from accepted
    steps only, so those before the failure are the solution and the rest stay NaN."""
    n = y.shape[0]
    stages = work[0:7]
    k1, k2, k3, k4, k5, k6, k7 = work[0], work[1], work[2], work[3], work[4], work[5], work[6]
    y1, stage, y_out = work[7], work[8], work[9]
    span = t_end - t
    if span <= 0.0:
        return SUCCESS, io, h_previous
    h_max = min(max_step, span)
    _f(t, y, p, rate, k1, counters)
    h = _initial_step(t, y, p, rate, k1, h_max, rtol, atol, 5, y1, k2, counters)
    h = _restart_step(h, h_previous, restart_growth, h_max)
    fac_old = 1e-4
    rejected_last = False
    while True:
        status, h, last = _next_step(t, t_end, h, counters, max_steps)
        if status != SUCCESS:
            return _failed(status, t, y, failure), io, h
        for s in range(1, 7):  # one evaluation site, so the model is inlined only once
            out = stage if s < 6 else y1  # stage 7 is the new solution and its derivative
            _combine(y, stages, _DP5_A[s], s, h, out)
            _f_hot(t + _DP5_C[s] * h, out, p, rate, stages[s], counters)
        for i in range(n):
            stage[i] = h * (_E1 * k1[i] + _E3 * k3[i] + _E4 * k4[i] + _E5 * k5[i]
                            + _E6 * k6[i] + _E7 * k7[i])
        err = _error_norm(stage, y, y1, rtol, atol)
        if not math.isfinite(err):
            status, h = _retry_after_non_finite(t, h, counters)
            if status != SUCCESS:
                return _stage_failure(t, h, y, stages, _DP5_A, _DP5_C, 7, stage, failure), io, h
            rejected_last = True
            continue
        fac11 = err ** 0.17  # 1/5 - 0.75 * beta, beta = 0.04 (Hairer's dopri5)
        if err <= 1.0:
            counters[STEPS] += 1
            t_new = t_end if last else t + h
            while _output_due(io, output_times, t_new, t_end):
                theta = (output_times[io] - t) / h
                theta1 = 1.0 - theta
                for i in range(n):
                    difference = y1[i] - y[i]
                    spline = h * k1[i] - difference
                    d5 = h * (_D1 * k1[i] + _D3 * k3[i] + _D4 * k4[i] + _D5 * k5[i]
                              + _D6 * k6[i] + _D7 * k7[i])
                    y_out[i] = y[i] + theta * (difference + theta1 * (
                        spline + theta * (difference - h * k7[i] - spline + theta1 * d5)))
                _record(output_times[io], y_out, p, outputs_out, states_out, io)
                io += 1
            for i in range(n):
                y[i] = y1[i]
                k1[i] = k7[i]
            t = t_new
            fac = max(0.1, min(5.0, fac11 / fac_old ** 0.04 / 0.9))
            h_new = h / fac
            if rejected_last:
                h_new = min(h_new, h)
            if last:
                return SUCCESS, io, min(h_new, max_step)
            fac_old = max(err, 1e-4)
            rejected_last = False
            h = min(h_new, h_max)
        else:
            counters[REJECTED] += 1
            rejected_last = True
            h = h / min(5.0, fac11 / 0.9)


# ------------------------------------------------------------------ Dormand-Prince 8(5,3)
@njit(inline="always", **KERNEL_OPTIONS)
def _combine(y, k, weights, count, h, out):
    """``out = y + h * sum(weights[j] * k[j] for j < count)``, skipping zero weights."""
    n = y.shape[0]
    w = h * weights[0]
    for i in range(n):
        out[i] = y[i] + w * k[0, i]
    for j in range(1, count):
        w = h * weights[j]
        if w != 0.0:
            for i in range(n):
                out[i] += w * k[j, i]


@njit(inline="always", **KERNEL_OPTIONS)
def _dop853_estimates(k, e5, e3):
    """DOP853's 5th- and 3rd-order error estimates (divided by h) from the 13 stages."""
    m = e5.shape[0]
    for i in range(m):
        e5[i] = _P_E5[0] * k[0, i]
        e3[i] = _P_E3[0] * k[0, i]
    for j in range(1, 13):
        w5 = _P_E5[j]
        w3 = _P_E3[j]
        for i in range(m):
            e5[i] += w5 * k[j, i]
            e3[i] += w3 * k[j, i]


@njit(inline="always", **KERNEL_OPTIONS)
def _dop853_dense(y, y1, k, h, dense):
    """The 7th-order dense-output rows of an accepted step (stages 14-16 in ``k``)."""
    m = y.shape[0]
    for i in range(m):
        difference = y1[i] - y[i]
        dense[0, i] = difference
        dense[1, i] = h * k[0, i] - difference
        dense[2, i] = 2.0 * difference - h * (k[12, i] + k[0, i])
    for r in range(4):
        for i in range(m):
            dense[3 + r, i] = 0.0
        for j in range(16):
            w = h * _P_D[r, j]
            if w != 0.0:
                for i in range(m):
                    dense[3 + r, i] += w * k[j, i]


@njit(inline="always", **KERNEL_OPTIONS)
def _dop853_interpolate(y, dense, x, y_out):
    """The solution at fraction ``x`` of the step (Hairer's nested form, highest row first)."""
    for i in range(y.shape[0]):
        value = 0.0
        for r in range(6, -1, -1):
            value += dense[r, i]
            value *= x if (6 - r) % 2 == 0 else 1.0 - x
        y_out[i] = y[i] + value


# dop853_segment (one subject) and dop853_lanes_segment (a lock-step group) are generated
# with these functions and their lock-step twins by explicit_source() (above the template).


# ------------------------------------------------------------------ Rosenbrock 2(3)
_RD = _tableaux.ROSENBROCK_23.d
_RE32 = _tableaux.ROSENBROCK_23.e32


@njit(**KERNEL_OPTIONS)
def _lu_factor(a, pivots):
    """In-place LU with partial pivoting; False if the matrix is singular."""
    n = a.shape[0]
    for k in range(n):
        m = k
        big = abs(a[k, k])
        for i in range(k + 1, n):
            if abs(a[i, k]) > big:
                big = abs(a[i, k])
                m = i
        pivots[k] = m
        if big == 0.0 or not math.isfinite(big):
            return False
        if m != k:
            for j in range(n):
                a[k, j], a[m, j] = a[m, j], a[k, j]
        for i in range(k + 1, n):
            a[i, k] /= a[k, k]
            factor = a[i, k]
            if factor != 0.0:
                for j in range(k + 1, n):
                    a[i, j] -= factor * a[k, j]
    return True


@njit(**KERNEL_OPTIONS)
def _lu_solve(a, pivots, b):
    """Solve in place ``a x = b`` with the factors from :func:`_lu_factor`."""
    n = a.shape[0]
    for k in range(n):
        m = pivots[k]
        if m != k:
            b[k], b[m] = b[m], b[k]
    for i in range(n):
        for j in range(i):
            b[i] -= a[i, j] * b[j]
    for i in range(n - 1, -1, -1):
        for j in range(i + 1, n):
            b[i] -= a[i, j] * b[j]
        b[i] /= a[i, i]


@njit(**KERNEL_OPTIONS)
def _jacobian(t, y, p, rate, f0, jac, y_work, f_work, counters):
    """Forward-difference Jacobian d f / d y at (t, y), given f0 = f(t, y)."""
    n = y.shape[0]
    root = math.sqrt(_EPS)
    for j in range(n):
        y_work[j] = y[j]
    for j in range(n):
        delta = root * max(abs(y[j]), 1e-6)
        y_work[j] = y[j] + delta
        _f(t, y_work, p, rate, f_work, counters)
        for i in range(n):
            jac[i, j] = (f_work[i] - f0[i]) / delta
        y_work[j] = y[j]
    counters[JACOBIAN_EVALUATIONS] += 1


@njit(**KERNEL_OPTIONS)
def _rosenbrock23_failure(t, h, y, f0, k1, y1, f1, f2, scratch, failure):
    """:func:`_stage_failure` for Rosenbrock 2(3): its right-hand side calls at t, at the
    midpoint state (rebuilt in ``scratch``) and at the new state ``y1``."""
    status = _check_stage(t, y, f0, failure)
    if status == SUCCESS:
        for i in range(y.shape[0]):
            scratch[i] = y[i] + 0.5 * h * k1[i]
        status = _check_stage(t + 0.5 * h, scratch, f1, failure)
    if status == SUCCESS:
        status = _check_stage(t + h, y1, f2, failure)
    return status if status == DOMAIN_ERROR else _failed(NON_FINITE, t, y, failure)


@njit(**KERNEL_OPTIONS)
def rosenbrock23_segment(t, t_end, y, p, rate, output_times, io, rtol, atol, max_step,
                         max_steps, restart_growth, h_previous, outputs_out, states_out,
                         counters, work, matrices, pivots, failure):
    """Stiff counterpart of :func:`dopri5_segment` (same contract); ``matrices`` holds the
    Jacobian and the iteration matrix (2, n, n) and ``pivots`` (n) their LU pivots, both
    allocated once per subject."""
    n = y.shape[0]
    f0, f1, f2, k1, k2, k3 = work[0], work[1], work[2], work[3], work[4], work[5]
    y1, time_derivative, scratch, y_out = work[6], work[7], work[8], work[9]
    span = t_end - t
    if span <= 0.0:
        return SUCCESS, io, h_previous
    jac, w = matrices[0], matrices[1]
    h_max = min(max_step, span)
    _f(t, y, p, rate, f0, counters)
    h = _initial_step(t, y, p, rate, f0, h_max, rtol, atol, 3, y1, f1, counters)
    h = _restart_step(h, h_previous, restart_growth, h_max)
    jacobian_current = False
    while True:
        if counters[STEPS] + counters[REJECTED] >= max_steps:
            return _failed(MAX_STEPS, t, y, failure), io, h
        if h <= 16.0 * _EPS * max(abs(t), 1.0):
            return _failed(STEP_SIZE_UNDERFLOW, t, y, failure), io, h
        if not jacobian_current:
            _jacobian(t, y, p, rate, f0, jac, y1, f1, counters)
            dt = math.sqrt(_EPS) * max(abs(t), 1.0)
            _f(t + dt, y, p, rate, f1, counters)
            for i in range(n):
                time_derivative[i] = (f1[i] - f0[i]) / dt
            jacobian_current = True
        last = t + 1.01 * h >= t_end
        if last:
            h = t_end - t
        for i in range(n):
            for j in range(n):
                w[i, j] = -h * _RD * jac[i, j]
            w[i, i] += 1.0
        if not _lu_factor(w, pivots):
            return _failed(SINGULAR_MATRIX, t, y, failure), io, h
        for i in range(n):
            k1[i] = f0[i] + h * _RD * time_derivative[i]
        _lu_solve(w, pivots, k1)
        for i in range(n):
            scratch[i] = y[i] + 0.5 * h * k1[i]
        _f(t + 0.5 * h, scratch, p, rate, f1, counters)
        for i in range(n):
            k2[i] = f1[i] - k1[i]
        _lu_solve(w, pivots, k2)
        for i in range(n):
            k2[i] += k1[i]
            y1[i] = y[i] + h * k2[i]
        _f(t + h, y1, p, rate, f2, counters)
        for i in range(n):
            k3[i] = (f2[i] - _RE32 * (k2[i] - f1[i]) - 2.0 * (k1[i] - f0[i])
                     + h * _RD * time_derivative[i])
        _lu_solve(w, pivots, k3)
        for i in range(n):
            scratch[i] = h / 6.0 * (k1[i] - 2.0 * k2[i] + k3[i])
        err = _error_norm(scratch, y, y1, rtol, atol)
        if not math.isfinite(err):
            status, h = _retry_after_non_finite(t, h, counters)
            if status != SUCCESS:
                return _rosenbrock23_failure(t, h, y, f0, k1, y1, f1, f2, scratch,
                                             failure), io, h
            continue
        if err <= 1.0:
            counters[STEPS] += 1
            t_new = t_end if last else t + h
            while _output_due(io, output_times, t_new, t_end):
                s = (output_times[io] - t) / h
                for i in range(n):
                    y_out[i] = y[i] + h * (s * (1.0 - s) * k1[i] + s * (s - 2.0 * _RD) * k2[i]) \
                        / (1.0 - 2.0 * _RD)
                _record(output_times[io], y_out, p, outputs_out, states_out, io)
                io += 1
            for i in range(n):
                y[i] = y1[i]
                f0[i] = f2[i]
            t = t_new
            jacobian_current = False
        else:
            counters[REJECTED] += 1
        factor = 5.0 if err == 0.0 else min(5.0, max(0.2, 0.8 * err ** (-1.0 / 3.0)))
        if last and err <= 1.0:
            return SUCCESS, io, min(h * factor, max_step)
        h = min(h * factor, h_max)


# ------------------------------------------------------------------ lock step (DOP853)
# LANES subjects advance together with one step size (the largest every one of them
# accepts), so the model's right-hand side runs as one vectorised loop over subjects
# (``rhs_lanes``) and every stage combination is one long loop over states x lanes. Arrays
# are lane-major and flat: element ``[i * LANES + lane]`` is row ``i`` of subject ``lane``.


@njit(inline="always", **KERNEL_OPTIONS)
def _f_lanes(t, y, q, rate, has_rate, out, counters):
    """:func:`_f` for a lock-step group: one right-hand side call per subject, counted once
    (the group's counters are every member's); the input rates are added only while an
    infusion runs (``has_rate``)."""
    rhs_lanes(t, y, q, out)
    if has_rate:
        for i in range(y.shape[0]):
            out[i] += rate[i]
    counters[RHS_EVALUATIONS] += 1


@njit(**KERNEL_OPTIONS)
def _initial_step_lanes(t, y, q, rate, has_rate, f0, h_max, rtol, atol, order, y1, f1,
                        counters, acc):
    """:func:`_initial_step` for a group: the shortest of the subjects' starting steps."""
    n = y.shape[0] // LANES
    for lane in range(LANES):
        acc[0, lane] = 0.0
        acc[1, lane] = 0.0
    for i in range(n):
        for lane in range(LANES):
            j = i * LANES + lane
            sk = atol[i] + rtol * abs(y[j])
            acc[0, lane] += (f0[j] / sk) ** 2
            acc[1, lane] += (y[j] / sk) ** 2
    h = h_max
    for lane in range(LANES):
        dnf, dny = acc[0, lane], acc[1, lane]
        h = min(h, 1e-6 if (dnf <= 1e-10 or dny <= 1e-10) else 0.01 * math.sqrt(dny / dnf))
    for j in range(y.shape[0]):
        y1[j] = y[j] + h * f0[j]
    _f_lanes(t + h, y1, q, rate, has_rate, f1, counters)
    for lane in range(LANES):
        acc[1, lane] = 0.0
    for i in range(n):
        for lane in range(LANES):
            j = i * LANES + lane
            sk = atol[i] + rtol * abs(y[j])
            acc[1, lane] += ((f1[j] - f0[j]) / sk) ** 2
    h_new = min(100.0 * h, h_max)
    for lane in range(LANES):
        der12 = max(math.sqrt(acc[1, lane]) / h, math.sqrt(acc[0, lane]))
        h_lane = max(1e-6, h * 1e-3) if der12 <= 1e-15 else (0.01 / der12) ** (1.0 / order)
        h_new = min(h_new, h_lane)
    return h_new


@njit(**KERNEL_OPTIONS)
def _dop853_error_lanes(e5, e3, y, y1, h, rtol, atol, acc, active):
    """DOP853's error norm of every subject; the largest (NaN if any is not finite).

    An idle state (outside ``active``) has y = y1 = 0 and estimates of +-0, so its terms
    are +0 and add nothing; they are replaced by ``e * 0.0`` (+-0 likewise, but NaN for a
    non-finite estimate, as the term itself would be), which spares two divisions per
    subject and idle state and keeps the sum's value and its failure on NaN or inf."""
    n = y.shape[0] // LANES
    for lane in range(LANES):
        acc[0, lane] = 0.0
        acc[1, lane] = 0.0
    r = 0
    for i in range(n):
        while r < active.shape[0] and active[r + 1] <= i:
            r += 2
        if r < active.shape[0] and active[r] <= i:
            for lane in range(LANES):
                j = i * LANES + lane
                scale = atol[i] + rtol * max(abs(y[j]), abs(y1[j]))
                acc[0, lane] += (e5[j] / scale) ** 2
                acc[1, lane] += (e3[j] / scale) ** 2
        else:
            for lane in range(LANES):
                j = i * LANES + lane
                acc[0, lane] += e5[j] * 0.0
                acc[1, lane] += e3[j] * 0.0
    worst = 0.0
    for lane in range(LANES):
        err = _dop853_error(acc[0, lane], acc[1, lane], h, n)
        if not math.isfinite(err):
            return math.nan
        worst = max(worst, err)
    return worst


@njit(**KERNEL_OPTIONS)
def _record_lanes(t, y, lane_q, lane_y, outputs_out, states_out, first, count, io):
    """Record output ``io`` of the group's real subjects (lanes ``0..count-1``)."""
    n = lane_y.shape[0]
    for lane in range(count):
        for i in range(n):
            lane_y[i] = y[i * LANES + lane]
        _record(t, lane_y, lane_q[lane], outputs_out[first + lane], states_out[first + lane],
                io)


@njit(**KERNEL_OPTIONS)
def solve_group(n_states, n_targets, n_uniform, n_switches, n_slots, parameter_vectors,
                first, count, event_time, event_target, event_state, event_amount,
                event_duration, output_times, rtol, atol, max_step, max_steps, restart_growth,
                outputs_out, states_out, counters, active):
    """Integrate subjects ``first .. first+count-1`` (count <= LANES) in lock step with
    DOP853; spare lanes repeat the last subject and record nothing. ``active``: the states
    the stage passes compute, as flat ``[start, end)`` pairs (every state: ``[0,
    n_states]``); the others must be idle (``plateletpd.model.codegen.idle_states``).
    ``n_uniform`` and ``n_switches``: the model's ``N_UNIFORM`` and ``N_UNIFORM_SWITCHES``;
    ``n_slots``: function addresses at the end of each parameter vector (0 in a model's
    kernel; the generic module's ``MODEL_SLOTS``), copied from the first subject's to the end
    of the group's lane-major ``q``, after the rows ``rhs_lanes`` reads.

    Returns a status for the whole group: SUCCESS (outputs and counters written for every
    subject), :data:`LOCKSTEP_MISMATCH` (their dose times differ after lag, so they cannot
    share breakpoints, or they differ in a model switch that ``rhs_lanes`` takes as one
    value per group: ``uniform_conditions``; where they differ in the exact-powers test
    that follows the switches, the group takes the variant without exact powers) or a
    failure; on anything but SUCCESS the
    caller integrates each subject on its own, so one failing subject is flagged alone,
    with its own status."""
    n_out = output_times.shape[0]
    n_p = parameter_vectors.shape[1]
    n_q = n_p + N_CONSTANTS
    n_rows = n_q - n_slots  # rows of q per lane that rhs_lanes reads, then its uniform tests
    lane_q = np.empty((LANES, n_q))
    lane_y = np.empty(n_states)
    q = np.empty((n_rows + n_uniform) * LANES + n_slots)
    uniform = np.empty(max(n_uniform, 1))
    # y is row 0; zeros: the rows of idle states are never written by the stage passes
    width = n_states * LANES
    w = np.zeros(N_LANE_ROWS * width)
    y = w[0:width]
    n_events = event_time.shape[1]
    bp_time, bp_state, bp_bolus, bp_rate, used = _breakpoint_arrays(n_events, LANES)
    bioavailability = np.ones(max(n_targets, 1))
    lag = np.zeros(max(n_targets, 1))
    for lane in range(LANES):
        subject = first + min(lane, count - 1)
        for i in range(n_p):  # a loop, as in solve_subject_<form>
            lane_q[lane, i] = parameter_vectors[subject, i]
        constants(lane_q[lane])
        for i in range(n_rows):
            q[i * LANES + lane] = lane_q[lane, i]
        uniform_conditions(lane_q[lane], uniform)
        for u in range(n_uniform):
            q[(n_rows + u) * LANES + lane] = uniform[u]
            if lane > 0 and uniform[u] != q[(n_rows + u) * LANES]:
                if u < n_switches:
                    return LOCKSTEP_MISMATCH
                # the exact-powers test: rhs_lanes reads lane 0's value, and its variant
                # without exact powers is right for every subject: the group's minimum
                q[(n_rows + u) * LANES] = 0.0
        initial(lane_q[lane], lane_y)
        for i in range(n_states):
            if not math.isfinite(lane_y[i]):
                return NON_FINITE
            y[i * LANES + lane] = lane_y[i]
        if not _dose_modifiers_valid(lane_q[lane], n_targets, bioavailability, lag):
            return INVALID_INPUT
        if not _expand_events(event_time[subject], event_target, event_state,
                              event_amount[subject], event_duration, bioavailability, lag,
                              lane, bp_time, bp_state, bp_bolus, bp_rate, used):
            return LOCKSTEP_MISMATCH
    for s in range(n_slots):  # the same in every subject's vector
        q[(n_rows + n_uniform) * LANES + s] = lane_q[0, n_rows + s]
    order = _breakpoint_order(bp_time, used)

    for lane in range(count):
        outputs_out[first + lane, :, :] = np.nan
        if states_out.shape[1] > 0:
            states_out[first + lane, :, :] = np.nan
    rate = np.zeros(n_states * LANES)
    has_rate = False
    acc = np.empty((2, LANES))
    group_counters = np.zeros(N_COUNTERS, dtype=np.int64)
    t = np.float64(0.0)  # as in solve_subject
    ib = 0
    io = 0
    t_end = output_times[n_out - 1]
    status = SUCCESS
    h_previous = 0.0
    while True:
        ib = _apply_breakpoints(t, ib, order, bp_time, bp_state, bp_bolus, bp_rate, y, rate)
        has_rate = False  # once per breakpoint time, after all its doses
        for j in range(rate.shape[0]):
            has_rate = has_rate or rate[j] != 0.0
        while io < n_out and output_times[io] <= t:
            _record_lanes(t, y, lane_q, lane_y, outputs_out, states_out, first, count, io)
            io += 1
        if io >= n_out:
            break
        t_next = _segment_end(t_end, ib, order, bp_time)
        status, io, h_previous = dop853_lanes_segment(
            t, t_next, w, q, rate, has_rate, output_times, io, rtol, atol, max_step,
            max_steps, restart_growth, h_previous, outputs_out, states_out, group_counters,
            acc, lane_q, lane_y, first, count, active)
        if status != SUCCESS:
            return status
        t = t_next
    for lane in range(count):
        for c in range(N_COUNTERS):
            counters[first + lane, c] = group_counters[c]
    return SUCCESS

