"""Your own law of motion, fused: point bodies whose forces you write as Taichi functions.

A scene of your own written as a :class:`diffsim.System` with one kernel launch per step pays a
launch (70-80 us on a CPU) per phase and step, and its adjoint as many again. Here you write only
the physics, one body's force and one pair's force, as ``@ti.func``; :class:`ParticleSystem`
builds the fused kernel that runs a whole segment of steps in one launch (bodies, then pairs,
then the integration, in one serial loop, so that Taichi's reverse mode sees straight-line
code), and the tape runs it forward and in reverse under any checkpoint schedule::

    import taichi as ti

    @ti.func
    def pair_force(i, j, xi, vi, xj, vj, p: ti.template()):   # force on body i from body j (N)
        d = xi - xj
        gap = d.norm() - p.radius[i] - p.radius[j]
        return p.stiffness[None] * ti.max(-gap, 0.0) * d / d.norm()

    @ti.func
    def body_force(i, x, v, p: ti.template()):               # gravity, drag, ... (N)
        return -p.drag[None] * v

    system = ParticleSystem(x0, v0, dt=1e-3, pair_force=pair_force, body_force=body_force,
                            parameters={"mass": masses, "radius": radii, "stiffness": 1e4, "drag": 0.1})

Conventions
- State: ``x`` (n, dim) positions (m) and ``v`` (n, dim) velocities (m/s); dim 2 or 3.
- Control: ``force`` (n, dim) per step (N), added to each body's force (zero by default).
- Parameters: each entry of ``parameters`` becomes a Taichi field with gradient storage: a
  number is a 0-d field (read it as ``p.name[None]``), an array a field of its shape
  (``p.name[i]`` for a per-body value). ``mass`` (kg, a number or (n,)) is required; the
  bodies move by semi-implicit Euler, v' = v + dt F / m, x' = x + dt v'. Fit any of them with
  ``Parameter(name)``; a scalar's gradient is a 0-d array.
- Your functions receive vectors of ``dim`` entries and the parameter namespace ``p``
  (annotate it ``p: ti.template()``), and return a force vector of ``dim`` entries (N). They
  must be straight-line code (``ti.static`` loops are fine; ``if`` is fine): a dynamic loop
  breaks Taichi's reverse mode (a two-iteration ``for k in range(2)`` summing into a local
  crashed the interpreter with a segmentation fault in the adjoint), so :class:`ParticleSystem`
  reads the source of your functions and of the ``@ti.func`` s they call and refuses a ``for``
  over anything but ``ti.static(...)``, or a ``while``, with a ConfigError naming the line.
- Every ordered pair (i, j), i != j, is evaluated: n (n - 1) calls per step, no broad phase
  (half as many with ``newton_third_law=True``).
  This is the path for tens of bodies; a large scene wants a broad phase (:mod:`diffsim.rigid`).
"""

import ast
import inspect
import keyword
import textwrap
import types
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import taichi as ti

from . import storage
from .compat import is_taichi_func, taichi_func_source
from .errors import ConfigError
from .runtime import config
from .tape import Launch, System, adjoint_only, launch


class ParticleSystem(System):
    """n point bodies moved by forces you write as ``@ti.func`` (see the module doc).

    x0, v0: (n, dim) initial positions (m) and velocities (m/s; zero by default). dt: time step
    (s). pair_force(i, j, xi, vi, xj, vj, p) and body_force(i, x, v, p): ``@ti.func``
    returning the force (N, a ``dim``-vector) on body i; either may be None. parameters:
    {name: number or array}, ``mass`` required (kg). newton_third_law: evaluate each unordered
    pair once and apply -F to body j (half the pair calls; right only for a pair force that is
    equal and opposite, F(j, i) = -F(i, j), as contact and central forces are). costs: costs on the trajectory
    (:mod:`diffsim.costs`). segment: steps per fused launch.
    """

    control_shapes: ClassVar[dict] = {}

    def __init__(self, x0, v0=None, *, dt: float, parameters: dict, pair_force: Callable | None = None,
                 body_force: Callable | None = None, newton_third_law: bool = False, costs=(), segment: int = 100):
        config()  # starts the default runtime if none was started
        x0 = np.asarray(x0, dtype=np.float64)
        if x0.ndim != 2 or x0.shape[1] not in (2, 3) or len(x0) < 1:
            raise ConfigError(f"x0 must be an (n, 2) or (n, 3) array of positions (m), got shape {x0.shape}")
        n, dim = x0.shape
        v0 = np.zeros_like(x0) if v0 is None else np.asarray(v0, dtype=np.float64)
        if v0.shape != x0.shape:
            raise ConfigError(f"v0 must have the shape of x0 {x0.shape}, got {v0.shape}")
        if not (isinstance(dt, (int, float)) and np.isfinite(dt) and dt > 0):
            raise ConfigError(f"dt must be a positive number of seconds, got {dt!r}")
        if pair_force is None and body_force is None:
            raise ConfigError("give pair_force, body_force or both: @ti.func returning the force (N) on body i")
        for name, fn in (("pair_force", pair_force), ("body_force", body_force)):
            if fn is not None and not (callable(fn) and is_taichi_func(fn)):
                raise ConfigError(f"{name} must be a function decorated with @ti.func (Taichi compiles it into the "
                                  f"fused kernel), got {fn!r}")
            if fn is not None:
                check_straight_line(name, fn)
        if not isinstance(parameters, dict) or "mass" not in parameters:
            raise ConfigError("parameters must be a dict that includes 'mass' (kg, a number or one per body)")
        self.n, self.dim, self.dt = n, dim, float(dt)
        self.state_shapes = {"x": (n, dim), "v": (n, dim)}
        self.control_shapes = {"force": (n, dim)}
        self.segment = segment
        self.costs = list(costs)
        self._x0, self._v0 = x0, v0
        self._fields = {}
        for name, value in parameters.items():
            self._fields[name] = self._field(name, value)
        mass = self._fields["mass"].to_numpy()
        if mass.shape not in ((), (n,)) or not np.all(mass > 0):
            raise ConfigError(f"mass must be a positive number or {n} positive numbers (kg), got {mass!r}")
        for name, fn in (("pair_force", pair_force), ("body_force", body_force)):
            if fn is not None:
                check_parameter_reads(name, fn, {k: f.shape for k, f in self._fields.items()})
        self.p = types.SimpleNamespace(**self._fields)
        self._scratch = {}
        self._advance = _fused_kernel(pair_force, body_force, self.p, dim, mass.shape == (), bool(newton_third_law))

    @staticmethod
    def _field(name, value):
        if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)):
            raise ConfigError(f"parameter name {name!r} must be a Python identifier (it is read as p.{name})")
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"parameter '{name}' must be a number or an array of numbers, got {value!r}") from None
        if not np.all(np.isfinite(arr)):
            raise ConfigError(f"parameter '{name}' must be finite, got {value!r}")
        field = ti.field(config().real, shape=arr.shape, needs_grad=True)
        field.from_numpy(arr.astype(config().numpy_real))
        return field

    def parameters(self) -> dict:
        """{name: Taichi field with gradient storage}: every entry of ``parameters``."""
        return dict(self._fields)

    def initial_state(self) -> dict:
        """{"x": (n, dim) m, "v": (n, dim) m/s}."""
        return {"x": self._x0.copy(), "v": self._v0.copy()}

    def divergence_hint(self) -> str:
        """The usual cause: a force too stiff for dt."""
        return f"a force may be too stiff for dt = {self.dt} s: reduce dt or the stiffness"

    def _force_scratch(self, x):
        slots = int(x.x.shape[0])
        if slots not in self._scratch:
            self._scratch[slots] = ti.ndarray(config().real, (slots, self.n, self.dim), needs_grad=True)
        return self._scratch[slots]

    def advance(self, x, u, slot0, t0, t1) -> list[Launch]:
        """Steps t0..t1-1 in one fused launch (see :class:`diffsim.System`)."""
        f = self._force_scratch(x)
        s1 = slot0 + t1 - t0
        return [launch(self._advance, x.x, x.v, f, u.force, self.dt, slot0, t0, t1),
                adjoint_only(storage.zero_slots, f.grad, slot0, s1 + 1)]  # reversed first: the force adjoints start at 0


def _is_static(call) -> bool:
    """``ti.static(...)`` or ``static(...)``: a loop Taichi unrolls at compile time."""
    f = call.func if isinstance(call, ast.Call) else None
    return (isinstance(f, ast.Attribute) and f.attr == "static") or (isinstance(f, ast.Name) and f.id == "static")


def _resolve(node, scope: dict):
    """The object a called ``name`` or ``module.name`` refers to in ``scope``, or None."""
    if isinstance(node, ast.Name):
        return scope.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, scope)
        return getattr(owner, node.attr, None) if owner is not None else None
    return None


def check_straight_line(name: str, fn, _seen=None) -> None:
    """Refuse a dynamic loop (``for`` over anything but ``ti.static(...)``, or ``while``) in the
    ``@ti.func`` ``fn`` or in the ``@ti.func`` s it calls (looked up in its globals and closure):
    the fused kernel runs them inside its serial loop over steps, where Taichi 1.7.4's reverse
    mode mishandles dynamic loops (a segmentation fault in the adjoint, or wrong gradients).
    Functions whose source Python cannot read are not checked."""
    seen = set() if _seen is None else _seen
    found = _function_tree(fn)
    if found is None or id(found[3]) in seen:
        return
    tree, first, path, py = found
    seen.add(id(py))
    where = f"{path}:{{}}"
    scope = dict(getattr(py, "__globals__", {}))
    closure = getattr(py, "__closure__", None) or ()
    for var, cell in zip(py.__code__.co_freevars, closure):
        try:
            scope[var] = cell.cell_contents
        except ValueError:
            pass
    for node in ast.walk(tree):
        dynamic = isinstance(node, ast.While) or (isinstance(node, ast.For) and not _is_static(node.iter))
        if dynamic:
            line = first + node.lineno - 1
            kind = "while" if isinstance(node, ast.While) else "for"
            raise ConfigError(
                f"{name}: the `{kind}` loop at {where.format(line)} (in {py.__name__}) is a dynamic loop; Taichi's "
                f"reverse mode mishandles dynamic loops inside the fused kernel (it crashed the interpreter in the "
                f"adjoint, or gives wrong gradients). Unroll it at compile time, `for k in ti.static(range(3))`, "
                f"or write the terms out")
        if isinstance(node, ast.Call):
            callee = _resolve(node.func, scope)
            if callee is not None:
                check_straight_line(name, callee, seen)


def _function_tree(fn):
    """(tree, first line, file, name) of the Python source behind the ``@ti.func`` fn, or None
    where Python cannot read it."""
    py = taichi_func_source(fn)
    if py is None:
        return None
    try:
        lines, first = inspect.getsourcelines(py)
        return ast.parse(textwrap.dedent("".join(lines))), first, inspect.getsourcefile(py) or "<unknown>", py
    except (OSError, TypeError, SyntaxError):
        return None


def check_parameter_reads(name: str, fn, shapes: dict) -> None:
    """Refuse a read of the parameters (the function's last argument, ``p``) that the fused kernel
    cannot compile: ``p.name`` not among ``shapes`` ({parameter: shape}), a number read per body
    (``p.mass[i]`` where mass was given as one number: it is a 0-d field, ``p.mass[None]``) or a
    per-body array read as a number. Taichi's own error for these is an IndexError without a
    message, raised at the first launch."""
    found = _function_tree(fn)
    if found is None:
        return
    tree, first, path, py = found
    func = next((node for node in tree.body if isinstance(node, ast.FunctionDef)), None)
    if func is None or not func.args.args:
        return
    p = func.args.args[-1].arg

    def read_of(node):  # the parameter name node reads (p.name or p.name[...]), else None
        target = node.value if isinstance(node, ast.Subscript) else node
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == p:
            return target.attr
        return None

    for node in ast.walk(func):
        attr = read_of(node)
        if attr is None:
            continue
        where = f"{path}:{first + node.lineno - 1} (in {py.__name__})"
        if attr not in shapes:
            raise ConfigError(f"{name}: {p}.{attr} at {where} is not a parameter; the parameters are "
                              f"{', '.join(sorted(shapes))} (add '{attr}' to parameters=)")
        if not isinstance(node, ast.Subscript):
            continue
        none = isinstance(node.slice, ast.Constant) and node.slice.value is None
        if not shapes[attr] and not none:
            raise ConfigError(f"{name}: {p}.{attr}[{ast.unparse(node.slice)}] at {where} reads one value per body, "
                              f"but '{attr}' was given as one number (a 0-d field): read {p}.{attr}[None], or give "
                              f"'{attr}' one value per body (a list of n numbers)")
        if shapes[attr] and none:
            raise ConfigError(f"{name}: {p}.{attr}[None] at {where} reads one number, but '{attr}' was given as an "
                              f"array of shape {tuple(shapes[attr])}: index it ({p}.{attr}[i]), or give one number")

def _fused_kernel(pair_force, body_force, p, dim: int, scalar_mass: bool, newton_third_law: bool):
    """The segment kernel for these force functions: one serial loop over (step, phase item), the
    phases being each body's own force, each ordered pair's force, and each body's update."""
    has_pairs, has_body = pair_force is not None, body_force is not None
    real = config().real

    @ti.func
    def vec(a: ti.template(), s, i):
        return ti.Vector([a[s, i, k] for k in ti.static(range(dim))], dt=real)

    @ti.func
    def mass_of(i):
        m = ti.cast(0.0, real)
        if ti.static(scalar_mass):
            m = p.mass[None]
        else:
            m = p.mass[i]
        return m

    @ti.kernel
    def advance(x: ti.types.ndarray(), v: ti.types.ndarray(), f: ti.types.ndarray(), u: ti.types.ndarray(),
                dt: real, slot0: ti.i32, t0: ti.i32, t1: ti.i32):
        for _ in range(1):  # one thread: the steps are sequential
            n = x.shape[1]
            width = n + n * n + n
            for it in range((t1 - t0) * width):
                k, j = it // width, it % width
                s = slot0 + k
                if j < n:  # the body's own force (and the control)
                    fi = vec(u, t0 + k, j)
                    if ti.static(has_body):
                        fi = fi + body_force(j, vec(x, s, j), vec(v, s, j), p)
                    for c in ti.static(range(dim)):
                        f[s, j, c] = fi[c]
                elif j < n + n * n:  # the force on a from b
                    a, b = (j - n) // n, (j - n) % n
                    if ti.static(has_pairs):
                        if a < b or (a > b and not ti.static(newton_third_law)):
                            fab = pair_force(a, b, vec(x, s, a), vec(v, s, a), vec(x, s, b), vec(v, s, b), p)
                            for c in ti.static(range(dim)):
                                f[s, a, c] += fab[c]
                                if ti.static(newton_third_law):
                                    f[s, b, c] -= fab[c]
                else:  # semi-implicit Euler
                    i = j - n - n * n
                    for c in ti.static(range(dim)):
                        v[s + 1, i, c] = v[s, i, c] + dt * f[s, i, c] / mass_of(i)
                        x[s + 1, i, c] = x[s, i, c] + dt * v[s + 1, i, c]

    return advance


__all__ = ["ParticleSystem"]
