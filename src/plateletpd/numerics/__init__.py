"""Numerics: compiled kernels, Runge-Kutta methods, step control and batch execution.

* :mod:`~plateletpd.numerics.jit`: the one place that imports numba (decorator, options);
* :mod:`~plateletpd.numerics.kernels`: generated kernel modules compiled and cached on disk;
* :mod:`~plateletpd.numerics.integrator`: the integrator template (DOPRI5, DOP853,
  Rosenbrock23, tableau-driven explicit methods, breakpoints, the lock-step DOP853);
* :mod:`~plateletpd.numerics.tableaux`: the methods' Butcher tableaux and their sources;
* :mod:`~plateletpd.numerics.vectormath`: power, exp and log that vectorise;
* :mod:`~plateletpd.numerics.solvers`: the Solver base class (the contract for a new
  solver), the solvers, batch executions and the status enumeration;
* :mod:`~plateletpd.numerics.failures`: naming the formula behind a domain error.
"""
