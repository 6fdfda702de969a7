"""The whole chain on real data: a tiny model overfits one OSD learn cloud on CPU.

data (OSD reader, GT targets) -> voxels -> sparse UNet + mask decoder -> Hungarian matching ->
losses -> AdamW -> inference at full resolution -> ScanNet-exact AP. If any link is broken the
model cannot reach AP50 > 0.9 on the cloud it was trained on.
"""

from __future__ import annotations

import time

import _learning  # noqa: F401 - one torch thread
import pytest

from labelfree3d.evaluate import evaluate_scenes
from labelfree3d.io import read_scene
from labelfree3d.train import Trainer, load_train_config
from labelfree3d.train.distributed import DistributedContext

OVERFIT_SCENE = "learn33.pcd"  # five objects, the most of any OSD learn cloud


@pytest.mark.realdata
@pytest.mark.slow
def test_tiny_model_overfits_one_osd_cloud(osd_dir, tmp_path):
    started = time.perf_counter()
    scene = read_scene(osd_dir / OVERFIT_SCENE)
    config = load_train_config("overfit_osd", {"output_dir": str(tmp_path / "run"), "progress": False})
    trainer = Trainer.from_scenes(config, [scene], "gt", val_scenes=[scene], context=DistributedContext())
    result = trainer.fit()
    masks = trainer.predictor().predict(scene)
    report = evaluate_scenes({scene.name: masks}, {scene.name: scene.gt})
    seconds = time.perf_counter() - started
    print(f"overfit {OVERFIT_SCENE}: AP50 {report['ap50']:.3f} AP {report['ap']:.3f} in {seconds:.1f} s "
          f"({result.step} steps, {result.seconds_per_step:.3f} s/step)")  # fmt: skip
    assert report["ap50"] > 0.9
    assert result.evaluation["ap50"] == pytest.approx(report["ap50"])  # the trainer's own evaluation agrees
    assert masks.num_points == scene.num_points  # full resolution, not voxels

