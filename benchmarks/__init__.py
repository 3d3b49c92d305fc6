"""Benchmark suite of plateletpd against its peers (issue 6): ``python -m benchmarks``.

Accuracy first: every engine's platelet output is compared with a scipy Radau reference at
rtol 1e-10 before it is timed. See benchmarks/README.md for the results and the method.
"""
