"""``python -m benchmarks.cold_start``: time to first result on an empty kernel cache (issue 18
item 5), per bundled model, and what numba compiles in that time.

For each model, a fresh Python process with an empty ``PLATELETPD_CACHE_DIR`` runs:
import plateletpd; the first ``simulate()`` (DormandPrince5, the default; this compiles the
one-subject kernel); a second one (warm); the first lock-step ``simulate_batch`` (32
subjects, DormandPrince853, ``execution="lockstep"``: compiles the lock-step driver); a
second one. Then a fresh process on the now filled cache repeats the first ``simulate()``
(the disk cache's load time). numba's compile events (``numba.core.event``) give the
seconds spent compiling each function, listed longest first (nested compilations are
included in their callers' times, so the list does not add up to the total).

Prints one JSON document per model (and writes them to ``--out``). CPU time is measured
with ``time.process_time`` in the child; load averages are recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {"friberg_platelets": "cytotoxic 100 mg qd d1-14",
          "cit_thrombopoiesis": "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22",
          "cit_marrow_reserve": "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22",
          "wang2010_romiplostim": "romiplostim 3 ug/kg qw d1-22"}

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter(); c0 = time.process_time()
import numpy as np
from numba.core import event
import plateletpd as pp
marks = {"import_seconds": time.perf_counter() - t0}
compiles, starts = {}, {}

class Timer(event.Listener):
    # seconds spent compiling each function (numba compile events)
    def on_start(self, e):
        starts[id(e.data["dispatcher"])] = time.perf_counter()
    def on_end(self, e):
        name = e.data["dispatcher"].py_func.__qualname__
        begun = starts.pop(id(e.data["dispatcher"]), None)
        if begun is not None:
            compiles[name] = compiles.get(name, 0.0) + time.perf_counter() - begun

event.register("numba:compile", Timer())
model, regimen, phases = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
covariates = {"body_weight": 70.0} if model == "wang2010_romiplostim" else None
times = np.arange(29.0)

def step(name, run):
    c, t = time.process_time(), time.perf_counter()
    run()
    marks[name + "_seconds"] = time.perf_counter() - t
    marks[name + "_cpu_seconds"] = time.process_time() - c

if "simulate" in phases:
    step("first_simulate", lambda: pp.simulate(model, regimen, times=times, covariates=covariates))
    step("warm_simulate", lambda: pp.simulate(model, regimen, times=times, covariates=covariates))
if "lockstep" in phases:
    batch = lambda: pp.simulate_batch(model, regimen, times=times, n=32, solver=pp.DormandPrince853(),
        execution="lockstep", covariates=None if covariates is None else {k: np.full(32, v) for k, v in covariates.items()})
    step("first_lockstep", batch)
    step("warm_lockstep", batch)
marks["compiles"] = dict(sorted(compiles.items(), key=lambda kv: -kv[1])[:12])
marks["total_seconds"] = time.perf_counter() - t0
print(json.dumps(marks))
"""


def child(model: str, regimen: str, phases: str, cache: str) -> dict:
    env = {**os.environ, "PLATELETPD_CACHE_DIR": cache}
    done = subprocess.run([sys.executable, "-c", CHILD, model, regimen, phases], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_start",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    documents = []
    for model in args.models.split(","):
        if model not in MODELS:
            parser.error(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
        with tempfile.TemporaryDirectory(prefix="ppd_cold_") as cache:
            load = os.getloadavg()
            started = time.strftime("%H:%M:%S")
            cold = child(model, MODELS[model], "simulate,lockstep", cache)
            cached = child(model, MODELS[model], "simulate,lockstep", cache)
        document = {"model": model, "regimen": MODELS[model], "started": started,
                    "load_before": load, "load_after": os.getloadavg(), "cold": cold,
                    "cached": {k: v for k, v in cached.items() if k != "compiles"}}
        print(json.dumps(document), flush=True)
        documents.append(document)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(documents, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
