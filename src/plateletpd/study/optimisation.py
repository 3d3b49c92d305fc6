"""Dose optimisation: the dose, start day and duration of an arm's drug (within stated bounds,
on the drug's real dose steps) that reach a response target with the least total drug or the
fewest days of treatment, with the answer's uncertainty and the dose-response curve around it.

The search. Every candidate is a trial of the arm with the trial's seed: the same virtual
patients for every candidate (common random numbers), so the response rate moves with the
design alone, a step function of the dose that does not jitter from resampling. Response
days count from the start of treatment (the trial's day 0), so a later start also moves the
window in which a response counts; the target reads as "within N days of the first dose". For each
start delay and duration the least dose step reaching the target is found by bisection over
the dose steps (the response rate is taken to rise with the dose, as an agonist's does; every
evaluated pair of steps is checked and a non-monotone pair noted), all (start, duration)
pairs advancing together so each round is one batch of trials
(:func:`plateletpd.study.distributed.run_trials`: on a Dask cluster when a client is given).
Among the designs reaching the target the objective chooses:

* ``total_drug``: the least mean total amount per enrolled patient (dose x mean treatment
  days dosed; stop rules shorten the course, so this is what patients receive);
* ``days``: the fewest mean treatment days dosed (ties: the least total drug).

The answer's uncertainty: ``replicates`` trials of the chosen design with new patients
(seeds as :func:`plateletpd.study.trial.run_replicates`, drawn as
:func:`plateletpd.study.uncertainty.run_uncertainty` draws them) and, when the trial takes its
parameters from a fit, model parameters drawn from the fit's uncertainty
(:class:`plateletpd.study.uncertainty.TrialUncertainty`); the response rate's 2.5th, 50th
and 97.5th percentiles and the share of replicate trials reaching the target. The curve: the
response rate at every dose step of the chosen start and duration (the search's patients)
with the same replicate intervals.

A target no dose in the bounds reaches is an :class:`OptimisationError` naming the best
response reached and where, and what to widen.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from plateletpd.errors import PlateletPDError, closest
from plateletpd.io.files import atomic_folder, atomic_write, write_json
from plateletpd.numerics.kernels import many_batches
from plateletpd.study.distributed import CHUNK, run_trials
from plateletpd.study.sweep import (_dimension_label, cell_designs, check_design_dimensions,
                                   regimen_dose)
from plateletpd.study.trial import TrialSpec, one_arm_trial, trial_provenance

OBJECTIVES = ("total_drug", "days")


class OptimisationError(PlateletPDError):
    """A dose search that cannot run or whose target no design in the bounds reaches."""


@dataclass(frozen=True)
class DoseSearch:
    """What to search: ``arm``'s ``drug`` (None: its first) over ``doses`` (the real dose
    steps, e.g. tablet multiples), ``start_delays`` (days from entry to the first dose) and
    ``durations`` (longest course, whole days); the target: at least ``target_pct`` % of
    enrolled patients responding by ``by_day`` (None: the trial's response rule's by_day)."""

    arm: str
    doses: tuple[float, ...]
    start_delays: tuple[float, ...] = (1.0,)
    durations: tuple[int, ...] = (14,)
    target_pct: float = 80.0
    by_day: float | None = None
    objective: str = "total_drug"
    drug: str | None = None

    def __post_init__(self):
        doses = tuple(float(d) for d in self.doses)
        if not doses or any(not math.isfinite(d) or d <= 0 for d in doses) or \
                len(set(doses)) != len(doses):
            raise OptimisationError(f"doses must be distinct amounts > 0 (the drug's real "
                                    f"dose steps, e.g. 2.5,5,7.5,10), got {self.doses!r}")
        object.__setattr__(self, "doses", tuple(sorted(doses)))
        if not self.start_delays or any(not math.isfinite(d) or d < 0
                                        for d in self.start_delays):
            raise OptimisationError(f"start delays must be days >= 0, got "
                                    f"{self.start_delays!r}")
        object.__setattr__(self, "start_delays", tuple(sorted(set(map(float,
                                                                          self.start_delays)))))
        if not self.durations or any(int(d) != d or d < 1 for d in self.durations):
            raise OptimisationError(f"durations must be whole numbers of days >= 1, got "
                                    f"{self.durations!r}")
        object.__setattr__(self, "durations", tuple(sorted({int(d) for d in
                                                            self.durations})))
        if not 0 < self.target_pct <= 100:
            raise OptimisationError(f"the target must be a percentage of responders in "
                                    f"(0, 100], got {self.target_pct!r}")
        if self.objective not in OBJECTIVES:
            raise OptimisationError(f"objective must be one of {', '.join(OBJECTIVES)}, got "
                                    f"{self.objective!r}{closest(self.objective, OBJECTIVES)}")


@dataclass(frozen=True, repr=False)
class DoseOptimum:
    """``best``: the chosen design and its values; ``evaluated``: every candidate trial
    (the search's path); ``curve``: response at each dose step of the chosen start and
    duration, with replicate intervals; ``replicates``: the chosen design's replicate
    trials; ``notes``."""

    search: DoseSearch
    best: dict
    evaluated: pd.DataFrame
    curve: pd.DataFrame
    replicates: pd.DataFrame
    notes: tuple[str, ...]

    def __repr__(self) -> str:
        b = self.best
        unit = f" {b['dose_unit']}" if b.get("dose_unit") else ""
        # the replicate trials' verdict beside the point estimate: a user test (2026-12-05)
        # read 41.3% against a 40% target as an answer, which 20% of replicates reached
        chance = b.get("probability_reaching_target")
        replicates = "" if chance is None or not np.isfinite(chance) else (
            f"; target {self.search.target_pct:g}% reached in {chance:.0%} of replicate "
            f"trials (median {b['replicate_median']:.1f}%)")
        return (f"DoseOptimum({b['dose']:g}{unit} from day +{b['start_delay']:g} for up to "
                f"{b['max_days']} days: {b['response_pct']:.1f}% responding, "
                f"{b['total_drug']:.4g}{unit} per patient{replicates})")

    def plot(self, path: str | Path | None = None):
        return plot_optimum(self, path)


def _designs(spec: TrialSpec, search: DoseSearch):
    names = [a.name for a in spec.arms]
    if search.arm not in names:
        raise OptimisationError(f"no arm {search.arm!r} in the trial{closest(search.arm, names)}"
                                f"; arms: {', '.join(names)}")
    design = spec.arms[names.index(search.arm)]
    if not design.treatment:
        raise OptimisationError(f"arm {search.arm!r} has no treatment whose dose could vary; "
                                f"choose a treated arm")
    return design


def dose_unit(regimen: str, search: DoseSearch) -> str:
    """The unit of the searched drug's daily dose in ``regimen`` ("hetrombopag 3.75 mg" ->
    "mg"; a user test, 2026-12-04: the answer and ``total_drug`` had none)."""
    dose = regimen_dose(regimen, search.drug)
    return " ".join(dose[2:]) if dose else ""


def _dose_key(search: DoseSearch) -> str:
    return f"dose:{search.drug}" if search.drug else "dose"


def _candidate(spec: TrialSpec, design, search: DoseSearch, dose: float, start: float,
               days: int) -> TrialSpec:
    try:
        (changed,) = cell_designs([design], {_dose_key(search): dose, "start_delay": start,
                                             "max_days": days})
    except PlateletPDError as error:
        raise OptimisationError(str(error)) from None
    return one_arm_trial(spec, changed)


def _row(dose, start, days, result, target) -> dict:
    summary = result.summary.iloc[0]
    doses_given = float(summary.mean_treatment_doses)
    return {"dose": dose, "start_delay": start, "max_days": days,
            "response_pct": float(summary.response_pct),
            "response_pct_lower": float(summary.response_pct_lower),
            "response_pct_upper": float(summary.response_pct_upper),
            "enrolled": int(summary.enrolled), "mean_treatment_days": doses_given,
            "total_drug": dose * doses_given,
            "reaches_target": bool(summary.response_pct >= target)}


@many_batches
def optimise_dose(spec: TrialSpec, search: DoseSearch, *, replicates: int = 20, client=None,
                  chunk: int = CHUNK, progress: bool = False) -> DoseOptimum:
    """The least-drug (or fewest-days) design reaching the target; see the module text."""
    design = _designs(spec, search)
    if search.by_day is not None:
        if not 0 < search.by_day <= spec.follow_up_days:
            raise OptimisationError(f"by_day must be within the follow-up (0, "
                                    f"{spec.follow_up_days:g}] days, got {search.by_day!r}")
        spec = replace(spec, response={**spec.response, "by_day": float(search.by_day)})
    if not isinstance(replicates, (int, np.integer)) or replicates < 2:
        raise OptimisationError(f"the answer's uncertainty needs at least 2 replicate trials "
                                f"(20 or more for a usable interval), got {replicates!r}")
    _candidate(spec, design, search, search.doses[0], search.start_delays[0],
               search.durations[0])  # a dose the arm cannot take fails before any trial
    caveats = check_design_dimensions(
        spec, ["start_delay"] if len(search.start_delays) > 1 else [], "--start-days")
    evaluated: dict[tuple, dict] = {}

    def evaluate(points: list[tuple]) -> None:
        points = [p for p in dict.fromkeys(points) if p not in evaluated]
        if not points:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = run_trials([_candidate(spec, design, search, *p) for p in points],
                                 client, chunk=chunk, progress=progress,
                                 label="candidate designs")
        for point, result in zip(points, results):
            evaluated[point] = _row(*point, result, search.target_pct)

    doses = search.doses
    pairs = [(s, d) for s in search.start_delays for d in search.durations]
    evaluate([(doses[-1], s, d) for s, d in pairs])  # can the highest step reach it?
    feasible = [(s, d) for s, d in pairs if evaluated[(doses[-1], s, d)]["reaches_target"]]
    if not feasible:
        best = max(evaluated.values(), key=lambda r: r["response_pct"])
        raise OptimisationError(
            f"no design within the bounds reaches {search.target_pct:g}% responding by day "
            f"{spec.response['by_day']:g}: the highest dose step ({doses[-1]:g}) gives at "
            f"most {best['response_pct']:.1f}% (from day +{best['start_delay']:g}, up to "
            f"{best['max_days']} days; {best['enrolled']} enrolled); raise the highest "
            f"dose, widen the start days or durations, allow more days to respond, or lower "
            f"the target")
    # bisection over dose steps, all (start, duration) pairs advancing together
    bounds = {pair: [-1, len(doses) - 1] for pair in feasible}  # (fails, reaches) indices
    while any(high - low > 1 for low, high in bounds.values()):
        middle = {pair: (low + high) // 2 for pair, (low, high) in bounds.items()
                  if high - low > 1}
        evaluate([(doses[m], *pair) for pair, m in middle.items()])
        for pair, m in middle.items():
            bounds[pair][1 if evaluated[(doses[m], *pair)]["reaches_target"] else 0] = m
    candidates = [evaluated[(doses[high], *pair)] for pair, (low, high) in bounds.items()]
    key = (lambda r: (r["total_drug"], r["mean_treatment_days"])) \
        if search.objective == "total_drug" else \
        (lambda r: (r["mean_treatment_days"], r["total_drug"]))
    best = dict(min(candidates, key=key))
    notes = _monotone_notes(evaluated)
    # the curve at the chosen start and duration: every dose step, then replicates
    start, days = best["start_delay"], best["max_days"]
    evaluate([(dose, start, days) for dose in doses])
    table = _replicate_table(spec, design, search, start, days, replicates, client, chunk,
                             progress, notes)
    curve = pd.DataFrame([evaluated[(dose, start, days)] for dose in doses])
    spread = table.groupby("dose").response_pct.quantile([0.025, 0.5, 0.975]).unstack()
    reached = table.groupby("dose").response_pct.apply(
        lambda v: float(np.mean(v >= search.target_pct)))
    curve = curve.assign(replicate_median=curve.dose.map(spread[0.5]),
                         replicate_lower=curve.dose.map(spread[0.025]),
                         replicate_upper=curve.dose.map(spread[0.975]),
                         probability_reaching_target=curve.dose.map(reached))
    chosen = curve[curve.dose == best["dose"]].iloc[0]
    best.update(replicate_median=chosen.replicate_median,
                replicate_lower=chosen.replicate_lower,
                replicate_upper=chosen.replicate_upper,
                probability_reaching_target=chosen.probability_reaching_target)
    best["regimen"] = " + ".join(_candidate(spec, design, search, best["dose"], start,
                                            days).arms[0].treatment)
    best["dose_unit"] = dose_unit(best["regimen"], search)
    best["response_without_drug_pct"] = _without_drug(spec, design, search, start, days,
                                                      client, chunk)
    notes += caveats + _search_notes(spec, search, best, evaluated, replicates, curve)
    frame = pd.DataFrame(list(evaluated.values())).sort_values(
        ["start_delay", "max_days", "dose"]).reset_index(drop=True)
    return DoseOptimum(search, best, frame, curve, table, tuple(notes))


def _replicate_table(spec, design, search, start, days, replicates, client, chunk, progress,
                     notes: list) -> pd.DataFrame:
    """Every dose step at (start, days) in ``replicates`` trials: new patients (seeds as
    run_replicates) and, with a fit, parameters drawn from its uncertainty."""
    from plateletpd.study.uncertainty import (TrialUncertainty, UncertaintyError,
                                              _replicate_spec)

    try:
        uncertainty = TrialUncertainty.for_trial(spec)
    except UncertaintyError as error:
        uncertainty = None
        notes.append(f"replicates vary the patients only: {error}")
    else:
        notes.extend(uncertainty.notes)
    specs, keys = [], []
    for replicate in range(replicates):
        *_, seeded = _replicate_spec(spec, replicate, uncertainty)
        for dose in search.doses:
            specs.append(_candidate(seeded, design, search, dose, start, days))
            keys.append((replicate, dose))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = run_trials(specs, client, chunk=chunk, progress=progress,
                             label="replicate trials")
    return pd.DataFrame([{"replicate": r, "dose": dose,
                          "parameters": "drawn from the fit" if uncertainty else "point",
                          "response_pct": float(result.summary.response_pct.iloc[0]),
                          "mean_treatment_days": float(
                              result.summary.mean_treatment_doses.iloc[0])}
                         for (r, dose), result in zip(keys, results)])


def _without_drug(spec, design, search, start, days, client, chunk) -> float:
    """The response rate of the same patients with the searched drug left out (the arm's
    other drugs, start and rules kept): what the drug adds."""
    drug = (search.drug or design.treatment[0].split()[0]).lower()
    kept = tuple(d for d in design.treatment if d.split()[0].lower() != drug)
    (changed,) = cell_designs([replace(design, treatment=kept)],
                              {"start_delay": start, "max_days": days})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (result,) = run_trials([one_arm_trial(spec, changed)], client, chunk=chunk)
    return float(result.summary.response_pct.iloc[0])


def _monotone_notes(evaluated: dict) -> list[str]:
    notes = []
    frame = pd.DataFrame(list(evaluated.values()))
    for (start, days), part in frame.groupby(["start_delay", "max_days"]):
        values = part.sort_values("dose").response_pct.to_numpy()
        if np.any(np.diff(values) < 0):
            notes.append(f"from day +{start:g} for {days} days the response rate fell as the "
                         f"dose rose between evaluated steps; the bisection's answer may not "
                         f"be the least dose reaching the target there")
    return notes


def _search_notes(spec, search, best, evaluated, replicates, curve=None) -> list[str]:
    cells = len(search.doses) * len(search.start_delays) * len(search.durations)
    notes = [(f"{len(evaluated)} candidate trials of {spec.subjects_per_arm} patients "
              f"screened each, seed {spec.seed} (the same patients in every candidate): "
              f"the dose steps are bisected, so not every one of the {cells} designs of the "
              f"grid is run"),
             f"{replicates} replicate trials per dose step at the answer"]
    if best["probability_reaching_target"] < 0.5:
        higher = None if curve is None else curve[curve.dose > best["dose"]]
        better = higher is not None and len(higher) and \
            higher.probability_reaching_target.max() > best["probability_reaching_target"]
        notes.append(f"the answer reaches the target in these patients but in only "
                     f"{best['probability_reaching_target']:.0%} of replicate trials: a "
                     f"new trial would more likely miss it; " + (
                         "a higher dose step reaches it more often (the curve)" if better
                         else "no higher dose step reaches it more often: what is uncertain "
                              "is the population (between-study and parameter uncertainty), "
                              "not the dose"))
    without = best["response_without_drug_pct"]
    notes.append(f"without the drug the same patients respond at {without:.1f}% (the "
                 f"answer: {best['response_pct']:.1f}%)")
    if without >= search.target_pct:
        notes.append("the target is reached without the drug: the drug is not what reaches "
                     "it; raise the target or judge the difference from no treatment")
    if best["dose"] == search.doses[0]:
        notes.append("the answer is the lowest dose step: lower steps may reach the target too")
    if len(search.durations) > 1 and best["max_days"] == min(search.durations):
        notes.append("the answer is the shortest duration searched: shorter courses may "
                     "reach the target too (add them to --durations)")
    if len(search.start_delays) > 1 and best["start_delay"] in (min(search.start_delays),
                                                                 max(search.start_delays)):
        notes.append(f"the answer's start (day +{best['start_delay']:g}) is at the edge of the "
                     f"start days searched")
    return notes


# ------------------------------------------------------------------------------ output
def plot_optimum(result: DoseOptimum, path: str | Path | None = None):
    """Response rate against dose at the chosen start and duration: the search's patients
    (points) and the replicate trials' median and 95% band; the target and the answer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve, best = result.curve, result.best
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    axis.fill_between(curve.dose, curve.replicate_lower, curve.replicate_upper, alpha=0.25,
                      label="replicate trials, 95% (parameter uncertainty)")
    axis.plot(curve.dose, curve.replicate_median, "--", label="replicate median")
    axis.plot(curve.dose, curve.response_pct, "o-", label="search's patients")
    axis.axhline(result.search.target_pct, color="red", linewidth=0.8, label="target")
    axis.axvline(best["dose"], color="black", linewidth=0.8, linestyle=":",
                 label=f"answer: {best['dose']:g}")
    axis.axhline(best["response_without_drug_pct"], color="grey", linewidth=0.8,
                 linestyle="--", label="without the drug (same patients)")
    axis.set_xlabel(_dimension_label(_dose_key(result.search), best["regimen"]))
    axis.set_ylabel("responding by the response day (%)")
    axis.set_title(f"arm {result.search.arm!r}, its dose varied: from day "
                   f"+{best['start_delay']:g}, up to {best['max_days']} days", fontsize=10)
    axis.set_ylim(0, 100)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=110)
        plt.close(figure)
    return figure


def write_optimum(result: DoseOptimum, spec: TrialSpec, folder: Path) -> list[Path]:
    """optimum.json, evaluated.csv, curve.csv, replicates.csv, curve.png, provenance: one
    folder, whole or not at all."""
    import matplotlib.pyplot as plt

    folder = Path(folder)
    tables = {"evaluated.csv": result.evaluated, "curve.csv": result.curve,
              "replicates.csv": result.replicates}
    with atomic_folder(folder) as staging:
        for name, table in tables.items():
            atomic_write(staging / name, lambda p, t=table: t.to_csv(p, index=False))
        write_json(staging / "optimum.json", {k: (v.item() if hasattr(v, "item") else v)
                                              for k, v in result.best.items()})
        figure = plot_optimum(result)
        atomic_write(staging / "curve.png", lambda p: figure.savefig(p, dpi=110, format="png"))
        plt.close(figure)
        search = result.search
        write_json(staging / "provenance.json", {**trial_provenance(spec), **dict(
            arm=search.arm, drug=search.drug, dose_unit=result.best.get("dose_unit", ""),
            doses=list(search.doses), start_delays=list(search.start_delays),
            durations=list(search.durations), target_pct=search.target_pct,
            by_day=spec.response["by_day"] if search.by_day is None else search.by_day,
            objective=search.objective, notes=list(result.notes))})
    return [folder / n for n in (*tables, "optimum.json", "curve.png", "provenance.json")]


def parse_numbers(text: str, what: str) -> list[float]:
    """``"2.5,5,7.5"`` -> [2.5, 5.0, 7.5], or a clear error naming the option."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise OptimisationError(f"{what} expects comma-separated numbers, got {text!r}"
                                ) from None
    if not values:
        raise OptimisationError(f"{what} expects at least one number, got {text!r}")
    return values
