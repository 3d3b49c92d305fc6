"""Write the twenty-third session's candidate structure of cit_marrow_reserve to a scratch
model file: a bounded progenitor niche and a sharp exhaustion threshold on the reserve's
regeneration (models/cit_marrow_reserve.md, "The reserve's threshold and the bounded niche";
probed and refitted, not adopted).

    python scripts/threshold_niche_variant.py OUT.toml [--niche-max-expansion 5]
        [--exhaustion-exponent 3] [--exhaustion-level 0.3] [--regeneration-rate 0.005]
    python scripts/structure_probes.py OUT.toml --soff-diagnosis

The changes, applied to the bundled file's text (a clear error if it no longer matches):

* the committed pool's capacity P0 x R x A becomes P0 x R x A_b, A_b = A / (1 + (A - 1) /
  (K_n - 1)) (`niche_max_expansion` K_n), while a remnant still regrows at k_prol x d x A;
* the reserve's exhaustion factor R (1 + K) / (R + K) becomes R^m (1 + K^m) / (R^m + K^m)
  (`reserve_exhaustion_exponent` m), with the level K and the regeneration rate set;
* the healthy-volunteer potencies that the bounded niche moves, recalibrated on it (the
  card gives how): `romiplostim_sc50` 0.00177 ng/mL (peak 1.75 x after 2 ug/kg), and
  `avatrombopag_max_signal` 1.0 with `avatrombopag_ec50` 17.3 ng/mL (ADAPT's doubling;
  a maximal signal of 0.5 reaches only 1.87 x with the bound).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "cit_marrow_reserve.toml"

OLD_RESERVE = ('reserve = "reserve_regeneration_rate * reserve * (1 - reserve) * reserve * '
               '(1 + reserve_exhaustion_level) / (reserve + reserve_exhaustion_level) - '
               'reserve_cycling_fraction * chemo_kill * reserve"')
NEW_RESERVE = ('reserve = "reserve_regeneration_rate * reserve * (1 - reserve) * '
               'reserve_exhaustion_factor - reserve_cycling_fraction * chemo_kill * reserve"')
OLD_NICHE = ('progenitors = "k_prol * progenitors * ((1 + progenitor_density_feedback * '
             'amplification) * reserve / (reserve + progenitor_density_feedback * progenitors '
             '/ progenitors_0) - 1) - chemo_kill * progenitors"')
NEW_NICHE = ('progenitors = "k_prol * progenitors * ((1 + progenitor_density_feedback * '
             'amplification) * reserve / (reserve + progenitor_density_feedback * progenitors '
             '* amplification / (progenitors_0 * niche_amplification)) - 1) - chemo_kill * '
             'progenitors"')
DERIVED = ('\nniche_amplification = "amplification / (1 + (amplification - 1) / '
           '(niche_max_expansion - 1))"\nreserve_exhaustion_factor = "reserve ** '
           'reserve_exhaustion_exponent * (1 + reserve_exhaustion_level ** '
           'reserve_exhaustion_exponent) / (reserve ** reserve_exhaustion_exponent + '
           'reserve_exhaustion_level ** reserve_exhaustion_exponent)"')


def fail(message: str) -> None:
    print(f"threshold_niche_variant: {message}", file=sys.stderr)
    sys.exit(2)


def variant_text(text: str, niche: float, exponent: float, level: float, rate: float) -> str:
    for old in (OLD_RESERVE, OLD_NICHE):
        if text.count(old) != 1:
            fail(f"the bundled model file no longer holds {old[:40]!r}...: update this script")
    text = text.replace(OLD_RESERVE, NEW_RESERVE).replace(OLD_NICHE, NEW_NICHE)
    anchor = text.index('\namplification = "')
    end = text.index("\n", anchor + 1)
    text = text[:end] + DERIVED + text[end:]
    anchor = text.index("\nmpl_production_ceiling = {")
    end = text.index("\n", anchor + 1)
    text = text[:end] + (
        f'\nniche_max_expansion = {{ value = {niche}, unit = "1", lower = 1.01, upper = 1000.0, '
        'description = "largest niche expansion under stimulation (candidate)", source = '
        '"candidate of models/cit_marrow_reserve.md, The reserve\'s threshold and the bounded '
        'niche" }'
        f'\nreserve_exhaustion_exponent = {{ value = {exponent}, unit = "1", lower = 1.0, '
        'upper = 8.0, description = "sharpness of the reserve\'s exhaustion (candidate)", '
        'source = "candidate of models/cit_marrow_reserve.md" }') + text[end:]

    def set_value(name: str, value: float) -> None:
        nonlocal text
        pattern = re.compile(r"^(" + name + r" = \{ value = )[^,]+", re.M)
        if len(pattern.findall(text)) != 1:
            fail(f"parameter {name!r} not found once in the bundled model file")
        text = pattern.sub(lambda match: match.group(1) + repr(float(value)), text)

    set_value("reserve_exhaustion_level", level)
    set_value("reserve_regeneration_rate", rate)
    set_value("romiplostim_sc50", 0.00177)
    set_value("avatrombopag_max_signal", 1.0)
    set_value("avatrombopag_ec50", 17.3)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the scratch model file to write")
    parser.add_argument("--niche-max-expansion", type=float, default=5.0)
    parser.add_argument("--exhaustion-exponent", type=float, default=3.0)
    parser.add_argument("--exhaustion-level", type=float, default=0.3)
    parser.add_argument("--regeneration-rate", type=float, default=0.005)
    args = parser.parse_args()
    # the ranges of the parameters the file declares (outside them it would not load)
    for name, value, low, high, why in (
            ("--niche-max-expansion", args.niche_max_expansion, 1.01, 1000.0,
             "the largest niche relative to the healthy one"),
            ("--exhaustion-exponent", args.exhaustion_exponent, 1.0, 8.0,
             "1 is the bundled gradual form"),
            ("--exhaustion-level", args.exhaustion_level, 0.0, 1.0,
             "a reserve level relative to the healthy 1"),
            ("--regeneration-rate", args.regeneration_rate, 1e-6, 0.5, "per hour")):
        if not low <= value <= high:
            fail(f"{name} must lie in [{low}, {high}] ({why}), given {value}")
    if not args.out.parent.is_dir():
        fail(f"the folder of {args.out} does not exist; create it or give another path")
    if args.out.resolve() == MODEL.resolve():
        fail("refusing to overwrite the bundled model file; give a scratch path")
    args.out.write_text(variant_text(MODEL.read_text(), args.niche_max_expansion,
                                     args.exhaustion_exponent, args.exhaustion_level,
                                     args.regeneration_rate))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
