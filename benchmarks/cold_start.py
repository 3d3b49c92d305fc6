"""``python -m benchmarks.cold_start``: time to first result on an empty kernel cache (issue 18
item 5), per model, and what numba compiles in that time.

For each model (the bundled ones, and ``small``: the two-state test model
tests/models/one_compartment.toml, standing for a user's new small model), a fresh Python
process with an empty ``PLATELETPD_CACHE_DIR`` and ``NUMBA_CACHE_DIR`` runs: import
plateletpd; the first ``simulate()`` (DormandPrince5, the default; this compiles the
one-subject kernel of that method); a second one (warm); the first batch of 32 subjects
in parallel (a trial's patients, DormandPrince5) and a warm one; the first lock-step
``simulate_batch`` (32 subjects, DormandPrince853, ``execution="lockstep"``: compiles the
lock-step driver); a second one. Then a fresh process on the now filled cache repeats them
(the disk cache's load time). numba's compile events (``numba.core.event``) give the seconds
spent compiling each function of each phase, listed longest first (nested compilations are
included in their callers' times, so a list does not add up to its total).

``--used-installation`` first runs another model (the transit-chain test model) on the same
empty caches, untimed, so the measured model is new to an installation that has run
plateletpd before: its generic integrator (:func:`plateletpd.numerics.kernels.generic_kernel`)
and vectormath are cached, its own kernel is not.

``--repeat N`` makes N cold runs per model (models interleaved, each on its own empty cache)
and ends with a table of medians. Prints one JSON document per run (and writes them all to
``--out``). CPU time is measured with ``time.process_time`` in the child (the measure to
compare on a shared host); wall time and load averages are recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: A new small model (a test fixture: two states, oral and IV doses) and the bundled models.
SMALL_MODEL = str(Path(__file__).resolve().parent.parent / "tests" / "models" /
                  "one_compartment.toml")
#: The model a "used installation" ran before (``--used-installation``): a third model, so
#: its kernel is not the measured model's, while the generic integrator and plateletpd's own
#: compiled functions (vectormath) are cached.
PREVIOUS_MODEL = str(Path(SMALL_MODEL).with_name("transit_chain.toml"))
MODELS = {SMALL_MODEL: "oral 100 mg qd d1-3",
          "friberg_platelets": "cytotoxic 100 mg qd d1-14",
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
    compiles.clear()
    c, t = time.process_time(), time.perf_counter()
    run()
    marks[name + "_seconds"] = time.perf_counter() - t
    marks[name + "_cpu_seconds"] = time.process_time() - c
    if compiles:
        marks[name + "_compiles"] = dict(sorted(compiles.items(), key=lambda kv: -kv[1])[:12])

if "simulate" in phases:
    step("first_simulate", lambda: pp.simulate(model, regimen, times=times, covariates=covariates))
    step("warm_simulate", lambda: pp.simulate(model, regimen, times=times, covariates=covariates))
if "batch" in phases:  # a trial's patients: subjects in parallel, the default DormandPrince5
    subjects = lambda: pp.simulate_batch(model, regimen, times=times, n=32,
        covariates=None if covariates is None else {k: np.full(32, v) for k, v in covariates.items()})
    step("first_batch", subjects)
    step("warm_batch", subjects)
if "lockstep" in phases:
    batch = lambda: pp.simulate_batch(model, regimen, times=times, n=32, solver=pp.DormandPrince853(),
        execution="lockstep", covariates=None if covariates is None else {k: np.full(32, v) for k, v in covariates.items()})
    step("first_lockstep", batch)
    step("warm_lockstep", batch)
marks["total_seconds"] = time.perf_counter() - t0
print(json.dumps(marks))
"""


def child(model: str, regimen: str, phases: str, cache: str) -> dict:
    # both caches in the temporary folder: numba's own (NUMBA_CACHE_DIR) holds the compiled
    # code of plateletpd's @njit functions outside kernels too (vectormath), so a cold run
    # compiles those as a new installation would
    env = {**os.environ, "PLATELETPD_CACHE_DIR": cache,
           "NUMBA_CACHE_DIR": str(Path(cache) / "numba"),
           "PLATELETPD_GENERIC_INTEGRATOR": "auto"}  # a user's default (benchmarks/__init__.py)
    done = subprocess.run([sys.executable, "-c", CHILD, model, regimen, phases], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_start",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated; 'small' is the one-compartment test model")
    parser.add_argument("--repeat", type=int, default=1,
                        help="cold runs per model (each on its own empty cache); the summary "
                             "gives their medians")
    parser.add_argument("--used-installation", action="store_true",
                        help="before each cold run, run another model (the transit-chain test "
                             "model) on the same empty caches, untimed: a new model on an "
                             "installation that has run plateletpd before")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    models = [SMALL_MODEL if model == "small" else model for model in args.models.split(",")]
    for model in models:
        if model not in MODELS:
            parser.error(f"unknown model {model!r}; choose from small, {', '.join(MODELS)}")
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    documents = []
    for round_ in range(args.repeat):  # models interleaved: a load change hits them alike
        for model in models:
            with tempfile.TemporaryDirectory(prefix="ppd_cold_") as cache:
                load = os.getloadavg()
                if args.used_installation:
                    child(PREVIOUS_MODEL, "", "simulate,batch,lockstep", cache)
                started = time.strftime("%H:%M:%S")
                cold = child(model, MODELS[model], "simulate,batch,lockstep", cache)
                cached = child(model, MODELS[model], "simulate,batch,lockstep", cache)
            document = {"model": model, "round": round_, "regimen": MODELS[model],
                        "installation": "used" if args.used_installation else "new",
                        "started": started, "load_before": load,
                        "load_after": os.getloadavg(), "cold": cold,
                        "cached": {k: v for k, v in cached.items()
                                   if not k.endswith("compiles")}}
            print(json.dumps(document), flush=True)
            documents.append(document)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(documents, indent=1))
    print(summary(documents))
    return 0


def summary(documents: list[dict]) -> str:
    """Medians per model over the cold runs: CPU seconds of the first ``simulate()`` and of
    the first lock-step cohort, their sum, and the wall seconds of a first ``simulate()`` and
    a warm one in a fresh process on the filled cache."""
    rows = ["model | runs | first simulate() CPU s | first batch (a trial's patients) CPU s | "
            "first lock-step CPU s | both CPU s | "
            "filled cache: first simulate() wall s | warm simulate() wall s"]
    for model in dict.fromkeys(d["model"] for d in documents):
        runs = [d for d in documents if d["model"] == model]

        def median(values):
            return statistics.median(values)

        simulate = median([d["cold"]["first_simulate_cpu_seconds"] for d in runs])
        batch = median([d["cold"].get("first_batch_cpu_seconds", float("nan")) for d in runs])
        lockstep = median([d["cold"]["first_lockstep_cpu_seconds"] for d in runs])
        both = median([d["cold"]["first_simulate_cpu_seconds"]
                       + d["cold"]["first_lockstep_cpu_seconds"] for d in runs])
        cached = median([d["cached"]["first_simulate_seconds"] for d in runs])
        warm = median([d["cold"]["warm_simulate_seconds"] for d in runs])
        rows.append(f"{Path(model).stem} | {len(runs)} | {simulate:.1f} | {batch:.1f} | "
                    f"{lockstep:.1f} | "
                    f"{both:.1f} | {cached:.2f} | {warm:.3f}")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
