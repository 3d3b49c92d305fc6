"""What the generic lock-step driver costs per subject against a model's own (issue 18 item 5).

``python -m benchmarks.generic_lockstep [--pairs 8] [--models ...]``: per model, one lock-step
cohort (DormandPrince853, 42 days, daily outputs, ``--subjects`` patients whose platelet
baseline varies, CV 20%, seed 1) run alternately through the generic module's lock-step driver
(``PLATELETPD_GENERIC_INTEGRATOR=always``: the model's ``rhs_lanes`` loop variants called by
address, each folded for the batch's idle drugs (``plateletpd.model.codegen.folded_lane_source``),
the stage passes reading the group's width at run time) and through the model's own kernel
(``never``: its ``rhs_lanes`` unfolded), in one process after one untimed run of each
(compile apart). Prints the median
CPU seconds (``time.process_time``: the measure on a shared host) of each, their ratio, the
per-subject difference, and checks first that both give the same outputs bit for bit.

The ratio decides whether a model's own lock-step driver is ever worth its compile
(``plateletpd.numerics.kernels._generic_first_run``: not at 0.99-1.05 times); results in
benchmarks/README.md, "Time to first result".
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

#: Model and regimen per case (as in benchmarks/cold_start.py).
CASES = {"friberg_platelets": "cytotoxic 100 mg qd d1-14",
         "cit_thrombopoiesis": "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22",
         "cit_marrow_reserve": "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22"}


def cpu_model() -> str:
    """The CPU's name, family and model (the first processor of /proc/cpuinfo)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        return platform.processor() or "unknown"
    return f"{fields.get('model name', 'unknown')} (family {fields.get('cpu family', '?')}, " \
        f"model {fields.get('model', '?')})"


def main(argv=None) -> int:
    import plateletpd as pp

    parser = argparse.ArgumentParser(prog="python -m benchmarks.generic_lockstep",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(CASES))
    parser.add_argument("--subjects", type=int, default=4000)
    parser.add_argument("--pairs", type=int, default=8, help="alternated timed pairs")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.subjects < 2:
        parser.error(f"--pairs must be at least 1 and --subjects at least 2 (lock step needs "
                     f"a group), got {args.pairs} and {args.subjects}")
    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores; load {os.getloadavg()}")
    times = np.arange(43.0)
    for name in args.models.split(","):
        if name not in CASES:
            parser.error(f"unknown model {name!r}; choose from {', '.join(CASES)}")
        model = pp.load_model(name)
        rng = np.random.default_rng(1)
        baseline = model.parameters["platelets_baseline"].value if \
            "platelets_baseline" in model.parameters else None
        params = {} if baseline is None else {
            "platelets_baseline": baseline * np.exp(0.2 * rng.standard_normal(args.subjects))}

        def run(mode):
            os.environ["PLATELETPD_GENERIC_INTEGRATOR"] = mode
            started = time.process_time()
            result = pp.simulate_batch(model, CASES[name], times=times, n=args.subjects,
                                       params=params or None, solver=pp.DormandPrince853(),
                                       execution="lockstep")
            return time.process_time() - started, result

        (_, generic), (_, own) = run("always"), run("never")  # compile apart
        if not np.array_equal(generic.outputs, own.outputs):
            raise SystemExit(f"{name}: the generic lock-step driver's outputs differ")
        seconds = {"always": [], "never": []}
        for _ in range(args.pairs):
            for mode in seconds:
                seconds[mode].append(run(mode)[0])
        generic_s, own_s = (statistics.median(seconds[m]) for m in ("always", "never"))
        print(f"{name}: {args.subjects} subjects, median CPU s generic {generic_s:.3f}, "
              f"own {own_s:.3f}, ratio {generic_s / own_s:.2f}, "
              f"{1e6 * (generic_s - own_s) / args.subjects:.0f} us more per subject "
              f"(pairs {args.pairs}; load after {os.getloadavg()[0]:.1f})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
