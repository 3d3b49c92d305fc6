"""Helpers shared by test modules (imported as ``helpers``: pytest puts tests/ on the path)."""

from __future__ import annotations

import contextlib

import numba


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
