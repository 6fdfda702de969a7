"""Memory and scale: requests that cannot fit are refused up front with a setting that fits,
degenerate clouds give one-line fuse errors, and long segmentation steps report what they do."""

from __future__ import annotations

import re

import numpy as np
import pytest

from labelfree3d.cli.main import main
from labelfree3d.errors import ParameterError
from labelfree3d.io import read_scene
from labelfree3d.lift.fusion import TSDFFusion, _touched_blocks
from labelfree3d.memory import (
    BUDGET_VARIABLE,
    MemoryBudgetError,
    available_memory,
    current_rss,
    memory_budget,
    parse_size,
)
from labelfree3d.segment import make_segmenter
from labelfree3d.segment.memory import check_segment_memory, estimate_segment_memory, working_points


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- the budget -------------------------------------------------------------------------------


def test_budget_sizes_parse_in_binary_units_and_bad_ones_name_the_variable(monkeypatch):
    assert parse_size("8G") == 8 * 2**30
    assert parse_size("512 MB") == 512 * 2**20
    assert parse_size("1.5GiB") == int(1.5 * 2**30)
    assert parse_size("1000000") == 1_000_000
    monkeypatch.setenv(BUDGET_VARIABLE, "lots")
    with pytest.raises(ParameterError, match=BUDGET_VARIABLE):
        memory_budget()
    monkeypatch.setenv(BUDGET_VARIABLE, "off")
    assert memory_budget()[0] is None


def test_without_psutil_the_budget_comes_from_proc_meminfo(monkeypatch):
    monkeypatch.delenv(BUDGET_VARIABLE, raising=False)
    monkeypatch.setitem(__import__("sys").modules, "psutil", None)  # import psutil now raises ImportError
    available = available_memory()
    assert available is not None and available > 0
    budget, source = memory_budget()
    assert budget is not None and budget > available * 0.9 and "available" in source


# --- fuse: refused up front ------------------------------------------------------------------


def test_fuse_with_a_tiny_voxel_on_7scenes_is_refused_before_fusing_with_a_voxel_that_fits(
    sevenscenes_dir, tmp_path, capsys, monkeypatch
):
    # the budget is a peak RSS: give this process 1.5 GB more than it holds, whatever ran before
    headroom = 1.5 * 2**30
    monkeypatch.setenv(BUDGET_VARIABLE, str(int(current_rss() + headroom)))
    output = tmp_path / "mesh.ply"
    code, out, err = run(capsys, "fuse", sevenscenes_dir, "--voxel", "0.0001", "--frame-stride", "10", "-o", output)
    line = one_error_line(err)
    assert code == 2 and not output.exists()
    assert "needs about" in line and "more than the budget" in line and BUDGET_VARIABLE in line
    suggested = float(re.search(r"--voxel ([0-9.e-]+) or larger would fit", line).group(1))
    assert 0.0001 < suggested <= 0.08
    # the suggestion is honest: its estimate fits the headroom, a clearly finer edge's does not
    frames = read_scene(sevenscenes_dir).frames[::10]
    slack = 100 * 2**20  # this process's RSS moves a little between the two checks
    assert TSDFFusion(voxel_length=suggested).estimate_memory(frames).bytes <= headroom + slack
    assert TSDFFusion(voxel_length=0.7 * suggested).estimate_memory(frames).bytes > headroom - slack


def test_fuse_says_when_no_voxel_edge_fits(sevenscenes_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(BUDGET_VARIABLE, str(int(current_rss() + 10 * 2**20)))
    code, _, err = run(capsys, "fuse", sevenscenes_dir, "--frame-stride", "50", "-o", tmp_path / "mesh.ply")
    line = one_error_line(err)
    assert code == 2 and "no voxel up to the truncation distance fits" in line and "--frame-stride" in line


def test_the_block_estimate_replays_open3d_allocation_exactly(sevenscenes_dir):
    import open3d as o3d
    import open3d.core as o3c

    from labelfree3d.lift.camera import world_to_camera

    frames = read_scene(sevenscenes_dir).frames[::50]
    for voxel in (0.04, 0.01):
        fusion = TSDFFusion(voxel_length=voxel, color=False)
        for frame in frames:
            grid = o3d.t.geometry.VoxelBlockGrid(
                ["tsdf", "weight"], [o3c.float32, o3c.float32], [1, 1], voxel, 16, 1000, o3c.Device("CPU:0")
            )
            blocks = grid.compute_unique_block_coordinates(
                o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(frame.depth, dtype=np.float32))),
                o3c.Tensor(frame.intrinsics, o3c.float64),
                o3c.Tensor(world_to_camera(frame.camera_to_world), o3c.float64),
                1.0,
                fusion.max_depth,
                fusion.sdf_trunc / voxel,
            )
            predicted = _touched_blocks(fusion._frame_rays([frame]), voxel * 16, fusion.sdf_trunc, fusion.max_depth, 1)
            assert abs(predicted - blocks.shape[0]) <= 0.01 * blocks.shape[0], (voxel, predicted, blocks.shape[0])


# --- fuse: degenerate clouds -----------------------------------------------------------------


@pytest.mark.parametrize(
    "points, problem",
    [
        (np.ones((50, 3)), "all coincide"),
        (np.linspace(0, 1, 50)[:, None] * np.array([[1.0, 2.0, 3.0]]), "lie on one line"),
    ],
    ids=["identical", "collinear"],
)
def test_fuse_on_points_without_a_surface_is_one_line(points, problem, tmp_path, capsys):
    source = tmp_path / "degenerate.npy"
    np.save(source, points.astype(np.float32))
    output = tmp_path / "mesh.ply"
    code, _, err = run(capsys, "fuse", source, "-o", output)
    line = one_error_line(err)
    assert code == 2 and problem in line and "degenerate.npy" in line and not output.exists()


def test_fuse_meshes_a_flat_cloud(tmp_path, capsys):
    rng = np.random.default_rng(0)
    source = tmp_path / "flat.npy"
    np.save(source, np.c_[rng.random((400, 2)), np.zeros(400)].astype(np.float32))
    code, out, err = run(capsys, "fuse", source, "-o", tmp_path / "flat.ply")
    assert code == 0, err
    mesh = read_scene(tmp_path / "flat.ply")
    assert mesh.is_mesh and np.ptp(mesh.points[:, 2]) < 0.05


# --- segment: refused up front ---------------------------------------------------------------


def test_segment_past_an_overridden_budget_is_refused_with_a_voxel_size_that_fits(osd_dir, tmp_path, capsys, monkeypatch):
    scan = osd_dir / "learn0.pcd"
    headroom = 350 * 2**20  # the imports (250 MB) and the scan fit, clustering all 182,292 points does not
    monkeypatch.setenv(BUDGET_VARIABLE, str(int(current_rss() + headroom)))
    output = tmp_path / "masks.npz"
    code, _, err = run(capsys, "segment", scan, "-m", "hdbscan", "--set", "voxel_size=0", "-o", output)
    line = one_error_line(err)
    assert code == 2 and not output.exists()
    assert "hdbscan on 182,292 points" in line and "more than the budget" in line
    suggested = float(re.search(r"--set voxel_size=([0-9.e-]+) or larger would fit", line).group(1))
    # the suggested voxel's estimate fits the same headroom, on the same scan
    scene = read_scene(scan)
    fitting = make_segmenter("hdbscan", voxel_size=suggested)
    slack = 30 * 2**20
    assert estimate_segment_memory(fitting, scene) <= headroom + slack
    assert working_points(fitting, scene) < scene.num_points
    assert estimate_segment_memory(make_segmenter("hdbscan", voxel_size=0.0), scene) > headroom


def test_a_scan_too_large_for_any_voxel_says_so(osd_dir, monkeypatch):
    scene = read_scene(osd_dir / "learn0.pcd")
    monkeypatch.setenv(BUDGET_VARIABLE, "1M")
    with pytest.raises(MemoryBudgetError, match="the scan alone needs more"):
        check_segment_memory(make_segmenter("felzenszwalb"), scene)


# --- progress on long steps ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["hdbscan", "dbscan"])
def test_segment_reports_each_long_step_on_stderr(method, osd_dir, tmp_path, capsys, monkeypatch):
    import labelfree3d.cli.common

    # in logs a step's line waits STATUS_LINE_DELAY_S; these steps are quicker, so show them all
    monkeypatch.setattr(labelfree3d.cli.common, "STATUS_LINE_DELAY_S", 0.0)
    code, out, err = run(capsys, "segment", osd_dir / "learn3.pcd", "-m", method, "-o", tmp_path / "m.npz", "--no-eval")
    assert code == 0, err
    steps = [line for line in err.splitlines() if re.match(r"^\[\s*\d+\.\d s\] ", line)]
    text = "\n".join(steps)
    assert "reading learn3.pcd" in text
    assert "finding floor, walls and ceiling" in text
    assert re.search(rf"{method}: clustering [\d,]+ voxels of [\d.]+ cm", text)
    assert "writing" in text
    assert "masks in" in out  # results stay on stdout
