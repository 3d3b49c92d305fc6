"""The main job on bundled defaults: a typical CIT patient under each bundled treatment.

Scenario (stated, so a reader can change it): one standard chemotherapy cycle on day 1 of
the bundled ``cit_thrombopoiesis`` model at its typical parameter values; treatment starts on
the first whole day after the untreated platelet count falls below 75 x10^9/L (the entry
rule of the GI-cancer rhIL-11 study in data/cit_summary.csv) and lasts 14 days (the usual
maximum in Chinese CIT practice, shared/literature/parameters.md). Endpoints are counted from
the start of treatment. The virtual-trial version with variability, stop rules and response
rates builds on this (``plateletpd trial``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .io import provenance, write_json, write_text
from .model import load_model
from .simulate import simulate

MODEL = "cit_thrombopoiesis"
CHEMOTHERAPY = "chemotherapy 1 dose d1"
ENTRY_THRESHOLD = 75.0  # x10^9/L
TREATMENT_DAYS = 14
FOLLOW_UP_DAYS = 35
#: arm label -> regimen template ({first} and {last}: study days of treatment)
ARMS = {
    "untreated": "",
    "hetrombopag 7.5 mg qd": "hetrombopag 7.5 mg qd d{first}-{last}",
    "rhTPO 15000 U qd": "rhTPO 15000 U qd d{first}-{last}",
    "rhIL-11 50 ug/kg qd": "rhIL-11 50 ug/kg qd d{first}-{last}",
    "hetrombopag + rhTPO": "hetrombopag 7.5 mg qd d{first}-{last} + rhTPO 15000 U qd "
                           "d{first}-{last}",
}


def treatment_start(times: np.ndarray, platelets: np.ndarray) -> float:
    """First whole day (time in days) at or after the count first falls below entry."""
    below = np.flatnonzero(platelets < ENTRY_THRESHOLD)
    if below.size == 0:
        raise RuntimeError("the typical patient never reaches the entry threshold; "
                           "check the model's chemotherapy parameters")
    return float(math.ceil(times[below[0]]))


def endpoints(times: np.ndarray, platelets: np.ndarray, start: float) -> dict[str, float]:
    """Nadir, counts 7 and 14 days after the start, and days from start to PLT >= 100."""
    after = times >= start
    recovered = np.flatnonzero(after & (platelets >= 100.0) &
                               (times > times[np.argmin(platelets)]))
    return {
        "nadir": float(platelets.min()),
        "nadir_day": float(times[np.argmin(platelets)]),
        "plt_treatment_day_7": float(np.interp(start + 7, times, platelets)),
        "plt_treatment_day_14": float(np.interp(start + 14, times, platelets)),
        "days_to_plt_100": float(times[recovered[0]] - start) if recovered.size else math.nan,
        "peak_after_start": float(platelets[after].max()),
    }


def run_demo(folder: Path) -> pd.DataFrame:
    """Simulate every arm, print the arm table and write table, figure, report."""
    model = load_model(MODEL)
    untreated = simulate(model, CHEMOTHERAPY, days=FOLLOW_UP_DAYS)
    start = treatment_start(untreated.times, untreated["platelets"])
    first, last = int(start) + 1, int(start) + TREATMENT_DAYS
    results, rows = {}, []
    for label, template in ARMS.items():
        regimen = CHEMOTHERAPY + (" + " + template.format(first=first, last=last)
                                  if template else "")
        result = simulate(model, regimen, days=FOLLOW_UP_DAYS)
        results[label] = result
        rows.append({"arm": label, "regimen": regimen, "status": result.status_code.name,
                     **endpoints(result.times, result["platelets"], start)})
    table = pd.DataFrame(rows).set_index("arm")
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "arms.csv", table.to_csv())
    figure_path = folder / "platelets_and_tpo.png"
    _figure(results, start, figure_path)
    record = provenance(model, scenario={"chemotherapy": CHEMOTHERAPY,
                                         "entry_threshold": ENTRY_THRESHOLD,
                                         "treatment_start_day": start,
                                         "treatment_days": TREATMENT_DAYS})
    write_json(folder / "provenance.json", record)
    write_text(folder / "report.md", _report(table, start, figure_path.name, record))
    shown = table.drop(columns=["regimen", "status"]).round(1)
    print(f"typical CIT patient ({MODEL}); treatment from day {start:g} for "
          f"{TREATMENT_DAYS} days\n")
    print(shown.to_string())
    print(f"\nwrote {folder}/arms.csv, {figure_path.name}, report.md, provenance.json")
    return table


def _figure(results, start: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_write

    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 6.5))
    for label, result in results.items():
        top.plot(result.times, result["platelets"], label=label)
        bottom.plot(result.times, result["tpo"], label=label)
    for axis in (top, bottom):
        axis.axvspan(start, start + TREATMENT_DAYS, color="0.9", zorder=0)
        axis.grid(alpha=0.3)
    top.axhline(100, color="0.5", lw=0.8, ls="--")
    top.axhline(ENTRY_THRESHOLD, color="0.5", lw=0.8, ls=":")
    top.set_ylabel("platelets [10^9/L]")
    bottom.set_ylabel("endogenous TPO [pg/mL]")
    bottom.set_xlabel("days since chemotherapy (shaded: treatment)")
    top.legend(fontsize=8)
    figure.suptitle("Typical CIT patient, cit_thrombopoiesis model (literature priors)")
    figure.tight_layout()
    atomic_write(path, lambda p: figure.savefig(p, dpi=120, format="png"))
    plt.close(figure)


def _report(table: pd.DataFrame, start: float, figure: str, record: dict) -> str:
    shown = table.drop(columns=["status"]).round(1)
    return "\n".join([
        "# plateletpd demo: typical CIT patient", "",
        __doc__.strip(), "",
        f"Treatment starts on day {start:g} (time since chemotherapy, days).", "",
        shown.to_markdown() if _has_tabulate() else "```\n" + shown.to_string() + "\n```", "",
        f"![platelets and TPO]({figure})", "",
        f"Model hash {record['model']['hash'][:12]}, plateletpd "
        f"{record['versions']['plateletpd']}, created {record['created']}.", ""])


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
