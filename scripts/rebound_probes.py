"""The probes of models/cit_marrow_reserve.md, "The return after a stimulus": one typical
patient (bundled fit values, 65 kg) in two designs, with any parameter values changed.

* healthy volunteer, one SC rhTPO dose (Zhao 2001, Zhonghua Yi Xue Za Zhi 81:1508: +24% to
  +52% at 0.5-2 ug/kg, peak day 14, back at baseline by day 21): peak rise, peak day,
  rise on day 21;
* Bai 2004's crossover design (PMID 15379272; trials/bai2004_rhtpo_crossover.toml): two
  cycles 21 days apart, cycle 2 untreated or with rhTPO 300 U/kg on cycle days 2-15:
  cycle-2 nadir and recovery peak (Bai: 52.4 / 148.9 untreated, 64.4 / 263.9 with rhTPO).

    python scripts/rebound_probes.py                          # the bundled values
    python scripts/rebound_probes.py mk_yield_share=0.6       # one or more changes
    python scripts/rebound_probes.py --match-nadir 52.4 progenitor_transit_time=160
        # the damage set (bisection) so that the untreated cycle-2 nadir is 52.4, as a
        # refit would move it

A model file other than the bundled one: --model PATH (e.g. a scratch copy with another
structure). Probes, not checks: a single typical patient, no between-patient spread.
"""

import argparse
import json
from pathlib import Path

import numpy as np

import plateletpd as pp

ROOT = Path(__file__).resolve().parents[1]
FIT = ROOT / "fits" / "cit_marrow_reserve_calibration" / "params.json"
UNTREATED = "chemotherapy 1 dose d1 + chemotherapy 1 dose d22"
RHTPO = UNTREATED + " + rhTPO 300 U/kg qd d23-36"


def bundled_values() -> dict:
    """The bundled fit's model-parameter values (its study effects left out)."""
    parameters = json.loads(FIT.read_text())["parameters"]
    return {name: entry["value"] for name, entry in parameters.items()
            if "_effect_" not in name and not name.endswith("_between_study_sd")}


def counts(model, regimen: str, values: dict, days: float) -> tuple[np.ndarray, np.ndarray]:
    times = np.arange(0.0, days + 1e-9, 0.25)
    result = pp.simulate(model, regimen, times=times, params=values,
                         covariates={"body_weight": 65.0})
    return times, result["platelets"]


def healthy(model, values: dict, dose: float = 2.0) -> tuple[float, float, float]:
    times, platelets = counts(model, f"rhTPO {dose} ug/kg d1", values, 28.0)
    rise = 100.0 * (platelets / platelets[0] - 1.0)
    return rise.max(), times[np.argmax(rise)], rise[np.searchsorted(times, 21.0)]


def bai(model, values: dict) -> tuple[float, float, float, float]:
    result = []
    for regimen in (UNTREATED, RHTPO):
        times, platelets = counts(model, regimen, values, 42.0)
        cycle = platelets[(times >= 22.0) & (times <= 42.0)]
        nadir = int(np.argmin(cycle))
        result += [cycle[nadir], cycle[nadir:].max()]
    return tuple(result)


def match_nadir(model, values: dict, target: float) -> float:
    """The chemotherapy_sensitivity giving an untreated cycle-2 nadir of ``target``."""
    low, high = 1.0, 12.0
    for _ in range(18):
        middle = 0.5 * (low + high)
        nadir = bai(model, {**values, "chemotherapy_sensitivity": middle})[0]
        low, high = (middle, high) if nadir > target else (low, middle)
    return 0.5 * (low + high)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("changes", nargs="*", help="NAME=VALUE model-parameter changes")
    parser.add_argument("--model", default="cit_marrow_reserve", help="model name or file")
    parser.add_argument("--match-nadir", type=float, default=None,
                        help="set the damage so that the untreated cycle-2 nadir is this")
    arguments = parser.parse_args(argv)
    model = pp.load_model(arguments.model)
    values = bundled_values()
    for change in arguments.changes:
        name, _, text = change.partition("=")
        if not text:
            parser.error(f"a change is NAME=VALUE, got {change!r}")
        values[name] = float(text)
    if arguments.match_nadir is not None:
        values["chemotherapy_sensitivity"] = match_nadir(model, values, arguments.match_nadir)
    rise, day, day21 = healthy(model, values)
    untreated_nadir, untreated_peak, treated_nadir, treated_peak = bai(model, values)
    print(f"damage {values['chemotherapy_sensitivity']:.2f}; healthy rhTPO 2 ug/kg: peak "
          f"+{rise:.1f}% on day {day:.2f}, day 21 +{day21:.1f}%; Bai design: untreated "
          f"{untreated_nadir:.1f} / {untreated_peak:.1f}, rhTPO {treated_nadir:.1f} / "
          f"{treated_peak:.1f}, ratios {treated_nadir / untreated_nadir:.2f} / "
          f"{treated_peak / untreated_peak:.2f} (Bai 1.23 / 1.77)")


if __name__ == "__main__":
    main()
