"""Room structure: point spacing, gravity, support, ceiling and walls on synthetic and real scans."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from labelfree3d.errors import ParameterError
from labelfree3d.geometry import (
    CEILING,
    REST,
    SUPPORT,
    WALL,
    detect_structure,
    point_spacing,
    surface_noise,
)
from labelfree3d.io import read_scene
from labelfree3d.segment.structure import gravity_prior, scan_kind, scene_structure, structure_score_factor
from labelfree3d.structures import InstanceMasks, Scene
from labelfree3d.synthetic import make_scene
from labelfree3d.viz.render import top_view_hidden


def _names(scene: Scene) -> np.ndarray:
    return np.array(scene.gt.instance_names)[np.maximum(scene.gt.instance_ids, 0)]


def test_spacing_and_noise_of_a_regular_grid():
    grid = np.stack(np.meshgrid(np.arange(50), np.arange(50), indexing="ij"), axis=-1).reshape(-1, 2) * 0.01
    points = np.column_stack([grid, np.zeros(len(grid))])
    assert point_spacing(points) == pytest.approx(0.01)
    assert surface_noise(points) < 1e-9
    rng = np.random.default_rng(0)
    noisy = points + np.column_stack([np.zeros((len(grid), 2)), rng.normal(0, 0.002, len(grid))])
    assert 0.0005 < surface_noise(noisy) < 0.003


def test_synthetic_room_floor_and_walls():
    scene = make_scene("room", seed=1, density=1000, with_normals=True)
    structure = detect_structure(scene.points, scene.normals)
    names = _names(scene)
    labelled = scene.gt.instance_ids >= 0
    floor = labelled & (names == "floor")
    wall = labelled & (names == "wall")
    objects = labelled & ~np.isin(names, ["floor", "wall"])
    np.testing.assert_allclose(structure.up, [0, 0, 1], atol=0.02)
    assert np.mean(structure.labels[floor] == SUPPORT) > 0.95
    assert np.mean(structure.labels[wall] == WALL) > 0.8
    assert np.mean(structure.labels[objects] == REST) > 0.9
    assert structure.walls.shape[0] >= 2


def test_tilted_scan_gets_its_gravity_from_the_floor():
    scene = make_scene("room", seed=2, density=1000, with_normals=True)
    rotation = Rotation.from_euler("x", 12, degrees=True).as_matrix()
    points, normals = scene.points @ rotation.T, scene.normals @ rotation.T
    structure = detect_structure(points, normals)
    assert structure.up @ (rotation @ [0, 0, 1]) > np.cos(np.radians(1.5))
    floor = (scene.gt.instance_ids >= 0) & (_names(scene) == "floor")
    assert np.mean(structure.labels[floor] == SUPPORT) > 0.95


def test_tiny_and_flat_inputs():
    for count in (1, 5, 15):
        points = np.random.default_rng(count).random((count, 3))
        structure = detect_structure(points, np.tile([0.0, 0, 1], (count, 1)))
        assert np.all(structure.labels == REST) and structure.support is None
    with pytest.raises(ParameterError):
        detect_structure(np.zeros((20, 3)), np.zeros((19, 3)))
    with pytest.raises(ParameterError):
        detect_structure(np.random.rand(20, 3), np.random.rand(20, 3), up_hint=(0, 0, 0))


@pytest.mark.realdata
def test_scannet_votenet_room(scannet_votenet_dir):
    scene = read_scene(scannet_votenet_dir / "scene0002_00_vert.npy")
    structure = scene_structure(scene)
    semantic = scene.gt.semantic_ids
    floor, wall = semantic == 2, semantic == 1
    objects = ~scene.gt.void_mask()
    # this scan's floor is 7 degrees off the file's z axis: gravity comes from the floor
    assert structure.up[2] > 0.98 and structure.up[2] < 0.999
    assert np.mean(structure.labels[floor] == SUPPORT) > 0.9
    assert np.mean(np.isin(structure.labels[wall], [WALL, CEILING])) > 0.4  # measured 0.47
    assert np.mean(structure.labels[objects] == REST) > 0.8
    assert scan_kind(scene) == "room_cloud"


@pytest.mark.realdata
def test_osd_table_is_the_support(osd_dir):
    scene = read_scene(osd_dir / "learn12.pcd")
    up, tilt = gravity_prior(scene)
    assert up[1] == -1 and tilt == 60
    structure = scene_structure(scene)
    objects = ~scene.gt.void_mask()
    assert np.mean(structure.labels[objects] == REST) > 0.98  # the boxes are not walls
    assert np.mean(structure.labels[~objects] != REST) > 0.9  # the table (and what lies under it)
    assert scan_kind(scene) == "tabletop_frame"


@pytest.mark.realdata
def test_scannet_mesh_top_view_cuts_the_ceiling(scannet_scene_dir):
    scene = read_scene(scannet_scene_dir)
    structure = scene_structure(scene)
    hidden = top_view_hidden(scene)
    height = structure.heights(scene.points)
    names = _names(scene)
    floor = (scene.gt.instance_ids >= 0) & (names == "floor")
    assert np.mean(structure.labels[floor] == SUPPORT) > 0.9
    assert scan_kind(scene) == "room_mesh"
    if hidden is not None:  # only the top of the room is cut, never the floor or the furniture
        assert height[hidden].min() > 1.8
        assert not hidden[floor].any()


def test_structure_score_factor_ranks_room_sized_and_structure_masks_last():
    scene = make_scene("room", seed=1, density=1000, with_normals=True)
    structure = scene_structure(scene)
    rest = np.flatnonzero(structure.rest)
    whole = np.arange(scene.num_points)
    compact = rest[np.argsort(np.linalg.norm(scene.points[rest] - scene.points[rest[0]], axis=1))[:200]]
    floor = np.flatnonzero(structure.labels == SUPPORT)
    masks = InstanceMasks.from_index_lists([compact, whole, floor], np.ones(3), scene.num_points)
    factor = structure_score_factor(masks, scene)
    assert factor[0] == pytest.approx(1.0)
    assert factor[1] < 0.1 and factor[2] < 0.05
