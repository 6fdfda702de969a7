"""PointINS's ODR (magnitudes follow the prior), SCR (a toy scene's components) and offset clustering."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from labelfree3d.errors import ParameterError
from labelfree3d.models.pointins.regularize import (
    OffsetPrior,
    align_offset_magnitudes,
    offset_instance_scores,
    offset_instances,
    spatial_clustering_targets,
)


@pytest.mark.parametrize("prior", [OffsetPrior.indoor(), OffsetPrior.outdoor()], ids=["gamma", "lognormal"])
def test_odr_magnitudes_follow_the_prior_and_keep_direction_and_order(prior):
    rng = np.random.default_rng(0)
    offsets = rng.normal(size=(5000, 3)) * rng.uniform(0.001, 0.05, size=(5000, 1))
    aligned = align_offset_magnitudes(offsets, prior)
    assert aligned.dtype == np.float32 and aligned.shape == offsets.shape
    magnitudes = np.linalg.norm(aligned.astype(np.float64), axis=1)
    assert stats.kstest(magnitudes, prior.cdf).pvalue > 0.05
    # the network's predictions do not follow the prior
    assert stats.kstest(np.linalg.norm(offsets, axis=1), prior.cdf).pvalue < 1e-6
    cosine = (aligned * offsets).sum(axis=1) / (magnitudes * np.linalg.norm(offsets, axis=1))
    assert np.allclose(cosine, 1.0, atol=1e-4)
    assert (np.argsort(magnitudes, kind="stable") == np.argsort(np.linalg.norm(offsets, axis=1), kind="stable")).all()


def test_odr_keeps_zero_offsets_at_zero_and_rejects_bad_input():
    offsets = np.array([[0.0, 0, 0], [0.1, 0, 0], [0, 0.2, 0]])
    aligned = align_offset_magnitudes(offsets, OffsetPrior.indoor())
    assert (aligned[0] == 0).all() and aligned[1, 0] > 0 and aligned[2, 1] > aligned[1, 0]
    with pytest.raises(ParameterError, match="NaN"):
        align_offset_magnitudes(np.array([[np.nan, 0, 0]]), OffsetPrior.indoor())
    with pytest.raises(ParameterError, match="kind"):
        OffsetPrior(kind="uniform")
    with pytest.raises(ParameterError, match="theta"):
        OffsetPrior(theta=0.0)


def _two_blobs(rng):
    """Two objects of 200 points each, 2 m apart, and two feature clusters that split them."""
    centres = np.array([[0.0, 0, 0], [2.0, 0, 0]])
    points = np.concatenate([c + rng.normal(scale=0.15, size=(200, 3)) for c in centres])
    features = np.concatenate([np.tile([1.0, 0, 0, 0], (200, 1)), np.tile([0, 1.0, 0, 0], (200, 1))])
    features += rng.normal(scale=0.01, size=features.shape)
    return centres, points, features


def test_scr_finds_each_object_and_targets_its_refined_centroid():
    rng = np.random.default_rng(1)
    centres, points, features = _two_blobs(rng)
    truth = np.repeat(centres, 200, axis=0)
    offsets = truth - points + rng.normal(scale=0.02, size=points.shape)  # near-correct predictions
    outliers = np.array([0, 1, 2])
    offsets[outliers] += 5.0  # three centroids far from everything: a component of 3 < τ_min
    result = spatial_clustering_targets(points, offsets, features, num_segments=2, knn=20, max_distance=0.3, min_size=30)
    assert set(np.unique(result.components[result.valid])) == {0, 1}
    assert not result.valid[outliers].any() and result.valid[3:].all()
    assert np.allclose(result.targets[outliers], offsets[outliers].astype(np.float32))
    # every kept point's target lands on the mean predicted centroid of its object
    refined = points[result.valid] + result.targets[result.valid]
    assert np.abs(refined - truth[result.valid]).max() < 0.01
    assert len(np.unique(result.segments)) == 2


def test_scr_splits_objects_whose_centroids_are_farther_than_tau_d():
    rng = np.random.default_rng(2)
    _, points, _ = _two_blobs(rng)
    features = np.ones((400, 4))  # one feature segment holds both objects
    offsets = np.repeat([[0.0, 0, 0], [2.0, 0, 0]], 200, axis=0) - points
    result = spatial_clustering_targets(points, offsets, features, num_segments=1, knn=20, max_distance=0.5, min_size=10)
    assert len(np.unique(result.components)) == 2 and result.valid.all()
    assert (result.components[:200] == result.components[0]).all()
    with pytest.raises(ParameterError, match="same rows"):
        spatial_clustering_targets(points, offsets[:10], features)
    with pytest.raises(ParameterError, match="max_distance"):
        spatial_clustering_targets(points, offsets, features, max_distance=-1.0)


def test_offset_instances_cluster_shifted_points_and_score_tight_clusters_higher():
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0, 0], [0.5, 0, 0], [0, 0.5, 0]])
    points = np.concatenate([c + rng.uniform(-0.2, 0.2, size=(150, 3)) for c in centres])
    truth = np.repeat(centres, 150, axis=0)
    noise = np.repeat([0.005, 0.005, 0.03], 150)[:, None]
    offsets = truth - points + rng.normal(size=points.shape) * noise
    labels = offset_instances(points, offsets, radius=0.1, min_size=20)
    assert len(np.unique(labels)) == 3 and (labels >= 0).all()
    for block in range(3):
        assert len(np.unique(labels[block * 150 : (block + 1) * 150])) == 1
    # the 0.4 m cubes are 0.1 m apart: unshifted, they chain into one cluster
    assert len(np.unique(offset_instances(points, np.zeros_like(points), radius=0.15))) == 1
    scores = offset_instance_scores(points, offsets, labels, scale=0.1)
    loose = labels[300]
    assert scores.shape == (3,) and scores[loose] < np.delete(scores, loose).min()
    assert ((scores > 0) & (scores <= 1)).all()
