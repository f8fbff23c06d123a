"""Hierarchical masks of a frame at three granularities s/m/l (DESIGN.md 2.3).

A mask mapper turns one RGB image into ``[3, H, W] int32`` mask ids: level 0 = s (small parts),
1 = m, 2 = l (whole objects / large regions). Ids count from 0 within each level; -1 marks a pixel that
no mask covers (the felzenszwalb mapper covers every pixel; learned mappers may not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import skimage.graph
import skimage.segmentation

from langscene_core.config import MasksConfig

LEVELS = ("s", "m", "l")


class MaskMapper(Protocol):
    def __call__(self, image: np.ndarray) -> np.ndarray:
        """image: [H, W, 3] uint8 (0..255) or float (0..1) RGB. Returns [3, H, W] int32 mask ids."""


def as_float_rgb(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 or float RGB -> [H, W, 3] float64 in 0..1; ValueError on any other shape."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be [H, W, 3] RGB, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    return np.clip(image.astype(np.float64), 0.0, 1.0)


def _sequential(labels: np.ndarray) -> np.ndarray:
    """Relabel to 0..n-1 (order of first label value)."""
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32)


@dataclass(frozen=True)
class FelzenszwalbMasks:
    """Weight-free s/m/l masks: scikit-image felzenszwalb superpixels (level s), then two nested merges
    of neighbouring regions whose mean colours differ by less than ``merge_thresholds`` (levels m, l)
    on a region adjacency graph. Every coarser region is a union of finer ones, so the number of
    masks never grows from s to m to l, and every pixel has a mask at every level."""

    scale: float = 100.0
    sigma: float = 0.5
    min_size: int = 20
    merge_thresholds: tuple[float, float] = (0.08, 0.2)

    def __post_init__(self) -> None:
        if len(self.merge_thresholds) != 2 or not 0 < self.merge_thresholds[0] <= self.merge_thresholds[1]:
            raise ValueError(
                f"merge_thresholds must be two increasing positive values (m, l), got {self.merge_thresholds}"
            )
        if self.scale <= 0 or self.min_size < 1:
            raise ValueError(f"felzenszwalb scale must be > 0 and min_size >= 1, got {self.scale}, {self.min_size}")

    @classmethod
    def from_config(cls, config: MasksConfig) -> FelzenszwalbMasks:
        return cls(
            config.felzenszwalb_scale,
            config.felzenszwalb_sigma,
            config.felzenszwalb_min_size,
            tuple(config.merge_thresholds),
        )

    def __call__(self, image: np.ndarray) -> np.ndarray:
        rgb = as_float_rgb(image)
        levels = [
            _sequential(
                skimage.segmentation.felzenszwalb(
                    rgb, scale=self.scale, sigma=self.sigma, min_size=self.min_size, channel_axis=-1
                )
            )
        ]
        for threshold in self.merge_thresholds:
            graph = skimage.graph.rag_mean_color(rgb, levels[-1], mode="distance")
            levels.append(_sequential(skimage.graph.cut_threshold(levels[-1], graph, threshold)))
        return np.stack(levels)


def make_mask_mapper(config: MasksConfig) -> MaskMapper:
    """The mapper named by ``models.masks.mapper``."""
    if config.mapper == "felzenszwalb":
        return FelzenszwalbMasks.from_config(config)
    if config.mapper == "sam2":
        raise ValueError(
            "models.masks.mapper 'sam2' is not available in this build (no SAM2 package or "
            "weights on this machine); use 'felzenszwalb'"
        )
    raise ValueError(f"unknown models.masks.mapper {config.mapper!r}: expected felzenszwalb or sam2")
