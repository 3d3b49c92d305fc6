"""The largest labelled single doses of the thrombopoietic drugs, to catch a unit slipped by
a factor of a thousand ("hetrombopag 7.5 g") before it silently simulates.

A dose more than :data:`PLAUSIBLE_FACTOR` times the largest labelled dose of its drug (in
the same kind of unit: absolute, per kg or per m2) gives an :class:`ImplausibleDoseWarning`
naming the drug, the dose, the labelled maximum and its source. It is a warning, not an
error: dose-finding explorations beyond the label are legitimate (the model card's
saturation checks give 5 and 10 times the usual doses), and a drug the table does not know
is never judged.
"""

from __future__ import annotations

#: drug (a dose target's name, lower case) -> ((amount, unit, source), ...): the largest
#: single dose in clinical use
LABELLED_MAXIMA: dict[str, tuple[tuple[float, str, str], ...]] = {
    "hetrombopag": ((15.0, "mg", "up to 15 mg daily in CIT, phase III NCT05864014 "
                     "(literature/parameters.md)"),),
    "rhtpo": ((15000.0, "U", "15,000 U daily in CIT, label and consensus "
               "(literature/parameters.md)"),
              (300.0, "U/kg", "300 U/kg daily in CIT, label and consensus "
               "(literature/parameters.md)")),
    "rhil-11": ((50.0, "ug/kg", "50 ug/kg daily, Neumega label (literature/parameters.md)"),),
    "romiplostim": ((10.0, "ug/kg", "at most 10 ug/kg weekly, Nplate label"),),
    "eltrombopag": ((150.0, "mg", "at most 150 mg daily (severe aplastic anaemia), Promacta "
                     "label"),),
    "avatrombopag": ((60.0, "mg", "60 mg daily (chronic liver disease), Doptelet label"),),
}
#: how far beyond the labelled maximum a single dose may go before it is questioned: a
#: thousandfold unit slip is caught, a tenfold dose-finding exploration is not
PLAUSIBLE_FACTOR = 10.0


class ImplausibleDoseWarning(UserWarning):
    """A single dose far above its drug's largest labelled dose (a unit slip?)."""
