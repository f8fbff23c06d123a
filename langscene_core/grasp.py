"""Parallel-jaw grasp candidates on an object's surface points (DESIGN.md section 2.9).

Gripper frame (the ``GraspCandidate.msg`` convention): z = approach direction towards the object,
x = closing direction, y = z x x, origin midway between the fingertips. The contacts lie on the
line through ``origin - depth * z`` along x, ``width / 2 - width_clearance`` either side, with
``depth`` the first of ``GraspConfig.contact_depths`` at which the gripper is collision-free.

Pipeline: voxel-average the object points -> outward normals (given, or open3d estimates) -> sample
first contacts on smooth patches (normals agree within ``normal_radius``: no edges or rims) -> for
each, the far contact is the outermost object point on the closing line (where the opposite finger
first touches) -> keep pairs antipodal within the friction cone and within the opening -> approach
directions around the closing axis (top-down first) -> score -> drop near-duplicates -> collision
check of fingers and palm, swept along the approach, against every scene point (the grasped object
may only lie between the fingers), best first, with non-maximum suppression.

Only external grasps (fingers outside the object on both sides) are produced; normals are oriented
away from the object's centroid, which is right for convex and tabletop-like objects.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from langscene_core.config import GraspConfig
from langscene_core.voxel import group_by_voxel

_BATCH = 64  # candidates per vectorised collision check; stops early once enough grasps are found


@dataclass(frozen=True)
class Grasp:
    """One parallel-jaw grasp, scene frame.

    pose: [4, 4] float64 gripper pose (columns: x closing, y, z approach, origin between fingertips).
    width: opening needed, metres: the contacts' distance plus ``width_clearance`` on each side (the
        fingers' inner faces sit at x = +-width / 2 while approaching).
    score: antipodality x contact relevancy x approach preference, in [0, 1].
    contacts: [2, 3] float64 contact points, the first on the -x side, the second on the +x side.
    """

    pose: np.ndarray
    width: float
    score: float
    contacts: np.ndarray


def validate_grasp_config(config: GraspConfig) -> None:
    """Raise ValueError naming the first inconsistent gripper setting."""
    positive = ("gripper_max_width", "finger_depth", "finger_thickness", "finger_width", "palm_depth",
                "object_voxel_size", "contact_tolerance", "normal_radius", "collision_voxel_size",
                "friction_coefficient")
    for name in positive:
        if not getattr(config, name) > 0:
            raise ValueError(f"grasp.{name} must be positive, got {getattr(config, name)}")
    for name in ("max_grasps", "contact_samples", "max_object_points", "max_candidates", "approach_count"):
        if getattr(config, name) < 1:
            raise ValueError(f"grasp.{name} must be at least 1, got {getattr(config, name)}")
    if not config.contact_depths or not all(0 <= d < config.finger_depth for d in config.contact_depths):
        raise ValueError(f"grasp.contact_depths {config.contact_depths} must be non-empty, each in "
                         f"[0, finger_depth ({config.finger_depth}))")
    if not config.gripper_max_width > 2 * config.width_clearance >= 0:
        raise ValueError(f"grasp.gripper_max_width ({config.gripper_max_width}) must exceed twice "
                         f"grasp.width_clearance ({config.width_clearance})")
    if not 0 <= config.top_down_preference <= 1:
        raise ValueError(f"grasp.top_down_preference must be in [0, 1], got {config.top_down_preference}")
    if not 0 <= config.max_approach_angle_deg <= 90:
        raise ValueError(f"grasp.max_approach_angle_deg must be in [0, 90], got {config.max_approach_angle_deg}")


def outward_normals(points: np.ndarray, normals: np.ndarray | None, radius: float) -> np.ndarray:
    """Unit normals pointing away from the centroid of ``points``.

    points: [M, 3] float64, scene frame. normals: [M, 3] or None (then estimated with open3d from the
    points within ``radius`` metres). Returns [M, 3] float64.
    """
    if normals is None:
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
        cloud.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=radius, max_nn=30))
        normals = np.asarray(cloud.normals)
    normals = np.asarray(normals, dtype=np.float64)
    normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    outward = np.einsum("ij,ij->i", normals, points - points.mean(axis=0)) >= 0
    return np.where(outward[:, None], normals, -normals)


def _smooth(points: np.ndarray, normals: np.ndarray, config: GraspConfig) -> np.ndarray:
    """[M] bool: the point's surface patch is smooth enough to be a contact.

    Normals are averaged over the points within ``normal_radius`` (open3d radius search); near
    edges, corners and thin rims they disagree, the mean's length drops below
    ``min_normal_consistency`` and the contact's normal is not trusted.
    """
    index = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(np.ascontiguousarray(points)))
    index.fixed_radius_index(config.normal_radius)
    found, _, splits = index.fixed_radius_search(o3d.core.Tensor(np.ascontiguousarray(points)),
                                                 config.normal_radius, sort=False)
    found, splits = found.numpy(), splits.numpy()
    owner = np.repeat(np.arange(len(points)), np.diff(splits))  # every point finds itself: no empty rows
    total = np.stack([np.bincount(owner, weights=normals[found, c], minlength=len(points)) for c in range(3)], 1)
    return np.linalg.norm(total, axis=1) >= config.min_normal_consistency * np.diff(splits)


def _antipodal_pairs(points: np.ndarray, normals: np.ndarray, config: GraspConfig
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contact pairs on the object whose closing line is inside both friction cones.

    points, normals: [M, 3] float64 (outward unit normals). Both contacts must lie on smooth patches
    (:func:`_smooth`). Returns (first [P] int, second [P] int, antipodality [P] float64 in [0, 1]:
    1 - (larger contact angle) / (cone half angle)).
    """
    smooth = _smooth(points, normals, config)
    candidates = np.flatnonzero(smooth)
    rng = np.random.default_rng(0)  # fixed seed: the same scene gives the same grasps
    first = candidates if len(candidates) <= config.contact_samples else np.sort(
        rng.choice(candidates, size=config.contact_samples, replace=False))
    inward = -normals[first]  # [K, 3] closing direction of the first finger
    rel = points[None, :, :] - points[first, None, :]  # [K, M, 3]
    along = np.einsum("kmc,kc->km", rel, inward)
    off_line_sq = np.einsum("kmc,kmc->km", rel, rel) - along ** 2
    on_line = off_line_sq <= config.contact_tolerance ** 2
    # The first contact must be the outermost object point on its side of the line ...
    outermost = ~np.any(on_line & (along < -config.contact_tolerance), axis=1)
    # ... and the opposite finger first touches the farthest object point on the line.
    far_along = np.where(on_line, along, -np.inf)
    second = np.argmax(far_along, axis=1)
    reach = far_along[np.arange(len(first)), second]
    max_contact_width = config.gripper_max_width - 2 * config.width_clearance
    keep = outermost & smooth[second] & (reach > config.contact_tolerance) & (reach <= max_contact_width)
    first, second = first[keep], second[keep]
    closing = points[second] - points[first]
    width = np.linalg.norm(closing, axis=1)
    fits = width <= max_contact_width  # the second contact may lie slightly off the line
    first, second, closing = first[fits], second[fits], closing[fits] / width[fits, None]
    cos_first = np.einsum("pc,pc->p", -normals[first], closing)
    cos_second = np.einsum("pc,pc->p", normals[second], closing)
    worst = np.arccos(np.clip(np.minimum(cos_first, cos_second), -1.0, 1.0))
    cone = np.arctan(config.friction_coefficient)
    inside = worst <= cone
    first, second, worst = first[inside], second[inside], worst[inside]
    # (i, j) and (j, i) are the same grasp with x flipped: keep one.
    _, unique = np.unique(np.sort(np.stack([first, second], axis=1), axis=1), axis=0, return_index=True)
    return first[unique], second[unique], 1.0 - worst[unique] / cone


def _approach_directions(closing: np.ndarray, up: np.ndarray, config: GraspConfig
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Approach directions perpendicular to each closing axis, spread around it from the most top-down.

    closing: [P, 3] unit vectors; up: [3] unit vector. Returns (approach [P, A, 3] unit vectors,
    valid [P, A] bool: within ``max_approach_angle_deg`` of straight down).
    """
    down = -up
    towards_down = down[None, :] - np.einsum("pc,c->p", closing, down)[:, None] * closing
    norm = np.linalg.norm(towards_down, axis=1)
    # Closing axis along gravity: every perpendicular is equally (not) top-down; pick a fixed one.
    fallback_axis = np.eye(3)[np.argmin(np.abs(up))]
    fallback = np.cross(closing, fallback_axis)
    towards_down = np.where((norm > 1e-6)[:, None], towards_down, fallback)
    towards_down /= np.linalg.norm(towards_down, axis=1, keepdims=True)
    side = np.cross(closing, towards_down)
    angles = np.radians(np.linspace(-90.0, 90.0, config.approach_count) if config.approach_count > 1
                        else np.zeros(1))
    approach = (np.cos(angles)[None, :, None] * towards_down[:, None, :]
                + np.sin(angles)[None, :, None] * side[:, None, :])
    valid = approach @ down >= np.cos(np.radians(config.max_approach_angle_deg)) - 1e-9
    return approach, valid


@dataclass(frozen=True)
class _Surroundings:
    """Points the gripper must not hit, with an open3d radius-search index over them.

    points: [N, 3] float64 scene frame. grasped: [N] bool, True for points of the grasped object
    (allowed in the slot between the open fingers).
    """

    points: np.ndarray
    grasped: np.ndarray
    index: o3d.core.nns.NearestNeighborSearch

    @classmethod
    def build(cls, object_points: np.ndarray, obstacle_points: np.ndarray) -> "_Surroundings":
        points = np.ascontiguousarray(np.concatenate([object_points, obstacle_points]))
        grasped = np.arange(len(points)) < len(object_points)
        index = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(points))
        index.fixed_radius_index()
        return cls(points=points, grasped=grasped, index=index)


def _swept_hits(poses: np.ndarray, widths: np.ndarray, surroundings: _Surroundings,
                config: GraspConfig) -> np.ndarray:
    """Whether the gripper, swept along its approach, hits anything, per contact depth.

    poses: [C, 4, 4] gripper poses with the origin at the contacts' midpoint (depth 0); widths: [C]
    contact distances. At depth d the fingertips sit d further along the approach (z). The swept
    volume is the box |x| <= opening/2 + finger_thickness, |y| <= finger_width/2, z from the
    fingertips back past the palm by ``approach_distance``, all grown by ``collision_margin``.
    Points of the grasped object may also lie in the slot between the open fingers in front of the
    palm. Returns [C, D] bool for D = len(config.contact_depths).
    """
    depths = np.asarray(config.contact_depths)
    m = config.collision_margin
    half_open = widths / 2 + config.width_clearance  # [C]
    half_outer = half_open + config.finger_thickness + m
    half_y = config.finger_width / 2 + m
    z_back = -(config.finger_depth + config.palm_depth + config.approach_distance + m)
    # Only points inside each candidate's bounding sphere of the swept box (all depths) can hit it.
    z_lo, z_hi = z_back + depths.min(), m + depths.max()
    centres = poses[:, :3, 3] + (z_lo + z_hi) / 2 * poses[:, :3, 2]
    radius = float(np.sqrt(half_outer.max() ** 2 + half_y ** 2 + ((z_hi - z_lo) / 2) ** 2))
    found, _, splits = surroundings.index.fixed_radius_search(o3d.core.Tensor(centres), radius, sort=False)
    found, splits = found.numpy(), splits.numpy()
    points = surroundings.points[found]
    local = np.empty_like(points)  # [K, 3] coordinates in the gripper frame of the candidate owning each
    for c in range(len(poses)):
        block = slice(splits[c], splits[c + 1])
        local[block] = (points[block] - poses[c, :3, 3]) @ poses[c, :3, :3]
    owner = np.repeat(np.arange(len(poses)), np.diff(splits))
    ax = np.abs(local[:, 0])
    section = np.flatnonzero((ax <= half_outer[owner]) & (np.abs(local[:, 1]) <= half_y))
    owner, ax = owner[section], ax[section]
    z_tip = local[section, 2:3] - depths[None, :]  # [S, D] point z relative to the fingertips
    slot = (surroundings.grasped[found[section]] & (ax < half_open[owner] - m))[:, None] \
        & (z_tip > -config.finger_depth + m)
    inside = (z_tip <= m) & (z_tip >= z_back) & ~slot
    hits = np.zeros((len(poses), len(depths)), dtype=bool)
    for k in range(len(depths)):
        hits[:, k] = np.bincount(owner, weights=inside[:, k], minlength=len(poses)) > 0
    return hits


def _near(points: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Rows of points [N, 3] (any float dtype, not copied whole) within ``radius`` of ``centre`` [3],
    as float64."""
    offset = points - centre.astype(points.dtype)
    return points[np.einsum("nc,nc->n", offset, offset) <= radius ** 2].astype(np.float64)


def plan_grasps(object_points: np.ndarray, object_relevancy: np.ndarray, obstacle_points: np.ndarray,
                config: GraspConfig, up: np.ndarray, object_normals: np.ndarray | None = None,
                max_grasps: int | None = None) -> tuple[Grasp, ...]:
    """Collision-free parallel-jaw grasps on an object, best first.

    object_points: [M, 3] float32/64 surface points of the object (e.g. Gaussian centres), scene frame.
    object_relevancy: [M] relevancy of those points in [0, 1] (weights the score).
    obstacle_points: [O, 3] every other scene point (table and other objects), scene frame.
    up: [3] scene up direction (against gravity); top-down approaches are preferred.
    object_normals: [M, 3] or None (estimated with open3d); their sign is ignored (oriented outward).
    max_grasps: overrides ``config.max_grasps`` when given.
    Returns at most ``max_grasps`` grasps, highest score first; empty when none is feasible.
    """
    validate_grasp_config(config)
    limit = config.max_grasps if max_grasps is None else max_grasps
    object_points = np.asarray(object_points, dtype=np.float64)
    obstacle_points = np.asarray(obstacle_points).reshape(-1, 3)
    relevancy = np.asarray(object_relevancy, dtype=np.float64)
    up = np.asarray(up, dtype=np.float64)
    if object_points.ndim != 2 or object_points.shape[1] != 3:
        raise ValueError(f"object_points must be [M, 3], got shape {object_points.shape}")
    if relevancy.shape != (len(object_points),):
        raise ValueError(f"object_relevancy must be [{len(object_points)}], got shape {relevancy.shape}")
    if object_normals is not None and np.shape(object_normals) != object_points.shape:
        raise ValueError(f"object_normals must be {object_points.shape}, got {np.shape(object_normals)}")
    if up.shape != (3,) or not np.linalg.norm(up) > 0:
        raise ValueError(f"up must be a non-zero 3-vector, got {up}")
    up = up / np.linalg.norm(up)
    if limit < 1 or len(object_points) < 2:
        return ()

    points, rel, normals = _object_samples(object_points, relevancy, object_normals, config)
    first, second, antipodality = _antipodal_pairs(points, normals, config)
    if len(first) == 0:
        return ()
    candidates = _ranked_candidates(points, rel, normals, first, second, antipodality, up, config)
    centre = points.mean(axis=0)
    radius = np.max(np.linalg.norm(points - centre, axis=1)) + gripper_reach(config)
    surroundings = _Surroundings.build(
        group_by_voxel(points, config.collision_voxel_size).centroids,
        group_by_voxel(_near(obstacle_points, centre, radius), config.collision_voxel_size).centroids)
    return _collision_free(candidates, surroundings, limit, config)


def gripper_reach(config: GraspConfig) -> float:
    """Metres from the contacts' midpoint to the farthest point of the gripper's swept volume."""
    swept_corner = np.array([config.gripper_max_width / 2 + config.finger_thickness, config.finger_width / 2,
                             config.finger_depth + config.palm_depth + config.approach_distance])
    return float(max(config.contact_depths) + np.linalg.norm(swept_corner + config.collision_margin))


def _object_samples(object_points: np.ndarray, relevancy: np.ndarray, object_normals: np.ndarray | None,
                    config: GraspConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Object points voxel-averaged at ``object_voxel_size`` and capped at ``max_object_points``:
    (points [M, 3], relevancy [M], outward unit normals [M, 3]), float64."""
    groups = group_by_voxel(object_points, config.object_voxel_size)
    points, rel = groups.centroids, groups.mean(relevancy)
    averaged = None if object_normals is None else groups.mean(
        outward_normals(object_points, object_normals, config.normal_radius))
    normals = outward_normals(points, averaged, config.normal_radius)
    if len(points) > config.max_object_points:
        keep = np.sort(np.random.default_rng(0).choice(len(points), config.max_object_points, replace=False))
        points, rel, normals = points[keep], rel[keep], normals[keep]
    return points, rel, normals


@dataclass(frozen=True)
class _Candidates:
    """Grasp candidates, best score first: poses [C, 4, 4] with the origin at the contacts'
    midpoint (depth 0), contact distances [C], scores [C], contacts [C, 2, 3]."""

    poses: np.ndarray
    widths: np.ndarray
    scores: np.ndarray
    contacts: np.ndarray


def _ranked_candidates(points: np.ndarray, rel: np.ndarray, normals: np.ndarray, first: np.ndarray,
                       second: np.ndarray, antipodality: np.ndarray, up: np.ndarray,
                       config: GraspConfig) -> _Candidates:
    """Every contact pair x approach direction, scored, sorted, deduplicated, capped."""
    closing = points[second] - points[first]
    widths = np.linalg.norm(closing, axis=1)
    closing /= widths[:, None]
    approach, valid = _approach_directions(closing, up, config)
    preference = 1.0 - config.top_down_preference * (1.0 - approach @ -up) / 2.0  # [P, A]
    score = (antipodality * (rel[first] + rel[second]) / 2.0)[:, None] * preference
    pair, direction = np.nonzero(valid)
    order = np.argsort(-score[pair, direction], kind="stable")
    pair, direction = pair[order], direction[order]
    # Near-duplicates (same origin cell and approach bin) would mostly share their fate in the
    # collision check: keep the best of each, then the best ``max_candidates``.
    midpoints = (points[first[pair]] + points[second[pair]]) / 2
    cells = np.floor(midpoints / config.nms_distance).astype(np.int64)
    bins = np.rint(approach[pair, direction] / np.sin(np.radians(config.nms_angle_deg))).astype(np.int64)
    _, distinct = np.unique(np.concatenate([cells, bins], axis=1), axis=0, return_index=True)
    keep = np.sort(distinct)[:config.max_candidates]
    pair, direction = pair[keep], direction[keep]
    z, x = approach[pair, direction], closing[pair]
    poses = np.tile(np.eye(4), (len(pair), 1, 1))
    poses[:, :3, 0], poses[:, :3, 1], poses[:, :3, 2], poses[:, :3, 3] = x, np.cross(z, x), z, midpoints[keep]
    return _Candidates(poses=poses, widths=widths[pair], scores=score[pair, direction],
                       contacts=np.stack([points[first[pair]], points[second[pair]]], axis=1))


def _collision_free(candidates: _Candidates, surroundings: _Surroundings, limit: int,
                    config: GraspConfig) -> tuple[Grasp, ...]:
    """The first ``limit`` candidates (score order) with a collision-free contact depth that are not
    within ``nms_distance`` and ``nms_angle_deg`` of a better accepted grasp."""
    cos_nms = np.cos(np.radians(config.nms_angle_deg))
    accepted: list[Grasp] = []
    for start in range(0, len(candidates.poses), _BATCH):
        batch = slice(start, start + _BATCH)
        collides = _swept_hits(candidates.poses[batch], candidates.widths[batch], surroundings, config)  # [B, D]
        for c, row in enumerate(collides, start=start):
            if row.all():
                continue
            pose = candidates.poses[c].copy()
            pose[:3, 3] += config.contact_depths[int(np.argmin(row))] * pose[:3, 2]  # first free depth
            if any(np.linalg.norm(pose[:3, 3] - g.pose[:3, 3]) < config.nms_distance
                   and pose[:3, 2] @ g.pose[:3, 2] > cos_nms for g in accepted):
                continue
            accepted.append(Grasp(pose=pose, width=float(candidates.widths[c] + 2 * config.width_clearance),
                                  score=float(candidates.scores[c]), contacts=candidates.contacts[c]))
            if len(accepted) == limit:
                return tuple(accepted)
    return tuple(accepted)
