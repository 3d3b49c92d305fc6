"""Global sensitivity analysis of trial endpoints: Sobol first- and total-order indices with
bootstrap intervals, and Morris screening as the cheap first pass, computed by SALib
(Herman and Usher 2017, J Open Source Softw 2(9):97; Iwanaga et al. 2022, Socio-Environ Syst
Model 4:18155) from virtual trials.

Factors (``--factor KIND:NAME=LOW,HIGH``), each varied uniformly between its bounds:

* ``parameter:NAME``: a model parameter's typical value (the model's unit);
* ``cv:NAME``: the between-patient coefficient of variation of a varied quantity
  (``[population] cv``; 0.3 = 30%; its correlations with the others are kept);
* design variables of the chosen arm: ``dose`` (or ``dose:DRUG``; the arm's unit),
  ``start_delay`` (days), ``max_days`` (days, rounded to whole days), ``entry_below``
  (x10^9/L).

Endpoints of the arm (:data:`ENDPOINTS`): the response rate, the time to a count >= 100,
the nadir and the days below 50, as in the trial's tables.

Every sample is one trial of the arm with the trial's seed: the same virtual patients
(their random effects as standard draws) in every sample, common random numbers, so the
indices measure the factors' effects and not a resampling of patients; the patients' own
spread is a fixed background (raise ``--n`` to make the endpoints less specific to it).
Samples run through :func:`plateletpd.study.distributed.run_trials`, on a Dask cluster
when a client is given.

Convergence: Sobol indices are recomputed on the first quarter and half of the base
samples (a Sobol sequence's prefix is itself a balanced design), so the table shows them as
the samples double; ``converged`` is true when the last doubling moved no index by more
than ``tolerance``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from plateletpd.errors import PlateletPDError, closest
from plateletpd.io.files import atomic_folder, atomic_write, write_json
from plateletpd.numerics.kernels import many_batches
from plateletpd.population.variability import Variability
from plateletpd.study.distributed import CHUNK, optional, run_trials
from plateletpd.study.sweep import (cell_designs, cell_spec, check_design_dimensions,
                                   check_share_dimensions)
from plateletpd.study.trial import TrialResult, TrialSpec, one_arm_trial, trial_provenance

#: the endpoints analysed: name -> (unit, how it is computed from the arm's patients)
ENDPOINTS = {
    "response_pct": ("%", "responders by the response rule's by_day (summary.csv)"),
    "time_to_100": ("days", ("mean of days_to_100 (first visit with PLT >= 100, censored "
                             "at the last visit; patients already >= 100 at day 0 left out)")),
    "nadir": ("x10^9/L", "mean nadir over the cycle"),
    "days_below_50": ("days", "mean days with the count below 50"),
}
DESIGN_FACTORS = ("dose", "start_delay", "max_days", "entry_below")
#: ``share:GROUP``: the share of the drawn patients in a [[population.mixture]] group
KINDS = ("parameter", "cv", "share", *DESIGN_FACTORS)
#: the fewest Sobol base samples: the convergence check analyses a quarter of them (4)
MINIMUM_SOBOL_SAMPLES = 16


class SensitivityError(PlateletPDError):
    """A sensitivity analysis that cannot run as asked."""


@dataclass(frozen=True)
class Factor:
    """A quantity varied uniformly in [low, high]: ``parameter:NAME``, ``cv:NAME``,
    ``share:GROUP`` (a mixture group's share of the drawn patients) or a design variable
    (``dose``, ``dose:DRUG``, ``start_delay``, ``max_days``, ``entry_below``)."""

    name: str
    low: float
    high: float

    def __post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise SensitivityError(f"factor {self.name}: bounds must be finite numbers with "
                                   f"low < high, got {self.low:g}, {self.high:g}")
        if self.kind == "cv" and self.low < 0:
            raise SensitivityError(f"factor {self.name}: a CV is >= 0, got low {self.low:g}")
        if self.kind == "share" and not (0 <= self.low and self.high <= 1):
            raise SensitivityError(f"factor {self.name}: a share lies in [0, 1], got "
                                   f"{self.low:g}, {self.high:g}")

    @property
    def kind(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def target(self) -> str:
        return self.name.split(":", 1)[1] if ":" in self.name else ""

    @classmethod
    def parse(cls, text: str) -> Factor:
        """``"parameter:chemotherapy_sensitivity=3.5,5.5"`` -> Factor."""
        name, sep, bounds = text.partition("=")
        values = [v for v in bounds.split(",") if v.strip()]
        if not sep or len(values) != 2:
            raise SensitivityError(f"--factor expects KIND:NAME=LOW,HIGH or DESIGN=LOW,HIGH "
                                   f"(e.g. parameter:chemotherapy_sensitivity=3.5,5.5, "
                                   f"cv:platelets_baseline=0.1,0.3, dose=2.5,15), got "
                                   f"{text!r}")
        try:
            low, high = (float(v) for v in values)
        except ValueError:
            raise SensitivityError(f"--factor {name}: bounds must be numbers, got "
                                   f"{bounds!r}") from None
        return cls(name.strip(), low, high)


def problem(factors: Sequence[Factor]) -> dict:
    """SALib's problem dictionary."""
    names = [f.name for f in factors]
    if len(set(names)) != len(names):
        raise SensitivityError(f"a factor is named twice: {names}")
    if not factors:
        raise SensitivityError("give at least one factor (--factor)")
    return {"num_vars": len(factors), "names": names,
            "bounds": [[f.low, f.high] for f in factors]}


# ------------------------------------------------------------------------------ trials
def check_factors(spec: TrialSpec, arm: str, factors: Sequence[Factor]) -> None:
    """Refuse factors the trial cannot take, before any simulation."""
    model = spec.model
    for factor in factors:
        if factor.kind not in KINDS:
            raise SensitivityError(f"factor {factor.name!r}: unknown kind {factor.kind!r}"
                                   f"{closest(factor.kind, KINDS)}; use parameter:NAME, "
                                   f"cv:NAME, share:GROUP, dose, dose:DRUG, start_delay, "
                                   f"max_days or entry_below")
        if factor.kind in ("parameter", "cv", "share") and not factor.target:
            example = "large spleen" if factor.kind == "share" else \
                "chemotherapy_sensitivity"
            raise SensitivityError(f"factor {factor.name!r}: name the quantity, e.g. "
                                   f"{factor.kind}:{example}")
        if factor.kind == "parameter":
            if factor.target not in model.parameters:
                raise SensitivityError(
                    f"factor {factor.name}: {factor.target!r} is not a parameter of "
                    f"{model.name}{closest(factor.target, model.parameter_names)}")
            entry = model.parameters[factor.target]
            if factor.low < entry.lower or factor.high > entry.upper:
                raise SensitivityError(
                    f"factor {factor.name}: bounds [{factor.low:g}, {factor.high:g}] leave "
                    f"the model's [{entry.lower:g}, {entry.upper:g}]; narrow them")
        elif factor.kind == "cv" and factor.target not in spec.variability.names:
            raise SensitivityError(
                f"factor {factor.name}: {factor.target!r} is not varied between patients in "
                f"this trial ([population] cv names {', '.join(spec.variability.names) or 'none'}"
                f"){closest(factor.target, spec.variability.names)}")
    shares = {f.name: [f.low, f.high] for f in factors if f.kind == "share"}
    if shares:
        try:
            check_share_dimensions(spec, shares)  # known groups, every corner's sum <= 1
        except PlateletPDError as error:
            raise SensitivityError(str(error).replace("--grid", "--factor")) from None
    apply_factors(spec, arm, factors, [f.low for f in factors])  # design values usable


def apply_factors(spec: TrialSpec, arm: str, factors: Sequence[Factor],
                  values: Sequence[float]) -> TrialSpec:
    """A one-arm trial of ``arm`` with every factor at its value."""
    names = [a.name for a in spec.arms]
    if arm not in names:
        raise SensitivityError(f"no arm {arm!r} in the trial{closest(arm, names)}; arms: "
                               f"{', '.join(names)}")
    design = spec.arms[names.index(arm)]
    parameters, cvs, cell = {}, {}, {}
    for factor, value in zip(factors, values):
        if factor.kind == "parameter":
            parameters[factor.target] = float(value)
        elif factor.kind == "cv":
            cvs[factor.target] = float(value)
        else:
            cell[factor.name] = float(round(value) if factor.kind == "max_days" else value)
    try:
        model = spec.model.with_parameters(parameters) if parameters else spec.model
        (design,) = cell_designs([design], cell) if cell else (design,)
        spec = cell_spec(spec, cell)  # a share factor: who is in its group
    except PlateletPDError as error:
        raise SensitivityError(f"arm {arm!r}: {error}") from None
    variability = with_cv(spec.variability, cvs) if cvs else spec.variability
    return replace(one_arm_trial(spec, design), model=model, variability=variability)


def with_cv(variability: Variability, cvs: dict[str, float]) -> Variability:
    """``variability`` with new CVs for some quantities, correlations kept."""
    sd = np.sqrt(np.diag(variability.covariance))
    new = sd.copy()
    for name, cv in cvs.items():
        k = variability.names.index(name)
        new[k] = math.sqrt(math.log1p(cv * cv)) if variability.transforms[k] == \
            "lognormal" else cv
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.where(np.outer(sd, sd) > 0, variability.covariance /
                               np.outer(sd, sd), np.eye(len(sd)))
    return Variability(variability.names, variability.transforms,
                       correlation * np.outer(new, new), variability.groups)


def arm_endpoints(result: TrialResult) -> dict[str, float]:
    """The analysed endpoints of a one-arm trial (:data:`ENDPOINTS`)."""
    patients = result.subjects
    time_to_100 = patients.days_to_100.to_numpy(dtype=float)
    return {"response_pct": float(result.summary.response_pct.iloc[0]),
            "time_to_100": float(np.nanmean(time_to_100)) if np.isfinite(
                time_to_100).any() else math.nan,
            "nadir": float(patients.nadir.mean()),
            "days_below_50": float(patients.days_below_50.mean())}


def trial_evaluator(spec: TrialSpec, arm: str, factors: Sequence[Factor], client=None,
                    chunk: int = CHUNK, progress: bool = False) -> Callable:
    """``evaluate(X) -> Y``: one trial per row of factor values, endpoints as columns."""
    import warnings

    check_factors(spec, arm, factors)

    def evaluate(matrix: np.ndarray) -> np.ndarray:
        specs = [apply_factors(spec, arm, factors, row) for row in matrix]
        with warnings.catch_warnings():  # patients outside bounds: counted in the summary
            warnings.simplefilter("ignore")
            results = run_trials(specs, client, chunk=chunk, progress=progress,
                                 label="sensitivity samples")
        return np.array([[arm_endpoints(r)[name] for name in ENDPOINTS] for r in results])
    return evaluate


# ------------------------------------------------------------------------------ analyses
@dataclass(frozen=True, repr=False)
class SensitivityResult:
    """``indices``: one row per endpoint and factor (Sobol: S1, S1 interval, ST, ST
    interval; Morris: mu_star, its interval, mu, sigma); ``convergence`` (Sobol): the indices
    at a quarter, half and all of the base samples; ``samples``: factor values and
    endpoints per trial; ``notes``."""

    method: str
    factors: tuple[Factor, ...]
    endpoints: tuple[str, ...]
    indices: pd.DataFrame
    samples: pd.DataFrame
    convergence: pd.DataFrame
    converged: dict
    notes: tuple[str, ...]
    samples_requested: int = 0   # base samples (Sobol) or trajectories (Morris)
    sampling_seed: int = 0       # the seed of the factor samples (not the patients')

    def __repr__(self) -> str:
        return (f"SensitivityResult({self.method}, {len(self.factors)} factors, "
                f"{len(self.samples)} trials)")

    def plot(self, path: str | Path | None = None):
        """Sobol: S1 and ST with their intervals per endpoint; Morris: mu* against sigma."""
        return plot_sensitivity(self, path)


def _defined(endpoint: str, values: np.ndarray, notes: list, what: str) -> bool:
    """Whether ``endpoint`` is defined in every trial; if not, a note says in how many it is
    not and that it gets no ``what`` (indices or effects)."""
    if np.all(np.isfinite(values)):
        return True
    notes.append(f"{endpoint}: not defined in {int(np.sum(~np.isfinite(values)))} of "
                 f"{len(values)} trials (e.g. nobody below 100 at day 0); no {what}")
    return False


def _check_sobol_samples(samples) -> None:
    if not isinstance(samples, (int, np.integer)) or isinstance(samples, bool) or \
            samples < MINIMUM_SOBOL_SAMPLES or samples & (samples - 1):
        raise SensitivityError(
            f"Sobol indices need a power of 2 of at least {MINIMUM_SOBOL_SAMPLES} base samples "
            f"(16, 32, 64, ...; each costs factors + 2 trials, and the convergence check "
            f"analyses a quarter and a half of them), got {samples!r}; 256 or more give "
            f"intervals narrow enough to rank factors")


def sobol_indices(factors: Sequence[Factor], evaluate: Callable, samples: int = 256, *,
                  endpoints: Sequence[str] = ("y",), seed: int = 0, resamples: int = 1000,
                  confidence: float = 0.95, tolerance: float = 0.05) -> SensitivityResult:
    """Sobol first- and total-order indices of each output column of ``evaluate(X)``
    (Saltelli's sampling, Jansen's estimators, via SALib) with bootstrap intervals, and the
    convergence table. Cost: ``samples * (factors + 2)`` evaluations."""
    _check_sobol_samples(samples)
    sample = optional("SALib.sample.sobol", "Sobol indices")
    analyze = optional("SALib.analyze.sobol", "Sobol indices")
    spec = problem(factors)
    design = sample.sample(spec, samples, calc_second_order=False, scramble=True, seed=seed)
    outputs = np.asarray(evaluate(design), dtype=float).reshape(len(design), -1)
    per_base = len(factors) + 2  # rows per base sample (A, AB_1..AB_D, B)
    rows, convergence, converged, notes = [], [], {}, []
    for k, endpoint in enumerate(endpoints):
        values = outputs[:, k]
        if not _defined(endpoint, values, notes, "indices"):
            continue
        if np.ptp(values) == 0:
            notes.append(f"{endpoint}: the same in every trial; no factor moves it")
            continue
        for base in (samples // 4, samples // 2, samples):
            result = analyze.analyze(spec, values[:base * per_base], calc_second_order=False,
                                     num_resamples=resamples, conf_level=confidence,
                                     seed=seed)
            for j, factor in enumerate(factors):
                convergence.append({"endpoint": endpoint, "base_samples": base,
                                    "trials": base * per_base, "factor": factor.name,
                                    "S1": result["S1"][j], "ST": result["ST"][j]})
        half = pd.DataFrame([c for c in convergence if c["endpoint"] == endpoint])
        last = half[half.base_samples == samples].set_index("factor")
        before = half[half.base_samples == samples // 2].set_index("factor")
        moved = float(np.max(np.abs((last[["S1", "ST"]] - before[["S1", "ST"]]).to_numpy())))
        converged[endpoint] = moved <= tolerance
        if not converged[endpoint]:
            notes.append(f"{endpoint}: an index moved by {moved:.3f} (> {tolerance:g}) as the "
                         f"base samples doubled from {samples // 2} to {samples}; double "
                         f"them again")
        for j, factor in enumerate(factors):
            rows.append({"endpoint": endpoint, "factor": factor.name,
                         "S1": result["S1"][j],
                         "S1_lower": result["S1"][j] - result["S1_conf"][j],
                         "S1_upper": result["S1"][j] + result["S1_conf"][j],
                         "ST": result["ST"][j],
                         "ST_lower": result["ST"][j] - result["ST_conf"][j],
                         "ST_upper": result["ST"][j] + result["ST_conf"][j]})
    table = pd.DataFrame(design, columns=[f.name for f in factors])
    for k, endpoint in enumerate(endpoints):
        table[endpoint] = outputs[:, k]
    notes.append(f"bootstrap intervals: {confidence:.0%}, {resamples} resamples (normal "
                 f"approximation, SALib)")
    return SensitivityResult("sobol", tuple(factors), tuple(endpoints), pd.DataFrame(rows),
                             table, pd.DataFrame(convergence), converged, tuple(notes))


def morris_screening(factors: Sequence[Factor], evaluate: Callable, trajectories: int = 10,
                     *, levels: int = 4, endpoints: Sequence[str] = ("y",), seed: int = 0,
                     resamples: int = 1000, confidence: float = 0.95) -> SensitivityResult:
    """Morris elementary effects (mu*, its bootstrap interval, mu, sigma) per output column;
    cost ``trajectories * (factors + 1)`` evaluations."""
    if not isinstance(trajectories, (int, np.integer)) or trajectories < 4:
        raise SensitivityError(f"Morris screening needs at least 4 trajectories (10 to 20 "
                               f"is usual; each costs factors + 1 trials), got "
                               f"{trajectories!r}")
    if not isinstance(levels, (int, np.integer)) or levels < 2 or levels % 2:
        raise SensitivityError(f"Morris levels must be an even whole number >= 2 (4 is "
                               f"usual), got {levels!r}")
    sample = optional("SALib.sample.morris", "Morris screening")
    analyze = optional("SALib.analyze.morris", "Morris screening")
    spec = problem(factors)
    design = sample.sample(spec, trajectories, num_levels=levels, seed=seed)
    outputs = np.asarray(evaluate(design), dtype=float).reshape(len(design), -1)
    rows, notes = [], []
    for k, endpoint in enumerate(endpoints):
        values = outputs[:, k]
        if not _defined(endpoint, values, notes, "effects"):
            continue
        result = analyze.analyze(spec, design, values, num_levels=levels,
                                 num_resamples=resamples, conf_level=confidence, seed=seed)
        for j, factor in enumerate(factors):
            rows.append({"endpoint": endpoint, "factor": factor.name,
                         "mu_star": result["mu_star"][j],
                         # mu* is a mean of absolute effects: never below 0 (the bootstrap's
                         # symmetric interval could reach below it)
                         "mu_star_lower": max(0.0, result["mu_star"][j]
                                              - result["mu_star_conf"][j]),
                         "mu_star_upper": result["mu_star"][j] + result["mu_star_conf"][j],
                         "mu": result["mu"][j], "sigma": result["sigma"][j]})
    table = pd.DataFrame(design, columns=[f.name for f in factors])
    for k, endpoint in enumerate(endpoints):
        table[endpoint] = outputs[:, k]
    return SensitivityResult("morris", tuple(factors), tuple(endpoints), pd.DataFrame(rows),
                             table, pd.DataFrame(), {}, tuple(notes))


@many_batches
def run_sensitivity(spec: TrialSpec, arm: str, factors: Sequence[Factor], *,
                    method: str = "sobol", samples: int = 256, seed: int = 0, client=None,
                    chunk: int = CHUNK, progress: bool = False, **options
                    ) -> SensitivityResult:
    """Sobol indices (``samples`` base samples) or Morris screening (``samples``
    trajectories) of :data:`ENDPOINTS` of ``arm`` with respect to ``factors``; each sample
    is a trial of ``spec.subjects_per_arm`` patients with the trial's seed."""
    if method not in ("sobol", "morris"):
        raise SensitivityError(f"method must be 'sobol' or 'morris', got {method!r}")
    if method == "sobol":
        _check_sobol_samples(samples)  # before any trial runs
    caveats = check_design_dimensions(spec, [f.kind for f in factors], "--factor")
    evaluate = trial_evaluator(spec, arm, factors, client, chunk, progress)
    run = sobol_indices if method == "sobol" else morris_screening
    result = run(factors, evaluate, samples, endpoints=tuple(ENDPOINTS), seed=seed, **options)
    return replace(result, notes=tuple(caveats) + result.notes, samples_requested=samples,
                   sampling_seed=seed)


# ------------------------------------------------------------------------------ output
def plot_sensitivity(result: SensitivityResult, path: str | Path | None = None):
    """One panel per endpoint: Sobol S1 and ST bars with their intervals, or Morris mu*
    (with its interval) against sigma. Returns the figure (closed when saved)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    endpoints = list(dict.fromkeys(result.indices.endpoint)) if len(result.indices) else []
    if not endpoints:
        raise SensitivityError("nothing to plot: no endpoint has indices (see the notes)")
    # Morris: one row per factor (a scatter's labels overlapped with 14 factors)
    height = 4.0 if result.method == "sobol" else max(4.0, 0.32 * len(result.factors) + 1.6)
    width = 4.2 if result.method == "sobol" else 5.2
    figure, axes = plt.subplots(1, len(endpoints), figsize=(width * len(endpoints), height),
                                squeeze=False)
    for axis, endpoint in zip(axes[0], endpoints):
        part = result.indices[result.indices.endpoint == endpoint]
        unit = ENDPOINTS.get(endpoint, ("",))[0]
        if result.method == "sobol":
            x = np.arange(len(part))
            for offset, name, color in ((-0.2, "S1", "tab:blue"), (0.2, "ST", "tab:orange")):
                errors = np.vstack([part[name] - part[f"{name}_lower"],
                                    part[f"{name}_upper"] - part[name]])
                axis.bar(x + offset, part[name], width=0.4, yerr=errors, capsize=3,
                         color=color, label={"S1": "first order", "ST": "total"}[name])
            axis.set_xticks(x, part.factor, rotation=30, ha="right", fontsize=8)
            axis.set_ylabel("Sobol index (share of variance)")
            axis.axhline(0, color="black", linewidth=0.6)
        else:  # factors ranked by mu*, its interval, and sigma beside it
            part = part.sort_values("mu_star")
            y = np.arange(len(part))
            errors = np.vstack([part.mu_star - part.mu_star_lower,
                                part.mu_star_upper - part.mu_star])
            axis.barh(y, part.mu_star, xerr=errors, capsize=3, color="tab:blue",
                      label="mu* (95% bootstrap)")
            axis.plot(part.sigma, y, "D", color="tab:red", markersize=4, label="sigma")
            axis.set_yticks(y, part.factor, fontsize=8)
            axis.set_xlabel(f"mu*, sigma ({unit})" if unit else "mu*, sigma")
            axis.legend(fontsize=7, loc="lower right")
        axis.set_title(f"{endpoint}" + (f" ({unit})" if unit else ""), fontsize=10)
    if result.method == "sobol":
        axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=110)
        plt.close(figure)
    return figure


def write_sensitivity(result: SensitivityResult, spec: TrialSpec, arm: str, folder: Path
                      ) -> list[Path]:
    """indices.csv, samples.csv, convergence.csv (Sobol), sensitivity.png, notes and
    provenance: one folder, whole or not at all."""
    folder = Path(folder)
    with atomic_folder(folder) as staging:
        atomic_write(staging / "indices.csv",
                     lambda p: result.indices.to_csv(p, index=False))
        atomic_write(staging / "samples.csv",
                     lambda p: result.samples.to_csv(p, index=False))
        names = ["indices.csv", "samples.csv"]
        if len(result.convergence):
            atomic_write(staging / "convergence.csv",
                         lambda p: result.convergence.to_csv(p, index=False))
            names.append("convergence.csv")
        if len(result.indices):
            import matplotlib.pyplot as plt

            figure = plot_sensitivity(result)
            atomic_write(staging / "sensitivity.png",
                         lambda p: figure.savefig(p, dpi=110, format="png"))
            plt.close(figure)
            names.append("sensitivity.png")
        # the trial's record (fit, parameter values, design) and the analysis's own (a
        # user test, 2026-12-04: the sampling seed and the number of samples were missing)
        write_json(staging / "provenance.json", {**trial_provenance(spec), **dict(
            arm=arm, method=result.method,
            samples=result.samples_requested, sampling_seed=result.sampling_seed,
            factors=[[f.name, f.low, f.high] for f in result.factors],
            patients_per_trial=spec.subjects_per_arm, trials=len(result.samples),
            converged=result.converged, notes=list(result.notes),
            endpoints={name: ENDPOINTS[name] for name in result.endpoints
                       if name in ENDPOINTS})})
        names.append("provenance.json")
    return [folder / name for name in names]
