"""Distributed execution on Dask: trials, replicates, sweep cells and endpoint cohorts split
into chunks of patients (by index in the cohort) and run on a ``dask.distributed`` cluster.

Where the work runs:

* neither a scheduler nor workers: today's execution, in this process (numba threads over
  patients; :func:`plateletpd.study.trial.run_trial` as it is);
* ``workers=N`` (``--workers N``): a :class:`distributed.LocalCluster` of N worker processes
  started for the run (one Dask thread each; numba threads = cores / N);
* ``scheduler="tcp://host:8786"`` (``--scheduler``) or a :class:`distributed.Client`: an
  existing cluster. Workers need the same plateletpd version (checked on connect).

Reproducibility. A chunk is a range of patient indices in an arm's cohort; everything random
about a patient derives from the trial seed, the arm and the patient's index (the cohort is
drawn in patient order, as :func:`plateletpd.study.trial._cohort` draws it, here in this
process, and each chunk is sent its rows; measurement errors and between-cycle exposures come
from streams keyed by patient index), and trials integrate each patient on its own (DOPRI5,
``execution="subjects"``), so a patient's course does not depend on which chunk or worker ran
it. Chunks are reassembled in patient order, so the results (patients, summaries,
differences) are bit-identical to the local run for the same seed whatever the number of
workers and the chunk size (tests/test_distributed.py).

Failures. Every chunk is a Dask task with ``retries``; a worker that dies mid-run (killed,
out of memory) has its chunks recomputed on the others (Dask's own bookkeeping), so no chunk
is lost and the result does not change.

Kernels. A worker compiles (or loads from the numba disk cache) a model's kernel the first
time it runs one of its chunks and keeps it for the rest of its life
(:func:`plateletpd.numerics.kernels.compile_kernel`); :func:`warm_workers` does this up front
on every worker and reports how long each took.

Dask and SALib are an optional extra: ``pip install "plateletpd[scale]"``; the rest of
plateletpd imports without them.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from plateletpd.io.display import progress as show_progress
from plateletpd.io.display import progress_end
from plateletpd.errors import PlateletPDError
from plateletpd.study.trial import (
    CHUNK,
    KEPT_TRAJECTORIES,
    TrialResult,
    TrialSpec,
    _arm_seed,
    _cohort,
    assemble_arm,
    assemble_trial,
    relative_days,
    run_trial,
    trial_chunk,
)

#: how to install the optional packages this module needs
EXTRA = 'pip install "plateletpd[scale]"'
#: times Dask reruns a chunk whose task raised or whose worker died
RETRIES = 3


class DistributedError(PlateletPDError):
    """A cluster that cannot be used: unreachable scheduler, bad worker count, workers
    without plateletpd, a missing optional package."""


def optional(module: str, purpose: str):
    """Import an optional package (dask.distributed, SALib) or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise DistributedError(f"{purpose} needs the optional package {module.split('.')[0]} "
                               f"({error}); install it with {EXTRA}") from None


# ------------------------------------------------------------------------------ clusters
def check_cluster_options(scheduler: Any = None, workers: int | None = None) -> None:
    """Refuse both a scheduler and workers, or a worker count that is not a whole number >= 1."""
    if scheduler is not None and workers is not None:
        raise DistributedError("give either a scheduler address (an existing cluster) or a "
                               "number of workers (a local cluster started for the run), not "
                               "both")
    if workers is not None and (isinstance(workers, bool) or not isinstance(
            workers, (int, np.integer)) or workers < 1):
        raise DistributedError(f"workers must be a whole number >= 1 (worker processes of a "
                               f"local cluster), got {workers!r}")
    if scheduler is not None and isinstance(scheduler, str) and not scheduler.strip():
        raise DistributedError("the scheduler address is empty; give one like "
                               "tcp://10.0.0.5:8786 (printed by `dask scheduler`)")


@contextlib.contextmanager
def cluster(scheduler: Any = None, workers: int | None = None, *, timeout: float = 10.0,
            threads_per_worker: int = 1) -> Iterator[Any]:
    """The client to run on (closed on exit), or None for today's in-process execution.

    ``scheduler``: an address (``tcp://host:8786``) of a running scheduler, or a
    :class:`distributed.Client` (used as given, not closed); ``workers``: the number of worker
    processes of a :class:`distributed.LocalCluster` started here (numba threads per worker:
    the cores divided among them). An unreachable scheduler is a :class:`DistributedError`
    after ``timeout`` seconds.
    """
    check_cluster_options(scheduler, workers)
    if scheduler is None and workers is None:
        yield None
        return
    distributed = optional("distributed", "running on a Dask cluster")
    if isinstance(scheduler, distributed.Client):
        check_workers(scheduler)
        yield scheduler
        return
    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            address = str(scheduler).strip()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    client = distributed.Client(address, timeout=f"{timeout}s",
                                                set_as_default=False)
            except (OSError, TimeoutError, ValueError) as error:
                raise DistributedError(
                    f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s "
                    f"({type(error).__name__}: {error}); check the address and port (`dask "
                    f"scheduler` prints it) and that this machine can reach it, or run on a "
                    f"local cluster with --workers N") from None
        else:
            threads = max(1, (os.cpu_count() or 1) // int(workers))
            try:
                local = stack.enter_context(distributed.LocalCluster(
                    n_workers=int(workers), threads_per_worker=threads_per_worker,
                    processes=True, dashboard_address=None,
                    env={"NUMBA_NUM_THREADS": str(threads)}))
            except (RuntimeError, OSError) as error:
                raise DistributedError(
                    f"could not start a local Dask cluster of {workers} worker processes "
                    f"({error}); in a script, start it under `if __name__ == "
                    f"\"__main__\":` (worker processes re-import the main module)"
                    ) from None
            client = distributed.Client(local, set_as_default=False)
        stack.callback(client.close)
        check_workers(client)
        yield client


def _worker_version() -> str:
    from plateletpd._version import __version__

    return __version__


def check_workers(client, wait: float = 30.0) -> dict[str, str]:
    """Every worker's plateletpd version; an error if there are none (after ``wait``
    seconds) or a worker lacks plateletpd or runs another version."""
    from plateletpd._version import __version__

    try:
        client.wait_for_workers(1, timeout=wait)
    except (TimeoutError, OSError):
        raise DistributedError(f"the Dask cluster at {client.scheduler.address} has no "
                               f"workers (waited {wait:g} s); start some with `dask worker "
                               f"{client.scheduler.address}`") from None
    try:
        versions = client.run(_worker_version)
    except ImportError as error:
        raise DistributedError(f"a Dask worker cannot import plateletpd ({error}); install "
                               f"plateletpd {__version__} in every worker's environment"
                               ) from None
    other = {w: v for w, v in versions.items() if v != __version__}
    if other:
        raise DistributedError(f"Dask workers run another plateletpd version than this "
                               f"process ({__version__}): {other}; install the same version "
                               f"everywhere")
    return versions


def _load_kernel(model) -> float:
    from plateletpd.numerics.kernels import compile_kernel

    started = time.perf_counter()
    compile_kernel(model)
    return time.perf_counter() - started


def warm_workers(client, models: Sequence) -> dict[str, float]:
    """Load (compiling, or from the disk cache) each model's kernel on every worker now, not
    inside the first chunks; seconds per worker. A worker keeps a kernel once loaded."""
    seconds: dict[str, float] = {}
    for model in models:  # a worker lost meanwhile is skipped: its chunks load it later
        for worker, value in client.run(_load_kernel, model, on_error="ignore").items():
            seconds[worker] = seconds.get(worker, 0.0) + value
    return seconds


def _loaded_kernels() -> int:
    from plateletpd.numerics import kernels

    return len(kernels._LOADED)


# ------------------------------------------------------------------------------ mapping
class Progress:
    """A one-line progress display on standard error (``label: done/total chunks, s``)."""

    def __init__(self, label: str, total: int, show: bool, unit: str = "chunks"):
        self.label, self.total, self.show, self.unit = label, total, show, unit
        self.done, self.started = 0, time.perf_counter()

    def step(self) -> None:
        self.done += 1
        if self.show:
            elapsed = time.perf_counter() - self.started
            left = elapsed / self.done * (self.total - self.done)
            show_progress(f"  {self.label}: {self.done}/{self.total} {self.unit}, "
                          f"{elapsed:.1f} s (about {left:.0f} s left)")
            if self.done == self.total:
                progress_end()


def map_chunks(function: Callable, tasks: Sequence[tuple], client=None, *,
               progress: bool = False, label: str = "chunks", shared: dict | None = None
               ) -> list:
    """``[function(*task) for task in tasks]``, in order. Without a client in this process;
    with one, one Dask task per chunk (``retries``: a chunk whose worker died is rerun).

    ``shared``: values many tasks use (a trial spec), sent to the cluster once; a task names
    one as ``Shared(key)``.
    """
    meter = Progress(label, len(tasks), progress)
    if client is None:
        results = []
        for task in tasks:
            results.append(function(*[shared[a.key] if isinstance(a, Shared) else a
                                      for a in task]))
            meter.step()
        return results
    distributed = optional("distributed", "running on a Dask cluster")
    futures_of = {}
    if shared:
        # each shared input is a task holding its value, not scattered data: the scheduler
        # keeps the value, so one lost with its worker is recomputed. (Scattered data is
        # lost for good, and extra copies do not help: Dask's memory manager drops replicas
        # it thinks unneeded.)
        futures_of = {key: client.submit(shared_value, value, pure=False)
                      for key, value in shared.items()}
    futures = [client.submit(function, *[futures_of[a.key] if isinstance(a, Shared) else a
                                         for a in task], retries=RETRIES, pure=False)
               for task in tasks]
    position = {future.key: i for i, future in enumerate(futures)}
    results: list = [None] * len(futures)
    try:
        for future in distributed.as_completed(futures, loop=client.loop):
            results[position[future.key]] = future.result()
            meter.step()
    finally:
        for future in futures:
            future.release()
    return results


def shared_value(value):
    """The task that holds one shared input of :func:`map_chunks`."""
    return value


@dataclass(frozen=True)
class Shared:
    """A task argument sent to the cluster once (see :func:`map_chunks`)."""

    key: Any


# ------------------------------------------------------------------------------ trials
def run_trials(specs: Sequence[TrialSpec], client=None, *, chunk: int = CHUNK,
               progress: bool = False, label: str = "trials", empty: str = "raise"
               ) -> list:
    """Every trial of ``specs`` (sweep cells, replicates, sensitivity samples), each arm in
    chunks of ``chunk`` patients, all chunks of all trials at once on the cluster.

    Without a client each trial is :func:`plateletpd.study.trial.run_trial` (today's
    execution); with one the results are bit-identical to it. ``empty``: what a trial with
    an arm that enrolled nobody gives: ``"raise"`` (its
    :class:`~plateletpd.study.trial.NobodyEnrolledError`) or ``"error"`` (that error in
    the trial's place in the list, for the caller to count).
    """
    if empty not in ("raise", "error"):
        raise DistributedError(f"empty must be 'raise' or 'error', got {empty!r}")
    if client is None:
        results = []
        meter = Progress(label, len(specs), progress, "trials")
        for spec in specs:
            results.append(_or_error(lambda: run_trial(spec), empty))
            meter.step()
        return results
    models = {spec.model.source: spec.model for spec in specs}  # one kernel per structure
    started = time.perf_counter()
    loaded = warm_workers(client, list(models.values()))
    if progress:
        print(f"  kernels loaded on {len(loaded)} workers in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    return run_trials_chunked(specs, lambda f, t, s: map_chunks(
        f, t, client, progress=progress, label=label, shared=s), chunk, empty)


def _or_error(run: Callable, empty: str):
    """``run()``, or (``empty == "error"``) the NobodyEnrolledError it raised."""
    from plateletpd.study.trial import NobodyEnrolledError

    try:
        return run()
    except NobodyEnrolledError as error:
        if empty == "raise":
            raise
        return error


def run_trials_chunked(specs: Sequence[TrialSpec], mapper: Callable, chunk: int = CHUNK,
                       empty: str = "raise") -> list:
    """:func:`run_trials` with any ``mapper(function, tasks, shared)``: the cohorts are drawn
    here, each chunk of patient indices becomes a task, the results are reassembled in
    patient order exactly as :func:`plateletpd.study.trial.run_trial` assembles them."""
    if not isinstance(chunk, (int, np.integer)) or isinstance(chunk, bool) or chunk < 1:
        raise DistributedError(f"chunk must be a whole number of patients >= 1, got "
                               f"{chunk!r}")
    from plateletpd.limits import check_subjects
    from plateletpd.simulation.simulate import _valid_rows
    from plateletpd.study.trial import _BYTES_PER_PATIENT

    tasks, plans, shared, cohorts = [], [], {}, {}
    for number, spec in enumerate(specs):
        shared[number] = spec
        relative = relative_days(spec)
        for index, design in enumerate(spec.arms):
            check_subjects(spec.subjects_per_arm, _BYTES_PER_PATIENT + 8.0 * (
                len(spec.model.parameters) + 2 * len(spec.variability.names)),
                f"trial arm {design.name!r} (parameters and per-patient endpoints)")
            arm = 0 if spec.extra.get("design") == "paired" else index
            key = (id(spec.model), id(spec.variability), spec.seed, arm,
                   spec.subjects_per_arm, tuple(sorted(dict(spec.covariates).items())))
            if key not in cohorts:  # sweep cells share their patients: drawn once
                matrix = _cohort(spec, index)
                cohorts[key] = (len(cohorts), matrix, _valid_rows(spec.model, matrix))
            cohort, matrix, valid = cohorts[key]
            first_task = len(tasks)
            for first in range(0, len(matrix), chunk):
                part = ("patients", cohort, first)  # sent once, whatever uses it
                if part not in shared:
                    rows = np.arange(first, min(first + chunk, len(matrix)))
                    chosen = rows[valid[rows]]
                    shared[part] = (matrix[chosen], chosen)
                tasks.append((Shared(number), index, Shared(part),
                              max(0, KEPT_TRAJECTORIES - first), relative))
            plans.append((number, index, design, matrix, valid, first_task, len(tasks),
                          relative))
    outcomes = mapper(trial_chunk, tasks, shared)
    arms: dict[int, list] = {}
    for number, index, design, matrix, valid, start, stop, _ in plans:
        arms.setdefault(number, []).append(_or_error(lambda: assemble_arm(
            specs[number], design, matrix, valid, outcomes[start:stop], stacklevel=4),
            empty))
    results = []
    for number in range(len(specs)):
        failed = [arm for arm in arms[number] if isinstance(arm, Exception)]
        results.append(failed[0] if failed else assemble_trial(
            specs[number], arms[number], relative_days(specs[number])))
    return results


def run_replicates(spec: TrialSpec, client=None, *, chunk: int = CHUNK,
                   progress: bool = False, power: bool = False):
    """:func:`plateletpd.study.trial.run_replicates` with every replicate's chunks on the
    cluster at once (the same seeds, the same table). ``power``: also each arm's power
    against the arm it is compared with (:func:`plateletpd.study.trial.replicate_power`),
    returned as ``(table, power)``."""
    from plateletpd.study.trial import replicate_power

    replicates = spec.extra.get("replicates", 1)
    seeds = [_arm_seed(spec.seed, 10_000 + replicate) for replicate in range(replicates)]
    results = run_trials([replace(spec, seed=seed) for seed in seeds], client, chunk=chunk,
                         progress=progress, label="replicates")
    frames = []
    for replicate, (seed, result) in enumerate(zip(seeds, results)):
        summary = result.summary.reset_index()
        summary.insert(0, "replicate", replicate)
        summary.insert(1, "seed", seed)
        frames.append(summary)
    table = pd.concat(frames, ignore_index=True)
    if power:
        return table, replicate_power([result.differences for result in results])
    return table


# ------------------------------------------------------------------------------ cohorts
#: patients per block of random effects: block b's draws come from the stream seeded by
#: (seed, b), so any range of patients is drawn without drawing the ones before it
BLOCK = 4096
#: per-subject endpoints of an endpoint cohort (registry definitions; day 0 = first dose)
COHORT_ENDPOINTS = ("nadir", "days_below_50", "day14", "recovery_days")


@dataclass(frozen=True)
class CohortJob:
    """An endpoints-only cohort sweep: ``n`` virtual patients per regimen (the same patients
    in every regimen), simulated over ``days`` with output once a day."""

    model: Any
    regimens: tuple[str, ...]
    n: int
    variability: Any
    seed: int
    days: int = 28
    rtol: float = 1e-4


def cohort_eta(variability, seed: int, first: int, stop: int) -> np.ndarray:
    """Random effects of patients ``first``..``stop - 1``: block-seeded, so the same
    patients whatever the chunks that ask for them."""
    blocks = range(first // BLOCK, (stop - 1) // BLOCK + 1)
    eta = np.concatenate([variability.eta(BLOCK, _arm_seed(seed, 1_000_000 + b))
                          for b in blocks])
    offset = blocks[0] * BLOCK
    return eta[first - offset:stop - offset]


def _cohort_chunk(job: CohortJob, regimen: str, first: int, stop: int) -> np.ndarray:
    """Endpoints (patients x :data:`COHORT_ENDPOINTS`) of patients first..stop-1."""
    from plateletpd.numerics.solvers import DormandPrince853
    from plateletpd.population.variability import cohort_matrix
    from plateletpd.simulation.simulate import simulate_batch
    from plateletpd.study.endpoints import ENDPOINTS, Courses

    model = job.model
    base = model.parameter_vector({}, {})
    matrix = cohort_matrix(model, base, job.variability,
                           cohort_eta(job.variability, job.seed, first, stop))
    names = model.parameter_names + model.covariate_names
    varied = {name: matrix[:, names.index(name)] for name in job.variability.names}
    batch = simulate_batch(model, regimen, times=np.arange(job.days + 1.0), params=varied,
                           solver=DormandPrince853(rtol=job.rtol, atol=job.rtol * 1e-3),
                           execution="subjects")
    counts = batch.output("platelets")
    courses = Courses(np.arange(job.days + 1.0), counts, np.zeros(len(counts)))
    day14 = ENDPOINTS["plt_count"].values(replace(courses, day=14.0))
    below = ENDPOINTS["duration_below_days"].values(replace(courses, level=50.0))
    return np.column_stack([ENDPOINTS["nadir_plt"].values(courses), below, day14,
                            ENDPOINTS["recovery_days"].values(courses),
                            (batch.status != 0).astype(float)])


def cohort_tasks(job: CohortJob, chunk: int) -> list[tuple]:
    return [(Shared("job"), regimen, first, min(first + chunk, job.n))
            for regimen in job.regimens for first in range(0, job.n, chunk)]


def run_cohort(job: CohortJob, client=None, *, chunk: int = 10_000, progress: bool = False,
               keep_subjects: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, dict]:
    """One row per regimen: means of the endpoints over the cohort and failed patients
    (with ``keep_subjects`` also the per-patient endpoints by regimen). Identical for any
    chunk size and any cluster: the sums are taken over the whole cohort in patient order."""
    if not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise DistributedError(f"chunk must be a whole number of patients >= 1, got "
                               f"{chunk!r}")
    tasks = cohort_tasks(job, chunk)
    parts = map_chunks(_cohort_chunk, tasks, client, progress=progress, label="cohort",
                       shared={"job": job})
    per_regimen = math.ceil(job.n / chunk)
    rows, subjects = [], {}
    for r, regimen in enumerate(job.regimens):
        values = np.concatenate(parts[r * per_regimen:(r + 1) * per_regimen])
        row = {"regimen": regimen, "patients": job.n,
               "failed": int(values[:, -1].sum())}
        for k, name in enumerate(COHORT_ENDPOINTS):
            row[f"mean_{name}"] = float(np.nanmean(values[:, k]))
        rows.append(row)
        if keep_subjects:
            subjects[regimen] = values
    table = pd.DataFrame(rows)
    return (table, subjects) if keep_subjects else table
