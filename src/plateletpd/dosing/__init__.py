"""Dosing: dose targets, regimens (text and objects), event schedules and NONMEM event tables.

* :mod:`~plateletpd.dosing.regimens`: ``"hetrombopag 7.5 mg qd d1-14"`` -> :class:`Regimen`
  -> :class:`EventSchedule` (every dose a breakpoint); event tables read and written.

Events are kept apart from the model (as in mrgsolve): a model declares dose targets, a
regimen names them.
"""

from plateletpd.dosing.regimens import (Dose, DoseTarget, EventSchedule, Regimen, as_regimen,
                                        expand, read_event_subjects, read_event_table,
                                        to_event_table, write_event_table)

__all__ = ["Dose", "DoseTarget", "EventSchedule", "Regimen", "as_regimen", "expand",
           "read_event_subjects", "read_event_table", "to_event_table", "write_event_table"]
