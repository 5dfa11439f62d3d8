"""Box bounds ``lo <= x <= hi`` for parameter vectors."""

from typing import NamedTuple

import numpy as np

from .errors import ConfigError


class Box(NamedTuple):
    """Elementwise bounds, (n,) float arrays; ``-inf``/``inf`` where unbounded."""

    lo: np.ndarray
    hi: np.ndarray

    def project(self, x):
        """The nearest point of the box to ``x``."""
        return np.clip(x, self.lo, self.hi)

    def projected_gradient(self, x, grad):
        """``x - project(x - grad)``: zero exactly at a first-order stationary point of the box."""
        return x - self.project(x - grad)

    def to_scipy(self):
        """As ``scipy.optimize.Bounds``."""
        from scipy.optimize import Bounds
        return Bounds(self.lo, self.hi)


def _side(v, n, fill, what):
    if v is None:
        return np.full(n, fill)
    a = np.array([fill if e is None else e for e in v], dtype=np.float64) \
        if isinstance(v, (list, tuple)) else np.asarray(v, dtype=np.float64)
    a = np.where(np.isnan(a), fill, a)
    if a.ndim == 0:
        return np.full(n, float(a))
    if a.shape != (n,):
        raise ConfigError(f"{what} bounds have shape {a.shape}; expected a scalar or ({n},)")
    return a


def as_box(bounds, n) -> "Box | None":
    """Bounds for ``n`` parameters from any of:

    * ``None``: unbounded;
    * a :class:`Box` or ``scipy.optimize.Bounds``;
    * a sequence of ``n`` pairs ``(lo_i, hi_i)`` (scipy's convention), ``None`` for a free side;
    * a pair ``(lo, hi)`` of scalars or (n,) arrays, ``None`` for a free side.

    When ``n == 2`` a pair of pairs is read as per-parameter pairs (scipy's convention) unless its
    two items are NumPy arrays; pass ``Box(lo, hi)`` to be explicit. Returns a :class:`Box`.
    """
    if bounds is None:
        return None
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):  # scipy.optimize.Bounds
        lo, hi = bounds.lb, bounds.ub
    elif isinstance(bounds, Box):
        lo, hi = bounds
    else:
        items = list(bounds)
        pairs = (len(items) == n
                 and all(e is None or (not np.isscalar(e) and len(e) == 2) for e in items)
                 and not (n == 2 and all(isinstance(e, np.ndarray) for e in items)))
        if pairs:
            items = [(None, None) if e is None else e for e in items]
            lo, hi = [e[0] for e in items], [e[1] for e in items]
        elif len(items) == 2:
            lo, hi = items
        else:
            raise ConfigError(f"cannot read bounds for {n} parameters from {bounds!r}; pass "
                              f"(lo, hi) or a list of {n} (lo_i, hi_i) pairs")
    box = Box(_side(lo, n, -np.inf, "lower"), _side(hi, n, np.inf, "upper"))
    bad = np.flatnonzero(box.lo > box.hi)
    if bad.size:
        i = int(bad[0])
        raise ConfigError(f"bounds of parameter {i} are empty: lo = {box.lo[i]} > hi = {box.hi[i]}")
    return box
