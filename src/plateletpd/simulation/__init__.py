"""Simulation entry points: one subject, a batch, an event table; results; a scipy reference.

* :mod:`~plateletpd.simulation.simulate`: :func:`simulate`, :func:`simulate_batch`;
* :mod:`~plateletpd.simulation.event_tables`: :func:`simulate_event_table` (NONMEM tables,
  steady state);
* :mod:`~plateletpd.simulation.results`: :class:`SimulationResult`, :class:`BatchResult`;
* :mod:`~plateletpd.simulation.reference`: the independent scipy Radau solution tests use.
"""
