"""plateletpd: platelet-kinetics pharmacodynamic simulation.

Model files (``models/*.toml``) are compiled to numba kernels; :func:`simulate` runs one
subject, :func:`simulate_batch` many. See docs/architecture.md for the layout.
"""

from plateletpd._version import __version__  # noqa: E402
from plateletpd.dosing.regimens import Dose, Regimen
from plateletpd.dosing.targets import DoseTarget
from plateletpd.dosing.schedules import EventSchedule  # noqa: E402
from plateletpd.errors import (ExpressionError, ModelFileError, ModelWarning,  # noqa: E402
                     ParameterError, PlateletPDError, RegimenError, SimulationInputError,
                     SimulationWarning)
from plateletpd.model.definition import Model, list_models, load_model, parse_model  # noqa: E402
from plateletpd.simulation.results import BatchResult, SimulationResult  # noqa: E402
from plateletpd.simulation.simulate import simulate, simulate_batch  # noqa: E402
from plateletpd.simulation.event_tables import simulate_event_table  # noqa: E402
from plateletpd.numerics.solvers import TIGHT, DormandPrince5, DormandPrince853, Rosenbrock23, Status  # noqa: E402
from plateletpd.numerics.solvers import BogackiShampine3, ExplicitRungeKutta, Solver  # noqa: E402
from plateletpd.population.variability import Variability, cohort_matrix  # noqa: E402
from plateletpd.study.cohort import ArmDesign, Rescue, Titration  # noqa: E402
from plateletpd.study.endpoints import (ENDPOINTS, Endpoint, ResponseRule,  # noqa: E402
                                        register as register_endpoint,
                                        unregister as unregister_endpoint)
from plateletpd.study.trial import TrialResult, TrialSpec, load_trial_spec, run_trial  # noqa: E402
from plateletpd.study.sweep import run_sweep  # noqa: E402
from plateletpd.inference.fitting import FitProblem, load_fit_config  # noqa: E402

__all__ = [
    "__version__", "Dose", "DoseTarget", "EventSchedule", "Regimen", "ExpressionError",
    "ModelFileError", "ModelWarning", "ParameterError", "PlateletPDError", "RegimenError",
    "SimulationInputError", "SimulationWarning", "Model", "list_models", "load_model",
    "parse_model", "BatchResult", "SimulationResult", "simulate", "simulate_batch",
    "simulate_event_table", "TIGHT", "DormandPrince5", "DormandPrince853", "Rosenbrock23",
    "Status", "Solver", "ExplicitRungeKutta", "BogackiShampine3",
    "Variability", "cohort_matrix", "ArmDesign", "Rescue", "Titration", "ENDPOINTS",
    "Endpoint", "ResponseRule", "register_endpoint", "unregister_endpoint", "TrialResult",
    "TrialSpec", "load_trial_spec", "run_trial", "run_sweep", "FitProblem", "load_fit_config",
]
