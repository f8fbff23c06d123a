"""Pinhole intrinsics, camera poses (OpenCV convention) and depth unprojection.

Conventions used across the package:
- ``cam_to_world``: [4, 4] float64 (or float32) rigid transform, camera optical frame -> world frame,
  camera axes x right, y down, z forward (OpenCV / ROS optical frame).
- ``world_to_cam`` (gsplat's ``viewmats``) is its inverse.
- Pixel (u, v): u along image width (column), v along height (row); pixel centres at integer + 0.5 when
  unprojecting a full image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera: focal lengths and principal point in pixels, image size."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @property
    def K(self) -> np.ndarray:
        """[3, 3] float64 calibration matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def from_hfov(cls, width: int, height: int, hfov_deg: float) -> Intrinsics:
        """Square pixels, principal point at the image centre."""
        f = 0.5 * width / np.tan(np.radians(hfov_deg) / 2.0)
        return cls(fx=f, fy=f, cx=width / 2.0, cy=height / 2.0, width=width, height=height)

    @classmethod
    def from_K(cls, K: np.ndarray, width: int, height: int) -> Intrinsics:
        return cls(
            fx=float(K[0, 0]),
            fy=float(K[1, 1]),
            cx=float(K[0, 2]),
            cy=float(K[1, 2]),
            width=int(width),
            height=int(height),
        )


def look_at(
    eye: np.ndarray, target: np.ndarray, up: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 1.0)
) -> np.ndarray:
    """Camera-to-world [4, 4] for a camera at ``eye`` looking at ``target`` (OpenCV axes).

    ``up`` is the world's up direction; the image's -y axis points as close to it as possible.
    """
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(right) < 1e-9:  # looking straight along up: pick any perpendicular
        right = np.cross(forward, np.array([1.0, 0.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye
    return pose


def invert_pose(pose: np.ndarray) -> np.ndarray:
    """Inverse of a rigid [4, 4] transform."""
    inv = np.eye(4, dtype=pose.dtype)
    rot = pose[:3, :3]
    inv[:3, :3] = rot.T
    inv[:3, 3] = -rot.T @ pose[:3, 3]
    return inv


def pixel_rays(intrinsics: Intrinsics) -> np.ndarray:
    """[H, W, 3] float64 camera-frame ray directions with z = 1 through each pixel centre."""
    u = np.arange(intrinsics.width) + 0.5
    v = np.arange(intrinsics.height) + 0.5
    uu, vv = np.meshgrid(u, v)
    x = (uu - intrinsics.cx) / intrinsics.fx
    y = (vv - intrinsics.cy) / intrinsics.fy
    return np.stack([x, y, np.ones_like(x)], axis=-1)


def unproject_depth(depth: np.ndarray, intrinsics: Intrinsics, cam_to_world: np.ndarray) -> np.ndarray:
    """World points of every pixel.

    depth: [H, W] metres along the camera z axis (0 or non-finite = no measurement).
    Returns [H, W, 3] float64 world-frame points; pixels without depth are NaN.
    """
    d = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float64)
    cam_points = pixel_rays(intrinsics) * d[..., None]
    return cam_points @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]


def project_points(
    points_world: np.ndarray, intrinsics: Intrinsics, cam_to_world: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of world points.

    points_world: [N, 3]. Returns (uv [N, 2] float64 continuous pixel coords, z [N] camera depth).
    """
    world_to_cam = invert_pose(cam_to_world)
    cam = points_world @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = intrinsics.fx * cam[:, 0] / z + intrinsics.cx
        v = intrinsics.fy * cam[:, 1] / z + intrinsics.cy
    return np.stack([u, v], axis=-1), z
