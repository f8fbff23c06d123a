"""Downscale posed frames for reconstruction: the cost of masks, CLIP features and field training grows
with the pixel count, so a CPU budget caps the image size (``keyframe.max_image_side``)."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.ndimage import maximum_filter, minimum_filter
from skimage.transform import resize

from langscene_core.capture.frames import Frame
from langscene_core.geometry.camera import Intrinsics


def scaled_intrinsics(intrinsics: Intrinsics, width: int, height: int) -> Intrinsics:
    """The same camera imaging ``width`` x ``height`` pixels (pixel centres at integer + 0.5, so the
    principal point scales with the focal lengths)."""
    sx, sy = width / intrinsics.width, height / intrinsics.height
    return Intrinsics(
        fx=intrinsics.fx * sx,
        fy=intrinsics.fy * sy,
        cx=intrinsics.cx * sx,
        cy=intrinsics.cy * sy,
        width=width,
        height=height,
    )


def downscale_frame(frame: Frame, max_side: int) -> Frame:
    """``frame`` with its longer image side at most ``max_side`` pixels (0: unchanged).

    RGB is area-averaged (anti-aliased, uint8 kept); depth as :func:`downscale_depth`. Pose and stamp
    are unchanged.
    """
    height, width = frame.rgb.shape[:2]
    if max_side < 0:
        raise ValueError(f"max_side must be >= 0, got {max_side}")
    if max_side == 0 or max(height, width) <= max_side:
        return frame
    scale = max_side / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    rgb = resize(frame.rgb, size, order=1, anti_aliasing=True, preserve_range=True)
    depth = None if frame.depth is None else downscale_depth(frame.depth, size)
    return dataclasses.replace(
        frame,
        rgb=np.clip(np.rint(rgb), 0, 255).astype(np.uint8),
        depth=depth,
        intrinsics=scaled_intrinsics(frame.intrinsics, size[1], size[0]),
    )


EDGE_RATIO = 1.02  # depths further apart than this within a 3x3 neighbourhood: an occlusion edge


def downscale_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """depth: [H, W] metres (NaN unknown) -> [h, w] float32 sampled at the new pixel centres.

    Bilinear on smooth surfaces (nearest sampling would be off by half a source pixel); the nearest
    sample at occlusion edges and next to unknown depth, so no depth is invented between a foreground
    and a background surface and NaN stays NaN.
    """
    depth = np.asarray(depth, dtype=np.float64)
    nearest = resize(depth, size, order=0, anti_aliasing=False, preserve_range=True)
    smooth = resize(depth, size, order=1, anti_aliasing=False, preserve_range=True)
    filled = np.nan_to_num(depth, nan=0.0)
    low = resize(minimum_filter(filled, size=3), size, order=0, anti_aliasing=False, preserve_range=True)
    high = resize(maximum_filter(filled, size=3), size, order=0, anti_aliasing=False, preserve_range=True)
    edge = ~(low > 0) | (high > EDGE_RATIO * low) | ~np.isfinite(smooth)
    return np.where(edge, nearest, smooth).astype(np.float32)
