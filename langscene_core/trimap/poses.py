"""Poses of generated frames: pycolmap SfM over keyframes + generated frames, then a Sim(3) alignment of
the SfM cameras to the keyframes' metric poses.

Poses are ``cam_to_world`` [4, 4] float64 in the OpenCV camera convention (see langscene_core.geometry.camera);
the world frame is the keyframes' frame.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pycolmap
from PIL import Image

from langscene_core.config import DensifyConfig
from langscene_core.errors import PoseRecoveryError
from langscene_core.geometry.camera import Intrinsics

# SIFT settings for small rendered frames (upsampled, little texture): COLMAP's default peak threshold
# (0.0067) finds too few keypoints on the smooth table texture, and domain-size pooling (DSP-SIFT)
# makes descriptors of upsampled, blurry frames match across views.
SIFT_PEAK_THRESHOLD = 0.002
SIFT_DOMAIN_SIZE_POOLING = True
# Geometric tolerances in pixels of the frames SfM sees, at native size (COLMAP's defaults). Frames
# upsampled by f for SIFT keep their source-pixel localisation error, so the tolerances grow with f / 3.75
# (2x for 64-px frames upsampled to 480): at the default 4 px, 64-px clips kept 20-60 inliers a pair.
RANSAC_MAX_ERROR_PX = 4.0
INIT_MAX_ERROR_PX = 4.0
ABS_POSE_MAX_ERROR_PX = 12.0
FILTER_MAX_REPROJ_ERROR_PX = 4.0
ERROR_SCALE_PER_UPSAMPLING = 1 / 3.75
# Counts for short, small generated sequences: COLMAP's defaults (100 initial inliers, a 16-degree initial
# triangulation angle, 30 inliers and a 25 % inlier ratio to register a frame) are for photo collections;
# 9-frame clips over 15-60 degrees of orbit at 64 px have 15-110 inliers a pair and 2-7 degrees between
# neighbours, and registered 13 % of held-out true frames with them (79 % with these).
INIT_MIN_NUM_INLIERS = 15
INIT_MIN_TRI_ANGLE_DEG = 2.0
ABS_POSE_MIN_NUM_INLIERS = 10
ABS_POSE_MIN_INLIER_RATIO = 0.15
MIN_MODEL_SIZE = 3
# One thread for extraction, matching and mapping: with pycolmap's thread pools the same frames gave
# different reconstructions from run to run (3 outcomes in 3 runs of six 64-px clips; one run put
# frames 7-16 cm off). Single-threaded, the result is reproducible; six 9-frame clips take 36 s instead of 25 s.
SFM_THREADS = 1


@dataclass(frozen=True)
class RecoveredPoses:
    """poses: [N, 4, 4] float64 cam_to_world, NaN for unregistered frames; registered: [N] bool;
    keyframe_error_m: largest distance between an aligned keyframe centre and its metric centre."""

    poses: np.ndarray
    registered: np.ndarray
    keyframe_error_m: float


def recover_poses(
    frames: np.ndarray,
    intrinsics: Intrinsics,
    known_poses: Mapping[int, np.ndarray],
    settings: DensifyConfig = DensifyConfig(),
    workdir: str | Path | None = None,
) -> RecoveredPoses:
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
        raise ValueError(
            f"frame size {frames.shape[1:3]} does not match the intrinsics ({intrinsics.height}, {intrinsics.width})"
        )
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        sfm_poses = _run_sfm(frames, intrinsics, settings.sfm_min_size, Path(tmp))
    missing = [i for i in known_poses if i not in sfm_poses]
    if missing:
        raise PoseRecoveryError(
            f"SfM did not register keyframe(s) {missing} ({len(sfm_poses)}/{len(frames)} frames registered)"
        )
    registered = np.array([i in sfm_poses for i in range(len(frames))])
    _check_registered(registered, known_poses, settings)
    scale, rotation, translation = align_sim3({i: sfm_poses[i] for i in known_poses}, known_poses)
    poses = np.full((len(frames), 4, 4), np.nan)
    for i, pose in sfm_poses.items():
        poses[i] = apply_sim3(pose, scale, rotation, translation)
    error = max(float(np.linalg.norm(poses[i][:3, 3] - known_poses[i][:3, 3])) for i in known_poses)
    _check_keyframe_error(error, settings)
    return RecoveredPoses(poses=poses, registered=registered, keyframe_error_m=error)


def check_accepted(recovered: RecoveredPoses, known: Iterable[int], settings: DensifyConfig) -> None:
    """Raise PoseRecoveryError where :func:`recover_poses` with ``settings`` would have rejected poses it
    recovered under looser ones (e.g. to grade one SfM run against several limits). known: the
    indices of the frames whose poses were given."""
    _check_registered(recovered.registered, known, settings)
    _check_keyframe_error(recovered.keyframe_error_m, settings)


def _check_registered(registered: np.ndarray, known: Iterable[int], settings: DensifyConfig) -> None:
    """registered: [N] bool per frame; the frames other than ``known`` must reach min_registered_fraction."""
    others = np.setdiff1d(np.arange(len(registered)), list(known))
    fraction = float(registered[others].sum()) / max(len(others), 1)
    if fraction < settings.min_registered_fraction:
        raise PoseRecoveryError(
            f"SfM registered {fraction:.0%} of the generated frames, "
            f"below densify.min_registered_fraction={settings.min_registered_fraction}"
        )


def _check_keyframe_error(error: float, settings: DensifyConfig) -> None:
    if error > settings.max_keyframe_error_m:
        raise PoseRecoveryError(
            f"keyframes fit the SfM cameras only within {error:.3f} m, above "
            f"densify.max_keyframe_error_m={settings.max_keyframe_error_m}"
        )


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
    reader.camera_params = ",".join(
        str(v) for v in (intrinsics.fx * sx, intrinsics.fy * sy, intrinsics.cx * sx, intrinsics.cy * sy)
    )
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.sift.peak_threshold = SIFT_PEAK_THRESHOLD
    extraction.sift.domain_size_pooling = SIFT_DOMAIN_SIZE_POOLING
    extraction.num_threads = SFM_THREADS
    pycolmap.extract_features(
        database,
        image_dir,
        camera_mode=pycolmap.CameraMode.SINGLE,
        reader_options=reader,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
    )
    error_scale = max(1.0, factor * ERROR_SCALE_PER_UPSAMPLING)
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = SFM_THREADS
    pycolmap.match_exhaustive(
        database,
        matching_options=matching,
        verification_options=_verification_options(error_scale),
        device=pycolmap.Device.cpu,
    )
    options = _mapping_options(error_scale)
    reconstructions = pycolmap.incremental_mapping(database, image_dir, tmp / "sparse", options)
    if not reconstructions:
        raise PoseRecoveryError(f"SfM found no reconstruction over {len(frames)} frames (too few matches)")
    best = max(reconstructions.values(), key=lambda r: r.num_reg_images())
    index = {name: i for i, name in enumerate(names)}
    return {
        index[image.name]: _cam_to_world(image.cam_from_world().matrix())
        for image in best.images.values()
        if image.has_pose
    }


def _verification_options(error_scale: float) -> pycolmap.TwoViewGeometryOptions:
    """Two-view geometry with RANSAC tolerances scaled by ``error_scale`` and a fixed seed.

    Watermark detection is off: it drops pairs whose matches stay put near the image border, which a
    slowly moving camera over a plain table produces, and robot cameras carry no watermarks.
    """
    options = pycolmap.TwoViewGeometryOptions()
    options.ransac.max_error = RANSAC_MAX_ERROR_PX * error_scale
    options.ransac.random_seed = 0
    options.detect_watermark = False
    return options


def _mapping_options(error_scale: float) -> pycolmap.IncrementalPipelineOptions:
    """Incremental mapping with known intrinsics (never refined, also not when a frame is registered),
    tolerances scaled by ``error_scale`` and the short-sequence counts above."""
    options = pycolmap.IncrementalPipelineOptions()
    options.ba_refine_focal_length = False
    options.ba_refine_principal_point = False
    options.ba_refine_extra_params = False
    options.random_seed = 0
    options.num_threads = SFM_THREADS
    options.min_model_size = MIN_MODEL_SIZE
    mapper = options.mapper
    mapper.num_threads = SFM_THREADS
    mapper.abs_pose_refine_focal_length = False
    mapper.abs_pose_refine_extra_params = False
    mapper.init_min_num_inliers = INIT_MIN_NUM_INLIERS
    mapper.init_min_tri_angle = INIT_MIN_TRI_ANGLE_DEG
    mapper.abs_pose_min_num_inliers = ABS_POSE_MIN_NUM_INLIERS
    mapper.abs_pose_min_inlier_ratio = ABS_POSE_MIN_INLIER_RATIO
    mapper.init_max_error = INIT_MAX_ERROR_PX * error_scale
    mapper.abs_pose_max_error = ABS_POSE_MAX_ERROR_PX * error_scale
    mapper.filter_max_reproj_error = FILTER_MAX_REPROJ_ERROR_PX * error_scale
    return options


def _cam_to_world(cam_from_world: np.ndarray) -> np.ndarray:
    """[3, 4] world-to-camera -> [4, 4] cam_to_world."""
    pose = np.eye(4)
    rotation = cam_from_world[:3, :3]
    pose[:3, :3] = rotation.T
    pose[:3, 3] = -rotation.T @ cam_from_world[:3, 3]
    return pose


def align_sim3(
    source: Mapping[int, np.ndarray], target: Mapping[int, np.ndarray]
) -> tuple[float, np.ndarray, np.ndarray]:
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
