"""Is a parallel-jaw grasp valid on the true geometry of a world?

The gripper is the planner's own model (:class:`~langscene_core.query.grasp.gripper.Gripper`: frame,
fingers, palm, approach, friction cone), built from the same ``grasp`` settings, so an answer is graded
with the gripper it was planned for. A grasp is valid when, checked in this order:

1. ``0 < width <= gripper.max_width``;
2. nothing collides with the fingers or the palm anywhere along the approach (table, other objects,
   or the target itself, e.g. a finger pushed into it): :meth:`Gripper.swept_boxes`;
3. closing, each finger's first contact is on the target (rays from the finger pads inwards);
4. the contacts are antipodal: each contact normal (of the triangle the pad first touches) lies within
   the gripper's friction cone, atan(mu), of the closing axis, give or take ``cone_tolerance_deg``
   (:data:`~langscene_core.query.grasp.gripper.CONE_TOLERANCE_DEG` by default, the one stated tolerance).

Collision is exact for boxes against triangle meshes: a box edge crossing a triangle (open3d ray
cast), a mesh edge crossing a box (slab test, written here since open3d has no segment-box query), or
the box lying wholly inside a closed mesh (open3d occupancy of its centre).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from langscene_core.geometry.camera import invert_pose
from langscene_core.query.grasp.gripper import CONE_TOLERANCE_DEG, Gripper
from langscene_core.sim.scene import World, build_world
from langscene_core.sim.spec import WorldSpec

PAD_SAMPLES = 5  # contact rays per finger pad along each of y and z


@dataclass(frozen=True)
class GraspCheck:
    """valid: the grasp passes every test; reason: "ok" or the first failed test, for people."""

    valid: bool
    reason: str


def _box_edges(box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 12 edges of an axis-aligned box [2, 3]: (starts [12, 3], end minus start [12, 3])."""
    corners = np.array([[box[i, 0], box[j, 1], box[k, 2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    pairs = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
    starts = corners[[a for a, _ in pairs]]
    return starts, corners[[b for _, b in pairs]] - starts


def _segments_hit_box(p0: np.ndarray, p1: np.ndarray, box: np.ndarray) -> np.ndarray:
    """[E] bool: segment p0[e]-p1[e] ([E, 3] each) meets the axis-aligned box [2, 3] (slab test)."""
    d = p1 - p0
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = (box[0] - p0) / d
        t1 = (box[1] - p0) / d
    parallel = d == 0
    inside_slab = (p0 >= box[0]) & (p0 <= box[1])
    t_enter = np.where(parallel, np.where(inside_slab, -np.inf, np.inf), np.minimum(t0, t1)).max(axis=1)
    t_exit = np.where(parallel, np.where(inside_slab, np.inf, -np.inf), np.maximum(t0, t1)).min(axis=1)
    return (t_enter <= t_exit) & (t_exit >= 0.0) & (t_enter <= 1.0)


def _mesh_edges(mesh: o3d.geometry.TriangleMesh) -> tuple[np.ndarray, np.ndarray]:
    """Unique edges of a mesh as (p0 [E, 3], p1 [E, 3]) world points."""
    t = np.asarray(mesh.triangles)
    edges = np.unique(np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), axis=1), axis=0)
    v = np.asarray(mesh.vertices)
    return v[edges[:, 0]], v[edges[:, 1]]


def _collision(world: World, pose: np.ndarray, boxes: dict[str, np.ndarray]) -> tuple[str, int] | None:
    """(part name, instance id) of the first collision between a gripper box and the world, or None."""
    to_gripper = invert_pose(pose)
    mesh_edges = [_mesh_edges(m) for m in world.meshes]
    for part, box in boxes.items():
        starts, vectors = _box_edges(box)
        rays = np.concatenate([starts @ pose[:3, :3].T + pose[:3, 3], vectors @ pose[:3, :3].T], axis=1)
        hit = world.raycaster.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))
        crossing = hit["t_hit"].numpy() <= 1.0
        if crossing.any():
            return part, int(hit["geometry_ids"].numpy()[crossing][0])
        for instance_id, (p0, p1) in enumerate(mesh_edges):
            local0 = p0 @ to_gripper[:3, :3].T + to_gripper[:3, 3]
            local1 = p1 @ to_gripper[:3, :3].T + to_gripper[:3, 3]
            if _segments_hit_box(local0, local1, box).any():
                return part, instance_id
        centre = (pose[:3, :3] @ box.mean(axis=0) + pose[:3, 3])[None].astype(np.float32)
        if world.raycaster.compute_occupancy(o3d.core.Tensor(centre)).numpy()[0] > 0.5:
            closest = world.raycaster.compute_closest_points(o3d.core.Tensor(centre))
            return part, int(closest["geometry_ids"].numpy()[0])
    return None


def _first_contact(
    world: World, pose: np.ndarray, side: float, width: float, gripper: Gripper
) -> tuple[int, np.ndarray] | None:
    """Closing the finger on side +1 / -1 of x: (instance id, world normal) of its first contact, or None."""
    half_y = gripper.finger_width / 2
    y, z = np.meshgrid(np.linspace(-half_y, half_y, PAD_SAMPLES), np.linspace(-gripper.finger_depth, 0.0, PAD_SAMPLES))
    starts = np.stack([np.full(y.size, side * width / 2), y.ravel(), z.ravel()], axis=1)
    direction = np.array([-side * width, 0.0, 0.0])  # t in [0, 1] spans the whole opening
    rays = np.concatenate(
        [starts @ pose[:3, :3].T + pose[:3, 3], np.broadcast_to(pose[:3, :3] @ direction, starts.shape)], axis=1
    )
    hit = world.raycaster.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))
    t = hit["t_hit"].numpy()
    if not np.any(t <= 1.0):
        return None
    first = int(np.argmin(t))
    return int(hit["geometry_ids"].numpy()[first]), hit["primitive_normals"].numpy()[first].astype(np.float64)


def check_grasp(
    world_or_spec: World | WorldSpec,
    target_name: str,
    grasp_pose: np.ndarray,
    width: float,
    gripper: Gripper,
    cone_tolerance_deg: float = CONE_TOLERANCE_DEG,
) -> GraspCheck:
    """Check a parallel-jaw grasp against the true geometry (the tests: module docstring).

    world_or_spec: a built World (reuses its raycasting scene) or a WorldSpec (built here).
    target_name: the object to pick (ValueError if the spec has no such object).
    grasp_pose: [4, 4] gripper-to-world, world frame. width: opening in metres.
    gripper: the planner's gripper, ``Gripper.from_config(grasp_config)``. cone_tolerance_deg: degrees a
    contact normal may lie beyond the friction cone's half angle.
    """
    world = world_or_spec if isinstance(world_or_spec, World) else build_world(world_or_spec)
    target = world.instance_id(target_name)
    pose = np.asarray(grasp_pose, dtype=np.float64)
    if (
        pose.shape != (4, 4)
        or not np.allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-6)
        or np.linalg.det(pose[:3, :3]) < 0
    ):
        raise ValueError(f"grasp_pose: expected a rigid 4x4 transform, got {pose.tolist()}")
    if not 0.0 < width <= gripper.max_width:
        return GraspCheck(False, f"width {width:.4f} m is outside the gripper's range (0, {gripper.max_width:.4f}] m")
    collision = _collision(world, pose, gripper.swept_boxes(width))
    if collision is not None:
        part, instance_id = collision
        return GraspCheck(False, f"collision: the {part} (on its approach) hits {world.instance_name(instance_id)!r}")
    closing_axis = pose[:3, 0]
    limit = np.degrees(gripper.cone_half_angle) + cone_tolerance_deg
    for side in (1.0, -1.0):
        contact = _first_contact(world, pose, side, width, gripper)
        label = "+x" if side > 0 else "-x"
        if contact is None:
            return GraspCheck(False, f"no contact: finger {label} closes on empty space")
        instance_id, normal = contact
        if instance_id != target:
            return GraspCheck(
                False,
                f"wrong object: finger {label} first touches {world.instance_name(instance_id)!r}, not {target_name!r}",
            )
        angle = np.degrees(np.arccos(np.clip(abs(normal @ closing_axis), 0.0, 1.0)))
        if angle > limit:
            return GraspCheck(
                False,
                f"not antipodal: finger {label} contact normal is {angle:.1f} deg off the closing axis (friction "
                f"cone {np.degrees(gripper.cone_half_angle):.1f} + tolerance {cone_tolerance_deg:.1f} deg)",
            )
    return GraspCheck(True, "ok")
