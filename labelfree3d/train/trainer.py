"""`Trainer`: AdamW + schedule, AMP on CUDA, DDP, CSV logs, periodic evaluation, checkpoints, resume.

One optimiser step = one batch of `optim.batch_size` scans per process. Everything random is a
function of (seed, step, rank) or (seed, epoch, sample): data order comes from a
`DistributedSampler` seeded per epoch, augmentations from `default_rng([seed, epoch, sample])`,
and torch's generator is re-seeded before every step. A run resumed from its last checkpoint
therefore replays exactly the steps an uninterrupted run would have taken.

Self-training recipes drive it round by round: `set_targets(new pseudo masks)`, then `fit()`
with a larger `max_steps`, or a new `Trainer` whose config names `init_from` (the previous
round's weights).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from labelfree3d.errors import FormatError, InputError, ParameterError
from labelfree3d.io.atomic import atomic_path, check_output, ensure_output_folder, write_text_atomic
from labelfree3d.models.checkpoint import load_backbone, load_model, read_checkpoint, save_checkpoint
from labelfree3d.models.predict import Predictor
from labelfree3d.models.registry import build_model, model_spec, normalize_spec
from labelfree3d.models.voxelize import SparseBatch, collate
from labelfree3d.train.config import TrainConfig
from labelfree3d.train.data import MaskDataset, SceneSource, TargetSource, expand_scan_paths
from labelfree3d.train.distributed import DistributedContext
from labelfree3d.train.logs import CSVLogger
from labelfree3d.train.losses import MaskCriterion
from labelfree3d.train.schedule import lr_factor, run_length

__all__ = ["Trainer", "TrainResult", "LAST_CHECKPOINT", "MODEL_FILE"]

LAST_CHECKPOINT = "checkpoints/last.safetensors"  # full training state, rewritten every checkpoint_every steps
MODEL_FILE = "model.safetensors"  # weights + spec only, written at the end, for `labelfree3d predict`


@dataclass
class TrainResult:
    """Outcome of `Trainer.fit`.

    Attributes:
        step: optimiser steps done in total (including steps before a resume).
        epoch: epoch of the last step.
        losses: loss terms of the last step (rank 0).
        evaluation: last evaluation summary (ap, ap50, ap25 as fractions), empty without val scans.
        checkpoint: path of the last full checkpoint (rank 0), or None.
        model_path: path of the exported model file (rank 0), or None.
        seconds_per_step: mean wall time of the steps of this call.
    """

    step: int
    epoch: int
    losses: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None
    model_path: Path | None = None
    seconds_per_step: float = float("nan")


class Trainer:
    """Trains a registered model on a `MaskDataset`.

    Args:
        config: the run configuration.
        train_set: training pairs; built from `config.data` when None.
        val_scenes: scans with ground truth for periodic evaluation; from `config.data.val` when None.
        context: process rank / device; read from torchrun's environment when None.
    """

    def __init__(
        self,
        config: TrainConfig,
        train_set: MaskDataset | None = None,
        val_scenes: Sequence[SceneSource] | None = None,
        context: DistributedContext | None = None,
    ):
        self.config = config
        check_output(config.output_dir, folder=True)  # before loading data: a run folder that cannot be written fails now
        self.context = context or DistributedContext.from_environment(config.device)
        self.device = self.context.device
        if config.cpu_threads is not None:
            torch.set_num_threads(config.cpu_threads)
        torch.manual_seed(config.seed)  # same initial weights on every rank (DDP also broadcasts them)
        if config.init_from:  # e.g. Segment3D stage 2 or a later UnScene3D round starts from earlier weights
            model = load_model(config.init_from, map_location="cpu")
            if model_spec(model) != normalize_spec(config.model):
                raise ParameterError(f"init_from {config.init_from} holds a different model than config.model")
        else:
            model = build_model(config.model)
        if config.init_backbone_from:
            load_backbone(model, config.init_backbone_from)
        if config.freeze_backbone:
            if not hasattr(model, "backbone"):
                raise ParameterError(f"freeze_backbone: a {model.model_name!r} model has no backbone")
            model.backbone.requires_grad_(False)
        self.model = model.to(self.device)
        if train_set is None:
            if not config.data.train:
                raise ParameterError("data.train lists no scans")
            train_set = MaskDataset(
                expand_scan_paths(config.data.train),
                targets=config.data.targets,
                input_spec=self.model.input_spec,
                augment=config.augment,
                seed=config.seed,
                reader_format=config.data.format,
                thinning=config.data.thinning,
                min_seen_fraction=config.data.min_seen_fraction,
            )
        if train_set.input_spec is None:
            train_set.input_spec = self.model.input_spec
        if train_set.input_spec != self.model.input_spec:
            raise ParameterError(f"the dataset voxelises with {train_set.input_spec}, the model expects {self.model.input_spec}")
        self.train_set = train_set
        if val_scenes is None:
            val_scenes = expand_scan_paths(config.data.val) if config.data.val else []
        self.val_scenes = list(val_scenes)
        self.use_amp = config.amp and self.device.type == "cuda"
        self.criterion = MaskCriterion(config.loss)
        self.optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad], lr=config.optim.lr, betas=config.optim.betas, weight_decay=config.optim.weight_decay
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.network: torch.nn.Module = self.model
        if self.context.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.network = DistributedDataParallel(self.model, device_ids=device_ids)
        self.step = 0
        self.output_dir = Path(config.output_dir)
        self._loggers: dict[str, CSVLogger] = {}
        # set by `resume` when the last checkpoint was damaged and an earlier one was used instead
        self.resume_note: str | None = None
        self.resumed_from: Path | None = None

    @classmethod
    def from_scenes(
        cls,
        config: TrainConfig,
        scenes: Sequence[SceneSource],
        targets: TargetSource = "gt",
        val_scenes: Sequence[SceneSource] | None = None,
        context: DistributedContext | None = None,
    ) -> Trainer:
        """A trainer on in-memory scans (or paths) with the config's augmentations and seed.

        Args:
            config: run configuration (its `data.train` / `data.targets` are ignored).
            scenes: training scans.
            targets: "gt", a mapping scene name -> masks, a folder of .npz pseudo masks or a callable.
            val_scenes: scans with ground truth for evaluation (default: none).
            context: process context (default: from the environment).
        """
        dataset = MaskDataset(scenes, targets, None, config.augment, config.seed, config.data.format, config.data.thinning,
                              config.data.min_seen_fraction)
        return cls(config, dataset, list(val_scenes or []), context)

    # ------------------------------------------------------------------ bookkeeping
    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per pass over the training scans (per process batches, padded like DistributedSampler)."""
        return self._run_length()[0]

    @property
    def total_steps(self) -> int:
        """Steps of the whole run: `optim.max_steps`, else epochs x steps per epoch."""
        return self._run_length()[1]

    def _run_length(self) -> tuple[int, int]:
        optim = self.config.optim
        return run_length(len(self.train_set), self.context.world_size, optim.batch_size, optim.epochs, optim.max_steps)

    def set_targets(self, targets: TargetSource) -> None:
        """Swap the training targets (a self-training round's pseudo masks)."""
        self.train_set.set_targets(targets)

    def predictor(self) -> Predictor:
        """A `Predictor` over the current weights with the config's inference settings."""
        return Predictor(self.model, self.config.predict, self.device, amp=self.use_amp)

    def _logger(self, name: str) -> CSVLogger:
        if name not in self._loggers:  # evaluate() called outside fit()
            self._loggers[name] = CSVLogger(self.output_dir / f"{name}.csv", resume_step=self.step)
        return self._loggers[name]

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path | None = None) -> Path:
        """Write a full training checkpoint (weights, optimiser, scaler, step); rank 0 only."""
        path = Path(path) if path is not None else self.output_dir / LAST_CHECKPOINT
        state = {
            "step": self.step,
            "next_epoch": self.step // max(self.steps_per_epoch, 1),
            "total_steps": self.total_steps,
            "world_size": self.context.world_size,
            "seed": self.config.seed,
            "scaler": self.scaler.state_dict() if self.use_amp else None,
        }
        return save_checkpoint(path, self.model, self.config.to_dict(), state, self.optimizer)

    def resume(self, path: str | Path | None = None) -> bool:
        """Restore weights, optimiser, scaler and step from a checkpoint (default: the run's last).

        Returns:
            True when a checkpoint was loaded, False when `path` is None and none exists yet.
        """
        explicit = path is not None
        path = Path(path) if explicit else self.output_dir / LAST_CHECKPOINT
        if explicit:
            if not path.is_file():
                raise InputError("no such checkpoint to resume from", path)
            checkpoint = read_checkpoint(path, map_location=self.device)
        else:
            found = self._last_complete_checkpoint()
            if found is None:
                return False
            path, checkpoint = found
        if checkpoint.trainer_state is None or checkpoint.optimizer_state is None:
            raise FormatError("checkpoint holds no training state (a model export?); cannot resume from it", path)
        if checkpoint.model_spec != model_spec(self.model):
            raise FormatError("checkpoint was written for a different model than config.model", path)
        self.model.load_state_dict(checkpoint.model_state)
        groups = checkpoint.trainer_state["optimizer_groups"]
        self.optimizer.load_state_dict({"state": checkpoint.optimizer_state, "param_groups": groups})
        scaler_state = checkpoint.trainer_state.get("scaler")
        if self.use_amp and scaler_state:
            self.scaler.load_state_dict(scaler_state)
        self.step = int(checkpoint.trainer_state["step"])
        self.resumed_from = path
        return True

    def _last_complete_checkpoint(self) -> tuple[Path, Any] | None:
        """(path, checkpoint) of the newest readable checkpoint of the run: last.safetensors, else the
        newest kept step_*.safetensors; None when the run has none.

        A damaged last checkpoint (truncated or corrupt; see `read_checkpoint`) is skipped with a
        note in `resume_note`. Raises the first damage's FormatError when every checkpoint is damaged.
        """
        last = self.output_dir / LAST_CHECKPOINT
        candidates = [last, *sorted(last.parent.glob("step_*.safetensors"), reverse=True)]
        damaged: list[FormatError] = []
        for candidate in candidates:
            if not candidate.is_file():
                continue
            try:
                checkpoint = read_checkpoint(candidate, map_location=self.device)
            except FormatError as error:
                if "truncated or corrupt" not in str(error):
                    raise
                damaged.append(error)
                continue
            if damaged:
                self.resume_note = f"{damaged[0]}; resumed from the earlier complete checkpoint {candidate} instead"
            return candidate, checkpoint
        if damaged:
            raise FormatError(f"{damaged[0].problem}; no earlier complete checkpoint to resume from (delete it to start over)", damaged[0].path)
        return None

    def _write_checkpoint(self) -> Path | None:
        path = None
        if self.context.is_main:
            path = self.save()
            if self.config.keep_checkpoints:
                folder = self.output_dir / "checkpoints"
                numbered = folder / f"step_{self.step:07d}.safetensors"
                with atomic_path(numbered) as tmp:  # a copy cut short must not look like a checkpoint
                    shutil.copyfile(path, tmp)
                for old in sorted(folder.glob("step_*.safetensors"))[: -self.config.keep_checkpoints]:
                    old.unlink()
        self.context.barrier()
        return path

    # ------------------------------------------------------------------ training
    def _batches(self, epoch: int) -> list[list[int]]:
        sampler = DistributedSampler(
            self.train_set, num_replicas=self.context.world_size, rank=self.context.rank, shuffle=True, seed=self.config.seed
        )
        sampler.set_epoch(epoch)
        indices = list(sampler)
        size = self.config.optim.batch_size
        return [indices[i : i + size] for i in range(0, len(indices), size)]

    def _set_learning_rate(self) -> float:
        optim = self.config.optim
        factor = lr_factor(self.step, self.total_steps, optim.schedule, optim.warmup_fraction, optim.div_factor, optim.final_div_factor)
        lr = optim.lr * factor
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def train_step(self, batch: SparseBatch) -> dict[str, float]:
        """One optimiser step on one batch; returns its loss terms, lr and gradient norm."""
        config = self.config
        # re-seeding per step makes the random attention/point sampling a function of the step,
        # so a resumed run draws what the uninterrupted run would have drawn
        torch.manual_seed(config.seed * 1_000_003 + self.step * self.context.world_size + self.context.rank)
        lr = self._set_learning_rate()
        self.network.train()
        if config.freeze_backbone:  # frozen means its batch-norm statistics too
            self.model.backbone.eval()
        batch = batch.to(self.device)
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.use_amp else contextlib.nullcontext()
        with autocast:
            predictions = self.network(batch)
        positions = [batch.positions[batch.scene_rows(b)] for b in range(batch.batch_size)]
        loss, terms = self.criterion(predictions, batch.targets, positions)  # float32 outside autocast
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = config.optim.grad_clip if config.optim.grad_clip is not None else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        if self.use_amp:
            self.scaler.step(self.optimizer)  # skips the step itself when gradients overflowed
            self.scaler.update()
        elif math.isfinite(grad_norm):  # identical on every rank: gradients are all-reduced
            self.optimizer.step()
        terms.update(lr=lr, grad_norm=grad_norm)
        return terms

    def fit(self, max_steps: int | None = None) -> TrainResult:
        """Train until step `max_steps` (default: the config's total), evaluating and checkpointing on the way."""
        config = self.config
        target = self.total_steps if max_steps is None else int(max_steps)
        if self.context.is_main:
            ensure_output_folder(self.output_dir)
            _remove_stale_temporaries(self.output_dir)
            import yaml

            write_text_atomic(self.output_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
            # (re)open the logs now: rows past the current step belong to a run that did not survive
            for name in ("log", "eval"):
                self._loggers[name] = CSVLogger(self.output_dir / f"{name}.csv", resume_step=self.step)
        result = TrainResult(step=self.step, epoch=self.step // self.steps_per_epoch)
        durations: list[float] = []
        show_progress = config.progress and self.context.is_main
        progress = _progress_bar(show_progress)
        with progress:
            task = progress.add_task("training", total=target, completed=self.step) if show_progress else None
            while self.step < target:
                epoch = self.step // self.steps_per_epoch
                self.train_set.set_epoch(epoch)
                batches = self._batches(epoch)[self.step - epoch * self.steps_per_epoch :]
                loader = DataLoader(
                    self.train_set,
                    batch_sampler=batches,
                    collate_fn=collate,
                    num_workers=config.data.num_workers,
                    pin_memory=self.device.type == "cuda",
                )
                for batch in loader:
                    started = time.perf_counter()
                    terms = self.train_step(batch)
                    self.step += 1
                    durations.append(time.perf_counter() - started)
                    result.losses = terms
                    if self.step % config.log_every == 0 or self.step == target:
                        self._log_step(epoch, terms, durations[-1])
                    if task is not None:
                        progress.update(task, completed=self.step, description=f"epoch {epoch} loss {terms['total']:.3f}")
                    if config.eval_every and self.step % config.eval_every == 0 and self.step < target:
                        result.evaluation = self.evaluate()
                    if self.step % config.checkpoint_every == 0 and self.step < target:
                        result.checkpoint = self._write_checkpoint()
                    if self.step >= target:
                        break
        result.checkpoint = self._write_checkpoint()
        if self.val_scenes:
            result.evaluation = self.evaluate()
        if self.context.is_main:
            result.model_path = save_checkpoint(self.output_dir / MODEL_FILE, self.model, config.to_dict())
        self.context.barrier()
        result.step = self.step
        result.epoch = (self.step - 1) // self.steps_per_epoch if self.step else 0
        result.seconds_per_step = float(np.mean(durations)) if durations else float("nan")
        return result

    def _log_step(self, epoch: int, terms: dict[str, float], seconds: float) -> None:
        total = self.context.mean(terms["total"])  # collective: every rank must take part
        if not self.context.is_main:
            return
        row: dict[str, Any] = {"step": self.step, "epoch": epoch, **terms, "total": total, "seconds": seconds}
        if self.device.type == "cuda":
            row["peak_memory_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        self._logger("log").log(row)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, float]:
        """AP / AP50 / AP25 of the current model on the validation scans (computed on rank 0)."""
        summary: dict[str, float] = {}
        if self.context.is_main and self.val_scenes:
            from labelfree3d.evaluate import InstanceEvaluator
            from labelfree3d.io import read_scene

            evaluator = InstanceEvaluator(extra_metrics=False)
            predictor = self.predictor()
            for source in self.val_scenes:
                scene = source if not isinstance(source, (str, Path)) else read_scene(source, format=self.config.data.format)
                if scene.gt is None:
                    raise InputError(f"validation scene {scene.name!r} has no ground truth", scene.source)
                evaluator.process(scene.name, scene.gt, predictor.predict(scene))
            report = evaluator.evaluate()
            summary = {key: float(report[key]) for key in ("ap", "ap50", "ap25")}
            self._logger("eval").log({"step": self.step, **summary})
        self.context.barrier()
        return summary


def _remove_stale_temporaries(run: Path) -> None:
    """Delete the hidden temporary files a killed run (SIGKILL, power cut) left in `run` and its checkpoints."""
    for folder in (run, run / "checkpoints"):
        for stale in [*folder.glob(".*.tmp.*"), *folder.glob("*.csv.tmp")]:
            stale.unlink(missing_ok=True)


def _progress_bar(enabled: bool):
    """A rich progress bar on stderr, or a no-op stand-in when disabled."""
    if not enabled:
        return _NoProgress()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
