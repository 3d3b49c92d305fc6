"""Benchmark suite of plateletpd against its peers (issue 6): ``python -m benchmarks``.

Accuracy first: every engine's platelet output is compared with a scipy Radau reference at
rtol 1e-10 before it is timed. See benchmarks/README.md for the results and the method.
"""


def use_inlined_kernels() -> None:
    """Run every model through its own inlined kernel (compiled on first use), the engine at
    full speed: plateletpd's default (``auto``) runs a model through the generic integrator
    until that kernel is compiled (issue 18 item 5). Called when a benchmark runs as a
    script, not when tests import it; benchmarks/cold_start.py keeps ``auto`` for its
    children, as a user has it."""
    import os

    os.environ.setdefault("PLATELETPD_GENERIC_INTEGRATOR", "never")
