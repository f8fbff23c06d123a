"""Which world objects can the configured gripper grasp at all? The grasp oracle.

The planner (:func:`~langscene_core.query.grasp.planner.plan_grasps`) runs on exact samples of the true
mesh of the object (uniform, ``ORACLE_DENSITY`` per square metre, each with its triangle's outward
normal, so the normals are oriented), with the other objects' exact samples as obstacles and the table
as the support plane: no reconstruction, no relevancy. The object is graspable when one of the grasps
it returns passes the world's checker (:func:`~langscene_core.eval.grasp_check.check_grasp`). An object
the oracle cannot grasp is reported with the reason (too wide, too flat, no grasp the checker accepts)
and is not counted against a reconstruction's answer (:mod:`langscene_core.eval.evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from langscene_core.config import GraspConfig
from langscene_core.eval.grasp_check import check_grasp
from langscene_core.query.grasp.gripper import Gripper
from langscene_core.query.grasp.planner import Support, plan_grasps
from langscene_core.sim.scene import TABLE_ID, World

ORACLE_DENSITY = 60000.0  # exact samples per square metre: about one per 4 mm voxel, the planner's
SEED = 0  # the samples are drawn with a fixed seed: the same world gives the same verdict
UP = np.array([0.0, 0.0, 1.0])  # the world's z (sim.meshes: z up, table top at z = 0)
BOTTOM_M = 0.001  # samples this close to the table top are an object's bottom face: hidden, not graspable


@dataclass(frozen=True)
class OracleVerdict:
    """graspable: a planner grasp on the exact samples passes the checker. reason: "ok" or why not, for
    people ("too wide: ...", "too flat: ...", "no grasp: ..." or the checker's reason for the best grasp).
    grasps: how many the planner returned; valid: how many of them the checker accepts."""

    graspable: bool
    reason: str
    grasps: int
    valid: int


def exact_samples(mesh: o3d.geometry.TriangleMesh, density: float = ORACLE_DENSITY) -> tuple[np.ndarray, np.ndarray]:
    """Uniform samples of a closed outward-oriented mesh, world frame: (points [M, 3], outward unit
    normals [M, 3]) float64, the bottom face on the table (z < ``BOTTOM_M``) left out."""
    o3d.utility.random.seed(SEED)
    count = max(int(mesh.get_surface_area() * density), 10)
    cloud = mesh.sample_points_uniformly(count, use_triangle_normal=True)
    points, normals = np.asarray(cloud.points), np.asarray(cloud.normals)
    keep = points[:, 2] >= BOTTOM_M
    return points[keep], normals[keep]


def _narrowest_width(points: np.ndarray) -> float:
    """Smallest horizontal extent of points [M, 3] over directions 1 degree apart, metres."""
    angles = np.radians(np.arange(180.0))
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # [180, 2]
    along = points[:, :2] @ directions.T  # [M, 180]
    return float(np.min(along.max(axis=0) - along.min(axis=0)))


def oracle_grasp(world: World, name: str, grasp: GraspConfig) -> OracleVerdict:
    """The oracle's verdict on object ``name`` of ``world`` with the gripper and planner settings ``grasp``
    (module docstring). ValueError when the world has no such object."""
    target = world.instance_id(name)
    points, normals = exact_samples(world.meshes[target])
    others = [exact_samples(m)[0] for i, m in enumerate(world.meshes) if i not in (TABLE_ID, target)]
    obstacles = np.concatenate(others) if others else np.zeros((0, 3))
    grasps = plan_grasps(
        points,
        np.ones(len(points)),
        obstacles,
        grasp,
        UP,
        object_normals=normals,
        normals_oriented=True,
        support=Support(normal=UP, offset=0.0),
    )
    gripper = Gripper.from_config(grasp)
    checks = [check_grasp(world, name, g.pose, g.width, gripper) for g in grasps]
    valid = sum(c.valid for c in checks)
    if valid:
        return OracleVerdict(True, "ok", len(grasps), valid)
    if checks:
        return OracleVerdict(False, f"no grasp the checker accepts: best {checks[0].reason}", len(grasps), 0)
    height = float(points[:, 2].max())
    if height <= grasp.collision_margin + grasp.contact_tolerance:
        return OracleVerdict(
            False,
            f"too flat: {height * 100:.1f} cm high, the fingertips keep {grasp.collision_margin * 100:.1f} cm "
            "above the table",
            0,
            0,
        )
    narrowest = _narrowest_width(points)
    reach = gripper.max_width - 2 * grasp.collision_margin
    if narrowest > reach:
        return OracleVerdict(
            False,
            f"too wide: {narrowest * 100:.1f} cm across at its narrowest, the open gripper closes on at most "
            f"{reach * 100:.1f} cm and no thin part (a rim) fits between the fingers",
            0,
            0,
        )
    return OracleVerdict(
        False,
        f"no grasp: {narrowest * 100:.1f} cm across at its narrowest, but no contact pair within the friction "
        f"cone ({np.degrees(gripper.cone_half_angle):.1f} deg) is free of collisions",
        0,
        0,
    )
