"""FreePoint multicut pseudo masks: solver sign, building blocks, synthetic and real scans."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from labelfree3d.errors import ParameterError
from labelfree3d.evaluate import evaluate_scenes
from labelfree3d.geometry import detect_planes, knn_graph
from labelfree3d.io import read_scene
from labelfree3d.segment import SEGMENTERS, make_segmenter
from labelfree3d.segment.multicut import (
    KIND_DEFAULTS,
    FreePointMulticutSegmenter,
    majority_vote,
    solve_multicut,
    standardize,
)
from labelfree3d.structures import Scene
from labelfree3d.synthetic import make_scene

CPU_SOLVERS = ("gaec+kl", "gaec", "kl", "greedy-fixation", "fusion-moves")


# ---------------------------------------------------------------------- solver and helpers
@pytest.mark.parametrize("solver", CPU_SOLVERS)
def test_positive_costs_join_and_negative_costs_cut(solver):
    # a chain 0-1-2-3: positive = attractive in elf, so cutting only the negative edge is optimal
    edges = np.array([[0, 1], [1, 2], [2, 3]])
    np.testing.assert_array_equal(solve_multicut(edges, np.array([1.0, -1.0, 1.0]), 4, solver), [0, 0, 1, 1])
    np.testing.assert_array_equal(solve_multicut(edges, np.array([-1.0, 1.0, -1.0]), 4, solver), [0, 1, 1, 2])
    # a triangle whose repulsive edge is weaker than either attractive one: cutting it would
    # also cut an attractive edge (a cycle is never cut once), so joining all (cost 0) wins
    triangle = np.array([[0, 1], [1, 2], [0, 2]])
    np.testing.assert_array_equal(solve_multicut(triangle, np.array([2.0, 2.0, -1.5]), 3, solver), [0, 0, 0])
    # when the repulsive edge outweighs one attractive edge, node 2 is cut off (1 - 1.5 < 0)
    np.testing.assert_array_equal(solve_multicut(triangle, np.array([2.0, 1.0, -1.5]), 3, solver), [0, 0, 1])


def test_higher_offset_merges_more_on_a_noisy_graph():
    rng = np.random.default_rng(0)
    points = rng.random((2000, 3))
    edges, lengths = knn_graph(points, 4)
    affinity = standardize(-lengths) + rng.normal(0, 0.5, lengths.shape[0])
    counts = [solve_multicut(edges, affinity + sigma, 2000).max() + 1 for sigma in (0.0, 0.5, 0.9, 1.2, 2.0)]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]


def test_isolated_nodes_and_empty_graphs_are_singletons():
    np.testing.assert_array_equal(solve_multicut(np.zeros((0, 2), int), np.zeros(0), 3), [0, 1, 2])
    np.testing.assert_array_equal(solve_multicut(np.array([[0, 2]]), np.array([1.0]), 4), [0, 1, 0, 2])
    with pytest.raises(ParameterError, match="solver"):
        solve_multicut(np.array([[0, 1]]), np.array([1.0]), 2, "ilp")


def test_standardize_and_majority_vote():
    values = np.array([1.0, 2.0, 3.0, 6.0])
    z = standardize(values)
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12
    np.testing.assert_array_equal(standardize(np.full(5, 0.3)), np.zeros(5))  # constant term: no say
    votes = np.array([[3, 1, 1, 2], [5, 5, 7, 7], [4, 9, 8, 6], [2, 2, 2, 1]])
    # majority; a 2-2 tie and an all-different row go to the nearest sample (column 0)
    np.testing.assert_array_equal(majority_vote(votes), [1, 5, 4, 2])


def test_detect_planes_finds_floor_and_walls_of_a_room():
    scene = make_scene("room", seed=1, density=1000, with_normals=True)
    models, labels = detect_planes(scene.points, scene.normals, distance=0.02, max_planes=6, min_fraction=0.02)
    names = np.array(scene.gt.instance_names)[scene.gt.instance_ids]
    enclosure = np.isin(names, ["floor", "wall"])
    assert 4 <= models.shape[0] <= 6
    np.testing.assert_allclose(np.linalg.norm(models[:, :3], axis=1), 1.0)
    assert np.mean(labels[enclosure] >= 0) > 0.95
    assert np.mean(labels[~enclosure] >= 0) < 0.15  # box tops and sides are planes too, but small ones
    again, _ = detect_planes(scene.points, scene.normals, distance=0.02, max_planes=6, min_fraction=0.02)
    np.testing.assert_array_equal(models, again)


# ---------------------------------------------------------------------- synthetic scenes
def tabletop_scene(seed: int):
    """A synthetic tabletop with PCA normals oriented to its camera, as for a Kinect PCD.

    The exact normals the generator can attach make every box edge an ideal 90 degree crease,
    which real scans never show; the camera position (the generator's) stands in for the
    PCD VIEWPOINT so that orientation is cheap.
    """
    scene = make_scene("tabletop", seed=seed)
    scene.metadata["viewpoint"] = "0 -1 0.8 1 0 0 0"
    return scene


@pytest.fixture(scope="module")
def tabletop():
    return tabletop_scene(2)


@pytest.fixture(scope="module")
def tabletop_result(tabletop):
    segmenter = FreePointMulticutSegmenter(min_mask_points=1)
    return segmenter, segmenter.pseudo_labels(tabletop)


def test_finds_the_tabletop_objects():
    segmenter = FreePointMulticutSegmenter()
    scenes = [tabletop_scene(seed) for seed in range(6)]
    predictions = {scene.name: segmenter.segment(scene) for scene in scenes}
    report = evaluate_scenes(predictions, {scene.name: scene.gt for scene in scenes}, extra_metrics=False)
    # measured AP50 0.84, AP 0.55 over the 6 scenes (41 objects) with the tabletop defaults
    # (sigma 1.4, chosen on real OSD clouds); what is missed is mostly the box stacked on
    # another, told apart by colour alone
    assert report["ap50"] >= 0.75 and report["ap"] >= 0.45


def test_the_table_is_background(tabletop, tabletop_result):
    _, result = tabletop_result
    table = tabletop.gt.instance_ids == 0
    assert np.mean(result.background[table]) > 0.9 and np.mean(result.background[~table]) < 0.05
    assert result.planes.shape == (1, 4) and abs(abs(result.planes[0, 2]) - 1) < 1e-3


def test_upsampling_labels_every_foreground_point_and_no_background_point(tabletop, tabletop_result):
    segmenter, result = tabletop_result
    for level in ("low", "high"):
        labels = result.labels[level]
        assert np.all(labels[~result.background] >= 0)
        assert np.all(labels[result.background] == -1)
        # up-sampling follows the multicut: at the samples the two partitions agree except where
        # a sample's 3 other voters outvote it (tiny segments vanish into their surroundings)
        at_samples = labels[result.sample_indices]
        assert adjusted_rand_score(result.sample_labels[level], at_samples) > 0.95
        sizes = np.bincount(result.sample_labels[level])
        assert at_samples.max() + 1 < sizes.shape[0] and at_samples.max() + 1 >= np.count_nonzero(sizes >= 10)
    foreground = np.count_nonzero(~result.background)
    assert result.sample_indices.shape[0] == round(0.5 * foreground)  # sec. 4: half the points
    assert np.all(~result.background[result.sample_indices])
    degree = np.bincount(result.edges.ravel(), minlength=result.sample_indices.shape[0])
    assert degree.min() >= segmenter.k1  # every sample keeps its k1 = 4 neighbours


def test_sigma_high_gives_no_more_segments_than_sigma_low(tabletop_result):
    _, result = tabletop_result
    low, high = result.sample_labels["low"], result.sample_labels["high"]
    assert high.max() <= low.max()
    assert len(result.masks("high")) <= len(result.masks("low"))


def test_levels_and_both(tabletop):
    segmenter = FreePointMulticutSegmenter(solver="gaec", level="both")
    levels = segmenter.segment_levels(tabletop)
    both = segmenter.segment(tabletop)
    assert set(levels) == {"low", "high"}
    assert len(both) == len(levels["low"]) + len(levels["high"])
    np.testing.assert_array_equal(both.scores[: len(levels["low"])], levels["low"].scores)
    for masks in levels.values():
        assert masks.num_points == tabletop.num_points and not masks.is_overlapping
        assert masks.sizes.min() >= segmenter.min_mask_points
        assert np.all((masks.scores > 0) & (masks.scores < 1))
    high_only = FreePointMulticutSegmenter(solver="gaec", level="high").segment(tabletop)
    np.testing.assert_array_equal(high_only.indices, levels["high"].indices)


def test_deep_features_enter_through_the_cosine_term():
    # features that tell the objects apart (one-hot of the true instance plus noise) fix what
    # geometry and colour alone get wrong on this scene (a fragment split off the stacked boxes)
    scene = tabletop_scene(0)
    ids = scene.gt.instance_ids
    oracle = np.eye(ids.max() + 1)[ids] + np.random.default_rng(0).normal(0, 0.05, (ids.shape[0], ids.max() + 1))
    segmenter = FreePointMulticutSegmenter(solver="gaec", alpha_embedding=3.0)
    truth = {scene.name: scene.gt}
    plain = evaluate_scenes({scene.name: segmenter.segment(scene)}, truth, extra_metrics=False)
    guided = evaluate_scenes({scene.name: segmenter.segment(scene, features=oracle)}, truth, extra_metrics=False)
    assert guided["ap50"] == pytest.approx(1.0) and guided["ap"] > plain["ap"]
    with pytest.raises(ParameterError, match="features"):
        segmenter.segment(scene, features=oracle[:-1])


# ---------------------------------------------------------------------- parameters
def test_registered_and_built_by_name():
    assert SEGMENTERS["multicut"] is FreePointMulticutSegmenter
    segmenter = make_segmenter("multicut", sigma_low="0.85", k1="6", level="high")
    assert segmenter.sigma_low == 0.85 and segmenter.k1 == 6 and segmenter.level == "high"
    defaults = FreePointMulticutSegmenter()
    assert (defaults.sample_ratio, defaults.k1, defaults.k2) == (0.5, 4, 4)
    assert (defaults.sigma_low, defaults.sigma_high, defaults.solver) == (None, None, "gaec+kl")
    assert (KIND_DEFAULTS["lidar_sweep"]["sigma_low"], KIND_DEFAULTS["lidar_sweep"]["sigma_high"]) == (0.9, 1.2)
    assert "size" in FreePointMulticutSegmenter.score_rule


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"k1": 0}, "k1"),
        ({"k2": -1}, "k2"),
        ({"sample_ratio": 0.0}, "sample_ratio"),
        ({"sample_ratio": 1.5}, "sample_ratio"),
        ({"sigma_low": 1.3, "sigma_high": 1.2}, "sigma_high"),
        ({"sigma_low": float("nan")}, "sigma_low"),
        ({"level": "medium"}, "level"),
        ({"solver": "ilp"}, "solver"),
        ({"alpha_xyz": -1.0}, "alpha_xyz"),
        ({"alpha_normal": 0.0, "alpha_xyz": 0.0, "alpha_rgb": 0.0}, "cannot all be 0"),
        ({"structure": "floor"}, "structure"),
        ({"min_mask_points": 0}, "min_mask_points"),
        ({"score": "best"}, "score"),
        ({"normal_similarity": "dot"}, "normal_similarity"),
    ],
)
def test_bad_parameters_raise(settings, message):
    with pytest.raises(ParameterError, match=message):
        FreePointMulticutSegmenter(**settings)


def test_rama_needs_its_package():
    try:
        import rama_py  # noqa: F401
    except ImportError:
        with pytest.raises(ParameterError, match="rama_py"):
            FreePointMulticutSegmenter(solver="rama")
    else:
        assert FreePointMulticutSegmenter(solver="rama").solver == "rama"


def test_a_scene_that_is_all_plane_has_no_masks():
    rng = np.random.default_rng(0)
    floor = np.column_stack([rng.random((3000, 2)), rng.normal(0, 0.002, 3000)])
    scene = Scene(points=floor, normals=np.tile([0.0, 0.0, 1.0], (3000, 1)))
    result = FreePointMulticutSegmenter().pseudo_labels(scene)
    assert result.background.all() and len(result.masks("low")) == 0 and len(result.masks("high")) == 0


def test_tiny_scenes_give_no_masks():
    scene = Scene(points=np.random.default_rng(0).random((7, 3)))
    result = FreePointMulticutSegmenter().pseudo_labels(scene)
    assert not result.background.any() and np.all(result.labels["low"] == -1)
    assert len(FreePointMulticutSegmenter(level="both").segment(scene)) == 0
    with pytest.raises(ParameterError, match="shape"):
        detect_planes(scene.points, scene.points[:3])
    with pytest.raises(ParameterError, match="max_angle"):
        detect_planes(scene.points, scene.points, max_angle=0.0)


# ---------------------------------------------------------------------- real scans
@pytest.mark.realdata
def test_osd_learn_cloud(osd_dir):
    scene = read_scene(osd_dir / "learn10.pcd")  # 208,763 points, 2 objects on a table
    segmenter = FreePointMulticutSegmenter()
    start = time.perf_counter()
    result = segmenter.pseudo_labels(scene)
    elapsed = time.perf_counter() - start
    assert elapsed < 30  # ~1.5 s on 2 idle cores
    low, high = result.masks("low"), result.masks("high")
    # the multicut itself merges more at sigma_high (184 -> 142 segments); after the vote and the
    # 100-point filter the mask counts need not be ordered (a fragment can grow past 100 points)
    assert result.sample_labels["high"].max() < result.sample_labels["low"].max()
    assert 2 <= len(low) <= 20 and 2 <= len(high) <= 20
    report = evaluate_scenes({scene.name: low}, {scene.name: scene.gt}, extra_metrics=False)
    assert report["ap25"] == 1.0  # both objects are found
    table = scene.gt.instance_ids == 0
    assert np.mean(low.coverage()[table] > 0) < 0.05


@pytest.mark.realdata
def test_scannet_scene(scannet_scene_dir):
    scene = read_scene(scannet_scene_dir)  # 81,369 mesh vertices, 45 evaluated objects
    segmenter = FreePointMulticutSegmenter()
    start = time.perf_counter()
    result = segmenter.pseudo_labels(scene)
    elapsed = time.perf_counter() - start
    assert elapsed < 60  # ~3 s on 2 idle cores
    names = np.array(scene.gt.instance_names)[np.maximum(scene.gt.instance_ids, 0)]
    floor = (scene.gt.instance_ids >= 0) & (names == "floor")
    assert np.mean(result.background[floor]) > 0.8  # the floor is a background plane
    assert result.planes.shape[0] >= 2  # the floor and walls
    low, high = result.masks("low"), result.masks("high")
    assert 15 <= len(low) <= 80 and len(high) <= len(low)
    report = evaluate_scenes({scene.name: low}, {scene.name: scene.gt}, extra_metrics=False)
    assert report["ap25"] > 0.2  # measured 0.277; plane + Euclidean clustering scores 0 here
