"""Calibrate models/itp_thrombopoiesis.toml to the ITP rows of data/cit_summary.csv and write
the bundled fit fits/itp_calibration (params.json, report.md, fit.png, profiles.png,
predictions.csv), as ``plateletpd fit`` writes fits/cit_calibration.

    python scripts/fit_itp_calibration.py [--out fits/itp_calibration]

(the defaults, 60 patients per arm, at most 60 evaluations and 5 profile points per
profiled parameter, are those of the bundled fit)

Why a script and not a ``plateletpd fit`` configuration: the real-world study titrates the
dose up and down at visits ([[arms.rules]]) and reports the response *at* a week (the count at
that visit), and fit configurations have neither (their arms stop or continue; their
``response_proportion`` is a response *by* a day). The script builds the same
:class:`plateletpd.inference.fitting.FitProblem` in code, adds the arms' dose rules, predicts
the at-the-week rows from the visit counts (smooth indicator, as the fits' other response
endpoints), and writes the fit with the package's own writer.

Data used (study / arm / rows):
* itp_hetrombopag_2020 (first-in-patient, J Thromb Haemost 2020;18:3053): 2.5 / 5 / 7.5 mg
  daily for 14 days, PLT >= 50 by day 28 (1/8, 7/12, 8/12). Chronic ITP; baseline count not
  in the abstract: 13 (the phase III median, Mei 2021) assumed, screened below 30.
* itp_hetrombopag_realworld_2025 by phase (newly diagnosed, persistent, chronic): PLT >= 30
  at weeks 6, 12, 16, 24 (12 rows). Start 5 mg (the median start dose), titration as
  trials/itp_realworld.toml, visits every 14 days, baseline median 9.
Held out (predicted, not fitted; in the report as a check): the real-world study's overall
rows (PLT >= 30 at weeks 6-24, PLT >= 100 at weeks 6 and 24), which mix the three phases,
and the phase III placebo and treatment rates (no data row: Mei 2021 in parameters.md).

Varied: het_emax, het_ec50 (the drug's potency in ITP), remission_rate_newly_diagnosed and
remission_rate_persistent (the phase covariate's effect), each with a log-normal prior at the
model file's value (CV 100%). Everything else stays at the model file's values.
Cost: 2.5-6 s per evaluation at 60 patients per arm on the 2-core host under load; the
bundled fit took 43 evaluations and two 5-point profiles, about 20 minutes at load 12.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from plateletpd.inference.fitting import ArmSpec, FitProblem, profile, write_fit
from plateletpd.io.files import atomic_folder, atomic_write, write_text
from plateletpd.io.outcomes import bundled_outcomes_path, load_outcomes
from plateletpd.model.definition import load_model
from plateletpd.population.variability import Variability
from plateletpd.study.cohort import (
    ArmDesign,
    DoseRule,
    logistic,
    simulate_treatment_arm,
    values_at,
)
from plateletpd.study.endpoints import (
    RESPONSE_WIDTH,
    ResponseRule,
    subject_values,
    summarise,
)

ROOT = Path(__file__).resolve().parents[1]
SEED = 20251130
#: between-patient variability of the virtual patients (log-normal CVs), as the trial files:
#: untreated count 0.8 (assumption: medians 9-13 with ranges 1-29 below the 30 cut), immune
#: destruction 0.8 (Louwes 1999: survival 1.6 +/- 1.4 d), linear CL/F 0.635 (Wang Z 2022),
#: potency: Emax 0.15 and EC50 0.73, the TPO-receptor agonist values of Petrov 2024
#: (romiplostim; ../shared/literature/structural_models.md 5b), none published for hetrombopag
#: and the fluctuation of the immune destruction in time: its ten coefficients standard
#: normal (models/itp_thrombopoiesis.md, "Fluctuation")
FLUCTUATION = tuple(f"destruction_fluctuation_{ab}{k}" for k in range(1, 6) for ab in "ab")
CV = {"platelets_baseline": 0.8, "immune_destruction": 0.8, "het_clearance": 0.635,
      "het_emax": 0.15, "het_ec50": 0.73, **{name: 1.0 for name in FLUCTUATION}}
TRANSFORMS = {name: "normal" for name in FLUCTUATION}
#: ITP duration standing for each phase (months; IWG: < 3, 3-12, >= 12): the middle of the
#: first two ranges, 36 for chronic (only the phase enters the model)
PHASE_DURATION = {"newly diagnosed": 1.5, "persistent": 7.0, "chronic": 36.0}
#: the real-world titration (trials/itp_realworld.toml); the dose is first raised at the
#: day-14 visit, not at baseline (assumption: "after at least 2 weeks", as TPO-receptor
#: agonist labels adjust; the study's own pace is not in its abstract)
RULES = (DoseRule("above", 250.0, "hold"), DoseRule("below", 100.0, "resume"),
         DoseRule("below", 50.0, "increase", "hetrombopag", "2.5 mg", maximum="7.5 mg",
                  from_day=14.0),
         DoseRule("above", 150.0, "decrease", "hetrombopag", "2.5 mg", minimum="2.5 mg"))
VARIED = {  # name: (start, lower, upper, prior mean, prior cv)
    "het_emax": (2.0, 0.2, 20.0, 2.0, 1.0),
    "het_ec50": (10.0, 0.5, 200.0, 10.0, 1.0),
    "remission_rate_newly_diagnosed": (0.02, 0.0005, 0.5, 0.02, 1.0),
    "remission_rate_persistent": (0.01, 0.0005, 0.5, 0.01, 1.0),
}
AT_THE_WEEK = re.compile(r"PLT\s*>=\s*([\d.]+)\s*at the week")


def realworld_design(name: str) -> ArmDesign:
    return ArmDesign(name=name, chemotherapy="", treatment=("hetrombopag 5 mg",),
                     entry_below=30.0, entry_day=0.0, start_delay=0.0, stop_at=None,
                     max_days=168, follow_up_days=168.0, rules=RULES, visit_every_days=14.0)


class VisitFitProblem(FitProblem):
    """A FitProblem whose "PLT >= X at the week" rows are the share of patients with a count
    >= X at that visit (smooth indicator of width RESPONSE_WIDTH, as the fits' responses)."""

    def predict(self, values: dict[str, float]) -> pd.DataFrame:
        frames = []
        for spec in self.arms:
            result = simulate_treatment_arm(self.model, spec.design,
                                            self.cohort_matrix(values, spec.params))
            predicted = []
            for row in spec.rows.itertuples():
                match = AT_THE_WEEK.fullmatch(str(row.threshold))
                if match:
                    counts = values_at(result.times, result.platelets,
                                       result.start_time + float(row.day))
                    level = float(match.group(1))
                    predicted.append(float(np.mean(logistic((counts - level)
                                                            / RESPONSE_WIDTH))))
                else:
                    predicted.append(summarise(subject_values(
                        result, row.endpoint, row.threshold, row.day, spec.day0,
                        spec.response, spec.default_threshold), row.statistic))
            rows = spec.rows.copy()
            rows["predicted"] = predicted
            rows["virtual_patients"] = result.n
            rows["eligible_fraction"] = result.n / max(result.n_screened, 1)
            frames.append(rows)
        table = pd.concat(frames, ignore_index=True)
        table["residual"] = (table.predicted - table.observed) / table.standard_error
        return table


def build_problem(subjects: int, held_out: bool = False) -> VisitFitProblem:
    """The fit's arms (or, with ``held_out``, the arm that predicts the held-out rows)."""
    model = load_model(ROOT / "models" / "itp_thrombopoiesis.toml")
    data_path = bundled_outcomes_path()
    data = load_outcomes(data_path)
    arms = []
    if not held_out:
        for arm, dose in (("2.5 mg", 2.5), ("5 mg", 5.0), ("7.5 mg", 7.5)):
            rows = data[(data.study == "itp_hetrombopag_2020") & (data.arm == arm)]
            design = ArmDesign(name=f"first-in-patient {arm}", chemotherapy="",
                               treatment=(f"hetrombopag {dose:g} mg",), entry_below=30.0,
                               entry_day=0.0, start_delay=0.0, stop_at=None, max_days=14,
                               follow_up_days=28.0)
            arms.append(ArmSpec("itp_hetrombopag_2020", arm, design, "treatment_start",
                                ResponseRule(threshold=50.0, rise=None, by_day=28.0),
                                rows.reset_index(drop=True),
                                params={"platelets_baseline": 13.0,
                                        "itp_duration_months": 36.0}))
        phases = PHASE_DURATION.items()
    else:
        phases = [("all", None)]
    for phase, duration in phases:
        rows = data[(data.study == "itp_hetrombopag_realworld_2025") & (data.arm == phase)]
        params = {"platelets_baseline": 9.0}
        if duration is not None:
            params["itp_duration_months"] = duration
        arms.append(ArmSpec("itp_hetrombopag_realworld_2025", phase,
                            realworld_design(f"real-world {phase}"), "treatment_start",
                            ResponseRule(threshold=30.0, rise=None, by_day=42.0),
                            rows.reset_index(drop=True), params=params))
    variability = Variability.from_cv(
        CV if not held_out else {**CV, "itp_duration_months": 77.6}, transforms=TRANSFORMS)
    problem = VisitFitProblem.create(
        model, arms, {name: {"value": v[0], "lower": v[1], "upper": v[2]}
                      for name, v in VARIED.items()},
        seed=SEED, subjects=subjects, variability=variability,
        priors={name: (v[3], v[4]) for name, v in VARIED.items()}, data=data_path)
    problem.config = {"fit": {
        "name": "itp_calibration",
        "description": "Hetrombopag potency in ITP (het_emax, het_ec50) and the remission "
                       "rates of newly diagnosed and persistent ITP, fitted to the "
                       "first-in-patient 2-week dose study and the real-world study's "
                       "response by phase (scripts/fit_itp_calibration.py)."}}
    problem.config_path = Path("scripts/fit_itp_calibration.py")
    for name in problem.parameters:
        declared = model.parameters[name]
        problem.parameters[name].user_data = {"unit": declared.unit,
                                              "source": declared.source}
    return problem


def population_config() -> str:
    """The fit folder's ``config.toml``: the between-patient variability the fit was made
    with, which a trial file stating no ``[population] cv`` inherits (as from a
    ``plateletpd fit`` folder). The fluctuation's coefficients are left out: the model
    draws them itself (``per_patient``), after these, in the same order as CV lists them."""
    own = {name: cv for name, cv in CV.items() if name not in FLUCTUATION}
    return "\n".join([
        "# The population fits/itp_calibration was made with (scripts/fit_itp_calibration.py;",
        "# models/itp_thrombopoiesis.md, Parameters). A trial file that states no",
        "# [population] cv inherits these CVs. Written by the script, not by `plateletpd",
        "# fit`: this is not a runnable fit configuration.",
        "",
        "[population]",
        "cv = { " + ", ".join(f"{name} = {cv:g}" for name, cv in own.items()) + " }",
        ""])


def main(argv=None) -> int:
    import lmfit

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "fits" / "itp_calibration"))
    parser.add_argument("--subjects", type=int, default=60)
    parser.add_argument("--max-evaluations", type=int, default=60)
    parser.add_argument("--profile-points", type=int, default=5)
    args = parser.parse_args(argv)
    problem = build_problem(args.subjects)
    minimizer = lmfit.Minimizer(problem.residuals, problem.parameters, scale_covar=False)
    # a relative step of 5%: the visit rules make the objective piecewise constant at
    # very small steps (a dose changes when a count crosses 50 or 150 at a visit)
    result = minimizer.minimize(method="least_squares", max_nfev=args.max_evaluations,
                                diff_step=0.05)
    print(lmfit.fit_report(result, show_correl=False), flush=True)
    table = problem.predict(result.params.valuesdict())
    print(table[["arm", "threshold", "day", "observed", "predicted", "residual"]]
          .to_string(index=False), flush=True)
    profiles = {name: profile(problem, result, name, args.profile_points)
                for name in ("het_emax", "het_ec50")}
    # held-out rows: the overall real-world rows, predicted with the fitted values for a
    # cohort whose phases are drawn as in trials/itp_realworld.toml
    check = build_problem(args.subjects * 3, held_out=True)
    held = check.predict(result.params.valuesdict())
    columns = ["line", "arm", "threshold", "day", "observed", "predicted",
               "standard_error", "residual"]
    with atomic_folder(Path(args.out)) as staging:
        write_fit(problem, result, table, staging, profiles)
        write_text(staging / "config.toml", population_config())
        atomic_write(staging / "held_out.csv", lambda p: held.to_csv(p, index=False))
        report = (staging / "report.md").read_text()
        write_text(staging / "report.md", report + "\n".join([
            "## Held out: the real-world study's overall rows", "",
            ("Not fitted: predicted with the fitted values for 3x as many patients whose "
             "ITP duration (and so phase) is drawn as in trials/itp_realworld.toml "
             "(log-normal, median 12 months, 32% newly diagnosed, 15% persistent), start "
             "5 mg. Residual = (predicted - observed) / standard error."), "",
            "```", held[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"),
            "```", ""]))
    print(held[columns].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
