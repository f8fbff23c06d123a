"""Poses of generated frames: pycolmap SfM over keyframes + generated frames, then a Sim(3) alignment of
the SfM cameras to the keyframes' metric poses.

Poses are ``cam_to_world`` [4, 4] float64 in the OpenCV camera convention (see langscene_core.camera);
the world frame is the keyframes' frame.
"""
from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pycolmap
from PIL import Image

from langscene_core.camera import Intrinsics
from langscene_core.config import DensifyConfig


# SIFT settings for small rendered frames (upsampled, little texture): COLMAP's default peak threshold
# (0.0067) finds too few keypoints on the smooth table texture, and domain-size pooling (DSP-SIFT)
# makes descriptors of upsampled, blurry frames match across views.
SIFT_PEAK_THRESHOLD = 0.002
SIFT_DOMAIN_SIZE_POOLING = True


class PoseRecoveryError(RuntimeError):
    """SfM could not register the frames well enough; callers fall back to the keyframes alone."""


@dataclass(frozen=True)
class RecoveredPoses:
    """poses: [N, 4, 4] float64 cam_to_world, NaN for unregistered frames; registered: [N] bool;
    keyframe_error_m: largest distance between an aligned keyframe centre and its metric centre."""

    poses: np.ndarray
    registered: np.ndarray
    keyframe_error_m: float


def recover_poses(frames: np.ndarray, intrinsics: Intrinsics, known_poses: Mapping[int, np.ndarray],
                  settings: DensifyConfig = DensifyConfig(), workdir: str | Path | None = None) -> RecoveredPoses:
    """Recover metric poses for every frame of a sequence.

    frames: [N, H, W, 3] float in [0, 1] (or uint8), all taken with ``intrinsics``.
    known_poses: frame index -> metric cam_to_world [4, 4] (the keyframes; at least two, apart).
    Frames narrower than ``settings.sfm_min_size`` are upsampled for SIFT (intrinsics scaled alike).
    Raises PoseRecoveryError when a keyframe is not registered, fewer than
    ``settings.min_registered_fraction`` of the other frames are, or the keyframes do not fit a
    similarity transform within ``settings.max_keyframe_error_m``.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [N, H, W, 3], got {frames.shape}")
    if len(known_poses) < 2 or any(not 0 <= i < len(frames) for i in known_poses):
        raise ValueError(f"need at least two known poses with indices in [0, {len(frames)}), got {sorted(known_poses)}")
    if frames.shape[1:3] != (intrinsics.height, intrinsics.width):
        raise ValueError(f"frame size {frames.shape[1:3]} does not match the intrinsics "
                         f"({intrinsics.height}, {intrinsics.width})")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        sfm_poses = _run_sfm(frames, intrinsics, settings.sfm_min_size, Path(tmp))
    missing = [i for i in known_poses if i not in sfm_poses]
    if missing:
        raise PoseRecoveryError(f"SfM did not register keyframe(s) {missing} ({len(sfm_poses)}/{len(frames)} "
                                f"frames registered)")
    others = [i for i in range(len(frames)) if i not in known_poses]
    fraction = sum(i in sfm_poses for i in others) / max(len(others), 1)
    if fraction < settings.min_registered_fraction:
        raise PoseRecoveryError(f"SfM registered {fraction:.0%} of the generated frames, "
                                f"below densify.min_registered_fraction={settings.min_registered_fraction}")
    scale, rotation, translation = align_sim3({i: sfm_poses[i] for i in known_poses}, known_poses)
    poses = np.full((len(frames), 4, 4), np.nan)
    for i, pose in sfm_poses.items():
        poses[i] = apply_sim3(pose, scale, rotation, translation)
    error = max(float(np.linalg.norm(poses[i][:3, 3] - known_poses[i][:3, 3])) for i in known_poses)
    if error > settings.max_keyframe_error_m:
        raise PoseRecoveryError(f"keyframes fit the SfM cameras only within {error:.3f} m, above "
                                f"densify.max_keyframe_error_m={settings.max_keyframe_error_m}")
    registered = np.array([i in sfm_poses for i in range(len(frames))])
    return RecoveredPoses(poses=poses, registered=registered, keyframe_error_m=error)


def _run_sfm(frames: np.ndarray, intrinsics: Intrinsics, min_size: int, tmp: Path) -> dict[int, np.ndarray]:
    """Incremental SfM with fixed pinhole intrinsics; frame index -> cam_to_world in SfM units.

    Only the largest reconstruction is kept.
    """
    factor = max(1.0, min_size / intrinsics.width)
    size = (round(intrinsics.width * factor), round(intrinsics.height * factor))
    sx, sy = size[0] / intrinsics.width, size[1] / intrinsics.height
    image_dir = tmp / "images"
    image_dir.mkdir()
    images = frames if frames.dtype == np.uint8 else (np.clip(frames, 0, 1) * 255 + 0.5).astype(np.uint8)
    names = [f"{i:05d}.png" for i in range(len(frames))]
    for name, image in zip(names, images):
        Image.fromarray(image).resize(size, Image.BICUBIC).save(image_dir / name)
    database = tmp / "database.db"
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "PINHOLE"
    reader.camera_params = ",".join(str(v) for v in (intrinsics.fx * sx, intrinsics.fy * sy,
                                                      intrinsics.cx * sx, intrinsics.cy * sy))
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.sift.peak_threshold = SIFT_PEAK_THRESHOLD
    extraction.sift.domain_size_pooling = SIFT_DOMAIN_SIZE_POOLING
    pycolmap.extract_features(database, image_dir, camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader,
                              extraction_options=extraction, device=pycolmap.Device.cpu)
    pycolmap.match_exhaustive(database, device=pycolmap.Device.cpu)
    options = pycolmap.IncrementalPipelineOptions()
    options.ba_refine_focal_length = False
    options.ba_refine_principal_point = False
    options.ba_refine_extra_params = False
    options.random_seed = 0
    reconstructions = pycolmap.incremental_mapping(database, image_dir, tmp / "sparse", options)
    if not reconstructions:
        raise PoseRecoveryError(f"SfM found no reconstruction over {len(frames)} frames (too few matches)")
    best = max(reconstructions.values(), key=lambda r: r.num_reg_images())
    index = {name: i for i, name in enumerate(names)}
    return {index[image.name]: _cam_to_world(image.cam_from_world().matrix())
            for image in best.images.values() if image.has_pose}


def _cam_to_world(cam_from_world: np.ndarray) -> np.ndarray:
    """[3, 4] world-to-camera -> [4, 4] cam_to_world."""
    pose = np.eye(4)
    rotation = cam_from_world[:3, :3]
    pose[:3, :3] = rotation.T
    pose[:3, 3] = -rotation.T @ cam_from_world[:3, 3]
    return pose


def align_sim3(source: Mapping[int, np.ndarray], target: Mapping[int, np.ndarray]) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R [3, 3], t [3]) with target ~ s R source + t for matching cam_to_world poses.

    Umeyama's least-squares fit (pycolmap.estimate_sim3d) over the camera centres and the tips of each
    camera's axes: with only two keyframes the centres alone leave the roll about their baseline free,
    the axes fix it. Axis tips sit at the keyframes' mean spacing ``L`` in the target frame and at
    ``L / s0`` in the source frame, with ``s0`` the ratio of centre spacings, so both sets are scaled alike.
    """
    keys = sorted(source)
    src_c = np.array([source[k][:3, 3] for k in keys])
    tgt_c = np.array([target[k][:3, 3] for k in keys])
    src_spacing = np.mean([np.linalg.norm(a - b) for a, b in itertools.combinations(src_c, 2)])
    tgt_spacing = np.mean([np.linalg.norm(a - b) for a, b in itertools.combinations(tgt_c, 2)])
    if src_spacing < 1e-9 or tgt_spacing < 1e-9:
        raise PoseRecoveryError("keyframe centres coincide; scale cannot be recovered")
    src_points, tgt_points = [], []
    for k in keys:
        src_points += [source[k][:3, 3]] + [source[k][:3, 3] + source[k][:3, j] * src_spacing for j in range(3)]
        tgt_points += [target[k][:3, 3]] + [target[k][:3, 3] + target[k][:3, j] * tgt_spacing for j in range(3)]
    sim = pycolmap.estimate_sim3d(np.array(src_points), np.array(tgt_points))
    if sim is None:
        raise PoseRecoveryError("Sim(3) estimation between SfM and keyframe cameras failed")
    return float(sim.scale), np.asarray(sim.rotation.matrix()), np.asarray(sim.translation)


def apply_sim3(pose: np.ndarray, scale: float, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Map a cam_to_world [4, 4] through x -> s R x + t (the camera keeps unit scale)."""
    out = np.eye(4)
    out[:3, :3] = rotation @ pose[:3, :3]
    out[:3, 3] = scale * rotation @ pose[:3, 3] + translation
    return out
