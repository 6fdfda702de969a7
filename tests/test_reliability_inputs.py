"""Issue #14, inputs: bad files for every reader, evaluate's inputs, option validation, untrusted files.

Every broken input is derived at test time from a real shared scan (truncated, header corrupted,
counts made to lie, ...) or is a small hand-made file; through the CLI each must end in one line
`error: <file>: <problem>` on stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labelfree3d.cli.main import main
from labelfree3d.errors import FormatError, InputError, LabelFree3DError, ParameterError
from labelfree3d.io import read_scene, write_predictions
from labelfree3d.io.npz import write_npz_scene
from labelfree3d.io.ply import write_ply
from labelfree3d.structures import InstanceMasks, Scene

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "labelfree3d"


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit status, stdout, stderr). An escaping exception fails the test."""
    capsys.readouterr()
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status: int, err: str, named: Path | str) -> str:
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert str(named) in lines[0], (named, lines[0])
    return lines[0]


# ---------------------------------------------------------------------- files derived from real scans
@pytest.fixture(scope="module")
def real(data_dir):
    """Bytes of one real file per format (the OSD PCD is binary_compressed, the ScanNet PLY a binary mesh)."""
    return {
        "pcd": (data_dir / "osd/learn/learn0.pcd").read_bytes(),
        "ply": (data_dir / "scannet/scene0000_00/scene0000_00_vh_clean_2.ply").read_bytes(),
        "npy": (data_dir / "scannet-votenet/scene0000_00_vert.npy").read_bytes(),
    }


def _small_scene(data_dir, n: int = 300, mesh: bool = False) -> Scene:
    """The first `n` points of a real scan (VoteNet export), or a small piece of the ScanNet mesh."""
    if mesh:
        full = read_scene(data_dir / "scannet/scene0000_00/scene0000_00_vh_clean_2.ply")
        return full.subset(np.arange(2000))
    full = read_scene(data_dir / "scannet-votenet/scene0000_00_vert.npy")
    return full.subset(np.arange(n))


def _ascii_ply(vertices: list[tuple], faces: list[tuple] = (), extra: str = "") -> bytes:
    header = (
        f"ply\nformat ascii 1.0\nelement vertex {len(vertices)}\nproperty float x\nproperty float y\n"
        f"property float z\n{extra}element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    body = "".join(" ".join(map(str, v)) + "\n" for v in vertices)
    body += "".join("3 " + " ".join(map(str, f)) + "\n" for f in faces)
    return (header + body).encode()


def _bad_files(folder: Path, real: dict[str, bytes]) -> dict[str, Path]:
    pcd, ply, npy = real["pcd"], real["ply"], real["npy"]
    files: dict[str, bytes] = {
        "empty.pcd": b"",
        "empty.ply": b"",
        "empty.npy": b"",
        "empty.npz": b"",
        "empty.las": b"",
        "truncated.pcd": pcd[: len(pcd) // 2],
        "truncated-header.pcd": pcd[:100],
        "truncated.ply": ply[: len(ply) // 2],
        "truncated-header.ply": ply[:100],
        "truncated.npy": npy[:5000],
        "wrong-magic.ply": b"plx" + ply[3:200],
        "garbage.pcd": b"garbage\n" * 5,
        "non-utf8.ply": ply[:10] + b"\xff\xfe comment \xff\n" + ply[10:],
        "lying-vertex-count.ply": ply.replace(b"element vertex 81369", b"element vertex 99999999"),
        "lying-face-count.ply": ply.replace(b"element face 153587", b"element face 999999999"),
        "short-vertex-count.ply": ply.replace(b"element vertex 81369", b"element vertex 10"),
        "lying-points.pcd": pcd.replace(b"POINTS 307200", b"POINTS 999999999"),
        "negative-width.pcd": pcd.replace(b"WIDTH 640", b"WIDTH -640"),
        "lying-header.npy": npy.replace(b"(50000, 6)", b"(99999999999, 6)"),
        "random.npz": os.urandom(4000),
        "random.npy": os.urandom(4000),
        "random.ply": os.urandom(4000),
        "random.las": os.urandom(4000),
        "zip-magic.npz": b"PK\x03\x04" + os.urandom(300),
        "face-past-vertices.ply": _ascii_ply([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [(0, 1, 7)]),
        "negative-face.ply": _ascii_ply([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [(0, 1, -1)]),
        "all-nan.ply": _ascii_ply([("nan", 0, 0), ("inf", 1, 1)]),
        "zero-vertices.ply": _ascii_ply([]),
        "nan-instance.ply": _ascii_ply([(0, 0, 0, "nan"), (1, 0, 0, 1)], extra="property float instance\n"),
    }
    paths = {}
    for name, payload in files.items():
        paths[name] = folder / name
        paths[name].write_bytes(payload)
    # compressed payload replaced by noise behind a real header
    start = pcd.index(b"\n", pcd.index(b"DATA")) + 1
    paths["corrupt-lzf.pcd"] = folder / "corrupt-lzf.pcd"
    paths["corrupt-lzf.pcd"].write_bytes(pcd[: start + 8] + os.urandom(2000))
    np.save(folder / "object.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(folder / "strings.npy", np.array([["a", "b", "c"]]))
    np.save(folder / "huge-ids.npy", np.array([[0, 0, 0, 1, 1, 1, 1e30]] * 3, np.float32))
    np.savez(folder / "no-points.npz", a=np.zeros(3))
    np.savez(folder / "labels-short.npz", points=np.zeros((5, 3)), instance_ids=np.zeros(4, int))
    np.savez(folder / "labels-strings.npz", points=np.zeros((5, 3)), instance_ids=np.array(["a"] * 5))
    np.savez(folder / "names-numbers.npz", points=np.zeros((3, 3)), instance_ids=[0, 0, 1], instance_names=[1.5])
    np.savez(folder / "evaluated-2d.npz", points=np.zeros((3, 3)), instance_ids=[0, 0, 1], instance_evaluated=[[1]])
    np.savez(folder / "name-2d.npz", points=np.zeros((3, 3)), name=np.zeros((2, 2)))
    np.savez(folder / "faces-past.npz", points=np.zeros((3, 3)), faces=np.array([[0, 1, 9]]))
    for name in ("object.npy", "strings.npy", "huge-ids.npy", "no-points.npz", "labels-short.npz",
                 "labels-strings.npz", "names-numbers.npz", "evaluated-2d.npz", "name-2d.npz", "faces-past.npz"):  # fmt: skip
        paths[name] = folder / name
    paths["missing.ply"] = folder / "missing.ply"
    paths["folder.pcd"] = folder / "folder.pcd"
    paths["folder.pcd"].mkdir()
    return paths


BAD_FILES = [
    "empty.pcd", "empty.ply", "empty.npy", "empty.npz", "empty.las", "truncated.pcd", "truncated-header.pcd",
    "truncated.ply", "truncated-header.ply", "truncated.npy", "wrong-magic.ply", "garbage.pcd", "non-utf8.ply",
    "lying-vertex-count.ply", "lying-face-count.ply", "short-vertex-count.ply", "lying-points.pcd",
    "negative-width.pcd", "lying-header.npy", "random.npz", "random.npy", "random.ply", "random.las",
    "zip-magic.npz", "face-past-vertices.ply", "negative-face.ply", "all-nan.ply", "zero-vertices.ply",
    "nan-instance.ply", "corrupt-lzf.pcd", "object.npy", "strings.npy", "huge-ids.npy", "no-points.npz",
    "labels-short.npz", "labels-strings.npz", "names-numbers.npz", "evaluated-2d.npz", "name-2d.npz",
    "faces-past.npz", "missing.ply", "folder.pcd",
]  # fmt: skip


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, real):
    return _bad_files(tmp_path_factory.mktemp("bad"), real)


@pytest.mark.realdata
@pytest.mark.parametrize("case", BAD_FILES)
def test_info_on_a_bad_file_is_one_line_naming_it(capsys, bad_files, case):
    path = bad_files[case]
    status, out, err = cli(capsys, "info", path)
    assert_one_line_error(status, err, path)
    assert out == ""


@pytest.mark.realdata
def test_bad_file_messages_say_what_is_wrong(capsys, bad_files):
    expected = {
        "lying-header.npy": "file is truncated: header says shape (99999999999, 6)",
        "empty.npz": "an empty file",
        "zip-magic.npz": "not a readable .npz archive",
        "object.npy": "never unpickled",
        "non-utf8.ply": "header is not ASCII text",
        "face-past-vertices.ply": "faces index vertices outside [0, 3)",
        "nan-instance.ply": "'instance' must hold integer ids",
        "huge-ids.npy": "too large",
        "labels-short.npz": "'instance_ids' has shape (4,), expected (5,)",
        "names-numbers.npz": "'instance_names' must be a 1-D string array",
        "lying-vertex-count.ply": "truncated",
    }
    for case, excerpt in expected.items():
        _, _, err = cli(capsys, "info", bad_files[case])
        assert excerpt in err, (case, err)


@pytest.mark.realdata
def test_the_installed_console_script_exits_2_without_traceback(bad_files):
    """The same through a real process (the exit status a shell sees)."""
    script = Path(sys.executable).with_name("labelfree3d")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "labelfree3d"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for case in ("lying-header.npy", "empty.npz"):
        done = subprocess.run([*command, "info", str(bad_files[case])], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip().splitlines() == [done.stderr.strip()]


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("source", "forced", "excerpt"),
    [
        ("scannet-votenet/scene0000_00_vert.npy", "semantickitti", "starts like a .npy array"),
        ("osd/learn/learn0.pcd", "semantickitti", "starts like a PCD file"),
        ("scannet/scene0000_00/scene0000_00_vh_clean_2.ply", "semantickitti", "starts like a PLY file"),
        ("scannet-votenet/scene0000_00_vert.npy", "npz", "not a zip archive"),
        ("osd/learn/learn0.pcd", "npy", "no NPY magic"),
        ("scannet-votenet/scene0000_00_vert.npy", "ply", "corrupt PLY"),
        ("scannet/scene0000_00/scene0000_00_vh_clean_2.ply", "pcd", "not a PCD file"),
    ],
)
def test_a_reader_forced_onto_another_format_refuses(capsys, data_dir, source, forced, excerpt):
    path = data_dir / source
    status, _, err = cli(capsys, "info", path, "--format", forced)
    assert excerpt in assert_one_line_error(status, err, path)


def test_a_headerless_velodyne_file_of_noise_is_refused(tmp_path):
    noise = tmp_path / "velodyne" / "000000.bin"
    noise.parent.mkdir()
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 16_000, dtype=np.uint8).tobytes())
    with pytest.raises(FormatError, match="not a velodyne scan: coordinates reach"):
        read_scene(noise)


@pytest.mark.realdata
def test_real_kitti_points_still_read_as_a_velodyne_frame(tmp_path, semantickitti_dir):
    points = np.load(semantickitti_dir / "sk_points_000700.npy")
    frame = tmp_path / "velodyne" / "000700.bin"
    frame.parent.mkdir()
    np.column_stack([points, np.zeros(len(points), np.float32)]).astype("<f4").tofile(frame)
    assert read_scene(frame).num_points == len(points)


@pytest.mark.realdata
def test_convert_and_segment_refuse_a_corrupt_scene_archive(capsys, bad_files, tmp_path):
    path = bad_files["zip-magic.npz"]
    status, _, err = cli(capsys, "convert", path, tmp_path / "out.ply")
    assert_one_line_error(status, err, path)
    status, _, err = cli(capsys, "segment", path, "-o", tmp_path / "out.npz", "--method", "dbscan")
    assert_one_line_error(status, err, path)
    assert not (tmp_path / "out.ply").exists() and not (tmp_path / "out.npz").exists()


# ---------------------------------------------------------------------- one NaN rule for every reader
def _with_nan_rows(scene: Scene, rows: list[int]) -> Scene:
    points = scene.points.copy()
    points[rows, 0] = np.nan
    return scene, points


@pytest.mark.realdata
def test_every_reader_drops_nan_points_and_counts_them(tmp_path, data_dir, make_pcd):
    scene = _small_scene(data_dir)
    bad = [3, 10, 11]
    points = scene.points.copy()
    points[bad, 0] = np.nan
    keep = np.setdiff1d(np.arange(scene.num_points), bad)

    rgb = np.round(scene.colors * 255)
    np.save(tmp_path / "cloud.npy", np.column_stack([points, rgb]).astype(np.float32))
    vertex = np.zeros(scene.num_points, [("x", "f4"), ("y", "f4"), ("z", "f4"), ("instance", "i4")])
    for i, axis in enumerate("xyz"):
        vertex[axis] = points[:, i]
    vertex["instance"] = scene.gt.instance_ids
    import plyfile

    plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")]).write(str(tmp_path / "cloud.ply"))
    np.savez(tmp_path / "cloud.npz", points=points, instance_ids=scene.gt.instance_ids)
    make_pcd(tmp_path / "cloud.pcd", {"x": points[:, 0], "y": points[:, 1], "z": points[:, 2]})
    for name in ("cloud.npy", "cloud.ply", "cloud.npz", "cloud.pcd"):
        read = read_scene(tmp_path / name)
        assert read.num_points == keep.size, name
        assert read.metadata["dropped_nan_points"] == len(bad), name
        np.testing.assert_allclose(read.points, scene.points[keep], rtol=0, atol=1e-6, err_msg=name)
        if read.gt is not None:  # labels stay with their points
            kept_ids = scene.gt.instance_ids[keep]
            same = read.gt.instance_ids[:, None] == read.gt.instance_ids[None, :]
            np.testing.assert_array_equal(same, kept_ids[:, None] == kept_ids[None, :], err_msg=name)


@pytest.mark.realdata
def test_a_mesh_with_nan_vertices_keeps_the_faces_of_the_others(tmp_path, data_dir):
    piece = _small_scene(data_dir, mesh=True)
    assert piece.is_mesh
    points = piece.points.copy()
    points[[0, 5]] = np.inf
    write_ply(Scene(points=np.nan_to_num(points), faces=piece.faces), tmp_path / "mesh.ply", binary=False)
    text = (tmp_path / "mesh.ply").read_text().splitlines()
    start = text.index("end_header") + 1
    for row in (0, 5):  # the writer refuses NaN scenes, so the NaN goes in by hand
        text[start + row] = "nan " + " ".join(text[start + row].split()[1:])
    (tmp_path / "mesh.ply").write_text("\n".join(text) + "\n")
    read = read_scene(tmp_path / "mesh.ply")
    uses_bad = np.isin(piece.faces, [0, 5]).any(axis=1)
    assert read.num_points == piece.num_points - 2
    assert read.metadata["dropped_nan_points"] == 2
    assert read.metadata["dropped_faces"] == int(uses_bad.sum()) > 0
    assert read.faces.shape[0] == int((~uses_bad).sum())
    assert read.faces.max() < read.num_points


@pytest.mark.realdata
def test_organized_osd_clouds_keep_their_pixel_index(data_dir):
    scene = read_scene(data_dir / "osd/learn/learn0.pcd")
    assert scene.num_points + scene.metadata["dropped_nan_points"] == 640 * 480
    assert scene.metadata["pixel_index"].shape == (scene.num_points,)


# ---------------------------------------------------------------------- evaluate's inputs
@pytest.fixture(scope="module")
def votenet_prediction(tmp_path_factory, data_dir):
    """The ground truth of a real VoteNet scan as a prediction file (a perfect prediction)."""
    scene = read_scene(data_dir / "scannet-votenet/scene0000_00_vert.npy")
    path = tmp_path_factory.mktemp("pred") / "scene0000_00.npz"
    write_predictions(InstanceMasks.from_labels(scene.gt.instance_ids), path, scene_name=scene.name)
    return path


def _rewrite(prediction: Path, target: Path, **changes) -> Path:
    with np.load(prediction) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    np.savez(target, **arrays)
    return target


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("change", "excerpt"),
    [
        ({"mask_indices": "float"}, "'mask_indices' must be a 1-D array of integers"),
        ({"mask_indices": "strings"}, "'mask_indices' must be a 1-D array of integers"),
        ({"mask_indptr": "2d"}, "'mask_indptr' must be a 1-D array of integers"),
        ({"num_points": "array"}, "'num_points' must be one integer"),
        ({"scores": "strings"}, "'scores' must be a 1-D array of numbers"),
        ({"scene_name": "array"}, "'scene_name' must be one string"),
        ({"num_points": "other scene"}, "predictions cover 81369 points but scene 'scene0000_00'"),
    ],
)
def test_evaluate_names_a_prediction_of_the_wrong_dtype_shape_or_scene(
    capsys, tmp_path, data_dir, votenet_prediction, change, excerpt
):
    with np.load(votenet_prediction) as data:
        arrays = {k: data[k] for k in data.files}
    key, how = next(iter(change.items()))
    value = arrays[key]
    arrays[key] = {
        "float": lambda: value.astype(np.float64) + 0.5,
        "strings": lambda: np.array(["x"] * len(value)),
        "2d": lambda: value.reshape(1, -1),
        "array": lambda: np.zeros(2),
        "other scene": lambda: np.array(81369),
    }[how]()
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    status, _, err = cli(capsys, "evaluate", bad, data_dir / "scannet-votenet/scene0000_00_vert.npy")
    assert excerpt in assert_one_line_error(status, err, bad)


@pytest.mark.realdata
def test_evaluate_with_junk_in_the_ground_truth_folder_names_the_junk(capsys, tmp_path, data_dir, votenet_prediction):
    truth = tmp_path / "gt"
    truth.mkdir()
    for suffix in ("vert", "ins_label", "sem_label"):
        shutil.copy2(data_dir / f"scannet-votenet/scene0000_00_{suffix}.npy", truth)
    (truth / "README.md").write_text("notes\n")  # not a scan: skipped
    junk = truth / "broken.ply"
    junk.write_bytes(os.urandom(500))
    status, _, err = cli(capsys, "evaluate", votenet_prediction, truth)
    assert_one_line_error(status, err, junk)
    junk.unlink()
    status, out, err = cli(capsys, "evaluate", votenet_prediction, truth, "--json")
    assert status == 0, err


@pytest.mark.realdata
def test_unknown_void_labels_are_refused_listing_the_categories(capsys, data_dir, votenet_prediction):
    truth = data_dir / "scannet-votenet/scene0000_00_vert.npy"
    status, _, err = cli(capsys, "evaluate", votenet_prediction, truth, "--void-labels", "wall,nosuchcat")
    assert status == 2
    assert "unknown category 'nosuchcat'" in err and "chair" not in err.split("nosuchcat")[0]
    assert re.search(r"ceiling: .*\bbed\b.*\bwall\b", err), err
    status, out, err = cli(capsys, "evaluate", votenet_prediction, truth, "--void-labels", "Wall,floor,CEILING")
    assert status == 0, err


@pytest.mark.realdata
def test_report_refuses_unknown_void_labels(capsys, tmp_path, data_dir, votenet_prediction):
    truth = data_dir / "scannet-votenet/scene0000_00_vert.npy"
    status, _, err = cli(capsys, "report", votenet_prediction, "--gt", truth, "--void-labels", "nosuchcat",
                         "-o", tmp_path / "r.html", "--thumbnails", "0")  # fmt: skip
    assert status == 2 and "unknown category 'nosuchcat'" in err
    assert not (tmp_path / "r.html").exists()


def test_check_void_labels_is_case_insensitive_and_lists_the_valid_names():
    from labelfree3d.evaluate.protocol import check_void_labels

    check_void_labels(["WALL", " floor "], {"wall", "floor", "chair"})
    check_void_labels(None, set())
    with pytest.raises(ParameterError, match=r"unknown categories 'tabel', 'flor'; .*: ceiling, chair, floor, wall"):
        check_void_labels(["tabel", "flor"], {"wall", "floor", "chair"})


# ---------------------------------------------------------------------- settings and options
def test_boolean_settings_accept_only_true_false():
    from labelfree3d.models._params import dataclass_from_dict
    from labelfree3d.models.predict import PredictConfig

    for text, expected in (("true", True), ("no", False), ("yes", True), ("1", True), ("0", False)):
        from labelfree3d.cli.common import parse_settings

        value = parse_settings([f"dbscan_split={text}"])["dbscan_split"]
        assert dataclass_from_dict(PredictConfig, {"dbscan_split": value}, "predict").dbscan_split is expected
    for bad in ("maybe", "fasle", 2, "on second thought"):
        with pytest.raises(ParameterError, match="predict.dbscan_split must be true or false"):
            dataclass_from_dict(PredictConfig, {"dbscan_split": bad}, "predict")
    with pytest.raises(ParameterError, match="predict.max_masks must be an integer, got 'abc'"):
        dataclass_from_dict(PredictConfig, {"max_masks": "abc"}, "predict")


def test_train_and_fit_settings_are_type_checked(tmp_path):
    from labelfree3d.recipes import make_recipe
    from labelfree3d.recipes.base import resolve_parameters
    from labelfree3d.train.config import TrainConfig

    with pytest.raises(ParameterError, match="config.optim.lr must be a number, got 'fast'"):
        TrainConfig.from_dict({"optim": {"lr": "fast"}})
    recipe = make_recipe("unscene3d")
    with pytest.raises(ParameterError, match="cycles must be an integer, got 'maybe'"):
        resolve_parameters(recipe, "small", {"cycles": "maybe"})
    assert resolve_parameters(recipe, "small", {"cycles": 3})["cycles"] == 3


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    import _learning
    import torch

    from labelfree3d.models import build_model
    from labelfree3d.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model(_learning.tiny_spec(voxel_size=0.01))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.safetensors", model, {"predict": {"max_masks": 4}})


@pytest.mark.realdata
def test_predict_refuses_a_non_boolean_split_before_reading_scans(capsys, tmp_path, osd_dir, tiny_checkpoint):
    status, _, err = cli(capsys, "predict", osd_dir / "learn0.pcd", "--checkpoint", tiny_checkpoint,
                         "-o", tmp_path / "p.npz", "--set", "dbscan_split=maybe")  # fmt: skip
    assert status == 2 and "dbscan_split must be true or false" in err
    assert not (tmp_path / "p.npz").exists()


@pytest.mark.realdata
def test_predict_on_a_folder_with_junk_reports_each_bad_file(capsys, tmp_path, osd_dir, bad_files, tiny_checkpoint):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy2(osd_dir / "learn0.pcd", mixed)
    for name in ("zip-magic.npz", "garbage.pcd", "random.ply"):
        shutil.copy2(bad_files[name], mixed)
    (mixed / "notes.md").write_text("not a scan\n")
    status, out, err = cli(capsys, "predict", mixed, "--checkpoint", tiny_checkpoint, "-o", tmp_path / "out")
    assert status == 1 and "Traceback" not in err
    assert "3 of 4 scan(s) failed" in err
    for name in ("zip-magic.npz", "garbage.pcd", "random.ply"):
        assert str(mixed / name) in err
    assert (tmp_path / "out" / "learn0.npz").is_file()


def test_train_config_that_is_a_binary_file(capsys, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_bytes(bytes(range(256)) * 8)
    status, _, err = cli(capsys, "train", "--config", config, "-o", tmp_path / "run")
    assert "not a YAML text file" in assert_one_line_error(status, err, config)
    assert not (tmp_path / "run").exists()


def test_lift_pipeline_validates_its_numbers():
    from labelfree3d.lift.classic import ClassicMaskGenerator
    from labelfree3d.lift.pipeline import LiftPipeline

    generator = ClassicMaskGenerator()
    for kwargs, excerpt in (
        ({"frame_stride": 0}, "frame_stride must be >= 1"),
        ({"frame_stride": -2}, "frame_stride must be >= 1"),
        ({"frame_stride": 2.5}, "frame_stride must be an integer"),
        ({"depth_tolerance": -1.0}, "depth_tolerance must be > 0"),
        ({"depth_tolerance": float("nan")}, "depth_tolerance must be a finite number"),
        ({"min_points": 0}, "min_points must be >= 1"),
    ):
        with pytest.raises(ParameterError, match=excerpt):
            LiftPipeline(generator, **kwargs)


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("option", "excerpt"),
    [
        (["--frame-stride", "0"], "frame_stride must be >= 1, got 0"),
        (["--frame-stride", "-2"], "frame_stride must be >= 1, got -2"),
        (["--depth-tolerance", "-1"], "depth_tolerance must be > 0"),
        (["--merge-ratio", "0"], "ratio must be in (0, 1]"),
        (["--min-points", "-1"], "min_points must be >= 1"),
    ],
)
def test_lift_options_out_of_range(capsys, tmp_path, osd_dir, option, excerpt):
    status, _, err = cli(capsys, "lift", osd_dir / "learn0.pcd", "-o", tmp_path / "out", *option)
    assert status == 2 and excerpt in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("command", "excerpt"),
    [
        (["benchmark", "{scan}", "-m", "dbscan", "--thumbnails", "-1", "-o", "{out}/b.html"], "thumbnails must be"),
        (["benchmark", "{scan}", "-m", "dbscan", "--workers", "-1", "-o", "{out}/b.html"], "workers must be >= 0"),
        (["evaluate", "{pred}", "{truth}", "--min-region-size", "-5"], "min_region_size must be >= 0"),
        (["evaluate", "{pred}", "{truth}", "--workers", "-3"], "workers must be >= 0"),
        (["pseudo-label", "{scan}", "-m", "dbscan", "-o", "{out}/pl", "--limit", "0"], "--limit must be >= 1"),
        (["view", "{truth}", "-o", "{out}/v.html", "--max-points", "0"], "max_points must be >= 1"),
        (["report", "{pred}", "--gt", "{truth}", "--thumbnails", "-1", "-o", "{out}/r.html"], "thumbnails must be"),
        (["fit", "{scan}", "-r", "unscene3d", "-o", "{out}/run", "--workers", "-1"], "workers must be"),
        (["fit", "{scan}", "-r", "unscene3d", "-o", "{out}/run", "--set", "cycles=maybe"], "cycles must be an integer"),
    ],
)
def test_numeric_options_out_of_range_write_nothing(capsys, tmp_path, data_dir, votenet_prediction, command, excerpt):
    out = tmp_path / "out"
    out.mkdir()
    values = {"scan": data_dir / "osd/learn/learn0.pcd", "out": out, "pred": votenet_prediction,
              "truth": data_dir / "scannet-votenet/scene0000_00_vert.npy"}  # fmt: skip
    status, _, err = cli(capsys, *[part.format(**values) for part in command])
    assert status == 2 and excerpt in err and "Traceback" not in err, err
    assert list(out.iterdir()) == []


def test_an_empty_or_foreign_sam_checkpoint_is_one_line(capsys, tmp_path):
    pytest.importorskip("torch")
    from labelfree3d.lift.sam import load_sam

    empty = tmp_path / "sam.pth"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        load_sam(empty)
    noise = tmp_path / "noise.pth"
    noise.write_bytes(os.urandom(3000))
    with pytest.raises(InputError, match="unreadable SAM checkpoint"):
        load_sam(noise)


# ---------------------------------------------------------------------- untrusted files
class _Tripwire:
    """Unpickling this touches a file: proof that a reader executed something from its input."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickles_in_input_files_are_never_executed(tmp_path):
    import torch

    from labelfree3d.io import read_predictions
    from labelfree3d.lift.sam import load_sam

    marker = tmp_path / "executed"
    trap = np.array([_Tripwire(marker)], dtype=object)
    np.save(tmp_path / "trap.npy", trap, allow_pickle=True)
    np.savez(tmp_path / "trap.npz", points=trap)
    np.savez(tmp_path / "pred.npz", mask_indptr=trap, mask_indices=trap, scores=trap, num_points=trap)
    torch.save({"weights": _Tripwire(marker)}, tmp_path / "trap.pth")
    for reader, path in ((read_scene, "trap.npy"), (read_scene, "trap.npz"), (read_predictions, "pred.npz"),
                         (load_sam, "trap.pth")):  # fmt: skip
        with pytest.raises(LabelFree3DError):
            reader(tmp_path / path)
    assert not marker.exists()


def test_the_package_loads_arrays_and_checkpoints_without_pickles():
    """Every np.load passes allow_pickle=False, every torch.load weights_only=True; no pickle module."""
    offenders = []
    for source in PACKAGE.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        for match in re.finditer(r"\b(np|numpy)\.load\(([^)]*)\)", text):
            if "allow_pickle=False" not in match.group(2):
                offenders.append(f"{source.relative_to(ROOT)}: {match.group(0)}")
        for match in re.finditer(r"\btorch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in match.group(1):
                offenders.append(f"{source.relative_to(ROOT)}: {match.group(0)}")
        if re.search(r"^\s*import pickle|^\s*from pickle import|allow_pickle=True", text, re.MULTILINE):
            offenders.append(f"{source.relative_to(ROOT)}: pickle")
    assert offenders == []


@pytest.mark.realdata
def test_scene_names_from_file_content_cannot_leave_the_output_folder(tmp_path, data_dir, tiny_checkpoint):
    from labelfree3d.batch.predict import predict_scans

    scene = _small_scene(data_dir, n=2000)
    archive = tmp_path / "in" / "evil.npz"
    archive.parent.mkdir()
    write_npz_scene(scene, archive)
    _rewrite(archive, archive, name=np.array("../../escaped"))
    read = read_scene(archive)
    assert "/" not in read.name and read.name != ".."
    output = tmp_path / "deep" / "out"
    run = predict_scans([archive], tiny_checkpoint, output)
    assert not run.failed, [r.error for r in run.failed]
    written = [p for p in tmp_path.rglob("*.npz") if p != archive]
    assert written and all(p.parent == output for p in written), written
    for name in ("..", ".", "", "a/../../b", "x\\y"):
        assert Scene(points=np.zeros((1, 3)), name=name).name not in ("..", ".", "")
        assert "/" not in Scene(points=np.zeros((1, 3)), name=name).name


def test_benchmark_index_may_not_read_masks_outside_its_folder(tmp_path):
    from labelfree3d.io import read_scannet_benchmark

    secret = tmp_path / "secret.txt"
    secret.write_text("1\n0\n1\n")
    folder = tmp_path / "pred"
    folder.mkdir()
    (folder / "scene0000_00.txt").write_text("../secret.txt 1 0.9\n")
    with pytest.raises(FormatError, match="leaves the index's folder"):
        read_scannet_benchmark(folder / "scene0000_00.txt")
    (folder / "scene0000_00.txt").write_text(f"{secret} 1 0.9\n")
    with pytest.raises(FormatError, match="leaves the index's folder"):
        read_scannet_benchmark(folder / "scene0000_00.txt")


# ---------------------------------------------------------------------- folder readers
@pytest.mark.realdata
def test_folder_readers_name_the_bad_file_inside(capsys, tmp_path, data_dir):
    scene = tmp_path / "scannet" / "scene0000_00"
    scene.mkdir(parents=True)
    for source in (data_dir / "scannet/scene0000_00").iterdir():
        (scene / source.name).symlink_to(source)
    segs = scene / "scene0000_00_vh_clean_2.0.010000.segs.json"
    segs.unlink()
    segs.write_text('{"segIndices": [1, 2, 3]}')
    status, _, err = cli(capsys, "info", scene)
    assert "segIndices has 3 entries for 81369 mesh vertices" in assert_one_line_error(status, err, segs)
    segs.write_bytes(b"\xff\xfe\x00")
    status, _, err = cli(capsys, "info", scene)
    assert "malformed JSON" in assert_one_line_error(status, err, segs)

    frames = tmp_path / "rgbd" / "frames"
    frames.mkdir(parents=True)
    shutil.copy2(data_dir / "7scenes/camera-intrinsics.txt", frames.parent)
    for name in ("frame-000000", "frame-000010"):
        for part in (".color.jpg", ".depth.png", ".pose.txt"):
            shutil.copy2(data_dir / "7scenes/frames" / f"{name}{part}", frames)
    depth = frames / "frame-000010.depth.png"
    depth.write_bytes(depth.read_bytes()[:300])
    status, _, err = cli(capsys, "fuse", frames.parent, "-o", tmp_path / "mesh.ply")
    # fuse draws a progress bar on stderr before the frame fails: the error is its last line
    assert status == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(depth) in last and "unreadable depth image" in last
    assert not (tmp_path / "mesh.ply").exists()
    intrinsics = frames.parent / "camera-intrinsics.txt"
    intrinsics.write_text("a b c\n")
    status, _, err = cli(capsys, "info", frames.parent)
    assert_one_line_error(status, err, intrinsics)


def test_s3dis_rooms_drop_nan_points_like_every_reader(tmp_path):
    room = tmp_path / "Area_1" / "office_1"
    (room / "Annotations").mkdir(parents=True)
    (room / "Annotations" / "chair_1.txt").write_text("1 2 nan 4 5 6\n1 2 3 4 5 6\n1 2 4 4 5 6\n")
    scene = read_scene(room)
    assert scene.num_points == 2 and scene.metadata["dropped_nan_points"] == 1
    (room / "Annotations" / "chair_1.txt").write_bytes(b"\xff\xfe\n")
    with pytest.raises(FormatError, match="chair_1.txt: malformed S3DIS annotation"):
        read_scene(room)
