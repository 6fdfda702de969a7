"""The machinery every paper recipe shares: a run folder of stages, resumed stage by stage.

A recipe (`Recipe` subclass, one module per paper) turns a folder of unlabelled scans into a
trained model through a list of `Stage`s: pseudo-labelling with a training-free method, training,
predicting on the training scans, merging masks, fine-tuning. `fit` runs them in order inside the
run folder:

    RUN/recipe.json              recipe, preset, parameters, scans, package version
    RUN/<NN_stage>/              what the stage wrote (pseudo masks, a trainer's run folder, ...)
    RUN/<NN_stage>/done.json     written last, atomically: the stage's summary and its scores
    RUN/metrics.json             every scored stage's AP / AP50 / AP25 on the held-out scans
    RUN/model.safetensors        the final model (`labelfree3d predict --checkpoint`)

Re-running the same command skips stages with a `done.json`; the stage that was killed resumes
inside itself (pseudo-labelling from its cache, training from its last checkpoint). Ground truth
is never used for training: a stage is only *scored* on the evaluation scans (`--eval`).

Under `torchrun` (WORLD_SIZE > 1) every process runs `fit`: the training stages run on all of
them (DistributedDataParallel, `labelfree3d.train`), every other stage, the scoring and every
file of the run folder on rank 0 alone; the other ranks wait for the stage's `done.json`.
"""

from __future__ import annotations

import abc
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from labelfree3d.errors import InputError, ParameterError

__all__ = ["FitContext", "Stage", "StageResult", "FitResult", "Recipe", "resolve_parameters", "run_stages", "MODEL_FILE"]

MODEL_FILE = "model.safetensors"
RECIPE_FILE = "recipe.json"
DONE_FILE = "done.json"
METRICS_FILE = "metrics.json"


@dataclass
class FitContext:
    """What every stage of a run sees.

    Attributes:
        run: the run folder.
        scans: training scans (no labels are read from them for training).
        eval_scans: scans with ground truth the stages are scored on (may be empty).
        params: the recipe's resolved parameters (preset + `--set`).
        workers: worker processes for the batch stages (None: one per core).
        device: torch device for training and prediction ("auto", "cpu", "cuda", "cuda:N").
        progress: progress bars on stderr (True) or on a `rich.console.Console`; False: none.
        log: one line of progress for the user (stderr).
    """

    run: Path
    scans: list[Path]
    eval_scans: list[Path]
    params: dict[str, Any]
    workers: int | None = None
    device: str = "auto"
    progress: Any = False
    log: Callable[[str], None] = print


@dataclass
class Stage:
    """One step of a recipe.

    Attributes:
        name: folder name inside the run, "<NN>_<what>" (e.g. "01_train").
        description: one line for the log and the report.
        run: `run(ctx, folder) -> summary` does the work into `folder` and returns a small JSON-able
            summary; it must resume its own partial work when the folder is not empty.
        score: `score(ctx, folder, summary) -> {"ap", "ap50", "ap25"}` on `ctx.eval_scans`, or None
            for stages without masks of their own to score.
        model: the stage leaves `folder/model.safetensors` (the last such stage's is the final model).
    """

    name: str
    description: str
    run: Callable[[FitContext, Path], dict[str, Any]]
    score: Callable[[FitContext, Path, dict[str, Any]], dict[str, float]] | None = None
    model: bool = False


@dataclass
class StageResult:
    """A finished stage: its summary, scores (fractions; empty when not scored), seconds, and whether it was resumed from disk."""

    name: str
    description: str
    summary: dict[str, Any]
    scores: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: bool = False


@dataclass
class FitResult:
    """A whole `fit` run: its stages in order and the final model."""

    run: Path
    recipe: str
    stages: list[StageResult]
    model: Path | None

    def table(self) -> list[dict[str, Any]]:
        """One row per stage: name, description, AP / AP50 / AP25 (None when not scored), seconds."""
        return [
            {"stage": s.name, "what": s.description, **{k: s.scores.get(k) for k in ("ap", "ap50", "ap25")}, "seconds": s.seconds}
            for s in self.stages
        ]


class Recipe(abc.ABC):
    """A paper's pipeline: presets of parameters and the stages they give.

    Subclasses set `name`, `summary`, `presets` (preset name -> nested parameter mapping; every
    parameter a user may `--set` must appear in each preset, but for `flat_sections`) and
    implement `stages(ctx)`.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    # sections whose keys are passed on as they are (see `resolve_parameters`)
    flat_sections: ClassVar[tuple[str, ...]] = ("pseudo.settings", "train.set", "finetune")

    @abc.abstractmethod
    def stages(self, ctx: FitContext) -> list[Stage]:
        """The stages of a run with these parameters and scans, in order (folder names unique)."""


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def resolve_parameters(recipe: Recipe, preset: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The preset's parameters with dotted `settings` applied ("cycles=2", "train.set.optim.lr=1e-3").

    Sections listed in `recipe.flat_sections` hold keys of their own, passed on as they are: the
    trainer's dotted config overrides ("train.set.optim.max_steps" sets "optim.max_steps" there) or
    the pseudo method's parameters ("pseudo.settings.k_thresh"). Any other key must exist in the
    preset, so that typos do not pass silently.

    Raises:
        ParameterError: an unknown preset or key.
    """
    import copy

    from labelfree3d.train.config import apply_overrides

    if preset not in recipe.presets:
        raise ParameterError(f"recipe {recipe.name} has no preset {preset!r}; presets: {', '.join(recipe.presets)}")
    values = copy.deepcopy(recipe.presets[preset])
    known = {k for k in _flatten(values) if not any(k == s or k.startswith(f"{s}.") for s in recipe.flat_sections)}
    for key, value in (settings or {}).items():
        section = next((s for s in recipe.flat_sections if key.startswith(f"{s}.")), None)
        if section is not None:
            target = values
            for part in section.split("."):
                target = target.setdefault(part, {})
            target[key[len(section) + 1 :]] = value
        elif key in known:
            values = apply_overrides(values, {key: _like_default(value, _flatten(recipe.presets[preset]).get(key), key)})
        else:
            choices = ", ".join(sorted(known | {f"{s}.KEY" for s in recipe.flat_sections}))
            raise ParameterError(f"recipe {recipe.name} has no parameter {key!r}; parameters: {choices}")
    return values


def _like_default(value: Any, default: Any, key: str) -> Any:
    """`value` checked against the type of the preset's `default` for `key` (bool, int, float, str).

    A string where the preset holds a number or a flag ("cycles=maybe") is refused here, before
    the run folder is touched, rather than failing or reading as True stages later.
    """
    from labelfree3d.models._params import check_scalar_type

    if default is None or value is None:
        return value
    kind = type(default)
    if kind is int and isinstance(value, float):  # cycles=2.0 is fine; 2.5 is not
        if value != int(value):
            raise ParameterError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if kind in (bool, int, float, str):
        return check_scalar_type(value, kind, key)
    return value


def _write_json(path: Path, payload: Any) -> None:
    from labelfree3d.io.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(payload, indent=1, default=str) + "\n")


def _check_run_folder(run: Path, description: dict[str, Any]) -> None:
    """Start RUN, or make sure an existing RUN was started with the same recipe, parameters and scans."""
    recipe_file = run / RECIPE_FILE
    if recipe_file.is_file():
        try:
            stored = json.loads(recipe_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(f"not a readable run description ({error})", recipe_file) from error
        for key in ("recipe", "preset", "params", "scans", "eval_scans"):
            if stored.get(key) != json.loads(json.dumps(description[key], default=str)):
                raise ParameterError(
                    f"{run} was started with another {key} ({recipe_file}); use a new -o folder, or delete it to start over"
                )
        return
    if run.exists() and not run.is_dir():
        raise InputError("the run folder is a file", run)
    run.mkdir(parents=True, exist_ok=True)
    _write_json(recipe_file, description)


def _wait_for(path: Path, what: str, timeout: float = 7 * 24 * 3600.0) -> None:
    """Block until rank 0 has written `path` (a rank other than 0 under torchrun)."""
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if time.monotonic() > deadline:
            raise InputError(f"rank 0 did not finish {what} in time", path)
        time.sleep(1.0)


def run_stages(recipe: Recipe, ctx: FitContext, preset: str) -> FitResult:
    """Run (or resume) every stage of `recipe` in `ctx.run`; see the module docstring for the layout."""
    import labelfree3d

    rank = int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0

    description = {
        "recipe": recipe.name,
        "preset": preset,
        "params": ctx.params,
        "scans": [str(p) for p in ctx.scans],
        "eval_scans": [str(p) for p in ctx.eval_scans],
        "version": labelfree3d.__version__,
    }
    if rank == 0:
        _check_run_folder(ctx.run, description)
    else:
        _wait_for(ctx.run / RECIPE_FILE, "starting the run")
    stages = recipe.stages(ctx)
    results: list[StageResult] = []
    final_model: Path | None = None
    for number, stage in enumerate(stages):
        folder = ctx.run / stage.name
        done = folder / DONE_FILE
        if done.is_file():
            stored = json.loads(done.read_text(encoding="utf-8"))
            result = StageResult(stage.name, stage.description, stored["summary"], stored.get("scores", {}), stored.get("seconds", 0.0), True)
            ctx.log(f"[{number + 1}/{len(stages)}] {stage.name}: done earlier, skipped")
        elif rank != 0:
            if stage.model:  # training: every rank takes part
                stage.run(ctx, folder)
            _wait_for(done, stage.name)
            stored = json.loads(done.read_text(encoding="utf-8"))
            result = StageResult(stage.name, stage.description, stored["summary"], stored.get("scores", {}), stored.get("seconds", 0.0))
        else:
            ctx.log(f"[{number + 1}/{len(stages)}] {stage.name}: {stage.description}")
            folder.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            summary = stage.run(ctx, folder)
            scores = stage.score(ctx, folder, summary) if stage.score is not None and ctx.eval_scans else {}
            seconds = time.perf_counter() - started
            _write_json(done, {"stage": stage.name, "description": stage.description, "summary": summary, "scores": scores, "seconds": seconds})
            result = StageResult(stage.name, stage.description, summary, scores, seconds)
        if result.scores and rank == 0:
            ctx.log("    " + "  ".join(f"{k.upper()} {100 * result.scores[k]:.1f}" for k in ("ap", "ap50", "ap25") if k in result.scores))
        results.append(result)
        if stage.model:
            final_model = folder / MODEL_FILE
        if rank == 0:
            _write_json(ctx.run / METRICS_FILE, {"recipe": recipe.name, "stages": [r.__dict__ for r in results]})
    model = None
    if final_model is not None and final_model.is_file() and rank == 0:
        model = ctx.run / MODEL_FILE
        tmp = model.with_name(f".{model.name}.tmp")
        shutil.copyfile(final_model, tmp)
        tmp.replace(model)
    return FitResult(ctx.run, recipe.name, results, model)

