"""VoteNet's ScanNet export and Pointcept's folders on the 14 real scans, the (class, instance)
pair rule shared with Mask3D's .npy layouts, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_io_cli import run_cli

from labelfree3d.errors import FormatError, InputError, UnknownFormatError
from labelfree3d.io import detect_format, read_scene
from labelfree3d.io._labels import paired_ground_truth
from labelfree3d.io.scannet_classes import (
    NYU40_NAMES,
    SCANNET20_NAMES,
    SCANNET20_NYU40_IDS,
    SCANNET20_VOID_IDS,
    SCANNET200_NAMES,
    SCANNET200_VOID_IDS,
)

SCANS = (
    "scene0000_00",
    "scene0000_01",
    "scene0000_02",
    "scene0001_00",
    "scene0001_01",
    "scene0002_00",
    "scene0002_01",
    "scene0003_00",
    "scene0003_01",
    "scene0003_02",
    "scene0004_00",
    "scene0005_00",
    "scene0005_01",
    "scene0007_00",
)
NYU40_VOID = (1, 2, 22)  # wall, floor, ceiling


def _export(folder: Path, scan: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 6) vertices, (N,) int64 objectId + 1 and (N,) int64 NYU40 ids of one exported scan."""
    labels = [np.load(folder / f"{scan}_{part}.npy").astype(np.int64) for part in ("ins_label", "sem_label")]
    return np.load(folder / f"{scan}_vert.npy"), labels[0], labels[1]


def _expected_evaluated(instance: np.ndarray, semantic: np.ndarray) -> int:
    """Evaluated instances counted independently: (class, id) pairs, id > 0, class not void."""
    labelled = instance > 0
    pairs = {(int(s), int(i)) for s, i in zip(semantic[labelled], instance[labelled])}
    return sum(1 for s, _ in pairs if s != 0 and s not in NYU40_VOID)


# --- VoteNet export on the real scans -----------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize("scan", SCANS)
def test_every_votenet_scan_reads(scannet_votenet_dir, scan):
    path = scannet_votenet_dir / f"{scan}_vert.npy"
    assert detect_format(path) == "scannet_votenet"
    scene = read_scene(path)
    vert, instance, semantic = _export(scannet_votenet_dir, scan)
    assert scene.name == scan and scene.metadata["format"] == "scannet_votenet"
    assert scene.num_points == 50_000
    np.testing.assert_array_equal(scene.points, vert[:, :3])
    np.testing.assert_allclose(scene.colors, vert[:, 3:6] / 255.0, atol=1e-6)
    gt = scene.gt
    np.testing.assert_array_equal(gt.semantic_ids, np.where(semantic == 0, -1, semantic))
    np.testing.assert_array_equal(gt.instance_ids < 0, instance == 0)
    evaluated = gt.num_evaluated
    print(f"{scan}: {evaluated} evaluated of {gt.num_instances} instances")
    assert evaluated > 5
    assert evaluated == _expected_evaluated(instance, semantic)
    # every instance is one (NYU40 class, objectId) pair, named after the class
    for k in range(gt.num_instances):
        members = gt.instance_ids == k
        assert np.unique(instance[members]).size == 1 and np.unique(semantic[members]).size == 1
        cls = int(semantic[members][0])
        assert gt.instance_names[k] == NYU40_NAMES[cls]
        assert gt.instance_evaluated[k] == (cls not in NYU40_VOID)
    boxes = np.load(scannet_votenet_dir / f"{scan}_bbox.npy")
    assert scene.metadata["gt_box_count"] == boxes.shape[0]
    np.testing.assert_allclose(scene.metadata["gt_boxes"], boxes, rtol=1e-6)


@pytest.mark.realdata
def test_votenet_label_files_point_at_the_vert_file(scannet_votenet_dir):
    vert = scannet_votenet_dir / "scene0000_00_vert.npy"
    for part in ("ins_label", "sem_label", "bbox"):
        path = scannet_votenet_dir / f"scene0000_00_{part}.npy"
        assert detect_format(path) == "scannet_votenet"
        with pytest.raises(FormatError, match="VoteNet ScanNet export") as info:
            read_scene(path)
        message = str(info.value)
        assert "\n" not in message and message.startswith(str(path)) and f"read {vert} instead" in message


@pytest.mark.realdata
def test_votenet_void_override(scannet_votenet_dir):
    path = scannet_votenet_dir / "scene0000_00_vert.npy"
    everything = read_scene(path, void_semantic_ids=[]).gt
    assert everything.num_evaluated == everything.num_instances == 67
    assert read_scene(path).metadata["void_semantic_ids"] == "1,2,22"


# --- the (class, instance) pair rule ------------------------------------------------------------

# one instance id (3) spans two wall points and two chair points; a chair point without an
# instance id; an instance (5) whose class is unannotated
_NYU40 = np.array([1, 1, 5, 5, 5, 0])
_OBJECT_ID_PLUS_1 = np.array([3, 3, 3, 3, 0, 5])
_EXPECTED_IDS = [0, 0, 1, 1, -1, 2]
_EXPECTED_EVALUATED = [False, True, False]


def _xyz(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3)).astype(np.float32)


def _write_votenet(folder: Path, scan: str, vert: np.ndarray, instance=None, semantic=None, boxes=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{scan}_vert.npy", vert.astype(np.float32))
    if instance is not None:
        np.save(folder / f"{scan}_ins_label.npy", np.asarray(instance).astype(np.uint32))
    if semantic is not None:
        np.save(folder / f"{scan}_sem_label.npy", np.asarray(semantic).astype(np.uint32))
    if boxes is not None:
        np.save(folder / f"{scan}_bbox.npy", boxes)
    return folder / f"{scan}_vert.npy"


def _to_scannet20(nyu40: np.ndarray) -> np.ndarray:
    lookup = np.full(41, -1, np.int64)
    lookup[list(SCANNET20_NYU40_IDS)] = np.arange(20)
    return lookup[nyu40]


def _to_scannet200(nyu40: np.ndarray) -> np.ndarray:
    """NYU40 id -> ScanNet-200 index where the class name is the same, else -1 (ignore)."""
    index = {name: i for i, name in SCANNET200_NAMES.items()}
    lookup = np.full(41, -1, np.int64)
    for nyu, name in NYU40_NAMES.items():
        lookup[nyu] = index.get(name, -1)
    return lookup[nyu40]


def _write_pointcept(
    folder: Path, vert: np.ndarray, object_id_plus_1: np.ndarray, nyu40: np.ndarray, segments=("segment20",)
) -> Path:
    """A Pointcept scan folder from VoteNet-style arrays, as Pointcept's preprocessing writes it."""
    folder.mkdir(parents=True)
    np.save(folder / "coord.npy", vert[:, :3].astype(np.float32))
    np.save(folder / "color.npy", vert[:, 3:6].astype(np.uint8))
    if "segment20" in segments:
        np.save(folder / "segment20.npy", _to_scannet20(nyu40))
    if "segment200" in segments:
        np.save(folder / "segment200.npy", _to_scannet200(nyu40))
    np.save(folder / "instance.npy", object_id_plus_1.astype(np.int64) - 1)  # objectId, -1 = ignore
    return folder


def test_pairing_helper_splits_a_shared_id_by_class():
    gt = paired_ground_truth(
        _OBJECT_ID_PLUS_1, np.where(_NYU40 == 0, -1, _NYU40), _OBJECT_ID_PLUS_1 > 0, NYU40_VOID, NYU40_NAMES
    )
    np.testing.assert_array_equal(gt.instance_ids, _EXPECTED_IDS)
    np.testing.assert_array_equal(gt.instance_evaluated, _EXPECTED_EVALUATED)
    assert gt.instance_names == ("wall", "chair", "unannotated")
    assert gt.semantic_names == {1: "wall", 5: "chair"}
    np.testing.assert_array_equal(gt.evaluated_ids(), [-1, -1, 1, 1, -1, -1])  # wall part void, chair part kept
    without_classes = paired_ground_truth(_OBJECT_ID_PLUS_1, None, _OBJECT_ID_PLUS_1 > 0)
    np.testing.assert_array_equal(without_classes.instance_ids, [0, 0, 0, 0, -1, 1])
    assert without_classes.num_evaluated == 2 and without_classes.semantic_ids is None


def test_shared_instance_id_in_every_layout(tmp_path):
    n = _NYU40.size
    vert = np.c_[_xyz(n), np.full((n, 3), 100.0)]
    object_id = _OBJECT_ID_PLUS_1.astype(np.int64) - 1  # -1 = none
    votenet = read_scene(_write_votenet(tmp_path / "votenet", "scene0100_00", vert, _OBJECT_ID_PLUS_1, _NYU40)).gt
    pointcept = read_scene(_write_pointcept(tmp_path / "scene0100_00", vert, _OBJECT_ID_PLUS_1, _NYU40)).gt
    np.save(tmp_path / "0100_00.npy", np.c_[vert, _NYU40, object_id].astype(np.float32))
    mask3d = read_scene(tmp_path / "0100_00.npy").gt
    raw = np.array([1, 1, 2, 2, 2, 0])  # raw ScanNet category ids: wall 1, chair 2
    normals = np.tile([0.0, 0.0, 1.0], (n, 1))
    np.save(tmp_path / "twelve.npy", np.c_[vert, normals, np.zeros(n), raw, object_id].astype(np.float32))
    mask3d_12 = read_scene(tmp_path / "twelve.npy").gt
    for gt in (votenet, pointcept, mask3d, mask3d_12):
        np.testing.assert_array_equal(gt.instance_ids, _EXPECTED_IDS)
        np.testing.assert_array_equal(gt.instance_evaluated, _EXPECTED_EVALUATED)
    assert votenet.instance_names == mask3d.instance_names == ("wall", "chair", "unannotated")
    assert pointcept.instance_names == ("wall", "chair", "ignore")  # Pointcept's word for -1
    assert mask3d_12.instance_names is None


def test_mask3d_eight_columns_ceiling_is_void(tmp_path):
    semantic = np.array([22, 22, 5, 5, 3, 3])  # NYU40 ceiling, chair, cabinet
    instance = np.array([0, 0, 1, 1, 2, 2])
    np.save(tmp_path / "0011_00.npy", np.c_[_xyz(6), np.full((6, 3), 9), semantic, instance].astype(np.float32))
    scene = read_scene(tmp_path / "0011_00.npy")
    np.testing.assert_array_equal(scene.gt.instance_evaluated, [False, True, True])
    assert scene.gt.instance_names == ("ceiling", "chair", "cabinet")
    assert scene.metadata["void_semantic_ids"] == "1,2,22"


# --- Pointcept folders written from the real scans ----------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize("scan", SCANS)
def test_pointcept_reads_back_as_the_votenet_export(tmp_path, scannet_votenet_dir, scan):
    vert, instance, semantic = _export(scannet_votenet_dir, scan)
    folder = _write_pointcept(tmp_path / scan, vert, instance, semantic, segments=("segment20", "segment200"))
    assert detect_format(folder) == "pointcept"
    scene = read_scene(folder)
    assert scene.name == scan and scene.metadata["semantic_space"] == "segment20"
    # ScanNet-20 has no ceiling and ignores (-1) the classes outside its 20: those instances
    # are in the table but not evaluated, so the VoteNet reading matches it with every NYU40
    # class outside ScanNet-20's objects void
    void20 = [c for c in NYU40_NAMES if c not in SCANNET20_NYU40_IDS[2:]]
    votenet = read_scene(scannet_votenet_dir / f"{scan}_vert.npy", void_semantic_ids=void20)
    np.testing.assert_array_equal(scene.points, votenet.points)
    np.testing.assert_allclose(scene.colors, votenet.colors, atol=1e-6)
    np.testing.assert_array_equal(scene.gt.instance_ids, votenet.gt.instance_ids)
    np.testing.assert_array_equal(scene.gt.instance_evaluated, votenet.gt.instance_evaluated)
    kept = scene.gt.instance_evaluated
    assert np.array(scene.gt.instance_names)[kept].tolist() == np.array(votenet.gt.instance_names)[kept].tolist()
    np.testing.assert_array_equal(scene.gt.semantic_ids, _to_scannet20(semantic))
    print(f"{scan}: {scene.gt.num_evaluated} ScanNet-20 instances evaluated")
    assert scene.gt.num_evaluated > 0
    # segment200: wall, floor and ceiling void; NYU40 classes without a ScanNet-200 namesake ignored
    scene200 = read_scene(folder, semantics="segment200")
    assert scene200.metadata["semantic_space"] == "segment200"
    void200 = [c for c, name in NYU40_NAMES.items() if c in NYU40_VOID or name not in SCANNET200_NAMES.values()]
    votenet200 = read_scene(scannet_votenet_dir / f"{scan}_vert.npy", void_semantic_ids=void200)
    np.testing.assert_array_equal(scene200.gt.instance_ids, votenet200.gt.instance_ids)
    np.testing.assert_array_equal(scene200.gt.instance_evaluated, votenet200.gt.instance_evaluated)


@pytest.mark.realdata
def test_pointcept_optional_files(tmp_path, scannet_votenet_dir):
    vert, instance, semantic = _export(scannet_votenet_dir, "scene0000_00")
    folder = _write_pointcept(tmp_path / "only200", vert, instance, semantic, segments=("segment200",))
    scene = read_scene(folder)  # auto: segment200 when there is no segment20
    assert scene.metadata["semantic_space"] == "segment200"
    assert scene.metadata["void_semantic_ids"] == ",".join(map(str, SCANNET200_VOID_IDS)) == "0,2,35"
    ceiling = scene.gt.semantic_ids == 35
    assert ceiling.any() and np.all(scene.gt.void_mask()[ceiling])
    with pytest.raises(InputError, match="segment20.npy: no such file"):
        read_scene(folder, semantics="segment20")
    np.save(folder / "normal.npy", np.tile(np.array([0.0, 0.0, 1.0], np.float32), (50_000, 1)))
    assert read_scene(folder).normals.shape == (50_000, 3)
    (folder / "instance.npy").unlink()
    no_gt = read_scene(folder)
    assert no_gt.gt is None and "no instance.npy" in no_gt.metadata["gt_note"]
    for name in ("color.npy", "normal.npy", "segment200.npy"):
        (folder / name).unlink()
    bare = read_scene(folder)
    assert bare.num_points == 50_000 and bare.colors is None and bare.gt is None


def test_class_tables():
    assert len(NYU40_NAMES) == 40 and len(SCANNET20_NAMES) == 20 and len(SCANNET200_NAMES) == 200
    assert [NYU40_NAMES[i] for i in NYU40_VOID] == ["wall", "floor", "ceiling"]
    assert [SCANNET20_NAMES[i] for i in SCANNET20_VOID_IDS] == ["wall", "floor"]  # no ceiling class
    assert [SCANNET200_NAMES[i] for i in SCANNET200_VOID_IDS] == ["wall", "floor", "ceiling"]
    assert SCANNET200_NAMES[1] == "chair" and SCANNET200_NAMES[199] == "mattress"
    assert len(set(SCANNET200_NAMES.values())) == 200


# --- detection ----------------------------------------------------------------------------------


def test_votenet_detection_and_missing_labels(tmp_path):
    vert = np.c_[_xyz(8), np.full((8, 3), 50.0)]
    plain = tmp_path / "mesh_vert.npy"  # a `_vert.npy` with no export around it stays a plain array
    np.save(plain, vert)
    assert detect_format(plain) == "npy"
    bare = _write_votenet(tmp_path / "a", "scene0100_00", vert)
    assert detect_format(bare) == "scannet_votenet"
    scene = read_scene(bare)
    assert scene.gt is None and "no scene0100_00_ins_label.npy" in scene.metadata["gt_note"]
    named = _write_votenet(tmp_path / "b", "room", vert, instance=np.r_[np.ones(4), np.zeros(4)])
    assert detect_format(named) == "scannet_votenet"  # any name, with the export's siblings
    scene = read_scene(named)
    assert scene.name == "room" and scene.gt.num_evaluated == 1
    assert "every instance is evaluated" in scene.metadata["gt_note"]
    other = tmp_path / "other.npy"
    np.save(other, vert)
    with pytest.raises(FormatError, match="expected <scene>_vert.npy"):
        read_scene(other, format="scannet_votenet")


# --- bad input ----------------------------------------------------------------------------------


def _small_votenet(folder: Path, n: int = 10, **changes) -> Path:
    arrays = {
        "vert": np.c_[_xyz(n), np.full((n, 3), 128.0)],
        "instance": np.r_[np.ones(n // 2), np.full(n - n // 2, 2)],
        "semantic": np.r_[np.full(n // 2, 5), np.full(n - n // 2, 1)],
    }
    arrays.update(changes)
    return _write_votenet(folder, "scene0100_00", arrays["vert"], arrays["instance"], arrays["semantic"])


def _one_line(error: pytest.ExceptionInfo, named: Path) -> str:
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{named}: "), message
    return message


@pytest.mark.parametrize("part", ["instance", "semantic"])
def test_votenet_label_length_mismatch_names_the_label_file(tmp_path, part):
    path = _small_votenet(tmp_path, **{part: np.ones(9)})
    with pytest.raises(InputError, match="wrong length: 9 rows for 10 points") as info:
        read_scene(path)
    _one_line(info, path.with_name(f"scene0100_00_{'ins' if part == 'instance' else 'sem'}_label.npy"))


def test_votenet_nan_rows_dropped_with_their_labels(tmp_path):
    vert = np.c_[_xyz(10), np.full((10, 3), 128.0)]
    vert[[2, 7], 1] = np.nan
    scene = read_scene(_small_votenet(tmp_path, vert=vert))
    assert scene.num_points == 8 and scene.metadata["dropped_nan_points"] == 2
    np.testing.assert_array_equal(scene.gt.instance_ids, [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(scene.gt.instance_evaluated, [True, False])  # chair, wall
    everything_nan = np.c_[np.full((10, 3), np.nan), np.zeros((10, 3))]
    path = _small_votenet(tmp_path / "nan", vert=everything_nan)
    with pytest.raises(InputError, match="all 10 points have NaN") as info:
        read_scene(path)
    _one_line(info, path)


@pytest.mark.parametrize(
    ("changes", "file", "message"),
    [
        ({"vert": np.zeros((10, 5))}, "vert", r"shape \(10, 5\), expected \(N, 6\)"),
        ({"vert": np.zeros(10)}, "vert", r"shape \(10,\), expected \(N, 6\)"),
        ({"instance": np.ones((10, 2))}, "ins_label", r"shape \(10, 2\), expected \(10,\)"),
        ({"vert": np.c_[_xyz(10), np.full((10, 3), 300.0)]}, "vert", "colour values must lie in 0-255"),
    ],
)
def test_votenet_wrong_shapes(tmp_path, changes, file, message):
    path = _small_votenet(tmp_path, **changes)
    with pytest.raises(FormatError, match=message) as info:
        read_scene(path)
    _one_line(info, path.with_name(f"scene0100_00_{file}.npy"))


def test_votenet_bad_boxes_and_float_labels(tmp_path):
    path = _small_votenet(tmp_path)
    np.save(path.with_name("scene0100_00_bbox.npy"), np.zeros((3, 6)))
    with pytest.raises(FormatError, match=r"box array has shape \(3, 6\)"):
        read_scene(path)
    np.save(path.with_name("scene0100_00_bbox.npy"), np.zeros((0, 7)))
    assert read_scene(path).metadata["gt_box_count"] == 0
    np.save(path.with_name("scene0100_00_sem_label.npy"), np.full(10, 1.5))
    with pytest.raises(FormatError, match="integer ids"):
        read_scene(path)


def _small_pointcept(folder: Path, n: int = 10, **arrays) -> Path:
    files = {
        "coord": _xyz(n),
        "color": np.full((n, 3), 7, np.uint8),
        "segment20": np.r_[np.full(n // 2, 4), np.zeros(n - n // 2, np.int64)],  # chair, wall
        "instance": np.r_[np.zeros(n // 2, np.int64), np.ones(n - n // 2, np.int64)],
    }
    files.update(arrays)
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in files.items():
        if array is not None:
            np.save(folder / f"{name}.npy", array)
    return folder


def test_pointcept_missing_coord(tmp_path):
    folder = _small_pointcept(tmp_path / "scan", coord=None)
    assert detect_format(folder) == "pointcept"
    with pytest.raises(InputError, match="a Pointcept scan folder needs coord.npy") as info:
        read_scene(folder)
    _one_line(info, folder / "coord.npy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnknownFormatError, match="Pointcept scan"):
        read_scene(tmp_path / "empty")
    with pytest.raises(InputError, match="needs coord.npy"):
        read_scene(tmp_path / "empty", format="pointcept")


@pytest.mark.parametrize(
    ("name", "array", "error", "message"),
    [
        ("instance", np.zeros(9, np.int64), InputError, "wrong length: 9 rows for 10 points"),
        ("color", np.zeros((11, 3), np.uint8), InputError, "wrong length: 11 rows for 10 points"),
        ("segment20", np.zeros((10, 2), np.int64), FormatError, r"shape \(10, 2\), expected \(10,\)"),
        ("coord", np.zeros((10, 2), np.float32), FormatError, r"shape \(10, 2\), expected \(N, 3\)"),
        ("normal", np.zeros((10, 4), np.float32), FormatError, r"shape \(10, 4\), expected \(10, 3\)"),
        ("color", np.full((10, 3), -1.0), FormatError, "colour values must lie in 0-255"),
        ("instance", np.full(10, 0.5), FormatError, "integer ids"),
    ],
)
def test_pointcept_bad_files(tmp_path, name, array, error, message):
    folder = _small_pointcept(tmp_path / "scan", **{name: array})
    with pytest.raises(error, match=message) as info:
        read_scene(folder)
    _one_line(info, folder / f"{name}.npy")


def test_pointcept_nan_rows_dropped(tmp_path):
    coord = _xyz(10)
    coord[[0, 9]] = np.inf
    scene = read_scene(_small_pointcept(tmp_path / "scan", coord=coord))
    assert scene.num_points == 8 and scene.metadata["dropped_nan_points"] == 2
    np.testing.assert_array_equal(scene.gt.instance_ids, [0, 0, 0, 0, 1, 1, 1, 1])
    assert scene.gt.instance_names == ("chair", "wall")
    np.testing.assert_array_equal(scene.gt.instance_evaluated, [True, False])
    with pytest.raises(InputError, match="all 10 points have NaN"):
        read_scene(_small_pointcept(tmp_path / "nan", coord=np.full((10, 3), np.nan, np.float32)))
    with pytest.raises(InputError, match="semantics must be"):
        read_scene(tmp_path / "scan", semantics="segment40")


# --- the CLI ------------------------------------------------------------------------------------


def _info(path: Path) -> dict:
    result = run_cli("info", str(path), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.realdata
def test_cli_info_votenet_and_pointcept(tmp_path, scannet_votenet_dir):
    info = _info(scannet_votenet_dir / "scene0000_00_vert.npy")
    assert info["format"] == "scannet_votenet" and info["name"] == "scene0000_00"
    assert info["points"] == 50_000 and info["gt_instances"] == 67 and info["gt_evaluated_instances"] == 56
    assert info["gt_box_count"] == 27 and info["fields"] == ["xyz", "colors"]
    vert, instance, semantic = _export(scannet_votenet_dir, "scene0000_00")
    folder = _write_pointcept(tmp_path / "scene0000_00", vert, instance, semantic)
    info = _info(folder)
    assert info["format"] == "pointcept" and info["name"] == "scene0000_00" and info["points"] == 50_000
    assert info["semantic_space"] == "segment20" and info["gt_instances"] == 67
    listing = run_cli("formats")
    assert listing.returncode == 0 and "scannet_votenet" in listing.stdout and "pointcept" in listing.stdout


@pytest.mark.realdata
def test_cli_one_line_errors(tmp_path, scannet_votenet_dir):
    broken = {
        scannet_votenet_dir / "scene0000_00_ins_label.npy": "scene0000_00_vert.npy",
        _small_votenet(tmp_path / "v", instance=np.ones(9)): "scene0100_00_ins_label.npy",
        _small_pointcept(tmp_path / "p", coord=None): "coord.npy",
    }
    for path, named in broken.items():
        result = run_cli("info", str(path))
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ") and named in lines[0], lines
