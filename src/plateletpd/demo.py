"""The main job on bundled defaults: a typical CIT patient under each bundled treatment.

Scenario (stated, so a reader can change it): the default subject of the bundled
``cit_thrombopoiesis`` model (65 kg, platelets 250 x10^9/L, TPO 52 pg/mL,
chemotherapy_sensitivity 5.5) receives one chemotherapy cycle on day 1. Treatment starts on
the day after the platelet count first falls below 75 x10^9/L (CTCAE grade 2, the usual
trigger for treating CIT) and is given once daily until the morning count is >= 100 x10^9/L
(the stop rule of the Chinese CIT consensus and trial NCT07334093), for at most 14 days.
Doses: hetrombopag 7.5 mg (phase III NCT05864014), rhTPO 15,000 U, rhIL-11 50 ug/kg, and
hetrombopag + rhTPO. ``plateletpd demo`` uses the bundled fit (fits/cit_calibration) unless
told ``--fit none``; the virtual trial with variability and response rates builds on this.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from plateletpd.io.files import atomic_folder, atomic_write, write_json, write_text

from plateletpd.io.provenance import provenance
from plateletpd.model.definition import load_model
from plateletpd.simulation.simulate import simulate

MODEL = "cit_thrombopoiesis"
CHEMOTHERAPY = "chemotherapy 1 dose d1"
START_BELOW = 75.0  # x10^9/L: start treatment on the day after the count falls below this
STOP_AT = 100.0     # x10^9/L: stop once the morning count reaches this
MAX_DAYS = 14       # at most 14 daily doses (rhTPO label and CIT consensus)
DAYS = 28
#: arm label -> (drug doses given on each treatment day, plot colour)
ARMS = {
    "untreated": ((), "black"),
    "hetrombopag 7.5 mg qd": (("hetrombopag 7.5 mg",), "tab:blue"),
    "rhTPO 15,000 U qd": (("rhTPO 15000 U",), "tab:orange"),
    "rhIL-11 50 ug/kg qd": (("rhIL-11 50 ug/kg",), "tab:green"),
    "hetrombopag + rhTPO": (("hetrombopag 7.5 mg", "rhTPO 15000 U"), "tab:red"),
}


def hourly(days: float = DAYS) -> np.ndarray:
    return np.arange(0, days * 24 + 1) / 24.0


def simulate_typical_patient(model, doses, days, times=None):
    """Chemotherapy on day 1 plus ``doses`` on the listed study days."""
    parts = [CHEMOTHERAPY] + [f"{dose} d{','.join(str(d) for d in days)}"
                              for dose in doses if days]
    # the typical patient's body weight (the model's default) is given explicitly: a per-kg
    # dose never uses a default silently
    weight = {"body_weight": model.covariates["body_weight"].default}
    return simulate(model, " + ".join(parts), times=hourly() if times is None else times,
                    covariates=weight)


def treatment_days(model, untreated, doses) -> list[int]:
    """Study days of treatment: from the day after the count is < 75 until it is >= 100.

    A dose on study day N is given at t = N - 1 days and cannot change the counts before it,
    so one pass decides the stop day exactly: simulate the full 14 days, then keep the days
    up to the first morning count >= 100.
    """
    below = np.nonzero(untreated["platelets"] < START_BELOW)[0]
    if not below.size or not doses:
        return []
    first = math.floor(untreated.times[below[0]]) + 2  # next study day
    days = list(range(first, first + MAX_DAYS))
    result = simulate_typical_patient(model, doses, days, untreated.times)
    kept = []
    for day in days:
        morning = np.interp(day - 1, result.times, result["platelets"])
        if day > first and morning >= STOP_AT:
            break
        kept.append(day)
    return kept


def typical_patient(model=None) -> dict:
    """Every arm for the typical patient: label -> (treatment days, result)."""
    model = load_model(model or MODEL)
    untreated = simulate_typical_patient(model, (), [])
    arms = {}
    for label, (doses, _) in ARMS.items():
        days = treatment_days(model, untreated, doses)
        arms[label] = (days, simulate_typical_patient(model, doses, days) if days else untreated)
    return arms


def arm_table(arms: dict) -> pd.DataFrame:
    """Nadir, counts on study days 15 and 22, and the day the count is back at >= 100."""
    rows = []
    for label, (days, result) in arms.items():
        platelets, times = result["platelets"], result.times
        low = int(np.argmin(platelets))
        after = np.nonzero((times > times[low]) & (platelets >= STOP_AT))[0]
        rows.append({"arm": label,
                     "treatment_days": f"{days[0]}-{days[-1]}" if days else "-",
                     "doses": len(days), "nadir": platelets[low],
                     "nadir_study_day": times[low] + 1,
                     "plt_study_day_15": np.interp(14, times, platelets),
                     "plt_study_day_22": np.interp(21, times, platelets),
                     "back_to_100_study_day": times[after[0]] + 1 if after.size else math.nan,
                     "status": result.status_code.name})
    return pd.DataFrame(rows).set_index("arm")


def typical_patient_figure(arms: dict, path: Path) -> Path:
    """Platelets (top) and TPO (bottom) for every arm, written atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8.2, 7.6), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 2]})
    for index, (label, (days, result)) in enumerate(arms.items()):
        colour = ARMS[label][1]
        top.plot(result.times, result["platelets"], color=colour, lw=2 if days else 2.4,
                 label=label + (f" (days {days[0]}-{days[-1]})" if days else ""))
        bottom.plot(result.times, result["tpo"], color=colour, lw=1.8)
        if "rhTPO" in label:
            bottom.plot(result.times, result["total_tpo"], color=colour, lw=1.2, ls="--")
        if days:  # dose times as ticks, one row per arm, under the curves
            top.plot([d - 1 for d in days], np.full(len(days), -2.0 - 9.0 * index), "|",
                     color=colour, ms=3.2, mew=1.8)
    for level, text in ((STOP_AT, "100"), (START_BELOW, "75"), (50.0, "50 (grade 3)")):
        top.axhline(level, color="grey", lw=0.8, ls=":")
        top.text(DAYS - 0.2, level + 3, text, ha="right", va="bottom", fontsize=8,
                 color="grey")
    top.set_ylabel("platelets (x10$^9$/L)")
    top.set_ylim(-56, None)
    top.axhline(0, color="black", lw=0.6)
    top.set_title("Typical CIT patient, one chemotherapy cycle on day 1 "
                  "(model cit_thrombopoiesis)", fontsize=11)
    top.legend(fontsize=8.5, loc="upper left", frameon=False)
    top.text(0.3, -27, "dose days (ticks):\nfrom the day after PLT < 75\nuntil PLT >= 100, "
             "max 14 d", ha="left", va="center", fontsize=7, color="dimgrey",
             linespacing=1.0)
    bottom.set_yscale("log")
    bottom.set_ylabel("TPO (pg/mL)")
    bottom.set_xlabel("time since chemotherapy (days; study day N starts at N - 1)")
    bottom.plot([], [], color="grey", lw=1.8, label="endogenous TPO")
    bottom.plot([], [], color="grey", lw=1.2, ls="--",
                label="endogenous TPO + rhTPO (same receptor site)")
    bottom.legend(fontsize=8, loc="upper right", frameon=False)
    bottom.set_xlim(0, DAYS)
    for axis in (top, bottom):
        axis.grid(alpha=0.25)
    figure.tight_layout()
    atomic_write(path, lambda p: figure.savefig(p, dpi=130, format="png"))
    plt.close(figure)
    return Path(path)


def run_demo(folder: Path, parameters: dict | None = None,
             origin: str = "literature priors", trial: bool = True) -> pd.DataFrame:
    """The main job: the bundled virtual trial (trials/yuan2025.toml) into ``folder``, then
    the typical patient of every arm into ``folder/typical_patient``.

    ``parameters`` replace the model file's values (the CLI passes the bundled fit's);
    ``trial=False`` (with the literature priors) runs the typical patient only. The folder
    appears whole or not at all (:func:`plateletpd.io.files.atomic_folder`)."""
    folder = Path(folder)
    with atomic_folder(folder) as root:  # the whole demo folder appears at once
        return _run_demo(folder, root, parameters, origin, trial)


def _run_demo(folder: Path, root: Path, parameters: dict | None, origin: str,
              trial: bool) -> pd.DataFrame:
    import time

    started = time.perf_counter()
    if trial:
        from plateletpd.study import trial as trials

        spec = trials.load_trial_spec(trials.bundled_trial("yuan2025"))
        print(f"virtual trial {spec.name}: {len(spec.arms)} arms x {spec.subjects_per_arm} "
              f"virtual patients screened (seed {spec.seed}); parameters: "
              f"{spec.parameters_from}\n")
        result = trials.run_trial(spec)
        print(trials.arm_table(result).to_string())
        trials.write_trial(result, root)
        print(f"\nwrote {folder}/report.md with the plots and tables "
              f"({time.perf_counter() - started:.1f} s)\n")
        folder, root = folder / "typical_patient", root / "typical_patient"
    model = load_model(MODEL).with_parameters(parameters or {})
    arms = typical_patient(model)
    table = arm_table(arms)
    root.mkdir(parents=True, exist_ok=True)
    write_text(root / "arms.csv", table.to_csv())
    figure = typical_patient_figure(arms, root / "platelets_and_tpo.png")
    record = provenance(model, parameters_from=origin, scenario={
        "chemotherapy": CHEMOTHERAPY, "start_below": START_BELOW, "stop_at": STOP_AT,
        "max_days": MAX_DAYS, "arms": {k: list(v[0]) for k, v in ARMS.items()}})
    write_json(root / "provenance.json", record)
    shown = table.drop(columns=["status"]).round(1).to_string()
    write_text(root / "report.md", "\n".join([
        "# plateletpd demo: typical CIT patient", "", __doc__.strip(), "",
        f"Parameters: {origin}.", "",
        "```", shown, "```", "", f"![platelets and TPO]({figure.name})", "",
        f"Model {model.name} (hash {model.hash[:12]}), plateletpd "
        f"{record['versions']['plateletpd']}, created {record['created']}.", ""]))
    print(f"typical CIT patient, model {model.name}; parameters: {origin}\n")
    print(shown)
    print(f"\nwrote {folder}/arms.csv, {figure.name}, report.md, provenance.json")
    return table
