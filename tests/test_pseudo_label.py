"""`labelfree3d pseudo-label`: dask workers (local and a real scheduler), cache, resume after SIGKILL, failures."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from labelfree3d.batch.pseudo_label import (
    MANIFEST_NAME,
    fingerprint_scan,
    parse_shard,
    pseudo_label,
    read_manifest,
    scan_files,
    select_shard,
)
from labelfree3d.cli.main import main
from labelfree3d.errors import ParameterError
from labelfree3d.io import read_prediction_metadata, read_predictions, read_scene
from labelfree3d.segment import SEGMENTERS, make_segmenter

ROOT = Path(__file__).resolve().parents[1]
SMALL_OSD = ["learn0.pcd", "learn1.pcd", "learn2.pcd"]  # the smallest learn clouds: 2 objects each


def cli_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labelfree3d", *args], capture_output=True, text=True, env=cli_env(), timeout=timeout
    )


def masks_of(path: Path):
    masks, _info = read_predictions(path)
    return masks


def assert_same_masks(actual, expected, where: str) -> None:
    assert actual.num_points == expected.num_points, where
    assert np.array_equal(actual.indptr, expected.indptr), where
    assert np.array_equal(actual.indices, expected.indices), where
    assert np.array_equal(actual.scores, expected.scores), where


def copy_scans(source: Path, names: list[str], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(source / name, folder / name)
    return folder


class CountSegmentCalls:
    """Counts `segment()` calls of every registered method in this process."""

    def __init__(self, monkeypatch):
        self.calls = 0
        for cls in {SEGMENTERS[name] for name in SEGMENTERS}:
            original = cls.segment

            def counted(segmenter, scene, _original=original):
                self.calls += 1
                return _original(segmenter, scene)

            monkeypatch.setattr(cls, "segment", counted)


# ---------------------------------------------------------------------- identical to sequential `segment`
# (method, listing entries, scans segmented): felzenszwalb on every kind of shared scan, plane_euclidean
# (the LiDAR default) on the tabletops and the sweeps. An entry "folder/*.ext:N" lists every N-th
# matching file (sorted): each scan is segmented twice, so all 45 + 14 clouds would take minutes. The
# raw ScanNet scene and the VoteNet export of the same scan are both named scene0000_00, so they go to
# separate output folders (one folder refuses the second: see the name test below). Separate cases so
# that pytest-xdist spreads them.
IDENTITY_CASES = {
    "felzenszwalb-clouds": ("felzenszwalb", ["osd/learn/*.pcd:5", "scannet-votenet/*_vert.npy:4", "7scenes"], 9 + 4),
    "felzenszwalb-raw": ("felzenszwalb", ["scannet/scene0000_00", "semantickitti"], 1 + 2),
    "plane_euclidean": ("plane_euclidean", ["osd/learn/*.pcd:4", "semantickitti", "7scenes"], 12 + 2),
}


def _listing_lines(data_dir: Path, entry: str) -> list[str]:
    """Paths an IDENTITY_CASES entry stands for."""
    if ":" not in entry:
        return [str(data_dir / entry)]
    pattern, stride = entry.rsplit(":", 1)
    folder, glob = pattern.rsplit("/", 1)
    return [str(p) for p in sorted((data_dir / folder).glob(glob))[:: int(stride)]]


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("case", sorted(IDENTITY_CASES))
def test_two_workers_give_the_masks_of_sequential_segment_runs(case, data_dir, tmp_path):
    """2 worker processes give the masks of `segment()` in this process, scan for scan."""
    method, entries, expected_count = IDENTITY_CASES[case]
    listing = tmp_path / "scans.txt"
    listing.write_text("".join(f"{line}\n" for entry in entries for line in _listing_lines(data_dir, entry)))
    run = pseudo_label(listing, method, tmp_path / "out", workers=2)
    assert run.workers == 2 and run.threads_per_worker == 1
    if "7scenes" in entries:  # RGB-D frames without points: not segmentable, recorded, the others go on
        assert [Path(r.input).name for r in run.failed] == ["7scenes"], [r.error for r in run.failed]
        assert "fuse" in run.failed[0].error and "\n" not in run.failed[0].error
    else:
        assert not run.failed, [r.error for r in run.failed]
    assert len(run.computed) == expected_count
    assert len({r.entry["worker"] for r in run.computed}) == 2  # both worker processes took scans
    for record in run.computed:
        scene = read_scene(record.input)
        expected = make_segmenter(method).segment(scene)
        assert_same_masks(masks_of(tmp_path / "out" / record.output), expected, f"{method} on {record.input}")
        assert record.scene == scene.name and record.masks == len(expected)


@pytest.mark.slow
@pytest.mark.realdata
def test_pseudo_label_on_a_dask_scheduler_with_two_worker_processes(osd_dir, tmp_path):
    """`dask scheduler` and two `dask worker` OS processes on loopback, the CLI with --scheduler."""
    dask = Path(sys.executable).with_name("dask")  # installed with distributed, a dependency
    command = [str(dask)]
    scheduler_file = tmp_path / "scheduler.json"
    env = cli_env()
    processes = [
        subprocess.Popen(
            [*command, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [*command, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--no-nanny",
                     "--no-dashboard", "--host", "127.0.0.1"],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        worker_pids = {f"pid {p.pid}" for p in processes[1:]}
        names = [f"learn{i}.pcd" for i in range(6)]
        data = copy_scans(osd_dir, names, tmp_path / "data")
        out = tmp_path / "out"
        result = run_cli("pseudo-label", str(data), "-m", "felzenszwalb", "-o", str(out), "--scheduler", address)
        assert result.returncode == 0, result.stderr
        manifest = read_manifest(out)
        used = {entry["worker"] for entry in manifest["scans"]}
        assert used and used <= worker_pids, (used, worker_pids)  # the scans ran in the worker processes
        assert manifest["runs"][-1]["workers"] == 2 and manifest["runs"][-1]["scheduler"] == address
        for name in names:
            expected = make_segmenter("felzenszwalb").segment(read_scene(data / name))
            assert_same_masks(masks_of(out / name.replace(".pcd", ".npz")), expected, name)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


# ---------------------------------------------------------------------- resume after kill -9
@pytest.mark.slow
@pytest.mark.realdata
def test_sigkill_mid_run_then_rerun_finishes_with_identical_outputs(osd_dir, tmp_path):
    names = [f"learn{i}.pcd" for i in range(8)]
    data = copy_scans(osd_dir, names, tmp_path / "data")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "labelfree3d", "pseudo-label", str(data), "-m", "felzenszwalb", "-o", str(out), "--workers", "2"]
    process = subprocess.Popen(command, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and len(list(out.glob("*.npz"))) < 2:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)  # the command, the dask scheduler and every worker
    process.wait()
    time.sleep(0.5)
    done_before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}
    assert 2 <= len(done_before) < len(names)
    for path in out.glob("*.npz"):  # whatever is there under an output's name is complete
        read_predictions(path)

    result = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(out)
    entries = {entry["scene"]: entry for entry in manifest["scans"]}
    assert sorted(entries) == sorted(n[:-4] for n in names)
    for name, mtime in done_before.items():
        entry = entries[name[:-4]]
        assert entry["status"] == "done" and entry["cached"] is True, entry  # skipped, not recomputed
        assert (out / name).stat().st_mtime_ns == mtime
    recomputed = [e for e in entries.values() if not e["cached"]]
    assert len(recomputed) == len(names) - len(done_before)
    assert manifest["runs"][-1]["cached"] == len(done_before)
    assert not list((out / ".pending").glob("*")) if (out / ".pending").exists() else True

    reference = pseudo_label(data, "felzenszwalb", tmp_path / "uninterrupted", workers=0)
    assert len(reference.computed) == len(names)
    for name in names:
        output = name.replace(".pcd", ".npz")
        assert_same_masks(masks_of(out / output), masks_of(tmp_path / "uninterrupted" / output), name)


# ---------------------------------------------------------------------- cache
@pytest.fixture
def small_folder(osd_dir, tmp_path):
    return copy_scans(osd_dir, SMALL_OSD, tmp_path / "data")


@pytest.mark.realdata
def test_second_run_does_no_segmentation_and_says_so(small_folder, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert main(["pseudo-label", str(small_folder), "-m", "plane_euclidean", "-o", str(out), "--workers", "1"]) == 0
    first = read_manifest(out)
    assert [e["status"] for e in first["scans"]] == ["done"] * 3 and not any(e["cached"] for e in first["scans"])
    for entry in first["scans"]:
        info = read_prediction_metadata(out / entry["output"])
        assert info["cache_key"] == entry["key"] and info["input"] == entry["input"]
        assert entry["checksum"].startswith("sha256:") and entry["masks"] >= 1 and entry["seconds"] > 0
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}
    capsys.readouterr()

    counter = CountSegmentCalls(monkeypatch)
    assert main(["pseudo-label", str(small_folder), "-m", "plane_euclidean", "-o", str(out), "--workers", "1"]) == 0
    assert counter.calls == 0
    assert "no segmentation was run" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")} == mtimes
    second = read_manifest(out)
    assert all(e["cached"] for e in second["scans"]) and second["runs"][-1]["cached"] == 3

    # the manifest lost (killed before its flush): outputs are recognised by their key, not recomputed
    (out / MANIFEST_NAME).unlink()
    run = pseudo_label(small_folder, "plane_euclidean", out, workers=0)
    assert counter.calls == 0 and len(run.cached) == 3

    # same content, new modification time: hashed again, still cached
    os.utime(small_folder / "learn1.pcd", ns=(time.time_ns(), time.time_ns()))
    run = pseudo_label(small_folder, "plane_euclidean", out, workers=0)
    assert counter.calls == 0 and len(run.cached) == 3


@pytest.mark.realdata
def test_changed_parameter_input_or_force_recompute(small_folder, osd_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    pseudo_label(small_folder, "plane_euclidean", out, workers=0)
    keys = {e["input"]: e["key"] for e in read_manifest(out)["scans"]}
    counter = CountSegmentCalls(monkeypatch)

    run = pseudo_label(small_folder, "plane_euclidean", out, {"min_cluster_points": 30}, workers=0)
    assert counter.calls == 3 and len(run.computed) == 3
    new_keys = {e["input"]: e["key"] for e in read_manifest(out)["scans"]}
    assert all(new_keys[k] != keys[k] for k in keys)
    assert read_manifest(out)["settings"] == {"min_cluster_points": 30}

    shutil.copyfile(osd_dir / "learn3.pcd", small_folder / "learn1.pcd")  # new content under an old name
    run = pseudo_label(small_folder, "plane_euclidean", out, {"min_cluster_points": 30}, workers=0)
    assert counter.calls == 4 and [Path(r.input).name for r in run.computed] == ["learn1.pcd"]
    expected = make_segmenter("plane_euclidean", min_cluster_points=30).segment(read_scene(osd_dir / "learn3.pcd"))
    assert_same_masks(masks_of(out / "learn1.npz"), expected, "learn1 with learn3's content")

    run = pseudo_label(small_folder, "plane_euclidean", out, {"min_cluster_points": 30}, workers=0, force=True)
    assert counter.calls == 4 + 1 + 3 and len(run.computed) == 3  # + 1: the reference segmentation above


@pytest.mark.realdata
def test_shards_split_the_list_and_share_one_manifest(osd_dir, tmp_path):
    data = copy_scans(osd_dir, [f"learn{i}.pcd" for i in range(5)], tmp_path / "data")
    out = tmp_path / "out"
    parts = [pseudo_label(data, "plane_euclidean", out, workers=0, shard=f"{i}/2") for i in range(2)]
    assert [Path(r.input).name for r in parts[0].records] == ["learn0.pcd", "learn2.pcd", "learn4.pcd"]
    assert [Path(r.input).name for r in parts[1].records] == ["learn1.pcd", "learn3.pcd"]
    manifest = read_manifest(out)
    assert sorted(e["scene"] for e in manifest["scans"]) == [f"learn{i}" for i in range(5)]
    assert [r["shard"] for r in manifest["runs"]] == ["0/2", "1/2"]
    assert len(pseudo_label(data, "plane_euclidean", out, workers=0).cached) == 5
    limited = pseudo_label(data, "plane_euclidean", tmp_path / "limited", workers=0, limit=2)
    assert [Path(r.input).name for r in limited.records] == ["learn0.pcd", "learn1.pcd"]


def test_shard_parsing_and_selection():
    assert parse_shard("3/8") == (3, 8) and parse_shard(None) is None
    for bad in ("8/8", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(ParameterError):
            parse_shard(bad)
    scans = [Path(f"s{i}") for i in range(10)]
    shards = [select_shard(scans, (i, 3)) for i in range(3)]
    assert sorted(sum(shards, []), key=lambda p: int(p.name[1:])) == scans


# ---------------------------------------------------------------------- failures
@pytest.mark.realdata
def test_corrupt_and_truncated_scans_are_named_and_the_rest_is_done(small_folder, osd_dir, tmp_path, capsys):
    (small_folder / "broken.pcd").write_bytes(os.urandom(4096))
    blob = (osd_dir / "learn3.pcd").read_bytes()
    (small_folder / "truncated.pcd").write_bytes(blob[: len(blob) // 3])
    (small_folder / "README.md").write_text("not a scan: skipped, not failed")
    out = tmp_path / "out"
    status = main(["pseudo-label", str(small_folder), "-m", "plane_euclidean", "-o", str(out), "--workers", "1"])
    captured = capsys.readouterr()
    assert status == 1
    failures = [line.strip() for line in captured.err.splitlines() if line.strip().startswith(str(small_folder))]
    assert sorted(Path(line.split(":")[0]).name for line in failures) == ["broken.pcd", "truncated.pcd"], captured.err
    assert "2 scan(s) failed" in captured.err
    manifest = read_manifest(out)
    status_of = {Path(e["input"]).name: e for e in manifest["scans"]}
    assert status_of["broken.pcd"]["status"] == status_of["truncated.pcd"]["status"] == "failed"
    assert all("\n" not in status_of[n]["error"] for n in ("broken.pcd", "truncated.pcd"))
    assert sorted(p.name for p in out.glob("*.npz")) == ["learn0.npz", "learn1.npz", "learn2.npz"]
    # failed scans are tried again, done ones are not
    run = pseudo_label(small_folder, "plane_euclidean", out, workers=0)
    assert len(run.cached) == 3 and len(run.failed) == 2


@pytest.mark.realdata
def test_two_scans_with_one_scene_name_do_not_overwrite_each_other(osd_dir, tmp_path):
    first = copy_scans(osd_dir, ["learn0.pcd"], tmp_path / "a")
    second = tmp_path / "b"
    second.mkdir()
    shutil.copyfile(osd_dir / "learn1.pcd", second / "learn0.pcd")
    listing = tmp_path / "scans.txt"
    listing.write_text(f"{first / 'learn0.pcd'}\n{second / 'learn0.pcd'}\n")
    run = pseudo_label(listing, "plane_euclidean", tmp_path / "out", workers=0)
    assert len(run.computed) == 1 and len(run.failed) == 1
    assert "also the name of" in run.failed[0].error and str(second / "learn0.pcd") in run.failed[0].error
    expected = make_segmenter("plane_euclidean").segment(read_scene(first / "learn0.pcd"))
    assert_same_masks(masks_of(tmp_path / "out" / "learn0.npz"), expected, "the first scan's output survives")


def test_bad_arguments_fail_with_one_line(tmp_path, capsys):
    from labelfree3d.io import write_scene
    from labelfree3d.synthetic import make_scene

    write_scene(make_scene("tabletop", 0), tmp_path / "scan.npz")
    for args, message in [
        (["--shard", "2/2"], "--shard 2/2"),
        (["--limit", "0"], "--limit must be >= 1"),
        (["--set", "no_such=1"], "no parameter"),
        (["-m", "nope"], "unknown method"),
    ]:
        method = [] if "-m" in args else ["-m", "plane_euclidean"]
        status = main(["pseudo-label", str(tmp_path / "scan.npz"), *method, "-o", str(tmp_path / "out"), *args])
        err = capsys.readouterr().err
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
    (tmp_path / "file").write_text("")
    assert main(["pseudo-label", str(tmp_path / "scan.npz"), "-m", "plane_euclidean", "-o", str(tmp_path / "file")]) == 2
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "out" / MANIFEST_NAME).write_text("{not json")
    assert main(["pseudo-label", str(tmp_path / "scan.npz"), "-m", "plane_euclidean", "-o", str(tmp_path / "out")]) == 2
    assert "manifest" in capsys.readouterr().err


@pytest.mark.realdata
def test_fingerprint_covers_a_scans_companion_files(scannet_votenet_dir, tmp_path):
    for suffix in ("vert", "ins_label", "sem_label", "bbox"):
        shutil.copy2(scannet_votenet_dir / f"scene0001_00_{suffix}.npy", tmp_path)
    vert = tmp_path / "scene0001_00_vert.npy"
    assert [p.name for p in scan_files(vert)] == [
        "scene0001_00_vert.npy", "scene0001_00_bbox.npy", "scene0001_00_ins_label.npy", "scene0001_00_sem_label.npy"
    ]  # fmt: skip
    before = fingerprint_scan(vert)
    labels = np.load(tmp_path / "scene0001_00_ins_label.npy")
    np.save(tmp_path / "scene0001_00_ins_label.npy", labels[::-1].copy())
    assert fingerprint_scan(vert) != before
