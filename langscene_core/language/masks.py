"""Hierarchical masks of a frame at three granularities s/m/l (DESIGN.md 2.3).

A mask mapper turns one frame into ``[3, H, W] int32`` mask ids: level 0 = s (small parts), 1 = m,
2 = l (whole objects / large regions). Ids count from 0 within each level; -1 marks a pixel that no mask
covers (the felzenszwalb mapper covers every pixel; the depth mapper leaves pixels without depth
uncovered; learned mappers may not cover every pixel).

Two weight-free mappers (``models.masks.mapper``):

* ``felzenszwalb`` (:class:`FelzenszwalbMasks`): colour only, for RGB frames. Shaded objects fall
  apart into pieces (a cylinder's side and top), so its l level is rarely a whole object.
* ``depth`` (:class:`DepthMasks`): RGB-D frames. The l level is the view cut into surfaces at depth
  discontinuities and at the border of the support plane (the table top found by RANSAC), so an
  object on a table is one l mask; m splits those at normal creases (a box's faces, a mug's rim);
  s splits m by colour (felzenszwalb). As SAM's whole / part / sub-part hierarchy, nested s in m in l.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
import scipy.spatial
import skimage.graph
import skimage.measure
import skimage.segmentation

from langscene_core.config import MasksConfig
from langscene_core.geometry.camera import Intrinsics, pixel_rays
from langscene_core.geometry.normals import depth_to_normals

LEVELS = ("s", "m", "l")
# index pairs of an [H, W] array giving every 4-neighbour pixel pair: (left, right) and (upper, lower)
NEIGHBOURS = (
    ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
    ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
)


class MaskMapper(Protocol):
    def __call__(
        self, image: np.ndarray, depth: np.ndarray | None = None, intrinsics: Intrinsics | None = None
    ) -> np.ndarray:
        """image: [H, W, 3] uint8 (0..255) or float (0..1) RGB; depth: [H, W] metres along the camera
        z axis (0 or NaN = none) with its pinhole ``intrinsics``, or None for an RGB frame (a mapper
        that needs depth raises ValueError then; one that does not ignores it). Returns [3, H, W]
        int32 mask ids."""


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

    def __call__(
        self, image: np.ndarray, depth: np.ndarray | None = None, intrinsics: Intrinsics | None = None
    ) -> np.ndarray:
        """Colour only: ``depth`` and ``intrinsics`` are not used (the protocol's signature)."""
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


class _PlaneModel:
    """A plane n . x = d fitted by least squares (SVD), in the form ``skimage.measure.ransac`` takes
    (scikit-image ships line, circle and ellipse models, no plane). n: [3] unit, d: metres."""

    def __init__(self, normal: np.ndarray, offset: float):
        self.normal, self.offset = normal, offset

    def __bool__(self) -> bool:
        return bool(np.all(np.isfinite(self.normal)))

    @classmethod
    def from_estimate(cls, points: np.ndarray) -> _PlaneModel:
        """points: [P, 3], P >= 3."""
        centre = points.mean(axis=0)
        normal = np.linalg.svd(points - centre)[2][-1]
        return cls(normal, float(normal @ centre))

    def residuals(self, points: np.ndarray) -> np.ndarray:
        """[P] distances (metres) of points [P, 3] from the plane."""
        return np.abs(points @ self.normal - self.offset)


def _grid_components(right: np.ndarray, down: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Connected components of the 4-neighbour pixel graph with only the kept edges.

    right: [H, W-1] bool, edge (r, c)-(r, c+1) kept; down: [H-1, W] bool, edge (r, c)-(r+1, c) kept;
    valid: [H, W] bool. Returns [H, W] int64 ids 0..n-1 (-1 where not valid). Hand-written on
    ``scipy.sparse.csgraph`` because ``scipy.ndimage.label`` joins every pair of neighbouring
    foreground pixels and cannot cut the edge between two of them (a depth step inside the foreground).
    """
    h, w = valid.shape
    index = np.arange(h * w).reshape(h, w)
    rows = np.concatenate([index[:, :-1][right], index[:-1, :][down]])
    cols = np.concatenate([index[:, 1:][right], index[1:, :][down]])
    graph = scipy.sparse.coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(h * w, h * w))
    _, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
    labels = labels.reshape(h, w)
    return np.where(valid, _sequential(np.where(valid, labels, -1)) - (~valid).any(), -1)


def _merge_small(labels: np.ndarray, parent: np.ndarray | None, min_size: int) -> np.ndarray:
    """Merge every region of fewer than ``min_size`` pixels into the neighbouring region it shares the
    longest border with, within the same ``parent`` region (so nesting holds); regions with no such
    neighbour stay. labels, parent: [H, W] int ids (-1 none). Returns [H, W] int32 ids 0..n-1, -1 kept."""
    labels = labels.astype(np.int64)
    parent = np.zeros_like(labels) if parent is None else parent.astype(np.int64)
    for _ in range(8):  # a small region merged into another small one needs another round
        sizes = np.bincount(labels[labels >= 0], minlength=labels.max() + 1)
        pairs = []
        for a, b in NEIGHBOURS:
            border = (labels[a] != labels[b]) & (labels[a] >= 0) & (labels[b] >= 0) & (parent[a] == parent[b])
            pairs.append(np.stack([labels[a][border], labels[b][border]], axis=1))
        pairs = np.concatenate(pairs)
        pairs = np.concatenate([pairs, pairs[:, ::-1]])  # both directions
        pairs = pairs[sizes[pairs[:, 0]] < min_size]
        if len(pairs) == 0:
            break
        edges, counts = np.unique(pairs, axis=0, return_counts=True)
        # per small region: the neighbour with the longest shared border (larger neighbour on ties)
        order = np.lexsort((sizes[edges[:, 1]], counts, edges[:, 0]))
        edges = edges[order]
        last = np.r_[edges[1:, 0] != edges[:-1, 0], True]
        target = np.arange(len(sizes))
        target[edges[last, 0]] = edges[last, 1]
        # two small regions pointing at each other: the smaller one (then lower id) moves, the other stays
        mutual = target[target] == np.arange(len(sizes))
        keep = mutual & ((sizes > sizes[target]) | ((sizes == sizes[target]) & (np.arange(len(sizes)) < target)))
        target[keep] = np.flatnonzero(keep)
        for _ in range(len(sizes)):  # follow chains a -> b -> c to their end
            following = target[target]
            if np.array_equal(following, target):
                break
            target = following
        labels = np.where(labels >= 0, target[np.maximum(labels, 0)], -1)
    return np.where(labels >= 0, _sequential(labels) - (labels < 0).any(), -1).astype(np.int32)


@dataclass(frozen=True)
class DepthMasks:
    """Weight-free s/m/l masks of an RGB-D frame: whole objects at l from geometry, parts and colour below.

    l: the valid-depth pixels cut into connected surfaces. Two neighbouring pixels belong together unless
    their depths differ by more than ``depth_jump`` times their depth (an occlusion edge), or one lies
    on the support plane and the other does not. The support plane is the dominant plane of the view
    (RANSAC, inliers within ``plane_tolerance`` metres whose normal is within 30 degrees of the plane's),
    accepted when it holds at least ``plane_min_fraction`` of the valid pixels: it separates the
    objects standing on it from it and from each other.
    m: l regions further cut where neighbouring normals differ by more than ``crease_deg`` (faces).
    s: m regions further cut along felzenszwalb colour segments (``colour``).
    Regions under ``min_size`` pixels join their longest-bordering neighbour inside the same coarser
    region. Pixels without depth get -1 at every level (they have no surface to carry a feature).
    """

    depth_jump: float = 0.03
    crease_deg: float = 40.0
    plane_tolerance: float = 0.005
    plane_min_fraction: float = 0.2
    join_pixels: float = 2.0
    min_size: int = 20
    colour: FelzenszwalbMasks = FelzenszwalbMasks()
    seed: int = 0  # RANSAC's sampling: the same frame gives the same masks

    def __post_init__(self) -> None:
        if self.depth_jump <= 0 or self.plane_tolerance <= 0 or not 0 < self.crease_deg <= 180:
            raise ValueError(
                f"depth_jump and plane_tolerance must be > 0 and crease_deg in (0, 180], got "
                f"{self.depth_jump}, {self.plane_tolerance}, {self.crease_deg}"
            )
        if not 0 <= self.plane_min_fraction <= 1 or self.min_size < 1:
            raise ValueError(
                f"plane_min_fraction must be in [0, 1] and min_size >= 1, got {self.plane_min_fraction}, {self.min_size}"
            )

    @classmethod
    def from_config(cls, config: MasksConfig) -> DepthMasks:
        return cls(
            depth_jump=config.depth_jump,
            crease_deg=config.crease_deg,
            plane_tolerance=config.plane_tolerance,
            plane_min_fraction=config.plane_min_fraction,
            join_pixels=config.join_pixels,
            min_size=max(config.felzenszwalb_min_size, 1),
            colour=FelzenszwalbMasks.from_config(config),
        )

    def support_plane(self, points: np.ndarray, normals: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """[H, W] bool: pixels on the support plane (all False when the view has none).

        points: [H, W, 3] camera-frame points (metres); normals: [H, W, 3] unit camera-frame normals
        (zero where unknown); valid: [H, W] bool, pixels with depth.
        """
        candidates = points[valid]
        if len(candidates) < 3:
            return np.zeros(valid.shape, bool)
        rng = np.random.default_rng(self.seed)
        sample = candidates[rng.choice(len(candidates), size=min(len(candidates), 4000), replace=False)]
        model, _ = skimage.measure.ransac(
            sample, _PlaneModel, min_samples=3, residual_threshold=self.plane_tolerance, max_trials=200, rng=rng
        )
        if model is None:
            return np.zeros(valid.shape, bool)
        distance = np.abs(np.nan_to_num(points) @ model.normal - model.offset)
        plane = valid & (distance < self.plane_tolerance)
        return plane if plane.sum() >= self.plane_min_fraction * valid.sum() else np.zeros_like(plane)

    def _join_touching(self, labels: np.ndarray, points: np.ndarray, plane: np.ndarray, fx: float) -> np.ndarray:
        """Join off-plane regions that border each other in the image across a depth step and touch in
        3D (closest points within ``join_pixels`` pixel footprints, depth / fx metres, of each other):
        one object seen over its own edge, as a bowl's outer wall and its inside beyond the rim. Two
        objects standing apart on the table stay apart (objects that touch each other are joined too).
        labels: [H, W] ids (-1 none); points: [H, W, 3] camera-frame metres; plane: [H, W] bool;
        fx: focal length (pixels). Returns [H, W] int ids (-1 kept)."""
        off = (labels >= 0) & ~plane
        pairs = []
        for a, b in NEIGHBOURS:
            border = (labels[a] != labels[b]) & off[a] & off[b]
            first, second = labels[a][border], labels[b][border]
            pairs.append(np.stack([np.minimum(first, second), np.maximum(first, second)], axis=1))
        pairs = np.unique(np.concatenate(pairs), axis=0)
        if len(pairs) == 0:
            return labels
        trees = {}
        join = []
        for a, b in pairs:
            for k in (a, b):
                if k not in trees:
                    trees[k] = scipy.spatial.cKDTree(points[labels == k])
            distance, _ = trees[a].query(trees[b].data, k=1)
            closest = int(np.argmin(distance))  # metres; a pixel there spans depth / fx metres
            if distance[closest] <= self.join_pixels * trees[b].data[closest, 2] / fx:
                join.append((a, b))
        if not join:
            return labels
        n = labels.max() + 1
        join = np.array(join)
        graph = scipy.sparse.coo_matrix((np.ones(len(join)), (join[:, 0], join[:, 1])), shape=(n, n))
        _, groups = scipy.sparse.csgraph.connected_components(graph, directed=False)
        return np.where(labels >= 0, groups[np.maximum(labels, 0)], -1)

    def __call__(
        self, image: np.ndarray, depth: np.ndarray | None = None, intrinsics: Intrinsics | None = None
    ) -> np.ndarray:
        """image: [H, W, 3] RGB; depth: [H, W] metres (0 or NaN none); intrinsics of both. ValueError
        when depth is missing (an RGB-only frame: configure ``models.masks.mapper: felzenszwalb``)."""
        rgb = as_float_rgb(image)
        if depth is None or intrinsics is None:
            raise ValueError(
                "models.masks.mapper 'depth' needs the frame's depth image and intrinsics; this frame has "
                "none (for RGB-only frames set models.masks.mapper: felzenszwalb)"
            )
        if depth.shape != rgb.shape[:2] or (intrinsics.height, intrinsics.width) != depth.shape:
            raise ValueError(
                f"depth {depth.shape}, image {rgb.shape[:2]} and intrinsics "
                f"({intrinsics.height}, {intrinsics.width}) must have the same size"
            )
        z = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float64)
        valid = np.isfinite(z)
        points = pixel_rays(intrinsics) * z[..., None]
        normals = depth_to_normals(np.nan_to_num(z), intrinsics).astype(np.float64)
        plane = self.support_plane(points, normals, valid)

        def keep(a: tuple, b: tuple) -> np.ndarray:  # edge between pixel sets a and b survives level l
            za, zb = z[a], z[b]
            with np.errstate(invalid="ignore"):
                continuous = np.abs(za - zb) <= self.depth_jump * np.minimum(za, zb)
            return valid[a] & valid[b] & continuous & (plane[a] == plane[b])

        edges = [keep(a, b) for a, b in NEIGHBOURS]
        large = _grid_components(*edges, valid)
        large = _merge_small(
            self._join_touching(large, points, plane, intrinsics.fx), plane.astype(np.int64), self.min_size
        )

        cos_crease = np.cos(np.radians(self.crease_deg))
        edges = [e & (np.sum(normals[a] * normals[b], axis=-1) >= cos_crease) for e, (a, b) in zip(edges, NEIGHBOURS)]
        medium = _merge_small(_grid_components(*edges, valid), large, self.min_size)

        colour = self.colour(rgb)[0]
        edges = [e & (colour[a] == colour[b]) for e, (a, b) in zip(edges, NEIGHBOURS)]
        small = _merge_small(_grid_components(*edges, valid), medium, self.min_size)
        return np.stack([small, medium, large])


def make_mask_mapper(config: MasksConfig) -> MaskMapper:
    """The mapper named by ``models.masks.mapper``."""
    if config.mapper == "felzenszwalb":
        return FelzenszwalbMasks.from_config(config)
    if config.mapper == "depth":
        return DepthMasks.from_config(config)
    if config.mapper == "sam2":
        raise ValueError(
            "models.masks.mapper 'sam2' is not available in this build (no SAM2 package or "
            "weights on this machine); use 'depth' (RGB-D frames) or 'felzenszwalb'"
        )
    raise ValueError(f"unknown models.masks.mapper {config.mapper!r}: expected felzenszwalb, depth or sam2")
