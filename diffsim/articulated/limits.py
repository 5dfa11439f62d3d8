"""Soft joint limits that are stable at any time step: gains chosen from each joint's inertia and
dt (or given and checked), and the stiffness a rollout really has (for divergence messages).

A joint pressed into its stop feels a spring-damper on its coordinate through the shared contact
law (:func:`diffsim.contact.limit_force`: C^1, fading in over the onset depth delta =
``limit_onset``). Stepped explicitly, a stop of stiffness k and damping c on inertia m is
stable only while (omega dt)^2 + 2 (c / m) dt < 4 (omega^2 = k / m: omega dt < 2 undamped, < 0.83
critically damped), and a light link makes omega large: the old fixed gains (1e3 N m/rad,
10 N m s/rad) diverged at dt = 0.01 s on a 3e-4 kg m^2 link. A stop soft enough for the explicit
step is useless (a 10 N m motor pushes such an elbow a radian past its limit).

So the stops are *linearly implicit* in their own joint: the law is evaluated at the predicted
position q + dt qd, and while joint i is pressed in (d the depth of q + dt qd into the stop),
its diagonal of the joint-space inertia gains

    a_i = s(d / delta) (dt c_i + dt^2 k_i)        (kg m^2 or kg; s the law's smoothstep),

which together are one linearised backward-Euler step of the stop's spring-damper (MuJoCo
treats joint damping the same way). For one joint fully in, the step's eigenvalues have modulus
sqrt(m / (m + dt c + dt^2 k)) < 1 at every k and dt; a_i fades in with the force, so the step
stays C^1 and free motion is untouched; a resting joint (qd = qdd = 0) feels exactly the
static force. (With a_i alone, without the predicted position, the stops rattled: a scan of the
initial rate through a stop was 30-100x rougher.)

Automatic gains (``RobotBuilder.finalize()`` with ``limit_stiffness=None``, the default):
omega_i dt = 2 on the joint's inertia M_ii at the reference pose (CRBA with armature, the zero
pose clipped into the limits), k_i = M_ii (2 / dt)^2, raised where the joint has an effort
limit until that effort presses it at most 0.05 rad (or m) in, k_i >= effort_i / 0.05;
critically damped, c_i = 2 sqrt(k_i M_ii). At dt = 0.01 s a 0.03 kg m^2 elbow gets
k = 1200 N m/rad: 10 N m presses it 8 mrad past its limit (plus up to delta / 2 of the onset). The gains grow as 1/dt^2 (stiffer stops at smaller steps). Then the step is checked
(below) at 1.5 dt, for a margin, and k halved until it passes.

Check (automatic and given gains): the semi-implicit Euler map of the stops, linearised with
every limited joint pressed in at once (coupled through M) and also part-way into the onset,
must have spectral radius <= 1 on sample poses (the reference pose and 16 fixed pseudo-random
poses within the limits) for each distinct robot of the batch. Given gains that fail raise a
:class:`~diffsim.errors.ConfigError` that names the joint and the largest stable dt.
"""

from dataclasses import dataclass

import numpy as np

from ..contact import smoothstep_np
from ..errors import ConfigError
from . import reference
from .kernels import LIMIT_INERTIA_RISE
from .model import BALL, NO_LIMIT, REVOLUTE, Model
from .spatial import inertia_matrix

AUTO_OMEGA_DT = 2.0
"""omega dt = sqrt(k / M_ii) dt of the automatic stops (linearly implicit, so stable)."""
EFFORT_PENETRATION = 0.05
"""rad or m: an automatic stop is at least stiff enough that the joint's full effort presses it no
further past its limit than this (where the URDF gives an effort)."""
AUTO_MARGIN = 1.5
"""Automatic gains must step stably at AUTO_MARGIN * dt too (poses between the samples)."""
RAMP = (1.0 / 24.0, 0.1, 0.25, 1.0)
"""Fractions r = d / delta of the onset at which the step's stability is checked (r = 1: fully in).
Part-way in, the stop's local stiffness k r outgrows its added inertia 3 r^2 dt^2 k most at
r = 1/24, where one joint needs dt^2 k / m < 192. The damping dt k r that the predicted position
adds there is left out: counted, it failed gains that run stably (the old 1e3 / 10 on a 3e-4
kg m^2 link at dt = 0.01 s settles exactly on the law's static depth), since a state cannot
stay part-way in; gating the prediction to count it made the scans rougher and the gradients
less accurate (measured), so it was not done."""
N_SAMPLES = 16


@dataclass(frozen=True)
class LimitGains:
    """The soft-limit gains a system steps with: ``stiffness`` (nb,) (N m/rad or N/m),
    ``damping`` (nb,) (N m s/rad or N s/m), ``onset`` (rad or m; the shared law's delta), ``dt``
    (s) they were chosen or checked for, ``inertia`` (nb,): the smallest effective inertia
    1 / (M^-1)_ii found (kg m^2 or kg), ``omega_dt`` (nb,): sqrt(k_i / inertia_i) dt (what an
    explicit step would have to resolve: stable explicitly only below 0.83), ``max_dt``: the
    largest stable step with every stop pressed in (s; inf when stable at every step tried,
    nan when not computed), ``limited`` (nb,) bool: the joints that have a limit."""

    stiffness: np.ndarray
    damping: np.ndarray
    onset: float
    dt: float
    inertia: np.ndarray
    omega_dt: np.ndarray
    max_dt: float
    limited: np.ndarray

    def added_inertia(self, depth) -> np.ndarray:
        """a_i (kg m^2 or kg) of joints pressed ``depth`` (nb,) (rad or m) into a stop."""
        s = smoothstep_np(LIMIT_INERTIA_RISE * np.asarray(depth, float) / self.onset)
        return s * (self.dt * self.damping + self.dt ** 2 * self.stiffness)


def sample_configurations(model: Model, n: int = N_SAMPLES, seed: int = 0) -> np.ndarray:
    """(n + 1, nq) joint positions: the zero pose clipped into the limits, then n fixed
    pseudo-random poses within [lower, upper] (revolute joints also within [-pi, pi],
    prismatic within [-0.5, 0.5] m; ball joints: unrotated, then uniformly random unit
    quaternions, drawn after the 1-DOF joints' positions, from a generator of their own)."""
    span = np.where(np.asarray(model.jtype) == REVOLUTE, np.pi, 0.5)
    lo = np.maximum(model.lower, -span)
    hi = np.minimum(model.upper, span)
    hi = np.maximum(hi, lo)
    rng = np.random.default_rng(seed)
    q = lo + (hi - lo) * rng.uniform(size=(n, model.nb))
    q = np.vstack([np.clip(np.zeros(model.nb), lo, hi), q])
    if not model.has_ball:
        return q
    out = np.tile(model.neutral_configuration(), (n + 1, 1))
    quats = np.random.default_rng(seed + 1)
    for i, kind in enumerate(model.jtype):
        k = model.q_index[i]
        if kind == BALL:
            u = quats.normal(size=(n, 4))
            out[1:, k:k + 4] = u / np.linalg.norm(u, axis=1, keepdims=True)
        else:
            out[:, k] = q[:, i]
    return out


def mass_matrices(model: Model, params_list, qs) -> np.ndarray:
    """M(q) + diag(armature) (NumPy CRBA) for every parameter set and configuration:
    (len(params_list) * len(qs), nb, nb)."""
    return np.array([reference.crba(model, q, p) for p in params_list for q in qs])


def _parameter_sets(model: Model, params: dict | None, cap: int = 8) -> list:
    """The distinct per-robot parameter sets of a batch ({name: (B, nb, ...)}); at most ``cap``
    of them, the lightest first (the lightest robot has the fastest stops)."""
    if not params:
        return [model.parameters()]
    B = next(iter(params.values())).shape[0]
    flat = np.concatenate([np.asarray(params[k]).reshape(B, -1) for k in Model.PARAMETERS], axis=1)
    _, first = np.unique(flat, axis=0, return_index=True)
    first = sorted(first, key=lambda b: float(np.sum(params["mass"][b])))[:cap]
    return [{k: np.asarray(params[k][b]) for k in Model.PARAMETERS} for b in first]


def _step_matrix(M, k, c, a, dt):
    """The semi-implicit Euler map on (x, v) (2n, 2n) of (M + diag(a)) x'' = -diag(k) x - diag(c) x'."""
    n = len(k)
    G = np.linalg.inv(M + np.diag(a))
    Av = np.eye(n) - dt * G * c[None, :]
    Ax = -dt * G * k[None, :]
    return np.vstack([np.hstack([np.eye(n) + dt * Ax, dt * Av]), np.hstack([Ax, Av])])


def _stable(Ms, k, c, dt) -> bool:
    """Spectral radius <= 1 at every sample mass matrix (limited joints only), with the stops
    fully in and part-way into the onset (local stiffness k r, damping c s(r) r, added inertia
    s(r) (dt c + dt^2 k))."""
    for r in RAMP:
        s = float(smoothstep_np(LIMIT_INERTIA_RISE * r))
        kr, a = k * r, s * (dt * c + dt * dt * k)
        # the law acts at the predicted position x + dt v: exactly an extra damping dt k when fully
        # in; part-way in that damping (dt k r) is left out of this linear check (see RAMP)
        cr = c + dt * k if r >= 1.0 else c * s * r
        for M in Ms:
            if np.max(np.abs(np.linalg.eigvals(_step_matrix(M, kr, cr, a, dt)))) > 1.0 + 1e-9:
                return False
    return True


def largest_stable_dt(Ms, k, c, dt: float, reach: float = 64.0) -> float:
    """The largest step (s) at which the stops (gains k, c (n,), sample mass matrices Ms
    (S, n, n)) step stably, by doubling from dt then bisection; inf if stable up to reach * dt."""
    lo, hi = 0.0, dt
    while _stable(Ms, k, c, hi):
        lo, hi = hi, 2.0 * hi
        if hi > reach * dt:
            return np.inf
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _stable(Ms, k, c, mid) else (lo, mid)
    return lo


def soft_limit_gains(model: Model, dt: float, params: dict | None = None, check: bool = True) -> LimitGains:
    """Choose (model's ``limit_stiffness`` None) or take the soft-limit gains for time step dt
    (s); params: the batch's per-robot parameters ({name: (B, nb, ...)}), default the model's.
    With ``check``: given gains that step unstably at dt raise ConfigError (naming the joint
    and the largest stable dt), and ``max_dt`` is computed. See the module doc."""
    limited = (np.asarray(model.lower) > -NO_LIMIT) | (np.asarray(model.upper) < NO_LIMIT)
    sets = _parameter_sets(model, params)
    qs = sample_configurations(model)
    Ms = mass_matrices(model, sets, qs)
    try:
        Minvs = np.linalg.inv(Ms)
    except np.linalg.LinAlgError:
        raise ConfigError(f"robot '{model.name}': the joint-space inertia is singular in some pose: a joint "
                          "moves no mass about its axis; give its link inertia or the joint armature") from None
    first = list(model.v_index)   # each body's first dof (a ball joint: the least of its 3)
    m_eff = 1.0 / np.maximum.reduceat(np.max(np.einsum("sii->si", Minvs), axis=0), first)
    m_ref = np.minimum.reduceat(np.min(np.einsum("sii->si", Ms[::len(qs)]), axis=0), first)  # M_ii, reference pose
    idx = np.flatnonzero(limited)
    dof = np.asarray(first, dtype=int)[idx]
    Ms_lim = Ms[:, dof][:, :, dof]
    k_given, c_given = model.limit_stiffness, model.limit_damping

    def damping_for(k):
        return 2.0 * np.sqrt(k * m_ref) if c_given is None else np.asarray(c_given, float).copy()

    if k_given is None:
        effort = np.where(np.isfinite(model.effort), model.effort, 0.0)
        k = np.maximum(m_ref * (AUTO_OMEGA_DT / dt) ** 2, effort / EFFORT_PENETRATION)
        c = damping_for(k)
        for _ in range(30):
            if not idx.size or _stable(Ms_lim, k[idx], c[idx], AUTO_MARGIN * dt):
                break
            k = 0.5 * k
            c = damping_for(k)
    else:
        k = np.asarray(k_given, float).copy()
        c = damping_for(k)
    max_dt = np.nan
    if check:
        max_dt = largest_stable_dt(Ms_lim, k[idx], c[idx], dt) if idx.size else np.inf
        if dt > max_dt:
            alone = [largest_stable_dt(Ms[:, [d]][:, :, [d]], k[[j]], c[[j]], dt) for j, d in zip(idx, dof)]
            j = int(idx[int(np.argmin(alone))])
            unit = "kg m^2" if model.jtype[j] == REVOLUTE else "kg"
            raise ConfigError(
                f"the soft limit of joint '{model.joint_names[j]}' is unstable at dt = {dt:g} s: stiffness "
                f"{k[j]:g} and damping {c[j]:g} on an effective inertia of {m_eff[j]:.3g} {unit} "
                f"(omega*dt = {np.sqrt(k[j] / m_eff[j]) * dt:.3g}). The largest stable dt with these joint "
                f"limits is {max_dt:.3g} s: use dt <= {0.5 * max_dt:.3g} s, lower limit_damping, or leave "
                "limit_stiffness and limit_damping unset (None) in RobotBuilder.finalize / load_urdf to have "
                "them chosen from each joint's inertia and dt")
    return LimitGains(stiffness=k, damping=c, onset=float(model.limit_onset), dt=float(dt), inertia=m_eff,
                      omega_dt=np.sqrt(k / m_eff) * dt, max_dt=float(max_dt), limited=limited)


def contact_effective_mass(model: Model, params: dict | None = None) -> np.ndarray:
    """(ncp,) the smallest mass (kg) each ground-contact point presents along the normal z:
    1 / (J M^-1 J^T)_zz over the sample configurations (J the point's Jacobian)."""
    sets = _parameter_sets(model, params)
    if model.floating:  # a lower bound: the mass of the body carrying the point (the NumPy CRBA is fixed-base)
        return np.array([min(float(p["mass"][b]) for p in sets) for b in model.contact_body])
    out = np.full(len(model.contact_body), np.inf)
    for p in sets:
        for q in sample_configurations(model):
            Minv = np.linalg.inv(reference.crba(model, q, p))
            for n, (b, pt) in enumerate(zip(model.contact_body, model.contact_point)):
                J = reference.point_jacobian(model, q, b, pt, p)
                inv_m = J[2] @ Minv @ J[2]
                if inv_m > 0:
                    out[n] = min(out[n], 1.0 / inv_m)
    return out


VELOCITY_LIMIT_ONSET = 0.05
"""Velocity limits: the smooth clamp of a joint's new velocity departs from the identity over
this fraction w / v_max of the limit below it (kernels.velocity_clamp)."""


def velocity_clamp_np(x, vmax, w):
    """NumPy twin of the kernels' smooth velocity clamp (kernels.velocity_clamp): x (rad/s or
    m/s) while |x| <= vmax - w, then sign(x) ((vmax - w) + w g((|x| - vmax + w) / w)),
    g(u) = u / sqrt(1 + u^2)."""
    x = np.asarray(x, float)
    a = np.asarray(vmax, float) - w
    s = np.sign(x)
    u = (np.abs(x) - a) / w
    return np.where(np.abs(x) > a, s * (a + w * u / np.sqrt(1.0 + u * u)), x)


def contact_tangential_mass(model: Model, params: dict | None = None) -> np.ndarray:
    """(ncp,) a lower bound (kg) on the mass each ground-contact point presents to friction (the
    kernels share it among a body's pressing points in proportion to their normal forces).
    Fixed base: 1 / lambda_max(J_t M^-1 J_t^T)
    (J_t the x and y rows of the point's Jacobian) over the sample configurations and parameter
    sets. Floating base: the carrying body alone as a free rigid body, 1 / (1/m + (|c - p| +
    r)^2 / I_min) (c the point, p the centre of mass, r the sphere radius, I_min the smallest
    principal moment about p), which the rest of the tree can only make heavier. Used to cap the
    stiffness of smoothed friction (dynamics.GroundContact)."""
    ncp = len(model.contact_body)
    out = np.full(ncp, np.inf)
    sets = _parameter_sets(model, params)
    if model.floating:
        for p in sets:
            for n, (b, pt, r) in enumerate(zip(model.contact_body, model.contact_point, model.contact_radius)):
                lam = np.linalg.eigvalsh(inertia_matrix(np.asarray(p["inertia"][b], float)))[0]
                arm = np.linalg.norm(pt - np.asarray(p["com"][b], float)) + r
                inv = 1.0 / float(p["mass"][b]) + (arm * arm / lam if lam > 0 else np.inf)
                out[n] = min(out[n], 1.0 / inv)
    else:
        for p in sets:
            for q in sample_configurations(model):
                Minv = np.linalg.inv(reference.crba(model, q, p))
                R, _ = reference.body_poses(model, q, p)
                for n, (b, pt, r) in enumerate(zip(model.contact_body, model.contact_point, model.contact_radius)):
                    J = reference.point_jacobian(model, q, b, pt - r * R[b][2], p)[:2]
                    lam = np.linalg.eigvalsh(J @ Minv @ J.T)[-1]
                    if lam > 0:
                        out[n] = min(out[n], 1.0 / lam)
    return np.minimum(out, NO_LIMIT)
