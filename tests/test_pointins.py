"""PointINS pre-training: schedules, Zipfian balancing, views, a tiny end-to-end run that resumes, and the offsets segmenter."""

from __future__ import annotations

import _learning  # noqa: F401  (one torch thread)
import numpy as np
import pytest
import torch

from labelfree3d.errors import ParameterError
from labelfree3d.train.pretrain import (
    PretrainConfig,
    PretrainDataset,
    Pretrainer,
    offset_loss_weight,
    pretrain_preset,
    teacher_momentum,
    zipf_sinkhorn,
)


def test_offset_loss_is_off_for_the_warmup_share_then_on():
    weights = [offset_loss_weight(step, 100, 0.1) for step in range(100)]
    assert weights[:10] == [0.0] * 10 and weights[10:] == [1.0] * 90
    assert offset_loss_weight(0, 100, 0.0) == 1.0


def test_teacher_momentum_rises_from_its_start_to_one():
    values = [teacher_momentum(step, 50, 0.994) for step in range(51)]
    assert values[0] == pytest.approx(0.994) and values[-1] == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(values, values[1:]))


def test_zipf_sinkhorn_rows_are_distributions_and_usage_follows_the_prior():
    torch.manual_seed(0)
    logits = torch.randn(4000, 16) * 0.2
    for alpha in (0.0, 1.3):
        q = zipf_sinkhorn(logits, temperature=0.04, alpha=alpha, iterations=50)
        assert torch.allclose(q.sum(dim=1), torch.ones(4000), atol=1e-4)
        usage = torch.sort(q.mean(dim=0), descending=True).values
        prior = torch.arange(1, 17, dtype=torch.float32).pow(-alpha)
        assert torch.allclose(usage, prior / prior.sum(), atol=2e-3)
    plain = zipf_sinkhorn(logits, 0.5, 0.1, iterations=0)
    assert torch.allclose(plain, torch.softmax(logits / 0.5, dim=1))


def test_presets_carry_table_1_and_reject_nonsense():
    indoor, outdoor = pretrain_preset("indoor"), pretrain_preset("outdoor")
    assert (indoor.optim.lr, indoor.optim.weight_decay, indoor.masking.size, indoor.scr.knn) == (4e-3, 0.04, 0.4, 150)
    assert (outdoor.optim.lr, outdoor.masking.size, outdoor.scr.knn, outdoor.prior.kind) == (2e-3, 1.0, 20, "lognormal")
    assert indoor.loss.offset_weight == 0.25 and indoor.loss.offset_warmup == 0.1 and indoor.prior.a == 0.24
    with pytest.raises(ParameterError, match="masking.ratio"):
        pretrain_preset("small", {"masking.ratio": 1.0})
    with pytest.raises(ParameterError, match="preset"):
        pretrain_preset("huge")
    with pytest.raises(ParameterError, match="pointins"):
        PretrainConfig(model={"name": "mask3d"})


def _tiny_config(tmp_path, steps: int = 4) -> PretrainConfig:
    return pretrain_preset(
        "small",
        {
            "model.input.voxel_size": 0.04,
            "model.backbone.init_dim": 8,
            "model.backbone.planes": [8, 16, 16, 16, 16, 16, 8, 8],
            "model.head.projection_hidden": 16,
            "model.head.projection_dim": 8,
            "model.head.num_prototypes": 16,
            "model.head.offset_hidden": 8,
            "views.max_points": None,
            "masking.size": 0.2,
            "loss.sample_points": 256,
            "scr.min_size": 5,
            "scr.max_distance": 0.3,
            "optim.max_steps": steps,
            "optim.batch_size": 2,
            "loss.offset_warmup": 0.25,
            "checkpoint_every": 2,
            "log_every": 1,
            "cpu_threads": 1,
            "progress": False,
            "output_dir": str(tmp_path / "run"),
        },
    )


def _scenes():
    from labelfree3d.synthetic import make_scene

    return [make_scene("tabletop", seed) for seed in range(3)]


def test_views_are_linear_maps_of_the_scan_and_the_student_sees_the_unmasked_blocks(tmp_path):
    config = _tiny_config(tmp_path)
    scenes = _scenes()
    from labelfree3d.models import build_model

    dataset = PretrainDataset(scenes, config, build_model(config.model).input_spec)
    pair = dataset[0]
    scene = scenes[0]
    assert 0.1 < pair.visible.shape[0] / scene.num_points < 0.6  # 70 % of the blocks hidden
    # teacher voxel positions mapped back to the original frame are means of original points
    first = pair.teacher.inverse == 0
    np.testing.assert_allclose(pair.teacher_positions[0], scene.points[first].mean(axis=0), atol=1e-4)
    scale = np.abs(np.linalg.det(pair.student_map)) ** (1 / 3)
    assert 0.9 <= scale <= 1.1
    again = dataset[0]  # the same epoch draws the same views
    np.testing.assert_array_equal(again.visible, pair.visible)


def test_a_tiny_run_learns_resumes_and_exports_the_teacher(tmp_path):
    from labelfree3d.models.checkpoint import load_model

    config = _tiny_config(tmp_path, steps=4)
    first = Pretrainer(config, _scenes())
    terms = first.train_step([first.dataset[0], first.dataset[1]])
    assert terms["offset_weight"] == 0.0 and np.isfinite(terms["semantic"])
    assert 1 <= terms["prototypes_used"] <= 16
    # the warm-up is over from step 1 (0.25 of 4 steps): the offset loss joins
    first.step = 1
    terms = first.train_step([first.dataset[0], first.dataset[1]])
    assert terms["offset_weight"] == 0.25 and terms["scr_points"] > 0 and terms["offset"] > 0

    half = Pretrainer(config.with_overrides({"optim.max_steps": 2}), _scenes())
    half.fit()
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.safetensors").is_file() and list((run / "checkpoints").glob("teacher_*.safetensors"))
    resumed = Pretrainer(config, _scenes())
    result = resumed.fit()
    assert result.step == 4 and resumed.step == 4
    rows = (run / "log.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == [1, 2, 3, 4]  # one row per step, none repeated
    exported = load_model(run / "model.safetensors")
    for name, tensor in exported.state_dict().items():
        assert torch.equal(tensor, resumed.teacher.state_dict()[name]), name


# --- real scans: the CLI, the offsets segmenter, the probes and NCut on learned features ---------

TINY_MODEL = [
    "model.input.voxel_size=0.02",
    "model.backbone.init_dim=8",
    "model.backbone.planes=[8,16,16,16,16,16,8,8]",
    "model.head.projection_hidden=16",
    "model.head.projection_dim=8",
    "model.head.num_prototypes=16",
    "model.head.offset_hidden=8",
]


@pytest.fixture(scope="module")
def osd_run(osd_dir, tmp_path_factory):
    """A 4-step `labelfree3d pretrain` on two real OSD clouds, through the CLI."""
    from test_segment_cli import run_cli

    root = tmp_path_factory.mktemp("pointins")
    listing = root / "scans.txt"
    listing.write_text(f"{osd_dir / 'learn0.pcd'}\n{osd_dir / 'learn2.pcd'}\n")
    settings = [*TINY_MODEL, "optim.max_steps=4", "optim.batch_size=2", "loss.sample_points=512", "log_every=1",
                "views.max_points=20000", "cpu_threads=1", "progress=false"]  # fmt: skip
    done = run_cli("pretrain", str(listing), "-o", str(root / "run"), "--device", "cpu", *[a for s in settings for a in ("--set", s)])
    assert done.returncode == 0, done.stderr
    assert "4 steps" in done.stdout and (root / "run" / "model.safetensors").is_file()
    return root / "run"


def test_pretrain_cli_logs_every_step_and_rejects_bad_settings(osd_run, tmp_path):
    from test_segment_cli import run_cli

    rows = (osd_run / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,semantic,offset") and len(rows) == 5
    bad = run_cli("pretrain", str(tmp_path / "missing"), "-o", str(tmp_path / "run"))
    assert bad.returncode == 2 and "missing" in bad.stderr and not (tmp_path / "run" / "model.safetensors").exists()
    absurd = run_cli("pretrain", str(osd_run), "-o", str(tmp_path / "run"), "--set", "masking.ratio=2")
    assert absurd.returncode == 2 and "masking.ratio" in absurd.stderr


def test_pointins_offsets_segments_a_real_cloud(osd_run, osd_dir):
    from labelfree3d.features.pointins import pointins_outputs
    from labelfree3d.io import read_scene
    from labelfree3d.segment import make_segmenter

    scene = read_scene(osd_dir / "learn0.pcd")
    outputs = pointins_outputs(scene, osd_run / "model.safetensors")
    assert outputs.offsets.shape == (scene.num_points, 3) and np.isfinite(outputs.offsets).all()
    assert outputs.features.shape[0] == scene.num_points and outputs.features.shape[1] > 8
    segmenter = make_segmenter("pointins_offsets", checkpoint=str(osd_run / "model.safetensors"), min_points=50)
    masks = segmenter.segment(scene)
    assert masks.num_points == scene.num_points and len(masks) >= 1
    assert ((masks.scores > 0) & (masks.scores <= 1)).all()
    # perfect offsets (every point to its GT centroid) give exactly the GT objects off the structure
    from labelfree3d.train.probe import _gt_offsets

    rows, wanted = _gt_offsets(scene)
    oracle = np.zeros((scene.num_points, 3))
    oracle[rows] = wanted
    perfect = segmenter.segment(scene, features=oracle)
    from labelfree3d.evaluate import evaluate_scenes

    assert evaluate_scenes({"s": perfect}, {"s": scene.gt})["ap50"] > 0.9
    with pytest.raises(ParameterError, match="checkpoint"):
        make_segmenter("pointins_offsets").segment(scene)


def test_offset_probe_and_linear_probe_on_real_clouds(osd_run, osd_dir):
    from labelfree3d.train.probe import linear_offset_probe, offset_probe

    result = offset_probe(osd_run / "model.safetensors", osd_dir / "learn1.pcd")
    zero = result["zero"]
    assert zero["points"] > 1000 and zero["instances"] >= 2 and 0.01 < zero["point_mean"] < 0.3
    assert np.isfinite(result["trained"]["point_mean"]) and np.isfinite(result["initial"]["point_mean"])
    linear = linear_offset_probe(osd_run / "model.safetensors", [osd_dir / "learn0.pcd", osd_dir / "learn2.pcd"],
                                 osd_dir / "learn1.pcd", fraction=0.5, points_per_scan=5000)  # fmt: skip
    assert len(linear["train_scans"]) == 1
    # a linear map of the features to the offsets beats predicting none
    assert linear["offsets"]["probe"]["point_mean"] < linear["offsets"]["zero"]["point_mean"]
    assert 0 <= linear["ap25"] <= 1


def test_ncut_takes_pretrained_features(osd_run, osd_dir):
    from labelfree3d.io import read_scene
    from labelfree3d.segment import make_segmenter

    scene = read_scene(osd_dir / "learn0.pcd")
    learned = make_segmenter("ncut", learned_features=f"pointins:{osd_run / 'model.safetensors'}").segment(scene)
    assert learned.num_points == scene.num_points and len(learned) >= 1
    with pytest.raises(ParameterError, match="learned_features"):
        make_segmenter("ncut", learned_features="dino:x").segment(scene)


def test_offset_centroid_errors_against_ground_truth(osd_dir):
    from labelfree3d.evaluate.offsets import offset_centroid_errors
    from labelfree3d.io import read_scene
    from labelfree3d.train.probe import _gt_offsets

    scene = read_scene(osd_dir / "learn0.pcd")
    rows, wanted = _gt_offsets(scene)
    exact = np.zeros((scene.num_points, 3))
    exact[rows] = wanted
    errors = offset_centroid_errors(scene.gt, scene.points, exact)
    assert errors["distances"].max() < 1e-6 and errors["baseline"].mean() > 0.01
    from labelfree3d.errors import InputError

    with pytest.raises(InputError, match="must both be"):
        offset_centroid_errors(scene.gt, scene.points, exact[:10])


def test_decoder_probe_trains_only_the_decoder_on_the_frozen_backbone(osd_run, osd_dir, tmp_path):
    from labelfree3d.models.checkpoint import load_model, read_checkpoint
    from labelfree3d.train.probe import decoder_probe

    settings = {"optim.max_steps": 2, "optim.batch_size": 1, "loss.sample_points": 500, "cpu_threads": 1,
                "model.decoder.num_queries": 8, "model.decoder.attention_sample_sizes": [50, 100, 200, 400]}  # fmt: skip
    result = decoder_probe(osd_run / "model.safetensors", [osd_dir / "learn0.pcd", osd_dir / "learn2.pcd"], osd_dir / "learn1.pcd",
                           tmp_path, fraction=0.5, settings=settings, progress=False)  # fmt: skip
    assert len(result["train_scans"]) == 1 and set(result) == {"train_scans", "pretrained", "control"}
    assert all(0 <= result[k]["ap25"] <= 1 for k in ("pretrained", "control"))
    pretrained = read_checkpoint(osd_run / "model.safetensors", with_optimizer=False).model_state
    probed = load_model(tmp_path / "pretrained" / "model.safetensors").state_dict()
    control = load_model(tmp_path / "control" / "model.safetensors").state_dict()
    backbone = [k for k in probed if k.startswith("backbone.")]
    assert backbone and all(torch.equal(probed[k], pretrained[k]) for k in backbone)  # weights and BN statistics stay
    assert not all(torch.equal(probed[k], control[k]) for k in backbone)
    with pytest.raises(ParameterError, match="both trained and evaluated"):
        decoder_probe(osd_run / "model.safetensors", osd_dir / "learn1.pcd", osd_dir / "learn1.pcd", tmp_path / "x")


def test_a_backbone_of_another_architecture_is_refused(osd_run):
    from labelfree3d.errors import FormatError
    from labelfree3d.models import build_model
    from labelfree3d.models.checkpoint import load_backbone

    other = build_model({"name": "mask3d", "backbone": {"init_dim": 8, "planes": [8, 8, 8, 8, 8, 8, 8, 8]}})
    with pytest.raises(FormatError, match="does not fit"):
        load_backbone(other, osd_run / "model.safetensors")
    with pytest.raises(ParameterError, match="exclude each other"):
        from labelfree3d.train.config import TrainConfig

        TrainConfig(init_from="a.safetensors", init_backbone_from="b.safetensors")
