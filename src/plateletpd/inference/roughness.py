"""How smooth a fit's objective is along one parameter, row by row.

A fit's predictions come from finite virtual cohorts on common random numbers: the same
patients at every evaluation, so a prediction moves continuously with the parameters as
long as every statistic it reads does. Hard rules do not: who is enrolled by eligibility
on the simulated history, a responder counted by a hard threshold, days counted on the
output grid. Each makes its row move in small jumps, and a fit's finite differences,
profiles and restarts read those jumps as if they were information. :func:`objective_roughness`
measures them: it evaluates the rows on a fine grid of one parameter around given values
(every other value held) and reports, per row, how far its residual (in standard errors)
strays from the quadratic through the grid. A smooth row strays by the quadratic's
truncation only; a rough one by its jumps. Compare the chi-square's roughness with the
3.84 a profile interval is read at (docs/fitting.md, "Is the objective smooth enough?").
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from plateletpd.errors import PlateletPDError

#: the columns naming a row in the table :func:`objective_roughness` returns
ROW_COLUMNS = ("line", "study", "arm", "endpoint", "threshold", "day")


def objective_roughness(problem, values: Mapping[str, float], name: str,
                        relative: float = 0.05, points: int = 9) -> pd.DataFrame:
    """Each data row's residual along ``name`` from ``values[name] x (1 - relative)`` to
    ``x (1 + relative)`` (``points`` evaluations, every other value held): its range and
    its roughness, the root-mean-square distance of the residual from the least-squares
    quadratic through the grid, both in standard errors.

    ``problem`` is a :class:`plateletpd.inference.fitting.FitProblem` (its cohorts at their
    current sizes: a fit's, or resized); ``values`` every fit parameter's value (a fit's
    ``params.json`` values, for example). The table's ``attrs`` hold the grid
    (``"grid"``), the data rows' chi-square at each point (``"chi_square"``) and that
    chi-square's roughness (``"chi_square_roughness"``), measured the same way."""
    values = dict(values)
    if name not in values:
        raise PlateletPDError(f"objective_roughness: {name!r} is not among the fit's "
                              f"parameters ({', '.join(sorted(values))}); name one of them")
    if not (isinstance(points, int) and points >= 5):
        raise PlateletPDError(f"objective_roughness: points must be a whole number of at "
                              f"least 5 (a quadratic through them must leave residuals to "
                              f"measure), got {points!r}")
    if not (0.0 < relative < 1.0):
        raise PlateletPDError(f"objective_roughness: relative must lie between 0 and 1 "
                              f"(the grid's half-width as a share of the value), got "
                              f"{relative!r}")
    centre = float(values[name])
    if centre == 0.0:
        raise PlateletPDError(f"objective_roughness: {name} is 0, so a relative grid around "
                              f"it is empty; give a nonzero value")
    x = np.linspace(-1.0, 1.0, points)
    grid = centre * (1.0 + relative * x)
    residuals, table = [], None
    for value in grid:
        table = problem.predict({**values, name: float(value)})
        residuals.append(table["residual"].to_numpy(dtype=float))
    residuals = np.array(residuals)  # points x rows
    chi_square = np.nansum(residuals ** 2, axis=1)
    out = table[[c for c in ROW_COLUMNS if c in table.columns]].copy().reset_index(drop=True)
    out["range_se"] = np.ptp(residuals, axis=0)
    out["roughness_se"] = [_roughness(x, column) for column in residuals.T]
    out.attrs.update(parameter=name, grid=grid, chi_square=chi_square,
                     chi_square_roughness=_roughness(x, chi_square))
    return out


def _roughness(x: np.ndarray, y: np.ndarray) -> float:
    """Root-mean-square distance of ``y`` from its least-squares quadratic in ``x`` (NaN
    when any value is not finite)."""
    if not np.all(np.isfinite(y)):
        return float("nan")
    coefficients = np.polyfit(x, y, 2)
    return float(np.sqrt(np.mean((y - np.polyval(coefficients, x)) ** 2)))
