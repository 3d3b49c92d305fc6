"""Virtual populations: inter-individual variability on chosen parameters and covariates.

Each varied quantity ``theta`` is the typical value transformed, shifted by a random effect
``eta`` and transformed back:

* ``lognormal`` (positive quantities): theta = typical * exp(eta)
* ``logitnormal`` (fractions in (0, 1)): logit(theta) = logit(typical) + eta
* ``normal``: theta = typical + eta

``eta ~ N(0, covariance)`` with a full covariance matrix on the eta scale (NONMEM's OMEGA).
Random numbers come from one ``numpy.random.Generator(PCG64(seed))`` drawn in subject
order, in the calling thread: the same seed gives the same cohort whatever the number of
threads used to simulate it, and :meth:`Variability.subject` redraws any single subject.

A population may be a **mixture** (NONMEM's ``$MIX``): :class:`PopulationGroup` entries,
each a share of the drawn patients with its own typical values for some quantities (an
enlarged spleen in a fifth of the screened, say); the rest keep the population's. The
between-patient variability is the population's, around each group's typical value, unless
the group gives a quantity its own CV. Each patient's group comes from a second,
independent stream of the same seed (``PCG64(seed).jumped()``), one uniform number per
patient in subject order, and a group's own CVs from a third (``jumped(2)``), one standard
normal per patient and quantity; both ride as columns of the random effects after the
population's (:attr:`Variability.width`), so every place that draws patients (trials,
fits, anchoring, distributed cohorts) gets the same groups through :func:`cohort_matrix`
without knowing of them, and a population without groups draws exactly the patients it
drew before groups existed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from plateletpd.errors import ParameterError, closest
from plateletpd.limits import check_subjects

TRANSFORMS = ("lognormal", "logitnormal", "normal")

#: the label of the patients in no :class:`PopulationGroup` of a mixture
REST = "rest"


@dataclass(frozen=True)
class PopulationGroup:
    """A share of a population's drawn patients with its own typical values.

    ``typical``: parameter or covariate -> the group's typical value (in the model's units),
    replacing the population's for its members; a varied quantity keeps the population's
    between-patient variability around it. ``source``: where the share or the values come
    from (free text, kept in provenance)."""

    name: str
    share: float
    typical: Mapping[str, float]
    source: str = ""
    #: quantity -> the group's own between-patient CV (log-normal, or the population's
    #: transform for a quantity it varies), drawn from a stream of its own: uncorrelated
    #: with the other quantities, replacing the population's spread for the members
    cv: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ParameterError(f"a population group needs a name, got {self.name!r}")
        if self.name == REST:
            raise ParameterError(f"a population group may not be called {REST!r}: that is "
                                 f"the label of the patients in no group; choose another "
                                 f"name")
        share = self.share
        if isinstance(share, bool) or not isinstance(share, (int, float, np.floating)) \
                or not (math.isfinite(share) and 0 < share <= 1):
            raise ParameterError(f"population group {self.name!r}: share must be a number "
                                 f"in (0, 1] (0.2 = a fifth of the drawn patients), got "
                                 f"{share!r}")
        typical = dict(self.typical)
        cv = dict(self.cv)
        if not typical and not cv:
            raise ParameterError(f"population group {self.name!r}: give at least one "
                                 f"typical value that sets it apart, e.g. typical = "
                                 f"{{ spleen_volume_ratio = 5 }}")
        for key, value in cv.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
                    or not (math.isfinite(value) and value >= 0):
                raise ParameterError(f"population group {self.name!r}: the CV of {key} must "
                                     f"be a finite number >= 0 (0.3 = 30%), got {value!r}")
        for key, value in typical.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
                    or not math.isfinite(value):
                raise ParameterError(f"population group {self.name!r}: typical value of "
                                     f"{key} must be a finite number, got {value!r}")
        object.__setattr__(self, "share", float(share))
        object.__setattr__(self, "typical", {k: float(v) for k, v in typical.items()})
        object.__setattr__(self, "cv", {k: float(v) for k, v in cv.items()})

    def record(self) -> dict:
        """Provenance: the group as plain data."""
        return {"name": self.name, "share": self.share, "typical": dict(self.typical),
                "cv": dict(self.cv), "source": self.source}


@dataclass(frozen=True)
class Variability:
    """Random effects: names, their transforms and the covariance of eta.

    Build with :meth:`from_cv` (coefficients of variation and correlations, the usual way
    such models are reported) or directly with a covariance matrix.
    """

    names: tuple[str, ...]
    transforms: tuple[str, ...]
    covariance: np.ndarray = field(repr=False)
    #: a mixture's groups (:class:`PopulationGroup`); empty: one population
    groups: tuple[PopulationGroup, ...] = ()

    def __post_init__(self):
        names, transforms = tuple(self.names), tuple(self.transforms)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "transforms", transforms)
        groups = tuple(self.groups)
        for group in groups:
            if not isinstance(group, PopulationGroup):
                raise ParameterError(f"groups must be PopulationGroup entries, got "
                                     f"{type(group).__name__}")
        labels = [group.name for group in groups]
        if len(set(labels)) != len(labels):
            raise ParameterError(f"two population groups share a name: {labels}")
        total = sum(group.share for group in groups)
        if total > 1 + 1e-12:
            raise ParameterError(f"the population groups' shares add up to {total:g}, more "
                                 f"than the whole population (1): "
                                 + ", ".join(f"{g.name} {g.share:g}" for g in groups)
                                 + "; lower them so that they add up to at most 1")
        object.__setattr__(self, "groups", groups)
        if len(set(names)) != len(names):
            raise ParameterError(f"a quantity is varied twice: {names}")
        if len(transforms) != len(names):
            raise ParameterError(f"{len(names)} names but {len(transforms)} transforms")
        for name, transform in zip(names, transforms):
            if transform not in TRANSFORMS:
                raise ParameterError(f"{name}: unknown transform {transform!r}"
                                     f"{closest(transform, TRANSFORMS)}; use one of "
                                     f"{', '.join(TRANSFORMS)}")
        covariance = np.array(self.covariance, dtype=float, copy=True)
        if covariance.shape != (len(names), len(names)):
            raise ParameterError(f"covariance must be {len(names)} x {len(names)}, got "
                                 f"{covariance.shape}")
        if not np.all(np.isfinite(covariance)) or not np.allclose(covariance, covariance.T):
            raise ParameterError("covariance must be finite and symmetric")
        if len(names) and np.min(np.linalg.eigvalsh(covariance)) < -1e-12:
            raise ParameterError("covariance is not positive semi-definite (a correlation "
                                 "outside [-1, 1], or an impossible combination of them)")
        covariance.setflags(write=False)
        object.__setattr__(self, "covariance", covariance)

    @classmethod
    def from_cv(cls, cv: Mapping[str, float], correlations: Mapping[tuple[str, str], float]
                | None = None, transforms: Mapping[str, str] | None = None) -> "Variability":
        """From coefficients of variation (0.3 = 30%) and optional correlations.

        For a log-normal quantity the eta variance is log(1 + CV^2), so that the CV of theta
        is exactly ``cv``; for logit-normal and normal ones ``cv`` is the SD of eta.
        """
        names = list(cv)
        transforms = dict(transforms or {})
        kinds = [transforms.get(n, "lognormal") for n in names]
        sd = []
        for name, kind in zip(names, kinds):
            value = float(cv[name])
            if not (math.isfinite(value) and value >= 0):
                raise ParameterError(f"{name}: CV must be a finite number >= 0, got {value!r}")
            sd.append(math.sqrt(math.log1p(value ** 2)) if kind == "lognormal" else value)
        correlation = np.eye(len(names))
        for (a, b), rho in (correlations or {}).items():
            for name in (a, b):
                if name not in names:
                    raise ParameterError(f"correlation names {name!r}, which has no CV"
                                         f"{closest(name, names)}")
            if not -1 <= rho <= 1:
                raise ParameterError(f"correlation {a}-{b} must be within [-1, 1], got {rho}")
            i, j = names.index(a), names.index(b)
            correlation[i, j] = correlation[j, i] = rho
        sd = np.asarray(sd)
        return cls(tuple(names), tuple(kinds), correlation * np.outer(sd, sd))

    def including_model_draws(self, model) -> "Variability":
        """This variability plus the parameters ``model`` draws for each patient itself
        (``per_patient = "standard_normal"`` in its file: value + N(0, 1), uncorrelated)
        that it does not already name, appended in the model file's order. A population
        that names such a parameter keeps its own CV for it (0 switches it off). Listing
        them explicitly, in that order and with CV 1 and the normal transform, draws the
        same patients."""
        extra = [name for name in model.per_patient_parameters if name not in self.names]
        if not extra:
            return self
        k = len(self.names)
        covariance = np.zeros((k + len(extra), k + len(extra)))
        covariance[:k, :k] = self.covariance
        covariance[k:, k:] = np.eye(len(extra))
        return Variability(self.names + tuple(extra),
                           self.transforms + ("normal",) * len(extra), covariance,
                           self.groups)

    # ------------------------------------------------------------------ mixture
    @property
    def width(self) -> int:
        """Columns of :meth:`eta`: one per varied quantity; for a mixture one more (the
        group index) and one per quantity a group gives its own CV
        (:attr:`group_cv_names`)."""
        return len(self.names) + (1 + len(self.group_cv_names) if self.groups else 0)

    @property
    def group_cv_names(self) -> tuple[str, ...]:
        """The quantities some group gives its own CV, in the order the groups name them."""
        names: list[str] = []
        for group in self.groups:
            names += [name for name in group.cv if name not in names]
        return tuple(names)

    def _transform_of(self, name: str) -> str:
        return self.transforms[self.names.index(name)] if name in self.names else "lognormal"

    @property
    def labels(self) -> tuple[str, ...]:
        """The group labels in the order of their indices: :data:`REST` (index 0), then
        the groups."""
        return (REST, *(group.name for group in self.groups))

    def membership(self, n: int, seed: int, first: int = 0) -> np.ndarray:
        """The group index (0: in no group; k: the k-th group) of patients ``first`` to
        ``n - 1``, drawn in subject order from the seed's second stream
        (``PCG64(seed).jumped()``): one uniform number u per patient, the k-th group
        holding the patients with u in [s_1 + ... + s_(k-1), s_1 + ... + s_k). Each
        uniform number takes one 64-bit draw, so patient ``first``'s is reached by
        advancing the stream, not by drawing those before him."""
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
        stream = np.random.PCG64(seed).jumped()
        if first:
            stream.advance(int(first))
        uniform = np.random.Generator(stream).random(max(int(n) - int(first), 0))
        edges = np.cumsum([group.share for group in self.groups])
        return _group_index(uniform, edges)

    def group_of(self, eta: np.ndarray) -> np.ndarray:
        """The group labels (:attr:`labels`) of the patients whose random effects (from
        :meth:`eta`) are the rows of ``eta``; all :data:`REST` without groups."""
        if not self.groups:
            return np.full(len(eta), REST, dtype=object)
        return np.asarray(self.labels, dtype=object)[self._group_index(eta)]

    def _group_index(self, eta: np.ndarray) -> np.ndarray:
        return eta[:, len(self.names)].astype(np.int64)

    def with_groups(self, groups) -> "Variability":
        """This variability with a mixture's groups (replacing any it has)."""
        return Variability(self.names, self.transforms, self.covariance, tuple(groups))

    # ------------------------------------------------------------------ sampling
    def eta(self, n: int, seed: int) -> np.ndarray:
        """Random effects (n x k), drawn in subject order from ``PCG64(seed)``."""
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ParameterError(f"n must be a positive integer, got {n!r}")
        check_subjects(n, 16.0 * max(self.width, 1), "drawing random effects")
        generator = np.random.Generator(np.random.PCG64(seed))
        standard = generator.standard_normal((n, len(self.names)))
        factor = _cholesky(self.covariance)
        eta = standard @ factor.T
        if self.groups:  # the group index, then the groups' own spreads (module text)
            own = np.random.Generator(np.random.PCG64(seed).jumped(2)).standard_normal(
                (n, len(self.group_cv_names)))
            eta = np.column_stack([eta, self.membership(n, seed).astype(float), own])
        return eta

    def sd(self, name: str) -> float:
        """The SD of ``name``'s random effect (0 if it does not vary)."""
        if name not in self.names:
            return 0.0
        index = self.names.index(name)
        return math.sqrt(max(float(self.covariance[index, index]), 0.0))

    def typical_rows(self, typical: Mapping[str, float], eta: np.ndarray
                     ) -> dict[str, np.ndarray]:
        """Per patient (rows of ``eta``), the typical value of each quantity ``typical``
        names or a group sets: the population's, or the patient's group's (NaN where a
        group sets a quantity ``typical`` does not name, for the other patients)."""
        rows = {name: np.full(len(eta), float(value)) for name, value in typical.items()}
        if self.groups:
            index = self._group_index(eta)
            for k, group in enumerate(self.groups, start=1):
                members = index == k
                for name, value in group.typical.items():
                    if name not in rows:
                        rows[name] = np.full(len(eta), np.nan)
                    rows[name][members] = value
        return rows

    def apply(self, typical: Mapping[str, float], eta: np.ndarray) -> dict[str, np.ndarray]:
        """Individual values from typical values and random effects: a mixture's members
        around their group's typical values, with their group's own CV where it gives one
        (NaN for the other patients in a quantity only a group varies)."""
        own = self.group_cv_names
        for name in (*self.names, *own):
            if name not in typical:
                raise ParameterError(f"no typical value for varied quantity {name!r}"
                                     f"{closest(name, typical)}")
        centers = self.typical_rows({name: typical[name] for name in (*self.names, *own)},
                                    eta)
        values = {name: _transformed(name, kind, centers[name], eta[:, k])
                  for k, (name, kind) in enumerate(zip(self.names, self.transforms))}
        if own:
            index = self._group_index(eta)
            standard = eta[:, len(self.names) + 1:]
            for k, group in enumerate(self.groups, start=1):
                members = index == k
                for name, cv in group.cv.items():
                    kind = self._transform_of(name)
                    if name not in values:
                        values[name] = np.full(len(eta), np.nan)
                    values[name][members] = _transformed(
                        name, kind, centers[name][members],
                        eta_sd(cv, kind) * standard[members, own.index(name)])
        return values

    def sample(self, typical: Mapping[str, float], n: int, seed: int) -> pd.DataFrame:
        """A cohort: one row per subject, one column per varied quantity (and, for a
        mixture, each quantity a group sets and the patient's ``group``)."""
        eta = self.eta(n, seed)
        values = self.apply(typical, eta)
        if self.groups:
            for name, column in self.typical_rows({}, eta).items():
                if name not in values:
                    values[name] = column
            for name in values:  # the other patients keep the population's value
                if name in typical:
                    values[name] = np.where(np.isnan(values[name]), typical[name],
                                            values[name])
            values["group"] = self.group_of(eta)
        frame = pd.DataFrame(values)
        frame.index.name = "subject"
        return frame

    def subject(self, typical: Mapping[str, float], seed: int, index: int) -> dict[str, float]:
        """Subject ``index`` of the cohort drawn with ``seed``, alone."""
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise ParameterError(f"index must be a non-negative integer, got {index!r}")
        row = self.sample(typical, int(index) + 1, seed).iloc[-1]
        return {name: (value if name == "group" else float(value))
                for name, value in row.items()}


def model_transforms(model, transforms: Mapping[str, str]) -> dict[str, str]:
    """``transforms`` with the normal transform for the model's per-patient parameters it
    does not name (their draws are normal: a population naming one, e.g. with CV 0 to
    switch it off, needs no transform of its own)."""
    return {**{name: "normal" for name in model.per_patient_parameters}, **transforms}


def model_draws_text(names: Sequence[str]) -> str:
    """Provenance wording for the per-patient draws a model adds to a population."""
    shown = ", ".join(names) if len(names) <= 3 else f"{names[0]}, ..., {names[-1]}"
    return f"the model's own per-patient draws, standard normal: {shown} ({len(names)})"


def eta_sd(cv: float, transform: str) -> float:
    """The SD of eta that gives a between-patient ``cv`` (as :meth:`Variability.from_cv`)."""
    return math.sqrt(math.log1p(cv ** 2)) if transform == "lognormal" else cv


def cv_of_eta_sd(sd: float, transform: str) -> float:
    """The between-patient CV that an SD of eta gives (the inverse of :func:`eta_sd`)."""
    return math.sqrt(math.expm1(sd ** 2)) if transform == "lognormal" else sd


def eta_scales(variability: Variability, cvs: Mapping[str, float]) -> np.ndarray:
    """Per column of ``variability``'s random effects, the factor that turns effects drawn
    with its CVs into effects with the CVs ``cvs`` (quantities not named, or not varied,
    keep 1). Scaling a column keeps its correlations with the others and every patient's
    rank: the same standard normals, wider or narrower (common random numbers, as a fit
    that estimates a CV needs)."""
    scales = np.ones(variability.width)  # a mixture's group column stays as drawn
    for name, cv in cvs.items():
        drawn = variability.sd(name)
        if drawn > 0:
            index = variability.names.index(name)
            scales[index] = eta_sd(float(cv), variability.transforms[index]) / drawn
    return scales


def _cholesky(covariance: np.ndarray) -> np.ndarray:
    if covariance.size == 0:
        return covariance
    # eigen-decomposition handles singular (perfectly correlated or zero-variance) matrices
    values, vectors = np.linalg.eigh(covariance)
    return vectors * np.sqrt(np.clip(values, 0, None))


def typical_values(model, names: Sequence[str]) -> dict[str, float]:
    """Typical values of parameters (model values) and covariates (defaults) by name."""
    result = {}
    for name in names:
        if name in model.parameters:
            result[name] = model.parameters[name].value
        elif name in model.covariates and model.covariates[name].default is not None:
            result[name] = model.covariates[name].default
        else:
            known = list(model.parameters) + list(model.covariates)
            raise ParameterError(f"{model.name}: cannot vary {name!r}: not a parameter or a "
                                 f"covariate with a default{closest(name, known)}")
    return result


def cohort_matrix(model, base: np.ndarray, variability: Variability,
                  eta: np.ndarray) -> np.ndarray:
    """Parameter vectors of virtual patients, one row per row of ``eta``: ``base`` (a
    :meth:`Model.parameter_vector`) with each varied quantity replaced by its individual
    value, the typical value being the one in ``base``."""
    matrix = np.tile(base, (eta.shape[0], 1))
    if eta.shape[1] != variability.width:
        raise ParameterError(f"random effects have {eta.shape[1]} columns, the population "
                             f"{variability.width} (draw them with its eta())")
    names = model.parameter_names + model.covariate_names
    for group in variability.groups:  # the model's own name check, with the group named
        try:
            model.check_parameter_names([name for name in (*group.typical, *group.cv)
                                         if name not in model.covariates])
        except ParameterError as error:
            raise ParameterError(f"population group {group.name!r}: {error}") from None
    if variability.groups:
        for name, column in variability.typical_rows({}, eta).items():
            members = ~np.isnan(column)
            matrix[members, names.index(name)] = column[members]
    drawn = (*variability.names, *variability.group_cv_names)
    if drawn:
        typical = {name: base[names.index(name)] for name in drawn}
        for name, column in variability.apply(typical, eta).items():
            members = ~np.isnan(column)  # a group's own spread: its members only
            matrix[members, names.index(name)] = column[members]
    return matrix


def _transformed(name: str, kind: str, center: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """``center`` shifted by ``eta`` on ``kind``'s scale (the module's text)."""
    if kind == "lognormal":
        if np.any(center <= 0):
            raise ParameterError(f"{name}: a log-normal quantity needs a positive typical "
                                 f"value, got {np.min(center):g}")
        return center * np.exp(eta)
    if kind == "logitnormal":
        if np.any((center <= 0) | (center >= 1)):
            bad = center[(center <= 0) | (center >= 1)][0]
            raise ParameterError(f"{name}: a logit-normal quantity needs a typical value "
                                 f"in (0, 1), got {bad:g}")
        # each distinct typical value's logit by math.log, as before mixtures existed
        # (numpy's vector log differs from it in the last bit for some values)
        logit = np.empty_like(center)
        for value in np.unique(center):
            logit[center == value] = math.log(value / (1 - value))
        return 1 / (1 + np.exp(-(logit + eta)))
    return center + eta


def _group_index(uniform: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Group index per uniform number: 1 + the group whose interval of cumulative shares
    holds it; 0 past the last edge (the rest)."""
    position = np.searchsorted(edges, uniform, side="right")
    return np.where(position < len(edges), position + 1, 0).astype(np.int64)
