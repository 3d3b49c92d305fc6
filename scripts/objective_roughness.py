"""How smooth a fit's objective is along one parameter, at the fit's own cohort sizes.

    python scripts/objective_roughness.py FIT_FOLDER PARAMETER [RELATIVE] [POINTS]

FIT_FOLDER holds a fit's ``config.toml`` and the ``params.json`` it wrote (the bundled
``fits/cit_marrow_reserve_calibration``, for example); every parameter starts at its value
there and PARAMETER moves over +/- RELATIVE (default 0.04) of it in POINTS (default 9)
evaluations at the configuration's ``subjects`` (the trials at their fit sizes), as the
fit's rounds and profiles evaluate it. Prints, per data row, its residual's range and its
roughness (root-mean-square distance from the quadratic through the grid) in standard
errors, and the data rows' chi-square with its roughness: compare that with the 3.84 a
profile interval is read at (plateletpd.inference.roughness; docs/fitting.md).
"""

import json
import sys
import time
from pathlib import Path

from plateletpd.inference.fitting import load_fit_config
from plateletpd.inference.roughness import objective_roughness


def main(folder: str, name: str, relative: float = 0.04, points: int = 9) -> None:
    folder = Path(folder)
    problem = load_fit_config(folder / "config.toml")
    record = json.loads((folder / "params.json").read_text())["parameters"]
    values = {key: (record[key]["value"] if key in record else parameter.value)
              for key, parameter in problem.parameters.items()}
    begin = time.perf_counter()
    table = objective_roughness(problem, values, name, relative, points)
    print(f"{name}: {points} points over +/-{relative:g} of {values[name]:.6g} "
          f"({time.perf_counter() - begin:.0f} s)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    chi = table.attrs["chi_square"]
    print("data rows' chi-square along the grid: " + ", ".join(f"{v:.2f}" for v in chi))
    print(f"its roughness: {table.attrs['chi_square_roughness']:.3f} (a profile interval is "
          f"read at 3.84 above the minimum)")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.04,
         int(sys.argv[4]) if len(sys.argv) > 4 else 9)
