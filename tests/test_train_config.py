"""Schedules, YAML configs (built-in ones included) and seeded augmentations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from labelfree3d.errors import InputError, ParameterError
from labelfree3d.models.registry import normalize_spec
from labelfree3d.train.augment import AugmentConfig, augment_points
from labelfree3d.train.config import BUILTIN_CONFIG_DIR, TrainConfig, load_train_config
from labelfree3d.train.schedule import lr_factor


def test_onecycle_matches_torch_and_cosine_warms_up():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=1.0)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=57, pct_start=0.25)
    for step in range(57):
        assert lr_factor(step, 57, "onecycle", 0.25) == pytest.approx(optimizer.param_groups[0]["lr"], abs=1e-12)
        optimizer.step()
        scheduler.step()
    cosine = [lr_factor(s, 100, "cosine", 0.1) for s in range(100)]
    assert cosine[0] < cosine[5] < cosine[9] and max(cosine) == pytest.approx(cosine[10], abs=0.02)
    assert cosine[-1] < 0.01 and all(a >= b for a, b in zip(cosine[10:], cosine[11:]))
    assert lr_factor(50, 100, "constant", 0.1) == 1.0
    with pytest.raises(ParameterError):
        lr_factor(0, 0)


@pytest.mark.parametrize("path", sorted(BUILTIN_CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_builtin_configs_load_and_name_their_source(path):
    config = load_train_config(path)
    assert config.source  # each config says which paper setting it reproduces
    normalize_spec(config.model)  # the model section is valid
    assert "§" in path.read_text() or "chain check" in config.source


def test_paper_defaults_in_builtin_configs():
    stage1 = load_train_config("segment3d_stage1")
    assert stage1.optim.lr == 2e-4 and stage1.optim.epochs == 20 and stage1.model["decoder"]["num_queries"] == 150
    assert (stage1.loss.objectness_weight, stage1.loss.dice_weight, stage1.loss.bce_weight) == (2.0, 2.0, 5.0)
    stage2 = load_train_config("segment3d_stage2")
    assert not stage2.loss.objectness_loss and stage2.predict.dbscan_split and stage2.optim.lr == 1e-4
    assert load_train_config("unscene3d_selftrain").loss.drop_loss_iou == 0.01
    assert load_train_config("freepoint_step2").optim.epochs == 10


def test_overrides_unknown_keys_and_relative_paths(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"data": {"train": ["scans"]}, "optim": {"lr": 1e-3}}))
    config = load_train_config(tmp_path / "run.yaml", {"optim.epochs": 3, "model.decoder.num_queries": 7})
    assert config.optim.epochs == 3 and config.optim.lr == 1e-3 and config.model["decoder"]["num_queries"] == 7
    assert config.data.train == (str(scans),)  # resolved against the YAML's folder
    assert TrainConfig.from_dict(config.to_dict()) == config
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"optim": {"learning_rate": 1}}))
    with pytest.raises(ParameterError, match="no setting"):
        load_train_config(tmp_path / "bad.yaml")
    with pytest.raises(ParameterError, match="optim.lr must be > 0"):
        load_train_config(tmp_path / "run.yaml", {"optim.lr": 0})
    with pytest.raises(InputError, match="no built-in config"):
        load_train_config("no_such_config")


def test_augmentations_are_seeded_and_geometric_parts_are_similarities():
    rng = np.random.default_rng(0)
    points = rng.random((2000, 3)).astype(np.float32)
    colors = rng.random((2000, 3)).astype(np.float32)
    config = AugmentConfig()
    a = augment_points(points, colors, config, np.random.default_rng([1, 2, 3]))
    b = augment_points(points, colors, config, np.random.default_rng([1, 2, 3]))
    c = augment_points(points, colors, config, np.random.default_rng([1, 2, 4]))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and not np.array_equal(a[0], c[0])
    assert a[1].min() >= 0 and a[1].max() <= 1
    rigid = AugmentConfig(elastic=(), scale_range=(1.0, 1.0), up_axis="y")
    moved, _ = augment_points(points, None, rigid, np.random.default_rng(5))
    distances = lambda p: np.linalg.norm(p[:100, None] - p[None, :100], axis=-1)  # noqa: E731
    np.testing.assert_allclose(distances(moved), distances(points), atol=1e-5)
    np.testing.assert_allclose(np.sort(moved[:, 1]), np.sort(points[:, 1]), atol=1e-6)  # heights untouched about y
    off, _ = augment_points(points, colors, AugmentConfig(enabled=False), np.random.default_rng(0))
    assert np.array_equal(off, points)
    with pytest.raises(ParameterError, match="up_axis"):
        AugmentConfig(up_axis="w")


def test_scan_lists_expand_folders_and_patterns_and_skip_non_scans(tmp_path):
    from labelfree3d.io import write_scene
    from labelfree3d.synthetic import make_scene
    from labelfree3d.train.data import expand_scan_paths

    for seed in range(2):
        write_scene(make_scene("tabletop", seed), tmp_path / f"scan_{seed}.npz")
    (tmp_path / "README.md").write_text("not a scan")
    assert [p.name for p in expand_scan_paths([tmp_path])] == ["scan_0.npz", "scan_1.npz"]
    assert [p.name for p in expand_scan_paths([str(tmp_path / "*_1.npz"), tmp_path / "scan_1.npz"])] == ["scan_1.npz"]
    with pytest.raises(InputError, match="no scan matches"):
        expand_scan_paths([str(tmp_path / "*.ply")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no scans"):
        expand_scan_paths([tmp_path / "empty"])


def test_scene_mixing_puts_two_real_scans_side_by_side_with_both_scans_targets(osd_dir):
    from labelfree3d.models.voxelize import InputSpec
    from labelfree3d.train import MaskDataset

    clouds = [osd_dir / "learn0.pcd", osd_dir / "learn8.pcd"]
    spec = InputSpec(0.02, ("color", "xyz"), "remove")
    alone = MaskDataset(clouds, "gt", spec, AugmentConfig(up_axis="y"), seed=1)
    mixed = MaskDataset(clouds, "gt", spec, AugmentConfig(up_axis="y", mix_probability=1.0, mix_gap=0.1), seed=1)
    for index in range(2):
        single, other, pair = alone[index], alone[1 - index], mixed[index]
        assert pair.targets.shape[0] == single.targets.shape[0] + other.targets.shape[0]
        assert not (pair.targets.sum(axis=0) > 1).any()  # no voxel belongs to two objects
        # the two scans' voxels are split by a gap along one horizontal axis (x or z: y is up here)
        first = pair.targets[: single.targets.shape[0]].any(axis=0)
        second = pair.targets[single.targets.shape[0]:].any(axis=0)
        coords = pair.coords
        gaps = [max(coords[second, a].min() - coords[first, a].max(), coords[first, a].min() - coords[second, a].max()) for a in (0, 2)]
        assert max(gaps) >= 0.1 / 0.02 - 1
    assert np.array_equal(mixed[0].targets, mixed[0].targets)  # seeded by (seed, epoch, sample)
    with pytest.raises(ParameterError, match="mix_probability"):
        AugmentConfig(mix_probability=1.5)
