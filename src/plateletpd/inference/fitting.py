"""Fit model parameters to published arm-level outcomes with lmfit.

A fit configuration (TOML, see ``fits/cit_calibration/config.toml``) names the model, the
outcome data, the parameters to vary (bounds, fixed values or lmfit ``expr``), optional
log-normal priors, the virtual population and, for each study arm, how it was treated
(:class:`~plateletpd.study.cohort.ArmDesign`) and which rows it answers.

For every objective evaluation each arm is simulated for the same virtual patients (common
random numbers: the random effects are drawn once from the seed), its endpoints are
summarised like the publication's, and the residuals are ``(predicted - observed) / SE``
(standard errors from :mod:`plateletpd.io.outcomes`). A prior adds
``(log value - log mean) / sd_log``. lmfit carries bounds and the transforms it needs; the
model only ever sees plain values.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plateletpd.study.cohort import ArmDesign, simulate_arm
from plateletpd.study.endpoints import DAY0, ResponseRule, subject_values, summarise
from plateletpd.errors import PlateletPDError, closest
from plateletpd.io.files import atomic_folder, atomic_write, write_json, write_text
from plateletpd.io.inputs import checked_number, line_of, read_toml
from plateletpd.io.provenance import provenance
from plateletpd.model.definition import Model, load_model
from plateletpd.io.outcomes import bundled_outcomes_path, load_outcomes, require_usable
from plateletpd.population.variability import Variability, cohort_matrix
from plateletpd.simulation.simulate import _valid_rows

_FIT_KEYS = {"name", "model", "data", "seed", "subjects", "method", "max_evaluations",
             "description", "profile", "profile_points"}
#: chi-square rise that bounds a 95% profile-likelihood interval (chi2 quantile, 1 df)
PROFILE_LEVEL = 3.841
_ARM_KEYS = {"study", "arm", "label", "chemotherapy", "treatment", "entry_below",
             "start_delay", "stop_at", "stop_rise", "max_days", "follow_up_days", "day0",
             "response", "endpoints", "lines", "default_threshold", "params"}
_PARAMETER_KEYS = {"value", "vary", "lower", "upper", "expr"}


class FitConfigError(PlateletPDError):
    """A fit configuration that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class ArmSpec:
    """One study arm of a fit: its design, day 0, response rule and data rows."""

    study: str
    arm: str
    design: ArmDesign
    day0: str
    response: ResponseRule
    rows: pd.DataFrame
    default_threshold: float = 100.0
    params: dict = field(default_factory=dict)  # arm-specific fixed values (e.g. dose intensity)


@dataclass
class FitProblem:
    """Everything an objective evaluation needs, built once from a configuration."""

    model: Model
    arms: list[ArmSpec]
    parameters: Any  # lmfit.Parameters
    priors: dict[str, tuple[float, float]]
    variability: Variability
    eta: np.ndarray
    config: dict
    config_path: Path
    data_path: Path
    seed: int
    evaluations: int = 0

    # ------------------------------------------------------------------ simulation
    def cohort_matrix(self, values: dict[str, float], arm_params: dict) -> np.ndarray:
        """Parameter vectors of the virtual patients (CRN: the same eta every time).

        ``arm_params`` maps model parameters or covariates to a number (fixed for the arm) or
        to the name of a fit parameter (a study-level value, e.g. a population's typical
        chemotherapy sensitivity).
        """
        model = self.model
        arm_params = {k: values[v] if isinstance(v, str) else v for k, v in arm_params.items()}
        base = model.parameter_vector({**{k: v for k, v in values.items()
                                          if k in model.parameters},
                                       **{k: v for k, v in arm_params.items()
                                          if k in model.parameters}},
                                      {k: v for k, v in arm_params.items()
                                       if k in model.covariates})
        matrix = cohort_matrix(model, base, self.variability, self.eta)
        return matrix[_valid_rows(model, matrix)]

    def predict(self, values: dict[str, float]) -> pd.DataFrame:
        """Every data row with its prediction."""
        frames = []
        for spec in self.arms:
            result = simulate_arm(self.model, spec.design, self.cohort_matrix(values,
                                                                               spec.params))
            rows = spec.rows.copy()
            predicted, eligible = [], []
            for row in rows.itertuples():
                per_subject = subject_values(
                    result, row.endpoint, row.threshold, row.day, spec.day0, spec.response,
                    spec.default_threshold)
                predicted.append(summarise(per_subject, row.statistic))
                eligible.append(result.n)
            rows["predicted"] = predicted
            rows["virtual_patients"] = eligible
            rows["eligible_fraction"] = result.n / max(result.n_screened, 1)
            frames.append(rows)
        table = pd.concat(frames, ignore_index=True)
        table["residual"] = (table.predicted - table.observed) / table.standard_error
        return table

    def residuals(self, parameters) -> np.ndarray:
        """lmfit objective: weighted data residuals, then prior penalties."""
        self.evaluations += 1
        values = parameters.valuesdict()
        residual = self.predict(values)["residual"].to_numpy()
        # a non-finite prediction (no eligible patient, a failed integration) is a large
        # finite residual so that the optimiser backs away instead of stopping
        residual = np.where(np.isfinite(residual), residual, 1e3)
        penalties = [(math.log(max(values[name], 1e-300)) - math.log(mean)) / sd
                     for name, (mean, sd) in self.priors.items()]
        return np.concatenate([residual, penalties])


# ====================================================================== configuration
def load_fit_config(path: str | Path) -> FitProblem:
    """Read and validate a fit configuration; build its lmfit Parameters and arms. Errors
    name the file, the line and the entry, and say what was expected and what was given."""
    import lmfit

    path = Path(path)
    text, config = read_toml(path, FitConfigError, "fit configuration")

    def locate(where: str, key: str | None = None) -> int:
        """Line of ``key`` in the entry ``where`` ("fit", "parameters.x", "arms #2")."""
        section, _, name = where.partition(".")
        line = 1
        if section.startswith("arms #"):
            line = 0
            for _ in range(int(section[6:])):
                line = line_of(text, "arms", line + 1)
        elif section != "top level":
            line = line_of(text, section)
        line = line_of(text, name, line) if name else line
        return line_of(text, key, line) if key else line

    def fail(where: str, message: str, key: str | None = None) -> FitConfigError:
        return FitConfigError(f"{path}, line {locate(where, key)} [{where}]: {message}")

    def number(table: dict, key: str, where: str, default, **options):
        return checked_number(table, key, default, lambda message: fail(where, message, key),
                              key, **options)

    def check_keys(table, allowed: set[str], where: str) -> None:
        if not isinstance(table, dict):
            raise fail(where, f"must be a table of {', '.join(sorted(allowed))}, got {table!r}")
        for key in table:
            if key not in allowed:
                raise fail(where, f"unknown field {key!r}{closest(key, allowed)}; allowed: "
                                  f"{', '.join(sorted(allowed))}", key)

    fit = config.get("fit", {})
    check_keys(fit, _FIT_KEYS, "fit")
    check_keys(config, {"fit", "population", "parameters", "priors", "arms"}, "top level")
    for key in ("model", "data", "method", "name", "description"):
        if not isinstance(fit.get(key, ""), str):
            raise fail("fit", f"{key} must be text in quotes, got {fit[key]!r}", key)
    if "model" not in fit:
        raise fail("fit", "name the model to fit, e.g. model = \"cit_thrombopoiesis\"")
    try:
        model = load_model(fit["model"] if not fit["model"].endswith(".toml")
                           else path.parent / fit["model"])
    except PlateletPDError as error:
        raise fail("fit", f"model: {error}", "model") from None
    data_path = bundled_outcomes_path() if fit.get("data", "bundled") == "bundled" \
        else (path.parent / fit["data"]).resolve()
    data = load_outcomes(data_path)
    seed = fit.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise fail("fit", f"seed must be a non-negative integer (fits are reproducible), "
                          f"got {seed!r}", "seed")
    subjects = number(fit, "subjects", "fit", 200, whole=True)
    number(fit, "max_evaluations", "fit", 400, whole=True)
    number(fit, "profile_points", "fit", 7, whole=True, low=2.0)
    profiled = fit.get("profile", [])
    if not isinstance(profiled, list) or not all(isinstance(n, str) for n in profiled):
        raise fail("fit", f"profile must be a list of parameter names, got {profiled!r}",
                   "profile")

    parameters = lmfit.Parameters()
    for name, entry in config.get("parameters", {}).items():
        where = f"parameters.{name}"
        check_keys(entry, _PARAMETER_KEYS | {"like", "unit"}, where)
        # a study-level parameter is not in the model: it stands in for one ("like") in
        # the arms that map to it
        declared_name = entry.get("like", name)
        if declared_name not in model.parameters:
            raise fail(where, f"{model.name} has no parameter {declared_name!r}"
                              f"{closest(str(declared_name), model.parameters)}; a study-level "
                              f"parameter names the model parameter it stands for with like = ")
        declared = model.parameters[declared_name]
        lower, upper, value = (number(entry, key, where, default, low=None) for key, default in
                               (("lower", declared.lower), ("upper", declared.upper),
                                ("value", declared.value)))
        if lower < declared.lower or upper > declared.upper or not lower < upper:
            raise fail(where, f"bounds [{lower}, {upper}] go beyond the model file's "
                              f"[{declared.lower}, {declared.upper}] or are not lower < upper")
        if not lower <= value <= upper:
            raise fail(where, f"start value {value} is outside [{lower}, {upper}]", "value")
        if not isinstance(entry.get("vary", True), bool) or not isinstance(
                entry.get("expr", ""), str):
            raise fail(where, f"vary must be true or false and expr text, got "
                              f"vary = {entry.get('vary')!r}, expr = {entry.get('expr')!r}")
        parameters.add(name, value=value, min=lower, max=upper,
                       vary=entry.get("vary", True) and "expr" not in entry,
                       expr=entry.get("expr"))
        parameters[name].user_data = {"unit": declared.unit, "source": declared.source}

    priors = {}
    for name, entry in config.get("priors", {}).items():
        if name not in parameters:
            raise fail(f"priors.{name}", "a prior needs the parameter under [parameters]")
        check_keys(entry, {"mean", "cv", "source"}, f"priors.{name}")
        mean, cv = (number(entry, key, f"priors.{name}", None,
                           fix="a log-normal prior needs mean > 0 and cv > 0")
                    for key in ("mean", "cv"))
        priors[name] = (mean, math.sqrt(math.log1p(cv ** 2)))

    population = config.get("population", {})
    check_keys(population, {"cv", "correlations", "transforms"}, "population")
    for key, low in (("cv", 0.0), ("correlations", -1.0)):
        table = population.get(key, {})
        check_keys(table, set(table) if isinstance(table, dict) else set(), "population")
        for name in table:
            checked_number(table, name, None, lambda message: fail("population", message, key),
                           f"{key} {name}", low=low, low_included=True,
                           high=1.0 if key == "correlations" else None)
    try:
        variability = Variability.from_cv(population.get("cv", {}),
                                          {tuple(k.split("~")): v for k, v in
                                           population.get("correlations", {}).items()},
                                          population.get("transforms"))
    except PlateletPDError as error:
        raise fail("population", str(error)) from None
    for name in variability.names:
        if name not in model.parameters and name not in model.covariates:
            raise fail("population", f"cannot vary {name!r}: not a parameter or covariate"
                                     f"{closest(name, model.parameter_names)}")
    eta = variability.eta(subjects, seed)

    arms, used = [], set()
    entries = config.get("arms", [])
    if not isinstance(entries, list):
        raise fail("arms", f"arms must be a list of [[arms]] tables, got {entries!r}")
    for index, entry in enumerate(entries):
        where = f"arms #{index + 1}"
        check_keys(entry, _ARM_KEYS, where)
        arms.append(_arm(entry, data, where, fail, number))
        used |= set(arms[-1].rows.line)
    if not arms:
        raise fail("arms", "a fit needs at least one [[arms]] entry")
    for index, spec in enumerate(arms):
        require_usable(spec.rows, str(data_path))
        where = f"arms #{index + 1}"
        for key, value in spec.params.items():
            if key not in model.parameters and key not in model.covariates:
                raise fail(where, f"params: {model.name} has no parameter or covariate "
                           f"{key!r}{closest(key, model.parameters)}", "params")
            if isinstance(value, str) and value not in parameters:
                raise fail(where, f"params: {key} maps to {value!r}, which is not under "
                           f"[parameters]{closest(value, parameters)}", "params")
            if not isinstance(value, str):
                number(spec.params, key, where, None, low=None)
    return FitProblem(model, arms, parameters, priors, variability, eta, config, path,
                      data_path, seed)


def _arm(entry: dict, data: pd.DataFrame, where: str, fail, number) -> ArmSpec:
    study, arm = entry.get("study"), entry.get("arm")
    rows = data[(data.study == study) & (data.arm == arm)]
    if rows.empty:
        known = sorted(set(data.study + " / " + data.arm))
        raise fail(where, f"no data rows for study {study!r} arm {arm!r}"
                          f"{closest(f'{study} / {arm}', known)}")
    for key, kind in (("endpoints", str), ("lines", int), ("treatment", str)):
        listed = entry.get(key, [])
        if not isinstance(listed, list) or not all(isinstance(v, kind) for v in listed):
            raise fail(where, f"{key} must be a list of {kind.__name__ if kind is int else 'text'}"
                              f" values, got {listed!r}", key)
    if "endpoints" in entry:
        rows = rows[rows.endpoint.isin(entry["endpoints"])]
    if "lines" in entry:
        rows = rows[rows.line.isin(entry["lines"])]
    if rows.empty:
        raise fail(where, "the endpoints/lines filters leave no data rows")
    day0 = entry.get("day0", "treatment_start")
    if day0 not in DAY0:
        raise fail(where, f"day0 must be one of {', '.join(DAY0)}, got {day0!r}", "day0")
    response = entry.get("response", {})
    if not isinstance(response, dict) or set(response) - {"threshold", "rise", "by_day"}:
        raise fail(where, f"response takes threshold, rise and by_day, e.g. response = "
                          f"{{ threshold = 100, rise = 50, by_day = 14 }}; got {response!r}",
                   "response")
    follow_up = number(entry, "follow_up_days", where, 35.0)
    rule = {key: checked_number(response, key, default,
                                lambda message: fail(where, message, "response"),
                                f"response {key}", may_be_false=True,
                                high=follow_up if key == "by_day" else None,
                                fix=f"the response is judged within follow_up_days "
                                    f"({follow_up:g})" if key == "by_day" else "")
            for key, default in (("threshold", 100.0), ("rise", 50.0), ("by_day", 14.0))
            if key in response or key == "by_day"}
    if rule["by_day"] is None:
        raise fail(where, "response by_day must be a number of days, not false", "response")

    def optional(key, default):  # TOML has no null: false means "none"
        return number(entry, key, where, default, may_be_false=True)

    try:
        design = ArmDesign(
            name=entry.get("label", f"{study}/{arm}"),
            chemotherapy=entry.get("chemotherapy", "chemotherapy 1 dose d1"),
            treatment=tuple(entry.get("treatment", ())),
            entry_below=optional("entry_below", 75.0),
            start_delay=number(entry, "start_delay", where, 1.0, low_included=True),
            stop_at=optional("stop_at", 100.0), stop_rise=optional("stop_rise", False),
            max_days=number(entry, "max_days", where, 14, whole=True, low_included=True),
            follow_up_days=follow_up, smooth_stop=True)
        response_rule = ResponseRule(**rule)
    except PlateletPDError as error:
        raise fail(where, str(error)) from None
    return ArmSpec(study, arm, design, day0, response_rule, rows.reset_index(drop=True),
                   number(entry, "default_threshold", where, 100.0),
                   dict(entry.get("params", {})))


# ====================================================================== running and reporting
def run_fit(config_path: str | Path, out: str | Path | None = None, method: str | None = None,
            max_evaluations: int | None = None, verbose: bool = True,
            profile_parameters: bool = True):
    """Fit, profile the parameters listed under ``[fit] profile``, then write params.json,
    report.md, fit.png (and profiles.png) to ``out`` (if given)."""
    import lmfit

    problem = load_fit_config(config_path)
    fit_options = problem.config.get("fit", {})
    method = method or fit_options.get("method", "least_squares")
    max_evaluations = max_evaluations or fit_options.get("max_evaluations", 400)
    if not any(p.vary for p in problem.parameters.values()):
        raise FitConfigError(f"{config_path}: no parameter varies; set vary = true for one")
    # residuals are already divided by the published standard errors (absolute weights), so
    # the covariance is not rescaled by the reduced chi-square
    minimizer = lmfit.Minimizer(problem.residuals, problem.parameters, scale_covar=False)
    options = {"max_nfev": max_evaluations}
    if method == "least_squares":
        options["diff_step"] = 1e-3  # relative step for finite differences
    result = minimizer.minimize(method=method, **options)
    table = problem.predict(result.params.valuesdict())
    profiles = {name: profile(problem, result, name, fit_options.get("profile_points", 7))
                for name in (fit_options.get("profile", []) if profile_parameters else [])}
    if out is not None:
        write_fit(problem, result, table, Path(out), profiles)
    if verbose:
        print(lmfit.fit_report(result, show_correl=False))
    return problem, result, table


def profile(problem: FitProblem, result, name: str, points: int = 7,
            span: float = 3.0) -> dict:
    """Profile likelihood of ``name``: fixed on a grid of +/- ``span`` standard errors (or
    +/- 60% without one) around the optimum, the other parameters refitted at each point.
    The 95% interval is where the chi-square stays within 3.84 of its minimum; an end that
    the grid does not reach is reported as open (None)."""
    import lmfit

    if name not in result.params or not result.params[name].vary:
        raise FitConfigError(f"profile: {name!r} is not a varied parameter of this fit")
    best = result.params[name]
    step = best.stderr if best.stderr and np.isfinite(best.stderr) else 0.2 * abs(best.value)
    grid = np.unique(np.clip(best.value + np.linspace(-span, span, points) * step,
                             best.min, best.max))
    chi_square = []
    for value in grid:
        trial = result.params.copy()
        trial[name].set(value=value, vary=False)
        refit = lmfit.minimize(problem.residuals, trial, method="least_squares",
                               max_nfev=60, diff_step=1e-3, scale_covar=False)
        chi_square.append(float(refit.chisqr))
    chi_square = np.array(chi_square)
    level = min(chi_square.min(), float(result.chisqr)) + PROFILE_LEVEL
    inside = np.flatnonzero(chi_square <= level)

    def crossing(outside: int, inner: int) -> float:
        """Where the chi-square crosses ``level`` between two grid points (linear)."""
        rise = chi_square[outside] - chi_square[inner]
        fraction = (level - chi_square[inner]) / rise if rise > 0 else 0.5
        return float(grid[inner] + fraction * (grid[outside] - grid[inner]))

    first, last = (inside[0], inside[-1]) if inside.size else (0, len(grid) - 1)
    low = None if first == 0 else crossing(first - 1, first)   # None: open below the grid
    high = None if last == len(grid) - 1 else crossing(last + 1, last)
    return {"grid": grid.tolist(), "chi_square": chi_square.tolist(),
            "ci95": [low, high], "optimum": float(best.value)}


def identifiability(result, profiles: dict | None = None) -> list[str]:
    """Plain statements about parameters the data do not pin down."""
    notes = []
    varied = [p for p in result.params.values() if p.vary]
    if not result.errorbars:
        notes.append("The covariance matrix could not be estimated (singular Jacobian at the "
                     "optimum): at least one varied parameter is not identifiable from these "
                     "data; fix it or add data that inform it.")
        return notes
    for parameter in varied:
        relative = parameter.stderr / abs(parameter.value) if parameter.value else math.inf
        if relative > 0.5:
            notes.append(f"{parameter.name}: relative standard error {relative:.0%}; the data "
                         f"determine it poorly.")
    for parameter in varied:
        for other, rho in (parameter.correl or {}).items():
            if parameter.name < other and abs(rho) > 0.9:
                notes.append(f"{parameter.name} and {other} are correlated ({rho:+.2f}): the "
                             f"data inform a combination of them, not each one.")
    for name, info in (profiles or {}).items():
        if min(info["chi_square"]) < result.chisqr - 1e-6:
            notes.append(f"{name}: a profile refit reached a lower chi-square "
                         f"({min(info['chi_square']):.4g}) than the reported optimum "
                         f"({result.chisqr:.4g}); the optimum is not unique or the objective "
                         f"is rough near it: treat the standard errors with caution.")
        open_ends = [end for end, edge in zip(("lower", "upper"), info["ci95"]) if edge is None]
        if open_ends:
            notes.append(f"{name}: the 95% profile-likelihood interval has no "
                         f"{' and no '.join(open_ends)} end within the profiled range: the "
                         f"data do not bound it there.")
    return notes or ["Every varied parameter has a relative standard error below 50% and no "
                     "pair is correlated beyond 0.9."]


def write_fit(problem: FitProblem, result, table: pd.DataFrame, folder: Path,
              profiles: dict | None = None) -> None:
    """params.json, report.md, fit.png (and profiles.png), predictions.csv: one folder that
    appears whole or not at all (:func:`plateletpd.io.files.atomic_folder`)."""
    profiles = profiles or {}
    parameters = {}
    for name, p in result.params.items():
        parameters[name] = {"value": p.value, "stderr": p.stderr, "lower": p.min,
                            "upper": p.max, "vary": p.vary, "expr": p.expr,
                            "unit": (p.user_data or {}).get("unit"),
                            "correlations": p.correl or {}}
    record = provenance(
        problem.model, seed=problem.seed, config=str(problem.config_path),
        data={"path": str(problem.data_path),
              "sha256": hashlib.sha256(problem.data_path.read_bytes()).hexdigest()},
        subjects=int(problem.eta.shape[0]))
    with atomic_folder(folder) as staging:
        write_json(staging / "params.json", {
            "parameters": parameters,
            "objective": {"chi_square": float(result.chisqr), "reduced_chi_square":
                          float(result.redchi), "data_points": int(result.ndata),
                          "varied": int(result.nvarys), "evaluations": int(result.nfev),
                          "method": result.method, "success": bool(result.success),
                          "message": str(result.message)},
            "identifiability": identifiability(result, profiles),
            "profiles": profiles,
            "provenance": record})
        write_text(staging / "report.md", _report(problem, result, table, record, profiles))
        _figure(table, staging / "fit.png")
        if profiles:
            _profile_figure(profiles, staging / "profiles.png")
        atomic_write(staging / "predictions.csv", lambda p: table.to_csv(p, index=False))


def _report(problem, result, table, record, profiles) -> str:
    rows = table[["line", "study", "arm", "endpoint", "threshold", "day", "statistic",
                  "observed", "predicted", "standard_error", "residual"]]
    parameter_rows = ["| parameter | value | stderr | unit | bounds | varied |",
                      "|---|---|---|---|---|---|"]
    for name, p in result.params.items():
        stderr = f"{p.stderr:.3g}" if p.stderr is not None else "n/a"
        parameter_rows.append(f"| {name} | {p.value:.4g} | {stderr} | "
                              f"{(p.user_data or {}).get('unit', '')} | "
                              f"[{p.min:g}, {p.max:g}] | {'yes' if p.vary else 'no'} |")
    return "\n".join([
        f"# Fit report: {problem.config.get('fit', {}).get('name', problem.config_path.stem)}",
        "", str(problem.config.get("fit", {}).get("description", "")), "",
        f"Model `{problem.model.name}` (hash {problem.model.hash[:12]}), data "
        f"`{problem.data_path.name}` (sha256 {record['data']['sha256'][:12]}), "
        f"{problem.eta.shape[0]} virtual patients per arm, seed {problem.seed}, method "
        f"{result.method}, {result.nfev} evaluations, chi-square {result.chisqr:.3g} on "
        f"{result.ndata} residuals ({result.nvarys} varied parameters).", "",
        "## Parameters", "", *parameter_rows, "",
        "## What the data identify", "",
        *[f"- {n}" for n in identifiability(result, profiles)], "",
        *(["Profile likelihood (95%: chi-square within 3.84 of its minimum; None = open "
           "within the profiled range):", "",
           *[f"- {name}: optimum {info['optimum']:.4g}, 95% interval "
             f"[{_fmt(info['ci95'][0])}, {_fmt(info['ci95'][1])}]"
             for name, info in profiles.items()], "", "![profiles](profiles.png)", ""]
          if profiles else []),
        "## Every data row", "",
        "Residual = (predicted - observed) / standard error; proportions as fractions.", "",
        "```", rows.to_string(index=False, float_format=lambda v: f"{v:.4g}"), "```", "",
        "![observed against predicted](fit.png)", ""])


def _fmt(value) -> str:
    return "open" if value is None else f"{value:.4g}"


def _profile_figure(profiles: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(profiles), figsize=(4 * len(profiles), 3.4),
                                squeeze=False)
    for axis, (name, info) in zip(axes[0], profiles.items()):
        chi_square = np.asarray(info["chi_square"])
        axis.plot(info["grid"], chi_square - chi_square.min(), "o-")
        axis.axhline(PROFILE_LEVEL, color="grey", ls="--", lw=0.8)
        axis.axvline(info["optimum"], color="grey", lw=0.8)
        axis.set_xlabel(name)
        axis.set_ylabel("chi-square - minimum")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    atomic_write(path, lambda p: figure.savefig(p, dpi=110, format="png"))
    plt.close(figure)


def _figure(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = {"proportion": table.statistic.isin(["percent", "count", "proportion"])}
    kinds["count or time"] = ~kinds["proportion"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 5))
    for axis, (kind, mask) in zip(axes, kinds.items()):
        part = table[mask]
        for (study, arm), group in part.groupby(["study", "arm"]):
            axis.errorbar(group.observed, group.predicted, xerr=1.96 * group.standard_error,
                          fmt="o", ms=5, capsize=2, label=f"{study}: {arm}")
        if len(part):
            low = float(min(part.observed.min(), part.predicted.min()))
            high = float(max(part.observed.max(), part.predicted.max()))
            axis.plot([low, high], [low, high], color="grey", lw=0.8)
            axis.set_xscale("log" if kind != "proportion" and low > 0 else "linear")
            axis.set_yscale(axis.get_xscale())
        axis.set_xlabel("observed (95% interval from the standard error)")
        axis.set_ylabel("predicted")
        axis.set_title(kind)
        axis.grid(alpha=0.3)
        if len(part):
            axis.legend(fontsize=6.5)
    figure.tight_layout()
    atomic_write(path, lambda p: figure.savefig(p, dpi=120, format="png"))
    plt.close(figure)
