"""Measure every number that the docs, tests' comments and trial-file headers quote from the
bundled fit of cit_marrow_reserve, so that a refit's follow-up is one command, not a hunt.

    python scripts/refit_dependents.py [SECTION ...]

Sections (all by default): yuan, soff, heme, docs, demo. Each prints the numbers and where
they are quoted; the edits stay by hand (the wording around a number is the reason for it).
The refit checklist is in models/cit_marrow_reserve.md ("Calibration"). The validation
record is rerun apart: `plateletpd validate --out DIR` (about 27 minutes on 2 cores).
"""
from __future__ import annotations

import re
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
warnings.simplefilter("ignore")

# the haematological self-controlled trial's depth rule (its header): the control cycle's
# mean nadir about 10 (observed 9.4), kept at the same absolute damage when the typical
# damage changes: 2.65 doses at a typical damage of 4.03 (fit of 2026-12-01 20:52 UTC)
HEME_ABSOLUTE_DAMAGE = 2.65 * 4.03


def fail(message: str) -> None:
    """A clear error on standard error and exit status 2 (the project's bad-input status)."""
    print(f"refit_dependents: {message}", file=sys.stderr)
    sys.exit(2)


def fitted_model() -> tuple[dict, object]:
    """The bundled fit's parameter values and the model with them."""
    import plateletpd as pp
    from plateletpd.model.library import load_fitted_parameters
    from test_cit_science import FIT_FOLDER, MODEL_PATH

    _, values = load_fitted_parameters(FIT_FOLDER)
    return values, pp.load_model(MODEL_PATH).with_parameters(values)


def yuan() -> None:
    """tests/test_cit_science.py's xfail reasons, the card's summary and README line on
    Yuan 2025: calibrated arms, untreated, the receptor ceiling and the day-14 means."""
    from test_cit_science import day14_means, yuan_response, yuan_treated_arms

    values, model = fitted_model()
    print(f"typical damage {values['chemotherapy_sensitivity']:.3f}")
    arms = yuan_treated_arms(model)
    responses = {name: yuan_response(arm) for name, arm in arms.items()}
    print("yuan enrolled", {name: arm.n for name, arm in arms.items()})
    print("yuan responses", {name: round(float(value), 1)
                             for name, value in responses.items()})
    print("yuan day-14 means", {name: round(float(value))
                                for name, value in day14_means(arms).items()})
    untreated = yuan_treated_arms(model, {"untreated": ()})["untreated"]
    print("yuan untreated", round(yuan_response(untreated), 1))
    ceiling = yuan_treated_arms(
        model, {"ceiling": ("hetrombopag 75 mg", "rhTPO 150000 U")})["ceiling"]
    print("yuan ceiling arm", round(yuan_response(ceiling), 1))


def soff() -> None:
    """tests/test_cit_science.py's Soff 2019 design check (corrected in 3 weeks, week-3 mean)."""
    from test_cit_science import soff_numbers, soff_observation_arm

    _, model = fitted_model()
    arm = soff_observation_arm(model)
    corrected, week3 = soff_numbers(arm)
    print(f"soff eligible {arm.n}, corrected {100 * corrected:.1f}%, week-3 mean {week3:.1f}")


def heme() -> None:
    """trials/heme_rhtpo_selfcontrol.toml's depth (header): the same absolute damage, then
    its control-cycle nadir over 40 replicate studies at the point estimates."""
    from plateletpd.study.check import check_trial
    from plateletpd.study.trial import load_trial_spec

    values, _ = fitted_model()
    doses = round(HEME_ABSOLUTE_DAMAGE / values["chemotherapy_sensitivity"] / 0.05) * 0.05
    path = ROOT / "trials" / "heme_rhtpo_selfcontrol.toml"
    text = path.read_text()
    text, found = re.subn(r'chemotherapy = "chemotherapy [0-9.]+ dose d1"',
                          f'chemotherapy = "chemotherapy {doses:.2f} dose d1"', text)
    if found != 1:  # else the check would run the file's old depth under the new label
        fail(f"{path}: expected one line 'chemotherapy = \"chemotherapy N dose d1\"' "
             f"under [enrolment], found {found}; update this script's pattern")
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / path.name
        copy.write_text(text)
        table = check_trial(load_trial_spec(copy), ROOT / "data" / "cit_summary.csv",
                            replicates=40).table
    print(f"heme depth {doses:.2f} doses (same absolute damage)")
    columns = ["line", "arm", "endpoint", "observed", "predicted", "interval_low",
               "interval_high", "inside"]
    print(table[columns].round(1).to_string(index=False))


def docs() -> None:
    """docs/trial_files.md's worked examples (tests/test_cycles.py, tests/test_paired.py)."""
    from plateletpd.study.trial import load_trial_spec, run_trial
    from test_paired import _differences

    text = (ROOT / "docs" / "trial_files.md").read_text()
    section = text.split("### Worked example: a four-cycle secondary")[1]
    namespace: dict = {}
    exec(section.split("```python\n")[1].split("```")[0], namespace)  # the doc's own code
    history, counts = namespace["history"], namespace["counts"]
    given, number = np.unique(history.cycles_given, return_counts=True)
    print("course cycles given", dict(zip(given.tolist(), number.tolist())),
          "abandoned", int(history.abandoned.sum()))
    delays, number = np.unique(history.delay[:, 1], return_counts=True)
    print("course delays", dict(zip(delays.tolist(), number.tolist())),
          "remaining", [row["remaining"] for row in counts])
    section = text.split("## Paired designs")[1]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "crossover.toml"
        path.write_text(re.search(r"```toml\n(.*?)```", section, re.DOTALL).group(1))
        result = run_trial(load_trial_spec(path))
    row = result.differences.iloc[0]
    print("paired enrolled", list(result.summary.enrolled), "discordant",
          row.discordant_pairs, "difference", round(row.response_difference_pct_points, 1),
          "day 14", [round(float(row[f"plt_day_14_difference{end}"]), 1)
                     for end in ("", "_lower", "_upper")])
    unpaired = _differences(result.subjects, "untreated").iloc[0]
    print("unpaired day 14", [round(float(unpaired[f"plt_day_14_difference_{end}"]), 1)
                              for end in ("lower", "upper")])


def demo() -> None:
    """plateletpd demo's arms and typical patient (the note's plausibility run)."""
    import pandas as pd

    from plateletpd.cli import main

    with tempfile.TemporaryDirectory() as folder:
        main(["demo", "--out", folder])
        summary = pd.read_csv(Path(folder) / "summary.csv")
        typical = pd.read_csv(Path(folder) / "typical_patient" / "arms.csv")
    print(summary[["arm", "enrolled", "response_pct"]].round(1).to_string(index=False))
    columns = [column for column in summary.columns if column.startswith("mean_plt_day_14")]
    if columns:
        print(summary[["arm", *columns]].round(0).to_string(index=False))
    print(typical.round(1).to_string(index=False))


SECTIONS = {"yuan": yuan, "soff": soff, "heme": heme, "docs": docs, "demo": demo}

if __name__ == "__main__":
    asked = sys.argv[1:] or list(SECTIONS)
    unknown = [name for name in asked if name not in SECTIONS]
    if unknown:
        fail(f"unknown section(s) {', '.join(unknown)}; expected any of "
             f"{', '.join(SECTIONS)} (none: all)")
    for name in asked:
        print(f"== {name}", flush=True)
        SECTIONS[name]()
