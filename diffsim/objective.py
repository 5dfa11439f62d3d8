"""Parameters and objectives: a Rollout seen as ``x -> (loss, grad)`` on one float64 vector.

The optimizers know nothing of Taichi; :class:`Objective` packs the chosen system parameters,
control sequences and initial-state fields into one flat vector, runs the rollout forward and
backward, and returns the loss and the gradient in the same packing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import storage
from .errors import ConfigError, SimulationDiverged
from .runtime import config

KINDS = ("param", "control", "state0")
TRANSFORMS = (None, "log")


@dataclass
class Parameter:
    """One fitted quantity of a rollout.

    name: a system parameter (``rollout.params``), a control (``rollout.u``) or an initial-state
        field (``rollout.state0``); ``kind`` disambiguates when a name is in several.
    lower, upper: bounds in physical units (scalars or arrays), None for unbounded.
    transform: None, or "log" for positive quantities (masses, stiffnesses): the optimizer then
        sees log(p), which keeps p > 0 and evens out scales.
    index: fit only some entries: anything that indexes the field's array in NumPy (an int, a
        tuple such as ``(0,)`` for the first body's row, a slice, a list of rows, or a boolean
        mask of the field's shape). The other entries keep their current values. ``lower`` and
        ``upper`` then broadcast to the field's shape or to the selected entries.
        ``Parameter("v", kind="state0", index=0)`` fits the cue ball's velocity only.
    bounds: "limits" (or its robotics name "effort") takes ``lower`` and ``upper`` of a control
        from the system's declared actuator limits (``system.control_limits()``: a URDF joint's
        ``<limit effort=...>``, in N m or N), so ``Parameter("tau", bounds="effort")`` keeps
        every torque within what the motors can give. Explicit ``lower``/``upper`` then must
        not be given.
    """

    name: str
    kind: str | None = None
    lower: object = None
    upper: object = None
    transform: str | None = None
    index: object = None
    bounds: str | None = None

    def __post_init__(self):
        if self.bounds not in (None, "limits", "effort"):
            raise ConfigError(f"Parameter '{self.name}': bounds must be None, 'limits' or 'effort', "
                              f"got {self.bounds!r}")
        if self.bounds is not None and (self.lower is not None or self.upper is not None):
            raise ConfigError(f"Parameter '{self.name}': give either bounds={self.bounds!r} or lower/upper, not both")
        if self.kind is not None and self.kind not in KINDS:
            raise ConfigError(f"Parameter '{self.name}': kind must be one of {KINDS}, got {self.kind!r}")
        if self.transform not in TRANSFORMS:
            raise ConfigError(f"Parameter '{self.name}': transform must be one of {TRANSFORMS}, "
                              f"got {self.transform!r}")


class Objective:
    """``objective(x) -> (loss, grad)`` for a Rollout and a list of Parameters (or names).

    ``on_diverged="nan"`` turns a :class:`SimulationDiverged` rollout into a NaN loss and
    gradient (``minimize(..., on_nonfinite="backoff")`` steps back from either, every method,
    L-BFGS included); the error is kept in ``last_divergence`` (None after a rollout that did
    not diverge), and ``minimize`` quotes it (step, field, index) when it reports the NaN.
    ``x0()`` packs the current values; ``unpack(x)`` gives physical values by name; ``names``
    labels every entry ("stiffness[0]", "force[12,0]"); ``bounds`` gives (lo, hi) per entry in
    the packed (transformed) space, for L-BFGS-B or projected gradient steps.
    """

    def __init__(self, rollout, parameters, on_diverged: str = "raise"):
        if on_diverged not in ("raise", "nan"):
            raise ConfigError(f"on_diverged must be 'raise' or 'nan', got {on_diverged!r}")
        self.on_diverged = on_diverged
        self.rollout = rollout
        self.parameters = [p if isinstance(p, Parameter) else Parameter(p) for p in parameters]
        if not self.parameters:
            raise ConfigError("an Objective needs at least one parameter, control or initial-state field")
        self._layout = []  # (parameter, kind, shape, offset, size)
        self._masks = {}   # parameter name -> boolean mask of its shape, for Parameter(index=...)
        offset = 0
        for p in self.parameters:
            kind = p.kind or self._find_kind(p.name)
            shape = self._shape(kind, p.name)
            size = int(np.prod(shape))
            if p.bounds is not None:
                p = self._with_system_limits(p, kind)
            if p.index is not None:
                mask = self._mask(p, shape)
                self._masks[p.name] = mask
                size = int(mask.sum())
            self._layout.append((p, kind, shape, offset, size))
            offset += size
        self.size = offset
        self.nfev = 0
        self.last_divergence = None
        self._check_bounds()

    def _check_bounds(self):
        """Every entry's lower bound at most its upper one, and neither NaN."""
        for p, _kind, shape, _off, size in self._layout:
            try:
                lo = self._bound(p, p.lower, -np.inf, shape, size)
                hi = self._bound(p, p.upper, np.inf, shape, size)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"Parameter '{p.name}': lower/upper must be numbers or arrays that broadcast to "
                                  f"{size} entries: {err}") from None
            bad = np.flatnonzero(np.isnan(lo) | np.isnan(hi) | (lo > hi))
            if bad.size:
                i = int(bad[0])
                raise ConfigError(f"Parameter '{p.name}': entry {i} has lower={lo[i]:g} > upper={hi[i]:g} (or a NaN "
                                  "bound); give lower <= upper")

    def _find_kind(self, name):
        r = self.rollout
        kinds = [k for k, table in (("param", r.params), ("control", r.control_shapes),
                                    ("state0", r.state_shapes)) if name in table]
        if not kinds:
            system_attr = getattr(r.system, name, None)
            if system_attr is not None and getattr(system_attr, "grad", 1) is None:
                raise ConfigError(f"'{name}' of {type(r.system).__name__} has no gradient: allocate it with "
                                  "needs_grad=True and list it in parameters()")
            raise ConfigError(f"'{name}' is not a parameter ({list(r.params)}), control "
                              f"({list(r.control_shapes)}) or state field ({list(r.state_shapes)})")
        if len(kinds) > 1:
            raise ConfigError(f"'{name}' is a {' and a '.join(kinds)}: say which with Parameter(kind=...)")
        return kinds[0]

    def _shape(self, kind, name):
        r = self.rollout
        if kind == "param":
            if name not in r.params:
                raise ConfigError(f"'{name}' is not a parameter with a gradient; parameters are {list(r.params)}")
            return tuple(r.params[name].shape)
        if kind == "control":
            if name not in r.control_shapes:
                raise ConfigError(f"'{name}' is not a control; controls are {list(r.control_shapes)}")
            return (r.steps, *r.control_shapes[name])
        if name not in r.state_shapes:
            raise ConfigError(f"'{name}' is not a state field; fields are {list(r.state_shapes)}")
        return r.state_shapes[name]

    def _with_system_limits(self, p, kind):
        """A copy of ``p`` whose lower/upper are the system's declared limits of control p.name."""
        system = self.rollout.system
        limits = system.control_limits()
        if kind != "control" or p.name not in limits:
            raise ConfigError(f"Parameter '{p.name}': bounds={p.bounds!r} needs a control whose limits "
                              f"{type(system).__name__} declares (control_limits(): {sorted(limits)}); "
                              "give lower= and upper= instead")
        lower, upper = limits[p.name]
        return replace(p, lower=lower, upper=upper, bounds=None)

    @staticmethod
    def _mask(p, shape):
        mask = np.zeros(shape, dtype=bool)
        index = p.index
        if isinstance(index, np.ndarray) and index.dtype == bool and index.shape != shape:
            raise ConfigError(f"Parameter '{p.name}': a boolean index must have the field's shape {shape}, "
                              f"got {index.shape}")
        try:
            mask[index] = True
        except (IndexError, TypeError, ValueError) as err:
            raise ConfigError(f"Parameter '{p.name}': index {index!r} does not select entries of a field of "
                              f"shape {shape} ({err}); give an int, a tuple, a slice, a list or a boolean "
                              "mask") from None
        if not mask.any():
            raise ConfigError(f"Parameter '{p.name}': index {index!r} selects no entry of shape {shape}")
        return mask

    # ------------------------------------------------------------------ packing

    def _values(self, kind, name):
        r = self.rollout
        if kind == "param":
            return r.params[name].to_numpy().astype(np.float64)
        if kind == "control":
            return r.u[name].to_numpy().astype(np.float64)
        return np.asarray(r.state0[name], dtype=np.float64)

    def x0(self) -> np.ndarray:
        """The current values, packed (and transformed)."""
        x = np.empty(self.size)
        for p, kind, _shape, off, size in self._layout:
            v = self._values(kind, p.name)
            v = v[self._masks[p.name]] if p.name in self._masks else v.ravel()
            if p.transform == "log":
                if np.any(v <= 0):
                    raise ConfigError(f"'{p.name}' has a value <= 0 but transform='log' needs positive values")
                v = np.log(v)
            x[off:off + size] = v
        return x

    def unpack(self, x) -> dict:
        """Physical values by name from a packed vector: whole fields of their full shape (for a
        Parameter with an ``index``, the entries it does not fit hold their current values)."""
        x = self._check(x)
        out = {}
        for p, kind, shape, off, size in self._layout:
            v = x[off:off + size]
            v = np.exp(v) if p.transform == "log" else v.copy()
            if p.name in self._masks:
                full = self._values(kind, p.name).reshape(shape)
                full[self._masks[p.name]] = v
                v = full
            out[p.name] = v.reshape(shape)
        return out

    def _indices(self, p, shape):
        if p.name in self._masks:
            return [tuple(idx) for idx in np.argwhere(self._masks[p.name])]
        return list(np.ndindex(*shape))

    @property
    def names(self) -> list:
        """One name per entry of the packed vector, e.g. ``"tau[3,0,1]"`` (length ``size``)."""
        out = []
        for p, _kind, shape, _off, _size in self._layout:
            out.extend(f"{p.name}[{','.join(map(str, idx))}]" for idx in self._indices(p, shape))
        return out

    def _bound(self, p, value, default, shape, size):
        b = np.asarray(default if value is None else value, float)
        mask = self._masks.get(p.name)
        if mask is None:
            return np.broadcast_to(b, shape).ravel()
        try:
            return np.broadcast_to(b, shape)[mask]
        except ValueError:
            return np.broadcast_to(b, (size,)).copy()

    @property
    def bounds(self) -> list:
        """(lo, hi) per packed entry, None where unbounded, in the transformed space."""
        out = []
        for p, _kind, shape, _off, size in self._layout:
            lo = self._bound(p, p.lower, -np.inf, shape, size)
            hi = self._bound(p, p.upper, np.inf, shape, size)
            if p.transform == "log":
                with np.errstate(divide="ignore"):
                    lo, hi = np.log(np.maximum(lo, 0.0)), np.log(hi)
            out.extend((None if not np.isfinite(a) else float(a), None if not np.isfinite(b) else float(b))
                       for a, b in zip(lo, hi))
        return out

    def _check(self, x):
        if np.iscomplexobj(x):
            raise ConfigError("the parameter vector is complex: give real numbers")
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"the parameter vector must hold real numbers: {err}") from None
        if x.shape != (self.size,):
            raise ConfigError(f"parameter vector must have shape ({self.size},), got {x.shape}")
        if not np.all(np.isfinite(x)):
            i = int(np.argmax(~np.isfinite(x)))
            raise ConfigError(f"parameter vector entry {i} ({self.names[i]}) is {x[i]}: parameters must be "
                              "finite (an optimizer step that produced it needs a smaller step or bounds)")
        return x

    def set(self, x):
        """Write a packed vector into the system, controls and initial state."""
        r = self.rollout
        dtype = config().numpy_real
        for name, value in self.unpack(x).items():
            kind = next(k for p, k, *_ in self._layout if p.name == name)
            if kind == "param":
                storage.from_numpy(value.astype(dtype), r.params[name])
            elif kind == "control":
                r.set_controls(**{name: value})
            else:
                r.set_state0(**{name: value})

    def forward_loss(self, x) -> float:
        """The loss alone at x (a forward sweep, no adjoint): what finite differences need."""
        self.set(self._check(x))
        self.last_divergence = None
        try:
            return self.rollout.forward()
        except SimulationDiverged as err:
            if self.on_diverged == "raise":
                raise
            self.last_divergence = err
            return float("nan")

    def __call__(self, x):
        """(loss, dloss/dx) at x; x and the gradient are float64 vectors in the packed space."""
        x = self._check(x)
        self.set(x)
        self.nfev += 1
        self.last_divergence = None
        try:
            loss = self.rollout.forward()
        except SimulationDiverged as err:
            if self.on_diverged == "raise":
                raise
            self.last_divergence = err
            return float("nan"), np.full(self.size, np.nan)
        grads = self.rollout.backward(only={p.name for p, *_ in self._layout})
        g = np.empty(self.size)
        for p, kind, _shape, off, size in self._layout:
            table = {"param": grads.params, "control": grads.controls, "state0": grads.state0}[kind]
            gi = np.asarray(table[p.name], dtype=np.float64)
            gi = gi[self._masks[p.name]] if p.name in self._masks else gi.ravel()
            if p.transform == "log":
                gi = gi * np.exp(x[off:off + size])
            g[off:off + size] = gi
        return loss, g
