"""Virtual trials: a spec file (TOML) -> virtual patients per arm -> endpoints a clinician reads.

Each arm enrols its own virtual patients (seeded per arm), or, with ``[trial] design =
"paired"``, every arm simulates the same patients (differences then paired per patient); they
receive the enrolment chemotherapy; a patient is enrolled when the count crosses below the
entry threshold and treated from ``start_delay`` days later (see
:mod:`plateletpd.study.cohort` for the entry and stop rules). Laboratory values are read at visits every ``visit_every_days`` from the start of
treatment. Endpoints per patient (times in days from the start of treatment):

* response by ``by_day``: a visit with PLT >= threshold, or a rise >= ``rise`` over the count
  at the start of treatment (either rule, as configured; an omitted rule is absent);
* time to PLT >= 75 and >= 100 (first visit at or above), censored at the last visit;
* day 0 (the first treatment morning) is the baseline visit: responses and times count
  visits from day 1, and a patient already at or above the threshold (a level) at day 0 is
  not a responder (has no time to it): docs/trial_files.md, "Day 0 and the baseline";
* nadir over the cycle; days below 20 and 50 (hourly grid); PLT at visits on days 7 and 14;
  platelet AUC over the 21 days from the start; transfusions; whether a titration acted.

Arms may titrate (a count below a level on a treatment day changes a drug's dose from then
on) and rescue (a visit count below a level triggers a platelet transfusion, 2 h later); see
:mod:`plateletpd.study.cohort` for how the rules are solved.

Arm summaries: response with exact (Clopper-Pearson) 95% intervals, Kaplan-Meier medians
with 95% intervals, means with normal 95% intervals; differences from the reference arm.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from plateletpd.study.cohort import (ACTIONS, PLATELETS, WHEN, ArmDesign, ArmResult, DoseRule,
                                     Rescue, Titration, own_schedule, per_day,
                                     resolve_treatment,
                                     simulate_treatment_arm, values_at)
from plateletpd.study.endpoints import RECOVERY_LEVELS, Courses, trial_endpoints
from plateletpd.errors import PlateletPDError, closest
from plateletpd.io.display import html_table, progress_due, progress_end, short_repr
from plateletpd.io.display import progress as show_progress
from plateletpd.io.files import atomic_folder, atomic_write, write_json, write_text
from plateletpd.io.schema import Document, Field, Ref, Table, number_table
from plateletpd.io.provenance import provenance
from plateletpd.limits import check_subjects
from plateletpd.model.definition import Model, load_model
from plateletpd.population.variability import (PopulationGroup, Variability, cohort_matrix,
                                                model_draws_text,
                                               model_transforms)
from plateletpd.simulation.simulate import _valid_rows
from plateletpd.study.statistics import Z95, binomial_interval, kaplan_meier
from plateletpd.study.validation_results import validation_report_lines
from plateletpd.study.cycles import (CYCLE_LEVELS, HISTORY_RULES, ChemotherapyCourse,
                                     HistoryRule, course_columns, course_endpoints, describe,
                                     simulate_course_arm)


class TrialSpecError(PlateletPDError):
    """A trial file that cannot be used; the message names the file and the line."""


class NobodyEnrolledError(TrialSpecError):
    """An arm that enrolled none of its screened virtual patients (the message says why and
    what to change). Replicate trials with parameters drawn from a fit leave such a
    replicate out (:func:`plateletpd.study.uncertainty.replicate_trials`)."""


@dataclass(frozen=True, repr=False)
class TrialSpec:
    """A validated trial: model, parameters, population, enrolment, response rule, arms.

    Build one from a trial file (:func:`load_trial_spec`) or in code
    (:meth:`TrialSpec.create`, keyword arguments named as the file's tables and keys); both
    are checked by the same schema and give the same object.
    """

    name: str
    model: Model
    parameters_from: str
    seed: int
    subjects_per_arm: int
    follow_up_days: float
    visit_every_days: float
    variability: Variability
    covariates: dict
    arms: tuple[ArmDesign, ...]
    response: dict
    reference_arm: str
    path: str
    description: str = ""
    extra: dict = field(default_factory=dict)

    def patients(self, arm: int | str = 0, size: int | None = None) -> np.ndarray:
        """The parameter vectors (one row per patient: the model's parameters, then its
        covariates) of an arm's virtual patients, drawn as :func:`run_trial` draws them,
        before screening; ``arm``: its index or name; ``size``: the first patients only."""
        names = [design.name for design in self.arms]
        if isinstance(arm, str):
            if arm not in names:
                raise TrialSpecError(f"no arm {arm!r}{closest(arm, names)}; arms: "
                                     f"{', '.join(names)}")
            arm = names.index(arm)
        if not isinstance(arm, (int, np.integer)) or not 0 <= arm < len(names):
            raise TrialSpecError(f"arm must be an arm's name or an index from 0 to "
                                 f"{len(names) - 1}, got {arm!r}")
        return _cohort(self, int(arm), size)

    @classmethod
    def create(cls, *, arms: list[dict], seed: int, name: str = "trial", model: str =
               "cit_marrow_reserve", population: dict | None = None,
               enrolment: dict | None = None, response: dict | None = None,
               chemotherapy: dict | None = None, eligibility: list[dict] | None = None,
               composite: list[dict] | None = None, subgroups: dict | None = None,
               **trial) -> "TrialSpec":
        """A trial built in code, mirroring the trial file (docs/trial_files.md): ``arms``
        are the ``[[arms]]`` tables as dicts; ``population``, ``enrolment`` and ``response``
        the tables of those names, as are ``chemotherapy`` (a course in cycles),
        ``eligibility`` and ``composite`` (lists of tables) and ``subgroups``; other
        keywords are ``[trial]``
        keys (``fit``,
        ``subjects_per_arm``, ``follow_up_days``, ``visit_every_days``, ``reference_arm``,
        ``replicates``, ``description``). Checked like a file: an unknown or bad keyword is
        a :class:`TrialSpecError` naming it.

        >>> TrialSpec.create(seed=1, arms=[{"name": "rhTPO", "treatment": ["rhTPO 15000 U"]}],
        ...                  response={"threshold": 100, "by_day": 14})  # doctest: +SKIP
        """
        tables = {"trial": {"name": name, "model": model, "seed": seed, **trial},
                  "population": population, "enrolment": enrolment, "response": response,
                  "chemotherapy": chemotherapy, "eligibility": eligibility,
                  "composite": composite, "subgroups": subgroups, "arms": arms}
        data = {key: table for key, table in tables.items() if table is not None}
        return _trial_spec(Document("trial built in code", "", data, TrialSpecError), None,
                           None, name)

    def __repr__(self) -> str:
        return short_repr("TrialSpec", self._summary_items())

    def _summary_items(self) -> list[tuple[str, object]]:
        return [("name", self.name), ("model", self.model.name),
                ("parameters", self.parameters_from), ("seed", self.seed),
                ("subjects_per_arm", self.subjects_per_arm),
                ("follow_up_days", f"{self.follow_up_days:g}"),
                ("varied", ", ".join(self.variability.names) or "none"),
                ("response", response_text(self)),
                ("arms", ", ".join(arm.name for arm in self.arms))]

    def _repr_html_(self) -> str:
        return html_table(f"Trial {self.name}", self._summary_items(),
                          [(a.name, " + ".join(a.treatment) or "none", a.max_days,
                            "yes" if a.rescue else "no") for a in self.arms],
                          ("arm", "treatment", "max days", "rescue"))


#: The trial file's schema (docs/trial_files.md): every table, key, type, range and default.
_FOLLOW_UP = Ref("trial", "follow_up_days")
_WITHIN = ("the response is judged within the follow-up: lower it or raise [trial] "
           "follow_up_days ({high:g})")
_AT_OR_AFTER = dict(low=0.0, low_included=True, whole=True)
#: an [[eligibility]] rule on the simulated history (a trial's, or one arm's own)
_ELIGIBILITY = Table({
        "rule": Field("text", required=True, choices=HISTORY_RULES),
        "below": Field(unit="10^9/L"), "days": Field(unit="days"),
        "day": Field(low_included=True, unit="cycle day"),
        "cycle": Field(whole=True, what="a cycle number from 1"),
        "every_days": Field(unit="days"),
        "at_least": Field(low_included=True, unit="10^9/L"),
        "pct": Field(high=100.0, unit="%", what="a percentage fall (0 to below 100)"),
        "group": Field("text", default="", what="a group name: the rules of one group "
                       "must all hold, and one group is enough (rules without a group hold "
                       "for every group)")},
        many=True, single_ok=True,
        what='[[eligibility]] tables such as { rule = "nadir_below", below = 75, cycle = 1 }')

TRIAL_SCHEMA = Table({
    "trial": Table({
        "name": Field("text"), "description": Field("text", default=""),
        "model": Field("text", default="cit_marrow_reserve"),
        "fit": Field("text", default="default"),
        "seed": Field(what="a non-negative integer", **_AT_OR_AFTER),
        "subjects_per_arm": Field(whole=True, default=200, what="a positive integer"),
        "follow_up_days": Field(default=42.0, unit="days", fix="the days simulated after "
                                "chemotherapy, e.g. follow_up_days = 42"),
        "visit_every_days": Field(default=1.0, high=28.0, unit="days"),
        "reference_arm": Field("text"),
        "replicates": Field(whole=True, default=1),
        # "paired": every arm simulates the same virtual patients (_cohort, _paired_differences)
        "design": Field("text", default="parallel", choices=("parallel", "paired")),
        # how the study allocated its patients to the arms (the virtual arms are always drawn
        # from one population): "non-randomised" says so beside the differences
        "allocation": Field("text", default="not stated",
                            choices=("randomised", "non-randomised", "not stated")),
        # parameter uncertainty and predictive checks (study/uncertainty.py, study/check.py)
        "uncertainty": Field("text", default="none", choices=("none", "fit")),
        # visits observe counts with the model's [observation.platelets] error (_observer)
        "measurement_error": Field("boolean", default=False),
        "data_study": Field("text")}),
    "population": Table({"typical": number_table(low=None), "cv": number_table(),
                         "correlations": number_table(low=-1.0, high=1.0),
                         "transforms": Table(names=Field("text")),
                         "study_parameters": Table(names=Field("text")),
                         "covariates": number_table(low=None),
                         # a mixture: shares of the drawn patients with their own typical
                         # values (population/variability.py, PopulationGroup)
                         "mixture": Table({
                             "name": Field("text", required=True, nonempty=True),
                             "share": Field(required=True, high=1.0,
                                            unit="share of the drawn patients",
                                            fix="a share above 0 and at most 1, e.g. "
                                                "share = 0.2 for a fifth of the screened"),
                             "typical": Table(names=Field(low=None),
                                              what="a table such as { spleen_volume_ratio "
                                                   "= 5 }"),
                             "cv": number_table(),
                             "source": Field("text", default="")},
                             many=True, single_ok=True),
                         # "several": the study pooled regimens (or cancers), so each
                         # patient's study-level quantities also vary as studies' do
                         "regimens": Field("text", default="one",
                                           choices=("one", "several")),
                         # the regimen's depth from its published incidence of a low count
                         # (study/anchoring.py)
                         "anchor": Table({
                             "nadir_below": Field(required=True, unit="10^9/L"),
                             "percent": Field(required=True, high=100.0, unit="%",
                                              fix="a share of patients strictly between 0 "
                                                  "and 100, e.g. percent = 25"),
                             "source": Field("text", required=True, nonempty=True,
                                             fix='say where the incidence comes from, e.g. '
                                                 'source = "carboplatin label: 25% < 50"'),
                             "parameter": Field("text", default="chemotherapy_sensitivity"),
                             "within_days": Field(default=False, may_be_false=True,
                                                  unit="days"),
                             "subjects": Field(whole=True, default=500, high=100_000,
                                               what="a positive whole number"),
                             # the incidence over the course's first N cycles (a label's
                             # incidence over a whole course), with its delay rules
                             "cycles": Field(whole=True, default=1, high=100,
                                             what="a whole number of cycles from 1 to 100")},
                             what='a table such as { nadir_below = 50, percent = 25, source '
                                  '= "..." }')}),
    "enrolment": Table({
        "chemotherapy": Field("text", default="chemotherapy 1 dose d1"),
        "entry_below": Field(default=75.0, may_be_false=True, unit="10^9/L"),
        "entry_day": Field(default=False, high=_FOLLOW_UP, low_included=True,
                           may_be_false=True, unit="cycle day"),
        "entry_between": Field("list", item=Field(low=0.0, low_included=True,
                                                  unit="10^9/L"),
                               what="two counts, the lower first: the count at entry lies "
                                    "between them, e.g. [25, 50] for \"PLT 25-50 at the "
                                    "start\""),
        "screen_every_days": Field(default=False, high=_FOLLOW_UP, may_be_false=True,
                                   unit="days"),
        "screen_from_day": Field(default=False, high=_FOLLOW_UP, low_included=True,
                                 may_be_false=True, unit="days"),
        "start_delay": Field(default=1.0, high=_FOLLOW_UP, low_included=True, unit="days")}),
    # a chemotherapy course in cycles (study/cycles.py); replaces [enrolment] chemotherapy,
    # entry_below and entry_day: patients are enrolled by the [[eligibility]] rules
    "chemotherapy": Table({
        # a number or text, or a list of one per cycle: checked by ChemotherapyCourse
        "regimen": Field("value", default="chemotherapy 1 dose",
                         what='one cycle\'s doses, days from the cycle\'s first day, e.g. '
                              '"chemotherapy 1 dose", or a list of one per cycle'),
        "cycle_days": Field("value", default=21.0, unit="days",
                            what="a cycle's length in days, e.g. 21, or a list of one per "
                                 "cycle, e.g. [14, 14, 21, 21]"),
        "cycles": Field(whole=True, default=4, high=100, what="a whole number of cycles"),
        "delay_below": Field(default=False, may_be_false=True, unit="10^9/L"),
        "delay_below_after_entry": Field(default=False, may_be_false=True, unit="10^9/L",
                                         what="the level cycles are held below from each "
                                              "patient's enrolment, e.g. 100, or false"),
        "recheck_every_days": Field(default=7.0, unit="days"),
        "give_up_after_days": Field(default=28.0, unit="days"),
        "reduce_after_delay_pct": Field(default=0.0, low_included=True, high=99.0,
                                        unit="%"),
        "late_from_days": Field(default=False, may_be_false=True, unit="days",
                                what="a number of days: a delay of at least this many "
                                     "makes a cycle late (e.g. 4 for an endpoint of \"no "
                                     "delay >= 4 days\")"),
        "follow_up_days": Field(default=21.0, unit="days"),
        "judged_on_day": Field(default=1.0, unit="cycle day",
                               what="the cycle day whose count decides whether the cycle "
                                    "is given, e.g. 6 for chemotherapy on day 6"),
        "between_cycle_cv": Field(default=0.0, low_included=True, high=2.0,
                                  what="a coefficient of variation (0.2 = 20%)"),
        "points_per_day": Field(whole=True, default=6, high=96,
                                what="output points per day (6: every 4 hours)")}),
    "eligibility": _ELIGIBILITY,
    # subgroups of the enrolled by a covariate's value (ITP phase from its duration)
    "subgroups": Table({
        "covariate": Field("text", required=True, nonempty=True),
        "edges": Field("list", item=Field(low=None), required=True,
                       what="increasing cut points, e.g. [3, 12]"),
        "labels": Field("list", item=Field("text"), required=True,
                        what='one label more than edges, e.g. ["newly diagnosed", '
                             '"persistent", "chronic"]')}),
    # composite responders from per-patient flags (docs/trial_files.md, Composite endpoints)
    "composite": Table({
        "name": Field("text", required=True, nonempty=True),
        "all": Field("list", item=Field("text"), default=[],
                     what='a list of flags that must all hold, e.g. ["responder"]'),
        "none": Field("list", item=Field("text"), default=[],
                      what='a list of flags none of which may hold, e.g. ["transfused"]'),
        # a conditional share: judged only among the patients with every one of these flags
        # ("93% of those who resumed chemotherapy"); the others are left out (empty)
        "among": Field("list", item=Field("text"), default=[],
                       what='a list of flags defining the patients the composite is '
                            'judged among, e.g. ["chemotherapy_resumed"]'),
        # ... and without any of these ("among the week-4 non-responders")
        "among_none": Field("list", item=Field("text"), default=[],
                            what='a list of flags the patients it is judged among have none '
                                 'of, e.g. ["plt_at_least_50_day_28"] for "among those '
                                 'below 50 at week 4"'),
        # levels of per-patient counts and days (patients.csv columns): "transfusion-free
        # with a nadir above 20" is none = ["cycle2_transfused"], at_least = {
        # cycle2_nadir = 20 }; a missing value (a cycle not given) meets neither
        "at_least": number_table(low=None),
        "below": number_table(low=None),
        "description": Field("text", default=""),
        # the threshold text of the data rows (response_proportion) this composite answers
        "data_threshold": Field("text", default="")}, many=True, single_ok=True),
    "response": Table({
        # false: the study defines no response (a prevention study's arms judged by their
        # nadirs, transfusions and incidences): no rule is given, none is printed
        "defined": Field("boolean", default=True),
        # no defaults: an omitted rule is absent (docs/trial_files.md); at least one needed
        "threshold": Field(may_be_false=True, unit="10^9/L"),
        "rise": Field(may_be_false=True, unit="10^9/L"),
        # a relative rise: the count at least rise_fold times the day-0 count (IWG ITP
        # "at least doubling of the baseline count": rise_fold = 2)
        "rise_fold": Field(may_be_false=True, low=1.0, unit="times the day-0 count",
                           fix="a factor above 1, e.g. rise_fold = 2 for a doubling"),
        # how threshold, rise and rise_fold combine at a visit: "any" qualifies (PLT >= 100
        # or a rise >= 50), "all" must hold together (PLT >= 30 and a doubling)
        "combine": Field("text", default="any", choices=("any", "all")),
        # day 0 of the response and visit endpoints: the first treatment morning (default),
        # or enrolment ("entry"), so that arms or sweep cells starting at different delays
        # are judged over the same days from enrolment with the same baseline count
        "day0": Field("text", default="first_dose", choices=("first_dose", "entry")),
        "by_day": Field(default=14.0, high=_FOLLOW_UP, fix=_WITHIN, unit="days"),
        "later_day": Field(default=False, high=_FOLLOW_UP, may_be_false=True, fix=_WITHIN,
                           unit="days"),
        "later_at_least": Field(default=False, may_be_false=True, unit="10^9/L"),
        # counts at chosen visits (ITP: "PLT >= 30 at week 6, 12, 16, 24"): one flag per
        # level and day, plt_at_least_{level}_day_{day}
        # and the count itself at each such day (plt_day_{day}, beyond the registry's 7, 14
        # and 21), whose mean the summary reports and a check's plt_count row reads
        "at_visits": Field("list", item=Field(unit="days"), default=[],
                           what="a list of visit days from day 0, e.g. [42, 84]"),
        "at_visit_levels": Field("list", item=Field(unit="10^9/L"), default=[],
                                 what="a list of counts, e.g. [30, 100] (default: the "
                                      "threshold)"),
        # the response rate by more days than by_day ("53% by day 5, 83% by day 11"): one
        # flag per day, responder_by_day_{day}, and its percentage in the summary
        "also_by_days": Field("list", item=Field(unit="days"), default=[],
                              what="a list of days from day 0, e.g. [7, 21]"),
        # more count levels judged as the response's window judges its threshold (tiered
        # responses: "response PLT >= 30, complete response PLT >= 100 within 8 weeks"):
        # one flag per level, responder_at_{level}, and its percentage in the summary
        "also_thresholds": Field("list", item=Field(unit="10^9/L"), default=[],
                                 what="a list of counts, e.g. [100]"),
        # a sustained (durable) response: the response rule met at at least this share of
        # the visits of a window ("responded at >= 75% of assessments", Mei 2021; "PLT >= 50
        # in 6 of the last 8 weekly visits", romiplostim's durable response): one flag,
        # sustained_responder, and its percentage in the summary
        "sustained_share": Field(default=False, may_be_false=True, low=0.0, high=1.0,
                                 unit="share of visits",
                                 fix="a share in (0, 1], e.g. 0.75 for 75% of the visits"),
        "sustained_from_day": Field(default=False, may_be_false=True, high=_FOLLOW_UP,
                                    fix=_WITHIN, unit="days"),
        "sustained_to_day": Field(default=False, may_be_false=True, high=_FOLLOW_UP,
                                  fix=_WITHIN, unit="days"),
        # durations of response (Mei 2021 Table 2: "maximum continuous" and "total duration
        # of response"): per patient, from the visits up to by_day
        "durations": Field("boolean", default=False),
        # loss of response / relapse ("first relapse after the start of tapering"): among
        # patients at or above loss_below at the visit of loss_from_day, the first later
        # visit below it
        "loss_below": Field(default=False, may_be_false=True, unit="10^9/L"),
        "loss_from_day": Field(default=False, may_be_false=True, high=_FOLLOW_UP,
                               fix=_WITHIN, unit="days")}),
    "arms": Table({
        "name": Field("text", required=True, nonempty=True,
                      what="text in quotes, a unique name for the arm"),
        # this arm's patients' own typical values (a non-randomised study whose groups
        # differ): over [population] typical, the fit's and a drawn study effect's value
        "typical": number_table(low=None),
        "data_arm": Field("names", what='a data arm in quotes, or a list of them when the '
                          'arm\'s patients stand for several, e.g. ["observation", '
                          '"all enrolled"]'),
        # a self-controlled study's "control cycle (previous cycle)": the data arm's rows
        # describe cycle N of the course (its nadir, days below a level, AUC day 0-21)
        "data_cycle": Field(whole=True, what="a cycle number, e.g. 1"),
        # one arm standing for several data arms of a self-controlled study, each read from
        # its own cycle: { "treatment period" = 1, "prevention period" = 2 }
        "data_cycles": number_table(low=1),
        "data_level": Field(unit="10^9/L",
                            what="20, 50, 75 or 100: the count level of the data arm's "
                                 "duration rows whose threshold names none"),
        "treatment": Field("list", item=Field("text"), default=[],
                           what='a list of doses, e.g. ["rhTPO 15000 U"]'),
        # an arm enrolled at its own level or by its own rules ("rhTPO started at PLT 25-50",
        # "at <= 25": groups defined by the count at the start), replacing the trial's
        "entry_below": Field(unit="10^9/L", what="the count below which this arm's patients "
                             "enrol (replaces [enrolment] entry_below), e.g. 50"),
        "entry_between": Field("list", item=Field(low=0.0, low_included=True,
                                                  unit="10^9/L"),
                               what="two counts, the lower first: this arm enrols the "
                                    "patients whose count at entry lies between them "
                                    "(replaces [enrolment] entry_between), e.g. [25, 50]"),
        # an arm started at its own delay ("rhTPO from entry" against "rhTPO 4 days
        # later": a sweep user test, 2026-12-07, wanted a trial of start delays with
        # --uncertainty fit), replacing [enrolment] start_delay
        "start_delay": Field(high=_FOLLOW_UP, low_included=True, unit="days",
                             what="days from enrolment to this arm's first treatment morning "
                                  "(replaces [enrolment] start_delay), e.g. 4"),
        # the arm differences.csv compares this one with, when not the trial's reference
        # (one control per population: "rhTPO at <= 25" against "untreated at <= 25")
        "versus": Field("text", nonempty=True, what="the name of another arm in quotes, "
                        "e.g. \"untreated at <= 25\""),
        "eligibility": _ELIGIBILITY,
        "chemotherapy": Field("text", nonempty=True, what='the arm\'s own chemotherapy, '
                              'e.g. "chemotherapy 0.8 dose" (a course\'s regimen, or the '
                              '[enrolment] chemotherapy)'),
        "support": Field("list", item=Field("text"), default=[],
                         what='doses given with chemotherapy cycles, days from each cycle\'s '
                              'first day, e.g. ["hetrombopag 7.5 mg qd d2-11"]'),
        "support_cycles": Field("list", item=Field(whole=True, what="a cycle number"),
                                default=[], what="the cycles that get the support doses, "
                                "e.g. [2, 3, 4]"),
        "support_stop_at": Field(default=False, may_be_false=True, unit="10^9/L",
                                 what="the count at which a cycle's support doses stop, "
                                      "e.g. 300, or false"),
        "support_stop_after_fall": Field("boolean", default=False),
        "support_min_days": Field(whole=True, default=0, low_included=True,
                                  what="a whole number of support days >= 0"),
        # "rhTPO when PLT < 75 after chemotherapy, until >= 100, at most 14 days": support
        # in each listed cycle from the first support morning below the level
        "support_start_below": Field(default=False, may_be_false=True, unit="10^9/L",
                                     what="the count below which a cycle's support doses "
                                          "start, e.g. 75, or false"),
        "support_max_days": Field(whole=True, default=0, low_included=True,
                                  what="a whole number of support days from the start, >= 0 "
                                       "(0: no cap)"),
        "stop_at": Field(default=100.0, may_be_false=True, unit="10^9/L"),
        "stop_rise": Field(default=False, may_be_false=True, unit="10^9/L"),
        # stop_at only at the first morning at or above it after one below it ("until the
        # count has recovered to 80" for a treatment started on a fixed day)
        "stop_after_fall": Field("boolean", default=False),
        # a course: no treatment dose from the next chemotherapy cycle given ("hetrombopag
        # until chemotherapy resumes", "through cycle 1")
        "stop_at_next_cycle": Field("boolean", default=False),
        "max_days": Field(default=14, high=365, **_AT_OR_AFTER),
        # a minimum course ("5-10 days"): the stop rules act from this treatment day on
        "min_days": Field(default=0, high=365, **_AT_OR_AFTER),
        "titration": Table({"day": Field(required=True, **_AT_OR_AFTER),
                            "below": Field(required=True, unit="10^9/L"),
                            "dose": Field("text", required=True, fix="a titration takes "
                                          "day, below and dose, e.g. { day = 7, below = 50, "
                                          "dose = \"hetrombopag 15 mg\" }")},
                           many=True, single_ok=True,
                           what='a list such as [{ day = 7, below = 50, dose = '
                                '"hetrombopag 15 mg" }]'),
        "rescue": Table({"below": Field(required=True, unit="10^9/L"), "dose": Field("text"),
                         "max_per_patient": Field(**_AT_OR_AFTER),
                         # the two-trigger protocol: "below 10, or below 20 with fever or
                         # bleeding" (a share of patients at risk, drawn from the seed)
                         "at_risk_below": Field(unit="10^9/L"),
                         "at_risk_share": Field(high=1.0, what="a share of patients in "
                                                "(0, 1], e.g. 0.25")},
                        what="a table such as { below = 10 } or { below = 10, at_risk_below "
                             "= 20, at_risk_share = 0.25 }"),
        "rules": Table({
            "when": Field("text", required=True, choices=WHEN),
            "level": Field(required=True, unit="10^9/L"),
            "action": Field("text", required=True, choices=ACTIONS),
            "drug": Field("text", default="", what="a drug of the arm's treatment, e.g. "
                          "\"hetrombopag\""),
            "step": Field("text", default="", what='an amount in quotes, e.g. "2.5 mg"'),
            "min": Field("text", default="", what='an amount in quotes, e.g. "2.5 mg"'),
            "max": Field("text", default="", what='an amount in quotes, e.g. "7.5 mg"'),
            # the first visit day the rule is judged on (0: the baseline visit too)
            "from_day": Field(default=0.0, low_included=True, unit="days",
                              what="a number of days from day 0, e.g. 14"),
            # the last visit day it is judged on (absent: to the end): a titration that
            # stops before a taper ("titrated until week 24, then tapered")
            "to_day": Field(low_included=True, unit="days",
                            what="a number of days from day 0, e.g. 168")},
            many=True, single_ok=True,
            what='a list such as [{ when = "above", level = 150, action = "hold" }] or '
                 '[[arms.rules]] tables')}, many=True)})


def load_trial_spec(path: str | Path, subjects: int | None = None,
                    seed: int | None = None, response: Mapping | None = None,
                    fit: str | None = None) -> TrialSpec:
    """Read and validate a trial file against :data:`TRIAL_SCHEMA` (``path``, or a bundled
    trial's name such as ``"yuan2025"``); errors name the file, the line and the field, and
    say what was expected, what was given and how to fix it.

    ``response``: keys that replace those of the file's ``[response]`` before it is checked
    (``plateletpd check --response``, a validation check's ``response``): the same trial
    judged by another rule, e.g. the IWG ITP response ``{"threshold": 30, "rise_fold": 2,
    "combine": "all"}`` beside a file's PLT >= 50 (a trial judges one rule; false turns a
    rule off).

    ``fit``: replaces the file's ``[trial] fit`` (``plateletpd trial --fit``): ``"default"``,
    ``"none"``, a bundled fit's name or a fit folder (a relative folder is read from the
    working directory, not the trial file's): the same trial run on another fit, e.g. a fit
    to in-house data, or a fit made under another assumption (models/cit_marrow_reserve.md,
    the NSCLC study's unstated threshold)."""
    path = Path(path)
    if not path.exists() and path.suffix != ".toml" and len(path.parts) == 1:
        path = bundled_trial(str(path))  # a bundled trial's name, as the command line takes
    document = Document.read(path, TrialSpecError, "trial file")
    if fit is not None:
        document.data["trial"] = {**(document.data.get("trial") or {}),
                                  "fit": fit_override(fit)}
    if response:
        document.data["response"] = {**(document.data.get("response") or {}),
                                     **dict(response)}
    return _trial_spec(document, subjects, seed, path.stem, fit_given=fit)


def _model_reference(model: str, trial_path: str) -> str:
    """A trial file's ``model``: a bundled name as given; a relative path to a model file
    (a name ending in .toml or holding a folder) is read from the trial file's folder, as a
    fit configuration's paths are, so a trial runs the same model from any directory."""
    path = Path(model)
    if path.is_absolute() or not (path.suffix == ".toml" or len(path.parts) > 1):
        return model
    folder = Path(trial_path).parent
    return str(folder / path) if Path(trial_path).is_file() else model


def _fit_reference(fit: str, trial_path: str) -> str:
    """A trial file's ``fit``: ``"default"``, ``"none"`` or a bundled fit's name as given; a
    fit folder is read from the trial file's folder when it is there (as ``model`` is; a
    user test, 2026-12-04: ``fit = "out3"`` beside the trial file was looked for in the
    working directory), else as given (from the working directory, or absolute)."""
    if fit in ("default", "none") or Path(fit).is_absolute() or not Path(trial_path).is_file():
        return fit
    beside = Path(trial_path).parent / fit
    return str(beside) if (beside / "params.json").is_file() else fit


def fit_override(fit: str) -> str:
    """A fit given outside a trial file (``--fit``, a validation run's ``fit``): a folder
    holding a ``params.json`` in the working directory becomes its absolute path, so the
    trial file's folder is not searched for it; anything else as given (``"default"``,
    ``"none"``, a bundled fit's name; an unknown one is refused with the choices by
    :func:`plateletpd.model.library.fitted_values`)."""
    if not isinstance(fit, str) or not fit.strip():
        raise TrialSpecError(f"a fit must be \"default\", \"none\", a bundled fit's name or "
                             f"a fit folder (one holding params.json), got {fit!r}")
    folder = Path(fit)
    resolved = str(folder.resolve()) if (folder / "params.json").is_file() else fit
    if resolved not in ("default", "none"):
        from plateletpd.model.library import load_fit_record

        try:
            load_fit_record(resolved)
        except PlateletPDError as error:
            raise TrialSpecError(f"--fit {fit}: {error}") from None
    return resolved


def _trial_spec(document: Document, subjects: int | None, seed: int | None,
                default_name: str, fit_given: str | None = None) -> TrialSpec:
    """A trial from a document (a file, or keyword arguments: :meth:`TrialSpec.create`).
    ``fit_given``: the fit that replaced the file's ``[trial] fit`` (``--fit``), named as
    given in an error about it instead of the file's line."""
    from plateletpd.model.library import fit_between_cycle_cv, fit_population, fitted_values

    checked = document.check(TRIAL_SCHEMA)
    trial, population, fail = checked["trial"], checked["population"], document.fail
    if fit_given is None:
        trial = {**trial, "fit": _fit_reference(trial["fit"], document.path)}
    else:  # already resolved from the working directory (fit_override)
        def fail(where, message, *args, _fail=document.fail, **kwargs):  # noqa: E306
            if tuple(where) == ("trial", "fit"):
                return TrialSpecError(f"{document.path}: the fit given in place of its "
                                      f"[trial] fit (--fit {fit_given}): {message}")
            return _fail(where, message, *args, **kwargs)
    reference = _model_reference(trial["model"], document.path)
    try:
        model = load_model(reference)
    except PlateletPDError as error:
        hint = (f" (a relative path is read from the trial file's folder: give it from "
                f"there, or an absolute path)" if reference != trial["model"] else "")
        raise fail(("trial", "model"), f"{error}{hint}") from None
    values, origin, cv_origin, fit_used = {}, "the model file's values", "", None
    cycle_origin = ""
    given = document.data.get("population") or {}  # the tables the file itself states
    if trial["fit"] != "none":
        try:
            name, values = fitted_values(model.name, trial["fit"])
        except PlateletPDError as error:
            raise fail(("trial", "fit"), str(error)) from None
        fit_used = name
        if name is not None:
            # a trial file that states no [population] cv gets the between-patient
            # variability the fit was made with (its configuration's [population]), so that
            # the fit's typical values come with the spread they were estimated under; a
            # file's own cv (even an empty one) wins
            try:
                inherited = fit_population(name) if "cv" not in given else {}
            except PlateletPDError as error:
                raise fail(("trial", "fit"), str(error)) from None
            origin = f"fit {name}"
            # a course whose file states no between_cycle_cv takes the one the fit estimated
            # ([between_cycle]); a file's own value wins
            stated = document.data.get("chemotherapy") or {}
            if "chemotherapy" in document.data and "between_cycle_cv" not in stated:
                try:
                    between_cycle = fit_between_cycle_cv(name)
                except PlateletPDError as error:
                    raise fail(("trial", "fit"), str(error)) from None
                if between_cycle is not None:
                    checked["chemotherapy"]["between_cycle_cv"] = between_cycle
                    cycle_origin = (f"; between-cycle CV of exposure {between_cycle:g} "
                                    f"from the fit")
            if inherited.get("cv"):
                population = {**population, **{key: value for key, value in inherited.items()
                                               if key not in given}}
                cv_origin = "; between-patient CVs from the fit's [population]"
    typical = population["typical"]
    try:
        model.check_parameter_names(typical)
        model = model.with_parameters({**values, **typical})
        variability = Variability.from_cv(
            population["cv"], {tuple(k.split("~")): v for k, v in
                               population["correlations"].items()},
            model_transforms(model, population["transforms"]))
        covariates = dict(population["covariates"])
        model.check_covariate_names(covariates)
    except PlateletPDError as error:
        raise fail(("population",), str(error)) from None
    groups = _mixture(population.get("mixture") or [], model, fail)
    if typical:
        origin += " with " + ", ".join(f"{k} = {v:g}" for k, v in typical.items())
    if groups:
        origin += "; a mixture: " + "; ".join(
            f"{g.name} {100 * g.share:g}% of the drawn patients with "
            + ", ".join([*(f"{k} = {v:g}" for k, v in g.typical.items()),
                         *(f"{k} CV {v:g}" for k, v in g.cv.items())]) for g in groups) \
            + f"; the other {100 * (1 - sum(g.share for g in groups)):.4g}% as stated"
    origin += cv_origin + cycle_origin
    if not variability.names and "cv" not in given:
        warnings.warn(
            f"{document.path}: no between-patient variability: [population] cv is absent and "
            f"{'the fit gives none' if values else 'no fit is used'}, so every virtual patient "
            + ("has the typical parameters (only the model's own per-patient draws, "
               f"{', '.join(model.per_patient_parameters[:2])}, ..., differ)"
               if model.per_patient_parameters else
               "is the typical one and each arm responds 0% or 100%")
            + f"; state the CVs under "
            f"[population] cv (the model card lists believed values), or write cv = {{}} "
            f"to mean it", NoVariabilityWarning, stacklevel=3)
    for name in variability.names:
        if name not in model.parameters and name not in model.covariates:
            raise fail(("population", "cv"), f"cannot vary {name!r}: not a parameter or "
                       f"covariate of {model.name}{closest(name, model.parameter_names)}")
    pooled_spreads = {}  # quantity -> the between-study SD added to its patients' spread
    if population["regimens"] == "several":
        variability, pooled, pooled_spreads = _pooled_regimens(variability, fit_used, fail)
        origin += f"; {pooled}"
    drawn = [name for name in model.per_patient_parameters if name not in variability.names]
    variability = variability.including_model_draws(model).with_groups(groups)
    if drawn:
        origin += f"; {model_draws_text(drawn)}"
    arms = [_arm_design(document, index, entry, checked, model)
            for index, entry in enumerate(checked["arms"])]
    if not arms:
        raise fail(("arms",), "a trial needs at least one [[arms]] entry")
    _check_arm_typical(document, arms, model, trial, groups,
                       population["anchor"]["parameter"] if "anchor" in given else None)
    response = checked["response"]
    rules = [key for key in ("threshold", "rise", "rise_fold") if response[key] is not None]
    if not response["defined"] and rules:
        raise fail(("response", "defined"), f"defined = false says the study defines no "
                   f"response, but {rules[0]} = {response[rules[0]]:g} is given: remove "
                   f"defined = false to judge that rule, or remove {', '.join(rules)}",
                   table=True)
    if not rules:
        if any(arm.treatment for arm in arms) and response["defined"]:
            raise fail(("response",), "needs a threshold, a rise, a rise_fold or several (an "
                       "omitted rule is absent), got none; write e.g. threshold = 100 and "
                       "rise = 50. A study that defines no response (a prevention study "
                       "judged by its nadirs, transfusions or incidences): write defined = "
                       "false; the nadir, days below a level, times to a level and counts "
                       "at chosen days (summary.csv, patients.csv, at_visits) do not "
                       "depend on it", table=True)
        # no arm is treated from entry (a course with supportive doses only, a natural
        # history): a response means nothing there (a user test, 2026-12-04, had to write
        # one); the columns are computed at PLT >= 100 and left out of the printed table
        response = {**response, "threshold": 100.0}
    if response["at_visit_levels"] and not response["at_visits"]:
        raise fail(("response", "at_visit_levels"), "at_visit_levels needs at_visits, the "
                   "visit days to judge them on, e.g. at_visits = [42, 84]")
    late = [day for day in response["at_visits"] if day > trial["follow_up_days"]]
    if late:
        raise fail(("response", "at_visits"), f"visit day {late[0]:g} is after the follow-up "
                   f"({trial['follow_up_days']:g} days): lower it or raise [trial] "
                   f"follow_up_days")
    late = [day for day in response["also_by_days"] if day > trial["follow_up_days"]]
    if late:
        raise fail(("response", "also_by_days"), f"day {late[0]:g} is after the follow-up "
                   f"({trial['follow_up_days']:g} days): lower it or raise [trial] "
                   f"follow_up_days")
    if (response["loss_below"] is None) != (response["loss_from_day"] is None):
        raise fail(("response", "loss_below" if response["loss_below"] is None
                    else "loss_from_day"), "a loss of response needs both loss_below (the "
                   "count that ends it, e.g. 30) and loss_from_day (the visit it is judged "
                   "from, e.g. 168)")
    window = (response["sustained_from_day"], response["sustained_to_day"])
    if response["sustained_share"] is None and any(day is not None for day in window):
        raise fail(("response", "sustained_from_day" if window[0] is not None
                    else "sustained_to_day"), "a window of visits needs sustained_share, the "
                   "share of them with a response, e.g. sustained_share = 0.75")
    if response["sustained_share"] is not None:
        first, last = sustained_window(response, trial["visit_every_days"])
        if not _visits_between(first, last, trial["visit_every_days"]):
            raise fail(("response", "sustained_from_day"), f"no visit (every "
                       f"{trial['visit_every_days']:g} days from day 0) lies in days "
                       f"{first:g}-{last:g}: widen the window or visit more often")
    if (response["later_day"] is None) != (response["later_at_least"] is None):
        raise fail(("response",), "a composite response needs both later_day and "
                   "later_at_least (e.g. PLT >= 75 on day 21)")
    _check_dose_covariates(model, arms, covariates, fail)
    names = [arm.name for arm in arms]
    reference = trial["reference_arm"] or names[0]
    if reference not in names:
        raise fail(("trial", "reference_arm"), f"{reference!r} is not an arm"
                   f"{closest(reference, names)}; arms: {', '.join(names)}")
    versus = {}
    for index, entry in enumerate(checked["arms"]):
        if entry["versus"] is None:
            continue
        if entry["versus"] not in names:
            raise fail(("arms", index, "versus"), f"{entry['versus']!r} is not an arm"
                       f"{closest(entry['versus'], names)}; arms: {', '.join(names)}")
        if entry["versus"] == entry["name"]:
            raise fail(("arms", index, "versus"), "names the arm itself: give the arm it "
                       "is compared with, or leave versus out (the trial's reference_arm)")
        versus[entry["name"]] = entry["versus"]
    if seed is not None and (not isinstance(seed, int) or seed < 0):
        raise TrialSpecError(f"the seed given must be a non-negative integer, got {seed!r}")
    if subjects is not None and (not isinstance(subjects, int) or subjects < 1):
        raise TrialSpecError(f"the number of patients per arm given (--n) must be a positive "
                             f"integer, got {subjects!r}")
    seed = trial["seed"] if seed is None else seed
    if seed is None:
        raise fail(("trial", "seed"), "a seed is required (a non-negative integer), in the "
                   "file or given with --seed")
    anchored = None
    if "anchor" in given:  # the regimen's depth from its published incidence of a low count
        model, anchored = _anchored(document, checked, model, variability, covariates, seed)
        origin += f"; {anchored.sentence()}"
    if fit_used is not None and "chemotherapy" in document.data and anchored is None:
        _warn_cycle_length(document, checked, fit_used)
    # an anchored value is the trial's own, like a [population] typical one: replicates
    # with drawn fit parameters hold it (study/uncertainty.py)
    extra_anchor = {"anchor": anchored.record(), "typical": (
        *population["typical"], anchored.anchor.parameter)} if anchored else {}
    return TrialSpec(trial["name"] or default_name, model, origin, seed,
                     trial["subjects_per_arm"] if subjects is None else subjects,
                     trial["follow_up_days"], trial["visit_every_days"], variability,
                     covariates, tuple(arms), response, reference, document.path,
                     trial["description"], {"replicates": trial["replicates"],
                                            "design": trial["design"],
                                            "allocation": trial["allocation"],
                                            "measurement_error": _measurement_error(
                                                trial, model, fail),
                                            **_uncertainty_keys(checked, trial["fit"]),
                                            **_course_keys(document, checked, arms),
                                            "subgroups": _subgroups(document, checked,
                                                                    model),
                                            # the CVs came from the fit, not the file: a fit
                                            # running the trial gives its own instead
                                            "cv_from_fit": bool(cv_origin),
                                            "between_cycle_from_fit": bool(cycle_origin),
                                            # [population] regimens = "several"
                                            "pooled_regimens": pooled_spreads,
                                            "versus": versus,
                                            **extra_anchor})


def _pooled_regimens(variability: Variability, fit: str | None, fail
                     ) -> tuple[Variability, str, dict[str, float]]:
    """``[population] regimens = "several"``: a study that pooled several regimens (or
    cancers) holds, within it, part of the variation the fit found between studies. Each
    quantity with a study-level random effect in the fit (``study_effects``: its
    between-study SD s of the log) varies between the trial's patients with s added to its
    between-patient variance on the log scale (sd_log^2 = log(1 + CV^2) + s^2), an
    independent part, so every correlation's covariance is kept; a quantity the
    population does not vary yet varies by s alone. The study-level draw of ``uncertainty
    = "fit"`` stays (a mix of regimens differs between studies too). Returns the widened
    variability, its sentence for ``parameters_from`` and each quantity's added SD."""
    from plateletpd.model.library import load_fit_record

    effects = (load_fit_record(fit).get("study_effects") or {}) if fit else {}
    effects = {name: entry["between_study_sd"] for name, entry in effects.items()
               if entry.get("between_study_sd")}
    if not effects:
        raise fail(("population", "regimens"), (
            f"regimens = \"several\" widens each patient's study-level quantities by the "
            f"fit's between-study spread, but {'the trial uses no fit' if not fit else f'fit {fit} has no study-level random effect with a between-study SD'}; "
            f"use a fit with [study_effects] (the model's bundled fit has one), or write "
            f"regimens = \"one\" and state the CV under [population] cv"))
    names, transforms = list(variability.names), list(variability.transforms)
    covariance = np.zeros((len(names) + len(effects),) * 2)
    covariance[:len(names), :len(names)] = variability.covariance
    parts = []
    for name, spread in effects.items():
        if name in names:
            index = names.index(name)
            if transforms[index] != "lognormal":
                raise fail(("population", "regimens"), (
                    f"regimens = \"several\" adds the between-study SD of the log of {name} "
                    f"to its between-patient variance, but the population varies it "
                    f"{transforms[index]}: vary it lognormal (the default) or write "
                    f"regimens = \"one\""))
            before = math.sqrt(math.exp(covariance[index, index]) - 1.0)
        else:
            index = len(names)
            names.append(name)
            transforms.append("lognormal")
            before = 0.0
        covariance[index, index] += spread ** 2
        after = math.sqrt(math.exp(covariance[index, index]) - 1.0)
        parts.append(f"{name} CV {before:.2f} -> {after:.2f} (the fit's between-study SD "
                     f"{spread:.3g} of its log added)")
    size = len(names)
    widened = Variability(tuple(names), tuple(transforms), covariance[:size, :size],
                          variability.groups)
    return (widened, "several regimens pooled ([population] regimens): " + "; ".join(parts),
            effects)


def _anchored(document: Document, checked: dict, model: Model, variability, covariates: dict,
              seed: int):
    """``[population] anchor`` solved (study/anchoring.py): the model with the anchored
    typical value, and the result. The regimen is the course's (first cycle, window its
    length) or the enrolment chemotherapy's (window 28 days unless within_days says)."""
    from plateletpd.study.anchoring import ANCHOR_STREAM, Anchor, AnchorError, solve_anchor

    table = checked["population"]["anchor"]
    course = _course_of(document, checked)
    regimen = course.regimens[0] if course is not None else \
        checked["enrolment"]["chemotherapy"]
    window = table["within_days"] or (course.length(0) if course is not None else 28.0)
    if not table["percent"] > 0 or table["percent"] >= 100:
        raise document.fail(("population", "anchor", "percent"), f"percent must be strictly "
                            f"between 0 and 100, got {table['percent']:g}")
    if not regimen:
        raise document.fail(("population", "anchor"), "an anchor needs a chemotherapy "
                            "regimen ([enrolment] chemotherapy or a [chemotherapy] course)")
    anchor = Anchor(table["nadir_below"], table["percent"], table["source"],
                    table["parameter"], window, table["subjects"], table["cycles"])
    if anchor.cycles > 1 and course is None:
        raise document.fail(("population", "anchor", "cycles"), (
            f"an incidence over {anchor.cycles} cycles needs a [chemotherapy] course (its "
            f"cycle length and delay rules give the cycles); add one, or leave cycles out "
            f"to anchor on the first cycle of [enrolment] chemotherapy"))
    for table in ("typical", "study_parameters"):
        if anchor.parameter in checked["population"][table]:
            raise document.fail(("population", "anchor", "parameter"), f"{anchor.parameter} "
                                f"is also set in [population] {table}: the anchor solves "
                                f"it; remove one")
    for position, group in enumerate(variability.groups):
        if anchor.parameter in group.typical:
            raise document.fail(("population", "mixture", position, "typical"), (
                f"population group {group.name!r} sets {anchor.parameter}, which "
                f"[population] anchor solves for the whole population (it scales every "
                f"patient's value): leave it out of the group, or anchor another parameter"))
    try:
        result = solve_anchor(model, variability, covariates,
                              _arm_seed(seed, ANCHOR_STREAM), regimen, anchor, course,
                              checked["chemotherapy"]["between_cycle_cv"]
                              if course is not None else 0.0)
    except AnchorError as error:
        raise document.fail(("population", "anchor"), str(error)) from None
    return model.with_parameters({anchor.parameter: result.typical}), result


def _measurement_error(trial: dict, model: Model, fail) -> bool:
    """``measurement_error = true`` needs the model's residual error of the platelet count."""
    if trial["measurement_error"] and PLATELETS not in model.observation:
        raise fail(("trial", "measurement_error"), f"model {model.name!r} declares no "
                   f"residual error of the platelet count; add an [observation.platelets] "
                   f"section with proportional and additive terms to its model file, or set "
                   f"measurement_error = false")
    return trial["measurement_error"]


def _uncertainty_keys(checked: dict, fit: str) -> dict:
    """The keys :mod:`plateletpd.study.uncertainty` and :mod:`plateletpd.study.check` read."""
    return {"uncertainty": checked["trial"]["uncertainty"], "fit": fit,
            "data_study": checked["trial"]["data_study"],
            "study_parameters": dict(checked["population"]["study_parameters"]),
            "typical": tuple(checked["population"]["typical"]),
            "data_arms": {arm["name"]: arm["data_arm"] for arm in checked["arms"]
                          if arm["data_arm"] is not None},
            # trial arm -> the cycle its data rows describe / the level of their durations
            "data_cycles": {arm["name"]: int(arm["data_cycle"]) for arm in checked["arms"]
                            if arm["data_cycle"] is not None},
            "data_levels": {arm["name"]: float(arm["data_level"]) for arm in checked["arms"]
                            if arm["data_level"] is not None},
            # trial arm -> {data arm: its cycle} (data_cycles)
            "data_cycles_by_arm": {arm["name"]: {name: int(cycle) for name, cycle in
                                                 arm["data_cycles"].items()}
                                   for arm in checked["arms"] if arm["data_cycles"]}}


def data_cycle(spec: TrialSpec, trial_arm: str, data_arm: str | None = None) -> int | None:
    """The cycle a data arm's rows describe when read from ``trial_arm``: its own entry of
    the arm's ``data_cycles``, else the arm's ``data_cycle``; None: not one cycle's."""
    own = spec.extra.get("data_cycles_by_arm", {}).get(trial_arm, {})
    if data_arm in own:
        return own[data_arm]
    return spec.extra.get("data_cycles", {}).get(trial_arm)


def _course_of(document: Document, checked: dict) -> ChemotherapyCourse | None:
    """The trial's ``[chemotherapy]`` course, or None when the file has none."""
    if "chemotherapy" not in document.data:
        return None
    from plateletpd.dosing.regimens import as_regimen

    table = checked["chemotherapy"]
    try:
        course = ChemotherapyCourse(**{key: value for key, value in table.items()
                                       if key != "between_cycle_cv"})
    except PlateletPDError as error:
        raise document.fail(("chemotherapy",), str(error), table=True) from None
    if isinstance(course.regimen, tuple):  # each cycle's dose text, named by its cycle
        for cycle, text in enumerate(course.regimen, start=1):
            try:
                as_regimen(text)
            except PlateletPDError as error:
                raise document.fail(("chemotherapy", "regimen"), f"cycle {cycle}'s dose "
                                    f"text: {error}") from None
    return course


def _entry_band(values) -> tuple | None:
    """A checked ``entry_between`` list as ArmDesign takes it (absent or empty: None)."""
    return tuple(values) if values else None


def _course_keys(document: Document, checked: dict, arms: list) -> dict:
    """The keys of a trial on a chemotherapy course: the course, the eligibility rules
    (checked against it), the between-cycle CV and the composite endpoints."""
    course = _course_of(document, checked)
    rules = tuple(HistoryRule(**{k: v for k, v in entry.items()})
                  for entry in checked["eligibility"])
    if course is None and rules:
        raise document.fail(("eligibility", 0), "eligibility on the simulated history needs "
                            "a [chemotherapy] course (regimen, cycle_days, cycles); without "
                            "one use [enrolment] entry_below", table=True)
    if course is not None:
        written = sorted(set(document.data.get("enrolment", {})) &
                         {"chemotherapy", "entry_below", "entry_day", "screen_every_days",
                          "screen_from_day"})
        if written:
            raise document.fail(("enrolment", written[0]), f"with a [chemotherapy] course, "
                                f"patients are enrolled by [[eligibility]] rules on their "
                                f"simulated history and the course's regimen is given: "
                                f"remove [enrolment] {', '.join(written)}")
        for number, rule in enumerate(rules):
            problems = rule.problems(course)
            if problems:
                raise document.fail(("eligibility", number), "; ".join(problems), table=True)
        first_support = min((c for arm in arms for c in arm.support_cycles), default=None)
        for number, rule in enumerate(rules):
            if first_support is not None and rule.judged_cycle >= first_support and \
                    not (rule.rule == "below_for_days" and rule.cycle is None):
                raise document.fail(("eligibility", number), f"the rule judges cycle "
                                    f"{rule.judged_cycle}, but support starts in cycle "
                                    f"{first_support}: eligibility is judged on the "
                                    f"untreated history before any study dose, so judge a "
                                    f"cycle before {first_support}", table=True)
    # arms with their own [[arms.eligibility]] rules (in place of the trial's)
    arm_rules = {}
    for index, entry in enumerate(checked["arms"]):
        if not entry["eligibility"] or course is None:
            continue
        own = tuple(HistoryRule(**dict(rule)) for rule in entry["eligibility"])
        for number, rule in enumerate(own):
            problems = rule.problems(course)
            support = min(entry["support_cycles"], default=None)
            if support is not None and rule.judged_cycle >= support and \
                    not (rule.rule == "below_for_days" and rule.cycle is None):
                problems.append(f"the rule judges cycle {rule.judged_cycle}, but the arm's "
                                f"support starts in cycle {support}: judge an earlier cycle")
            if problems:
                raise document.fail(("arms", index, "eligibility", number),
                                    f"arm {entry['name']!r}: " + "; ".join(problems),
                                    table=True)
        arm_rules[entry["name"]] = own  # by name: a subset of arms keeps its rules
    flags = set(_flags(course, checked["response"]))
    composites = []
    for number, entry in enumerate(checked["composite"]):
        unknown = [name for name in (*entry["all"], *entry["none"], *entry["among"],
                                     *entry["among_none"]) if name not in flags]
        if unknown:
            raise document.fail(("composite", number), f"{unknown[0]!r} is not a per-patient "
                                f"flag{closest(unknown[0], sorted(flags))}; flags: "
                                f"{', '.join(sorted(flags))}", table=True)
        quantities = _quantities(course, checked["response"])
        for key in ("at_least", "below"):
            unknown = [name for name in entry[key] if name not in quantities]
            if unknown:
                raise document.fail(("composite", number, key), f"{unknown[0]!r} is not a "
                                    f"per-patient count or number of days"
                                    f"{closest(unknown[0], sorted(quantities))}; e.g. "
                                    f"nadir, peak, plt_day_14"
                                    + (", cycle2_nadir" if course is not None else ""),
                                    table=True)
        if not (entry["all"] or entry["none"] or entry["at_least"] or entry["below"]):
            raise document.fail(("composite", number), "a composite needs flags under all "
                                "or none, or levels under at_least or below, e.g. all = "
                                "[\"responder\"]", table=True)
        if entry["name"] in flags or entry["name"] in [c["name"] for c in composites]:
            raise document.fail(("composite", number, "name"), f"{entry['name']!r} names a "
                                f"column already; choose another name")
        text = entry["data_threshold"].strip()
        twice = [c["name"] for c in composites if c["data_threshold"].strip() == text]
        if text and twice:
            raise document.fail(("composite", number, "data_threshold"), f"composite "
                                f"{twice[0]!r} answers the rows with this threshold text "
                                f"already; a data row is read from one composite: keep "
                                f"data_threshold on one of them")
        composites.append(dict(entry))
    return {"course": course, "eligibility": rules, "arm_eligibility": arm_rules,
            "composites": tuple(composites),
            "between_cycle_cv": checked["chemotherapy"]["between_cycle_cv"]
            if course is not None else 0.0}


def visit_levels(response: dict) -> list[tuple[float, float, str]]:
    """(level, day, column) of the ``[response] at_visits`` flags."""
    levels = response.get("at_visit_levels") or ([response["threshold"]]
                                                 if response.get("threshold") else [])
    return [(level, day, f"plt_at_least_{level:g}_day_{day:g}")
            for level in levels for day in response.get("at_visits") or []]


#: days whose count is a registry endpoint of every trial (plt_day_7, _14, _21)
REGISTRY_COUNT_DAYS = (7.0, 14.0, 21.0)


def visit_count_days(response: dict) -> list[tuple[float, str]]:
    """(day, column) of the counts at the ``[response] at_visits`` days that are not
    registry endpoints: ``plt_day_{day}``, the (measured) count at that visit, whose mean a
    summary reports and a check's ``plt_count`` row at that day reads."""
    return [(day, f"plt_day_{day:g}") for day in response.get("at_visits") or []
            if day not in REGISTRY_COUNT_DAYS and day > 0]


def _count_text(day: float) -> str:
    """The description of ``plt_day_{day}`` (an ``at_visits`` day's count)."""
    return (f"the count at the visit of day {day:g} (measured with measurement_error; NaN "
            f"after the follow-up)")


def response_days(response: dict) -> list[tuple[float, str]]:
    """(day, column) of the ``[response] also_by_days`` flags."""
    return [(day, f"responder_by_day_{day:g}") for day in response.get("also_by_days") or []]


SUSTAINED = "sustained_responder"


def sustained_window(response: dict, visit_every: float) -> tuple[float, float]:
    """First and last day of the ``[response] sustained_share`` window: by default the
    first visit after day 0 to ``by_day``."""
    first = response.get("sustained_from_day")
    last = response.get("sustained_to_day")
    return (visit_every if first is None or first <= 0 else first,
            response["by_day"] if last is None else last)


def _visits_between(first: float, last: float, visit_every: float) -> int:
    """Visit days (multiples of ``visit_every`` after day 0) within [first, last]."""
    days = np.arange(1, math.floor(last / visit_every + 1e-9) + 1) * visit_every
    return int(np.sum(days >= first - 1e-9))


def sustained_text(response: dict, visit_every: float) -> str:
    """The sustained response in words, for the data dictionary."""
    first, last = sustained_window(response, visit_every)
    return (f"the response rule met at at least {100 * response['sustained_share']:g}% of "
            f"the visits on days {first:g}-{last:g} (every {visit_every:g} days)")


def response_extras(response: dict) -> list[tuple[str, str, str, str]]:
    """(column, unit, how the summary reports it, description) of the per-patient columns
    of ``[response] durations`` and ``loss_below``/``loss_from_day``."""
    rows = [(f"responder_at_{level:g}", "flag", "pct", f"a visit on days 1 to "
             f"{response['by_day']:g} with the count at or above {level:g} (not a patient at "
             f"or above {level:g} at day 0; a tier of the response, e.g. a complete response)")
            for level in response.get("also_thresholds") or []]
    if response.get("durations"):
        rows += [("longest_response_days", "days", "km*", "the longest run of consecutive "
                  "responding visits up to by_day, in days (visits x visit_every_days: a "
                  "response seen at one visit counts one interval); empty for a patient "
                  "who never responded; the summary gives its median among responders"),
                 ("total_response_days", "days", "km*", "all responding visits up to by_day, "
                  "in days (visits x visit_every_days); empty for a patient who never "
                  "responded; the summary gives its median among responders")]
    if response.get("loss_below") is not None:
        level, day = response["loss_below"], response["loss_from_day"]
        rows += [("lost_response", "flag", "pct", f"a visit after day {day:g} with the count "
                  f"below {level:g}, among the patients at or above {level:g} at the visit of "
                  f"day {day:g} (empty for the others)"),
                 ("days_to_loss", "days", "km:lost_response", f"days from day {day:g} to the "
                  f"first visit below {level:g} (censored at the last visit; among the "
                  f"patients at or above {level:g} on day {day:g}); the summary gives its "
                  f"Kaplan-Meier median")]
    return rows


def _runs(hits: np.ndarray) -> np.ndarray:
    """Per row, the longest run of consecutive True values."""
    longest = np.zeros(hits.shape[0], dtype=np.int64)
    current = np.zeros(hits.shape[0], dtype=np.int64)
    for column in hits.T:
        current = np.where(column, current + 1, 0)
        longest = np.maximum(longest, current)
    return longest


def visit_flags(courses: Courses, response: dict) -> dict:
    """Per patient, whether the count at each ``at_visits`` day (measured when visits
    measure counts) is at or above each level (False after the end of follow-up), and
    whether a visit on days 1 to each ``also_by_days`` day met the response rule (as
    ``responder`` by ``by_day``)."""
    flags = {column: np.nan_to_num(courses.measured(day), nan=-np.inf) >= level
             for level, day, column in visit_levels(response)}
    flags.update({column: courses.measured(day) for day, column in
                  visit_count_days(response)})
    for day, column in response_days(response):
        flags[column] = np.any(courses.responded & (courses.visit_days <= day)[None, :],
                               axis=1)
    window = (courses.visit_days <= response["by_day"] + 1e-9)[None, :]
    for level in response.get("also_thresholds") or []:
        flags[f"responder_at_{level:g}"] = np.any(courses.reached(level) & window, axis=1)
    if response.get("sustained_share") is not None:
        first, last = sustained_window(response, courses.visit_every)
        days = courses.visit_days
        window = (days >= first - 1e-9) & (days <= last + 1e-9) & (days > 0)
        judged = (courses.valid_visits & window[None, :]).sum(axis=1)
        met = (courses.responded & window[None, :]).sum(axis=1)
        # a share of the patient's visits in the window (all of them in a virtual trial,
        # whose patients are followed to the end); a small tolerance so 6 of 8 is 75%
        flags[SUSTAINED] = (judged > 0) & (met >= response["sustained_share"] * judged - 1e-9)
    if response.get("durations"):
        window = (courses.visit_days <= response["by_day"] + 1e-9)[None, :]
        hits = courses.responded & window
        ever = hits.any(axis=1)
        flags["longest_response_days"] = np.where(ever, _runs(hits) * courses.visit_every,
                                                  np.nan)
        flags["total_response_days"] = np.where(ever, hits.sum(axis=1) * courses.visit_every,
                                                np.nan)
    if response.get("loss_below") is not None:
        level, day = response["loss_below"], response["loss_from_day"]
        judged = np.nan_to_num(courses.measured(day), nan=-np.inf) >= level
        later = courses.valid_visits & (courses.visit_days > day + 1e-9)[None, :]
        below = later & (courses.visits < level)
        lost = below.any(axis=1)
        last = courses.visit_days[np.maximum(courses.last_visit, 0)]
        first = courses.visit_days[np.argmax(below, axis=1)]
        flags["lost_response"] = np.where(judged, lost, np.nan)
        flags["days_to_loss"] = np.where(judged, np.where(lost, first, last) - day, np.nan)
    return flags


def _mixture(entries: list, model: Model, fail) -> tuple[PopulationGroup, ...]:
    """``[[population.mixture]]`` checked: each group's names are parameters or covariates
    of the model and its typical values within their bounds (the model's own checks, as
    ``[population] typical`` has them), the names distinct and the shares adding up to at
    most 1."""
    groups = []
    for position, entry in enumerate(entries):
        where = ("population", "mixture", position)
        for key in ("cv", "typical"):
            try:  # the model's own name and bound checks (Model, Parameter, Covariate)
                model.check_parameter_names([k for k in entry[key]
                                             if k not in model.covariates])
                if key == "typical":
                    for name, value in entry[key].items():
                        (model.covariates.get(name) or model.parameters[name]).check(
                            value, f" in population group {entry['name']!r}")
            except PlateletPDError as error:
                raise fail((*where, key), str(error)) from None
        try:
            groups.append(PopulationGroup(entry["name"], entry["share"], entry["typical"],
                                          entry["source"], entry["cv"]))
        except PlateletPDError as error:
            raise fail(where, str(error)) from None
    try:
        Variability((), (), np.zeros((0, 0)), tuple(groups))  # names distinct, shares <= 1
    except PlateletPDError as error:
        raise fail(("population", "mixture"), str(error)) from None
    return tuple(groups)


def _subgroups(document: Document, checked: dict, model: Model) -> dict | None:
    """``[subgroups]`` checked: a covariate of the model, increasing edges, one label more
    than edges; None without the table."""
    if "subgroups" not in document.data:
        return None
    table = checked["subgroups"]
    names = model.covariate_names
    if table["covariate"] not in names:
        raise document.fail(("subgroups", "covariate"), f"{table['covariate']!r} is not a "
                            f"covariate of {model.name}{closest(table['covariate'], names)}; "
                            f"covariates: {', '.join(names) or 'none'}")
    edges = list(table["edges"])
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise document.fail(("subgroups", "edges"), f"edges must increase, got {edges}")
    if len(table["labels"]) != len(edges) + 1:
        raise document.fail(("subgroups", "labels"), f"{len(edges)} edges make "
                            f"{len(edges) + 1} subgroups, so give {len(edges) + 1} labels, "
                            f"got {len(table['labels'])}")
    return {"covariate": table["covariate"], "edges": edges, "labels": list(table["labels"])}


def subgroup_of(spec: TrialSpec, vectors: np.ndarray) -> np.ndarray:
    """The ``[subgroups]`` label of the patients whose parameter vectors are the rows of
    ``vectors``: the first edge above the covariate's value decides (a value on an edge
    goes up)."""
    groups = spec.extra["subgroups"]
    column = len(spec.model.parameters) + spec.model.covariate_names.index(groups["covariate"])
    return np.array(groups["labels"], dtype=object)[np.searchsorted(
        groups["edges"], vectors[:, column], side="right")]


def subgroup_summary(result: "TrialResult", column: str = "subgroup") -> pd.DataFrame:
    """Per arm and subgroup, the summary row (:func:`summary_columns`) of its patients:
    ``column`` "subgroup" ([subgroups]) or "population_group" (a [[population.mixture]]:
    its groups and the rest)."""
    spec = result.spec
    labels = spec.extra["subgroups"]["labels"] if column == "subgroup" \
        else spec.variability.labels
    rows = []
    for arm, table in result.subjects.groupby("arm", sort=False):
        for label in labels:
            part = table[table[column] == label]
            if len(part):
                row = _summarise(arm, part, len(part), 0, spec)
                rows.append({"arm": arm, column: label, **{
                    k: v for k, v in row.items() if k not in ("arm", "screened",
                                                               "invalid_parameters")}})
    return pd.DataFrame(rows)


def _flags(course: ChemotherapyCourse | None, response: dict) -> list[str]:
    """The per-patient flags a composite endpoint may combine."""
    flags = [e.name for e in trial_endpoints() if e.kind == "flag"] + ["transfused"]
    flags += [column for _, _, column in visit_levels(response)]
    flags += [column for _, column in response_days(response)]
    if response.get("sustained_share") is not None:
        flags.append(SUSTAINED)
    if response.get("loss_below") is not None:
        flags.append("lost_response")
    flags += [f"responder_at_{level:g}" for level in response.get("also_thresholds") or []]
    if course is not None:
        flags += [name for name, unit, _ in course_columns(course.cycles) if unit == "flag"]
    return flags


def composite_text(composite: dict, among: bool = True) -> str:
    """A composite endpoint's rule in words (its description where the file gives none):
    its flags, its levels and, with ``among``, the patients it is judged among."""
    parts = [f"all of {', '.join(composite['all'])}"] if composite["all"] else []
    if composite["none"]:
        parts.append(f"none of {', '.join(composite['none'])}")
    parts += [f"{name} >= {level:g}" for name, level in
              (composite.get("at_least") or {}).items()]
    parts += [f"{name} < {level:g}" for name, level in (composite.get("below") or {}).items()]
    text = "composite: " + " and ".join(parts)
    if among and (composite.get("among") or composite.get("among_none")):
        text += "; judged among the patients" + (
            " with " + ", ".join(composite["among"]) if composite.get("among") else "") + (
            (" and" if composite.get("among") else "") + " without any of "
            + ", ".join(composite["among_none"]) if composite.get("among_none") else "") \
            + " (empty for the others)"
    return text


def _quantities(course: ChemotherapyCourse | None, response: dict) -> list[str]:
    """The per-patient counts and numbers of days a composite may set levels on
    (``at_least``, ``below``): the trial's counts and times, the counts at ``at_visits``
    days and, with a course, its counts and days per cycle (patients.csv's columns)."""
    names = [e.name for e in trial_endpoints() if e.kind in ("count", "time")]
    names += [column for _, column in visit_count_days(response)]
    if course is not None:
        names += [name for name, unit, _ in course_columns(course.cycles)
                  if unit in ("x10^9/L", "days")]
    return names


def _arm_design(document: Document, index: int, entry: dict, checked: dict,
                model: Model) -> ArmDesign:
    """Arm ``index`` of a checked trial file as a design; its name unique, its doses known
    to the model."""
    where = ("arms", index)
    if entry["name"] in [arm["name"] for arm in checked["arms"][:index]]:
        raise document.fail((*where, "name"), f"{entry['name']!r} names an earlier arm too; "
                            f"every arm needs a unique name")
    enrolment = checked["enrolment"]
    course = _course_of(document, checked)
    if entry["stop_at_next_cycle"] and course is None:
        raise document.fail((*where, "stop_at_next_cycle"), "stops the treatment at the next "
                            "chemotherapy cycle, so it needs a [chemotherapy] course "
                            "(regimen, cycle_days, cycles); without one use max_days")
    chemotherapy = entry["chemotherapy"] or (course.regimen_text if course is not None
                                             else enrolment["chemotherapy"])
    try:
        design = ArmDesign(
            name=entry["name"], chemotherapy=chemotherapy,
            treatment=tuple(entry["treatment"]),
            entry_below=enrolment["entry_below"] if entry["entry_below"] is None
            else entry["entry_below"],
            entry_day=enrolment["entry_day"],
            start_delay=enrolment["start_delay"] if entry["start_delay"] is None
            else entry["start_delay"],
            entry_between=_entry_band(entry["entry_between"] or enrolment["entry_between"]),
            judged_on_course=course is not None,
            screen_every_days=enrolment["screen_every_days"],
            screen_from_day=enrolment["screen_from_day"],
            stop_at=entry["stop_at"], stop_rise=entry["stop_rise"],
            stop_after_fall=entry["stop_after_fall"],
            stop_at_next_cycle=entry["stop_at_next_cycle"],
            max_days=entry["max_days"], min_days=entry["min_days"],
            follow_up_days=checked["trial"]["follow_up_days"],
            titrations=tuple(Titration(**rule) for rule in entry["titration"]),
            rescue=Rescue(**{k: v for k, v in entry["rescue"].items() if v is not None})
            if entry["rescue"] else None,
            rules=tuple(DoseRule(rule["when"], rule["level"], rule["action"], rule["drug"],
                                 rule["step"], rule["min"], rule["max"], rule["from_day"],
                                 rule["to_day"])
                        for rule in entry["rules"]),
            visit_every_days=checked["trial"]["visit_every_days"],
            support=tuple(entry["support"]), support_cycles=tuple(entry["support_cycles"]),
            support_stop_at=entry["support_stop_at"],
            support_stop_after_fall=entry["support_stop_after_fall"],
            support_min_days=entry["support_min_days"],
            support_start_below=entry["support_start_below"],
            support_max_days=entry["support_max_days"],
            typical=tuple(entry["typical"].items()))
    except PlateletPDError as error:
        # ArmDesign's own errors already name the arm; the others (rescue, rules) do not
        named = f"arm {entry['name']!r}: "
        message = str(error)
        raise document.fail(where, message if message.startswith(named)
                            else named + message) from None
    if entry["entry_below"] is not None and course is not None:
        raise document.fail((*where, "entry_below"), f"arm {entry['name']!r}: with a "
                            f"[chemotherapy] course patients enrol by [[eligibility]] rules; "
                            f"give the arm its own rules instead, e.g. [[arms.eligibility]] "
                            f"rule = \"nadir_below\", below = {entry['entry_below']:g}, "
                            f"cycle = 2")
    if entry["eligibility"] and course is None:
        raise document.fail((*where, "eligibility"), f"arm {entry['name']!r}: eligibility "
                            f"on the simulated history needs a [chemotherapy] course; "
                            f"without one give the arm its own entry_below")
    if design.support and course is None:
        raise document.fail((*where, "support"), f"arm {entry['name']!r}: support doses go "
                            f"with chemotherapy cycles; add a [chemotherapy] table (regimen, "
                            f"cycle_days, cycles) or give the doses as treatment")
    if entry["data_cycles"]:
        names = entry["data_arm"] if isinstance(entry["data_arm"], (list, tuple)) else \
            [] if entry["data_arm"] is None else [entry["data_arm"]]
        problems = []
        if entry["data_cycle"] is not None:
            problems.append("give data_cycle (one cycle for every data arm) or data_cycles "
                            "(a cycle per data arm), not both")
        unknown = [name for name in entry["data_cycles"] if name not in names]
        if unknown:
            problems.append(f"data_cycles names {unknown[0]!r}, which is not one of the "
                            f"arm's data_arm ({', '.join(map(repr, names)) or 'none'}); list "
                            f"it in data_arm too")
        bad = [c for c in entry["data_cycles"].values() if c != int(c)]
        if bad:
            problems.append(f"a cycle is a whole number, got {bad[0]:g}")
        if course is None:
            problems.append("data_cycles reads rows from cycles of a chemotherapy course; "
                            "add a [chemotherapy] table")
        elif max(entry["data_cycles"].values()) > course.cycles:
            problems.append(f"a cycle after the last ([chemotherapy] cycles = "
                            f"{course.cycles})")
        if problems:
            raise document.fail((*where, "data_cycles"), f"arm {entry['name']!r}: "
                                + "; ".join(problems))
    if entry["data_cycle"] is not None and course is None:
        raise document.fail((*where, "data_cycle"), f"arm {entry['name']!r}: data_cycle "
                            f"reads the data rows from one cycle of a chemotherapy course; "
                            f"add a [chemotherapy] table (regimen, cycle_days, cycles) or "
                            f"remove data_cycle")
    if entry["data_cycle"] is not None and entry["data_cycle"] > course.cycles:
        raise document.fail((*where, "data_cycle"), f"arm {entry['name']!r}: data_cycle "
                            f"{entry['data_cycle']} is after the last cycle ([chemotherapy] "
                            f"cycles = {course.cycles}); name a cycle from 1 to "
                            f"{course.cycles}")
    if entry["data_level"] is not None and entry["data_level"] not in CYCLE_LEVELS:
        raise document.fail((*where, "data_level"), f"arm {entry['name']!r}: data_level "
                            f"must be 20, 50, 75 or 100 (the levels the trial counts days "
                            f"below), got {entry['data_level']!r}")
    if (entry["data_cycle"] is not None or entry["data_level"] is not None) and \
            entry["data_arm"] is None:
        key = "data_cycle" if entry["data_cycle"] is not None else "data_level"
        raise document.fail((*where, key), f"arm {entry['name']!r}: {key} says how the "
                            f"arm's data rows are read; name them with data_arm = \"...\"")
    if course is not None and max(design.support_cycles, default=1) > course.cycles:
        raise document.fail((*where, "support_cycles"), f"arm {entry['name']!r}: "
                            f"support_cycles {list(design.support_cycles)} name a cycle after "
                            f"the last ([chemotherapy] cycles = {course.cycles})")
    checks = [("treatment", design)]
    if design.support:  # the support doses alone first, so an error names their key
        checks.insert(0, ("support", ArmDesign(design.name, chemotherapy="",
                                               support=design.support,
                                               support_cycles=design.support_cycles)))
    for key, doses in checks:
        try:
            _check_doses(model, doses)
        except PlateletPDError as error:
            named, message = f"arm {entry['name']!r}: ", str(error)
            if message.startswith("rescue: "):  # the rescue's own key, not the treatment
                key, message = "rescue", message[len("rescue: "):]
            raise document.fail((*where, key), message if message.startswith(named)
                                else named + message) from None
    if course is None and (note := _rise_never_first(design)):
        warnings.warn(f"{document.path}: arm {design.name!r}: {note}", StopRuleWarning,
                      stacklevel=4)
    return design


class StopRuleWarning(UserWarning):
    """An arm's stop rule part that can never act before another (both kept as written)."""


def _rise_never_first(design: ArmDesign) -> str:
    """Why ``stop_rise`` can never stop an arm before ``stop_at`` ("" when it can): its
    patients enrol as their count crosses below ``entry_below`` (no routine screening, no
    entry band), so a rise of ``stop_rise`` above the count at entry is at least about
    ``entry_below + stop_rise``, at or above ``stop_at`` (a user test, 2026-12-07, ran
    with and without the rise and got the same numbers)."""
    if (design.stop_at is None or design.stop_rise is None or design.stop_after_fall
            or design.entry_below is None or design.screen_every_days is not None
            or design.entry_between is not None or design.judged_on_course
            or design.entry_below + design.stop_rise < design.stop_at):
        return ""
    return (f"stop_rise = {design.stop_rise:g} can never stop the treatment before stop_at = "
            f"{design.stop_at:g}: patients enrol as their count crosses below "
            f"{design.entry_below:g}, so a rise of {design.stop_rise:g} above it comes at "
            f"{design.entry_below + design.stop_rise:g} or later; both are kept as written "
            f"(the rise acts where patients enrol lower: routine counts, screen_every_days, "
            f"or an entry band, entry_between)")


def bundled_trial(name: str) -> Path:
    """Path of a bundled trial spec (trials/NAME.toml in the source tree or the wheel)."""
    from plateletpd.io.files import bundled_toml

    return bundled_toml("trials", name, "trial", TrialSpecError)


def _arm_regimen(design: ArmDesign) -> str:
    """Every dose an arm can give, as one regimen text (titration and rescue doses on day 1):
    what the arm's checks expand."""
    doses = [*(rule.dose for rule in design.titrations),
             *([design.rescue.dose] if design.rescue else [])]
    # a dose several times a day on each treatment day ("rhIL-11 2 mg q12h"): its first day
    treatment = [text if per_day(text) is None else f"{text} d1" for text in design.treatment]
    return " + ".join(filter(None, [design.chemotherapy, *treatment, *design.support,
                                    *(f"{d} d1" for d in doses)]))  # "": no chemotherapy


def _check_dose_covariates(model: Model, arms, covariates: dict, fail) -> None:
    """Refuse a dose scaled by a covariate ("rhIL-11 25 ug/kg") that ``[population]
    covariates`` does not give: the model's default (e.g. 65 kg) is never used to scale a
    dose, as :func:`plateletpd.simulate` refuses it too."""
    from plateletpd.dosing.regimens import as_regimen
    from plateletpd.dosing.schedules import expand

    for design in arms:
        schedule = expand(as_regimen(_arm_regimen(design)), model.dose_targets)
        missing = [(drug, c) for drug, c in zip(schedule.drug, schedule.scale_covariate)
                   if c and c not in covariates]
        if missing:
            drug, name = missing[0]
            default = model.covariates[name].default if name in model.covariates else None
            raise fail(("population", "covariates"), f"arm {design.name!r} gives {drug} per "
                       f"{'kg' if name == 'body_weight' else name}, scaled by {name!r}, but "
                       f"[population] covariates does not give {name!r}; a model's default"
                       + (f" ({default:g})" if default is not None else "")
                       + f" is never used to scale a dose: add covariates = {{ {name} = "
                       f"<value> }} under [population] (the study's median, e.g. "
                       f"{default if default is not None else 65:g})")


def _check_doses(model: Model, design: ArmDesign) -> None:
    """Refuse unknown drugs or units now, not in the middle of a run."""
    from plateletpd.dosing.regimens import as_regimen
    from plateletpd.dosing.schedules import expand

    if design.rescue is not None:  # the rescue's dose first: its own message
        drug = as_regimen(design.rescue.dose).doses[0].drug
        names = [t.name for t in model.dose_targets]
        if drug not in names + [a for t in model.dose_targets for a in t.aliases]:
            from plateletpd.errors import RegimenError

            raise RegimenError(
                f"rescue: its dose {design.rescue.dose!r} needs the drug {drug!r}, which "
                f"model {model.name!r} cannot be dosed with (it takes: "
                f"{', '.join(names)}); remove rescue from the arm, or use a model with a "
                f"platelet transfusion (cit_marrow_reserve)")
    regimen = as_regimen(_arm_regimen(design))
    known = {name.lower() for target in model.dose_targets
             for name in (target.name, *target.aliases)}
    for dose in regimen.doses:
        elsewhere = [] if dose.drug.lower() in known else _models_dosing(dose.drug)
        if elsewhere:
            # a drug of another bundled model: say so rather than suggest a look-alike name
            # (a user test, 2026-12-07: "eltrombopag" in the ITP model was answered "did you
            # mean 'hetrombopag'?", a drug dosed about ten times lower)
            from plateletpd.errors import RegimenError

            raise RegimenError(
                f"unknown drug {dose.drug!r} for model {model.name!r}, which can be dosed "
                f"with: {', '.join(t.name for t in model.dose_targets)}; {dose.drug!r} is a "
                f"drug of the bundled model{'s' if len(elsewhere) > 1 else ''} "
                f"{', '.join(elsewhere)}: run the study on "
                f"{'one of them' if len(elsewhere) > 1 else 'it'} ([trial] model = "
                f"\"{elsewhere[0]}\"), or write this model's drug with a dose conversion "
                f"you state and source (drugs differ in potency: no conversion is implied)")
    expand(regimen, model.dose_targets, {
        c: (model.covariates[c].default or 1.0) for c in model.covariates})
    resolve_treatment(model, design)  # the dose rules' drugs, steps and bounds


def _models_dosing(drug: str) -> list[str]:
    """The bundled models (by name) with a dose target or alias ``drug`` (any case), loaded
    as every model is (:func:`plateletpd.model.definition.load_model`; an error path only,
    about a second for every bundled model)."""
    from plateletpd.model.definition import list_models, load_model

    wanted = drug.lower()
    return [name for name in list_models()
            if any(wanted in (target.name.lower(), *(a.lower() for a in target.aliases))
                   for target in load_model(name).dose_targets)]


# ====================================================================== running
@dataclass(frozen=True, repr=False)
class TrialResult:
    """A run trial: per-patient endpoints (``subjects``, also ``patients``: the table of
    ``patients.csv``), arm ``summary``, ``differences`` from the reference arm and the kept
    ``curves``: ``{arm: (days from the first treatment morning, counts of the first 2,000
    patients x those days)}``, for plots."""

    spec: TrialSpec
    subjects: pd.DataFrame
    summary: pd.DataFrame
    differences: pd.DataFrame
    curves: dict  # arm -> (times since start, platelet matrix) for plots
    screening: pd.DataFrame = field(default_factory=pd.DataFrame)  # per eligibility rule

    @property
    def patients(self) -> pd.DataFrame:
        """The per-patient table (``subjects``), under the name of the file
        :func:`write_trial` writes it to, ``patients.csv``."""
        return self.subjects

    @property
    def provenance(self) -> dict:
        """Versions, model identity and values, seed and the trial's design
        (:func:`trial_provenance`; what ``provenance.json`` of :func:`write_trial` holds,
        without the run's warnings)."""
        return trial_provenance(self.spec)

    def __repr__(self) -> str:
        arms = ", ".join(f"{name}: {int(row.enrolled)} enrolled, {row['response_pct']:.1f}% "
                         f"responded" for name, row in self.summary.iterrows())
        return short_repr("TrialResult", [("trial", self.spec.name), ("seed", self.spec.seed),
                                          ("arms", f"[{arms}]")])

    def _repr_html_(self) -> str:
        table = arm_table(self)
        return html_table(f"Trial {self.spec.name} (seed {self.spec.seed})",
                          [("model", self.spec.model.name),
                           ("parameters", self.spec.parameters_from),
                           ("response", response_text(self.spec)),
                           ("patients", len(self.subjects))],
                          [(name, *row) for name, row in zip(table.index,
                                                             table.itertuples(index=False))],
                          ("arm", *table.columns))


def _arm_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def arm_stream(spec: TrialSpec, index: int) -> int:
    """The random streams of arm ``index`` (its patients, measurements, cycle exposures):
    its position in the trial file, also when a check runs only some of the arms
    (``extra["arm_streams"]``: each kept arm's position), so those arms draw the same
    patients as in the whole trial."""
    streams = spec.extra.get("arm_streams")
    return index if streams is None else int(streams[index])


def patient_stream(spec: TrialSpec, index: int) -> int:
    """The stream of arm ``index``'s patients: :func:`arm_stream`, or the first arm's in a
    paired design (the same patients in every arm)."""
    return 0 if spec.extra.get("design") == "paired" else arm_stream(spec, index)


def with_arms(spec: TrialSpec, names) -> TrialSpec:
    """``spec`` with only the arms named (in the file's order), each keeping its random
    streams (:func:`arm_stream`): the same patients as in the whole trial."""
    kept = [i for i, design in enumerate(spec.arms) if design.name in set(names)]
    arms = tuple(spec.arms[i] for i in kept)
    reference = spec.reference_arm if spec.reference_arm in {a.name for a in arms} \
        else arms[0].name
    return replace(spec, arms=arms, reference_arm=reference, extra={
        **spec.extra, "arm_streams": tuple(arm_stream(spec, i) for i in kept)})


def patient(spec: TrialSpec, arm: str, index: int) -> tuple[dict, ArmResult]:
    """Re-simulate patient ``index`` of ``arm`` alone: (its parameter values, its course).

    The cohort of an arm is drawn in patient order from the arm's seed, so patient ``index``
    is the same whether the trial had 50 or 50,000 patients and however many threads ran.
    """
    names = [a.name for a in spec.arms]
    if arm not in names:
        raise TrialSpecError(f"no arm {arm!r}{closest(arm, names)}; arms: {', '.join(names)}")
    position = names.index(arm)
    model = spec.model
    if not isinstance(index, (int, np.integer)) or index < 0:
        raise TrialSpecError(f"patient index must be a whole number >= 0, got {index!r}")
    row = _cohort(spec, position, int(index) + 1)[-1]
    every = model.parameter_names + model.covariate_names
    chosen = np.array([int(index)])
    # with measurement_error the trial's dose and rescue rules judge measured counts
    # (trial_chunk): the replay measures them with the patient's own draws, or a rescue the
    # trial gave (or did not) changes the course
    measure = (lambda rows: _observer(spec, position, chosen[rows])) \
        if spec.extra.get("measurement_error") else None
    return dict(zip(every, row.tolist())), _simulate_arm(spec, position, spec.arms[position],
                                                         row[None], chosen, measure)


def run_replicates(spec: TrialSpec, progress: bool = False) -> pd.DataFrame:
    """The trial repeated ``replicates`` times with seeds derived from the trial's seed:
    one summary row per replicate and arm (how much a trial of this size varies)."""
    from dataclasses import replace

    frames = []
    for replicate in range(spec.extra.get("replicates", 1)):
        seed = _arm_seed(spec.seed, 10_000 + replicate)
        summary = run_trial(replace(spec, seed=seed)).summary.reset_index()
        summary.insert(0, "replicate", replicate)
        summary.insert(1, "seed", seed)
        frames.append(summary)
        if progress and progress_due(replicate + 1, spec.extra["replicates"]):
            show_progress(f"  replicate {replicate + 1}/{spec.extra['replicates']}")
    if progress:
        progress_end()
    return pd.concat(frames, ignore_index=True)


def replicate_power(differences: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Power of a trial of this size: from each replicate trial's ``differences`` table
    (differences.csv), per arm and compared quantity, the share of replicates whose 95%
    interval of the difference excludes 0 (a two-sided test at 5%, the interval's own:
    Wald or Welch, paired for a paired design), split by direction, and the mean and 2.5th
    and 97.5th percentiles of the difference across replicates. Sampling alone: the
    model's point estimates, the patients redrawn."""
    frames = [table.assign(replicate=i) for i, table in enumerate(differences) if len(table)]
    if not frames:
        return pd.DataFrame(columns=["arm", "versus", "quantity", "replicates",
                                     "power_pct", "higher_pct", "lower_pct",
                                     "mean_difference", "difference_2.5%",
                                     "difference_97.5%"])
    table = pd.concat(frames, ignore_index=True)
    quantities = [column[:-len("_lower")] for column in table.columns
                  if column.endswith("_lower") and column[:-len("_lower")] in table.columns]
    rows = []
    for (arm, versus), group in table.groupby(["arm", "versus"], sort=False):
        for quantity in quantities:
            lower, upper = group[f"{quantity}_lower"], group[f"{quantity}_upper"]
            known = lower.notna() & upper.notna()
            if not known.any():
                continue
            higher, lower_side = float((lower[known] > 0).mean()), \
                float((upper[known] < 0).mean())
            values = group.loc[known, quantity].to_numpy(float)
            rows.append({"arm": arm, "versus": versus, "quantity": quantity,
                         "replicates": int(known.sum()),
                         "power_pct": 100.0 * (higher + lower_side),
                         "higher_pct": 100.0 * higher, "lower_pct": 100.0 * lower_side,
                         "mean_difference": float(values.mean()),
                         "difference_2.5%": float(np.percentile(values, 2.5)),
                         "difference_97.5%": float(np.percentile(values, 97.5))})
    return pd.DataFrame(rows)


#: power.csv's columns (:func:`replicate_power`)
POWER_COLUMNS = [
    ("arm", "", "the arm ([[arms]] name)"),
    ("versus", "", "the arm it is compared with (its versus, else the reference arm)"),
    ("quantity", "", "the difference compared, a differences.csv column"),
    ("replicates", "trials", "replicate trials with an interval for it"),
    ("power_pct", "percent", "replicate trials whose 95% interval of the difference "
     "excludes 0 (two-sided 5%)"),
    ("higher_pct", "percent", "of those, the arm ahead (interval above 0)"),
    ("lower_pct", "percent", "of those, the arm behind (interval below 0)"),
    ("mean_difference", "as the quantity", "mean difference across replicate trials"),
    ("difference_2.5%", "as the quantity", "2.5th percentile across replicate trials"),
    ("difference_97.5%", "as the quantity", "97.5th percentile across replicate trials")]


def _observer(spec: TrialSpec, index: int, patients: np.ndarray):
    """With ``measurement_error``, the measurement ``observe(counts, days, rows=None)`` of
    arm ``index``'s ``patients`` (indices in the arm's cohort; ``rows`` selects some of
    them): each count (patients x times, taken ``days`` from the start of treatment) times
    (1 + proportional e1) plus additive e2, floored at 0. The e are standard normal, one
    pair per hour from the start of treatment, from a stream per patient seeded by trial
    seed, arm and patient index, so a visit's measurement is the same for the dose rules and
    the endpoints, and does not depend on chunks or threads. Without it None (true counts)."""
    if not spec.extra.get("measurement_error"):
        return None
    error = spec.model.observation[PLATELETS]
    hours = int(math.ceil(spec.follow_up_days * 24)) + 1
    draws = np.array([np.random.default_rng([spec.seed, arm_stream(spec, index),
                                             int(patient), 1])
                      .standard_normal((hours, 2)) for patient in patients]
                     ).reshape(len(patients), hours, 2)

    def observe(counts: np.ndarray, days, rows=None) -> np.ndarray:
        hour = np.clip(np.rint(np.asarray(days, dtype=float) * 24).astype(np.int64), 0,
                       hours - 1)
        chosen = draws if rows is None else draws[rows]
        noise = chosen[:, hour] if hour.ndim == 1 else \
            chosen[np.arange(len(chosen))[:, None], hour]
        return np.maximum(counts * (1.0 + error.proportional * noise[..., 0])
                          + error.additive * noise[..., 1], 0.0)
    return observe


def _check_arm_typical(document: Document, arms: list, model: Model, trial: dict,
                       groups, anchored: str | None) -> None:
    """Each arm's own typical values (``[[arms]] typical``): parameters of the model within
    their bounds, in a parallel design (a paired one simulates the same patients in every
    arm), on no parameter a mixture group or the anchor sets (two values for one patient)."""
    for index, design in enumerate(arms):
        where = ("arms", index, "typical")
        for name, value in design.typical:
            if name in model.covariates:
                raise document.fail(where, f"{name} is a covariate of {model.name}, not a "
                                    f"parameter: an arm's own typical values are "
                                    f"parameters; state covariates for every arm under "
                                    f"[population] covariates (or vary them with "
                                    f"[population] cv)")
            try:
                model.check_parameter_names([name])
                model.parameters[name].check(value, f" (arm {design.name!r})")
            except PlateletPDError as error:
                raise document.fail(where, str(error)) from None
            setting = [group.name for group in groups if name in group.typical]
            if setting:
                raise document.fail(where, f"{name} is also set by the mixture group "
                                    f"{setting[0]!r}: a patient of both would have two "
                                    f"typical values; set it in one place")
            if name == anchored:
                raise document.fail(where, f"{name} is the [population] anchor's parameter, "
                                    f"solved for every arm; remove it here, or remove the "
                                    f"anchor and state each arm's value")
        if design.typical and trial["design"] == "paired":
            raise document.fail(where, f"arm {design.name!r} has its own typical values, but "
                                f"[trial] design = \"paired\" simulates the same patients "
                                f"in every arm; use design = \"parallel\" for arms whose "
                                f"populations differ")


def arm_typical_vector(spec: TrialSpec, index: int, base: np.ndarray) -> np.ndarray:
    """``base`` (a typical parameter vector of ``spec.model``) with arm ``index``'s own
    typical values (``[[arms]] typical``) in place; ``base`` itself when it has none."""
    typical = spec.arms[index].typical
    if not typical:
        return base
    base = np.array(base, dtype=float)
    names = spec.model.parameter_names
    for name, value in typical:
        base[names.index(name)] = value
    return base


def _cohort(spec: TrialSpec, index: int, size: int | None = None) -> np.ndarray:
    """The first ``size`` (default all) patients of arm ``index``, drawn in patient order,
    around the arm's own typical values where it states some."""
    base = arm_typical_vector(spec, index,
                              spec.model.parameter_vector({}, dict(spec.covariates)))
    size = spec.subjects_per_arm if size is None else size
    stream = patient_stream(spec, index)  # the first arm's in a paired design
    eta = spec.variability.eta(size, _arm_seed(spec.seed, stream)) \
        if spec.variability.width else np.zeros((size, 0))
    return cohort_matrix(spec.model, base, spec.variability, eta)


def population_group(spec: TrialSpec, index: int, patients: np.ndarray) -> np.ndarray:
    """The mixture group label (``[[population.mixture]]`` name, or "rest") of arm
    ``index``'s patients ``patients`` (indices in its drawn cohort), from the same stream
    :func:`_cohort` draws them with."""
    stream = patient_stream(spec, index)
    patients = np.asarray(patients, dtype=np.int64)
    if not patients.size:
        return np.zeros(0, dtype=object)
    first, stop = int(patients.min()), int(patients.max()) + 1  # a chunk's range only
    membership = spec.variability.membership(stop, _arm_seed(spec.seed, stream), first)
    return np.asarray(spec.variability.labels, dtype=object)[membership[patients - first]]


def dose_total_columns(spec: TrialSpec | None) -> list[tuple[str, str, str, str]]:
    """(column, total-dose key, unit, description) of each drug the trial's arms give as
    treatment: per patient, the total amount given (doses x amounts, after every stop,
    hold and titration), 0 in an arm without it; the summary gives its mean."""
    if spec is None:
        return []
    seen: dict = {}
    for design in spec.arms:
        try:
            treatment = resolve_treatment(spec.model, design)
        except PlateletPDError:
            continue
        for drug, unit in zip(treatment.drugs, treatment.units):
            key = f"{drug} ({unit})"
            column = "total_" + re.sub(r"[^0-9A-Za-z]+", "_", f"{drug} {unit}").strip("_")
            seen.setdefault(column, (column, key, unit, f"total {drug} given to the patient "
                                     f"({unit}; every dose given, after stops, holds and "
                                     f"titrations; 0 in an arm without it)"))
    return list(seen.values())


def one_arm_trial(spec: TrialSpec, design: ArmDesign) -> TrialSpec:
    """``spec`` with ``design`` as its only arm and its own reference (a sweep cell, a
    candidate dose, a sensitivity sample): a paired trial's check that every arm enrols the
    reference arm's patients then compares the arm with itself, not with an arm not run."""
    return replace(spec, arms=(design,), reference_arm=design.name)


def patient_endpoints(arm: ArmResult, response: dict, visit_every: float,
                      observe=None, composites=()) -> pd.DataFrame:
    """One row per enrolled patient: the registry's trial endpoints
    (:func:`plateletpd.study.endpoints.trial_endpoints`, definitions there), the course
    columns of an arm on a chemotherapy course (:func:`course_endpoints`) and the
    ``composites`` (a flag: all of ``all`` hold and none of ``none``); ``observe`` (see
    :func:`_observer`) turns the true counts at visits into measured ones."""
    courses = Courses.for_trial(arm, response, visit_every, observe)
    # every column built first and the table made once (column by column, a long course's
    # hundreds of columns fragmented the frame: a flood of pandas PerformanceWarnings)
    columns = {"patient": arm.subjects.astype(int),
               **{e.name: e.values(courses) for e in trial_endpoints()}}
    if "course" in arm.extra:
        columns.update(course_endpoints(arm))
    columns.update(visit_flags(courses, response))
    table = pd.DataFrame(columns)
    flags = table.assign(transfused=table.transfusions > 0)
    built = {}
    for composite in composites:
        value = np.ones(len(table), dtype=bool)
        for name in composite["all"]:
            value &= flags[name].astype(bool).to_numpy()
        for name in composite["none"]:
            value &= ~flags[name].astype(bool).to_numpy()
        for name, level in (composite.get("at_least") or {}).items():
            value &= table[name].to_numpy(dtype=float) >= level   # NaN: not met
        for name, level in (composite.get("below") or {}).items():
            value &= table[name].to_numpy(dtype=float) < level
        among = np.ones(len(table), dtype=bool)
        for name in composite.get("among", ()):
            among &= flags[name].astype(bool).to_numpy()
        for name in composite.get("among_none", ()):
            among &= ~flags[name].astype(bool).to_numpy()
        conditional = bool(composite.get("among") or composite.get("among_none"))
        # outside the patients it is judged among: empty (NaN), left out of its share
        built[composite["name"]] = value if not conditional \
            else np.where(among, value.astype(float), np.nan)
    return pd.concat([table, pd.DataFrame(built, index=table.index)], axis=1) if built \
        else table


#: patients simulated at once; trajectories are dropped after each chunk, so memory stays
#: bounded whatever the cohort size
CHUNK = 2000
#: patients per arm whose trajectories are kept for the plotted bands
KEPT_TRAJECTORIES = 2000

#: Memory one enrolled patient's endpoint row takes in the arm's tables (about 40 numbers,
#: kept until the arm is summarised); the guard adds the patient's parameter row.
_BYTES_PER_PATIENT = 8.0 * 40


def run_trial(spec: TrialSpec | str | Path, progress: bool = False) -> TrialResult:
    """Simulate every arm in chunks and summarise (per-patient endpoints are kept; the
    trajectories of the first :data:`KEPT_TRAJECTORIES` patients per arm feed the plots).
    ``spec``: a :class:`TrialSpec` or a trial file's path (read by :func:`load_trial_spec`).
    The chunks are :func:`trial_chunk`, assembled by :func:`assemble_arm` and
    :func:`assemble_trial`: study/distributed.py runs the same chunks on a cluster."""
    import time

    if isinstance(spec, (str, Path)):
        spec = load_trial_spec(spec)
    if not isinstance(spec, TrialSpec):
        raise TrialSpecError(f"run_trial expects a TrialSpec (TrialSpec.create, "
                             f"load_trial_spec) or a trial file's path, got "
                             f"{type(spec).__name__}")

    arms = []
    relative = relative_days(spec)
    started = time.perf_counter()
    for index, design in enumerate(spec.arms):
        check_subjects(spec.subjects_per_arm, _BYTES_PER_PATIENT + 8.0 * (
            len(spec.model.parameters) + 2 * len(spec.variability.names)),
            f"trial arm {design.name!r} (parameters and per-patient endpoints)")
        matrix = _cohort(spec, index)
        valid = _valid_rows(spec.model, matrix)
        outcomes = []
        for first in range(0, len(matrix), CHUNK):
            rows = np.arange(first, min(first + CHUNK, len(matrix)))
            chosen = rows[valid[rows]]
            outcomes.append(trial_chunk(spec, index, (matrix[chosen], chosen),
                                        max(0, KEPT_TRAJECTORIES - first), relative))
            if progress:
                done = min(first + CHUNK, len(matrix))
                show_progress(f"  arm {index + 1}/{len(spec.arms)} {design.name}: {done}/"
                              f"{len(matrix)} patients, {time.perf_counter() - started:.1f} s")
        if progress:
            progress_end()
        arms.append(assemble_arm(spec, design, matrix, valid, outcomes, stacklevel=3))
    return assemble_trial(spec, arms, relative)


def relative_days(spec: TrialSpec) -> np.ndarray:
    """The plotted days from the start of treatment: from before the chemotherapy (entry
    on the cycle day given, else by a crossing, mostly within two weeks) to the trial's
    follow-up after it, at least 29 days (days past a patient's simulation are NaN)."""
    lead = max(10, *(math.ceil((14.0 if a.entry_day is None or a.entry_below is None else
                                a.entry_day) + a.start_delay) for a in spec.arms))
    end = max(29, math.ceil(spec.follow_up_days))
    return np.arange(-lead * 24, end * 24 + 1) / 24.0


def trial_chunk(spec: TrialSpec, index: int, patients: tuple, keep: int,
                relative: np.ndarray):
    """One chunk of arm ``index``: ``patients`` = (their parameter rows, their indices in
    the arm's cohort) simulated and reduced to endpoints: (screened, screening rows,
    endpoint table or None when nobody enrolled, the courses of up to ``keep`` enrolled
    patients on ``relative`` days or None)."""
    vectors, chosen = patients
    if not chosen.size:
        return 0, (), None, None
    measure = (lambda rows: _observer(spec, index, chosen[rows])) \
        if spec.extra.get("measurement_error") else None
    arm = _simulate_arm(spec, index, spec.arms[index], vectors, chosen, measure)
    screening = tuple(arm.extra.get("screening", ()))
    if arm.n == 0:
        return arm.n_screened, screening, None, None
    table = patient_endpoints(arm, spec.response, spec.visit_every_days,
                              _observer(spec, index, chosen[arm.subjects]),
                              spec.extra.get("composites", ()))
    totals = arm.extra.get("total_dose", {})
    for column, key, _, _ in dose_total_columns(spec):  # 0 in an arm without the drug
        table[column] = np.asarray(totals[key], dtype=float) if key in totals \
            else np.zeros(len(table))
    table["patient"] = chosen[arm.subjects]  # index in the arm's cohort
    if spec.extra.get("subgroups"):
        table["subgroup"] = subgroup_of(spec, vectors[arm.subjects])  # the chunk's rows
    if spec.variability.groups:
        table["population_group"] = population_group(spec, index, table["patient"])
    kept = values_at(arm.times, arm.platelets[:keep], arm.start_time[:keep, None]
                     + relative[None, :], outside=np.nan) if keep > 0 else None
    return arm.n_screened, screening, table, kept


def assemble_arm(spec: TrialSpec, design: ArmDesign, matrix: np.ndarray, valid: np.ndarray,
                 outcomes: list, stacklevel: int = 2):
    """An arm's :func:`trial_chunk` outcomes in patient order -> (patient table, summary
    row, kept courses, screening counts); an arm nobody entered is a clear error, dropped
    draws a warning."""
    tables, kept, screened, screening = [], [], 0, {}
    for n_screened, rows, table, courses in outcomes:
        screened += n_screened
        _count_screening(screening, design.name, rows)
        if table is None:
            continue
        tables.append(table)
        room = KEPT_TRAJECTORIES - sum(len(k) for k in kept)
        if room > 0 and courses is not None:
            kept.append(courses[:room])
    invalid = int(np.sum(~valid))
    if not tables:
        raise NobodyEnrolledError(_nobody_enrolled(spec, design, len(matrix), invalid,
                                                   screening.get(design.name)))
    if not valid.all():
        warnings.warn(_dropped(spec, design, matrix, valid), DroppedPatientsWarning,
                      stacklevel=stacklevel)
    table = pd.concat(tables, ignore_index=True)
    table.insert(0, "arm", design.name)
    short = _short_follow_up(spec, design, table)
    if short:
        warnings.warn(short, ShortFollowUpWarning, stacklevel=stacklevel)
    return table, _summarise(design.name, table, screened + invalid, invalid, spec), kept, \
        screening


def assemble_trial(spec: TrialSpec, arms: list, relative: np.ndarray) -> TrialResult:
    """The trial's result from its arms (:func:`assemble_arm`, in the spec's order) and the
    plotted days ``relative``: the differences and tables every way of running the arms
    (here, or chunked on a cluster: study/distributed.py) shares."""
    frames, summaries, curves, screening = [], [], {}, {}
    for design, (table, summary, kept, counts) in zip(spec.arms, arms):
        frames.append(table)
        summaries.append(summary)
        screening.update(counts)
        curves[design.name] = (relative, np.concatenate(kept) if kept else
                               np.empty((0, relative.size)))
    subjects = pd.concat(frames, ignore_index=True)
    summary = pd.DataFrame(summaries).set_index("arm")
    differences = _paired_differences(spec, subjects) if spec.extra.get("design") == \
        "paired" else _differences(subjects, spec.reference_arm, spec)
    rows = [{"arm": arm, "rule": rule, **counts} for arm, rules in screening.items()
            for rule, counts in rules.items()]
    return TrialResult(spec, subjects, summary, differences, curves,
                       pd.DataFrame(rows, columns=["arm", "rule", "meets", "remaining",
                                                   "screened", "failed"]))


def _simulate_arm(spec: TrialSpec, index: int, design: ArmDesign, vectors: np.ndarray,
                  patients: np.ndarray, measure=None) -> ArmResult:
    """Arm ``index``'s patients (``vectors``, the rows ``patients`` of its cohort) simulated:
    on the trial's chemotherapy course when it has one, else after one chemotherapy."""
    course = spec.extra.get("course")
    levels = _rescue_levels(spec, index, design, patients)
    if course is None:
        arm = simulate_treatment_arm(spec.model, design, vectors, measure=measure,
                                     rescue_below=levels)
    else:
        if design.chemotherapy != course.regimen_text:  # the arm's own chemotherapy
            course = replace(course, regimen=design.chemotherapy)
        rules = spec.extra.get("arm_eligibility", {}).get(design.name,
                                                          spec.extra["eligibility"])
        arm = simulate_course_arm(spec.model, design, course, vectors,
                                  rules, support=design.support,
                                  support_cycles=design.support_cycles,
                                  exposure=_exposure(spec, index, patients), measure=measure,
                                  measure_checks=(lambda rows: _check_observer(
                                      spec, index, patients[rows]))
                                  if spec.extra.get("measurement_error") else None,
                                  rescue_below=levels)
    if levels is not None:  # each enrolled patient's transfusion trigger (patients.csv)
        arm.extra["rescue_below"] = levels[arm.subjects]
    return arm


#: a constant of the stream that draws who is at risk under a two-trigger rescue rule
_AT_RISK_STREAM = 0x7A5C


def _rescue_levels(spec: TrialSpec, index: int, design: ArmDesign,
                   patients: np.ndarray) -> np.ndarray | None:
    """Each patient's rescue trigger under a two-trigger rule (``at_risk_below``), from a
    uniform per patient of a stream seeded by the trial seed and the arm (the first arm in
    a paired design: the same patients are at risk in every arm), read at the patient's
    index, so it does not depend on chunks or threads. None without such a rule."""
    rescue = design.rescue
    if rescue is None or rescue.at_risk_below is None:
        return None
    stream = patient_stream(spec, index)
    patients = np.asarray(patients, dtype=np.int64)
    if not patients.size:
        return rescue.levels(np.empty(0))
    # the stream's uniforms first..last only (one 64-bit output each: advancing the
    # generator by `first` skips exactly the draws of the patients before it), so a chunk
    # costs its own span, not the cohort up to its last patient
    first, last = int(patients.min()), int(patients.max())
    generator = np.random.default_rng([spec.seed, stream, _AT_RISK_STREAM])
    generator.bit_generator.advance(first)
    return rescue.levels(generator.random(last - first + 1)[patients - first])


def _check_observer(spec: TrialSpec, index: int, patients: np.ndarray):
    """With ``measurement_error``, the measurement of the delay rule's re-checks of arm
    ``index``'s ``patients``: ``observe(rows, cycle, counts)`` measures the counts (rows x
    checks) of cycle ``cycle``'s planned day and re-checks with the model's platelet error,
    one draw pair per patient, cycle and check from a stream seeded by the trial seed, arm
    and patient index (the same draw for the screening and the treated course)."""
    error = spec.model.observation[PLATELETS]
    course = spec.extra["course"]
    arm = patient_stream(spec, index)
    draws = np.array([np.random.default_rng([spec.seed, arm, int(patient), 3])
                      .standard_normal((course.cycles, course.checks.size, 2))
                      for patient in patients]).reshape(len(patients), course.cycles,
                                                        course.checks.size, 2)

    def observe(rows, cycle, counts):
        noise = draws[rows, cycle]
        return np.maximum(counts * (1.0 + error.proportional * noise[..., 0])
                          + error.additive * noise[..., 1], 0.0)
    return observe


def _exposure(spec: TrialSpec, index: int, patients: np.ndarray) -> np.ndarray | None:
    """Between-cycle variability: each cycle's chemotherapy exposure factor, log-normal with
    median 1 and the course's ``between_cycle_cv``, from a stream per patient seeded by the
    trial seed, the arm (the first arm in a paired design: the same patients) and the
    patient's index, so it does not depend on chunks or threads. None without it."""
    cv = spec.extra.get("between_cycle_cv", 0.0)
    if not cv:
        return None
    arm = patient_stream(spec, index)
    omega = math.sqrt(math.log1p(cv * cv))
    cycles = spec.extra["course"].cycles
    return np.exp(omega * np.array([
        np.random.default_rng([spec.seed, arm, int(patient), 2]).standard_normal(cycles)
        for patient in patients]).reshape(len(patients), cycles))


def _count_screening(screening: dict, arm: str, rows) -> None:
    """Add a chunk's screening counts per eligibility rule (``rows``) to
    ``screening[arm]``."""
    for row in rows:
        total = screening.setdefault(arm, {}).setdefault(
            row["rule"], {"meets": 0, "remaining": 0, "screened": 0, "failed": 0})
        for key in ("meets", "remaining", "screened", "failed"):
            total[key] += row[key]
        if "largest_fall_pct" in row:  # a fall rule: the largest fall of any chunk
            total["largest_fall_pct"] = max(total.get("largest_fall_pct", -math.inf),
                                            row["largest_fall_pct"])


class CycleLengthWarning(UserWarning):
    """A course whose cycle length lies outside those of the fit's course studies, at the
    fit's typical damage per cycle (a regimen's depth not anchored or stated)."""


def _warn_cycle_length(document, checked: dict, fit: str) -> None:
    """Warn when a course's ``cycle_days`` lies outside the cycle lengths of the fit's
    course studies while every study-level parameter of the fit (the regimen's depth) keeps
    the fit's typical value: the damage per cycle of those regimens, given at another
    interval (a user test gave 14-day FOLFOX cycles the fit's damage, about four times
    FOLFOX's, 2026-12-07)."""
    from plateletpd.model.library import fit_course_cycle_days, load_fit_record

    written = checked["chemotherapy"]["cycle_days"]
    lengths = written if isinstance(written, list) else [written]
    stated = set(checked["population"]["typical"]) \
        | set(checked["population"]["study_parameters"])
    depth = [name for name in load_fit_record(fit).get("study_effects", {})
             if name not in stated]
    known = fit_course_cycle_days(fit)
    outside = [float(days) for days in lengths
               if not known[0] - 1e-9 <= float(days) <= known[-1] + 1e-9] if known else []
    if not depth or not outside:
        return
    days = outside[0]  # a per-cycle list: its first length outside the range
    span = f"{known[0]:g}" if len(known) == 1 else f"{known[0]:g}-{known[-1]:g}"
    which = "" if len(lengths) == 1 else f" (the list's {days:g}-day cycles)"
    warnings.warn(
        f"{document.path}: [chemotherapy] cycle_days = {days:g}{which} is outside the cycle "
        f"lengths of the fit's course studies ({span} days), and each cycle gets the fit's "
        f"typical {', '.join(depth)} (a damage per cycle of those regimens): given every "
        f"{days:g} days that is {known[0] / days:.2g} to {known[-1] / days:.2g} times their "
        f"dose intensity, unless the regimen's dose already scales it. Anchor the "
        f"regimen's depth to its published incidence of a low count ([population] anchor, "
        f"docs/trial_files.md 'Anchoring a regimen's depth to its published incidence') or "
        f"state it under [population] typical", CycleLengthWarning, stacklevel=3)


class NoVariabilityWarning(UserWarning):
    """A trial whose virtual patients are all alike: no [population] cv in the file and none
    from its fit."""


class ShortFollowUpWarning(UserWarning):
    """Enrolled patients followed for fewer days of treatment than the response is judged
    over (a trial without a course, whose follow-up counts from the chemotherapy)."""


def _short_follow_up(spec: TrialSpec, design: ArmDesign, table: pd.DataFrame) -> str:
    """Without a [chemotherapy] course ``follow_up_days`` counts from the chemotherapy: the
    warning for an arm whose patients start treatment too late to be followed to
    ``by_day`` (their response judged over fewer visits, their later counts empty); ""
    when every patient is followed that far."""
    if spec.extra.get("course") is not None or "start_day" not in table:
        return ""
    by_day = spec.response["by_day"]
    start = table.start_day.to_numpy(float)
    short = start + by_day > spec.follow_up_days + 1e-9
    if not short.any():
        return ""
    need = math.ceil(float(np.nanmax(start)) + by_day)
    return (f"trial {spec.name}, arm {design.name!r}: {int(short.sum())} of {len(table)} "
            f"enrolled patients are followed for fewer than by_day = {by_day:g} days of "
            f"treatment (without a [chemotherapy] course, follow_up_days = "
            f"{spec.follow_up_days:g} counts from the chemotherapy, and treatment starts on "
            f"days {np.nanmin(start):.1f}-{np.nanmax(start):.1f} after it): their response is "
            f"judged over fewer visits and their counts after the follow-up are empty; raise "
            f"[trial] follow_up_days to at least {need}")


#: at most this share of an arm's drawn patients dropped with the fit's own CVs gets the
#: short warning (a few patients in the tails of the spread are expected)
SMALL_DROPPED_SHARE = 0.01


class DroppedPatientsWarning(UserWarning):
    """Drawn virtual patients left out of an arm: parameters outside the model's bounds."""


def _dropped(spec: TrialSpec, design: ArmDesign, matrix: np.ndarray,
             valid: np.ndarray) -> str:
    """The warning for an arm's patients dropped before screening, naming the parameters."""
    model = spec.model
    entries = [*model.parameters.values(), *model.covariates.values()]
    outside = [f"{e.name} outside [{e.lower:g}, {e.upper:g}]" for j, e in enumerate(entries)
               if np.any(~valid & ~((matrix[:, j] >= e.lower) & (matrix[:, j] <= e.upper))
                         & ~np.isnan(matrix[:, j]))]
    dropped = int(np.sum(~valid))
    if spec.extra.get("cv_from_fit") and dropped <= SMALL_DROPPED_SHARE * len(matrix):
        # the fit's own spread leaves a few patients in its tails outside the bounds:
        # expected, and the long advice below would send the user chasing nothing
        return (f"trial {spec.name}, arm {design.name!r}: {dropped} of {len(matrix)} drawn "
                f"virtual patients ({100.0 * dropped / len(matrix):.2g}%) dropped, in the "
                f"tails of the fit's spread ({'; '.join(outside) or 'not finite'}); counted "
                f"as screened, never enrolled (summary.csv invalid_parameters)")
    return (f"trial {spec.name}, arm {design.name!r}: {dropped} of "
            f"{len(matrix)} drawn virtual patients dropped, their parameters outside the "
            f"model's bounds ({'; '.join(outside) or 'not finite'}); they count as screened, "
            f"never enrolled (summary.csv invalid_parameters), in every arm alike, so the "
            f"arms draw from one population (a drug's parameter applies to an arm without "
            f"the drug too); "
            + ("the CVs are the fit's (the file sets no [population] cv): a few patients "
               "in the tails of a wide spread are expected; set [population] cv to change "
               "them, or check the bounds in the model file"
               if spec.extra.get("cv_from_fit") else
               "lower the CVs under [population] cv or check the bounds in the model file"))


def _nobody_enrolled(spec: TrialSpec, design: ArmDesign, screened: int, invalid: int,
                     rules: dict | None = None) -> str:
    """Why an arm has no patient, and what to change."""
    where = f"{spec.path}: arm {design.name!r} enrolled none of the {screened} virtual " \
            f"patients screened"
    if invalid == screened:
        return (f"{where}: every patient's drawn parameters left the model's bounds; lower "
                f"the CVs under [population] cv")
    if spec.extra.get("course") is not None:
        counts = "; ".join(f"{rule}: {c['meets']} meet it, {c['remaining']} remain"
                           for rule, c in (rules or {}).items())
        excluding = next((rule for rule, c in (rules or {}).items() if c["remaining"] == 0),
                         None)
        fall = (rules or {}).get(excluding, {}).get("largest_fall_pct")
        return (f"{where} ({invalid} with parameters outside the model's bounds): "
                + (f"the [[eligibility]] rule \"{excluding}\" excluded everyone left "
                   f"({counts}); " if excluding else "every simulation failed; ")
                + (f"the largest fall it judged in any screened patient was {fall:.1f}% "
                   f"(the count falls no faster than platelets leave the blood, so a large "
                   f"fall within a few days may be out of the model's reach); "
                   if fall is not None else "")
                + "loosen the rule, lengthen [chemotherapy] follow_up_days, give more "
                  "chemotherapy, or screen more patients (--n)")
    if design.entry_below is None:
        return (f"{where} ({invalid} with parameters outside the model's bounds): there is "
                f"no entry rule ([enrolment] entry_below = false), so every simulation of "
                f"the chemotherapy failed; check the model and parameters with plateletpd "
                f"simulate")
    day = f" on cycle day {design.entry_day:g}" if design.entry_day is not None else (
        f" at a routine count (every {design.screen_every_days:g} days)"
        if design.screen_every_days is not None else "")
    if design.entry_between is not None:
        low, high = design.entry_between
        return (f"{where} ({invalid} with parameters outside the model's bounds): nobody's "
                f"count{day} below entry_below = {design.entry_below:g} within "
                f"follow_up_days = {design.follow_up_days:g} lay in its entry_between "
                f"[{low:g}, {high:g}); widen the band, give more chemotherapy (a count "
                f"found low needs a deep nadir), or screen more patients (--n)")
    return (f"{where} ({invalid} with parameters outside the model's bounds): nobody's count "
            f"fell below [enrolment] entry_below = {design.entry_below:g}{day} within "
            f"follow_up_days = {design.follow_up_days:g}; raise entry_below, lengthen the "
            f"follow-up, give more chemotherapy, or screen more patients (--n)")


def _mean_interval(values: np.ndarray, mean: float, half: float) -> tuple[float, float]:
    """The normal-approximation 95% interval of a mean, its lower end never below 0 for a
    quantity that cannot be negative (a user test, 2026-12-04: a mean of transfusion counts
    had the lower end -0.0019)."""
    lower = mean - half
    if values.size and float(np.min(values)) >= 0.0 and lower < 0.0:
        lower = 0.0
    return lower, mean + half


def _estimate(name: str, value: float, lower: float, upper: float) -> dict:
    """An estimate and its 95% interval as three numeric columns: NAME, NAME_lower,
    NAME_upper (analysis-ready; :func:`arm_table` formats them as text for printing)."""
    return {name: value, f"{name}_lower": lower, f"{name}_upper": upper}


def _summarise(name: str, table: pd.DataFrame, screened: int, invalid: int,
               spec: TrialSpec | None = None) -> dict:
    """One arm's summary row; its columns are described by :func:`summary_columns`."""
    n = len(table)
    responders = int(table.responder.sum()) if n else 0
    low, high = binomial_interval(responders, n)
    row = {"arm": name, "screened": screened, "enrolled": n, "invalid_parameters": invalid,
           "at_threshold_at_start": int(table.at_threshold_at_start.sum()),
           **_estimate("response_pct", 100 * responders / n if n else math.nan, 100 * low,
                       100 * high)}
    for level in RECOVERY_LEVELS[::-1]:  # already >= level at day 0: no time (NaN), left out
        curve = kaplan_meier(table[f"days_to_{level}"], table[f"reached_{level}"])
        row.update(_estimate(f"median_days_to_{level}", curve.median(),
                             *curve.median_interval()))
    row["transfused_pct"] = 100 * float(np.mean(table.transfusions > 0)) if n else math.nan
    row["titrated_pct"] = 100 * float(np.mean(table.titrated)) if n else math.nan
    for column in (e.name for e in trial_endpoints() if e.summary == "mean"):
        # over the patients with a value (a count after a short follow-up, a time from
        # <= 50 for a patient never that low: empty)
        values = table[column].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        mean = float(np.mean(values)) if values.size else math.nan
        half = Z95 * float(np.std(values, ddof=1)) / math.sqrt(values.size) \
            if values.size > 1 else math.nan
        row.update(_estimate(f"mean_{column}", mean, *_mean_interval(values, mean, half)))
    for column, kind in _course_summary(spec):
        values = table[column].to_numpy(dtype=float)
        if kind == "pct":  # over the patients with a value (a composite's `among`)
            hits, judged = int(np.sum(values > 0)), int(np.sum(np.isfinite(values)))
            low, high = binomial_interval(hits, judged)
            row.update(_estimate(f"{column}_pct", 100 * hits / judged if judged
                                 else math.nan, 100 * low, 100 * high))
        elif kind.startswith("km"):
            # "km": days to the next cycle; "km:flag": censored where the flag is false;
            # "km*": every value an event (a median with its interval among those with one)
            event = (np.isfinite(values) if kind == "km*" else
                     table["chemotherapy_resumed"].to_numpy() if kind == "km" else
                     np.nan_to_num(table[kind[3:]].to_numpy(dtype=float)) > 0)
            curve = kaplan_meier(values, event)
            row.update(_estimate(f"median_{column}", curve.median(), *curve.median_interval()))
        else:
            finite = values[np.isfinite(values)]
            mean = float(np.mean(finite)) if finite.size else math.nan
            half = Z95 * float(np.std(finite, ddof=1)) / math.sqrt(finite.size) \
                if finite.size > 1 else math.nan
            row.update(_estimate(f"mean_{column}", mean, *_mean_interval(finite, mean, half)))
    return row


def _course_summary(spec: TrialSpec | None) -> list[tuple[str, str]]:
    """(column, how it is summarised: "pct" of patients, "mean", or "km" median) for the
    course and composite columns of a trial's summary."""
    if spec is None:
        return []
    course = spec.extra.get("course")
    columns = []
    if course is not None:
        for name, unit, _ in course_columns(course.cycles):
            if name.startswith("cycle") and (name.endswith(("_day", "_delay_days", "_dose",
                                                            "_auc_21_days"))
                                             or "_days_below_" in name
                                             or name == "next_cycle_delay_days"):
                continue  # per patient only (a data_cycle or delay row reads them)
            columns.append((name, "pct" if unit == "flag" else "km"
                            if name == "days_to_next_cycle" else "mean"))
    columns += [(composite["name"], "pct") for composite in spec.extra.get("composites", ())]
    columns += [(column, "pct") for _, _, column in visit_levels(spec.response)]
    columns += [(column, "pct") for _, column in response_days(spec.response)]
    columns += [(column, "mean") for _, column in visit_count_days(spec.response)]
    if spec.response.get("sustained_share") is not None:
        columns.append((SUSTAINED, "pct"))
    columns += [(column, kind) for column, _, kind, _ in response_extras(spec.response)]
    columns += [(column, "mean") for column, _, _, _ in dose_total_columns(spec)]
    return columns


def _estimate_columns(name: str, unit: str, text: str, interval: str) -> list:
    """The dictionary rows of an :func:`_estimate`: the value and its interval's ends."""
    return [(name, unit, text),
            (f"{name}_lower", unit, f"lower end of the 95% {interval} interval of {name}"),
            (f"{name}_upper", unit, f"upper end of the 95% {interval} interval of {name}")]


def summary_columns(spec: TrialSpec | None = None) -> list[tuple[str, str, str]]:
    """(column, unit, description) of every column of an arm summary (``summary.csv``,
    after ``arm``), in order; an estimate's 95% interval follows it as two columns; with a
    ``spec``, its course and composite columns too."""
    estimate = _estimate_columns
    columns = [
        ("screened", "patients", "virtual patients drawn for the arm (invalid ones included)"),
        ("enrolled", "patients", "patients who met the enrolment rule (the denominator)"),
        ("invalid_parameters", "patients", "drawn patients dropped before screening: "
         "parameters outside the model's bounds"),
        ("at_threshold_at_start", "patients", "enrolled patients already at or above the "
         "response threshold at day 0 (counted as non-responders)"),
        *estimate("response_pct", "%", "responders among the enrolled", "exact binomial "
                  "(Clopper-Pearson)")]
    for level in RECOVERY_LEVELS[::-1]:
        columns += estimate(f"median_days_to_{level}", "days", f"Kaplan-Meier median of "
                            f"days_to_{level} (patients below {level} at day 0)",
                            "Brookmeyer-Crowley")
    columns += [("transfused_pct", "%", "patients given at least one rescue transfusion"),
                ("titrated_pct", "%", "patients whose dose a titration rule changed")]
    for endpoint in (e for e in trial_endpoints() if e.summary == "mean"):
        columns += estimate(f"mean_{endpoint.name}", endpoint.unit or endpoint.kind,
                            f"mean of {endpoint.name} over the patients with a value: "
                            f"{endpoint.description}", "normal")
    described = {name: text for name, _, text in (course_columns(
        spec.extra["course"].cycles) if spec is not None and spec.extra.get("course") else [])}
    described.update({column: f"PLT >= {level:g} at the visit of day {day:g}"
                      for level, day, column in (visit_levels(spec.response)
                                                 if spec is not None else [])})
    described.update({column: f"responders by day {day:g} (the response rule, visits on "
                              f"days 1 to {day:g})"
                      for day, column in (response_days(spec.response)
                                          if spec is not None else [])})
    if spec is not None and spec.response.get("sustained_share") is not None:
        described[SUSTAINED] = sustained_text(spec.response, spec.visit_every_days)
    described.update({column: text for column, _, _, text in (
        response_extras(spec.response) if spec is not None else [])})
    described.update({column: text for column, _, _, text in dose_total_columns(spec)})
    described.update({column: _count_text(day) for day, column in (
        visit_count_days(spec.response) if spec is not None else [])})
    described.update({c["name"]: c["description"] or composite_text(c, among=False)
                      for c in (spec.extra.get("composites", ()) if spec is not None
                                else ())})
    for name, kind in _course_summary(spec):
        if kind == "pct":
            columns += estimate(f"{name}_pct", "%", f"patients with {name}: {described[name]}",
                                "exact binomial (Clopper-Pearson)")
        elif kind.startswith("km"):
            columns += estimate(f"median_{name}", "days", f"Kaplan-Meier median of {name}"
                                + (" (among the patients with a value)" if kind == "km*"
                                   else ""), "Brookmeyer-Crowley")
        else:
            units = {column: unit for column, _, unit, _ in dose_total_columns(spec)}
            unit = "x10^9/L" if name.startswith("plt_day_") else units.get(name, "")
            columns += estimate(f"mean_{name}", unit, f"mean of {name}: {described[name]}",
                                "normal")
    return columns


def difference_means(spec: TrialSpec | None) -> list[tuple[str, str]]:
    """(patient column, what it is) of the counts differences.csv compares as means besides
    the day-14 count: the nadir and the counts at ``[response] at_visits`` days (a user
    test, 2026-12-05, wanted the nadir and the day-5/7/10 means of a comparative abstract)."""
    means = [("nadir", "nadir (lowest count over follow-up)")]
    if spec is not None:
        means += [(column, f"the count at the visit of day {day:g}")
                  for day, column in visit_count_days(spec.response)]
        # a course's cycles with support in some arm: their own nadirs (a user test,
        # 2026-12-07: with support in cycle 2 only, the trial's day-0 nadir is cycle 1's,
        # alike in every arm by design, and nothing compared the supported cycle)
        course = spec.extra.get("course")
        supported = sorted({c for design in spec.arms for c in design.support_cycles})
        if course is not None:
            means += [(f"cycle{c}_nadir", f"cycle {c}'s nadir (from its chemotherapy to the "
                       f"next cycle's)") for c in supported if c <= course.cycles]
    return means


def difference_shares(spec: TrialSpec | None) -> list[tuple[str, str]]:
    """(patient column, what it is) of yes/no outcomes differences.csv compares besides the
    response: the share transfused, where an arm has a rescue rule."""
    if spec is not None and any(design.rescue is not None for design in spec.arms):
        return [("transfusions", "transfused at least once (rescue rule)")]
    return []


def difference_flags(response: dict) -> list[tuple[str, str]]:
    """(flag column, what it is) of the trial's own response endpoints that differences.csv
    compares between arms besides the response: counts at visits, responses by more days,
    tiers, a sustained response."""
    flags = [(column, f"PLT >= {level:g} at the visit of day {day:g}")
             for level, day, column in visit_levels(response)]
    flags += [(column, f"responders by day {day:g}") for day, column in
              response_days(response)]
    flags += [(f"responder_at_{level:g}", f"responders at {level:g} by day "
               f"{response['by_day']:g}") for level in response.get("also_thresholds") or []]
    if response.get("sustained_share") is not None:
        flags.append((SUSTAINED, "sustained responders"))
    return flags


def difference_composites(spec: TrialSpec | None) -> list[tuple[str, str]]:
    """(flag column, what it is) of the trial's composite endpoints, which differences.csv
    compares between arms like the response flags; a composite judged ``among`` some
    patients is compared among them (its empty values left out)."""
    if spec is None:
        return []
    return [(c["name"], c["description"] or composite_text(c))
            for c in spec.extra.get("composites", ())]


def _versus(spec: TrialSpec | None, arm: str, reference: str) -> str:
    """The arm ``arm`` is compared with: its own ``versus`` when the trial file gives one
    and that arm was run (a sweep or a subset of arms may leave it out), else ``reference``."""
    versus = (spec.extra.get("versus") or {}).get(arm) if spec is not None else None
    names = {design.name for design in spec.arms} if spec is not None else set()
    return versus if versus in names else reference


def _differences(subjects: pd.DataFrame, reference: str,
                 spec: TrialSpec | None = None) -> pd.DataFrame:
    """Each arm minus the reference: response (percentage points), day-14 count and the
    trial's own response flags (:func:`difference_flags`, percentage points, Wald)."""
    rows = []
    flags = difference_flags(spec.response) + difference_composites(spec) \
        if spec is not None else []
    for name, table in subjects.groupby("arm", sort=False):
        versus = _versus(spec, name, reference)
        base = subjects[subjects.arm == versus]
        if name == versus or table.empty or base.empty:
            continue
        p1, p0, n1, n0 = table.responder.mean(), base.responder.mean(), len(table), len(base)
        se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
        d14 = table.plt_day_14.mean() - base.plt_day_14.mean()
        se14 = math.sqrt(table.plt_day_14.var() / n1 + base.plt_day_14.var() / n0)
        row = {"arm": name, "versus": versus,
               **_estimate("response_difference_pct_points", 100 * (p1 - p0),
                           100 * (p1 - p0 - Z95 * se), 100 * (p1 - p0 + Z95 * se)),
               **_estimate("plt_day_14_difference", d14, d14 - Z95 * se14,
                           d14 + Z95 * se14)}
        for column, _ in flags:  # a conditional composite: among its judged patients
            one, zero = table[column].astype(float).dropna(), base[column].astype(float).dropna()
            q1, q0 = one.mean(), zero.mean()
            se_flag = math.sqrt(q1 * (1 - q1) / len(one) + q0 * (1 - q0) / len(zero)) \
                if len(one) and len(zero) else math.nan
            row.update(_estimate(f"{column}_difference_pct_points", 100 * (q1 - q0),
                                 100 * (q1 - q0 - Z95 * se_flag),
                                 100 * (q1 - q0 + Z95 * se_flag)))
        for column, _ in difference_means(spec):
            one, zero = table[column].astype(float).dropna(), base[column].astype(float).dropna()
            mean = one.mean() - zero.mean()
            half = Z95 * math.sqrt(one.var() / len(one) + zero.var() / len(zero)) \
                if len(one) > 1 and len(zero) > 1 else math.nan
            row.update(_estimate(f"{column}_difference", mean, mean - half, mean + half))
        for column, _ in difference_shares(spec):
            q1 = float((table[column].astype(float) > 0).mean())
            q0 = float((base[column].astype(float) > 0).mean())
            se_share = math.sqrt(q1 * (1 - q1) / n1 + q0 * (1 - q0) / n0)
            row.update(_estimate(f"{column}_share_difference_pct_points", 100 * (q1 - q0),
                                 100 * (q1 - q0 - Z95 * se_share),
                                 100 * (q1 - q0 + Z95 * se_share)))
        rows.append(row)
    return pd.DataFrame(rows)


def _paired_differences(spec: TrialSpec, subjects: pd.DataFrame) -> pd.DataFrame:
    """Each arm minus the reference in the same patients (``design = "paired"``): the mean
    per-patient difference in response (percentage points; normal interval on the paired
    differences, the Wald interval for paired proportions) and in the day-14 count (t
    interval), and the discordant pairs. Every arm must have enrolled the same patients."""
    from scipy import stats

    rows = []
    for name, table in subjects.groupby("arm", sort=False):
        versus = _versus(spec, name, spec.reference_arm)
        reference = subjects[subjects.arm == versus].set_index("patient")
        table = table.set_index("patient")
        only = set(table.index) ^ set(reference.index)
        if only:
            raise TrialSpecError(
                f"{spec.path}: design = \"paired\" needs every arm to enrol the same "
                f"patients, but arm {name!r} ({len(table)} enrolled) and the arm it is "
                f"compared with, {versus!r} ({len(reference)}), differ in {len(only)} (patients "
                f"{sorted(only)[:5]}...); entry is judged before treatment, so give the arms "
                f"the same chemotherapy and enrolment rule, or use design = \"parallel\"")
        if name == versus:
            continue
        base = reference.loc[table.index]
        response = table.responder.astype(float) - base.responder.astype(float)
        n = len(response)
        mean = float(response.mean())
        half = Z95 * float(response.std(ddof=0)) / math.sqrt(n)
        day14 = (table.plt_day_14 - base.plt_day_14).dropna()
        mean14 = float(day14.mean()) if len(day14) else math.nan
        half14 = float(stats.t.ppf(0.975, len(day14) - 1) * day14.std(ddof=1)
                       / math.sqrt(len(day14))) if len(day14) > 1 else math.nan
        row = {"arm": name, "versus": versus,
               **_estimate("response_difference_pct_points", 100 * mean,
                           100 * (mean - half), 100 * (mean + half)),
               **_estimate("plt_day_14_difference", mean14, mean14 - half14,
                           mean14 + half14),
               "paired_patients": n, "discordant_pairs": int((response != 0).sum()),
               "responded_in_arm_only": int((response > 0).sum())}
        for column, _ in difference_flags(spec.response) + difference_composites(spec):
            # the same patients: paired (a conditional composite: those judged in both)
            change = (table[column].astype(float) - base[column].astype(float)).dropna()
            centre = float(change.mean()) if len(change) else math.nan
            width = Z95 * float(change.std(ddof=0)) / math.sqrt(len(change)) \
                if len(change) else math.nan
            row.update(_estimate(f"{column}_difference_pct_points", 100 * centre,
                                 100 * (centre - width), 100 * (centre + width)))
        for column, _ in difference_means(spec):  # paired t, as the day-14 count
            change = (table[column].astype(float) - base[column].astype(float)).dropna()
            centre = float(change.mean()) if len(change) else math.nan
            width = float(stats.t.ppf(0.975, len(change) - 1) * change.std(ddof=1)
                          / math.sqrt(len(change))) if len(change) > 1 else math.nan
            row.update(_estimate(f"{column}_difference", centre, centre - width,
                                 centre + width))
        for column, _ in difference_shares(spec):
            change = (table[column].astype(float) > 0).astype(float) - \
                (base[column].astype(float) > 0).astype(float)
            centre = float(change.mean())
            width = Z95 * float(change.std(ddof=0)) / math.sqrt(n)
            row.update(_estimate(f"{column}_share_difference_pct_points", 100 * centre,
                                 100 * (centre - width), 100 * (centre + width)))
        rows.append(row)
    return pd.DataFrame(rows)


# ====================================================================== outputs
#: differences.csv's columns after ``arm`` and ``versus`` (:func:`_differences`)
_DIFFERENCE_COLUMNS = [
    *_estimate_columns("response_difference_pct_points", "percentage points", "response_pct "
                       "of the arm minus that of the reference arm", "normal (Wald)"),
    *_estimate_columns("plt_day_14_difference", "x10^9/L", "mean plt_day_14 of the arm minus "
                       "that of the reference arm", "normal (Welch)")]
#: differences.csv's columns with design = "paired" (:func:`_paired_differences`)
_PAIRED_DIFFERENCE_COLUMNS = [
    *_estimate_columns("response_difference_pct_points", "percentage points", "mean over "
                       "the same patients of responder in the arm (1/0) minus responder in "
                       "the reference arm, x100", "paired normal (Wald for paired "
                       "proportions: sd of the per-patient differences / sqrt(n))"),
    *_estimate_columns("plt_day_14_difference", "x10^9/L", "mean over the same patients of "
                       "plt_day_14 in the arm minus that in the reference arm", "paired t"),
    ("paired_patients", "patients", "patients enrolled in both arms (all: the same ones)"),
    ("discordant_pairs", "patients", "patients who responded in exactly one of the two arms"),
    ("responded_in_arm_only", "patients", "discordant patients responding in the arm only")]


def data_dictionary(replicates: bool = False, paired: bool = False,
                    spec: TrialSpec | None = None) -> pd.DataFrame:
    """Every column of a trial folder's tables: file, column, unit, description (written as
    ``data_dictionary.csv``; ``patients.parquet`` has the columns of ``patients.csv``)."""
    arm = ("arm", "", "the arm's name ([[arms]] name)")
    rows = [("patients.csv", *arm),
            ("patients.csv", "patient", "", "index of the patient in the arm's drawn cohort "
             "(plateletpd.study.trial.patient re-simulates it)")]
    rows += [("patients.csv", e.name, e.unit or e.kind, e.description)
             for e in trial_endpoints()]
    if spec is not None and spec.extra.get("course") is not None:
        rows += [("patients.csv", *c) for c in course_columns(spec.extra["course"].cycles)]
        rows += [("screening.csv", *arm), ("screening.csv", "rule", "", "an [[eligibility]] "
                  "rule in words"),
                 ("screening.csv", "meets", "patients", "screened patients meeting the rule"),
                 ("screening.csv", "remaining", "patients", "patients meeting it and every "
                  "rule above it"), ("screening.csv", "screened", "patients", "patients "
                  "simulated (valid parameters)"), ("screening.csv", "failed", "patients",
                  "screening simulations that failed (never eligible)")]
    for level, day, column in (visit_levels(spec.response) if spec is not None else []):
        rows.append(("patients.csv", column, "flag", f"the count at the visit of day {day:g} "
                     f"(measured with measurement_error) is at least {level:g}"))
    for day, column in (response_days(spec.response) if spec is not None else []):
        rows.append(("patients.csv", column, "flag", f"a visit on days 1 to {day:g} met the "
                     f"response rule (not a patient at or above the threshold at day 0)"))
    for day, column in (visit_count_days(spec.response) if spec is not None else []):
        rows.append(("patients.csv", column, "x10^9/L", _count_text(day)))
    for column, unit, _, text in (response_extras(spec.response) if spec is not None
                                  else []):
        rows.append(("patients.csv", column, unit, text))
    rows += [("patients.csv", column, unit, text) for column, _, unit, text in
             dose_total_columns(spec)]
    if spec is not None and spec.response.get("sustained_share") is not None:
        rows.append(("patients.csv", SUSTAINED, "flag",
                     sustained_text(spec.response, spec.visit_every_days)))
    for composite in (spec.extra.get("composites", ()) if spec is not None else ()):
        rows.append(("patients.csv", composite["name"], "flag", composite["description"] or
                     composite_text(composite)))
    if spec is not None and spec.extra.get("subgroups"):
        groups = spec.extra["subgroups"]
        rows.append(("patients.csv", "subgroup", "", f"[subgroups] label from "
                     f"{groups['covariate']} (edges {groups['edges']})"))
        rows += [("summary_by_subgroup.csv", *arm), ("summary_by_subgroup.csv", "subgroup",
                                                     "", "the [subgroups] label")]
        rows += [("summary_by_subgroup.csv", *c) for c in summary_columns(spec)
                 if c[0] not in ("screened", "invalid_parameters")]
    if spec is not None and spec.variability.groups:
        text = ("[[population.mixture]] group the patient was drawn in: "
                + ", ".join(g.name for g in spec.variability.groups)
                + f", or {spec.variability.labels[0]!r} (in none)")
        rows.append(("patients.csv", "population_group", "", text))
        rows += [("summary_by_population_group.csv", *arm),
                 ("summary_by_population_group.csv", "population_group", "", text)]
        rows += [("summary_by_population_group.csv", *c) for c in summary_columns(spec)
                 if c[0] not in ("screened", "invalid_parameters")]
    rows += [("summary.csv", *arm)] + [("summary.csv", *c) for c in summary_columns(spec)]
    rows += [("differences.csv", *arm), ("differences.csv", "versus", "", "the arm it is "
                                          "compared with: its [[arms]] versus, else the "
                                          "reference arm")]
    rows += [("differences.csv", *c) for c in (_PAIRED_DIFFERENCE_COLUMNS if paired else
                                               _DIFFERENCE_COLUMNS)]
    for column, text in difference_means(spec):
        rows += [("differences.csv", *c) for c in _estimate_columns(
            f"{column}_difference", "x10^9/L", f"mean {text} in the arm minus that in the "
            f"reference arm" + (" (the same patients)" if paired else ""),
            "paired t" if paired else "normal (Welch)")]
    for column, text in difference_shares(spec):
        rows += [("differences.csv", *c) for c in _estimate_columns(
            f"{column}_share_difference_pct_points", "percentage points",
            f"share {text} in the arm minus that in the reference arm" + (
                " (the same patients)" if paired else ""),
            "paired normal" if paired else "normal (Wald)")]
    for column, text in (difference_flags(spec.response) + difference_composites(spec)
                         if spec is not None else []):
        rows += [("differences.csv", *c) for c in _estimate_columns(
            f"{column}_difference_pct_points", "percentage points",
            f"{text}: share in the arm minus that in the reference arm" + (
                " (the same patients)" if paired else ""),
            "normal (paired)" if paired else "normal (Wald)")]
    if replicates:
        rows += [("replicates.csv", "replicate", "", "replicate trial (0, 1, ...)"),
                 ("replicates.csv", "seed", "", "the replicate's seed, derived from the "
                  "trial's"), ("replicates.csv", *arm)]
        rows += [("replicates.csv", *c) for c in summary_columns(spec)]
    table = pd.DataFrame(rows, columns=["file", "column", "unit", "description"])
    if spec is not None and spec.response.get("day0") == "entry":
        # day 0 is the enrolment day here: "after the start of treatment" would be wrong
        # for every visit count and the baseline (a sweep user test, 2026-12-07)
        table["description"] = table["description"].str.replace(
            "the start of treatment", "day 0 (enrolment: [response] day0 = \"entry\")",
            regex=False)
    return table


def write_trial(result: TrialResult, folder: Path,
                replicates: pd.DataFrame | None = None,
                run_warnings: tuple[str, ...] | list[str] = (),
                power: pd.DataFrame | None = None) -> list[Path]:
    """Per-patient table, summaries, plots, report, provenance (and ``replicates.csv``) as one
    folder that appears whole or not at all (:func:`plateletpd.io.files.atomic_folder`).
    ``run_warnings``: the text of the warnings the run gave (the report and provenance
    list them)."""
    spec = result.spec
    folder = Path(folder)
    with atomic_folder(folder) as staging:
        tables = [("patients.csv", result.subjects, False), ("summary.csv", result.summary, True),
                  ("differences.csv", result.differences, False)]
        if replicates is not None:
            tables.append(("replicates.csv", replicates, False))
        if power is not None:
            tables.append(("power.csv", power, False))
        atomic_write(staging / "patients.parquet",
                     lambda p: result.subjects.to_parquet(p, index=False))
        if spec.extra.get("course") is not None:
            tables.append(("screening.csv", result.screening, False))
        if spec.extra.get("subgroups"):
            tables.append(("summary_by_subgroup.csv", subgroup_summary(result), False))
        if spec.variability.groups:
            tables.append(("summary_by_population_group.csv",
                           subgroup_summary(result, "population_group"), False))
        dictionary = data_dictionary(replicates is not None,
                                     spec.extra.get("design") == "paired", spec)
        if power is not None:
            dictionary = pd.concat([dictionary, pd.DataFrame(
                [("power.csv", *column) for column in POWER_COLUMNS],
                columns=dictionary.columns)], ignore_index=True)
        tables.append(("data_dictionary.csv", dictionary, False))
        for name, table, index in tables:
            atomic_write(staging / name, lambda p, t=table, i=index: t.to_csv(p, index=i))
        plots = _plots(result, staging)
        record = trial_provenance(spec)
        record["warnings"] = list(run_warnings)
        write_json(staging / "provenance.json", record)
        write_text(staging / "report.md", _report(result, record))
    return [folder / name for name in ("patients.parquet", *(t[0] for t in tables))] + \
        [folder / p.name for p in plots] + [folder / "provenance.json", folder / "report.md"]


def trial_provenance(spec: TrialSpec) -> dict:
    """Where a trial's result came from: versions, the model's identity and parameter
    values, the seed, the trial file (or "trial built in code") and the design itself
    (arms, response rule, population, enrolment), so a trial built in code can be rebuilt
    from its record."""
    from dataclasses import asdict

    from plateletpd.population.variability import cv_of_eta_sd

    return provenance(spec.model, seed=spec.seed, trial=spec.path,
                      # the fit as the trial names it ("default", a bundled fit, a folder,
                      # "none"), as simulate()'s record has it (a Python-API user test)
                      fit=spec.extra.get("fit"),
                      fit_sha256=_fit_hash(spec),
                      parameters_from=spec.parameters_from,
                      subjects_per_arm=spec.subjects_per_arm,
                      parameters=dict(zip(spec.model.parameter_names,
                                          [p.value for p in spec.model.parameters.values()])),
                      design={"follow_up_days": spec.follow_up_days,
                              "visit_every_days": spec.visit_every_days,
                              "allocation": spec.extra.get("allocation", "not stated"),
                              "reference_arm": spec.reference_arm,
                              "covariates": dict(spec.covariates),
                              "between_patient_cv": {
                                  name: cv_of_eta_sd(float(np.sqrt(variance)), transform)
                                  for name, transform, variance in zip(
                                      spec.variability.names, spec.variability.transforms,
                                      np.diag(spec.variability.covariance))},
                              **({"population_mixture": [
                                  g.record() for g in spec.variability.groups]}
                                 if spec.variability.groups else {}),
                              "response": {key: (list(value) if isinstance(value, tuple)
                                                 else value)
                                           for key, value in spec.response.items()},
                              "arms": [_as_lists(asdict(design)) for design in spec.arms]})


def _fit_hash(spec: TrialSpec) -> str | None:
    """The SHA-256 of the params.json of the fit a trial ran on (None: no fit)."""
    from plateletpd.model.library import chosen_fit, fit_record_hash

    fit = spec.extra.get("fit")
    name = None if fit is None else chosen_fit(spec.model.name, fit)
    return None if name is None else fit_record_hash(name)


def _as_lists(value):
    """Tuples as lists, through dicts and lists (what a JSON record reads back)."""
    if isinstance(value, dict):
        return {key: _as_lists(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_lists(item) for item in value]
    return value


def _with_interval(table: pd.DataFrame, name: str, digits: int) -> list[str]:
    """An estimate's three columns as text, "value [lower, upper]" (for printing only)."""
    def text(v, lo, hi):
        if not math.isfinite(v):  # a median no curve reaches (or nobody to estimate it)
            return "not reached"
        # an interval's end no curve reaches (a Kaplan-Meier median's upper limit): said
        ends = [("not reached" if math.isinf(e) else "-" if math.isnan(e)
                 else f"{e:.{digits}f}") for e in (lo, hi)]
        return f"{v:.{digits}f} [{ends[0]}, {ends[1]}]"
    return [text(v, lo, hi) for v, lo, hi in
            zip(table[name], table[f"{name}_lower"], table[f"{name}_upper"])]


def group_table(result: TrialResult) -> pd.DataFrame:
    """Per arm and [[population.mixture]] group (and the rest), the enrolled, their mean
    count at the start and the response (the short form of
    ``summary_by_population_group.csv``); empty without a mixture."""
    if not result.spec.variability.groups:
        return pd.DataFrame()
    s = subgroup_summary(result, "population_group")
    treated = response_shown(result.spec)
    table = pd.DataFrame({"arm": s.arm, "group": s.population_group, "enrolled": s.enrolled,
                          "mean PLT at start": s.mean_platelets_at_start.round(1)})
    if treated:
        table["response % [95% CI]"] = _with_interval(s, "response_pct", 1)
    return table.set_index(["arm", "group"])


def arm_table(result: TrialResult) -> pd.DataFrame:
    """The short arm table printed by the CLI and the demo (text: ``summary`` keeps the
    numbers); the trial's own response endpoints (a sustained response, counts at chosen
    visits) follow the fixed columns."""
    s = result.summary
    treated = response_shown(result.spec)
    columns = {
        "enrolled": s.enrolled,
        # the enrolled patients' count on the first treatment morning: the baseline a
        # publication reports (not [population] typical, the median before screening)
        "mean PLT at start": s.mean_platelets_at_start.round(1),
        "response % [95% CI]": _with_interval(s, "response_pct", 1),
        "median days to PLT>=100 [95% CI]": _with_interval(s, "median_days_to_100", 0),
        "mean PLT day 7": s.mean_plt_day_7.round(1),
        "mean PLT day 14": s.mean_plt_day_14.round(1)}
    if not treated:  # supportive doses or natural history only: no response from entry
        del columns["response % [95% CI]"], columns["median days to PLT>=100 [95% CI]"]
    if treated and (s["at_threshold_at_start"] > 0).any():  # enrolled, yet already at it
        response = result.spec.response
        threshold = response.get("threshold")
        # with combine = "all" and a rise rule such a patient is judged by the rise, not
        # counted out (a user test, 2026-12-04: "non-responders" 86 beside a response of 99%)
        judged = response.get("combine") == "all" and (response.get("rise")
                                                        or response.get("rise_fold"))
        columns[f"already >= {threshold:g} at day 0 "
                f"({'judged by the rise' if judged else 'non-responders'})"] = \
            s["at_threshold_at_start"].astype(int)
    rescued = (s["transfused_pct"] > 0).any() or any(design.rescue is not None
                                                     for design in result.spec.arms)
    if rescued:  # a column of zeros only where no arm can give a transfusion is left out
        # a course counts every transfusion of the simulation, every cycle (a user test
        # read it as the treated cycle's; cycle{c}_transfused are per cycle)
        label = "transfused % (whole course)" if result.spec.extra.get("course") \
            is not None else "transfused %"
        columns[label] = s["transfused_pct"].round(1)
    response = result.spec.response
    if response.get("sustained_share") is not None:
        columns[f"sustained % (>= {100 * response['sustained_share']:g}% of visits)"] = \
            _with_interval(s, f"{SUSTAINED}_pct", 1)
    for level in response.get("also_thresholds") or []:
        columns[f"PLT>={level:g} by day {response['by_day']:g} % [95% CI]"] = \
            _with_interval(s, f"responder_at_{level:g}_pct", 1)
    for level, day, column in visit_levels(response):
        columns[f"PLT>={level:g} on day {day:g} % [95% CI]"] = \
            _with_interval(s, f"{column}_pct", 1)
    for day, column in visit_count_days(response):  # the at_visits days' mean counts (a
        # user test, 2026-12-05, found them only in summary.csv)
        if f"mean_{column}" in s:
            columns[f"mean PLT day {day:g}"] = s[f"mean_{column}"].round(1)
    if response.get("loss_below") is not None:
        columns[f"median days to PLT<{response['loss_below']:g} after day "
                f"{response['loss_from_day']:g}"] = _with_interval(s, "median_days_to_loss", 0)
    for name, _ in difference_composites(result.spec):  # often the study's own endpoints
        # (a user test, 2026-12-07, found them only in summary.csv)
        if f"{name}_pct" in s:
            columns[f"{name} % [95% CI]"] = _with_interval(s, f"{name}_pct", 1)
    return pd.DataFrame(columns, index=s.index)


#: an arm's mean count this many times the population's typical baseline is flagged: issue
#: 17's plausibility bound (no arm's mean count on day 14 above 300 x10^9/L, above a typical
#: baseline of about 250, unless a source shows it)
REBOUND_FACTOR = 1.2


def rebound_flags(result: TrialResult) -> list[str]:
    """One sentence per arm whose mean count on day 7 or day 14 of treatment, or else whose
    mean recovery peak (``peak``), is above
    :data:`REBOUND_FACTOR` times the population's typical ``platelets_baseline`` (models
    without that parameter: none). A virtual trial can show counts no clinic sees; the
    flag says so next to the numbers instead of leaving it to the reader."""
    model = result.spec.model
    if "platelets_baseline" not in model.parameter_names:
        return []
    if not any(design.chemotherapy for design in result.spec.arms):
        # no chemotherapy (ITP, healthy volunteers): platelets_baseline is the disease's own
        # level or a healthy one, and a rise above it is the drug's intended effect
        return []
    vector = model.parameter_vector({}, dict(result.spec.covariates))
    baseline = float(vector[model.parameter_names.index("platelets_baseline")])
    flags = []
    for arm, row in result.summary.iterrows():
        for day in (7, 14):
            mean = row.get(f"mean_plt_day_{day}", math.nan)
            if math.isfinite(mean) and mean > REBOUND_FACTOR * baseline:
                flags.append(
                    f"arm {arm!r}: mean count on treatment day {day} {mean:.0f} x10^9/L, "
                    f"{mean / baseline:.2f} times the population's typical baseline "
                    f"({baseline:g}): a rebound above baseline that published trials rarely "
                    f"show; check it against the model card's known limits before using "
                    f"this arm's later counts")
                break
        else:
            # the recovery peak after the course, and on a course each cycle's (user tests,
            # 2026-12-04: rhTPO's mean peak 333 and a cycle-3 mean peak of 419 on weekly
            # romiplostim passed silently, their day-7 and day-14 means below the bound)
            peaks = [row.get("mean_peak", math.nan)] + [
                value for name, value in row.items()
                if str(name).startswith("mean_cycle") and str(name).endswith("_peak")]
            peak = max((v for v in peaks if isinstance(v, (int, float)) and math.isfinite(v)),
                       default=math.nan)
            if math.isfinite(peak) and peak > REBOUND_FACTOR * baseline:
                flags.append(
                    f"arm {arm!r}: mean recovery peak {peak:.0f} x10^9/L (the highest count "
                    f"after a nadir: the treated cycle's, or on a course a cycle's), "
                    f"{peak / baseline:.2f} times "
                    f"the population's typical baseline ({baseline:g}): models with a "
                    f"known rebound after stimulation overshoot published peaks (the CIT "
                    f"model's card, 'Open finding: the rebound after stimulation'); report "
                    f"counts after the course with that caveat")
    return flags


def _difference_table(differences: pd.DataFrame, treated: bool = True) -> pd.DataFrame:
    """differences.csv as printed in the report (the trial's own response endpoints and
    composites too); without a treatment from entry in any arm (support within cycles only)
    the response from entry is left out, as in the arm table."""
    table = pd.DataFrame({
        "arm": differences.arm, "versus": differences.versus,
        "response difference, percentage points [95% CI]":
            _with_interval(differences, "response_difference_pct_points", 1),
        "PLT day 14 difference, x10^9/L [95% CI]":
            _with_interval(differences, "plt_day_14_difference", 1)})
    if not treated:
        del table["response difference, percentage points [95% CI]"]
    for column in differences.columns:
        if column.endswith("_difference") and column != "plt_day_14_difference":
            table[f"{column[:-len('_difference')]} difference, x10^9/L [95% CI]"] = \
                _with_interval(differences, column, 1)
    for column in differences.columns:
        if column.endswith("_difference_pct_points") and \
                column != "response_difference_pct_points":
            table[f"{column[:-len('_difference_pct_points')]}, points [95% CI]"] = \
                _with_interval(differences, column, 1)
    return table


def _screening_table(result: TrialResult) -> pd.DataFrame:
    """Per arm: drawn, dropped for parameters outside the model's bounds, enrolled, and
    enrolled already at or above the response threshold at day 0."""
    s = result.summary
    table = pd.DataFrame({"drawn": s.screened,
                          "dropped (parameters outside bounds)": s.invalid_parameters,
                          "enrolled": s.enrolled,
                          "at/above threshold at day 0": s.at_threshold_at_start},
                         index=s.index)
    if not response_shown(result.spec):  # no response is judged: no threshold to be at
        del table["at/above threshold at day 0"]
    return table


def _report(result: TrialResult, record: dict) -> str:
    spec = result.spec
    flags = rebound_flags(result)
    return "\n".join([
        f"# Virtual trial: {spec.name}", "", spec.description, "",
        f"Model `{spec.model.name}` (hash {spec.model.hash[:12]}), parameters: "
        f"{spec.parameters_from}; {spec.subjects_per_arm} virtual patients screened per arm, "
        f"seed {spec.seed}; visits every {spec.visit_every_days:g} day(s); response: "
        f"{response_text(spec)}. Created {record['created']}.", "",
        *(["## Warnings given by the run", "", *[f"- {text}" for text in
                                                  record.get("warnings", [])], ""]
          if record.get("warnings") else []),
        ("Day 0 is the enrolment day ([response] day0 = \"entry\"); its count is the "
         "baseline. Responses and " if spec.response.get("day0") == "entry" else
         "Day 0 is the first treatment morning; its visit is the baseline. Responses and ")
        + "times to PLT >= 75 and >= 100 count visits from day 1 on; a patient already at or "
        "above the response threshold at day 0 is not a responder (column "
        "at_threshold_at_start), and one already at or above a level has no time to it.", "",
        "## Screening", "", "```", _screening_table(result).to_string(), "```", "",
        *(["Eligibility on the simulated history (per rule, in order):", "", "```",
           result.screening.to_string(index=False), "```", ""]
          if len(result.screening) else []),
        *(_course_report(result) if spec.extra.get("course") is not None else []),
        "## Arms", "", *arm_design_lines(spec),
        "```", arm_table(result).to_string(), "```", "",
        *_arm_population_lines(spec),
        *(["By population group ([[population.mixture]]; every summary column in "
           "`summary_by_population_group.csv`):", "", "```",
           group_table(result).to_string(), "```", ""]
          if spec.variability.groups else []),
        *([note, ""] if (note := interval_note(spec)) else []),
        *(["Plausibility (counts above the typical baseline):", "",
           *[f"- {flag}" for flag in flags], ""] if flags else []),
        (f"## Differences from {spec.reference_arm}" if not spec.extra.get("versus") else
         f"## Differences (each arm against its versus arm, else {spec.reference_arm})") + (
            " (paired: the same patients in every arm)"
            if spec.extra.get("design") == "paired" else ""), "", "```",
        _difference_table(result.differences, response_shown(spec))
        .to_string(index=False)
        if len(result.differences) else "(none)", "```", "",
        *([NON_RANDOMISED if not any(arm.typical for arm in spec.arms) else
           NON_RANDOMISED_STATED, ""]
          if spec.extra.get("allocation") == "non-randomised" else []),
        "![platelet trajectories](trajectories.png)", "",
        "![time to PLT >= 100](time_to_100.png)", "",
        *(["![response by day](response_by_day.png)", ""] if response_shown(spec) else []),
        "Full per-arm summary: `summary.csv`; per patient: `patients.csv` and "
        "`patients.parquet`; every column's unit and meaning: `data_dictionary.csv`.", "",
        *validation_report_lines(spec.model, fit=_non_default_fit(spec), arms=spec.arms,
                                 trial_name=spec.name, arm_drugs=record_arm_drugs)])


#: the report's sentence under the differences of a study whose arms were not randomised
NON_RANDOMISED = (
    "The study's arms were not randomised (`[trial] allocation`): its patients may differ "
    "between arms in who was given which drug. The virtual arms are drawn from one "
    "population, so these differences are the drugs' alone; a published difference also "
    "holds the study's selection, which the model does not know.")


#: the same, when some arms state their own typical values ([[arms]] typical)
NON_RANDOMISED_STATED = (
    "The study's arms were not randomised (`[trial] allocation`): its patients may differ "
    "between arms in who was given which drug. The virtual arms differ only in the typical "
    "values the trial file states for them (above); a published difference also holds "
    "whatever else the study's selection changed, which the model does not know.")


def _arm_population_lines(spec: TrialSpec) -> list[str]:
    """The report's lines on arms whose patients have their own typical values."""
    own = [arm for arm in spec.arms if arm.typical]
    if not own:
        return []
    names = sorted({name for arm in own for name, _ in arm.typical})
    trial = ", ".join(f"{name} = {spec.model.parameters[name].value:.4g}" for name in names)
    return ["Arms whose patients have their own typical values (`[[arms]] typical`; each "
            "patient's own value is the arm's typical value with the trial's between-patient "
            "spread; every other arm, and every other value, is the trial's: "
            f"{trial}):", "",
            *[f"- {arm.name}: " + ", ".join(f"{name} = {value:.4g}"
                                             for name, value in arm.typical) for arm in own],
            ""]


def uncertainty_left_out(spec: TrialSpec) -> str | None:
    """What a run at the fit's point estimates leaves out, as a clause ("the fit's parameter
    uncertainty and the spread between studies ..."): the fit's parameter uncertainty and,
    for a fit with study-level random effects on a parameter the trial does not fix, the
    between-study spread a new population carries, with its size read from the fit record.
    None when the trial runs on no fit (the model file's values: nothing known to add)."""
    import math

    from plateletpd.model.library import chosen_fit, load_fit_record

    fit = spec.extra.get("fit")
    chosen = None if fit is None else chosen_fit(spec.model.name, fit)
    if chosen is None:
        return None
    try:
        effects = load_fit_record(chosen).get("study_effects") or {}
    except PlateletPDError:
        effects = {}
    fixed = set(spec.extra.get("typical", ())) | set(spec.extra.get("study_parameters", {}))
    spread = [f"{name}: between-study SD of its log {entry['between_study_sd']:.2f}, a new "
              f"study's value uncertain by a factor of about "
              f"{math.exp(1.96 * entry['between_study_sd']):.1f} either way"
              for name, entry in effects.items()
              if name not in fixed and isinstance(entry.get("between_study_sd"), (int, float))]
    return "the fit's parameter uncertainty" + (
        f" and the spread between studies that a new population carries "
        f"({'; '.join(spread)})" if spread else "")


def interval_note(spec: TrialSpec) -> str | None:
    """What the arm table's 95% intervals cover, for a trial run at the point estimates
    (``[trial] uncertainty = "none"``, the default): the sampling spread of its virtual
    patients only, not what :func:`uncertainty_left_out` names (so a reader can weigh it);
    and how to get prediction intervals. None when the run draws the fit's uncertainty
    itself (its report has both)."""
    if spec.extra.get("uncertainty") == "fit":
        return None
    left_out = uncertainty_left_out(spec)
    if left_out is None:
        return ("95% CI (arms and differences): the sampling interval of these virtual "
                "patients at the model file's values (how far the result moves with other "
                "patients of the same study); with no fit there is no parameter or "
                "between-study uncertainty to add, and none behind these values either.")
    return ("95% CI (arms and differences): the sampling interval of these virtual "
            "patients at the fit's point estimates (how far the result moves with other "
            f"patients of the same study); it leaves out {left_out}. Prediction intervals "
            "for a new study: --uncertainty fit --replicates 200 (uncertainty.csv, with "
            "the same intervals widened by what the model's validation record found them "
            "to miss; docs/trial_files.md, 'Parameter uncertainty: prediction intervals "
            "beside sampling intervals').")


def record_arm_drugs(record: dict) -> dict[tuple[str, str], frozenset[str]]:
    """The drugs of every arm of a record's trials, ``(trial name, arm name) -> drugs``
    (:attr:`ArmDesign.drugs`), read from each check's trial file:
    the path the record names, else the bundled trial file of that name. A trial file that
    cannot be found or read leaves its arms out (their rows are then not matched)."""
    from plateletpd.io.files import recorded_trial_file

    drugs: dict[tuple[str, str], frozenset[str]] = {}
    for check in record.get("checks", []):
        path = recorded_trial_file(check.get("file", ""))
        if path is not None:
            drugs.update(_trial_arm_drugs(str(path.resolve()), path.stat().st_mtime_ns))
    return drugs


@functools.lru_cache(maxsize=256)
def _trial_arm_drugs(path: str, modified: int) -> dict[tuple[str, str], frozenset[str]]:
    """``(trial name, arm name) -> drugs`` of one trial file ({} if it cannot be read);
    kept per path and modification time, since a report reads the same files again."""
    try:
        with warnings.catch_warnings():  # another trial's warnings are not this run's
            warnings.simplefilter("ignore")
            spec = load_trial_spec(path)
    except (PlateletPDError, OSError, ValueError):
        return {}
    return {(spec.name, design.name): design.drugs for design in spec.arms}


def track_record_summary(spec: TrialSpec) -> list[str]:
    """One line per arm: how the model has done on recorded published arms that gave the
    same drugs (:func:`plateletpd.study.validation_results.track_record`), from the
    validation record a report of this trial reads; [] where the model has none."""
    from plateletpd.study.validation_results import track_record_text

    return track_record_text(spec.model, spec.arms, record_arm_drugs,
                             fit=_non_default_fit(spec), trial_name=spec.name)


def record_interval_calibration(spec: TrialSpec):
    """How much wider the trial's 95% prediction intervals must be to hold the published
    values its model's validation record has found them to miss
    (:class:`plateletpd.study.interval_calibration.IntervalCalibration`, from the record a
    report of this trial reads); None where the model has no record."""
    from plateletpd.study.interval_calibration import calibrate_intervals
    from plateletpd.study.validation_results import record_for

    recorded = record_for(spec.model, _non_default_fit(spec))[0]
    return None if recorded is None else calibrate_intervals(recorded[0])


def _non_default_fit(spec: TrialSpec) -> str | None:
    """The fit a trial ran on when it is not its model's default one (whose validation
    record is the model's own), else None."""
    from plateletpd.model.library import default_fit, fit_name

    fit = spec.extra.get("fit")
    if fit in (None, "default", "none") or fit_name(fit) == default_fit(spec.model.name):
        return None
    return fit_name(fit)


def _course_report(result: TrialResult) -> list[str]:
    """The report's chemotherapy-course section: the course and its per-arm outcomes."""
    course = result.spec.extra["course"]
    delay = (f"; a cycle waits while PLT < {course.delay_below:g}"
             + (f" (from enrolment: PLT < {course.delay_below_after_entry:g})"
                if course.delay_below_after_entry is not None else "")
             + f" (re-checked every "
             f"{course.recheck_every_days:g} days, abandoned after "
             f"{course.give_up_after_days:g}), reduced by {course.reduce_after_delay_pct:g}% "
             f"after a delay"
             + (f"; a cycle is late from a delay of {course.late_from_days:g} days"
                if course.late_from_days is not None else "")
             if course.delay_below is not None else "")
    return ["## Chemotherapy course", "",
            f"{course.describe()}"
            f"{delay}; between-cycle CV of exposure "
            f"{result.spec.extra.get('between_cycle_cv', 0.0):g}.", "",
            # two windows a reader can confuse (a user test, 2026-12-04): say both
            f"Windows: the trial's nadir, peak and days below 20 or 50 are the treated "
            f"cycle's (from the first day of the cycle in which treatment starts to the next "
            f"cycle's), followed at least {result.spec.follow_up_days:g} days after the first "
            f"treatment morning ([trial] follow_up_days); each cycle's own columns run to the "
            f"next cycle, the last cycle given to {course.follow_up_days:g} days after its "
            f"chemotherapy ([chemotherapy] follow_up_days).", "",
            *_support_lines(result), "```",
            course_table(result).to_string(), "```", ""]


def support_rule(design: ArmDesign) -> str:
    """An arm's support doses and the rules that start and stop them, in words."""
    cycles = design.support_cycles
    rule = [f"`{' + '.join(design.support)}` in cycle{'s' if len(cycles) > 1 else ''} "
            f"{', '.join(map(str, cycles))}"]
    if design.support_start_below is not None:
        rule.append(f"from the first support morning below {design.support_start_below:g}")
    if design.support_stop_at is not None:
        rule.append(f"stopped at the first morning at or above {design.support_stop_at:g}"
                    + (" after one below it" if design.support_stop_after_fall else "")
                    + (f", never in the first {design.support_min_days} days"
                       if design.support_min_days else ""))
    if design.support_max_days:
        rule.append(f"at most {design.support_max_days} days")
    return "; ".join(rule)


def arm_design_lines(spec: TrialSpec) -> list[str]:
    """The report's lines stating each arm's design in words, as the file gives it: its
    treatment from day 0, who is enrolled and when treatment starts, the stop, titration
    and dose rules, the rescue transfusion and its own typical values (a user test,
    2026-12-07, had to read patients.csv to see that a hold rule had acted)."""
    course = spec.extra.get("course")
    lines = []
    for design in spec.arms:
        parts = []
        if design.treatment:
            own = [dose for dose in design.treatment if own_schedule(dose)]
            first = ("from the first treatment morning, day 0 being enrolment ([response] "
                     "day0 = \"entry\")" if spec.response.get("day0") == "entry" else
                     "from day 0, the first treatment morning")
            parts.append("treatment " + " + ".join(f"`{dose}`" for dose in design.treatment)
                         + f" {first} ("
                         + ("each dose on its own days" if len(own) == len(design.treatment)
                            else "daily" if not own else
                            "daily, where a dose text gives no days of its own") + ")")
            stops = []
            if design.stop_at is not None:
                stops.append(f"the first morning count >= {design.stop_at:g}"
                             + (" after one below it" if design.stop_after_fall else ""))
            if design.stop_rise is not None:
                stops.append(f"a rise >= {design.stop_rise:g} over the count at the start")
            if design.stop_at_next_cycle:
                stops.append("the next chemotherapy cycle")
            parts.append((f"stopped at {' or '.join(stops)}, " if stops else "")
                         + f"at most {design.max_days} days"
                         + (f", at least {design.min_days}" if design.min_days else ""))
            parts += [f"on treatment day {t.day} below {t.below:g}: `{t.dose}` from then on"
                      for t in design.titrations]
            for rule in design.rules:
                what = rule.action + (f" {rule.drug}" if rule.drug else " every drug") + (
                    f" by {rule.step}" if rule.step else "")
                window = (f" from day {rule.from_day:g}" if rule.from_day else "") + (
                    f" to day {rule.to_day:g}" if rule.to_day is not None else "")
                parts.append(f"at each visit{window}: {what} when the count is "
                             f"{'at or above' if rule.when == 'above' else 'below'} "
                             f"{rule.level:g}")
        else:
            parts.append("no treatment from day 0")
        if course is None:
            after = " after chemotherapy" if design.chemotherapy else ""
            entry = ("everyone" if design.entry_below is None else
                     f"a count below {design.entry_below:g}"
                     + (f" on day {design.entry_day:g}{after}"
                        if design.entry_day is not None else
                        f" at routine counts every {design.screen_every_days:g} days"
                        if design.screen_every_days is not None else " (at its crossing)"))
            if design.entry_between is not None:
                entry += (f", the count at entry from {design.entry_between[0]:g} to below "
                          f"{design.entry_between[1]:g}")
            # an untreated arm is not "treated" later: its day 0 is (a user test, 2026-12-07)
            later = ("the same day" if design.start_delay == 0 else
                     f"{design.start_delay:g} day{'' if design.start_delay == 1 else 's'} "
                     f"later")
            parts.append(f"enrolled on {entry}; "
                         + (f"treated {later}" if design.treatment else
                            f"day 0 {later}" if design.start_delay else "day 0 the same day"))
        else:
            own = design.name in (spec.extra.get("arm_eligibility") or {})
            # a course without rules enrols everyone on its first day (a user test,
            # 2026-12-07, read "enrolled by the trial's [[eligibility]] rules" of a file
            # that had none)
            parts.append("enrolled by its own [[arms.eligibility]] rules on the untreated "
                         "course" if own else
                         "enrolled by the trial's [[eligibility]] rules on the untreated "
                         "course" if spec.extra.get("eligibility") else
                         "everyone enrolled on the course's first day (no [[eligibility]] "
                         "rules)")
        if design.rescue is not None:
            rescue = design.rescue
            parts.append(f"transfused (`{rescue.dose}`) at a visit count below "
                         f"{rescue.below:g}" + (
                             f", below {rescue.at_risk_below:g} in "
                             f"{100 * rescue.at_risk_share:g}% of the patients"
                             if rescue.at_risk_below is not None else ""))
        if design.typical:
            parts.append("its own typical " + ", ".join(f"{name} = {value:.4g}"
                                                        for name, value in design.typical))
        lines.append(f"- {design.name}: " + "; ".join(parts) + ".")
    return ["Each arm as the trial file states it:", "", *lines, ""]


def _support_lines(result: TrialResult) -> list[str]:
    """The report's support lines: each support arm's rule and what its patients were
    given (mean support doses and cycles with support, from patients.csv)."""
    lines = []
    for design in result.spec.arms:
        if not design.support:
            continue
        rows = result.subjects[result.subjects["arm"] == design.name]
        given = ""
        if len(rows) and "support_doses" in rows:
            given = (f": mean {rows['support_doses'].mean():.1f} support doses and "
                     f"{rows['supported_cycles'].mean():.2f} cycles with support per "
                     f"enrolled patient")
        lines.append(f"- Support, {design.name}: {support_rule(design)}{given}.")
    return lines + [""] if lines else []


def course_table(result: TrialResult, cycles_only: bool = False) -> pd.DataFrame:
    """Per arm, a course trial's outcomes from the summary: the course flags (%), each
    cycle's mean nadir and recovery peak and the median days to the next cycle; with
    ``cycles_only``, the per-cycle means alone (what a crossover or self-controlled study
    reads, where the response from day 0 is not the study's endpoint)."""
    s = result.summary
    flags = [] if cycles_only else [c for c in s.columns if c.endswith("_pct") and not
                                    c.startswith(("response", "transfused", "titrated"))]
    columns = flags + [c for c in s.columns if c.startswith(
        ("mean_cycle",) if cycles_only else ("mean_cycle", "median_days_to_next"))
        and not c.endswith(("_lower", "_upper")) and "_recovery_day_" not in c]
    return s[columns].round(1)


def response_shown(spec) -> bool:
    """Whether the report and the printed tables show a response: some arm is treated from
    entry and the file defines one (``[response] defined = false``: a prevention study
    judged by its nadirs and transfusions; a user test, 2026-12-07, read "response 0%"
    and "400 of 400 already >= 80 at day 0, non-responders" of such a study)."""
    return any(design.treatment for design in spec.arms) and \
        spec.response.get("defined", True)


def response_text(spec) -> str:
    """The response rule in words, or why there is none: no arm treated from day 0 (a
    course with support doses only: a user test, 2026-12-07, read "PLT >= 100 by day 14"
    in the report of a file with no [response]), or ``defined = false``."""
    if not any(design.treatment for design in spec.arms):
        return ("none (no arm is treated from day 0: support doses within cycles or no "
                "treatment; summary.csv's response columns are at PLT >= "
                f"{spec.response['threshold']:g}, not printed)")
    return _rule_text(spec.response)


def _rule_text(response: dict) -> str:
    if not response.get("defined", True):
        return ("none defined by the study (summary.csv's response columns are at PLT >= "
                f"{response['threshold']:g} by day {response['by_day']:g}, not printed)")
    rules = [f"PLT >= {response['threshold']:g}"] if response.get("threshold") else []
    rules += [f"a rise >= {response['rise']:g}"] if response.get("rise") else []
    rules += ([f"at least {response['rise_fold']:g} times the day-0 count"]
              if response.get("rise_fold") else [])
    later = (f", and PLT >= {response['later_at_least']:g} on day {response['later_day']:g}"
             if response.get("later_day") is not None else "")
    joined = " and " if response.get("combine") == "all" else " or "
    return f"{joined.join(rules)} by day {response['by_day']:g} of treatment{later}"


def _plots(result: TrialResult, folder: Path) -> list[Path]:
    """Write :func:`trial_figures` as PNG files in ``folder``."""
    import matplotlib.pyplot as plt

    paths = []
    for name, figure in trial_figures(result).items():
        paths.append(folder / name)
        atomic_write(folder / name, lambda p, f=figure: f.savefig(p, dpi=110, format="png"))
        plt.close(figure)
    return paths


def trial_figures(result: TrialResult) -> dict:
    """The report's figures by file name (matplotlib figures; close them after use):
    platelet trajectories, Kaplan-Meier time to PLT >= 100 and responders by day (not where
    no response is shown: :func:`response_shown`), each marking the chemotherapy day, the
    thresholds and the response window it concerns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_day = result.spec.response["by_day"]
    window = dict(color="gold", alpha=0.12, label=f"response window: visits on days 1 to "
                                                 f"{by_day:g}")
    day0 = "days from day 0 (the first treatment morning: the baseline visit)"
    figure, axis = plt.subplots(figsize=(8, 5))
    for name, (relative, matrix) in result.curves.items():
        if not len(matrix):
            continue
        with warnings.catch_warnings():  # columns before anyone's chemotherapy are all NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(matrix, axis=0)
            low, high = np.nanpercentile(matrix, [5, 95], axis=0)
        # a day on which fewer than 80% of the patients are still followed is not drawn: the
        # late-enrolled leave the follow-up first and the median of the rest jumps (a user
        # test, 2026-12-05, read such a jump as a fall of the counts)
        followed = np.isfinite(matrix).mean(axis=0) >= 0.8
        median, low, high = (np.where(followed, v, np.nan) for v in (median, low, high))
        line, = axis.plot(relative, median, label=name)
        axis.fill_between(relative, low, high, color=line.get_color(), alpha=0.12)
        axis.set_xlim(relative[0], relative[-1])
    axis.axvspan(0, by_day, **window)
    _mark_design(axis, result)
    axis.set_title("drawn on days when at least 80% of an arm's patients are followed",
                   fontsize=8)
    figures = {"trajectories.png": _label(figure, axis, day0, "platelets (x10$^9$/L): median "
                                          "and 5-95% of patients")}

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name, table in result.subjects.groupby("arm", sort=False):
        curve = kaplan_meier(table.days_to_100, table.reached_100)
        axis.step(np.concatenate([[0], curve.times]), 1 - np.concatenate([[1], curve.survival]),
                  where="post", label=name)
    axis.axvspan(0, by_day, **window)
    figures["time_to_100.png"] = _label(figure, axis, day0, "proportion with PLT >= 100 "
                                        "(Kaplan-Meier; patients below 100 at day 0)")
    if not response_shown(result.spec):
        # no response defined (or no arm treated from entry): no responders-by-day figure
        # (a blind user test, 2026-12-08, found it drawn for a `defined = false` study)
        return figures

    figure, axis = plt.subplots(figsize=(7, 4.5))
    days = np.arange(0, max(22, int(math.ceil(by_day)) + 8))
    for name, table in result.subjects.groupby("arm", sort=False):
        reached = [np.mean(table.response_day.to_numpy() <= d) * 100 for d in days]
        axis.plot(days, reached, marker=".", label=name)
    axis.axvspan(0, by_day, **window)
    axis.axvline(by_day, color="black", lw=0.8, ls="--",
                 label=f"responders judged by day {by_day:g} ({response_text(result.spec)})")
    figures["response_by_day.png"] = _label(figure, axis, day0, "responders so far (% of "
                                            "enrolled)")
    return figures


def _mark_design(axis, result: TrialResult) -> None:
    """Mark the chemotherapy day (median and 5-95% over patients, relative to day 0), the
    response threshold and the entry threshold on a trajectory plot."""
    spec = result.spec
    course = spec.extra.get("course")
    if spec.arms[0].chemotherapy and course is None:
        # (+ 0.0: no "-0.0" in the legend)
        low, middle, high = np.percentile(-result.subjects.start_day.to_numpy(), [5, 50, 95])
        axis.axvline(middle, color="black", lw=1.0, ls="--",
                     label=f"chemotherapy day 1: median day {middle + 0.0:.1f} (5-95%: "
                           f"{low + 0.0:.1f} to {high + 0.0:.1f})")
    if spec.response.get("threshold") is not None:
        axis.axhline(spec.response["threshold"], color="green", lw=0.9, ls=":",
                     label=f"response threshold: PLT >= {spec.response['threshold']:g}")
    if course is not None:
        # a course enrols by its [[eligibility]] rules (the arms' entry_below is unused):
        # name them; the treated cycle's first day, as the chemotherapy line above
        rules = spec.extra.get("eligibility") or ()
        if spec.extra.get("arm_eligibility"):  # arms with their own rules: name them all
            rules = tuple(dict.fromkeys(rule for design in spec.arms for rule in
                                        spec.extra["arm_eligibility"].get(design.name, rules)))
        begin = result.subjects.start_day.to_numpy() - _treated_cycle_day(result.subjects)
        low, middle, high = np.percentile(-begin, [5, 50, 95])
        axis.axvline(middle, color="black", lw=1.0, ls="--",
                     label=f"treated cycle's chemotherapy: median day {middle + 0.0:.1f} "
                           f"(5-95%: {low + 0.0:.1f} to {high + 0.0:.1f})")
        axis.plot([], [], " ", label="entry: " + ("; ".join(describe(rule) for rule in rules)
                                                  or "every patient, on day 0 of cycle 1"))
    elif spec.arms[0].entry_below is not None:
        axis.axhline(spec.arms[0].entry_below, color="firebrick", lw=0.9, ls=":",
                     label=f"entry: PLT < {spec.arms[0].entry_below:g}")


def _treated_cycle_day(subjects: pd.DataFrame) -> np.ndarray:
    """Each patient's treated cycle's first day (days from cycle 1), from its
    ``treated_cycle`` and that cycle's ``cycle{c}_day``."""
    cycle = subjects.treated_cycle.to_numpy(int)
    return np.array([subjects[f"cycle{c}_day"].iat[row] for row, c in enumerate(cycle)],
                    dtype=float)


def _label(figure, axis, xlabel: str, ylabel: str):
    """Label the single axis, add legend and grid; the figure, laid out."""
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure
