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


def test_recipe_parameters_are_validated():
    recipe = make_recipe("unscene3d")
    params = resolve_parameters(recipe, "small", settings_of(["cycles=3", "train.set.optim.lr=0.002", "pseudo.settings.tau_cut=0.6"]))
    assert params["cycles"] == 3 and params["train"]["set"]["optim.lr"] == 0.002
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
