"""plateletpd: platelet-kinetics pharmacodynamic simulation.

Model files (``models/*.toml``) are compiled to numba kernels; :func:`simulate` runs one
subject, :func:`simulate_batch` many. See the README for the architecture.
"""

__version__ = "0.1.0"

from .dosing import Dose, DoseTarget, EventSchedule, Regimen  # noqa: E402
from .errors import (ExpressionError, ModelFileError, ModelWarning,  # noqa: E402
                     ParameterError, PlateletPDError, RegimenError, SimulationInputError,
                     SimulationWarning)
from .model import Model, list_models, load_model, parse_model  # noqa: E402
from .results import BatchResult, SimulationResult  # noqa: E402
from .simulate import simulate, simulate_batch  # noqa: E402
from .event_tables import simulate_event_table  # noqa: E402
from .solvers import TIGHT, DormandPrince5, DormandPrince853, Rosenbrock23, Status  # noqa: E402

__all__ = [
    "__version__", "Dose", "DoseTarget", "EventSchedule", "Regimen", "ExpressionError",
    "ModelFileError", "ModelWarning", "ParameterError", "PlateletPDError", "RegimenError",
    "SimulationInputError", "SimulationWarning", "Model", "list_models", "load_model",
    "parse_model", "BatchResult", "SimulationResult", "simulate", "simulate_batch",
    "simulate_event_table", "TIGHT", "DormandPrince5", "DormandPrince853", "Rosenbrock23",
    "Status",
]
