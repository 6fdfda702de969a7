"""Training data: (scan, target masks) pairs, voxelised and augmented on access.

Targets are generic `InstanceMasks` over each scan's points: the ground truth (to check the
chain, or for supervised baselines) or pseudo masks from a segmenter or a previous model. A
self-training recipe swaps them between rounds with `MaskDataset.set_targets`, keeping the scans.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Union

import numpy as np
import torch

from labelfree3d.errors import InputError, ParameterError
from labelfree3d.models.voxelize import (
    InputSpec,
    VoxelizedScene,
    model_points,
    point_features,
    voxelize,
    with_model_superpoints,
)
from labelfree3d.structures import InstanceMasks, Scene
from labelfree3d.train.augment import AugmentConfig, augment_points, place_beside

__all__ = ["MaskDataset", "ground_truth_targets", "expand_scan_paths", "SceneSource", "TargetSource"]

SceneSource = Union[Scene, str, os.PathLike]
# "gt": the scan's ground truth; a mapping scene name -> masks; a folder of `<scene name>.npz`
# prediction files (labelfree3d's format, e.g. a segmenter's output); or a callable name -> masks
TargetSource = Union[str, os.PathLike, Mapping[str, InstanceMasks], Callable[[Scene], InstanceMasks]]


def ground_truth_targets(scene: Scene) -> InstanceMasks:
    """One mask per evaluated ground-truth instance (void instances and unlabelled points excluded)."""
    if scene.gt is None:
        raise InputError(f"scene {scene.name!r} has no ground truth to train on", scene.source)
    return InstanceMasks.from_labels(scene.gt.evaluated_ids())


def expand_scan_paths(entries: Sequence[str | os.PathLike]) -> list[Path]:
    """Scan paths from a list of files, folders of scans, scan lists and glob patterns (deduplicated).

    What counts as a scan is decided by `labelfree3d.io.scans.list_scans` (shared by every
    command that takes many scans): a folder `read_scene` recognises is one scan (e.g. a
    ScanNet scene folder); any other folder contributes its immediate children that are scans
    (READMEs, label companions and other files are skipped).
    """
    from labelfree3d.io.scans import list_scans

    if not entries:
        raise ParameterError("no training scans given")
    return list_scans(entries)


class MaskDataset(torch.utils.data.Dataset):
    """(scan, target masks) pairs served as augmented `VoxelizedScene`s.

    Args:
        scenes: `Scene`s in memory or paths read with `read_scene` on access (large datasets).
        targets: where target masks come from (see `TargetSource`); "gt" by default.
        input_spec: voxel size and input features of the model (None: the `Trainer` fills in
            its model's).
        augment: augmentation settings (`AugmentConfig(enabled=False)` for none).
        seed: base seed; sample i of epoch e is augmented with `default_rng([seed, e, i])`.
        reader_format: format name passed to `read_scene` for path entries (None: detect).
        thinning: keep one random point per cell of `thinning` x the voxel size before
            augmenting (None: every point; see `DataConfig.thinning`).
        min_seen_fraction: targets keeping less than this share of their points outside the
            structure are dropped (only when the model removes structure; `DataConfig`).
    """

    def __init__(
        self,
        scenes: Sequence[SceneSource],
        targets: TargetSource = "gt",
        input_spec: InputSpec | None = None,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        reader_format: str | None = None,
        thinning: float | None = None,
        min_seen_fraction: float = 0.5,
    ):
        if len(scenes) == 0:
            raise ParameterError("a training dataset needs at least one scan")
        self.sources = list(scenes)
        self.input_spec = input_spec
        self.augment = augment or AugmentConfig()
        self.seed = int(seed)
        self.reader_format = reader_format
        self.thinning = thinning
        self.min_seen_fraction = float(min_seen_fraction)
        self._model_points: dict[int, np.ndarray | None] = {}  # per scan, with input.structure "remove"
        self._superpoints: dict[int, np.ndarray] = {}  # per scan, with input.superpoints
        self.epoch = 0
        self.set_targets(targets)

    def __len__(self) -> int:
        return len(self.sources)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose augmentations `__getitem__` draws (call before each epoch)."""
        self.epoch = int(epoch)

    def set_targets(self, targets: TargetSource) -> None:
        """Replace the target masks (e.g. a self-training round's new pseudo masks)."""
        if isinstance(targets, (str, os.PathLike)) and os.fspath(targets) != "gt":
            folder = Path(targets)
            if not folder.is_dir():
                raise InputError("target folder (pseudo masks as <scene>.npz) does not exist", folder)
        elif not (isinstance(targets, (str, Mapping)) or callable(targets)):
            raise ParameterError(f"targets must be 'gt', a folder, a mapping or a callable, got {type(targets).__name__}")
        self.targets = targets

    def scene(self, index: int) -> Scene:
        """The scan at `index` (read from disk for path entries)."""
        source = self.sources[index]
        if isinstance(source, Scene):
            return source
        from labelfree3d.io import read_scene

        return read_scene(source, format=self.reader_format)

    def scene_targets(self, scene: Scene) -> InstanceMasks:
        """Target masks over the scan's points."""
        targets = self.targets
        if isinstance(targets, str) and targets == "gt":
            masks = ground_truth_targets(scene)
        elif isinstance(targets, Mapping):
            if scene.name not in targets:
                raise InputError(f"no target masks for scene {scene.name!r}", scene.source)
            masks = targets[scene.name]
        elif isinstance(targets, (str, os.PathLike)):
            from labelfree3d.io import read_predictions

            masks, _ = read_predictions(Path(targets) / f"{scene.name}.npz")
        else:
            masks = targets(scene)
        if masks.num_points != scene.num_points:
            raise InputError(f"target masks cover {masks.num_points} points, scene {scene.name!r} has {scene.num_points}", scene.source)
        return masks

    def __getitem__(self, index: int) -> VoxelizedScene:
        if self.input_spec is None:
            raise ParameterError("MaskDataset has no input_spec: pass one, or hand the dataset to a Trainer")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        scene, points, colors, targets = self._augmented(index, rng)
        if len(self) > 1 and self.augment.enabled and self.augment.mix_probability and rng.random() < self.augment.mix_probability:
            other_index = (index + 1 + int(rng.integers(len(self) - 1))) % len(self)
            other, other_points, other_colors, other_targets = self._augmented(other_index, rng)
            scene, points, colors, targets = _side_by_side(
                (scene, points, colors, targets),
                (other, place_beside(points, other_points, self.augment, rng), other_colors, other_targets),
            )
        features = point_features(scene, self.input_spec.features, points=points, colors=colors)
        superpoints = scene.superpoints if self.input_spec.superpoints else None
        voxels = voxelize(points, features, self.input_spec.voxel_size, scene.name, targets, superpoints=superpoints)
        assert voxels.targets is not None
        voxels.targets = voxels.targets[voxels.targets.any(axis=1)]  # masks lost to voxelisation cannot be learned
        return voxels

    def _augmented(self, index: int, rng: np.random.Generator) -> tuple[Scene, np.ndarray, np.ndarray | None, InstanceMasks]:
        """Scan `index` as the model sees it: structure cut, thinned, augmented; with its targets on those points."""
        scene = self.scene(index)
        targets = self.scene_targets(scene)
        if self.input_spec.superpoints:  # computed once per scan and process, on the whole scan
            if index not in self._superpoints:
                self._superpoints[index] = with_model_superpoints(scene, self.input_spec).superpoints
            scene = dataclasses.replace(scene, superpoints=self._superpoints[index])
        if index not in self._model_points:
            self._model_points[index] = model_points(scene, self.input_spec)
        seen = self._model_points[index]
        if seen is not None:
            if seen.shape[0] == 0:
                raise InputError(f"scene {scene.name!r} is all structure: nothing left for the model to see", scene.source)
            sizes = targets.sizes
            scene, targets = scene.subset(seen), targets.restrict(seen)
            targets = targets.select(np.flatnonzero(targets.sizes >= self.min_seen_fraction * np.maximum(sizes, 1)))
        if self.thinning is not None and self.augment.enabled:  # thinning saves augmentation time only
            from labelfree3d.geometry import one_point_per_cell

            keep = one_point_per_cell(scene.points, self.thinning * self.input_spec.voxel_size, rng)
            if keep.shape[0] < scene.num_points:
                scene, targets = scene.subset(keep), targets.restrict(keep)
        points, colors = augment_points(scene.points, scene.colors, self.augment, rng)
        return scene, points, colors, targets


def _side_by_side(first: tuple, second: tuple) -> tuple[Scene, np.ndarray, np.ndarray | None, InstanceMasks]:
    """One training sample from two augmented scans: (scene, points, colours, targets) of both, concatenated.

    The merged scene carries what `point_features` and `voxelize` read (points, colours, normals,
    superpoints, renumbered so that the two scans share none); its name is the first scan's.
    """
    (scene, points, colors, targets), (other, other_points, other_colors, other_targets) = first, second
    n, m = points.shape[0], other_points.shape[0]

    def joined(a, b):
        return None if a is None or b is None else np.concatenate([a, b])

    superpoints = None
    if scene.superpoints is not None and other.superpoints is not None:
        superpoints = np.concatenate([scene.superpoints, other.superpoints + int(scene.superpoints.max(initial=-1)) + 1])
    merged = Scene(points=np.concatenate([points, other_points]), colors=joined(scene.colors, other.colors),
                   normals=joined(scene.normals, other.normals), superpoints=superpoints, name=scene.name, source=scene.source)
    masks = InstanceMasks.concatenate([targets.expand(np.arange(n), n + m), other_targets.expand(np.arange(n, n + m), n + m)])
    return merged, merged.points, joined(colors, other_colors), masks

