"""Inference: fitting model parameters to published arm-level outcomes, and profiles.

* :mod:`~plateletpd.inference.fitting`: fit configurations, lmfit objective, profiles,
  identifiability statements, fit reports.
"""
