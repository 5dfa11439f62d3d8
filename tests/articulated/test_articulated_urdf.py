"""URDF loading: a small robot written here loads into the same model as the builder makes;
unsupported tags and joint types give clear errors."""

import numpy as np
import pytest

from diffsim.articulated import RobotBuilder, aba, crba, load_urdf, point_position
from diffsim.errors import ConfigError

URDF = """<?xml version="1.0"?>
<robot name="two_link">
  <material name="grey"><color rgba="0.5 0.5 0.5 1"/></material>
  <link name="base"/>
  <link name="upper">
    <inertial>
      <origin xyz="0.2 0 0" rpy="0 0 0"/>
      <mass value="1.5"/>
      <inertia ixx="0.001" ixy="0" ixz="0" iyy="0.02" iyz="0" izz="0.02"/>
    </inertial>
    <visual><geometry><box size="0.4 0.05 0.05"/></geometry></visual>
    <collision><geometry><box size="0.4 0.05 0.05"/></geometry></collision>
  </link>
  <link name="slider">
    <inertial>
      <origin xyz="0 0 0.05" rpy="0 0.3 0"/>
      <mass value="0.5"/>
      <inertia ixx="0.002" ixy="0.0001" ixz="0" iyy="0.003" iyz="0" izz="0.0015"/>
    </inertial>
  </link>
  <link name="tool">
    <inertial><mass value="0.2"/><inertia ixx="1e-4" ixy="0" ixz="0" iyy="1e-4" iyz="0" izz="1e-4"/></inertial>
  </link>
  <!-- a shoulder about y, a prismatic slide along the arm, a tool welded at its end -->
  <joint name="shoulder" type="revolute">
    <parent link="base"/><child link="upper"/>
    <origin xyz="0 0 0.1" rpy="0 0 0"/>
    <axis xyz="0 1 0"/>
    <limit lower="-1.5" upper="1.5" effort="20" velocity="3"/>
    <dynamics damping="0.1" friction="0"/>
  </joint>
  <joint name="slide" type="prismatic">
    <parent link="upper"/><child link="slider"/>
    <origin xyz="0.4 0 0" rpy="0 0 0.2"/>
    <axis xyz="1 0 0"/>
    <limit lower="0" upper="0.2" effort="50" velocity="1"/>
  </joint>
  <joint name="weld" type="fixed">
    <parent link="slider"/><child link="tool"/>
    <origin xyz="0.1 0 0"/>
  </joint>
</robot>
"""


def builder_twin():
    from diffsim.articulated.spatial import rpy_matrix
    rb = RobotBuilder("two_link")
    rb.add_link("base")
    rb.add_link("upper", mass=1.5, com=(0.2, 0, 0), inertia=np.diag([0.001, 0.02, 0.02]))
    R = rpy_matrix([0, 0.3, 0])
    I = np.array([[0.002, 0.0001, 0], [0.0001, 0.003, 0], [0, 0, 0.0015]])
    rb.add_link("slider", mass=0.5, com=(0, 0, 0.05), inertia=R @ I @ R.T)
    rb.add_link("tool", mass=0.2, inertia=np.eye(3) * 1e-4)
    rb.add_joint("shoulder", "revolute", "base", "upper", xyz=(0, 0, 0.1), axis=(0, 1, 0), lower=-1.5,
                 upper=1.5, damping=0.1, effort=20)
    rb.add_joint("slide", "prismatic", "upper", "slider", xyz=(0.4, 0, 0), rpy=(0, 0, 0.2), axis=(1, 0, 0),
                 lower=0.0, upper=0.2, effort=50)
    rb.add_joint("weld", "fixed", "slider", "tool", xyz=(0.1, 0, 0))
    return rb.finalize()


def test_urdf_loads_the_same_robot_as_the_builder(tmp_path):
    path = tmp_path / "two_link.urdf"
    path.write_text(URDF)
    model = load_urdf(str(path))
    twin = builder_twin()
    assert model.body_names == ("upper", "slider") and model.joint_names == ("shoulder", "slide")
    assert model.nb == 2 and model.parent == (-1, 0)
    assert np.allclose(model.lower, [-1.5, 0.0]) and np.allclose(model.upper, [1.5, 0.2])
    assert np.allclose(model.effort, [20, 50]) and np.allclose(model.damping, [0.1, 0.0])
    assert np.isclose(model.mass[1], 0.7)  # the welded tool is merged into the slider
    rng = np.random.default_rng(0)
    q = np.stack([rng.uniform(-1, 1, 4), rng.uniform(0, 0.2, 4)], axis=1)
    qd, tau = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    assert np.allclose(aba(model, q, qd, tau), aba(twin, q, qd, tau), atol=1e-12)
    assert np.allclose(crba(model, q), crba(twin, q), atol=1e-14)
    # at q = 0 the tool sits 0.4 + 0.1 (rotated by yaw 0.2) from the shoulder, 0.1 up
    tip = point_position(model, [0.0, 0.0], "tool")
    assert np.allclose(tip, [0.4 + 0.1 * np.cos(0.2), 0.1 * np.sin(0.2), 0.1], atol=1e-14)
    # the same text loads from a string
    assert np.allclose(load_urdf(URDF).mass, model.mass)


def test_unsupported_tags_are_named():
    text = URDF.replace("</robot>", "<sensor name='s'/></robot>")
    with pytest.raises(ConfigError, match="<sensor>"):
        load_urdf(text)
    load_urdf(text, ignore=("sensor",))  # can be read past on request


def test_the_tags_ros_files_carry_for_other_programs_are_read_past():
    """A ROS robot's URDF nearly always has <transmission> and <gazebo>, and joints often have
    <calibration> and <safety_controller>: they were refused (a user needed ignore=...), though
    none changes the rigid-body dynamics. Read past, the model is the one without them."""
    ros = URDF.replace("</robot>", "<transmission name='t'><type>transmission_interface/SimpleTransmission</type>"
                                   "<joint name='shoulder'/></transmission><gazebo reference='upper'>"
                                   "<mu1>0.8</mu1></gazebo></robot>")
    ros = ros.replace('<axis xyz="1 0 0"/>', '<axis xyz="1 0 0"/><calibration rising="0.0"/>'
                                             '<safety_controller soft_lower_limit="0" soft_upper_limit="0.1" '
                                             'k_position="100" k_velocity="10"/>')
    assert ros.count("safety_controller") == 1
    model, plain = load_urdf(ros), load_urdf(URDF)
    q = np.array([0.3, 0.1])
    np.testing.assert_array_equal(crba(model, q), crba(plain, q))
    np.testing.assert_array_equal(model.effort, plain.effort)
    np.testing.assert_array_equal(model.upper, plain.upper)


def test_unsupported_joint_parts_and_types():
    mimic = URDF.replace('<axis xyz="1 0 0"/>', '<axis xyz="1 0 0"/><mimic joint="shoulder"/>')
    with pytest.raises(ConfigError, match=r"joint 'slide'.*<mimic>"):
        load_urdf(mimic)
    floating = URDF.replace('type="prismatic"', 'type="floating"')
    with pytest.raises(ConfigError, match="floating"):
        load_urdf(floating)
    friction = URDF.replace('friction="0"', 'friction="0.3"')
    with pytest.raises(ConfigError, match="friction"):
        load_urdf(friction)


def test_malformed_urdf_errors():
    with pytest.raises(ConfigError, match="well-formed"):
        load_urdf("<robot name='x'><link name='a'></robot>")
    with pytest.raises(ConfigError, match="not defined"):
        load_urdf(URDF.replace('<child link="tool"/>', '<child link="nowhere"/>'))
    with pytest.raises(ConfigError, match="3 numbers"):
        load_urdf(URDF.replace('xyz="0.4 0 0"', 'xyz="0.4 0"'))
    with pytest.raises(ConfigError, match="neither XML text nor an existing file"):
        load_urdf("/no/such/robot.urdf")
    with pytest.raises(ConfigError, match="cycle"):
        load_urdf(URDF.replace('<parent link="base"/><child link="upper"/>',
                               '<parent link="tool"/><child link="upper"/>'))
