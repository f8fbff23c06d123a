"""Voxel grouping keeps the point -> voxel map and averages attributes per voxel."""

import numpy as np
import pytest

from langscene_core.geometry.voxel import bounds, group_by_voxel, points_in_box


def test_groups_counts_and_means():
    points = np.array([[0.001, 0.001, 0.0], [0.004, 0.002, 0.0], [0.012, 0.0, 0.0], [0.0, 0.0, 0.031]])
    groups = group_by_voxel(points, 0.01)
    assert len(groups.counts) == 3 and groups.counts.sum() == 4
    assert groups.inverse[0] == groups.inverse[1] != groups.inverse[2] != groups.inverse[3]
    np.testing.assert_allclose(groups.centroids[groups.inverse[0]], [0.0025, 0.0015, 0.0])
    np.testing.assert_allclose(groups.sum(np.ones(4)), groups.counts)
    np.testing.assert_allclose(groups.mean(points), groups.centroids)
    weights = np.array([1.0, 3.0, 5.0, 7.0])
    assert groups.mean(weights)[groups.inverse[0]] == 2.0


def test_every_point_is_within_a_voxel_diagonal_of_its_centroid():
    points = np.random.default_rng(0).uniform(-1, 1, (5000, 3))
    groups = group_by_voxel(points, 0.1)
    assert np.linalg.norm(points - groups.centroids[groups.inverse], axis=1).max() <= 0.1 * np.sqrt(3)
    assert len(groups.counts) <= 20**3


def test_empty_and_bad_input():
    assert len(group_by_voxel(np.zeros((0, 3)), 0.1).counts) == 0
    with pytest.raises(ValueError, match="voxel_size"):
        group_by_voxel(np.zeros((2, 3)), 0.0)
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        group_by_voxel(np.zeros((2, 2)), 0.1)
    with pytest.raises(ValueError, match="rows"):
        group_by_voxel(np.zeros((2, 3)), 0.1).sum(np.zeros(3))


@pytest.mark.parametrize("spread", [0.2, 50.0])  # a dense grid of the bounding box, and sorted keys
def test_voxels_are_numbered_in_cell_order_on_either_path(spread):
    rng = np.random.default_rng(1)
    points = np.concatenate([rng.uniform(0, 0.2, (3000, 3)), rng.uniform(0, spread, (20, 3))])
    groups = group_by_voxel(points, 0.01)
    cells = np.floor((points - points.min(axis=0)) / 0.01).astype(np.int64)
    distinct, expected = np.unique(cells, axis=0, return_inverse=True)  # lexicographic (x, y, z) order
    np.testing.assert_array_equal(groups.inverse, expected.ravel())
    np.testing.assert_array_equal(groups.counts, np.bincount(expected.ravel()))
    assert len(distinct) == len(groups.counts)


def test_bounds_are_the_per_coordinate_extremes():
    points = np.random.default_rng(2).normal(size=(1000, 3)).astype(np.float32)
    lo, hi = bounds(points)
    np.testing.assert_array_equal(lo, points.min(axis=0))
    np.testing.assert_array_equal(hi, points.max(axis=0))


def test_points_in_box_is_the_boxed_subset_minus_the_excluded():
    points = np.random.default_rng(3).uniform(-1, 1, (5000, 3)).astype(np.float32)
    lo, hi = np.array([-0.2, -0.5, 0.0]), np.array([0.3, 0.1, 0.9])
    inside = np.flatnonzero(np.all((points >= lo) & (points <= hi), axis=1))
    np.testing.assert_array_equal(points_in_box(points, lo, hi), inside)
    excluded = np.zeros(len(points), dtype=bool)
    excluded[inside[::2]] = True
    np.testing.assert_array_equal(points_in_box(points, lo, hi, excluded), inside[1::2])
    assert len(points_in_box(points, hi, lo)) == 0  # an empty box
    with pytest.raises(ValueError, match="excluded"):
        points_in_box(points, lo, hi, np.zeros(3, dtype=bool))
