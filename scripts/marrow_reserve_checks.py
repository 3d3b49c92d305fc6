"""Numbers for the validation table of models/cit_marrow_reserve.md (issue 17) and the
benchmarks/README.md rows, computed on the cohorts of tests/test_cit_science.py (same
population CVs, seeds and designs).

    python scripts/marrow_reserve_checks.py checks     # every check's number (~1 min)
    python scripts/marrow_reserve_checks.py cost       # per-subject cost vs cit_thrombopoiesis
    python scripts/marrow_reserve_checks.py cost lockstep [ATOL]  # DOP853 rtol 1e-4 in
                                                        # lock step (atol 1e-9 unless given)
    python scripts/marrow_reserve_checks.py million    # 10^6-subject endpoints cohort (run
                                                        # alone: its peak memory is its own)
    python scripts/marrow_reserve_checks.py montecarlo # Monte Carlo error of the calibration
    python scripts/marrow_reserve_checks.py ordering   # Yuan design at 0.01-10x drug potency
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

import plateletpd as pp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import test_cit_science as science

from plateletpd.study.cohort import ArmDesign
from plateletpd.study.cycles import ChemotherapyCourse, simulate_course_arm
from plateletpd.study.endpoints import ResponseRule, subject_values

WEIGHT = science.WEIGHT


def mean_of(arm, endpoint, day=None, rule=None):
    rule = rule or ResponseRule(threshold=100, rise=50, by_day=14)
    return float(np.nanmean(subject_values(arm, endpoint, None, day, "treatment_start", rule,
                                           100, smooth=False)))


def checks(model):
    start = time.perf_counter()
    times = np.arange(0, 43, 0.25)
    vectors = science.cohort(model, 1000, 17)
    result = pp.simulate_batch(model, f"chemotherapy {science.CARBOPLATIN_DOSE} dose d1",
                               times=times, params=science.as_columns(model, vectors),
                               covariates=WEIGHT)
    plt = result.output("platelets")
    window = times < 35
    nadir_index = plt[:, window].argmin(axis=1)
    peak = np.array([row[i:].max() for row, i in zip(plt, nadir_index)])
    print(f"carboplatin-like {science.CARBOPLATIN_DOSE} dose (n 1000): PLT < 50 "
          f"{100 * (plt.min(axis=1) < 50).mean():.1f}%; median nadir "
          f"{np.median(plt.min(axis=1)):.0f} on study day "
          f"{np.median(times[window][nadir_index] + 1):.2f}; > 100 on day 28 "
          f"{100 * (plt[:, np.searchsorted(times, 27.0)] > 100).mean():.1f}%; median peak / "
          f"baseline {np.median(peak / plt[:, 0]):.2f}")
    course = ChemotherapyCourse(regimen="chemotherapy 1 dose", cycle_days=21, cycles=4,
                                follow_up_days=21, points_per_day=4)
    arm = simulate_course_arm(model, ArmDesign(name="chemotherapy only", entry_below=None),
                              course, science.cohort(model, 500, 18))
    print("four 21-day cycles (n 500), median nadirs:",
          [round(float(np.median(arm.extra["course"].nadir(c))), 1) for c in (1, 2, 3, 4)])
    arm = science.persistent_arm.__wrapped__(model)
    rule = ResponseRule(threshold=100, rise=None, by_day=21)
    print(f"persistent CIT, untreated (Soff design; 2000 screened): eligible {arm.n}; entry "
          f"mean {mean_of(arm, 'plt_count', 0, rule):.0f}; corrected within 3 weeks "
          f"{100 * mean_of(arm, 'response_proportion', rule=rule):.1f}%; week-3 mean "
          f"{mean_of(arm, 'plt_count', 21, rule):.0f}")
    arms = science.yuan_treated_arms(model, {**science.YUAN_ARMS, "untreated": ()})
    for name, arm in arms.items():
        print(f"Yuan design, {name} (1000 screened, {arm.n} enrolled): response "
              f"{100 * mean_of(arm, 'response_proportion'):.1f}%; day-14 mean "
              f"{mean_of(arm, 'plt_count', 14):.0f}")
    print(f"({time.perf_counter() - start:.0f} s)")


def cost(n=2000, repeats=5, lockstep=False, atol=1e-9):
    """Per-subject cost, 2000 subjects x 42 days, the two models alternated within each
    repeat (so host load hits both alike), after a warm-up; median and best. Default
    DOPRI5, one subject at a time; ``lockstep``: DOP853 with rtol 1e-4 in lock step, the
    cohort engine (``atol``: the solver's default 1e-9; benchmarks/million.py takes 1e-7)."""
    times = np.arange(0, 43, 1.0)
    regimen = "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22"
    rng = np.random.default_rng(5)
    depth = np.exp(rng.normal(0, 0.3, n))
    models = {name: pp.load_model(name) for name in ("cit_thrombopoiesis",
                                                     science.MODEL_PATH)}
    params = {name: {"chemotherapy_sensitivity":
                     m.parameters["chemotherapy_sensitivity"].value * depth}
              for name, m in models.items()}
    # lock step as benchmarks/million.py runs it: outputs only (keeping 20,000 subjects'
    # states would time page faults of a 190 MB array as much as the integration)
    options = dict(solver=pp.DormandPrince853(rtol=1e-4, atol=atol), execution="lockstep",
                   keep_states=False) if lockstep else {}
    elapsed = {name: [] for name in models}
    cpu = {name: [] for name in models}  # CPU time of the process: less hit by other jobs
    for name, m in models.items():
        pp.simulate_batch(m, regimen, times=times, params=params[name], covariates=WEIGHT,
                          **options)
    for _ in range(repeats):
        for name, m in models.items():
            begin, begin_cpu = time.perf_counter(), time.process_time()
            pp.simulate_batch(m, regimen, times=times, params=params[name], covariates=WEIGHT,
                              **options)
            elapsed[name].append((time.perf_counter() - begin) / n * 1e6)
            cpu[name].append((time.process_time() - begin_cpu) / n * 1e6)
    for name, values in elapsed.items():
        print(f"{name}: median {np.median(values):.0f} us per subject, best "
              f"{min(values):.0f}; CPU median {np.median(cpu[name]):.0f} us "
              f"(n {n}, {repeats} repeats)")
    for what, table in (("wall", elapsed), ("CPU", cpu)):
        old, new = (np.array(v) for v in table.values())
        print(f"ratio new / old ({what}): median of paired ratios {np.median(new / old):.2f}, "
              f"best/best {new.min() / old.min():.2f}")


def million(n=1_000_000, chunk=10_000):
    """10^6 subjects, 28 days, endpoints only, as benchmarks/million.py (same regimen,
    solver, chunking and endpoint reduction) on this model and the test population."""
    from benchmarks.cases import OUTPUT_DAYS
    from benchmarks.million import endpoints, peak_memory_mb

    model = pp.load_model(science.MODEL_PATH)
    regimen = "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22"
    solver = pp.DormandPrince853(rtol=1e-4, atol=1e-7)
    rng = np.random.default_rng(2024)
    params = {}
    for name, cv in science.POPULATION_CV.items():
        declared = model.parameters[name]
        omega = np.sqrt(np.log1p(cv * cv))
        params[name] = np.clip(declared.value * np.exp(omega * rng.standard_normal(n)),
                               declared.lower, declared.upper)
    pp.simulate_batch(model, regimen, times=OUTPUT_DAYS,
                      params={k: v[:8] for k, v in params.items()}, solver=solver,
                      covariates=WEIGHT)
    begin, failed, nadir = time.perf_counter(), 0, 0.0
    for lo in range(0, n, chunk):
        batch = pp.simulate_batch(model, regimen, times=OUTPUT_DAYS,
                                  params={k: v[lo:lo + chunk] for k, v in params.items()},
                                  solver=solver, covariates=WEIGHT, keep_states=False)
        nadir += float(np.nansum(endpoints(batch.output("platelets"))["nadir"]))
        failed += int(np.sum(batch.status != 0))
    print(json.dumps({"model": model.name, "subjects": n, "chunk": chunk,
                      "wall_seconds": round(time.perf_counter() - begin, 1),
                      "peak_rss_mb": round(peak_memory_mb()), "failed": failed,
                      "mean_nadir": round(nadir / n, 1)}))


def montecarlo(folder="fits/cit_marrow_reserve_calibration", replicates=5, large=1000):
    """Monte Carlo error of the calibration's predictions at its optimum: the SD of each
    row's prediction over ``replicates`` cohorts of the fit's size (seeds seed+1...), as a
    fraction of the row's standard error, and the prediction with ``large`` patients."""
    from plateletpd.inference.fitting import load_fit_config
    from plateletpd.model.library import load_fit_record

    problem = load_fit_config(Path(folder) / "config.toml")
    record = load_fit_record(folder)
    values = problem.parameters.valuesdict()
    values.update({k: v["value"] for k, v in record["parameters"].items()})
    subjects = problem.eta.shape[0]
    base = problem.predict(values)
    runs = []
    for k in range(1, replicates + 1):
        problem.eta = problem.variability.eta(subjects, problem.seed + k)
        runs.append(problem.predict(values)["predicted"].to_numpy())
    problem.eta = problem.variability.eta(large, problem.seed + 100)
    big = problem.predict(values)
    base["mc_sd"] = np.std(runs, axis=0, ddof=1)
    base["mc_sd_over_se"] = base.mc_sd / base.standard_error
    base[f"predicted_{large}"] = big["predicted"]
    base[f"residual_{large}"] = big["residual"]
    columns = ["study", "arm", "endpoint", "observed", "standard_error", "predicted", "residual",
               "mc_sd_over_se", f"predicted_{large}", f"residual_{large}"]
    print(f"{subjects} patients per arm; Monte Carlo SD over {replicates} cohorts")
    print(base[columns].to_string(float_format=lambda v: f"{v:.3g}"))


def ordering(folder="fits/cit_marrow_reserve_calibration"):
    """The Yuan 2025 design (tests/test_cit_science.py: 1000 screened, seed 20, typical
    damage, no study parameter) with rhTPO's exposure and hetrombopag's potency scaled
    together from 0.1x to 100x of the bundled fit's: how far ahead of the better
    monotherapy the combination can get under the shared ceiling (issue 17 asks >= 10)."""
    from plateletpd.model.library import load_fitted_parameters

    base = pp.load_model(science.MODEL_PATH).with_parameters(
        load_fitted_parameters(folder)[1])
    exposure = base.parameters["rhtpo_bioavailability"].value
    potency = base.parameters["het_ec50"].value
    untreated = science.yuan_treated_arms(base, {"untreated": ()})["untreated"]
    print(f"untreated: {science.yuan_response(untreated):.1f}% respond")
    for rhtpo, het in [(0.1, 0.1), (0.3, 1 / 3), (1.0, 1.0), (1.0, 10.0), (1.0, 100.0)]:
        model = base.with_parameters({"rhtpo_bioavailability": exposure * rhtpo,
                                      "het_ec50": potency / het})
        arms = science.yuan_treated_arms(model)
        response = {name: science.yuan_response(arm) for name, arm in arms.items()}
        day14 = science.day14_means(arms)
        better = max(response["rhTPO"], response["hetrombopag"])
        print(f"rhTPO exposure x{rhtpo:g}, hetrombopag potency x{het:g}: responses "
              + " / ".join(f"{response[k]:.1f}" for k in science.YUAN_ARMS)
              + f"% (combination {response['hetrombopag+rhTPO'] - better:+.1f} over the "
              f"better of rhTPO and hetrombopag); day-14 means "
              + " / ".join(f"{day14[k]:.0f}" for k in science.YUAN_ARMS))


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "checks"
    if what == "checks":
        checks(pp.load_model(science.MODEL_PATH))
    elif what == "cost":
        # cost lockstep [ATOL]
        lockstep = len(sys.argv) > 2 and sys.argv[2] == "lockstep"
        # lock step is ~5x faster per subject: more subjects and repeats for a steady ratio
        cost(*((20_000, 9) if lockstep else (2000, 5)), lockstep=lockstep,
             atol=float(sys.argv[3]) if len(sys.argv) > 3 else 1e-9)
    elif what == "montecarlo":
        montecarlo()
    elif what == "ordering":
        ordering()
    elif what == "million":
        million(int(float(sys.argv[2])) if len(sys.argv) > 2 else 1_000_000)
    else:
        sys.exit(f"unknown {what!r}: give checks, cost, million, montecarlo or ordering")
