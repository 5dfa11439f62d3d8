"""Articulated robots: kinematic trees, Featherstone's algorithms on Taichi, and a tape System.

- :mod:`.model`: ``RobotBuilder`` -> ``Model`` (links, revolute/prismatic/ball/fixed joints, a free root, inertias,
  damping, armature, soft limits, contact points), ``planar_arm`` and ``cartpole``.
- :mod:`.mjcf`: ``load_mjcf`` (the common MJCF subset, parsed here).
- :mod:`.urdf`: ``load_urdf`` (the common URDF subset; ``<collision>`` primitives as contact geometry).
- :mod:`.dynamics`: batched ``body_poses``, ``link_pose``, ``point_position``,
  ``point_jacobian``, ``rnea``, ``crba``, ``aba`` on Taichi kernels; ``GroundContact``.
- :mod:`.system`: ``ArticulatedSystem`` (B robots, semi-implicit Euler or, ``Integrator``, implicit
  joint damping or classic RK4 for fast motion; fused segments) and
  its ``Cost`` (a :class:`diffsim.costs.Cost`; other costs of that protocol add to it).
- :mod:`.limits`: soft joint limits stable at any dt (``soft_limit_gains``, ``LimitGains``):
  gains from each joint's inertia and dt, stops linearly implicit in their joint.
- :mod:`.reference`: NumPy versions of the same algorithms (6x6 matrices), for tests.
- :mod:`.spatial`: spatial vector algebra (Featherstone's notation).
- :mod:`.plotting`: pictures of robots in the x-z plane: ``animate_planar`` (a GIF of the
  skeleton), ``plot_trajectories`` (joint angles and torques), ``skeleton`` (link positions).

The root link is welded to the world, or moves on a free joint (``floating_base=True``).
"""

from .dynamics import (
                       GroundContact,
                       aba,
                       body_poses,
                       crba,
                       link_pose,
                       point_jacobian,
                       point_position,
                       rnea,
)
from .limits import LimitGains, soft_limit_gains
from .mjcf import load_mjcf
from .model import (
                       BALL,
                       FREE,
                       PRISMATIC,
                       REVOLUTE,
                       Model,
                       RobotBuilder,
                       cartpole,
                       planar_arm,
                       rod_inertia,
)
from .plotting import animate_planar, plot_trajectories, skeleton
from .system import ArticulatedSystem, Cost, DeepStartWarning, Integrator
from .urdf import load_urdf

__all__ = [
                       "BALL",
                       "FREE",
                       "PRISMATIC",
                       "REVOLUTE",
                       "ArticulatedSystem", "DeepStartWarning",
                       "Cost",
                       "GroundContact",
                       "Integrator",
                       "LimitGains",
                       "Model",
                       "RobotBuilder",
                       "aba",
                       "animate_planar",
                       "body_poses",
                       "cartpole",
                       "crba",
                       "link_pose",
                       "load_mjcf",
                       "load_urdf",
                       "planar_arm",
                       "plot_trajectories",
                       "point_jacobian",
                       "point_position",
                       "rnea",
                       "rod_inertia",
                       "skeleton",
                       "soft_limit_gains",
]
