"""MJCF import (the common subset): the same robot written in MJCF and in URDF gives the same
model (mass matrix, gravity torques), with inertia from geometry; a free joint; clear errors."""

import numpy as np
import pytest

from diffsim import Objective, Parameter, Rollout, gradcheck
from diffsim.articulated import ArticulatedSystem, Cost, GroundContact, aba, crba, link_pose, load_mjcf, load_urdf, rnea
from diffsim.errors import ConfigError

MJCF = """<mujoco model="arm">
  <compiler angle="degree"/>
  <option gravity="0 0 -9.81" timestep="0.002"/>
  <worldbody>
    <body name="upper" pos="0 0 0.1">
      <joint name="shoulder" type="hinge" axis="0 1 0" range="-90 90" damping="0.1"/>
      <inertial pos="0.2 0 0" mass="1.5" diaginertia="0.001 0.02 0.02"/>
      <body name="fore" pos="0.4 0 0" euler="0 0 30">
        <joint name="elbow" type="hinge" axis="0 0 1" pos="0.05 0 0" armature="0.01"/>
        <geom type="box" size="0.15 0.02 0.01" pos="0.2 0 0"/>
        <body name="slider" pos="0.35 0 0">
          <joint name="slide" type="slide" axis="1 0 0"/>
          <geom type="sphere" size="0.03"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator><motor joint="shoulder" gear="2" ctrlrange="-5 5"/><motor joint="elbow" ctrlrange="-1 1"/></actuator>
</mujoco>"""


def urdf():
    mb = 1000 * 0.3 * 0.04 * 0.02
    a, b, c = 0.3, 0.04, 0.02
    box = np.array([b * b + c * c, a * a + c * c, a * a + b * b]) * mb / 12
    ms = 1000 * 4 / 3 * np.pi * 0.03 ** 3
    isph = 0.4 * ms * 0.03 ** 2
    return f"""<robot name="arm"><link name="world"/>
      <link name="upper"><inertial><origin xyz="0.2 0 0"/><mass value="1.5"/>
        <inertia ixx="0.001" iyy="0.02" izz="0.02" ixy="0" ixz="0" iyz="0"/></inertial></link>
      <link name="fore"><inertial><origin xyz="0.15 0 0"/><mass value="{mb}"/>
        <inertia ixx="{box[0]}" iyy="{box[1]}" izz="{box[2]}" ixy="0" ixz="0" iyz="0"/></inertial></link>
      <link name="slider"><inertial><mass value="{ms}"/>
        <inertia ixx="{isph}" iyy="{isph}" izz="{isph}" ixy="0" ixz="0" iyz="0"/></inertial></link>
      <joint name="shoulder" type="revolute"><parent link="world"/><child link="upper"/>
        <origin xyz="0 0 0.1"/><axis xyz="0 1 0"/><limit lower="-1.5707963267948966" upper="1.5707963267948966"
        effort="10" velocity="1"/><dynamics damping="0.1"/></joint>
      <joint name="elbow" type="revolute"><parent link="upper"/><child link="fore"/>
        <origin xyz="{0.4 + 0.05 * np.cos(np.pi / 6)} {0.05 * np.sin(np.pi / 6)} 0" rpy="0 0 {np.pi / 6}"/>
        <axis xyz="0 0 1"/></joint>
      <joint name="slide" type="prismatic"><parent link="fore"/><child link="slider"/>
        <origin xyz="0.3 0 0"/><axis xyz="1 0 0"/></joint></robot>"""


def test_mjcf_and_urdf_of_the_same_robot_give_the_same_mass_matrix():
    m, options = load_mjcf(MJCF)
    u = load_urdf(urdf())
    assert options == {"timestep": 0.002}
    assert m.joint_names == u.joint_names == ("shoulder", "elbow", "slide")
    np.testing.assert_allclose(m.lower[0], -np.pi / 2)
    np.testing.assert_allclose(m.armature, [0.0, 0.01, 0.0])
    rng = np.random.default_rng(0)
    for q in rng.uniform(-1, 1, size=(4, 3)):
        Mm, Mu = crba(m, q), crba(u, q)
        np.testing.assert_allclose(Mm - np.diag(m.armature), Mu, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(rnea(m, q, np.zeros(3), np.zeros(3)), rnea(u, q, np.zeros(3), np.zeros(3)),
                                   rtol=1e-10, atol=1e-12)
    lo, hi = ArticulatedSystem(m).control_limits()["tau"]
    np.testing.assert_allclose(hi[0], [10.0, 1.0, 0.0])   # gear * ctrlrange; the slide has no motor


def test_mjcf_free_joint_and_capsule_inertia():
    text = """<mujoco><compiler angle="radian"/><worldbody>
      <body name="torso" pos="0 0 1" quat="1 0 0 0"><freejoint/>
        <geom type="capsule" fromto="0 0 -0.2 0 0 0.2" size="0.05"/>
        <body name="leg" pos="0 0 -0.2"><joint name="hip" axis="0 1 0" range="-1 1"/>
          <geom type="capsule" fromto="0 0 0 0 0 -0.3" size="0.03" mass="0.5"/></body>
      </body></worldbody></mujoco>"""
    m, options = load_mjcf(text)
    assert m.floating and (m.nq, m.nv) == (8, 7)
    np.testing.assert_allclose(options["root_pose"], [0, 0, 1, 1, 0, 0, 0])
    r, h = 0.05, 0.4   # a capsule: cylinder + sphere mass, density 1000
    assert m.mass[0] == pytest.approx(1000 * np.pi * r * r * (h + 4 / 3 * r))
    assert m.mass[1] == pytest.approx(0.5)
    assert m.com[1] == pytest.approx([0, 0, -0.15])
    assert np.linalg.eigvalsh(crba(m, np.r_[0, 0, 1, 1, 0, 0, 0, 0.3])).min() > 0
    c, _ = load_mjcf(text, collisions=True)   # each capsule: its two end spheres
    assert c.contact_body == (0, 0, 1, 1)
    np.testing.assert_allclose(c.contact_radius, [0.05, 0.05, 0.03, 0.03])
    np.testing.assert_allclose(np.sort(c.contact_point[2:, 2]), [-0.3, 0.0], atol=1e-12)


@pytest.mark.parametrize("text, words", [
    ("<robot/>", "root element must be <mujoco>"),
    ("<mujoco><default><default><joint damping='1'/></default></default><worldbody><body name='a'><joint/>"
     "<geom size='0.1'/></body></worldbody></mujoco>", "a nested <default> needs class="),
    ("<mujoco><default><joint damping='1'/></default><worldbody><body name='a' childclass='arm'><joint/>"
     "<geom size='0.1'/></body></worldbody></mujoco>", r"class 'arm' is not a <default> class of this file \(\['main'\]\)"),
    ("<mujoco><worldbody><body name='a'><joint class='leg'/><geom size='0.1'/></body></worldbody></mujoco>",
     "class 'leg' is not a <default> class of this file \\(it has none\\)"),
    ("<mujoco><default><joint frictionloss='0.5'/></default><worldbody><body name='a'><joint/><geom size='0.1'/>"
     "</body></worldbody></mujoco>", r"body 'a' <joint>: frictionloss=\"0.5\" \(dry joint friction\)"),
    ("<mujoco><worldbody><body name='a'><joint type='helical'/><geom size='0.1'/></body></worldbody></mujoco>",
     r"joint type 'helical' is not supported \(hinge, slide, ball, free\)"),
    ("<mujoco><worldbody><body name='a'><joint type='ball' range='0 30'/><geom size='0.1'/></body></worldbody>"
     "</mujoco>", "the ball joint 'a_joint' has a range"),
    ("<mujoco><worldbody><body name='a'><joint/><geom type='mesh'/></body></worldbody></mujoco>",
     "geom type 'mesh' is not supported"),
    ("<mujoco><worldbody><body name='a'><joint/><joint type='ball'/><geom size='0.1'/></body></worldbody>"
     "</mujoco>", r"2 joints in one body \(hinge, ball\) are supported as hinges and slides only"),
    ("<mujoco><worldbody><body name='a' quat='0 0 0 0'><joint/><geom size='0.1'/></body></worldbody></mujoco>",
     "quat='0 0 0 0' is not a rotation"),
    ("<mujoco><option timestep='-0.01'/><worldbody><body name='a'><joint/><geom size='0.1'/></body></worldbody>"
     "</mujoco>", "timestep=-0.01 s must be > 0"),
    ("<mujoco><option timestep='fast'/><worldbody><body name='a'><joint/><geom size='0.1'/></body></worldbody>"
     "</mujoco>", "timestep='fast' is not a list of numbers"),
    ("<mujoco><worldbody><body name='a'><joint name='h'/><geom size='0.1'/></body></worldbody>"
     "<actuator><motor joint='h' ctrlrange='5 -5'/></actuator></mujoco>", "ctrlrange='5 -5' needs lower < upper"),
    ("<mujoco><worldbody><body name='a'><joint name='h'/><geom size='0.1'/></body></worldbody>"
     "<actuator><motor joint='h' gear='two'/></actuator></mujoco>", "gear='two' is not a list of numbers"),
    ("<mujoco><worldbody><body name='a'><joint/><geom type='capsule' size='0.1'/></body></worldbody></mujoco>",
     r"body 'a': a capsule geom needs size=\"radius half-length\" \(m\), got 0.1"),
    ("<mujoco><worldbody><body name='a'><joint/><geom type='box' size='0.1 0.2'/></body></worldbody></mujoco>",
     r"a box geom needs size=\"half-x half-y half-z\" \(m\), got 0.1 0.2"),
    ("<mujoco><worldbody><body name='a'><joint/><geom/></body></worldbody></mujoco>",
     r"a sphere geom needs size=\"radius\" \(m\), got no size"),
    ("<mujoco><worldbody><body name='a'><joint/><geom size='-0.1'/></body></worldbody></mujoco>",
     r"a sphere geom: size \[-0.1\] must be finite and > 0 \(radius, m\)"),
    ("<mujoco><worldbody><body name='a'><joint/><geom type='box' size='0.1 x 0.1'/></body></worldbody></mujoco>",
     "a box geom has size=\"0.1 x 0.1\", which is not numbers"),
    ("<mujoco><worldbody><body name='a'><joint/><geom type='capsule' fromto='0 0 0 0 0 0' size='0.1'/></body>"
     "</worldbody></mujoco>", r"a capsule geom's fromto has equal ends"),
    ("<mujoco><worldbody><body name='a'><joint/><geom type='box' fromto='0 0 0 0 0 1' size='0.1'/></body>"
     "</worldbody></mujoco>", "fromto is for capsules and cylinders, not a box"),
    ("<mujoco><option density='1.2' viscosity='1e-5'/><worldbody><body name='a'><joint/><geom size='0.1'/>"
     "</body></worldbody></mujoco>", r"MJCF <option>: density=\"1.2\" \(the medium's density \(fluid forces\)\)"),
    ("<mujoco><compiler inertiafromgeom='true'/><worldbody><body name='a'><joint/><geom size='0.1'/></body>"
     "</worldbody></mujoco>", r"inertiafromgeom=\"true\" \(geoms' inertia replacing every <inertial>\)"),
    ("<mujoco><compiler settotalmass='20'/><worldbody><body name='a'><joint/><geom size='0.1'/></body>"
     "</worldbody></mujoco>", r"settotalmass=\"20\" \(masses rescaled to a total\) is not supported"),
    ("<mujoco><option wind='0 2 0'/><worldbody><body name='a'><joint/><geom size='0.1'/></body>"
     "</worldbody></mujoco>", r"wind=\"0 2 0\" \(wind"),
])
def test_mjcf_errors_name_the_problem(text, words):
    with pytest.raises(ConfigError, match=words):
        load_mjcf(text)


@pytest.mark.parametrize("quat", ["1 0 0 0", "0 0 0 1", "0 1 0 0", "0.001 0 1 0", "0.5 -0.5 0.5 0.5", "-0.6 0 0.8 0"])
def test_a_turned_floating_base_starts_at_the_files_orientation(quat):
    """The root pose's quaternion gives back the file's rotation, half turns included (a
    quaternion taken from the matrix through 1 + trace alone degenerates there)."""
    text = (f"<mujoco><worldbody><body name='torso' pos='0.1 0.2 1' quat='{quat}'><freejoint/>"
            "<geom size='0.1'/></body></worldbody></mujoco>")
    _, options = load_mjcf(text)
    q = np.array(quat.split(), dtype=float)
    q /= np.linalg.norm(q)
    got = options["root_pose"]
    np.testing.assert_allclose(got[:3], [0.1, 0.2, 1.0])
    assert np.linalg.norm(got[3:]) == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(abs(got[3:] @ q), 1.0, atol=1e-14)   # the same rotation (q and -q)


def test_every_geom_type_becomes_contact_geometry_with_its_mujoco_size():
    """MuJoCo reads only the sizes a geom type needs: a sphere's one radius, a fromto capsule's
    radius (extra values ignored). With collisions=True a one-number sphere used to raise an
    IndexError (the capsule's and box's sizes were read for every geom)."""
    text = """<mujoco><worldbody><body name="a"><joint axis="0 1 0"/>
        <geom type="sphere" size="0.05" pos="0 0 -0.5"/>
        <geom type="capsule" fromto="0 0 0 0.2 0 0" size="0.02 9"/>
        <geom type="box" size="0.1 0.05 0.02" pos="0 0 0.3"/>
        <geom type="cylinder" size="0.03 0.1" pos="0.5 0 0"/></body></worldbody></mujoco>"""
    m, _ = load_mjcf(text, collisions=True)
    r = m.contact_radius
    assert len(r) == 1 + 2 + 8 + 16 and r[0] == 0.05 and list(r[1:3]) == [0.02, 0.02] and not np.any(r[3:])
    np.testing.assert_allclose(m.contact_point[0], [0, 0, -0.5])
    np.testing.assert_allclose(m.contact_point[1:3], [[0, 0, 0], [0.2, 0, 0]], atol=1e-15)
    box = m.contact_point[3:11]   # the 8 corners of the box of half-sizes 0.1, 0.05, 0.02 at z = 0.3
    np.testing.assert_allclose(np.abs(box[:, :2]), np.tile([0.1, 0.05], (8, 1)), atol=1e-15)
    np.testing.assert_allclose(np.sort(box[:, 2]), [0.28] * 4 + [0.32] * 4, atol=1e-15)
    rim = m.contact_point[11:]   # cylinder: 8 points on each rim circle of radius 0.03, at z = +-0.1
    np.testing.assert_allclose(np.hypot(rim[:, 0] - 0.5, rim[:, 1]), 0.03, atol=1e-15)
    np.testing.assert_allclose(np.sort(rim[:, 2]), [-0.1] * 8 + [0.1] * 8, atol=1e-15)


def test_a_floating_base_starts_where_the_file_puts_it():
    """MuJoCo's qpos0: a system built from an MJCF model starts its free root at the file's
    ``<body pos quat>`` (``model.home``), not at the origin (where a robot standing on the
    floor in the file would start with its feet underground)."""
    text = ("<mujoco><worldbody><body name='torso' pos='0.1 0.2 0.7' quat='0 0 0 1'><freejoint/>"
            "<geom size='0.1'/><body name='leg' pos='0 0 -0.2'><joint axis='0 1 0'/>"
            "<geom type='capsule' fromto='0 0 0 0 0 -0.3' size='0.03'/></body></body></worldbody></mujoco>")
    m, options = load_mjcf(text)
    np.testing.assert_array_equal(m.home, np.r_[options["root_pose"], 0.0])
    np.testing.assert_array_equal(m.initial_configuration(), m.home)
    np.testing.assert_array_equal(ArticulatedSystem(m, dt=1e-3).initial_state()["q"], [m.home])
    q = np.zeros(m.nq)
    q[3] = 1.0
    np.testing.assert_array_equal(ArticulatedSystem(m, dt=1e-3, q0=q).initial_state()["q"], [q])
    fixed, _ = load_mjcf(MJCF)   # a fixed base has no home: its joints at 0 are the file's pose
    assert fixed.home is None and not np.any(fixed.initial_configuration())


def test_a_joint_ref_is_the_files_pose_and_home():
    """MuJoCo's ``ref`` is the joint's coordinate in the file's pose (qpos0): read past, a hinge
    with ref 30 degrees started 30 degrees away from where the file draws it, its range shifted
    with it. Here the same arm with ref on the shoulder (hinge) and the slide puts every link
    where the arm without ref puts it, at its home; and q moves the joints by q - ref."""
    with_ref = MJCF.replace('range="-90 90" damping="0.1"/>', 'range="-90 90" damping="0.1" ref="30"/>').replace(
        '<joint name="slide" type="slide" axis="1 0 0"/>', '<joint name="slide" type="slide" axis="1 0 0" ref="0.07"/>')
    plain, _ = load_mjcf(MJCF)
    model, _ = load_mjcf(with_ref)
    np.testing.assert_allclose(model.home, [np.pi / 6, 0.0, 0.07], rtol=0, atol=1e-15)
    np.testing.assert_allclose(model.initial_configuration(), model.home)
    assert plain.home is None and model.lower[0] == pytest.approx(-np.pi / 2)  # the range keeps its coordinates
    for q in ([0.0, 0.0, 0.0], [0.4, -0.3, 0.05]):
        shifted = np.asarray(q) + model.home
        for link in ("upper", "fore", "slider"):
            r0, p0 = link_pose(plain, np.asarray(q), link)
            r1, p1 = link_pose(model, shifted, link)
            np.testing.assert_allclose(p1, p0, rtol=0, atol=1e-14)
            np.testing.assert_allclose(r1, r0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(crba(model, model.home), crba(plain, np.zeros(3)), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("attribute, words", [
    ('stiffness="50"', r'stiffness="50" \(a joint spring\) is not supported'),
    ('frictionloss="0.2"', r'frictionloss="0.2" \(dry joint friction\) is not supported'),
    ('dampng="0.1"', r'attribute dampng="0.1" is not read by this loader \(it reads \[.*\'damping\''),
])
def test_a_joint_attribute_that_would_change_the_dynamics_is_named(attribute, words):
    """Read past, a joint spring, dry friction or a misspelt damping left other dynamics than the
    file's, silently; their neutral values, names, looks and MuJoCo's limit softness are read past."""
    with pytest.raises(ConfigError, match=r"MJCF body 'upper' <joint>: " + words):
        load_mjcf(MJCF.replace('damping="0.1"/>', f'damping="0.1" {attribute}/>'))
    load_mjcf(MJCF.replace('damping="0.1"/>', 'damping="0.1" stiffness="0" rgba="1 0 0 1" solreflimit="0.02 1"/>'))


def test_a_visual_geom_is_not_contact_geometry():
    """contype="0" conaffinity="0": MuJoCo pairs the geom with nothing, the floor included; it
    still counts in the body's mass, as in MuJoCo."""
    visual = MJCF.replace('<geom type="sphere" size="0.03"/>', '<geom type="sphere" size="0.03" contype="0" '
                                                                'conaffinity="0"/>')
    touching, _ = load_mjcf(MJCF, collisions=True)
    seen, _ = load_mjcf(visual, collisions=True)
    assert len(seen.contact_point) == len(touching.contact_point) - 1
    np.testing.assert_allclose(crba(seen, np.zeros(3)), crba(touching, np.zeros(3)), rtol=0, atol=0)


DEFAULTS = """<mujoco model="arm">
  <compiler angle="degree"/>
  <option gravity="0 0 -9.81" timestep="0.002"/>
  <default>
    <joint type="hinge" damping="0.1"/>
    <geom type="box" rgba="0.8 0.6 0.4 1" contype="1" conaffinity="1" friction="1 0.005 0.0001"/>
    <motor ctrlrange="-1 1"/>
    <default class="shoulder">
      <joint axis="0 1 0" range="-90 90"/>
      <motor gear="2" ctrlrange="-5 5"/>
    </default>
    <default class="forearm">
      <joint axis="0 0 1" damping="0" armature="0.01"/>
      <default class="ball"><geom type="sphere" size="0.03"/></default>
    </default>
  </default>
  <worldbody>
    <geom name="floor" type="plane" size="2 2 0.1"/>
    <body name="upper" pos="0 0 0.1">
      <joint name="shoulder" class="shoulder"/>
      <inertial pos="0.2 0 0" mass="1.5" diaginertia="0.001 0.02 0.02"/>
      <body name="fore" pos="0.4 0 0" euler="0 0 30" childclass="forearm">
        <joint name="elbow" pos="0.05 0 0"/>
        <geom size="0.15 0.02 0.01" pos="0.2 0 0"/>
        <body name="slider" pos="0.35 0 0">
          <joint name="slide" type="slide" axis="1 0 0" armature="0"/>
          <geom class="ball"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator><motor joint="shoulder" class="shoulder"/><motor joint="elbow"/></actuator>
</mujoco>"""


def test_default_classes_give_the_model_written_out():
    """The arm of MJCF written with nested <default> classes (class, childclass, an actuator
    class, an attribute given on the element winning over its class) is the arm written out:
    same mass matrix, damping, armature, limits and effort limits. <default> was refused."""
    model, options = load_mjcf(DEFAULTS)
    plain, _ = load_mjcf(MJCF)
    q = np.array([0.3, -0.5, 0.05])
    np.testing.assert_array_equal(crba(model, q), crba(plain, q))
    for name in ("damping", "armature", "lower", "upper", "effort"):
        np.testing.assert_array_equal(getattr(model, name), getattr(plain, name), err_msg=name)
    assert options == {"timestep": 0.002, "ground": {"height": 0.0, "friction": 1.0}}  # the world's plane geom


PLANAR = """<mujoco model="planar">
  <worldbody>
    <body name="torso" pos="0 0 1">
      <joint name="rootx" type="slide" axis="1 0 0"/>
      <joint name="rootz" type="slide" axis="0 0 1" pos="0 0 0.1"/>
      <joint name="rooty" type="hinge" axis="0 1 0" pos="0.05 0 0"/>
      <geom type="capsule" fromto="0.1 0 -0.1 0.1 0 0.3" size="0.05"/>
      <body name="leg" pos="0.1 0 -0.1">
        <joint name="hip" type="hinge" axis="0 1 0"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.4" size="0.04"/>
      </body>
    </body>
  </worldbody>
  <actuator><motor joint="hip" ctrlrange="-1 1"/></actuator>
</mujoco>"""


NESTED = """<mujoco model="planar, written out">
  <worldbody>
    <body name="carriage_x" pos="0 0 1">
      <joint name="rootx" type="slide" axis="1 0 0"/>
      <body name="carriage_z" pos="0 0 0.1">
        <joint name="rootz" type="slide" axis="0 0 1"/>
        <body name="torso" pos="0.05 0 -0.1">
          <joint name="rooty" type="hinge" axis="0 1 0"/>
          <geom type="capsule" fromto="0.05 0 -0.1 0.05 0 0.3" size="0.05"/>
          <body name="leg" pos="0.05 0 -0.1">
            <joint name="hip" type="hinge" axis="0 1 0"/>
            <geom type="capsule" fromto="0 0 0 0 0 -0.4" size="0.04"/>
          </body>
        </body>
      </body>
    </body>
  </worldbody>
</mujoco>"""

def test_several_joints_in_one_body_act_in_order_as_mujoco_composes_them():
    """A planar root as MuJoCo files write it, x, z and pitch joints in one body (each at its own
    pos), was refused. It is the chain of massless frames it stands for: the same robot as the
    three nested bodies written out, and in free fall (no torques) the body drops at g without
    turning, whatever its pitch and wherever its joints sit."""
    model, _ = load_mjcf(PLANAR)
    nested, _ = load_mjcf(NESTED)
    assert model.joint_names == ("rootx", "rootz", "rooty", "hip") == nested.joint_names
    assert list(model.actuated) == [False, False, False, True]
    rng = np.random.default_rng(3)
    for q in ([0.0, 0.0, 0.0, 0.0], [0.3, -0.2, 0.7, -0.4], rng.normal(size=4)):
        q = np.asarray(q, dtype=float)
        np.testing.assert_allclose(crba(model, q), crba(nested, q), rtol=0, atol=1e-13)
        qdd = aba(model, q, np.zeros(4), np.zeros(4))
        np.testing.assert_allclose(qdd, [0.0, -9.81, 0.0, 0.0], rtol=0, atol=1e-11)
    system = ArticulatedSystem(model, dt=1e-3, q0=[0.0, 0.0, 0.7, -0.4])  # the step kernels, massless frames and all
    q = system.simulate(100)["q"][-1, 0]  # (steps + 1, robots, nq)
    np.testing.assert_allclose(q, [0.0, -9.81 * 1e-6 * 100 * 101 / 2, 0.7, -0.4], rtol=0, atol=1e-12)


def test_the_floor_is_read_and_other_static_geometry_is_named():
    """The world's horizontal plane is the floor: its height and MuJoCo's friction for a contact
    (the larger of the two geoms') come back for GroundContact; with collisions=True a ramp or a
    box in the world, which the ground contact would let the robot pass through, is refused."""
    world = '<geom name="floor" type="plane" pos="0 0 -0.3" size="5 5 0.1" friction="0.7 0.01 0.001"/>'
    text = PLANAR.replace("<worldbody>", "<worldbody>" + world)
    assert load_mjcf(text)[1]["ground"] == {"height": -0.3, "friction": 1.0}  # the robot's geoms: MuJoCo's 1
    grippy = text.replace('size="0.04"/>', 'size="0.04" friction="1.4"/>')
    assert load_mjcf(grippy, collisions=True)[1]["ground"] == {"height": -0.3, "friction": 1.4}
    assert "ground" not in load_mjcf(PLANAR)[1]
    for obstacle in ('<geom name="ramp" type="plane" euler="0 10 0" size="1 1 0.1"/>',
                     '<geom name="step" type="box" pos="1 0 0.05" size="0.2 0.5 0.05"/>'):
        with_obstacle = text.replace("<worldbody>", "<worldbody>" + obstacle)
        name = obstacle.split("'")[0].split('"')[1]
        with pytest.raises(ConfigError, match=rf"static geometry \['{name}'\] besides one horizontal floor"):
            load_mjcf(with_obstacle, collisions=True)
        assert load_mjcf(with_obstacle)[1]["ground"]["height"] == -0.3  # without contacts it changes nothing
        hidden = with_obstacle.replace(obstacle, obstacle.replace("/>", ' contype="0" conaffinity="0"/>'))
        assert load_mjcf(hidden, collisions=True)[1]["ground"]["height"] == -0.3



def test_what_only_sensors_and_tools_read_is_read_past():
    """Menagerie-style files carry <sensor>, <keyframe> and <contact><exclude> (pairs of robot
    geoms, which touch only the ground here): read past, the model is the one without them; a
    <contact><pair> (a contact the file adds) is named."""
    extra = ("<sensor><jointpos joint='shoulder'/></sensor><keyframe><key name='home' qpos='0 0 0'/></keyframe>"
             "<contact><exclude body1='upper' body2='fore'/></contact></mujoco>")
    model, _ = load_mjcf(MJCF.replace("</mujoco>", extra))
    plain, _ = load_mjcf(MJCF)
    np.testing.assert_array_equal(crba(model, np.zeros(3)), crba(plain, np.zeros(3)))
    with pytest.raises(ConfigError, match=r"MJCF <contact>: <pair> is not supported"):
        load_mjcf(MJCF.replace("</mujoco>", "<contact><pair geom1='a' geom2='b'/></contact></mujoco>"))


def test_gradients_through_the_planar_root_and_ground_contact_match_central_differences():
    """The planar robot of one body with three joints lands on its leg (ground contact): the
    gradient of a final-pose cost with respect to every body's mass (the two massless frames
    given 10 g) agrees with central differences."""
    model, _ = load_mjcf(PLANAR, collisions=True)
    system = ArticulatedSystem(model, dt=1e-3, q0=[0.0, -0.44, 0.0, 0.0], contact=GroundContact(),
                               cost=Cost(q_target=[0.1, 0.5, 0.0, 0.0], q_weight_final=1.0))
    rollout = Rollout(system, 200)
    objective = Objective(rollout, [Parameter("mass")])
    q = system.simulate(200)["q"][:, 0]
    assert -0.1 < q[-1, 1] - q[0, 1] < -0.005  # it fell, and the leg held it (in free fall: 0.196 m)
    report = gradcheck(objective, objective.x0() + 0.01, rtol=1e-5)
    assert report.ok, str(report)
