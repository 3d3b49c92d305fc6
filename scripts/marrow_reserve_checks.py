"""Numbers for the validation table of models/cit_marrow_reserve.md and the per-subject cost
against cit_thrombopoiesis (issue 17). Run: python scripts/marrow_reserve_checks.py
Uses the cohorts of tests/test_cit_marrow_reserve.py (same CVs and seeds)."""

import sys
import time
from pathlib import Path

import numpy as np

import plateletpd as pp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_cit_marrow_reserve import CARBOPLATIN_DOSE, MODEL_PATH, WEIGHT, run_cohort  # noqa: E402


def main():
    model = pp.load_model(MODEL_PATH)
    t = np.arange(0, 43, 0.25)
    plt, params = run_cohort(model, f"chemotherapy {CARBOPLATIN_DOSE} dose d1", t)
    window = t < 35
    nadir_index = plt[:, window].argmin(axis=1)
    nadir = plt[:, window].min(axis=1)
    peak = np.array([row[i:].max() for row, i in zip(plt, nadir_index)])
    print(f"carboplatin-like {CARBOPLATIN_DOSE} dose: median nadir {np.median(nadir):.0f}, "
          f"study day {np.median(t[window][nadir_index] + 1):.1f}; <50 {100 * (nadir < 50).mean():.0f}%; "
          f">100 on day 28 {100 * (plt[:, np.searchsorted(t, 27.0)] > 100).mean():.1f}%; "
          f"median peak/baseline {np.median(peak / params['platelets_baseline']):.2f}")
    t = np.arange(0, 84, 0.25)
    plt, _ = run_cohort(model, "chemotherapy 1 dose q21d x4", t, seed=18)
    print("four cycles, median nadirs:",
          [round(float(np.median(plt[:, (t >= s) & (t < s + 21)].min(axis=1))), 1)
           for s in (0, 21, 42, 63)])
    t = np.arange(0, 131, 0.5)
    entry = 98.0
    for label, regimen in (("untreated", ""),
                           ("hetrombopag 7.5 mg qd 21 d", " + hetrombopag 7.5 mg qd d99-119"),
                           ("rhTPO 15000 U qd 14 d", " + rhTPO 15000 U qd d99-112")):
        plt, _ = run_cohort(model, "chemotherapy 1 dose q21d x4" + regimen, t, seed=19)
        before = (t >= entry - 28) & (t <= entry)
        eligible = (plt[:, before] < 100).all(axis=1)
        after = (t > entry) & (t <= entry + 21)
        corrected = (plt[eligible][:, after] >= 100).any(axis=1).mean()
        print(f"persistent CIT ({label}): eligible {100 * eligible.mean():.1f}% "
              f"(n {eligible.sum()}), entry mean {plt[eligible][:, np.searchsorted(t, entry)].mean():.0f}, "
              f"corrected within 3 wk {100 * corrected:.1f}%, week-3 mean "
              f"{plt[eligible][:, np.searchsorted(t, entry + 21)].mean():.0f}")
    t = np.arange(0, 29, 0.5)
    for treatment in ("hetrombopag 7.5 mg qd d2-15", "rhTPO 15000 U qd d2-15",
                      "hetrombopag 7.5 mg qd d2-15 + rhTPO 15000 U qd d2-15", None):
        regimen = "chemotherapy 1 dose d1" + (f" + {treatment}" if treatment else "")
        plt, _ = run_cohort(model, regimen, t, n=1000, seed=20)
        day14 = plt[:, np.searchsorted(t, 14.0)]
        print(f"{treatment or 'untreated'}: treatment day 14 median {np.median(day14):.0f}, "
              f"mean {day14.mean():.0f}, nadir median {np.median(plt.min(axis=1)):.0f}")
    for sensitivity in (4.0, 10.0):
        r = pp.simulate(model, "chemotherapy 1 dose d1", times=np.arange(0, 43, 0.25),
                        params={"chemotherapy_sensitivity": sensitivity}, covariates=WEIGHT)
        print(f"sensitivity {sensitivity}: nadir {r['platelets'].min():.1f}, "
              f"TPO peak {r['tpo'].max():.0f} pg/mL, production factor peak "
              f"{r['production_factor'].max():.2f}")
    benchmark()


def benchmark(n=2000, repeats=3):
    """Per-subject cost, 2000 subjects x 42 days, after a warm-up, both models side by side."""
    times = np.arange(0, 43, 1.0)
    rng = np.random.default_rng(5)
    regimen = "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22"
    best = {}
    for name in ("cit_thrombopoiesis", MODEL_PATH):
        model = pp.load_model(name)
        params = {"chemotherapy_sensitivity": model.parameters["chemotherapy_sensitivity"].value
                  * np.exp(rng.normal(0, 0.3, n))}
        pp.simulate_batch(model, regimen, times=times, params=params, covariates=WEIGHT)
        elapsed = []
        for _ in range(repeats):
            start = time.perf_counter()
            pp.simulate_batch(model, regimen, times=times, params=params, covariates=WEIGHT)
            elapsed.append(time.perf_counter() - start)
        best[name] = min(elapsed) / n * 1e6
        print(f"{name}: {best[name]:.1f} us per subject (best of {repeats})")
    print(f"ratio new / old: {best[MODEL_PATH] / best['cit_thrombopoiesis']:.2f}")


if __name__ == "__main__":
    main()
