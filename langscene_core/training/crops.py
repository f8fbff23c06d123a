"""Rendered training views of random worlds and the image crops a CLIP encoder is trained on.

The pipeline (``langscene_core.language.features``) encodes each mask as its bounding-box crop with everything
outside the mask black, padded to a square. Training crops include exactly those (whole and partial
masks, as over-segmentation gives), crops with the rendered background kept around the subject, table
patches, and background (sky) regions, which match no caption.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from langscene_core.geometry.camera import Intrinsics
from langscene_core.sim import (
    BACKGROUND_ID,
    TABLE_ID,
    TableSpec,
    WorldSpec,
    build_world,
    intrinsics_of,
    random_spec,
    render,
)
from langscene_core.sim.trajectory import orbit_pose
from langscene_core.training.vocabulary import HELD_OUT, SUBJECT_COLORS, SUBJECT_SHAPES, TABLE_COLORS, TABLE_SHAPE

MAX_INSTANCES = 16  # instance ids 0..15 per view (table + up to 15 objects)
ELEVATION_RANGE_DEG = (20.0, 65.0)
RADIUS_RANGE = (0.45, 0.95)  # metres from the look-at point
OBJECT_COUNT_RANGE = (3, 6)  # objects per training scene before held-out ones are dropped
MIN_PIXELS = 25  # smallest visible region that becomes a crop
PARTIAL_MIN_FRACTION = 0.4  # a partial mask keeps at least this fraction of the mask
PARTIAL_FRACTION = 0.3  # default share of the mask crops cut to a partial mask (over-segmentation)
CONTEXT_MARGIN_RANGE = (0.1, 0.5)  # context crops: margin around the box, fraction of its side
TABLE_PATCH_RANGE = (16, 64)  # table patches: side in pixels


@dataclass(frozen=True)
class ViewSet:
    """Rendered views and what each instance id in them is.

    rgb: [V, H, W, 3] uint8 sRGB. ids: [V, H, W] int8 instance ids (-1 background, 0 table, k object k).
    color, shape: [V, MAX_INSTANCES] int64 indices into SUBJECT_COLORS / SUBJECT_SHAPES of instance id
    ``i`` at column ``i``; -1 where the view's world has no such instance. depth: [V, H, W] float32
    metres along the camera z axis, 0 = no surface; pinhole: [V, 4] float64 (fx, fy, cx, cy) pixels
    (what an RGB-D mask mapper needs, :meth:`intrinsics`).
    """

    rgb: np.ndarray
    ids: np.ndarray
    color: np.ndarray
    shape: np.ndarray
    depth: np.ndarray
    pinhole: np.ndarray

    def intrinsics(self, view: int) -> Intrinsics:
        """The camera of view ``view``."""
        fx, fy, cx, cy = (float(v) for v in self.pinhole[view])
        return Intrinsics(fx=fx, fy=fy, cx=cx, cy=cy, width=self.rgb.shape[2], height=self.rgb.shape[1])

    def __len__(self) -> int:
        return self.rgb.shape[0]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **dataclasses.asdict(self))
        return path

    @classmethod
    def load(cls, path: str | Path) -> ViewSet:
        with np.load(path) as data:
            return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def training_spec(seed: int, exclude_held_out: bool) -> WorldSpec:
    """A random scene of seed ``seed``: 3-6 objects on a table of a random TABLE_COLORS colour; with
    ``exclude_held_out`` the HELD_OUT colour x shape objects are removed from it."""
    rng = np.random.default_rng(seed)
    table = TableSpec(color=str(rng.choice(TABLE_COLORS)))
    spec = random_spec(seed, count=int(rng.integers(OBJECT_COUNT_RANGE[0], OBJECT_COUNT_RANGE[1] + 1)), table=table)
    if exclude_held_out:
        spec = dataclasses.replace(spec, objects=tuple(o for o in spec.objects if (o.color, o.shape) not in HELD_OUT))
    return spec


def random_poses(rng: np.random.Generator, count: int) -> np.ndarray:
    """[count, 4, 4] camera-to-world poses looking at the table from random azimuths, elevations and radii."""
    return np.stack(
        [
            orbit_pose(rng.uniform(0.0, 360.0), rng.uniform(*ELEVATION_RANGE_DEG), rng.uniform(*RADIUS_RANGE))
            for _ in range(count)
        ]
    )


def render_views(seeds: Iterable[int], views_per_scene: int, exclude_held_out: bool) -> ViewSet:
    """Render ``views_per_scene`` random views of :func:`training_spec` of every seed."""
    rgbs, ids, colors, shapes, depths, pinholes = [], [], [], [], [], []
    for seed in seeds:
        spec = training_spec(seed, exclude_held_out)
        if len(spec.objects) + 1 > MAX_INSTANCES:
            raise ValueError(f"seed {seed}: {len(spec.objects)} objects, at most {MAX_INSTANCES - 1}")
        color = np.full(MAX_INSTANCES, -1, dtype=np.int64)
        shape = np.full(MAX_INSTANCES, -1, dtype=np.int64)
        color[TABLE_ID], shape[TABLE_ID] = SUBJECT_COLORS.index(spec.table.color), SUBJECT_SHAPES.index(TABLE_SHAPE)
        for k, obj in enumerate(spec.objects, start=1):
            color[k], shape[k] = SUBJECT_COLORS.index(obj.color), SUBJECT_SHAPES.index(obj.shape)
        poses = random_poses(np.random.default_rng([seed, 1]), views_per_scene)
        camera = intrinsics_of(spec.camera)
        for frame in render(build_world(spec), camera, poses):
            rgbs.append(frame.rgb)
            depths.append(frame.depth.astype(np.float32))
            pinholes.append((camera.fx, camera.fy, camera.cx, camera.cy))
            ids.append(frame.ids.astype(np.int8))
            colors.append(color)
            shapes.append(shape)
    return ViewSet(
        np.stack(rgbs), np.stack(ids), np.stack(colors), np.stack(shapes), np.stack(depths), np.array(pinholes)
    )


def visible_instances(views: ViewSet, min_pixels: int = MIN_PIXELS) -> np.ndarray:
    """[M, 2] int64 rows (view, instance id) of every instance, background (-1) included, covering at
    least ``min_pixels`` pixels of its view."""
    rows = []
    for v in range(len(views)):
        present, counts = np.unique(views.ids[v], return_counts=True)
        rows += [(v, int(i)) for i, n in zip(present, counts) if n >= min_pixels]
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def subject_of(views: ViewSet, view: int, instance: int) -> tuple[int, int]:
    """(colour, shape) indices of an instance; (-1, -1) for the background."""
    if instance == BACKGROUND_ID:
        return -1, -1
    return int(views.color[view, instance]), int(views.shape[view, instance])


def square_crop(rgb: np.ndarray, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """rgb: [h0, w0, 3] float32 0..1 image; box: (top, left, bottom, right), may extend past the image.
    Returns [3, size, size] float32: the box content (black outside the image) centred on a black square."""
    top, left, bottom, right = box
    h, w = bottom - top, right - left
    side = max(h, w)
    square = np.zeros((side, side, 3), dtype=np.float32)
    oy, ox = (side - h) // 2 - top, (side - w) // 2 - left  # image pixel (y, x) lands at (y + oy, x + ox)
    y0, y1 = max(top, 0), min(bottom, rgb.shape[0])
    x0, x1 = max(left, 0), min(right, rgb.shape[1])
    square[y0 + oy : y1 + oy, x0 + ox : x1 + ox] = rgb[y0:y1, x0:x1]
    tensor = torch.from_numpy(square).permute(2, 0, 1)
    return TF.resize(tensor, [size, size], interpolation=TF.InterpolationMode.BICUBIC, antialias=True).clamp(0, 1)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) bounding box of a non-empty [H, W] bool mask."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def masked_crop(image: np.ndarray, mask: np.ndarray, size: int) -> torch.Tensor:
    """The pipeline's mask crop: image [H, W, 3] float32 0..1 black outside mask [H, W] bool, cut to the
    mask's box, padded to a square. Returns [3, size, size] float32."""
    return square_crop(image * mask[..., None], mask_box(mask), size)


def partial_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The part of ``mask`` on one side of a random line through one of its pixels, or ``mask`` itself
    when that part keeps less than PARTIAL_MIN_FRACTION of it (a stand-in for over-segmentation)."""
    ys, xs = np.nonzero(mask)
    k = rng.integers(len(ys))
    angle = rng.uniform(0.0, 2 * np.pi)
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    part = mask & ((yy - ys[k]) * np.sin(angle) + (xx - xs[k]) * np.cos(angle) >= 0)
    return part if part.sum() >= PARTIAL_MIN_FRACTION * len(ys) else mask


def random_crop(
    views: ViewSet,
    view: int,
    instance: int,
    size: int,
    rng: np.random.Generator,
    partial_fraction: float = PARTIAL_FRACTION,
) -> torch.Tensor:
    """One augmented training crop [3, size, size] float32 0..1 of an instance: the pipeline's masked crop
    of the whole or (``partial_fraction`` of the mask crops) a partial mask, a crop with the rendered
    surroundings, or (table only) a table patch; flipped left-right half of the time."""
    image = views.rgb[view].astype(np.float32) / 255.0
    mask = views.ids[view] == instance
    kind = rng.uniform()
    if instance == TABLE_ID and kind < 0.4:
        ys, xs = np.nonzero(mask)
        k = rng.integers(len(ys))
        half = int(rng.integers(*TABLE_PATCH_RANGE)) // 2
        box = (ys[k] - half, xs[k] - half, ys[k] + half, xs[k] + half)
        patch = np.zeros_like(mask)
        patch[max(box[0], 0) : box[2], max(box[1], 0) : box[3]] = True
        crop = masked_crop(image, mask & patch, size)
    elif instance != BACKGROUND_ID and kind > 0.7:
        top, left, bottom, right = mask_box(mask)
        margin = int(rng.uniform(*CONTEXT_MARGIN_RANGE) * max(bottom - top, right - left))
        crop = square_crop(image, (top - margin, left - margin, bottom + margin, right + margin), size)
    else:
        crop = masked_crop(image, partial_mask(mask, rng) if rng.uniform() < partial_fraction else mask, size)
    return crop.flip(-1) if rng.uniform() < 0.5 else crop
