"""`labelfree3d predict` on a folder through the batch engine: worker processes give the in-process masks."""

from __future__ import annotations

import shutil

import _learning
import numpy as np
import pytest
import torch

from labelfree3d.batch.predict import predict_scans
from labelfree3d.cli.main import main
from labelfree3d.io import read_predictions, read_scene
from labelfree3d.io.scans import list_scans
from labelfree3d.models import build_model
from labelfree3d.models.checkpoint import save_checkpoint

OSD_CLOUDS = ["learn0.pcd", "learn1.pcd", "learn2.pcd"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(_learning.tiny_spec(voxel_size=0.01))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.safetensors", model, {"predict": {"max_masks": 6}})


@pytest.fixture
def folder(osd_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in OSD_CLOUDS:
        shutil.copy2(osd_dir / name, data / name)
    return data


@pytest.mark.slow
@pytest.mark.realdata
def test_two_workers_predict_what_this_process_predicts(checkpoint, folder, tmp_path):
    scans = list_scans(folder)
    alone = predict_scans(scans, checkpoint, tmp_path / "alone", device="cpu", workers=1)
    pooled = predict_scans(scans, checkpoint, tmp_path / "pooled", device="cpu", workers=2)
    assert alone.workers == 0 and pooled.workers == 2 and pooled.threads_per_worker == 1
    assert not alone.failed and not pooled.failed
    assert len({r.worker for r in pooled.results}) >= 1 and all(r.worker.startswith("pid ") for r in pooled.results)
    for name in OSD_CLOUDS:
        scene = read_scene(folder / name)
        a, info = read_predictions(tmp_path / "alone" / f"{scene.name}.npz")
        b, _ = read_predictions(tmp_path / "pooled" / f"{scene.name}.npz")
        assert a.num_points == scene.num_points and 1 <= len(a) <= 6  # the checkpoint's stored max_masks
        assert info["method"] == "checkpoint:model.safetensors"
        assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)


@pytest.mark.realdata
def test_predict_cli_records_a_bad_scan_and_does_the_others(checkpoint, folder, tmp_path, capsys):
    (folder / "broken.pcd").write_bytes(b"# .PCD v0.7\nFIELDS x y z\n")
    status = main(["predict", str(folder), "--checkpoint", str(checkpoint), "-o", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 1 and "1 of 4 scan(s) failed" in err and "broken.pcd" in err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.npz")) == ["learn0.npz", "learn1.npz", "learn2.npz"]
    assert main(["predict", str(folder), "--checkpoint", str(tmp_path / "absent.safetensors")]) == 2
