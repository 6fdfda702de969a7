"""UnScene3D (Rozenberszki et al., CVPR 2024): NCut pseudo masks, then self-training with DropLoss and mask addition.

Stages (docs/recipes.md):

1. `00_pseudo`: masked NCut on superpoints (`ncut`, §3.1) over the training scans; M^0 is the
   masks scored >= `m0_min_score` (`00_pseudo/confident/`): §3.1 favours "a reliable set of
   masks at the cost of restricting to a sparse initial set", and NCut's score 1 - NCut/2 is
   0.5 for a cut no better than the rest of the graph. With `m0_growth_voxels` > 0 (ours, not
   the paper's; on in the small preset) every M^0 mask is then completed along the surface by
   up to that many model voxels (`grow_confident_masks`): targets covering only part of an
   object taught the small model to predict parts (docs/recipes.md).
2. `01_train`: the mask transformer trained from scratch on M^0 with DropLoss (§3.2, App. 7.2:
   unmatched queries that overlap no pseudo mask by tau_drop get no "no object" loss).
3. for every further cycle t = 2..`cycles` (4 in all, §4 "a total of 4 training cycles"):
   `predict` the training scans with the previous cycle's model, `merge` M^t = M^0 plus the
   `top_k` most confident predictions whose IoU with every mask already in the set is below
   `addition_iou` (§3.2: "we only accept new instances if the added information value is larger
   than the minimum threshold, measured by simple segment IoU scores"), and `train` fine-tuning
   from the previous weights on M^t (§4: 50 more epochs).

The paper's K and IoU threshold are not printed; `top_k` and `addition_iou` are parameters. M^t is
built from M^0 and the current predictions, not from M^(t-1): the model trained on M^(t-1)
reproduces what was added before, and its newest predictions replace the older ones.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from labelfree3d.errors import ParameterError
from labelfree3d.recipes.base import MODEL_FILE, FitContext, Recipe, Stage
from labelfree3d.recipes.stages import (
    CONFIDENT,
    SMALL_MODEL,
    SMALL_TRAINING,
    make_pseudo_stage,
    make_train_stage,
    predict_stage,
    scan_input_settings,
    trained_scans,
)
from labelfree3d.structures import InstanceMasks

__all__ = ["UnScene3DRecipe", "add_confident_masks", "merge_folders"]

def add_confident_masks(initial: InstanceMasks, predicted: InstanceMasks, top_k: int, addition_iou: float) -> InstanceMasks:
    """M^0 plus the most confident predictions that add something new (UnScene3D's mask addition).

    The `top_k` most confident predictions are visited in order of confidence; one joins the set
    when its IoU with every mask already in it (the initial masks and the predictions accepted
    before it) is below `addition_iou`.

    Args:
        initial: (K0 masks over N points) the initial pseudo masks M^0, always kept.
        predicted: (K masks over N points) the model's predictions with their confidences.
        top_k: how many of the most confident predictions are considered.
        addition_iou: a prediction overlapping a mask of the set by this IoU or more is a duplicate.

    Returns:
        (K0 + accepted masks over N points): M^0 first, then the accepted predictions.
    """
    if predicted.num_points != initial.num_points:
        raise ValueError(f"predictions cover {predicted.num_points} points, the pseudo masks {initial.num_points}")
    candidates = predicted.select(np.argsort(-predicted.scores, kind="stable")[: max(int(top_k), 0)])
    if len(candidates) == 0:
        return initial
    cand = candidates.to_sparse().astype(np.float32)
    sizes = candidates.sizes.astype(np.float64)
    against_initial = (cand @ initial.to_sparse().astype(np.float32).T).toarray()
    iou_initial = against_initial / np.maximum(sizes[:, None] + initial.sizes[None, :] - against_initial, 1)
    among = (cand @ cand.T).toarray()
    iou_among = among / np.maximum(sizes[:, None] + sizes[None, :] - among, 1)
    accepted: list[int] = []
    for k in range(len(candidates)):
        if sizes[k] == 0:
            continue
        if (iou_initial[k] >= addition_iou).any() if iou_initial.shape[1] else False:
            continue
        if any(iou_among[k, j] >= addition_iou for j in accepted):
            continue
        accepted.append(k)
    return InstanceMasks.concatenate([initial, candidates.select(np.asarray(accepted, dtype=np.int64))])


def merge_folders(initial: Path, predicted: Path, output: Path, top_k: int, addition_iou: float) -> dict[str, Any]:
    """`add_confident_masks` for every scene of `initial` (its `<scene>.npz`) with `predicted/<scene>.npz`.

    Returns:
        {"scenes", "initial_masks", "added_masks"} in total.
    """
    from labelfree3d.io import read_predictions, write_predictions

    output.mkdir(parents=True, exist_ok=True)
    counts = {"scenes": 0, "initial_masks": 0, "added_masks": 0}
    for path in sorted(initial.glob("*.npz")):
        base, info = read_predictions(path)
        scene = info.get("scene_name") or path.stem
        guess, _ = read_predictions(predicted / f"{scene}.npz")
        merged = add_confident_masks(base, guess, top_k, addition_iou)
        write_predictions(merged, output / path.name, scene_name=scene, method="unscene3d:mask-addition")
        counts["scenes"] += 1
        counts["initial_masks"] += len(base)
        counts["added_masks"] += len(merged) - len(base)
    return counts


class UnScene3DRecipe(Recipe):
    """UnScene3D: NCut pseudo masks on superpoints, self-training with DropLoss and mask addition."""

    name = "unscene3d"
    summary = "masked NCut pseudo masks, then self-training cycles (DropLoss, mask addition)"
    presets = {
        # the paper's schedule: 600 epochs then 50 per cycle, batch 8, 4 cycles (§4), for GPUs
        "paper": {
            "pseudo": {"method": "ncut", "settings": {}},
            "train": {"config": "unscene3d_selftrain", "set": {}},
            "m0_min_score": 0.51,
            "voxel_size_rooms": 0.02,
            "voxel_size_tabletop": 0.01,
            "m0_growth_voxels": 0,  # the paper trains on NCut's masks as they are
            "cycles": 4,
            "finetune": {"optim.epochs": 50},
            "top_k": 20,  # not printed by the paper
            "addition_iou": 0.3,  # not printed by the paper
        },
        # a compact model and a few hundred steps: the 45 OSD clouds in about 20 minutes on 2 cores
        "small": {
            "pseudo": {"method": "ncut", "settings": {}},
            "train": {
                "config": "unscene3d_selftrain",
                "set": {**SMALL_MODEL, **SMALL_TRAINING},
            },
            "m0_min_score": 0.51,
            "voxel_size_rooms": 0.04,
            "voxel_size_tabletop": 0.02,
            # ours: M0's masks completed along the surface by up to 5 voxels (docs/recipes.md): partial
            # pseudo masks were what kept the small model from generalising on the OSD selection split
            "m0_growth_voxels": 5,
            "cycles": 2,
            "finetune": {"optim.max_steps": 500},
            "top_k": 20,
            "addition_iou": 0.3,
        },
    }

    def stages(self, ctx: FitContext) -> list[Stage]:
        params = ctx.params
        method, settings = params["pseudo"]["method"], params["pseudo"].get("settings") or {}
        train = {"config": params["train"]["config"], "set": dict(params["train"].get("set") or {})}
        inputs = scan_input_settings(ctx, float(params["voxel_size_rooms"]), float(params["voxel_size_tabletop"]))
        for key, value in inputs.items():
            train["set"].setdefault(key, value)
        if float(params["m0_growth_voxels"]) < 0:
            raise ParameterError(f"m0_growth_voxels must be 0 (off) or more, got {params['m0_growth_voxels']!r}")
        growth = float(params["m0_growth_voxels"]) * float(train["set"]["model.input.voxel_size"])
        pseudo = ctx.run / "00_pseudo"
        min_score = params["m0_min_score"]
        description = f"{method} pseudo masks of the training scans; M0 = those scored >= {min_score}"
        if growth > 0:
            description += f", completed along the surface by up to {growth:g} m"
        first = make_pseudo_stage(pseudo.name, description, method, settings, min_score=float(min_score), growth=growth)
        stages = [first]
        initial = pseudo / CONFIDENT
        previous_model: Path | None = None
        targets = initial
        for cycle in range(1, int(params["cycles"]) + 1):
            number = len(stages)
            if cycle > 1:
                predicted = ctx.run / f"{number:02d}_cycle{cycle}_predict"
                merged = ctx.run / f"{number + 1:02d}_cycle{cycle}_masks"
                stages.append(
                    Stage(predicted.name, f"cycle {cycle}: predict the training scans with cycle {cycle - 1}'s model",
                          functools.partial(_predict, pseudo=pseudo, model=previous_model))
                )  # fmt: skip
                stages.append(
                    Stage(merged.name, f"cycle {cycle}: M{cycle - 1} = M0 + confident new predictions",
                          functools.partial(_merge, initial=initial, predicted=predicted, top_k=int(params["top_k"]),
                                            addition_iou=float(params["addition_iou"])))
                )  # fmt: skip
                targets = merged
                number += 2
            folder = ctx.run / f"{number:02d}_cycle{cycle}_train"
            description = f"cycle {cycle}: train on " + (f"{targets.name} from the previous weights" if cycle > 1 else "M0")
            overrides = dict(params["finetune"]) if cycle > 1 else {}
            stages.append(make_train_stage(folder.name, description, pseudo, targets, train, previous_model, overrides))
            previous_model = folder / MODEL_FILE
        return stages


def _predict(ctx: FitContext, folder: Path, pseudo: Path, model: Path) -> dict[str, Any]:
    return predict_stage(ctx, folder, trained_scans(pseudo), model)


def _merge(ctx: FitContext, folder: Path, initial: Path, predicted: Path, top_k: int, addition_iou: float) -> dict[str, Any]:
    return merge_folders(initial, predicted, folder, top_k, addition_iou)
