"""Probes of a pre-trained PointINS network against ground truth (frozen backbone).

* `offset_probe`: do the network's offsets point at instance centres? For every point of a
  ground-truth instance, the distance from x + O to the instance's centroid, for the trained
  network, for the same architecture at initialisation and for zero offsets (the points' own
  spread). This is the measurement the PointINS issue asks for on unseen scans.
* `linear_offset_probe`: how much instance information do the frozen features hold? A linear
  map (ridge regression, closed form) from the frozen per-point features to ground-truth
  offsets c − x, fitted on a fraction of labelled scans and judged on others: offset distances
  and the AP of clustering the probed offsets with `pointins_offsets`.
* `decoder_probe`: the Mask3D decoder of the recipes' small preset trained on ground truth of a
  fraction of labelled scans on top of the frozen backbone, against the same training on a frozen
  backbone at initialisation (the control): AP / AP50 / AP25 on other scans.

Both read the scans themselves and return JSON-ready dictionaries; `labelfree3d probe` prints
them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from labelfree3d.errors import InputError, ParameterError
from labelfree3d.evaluate.offsets import offset_centroid_errors
from labelfree3d.structures import Scene

__all__ = ["decoder_probe", "linear_offset_probe", "offset_probe"]

Progress = Callable[[str], None]


def _scenes_with_gt(data: Any, format: str | None, progress: Progress | None) -> list[Scene]:
    from labelfree3d.io import read_scene
    from labelfree3d.io.scans import list_scans

    scenes = []
    for path in list_scans(data, format):
        scene = read_scene(path, format=format)
        if scene.gt is None:
            raise InputError("the probe needs ground-truth instances; this scan has none", path)
        scenes.append(scene)
        if progress is not None:
            progress(f"read {scene.name} ({scene.num_points} points)")
    return scenes


def _initial_network(model: Any, seed: int) -> Any:
    import torch

    from labelfree3d.models import build_model
    from labelfree3d.models.registry import model_spec

    torch.manual_seed(seed)
    # batch statistics: an untrained network's running statistics (mean 0, variance 1) do not
    # describe its activations, and would make its features near-constant
    return build_model(model_spec(model)).train()


def _summary(distances: Sequence[np.ndarray], instances: Sequence[np.ndarray]) -> dict[str, float]:
    """Pooled mean over points and mean over instances of their per-instance means, metres."""
    points = np.concatenate(distances) if distances else np.zeros(0)
    per_instance = []
    for d, i in zip(distances, instances):
        if d.size:
            compact = np.unique(i, return_inverse=True)[1]
            per_instance.append(np.bincount(compact, weights=d) / np.bincount(compact))
    pooled = np.concatenate(per_instance) if per_instance else np.zeros(0)
    return {
        "point_mean": float(points.mean()) if points.size else math.nan,
        "instance_mean": float(pooled.mean()) if pooled.size else math.nan,
        "points": int(points.size),
        "instances": int(pooled.size),
    }


def offset_probe(
    checkpoint: str | os.PathLike[str],
    data: Any,
    format: str | None = None,
    device: str = "cpu",
    init_seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Distances from offset-shifted points to their GT instance centroids, trained vs initial vs zero offsets.

    Args:
        checkpoint: `model.safetensors` of `labelfree3d pretrain`.
        data: scans with ground truth (folder, list, file; see `list_scans`).
        format: reader name, detected when None.
        device: torch device of the forward passes.
        init_seed: torch seed of the network at initialisation.
        progress: optional callback receiving one line per scan.

    Returns:
        {"trained"|"initial"|"zero": {"point_mean", "instance_mean" (metres), "points",
        "instances"}, "per_scene": {name: {"trained", "initial", "zero"} point means}}.
    """
    from labelfree3d.features.pointins import load_pointins, network_outputs

    trained = load_pointins(checkpoint, device)
    initial = _initial_network(trained, init_seed).to(device)
    collected: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {k: ([], []) for k in ("trained", "initial", "zero")}
    per_scene: dict[str, dict[str, float]] = {}
    for scene in _scenes_with_gt(data, format, progress):
        row = {}
        for key, network in (("trained", trained), ("initial", initial)):
            errors = offset_centroid_errors(scene.gt, scene.points, network_outputs(scene, network, device).offsets)
            collected[key][0].append(errors["distances"])
            collected[key][1].append(errors["instance"])
            row[key] = float(errors["distances"].mean()) if errors["distances"].size else math.nan
        collected["zero"][0].append(errors["baseline"])
        collected["zero"][1].append(errors["instance"])
        row["zero"] = float(errors["baseline"].mean()) if errors["baseline"].size else math.nan
        per_scene[scene.name] = row
    return {**{key: _summary(*value) for key, value in collected.items()}, "per_scene": per_scene}


def _gt_offsets(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """(M,) rows of the points inside evaluated GT instances and their (M, 3) offsets c − x."""
    errors = offset_centroid_errors(scene.gt, scene.points, np.zeros_like(scene.points, dtype=np.float64))
    rows = np.flatnonzero(scene.gt.evaluated_ids() >= 0)
    _, compact = np.unique(errors["instance"], return_inverse=True)
    counts = np.bincount(compact).astype(np.float64)
    points = scene.points[rows].astype(np.float64)
    centroids = np.stack([np.bincount(compact, weights=points[:, axis]) / counts for axis in range(3)], axis=1)
    return rows, centroids[compact] - points


def linear_offset_probe(
    checkpoint: str | os.PathLike[str],
    train_data: Any,
    eval_data: Any,
    fraction: float = 1.0,
    ridge: float = 1.0,
    points_per_scan: int = 20000,
    radius: float | None = None,
    min_points: int = 100,
    seed: int = 0,
    format: str | None = None,
    device: str = "cpu",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fit offsets c − x linearly on frozen features of a fraction of labelled scans; judge on others.

    Args:
        checkpoint: `model.safetensors` of `labelfree3d pretrain`.
        train_data: labelled scans the probe may learn from.
        eval_data: labelled scans it is judged on (keep them apart from `train_data`).
        fraction: share of `train_data`'s scans used (at least one), chosen with `seed`.
        ridge: L2 penalty on the weights of the standardised features.
        points_per_scan: labelled points sampled per training scan.
        radius, min_points: `pointins_offsets` clustering of the probed offsets (radius None:
            1.5 network voxels).
        seed: scan choice and point sampling.
        format: reader name, detected when None.
        device: torch device of the forward passes.
        progress: optional callback receiving one line per scan.

    Returns:
        {"train_scans": [...], "offsets": {"probe"|"zero": summary (metres)}, "ap", "ap50",
        "ap25" of the clustered probe offsets on `eval_data`}.
    """
    from labelfree3d.evaluate import evaluate_scenes
    from labelfree3d.features.pointins import load_pointins, network_outputs
    from labelfree3d.segment import make_segmenter

    if not (0 < fraction <= 1):
        raise ParameterError(f"fraction must be in (0, 1], got {fraction!r}")
    if not (ridge >= 0 and math.isfinite(ridge)):
        raise ParameterError(f"ridge must be a non-negative number, got {ridge!r}")
    if points_per_scan < 1:
        raise ParameterError(f"points_per_scan must be >= 1, got {points_per_scan!r}")
    network = load_pointins(checkpoint, device)
    rng = np.random.default_rng(seed)
    train = _scenes_with_gt(train_data, format, progress)
    chosen = sorted(rng.choice(len(train), size=max(1, round(fraction * len(train))), replace=False))
    inputs, targets = [], []
    for index in chosen:
        scene = train[index]
        rows, wanted = _gt_offsets(scene)
        pick = rng.choice(rows.size, size=min(points_per_scan, rows.size), replace=False)
        inputs.append(network_outputs(scene, network, device).features[rows[pick]].astype(np.float64))
        targets.append(wanted[pick])
    x, y = np.concatenate(inputs), np.concatenate(targets)
    if x.shape[0] < 2:
        raise InputError("the probe's training scans hold fewer than two labelled points")
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    design = (x - mean) / scale
    gram = design.T @ design + ridge * np.eye(design.shape[1])
    weights = np.linalg.solve(gram, design.T @ (y - y.mean(axis=0)))
    bias = y.mean(axis=0)

    segmenter = make_segmenter("pointins_offsets", checkpoint=str(checkpoint), radius=radius, min_points=min_points, device=device)
    distances: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {"probe": ([], []), "zero": ([], [])}
    predictions, ground_truth = {}, {}
    for scene in _scenes_with_gt(eval_data, format, progress):
        features = network_outputs(scene, network, device).features.astype(np.float64)
        offsets = ((features - mean) / scale) @ weights + bias
        errors = offset_centroid_errors(scene.gt, scene.points, offsets)
        for key, values in (("probe", errors["distances"]), ("zero", errors["baseline"])):
            distances[key][0].append(values)
            distances[key][1].append(errors["instance"])
        predictions[scene.name] = segmenter.segment(scene, features=offsets)
        ground_truth[scene.name] = scene.gt
    report = evaluate_scenes(predictions, ground_truth)
    return {
        "train_scans": [train[i].name for i in chosen],
        "offsets": {key: _summary(*value) for key, value in distances.items()},
        **{key: float(report[key]) for key in ("ap", "ap50", "ap25")},
    }


def decoder_probe(
    checkpoint: str | os.PathLike[str],
    train_data: Any,
    eval_data: Any,
    output_dir: str | os.PathLike[str],
    fraction: float = 1.0,
    control: bool = True,
    settings: dict[str, Any] | None = None,
    seed: int = 0,
    format: str | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Train only the mask decoder on a frozen PointINS backbone with ground truth; AP on other scans.

    The Mask3D model is the recipes' small preset (`SMALL_MODEL`, `SMALL_TRAINING`) with the
    input (voxel size, features) and backbone of the checkpoint, so that its weights fit.

    Args:
        checkpoint: `model.safetensors` of `labelfree3d pretrain`.
        train_data: labelled scans the decoder learns from (their GT instances are the targets).
        eval_data: labelled scans it is judged on (keep them apart from `train_data`).
        output_dir: folder of the probe's training runs (`pretrained/`, `control/`).
        fraction: share of `train_data`'s scans used (at least one), chosen with `seed`.
        control: also train on a frozen backbone at initialisation (the same seed).
        settings: further dotted trainer overrides, e.g. {"optim.max_steps": 300}.
        seed: scan choice and the runs' seed.
        format: reader name, detected when None.
        device: torch device.
        progress: progress bars of the training runs.

    Returns:
        {"train_scans": [...], "pretrained": {"ap", "ap50", "ap25"}, "control": {...} (when run)}.
    """
    from pathlib import Path

    from labelfree3d.evaluate import InstanceEvaluator
    from labelfree3d.io import read_scene
    from labelfree3d.io.scans import list_scans
    from labelfree3d.models.checkpoint import read_checkpoint
    from labelfree3d.models.predict import Predictor
    from labelfree3d.train.config import TrainConfig, apply_overrides
    from labelfree3d.train.presets import SMALL_MODEL, SMALL_TRAINING
    from labelfree3d.train.trainer import Trainer

    if not (0 < fraction <= 1):
        raise ParameterError(f"fraction must be in (0, 1], got {fraction!r}")
    spec = read_checkpoint(checkpoint, with_optimizer=False).model_spec
    if spec.get("name") != "pointins":
        raise ParameterError(f"{checkpoint}: holds a {spec.get('name')!r} model, not a pointins one")
    train_scans = list_scans(train_data, format)
    eval_scans = list_scans(eval_data, format)
    overlap = {p.resolve() for p in train_scans} & {p.resolve() for p in eval_scans}
    if overlap:
        raise ParameterError(f"{len(overlap)} scan(s) are both trained and evaluated on, e.g. {sorted(overlap)[0]}")
    rng = np.random.default_rng(seed)
    chosen = [train_scans[i] for i in sorted(rng.choice(len(train_scans), size=max(1, round(fraction * len(train_scans))), replace=False))]
    values = apply_overrides({}, {**SMALL_MODEL, **SMALL_TRAINING})
    values["model"]["name"] = "mask3d"
    values["model"]["input"] = {**spec["input"], "structure": "remove"}
    values["model"]["backbone"] = spec["backbone"]
    values = apply_overrides(values, {"data.train": [str(p) for p in chosen], "data.targets": "gt", "data.format": format,
                                      "freeze_backbone": True, "seed": seed, "device": device, "progress": progress,
                                      "eval_every": None, **(settings or {})})  # fmt: skip
    runs = {"pretrained": str(checkpoint), **({"control": None} if control else {})}
    result: dict[str, Any] = {"train_scans": [p.name for p in chosen]}
    eval_scenes = [read_scene(p, format=format) for p in eval_scans]
    for scene in eval_scenes:
        if scene.gt is None:
            raise InputError("the probe needs ground-truth instances; this scan has none", scene.source)
    for name, backbone in runs.items():
        folder = Path(output_dir) / name
        config = TrainConfig.from_dict(apply_overrides(values, {"output_dir": str(folder), "init_backbone_from": backbone}))
        trainer = Trainer(config, val_scenes=[])
        try:
            trainer.resume()
            trainer.fit()
        finally:
            trainer.context.close()
        predictor = Predictor(trainer.model.eval(), config.predict, device=trainer.device)
        evaluator = InstanceEvaluator(extra_metrics=False)
        for scene in eval_scenes:
            evaluator.process(scene.name, scene.gt, predictor.predict(scene))
        report = evaluator.evaluate()
        result[name] = {key: float(report[key]) for key in ("ap", "ap50", "ap25")}
    return result
