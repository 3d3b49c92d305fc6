"""Dose targets (a drug, the state its dose enters, its unit, route and bioavailability) and
dose units: conversion between mass, international units and per-kg or per-m2 doses."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from plateletpd.errors import RegimenError, closest



ROUTES = ("bolus", "infusion")
"""Administration routes a dose target can accept."""
_MASS_IN_NG = {"g": 10**9, "mg": 10**6, "ug": 10**3, "ng": 1}
_INTERNATIONAL_UNITS = ("U", "IU")
_BASE_UNITS = {"g": "g", "mg": "mg", "ug": "ug", "mcg": "ug", "µg": "ug", "μg": "ug",
               "ng": "ng", "u": "U", "iu": "IU"}
_PER = {"kg": "kg", "m2": "m2", "m^2": "m2", "m²": "m2"}
_PER_COVARIATE = {"kg": "body_weight", "m2": "body_surface_area"}
_UNIT_HELP = ("dose units are g, mg, ug (or mcg), ng and U (or IU), optionally per kg of body "
              "weight or per m2 of body surface area, e.g. 'mg', 'U/kg', 'mg/m2'")
TOLERANCE = 1e-9


# ----------------------------------------------------------------------------- units


def parse_unit(unit: object) -> tuple[str, str]:
    """Split a dose unit into its canonical base ('mg', 'U', ...) and per-part ('', 'kg', 'm2').

    A base that is not a known unit but does not look like a misspelt one (e.g. 'nmol') is
    kept as written: it only converts into a dose target whose amount is in exactly that unit.
    """
    if not isinstance(unit, str) or not unit.strip():
        raise RegimenError(f"a dose unit must be text such as 'mg'; given {unit!r}. Note: {_UNIT_HELP}.")
    base, slash, per = (part.strip() for part in unit.strip().partition("/"))
    if slash and per.lower() not in _PER:
        raise RegimenError(f"unknown dose unit {unit!r}: after '/' expected 'kg' (per body weight) "
                           f"or 'm2' (per body surface area), given {per!r}. Note: {_UNIT_HELP}.")
    canonical = _BASE_UNITS.get(base.lower())
    if canonical is None:
        hint = closest(base.lower(), _BASE_UNITS)
        if hint or not re.fullmatch(r"[^\s/+,]+", base):
            raise RegimenError(f"unknown dose unit {unit!r}{hint}. Note: {_UNIT_HELP}.")
        canonical = base
    return canonical, _PER.get(per.lower(), "")


def unit_label(base: str, per: str) -> str:
    return f"{base}/{per}" if per else base


def _as_tuple(value: object) -> tuple:
    return (value,) if isinstance(value, str) else tuple(value)


def finite_float(value: object) -> float | None:
    """``float(value)`` when that is a finite number, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class DoseTarget:
    """Where a drug's dose enters a model (read from the model file).

    Attributes:
        name: drug name used in regimens, e.g. ``"rhTPO"``.
        state: name of the state the dose is added to.
        state_index: 0-based index of that state.
        amount_unit: unit of the state's amount: a mass unit ("g", "mg", "ug", "ng"; "mcg" and
            "µg" mean ug), "U"/"IU" for international units, or any other string, in which case
            only doses in exactly that unit are accepted.
        routes: accepted routes, a subset of ``ROUTES`` ("bolus", "infusion").
        units_per_mg: international units per mg of drug (specific activity, e.g. 280000 for
            rhTPO); needed to convert between U and mass.
        aliases: other names the drug may be called by in a regimen (case-insensitive).
        description: free text for listings.
        administration: "oral", "sc", "iv" or "" (undeclared); a regimen that names a route
            word (po/sc/iv) must match it.
    """

    name: str
    state: str
    state_index: int
    amount_unit: str
    routes: tuple[str, ...] = ("bolus",)
    units_per_mg: float | None = None
    aliases: tuple[str, ...] = ()
    description: str = ""
    administration: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise RegimenError(f"a dose target needs a drug name such as 'rhTPO'; given {self.name!r}")
        object.__setattr__(self, "routes", _as_tuple(self.routes))
        object.__setattr__(self, "aliases", _as_tuple(self.aliases))
        unknown = [route for route in self.routes if route not in ROUTES]
        if unknown or not self.routes:
            raise RegimenError(f"dose target {self.name!r}: routes must be a non-empty subset of "
                               f"{ROUTES}; given {self.routes!r}")
        if self.units_per_mg is not None and not (finite_float(self.units_per_mg) or 0) > 0:
            raise RegimenError(f"dose target {self.name!r}: units_per_mg must be a finite number > 0 "
                               f"(international units per mg), or None; given {self.units_per_mg!r}")
        if isinstance(self.state_index, bool) or not isinstance(self.state_index, (int, np.integer)) \
                or self.state_index < 0:
            raise RegimenError(f"dose target {self.name!r}: state_index must be an integer >= 0 "
                               f"(0-based); given {self.state_index!r}")

    def conversion(self, unit: str) -> tuple[float, str | None]:
        """Return ``(factor, covariate)`` for a dose in ``unit``.

        ``amount_in_state_units = dose_value * factor * covariate_value``, where ``covariate``
        is None (absolute dose), ``"body_weight"`` (kg, for ".../kg") or
        ``"body_surface_area"`` (m2, for ".../m2").

        Raises:
            RegimenError: the unit is malformed or cannot be converted into the state's unit.
        """
        base, per = parse_unit(unit)
        factor = self._factor(base)
        if factor is None:
            accepted = ", ".join(self._accepted_units())
            needs_activity = {base, self._base} & set(_INTERNATIONAL_UNITS)
            fix = (f"set units_per_mg (international units per mg, the drug's specific activity) on "
                   f"the {self.name!r} dose target, or give the dose in {accepted}" if needs_activity
                   else f"give the dose in one of: {accepted}")
            raise RegimenError(f"a dose of {self.name} in {unit!r} cannot be converted into state "
                               f"{self.state!r}, whose amount is in {self.amount_unit!r}; {self.name} "
                               f"accepts {accepted} (each optionally '/kg' or '/m2'). Fix: {fix}.")
        return factor, _PER_COVARIATE.get(per)

    @property
    def _base(self) -> str:
        unit = str(self.amount_unit).strip()
        return _BASE_UNITS.get(unit.lower(), unit)

    def _nanograms(self, base: str) -> Fraction | None:
        """Nanograms of drug in one ``base`` unit (exact), or None when unknown."""
        if base in _MASS_IN_NG:
            return Fraction(_MASS_IN_NG[base])
        if base in _INTERNATIONAL_UNITS and self.units_per_mg:
            return Fraction(10**6) / Fraction(float(self.units_per_mg))
        return None

    def _factor(self, base: str) -> float | None:
        target = self._base
        if base == target or {base, target} <= set(_INTERNATIONAL_UNITS):
            return 1.0
        dose_ng, target_ng = self._nanograms(base), self._nanograms(target)
        return None if dose_ng is None or target_ng is None else float(dose_ng / target_ng)

    def _accepted_units(self) -> list[str]:
        candidates = [*_MASS_IN_NG, *_INTERNATIONAL_UNITS]
        if self._base not in candidates:
            candidates.append(self._base)
        return [unit for unit in candidates if self._factor(unit) is not None]
