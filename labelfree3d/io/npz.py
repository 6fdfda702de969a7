"""Scenes as `.npz` archives: our lossless exchange format for a whole `Scene`.

Keys (all optional except ``points``):

==================  ==============  ==============================================
``points``          float32 (N, 3)  coordinates, metres
``colors``          float32 (N, 3)  RGB in [0, 1] (uint8 in [0, 255] also accepted)
``normals``         float32 (N, 3)  unit normals
``faces``           int64 (F, 3)    triangle vertex indices
``instance_ids``    int64 (N,)      GT instance per point, -1 = unlabelled
``instance_evaluated`` bool (K,)    False for void instances
``semantic_ids``    int64 (N,)      GT category per point, -1 = unknown
``instance_names``  str (K,)        GT category name per instance
``superpoints``     int64 (N,)      over-segment id per point
``name``            str ()          scene name
==================  ==============  ==============================================
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from labelfree3d.errors import FormatError, InputError
from labelfree3d.io._labels import ARRAY_FILE_ERRORS, integer_labels
from labelfree3d.io.atomic import atomic_path
from labelfree3d.io.registry import register_reader
from labelfree3d.structures import GroundTruth, Scene

_PREDICTION_KEYS = {"mask_indptr", "mask_indices"}


def _is_scene_npz(path: Path) -> bool:
    if path.suffix.lower() != ".npz":
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = {name.removesuffix(".npy") for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError, ValueError):
        return False  # not a zip: the extension still routes it to `read_npz_scene`, which says why
    return "points" in names


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every member of the archive `path`, without pickles; anything but a zip of .npy -> FormatError."""
    if not zipfile.is_zipfile(path):
        size = path.stat().st_size
        what = "an empty file" if size == 0 else "not a zip archive"
        raise FormatError(f"not a readable .npz archive ({what}; a scene archive is a zip of .npy arrays)", path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise FormatError("not a readable .npz archive (it holds object arrays, which are never unpickled)", path) from error
        raise FormatError(f"not a readable .npz archive ({(str(error).splitlines() or [type(error).__name__])[0]})", path) from error
    except ARRAY_FILE_ERRORS as error:
        detail = (str(error).splitlines() or [type(error).__name__])[0] if str(error) else type(error).__name__
        raise FormatError(f"not a readable .npz archive (corrupt or truncated: {detail})", path) from error


@register_reader("npz", extensions=(".npz",), detect=_is_scene_npz, description="labelfree3d scene archive (.npz, see labelfree3d.io.npz)")
def read_npz_scene(path: Path) -> Scene:
    """Read a scene archive written by `write_npz_scene` (or by hand, see the module docs).

    Every array is checked against the table above; a missing, non-zip, truncated or
    inconsistent archive raises `FormatError` / `InputError` naming `path`.
    """
    arrays = _load_arrays(path)
    if "points" not in arrays:
        hint = " (this is a prediction file: use `labelfree3d evaluate`)" if _PREDICTION_KEYS <= arrays.keys() else ""
        raise FormatError(f"scene archive lacks the 'points' array; has {sorted(arrays)}{hint}", path)
    points = arrays["points"]
    if points.ndim != 2:
        raise FormatError(f"'points' has shape {points.shape}, expected (N, 3)", path)
    n = points.shape[0]
    for key in ("instance_ids", "semantic_ids", "superpoints"):
        if key in arrays:
            arrays[key] = _integer_array(arrays[key], key, n, path)
    gt = None
    if "instance_ids" in arrays or "semantic_ids" in arrays:
        names = arrays.get("instance_names")
        if names is not None and (names.ndim != 1 or names.dtype.kind != "U"):
            raise FormatError(f"'instance_names' must be a 1-D string array, got {names.dtype} {names.shape}", path)
        evaluated = arrays.get("instance_evaluated")
        if evaluated is not None and (evaluated.ndim != 1 or evaluated.dtype.kind not in "biu"):
            raise FormatError(f"'instance_evaluated' must be a 1-D bool array, got {evaluated.dtype} {evaluated.shape}", path)
        try:
            gt = GroundTruth(
                arrays.get("instance_ids", np.full(n, -1)),
                evaluated,
                arrays.get("semantic_ids"),
                None if names is None else tuple(str(v) for v in names),
            )
        except InputError as error:  # GroundTruth does not know the file: name it here
            raise InputError(error.problem, path) from error
    metadata: dict[str, int] = {}
    finite = np.isfinite(points).all(axis=1) if points.dtype.kind in "biuf" else np.ones(n, bool)
    if n and not finite.all():  # the rule of every reader: non-finite points are dropped and counted
        if not finite.any():
            raise InputError(f"all {n} points have NaN or infinite coordinates", path)
        keep = np.flatnonzero(finite)
        metadata["dropped_nan_points"] = int(n - keep.size)
        for key in ("points", "colors", "normals", "superpoints"):
            if key in arrays and arrays[key].shape[:1] == (n,):
                arrays[key] = arrays[key][keep]
        points = arrays["points"]
        gt = None if gt is None else gt.subset(keep)
        if "faces" in arrays and arrays["faces"].ndim == 2 and arrays["faces"].dtype.kind in "iu":
            faces = arrays["faces"].astype(np.int64)
            if faces.size and (faces.min() < 0 or faces.max() >= n):
                raise InputError(f"faces index vertices outside [0, {n})", path)
            position = np.full(n, -1, dtype=np.int64)
            position[keep] = np.arange(keep.size)
            mapped = position[faces]
            whole = (mapped >= 0).all(axis=1)
            arrays["faces"] = mapped[whole]
            if not whole.all():
                metadata["dropped_faces"] = int(np.count_nonzero(~whole))
    name = path.stem
    if "name" in arrays:
        value = arrays["name"]
        if value.ndim != 0 or value.dtype.kind != "U":
            raise FormatError(f"'name' must be a 0-d string array, got {value.dtype} {value.shape}", path)
        name = str(value)
    scene = Scene(
        points=points,
        colors=arrays.get("colors"),
        normals=arrays.get("normals"),
        faces=arrays.get("faces"),
        gt=gt,
        superpoints=arrays.get("superpoints"),
        name=name,
        source=path,
    )
    scene.metadata.update(metadata)
    return scene


def _integer_array(values: np.ndarray, key: str, n: int, path: Path) -> np.ndarray:
    """(N,) int64 copy of a per-point id array, or a FormatError naming the key and file."""
    if values.shape != (n,):
        raise InputError(f"'{key}' has shape {values.shape}, expected ({n},) (one per point)", path)
    if values.dtype.kind not in "biuf":
        raise FormatError(f"'{key}' must hold integer ids, got dtype {values.dtype}", path)
    return integer_labels(values, f"'{key}'", path)


def write_npz_scene(scene: Scene, path: str | os.PathLike[str]) -> Path:
    """Write every array of `scene` to a compressed `.npz` archive (atomically)."""
    payload: dict[str, np.ndarray] = {"points": scene.points, "name": np.array(scene.name)}
    for key in ("colors", "normals", "faces", "superpoints"):
        value = getattr(scene, key)
        if value is not None:
            payload[key] = value
    if scene.gt is not None:
        payload["instance_ids"] = scene.gt.instance_ids
        payload["instance_evaluated"] = scene.gt.instance_evaluated  # type: ignore[assignment]
        if scene.gt.semantic_ids is not None:
            payload["semantic_ids"] = scene.gt.semantic_ids
        if scene.gt.instance_names is not None:
            payload["instance_names"] = np.array(scene.gt.instance_names, dtype=str)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **payload)
    return Path(path)
