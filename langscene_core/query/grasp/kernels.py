"""The compiled (numba) steps of :mod:`langscene_core.query.grasp.planner`: contact pairing and the closing check.

Written as loops by hand because no library closes a parallel-jaw gripper on a point set. The numpy
version of the closing check built [points x candidates x fingertip positions] temporaries and took
about 60 % of a query (two batches of 64 candidates, 15-20 ms each). The kernel makes one pass over
each candidate's slab of points per fingertip position, stops at the first feasible position and skips
the collision pass where the contacts already fail: the same grasps, about 7x faster (measured on the
query_core scene). Pairing walks each first contact's closing line over the object's samples instead
of [contacts x samples] matrices. Both are compiled when this module is imported, with explicit
signatures and ``cache=True``: numba keeps the machine code next to this module (or in its user cache
when that is read-only), so only the first process after an install compiles.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numba
import numpy as np


@dataclass(frozen=True)
class GripperBox:
    """The gripper (:class:`~langscene_core.query.grasp.gripper.Gripper`) and the planner's margins as the
    kernel uses them (built by ``planner._gripper_box``), metres, gripper frame (x closing, y across,
    z approach, fingertips at z = depth).

    half_finger_y: half the finger pads' width (|y| of a pad). margin: collision margin around every part.
    tolerance: contact tolerance (a touch is wider than it; a contact patch is its half deep).
    cone_cos: cosine of the friction cone's half angle. x_reach: |x| beyond which no part reaches.
    z_low, z_high: the z range any part reaches at any depth. palm_back: the swept volume's back end
    behind the fingertips (fingers, palm, approach distance; the margin comes on top).
    finger_depth, palm_margin, finger_thickness, clearance (opening added beyond each contact),
    max_width (the gripper's largest opening), max_contact (widest contact distance), half_x_open
    (half the widest swept footprint along x, margin included), depth_clearance (kept by the deepest
    clear fingertip position), depth_limit (|fingertip position| at most).
    """

    half_finger_y: float
    margin: float
    tolerance: float
    cone_cos: float
    x_reach: float
    z_low: float
    z_high: float
    palm_back: float
    finger_depth: float
    palm_margin: float
    finger_thickness: float
    clearance: float
    max_width: float
    max_contact: float
    half_x_open: float
    depth_clearance: float
    depth_limit: float


@dataclass(frozen=True)
class ClosedGripper:
    """Per candidate [C], at its first feasible fingertip position, gripper frame before the shift.

    feasible: [C] bool, the fingers touch the object on both sides within the friction cone and the
    opening, and nothing is hit on the way in, at some fingertip position. depth: [C] that position
    along z. shift: [C] x that centres the fingers on the touched samples. half_open: [C] half the
    opening. contacts: [C, 2, 3] contact patch centres (-x side, +x side). cos: [C] the smaller
    cosine between a contact's mean outward normal and its finger's outward x. Rows of infeasible
    candidates hold zeros.
    """

    feasible: np.ndarray
    depth: np.ndarray
    shift: np.ndarray
    half_open: np.ndarray
    contacts: np.ndarray
    cos: np.ndarray


def close_gripper(
    points: np.ndarray,
    target: np.ndarray,
    normals: np.ndarray,
    smooth: np.ndarray,
    poses: np.ndarray,
    fixed_depths: np.ndarray,
    box: GripperBox,
    support: tuple[np.ndarray, float] | None,
) -> ClosedGripper:
    """Close the gripper of every candidate pose on the points (see :func:`langscene_core.query.grasp.planner._close`).

    points: [N, 3] float64 scene frame; target: [N] bool, object samples (the first T rows);
    normals: [T, 3] their outward unit normals; smooth: [T] bool, smooth patch. poses: [C, 4, 4].
    fixed_depths: [F] fingertip positions tried first, then the deepest clear one: within the widest
    opening's footprint, the palm's front stays ``palm_margin`` short of every object sample and the
    fingertips short of every obstacle point ahead of the origin and of the support, so the fingers
    reach as far round the object as its far side and the table allow (e.g. down to a ball's equator,
    a mug's rim, or just above the table beside a small box). support: (unit up normal [3], offset)
    of the support plane (points p with normal @ p + offset > 0 are above it), or None; every corner
    of the swept gripper stays ``margin`` above it.
    """
    rotations = np.ascontiguousarray(poses[:, :3, :3], dtype=np.float64)
    origins = np.einsum("ci,cij->cj", poses[:, :3, 3], rotations)  # each origin in its own frame
    if support is None:
        axes, heights = np.zeros((len(poses), 3)), np.full(len(poses), np.inf)
    else:
        normal, offset = support
        axes = np.einsum("cji,j->ci", rotations, normal)  # the support normal in each gripper frame
        heights = poses[:, :3, 3] @ normal + offset  # each origin's height above the support
    arrays = _close_kernel(
        np.ascontiguousarray(points, dtype=np.float64),
        np.ascontiguousarray(target),
        np.ascontiguousarray(normals, dtype=np.float64),
        np.ascontiguousarray(smooth),
        rotations,
        origins,
        np.asarray(fixed_depths, dtype=np.float64),
        axes,
        heights,
        *(getattr(box, field.name) for field in fields(box)),
    )  # astuple deep-copies: slow
    return ClosedGripper(*arrays)


_C2 = numba.float64[:, ::1]
_SIGNATURE = (
    _C2,
    numba.boolean[::1],
    _C2,
    numba.boolean[::1],
    numba.float64[:, :, ::1],
    _C2,
    numba.float64[::1],
    _C2,
    numba.float64[::1],
) + (numba.float64,) * len(GripperBox.__dataclass_fields__)


@numba.njit(_SIGNATURE, cache=True, nogil=True)
def _close_kernel(
    points,
    target,
    normals,
    smooth,
    rotations,
    origins,
    fixed,
    support_axes,
    support_heights,
    half_y,
    m,
    tol,
    cone_cos,
    x_reach,
    z_lo,
    z_hi,
    palm_back,
    finger_depth,
    palm_margin,
    finger_thickness,
    clearance,
    max_width,
    max_contact,
    half_x_open,
    depth_clearance,
    depth_limit,
):
    C, N, F = rotations.shape[0], points.shape[0], fixed.shape[0]
    feasible = np.zeros(C, np.bool_)
    depth_out, shift_out, open_out, cos_out = np.zeros(C), np.zeros(C), np.zeros(C), np.zeros(C)
    contacts = np.zeros((C, 2, 3))
    lx, ly, lz = np.empty(N), np.empty(N), np.empty(N)  # the candidate's slab, in its frame
    row = np.empty(N, np.int64)
    patch = np.zeros((2, 3))
    z_back = -(palm_back + m)
    for c in range(C):
        r, o, a = rotations[c], origins[c], support_axes[c]
        # the slab |y| <= half_y + m inside the reach box; the nearest object sample and obstacle ahead
        # under the widest footprint bound the deepest fingertip position
        k, nearest, obstacle = 0, np.inf, np.inf
        for n in range(N):
            px, py, pz = points[n, 0], points[n, 1], points[n, 2]
            y = px * r[0, 1] + py * r[1, 1] + pz * r[2, 1] - o[1]
            if abs(y) > half_y + m:
                continue
            x = px * r[0, 0] + py * r[1, 0] + pz * r[2, 0] - o[0]
            z = px * r[0, 2] + py * r[1, 2] + pz * r[2, 2] - o[2]
            if abs(x) > x_reach or z < z_lo or z > z_hi:
                continue
            lx[k], ly[k], lz[k], row[k] = x, y, z, n
            k += 1
            if abs(x) <= half_x_open:
                if target[n]:
                    nearest = min(nearest, z)
                elif z >= 0:
                    obstacle = min(obstacle, z)
        deepest = min(nearest + finger_depth - palm_margin - depth_clearance, obstacle - m - depth_clearance)
        if a[2] < -1e-6:  # approaching the support: the widest footprint's lowest corner stays above it
            lowest = support_heights[c] - half_x_open * abs(a[0]) - (half_y + m) * abs(a[1])
            deepest = min(deepest, (lowest - m - depth_clearance) / -a[2])
        for d in range(F + 1):
            tip = fixed[d] if d < F else min(max(deepest, -depth_limit), depth_limit)
            # the pads' object samples: the outermost ones along -x and +x are the first touches
            x_lo, x_hi = np.inf, -np.inf
            for i in range(k):
                zt = lz[i] - tip
                if target[row[i]] and abs(ly[i]) <= half_y and -finger_depth <= zt <= 0:
                    x_lo, x_hi = min(x_lo, lx[i]), max(x_hi, lx[i])
            width = x_hi - x_lo
            if not (tol < width <= max_contact and x_hi > 0 and x_lo < 0):
                continue
            shift = (x_hi + x_lo) / 2
            half_open = min(width / 2 + clearance, max_width / 2)
            # contact patches: smooth pad samples within tol / 2 of the outermost one, their mean
            # position and mean outward normal (a cosine against the finger's outward x)
            worst = 1.0
            for side in range(2):
                sign, extreme = (-1.0, x_lo) if side == 0 else (1.0, x_hi)
                count, sx, sy, sz, along, across_y, across_z = 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
                for i in range(k):
                    n, zt = row[i], lz[i] - tip
                    if not (target[n] and abs(ly[i]) <= half_y and -finger_depth <= zt <= 0):
                        continue
                    if not smooth[n] or sign * (lx[i] - extreme) < -tol / 2:
                        continue
                    count += 1
                    sx, sy, sz = sx + lx[i], sy + ly[i], sz + lz[i]
                    nx, ny, nz = normals[n, 0], normals[n, 1], normals[n, 2]
                    along += nx * r[0, 0] + ny * r[1, 0] + nz * r[2, 0]
                    across_y += nx * r[0, 1] + ny * r[1, 1] + nz * r[2, 1]
                    across_z += nx * r[0, 2] + ny * r[1, 2] + nz * r[2, 2]
                if count == 0:
                    worst = -1.0
                    break
                patch[side, 0], patch[side, 1], patch[side, 2] = sx / count, sy / count, sz / count
                norm = np.sqrt(along * along + across_y * across_y + across_z * across_z)
                worst = min(worst, sign * along / max(norm, 1e-12))
            if worst < cone_cos:
                continue
            # the swept gripper box stays above the support: its lowest corner
            lowest = (
                support_heights[c]
                + shift * a[0]
                - (half_open + finger_thickness) * abs(a[0])
                - half_y * abs(a[1])
                + min(tip * a[2], (tip - palm_back) * a[2])
            )
            if lowest < m:
                continue
            # the re-centred fingers and palm swept along the approach: object samples may fill the
            # slot between the fingers, other points only between the contacts
            hit = False
            for i in range(k):
                zt = lz[i] - tip
                if zt > m or zt < z_back:
                    continue
                ax = abs(lx[i] - shift)
                if ax > half_open + finger_thickness + m:
                    continue
                inner = half_open if target[row[i]] else width / 2
                if ax < inner - m and zt > -finger_depth + palm_margin:
                    continue
                hit = True
                break
            if hit:
                continue
            feasible[c] = True
            depth_out[c], shift_out[c], open_out[c], cos_out[c] = tip, shift, half_open, worst
            contacts[c] = patch
            break
    return feasible, depth_out, shift_out, open_out, contacts, cos_out


def farthest_on_lines(
    points: np.ndarray, directions: np.ndarray, first: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Walk the closing line of each first contact over the points.

    points: [M, 3] float64; first: [K] int64 rows of the first contacts; directions: [K, 3] unit closing
    directions (into the object). Among the points within ``tolerance`` of the line through
    points[first[k]] along directions[k]: second [K] int64, the farthest along it (the first of equals);
    reach [K] float64, its distance along the line; outermost [K] bool, none lies more than
    ``tolerance`` behind the first contact (it is where a finger closing along the line first touches).
    """
    return _farthest_on_lines(
        np.ascontiguousarray(points, dtype=np.float64),
        np.ascontiguousarray(directions, dtype=np.float64),
        np.ascontiguousarray(first, dtype=np.int64),
        float(tolerance),
    )


@numba.njit((numba.float64[:, ::1], numba.float64[:, ::1], numba.int64[::1], numba.float64), cache=True, nogil=True)
def _farthest_on_lines(points, directions, first, tolerance):
    K, M = first.shape[0], points.shape[0]
    second = np.zeros(K, np.int64)
    reach = np.full(K, -np.inf)
    outermost = np.ones(K, np.bool_)
    for k in range(K):
        f, d = first[k], directions[k]
        for m in range(M):
            dx, dy, dz = points[m, 0] - points[f, 0], points[m, 1] - points[f, 1], points[m, 2] - points[f, 2]
            along = d[0] * dx + d[1] * dy + d[2] * dz
            if dx * dx + dy * dy + dz * dz - along * along > tolerance * tolerance:
                continue  # off the line
            if along < -tolerance:
                outermost[k] = False
            if along > reach[k]:
                second[k], reach[k] = m, along
    return second, reach, outermost
