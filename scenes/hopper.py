"""Hopper jump: a planar one-legged robot (torso, thigh, shin, a round foot) stands on the ground
and must jump so that its hip rises at least ``goal_height`` m above the ground, higher than its
straightened leg can reach, so the whole robot is in the air. Goal: the hip's apex at least
``goal_height`` (0.70 m by default) above the ground.

The robot moves in the x-z plane on a fixed-base chain of joints (cheaper to compile than a free
joint): passive sliders x and z and a passive pitch hinge carry the torso, whose origin is the
hip; the hip and the knee are actuated, their torques bounded by the model's effort limits
(``Parameter("tau", bounds="effort")``). The foot is a contact sphere against the ground through
the shared smooth contact law, with friction. Joint coordinates q = (x, z, pitch, hip, knee)
(m, m, rad, rad, rad); q[1] is the hip's height above the ground.

Loss (single shooting over the torques tau[t], N m; the passive joints' entries are fixed at 0)::

    L = dt sum_t [ w_u |tau_t|^2 + w_p pitch_t^2 ] + w_p pitch_T^2 + w_r zdot_T^2
        + w_a (smoothmax_{t in W} z_t - z*)^2

with the smooth maximum (``diffsim.costs.ApexHeight`` on q[1], log-sum-exp of temperature
``apex_temperature``) over the window W = [window_start, T dt] and z* = ``apex_target`` (a little
above the goal, so that the optimum clears it); the final vertical speed term makes the last
state the top of the flight rather than a hip still rising when the rollout ends. The robot starts at rest, its centre of mass
above the foot, holding its weight (``standing_torques``): the starting guess of the torques.

``build()`` gives the problem; ``solve()`` runs bounded L-BFGS-B (``optimizers.minimize``).
``demo(outdir)`` solves it at small size and writes a GIF of the jump and the joint and
torque trajectories.
"""

import pathlib
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

import optimizers
from diffsim import Objective, Parameter, Rollout, StoreAll
from diffsim.articulated import (
    ArticulatedSystem,
    Cost,
    GroundContact,
    RobotBuilder,
    point_position,
    reference,
    rod_inertia,
)
from diffsim.articulated.plotting import animate_planar, plot_trajectories
from diffsim.costs import ApexHeight

from ._config import option, resolve, scene_config
from ._goal import Goal, SceneResult

DEMO_ORDER = 12
LINKS = ("head", "torso", "shin", "foot")   # drawn in the animation: head, hip, knee, foot
Z = 1                                        # index of the hip height in q


@scene_config
class Config:
    """Options of the jump (``build``, ``run`` and ``diffsim run hopper``)."""

    steps: int = option(250, "time steps of the jump")
    dt: float = option(0.002, "time step", "s")
    torso_mass: float = option(3.0, "mass of the torso", "kg")
    thigh_mass: float = option(1.0, "mass of the thigh (a uniform rod)", "kg")
    shin_mass: float = option(0.5, "mass of the shin (a uniform rod)", "kg")
    segment_length: float = option(0.3, "length of the thigh and of the shin", "m")
    foot_radius: float = option(0.03, "radius of the foot's contact sphere", "m")
    hip_effort: float = option(30.0, "hip torque limit", "N m")
    knee_effort: float = option(30.0, "knee torque limit", "N m")
    crouch: float = option(0.5, "hip angle of the starting crouch (the knee follows so the COM is over the foot)",
                           "rad")
    goal_height: float = option(0.70, "the hip must rise at least this high above the ground", "m")
    apex_target: float = option(0.78, "target of the smooth apex of the hip height in the loss", "m")
    window_start: float = option(0.15, "start of the apex window (it ends with the rollout)", "s")
    apex_weight: float = option(100.0, "weight of the squared apex error", "loss/m^2")
    apex_temperature: float = option(2e-3, "temperature of the smooth maximum", "m")
    effort: float = option(1e-4, "weight of the running torque cost", "loss/(N^2 m^2 s)")
    upright_weight: float = option(1.0, "weight of the running and final torso pitch", "loss/(rad^2 s), loss/rad^2")
    rise_weight: float = option(1.0, "weight of the final vertical speed of the hip (zero at the apex)", "loss s^2/m^2")
    stiffness: float = option(1e4, "ground contact stiffness", "N/m")
    damping: float = option(50.0, "ground contact damping", "N s/m")
    friction: float = option(0.8, "friction coefficient of the foot")
    slip_speed: float = option(0.01, "slip speed smoothing Coulomb friction (raised where the step needs it: "
                                     "GroundContact)", "m/s")
    iters: int = option(150, "L-BFGS iterations")


DEMO = Config(iters=100)  # the demo's small size


def hopper_model(torso_mass=3.0, thigh_mass=1.0, shin_mass=0.5, segment_length=0.3, foot_radius=0.03,
                 hip_effort=30.0, knee_effort=30.0):
    """The planar hopper: passive sliders x, z and pitch hinge (axis y) carrying the torso (its
    origin at the hip, centre of mass 0.1 m above it); a thigh and a shin (uniform rods of
    ``segment_length`` m hanging along -z at q = 0) on actuated hip and knee hinges (axis y,
    damping 0.05 N m s/rad, armature 0.01 kg m^2; effort limits in N m; knee in [-2.5, 0] rad,
    hip in [-1, 2] rad); a contact sphere of ``foot_radius`` m at the end of the shin. The slider
    carriages weigh 10 g each."""
    L = segment_length
    rb = RobotBuilder("hopper")
    rb.add_link("world")
    rb.add_link("carriage_x", mass=0.01, inertia=np.eye(3) * 1e-5)
    rb.add_link("carriage_z", mass=0.01, inertia=np.eye(3) * 1e-5)
    rb.add_link("torso", mass=torso_mass, com=(0.0, 0.0, 0.1), inertia=np.diag([0.02, 0.02, 0.01]) * torso_mass / 3)
    rb.add_link("thigh", mass=thigh_mass, com=(0.0, 0.0, -L / 2), inertia=rod_inertia(thigh_mass, L, "z"))
    rb.add_link("shin", mass=shin_mass, com=(0.0, 0.0, -L / 2), inertia=rod_inertia(shin_mass, L, "z"))
    rb.add_link("foot")
    rb.add_link("head")
    rb.add_joint("x", "prismatic", "world", "carriage_x", axis=(1, 0, 0), actuated=False)
    rb.add_joint("z", "prismatic", "carriage_x", "carriage_z", axis=(0, 0, 1), actuated=False)
    rb.add_joint("pitch", "revolute", "carriage_z", "torso", axis=(0, 1, 0), actuated=False)
    rb.add_joint("hip", "revolute", "torso", "thigh", axis=(0, 1, 0), damping=0.05, armature=0.01,
                 lower=-1.0, upper=2.0, effort=hip_effort)
    rb.add_joint("knee", "revolute", "thigh", "shin", xyz=(0.0, 0.0, -L), axis=(0, 1, 0), damping=0.05,
                 armature=0.01, lower=-2.5, upper=0.0, effort=knee_effort)
    rb.add_joint("ankle", "fixed", "shin", "foot", xyz=(0.0, 0.0, -L))
    rb.add_joint("neck", "fixed", "torso", "head", xyz=(0.0, 0.0, 0.25))
    rb.add_contact_point("foot", radius=foot_radius)
    return rb.finalize()


def standing_pose(model, contact: GroundContact, crouch: float = 0.5) -> np.ndarray:
    """q (5,) of the robot at rest on the ground: hip angle ``crouch`` (rad), the knee bent so
    that the foot is under the centre of mass of torso, thigh and shin (no moment about the
    passive pitch hinge), the foot sphere pressed to the depth where the contact law carries the
    weight, m g / k_n + delta / 2 (past the onset depth delta)."""
    m_t, m_s = model.mass[3], model.mass[4]
    M = model.mass[2:].sum()
    s1 = np.sin(crouch)   # foot x = com x:  s2 = -s1 (M - m_t/2 - m_s) / (M - m_s/2)
    s2 = -s1 * (M - m_t / 2 - m_s) / (M - m_s / 2)
    q = np.array([0.0, 0.0, 0.0, crouch, np.arcsin(s2) - crouch])
    foot = point_position(model, q, "foot")
    depth = model.mass[1:].sum() * -model.gravity[2] / contact.stiffness + contact.onset_depth / 2
    q[Z] = -foot[2] + model.contact_radius[0] - depth
    q[0] = -foot[0]   # the foot at x = 0
    return q


def standing_torques(model, q, contact: GroundContact) -> np.ndarray:
    """Generalised forces tau (5,) (N, N, N m, N m, N m) that hold the robot at rest in pose ``q``
    with the ground ``contact`` pushing on the foot: RNEA at rest, tau = g(q) - J^T F_contact. In
    the :func:`standing_pose` the contact carries the whole weight under the centre of mass, so
    the passive rows (x, z, pitch) vanish (checked by the tests) and the hip and knee torques
    alone hold the robot. Computed by the NumPy reference algorithms (the same RNEA and contact
    law as :func:`diffsim.articulated.rnea`, to rounding): the Taichi rnea would compile its
    kernel for this one call, 2-3 s of CPU in the scene's first start."""
    zero = np.zeros(model.nv)
    return reference.rnea(model, q, zero, zero, f_ext=reference.contact_forces(model, q, zero, contact.as_dict()))


@dataclass
class JumpProblem:
    """A jump: the hopper, its batch-of-one system, the rollout, the Objective over tau and the
    apex cost. Goal: the hip's highest point over the window is at least ``goal_height`` m."""

    SCENE: ClassVar[str] = "hopper"

    model: object
    system: ArticulatedSystem
    rollout: Rollout
    objective: Objective
    apex: ApexHeight
    q0: np.ndarray
    config: Config

    @property
    def goal(self) -> Goal:
        """The hip rises at least ``goal_height`` m (the straight leg reaches ``reach`` m)."""
        return Goal("apex of the hip height", self.config.goal_height, "cm", 100.0, at_least=True)

    @property
    def steps(self):
        return self.rollout.steps

    @property
    def dt(self):
        return self.system.dt

    @property
    def reach(self) -> float:
        """Hip height (m) with the leg straight down and the foot sphere touching: above it the foot is off the ground."""
        return 2 * self.config.segment_length + self.config.foot_radius

    def x0(self):
        """Initial guess: the standing torques at every step."""
        tau = standing_torques(self.model, self.q0, self.system.contact) * self.model.actuated
        return np.broadcast_to(tau, (self.steps, 1, self.model.nv)).ravel().copy()

    def solve(self, iters: int | None = None, x0=None, **kwargs) -> SceneResult:
        """Bounded L-BFGS-B on the torques, ``iters`` iterations (default: the config's). The
        result's ``figure`` is the true (not smoothed) highest hip height in the window, m."""
        iters = self.config.iters if iters is None else iters
        res = optimizers.minimize(self.objective, self.x0() if x0 is None else x0, "lbfgs", iters,
                                  bounds=self.objective.bounds, **kwargs)
        traj = self.trajectory(res.x)
        k = int(np.argmax(traj["window_z"]))
        return SceneResult.judge(self.SCENE, self.goal, traj["window_z"][k], res,
                                 apex_time_s=float((traj["window_first"] + k) * self.dt),
                                 foot_clearance_at_apex_m=float(traj["foot_clearance"][traj["window_first"] + k]),
                                 straight_leg_reach_m=self.reach, standing_height_m=float(self.q0[Z]),
                                 hip_vertical_speed_at_apex_m_s=float(traj["qd"][traj["window_first"] + k, Z]),
                                 max_torque_Nm=float(np.abs(traj["tau"]).max()))

    def trajectory(self, x) -> dict:
        """q (T+1, 5), qd, tau (T, 5), hip height in the apex window, and the foot sphere's
        clearance above the ground (T+1,) (m; negative: pressed in) for the torques ``x``."""
        self.objective.set(x)
        loss = self.rollout.forward()
        q = self.rollout.trajectory("q")[:, 0]
        foot = point_position(self.model, q, "foot")[:, 2] - self.model.contact_radius[0]
        first = int(np.ceil(self.config.window_start / self.dt - 1e-9))
        return {"loss": loss, "q": q, "qd": self.rollout.trajectory("qd")[:, 0],
                "tau": self.rollout.controls()["tau"][:, 0], "foot_clearance": foot,
                "window_z": q[first:, Z], "window_first": first}


def build(config: Config | None = None, **overrides) -> JumpProblem:
    """The hopper (masses kg, lengths m, effort limits N m) at rest on the ground over ``steps``
    steps of dt s, the ground contact (stiffness N/m, damping N s/m, friction, slip speed m/s),
    the loss of the module doc. ``overrides``: fields of :class:`Config` (``build(steps=60)``)."""
    c = resolve(Config, config, **overrides)
    model = hopper_model(c.torso_mass, c.thigh_mass, c.shin_mass, c.segment_length, c.foot_radius, c.hip_effort,
                         c.knee_effort)
    contact = GroundContact(stiffness=c.stiffness, damping=c.damping, friction=c.friction, slip_speed=c.slip_speed)
    q0 = standing_pose(model, contact, c.crouch)
    upright = [0.0, 0.0, c.upright_weight, 0.0, 0.0]
    cost = Cost(effort=c.effort, q_weight=upright, q_weight_final=upright,
                qd_weight_final=[0.0, c.rise_weight, 0.0, 0.0, 0.0])
    apex = ApexHeight(0, field="q", axis=Z, window=(c.window_start, c.steps * c.dt), temperature=c.apex_temperature,
                      target=c.apex_target, weight=c.apex_weight)
    system = ArticulatedSystem(model, batch=1, dt=c.dt, contact=contact, cost=cost, costs=[apex], q0=q0)
    rollout = Rollout(system, c.steps, StoreAll())
    objective = Objective(rollout, [Parameter("tau", bounds="effort")])
    return JumpProblem(model, system, rollout, objective, apex, q0, c)


def demo(outdir: pathlib.Path) -> dict:
    """The jump by single shooting at small size; GIF, trajectories and loss curve."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    problem = build(DEMO)
    res = problem.solve()
    pictures = draw(problem, res, outdir)
    return {**res.summary(), "initial_loss": float(res.history["loss"][0]), "final_loss": float(res.fun),
            "iterations": int(res.nit), "seconds": time.perf_counter() - start, **pictures}


def draw(problem: JumpProblem, res: SceneResult, outdir: pathlib.Path) -> dict:
    """GIF of the jump (x-z plane, m; the star: the goal height of the hip) titled with the
    verdict, and the joint/torque/loss plot."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    traj = problem.trajectory(res.x)
    t = np.arange(problem.steps + 1) * problem.dt
    apex = np.array([0.0, 0.0, problem.config.goal_height])
    verdict = f"hip apex {res.figure:.3f} m"
    gif = animate_planar(outdir / "hopper.gif", problem.model, traj["q"], list(LINKS), problem.dt, targets=apex,
                         trail="torso", frames=30, ground=0.0,
                         title=res.title(f"hopper jump: {verdict} (goal reached)", f"hopper jump: {verdict}, goal MISSED"))
    plot = plot_trajectories(outdir / "hopper.png", t, traj["q"], traj["tau"],
                             ["x (m)", "z (m)", "pitch (rad)", "hip (rad)", "knee (rad)"],
                             "hopper: joints, torques, loss", res.history["loss"])
    return {"gif": gif, "plot": plot}


def run(config: Config, out: pathlib.Path) -> SceneResult:
    """``diffsim run hopper``: the jump by L-BFGS, its GIF and plot in ``out``; ``success`` when
    the hip rises at least ``goal_height`` m above the ground."""
    problem = build(config)
    res = problem.solve()
    res.details.update(initial_loss=float(res.history["loss"][0]), final_loss=float(res.fun),
                       **draw(problem, res, out))
    return res
