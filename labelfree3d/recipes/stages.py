"""Stage building blocks the recipes share: pseudo-label, train, predict, and scoring on held-out scans.

Each block works on the batch engine (`labelfree3d.batch`) or the trainer (`labelfree3d.train`)
and resumes its own partial work: pseudo-labelling through its cache, training from the stage's
last checkpoint, prediction by skipping scans whose output exists.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelfree3d.errors import InputError
from labelfree3d.recipes.base import MODEL_FILE, FitContext, Stage
from labelfree3d.structures import InstanceMasks
from labelfree3d.train.presets import SMALL_MODEL, SMALL_TRAINING

__all__ = [
    "SMALL_MODEL",
    "SMALL_TRAINING",
    "pseudo_label_stage",
    "train_stage",
    "predict_stage",
    "score_folder",
    "score_method",
    "score_model",
    "scan_input_settings",
    "make_pseudo_stage",
    "make_train_stage",
    "trained_scans",
    "keep_confident",
    "CONFIDENT",
]

CONFIDENT = "confident"  # a pseudo stage's sub-folder of the masks scored above the recipe's threshold

def scan_input_settings(ctx: FitContext, rooms: float, tabletop: float) -> dict[str, Any]:
    """Trainer settings that follow the kind of the first training scan: voxel edge and up axis.

    `tabletop` (metres) for tabletop frames (objects of a few cm), `rooms` otherwise. The up axis
    is the one augmentations rotate about and keep unflipped: "y" for camera-frame clouds (OSD,
    RGB-D frames; y points down there), "z" for everything else. Rotating a camera frame about z
    rolls the table sideways. (On the OSD selection split, models trained on ground truth scored
    27.2 / 55.9 / 77.0 AP / AP50 / AP25 with "y" and 32.8 / 67.4 / 69.6 with "z", one seed each:
    no measurable difference, so the physical reading is kept; docs/recipes.md.)
    """
    from labelfree3d.io import read_scene
    from labelfree3d.segment.structure import gravity_prior, scan_kind

    scene = read_scene(ctx.scans[0])
    up, _ = gravity_prior(scene)
    voxel = tabletop if scan_kind(scene) == "tabletop_frame" else rooms
    return {"model.input.voxel_size": voxel, "augment.up_axis": "xyz"[int(np.argmax(np.abs(up)))]}


def trained_scans(stage: Path) -> list[str]:
    """The scans a finished stage lists in its summary ("scans"): those a pseudo-labelling stage gave masks for."""
    import json

    return json.loads((stage / "done.json").read_text(encoding="utf-8"))["summary"]["scans"]


def keep_confident(folder: Path, output: Path, min_score: float) -> dict[str, int]:
    """Copy every `folder/<scene>.npz` to `output`, keeping the masks scored >= `min_score`.

    Returns:
        {"masks": masks read, "kept": masks written}.
    """
    from labelfree3d.io import read_predictions, write_predictions

    output.mkdir(parents=True, exist_ok=True)
    counts = {"masks": 0, "kept": 0}
    for path in sorted(folder.glob("*.npz")):
        masks, info = read_predictions(path)
        kept = masks.select(np.flatnonzero(masks.scores >= min_score))
        write_predictions(kept, output / path.name, scene_name=info.get("scene_name") or path.stem,
                          method=f"{info.get('method') or 'masks'}:score>={min_score}")  # fmt: skip
        counts["masks"] += len(masks)
        counts["kept"] += len(kept)
    return counts


def grow_confident_masks(
    folder: Path, scans: Sequence[str | Path], growth: float, workers: int | None = 0, progress: Any = False
) -> dict[str, int]:
    """Complete every `folder/<scene>.npz` in place: its masks grow along the scan's surface (`grow_labels`).

    Each unclaimed point outside the room structure (the part the model sees) joins the mask that
    reaches it first within `growth` metres along a graph linking points 2.5 point spacings apart;
    a point claimed by two masks stays with the higher-scored one. Scores are kept. Scans run
    through the batch engine (`workers`, `progress` as in `run_batch`).

    Returns:
        {"points_before", "points_after"}: mask points in all, before and after growing.

    Raises:
        InputError: a scan's masks could not be grown (its one-line reason).
    """
    from labelfree3d.batch.engine import run_batch

    task = functools.partial(_grow_scan_masks, folder=folder, growth=growth)
    run = run_batch(task, scans, workers=workers, progress=progress, description="growing M0")
    if run.failed:
        raise InputError(f"growing the pseudo masks failed: {run.failed[0].error}", folder)
    counts = {"points_before": 0, "points_after": 0}
    for before, after in run.values():
        counts["points_before"] += before
        counts["points_after"] += after
    return counts


def _grow_scan_masks(scan: Path, folder: Path, growth: float) -> tuple[int, int]:
    """`grow_confident_masks` for one scan: (mask points before, after); (0, 0) when it has no masks file."""
    from labelfree3d.geometry import grow_labels
    from labelfree3d.io import read_predictions, read_scene, write_predictions
    from labelfree3d.segment.structure import scene_scale, scene_structure

    scene = read_scene(scan)
    path = folder / f"{scene.name}.npz"
    if not path.is_file():
        return 0, 0
    masks, info = read_predictions(path)
    if masks.num_points != scene.num_points:
        raise InputError(f"its masks cover {masks.num_points} points, the scan {scan} has {scene.num_points}", path)
    if len(masks) == 0:
        return 0, 0
    labels = np.full(masks.num_points, -1, dtype=np.int64)
    for k in np.argsort(masks.scores, kind="stable"):  # higher scores written last: they keep shared points
        labels[masks[k]] = k
    unclaimed = scene_structure(scene).rest & (labels < 0)
    grown = grow_labels(scene.points, labels, unclaimed, 2.5 * scene_scale(scene).spacing, growth)
    order = np.argsort(grown, kind="stable")
    bounds = np.searchsorted(grown[order], np.arange(len(masks) + 1))
    lists = [order[bounds[k] : bounds[k + 1]] for k in range(len(masks))]
    completed = InstanceMasks.from_index_lists(lists, masks.scores, masks.num_points)
    scene_name = info.get("scene_name") or path.stem
    method = f"{info.get('method') or 'masks'}:grown {growth:g} m"
    write_predictions(completed, path, scene_name=scene_name, method=method)
    return int(masks.sizes.sum()), int(completed.sizes.sum())


def make_pseudo_stage(
    name: str,
    description: str,
    method: str,
    settings: Mapping[str, Any],
    min_score: float | None = None,
    growth: float = 0.0,
) -> Stage:
    """A stage that pseudo-labels the training scans with `method` and is scored by the same method on the eval scans.

    With `min_score`, the masks scored at least that much are also written to `<folder>/confident/`
    (the sparse, reliable set a recipe trains on); scoring always uses every mask. With `growth`
    > 0 (metres), those confident masks are completed along the surface (`grow_confident_masks`).
    """

    def run(ctx: FitContext, folder: Path) -> dict[str, Any]:
        summary = pseudo_label_stage(ctx, folder, ctx.scans, method, settings)
        if min_score is not None:
            counts = keep_confident(folder, folder / CONFIDENT, min_score)
            summary.update({"min_score": min_score, "confident_masks": counts["kept"], "all_masks": counts["masks"]})
            if growth > 0:
                grown = grow_confident_masks(folder / CONFIDENT, summary["scans"], growth, ctx.workers, ctx.progress)
                summary.update({"growth": growth, "confident_points_grown": grown})
        return summary

    def score(ctx: FitContext, folder: Path, _summary: dict[str, Any]) -> dict[str, float]:
        return score_method(ctx, folder, method, settings)

    return Stage(name, description, run, score=score)


def make_train_stage(
    name: str,
    description: str,
    scans_from: Path,
    targets: Path,
    train: Mapping[str, Any],
    init_from: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Stage:
    """A stage that trains on the scans a finished stage `scans_from` lists with the masks in `targets`; scored by its model."""

    def run(ctx: FitContext, folder: Path) -> dict[str, Any]:
        return train_stage(ctx, folder, trained_scans(scans_from), targets, train, init_from=init_from, overrides=overrides)

    def score(ctx: FitContext, folder: Path, _summary: dict[str, Any]) -> dict[str, float]:
        return score_model(ctx, folder, folder / MODEL_FILE)

    return Stage(name, description, run, score=score, model=True)


def _failed_lines(records: Sequence[Any]) -> list[str]:
    return [r.error for r in records if r.status == "failed"]


def pseudo_label_stage(ctx: FitContext, folder: Path, scans: Sequence[Path], method: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Pseudo masks of `method` for `scans` into `folder` (cached: a killed stage redoes only what is missing).

    Returns:
        {"method", "settings", "scans" (with masks), "failed" (one-line errors), "masks_per_scan"}.

    Raises:
        InputError: no scan could be pseudo-labelled.
    """
    from labelfree3d.batch.pseudo_label import pseudo_label

    run = pseudo_label(list(scans), method, folder, dict(settings), workers=ctx.workers, progress=ctx.progress)
    done = [r for r in run.records if r.status != "failed"]
    for line in _failed_lines(run.records):
        ctx.log(f"    skipped: {line}")
    if not done:
        raise InputError(f"{method} gave pseudo masks for none of the {len(run.records)} scans", folder)
    return {
        "method": method,
        "settings": dict(settings),
        "scans": [r.input for r in done],
        "failed": _failed_lines(run.records),
        "masks_per_scan": run.mask_counts()["mean"],
    }


def train_stage(
    ctx: FitContext,
    folder: Path,
    scans: Sequence[str | Path],
    targets: Path,
    train: Mapping[str, Any],
    init_from: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the recipe's model on `scans` with the pseudo masks in `targets`; resumes from the stage's checkpoint.

    Args:
        train: the recipe's "train" parameters: "config" (a built-in config name or YAML path)
            and "set" (dotted `TrainConfig` overrides, e.g. {"optim.max_steps": 300}).
        init_from: weights to start from (a previous cycle's model); None: the config's.
        overrides: further dotted overrides of this stage (e.g. a fine-tuning schedule).

    Returns:
        {"steps", "losses" (last step), "model", "seconds_per_step"}.
    """
    from labelfree3d.train.config import load_train_config
    from labelfree3d.train.trainer import Trainer

    values = dict(copy.deepcopy(train.get("set") or {}))
    values.update(overrides or {})
    values.update({
        "output_dir": str(folder),
        "data.train": [str(s) for s in scans],
        "data.targets": str(targets),
        "device": ctx.device,
        "progress": bool(ctx.progress),
    })  # fmt: skip
    if ctx.eval_scans and values.get("eval_every"):
        values["data.val"] = [str(s) for s in ctx.eval_scans]  # scored during training, never trained on
    else:
        values["eval_every"] = None
    if init_from is not None:
        values["init_from"] = str(init_from)
    config = load_train_config(train["config"], values)
    trainer = Trainer(config, val_scenes=[] if not config.eval_every else None)
    try:
        if trainer.resume():
            ctx.log(f"    resuming at step {trainer.step} of {trainer.total_steps}")
        result = trainer.fit()
    finally:
        trainer.context.close()
    return {
        "steps": result.step,
        "losses": result.losses,
        "model": str(folder / MODEL_FILE),
        "seconds_per_step": result.seconds_per_step,
    }


def predict_stage(ctx: FitContext, folder: Path, scans: Sequence[str | Path], model: Path, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Predictions of `model` for `scans` as `folder/<scene>.npz`; scans already predicted are kept (resume).

    The model's "predict" settings from its checkpoint apply, `settings` override them.
    """
    from labelfree3d.batch.predict import predict_scans
    from labelfree3d.io import read_prediction_metadata

    done = set()
    for path in folder.glob("*.npz"):
        try:
            done.add(read_prediction_metadata(path).get("source_scan"))
        except InputError:
            path.unlink()
    todo = [Path(s) for s in scans if str(s) not in done]
    if todo:
        run = predict_scans(todo, model, folder, settings, device=ctx.device, workers=1, progress=ctx.progress)
        if run.failed:
            raise InputError(f"prediction failed on {len(run.failed)} scan(s): {run.failed[0].error}", folder)
    return {"model": str(model), "scans": len(scans), "predicted": len(todo)}


def score_folder(ctx: FitContext, folder: Path) -> dict[str, float]:
    """AP / AP50 / AP25 (fractions) of the masks `folder/<scene>.npz` against the eval scans' ground truth."""
    from labelfree3d.evaluate import InstanceEvaluator
    from labelfree3d.io import read_predictions, read_scene

    evaluator = InstanceEvaluator(extra_metrics=False)
    for source in ctx.eval_scans:
        scene = read_scene(source)
        if scene.gt is None:
            raise InputError("evaluation scan carries no ground truth", source)
        masks, _ = read_predictions(folder / f"{scene.name}.npz")
        evaluator.process(scene.name, scene.gt, masks)
    report = evaluator.evaluate()
    return {key: float(report[key]) for key in ("ap", "ap50", "ap25")}


def score_method(ctx: FitContext, folder: Path, method: str, settings: Mapping[str, Any]) -> dict[str, float]:
    """The training-free method's own masks on the eval scans (what the trained model must beat)."""
    from labelfree3d.batch.pseudo_label import pseudo_label

    run = pseudo_label(list(ctx.eval_scans), method, folder / "eval", dict(settings), workers=ctx.workers, progress=ctx.progress)
    if run.failed:
        raise InputError(f"{method} failed on an evaluation scan: {run.failed[0].error}", folder)
    return score_folder(ctx, folder / "eval")


def score_model(ctx: FitContext, folder: Path, model: Path) -> dict[str, float]:
    """The model's predictions on the eval scans, scored."""
    predict_stage(ctx, folder / "eval", ctx.eval_scans, model)
    return score_folder(ctx, folder / "eval")
