"""Population mixtures ([[population.mixture]]; population/variability.py PopulationGroup,
2026-12-07): a share of the drawn patients with their own typical values, the rest with the
population's. The properties asserted follow from the definition (a patient's group comes
from a second stream of the seed, his random effects from the first), not from a tuned
output: a member's parameters and course are those he has in a trial where everyone is in
his group, a non-member's those he has in a trial without groups; the shares are binomial;
the same seed gives the same patients whatever the chunks; bad groups are clear errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import plateletpd as pp
from plateletpd.cli import main
from plateletpd.errors import ParameterError
from plateletpd.population.variability import REST, PopulationGroup, Variability, cohort_matrix
from plateletpd.study import trial as trial_module
from plateletpd.study.trial import TrialSpec, TrialSpecError, run_trial

# the spleen term of models/cit_marrow_reserve.toml: 5 is a large spleen (the file's bound
# is 50); the share 0.3 and the CVs are sizes for a test, not from a study
LARGE_SPLEEN = {"spleen_volume_ratio": 5.0}
CV = {"chemotherapy_sensitivity": 0.3, "platelets_baseline": 0.2}
ARMS = [{"name": "untreated", "treatment": []},
        {"name": "hetrombopag", "treatment": ["hetrombopag 7.5 mg"], "max_days": 14}]


def _trial(mixture=None, typical=None, subjects: int = 60, seed: int = 5) -> TrialSpec:
    population = {"cv": CV, **({"typical": typical} if typical else {}),
                  **({"mixture": mixture} if mixture else {})}
    return TrialSpec.create(arms=ARMS, seed=seed, subjects_per_arm=subjects,
                            follow_up_days=35, response={"threshold": 100, "by_day": 14},
                            population=population, enrolment={"entry_below": 75})


def _group(share: float, typical=LARGE_SPLEEN, name: str = "large spleen") -> dict:
    return {"name": name, "share": share, "typical": dict(typical)}


# ---------------------------------------------------------------------- the draws


def test_groups_leave_the_random_effects_as_drawn_and_add_the_group_column():
    # a population's random effects are the same with or without a mixture (its own
    # stream), so adding groups changes only the members' typical values
    plain = Variability.from_cv({"a": 0.3, "b": 0.2})
    mixed = plain.with_groups([PopulationGroup("g", 0.25, {"a": 4.0})])
    assert mixed.width == 3 and plain.width == 2
    eta = mixed.eta(500, 9)
    np.testing.assert_array_equal(eta[:, :2], plain.eta(500, 9))
    assert set(np.unique(eta[:, 2])) == {0.0, 1.0}
    # drawn in subject order: the first m patients of a larger cohort are the cohort of m
    np.testing.assert_array_equal(mixed.eta(2000, 9)[:500], eta)
    # and one patient alone is the same patient
    sample = mixed.sample({"a": 1.0, "b": 2.0}, 40, 9)
    alone = mixed.subject({"a": 1.0, "b": 2.0}, 9, 37)
    assert alone["group"] == sample.group.iloc[37]
    assert alone["a"] == sample.a.iloc[37] and alone["b"] == sample.b.iloc[37]


def test_a_patients_group_is_the_same_drawn_alone_or_in_a_cohort():
    # membership of patients first..n-1 by advancing the stream (a chunk of a large arm)
    # equals the tail of the whole cohort's, for ranges inside and across 64-bit draws
    variability = Variability((), (), np.zeros((0, 0)), (PopulationGroup("g", 0.37,
                                                                        {"a": 1.0}),))
    whole = variability.membership(5000, 11)
    for first, stop in ((0, 1), (1, 2), (999, 5000), (4321, 4400)):
        np.testing.assert_array_equal(variability.membership(stop, 11, first),
                                      whole[first:stop])


def test_group_shares_are_binomial():
    # two groups of 0.1 and 0.25 in 200,000 draws: each share within 4 binomial SEs
    # (sqrt(p (1 - p) / n), about 0.0007 and 0.001), the rest 0.65
    variability = Variability((), (), np.zeros((0, 0)), (
        PopulationGroup("small", 0.1, {"a": 1.0}), PopulationGroup("big", 0.25, {"a": 2.0})))
    n = 200_000
    labels = variability.group_of(variability.eta(n, 3))
    for label, share in (("small", 0.1), ("big", 0.25), (REST, 0.65)):
        assert abs(np.mean(labels == label) - share) < 4 * math.sqrt(share * (1 - share) / n)
    # every patient in a group when the shares add up to 1
    whole = Variability((), (), np.zeros((0, 0)), (PopulationGroup("all", 1.0, {"a": 1.0}),))
    assert set(whole.group_of(whole.eta(1000, 3))) == {"all"}


def test_members_vary_around_their_groups_typical_value_with_the_populations_spread():
    # a log-normal quantity: members' median at the group's value, the non-members' at the
    # population's, the same log SD (sqrt(log(1 + 0.3^2)) = 0.294) in both, within 4 SEs
    variability = Variability.from_cv({"a": 0.3}).with_groups(
        [PopulationGroup("high", 0.4, {"a": 5.0})])
    frame = variability.sample({"a": 1.0}, 40_000, 1)
    sd = math.sqrt(math.log1p(0.3 ** 2))
    for label, center in (("high", 5.0), (REST, 1.0)):
        logs = np.log(frame.a[frame.group == label])
        assert abs(np.mean(logs) - math.log(center)) < 4 * sd / math.sqrt(len(logs))
        assert abs(np.std(logs) - sd) < 4 * sd / math.sqrt(2 * len(logs))


def test_a_groups_own_cv_spreads_its_members_only():
    # the group's own CV 0.5 on a quantity the population varies with 0.3, and 0.4 on one
    # it does not vary: members' log SDs sqrt(log(1 + CV^2)) (0.472, 0.385), the rest's
    # the population's (0.294) and none, within 4 SEs; the rest are the patients of the
    # population without groups, number for number
    plain = Variability.from_cv({"a": 0.3})
    mixed = plain.with_groups([PopulationGroup("wide", 0.5, {"b": 3.0}, cv={"a": 0.5,
                                                                         "b": 0.4})])
    assert mixed.group_cv_names == ("a", "b") and mixed.width == 4
    n = 40_000
    frame = mixed.sample({"a": 1.0, "b": 1.0}, n, 4)
    wide, rest = frame[frame.group == "wide"], frame[frame.group == REST]
    for column, cv, part in (("a", 0.5, wide), ("b", 0.4, wide), ("a", 0.3, rest)):
        sd = math.sqrt(math.log1p(cv ** 2))
        logs = np.log(part[column])
        assert abs(np.std(logs) - sd) < 4 * sd / math.sqrt(2 * len(logs))
    assert abs(np.mean(np.log(wide.b)) - math.log(3.0)) < 4 * 0.385 / math.sqrt(len(wide))
    assert np.all(rest.b == 1.0)
    np.testing.assert_array_equal(rest.a, plain.sample({"a": 1.0}, n, 4).a[rest.index])
    with pytest.raises(ParameterError, match="CV of a must be a finite number >= 0"):
        PopulationGroup("g", 0.5, {}, cv={"a": -1.0})


def test_cohort_matrix_sets_a_groups_fixed_values_only_for_its_members():
    model = pp.load_model("cit_marrow_reserve")
    variability = Variability.from_cv(CV).with_groups([PopulationGroup("g", 0.3,
                                                                       LARGE_SPLEEN)])
    base = model.parameter_vector({}, {})
    eta = variability.eta(400, 2)
    matrix = cohort_matrix(model, base, variability, eta)
    column = model.parameter_names.index("spleen_volume_ratio")
    members = variability.group_of(eta) == "g"
    assert np.all(matrix[members, column] == 5.0)
    assert np.all(matrix[~members, column] == model.parameters["spleen_volume_ratio"].value)
    # the varied quantities are those of the population without groups
    plain = cohort_matrix(model, base, Variability.from_cv(CV), eta[:, :2])
    np.testing.assert_array_equal(np.delete(matrix, column, axis=1),
                                  np.delete(plain, column, axis=1))
    with pytest.raises(ParameterError, match="random effects have 2 columns"):
        cohort_matrix(model, base, variability, eta[:, :2])


def test_bad_groups_are_clear_errors():
    with pytest.raises(ParameterError, match=r"share must be a number in \(0, 1\]"):
        PopulationGroup("g", 0.0, {"a": 1.0})
    with pytest.raises(ParameterError, match="add up to 1.2"):
        Variability((), (), np.zeros((0, 0)), (PopulationGroup("g", 0.6, {"a": 1.0}),
                                              PopulationGroup("h", 0.6, {"a": 2.0})))
    with pytest.raises(ParameterError, match="may not be called 'rest'"):
        PopulationGroup(REST, 0.5, {"a": 1.0})
    with pytest.raises(ParameterError, match="at least one typical value"):
        PopulationGroup("g", 0.5, {})
    model = pp.load_model("cit_marrow_reserve")
    variability = Variability.from_cv(CV).with_groups(
        [PopulationGroup("g", 0.3, {"spleen_volum_ratio": 5.0})])
    with pytest.raises(ParameterError, match="did you mean 'spleen_volume_ratio'"):
        cohort_matrix(model, model.parameter_vector({}, {}), variability,
                      variability.eta(10, 1))


# ---------------------------------------------------------------------- in a trial


@pytest.fixture(scope="module")
def three_trials():
    """The same trial with 30% of the drawn patients in a large-spleen group, with every
    patient in it (share 1), and without groups."""
    return (run_trial(_trial([_group(0.3)])), run_trial(_trial([_group(1.0)])),
            run_trial(_trial()))


def test_members_are_the_patients_of_an_all_member_trial_and_the_rest_of_a_plain_one(
        three_trials):
    # patients are simulated independently, so patient i of the mixture trial has, row for
    # row, the endpoints he has where everyone is in his group (a member) or where nobody
    # is (the rest): both trials draw him with the same random effects
    mixed, everyone, nobody = three_trials
    table = mixed.subjects
    assert set(table.population_group) == {"large spleen", REST}
    for label, other in (("large spleen", everyone.subjects), (REST, nobody.subjects)):
        part = table[table.population_group == label].drop(columns="population_group")
        keyed = other.drop(columns="population_group", errors="ignore").set_index(
            ["arm", "patient"])
        expected = keyed.loc[list(zip(part.arm, part.patient))].reset_index()
        pd.testing.assert_frame_equal(part.reset_index(drop=True)[expected.columns],
                                      expected, check_exact=True)
    # and each enrolled patient's label is the group the variability drew him in
    spec = mixed.spec
    for index, arm in enumerate(spec.arms):
        rows = table[table.arm == arm.name]
        seed = trial_module._arm_seed(spec.seed, trial_module.arm_stream(spec, index))
        drawn = spec.variability.membership(spec.subjects_per_arm, seed)
        assert list(rows.population_group) == [spec.variability.labels[k]
                                               for k in drawn[rows.patient]]


def test_all_member_trial_equals_the_typical_value_stated_for_the_population(three_trials):
    # share 1 with spleen_volume_ratio 5 is the trial whose [population] typical says 5
    _, everyone, _ = three_trials
    stated = run_trial(_trial(typical=LARGE_SPLEEN))
    pd.testing.assert_frame_equal(
        everyone.subjects.drop(columns="population_group"), stated.subjects,
        check_exact=True)


def test_group_summary_splits_each_arms_enrolled(three_trials, tmp_path):
    mixed = three_trials[0]
    by_group = trial_module.subgroup_summary(mixed, "population_group")
    for arm, row in mixed.summary.iterrows():
        part = by_group[by_group.arm == arm]
        assert part.enrolled.sum() == row.enrolled
        for record in part.itertuples():  # each group's response rate from its patients
            patients = mixed.subjects[(mixed.subjects.arm == arm)
                                      & (mixed.subjects.population_group
                                         == record.population_group)]
            assert record.response_pct == pytest.approx(100 * patients.responder.mean())
    files = [p.name for p in pp.write_trial(mixed, tmp_path / "out")]
    assert "summary_by_population_group.csv" in files
    record = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert record["design"]["population_mixture"] == [
        {"name": "large spleen", "share": 0.3, "typical": LARGE_SPLEEN, "cv": {},
         "source": ""}]
    dictionary = pd.read_csv(tmp_path / "out" / "data_dictionary.csv")
    assert ((dictionary.file == "patients.csv")
            & (dictionary.column == "population_group")).any()
    assert "By population group" in (tmp_path / "out" / "report.md").read_text()


def test_the_same_patients_whatever_the_chunks():
    from plateletpd.study.distributed import map_chunks, run_trials_chunked

    spec = _trial([_group(0.3)], subjects=40)
    expected = run_trial(spec)
    for chunk in (7, 1000):
        got = run_trials_chunked([spec], lambda f, t, shared: map_chunks(
            f, t, None, shared=shared), chunk)[0]
        pd.testing.assert_frame_equal(expected.subjects, got.subjects, check_exact=True)


def test_a_fit_reads_a_mixture_trials_patients_as_the_trial_draws_them(tmp_path):
    # the fit's seam (inference/trial_arms.py) draws the trial's patients with their
    # groups: its patient table at the trial's own typical values is run_trial's
    from plateletpd.inference.trial_arms import TrialArms
    from plateletpd.io.outcomes import bundled_outcomes_path, load_outcomes

    path = tmp_path / "mixture.toml"
    path.write_text(MIXTURE_FILE)
    spec = pp.load_trial_spec(path)
    data = load_outcomes(bundled_outcomes_path())
    arms = TrialArms.create(path, spec.model, data)
    tables, _ = arms.patient_tables({})
    expected = run_trial(spec).subjects
    for name, table in tables.items():
        want = expected[expected.arm == name].reset_index(drop=True)
        pd.testing.assert_frame_equal(table[want.columns].reset_index(drop=True), want,
                                      check_exact=True)


# a user's file: the Soff 2019 design's observation arm (trials/soff2019_romiplostim.toml)
# with a fifth of the screened drawn with a large spleen; 150 screened for a fast test
MIXTURE_FILE = """
[trial]
name = "mixture"
model = "cit_marrow_reserve"
fit = "default"
seed = 3
subjects_per_arm = 150
follow_up_days = 28
visit_every_days = 7
data_study = "soff2019_romiplostim_cit"

[population]
covariates = { body_weight = 65 }

[[population.mixture]]
name = "large spleen"
share = 0.2
typical = { spleen_volume_ratio = 5 }
source = "an illustration (models/cit_marrow_reserve.md, splenic pooling)"

[enrolment]
chemotherapy = "chemotherapy 1 dose d1"
entry_below = false

[[arms]]
name = "observation"
data_arm = "observation"
"""


@pytest.mark.parametrize("group, expected", [
    ('name = "g"\nshare = 0.2\ntypical = { spleen_volum_ratio = 5 }',
     "did you mean 'spleen_volume_ratio'"),
    ('name = "g"\nshare = 0.2\ntypical = { spleen_volume_ratio = 500 }',
     "is outside its bounds"),
    ('name = "g"\nshare = 1.5\ntypical = { spleen_volume_ratio = 5 }',
     "at most 1"),
    ('name = "g"\nshare = 0.6\ntypical = { spleen_volume_ratio = 5 }\n'
     '[[population.mixture]]\nname = "h"\nshare = 0.6\ntypical = { spleen_volume_ratio = 2 }',
     "add up to 1.2"),
    ('name = "rest"\nshare = 0.2\ntypical = { spleen_volume_ratio = 5 }', "'rest'"),
    ('name = "g"\nshare = 0.2', "at least one typical value"),
    ('name = "g"\nshare = 0.2\ncv = { spleen_volum_ratio = 0.3 }',
     "did you mean 'spleen_volume_ratio'"),
])
def test_bad_mixture_in_a_trial_file_exits_2_with_the_place_and_the_fix(
        tmp_path, capsys, group, expected):
    text = MIXTURE_FILE.replace(
        'name = "large spleen"\nshare = 0.2\ntypical = { spleen_volume_ratio = 5 }\n'
        'source = "an illustration (models/cit_marrow_reserve.md, splenic pooling)"', group)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TrialSpecError, match="population.mixture|population\\] mixture"):
        pp.load_trial_spec(path)
    assert main(["trial", str(path), "--out", str(tmp_path / "out")]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_group_may_not_set_the_anchored_parameter(tmp_path):
    # [population] anchor scales every patient's value of its parameter; a group fixing it
    # would be scaled too, so the combination is refused
    text = MIXTURE_FILE.replace("typical = { spleen_volume_ratio = 5 }",
                                "typical = { chemotherapy_sensitivity = 2 }").replace(
        "covariates = { body_weight = 65 }",
        'covariates = { body_weight = 65 }\nanchor = { nadir_below = 50, percent = 25, '
        'source = "a test" }')
    path = tmp_path / "anchored.toml"
    path.write_text(text)
    with pytest.raises(TrialSpecError, match="anchor solves"):
        pp.load_trial_spec(path)


def test_a_fit_configurations_own_population_refuses_a_mixture_and_says_where_it_goes(
        tmp_path):
    # a fit's [population] draws every arm's patients; a mixture belongs to a trial file
    from plateletpd.inference.fitting import FitConfigError, load_fit_config

    text = ("[fit]\nname = \"mixture\"\nmodel = \"cit_marrow_reserve\"\nseed = 1\n"
            "[population]\ncv = { chemotherapy_sensitivity = 0.3 }\n"
            "[[population.mixture]]\nname = \"g\"\nshare = 0.1\n"
            "typical = { spleen_volume_ratio = 2 }\n")
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(FitConfigError, match=r"belongs in a trial file"):
        load_fit_config(path)


# ---------------------------------------------------------------------- in a sweep


def test_a_share_sweep_moves_the_same_patients_into_the_group():
    from plateletpd.study.sweep import cell_spec, run_sweep

    spec = _trial([_group(0.3)])
    table = run_sweep(spec, {"share:large spleen": [0.0, 0.3]}, arms="untreated")
    # share 0 is the trial without groups, share 0.3 the file's own: each cell's summary
    # is that of the one-arm trial of the first arm's patients (the sweep's common
    # random numbers)
    for share, other in ((0.0, _trial()), (0.3, spec)):
        row = table[table["share:large spleen"] == share].iloc[0]
        expected = run_trial(trial_module.one_arm_trial(other, other.arms[0])).summary.iloc[0]
        assert row.enrolled == expected.enrolled
        assert row.response_pct == expected.response_pct
    # a larger share keeps every member and adds more (one uniform number per patient)
    seed = trial_module._arm_seed(spec.seed, 0)
    members = {share: cell_spec(spec, {"share:large spleen": share}).variability.membership(
        5000, seed) == 1 for share in (0.1, 0.3, 0.6)}
    assert np.all(members[0.3][members[0.1]]) and np.all(members[0.6][members[0.3]])
    assert members[0.1].sum() < members[0.3].sum() < members[0.6].sum()


def test_bad_share_sweeps_are_clear_errors():
    from plateletpd.study.sweep import run_sweep

    spec = _trial([_group(0.3), _group(0.5, {"spleen_volume_ratio": 2.0}, "mid")])
    with pytest.raises(pp.PlateletPDError, match="no \\[\\[population.mixture\\]\\] group "
                                                 "'large splen'.*did you mean"):
        run_sweep(spec, {"share:large splen": [0.1]})
    with pytest.raises(pp.PlateletPDError, match="it has no mixture"):
        run_sweep(_trial(), {"share:large spleen": [0.1]})
    with pytest.raises(pp.PlateletPDError, match="add up to 1.1"):
        run_sweep(spec, {"share:large spleen": [0.6]})
    with pytest.raises(pp.PlateletPDError, match="shares from 0 to 1"):
        run_sweep(spec, {"share:large spleen": [1.5]})


def test_a_groups_share_is_a_sensitivity_factor():
    # Morris screening of the untreated arm's response over the large-spleen share and the
    # typical damage: each sample's trial is the one-arm trial at those values (the same
    # patients); bad share factors are refused before any simulation
    from plateletpd.study.sensitivity import (Factor, SensitivityError, apply_factors,
                                              run_sensitivity)

    spec = _trial([_group(0.3)], subjects=40)
    factors = [Factor("share:large spleen", 0.0, 0.6),
               Factor("parameter:chemotherapy_sensitivity", 3.0, 5.0)]
    one = apply_factors(spec, "untreated", factors, [0.6, 4.0])
    assert one.variability.groups[0].share == 0.6
    assert one.model.parameters["chemotherapy_sensitivity"].value == 4.0
    result = run_sensitivity(spec, "untreated", factors, method="morris", samples=4)
    assert set(result.indices.factor) == {f.name for f in factors}
    with pytest.raises(SensitivityError, match="lies in \\[0, 1\\]"):
        Factor("share:large spleen", 0.2, 1.5)
    with pytest.raises(SensitivityError, match="did you mean 'large spleen'"):
        run_sensitivity(spec, "untreated", [Factor("share:large splen", 0.0, 0.5)],
                        method="morris", samples=4)
    two = _trial([_group(0.3), _group(0.5, {"spleen_volume_ratio": 2.0}, "mid")], subjects=40)
    with pytest.raises(SensitivityError, match="add up to 1.1"):
        run_sensitivity(two, "untreated", [Factor("share:large spleen", 0.0, 0.6)],
                        method="morris", samples=4)


def test_a_population_without_groups_draws_the_values_it_drew_before_mixtures():
    # the formulas of the code before mixtures (2026-12-06), written out with scalar
    # typical values: every transform's values equal bit for bit (the bundled fits'
    # trial files vary reserve_cycling_fraction logit-normally, and the slow test
    # reproduces their rows bit for bit)
    variability = Variability.from_cv({"a": 0.3, "f": 0.5, "c": 2.0},
                                      transforms={"f": "logitnormal", "c": "normal"})
    # 0.4768: a value whose logit numpy's vector log and math.log round differently here
    typical = {"a": 1.7, "f": 0.4768, "c": -0.4}
    eta = variability.eta(50_000, 8)
    values = variability.apply(typical, eta)
    np.testing.assert_array_equal(values["a"], 1.7 * np.exp(eta[:, 0]))
    np.testing.assert_array_equal(values["f"], 1 / (1 + np.exp(-(math.log(0.4768 / (1 - 0.4768))
                                                               + eta[:, 1]))))
    np.testing.assert_array_equal(values["c"], -0.4 + eta[:, 2])


def test_a_groups_covariate_scales_its_members_doses_as_a_stated_covariate_does():
    # body weight 40 kg for every patient through a group (share 1) is the trial whose
    # [population] covariates say 40: the same patients, the same ug/kg doses in ug, bit
    # for bit; and not the 65 kg trial (the weight reaches the doses). 40 and 65 kg are
    # sizes for a test; rhIL-11 25 ug/kg is the label dose (models/cit_marrow_reserve.md)
    def trial(population):
        return TrialSpec.create(
            arms=[{"name": "rhIL-11", "treatment": ["rhIL-11 25 ug/kg"], "max_days": 7,
                   "min_days": 7}], seed=3, subjects_per_arm=40, follow_up_days=35,
            response={"threshold": 100, "by_day": 14}, enrolment={"entry_below": 75},
            population={"cv": {"chemotherapy_sensitivity": 0.3}, **population})

    grouped = run_trial(trial({"covariates": {"body_weight": 65}, "mixture": [
        {"name": "light", "share": 1.0, "typical": {"body_weight": 40}}]})).subjects
    stated = run_trial(trial({"covariates": {"body_weight": 40}})).subjects
    heavier = run_trial(trial({"covariates": {"body_weight": 65}})).subjects
    pd.testing.assert_frame_equal(grouped.drop(columns="population_group"), stated,
                                  check_exact=True)
    assert not grouped.drop(columns="population_group").equals(heavier)
