"""Issue 18 item 1's benchmark: an endpoints-only dose sweep of CIT cohorts (10 hetrombopag
doses x 10^6 patients = 10^7 patient-simulations by default) on local threads and on a
2-worker Dask LocalCluster, and the overhead per chunk.

    python -m benchmarks.distributed --n 1e6 --doses 10 --chunk 20000

Prints one JSON line per configuration. The cohort is
:class:`plateletpd.study.distributed.CohortJob` (the same patients in every dose; 28 days,
daily output, DOP853 rtol 1e-4, endpoints per patient reduced to means per dose), so both
configurations compute the same table (checked: the JSON's ``table_digest``).

Overhead per chunk: 400 empty chunks through the same path (:func:`map_chunks` on the
cluster), each returning a result of a real chunk's size (``chunk`` patients x 5 float64):
the wall time per chunk is scheduling, argument and result transfer and collection, with no
simulation in it (the 2 workers take them in parallel, as they take real chunks).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
import warnings

import numpy as np


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def job(n: int, doses: int):
    from plateletpd.model.definition import load_model
    from plateletpd.population.variability import Variability
    from plateletpd.study.distributed import CohortJob

    from .cases import VARIABILITY

    model = load_model("cit_thrombopoiesis")
    amounts = np.linspace(2.5, 25.0, doses)
    regimens = tuple(f"chemotherapy 1 dose d1 + hetrombopag {a:g} mg qd d9-22"
                     for a in amounts)
    return CohortJob(model, regimens, n, Variability.from_cv(VARIABILITY[model.name]),
                     seed=2024, days=28, rtol=1e-4)


def _empty_chunk(rows: int) -> np.ndarray:
    return np.zeros((rows, 5))


def overhead_ms(client, rows: int, chunks: int = 400) -> float:
    from plateletpd.study.distributed import map_chunks

    map_chunks(_empty_chunk, [(rows,)] * 20, client)  # connections open, function shipped
    started = time.perf_counter()
    map_chunks(_empty_chunk, [(rows,)] * chunks, client)
    return (time.perf_counter() - started) / chunks * 1e3


def timed(cohort, client, chunk: int) -> tuple[float, object]:
    from plateletpd.study.distributed import run_cohort

    started = time.perf_counter()
    table = run_cohort(cohort, client, chunk=chunk, progress=True)
    return time.perf_counter() - started, table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distributed")
    parser.add_argument("--n", type=float, default=1e6, help="patients per dose")
    parser.add_argument("--doses", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args(argv)
    from plateletpd.numerics.kernels import compile_kernel
    from plateletpd.study.distributed import cluster, warm_workers

    cohort = job(int(args.n), args.doses)
    compile_kernel(cohort.model)
    common = {"patient_simulations": int(args.n) * args.doses, "chunk": args.chunk,
              "cpu": cpu_model(), "cores": os.cpu_count()}
    if not args.skip_local:
        load = os.getloadavg()
        wall, table = timed(cohort, None, args.chunk)
        print(json.dumps({**common, "where": "local threads", "wall_s": round(wall, 1),
                          "per_simulation_us": round(wall / common["patient_simulations"]
                                                     * 1e6, 2),
                          "load_before": load, "load_after": os.getloadavg(),
                          "table_digest": digest(table)}), flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with cluster(workers=args.workers) as client:
            warm = warm_workers(client, [cohort.model])
            load = os.getloadavg()
            overhead = overhead_ms(client, args.chunk)
            wall, table = timed(cohort, client, args.chunk)
            record = {**common, "where": f"LocalCluster {args.workers} workers",
                      "wall_s": round(wall, 1),
                      "per_simulation_us": round(wall / common["patient_simulations"] * 1e6,
                                                 2),
                      "overhead_per_chunk_ms": round(overhead, 2),
                      "kernel_load_s": {k: round(v, 2) for k, v in warm.items()},
                      "load_before": load, "load_after": os.getloadavg(),
                      "table_digest": digest(table)}
            print(json.dumps(record), flush=True)
    return 0


def digest(table) -> str:
    return hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()[:16]


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks import use_inlined_kernels

    use_inlined_kernels()
    sys.exit(main())
