"""Prediction files: our compact `.npz` and the ScanNet benchmark's text layout.

Our `.npz` prediction file (numpy `savez_compressed`) holds:

==================  ============  =====================================================
key                 dtype/shape   meaning
==================  ============  =====================================================
``mask_indptr``     int64 (K+1,)  mask k owns ``mask_indices[mask_indptr[k]:mask_indptr[k+1]]``
``mask_indices``    int32 (nnz,)  sorted point indices of each mask (points of the scene
                                  in the order its reader returns them)
``scores``          float64 (K,)  confidence per mask, higher = more confident
``num_points``      int64 ()      N, the point count of the scene the masks refer to
``scene_name``      str ()        optional: name used to pair with ground truth
``method``          str ()        optional: what produced the masks
==================  ============  =====================================================

The ScanNet benchmark layout (``evaluate_semantic_instance.py``) is a folder holding
``<scene>.txt`` with one line per mask, ``predicted_masks/<scene>_<k>.txt 1 0.93`` (relative
mask path, label id, confidence), and one mask file per prediction with a 0/1 line per vertex.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import numpy as np

from labelfree3d.errors import FormatError, InputError
from labelfree3d.io._integer_lines import binary_lines, integer_lines, normalise_lines
from labelfree3d.io._labels import ARRAY_FILE_ERRORS
from labelfree3d.io.atomic import atomic_folder, atomic_path
from labelfree3d.structures import InstanceMasks
from labelfree3d.structures.scene import safe_scene_name

PREDICTION_KEYS = ("mask_indptr", "mask_indices", "scores", "num_points")


def write_predictions(
    masks: InstanceMasks,
    path: str | os.PathLike[str],
    scene_name: str | None = None,
    method: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Save masks to our `.npz` prediction format (atomically); returns the path.

    `metadata` adds string members (e.g. the cache key of `labelfree3d pseudo-label`); their
    names must not clash with the format's own keys. `read_prediction_metadata` reads them back.
    """
    clash = sorted(set(metadata or {}) & {*PREDICTION_KEYS, "scene_name", "method"})
    if clash:
        raise ValueError(f"metadata keys {clash} are reserved by the prediction format")
    payload: dict[str, np.ndarray] = {
        "mask_indptr": masks.indptr.astype(np.int64),
        "mask_indices": masks.indices,
        "scores": masks.scores.astype(np.float64),
        "num_points": np.int64(masks.num_points),
    }
    if scene_name is not None:
        payload["scene_name"] = np.array(scene_name)
    if method is not None:
        payload["method"] = np.array(method)
    for key, value in (metadata or {}).items():
        payload[key] = np.array(str(value))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **payload)
    return Path(path)


def read_predictions(path: str | os.PathLike[str]) -> tuple[InstanceMasks, dict[str, str]]:
    """Load an `.npz` prediction file.

    Returns:
        (masks, info) where info holds the optional `scene_name` and `method` strings.

    Raises:
        InputError / FormatError naming the file when it is missing, not an npz, lacks keys or
        is internally inconsistent.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such prediction file", path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in PREDICTION_KEYS if k not in data.files]
            if missing:
                raise FormatError(f"prediction file lacks keys {missing} (has {sorted(data.files)})", path)
            arrays = {k: data[k] for k in data.files}
    except ARRAY_FILE_ERRORS as error:
        raise FormatError(f"not a readable .npz prediction file: truncated or corrupt ({error})", path) from error
    _check_prediction_arrays(arrays, path)
    try:
        masks = InstanceMasks(arrays["mask_indptr"], arrays["mask_indices"], arrays["scores"], int(arrays["num_points"]))
    except InputError as error:
        raise FormatError(f"inconsistent prediction file: {error.problem}", path) from error
    info = {k: str(arrays[k]) for k in ("scene_name", "method") if k in arrays}
    if "scene_name" in info:  # pairs with `Scene.name`, which is made safe the same way
        info["scene_name"] = safe_scene_name(info["scene_name"]) if info["scene_name"] else ""
    return masks, info


def _check_prediction_arrays(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Dtype and shape of each member of a prediction file (FormatError naming the member and file)."""
    expected = {"mask_indptr": "iu", "mask_indices": "iu", "scores": "iuf"}
    for key, kinds in expected.items():
        value = arrays[key]
        if value.ndim != 1 or value.dtype.kind not in kinds:
            want = "integers" if kinds == "iu" else "numbers"
            raise FormatError(f"prediction member {key!r} must be a 1-D array of {want}, got {value.dtype} {value.shape}", path)
    count = arrays["num_points"]
    if count.ndim != 0 or count.dtype.kind not in "iu":
        raise FormatError(f"prediction member 'num_points' must be one integer, got {count.dtype} {count.shape}", path)
    for key in ("scene_name", "method"):
        if key in arrays and (arrays[key].ndim != 0 or arrays[key].dtype.kind != "U"):
            raise FormatError(f"prediction member {key!r} must be one string, got {arrays[key].dtype} {arrays[key].shape}", path)


def read_prediction_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string members of an `.npz` prediction file (scene_name, method, extra metadata).

    Reads only those members, not the masks, so it is cheap on large files.

    Raises:
        FormatError naming the file when it is no readable `.npz`.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            info = {}
            for key in data.files:
                if key in PREDICTION_KEYS:
                    continue
                value = data[key]
                if value.ndim == 0 and value.dtype.kind == "U":
                    info[key] = str(value)
            return info
    except FileNotFoundError as error:
        raise InputError("no such prediction file", path) from error
    except ARRAY_FILE_ERRORS as error:
        raise FormatError(f"not a readable .npz prediction file: truncated or corrupt ({error})", path) from error


def write_scannet_benchmark(
    masks: InstanceMasks, folder: str | os.PathLike[str], scene_name: str, label_id: int = 1
) -> Path:
    """Write masks in the ScanNet benchmark instance format under `folder`.

    The scene's files appear whole or not at all (`atomic_folder`): they are written into a
    hidden staging folder beside `folder`, which becomes `folder` when it does not exist yet;
    otherwise the mask files are moved in first and the index last, with Ctrl-C / SIGTERM held
    back meanwhile, so an interrupted run never leaves an index that names missing masks nor
    mask files without an index. Mask files of an earlier run of the same scene that the new
    index no longer names are removed. Class-agnostic methods use a single `label_id` for
    every mask.

    Returns:
        Path of `<folder>/<scene_name>.txt`.
    """
    folder = Path(folder)
    scene_name = safe_scene_name(scene_name)  # it becomes file names under `folder`
    lines = []
    names = set()
    # every mask file is "0\n" or "1\n" per vertex: fill a byte buffer instead of formatting text
    empty = np.tile(np.frombuffer(b"0\n", dtype=np.uint8), masks.num_points)
    with atomic_folder(folder) as staging:
        (staging / "predicted_masks").mkdir()
        for k in range(len(masks)):
            column = empty.copy()
            column[2 * masks[k].astype(np.int64)] = ord("1")
            relative = f"predicted_masks/{scene_name}_{k:03d}.txt"
            (staging / relative).write_bytes(column.tobytes())
            names.add(f"{scene_name}_{k:03d}.txt")
            lines.append(f"{relative} {label_id} {masks.scores[k]:.6f}")
        (staging / f"{scene_name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    own_mask = re.compile(re.escape(scene_name) + r"_\d{3,}\.txt")
    for stale in (folder / "predicted_masks").glob(f"{glob.escape(scene_name)}_*.txt"):
        if own_mask.fullmatch(stale.name) and stale.name not in names:
            stale.unlink(missing_ok=True)
    return folder / f"{scene_name}.txt"


def read_scannet_benchmark(index_file: str | os.PathLike[str]) -> tuple[InstanceMasks, np.ndarray]:
    """Read one scene's ScanNet benchmark prediction index and its mask files.

    Mask files hold one integer per line, one line per vertex, nonzero = in the mask (as
    ScanNet's script reads them); "0"/"1" lines, the layout everybody writes, are read
    straight from the bytes (`_read_mask_column`).

    Returns:
        (masks, label_ids): the masks over N points with their confidences (the index's
        third column) and the (K,) int64 label id of each mask (second column), K = the
        index's non-blank lines.

    Raises:
        InputError: the index or a mask file it names is missing.
        FormatError (naming the file): a malformed index line, a mask file that is not one
            integer per line, or mask files of different lengths.
    """
    index_file = Path(index_file)
    if not index_file.is_file():
        raise InputError("no such prediction index file", index_file)
    columns: list[np.ndarray] = []
    scores: list[float] = []
    labels: list[int] = []
    num_points = None
    for line_number, line in enumerate(index_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise FormatError(f"line {line_number}: expected 'mask_path label_id confidence', got {line!r}", index_file)
        mask_path = index_file.parent / parts[0]
        # an index names its masks relative to its own folder; one that points elsewhere
        # (absolute, or climbing with ..) is refused rather than read
        if Path(parts[0]).is_absolute() or not mask_path.resolve().is_relative_to(index_file.parent.resolve()):
            raise FormatError(
                f"line {line_number}: mask path {parts[0]!r} leaves the index's folder (expected e.g. predicted_masks/...)",
                index_file,
            )
        try:
            labels.append(int(parts[1]))
            scores.append(float(parts[2]))
        except ValueError as error:
            raise FormatError(f"line {line_number}: {error}", index_file) from error
        if not mask_path.is_file():
            raise InputError(f"mask file named on line {line_number} is missing", mask_path)
        column = _read_mask_column(mask_path)
        if num_points is None:
            num_points = column.shape[0]
        elif column.shape[0] != num_points:
            raise FormatError(f"mask has {column.shape[0]} lines, earlier masks have {num_points}", mask_path)
        columns.append(np.flatnonzero(column))
    # flatnonzero gives each mask's indices sorted and unique: the CSR arrays directly
    indptr = np.concatenate([[0], np.cumsum([c.shape[0] for c in columns], dtype=np.int64)])
    indices = np.concatenate(columns) if columns else np.zeros(0, np.int64)
    try:
        masks = InstanceMasks(indptr, indices, np.asarray(scores, dtype=np.float64), num_points or 0)
    except InputError as error:  # NaN or infinite confidences
        raise FormatError(error.problem, index_file) from error
    return masks, np.asarray(labels, dtype=np.int64)


def _read_mask_column(path: Path) -> np.ndarray:
    """(N,) bool, True where line i of a benchmark mask file holds a nonzero integer.

    One line per vertex. The "0\\n"/"1\\n" layout (what `write_scannet_benchmark` and every
    exporter we know write) is checked and decoded on the raw bytes (~0.1 ms for 80k
    vertices, against ~5-10 ms for ScanNet's `np.array(lines, dtype=np.int64)`); any other
    integers are parsed as ScanNet's loader would (`labelfree3d.io._integer_lines`).

    Raises:
        FormatError (naming the file): a line that is not one integer.
    """
    data = normalise_lines(path.read_bytes())
    column = binary_lines(data)
    if column is None:
        column = integer_lines(data, path, "mask file") != 0
    return column
