"""Figures of the bundled CIT models for the README and cards.

    python scripts/make_figures.py     # writes, in docs/figures/:
    # cit_marrow_reserve_typical_patient.png  the default CIT model on its bundled fit (README)
    # cit_typical_patient.png, cit_feedback_comparison.png  cit_thrombopoiesis at its
    #                                          literature priors (its card)

The typical-patient scenario (entry below 75, daily until the morning count is >= 100, at
most 14 days) is defined once, in plateletpd.demo, and shared with `plateletpd demo`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a source checkout without installing

import plateletpd as pp

from plateletpd.demo import arm_table, typical_patient, typical_patient_figure

ONE_CYCLE = "chemotherapy 1 dose d1"  # the one-cycle scenario of the earlier model's figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures"), help="output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from plateletpd.model.library import default_fit, load_fitted_parameters

    reserve = pp.load_model("cit_marrow_reserve")
    fit = default_fit(reserve.name)
    reserve = reserve.with_parameters(load_fitted_parameters(fit)[1])
    arms = typical_patient(reserve)
    print(arm_table(arms).round(1).to_string())
    path = typical_patient_figure(arms, out / "cit_marrow_reserve_typical_patient.png",
                                  reserve.name, f"bundled fit {fit}")
    print(f"wrote {path}")
    # the earlier model keeps its card's one-cycle scenario
    model = pp.load_model("cit_thrombopoiesis")
    arms = typical_patient(model, chemotherapy=ONE_CYCLE, treated_cycle_day=1)
    print(arm_table(arms, treated_cycle_day=1).round(1).to_string())
    path = typical_patient_figure(arms, out / "cit_typical_patient.png", model.name,
                                  "literature priors", one_cycle=True)
    print(f"wrote {path}")
    feedback_comparison(model, out)
    return 0


def feedback_comparison(model, out: Path) -> None:
    """Untreated cycles with the mechanistic TPO feedback and with Friberg's empirical one."""
    times = np.arange(0, 42 * 24 + 1) / 24.0
    figure, axis = plt.subplots(figsize=(8.2, 5.0))
    for sensitivity, colour in ((3.0, "tab:green"), (5.5, "black"), (9.0, "tab:purple")):
        for mode, style in ((0.0, "-"), (1.0, "--")):
            result = pp.simulate(model, ONE_CYCLE, times=times,
                                 params={"chemotherapy_sensitivity": sensitivity,
                                         "feedback_mode": mode})
            axis.plot(result.times, result["platelets"], color=colour, ls=style, lw=1.8,
                      label=f"sensitivity {sensitivity:g}, "
                            + ("TPO feedback" if mode == 0 else "Friberg (circ0/circ)^0.19"))
    axis.axhline(100, color="grey", lw=0.8, ls=":")
    axis.set_xlabel("time since chemotherapy (days)")
    axis.set_ylabel("platelets (x10$^9$/L)")
    axis.set_title("Untreated cycle: mechanistic TPO feedback (solid) vs empirical feedback "
                   "(dashed)", fontsize=10)
    axis.set_xlim(0, 42)
    axis.set_ylim(0, None)
    axis.grid(alpha=0.25)
    axis.legend(fontsize=7.5, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14),
                frameon=False)
    figure.tight_layout()
    path = out / "cit_feedback_comparison.png"
    figure.savefig(path, dpi=130)
    plt.close(figure)
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
