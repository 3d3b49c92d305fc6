"""Simulation results: arrays with names, units, status, cost counters and provenance.

Time in results is always in days, whatever the model's own time unit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from plateletpd.errors import SimulationInputError, closest
from plateletpd.io.display import html_table, short_repr
from plateletpd.io.files import atomic_write, write_json
from plateletpd.numerics.solvers import COUNTERS, Status

#: panels a plot draws when no variables are chosen: platelets, then the first outputs
DEFAULT_PANELS = 4
#: names listed in a repr before "..."
_LISTED = 6


@dataclass(frozen=True, repr=False)
class BatchResult:
    """Results for ``n`` subjects on a shared output grid.

    ``outputs`` has shape (subjects, times, outputs); ``states`` (subjects, times, states)
    or is None when states were not kept. ``status`` holds one :class:`Status` per subject;
    a failed subject has NaN outputs from the point of failure on and does not affect others.
    """

    times: np.ndarray
    output_names: tuple[str, ...]
    outputs: np.ndarray
    state_names: tuple[str, ...]
    states: np.ndarray | None
    units: dict[str, str]
    status: np.ndarray
    counters: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)
    #: subject index -> message of a failed subject (the status, the time and, for
    #: DOMAIN_ERROR, the formula; plateletpd.numerics.failures); statuses without one use the
    #: status's general message
    details: dict[int, str] = field(default_factory=dict)

    @property
    def n_subjects(self) -> int:
        return self.outputs.shape[0]

    @property
    def subject_ids(self) -> np.ndarray:
        """Subject labels: the event table's IDs (``provenance["subject_ids"]``), else 0..n-1."""
        ids = self.provenance.get("subject_ids")
        return np.asarray(ids) if ids is not None else np.arange(self.n_subjects)

    @property
    def success(self) -> np.ndarray:
        """Boolean mask of subjects whose integration succeeded."""
        return self.status == Status.SUCCESS

    def failures(self) -> pd.DataFrame:
        """One row per failed subject: index, status name and a human message."""
        rows = [{"subject": int(i), "status": Status(code).name,
                 "message": self.details.get(int(i), Status(code).message)}
                for i, code in enumerate(self.status) if code != Status.SUCCESS]
        return pd.DataFrame(rows, columns=["subject", "status", "message"])

    def counter_table(self) -> pd.DataFrame:
        """Cost counters (steps, rejected steps, right-hand side and Jacobian evaluations)."""
        return pd.DataFrame(self.counters, columns=list(COUNTERS))

    def output(self, name: str) -> np.ndarray:
        """Array (subjects, times) of one output or state."""
        if name in self.output_names:
            return self.outputs[:, :, self.output_names.index(name)]
        if self.states is not None and name in self.state_names:
            return self.states[:, :, self.state_names.index(name)]
        known = list(self.output_names) + (list(self.state_names) if self.states is not None
                                           else [])
        hint = " (the time grid, in days, is result.times: e.g. the nadir's day is " \
            "result.times[result['platelets'].argmin()])" \
            if str(name).lower() in ("time", "times", "day", "days", "t") else ""
        raise KeyError(f"no output {name!r}{hint}; available: {', '.join(known)}")

    def __getitem__(self, name: str) -> np.ndarray:
        """``batch["platelets"]``: array (subjects, times) of one output or state."""
        return self.output(name)

    def default_variables(self) -> list[str]:
        """What a plot draws unless told: platelets (if an output), then the first outputs,
        :data:`DEFAULT_PANELS` in all."""
        names = list(self.output_names)
        first = [n for n in names if n == "platelets"]
        return (first + [n for n in names if n not in first])[:DEFAULT_PANELS]

    def check_variables(self, variables: Sequence[str] | None) -> list[str]:
        """``variables`` (default :meth:`default_variables`), each an output or kept state;
        an unknown name is a clear error listing the available ones."""
        if variables is None:
            return self.default_variables()
        known = list(self.output_names) + (list(self.state_names) if self.states is not None
                                           else [])
        variables = [variables] if isinstance(variables, str) else list(variables)
        for name in variables:
            if name not in known:
                raise SimulationInputError(
                    f"cannot plot {name!r}: not an output or kept state"
                    f"{closest(str(name), known)}; available: {', '.join(known)}")
        if not variables:
            raise SimulationInputError(f"choose at least one variable to plot, e.g. "
                                       f"{self.default_variables()}")
        return variables

    def _summary_items(self) -> list[tuple[str, object]]:
        names = list(self.output_names)
        listed = ", ".join(names[:_LISTED]) + (f", ... ({len(names)})" if len(names) >
                                                _LISTED else "")
        failed = int(np.sum(self.status != Status.SUCCESS))
        return [("model", self.provenance.get("model", {}).get("name", "?")),
                ("subjects", self.n_subjects),
                ("times", f"{len(self.times)} from {self.times[0]:g} to {self.times[-1]:g} "
                          f"days" if len(self.times) else "none"),
                ("outputs", f"[{listed}]"),
                ("states", "kept" if self.states is not None else "not kept"),
                ("status", f"{self.n_subjects - failed} SUCCESS, {failed} failed")]

    def __repr__(self) -> str:
        return short_repr(type(self).__name__, self._summary_items())

    def _repr_html_(self) -> str:
        """A notebook summary: what the result holds, and per output its unit and range
        (over subjects and times) for the first few outputs; no arrays."""
        rows = []
        for name in list(self.output_names)[:_LISTED * 2]:
            values = self.output(name)
            finite = values[np.isfinite(values)]
            rows.append((name, self.units.get(name, ""),
                         f"{finite.min():.4g}" if finite.size else "-",
                         f"{finite.max():.4g}" if finite.size else "-"))
        return html_table(type(self).__name__, self._summary_items(), rows,
                          ("output", "unit", "min", "max"))

    def plot(self, variables: Sequence[str] | None = None, bands: tuple[float, float] = (5, 95),
             path: str | Path | None = None, axes=None):
        """Median over subjects and a percentile band (``bands``, e.g. (5, 95)) of each
        chosen variable (default :meth:`default_variables`) against time in days, one panel
        each. Failed subjects' NaNs are left out. Returns the matplotlib Figure; writes it
        atomically to ``path`` if given."""
        low, high = bands
        if not 0 <= low < high <= 100:
            raise SimulationInputError(f"bands must be two percentiles 0 <= low < high <= 100, "
                                       f"e.g. (5, 95); got {bands!r}")

        def draw(axis, name):
            values = self.output(name)
            with warnings.catch_warnings():  # a time where every subject has failed
                warnings.simplefilter("ignore", RuntimeWarning)
                median = np.nanmedian(values, axis=0)
                lower, upper = np.nanpercentile(values, [low, high], axis=0)
            line, = axis.plot(self.times, median, label="median")
            axis.fill_between(self.times, lower, upper, color=line.get_color(), alpha=0.2,
                              label=f"{low:g}-{high:g}%")

        figure = self._panels(self.check_variables(variables), draw, path, axes)
        figure.axes[0].legend(fontsize=8)
        if path is not None:
            self._save(figure, path)
        return figure

    def _panels(self, variables: list[str], draw, path, axes):
        """One panel per variable, drawn by ``draw(axis, name)``, labelled and titled."""
        import matplotlib

        if path is not None and axes is None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        if axes is None:
            figure, axes = plt.subplots(len(variables), 1, sharex=True, squeeze=False,
                                        figsize=(7, 2.4 * len(variables)))
            axes = axes[:, 0]
        else:
            axes = np.atleast_1d(axes)
            figure = axes[0].figure
        for axis, name in zip(axes, variables):
            draw(axis, name)
            axis.set_ylabel(f"{name}\n[{self.units.get(name, '')}]")
            axis.grid(alpha=0.3)
        axes[-1].set_xlabel("time [days]")
        title = self.provenance.get("model", {}).get("name", "")
        regimen = self.provenance.get("regimen")
        figure.suptitle(f"{title}: {regimen}" if regimen else title)
        figure.tight_layout()
        return figure

    @staticmethod
    def _save(figure, path) -> None:
        suffix = Path(path).suffix.lstrip(".") or "png"
        atomic_write(path, lambda p: figure.savefig(p, dpi=120, format=suffix))

    def to_dataframe(self, include_states: bool = False,
                     variables: Sequence[str] | None = None, wide: bool = False
                     ) -> pd.DataFrame:
        """Tidy table: subject, time (days), variable, value, unit, status.

        ``variables``: only these outputs (or states, with ``include_states``), e.g.
        ``["platelets", "tpo"]``; ``wide``: one column per variable instead (subject and
        time as columns), ready to plot."""
        names = list(self.output_names)
        blocks = [self.outputs]
        if include_states and self.states is not None:
            names += list(self.state_names)
            blocks.append(self.states)
        values = np.concatenate(blocks, axis=2)
        if variables is not None:
            chosen = [variables] if isinstance(variables, str) else list(variables)
            for name in chosen:
                if name not in names:
                    hint = "" if include_states or name not in self.state_names else \
                        " (a state: pass include_states=True)"
                    raise SimulationInputError(
                        f"no variable {name!r}{hint}{closest(str(name), names)}; outputs: "
                        f"{', '.join(self.output_names)}")
            values = values[:, :, [names.index(name) for name in chosen]]
            names = chosen
        n, m, k = values.shape
        if wide:
            table = pd.DataFrame(values.reshape(n * m, k), columns=names)
            table.insert(0, "time", np.tile(self.times, n))
            table.insert(0, "subject", np.repeat(self.subject_ids, m))
            return table
        return pd.DataFrame({
            "subject": np.repeat(self.subject_ids, m * k),
            "time": np.tile(np.repeat(self.times, k), n),
            "variable": np.tile(np.array(names, dtype=object), n * m),
            "value": values.reshape(-1),
            "unit": np.tile(np.array([self.units.get(v, "") for v in names], dtype=object),
                            n * m),
            "status": np.repeat([Status(s).name for s in self.status], m * k),
        })

    def subject(self, index: int) -> "SimulationResult":
        """The result of one subject."""
        return SimulationResult(
            times=self.times, output_names=self.output_names,
            outputs=self.outputs[index:index + 1], state_names=self.state_names,
            states=None if self.states is None else self.states[index:index + 1],
            units=self.units, status=self.status[index:index + 1],
            counters=self.counters[index:index + 1], provenance=self.provenance,
            details={0: self.details[index]} if index in self.details else {})


@dataclass(frozen=True, repr=False)
class SimulationResult(BatchResult):
    """One subject's simulation. ``result["platelets"]`` gives an output's time course."""

    def _summary_items(self) -> list[tuple[str, object]]:
        items = [item for item in super()._summary_items() if item[0] not in
                 ("subjects", "status")]
        return [("status", self.status_code.name), *items,
                ("steps", self.cost.get("steps", "?"))]

    @property
    def status_code(self) -> Status:
        return Status(int(self.status[0]))

    @property
    def ok(self) -> bool:
        return self.status_code == Status.SUCCESS

    @property
    def message(self) -> str:
        return self.details.get(0, self.status_code.message)

    @property
    def cost(self) -> dict[str, int]:
        """Cost counters of this integration by name."""
        return {name: int(v) for name, v in zip(COUNTERS, self.counters[0])}

    def __getitem__(self, name: str) -> np.ndarray:
        return self.output(name)[0]

    def to_dataframe(self, include_states: bool = False,
                     variables: Sequence[str] | None = None, wide: bool = False
                     ) -> pd.DataFrame:
        """Tidy table: time (days), variable, value, unit (``variables`` and ``wide``: as
        for a batch; ``wide`` gives time and one column per variable)."""
        table = super().to_dataframe(include_states, variables, wide)
        drop = ["subject"] if wide else ["subject", "status"]
        return table.drop(columns=drop).reset_index(drop=True)

    def to_csv(self, path: str | Path, include_states: bool = False) -> Path:
        """Write the tidy table atomically, with the provenance as JSON beside it."""
        path = Path(path)
        table = self.to_dataframe(include_states)
        atomic_write(path, lambda p: table.to_csv(p, index=False))
        write_json(path.with_suffix(path.suffix + ".provenance.json"), self.provenance)
        return path

    def plot(self, variables: Sequence[str] | None = None, path: str | Path | None = None,
             axes=None):
        """Plot chosen variables (default :meth:`default_variables`) against time in days,
        one panel each. Returns the matplotlib Figure; writes it atomically to ``path``."""
        figure = self._panels(self.check_variables(variables),
                              lambda axis, name: axis.plot(self.times, self[name]), path, axes)
        if path is not None:
            self._save(figure, path)
        return figure
