"""ScanNet benchmark ground truth (`<scene>.txt`, label * 1000 + instance per vertex line)."""

from __future__ import annotations

import numpy as np
import pytest

from labelfree3d import FormatError, InputError
from labelfree3d.io import read_scannet_gt_txt, read_scene, write_scannet_gt_txt
from labelfree3d.io.scannet_classes import NYU40_NAMES
from labelfree3d.io.scannet_gt import SCANNET18_NYU40_IDS, SCANNET18_VOID_IDS, is_scannet_gt_txt


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two (N,) id arrays (-1 = none) group the points identically."""
    if not np.array_equal(a < 0, b < 0):
        return False
    pairs = np.unique(np.stack([a, b]), axis=1)
    return np.unique(pairs[0]).shape[0] == pairs.shape[1] == np.unique(pairs[1]).shape[0]


def test_values_classes_and_void(tmp_path):
    path = tmp_path / "scene0000_00.txt"
    path.write_text("0\n3001\n3001\n1002\n39001\n5\n22003\n3001\n")
    gt = read_scannet_gt_txt(path)
    # instances numbered by ascending value, as ScanNet's script visits them: 1002, 3001, 22003, 39001
    assert gt.instance_ids.tolist() == [-1, 1, 1, 0, 3, -1, 2, 1]
    assert gt.instance_evaluated.tolist() == [False, True, False, True]  # wall and ceiling are void
    assert gt.instance_names == ("wall", "cabinet", "ceiling", "otherfurniture")
    assert gt.semantic_ids.tolist() == [-1, 3, 3, 1, 39, -1, 22, 3]
    strict = read_scannet_gt_txt(path, void_class_ids=SCANNET18_VOID_IDS)
    assert strict.instance_evaluated.tolist() == [False, True, False, True]
    path.write_text("0\r\n35001\r\n35001")  # lamp, CRLF, no final newline
    assert read_scannet_gt_txt(path).instance_evaluated.tolist() == [True]
    assert read_scannet_gt_txt(path, void_class_ids=SCANNET18_VOID_IDS).instance_evaluated.tolist() == [False]


def test_scannet18_is_the_scripts_class_list():
    assert SCANNET18_NYU40_IDS == (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
    assert set(SCANNET18_VOID_IDS) | set(SCANNET18_NYU40_IDS) == set(NYU40_NAMES)


def test_class_agnostic_round_trip_of_the_raw_scannet_scene(tmp_path, scannet_scene_dir):
    scene = read_scene(scannet_scene_dir)
    path = write_scannet_gt_txt(scene.gt, tmp_path / f"{scene.name}.txt")
    lines = path.read_text().splitlines()
    assert len(lines) == scene.num_points == 81_369
    assert {int(v) // 1000 for v in lines} == {0, 1, 39}  # unannotated, void (wall), evaluated
    back = read_scannet_gt_txt(path)
    assert back.num_evaluated == scene.gt.num_evaluated == 45
    assert _same_partition(back.evaluated_ids(), scene.gt.evaluated_ids())
    assert np.array_equal(back.void_mask(), scene.gt.void_mask())
    # evaluated instances keep their order (GT claim predictions in ascending id order)
    ours, theirs = back.evaluated_ids(), scene.gt.evaluated_ids()
    pairs = np.unique(np.stack([ours[ours >= 0], theirs[ours >= 0]]), axis=1)  # sorted by our id
    assert np.all(np.diff(pairs[1]) > 0)
    assert is_scannet_gt_txt(path)


def test_votenet_export_with_its_nyu40_classes(tmp_path, scannet_votenet_dir):
    """A ScanNet scan exported with its real NYU40 classes reads back as the VoteNet reader reads it."""
    scene = read_scene(scannet_votenet_dir / "scene0001_00_vert.npy")
    ids_of = {name: i for i, name in NYU40_NAMES.items()}
    classes = [ids_of[name] for name in scene.gt.instance_names]
    path = write_scannet_gt_txt(scene.gt, tmp_path / "scene0001_00.txt", class_ids=classes)
    back = read_scannet_gt_txt(path)
    assert _same_partition(back.instance_ids, scene.gt.instance_ids)
    assert _same_partition(back.evaluated_ids(), scene.gt.evaluated_ids())
    assert sorted(back.instance_names) == sorted(scene.gt.instance_names)
    strict = read_scannet_gt_txt(path, void_class_ids=SCANNET18_VOID_IDS)
    kept = {name for name, evaluated in zip(strict.instance_names, strict.instance_evaluated) if evaluated}
    assert kept and kept <= {NYU40_NAMES[i] for i in SCANNET18_NYU40_IDS}


def test_detection_and_errors_name_the_file(tmp_path):
    gt = tmp_path / "scene0000_00.txt"
    gt.write_text("0\n3001\nabc\n")
    with pytest.raises(FormatError, match=r"scene0000_00.txt: not a ScanNet ground-truth file .*line 3 is 'abc'"):
        read_scannet_gt_txt(gt)
    assert is_scannet_gt_txt(gt)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(InputError, match="empty.txt: ScanNet ground-truth file has no vertex lines"):
        read_scannet_gt_txt(empty)
    with pytest.raises(InputError, match="missing.txt: no such"):
        read_scannet_gt_txt(tmp_path / "missing.txt")
    index = tmp_path / "index.txt"
    index.write_text("predicted_masks/scene0000_00_000.txt 1 0.9\n")
    listing = tmp_path / "scans.txt"
    listing.write_text("scans/scene0000_00\n")
    (tmp_path / "mesh.ply").write_text("0\n")
    assert not any(is_scannet_gt_txt(p) for p in (index, listing, empty, tmp_path / "mesh.ply", tmp_path))


def test_writer_limits(tmp_path):
    from labelfree3d.structures import GroundTruth

    many = GroundTruth(np.arange(1000))
    with pytest.raises(InputError, match="more than 999 instances of one class"):
        write_scannet_gt_txt(many, tmp_path / "many.txt")
    with pytest.raises(InputError, match="class ids have shape"):
        write_scannet_gt_txt(GroundTruth(np.array([0, 1, -1])), tmp_path / "x.txt", class_ids=[3])
    assert not (tmp_path / "many.txt").exists() and not (tmp_path / "x.txt").exists()
