"""Distributed execution on Dask (study/distributed.py): the same results as the local run
for the same seed whatever the workers and chunks, no chunk lost when a worker dies, kernels
loaded once per worker, clear errors for unusable clusters."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plateletpd.cli import main
from plateletpd.study import distributed
from plateletpd.study.distributed import (
    CohortJob,
    DistributedError,
    cluster,
    map_chunks,
    run_cohort,
    run_replicates,
    run_trials,
    run_trials_chunked,
)
from plateletpd.study.sweep import run_sweep
from plateletpd.study.trial import TrialSpec, run_trial
from plateletpd.study.trial import run_replicates as local_replicates

pytest.importorskip("distributed")

# A small two-arm trial of the bundled CIT model (docs/trial_files.md keys); 40 patients per
# arm, measurement error off: sizes chosen for a fast test, not from a study.
ARMS = [{"name": "untreated", "treatment": []},
        {"name": "hetrombopag", "treatment": ["hetrombopag 7.5 mg"], "max_days": 14}]


def small_trial(seed: int = 11, subjects: int = 40, population: dict | None = None,
                **extra) -> TrialSpec:
    return TrialSpec.create(arms=ARMS, seed=seed, subjects_per_arm=subjects,
                            follow_up_days=35, response={"threshold": 100, "by_day": 14},
                            population=population or {"cv": {"chemotherapy_sensitivity": 0.3,
                                                             "platelets_baseline": 0.2}},
                            enrolment={"entry_below": 75}, **extra)


def in_process(chunk: int):
    return lambda function, tasks, shared: map_chunks(function, tasks, None, shared=shared)


def assert_same_trial(expected, got) -> None:
    """Every table of a trial result equal bit for bit (NaN where NaN)."""
    for name in ("subjects", "summary", "differences", "screening"):
        pd.testing.assert_frame_equal(getattr(expected, name), getattr(got, name),
                                      check_exact=True)
    for arm, (days, courses) in expected.curves.items():
        np.testing.assert_array_equal(days, got.curves[arm][0])
        np.testing.assert_array_equal(courses, got.curves[arm][1])


@pytest.fixture(scope="module")
def client():
    """The issue's test cluster: a LocalCluster of 2 worker processes, 1 thread each."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with cluster(workers=2) as dask_client:
            yield dask_client


def test_chunks_in_process_reproduce_run_trial():
    # the chunked path (cohort drawn here, chunks reassembled in patient order) against
    # today's run_trial, for chunk sizes that split arms unevenly (7) and not at all (1000)
    spec = small_trial()
    expected = run_trial(spec)
    for chunk in (7, 1000):
        assert_same_trial(expected, run_trials_chunked([spec], in_process(chunk), chunk)[0])


def test_two_workers_bit_identical_to_local(client):
    spec = small_trial()
    expected = run_trial(spec)
    for chunk in (6, 25):  # 7 and 2 chunks per arm
        assert_same_trial(expected, run_trials([spec], client, chunk=chunk)[0])
    # replicates: the same seeds and summaries as trial.run_replicates
    replicated = TrialSpec.create(arms=ARMS[1:], seed=5, subjects_per_arm=20,
                                  follow_up_days=35, replicates=3,
                                  response={"threshold": 100, "by_day": 14},
                                  population={"cv": {"chemotherapy_sensitivity": 0.3}})
    pd.testing.assert_frame_equal(local_replicates(replicated),
                                  run_replicates(replicated, client, chunk=9),
                                  check_exact=True)
    # each worker loaded the one model's kernel once, however many chunks it ran
    assert set(client.run(distributed._loaded_kernels).values()) == {1}


def test_a_mixture_trial_on_two_workers_is_bit_identical_to_local(client):
    # [[population.mixture]] (population/variability.py): the groups travel with the spec
    # and each chunk reads its patients' groups from the arm's seed, so the workers and
    # chunk sizes give the local patients, groups and summaries (the group's spleen ratio
    # 5 and share 0.3 are sizes for a test, not from a study)
    spec = small_trial(population={
        "cv": {"chemotherapy_sensitivity": 0.3, "platelets_baseline": 0.2},
        "mixture": [{"name": "large spleen", "share": 0.3,
                     "typical": {"spleen_volume_ratio": 5.0}}]})
    expected = run_trial(spec)
    assert set(expected.subjects.population_group) == {"large spleen", "rest"}
    for chunk in (6, 25):
        assert_same_trial(expected, run_trials([spec], client, chunk=chunk)[0])


def test_parameter_uncertainty_replicates_on_cluster_match_local(client):
    from plateletpd.study.uncertainty import run_uncertainty

    spec = small_trial(subjects=16)  # the bundled fit's uncertainty (fit = "default")
    local = run_uncertainty(spec, 3)
    remote = run_uncertainty(spec, 3, client=client)
    for name in ("replicates", "draws", "intervals"):
        pd.testing.assert_frame_equal(getattr(local, name), getattr(remote, name),
                                      check_exact=True)


def test_predictive_check_on_cluster_matches_local(client):
    from plateletpd.study.check import check_trial
    from plateletpd.study.trial import bundled_trial, load_trial_spec

    # the bundled Yuan trial against its own rows (data/cit_summary.csv), 3 replicates
    spec = load_trial_spec(bundled_trial("yuan2025"), subjects=20)
    data = Path(__file__).resolve().parents[1] / "data" / "cit_summary.csv"
    local = check_trial(spec, data, replicates=3)
    remote = check_trial(spec, data, replicates=3, client=client)
    pd.testing.assert_frame_equal(local.table, remote.table, check_exact=True)
    pd.testing.assert_frame_equal(local.replicates, remote.replicates, check_exact=True)


def test_a_given_client_is_used_and_left_open(client):
    with cluster(scheduler=client) as same:
        assert same is client
    assert client.status == "running"  # the caller's client, not closed by us
    # every worker runs this plateletpd version (checked on connect)
    from plateletpd._version import __version__
    assert set(distributed.check_workers(client).values()) == {__version__}


def test_sensitivity_and_dose_search_on_cluster_match_local(client):
    from plateletpd.study.optimisation import DoseSearch, optimise_dose
    from plateletpd.study.sensitivity import Factor, run_sensitivity

    spec = small_trial(subjects=16)
    factors = [Factor("dose", 2.5, 15.0), Factor("cv:platelets_baseline", 0.1, 0.3)]
    local = run_sensitivity(spec, "hetrombopag", factors, method="morris", samples=4)
    remote = run_sensitivity(spec, "hetrombopag", factors, method="morris", samples=4,
                             client=client, chunk=5)
    pd.testing.assert_frame_equal(local.samples, remote.samples, check_exact=True)
    pd.testing.assert_frame_equal(local.indices, remote.indices, check_exact=True)
    search = DoseSearch("hetrombopag", doses=(5.0, 20.0), durations=(7,), target_pct=1.0)
    local = optimise_dose(spec, search, replicates=2)
    remote = optimise_dose(spec, search, replicates=2, client=client, chunk=7)
    assert local.best == remote.best
    pd.testing.assert_frame_equal(local.curve, remote.curve, check_exact=True)


def test_sweep_cells_on_cluster_match_local(client):
    spec = small_trial(subjects=30)
    grid = {"dose": [2.5, 7.5], "start_delay": [0.0, 2.0]}
    expected = run_sweep(spec, grid, ["hetrombopag"])
    got = run_sweep(spec, grid, ["hetrombopag"], client=client, chunk=8)
    pd.testing.assert_frame_equal(expected, got, check_exact=True)
    # common random numbers: every cell enrolled from the same screened patients
    assert got.screened.nunique() == 1


def test_endpoint_cohort_same_for_any_chunk_and_cluster(client):
    from plateletpd.model.definition import load_model
    from plateletpd.population.variability import Variability

    model = load_model("friberg_platelets")
    name = next(iter(model.parameters))
    job = CohortJob(model, ("cytotoxic 100 mg qd d1-5", "cytotoxic 50 mg qd d1-5"), n=5000,
                    variability=Variability.from_cv({name: 0.3}), seed=3, days=21)
    table, subjects = run_cohort(job, None, chunk=5000, keep_subjects=True)
    for chunk, where in ((997, None), (1234, client)):
        other, other_subjects = run_cohort(job, where, chunk=chunk, keep_subjects=True)
        pd.testing.assert_frame_equal(table, other, check_exact=True)
        for regimen in job.regimens:
            np.testing.assert_array_equal(subjects[regimen], other_subjects[regimen])
    # block-seeded draws: patients 4090..4100 straddle two blocks and equal the full draw's
    full = distributed.cohort_eta(job.variability, 3, 0, 2 * distributed.BLOCK)
    np.testing.assert_array_equal(distributed.cohort_eta(job.variability, 3, 4090, 4100),
                                  full[4090:4100])
    # the higher dose gives the lower mean nadir (cytotoxic drug: a dose-response check)
    assert table.mean_nadir[0] < table.mean_nadir[1]


@pytest.mark.slow  # starts its own cluster and kills a worker: about 30 s
def test_worker_killed_mid_run_loses_no_chunk():
    # its own cluster: this test kills one of its workers (the nanny starts another)
    spec = small_trial(subjects=120)
    expected = run_trial(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with cluster(workers=2) as dask_client:
            pids = dask_client.run(os.getpid)
            outcome = {}
            runner = threading.Thread(target=lambda: outcome.setdefault(
                "result", run_trials([spec], dask_client, chunk=3)[0]))
            runner.start()

            def finished(dask_scheduler):  # chunks done (not the shared inputs)
                return sum(task.state == "memory" and str(task.key).startswith(
                    "trial_chunk") for task in dask_scheduler.tasks.values())
            deadline = time.time() + 120
            while dask_client.run_on_scheduler(finished) < 2 and time.time() < deadline:
                time.sleep(0.05)
            done_at_kill = dask_client.run_on_scheduler(finished)

            def holders(dask_scheduler):  # the workers holding each shared input
                return [[worker.address for worker in task.who_has or ()]
                        for task in dask_scheduler.tasks.values()
                        if str(task.key).startswith("shared_value")]
            held = [address for addresses in dask_client.run_on_scheduler(holders)
                    for address in addresses]
            # kill a worker that holds shared inputs (the trial spec, patients): with
            # scattered data, whose last copy is lost for good, this run never finished
            victim = pids[max(set(held), key=held.count)] if held else min(pids.values())
            os.kill(victim, signal.SIGKILL)
            runner.join(timeout=300)
            assert "result" in outcome, "the run did not finish after a worker was killed"
            assert victim not in dask_client.run(os.getpid).values()
    # the kill came while chunks were still to run: 2 arms x 40 chunks of 3 patients
    assert done_at_kill < 80
    assert_same_trial(expected, outcome["result"])


def test_unreachable_scheduler_is_a_clear_error(capsys):
    with pytest.raises(DistributedError, match="cannot reach the Dask scheduler"), cluster(scheduler="tcp://127.0.0.1:9", timeout=1):
        pass
    with pytest.raises(DistributedError, match="not both"), cluster(scheduler="tcp://127.0.0.1:9", workers=2):
        pass
    with pytest.raises(DistributedError, match="whole number >= 1"), cluster(workers=0):
        pass
    status = main(["sweep", "yuan2025", "--grid", "dose=5", "--n", "10", "--scheduler",
                   "tcp://127.0.0.1:9"])
    assert status == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err


def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import now fails
    with pytest.raises(DistributedError, match=r"plateletpd\[scale\]"), cluster(workers=2):
        pass
    # without a cluster nothing needs dask: today's execution
    with cluster() as nothing:
        assert nothing is None


def test_bad_chunk_is_a_clear_error():
    with pytest.raises(DistributedError, match="chunk must be a whole number"):
        run_trials_chunked([small_trial()], in_process(0), 0)


@pytest.mark.slow  # a small fit first (about 80 objective evaluations)
def test_profile_refits_on_cluster_match_local(client, tmp_path):
    from test_fitting import make_synthetic

    from plateletpd.inference.fitting import profile, run_fit

    folder = make_synthetic(tmp_path, noise_seed=11)
    problem, result, _ = run_fit(folder / "config.toml", verbose=False,
                                 profile_parameters=False)
    local = profile(problem, result, "gamma", points=4)
    assert profile(problem, result, "gamma", points=4, client=client) == local


@pytest.mark.slow  # the command starts its own 2-worker cluster
def test_trial_command_on_workers_writes_the_same_patients(tmp_path):
    local, remote = tmp_path / "local", tmp_path / "workers"
    assert main(["trial", "yuan2025", "--n", "16", "--seed", "2", "--out", str(local)]) == 0
    assert main(["trial", "yuan2025", "--n", "16", "--seed", "2", "--workers", "2",
                 "--chunk", "5", "--out", str(remote)]) == 0
    for name in ("patients.csv", "summary.csv", "differences.csv"):
        assert (local / name).read_bytes() == (remote / name).read_bytes()


def test_a_trial_that_enrols_nobody_is_raised_or_returned_in_its_place():
    # replicate trials with drawn parameters ask for "error": the empty trial's error in its
    # place, the other trials unchanged (study/uncertainty.py leaves it out and says so)
    from plateletpd.study.trial import NobodyEnrolledError

    spec = small_trial()
    empty = TrialSpec.create(arms=ARMS, seed=11, subjects_per_arm=40, follow_up_days=35,
                             response={"threshold": 100, "by_day": 14},
                             population={"cv": {"chemotherapy_sensitivity": 0.3}},
                             enrolment={"entry_below": 1})  # nobody falls below 1
    with pytest.raises(NobodyEnrolledError, match="enrolled none"):
        run_trials_chunked([spec, empty], in_process(25), 25)
    first, second = run_trials_chunked([spec, empty], in_process(25), 25, empty="error")
    assert_same_trial(run_trial(spec), first)
    assert isinstance(second, NobodyEnrolledError)
    assert isinstance(run_trials([spec, empty], empty="error")[1], NobodyEnrolledError)
    with pytest.raises(DistributedError, match="empty must be"):
        run_trials([spec], empty="skip")


def test_a_drawn_study_recruits_to_size_on_the_cluster(client, monkeypatch):
    # a check on a cluster reruns a short replicate there too (not in this process), with
    # the same result as the local rerun (the same seed, more screened)
    from plateletpd.study import trial
    from plateletpd.study.check import recruit_to_size

    spec = TrialSpec.create(seed=3, model="cit_thrombopoiesis", subjects_per_arm=20,
                            arms=[{"name": "untreated"}], enrolment={"entry_below": 30},
                            population={"cv": {"chemotherapy_sensitivity": 0.3},
                                        "typical": {"chemotherapy_sensitivity": 5.0}},
                            response={"threshold": 100, "by_day": 14})
    short = run_trial(spec)  # 7 of 20 enrol (tests/test_predictive_check.py)
    local, reran = recruit_to_size(short, {"untreated": 20})
    assert reran == 1

    def refused(*args, **kwargs):
        raise AssertionError("the rerun ran in this process, not on the cluster")

    monkeypatch.setattr(trial, "run_trial", refused)
    remote, reran = recruit_to_size(short, {"untreated": 20}, client)
    assert reran == 1
    assert_same_trial(local, remote)
