"""Shared fixtures data for the TriMap tests: a tiny model and a small moving-square clip."""

from __future__ import annotations

import numpy as np


def moving_square_clip(frames: int = 9, size: int = 32) -> np.ndarray:
    """[T, size, size, 3] float32 in [0, 1]: a colour gradient with a red square moving left to right."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    video = []
    for t in range(frames):
        image = np.stack([xx, yy, np.full_like(xx, 0.5)], axis=-1)
        centre = 0.2 + 0.6 * t / (frames - 1)
        image[(np.abs(xx - centre) < 0.15) & (np.abs(yy - 0.5) < 0.15)] = [1.0, 0.2, 0.1]
        video.append(image)
    return np.asarray(video, dtype=np.float32)
