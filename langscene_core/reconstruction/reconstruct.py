"""The reconstruction job: posed keyframes -> an immutable :class:`~langscene_core.reconstruction.scene.Scene`.

Steps (DESIGN.md section 2): optional TriMap densification between consecutive keyframes; s/m/l masks
per frame (keyframes: the mask mapper; generated frames: the semantic pass); one CLIP feature per mask;
LQC latents painted into per-level latent maps; normal priors (from depth, or the normal pass); the
language surface field trained on all of it; each Gaussian's latent snapped to its LQC code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from langscene_core.capture.frames import Frame
from langscene_core.capture.resample import downscale_frame
from langscene_core.config import LangsceneConfig
from langscene_core.errors import ReconstructionError
from langscene_core.field.train import train_field
from langscene_core.field.views import TrainView
from langscene_core.geometry.camera import Intrinsics
from langscene_core.geometry.normals import depth_to_normals, normals_to_world
from langscene_core.language.features import mask_features
from langscene_core.reconstruction.models import Models
from langscene_core.reconstruction.scene import Scene, build_scene

ProgressFn = Callable[[float, str], None]  # (fraction done 0..1, message)


@dataclass(frozen=True)
class SupervisedFrame:
    """A frame with everything the field trains on.

    rgb: [H, W, 3] float32 0..1; depth: [H, W] metres (NaN none) or None; normals_cam: [H, W, 3]
    camera-frame normal prior (zero = none) or None; masks: [L, H, W] int64 ids (-1 none) or None.
    """

    rgb: np.ndarray
    intrinsics: Intrinsics
    cam_to_world: np.ndarray
    depth: np.ndarray | None
    normals_cam: np.ndarray | None
    masks: np.ndarray | None


def keyframe_supervision(frame: Frame) -> SupervisedFrame:
    """A captured keyframe: normals from its depth when it has depth; masks come later."""
    normals = (
        depth_to_normals(np.nan_to_num(frame.depth, nan=0.0), frame.intrinsics) if frame.depth is not None else None
    )
    return SupervisedFrame(
        rgb=frame.rgb.astype(np.float32) / 255.0,
        intrinsics=frame.intrinsics,
        cam_to_world=frame.cam_to_world,
        depth=frame.depth,
        normals_cam=normals,
        masks=None,
    )


def densified_supervision(
    keyframes: Sequence[Frame], models: Models, config: LangsceneConfig, progress: ProgressFn
) -> tuple[list[SupervisedFrame], list[str]]:
    """TriMap frames between consecutive keyframes (their own poses recovered by SfM).

    Returns the generated frames (keyframes excluded) and one note per pair whose frames were dropped.
    """
    from langscene_core.trimap.passes import TrimapKeyframe, densify_pair

    generated: list[SupervisedFrame] = []
    notes: list[str] = []
    pairs = list(zip(keyframes[:-1], keyframes[1:]))
    for index, (a, b) in enumerate(pairs):
        progress(index / max(len(pairs), 1), f"densifying keyframe pair {index + 1}/{len(pairs)}")
        key_a, key_b = (TrimapKeyframe.from_frame(f, masks=models.masks(f.rgb)) for f in (a, b))
        clip = densify_pair(models.trimap, key_a, key_b, models.config.trimap, config.densify)
        if clip.poses is None:
            notes.append(f"pair {index + 1}: generated frames dropped ({clip.pose_message})")
            continue
        for t in range(1, len(clip.rgb) - 1):
            if np.all(np.isfinite(clip.poses[t])):
                generated.append(
                    SupervisedFrame(
                        rgb=clip.rgb[t],
                        intrinsics=clip.intrinsics,
                        cam_to_world=clip.poses[t],
                        depth=None,
                        normals_cam=None if clip.normals is None else clip.normals[t],
                        masks=None if clip.masks is None else clip.masks[t],
                    )
                )
    return generated, notes


def train_view(frame: SupervisedFrame, models: Models) -> TrainView:
    """Masks (unless the frame brings its own), CLIP features per mask, LQC latent maps, world normals."""
    masks = frame.masks if frame.masks is not None else models.masks((frame.rgb * 255).astype(np.uint8))
    features = mask_features(models.clip, frame.rgb, masks, batch_size=models.config.clip.batch_size)
    latent_table = models.lqc.encode(features.table.to(models.device)).cpu()  # [M, 3]
    latents = latent_table[features.ids.clamp(min=0)] * (features.ids >= 0).unsqueeze(-1)  # [L, H, W, 3]
    normal = None if frame.normals_cam is None else normals_to_world(frame.normals_cam, frame.cam_to_world)
    depth = None if frame.depth is None else np.nan_to_num(frame.depth, nan=0.0).astype(np.float32)
    return TrainView(
        rgb=frame.rgb,
        intrinsics=frame.intrinsics,
        cam_to_world=frame.cam_to_world,
        depth=depth,
        normal=normal,
        masks=features.ids.numpy(),
        latents=latents.numpy().astype(np.float32),
    )


def reconstruct(
    keyframes: Sequence[Frame], models: Models, config: LangsceneConfig, progress: ProgressFn | None = None
) -> Scene:
    """Build a scene from posed keyframes (scene frame ``config.node.scene_frame``).

    Raises ReconstructionError when the keyframes cannot make a scene. ``progress`` receives
    (fraction 0..1, message) now and then.
    """
    report = progress or (lambda fraction, message: None)
    keyframes = [downscale_frame(f, config.keyframe.max_image_side) for f in keyframes]
    if len(keyframes) < 2:
        raise ReconstructionError(f"need at least 2 keyframes, have {len(keyframes)}")
    if not any(f.depth is not None and np.isfinite(f.depth).any() for f in keyframes):
        raise ReconstructionError(
            "no keyframe has depth: the field is initialised from RGB-D unprojection (publish the depth topic)"
        )
    frames = [keyframe_supervision(f) for f in keyframes]
    notes: list[str] = []
    if config.densify.mode == "trimap":
        if models.trimap is None:
            raise ReconstructionError("densify.mode is trimap but no TriMap model is loaded")
        generated, notes = densified_supervision(keyframes, models, config, lambda f, m: report(0.3 * f, m))
        frames += generated
    start = 0.3 if config.densify.mode == "trimap" else 0.0
    views = []
    with torch.no_grad():
        for index, frame in enumerate(frames):
            report(start + 0.2 * index / len(frames), f"language features {index + 1}/{len(frames)}")
            views.append(train_view(frame, models))
    gaussians = train_field(
        views, config.field, device=models.device, progress=lambda f, m: report(start + 0.2 + (0.8 - start) * f, m)
    )
    report(1.0, "scene ready")
    info = {
        "keyframes": len(keyframes),
        "frames": len(frames),
        "notes": notes,
        "clip": models.config.clip.weights,
        "lqc": models.config.lqc.checkpoint,
    }
    return build_scene(gaussians, models.lqc, config.node.scene_frame, info)
