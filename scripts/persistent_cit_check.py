"""A Soff 2019-like untreated persistent-CIT arm, written as a user would (not in any fit):
usage: python scripts/persistent_cit_check.py [MODEL]  (default: cit_thrombopoiesis with its
bundled fit; another model runs at its file values). Eligible = PLT < 100 on every day from
day 29 to day 56 after one chemotherapy dose; variability as trials/yuan2025.toml (draws
clipped to the parameter bounds);
observed (Soff 2019, J Clin Oncol, untreated arm): 1 of 8 corrected (>= 100) within 3 weeks,
mean count at week 3 = 57."""
import numpy as np, plateletpd as pp
from plateletpd.model.library import load_fitted_parameters
import sys
if len(sys.argv) > 1:
    fitted = {}
else:
    _, fitted = load_fitted_parameters("cit_calibration")
model = pp.load_model(sys.argv[1] if len(sys.argv) > 1 else "cit_thrombopoiesis").with_parameters(fitted)
rng = np.random.default_rng(2019); n = 20000
cv = {"chemotherapy_sensitivity": 0.30, "platelets_baseline": 0.17}  # trials/yuan2025.toml
sens = float(fitted.get("chemotherapy_sensitivity", model.parameters["chemotherapy_sensitivity"].value))
for typical in (sens, 10.88):
    params = {k: (typical if k == "chemotherapy_sensitivity" else model.parameters[k].value)
              * np.exp(np.sqrt(np.log(1 + c * c)) * rng.standard_normal(n)) for k, c in cv.items()}
    lo, hi = model.parameters["chemotherapy_sensitivity"].lower, model.parameters["chemotherapy_sensitivity"].upper
    params["chemotherapy_sensitivity"] = np.clip(params["chemotherapy_sensitivity"], lo, hi)
    r = pp.simulate_batch(model, "chemotherapy 1 dose d1", times=np.arange(0, 78.0),
                          params=params, covariates={"body_weight": 65.0})
    plt = r.output("platelets")
    eligible = np.all(plt[:, 28:57] < 100, axis=1) & r.success
    e = plt[eligible]
    corrected = np.any(e[:, 57:78] >= 100, axis=1)
    print(f"typical sensitivity {typical:.2f}: eligible {eligible.sum()} of {n}; "
          f"entry mean {e[:, 56].mean():.0f}; corrected within 3 weeks {100*corrected.mean():.1f}%; "
          f"mean at week 3 {e[:, 77].mean():.0f}; median days to 100 "
          f"{np.median(np.argmax(e[:, 57:] >= 100, axis=1)[corrected]):.0f}")
