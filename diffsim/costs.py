"""Costs, one protocol for every simulator (rigid, articulated, molecular, your own System).

A rollout's loss is the sum of its cost terms. A term is one of two kinds:

**Kernel costs** (:class:`Cost`): Taichi launches the tape runs and differentiates.

- ``running(system, x, u, slot0, t0, t1, loss)``: launches adding sum_{t0 <= t < t1} l(x_t, u_t, t)
  to ``loss[0]``; state x_t is in slot ``slot0 + t - t0`` of the state ndarrays ``x`` (``x.q``,
  ``x["v"]``), controls u_t at row t of ``u``.
- ``terminal(system, x, slot, loss)``: launches adding Phi(x_T) to ``loss[0]``.
- ``requires``: extra state fields the system must record (e.g. MD's "energy").

**Costs written in Python on the trajectory** (:class:`TrajectoryCost`): no Taichi at all.

- ``reads(system, T) -> (fields, steps)``: which state fields at which steps (indices into the
  T + 1 states x_0..x_T) the cost reads;
- ``evaluate(states, steps, system) -> (value, grads)``: ``states`` {field: array (k, *field
  shape)} in the order of ``steps`` (k,); ``grads`` {field: dC/dstates, same shape}.

  The tape copies the states it reads to NumPy during the recording sweep, calls ``evaluate``
  once, and adds ``grads`` into the adjoint of each read state during the reverse sweep, so
  its gradient reaches parameters, controls and initial states through the simulator, under
  every checkpoint schedule (bitwise the same in deterministic mode). Write one with
  :class:`NumpyCost` (a NumPy function and its gradient) or :class:`TorchCost` (a torch
  function, differentiated by ``torch.autograd``).

Which steps: ``steps="all"`` (default), ``"last"``, an int, a ``slice`` or a list of steps
(NumPy indexing of the T + 1 states: ``slice(None, None, 10)`` every 10th, ``-1`` the last), or
``window=(t0, t1)`` in the system's time unit (s for rigid bodies and robots; the states with
t0 <= t dt <= t1; the system needs a ``dt``); ``every=k`` keeps every k-th of those.

Give costs to a system that takes them (``RigidSystem(costs=[...])``, ``MDSystem(costs=[...])``)
or to any rollout: ``Rollout(system, T, costs=[ApexHeight(0, window=(1.0, 1.6))])``.

**Ready costs** (NumPy on the trajectory, exact gradients): each measures a scalar m and adds
``weight * m`` to the loss, or ``weight * (m - target)^2`` with a ``target``; after a forward
``cost.measured`` holds m.

- :class:`ApexHeight`: the smooth maximum of one coordinate of one body over a window (the
  apex of a bounce), m in the field's unit.
- :class:`MinimumDistance`: the smooth minimum of the distance between two bodies (or a body
  and a fixed point) over a window, m.
- :class:`FirstContactTime`: a smooth time (s) at which a body first comes within a distance of
  another body, a point, or (``b=None``) a height along an axis.
- :class:`FinalDistance`: the distance of a body from a point at the last state, m.

Smooth maximum with temperature tau (the field's unit, m for heights):

- ``SmoothMax.LOG_SUM_EXP`` (default): M = tau log sum_t exp(h_t / tau). It lies between
  max h and max h + tau ln k (k samples) and always above the max: the samples within a few
  tau of the top add up. For a smooth peak h ~ H - c s^2 sampled every dt (a ballistic apex,
  c = g / 2) the bias is about tau ln(sqrt(pi tau / c) / dt): with g = 9.81 m/s^2 and
  dt = 1 ms, +3.2 mm at tau = 1 mm and +0.2 mm at tau = 0.1 mm.
- ``SmoothMax.BOLTZMANN``: the softmax-weighted mean sum_t w_t h_t, w = softmax(h / tau). It lies
  below the max; for a smooth peak (any curvature, any dt fine enough to resolve it) it sits
  tau / 2 below it: -0.5 mm at tau = 1 mm, whatever dt.

Smaller tau is closer to the max; larger tau spreads the gradient over more samples (smoother
as the argmax sample changes). tau must resolve the peak: the gradient only sees samples within
a few tau of the top. The smooth minimum is -smoothmax(-d).

Plus :class:`TrajectoryMatch` (a System wrapper): least squares against a recorded trajectory,
L = sum_{t=0..T} sum_f w_f ||x_t[f] - observed_f[t]||^2, for system identification.
"""

import enum
import math
from collections.abc import Callable

import numpy as np
import taichi as ti

from .errors import ConfigError, DiffsimError
from .runtime import config
from .tape import System, launch

_A1 = ti.types.ndarray(ndim=1)


# ---------------------------------------------------------------------- the protocol


class Cost:
    """A kernel cost: launches for a running and a terminal part (see the module doc).
    The base adds nothing; subclass and return :func:`diffsim.launch` lists."""

    requires: tuple = ()

    def running(self, system, x, u, slot0, t0, t1, loss):
        """Launches adding this cost's sum over steps t0 <= t < t1 to ``loss[0]``; the state of
        step t is in slot ``slot0 + t - t0`` of ``x``, its controls in ``u[t]``."""
        return ()

    def terminal(self, system, x, slot, loss):
        """Launches adding this cost's terminal part, read from slot ``slot`` of ``x``, to ``loss[0]``."""
        return ()


def _as_fields(fields) -> tuple:
    if isinstance(fields, str):
        return (fields,)
    fields = tuple(fields)
    if not fields or not all(isinstance(f, str) for f in fields):
        raise ConfigError(f"fields must be a state field name or a list of names, got {fields!r}")
    return fields


class TrajectoryCost(Cost):
    """A cost computed in Python from chosen state fields at chosen steps (see the module doc).

    fields: state field name(s) read. steps / window / every: which states (module doc).
    Subclasses implement :meth:`evaluate`; ``running``/``terminal`` add no launches.
    """

    def __init__(self, fields, steps=None, window=None, every: int = 1):
        self.fields = _as_fields(fields)
        if steps is not None and window is not None:
            raise ConfigError(f"{type(self).__name__}: give steps= or window=, not both")
        if window is not None:
            try:
                t0, t1 = (float(w) for w in window)
            except (TypeError, ValueError):
                raise ConfigError(f"{type(self).__name__}: window must be (t0, t1) in the system's time unit, "
                                  f"got {window!r}") from None
            if not (np.isfinite(t0) and np.isfinite(t1) and t0 <= t1):
                raise ConfigError(f"{type(self).__name__}: window (t0, t1) needs finite t0 <= t1, got {window!r}")
            window = (t0, t1)
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ConfigError(f"{type(self).__name__}: every must be a positive integer, got {every!r}")
        self.steps, self.window, self.every = steps, window, int(every)
        self.dt = None

    def __repr__(self):
        return f"{type(self).__name__}(fields={self.fields})"

    def _select(self, system, T: int) -> np.ndarray:
        idx = np.arange(T + 1)
        name = type(self).__name__
        if self.window is not None:
            dt = getattr(system, "dt", None)
            if dt is None:
                raise ConfigError(f"{name}: window= needs a system with a time step dt; "
                                  f"{type(system).__name__} has none: give steps= instead")
            t0, t1 = self.window
            tol = 1e-9 * float(dt)
            sel = idx[(idx * float(dt) >= t0 - tol) & (idx * float(dt) <= t1 + tol)]
            where = f"window {self.window} (steps of dt = {dt}, rollout of {T} steps: 0..{T * float(dt):.6g})"
        else:
            spec = "all" if self.steps is None else self.steps
            where = f"steps {spec!r} of a rollout of {T} steps (states 0..{T})"
            try:
                if isinstance(spec, str):
                    if spec not in ("all", "last"):
                        raise ConfigError(f"{name}: steps must be 'all', 'last', an int, a slice or a list, "
                                          f"got {spec!r}")
                    sel = idx if spec == "all" else idx[-1:]
                elif isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
                    sel = idx[[int(spec)]]
                elif isinstance(spec, slice):
                    sel = idx[spec]
                else:
                    sel = np.unique(idx[np.asarray(list(spec), dtype=np.int64)])
            except IndexError:
                raise ConfigError(f"{name}: {where} reach beyond the last state {T}") from None
        sel = sel[::self.every]
        if sel.size == 0:
            raise ConfigError(f"{name}: {where} select no state")
        return sel

    def reads(self, system, T: int):
        """(fields, steps): the state fields and the steps (into x_0..x_T) this cost reads."""
        self.dt = getattr(system, "dt", None)
        shapes = getattr(system, "state_shapes", {})
        for f in self.fields:
            if f not in shapes:
                raise ConfigError(f"{self!r} reads state field '{f}', which {type(system).__name__} does not have; "
                                  f"fields are {list(shapes)}")
        self._check_system(system)
        return self.fields, self._select(system, T)

    def _check_system(self, system):
        """Subclasses check their body indices and axes against the system's state shapes."""

    def evaluate(self, states: dict, steps: np.ndarray, system=None):
        """(value, {field: dC/dstates}) from ``states`` {field: (k, *shape)} at ``steps`` (k,)."""
        raise NotImplementedError


class NumpyCost(TrajectoryCost):
    """A cost written in NumPy: ``fn(states, steps) -> float`` and ``grad(states, steps) ->
    {field: array}`` (dC/d of each read field, the shape of ``states[field]``: (k, *field shape),
    k the number of steps read). ``states`` holds float64 copies of the read fields, time first,
    in the order of ``steps`` (an int array of the step indices). Example, the mean height (m)
    of body 0 between t = 1 s and 2 s::

        def mean_height(s, t):
            return s["x"][:, 0, 2].mean()

        def mean_height_grad(s, t):
            g = np.zeros_like(s["x"])
            g[:, 0, 2] = 1.0 / len(t)
            return {"x": g}

        NumpyCost(mean_height, mean_height_grad, fields="x", window=(1.0, 2.0))
    """

    def __init__(self, fn: Callable, grad: Callable, fields, steps=None, window=None, every: int = 1):
        super().__init__(fields, steps=steps, window=window, every=every)
        if not callable(fn) or not callable(grad):
            raise ConfigError("NumpyCost needs fn(states, steps) -> float and grad(states, steps) -> "
                              "{field: array}; for a gradient by autograd use TorchCost")
        self.fn, self.grad = fn, grad

    def __repr__(self):
        return f"NumpyCost({getattr(self.fn, '__name__', 'fn')}, fields={self.fields})"

    def evaluate(self, states, steps, system=None):
        for a in states.values():
            a.flags.writeable = False
        value = self.fn(states, steps)
        grads = self.grad(states, steps)
        if not isinstance(grads, dict):
            raise ConfigError(f"{self!r}: grad must return {{field: array}}, got {type(grads).__name__}")
        if np.ndim(value) != 0 or not np.isrealobj(value):
            raise ConfigError(f"{self!r}: fn must return one real number (the loss), got {type(value).__name__} "
                              f"of shape {np.shape(value)}: sum or average it")
        return float(value), _finite_gradients(self, grads, states)


class TorchCost(TrajectoryCost):
    """A cost written in PyTorch: ``fn(states, steps) -> 0-d tensor`` with ``states``
    {field: float64 tensor (k, *field shape)} and ``steps`` a long tensor (k,); its gradient comes
    from ``torch.autograd``. Needs PyTorch (``pip install torch``)."""

    def __init__(self, fn: Callable, fields, steps=None, window=None, every: int = 1):
        super().__init__(fields, steps=steps, window=window, every=every)
        if not callable(fn):
            raise ConfigError("TorchCost needs fn(states, steps) -> a 0-d torch tensor")
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ConfigError("TorchCost needs PyTorch: pip install torch (or write a NumpyCost with "
                              "its gradient)") from None
        self.fn = fn

    def __repr__(self):
        return f"TorchCost({getattr(self.fn, '__name__', 'fn')}, fields={self.fields})"

    def evaluate(self, states, steps, system=None):
        import torch

        ts = {f: torch.tensor(a, dtype=torch.float64, requires_grad=True) for f, a in states.items()}
        value = self.fn(ts, torch.as_tensor(steps, dtype=torch.long))
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ConfigError(f"{self!r}: fn must return a one-element torch tensor, got {type(value).__name__}")
        value = value.reshape(())
        grads = torch.autograd.grad(value, list(ts.values()), allow_unused=True)
        out = {f: (np.zeros_like(states[f]) if g is None else g.detach().numpy().astype(np.float64))
               for f, g in zip(ts, grads)}
        return float(value.detach()), _finite_gradients(self, out, states)


def _finite_gradients(cost, grads: dict, states: dict) -> dict:
    """``grads``, after checking that a cost read on finite states gave a finite gradient: a NaN
    there would flow silently into the parameters' gradient."""
    for f, g in grads.items():
        g = np.asarray(g, dtype=np.float64)
        if f in states and np.all(np.isfinite(states[f])) and not np.all(np.isfinite(g)):
            k = np.argwhere(~np.isfinite(g))[0]
            raise DiffsimError(f"{cost!r}: its gradient of '{f}' is {g[tuple(k)]} at index {tuple(int(i) for i in k)} "
                               f"(row, *field index) of finite states: check the gradient function")
    return grads


# ---------------------------------------------------------------------- smooth extrema


class SmoothMax(enum.Enum):
    """How a ready cost smooths a maximum (or minimum) over time (module doc: the biases)."""

    LOG_SUM_EXP = "log_sum_exp"
    BOLTZMANN = "boltzmann"


def smooth_max(h: np.ndarray, tau: float, kind: SmoothMax = SmoothMax.LOG_SUM_EXP):
    """(M, dM/dh) for the smooth maximum of the 1-D array h at temperature tau (h's unit)."""
    h = np.asarray(h, dtype=np.float64)
    z = (h - h.max()) / tau
    w = np.exp(z)
    total = w.sum()
    w /= total
    if kind is SmoothMax.LOG_SUM_EXP:
        return float(h.max() + tau * math.log(total)), w
    m = float(np.dot(w, h))
    return m, w * (1.0 + (h - m) / tau)


def smooth_min(d: np.ndarray, tau: float, kind: SmoothMax = SmoothMax.LOG_SUM_EXP):
    """(m, dm/dd): the smooth minimum -smooth_max(-d)."""
    m, g = smooth_max(-np.asarray(d, dtype=np.float64), tau, kind)
    return -m, g


# ---------------------------------------------------------------------- ready costs


class _Measure(TrajectoryCost):
    """A ready cost: a scalar measure m of the trajectory, loss weight*m or weight*(m - target)^2.
    ``unit``: the measure's unit ("m" or "s"; "m" stands for the field's length unit)."""

    unit = ""

    def __init__(self, field, steps=None, window=None, every=1, target=None, weight=1.0):
        super().__init__(field, steps=steps, window=window, every=every)
        self.field = self.fields[0]
        if target is not None and not np.isfinite(target):
            raise ConfigError(f"{type(self).__name__}: target must be finite, got {target!r}")
        if not np.isfinite(weight):
            raise ConfigError(f"{type(self).__name__}: weight must be finite, got {weight!r}")
        self.target = None if target is None else float(target)
        self.weight = float(weight)
        self.measured = None

    def measure(self, states, steps) -> tuple:
        """(m, {field: dm/dstates})."""
        raise NotImplementedError

    def evaluate(self, states, steps, system=None):
        if system is not None:
            self.dt = getattr(system, "dt", self.dt)
        m, dm = self.measure(states, steps)
        self.measured = m
        if self.target is None:
            return self.weight * m, {f: self.weight * g for f, g in dm.items()}
        r = m - self.target
        return self.weight * r * r, {f: 2.0 * self.weight * r * g for f, g in dm.items()}

    # entries of a body: field (n,) -> a scalar per body; (n, d) -> a d-vector per body
    def _shape(self, system):
        return tuple(system.state_shapes[self.field])

    def _check_body(self, system, body, label="body"):
        shape = self._shape(system)
        if isinstance(body, bool) or not isinstance(body, (int, np.integer)) or not 0 <= body < shape[0]:
            raise ConfigError(f"{type(self).__name__}: {label} {body!r} is not a row of '{self.field}' "
                              f"(shape {shape}): give 0..{shape[0] - 1}")

    def _check_axis(self, system, axis):
        shape = self._shape(system)
        if len(shape) == 1:
            if axis not in (None, 0, -1):
                raise ConfigError(f"{type(self).__name__}: '{self.field}' has one value per body (shape {shape}); "
                                  f"leave axis=None")
        elif not isinstance(axis, (int, np.integer)) or not -shape[1] <= axis < shape[1]:
            raise ConfigError(f"{type(self).__name__}: axis {axis!r} is not a component of '{self.field}' "
                              f"(shape {shape})")

    @staticmethod
    def _points(a, body):
        """(k, d) positions of one body over the read steps (d = 1 for one value per body)."""
        return a[:, body, :] if a.ndim == 3 else a[:, body, None]

    @staticmethod
    def _put_points(grad, body, g):
        if grad.ndim == 3:
            grad[:, body, :] += g
        else:
            grad[:, body] += g[:, 0]


def _safe_norm(d):
    """|d| along the last axis and d / |d| (0 where |d| = 0)."""
    n = np.sqrt(np.sum(d * d, axis=-1))
    unit = np.divide(d, n[..., None], out=np.zeros_like(d), where=n[..., None] > 0)
    return n, unit


class ApexHeight(_Measure):
    """The smooth maximum over a window of one coordinate of one body: a bounce's apex.

    body: row of ``field`` (default "x", positions); axis: the component (default -1, the last:
    z in 3D, y in 2D; None for a field of one value per body, e.g. a chain's ``q``);
    window=(t0, t1) (s) or steps=...; temperature tau (the field's unit, m) and smooth
    (:class:`SmoothMax`): see the module doc for the bias of each; target (m), weight.
    Example: ``ApexHeight(0, window=(1.05, 1.6), temperature=1e-4, target=0.20)``.
    """

    unit = "m"

    def __init__(self, body: int, field: str = "x", axis: int | None = -1, window=None, steps=None, every=1,
                 temperature: float = 1e-3, smooth: SmoothMax = SmoothMax.LOG_SUM_EXP, target=None, weight=1.0):
        super().__init__(field, steps=steps, window=window, every=every, target=target, weight=weight)
        if not (np.isfinite(temperature) and temperature > 0):
            raise ConfigError(f"ApexHeight: temperature must be a positive length (m), got {temperature!r}")
        if not isinstance(smooth, SmoothMax):
            raise ConfigError(f"ApexHeight: smooth must be a SmoothMax, got {smooth!r}")
        self.body, self.axis, self.temperature, self.smooth = body, axis, float(temperature), smooth

    def __repr__(self):
        return f"ApexHeight(body={self.body}, field={self.field!r}, axis={self.axis})"

    def _check_system(self, system):
        self._check_body(system, self.body)
        self._check_axis(system, self.axis)

    def measure(self, states, steps):
        a = states[self.field]
        h = a[:, self.body] if a.ndim == 2 else a[:, self.body, self.axis]
        m, w = smooth_max(h, self.temperature, self.smooth)
        g = np.zeros_like(a)
        if a.ndim == 2:
            g[:, self.body] = w
        else:
            g[:, self.body, self.axis] = w
        return m, {self.field: g}


class MinimumDistance(_Measure):
    """The smooth minimum over a window of the distance |p_a - p_b| between the centres of bodies
    a and b (rows of ``field``, default "x"; m), or between body a and a fixed point b (a
    sequence of the field's components). temperature tau (m) and smooth as for the maximum
    (module doc): LOG_SUM_EXP lies below the true minimum by up to tau ln k. Subtract the radii
    yourself for a surface gap. The distance is that of the stored coordinates (no periodic
    minimum image for atoms in a box). target (m), weight.
    """

    unit = "m"

    def __init__(self, a: int, b, field: str = "x", window=None, steps=None, every=1, temperature: float = 1e-3,
                 smooth: SmoothMax = SmoothMax.LOG_SUM_EXP, target=None, weight=1.0):
        super().__init__(field, steps=steps, window=window, every=every, target=target, weight=weight)
        if not (np.isfinite(temperature) and temperature > 0):
            raise ConfigError(f"MinimumDistance: temperature must be a positive length (m), got {temperature!r}")
        if not isinstance(smooth, SmoothMax):
            raise ConfigError(f"MinimumDistance: smooth must be a SmoothMax, got {smooth!r}")
        self.a, self.temperature, self.smooth = a, float(temperature), smooth
        self.b = b if isinstance(b, (int, np.integer)) else np.atleast_1d(np.asarray(b, dtype=np.float64))

    def __repr__(self):
        return f"MinimumDistance(a={self.a}, b={self.b!r}, field={self.field!r})"

    def _check_system(self, system):
        self._check_body(system, self.a, "a")
        _check_other(self, system, self.b)

    def measure(self, states, steps):
        arr = states[self.field]
        pa = self._points(arr, self.a)
        pb = self._points(arr, self.b) if isinstance(self.b, (int, np.integer)) else self.b[None, :]
        d, unit = _safe_norm(pa - pb)
        m, w = smooth_min(d, self.temperature, self.smooth)
        g = np.zeros_like(arr)
        self._put_points(g, self.a, w[:, None] * unit)
        if isinstance(self.b, (int, np.integer)):
            self._put_points(g, self.b, -w[:, None] * unit)
        return m, {self.field: g}


def _check_other(cost, system, b):
    if isinstance(b, (int, np.integer)):
        cost._check_body(system, b, "b")
        if b == cost.a:
            raise ConfigError(f"{type(cost).__name__}: a and b are the same body {b}")
        return
    shape = cost._shape(system)
    d = 1 if len(shape) == 1 else shape[1]
    if b.shape != (d,) or not np.all(np.isfinite(b)):
        raise ConfigError(f"{type(cost).__name__}: point b must be {d} finite numbers (a position in "
                          f"'{cost.field}'), got {b}")


class FirstContactTime(_Measure):
    """A smooth time (the system's time unit, s) at which body ``a`` first comes within
    ``distance`` of body ``b``, of a fixed point ``b``, or (``b=None``) of height ``distance`` along
    ``axis`` (the ground: distance = the radius plus the plane's height).

    With the gap g_t (distance minus ``distance``, or height minus ``distance``) at the k read
    states t_1 < ... < t_k (equally spaced by Delta), each state touches with the soft
    probability s_t = sigmoid(-g_t / tau) (tau, ``temperature``, in m: gaps of a few tau count as
    touching or apart). The measure is the expected first-touch time under these probabilities,

        T = t_1 + Delta * sum_{j=1..k} P_j,  P_j = prod_{i<j} (1 - s_i),

    i.e. t_1 plus Delta times the probability of not having touched before each sample. It
    tends to the first sampled time with g < 0 as tau -> 0 (a state exactly at g = 0 counts as
    half a contact), equals t_k + Delta when the body never comes near, and it is smooth in the
    states. window=(t0, t1) or steps=; target (s), weight.
    """

    unit = "s"

    def __init__(self, a: int, b=None, distance: float = 0.0, field: str = "x", axis: int | None = -1,
                 window=None, steps=None, every=1, temperature: float = 1e-3, target=None, weight=1.0):
        super().__init__(field, steps=steps, window=window, every=every, target=target, weight=weight)
        if not (np.isfinite(temperature) and temperature > 0):
            raise ConfigError(f"FirstContactTime: temperature must be a positive length (m), got {temperature!r}")
        if not np.isfinite(distance):
            raise ConfigError(f"FirstContactTime: distance must be finite, got {distance!r}")
        self.a, self.axis, self.distance, self.temperature = a, axis, float(distance), float(temperature)
        self.b = b if b is None or isinstance(b, (int, np.integer)) else np.atleast_1d(np.asarray(b, float))

    def __repr__(self):
        return f"FirstContactTime(a={self.a}, b={self.b!r}, distance={self.distance})"

    def _check_system(self, system):
        self._check_body(system, self.a, "a")
        if self.b is None:
            self._check_axis(system, self.axis)
        else:
            _check_other(self, system, self.b)
        if getattr(system, "dt", None) is None:
            raise ConfigError(f"FirstContactTime needs a system with a time step dt; {type(system).__name__} has none")

    def measure(self, states, steps):
        arr = states[self.field]
        g_arr = np.zeros_like(arr)
        if self.b is None:
            gap = (arr[:, self.a] if arr.ndim == 2 else arr[:, self.a, self.axis]) - self.distance
            dgap = None
        else:
            pa = self._points(arr, self.a)
            pb = self._points(arr, self.b) if isinstance(self.b, (int, np.integer)) else self.b[None, :]
            dist, dgap = _safe_norm(pa - pb)
            gap = dist - self.distance
        dt = float(self.dt)
        times = np.asarray(steps, dtype=np.float64) * dt
        spacing = float(np.diff(times).mean()) if len(times) > 1 else dt
        if len(times) > 2 and not np.allclose(np.diff(times), spacing, rtol=1e-9, atol=0.0):
            raise ConfigError("FirstContactTime needs equally spaced steps (a window, a slice or every=k)")
        z = gap / self.temperature
        log_q = -np.logaddexp(0.0, -z)              # log(1 - s) = log sigmoid(g / tau)
        s = np.exp(-np.logaddexp(0.0, z))           # s = sigmoid(-g / tau)
        P = np.exp(np.cumsum(log_q))                # P_{j+1} = prod_{i<=j} (1 - s_i), j = 0..k-1
        m = times[0] + spacing * float(P.sum())
        tail = np.cumsum(P[::-1])[::-1]             # sum_{j >= i} P_{j+1}: the P that x_i enters
        dm_dgap = spacing * tail * s / self.temperature
        if self.b is None:
            if arr.ndim == 2:
                g_arr[:, self.a] = dm_dgap
            else:
                g_arr[:, self.a, self.axis] = dm_dgap
        else:
            self._put_points(g_arr, self.a, dm_dgap[:, None] * dgap)
            if isinstance(self.b, (int, np.integer)):
                self._put_points(g_arr, self.b, -dm_dgap[:, None] * dgap)
        return m, {self.field: g_arr}


class FinalDistance(_Measure):
    """The distance |p_body(T) - point| (m) at the last state (or at ``steps``' single step),
    ``field`` default "x". The loss is weight * (m - target)^2 with target 0 by default, i.e.
    weight times the squared distance (smooth at the goal)."""

    unit = "m"

    def __init__(self, body: int, point, field: str = "x", steps="last", target: float | None = 0.0,
                 weight: float = 1.0):
        super().__init__(field, steps=steps, target=target, weight=weight)
        self.body = body
        self.point = np.atleast_1d(np.asarray(point, dtype=np.float64))

    def __repr__(self):
        return f"FinalDistance(body={self.body}, point={self.point.tolist()}, field={self.field!r})"

    def _check_system(self, system):
        self._check_body(system, self.body)
        shape = self._shape(system)
        d = 1 if len(shape) == 1 else shape[1]
        if self.point.shape != (d,) or not np.all(np.isfinite(self.point)):
            raise ConfigError(f"FinalDistance: point must be {d} finite numbers (a position in '{self.field}'), "
                              f"got {self.point}")

    def reads(self, system, T):
        fields, when = super().reads(system, T)
        if len(when) != 1:
            raise ConfigError(f"FinalDistance reads one state; steps={self.steps!r} selects {len(when)}")
        return fields, when

    def evaluate(self, states, steps, system=None):
        arr = states[self.field]
        d = self._points(arr, self.body)[0] - self.point
        m = float(np.sqrt(d @ d))
        self.measured = m
        g = np.zeros_like(arr)
        if self.target == 0.0:  # weight |d|^2: exact at the goal too
            self._put_points(g, self.body, (2.0 * self.weight * d)[None, :])
            return self.weight * m * m, {self.field: g}
        unit = d / m if m > 0 else np.zeros_like(d)
        if self.target is None:
            self._put_points(g, self.body, (self.weight * unit)[None, :])
            return self.weight * m, {self.field: g}
        r = m - self.target
        self._put_points(g, self.body, (2.0 * self.weight * r * unit)[None, :])
        return self.weight * r * r, {self.field: g}


# ---------------------------------------------------------------------- trajectory matching (kernels)


@ti.kernel
def _match2(x: ti.types.ndarray(ndim=2), obs: ti.types.ndarray(ndim=2), w: _A1,
            slot0: ti.i32, t0: ti.i32, t1: ti.i32, loss: _A1):
    for t, i in ti.ndrange((t0, t1), x.shape[1]):
        d = x[slot0 + t - t0, i] - obs[t, i]
        loss[0] += w[0] * d * d


@ti.kernel
def _match3(x: ti.types.ndarray(ndim=3), obs: ti.types.ndarray(ndim=3), w: _A1,
            slot0: ti.i32, t0: ti.i32, t1: ti.i32, loss: _A1):
    for t, i, k in ti.ndrange((t0, t1), x.shape[1], x.shape[2]):
        d = x[slot0 + t - t0, i, k] - obs[t, i, k]
        loss[0] += w[0] * d * d


class TrajectoryMatch(System):
    """``system`` with a least-squares trajectory-matching loss on the observed fields.

    observed: {field: array (T+1, *shape)}, the states x_0..x_T that were recorded (NaN-free).
    weights: {field: weight} (default 1 per field), in 1/(unit of the field)^2.
    keep_own_cost: also keep the wrapped system's running and terminal costs.
    """

    def __init__(self, system: System, observed: dict, weights: dict | None = None,
                 keep_own_cost: bool = False):
        self.system = system
        self.state_shapes = dict(system.state_shapes)
        self.control_shapes = dict(system.control_shapes)
        self.segment = system.segment
        self.advance = system.advance  # None, or the bound fused method
        self.keep_own_cost = keep_own_cost
        dtype = config().numpy_real
        self.observed, self.weights, self.steps = {}, {}, None
        for name, value in observed.items():
            if name not in self.state_shapes:
                raise ConfigError(f"observed field '{name}' is not a state field of {type(system).__name__}; "
                                  f"fields are {list(self.state_shapes)}")
            value = np.asarray(value, dtype=np.float64)
            shape = self.state_shapes[name]
            if value.ndim != len(shape) + 1 or value.shape[1:] != shape:
                raise ConfigError(f"observed '{name}' must have shape (T+1, *{shape}), got {value.shape}")
            if self.steps is not None and value.shape[0] - 1 != self.steps:
                raise ConfigError("every observed field must cover the same T+1 states")
            if not np.all(np.isfinite(value)):
                raise ConfigError(f"observed '{name}' holds NaN or Inf")
            self.steps = value.shape[0] - 1
            arr = ti.ndarray(config().real, value.shape)
            arr.from_numpy(value.astype(dtype))
            w = ti.ndarray(config().real, 1)
            w.from_numpy(np.array([(weights or {}).get(name, 1.0)], dtype=dtype))
            self.observed[name], self.weights[name] = arr, w
        if not self.observed:
            raise ConfigError("TrajectoryMatch needs at least one observed field")

    def parameters(self):
        return self.system.parameters()

    def initial_state(self):
        return self.system.initial_state()

    def step(self, x, u, src, dst, t):
        return self.system.step(x, u, src, dst, t)

    def divergence_hint(self):
        return self.system.divergence_hint()

    def plausible_magnitudes(self):
        return self.system.plausible_magnitudes()

    def control_limits(self):
        return self.system.control_limits()

    def trajectory_costs(self):
        return self.system.trajectory_costs() if self.keep_own_cost else []

    def __getattr__(self, name):
        # anything else the wrapped system offers (dt, n, dim, ...) is its own
        if name == "system":
            raise AttributeError(name)
        return getattr(self.system, name)

    def validate(self, steps):
        if steps != self.steps:
            raise ConfigError(f"the observed trajectory has {self.steps} steps (T+1 = {self.steps + 1} states); "
                              f"a rollout of {steps} steps cannot be matched to it")
        self.system.validate(steps)

    def _match(self, x, slot0, t0, t1, loss):
        out = []
        for name, obs in self.observed.items():
            kernel = _match2 if len(self.state_shapes[name]) == 1 else _match3
            out.append(launch(kernel, x[name], obs, self.weights[name], slot0, t0, t1, loss))
        return out

    def running_cost(self, x, u, slot0, t0, t1, loss):
        own = list(self.system.running_cost(x, u, slot0, t0, t1, loss)) if self.keep_own_cost else []
        return own + self._match(x, slot0, t0, t1, loss)

    def terminal_cost(self, x, slot, loss):
        own = list(self.system.terminal_cost(x, slot, loss)) if self.keep_own_cost else []
        return own + self._match(x, slot, self.steps, self.steps + 1, loss)


__all__ = [
    "ApexHeight",
    "Cost",
    "FinalDistance",
    "FirstContactTime",
    "MinimumDistance",
    "NumpyCost",
    "SmoothMax",
    "TorchCost",
    "TrajectoryCost",
    "TrajectoryMatch",
    "smooth_max",
    "smooth_min",
]
