"""`evaluate_paths` on the batch engine: per-scan tasks, merged evaluators, errors, ScanNet's GT txt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import labelfree3d
from labelfree3d import FormatError, InputError, InstanceMasks
from labelfree3d.cli.main import main
from labelfree3d.evaluate import evaluate_scenes
from labelfree3d.evaluate.inputs import evaluate_paths, ground_truth_sources, prediction_files
from labelfree3d.io import read_scene, write_predictions, write_scannet_benchmark, write_scannet_gt_txt

# AP, AP50, AP25 of scene0000_00's 668 official superpoints, constant score, against its raw
# ground truth (tests/test_evaluate_scannet.py; the same numbers as ScanNet's script)
SUPERPOINTS_CONSTANT = (0.08893620682238568, 0.2611304684475416, 0.42663569492837783)
METRICS = ("ap", "ap50", "ap25", "pq", "sq", "rq", "ari")


def _noisy_masks(gt, rng, keep=0.8):
    """GT instances with points dropped, plus a few random blobs, with random scores."""
    masks = [
        np.flatnonzero((gt.instance_ids == k) & (rng.random(gt.num_points) < keep)) for k in range(gt.num_instances)
    ]
    masks += [rng.choice(gt.num_points, 300, replace=False) for _ in range(3)]
    masks = [m for m in masks if m.size]
    return InstanceMasks.from_index_lists(masks, np.round(rng.random(len(masks)), 3), gt.num_points)


@pytest.fixture(scope="module")
def votenet_predictions(tmp_path_factory, scannet_votenet_dir):
    """Noisy-GT predictions for 10 of the 14 VoteNet scans (the other 4 are skipped)."""
    folder = tmp_path_factory.mktemp("votenet_pred")
    rng = np.random.default_rng(0)
    scans = sorted(scannet_votenet_dir.glob("*_vert.npy"))
    expected_masks, expected_gt = {}, {}
    for scan in scans[:10]:
        scene = read_scene(scan)
        masks = _noisy_masks(scene.gt, rng)
        write_predictions(masks, folder / f"{scene.name}.npz", scene_name=scene.name)
        expected_masks[scene.name], expected_gt[scene.name] = masks, scene.gt
    return folder, expected_masks, expected_gt, [read_scene(s).name for s in scans[10:]]


def test_in_process_and_two_workers_give_the_numbers_of_one_evaluator(votenet_predictions, scannet_votenet_dir):
    folder, masks, gts, skipped = votenet_predictions
    expected = evaluate_scenes(masks, gts)
    alone = evaluate_paths(folder, scannet_votenet_dir, workers=0)
    spread = evaluate_paths(folder, scannet_votenet_dir, workers=2, threads_per_worker=1)
    for report in (alone, spread):
        assert report["counts"]["scenes"] == 10 and sorted(report["skipped_gt_scenes"]) == sorted(skipped)
        assert list(report["per_scene"]) == sorted(masks)  # merged in scan order
        for key in METRICS:
            assert report[key] == expected[key], key
        assert report["hungarian"] == expected["hungarian"]
    assert alone["per_scene"] == spread["per_scene"]


def test_the_main_process_reads_no_masks(votenet_predictions, scannet_votenet_dir):
    folder, masks, _, _ = votenet_predictions
    files = prediction_files(folder)
    assert list(files) == sorted(masks) and all(p.suffix == ".npz" for p in files.values())
    sources = ground_truth_sources(scannet_votenet_dir)
    assert len(sources) == 14 and all(fmt is None for _, fmt in sources)


def test_a_failing_scan_stops_the_evaluation_with_its_error(tmp_path, votenet_predictions, scannet_votenet_dir):
    folder, masks, _, _ = votenet_predictions
    names = sorted(masks)[:4]
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in names:
        (broken / f"{name}.npz").symlink_to(folder / f"{name}.npz")
    not_zip = broken / f"{names[1]}.npz"
    not_zip.unlink()
    not_zip.write_bytes(b"not a zip")  # its scene name cannot be read: an error before any task runs
    with pytest.raises(FormatError, match=f"{not_zip}: not a readable .npz"):
        evaluate_paths(broken, scannet_votenet_dir, workers=0)
    not_zip.unlink()
    write_predictions(InstanceMasks.empty(10), not_zip, scene_name=names[1])  # empty: fits any scene
    # two scans whose predictions cover the wrong number of points: the first in scan order is
    # raised, whether the scans ran here or on two workers
    for name in names[2:]:
        (broken / f"{name}.npz").unlink()
        write_predictions(masks[name].restrict(np.arange(100)), broken / f"{name}.npz", scene_name=name)
    for workers in (0, 2):
        with pytest.raises(InputError) as caught:
            evaluate_paths(broken, scannet_votenet_dir, workers=workers)
        message = str(caught.value)
        assert message.startswith(f"{broken / names[2]}.npz: predictions cover 100 points"), message
        assert len(message.splitlines()) == 1


def test_errors_outside_input_checks_are_input_errors_carrying_the_worker_traceback(
    monkeypatch, votenet_predictions, scannet_votenet_dir
):
    from labelfree3d.evaluate import inputs

    def explode(source, **_):
        raise RuntimeError("boom")

    monkeypatch.setattr(inputs, "evaluate_scan", explode)
    folder, _, _, _ = votenet_predictions
    with pytest.raises(InputError, match="RuntimeError: boom") as caught:
        evaluate_paths(folder, scannet_votenet_dir, workers=0)
    assert "scene0000_00_vert.npy" in str(caught.value) and "explode" in str(caught.value.__cause__)


def test_pairing_errors_name_the_file(tmp_path, scannet_votenet_dir):
    from labelfree3d.io.npz import write_npz_scene

    scene = read_scene(scannet_votenet_dir / "scene0001_00_vert.npy")
    masks = _noisy_masks(scene.gt, np.random.default_rng(2))
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    write_npz_scene(scene, gt / "a.npz")
    write_npz_scene(scene.replace(name="other"), gt / "b.npz")
    write_predictions(masks, pred / "scene0001_00.npz")
    write_predictions(masks, pred / "x.npz", scene_name="scene0001_00")
    with pytest.raises(InputError, match="x.npz: scene 'scene0001_00' is also predicted by .*scene0001_00.npz"):
        evaluate_paths(pred, gt)
    (pred / "x.npz").unlink()
    write_predictions(masks, pred / "y.npz", scene_name="nowhere")
    with pytest.raises(InputError, match="y.npz: no ground-truth scan is named 'nowhere'"):
        evaluate_paths(pred, gt)
    (pred / "y.npz").unlink()
    assert evaluate_paths(pred, gt)["skipped_gt_scenes"] == ["other"]
    write_npz_scene(scene, gt / "c.npz")
    with pytest.raises(InputError, match="c.npz: two ground-truth scans are named 'scene0001_00'"):
        evaluate_paths(pred, gt)


@pytest.fixture(scope="module")
def superpoint_predictions(tmp_path_factory, scannet_scene_dir):
    """scene0000_00's official superpoints (constant score) as predictions, and its GT as ScanNet's txt."""
    folder = tmp_path_factory.mktemp("scene0000")
    scene = read_scene(scannet_scene_dir)
    masks = InstanceMasks.from_labels(scene.superpoints).with_scores(np.ones(668))
    write_predictions(masks, folder / "pred" / "scene0000_00.npz")
    kept = masks.select(np.flatnonzero(masks.sizes >= 100))  # smaller ones are dropped anyway: less to write
    write_scannet_benchmark(kept, folder / "bench", "scene0000_00", label_id=39)
    write_scannet_gt_txt(scene.gt, folder / "gt" / "scene0000_00.txt")
    return folder


@pytest.mark.parametrize("gt_layout", ["raw folder", "gt txt", "gt txt folder", "forced gt txt"])
def test_scannet_gt_txt_gives_the_scripts_numbers(capsys, superpoint_predictions, scannet_scene_dir, gt_layout):
    folder = superpoint_predictions
    truth = {
        "raw folder": [scannet_scene_dir],
        "gt txt": [folder / "gt" / "scene0000_00.txt"],
        "gt txt folder": [folder / "gt"],
        "forced gt txt": [folder / "gt", "--gt-format", "scannet_gt_txt"],
    }[gt_layout]
    for predictions in ("pred", "bench"):
        code = main(["evaluate", str(folder / predictions), *map(str, truth), "--json"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        report = json.loads(captured.out)
        assert (report["ap"], report["ap50"], report["ap25"]) == pytest.approx(SUPERPOINTS_CONSTANT, abs=1e-12)
        assert report["counts"]["gt_instances"] == 42 and report["counts"]["points"] == 81_369
        expected_dataset = "scannet" if gt_layout == "raw folder" else "scannet_gt_txt"
        assert report["per_scene"]["scene0000_00"]["dataset"] == expected_dataset


def test_gt_txt_errors_exit_2_with_one_line(capsys, superpoint_predictions, tmp_path):
    bad = tmp_path / "scene0000_00.txt"
    bad.write_text("0\n1001\nwall\n")
    code = main(["evaluate", str(superpoint_predictions / "pred"), str(bad), "--gt-format", "scannet_gt_txt"])
    err = capsys.readouterr().err
    assert code == 2 and f"{bad}: not a ScanNet ground-truth file" in err and "line 3" in err
    assert len(err.strip().splitlines()) == 1
    code = main(["evaluate", str(superpoint_predictions / "pred"), str(tmp_path), "--gt-format", "scannet_gt_txt"])
    assert code == 2  # the one file in the folder is the broken one
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["evaluate", str(superpoint_predictions / "pred"), str(empty), "--gt-format", "scannet_gt_txt"])
    assert code == 2 and "holds no ScanNet ground-truth" in capsys.readouterr().err


def test_evaluate_imports_neither_the_methods_nor_heavy_libraries(superpoint_predictions, scannet_scene_dir):
    """One scene in this process: no dask cluster, no methods, no torch / open3d / scikit-learn / scipy.optimize."""
    code = (
        "import sys\n"
        "from labelfree3d.evaluate.inputs import evaluate_paths\n"
        f"report = evaluate_paths({str(superpoint_predictions / 'bench')!r}, {str(scannet_scene_dir)!r})\n"
        "assert report['counts']['scenes'] == 1\n"
        "heavy = ('labelfree3d.segment', 'labelfree3d.models', 'labelfree3d.batch.benchmark', 'torch', 'open3d',\n"
        "         'sklearn', 'distributed', 'numba', 'scipy.optimize')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(labelfree3d.__file__).parents[1]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
