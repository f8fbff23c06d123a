"""Answer a text query on a scene: relevancy cloud -> object cluster -> oriented box -> grasps.

Input is the per-Gaussian relevancy for the prompt (computed by the language stage from CLIP text
embeddings, DESIGN.md section 2.8) together with the Gaussians' centres, colours and (optionally)
normals; everything is in the scene frame. Nothing relevant is a valid answer with a message, not
an error; malformed inputs raise ValueError.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import open3d as o3d
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import ConvexHull, QhullError, cKDTree
from skimage.measure import ransac

from langscene_core.config import GraspConfig, QueryConfig
from langscene_core.geometry.voxel import bounds, group_by_voxel, points_in_box
from langscene_core.query.grasp.planner import Grasp, Support, gripper_reach, plan_grasps

# One relevancy-cloud point, laid out for sensor_msgs/PointCloud2: float32 x, y, z, relevancy and the
# PCL/RViz packed colour: the bits of 0x00RRGGBB stored in a float32 field named rgb.
CLOUD_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("relevancy", "<f4"), ("rgb", "<f4")])


@dataclass(frozen=True)
class ObjectBox:
    """Oriented box of the queried object, scene frame.

    pose: [4, 4] float64; rotation columns are the box axes (with gravity alignment: x the longer
    horizontal side, z = up), translation the box centre. extent: [3] float64 full size along the
    box's x, y, z axes, metres.
    """

    pose: np.ndarray
    extent: np.ndarray


@dataclass(frozen=True)
class ObjectCandidate:
    """Another distinct object the prompt matches (:attr:`QueryResult.alternatives`), scene frame.

    box: its oriented box. score: mean relevancy of its Gaussians, 0..1. indices: [K] int64 scene
    indices of its Gaussians.
    """

    box: ObjectBox
    score: float
    indices: np.ndarray


@dataclass(frozen=True)
class QueryResult:
    """Answer to one query.

    cloud: [M] CLOUD_DTYPE, the relevant Gaussians, most relevant first (M = 0 when none).
    cloud_indices: [M] int64 indices of those Gaussians in the scene arrays.
    max_relevancy: highest relevancy over all Gaussians (0 for an empty scene).
    object_box: the best cluster's box, or None when no object was found.
    object_indices: [K] int64 scene indices of the Gaussians of the chosen cluster (K = 0 when none).
    grasps: best first (empty when no object or no feasible grasp).
    message: what was found, or why nothing was.
    timings: seconds per stage: select, cloud, cluster, box, grasps (alternatives when asked for).
    object_score: mean relevancy of the object's Gaussians, 0..1 (0 when no object).
    alternatives: the next-best distinct objects, best score first (asked for with ``max_objects``).
    """

    cloud: np.ndarray
    cloud_indices: np.ndarray
    max_relevancy: float
    object_box: ObjectBox | None
    object_indices: np.ndarray
    grasps: tuple[Grasp, ...]
    message: str
    timings: dict[str, float] = field(default_factory=dict)
    object_score: float = 0.0
    alternatives: tuple[ObjectCandidate, ...] = ()


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """[N, 3] colours in 0..1 -> [N] float32 whose bits are 0x00RRGGBB (PointCloud2 ``rgb``)."""
    rgb8 = np.clip(np.rint(np.asarray(colors, dtype=np.float64) * 255.0), 0, 255).astype(np.uint32)
    return ((rgb8[:, 0] << 16) | (rgb8[:, 1] << 8) | rgb8[:, 2]).view(np.float32)


def unpack_rgb(rgb: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_rgb`: [N] float32 -> [N, 3] uint8."""
    bits = np.ascontiguousarray(rgb, dtype=np.float32).view(np.uint32)
    return np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=1).astype(np.uint8)


def select_relevant(relevancy: np.ndarray, threshold: float, max_points: int) -> np.ndarray:
    """Indices of the Gaussians with relevancy >= threshold, at most ``max_points`` of the highest.

    relevancy: [N] float. Returns [M] int64 indices, relevancy descending.
    """
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    candidates = np.flatnonzero(relevancy >= threshold)
    if len(candidates) > max_points:
        candidates = candidates[np.argpartition(-relevancy[candidates], max_points - 1)[:max_points]]
    return candidates[np.argsort(-relevancy[candidates], kind="stable")]


def relevancy_cloud(means: np.ndarray, colors: np.ndarray, relevancy: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """[M] CLOUD_DTYPE records of the Gaussians ``indices`` (means [N, 3], colors [N, 3] 0..1, relevancy [N])."""
    cloud = np.empty(len(indices), dtype=CLOUD_DTYPE)
    points = means[indices]
    cloud["x"], cloud["y"], cloud["z"] = points[:, 0], points[:, 1], points[:, 2]
    cloud["relevancy"] = relevancy[indices]
    cloud["rgb"] = pack_rgb(colors[indices])
    return cloud


def cluster_labels(points: np.ndarray, config: QueryConfig) -> np.ndarray:
    """DBSCAN (open3d) cluster label of every point, -1 for noise.

    points: [M, 3] scene frame. Points are grouped into ``cluster_voxel_size`` voxels first (DBSCAN
    runs on the voxel centroids, so its cost depends on the object's size, not on the point count);
    each point takes its voxel's label. Returns [M] int64.
    """
    groups = group_by_voxel(points, config.cluster_voxel_size)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(groups.centroids))
    voxel_labels = np.asarray(
        cloud.cluster_dbscan(eps=config.cluster_eps, min_points=config.cluster_min_points), dtype=np.int64
    )
    return voxel_labels[groups.inverse]


def best_cluster(labels: np.ndarray, weights: np.ndarray) -> int | None:
    """Label with the largest summed weight (labels [M] int, -1 ignored; weights [M]), or None."""
    valid = labels >= 0
    if not valid.any():
        return None
    return int(np.argmax(np.bincount(labels[valid], weights=weights[valid])))


# counter-clockwise directions of the extreme points whose polygon _convex_hull discards points inside
_OCTANTS = np.array([[1, 0], [1, 1], [0, 1], [-1, 1], [-1, 0], [-1, -1], [0, -1], [1, -1]], dtype=np.float64)


def _convex_hull(xy: np.ndarray) -> ConvexHull:
    """scipy's ConvexHull of 2D points [K, 2], computed on the points that can be its vertices.

    Akl-Toussaint: points strictly inside the polygon of the extreme points in 8 directions are not
    hull vertices. On an object's footprint that leaves a few percent of the points, and qhull's
    time (2.3 ms for 7k points) drops accordingly; the hull is the same. Raises QhullError / ValueError
    on degenerate input, as ConvexHull does."""
    x, y = np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])
    extremes = xy[[int(np.argmax(dx * x + dy * y)) for dx, dy in _OCTANTS]]
    interior = np.ones(len(xy), dtype=bool)
    for a, b in zip(extremes, np.roll(extremes, -1, axis=0)):
        ex, ey = b - a
        if ex or ey:  # strictly left of the counter-clockwise edge a -> b
            interior &= ex * y - ey * x > ex * a[1] - ey * a[0] + 1e-12
    return ConvexHull(xy[~interior])


def _min_area_yaw(xy: np.ndarray) -> float:
    """Angle (rad) of the side of the minimum-area rectangle around 2D points [K, 2].

    Rotating calipers over the convex hull's edges: the optimal rectangle has a side on a hull edge.
    Degenerate (collinear or too few) points fall back to their principal direction.
    """
    try:
        hull = _convex_hull(xy)
        hull = hull.points[hull.vertices]
    except (QhullError, ValueError):
        centred = xy - xy.mean(axis=0)
        direction = np.linalg.eigh(centred.T @ centred)[1][:, -1]
        return float(np.arctan2(direction[1], direction[0]))
    edges = np.roll(hull, -1, axis=0) - hull
    angles = np.arctan2(edges[:, 1], edges[:, 0])
    c, s = np.cos(angles), np.sin(angles)
    u = hull @ np.stack([c, s])  # [H, E] coordinates along each candidate side
    v = hull @ np.stack([-s, c])
    areas = np.ptp(u, axis=0) * np.ptp(v, axis=0)
    return float(angles[np.argmin(areas)])


def _horizontal_basis(up: np.ndarray) -> np.ndarray:
    """[3, 2] two orthonormal directions perpendicular to the unit vector ``up`` [3]."""
    helper = np.eye(3)[np.argmin(np.abs(up))]
    a = np.cross(up, helper)
    a /= np.linalg.norm(a)
    return np.stack([a, np.cross(up, a)], axis=1)


def _gravity_axes(points: np.ndarray, up: np.ndarray) -> np.ndarray:
    """[3, 3] rotation (columns x, y, z) with z = up and x along the longer side of the minimum-area
    footprint rectangle of points [K, 3]."""
    a, b = _horizontal_basis(up).T
    yaw = _min_area_yaw(np.stack([points @ a, points @ b], axis=1))
    x = np.cos(yaw) * a + np.sin(yaw) * b
    y = np.cross(up, x)
    if np.ptp(points @ y) > np.ptp(points @ x):
        x, y = y, -x
    return np.stack([x, y, up], axis=1)


def _free_axes(points: np.ndarray) -> np.ndarray:
    """[3, 3] right-handed rotation of open3d's minimal oriented box of points [K, 3]."""
    # robust: qhull joggles its input, so flat and collinear clusters still get axes
    box = o3d.geometry.OrientedBoundingBox.create_from_points_minimal(o3d.utility.Vector3dVector(points), robust=True)
    rotation = np.array(box.R, dtype=np.float64)
    if np.linalg.det(rotation) < 0:
        rotation[:, 2] *= -1
    return rotation


def object_box(points: np.ndarray, config: QueryConfig) -> ObjectBox:
    """Outlier-robust oriented box of an object's points [K, 3] (scene frame).

    Axes come from the cluster's voxel centroids: gravity-aligned (yaw of the minimum-area footprint
    rectangle, z = up) for ``box_alignment: gravity``, open3d's minimal oriented box for ``free``.
    Extents span the ``box_quantile`` .. 1 - ``box_quantile`` range of the points along each axis.
    """
    if len(points) == 0:
        raise ValueError("object_box needs at least one point")
    centroids = group_by_voxel(points, config.cluster_voxel_size).centroids
    if config.box_alignment == "gravity":
        rotation = _gravity_axes(centroids, _unit_up(config))
    elif config.box_alignment == "free":
        rotation = _free_axes(centroids) if len(centroids) >= 4 else np.eye(3)
    else:
        raise ValueError(f"query.box_alignment must be 'gravity' or 'free', got {config.box_alignment!r}")
    local = points @ rotation
    # per axis: numpy's quantile along the long axis of [K, 3] is several times slower
    lo, hi = np.array([np.quantile(column, [config.box_quantile, 1.0 - config.box_quantile]) for column in local.T]).T
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = rotation @ ((lo + hi) / 2)
    return ObjectBox(pose=pose, extent=hi - lo)


PLANE_FIT_POINTS = 5000  # points the support-plane RANSAC sees at most
MIN_SUPPORT_FRACTION = 0.2  # a plane holding fewer of the fitted points is not the scene's support
SUPPORT_COVERAGE = 0.5  # a prompt relevant on this share of the support's Gaussians names the support


class _PlaneModel:
    """A plane ``normal @ p + offset = 0`` for ``skimage.measure.ransac``: the least-squares plane
    through points [K, 3] (SVD of the centred points); falsy when they are collinear.
    params: [4] float64 (unit normal, offset) or None."""

    def __init__(self, params: np.ndarray | None = None) -> None:
        self.params = params

    @classmethod
    def from_estimate(cls, points: np.ndarray) -> _PlaneModel:
        centre = points.mean(axis=0)
        _, singular, vt = np.linalg.svd(points - centre, full_matrices=False)
        if singular[1] <= 1e-9 * max(singular[0], 1e-12):
            return cls(None)
        return cls(np.append(vt[-1], -vt[-1] @ centre))

    def __bool__(self) -> bool:
        return self.params is not None

    def residuals(self, points: np.ndarray) -> np.ndarray:
        """[K] distance of points [K, 3] to the plane."""
        return np.abs(points @ self.params[:3] + self.params[3])


def fit_support(points: np.ndarray, up: np.ndarray, clearance: float) -> Support | None:
    """The support surface (a table) as a half-space, or None when no plane faces up.

    points: [M, 3] scene frame. The support is the dominant plane (skimage's seeded RANSAC on at most
    ``PLANE_FIT_POINTS`` points; open3d's parallel one differs from run to run) when it faces ``up``
    within 30 degrees and holds at least ``MIN_SUPPORT_FRACTION`` of them (not the top of one
    object), raised to the 95th percentile of its inliers' residuals (the surface's top). A
    reconstructed table is not a thin plane: points up to ``clearance`` or three standard deviations
    of the residuals (the larger) above the plane's middle still belong to it (``Support.thickness``,
    above the top).
    """
    if len(points) < 3:
        return None
    sample = np.asarray(points[:: max(1, len(points) // PLANE_FIT_POINTS)], dtype=np.float64)  # enough for the fit
    model, inliers = ransac(
        sample, _PlaneModel, min_samples=3, residual_threshold=max(2 * clearance, 0.01), max_trials=200, rng=0
    )
    if model is None or inliers.sum() < max(3, MIN_SUPPORT_FRACTION * len(sample)):
        return None
    plane = model.params
    if abs(plane[:3] @ up) <= np.cos(np.radians(30.0)):
        return None
    plane = plane * np.sign(plane[:3] @ up)
    residuals = sample[inliers] @ plane[:3] + plane[3]
    # reconstructed surface points sit below the true surface (Gaussian centres inside it): its top
    # is nearer the upper end of their scatter than the plane through their middle
    top = float(np.percentile(residuals, 95.0))
    thickness = max(clearance, 3.0 * float(np.std(residuals)))
    return Support(normal=plane[:3], offset=float(plane[3] - top), thickness=max(thickness - top, 0.0))


def support_height(points: np.ndarray, up: np.ndarray, support: Support | None, clearance: float) -> np.ndarray:
    """[M] height of each point above the support surface, its thickness excluded; positive above.

    Without a support plane, the horizontal plane ``clearance`` above the 5th height percentile."""
    if support is not None:
        return support.height(points) - support.thickness
    heights = points @ up
    return heights - np.percentile(heights, 5.0) - clearance


@dataclass(frozen=True)
class Tabletop:
    """A scene seen as a support with objects standing on it (gravity-aligned queries).

    A property of the scene, not of a prompt: compute it once per scene (:func:`tabletop_of`) and
    pass it to every :func:`query_object` on that scene.
    support: the fitted support plane (None: none, heights are then above the lowest Gaussians).
    heights: [N] float32 height of every Gaussian above the support, its thickness excluded (positive
    above). above: [A] int64 scene indices of the Gaussians above it; slot: [N] int64 position of
    every Gaussian in ``above`` (-1 for those on or below the support);
    flat: [2, A] float32 their coordinates across ``up``, metres (one contiguous row per axis);
    above_heights: [A] float32 their heights (``heights[above]``, gathered once).
    """

    support: Support | None
    heights: np.ndarray
    above: np.ndarray
    slot: np.ndarray
    flat: np.ndarray
    above_heights: np.ndarray

    def column(self, seed: np.ndarray, margin: float) -> np.ndarray:
        """[C] int64 scene indices of the Gaussians above the support, within ``margin`` of the
        horizontal bounding box of the Gaussians ``seed`` (scene indices [K]) and at most ``margin``
        above its top: the space an object whose part is ``seed`` can occupy (an object stands on
        the support, so its column reaches down to it)."""
        seed_slots = self.slot[seed]
        seed_flat = self.flat[:, seed_slots[seed_slots >= 0]]
        if seed_flat.shape[1] == 0:
            return np.zeros(0, dtype=np.int64)
        lo, hi = bounds(seed_flat.T)
        lo, hi = lo - margin, hi + margin
        inside = self.above_heights <= self.heights[seed].max() + margin
        for axis in range(2):
            inside &= (self.flat[axis] >= lo[axis]) & (self.flat[axis] <= hi[axis])
        return self.above[inside]


def tabletop_of(means: np.ndarray, config: QueryConfig) -> Tabletop:
    """The support (:func:`fit_support` over the whole scene, means [N, 3]) and every Gaussian's place
    relative to it."""
    up = _unit_up(config)
    support = fit_support(means, up, config.support_clearance)
    heights = support_height(means, up, support, config.support_clearance).astype(np.float32)
    above = np.flatnonzero(heights > 0.0)
    slot = np.full(len(means), -1, dtype=np.int64)
    slot[above] = np.arange(len(above))
    flat = np.ascontiguousarray((means[above] @ _horizontal_basis(up).astype(means.dtype)).T)
    return Tabletop(support=support, heights=heights, above=above, slot=slot, flat=flat, above_heights=heights[above])


def best_object_cluster(
    selected: np.ndarray,
    means: np.ndarray,
    relevancy: np.ndarray,
    config: QueryConfig,
    tabletop: Tabletop | None = None,
) -> np.ndarray | None:
    """Scene indices [K] of the best relevant cluster (the object), or None.

    selected: [M] int64 indices of the relevant Gaussians; means: [N, 3] scene frame; relevancy: [N].
    Without a tabletop, the cluster with the largest summed relevancy. On a tabletop, objects stand on
    the support: relevant Gaussians on the support itself are left out, so a table that half-matches a
    prompt neither wins nor merges with the object on it, and clusters above it compete by purity
    (:func:`_purest_cluster`). The support answers when the prompt is relevant
    on at least SUPPORT_COVERAGE of it (a query for the table itself) or when nothing relevant above
    it forms a cluster.
    """
    points = means[selected].astype(np.float64)
    if tabletop is not None:
        on_support = tabletop.heights[selected] <= 0.0
        support_count = len(tabletop.heights) - len(tabletop.above)  # the Gaussians on or below it
        names_support = on_support.sum() >= SUPPORT_COVERAGE * max(1, support_count)
        chosen = (
            None
            if names_support
            else _purest_cluster(selected, np.flatnonzero(~on_support), points, relevancy, tabletop, config)
        )
        if chosen is not None:
            # the object's own base lies within the support's thickness: take it back by footprint
            base = np.flatnonzero(on_support)
            basis = _horizontal_basis(_unit_up(config))
            inside = _within_footprint(points[chosen] @ basis, points[base] @ basis, config.cluster_voxel_size / 4.0)
            return selected[np.sort(np.concatenate([chosen, base[inside]]))]
    chosen = _cluster_of(np.arange(len(selected)), points, relevancy[selected], config)
    return None if chosen is None else selected[chosen]


def _cluster_of(subset: np.ndarray, points: np.ndarray, weights: np.ndarray, config: QueryConfig) -> np.ndarray | None:
    """Members (positions in ``points`` [M, 3]) of the best cluster of ``points[subset]``, or None."""
    if len(subset) == 0:
        return None
    labels = cluster_labels(points[subset], config)
    best = best_cluster(labels, weights[subset].astype(np.float64))
    return None if best is None else subset[labels == best]


def _purest_cluster(
    selected: np.ndarray,
    subset: np.ndarray,
    points: np.ndarray,
    relevancy: np.ndarray,
    tabletop: Tabletop,
    config: QueryConfig,
) -> np.ndarray | None:
    """Members (positions in ``selected``) of the purest cluster of the relevant Gaussians
    ``selected[subset]`` (points: [M, 3] their positions, float64), or None.

    Purity: the mean relevancy (relevancy: [N]) of the scene's Gaussians in the cluster's column
    (:meth:`Tabletop.column`), where its object stands, counted with ``config.purity_prior`` extra
    Gaussians of relevancy 0 (a column of a few stray Gaussians is weak evidence of an object). The object the prompt names is relevant all
    over; summed relevancy would favour big objects that are relevant in patches (the top face of a
    tall cylinder of the prompt's colour), and a compact patch on a mostly irrelevant object is
    diluted by the rest of its column.
    """
    if len(subset) == 0:
        return None
    labels = cluster_labels(points[subset], config)
    best, best_purity = None, -1.0
    for label in np.unique(labels[labels >= 0]):
        members = subset[labels == label]
        column = tabletop.column(selected[members], config.cluster_voxel_size / 2.0)
        purity = float(relevancy[column].sum()) / (len(column) + config.purity_prior) if len(column) else 0.0
        if purity > best_purity:
            best, best_purity = members, purity
    return best


def _within_footprint(body: np.ndarray, queries: np.ndarray, margin: float) -> np.ndarray:
    """[Q] bool: horizontal points queries [Q, 2] inside the convex footprint of body [K, 2], its edges
    pushed ``margin`` metres out. A degenerate footprint (a line) contains nothing."""
    if len(queries) == 0 or len(body) < 3:
        return np.zeros(len(queries), dtype=bool)
    try:
        edges = _convex_hull(body).equations  # [F, 3]: outward unit normal, offset; inside is <= 0
    except QhullError:
        return np.zeros(len(queries), dtype=bool)
    return np.all(queries @ edges[:, :2].T + edges[:, 2] <= margin, axis=1)


def neighbourhood(seed: np.ndarray, means: np.ndarray, margin: float) -> np.ndarray:
    """[K] int64 scene indices (ascending) of the Gaussians within ``margin`` metres of the bounding
    box of the Gaussians ``seed`` (scene indices [S]; means: [N, 3] scene frame), ``seed`` left out."""
    lo, hi = bounds(means[seed])
    excluded = np.zeros(len(means), dtype=bool)
    excluded[seed] = True
    return points_in_box(means, lo - margin, hi + margin, excluded)


def grow_object(seed: np.ndarray, means: np.ndarray, tabletop: Tabletop, config: QueryConfig) -> np.ndarray:
    """The whole object around a relevant cluster, by region growing over the scene's Gaussians.

    seed: [K] int64 scene indices of the cluster; means: [N, 3] scene frame. Only Gaussians in the
    seed's column (:meth:`Tabletop.column`, margin ``object_growth_limit``: above the support, down
    to it) are considered. They are grouped in voxels of ``cluster_voxel_size`` / 2 (a dense scene
    holds tens of thousands of them near an object); from the seed's voxels, the object takes every
    voxel whose centroid lies within ``object_growth`` of one it already has, until none is added:
    the connected components of that neighbour graph (scipy) that hold a seed voxel.
    Returns sorted scene indices, the seed included.
    """
    member = np.zeros(len(means), dtype=bool)
    member[seed] = True
    candidates = tabletop.column(seed, config.object_growth_limit)
    if len(candidates) == 0:
        return np.flatnonzero(member)
    voxels = group_by_voxel(means[candidates].astype(np.float64), config.cluster_voxel_size / 2.0)
    pairs = cKDTree(voxels.centroids).query_pairs(config.object_growth, output_type="ndarray")
    count = len(voxels.counts)
    graph = coo_matrix((np.ones(len(pairs), dtype=bool), (pairs[:, 0], pairs[:, 1])), shape=(count, count))
    _, component = connected_components(graph, directed=False)
    seed_components = np.zeros(component.max() + 1, dtype=bool)
    seed_components[component[voxels.inverse[member[candidates]]]] = True
    member[candidates[seed_components[component][voxels.inverse]]] = True
    return np.flatnonzero(member)


def _unit_up(config: QueryConfig) -> np.ndarray:
    up = np.asarray(config.up, dtype=np.float64)
    if up.shape != (3,) or not np.linalg.norm(up) > 0:
        raise ValueError(f"query.up must be a non-zero 3-vector, got {config.up}")
    return up / np.linalg.norm(up)


def _check_inputs(relevancy: np.ndarray, means: np.ndarray, colors: np.ndarray, normals: np.ndarray | None) -> None:
    n = len(relevancy)
    if relevancy.ndim != 1:
        raise ValueError(f"relevancy must be [N], got shape {relevancy.shape}")
    for name, array in (("means", means), ("colors", colors), ("normals", normals)):
        if array is not None and array.shape != (n, 3):
            raise ValueError(f"{name} must be [{n}, 3] like relevancy, got shape {array.shape}")
    if not np.isfinite(relevancy).all():
        raise ValueError("relevancy has non-finite values")
    if not np.isfinite(means).all():
        raise ValueError("means have non-finite values")


def query_object(
    relevancy: np.ndarray,
    means: np.ndarray,
    colors: np.ndarray,
    config: QueryConfig,
    grasp_config: GraspConfig,
    normals: np.ndarray | None = None,
    *,
    threshold: float | None = None,
    max_points: int | None = None,
    max_grasps: int | None = None,
    max_objects: int = 1,
    tabletop: Tabletop | None = None,
) -> QueryResult:
    """Relevancy cloud, best object cluster, its oriented box and grasps for one query; with
    ``max_objects`` N > 1, up to N - 1 next-best distinct objects too (:func:`next_objects`).

    relevancy: [N] float32 per-Gaussian relevancy in [0, 1] for the prompt.
    means: [N, 3] float32 Gaussian centres, scene frame. colors: [N, 3] float32 RGB in 0..1.
    normals: [N, 3] float32 Gaussian normals (sign ignored) or None (estimated for the grasps).
    threshold, max_points, max_grasps: per-request overrides of the config (None = config value).
    tabletop: :func:`tabletop_of` these means and config, computed once per scene by the caller; None:
    computed here (gravity alignment only).
    """
    relevancy = np.asarray(relevancy)
    means = np.asarray(means)
    colors = np.asarray(colors)
    normals = None if normals is None else np.asarray(normals)
    _check_inputs(relevancy, means, colors, normals)
    threshold = config.relevancy_threshold if threshold is None else threshold
    max_points = config.max_points if max_points is None else max_points
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now

    selected = select_relevant(relevancy, threshold, max_points)
    max_relevancy = float(relevancy.max()) if len(relevancy) else 0.0
    lap("select")
    cloud = relevancy_cloud(means, colors, relevancy, selected)
    lap("cloud")
    none = np.zeros(0, dtype=np.int64)
    if len(selected) == 0:
        message = (
            "the scene has no Gaussians"
            if len(relevancy) == 0
            else f"nothing relevant: no Gaussian reaches relevancy {threshold:.3f} (max {max_relevancy:.3f})"
        )
        return QueryResult(cloud, selected, max_relevancy, None, none, (), message, timings)

    if config.box_alignment != "gravity":
        tabletop = None
    elif tabletop is None:
        tabletop = tabletop_of(means, config)
    elif len(tabletop.heights) != len(means):
        raise ValueError(f"tabletop is of {len(tabletop.heights)} Gaussians, the scene has {len(means)}")
    members = best_object_cluster(selected, means, relevancy, config, tabletop)
    lap("cluster")
    if members is None:
        message = (
            f"{len(selected)} relevant points but no cluster of {config.cluster_min_points} voxels "
            f"within {config.cluster_eps} m"
        )
        return QueryResult(cloud, selected, max_relevancy, None, none, (), message, timings)
    if config.object_growth > 0 and tabletop is not None:
        members = grow_object(members, means, tabletop, config)
    object_points = means[members].astype(np.float64)
    box = object_box(object_points, config)
    lap("box")
    alternatives: tuple[ObjectCandidate, ...] = ()
    if max_objects > 1:
        alternatives = next_objects(selected, members, means, relevancy, config, tabletop, max_objects - 1)
        lap("alternatives")

    # grown members may lie below the threshold: they are the object all the same
    # all the gripper may reach, the object itself left out (it is no obstacle)
    surroundings = neighbourhood(members, means, gripper_reach(grasp_config))
    grasps = plan_grasps(
        object_points,
        np.maximum(relevancy[members], threshold),
        means[surroundings],
        grasp_config,
        _unit_up(config),
        object_normals=None if normals is None else normals[members],
        max_grasps=max_grasps,
        support=None if tabletop is None else tabletop.support,
    )
    lap("grasps")
    centre, size = box.pose[:3, 3], box.extent
    message = (
        f"{len(selected)} relevant points; object of {len(members)} points at "
        f"({centre[0]:.3f}, {centre[1]:.3f}, {centre[2]:.3f}) m, size {size[0]:.3f} x {size[1]:.3f} x "
        f"{size[2]:.3f} m; {len(grasps)} grasps"
    )
    if not grasps:
        message += (
            f" (no collision-free antipodal grasp within the gripper's {grasp_config.gripper_max_width:.3f} m opening)"
        )
    if alternatives:
        message += f"; {len(alternatives)} other object{'s' if len(alternatives) > 1 else ''}"
    score = float(relevancy[members].mean())
    return QueryResult(cloud, selected, max_relevancy, box, members, grasps, message, timings, score, alternatives)


def next_objects(
    selected: np.ndarray,
    taken: np.ndarray,
    means: np.ndarray,
    relevancy: np.ndarray,
    config: QueryConfig,
    tabletop: Tabletop | None,
    count: int,
) -> tuple[ObjectCandidate, ...]:
    """Up to ``count`` more distinct objects among the relevant Gaussians, best score first.

    selected: [M] int64 relevant Gaussians; taken: [K] int64 the answer's object. Each next object is
    :func:`best_object_cluster` of what the objects found so far leave (grown like the answer's), its
    Gaussians never shared with an earlier one. The search ends when nothing relevant is left, no
    cluster forms, or (on a tabletop) only the support would answer: the table is never an
    alternative to an object on it.
    """
    found: list[ObjectCandidate] = []
    used = np.asarray(taken, dtype=np.int64)
    for _ in range(count):
        remaining = selected[~np.isin(selected, used)]
        members = best_object_cluster(remaining, means, relevancy, config, tabletop) if len(remaining) else None
        if members is None:
            break
        if tabletop is not None:
            if np.all(tabletop.heights[members] <= 0.0):
                break
            if config.object_growth > 0:
                members = grow_object(members, means, tabletop, config)
        members = members[~np.isin(members, used)]
        if len(members) == 0:
            break
        box = object_box(means[members].astype(np.float64), config)
        found.append(ObjectCandidate(box, float(relevancy[members].mean()), members))
        used = np.concatenate([used, members])
    return tuple(sorted(found, key=lambda c: -c.score))
