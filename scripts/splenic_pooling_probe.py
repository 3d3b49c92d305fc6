"""Probe: a second cause of persistent CIT, platelets pooled in an enlarged spleen
(models/cit_marrow_reserve.md, "Open finding: splenic pooling as a second cause of
persistence"). The Soff 2019 design at the bundled fit's values with the model's
`spleen_volume_ratio` drawn from published spleen-volume series; the bundled trial files
all keep a healthy spleen.

    python scripts/splenic_pooling_probe.py            # the table of the card's section
    python scripts/splenic_pooling_probe.py --n 1000   # fewer patients screened per arm

The model's splenic pool (models/cit_marrow_reserve.toml, `spleen_volume_ratio` and
`splenic_pool_share_healthy`; tests/test_splenic_pool.py): the pool over the circulating
mass grows in proportion to the spleen's volume, so the measured count is (1 + r0) /
(1 + r0 v) of the whole-body mass, r0 = 0.3 / 0.7; the whole mass clears TPO and binds
romiplostim, so a pooled patient's TPO is normal and production is not suppressed.

The spleen distributions are log-normal fits to published CT series (docs/
literature_persistent_cit.md, section 6): after adjuvant FOLFOX any growth in 86% and
>= 50% in 24% (Overman 2010 J Clin Oncol 28:2549) give a median of 1.28 and a log-SD of
0.23; after CAPOX > 30% in 70.8%, > 50% in 50.0% and > 100% in 15.3% (Ji, Transl Cancer
Res) give a median of 1.5 and a log-SD of 0.28 (which reproduces all three shares). The
large-spleen phenotype (v 2, 3 and 5) is an illustration of the hypersplenic patients that
partial splenic embolisation series treat (Support Care Cancer 2018;26:3527: PLT 64.5 ->
224 within 10-14 days), not a fitted population.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
warnings.simplefilter("ignore")

FIT = ROOT / "fits" / "cit_marrow_reserve_calibration"
# (label, median spleen volume ratio, log-SD; None: no spleen term)
SPLEENS = (("healthy spleen (bundled model)", 1.0, None),
           ("after adjuvant FOLFOX (Overman 2010)", 1.28, 0.23),
           ("after CAPOX (Ji)", 1.5, 0.28),
           ("large spleen, v 2", 2.0, 0.3),
           ("large spleen, v 3", 3.0, 0.3),
           ("large spleen, v 5", 5.0, 0.3))
SHARES = (0.05, 0.1, 0.2, 0.5)


def fail(message: str) -> None:
    print(f"splenic_pooling_probe: {message}", file=sys.stderr)
    sys.exit(2)


def _cv(log_sd: float) -> float:
    """A log-normal's CV from its log-SD."""
    return float(np.sqrt(np.expm1(log_sd ** 2)))


def soff_text(values: dict, median: float, log_sd: float | None, n: int,
              share: float | None = None) -> str:
    """trials/soff2019_romiplostim.toml at the bundled fit's typical
    values (a new study at the typical damage), with a fixed 10 ug/kg weekly arm added.
    With ``share``: a [[population.mixture]] in which that share of the screened has the
    spleen distribution (median, log-SD) and the rest a healthy spleen."""
    text = (ROOT / "trials" / "soff2019_romiplostim.toml").read_text()
    typical = {k: v for k, v in values.items()
               if not k.startswith("chemotherapy_sensitivity_")}
    if share is None:
        typical["spleen_volume_ratio"] = median
    from plateletpd.model.library import fit_population

    # the bundled fit's own between-patient CVs (a trial's cv replaces them as a whole)
    cv = ", ".join(f"{k} = {v!r}" for k, v in fit_population(FIT)["cv"].items())
    if log_sd is not None and share is None:
        cv += f", spleen_volume_ratio = {_cv(log_sd)!r}"
    mixture = "" if share is None else (
        f'\n[[population.mixture]]\nname = "spleen {median:g}"\nshare = {share!r}\n'
        f'typical = {{ spleen_volume_ratio = {median!r} }}\n'
        + (f'cv = {{ spleen_volume_ratio = {_cv(log_sd)!r} }}\n' if log_sd else "")
        + 'source = "an illustration: no persistent-CIT cohort reports spleen size"\n')
    for old, new in (('fit = "default"', 'fit = "none"'),
                     ('subjects_per_arm = 2000', f'subjects_per_arm = {n}'),
                     ('covariates = { body_weight = 65 }',
                      'covariates = { body_weight = 65 }\ntypical = { '
                      + ", ".join(f"{k} = {v!r}" for k, v in typical.items())
                      + ' }\ncv = { ' + cv + ' }\n' + mixture + '#')):
        if text.count(old) != 1:
            fail(f"trials/soff2019_romiplostim.toml no longer has exactly one {old!r}")
        text = text.replace(old, new)
    return text + ('\n[[arms]]\nname = "romiplostim 10 ug/kg"\n'
                   'treatment = ["romiplostim 10 ug/kg weekly d1-28"]\nstop_at = false\n'
                   'max_days = 28\nrescue = { below = 10 }\n')


def run(folder: Path, values: dict, median: float, log_sd: float | None, n: int,
        share: float | None = None):
    """The patient table of the Soff design with this spleen distribution (in ``share``
    of the screened, the rest healthy, when given)."""
    from plateletpd.study.trial import load_trial_spec, run_trial

    path = folder / f"soff_{median}_{log_sd}_{share}.toml"
    path.write_text(soff_text(values, median, log_sd, n, share))
    return run_trial(load_trial_spec(path)).patients


def arm_numbers(rows, weight: float, n: int) -> tuple[float, float, float, float]:
    """(enrolled per screened patient, share corrected within 3 weeks, the same among those
    still below 100 on the first day of the arm, mean count on day 21) of an arm's weighted
    patients (``weight``: the share of the screened they stand for). A patient back at 100
    on the day after enrolment is not a responder in the trial's count
    (``at_threshold_at_start``, docs/trial_files.md); Soff enrolled below 100, so the second
    share is the one that reads the drug."""
    mask = rows["status"] == 0
    below = mask & ~rows["at_threshold_at_start"].astype(bool)
    return (weight * mask.sum() / n, float(rows.loc[mask, "responder"].mean()),
            float(rows.loc[below, "responder"].mean()),
            float(rows.loc[mask, "plt_day_21"].mean()))


def mixed(table) -> tuple[dict, float]:
    """Each arm's numbers in a trial whose screened patients are a mixture
    ([[population.mixture]]: docs/trial_files.md, Mixtures), and the share of the enrolled
    (all arms) drawn in the group."""
    enrolled = table[table["status"] == 0]
    return ({arm: arm_numbers(table[table["arm"] == arm], 1, 1)[1:]
             for arm in table["arm"].unique()},
            float((enrolled["population_group"] != "rest").mean()))


def cell(arm: str, corrected: float, below: float, day21: float) -> str:
    text = f"{arm} {100 * corrected:.1f}% ({100 * below:.1f}%)"
    return text + (f", day 21 {day21:.0f}" if arm == "observation" else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="patients screened per arm")
    args = parser.parse_args()
    if args.n < 100:
        fail(f"--n must be at least 100 (given {args.n}): too few patients enrol")
    sys.path.insert(0, str(ROOT / "src"))
    from plateletpd.model.library import load_fitted_parameters

    _, values = load_fitted_parameters(FIT)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tables = {}
        print(f"Soff design, bundled fit's typical values, {args.n} screened per arm: "
              "enrolled per 1,000 screened; corrected within 3 weeks, % of the enrolled "
              "(of those below 100 at the start); the observation arm's mean count on day 21")
        for label, median, log_sd in SPLEENS:
            tables[label] = table = run(folder, values, median, log_sd, args.n)
            cells = []
            for arm in table["arm"].unique():
                enrolled, *numbers = arm_numbers(table[table["arm"] == arm], 1, args.n)
                cells.append(f"{1000 * enrolled:.0f} enrolled, " + cell(arm, *numbers))
            print(f"  {label}: " + "; ".join(cells))
        for label, median, log_sd in SPLEENS[4:]:
            print(f"A share of the screened with the {label} phenotype, the rest healthy "
                  f"(one trial each, [[population.mixture]]):")
            for share in SHARES:
                numbers, in_group = mixed(run(folder, values, median, log_sd, args.n, share))
                print(f"  {share:.2f} ({100 * in_group:.0f}% of the enrolled): "
                      + "; ".join(cell(arm, *values) for arm, values in numbers.items()))

if __name__ == "__main__":
    main()
