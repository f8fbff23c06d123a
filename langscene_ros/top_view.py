"""A picture of answers: the scene from above with each answer's box, grasps and pre-grasps (PIL).

Looking down the scene frame's -z: x to the right, y up in the image. The scene's Gaussian centres
are drawn lowest first in their colours; per answer (one colour each) the outline of its box seen from
above, its prompt, and per grasp the jaws (a bar across the closing direction x, ``width`` long, at the
grasp position), a line from the pre-grasp (:meth:`Gripper.pregrasp_pose`) to the grasp, and a ring
at the pre-grasp.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy.spatial import ConvexHull

from langscene_core.query.grasp.gripper import Gripper
from langscene_core.query.objects import QueryResult

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]


def top_view(
    means: np.ndarray,
    colors: np.ndarray,
    answers: Sequence[tuple[str, QueryResult]],
    gripper: Gripper,
    size_px: int = 800,
) -> Image.Image:
    """means [N, 3] metres and colors [N, 3] float 0..1 of the scene; ``answers`` (prompt, result)
    in the scene frame. Returns an RGB image about ``size_px`` wide."""
    means = np.asarray(means, dtype=np.float64)
    low, high = means[:, :2].min(axis=0), means[:, :2].max(axis=0)
    pad = 0.05 * float(max(high - low)) + 1e-3
    low, high = low - pad, high + pad
    scale = size_px / float(high[0] - low[0])
    height = int(np.ceil((high[1] - low[1]) * scale))

    def pixel(xy: np.ndarray) -> np.ndarray:
        xy = np.atleast_2d(xy)
        return np.stack([(xy[:, 0] - low[0]) * scale, (high[1] - xy[:, 1]) * scale], axis=1)

    canvas = np.full((height, size_px, 3), 255, dtype=np.uint8)
    order = np.argsort(means[:, 2])
    px = np.clip(pixel(means[order, :2]).astype(int), 0, [size_px - 1, height - 1])
    rgb = np.clip(np.asarray(colors)[order] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    for dy in (0, 1):  # 2x2 px per Gaussian
        for dx in (0, 1):
            canvas[np.minimum(px[:, 1] + dy, height - 1), np.minimum(px[:, 0] + dx, size_px - 1)] = rgb
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for i, (prompt, result) in enumerate(answers):
        colour = PALETTE[i % len(PALETTE)]
        box = result.object_box
        if box is None:
            draw.text((8, 8 + 14 * i), f"{prompt}: no object", fill=colour)
            continue
        corners = np.array([[sx, sy, sz] for sx in (-0.5, 0.5) for sy in (-0.5, 0.5) for sz in (-0.5, 0.5)])
        world = (box.pose[:3, :3] @ (corners * box.extent).T).T + box.pose[:3, 3]
        outline = pixel(world[:, :2])
        hull = outline[ConvexHull(outline).vertices]
        draw.polygon([tuple(p) for p in hull], outline=colour, width=3)
        top = outline[np.argmin(outline[:, 1])]
        draw.text((float(top[0]), max(float(top[1]) - 14, 0)), prompt, fill=colour)
        for grasp in result.grasps:
            pose = grasp.pose
            pre = gripper.pregrasp_pose(pose)
            centre, closing = pose[:3, 3], pose[:3, 0] * grasp.width / 2
            jaws = pixel(np.stack([centre - closing, centre + closing])[:, :2])
            approach = pixel(np.stack([pre[:3, 3], centre])[:, :2])
            draw.line([tuple(p) for p in approach], fill=colour, width=1)
            draw.line([tuple(p) for p in jaws], fill=colour, width=3)
            x, y = approach[0]
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], outline=colour, width=1)
    return image
