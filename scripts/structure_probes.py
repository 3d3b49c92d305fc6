"""The probes of models/cit_marrow_reserve.md, "Two more limits on the stimulated marrow":
the issue-17 design checks of tests/test_cit_science.py and one typical patient in Bai
2004's design, for any model file (a scratch copy with another structure) at the bundled
fit's values with any changes.

    python scripts/structure_probes.py models/cit_marrow_reserve.toml
    python scripts/structure_probes.py /tmp/variant.toml niche_max_expansion=3
    python scripts/structure_probes.py MODEL NAME=VALUE ... --no-soff   # skip the Soff design
    python scripts/structure_probes.py MODEL NAME=VALUE ... --soff-diagnosis
    # the bounded niche and the threshold were probed this way as a candidate (twenty-third
    # session, scripts/threshold_niche_variant.py, removed when the bundled file adopted them)

Prints: Bai's cycle-2 nadir and peak untreated and with rhTPO (scripts/rebound_probes.py),
four 21-day cycles at a new study's typical damage (tests/test_cit_science.py's deepening
check, 500 patients, seed 18: the median nadir of each cycle, and per patient the median
change from one cycle to the next and the share whose nadir is lower than the cycle
before), TPO's lead over the platelets in the same design (Engel 1999: about 1 day; 200
patients), rhTPO 15000 U on days -4 and -2 before one cycle against none (the median nadir,
500 patients, seed 21: the priming check),
one healthy 2 ug/kg rhTPO dose (peak rise %, its day, the rise on day 21), the steady-state
count of a c-Mpl knockout (the receptor's summed input set to 0) as a fraction of the healthy one
(mice lacking c-Mpl or TPO keep 10-15%; tests/test_cit_science.py), the Yuan design's
responses and day-14 means with an untreated arm (tests/test_cit_science.py: 1,000
screened, seed 20, the typical damage), and the Soff design's share corrected within 3
weeks and week-3 mean (2,000 screened, seed 19). --soff-diagnosis splits the Soff design's
enrolled patients into those who correct and those who do not (median entry day, counts
two and one weeks before entry, at entry and weekly after, and their median reserve
regeneration, damage and reserve share). Probes, not checks: the numbers move with the
seeds only as the tests' do; a parameter the model file does not declare is ignored (the
bundled fit's values are given only where the file has them).
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))

import plateletpd as pp  # noqa: E402
import rebound_probes  # noqa: E402
import test_cit_science as science  # noqa: E402
from plateletpd.study.endpoints import ResponseRule, subject_values  # noqa: E402


def soff_diagnosis(model, arm) -> None:
    """Correctors and non-correctors of a Soff-design observation arm, medians."""
    names = list(model.parameters)
    vectors = science.cohort(model, 2000, 19)[arm.subjects]
    rule = ResponseRule(threshold=100, rise=None, by_day=21)
    corrected = subject_values(arm, "response_proportion", None, None, "treatment_start",
                               rule, 100, smooth=False)

    def counts_at(day):
        return np.array([np.interp(start + day, arm.times, row)
                         for start, row in zip(arm.start_time, arm.platelets)])

    days = (-14, -7, 0, 7, 14, 21)
    for label, mask in (("corrected", corrected == 1), ("not corrected", corrected == 0)):
        if not mask.any():
            continue
        print(f"  {label}: {mask.sum()} of {arm.n}, entry day "
              f"{np.median(arm.start_time[mask]):.0f}, counts on days {days}: "
              f"{[round(float(np.median(counts_at(d)[mask])), 1) for d in days]}, reserve "
              "regeneration {:.4f} /h, damage {:.2f}, reserve share {:.3f}".format(
                  *(np.median(vectors[mask, names.index(p)]) for p in (
                      "reserve_regeneration_rate", "chemotherapy_sensitivity",
                      "reserve_cycling_fraction"))))


def cycles(model) -> None:
    """The deepening over four cycles (per cohort and per patient), TPO's lead and the
    rhTPO priming check, measured as tests/test_cit_science.py measures them."""
    nadirs = science.four_cycle_nadirs(model)
    print("four cycles: median nadirs", [round(float(np.median(n)), 1) for n in nadirs],
          "; per patient, median change", [round(float(np.median(b - a)), 2)
                                           for a, b in zip(nadirs, nadirs[1:])],
          "and share deeper", [round(float(np.mean(b < a)), 2)
                               for a, b in zip(nadirs, nadirs[1:])])
    lags = science.tpo_lead_days(model, 200)
    print(f"TPO leads the platelets by a median of {np.median(lags):.0f} days "
          f"(1 day or less in {100 * np.mean(lags <= 1):.0f}% of patients)")
    untreated, primed = science.primed_nadirs(model)
    print("rhTPO on days -4 and -2: median nadir {:.1f} against {:.1f} without".format(
        np.median(primed), np.median(untreated)))


def main(arguments: list[str]) -> None:
    path = arguments[0]
    changes = {name: float(value) for name, value in
               (a.split("=", 1) for a in arguments[1:] if "=" in a)}
    model = pp.load_model(path)
    values = {**rebound_probes.bundled_values(), **changes}
    unknown = [name for name in changes if name not in model.parameters]
    if unknown:
        raise SystemExit(f"not parameters of {path}: {', '.join(unknown)}")
    values = {name: value for name, value in values.items() if name in model.parameters}
    calibrated = model.with_parameters(values)
    print("Bai typical patient, cycle 2 (nadir / peak untreated, nadir / peak rhTPO):",
          [round(float(x), 1) for x in rebound_probes.bai(model, values)])
    print("healthy rhTPO 2 ug/kg (peak rise %, day, rise % on day 21):",
          [round(float(x), 1) for x in rebound_probes.healthy(model, values)])
    print("c-Mpl knockout (no TPO-site signal): steady-state count "
          f"{science.knockout_fraction(calibrated):.3f} of the healthy one "
          "(mice: 0.10-0.15, Gurney 1994, Bunting 1997)")
    cycles(calibrated)
    arms = science.yuan_treated_arms(calibrated)
    arms.update(science.yuan_treated_arms(calibrated, {"untreated": ()}))
    responses = {name: round(float(science.yuan_response(arm)), 1)
                 for name, arm in arms.items()}
    means = {name: round(float(v)) for name, v in science.day14_means(arms).items()}
    print(f"Yuan design, {arms['untreated'].n} enrolled: responses {responses}; "
          f"day-14 means {means}")
    if "--no-soff" not in arguments:
        arm = science.soff_observation_arm(calibrated)
        corrected, week3 = science.soff_numbers(arm)
        print(f"Soff design, {arm.n} enrolled: corrected within 3 weeks "
              f"{100 * corrected:.1f}%, week-3 mean {week3:.1f}")
        if "--soff-diagnosis" in arguments:
            soff_diagnosis(calibrated, arm)


if __name__ == "__main__":
    main(sys.argv[1:])
