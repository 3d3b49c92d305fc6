"""Simulation results: arrays with names, units, status, cost counters and provenance.

Time in results is always in days, whatever the model's own time unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from plateletpd.io.files import atomic_write, write_json
from plateletpd.numerics.solvers import COUNTERS, Status


@dataclass(frozen=True)
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
        raise KeyError(f"no output {name!r}; available: {', '.join(known)}")

    def to_dataframe(self, include_states: bool = False) -> pd.DataFrame:
        """Tidy table: subject, time (days), variable, value, unit, status."""
        names = list(self.output_names)
        blocks = [self.outputs]
        if include_states and self.states is not None:
            names += list(self.state_names)
            blocks.append(self.states)
        values = np.concatenate(blocks, axis=2)
        n, m, k = values.shape
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


@dataclass(frozen=True)
class SimulationResult(BatchResult):
    """One subject's simulation. ``result["platelets"]`` gives an output's time course."""

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

    def to_dataframe(self, include_states: bool = False) -> pd.DataFrame:
        """Tidy table: time (days), variable, value, unit."""
        table = super().to_dataframe(include_states)
        return table.drop(columns=["subject", "status"]).reset_index(drop=True)

    def to_csv(self, path: str | Path, include_states: bool = False) -> Path:
        """Write the tidy table atomically, with the provenance as JSON beside it."""
        path = Path(path)
        table = self.to_dataframe(include_states)
        atomic_write(path, lambda p: table.to_csv(p, index=False))
        write_json(path.with_suffix(path.suffix + ".provenance.json"), self.provenance)
        return path

    def plot(self, variables: Sequence[str] | None = None, path: str | Path | None = None,
             axes=None):
        """Plot outputs (default: all) against time in days, one panel per variable.

        Returns the matplotlib Figure; writes it atomically to ``path`` if given.
        """
        import matplotlib

        if path is not None and axes is None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        variables = list(variables or self.output_names)
        if axes is None:
            figure, axes = plt.subplots(len(variables), 1, sharex=True, squeeze=False,
                                        figsize=(7, 2.4 * len(variables)))
            axes = axes[:, 0]
        else:
            axes = np.atleast_1d(axes)
            figure = axes[0].figure
        for axis, name in zip(axes, variables):
            axis.plot(self.times, self[name])
            axis.set_ylabel(f"{name}\n[{self.units.get(name, '')}]")
            axis.grid(alpha=0.3)
        axes[-1].set_xlabel("time [days]")
        title = self.provenance.get("model", {}).get("name", "")
        regimen = self.provenance.get("regimen")
        figure.suptitle(f"{title}: {regimen}" if regimen else title)
        figure.tight_layout()
        if path is not None:
            suffix = Path(path).suffix.lstrip(".") or "png"
            atomic_write(path, lambda p: figure.savefig(p, dpi=120, format=suffix))
        return figure
