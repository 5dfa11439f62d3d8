"""The checkpointed time-stepping tape: the System contract and ``Rollout``.

Taichi's ``ti.ad.Tape`` records launches but stores no data, so a rollout of T steps needs T+1
states allocated by the user. Here the tape owns the state storage: a System only says what one
time slice holds and how to step it, and a schedule (:mod:`diffsim.checkpointing`) says which
states are kept and which are recomputed during the adjoint sweep.

Time is cut in three sizes:
- a *step*, t -> t+1 (``System.step``), one kernel launch or a few;
- a *segment* of ``segment`` steps: the unit of one fused launch (``System.advance``) and of
  one running-cost launch. Every schedule launches the same segments, so under
  ``diffsim.init(deterministic=True)`` every schedule gives bitwise the same loss and gradients;
- a *unit*: the run of segments a schedule stores, recomputes and reverses as a whole
  (StoreAll: the whole rollout; Periodic(k): k steps; Binomial: one segment).

The loss is the system's running and terminal costs, the kernel costs given to the Rollout, and
the costs written in Python on the trajectory (:mod:`diffsim.costs`), whose states the recording
sweep hands to NumPy and whose gradients the adjoint sweep adds into the state adjoints.
After every unit the tape checks the states for NaN, Inf and magnitudes beyond
``System.plausible_magnitudes()``: each is a :class:`~diffsim.errors.SimulationDiverged`.
"""

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import numpy as np
import taichi as ti

from . import storage
from .checkpointing import Binomial, StoreAll, revolve, snapshots_for_budget
from .compat import launch_kernel, launch_kernel_under
from .errors import ConfigError, DiffsimError, SimulationDiverged
from .progress import progress_bar
from .runtime import config


class Launch(NamedTuple):
    """One kernel launch that the tape can run forward and replay in reverse (``kernel.grad``)."""

    kernel: Callable
    args: tuple

    def forward(self):
        """Run the kernel on its arguments (forward sweep)."""
        launch_kernel(self.kernel, *self.args)

    def adjoint(self):
        """Run ``kernel.grad`` on the same arguments (adjoint sweep): adds into the inputs' adjoints."""
        launch_kernel(self.kernel.grad, *self.args)


def launch(kernel, *args) -> Launch:
    """``launch(k, a, b)`` is the launch ``k(a, b)``; systems return lists of these."""
    return Launch(kernel, args)


LEAN_GRADIENT_COMPILE = {"cfg_optimization": False}
"""Taichi compile options of the gradient kernels that :class:`LeanAdjoint` launches: without
Taichi's control-flow optimisation passes, which are most of a large gradient kernel's cold
compile (store-to-load forwarding alone took 60-70 % of the rigid ones'). Measured on an empty
offline cache, CPU s of a scene's first forward + gradient: hopper 13.4 -> 7.1, bowling 23 ->
10.3-11.5, stacking 15-16 -> 10.8-11.7; the robots' gradients bitwise equal (the issue-16
chain's, lean against default in separate processes: min 7.45-7.9 against 6.64-8.4 ms CPU,
within the machine's noise), the rigid penalty scenes' within 1e-12 and 5-30 % slower warm
(bowling 55-65 -> 73-75 ms a gradient). Kept at Taichi's defaults: the spheres' impulse kernels
(the billiards break's gradient ran 2.4x slower without them), the manifold solver's (lean, its
gradients came out wrong) and robots without ground contact (they compile within 10 s either
way). Compare settings in separate processes: Taichi does not recompile a kernel in one process
when the options change."""


class LeanAdjoint:
    """A kernel as a launchable whose adjoint compiles with :data:`LEAN_GRADIENT_COMPILE`, or
    with the compile ``options`` given (its forward keeps Taichi's defaults unless
    ``forward_too``); both launched through :func:`~diffsim.compat.launch_kernel`. ``lean=False``
    keeps the defaults for the adjoint too (a System that decides per model). A kernel must
    always be launched under the same options (Taichi keeps the first compile)."""

    def __init__(self, kernel, lean: bool = True, options: dict | None = None, forward_too: bool = False):
        self.kernel, self.lean, self.forward_too = kernel, lean, forward_too
        self.options = LEAN_GRADIENT_COMPILE if options is None else options

    def __call__(self, *args):
        if self.forward_too:
            launch_kernel_under(self.options, self.kernel, *args)
            return
        launch_kernel(self.kernel, *args)

    def grad(self, *args):
        if not self.lean:
            launch_kernel(self.kernel.grad, *args)
            return
        launch_kernel_under(self.options, self.kernel.grad, *args)


def lean_launch(kernel, *args, options: dict | None = None, forward_too: bool = False) -> Launch:
    """``launch(kernel, *args)`` with the adjoint compiled lean (:class:`LeanAdjoint`; ``options``:
    other compile options for it; ``forward_too``: the forward under the same options)."""
    return Launch(LeanAdjoint(kernel, options=options, forward_too=forward_too), args)


class _OneWay:
    """A callable that runs ``fn`` in one sweep only (forward, or adjoint via ``.grad``)."""

    def __init__(self, fn, forward: bool):
        self.fn, self.forward = fn, forward

    def __call__(self, *args):
        if self.forward:
            launch_kernel(self.fn, *args)

    def grad(self, *args):
        if not self.forward:
            launch_kernel(self.fn, *args)


def forward_only(fn, *args) -> Launch:
    """A launch that runs in the forward sweep and is skipped by the adjoint sweep: neighbour
    and broad-phase builds, checks, anything with integer outputs only."""
    return Launch(_OneWay(fn, True), args)


def adjoint_only(fn, *args) -> Launch:
    """A launch skipped forward that runs in the adjoint sweep (rebuilding an integer list from
    the stored state before a step's adjoint, zeroing a scratch adjoint)."""
    return Launch(_OneWay(fn, False), args)


class Slots:
    """Named ndarrays, one per state (or control) field: ``x.q[slot, i]`` in a kernel call."""

    def __init__(self, arrays: dict):
        self._arrays = dict(arrays)
        self.__dict__.update(arrays)

    def __getitem__(self, name):
        return self._arrays[name]

    def __iter__(self):
        return iter(self._arrays)

    def items(self):
        """(field name, ndarray) pairs."""
        return self._arrays.items()

    def values(self):
        """The ndarrays, one per field."""
        return self._arrays.values()


class System:
    """What the tape needs from a simulator. Subclass and fill in.

    Attributes
    - ``state_shapes``: {field: per-step shape}, 1 or 2 axes, e.g. {"q": (n,), "v": (n,)}.
    - ``control_shapes``: {field: per-step shape} of controls u[t], e.g. {"force": (1,)}.
    - ``segment``: default steps per fused launch (1 when there is no ``advance``).

    Methods (each returns a sequence of :class:`Launch`; the tape calls them, never the user)
    - ``parameters()`` -> {name: ti.ndarray with needs_grad=True}: the fitted parameters.
    - ``initial_state()`` -> {field: numpy array of the per-step shape}.
    - ``step(x, u, src, dst, t)``: read slot ``src`` of the state ndarrays ``x``, the parameters
      and ``u[t]``; write slot ``dst``; nothing else but scratch the system owns.
    - ``advance(x, u, slot0, t0, t1)`` (optional, fused): steps t0..t1-1 in one launch, state t
      in slot ``slot0 + t - t0``. Exact gradients need a straight-line or ``ti.static`` body
      per step (Taichi 1.7.4's reverse mode drops gradients between sibling dynamic loops).
    - ``running_cost(x, u, slot0, t0, t1, loss)``: add the sum of l(x_t, u_t, t) over t0 <= t < t1 to
      ``loss[0]``, x_t in slot ``slot0 + t - t0``.
    - ``terminal_cost(x, slot, loss)``: add Phi(x_T) to ``loss[0]``.
    - ``trajectory_costs()``: costs written in Python on the trajectory
      (:class:`diffsim.costs.TrajectoryCost`) that the tape evaluates for this system; by
      default those among ``self.costs``, where a system keeps its cost terms.
    - ``plausible_magnitudes()``: {field: largest plausible |entry|}; beyond it a state is a
      divergence, like a NaN.
    """

    state_shapes: ClassVar[dict] = {}
    control_shapes: ClassVar[dict] = {}
    segment: int = 1
    advance = None

    def parameters(self) -> dict:
        """{name: ti.ndarray with needs_grad=True}: the fitted parameters (none by default)."""
        return {}

    def initial_state(self) -> dict:
        """{field: NumPy array of the per-step shape}: x_0 (zeros by default)."""
        return {name: np.zeros(shape) for name, shape in self.state_shapes.items()}

    def step(self, x, u, src, dst, t) -> Sequence[Launch]:
        """Launches that read slot ``src`` of ``x``, the parameters and ``u[t]`` and write slot ``dst``."""
        raise NotImplementedError(f"{type(self).__name__} defines neither step() nor advance()")

    def running_cost(self, x, u, slot0, t0, t1, loss) -> Sequence[Launch]:
        """Launches adding the sum of l(x_t, u_t, t) over t0 <= t < t1 to ``loss[0]`` (none by default)."""
        return ()

    def terminal_cost(self, x, slot, loss) -> Sequence[Launch]:
        """Launches adding Phi(x_T) (state in ``slot``) to ``loss[0]`` (none by default)."""
        return ()

    def trajectory_costs(self) -> list:
        """The Python-on-the-trajectory costs among ``self.costs`` (see :mod:`diffsim.costs`)."""
        return [c for c in getattr(self, "costs", ()) if is_trajectory_cost(c)]

    def validate(self, steps: int) -> None:
        """Raise ConfigError if this system cannot run ``steps`` steps (called by Rollout)."""

    def check_state(self, state: dict) -> None:
        """Raise ConfigError for an initial state this system cannot start from, beyond shape and
        finiteness, which the tape checks (e.g. a rotation quaternion that is not of unit norm).
        ``state``: {field: float64 array of the per-step shape}."""

    def divergence_hint(self) -> str:
        """Advice appended to a :class:`SimulationDiverged` message (say which dt to reduce)."""
        return ""

    def plausible_magnitudes(self) -> dict:
        """{state field: largest plausible absolute value of any entry}, in the field's units.
        A state beyond it is huge but finite: the tape treats it as a divergence (step, field,
        index), like a NaN. Fields left out are checked for finiteness only."""
        return {}

    def control_limits(self) -> dict:
        """{control: (lower, upper)} arrays broadcastable to the per-step control shape, the
        actuator limits (a URDF joint's effort) that ``Parameter(name, bounds="effort")`` uses."""
        return {}

    def simulate(self, steps: int, state0: dict | None = None, controls: dict | None = None,
                 segment: int | None = None, progress=None) -> dict:
        """Run ``steps`` steps forward with every state stored (no gradient).

        ``state0``/``controls``: as for :meth:`Rollout.forward` (the system's initial state and
        zero controls by default). ``progress``: a bar over the steps (text on stderr, a widget
        in Jupyter); None shows it when someone watches a run of at least 10,000 steps.
        Returns {state field: (steps + 1, *per-step shape) array, in the field's units} plus
        ``"loss"``, the value of the system's costs (a float)."""
        ro = Rollout(self, steps, StoreAll(), segment=segment)
        loss = ro.forward(state0=state0, controls=controls, progress=progress)
        out = {name: ro.trajectory(name) for name in self.state_shapes}
        out["loss"] = loss
        return out


def is_trajectory_cost(cost) -> bool:
    """True for a cost the tape evaluates in Python on the stored states (it has ``reads`` and
    ``evaluate``, see :class:`diffsim.costs.TrajectoryCost`); False for a kernel cost."""
    return callable(getattr(cost, "reads", None)) and callable(getattr(cost, "evaluate", None))


def _is_kernel_cost(cost) -> bool:
    return callable(getattr(cost, "running", None)) and callable(getattr(cost, "terminal", None))


@dataclass
class RolloutStats:
    """What a rollout did and held. Bytes count states and their adjoints as allocated."""

    steps: int
    schedule: str
    segment: int
    unit_steps: int
    units: int
    snapshot_capacity: int
    work_slots: int
    forward_steps: int = 0
    recomputed_steps: int = 0
    snapshots_peak: int = 0
    state_bytes: int = 0
    work_bytes: int = 0
    snapshot_bytes: int = 0
    control_bytes: int = 0
    forward_seconds: float = 0.0
    backward_seconds: float = 0.0

    @property
    def storage_bytes(self) -> int:
        """Everything the tape allocated: working slots, snapshots, controls (with adjoints)."""
        return self.work_bytes + self.snapshot_bytes + self.control_bytes


@dataclass
class Gradients:
    """dL/d(parameters), dL/d(controls) (T, ...) and dL/d(initial state), as numpy arrays."""

    params: dict = field(default_factory=dict)
    controls: dict = field(default_factory=dict)
    state0: dict = field(default_factory=dict)


class Rollout:
    """T steps of a System with the loss sum_t l(x_t, u_t, t) + Phi(x_T) and its adjoint.

    ``Rollout(system, steps, schedule=StoreAll(), segment=None, costs=())``; ``forward()`` returns
    the loss, ``backward()`` the :class:`Gradients`; ``stats`` counts steps, snapshots and bytes.

    ``costs``: extra loss terms (:mod:`diffsim.costs`) added to the system's own: kernel costs
    (``running``/``terminal`` launches) and costs written in Python on the trajectory
    (``reads``/``evaluate``). The recording sweep copies the states a Python cost reads to NumPy
    as their units complete; the cost is evaluated once after the sweep, and the adjoint sweep
    adds its gradient dC/dx_t into the adjoint of slot t just before reversing the segment that
    computed x_t. Every schedule therefore gives the same loss and gradient bitwise.
    ``cost_values`` {cost: value} holds each Python cost's value at the last forward.

    ``check_finite``: after every unit, one launch per two fields finds the first state that is NaN,
    Inf or beyond ``system.plausible_magnitudes()``; such a state raises
    :class:`~diffsim.errors.SimulationDiverged` with its step, field and index.
    Under ``Binomial(s)`` with segment 1, ``stats.recomputed_steps`` after a backward equals
    :func:`~diffsim.checkpointing.revolve_cost` (T, s), the revolve minimum, and
    ``stats.forward_steps`` is T more (each step is also run once while recording).
    """

    def __init__(self, system: System, steps: int, schedule=None, segment: int | None = None,
                 check_finite: bool = True, costs=()):
        if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps <= 0:
            raise ConfigError(f"steps must be a positive integer, got {steps!r}")
        steps = int(steps)
        schedule = StoreAll() if schedule is None else schedule
        if not hasattr(schedule, "units"):
            raise ConfigError(f"schedule must be StoreAll(), Periodic(every=k) or Binomial(snapshots=s), "
                              f"got {schedule!r}")
        fused = system.advance is not None
        segment = segment if segment is not None else (system.segment if fused else 1)
        if isinstance(segment, bool) or not isinstance(segment, (int, np.integer)) or segment < 1:
            raise ConfigError(f"segment must be a whole number >= 1 (steps fused per launch), got {segment!r}")
        segment = int(segment)
        segment = min(segment, steps)
        unit, snaps = schedule.units(steps, segment)
        unit = min(unit, steps)
        if unit % segment and unit != steps:
            raise ConfigError(f"{schedule} stores every {unit} steps, not a multiple of segment={segment}")
        self.system, self.steps, self.schedule = system, steps, schedule
        self.segment, self.unit, self.fused = segment, unit, fused
        self.units = -(-steps // unit)
        self.snapshots = min(snaps, self.units)
        self.check_finite = check_finite

        system.validate(steps)
        self.params = dict(system.parameters())
        for name, arr in self.params.items():
            if getattr(arr, "grad", None) is None:
                raise ConfigError(f"parameter '{name}' of {type(system).__name__} has no gradient storage: "
                                  "allocate it with needs_grad=True, or the chain of gradients is cut silently")
        self.state_shapes = {k: tuple(v) for k, v in system.state_shapes.items()}
        self.control_shapes = {k: tuple(v) for k, v in system.control_shapes.items()}
        if not self.state_shapes:
            raise ConfigError(f"{type(system).__name__}.state_shapes is empty")
        self.limits = self._plausible_limits(system)
        self._setup_costs(system, steps, costs)

        nsnap = min(self.snapshots, self.units - 1)  # the last unit boundary is never stored
        storage.check_plan(self._storage_plan(unit, nsnap, steps), self._smaller_schedule_hint(steps, segment))
        self.x = Slots({k: storage.slots(s, unit + 1, True) for k, s in self.state_shapes.items()})
        self.snap = Slots({k: storage.slots(s, max(nsnap, 1), False) for k, s in self.state_shapes.items()})
        self.u = Slots({k: storage.slots(s, steps, True) for k, s in self.control_shapes.items()})
        self.loss = ti.ndarray(config().real, 1, needs_grad=True)
        self.state0 = {k: np.asarray(v, dtype=np.float64) for k, v in system.initial_state().items()}
        self._check_state(self.state0)

        self.stats = RolloutStats(
            steps=steps, schedule=str(schedule), segment=segment, unit_steps=unit, units=self.units,
            snapshot_capacity=nsnap, work_slots=unit + 1,
            state_bytes=sum(storage.nbytes(a, False) for a in self.x.values()) // (unit + 1),
            work_bytes=sum(storage.nbytes(a) for a in self.x.values()),
            snapshot_bytes=sum(storage.nbytes(a) for a in self.snap.values()) if nsnap else 0,
            control_bytes=sum(storage.nbytes(a) for a in self.u.values()))
        self._plan: Iterator | None = None
        self._slot_of: dict[int, int] = {}
        self._free: list[int] = []
        self._cur = 0
        self._ran = False
        self._final = None
        self._forward_bar = self._reverse_bar = progress_bar(0, "", False)  # silent outside the sweeps

    def _storage_plan(self, unit: int, nsnap: int, steps: int) -> list:
        """Every array the tape is about to allocate: (what, shape, with_grad)."""
        plan = []
        for k, s in self.state_shapes.items():
            plan.append((f"state field '{k}', {unit + 1} working slots", (unit + 1, *s), True))
            plan.append((f"state field '{k}', {max(nsnap, 1)} snapshot(s)", (max(nsnap, 1), *s), False))
        for k, s in self.control_shapes.items():
            plan.append((f"control '{k}', {steps} steps", (steps, *s), True))
        return plan

    def _smaller_schedule_hint(self, steps: int, segment: int) -> str:
        if self.control_shapes:
            controls = "; the controls (one row a step, with their gradient) are stored whatever the schedule"
        else:
            controls = ""
        return (f"store fewer states: Binomial(snapshots=s) or Periodic(every=k) instead of {self.schedule}, or let "
                f"Rollout.within_budget(system, {steps}, budget_bytes=...) pick s for the memory you give; or "
                f"shorten the rollout{controls}")

    def _plausible_limits(self, system) -> dict:
        limits = {}
        for name, value in dict(system.plausible_magnitudes()).items():
            if name not in self.state_shapes:
                raise ConfigError(f"{type(system).__name__}.plausible_magnitudes() names '{name}', which is not a "
                                  f"state field; fields are {list(self.state_shapes)}")
            try:
                value = float(value)
            except (TypeError, ValueError):
                value = float("nan")
            if not value > 0:
                raise ConfigError(f"{type(system).__name__}.plausible_magnitudes()['{name}'] must be a positive "
                                  f"number (math.inf to check finiteness only), got {value!r}")
            limits[name] = value
        return limits

    def _setup_costs(self, system, steps: int, costs):
        """Sort the extra costs into kernel costs and Python trajectory costs; resolve what the
        trajectory costs read: ``self._reads`` {step: fields}, sorted ``self._read_steps``."""
        if costs is None or isinstance(costs, (str, bytes)) or not hasattr(costs, "__iter__"):
            costs = [costs]
        self.costs = list(costs)
        for c in self.costs:
            if not (is_trajectory_cost(c) or _is_kernel_cost(c)):
                raise ConfigError(f"{c!r} is not a cost: give diffsim.costs terms (running/terminal launches, or "
                                  "a TrajectoryCost / NumpyCost / TorchCost written in Python)")
        self._kernel_costs = [c for c in self.costs if not is_trajectory_cost(c)]
        self._traj = []
        self._reads: dict[int, set] = {}
        for c in [*system.trajectory_costs(), *(c for c in self.costs if is_trajectory_cost(c))]:
            fields, when = c.reads(system, steps)
            fields = tuple(fields)
            for f in fields:
                if f not in self.state_shapes:
                    raise ConfigError(f"{c!r} reads state field '{f}', which {type(system).__name__} does not "
                                      f"have; fields are {list(self.state_shapes)}")
            when = np.asarray(when, dtype=np.int64).reshape(-1)
            if when.size == 0 or np.any(when < 0) or np.any(when > steps) or np.any(np.diff(when) <= 0):
                raise ConfigError(f"{c!r} reads steps {when.tolist()[:8]}...: they must be increasing, within "
                                  f"0..{steps} (the T + 1 states of this rollout), and at least one")
            self._traj.append((c, fields, when))
            for t in when.tolist():
                self._reads.setdefault(t, set()).update(fields)
        self._read_steps = np.array(sorted(self._reads), dtype=np.int64)
        self._captured: dict = {}
        self._seed_rows: dict = {}   # field -> {step: row of the seed ndarray}
        self._seed_arrays: dict = {}  # field -> ndarray (rows, *shape)
        self.cost_values: dict = {}

    @classmethod
    def within_budget(cls, system: System, steps: int, budget_bytes: int, segment: int | None = None,
                      max_sweeps: float = 30.0, **options) -> "Rollout":
        """A Binomial rollout whose snapshots, working slots and controls fit in ``budget_bytes``.

        A budget so tight that the reversal would cost more than ``max_sweeps`` forward sweeps
        is a ConfigError giving the estimate and the budget that would be reasonable."""
        if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, (int, float, np.integer, np.floating)):
            raise ConfigError(f"budget_bytes must be a number of bytes (e.g. 2 * 1024**3 for 2 GiB), got {budget_bytes!r}")
        item = 8 if config().precision == "f64" else 4
        state = sum(int(np.prod(s)) for s in system.state_shapes.values()) * item
        controls = sum(int(np.prod(s)) for s in system.control_shapes.values()) * item * 2 * steps
        seg = min(int(segment or (system.segment if system.advance is not None else 1)), steps)
        work = 2 * (seg + 1) * state + controls
        snaps = snapshots_for_budget(budget_bytes, state, -(-steps // seg), work_bytes=work, max_sweeps=max_sweeps)
        return cls(system, steps, Binomial(snaps), segment=seg, **options)

    # ------------------------------------------------------------------ inputs and outputs

    def _check_state(self, state: dict):
        for name in state:
            if name not in self.state_shapes:
                raise ConfigError(f"unknown state field '{name}'; fields are {list(self.state_shapes)}")
        for name, shape in self.state_shapes.items():
            if name not in state:
                raise ConfigError(f"initial state misses field '{name}' of shape {shape}")
            if np.shape(state[name]) != shape:
                raise ConfigError(f"initial state field '{name}' must have shape {shape}, "
                                  f"got {np.shape(state[name])}")
            value = np.asarray(state[name])
            if np.iscomplexobj(value):
                raise ConfigError(f"initial state field '{name}' is complex: give real numbers")
            if not np.all(np.isfinite(value)):
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
                raise ConfigError(f"initial state field '{name}'{list(bad)} is {value[bad]}: the initial "
                                  "state must be finite")
        self.system.check_state({k: np.asarray(v, dtype=np.float64) for k, v in state.items()})

    def set_state0(self, **fields):
        """Set fields of the initial state (numpy arrays of the per-step shapes)."""
        state = dict(self.state0)
        for name, value in fields.items():
            if np.iscomplexobj(value):
                raise ConfigError(f"initial state field '{name}' is complex: give real numbers")
        state.update({k: np.asarray(v, dtype=np.float64) for k, v in fields.items()})
        self._check_state(state)
        self.state0 = state

    def set_controls(self, **controls):
        """Set control sequences, each of shape (steps, *per-step shape)."""
        for name, value in controls.items():
            if name not in self.control_shapes:
                raise ConfigError(f"unknown control '{name}'; controls are {list(self.control_shapes)}")
            want = (self.steps, *self.control_shapes[name])
            if np.iscomplexobj(value):
                raise ConfigError(f"control '{name}' is complex: give real numbers")
            try:
                value = np.asarray(value, dtype=config().numpy_real)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"control '{name}' must be an array of real numbers: {err}") from None
            if value.shape != want:
                raise ConfigError(f"control '{name}' must have shape (steps, *shape) = {want}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
                raise ConfigError(f"control '{name}'{list(bad)} is {value[bad]}: controls must be finite")
            storage.from_numpy(value, self.u[name])

    def controls(self) -> dict:
        """The control sequences as numpy arrays (steps, *shape)."""
        return {k: a.to_numpy() for k, a in self.u.items()}

    def _read_slot(self, arrays: Slots, slot: int) -> dict:
        out = {}
        for name, arr in arrays.items():
            out[name] = storage.read_slot(arr, slot)
        return out

    def final_state(self) -> dict:
        """x_T after ``forward()`` (also after ``backward()``, which reuses the working slots)."""
        self._need_forward()
        if self._final is not None:
            return {k: v.copy() for k, v in self._final.items()}
        return self._read_slot(self.x, self.steps - (self.units - 1) * self.unit)

    def trajectory(self, name: str) -> np.ndarray:
        """All states of field ``name``, (steps + 1, *shape); only under StoreAll()."""
        self._need_forward()
        if self.units != 1:
            raise ConfigError(f"trajectory() needs every state stored: use StoreAll(), not {self.schedule}")
        return self.x[name].to_numpy().astype(np.float64)

    def _need_forward(self):
        if not self._ran:
            raise DiffsimError("call forward() first: the rollout has not been run")

    # ------------------------------------------------------------------ running units

    def _unit_bounds(self, u: int) -> tuple[int, int]:
        return u * self.unit, min((u + 1) * self.unit, self.steps)

    def _segments(self, t0: int, t1: int):
        for a in range(t0, t1, self.segment):
            yield a, min(a + self.segment, t1)

    def _step_launches(self, s0: int, a: int, b: int) -> list:
        """Launches advancing states a..b (slots s0 + t - a) with their own steps."""
        if self.fused:
            return list(self.system.advance(self.x, self.u, s0, a, b))
        out = []
        for t in range(a, b):
            out.extend(self.system.step(self.x, self.u, s0 + t - a, s0 + t - a + 1, t))
        return out

    def _running_cost(self, slot0: int, t0: int, t1: int) -> list:
        out = list(self.system.running_cost(self.x, self.u, slot0, t0, t1, self.loss))
        for c in self._kernel_costs:
            out.extend(c.running(self.system, self.x, self.u, slot0, t0, t1, self.loss))
        return out

    def _terminal_cost(self, slot: int) -> list:
        out = list(self.system.terminal_cost(self.x, slot, self.loss))
        for c in self._kernel_costs:
            out.extend(c.terminal(self.system, self.x, slot, self.loss))
        return out

    # ------------------------------------------------------------------ Python trajectory costs

    def _capture(self, s0: int, ta: int, tb: int):
        """Copy to NumPy the read states among steps ta..tb, which sit in slots s0 + t - ta."""
        if not self._reads:
            return
        lo, hi = np.searchsorted(self._read_steps, [ta, tb + 1])
        want = self._read_steps[lo:hi].tolist()
        if not want:
            return
        fields = set().union(*(self._reads[t] for t in want))
        for name in fields:
            ts = [t for t in want if name in self._reads[t]]
            if len(ts) > 4:  # one transfer of the whole field beats many one-slot copies
                block = self.x[name].to_numpy()
                for t in ts:
                    self._captured[name, t] = block[s0 + t - ta].astype(np.float64)
            else:
                for t in ts:
                    self._captured[name, t] = storage.read_slot(self.x[name], s0 + t - ta)

    def _evaluate_trajectory_costs(self) -> float:
        """Evaluate the Python costs on the captured states; keep their gradients as seeds."""
        total = 0.0
        seeds: dict = {}
        self.cost_values = {}
        for c, fields, when in self._traj:
            states = {f: np.stack([self._captured[f, t] for t in when.tolist()]) for f in fields}
            value, grads = c.evaluate(states, when.copy(), self.system)
            value = float(value)
            self.cost_values[c] = value
            if self.check_finite and not np.isfinite(value):
                raise DiffsimError(f"{c!r} returned {value} on a finite trajectory: check the cost function")
            total += value
            for f, g in (grads or {}).items():
                if f not in fields:
                    raise ConfigError(f"{c!r} returned a gradient for '{f}', which it does not read ({fields})")
                g = np.asarray(g, dtype=np.float64)
                if g.shape != states[f].shape:
                    raise ConfigError(f"{c!r}: gradient of '{f}' has shape {g.shape}, the states it read "
                                      f"{states[f].shape} (steps, *field shape)")
                for k, t in enumerate(when.tolist()):
                    key = (f, t)
                    seeds[key] = seeds[key] + g[k] if key in seeds else g[k].copy()
        self._captured = {}
        self._seed_rows, self._seed_arrays = {}, {}
        dtype = config().numpy_real
        for f in self.state_shapes:
            ts = sorted(t for (name, t) in seeds if name == f)
            if ts:
                self._seed_rows[f] = {t: k for k, t in enumerate(ts)}
                arr = ti.ndarray(config().real, (len(ts), *self.state_shapes[f]))
                storage.from_numpy(np.stack([seeds[f, t] for t in ts]).astype(dtype), arr)
                self._seed_arrays[f] = arr
        return total

    def _add_seeds(self, ta: int, tb: int, t0: int):
        """Add dC/dx_t of the Python costs, steps ta..tb, into the adjoint slots t - t0."""
        for f, rows in self._seed_rows.items():
            run = None  # (first step, first row, count): consecutive steps in consecutive rows
            for t in range(ta, tb + 1):
                r = rows.get(t)
                if r is not None and run is not None and run[1] + run[2] == r and run[0] + run[2] == t:
                    run = (run[0], run[1], run[2] + 1)
                    continue
                if run is not None:
                    storage.add_slots(self._seed_arrays[f], run[1], self.x[f].grad, run[0] - t0, run[2])
                run = None if r is None else (t, r, 1)
            if run is not None:
                storage.add_slots(self._seed_arrays[f], run[1], self.x[f].grad, run[0] - t0, run[2])

    # ------------------------------------------------------------------ running units (continued)

    def _fill_unit(self, u: int, with_cost: bool):
        """Run unit u from the state in slot 0, keeping its states in slots 0..L."""
        t0, t1 = self._unit_bounds(u)
        for a, b in self._segments(t0, t1):
            for lc in self._step_launches(a - t0, a, b):
                lc.forward()
            if with_cost:
                for lc in self._running_cost(a - t0, a, b):
                    lc.forward()
            self._forward_bar.update(b - a)
        if with_cost:  # the recording sweep: hand the states the Python costs read to NumPy
            self._capture(0, t0, t1 if t1 == self.steps else t1 - 1)
        self.stats.forward_steps += t1 - t0
        self._cur = 0
        return t1 - t0

    def _to_slot0(self):
        if self._cur != 0:
            for arr in self.x.values():
                storage.copy_slot(arr, self._cur, arr, 0)
            self._cur = 0

    def _advance_discard(self, a: int, c: int):
        """Move the current state from unit boundary a to c, keeping nothing in between."""
        t0, t1 = self._unit_bounds(a)[0], self._unit_bounds(c - 1)[1]
        if not self.fused:  # ping-pong between slots 0 and 1, no copies
            for t in range(t0, t1):
                nxt = 1 - self._cur
                for lc in self.system.step(self.x, self.u, self._cur, nxt, t):
                    lc.forward()
                self._cur = nxt
                self._forward_bar.update(1)
            self.stats.forward_steps += t1 - t0
            return
        for u in range(a, c):
            self._to_slot0()
            length = self._fill_unit(u, with_cost=False)
            self._cur = length

    def _sweep(self, a: int, c: int):
        """Recording sweep from unit boundary a to c: run the steps and their running costs,
        keep only the state at c. Launches the same segments as ``_fill_unit``."""
        if not self.fused and self.segment == 1:  # ping-pong, cost of x_t read from its slot
            for t in range(self._unit_bounds(a)[0], self._unit_bounds(c - 1)[1]):
                nxt = 1 - self._cur
                for lc in self.system.step(self.x, self.u, self._cur, nxt, t):
                    lc.forward()
                for lc in self._running_cost(self._cur, t, t + 1):
                    lc.forward()
                self._capture(self._cur, t, t)
                self._cur = nxt
                self.stats.forward_steps += 1
                self._forward_bar.update(1)
            return
        for u in range(a, c):
            self._to_slot0()
            self._cur = self._fill_unit(u, with_cost=True)

    def _snapshot(self, boundary: int):
        slot = self._free.pop() if self._free else len(self._slot_of)
        if slot >= self.stats.snapshot_capacity:
            raise DiffsimError(f"internal: revolve plan needs more than {self.snapshots} snapshots")
        self._slot_of[boundary] = slot
        for name, arr in self.x.items():
            storage.copy_slot(arr, self._cur, self.snap[name], slot)
        self.stats.snapshots_peak = max(self.stats.snapshots_peak, len(self._slot_of))

    def _restore(self, boundary: int):
        slot = self._slot_of[boundary]
        for name, arr in self.x.items():
            storage.copy_slot(self.snap[name], slot, arr, 0)
        self._cur = 0

    def _write_state0(self):
        for name, value in self.state0.items():
            storage.write_slot(value, self.x[name], 0)
        self._cur = 0

    # ------------------------------------------------------------------ divergence checks

    def _first_bad(self, s0: int, s1: int):
        """(slot, field) of the earliest state in working slots [s0, s1) that is NaN, Inf or
        beyond the field's plausible magnitude, or None. One launch per two fields (and one per
        field to name the field, when a state is bad)."""
        limits = [(arr, self.limits.get(name, math.inf)) for name, arr in self.x.items()]
        if storage.first_bad_slot_of(limits, s0, s1) is None:  # two fields a launch
            return None
        best = None  # a bad state (rare): which field, one launch per field
        for name, arr in self.x.items():
            slot = storage.first_bad_slot(arr, s0, s1, self.limits.get(name, math.inf))
            if slot is not None and (best is None or slot < best[0]):
                best = (slot, name)
        return best

    def _implausible_state0(self):
        """The first state field whose initial value, as stored, holds a NaN, an Inf or an entry
        beyond the field's plausible magnitude, or None: ``_first_bad`` of slot 0, in NumPy."""
        real = config().numpy_real
        for name in self.x:
            value = self.state0[name]
            if value.dtype != real:
                with np.errstate(over="ignore"):  # a float64 beyond float32's range is an Inf as stored
                    value = value.astype(real)
            if value.size == 0:
                continue
            largest = np.abs(value).max()  # NaN when any entry is NaN: fails both tests below
            if not (largest < math.inf and largest <= self.limits.get(name, math.inf)):
                return name
        return None

    def _raise_diverged(self, step: int, slot: int, name: str):
        value = self._read_slot(self.x, slot)[name]
        limit = self.limits.get(name, math.inf)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(value) | (np.abs(value) > limit)
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        self._plan, self._ran, self._captured = None, False, {}
        hint = self.system.divergence_hint()
        if np.isfinite(value[index]):
            hint = (f"|{value[index]:.4g}| is beyond {limit:.4g}, the plausible magnitude {type(self.system).__name__} "
                    f"declares for '{name}' (a huge but finite state is a divergence)"
                    + (f"; {hint}" if hint else ""))
        raise SimulationDiverged(step, name, index, float(value[index]), hint)

    def _diagnose(self, good: int, bad: int):
        """Replay units good..bad-1 from the snapshot at boundary good; raise at the first bad state."""
        self._restore(good)
        for u in range(good, bad):
            length = self._fill_unit(u, with_cost=False)
            hit = self._first_bad(0, length + 1)
            if hit is not None:
                self._raise_diverged(self._unit_bounds(u)[0] + hit[0], *hit)
            for arr in self.x.values():
                storage.copy_slot(arr, length, arr, 0)
        raise DiffsimError(f"internal: a diverged state at unit boundary {bad} was not found on replay")

    # ------------------------------------------------------------------ the two sweeps

    def forward(self, state0: dict | None = None, controls: dict | None = None, progress=False) -> float:
        """Run the rollout, keep what the schedule keeps, and return the loss L (a float).

        ``progress``: a bar over the ``steps`` steps (:mod:`diffsim.progress`: text on stderr, a
        widget in Jupyter); False (the default, as an optimizer calls it many times) shows none,
        True always, None when someone watches a run of at least 10,000 steps."""
        self._forward_bar = progress_bar(self.steps, "forward", progress)
        try:
            return self._run_forward(state0, controls)
        finally:
            self._forward_bar.close()
            self._forward_bar = progress_bar(0, "", False)

    def _run_forward(self, state0: dict | None, controls: dict | None) -> float:
        t_start = time.perf_counter()
        if state0:
            self.set_state0(**state0)
        if controls:
            self.set_controls(**controls)
        self.stats.forward_steps = self.stats.recomputed_steps = self.stats.snapshots_peak = 0
        self._plan, self._ran = None, False  # a forward that raises leaves nothing to backpropagate
        self._slot_of, self._free, self._final = {}, [], None
        self._captured, self._seed_rows, self._seed_arrays = {}, {}, {}
        self.loss[0] = 0.0  # Python-scope access: no launch
        self._write_state0()
        if self.check_finite:
            name = self._implausible_state0()
            if name is not None:
                self._raise_diverged(0, 0, name)
        plan = revolve(self.units, self.snapshots)
        good = 0
        for action in plan:
            if action.kind == "snapshot":
                if self.check_finite and action.a != good and self._first_bad(self._cur, self._cur + 1):
                    self._diagnose(good, action.a)
                self._snapshot(action.a)
                good = action.a
            elif action.kind == "advance":
                self._sweep(action.a, action.b)
            elif action.kind == "reverse":  # the last unit: run it and keep it for backward
                self._to_slot0()
                length = self._fill_unit(action.a, with_cost=True)
                if self.check_finite:
                    if action.a != good and self._first_bad(0, 1) is not None:
                        self._diagnose(good, action.a)
                    hit = self._first_bad(0, length + 1)
                    if hit is not None:
                        self._raise_diverged(self._unit_bounds(action.a)[0] + hit[0], *hit)
                for lc in self._terminal_cost(length):
                    lc.forward()
                break
        loss = float(self.loss[0])
        if self._traj:
            loss += self._evaluate_trajectory_costs()
        self._plan, self._ran = plan, True
        self.stats.forward_seconds = time.perf_counter() - t_start
        if self.check_finite and not np.isfinite(loss):
            raise DiffsimError(f"the loss is {loss} although every state is finite: check the cost "
                               f"kernels of {type(self.system).__name__} and the controls")
        return loss

    def _reverse_unit(self, u: int, carry: bool):
        """Adjoint of unit u, whose states fill slots 0..L; dL/dx_{end} is in grad slot 0 (carry)
        or already in grad slot L. Leaves dL/dx_{start} in grad slot 0."""
        t0, t1 = self._unit_bounds(u)
        length = t1 - t0
        if carry:  # else the caller has cleared the slots and seeded slot L
            for arr in self.x.values():
                storage.carry_slot(arr.grad, length)
        # A Python cost's seed dC/dx_t enters after everything later in time and the running cost
        # of x_t's own segment, and before the adjoint of the segment that computed x_t: the same
        # order of additions under every schedule.
        for a, b in reversed(list(self._segments(t0, t1))):
            for lc in reversed(self._running_cost(a - t0, a, b)):
                lc.adjoint()
            self._add_seeds(a + 1, b, t0)
            for lc in reversed(self._step_launches(a - t0, a, b)):
                lc.adjoint()
            self._reverse_bar.update(b - a)
        if t0 == 0:
            self._add_seeds(0, 0, 0)

    def backward(self, progress=False, only=None) -> Gradients:
        """Run the adjoint sweep; return dL/d(parameters, controls, initial state).

        ``progress``: a bar over the ``steps`` reversed steps, as in :meth:`forward`.
        ``only``: names of the parameters, controls and state fields whose gradients to copy to
        NumPy (None: all); the others are left out of the result, and the parameters' and
        controls' among them are not even cleared (an :class:`Objective` asks for what it fits:
        a copy costs ~0.1-0.2 ms an array, clearing a 16-body scene's 2,048 steps of force and
        torque controls ~0.3-0.5 ms)."""
        self._reverse_bar = progress_bar(self.steps, "backward", progress)
        try:
            return self._run_backward(None if only is None else set(only))
        finally:
            self._reverse_bar.close()
            self._reverse_bar = progress_bar(0, "", False)

    def _run_backward(self, only) -> Gradients:
        if self._plan is None:
            if self._ran:
                raise DiffsimError("backward() was already run for this forward(): call forward() again")
            raise DiffsimError("backward() before forward(): run forward() first")
        t_start = time.perf_counter()
        plan, self._plan = self._plan, None
        forward_steps = self.stats.forward_steps
        # Parameters and controls are leaves: their adjoints only receive, never feed another
        # adjoint, so those not asked for are neither cleared nor copied (their buffers then hold
        # sums nobody reads; a later backward that asks for them clears them first).
        def wanted(arrays):
            return {k: a for k, a in arrays.items() if only is None or k in only}

        for arr in wanted(self.params).values():
            storage.clear(arr.grad)
        for arr in wanted(self.u).values():
            storage.zero_slots(arr.grad, 0, self.steps)
        self.loss.grad[0] = 1.0
        last = self.units - 1
        length = self.steps - last * self.unit
        if self.units > 1:  # the recomputations below overwrite x_T's slot
            self._final = self._read_slot(self.x, length)
        storage.zero_slots_of([arr.grad for arr in self.x.values()], 0, length + 1)
        for lc in reversed(self._terminal_cost(length)):
            lc.adjoint()
        self._reverse_unit(last, carry=False)
        for action in plan:
            if action.kind == "restore":
                self._restore(action.a)
            elif action.kind == "advance":
                self._advance_discard(action.a, action.b)
            elif action.kind == "snapshot":
                self._snapshot(action.a)
            elif action.kind == "free":
                self._free.append(self._slot_of.pop(action.a))
            elif action.kind == "reverse":
                self._to_slot0()
                self._fill_unit(action.a, with_cost=False)
                self._reverse_unit(action.a, carry=True)
        self.stats.recomputed_steps = self.stats.forward_steps - forward_steps
        grads = Gradients(
            params={k: storage.to_numpy(a.grad) for k, a in wanted(self.params).items()},
            controls={k: storage.to_numpy(a.grad) for k, a in wanted(self.u).items()},
            state0=self._read_slot(Slots({k: a.grad for k, a in wanted(self.x).items()}), 0))
        self.stats.backward_seconds = time.perf_counter() - t_start
        self.grad = grads
        return grads


__all__ = [
    "Binomial",
    "Gradients",
    "Launch",
    "Rollout",
    "RolloutStats",
    "Slots",
    "StoreAll",
    "System",
    "LEAN_GRADIENT_COMPILE",
    "LeanAdjoint",
    "launch",
    "lean_launch",
]
