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
from plateletpd.population.variability import PopulationGroup, Variability, cohort_matrix  # noqa: E402
from plateletpd.study.cohort import ArmDesign, Rescue, Titration  # noqa: E402
from plateletpd.study.endpoints import (ENDPOINTS, Endpoint, ResponseRule,  # noqa: E402
                                        register as register_endpoint,
                                        unregister as unregister_endpoint)
from plateletpd.study.trial import (TrialResult, TrialSpec, bundled_trial,  # noqa: E402
                                    load_trial_spec, run_trial, write_trial)
from plateletpd.study.sweep import run_sweep, write_sweep  # noqa: E402
from plateletpd.study.check import check_trial, write_check  # noqa: E402
from plateletpd.study.sensitivity import Factor, run_sensitivity, write_sensitivity  # noqa: E402
from plateletpd.study.optimisation import DoseSearch, optimise_dose, write_optimum  # noqa: E402
from plateletpd.study.validation import load_suite, validate  # noqa: E402
from plateletpd.study.validation_comparison import compare_validations  # noqa: E402
from plateletpd.inference.fitting import FitProblem, FitRun, load_fit_config, run_fit  # noqa: E402

__all__ = [
    "__version__", "Dose", "DoseTarget", "EventSchedule", "Regimen", "ExpressionError",
    "ModelFileError", "ModelWarning", "ParameterError", "PlateletPDError", "RegimenError",
    "SimulationInputError", "SimulationWarning", "Model", "list_models", "load_model",
    "parse_model", "BatchResult", "SimulationResult", "simulate", "simulate_batch",
    "simulate_event_table", "TIGHT", "DormandPrince5", "DormandPrince853", "Rosenbrock23",
    "Status", "Solver", "ExplicitRungeKutta", "BogackiShampine3",
    "Variability", "PopulationGroup", "cohort_matrix", "ArmDesign", "Rescue", "Titration", "ENDPOINTS",
    "Endpoint", "ResponseRule", "register_endpoint", "unregister_endpoint", "TrialResult",
    "TrialSpec", "load_trial_spec", "run_trial", "run_sweep", "FitProblem", "FitRun", "load_fit_config", "run_fit",
    # the study tools a script needs besides running a trial (a Python-API user test,
    # 2026-12-04, found them only in submodules)
    "bundled_trial", "write_trial", "write_sweep", "check_trial", "write_check", "Factor",
    "run_sensitivity", "write_sensitivity", "DoseSearch", "optimise_dose", "write_optimum",
    "load_suite", "validate", "compare_validations",
]
