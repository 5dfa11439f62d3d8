"""Ground friction at the default slip speed: the regularised Coulomb damper is capped by the step
(slip speed raised to 2 dt mu f_n / m_t), so a sliding foot stops where Coulomb's law says, a
pressed foot sticks instead of chattering, and the gradient through sliding and sticking matches
central differences."""

import numpy as np
import pytest

from diffsim import Objective, Rollout, StoreAll, gradcheck
from diffsim.articulated import ArticulatedSystem, Cost, GroundContact, RobotBuilder
from diffsim.articulated.limits import contact_tangential_mass

DT = 0.002
M_CARRIAGE, M_FOOT = 0.5, 1.0
G = 9.81


def puck():
    """A foot (1 kg) on a vertical slide on a carriage (0.5 kg) on a horizontal slide: it slides
    along x on the ground; its contact point is 5 cm below the foot's origin."""
    rb = RobotBuilder("puck")
    rb.add_link("world")
    rb.add_link("carriage", mass=M_CARRIAGE, inertia=np.eye(3) * 1e-3)
    rb.add_link("foot", mass=M_FOOT, inertia=np.eye(3) * 1e-3)
    rb.add_joint("slide_x", "prismatic", "world", "carriage", axis=(1, 0, 0))
    rb.add_joint("slide_z", "prismatic", "carriage", "foot", axis=(0, 0, 1))
    rb.add_contact_point("foot", (0, 0, -0.05))
    return rb.finalize()


@pytest.fixture(scope="module")
def model():
    return puck()


def resting_height(load, contact):
    """z of the foot's slide at which the contact carries ``load`` (N) at rest (the law's linear part)."""
    return 0.05 - load / contact.stiffness - contact.onset_depth / 2


def test_tangential_mass_bounds():
    """The puck's point moves in x with the whole 1.5 kg and not in y; a free solid ball's
    contact point presents 2 m / 7 (exact: 1/m + r^2 / (2/5 m r^2))."""
    assert contact_tangential_mass(puck()) == pytest.approx([M_CARRIAGE + M_FOOT], rel=1e-12)
    rb = RobotBuilder("ball", floating_base=True)
    rb.add_link("ball", mass=2.0, inertia=np.eye(3) * 0.4 * 2.0 * 0.1 ** 2)
    rb.add_contact_point("ball", radius=0.1)
    assert contact_tangential_mass(rb.finalize()) == pytest.approx([2 * 2.0 / 7], rel=1e-12)


def test_sliding_foot_stops_at_the_coulomb_distance(model):
    """Launched at v0 with the default GroundContact (slip speed 0.01 m/s), friction mu m_f g
    decelerates the 1.5 kg that slides: it stops after M v0^2 / (2 mu m_f g) and stays."""
    c = GroundContact()
    v0 = 1.0
    system = ArticulatedSystem(model, dt=DT, contact=c, q0=[0.0, resting_height(M_FOOT * G, c)], qd0=[v0, 0.0])
    ro = Rollout(system, 200)
    ro.forward()
    x, v = ro.trajectory("q")[:, 0, 0], ro.trajectory("qd")[:, 0, 0]
    expected = (M_CARRIAGE + M_FOOT) * v0 ** 2 / (2 * c.friction * M_FOOT * G)
    assert x[-1] == pytest.approx(expected, rel=0.02)
    assert abs(v[-1]) < 1e-4 and np.all(v >= -1e-4)   # stopped, never slid back


def pressed_foot(model, steps=150):
    """The foot pressed down with ~30 N more than its weight while it slides to a stop and
    sticks: uncapped, friction's rate mu f_n / (v_eps m_t) is 4 / dt at the default slip speed
    (explicitly unstable above 2 / dt; measured: it chattered at +-0.02 m/s)."""
    c = GroundContact()
    cost = Cost(q_weight_final=[1.0, 0.0], qd_weight_final=[0.5, 0.0], q_target=[0.5, 0.0], ee_link="foot",
                ee_target=[0.3, 0.0, 0.0], ee_weight=1.0)
    system = ArticulatedSystem(model, dt=DT, contact=c, cost=cost, segment=50,
                               q0=[0.0, resting_height(30.0 + M_FOOT * G, c)], qd0=[0.4, 0.0])
    ro = Rollout(system, steps, StoreAll())
    rng = np.random.default_rng(0)
    ro.set_controls(tau=np.stack([0.1 * rng.normal(size=steps), -30.0 + rng.normal(size=steps)], axis=1)[:, None, :])
    return ro


def test_pressed_foot_sticks_and_its_gradient_matches_central_differences(model):
    ro = pressed_foot(model)
    ro.forward()
    v = ro.trajectory("qd")[:, 0, 0]
    assert v[0] == 0.4 and np.abs(v[-50:]).max() < 1e-3   # stuck (up to a creep under the 0.1 N pushes)
    assert np.all(ro.trajectory("q")[:, 0, 1] < 0.05)     # in contact throughout
    obj = Objective(ro, ["mass", "tau", "q", "qd"])
    report = gradcheck(obj, obj.x0(), rtol=1e-5, entries=12, directions=2)
    assert report.ok, str(report)
    assert max(abs(r.reverse) for r in report.rows) > 1e-6


def box(corners):
    """A free 1 kg cube of side 0.2 m with contact points at its 4 bottom corners, or all 8."""
    rb = RobotBuilder("box", floating_base=True)
    a = 0.1
    rb.add_link("box", mass=1.0, inertia=np.eye(3) * 1.0 * 2 * (2 * a) ** 2 / 12)
    for sx in (-a, a):
        for sy in (-a, a):
            for sz in (-a, a)[:corners // 4]:
                rb.add_contact_point("box", (sx, sy, sz))
    return rb.finalize()


def test_a_sliding_box_stops_and_its_idle_corners_do_not_weaken_friction():
    """A cube launched at 1 m/s on its face: the cap is shared among the corners by their
    normal forces, so the 4 top corners of a URDF-style 8-corner box (which never touch) change
    nothing. It stops 7 % beyond v0^2 / (2 mu g): the cap's tangential mass is a conservative
    bound (the cube alone as a free body, 1/m + |r|^2 / I_min), and the regularisation weakens
    friction below a few times the raised slip speed (about 0.17 m/s here)."""
    c = GroundContact()
    out = []
    for corners in (4, 8):
        q0 = [0.0, 0.0, 0.1 - 9.81 / 4 / c.stiffness - c.onset_depth / 2, 1.0, 0.0, 0.0, 0.0]
        ro = Rollout(ArticulatedSystem(box(corners), dt=DT, contact=c, q0=q0, qd0=[0, 0, 0, 1.0, 0, 0]), 300)
        ro.forward()
        out.append((ro.trajectory("q")[:, 0, 0], ro.trajectory("qd")[:, 0, 3]))
    np.testing.assert_allclose(out[1][0], out[0][0], rtol=0, atol=1e-12)
    x, v = out[0]
    assert abs(v[-1]) < 1e-4
    assert x[-1] / (1.0 / (2 * c.friction * G)) == pytest.approx(1.067, abs=0.02)



SEGMENTS_SCRIPT = """
import diffsim, json, numpy as np
diffsim.init(threads={threads})
from diffsim import Objective, Rollout, StoreAll
from diffsim.articulated import ArticulatedSystem, Cost, GroundContact, RobotBuilder
rb = RobotBuilder("puck")
rb.add_link("world")
rb.add_link("carriage", mass=0.5, inertia=np.eye(3) * 1e-3)
rb.add_link("foot", mass=1.0, inertia=np.eye(3) * 1e-3)
rb.add_joint("slide_x", "prismatic", "world", "carriage", axis=(1, 0, 0))
rb.add_joint("slide_z", "prismatic", "carriage", "foot", axis=(0, 0, 1))
rb.add_contact_point("foot", (0, 0, -0.05))
model = rb.finalize()
out = []
for segment in (50, 150):
    system = ArticulatedSystem(model, dt=0.002, contact=GroundContact(friction=0.0), segment=segment,
                               cost=Cost(q_weight_final=[1.0, 0.0], qd_weight_final=[0.5, 0.0], q_target=[0.5, 0.0]),
                               q0=[0.0, 0.04], qd0=[0.4, 0.0])
    assert system.step_kernel == "small"
    ro = Rollout(system, 150, StoreAll())
    rng = np.random.default_rng(0)
    ro.set_controls(tau=np.stack([0.1 * rng.normal(size=150), -30.0 + rng.normal(size=150)], axis=1)[:, None, :])
    objective = Objective(ro, ["tau"])
    out.append(objective(objective.x0())[1].tolist())
print(json.dumps(out))
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_segment_boundaries_pass_the_state_adjoint_exactly(threads):
    """A foot pressed on the ground on two slides: the gradient through 3 fused segments equals
    the one-segment gradient. The small kernel's friction built a ti.Vector from its locals, and
    Taichi 1.7.4's lean adjoint then added garbage to the state adjoints at each segment's first
    step: dL/dtau_x 0.054 (2 threads) or 0.158 (1 thread) against 2.3e-4, the last segment's
    exact (seen in a fresh interpreter as here; inside pytest's workers the garbage was zero)."""
    import json

    from conftest import run_python

    proc = run_python(SEGMENTS_SCRIPT.format(threads=threads))
    assert proc.returncode == 0, proc.stderr[-2000:]
    fused, whole = (np.array(g) for g in json.loads(proc.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(fused, whole, rtol=1e-12, atol=1e-15 * np.abs(whole).max())
    assert whole[2] == pytest.approx(2.331901e-04, rel=1e-6)   # dL/dtau_x at step 1: central differences
