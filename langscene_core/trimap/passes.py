"""The three TriMap passes with one model (RGB, normals, semantics) and ``densify_pair``, the entry
point the reconstruction job calls for each pair of consecutive keyframes.

All images here are numpy, channels last: rgb [H, W, 3] float32 in [0, 1]; normals [H, W, 3] float32
unit vectors in the camera's OpenCV frame (see langscene_core.geometry.normals); masks [L, H, W] int64 ids per
granularity level (s/m/l), 0 = background. Generation runs at the model size (``settings.height`` x
``settings.width``, 0 = the model's native size) and results are resized back to the keyframe size.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from langscene_core.capture.frames import Frame
from langscene_core.config import DensifyConfig, TrimapModelConfig
from langscene_core.geometry.camera import Intrinsics
from langscene_core.geometry.normals import depth_to_normals, normals_to_rgb, rgb_to_normals
from langscene_core.trimap.palette import make_palette, masks_to_rgb, rgb_to_masks
from langscene_core.trimap.pipeline import TrimapPipeline
from langscene_core.trimap.poses import PoseRecoveryError, recover_poses
from langscene_core.trimap.register import KeyframeView, register_frames


def model_size(pipe: TrimapPipeline, settings: TrimapModelConfig) -> tuple[int, int]:
    """(H, W) the passes generate at: the settings' size, or the model's native size where they say 0."""
    native_h, native_w = pipe.native_size
    return settings.height or native_h, settings.width or native_w


def _resize(video: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, size]; 'nearest' keeps exact values (palette colours, ids)."""
    if tuple(video.shape[-2:]) == tuple(size):
        return video
    if mode == "nearest":
        return F.interpolate(video, size=size, mode="nearest-exact")
    return F.interpolate(video, size=size, mode="bilinear", align_corners=False, antialias=True)


def interpolate_images(
    pipe: TrimapPipeline,
    first: np.ndarray,
    last: np.ndarray,
    settings: TrimapModelConfig,
    generator: torch.Generator | None = None,
    exact_colours: bool = False,
) -> np.ndarray:
    """Generate ``settings.frames`` images between two [H, W, 3] images in [0, 1].

    Returns [T, h, w, 3] float32 in [0, 1] at the model size (frame 0 and T-1 are the model's
    reconstructions of the inputs). ``exact_colours`` resizes the inputs by nearest neighbour.
    """
    if first.shape != last.shape or first.ndim != 3 or first.shape[-1] != 3:
        raise ValueError(f"keyframe images must both be [H, W, 3]; got {first.shape} and {last.shape}")
    pair = torch.from_numpy(np.stack([first, last]).astype(np.float32)).permute(0, 3, 1, 2)
    pair = _resize(pair, model_size(pipe, settings), "nearest" if exact_colours else "bilinear").clamp(0, 1)
    frames = pipe(
        pair[:1],
        pair[1:],
        num_frames=settings.frames,
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance,
        prompt=settings.prompt,
        generator=generator,
        strength=settings.strength,
    ).frames[0]
    return frames.permute(0, 2, 3, 1).cpu().numpy()


def _to_size(video: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[T, h, w, C] float -> [T, H, W, C] bilinear."""
    tensor = torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2)
    return _resize(tensor, size, "bilinear").permute(0, 2, 3, 1).numpy()


def rgb_pass(
    pipe: TrimapPipeline,
    rgb_a: np.ndarray,
    rgb_b: np.ndarray,
    settings: TrimapModelConfig,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """RGB keyframes [H, W, 3] in [0, 1] -> RGB frames [T, H, W, 3] float32 in [0, 1]."""
    video = interpolate_images(pipe, rgb_a, rgb_b, settings, generator)
    return np.clip(_to_size(video, rgb_a.shape[:2]), 0.0, 1.0)


def normal_pass(
    pipe: TrimapPipeline,
    normals_a: np.ndarray,
    normals_b: np.ndarray,
    settings: TrimapModelConfig,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Camera-frame normal keyframes [H, W, 3] -> normal frames [T, H, W, 3] float32, unit length
    (zero where the model produced neutral grey)."""
    video = interpolate_images(pipe, normals_to_rgb(normals_a), normals_to_rgb(normals_b), settings, generator)
    return rgb_to_normals(_to_size(video, normals_a.shape[:2]))


def semantic_pass(
    pipe: TrimapPipeline,
    masks_a: np.ndarray,
    masks_b: np.ndarray,
    settings: TrimapModelConfig,
    generator: torch.Generator | None = None,
    palette: np.ndarray | None = None,
) -> np.ndarray:
    """Mask keyframes [L, H, W] int (0 = background) -> mask frames [T, L, H, W] int64.

    Each level is palette-coloured, interpolated, and decoded by nearest palette colour among the ids
    present in either keyframe at that level (so a blurred colour cannot decode to an absent id).
    Ids should denote the same segment in both keyframes where the caller knows the correspondence.
    """
    if masks_a.shape != masks_b.shape or masks_a.ndim != 3:
        raise ValueError(f"mask keyframes must both be [L, H, W]; got {masks_a.shape} and {masks_b.shape}")
    if palette is None:
        palette = make_palette(int(max(masks_a.max(), masks_b.max())) + 1)
    size = masks_a.shape[1:]
    levels = []
    for level_a, level_b in zip(masks_a, masks_b):
        video = interpolate_images(
            pipe,
            masks_to_rgb(level_a, palette),
            masks_to_rgb(level_b, palette),
            settings,
            generator,
            exact_colours=True,
        )
        present = np.union1d(np.union1d(level_a, level_b), [0]).astype(np.int64)
        ids = present[rgb_to_masks(video, palette[present])]  # [T, h, w]
        ids = _resize(torch.from_numpy(ids).unsqueeze(1).float(), size, "nearest")[:, 0].round().long()
        levels.append(ids.numpy())
    return np.stack(levels, axis=1)


@dataclass(frozen=True)
class TrimapKeyframe:
    """One keyframe for densification.

    rgb: [H, W, 3] float32 in [0, 1]; cam_to_world: [4, 4] metric pose (OpenCV axes, world frame);
    depth: [H, W] metres or None; normals: [H, W, 3] camera-frame or None (then from depth when there is
    depth); masks: [L, H, W] int ids (s/m/l) or None.
    """

    rgb: np.ndarray
    cam_to_world: np.ndarray
    intrinsics: Intrinsics
    depth: np.ndarray | None = None
    normals: np.ndarray | None = None
    masks: np.ndarray | None = None

    @classmethod
    def from_frame(cls, frame: Frame, masks: np.ndarray | None = None) -> TrimapKeyframe:
        """From a posed pipeline frame (uint8 rgb, NaN depth where none) and optional masks [L, H, W]."""
        depth = None if frame.depth is None else np.nan_to_num(frame.depth, nan=0.0)
        return cls(
            rgb=np.asarray(frame.rgb, dtype=np.float32) / 255.0,
            cam_to_world=frame.cam_to_world,
            intrinsics=frame.intrinsics,
            depth=depth,
            masks=masks,
        )

    def camera_normals(self) -> np.ndarray | None:
        if self.normals is not None:
            return self.normals
        return depth_to_normals(self.depth, self.intrinsics) if self.depth is not None else None


@dataclass(frozen=True)
class DensifiedClip:
    """T frames from keyframe a (index 0) to keyframe b (index T-1), at the keyframes' size.

    rgb: [T, H, W, 3] float32 in [0, 1]; normals: [T, H, W, 3] float32 camera-frame unit normals, or None
    when the keyframes had neither normals nor depth; masks: [T, L, H, W] int64 or None without mask
    keyframes; poses: [T, 4, 4] float64 cam_to_world (NaN rows for frames not registered) or None when
    pose recovery failed as a whole; pose_method: 'pnp' (both keyframes had depth) or 'sfm'; pose_message
    says why recovery failed (empty otherwise); dropped: generated frame index -> why it was not
    registered. Frames 0 and T-1 hold the keyframes' own data and poses. intrinsics: shared by all frames.
    """

    rgb: np.ndarray
    normals: np.ndarray | None
    masks: np.ndarray | None
    poses: np.ndarray | None
    intrinsics: Intrinsics
    pose_method: str = "pnp"
    pose_message: str = ""
    dropped: dict[int, str] = field(default_factory=dict)

    def report(self) -> str:
        """One line: how many generated frames got a pose, by which method, and why the others did not."""
        generated = len(self.rgb) - 2
        if self.poses is None:
            return f"0/{generated} generated frames used ({self.pose_method}: {self.pose_message})"
        used = int(np.all(np.isfinite(self.poses[1:-1]), axis=(1, 2)).sum())
        reasons = "; ".join(f"frame {t}: {why}" for t, why in sorted(self.dropped.items()))
        return f"{used}/{generated} generated frames used ({self.pose_method})" + (
            f", dropped {reasons}" if reasons else ""
        )


def densify_pair(
    pipe: TrimapPipeline,
    key_a: TrimapKeyframe,
    key_b: TrimapKeyframe,
    settings: TrimapModelConfig,
    densify: DensifyConfig = DensifyConfig(),
    frames: int | None = None,
    generator: torch.Generator | None = None,
    workdir: str | Path | None = None,
) -> DensifiedClip:
    """Generate the frames between two keyframes (all three passes) and pose them.

    ``frames`` overrides ``settings.frames`` (k * 8 + 1 for CogVideoX). When both keyframes have depth
    each generated frame is registered alone to them by 2D-3D matches and PnP
    (langscene_core.trimap.register; frames failing its checks get NaN poses and a reason in
    ``dropped``); otherwise poses come from SfM over the clip aligned to the two keyframe poses, and on
    PoseRecoveryError ``poses`` is None with ``pose_message`` carrying the reason (the caller then keeps
    only the keyframes).
    """
    if key_a.intrinsics != key_b.intrinsics:
        raise ValueError("keyframes of a pair must share intrinsics (same camera and image size)")
    if frames is not None:
        settings = replace(settings, frames=frames)
    rgb = rgb_pass(pipe, key_a.rgb, key_b.rgb, settings, generator)
    rgb[0], rgb[-1] = key_a.rgb, key_b.rgb

    normals = None
    normals_a, normals_b = key_a.camera_normals(), key_b.camera_normals()
    if normals_a is not None and normals_b is not None:
        normals = normal_pass(pipe, normals_a, normals_b, settings, generator)
        normals[0], normals[-1] = normals_a, normals_b

    masks = None
    if key_a.masks is not None and key_b.masks is not None:
        masks = semantic_pass(pipe, key_a.masks, key_b.masks, settings, generator)
        masks[0], masks[-1] = key_a.masks, key_b.masks

    last = len(rgb) - 1
    common = {"rgb": rgb.astype(np.float32), "normals": normals, "masks": masks, "intrinsics": key_a.intrinsics}
    if key_a.depth is not None and key_b.depth is not None:
        keys = {t: KeyframeView(k.rgb, k.depth, k.cam_to_world) for t, k in ((0, key_a), (last, key_b))}
        registrations = register_frames(rgb, key_a.intrinsics, keys, densify)
        poses = np.array([np.full((4, 4), np.nan) if r.pose is None else r.pose for r in registrations])
        dropped = {t: r.reason for t, r in enumerate(registrations) if r.pose is None}
        return DensifiedClip(**common, poses=poses, pose_method="pnp", dropped=dropped)
    try:
        recovered = recover_poses(
            rgb, key_a.intrinsics, {0: key_a.cam_to_world, last: key_b.cam_to_world}, densify, workdir
        )
    except PoseRecoveryError as exc:
        return DensifiedClip(**common, poses=None, pose_method="sfm", pose_message=str(exc))
    poses = recovered.poses
    poses[0], poses[last] = key_a.cam_to_world, key_b.cam_to_world
    dropped = {t: "SfM did not register it" for t in range(1, last) if not recovered.registered[t]}
    return DensifiedClip(**common, poses=poses, pose_method="sfm", dropped=dropped)
