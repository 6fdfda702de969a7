"""Segment3D (Huang et al., ECCV 2024): 2D masks lifted onto partial clouds, then confident masks on full scans.

Stages (docs/recipes.md):

1. `00_frames`: every training input becomes stage-1 data (§3.1): an organized cloud (an OSD
   `.pcd`) is one RGB-D frame already, its 2D masks lifted through the pixel <-> point map; an
   RGB-D sequence gives every `frame_stride`-th frame back-projected to a partial cloud with its
   masks (Eq. 1), and its TSDF-fused mesh as the full scan of stage 2. Each point takes the mask
   with the highest predicted quality (App. A). A scan without frames only joins stage 2.
2. `01_stage1_train`: the mask transformer trained on the partial clouds with L_obj + L_mask
   (Eqs. 2-3; App. A: lr 2e-4, 20 epochs, 150 queries, lambda 2 / 2 / 5).
3. `02_stage2_predict`: the stage-1 model on the full scans.
4. `03_stage2_masks`: masks with c = c_mask * c_obj >= tau_c (§3.2), each split into DBSCAN
   clusters (App. A: "to split erroneously merged instances").
5. `04_stage2_train`: fine-tuned from stage 1 on the full scans without L_obj (§3.2; App. A:
   lr 1e-4, 50 epochs).

tau_c and the DBSCAN parameters are not printed in the paper: `confidence` 0.5 (half-sure on
both factors' product) and eps 5 cm with 5 core points, the values of the authors' released
mask-generation script, are the defaults.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from labelfree3d.errors import InputError
from labelfree3d.recipes.base import MODEL_FILE, FitContext, Recipe, Stage
from labelfree3d.recipes.stages import (
    SMALL_MODEL,
    SMALL_TRAINING,
    make_train_stage,
    predict_stage,
    scan_input_settings,
    score_folder,
    trained_scans,
)
from labelfree3d.structures import InstanceMasks

__all__ = ["Segment3DRecipe", "lift_training_frames", "confident_masks"]


def confident_masks(masks: InstanceMasks, points: np.ndarray, confidence: float, eps: float, min_samples: int) -> InstanceMasks:
    """Segment3D's stage-2 targets: masks with confidence >= `confidence`, split into DBSCAN clusters.

    Args:
        masks: (K masks over N points) the stage-1 model's predictions, scores c = c_mask * c_obj.
        points: (N, 3) coordinates in metres.
        confidence: tau_c.
        eps: DBSCAN radius in metres.
        min_samples: DBSCAN core-point threshold (noise points leave the mask).

    Returns:
        Masks over N points, each a spatially connected part of a confident mask, keeping its score.
    """
    from labelfree3d.models.postprocess import split_disconnected

    kept = masks.select(np.flatnonzero(masks.scores >= confidence))
    return split_disconnected(kept, points, eps, min_samples=min_samples, min_points=min_samples)


def lift_training_frames(
    ctx: FitContext, folder: Path, scans: list[Path], generator: str, settings: Mapping[str, Any], frame_stride: int,
    min_points: int,
) -> dict[str, Any]:  # fmt: skip
    """Stage-1 data of `scans` into `folder`: `frames/<name>.ply` partial clouds, `masks/<name>.npz` lifted masks.

    Organized clouds are their own frame (the cloud file is the training scan; no copy is
    written). Frames whose masks exist already are skipped (resume).

    Returns:
        {"scans": partial clouds with masks, "full_scans": the stage-2 scans, "frames", "masks_per_frame"}.
    """
    from labelfree3d.io import read_scene, write_predictions, write_scene
    from labelfree3d.lift.dataset import Stage1Writer
    from labelfree3d.lift.lifting import lift_to_points
    from labelfree3d.lift.masks2d import make_mask_generator
    from labelfree3d.lift.organized import is_organized, organized_frame
    from labelfree3d.structures import Scene

    masks_dir, frames_dir, full_dir = folder / "masks", folder / "frames", folder / "scans"
    masks_dir.mkdir(parents=True, exist_ok=True)
    built: list[Any] = []

    def make() -> Any:  # the generator is built once, and only when some frame still needs masks
        if not built:
            built.append(make_mask_generator(generator, **dict(settings)))
        return built[0]

    frames, full_scans, counts = [], [], []
    for path in scans:
        scene = read_scene(path)
        if is_organized(scene):
            target = masks_dir / f"{scene.name}.npz"
            if not target.is_file():
                frame = organized_frame(scene)
                lifted = lift_to_points(make().generate(frame), scene.metadata["pixel_index"], min_points, resolve_overlaps=True)
                write_predictions(lifted, target, scene_name=scene.name, method=f"lifted({generator})")
            frames.append(str(path))
            full_scans.append(str(path))
        elif scene.frames is not None and len(scene.frames) and scene.num_points == 0:
            writer = Stage1Writer(make(), frame_stride=1, min_mask_points=min_points)
            selected = scene.frames[::frame_stride]
            for position, frame_name in enumerate(selected.frame_names):
                name = f"{scene.name}_{frame_name}"
                cloud_path, target = frames_dir / f"{name}.ply", masks_dir / f"{name}.npz"
                if not (cloud_path.is_file() and target.is_file()):
                    sample = writer.make_sample(selected[position])
                    if sample["points"].shape[0] == 0:
                        continue
                    frames_dir.mkdir(parents=True, exist_ok=True)
                    cloud = Scene(points=sample["points"], colors=sample["colors"].astype(np.float32) / 255.0, name=name)
                    labels = sample["mask_ids"].astype(np.int64)
                    write_predictions(InstanceMasks.from_labels(labels, sample["mask_scores"]), target, scene_name=name,
                                      method=f"lifted({generator})")  # fmt: skip
                    write_scene(cloud, cloud_path)
                frames.append(str(cloud_path))
            mesh_path = full_dir / f"{scene.name}.ply"
            if not mesh_path.is_file():
                from labelfree3d.lift.fusion import TSDFFusion

                full_dir.mkdir(parents=True, exist_ok=True)
                mesh, _ = TSDFFusion().fuse(scene.frames, name=scene.name, source=str(path))
                write_scene(mesh, mesh_path)
            full_scans.append(str(mesh_path))
        else:
            full_scans.append(str(path))  # a full scan without frames: stage 2 only
        ctx.log(f"    {scene.name}: {len(frames)} frames so far")
    from labelfree3d.io import read_predictions

    for frame in frames:
        counts.append(len(read_predictions(masks_dir / f"{Path(frame).stem}.npz")[0]))
    if not frames:
        raise InputError("no training input has RGB-D frames or an image layout: Segment3D's stage 1 needs frames", scans[0])
    return {"scans": frames, "full_scans": full_scans, "frames": len(frames), "masks_per_frame": float(np.mean(counts))}


class Segment3DRecipe(Recipe):
    """Segment3D: stage 1 on lifted 2D masks of partial clouds, stage 2 on its own confident masks of full scans."""

    name = "segment3d"
    summary = "2D masks lifted onto RGB-D frames (stage 1), confident masks + DBSCAN on full scans (stage 2)"
    flat_sections = ("masks2d.settings", "stage1.set", "stage2.set")
    presets = {
        # App. A's model and schedules, for GPUs; frame stride 25 on 30 Hz sequences (§4.1)
        "paper": {
            "masks2d": {"generator": "classic", "settings": {}},
            "frame_stride": 25,
            "min_mask_points": 100,
            "stage1": {"config": "segment3d_stage1", "set": {}},
            "stage2": {"config": "segment3d_stage2", "set": {}},
            "confidence": 0.5,
            "dbscan_eps": 0.05,
            "dbscan_min_points": 5,
            "voxel_size_rooms": 0.02,
            "voxel_size_tabletop": 0.01,
        },
        "small": {
            "masks2d": {"generator": "classic", "settings": {}},
            "frame_stride": 5,
            "min_mask_points": 100,
            "stage1": {"config": "segment3d_stage1", "set": {**SMALL_MODEL, **SMALL_TRAINING}},
            "stage2": {"config": "segment3d_stage2", "set": {**SMALL_MODEL, **SMALL_TRAINING, "optim.max_steps": 300}},
            "confidence": 0.5,
            "dbscan_eps": 0.05,
            "dbscan_min_points": 5,
            "voxel_size_rooms": 0.04,
            "voxel_size_tabletop": 0.02,
        },
    }

    def stages(self, ctx: FitContext) -> list[Stage]:
        params = ctx.params
        generator = params["masks2d"]["generator"]
        generator_settings = dict(params["masks2d"].get("settings") or {})
        inputs = scan_input_settings(ctx, float(params["voxel_size_rooms"]), float(params["voxel_size_tabletop"]))
        train = {}
        for stage in ("stage1", "stage2"):
            train[stage] = {"config": params[stage]["config"], "set": dict(params[stage].get("set") or {})}
            for key, value in inputs.items():
                train[stage]["set"].setdefault(key, value)
        frames, stage1 = ctx.run / "00_frames", ctx.run / "01_stage1_train"
        predicted, confident = ctx.run / "02_stage2_predict", ctx.run / "03_stage2_masks"
        lift = functools.partial(
            lift_training_frames, generator=generator, settings=generator_settings,
            frame_stride=int(params["frame_stride"]), min_points=int(params["min_mask_points"]),
        )  # fmt: skip
        return [
            Stage(frames.name, f"{generator} 2D masks lifted onto the partial clouds of every frame",
                  lambda ctx, folder: lift(ctx, folder, ctx.scans), score=lambda ctx, folder, _: _score_lifted(ctx, folder, lift)),
            make_train_stage(stage1.name, "stage 1: train on the partial clouds (L_obj + L_mask)", frames, frames / "masks",
                             train["stage1"]),
            Stage(predicted.name, "stage 2: predict the full scans with the stage-1 model",
                  functools.partial(_predict_full_scans, frames=frames, model=stage1 / MODEL_FILE)),
            Stage(confident.name, f"stage 2: masks with c >= {params['confidence']}, split by DBSCAN",
                  functools.partial(_confident_folder, predicted=predicted, confidence=float(params["confidence"]),
                                    eps=float(params["dbscan_eps"]), min_samples=int(params["dbscan_min_points"]))),
            make_train_stage("04_stage2_train", "stage 2: fine-tune on the full scans' confident masks (no L_obj)", confident,
                             confident, train["stage2"], init_from=stage1 / MODEL_FILE),
        ]  # fmt: skip


def _score_lifted(ctx: FitContext, folder: Path, lift) -> dict[str, float]:
    """The lifted 2D masks of the eval scans (what stage 1 learns from); none when they have no frames."""
    from labelfree3d.io import read_scene
    from labelfree3d.lift.organized import is_organized

    if not all(is_organized(read_scene(p)) for p in ctx.eval_scans):
        return {}
    lift(ctx, folder / "eval", ctx.eval_scans)
    return score_folder(ctx, folder / "eval" / "masks")


def _predict_full_scans(ctx: FitContext, folder: Path, frames: Path, model: Path) -> dict[str, Any]:
    import json

    full_scans = json.loads((frames / "done.json").read_text(encoding="utf-8"))["summary"]["full_scans"]
    return {**predict_stage(ctx, folder, full_scans, model), "scans": full_scans}


def _confident_folder(ctx: FitContext, folder: Path, predicted: Path, confidence: float, eps: float, min_samples: int) -> dict[str, Any]:
    from labelfree3d.io import read_predictions, read_scene, write_predictions

    kept, scans = [], []
    for source in trained_scans(predicted):
        scene = read_scene(source)
        masks, _ = read_predictions(predicted / f"{scene.name}.npz")
        selected = confident_masks(masks, scene.points, confidence, eps, min_samples)
        if len(selected) == 0:
            ctx.log(f"    {scene.name}: no mask reaches c >= {confidence}; not trained on in stage 2")
            continue
        write_predictions(selected, folder / f"{scene.name}.npz", scene_name=scene.name, method="segment3d:confident-masks")
        kept.append(len(selected))
        scans.append(source)
    if not scans:
        raise InputError(f"no full scan has a predicted mask with confidence >= {confidence}; lower `confidence`", predicted)
    return {"scans": scans, "masks_per_scan": float(np.mean(kept))}
