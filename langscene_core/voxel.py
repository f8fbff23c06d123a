"""Voxel grouping of point sets that keeps the point -> voxel map.

open3d's ``voxel_down_sample`` returns only the averaged cloud (and ``voxel_down_sample_and_trace``
returns one Python list per voxel, slow to convert), while the query needs each input point's voxel
to carry DBSCAN labels back to every point, and averages of arbitrary attributes (normals,
relevancy). Hence this small numpy grouping.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VoxelGroups:
    """Points grouped by the voxel they fall in.

    inverse: [N] int64, voxel index of every input point (0..V-1).
    counts: [V] int64, points per voxel (all >= 1).
    centroids: [V, 3] float64, mean position of each voxel's points (same frame as the input).
    """

    inverse: np.ndarray
    counts: np.ndarray
    centroids: np.ndarray

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Per-voxel mean of per-point values: [N] or [N, C] -> [V] or [V, C] float64."""
        return self.sum(values) / (self.counts if values.ndim == 1 else self.counts[:, None])

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Per-voxel sum of per-point values: [N] or [N, C] -> [V] or [V, C] float64."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape[0] != self.inverse.shape[0]:
            raise ValueError(f"values have {values.shape[0]} rows, the grouping has {self.inverse.shape[0]} points")
        n = self.counts.shape[0]
        if values.ndim == 1:
            return np.bincount(self.inverse, weights=values, minlength=n)
        return np.stack([np.bincount(self.inverse, weights=values[:, c], minlength=n)
                         for c in range(values.shape[1])], axis=1)


def group_by_voxel(points: np.ndarray, voxel_size: float) -> VoxelGroups:
    """Group points into cubic voxels of edge ``voxel_size`` (metres), aligned to the points' minimum.

    points: [N, 3] float32/float64, any frame. Raises ValueError on a non-positive voxel size.
    """
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be positive, got {voxel_size}")
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be [N, 3], got shape {points.shape}")
    if len(points) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return VoxelGroups(inverse=empty, counts=empty, centroids=np.zeros((0, 3)))
    cells = np.floor((points - points.min(axis=0)) / voxel_size).astype(np.int64)
    dims = cells.max(axis=0) + 1
    keys = (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]
    _, inverse = np.unique(keys, return_inverse=True)
    counts = np.bincount(inverse)
    groups = VoxelGroups(inverse=inverse, counts=counts, centroids=np.zeros((len(counts), 3)))
    return VoxelGroups(inverse=inverse, counts=counts, centroids=groups.mean(points))
