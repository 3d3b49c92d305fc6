"""Dosing, kept apart from the model (as in mrgsolve): a model declares dose targets, a
regimen names them.

* :mod:`~plateletpd.dosing.targets`: :class:`DoseTarget` and dose units;
* :mod:`~plateletpd.dosing.regimens`: :class:`Dose`, :class:`Regimen` and the text form
  (``"hetrombopag 7.5 mg qd d1-14"``);
* :mod:`~plateletpd.dosing.schedules`: :func:`expand` -> :class:`EventSchedule` (every dose
  a breakpoint for the integrator);
* :mod:`~plateletpd.dosing.event_tables`: NONMEM-style event tables, written and read.
"""

from plateletpd.dosing.event_tables import (read_event_subjects, read_event_table,
                                            to_event_table, write_event_table)
from plateletpd.dosing.regimens import Dose, Regimen, as_regimen
from plateletpd.dosing.schedules import EventSchedule, expand
from plateletpd.dosing.targets import DoseTarget

__all__ = ["Dose", "DoseTarget", "EventSchedule", "Regimen", "as_regimen", "expand",
           "read_event_subjects", "read_event_table", "to_event_table", "write_event_table"]
