"""`labelfree3d segment` and `labelfree3d methods` end to end, and the library helpers behind them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import plyfile
import pytest

from labelfree3d.errors import ParameterError
from labelfree3d.io import read_predictions, read_scannet_benchmark, read_scene
from labelfree3d.io.segmentation_output import segmentation_format_for, write_segmentation
from labelfree3d.segment import describe_methods, segment_file
from labelfree3d.segment.run import default_output_path
from labelfree3d.synthetic import make_scene

ROOT = Path(__file__).resolve().parents[1]
OSD_CLOUD = "learn0.pcd"  # the smallest learn cloud: 2 objects on a table


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m labelfree3d ARGS` with this checkout first on the path."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "labelfree3d", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def osd_scene(osd_dir):
    return read_scene(osd_dir / OSD_CLOUD)


def test_segment_cli_writes_npz_with_metrics(osd_dir, osd_scene, tmp_path):
    out = tmp_path / "pred.npz"
    result = run_cli(
        "segment", str(osd_dir / OSD_CLOUD), "--method", "dbscan",
        "--set", "voxel_size=0.01", "--set", "eps=0.02", "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    masks, info = read_predictions(out)
    assert masks.num_points == osd_scene.num_points
    assert info == {"scene_name": "learn0", "method": "dbscan"}
    assert len(masks) >= 2 and np.ptp(masks.scores) > 0
    assert "dbscan found" in result.stdout and "AP50" in result.stdout and str(out) in result.stdout


def test_segment_cli_writes_scannet_folder(osd_dir, osd_scene, tmp_path):
    # few large segments only: the benchmark layout writes one text line per point and mask
    result = run_cli(
        "segment", str(osd_dir / OSD_CLOUD), "-m", "felzenszwalb", "--set", "min_segment_points=3000", "--format", "scannet",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    index = tmp_path / "learn0_felzenszwalb_scannet" / "learn0.txt"  # default output: named after the input, here
    masks, label_ids = read_scannet_benchmark(index)
    assert masks.num_points == osd_scene.num_points
    assert len(masks) >= 2 and np.all(label_ids == 1) and np.all(masks.sizes >= 3000)
    assert np.ptp(masks.scores) > 0


def test_segment_cli_writes_coloured_ply(osd_dir, osd_scene, tmp_path):
    out = tmp_path / "seg.ply"
    result = run_cli(
        "segment", str(osd_dir / OSD_CLOUD), "--method", "felzenszwalb", "--set", "k_thresh=0.1", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    vertex = plyfile.PlyData.read(str(out))["vertex"]
    assert vertex.count == osd_scene.num_points
    instance = np.asarray(vertex["instance"])
    assert instance.max() >= 1 and np.asarray(vertex["score"]).max() > 0
    # points of one instance share one colour
    colours = np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1)
    first = instance == instance[0]
    assert np.unique(colours[first], axis=0).shape[0] == 1


def test_segment_cli_bad_settings_fail_cleanly(osd_dir, tmp_path):
    out = tmp_path / "never.npz"
    result = run_cli("segment", str(osd_dir / OSD_CLOUD), "-m", "dbscan", "--set", "eps=-1", "-o", str(out))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: dbscan.eps must be in (0.0, 100.0], got -1.0"
    assert not out.exists() and list(tmp_path.iterdir()) == []
    result = run_cli("segment", str(osd_dir / OSD_CLOUD), "-m", "nosuchmethod")
    assert result.returncode == 2 and "available:" in result.stderr and "dbscan" in result.stderr


def test_methods_cli_lists_parameters_and_score_rules():
    result = run_cli("methods", "--json")
    assert result.returncode == 0, result.stderr
    described = {entry["name"]: entry for entry in json.loads(result.stdout)}
    for name in ("hdbscan", "dbscan", "kmeans", "birch", "felzenszwalb", "plane_euclidean"):
        assert described[name]["score_rule"]
    dbscan = {p["name"]: p for p in described["dbscan"]["parameters"]}
    assert dbscan["eps"] == {"name": "eps", "type": "float", "default": 0.05}
    assert {p["name"]: p["default"] for p in described["kmeans"]["parameters"]}["n_clusters"] == 10
    text = run_cli("methods")
    assert text.returncode == 0 and "felzenszwalb" in text.stdout and "score:" in text.stdout


def test_segment_file_library_helper(tmp_path, monkeypatch):
    scene = make_scene("tabletop", seed=1)
    source = tmp_path / "in" / "table.npz"
    from labelfree3d.io import write_scene

    write_scene(scene, source)
    monkeypatch.chdir(tmp_path)
    run = segment_file(source, "dbscan", {"voxel_size": 0.01, "eps": "0.02"})
    assert run.output == Path("tabletop_0001_dbscan.npz") and run.output.exists()  # named after the scene, here
    assert run.parameters["eps"] == 0.02 and run.metrics is not None and run.metrics["ap25"] > 0.5
    assert default_output_path("s", "m", "scannet") == Path("s_m_scannet")
    with pytest.raises(ParameterError, match="unknown method"):
        segment_file(source, "nope")
    with pytest.raises(ParameterError, match="ends in .ply"):
        segment_file(source, "dbscan", output=tmp_path / "x.ply", format="npz")


def test_segmentation_format_dispatch(tmp_path):
    assert segmentation_format_for("a.ply") == "ply"
    assert segmentation_format_for("a.NPZ") == "npz"
    assert segmentation_format_for("folder") == "npz"
    assert segmentation_format_for("folder", "scannet") == "scannet"
    assert segmentation_format_for(None) == "npz"
    with pytest.raises(ParameterError, match="unknown segmentation format"):
        segmentation_format_for("a.npz", "obj")
    scene = make_scene("tabletop", seed=2)
    from labelfree3d.structures import InstanceMasks

    masks = InstanceMasks.from_labels(scene.gt.instance_ids, np.linspace(0.1, 0.9, scene.gt.num_instances))
    written = write_segmentation(scene, masks, tmp_path / "bench", "scannet")
    back, _ = read_scannet_benchmark(written)
    assert back.to_sparse().nnz == masks.to_sparse().nnz and np.allclose(back.scores, masks.scores, atol=1e-6)


def test_describe_methods_matches_registry():
    described = describe_methods()
    names = [entry["name"] for entry in described]
    assert names == sorted(names)
    hdbscan = next(entry for entry in described if entry["name"] == "hdbscan")
    defaults = {p["name"]: p["default"] for p in hdbscan["parameters"]}
    assert defaults["min_samples"] == 5 and defaults["cluster_selection_method"] == "eom"


def test_segment_without_method_picks_one_by_kind_of_scan(osd_dir, scannet_votenet_dir, tmp_path):
    from labelfree3d.segment import DEFAULT_METHODS, default_method
    from labelfree3d.segment.structure import scan_kind

    room = read_scene(scannet_votenet_dir / "scene0001_00_vert.npy")
    assert scan_kind(room) == "room_cloud" and default_method(room) == DEFAULT_METHODS["room_cloud"]
    lidar = make_scene("room", seed=0)
    lidar.metadata["format"] = "semantickitti"
    assert scan_kind(lidar) == "lidar_sweep"
    out = tmp_path / "pred.npz"
    result = run_cli("segment", str(osd_dir / OSD_CLOUD), "-o", str(out))
    assert result.returncode == 0, result.stderr
    _, info = read_predictions(out)
    assert info["method"] == DEFAULT_METHODS["tabletop_frame"]
    assert f"{DEFAULT_METHODS['tabletop_frame']} found" in result.stdout and "AP50" in result.stdout
