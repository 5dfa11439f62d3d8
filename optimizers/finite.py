"""Detecting NaN/inf in losses, gradients and parameters, and naming the culprit."""

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .errors import ConfigError, NonFiniteError


def expand_param_names(param_names, n) -> list | None:
    """One name per entry of an ``n``-vector, from either

    * a sequence of ``n`` strings, or
    * a mapping ``{name: shape}`` of parameter blocks in flattening order, e.g.
      ``{"eps": 3, "mass": ()}`` -> ``["eps[0]", "eps[1]", "eps[2]", "mass"]``.
    """
    if param_names is None:
        return None
    if isinstance(param_names, Mapping):
        names = []
        for name, shape in param_names.items():
            shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
            if not shape:
                names.append(str(name))
            else:
                names += [f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape)]
    elif isinstance(param_names, str):
        raise TypeError("param_names must be a sequence of names or a {name: shape} mapping, "
                        "not a single string")
    else:
        names = [str(s) for s in param_names]
    if len(names) != n:
        raise ConfigError(f"param_names describe {len(names)} parameters but x0 has {n}")
    return names


def _what(v):
    return "NaN" if math.isnan(v) else ("+inf" if v > 0 else "-inf")


def _entry(names, i):
    return f"parameter '{names[i]}'" if names else f"parameter {i}"


def _first_bad(arr):
    bad = np.flatnonzero(~np.isfinite(arr))
    if not bad.size:
        return None, ""
    more = f" ({bad.size} of {arr.size} entries are non-finite)" if bad.size > 1 else ""
    return int(bad[0]), more


def nonfinite_error(iteration, loss, grad, names: Sequence[str] | None, x=None,
                    advice="") -> NonFiniteError | None:
    """The error describing the first non-finite value among ``x`` (the parameters about to be
    evaluated), ``loss`` and ``grad`` (checked in that order; ``None`` skips one), or ``None``
    when all are finite."""
    advice = f"; {advice}" if advice else ""
    if x is not None:
        i, more = _first_bad(x)
        if i is not None:
            return NonFiniteError(f"iteration {iteration}: {_entry(names, i)} is {_what(x[i])}"
                                  f"{more}{advice}", iteration=iteration, quantity="parameter",
                                  index=i, name=names[i] if names else None)
    if loss is not None and not math.isfinite(loss):
        return NonFiniteError(f"iteration {iteration}: loss is {_what(loss)}{advice}",
                              iteration=iteration, quantity="loss")
    if grad is not None:
        i, more = _first_bad(grad)
        if i is not None:
            return NonFiniteError(f"iteration {iteration}: gradient of {_entry(names, i)} is "
                                  f"{_what(grad[i])}{more}{advice}", iteration=iteration,
                                  quantity="gradient", index=i, name=names[i] if names else None)
    return None
