"""The command line and result objects: outputs written, errors clear, tables tidy."""

import json

import numpy as np
import pandas as pd
import pytest

import plateletpd as pp
from plateletpd.cli import main


def test_models_lists_the_bundled_library(capsys):
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    for name in pp.list_models():
        assert name in listed


def test_simulate_writes_a_tidy_csv_with_provenance_and_a_plot(tmp_path, friberg):
    out, plot = tmp_path / "result.csv", tmp_path / "result.png"
    code = main(["simulate", "friberg_platelets", "--regimen", "cytotoxic 100 mg qd d1-14",
                 "--days", "28", "--out", str(out), "--plot", str(plot)])
    assert code == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["time", "variable", "value", "unit"]
    platelets = table[table.variable == "platelets"]
    assert platelets.time.max() == 28.0 and len(platelets) == 28 * 24 + 1  # hourly grid
    assert set(platelets.unit) == {"10^9/L"}  # unit from the model file
    direct = pp.simulate(friberg, "cytotoxic 100 mg qd d1-14", days=28)
    np.testing.assert_allclose(platelets.value, direct["platelets"], rtol=1e-12)
    record = json.loads((tmp_path / "result.csv.provenance.json").read_text())
    assert record["model"]["hash"] == friberg.hash
    assert record["regimen"] == str(pp.Regimen.parse("cytotoxic 100 mg qd d1-14"))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.part"))  # no temporary files left behind


def test_simulate_method_option_selects_the_integrator(tmp_path, friberg):
    # --method dop853 runs DormandPrince853 (recorded in the provenance) and agrees with the
    # default DOPRI5 run: at rtol 1e-8 each is within ~1e-8 of Radau on Friberg platelets
    # (measured 2.2e-9 and 1.4e-11 at 1e-6/1e-7, benchmarks), so 1e-6 leaves margin only for
    # a wrong method, not for noise
    values = {}
    for method in ("dopri5", "dop853"):
        out = tmp_path / f"{method}.csv"
        assert main(["simulate", "friberg_platelets", "--regimen", "cytotoxic 100 mg qd d1-14",
                     "--days", "28", "--method", method, "--rtol", "1e-8", "--atol", "1e-11",
                     "--out", str(out)]) == 0
        table = pd.read_csv(out)
        values[method] = table[table.variable == "platelets"].value.to_numpy()
        record = json.loads((tmp_path / f"{method}.csv.provenance.json").read_text())
        assert json.dumps(record).count(f'"{method}"') >= 1
    np.testing.assert_allclose(values["dop853"], values["dopri5"], rtol=1e-6)


@pytest.mark.parametrize("arguments, fragment", [
    (["simulate", "friberg_platelets", "--regimen", "cytotoxc 100 mg qd d1-14"],
     "did you mean 'cytotoxic'"),
    (["simulate", "friberg_platelets", "--param", "gama=1"], "did you mean 'gamma'"),
    (["simulate", "friberg_platelets", "--param", "gamma"], "NAME=VALUE"),
    (["simulate", "no_such_model"], "bundled models"),
    (["simulate", "friberg_platelets", "--times", "3,1"], "strictly increasing"),
])
def test_bad_input_exits_2_with_one_clear_message(capsys, arguments, fragment):
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert fragment in error and "Traceback" not in error


def test_events_command_prints_a_nonmem_table(capsys, one_compartment):
    path = str(one_compartment.path)
    assert main(["events", path, "--regimen", "iv 2 mg/kg over 1h qd d1-3",
                 "--covariate", "body_weight=70"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "ID,TIME,AMT,CMT,EVID,II,ADDL,RATE"
    # 2 mg/kg x 70 kg = 140 mg into state 2 (central), over 1 h = 1/24 day: RATE 3360 mg/day
    assert lines[1:] == [f"1,{d}.0,140.0,2,1,0.0,0,3360.0" for d in range(3)]


def test_every_command_has_help(capsys):
    import argparse

    from plateletpd.cli import build_parser

    commands = next(a for a in build_parser()._actions
                    if isinstance(a, argparse._SubParsersAction)).choices
    assert {"models", "show", "simulate", "events", "demo", "trial", "check"} <= set(commands)
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "usage: plateletpd" in text
        # argparse %-formats argument help but prints a description as written: a "%%"
        # meant as an escape would reach the reader doubled ("95%%")
        assert "%%" not in text, command


def test_batch_dataframe_is_tidy_and_flags_status(one_compartment):
    batch = pp.simulate_batch(one_compartment, "oral 10 mg d1", times=[0.0, 0.5, 1.0],
                              params={"bioavailability": [0.5, 2.0]})
    table = batch.to_dataframe()
    assert len(table) == 2 * 3 * 1  # subjects x times x outputs
    assert set(table[table.subject == 1].status) == {"INVALID_INPUT"}
    assert set(table[table.subject == 0].status) == {"SUCCESS"}


@pytest.mark.slow
def test_the_readme_main_job_runs_end_to_end(tmp_path):
    # the README's main command (plateletpd demo): every part runs and the folder is whole
    from plateletpd.cli import main
    from plateletpd.io.files import verify_folder

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    assert verify_folder(out) == []
    assert (out / "summary.csv").is_file() and (out / "typical_patient" / "arms.csv").is_file()


def test_plateletpd_warnings_print_as_messages_without_python_source_lines(tmp_path):
    import subprocess
    import sys
    import warnings

    from plateletpd.cli import main

    # a trial with no fit and no [population] cv warns (NoVariabilityWarning); run as a
    # user runs it (a process of its own: pytest records warnings instead of printing them)
    path = tmp_path / "alike.toml"
    path.write_text('[trial]\nname = "alike"\nfit = "none"\nseed = 1\nsubjects_per_arm = 3\n'
                    '[response]\nthreshold = 100\n[[arms]]\nname = "untreated"\n')
    run = subprocess.run([sys.executable, "-m", "plateletpd.cli", "trial", str(path), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "plateletpd trial: warning (NoVariabilityWarning):" in run.stderr
    assert "warnings.warn(" not in run.stderr and ".py:" not in run.stderr
    # in-process, the formatter is put back after the command
    before = warnings.formatwarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["trial", str(path), "--out", str(tmp_path / "again")]) == 0
    assert warnings.formatwarning is before


def test_progress_rewrites_a_terminal_line_and_writes_a_log_one_line_per_update(capsys):
    # a user test (2026-12-04) read `plateletpd check`'s progress from a log: the updates,
    # each after a carriage return, had run together into one line
    import io

    from plateletpd.io.display import progress, progress_end

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        for step in (1, 2):
            progress(f"step {step}/2", stream)
        progress_end(stream)
    assert terminal.getvalue() == "\rstep 1/2\rstep 2/2\n"
    assert log.getvalue() == "step 1/2\nstep 2/2\n"
    # a trial's progress to a captured (not a terminal) standard error: lines, no returns
    spec = pp.TrialSpec.create(seed=3, subjects_per_arm=5, arms=[{"name": "untreated"}],
                               response={"threshold": 100, "by_day": 14})
    pp.run_trial(spec, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and "arm 1/1 untreated: 5/5 patients" in err


def test_show_prints_sources_left_aligned_without_padding_the_lines(capsys):
    # a user test (2026-12-04): `plateletpd show` padded every parameter line with hundreds
    # of spaces (right-aligned long sources)
    from plateletpd.cli import SOURCE_WIDTH

    assert main(["show", "cit_marrow_reserve"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines[2:60])) <= 250  # the parameter table (was 700 and more)
    row = next(line for line in lines if line.startswith("tpo_baseline "))
    assert "Hou 1998" in row and row.rstrip() == row  # the source read left to right
    assert any(f"cut at {SOURCE_WIDTH} characters" in line for line in lines)


def test_show_prints_the_bundled_fits_estimates_beside_the_files_values(capsys):
    # an ITP user test (2026-12-04): `plateletpd show` printed only the priors (het_emax 2),
    # while trials used the fit's 2.30; the fit's estimates are read from its params.json
    import json

    from plateletpd.model.library import bundled_fits_dir

    record = json.loads((bundled_fits_dir() / "itp_calibration" / "params.json").read_text())
    fitted = record["parameters"]["het_emax"]["value"]
    assert main(["show", "itp_thrombopoiesis"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("het_emax "))
    assert f"{fitted:.6g}" in row.split() and "fitted values from itp_calibration" in out
    assert main(["show", "itp_thrombopoiesis", "--fit", "none"]) == 0
    assert "fitted" not in capsys.readouterr().out.splitlines()[3]


def test_a_trial_without_a_course_prints_no_empty_cycle_table(tmp_path, capsys):
    # a user test (2026-12-04): an ITP trial printed "per cycle ... Empty DataFrame"
    assert main(["trial", "itp_phase3", "--n", "10", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "Empty DataFrame" not in out and "per cycle" not in out
    assert "HETROM-5" in out


def test_show_prints_one_parameters_whole_source(capsys):
    # a user test (2026-12-05) found eltrombopag_clearance's source cut at "East..." and no
    # documented way to its East Asian factor; --parameter prints the whole entry
    from plateletpd.model.definition import load_model

    source = load_model("cit_marrow_reserve").parameters["eltrombopag_clearance"].source
    assert main(["show", "cit_marrow_reserve", "--parameter", "eltrombopag_clearance"]) == 0
    out = capsys.readouterr().out
    assert f"source: {source}" in out and "East Asian subjects x 0.476" in out
    assert "value: 0.953 L/h (bounds 0.05 to 20)" in out  # the model file's entry
    assert main(["show", "cit_marrow_reserve", "--parameter", "eltrombopag_clearence"]) == 2
    assert "did you mean 'eltrombopag_clearance'" in capsys.readouterr().err
