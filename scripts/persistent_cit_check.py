"""A Soff 2019-like untreated persistent-CIT arm, written as a user would (not in any fit).

usage: python scripts/persistent_cit_check.py [MODEL] [N]
  MODEL: cit_thrombopoiesis (default: with its bundled fit and the between-patient CVs of
         trials/yuan2025.toml) or models/cit_marrow_reserve.toml (with its bundled fit,
         fits/cit_marrow_reserve_calibration, at the typical damage of a new study, and the
         CVs of tests/test_cit_science.py; add "none" for the file values);
  N: patients screened (default 2000).

Design (the same as tests/test_cit_science.py): four 21-day chemotherapy cycles, each held
while PLT < 100 (re-checked weekly, given up after 4 weeks); eligible once PLT < 100 for
>= 4 weeks on the simulated history (plateletpd.study.cycles); no treatment from entry;
followed 3 weeks. Observed (Soff 2019, J Clin Oncol; data/cit_summary.csv, observation
arm): 1 of 8 corrected (>= 100) within 3 weeks, mean 57 x10^9/L at week 3; all enrolled:
mean 62 at entry.
"""

import sys
from pathlib import Path

import numpy as np

import plateletpd as pp
from plateletpd.model.library import default_fit, load_fitted_parameters
from plateletpd.study.cohort import ArmDesign
from plateletpd.study.cycles import ChemotherapyCourse, HistoryRule, simulate_course_arm
from plateletpd.study.endpoints import ResponseRule, subject_values

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_cit_science as science

arguments = [a for a in sys.argv[1:] if a != "none"]
name = arguments[0] if arguments else "cit_thrombopoiesis"
n = int(arguments[1]) if len(arguments) > 1 else 2000
model = pp.load_model(name)
fit = None if "none" in sys.argv[1:] else default_fit(model.name)
if fit:
    model = model.with_parameters(load_fitted_parameters(fit)[1])
if model.name == "cit_thrombopoiesis":
    cv = {"chemotherapy_sensitivity": 0.30, "platelets_baseline": 0.17}  # yuan2025.toml
else:
    cv = science.POPULATION_CV
variability = pp.Variability.from_cv(cv)
vectors = pp.cohort_matrix(model, model.parameter_vector(None, science.WEIGHT), variability,
                           variability.eta(n, 19))
for parameter in cv:  # draws clipped to the model file's bounds
    column, declared = list(model.parameters).index(parameter), model.parameters[parameter]
    vectors[:, column] = np.clip(vectors[:, column], declared.lower, declared.upper)
course = ChemotherapyCourse(regimen="chemotherapy 1 dose", cycle_days=21, cycles=4,
                            delay_below=100, recheck_every_days=7, give_up_after_days=28,
                            follow_up_days=63, points_per_day=4)
arm = simulate_course_arm(model, ArmDesign(name="observation", treatment=(), entry_below=None,
                                           start_delay=0, follow_up_days=22,
                                           points_per_day=4),
                          course, vectors, (HistoryRule("below_for_days", below=100, days=28),))
rule = ResponseRule(threshold=100, rise=None, by_day=21)


def mean(endpoint, day=None):
    if arm.n == 0:  # no eligible patient: nothing to average
        return float("nan")
    values = subject_values(arm, endpoint, None, day, "treatment_start", rule, 100,
                            smooth=False)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


print(f"{model.name} ({fit or 'file values'}): eligible {arm.n} of {n}; entry mean {mean('plt_count', 0):.0f} (Soff 62); "
      f"corrected within 3 weeks {100 * mean('response_proportion'):.1f}% (Soff 12.5%); "
      f"mean at week 3 {mean('plt_count', 21):.0f} (Soff 57)")
