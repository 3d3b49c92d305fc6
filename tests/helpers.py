"""Helpers shared by test modules (imported as ``helpers``: pytest puts tests/ on the path)."""

from __future__ import annotations

import contextlib

import numba
import pytest


@contextlib.contextmanager
def numba_threads(count: int):
    """Run the block with ``count`` numba threads (at most the configured number)."""
    before = numba.get_num_threads()
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def with_one_and_two_threads(run):
    """``run()``'s result on one numba thread and on two: a seed's result must not depend on
    the thread count."""
    with numba_threads(1):
        one = run()
    with numba_threads(2):
        two = run()
    return one, two


def one_cycle(text: str) -> str:
    """trials/yuan2025.toml enrols pretreated patients through a two-cycle course; the cases
    below check the one-cycle ``[enrolment]`` fields (chemotherapy, entry_below), so they
    run on the file with its course and eligibility replaced by one cycle and an entry
    level (the form it had before 2026-12-01)."""
    start, end = text.index("[chemotherapy]"), text.index("[enrolment]\n")
    enrolment = ('[enrolment]\nchemotherapy = "chemotherapy 1 dose d1"\n'
                 "entry_below = 75           # enrolled when the count falls below 75\n")
    return text[:start] + enrolment + text[end + len("[enrolment]\n"):]


def changed(text: str, old: str, new: str) -> str:
    assert old in text, old  # the case must change the real file
    return text.replace(old, new, 1)


def assert_named(text: str, path, load, error_class, marker: str, phrases) -> None:
    """Loading ``text`` from ``path`` fails with one message that starts with the file and
    the line holding ``marker`` and contains every phrase."""
    path.write_text(text)
    with pytest.raises(error_class) as error:
        load(path)
    message = str(error.value)
    assert message.startswith(f"{path}, line {line_with(text, marker)} "), message
    for phrase in phrases:
        assert phrase in message, (phrase, message)


def line_with(text: str, marker: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if marker in line)


def reserve_per_capita_growth(model, parameter_vector, reserves) -> dict:
    """d ln R / dt of a marrow-reserve model at each reserve level in ``reserves``, read off
    the model's own right-hand side from its steady state with only the reserve changed (no
    chemotherapy)."""
    import numpy as np

    from plateletpd.numerics.kernels import initial_state, python_rhs

    rhs = python_rhs(model)
    index = list(model.state_names).index("reserve")
    growth = {}
    for reserve in reserves:
        y = initial_state(model, parameter_vector)
        y[index] = reserve
        growth[reserve] = rhs(0.0, y, parameter_vector, np.zeros(len(y)))[index] / reserve
    return growth


#: a small two-arm trial (untreated against rhTPO 15000 U daily from entry below 75 after one
#: cycle) for tests of the outputs that compare arms; TRIAL_KEYS: extra [trial] lines
TWO_ARM_TRIAL = """
[trial]
name = "two_arms"
seed = SEED
subjects_per_arm = SUBJECTS
TRIAL_KEYS
[enrolment]
chemotherapy = "chemotherapy 1.4 dose d1"
entry_below = 75
[response]
threshold = 100
by_day = 14
[[arms]]
name = "untreated"
[[arms]]
name = "rhTPO"
treatment = ["rhTPO 15000 U"]
"""


def two_arm_trial(path, seed: int, subjects: int, trial_keys: str = ""):
    """TWO_ARM_TRIAL written to ``path`` with its seed, size and extra [trial] lines."""
    path.write_text(TWO_ARM_TRIAL.replace("SEED", str(seed)).replace(
        "SUBJECTS", str(subjects)).replace("TRIAL_KEYS", trial_keys))
    return path
