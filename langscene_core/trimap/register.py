"""Poses of generated frames from the keyframes' metric poses and depth: 2D-3D matches and PnP.

On a robot every keyframe has a metric pose and (with an RGB-D camera) depth, so a generated frame is
registered alone against them, not by a joint SfM of the clip: SIFT keypoints (pycolmap.Sift, frames
upsampled to ``densify.sfm_min_size`` like SfM's) are matched to each keyframe's (Lowe ratio test, both
directions), the keyframe's keypoints are lifted to world points by its depth, and the pose comes from
LO-RANSAC PnP with non-linear refinement (pycolmap.estimate_and_refine_absolute_pose). A frame is kept
only when its registration passes the stated checks (:func:`register_frame`); SfM + Sim(3)
(langscene_core.trimap.poses) remains for keyframes without depth.

Poses are ``cam_to_world`` [4, 4] float64 (OpenCV axes, world frame = the keyframes'); pixel
coordinates follow langscene_core.geometry.camera (pixel centres at integer + 0.5, as COLMAP's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pycolmap
from PIL import Image

from langscene_core.config import DensifyConfig
from langscene_core.geometry.camera import Intrinsics
from langscene_core.trimap.poses import SIFT_DOMAIN_SIZE_POOLING, SIFT_PEAK_THRESHOLD

# Lowe's ratio for SIFT matches (his paper's 0.8); matches must also be mutual nearest neighbours.
MATCH_RATIO = 0.8
# A keyframe keypoint is lifted only where the depth around it is smooth: the 3x3 neighbourhood's depth
# may spread by at most this fraction of the centre depth (at object edges a keypoint's depth pixel may
# belong to the background, and its 3D point would be centimetres off).
MAX_DEPTH_SPREAD = 0.02


@dataclass(frozen=True)
class KeyframeView:
    """A keyframe to register against: rgb [H, W, 3] float in [0, 1] or uint8; depth [H, W] metres along
    the camera z axis (0 or non-finite = none); cam_to_world [4, 4] metric, world frame."""

    rgb: np.ndarray
    depth: np.ndarray
    cam_to_world: np.ndarray


@dataclass(frozen=True)
class FrameRegistration:
    """pose: [4, 4] cam_to_world or None when dropped; inliers: PnP inliers (0 without an estimate);
    reason: why the frame was dropped ('' when kept)."""

    pose: np.ndarray | None
    inliers: int
    reason: str = ""


class _Features:
    """SIFT keypoints of frames at the size SIFT sees; ``xy`` in the source frame's pixel coordinates."""

    def __init__(self, intrinsics: Intrinsics, min_size: int) -> None:
        self.factor = max(1.0, min_size / intrinsics.width)
        self.size = (round(intrinsics.width * self.factor), round(intrinsics.height * self.factor))
        options = pycolmap.FeatureExtractionOptions()
        # the same settings SfM uses on these small, smooth frames (see trimap.poses)
        options.sift.peak_threshold = SIFT_PEAK_THRESHOLD
        options.sift.domain_size_pooling = SIFT_DOMAIN_SIZE_POOLING
        options.num_threads = 1
        self.sift = pycolmap.Sift(options, device=pycolmap.Device.cpu)

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """rgb [H, W, 3] -> (xy [K, 2] float64 source pixels, descriptors [K, 128] float32 unit rows)."""
        image = rgb if rgb.dtype == np.uint8 else (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
        grey = np.asarray(Image.fromarray(image).resize(self.size, Image.BICUBIC).convert("L"), dtype=np.uint8)
        keypoints, descriptors = self.sift.extract(np.ascontiguousarray(grey))
        descriptors = np.asarray(descriptors, dtype=np.float32)
        descriptors /= np.maximum(np.linalg.norm(descriptors, axis=1, keepdims=True), 1e-12)
        xy = np.asarray(keypoints[:, :2], dtype=np.float64) / self.factor
        return xy, descriptors


def match_descriptors(a: np.ndarray, b: np.ndarray, ratio: float = MATCH_RATIO) -> np.ndarray:
    """Mutual nearest neighbours of unit descriptors a [Ka, D] and b [Kb, D] that pass Lowe's ratio test
    in both directions. Returns [M, 2] int index pairs (into a, into b).

    Written by hand: pycolmap matches only inside its database, and these are a few thousand
    descriptors per frame, one matrix product."""
    if len(a) < 2 or len(b) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    distance = np.sqrt(np.maximum(2.0 - 2.0 * (a @ b.T), 0.0))
    ab = np.argsort(distance, axis=1)[:, :2]
    ba = np.argsort(distance, axis=0)[:2].T
    rows = np.arange(len(a))
    cols = np.arange(len(b))
    ok_a = distance[rows, ab[:, 0]] < ratio * distance[rows, ab[:, 1]]
    ok_b = distance[ba[:, 0], cols] < ratio * distance[ba[:, 1], cols]
    mutual = ba[ab[:, 0], 0] == rows
    keep = ok_a & mutual & ok_b[ab[:, 0]]
    return np.stack([rows[keep], ab[keep, 0]], axis=1)


def lift_keypoints(xy: np.ndarray, depth: np.ndarray, intrinsics: Intrinsics, cam_to_world: np.ndarray) -> np.ndarray:
    """World points [K, 3] of keypoints xy [K, 2] (pixel coordinates) from a depth map [H, W] (metres
    along z); NaN rows where the depth is missing or not smooth (``MAX_DEPTH_SPREAD``)."""
    h, w = depth.shape
    d = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan)
    col = np.clip(np.floor(xy[:, 0]).astype(int), 0, w - 1)
    row = np.clip(np.floor(xy[:, 1]).astype(int), 0, h - 1)
    padded = np.pad(d, 1, constant_values=np.nan)
    window = np.stack([padded[row + dy, col + dx] for dy in range(3) for dx in range(3)], axis=1)
    centre = d[row, col]
    with np.errstate(invalid="ignore"):
        spread = np.max(window, axis=1) - np.min(window, axis=1)
        smooth = spread <= MAX_DEPTH_SPREAD * centre
    z = np.where(smooth, centre, np.nan)
    cam = np.stack(
        [(xy[:, 0] - intrinsics.cx) / intrinsics.fx * z, (xy[:, 1] - intrinsics.cy) / intrinsics.fy * z, z], 1
    )
    return cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]


def _camera(intrinsics: Intrinsics) -> pycolmap.Camera:
    return pycolmap.Camera(
        model="PINHOLE",
        width=intrinsics.width,
        height=intrinsics.height,
        params=[intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy],
    )


def _offset_from_baseline(centre: np.ndarray, key_centres: np.ndarray) -> tuple[float, float]:
    """(distance of ``centre`` from the polyline through the keyframe centres [K, 3], its length)."""
    best, length = np.inf, 0.0
    for a, b in zip(key_centres[:-1], key_centres[1:]):
        ab = b - a
        span = float(ab @ ab)
        length += np.sqrt(span)
        t = 0.0 if span == 0 else float(np.clip((centre - a) @ ab / span, 0.0, 1.0))
        best = min(best, float(np.linalg.norm(centre - (a + t * ab))))
    return best, length


def register_frames(
    frames: np.ndarray,
    intrinsics: Intrinsics,
    keyframes: Mapping[int, KeyframeView],
    settings: DensifyConfig = DensifyConfig(),
) -> list[FrameRegistration]:
    """Register every frame of a clip against its keyframes (module docstring).

    frames: [N, H, W, 3] float in [0, 1] or uint8, all with ``intrinsics``; keyframes: frame index ->
    KeyframeView (its pose and depth; those frames keep their given pose). A frame is dropped, with its
    reason, when it has fewer than ``settings.pnp_min_inliers`` 2D-3D matches or PnP inliers (within
    ``settings.pnp_max_error_px`` pixels), or when its camera centre lies farther from the keyframes'
    baseline than ``settings.pnp_max_offset`` times the baseline's length (a pose no in-between view has).
    Returns one FrameRegistration per frame.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[1:3] != (intrinsics.height, intrinsics.width):
        raise ValueError(f"frames must be [N, {intrinsics.height}, {intrinsics.width}, 3], got {frames.shape}")
    if len(keyframes) < 2 or any(not 0 <= i < len(frames) for i in keyframes):
        raise ValueError(f"need at least two keyframe indices in [0, {len(frames)}), got {sorted(keyframes)}")
    features = _Features(intrinsics, settings.sfm_min_size)
    lifted = []
    for key in keyframes.values():
        xy, descriptors = features(key.rgb)
        points = lift_keypoints(xy, key.depth, intrinsics, key.cam_to_world)
        ok = np.all(np.isfinite(points), axis=1)
        lifted.append((points[ok], descriptors[ok]))
    key_centres = np.array([keyframes[i].cam_to_world[:3, 3] for i in sorted(keyframes)])
    camera = _camera(intrinsics)
    estimation = pycolmap.AbsolutePoseEstimationOptions()
    estimation.ransac.max_error = settings.pnp_max_error_px
    estimation.ransac.random_seed = 0
    results = []
    for index, frame in enumerate(frames):
        if index in keyframes:
            results.append(FrameRegistration(pose=keyframes[index].cam_to_world, inliers=0))
            continue
        xy, descriptors = features(frame)
        points2d, points3d = [], []
        for points, key_descriptors in lifted:
            pairs = match_descriptors(descriptors, key_descriptors)
            points2d.append(xy[pairs[:, 0]])
            points3d.append(points[pairs[:, 1]])
        results.append(
            register_frame(
                np.concatenate(points2d), np.concatenate(points3d), camera, estimation, key_centres, settings
            )
        )
    return results


def register_frame(
    points2d: np.ndarray,
    points3d: np.ndarray,
    camera: pycolmap.Camera,
    estimation: pycolmap.AbsolutePoseEstimationOptions,
    key_centres: np.ndarray,
    settings: DensifyConfig,
) -> FrameRegistration:
    """One frame's PnP from matches points2d [M, 2] (pixels) -> points3d [M, 3] (world) and its checks."""
    needed = settings.pnp_min_inliers
    if len(points2d) < needed:
        return FrameRegistration(None, 0, f"{len(points2d)} 2D-3D matches < densify.pnp_min_inliers={needed}")
    answer = pycolmap.estimate_and_refine_absolute_pose(points2d, points3d, camera, estimation)
    if answer is None:
        return FrameRegistration(None, 0, f"PnP found no pose from {len(points2d)} matches")
    inliers = int(answer["num_inliers"])
    if inliers < needed:
        return FrameRegistration(None, inliers, f"{inliers} PnP inliers < densify.pnp_min_inliers={needed}")
    cam_from_world = np.asarray(answer["cam_from_world"].matrix())
    pose = np.eye(4)
    pose[:3, :3] = cam_from_world[:3, :3].T
    pose[:3, 3] = -cam_from_world[:3, :3].T @ cam_from_world[:3, 3]
    offset, length = _offset_from_baseline(pose[:3, 3], key_centres)
    if offset > settings.pnp_max_offset * length:
        return FrameRegistration(
            None,
            inliers,
            f"camera {offset:.3f} m from the keyframes' baseline, beyond densify.pnp_max_offset="
            f"{settings.pnp_max_offset} x {length:.3f} m",
        )
    return FrameRegistration(pose, inliers)
