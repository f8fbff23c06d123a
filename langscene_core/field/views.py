"""Training views of the language surface field: what ``train_field`` consumes per frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from langscene_core.geometry.camera import Intrinsics


@dataclass(frozen=True)
class TrainView:
    """One posed frame with its supervision.

    rgb: [H, W, 3] float32 in 0..1.
    intrinsics: pinhole camera (image size H x W).
    cam_to_world: [4, 4] camera optical frame (x right, y down, z forward) -> world.
    depth: [H, W] float32 metres along camera z, 0 / NaN = unknown; optional.
    normal: [H, W, 3] float32 unit normal prior in the WORLD frame (zero vector = unknown); optional.
    masks: [L, H, W] int64 mask id per pixel per level (s, m, l), -1 = no mask; optional (stage B).
    latents: [L, H, W, 3] float32 LQC latent target per pixel per level; optional (stage B).
    weight: scale of all of this view's losses in both stages (generated frames weigh less than
    captured keyframes, which so keep priority where the two disagree).
    """

    rgb: np.ndarray
    intrinsics: Intrinsics
    cam_to_world: np.ndarray
    depth: np.ndarray | None = None
    normal: np.ndarray | None = None
    masks: np.ndarray | None = None
    latents: np.ndarray | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        h, w = self.intrinsics.height, self.intrinsics.width
        checks = [("rgb", self.rgb, (h, w, 3)), ("depth", self.depth, (h, w)), ("normal", self.normal, (h, w, 3))]
        if self.masks is not None:
            checks.append(("masks", self.masks, (self.masks.shape[0], h, w)))
        if self.latents is not None:
            n_levels = self.latents.shape[0]
            checks.append(("latents", self.latents, (n_levels, h, w, 3)))
            if self.masks is not None and self.masks.shape[0] != n_levels:
                raise ValueError(f"masks have {self.masks.shape[0]} levels but latents {n_levels}")
        for name, value, shape in checks:
            if value is not None and tuple(value.shape) != shape:
                raise ValueError(f"TrainView.{name} must be {shape} for a {w}x{h} camera, got {tuple(value.shape)}")
        if np.asarray(self.cam_to_world).shape != (4, 4):
            raise ValueError(f"TrainView.cam_to_world must be [4, 4], got {np.asarray(self.cam_to_world).shape}")
