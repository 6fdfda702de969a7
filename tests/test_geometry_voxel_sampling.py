"""Voxel down-sampling and farthest point sampling."""

from __future__ import annotations

import numpy as np
import pytest

from _geometry_scenes import floor_and_boxes
from labelfree3d.errors import ParameterError
from labelfree3d.geometry import farthest_point_sampling, voxel_coordinates, voxel_downsample
from labelfree3d.structures import InstanceMasks


def test_voxel_inverse_round_trips():
    points, ids = floor_and_boxes(density=2000)
    colors = np.random.default_rng(1).random((points.shape[0], 3))
    grid = voxel_downsample(points, 0.05, features=colors)
    m = grid.points.shape[0]
    assert grid.inverse.shape == (points.shape[0],) and grid.inverse.dtype == np.int64
    assert grid.inverse.min() == 0 and grid.inverse.max() == m - 1
    assert grid.counts.sum() == points.shape[0] and np.all(grid.counts >= 1)
    # every point lies in the voxel it maps to, and so does that voxel's centroid
    np.testing.assert_array_equal(grid.coords[grid.inverse], voxel_coordinates(points, 0.05))
    np.testing.assert_array_equal(voxel_coordinates(grid.points, 0.05), grid.coords)
    assert np.abs(points - grid.points[grid.inverse]).max() <= 0.05
    # occupied voxels are unique
    assert np.unique(grid.coords, axis=0).shape[0] == m
    # centroids and features are the per-voxel means
    for voxel in (0, m // 2, m - 1):
        members = grid.inverse == voxel
        np.testing.assert_allclose(grid.points[voxel], points[members].mean(axis=0))
        np.testing.assert_allclose(grid.features[voxel], colors[members].mean(axis=0))
    # masks computed on voxels lift back to the points
    voxel_masks = InstanceMasks.from_labels(np.arange(m) % 7)
    lifted = voxel_masks.lift(grid.inverse)
    np.testing.assert_array_equal(lifted.to_labels(), (np.arange(m) % 7)[grid.inverse])


def test_voxel_result_does_not_depend_on_point_order():
    points, _ = floor_and_boxes(density=1000)
    order = np.random.default_rng(2).permutation(points.shape[0])
    a = voxel_downsample(points, 0.02)
    b = voxel_downsample(points[order], 0.02)
    np.testing.assert_array_equal(a.coords, b.coords)
    np.testing.assert_allclose(a.points, b.points)
    np.testing.assert_array_equal(a.inverse[order], b.inverse)


def test_voxel_keeps_float32_and_honours_origin():
    points = np.array([[0.015, 0.01, 0.01], [0.025, 0.01, 0.01]], dtype=np.float32)
    assert voxel_downsample(points, 0.02).points.dtype == np.float32
    assert voxel_downsample(points, 0.02).points.shape[0] == 2
    assert voxel_downsample(points, 0.02, origin=(0.01, 0.0, 0.0)).points.shape[0] == 1
    assert voxel_coordinates([[-0.001, 0, 0]], 0.02)[0, 0] == -1  # floor, not truncation


@pytest.mark.parametrize(
    "call",
    [
        lambda: voxel_downsample(np.random.rand(10, 3), -0.02),
        lambda: voxel_downsample(np.random.rand(10, 3), 0.0),
        lambda: voxel_downsample(np.random.rand(10, 3), float("nan")),
        lambda: voxel_downsample(np.zeros((0, 3)), 0.02),
        lambda: voxel_downsample(np.array([[0, 0, np.nan]]), 0.02),
        lambda: voxel_downsample(np.random.rand(10, 3), 0.02, features=np.ones(9)),
    ],
)
def test_voxel_rejects_absurd_arguments(call):
    with pytest.raises(ParameterError):
        call()


def test_fps_returns_unique_indices_covering_the_extent():
    points, _ = floor_and_boxes(density=2000)
    picked = farthest_point_sampling(points, 256)
    assert picked.dtype == np.int64 and picked.shape == (256,)
    assert np.unique(picked).shape[0] == 256
    low, high = points.min(axis=0), points.max(axis=0)
    sample_low, sample_high = points[picked].min(axis=0), points[picked].max(axis=0)
    assert np.all(sample_high - sample_low >= 0.9 * (high - low))
    # every point is close to a sample: far better than 256 random picks would manage
    from scipy.spatial import cKDTree

    gap = cKDTree(points[picked]).query(points)[0].max()
    random_pick = np.random.default_rng(0).choice(len(points), 256, replace=False)
    random_gap = cKDTree(points[random_pick]).query(points)[0].max()
    assert gap < 0.2 and gap < 0.7 * random_gap


def test_fps_is_deterministic_and_bucket_matches_exact():
    points = np.random.default_rng(5).random((5000, 3))
    a = farthest_point_sampling(points, 100, start_index=3)
    np.testing.assert_array_equal(a, farthest_point_sampling(points, 100, start_index=3))
    exact = farthest_point_sampling(points, 100, start_index=3, method="exact")
    assert exact[0] == 3
    # QuickFPS gives the textbook sequence from whichever point it started at
    np.testing.assert_array_equal(a, farthest_point_sampling(points, 100, start_index=int(a[0]), method="exact"))


def test_fps_small_clouds():
    assert farthest_point_sampling([[0.0, 0, 0]], 1).tolist() == [0]
    assert sorted(farthest_point_sampling(np.random.rand(5, 3), 5).tolist()) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "kwargs",
    [{"num_samples": 0}, {"num_samples": 11}, {"num_samples": 2, "start_index": 10}, {"num_samples": 2, "method": "x"}],
)
def test_fps_rejects_absurd_arguments(kwargs):
    with pytest.raises(ParameterError):
        farthest_point_sampling(np.random.rand(10, 3), **kwargs)


@pytest.mark.realdata
def test_one_point_per_cell_thins_a_kinect_frame_to_one_point_per_occupied_cell(osd_dir):
    from labelfree3d.geometry import one_point_per_cell, voxel_coordinates
    from labelfree3d.io import read_scene

    points = read_scene(osd_dir / "learn0.pcd").points
    for rng in (None, np.random.default_rng(0)):
        kept = one_point_per_cell(points, 0.005, rng)
        cells = voxel_coordinates(points, 0.005)
        assert np.all(np.diff(kept) > 0)
        assert len(np.unique(cells[kept], axis=0)) == len(kept) == len(np.unique(cells, axis=0))
        assert len(kept) < 0.6 * len(points)
    assert not np.array_equal(one_point_per_cell(points, 0.005, np.random.default_rng(1)), one_point_per_cell(points, 0.005))
    assert one_point_per_cell(points[:0], 0.01).shape == (0,)
