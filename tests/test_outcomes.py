"""Arm-level outcome data: validation with row-level errors and standard errors."""

import io
import math

import pandas as pd
import pytest

from plateletpd.io.outcomes import (OutcomeDataError, bundled_outcomes_path, load_outcomes,
                                 require_usable)

HEADER = ("study,arm,regimen,n,population,day0,endpoint,threshold,day,statistic,value,"
          "spread_type,spread,source")
GOOD = "s,a,r,36,pop,start,response_proportion,rule,,percent,94.4,,,src"


def table(*rows, header=HEADER):
    return pd.read_csv(io.StringIO("\n".join([header, *rows])), dtype=str,
                       keep_default_na=False)


def test_bundled_calibration_data_loads_with_sources():
    data = load_outcomes(bundled_outcomes_path())
    assert len(data) == 94  # rows of shared/data/cit_summary.csv (39 + 55 added 2026-11-30)
    assert data["source"].str.len().min() > 10  # every row names its source
    yuan = data[(data.study == "yuan2025") & (data.arm == "hetrombopag+rhTPO")].iloc[0]
    assert yuan.observed == pytest.approx(0.944)  # 94.4% (Yuan 2025 abstract)
    # binomial SE for 94.4% of 36 patients, hand-computed: sqrt(.944*.056/36) = 0.03832
    assert yuan.standard_error == pytest.approx(math.sqrt(0.944 * 0.056 / 36))


def test_new_conventions_of_the_2026_11_30_rows():
    data = load_outcomes(bundled_outcomes_path()).set_index(["study", "arm", "endpoint"])
    # Soff 2019 (J Clin Oncol 37:2892): mean 57 x10^9/L at week 3 in 8 observed patients;
    # no SD given: stated default CV 30% / sqrt(8)
    soff = data.loc[("soff2019_romiplostim_cit", "observation", "plt_count")]
    assert (soff.day, soff.observed) == (21, 57)
    assert soff.standard_error == pytest.approx(0.30 * 57 / math.sqrt(8))
    # NHL-B (Authorea preprint): grade 4 thrombocytopenia in 10.1% of 135 at cycle 6
    nhl = data.loc[("nhlb_chop_cumulative_thrombocytopenia", "CHOP/CHOEP, cycle 6",
                    "incidence_proportion")]
    assert nhl.observed == pytest.approx(0.101)
    assert nhl.standard_error == pytest.approx(math.sqrt(0.101 * 0.899 / 135))
    # Winer 2015 (Cancer Med 4:16): 8 of 10 group-B eltrombopag patients had a PLT >= 400:
    # a count of patients on peak_plt is the proportion 8/10, binomial
    winer = data.loc[("winer2015_eltrombopag_gem_ph1", "eltrombopag", "peak_plt")]
    assert sorted(winer.observed) == [pytest.approx(0.8), pytest.approx(1.0)]
    eight = winer[winer.observed < 1].iloc[0]
    assert eight.standard_error == pytest.approx(math.sqrt(0.8 * 0.2 / 10))
    assert "patients meeting" in eight.standard_error_basis


def test_standard_error_rules():
    data = load_outcomes(table(
        "s,a,r,24,pop,d,nadir_plt,,,mean,56,SD,16,src",       # NSCLC rhTPO nadir 56 +/- 16
        "s,a,r,12,pop,d,peak_plt,,,median,126,,,src",
        "s,a,r,16,pop,d,peak_plt,,,median,150,range,50-250,src",
        "s,a,r,12,pop,d,response_proportion,50,28,count,0,,,src"))
    se = list(data.standard_error)
    assert se[0] == pytest.approx(16 / math.sqrt(24))          # SD/sqrt(n)
    assert se[1] == pytest.approx(0.30 * 126 / math.sqrt(12))  # stated default CV 30%
    # range 50-250: SD ~ 200/4 = 50 (Hozo 2005); median efficiency 1.2533; n = 16
    assert se[2] == pytest.approx(1.2533141 * 50 / 4)
    # 0/12 responders: p clipped to 0.5/12 so the SE stays finite and positive
    assert se[3] == pytest.approx(math.sqrt((0.5 / 12) * (1 - 0.5 / 12) / 12))


@pytest.mark.parametrize("row, column, fragment", [
    ("s,a,r,-3,pop,d,nadir_plt,,,mean,20,,,src", "n", "below 1"),
    ("s,a,r,36,pop,d,response_proportion,,,percent,104,,,src", "value", "within 0-100"),
    ("s,a,r,36,pop,d,respons_proportion,,,percent,50,,,src", "endpoint",
     "did you mean 'response_proportion'"),
    ("s,a,r,36,pop,d,nadir_plt,,,percent,20,,,src", "statistic", "does not fit nadir_plt"),
    ("s,a,r,36,pop,d,nadir_plt,,,mean,twenty,,,src", "value", "'twenty' is not a number"),
    ("s,a,r,12,pop,d,response_proportion,50,28,count,13,,,src", "value", "13 responders"),
    ("s,a,r,,pop,d,response_proportion,50,28,count,3,,,src", "n", "needs the arm size"),
    ("s,a,r,36,pop,d,plt_count,,,mean,80,,,src", "day", "number is required"),
    ("s,a,r,36,pop,d,nadir_plt,,,mean,20,SD,,src", "spread", "no spread"),
    ("s,a,r,36,pop,d,nadir_plt,,,mean,20,IQR,5,src", "spread_type", "unknown spread type"),
    ("s,a,r,36,pop,d,incidence_proportion,,,percent,25,,,src", "threshold",
     "needs the event in threshold"),
    ("s,a,r,10,pop,d,peak_plt,,,count,8,,,src", "threshold", "needs the criterion"),
    ("s,a,r,,pop,d,peak_plt,>=400,,count,8,,,src", "n", "needs the arm size"),
    ("s,a,r,10,pop,d,peak_plt,>=400,,count,11,,,src", "value", "11 responders out of"),
])
def test_bad_rows_give_row_level_errors(row, column, fragment):
    with pytest.raises(OutcomeDataError) as error:
        load_outcomes(table(GOOD, row))
    (line, bad_column, text), = error.value.problems
    assert (line, bad_column) == (3, column)  # header is line 1, GOOD is line 2
    assert fragment in text and "line 3" in str(error.value)


def test_evidence_is_one_of_the_documented_kinds():
    # data/README.md: evidence is verbatim, reported or derived; a user test wrote
    # "secondary" and the loader took it silently (2026-12-07)
    header = HEADER + ",evidence"
    rows = load_outcomes(table(GOOD + ",verbatim", GOOD.replace("94.4", "90") + ",reported",
                               GOOD.replace("94.4", "80") + ",derived",
                               GOOD.replace("94.4", "70") + ",", header=header))
    assert len(rows) == 4
    with pytest.raises(OutcomeDataError) as error:
        load_outcomes(table(GOOD + ",verbatim", GOOD.replace("94.4", "90") + ",secondary",
                            header=header))
    (line, column, text), = error.value.problems
    assert (line, column) == (3, "evidence")
    assert "'secondary'" in text and "verbatim, reported, derived" in text
    with pytest.raises(OutcomeDataError, match="did you mean 'verbatim'"):
        load_outcomes(table(GOOD + ",Verbatim", header=header))


def test_all_bad_rows_are_reported_at_once():
    with pytest.raises(OutcomeDataError) as error:
        load_outcomes(table("s,a,r,-1,pop,d,nadir_plt,,,mean,20,,,src", GOOD,
                            "s,a,r,36,pop,d,nadir_plt,,,mean,-5,,,src"))
    assert [p[0] for p in error.value.problems] == [2, 4]


def test_missing_column_is_named():
    with pytest.raises(OutcomeDataError, match="'statistic': required column is missing"):
        load_outcomes(table(GOOD.replace(",percent", ""),
                            header=HEADER.replace(",statistic", "")))


def test_sd_without_n_loads_but_cannot_be_fitted():
    # the AML rows of the shared data give SDs without n (Chen X 2023 abstract)
    data = load_outcomes(table("s,a,r,,pop,d,time_to_threshold_days,20,,mean,6.5,SD,2.2,src"))
    assert math.isnan(data.standard_error[0])
    with pytest.raises(OutcomeDataError, match="line 2.*add n"):
        require_usable(data)


def test_a_corrupted_file_gives_a_row_level_error(tmp_path):
    path = tmp_path / "outcomes.csv"
    text = bundled_outcomes_path().read_text().splitlines()
    text[5] = text[5].replace(",percent,40.4,", ",percent,40.4x,")  # data line 6
    path.write_text("\n".join(text))
    with pytest.raises(OutcomeDataError, match=r"line 6, column 'value': '40.4x'"):
        load_outcomes(path)


def test_a_percentage_below_one_is_questioned_and_the_bundled_data_are_not():
    # a fitting user test (2026-12-04): "78%" typed as percent 0.78 loaded and weighed
    # the fit down (its objective rose to 3,356.6) with no hint that it looked like a
    # fraction. It still loads (a true rate below 1% is possible) with a warning naming it
    import warnings

    from plateletpd.io.outcomes import OutcomeWarning

    with pytest.warns(OutcomeWarning, match=r"line\(s\) 3 give a percentage below 1 \(0.78\)"):
        load_outcomes(table(GOOD, "s,b,r,40,pop,d,response_proportion,rule,,percent,0.78,,,src"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutcomeWarning)
        load_outcomes(bundled_outcomes_path())


@pytest.mark.parametrize("text, level", [
    ("75", 75.0), ("PLT <75", 75.0), ("PLT >=100", 100.0), ("\u2265100", 100.0),
    ("below 75", 75.0), ("from <=50 to >=100", None), ("not stated in abstract", None),
    ("", None), ("PLT >=50 at the week", None)])
def test_the_one_level_a_threshold_states(text, level):
    # study.endpoints.stated_level: the level a check's days-below row and a fit's
    # response row are read at (their own, not the arm's default); any other text is None
    from plateletpd.study.endpoints import stated_level

    assert stated_level(text) == level
