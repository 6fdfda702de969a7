"""The papers' whole pipelines, one module per paper, behind one registry (docs/recipes.md).

`fit(recipe, data, run, preset="small", settings=None, eval_data=None)` runs a recipe from a
folder of unlabelled scans to `RUN/model.safetensors`, resuming a killed run at the stage it was
in (`labelfree3d.recipes.base`): `unscene3d`, `freepoint`, `segment3d`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labelfree3d.errors import ParameterError
from labelfree3d.recipes.base import FitContext, FitResult, Recipe, StageResult, resolve_parameters, run_stages
from labelfree3d.recipes.freepoint import FreePointRecipe
from labelfree3d.recipes.segment3d import Segment3DRecipe
from labelfree3d.recipes.unscene3d import UnScene3DRecipe

__all__ = ["RECIPES", "Recipe", "FitContext", "FitResult", "StageResult", "fit", "make_recipe"]

RECIPES: dict[str, type[Recipe]] = {recipe.name: recipe for recipe in (UnScene3DRecipe, FreePointRecipe, Segment3DRecipe)}


def make_recipe(name: str) -> Recipe:
    """The registered recipe `name`.

    Raises:
        ParameterError: an unknown name (the message lists the known ones).
    """
    if name not in RECIPES:
        raise ParameterError(f"unknown recipe {name!r}; available: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]()


def fit(
    recipe: str,
    data: Any,
    run: str | os.PathLike[str],
    *,
    preset: str = "small",
    settings: Mapping[str, Any] | None = None,
    eval_data: Any = None,
    workers: int | None = None,
    device: str = "auto",
    progress: Any = False,
    log: Any = print,
) -> FitResult:
    """Run (or resume) a recipe: unlabelled scans `data` -> `run/model.safetensors`.

    Args:
        recipe: registered name ("unscene3d", "freepoint", "segment3d").
        data: training scans: a folder, a list file, a pattern or a sequence (`list_scans`).
        run: the run folder; re-running with the same arguments resumes it.
        preset: "small" (a compact model for CPUs) or "paper" (the papers' sizes and schedules).
        settings: dotted recipe parameters, e.g. {"cycles": 3, "train.set.optim.max_steps": 50}.
        eval_data: scans with ground truth every stage is scored on (never trained on); None: none.
        workers: worker processes of the batch stages (None: one per core).
        device: torch device for training and prediction.
        progress: progress bars (True, or a rich Console).
        log: callable taking one line of progress.

    Returns:
        `FitResult` with every stage's summary and scores and the final model's path.
    """
    from labelfree3d.io.scans import list_scans

    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ParameterError(f"workers must be an integer >= 0, got {workers!r}")  # before the run folder is made
    chosen = make_recipe(recipe)
    params = resolve_parameters(chosen, preset, settings)
    scans = [Path(os.path.abspath(p)) for p in list_scans(data)]
    eval_scans = [Path(os.path.abspath(p)) for p in list_scans(eval_data)] if eval_data is not None else []
    overlap = sorted(set(map(str, scans)) & set(map(str, eval_scans)))
    if overlap:
        raise ParameterError(f"{overlap[0]} is both a training and an evaluation scan; evaluate on scans training never sees")
    ctx = FitContext(Path(run), scans, eval_scans, params, workers, device, progress, log)
    return run_stages(chosen, ctx, preset)
