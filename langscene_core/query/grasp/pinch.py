"""Pinch grasps: top-down, the fingers on either side of a thin part of the object (DESIGN.md section 2.9).

The external grasps of :mod:`langscene_core.query.grasp.planner` close on the whole object between the
fingers. A bowl or a mug wider than the gripper has a thin part the fingers can straddle instead, one
finger in the cavity:

- rim / wall pinches: one finger inside a bowl or mug, one outside, closing across the wall;
- tube grasps: one finger in a torus's hole, one outside, closing across the tube: the same search,
  but with this gripper only where the hole holds a finger with its clearance and margins (on exact
  samples a 12 cm torus, 1 of 2 valid; none on the reconstruction-like fixture: its samples inside the
  tube are missing, so the tube is not one run);
- handle grasps: the fingers on either side of a mug's handle ring: not found in practice (the ring
  is a round tube 4-8 mm thick whose normals fail the flatness rule below).

All three are one search, which does not use the normals' signs (a reconstruction's Gaussians on the
two faces of a wall a few mm thick sit between them, mixed, so no sign rule tells the faces apart):
seeds are samples whose normal is within the friction cone of horizontal; along the seed's normal
line the run of samples around it (:func:`pinch_seeds`) is the part, its two ends the seed contacts.
The gripper comes down as top-down as the closing axis (the normal line) allows: the pads then lie
parallel to the part (on a bowl's flaring wall, a closing axis level with the table would touch the
rim's outer edge first). Its fingertips go ``TIP_DEPTHS`` below the top of the part between the
fingers, open the part's thickness plus ``clearance`` (``grasp.width_clearance``, then half of it) on
each side. A finger in a closed solid (a box, a ball) is stopped by the sweep: it would cross the
top surface's samples on its way down.

A pinch is kept when, with the same margins as external grasps (``collision_margin`` around the
fingers, ``palm_margin`` under the palm):

1. the contacts: where each pad first touches the part (its outermost samples between the pads, at
   least ``BELOW_TOP`` below the top of the part: the pads never rest on the rim's top face), the
   patch within ``contact_tolerance`` of that touch (half of it along x), its mean normal (each turned
   towards the finger) within the friction cone of the finger's closing direction;
   and at least ``FLAT_QUANTILE`` of the part's samples under the pads (below that top) with their
   normal lines within the cone (a reconstruction's noise hides a few mm of curvature);
2. the fingers swept ``approach_distance`` down to the fingertips hold no sample of the object or of
   anything else, the palm none either, the slot between the fingers no sample of anything else;
3. every corner of the swept fingers stays ``collision_margin`` above the support plane.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from langscene_core.config import GraspConfig
from langscene_core.query.grasp.gripper import Gripper

WALL_GAP = 0.006  # metres: samples along a closing line this close belong to one part (holes of a reconstruction)
BELOW_TOP = 0.005  # metres: contacts at least this far below the top of the part between the fingers
TIP_DEPTHS = (0.012, 0.018, 0.008)  # metres of fingertip below that top, tried in this order
FLAT_QUANTILE = 0.8  # of the part's samples under the pads with their normal line within the friction cone
CLEARANCE_FRACTIONS = (1.0, 0.5)  # of grasp.width_clearance, tried in this order on each side


def pinch_seeds(
    points: np.ndarray, normals: np.ndarray, up: np.ndarray, config: GraspConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin parts to pinch: where a closing line along a sample's normal crosses the object in one
    short run of samples.

    points, normals: [M, 3] float64 object samples and unit normals (their sign is not used); up: [3]
    unit. Seeds are samples whose normal is within the friction cone of horizontal, at most
    ``contact_samples`` of them (fixed seed). Along each seed's normal line (averaged over the samples
    within ``normal_radius``) (samples within
    ``contact_tolerance`` of it) the run of samples holding the seed, gaps at most ``WALL_GAP``, is
    the part; parts thicker than the widest contact distance are dropped. Returns (low [P] int, high
    [P] int: the run's two end samples, closing [P, 3] unit from low to high)."""
    gripper = Gripper.from_config(config)
    level = np.linalg.norm(normals - np.outer(normals @ up, up), axis=1)
    candidates = np.flatnonzero(level >= gripper.cone_cos)  # normal within the cone of horizontal
    rng = np.random.default_rng(0)  # fixed seed: the same scene gives the same grasps
    if len(candidates) > config.contact_samples:
        candidates = np.sort(rng.choice(candidates, size=config.contact_samples, replace=False))
    tol = config.contact_tolerance
    reach = gripper.max_width - 2 * config.collision_margin
    low, high, closing = [], [], []
    # the closing axis: the seed's normal line averaged over its neighbours within normal_radius whose
    # lines lie within the friction cone of it (signs turned to agree with the seed's): one noisy normal
    # would tilt the pads off the part
    neighbours = cKDTree(points).query_ball_point(points[candidates], config.normal_radius)
    for seed, around in zip(candidates, neighbours):
        lines = normals[around]
        agree = lines @ normals[seed]
        lines = lines[np.abs(agree) >= gripper.cone_cos]  # not the rim's top face round the corner
        axis = (lines * np.where(agree[np.abs(agree) >= gripper.cone_cos] >= 0, 1.0, -1.0)[:, None]).sum(axis=0)
        axis /= np.linalg.norm(axis)
        offset = points - points[seed]
        along = offset @ axis
        near = np.flatnonzero((np.abs(along) <= reach) & (np.einsum("ij,ij->i", offset, offset) - along**2 <= tol**2))
        order = near[np.argsort(along[near], kind="stable")]
        t = along[order]
        at = int(np.searchsorted(t, 0.0))  # the seed's place in the run (t = 0)
        gaps = np.flatnonzero(np.diff(t) > WALL_GAP)
        first = 0 if not len(gaps[gaps < at]) else gaps[gaps < at][-1] + 1
        last = len(t) - 1 if not len(gaps[gaps >= at]) else gaps[gaps >= at][0]
        if t[last] - t[first] > reach:
            continue
        low.append(order[first])
        high.append(order[last])
        closing.append(axis)
    if not low:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros((0, 3))
    return np.array(low), np.array(high), np.array(closing)


def close_pinch(
    first: np.ndarray,
    second: np.ndarray,
    closing: np.ndarray,
    object_points: np.ndarray,
    object_normals: np.ndarray,
    obstacles: np.ndarray,
    support: tuple[np.ndarray, float] | None,
    up: np.ndarray,
    config: GraspConfig,
) -> tuple[np.ndarray, float, np.ndarray, float] | None:
    """The first feasible pinch of one seed pair (module docstring), or None.

    first, second: [3] the seed contacts (:func:`pinch_seeds`); closing: [3] unit, from first to second;
    object_points / object_normals: [M, 3] the object's samples and unit normals (sign not used);
    obstacles: [O, 3] every other point; support: (unit up normal [3], offset) or None; up: [3] unit.
    Returns (pose [4, 4] gripper-to-scene, origin between the fingertips; width, metres; contacts
    [2, 3], -x side first; cosine of the worst contact normal against its finger's closing direction)."""
    gripper = Gripper.from_config(config)
    m, half_y = config.collision_margin, gripper.finger_width / 2
    x_axis = closing
    z_axis = -up - (-up @ x_axis) * x_axis  # the approach: the most top-down one across the closing axis
    z_axis /= np.linalg.norm(z_axis)
    y_axis = np.cross(z_axis, x_axis)
    middle = (first + second) / 2
    thickness = max(float((second - first) @ x_axis), 0.0)
    reach = gripper.max_width / 2 + gripper.finger_thickness + m
    frame = np.stack([x_axis, y_axis, -z_axis])  # rows: local x, y, height (back along the approach)

    slab = half_y + max(m, config.palm_margin)
    own = (object_points - middle) @ frame.T  # [M, 3] local x, y, height above the middle
    near = (np.abs(own[:, 0]) <= reach) & (np.abs(own[:, 1]) <= slab)
    own, own_normals = own[near], object_normals[near] @ frame.T
    others = (obstacles - middle) @ frame.T
    others = others[(np.abs(others[:, 0]) <= reach) & (np.abs(others[:, 1]) <= slab)]
    column = (np.abs(own[:, 0]) <= thickness / 2 + config.contact_tolerance) & (np.abs(own[:, 1]) <= half_y)
    if not column.any():
        return None
    top = float(own[column, 2].max())
    cone_cos = gripper.cone_cos
    swept = gripper.finger_depth + gripper.approach_distance
    for fraction in CLEARANCE_FRACTIONS:
        half_open = thickness / 2 + fraction * config.width_clearance
        if 2 * half_open > gripper.max_width or half_open - m <= thickness / 2:
            continue
        outer = half_open + gripper.finger_thickness
        for depth in TIP_DEPTHS:
            if depth > gripper.finger_depth - config.palm_margin:
                continue
            tip = top - depth
            # 3. the support: the lowest corner of the swept fingers
            if support is not None:
                normal, offset = support
                corners = np.array([[sx * outer, sy * half_y, tip] for sx in (-1, 1) for sy in (-1, 1)])
                world = middle + corners @ frame
                if np.min(world @ normal + offset) < m:
                    continue
            # 2. collisions: fingers (object and others), palm (object with palm_margin, others), slot (others)
            in_y = np.abs(own[:, 1]) <= half_y + m
            ax = np.abs(own[:, 0])
            fingers = in_y & (ax >= half_open - m) & (ax <= outer + m) & (own[:, 2] >= tip - m)
            fingers &= own[:, 2] <= tip + swept + m
            palm_y = np.abs(own[:, 1]) <= half_y + config.palm_margin
            palm = (
                palm_y
                & (ax <= outer + config.palm_margin)
                & (own[:, 2] >= tip + gripper.finger_depth - config.palm_margin)
            )
            if fingers.any() or palm.any():
                continue
            o_in = (np.abs(others[:, 1]) <= half_y + m) & (np.abs(others[:, 0]) <= outer + m)
            if np.any(o_in & (others[:, 2] >= tip - m)):
                continue
            # 1. the contacts
            # the pads' reach widened by the margin: on a part curving round a pad (a torus's hole
            # narrower than the pad is wide) the first touch is at the pad's edge
            pads = (np.abs(own[:, 1]) <= half_y + m) & (ax < half_open - m)
            pads &= (own[:, 2] >= tip) & (own[:, 2] <= tip + gripper.finger_depth)
            contacts, worst = np.zeros((2, 3)), 1.0
            if not pads.any():
                continue
            for side, sign in enumerate((-1.0, 1.0)):
                # the finger first touches the part's outermost sample on its side, anywhere along the
                # pad; the contact is the patch within half contact_tolerance of it that faces the
                # finger and lies BELOW_TOP under the top (none: the pad touches the rim first)
                first_touch = np.flatnonzero(pads)[np.argmax(sign * own[pads, 0])]
                touch = pads & (sign * own[:, 0] >= sign * own[first_touch, 0] - config.contact_tolerance / 2)
                touch &= own[:, 2] <= top - BELOW_TOP
                # round that touch only: a concave part (a hole narrower than the pad) is touched at
                # the pad's edges, where its normal turns away, and a patch over both edges would
                # average to a good normal
                lateral = own[:, 1:] - own[first_touch, 1:]
                touch &= np.einsum("ij,ij->i", lateral, lateral) <= config.contact_tolerance**2
                if not touch.any():
                    worst = -1.0
                    break
                facing = own_normals[touch] * np.where(sign * own_normals[touch, 0] >= 0, 1.0, -1.0)[:, None]
                mean = facing.mean(axis=0)  # each normal turned towards the finger: their sign is not used
                worst = min(worst, sign * mean[0] / max(np.linalg.norm(mean), 1e-12))
                contacts[side] = middle + own[touch].mean(axis=0) @ frame
            if worst < cone_cos:
                continue
            # the part under the pads is flat enough that wherever a pad first touches it (noise hides
            # a few mm of curvature, e.g. a small bowl's concave inside touched at the fingertip) the
            # contact holds: FLAT_QUANTILE of its samples' normal lines within the friction cone
            under = pads & (own[:, 2] <= top - BELOW_TOP)
            if np.mean(np.abs(own_normals[under, 0]) >= cone_cos) < FLAT_QUANTILE:
                continue
            pose = np.eye(4)
            pose[:3, 0], pose[:3, 1], pose[:3, 2] = x_axis, y_axis, z_axis
            pose[:3, 3] = middle - tip * z_axis
            return pose, 2 * half_open, contacts, worst
    return None
