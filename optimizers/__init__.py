"""Gradient-based optimisers on plain NumPy float64 vectors (nothing here knows Taichi).

Everything runs through :func:`minimize`, which takes any objective ``x -> (loss, grad)`` and
returns an :class:`OptimizeResult` whatever the method::

    from optimizers import minimize, chain, clip_by_global_norm, adam, cosine_decay
    res = minimize(f, x0, method=chain(clip_by_global_norm(1.0), adam(cosine_decay(1e-2, 500))),
                   iters=500, checkpoint="fit.ckpt")
    res.x, res.fun, res.history["loss"]

Modules, one job each:

* :mod:`~optimizers.transforms`: optax-style gradient transformations (``init``/``update``) and
  :func:`chain`; clipping, normalisation, momentum, Adam and RMS scaling, weight decay.
* :mod:`~optimizers.first_order`: ``sgd``, ``adam``, ``adamw``, ``rmsprop`` as chains, and the
  class-style ``SGD``, ``Adam``, ``AdamW``, ``RMSProp`` to pass as ``method=``.
* :mod:`~optimizers.schedules`: learning-rate schedules ``step -> lr``.
* :mod:`~optimizers.lbfgs`: ``LBFGS``, scipy's L-BFGS-B with bitwise-resumable checkpoints.
* :mod:`~optimizers.driver`: :func:`minimize` (stopping tests, progress, non-finite handling,
  checkpoints); :mod:`~optimizers.checkpoint` writes the files atomically.
* :mod:`~optimizers.batching`: objectives over many cases, full or mini-batch.
* :mod:`~optimizers.trajectory`: single shooting and receding-horizon MPC.
* :mod:`~optimizers.bounds`, :mod:`~optimizers.finite`, :mod:`~optimizers.errors`,
  :mod:`~optimizers.result`: box bounds, NaN detection, errors, the result type and the
  :class:`~optimizers.result.Reason` a run stopped for.

``res.success`` is honest: it is False (``res.message`` says why, ``res.reason`` says it in one
word) when the loss ended above where it started, when the gradient at ``x0`` is exactly zero,
or when non-finite losses could not be backed off from, whatever the method, and when L-BFGS
used up its iterations before its convergence tests were met (as scipy's L-BFGS-B reports).
"""

from .batching import MeanObjective, MiniBatchObjective, SumObjective
from .bounds import Box, as_box
from .driver import minimize
from .errors import CheckpointError, ConfigError, NonFiniteError
from .first_order import (
                         SGD,
                         Adam,
                         AdamW,
                         FirstOrderOptimizer,
                         RMSProp,
                         adam,
                         adamw,
                         rmsprop,
                         sgd,
)
from .lbfgs import LBFGS
from .result import OptimizeResult, Reason
from .schedules import constant, cosine_decay, exponential_decay, warmup
from .trajectory import MPCResult, mpc, single_shooting
from .transforms import (
                         GradientTransformation,
                         add_decayed_weights,
                         chain,
                         clip,
                         clip_by_global_norm,
                         clip_by_value,
                         identity,
                         normalize,
                         scale,
                         scale_by_adam,
                         scale_by_learning_rate,
                         scale_by_rms,
                         scale_by_schedule,
                         trace,
)

__all__ = [
                         "LBFGS",
                         "SGD",
                         "Adam",
                         "AdamW",
                         "Box",
                         "CheckpointError",
                         "ConfigError",
                         "FirstOrderOptimizer",
                         "GradientTransformation",
                         "MPCResult",
                         "MeanObjective",
                         "MiniBatchObjective",
                         "NonFiniteError",
                         "OptimizeResult",
                         "RMSProp",
                         "Reason",
                         "SumObjective",
                         "adam",
                         "adamw",
                         "add_decayed_weights",
                         "as_box",
                         "chain",
                         "clip",
                         "clip_by_global_norm",
                         "clip_by_value",
                         "constant",
                         "cosine_decay",
                         "exponential_decay",
                         "identity",
                         "minimize",
                         "mpc",
                         "normalize",
                         "rmsprop",
                         "scale",
                         "scale_by_adam",
                         "scale_by_learning_rate",
                         "scale_by_rms",
                         "scale_by_schedule",
                         "sgd",
                         "single_shooting",
                         "trace",
                         "warmup",
]
