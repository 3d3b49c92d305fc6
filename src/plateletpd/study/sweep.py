"""Dosing sweeps: a trial file's arms over a grid of doses, start delays, durations and entry
thresholds, with the chosen endpoints per cell.

Grid dimensions (``--grid NAME=V1,V2,...``):

* ``dose`` (the arm's one drug; an arm of two drugs names one: ``dose:DRUG``, and a plain
  ``dose`` sweeps only the arms of one drug unless arms are chosen) or ``dose:DRUG``: the
  daily amount, in the arm's unit;
* ``start_delay``: days from crossing the entry threshold to the first dose;
* ``max_days``: the longest course;
* ``entry_below``: the count that enrols a patient;
* ``share:GROUP``: the share of the drawn patients in the trial's ``[[population.mixture]]``
  group GROUP (0: nobody in it).

Every cell treats the same virtual patients (the trial's seed, common random numbers), so
differences between cells come from the dosing, not from sampling (a share cell moves the
same patients into or out of the group: each patient's group is one uniform number,
compared with the cumulative shares): the patients of the trial
file's first arm (its random streams), whichever arm is swept. A cell at the swept arm's own
dosing therefore reproduces the file's first arm's patients, not the swept arm's own draw in
a parallel design (a paired design, ``design = "paired"``, has one draw for every arm).
Each cell's patients are
simulated in parallel over all cores.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from plateletpd.errors import PlateletPDError, closest
from plateletpd.io.files import atomic_folder, atomic_write, write_json
from plateletpd.io.schema import Document, Field, Table
from plateletpd.numerics.kernels import many_batches
from plateletpd.study.trial import (TrialSpec, load_trial_spec, one_arm_trial, run_trial,
                                   summary_columns, trial_provenance)


def _values(what: str, **bounds) -> Field:
    return Field("list", item=Field(**bounds), nonempty=True, what=what)


#: The sweep grid's schema: the dimensions a grid may vary and the values each takes
#: (``dose:DRUG`` is checked as ``dose``).
GRID_SCHEMA = Table({
    "dose": _values("numbers >= 0 (daily amounts in the arm's unit; 0: without that drug, "
                    "the untreated control on the same patients), e.g. dose=0,5,7.5,15",
                    low_included=True),
    "start_delay": _values("numbers of days >= 0, e.g. start_delay=0,1,2", low_included=True),
    "max_days": _values("whole numbers of days in [0, 365], e.g. max_days=7,14",
                        low_included=True, whole=True, high=365.0),
    "entry_below": _values("counts above 0 (10^9/L), e.g. entry_below=50,75"),
    "share": _values("shares from 0 to 1 of the drawn patients, e.g. share:large spleen="
                     "0,0.1,0.2", low_included=True, high=1.0)},
    key_name="dimension", hint=" (or dose:DRUG, share:GROUP)")
DIMENSIONS = tuple(GRID_SCHEMA.fields)
#: each dimension's unit and meaning (axis labels and data_dictionary.csv); a dose's unit is
#: the one its arm's regimen states
DIMENSION_TEXT = {
    "dose": ("the dose's unit", "daily dose of the arm's one drug (dose:DRUG: of DRUG)"),
    "start_delay": ("days", "start delay: days from entry to the first dose"),
    "max_days": ("days", "longest course of treatment"),
    "entry_below": ("x10^9/L", "entry threshold: enrolled when PLT falls below it"),
    "share": ("share of the drawn patients", "share:GROUP: the share of the drawn patients "
              "in the trial's [[population.mixture]] group GROUP")}


def cell_spec(spec: TrialSpec, cell: dict) -> TrialSpec:
    """``spec`` with a grid cell's population values: each ``share:GROUP`` the share of its
    mixture group (0 leaves the group out). The patients are the same: only who is in the
    group changes."""
    shares = {name.split(":", 1)[1]: value for name, value in cell.items()
              if name.startswith("share:")}
    if not shares:
        return spec
    groups = []
    for group in spec.variability.groups:
        share = shares.get(group.name, group.share)
        if share > 0:
            groups.append(replace(group, share=share))
    try:
        return replace(spec, variability=spec.variability.with_groups(groups))
    except PlateletPDError as error:
        raise PlateletPDError(f"--grid {', '.join(f'share:{k}={v:g}' for k, v in shares.items())}"
                              f": {error}") from None


class StartDelayWarning(UserWarning):
    """Start delays compared while the trial's endpoints count from the first dose."""


def design_caveats(spec: TrialSpec, names: Sequence[str], what: str) -> list[str]:
    """Refuse design dimensions the trial ignores, and return the caveats of the others:
    ``entry_below`` on a trial enrolled by ``[[eligibility]]`` rules on its course (the
    rules enrol, the level is not read: every cell would be the same); start delays compared
    while day 0 is the first dose (a later start is judged over a later, higher part of the
    recovery, with a lower baseline for a rise rule, and looks better)."""
    if "entry_below" in names and spec.extra.get("course") is not None:
        raise PlateletPDError(
            f"{what} entry_below: this trial enrols by its [[eligibility]] rules on the "
            f"chemotherapy course, which entry_below does not change (every value would give "
            f"the same patients); vary the rules' levels in copies of the trial file instead")
    if "start_delay" in names and spec.response.get("day0", "first_dose") != "entry":
        return ["start delays are compared with day 0 at the first dose: a later start is "
                "judged over a later, higher part of the recovery (and a rise from a lower "
                "baseline), so it looks better for that reason alone; add [response] day0 = "
                "\"entry\" to the trial file (or --day0 entry) to judge every start from "
                "enrolment"]
    return []


def check_design_dimensions(spec: TrialSpec, names: Sequence[str], what: str) -> list[str]:
    """:func:`design_caveats`, each caveat also warned (:class:`StartDelayWarning`)."""
    import warnings

    caveats = design_caveats(spec, names, what)
    for caveat in caveats:
        # the caller of run_sweep, run_sensitivity or optimise_dose (each wrapped by
        # numerics.kernels.many_batches: one frame more)
        warnings.warn(caveat, StartDelayWarning, stacklevel=4)
    return caveats


def check_share_dimensions(spec: TrialSpec, grid: Mapping) -> None:
    """Each ``share:GROUP`` names a group of the trial's ``[[population.mixture]]``, and
    every cell's shares add up to at most 1."""
    labels = [group.name for group in spec.variability.groups]
    for name in grid:
        if name.startswith("share:") and name.split(":", 1)[1] not in labels:
            group = name.split(":", 1)[1]
            raise PlateletPDError(
                f"--grid {name}: the trial has no [[population.mixture]] group {group!r}"
                + (f"{closest(group, labels)}; its groups: {', '.join(labels)}" if labels
                   else "; it has no mixture: add a [[population.mixture]] group to the "
                        "trial file (docs/trial_files.md, Mixtures) and sweep its share"))
    shares = {name: values for name, values in grid.items() if name.startswith("share:")}
    for values in itertools.product(*shares.values()):  # every combination of shares
        cell_spec(spec, dict(zip(shares, values)))  # shares above 1 in all: refused


def parse_grid(items: Sequence[str]) -> dict[str, list[float]]:
    """``["dose=5,7.5", "start_delay=0,1"]`` -> {"dose": [5.0, 7.5], "start_delay": [0.0, 1.0]},
    each dimension checked against :data:`GRID_SCHEMA`."""
    grid = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep:
            raise PlateletPDError(f"--grid expects NAME=V1,V2,... with NAME one of "
                                  f"{', '.join(DIMENSIONS)} (or dose:DRUG); got {item!r}")
        try:
            grid[name] = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise PlateletPDError(f"--grid {name}: values must be numbers, got "
                                  f"{values!r}") from None
        Document("--grid", "", {name.split(":")[0]: grid[name]},
                 PlateletPDError).check(GRID_SCHEMA)
    if not grid:
        raise PlateletPDError("give at least one --grid dimension, e.g. --grid dose=5,7.5,15")
    return grid


def _with_dose(treatment: tuple[str, ...], drug: str | None, amount: float,
               arm: str) -> tuple[str, ...]:
    doses = list(treatment)
    names = [d.split()[0] for d in doses]
    if drug is None and len(set(n.lower() for n in names)) > 1:
        # "dose" alone on a combination varied its first drug unsaid (a sweep user test,
        # 2026-12-07): name the drug
        raise PlateletPDError(f"arm {arm!r} gives {' and '.join(names)}: say which drug's "
                              f"dose varies, e.g. --grid dose:{names[0]}=... (Python: "
                              f"\"dose:{names[0]}\"); dose:DRUG=0 is the cell without that "
                              f"drug")
    index = 0 if drug is None else next(
        (i for i, d in enumerate(doses) if d.split()[0].lower() == drug.lower()), None)
    if index is None or not doses:
        wanted = f"no drug {drug!r}" if drug else "no treatment"
        hint = closest(drug, names) if drug else ""
        raise PlateletPDError(f"arm {arm!r} has {wanted}{hint} whose dose could vary; its "
                              f"doses: {', '.join(doses) or 'none'}; name one of its drugs "
                              f"(dose:DRUG), or choose arms with --arm (Python: arms=[...])")
    if amount == 0:  # the cell without that drug: the control on the same patients
        del doses[index]
        return tuple(doses)
    doses[index] = re.sub(r"^(\S+)\s+\S+", lambda m: f"{m.group(1)} {amount:g}", doses[index])
    return tuple(doses)


def _checked_call(spec, grid, arms) -> tuple[TrialSpec, dict[str, list[float]], list | None]:
    """The Python call's arguments checked as ``--grid`` and ``--arm`` are: a trial file's
    path read, each dimension a known name with a list of numbers, one arm name a list."""
    if isinstance(spec, (str, Path)):
        spec = load_trial_spec(spec)
    if not isinstance(spec, TrialSpec):
        raise PlateletPDError(f"run_sweep expects a TrialSpec or a trial file's path, got "
                              f"{type(spec).__name__}")
    if not isinstance(grid, Mapping) or not grid:
        raise PlateletPDError(f"grid must be a dict of dimension -> values, e.g. "
                              f"{{'dose': [2.5, 5, 7.5]}}; dimensions: {', '.join(DIMENSIONS)} "
                              f"(or 'dose:DRUG'); got {grid!r}")
    items = []
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise PlateletPDError(f"grid[{name!r}] must be a list of numbers, e.g. "
                                  f"{{{name!r}: [{values!r}]}}; got {values!r}")
        values = list(values)
        if not values or not all(isinstance(v, (int, float, np.integer, np.floating))
                                 and not isinstance(v, bool) for v in values):
            raise PlateletPDError(f"grid[{name!r}] must be a non-empty list of numbers; got "
                                  f"{values!r}")
        if str(name).split(":")[0] not in DIMENSIONS:
            raise PlateletPDError(f"grid: unknown dimension {name!r}"
                                  f"{closest(str(name), list(DIMENSIONS))}; dimensions: "
                                  f"{', '.join(DIMENSIONS)} (or 'dose:DRUG', "
                                  f"'share:GROUP')")
        items.append(f"{name}={','.join(repr(float(v)) for v in values)}")
    if isinstance(arms, str):
        arms = [arms]
    return spec, parse_grid(items), (list(arms) if arms is not None else None)


@many_batches
def run_sweep(spec: TrialSpec | str | Path, grid: dict[str, list[float]], arms: Sequence[str] | None = None,
              progress: bool = False, endpoint: str | None = None, client=None,
              chunk: int | None = None) -> pd.DataFrame:
    """One row per (cell, arm) with the cell's values and the arm summary's endpoints.

    Without ``arms``, a dose dimension sweeps the arms that have a treatment (an untreated
    arm has no dose to vary). ``endpoint`` is checked after the first cell, not the last.
    ``client``: a Dask client (:mod:`plateletpd.study.distributed`): every cell's patients
    run there in chunks of ``chunk``, all cells at once; the table is bit-identical.

    ``spec``: a :class:`TrialSpec` or a trial file's path; ``grid``: dimension name ->
    values, e.g. ``{"dose": [2.5, 5, 7.5]}`` or ``{"dose:rhTPO": [7500, 15000],
    "start_delay": [0, 2]}`` (the dimensions of ``plateletpd sweep --grid``); ``arms``: arm
    names (one name or a list).
    """
    spec, grid, arms = _checked_call(spec, grid, arms)
    names = [a.name for a in spec.arms]
    for arm in arms or ():
        if arm not in names:
            raise PlateletPDError(f"no arm {arm!r} in the trial{closest(arm, names)}; arms: "
                                  f"{', '.join(names)}")
    check_design_dimensions(spec, list(grid), "--grid")
    check_share_dimensions(spec, grid)
    if arms:
        chosen = [a for a in spec.arms if a.name in arms]
    else:  # a dose dimension sweeps the arms that give its drug (the others have no dose)
        drugs = [name.split(":", 1)[1].lower() for name in grid if name.startswith("dose:")]
        varies_dose = any(name.startswith("dose") for name in grid)  # not share:GROUP
        chosen = [a for a in spec.arms if (a.treatment or not varies_dose) and all(
            any(d.split()[0].lower() == drug for d in a.treatment) for drug in drugs)]
        if "dose" in grid:  # plain "dose": the arms of one drug (a combination names its drug)
            single = [a for a in chosen if len({d.split()[0].lower()
                                                for d in a.treatment}) <= 1]
            if chosen and not single:
                drug = chosen[0].treatment[0].split()[0]
                raise PlateletPDError(f"every treated arm gives more than one drug: name the "
                                      f"one whose dose varies, e.g. --grid dose:{drug}=... "
                                      f"(Python: \"dose:{drug}\")")
            chosen = single
        if not chosen:
            raise PlateletPDError(f"no arm of the trial gives {', '.join(drugs) or 'a drug'}"
                                  f" whose dose could vary; arms: {', '.join(names)}")
    rows = []
    cells = list(itertools.product(*grid.values()))
    if client is not None:
        return _distributed_sweep(spec, grid, cells, chosen, progress, endpoint, client, chunk)
    for number, values in enumerate(cells, start=1):
        cell = dict(zip(grid, values))
        designs = cell_designs(chosen, cell)
        for design in designs:
            result = run_trial(one_arm_trial(cell_spec(spec, cell), design))
            summary = result.summary.iloc[0]
            rows.append({**cell, "arm": design.name, "regimen": " + ".join(design.treatment)
                         or "none", **summary.to_dict()})
        if number == 1 and endpoint is not None:
            check_endpoint(pd.DataFrame(rows), endpoint)
        if progress:
            print(f"  cell {number}/{len(cells)}: {cell}")
    return _tidy(pd.DataFrame(rows), grid, spec)


def cell_designs(chosen: Sequence, cell: dict) -> list:
    """The arm designs ``chosen`` with a grid cell's values (dose, delay, duration, entry)."""
    designs = []
    for design in chosen:
        changes = {}
        for name, value in cell.items():
            if name.startswith("dose"):
                drug = name.split(":", 1)[1] if ":" in name else None
                if value == 0 and (design.rules or design.titrations):
                    # the rules would name a drug the cell no longer gives (the error said
                    # only that, not why)
                    raise PlateletPDError(
                        f"--grid {name}=0 leaves the drug out of arm {design.name!r}, whose "
                        f"dose rules or titration change it; sweep dose 0 on an arm without "
                        f"them, or compare with the trial's untreated arm "
                        f"(design = \"paired\" gives it the same patients)")
                changes["treatment"] = _with_dose(changes.get("treatment", design.treatment),
                                                  drug, value, design.name)
            elif name == "max_days":
                changes["max_days"] = int(value)
            elif name.startswith("share:"):
                continue  # the population's, not the arm's (cell_spec)
            else:
                changes[name] = value
        designs.append(replace(design, **changes))
    return designs


def _distributed_sweep(spec, grid, cells, chosen, progress, endpoint, client, chunk):
    """:func:`run_sweep` on a Dask cluster: every cell's chunks submitted at once."""
    from plateletpd.study.distributed import CHUNK, run_trials

    pairs = [(dict(zip(grid, values)), design) for values in cells
             for design in cell_designs(chosen, dict(zip(grid, values)))]
    results = run_trials([one_arm_trial(cell_spec(spec, cell), design)
                          for cell, design in pairs], client,
                         chunk=chunk or CHUNK, progress=progress, label="sweep cells")
    rows = [{**cell, "arm": design.name, "regimen": " + ".join(design.treatment) or "none",
             **result.summary.iloc[0].to_dict()}
            for (cell, design), result in zip(pairs, results)]
    if endpoint is not None:
        check_endpoint(pd.DataFrame(rows), endpoint)
    return _tidy(pd.DataFrame(rows), grid, spec)


def _tidy(table: pd.DataFrame, grid: dict, spec: TrialSpec) -> pd.DataFrame:
    """The sweep table in its dictionary's column order: a cell runs one arm, whose summary
    has the total-dose columns of its own drugs only; another arm's drug totals 0 there
    (as an arm without the drug has in a trial's summary)."""
    columns = list(sweep_dictionary(grid, spec).column)
    totals = [c for c in columns if c.startswith("mean_total_")]
    table = table.reindex(columns=columns + [c for c in table.columns if c not in columns])
    table[totals] = table[totals].fillna(0.0)
    for column in ("screened", "enrolled"):  # counts of patients, as in a trial's summary
        if column in table and table[column].notna().all():
            table[column] = table[column].astype(np.int64)
    return table


def check_endpoint(table: pd.DataFrame, endpoint: str) -> None:
    """Refuse an endpoint that is not a numeric summary column."""
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    if endpoint not in numeric:
        raise PlateletPDError(f"unknown endpoint {endpoint!r}{closest(endpoint, numeric)}; "
                              f"choose one of {', '.join(numeric)}")


def write_sweep(table: pd.DataFrame, spec: TrialSpec, grid: dict, endpoint: str,
                folder: Path, uncertainty=None) -> list[Path]:
    """sweep.csv, a heatmap per arm (first two grid dimensions) and provenance, and with a
    :class:`~plateletpd.study.sweep_uncertainty.SweepUncertainty` its replicate and ranking
    tables: one folder that appears whole or not at all
    (:func:`plateletpd.io.files.atomic_folder`)."""
    check_endpoint(table, endpoint)
    folder = Path(folder)
    with atomic_folder(folder) as staging:
        paths = _write_files(table, spec, grid, endpoint, staging, uncertainty)
    return [folder / p.relative_to(staging) for p in paths]


def sweep_dictionary(grid: dict, spec: TrialSpec | None = None) -> pd.DataFrame:
    """Every column of ``sweep.csv``: column, unit, description (``data_dictionary.csv``);
    with the swept trial's ``spec``, its course and composite columns too."""
    rows = [(name, *DIMENSION_TEXT[name.split(":")[0]]) for name in grid]
    rows += [("arm", "", "the arm's name ([[arms]] name, as written in the trial; the cell's "
                         "own doses are in regimen)"),
             ("regimen", "", "the cell's treatment doses (given each treatment day)"),
             *summary_columns(spec)]
    return pd.DataFrame(rows, columns=["column", "unit", "description"])


def regimen_dose(regimen: str, drug: str | None = None) -> list[str] | None:
    """The words of ``drug``'s dose in a cell's regimen text (the first drug's without one):
    ``"hetrombopag 3.75 mg"`` -> ``["hetrombopag", "3.75", "mg"]``; None when it has none."""
    doses = [d.split() for d in regimen.split(" + ")]
    wanted = drug.lower() if drug else doses[0][0].lower()
    return next((d for d in doses if len(d) > 2 and d[0].lower() == wanted), None)


def _dimension_label(name: str, regimens) -> str:
    """An axis label naming the swept quantity and its unit ("hetrombopag daily dose (mg)"),
    from the first of the cells' ``regimens`` that gives the drug (a cell at dose 0 has
    none: a sweep user test, 2026-12-07, read the fallback label on every such heatmap)."""
    if name.startswith("share:"):
        return f"share of the drawn patients in {name.split(':', 1)[1]}"
    if not name.startswith("dose"):
        unit, text = DIMENSION_TEXT[name]
        return f"{text} ({unit})"
    drug = name.split(":", 1)[1] if ":" in name else None
    regimens = [regimens] if isinstance(regimens, str) else list(regimens)
    dose = next((found for found in (regimen_dose(r, drug) for r in regimens) if found),
                None)
    return f"{dose[0]} daily dose ({' '.join(dose[2:])})" if dose else \
        f"{name}: daily dose (the unit of the arm's regimen)"


def _endpoint_label(endpoint: str) -> str:
    unit = {column: unit for column, unit, _ in summary_columns()}.get(endpoint, "")
    return f"{endpoint} ({unit})" if unit else endpoint


def _write_files(table: pd.DataFrame, spec: TrialSpec, grid: dict, endpoint: str,
                 folder: Path, uncertainty=None) -> list[Path]:
    atomic_write(folder / "sweep.csv", lambda p: table.to_csv(p, index=False))
    atomic_write(folder / "data_dictionary.csv",
                 lambda p: sweep_dictionary(grid, spec).to_csv(p, index=False))
    # the trial's record (fit, parameter values, screened per cell, design, day 0) and the
    # sweep's own (a user test, 2026-12-04: the fit, n, day 0 and arms were missing)
    extra = {}
    if uncertainty is not None:
        extra = {"uncertainty": "fit", "replicates": int(uncertainty.replicates.replicate
                                                         .nunique()),
                 "better": uncertainty.better, "ranking_endpoint": uncertainty.endpoint,
                 "uncertainty_notes": list(uncertainty.notes)}
    write_json(folder / "provenance.json", {**trial_provenance(spec), **dict(
        arms=list(dict.fromkeys(table.arm)), grid=grid, endpoint=endpoint,
        caveats=design_caveats(spec, list(grid), "--grid")), **extra})  # said with the outputs too
    paths = [folder / "sweep.csv", folder / "data_dictionary.csv", folder / "provenance.json"]
    if uncertainty is not None:
        atomic_write(folder / "sweep_replicates.csv",
                     lambda p: uncertainty.replicates.to_csv(p, index=False))
        atomic_write(folder / "sweep_ranking.csv",
                     lambda p: uncertainty.ranking.to_csv(p, index=False))
        atomic_write(folder / "ranking_dictionary.csv",
                     lambda p: uncertainty.dictionary(grid).to_csv(p, index=False))
        paths += [folder / "sweep_replicates.csv", folder / "sweep_ranking.csv",
                  folder / "ranking_dictionary.csv"]
    import matplotlib.pyplot as plt

    for arm, figure in sweep_figures(table, grid, endpoint).items():
        path = folder / f"heatmap_{re.sub(r'[^A-Za-z0-9_.-]+', '_', arm)}.png"
        atomic_write(path, lambda p: figure.savefig(p, dpi=110, format="png"))
        plt.close(figure)
        paths.append(path)
    return paths


def sweep_figures(table: pd.DataFrame, grid: dict, endpoint: str) -> dict:
    """One figure per arm (close them after use): ``endpoint`` over the first grid dimension
    (a line) or the first two (a heatmap), axes naming the swept quantity and its unit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims, figures = list(grid), {}
    for arm, part in table.groupby("arm", sort=False):
        x = dims[0]
        y = dims[1] if len(dims) > 1 else None
        regimen = [str(r) for r in part.regimen]
        figure, axis = plt.subplots(figsize=(6.5, 4.8))
        if y is None:
            axis.plot(part[x], part[endpoint], marker="o")
            axis.set_ylabel(_endpoint_label(endpoint))
        else:
            pivot = part.pivot_table(index=y, columns=x, values=endpoint, aggfunc="mean")
            image = axis.imshow(pivot.to_numpy(), origin="lower", aspect="auto",
                                cmap="viridis")
            axis.set_xticks(range(pivot.shape[1]), [f"{v:g}" for v in pivot.columns])
            axis.set_yticks(range(pivot.shape[0]), [f"{v:g}" for v in pivot.index])
            for (i, j), value in pd.DataFrame(pivot.to_numpy()).stack().items():
                axis.text(j, i, f"{value:.0f}", ha="center", va="center", color="white",
                          fontsize=8)
            axis.set_ylabel(_dimension_label(y, regimen))
            figure.colorbar(image, label=_endpoint_label(endpoint))
        axis.set_xlabel(_dimension_label(x, regimen))
        axis.set_title(f"{arm}: {_endpoint_label(endpoint)}", fontsize=10)
        figure.tight_layout()
        figures[arm] = figure
    return figures
