"""A dose before chemotherapy within a course ("rhTPO the day before carboplatin", Vadhan-Raj
2000, Ann Intern Med 132:364, PMID 10691586, as a blind user test read it, 2026-12-07, who
found no way to write it): the cycle begins on the day of that dose and its chemotherapy is
given on a later day of it (`regimen = "chemotherapy 1 dose d2"`, `support = ["rhTPO ...
d1"]`), as docs/trial_files.md's checklist says.

Properties that could fail: a cycle whose chemotherapy is on its day 2 is the day-1 cycle
one day later, patient for patient (the same curve shifted, to the solver's tolerance), and
is read from its chemotherapy (the same nadir, days below and recovery); a support dose on day 1 comes one day before each cycle's chemotherapy in every cycle given.
"""

import numpy as np
# tests/test_cycles.py's 40 virtual patients of the Yuan 2025 trial
from test_cycles import cohort  # noqa: F401 (a fixture)

from plateletpd.study.cycles import ChemotherapyCourse, CycleBlock, simulate_course

# one cycle at the bundled fit's typical depth, followed 21 days
ON_DAY_1 = ChemotherapyCourse(regimen="chemotherapy 1 dose", cycle_days=21, cycles=1)
ON_DAY_2 = ChemotherapyCourse(regimen="chemotherapy 1 dose d2", cycle_days=21, cycles=1)


def test_chemotherapy_on_the_cycles_day_2_is_the_same_cycle_a_day_later(cohort):
    model, vectors = cohort
    first, later = simulate_course(model, ON_DAY_1, vectors), simulate_course(model, ON_DAY_2,
                                                                               vectors)
    shift = ON_DAY_1.points_per_day  # grid points in one day
    assert np.allclose(first.times[1] - first.times[0], 1 / shift)
    # followed 21 days from its chemotherapy, the later course's grid is a day longer; from
    # its day 2 on it is the whole of the first (interpolation tolerance of
    # tests/test_cycles.py, 10^9/L: the solver's steps fall differently on the shifted grid)
    assert later.platelets.shape[1] == first.platelets.shape[1] + shift
    np.testing.assert_allclose(later.platelets[:, shift:], first.platelets, atol=1e-3,
                               rtol=0)
    # and the cycle is read from its chemotherapy: the same nadir, peak, days below and
    # recovery day
    ours, theirs = later.readings(1, (50, 100), (100,)), first.readings(1, (50, 100), (100,))
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], atol=1e-3, rtol=0, err_msg=key)
    # the day before chemotherapy is the healthy steady state
    np.testing.assert_allclose(later.platelets[:, :shift + 1],
                               later.platelets[:, :1].repeat(shift + 1, axis=1), rtol=1e-9)


def test_a_support_dose_on_day_1_comes_a_day_before_each_cycles_chemotherapy(cohort):
    model, _ = cohort
    course = ChemotherapyCourse(regimen="chemotherapy 1 dose d2", cycle_days=21, cycles=3)
    block = CycleBlock.build(model, course, support=("rhTPO 15000 U d1",),
                             support_cycles=(1, 2, 3))
    for k in range(3):
        chemo = block.offset[(block.cycle == k) & block.chemotherapy]
        support = block.offset[(block.cycle == k) & ~block.chemotherapy]
        assert chemo.tolist() == [1.0] and support.tolist() == [0.0]
