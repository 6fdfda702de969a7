"""Training configuration: one YAML file -> a validated `TrainConfig` tree.

Sections: `model` (a model spec for `build_model`), `data`, `augment`, `loss`, `optim`,
`predict` (inference settings used for periodic evaluation and stored for `labelfree3d predict`),
plus run settings (seed, device, AMP, logging and checkpoint cadence). Every key not given takes
the paper default documented on its dataclass; unknown keys are errors. Configs shipped in
`labelfree3d/configs/` cite the paper table or section each default comes from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from labelfree3d.errors import InputError, ParameterError
from labelfree3d.models._params import (
    check_choice,
    check_fraction,
    check_int,
    check_positive,
    dataclass_from_dict,
    dataclass_to_dict,
)
from labelfree3d.models.predict import PredictConfig
from labelfree3d.train.augment import AugmentConfig

__all__ = [
    "LossConfig",
    "DataConfig",
    "OptimConfig",
    "TrainConfig",
    "load_train_config",
    "apply_overrides",
    "builtin_config_path",
    "BUILTIN_CONFIG_DIR",
]

BUILTIN_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class LossConfig:
    """Loss and matching weights.

    Attributes:
        objectness_weight: lambda_obj (Segment3D App. A, following Mask3D: 2).
        dice_weight: lambda_dice (2).
        bce_weight: lambda_ce (5).
        mean_weight: lambda_mean of FreePoint's mask-centre loss (0 = off; FreePoint gives no value).
        box_weight: lambda_box of FreePoint's bounding-box loss (0 = off; FreePoint gives no value).
        objectness_loss: train the objectness logit; Segment3D stage 2 omits it (§3.2).
        no_object_weight: weight of the "no object" target for unmatched queries (Mask3D's
            eos_coef, 0.1), so that 150 queries for ~20 objects do not drown the positives.
        drop_loss_iou: UnScene3D's DropLoss threshold tau_drop: an unmatched query whose binary
            mask has IoU below this with every target gets no objectness loss (it may have found
            an object the pseudo masks miss). UnScene3D does not print the value; 0.01 is CutLER's,
            where DropLoss comes from. None switches DropLoss off.
        cost_objectness, cost_dice, cost_bce: matching cost weights (Mask3D: 2, 2, 5).
        sample_points: voxels sampled at random per scan for matching and the mask losses (large
            scans); None uses every voxel (Mask3D).
        aux_loss: supervise every decoder step, not only the last (Mask3D).
    """

    objectness_weight: float = 2.0
    dice_weight: float = 2.0
    bce_weight: float = 5.0
    mean_weight: float = 0.0
    box_weight: float = 0.0
    objectness_loss: bool = True
    no_object_weight: float = 0.1
    drop_loss_iou: float | None = None
    cost_objectness: float = 2.0
    cost_dice: float = 2.0
    cost_bce: float = 5.0
    sample_points: int | None = None
    aux_loss: bool = True

    def __post_init__(self) -> None:
        for name in ("objectness_weight", "dice_weight", "bce_weight", "mean_weight", "box_weight",
                     "cost_objectness", "cost_dice", "cost_bce"):  # fmt: skip
            check_positive(getattr(self, name), f"loss.{name}", allow_zero=True)
        if self.dice_weight == 0 and self.bce_weight == 0 and self.mean_weight == 0 and self.box_weight == 0:
            raise ParameterError("loss: every mask loss weight is 0, nothing would train the masks")
        if self.cost_dice == 0 and self.cost_bce == 0:
            raise ParameterError("loss: cost_dice and cost_bce are both 0, matching would ignore the masks")
        if not isinstance(self.objectness_loss, bool) or not isinstance(self.aux_loss, bool):
            raise ParameterError("loss.objectness_loss and loss.aux_loss must be true or false")
        check_fraction(self.no_object_weight, "loss.no_object_weight")
        if self.drop_loss_iou is not None:
            check_fraction(self.drop_loss_iou, "loss.drop_loss_iou", open_low=True)
        if self.sample_points is not None:
            check_int(self.sample_points, "loss.sample_points", 1)



@dataclass(frozen=True)
class DataConfig:
    """Where training and validation scans and their targets come from.

    Attributes:
        train: scan files, scene folders, folders of scans or glob patterns.
        targets: "gt" (ground-truth instances) or a folder of pseudo masks `<scene name>.npz`
            (labelfree3d's prediction format, e.g. `labelfree3d segment` output).
        val: scans with ground truth evaluated every `eval_every` steps (may be empty).
        format: reader name for every scan (None: detect per file).
        num_workers: DataLoader worker processes (0: load in the training process).
        thinning: before augmenting, keep one random point per cell of `thinning` x the voxel
            size (None, or augmentation off: every point). Augmenting a 300k-point Kinect frame point by point costs
            several times the training step of a compact model; at 0.25 every voxel still
            draws on up to 64 cells, so voxel features and targets barely change.
        min_seen_fraction: with `model.input.structure` "remove", a target mask that keeps
            less than this share of its points outside the structure is dropped: it is
            mostly table or wall, and its remnant would teach the model fragments.
    """

    train: tuple[str, ...] = ()
    targets: str = "gt"
    val: tuple[str, ...] = ()
    format: str | None = None
    num_workers: int = 0
    thinning: float | None = 0.25
    min_seen_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("train", "val"):
            entries = getattr(self, name)
            entries = [entries] if isinstance(entries, (str, os.PathLike)) else list(entries or ())  # one path or a list
            object.__setattr__(self, name, tuple(str(p) for p in entries))
        if not isinstance(self.targets, str) or not self.targets:
            raise ParameterError(f"data.targets must be 'gt' or a folder path, got {self.targets!r}")
        check_int(self.num_workers, "data.num_workers", 0)
        check_fraction(self.min_seen_fraction, "data.min_seen_fraction")
        if self.thinning is not None:
            check_fraction(self.thinning, "data.thinning")
            if self.thinning == 0:
                raise ParameterError("data.thinning must be in (0, 1] or null (no thinning)")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and schedule (AdamW with a one-cycle or warm-up + cosine schedule).

    Attributes:
        lr: peak learning rate (Segment3D App. A: 2e-4 stage 1, 1e-4 stage 2; Mask3D: 1e-4).
        weight_decay: AdamW weight decay (papers: not stated; torch's AdamW default 0.01).
        betas: AdamW betas (torch default).
        schedule: "onecycle" (Segment3D, Mask3D), "cosine" (linear warm-up then cosine decay)
            or "constant" (after warm-up).
        warmup_fraction: share of the steps spent rising to `lr` (one-cycle's pct_start; torch's
            default 0.3) or warming up linearly (cosine / constant).
        div_factor: one-cycle starts at lr / div_factor (torch default 25).
        final_div_factor: one-cycle ends at lr / (div_factor * final_div_factor) (torch default 1e4).
        epochs: passes over the training scans (Segment3D: 20 stage 1, 50 stage 2).
        max_steps: stop after this many optimiser steps instead (None: epochs decide).
        batch_size: scans per step per process (Segment3D: 16 RGB-D clouds / 8 scans in all).
        grad_clip: clip the global gradient norm to this (None: no clipping).
    """

    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "onecycle"
    warmup_fraction: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    epochs: int = 50
    max_steps: int | None = None
    batch_size: int = 1
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        check_positive(self.lr, "optim.lr")
        check_positive(self.weight_decay, "optim.weight_decay", allow_zero=True)
        if len(self.betas) != 2:
            raise ParameterError(f"optim.betas must be two numbers, got {self.betas!r}")
        object.__setattr__(self, "betas", tuple(check_fraction(b, "optim.betas") for b in self.betas))
        check_choice(self.schedule, "optim.schedule", ("onecycle", "cosine", "constant"))
        check_fraction(self.warmup_fraction, "optim.warmup_fraction")
        check_positive(self.div_factor, "optim.div_factor")
        check_positive(self.final_div_factor, "optim.final_div_factor")
        check_int(self.epochs, "optim.epochs", 1)
        if self.max_steps is not None:
            check_int(self.max_steps, "optim.max_steps", 1)
        check_int(self.batch_size, "optim.batch_size", 1)
        if self.grad_clip is not None:
            check_positive(self.grad_clip, "optim.grad_clip")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run.

    Attributes:
        model: model spec, e.g. {"name": "mask3d", "input": {...}, "backbone": {...}, "decoder": {...}}.
        data, augment, loss, optim, predict: the sections above.
        output_dir: run folder: config.yaml, log.csv, eval.csv, checkpoints/.
        seed: seeds model initialisation, data order, augmentations and sampling.
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N"; under torchrun each
            process takes cuda:LOCAL_RANK.
        amp: float16 autocast + gradient scaling on CUDA (ignored on CPU).
        log_every: write a log.csv row every this many steps.
        eval_every: evaluate on data.val every this many steps (None: only at the end).
        checkpoint_every: write checkpoints/last.safetensors every this many steps (and at the end).
        keep_checkpoints: also keep the last N numbered checkpoints step_XXXXXXX.safetensors (0: none).
        cpu_threads: torch intra-op threads on CPU (None: torch's choice).
        progress: show a rich progress bar (rank 0 only).
        source: free text naming the paper setting the config reproduces (for provenance).
        init_from: checkpoint whose weights initialise the model (Segment3D stage 2 starts from
            stage 1, UnScene3D's later self-training rounds from the previous round); None:
            random initialisation.
        init_backbone_from: checkpoint whose `backbone.*` weights initialise the model's
            backbone alone, e.g. a PointINS pre-training run's `model.safetensors` (the
            backbones must have the same architecture); None: none.
        freeze_backbone: train everything but the backbone, whose weights and normalisation
            statistics stay fixed (the decoder probe of `labelfree3d probe decoder`).
    """

    model: dict = field(default_factory=lambda: {"name": "mask3d"})
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    output_dir: str = "runs/train"
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    log_every: int = 10
    eval_every: int | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 0
    cpu_threads: int | None = None
    progress: bool = True
    source: str = ""
    init_from: str | None = None
    init_backbone_from: str | None = None
    freeze_backbone: bool = False

    def __post_init__(self) -> None:
        if self.init_from and self.init_backbone_from:
            raise ParameterError("init_from and init_backbone_from exclude each other: the first sets every weight")
        if not isinstance(self.model, dict) or "name" not in self.model:
            raise ParameterError(f"model must be a mapping with a 'name', got {self.model!r}")
        object.__setattr__(self, "output_dir", str(self.output_dir))
        check_int(self.seed, "seed", 0)
        if not isinstance(self.device, str):
            raise ParameterError(f"device must be a string such as auto, cpu or cuda:0, got {self.device!r}")
        for name in ("amp", "progress", "freeze_backbone"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"{name} must be true or false, got {getattr(self, name)!r}")
        check_int(self.log_every, "log_every", 1)
        if self.eval_every is not None:
            check_int(self.eval_every, "eval_every", 1)
        check_int(self.checkpoint_every, "checkpoint_every", 1)
        check_int(self.keep_checkpoints, "keep_checkpoints", 0)
        if self.cpu_threads is not None:
            check_int(self.cpu_threads, "cpu_threads", 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (YAML/JSON-ready) that `TrainConfig.from_dict` turns back into this config."""
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Validated config from a plain mapping (a parsed YAML file); the model defaults to "mask3d"."""
        values = dict(values)
        model = values.get("model")
        if model is None or (isinstance(model, dict) and "name" not in model):
            values["model"] = {"name": "mask3d", **(model or {})}
        return dataclass_from_dict(cls, values, "config")

    def with_overrides(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with dotted keys replaced, e.g. {"optim.lr": 1e-3, "model.decoder.num_queries": 50}."""
        return TrainConfig.from_dict(apply_overrides(self.to_dict(), overrides))


def apply_overrides(values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Copy of a nested mapping with dotted keys set (intermediate mappings are created)."""
    import copy

    result = copy.deepcopy(values)
    for dotted, value in overrides.items():
        keys = dotted.split(".")
        node = result
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ParameterError(f"cannot set {dotted}: {key} is not a section")
            node = child
        node[keys[-1]] = value
    return result


def builtin_config_path(name: str) -> Path:
    """Path of a config shipped with labelfree3d (`labelfree3d/configs/<name>.yaml`)."""
    path = BUILTIN_CONFIG_DIR / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in BUILTIN_CONFIG_DIR.glob("*.yaml")))
        raise InputError(f"no built-in config {name!r}; available: {available}")
    return path


def load_train_config(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML training config (a file, or the name of a built-in config) and apply overrides.

    Relative paths under `data` are resolved against the YAML file's folder only when they exist
    there; otherwise they are kept relative to the working directory.
    """
    path = Path(path)
    if not path.is_file() and path.suffix == "" and not path.exists():
        path = builtin_config_path(str(path))
    if not path.is_file():
        raise InputError("no such config file", path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise InputError(f"not a YAML text file (byte {error.start} is not UTF-8)", path) from error
    except yaml.YAMLError as error:
        raise InputError(f"not valid YAML: {(str(error).splitlines() or [type(error).__name__])[0]}", path) from error
    if not isinstance(values, dict):
        raise InputError("a training config must be a YAML mapping", path)
    try:
        config = TrainConfig.from_dict(apply_overrides(values, overrides or {}))
    except ParameterError as error:
        raise ParameterError(f"{path}: {error}") from error
    data = config.data

    def resolve(entry: str) -> str:
        candidate = path.parent / entry
        return str(candidate) if not Path(entry).is_absolute() and candidate.exists() else entry

    targets = data.targets if data.targets == "gt" else resolve(data.targets)
    resolved = replace(data, train=tuple(map(resolve, data.train)), val=tuple(map(resolve, data.val)), targets=targets)
    return replace(config, data=resolved)
