"""PointINS self-supervised pre-training: teacher-student distillation with an offset branch, ODR and SCR.

One step, per scan of the batch (PointINS Fig. 3 and supplementary §A):

1. two views of the scan: rotation about the up axis, flips, uniform scale and colour jitter,
   each a known linear map L of the original coordinates (no elastic distortion, so that offsets
   of one view can be written in the frame of the other);
2. random block masking of the student's view: the scan is cut into cubes of `masking.size`
   metres and `masking.ratio` of the cubes are removed; the teacher sees its whole view;
3. semantic branch: the teacher's prototype similarities (temperature `teacher_temperature`)
   become soft assignments by Sinkhorn-Knopp balancing towards a Zipfian prior over the
   prototypes (`zipf_alpha`, DOS's "Zipfian prototypes"); the student's (temperature
   `student_temperature`) are pulled towards them by cross-entropy (= the KL divergence up to a
   constant) on the points it sees;
4. offset branch: the teacher's offsets, written in the original frame, are regularised by ODR
   (`align_offset_magnitudes`: magnitudes matched to the prior's quantiles), then SCR
   (`spatial_clustering_targets`: K-means on teacher features, components of the centroid kNN
   graph) gives target offsets O*; L_off is the mean L1 distance of the student's offsets (also
   written in the original frame) to O* on the visible points of kept components;
5. loss = L_sem + lambda_off * L_off, L_off switched on after `offset_warmup` of the steps
   (Table 1: 0.1; supplementary Table 2: without warm-up the result drops);
6. AdamW step on the student; the teacher follows as an exponential moving average whose
   momentum rises from `teacher_momentum` to 1 on a cosine (DINO's schedule).

The exported `model.safetensors` holds the teacher (the EMA weights, steadier than the
student's); `checkpoints/last.safetensors` (student, optimiser, step) and
`checkpoints/teacher_<step>.safetensors` hold what a resumed run needs. Under torchrun the student is wrapped in DDP; Sinkhorn balancing and SCR run
per process on its own scans.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from labelfree3d.errors import FormatError, InputError, ParameterError
from labelfree3d.io.atomic import ensure_output_folder, write_text_atomic
from labelfree3d.models._params import (
    check_choice,
    check_fraction,
    check_int,
    check_positive,
    dataclass_from_dict,
    dataclass_to_dict,
)
from labelfree3d.models.checkpoint import read_checkpoint, save_checkpoint
from labelfree3d.models.pointins.regularize import OffsetPrior, align_offset_magnitudes, spatial_clustering_targets
from labelfree3d.models.registry import build_model, model_spec
from labelfree3d.models.voxelize import VoxelizedScene, collate, point_features, voxelize
from labelfree3d.structures import Scene
from labelfree3d.train.config import OptimConfig, apply_overrides
from labelfree3d.train.distributed import DistributedContext
from labelfree3d.train.logs import CSVLogger
from labelfree3d.train.schedule import lr_factor, run_length

__all__ = [
    "ViewConfig",
    "MaskingConfig",
    "DistillConfig",
    "SCRConfig",
    "PretrainConfig",
    "PRETRAIN_PRESETS",
    "pretrain_preset",
    "offset_loss_weight",
    "teacher_momentum",
    "zipf_sinkhorn",
    "PretrainDataset",
    "Pretrainer",
]

TEACHER_CHECKPOINTS = "checkpoints"  # teacher_<step>.safetensors beside the student's last.safetensors
STUDENT_CHECKPOINT = "checkpoints/last.safetensors"
MODEL_FILE = "model.safetensors"


@dataclass(frozen=True)
class ViewConfig:
    """Augmentations of the two views (linear maps of the coordinates plus colour jitter).

    Attributes:
        rotation_degrees: rotation about the up axis drawn in [-r, r].
        flip_probability: chance of mirroring each horizontal axis.
        scale_range: uniform scale factor range.
        color_jitter_std: per-point Gaussian RGB noise (colours in [0, 1]).
        brightness: brightness shift drawn in [-b, b].
        max_points: a scan with more points is cropped to the `max_points` points nearest to a
            random point (the same crop for both views) so that a room fits a CPU step; None: whole scans.
    """

    rotation_degrees: float = 180.0
    flip_probability: float = 0.5
    scale_range: tuple[float, float] = (0.9, 1.1)
    color_jitter_std: float = 0.05
    brightness: float = 0.1
    max_points: int | None = None

    def __post_init__(self) -> None:
        check_positive(self.rotation_degrees, "views.rotation_degrees", allow_zero=True)
        check_fraction(self.flip_probability, "views.flip_probability")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ParameterError(f"views.scale_range must be two numbers 0 < low <= high, got {self.scale_range!r}")
        check_positive(self.color_jitter_std, "views.color_jitter_std", allow_zero=True)
        check_positive(self.brightness, "views.brightness", allow_zero=True)
        if self.max_points is not None:
            check_int(self.max_points, "views.max_points", 16)


@dataclass(frozen=True)
class MaskingConfig:
    """Random block masking of the student's input (Table 1: ratio 0.7; cubes of 40 cm indoor, 1 m outdoor)."""

    ratio: float = 0.7
    size: float = 0.4

    def __post_init__(self) -> None:
        check_fraction(self.ratio, "masking.ratio")
        if self.ratio >= 1:
            raise ParameterError("masking.ratio must be below 1: the student must see something")
        check_positive(self.size, "masking.size")


@dataclass(frozen=True)
class DistillConfig:
    """Losses of both branches.

    Attributes:
        student_temperature, teacher_temperature: softmax temperatures of the prototype
            similarities (DINO's 0.1 and 0.04; PointINS and DOS do not print theirs).
        zipf_alpha: exponent of the Zipfian prior over prototype usage (Table 1: 0.1 ScanNet and
            S3DIS, 1.3 ScanNet200 and outdoor); 0 = uniform (plain Sinkhorn-Knopp).
        sinkhorn_iterations: balancing iterations (3, as SwAV / DINOv2).
        offset_weight: lambda_off (Table 1: 0.25).
        offset_warmup: share of the steps before L_off is switched on (Table 1: 0.1).
        sample_points: visible points per scan on which the losses are computed.
    """

    student_temperature: float = 0.1
    teacher_temperature: float = 0.04
    zipf_alpha: float = 0.1
    sinkhorn_iterations: int = 3
    offset_weight: float = 0.25
    offset_warmup: float = 0.1
    sample_points: int = 4096

    def __post_init__(self) -> None:
        check_positive(self.student_temperature, "loss.student_temperature")
        check_positive(self.teacher_temperature, "loss.teacher_temperature")
        check_positive(self.zipf_alpha, "loss.zipf_alpha", allow_zero=True)
        check_int(self.sinkhorn_iterations, "loss.sinkhorn_iterations", 0)
        check_positive(self.offset_weight, "loss.offset_weight", allow_zero=True)
        check_fraction(self.offset_warmup, "loss.offset_warmup")
        check_int(self.sample_points, "loss.sample_points", 1)


@dataclass(frozen=True)
class SCRConfig:
    """Spatial Clustering Regularization (Algorithm 1; Table 1 indoor values, outdoor in brackets).

    Attributes:
        num_segments: K of the K-means on teacher features (20 [20]).
        kmeans_iterations: K-means iterations (10 [10]).
        knn: neighbours of the centroid-space graph (150 [20]).
        max_distance: longest kept edge, metres (1.2 [1.0]).
        min_size: smallest kept component, in voxels here, points in the paper (30 [10]).
    """

    num_segments: int = 20
    kmeans_iterations: int = 10
    knn: int = 150
    max_distance: float = 1.2
    min_size: int = 30

    def __post_init__(self) -> None:
        check_int(self.num_segments, "scr.num_segments", 1)
        check_int(self.kmeans_iterations, "scr.kmeans_iterations", 1)
        check_int(self.knn, "scr.knn", 1)
        check_positive(self.max_distance, "scr.max_distance")
        check_int(self.min_size, "scr.min_size", 1)


@dataclass(frozen=True)
class PriorConfig:
    """The ODR magnitude prior M (Table 1: Gamma(a 0.24, theta 2.53) indoor, LogNormal(0, 0.76) outdoor)."""

    kind: str = "gamma"
    a: float = 0.24
    theta: float = 2.53
    mu: float = 0.0
    sigma: float = 0.76

    def __post_init__(self) -> None:
        self.prior()  # validates

    def prior(self) -> OffsetPrior:
        """The `OffsetPrior` this section describes."""
        return OffsetPrior(kind=self.kind, a=self.a, theta=self.theta, mu=self.mu, sigma=self.sigma)


@dataclass(frozen=True)
class PretrainConfig:
    """A whole pre-training run.

    Attributes:
        model: model spec ({"name": "pointins", "input": ..., "backbone": ..., "head": ...}).
        train: scans (files, folders, lists, globs) to pre-train on; no labels are read.
        format: reader name for the scans (None: detected).
        views, masking, loss, scr, prior: the sections above.
        optim: AdamW and schedule (Table 1: lr 4e-3 indoor / 2e-3 outdoor, weight decay 0.04,
            cosine with warm-up ratio 0.05, batch 16).
        teacher_momentum: EMA momentum at the first step, rising to 1 (DINO: 0.996; 0.994 for
            short schedules, which DOS and Sonata use).
        output_dir, seed, device, log_every, checkpoint_every, cpu_threads, progress: run settings
            as in `TrainConfig`.
    """

    model: dict = field(default_factory=lambda: {"name": "pointins"})
    train: tuple[str, ...] = ()
    format: str | None = None
    views: ViewConfig = field(default_factory=ViewConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    loss: DistillConfig = field(default_factory=DistillConfig)
    scr: SCRConfig = field(default_factory=SCRConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=4e-3, weight_decay=0.04, schedule="cosine", warmup_fraction=0.05, epochs=800, batch_size=16)
    )
    teacher_momentum: float = 0.994
    output_dir: str = "runs/pretrain"
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    checkpoint_every: int = 200
    cpu_threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.model, dict) or self.model.get("name") != "pointins":
            raise ParameterError(f"model must be a pointins spec (name: pointins), got {self.model!r}")
        object.__setattr__(self, "train", tuple(str(t) for t in self.train))
        object.__setattr__(self, "output_dir", str(self.output_dir))
        check_fraction(self.teacher_momentum, "teacher_momentum")
        check_int(self.seed, "seed", 0)
        check_int(self.log_every, "log_every", 1)
        check_int(self.checkpoint_every, "checkpoint_every", 1)
        if self.cpu_threads is not None:
            check_int(self.cpu_threads, "cpu_threads", 1)
        if not isinstance(self.progress, bool):
            raise ParameterError(f"progress must be true or false, got {self.progress!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping that `PretrainConfig.from_dict` turns back into this config."""
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PretrainConfig:
        """Validated config from a plain mapping; the model name defaults to "pointins"."""
        values = dict(values)
        model = values.get("model")
        if model is None or (isinstance(model, dict) and "name" not in model):
            values["model"] = {"name": "pointins", **(model or {})}
        return dataclass_from_dict(cls, values, "pretrain")

    def with_overrides(self, overrides: dict[str, Any]) -> PretrainConfig:
        """A copy with dotted keys replaced, e.g. {"optim.lr": 1e-3, "scr.knn": 50}."""
        return PretrainConfig.from_dict(apply_overrides(self.to_dict(), overrides))


_SMALL_MODEL = {
    "input": {"voxel_size": 0.01, "features": ["color"]},
    "backbone": {"init_dim": 16, "planes": [16, 32, 64, 64, 64, 64, 32, 32], "layers": [1] * 8, "bn_momentum": 0.1},
    "head": {"projection_hidden": 128, "projection_dim": 64, "num_prototypes": 256, "offset_hidden": 64},
}

# Table 1 of the supplementary; `small` is ours: a compact model, 1 cm voxels and tabletop-sized
# masking, SCR and prior for the OSD clouds on 2 CPU cores (docs/pretraining.md)
PRETRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "indoor": {
        "model": {"name": "pointins", "input": {"voxel_size": 0.02, "features": ["color"]}},
        "masking": {"ratio": 0.7, "size": 0.4},
        "loss": {"zipf_alpha": 0.1, "offset_weight": 0.25, "offset_warmup": 0.1},
        "scr": {"num_segments": 20, "kmeans_iterations": 10, "knn": 150, "max_distance": 1.2, "min_size": 30},
        "prior": {"kind": "gamma", "a": 0.24, "theta": 2.53},
        "optim": {"lr": 4e-3, "weight_decay": 0.04, "schedule": "cosine", "warmup_fraction": 0.05, "epochs": 800, "batch_size": 16},
    },
    "outdoor": {
        "model": {"name": "pointins", "input": {"voxel_size": 0.05, "features": ["ones"]}},
        "masking": {"ratio": 0.7, "size": 1.0},
        "loss": {"zipf_alpha": 1.3, "offset_weight": 0.25, "offset_warmup": 0.1},
        "scr": {"num_segments": 20, "kmeans_iterations": 10, "knn": 20, "max_distance": 1.0, "min_size": 10},
        "prior": {"kind": "lognormal", "mu": 0.0, "sigma": 0.76},
        "optim": {"lr": 2e-3, "weight_decay": 0.04, "schedule": "cosine", "warmup_fraction": 0.05, "epochs": 50, "batch_size": 16},
    },
    "small": {
        "model": {"name": "pointins", **_SMALL_MODEL},
        "views": {"max_points": 60000},
        "masking": {"ratio": 0.7, "size": 0.1},
        "loss": {"zipf_alpha": 0.1, "offset_weight": 0.25, "offset_warmup": 0.1, "sample_points": 2048},
        "scr": {"num_segments": 20, "kmeans_iterations": 10, "knn": 30, "max_distance": 0.05, "min_size": 30},
        "prior": {"kind": "gamma", "a": 0.24, "theta": 0.02},
        "optim": {"lr": 2e-3, "weight_decay": 0.04, "schedule": "cosine", "warmup_fraction": 0.05, "max_steps": 1500, "batch_size": 2},
        "checkpoint_every": 100,
        "cpu_threads": 2,
    },
}


def pretrain_preset(name: str, overrides: dict[str, Any] | None = None) -> PretrainConfig:
    """The named preset ("indoor", "outdoor", "small") with dotted overrides applied."""
    check_choice(name, "preset", tuple(PRETRAIN_PRESETS))
    return PretrainConfig.from_dict(apply_overrides(copy.deepcopy(PRETRAIN_PRESETS[name]), overrides or {}))


# ---------------------------------------------------------------------- schedules and balancing
def offset_loss_weight(step: int, total_steps: int, warmup: float) -> float:
    """1 when L_off is on at 0-based `step`, 0 during the first `warmup` share of `total_steps` (Table 1: 0.1)."""
    return 0.0 if step < warmup * total_steps else 1.0


def teacher_momentum(step: int, total_steps: int, start: float) -> float:
    """EMA momentum at `step`: `start` at step 0, rising to 1 at the end on a half cosine (DINO)."""
    progress = min(max(step, 0), total_steps) / max(total_steps, 1)
    return 1.0 - (1.0 - start) * (math.cos(math.pi * progress) + 1.0) / 2.0


def zipf_sinkhorn(logits: torch.Tensor, temperature: float, alpha: float, iterations: int = 3) -> torch.Tensor:
    """(S, K) teacher soft assignments whose prototype marginal follows a Zipfian prior.

    Sinkhorn-Knopp balancing of exp(logits / temperature) (SwAV), with the column marginal set to
    Zipf(alpha) instead of uniform: the prototype used most (before balancing) gets mass
    proportional to 1/1^alpha, the next 1/2^alpha, and so on (our reading of DOS's "Zipfian
    prototypes": real scenes use a few concepts a lot and many rarely). alpha = 0 is plain
    Sinkhorn; iterations = 0 is the plain softmax.

    Args:
        logits: (S, K) similarities of S points with K prototypes.
        temperature: softmax temperature.
        alpha: Zipf exponent (>= 0).
        iterations: balancing iterations.

    Returns:
        (S, K) float32, each row summing to 1.
    """
    scores = (logits.float() / temperature)
    if iterations == 0:
        return torch.softmax(scores, dim=1)
    q = torch.exp(scores - scores.max()).T  # (K, S)
    k, s = q.shape
    usage = q.sum(dim=1)
    ranks = torch.empty(k, dtype=torch.float32, device=q.device)
    ranks[torch.argsort(usage, descending=True)] = torch.arange(1, k + 1, dtype=torch.float32, device=q.device)
    marginal = ranks.pow(-alpha)
    marginal = marginal / marginal.sum()
    q = q / q.sum()
    for _ in range(iterations):
        q = q * (marginal / q.sum(dim=1).clamp(min=1e-12))[:, None]
        q = q / (q.sum(dim=0, keepdim=True).clamp(min=1e-12) * s)
    return (q * s).T


# ---------------------------------------------------------------------- data
@dataclass(eq=False)
class ViewPair:
    """One scan's two views for a step.

    Attributes:
        name: scan name.
        teacher: the teacher's voxelised full view.
        student: the student's voxelised view of the points that survive masking.
        visible: (N_s,) indices (into the scan's points after cropping) of the student's points.
        teacher_map, student_map: (3, 3) linear maps from original to view coordinates.
        teacher_positions: (M_t, 3) teacher voxel positions in the original frame, metres.
    """

    name: str
    teacher: VoxelizedScene
    student: VoxelizedScene
    visible: np.ndarray
    teacher_map: np.ndarray
    student_map: np.ndarray
    teacher_positions: np.ndarray


class PretrainDataset(torch.utils.data.Dataset):
    """Unlabelled scans served as `ViewPair`s; the random views of sample i in epoch e come from `default_rng([seed, e, i])`.

    Args:
        scenes: `Scene`s or paths (read once and kept in memory as points and colours).
        config: the run configuration (model input, views, masking).
    """

    def __init__(self, scenes: Sequence[Scene | str | Path], config: PretrainConfig, input_spec):
        if len(scenes) == 0:
            raise ParameterError("pre-training needs at least one scan")
        self.sources = list(scenes)
        self.config = config
        self.input_spec = input_spec
        self.epoch = 0
        self._cache: dict[int, tuple[Scene, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.sources)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random views `__getitem__` draws."""
        self.epoch = int(epoch)

    def scene(self, index: int) -> tuple[Scene, np.ndarray]:
        """(scan, up direction) of sample `index`, read on first use."""
        if index not in self._cache:
            from labelfree3d.io import read_scene
            from labelfree3d.segment.structure import gravity_prior

            source = self.sources[index]
            scene = source if isinstance(source, Scene) else read_scene(source, format=self.config.format)
            if scene.num_points < 16:
                raise InputError(f"scan {scene.name!r} has {scene.num_points} points: too few to pre-train on", scene.source)
            if "color" in self.input_spec.features and scene.colors is None:
                raise InputError(f"the model needs colours but scan {scene.name!r} has none", scene.source)
            bare = Scene(scene.points, colors=scene.colors, normals=scene.normals, name=scene.name, source=scene.source)
            self._cache[index] = (bare, gravity_prior(scene)[0])
        return self._cache[index]

    def _view_map(self, up: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        views = self.config.views
        angle = np.deg2rad(rng.uniform(-views.rotation_degrees, views.rotation_degrees))
        u = up / np.linalg.norm(up)
        cross = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
        rotation = np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross  # Rodrigues
        # mirror along a horizontal direction: a reflection whose normal is perpendicular to up
        flip = np.eye(3)
        if rng.random() < views.flip_probability:
            horizontal = np.cross(u, [1.0, 0, 0] if abs(u[0]) < 0.9 else [0, 1.0, 0])
            horizontal /= np.linalg.norm(horizontal)
            flip = np.eye(3) - 2 * np.outer(horizontal, horizontal)
        return rng.uniform(*views.scale_range) * rotation @ flip

    def _colors(self, colors: np.ndarray | None, rng: np.random.Generator) -> np.ndarray | None:
        if colors is None:
            return None
        views = self.config.views
        jitter = rng.normal(0, views.color_jitter_std, colors.shape) + rng.uniform(-views.brightness, views.brightness)
        return np.clip(colors + jitter, 0, 1).astype(np.float32)

    def __getitem__(self, index: int) -> ViewPair:
        scene, up = self.scene(index)
        rng = np.random.default_rng([self.config.seed, self.epoch, index])
        points = scene.points.astype(np.float64)
        max_points = self.config.views.max_points
        if max_points is not None and scene.num_points > max_points:
            centre = points[rng.integers(scene.num_points)]
            keep = np.argpartition(((points - centre) ** 2).sum(axis=1), max_points - 1)[:max_points]
            scene, points = scene.subset(np.sort(keep)), points[np.sort(keep)]
        spec = self.input_spec
        teacher_map, student_map = self._view_map(up, rng), self._view_map(up, rng)
        # block masking in the original frame with a random grid origin
        size = self.config.masking.size
        cells = np.floor((points - points.min(axis=0)) / size + rng.random(3)).astype(np.int64)
        _, cell_of_point = np.unique(cells, axis=0, return_inverse=True)
        cell_of_point = cell_of_point.ravel()
        num_cells = int(cell_of_point.max()) + 1
        shown = rng.random(num_cells) >= self.config.masking.ratio
        if not shown.any():
            shown[rng.integers(num_cells)] = True
        visible = np.flatnonzero(shown[cell_of_point])

        def view(indices: np.ndarray | None, linear: np.ndarray) -> VoxelizedScene:
            part = scene if indices is None else scene.subset(indices)
            mapped = (points if indices is None else points[indices]) @ linear.T
            features = point_features(part, spec.features, points=mapped.astype(np.float32), colors=self._colors(part.colors, rng))
            return voxelize(mapped.astype(np.float32), features, spec.voxel_size, scene.name)

        teacher = view(None, teacher_map)
        student = view(visible, student_map)
        positions = teacher.positions.astype(np.float64) @ np.linalg.inv(teacher_map).T
        return ViewPair(scene.name, teacher, student, visible, teacher_map, student_map, positions.astype(np.float32))


def _collate_pairs(pairs: Sequence[ViewPair]) -> list[ViewPair]:
    return list(pairs)


# ---------------------------------------------------------------------- trainer
@dataclass
class PretrainResult:
    """Outcome of `Pretrainer.fit`: steps done, last loss terms, exported model path, mean seconds per step."""

    step: int
    losses: dict[str, float] = field(default_factory=dict)
    model_path: Path | None = None
    seconds_per_step: float = float("nan")


class Pretrainer:
    """Runs PointINS pre-training (see the module docstring) and resumes from its own checkpoints.

    Args:
        config: the run configuration (`pretrain_preset` builds the paper's and the small one).
        scenes: scans to pre-train on (default: `config.train`).
        context: process rank / device (default: torchrun's environment).
    """

    def __init__(self, config: PretrainConfig, scenes: Sequence[Scene | str | Path] | None = None, context: DistributedContext | None = None):
        from labelfree3d.train.data import expand_scan_paths

        self.config = config
        self.context = context or DistributedContext.from_environment(config.device)
        self.device = self.context.device
        if config.cpu_threads is not None:
            torch.set_num_threads(config.cpu_threads)
        torch.manual_seed(config.seed)
        self.student = build_model(config.model).to(self.device)
        self.teacher = copy.deepcopy(self.student).eval()
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        if scenes is None:
            if not config.train:
                raise ParameterError("pre-training lists no scans (train)")
            scenes = expand_scan_paths(config.train)
        self.dataset = PretrainDataset(scenes, config, self.student.input_spec)
        optim = config.optim
        self.optimizer = torch.optim.AdamW(self.student.parameters(), lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)
        self.network: torch.nn.Module = self.student
        if self.context.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.network = DistributedDataParallel(self.student, device_ids=device_ids)
        self.prior = config.prior.prior()
        self.step = 0
        self.output_dir = Path(config.output_dir)

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per pass over the scans (per process)."""
        return self._run_length()[0]

    @property
    def total_steps(self) -> int:
        """Steps of the whole run: `optim.max_steps`, else epochs x steps per epoch."""
        return self._run_length()[1]

    def _run_length(self) -> tuple[int, int]:
        optim = self.config.optim
        return run_length(len(self.dataset), self.context.world_size, optim.batch_size, optim.epochs, optim.max_steps)

    # ------------------------------------------------------------------ checkpoints
    def _teacher_path(self, step: int) -> Path:
        return self.output_dir / TEACHER_CHECKPOINTS / f"teacher_{step:07d}.safetensors"

    def save(self) -> None:
        """Write the teacher of this step, then the student (with optimiser and step); rank 0 only.

        The student's checkpoint names the step, and the teacher of that step is kept until a
        later student checkpoint exists, so a run killed between the two writes still resumes.
        """
        state = {"step": self.step, "total_steps": self.total_steps, "seed": self.config.seed}
        save_checkpoint(self._teacher_path(self.step), self.teacher, self.config.to_dict(), {"step": self.step})
        save_checkpoint(self.output_dir / STUDENT_CHECKPOINT, self.student, self.config.to_dict(), state, self.optimizer)
        for old in (self.output_dir / TEACHER_CHECKPOINTS).glob("teacher_*.safetensors"):
            if old != self._teacher_path(self.step):
                old.unlink()

    def resume(self) -> bool:
        """Restore student, optimiser, teacher and step from the run's checkpoints; False when there are none."""
        student_path = self.output_dir / STUDENT_CHECKPOINT
        if not student_path.is_file():
            return False
        student = read_checkpoint(student_path, map_location=self.device)
        if student.model_spec != model_spec(self.student):
            raise FormatError("checkpoint was written for a different model than the config's", student_path)
        if student.trainer_state is None or student.optimizer_state is None:
            raise FormatError("checkpoint holds no training state; cannot resume from it", student_path)
        teacher_path = self._teacher_path(int(student.trainer_state["step"]))
        if not teacher_path.is_file():
            raise FormatError("the student checkpoint's teacher is missing", teacher_path)
        teacher = read_checkpoint(teacher_path, map_location=self.device, with_optimizer=False)
        self.student.load_state_dict(student.model_state)
        self.teacher.load_state_dict(teacher.model_state)
        self.optimizer.load_state_dict({"state": student.optimizer_state, "param_groups": student.trainer_state["optimizer_groups"]})
        self.step = int(student.trainer_state["step"])
        return True

    # ------------------------------------------------------------------ one step
    def _batches(self, epoch: int) -> list[list[int]]:
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(self.dataset, num_replicas=self.context.world_size, rank=self.context.rank, shuffle=True, seed=self.config.seed)
        sampler.set_epoch(epoch)
        indices = list(sampler)
        size = self.config.optim.batch_size
        return [indices[i : i + size] for i in range(0, len(indices), size)]

    def _targets(self, pair: ViewPair, features: torch.Tensor, offsets: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(M_t, 3) SCR target offsets in the original frame and (M_t,) validity, from the teacher's outputs."""
        inverse_map = np.linalg.inv(pair.teacher_map)
        original = offsets.float().cpu().numpy().astype(np.float64) @ inverse_map.T
        regularised = align_offset_magnitudes(original, self.prior)
        scr = self.config.scr
        result = spatial_clustering_targets(
            pair.teacher_positions,
            regularised,
            features.float().cpu().numpy(),
            num_segments=scr.num_segments,
            kmeans_iterations=scr.kmeans_iterations,
            knn=scr.knn,
            max_distance=scr.max_distance,
            min_size=scr.min_size,
            seed=self.config.seed + self.step,
        )
        return result.targets, result.valid

    def train_step(self, pairs: Sequence[ViewPair]) -> dict[str, float]:
        """One optimiser step on one batch of view pairs; returns the loss terms."""
        config, loss_config = self.config, self.config.loss
        torch.manual_seed(config.seed * 1_000_003 + self.step * self.context.world_size + self.context.rank)
        lr = config.optim.lr * lr_factor(self.step, self.total_steps, config.optim.schedule, config.optim.warmup_fraction,
                                         config.optim.div_factor, config.optim.final_div_factor)  # fmt: skip
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        offset_weight = loss_config.offset_weight * offset_loss_weight(self.step, self.total_steps, loss_config.offset_warmup)
        # The teacher normalises with its own batch statistics (BYOL's teacher does too): its
        # weights trail the student's, so the student's running statistics do not fit them, and
        # in eval mode the teacher's features shrank to near-constants within 100 steps.
        self.teacher.train()
        with torch.no_grad():
            teacher_out = self.teacher(collate([p.teacher for p in pairs]).to(self.device))
        self.teacher.eval()
        self.network.train()
        student_batch = collate([p.student for p in pairs]).to(self.device)
        student_out = self.network(student_batch)
        rng = np.random.default_rng([config.seed, self.step, self.context.rank])
        teacher_rows, student_rows, offset_parts, target_parts = [], [], [], []
        t_start = s_start = 0
        for pair in pairs:
            m_t, m_s = pair.teacher.num_voxels, pair.student.num_voxels
            chosen = rng.choice(pair.visible.shape[0], size=min(loss_config.sample_points, pair.visible.shape[0]), replace=False)
            t_rows = pair.teacher.inverse[pair.visible[chosen]]
            s_rows = pair.student.inverse[chosen]
            teacher_rows.append(t_start + t_rows)
            student_rows.append(s_start + s_rows)
            if offset_weight > 0:
                targets, valid = self._targets(pair, teacher_out.features[t_start : t_start + m_t], teacher_out.offsets[t_start : t_start + m_t])
                keep = valid[t_rows]
                inverse_student = torch.as_tensor(np.linalg.inv(pair.student_map).T, dtype=torch.float32, device=self.device)
                offset_parts.append(student_out.offsets[s_start + s_rows[keep]].float() @ inverse_student)
                target_parts.append(torch.as_tensor(targets[t_rows[keep]], dtype=torch.float32, device=self.device))
            t_start += m_t
            s_start += m_s
        t_index = torch.as_tensor(np.concatenate(teacher_rows), device=self.device)
        s_index = torch.as_tensor(np.concatenate(student_rows), device=self.device)
        assignments = zipf_sinkhorn(teacher_out.prototype_logits[t_index], loss_config.teacher_temperature,
                                    loss_config.zipf_alpha, loss_config.sinkhorn_iterations)  # fmt: skip
        log_student = torch.log_softmax(student_out.prototype_logits[s_index].float() / loss_config.student_temperature, dim=1)
        semantic = -(assignments * log_student).sum(dim=1).mean()
        offset = student_out.offsets.new_zeros(())
        valid_points = 0
        if offset_parts:
            predicted, wanted = torch.cat(offset_parts), torch.cat(target_parts)
            valid_points = int(predicted.shape[0])
            if valid_points:
                offset = (predicted - wanted).abs().sum(dim=1).mean()
            else:
                offset = student_out.offsets.sum() * 0.0  # keeps DDP's graph identical across ranks
        total = semantic + offset_weight * offset
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.student.parameters(), 3.0))
        if math.isfinite(grad_norm):
            self.optimizer.step()
        self._update_teacher()
        usage = assignments.mean(dim=0)
        return {
            "semantic": float(semantic.detach()),
            "offset": float(offset.detach()),
            "total": float(total.detach()),
            "offset_weight": offset_weight,
            "scr_points": float(valid_points),
            "prototypes_used": float((usage > 1.0 / (10 * usage.shape[0])).sum()),
            "lr": lr,
            "grad_norm": grad_norm,
        }

    @torch.no_grad()
    def _update_teacher(self) -> None:
        momentum = teacher_momentum(self.step, self.total_steps, self.config.teacher_momentum)
        # parameters only: the teacher's running statistics come from its own forward passes on
        # the full views, so they match its (trailing) weights when it is exported
        for teacher, student in zip(self.teacher.parameters(), self.student.parameters()):
            teacher.mul_(momentum).add_(student.detach(), alpha=1 - momentum)

    # ------------------------------------------------------------------ the run
    def fit(self) -> PretrainResult:
        """Pre-train to the config's total steps (resuming from the run's checkpoints), then export the teacher."""
        from torch.utils.data import DataLoader

        from labelfree3d.train.trainer import _progress_bar

        config = self.config
        self.resume()
        target = self.total_steps
        logger = None
        if self.context.is_main:
            ensure_output_folder(self.output_dir)
            import yaml

            write_text_atomic(self.output_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
            logger = CSVLogger(self.output_dir / "log.csv", resume_step=self.step)
        result = PretrainResult(step=self.step)
        durations: list[float] = []
        show = config.progress and self.context.is_main
        progress = _progress_bar(show)
        with progress:
            task = progress.add_task("pre-training", total=target, completed=self.step) if show else None
            while self.step < target:
                epoch = self.step // self.steps_per_epoch
                self.dataset.set_epoch(epoch)
                batches = self._batches(epoch)[self.step - epoch * self.steps_per_epoch :]
                loader = DataLoader(self.dataset, batch_sampler=batches, collate_fn=_collate_pairs, num_workers=0)
                for pairs in loader:
                    started = time.perf_counter()
                    terms = self.train_step(pairs)
                    self.step += 1
                    durations.append(time.perf_counter() - started)
                    result.losses = terms
                    if logger is not None and (self.step % config.log_every == 0 or self.step == target):
                        logger.log({"step": self.step, "epoch": epoch, **terms, "seconds": durations[-1]})
                    if task is not None:
                        progress.update(task, completed=self.step, description=f"epoch {epoch} loss {terms['total']:.3f}")
                    if self.step % config.checkpoint_every == 0 and self.step < target:
                        if self.context.is_main:
                            self.save()
                        self.context.barrier()
                    if self.step >= target:
                        break
        if self.context.is_main:
            self.save()
            result.model_path = save_checkpoint(self.output_dir / MODEL_FILE, self.teacher, config.to_dict())
        self.context.barrier()
        result.step = self.step
        result.seconds_per_step = float(np.mean(durations)) if durations else float("nan")
        return result
