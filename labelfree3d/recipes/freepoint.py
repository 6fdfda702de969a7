"""FreePoint (Zhang et al., CVPR 2024): multicut pseudo masks at two sigma levels, then two-step training.

Stages (docs/recipes.md):

1. `00_pseudo_low`: the multicut pseudo masks at sigma_low (`multicut`, level "low"): the base,
   over-segmented coarse masks (§3.2, §4: sigma 0.9).
2. `01_pseudo_high`: the same graph cut at sigma_high (level "high"): under-segmented masks
   (§4: sigma 1.2), where neighbouring parts of an object stay together.
3. `02_step1_train`: Mask3D trained from scratch on the over-segmented masks with dice + BCE +
   L_mean + L_box (Eq. 7; §4: 100 epochs).
4. `03_step2_train`: training continued from step 1's weights on the under-segmented masks
   (§3.3 "two-step training", §4: 10 epochs).

The paper's lambda weights of Eq. 7 are not printed; the configs `freepoint_step1/2` say which
values stand in for them.
"""

from __future__ import annotations

from typing import Any

from labelfree3d.recipes.base import MODEL_FILE, FitContext, Recipe, Stage
from labelfree3d.recipes.stages import (
    SMALL_MODEL,
    SMALL_TRAINING,
    make_pseudo_stage,
    make_train_stage,
    scan_input_settings,
)

__all__ = ["FreePointRecipe"]


class FreePointRecipe(Recipe):
    """FreePoint: over- and under-segmented multicut masks, step 1 on the first, step 2 on the second."""

    name = "freepoint"
    summary = "multicut pseudo masks at sigma_low and sigma_high, step-1 training with weak losses, step 2"
    flat_sections = ("pseudo.settings", "step1.set", "step2.set")
    presets = {
        # the paper's model and schedule (§4: Mask3D, 100 epochs then 10), for GPUs
        "paper": {
            "pseudo": {"method": "multicut", "settings": {}},
            "step1": {"config": "freepoint_step1", "set": {}},
            "step2": {"config": "freepoint_step2", "set": {}},
            "voxel_size_rooms": 0.02,
            "voxel_size_tabletop": 0.01,
        },
        # the compact model of every small preset; step 2 is a tenth of step 1, as in §4
        "small": {
            "pseudo": {"method": "multicut", "settings": {}},
            "step1": {"config": "freepoint_step1", "set": {**SMALL_MODEL, **SMALL_TRAINING}},
            "step2": {"config": "freepoint_step2", "set": {**SMALL_MODEL, **SMALL_TRAINING, "optim.max_steps": 300}},
            "voxel_size_rooms": 0.04,
            "voxel_size_tabletop": 0.02,
        },
    }

    def stages(self, ctx: FitContext) -> list[Stage]:
        params = ctx.params
        method = params["pseudo"]["method"]
        settings: dict[str, Any] = dict(params["pseudo"].get("settings") or {})
        settings.pop("level", None)  # the recipe asks for each level itself
        inputs = scan_input_settings(ctx, float(params["voxel_size_rooms"]), float(params["voxel_size_tabletop"]))
        steps = {}
        for step in ("step1", "step2"):
            steps[step] = {"config": params[step]["config"], "set": dict(params[step].get("set") or {})}
            for key, value in inputs.items():
                steps[step]["set"].setdefault(key, value)
        low, high = ctx.run / "00_pseudo_low", ctx.run / "01_pseudo_high"
        step1 = ctx.run / "02_step1_train"
        return [
            make_pseudo_stage(low.name, f"{method} masks at sigma_low (over-segmented)", method, {**settings, "level": "low"}),
            make_pseudo_stage(high.name, f"{method} masks at sigma_high (under-segmented)", method, {**settings, "level": "high"}),
            make_train_stage(step1.name, "step 1: train on the over-segmented masks (dice + BCE + L_mean + L_box)", low, low,
                             steps["step1"]),
            make_train_stage("03_step2_train", "step 2: continue on the under-segmented masks", high, high, steps["step2"],
                             init_from=step1 / MODEL_FILE),
        ]  # fmt: skip
