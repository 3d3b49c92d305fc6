"""Arm-level summary outcomes (published means, medians, proportions, times) for fitting.

One row per published number, in the columns of ``data/cit_summary.csv`` (see
``data/README.md``). :func:`load_outcomes` validates every row and reports *all* bad rows at
once, each with its line number and column, then adds the observation on the fitting scale
(``observed``: proportions as fractions) and its standard error (``standard_error``) with the
rule used (``standard_error_basis``).

Standard errors (stated defaults where the publication gives no spread):

* mean with SD and n: SD / sqrt(n); with SE: as given.
* median with SD and n: 1.2533 SD / sqrt(n) (large-sample efficiency of the median of a
  normal sample, sqrt(pi/2)); with a range "low-high": SD taken as range / 4 (Hozo SP et al.
  BMC Med Res Methodol 2005;5:13).
* proportion with n (responders, ``incidence_proportion`` events, or a ``count`` of patients
  meeting the threshold on a platelet-count endpoint): binomial sqrt(p (1 - p) / n), p kept within [0.5/n, 1 - 0.5/n] so that
  0% and 100% still carry a finite weight.
* no spread: ``default_cv`` (30%) of the value, divided by sqrt(n) when n is known
  (assumption: between-patient CV of about 30% for platelet summaries).
* an SD or range without n gives no standard error: such a row loads (it still describes
  the study) but :func:`require_usable` refuses it when a fit selects it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from plateletpd.errors import PlateletPDError, closest

REQUIRED_COLUMNS = ("study", "arm", "regimen", "n", "population", "day0", "endpoint",
                    "threshold", "day", "statistic", "value", "spread_type", "spread", "source")
OPTIONAL_COLUMNS = ("evidence", "note", "versus", "comparison", "versus_n")
#: a comparison row ("nadir higher with eltrombopag than without, P = .041"): the arm's
#: statistic against the ``versus`` arm's (``versus_n`` patients), in this direction, at the
#: two-sided P in value; ``versus = "baseline"``: against the arm's own count at the start
#: ``difference``: the published size of the difference (the arm minus ``versus``, in the
#: statistic's units: days, x10^9/L, percentage points) in value instead of a P
COMPARISONS = ("higher", "lower", "no_difference", "difference")
#: the highest significance level a no_difference row may state (its value is the level the
#: test was judged at, not the published P)
NO_DIFFERENCE_LEVEL = 0.1
BASELINE = "baseline"
SPREAD_TYPES = ("SD", "SE", "range")
#: how a row's number was taken (data/README.md): copied from the publication's text, from
#: a secondary summary of it, or computed from published numbers (the arithmetic in note)
EVIDENCE = ("verbatim", "reported", "derived")
MEDIAN_EFFICIENCY = math.sqrt(math.pi / 2)  # 1.2533
DEFAULT_CV = 0.30
UNUSABLE = "no standard error"


#: the endpoints an outcome row may name: name -> its declaration (``description``, ``kind``,
#: ``needs_day``, ``needs_threshold``). Filled by the endpoint registry,
#: :mod:`plateletpd.study.endpoints` (a higher layer, where every endpoint is declared once
#: with its definition), which ``import plateletpd`` loads before any of its modules.
ENDPOINTS: dict = {}
# a "count" statistic on a platelet-count endpoint is the number of patients (of n) whose
# value met the threshold, e.g. peak_plt "patients with >=1 PLT >=400": a proportion
STATISTICS = {"count": ("mean", "median", "count"), "time": ("mean", "median"),
              "auc": ("mean", "median"), "percent_change": ("mean", "median"),
              "proportion": ("percent", "count", "proportion")}


class OutcomeDataError(PlateletPDError):
    """Rows of an outcome table that cannot be used; ``problems`` lists (line, column, text)."""

    def __init__(self, source: str, problems: list[tuple[int | None, str, str]]):
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s) in the outcome data:"]
        for line, column, text in problems:
            where = f"line {line}" if line is not None else "header"
            # a problem of the whole file (it cannot be read) has no line or column
            lines.append(f"  {text}" if line is None and column == "-" else
                         f"  {where}, column {column!r}: {text}")
        super().__init__("\n".join(lines))


#: comparison signs as typeset in papers, read as their ASCII forms in threshold texts
TYPOGRAPHY = str.maketrans({"\u2265": ">=", "\u2264": "<=", "\u2267": ">=", "\u2266": "<=",
                            "\uff1e": ">", "\uff1c": "<"})


def load_outcomes(source: str | Path | pd.DataFrame, default_cv: float = DEFAULT_CV
                  ) -> pd.DataFrame:
    """Read and validate an outcome table; add ``observed``, ``standard_error`` and
    ``standard_error_basis``, and ``line`` (line number in the file, header = 1)."""
    name = str(source) if not isinstance(source, pd.DataFrame) else "<table>"
    if isinstance(source, pd.DataFrame):
        table = source.copy()
    else:
        try:
            table = pd.read_csv(source, dtype=str, keep_default_na=False)
        except FileNotFoundError:
            raise OutcomeDataError(name, [(None, "-", "no such file: check the path (a fit "
                                           "configuration's data path is read from the "
                                           "configuration's folder)")]) from None
        except (OSError, ValueError) as error:  # unreadable, empty, not UTF-8 CSV
            raise OutcomeDataError(name, [(None, "-", f"cannot read the file: {error}")]) \
                from None
    table = table.astype(str).apply(lambda column: column.str.strip())
    if "threshold" in table.columns:  # typography: "PLT ≥50" is "PLT >=50"
        table["threshold"] = table["threshold"].str.translate(TYPOGRAPHY)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise OutcomeDataError(name, [(None, c, "required column is missing (columns: "
                                       + ", ".join(REQUIRED_COLUMNS) + ")") for c in missing])
    if table.empty:
        raise OutcomeDataError(name, [(None, "-", "the table has no data rows; add one row per "
                                       "published number under the header")])
    problems: list[tuple[int | None, str, str]] = []
    rows = []
    first_line: dict[tuple, int] = {}
    for index, row in enumerate(table.to_dict("records")):
        line = index + 2  # header is line 1
        key = tuple(row.values())
        if key in first_line:
            problems.append((line, "-", f"exact duplicate of line {first_line[key]}; a "
                             f"published number counts once: delete one of them"))
            continue
        first_line[key] = line
        checked = _check_row(row, line, problems, default_cv)
        if checked is not None:
            rows.append({**row, **checked, "line": line})
    if problems:
        raise OutcomeDataError(name, problems)
    result = pd.DataFrame(rows)
    for column in ("comparison", "versus"):  # "" on every row that compares nothing
        result[column] = result[column].fillna("").astype(str).replace("nan", "") \
            if column in result else ""
    if "versus_n" not in result:
        result["versus_n"] = math.nan
    for column in ("n", "day", "value", "observed", "standard_error", "versus_n"):
        result[column] = pd.to_numeric(result[column])
    _question_fractions(result, name)
    return result


class OutcomeWarning(UserWarning):
    """A data row that loads but looks mistyped."""


def _question_fractions(rows: pd.DataFrame, name: str) -> None:
    """Warn about percentages below 1 on rows of a proportion endpoint ("78%" typed as
    0.78 reads as 0.78%): a fitting user test's row weighed its fit down without a word. A
    true rate below 1% is rare in these studies, so this warns; it does not refuse."""
    import warnings

    if not len(rows):
        return
    suspect = rows[(rows.statistic == "percent") & (rows.value > 0) & (rows.value < 1)
                   & (rows.comparison == "")]  # a comparison's value is its P
    if len(suspect):
        warnings.warn(
            f"{name}: line(s) {', '.join(map(str, suspect.line))} give a percentage below 1 "
            f"({', '.join(f'{v:g}' for v in suspect.value)}): if these are fractions, write "
            f"them as statistic proportion (or multiply by 100)", OutcomeWarning,
            stacklevel=3)


def _number(row, column, line, problems, required=False, minimum=None):
    text = row.get(column, "")
    if text in ("", "nan", "NA", "."):
        if required:
            problems.append((line, column, "a number is required here"))
        return None
    try:
        value = float(text)
    except ValueError:
        problems.append((line, column, f"{text!r} is not a number"))
        return None
    if not math.isfinite(value):
        problems.append((line, column, f"{text!r} is not a finite number"))
        return None
    if minimum is not None and value < minimum:
        problems.append((line, column, f"{value:g} is below {minimum:g}" + (
            " (the number of patients; leave it empty when not reported)" if column == "n"
            else "")))
        return None
    if minimum == 0 and value == 0 and column == "spread":
        problems.append((line, column, "a spread of 0 gives a zero standard error (an "
                         "infinite weight); give the reported value (> 0) or leave spread and "
                         "spread_type empty"))
        return None
    return value


def _check_row(row, line, problems, default_cv):
    before = len(problems)
    evidence = str(row.get("evidence", "") or "").strip()
    if evidence not in ("", "nan") and evidence not in EVIDENCE:
        problems.append((line, "evidence", f"unknown evidence {evidence!r}"
                         f"{closest(evidence, EVIDENCE)}; use {', '.join(EVIDENCE)} (copied "
                         f"from the publication, from a secondary summary of it, or computed "
                         f"from its numbers with the arithmetic in note) or leave it empty"))
    endpoint = ENDPOINTS.get(row["endpoint"])
    if endpoint is None:
        problems.append((line, "endpoint", f"unknown endpoint {row['endpoint']!r}"
                         f"{closest(row['endpoint'], ENDPOINTS)}; known: "
                         f"{', '.join(ENDPOINTS)}"))
        return None
    comparison = str(row.get("comparison", "") or "").strip()
    versus = str(row.get("versus", "") or "").strip()
    if comparison in ("nan",):
        comparison = ""
    if versus in ("nan",):
        versus = ""
    if comparison or versus:
        return _comparison_row(row, comparison, versus, endpoint, line, problems)
    n = _number(row, "n", line, problems, minimum=1)
    if n is not None and not float(n).is_integer():
        problems.append((line, "n", f"{n:g} patients is not a whole number"))
    day = _number(row, "day", line, problems, required=endpoint.needs_day)
    if endpoint.needs_threshold and row["threshold"] in ("", "nan"):
        problems.append((line, "threshold", f"{row['endpoint']} needs the event in threshold, "
                         f"e.g. 'grade 3/4 thrombocytopenia (PLT<50)'"))
    value = _number(row, "value", line, problems, required=True)
    statistic = row["statistic"]
    if statistic not in STATISTICS[endpoint.kind]:
        problems.append((line, "statistic", f"{statistic!r} does not fit {row['endpoint']}; "
                         f"use one of {', '.join(STATISTICS[endpoint.kind])}"))
    spread_type = row["spread_type"] if row["spread_type"] not in ("nan", "") else ""
    if spread_type and spread_type not in SPREAD_TYPES:
        problems.append((line, "spread_type", f"unknown spread type {spread_type!r}; use "
                         f"{', '.join(SPREAD_TYPES)} or leave it empty"))
    if len(problems) > before or value is None:
        return None
    if endpoint.kind in ("count", "time", "auc") and value < 0:
        problems.append((line, "value", f"a {endpoint.kind} cannot be negative ({value:g})"))
        return None
    if endpoint.kind == "proportion" or statistic == "count":
        if statistic == "count" and row["threshold"] in ("", "nan"):
            problems.append((line, "threshold", f"a count of patients for {row['endpoint']} "
                             f"needs the criterion they met in threshold, e.g. '>=400'"))
            return None
        checked = _proportion(value, statistic, n, line, problems)
        if checked and endpoint.kind != "proportion":
            checked["standard_error_basis"] += f" (patients meeting {row['threshold']})"
        return checked
    return _continuous(row, value, statistic, n, spread_type, line, problems, default_cv, day)


def _comparison_row(row, comparison, versus, endpoint, line, problems):
    """A published comparison between two arms of a study, given only as its direction and
    P ("higher with eltrombopag than without, P = .041"): ``comparison`` higher, lower or
    no_difference, ``versus`` the other data arm, ``value`` the two-sided P (write 0.05 for
    "P < 0.05", and for "no difference" the level it was judged at, usually 0.05); or
    ``comparison = difference`` with the published size of the difference in ``value``
    (the arm minus ``versus``: "recovery 5 days shorter" is -5). The
    statistic is what was compared (mean, median, percent or proportion). Read by
    ``plateletpd check`` (study/check.py); a fit cannot use it (no standard error)."""
    before = len(problems)
    if comparison not in COMPARISONS:
        problems.append((line, "comparison", f"{comparison!r}: a comparison row needs "
                         f"comparison = {', '.join(COMPARISONS)}" if comparison else
                         f"a row with versus = {versus!r} needs comparison = "
                         f"{', '.join(COMPARISONS)}"))
    if not versus:
        problems.append((line, "versus", "a comparison row needs versus: the data arm it is "
                         "compared with, e.g. control, or baseline (the arm's own count at "
                         "the start of treatment)"))
    elif versus == row["arm"]:
        problems.append((line, "versus", f"compares arm {versus!r} with itself: name the other "
                         f"arm, or versus = baseline for \"higher than before treatment\""))
    elif versus == BASELINE and (row["endpoint"] != "plt_count" or
                                 row["day"] in ("", "nan")):
        problems.append((line, "versus", "versus = baseline compares the count on a day with "
                         "the same patients' count at the start of treatment: a plt_count "
                         "row with its day"))
    versus_n = _number(row, "versus_n", line, problems, minimum=1)
    if versus_n is not None and versus == BASELINE:
        problems.append((line, "versus_n", "versus = baseline compares the arm with itself: "
                         "leave versus_n empty"))
    value = _number(row, "value", line, problems, required=True)
    if comparison == "difference":
        pass  # a size in the statistic's units, of either sign ("5 days shorter": -5)
    elif value is not None and not 0 < value <= 1:
        problems.append((line, "value", f"a comparison row's value is the two-sided P, within "
                         f"(0, 1], got {value:g} (P < 0.05: write 0.05)"))
    elif value is not None and comparison == "no_difference" and value > NO_DIFFERENCE_LEVEL:
        # a user test (2026-12-07) wrote the published P = 0.878: the check then asked for
        # a difference "not significant at 0.878" and the verdict flipped
        problems.append((line, "value", f"a no_difference row's value is the level the "
                         f"difference was judged at (usually 0.05), not the published P; got "
                         f"{value:g}: write 0.05 (or the study's stated level, at most "
                         f"{NO_DIFFERENCE_LEVEL:g}) and keep the P in note"))
    statistic = row["statistic"]
    allowed = [s for s in STATISTICS[endpoint.kind] if s != "count"]
    if statistic not in allowed:
        problems.append((line, "statistic", f"{statistic!r}: a comparison row names what was "
                         f"compared, one of {', '.join(allowed)}"))
    n = _number(row, "n", line, problems, minimum=1)
    _number(row, "day", line, problems, required=endpoint.needs_day)
    if endpoint.needs_threshold and row["threshold"] in ("", "nan"):
        problems.append((line, "threshold", f"{row['endpoint']} needs the event in threshold"))
    if len(problems) > before:
        return None
    return {"observed": value, "standard_error": math.nan, "comparison": comparison,
            "versus": versus, "versus_n": "" if versus_n is None else versus_n,
            "standard_error_basis": ("a published difference (its size, no standard error)"
                                     if comparison == "difference" else
                                     "a comparison (direction and P)")
            + ": read by plateletpd check, not fitted"}


def _proportion(value, statistic, n, line, problems):
    if statistic == "percent" and not 0 <= value <= 100:
        problems.append((line, "value", f"a percentage must be within 0-100, got {value:g}"))
        return None
    if statistic == "proportion" and not 0 <= value <= 1:
        problems.append((line, "value", f"a proportion must be within 0-1, got {value:g}"))
        return None
    if statistic == "count":
        if n is None:
            problems.append((line, "n", "a count of patients (responders or events) needs the arm size n"))
            return None
        if not 0 <= value <= n:
            problems.append((line, "value", f"{value:g} responders out of n={n:g}"))
            return None
    fraction = {"percent": value / 100, "proportion": value,
                "count": value / n if n else math.nan}[statistic]
    if n:
        clipped = min(max(fraction, 0.5 / n), 1 - 0.5 / n)
        return {"observed": fraction, "standard_error": math.sqrt(clipped * (1 - clipped) / n),
                "standard_error_basis": "binomial"}
    return {"observed": fraction, "standard_error": 0.15,
            "standard_error_basis": "default 0.15 (n not reported)"}


def _continuous(row, value, statistic, n, spread_type, line, problems, default_cv, day):
    spread_text = row["spread"] if row["spread"] not in ("nan", "") else ""
    if spread_type and not spread_text:
        problems.append((line, "spread", f"spread_type {spread_type} given but no spread"))
        return None
    if spread_text and not spread_type:
        problems.append((line, "spread_type", "a spread is given without saying whether it "
                         "is an SD, SE or range"))
        return None
    factor = MEDIAN_EFFICIENCY if statistic == "median" else 1.0
    if spread_type == "SE":
        spread = _number(row, "spread", line, problems, minimum=0)
        return None if spread is None else {"observed": value, "standard_error": spread,
                                            "standard_error_basis": "SE as reported"}
    if spread_type in ("SD", "range"):
        if n is None or n < 1:  # usable for description, not for fitting (see require_usable)
            return {"observed": value, "standard_error": math.nan,
                    "standard_error_basis": f"{UNUSABLE}: {spread_type} without n"}
        if spread_type == "SD":
            sd = _number(row, "spread", line, problems, minimum=0)
            basis = "SD/sqrt(n)"
        else:
            sd = _range_sd(spread_text, line, problems)
            basis = "range/4 (Hozo 2005)/sqrt(n)"
        if sd is None:
            return None
        return {"observed": value, "standard_error": factor * sd / math.sqrt(n),
                "standard_error_basis": basis + (" x1.2533 (median)" if factor > 1 else "")}
    scale = math.sqrt(n) if n else 1.0
    return {"observed": value, "standard_error": max(default_cv * abs(value), 1e-6) / scale,
            "standard_error_basis": f"default CV {default_cv:.0%}" + ("/sqrt(n)" if n else "")}


def _range_sd(text, line, problems):
    parts = text.replace("to", "-").split("-")
    try:
        low, high = (float(p) for p in parts if p.strip())
    except ValueError:
        problems.append((line, "spread", f"a range must look like 'low-high', got {text!r}"))
        return None
    if high <= low:
        problems.append((line, "spread", f"range {text!r} must have its high end above its "
                         f"low end (a zero range gives a zero standard error)"))
        return None
    return (high - low) / 4


def require_usable(rows: pd.DataFrame, source: str = "outcome data") -> None:
    """Raise a row-level error for rows that a fit needs but that have no standard error."""
    bad = rows[rows["standard_error"].isna()]
    if len(bad):
        compared = rows["comparison"] if "comparison" in rows else pd.Series("", rows.index)
        raise OutcomeDataError(source, [
            (int(r.line), "comparison", f"{r.study}/{r.arm} {r.endpoint}: a comparison row "
             f"(direction and P) is read by plateletpd check, not fitted: leave it out of the "
             f"fit's rows (an arm's endpoints or lines)") if compared[r.Index] else
            (int(r.line), "n", f"{r.study}/{r.arm} {r.endpoint}: {r.standard_error_basis}; "
             f"the fit needs a standard error: add n (patients) or give the SE")
            for r in bad.itertuples()])


def bundled_outcomes_path(name: str = "cit_summary.csv") -> Path:
    """An outcome table shipped with plateletpd: the calibration data (data/cit_summary.csv)
    or, by name, another file of data/ (``"out_of_sample.csv"``: held-out trials)."""
    from plateletpd.io.files import bundled_folder

    return bundled_folder("data") / name


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Rows per study and endpoint: a quick look at what a table holds."""
    return table.groupby(["study", "endpoint"]).size().rename("rows").reset_index()
