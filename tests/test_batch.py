"""The batch engine: which scans a path names, and `run_batch` in this process and on dask workers."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

from labelfree3d.batch import ScanResult, list_scans, one_line_error, resolve_workers, run_batch, thread_limits
from labelfree3d.errors import FormatError, InputError, ParameterError, UnknownFormatError
from labelfree3d.io import read_scene, write_scene
from labelfree3d.structures import InstanceMasks
from labelfree3d.synthetic import make_scene

OSD_CLOUDS = ["learn0.pcd", "learn1.pcd", "learn2.pcd"]  # the smallest clouds: 2 objects each


# ---------------------------------------------------------------------- tasks (module level: picklable)
def summarise(path):
    """Read the scan and return small things about it, including masks and the thread caps in force."""
    import numba
    import threadpoolctl
    import torch

    scene = read_scene(path)
    masks = InstanceMasks.from_labels(scene.gt.evaluated_ids())
    threads = {
        "blas": sorted({pool["num_threads"] for pool in threadpoolctl.threadpool_info()}),
        "numba": numba.get_num_threads(),
        "torch": torch.get_num_threads(),
        "env": os.environ.get("OMP_NUM_THREADS"),
    }
    return {
        "name": scene.name,
        "points": scene.num_points,
        "sum": float(np.nansum(scene.points)),
        "masks": masks,
    }, threads


def explode(path):
    raise ZeroDivisionError("the method divided by zero\nsecond line")


_SETUP_CALLS = []


def note_setup():
    _SETUP_CALLS.append(os.getpid())


def setup_calls(path):
    return len(_SETUP_CALLS)


# ---------------------------------------------------------------------- list_scans
def _votenet_export(folder, scene="scene0000_00", n=500):
    rng = np.random.default_rng(0)
    np.save(
        folder / f"{scene}_vert.npy", np.hstack([rng.random((n, 3)), rng.integers(0, 255, (n, 3))]).astype(np.float32)
    )
    np.save(folder / f"{scene}_ins_label.npy", rng.integers(0, 4, n).astype(np.uint32))
    np.save(folder / f"{scene}_sem_label.npy", rng.integers(0, 40, n).astype(np.uint32))
    np.save(folder / f"{scene}_bbox.npy", np.zeros((3, 7), np.float32))


def test_list_scans_folder_skips_non_scans_and_label_companions(tmp_path):
    _votenet_export(tmp_path)
    for seed in (10, 2):
        write_scene(make_scene("tabletop", seed), tmp_path / f"scan{seed}.npz")
    (tmp_path / "README.md").write_text("not a scan")
    (tmp_path / "merge.sh").write_text("#!/bin/sh\n")
    (tmp_path / "notes").mkdir()  # a sub-folder that is no scan: not searched
    (tmp_path / ".hidden.npz").write_bytes(b"")
    names = [p.name for p in list_scans(tmp_path)]
    assert names == ["scan2.npz", "scan10.npz", "scene0000_00_vert.npy"]  # natural order


def test_list_scans_single_scan_list_file_and_patterns(tmp_path, osd_dir, scannet_scene_dir):
    assert list_scans(scannet_scene_dir) == [scannet_scene_dir]  # a scene folder is one scan
    assert list_scans(osd_dir / "learn3.pcd") == [osd_dir / "learn3.pcd"]
    listing = tmp_path / "scans.txt"
    listing.write_text(
        f"# three clouds\n{osd_dir / 'learn1.pcd'}\n\n{osd_dir}/learn2*.pcd  # a pattern\n{scannet_scene_dir}\n"
    )
    found = list_scans(listing)
    assert found[0] == osd_dir / "learn1.pcd" and found[-1] == scannet_scene_dir
    assert [p.name for p in found[1:-1]] == ["learn2.pcd", *(f"learn{i}.pcd" for i in range(20, 30))]
    # relative lines are taken from the list's folder; duplicates collapse
    write_scene(make_scene("tabletop", 0), tmp_path / "a.npz")
    (tmp_path / "rel.txt").write_text("a.npz\na.npz\n")
    assert list_scans([tmp_path / "rel.txt", tmp_path / "a.npz"]) == [tmp_path / "a.npz"]


def test_list_scans_real_folders(data_dir, osd_dir):
    votenet = data_dir / "scannet-votenet"
    if votenet.is_dir():
        scans = list_scans(votenet)
        assert len(scans) == 14 and all(p.name.endswith("_vert.npy") for p in scans)
    kitti = list_scans(data_dir / "semantickitti")
    assert kitti and all("points" in p.name for p in kitti)
    assert len(list_scans(osd_dir)) == 45


def test_list_scans_errors_name_the_path(tmp_path):
    with pytest.raises(InputError, match="no such scan"):
        list_scans(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no scans"):
        list_scans(tmp_path / "empty")
    with pytest.raises(InputError, match="no scan matches"):
        list_scans(str(tmp_path / "*.ply"))
    (tmp_path / "list.txt").write_text("nothing_here.ply\n")
    with pytest.raises(InputError, match=r"list\.txt: line 1: no such scan"):
        list_scans(tmp_path / "list.txt")
    (tmp_path / "outer.txt").write_text("list.txt\n")
    with pytest.raises(InputError, match="may not name another list"):
        list_scans(tmp_path / "outer.txt")
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(UnknownFormatError, match=r"notes\.md"):
        list_scans(tmp_path / "notes.md")


# ---------------------------------------------------------------------- helpers
def test_resolve_workers_and_errors(monkeypatch):
    monkeypatch.setattr("labelfree3d.batch.engine.available_cores", lambda: 8)
    assert resolve_workers(None, None, 100) == (8, 1)
    assert resolve_workers(None, None, 2) == (2, 4)  # no idle workers; their cores go to threads
    assert resolve_workers(1, None, 100) == (0, None)  # one worker: in this process
    assert resolve_workers(0, 3, 100) == (0, 3)
    assert resolve_workers(4, 1, 100) == (4, 1)
    with pytest.raises(ParameterError):
        resolve_workers(-1, None, 3)
    with pytest.raises(ParameterError):
        resolve_workers(2, 0, 3)
    assert one_line_error(FormatError("truncated", "a.pcd"), "a.pcd") == "a.pcd: truncated"
    assert one_line_error(ValueError("bad\nmore"), "b.ply") == "b.ply: ValueError: bad"
    assert one_line_error(ParameterError("x must be > 0"), "c.ply") == "c.ply: x must be > 0"


def test_thread_limits_cap_and_restore():
    import numba
    from threadpoolctl import threadpool_info

    before = numba.get_num_threads()
    with thread_limits(1):
        assert numba.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert numba.get_num_threads() == before


# ---------------------------------------------------------------------- run_batch
@pytest.fixture(scope="module")
def scan_list(osd_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    corrupt = folder / "corrupt.pcd"
    corrupt.write_bytes(
        b"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 10\nHEIGHT 1\nPOINTS 10\nDATA binary\n\x00\x01"
    )
    return [osd_dir / OSD_CLOUDS[0], corrupt, *(osd_dir / name for name in OSD_CLOUDS[1:])]


@pytest.fixture(scope="module")
def in_process(scan_list):
    return run_batch(summarise, scan_list, workers=0)


@pytest.fixture(scope="module")
def on_workers(scan_list):
    arrived: list[ScanResult] = []
    run = run_batch(summarise, scan_list, workers=2, threads_per_worker=1, on_result=arrived.append, progress=True)
    return run, arrived


def test_in_process_records_the_corrupt_scan_and_goes_on(in_process, scan_list):
    assert in_process.workers == 0 and in_process.threads_per_worker is None
    assert [r.path for r in in_process.results] == scan_list
    failed = in_process.failed
    assert len(failed) == 1 and failed[0].index == 1
    assert failed[0].error.startswith(str(scan_list[1])) and "\n" not in failed[0].error
    assert failed[0].error_type in ("FormatError", "InputError") and "Traceback" in failed[0].traceback
    assert [v[0]["name"] for v in in_process.values()] == ["learn0", "learn1", "learn2"]
    assert all(r.worker == "in-process" for r in in_process.results)


def test_two_dask_workers_give_the_same_results(in_process, on_workers):
    run, arrived = on_workers
    assert run.workers == 2 and run.threads_per_worker == 1
    assert sorted(r.index for r in arrived) == [0, 1, 2, 3]  # every result reached on_result
    assert [r.ok for r in run.results] == [r.ok for r in in_process.results]
    assert run.results[1].error == in_process.results[1].error
    for here, there in zip(in_process.values(), run.values()):
        a, b = here[0], there[0]
        assert (a["name"], a["points"], a["sum"]) == (b["name"], b["points"], b["sum"])
        assert np.array_equal(a["masks"].indptr, b["masks"].indptr) and np.array_equal(
            a["masks"].indices, b["masks"].indices
        )
    assert {r.worker for r in run.results} - {"in-process"}  # worker pids, not this process
    assert all(r.worker != f"pid {os.getpid()}" for r in run.results)


def test_threads_are_capped_in_workers(on_workers):
    run, _ = on_workers
    for _, threads in run.values():
        assert threads == {"blas": [1], "numba": 1, "torch": 1, "env": "1"}


def test_task_exceptions_become_one_line_errors_and_setup_runs_once(osd_dir, tmp_path):
    scans = [osd_dir / name for name in OSD_CLOUDS]
    run = run_batch(explode, scans, workers=0)
    assert [r.error for r in run.results] == [
        f"{path}: ZeroDivisionError: the method divided by zero" for path in scans
    ]
    _SETUP_CALLS.clear()
    run = run_batch(setup_calls, scans, workers=0, setup=note_setup)
    assert run.values() == [1, 1, 1]
    run = run_batch(functools.partial(setup_calls), [], workers=2)
    assert run.results == [] and run.workers == 0
