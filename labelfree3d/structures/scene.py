"""The `Scene` container that flows through every part of labelfree3d.

A scene is one scan: a point cloud (optionally the vertices of a mesh), per-point attributes,
optional ground truth, optional superpoints and optionally a lazily loaded list of RGB-D frames
it was captured from. Units are metres for coordinates wherever the source format says so.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np

from labelfree3d.errors import InputError

__all__ = ["Scene", "GroundTruth", "RGBDFrame", "FrameSequence", "safe_scene_name"]


_UNSAFE_NAME_CHARACTERS = re.compile(r"[/\\\x00-\x1f\x7f]")


def safe_scene_name(name: Any) -> str:
    """`name` as a string that is safe as one file-name component.

    Scene names are written into output paths (`<output>/<scene>.npz`) and some come from the
    content of input files (an `.npz` archive's `name`, a prediction's `scene_name`), so a
    name may not climb out of the output folder: path separators and control characters
    become "_", and a name made only of dots (".", "..") or empty becomes "scene". Ordinary
    names are returned unchanged.
    """
    text = _UNSAFE_NAME_CHARACTERS.sub("_", str(name))
    return text if text.strip(".") else "scene"


def _as_int_labels(values: Any, name: str, n: int, source: str | None) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.shape[0] != n:
        raise InputError(f"{name} has shape {array.shape}, expected ({n},) to match the point count", source)
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise InputError(f"{name} must hold integer ids, got non-integer values", source)
    return array.astype(np.int64, copy=False)


@dataclass(eq=False)
class GroundTruth:
    """Per-point instance (and optionally semantic) annotation of a scene.

    Attributes:
        instance_ids: (N,) int64, instance index in [0, K) per point, -1 for points in no
            annotated instance (unlabelled).
        instance_evaluated: (K,) bool, False for instances of void classes (by default wall,
            floor and ceiling indoors) that evaluation ignores instead of counting.
        semantic_ids: (N,) int64 raw category id per point in the dataset's own label space,
            -1 where unknown; None when the format carries no semantics.
        instance_names: (K,) category name of each instance, when the format names them.
        semantic_names: optional mapping from semantic id to category name.
    """

    instance_ids: np.ndarray
    instance_evaluated: np.ndarray | None = None
    semantic_ids: np.ndarray | None = None
    instance_names: tuple[str, ...] | None = None
    semantic_names: dict[int, str] | None = None

    def __post_init__(self) -> None:
        ids = np.asarray(self.instance_ids)
        if ids.ndim != 1:
            raise InputError(f"instance_ids must be 1-D, got shape {ids.shape}")
        self.instance_ids = ids.astype(np.int64, copy=False)
        if self.instance_ids.size and self.instance_ids.min() < -1:
            raise InputError("instance_ids must be >= -1 (-1 marks unlabelled points)")
        largest = int(self.instance_ids.max()) if self.instance_ids.size else -1
        if self.instance_evaluated is None:
            self.instance_evaluated = np.ones(largest + 1, dtype=bool)
        else:
            evaluated = np.asarray(self.instance_evaluated, dtype=bool)
            if evaluated.ndim != 1 or evaluated.shape[0] <= largest:
                raise InputError(f"instance_evaluated has shape {evaluated.shape}, expected ({largest + 1},) or longer")
            self.instance_evaluated = evaluated
        k = self.num_instances
        if self.semantic_ids is not None:
            self.semantic_ids = _as_int_labels(self.semantic_ids, "semantic_ids", ids.shape[0], None)
        if self.instance_names is not None:
            self.instance_names = tuple(self.instance_names)
            if len(self.instance_names) != k:
                raise InputError(f"{len(self.instance_names)} instance names for {k} instances")

    @property
    def num_points(self) -> int:
        """Number of annotated points N."""
        return int(self.instance_ids.shape[0])

    @property
    def num_instances(self) -> int:
        """Size K of the instance table (evaluated and void); ids lie in [0, K)."""
        return int(self.instance_evaluated.shape[0])  # type: ignore[union-attr]

    @property
    def num_evaluated(self) -> int:
        """Number of instances evaluation counts (not void) that own at least one point."""
        present = np.bincount(self.instance_ids[self.instance_ids >= 0], minlength=self.num_instances) > 0
        return int(np.count_nonzero(present & self.instance_evaluated))

    def evaluated_ids(self) -> np.ndarray:
        """(N,) int64 instance id per point where the instance is evaluated, else -1 (void)."""
        out = self.instance_ids.copy()
        labelled = np.flatnonzero(out >= 0)
        # index only labelled points: a scene without instances has an empty instance table
        out[labelled[~self.instance_evaluated[out[labelled]]]] = -1  # type: ignore[index]
        return out

    def void_mask(self) -> np.ndarray:
        """(N,) bool, True for points that belong to no evaluated instance."""
        return self.evaluated_ids() < 0

    def subset(self, indices: np.ndarray) -> GroundTruth:
        """Ground truth of the points `indices` (int array or (N,) bool mask); ids are kept."""
        semantic = None if self.semantic_ids is None else self.semantic_ids[indices]
        # the instance table is kept whole so that ids mean the same in the subset
        return GroundTruth(
            self.instance_ids[indices], self.instance_evaluated, semantic, self.instance_names, self.semantic_names
        )

    def category_names(self) -> frozenset[str]:
        """Lower-cased category names this ground truth knows: its instances' and its classes'."""
        names = set(self.instance_names or ())
        names.update((self.semantic_names or {}).values())
        return frozenset(str(name).strip().lower() for name in names)

    def with_void_names(self, void_names: Sequence[str]) -> GroundTruth:
        """A copy in which instances whose category is in `void_names` (case-insensitive) are void."""
        if self.instance_names is None:
            raise InputError("ground truth carries no category names, cannot mark void classes by name")
        void = {name.strip().lower() for name in void_names}
        evaluated = np.array([name.lower() not in void for name in self.instance_names], dtype=bool)
        return dataclasses.replace(self, instance_evaluated=evaluated)


@dataclass(frozen=True, eq=False)
class RGBDFrame:
    """One registered RGB-D image.

    Attributes:
        depth: (H, W) float32 depth in metres along the optical axis, 0 where invalid.
        intrinsics: (3, 3) pinhole matrix K of the depth image, in pixels.
        camera_to_world: (4, 4) rigid transform from camera to world coordinates, or None when
            the sequence has no poses.
        color: (H, W, 3) uint8 RGB registered to the depth image, or None.
        name: frame name, e.g. "frame-000010".
    """

    depth: np.ndarray
    intrinsics: np.ndarray
    camera_to_world: np.ndarray | None = None
    color: np.ndarray | None = None
    name: str = ""


class FrameSequence(Sequence[RGBDFrame]):
    """A lazily loaded list of RGB-D frames: images are read only when a frame is indexed.

    Args:
        names: one name per frame, in capture order.
        loader: callable mapping a frame's position in `names` to the loaded `RGBDFrame`.
        intrinsics: (3, 3) depth intrinsics shared by the sequence (frames may override).
        source: folder the frames come from.
    """

    def __init__(
        self,
        names: Sequence[str],
        loader: Callable[[int], RGBDFrame],
        intrinsics: np.ndarray,
        source: str | Path | None = None,
        positions: Sequence[int] | None = None,
    ):
        self.names = list(names)
        self._loader = loader
        self.intrinsics = np.asarray(intrinsics, dtype=np.float64).reshape(3, 3)
        self.source = None if source is None else Path(source)
        self._positions = list(range(len(self.names))) if positions is None else list(positions)

    def __len__(self) -> int:
        return len(self._positions)

    @overload
    def __getitem__(self, index: int) -> RGBDFrame: ...

    @overload
    def __getitem__(self, index: slice) -> FrameSequence: ...

    def __getitem__(self, index: int | slice) -> RGBDFrame | FrameSequence:
        if isinstance(index, slice):  # e.g. frames[::25], Segment3D's frame sub-sampling
            positions = self._positions[index]
            return FrameSequence(self.names, self._loader, self.intrinsics, self.source, positions)
        position = self._positions[index]
        return self._loader(position)

    def __iter__(self) -> Iterator[RGBDFrame]:
        for i in range(len(self)):
            yield self[i]

    @property
    def frame_names(self) -> list[str]:
        """Names of the frames in this (possibly sub-sampled) sequence."""
        return [self.names[p] for p in self._positions]

    def __repr__(self) -> str:
        return f"FrameSequence({len(self)} frames from {self.source})"


@dataclass(eq=False)
class Scene:
    """A scan: points with optional attributes, mesh faces, ground truth and RGB-D frames.

    Attributes:
        points: (N, 3) float32 coordinates, metres where the format defines units.
        colors: (N, 3) float32 RGB in [0, 1] (uint8 input is converted), or None.
        normals: (N, 3) float32 unit normals, or None.
        faces: (F, 3) int64 vertex indices when the points are mesh vertices, or None.
        gt: per-point ground truth, or None.
        superpoints: (N,) int64 over-segment id per point (e.g. ScanNet's segs.json), or None.
        frames: lazily loaded RGB-D frames the scene was captured from, or None.
        name: scene name (used to pair predictions with ground truth).
        source: file or folder the scene was read from.
        metadata: free-form facts from the reader (format, dropped NaN count, ...). Numpy
            arrays whose first dimension is N are per-point (e.g. `pixel_index`, the (N,) int64
            pixel of each point of an organized cloud) and are subset along with the points;
            `summary()` reports only scalar values.

    Construction validates shapes, dtypes and finiteness and raises `InputError` naming
    `source`. A scene may have zero points only when it carries frames (an RGB-D sequence that
    has not been fused yet).
    """

    points: np.ndarray
    colors: np.ndarray | None = None
    normals: np.ndarray | None = None
    faces: np.ndarray | None = None
    gt: GroundTruth | None = None
    superpoints: np.ndarray | None = None
    frames: FrameSequence | None = None
    name: str = "scene"
    source: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        src = None if self.source is None else str(self.source)
        self.source = None if self.source is None else Path(self.source)
        self.name = safe_scene_name(self.name)
        points = np.asarray(self.points)
        if points.ndim != 2 or points.shape[1] != 3:
            raise InputError(f"points have shape {points.shape}, expected (N, 3)", src)
        if points.shape[0] == 0 and self.frames is None:
            raise InputError("the point cloud is empty", src)
        if not np.issubdtype(points.dtype, np.number):
            raise InputError(f"points have non-numeric dtype {points.dtype}", src)
        points = points.astype(np.float32, copy=False)
        if not np.all(np.isfinite(points)):
            bad = int(np.count_nonzero(~np.isfinite(points).all(axis=1)))
            raise InputError(f"{bad} of {points.shape[0]} points have NaN or infinite coordinates", src)
        self.points = points
        n = points.shape[0]
        self.colors = _validate_colors(self.colors, n, src)
        if self.normals is not None:
            normals = np.asarray(self.normals, dtype=np.float32)
            if normals.shape != (n, 3):
                raise InputError(f"normals have shape {normals.shape}, expected ({n}, 3)", src)
            if not np.all(np.isfinite(normals)):
                raise InputError("normals contain NaN or infinite values", src)
            self.normals = normals
        if self.faces is not None:
            faces = np.asarray(self.faces)
            if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
                raise InputError(
                    f"faces have shape {faces.shape} and dtype {faces.dtype}, expected (F, 3) integers", src
                )
            if faces.size and (faces.min() < 0 or faces.max() >= n):
                raise InputError(f"faces index vertices outside [0, {n})", src)
            self.faces = faces.astype(np.int64, copy=False)
        if self.gt is not None and self.gt.num_points != n:
            raise InputError(f"ground truth has {self.gt.num_points} labels for {n} points", src)
        if self.superpoints is not None:
            self.superpoints = _as_int_labels(self.superpoints, "superpoints", n, src)

    @property
    def num_points(self) -> int:
        """Number of points N."""
        return int(self.points.shape[0])

    @property
    def is_mesh(self) -> bool:
        """True when the points are vertices of a triangle mesh."""
        return self.faces is not None and len(self.faces) > 0

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounding box as ((3,) min corner, (3,) max corner), metres."""
        if self.num_points == 0:
            return np.zeros(3, np.float32), np.zeros(3, np.float32)
        return self.points.min(axis=0), self.points.max(axis=0)

    def replace(self, **changes: Any) -> Scene:
        """A validated copy with the given fields replaced (see `dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    def subset(self, indices: np.ndarray) -> Scene:
        """The scene restricted to points `indices` ((M,) int or (N,) bool).

        A mesh keeps the faces whose three vertices are all kept, re-indexed to the subset (so the
        objects left after removing a room's floor and walls are still a mesh); a subset that
        keeps no face is a point cloud.
        """
        indices = np.asarray(indices)
        if indices.dtype == bool:
            indices = np.flatnonzero(indices)
        faces = None
        if self.faces is not None and len(self.faces):
            position = np.full(self.num_points, -1, dtype=np.int64)
            position[indices] = np.arange(indices.shape[0])
            mapped = position[self.faces]
            mapped = mapped[(mapped >= 0).all(axis=1)]
            faces = mapped if mapped.shape[0] else None
        return Scene(
            points=self.points[indices],
            colors=None if self.colors is None else self.colors[indices],
            normals=None if self.normals is None else self.normals[indices],
            faces=faces,
            gt=None if self.gt is None else self.gt.subset(indices),
            superpoints=None if self.superpoints is None else self.superpoints[indices],
            frames=self.frames,
            name=self.name,
            source=self.source,
            metadata=_subset_metadata(self.metadata, indices, self.num_points),
        )

    def summary(self) -> dict[str, Any]:
        """Facts for `labelfree3d info`: counts, fields, bounds, ground truth and frames."""
        low, high = self.bounds()
        fields = ["xyz"] + [n for n in ("colors", "normals", "superpoints") if getattr(self, n) is not None]
        info: dict[str, Any] = {
            "name": self.name,
            "source": None if self.source is None else str(self.source),
            "format": self.metadata.get("format"),
            "points": self.num_points,
            "faces": 0 if self.faces is None else int(self.faces.shape[0]),
            "fields": fields,
            "bounds_min": [round(float(v), 4) for v in low],
            "bounds_max": [round(float(v), 4) for v in high],
        }
        if self.superpoints is not None:
            info["superpoint_count"] = int(np.unique(self.superpoints).size)
        if self.gt is not None:
            gt = self.gt
            present = np.unique(gt.instance_ids[gt.instance_ids >= 0])
            info["gt_instances"] = int(present.size)
            info["gt_evaluated_instances"] = gt.num_evaluated
            info["gt_unlabelled_points"] = int(np.count_nonzero(gt.instance_ids < 0))
            if gt.semantic_ids is not None:
                info["gt_semantic_classes"] = int(np.unique(gt.semantic_ids[gt.semantic_ids >= 0]).size)
        if self.frames is not None:
            info["frames"] = len(self.frames)
            info["intrinsics"] = self.frames.intrinsics.round(4).tolist()
        for key, value in self.metadata.items():
            if key != "format" and isinstance(value, (int, float, str, bool)):
                info.setdefault(key, value)
        return info

    def __repr__(self) -> str:
        parts = [f"{self.num_points} points"]
        if self.is_mesh:
            parts.append(f"{len(self.faces)} faces")  # type: ignore[arg-type]
        if self.gt is not None:
            parts.append(f"{self.gt.num_evaluated} GT instances")
        if self.frames is not None:
            parts.append(f"{len(self.frames)} frames")
        return f"Scene({self.name!r}: {', '.join(parts)})"


def _subset_metadata(metadata: dict[str, Any], indices: np.ndarray, n: int) -> dict[str, Any]:
    """Copy of `metadata` in which per-point arrays (first dimension `n`) follow `indices`."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n:
            value = value[indices]
        out[key] = value
    return out


def _validate_colors(colors: Any, n: int, src: str | None) -> np.ndarray | None:
    if colors is None:
        return None
    array = np.asarray(colors)
    if array.shape != (n, 3):
        raise InputError(f"colors have shape {array.shape}, expected ({n}, 3)", src)
    if np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > 255):
            raise InputError("integer colors must lie in [0, 255]", src)
        return (array.astype(np.float32) / 255.0).astype(np.float32)
    array = array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(array)):
        raise InputError("colors contain NaN or infinite values", src)
    if array.size and (array.min() < -1e-6 or array.max() > 1 + 1e-6):
        raise InputError("float colors must lie in [0, 1]", src)
    return np.clip(array, 0.0, 1.0)
