"""The LERF-OVS 2D metrics exactly as LangSplat's ``eval/evaluate_iou_loc.py`` computes them (DESIGN.md 6).

Input per (eval view, query): ``maps`` [L, H, W], the query's relevancy per mask level at every pixel
(every pixel carries a rendered value; none is set to 0 for lack of coverage).

- Localization (LangSplat ``lerf_localization``): each level's map box-filtered (``size`` x ``size``
  mean, :func:`box_filter`); the level whose filtered map has the highest maximum answers (first level
  on a tie); a hit when any pixel holding that maximum, taken as its integer index (x = column, y =
  row), lies inside one of the category's boxes, edges included.
- IoU (LangSplat ``activate_stream``): per level ``0.5 * (box_filter(map) + map)``; the level whose
  averaged map has the highest maximum; ``a - min``, divided by its maximum + 1e-9, ``* 2 - 1``, clipped
  to [0, 1], ``> threshold`` (0.4); the mask through LangSplat's 7 x 7 majority filter
  (:func:`majority_filter`, ``utils.smooth``); IoU with the ground-truth mask.

Where we differ, in rounding only: LangSplat filters float32 maps with ``cv2.filter2D`` (a DFT above
11 x 11 kernels); :func:`box_filter` sums in float64 in a fixed order (rows, then columns), so that
identical windows (plateaus of a code-table map) give identical values and tie exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

LANGSPLAT_FILTER_PX = 30  # LangSplat's box filter side on LERF-OVS images
LERF_OVS_WIDTH = 1000  # approximate width of the LERF-OVS label images (985-988 px) the 30 px belongs to
IOU_THRESHOLD = 0.4  # on the map normalised to [0, 1], then x * 2 - 1: normalised > 0.7
SMOOTH_RADIUS = 3  # LangSplat's utils.smooth: a (2 * 3 + 1)-pixel square majority window
NORMALISE_EPS = 1e-9  # LangSplat's: output / (max + 1e-9)


def filter_px(width: int) -> int:
    """Box filter side for an image ``width`` pixels wide: LangSplat's 30 px scaled from the LERF-OVS
    width, rounded, at least 1 (30 on LERF-OVS itself; 5 at 160 px, 10 at 320 px)."""
    if width < 1:
        raise ValueError(f"image width must be positive, got {width}")
    return max(1, int(round(LANGSPLAT_FILTER_PX * width / LERF_OVS_WIDTH)))


def box_filter(maps: np.ndarray, size: int) -> np.ndarray:
    """Mean over a ``size`` x ``size`` window, as ``cv2.filter2D(map, -1, ones((size, size)) / size**2)``.

    maps: [..., H, W]; returns float64 [..., H, W]. The window of pixel (r, c) spans rows
    ``r - size // 2`` to ``r - size // 2 + size - 1`` (OpenCV's default anchor, the kernel centre, so an
    even kernel reaches one pixel further up/left than down/right) and likewise columns; outside the
    image the map is reflected without repeating the edge (OpenCV's default BORDER_REFLECT_101, numpy's
    ``reflect``)."""
    if size < 1:
        raise ValueError(f"box filter size must be positive, got {size}")
    values = np.asarray(maps, dtype=np.float64)
    before, after = size // 2, size - 1 - size // 2
    pad = [(0, 0)] * (values.ndim - 2) + [(before, after), (before, after)]
    padded = np.pad(values, pad, mode="reflect")
    rows = sliding_window_view(padded, size, axis=-1).sum(axis=-1)  # [..., H + size - 1, W]
    return sliding_window_view(rows, size, axis=-2).sum(axis=-1) / (size * size)


@dataclass(frozen=True)
class Localization:
    """hit: a pixel at the maximum lies in a box; level: the level that answered; pixels: [P, 2] int
    (x = column, y = row) every pixel holding the maximum of that level's filtered map."""

    hit: bool
    level: int
    pixels: np.ndarray


def localize(maps: np.ndarray, boxes: Sequence[Sequence[float]], size: int) -> Localization:
    """LangSplat's localization of one query in one view.

    maps: [L, H, W] relevancy per level; boxes: the category's [x1, y1, x2, y2] (pixel coordinates,
    either corner order); size: box filter side (:func:`filter_px`)."""
    filtered = box_filter(_levels(maps), size)
    peaks = filtered.reshape(len(filtered), -1).max(axis=1)
    level = int(np.argmax(peaks))
    rows, cols = np.nonzero(filtered[level] == peaks[level])
    pixels = np.stack([cols, rows], axis=1)
    hit = False
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        inside = (
            (pixels[:, 0] >= min(x1, x2))
            & (pixels[:, 0] <= max(x1, x2))
            & (pixels[:, 1] >= min(y1, y2))
            & (pixels[:, 1] <= max(y1, y2))
        )
        hit = hit or bool(inside.any())
    return Localization(hit=hit, level=level, pixels=pixels)


def majority_filter(mask: np.ndarray, radius: int = SMOOTH_RADIUS) -> np.ndarray:
    """LangSplat's ``utils.smooth``: each pixel takes the majority value of its window, a tie giving 0.

    mask: [H, W] bool or 0/1 (H, W >= 2); returns [H, W] bool. As in LangSplat the window of (r, c) is
    rows ``max(0, r - radius)`` to ``min(r + radius + 1, H - 1)`` exclusive (and likewise columns), so
    it never includes the last row or column."""
    m = np.asarray(mask).astype(bool)
    h, w = m.shape
    if h < 2 or w < 2:
        raise ValueError(f"the majority filter needs a mask of at least 2 x 2 pixels, got {h} x {w}")
    integral = np.zeros((h + 1, w + 1), dtype=np.int64)
    integral[1:, 1:] = m.cumsum(axis=0).cumsum(axis=1)
    r = np.arange(h)
    c = np.arange(w)
    r0, r1 = np.maximum(0, r - radius), np.minimum(r + radius + 1, h - 1)
    c0, c1 = np.maximum(0, c - radius), np.minimum(c + radius + 1, w - 1)
    ones = (
        integral[r1[:, None], c1[None, :]]
        - integral[r0[:, None], c1[None, :]]
        - integral[r1[:, None], c0[None, :]]
        + integral[r0[:, None], c0[None, :]]
    )
    count = (r1 - r0)[:, None] * (c1 - c0)[None, :]
    return 2 * ones > count


@dataclass(frozen=True)
class Segmentation:
    """iou: IoU of the predicted mask with the ground truth; level: the level that answered; mask: [H, W]
    bool the predicted mask (after the majority filter)."""

    iou: float
    level: int
    mask: np.ndarray


def segment(maps: np.ndarray, truth: np.ndarray, size: int, threshold: float = IOU_THRESHOLD) -> Segmentation:
    """LangSplat's IoU of one query in one view.

    maps: [L, H, W] relevancy per level; truth: [H, W] bool ground-truth mask (not empty); size: box
    filter side (:func:`filter_px`)."""
    levels = _levels(maps)
    truth = np.asarray(truth, dtype=bool)
    if truth.shape != levels.shape[1:]:
        raise ValueError(f"relevancy maps {levels.shape[1:]} and mask {truth.shape} differ in shape")
    if not truth.any():
        raise ValueError("empty ground-truth mask")
    averaged = 0.5 * (box_filter(levels, size) + levels)
    level = int(np.argmax(averaged.reshape(len(averaged), -1).max(axis=1)))
    shifted = averaged[level] - averaged[level].min()
    normalised = np.clip(shifted / (shifted.max() + NORMALISE_EPS) * 2.0 - 1.0, 0.0, 1.0)
    mask = majority_filter(normalised > threshold)
    iou = float(np.logical_and(mask, truth).sum() / np.logical_or(mask, truth).sum())
    return Segmentation(iou=iou, level=level, mask=mask)


def _levels(maps: np.ndarray) -> np.ndarray:
    """maps as float64 [L, H, W]; a single [H, W] map is one level."""
    values = np.asarray(maps, dtype=np.float64)
    if values.ndim == 2:
        values = values[None]
    if values.ndim != 3 or values.shape[0] == 0:
        raise ValueError(f"relevancy maps must be [L, H, W] or [H, W], got shape {values.shape}")
    return values
