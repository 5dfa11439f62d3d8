"""diffsim: differentiable physics on Taichi with a checkpointed time-stepping tape.

Start the runtime once (``diffsim.init``), describe a simulator as a :class:`System`, run it
through a :class:`Rollout` with a checkpoint schedule, and fit with :class:`Objective` and
``optimizers.minimize``.
"""

from .checkpointing import (
    Binomial,
    Periodic,
    StoreAll,
    revolve_cost,
    snapshots_for_budget,
)
from .errors import ConfigError, DiffsimError, GradientCheckError, SimulationDiverged
from .gradcheck import GradcheckReport, forward_jvp, gradcheck
from .objective import Objective, Parameter
from .runtime import config, info, init, is_initialized
from .tape import (
    Gradients,
    Launch,
    Rollout,
    RolloutStats,
    Slots,
    System,
    adjoint_only,
    forward_only,
    launch,
)

__version__ = "0.1.0"

__all__ = [
    "Binomial",
    "ConfigError",
    "DiffsimError",
    "GradcheckReport",
    "GradientCheckError",
    "Gradients",
    "Launch",
    "Objective",
    "Parameter",
    "Periodic",
    "Rollout",
    "RolloutStats",
    "SimulationDiverged",
    "Slots",
    "StoreAll",
    "System",
    "adjoint_only",
    "config",
    "forward_jvp",
    "forward_only",
    "gradcheck",
    "info",
    "init",
    "is_initialized",
    "launch",
    "revolve_cost",
    "snapshots_for_budget",
]
