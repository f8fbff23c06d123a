"""The parallel-jaw gripper: its geometry and its friction cone. One model, built from ``GraspConfig``, for
the planner (:mod:`langscene_core.query.grasp.planner` and its kernels) and for the checker that grades
answers against the true geometry (:mod:`langscene_core.eval.grasp_check`).

Gripper frame (DESIGN.md section 3, the ``GraspCandidate.msg`` convention): z = approach direction
towards the object, x = closing direction, y = z x x, origin midway between the fingertips. With
opening ``width`` the two fingers are boxes of ``finger_thickness`` (x) by ``finger_width`` (y) by
``finger_depth`` (z) whose inner faces (the pads) sit at x = +-width / 2 and whose tips end at z = 0;
the palm is a box ``palm_depth`` deep right behind them (z from -finger_depth - palm_depth to
-finger_depth) spanning both fingers. The gripper arrives along +z from ``approach_distance`` further
back, so everything it sweeps lies within the boxes of :meth:`Gripper.swept_boxes`.

Friction (Coulomb, coefficient ``friction_coefficient`` = mu): a pad holds a contact without slipping
when the surface normal there lies within the cone of half angle atan(mu) around the closing axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from langscene_core.config import GraspConfig

# Degrees a contact normal may lie beyond the friction cone, atan(mu), when a grasp is graded against a
# world's true meshes (langscene_core.eval.grasp_check; langscene eval and eval-suite grade with it): the
# pad's first ray meets one triangle, and on the world's round meshes (32 segments around: neighbouring
# facets 11.25 degrees apart) that triangle's normal is up to half a facet step off the normal of the
# surface the pad rests on. The planner plans at atan(mu) itself, no tolerance.
CONE_TOLERANCE_DEG = 5.6

# Gripper field -> its GraspConfig key (the names errors report).
CONFIG_KEYS = {
    "max_width": "gripper_max_width",
    "finger_depth": "finger_depth",
    "finger_thickness": "finger_thickness",
    "finger_width": "finger_width",
    "palm_depth": "palm_depth",
    "approach_distance": "approach_distance",
    "friction_coefficient": "friction_coefficient",
}


@dataclass(frozen=True)
class Gripper:
    """A parallel-jaw gripper (module docstring). Lengths in metres, gripper frame.

    max_width: largest opening between the pads. finger_depth: finger length along the approach.
    finger_thickness: along x (closing). finger_width: across, along y. palm_depth: along the approach,
    behind the fingers. approach_distance: how far it travels along +z before closing.
    friction_coefficient: Coulomb mu between pads and objects; the cone's half angle is atan(mu).
    """

    max_width: float
    finger_depth: float
    finger_thickness: float
    finger_width: float
    palm_depth: float
    approach_distance: float
    friction_coefficient: float

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not (value >= 0 if item.name == "approach_distance" else value > 0):
                bound = "non-negative" if item.name == "approach_distance" else "positive"
                raise ValueError(f"grasp.{CONFIG_KEYS[item.name]} must be {bound}, got {value}")

    @classmethod
    def from_config(cls, config: GraspConfig) -> Gripper:
        """The gripper described by the ``grasp`` settings."""
        return cls(**{name: getattr(config, key) for name, key in CONFIG_KEYS.items()})

    @property
    def cone_half_angle(self) -> float:
        """Half angle of the friction cone, radians: atan(mu)."""
        return math.atan(self.friction_coefficient)

    @property
    def cone_cos(self) -> float:
        """Cosine of the friction cone's half angle: a contact holds when cos(normal, closing axis) >= it."""
        return math.cos(self.cone_half_angle)

    def swept_boxes(self, width: float) -> dict[str, np.ndarray]:
        """Fingers and palm at opening ``width`` swept along the approach, as axis-aligned boxes in the
        gripper frame: {"finger +x", "finger -x", "palm"} -> [2, 3] (min, max) corners, metres."""
        half, y = width / 2, self.finger_width / 2
        back = -self.finger_depth - self.approach_distance
        outer = half + self.finger_thickness
        return {
            "finger +x": np.array([[half, -y, back], [outer, y, 0.0]]),
            "finger -x": np.array([[-outer, -y, back], [-half, y, 0.0]]),
            "palm": np.array([[-outer, -y, back - self.palm_depth], [outer, y, -self.finger_depth]]),
        }

    def pregrasp_pose(self, pose: np.ndarray) -> np.ndarray:
        """The pre-grasp of a grasp ``pose`` ([4, 4], any frame): the same orientation, backed off along
        -z (the approach) by ``approach_distance``; the planner's collision check swept the gripper
        from there (:meth:`swept_boxes`), so the straight approach from it is free."""
        pregrasp = np.array(pose, dtype=np.float64)
        pregrasp[:3, 3] -= self.approach_distance * pregrasp[:3, 2]
        return pregrasp
