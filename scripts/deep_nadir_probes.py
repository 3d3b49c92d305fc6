"""The probe of models/cit_marrow_reserve.md, "Open finding: the shape of a deep nadir": one
typical patient (the bundled fit's values, 65 kg, no between-patient spread) after one cycle
of ``chemotherapy D dose d1`` at D = 1.0, 1.4, 1.8 and 2.2, for any model file (a scratch
copy with another structure) and any parameter changes.

    python scripts/deep_nadir_probes.py                                  # the bundled model
    python scripts/deep_nadir_probes.py reserve_cycling_fraction=0       # the reserve unhurt
    python scripts/deep_nadir_probes.py --model /tmp/variant.toml NAME=VALUE ...

Prints per damage: the nadir and its study day, the days below 100, 50 and 20, the days
from the nadir back to 50 and to 100, the lowest reserve and the highest count after the
nadir (on a 0.05-day grid to day 45). A probe, not a check.
"""

import argparse

import numpy as np

import plateletpd as pp
from rebound_probes import bundled_values

STEP = 0.05


def first_after(times, counts, start, level):
    """Days from index ``start`` until the count first reaches ``level`` (NaN: never)."""
    reached = np.flatnonzero(counts[start:] >= level)
    return times[start + reached[0]] - times[start] if reached.size else float("nan")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("changes", nargs="*", help="NAME=VALUE model-parameter changes")
    parser.add_argument("--model", default="cit_marrow_reserve", help="model name or file")
    args = parser.parse_args(argv)
    model = pp.load_model(args.model)
    values = {**bundled_values(), **{name: float(value) for name, value in
                                     (change.split("=", 1) for change in args.changes)}}
    values = {name: value for name, value in values.items() if name in model.parameters}
    times = np.arange(0.0, 45.0 + 1e-9, STEP)
    for damage in (1.0, 1.4, 1.8, 2.2):
        result = pp.simulate(model, f"chemotherapy {damage} dose d1", times=times,
                             params=values, covariates={"body_weight": 65.0})
        counts = result["platelets"]
        nadir = int(np.argmin(counts))
        below = {level: STEP * float((counts < level).sum()) for level in (100, 50, 20)}
        back_50 = first_after(times, counts, nadir, 50.0) if counts[nadir] < 50 else \
            float("nan")
        print(f"D {damage}: nadir {counts[nadir]:.1f} (day {times[nadir]:.1f}), days < 100 "
              f"{below[100]:.1f}, < 50 {below[50]:.1f}, < 20 {below[20]:.1f}; nadir to 50 "
              f"{back_50:.1f}, to 100 {first_after(times, counts, nadir, 100.0):.1f} days; "
              f"lowest reserve {result['reserve'].min():.2f}; highest after the nadir "
              f"{counts[nadir:].max():.0f}")


if __name__ == "__main__":
    main()
