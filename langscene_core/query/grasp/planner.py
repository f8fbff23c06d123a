"""Parallel-jaw grasp candidates on an object's surface points (DESIGN.md section 2.9).

The gripper (frame, fingers, palm, friction cone) is :class:`~langscene_core.query.grasp.gripper.Gripper`,
built from the ``grasp`` settings: the same model the grader checks answers with. The fingers' pads span
|y| <= finger_width / 2 and z from -finger_depth to 0; the contacts are where they first touch the
object when closing, within ``width / 2`` of the origin on either side.

Pipeline: voxel-average the object points -> outward normals (given, or open3d estimates) -> seed
contact pairs: first contacts on smooth patches (normals agree within ``smooth_radius``, for an object
with no grasp otherwise also at a finer scale: no edges or rims), closing along the contact's normal and, on tilted surfaces, level with the support; the far
contact the outermost object point on the closing line, pairs antipodal within the friction cone and
the opening -> approach directions around each closing axis (top-down first) ->
score -> drop near-duplicates -> close the gripper on the points at several fingertip positions
along the approach (:func:`_close`: re-centred on the samples its pads touch, contact normals from
those samples, swept collision check of fingers and palm with ``collision_margin`` against the
object's own samples, every other scene point and the support plane) -> best first, with
non-maximum suppression.

Reconstructed objects are the hard case: Gaussian centres sit 2-5 mm inside the true surface, with
floaters outside, noisy normals and holes a few mm wide. Closing on the points (rather than trusting
the seed pair) puts the contacts where the fingers really touch, e.g. above a ball's equator when
the palm would otherwise hit its top, and the margin covers the inward bias and the gaps between
samples.

Two families: external grasps (fingers outside the object on both sides) above, and, for an object
that gets none, pinches across a thin part (a bowl's or a mug's wall; in principle a torus's tube or a mug's handle:
:mod:`langscene_core.query.grasp.pinch`). Normals are oriented away from the object's centroid (right
for convex and tabletop-like objects; the pinches do not use their sign) unless the caller says their
sign is right (``normals_oriented``: exact mesh normals).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d
from scipy.spatial import cKDTree

from langscene_core.config import GraspConfig, check_limits
from langscene_core.geometry.voxel import bounds, group_by_voxel
from langscene_core.query.grasp.gripper import Gripper
from langscene_core.query.grasp.kernels import ClosedGripper, GripperBox, close_gripper, farthest_on_lines
from langscene_core.query.grasp.pinch import close_pinch, pinch_seeds

_BATCH = 16  # candidates closed per kernel call; planning stops after the batch that completes max_grasps
_CLEARANCE = 0.001  # metres beyond collision_margin kept by the deepest clear fingertip position
_SIDE_OFFSET = 1000.0  # metres between the copies of the object per normal side when voxel-averaging
# of smooth_radius: the finer scale at which a patch may also count as smooth for an object with no grasp
# otherwise (_smooth; 5 mm of the default 8 mm: tori of 6.5-7.1 cm on the reconstruction-like fixture got
# a valid grasp 3 of 6 times at the coarse scale alone)
FINE_SMOOTH_FRACTION = 0.625


@dataclass(frozen=True)
class Grasp:
    """One parallel-jaw grasp, scene frame.

    pose: [4, 4] float64 gripper pose (columns: x closing, y, z approach, origin between fingertips).
    width: opening needed, metres: the contacts' distance plus ``width_clearance`` on each side, at most
        ``gripper_max_width`` (the fingers' inner faces sit at x = +-width / 2 while approaching).
    score: antipodality x contact relevancy x approach preference, in [0, 1].
    contacts: [2, 3] float64 contact points, the first on the -x side, the second on the +x side.
    """

    pose: np.ndarray
    width: float
    score: float
    contacts: np.ndarray


def validate_grasp_config(config: GraspConfig) -> None:
    """Raise ValueError naming the first inconsistent gripper setting: each setting's own range
    (langscene_core.config), the gripper's geometry (:class:`Gripper`), then the settings that must
    agree with each other."""
    check_limits(config, "grasp.")
    Gripper.from_config(config)
    if not config.contact_depths or not all(abs(d) < config.finger_depth for d in config.contact_depths):
        raise ValueError(
            f"grasp.contact_depths {config.contact_depths} must be non-empty, each in "
            f"(-finger_depth, finger_depth) = +-{config.finger_depth}"
        )
    if not config.gripper_max_width > 2 * config.width_clearance >= 0:
        raise ValueError(
            f"grasp.gripper_max_width ({config.gripper_max_width}) must exceed twice "
            f"grasp.width_clearance ({config.width_clearance})"
        )


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
    # einsum and per-column means: numpy's reductions along the long axis of [M, 3] are several times
    # slower, and M is every point of the object here
    normals = normals / np.maximum(np.sqrt(np.einsum("ij,ij->i", normals, normals)), 1e-12)[:, None]
    centroid = np.array([points[:, axis].mean() for axis in range(3)])
    outward = np.einsum("ij,ij->i", normals, points - centroid) >= 0
    return np.where(outward[:, None], normals, -normals)


def _smooth(points: np.ndarray, normals: np.ndarray, config: GraspConfig, fine: bool = False) -> np.ndarray:
    """[M] bool: the point's surface patch is smooth enough to be a contact, at ``smooth_radius`` (fine:
    at that scale or at ``FINE_SMOOTH_FRACTION`` of it).

    Normals are averaged over the points within the radius (scipy's KD-tree, each pair of neighbours
    found once) whose normals are less than 120 degrees apart (opposed ones are the other face of a
    thin wall); near edges, corners and thin rims they disagree, the mean's length drops below
    ``min_normal_consistency`` and the contact's normal is not trusted. A round part curving at about
    1 cm radius (a torus's tube) turns its normals 45 degrees within 8 mm and fails the coarse scale;
    the finer one also passes the samples 5-8 mm from an edge, whose noisy normals can pair a pad with
    a box's top edge, so the planner uses it only for objects with no grasp otherwise.
    """
    pairs = cKDTree(points).query_pairs(config.smooth_radius, output_type="ndarray")  # [P, 2], i < j
    # the other face of a wall thinner than the radius (normals opposed, more than 120 degrees apart) is
    # another surface, not a rough patch of this one
    pairs = pairs[np.einsum("ij,ij->i", normals[pairs[:, 0]], normals[pairs[:, 1]]) > -0.5]
    smooth = _consistent(pairs, normals, config)
    if not fine:
        return smooth
    offset = points[pairs[:, 0]] - points[pairs[:, 1]]
    near = np.einsum("ij,ij->i", offset, offset) <= (FINE_SMOOTH_FRACTION * config.smooth_radius) ** 2
    return smooth | _consistent(pairs[near], normals, config)


def _consistent(pairs: np.ndarray, normals: np.ndarray, config: GraspConfig) -> np.ndarray:
    """[M] bool: the mean of each sample's normal and its neighbours' (pairs [P, 2] of sample rows, each
    neighbouring pair once) is at least ``min_normal_consistency`` long."""
    first, second = pairs[:, 0], pairs[:, 1]
    size = len(normals)
    count = 1 + np.bincount(first, minlength=size) + np.bincount(second, minlength=size)  # itself included
    total = normals + np.stack(
        [np.bincount(first, normals[second, c], size) + np.bincount(second, normals[first, c], size) for c in range(3)],
        axis=1,
    )
    return np.sqrt(np.einsum("ij,ij->i", total, total)) >= config.min_normal_consistency * count


def _closing_lines(
    normals: np.ndarray, first: np.ndarray, up: np.ndarray, cone: float
) -> tuple[np.ndarray, np.ndarray]:
    """Closing lines to try from each first contact: (contacts [L] int, directions [L, 3] unit, into the object).

    Along the contact's inward normal and, where the surface is tilted from vertical by more than a
    degree but no more than the friction cone half-angle ``cone`` (rad), also level with the support
    (the normal's horizontal part). On a tapered surface tilted by b (a cone's or a bowl's flank, a
    ball above its equator, noisy normals) the line along the normal meets the far side 2 b off its
    normal, outside the cone once b exceeds half of it; the level line meets it b off.
    normals: [M, 3] outward unit normals; first: [K] int rows; up: [3] unit.
    """
    inward = -normals[first]
    level = inward - np.outer(inward @ up, up)
    length = np.linalg.norm(level, axis=1)
    tilted = (length >= np.cos(cone)) & (length < np.cos(np.radians(1.0)))
    level = level[tilted] / length[tilted, None]
    return np.concatenate([first, first[tilted]]), np.concatenate([inward, level])


def _antipodal_pairs(
    points: np.ndarray, normals: np.ndarray, smooth: np.ndarray, up: np.ndarray, config: GraspConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contact pairs on the object whose closing line is inside both friction cones.

    points, normals: [M, 3] float64 (outward unit normals). Both contacts must lie on smooth patches
    (smooth: [M] bool, :func:`_smooth`). up: [3] unit scene up (:func:`_closing_lines`). Returns (first [P]
    int, second [P] int, antipodality [P] float64 in [0, 1]: 1 - (larger contact angle) / (cone half angle)).
    """
    candidates = np.flatnonzero(smooth)
    rng = np.random.default_rng(0)  # fixed seed: the same scene gives the same grasps
    first = (
        candidates
        if len(candidates) <= config.contact_samples
        else np.sort(rng.choice(candidates, size=config.contact_samples, replace=False))
    )
    cone = Gripper.from_config(config).cone_half_angle
    first, directions = _closing_lines(normals, first, up, cone)
    # The first contact must be the outermost object point on its side of its closing line, and the
    # opposite finger first touches the farthest object point on the line.
    second, reach, outermost = farthest_on_lines(points, directions, first, config.contact_tolerance)
    max_contact_width = _max_contact_width(config)
    keep = outermost & smooth[second] & (reach > config.contact_tolerance) & (reach <= max_contact_width)
    first, second = first[keep], second[keep]
    closing = points[second] - points[first]
    width = np.linalg.norm(closing, axis=1)
    fits = width <= max_contact_width  # the second contact may lie slightly off the line
    first, second, closing = first[fits], second[fits], closing[fits] / width[fits, None]
    cos_first = np.einsum("pc,pc->p", -normals[first], closing)
    cos_second = np.einsum("pc,pc->p", normals[second], closing)
    worst = np.arccos(np.clip(np.minimum(cos_first, cos_second), -1.0, 1.0))
    inside = worst <= cone
    first, second, worst = first[inside], second[inside], worst[inside]
    # (i, j) and (j, i) are the same grasp with x flipped: keep one.
    _, unique = np.unique(np.sort(np.stack([first, second], axis=1), axis=1), axis=0, return_index=True)
    return first[unique], second[unique], 1.0 - worst[unique] / cone


def _approach_directions(closing: np.ndarray, up: np.ndarray, config: GraspConfig) -> tuple[np.ndarray, np.ndarray]:
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
    angles = np.radians(np.linspace(-90.0, 90.0, config.approach_count) if config.approach_count > 1 else np.zeros(1))
    approach = (
        np.cos(angles)[None, :, None] * towards_down[:, None, :] + np.sin(angles)[None, :, None] * side[:, None, :]
    )
    valid = approach @ down >= np.cos(np.radians(config.max_approach_angle_deg)) - 1e-9
    return approach, valid


@dataclass(frozen=True)
class Support:
    """The support surface (table) as a plane, scene frame: points p with ``normal @ p + offset > 0``
    are above its top. normal: [3] unit vector pointing up; offset: metres; thickness: metres above
    the top where the surface's own scattered points still reach (a reconstructed table is not a thin
    plane). The gripper keeps ``collision_margin`` above the top."""

    normal: np.ndarray
    offset: float
    thickness: float = 0.0

    def height(self, points: np.ndarray) -> np.ndarray:
        """[M] signed distance above the plane of points [M, 3]."""
        return points @ self.normal + self.offset


@dataclass(frozen=True)
class _Surroundings:
    """What the gripper closes on and must not hit.

    points: [N, 3] float64 scene frame, the grasped object's samples first, then the obstacles.
    normals: [T, 3] outward unit normals of the T object samples; smooth: [T] bool, the sample's
    patch is smooth (:func:`_smooth`). target: [N] bool, True for object
    samples (they may lie in the slot between the open fingers).
    """

    points: np.ndarray
    normals: np.ndarray
    smooth: np.ndarray
    target: np.ndarray

    @classmethod
    def build(
        cls,
        object_points: np.ndarray,
        object_normals: np.ndarray,
        object_smooth: np.ndarray,
        obstacle_points: np.ndarray,
    ) -> _Surroundings:
        points = np.concatenate([object_points, obstacle_points])
        return cls(
            points=points,
            normals=object_normals,
            smooth=object_smooth,
            target=np.arange(len(points)) < len(object_points),
        )


def _max_contact_width(config: GraspConfig) -> float:
    """Widest contact distance: the open fingers still clear both contacts by ``collision_margin``."""
    return Gripper.from_config(config).max_width - 2 * config.collision_margin


def _close(
    poses: np.ndarray, surroundings: _Surroundings, support: Support | None, box: GripperBox, config: GraspConfig
) -> ClosedGripper:
    """Close the gripper on the points, as the world's grasp checker does on true meshes.

    poses: [C, 4, 4] gripper poses (x closing, z approach) with the origin at a contact pair's
    midpoint. For each fingertip position d (``config.contact_depths``, then the deepest clear one;
    the origin moved d along z) the finger pads (|y| <= finger_width / 2, z from -finger_depth to 0
    behind the fingertips) first touch the outermost object samples along +x and -x; the fingers are
    re-centred on them and open ``width_clearance`` beyond each (less where the gripper's opening
    ends, down to ``collision_margin``). The contact is the mean of the smooth samples (not on an
    edge or a rim) within half ``contact_tolerance`` of the outermost one, its normal their mean
    normal (a wider band would tilt a curved surface's contact normal away from the first touch).
    Collision, with ``collision_margin`` around every part (``palm_margin`` between the palm and the
    object): the fingers and palm swept ``approach_distance`` along the approach may hold no object
    sample outside the slot between the fingers, no obstacle point outside the part of the slot
    between the contacts, and must stay above the support. Each candidate keeps its first feasible
    fingertip position. box: the gripper and the margins, :func:`_gripper_box` of ``config``.
    """
    return close_gripper(
        surroundings.points,
        surroundings.target,
        surroundings.normals,
        surroundings.smooth,
        poses,
        np.asarray(config.contact_depths, dtype=np.float64),
        box,
        None if support is None else (support.normal, support.offset),
    )


def _gripper_box(config: GraspConfig) -> GripperBox:
    """The gripper (:class:`Gripper` of the config) and the planning margins, for :func:`close_gripper`."""
    gripper = Gripper.from_config(config)
    m = config.collision_margin
    max_contact = _max_contact_width(config)
    palm_back = gripper.finger_depth + gripper.palm_depth + gripper.approach_distance
    return GripperBox(
        half_finger_y=gripper.finger_width / 2,
        margin=m,
        tolerance=config.contact_tolerance,
        cone_cos=gripper.cone_cos,
        # every point any part can touch at any depth and shift lies in this box around a candidate
        x_reach=max_contact + config.width_clearance + gripper.finger_thickness + m,
        z_low=-(palm_back + m) - gripper.finger_depth,
        z_high=m + gripper.finger_depth,
        palm_back=palm_back,
        finger_depth=gripper.finger_depth,
        palm_margin=config.palm_margin,
        finger_thickness=gripper.finger_thickness,
        clearance=config.width_clearance,
        max_width=gripper.max_width,
        max_contact=max_contact,
        half_x_open=gripper.max_width / 2 + gripper.finger_thickness + m,
        depth_clearance=_CLEARANCE,
        depth_limit=0.999 * gripper.finger_depth,
    )


def _near(points: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Rows of points [N, 3] (any float dtype, not copied whole) within ``radius`` of ``centre`` [3],
    as float64."""
    offset = points - centre.astype(points.dtype)
    return points[np.einsum("nc,nc->n", offset, offset) <= radius**2].astype(np.float64)


def plan_grasps(
    object_points: np.ndarray,
    object_relevancy: np.ndarray,
    obstacle_points: np.ndarray,
    config: GraspConfig,
    up: np.ndarray,
    object_normals: np.ndarray | None = None,
    max_grasps: int | None = None,
    support: Support | None = None,
    normals_oriented: bool = False,
) -> tuple[Grasp, ...]:
    """Collision-free parallel-jaw grasps on an object, best first.

    object_points: [M, 3] float32/64 surface points of the object (e.g. Gaussian centres), scene frame.
    object_relevancy: [M] relevancy of those points in [0, 1] (weights the score).
    obstacle_points: [O, 3] every other scene point (table and other objects), scene frame.
    up: [3] scene up direction (against gravity); top-down approaches are preferred.
    object_normals: [M, 3] or None (estimated with open3d). normals_oriented: their sign is right (they
        point out of the material, e.g. exact mesh normals): the two faces of a thin wall are then
        averaged apart; False (and always for estimated normals): the sign is ignored and each points
        away from the object's centroid, right for convex objects only.
    max_grasps: overrides ``config.max_grasps`` when given.
    support: the table as a half-space (e.g. fitted by the query); the gripper keeps
        ``collision_margin`` above it even where its reconstructed points have holes.
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

    points, rel, normals = _object_samples(
        object_points, relevancy, object_normals, normals_oriented and object_normals is not None, config
    )
    smooth = _smooth(points, normals, config)
    centre = points.mean(axis=0)
    radius = np.max(np.linalg.norm(points - centre, axis=1)) + gripper_reach(config)
    obstacles = _near(obstacle_points, centre, radius)
    if support is not None:  # the support half-space stands for the table's own (noisy) points
        obstacles = obstacles[support.height(obstacles) >= config.collision_margin]
    obstacles = group_by_voxel(obstacles, config.collision_voxel_size).centroids
    grasps = _external(points, rel, normals, smooth, obstacles, support, up, config, limit)
    if not grasps:
        # pinches only for objects with no external grasp (bowls and mugs wider than the opening,
        # tori): the common case pays nothing for them (about 0.1 s a search on 2 cores)
        grasps = tuple(
            sorted(
                grasps + _pinches(points, rel, normals, obstacles, support, up, config, limit, grasps),
                key=lambda g: -g.score,
            )
        )
    if not grasps:
        # still none: external grasps with contacts smooth at the finer scale too (a torus's tube, _smooth)
        smooth_fine = _smooth(points, normals, config, fine=True)
        if np.any(smooth_fine & ~smooth):
            grasps = _external(points, rel, normals, smooth_fine, obstacles, support, up, config, limit)
    return grasps


def _external(
    points: np.ndarray,
    rel: np.ndarray,
    normals: np.ndarray,
    smooth: np.ndarray,
    obstacles: np.ndarray,
    support: Support | None,
    up: np.ndarray,
    config: GraspConfig,
    limit: int,
) -> tuple[Grasp, ...]:
    """External grasps (both fingers outside the object), contacts on the samples where ``smooth``
    ([M] bool) holds: antipodal pairs -> ranked candidates -> the feasible ones, best first."""
    first, second, antipodality = _antipodal_pairs(points, normals, smooth, up, config)
    if not len(first):
        return ()
    candidates = _ranked_candidates(points, rel, normals, first, second, antipodality, up, config)
    return _feasible(candidates, _Surroundings.build(points, normals, smooth, obstacles), support, limit, config)


def _pinches(
    points: np.ndarray,
    rel: np.ndarray,
    normals: np.ndarray,
    obstacles: np.ndarray,
    support: Support | None,
    up: np.ndarray,
    config: GraspConfig,
    limit: int,
    taken: tuple[Grasp, ...],
) -> tuple[Grasp, ...]:
    """Pinch grasps (:mod:`~langscene_core.query.grasp.pinch`) until ``limit`` grasps in all with ``taken``,
    trying at most ``max_candidates`` seed pairs; one within ``nms_distance``
    of a grasp already taken with an approach within ``nms_angle_deg`` of its is skipped. Score: mean
    relevancy of the seed contacts x antipodality of the contacts the pads touch x the approach
    preference (``top_down_preference``, as external grasps)."""
    first, second, closing = pinch_seeds(points, normals, up, config)
    cone = Gripper.from_config(config).cone_half_angle
    cos_nms = np.cos(np.radians(config.nms_angle_deg))
    plane = None if support is None else (support.normal, support.offset)
    accepted: list[Grasp] = []
    for f, s, x in list(zip(first, second, closing))[: config.max_candidates]:
        if len(taken) + len(accepted) >= limit:
            break
        closed = close_pinch(points[f], points[s], x, points, normals, obstacles, plane, up, config)
        if closed is None:
            continue
        pose, width, contacts, cos = closed
        if any(
            np.linalg.norm(g.pose[:3, 3] - pose[:3, 3]) < config.nms_distance and g.pose[:3, 2] @ pose[:3, 2] > cos_nms
            for g in (*taken, *accepted)
        ):
            continue
        preference = 1.0 - config.top_down_preference * (1.0 - pose[:3, 2] @ -up) / 2.0
        score = float((rel[f] + rel[s]) / 2 * preference * (1.0 - np.arccos(np.clip(cos, -1.0, 1.0)) / cone))
        accepted.append(Grasp(pose=pose, width=width, score=score, contacts=contacts))
    return tuple(accepted)


def gripper_reach(config: GraspConfig) -> float:
    """Metres from a contact pair's midpoint to the farthest point the gripper's swept volume can reach
    (fingers re-centred by up to half the opening)."""
    gripper = Gripper.from_config(config)
    swept_corner = np.array(
        [
            gripper.max_width + gripper.finger_thickness,
            gripper.finger_width / 2,
            gripper.finger_depth + gripper.palm_depth + gripper.approach_distance,
        ]
    )
    return float(max(np.abs(config.contact_depths)) + np.linalg.norm(swept_corner + config.collision_margin))


def _object_samples(
    object_points: np.ndarray,
    relevancy: np.ndarray,
    object_normals: np.ndarray | None,
    oriented: bool,
    config: GraspConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Object points voxel-averaged at ``object_voxel_size``, or at the coarser voxel that leaves at
    most about ``max_object_points`` (a surface's voxel count falls with the voxel area; the samples
    stay evenly spread, with no holes for the collision check to miss): (points [M, 3], relevancy
    [M], outward unit normals [M, 3]), float64. oriented: the given normals' signs are kept (a voxel's
    normal is the mean of its members'), else each is turned away from the centroid."""
    keys = object_points
    if oriented:
        # the two faces of a wall thinner than a voxel (a bowl's, a mug's) stay apart: points are grouped
        # per voxel and per side their normal faces (its largest component and that one's sign)
        given = np.asarray(object_normals, dtype=np.float64)
        axis = np.argmax(np.abs(given), axis=1)
        side = 2 * axis + (given[np.arange(len(given)), axis] < 0)
        keys = object_points + np.outer(side, [_SIDE_OFFSET, 0.0, 0.0])
    voxel = config.object_voxel_size
    groups = group_by_voxel(keys, voxel)
    while len(groups.counts) > config.max_object_points:
        voxel *= max(np.sqrt(len(groups.counts) / config.max_object_points), 1.1)
        groups = group_by_voxel(keys, voxel)
    rel = groups.mean(relevancy)
    if oriented:
        averaged = groups.mean(given)
        points = groups.mean(object_points)
        return points, rel, averaged / np.maximum(np.linalg.norm(averaged, axis=1), 1e-12)[:, None]
    points = groups.centroids
    averaged = (
        None
        if object_normals is None
        else groups.mean(outward_normals(object_points, object_normals, config.normal_radius))
    )
    return points, rel, outward_normals(points, averaged, config.normal_radius)


@dataclass(frozen=True)
class _Candidates:
    """Grasp candidates, best seed score first: poses [C, 4, 4] with the origin at the seed contact
    pair's midpoint, weights [C] (contact relevancy x approach preference) and seed scores [C]
    (weights x the seed pair's antipodality)."""

    poses: np.ndarray
    weights: np.ndarray
    scores: np.ndarray


def _ranked_candidates(
    points: np.ndarray,
    rel: np.ndarray,
    normals: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    antipodality: np.ndarray,
    up: np.ndarray,
    config: GraspConfig,
) -> _Candidates:
    """Every contact pair x approach direction, scored, sorted, deduplicated, capped."""
    closing = points[second] - points[first]
    closing /= np.linalg.norm(closing, axis=1, keepdims=True)
    approach, valid = _approach_directions(closing, up, config)
    preference = 1.0 - config.top_down_preference * (1.0 - approach @ -up) / 2.0  # [P, A]
    weight = ((rel[first] + rel[second]) / 2.0)[:, None] * preference
    score = antipodality[:, None] * weight
    pair, direction = np.nonzero(valid)
    if len(pair) == 0:  # no approach within max_approach_angle_deg
        return _Candidates(poses=np.zeros((0, 4, 4)), weights=np.zeros(0), scores=np.zeros(0))
    order = np.argsort(-score[pair, direction], kind="stable")
    pair, direction = pair[order], direction[order]
    # Near-duplicates (same origin cell and approach bin) would mostly share their fate in the
    # collision check: keep the best of each, then the best ``max_candidates``.
    midpoints = (points[first[pair]] + points[second[pair]]) / 2
    cells = np.floor(midpoints / config.nms_distance).astype(np.int64)
    bins = np.rint(approach[pair, direction] / np.sin(np.radians(config.nms_angle_deg))).astype(np.int64)
    rows = np.concatenate([cells, bins], axis=1)
    lo, hi = bounds(rows)
    # one integer per (cell, bin) row: a 1D unique is several times faster than unique rows (axis=0)
    _, distinct = np.unique(np.ravel_multi_index((rows - lo).T, hi - lo + 1), return_index=True)
    keep = np.sort(distinct)[: config.max_candidates]
    pair, direction = pair[keep], direction[keep]
    z, x = approach[pair, direction], closing[pair]
    poses = np.tile(np.eye(4), (len(pair), 1, 1))
    poses[:, :3, 0], poses[:, :3, 1], poses[:, :3, 2], poses[:, :3, 3] = x, np.cross(z, x), z, midpoints[keep]
    return _Candidates(poses=poses, weights=weight[pair, direction], scores=score[pair, direction])


def _feasible(
    candidates: _Candidates, surroundings: _Surroundings, support: Support | None, limit: int, config: GraspConfig
) -> tuple[Grasp, ...]:
    """Grasps from the candidates (seed score order) that close feasibly (:func:`_close`) at their
    first feasible fingertip position, skipping any within ``nms_distance`` and ``nms_angle_deg`` of
    one already taken; at most ``limit``, sorted by their final score (weight x antipodality of the
    contacts the fingers actually touch)."""
    cos_nms = np.cos(np.radians(config.nms_angle_deg))
    cone = Gripper.from_config(config).cone_half_angle
    box = _gripper_box(config)  # once, not per batch
    accepted: list[Grasp] = []
    for start in range(0, len(candidates.poses), _BATCH):
        poses = candidates.poses[start : start + _BATCH]
        closed = _close(poses, surroundings, support, box, config)
        antipodality = 1.0 - np.arccos(np.clip(closed.cos, -1.0, 1.0)) / cone
        for c in np.flatnonzero(closed.feasible):
            pose = poses[c].copy()
            pose[:3, 3] += pose[:3, :3] @ np.array([closed.shift[c], 0.0, closed.depth[c]])
            if any(
                np.linalg.norm(pose[:3, 3] - g.pose[:3, 3]) < config.nms_distance
                and pose[:3, 2] @ g.pose[:3, 2] > cos_nms
                for g in accepted
            ):
                continue
            contacts = closed.contacts[c] @ poses[c, :3, :3].T + poses[c, :3, 3]
            score = float(candidates.weights[start + c] * antipodality[c])
            accepted.append(Grasp(pose=pose, width=float(2 * closed.half_open[c]), score=score, contacts=contacts))
            if len(accepted) == limit:
                return tuple(sorted(accepted, key=lambda g: -g.score))
    return tuple(sorted(accepted, key=lambda g: -g.score))
