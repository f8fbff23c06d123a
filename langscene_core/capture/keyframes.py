"""Keyframe selection: keep a frame when the camera moved enough and the image is sharp enough.

Memory is bounded: past ``max_keyframes`` new frames are dropped and counted, not queued.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from langscene_core.capture.frames import Frame
from langscene_core.config import KeyframeConfig


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (rgb: [H, W, 3] uint8; grey on a 0..255 scale)."""
    grey = rgb.astype(np.float32).mean(axis=-1)
    return float(ndimage.laplace(grey).var())


def pose_distance(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(translation metres, rotation degrees) between two [4, 4] camera poses."""
    translation = float(np.linalg.norm(a[:3, 3] - b[:3, 3]))
    cos_angle = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1.0) / 2.0
    return translation, float(np.degrees(np.arccos(np.clip(cos_angle, -1.0, 1.0))))


@dataclass
class KeyframeBuffer:
    """Bounded set of keyframes; :meth:`offer` says why a frame was or was not kept."""

    config: KeyframeConfig
    keyframes: list[Frame] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"accepted": 0, "too_close": 0, "blurry": 0, "full": 0})

    def offer(self, frame: Frame) -> str:
        """Returns 'accepted', 'too_close' (camera barely moved since a keyframe), 'blurry' or 'full'."""
        verdict = self._judge(frame)
        self.counts[verdict] += 1
        if verdict == "accepted":
            self.keyframes.append(frame)
        return verdict

    def _judge(self, frame: Frame) -> str:
        if sharpness(frame.rgb) < self.config.min_sharpness:
            return "blurry"
        for kept in self.keyframes:
            moved, turned = pose_distance(kept.cam_to_world, frame.cam_to_world)
            if moved < self.config.min_translation and turned < self.config.min_rotation_deg:
                return "too_close"
        if len(self.keyframes) >= self.config.max_keyframes:
            return "full"
        return "accepted"

    def clear(self) -> None:
        self.keyframes.clear()
        for key in self.counts:
            self.counts[key] = 0
