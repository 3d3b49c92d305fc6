"""The main job on bundled defaults: a typical CIT patient under each bundled treatment.

Scenario (stated, so a reader can change it): the default subject of the bundled
``cit_marrow_reserve`` model (65 kg, platelets 250 x10^9/L, TPO 52 pg/mL, marrow reserve 1;
chemotherapy damage the bundled fit's typical value) receives two 21-day chemotherapy
cycles, on days 1 and 22: a pretreated patient, as the bundled real-world trials enrol
(models/cit_marrow_reserve.md, assumption 8). Treatment starts on the day after the platelet
count first falls below 75 x10^9/L in the second cycle (CTCAE grade 2, the usual trigger for
treating CIT) and is given once daily until the morning count is >= 100 x10^9/L
(the stop rule of the Chinese CIT consensus and trial NCT07334093), for at most 14 days.
Doses: hetrombopag 7.5 mg (phase III NCT05864014), rhTPO 15,000 U, rhIL-11 50 ug/kg, and
hetrombopag + rhTPO. ``plateletpd demo`` uses the bundled fit
(fits/cit_marrow_reserve_calibration) unless
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

MODEL = "cit_marrow_reserve"
CHEMOTHERAPY = "chemotherapy 1 dose d1,22"   # two 21-day cycles: the second is treated
SECOND_CYCLE = 22   # study day of the second cycle; treatment follows its count below 75
START_BELOW = 75.0  # x10^9/L: start treatment on the day after the count falls below this
STOP_AT = 100.0     # x10^9/L: stop once the morning count reaches this
MAX_DAYS = 14       # at most 14 daily doses (rhTPO label and CIT consensus)
DAYS = 50           # plotted days: both cycles and the second one's recovery
ONE_CYCLE_DAYS = 28  # plotted days of the one-cycle scenario (earlier figures)
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


def simulate_typical_patient(model, doses, days, times=None, chemotherapy=CHEMOTHERAPY):
    """``chemotherapy`` (days 1 and 22) plus ``doses`` on the listed study days."""
    parts = [chemotherapy] + [f"{dose} d{','.join(str(d) for d in days)}"
                              for dose in doses if days]
    # the typical patient's body weight (the model's default) is given explicitly: a per-kg
    # dose never uses a default silently
    weight = {"body_weight": model.covariates["body_weight"].default}
    return simulate(model, " + ".join(parts), times=hourly() if times is None else times,
                    covariates=weight)


def treatment_days(model, untreated, doses, chemotherapy=CHEMOTHERAPY,
                   treated_cycle_day=SECOND_CYCLE) -> list[int]:
    """Study days of treatment: from the day after the count is < 75 in the treated cycle
    (from study day ``treated_cycle_day``) until it is >= 100.

    A dose on study day N is given at t = N - 1 days and cannot change the counts before it,
    so one pass decides the stop day exactly: simulate the full 14 days, then keep the days
    up to the first morning count >= 100.
    """
    below = np.nonzero((untreated["platelets"] < START_BELOW)
                       & (untreated.times >= treated_cycle_day - 1))[0]
    if not below.size or not doses:
        return []
    first = math.floor(untreated.times[below[0]]) + 2  # next study day
    days = list(range(first, first + MAX_DAYS))
    result = simulate_typical_patient(model, doses, days, untreated.times, chemotherapy)
    kept = []
    for day in days:
        morning = np.interp(day - 1, result.times, result["platelets"])
        if day > first and morning >= STOP_AT:
            break
        kept.append(day)
    return kept


def typical_patient(model=None, chemotherapy=CHEMOTHERAPY,
                    treated_cycle_day=SECOND_CYCLE) -> dict:
    """Every arm for the typical patient: label -> (treatment days, result). The defaults are
    the pretreated patient (two cycles, the second treated); ``chemotherapy="chemotherapy 1
    dose d1"`` with ``treated_cycle_day=1`` is the one-cycle scenario of earlier figures."""
    model = load_model(model or MODEL)
    untreated = simulate_typical_patient(model, (), [], chemotherapy=chemotherapy)
    arms = {}
    for label, (doses, _) in ARMS.items():
        days = treatment_days(model, untreated, doses, chemotherapy, treated_cycle_day)
        arms[label] = (days, simulate_typical_patient(model, doses, days,
                                                      chemotherapy=chemotherapy)
                       if days else untreated)
    return arms


def arm_table(arms: dict, treated_cycle_day: int = SECOND_CYCLE) -> pd.DataFrame:
    """The treated cycle's nadir, the counts on its days 15 and 22 (study days 36 and 43 in
    the default second cycle) and the day the count is back at >= 100."""
    rows = []
    for label, (days, result) in arms.items():
        platelets, times = result["platelets"], result.times
        treated = times >= treated_cycle_day - 1  # from the treated cycle's first day
        low = int(np.nonzero(treated)[0][np.argmin(platelets[treated])])
        after = np.nonzero((times > times[low]) & (platelets >= STOP_AT))[0]
        rows.append({"arm": label,
                     "treatment_days": f"{days[0]}-{days[-1]}" if days else "-",
                     "doses": len(days), "nadir": platelets[low],
                     "nadir_study_day": times[low] + 1,
                     f"plt_study_day_{treated_cycle_day + 14}": np.interp(
                         treated_cycle_day + 13, times, platelets),
                     f"plt_study_day_{treated_cycle_day + 21}": np.interp(
                         treated_cycle_day + 20, times, platelets),
                     "back_to_100_study_day": times[after[0]] + 1 if after.size else math.nan,
                     "status": result.status_code.name})
    return pd.DataFrame(rows).set_index("arm")


def typical_patient_figure(arms: dict, path: Path, model_name: str = MODEL,
                           parameters_from: str = "", one_cycle: bool = False) -> Path:
    """Platelets (top) and TPO (bottom) for every arm, written atomically to ``path``;
    the title names the model and, if given, where its parameters come from."""
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
    end = ONE_CYCLE_DAYS if one_cycle else DAYS  # the plotted days
    for level, text in ((STOP_AT, "100"), (START_BELOW, "75"), (50.0, "50 (grade 3)")):
        top.axhline(level, color="grey", lw=0.8, ls=":")
        top.text(end - 0.2, level + 3, text, ha="right", va="bottom", fontsize=8,
                 color="grey")
    top.set_ylabel("platelets (x10$^9$/L)")
    top.set_ylim(-56, None)
    top.axhline(0, color="black", lw=0.6)
    scenario = ("Typical CIT patient, one chemotherapy cycle on day 1" if one_cycle else
                "Typical pretreated CIT patient: chemotherapy on days 1 and 22, the second "
                "cycle treated")
    top.set_title(f"{scenario}\nmodel {model_name}"
                  f"{'; ' + parameters_from if parameters_from else ''}", fontsize=10.5)
    top.legend(fontsize=8.5, loc="upper left", frameon=False)
    trigger = "PLT < 75" if one_cycle else "PLT < 75 in cycle 2"
    top.text(0.3, -27, f"dose days (ticks):\nfrom the day after {trigger}\nuntil PLT >= 100, "
             "max 14 d", ha="left", va="center", fontsize=7, color="dimgrey", linespacing=1.0)
    bottom.set_yscale("log")
    bottom.set_ylabel("TPO (pg/mL)")
    bottom.set_xlabel(("time since chemotherapy" if one_cycle else "time since the first "
                       "cycle") + " (days; study day N starts at N - 1)")
    bottom.plot([], [], color="grey", lw=1.8, label="endogenous TPO")
    bottom.plot([], [], color="grey", lw=1.2, ls="--",
                label="endogenous TPO + rhTPO (same receptor site)")
    bottom.legend(fontsize=8, loc="upper right", frameon=False)
    bottom.set_xlim(0, end)
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
        note = trials.interval_note(spec)
        if note:
            print(note)
        for flag in trials.rebound_flags(result):
            print(f"plausibility: {flag}")
        from plateletpd.study.interval_calibration import calibrate_intervals
        from plateletpd.study.validation_results import inside_text, recorded_validation

        recorded = recorded_validation(spec.model.name)
        if recorded is not None:  # how far to trust the table, in one line (report.md: more)
            print(f"\nrecorded validation of {spec.model.name} (rows inside their 95% "
                  f"prediction interval): {inside_text(recorded[0])}; held-out rows test a "
                  f"new study's prediction (report.md, models/{spec.model.name}.md)")
            calibration = calibrate_intervals(recorded[0])
            if calibration.calibrated:  # how much the record says the intervals understate
                print(f"prediction intervals for a new study would have to be "
                      f"{calibration.factor:.2f} times as wide to hold 95% of the "
                      f"{calibration.rows} published values no fit saw "
                      f"({calibration.inside} inside as made; plateletpd trial "
                      f"--uncertainty fit gives both)")
        trials.write_trial(result, root)
        print(f"\nwrote {folder}/report.md with the plots and tables "
              f"({time.perf_counter() - started:.1f} s)\n")
        folder, root = folder / "typical_patient", root / "typical_patient"
    model = load_model(MODEL).with_parameters(parameters or {})
    arms = typical_patient(model)
    table = arm_table(arms)
    root.mkdir(parents=True, exist_ok=True)
    write_text(root / "arms.csv", table.to_csv())
    figure = typical_patient_figure(arms, root / "platelets_and_tpo.png", model.name, origin)
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


# ====================================================================== ITP (issue 19)
#: weeks at which the real-world ITP study reports its responses (PLT >= 30; >= 100 at 6, 24)
ITP_WEEKS = (6, 12, 16, 24)
#: share of the real-world study's patients per start-dose arm of trials/itp_realworld.toml.
#: Assumption: the abstract gives only the median (5 mg) and range (2.5-10 mg); half start on
#: the median, a quarter on each side (starts of 10 mg are in the 7.5 mg arm, the label max)
ITP_START_WEIGHTS = {"start 2.5 mg": 0.25, "start 5 mg": 0.5, "start 7.5 mg": 0.25}
#: IWG phases from the ITP duration in months (Rodeghiero 2009): upper ends
ITP_PHASES = (("newly diagnosed", 3.0), ("persistent", 12.0), ("chronic", math.inf))


def itp_phase(duration_months: np.ndarray) -> np.ndarray:
    """IWG disease phase of each ITP duration (months): newly diagnosed < 3, persistent
    3-12, chronic >= 12 (Rodeghiero 2009)."""
    duration_months = np.asarray(duration_months, dtype=float)
    names = np.array([name for name, _ in ITP_PHASES], dtype=object)
    return names[np.searchsorted([upper for _, upper in ITP_PHASES], duration_months,
                                 side="right")]


def itp_arm(spec, index: int):
    """Arm ``index`` of an ITP trial spec simulated for its cohort (the trial's own draws):
    ``(ArmResult, parameter vectors of the enrolled patients)``."""
    from plateletpd.simulation.simulate import _valid_rows
    from plateletpd.study import trial as trials
    from plateletpd.study.cohort import simulate_treatment_arm

    matrix = trials._cohort(spec, index)
    matrix = matrix[_valid_rows(spec.model, matrix)]
    result = simulate_treatment_arm(spec.model, spec.arms[index], matrix)
    return result, matrix[result.subjects]


def visit_counts(result, days) -> np.ndarray:
    """Counts of every enrolled patient (rows) at ``days`` after the first dose (columns)."""
    from plateletpd.study.cohort import values_at

    return values_at(result.times, result.platelets,
                     result.start_time[:, None] + np.asarray(days, dtype=float)[None, :])


def itp_realworld(subjects: int | None = None, seed: int | None = None,
                  trial_file: str | Path | None = None) -> dict:
    """The real-world ITP study (trials/itp_realworld.toml) as the publication reports it:
    response (PLT >= 30 at the visit of weeks 6, 12, 16, 24; PLT >= 100 at weeks 6 and 24)
    overall and by disease phase, the start-dose arms combined with
    :data:`ITP_START_WEIGHTS`; the observed rows beside; time to response (first visit with
    PLT >= 30) by Kaplan-Meier per arm; per-patient rows. Returns a dict of tables."""
    from plateletpd.io.outcomes import bundled_outcomes_path, load_outcomes
    from plateletpd.study import trial as trials
    from plateletpd.study.statistics import kaplan_meier

    spec = trials.load_trial_spec(trial_file or trials.bundled_trial("itp_realworld"),
                                  subjects, seed)
    duration = len(spec.model.parameter_names) + spec.model.covariate_names.index(
        "itp_duration_months")
    days = [7 * w for w in ITP_WEEKS]
    patients, km_rows = [], []
    for index, design in enumerate(spec.arms):
        result, vectors = itp_arm(spec, index)
        counts = visit_counts(result, days)
        visits = visit_counts(result, np.arange(14, spec.follow_up_days + 1,
                                                spec.visit_every_days))
        reached = visits >= 30
        first = np.where(reached.any(axis=1), np.argmax(reached, axis=1), -1)
        time_to_response = np.where(first >= 0, 14.0 * (first + 1), spec.follow_up_days)
        curve = kaplan_meier(time_to_response, first >= 0)
        low, high = curve.median_interval()
        km_rows.append({"arm": design.name, "patients": result.n,
                        "responded_by_week_24_pct": 100.0 * np.mean(first >= 0),
                        "median_days_to_response": curve.median(),
                        "median_days_to_response_lower": low,
                        "median_days_to_response_upper": high})
        table = pd.DataFrame({"arm": design.name, "patient": result.subjects,
                              "phase": itp_phase(vectors[:, duration]),
                              "baseline": result.platelets[np.arange(result.n),
                                                           np.searchsorted(result.times,
                                                                           result.start_time)],
                              "days_to_response": np.where(first >= 0, time_to_response,
                                                           np.nan)})
        for week, column in zip(ITP_WEEKS, counts.T):
            table[f"plt_week_{week}"] = column
        table["max_daily_dose_mg"] = result.extra["dose_amounts"].max(axis=1) \
            if result.extra["dose_amounts"].size else 0.0
        patients.append(table)
    patients = pd.concat(patients, ignore_index=True)
    weights = {arm: ITP_START_WEIGHTS.get(arm, 0.0) for arm in patients.arm.unique()}
    rows = []
    for phase in ("all", "newly diagnosed", "persistent", "chronic"):
        group = patients if phase == "all" else patients[patients.phase == phase]
        for level, weeks in ((30, ITP_WEEKS), (100, (6, 24))):
            for week in weeks:
                shares = group.groupby("arm")[f"plt_week_{week}"].apply(
                    lambda c, level=level: float(np.mean(c >= level)))
                total = sum(weights[a] for a in shares.index)
                value = sum(weights[a] * s for a, s in shares.items()) / total \
                    if total else math.nan
                rows.append({"phase": phase, "level": level, "week": week,
                             "simulated_pct": 100.0 * value,
                             "untreated_pct": 100.0 * shares.get("untreated", math.nan),
                             "virtual_patients": int(sum(group.arm.isin(
                                 [a for a in weights if weights[a] > 0])))})
    responses = pd.DataFrame(rows)
    data = load_outcomes(bundled_outcomes_path())
    data = data[data.study == "itp_hetrombopag_realworld_2025"]
    observed = {(r.arm, 100 if "100" in str(r.threshold) else 30, int(r.day // 7)):
                100.0 * r.observed for r in data.itertuples()}
    responses["observed_pct"] = [observed.get(("all" if p == "all" else p, lv, w), math.nan)
                                 for p, lv, w in zip(responses.phase, responses.level,
                                                     responses.week)]
    return {"spec": spec, "responses": responses, "patients": patients,
            "time_to_response": pd.DataFrame(km_rows)}


#: phase III (Mei 2021, ../shared/literature/parameters.md): PLT >= 50 at week 8, percent
#: Mei H et al. J Hematol Oncol 2021;14:37 (PMC7905908), Table 2, per arm (n 168 / 171 /
#: 85): PLT >= 50 at the week-8 visit (primary endpoint), at least once within 8 weeks, and
#: at >= 75% of the weekly assessments; none is fitted
ITP_PHASE3_OBSERVED = {
    "week_8": {"placebo": 5.9, "HETROM-2.5": 58.9, "HETROM-5": 64.3},
    "at_least_once": {"placebo": 22.4, "HETROM-2.5": 84.5, "HETROM-5": 86.5},
    "at_75pct_of_visits": {"placebo": 2.4, "HETROM-2.5": 32.7, "HETROM-5": 57.3}}
#: the endpoint names of the table and the summary columns of trials/itp_phase3.toml that
#: answer them (the trial file states each: by_day 56, at_visits [56], sustained_share 0.75)
ITP_PHASE3_COLUMNS = {"week_8": "plt_at_least_50_day_56_pct",
                      "at_least_once": "response_pct",
                      "at_75pct_of_visits": "sustained_responder_pct"}


def itp_phase3(subjects: int | None = None) -> pd.DataFrame:
    """trials/itp_phase3.toml run as a user runs it (``plateletpd trial``): per arm and
    endpoint of Mei 2021's Table 2 (PLT >= 50 at the week-8 visit, at least once within 8
    weeks, at >= 75% of the weekly assessments), the model's rate with its exact interval
    beside the published one; not fitted."""
    from plateletpd.study import trial as trials

    result = trials.run_trial(trials.load_trial_spec(trials.bundled_trial("itp_phase3"),
                                                     subjects))
    rows = []
    for arm, summary in result.summary.iterrows():
        for endpoint, column in ITP_PHASE3_COLUMNS.items():
            rows.append({"arm": arm, "endpoint": endpoint, "patients": int(summary.enrolled),
                         "model_pct": summary[column],
                         "model_pct_lower": summary[f"{column}_lower"],
                         "model_pct_upper": summary[f"{column}_upper"],
                         "observed_pct": ITP_PHASE3_OBSERVED[endpoint].get(arm, math.nan)})
    return pd.DataFrame(rows)


def run_itp_demo(folder: Path, subjects: int | None = None) -> pd.DataFrame:
    """``plateletpd demo itp``: the real-world ITP study (trials/itp_realworld.toml, on the
    bundled fit fits/itp_calibration) into ``folder``: responses overall and by phase beside
    the published ones, time to response, per-patient rows, a figure and a report; the folder
    appears whole or not at all."""
    import time

    started = time.perf_counter()
    outcome = itp_realworld(subjects)
    spec, responses = outcome["spec"], outcome["responses"]
    phase3 = itp_phase3(subjects)
    shown = responses.round(1).to_string(index=False)
    timing = outcome["time_to_response"].round(1).to_string(index=False)
    trial3 = phase3.round(1).to_string(index=False)
    folder = Path(folder)
    with atomic_folder(folder) as root:
        write_text(root / "responses.csv", responses.to_csv(index=False))
        write_text(root / "patients.csv", outcome["patients"].to_csv(index=False))
        write_text(root / "time_to_response.csv",
                   outcome["time_to_response"].to_csv(index=False))
        write_text(root / "phase3_table2.csv", phase3.to_csv(index=False))
        figure = _itp_figure(outcome, root / "itp_responses.png")
        record = provenance(spec.model, parameters_from=spec.parameters_from,
                            seed=spec.seed, trial=str(spec.path),
                            start_weights=ITP_START_WEIGHTS)
        write_json(root / "provenance.json", record)
        write_text(root / "report.md", "\n".join([
            "# plateletpd demo itp: hetrombopag titrated within 50-150 in primary ITP", "",
            (f"Trial `{spec.path}` ({spec.subjects_per_arm} patients screened per arm, seed "
             f"{spec.seed}); parameters: {spec.parameters_from}. Start-dose arms combined "
             f"{ITP_START_WEIGHTS} (assumption: the abstract gives the median 5 mg and the "
             "range only). Response = PLT >= 30 (or >= 100) at the visit of the week; "
             "phases from the drawn ITP duration (newly diagnosed < 3 months, persistent "
             "3-12, chronic >= 12)."), "", "```", shown, "```", "",
            ("Time to response (first 14-day visit with PLT >= 30; Kaplan-Meier, censored "
             "at week 24):"), "", "```", timing, "```", "",
            f"![responses]({figure.name})", "",
            ("Phase III design (`trials/itp_phase3.toml`, Mei 2021 Table 2; not fitted): "
             "PLT >= 50 at the week-8 visit (primary endpoint), at least once within 8 "
             "weeks, and at >= 75% of the weekly assessments, with exact 95% intervals:"), "",
            "```", trial3, "```", ""]))
    print(f"ITP real-world study, {spec.path}; parameters: {spec.parameters_from}\n")
    print(shown)
    print("\ntime to response (Kaplan-Meier):\n" + timing)
    print("\nphase III design (Mei 2021 Table 2; PLT >= 50 at the week-8 visit, at least "
          "once, at >= 75% of weekly visits; not fitted):\n" + trial3)
    print(f"\nwrote {folder}/report.md, responses.csv, patients.csv, time_to_response.csv, "
          "phase3_table2.csv, "
          f"{figure.name} ({time.perf_counter() - started:.1f} s)")
    return responses


def _itp_figure(outcome: dict, path: Path) -> Path:
    """Response at the weeks, simulated against observed, overall and by phase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    responses = outcome["responses"]
    figure, axes = plt.subplots(1, 4, figsize=(13, 3.6), sharey=True)
    for axis, phase in zip(axes, ("all", "newly diagnosed", "persistent", "chronic")):
        part = responses[(responses.phase == phase) & (responses.level == 30)]
        axis.plot(part.week, part.simulated_pct, "o-", label="simulated (PLT >= 30)")
        axis.plot(part.week, part.observed_pct, "s", color="black", label="observed")
        axis.plot(part.week, part.untreated_pct, "x:", color="grey", label="untreated arm")
        axis.set_title(phase)
        axis.set_xlabel("week of treatment")
        axis.set_ylim(0, 102)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("patients with PLT >= 30 at the visit (%)")
    axes[0].legend(fontsize=7.5, loc="lower right")
    figure.tight_layout()
    atomic_write(path, lambda p: figure.savefig(p, dpi=120, format="png"))
    plt.close(figure)
    return Path(path)
