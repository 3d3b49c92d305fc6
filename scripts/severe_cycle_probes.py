"""The probes of models/cit_marrow_reserve.md, "What makes the cycle after a severe one
too mild": does the model's structure carry a severe cycle's depth into the next one, and
how much of the milder second cycle in the held-out deep studies (Smith's phase III,
Tepler 1996) comes from the between-cycle variability and the depth of the population?

    python scripts/severe_cycle_probes.py                     # the bundled model and fit
    python scripts/severe_cycle_probes.py NAME=VALUE ...      # with changed values
    python scripts/severe_cycle_probes.py --model /tmp/variant.toml NAME=VALUE ...

Prints two parts.

1. Structure: 3,000 virtual patients (tests/test_cit_science.py's between-patient CVs,
   seed 7, a new study's typical damage, 65 kg), one dose of chemotherapy on day 0 and one
   more 21, 28, 35 or 42 days later, NO between-cycle variation: among the patients whose
   first nadir is below 25, the mean first and second nadirs, the share whose second nadir
   is below 20, and medians of the marrow at the second dose.
2. Spread: the bundled Smith phase III file (trials/smith_neumega_phase3.toml, its seed and
   1,000 screened per arm) with its between-cycle exposure CV 0.3 or 0, at the fit's
   typical damage or one between-study SD deeper (x exp(SD)): per arm the enrolled, the
   mean nadirs of the qualifying and the study cycles and the study cycle's
   transfusion-free share (published 48% oprelvekin, 22% placebo).

Probes, not checks: numbers move with the seeds as the tests' do.
"""

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import plateletpd as pp  # noqa: E402
import test_cit_science as science  # noqa: E402
from plateletpd.study.trial import load_trial_spec, run_trial  # noqa: E402

MARROW = ("reserve", "progenitors", "megakaryocytes", "production_factor", "tpo")


def fitted_model(path: Path, changes: dict):
    _, values = science.load_fitted_parameters(science.FIT_FOLDER)
    model = pp.load_model(path)
    values = {name: value for name, value in values.items() if name in model.parameters}
    values.update(changes)
    return model.with_parameters(values), values


def structure(model) -> None:
    params = science.as_columns(model, science.cohort(model, 3000, 7))
    days = np.arange(0, 70.0, 0.25)
    for gap in (21, 28, 35, 42):
        result = pp.simulate_batch(model, f"chemotherapy 1 dose d1,{gap + 1}", times=days,
                                   params=params, covariates=science.WEIGHT)
        counts = result.output("platelets")
        first = counts[:, days < 21].min(axis=1)
        second = counts[:, (days >= gap) & (days < gap + 21)].min(axis=1)
        severe = first < 25
        at = np.searchsorted(days, gap)
        marrow = " ".join(f"{name} {np.median(result.output(name)[severe, at]):.3g}"
                          for name in MARROW)
        print(f"second dose on day {gap}: first nadir < 25 in {severe.sum()}, mean nadirs "
              f"{first[severe].mean():.1f} then {second[severe].mean():.1f}, second below 20 "
              f"in {np.mean(second[severe] < 20):.0%}; at the second dose: count "
              f"{np.median(counts[severe, at]):.0f} {marrow}", flush=True)


def spread(model_path: Path, values: dict) -> None:
    text = (ROOT / "trials" / "smith_neumega_phase3.toml").read_text()
    text = re.sub(r'(?m)^model = "cit_marrow_reserve"', f'model = "{model_path.resolve()}"',
                  text)
    typical = values["chemotherapy_sensitivity"]
    record = json.loads((science.FIT_FOLDER / "params.json").read_text())
    sd = record["parameters"]["chemotherapy_sensitivity_between_study_sd"]["value"]
    deeper = typical * float(np.exp(sd))
    with tempfile.TemporaryDirectory() as folder:
        for cv in (0.3, 0.0):
            for damage in (typical, deeper):
                variant = re.sub(r"(?m)^between_cycle_cv = .*$", f"between_cycle_cv = {cv}", text)
                variant = re.sub(r'(?m)^regimens = "several"$',
                                 f'regimens = "several"\ntypical = {{ chemotherapy_sensitivity = {damage} }}',
                                 variant)
                path = Path(folder) / "smith.toml"
                path.write_text(variant)
                subjects = run_trial(load_trial_spec(path)).subjects
                parts = []
                for arm, group in subjects.groupby("arm"):
                    given = group[group.chemotherapy_resumed.astype(bool)]
                    free = 100 * (~given.cycle2_transfused.astype(bool)).mean()
                    parts.append(f"{arm}: {len(group)} enrolled, nadirs "
                                 f"{group.cycle1_nadir.mean():.1f} then "
                                 f"{given.cycle2_nadir.mean():.1f}, transfusion-free {free:.1f}%")
                print(f"between-cycle CV {cv}, damage {damage:.2f}: " + "; ".join(parts),
                      flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / science.MODEL_PATH)
    parser.add_argument("changes", nargs="*", help="NAME=VALUE")
    arguments = parser.parse_args()
    changes = {k: float(v) for k, v in (a.split("=", 1) for a in arguments.changes)}
    model, values = fitted_model(arguments.model, changes)
    structure(model)
    spread(arguments.model, values)


if __name__ == "__main__":
    main()
