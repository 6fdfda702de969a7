"""PQ, Hungarian metrics, ARI and the building blocks, against naive loop references."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
from reference_scannet_eval import reference_ari, reference_iou_matrix, reference_paint, reference_panoptic
from scipy.optimize import linear_sum_assignment
from test_evaluate_ap import random_scene, to_masks

from labelfree3d.evaluate import InstanceEvaluator, jsonable_report
from labelfree3d.evaluate.overlaps import compact_gt_labels, compute_scene_overlaps
from labelfree3d.evaluate.panoptic import PanopticCounts, panoptic_counts, panoptic_quality
from labelfree3d.evaluate.unsupervised import adjusted_rand_index, hungarian_counts
from labelfree3d.structures import GroundTruth, InstanceMasks


def test_intersection_counts_equal_dense_counting():
    rng = np.random.default_rng(0)
    for num_labels in (1, 7, 5000):  # 5000 x 40 cells > 4 nnz: the sorting branch
        n = 3000
        masks = InstanceMasks.from_dense(rng.random((40, n)) < 0.05, rng.random(40))
        labels = rng.integers(-1, num_labels, n)
        counts = masks.intersection_counts(labels, num_labels)
        dense = masks.to_dense().astype(np.int64)
        expected = np.stack(
            [np.bincount(labels[row & (labels >= 0)], minlength=num_labels) for row in dense.astype(bool)]
        )
        assert isinstance(counts, sp.csr_matrix) and counts.has_sorted_indices
        assert np.array_equal(counts.toarray(), expected)
    assert InstanceMasks.empty(5).intersection_counts(np.zeros(5, int), 3).shape == (0, 3)


def test_evaluated_ids_without_instances():
    gt = GroundTruth(np.full(4, -1))
    assert np.array_equal(gt.evaluated_ids(), np.full(4, -1))
    gt = GroundTruth(np.array([0, 1, -1, 1]), np.array([True, False]))
    assert np.array_equal(gt.evaluated_ids(), [0, -1, -1, -1])


def test_scene_overlaps_by_hand():
    ids = np.array([0] * 150 + [-1] * 50 + [1] * 120 + [2] * 80)  # instance 2 is void-class
    gt = GroundTruth(ids, np.array([True, True, False]))
    a = np.zeros(400, bool)
    a[100:260] = True  # 50 on GT 0, 50 void, 60 on GT 1
    b = np.zeros(400, bool)
    b[:50] = True  # dropped: 50 points
    o = compute_scene_overlaps(gt, InstanceMasks.from_dense(np.stack([a, b]), np.array([0.3, 0.6])), name="x")
    assert o.gt_ids.tolist() == [0, 1] and o.gt_sizes.tolist() == [150, 120]
    assert o.pred_index.tolist() == [0] and o.num_dropped == 1 and o.pred_void.tolist() == [50]
    assert list(zip(o.pair_gt.tolist(), o.pair_pred.tolist(), o.pair_inter.tolist())) == [(0, 0, 50), (1, 0, 60)]
    assert o.pair_iou().tolist() == [50 / 260, 60 / 220]


def test_painting_matches_reference():
    rng = np.random.default_rng(1)
    n = 300
    dense = rng.random((12, n)) < 0.3
    scores = rng.choice([0.1, 0.5, 0.9], 12)  # ties: the lower index wins
    painted = InstanceMasks.from_dense(dense, scores).to_labels(background=-1)
    assert np.array_equal(painted, reference_paint(n, list(dense), scores))


@pytest.mark.parametrize("seed", range(4))
def test_panoptic_counts_match_reference(seed):
    rng = np.random.default_rng(seed)
    for _ in range(6):
        gt, masks, scores = random_scene(rng, n=int(rng.integers(300, 700)), max_masks=8)
        n = gt.num_points
        instance_masks = to_masks(masks, scores, n)
        kept = instance_masks.filter(min_points=100)
        segments = kept.to_labels(background=-1)
        labels, gt_ids, _ = compact_gt_labels(gt)
        fast = panoptic_counts(segments, labels, len(kept), gt_ids.shape[0], 100)
        ref = reference_panoptic(gt.evaluated_ids(), masks, scores)
        assert (fast.tp, fast.fp, fast.fn) == (ref["tp"], ref["fp"], ref["fn"])
        assert fast.iou_sum == pytest.approx(ref["iou_sum"], abs=1e-9)


def test_panoptic_quality_formula():
    q = panoptic_quality(PanopticCounts(tp=3, fp=1, fn=2, iou_sum=2.4))
    assert (
        q["sq"] == pytest.approx(0.8) and q["rq"] == pytest.approx(3 / 4.5) and q["pq"] == pytest.approx(0.8 * 3 / 4.5)
    )
    assert panoptic_quality(PanopticCounts(fp=2))["pq"] == 0.0
    assert math.isnan(panoptic_quality(PanopticCounts())["pq"])


@pytest.mark.parametrize("seed", range(4))
def test_hungarian_matches_reference(seed):
    rng = np.random.default_rng(10 + seed)
    for _ in range(6):
        gt, masks, scores = random_scene(rng, max_masks=10)
        overlaps = compute_scene_overlaps(gt, to_masks(masks, scores, gt.num_points))
        fast = hungarian_counts(overlaps)
        matrix = reference_iou_matrix(gt.evaluated_ids(), masks)
        assert fast.predictions == matrix.shape[0] and fast.gt == matrix.shape[1]
        if matrix.size:
            rows, cols = linear_sum_assignment(matrix, maximize=True)
            best = matrix[rows, cols]
            assert fast.iou_sum == pytest.approx(best.sum(), abs=1e-9)
            assert fast.matched50 == int((best > 0.5).sum())
        else:
            assert fast.iou_sum == 0.0 and fast.assigned == 0


def test_ari_matches_pair_counting_reference():
    rng = np.random.default_rng(3)
    for _ in range(10):
        n = 400
        gt_labels = rng.integers(-1, 5, n)
        segments = rng.integers(-1, 7, n)
        segments[gt_labels == 2] = 3  # some agreement
        valid = gt_labels >= 0
        assert adjusted_rand_index(segments, gt_labels) == pytest.approx(
            reference_ari(gt_labels[valid], segments[valid]), abs=1e-9
        )
    assert math.isnan(adjusted_rand_index(np.zeros(3, int), np.full(3, -1)))


def test_ari_is_scikit_learns_to_the_last_bit(osd_dir):
    """Our bincount ARI (no sklearn import on the evaluate path) against sklearn itself."""
    from sklearn.metrics import adjusted_rand_score

    from labelfree3d.io import read_scene

    rng = np.random.default_rng(4)
    gt = read_scene(osd_dir / "learn3.pcd").gt.evaluated_ids()
    cases = [(gt, gt), (gt, np.where(rng.random(gt.shape[0]) < 0.1, -1, gt))]
    cases.append((gt, np.where(gt >= 0, gt * 1_000_003, rng.integers(-1, 5, gt.shape[0]))))  # sparse ids
    for _ in range(20):
        n = int(rng.integers(2, 2000))
        cases.append((rng.integers(-1, int(rng.integers(1, 9)), n), rng.integers(-1, int(rng.integers(1, 12)), n)))
    for labels, segments in cases:
        valid = labels >= 0
        if valid.any():
            assert adjusted_rand_index(segments, labels) == adjusted_rand_score(labels[valid], segments[valid])


def test_full_report_with_extra_metrics_and_json():
    rng = np.random.default_rng(6)
    evaluator = InstanceEvaluator()
    scenes = [random_scene(rng, max_masks=8) for _ in range(3)]
    scenes.append((GroundTruth(np.full(300, -1)), [], np.zeros(0)))  # no GT, no predictions
    totals = {"tp": 0, "fp": 0, "fn": 0}
    for i, (gt, masks, scores) in enumerate(scenes):
        evaluator.process(f"s{i}", gt, to_masks(masks, scores, gt.num_points))
        ref = reference_panoptic(gt.evaluated_ids(), masks, scores)
        for key in totals:
            totals[key] += ref[key]
    report = evaluator.evaluate()
    assert report["panoptic"] == totals
    for key in ("ap", "ap50", "ap25", "pq", "per_size", "per_scene", "protocol", "hungarian", "ari"):
        assert key in report
    assert math.isnan(report["per_scene"]["s3"]["ap"]) and math.isnan(report["per_scene"]["s3"]["ari"])
    text = json.dumps(jsonable_report(report), allow_nan=False)  # NaN became null
    assert json.loads(text)["per_scene"]["s3"]["ap"] is None
    evaluator.reset()
    assert len(evaluator) == 0


def test_painting_kept_masks_without_copying_them():
    from labelfree3d.evaluate.evaluator import _paint_kept

    rng = np.random.default_rng(12)
    dense = rng.random((15, 400)) < rng.uniform(0.1, 0.5, (15, 1))
    masks = InstanceMasks.from_dense(dense, rng.choice([0.2, 0.4], 15))
    kept = np.flatnonzero(masks.sizes >= 100)
    assert 0 < kept.shape[0] < 15
    assert np.array_equal(_paint_kept(masks, kept), masks.select(kept).to_labels(background=-1))
    assert np.array_equal(_paint_kept(masks, np.arange(15)), masks.to_labels(background=-1))


def _labelfree3d_imports(path):
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_evaluate_never_imports_the_methods_it_judges():
    from pathlib import Path

    import labelfree3d.batch.engine
    import labelfree3d.evaluate

    allowed = ("labelfree3d.structures", "labelfree3d.errors", "labelfree3d.io", "labelfree3d.evaluate")
    for path in Path(labelfree3d.evaluate.__file__).parent.glob("*.py"):
        for module in _labelfree3d_imports(path):
            if module.startswith("labelfree3d"):
                # the batch engine runs evaluate's per-scene tasks; it imports nothing of the methods either
                assert module.startswith(allowed) or module == "labelfree3d.batch.engine", (
                    f"{path.name} imports {module}"
                )
    for module in _labelfree3d_imports(Path(labelfree3d.batch.engine.__file__)):
        if module.startswith("labelfree3d"):
            assert module.startswith(("labelfree3d.errors", "labelfree3d.io", "labelfree3d.structures")), module


def test_scipy_lsap_loaded_alone_is_scipys_solver():
    """The assignment solver loaded without scipy.optimize's package gives scipy.optimize's answers."""
    from scipy.optimize import linear_sum_assignment

    from labelfree3d.evaluate.unsupervised import _scipy_lsap

    solver = _scipy_lsap()
    rng = np.random.default_rng(7)
    for shape in [(1, 1), (5, 5), (3, 8), (9, 4), (40, 55)]:
        for matrix in (rng.random(shape), np.round(rng.random(shape), 1), np.zeros(shape)):  # ties too
            for maximize in (False, True):
                ours, theirs = solver(matrix, maximize=maximize), linear_sum_assignment(matrix, maximize=maximize)
                assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))
