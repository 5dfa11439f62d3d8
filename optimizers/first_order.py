"""First-order optimisers: the usual recipes as chains of :mod:`optimizers.transforms`, and the
class-style configurations (``SGD``, ``Adam``, ...) that users pass to ``minimize(method=...)``.

Every learning rate ``lr`` may be a float or a schedule (:mod:`optimizers.schedules`).
"""

from dataclasses import dataclass
from functools import cached_property

from .errors import ConfigError
from .schedules import ScalarOrSchedule
from .transforms import (
    GradientTransformation,
    add_decayed_weights,
    chain,
    identity,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_rms,
    trace,
)


def _check_momentum(momentum, nesterov):
    if not 0.0 <= momentum < 1.0:
        raise ConfigError(f"momentum must be in [0, 1), got {momentum}")
    if nesterov and momentum == 0.0:
        raise ConfigError("nesterov=True needs momentum > 0")


def sgd(lr: ScalarOrSchedule, momentum: float = 0.0,
        nesterov: bool = False) -> GradientTransformation:
    """Gradient descent, optionally with Polyak or Nesterov momentum (PyTorch/optax form)::

        m = momentum * m + g;  x -= lr * m          (x -= lr * (g + momentum * m) with nesterov)
    """
    _check_momentum(momentum, nesterov)
    direction = trace(momentum, nesterov) if momentum else identity()
    return chain(direction, scale_by_learning_rate(lr))


def adam(lr: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> GradientTransformation:
    """Adam (Kingma & Ba 2015) with bias correction: ``x -= lr * m_hat / (sqrt(v_hat) + eps)``."""
    return chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(lr))


def adamw(lr: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          weight_decay: float = 1e-4) -> GradientTransformation:
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), in the PyTorch/optax form
    where the decay is scaled by the learning rate::

        x -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * x)
    """
    return chain(scale_by_adam(b1, b2, eps), add_decayed_weights(weight_decay),
                 scale_by_learning_rate(lr))


def rmsprop(lr: ScalarOrSchedule, decay: float = 0.9, eps: float = 1e-8,
            momentum: float = 0.0, nesterov: bool = False) -> GradientTransformation:
    """RMSProp (PyTorch form)::

        v = decay * v + (1 - decay) * g**2;  x -= lr * g / (sqrt(v) + eps)

    with optional momentum applied to the scaled gradient ``g / (sqrt(v) + eps)``."""
    _check_momentum(momentum, nesterov)
    rms = scale_by_rms(decay, eps)
    if momentum:
        return chain(rms, trace(momentum, nesterov), scale_by_learning_rate(lr))
    return chain(rms, scale_by_learning_rate(lr))


class FirstOrderOptimizer:
    """Base of the class-style optimisers: a configuration that builds its transformation and
    is itself usable as one (``init``/``update``)."""

    name = "first-order"

    def __post_init__(self):
        _ = self._transform  # build now, so that bad settings fail at construction

    def transform(self) -> GradientTransformation:
        """The optax-like :class:`GradientTransformation` this optimizer applies to each gradient."""
        raise NotImplementedError

    @cached_property
    def _transform(self):
        return self.transform()

    def init(self, x):
        """Optimizer state for parameters ``x`` ((n,) float64)."""
        return self._transform.init(x)

    def update(self, grad, state, x):
        """(step to add to ``x``, new state) for gradient ``grad`` at ``x``."""
        return self._transform.update(grad, state, x)


@dataclass(frozen=True, eq=False)
class SGD(FirstOrderOptimizer):
    """Stochastic gradient descent; see :func:`sgd`."""

    lr: ScalarOrSchedule = 1e-2
    momentum: float = 0.0
    nesterov: bool = False
    name = "sgd"

    def transform(self):
        return sgd(self.lr, self.momentum, self.nesterov)


@dataclass(frozen=True, eq=False)
class Adam(FirstOrderOptimizer):
    """Adam; see :func:`adam`."""

    lr: ScalarOrSchedule = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    name = "adam"

    def transform(self):
        return adam(self.lr, self.b1, self.b2, self.eps)


@dataclass(frozen=True, eq=False)
class AdamW(FirstOrderOptimizer):
    """Adam with decoupled weight decay; see :func:`adamw`."""

    lr: ScalarOrSchedule = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 1e-4
    name = "adamw"

    def transform(self):
        return adamw(self.lr, self.b1, self.b2, self.eps, self.weight_decay)


@dataclass(frozen=True, eq=False)
class RMSProp(FirstOrderOptimizer):
    """RMSProp; see :func:`rmsprop`."""

    lr: ScalarOrSchedule = 1e-2
    decay: float = 0.9
    eps: float = 1e-8
    momentum: float = 0.0
    nesterov: bool = False
    name = "rmsprop"

    def transform(self):
        return rmsprop(self.lr, self.decay, self.eps, self.momentum, self.nesterov)
