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
"""

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import numpy as np
import taichi as ti

from . import storage
from .checkpointing import Binomial, StoreAll, revolve, snapshots_for_budget
from .errors import ConfigError, DiffsimError, SimulationDiverged
from .runtime import config


class Launch(NamedTuple):
    """One kernel launch that the tape can run forward and replay in reverse (``kernel.grad``)."""

    kernel: Callable
    args: tuple

    def forward(self):
        self.kernel(*self.args)

    def adjoint(self):
        self.kernel.grad(*self.args)


def launch(kernel, *args) -> Launch:
    """``launch(k, a, b)`` is the launch ``k(a, b)``; systems return lists of these."""
    return Launch(kernel, args)


class _OneWay:
    """A callable that runs ``fn`` in one sweep only (forward, or adjoint via ``.grad``)."""

    def __init__(self, fn, forward: bool):
        self.fn, self.forward = fn, forward

    def __call__(self, *args):
        if self.forward:
            self.fn(*args)

    def grad(self, *args):
        if not self.forward:
            self.fn(*args)


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
        return self._arrays.items()

    def values(self):
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
      per step (TAICHI.md, addendum).
    - ``running_cost(x, u, slot0, t0, t1, loss)``: add sum_{t0<=t<t1} l(x_t, u_t, t) to
      ``loss[0]``, x_t in slot ``slot0 + t - t0``.
    - ``terminal_cost(x, slot, loss)``: add Phi(x_T) to ``loss[0]``.
    """

    state_shapes: ClassVar[dict] = {}
    control_shapes: ClassVar[dict] = {}
    segment: int = 1
    advance = None

    def parameters(self) -> dict:
        return {}

    def initial_state(self) -> dict:
        return {name: np.zeros(shape) for name, shape in self.state_shapes.items()}

    def step(self, x, u, src, dst, t) -> Sequence[Launch]:
        raise NotImplementedError(f"{type(self).__name__} defines neither step() nor advance()")

    def running_cost(self, x, u, slot0, t0, t1, loss) -> Sequence[Launch]:
        return ()

    def terminal_cost(self, x, slot, loss) -> Sequence[Launch]:
        return ()

    def validate(self, steps: int) -> None:
        """Raise ConfigError if this system cannot run ``steps`` steps (called by Rollout)."""

    def divergence_hint(self) -> str:
        """Advice appended to a :class:`SimulationDiverged` message (say which dt to reduce)."""
        return ""

    def plausible_magnitudes(self) -> dict:
        """{state field: largest plausible absolute value of any entry}, in the field's units.
        A state beyond it is huge but finite: the tape treats it as a divergence (step, field,
        index), like a NaN. Fields left out are checked for finiteness only."""
        return {}


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

    ``Rollout(system, steps, schedule=StoreAll(), segment=None)``; ``forward()`` returns the
    loss, ``backward()`` the :class:`Gradients`; ``stats`` counts steps, snapshots and bytes.
    Under ``Binomial(s)`` with segment 1, ``stats.recomputed_steps`` after a backward equals
    :func:`~diffsim.checkpointing.revolve_cost` (T, s), the revolve minimum, and
    ``stats.forward_steps`` is T more (each step is also run once while recording).
    """

    def __init__(self, system: System, steps: int, schedule=None, segment: int | None = None,
                 check_finite: bool = True):
        if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps <= 0:
            raise ConfigError(f"steps must be a positive integer, got {steps!r}")
        steps = int(steps)
        schedule = StoreAll() if schedule is None else schedule
        if not hasattr(schedule, "units"):
            raise ConfigError(f"schedule must be StoreAll(), Periodic(every=k) or Binomial(snapshots=s), "
                              f"got {schedule!r}")
        fused = system.advance is not None
        segment = int(segment if segment is not None else (system.segment if fused else 1))
        if segment < 1:
            raise ConfigError(f"segment must be >= 1 step, got {segment}")
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

        nsnap = min(self.snapshots, self.units - 1)  # the last unit boundary is never stored
        self.x = Slots({k: storage.slots(s, unit + 1, True) for k, s in self.state_shapes.items()})
        self.snap = Slots({k: storage.slots(s, max(nsnap, 1), False) for k, s in self.state_shapes.items()})
        self.u = Slots({k: storage.slots(s, steps, True) for k, s in self.control_shapes.items()})
        self._io = Slots({k: storage.slots(s, 1, False) for k, s in self.state_shapes.items()})
        self.loss = ti.ndarray(config().real, 1, needs_grad=True)
        self.state0 = {k: np.asarray(v, dtype=np.float64) for k, v in system.initial_state().items()}
        self._check_state(self.state0)

        self.stats = RolloutStats(
            steps=steps, schedule=str(schedule), segment=segment, unit_steps=unit, units=self.units,
            snapshot_capacity=nsnap, work_slots=unit + 1,
            state_bytes=sum(storage.nbytes(a, False) for a in self._io.values()),
            work_bytes=sum(storage.nbytes(a) for a in self.x.values()),
            snapshot_bytes=sum(storage.nbytes(a) for a in self.snap.values()) if nsnap else 0,
            control_bytes=sum(storage.nbytes(a) for a in self.u.values()))
        self._plan: Iterator | None = None
        self._slot_of: dict[int, int] = {}
        self._free: list[int] = []
        self._cur = 0
        self._ran = False
        self._final = None

    @classmethod
    def within_budget(cls, system: System, steps: int, budget_bytes: int, segment: int | None = None,
                      **options) -> "Rollout":
        """A Binomial rollout whose snapshots, working slots and controls fit in ``budget_bytes``."""
        item = 8 if config().precision == "f64" else 4
        state = sum(int(np.prod(s)) for s in system.state_shapes.values()) * item
        controls = sum(int(np.prod(s)) for s in system.control_shapes.values()) * item * 2 * steps
        seg = min(int(segment or (system.segment if system.advance is not None else 1)), steps)
        work = 2 * (seg + 1) * state + controls
        snaps = snapshots_for_budget(budget_bytes, state, -(-steps // seg), work_bytes=work)
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

    def set_state0(self, **fields):
        """Set fields of the initial state (numpy arrays of the per-step shapes)."""
        state = dict(self.state0)
        state.update({k: np.asarray(v, dtype=np.float64) for k, v in fields.items()})
        self._check_state(state)
        self.state0 = state

    def set_controls(self, **controls):
        """Set control sequences, each of shape (steps, *per-step shape)."""
        for name, value in controls.items():
            if name not in self.control_shapes:
                raise ConfigError(f"unknown control '{name}'; controls are {list(self.control_shapes)}")
            want = (self.steps, *self.control_shapes[name])
            value = np.asarray(value, dtype=config().numpy_real)
            if value.shape != want:
                raise ConfigError(f"control '{name}' must have shape (steps, *shape) = {want}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
                raise ConfigError(f"control '{name}'{list(bad)} is {value[bad]}: controls must be finite")
            self.u[name].from_numpy(value)

    def controls(self) -> dict:
        """The control sequences as numpy arrays (steps, *shape)."""
        return {k: a.to_numpy() for k, a in self.u.items()}

    def _read_slot(self, arrays: Slots, slot: int) -> dict:
        out = {}
        for name, arr in arrays.items():
            storage.copy_slot(arr, slot, self._io[name], 0)
            out[name] = self._io[name].to_numpy()[0].astype(np.float64)
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

    def _fill_unit(self, u: int, with_cost: bool):
        """Run unit u from the state in slot 0, keeping its states in slots 0..L."""
        t0, t1 = self._unit_bounds(u)
        for a, b in self._segments(t0, t1):
            for lc in self._step_launches(a - t0, a, b):
                lc.forward()
            if with_cost:
                for lc in self.system.running_cost(self.x, self.u, a - t0, a, b, self.loss):
                    lc.forward()
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
                for lc in self.system.running_cost(self.x, self.u, self._cur, t, t + 1, self.loss):
                    lc.forward()
                self._cur = nxt
                self.stats.forward_steps += 1
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
            self._io[name].from_numpy(value.astype(config().numpy_real)[None])
            storage.copy_slot(self._io[name], 0, self.x[name], 0)
        self._cur = 0

    # ------------------------------------------------------------------ divergence checks

    def _first_bad(self, s0: int, s1: int):
        """(slot, field) of the earliest non-finite state in working slots [s0, s1), or None."""
        best = None
        for name, arr in self.x.items():
            slot = storage.first_nonfinite_slot(arr, s0, s1)
            if slot is not None and (best is None or slot < best[0]):
                best = (slot, name)
        return best

    def _raise_diverged(self, step: int, slot: int, name: str):
        value = self._read_slot(self.x, slot)[name]
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
        self._plan, self._ran = None, False
        raise SimulationDiverged(step, name, index, float(value[index]), self.system.divergence_hint())

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
        raise DiffsimError(f"internal: a non-finite state at unit boundary {bad} was not found on replay")

    # ------------------------------------------------------------------ the two sweeps

    def forward(self, state0: dict | None = None, controls: dict | None = None) -> float:
        """Run the rollout, keep what the schedule keeps, and return the loss L (a float)."""
        t_start = time.perf_counter()
        if state0:
            self.set_state0(**state0)
        if controls:
            self.set_controls(**controls)
        self.stats.forward_steps = self.stats.recomputed_steps = self.stats.snapshots_peak = 0
        self._slot_of, self._free, self._final = {}, [], None
        self.loss.from_numpy(np.zeros(1, dtype=config().numpy_real))
        self._write_state0()
        if self.check_finite:
            hit = self._first_bad(0, 1)
            if hit is not None:
                self._raise_diverged(0, *hit)
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
                for lc in self.system.terminal_cost(self.x, length, self.loss):
                    lc.forward()
                break
        self._plan, self._ran = plan, True
        loss = float(self.loss.to_numpy()[0])
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
        for arr in self.x.values():
            if carry:
                storage.copy_slot(arr.grad, 0, arr.grad, length)
            storage.zero_slots(arr.grad, 0, length)
        for a, b in reversed(list(self._segments(t0, t1))):
            for lc in reversed(list(self.system.running_cost(self.x, self.u, a - t0, a, b, self.loss))):
                lc.adjoint()
            for lc in reversed(self._step_launches(a - t0, a, b)):
                lc.adjoint()

    def backward(self) -> Gradients:
        """Run the adjoint sweep; return dL/d(parameters, controls, initial state)."""
        if self._plan is None:
            if self._ran:
                raise DiffsimError("backward() was already run for this forward(): call forward() again")
            raise DiffsimError("backward() before forward(): run forward() first")
        t_start = time.perf_counter()
        plan, self._plan = self._plan, None
        forward_steps = self.stats.forward_steps
        for arr in self.params.values():
            arr.grad.fill(0)
        for arr in self.u.values():
            storage.zero_slots(arr.grad, 0, self.steps)
        self.loss.grad.from_numpy(np.ones(1, dtype=config().numpy_real))
        last = self.units - 1
        length = self.steps - last * self.unit
        if self.units > 1:  # the recomputations below overwrite x_T's slot
            self._final = self._read_slot(self.x, length)
        for arr in self.x.values():
            storage.zero_slots(arr.grad, 0, length + 1)
        for lc in reversed(list(self.system.terminal_cost(self.x, length, self.loss))):
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
            params={k: a.grad.to_numpy().astype(np.float64) for k, a in self.params.items()},
            controls={k: a.grad.to_numpy().astype(np.float64) for k, a in self.u.items()},
            state0={k: v for k, v in self._read_slot(Slots({k: a.grad for k, a in self.x.items()}), 0).items()})
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
    "launch",
]
