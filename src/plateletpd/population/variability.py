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


@dataclass(frozen=True)
class Variability:
    """Random effects: names, their transforms and the covariance of eta.

    Build with :meth:`from_cv` (coefficients of variation and correlations, the usual way
    such models are reported) or directly with a covariance matrix.
    """

    names: tuple[str, ...]
    transforms: tuple[str, ...]
    covariance: np.ndarray = field(repr=False)

    def __post_init__(self):
        names, transforms = tuple(self.names), tuple(self.transforms)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "transforms", transforms)
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
                           self.transforms + ("normal",) * len(extra), covariance)

    # ------------------------------------------------------------------ sampling
    def eta(self, n: int, seed: int) -> np.ndarray:
        """Random effects (n x k), drawn in subject order from ``PCG64(seed)``."""
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ParameterError(f"n must be a positive integer, got {n!r}")
        check_subjects(n, 16.0 * max(len(self.names), 1), "drawing random effects")
        generator = np.random.Generator(np.random.PCG64(seed))
        standard = generator.standard_normal((n, len(self.names)))
        factor = _cholesky(self.covariance)
        return standard @ factor.T

    def sd(self, name: str) -> float:
        """The SD of ``name``'s random effect (0 if it does not vary)."""
        if name not in self.names:
            return 0.0
        index = self.names.index(name)
        return math.sqrt(max(float(self.covariance[index, index]), 0.0))

    def apply(self, typical: Mapping[str, float], eta: np.ndarray) -> dict[str, np.ndarray]:
        """Individual values from typical values and random effects."""
        values = {}
        for k, (name, kind) in enumerate(zip(self.names, self.transforms)):
            if name not in typical:
                raise ParameterError(f"no typical value for varied quantity {name!r}"
                                     f"{closest(name, typical)}")
            center = float(typical[name])
            if kind == "lognormal":
                if center <= 0:
                    raise ParameterError(f"{name}: a log-normal quantity needs a positive "
                                         f"typical value, got {center:g}")
                values[name] = center * np.exp(eta[:, k])
            elif kind == "logitnormal":
                if not 0 < center < 1:
                    raise ParameterError(f"{name}: a logit-normal quantity needs a typical "
                                         f"value in (0, 1), got {center:g}")
                values[name] = 1 / (1 + np.exp(-(math.log(center / (1 - center)) + eta[:, k])))
            else:
                values[name] = center + eta[:, k]
        return values

    def sample(self, typical: Mapping[str, float], n: int, seed: int) -> pd.DataFrame:
        """A cohort: one row per subject, one column per varied quantity."""
        frame = pd.DataFrame(self.apply(typical, self.eta(n, seed)))
        frame.index.name = "subject"
        return frame

    def subject(self, typical: Mapping[str, float], seed: int, index: int) -> dict[str, float]:
        """Subject ``index`` of the cohort drawn with ``seed``, alone."""
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise ParameterError(f"index must be a non-negative integer, got {index!r}")
        eta = self.eta(int(index) + 1, seed)[-1:]
        return {name: float(v[0]) for name, v in self.apply(typical, eta).items()}


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
    scales = np.ones(len(variability.names))
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
    if variability.names:
        names = model.parameter_names + model.covariate_names
        typical = {name: base[names.index(name)] for name in variability.names}
        for name, column in variability.apply(typical, eta).items():
            matrix[:, names.index(name)] = column
    return matrix
