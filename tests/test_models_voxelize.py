"""Voxelisation, majority targets and batch collation."""

from __future__ import annotations

import numpy as np
import pytest

from labelfree3d.errors import InputError, ParameterError
from labelfree3d.models.voxelize import (
    GRID_MULTIPLE,
    InputSpec,
    collate,
    masks_to_voxels,
    point_features,
    superpoints_to_voxels,
    voxelize,
)
from labelfree3d.structures import InstanceMasks, Scene


def test_input_spec_validates():
    assert InputSpec().channels == 3 and InputSpec(0.02, ("color", "xyz", "ones")).channels == 7
    with pytest.raises(ParameterError, match="voxel_size"):
        InputSpec(voxel_size=0)
    with pytest.raises(ParameterError, match="unknown feature 'rgb'"):
        InputSpec(features=("rgb",))
    with pytest.raises(ParameterError, match="twice"):
        InputSpec(features=("color", "color"))


def test_point_features_and_missing_colours():
    points = np.array([[0, 0, 0], [2, 0, 0], [0, 4, 0]], np.float32)
    scene = Scene(points, colors=np.array([[0, 0.5, 1]] * 3, np.float32), name="s")
    features = point_features(scene, ["color", "xyz", "ones"])
    assert features.shape == (3, 7) and features.dtype == np.float32
    np.testing.assert_allclose(features[0, :3], [-1, 0, 1])
    np.testing.assert_allclose(features[:, 3:6], points - [1, 2, 0])  # relative to the box centre
    with pytest.raises(InputError, match="needs colours"):
        point_features(Scene(points, name="bare"), ["color"])
    with pytest.raises(InputError, match="needs normals"):
        point_features(Scene(points, name="bare"), ["normal"])


def test_voxelize_keeps_the_map_back_to_points():
    rng = np.random.default_rng(0)
    points = (rng.random((500, 3)) * 0.5 + 3.0).astype(np.float32)  # far from the origin: coords are shifted to 0
    features = rng.random((500, 2)).astype(np.float32)
    voxels = voxelize(points, features, 0.1, "cube")
    assert voxels.coords.min() == 0 and voxels.coords.dtype == np.int32
    assert voxels.num_points == 500 and voxels.counts.sum() == 500
    for v in range(voxels.num_voxels):  # features and positions are the means of each voxel's points
        members = voxels.inverse == v
        np.testing.assert_allclose(voxels.features[v], features[members].mean(axis=0), rtol=1e-5)
        np.testing.assert_allclose(voxels.positions[v], points[members].mean(axis=0), rtol=1e-5)
    # every point lies in the voxel its inverse names
    shifted = np.floor(points / 0.1).astype(np.int64)
    np.testing.assert_array_equal(shifted - shifted.min(axis=0), voxels.coords[voxels.inverse])


def test_masks_to_voxels_uses_the_majority_of_each_voxel():
    inverse = np.array([0, 0, 0, 1, 1, 2])
    counts = np.bincount(inverse)
    masks = InstanceMasks.from_index_lists([[0, 1, 3], [2, 4, 5], []], None, 6)
    voxel_masks = masks_to_voxels(masks, inverse, counts)
    # voxel 0: mask 0 owns 2 of 3 points; voxel 1: 1 of 2 each (ties count); voxel 2: mask 1
    np.testing.assert_array_equal(voxel_masks, [[True, True, False], [False, True, True], [False, False, False]])
    with pytest.raises(InputError, match="cover 6 points"):
        masks_to_voxels(masks, inverse[:5], counts)


def test_collate_stacks_scans_with_batch_column_and_padded_grid():
    rng = np.random.default_rng(1)
    first = voxelize(rng.random((300, 3)).astype(np.float32), rng.random((300, 3)).astype(np.float32), 0.05, "a")
    second = voxelize(rng.random((200, 3)).astype(np.float32) * 2, rng.random((200, 3)).astype(np.float32), 0.05, "b")
    batch = collate([first, second])
    assert batch.batch_size == 2 and batch.targets is None
    assert batch.offsets.tolist() == [0, first.num_voxels, first.num_voxels + second.num_voxels]
    assert (batch.coords[batch.scene_rows(1), 0] == 1).all() and (batch.coords[batch.scene_rows(0), 0] == 0).all()
    assert all(s % GRID_MULTIPLE == 0 and s > int(batch.coords[:, i + 1].max()) for i, s in enumerate(batch.spatial_shape))
    with pytest.raises(InputError, match="empty batch"):
        collate([])


def test_voxel_segments_follow_the_majority_superpoint_and_are_renumbered():
    inverse = np.array([0, 0, 0, 1, 1, 2, 3])
    superpoints = np.array([70, 70, 9, 9, 9, 70, 5])  # any ids; voxel 0 is mostly superpoint 70
    np.testing.assert_array_equal(superpoints_to_voxels(superpoints, inverse, 4), [2, 1, 2, 0])
    with pytest.raises(InputError, match="superpoints cover 6 points"):
        superpoints_to_voxels(superpoints[:6], inverse, 4)
    rng = np.random.default_rng(1)
    points = rng.random((200, 3)).astype(np.float32)
    first = voxelize(points, points, 0.25, "a", superpoints=(points[:, 0] > 0.5).astype(int))
    second = voxelize(points, points, 0.25, "b")
    assert set(np.unique(first.segments)) == {0, 1} and second.segments is None
    batch = collate([first, first])
    assert len(batch.segments) == 2 and batch.segments[1].shape[0] == first.num_voxels
    assert collate([first, second]).segments is None
    with pytest.raises(ParameterError, match="input.superpoints"):
        InputSpec(superpoints="yes")
