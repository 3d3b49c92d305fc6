"""Populations: between-subject variability (random effects) and virtual cohorts.

* :mod:`~plateletpd.population.variability`: :class:`Variability` (transforms, CVs,
  correlations), seeded draws in subject order, cohort parameter matrices.
"""

from plateletpd.population.variability import Variability, cohort_matrix, typical_values

__all__ = ["Variability", "cohort_matrix", "typical_values"]
