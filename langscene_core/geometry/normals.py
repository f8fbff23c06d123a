"""Surface normals from depth, and the normal <-> RGB encoding used by the TriMap normal pass.

Frame: normals are unit vectors in the camera's OpenCV optical frame (x right, y down, z forward),
oriented towards the camera (n . ray < 0, so a surface seen head-on has n = (0, 0, -1)). Camera-frame
normals are what monocular normal estimators (StableNormal, the paper's D_N) produce; use
:func:`normals_to_world` to rotate them by a camera pose.

RGB encoding: rgb = (n + 1) / 2 per channel (x -> red, y -> green, z -> blue), values in [0, 1];
a pixel without a normal (no depth) is encoded as (0.5, 0.5, 0.5) and decoded as the zero vector.
"""

from __future__ import annotations

import numpy as np

from langscene_core.geometry.camera import Intrinsics, unproject_depth


def depth_to_normals(depth: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Camera-frame unit normals [H, W, 3] float32 from a depth map [H, W] (metres along z).

    Normals are the cross product of central differences of the back-projected points (one-sided at
    borders and next to missing depth); pixels without depth, or whose neighbours are all missing, are 0.
    """
    if depth.ndim != 2 or depth.shape != (intrinsics.height, intrinsics.width):
        raise ValueError(
            f"depth shape {depth.shape} does not match the intrinsics ({intrinsics.height}, {intrinsics.width})"
        )
    points = unproject_depth(depth, intrinsics, np.eye(4))  # [H, W, 3], NaN where missing
    du = _difference(points, axis=1)
    dv = _difference(points, axis=0)
    normals = np.cross(du, dv)
    normals = np.where(np.isfinite(normals), normals, 0.0)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 1e-12)
    facing = np.sum(normals * np.nan_to_num(points), axis=-1, keepdims=True)
    return np.where(facing > 0, -normals, normals).astype(np.float32)


def _difference(points: np.ndarray, axis: int) -> np.ndarray:
    """Derivative of points [H, W, 3] along ``axis``: central where both neighbours exist, else one-sided."""
    forward = np.full_like(points, np.nan)
    backward = np.full_like(points, np.nan)
    n = points.shape[axis]
    sl = lambda a, b: tuple(slice(a, b) if i == axis else slice(None) for i in range(3))
    forward[sl(0, n - 1)] = points[sl(1, n)] - points[sl(0, n - 1)]
    backward[sl(1, n)] = points[sl(1, n)] - points[sl(0, n - 1)]
    central = 0.5 * (forward + backward)
    return np.where(np.isfinite(central), central, np.where(np.isfinite(forward), forward, backward))


def normals_to_rgb(normals: np.ndarray) -> np.ndarray:
    """[..., 3] normals (unit or zero) -> [..., 3] float32 colours in [0, 1]."""
    return np.clip((np.asarray(normals, dtype=np.float32) + 1.0) * 0.5, 0.0, 1.0)


def rgb_to_normals(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] colours in [0, 1] -> [..., 3] float32 unit normals (zero where the colour is grey 0.5)."""
    vectors = np.asarray(rgb, dtype=np.float32) * 2.0 - 1.0
    length = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, length, out=np.zeros_like(vectors), where=length > 1e-3)


def normals_to_world(normals: np.ndarray, cam_to_world: np.ndarray) -> np.ndarray:
    """Rotate camera-frame normals [..., 3] into the world frame with a [4, 4] camera pose."""
    return (np.asarray(normals, dtype=np.float32) @ cam_to_world[:3, :3].T.astype(np.float32)).astype(np.float32)
