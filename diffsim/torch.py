"""PyTorch interop: a Rollout as a ``torch.autograd.Function``.

    import diffsim.torch as dtorch
    loss = dtorch.rollout_loss(rollout, force=u, stiffness=k)   # u, k: float64 CPU tensors
    loss.backward()                                               # u.grad, k.grad

Any mix of system parameters, control sequences (steps, *shape) and initial-state fields can be
tensors, so a ``torch.nn.Module`` that outputs controls (or parameters) trains through the
simulator. Data crosses through NumPy on the CPU; tensors must be float64 when diffsim runs in
f64 (float32 in f32), and on the CPU. Needs the optional extra ``torch``.
"""

import numpy as np
import torch

from .errors import ConfigError
from .objective import Objective, Parameter
from .runtime import config

__all__ = ["rollout_loss"]

_DTYPES = {"f64": torch.float64, "f32": torch.float32}


class _RolloutFunction(torch.autograd.Function):
    """loss = L(inputs); its backward multiplies the tape's gradient by the incoming one."""

    @staticmethod
    def forward(ctx, objective, *tensors):
        x = np.concatenate([t.detach().reshape(-1).numpy().astype(np.float64) for t in tensors])
        loss, grad = objective(x)
        ctx.shapes = [t.shape for t in tensors]
        ctx.dtype = tensors[0].dtype
        ctx.save_for_backward(torch.from_numpy(grad))
        return torch.tensor(loss, dtype=tensors[0].dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        grads, offset = [], 0
        for shape in ctx.shapes:
            size = int(np.prod(shape)) if len(shape) else 1
            grads.append((grad_output * grad[offset:offset + size].to(ctx.dtype)).reshape(shape))
            offset += size
        return (None, *grads)


_objectives = {}


def _objective(rollout, names):
    key = (id(rollout), names)
    obj = _objectives.get(key)
    if obj is None or obj.rollout is not rollout:
        obj = Objective(rollout, [Parameter(n) for n in names])
        _objectives[key] = obj
    return obj


def _check(name, tensor, shape):
    if not isinstance(tensor, torch.Tensor):
        raise ConfigError(f"'{name}' must be a torch.Tensor, got {type(tensor).__name__}")
    want = _DTYPES[config().precision]
    if tensor.dtype != want:
        raise ConfigError(f"tensor '{name}' has dtype {tensor.dtype} but diffsim runs in {config().precision}: "
                          f"pass tensor.to({want})")
    if tensor.device.type != "cpu":
        raise ConfigError(f"tensor '{name}' is on {tensor.device}; diffsim exchanges data with PyTorch on the "
                          "CPU: pass tensor.cpu()")
    if tuple(tensor.shape) != tuple(shape):
        raise ConfigError(f"tensor '{name}' must have shape {tuple(shape)}, got {tuple(tensor.shape)}")


def rollout_loss(rollout, **tensors) -> torch.Tensor:
    """Run ``rollout`` with the given tensors written into it; return the loss as a 0-d tensor
    whose backward gives each tensor dL/d(tensor) through the tape.

    Names are system parameters, controls (shape (steps, *shape)) or initial-state fields.
    """
    if not tensors:
        raise ConfigError("rollout_loss needs at least one tensor (a parameter, control or state field)")
    names = tuple(tensors)
    obj = _objective(rollout, names)
    for (_p, _kind, shape, _, _), name in zip(obj._layout, names):
        _check(name, tensors[name], shape)
    if torch.is_grad_enabled() and not any(tensors[n].requires_grad for n in names):
        raise ConfigError(f"none of the tensors {list(names)} requires a gradient, so loss.backward() would have "
                          "nothing to fill: create the ones to fit with requires_grad=True (or call "
                          "tensor.requires_grad_()), or evaluate the loss alone under torch.no_grad()")
    return _RolloutFunction.apply(obj, *(tensors[n] for n in names))
