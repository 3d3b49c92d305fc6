"""The NSCLC rhTPO series' six published between-patient SDs (data/cit_summary.csv lines
11-16, n 24, self-controlled: the control cycle is the severe cycle that qualified each
patient) against the damage's between-patient CV, in two designs, at the bundled fit's
values with the series' own damage (its study effect):

* "arms": the bundled fit's two [[arms]] entries (everyone from one chemotherapy, no
  selection), as fits/cit_marrow_reserve_calibration/config.toml fits the series;
* "trial": trials/nsclc_rhtpo_2011.toml as the study was run (enrolled on a cycle-1 nadir
  below 50, the control cycle is cycle 1, rhTPO in cycle 2), as a [[trials]] entry.

Each SD row is fitted as `[fit] spread_rows` does (docs/fitting.md, "Published SDs as
residuals"), its standard error set for the kurtosis of the simulated values; the normal-data
error is printed beside it. The CV is set by the fit's rescaling of the drawn effects
(`[between_patient.chemotherapy_sensitivity]`), as a fit estimating it would.

    python scripts/nsclc_spread_scan.py            # CVs 0.11 0.2 0.3 0.45
    python scripts/nsclc_spread_scan.py 0.05 0.3   # other CVs
    python scripts/nsclc_spread_scan.py --quantity reserve_regeneration_rate 0.5 1 2
        # another quantity's CV (the damage's at 0.30, the bundled population's)

The measurement of models/cit_marrow_reserve.md, "The published SDs as fit residuals"
(2026-12-06, forty-seventh session). About a minute per CV on 2 cores.
"""

import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FIT = ROOT / "fits" / "cit_marrow_reserve_calibration"
STUDY = "nsclc_rhtpo_2011"

HEAD = """
[fit]
model = "cit_marrow_reserve"
data = "{data}"
seed = 20261130
subjects = 1000
base = "default"
spread_rows = true

[population]
cv = {{ chemotherapy_sensitivity = 0.30, platelets_baseline = 0.17, reserve_regeneration_rate = 2.0, reserve_cycling_fraction = 0.5 }}

[parameters]
chemotherapy_sensitivity = {{ value = {damage}, vary = true, lower = 0.5, upper = 25.0 }}

[between_patient.{quantity}]
lower = 0.01
upper = 4.0
"""

ARMS = """
[[arms]]
study = "nsclc_rhtpo_2011"
arm = "control cycle (previous cycle)"
chemotherapy = "chemotherapy 1 dose d1"
entry_below = false
day0 = "chemotherapy"
default_threshold = 100

[[arms]]
study = "nsclc_rhtpo_2011"
arm = "prophylactic rhTPO cycle"
chemotherapy = "chemotherapy 1 dose d1 + rhTPO 300 U/kg d2,4,6,9"
entry_below = false
day0 = "chemotherapy"
default_threshold = 100
"""

TRIAL = """
[[trials]]
file = "{file}"
subjects_per_arm = 1500
"""


def study_damage() -> float:
    """The series' damage at the bundled fit: typical x exp(between-study SD x its effect)."""
    values = {k: v["value"] for k, v in
              json.loads((FIT / "params.json").read_text())["parameters"].items()}
    name = "chemotherapy_sensitivity"
    return values[name] * math.exp(values[f"{name}_between_study_sd"]
                                   * values[f"{name}_effect_{STUDY}"])


def rows(design: str, cv: float, damage: float, folder: Path,
         quantity: str = "chemotherapy_sensitivity") -> pd.DataFrame:
    from plateletpd.inference.fitting import load_fit_config
    from plateletpd.study.statistics import sample_sd_standard_error

    text = HEAD.format(data=ROOT / "data" / "cit_summary.csv", damage=damage,
                       quantity=quantity)
    text += ARMS if design == "arms" else TRIAL.format(file=ROOT / "trials" /
                                                      "nsclc_rhtpo_2011.toml")
    config = folder / f"{design}.toml"
    config.write_text(text)
    problem = load_fit_config(config)
    values = problem.parameters.valuesdict()
    values[f"{quantity}_between_patient_cv"] = cv
    table = problem.predict(values)
    table["design"], table["cv"] = design, cv
    table["normal_se"] = sample_sd_standard_error(
        table.observed.to_numpy(float), pd.to_numeric(table.n, errors="coerce"))
    table["z_normal"] = np.where(table.statistic == "sd",
                                 (table.predicted - table.observed) / table.normal_se, np.nan)
    return table


def main(cvs: list[float], quantity: str = "chemotherapy_sensitivity") -> None:
    damage = study_damage()
    print(f"the series' damage at the bundled fit: {damage:.2f} (typical x its study effect)")
    frames = []
    with tempfile.TemporaryDirectory() as folder:
        for cv in cvs:
            for design in ("arms", "trial"):
                frames.append(rows(design, cv, damage, Path(folder), quantity))
    table = pd.concat(frames, ignore_index=True)
    table["cycle"] = np.where(table.arm.str.startswith("control"), "control", "rhTPO")
    pd.set_option("display.width", 200)
    shown = table[["design", "cv", "cycle", "endpoint", "statistic", "observed", "predicted",
                   "standard_error", "residual", "z_normal", "virtual_patients"]]
    print(shown.round(2).to_string(index=False))
    spread = table[table.statistic == "sd"]
    summary = spread.assign(chi_square=spread.residual ** 2,
                            chi_square_normal=spread.z_normal ** 2)
    means = table[table.statistic != "sd"].assign(chi_square_means=lambda t: t.residual ** 2)
    print(f"\nchi-square by design and {quantity}'s CV: the six SD rows (kurtosis and normal-data errors) "
          "and the six mean rows")
    print(pd.concat([summary.groupby(["design", "cv"])[["chi_square", "chi_square_normal"]]
                     .sum(), means.groupby(["design", "cv"])[["chi_square_means"]].sum()],
                    axis=1).round(1).to_string())


if __name__ == "__main__":
    arguments = sys.argv[1:]
    name = "chemotherapy_sensitivity"
    if arguments[:1] == ["--quantity"]:
        name, arguments = arguments[1], arguments[2:]
    main([float(x) for x in arguments] or [0.11, 0.2, 0.3, 0.45], name)
