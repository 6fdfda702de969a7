"""`labelfree3d fit --recipe unscene3d`: stages, resume after SIGKILL, mask addition, the final model."""

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

from labelfree3d.cli.main import main
from labelfree3d.errors import ParameterError
from labelfree3d.io import read_predictions, read_scene
from labelfree3d.recipes import RECIPES, fit, make_recipe
from labelfree3d.recipes.base import resolve_parameters
from labelfree3d.recipes.unscene3d import add_confident_masks
from labelfree3d.structures import InstanceMasks

ROOT = Path(__file__).resolve().parents[1]
# a smoke configuration: the fast training-free method, a tiny model on 3 cm voxels, a few steps
SMOKE = [
    "pseudo.method=felzenszwalb",
    "m0_min_score=0.0",  # NCut's threshold means nothing for Felzenszwalb's scores
    "train.set.model.input.voxel_size=0.03",
    "train.set.model.decoder.num_queries=12",
    "train.set.model.decoder.num_decoders=1",
    "train.set.optim.max_steps=3",
    "train.set.checkpoint_every=1",
    "finetune.optim.max_steps=2",
    "cycles=2",
]


def settings_of(pairs: list[str]) -> dict:
    from labelfree3d.cli.common import parse_settings

    return parse_settings(pairs)


@pytest.fixture
def osd_split(osd_dir, tmp_path):
    train, held_out = tmp_path / "train", tmp_path / "eval"
    for folder, names in ((train, ["learn0.pcd", "learn2.pcd", "learn4.pcd"]), (held_out, ["learn1.pcd"])):
        folder.mkdir()
        for name in names:
            shutil.copy2(osd_dir / name, folder / name)
    return train, held_out


# ---------------------------------------------------------------------- mask addition
@pytest.mark.realdata
def test_mask_addition_keeps_m0_and_adds_only_new_confident_masks(osd_dir):
    scene = read_scene(osd_dir / "learn38.pcd")
    objects = InstanceMasks.from_labels(scene.gt.evaluated_ids())
    assert len(objects) >= 4
    initial = objects.select([0, 1])
    # predictions: a near-duplicate of an initial mask, two new objects, a duplicate of one of them, a weak new one
    near_copy = objects[0][: int(0.9 * objects.sizes[0])]
    predicted = InstanceMasks.from_index_lists(
        [near_copy, objects[2], objects[3], objects[2], objects[3][::2]], np.array([0.9, 0.8, 0.7, 0.6, 0.1]), scene.num_points
    )
    merged = add_confident_masks(initial, predicted, top_k=4, addition_iou=0.3)
    assert len(merged) == 4  # M0, then objects 2 and 3; the copies are refused, the weak one is beyond top_k
    for k in range(2):
        assert np.array_equal(merged[k], initial[k])
    assert np.array_equal(merged[2], objects[2]) and np.array_equal(merged[3], objects[3])
    assert np.allclose(merged.scores[2:], [0.8, 0.7])
    assert len(add_confident_masks(initial, predicted, top_k=0, addition_iou=0.3)) == 2


@pytest.mark.realdata
def test_growing_completes_partial_object_masks_without_crossing_into_the_table(osd_dir, tmp_path):
    from labelfree3d.io import write_predictions
    from labelfree3d.recipes.stages import grow_confident_masks
    from labelfree3d.segment.structure import scene_structure

    scan = osd_dir / "learn14.pcd"
    scene = read_scene(scan)
    objects = InstanceMasks.from_labels(scene.gt.evaluated_ids())
    # the part of each object nearest its lowest point: the pseudo mask of an object cut in two
    partial = []
    for k in range(len(objects)):
        points = objects[k]
        height = scene.points[points] @ np.array([0.0, -1.0, 0.0])  # y points down in Kinect frames
        partial.append(points[height <= np.median(height)])
    write_predictions(InstanceMasks.from_index_lists(partial, np.linspace(0.9, 0.6, len(partial)), scene.num_points),
                      tmp_path / "learn14.npz", scene_name=scene.name)  # fmt: skip
    counts = grow_confident_masks(tmp_path, [scan], growth=0.1)
    grown, _ = read_predictions(tmp_path / "learn14.npz")
    structure = ~scene_structure(scene).rest
    for k in range(len(objects)):
        before = len(partial[k]) / objects.sizes[k]
        inside = np.isin(grown[k], objects[k]).mean()
        covered = np.isin(objects[k], grown[k]).mean()
        assert np.isin(partial[k], grown[k]).all() and covered > before + 0.3 and inside > 0.9, (k, before, covered, inside)
        assert not structure[np.setdiff1d(grown[k], partial[k])].any()  # growth never enters the table or walls
    assert counts["points_after"] > counts["points_before"]


def test_recipe_parameters_are_validated():
    recipe = make_recipe("unscene3d")
    params = resolve_parameters(recipe, "small", settings_of(["cycles=3", "train.set.optim.lr=2e-3", "pseudo.settings.tau_cut=0.6"]))
    assert params["cycles"] == 3 and params["train"]["set"]["optim.lr"] == 0.002  # 2e-3 is a float, not YAML 1.1's string
    assert params["pseudo"]["settings"] == {"tau_cut": 0.6}
    assert resolve_parameters(recipe, "paper", None)["cycles"] == 4  # UnScene3D §4: four training cycles
    for bad in (["cycle=3"], ["train.lr=1"]):
        with pytest.raises(ParameterError, match="no parameter"):
            resolve_parameters(recipe, "small", settings_of(bad))
    with pytest.raises(ParameterError, match="no preset"):
        resolve_parameters(recipe, "huge", None)
    with pytest.raises(ParameterError, match="unknown recipe"):
        make_recipe("cutler")
    assert "unscene3d" in RECIPES


@pytest.mark.realdata
def test_a_negative_m0_growth_is_refused_before_any_work(osd_split, tmp_path):
    train, _ = osd_split
    with pytest.raises(ParameterError, match="m0_growth_voxels must be 0"):
        fit("unscene3d", train, tmp_path / "run", settings=settings_of(["m0_growth_voxels=-1"]), workers=1, device="cpu",
            log=lambda line: None)  # fmt: skip
    assert not (tmp_path / "run" / "00_pseudo").exists()


def test_every_paper_has_a_recipe_with_both_presets():
    assert sorted(RECIPES) == ["freepoint", "segment3d", "unscene3d"]
    for name in RECIPES:
        recipe = make_recipe(name)
        assert set(recipe.presets) == {"small", "paper"}
    freepoint = resolve_parameters(make_recipe("freepoint"), "small", settings_of(["step1.set.optim.lr=3e-3", "pseudo.settings.k1=6"]))
    assert freepoint["step1"]["set"]["optim.lr"] == 0.003 and freepoint["pseudo"]["settings"] == {"k1": 6}
    segment3d = resolve_parameters(make_recipe("segment3d"), "paper", settings_of(["confidence=0.7"]))
    assert segment3d["confidence"] == 0.7 and segment3d["frame_stride"] == 25  # Segment3D §4.1: every 25th frame


@pytest.mark.realdata
def test_segment3d_keeps_confident_masks_and_splits_merged_ones(osd_dir):
    from labelfree3d.recipes.segment3d import confident_masks

    scene = read_scene(osd_dir / "learn38.pcd")
    objects = InstanceMasks.from_labels(scene.gt.evaluated_ids())
    assert len(objects) >= 3
    merged = np.concatenate([objects[0], objects[1]])  # two separate objects predicted as one confident mask
    predicted = InstanceMasks.from_index_lists([merged, objects[2]], np.array([0.9, 0.3]), scene.num_points)
    kept = confident_masks(predicted, scene.points, confidence=0.5, eps=0.05, min_samples=5)
    assert len(kept) >= 2 and np.all(kept.scores == 0.9)  # the unsure mask is gone, the merged one split
    for k in range(len(kept)):
        inside = np.isin(kept[k], objects[0]).mean(), np.isin(kept[k], objects[1]).mean()
        assert max(inside) > 0.99
    assert len(confident_masks(predicted, scene.points, confidence=0.95, eps=0.05, min_samples=5)) == 0


# ---------------------------------------------------------------------- end to end
@pytest.mark.slow
@pytest.mark.realdata
def test_unscene3d_smoke_run_scores_every_stage_and_its_model_predicts(osd_split, tmp_path):
    train, held_out = osd_split
    run = tmp_path / "run"
    lines: list[str] = []
    result = fit("unscene3d", train, run, settings=settings_of(SMOKE), eval_data=held_out, workers=1, device="cpu", log=lines.append)
    names = [s.name for s in result.stages]
    assert names == ["00_pseudo", "01_cycle1_train", "02_cycle2_predict", "03_cycle2_masks", "04_cycle2_train"]
    scored = {s.name: s.scores for s in result.stages if s.scores}
    assert set(scored) == {"00_pseudo", "01_cycle1_train", "04_cycle2_train"}
    assert all(0.0 <= v <= 1.0 for scores in scored.values() for v in scores.values())
    assert result.model == run / "model.safetensors" and result.model.is_file()
    assert result.stages[1].summary["steps"] == 3 and result.stages[4].summary["steps"] == 2  # a new schedule from the weights
    # M0 completed along the surface by 5 voxels of 3 cm; every mask keeps its points and gains more
    pseudo = result.stages[0].summary
    assert pseudo["growth"] == pytest.approx(0.15)
    assert pseudo["confident_points_grown"]["points_after"] >= pseudo["confident_points_grown"]["points_before"] > 0
    raw, _ = read_predictions(run / "00_pseudo" / "learn0.npz")
    grown, info = read_predictions(run / "00_pseudo" / "confident" / "learn0.npz")
    assert len(grown) == len(raw) and "grown 0.15 m" in info["method"]
    assert all(np.isin(raw[k], grown[k]).all() for k in range(len(raw)))
    # Kinect frames are y-down camera clouds: augmentations rotate about y, never roll the table about z
    assert "up_axis: y" in (run / "01_cycle1_train" / "config.yaml").read_text()
    merged = result.stages[3].summary
    assert merged["scenes"] == 3 and merged["initial_masks"] > 0
    # the pseudo masks of training and held-out scans are kept apart; ground truth trained nothing
    assert sorted(p.stem for p in (run / "00_pseudo").glob("*.npz")) == ["learn0", "learn2", "learn4"]
    assert sorted(p.stem for p in (run / "00_pseudo" / "eval").glob("*.npz")) == ["learn1"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert [s["name"] for s in metrics["stages"]] == names

    again = fit("unscene3d", train, run, settings=settings_of(SMOKE), eval_data=held_out, workers=1, device="cpu", log=lines.append)
    assert all(s.skipped for s in again.stages) and [s.scores for s in again.stages] == [s.scores for s in result.stages]
    with pytest.raises(ParameterError, match="another params"):
        fit("unscene3d", train, run, settings=settings_of([*SMOKE, "cycles=3"]), workers=1, device="cpu", log=lines.append)

    out = tmp_path / "predictions"
    assert main(["predict", str(held_out), "--checkpoint", str(result.model), "-o", str(out), "--device", "cpu"]) == 0
    masks, _ = read_predictions(out / "learn1.npz")
    assert masks.num_points == read_scene(held_out / "learn1.pcd").num_points
    assert main(["evaluate", str(out), str(held_out), "--json"]) == 0


@pytest.mark.slow
@pytest.mark.realdata
def test_fit_killed_while_pseudo_labelling_and_while_training_resumes_and_finishes(osd_dir, tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    for i in range(6):
        shutil.copy2(osd_dir / f"learn{2 * i}.pcd", train / f"learn{2 * i}.pcd")
    run = tmp_path / "run"
    smoke = [s for s in SMOKE if not s.startswith("train.set.optim.max_steps")] + ["train.set.optim.max_steps=8"]
    command = [sys.executable, "-m", "labelfree3d", "fit", str(train), "-r", "unscene3d", "-o", str(run), "--workers", "1", "--device", "cpu"]
    for pair in smoke:
        command += ["--set", pair]
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")

    def run_until(ready) -> None:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None and not ready():
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    run_until(lambda: len(list((run / "00_pseudo").glob("learn*.npz"))) >= 2)
    assert not (run / "00_pseudo" / "done.json").exists()
    checkpoint = run / "01_cycle1_train" / "checkpoints" / "last.safetensors"
    run_until(checkpoint.is_file)
    assert (run / "00_pseudo" / "done.json").exists() and not (run / "01_cycle1_train" / "done.json").exists()

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "00_pseudo: done earlier, skipped" in finished.stderr and "resuming at step" in finished.stderr
    manifest = json.loads((run / "00_pseudo" / "manifest.json").read_text())
    assert len(manifest["scans"]) == 6 and manifest["runs"][-1]["cached"] + manifest["runs"][-1]["computed"] == 6
    first = json.loads((run / "01_cycle1_train" / "done.json").read_text())
    assert first["summary"]["steps"] == 8 and (run / "04_cycle2_train" / "done.json").is_file()
    assert (run / "model.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.realdata
def test_freepoint_trains_step1_on_low_sigma_masks_then_step2_on_high_sigma_masks(osd_split, tmp_path):
    train, held_out = osd_split
    run = tmp_path / "run"
    tiny = [f"{step}.set.{key}" for step in ("step1", "step2") for key in
            ("model.input.voxel_size=0.03", "model.decoder.num_queries=12", "model.decoder.num_decoders=1")]  # fmt: skip
    steps = ["step1.set.optim.max_steps=3", "step2.set.optim.max_steps=2"]
    result = fit("freepoint", train, run, settings=settings_of(tiny + steps), eval_data=held_out, workers=1, device="cpu",
                 log=lambda line: None)  # fmt: skip
    assert [s.name for s in result.stages] == ["00_pseudo_low", "01_pseudo_high", "02_step1_train", "03_step2_train"]
    assert all(set(s.scores) == {"ap", "ap50", "ap25"} for s in result.stages)
    low, high = (result.stages[k].summary["masks_per_scan"] for k in (0, 1))
    assert low >= high  # sigma_high cuts fewer edges: fewer, larger masks
    step2 = (run / "03_step2_train" / "config.yaml").read_text()
    assert "02_step1_train/model.safetensors" in step2 and "01_pseudo_high" in step2
    assert "mean_weight: 1.0" in step2 and "box_weight: 1.0" in step2  # Eq. 7's weak losses are on
    assert result.stages[3].summary["steps"] == 2 and (run / "model.safetensors").is_file()
    # the run's report: the stage table, every training stage's losses, the final model's scans
    page = tmp_path / "report.html"
    assert main(["report", str(run), "-o", str(page), "--thumbnails", "0"]) == 0
    text = page.read_text()
    assert all(name in text for name in ("00_pseudo_low", "03_step2_train", "02_step1_train: losses", "learn1"))


@pytest.mark.slow
@pytest.mark.realdata
def test_segment3d_stage1_on_kinect_frames_and_7scenes_frames_then_stage2_on_full_scans(osd_dir, sevenscenes_dir, tmp_path):
    run = tmp_path / "run"
    data = [osd_dir / "learn0.pcd", osd_dir / "learn2.pcd", sevenscenes_dir]
    tiny = [f"{stage}.set.{key}" for stage in ("stage1", "stage2") for key in
            ("model.input.voxel_size=0.05", "model.decoder.num_queries=12", "model.decoder.num_decoders=1")]  # fmt: skip
    # three steps at an lr this small leave the model at its initialisation, whose masks hover around
    # sigmoid 0.5: a low mask threshold and tau_c 0 give stage 2 masks to train on
    settings = [*tiny, "stage1.set.optim.max_steps=3", "stage1.set.optim.lr=1e-9", "stage2.set.optim.max_steps=2",
                "frame_stride=50", "stage1.set.predict.mask_threshold=0.01", "confidence=0.0"]  # fmt: skip
    result = fit("segment3d", data, run, settings=settings_of(settings), workers=1, device="cpu", log=lambda line: None)
    assert [s.name for s in result.stages] == ["00_frames", "01_stage1_train", "02_stage2_predict", "03_stage2_masks",
                                               "04_stage2_train"]  # fmt: skip
    frames = result.stages[0].summary
    # two Kinect clouds are their own frames; 100 7-Scenes frames at stride 50 give two partial clouds
    assert frames["frames"] == 4 and frames["masks_per_frame"] > 1
    partial = sorted(p.name for p in (run / "00_frames" / "frames").glob("*.ply"))
    assert len(partial) == 2 and all(p.startswith("7scenes_frame-") for p in partial)
    fused = run / "00_frames" / "scans" / "7scenes.ply"
    assert fused.is_file() and read_scene(fused).is_mesh  # stage 2's full scan of the sequence: its TSDF mesh
    assert sorted(Path(p).name for p in frames["full_scans"]) == ["7scenes.ply", "learn0.pcd", "learn2.pcd"]
    for scan in frames["scans"]:
        masks, _ = read_predictions(run / "00_frames" / "masks" / f"{Path(scan).stem}.npz")
        assert masks.num_points == read_scene(scan).num_points and not masks.is_overlapping  # one mask per point
    stage2 = (run / "04_stage2_train" / "config.yaml").read_text()
    assert "objectness_loss: false" in stage2 and "01_stage1_train/model.safetensors" in stage2
    assert (run / "model.safetensors").is_file()
