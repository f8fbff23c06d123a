"""LERF-OVS style labels of a rendered frame (labelme-like JSON, one file per eval frame).

Layout (what the LangSplat / LERF-OVS evaluation reads)::

    {"info": {"name": "eval_0000.png", "width": W, "height": H},
     "objects": [{"category": "red mug", "segmentation": [[x, y], ...], "bbox": [x1, y1, x2, y2]}]}

One entry per visible connected part of an object (occlusion can split an object; the category
repeats). Coordinates are continuous pixel coordinates (x along the width, pixel (c, r) covers
[c, c + 1] x [r, r + 1]); ``bbox`` encloses the part's pixels, the polygon traces their outline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from skimage import draw, measure

from langscene_core.sim.render import RenderedFrame
from langscene_core.sim.spec import WorldSpec

POLYGON_TOLERANCE = 0.5  # pixels, polygon simplification (skimage.measure.approximate_polygon)


def _part_polygon(part: np.ndarray) -> list[list[float]]:
    """Outline [[x, y], ...] of one connected boolean mask [H, W] (its longest contour)."""
    padded = np.pad(part, 1).astype(np.float64)
    contour = max(measure.find_contours(padded, 0.5), key=len) - 1.0  # (row, col) of the padded image
    contour = measure.approximate_polygon(contour, POLYGON_TOLERANCE)
    return [[round(float(c) + 0.5, 2), round(float(r) + 0.5, 2)] for r, c in contour]


def frame_labels(frame: RenderedFrame, spec: WorldSpec, image_name: str) -> dict[str, Any]:
    """LERF-OVS JSON of ``frame`` (layout in the module docstring); objects without pixels are left out."""
    h, w = frame.ids.shape
    objects = []
    for k, obj in enumerate(spec.objects, start=1):
        parts = measure.label(frame.ids == k, connectivity=1)
        for region in measure.regionprops(parts):
            r0, c0, r1, c1 = region.bbox
            objects.append(
                {
                    "category": obj.name,
                    "segmentation": _part_polygon(parts == region.label),
                    "bbox": [float(c0), float(r0), float(c1), float(r1)],
                }
            )
    return {"info": {"name": image_name, "width": w, "height": h}, "objects": objects}


def polygon_mask(polygon: list[list[float]], height: int, width: int) -> np.ndarray:
    """[H, W] bool mask of the pixels whose centres lie inside ``polygon`` ([[x, y], ...])."""
    xy = np.asarray(polygon, dtype=np.float64)
    rows, cols = draw.polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape=(height, width))
    mask = np.zeros((height, width), dtype=bool)
    mask[rows, cols] = True
    return mask
