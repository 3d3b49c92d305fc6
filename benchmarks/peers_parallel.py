"""``python -m benchmarks.peers_parallel``: the peers parallelised as plateletpd is (issue 18
item 4), so that ratios are per core and not plateletpd's 2 cores against a peer's one.

The same virtual CIT subjects (``benchmarks.cases.cohort_parameters``, seed 2024) on
``chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22``, daily outputs over 28 days:

* ``plateletpd_lockstep``: ``simulate_batch(DormandPrince853, execution="lockstep")`` on
  ``--threads`` numba threads;
* ``numbalsoda_prange``: numbalsoda LSODA (``benchmarks.engines``' cfunc right-hand side and
  piecewise dose loop) for each subject inside a numba ``prange`` on the same threads;
* ``scipy_python_pool``: ``solve_ivp(LSODA)`` with the plain-Python right-hand side
  (``python_rhs``) in a ``ProcessPoolExecutor`` of ``--threads`` workers (the first
  ``--scipy-subjects`` subjects only: it is slow);
* ``diffrax_vmap``: diffrax (JAX, CPU) ``Dopri8`` with a PID controller, ``jax.vmap`` over
  subjects inside one ``jax.jit``, doses replayed piecewise by a ``lax.scan`` over the
  dose segments; the right-hand side is the model's generated Python source traced by JAX
  (``a if c else b`` -> ``jnp.where``). Skipped with a note when jax/diffrax are missing.
* ``desolve_lsoda`` (when R and deSolve are installed): one subject at a time on one core
  (``benchmarks.desolve``), the per-core figure being its per-subject time.

Accuracy (the cohort rule of benchmarks/README.md): every engine runs at the loosest rtol of
the ladder (``benchmarks.__main__.LADDER``, atol = rtol x 1e-3) at which the first 4
subjects' platelets are within 1e-6 relative of their own Radau references (rtol 1e-10).
Time: median wall time of ``--repeats`` runs after a warm-up (compile time reported apart);
per-core time per subject = wall x cores used / subjects. Load averages are recorded with
every number. Prints one JSON document (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

import plateletpd as pp
from plateletpd.io.provenance import versions
from plateletpd.numerics.kernels import hoisted_parameters, initial_state, python_rhs

from .cases import cohort_parameters, dose_events, make_case, reference_platelets

MODEL, REGIMEN = "cit_thrombopoiesis", "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22"
LADDER = [float(f"{x:.2g}") for x in np.logspace(-2, -8, 25)] + [1e-9, 1e-10, 1e-11, 1e-12]
ATOL_FACTOR, TARGET_ERROR, CHECKED = 1e-3, 1e-6, 4


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message} (load {os.getloadavg()[0]:.2f})",
          file=sys.stderr, flush=True)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


class Cohort:
    """Subjects as every engine needs them: parameter vectors, hoisted vectors, initial
    states, and the checked subjects' references."""

    def __init__(self, n: int):
        self.case = make_case(MODEL, "mono", REGIMEN, with_reference=False)
        model = self.case.model
        self.values = cohort_parameters(model, n)
        self.n = n
        self.p = np.array([model.parameter_vector({k: float(v[i]) for k, v in
                                                   self.values.items()}) for i in range(n)])
        self.q = np.array([hoisted_parameters(model, p) for p in self.p])
        self.y0 = np.array([initial_state(model, p) for p in self.p])
        for p in self.p[:CHECKED]:  # the varied parameters do not move the doses
            assert all(np.array_equal(a, b) for a, b in zip(
                dose_events(model, REGIMEN, p), dose_events(model, REGIMEN, self.p[0])))
        self.references = [reference_platelets(self.case, p) for p in self.p[:CHECKED]]

    def error(self, platelets) -> float:
        """Largest relative platelet error of the checked subjects (rows of ``platelets``)."""
        return max(float(np.max(np.abs(platelets[i] / self.references[i] - 1.0)))
                   for i in range(CHECKED))

    def platelets_from_states(self, states, subjects) -> np.ndarray:
        """Platelets (subjects x times) from states (subjects x times x states)."""
        rows = []
        for i, s in zip(subjects, states):
            self.case.p = self.p[i]
            rows.append(self.case.platelets(s))
        return np.array(rows)


def ladder_rtol(error_at) -> float:
    for rtol in LADDER:
        if error_at(rtol) <= TARGET_ERROR:
            return rtol
    return LADDER[-1]


def timed_runs(run, repeats: int) -> dict:
    loads, seconds, cpu = [], [], []
    for _ in range(repeats):
        loads.append(os.getloadavg()[0])
        c0, t0 = time.process_time(), time.perf_counter()
        run()
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"median_seconds": statistics.median(seconds), "seconds": seconds,
            "process_cpu_seconds": cpu, "load_1min": loads}


# ---------------------------------------------------------------- plateletpd
def bench_plateletpd(cohort: Cohort, threads: int, repeats: int) -> dict:
    import numba

    numba.set_num_threads(threads)
    model, case = cohort.case.model, cohort.case

    def run(rtol, values=cohort.values):
        return pp.simulate_batch(model, REGIMEN, times=case.output_days, params=values,
                                 solver=pp.DormandPrince853(rtol=rtol, atol=rtol * ATOL_FACTOR),
                                 execution="lockstep")

    checked = {k: v[:CHECKED] for k, v in cohort.values.items()}

    def error_at(rtol):
        batch = run(rtol, checked)
        return cohort.error(batch.outputs[:, :, batch.output_names.index("platelets")])

    rtol = ladder_rtol(error_at)
    run(rtol)  # warm-up
    result = timed_runs(lambda: run(rtol), repeats)
    result["threading_layer"] = numba.threading_layer()
    batch = run(rtol)
    return {"engine": "plateletpd_lockstep", "subjects": cohort.n, "cores": threads,
            "rtol": rtol, "max_rel_error": error_at(rtol), "failed": int(np.sum(batch.status != 0)),
            "mean_rhs_evaluations": float(batch.counters[:, 2].mean()), **result}


# ---------------------------------------------------------------- numbalsoda in prange
def bench_numbalsoda(cohort: Cohort, threads: int, repeats: int) -> dict:
    try:
        import numbalsoda  # noqa: F401
    except Exception as problem:  # ImportError, or a broken shared library
        return {"engine": "numbalsoda_prange", "skipped": f"numbalsoda not importable: {problem}"}
    import numba
    from numba import njit, prange

    from .engines import _numbalsoda_solver

    numba.set_num_threads(threads)
    case = cohort.case
    address, one = _numbalsoda_solver(case.model)
    n_times, n_states = case.t_out.size, case.n_states

    @njit(parallel=True)
    def run_all(address, y0, q, ev_t, ev_s, ev_a, bounds, t_out, rtol, atol, out):
        for i in prange(y0.shape[0]):
            out[i] = one(address, y0[i], q[i], ev_t, ev_s, ev_a, bounds, t_out, rtol, atol)

    def run(rtol, count=cohort.n):
        out = np.empty((count, n_times, n_states))
        run_all(address, cohort.y0[:count], cohort.q[:count], case.event_time, case.event_state,
                case.event_amount, case.bounds, case.t_out, rtol, rtol * ATOL_FACTOR, out)
        if np.isnan(out).any():
            raise RuntimeError("numbalsoda lsoda failed for a subject")
        return out

    start = time.perf_counter()
    run(LADDER[0], CHECKED)
    compile_seconds = time.perf_counter() - start

    def error_at(rtol):
        return cohort.error(cohort.platelets_from_states(run(rtol, CHECKED), range(CHECKED)))

    rtol = ladder_rtol(error_at)
    run(rtol)  # warm-up
    result = timed_runs(lambda: run(rtol), repeats)
    return {"engine": "numbalsoda_prange", "subjects": cohort.n, "cores": threads,
            "rtol": rtol, "max_rel_error": error_at(rtol), "compile_seconds": compile_seconds,
            **result}


# ---------------------------------------------------------------- scipy in a process pool
_WORKER = {}


def _scipy_worker_start():
    cohort_case = make_case(MODEL, "mono", REGIMEN, with_reference=False)
    _WORKER["case"] = cohort_case
    _WORKER["f"] = python_rhs(cohort_case.model)


def _scipy_solve(job):
    from .engines import _scipy_step, piecewise_states

    p_rows, rtol = job
    case, f = _WORKER["case"], _WORKER["f"]
    out = []
    start = time.process_time()
    for p in p_rows:
        case.y0 = initial_state(case.model, p)
        out.append(piecewise_states(case, _scipy_step(f, "LSODA", rtol, rtol * ATOL_FACTOR,
                                                      (p,))))
    return np.array(out), time.process_time() - start


def bench_scipy(cohort: Cohort, threads: int, repeats: int, subjects: int) -> dict:
    _scipy_worker_start()

    def error_at(rtol):
        states, _ = _scipy_solve((cohort.p[:CHECKED], rtol))
        return cohort.error(cohort.platelets_from_states(states, range(CHECKED)))

    rtol = ladder_rtol(error_at)
    chunks = np.array_split(np.arange(subjects), threads * 4)
    worker_cpu = []
    with ProcessPoolExecutor(threads, initializer=_scipy_worker_start) as pool:
        def run():
            done = list(pool.map(_scipy_solve, [(cohort.p[c], rtol) for c in chunks]))
            worker_cpu.append(sum(cpu for _, cpu in done))

        run()  # warm-up: workers started, kernels loaded
        result = timed_runs(run, repeats)
    result["process_cpu_seconds"] = worker_cpu[1:]  # the workers' CPU time per timed run
    return {"engine": "scipy_python_pool", "subjects": subjects, "cores": threads,
            "rtol": rtol, "max_rel_error": error_at(rtol),
            "notes": f"ProcessPoolExecutor({threads}), {len(chunks)} chunks; CPU seconds "
                     "summed over the workers", **result}


# ---------------------------------------------------------------- diffrax with jax.vmap
class _IfToWhere(ast.NodeTransformer):
    """``a if c else b`` -> ``_where(c, a, b)``: JAX traces both sides (as numba's
    vectorised ``rhs_lanes`` computes them)."""

    def visit_IfExp(self, node):
        self.generic_visit(node)
        return ast.Call(ast.Name("_where", ast.Load()), [node.test, node.body, node.orelse], [])


def jax_rhs(model):
    """The model's generated ``rhs_hoisted(t, y, q, dydt)`` (Python source, plateletpd's own
    code generation) as a JAX function ``f(t, y, q) -> dydt``."""
    import jax.numpy as jnp

    tree = ast.parse(model.source)
    function = next(node for node in tree.body
                    if isinstance(node, ast.FunctionDef) and node.name == "rhs_hoisted")
    function.decorator_list = []
    module = ast.fix_missing_locations(ast.Module([_IfToWhere().visit(function)], []))

    class JaxMath:
        exp, log, log10, sqrt, pow = jnp.exp, jnp.log, jnp.log10, jnp.sqrt, jnp.power

    names = {"math": JaxMath, "_where": jnp.where, "max": jnp.maximum, "min": jnp.minimum,
             "abs": jnp.abs}
    exec(compile(module, f"<{model.name} rhs for jax>", "exec"), names)  # noqa: S102 (generated by plateletpd, not user text)
    rhs = names["rhs_hoisted"]
    n = len(model.states)

    def f(t, y, q):
        dydt = [0.0] * n
        rhs(t, y, q, dydt)
        return jnp.stack([jnp.asarray(d, dtype=jnp.float64) for d in dydt])

    return f


def bench_diffrax(cohort: Cohort, repeats: int) -> dict:
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_platforms", "cpu")
        import diffrax
        import jax.numpy as jnp
    except Exception as problem:
        return {"engine": "diffrax_vmap", "skipped": f"jax/diffrax not importable: {problem}"}
    case = cohort.case
    f = jax_rhs(case.model)
    bounds = case.bounds
    n_segments, n_states = bounds.size - 1, case.n_states
    bolus = np.zeros((n_segments, n_states))  # doses given at each segment's start
    for t, s, a in zip(case.event_time, case.event_state, case.event_amount):
        bolus[min(np.searchsorted(bounds, t, side="right") - 1, n_segments - 1), s] += a
    t_out = case.t_out
    segment_of = np.minimum(np.searchsorted(bounds, t_out, side="right") - 1, n_segments - 1)
    term = diffrax.ODETerm(lambda t, y, q: f(t, y, q))
    solver = diffrax.Dopri8()
    starts, ends = jnp.asarray(bounds[:-1]), jnp.asarray(bounds[1:])

    def one(y0, q, rtol):
        controller = diffrax.PIDController(rtol=rtol, atol=rtol * ATOL_FACTOR)

        def segment(y, k):
            y = y + bolus_j[k]
            a, b = starts[k], ends[k]
            solution = diffrax.diffeqsolve(
                term, solver, a, b, None, y, args=q, stepsize_controller=controller,
                saveat=diffrax.SaveAt(ts=jnp.clip(t_out_j, a, b), t1=True),
                max_steps=100_000, throw=False)
            return solution.ys[-1], (solution.ys[:-1], solution.stats["num_steps"],
                                     solution.result == diffrax.RESULTS.successful)

        _, (ys, steps, ok) = jax.lax.scan(segment, y0, jnp.arange(n_segments))
        return ys[segment_of_j, jnp.arange(t_out_j.size)], jnp.sum(steps), jnp.all(ok)

    bolus_j, t_out_j, segment_of_j = jnp.asarray(bolus), jnp.asarray(t_out), jnp.asarray(segment_of)
    batched = jax.jit(jax.vmap(one, in_axes=(0, 0, None)))

    def run(rtol, count=cohort.n):
        ys, steps, ok = batched(jnp.asarray(cohort.y0[:count]), jnp.asarray(cohort.q[:count]),
                                rtol)
        ys.block_until_ready()
        if not bool(np.all(ok)):
            raise RuntimeError("diffrax failed for a subject")
        return np.asarray(ys), np.asarray(steps)

    start = time.perf_counter()
    run(LADDER[0], CHECKED)
    compile_seconds = time.perf_counter() - start

    def error_at(rtol):
        ys, _ = run(rtol, CHECKED)
        return cohort.error(cohort.platelets_from_states(ys, range(CHECKED)))

    rtol = ladder_rtol(error_at)
    start = time.perf_counter()
    _, steps = run(rtol)  # warm-up (the full batch shape compiles again)
    compile_seconds += time.perf_counter() - start
    result = timed_runs(lambda: run(rtol), repeats)
    return {"engine": "diffrax_vmap", "subjects": cohort.n, "cores": os.cpu_count(),
            "rtol": rtol, "max_rel_error": error_at(rtol), "compile_seconds": compile_seconds,
            "mean_steps": float(steps.mean()),
            "notes": f"jax {jax.__version__}, diffrax {diffrax.__version__}, CPU, Dopri8 + "
                     "PIDController, vmap over subjects in one jit (XLA may use every core; "
                     "cores = os.cpu_count())", **result}


# ---------------------------------------------------------------- deSolve (one core)
def bench_desolve(cohort: Cohort) -> dict:
    from . import desolve

    ok, why = desolve.available()
    if not ok:
        return {"engine": "desolve_lsoda", "skipped": why}
    case = cohort.case
    case.p = cohort.p[0]
    case.y0 = cohort.y0[0]
    case.reference = cohort.references[0]
    r = desolve.run_desolve(case, LADDER, TARGET_ERROR, ATOL_FACTOR, 50)
    return {"engine": "desolve_lsoda", "subjects": 1, "cores": 1, "rtol": r["rtol"],
            "max_rel_error": case.error(r["platelets"]), "median_seconds": r["median_seconds"],
            "compile_seconds": r["compile_seconds"], "load_1min": [os.getloadavg()[0]],
            "process_cpu_seconds": [r["cpu_seconds"]],
            "notes": "first checked subject only (R, one subject at a time, timed inside R; "
                     "CPU = proc.time user + system over 50 solves / 50)"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers_parallel",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=1000,
                        help="CIT subjects per engine (default 1000)")
    parser.add_argument("--scipy-subjects", type=int, default=100,
                        help="subjects for scipy with a Python right-hand side, the slowest "
                             "(default 100; ratios are per patient)")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads or processes every engine gets (default 2)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed repeats per engine; the median is reported (default 5)")
    parser.add_argument("--engines", default="plateletpd,numbalsoda,scipy,diffrax,desolve",
                        help="comma-separated engines from plateletpd, numbalsoda, scipy, "
                             "diffrax, desolve (default: all; one not installed is skipped)")
    parser.add_argument("--out", type=Path, default=None,
                        help="a JSON file for the results (a file, not a folder; default: "
                             "printed only)")
    args = parser.parse_args(argv)
    if args.subjects < CHECKED or not 1 <= args.threads <= 64:
        parser.error(f"--subjects must be at least {CHECKED} and --threads in 1..64")
    log(f"{args.subjects} subjects, references for {CHECKED}")
    cohort = Cohort(args.subjects)
    results = []
    benches = {"plateletpd": lambda: bench_plateletpd(cohort, args.threads, args.repeats),
               "numbalsoda": lambda: bench_numbalsoda(cohort, args.threads, args.repeats),
               "scipy": lambda: bench_scipy(cohort, args.threads, 3,
                                            min(args.scipy_subjects, args.subjects)),
               "diffrax": lambda: bench_diffrax(cohort, args.repeats),
               "desolve": lambda: bench_desolve(cohort)}
    for name in args.engines.split(","):
        log(f"{name} ...")
        result = benches[name]()
        if "median_seconds" in result:
            result["per_subject_core_seconds"] = (result["median_seconds"] * result["cores"]
                                                  / result["subjects"])
        if result.get("process_cpu_seconds"):
            result["per_subject_cpu_seconds"] = (statistics.median(
                result["process_cpu_seconds"]) / result["subjects"])
        log(f"{name}: " + json.dumps({k: v for k, v in result.items()
                                      if k not in ("seconds", "process_cpu_seconds")}))
        results.append(result)
    base = next((r for r in results if r["engine"] == "plateletpd_lockstep"), None)
    if base is not None:
        for r in results:
            if "per_subject_core_seconds" in r:
                r["per_core_ratio_to_plateletpd"] = (r["per_subject_core_seconds"]
                                                     / base["per_subject_core_seconds"])
            if "per_subject_cpu_seconds" in r:
                r["cpu_ratio_to_plateletpd"] = (r["per_subject_cpu_seconds"]
                                                / base["per_subject_cpu_seconds"])
    document = {"cpu": cpu_model(), "nproc": os.cpu_count(), "model": MODEL, "regimen": REGIMEN,
                "started_load": os.getloadavg(), "argv": sys.argv[1:], "results": results,
                "versions": versions()}
    text = json.dumps(document, indent=1, default=float)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    from benchmarks import use_inlined_kernels

    use_inlined_kernels()
    sys.exit(main())
