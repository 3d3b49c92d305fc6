"""Every published row of the rhIL-11 studies read at a fit's point estimates, for any model
file (a scratch copy with another structure) and any changed fitted values: the probe of
models/cit_marrow_reserve.md, "Out of sample: oprelvekin in the cycle after a severe one".

    python scripts/rhil11_probes.py                                   # the bundled model and fit
    python scripts/rhil11_probes.py --model /tmp/variant.toml il11_emax_production=5
    python scripts/rhil11_probes.py --fit fits/cit_marrow_reserve_calibration_nsclc75
    python scripts/rhil11_probes.py gi_rhil11 smith_neumega_phase3    # only these trials
    python scripts/rhil11_probes.py --trials /tmp/scratch_trials      # other trial files

Each bundled trial file is copied to a scratch folder with its model replaced by --model,
run with the file's own patients and seed on a copy of the fit whose values are changed as
given (a fitted value or a fixed one the fit records; another name is refused), and every row of its study in the data file
the validation suite reads it against is read over all of the row's virtual patients (the
reader of ``plateletpd check``, not a virtual study of the published size: a point estimate,
no interval). The GI study's rhIL-11 arm (mean days to PLT >= 100 from the start, 8.1
published; a calibration row) is the anchor to keep when a structure changes the drug's
effect. Probes, not checks: numbers move with the files' seeds as the trials' do.
"""

import argparse
import json
import re
import shutil
import tempfile
from pathlib import Path

from plateletpd.study import check
from plateletpd.study.trial import load_trial_spec, run_trial

ROOT = Path(__file__).resolve().parents[1]
#: the rhIL-11 studies and the data file each is checked against (validation/cit_marrow_reserve.toml)
TRIALS = {"gi_rhil11": "cit_summary.csv",
          "smith_neumega_phase3": "out_of_sample.csv",
          "tepler1996_rhil11_secondary": "out_of_sample.csv",
          "isaacs1997_rhil11_breast": "out_of_sample.csv",
          "chu2003_rhil11_crossover": "out_of_sample.csv",
          "pmid19102944_rhtpo_rhil11": "out_of_sample.csv",
          "rhil11_crossover_2002": "out_of_sample.csv",
          "xu2018_rhtpo_rhil11_prophylaxis": "out_of_sample.csv"}


def changed_fit(fit: Path, changes: dict, folder: Path) -> Path:
    """A copy of the fit folder with the named fitted values replaced."""
    copy = folder / "fit"
    shutil.copytree(fit, copy)
    record = json.loads((copy / "params.json").read_text())
    for name, value in changes.items():
        # a fitted value, or a fixed one the fit recorded (its model_values: the trial
        # reads those, not the model file's)
        if name not in record["parameters"] and name not in record.get("model_values", {}):
            raise SystemExit(f"{name} is not a parameter of the fit's record; it has "
                             f"{', '.join(sorted(record.get('model_values', record['parameters'])))}")
        if name in record["parameters"]:
            record["parameters"][name]["value"] = value
        if name in record.get("model_values", {}):
            record["model_values"][name] = value
    (copy / "params.json").write_text(json.dumps(record))
    return copy


def rows_of(name: str, model: Path, fit: Path, folder: Path, trials: Path = ROOT / "trials"):
    """(line, arm, threshold, published, predicted, patients) for every row of the study."""
    text = (trials / f"{name}.toml").read_text()
    text = re.sub(r'(?m)^model = "cit_marrow_reserve"', f'model = "{model.resolve()}"', text)
    path = folder / f"{name}.toml"
    path.write_text(text)
    spec = load_trial_spec(path, fit=str(fit))
    chosen = check.selected_rows(spec, str(ROOT / "data" / TRIALS[name]))
    readers = check._readers(spec, chosen.rows, chosen.source, chosen.mapping)
    subjects = run_trial(spec).subjects
    for index, row in chosen.rows.iterrows():
        if row.comparison:
            continue
        arm = check._row_patients(subjects, spec, chosen.mapping[row.arm], row.arm,
                                  row.threshold)
        yield row.line, row.arm, str(row.threshold), row.value, readers[index](arm), len(arm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "cit_marrow_reserve.toml")
    parser.add_argument("--fit", type=Path, default=ROOT / "fits" / "cit_marrow_reserve_calibration")
    parser.add_argument("--trials", type=Path, default=ROOT / "trials",
                        help="folder of the trial files (scratch copies with another "
                             "convention, e.g. between_cycle_cv); default the bundled ones")
    parser.add_argument("items", nargs="*", help="NAME=VALUE changes and trial names")
    arguments = parser.parse_args()
    changes = {k: float(v) for k, v in (a.split("=", 1) for a in arguments.items if "=" in a)}
    names = [a for a in arguments.items if "=" not in a] or list(TRIALS)
    unknown = [name for name in names if name not in TRIALS]
    if unknown:
        raise SystemExit(f"unknown trial {unknown[0]!r}; the rhIL-11 trials: {', '.join(TRIALS)}")
    folder = Path(tempfile.mkdtemp(prefix="rhil11_probes_"))
    fit = changed_fit(arguments.fit, changes, folder)
    print(f"model {arguments.model}, fit {arguments.fit}, changes {changes or 'none'}")
    for name in names:
        for line, arm, threshold, published, predicted, n in rows_of(
                name, arguments.model, fit, folder, arguments.trials):
            print(f"{name[:24]:24s} line {line:<3d} {arm[:20]:20s} {threshold[:44]:44s} "
                  f"published {published:7.2f}  predicted {predicted:7.2f}  ({n} patients)",
                  flush=True)
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
