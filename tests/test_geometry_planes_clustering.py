"""One-point RANSAC planes and Euclidean clustering on a synthetic floor with boxes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from _geometry_scenes import floor_and_boxes
from labelfree3d.errors import ParameterError
from labelfree3d.geometry import detect_planes, estimate_point_normals, euclidean_clustering, point_plane_distances


@pytest.fixture(scope="module")
def scene():
    return floor_and_boxes(seed=0, density=3000)


@pytest.fixture(scope="module")
def normals(scene):
    return estimate_point_normals(scene[0], k=16, orientation="none")


def segment_planes(points, normals, distance, **options):
    return detect_planes(points, normals, distance=distance, voxel=0.0, **options)


def test_ransac_finds_the_floor_first(scene, normals):
    points, ids = scene
    models, labels = segment_planes(points, normals, 0.01, max_planes=1, min_fraction=0.2)
    assert models.shape == (1, 4)
    normal, offset = models[0, :3], models[0, 3]
    assert abs(abs(normal[2]) - 1) < 1e-3 and abs(offset) < 0.005
    floor = ids == 0
    assert np.mean(labels[floor] == 0) > 0.99
    # only the few box points within 1 cm of the floor are mistaken for it
    assert np.mean(labels[~floor] == 0) < 0.05
    # the plane is refitted to its inliers by least squares, so a few end up just past the threshold
    assert np.abs(point_plane_distances(points[labels == 0], models[0])).max() < 0.015


def test_ransac_stops_at_min_fraction_and_is_deterministic(scene, normals):
    points, _ = scene
    fraction = 500 / points.shape[0]
    models, labels = segment_planes(points, normals, 0.01, max_planes=20, min_fraction=fraction, seed=3)
    sizes = np.bincount(labels[labels >= 0])
    assert models.shape[0] == sizes.shape[0] and sizes.min() >= 500
    # the floor and the box tops and sides are all planes, but no plane is smaller than 500 points
    assert 4 <= models.shape[0] <= 20
    np.testing.assert_allclose(np.linalg.norm(models[:, :3], axis=1), 1.0)
    again_models, again_labels = segment_planes(points, normals, 0.01, max_planes=20, min_fraction=fraction, seed=3)
    np.testing.assert_array_equal(labels, again_labels)
    np.testing.assert_allclose(models, again_models)


def test_clustering_after_floor_removal_recovers_the_boxes(scene, normals):
    points, ids = scene
    _, planes = segment_planes(points, normals, 0.01, max_planes=1, min_fraction=0.2)
    clusters = euclidean_clustering(points, tolerance=0.03, min_size=50, node_mask=planes != 0)
    boxes = (planes != 0) & (ids > 0)
    clustered = boxes & (clusters >= 0)  # a few box points near the floor are left as fragments
    assert np.mean(clustered[boxes]) > 0.95
    assert set(np.unique(clusters[clustered])) == {0, 1, 2}
    assert adjusted_rand_score(ids[clustered], clusters[clustered]) == 1.0
    # the floor plane is excluded; the odd noisy floor point RANSAC missed is too small a cluster
    assert np.all(clusters[planes == 0] == -1) and np.mean(clusters[ids == 0] >= 0) < 0.005
    sizes = np.bincount(clusters[clusters >= 0])
    assert np.all(np.diff(sizes) <= 0)  # largest cluster first


def test_clustering_size_limits_mark_noise():
    rng = np.random.default_rng(0)
    blob_a = rng.normal(0, 0.01, (200, 3))
    blob_b = rng.normal(0, 0.01, (50, 3)) + [1, 0, 0]
    stray = np.array([[5.0, 5, 5]])
    points = np.vstack([blob_a, blob_b, stray])
    labels = euclidean_clustering(points, 0.05)
    assert labels[:200].tolist() == [0] * 200 and labels[200:250].tolist() == [1] * 50 and labels[-1] == 2
    labels = euclidean_clustering(points, 0.05, min_size=10, max_size=100)
    assert np.all(labels[:200] == -1) and np.all(labels[200:250] == 0) and labels[-1] == -1


@pytest.mark.parametrize(
    "call",
    [
        lambda: detect_planes(np.random.rand(100, 3), np.random.rand(100, 3), distance=-0.01),
        lambda: detect_planes(np.random.rand(100, 3), np.random.rand(100, 3), min_fraction=1.5),
        lambda: detect_planes(np.random.rand(100, 3), np.random.rand(100, 3), max_angle=0.0),
        lambda: detect_planes(np.random.rand(100, 3), np.random.rand(100, 3), max_planes=-1),
        lambda: detect_planes(np.random.rand(100, 3), np.random.rand(3, 3)),
        lambda: euclidean_clustering(np.random.rand(10, 3), 0.0),
        lambda: euclidean_clustering(np.random.rand(10, 3), 0.1, min_size=5, max_size=2),
        lambda: euclidean_clustering(np.array([[np.inf, 0, 0]]), 0.1),
        lambda: point_plane_distances(np.random.rand(4, 3), [0, 0, 0, 1]),
    ],
)
def test_absurd_arguments_raise_parameter_error(call):
    with pytest.raises(ParameterError):
        call()
