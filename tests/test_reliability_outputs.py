"""Outputs never lose data or lie (issue #14): unwritable outputs, outputs that are inputs, devices
and pipes, interrupted multi-file outputs, training killed mid-checkpoint, damaged checkpoints
and prediction files.

CLI cases run the installed `labelfree3d` console script (or, where a fault must be injected at
an exact moment, the same `labelfree3d.cli.main.main` in a child process) with this checkout
first on the path.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import _learning
import numpy as np
import pytest
import yaml
from _console import console_script

from labelfree3d.errors import FormatError, InputError
from labelfree3d.io import read_predictions, read_scannet_benchmark, read_scene, write_predictions, write_scene
from labelfree3d.io.atomic import atomic_folder, atomic_path, check_output, write_text_atomic
from labelfree3d.io.predictions import write_scannet_benchmark
from labelfree3d.models.checkpoint import read_checkpoint
from labelfree3d.structures import InstanceMasks
from labelfree3d.synthetic import make_scene

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def _cli(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([console_script(), *map(str, args)], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _in_child(script: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run `script` (which ends by calling the CLI's main) in a fresh interpreter."""
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    combined = result.stdout + result.stderr
    assert result.returncode == 2, combined
    assert "Traceback" not in combined, combined
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, combined
    assert all(fragment in errors[0] for fragment in fragments), errors[0]
    return errors[0]


def _same_masks(a: InstanceMasks, b: InstanceMasks) -> bool:
    """Same point sets in the same order, same point count, scores equal to the 6 decimals text files keep."""
    return (
        a.num_points == b.num_points
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
        and np.allclose(a.scores, b.scores, atol=1e-6)
    )


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def room(scannet_votenet_dir, tmp_path_factory) -> Path:
    """A folder holding `room.npz` and `room.ply`: 6000 points of a real ScanNet room (VoteNet export)."""
    folder = tmp_path_factory.mktemp("room")
    scene = read_scene(scannet_votenet_dir / "scene0000_00_vert.npy")
    order = np.argsort(scene.points[:, 0] + scene.points[:, 1])  # one corner, so the crop holds whole objects
    corner = scene.subset(np.sort(order[:6000])).replace(name="room")
    write_scene(corner, folder / "room.npz")
    write_scene(corner, folder / "room.ply")
    return folder


@pytest.fixture(scope="module")
def room_masks(room) -> InstanceMasks:
    from labelfree3d.segment import make_segmenter

    masks = make_segmenter("felzenszwalb").segment(read_scene(room / "room.npz"))
    assert len(masks) >= 5
    return masks


@pytest.fixture
def work(room, tmp_path) -> Path:
    """A scratch folder with a copy of the room scans."""
    for name in ("room.npz", "room.ply"):
        shutil.copy2(room / name, tmp_path / name)
    return tmp_path


# ---------------------------------------------------------------------- unwritable outputs
# one command per kind of bad output, so that every command and every kind is covered cheaply
BAD_OUTPUTS = {
    "segment into an existing folder": (["segment", "room.npz", "--no-eval", "-o", "{folder}"], "{folder}", "is a folder"),
    "segment under /proc": (["segment", "room.npz", "--no-eval", "-o", "/proc/out.npz"], "/proc/out.npz", "cannot write the output"),
    "convert under a file": (["convert", "room.npz", "{file}/out.ply"], "{file}/out.ply", "cannot write the output"),
    "view --png into a folder": (["view", "room.npz", "-o", "room.html", "--png", "{folder}"], "{folder}", "is a folder"),
    "report under /proc": (["report", "room.npz", "--gt", "room.npz", "-o", "/proc/report.html"], "/proc/report.html", "cannot write"),
    "fuse into a folder": (["fuse", "room.ply", "-o", "{folder}"], "{folder}", "is a folder"),
    "train under /proc": (["train", "-c", "tiny.yaml", "-o", "/proc/run"], "/proc/run", "cannot write the output"),
    "predict under a file": (["predict", "room.npz", "--checkpoint", "model.safetensors", "-o", "{file}/p.npz"], "{file}/p.npz", "cannot write"),
}


@pytest.mark.parametrize("case", sorted(BAD_OUTPUTS))
def test_unwritable_outputs_fail_with_one_line_and_leave_nothing(case, work, tiny_run):
    args, named, problem = BAD_OUTPUTS[case]
    (work / "a_folder").mkdir()
    (work / "a_file").write_text("in the way\n")
    for name in ("tiny.yaml", "model.safetensors"):
        shutil.copy2(tiny_run / name, work / name)
    before = _listing(work)
    fill = {"folder": "a_folder", "file": "a_file"}
    result = _cli([arg.format(**fill) for arg in args], work)
    _assert_one_line_error(result, named.format(**fill), problem)
    assert _listing(work) == before  # no temporary file, no half-made folder


def test_read_only_folder_is_refused_with_one_line(work):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; /proc covers an unwritable folder for root")
    locked = work / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = _cli(["segment", "room.npz", "--no-eval", "-o", "locked/out.npz"], work)
        _assert_one_line_error(result, "locked/out.npz", "Permission denied")
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o755)


def test_a_missing_parent_folder_made_for_a_failed_write_is_removed(tmp_path):
    target = tmp_path / "new" / "deeper" / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the writer failed")
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------------- outputs that are inputs
@pytest.mark.parametrize(
    "args",
    [["segment", "room.npz", "--no-eval", "-o", "room.npz"], ["segment", "room.ply", "--no-eval", "-o", "./room.ply"],
     ["segment", "alias.npz", "--no-eval", "-o", "room.npz"], ["convert", "room.ply", "room.ply"]],  # fmt: skip
    ids=["segment npz", "segment ply", "segment through a symlink", "convert"],
)
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(args, work):
    (work / "alias.npz").symlink_to("room.npz")
    kept = {name: (work / name).read_bytes() for name in ("room.npz", "room.ply")}
    result = _cli(args, work)
    _assert_one_line_error(result, "the output is the input", "refusing to overwrite")
    assert {name: (work / name).read_bytes() for name in kept} == kept


def test_check_output_compares_files_not_spellings(tmp_path):
    scan = tmp_path / "scan.npz"
    scan.write_bytes(b"x")
    os.link(scan, tmp_path / "hard.npz")
    for spelling in (scan, tmp_path / "." / "scan.npz", tmp_path / "hard.npz"):
        with pytest.raises(InputError, match="the output is the input"):
            check_output(spelling, inputs=[scan])
    assert check_output(tmp_path / "other.npz", inputs=[scan, None]) == tmp_path / "other.npz"


# ---------------------------------------------------------------------- devices, pipes, links, sockets
def test_a_fifo_is_written_through_and_stays_a_fifo(tmp_path, room_masks):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_predictions(room_masks, fifo, scene_name="room")
    reader.join(timeout=60)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    copy = tmp_path / "received.npz"
    copy.write_bytes(received[0])
    masks, info = read_predictions(copy)
    assert _same_masks(masks, room_masks) and info["scene_name"] == "room"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.npz", "received.npz"]


def test_a_character_device_is_written_through_not_replaced(tmp_path):
    node = tmp_path / "null"  # a second node of /dev/null's device, so /dev/null itself is never at risk
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("creating a device node needs root (CAP_MKNOD)")
    write_text_atomic(node, "discarded\n")
    assert stat.S_ISCHR(os.lstat(node).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["null"]


def test_a_symlinked_output_keeps_its_link_and_replaces_the_target(tmp_path, room_masks):
    real = tmp_path / "real.npz"
    real.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(real.name)
    write_predictions(room_masks, link)
    assert link.is_symlink() and _same_masks(read_predictions(real)[0], room_masks)


def test_a_socket_is_refused(work):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(work / "out.sock"))
        result = _cli(["segment", "room.npz", "--no-eval", "-o", "out.sock", "--format", "npz"], work)
        _assert_one_line_error(result, "out.sock", "not a regular file")
        assert stat.S_ISSOCK(os.lstat(work / "out.sock").st_mode)
    finally:
        server.close()


# ---------------------------------------------------------------------- interrupted multi-file outputs
INTERRUPT_DURING_MASKS = """
import os, signal, sys
from pathlib import Path
from labelfree3d.cli.main import main
written = [0]
original = Path.write_bytes
def write_bytes(self, data):
    written[0] += 1
    if written[0] == 4:  # in the middle of the mask files: as Ctrl-C or `kill` would
        os.kill(os.getpid(), signal.{signal})
    return original(self, data)
Path.write_bytes = write_bytes
sys.exit(main(["segment", "room.npz", "--no-eval", "--format", "scannet", "-o", "bench"]))
"""


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_an_interrupted_scannet_folder_is_not_left_half_written(signal_name, work):
    before = _listing(work)
    result = _in_child(INTERRUPT_DURING_MASKS.format(signal=signal_name), work)
    assert result.returncode == 130, result.stdout + result.stderr
    assert "interrupted" in result.stderr and "Traceback" not in result.stderr
    assert _listing(work) == before  # no bench/, no staging folder


def test_the_scannet_folder_appears_whole_and_an_interrupted_update_keeps_the_old_one(tmp_path, room_masks, monkeypatch):
    bench = tmp_path / "bench"
    index = write_scannet_benchmark(room_masks, bench, "room")
    masks, _ = read_scannet_benchmark(index)
    assert _same_masks(masks, room_masks)
    before = {p: p.read_bytes() for p in bench.rglob("*") if p.is_file()}

    calls = [0]
    original = Path.write_bytes

    def interrupted(self, data):
        calls[0] += 1
        if calls[0] == 2:  # the second of the two mask files
            raise KeyboardInterrupt
        return original(self, data)

    monkeypatch.setattr(Path, "write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_scannet_benchmark(room_masks.select([0, 1]), bench, "room")
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in bench.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench"]
    # a finished rerun with fewer masks replaces the scene and drops its masks the new index does not name
    write_scannet_benchmark(room_masks.select([0, 1]), bench, "room")
    assert len(list((bench / "predicted_masks").iterdir())) == 2
    assert _same_masks(read_scannet_benchmark(index)[0], room_masks.select([0, 1]))


def test_atomic_folder_refuses_a_file_and_cleans_up_on_error(tmp_path):
    (tmp_path / "taken").write_text("a file\n")
    with pytest.raises(InputError, match="not a folder"):
        with atomic_folder(tmp_path / "taken"):
            pass
    with pytest.raises(ValueError):
        with atomic_folder(tmp_path / "fresh") as staging:
            (staging / "part.txt").write_text("half")
            raise ValueError("writer failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


# ---------------------------------------------------------------------- training killed mid-checkpoint
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """Two synthetic tabletops as .npz scans and a tiny training config over them (as tests/test_train_ddp_cli.py)."""
    root = tmp_path_factory.mktemp("train")
    (root / "scans").mkdir()
    for seed in range(2):
        write_scene(make_scene("tabletop", seed), root / "scans" / f"tabletop_{seed}.npz")
    config = {
        "model": _learning.tiny_spec(),
        "data": {"train": [str(root / "scans")], "val": []},
        "optim": {"lr": 3e-3, "max_steps": 3, "batch_size": 1},
        "device": "cpu",
        "cpu_threads": 1,
        "progress": False,
        "log_every": 1,
        "checkpoint_every": 1,
        "keep_checkpoints": 2,
        "output_dir": "run",
    }
    (root / "tiny.yaml").write_text(yaml.safe_dump(config))
    from labelfree3d.models.checkpoint import save_checkpoint
    from labelfree3d.models.registry import build_model

    save_checkpoint(root / "model.safetensors", build_model(_learning.tiny_spec()))  # untrained weights: enough to predict
    return root


KILL_DURING_SECOND_CHECKPOINT = """
import os, signal, sys
import safetensors.torch
from labelfree3d.cli.main import main
saved = [0]
original = safetensors.torch.save_file
def save_file(tensors, filename, metadata=None):
    saved[0] += 1
    if saved[0] == 2:  # step 2's checkpoint: half the bytes on disk, then the power goes
        blob = safetensors.torch.save(tensors, metadata=metadata)
        with open(filename, "wb") as handle:
            handle.write(blob[: len(blob) // 2])
            handle.flush()
            os.fsync(handle.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return original(tensors, filename, metadata=metadata)
safetensors.torch.save_file = save_file
sys.exit(main(["train", "-c", "tiny.yaml"]))
"""


def test_training_killed_while_writing_a_checkpoint_resumes_from_the_last_complete_one(tiny_run, tmp_path):
    for name in ("tiny.yaml", "scans"):
        os.symlink(tiny_run / name, tmp_path / name)
    killed = _in_child(KILL_DURING_SECOND_CHECKPOINT, tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    checkpoints = tmp_path / "run" / "checkpoints"
    assert len(list(checkpoints.glob(".last.*.tmp.safetensors"))) == 1  # the kill did land inside the write
    assert read_checkpoint(checkpoints / "last.safetensors").trainer_state["step"] == 1
    assert [read_checkpoint(p).trainer_state["step"] for p in checkpoints.glob("step_*.safetensors")] == [1]

    resumed = _cli(["train", "-c", "tiny.yaml", "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming run at step 1 of 3" in resumed.stderr
    assert read_checkpoint(checkpoints / "last.safetensors").trainer_state["step"] == 3
    # the half-written temporary is gone; the kept numbered checkpoints are complete
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.safetensors", "step_0000002.safetensors", "step_0000003.safetensors"]


FIT_SETTINGS = [
    "pseudo.method=felzenszwalb", "m0_min_score=0.0", "cycles=1", "train.set.model.input.voxel_size=0.04",
    "train.set.model.decoder.num_queries=8", "train.set.model.decoder.num_decoders=1", "train.set.optim.max_steps=3",
    "train.set.checkpoint_every=1", "train.set.cpu_threads=1",
]  # fmt: skip
FIT_ARGS = ["fit", "scans", "-r", "unscene3d", "-o", "fit_run", "--workers", "1", "--device", "cpu",
            *[arg for pair in FIT_SETTINGS for arg in ("--set", pair)]]  # fmt: skip


def test_fit_killed_while_writing_a_checkpoint_resumes_its_training_stage_from_the_last_complete_one(tiny_run, tmp_path):
    os.symlink(tiny_run / "scans", tmp_path / "scans")
    script = KILL_DURING_SECOND_CHECKPOINT.replace('["train", "-c", "tiny.yaml"]', repr(FIT_ARGS))
    killed = _in_child(script, tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    stage = tmp_path / "fit_run" / "01_cycle1_train"
    checkpoints = stage / "checkpoints"
    assert len(list(checkpoints.glob(".last.*.tmp.safetensors"))) == 1  # killed inside the write of step 2
    assert read_checkpoint(checkpoints / "last.safetensors").trainer_state["step"] == 1
    assert (tmp_path / "fit_run" / "00_pseudo" / "done.json").is_file() and not (stage / "done.json").exists()

    resumed = _cli(FIT_ARGS, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert read_checkpoint(checkpoints / "last.safetensors").trainer_state["step"] == 3
    assert json.loads((stage / "done.json").read_text())["summary"]["steps"] == 3
    assert not list(checkpoints.glob(".*.tmp.*")) and (tmp_path / "fit_run" / "model.safetensors").is_file()


def test_cpu_training_with_the_same_seed_repeats_exactly(tiny_run, tmp_path):
    """Two CPU runs of the same config (seed, data, one thread) end with bit-identical weights."""
    import torch

    for name in ("tiny.yaml", "scans"):
        os.symlink(tiny_run / name, tmp_path / name)
    weights = []
    for run in ("first", "second"):
        done = _cli(["train", "-c", "tiny.yaml", "-o", run], tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        weights.append(read_checkpoint(tmp_path / run / "checkpoints" / "last.safetensors").model_state)
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


# ---------------------------------------------------------------------- damaged checkpoints and predictions
def _damaged_copies(source: Path, folder: Path) -> dict[str, Path]:
    data = source.read_bytes()
    middle = 2 * len(data) // 3  # inside the payload (tensor bytes, compressed members)
    variants = {
        "truncated": data[: len(data) // 2],
        "one byte short": data[:-1],
        "one bit flipped": data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :],
    }
    paths = {}
    for name, blob in variants.items():
        paths[name] = folder / f"{name.replace(' ', '_')}{source.suffix}"
        paths[name].write_bytes(blob)
    return paths


def test_damaged_checkpoints_are_refused_in_one_line(tiny_run, tmp_path, room):
    from labelfree3d.models.checkpoint import save_checkpoint
    from labelfree3d.models.registry import build_model

    good = save_checkpoint(tmp_path / "model.safetensors", build_model(_learning.tiny_spec()))
    for name, path in _damaged_copies(good, tmp_path).items():
        with pytest.raises(FormatError, match="checkpoint is truncated or corrupt"):
            read_checkpoint(path)
    shutil.copy2(room / "room.npz", tmp_path / "room.npz")
    result = _cli(["predict", "room.npz", "--checkpoint", "one_bit_flipped.safetensors", "-o", "out.npz"], tmp_path)
    _assert_one_line_error(result, "one_bit_flipped.safetensors", "checkpoint is truncated or corrupt")
    assert not (tmp_path / "out.npz").exists()


def test_resume_falls_back_to_the_newest_complete_checkpoint_and_says_when_there_is_none(tmp_path):
    from labelfree3d.train import TrainConfig, Trainer
    from labelfree3d.train.distributed import DistributedContext

    config = TrainConfig.from_dict({
        "model": _learning.tiny_spec(), "optim": {"max_steps": 2, "batch_size": 1}, "output_dir": str(tmp_path / "run"),
        "device": "cpu", "progress": False, "checkpoint_every": 1, "keep_checkpoints": 2,
    })  # fmt: skip
    scenes = [make_scene("tabletop", 0)]
    Trainer.from_scenes(config, scenes, "gt", context=DistributedContext()).fit()
    checkpoints = tmp_path / "run" / "checkpoints"
    last = checkpoints / "last.safetensors"
    last.write_bytes(last.read_bytes()[:-1000])  # damaged after the fact, e.g. a copy cut short
    restarted = Trainer.from_scenes(config, scenes, "gt", context=DistributedContext())
    assert restarted.resume() and restarted.step == 2
    assert restarted.resumed_from == checkpoints / "step_0000002.safetensors"
    assert "last.safetensors: checkpoint is truncated or corrupt" in restarted.resume_note
    for path in checkpoints.glob("*.safetensors"):
        path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(FormatError, match="truncated or corrupt.*no earlier complete checkpoint"):
        Trainer.from_scenes(config, scenes, "gt", context=DistributedContext()).resume()


def test_damaged_prediction_files_are_refused_in_one_line(work, room_masks):
    good = write_predictions(room_masks, work / "pred.npz", scene_name="room")
    damaged = _damaged_copies(good, work)
    for path in damaged.values():
        with pytest.raises(FormatError, match="not a readable .npz prediction file: truncated or corrupt"):
            read_predictions(path)
    for path in damaged.values():
        result = _cli(["evaluate", path.name, "room.npz"], work)
        _assert_one_line_error(result, path.name, "not a readable .npz prediction file")
