"""Inference: confidences, lifting to points, tiling and merging, Segment3D post-processing."""

from __future__ import annotations

import _learning
import numpy as np
import pytest
import torch

from labelfree3d.errors import ParameterError
from labelfree3d.models import build_model
from labelfree3d.models.postprocess import smooth_with_superpoints, split_disconnected
from labelfree3d.models.predict import PredictConfig, Predictor, masks_from_logits, merge_tile_masks
from labelfree3d.models.voxelize import VoxelizedScene
from labelfree3d.structures import InstanceMasks, Scene


def _voxels(counts, inverse) -> VoxelizedScene:
    m = len(counts)
    return VoxelizedScene("v", np.zeros((m, 3), np.int32), np.zeros((m, 3), np.float32), np.zeros((m, 1), np.float32),
                          np.asarray(inverse), np.asarray(counts))  # fmt: skip


def test_confidence_is_mean_heat_inside_times_objectness():
    voxels = _voxels([1, 3, 2], [0, 1, 1, 1, 2, 2])
    logits = np.array([[2.0, 1.0, -3.0], [-1.0, -2.0, -4.0]])  # query 1 is empty: dropped
    masks = masks_from_logits(logits, np.array([0.0, 5.0]), voxels)
    assert len(masks) == 1 and masks.num_points == 6
    np.testing.assert_array_equal(masks[0], [0, 1, 2, 3])  # voxels 0 and 1, lifted to their points
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    c_mask = (sigmoid(2.0) * 1 + sigmoid(1.0) * 3) / 4  # mean over points, not voxels
    assert masks.scores[0] == pytest.approx(c_mask * 0.5)


def test_merging_tiles_joins_agreeing_masks_and_keeps_the_rest():
    tiles = [np.arange(0, 60), np.arange(40, 100)]  # points 40..59 are shared
    left = InstanceMasks.from_index_lists([np.arange(30, 60), np.arange(0, 10)], np.array([0.9, 0.5]), 60)
    right = InstanceMasks.from_index_lists([np.arange(0, 25), np.arange(50, 60)], np.array([0.7, 0.6]), 60)
    merged = merge_tile_masks([left, right], tiles, 100, merge_iou=0.5)
    spans = sorted((int(m.min()), int(m.max()), m.size) for m in (merged[k] for k in range(len(merged))))
    # left 0 (30..59) and right 0 (40..64) agree on the shared points: one object 30..64
    assert spans == [(0, 9, 10), (30, 64, 35), (90, 99, 10)]
    assert sorted(merged.scores) == [0.5, 0.6, 0.9]


def test_post_processing_snaps_to_superpoints_and_splits_distant_parts():
    superpoints = np.repeat(np.arange(4), 10)  # four segments of 10 points
    masks = InstanceMasks.from_index_lists([np.r_[0:7, 10:13, 30:40]], np.array([0.8]), 40)
    smoothed = smooth_with_superpoints(masks, superpoints)
    np.testing.assert_array_equal(smoothed[0], np.r_[0:10, 30:40])  # 7/10 joins, 3/10 leaves
    points = np.zeros((40, 3))
    points[:, 0] = np.r_[np.linspace(0, 0.09, 20), np.linspace(5, 5.09, 20)]  # two groups 5 m apart
    split = split_disconnected(smoothed, points, eps=0.1)
    assert len(split) == 2 and sorted(m.size for m in (split[0], split[1])) == [10, 10]
    assert np.all(split.scores == 0.8)
    assert len(split_disconnected(smoothed, points, eps=0.1, min_points=11)) == 0


def test_tiles_cover_every_point_and_tiled_prediction_returns_full_masks():
    torch.manual_seed(0)
    model = build_model(_learning.tiny_spec()).eval()
    scene = _learning.tabletop_voxels(0)[1]
    config = PredictConfig(max_voxels=100, tile_size=0.5, tile_overlap=0.1)
    predictor = Predictor(model, config)
    tiles = predictor.tiles(scene)
    assert len(tiles) > 2 and np.array_equal(np.unique(np.concatenate(tiles)), np.arange(scene.num_points))
    masks = predictor.predict(scene)
    assert masks.num_points == scene.num_points and len(masks) > 0
    assert np.all(np.diff(masks.scores) <= 0)  # most confident first
    whole = Predictor(model, PredictConfig(max_masks=3)).predict(scene)
    assert len(whole) == 3


def test_predict_config_validation():
    with pytest.raises(ParameterError, match="mask_threshold"):
        PredictConfig(mask_threshold=1.0)
    with pytest.raises(ParameterError, match="tile_overlap"):
        PredictConfig(tile_size=1.0, tile_overlap=1.0)


def test_predictor_needs_the_model_input_features():
    model = build_model(_learning.tiny_spec()).eval()
    bare = Scene(np.random.default_rng(0).random((100, 3)).astype(np.float32), name="bare")
    from labelfree3d.errors import InputError

    with pytest.raises(InputError, match="needs colours"):
        Predictor(model).predict(bare)


@pytest.mark.realdata
def test_duplicate_suppression_keeps_one_copy_of_each_object(osd_dir):
    from labelfree3d.io import read_scene
    from labelfree3d.models.postprocess import suppress_duplicates

    scene = read_scene(osd_dir / "learn24.pcd")
    objects = InstanceMasks.from_labels(scene.gt.evaluated_ids())
    assert len(objects) >= 2
    # every object three times, the copies less confident and a few points short, as a briefly trained model predicts
    copies = [objects.with_scores(np.full(len(objects), 0.9))]
    for score, share in ((0.5, 0.9), (0.4, 0.8)):
        trimmed = [objects[k][: int(share * objects[k].size)] for k in range(len(objects))]
        copies.append(InstanceMasks.from_index_lists(trimmed, np.full(len(objects), score), scene.num_points))
    kept = suppress_duplicates(InstanceMasks.concatenate(copies), iou=0.5)
    assert len(kept) == len(objects) and np.all(kept.scores == 0.9)
    assert len(suppress_duplicates(InstanceMasks.concatenate(copies), iou=0.95)) == 3 * len(objects)  # IoUs 0.8-0.9
    with pytest.raises(ParameterError, match="nms_iou"):
        PredictConfig(nms_iou=0.0)


@pytest.mark.realdata
def test_a_model_that_removes_structure_never_masks_the_table(osd_dir):
    from labelfree3d.io import read_scene
    from labelfree3d.segment.structure import scene_structure

    torch.manual_seed(0)
    spec = _learning.tiny_spec(voxel_size=0.02)
    spec["input"]["structure"] = "remove"
    model = build_model(spec).eval()
    scene = read_scene(osd_dir / "learn24.pcd")
    rest = scene_structure(scene).rest
    assert 0.05 < rest.mean() < 0.5  # a table, a floor and a wall around a few objects
    # a threshold so low that every query covers everything the model sees
    masks = Predictor(model, PredictConfig(mask_threshold=1e-6)).predict(scene)
    assert len(masks) > 0 and masks.num_points == scene.num_points
    np.testing.assert_array_equal(masks.coverage() > 0, rest)
    with pytest.raises(ParameterError, match="input.structure"):
        build_model({**spec, "input": {**spec["input"], "structure": "crop"}})


@pytest.mark.realdata
def test_a_superpoint_model_takes_or_leaves_whole_superpoints(osd_dir):
    from labelfree3d.io import read_scene
    from labelfree3d.models.postprocess import scene_superpoints

    torch.manual_seed(0)
    spec = _learning.tiny_spec(voxel_size=0.02)
    spec["input"]["superpoints"] = True
    model = build_model(spec).eval()
    scene = read_scene(osd_dir / "learn24.pcd")
    masks = Predictor(model, PredictConfig(mask_threshold=0.5)).predict(scene)
    assert len(masks) > 0 and masks.num_points == scene.num_points
    superpoints = scene_superpoints(scene)
    voxel_size = model.input_spec.voxel_size
    # a superpoint's voxels share one logit, so a mask holds almost all or almost none of each
    # superpoint (only points outvoted inside a voxel shared with another superpoint differ)
    dense = masks.to_dense()
    _, compact, sizes = np.unique(superpoints, return_inverse=True, return_counts=True)
    for k in range(len(masks)):
        share = np.bincount(compact, weights=dense[k], minlength=sizes.shape[0]) / sizes
        taken = share[(sizes >= 50) & (share > 0)]
        assert taken.size and np.mean((taken > 0.8) | (taken < 0.2)) > 0.9, voxel_size
    with pytest.raises(ParameterError, match="no voxel segments"):
        model(_learning.tabletop_batch())
