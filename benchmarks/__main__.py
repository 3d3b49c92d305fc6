"""``python -m benchmarks``: plateletpd against its peers (issue 6). See benchmarks/README.md."""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # run from a checkout without installing

import pandas as pd  # noqa: E402

import plateletpd as pp  # noqa: E402
from plateletpd.numerics.kernels import compile_kernel, hoisted_parameters, initial_state
from plateletpd.io.files import atomic_write, write_json, write_text
from plateletpd.io.provenance import versions  # noqa: E402

from . import desolve  # noqa: E402
from .cases import (CASES, TARGET_ERROR, cohort_parameters, make_case,  # noqa: E402
                    reference_platelets)
from .engines import PYTHON_ENGINES  # noqa: E402
from .million import MODELS as MILLION_MODELS  # noqa: E402

COLUMNS = ["engine", "model", "regimen", "subjects", "rtol", "atol", "max_rel_error",
           "median_seconds", "per_subject_seconds", "subjects_per_second", "compile_seconds",
           "repeats", "relative_range", "notes"]
#: rtol candidates, loosest first: quarter decades from 1e-2 to 1e-8 (1e-2, 5.6e-3, 3.2e-3,
#: 1.8e-3, 1e-3, ...), then decades to 1e-12. Every engine runs at the first that meets the
#: target error, so each sits within a quarter decade of its own threshold.
LADDER = [float(f"{x:.2g}") for x in np.logspace(-2, -8, 25)] + [1e-9, 1e-10, 1e-11, 1e-12]
#: virtual subjects whose platelets are checked against their own Radau reference (cohorts)
CHECKED_SUBJECTS = 4
ATOL_FACTOR = 1e-3  # atol = rtol * ATOL_FACTOR for every engine (states are O(1-1000))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def timed(function, *args):
    start = time.perf_counter()
    value = function(*args)
    return time.perf_counter() - start, value


def relative_range(seconds) -> float:
    """(slowest - fastest) / median of the timed repeats: the spread beside each median
    (NaN with fewer than two repeats; a benchmarking user test, 2026-12-07, asked for it)."""
    seconds = list(seconds or [])
    if len(seconds) < 2:
        return math.nan
    return (max(seconds) - min(seconds)) / statistics.median(seconds)


def row(engine, case, subjects, rtol, atol, error, median, compile_seconds, repeats, notes,
        seconds=None):
    per = median / subjects if median is not None else None
    return {"engine": engine, "model": case.model_name, "regimen": case.regimen,
            "subjects": subjects, "rtol": rtol, "atol": atol, "max_rel_error": error,
            "median_seconds": median, "per_subject_seconds": per,
            "subjects_per_second": (1.0 / per) if per else None,
            "compile_seconds": compile_seconds, "repeats": repeats,
            "relative_range": relative_range(seconds), "notes": notes}


def repeat_count(estimate, args) -> tuple[int, str]:
    """Repeats for a solve that takes about ``estimate`` s, within the per-engine budget."""
    if estimate * args.repeats <= args.budget:
        return args.repeats, ""
    n = max(args.min_repeats, int(args.budget / max(estimate, 1e-9)))
    n = min(n, args.repeats)
    return n, f"fewer repeats ({n}): {estimate:.2g} s per solve"


def bench_engine(engine, case, chosen, args) -> dict:
    ok, why = engine.available()
    if not ok:
        log(f"  {engine.name}: SKIPPED: {why}")
        return row(engine.name, case, 1, None, None, None, None, None, 0, f"skipped: {why}")
    engine.prepare(case)
    notes = [engine.description]
    if engine.ladder:
        first, _ = timed(engine.solve, case, LADDER[0], LADDER[0] * ATOL_FACTOR)
        second, _ = timed(engine.solve, case, LADDER[0], LADDER[0] * ATOL_FACTOR)
        compile_seconds = max(0.0, first - second)
        rtol = LADDER[-1]
        for candidate in LADDER:
            _, platelets = timed(engine.solve, case, candidate, candidate * ATOL_FACTOR)
            if case.error(platelets) <= TARGET_ERROR:
                rtol = candidate
                break
        else:
            notes.append(f"no rtol in the ladder reached {TARGET_ERROR:g}")
        estimate, _ = timed(engine.solve, case, rtol, rtol * ATOL_FACTOR)  # warm-up
    else:
        rtol = chosen
        notes.append("rtol taken from scipy_lsoda_numba (same algorithm), no ladder")
        estimate, _ = timed(engine.solve, case, rtol, rtol * ATOL_FACTOR)  # warm-up
        compile_seconds = 0.0
    repeats, note = repeat_count(estimate, args)
    if note:
        notes.append(note)
    seconds = []
    for _ in range(repeats):
        elapsed, platelets = timed(engine.solve, case, rtol, rtol * ATOL_FACTOR)
        seconds.append(elapsed)
    error = case.error(platelets)
    if engine.name == "plateletpd_kernel" and case.last_counters is not None:
        c = case.last_counters
        notes.append(f"steps {c[0]}, rejected {c[1]}, rhs evaluations {c[2]}")
    median = statistics.median(seconds)
    log(f"  {engine.name}: rtol {rtol:g} error {error:.2e} median {median:.3e} s "
        f"compile {compile_seconds:.2f} s ({repeats} repeats)")
    return row(engine.name, case, 1, rtol, rtol * ATOL_FACTOR, error, median,
               compile_seconds, repeats, "; ".join(notes), seconds)


def bench_desolve(case, args) -> dict:
    ok, why = desolve.available()
    if not ok:
        log(f"  desolve_lsoda: SKIPPED: {why}")
        return row("desolve_lsoda", case, 1, None, None, None, None, None, 0, f"skipped: {why}")
    r = desolve.run_desolve(case, LADDER, TARGET_ERROR, ATOL_FACTOR, max(args.repeats, 5)
                            if not args.quick else args.repeats)
    error = case.error(r["platelets"])
    log(f"  desolve_lsoda: rtol {r['rtol']:g} error {error:.2e} median "
        f"{r['median_seconds']:.3e} s (R side), R CMD SHLIB {r['compile_seconds']:.2f} s")
    notes = ("R deSolve ode(method='lsoda') with the compiled C rhs (model.c_source(), "
             "R CMD SHLIB), doses as events (method 'add'), timed inside R (median per solve); "
             f"compile_seconds = R CMD SHLIB; first call minus a later one in R "
             f"{r['first_call_extra']:.2g} s")
    return row("desolve_lsoda", case, 1, r["rtol"], r["atol"], error, r["median_seconds"],
               r["compile_seconds"], r["repeats"], notes, r.get("times"))


#: Cohort methods: name -> (solver class, simulate_batch execution). The lock-step method
#: starts its tolerance search from one-subject DOP853's.
COHORT_METHODS = {"plateletpd": (pp.DormandPrince5, "subjects"),
                  "plateletpd_dop853": (pp.DormandPrince853, "subjects"),
                  "plateletpd_lockstep": (pp.DormandPrince853, "lockstep")}


def cohort_solver(method: str, rtol: float):
    solver, _ = COHORT_METHODS[method]
    return solver(rtol=rtol, atol=rtol * ATOL_FACTOR)


def cohort_batch(model, case, params, method: str, solver):
    """``simulate_batch`` of a cohort with the method's solver and execution."""
    return pp.simulate_batch(model, case.regimen, times=case.output_days, params=params,
                             solver=solver, execution=COHORT_METHODS[method][1])


def describe_solver(solver, method: str) -> str:
    return solver.method + (" in lock step (groups of 16 subjects)"
                            if COHORT_METHODS[method][1] == "lockstep" else "")


def checked_error(batch, references) -> float:
    """Largest relative platelet error of the first subjects of ``batch`` against their own
    Radau references."""
    got = batch.outputs[:, :, batch.output_names.index("platelets")]
    return max(float(np.max(np.abs(got[i] / references[i] - 1)))
               for i in range(len(references)))


def cohort_tolerance(case, method, rtol, params, references) -> float:
    """The loosest ladder rtol, no looser than the typical subject's, at which the first
    virtual subjects also meet the target error against their own Radau references: the
    typical subject's tolerance can sit just at its threshold, where another subject is
    a little over it."""
    for candidate in LADDER[LADDER.index(rtol):]:
        batch = cohort_batch(case.model, case, params, method, cohort_solver(method, candidate))
        if checked_error(batch, references) <= TARGET_ERROR:
            if candidate != rtol:
                log(f"  cohort rtol {candidate:g}: at the typical subject's {rtol:g} a checked "
                    f"virtual subject missed {TARGET_ERROR:g}")
            return candidate
    return LADDER[-1]


def cohort_method(case, chosen, params, references, args) -> tuple[str, float]:
    """DOPRI5, DOP853 or DOP853 in lock step for the cohorts, each at its cohort tolerance:
    whichever runs a trial cohort (1000 subjects, 100 with --quick) fastest, median of 3."""
    trial = cohort_parameters(case.model, 100 if args.quick else 1000)
    best = None
    for method in COHORT_METHODS:
        start = chosen.get(method, chosen["plateletpd_dop853"])
        rtol = cohort_tolerance(case, method, start, params, references)
        solver = cohort_solver(method, rtol)
        run = lambda: cohort_batch(case.model, case, trial, method, solver)  # noqa: E731
        seconds = statistics.median(timed(run)[0] for _ in range(3))
        log(f"  cohort trial {method} rtol {rtol:g}: {seconds:.3e} s")
        if best is None or seconds < best[2]:
            best = (method, rtol, seconds)
    return best[0], best[1]


def bench_cohorts(case, method, rtol, sizes, args, references) -> list[dict]:
    rows = []
    model = case.model
    solver = cohort_solver(method, rtol)
    for n in sizes:
        params = cohort_parameters(model, n)
        run = lambda: cohort_batch(model, case, params, method, solver)  # noqa: E731
        first, batch = timed(run)
        repeats, note = repeat_count(first, args)
        seconds = [first]  # kernel already compiled and warm from the single-subject runs
        for _ in range(repeats - 1):
            elapsed, batch = timed(run)
            seconds.append(elapsed)
        k = len(references)
        error = checked_error(batch, references)
        failed = int(np.sum(batch.status != 0))
        counters = batch.counters
        notes = [f"simulate_batch with {describe_solver(solver, method)} (the fastest of DOPRI5, "
                 f"DOP853 and DOP853 in lock step on a trial cohort, each at its cohort "
                 f"tolerance), log-normal IIV on "
                 f"{', '.join(params)}; error over the first {k} subjects; no separate "
                 f"warm-up (kernel warm from the single-subject runs); mean steps {counters[:, 0].mean():.0f}, mean rhs "
                 f"evaluations {counters[:, 2].mean():.0f} per subject; failed {failed}; "
                 f"{os.cpu_count()} cores (numba threads {numba_threads()})"]
        if note:
            notes.append(note)
        median = statistics.median(seconds)
        log(f"  plateletpd_cohort n={n}: median {median:.3e} s, {median / n:.3e} s/subject, "
            f"error {error:.2e} ({len(seconds)} runs)")
        rows.append(row("plateletpd_cohort", case, n, rtol, rtol * ATOL_FACTOR, error, median,
                        0.0, len(seconds), "; ".join(notes), seconds))
    return rows


def bench_one_core(case, method, rtol, n, args) -> dict:
    """The same cohort on one numba thread: per subject-core, the like-for-like comparison
    with the peers, which run one subject at a time on one core."""
    import numba

    solver = cohort_solver(method, rtol)
    params = cohort_parameters(case.model, n)
    run = lambda: cohort_batch(case.model, case, params, method, solver)  # noqa: E731
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        seconds = [timed(run)[0] for _ in range(3 if args.quick else 5)]
    finally:
        numba.set_num_threads(threads)
    median = statistics.median(seconds)
    log(f"  plateletpd_cohort_1core n={n}: median {median:.3e} s, {median / n:.3e} s/subject")
    return row("plateletpd_cohort_1core", case, n, rtol, rtol * ATOL_FACTOR, math.nan, median,
               0.0, len(seconds), f"simulate_batch with {describe_solver(solver, method)} on 1 numba thread "
               f"(numba.set_num_threads(1)), same subjects and tolerance as plateletpd_cohort "
               f"(its error column applies)", seconds)


def bench_million(case, method, rtol, args) -> dict:
    """The 10^6-subject cohort of the case's CIT model with endpoints, in a fresh process
    (its own peak memory)."""
    n = 2000 if args.quick else int(args.million)
    code = [sys.executable, "-m", "benchmarks.million", "--n", str(n), "--rtol", str(rtol),
            "--model", case.model_name,
            "--method", {"plateletpd": "dopri5", "plateletpd_dop853": "dop853",
                         "plateletpd_lockstep": "dop853_lockstep"}[method]]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root / "src"), str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(code, capture_output=True, text=True, cwd=root, env=env, check=True)
    r = json.loads(done.stdout.strip().splitlines()[-1])
    log(f"  plateletpd_endpoints n={n}: {r['wall_seconds']:.1f} s wall, "
        f"{r['per_subject_seconds']:.3e} s/subject, peak RSS {r['peak_rss_mb']:.0f} MB")
    notes = (f"python -m benchmarks.million in a fresh process: chunks of {r['chunk']}, "
             f"{r['method']}, endpoints only (nadir, day 14/28, days nadir->100); wall "
             f"{r['wall_seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB, failed "
             f"{r['failed']}, mean rhs evaluations {r['mean_rhs_evaluations']:.0f}")
    return row("plateletpd_endpoints", case, n, rtol, rtol * ATOL_FACTOR, math.nan,
               r["wall_seconds"], 0.0, 1, notes)


COLD = """
import os, sys, time, numpy as np
sys.path.insert(0, {src!r})
import plateletpd as pp
t0 = time.perf_counter(); pp.simulate({model!r}, {regimen!r}, times=np.arange(29.0))
t1 = time.perf_counter(); pp.simulate({model!r}, {regimen!r}, times=np.arange(29.0))
t2 = time.perf_counter(); print((t1 - t0) - (t2 - t1))
"""


def cold_compile(model_name: str, regimen: str) -> float:
    """Seconds of kernel compilation on a cold cache (fresh process, empty cache folder)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ppd_cold_") as folder:
        env = {**os.environ, "PLATELETPD_CACHE_DIR": folder}
        code = COLD.format(src=str(HERE.parent / "src"), model=model_name, regimen=regimen)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def numba_threads() -> int:
    import numba

    return numba.get_num_threads()


def rhs_cost(model, calls: int = 200_000) -> float:
    """Seconds per call of the model's compiled (hoisted) rhs, timed in an njit loop."""
    import numba

    kernel_rhs = compile_kernel(model).rhs_hoisted
    p = hoisted_parameters(model, model.parameter_vector())
    y = initial_state(model, p) * 1.01 + 0.1

    @numba.njit
    def loop(y, p, calls):
        dydt = np.empty(y.size)
        acc = 0.0
        for i in range(calls):
            kernel_rhs(1.0 + i * 1e-9, y, p, dydt)
            acc += dydt[-1]
        return acc

    loop(y, p, 10)
    best = min(timed(loop, y, p, calls)[0] for _ in range(3))
    return best / calls


def _git_state() -> dict:
    """The commit of the tree the benchmark ran from and whether it had uncommitted
    changes (None where it is not a git checkout or git is missing)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = ""
    try:
        flags = next((line.split(":", 1)[1] for line in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), "")
    except OSError:
        pass
    # when, from which tree and on which vector units (a benchmarking user test, 2026-12-07:
    # the record had no time, commit or CPU flags, though the README reads AVX-512 runs apart)
    info = {"nproc": os.cpu_count(), "cpu": cpu, "platform": platform.platform(),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "git": _git_state(),
            "cpu_vector_flags": sorted(f for f in flags.split()
                                       if f.startswith(("avx", "sse4", "fma"))),
            "numba_num_threads_env": os.environ.get("NUMBA_NUM_THREADS"),
            "load_average_at_start": os.getloadavg(), "versions": versions()}
    try:
        import numbalsoda  # noqa: F401
        from importlib.metadata import version
        info["versions"]["numbalsoda"] = version("numbalsoda")
    except Exception:
        info["versions"]["numbalsoda"] = "not installed"
    ok, _ = desolve.available()
    info["versions"]["R"] = desolve.versions() if ok else "not installed"
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="CI mode: tiny cohorts, 1-2 repeats, two cases; no timing claims")
    parser.add_argument("--million", type=float, default=1e6,
                        help="subjects in the endpoints-only CIT cohort (default 1e6; 2000 "
                             "with --quick)")
    parser.add_argument("--max-cohort", type=float, default=None,
                        help="largest cohort size (default 1e5; 100 with --quick)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats per engine (default 7; 2 with --quick)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of timed repeats per engine and case before repeats "
                             "are cut (default 30; 5 with --quick)")
    parser.add_argument("--out", type=Path, default=HERE / "results",
                        help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (2 if args.quick else 7)
    args.budget = args.budget or (5.0 if args.quick else 30.0)
    args.min_repeats = 1 if args.quick else 3
    smallest = 10 if args.quick else 100
    if args.max_cohort is not None and not (math.isfinite(args.max_cohort)
                                            and smallest <= args.max_cohort <= 1e6):
        parser.error(f"--max-cohort must be between {smallest} and 1e6 subjects (the cohort "
                     f"sizes are powers of 10 from {smallest}), got {args.max_cohort:g}")
    max_cohort = int(args.max_cohort or (100 if args.quick else 100_000))
    sizes = [10 ** k for k in range(1 if args.quick else 2, 7) if 10 ** k <= max_cohort]
    cases = CASES[:2] if args.quick else CASES
    start = time.perf_counter()
    info = machine()
    log(f"machine: {info['nproc']} cores, {info['cpu']}; {info['versions']}")
    rows, shared, breakdown = [], {}, {}
    for model_name, label, regimen in cases:
        log(f"{model_name} / {regimen}")
        compile_start = time.perf_counter()
        compile_kernel(pp.load_model(model_name))  # noqa: B018  (plateletpd kernel: import or compile)
        kernel_seconds = time.perf_counter() - compile_start
        elapsed, case = timed(make_case, model_name, label, regimen)
        case.shared = shared
        log(f"  Radau reference (rtol 1e-10) in {elapsed:.1f} s")
        chosen = {}
        for engine_class in [e for e in PYTHON_ENGINES if e.name != "scipy_lsoda_python"] + [
                e for e in PYTHON_ENGINES if e.name == "scipy_lsoda_python"]:
            engine = engine_class()
            result = bench_engine(engine, case, chosen.get("scipy_lsoda_numba"), args)
            chosen[engine.name] = result["rtol"]
            if engine.name == "plateletpd":
                result["notes"] += (f"; kernel load in this process {kernel_seconds:.2f} s "
                                    "(numba on-disk cache)")
                if not args.quick:
                    cold = cold_compile(model_name, regimen)
                    result["compile_seconds"] = cold
                    result["notes"] += ("; compile_seconds = first simulate() minus a warm "
                                        "one in a fresh process with an empty kernel cache")
            rows.append(result)
        rows.append(bench_desolve(case, args))
        k = 1 if args.quick else CHECKED_SUBJECTS
        params = cohort_parameters(case.model, k)
        references = []
        for i in range(k):
            p = case.model.parameter_vector({n: float(v[i]) for n, v in params.items()})
            references.append(reference_platelets(case, p))
        method, cohort_rtol = cohort_method(case, chosen, params, references, args)
        rows += bench_cohorts(case, method, cohort_rtol, sizes, args, references)
        rows.append(bench_one_core(case, method, cohort_rtol, max(n for n in sizes
                                                                  if n <= 10_000), args))
        if label == "mono" and model_name in MILLION_MODELS:
            rows.append(bench_million(case, method, cohort_rtol, args))
        if model_name not in breakdown:
            breakdown[model_name] = {"rhs_seconds_per_call": rhs_cost(case.model),
                                     "states": case.n_states}
        write_results(rows, info, breakdown, args)  # after every case: partial results
    info["total_seconds"] = time.perf_counter() - start
    info["load_average_at_end"] = os.getloadavg()
    write_results(rows, info, breakdown, args)
    log(f"done in {info['total_seconds']:.0f} s; results in {args.out}")
    return 0


def write_results(rows, info, breakdown, args) -> None:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    name = "quick.csv" if args.quick else "benchmarks.csv"
    atomic_write(args.out / name, lambda p: frame.to_csv(p, index=False, float_format="%.6g"))
    write_json(args.out / ("quick_machine.json" if args.quick else "machine.json"),
               {**info, "breakdown": breakdown, "argv": sys.argv[1:]})
    write_text(args.out / ("quick_summary.md" if args.quick else "summary.md"),
               summary(frame, breakdown, info.get("nproc")))
    plot(frame, args.out / ("quick_scaling.png" if args.quick else "scaling.png"))


#: what the "first-call overhead" column means, by engine (a benchmarking user test,
#: 2026-12-07: the column had meant different things unsaid)
OVERHEAD_MEANING = (
    "First-call overhead: for `plateletpd` in a full run, the kernel's cold compilation (the "
    "first `simulate()` minus a warm one in a fresh process with an empty kernel cache); "
    "for every other one-subject Python engine, and for `plateletpd` with `--quick`, the "
    "first solve minus the second in this process: numba compiling the right-hand side "
    "(scipy with numba), numbalsoda's cfunc, or for plateletpd's methods the on-disk "
    "kernel cache's load (a compilation where that method's kernel was not cached yet); "
    "for `desolve_lsoda`, `R CMD SHLIB` building the C right-hand side; 0 for the cohort "
    "rows (the kernel is warm from the one-subject runs). Never part of the medians.")


def per_subject(group: pd.DataFrame, engine: str, largest: bool = False) -> tuple[float, int]:
    """(per-subject seconds, subjects) of an engine's row: the fastest per subject, or the
    largest cohort's with ``largest``."""
    rows = group[(group.engine == engine) & group.per_subject_seconds.notna()]
    if rows.empty:
        return math.nan, 0
    chosen = rows.loc[rows.subjects.idxmax()] if largest else rows.loc[
        rows.per_subject_seconds.idxmin()]
    return float(chosen.per_subject_seconds), int(chosen.subjects)


def model_cost(frame: pd.DataFrame, cores: int) -> str:
    """The default model's per-subject cost against the earlier CIT model's on the same
    regimen in the same run (issue 17 item 6: within 1.5 times)."""
    new, old = "cit_marrow_reserve", "cit_thrombopoiesis"
    regimens = set(frame[frame.model == new].regimen) & set(frame[frame.model == old].regimen)
    out = []
    for regimen in sorted(regimens):
        pair = [frame[(frame.model == m) & (frame.regimen == regimen)] for m in (new, old)]
        lines = []
        for engine, label in (("plateletpd", "one subject (DOPRI5)"),
                              ("plateletpd_cohort", f"cohort on {cores} cores, largest size"),
                              ("plateletpd_cohort_1core", "cohort on 1 core")):
            (a, n_a), (b, n_b) = (per_subject(g, engine, largest=True) for g in pair)
            if math.isfinite(a) and math.isfinite(b):
                size = f", {n_a} subjects" if engine != "plateletpd" else ""
                lines.append(f"| {label}{size} | {a:.3g} | {b:.3g} | {a / b:.2f} |")
        if lines:
            out.append(f"\n**{new} against {old}**, `{regimen}`, the same run: per-subject "
                       "seconds (each model at its own between-patient variability and "
                       "tolerance; the target is a ratio within 1.5, issue 17 item 6; one run "
                       "is one sample of a noisy host: read the ratio with the rows' ranges)"
                       "\n\n| engine | " + new + " | " + old + " | ratio |\n"
                       "|---|---:|---:|---:|\n" + "\n".join(lines) + "\n")
    return "".join(out)


def summary(frame: pd.DataFrame, breakdown: dict, cores: int | None = None) -> str:
    cores = cores or os.cpu_count() or 1
    out = io.StringIO()
    for (model, regimen), group in frame.groupby(["model", "regimen"], sort=False):
        single, _ = per_subject(group[group.engine.isin(["plateletpd", "plateletpd_dop853"])]
                                .assign(engine="plateletpd"), "plateletpd")
        best, _ = per_subject(group, "plateletpd_cohort")
        one_core, _ = per_subject(group, "plateletpd_cohort_1core")
        out.write(f"\n**{model}**, `{regimen}`\n\n")
        out.write("| engine | subjects | rtol | max rel. error | per-subject time (s), median | "
                  "range / median | first-call overhead (s) | repeats | "
                  "peer / plateletpd, 1 subject | "
                  "peer / plateletpd cohort on 1 core (like for like) | "
                  f"peer / plateletpd cohort on {cores} cores (not like for like) |\n"
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
        for _, r in group.iterrows():
            if pd.isna(r.median_seconds):
                out.write(f"| {r.engine} | - | - | - | skipped | - | - | - | - | - | - |\n")
                continue
            peer = not str(r.engine).startswith("plateletpd")
            ratios = [f"{r.per_subject_seconds / base:.3g}x" if peer else ""
                      for base in (single, one_core, best)]
            spread = "" if pd.isna(r.relative_range) else f"{r.relative_range:.2f}"
            out.write(f"| {r.engine} | {r.subjects} | {r.rtol:.0e} | {r.max_rel_error:.1e} | "
                      f"{r.per_subject_seconds:.3g} | {spread} | "
                      f"{r.compile_seconds:.2g} | {r.repeats} | {' | '.join(ratios)} |\n")
    out.write(f"\nEvery peer runs one subject at a time on one core. The like-for-like cohort "
              f"ratio sets it against plateletpd's cohort on one numba thread; the last column "
              f"sets it against all {cores} cores (peers parallelised the same way are "
              "compared per core by `python -m benchmarks.peers_parallel`). Range / median: "
              "(slowest - fastest) / median of the timed repeats. " + OVERHEAD_MEANING + "\n")
    out.write(model_cost(frame, cores))
    out.write("\nPer-call cost of the compiled right-hand side (njit loop): "
              + ", ".join(f"{m} {b['rhs_seconds_per_call'] * 1e9:.0f} ns ({b['states']} states)"
                          for m, b in breakdown.items()) + "\n")
    return out.getvalue()


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(frame.groupby(["model", "regimen"], sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 4.6), squeeze=False)
    for ax, ((model, regimen), group) in zip(axes[0], groups):
        cohort = group[group.engine == "plateletpd_cohort"].dropna(subset=["median_seconds"])
        n = np.array([1, *cohort.subjects.astype(float)])
        single = group[group.engine == "plateletpd"].median_seconds
        ax.loglog(n, [float(single.iloc[0]), *cohort.median_seconds], "o-", color="k", lw=2,
                  label="plateletpd (1 subject, then simulate_batch)")
        span = np.array([1, max(n.max(), 10)])
        for _, r in group.iterrows():
            if str(r.engine).startswith("plateletpd") or pd.isna(r.per_subject_seconds):
                continue
            ax.loglog(span, span * r.per_subject_seconds, "--",
                      label=f"{r.engine} (x subjects, serial)")
        ax.set_xlabel("subjects")
        ax.set_ylabel("wall time (s), median")
        ax.set_title(f"{model}\n{regimen}", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


if __name__ == "__main__":
    from benchmarks import use_inlined_kernels

    use_inlined_kernels()
    sys.exit(main())
