"""Command-line interface: ``plateletpd models | show | simulate | events | fit | trial |
check | sweep | sensitivity | optimise | demo``.

Every command has ``--help``. Input errors print one clear message and exit with status 2
(no traceback); results are written atomically.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Sequence

from plateletpd._version import __version__
from plateletpd.errors import PlateletPDError, closest


def _assignments(pairs: Sequence[str] | None, what: str) -> dict[str, float]:
    values = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise PlateletPDError(f"--{what} expects NAME=VALUE, got {pair!r}")
        try:
            values[name.strip()] = float(value)
        except ValueError:
            raise PlateletPDError(f"--{what} {name}: {value!r} is not a number") from None
    return values


def _times(text: str | None):
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PlateletPDError(f"--times expects comma-separated days, got {text!r}") from None


def command_models(args) -> int:
    from plateletpd.model.definition import list_models

    models = list_models()
    width = max(map(len, models), default=0)
    for name, description in models.items():
        print(f"{name:<{width}}  {description}")
    return 0


#: characters of a parameter's source that ``plateletpd show`` prints
SOURCE_WIDTH = 90


def command_show(args) -> int:
    import pandas as pd

    from plateletpd.model.definition import load_model

    model = load_model(args.model)
    fitted, origin = _fitted(model.name, args.fit)  # an unknown fit is refused here
    if args.track_record:
        return _show_track_record(model, args.fit)
    if args.parameter:  # one parameter's whole entry (the table cuts sources)
        for name in args.parameter:
            if name not in model.parameters:
                raise PlateletPDError(f"{model.name} has no parameter {name!r}"
                                      f"{closest(name, list(model.parameters))}; `plateletpd "
                                      f"show {args.model}` lists them")
            entry = model.parameters[name]
            print(f"{name}\n  value: {entry.value:g} {entry.unit} (bounds {entry.lower:g} to "
                  f"{entry.upper:g})" + (f"; fitted {fitted[name]:.6g} ({origin})"
                                         if name in fitted else "")
                  + f"\n  description: {entry.description}\n  source: {entry.source}\n")
        return 0
    print(model)
    print(f"file: {model.path}\n")
    with pd.option_context("display.width", 200):
        table = model.parameter_table()
        shown = table[["value", "unit", "lower", "upper"]].copy()
        if fitted:  # the bundled fit's estimates beside the file's values (priors)
            shown.insert(1, "fitted", [f"{fitted[name]:.6g}" if name in fitted else "-"
                                       for name in table.index])
            print(f"value: the model file's; fitted: {origin}")
        # sources are long: cut, left-aligned (right-aligned they padded each line with
        # hundreds of spaces); the whole text is in the model file and its card
        shown["source"] = [text if len(text) <= SOURCE_WIDTH else
                           text[:SOURCE_WIDTH - 3] + "..." for text in table.source]
        print(shown.to_string(formatters={"source": lambda text: f"  {text}"},
                              justify="left"))
        print(f"(sources cut at {SOURCE_WIDTH} characters: the whole text is in {model.path}, "
              f"or `plateletpd show {args.model} --parameter NAME`)")
    print("\nstates:", ", ".join(f"{s.name} [{s.unit}]" for s in model.states))
    print("outputs:", ", ".join(f"{o.name} [{o.unit}]" for o in model.outputs))
    print("drugs:", ", ".join(f"{d.name} -> {d.state} [{d.amount_unit}]"
                              for d in model.dose_targets) or "none")
    if model.covariates:
        print("covariates:", ", ".join(
            f"{c.name} [{c.unit}]" + (f" default {c.default:g}" if c.default is not None else
                                      " (required when used)")
            for c in model.covariates.values()))
    if args.source:
        print("\n" + model.source)
    return 0


def _show_track_record(model, choice: str) -> int:
    """``show --track-record``: the model's track record by drug from its validation
    record (the chosen fit's when one is kept)."""
    import pandas as pd

    from plateletpd.model.library import default_fit, fit_name
    from plateletpd.study.trial import record_arm_drugs
    from plateletpd.study.validation_results import model_track_record

    fit = None if choice in ("default", "none") or fit_name(choice) == default_fit(
        model.name) else fit_name(choice)
    found = model_track_record(model, record_arm_drugs, fit=fit)
    if found is None:
        print(f"no recorded validation of {model.name}: run `plateletpd validate` with a "
              f"suite of its published studies (docs/trial_files.md)")
        return 0
    table, said = found
    if choice == "none":  # the file's values were never validated as such
        said += " (--fit none: the model file's values have no record; this is the default fit's)"
    print(f"track record of {model.name} by the drugs an arm gave, from the {said}: rows no "
          f"fit was made to (not fitted, held out); below_50 / above_50: rows whose "
          f"published value lies below / above the model's median on the count scale (more "
          f"platelets, fewer days below a threshold or events is up), so below_50 counts "
          f"the rows the model was too optimistic for; largest_error: the worst miss in "
          f"half-widths of its 95% interval (above 1 is outside); rows of one study are not "
          f"independent (docs/trial_files.md, \"Each arm's track record\")")
    with pd.option_context("display.width", 200):
        print(table.to_string(index=False, formatters={
            "median_count_side": lambda v: f"{v:.0f}", "sign_test_p": lambda v: f"{v:.2g}",
            "largest_error": lambda v: f"{v:.2f}"}))
    _show_interval_calibration(model, fit)
    return 0


def _show_interval_calibration(model, fit: str | None) -> None:
    """``show --track-record``, continued: how much wider a new study's prediction
    intervals must be, from the same record, and each study's rows against the other
    studies' factor."""
    import pandas as pd

    from plateletpd.study.interval_calibration import calibrate_intervals
    from plateletpd.study.validation_results import record_for

    recorded = record_for(model, fit)[0]
    if recorded is None:
        return
    calibration = calibrate_intervals(recorded[0])
    print("\nprediction intervals for a new study (trial --uncertainty fit): "
          + calibration.text())
    if calibration.calibrated and calibration.held_out_by_study:
        rows = pd.DataFrame([vars(s) for s in calibration.held_out_by_study])
        print("each study's rows against the factor of the other studies:\n"
              + rows.to_string(index=False, formatters={"factor": lambda v: f"{v:.2f}"}))


def _fitted(model_name: str, choice: str) -> tuple[dict[str, float], str]:
    """Parameter values of the chosen fit ("default": the model's bundled fit, "none")."""
    from plateletpd.model.library import fitted_values

    if choice == "none":
        return {}, "literature priors (--fit none)"
    name, values = fitted_values(model_name, choice)
    if name is None:
        return {}, "the model file's values (no bundled fit for this model)"
    return values, f"fitted values from {name} (--fit none for the literature priors)"


def command_simulate(args) -> int:
    from plateletpd.model.definition import load_model
    from plateletpd.simulation.simulate import simulate
    from plateletpd.numerics.solvers import DormandPrince5, DormandPrince853, Rosenbrock23

    solver_class = {"dopri5": DormandPrince5, "dop853": DormandPrince853,
                    "rosenbrock23": Rosenbrock23}[args.method]
    solver = solver_class(rtol=args.rtol, atol=args.atol)
    days = None if args.times else args.days
    model = load_model(args.model)
    fitted, origin = _fitted(model.name, args.fit)
    print(f"{model.name}: parameters: {origin}", file=sys.stderr)
    params = {**fitted, **_assignments(args.param, "param")}
    if args.variables and not args.plot:
        raise PlateletPDError("--variables chooses what --plot draws; add --plot FILE.png")
    if args.events:
        return _simulate_event_table(args, model, solver, days, params)
    result = simulate(model, args.regimen, days=days, times=_times(args.times),
                      params=params, covariates=_assignments(args.covariate, "covariate"),
                      solver=solver, keep_states=args.states)
    if not result.ok:
        print(f"warning: {result.status_code.name}: {result.message}", file=sys.stderr)
    if args.out:
        result.to_csv(args.out, include_states=args.states)
        print(f"wrote {args.out} (and {args.out}.provenance.json)")
    if args.plot:
        result.plot(_variables(args.variables), path=args.plot)
        print(f"wrote {args.plot}")
    if not args.out and not args.plot:
        table = result.to_dataframe(args.states)
        wide = table.pivot(index="time", columns="variable", values="value")
        step = max(1, len(wide) // 30)
        print(wide.iloc[::step].to_string(float_format=lambda v: f"{v:.4g}"))
    return 0 if result.ok else 1


def _variables(text: str | None) -> list[str] | None:
    """``--variables platelets,tpo`` -> ["platelets", "tpo"] (None: the default panels)."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise PlateletPDError(f"--variables takes comma-separated output names, e.g. "
                              f"--variables platelets,tpo; got {text!r}")
    return names


def _simulate_event_table(args, model, solver, days, params) -> int:
    """``simulate --events``: every subject of a NONMEM-style table, IDs kept in the output."""
    from plateletpd.simulation.event_tables import simulate_event_table
    from plateletpd.io.files import atomic_write, write_json

    if args.regimen or args.plot:
        raise PlateletPDError("--events simulates every subject of the event table; it cannot be "
                              "combined with --regimen or --plot (drop them, or simulate one "
                              "subject with --regimen)")
    result = simulate_event_table(model, args.events, time_unit=args.time_unit, days=days,
                                  times=_times(args.times), params=params,
                                  covariates=_assignments(args.covariate, "covariate"),
                                  solver=solver, keep_states=args.states)
    for subject, code in zip(result.subject_ids, result.status):
        if code != 0:
            from plateletpd.numerics.solvers import Status

            print(f"warning: subject ID {subject}: {Status(code).name}: {Status(code).message}",
                  file=sys.stderr)
    table = result.to_dataframe(args.states)
    if args.out:
        atomic_write(Path(args.out), lambda path: table.to_csv(path, index=False))
        write_json(Path(f"{args.out}.provenance.json"), result.provenance)
        print(f"wrote {args.out} (and {args.out}.provenance.json): {result.n_subjects} subjects")
    else:
        wide = table.pivot_table(index=["subject", "time"], columns="variable", values="value")
        print(wide.to_string(float_format=lambda v: f"{v:.4g}"))
    return 0 if result.success.all() else 1


def command_events(args) -> int:
    from plateletpd.dosing.event_tables import to_event_table, write_event_table
    from plateletpd.model.definition import load_model
    from plateletpd.simulation.simulate import as_regimen

    model = load_model(args.model)
    table = to_event_table(as_regimen(args.regimen), model.dose_targets, model.state_names,
                           covariates=_assignments(args.covariate, "covariate"),
                           time_unit=args.time_unit)
    if args.out:
        write_event_table(table, args.out)
        print(f"wrote {args.out}")
    else:
        print(table.to_csv(index=False), end="")
    return 0


def command_fit(args) -> int:
    from plateletpd.inference.fitting import run_fit

    _check_out(args.out)
    with _cluster(args) as client:  # the profile refits run there
        run_fit(args.config, out=args.out, method=args.method,
                max_evaluations=args.max_evaluations, client=client,
                monte_carlo_replicates=args.monte_carlo_replicates)
    if args.out:
        print(f"wrote {args.out}/params.json, report.md, fit.png, predictions.csv, "
              f"manifest.json")
    return 0


def command_roughness(args) -> int:
    from plateletpd.inference.fitting import load_fit_config, values_from_record
    from plateletpd.inference.roughness import objective_roughness
    from plateletpd.io.files import atomic_write, write_json
    from plateletpd.io.provenance import provenance

    if args.out and Path(args.out).is_dir():  # refused before the work, not after it
        raise PlateletPDError(f"--out {args.out} is a folder; give a file name, e.g. "
                              f"{Path(args.out) / 'roughness.csv'}")
    problem = load_fit_config(args.config)
    record = values_from_record(problem, args.values) if args.values else None
    values = problem.parameters.valuesdict()
    table = objective_roughness(problem, values, args.parameter, args.relative, args.points)
    grid = table.attrs["grid"]
    print(f"{args.parameter}: {args.points} points from {grid[0]:.6g} to {grid[-1]:.6g} "
          f"at the fit's sizes; each row's range and roughness (rms distance from the "
          f"quadratic through the grid) in standard errors")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("data rows' chi-square: " + ", ".join(f"{v:.3f}" for v in table.attrs["chi_square"]))
    print(f"its roughness: {table.attrs['chi_square_roughness']:.3f} (profile intervals are "
          f"read at 3.84 above the minimum; a restart_margin should exceed it)")
    if args.out:
        atomic_write(args.out, lambda path: table.to_csv(path, index=False))
        write_json(Path(f"{args.out}.provenance.json"), provenance(
            problem.model, command="roughness", config=str(args.config), seed=problem.seed,
            parameter=args.parameter, grid=[float(v) for v in grid], values=values,
            chi_square=[float(v) for v in table.attrs["chi_square"]],
            chi_square_roughness=table.attrs["chi_square_roughness"],
            values_from=record))
        print(f"wrote {args.out} (and {args.out}.provenance.json)")
    return 0


def _check_out(out) -> None:
    """Refuse an unusable output folder before the work, not after it."""
    from plateletpd.io.files import check_output_folder

    if out:
        check_output_folder(out)


def _trial_spec(args, response: dict | None = None):
    """The trial file named on the command line (a path, or a bundled trial's name);
    ``response``: keys replacing its ``[response]`` (``check --response``)."""
    from plateletpd.study.trial import bundled_trial, load_trial_spec

    path = Path(args.spec)
    if not path.exists() and path.suffix != ".toml":
        path = bundled_trial(args.spec)
    spec = load_trial_spec(path, subjects=args.n, seed=args.seed, response=response,
                           fit=getattr(args, "fit", None))
    if getattr(args, "day0", None):  # --day0 overrides [response] day0
        from dataclasses import replace

        spec = replace(spec, response={**spec.response, "day0": args.day0})
    return spec


def _response_override(items: list[str] | None) -> dict | None:
    """``["threshold=30", "rise_fold=2", "combine=all"]`` -> the [response] keys they set
    (numbers as numbers, true/false as booleans, the rest as text); None without any."""
    if not items:
        return None
    keys = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            from plateletpd.errors import PlateletPDError

            raise PlateletPDError(f"--response expects KEY=VALUE, e.g. --response "
                                  f"threshold=30 --response rise_fold=2, got {item!r}")
        text = value.strip()
        lowered = text.lower()
        if lowered in ("true", "false"):
            keys[key.strip()] = lowered == "true"
            continue
        try:
            keys[key.strip()] = float(text) if any(c in text for c in ".e") else int(text)
        except ValueError:
            keys[key.strip()] = text
    return keys


def _day0_argument(parser) -> None:
    parser.add_argument("--day0", choices=["first_dose", "entry"],
                        help="day 0 of the endpoints (overrides [response] day0): the first "
                             "dose, or enrolment ('entry': start delays compared fairly)")


def command_trial(args) -> int:
    with _recording_warnings() as seen:
        return _trial_command(args, seen)


def _trial_command(args, seen: list[str]) -> int:
    import time

    from plateletpd.study.trial import (arm_table, course_table, group_table, interval_note,
                                        rebound_flags, run_trial, track_record_summary)

    spec = _with_uncertainty_options(_trial_spec(args), args)
    _check_out(args.out)
    started = time.perf_counter()
    print(f"virtual trial {spec.name}: {len(spec.arms)} arms x {spec.subjects_per_arm} "
          f"patients screened, seed {spec.seed}; parameters: {spec.parameters_from}")
    with _cluster(args) as client:
        result = run_trial(spec, progress=True) if client is None else _on_cluster(
            spec, client, args)
        print()
        print(arm_table(result).to_string())
        if spec.variability.groups:
            print("\nby population group ([[population.mixture]]):\n"
                  + group_table(result).to_string())
        note = interval_note(spec)
        if note:
            print(note)
        if spec.extra.get("course") is not None:  # each cycle's nadir and peak per arm
            print("\nper cycle (mean of the patients given it):\n"
                  + course_table(result, cycles_only=True).to_string())
        for flag in rebound_flags(result):
            print(f"plausibility: {flag}")
        record = track_record_summary(spec)
        if record:  # how the model has done on published arms of the same drugs
            print("\ntrack record on published arms with the same drugs (rows no fit used; "
                  "report.md explains):\n" + "\n".join(f"  {line}" for line in record))
        table = power = None
        uncertainty = _run_uncertainty(spec, client) if spec.extra.get("uncertainty") == \
            "fit" else None
        if uncertainty is None and spec.extra.get("replicates", 1) > 1:
            from plateletpd.study.distributed import run_replicates

            table, power = run_replicates(spec, client, chunk=args.chunk, progress=True,
                                          power=True)
            spread = table.groupby("arm", sort=False)["response_pct"].describe(
                percentiles=[0.025, 0.975])[["mean", "2.5%", "97.5%"]]
            print("\nresponse % across replicate trials:\n" + spread.round(1).to_string())
            if len(power):  # a trial of this size: how often each difference is significant
                shown = power[power.quantity.isin(["response_difference_pct_points",
                                                   "plt_day_14_difference",
                                                   "nadir_difference"])]
                print("\npower: replicate trials of this size whose 95% interval of the "
                      "difference excludes 0 (power.csv has every quantity):\n"
                      + shown[["arm", "versus", "quantity", "power_pct", "higher_pct",
                               "mean_difference"]].round(1).to_string(index=False))
    if args.out:
        _write_trial(result, Path(args.out), table, uncertainty, seen, power)
        print(f"\nwrote {args.out}/ (report.md, summary.csv, patients.csv/.parquet, "
              f"differences.csv, {'replicates.csv, power.csv, ' if table is not None else ''}"
              f"data_dictionary.csv, 3 figures, "
              f"provenance.json, manifest.json) in {time.perf_counter() - started:.1f} s")
    return 0


class _recording_warnings:
    """Shows warnings as usual and keeps their text (category: message), so the outputs
    written at the end can carry them (a report read later must say what the run warned
    of: a trial whose patients are all alike, a follow-up too short)."""

    def __enter__(self) -> list[str]:
        self.seen: list[str] = []
        self.shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            text = f"{category.__name__}: {message}"
            if text not in self.seen:
                self.seen.append(text)
            self.shown(message, category, filename, lineno, file, line)
        warnings.showwarning = show
        return self.seen

    def __exit__(self, *exc) -> None:
        warnings.showwarning = self.shown


FIT_HELP = ("the fit the trial runs on, replacing the file's [trial] fit: \"default\" (the "
            "model's bundled fit), \"none\" (the model file's values), a bundled fit's name "
            "or a fit folder (plateletpd fit --out; relative to the working directory)")


def _fit_argument(parser, what: str = FIT_HELP) -> None:
    parser.add_argument("--fit", metavar="FIT", help=what)


def _cluster_arguments(parser, chunk: bool = True) -> None:
    """--scheduler / --workers / --chunk: where the patients run (study/distributed.py)."""
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on an existing Dask cluster, e.g. tcp://10.0.0.5:8786 "
                             "(needs plateletpd[scale]); same results as without it")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="run on a local Dask cluster of N worker processes started "
                             "for this run (needs plateletpd[scale])")
    if chunk:
        parser.add_argument("--chunk", type=int, default=2000, metavar="PATIENTS",
                            help="patients per Dask task with --scheduler/--workers "
                                 "(default 2000); results do not depend on it")


def _cluster(args):
    """The Dask client of --scheduler/--workers (None: in this process)."""
    from plateletpd.study.distributed import cluster

    return cluster(args.scheduler, args.workers)


def _on_cluster(spec, client, args):
    from plateletpd.study.distributed import run_trials

    return run_trials([spec], client, chunk=args.chunk, progress=True,
                      label="trial chunks")[0]


def _with_uncertainty_options(spec, args):
    """``--replicates`` and ``--uncertainty`` override the trial file's keys."""
    from plateletpd.study.uncertainty import with_overrides

    return with_overrides(spec, replicates=args.replicates, uncertainty=args.uncertainty)


def _run_uncertainty(spec, client=None):
    """Replicate trials with parameters drawn from the fit; the intervals printed."""
    from plateletpd.study.uncertainty import run_uncertainty

    uncertainty = run_uncertainty(spec, progress=True, client=client)
    for note in uncertainty.notes:
        print(f"note: {note}", file=sys.stderr)
    table = uncertainty.intervals
    shown = table[table.endpoint == table.endpoint.iloc[0]]
    print(f"\n{shown.endpoint.iloc[0]} across {spec.extra['replicates']} replicate trials "
          f"(95% intervals; all endpoints in uncertainty.csv):\n" + shown.drop(
              columns="endpoint").to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    return uncertainty


def _write_trial(result, folder: Path, table, uncertainty, seen=(), power=None) -> None:
    """The trial folder, with the uncertainty files in it when there are any (one atomic
    folder either way); ``seen``: the warnings of the run, for its report; ``power``: the
    replicate trials' power (power.csv)."""
    from plateletpd.io.files import atomic_folder
    from plateletpd.study.trial import write_trial

    if uncertainty is None:
        write_trial(result, folder, replicates=table, run_warnings=seen, power=power)
        return
    from plateletpd.study.uncertainty import write_uncertainty

    with atomic_folder(folder) as staging:
        write_trial(result, staging, run_warnings=seen)
        names = [path.name for path in write_uncertainty(uncertainty, staging)]
    print(f"wrote {folder}/{', '.join(names)}")


def command_check(args) -> int:
    from plateletpd.study.check import check_trial, write_check

    spec = _trial_spec(args, _response_override(args.response))
    _check_out(args.out)
    with _cluster(args) as client:  # the replicate trials run there
        result = check_trial(spec, args.data, study=args.study,
                             arm_map=_arm_map(args.arm_map), replicates=args.replicates,
                             uncertainty=args.uncertainty, progress=True,
                             only_mapped=args.only_mapped_arms, client=client,
                             lines=_lines(args.lines))
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    table = result.table.assign(interval=[f"[{low:.4g}, {high:.4g}]" for low, high in zip(
        result.table.interval_low, result.table.interval_high)])
    print(f"predictive check of {spec.name} against {result.study} ({args.data}):")
    # the threshold and the day tell apart rows of one arm and endpoint (a transfusion
    # and a grade-4 incidence; a count on two days)
    table = table.assign(threshold=[_shortened(text) for text in
                                    table.threshold.fillna("").astype(str)],
                         day=[("" if d != d else f"{d:g}") for d in table.day],
                         # a comparison row: observed and predicted are z (its note says
                         # how often a virtual study finds the published direction)
                         statistic=[f"{s} {c.replace('_', ' ')} vs {v} (z)" if c else s
                                    for s, c, v in zip(
                                        table.statistic,
                                        table.get("comparison", [""] * len(table)),
                                        table.get("versus", [""] * len(table)))])
    columns = ["line", "arm", "trial_arm", "endpoint", "threshold", "day", "statistic", "n",
               "virtual_n", "observed", "predicted", "interval", "inside"]
    if "chance_of_finding" in table:  # comparison rows: how often a study finds it (%)
        table = table.assign(chance=[f"{v:.1f}%" if v == v else "" for v in
                                     table.chance_of_finding])
        columns.append("chance")
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    # how each row was read (check.csv's reading column): a user test looked for it here
    print("how each row was read:")
    for line, reading in zip(result.table.line, result.table.reading):
        print(f"  line {line}: {reading}")
    if len(result.spread):  # mean rows published with an SD: the between-patient spread
        spread = result.spread
        print("between-patient spread (each mean row published with an SD: that SD, and SD "
              "over mean as cv, against those of the virtual studies; percentile: the "
              "published value's place among them):")
        print(spread.assign(
            interval=[f"[{low:.4g}, {high:.4g}]" for low, high in zip(
                spread.interval_low, spread.interval_high)],
            percentile=[f"{p:.0f}" for p in spread.observed_percentile])[
            ["line", "arm", "endpoint", "statistic", "n", "virtual_n", "observed",
             "predicted", "interval", "inside", "percentile"]].to_string(
            index=False, float_format=lambda v: f"{v:.4g}"))
    if (args.uncertainty or spec.extra.get("uncertainty", "none")) == "fit":
        result = _check_against_record(spec, result)
    if args.out:
        paths = write_check(result, Path(args.out))
        print(f"wrote {', '.join(p.name for p in paths)} to {args.out}")
    return 0


def _check_against_record(spec, result):
    """``check --uncertainty fit``: the rows against prediction intervals widened by the
    model's validation record (without this trial's own recorded rows); the result with
    each row's widened interval in its table (check.csv's ``calibrated_low``,
    ``calibrated_high``, ``inside_calibrated``)."""
    from dataclasses import replace

    from plateletpd.study.interval_calibration import (
        check_against_record,
        floor_lines,
        whole_range_lines,
    )
    from plateletpd.study.trial import _non_default_fit
    from plateletpd.study.validation_results import record_for

    recorded = record_for(spec.model, _non_default_fit(spec))[0]
    if recorded is None or not len(result.table):
        return result
    against = check_against_record(result.table, recorded[0], spec.name)
    if not against.rows:  # comparison rows only (a user test read "0 of 0 rows" as a failure)
        print("calibrated: no row has a prediction interval to widen (comparison rows are "
              "judged by their chance of finding, above)")
        return result
    print("calibrated: " + against.text())
    widened = against.table
    if widened is None or not widened["inside_calibrated"].notna().any():
        return result
    shown = result.table[["line", "arm", "endpoint", "observed", "predicted"]].assign(
        calibrated=[f"[{low:.4g}, {high:.4g}]" if low == low else "" for low, high in
                    zip(widened.calibrated_low, widened.calibrated_high)],
        inside=widened["inside_calibrated"].map(lambda v: "" if v is None else v).to_numpy())
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    whole = whole_range_lines(widened, result.table["endpoint"])
    if whole:
        print(f"note: line{'s' if len(whole) > 1 else ''} {', '.join(map(str, whole))}: the "
              f"calibrated interval covers the endpoint's whole range (0-100%), so 'inside' "
              f"there cannot fail and says nothing about the model; read the model's own "
              f"interval", file=sys.stderr)
    floored = [line for line in floor_lines(widened, result.table) if line not in whole]
    if floored:
        print(f"note: line{'s' if len(floored) > 1 else ''} {', '.join(map(str, floored))}: "
              f"inside only because the calibrated interval was widened down to the "
              f"endpoint's floor (0), below a published value under the model's own "
              f"interval: such a row cannot fail downward; the model's own interval "
              f"misses it", file=sys.stderr)
    table = result.table.assign(**{column: widened[column].to_numpy() for column in
                                   ("calibrated_low", "calibrated_high",
                                    "inside_calibrated")})
    return replace(result, table=table)


def command_validate(args) -> int:
    from plateletpd.study.validation import (
        check_record,
        load_spread_record,
        load_suite,
        load_validation_record,
        merge_validation,
        validate,
        write_validation,
    )

    suite = load_suite(args.suite)
    _check_out(args.out)
    if args.update and not args.check:
        raise PlateletPDError("--update puts re-run checks into an earlier record: name them "
                              "with --check N (repeatable)")
    record = load_validation_record(args.update) if args.update else None
    replicates = args.replicates or suite.replicates
    uncertainty = args.uncertainty or suite.uncertainty
    from plateletpd.study.trial import fit_override

    fit = None if args.fit is None else fit_override(args.fit)
    if record is not None:  # refused before minutes of checks, not after them
        from plateletpd.study.trial import load_trial_spec

        numbers = [n for n in args.check if 1 <= n <= len(suite.checks)]
        check_record(record, suite, set(args.check),
                     {load_trial_spec(suite.checks[n - 1].trial, fit=fit).model.hash
                      for n in numbers},
                     replicates, uncertainty, fit)
    result = validate(suite, replicates=args.replicates, uncertainty=args.uncertainty,
                      roles=tuple(args.role) if args.role else None, progress=True,
                      checks=tuple(args.check) if args.check else None, fit=fit)
    extra = {} if fit is None else {"fit": fit}
    if record is not None:
        result = merge_validation(record, result, replicates, uncertainty, fit,
                                  spread=load_spread_record(args.update))
        extra.update({"updated_checks": sorted(args.check),
                      "updated_from": {"record": str(args.update),
                                       "created": record[1].get("created")}})
    table = result.table.assign(interval=[f"[{low:.4g}, {high:.4g}]" for low, high in zip(
        result.table.interval_low, result.table.interval_high)])
    print(f"validation suite {suite.name}: {len(result.runs)} checks, {replicates} "
          f"replicate studies each, uncertainty {uncertainty!r}")
    print(table[["check", "trial", "role", "line", "arm", "endpoint", "observed",
                 "predicted", "interval", "inside"]].to_string(
        index=False, float_format=lambda v: f"{v:.4g}"))
    print("\ninside the 95% prediction interval, by role (never pooled):")
    for row in result.summary.itertuples():
        print(f"  {row.role:<12} {int(row.inside)}/{int(row.rows)} ({row.inside_pct:.0f}%)")
    if len(result.spread):
        from plateletpd.study.validation_results import spread_text

        print("\nbetween-patient spread (mean rows published with an SD, as the SD and as "
              "SD over mean; spread.csv): inside the 95% interval, published spread above "
              "the virtual studies' median, by role:")
        print("  " + spread_text(result.spread).replace("; ", "\n  "))
    if args.out:
        paths = write_validation(result, Path(args.out), replicates, uncertainty, **extra)
        print(f"wrote {', '.join(p.name for p in paths)} to {args.out}")
    return 0


def _lines(text: str | None) -> list[int] | None:
    """``--lines 3,5-7`` as [3, 5, 6, 7] (lines of the data file); a clear error otherwise."""
    if text is None:
        return None
    lines = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            low = int(first)
            high = int(last) if last else low
        except ValueError:
            raise PlateletPDError(f"--lines takes line numbers of the data file, single or as "
                                  f"ranges, e.g. --lines 12,15-17; got {text!r}") from None
        if low < 1 or high < low:
            raise PlateletPDError(f"--lines: {part.strip()!r} is not a line or an ascending "
                                  f"range of lines (from 1)")
        lines.extend(range(low, high + 1))
    return lines


def _shortened(text: str, width: int = 40) -> str:
    """A threshold text cut to ``width`` characters for the console, keeping its end (a
    cycle number: "platelet transfusion, cycle 2" lost its 2 at 28 characters, a user test
    2026-12-07); check.csv keeps the whole text."""
    if len(text) <= width:
        return text
    tail = 16
    return text[:width - tail - 3] + "..." + text[-tail:]


def _arm_map(pairs) -> dict[str, "str | list[str]"]:
    """``--arm-map "TRIAL ARM=DATA ARM"`` (repeatable) as a dict; a trial arm given twice
    stands for both data arms (a list)."""
    mapping: dict = {}
    for pair in pairs or ():
        trial_arm, sep, data_arm = pair.partition("=")
        if not sep or not trial_arm.strip() or not data_arm.strip():
            raise PlateletPDError(f"--arm-map expects 'TRIAL ARM=DATA ARM', got {pair!r}")
        trial_arm, data_arm = trial_arm.strip(), data_arm.strip()
        if trial_arm in mapping:
            before = mapping[trial_arm]
            before = [before] if isinstance(before, str) else before
            if data_arm in before:
                raise PlateletPDError(f"--arm-map maps trial arm {trial_arm!r} to data arm "
                                      f"{data_arm!r} twice; give each pair once")
            mapping[trial_arm] = [*before, data_arm]
        else:
            mapping[trial_arm] = data_arm
    return mapping


def _uncertainty_arguments(parser) -> None:
    parser.add_argument("--replicates", type=int,
                        help="replicate trials (overrides [trial] replicates)")
    parser.add_argument("--uncertainty", choices=["none", "fit"],
                        help="'fit': draw the model parameters of each replicate from the "
                             "fit's uncertainty (overrides [trial] uncertainty)")


def command_compare(args) -> int:
    from plateletpd.study.validation_comparison import compare_validations, write_comparison

    _check_out(args.out)
    comparison = compare_validations(args.first, args.second)
    print(f"validation records compared over {len(comparison.rows)} shared rows "
          f"(first: {args.first}; second: {args.second})")
    print("inside the 95% prediction interval, first -> second, by role (never pooled):")
    for row in comparison.summary.itertuples():
        print(f"  {row.role:<12} {int(row.inside_first)}/{int(row.rows)} -> "
              f"{int(row.inside_second)}/{int(row.rows)}; median observed percentile "
              f"{row.median_percentile_first:.0f} -> {row.median_percentile_second:.0f}")
    moved = comparison.moved
    if len(moved):
        print("\nrows that moved:")
        print(moved[["role", "trial", "line", "arm", "endpoint", "observed", "predicted_first",
                     "predicted_second", "change"]].to_string(
            index=False, float_format=lambda v: f"{v:.4g}"))
    for label, only in (("first", comparison.only_first), ("second", comparison.only_second)):
        if len(only):
            print(f"{len(only)} row(s) only in the {label} record (not compared)")
    if args.out:
        paths = write_comparison(comparison, args.out)
        print(f"wrote {', '.join(p.name for p in paths)} to {args.out}")
    return 0


def command_sweep(args) -> int:
    from plateletpd.study.sweep import parse_grid, run_sweep, write_sweep
    from plateletpd.study.trial import uncertainty_left_out

    spec = _trial_spec(args)
    _check_out(args.out)
    grid = parse_grid(args.grid)
    replicates = _sweep_replicates(spec, args) if args.uncertainty == "fit" else None
    with _cluster(args) as client:
        table = run_sweep(spec, grid, args.arm, progress=True, endpoint=args.endpoint,
                          client=client, chunk=args.chunk)
    shown = [*grid, "arm", "regimen", args.endpoint]
    print(table[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    # a user test (2026-12-04) spent time on a cell that did not reproduce the file's own arm
    differ = "dosing and who is in the swept groups" if any(
        name.startswith("share:") for name in grid) else "dosing"
    print(f"note: every cell treats the same {spec.subjects_per_arm} screened patients (seed "
          f"{spec.seed}, the draws of the file's first arm, {spec.arms[0].name!r}: common "
          f"random numbers, so cells differ by their {differ} alone); "
          f"`plateletpd trial` of the file draws each arm's own patients, so an arm there "
          f"differs from its cell here by sampling (design = \"paired\" shares them)",
          file=sys.stderr)
    ranked = None
    if args.better != "higher" and args.uncertainty != "fit":
        print("note: --better ranks the cells of a sweep under uncertainty; without "
              "--uncertainty fit it changes nothing", file=sys.stderr)
    if args.uncertainty == "fit":
        ranked = _sweep_ranking(spec, grid, args, replicates)
    else:
        left_out = uncertainty_left_out(spec)
        if left_out:
            print(f"note: every cell is at the fit's point estimates: it leaves out "
                  f"{left_out}; for intervals, the probability that each cell is best and "
                  f"paired differences, add --uncertainty fit --replicates 200",
                  file=sys.stderr)
    if args.out:
        paths = write_sweep(table, spec, grid, args.endpoint, Path(args.out), ranked)
        print(f"wrote {', '.join(p.name for p in paths)} to {args.out}")
    return 0


def _sweep_replicates(spec, args) -> int:
    """The replicate studies of ``sweep --uncertainty fit``, checked before any cell runs
    (and the fit they are drawn from)."""
    from plateletpd.study.sweep_uncertainty import check_ranking
    from plateletpd.study.uncertainty import TrialUncertainty

    TrialUncertainty.for_trial(spec)  # the trial names a fit with an uncertainty
    replicates = args.replicates
    if replicates is None:  # the file's [trial] replicates, or 20
        replicates = spec.extra.get("replicates", 1)
        if replicates < 2:
            replicates = 20
            print("note: --replicates not given: 20 replicate studies (200 or more for "
                  "decisions)", file=sys.stderr)
    check_ranking(replicates, args.better)  # the same check the ranking makes
    return replicates


def _sweep_ranking(spec, grid, args, replicates: int):
    """``sweep --uncertainty fit``: the sweep as replicate new studies, ranked."""
    from plateletpd.study.sweep_uncertainty import run_sweep_uncertainty

    print(f"\nthe sweep under the fit's uncertainty: {replicates} replicate studies ...",
          file=sys.stderr)
    ranked = run_sweep_uncertainty(spec, grid, args.arm, replicates=replicates,
                                   endpoint=args.endpoint, better=args.better,
                                   progress=True)
    shown = ranked.ranking.drop(columns=["replicates"])
    print(f"\n{args.endpoint} over the replicate studies ({args.better} is better): median "
          f"[95% interval], probability of being the best row, paired difference from the "
          f"reference row (the best median) [95%], probability of beating it:")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for note in ranked.notes:
        print(f"note: {note}", file=sys.stderr)
    return ranked


def command_sensitivity(args) -> int:
    from plateletpd.study.sensitivity import Factor, run_sensitivity, write_sensitivity

    spec = _trial_spec(args)
    _check_out(args.out)
    factors = [Factor.parse(text) for text in args.factor]
    arm = args.arm or next((a.name for a in spec.arms if a.treatment), spec.arms[0].name)
    per = len(factors) + (2 if args.method == "sobol" else 1)
    print(f"{args.method} sensitivity of arm {arm!r} of {spec.name}: {len(factors)} factors, "
          f"{args.samples * per} trials of {spec.subjects_per_arm} patients (seed "
          f"{spec.seed}, the same patients in every trial)")
    with _cluster(args) as client:
        result = run_sensitivity(spec, arm, factors, method=args.method,
                                 samples=args.samples, seed=args.sampling_seed, client=client,
                                 chunk=args.chunk, progress=True)
    print(result.indices.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.out:
        paths = write_sensitivity(result, spec, arm, Path(args.out))
        print(f"wrote {', '.join(p.name for p in paths)} to {args.out}")
    return 0


def command_optimise(args) -> int:
    from plateletpd.study.optimisation import (
        DoseSearch,
        optimise_dose,
        parse_numbers,
        write_optimum,
    )

    spec = _trial_spec(args)
    _check_out(args.out)
    arm = args.arm or next((a.name for a in spec.arms if a.treatment), spec.arms[0].name)
    search = DoseSearch(arm, tuple(parse_numbers(args.doses, "--doses")),
                        tuple(parse_numbers(args.start_days, "--start-days")),
                        tuple(parse_numbers(args.durations, "--durations")),
                        args.target, args.by_day, args.objective, args.drug)
    print(f"dose search for arm {arm!r} of {spec.name}: doses {', '.join(map(str, search.doses))}"
          f"; start days {', '.join(f'+{d:g}' for d in search.start_delays)}; durations "
          f"{', '.join(map(str, search.durations))} days; target >= {search.target_pct:g}% "
          f"responding; least {search.objective}; {spec.subjects_per_arm} patients per trial")
    with _cluster(args) as client:
        result = optimise_dose(spec, search, replicates=args.replicates, client=client,
                               chunk=args.chunk, progress=True)
    best = result.best
    unit = f" {best['dose_unit']}" if best.get("dose_unit") else ""
    print(f"\nanswer: {best['dose']:g}{unit} daily from day +{best['start_delay']:g} for up to "
          f"{best['max_days']} days: {best['response_pct']:.1f}% responding (95% CI "
          f"{best['response_pct_lower']:.1f}-{best['response_pct_upper']:.1f}), "
          f"{best['total_drug']:.4g}{unit} per patient over {best['mean_treatment_days']:.1f} "
          f"days; "
          f"across {args.replicates} replicate trials {best['replicate_median']:.1f}% "
          f"({best['replicate_lower']:.1f}-{best['replicate_upper']:.1f}), target reached in "
          f"{best['probability_reaching_target']:.0%}")
    print("\ncurve at that start and duration:\n" + result.curve[[
        "dose", "response_pct", "replicate_lower", "replicate_upper",
        "probability_reaching_target", "total_drug"]].to_string(
            index=False, float_format=lambda v: f"{v:.3g}"))
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.out:
        paths = write_optimum(result, spec, Path(args.out))
        print(f"wrote {', '.join(p.name for p in paths)} to {args.out}")
    return 0


def command_demo(args) -> int:
    from plateletpd.demo import MODEL, run_demo, run_itp_demo

    _check_out(args.out)
    if args.case == "itp":  # the real-world ITP study on trials/itp_realworld.toml's fit
        run_itp_demo(Path(args.out))
        return 0
    fitted, origin = _fitted(MODEL, args.fit)
    run_demo(Path(args.out), fitted, origin, trial=args.fit != "none")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from plateletpd.io.outcomes import REQUIRED_COLUMNS, SPREAD_TYPES
    from plateletpd.study.sensitivity import ENDPOINTS as SENSITIVITY_ENDPOINTS

    parser = argparse.ArgumentParser(
        prog="plateletpd",
        description="Platelet-kinetics pharmacodynamic simulator (model files compiled to "
                    "numba kernels).")
    parser.add_argument("--version", action="version", version=f"plateletpd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = commands.add_parser("models", help="list the bundled models",
                                 description="List the bundled model library.")
    models.set_defaults(run=command_models)

    show = commands.add_parser("show", help="describe a model (parameters, units, sources)",
                               description="Print a model's parameters with units and "
                                           "sources, its states, outputs and drugs.")
    show.add_argument("model", help="bundled model name or path to a .toml model file")
    show.add_argument("--source", action="store_true", help="also print the generated kernel")
    show.add_argument("--fit", default="default", metavar="NAME",
                      help="show this fit's estimates beside the file's values ('default': "
                           "the model's bundled fit; 'none': only the file's values)")
    show.add_argument("--parameter", action="append", metavar="NAME",
                      help="print only this parameter's whole entry: value, unit, bounds, "
                           "description and source (repeatable)")
    show.add_argument("--track-record", action="store_true",
                      help="print instead how the model has done, by the drugs an arm gave, "
                           "on the published rows of its validation record that no fit used "
                           "(the --fit's record when one is kept)")
    show.set_defaults(run=command_show)

    simulate = commands.add_parser(
        "simulate", help="simulate one subject",
        description="Simulate one subject on a regimen and write a tidy CSV and/or a plot.",
        epilog='example: plateletpd simulate friberg_platelets --regimen "cytotoxic 100 mg '
               'qd d1-14" --days 28 --out result.csv --plot result.png')
    simulate.add_argument("model", help="bundled model name or path to a .toml model file")
    simulate.add_argument("--regimen", default=None,
                          help='dosing, e.g. "hetrombopag 7.5 mg qd d1-14 + rhTPO 300 U/kg qd '
                               'd1-14" (day 1 starts at time 0); default: no dosing')
    simulate.add_argument("--events", metavar="TABLE.csv",
                          help="NONMEM-style event table (ID, TIME, AMT, CMT, EVID, II, ADDL, "
                               "RATE, SS; see docs/event_tables.md): every subject is simulated, "
                               "the output's subject column holds the IDs")
    simulate.add_argument("--time-unit", choices=["day", "h"], default=None,
                          help="unit of the event table's TIME and II (RATE is per this unit); "
                               "default: the model's time unit")
    simulate.add_argument("--days", type=float, default=28.0,
                          help="duration in days (hourly outputs); default 28")
    simulate.add_argument("--times", help="explicit output times in days, comma-separated")
    simulate.add_argument("--param", action="append", metavar="NAME=VALUE",
                          help="replace a parameter value (repeatable)")
    simulate.add_argument("--covariate", action="append", metavar="NAME=VALUE",
                          help="set a covariate, e.g. body_weight=70 (repeatable)")
    simulate.add_argument("--method", choices=["dopri5", "dop853", "rosenbrock23"],
                          default="dopri5", help="integrator (dop853 for tight tolerances, "
                          "rosenbrock23 for stiff models)")
    simulate.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance")
    simulate.add_argument("--atol", type=float, default=1e-9, help="absolute tolerance")
    simulate.add_argument("--states", action="store_true", help="include every state")
    simulate.add_argument("--fit", default="default",
                          help="parameter set: 'default' (the model's bundled fit, if any), "
                               "'none' (the model file's literature values), or a fit name "
                               "or folder; --param overrides single values")
    simulate.add_argument("--out", help="write the tidy table (CSV) here")
    simulate.add_argument("--plot", help="write a figure here (PNG, PDF or SVG)")
    simulate.add_argument("--variables", metavar="NAME,NAME",
                          help="outputs (or states, with --states) --plot draws, one panel "
                               "each, e.g. platelets,tpo; default: platelets and the first "
                               "outputs, 4 panels (plateletpd show MODEL lists the outputs)")
    simulate.set_defaults(run=command_simulate)

    events = commands.add_parser(
        "events", help="write a regimen as a NONMEM-style event table",
        description="Expand a regimen into ID, TIME, AMT, CMT, EVID, II, ADDL, RATE rows.")
    events.add_argument("model", help="bundled model name or path to a .toml model file")
    events.add_argument("--regimen", required=True, help="dosing in the text form")
    events.add_argument("--covariate", action="append", metavar="NAME=VALUE",
                        help="covariates for per-kg or per-m2 doses")
    events.add_argument("--time-unit", choices=["day", "h"], default="day",
                        help="unit of TIME in the table")
    events.add_argument("--out", help="CSV path (default: print)")
    events.set_defaults(run=command_events)

    fit = commands.add_parser(
        "fit", help="fit parameters to published arm-level outcomes",
        description="Fit a model to summary outcomes with lmfit, simulating each study arm "
                    "as a virtual cohort; writes params.json, report.md, fit.png.",
        epilog="example: plateletpd fit fits/cit_calibration/config.toml "
               "--out fits/cit_calibration")
    fit.add_argument("config", help="fit configuration (TOML)")
    fit.add_argument("--out", help="output folder")
    fit.add_argument("--method", help="lmfit method (default from the configuration: "
                                      "least_squares)")
    fit.add_argument("--max-evaluations", type=int, help="objective evaluations at most")
    fit.add_argument("--monte-carlo-replicates", type=int, metavar="K",
                     help="after the fit, re-run every row K times with other patient seeds "
                          "and report each row's Monte Carlo SD and SE (overrides [fit] "
                          "monte_carlo_replicates; 0: off)")
    _cluster_arguments(fit, chunk=False)
    fit.set_defaults(run=command_fit)

    roughness = commands.add_parser(
        "roughness", help="how much each fit row jumps along one parameter",
        description="Evaluate a fit's rows on a grid of one parameter (every other value "
                    "held, the fit's cohort sizes) and print each row's range and roughness "
                    "(the rms distance of its residual from the quadratic through the grid) "
                    "in standard errors, and the chi-square's: jumps from hard rules "
                    "(enrolment, re-check decisions, responses) that finite differences, "
                    "profiles and restarts would read as information (docs/fitting.md).",
        epilog="example: plateletpd roughness fits/cit_marrow_reserve_calibration/config.toml "
               "chemotherapy_sensitivity --values "
               "fits/cit_marrow_reserve_calibration/params.json")
    roughness.add_argument("config", help="fit configuration (TOML)")
    roughness.add_argument("parameter", help="the fit parameter to move")
    roughness.add_argument("--values", metavar="PARAMS_JSON",
                           help="an earlier fit's params.json: its values (default: the "
                                "configuration's start values)")
    roughness.add_argument("--relative", type=float, default=0.04,
                           help="the grid's half-width as a share of the value (default 0.04)")
    roughness.add_argument("--points", type=int, default=9,
                           help="grid points, at least 5 (default 9)")
    roughness.add_argument("--out", help="also write the table as CSV here")
    roughness.set_defaults(run=command_roughness)

    trial = commands.add_parser(
        "trial", help="run a virtual trial from a spec file",
        description="Simulate the arms of a trial spec (TOML; see docs/trial_files.md) in "
                    "virtual patients and report response rates, times to recovery and "
                    "counts with 95% intervals.",
        epilog="example: plateletpd trial trials/yuan2025.toml --n 1000 --seed 1 --out out")
    trial.add_argument("spec", help="trial file, or the name of a bundled trial (yuan2025)")
    trial.add_argument("--n", type=int, help="patients screened per arm (overrides the file)")
    _day0_argument(trial)
    trial.add_argument("--seed", type=int, help="random seed (overrides the file)")
    trial.add_argument("--out", help="output folder")
    _uncertainty_arguments(trial)
    _cluster_arguments(trial)
    _fit_argument(trial)
    trial.set_defaults(run=command_trial)

    check = commands.add_parser(
        "check", help="compare a trial's endpoints with a published study's summary rows",
        description="Predictive check for summary data: run replicate trials and compare "
                    "each row of a study in an outcome CSV (data/cit_summary.csv format) "
                    "with its 95% prediction interval; writes check.csv and check.png, and "
                    "spread.csv when a mean is published with an SD (that between-patient "
                    "SD and CV against the virtual studies').",
        epilog="example: plateletpd check yuan2025 --data data/cit_summary.csv --study "
               "yuan2025 --replicates 200 --out yuan-check")
    check.add_argument("spec", help="trial file, or the name of a bundled trial")
    check.add_argument("--data", required=True, metavar="DATA.csv",
                       help="outcome table, one published number per row, columns "
                            + ", ".join(REQUIRED_COLUMNS) + " (evidence, note optional; "
                            "versus, comparison and versus_n for a finding published only "
                            "as a direction and P: data/README.md); "
                            "statistic: percent, proportion, count, mean or median; "
                            "spread_type: " + ", ".join(SPREAD_TYPES) + " or empty; "
                            "endpoint and threshold wording: data/README.md and "
                            "docs/trial_files.md (Predictive check against published summary data)")
    check.add_argument("--study", help="the study's name in the data (default: [trial] "
                                       "data_study)")
    check.add_argument("--arm-map", action="append", metavar="TRIAL ARM=DATA ARM",
                       help="map a trial arm to the data's arm (repeatable; a trial arm "
                            "given twice stands for both data arms; default: data_arm in "
                            "the [[arms]] entries)")
    check.add_argument("--response", action="append", metavar="KEY=VALUE",
                       help="replace a key of the trial's [response] (repeatable): the same "
                            "trial judged by another rule, e.g. --response threshold=30 "
                            "--response rise_fold=2 --response combine=all (the IWG ITP "
                            "response); false turns a rule off")
    check.add_argument("--only-mapped-arms", action="store_true",
                       help="compare only the data arms a trial arm is mapped to (default: "
                            "every data arm must be mapped); the others are named in a note")
    check.add_argument("--lines", metavar="12,15-17",
                       help="check only these lines of the study in the data file (e.g. one "
                            "subgroup of rows that share a data arm)")
    check.add_argument("--n", type=int, help="patients screened per arm (overrides the file)")
    check.add_argument("--seed", type=int, help="random seed (overrides the file)")
    check.add_argument("--out", help="output folder")
    _uncertainty_arguments(check)
    _cluster_arguments(check, chunk=False)
    _fit_argument(check)
    check.set_defaults(run=command_check)

    validation = commands.add_parser(
        "validate", help="run a validation suite: every study's predictive check, by role",
        description="Validation suite: run the predictive check of every trial a suite "
                    "lists against its study's rows and report, apart for each role "
                    "(calibration, not fitted, held out), which observed values lie inside "
                    "their 95% prediction intervals; writes validation.csv, validation.md, "
                    "validation.png (each row's observed percentile, by role) and "
                    "provenance.json.",
        epilog="example: plateletpd validate cit_marrow_reserve --role \"held out\" "
               "--out validation-report")
    validation.add_argument("suite", nargs="?", default="cit_marrow_reserve",
                            help="suite file, or a bundled suite's name (default: "
                                 "cit_marrow_reserve, validation/cit_marrow_reserve.toml)")
    validation.add_argument("--role", action="append",
                            choices=("calibration", "not fitted", "held out"),
                            help="run only the checks of this role (repeatable)")
    validation.add_argument("--replicates", type=int,
                            help="replicate studies per check (overrides the suite)")
    validation.add_argument("--uncertainty", choices=("none", "fit"),
                            help="'fit': draw each replicate's parameters and study effects "
                                 "from the fit (overrides the suite)")
    validation.add_argument("--check", action="append", type=int,
                            help="run only this check (its number in the suite, from 1; "
                                 "repeatable)")
    validation.add_argument("--update", metavar="RECORD",
                            help="an earlier record (a --out folder, or a kept MODEL.csv with "
                                 "MODEL.provenance.json beside it): the --check checks "
                                 "replace its own, the rest are kept; refused if it was made "
                                 "with another model, suite, replicates, uncertainty or fit")
    validation.add_argument("--out", help="output folder")
    _fit_argument(validation, "the fit every check runs on, replacing each trial file's "
                              "[trial] fit (the same choices as plateletpd trial --fit): "
                              "the suite on a fit made under another assumption")
    validation.set_defaults(run=command_validate)

    compare = commands.add_parser(
        "compare", help="compare two validation records row by row (a candidate fit or "
                        "model against the one it would replace)",
        description="Two validation records side by side (each a folder written by "
                    "plateletpd validate --out, or a kept MODEL.csv with "
                    "MODEL.provenance.json beside it): per role, never pooled, the rows "
                    "inside their 95% prediction intervals, in the central half of their "
                    "virtual studies and the median observed percentile under each; the "
                    "rows that came inside or went outside; every shared row's two "
                    "predictions. Rows are matched by trial, data file, line, arm and "
                    "endpoint; records made on different data are refused. Writes "
                    "comparison.csv, comparison.md and provenance.json with --out.",
        epilog="example: plateletpd compare validation/results/cit_marrow_reserve.csv "
               "candidate-validation --out comparison")
    compare.add_argument("first", help="the record compared against (e.g. the bundled one)")
    compare.add_argument("second", help="the record of the candidate")
    compare.add_argument("--out", help="output folder")
    compare.set_defaults(run=command_compare)

    sweep = commands.add_parser(
        "sweep", help="run a trial's arms over a grid of doses, start days, durations",
        description="Dosing sweep: each grid cell runs the chosen arms on the same virtual "
                    "patients; writes sweep.csv and a heatmap per arm.",
        epilog='example: plateletpd sweep yuan2025 --arm "hetrombopag 7.5 mg" --grid '
               'dose=2.5,5,7.5,15 --grid start_delay=0,1,2 --endpoint response_pct --out s')
    sweep.add_argument("spec", help="trial file, or the name of a bundled trial")
    sweep.add_argument("--grid", action="append", required=True, metavar="NAME=V1,V2",
                       help="dimension: dose (or dose:DRUG), start_delay, max_days, "
                            "entry_below (repeatable; the first two make the heatmap axes)")
    sweep.add_argument("--arm", action="append", help="arm(s) to sweep (default: all)")
    sweep.add_argument("--endpoint", default="response_pct",
                       help="summary column for the heatmap (default response_pct; "
                       "every column: data_dictionary.csv)")
    sweep.add_argument("--n", type=int, help="patients screened per arm and cell")
    _day0_argument(sweep)
    sweep.add_argument("--seed", type=int, help="random seed (overrides the file)")
    sweep.add_argument("--out", help="output folder")
    _cluster_arguments(sweep)
    _fit_argument(sweep)
    _uncertainty_arguments(sweep)
    sweep.add_argument("--better", choices=["higher", "lower"], default="higher",
                       help="with --uncertainty fit: whether a higher or a lower --endpoint "
                            "is better (ranks the cells; default higher, as response_pct)")
    sweep.set_defaults(run=command_sweep)

    sensitivity = commands.add_parser(
        "sensitivity", help="global sensitivity of an arm's endpoints (Sobol, Morris)",
        description="Sobol first- and total-order indices with bootstrap intervals (or "
                    "Morris screening) of an arm's response rate, time to 100, nadir and "
                    "days below 50 with respect to model parameters, between-patient CVs and "
                    "design variables, each sample a trial on the same virtual patients "
                    "(SALib; needs plateletpd[scale]). Writes indices.csv, samples.csv, "
                    "convergence.csv, sensitivity.png.",
        epilog='endpoints: ' + "; ".join(f"{name} ({unit}): {text}" for name, (unit, text)
                                           in SENSITIVITY_ENDPOINTS.items())
               + '. Choose parameter ranges around the fitted values (plateletpd show MODEL '
               'prints them beside the file\'s). example: plateletpd sensitivity yuan2025 '
               '--arm "hetrombopag 7.5 mg" --factor dose=2.5,15 '
               '--factor parameter:chemotherapy_sensitivity=3.5,5.5 '
               '--factor cv:platelets_baseline=0.1,0.3 --samples 64 --n 200 --out sens')
    sensitivity.add_argument("spec", help="trial file, or the name of a bundled trial")
    sensitivity.add_argument("--arm", help="the arm analysed (default: the first treated)")
    sensitivity.add_argument("--factor", action="append", required=True,
                             metavar="KIND:NAME=LOW,HIGH",
                             help="a factor varied uniformly: parameter:NAME, cv:NAME, "
                                  "share:GROUP (a [[population.mixture]] group's share), "
                                  "dose, dose:DRUG, start_delay, max_days, entry_below "
                                  "(repeatable)")
    sensitivity.add_argument("--method", choices=["sobol", "morris"], default="sobol",
                             help="sobol (default) or morris (the cheap screening)")
    sensitivity.add_argument("--samples", type=int, default=64,
                             help="Sobol base samples (a power of 2 >= 16; factors + 2 trials "
                                  "each) or Morris trajectories (>= 4; factors + 1 trials "
                                  "each); default 64")
    sensitivity.add_argument("--sampling-seed", type=int, default=0,
                             help="seed of the factor sample (default 0)")
    sensitivity.add_argument("--n", type=int, help="patients screened per trial")
    _day0_argument(sensitivity)
    sensitivity.add_argument("--seed", type=int, help="trial seed (overrides the file)")
    sensitivity.add_argument("--out", help="output folder")
    _cluster_arguments(sensitivity)
    _fit_argument(sensitivity)
    sensitivity.set_defaults(run=command_sensitivity)

    optimise = commands.add_parser(
        "optimise", help="find the least dose, start day and duration reaching a target",
        description="Dose optimisation on common random numbers: the dose step, start day "
                    "and duration of an arm's drug that reach a response target with the "
                    "least total drug (or fewest days), with replicate trials under "
                    "parameter uncertainty and the dose-response curve around the answer. "
                    "Writes optimum.json, evaluated.csv, curve.csv, replicates.csv, "
                    "curve.png.",
        epilog='example: plateletpd optimise yuan2025 --arm "hetrombopag 7.5 mg" --doses '
               '2.5,5,7.5,10,15 --start-days 0,1,2 --durations 7,14 --target 80 --by-day 14 '
               '--day0 entry --n 400 --out best')
    optimise.add_argument("spec", help="trial file, or the name of a bundled trial")
    optimise.add_argument("--arm", help="the arm whose drug is dosed (default: first treated)")
    optimise.add_argument("--drug", help="the drug whose dose varies (default: the arm's first)")
    optimise.add_argument("--doses", required=True, metavar="D1,D2,...",
                          help="the drug's real dose steps, in the arm's unit")
    optimise.add_argument("--start-days", default="1", metavar="S1,S2",
                          help="days from entry to the first dose (default 1)")
    optimise.add_argument("--durations", default="14", metavar="N1,N2",
                          help="longest course in whole days (default 14)")
    optimise.add_argument("--target", type=float, default=80.0,
                          help="least %% of enrolled patients responding (default 80)")
    optimise.add_argument("--by-day", type=float,
                          help="respond within this many days of day 0 (the first dose; "
                               "enrolment with --day0 entry) (default: the trial's "
                               "[response] by_day)")
    optimise.add_argument("--objective", choices=["total_drug", "days"], default="total_drug",
                          help="least total drug per patient (default) or fewest days")
    optimise.add_argument("--replicates", type=int, default=20,
                          help="replicate trials per dose step at the answer (default 20)")
    optimise.add_argument("--n", type=int, help="patients screened per trial")
    _day0_argument(optimise)
    optimise.add_argument("--seed", type=int, help="trial seed (overrides the file)")
    optimise.add_argument("--out", help="output folder")
    _cluster_arguments(optimise)
    _fit_argument(optimise)
    optimise.set_defaults(run=command_optimise)

    demo = commands.add_parser(
        "demo", help="run the main job on the bundled defaults",
        description="Run the bundled virtual trial of Yuan 2025's four arms plus an untreated "
                    "arm on the bundled fit, and the typical-patient figure; print the arm "
                    "table and write plots and a report.")
    demo.add_argument("case", nargs="?", default="cit", choices=("cit", "itp"),
                      help="'cit' (default) or 'itp': hetrombopag titrated within 50-150 in "
                           "the real-world ITP study (trials/itp_realworld.toml, bundled "
                           "itp_calibration fit; --fit does not apply)")
    demo.add_argument("--out", default="plateletpd-demo", help="output folder")
    demo.add_argument("--fit", default="default",
                      help="'default' (the bundled cit_marrow_reserve_calibration fit), "
                           "'none' (priors), or a fit")
    demo.set_defaults(run=command_demo)
    return parser


def _plain_warnings(command: str):
    """A user of the command line reads plateletpd's warnings as messages, without the
    Python source line they were raised from (other libraries' warnings keep theirs).
    Returns the previous formatter, which :func:`main` puts back."""
    standard = warnings.formatwarning

    def shown(message, category, filename, lineno, line=None):
        if category.__module__.startswith("plateletpd"):
            return f"plateletpd {command}: warning ({category.__name__}): {message}\n"
        return standard(message, category, filename, lineno, line)

    warnings.formatwarning = shown
    return standard


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    standard = _plain_warnings(args.command)
    try:
        return args.run(args)
    except PlateletPDError as error:
        print(f"plateletpd {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # an unreadable input or unwritable output path
        where = f" ({error.filename})" if error.filename else ""
        print(f"plateletpd {args.command}: error: {error.strerror or error}{where}; check the "
              f"path exists and is readable/writable", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no partial output was written", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = standard


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
