"""Rendered training and evaluation clips for the bundled TriMap model.

A clip is ``frames`` views of a random world (:func:`crops.training_spec`, all colour x shape
combinations) from a camera moving along an orbit arc at constant elevation and radius, rendered in the
three TriMap modalities: RGB, camera-frame normals (``normals_to_rgb`` colours) and instance masks
(palette colours, 0 = background). The first and last frames are the keyframes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from langscene_core.geometry.camera import Intrinsics
from langscene_core.geometry.normals import normals_to_rgb
from langscene_core.sim import build_world, render
from langscene_core.sim.trajectory import orbit_pose
from langscene_core.training.crops import ELEVATION_RANGE_DEG, RADIUS_RANGE, training_spec
from langscene_core.training.trimap_train import TrainClip
from langscene_core.trimap.palette import make_palette, masks_to_rgb

ARC_SPAN_RANGE_DEG = (15.0, 60.0)  # azimuth travelled between the two keyframes
ARC_SPAN_BUCKETS_DEG = ((15.0, 25.0), (25.0, 40.0), (40.0, 60.0))  # evaluation reports each bucket
HFOV_DEG = 60.0
PALETTE_SIZE = 32  # ids 0 (background), 1 (table), 2.. objects


@dataclass(frozen=True)
class RenderedClip:
    """One clip. rgb: [T, H, W, 3] float32 0..1. normals: [T, H, W, 3] float32 camera-frame unit normals
    (0 where no surface). ids: [T, H, W] int64 (0 background, 1 table, k + 1 object k).
    cam_to_world: [T, 4, 4] float64 OpenCV poses. intrinsics: of every frame."""

    rgb: np.ndarray
    normals: np.ndarray
    ids: np.ndarray
    cam_to_world: np.ndarray
    intrinsics: Intrinsics

    def train_clips(self) -> list[TrainClip]:
        """The three modalities as TriMap training clips (rgb, normal, semantic)."""
        palette = make_palette(PALETTE_SIZE)
        return [
            TrainClip(self.rgb, "rgb"),
            TrainClip(normals_to_rgb(self.normals), "normal"),
            TrainClip(masks_to_rgb(self.ids, palette), "semantic"),
        ]


def arc_poses(
    rng: np.random.Generator, frames: int, span_range_deg: tuple[float, float] = ARC_SPAN_RANGE_DEG
) -> np.ndarray:
    """[frames, 4, 4] poses evenly along a random orbit arc (a uniform ``span_range_deg`` of azimuth)."""
    start = rng.uniform(0.0, 360.0)
    span = rng.uniform(*span_range_deg) * rng.choice([-1.0, 1.0])
    elevation, radius = rng.uniform(*ELEVATION_RANGE_DEG), rng.uniform(*RADIUS_RANGE)
    return np.stack([orbit_pose(a, elevation, radius) for a in start + span * np.linspace(0.0, 1.0, frames)])


def render_clip(
    seed: int, frames: int, size: tuple[int, int], span_range_deg: tuple[float, float] = ARC_SPAN_RANGE_DEG
) -> RenderedClip:
    """The clip of seed ``seed``: :func:`crops.training_spec` (held-out combinations kept) seen along
    :func:`arc_poses` over ``span_range_deg``, ``frames`` views of ``size`` (height, width) pixels."""
    if frames < 2:
        raise ValueError(f"a clip needs at least 2 frames, got {frames}")
    spec = training_spec(seed, exclude_held_out=False)
    if len(spec.objects) + 2 > PALETTE_SIZE:
        raise ValueError(f"seed {seed}: {len(spec.objects)} objects do not fit a {PALETTE_SIZE}-colour palette")
    intrinsics = Intrinsics.from_hfov(size[1], size[0], HFOV_DEG)
    poses = arc_poses(np.random.default_rng([seed, 2]), frames, span_range_deg)
    rendered = render(build_world(spec), intrinsics, poses)
    # world-frame normals n -> camera frame R^T n, written for row vectors as n @ R
    normals = np.stack([f.normals @ f.cam_to_world[:3, :3] for f in rendered]).astype(np.float32)
    return RenderedClip(
        rgb=np.stack([f.rgb for f in rendered]).astype(np.float32) / 255.0,
        normals=normals,
        ids=np.stack([f.ids for f in rendered]).astype(np.int64) + 1,
        cam_to_world=poses,
        intrinsics=intrinsics,
    )


def cross_fade(first: np.ndarray, last: np.ndarray, frames: int) -> np.ndarray:
    """[frames, ...] linear blend from ``first`` to ``last`` (the baseline a generated clip must beat)."""
    t = np.linspace(0.0, 1.0, frames).reshape(-1, *([1] * first.ndim))
    return ((1.0 - t) * first[None] + t * last[None]).astype(np.float32)


def psnr(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of images in 0..1."""
    mse = float(np.mean((np.asarray(estimate, np.float64) - np.asarray(truth, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def normal_error_deg(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Mean angle in degrees between normals [..., 3] over pixels where ``truth`` has a surface; a zero
    estimate counts as 90 degrees."""
    valid = np.linalg.norm(truth, axis=-1) > 0.5
    est = estimate / np.maximum(np.linalg.norm(estimate, axis=-1, keepdims=True), 1e-6)
    cos = np.clip(np.sum(est * truth, axis=-1), -1.0, 1.0)
    return float(np.degrees(np.arccos(cos[valid])).mean())
