"""24 weeks of daily hetrombopag with titration at visits for 10,000 ITP patients (issue 19).

    PYTHONPATH=src NUMBA_NUM_THREADS=2 python -m benchmarks.itp_titration [--subjects 10000]

One arm of the bundled trial trials/itp_realworld.toml ("start 5 mg": daily doses for 168
days, counts every 14 days, 50-150 titration up and down in 2.5 mg steps, hold at >= 250),
run through the whole trial pipeline (``plateletpd.run_trial``: cohort draw, screening,
chunked lock-step integration with the dose rules, per-patient endpoints, summary) on the
bundled fit. A warm-up run of 50 patients compiles (or loads) the kernel first; the timed
runs are "once compiled". Prints the median wall time, the CPU time and the load average
before and after (the host is shared; note it with the numbers).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

from plateletpd.study.trial import bundled_trial, load_trial_spec, run_trial


def one_arm(subjects: int):
    spec = load_trial_spec(bundled_trial("itp_realworld"), subjects=subjects)
    arm = next(a for a in spec.arms if a.name == "start 5 mg")
    return dataclasses.replace(spec, arms=(arm,), reference_arm=arm.name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    run_trial(one_arm(50))  # compile or load the kernel
    spec = one_arm(args.subjects)
    walls, cpus = [], []
    print(f"load average before: {os.getloadavg()}")
    for _ in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run_trial(spec)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        print(f"  {args.subjects} screened, {len(result.subjects)} enrolled: "
              f"{walls[-1]:.1f} s wall, {cpus[-1]:.1f} s CPU", flush=True)
    print(f"load average after: {os.getloadavg()}")
    print(f"median {statistics.median(walls):.1f} s wall (min {min(walls):.1f}), "
          f"CPU {statistics.median(cpus):.1f} s; numba threads "
          f"{os.environ.get('NUMBA_NUM_THREADS', 'default')}; nproc {os.cpu_count()}")
    return 0


if __name__ == "__main__":
    from benchmarks import use_inlined_kernels

    use_inlined_kernels()
    raise SystemExit(main())
