"""``RigidSystem``: rigid bodies with contact as a System for the checkpointed tape.

State (per time slot), in SI units:
- 3D: ``x`` (n, 3) m, ``q`` (n, 4) unit quaternions (w, x, y, z), ``v`` (n, 3) m/s,
  ``omega`` (n, 3) rad/s in the world frame;
- 2D: ``x`` (n, 2) m, ``theta`` (n,) rad, ``v`` (n, 2) m/s, ``omega`` (n,) rad/s.

Parameters (fitted through the tape), one entry per body: ``mass`` (kg), ``restitution`` (in
[0, 1]), ``friction`` (Coulomb coefficient), ``linear_damping`` and ``angular_damping`` (1/s),
``contact_stiffness`` (N/m) and ``contact_damping`` (N s/m) of an explicit contact law (0: none);
one entry per plane (when the scene has planes): ``plane_restitution`` and ``plane_friction``.

Materials of a contact (body with body, or body with plane): friction coefficient mu = the mean
of the two (both models); restitution e = the mean of the two (impulse model), or, in the
penalty model, the mean of the two continuous-time damping ratios zeta(e) (so e is exact for
two equal materials); an explicit law (k, c) of a body replaces stiffness and restitution in
the penalty model: alone against a plane or a body without one, in series (k_a k_b / (k_a + k_b),
likewise c) between two bodies that both give one.
Controls (per step): ``force`` (n, dim) N and ``torque`` ((n, 3) or (n,)) N m, applied at the
centre of mass. Initial velocities are fitted through the initial state (``Parameter("v",
kind="state0")``).

Contact models (``contact=``):
- ``"penalty"``: the shared contact law averaged over the time step,
  :func:`diffsim.contact.stepped_contact_normal_force` (C^1; first touch and release weighted
  by the part of the step spent in contact, so a bounce does not depend on when in a step it
  begins or ends) of stiffness ``stiffness`` (N/m) and onset depth ``onset_depth`` (m), with
  smoothed Coulomb friction (friction coefficient of a pair: the mean of the two). Each body's
  restitution e sets a continuous-time damping ratio zeta(e)
  (:func:`diffsim.contact.damping_ratio_from_restitution`; a pair takes the mean of its two
  ratios, so e is the restitution of a body against a body or plane of the same e), which each
  contact turns into the damping that gives the *time-stepped* contact that restitution
  (:func:`diffsim.contact.discrete_damping_ratio`, calibrated for omega dt = sqrt(k/m_eff) dt
  <= 0.4), and a plane contact carries the gravity load that presses the body onto it, so that
  the spring-damper resolves the impact alone. Measured at the defaults (dt 1e-3 s, 1e4 N/m,
  1 kg balls, benchmarks/penalty_bounce.py): the restitution is met within 0.03 % for e in
  0.2..1 at impact speeds 0.5..6 m/s without gravity and for balls dropped under gravity
  leaving at >= 0.4 m/s (0.4 % low leaving at 0.25 m/s), with <= 0.04 % of spread over the
  phase of first touch; the third apex of a ball is smooth in e (second differences 1.5 % of
  the trend). Shape pairs: all of
  :mod:`diffsim.collision.narrowphase`; box-box contact is a manifold of up to 8 (2D: 4)
  points from a separating-axis test over the face normals (no edge-edge axes) with the
  incident corners clamped onto the reference face, box-capsule the capsule's end spheres
  and the box corners inside the capsule (``pass_through=`` lets a scene turn either off).
- ``"impulse"``: impulses with restitution and time-of-impact correction, and Coulomb friction
  at the contact point (:func:`diffsim.collision.impulse.coulomb_friction_impulse`: the
  impulse that stops the slip when it lies in the friction cone, else mu j_n against the slip;
  tangential restitution zero), which spins the bodies (:mod:`diffsim.collision.impulse`).
  Scenes of spheres (discs) and planes alone: closed-form impulses per contact, as follows; scenes
  with boxes or capsules: contact manifolds (the penalty model's narrow phase) solved by
  ``iterations`` projected Jacobi sweeps with warm starting (:mod:`.manifold`; restitution for
  new contacts, Coulomb friction in the disk, Baumgarte recovery), the accumulated impulses
  carried from step to step in the extra state field ``contact_impulse`` (items, 4). For
  spheres alone: the impact speed, the
  sphere-sphere normal and the velocity-dependent forces (rolling resistance, damping) are
  taken at the moment of impact, so the state after a step is continuous when an impact
  moves from one step to the next, and the restitution (apex ratio under gravity) is exact.
  Sphere-sphere contact is swept (spheres that meet within a step collide, at any speed), and
  the per-step broad phase sweeps too (:meth:`GridBroadPhase.run_swept`).

Checks (:mod:`.checks`), at build and at the first step of every forward sweep: coincident
centres and (penalty) bodies fast enough to pass through another are ConfigErrors naming the
bodies and the fix; so is a mass <= 0 written by an optimizer (fit it with a log transform).

Stepping: either one launch per phase and step (``fused=False``: a grid broad phase per step,
for large scenes) or a fused ``advance`` running a segment of steps in one launch
(``fused=True``, the default up to 64 bodies). The fused path tests every pair of bodies
(``skin=None``) or, with ``skin`` (m), the pairs the broad phase finds at the start of each
segment within ``skin`` of touching; it then checks that no body moved more than skin/2 in
the segment and raises otherwise, since a pair could have been missed.
"""

from __future__ import annotations

import numpy as np
import taichi as ti

from ..collision.broadphase import GridBroadPhase, all_pairs
from ..compat import compile_options, launch_kernel
from ..errors import ConfigError, DiffsimError
from ..runtime import config
from ..tape import LEAN_GRADIENT_COMPILE, Launch, LeanAdjoint, System, adjoint_only, forward_only, launch, lean_launch
from . import checks
from . import kernels as K
from . import manifold as M
from .model import RigidModel
from .shapes import BOX, CAPSULE, SHAPE_NAMES, SPHERE

BODY_PARAMETERS = ("mass", "restitution", "friction", "linear_damping", "angular_damping", "contact_stiffness",
                   "contact_damping")
PLANE_PARAMETERS = ("plane_restitution", "plane_friction")
PARAMETERS = BODY_PARAMETERS + PLANE_PARAMETERS


class _Workspace:
    """Per-slot workspace of one rollout size for one contact model: an ndarray with adjoints per
    entry of its layout (:data:`kernels.PENALTY_WORKSPACE` or :data:`kernels.IMPULSE_WORKSPACE`,
    name -> per-body shape), e.g. ``force`` (slots, n, 3) N, the pair lists (slots,
    capacity, 2) with their counts (slots,), and each listed pair's contact feature (slots,
    capacity) int (:func:`kernels.choose_pair_feature`; capacity: the longest pair list), and
    for the impulse model's fused steps the items of each step that acted (``acting_items``,
    ``items`` per slot, and ``acting_count`` per slot; :func:`kernels.impulse_advance`)."""

    def __init__(self, layout: dict, slots, n, capacity, items: int = 0):
        real = config().real
        self.arrays = {name: ti.ndarray(real, (slots, n, *shape), needs_grad=True) for name, shape in layout.items()}
        for a in self.arrays.values():
            a.fill(0.0)
            a.grad.fill(0.0)
        self.__dict__.update(self.arrays)
        self.pairs = ti.ndarray(ti.i32, (slots, capacity, 2))
        self.count = ti.ndarray(ti.i32, slots)
        self.count.fill(0)
        self.pair_feature = ti.ndarray(ti.i32, (slots, capacity))
        self.pair_feature.fill(0)
        if slots * items >= 2**31:  # Taichi 1.7.4 counts ndarray entries in int32
            raise ConfigError(f"the fused impulse step lists up to {items} contact items a step, for {slots} stored "
                              f"steps: {slots * items} entries, more than an ndarray holds (2^31); store fewer steps "
                              "at once (a Binomial or Periodic schedule, or fewer steps) or use fused=False")
        self.acting_items = ti.ndarray(ti.i32, max(1, slots * items))
        self.acting_count = ti.ndarray(ti.i32, slots)
        self.acting_count.fill(0)


class _ManifoldWorkspace:
    """Per-slot workspace of the impulse model's manifold solver (:mod:`.manifold`): ndarrays
    with adjoints, (slots, n, ...) per body and (slots, items, ...) per contact point, the
    sweeps' rows counted iterations + 1."""

    def __init__(self, slots, n, items, iterations, pair_capacity):
        real = config().real
        self.pair_feature = ti.ndarray(ti.i32, (slots, max(1, pair_capacity)))  # kernels.choose_pair_feature
        self.pair_feature.fill(0)

        def shape(rows, per):
            return (slots, rows, *(iterations + 1 if e == "sweeps" else e for e in per))
        self.arrays = {name: ti.ndarray(real, shape(n, per), needs_grad=True)
                       for name, per in M.MANIFOLD_BODY_WORKSPACE.items()}
        self.arrays.update({name: ti.ndarray(real, shape(items, per), needs_grad=True)
                            for name, per in M.MANIFOLD_ITEM_WORKSPACE.items()})
        # no fill(0.0): Taichi 1.7.4 allocates ndarrays and their adjoints zeroed, and each fill
        # compiled a kernel per number of dimensions (6 here, 0.3 CPU s of a cold start); every
        # step writes what it reads, and the adjoint sweep zeroes the adjoints per step
        self.__dict__.update(self.arrays)


PENALTY_GRADIENT_COMPILE = {**LEAN_GRADIENT_COMPILE, "advanced_optimization": False}
"""Taichi compile options of the penalty model's gradient kernels: the tape's lean options
(:data:`diffsim.tape.LEAN_GRADIENT_COMPILE`) and none of Taichi's own IR optimisation loop
(``advanced_optimization=False``: no whole-kernel common-subexpression elimination, which
took ~4 of the ~8.7 s of the bowling gradient's compile with the lean options alone; LLVM
still optimises the code). Measured, cold cache, CPU s of a scene's first forward+gradient
(lean -> these options; load 2.8-3.4): bowling 11.7 -> 6.1, stacking 11.6 -> 9.2,
bounce_tuning 6.0 -> 3.7; warm forward+gradient 64.9 -> 70.6 ms (bowling), 22.5 -> 22.4
(stacking), 32 -> 28 (bounce_tuning); gradients equal to 4e-13 relative (bowling), 2e-14
(stacking). The impulse kernels keep Taichi's defaults: the billiards break's gradient ran
1.5x slower under these options (15.4 -> 23.0 ms CPU); the manifold solver's take them but
for one kernel, whose gradient came out wrong under them (:data:`MANIFOLD_GRADIENT_COMPILE`)."""


MANIFOLD_GRADIENT_COMPILE = PENALTY_GRADIENT_COMPILE
"""Taichi compile options of the manifold solver's gradients (:mod:`.manifold`) and of its
forward-only pair features: the penalty model's (:data:`PENALTY_GRADIENT_COMPILE`). A user's 3D
scene (two boxes and a floor, 200 steps; ``benchmarks/rigid.py --only cold``, ``box3d_impulse``):
the first forward+gradient compiled in 10.0-10.2 CPU s cold against 16.4-18.2 (the pair
contacts' gradient 2.5-3.1 s against 6.2-7.5), its gradient within 5e-15 of Taichi's defaults,
which agree with central differences. The point setup (:func:`manifold.manifold_point_setup`)
kept Taichi's defaults while its dot products were ``ti.Vector.dot`` (nested calls summing into
a local): compiled with these options its gradient came out wrong (the same scene: |gradient| 1e4
against 0.016). With :func:`~diffsim.collision.vector.dot3` its adjoint equals the
default-compiled one to 1e-16 (relative) at steps 60 and 100 of that scene and the scene's
gradient to 8e-13, and its gradient compiles in 0.5 CPU s against 0.85. The prediction's
gradient came out wrong with ``cfg_optimization=False`` alone (0.98; its trigger: the
gyroscopic update :func:`kernels.angular_update`), but not with these options. Taichi's bugs
here are silent: ``tests/rigid/test_rigid_user_box_drop.py`` checks this scene against central
differences."""


def _manifold_launch(kernel, *args) -> Launch:
    """``launch(kernel, *args)`` with the forward and the gradient compiled with
    :data:`MANIFOLD_GRADIENT_COMPILE`: box3d's seven forward kernels 1.7 -> 1.4 CPU s cold, the
    loss within 2e-14 relative of the forward compiled with Taichi's defaults."""
    return lean_launch(kernel, *args, options=MANIFOLD_GRADIENT_COMPILE, forward_too=True)


def _pair_features(*args):
    """:func:`manifold.manifold_pair_features` (forward only, integers out) compiled with
    :data:`MANIFOLD_GRADIENT_COMPILE` (box3d: 1.0-1.4 CPU s cold against 1.8-2.1 with the
    defaults, before the edge axes' separations were shortened)."""
    with compile_options(**MANIFOLD_GRADIENT_COMPILE):
        launch_kernel(M.manifold_pair_features, *args)


def _penalty_launch(kernel, *args) -> Launch:
    """``launch(kernel, *args)`` with the gradient compiled with :data:`PENALTY_GRADIENT_COMPILE`."""
    return lean_launch(kernel, *args, options=PENALTY_GRADIENT_COMPILE)


class _FusedAdvance(LeanAdjoint):
    """A fused segment kernel whose compile-time flag after ``(dim, mask)`` picks its variant: the
    forward launches it with True, the gradient is the kernel compiled with False.

    - ``kernels.penalty_advance`` (flag ``choose``): the forward stores the pairs' contact
      features, the gradient reads them, so it holds no separating-axis test; compiled with
      :data:`PENALTY_GRADIENT_COMPILE`, as the penalty model's per-step kernels are.
    - ``kernels.impulse_advance`` (flag ``record``): the forward lists the items that acted, the
      gradient runs the listed items alone; Taichi's defaults (``lean=False``): the break's
      gradient ran 2.4x slower compiled lean, and the manifold solver's gradients came out wrong
      and different from run to run (3D boxes on a floor: finite differences 5.9e-05, lean
      adjoint 0.0147 or -0.0038)."""

    def __call__(self, dim, mask, *args):
        super().__call__(dim, mask, True, *args)

    def grad(self, dim, mask, *args):
        super().grad(dim, mask, False, *args)


class _DampingRatios:
    """zeta(e) of a system's bodies and planes as one tape launch: ``kernels.damping_ratios``
    forward, ``kernels.damping_ratios_adjoint`` in the adjoint sweep."""

    def __init__(self, system):
        self.system = system

    def __call__(self):
        s, p = self.system, self.system._params
        K.damping_ratios(s.n <= 64, p["restitution"], p["plane_restitution"], s.nplanes, s._damping_ratio,
                         s._plane_damping_ratio, s._damping_slope, s._plane_damping_slope)

    def grad(self):
        s, p = self.system, self.system._params
        K.damping_ratios_adjoint(s.n <= 64, s._damping_slope, s._plane_damping_slope, s.nplanes,
                                 s._damping_ratio.grad, s._plane_damping_ratio.grad, p["restitution"].grad,
                                 p["plane_restitution"].grad)


class RigidSystem(System):
    """Rigid bodies of a :class:`RigidModel` with contact (see the module docstring).

    model: the scene; dt: time step (s); contact: "penalty" or "impulse"; stiffness: contact
    stiffness k_n (N/m, penalty); onset_depth: depth delta (m) over which the contact law's
    force and slope start from zero (penalty; the damping's own fade-in is two steps long);
    friction_smoothing: slip speed v_eps (m/s) below which
    Coulomb friction is smoothed; gravity: (dim,) m/s^2 (default -9.81 along the last axis);
    rolling_resistance: deceleration mu_r g (m/s^2) of a 2D top-down table (billiards), 0 off;
    toi_min_speed: v_min (m/s) of the TOI correction; fused: None (auto: n <= 64), True or False;
    segment: steps per fused launch; skin: broad-phase skin (m) of the fused path, None = all
    pairs; max_pairs: pair-list capacity of the per-step broad phase; costs: cost terms
    (:mod:`diffsim.rigid.costs`) whose sum is the loss; pass_through: shape pairs ("box-box",
    "box-capsule") whose contact the scene turns off (bodies that never meet: their multi-point
    narrow phase then costs nothing), listed in ``system.unsupported``; iterations: solver sweeps
    per step of the impulse model with boxes or capsules (:mod:`.manifold`; 32 by default: a
    10-box tower with off-centre loads rests within 1 mm over 2 s with 32, and creeps by 4-9 mm
    with 16).

    State (per step): ``x`` (n, dim) m; ``q`` (n, 4) unit quaternions (w, x, y, z) in 3D or
    ``theta`` (n,) rad in 2D; ``v`` (n, dim) m/s; ``omega`` (n, 3) or (n,) rad/s, world frame;
    impulse model with boxes or capsules: ``contact_impulse`` (items, 4) N s, each contact
    point's accumulated (normal, tangential x, y, z) impulse of the last step (zeros at start).
    Controls (per step, zero by default; ``Rollout.set_controls`` or ``simulate(controls=)``):
    ``force`` (n, dim) N at each body's centre and ``torque`` (n, 3) N m in 3D, (n,) in 2D.
    Parameters (``Parameter(name)``): see :data:`PARAMETERS`.
    """

    def __init__(self, model: RigidModel, dt: float = 1e-3, contact: str = "penalty", stiffness: float = 1e4,
                 onset_depth: float = 1e-5, friction_smoothing: float = 0.01, gravity=None,
                 rolling_resistance: float = 0.0,
                 toi_min_speed: float = 1e-3, fused: bool | None = None, segment: int = 32, skin: float | None = None,
                 max_pairs: int | None = None, costs=(), pass_through: tuple = (), iterations: int = 32):
        if not isinstance(model, RigidModel):
            raise ConfigError(f"RigidSystem needs a RigidModel (ModelBuilder(...).finalize()), got {type(model).__name__}")
        if contact not in ("penalty", "impulse"):
            raise ConfigError(f"contact must be 'penalty' or 'impulse', got {contact!r}")
        for label, value in (("dt", dt), ("stiffness", stiffness), ("onset_depth", onset_depth),
                             ("friction_smoothing", friction_smoothing), ("toi_min_speed", toi_min_speed)):
            if not (np.isfinite(value) and value > 0):
                raise ConfigError(f"{label} must be positive and finite, got {value}")
        if not rolling_resistance >= 0:
            raise ConfigError(f"rolling_resistance must be >= 0 m/s^2, got {rolling_resistance}")
        self.model, self.dim, self.n = model, model.dim, model.n
        self.dt, self.contact, self.stiffness = float(dt), contact, float(stiffness)
        self.onset_depth = float(onset_depth)
        d, n = self.dim, self.n
        # boxes and capsules in the impulse model: contact manifolds solved by sweeps (.manifold)
        self.manifold = contact == "impulse" and bool(np.any(model.shape != SPHERE))
        if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
            raise ConfigError(f"iterations must be a whole number >= 1 (solver sweeps per step), got {iterations!r}")
        self.iterations = int(iterations)
        if self.manifold and skin is not None:
            raise ConfigError(f"skin={skin}: the impulse model's box and capsule contacts carry their impulses from "
                              "step to step per pair of bodies, so they test every pair: leave skin=None, or use "
                              "contact='penalty'")
        if contact == "impulse":
            pass
        else:
            m_min = lightest_contact_mass(model.mass)
            w_dt = self.dt * np.sqrt(self.stiffness / m_min)
            if w_dt > 1.0:
                raise ConfigError(f"dt={dt} s is too long for contact stiffness {stiffness} N/m and the lightest "
                                  f"contact (effective mass {m_min:.3g} kg): dt*sqrt(k/m) = {w_dt:.2f} > 1 diverges; "
                                  f"take dt <= {0.2 / np.sqrt(self.stiffness / m_min):.2e} s or a softer stiffness")
        boxes = int(np.sum(model.shape == BOX))
        present = (["box-box"] if boxes > 1 else []) + \
            (["box-capsule"] if boxes and np.any(model.shape == CAPSULE) else [])
        for pair in pass_through:
            if pair not in ("box-box", "box-capsule"):
                raise ConfigError(f"pass_through takes 'box-box' and 'box-capsule', got {pair!r}")
        self.unsupported = [pair for pair in present if pair in tuple(pass_through)]  # pairs left without contact
        checks.coincident_pairs_np(model.x0, model.names)
        g = np.asarray(gravity if gravity is not None else ([0.0, -9.81] if d == 2 else [0.0, 0.0, -9.81]), float)
        if g.shape != (d,):
            raise ConfigError(f"gravity must have {d} components, got {g.shape}")
        self.gravity = g
        self.mask = sum(1 << int(s) for s in model.shapes_present())
        counts = {int(s): int(np.sum(model.shape == s)) for s in model.shapes_present()}
        for (sa, sb), flag in K.PAIR_KINDS.items():  # the kinds of pairs the scene has, compiled alone
            has = counts.get(sa, 0) > 1 if sa == sb else counts.get(sa, 0) > 0 and counts.get(sb, 0) > 0
            name = f"{SHAPE_NAMES[sa]}-{SHAPE_NAMES[sb]}"
            if has and name not in self.unsupported:
                self.mask |= flag
        if rolling_resistance > 0:
            self.mask |= K.M_ROLLING
        self.orientation = model.orientation_name
        self.state_shapes = {"x": (n, d), self.orientation: (n, 4) if d == 3 else (n,),
                             "v": (n, d), "omega": (n, 3) if d == 3 else (n,)}
        self.control_shapes = {"force": (n, d), "torque": (n, 3) if d == 3 else (n,)}
        if self.manifold:  # accumulated impulses of every contact point, the next step's warm start
            self.contact_items = M.item_count(self.mask, d, max(1, n * (n - 1) // 2), n, model.n_planes)
            self._pair_items = max(1, n * (n - 1) // 2) * K.pair_points(self.mask, d)
            self.state_shapes["contact_impulse"] = (self.contact_items, 4)
        self.fused = (n <= 64) if fused is None else bool(fused)
        if not self.fused:
            self.advance = None
        if segment < 1:
            raise ConfigError(f"segment must be >= 1 step, got {segment}")
        self.segment = int(segment)
        if skin is not None and not skin > 0:
            raise ConfigError(f"skin must be a positive distance in m (or None for all pairs), got {skin}")
        self.skin = None if skin is None else float(skin)
        self.costs = list(costs)

        real, npr = config().real, config().numpy_real
        if contact == "impulse" and np.any(model.contact_stiffness > 0):
            i = int(np.argmax(model.contact_stiffness > 0))
            raise ConfigError(f"body {i} ({model.names[i]}) gives an explicit contact law (contact_stiffness), which "
                              "the impulse model has no use for: use contact='penalty' or drop contact_stiffness")
        self.nplanes = model.n_planes
        self._params = {name: ti.ndarray(real, n, needs_grad=True) for name in BODY_PARAMETERS}
        # zeta(e) of each body's and plane's restitution (penalty model), computed from the
        # parameters before the steps that read it
        self._damping_ratio = ti.ndarray(real, n, needs_grad=True)
        self._plane_damping_ratio = ti.ndarray(real, max(1, self.nplanes), needs_grad=True)
        for a in (self._damping_ratio, self._plane_damping_ratio):
            a.fill(0.0)
            a.grad.fill(0.0)
        self._damping_slope = ti.ndarray(real, n)  # dzeta/de, for the hand-written adjoint
        self._plane_damping_slope = ti.ndarray(real, max(1, self.nplanes))
        self._params.update({name: ti.ndarray(real, max(1, self.nplanes), needs_grad=True)
                             for name in PLANE_PARAMETERS})
        self._params["plane_restitution"].fill(0.0)
        self._params["plane_friction"].fill(0.0)
        self.set_parameters(**{name: getattr(model, name) for name in PARAMETERS if name in BODY_PARAMETERS
                               or self.nplanes})
        self.shape = ti.ndarray(ti.i32, n)
        self.shape.from_numpy(model.shape.astype(np.int32))
        self.geom = ti.ndarray(real, (n, 3))
        self.geom.from_numpy(model.geometry.astype(npr))
        self.iu = ti.ndarray(real, (n, 3))
        self.iu.from_numpy(model.unit_inertia.astype(npr))
        self.planes = ti.ndarray(real, (max(1, self.nplanes), 6))  # normal, offset (materials: parameters)
        pl = np.zeros((max(1, self.nplanes), 6))
        pl[:self.nplanes] = model.planes
        self.planes.from_numpy(pl.astype(npr))
        cs = np.zeros(K.N_CONSTS)
        cs[K.DT], cs[K.KN], cs[K.VEPS], cs[K.VMIN], cs[K.ROLL], cs[K.DELTA] = (
            self.dt, self.stiffness, friction_smoothing, toi_min_speed, rolling_resistance, self.onset_depth)
        cs[K.GX:K.GX + d] = g
        # the manifold solver's penetration recovery (Baumgarte's beta, slop in m) and the
        # approach speed below which it does not bounce (m/s: twice what gravity adds in a step)
        cs[K.BAUMGARTE], cs[K.SLOP], cs[K.BOUNCE] = 0.01, 1e-5, 2.0 * float(np.linalg.norm(g)) * self.dt + 1e-3
        cs[K.SPECULATIVE] = 1e-3  # m: points this close (at the predicted poses) join the solve
        self.consts = ti.ndarray(real, K.N_CONSTS)
        self.consts.from_numpy(cs.astype(npr))
        self.broadphase = GridBroadPhase(model.bounding_radius, d, margin=0.0,
                                         capacity=max_pairs if max_pairs is not None else max(64, 8 * n))
        if (self.fused or self.manifold) and self.skin is None:
            ap = all_pairs(n)
            self._static_pairs = ti.ndarray(ti.i32, (1, max(1, len(ap)), 2))
            buf = np.zeros((1, max(1, len(ap)), 2), np.int32)
            buf[0, :len(ap)] = ap
            self._static_pairs.from_numpy(buf)
            self._static_count = ti.ndarray(ti.i32, 1)
            self._static_count.from_numpy(np.array([len(ap)], np.int32))
        geom = model.geometry
        half_thickness = np.where(model.shape == BOX, np.min(np.where(geom > 0, geom, np.inf), axis=1), geom[:, 0])
        self._thickness = ti.ndarray(real, n)
        self._thickness.from_numpy(half_thickness.astype(npr))
        # contacts that are not swept are checked for bodies passing through in a step (checks.py)
        self._checks_travel = contact == "penalty" or self.manifold
        self._reach = ti.ndarray(real, n)
        self._reach.from_numpy(checks.travel_reach(half_thickness).astype(npr))
        if contact == "penalty":
            speed = np.linalg.norm(model.v0, axis=1)
            ratio = speed * np.sqrt(model.mass / self.stiffness) / half_thickness
            if np.max(ratio) > 1.0:
                i = int(np.argmax(ratio))
                raise checks.tunnelling_error(i, model.names, speed[i], model.mass[i], half_thickness[i],
                                              self.stiffness, self.dt)
        self._workspace: dict[int, _Workspace] = {}

    # ------------------------------------------------------------------ parameters and state

    def set_parameters(self, **values):
        """Write parameters (scalars broadcast). Per body (n,): mass (kg, > 0), restitution
        ([0, 1]), friction (>= 0), linear_damping and angular_damping (1/s, >= 0),
        contact_stiffness (N/m) and contact_damping (N s/m) of explicit contact laws (>= 0; 0:
        none). Per plane (P,): plane_restitution ([0, 1]) and plane_friction (>= 0)."""
        for name, value in values.items():
            if name not in PARAMETERS:
                raise ConfigError(f"unknown rigid-body parameter {name!r}; parameters are {PARAMETERS}")
            if name in PLANE_PARAMETERS:
                if not self.nplanes:
                    raise ConfigError(f"{name}: the scene has no planes")
                arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (self.nplanes,)).copy()
                bad = ~(np.isfinite(arr) & (arr >= 0) & ((arr <= 1) if name == "plane_restitution" else True))
                if np.any(bad):
                    i = int(np.argmax(bad))
                    want = "in [0, 1]" if name == "plane_restitution" else ">= 0"
                    raise ConfigError(f"{name} of plane {i} is {arr[i]}: it must be {want}")
                self._params[name].from_numpy(arr.astype(config().numpy_real))
                continue
            arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (self.n,)).copy()
            lo_ok = arr > 0 if name == "mass" else arr >= 0
            hi_ok = arr <= 1 if name == "restitution" else np.ones(self.n, bool)
            bad = ~(np.isfinite(arr) & lo_ok & hi_ok)
            if np.any(bad):
                i = int(np.argmax(bad))
                want = {"mass": "> 0 kg", "restitution": "in [0, 1]"}.get(name, ">= 0")
                raise ConfigError(f"{name} of body {i} ({self.model.names[i]}) is {arr[i]}: it must be {want}")
            self._params[name].from_numpy(arr.astype(config().numpy_real))
            if name == "contact_stiffness" and np.any(arr > 0):  # the kernels compile the explicit law from now
                self.mask |= K.M_EXPLICIT

    def _check_start(self, xx, vv, slot, pairs, count, ps):
        """First step of a forward sweep: the masses an optimizer wrote are positive (other
        parameters may leave their physical range smoothly, as finite differences at a bound
        need), no two centres coincide, and (penalty) no body is fast enough to pass through
        another."""
        mass = self._params["mass"].to_numpy().astype(np.float64)  # one read: this runs every forward sweep
        bad = ~(np.isfinite(mass) & (mass > 0))
        if np.any(bad):  # the one parameter whose wrong sign breaks the arithmetic (1/m)
            i = int(np.argmax(bad))
            raise ConfigError(f"mass of body {i} ({self.model.names[i]}) is {mass[i]} kg: it must be > 0. If an "
                              "optimizer set it, fit it so that it stays positive: Parameter('mass', "
                              "transform='log'), or lower= bounds passed to minimize(..., bounds=objective.bounds)")
        k = checks.first_coincident_pair(xx, slot, pairs, count, ps, self.dim, checks.COINCIDENT_DISTANCE)
        if k >= 0:
            i, j = (int(v) for v in pairs.to_numpy()[ps, k])
            raise checks.coincident_error(i, j, self.model.names, xx.to_numpy()[slot, i])
        if self.contact == "penalty":
            i = checks.deepest_stopping_ratio(vv, slot, self._params["mass"], self._thickness, self.stiffness,
                                              self.dim)
            if i >= 0:
                v = vv.to_numpy()[slot, i]
                raise checks.tunnelling_error(i, self.model.names, float(np.linalg.norm(v)), mass[i],
                                              float(self._thickness.to_numpy()[i]), self.stiffness, self.dt)

    def _check_travel(self, vv, slot0, slot1, t0):
        """No body travels so far in a step from the states in slots [slot0, slot1) (steps t0...)
        that it could pass through another (:func:`checks.largest_travel_ratio`)."""
        if checks.largest_travel_ratio(vv, slot0, slot1, self._reach, self.dt, self.dim) <= 1.0:
            return
        speed = np.linalg.norm(vv.to_numpy()[slot0:slot1].astype(np.float64), axis=-1)
        reach = self._reach.to_numpy().astype(np.float64)
        ratio = speed * self.dt / reach
        s = int(np.argmax(np.max(ratio, axis=1) > 1.0))  # the first such step, its worst body
        i = int(np.argmax(ratio[s]))
        raise checks.passing_through_error(i, self.model.names, t0 + s, float(speed[s, i]), reach[i], self.dt)

    def get_parameters(self) -> dict:
        """{name: values} of :meth:`parameters` as float64 arrays ((n,) per body, (P,) per plane)."""
        return {k: a.to_numpy().astype(np.float64) for k, a in self.parameters().items()}

    def parameters(self):
        """The fittable parameters (ndarrays with gradients): the per-body ones, and the per-plane
        materials when the scene has planes."""
        return {k: a for k, a in self._params.items() if self.nplanes or k not in PLANE_PARAMETERS}

    def initial_state(self):
        state = self.model.initial_state()
        if self.manifold:
            state["contact_impulse"] = np.zeros(self.state_shapes["contact_impulse"])
        return state

    # ------------------------------------------------------------------ launches

    def _workspace_for(self, x) -> _Workspace:
        slots = int(x.x.shape[0])
        if slots not in self._workspace:
            if self.manifold:  # one slot, recomputed per step in the adjoint sweep (_manifold_steps)
                self._workspace[slots] = _ManifoldWorkspace(1, self.n, self.contact_items, self.iterations,
                                                            int(self._static_pairs.shape[1]))
            else:
                layout = K.PENALTY_WORKSPACE if self.contact == "penalty" else K.IMPULSE_WORKSPACE
                static = int(self._static_pairs.shape[1]) if hasattr(self, "_static_pairs") else 0
                capacity = max(self.broadphase.capacity, static)
                items = K.impulse_items_per_step(self.n, capacity, self.nplanes) \
                    if self.contact == "impulse" and self.fused else 0
                self._workspace[slots] = _Workspace(layout, slots, self.n, capacity, items)
        return self._workspace[slots]

    def _manifold_steps(self, x, u, ws, slot0, slot_step, t0, t1):
        """The manifold solver's launches for steps t0..t1-1, step t from slot slot0 + (t - t0)
        slot_step to the slot slot_step after it: six to eight small kernels a step
        (:mod:`.manifold`; one fused kernel for all steps compiled its gradient several times
        longer). The workspace has one slot, which every step overwrites: in the adjoint sweep
        each step is first recomputed from its stored state (an adjoint-only launch), so the
        workspace holds that step's values when its gradient kernels run. This costs one more
        forward step per reversed step and keeps the workspace (tens of kB per contact point
        and sweep count) out of the per-slot storage."""
        p, w = self._params, ws.arrays
        ori = x[self.orientation]
        predicted = (w["predicted_velocity"], w["predicted_angular_velocity"], w["predicted_orientation"])
        geometry = (w["contact_frame"], w["lever_a"], w["lever_b"], w["target_speed"], w["friction_coefficient"],
                    w["active"])
        point = (w["contact_frame"], w["lever_a"], w["lever_b"], w["inverse_mass"], w["angular_response"],
                 w["target_speed"], w["friction_coefficient"], w["active"])
        sweeps = (w["velocity_iterate"], w["angular_velocity_iterate"])
        out = []
        for t in range(t0, t1):
            s = slot0 + (t - t0) * slot_step
            d = s + slot_step
            lean = _manifold_launch  # gradients compiled with MANIFOLD_GRADIENT_COMPILE
            step = [lean(M.manifold_predict, self.dim, self.mask, p["mass"], p["linear_damping"],
                         p["angular_damping"], u.force, u.torque, self.iu, self.consts, ori, x.v, x.omega, s, t, 0,
                         *predicted, w["predicted_axes"], w["contact_count"], w["inverse_inertia"], *sweeps)]
            if self.mask & K.M_PAIRS:
                if self.mask & K.M_BOX_BOX:  # the box pairs' separating-axis features (integers)
                    step.append(forward_only(_pair_features, self.dim, self.mask, self.shape, self.geom,
                                             self.consts, self._static_pairs, self._static_count, 0, x.x, s, 0,
                                             w["predicted_velocity"], w["predicted_orientation"], w["predicted_axes"],
                                             ws.pair_feature))
                step.append(lean(M.manifold_pair_contacts, self.dim, self.mask, self.shape, self.geom,
                                 p["restitution"], p["friction"], self.consts, self._static_pairs,
                                 self._static_count, 0, x.x, x.contact_impulse, s, 0, ws.pair_feature, *predicted,
                                 w["predicted_axes"], *geometry))
            if self.nplanes:
                step.append(lean(M.manifold_plane_contacts, self.dim, self.mask, self.shape, self.geom, self.planes,
                                 p["restitution"], p["friction"], p["plane_restitution"], p["plane_friction"],
                                 self.consts, self.nplanes, self._pair_items, x.x, x.contact_impulse, s, 0,
                                 *predicted, *geometry))
            step.append(lean(M.manifold_point_setup, self.dim, self.mask, self.shape, p["mass"], self._static_pairs,
                               0, self.nplanes, w["inverse_inertia"], w["lever_a"], w["lever_b"], 0,
                               w["contact_frame"], w["inverse_mass"], w["angular_response"]))
            step.append(lean(M.manifold_warm_start, self.dim, self.mask, self.shape, self._static_pairs, 0,
                             self.nplanes, x.contact_impulse, w["contact_frame"], w["active"], w["inverse_mass"],
                             w["angular_response"], s, 0, w["contact_count"], *sweeps, w["impulse_iterate"]))
            step.append(lean(M.manifold_sweeps, self.dim, self.mask, self.shape, self._static_pairs, 0,
                             self.nplanes, w["contact_count"], *point, 0, d, *sweeps, w["impulse_iterate"],
                             x.contact_impulse))
            step.append(lean(M.manifold_integrate, self.dim, self.consts, *sweeps, s, d, 0, x.x, ori, x.v, x.omega))
            out += step
            out.append(self._zero_adjoints(ws, 0, 1))
            out.append(adjoint_only(_recompute, step))
        return out

    def _zero_adjoints(self, ws, s0, s1):
        if self.manifold:
            return adjoint_only(M.zero_manifold_adjoints, *(a.grad for a in ws.arrays.values()), s0, s1)
        if self.contact == "penalty":
            return adjoint_only(K.zero_penalty_adjoints, ws.force.grad, ws.torque.grad, self._damping_ratio.grad,
                                self._plane_damping_ratio.grad, s0, s1)
        return adjoint_only(K.zero_impulse_adjoints, *(a.grad for a in ws.arrays.values()), s0, s1)

    def _damping_ratios(self):
        """The launch computing zeta(e) of every body and plane (penalty model) from the
        restitution parameters, before the steps that read it; its adjoint (hand-written,
        :func:`kernels.damping_ratios_adjoint`) runs after theirs."""
        return launch(_DampingRatios(self))

    def _penalty_step(self, x, u, ws, s, d, t):
        """The penalty model's per-step launches: (body loads, pair contacts, plane contacts,
        integration), None where the scene has no pairs or planes."""
        p, dim, mask, ori = self._params, self.dim, self.mask, x[self.orientation]
        state = (x.x, ori, x.v, x.omega)
        loads = _penalty_launch(K.penalty_body_loads, dim, mask, x.v, p["mass"], u.force, u.torque, self.consts, s,
                                t, ws.force, ws.torque)
        pairs = _penalty_launch(K.penalty_pair_contacts, dim, mask, *state, self.shape, self.geom, self.iu, p["mass"],
                                p["friction"], p["contact_stiffness"], p["contact_damping"], self._damping_ratio,
                                self.consts, ws.pairs, ws.count, ws.pair_feature, s, s, ws.force,
                                ws.torque) if mask & K.M_PAIRS else None
        planes = _penalty_launch(K.penalty_plane_contacts, dim, mask, *state, self.shape, self.geom, self.iu,
                                 self.planes, p["mass"], p["friction"], p["contact_stiffness"], p["contact_damping"],
                                 self._damping_ratio, self._plane_damping_ratio, p["plane_friction"], self.consts,
                                 self.nplanes, s, ws.force, ws.torque) if self.nplanes else None
        integrate = _penalty_launch(K.penalty_integrate, dim, p["mass"], p["linear_damping"], p["angular_damping"],
                                    self.iu, self.consts, ws.force, ws.torque, s, d, *state)
        return loads, pairs, planes, integrate

    def _impulse_step(self, x, u, ws, s, d, t):
        """The impulse model's per-step launches: (predict, pair impulses, plane impulses,
        integration), None where the scene has no pairs or planes."""
        p, dim, mask, ori = self._params, self.dim, self.mask, x[self.orientation]
        state = (x.x, ori, x.v, x.omega)
        sums = (ws.velocity_change, ws.position_correction, ws.angular_velocity_change)
        predict = launch(K.impulse_predict, dim, mask, ori, x.v, x.omega, p["mass"], p["linear_damping"],
                         p["angular_damping"], u.force, u.torque, self.iu, self.consts, s, t, ws.predicted_velocity,
                         ws.predicted_angular_velocity, *sums)
        pairs = launch(K.impulse_pair_contacts, dim, x.x, ori, x.v, ws.predicted_velocity,
                       ws.predicted_angular_velocity, self.geom, self.iu, p["mass"], p["restitution"], p["friction"],
                       self.consts, ws.pairs, ws.count, s, s, *sums) if self.n > 1 else None
        planes = launch(K.impulse_plane_contacts, dim, x.x, ori, x.v, ws.predicted_velocity,
                        ws.predicted_angular_velocity, self.geom, self.iu, self.planes, p["mass"], p["restitution"],
                        p["friction"], p["plane_restitution"], p["plane_friction"], self.consts, self.nplanes, s,
                        *sums) if self.nplanes else None
        integrate = launch(K.impulse_integrate, dim, mask, p["linear_damping"], self.consts, ws.predicted_velocity,
                           ws.predicted_angular_velocity, *sums, s, d, *state)
        return predict, pairs, planes, integrate

    def step(self, x, u, src, dst, t):
        ws = self._workspace_for(x)
        if self.manifold:  # one step of the fused kernel, from slot src to dst
            out = [forward_only(self._check_start, x.x, x.v, src, self._static_pairs, self._static_count, 0)] \
                if t == 0 else []
            out.append(forward_only(self._check_travel, x.v, src, src + 1, t))
            return [*out, *self._manifold_steps(x, u, ws, src, dst - src, t, t + 1)]
        zeta = []
        if self.contact == "penalty":
            first, pairs, planes, integrate = self._penalty_step(x, u, ws, src, dst, t)
            zeta = [self._damping_ratios()]
            bp = forward_only(self.broadphase.run, x.x, src, ws.pairs, ws.count, src)
        else:  # impulses act along the swept path x + s v*, s in [0, dt]
            first, pairs, planes, integrate = self._impulse_step(x, u, ws, src, dst, t)
            bp = forward_only(self.broadphase.run_swept, x.x, src, ws.pairs, ws.count, src, ws.predicted_velocity,
                              self.dt)
        out = [*zeta, first, bp]
        if t == 0:
            out.append(forward_only(self._check_start, x.x, x.v, src, ws.pairs, ws.count, src))
        if self._checks_travel:
            out.append(forward_only(self._check_travel, x.v, src, src + 1, t))
        if pairs is not None and self.contact == "penalty" and self.mask & K.M_BOX_BOX:  # their features (ints)
            out.append(forward_only(K.penalty_pair_features, self.dim, self.mask, x.x, x[self.orientation],
                                    self.shape, self.geom, ws.pairs, ws.count, src, src, ws.pair_feature))
        out += [k for k in (pairs, planes) if k is not None]
        out.append(integrate)
        out.append(self._zero_adjoints(ws, src, src + 1))
        return out

    def advance(self, x, u, slot0, t0, t1):
        """Launches that run steps t0..t1-1 from slot slot0 in one fused kernel (see :class:`diffsim.System`)."""
        ws = self._workspace_for(x)
        out = []
        if self.skin is None:
            pair_list = (self._static_pairs, self._static_count, 0)
        else:
            pair_list = (ws.pairs, ws.count, slot0)
            out.append(forward_only(self.broadphase.run, x.x, slot0, ws.pairs, ws.count, slot0, None, 0.0,
                                    self.skin))
        if t0 == 0:
            out.append(forward_only(self._check_start, x.x, x.v, slot0, *pair_list))
        if self.manifold:
            out.extend(self._manifold_steps(x, u, ws, slot0, 1, t0, t1))
            out.append(forward_only(self._check_travel, x.v, slot0, slot0 + t1 - t0, t0))
            return out
        p, state = self._params, (x.x, x[self.orientation], x.v, x.omega)
        materials = (p["mass"], p["restitution"], p["friction"], p["linear_damping"], p["angular_damping"])
        planes = (p["plane_restitution"], p["plane_friction"])
        if self.contact == "penalty":
            out.append(self._damping_ratios())
            out.append(launch(_FusedAdvance(K.penalty_advance, options=PENALTY_GRADIENT_COMPILE), self.dim, self.mask, self.shape, self.geom, self.iu, self.planes,
                              p["mass"], self._damping_ratio, p["friction"], p["linear_damping"],
                              p["angular_damping"], p["contact_stiffness"], p["contact_damping"],
                              self._plane_damping_ratio, p["plane_friction"], u.force, u.torque, self.consts,
                              *pair_list, self.nplanes, slot0, t0, t1, ws.pair_feature, ws.force, ws.torque,
                              *state))
        else:
            out.append(launch(_FusedAdvance(K.impulse_advance, lean=False), self.dim, self.mask, self.geom, self.iu, self.planes, *materials,
                              *planes, u.force, u.torque, self.consts, *pair_list, self.nplanes, slot0, t0, t1,
                              ws.acting_items, ws.acting_count, ws.predicted_velocity,
                              ws.predicted_angular_velocity, ws.velocity_change,
                              ws.position_correction, ws.angular_velocity_change, *state))
        if self.skin is not None:
            out.append(forward_only(self._check_drift, x.x, slot0, slot0 + t1 - t0, t0))
        if self._checks_travel:
            out.append(forward_only(self._check_travel, x.v, slot0, slot0 + t1 - t0, t0))
        out.append(self._zero_adjoints(ws, slot0, slot0 + t1 - t0))
        return out

    def _check_drift(self, xx, slot0, s1, t0):
        drift = K.max_drift(self.dim, xx, slot0, s1)
        if drift > 0.5 * self.skin:
            raise DiffsimError(f"steps {t0}..{t0 + s1 - slot0}: a body moved {drift:.3g} m within one fused segment, "
                               f"more than half the broad-phase skin ({self.skin} m), so a contact may have been "
                               f"missed: raise skin, shorten segment (now {self.segment}) or use fused=False")

    def running_cost(self, x, u, slot0, t0, t1, loss):
        return [lc for c in self.costs for lc in c.running(self, x, u, slot0, t0, t1, loss)]

    def terminal_cost(self, x, slot, loss):
        return [lc for c in self.costs for lc in c.terminal(self, x, slot, loss)]

    def _lightest_contact(self):
        """(effective mass kg, omega dt) of the lightest contact the scene can have
        (:func:`lightest_contact_mass`)."""
        m_eff = lightest_contact_mass(self.get_parameters()["mass"])
        return m_eff, self.dt * float(np.sqrt(self.stiffness / m_eff))

    def divergence_hint(self):
        spin = (f"a body spinning faster than 2/dt = {2.0 / self.dt:.3g} rad/s turns further in a step than "
                f"its gyroscopic update resolves")
        if self.contact == "penalty":
            m_eff, w_dt = self._lightest_contact()
            return (f"where bodies touch, the stiff term is the contact spring: stiffness {self.stiffness:g} N/m "
                    f"on the lightest contact (effective mass {m_eff:.3g} kg) gives omega*dt = {w_dt:.3g} at dt = "
                    f"{self.dt:g} s (stepping is stable below 1, the restitution calibrated up to 0.3); {spin}; "
                    f"reduce dt, soften the stiffness, or check the controls (forces, torques) for huge values")
        return (f"the impulse contact has no stiff term; {spin}: look at the controls (forces, torques), the "
                f"damping rates and the speeds; or reduce dt (now {self.dt:g} s)")

    def check_state(self, state: dict) -> None:
        """Orientations must be unit quaternions (w, x, y, z) to 1e-6: a quaternion of norm 2 would
        scale every body-fixed vector silently."""
        if "q" not in state or state["q"].shape[-1] != 4:
            return
        norm = np.linalg.norm(state["q"], axis=-1)
        bad = np.flatnonzero(np.abs(norm - 1.0) > 1e-6)
        if bad.size:
            i = int(bad[0])
            raise ConfigError(f"initial state 'q' of body {i} has norm {norm[i]:.6g}; orientations are unit "
                              f"quaternions (w, x, y, z): pass q / np.linalg.norm(q, axis=-1, keepdims=True)")

    def plausible_magnitudes(self) -> dict:
        """Generous bounds on |state| (SI units) beyond which a finite state counts as diverged:
        positions 1e3 times the scene's extent (bodies, their initial speeds over 10 s, planes;
        at least 1e3 m), speeds 1e3 times the largest a fall across that extent or the initial
        state gives (at least 1e3 m/s), angular speeds that speed over the smallest body, and
        quaternion entries 10 (unit quaternions have entries <= 1)."""
        m = self.model
        v0 = float(np.max(np.abs(m.v0))) if m.v0.size else 0.0
        extent = float(np.max(np.abs(m.x0)) + np.max(m.bounding_radius)) + 10.0 * v0
        if m.n_planes:
            extent = max(extent, float(np.max(np.abs(m.planes[:, 3]))))
        extent = max(extent, 1.0)
        g = float(np.linalg.norm(self.gravity))
        speed = max(1e3 * (v0 + np.sqrt(2.0 * g * extent) + 1.0), 1e3)
        w0 = float(np.max(np.abs(m.omega0))) if np.size(m.omega0) else 0.0
        out = {"x": 1e3 * extent, "v": speed,
               "omega": 1e3 * w0 + speed / float(np.min(m.bounding_radius))}
        if self.dim == 3:
            out["q"] = 10.0
        return out


def _recompute(launches):
    """Run a step's launches forward again (in the adjoint sweep, before their gradients)."""
    for lc in launches:
        lc.forward()


def lightest_contact_mass(masses) -> float:
    """Effective mass (kg) of the lightest contact bodies of these masses (kg) can have, along
    the centre line: the reduced mass m1 m2 / (m1 + m2) of the two lightest, or the mass of a
    lone body (against a plane). Off-centre contacts (a box's corner) are lighter still."""
    m = np.sort(np.asarray(masses, dtype=np.float64).ravel())
    return float(m[0] * m[1] / (m[0] + m[1])) if m.size > 1 else float(m[0])


__all__ = ["PARAMETERS", "RigidSystem"]
