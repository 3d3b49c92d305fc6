"""The issue's large-cohort target: 10^6 CIT subjects, 28 days, endpoints only (either CIT
model: ``--model``, default the earlier ``cit_thrombopoiesis`` the target was set on).

Run in a fresh process (``python -m benchmarks.million``) so its peak memory is its own.
Subjects are simulated in chunks with :func:`plateletpd.simulate_batch` (parallel over
subjects); each chunk's daily platelet counts are reduced to per-subject endpoints and
dropped, so memory does not grow with the cohort. Prints one JSON line.

Endpoints per subject (the registry's nadir_plt, time_to_rise_onset_days, plt_count on
days 14 and 28, recovery_days to 100 x10^9/L: linear interpolation between daily values,
NaN if not reached), and the integration status.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from dataclasses import replace

import numpy as np

import plateletpd as pp
from plateletpd.study.endpoints import ENDPOINTS, Courses

from .cases import OUTPUT_DAYS, cohort_parameters


def endpoints(platelets: np.ndarray) -> dict[str, np.ndarray]:
    """Per-subject endpoints from daily counts (subjects x days 0..28), by the endpoint
    registry's definitions (:mod:`plateletpd.study.endpoints`), day 0 = chemotherapy."""
    courses = Courses(np.arange(platelets.shape[1], dtype=float), platelets,
                      np.zeros(platelets.shape[0]))
    value = {name: ENDPOINTS[name].values for name in
             ("nadir_plt", "time_to_rise_onset_days", "plt_count", "recovery_days")}
    day14, day28 = (value["plt_count"](replace(courses, day=day)) for day in (14.0, 28.0))
    return {"nadir": value["nadir_plt"](courses),
            "nadir_day": value["time_to_rise_onset_days"](courses),
            "day14": day14, "day28": day28,
            "days_nadir_to_100": value["recovery_days"](courses)}  # level 100 by default


def peak_memory_mb() -> float:
    """Peak resident memory of this process since it started (Linux ``VmHWM``).

    ``ru_maxrss`` would be wrong here: Linux carries it across ``exec`` from the forked
    parent, so a child of a large harness process reports the parent's size."""
    try:
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


#: the CIT models this cohort can run (their VARIABILITY in benchmarks.cases)
MODELS = ("cit_thrombopoiesis", "cit_marrow_reserve")
REGIMEN = "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22"


def run(n: int, chunk: int, method: str, rtol: float, seed: int,
        model_name: str = "cit_thrombopoiesis") -> dict:
    model = pp.load_model(model_name)
    regimen = REGIMEN
    solver = {"dopri5": pp.DormandPrince5, "dop853": pp.DormandPrince853,
              "dop853_lockstep": pp.DormandPrince853}[method](rtol=rtol, atol=rtol * 1e-3)
    execution = "lockstep" if method == "dop853_lockstep" else "subjects"
    params = cohort_parameters(model, n, seed=seed)  # 3-4 x n floats: 24-32 MB at 10^6
    warm = {k: v[:8] for k, v in params.items()}
    pp.simulate_batch(model, regimen, times=OUTPUT_DAYS, params=warm, solver=solver,
                      execution=execution, keep_states=False)  # kernel load, warm-up: untimed
    start = time.perf_counter()
    summary = {"nadir": 0.0, "recovered": 0, "failed": 0, "evaluations": 0.0}
    for lo in range(0, n, chunk):
        part = {k: v[lo:lo + chunk] for k, v in params.items()}
        batch = pp.simulate_batch(model, regimen, times=OUTPUT_DAYS, params=part,
                                  solver=solver, execution=execution, keep_states=False)
        counts = batch.output("platelets")
        values = endpoints(counts)
        summary["nadir"] += float(np.nansum(values["nadir"]))
        summary["recovered"] += int(np.sum(np.isfinite(values["days_nadir_to_100"])))
        summary["failed"] += int(np.sum(batch.status != 0))
        summary["evaluations"] += float(batch.counters[:, 2].sum())
    wall = time.perf_counter() - start
    return {"model": model_name, "subjects": n, "chunk": chunk, "method": method, "rtol": rtol, "seed": seed,
            "wall_seconds": wall, "per_subject_seconds": wall / n,
            "peak_rss_mb": peak_memory_mb(),
            "mean_nadir": summary["nadir"] / n, "recovered_fraction": summary["recovered"] / n,
            "failed": summary["failed"], "mean_rhs_evaluations": summary["evaluations"] / n}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.million")
    parser.add_argument("--n", type=float, default=1e6)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--method", choices=["dopri5", "dop853", "dop853_lockstep"], default="dop853")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--model", choices=MODELS, default="cit_thrombopoiesis")
    args = parser.parse_args(argv)
    if not (args.n >= 1 and float(args.n).is_integer()):
        parser.error(f"--n must be a whole number of subjects >= 1, got {args.n:g}")
    if args.chunk < 1:
        parser.error(f"--chunk must be at least 1 subject, got {args.chunk}")
    if not 0 < args.rtol < 1:
        parser.error(f"--rtol must be between 0 and 1 (e.g. 1e-4), got {args.rtol:g}")
    print(json.dumps(run(int(args.n), args.chunk, args.method, args.rtol, args.seed,
                         args.model)))
    return 0


if __name__ == "__main__":
    from benchmarks import use_inlined_kernels

    use_inlined_kernels()
    sys.exit(main())
