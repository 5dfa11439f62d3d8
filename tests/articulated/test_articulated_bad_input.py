"""Bad input on the articulated public API: each case is a ConfigError that names the input and
the fix (never a raw TypeError, an inf from aba(), or a silently wrong robot)."""

import pathlib

import numpy as np
import pytest

from diffsim.articulated import (
    ArticulatedSystem,
    Cost,
    GroundContact,
    RobotBuilder,
    aba,
    crba,
    load_urdf,
    planar_arm,
)
from diffsim.errors import ConfigError

ROD = np.diag([1e-4, 0.01, 0.01])


def one_link(inertia=ROD, com=(0.2, 0.0, 0.0), armature=0.0, mass=1.0):
    rb = RobotBuilder("one")
    rb.add_link("base")
    rb.add_link("arm", mass=mass, com=com, inertia=inertia)
    rb.add_joint("hinge", "revolute", "base", "arm", axis=(0, 1, 0), armature=armature)
    return rb.finalize()


def urdf(ixx, iyy, izz, xyz="0.2 0 0", ixy=0.0):
    return f"""<robot name="r"><link name="base"/>
      <link name="arm"><inertial><origin xyz="{xyz}"/><mass value="1"/>
        <inertia ixx="{ixx}" ixy="{ixy}" ixz="0" iyy="{iyy}" iyz="0" izz="{izz}"/></inertial></link>
      <joint name="hinge" type="revolute"><parent link="base"/><child link="arm"/><axis xyz="0 1 0"/>
        <limit lower="-1" upper="1" effort="5" velocity="1"/></joint></robot>"""


@pytest.mark.parametrize("inertia, words", [
    (np.diag([0.05, 0.01, 0.01]), "triangle inequality"),          # 0.05 > 0.01 + 0.01
    (np.diag([-0.01, 0.01, 0.01]), "negative principal moment"),
    ([0.01, 0.01, 0.01, 0.02, 0.0, 0.0], "negative principal moment"),  # ixy too large: indefinite
])
def test_unphysical_inertia_is_named(inertia, words):
    with pytest.raises(ConfigError, match=f"link 'arm'.*{words}"):
        one_link(inertia)


def test_degenerate_but_physical_inertias_load():
    """A thin rod (one zero moment, triangle met with equality) and a point mass off the axis
    are physical limits: they load, and the dynamics are finite."""
    for inertia, com in ((np.diag([0.0, 0.01, 0.01]), (0.2, 0, 0)), (None, (0.2, 0, 0))):
        model = one_link(inertia, com)
        assert crba(model, [0.0])[0, 0] == pytest.approx(0.04 + (0.01 if inertia is not None else 0.0))


def test_urdf_triangle_inequality_names_the_link():
    assert load_urdf(urdf(0.01, 0.01, 0.015)).nb == 1
    with pytest.raises(ConfigError, match="link 'arm'.*triangle inequality.*0.05"):
        load_urdf(urdf(0.01, 0.01, 0.05))


def test_point_mass_on_its_joint_axis_is_named_and_armature_fixes_it():
    """Zero inertia about the axis would make aba() divide by zero (it returned inf before)."""
    with pytest.raises(ConfigError, match="joint 'hinge'.*link 'arm'.*no moment of inertia about its axis.*armature"):
        one_link(inertia=None, com=(0.0, 0.0, 0.0))
    with pytest.raises(ConfigError, match="joint 'hinge'"):  # the same from URDF: a rod along the axis
        load_urdf(urdf(0.01, 0.0, 0.01, xyz="0 0.1 0"))
    model = one_link(inertia=None, com=(0.0, 0.0, 0.0), armature=0.01)
    assert crba(model, [0.0])[0, 0] == pytest.approx(0.01)


def test_fitted_inertia_must_stay_physical():
    arm = planar_arm(2)
    bad = np.tile([1.0, 0.1, 0.1, 0.0, 0.0, 0.0], (2, 1))
    with pytest.raises(ConfigError, match="parameter 'inertia' of body 0 \\('link0'\\).*triangle"):
        ArticulatedSystem(arm, params={"inertia": bad})
    with pytest.raises(ConfigError, match="parameter 'inertia'.*triangle"):
        aba(arm, [0, 0], [0, 0], [0, 0], params={"inertia": bad})


def test_load_urdf_takes_paths(tmp_path):
    path = tmp_path / "arm.urdf"
    path.write_text(urdf(0.01, 0.01, 0.015))
    for source in (path, str(path), pathlib.PurePath(path)):
        assert load_urdf(source).joint_names == ("hinge",)
    with pytest.raises(ConfigError, match="XML text .* or a path"):
        load_urdf(123)
    with pytest.raises(ConfigError, match="neither XML text nor an existing file"):
        load_urdf(tmp_path)   # a directory
    with pytest.raises(ConfigError, match="neither XML text nor an existing file"):
        load_urdf("")


@pytest.mark.parametrize("call, words", [
    (lambda rb: rb.add_link("x", mass="1"), "link 'x' mass .* must be a number"),
    (lambda rb: rb.add_link("x", mass=np.nan), "link 'x' mass .* must be finite"),
    (lambda rb: rb.add_link("x", inertia="big"), "link 'x': inertia must be"),
    (lambda rb: rb.add_link("x", com=(0, 0)), "com must be 3 finite numbers"),
    (lambda rb: rb.add_joint("j", "revolute", "a", "b", lower=np.nan), "joint 'j' lower limit must be finite"),
    (lambda rb: rb.add_joint("j", "revolute", "a", "b", damping=None), "joint 'j' damping .* must be a number"),
    (lambda rb: rb.add_joint("j", "revolute", "a", "b", effort=-1), "joint 'j': effort limit -1.0 must be > 0"),
    (lambda rb: rb.add_joint("j", "revolute", "a", "b", armature=-1), "joint 'j'.*armature .* must be >= 0"),
    (lambda rb: rb.add_joint("j", "floating", "a", "b"), "type 'floating' is not supported"),
])
def test_builder_inputs(call, words):
    rb = RobotBuilder()
    rb.add_link("a")
    rb.add_link("b", mass=1.0, com=(0.1, 0, 0), inertia=ROD)
    with pytest.raises(ConfigError, match=words):
        call(rb)


@pytest.mark.parametrize("kwargs, words", [
    ({"n": 2.5}, "n .* must be a whole number"),
    ({"n": True}, "n .* must be a whole number"),
    ({"n": 2, "lengths": [1, 2, 3]}, "lengths .* one finite number or 2"),
    ({"n": 2, "lengths": -0.3}, "lengths must be > 0"),
    ({"n": 2, "masses": [1j, 1]}, "masses .* real numbers"),
])
def test_planar_arm_inputs(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        planar_arm(**kwargs)


ARM = None


def arm():
    global ARM
    ARM = ARM or planar_arm(2)
    return ARM


@pytest.mark.parametrize("kwargs, words", [
    ({"dt": float("inf")}, "dt .* must be finite"),
    ({"dt": "0.01"}, "dt .* must be a number"),
    ({"dt": 0.0}, "dt .* must be > 0"),
    ({"segment": 2.5}, "segment .* whole number"),
    ({"segment": "a"}, "segment .* whole number"),
    ({"batch": True}, "batch .* whole number"),
    ({"batch": 0}, "batch .* whole number"),
    ({"q0": [1j, 0.0]}, "q0 must be real"),
    ({"q0": ["a", 0.0]}, "q0 must be numbers"),
    ({"qd0": [np.nan, 0.0]}, "qd0 must be finite"),
    ({"contact": "floor"}, "contact must be a GroundContact"),
    ({"cost": "reach"}, "is not a cost"),
    ({"cost": Cost(effort=-1.0)}, "Cost.effort must be >= 0"),
    ({"cost": Cost(effort=np.nan)}, "Cost.effort must be finite"),
    ({"cost": Cost(q_weight=[1.0, -1.0])}, "Cost.q_weight must be >= 0"),
    ({"cost": Cost(ee_link="hand")}, "unknown link 'hand'"),
    ({"params": {"mass": [1.0, 0.0]}}, "mass of body 1 \\('link1'\\).* must be > 0"),
    ({"params": {"masses": 1.0}}, "unknown parameter 'masses'"),
])
def test_system_inputs(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        ArticulatedSystem(arm(), **kwargs)


@pytest.mark.parametrize("kwargs, words", [
    ({"stiffness": "a"}, "GroundContact.stiffness must be a number"),
    ({"stiffness": 0.0}, "GroundContact.stiffness must be > 0"),
    ({"friction": -0.1}, "GroundContact.friction must be finite and >= 0"),
    ({"height": np.nan}, "GroundContact.height .* must be finite"),
])
def test_ground_contact_inputs(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        GroundContact(**kwargs)


def test_dynamics_inputs():
    with pytest.raises(ConfigError, match="tau must have shape \\(2,\\) or \\(B, 2\\)"):
        aba(arm(), [0, 0], [0, 0], [0, 0, 0])
    with pytest.raises(ConfigError, match="tau must be real"):
        aba(arm(), [0, 0], [0, 0], [1j, 0])
    with pytest.raises(ConfigError, match="model must be a diffsim.articulated Model"):
        ArticulatedSystem("arm.urdf")
