"""Populations: between-subject variability (random effects) and virtual cohorts.

* :mod:`~plateletpd.population.variability`: :class:`Variability` (transforms, CVs,
  correlations), seeded draws in subject order, cohort parameter matrices, and mixtures of
  :class:`PopulationGroup` entries (a share of the patients with their own typical values).
"""

from plateletpd.population.variability import (PopulationGroup, Variability, cohort_matrix,
                                                typical_values)

__all__ = ["PopulationGroup", "Variability", "cohort_matrix", "typical_values"]
