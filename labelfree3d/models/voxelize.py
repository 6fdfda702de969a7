"""Voxelisation of scans and collation of several scans into one sparse batch.

A scan of N points becomes M occupied voxels (`geometry.voxel_downsample`), each carrying the
mean of its points' input features; `inverse` maps every point to its voxel so that voxel-level
predictions come back to full resolution with `InstanceMasks.lift(inverse)`. Target masks are
brought to voxels by majority: a voxel belongs to a mask when at least half of its points do.
Several voxelised scans are stacked into a `SparseBatch` whose integer coordinates carry the scan
index in column 0, the layout spconv's `SparseConvTensor` expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from labelfree3d.errors import InputError, ParameterError
from labelfree3d.geometry import voxel_downsample
from labelfree3d.models._params import check_fraction, check_positive
from labelfree3d.structures import InstanceMasks, Scene

if TYPE_CHECKING:  # torch is imported lazily: voxelisation itself is numpy-only
    import torch

__all__ = [
    "INPUT_FEATURES",
    "InputSpec",
    "model_points",
    "with_model_superpoints",
    "superpoints_to_voxels",
    "point_features",
    "VoxelizedScene",
    "voxelize",
    "masks_to_voxels",
    "SparseBatch",
    "collate",
]

# per-point input channels a model can ask for, with their channel counts
INPUT_FEATURES = {"color": 3, "normal": 3, "xyz": 3, "ones": 1}

STRUCTURE_MODES = ("keep", "remove")

# the sparse UNet halves the grid four times; padding the grid to a multiple of 2**4 keeps every
# voxel inside the spatial shape of every level (a stride-2 conv on an odd extent would drop the last row)
GRID_MULTIPLE = 16


@dataclass(frozen=True)
class InputSpec:
    """What a model eats: the voxel size and the per-point features averaged into each voxel.

    Attributes:
        voxel_size: voxel edge in metres (2 cm in UnScene3D §3.3 / Segment3D App. A).
        features: names from `INPUT_FEATURES`: "color" (RGB mapped to [-1, 1]), "normal" (unit
            normals), "xyz" (coordinates relative to the scan's bounding-box centre, metres),
            "ones" (a constant, for geometry-only models). Mask3D-style models use colour only.
        structure: "keep" feeds the whole scan; "remove" cuts the scan's structure (floor,
            walls, ceiling, table top: `labelfree3d.segment.structure.scene_structure`) away
            before the model sees it, in training and at inference, so masks never cover it.
            The papers' models see whole scans; FreePoint removes planes before its pseudo
            masks, and every training-free method here segments the rest only.
        superpoints: predict masks per superpoint instead of per voxel: the mask features of a
            superpoint's voxels are averaged before the dot product with the query embeddings,
            so a mask takes or leaves whole superpoints (Mask3D's segment mode, which UnScene3D
            §3.3 trains with). The superpoints are the scan's own, else computed
            (`postprocess.scene_superpoints`: ScanNet's segmentator, as the NCut pseudo masks use).
    """

    voxel_size: float = 0.02
    features: tuple[str, ...] = ("color",)
    structure: str = "keep"
    superpoints: bool = False

    def __post_init__(self) -> None:
        check_positive(self.voxel_size, "input.voxel_size")
        features = tuple(self.features)
        if not features:
            raise ParameterError("input.features must name at least one feature")
        for name in features:
            if name not in INPUT_FEATURES:
                raise ParameterError(f"input.features: unknown feature {name!r}; valid: {', '.join(INPUT_FEATURES)}")
        if len(set(features)) != len(features):
            raise ParameterError(f"input.features lists a feature twice: {list(features)}")
        object.__setattr__(self, "features", features)
        if self.structure not in STRUCTURE_MODES:
            raise ParameterError(f"input.structure must be one of {', '.join(STRUCTURE_MODES)}, got {self.structure!r}")
        if not isinstance(self.superpoints, bool):
            raise ParameterError(f"input.superpoints must be true or false, got {self.superpoints!r}")

    @property
    def channels(self) -> int:
        """Number of input channels C."""
        return sum(INPUT_FEATURES[name] for name in self.features)


def point_features(
    scene: Scene,
    features: Sequence[str],
    points: np.ndarray | None = None,
    colors: np.ndarray | None = None,
) -> np.ndarray:
    """(N, C) float32 input features of a scan's points.

    Args:
        scene: the scan (supplies normals and, unless overridden, points and colours).
        features: names from `INPUT_FEATURES`, concatenated in this order.
        points: (N, 3) coordinates to use instead of `scene.points` (augmented copies).
        colors: (N, 3) RGB in [0, 1] to use instead of `scene.colors`.

    Raises:
        InputError: the scan lacks an attribute a feature needs (e.g. colours for "color").
    """
    points = scene.points if points is None else points
    colors = scene.colors if colors is None else colors
    columns = []
    for name in features:
        if name == "color":
            if colors is None:
                raise InputError(f"the model needs colours but scene {scene.name!r} has none", scene.source)
            columns.append(np.asarray(colors, dtype=np.float32) * 2.0 - 1.0)
        elif name == "normal":
            if scene.normals is None:
                raise InputError(f"the model needs normals but scene {scene.name!r} has none", scene.source)
            columns.append(np.asarray(scene.normals, dtype=np.float32))
        elif name == "xyz":
            low, high = points.min(axis=0), points.max(axis=0)
            columns.append((points - (low + high) / 2).astype(np.float32))
        elif name == "ones":
            columns.append(np.ones((points.shape[0], 1), dtype=np.float32))
        else:
            raise ParameterError(f"unknown input feature {name!r}; valid: {', '.join(INPUT_FEATURES)}")
    return np.concatenate(columns, axis=1).astype(np.float32, copy=False)


def model_points(scene: Scene, spec: InputSpec) -> np.ndarray | None:
    """(M,) indices of the points the model sees under `spec.structure`; None: every point."""
    if spec.structure == "keep":
        return None
    from labelfree3d.segment.structure import scene_structure  # cached per scene object

    return np.flatnonzero(scene_structure(scene).rest)


def with_model_superpoints(scene: Scene, spec: InputSpec) -> Scene:
    """`scene` carrying superpoints when the model predicts per superpoint (computed once, on the whole scan).

    Computing them before any subset (structure removal, thinning, tiles) keeps every part of a
    scan on the same superpoints; `Scene.subset` carries them along.
    """
    if not spec.superpoints or scene.superpoints is not None:
        return scene
    import dataclasses

    from labelfree3d.models.postprocess import scene_superpoints

    return dataclasses.replace(scene, superpoints=scene_superpoints(scene))


def superpoints_to_voxels(superpoints: np.ndarray, inverse: np.ndarray, num_voxels: int) -> np.ndarray:
    """(M,) int64 segment of each voxel: the superpoint most of its points belong to, numbered 0..S-1.

    Args:
        superpoints: (N,) superpoint id per point (any integers).
        inverse: (N,) voxel of each point, values in [0, M).
        num_voxels: M.
    """
    superpoints = np.asarray(superpoints)
    if superpoints.shape != inverse.shape:
        raise InputError(f"superpoints cover {superpoints.shape[0]} points, the scan has {inverse.shape[0]}")
    _, compact = np.unique(superpoints, return_inverse=True)
    votes = sp.csr_matrix((np.ones(inverse.shape[0], np.int32), (inverse, compact)), shape=(num_voxels, int(compact.max(initial=0)) + 1))
    majority = np.asarray(votes.argmax(axis=1)).ravel()
    return np.unique(majority, return_inverse=True)[1].astype(np.int64)


@dataclass(eq=False)
class VoxelizedScene:
    """One scan as M voxels (numpy arrays; collated to torch by `collate`).

    Attributes:
        name: scan name.
        coords: (M, 3) int32 voxel coordinates, shifted so that their minimum is 0.
        positions: (M, 3) float32 mean position of each voxel's points, metres.
        features: (M, C) float32 mean input features per voxel.
        inverse: (N,) int64 voxel of each point.
        counts: (M,) int64 points per voxel.
        targets: (K, M) bool target masks over voxels, or None when the scan has no targets.
        segments: (M,) int64 superpoint of each voxel, numbered 0..S-1, for models that predict
            per superpoint (`InputSpec.superpoints`); None otherwise.
    """

    name: str
    coords: np.ndarray
    positions: np.ndarray
    features: np.ndarray
    inverse: np.ndarray
    counts: np.ndarray
    targets: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
    segments: np.ndarray | None = None

    @property
    def num_voxels(self) -> int:
        """M, the number of occupied voxels."""
        return int(self.coords.shape[0])

    @property
    def num_points(self) -> int:
        """N, the number of points of the scan."""
        return int(self.inverse.shape[0])


def masks_to_voxels(masks: InstanceMasks, inverse: np.ndarray, counts: np.ndarray, min_fraction: float = 0.5) -> np.ndarray:
    """Per-voxel target masks: voxel v is in mask k when >= `min_fraction` of its points are.

    Args:
        masks: K masks over N points.
        inverse: (N,) int64 voxel of each point, values in [0, M).
        counts: (M,) points per voxel.
        min_fraction: share of a voxel's points a mask must hold to claim the voxel.

    Returns:
        (K, M) bool; masks that claim no voxel are returned empty (rows of False), so that row k
        still means mask k.
    """
    min_fraction = check_fraction(min_fraction, "min_fraction", open_low=True)
    if masks.num_points != inverse.shape[0]:
        raise InputError(f"target masks cover {masks.num_points} points, the scan has {inverse.shape[0]}")
    m = counts.shape[0]
    selector = sp.csr_matrix(
        (np.ones(inverse.shape[0], dtype=np.int32), (np.arange(inverse.shape[0]), inverse)), shape=(inverse.shape[0], m)
    )
    per_voxel = (masks.to_sparse().astype(np.int32) @ selector).toarray()  # (K, M) points of mask k in voxel v
    return per_voxel >= min_fraction * counts[None, :]


def voxelize(
    points: np.ndarray,
    features: np.ndarray,
    voxel_size: float,
    name: str = "scene",
    targets: InstanceMasks | None = None,
    superpoints: np.ndarray | None = None,
) -> VoxelizedScene:
    """Quantise a scan to voxels, keeping the point-to-voxel map.

    Args:
        points: (N, 3) coordinates in metres (already augmented for training).
        features: (N, C) per-point input features (see `point_features`).
        voxel_size: voxel edge in metres.
        name: scan name carried along for logs and predictions.
        targets: optional masks over the N points, brought to voxels by majority.
        superpoints: optional (N,) superpoint id per point, brought to voxels by majority
            (`VoxelizedScene.segments`).

    Returns:
        `VoxelizedScene` with coordinates shifted to start at 0.
    """
    voxel_size = check_positive(voxel_size, "voxel_size")
    points = np.asarray(points, dtype=np.float32)
    grid = voxel_downsample(points, voxel_size, features=features)
    coords = grid.coords - grid.coords.min(axis=0)
    if coords.max(initial=0) >= np.iinfo(np.int32).max // GRID_MULTIPLE:
        raise ParameterError(f"voxel_size {voxel_size} is too small for a scan of this extent")
    voxel_targets = None if targets is None else masks_to_voxels(targets, grid.inverse, grid.counts)
    return VoxelizedScene(
        name=name,
        coords=coords.astype(np.int32),
        positions=grid.points.astype(np.float32),
        features=grid.features.astype(np.float32),
        inverse=grid.inverse,
        counts=grid.counts,
        targets=voxel_targets,
        segments=None if superpoints is None else superpoints_to_voxels(superpoints, grid.inverse, grid.counts.shape[0]),
    )


@dataclass(eq=False)
class SparseBatch:
    """Several voxelised scans stacked for one forward pass (torch tensors).

    Attributes:
        coords: (V, 4) int32 [scan index, x, y, z] voxel coordinates, V = sum of M_b.
        features: (V, C) float32 input features.
        positions: (V, 3) float32 voxel positions in metres.
        offsets: (B + 1,) int64: scan b owns rows offsets[b]:offsets[b+1].
        spatial_shape: (3,) grid extent, a multiple of 16 along each axis.
        targets: per scan a (K_b, M_b) bool tensor, or None for inference batches.
        scenes: the `VoxelizedScene`s (for names and the maps back to points).
        segments: per scan the (M_b,) int64 superpoint of each voxel (`VoxelizedScene.segments`),
            or None when the model predicts per voxel.
    """

    coords: torch.Tensor
    features: torch.Tensor
    positions: torch.Tensor
    offsets: torch.Tensor
    spatial_shape: tuple[int, int, int]
    targets: list[torch.Tensor] | None
    scenes: list[VoxelizedScene]
    segments: list[torch.Tensor] | None = None

    @property
    def batch_size(self) -> int:
        """Number of scans B."""
        return len(self.scenes)

    def scene_rows(self, b: int) -> slice:
        """Rows of scan b in the stacked tensors."""
        return slice(int(self.offsets[b]), int(self.offsets[b + 1]))

    def to(self, device: torch.device | str) -> SparseBatch:
        """The batch with its tensors on `device` (non-blocking from pinned memory)."""
        def move(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.to(device, non_blocking=True)

        return SparseBatch(
            coords=move(self.coords),
            features=move(self.features),
            positions=move(self.positions),
            offsets=self.offsets,  # stays on the CPU: it is only read to slice rows
            spatial_shape=self.spatial_shape,
            targets=None if self.targets is None else [move(t) for t in self.targets],
            scenes=self.scenes,
            segments=None if self.segments is None else [move(t) for t in self.segments],
        )


def collate(scenes: Sequence[VoxelizedScene]) -> SparseBatch:
    """Stack voxelised scans into one `SparseBatch` (the DataLoader's `collate_fn`)."""
    import torch

    scenes = list(scenes)
    if not scenes:
        raise InputError("cannot collate an empty batch")
    channels = {s.features.shape[1] for s in scenes}
    if len(channels) != 1:
        raise InputError(f"scans in one batch have different feature widths {sorted(channels)}")
    sizes = np.array([s.num_voxels for s in scenes], dtype=np.int64)
    coords = np.concatenate(
        [np.concatenate([np.full((s.num_voxels, 1), b, np.int32), s.coords], axis=1) for b, s in enumerate(scenes)]
    )
    extent = coords[:, 1:].max(axis=0) + 1
    spatial_shape = tuple(int(-(-e // GRID_MULTIPLE) * GRID_MULTIPLE) for e in extent)
    with_targets = all(s.targets is not None for s in scenes)
    return SparseBatch(
        coords=torch.from_numpy(coords),
        features=torch.from_numpy(np.concatenate([s.features for s in scenes])),
        positions=torch.from_numpy(np.concatenate([s.positions for s in scenes])),
        offsets=torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)])),
        spatial_shape=spatial_shape,  # type: ignore[arg-type]
        targets=[torch.from_numpy(s.targets) for s in scenes] if with_targets else None,
        scenes=scenes,
        segments=[torch.from_numpy(s.segments) for s in scenes] if all(s.segments is not None for s in scenes) else None,
    )
