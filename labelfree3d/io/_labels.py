"""Label bookkeeping shared by the readers: id compaction, (class, instance) pairing, segment
groups, void flags, and loading the JSON / `.npy` files labels come in."""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from tokenize import TokenError
from typing import Any

import numpy as np

from labelfree3d.errors import FormatError, InputError
from labelfree3d.structures import GroundTruth


def compact_ids(raw_ids: np.ndarray, unlabelled: Iterable[int] = ()) -> np.ndarray:
    """Renumber arbitrary instance ids to [0, K) in increasing raw-id order.

    Args:
        raw_ids: (N,) integer ids.
        unlabelled: raw values that mean "no instance", besides negative values.

    Returns:
        (N,) int64 ids in [0, K), -1 for negative or `unlabelled` raw ids.
    """
    raw_ids = np.asarray(raw_ids).astype(np.int64)
    out = np.full(raw_ids.shape[0], -1, dtype=np.int64)
    labelled = raw_ids >= 0
    skip = list(unlabelled)
    if skip:
        labelled &= ~np.isin(raw_ids, skip)
    _, out[labelled] = np.unique(raw_ids[labelled], return_inverse=True)
    return out


def paired_ground_truth(
    instance: np.ndarray,
    semantic: np.ndarray | None,
    labelled: np.ndarray,
    void_ids: Iterable[int] = (),
    class_names: Mapping[int, str] | None = None,
    unknown_name: str = "unannotated",
) -> GroundTruth:
    """Ground truth with one instance per (semantic class, instance id) pair of the points.

    ScanNet's benchmark encodes a ground-truth instance as `class * 1000 + instance`, so an
    instance is a (class, instance id) pair, and whether a point is void depends on its own
    class: where one instance id is shared by points of several classes (a wall point and a
    chair point), each class's part is a separate instance, the wall part void and the chair
    part evaluated. Exports that share this convention (VoteNet's, Pointcept's, Mask3D's)
    read their ground truth through this one rule.

    Args:
        instance: (N,) integer instance id per point, in the layout's own numbering.
        semantic: (N,) integer class id per point, negative = unannotated / ignore (callers map
            their layout's "unannotated" value, e.g. NYU40's 0, to -1 first); None for layouts
            without semantics, where every instance id is one evaluated instance.
        labelled: (N,) bool, True where `instance` marks an annotated instance (the layout's
            rule: `instance > 0` for VoteNet, `instance >= 0` for Pointcept and Mask3D).
        void_ids: class ids whose instances are void (kept in the table but not evaluated).
        class_names: class id -> name; when given, the result carries `instance_names` (the
            class of each instance, `unknown_name` for a negative class) and `semantic_names`
            (the classes present).
        unknown_name: the name of instances whose class is negative (Pointcept says "ignore").

    Returns:
        GroundTruth whose instance ids lie in [0, K), numbered in increasing (instance id,
        class) order, -1 where `labelled` is False; instance k is evaluated iff its class is
        not negative and not in `void_ids`; `semantic_ids` = `semantic` with negatives as -1.
    """
    instance = np.asarray(instance).astype(np.int64, copy=False)
    labelled = np.asarray(labelled, dtype=bool)
    n = instance.shape[0]
    classes_of_points = None if semantic is None else np.where(np.asarray(semantic) < 0, -1, semantic).astype(np.int64)
    pair_class = np.full(n, -1, np.int64) if classes_of_points is None else classes_of_points
    ids = np.full(n, -1, dtype=np.int64)
    classes = np.empty(0, dtype=np.int64)
    if np.any(labelled):
        pairs = np.stack([instance[labelled], pair_class[labelled]], axis=1)
        # np.unique over rows sorts by instance id, then class
        unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
        ids[labelled] = inverse.reshape(-1)
        classes = unique[:, 1]
    if classes_of_points is None:
        return GroundTruth(ids, np.ones(classes.shape[0], dtype=bool))
    evaluated = (classes >= 0) & ~np.isin(classes, np.fromiter(void_ids, dtype=np.int64))
    names = semantic_names = None
    if class_names is not None:
        names = tuple(class_names.get(int(c), f"class {c}") if c >= 0 else unknown_name for c in classes)
        present = np.unique(classes_of_points[classes_of_points >= 0])
        semantic_names = {int(c): class_names.get(int(c), f"class {c}") for c in present}
    return GroundTruth(ids, evaluated, classes_of_points, names, semantic_names)


def groups_to_points(segment_of_point: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """Instance id per point from groups of segments (ScanNet's segGroups).

    Args:
        segment_of_point: (N,) segment id of each point (ScanNet's `segIndices`).
        groups: for each instance k, the segment ids it is made of.

    Returns:
        (N,) int64 instance index k per point, -1 for points in no group. A segment listed in
        several groups goes to the last of them, as ScanNet's own export scripts do (they
        assign groups in order, overwriting).
    """
    segment_of_point = np.asarray(segment_of_point, dtype=np.int64)
    segments, inverse = np.unique(segment_of_point, return_inverse=True)
    owner_of_segment = np.full(segments.size, -1, dtype=np.int64)
    lengths = [len(g) for g in groups]
    if sum(lengths):
        members = np.concatenate([np.asarray(g, dtype=np.int64).reshape(-1) for g in groups])
        owners = np.repeat(np.arange(len(groups), dtype=np.int64), lengths)
        position = np.searchsorted(segments, members)
        found = (position < segments.size) & (segments[np.minimum(position, segments.size - 1)] == members)
        # max owner = last group listing the segment; ufunc.at is defined for repeated indices
        np.maximum.at(owner_of_segment, position[found], owners[found])
    return owner_of_segment[inverse]


def void_flags(names: Sequence[str], void_labels: Iterable[str]) -> np.ndarray:
    """(K,) bool `instance_evaluated`: False where the name is in `void_labels` (case-insensitive)."""
    void = {label.strip().lower() for label in void_labels}
    return np.array([name.strip().lower() not in void for name in names], dtype=bool)


def majority_per_instance(instance_ids: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """(K,) int64 most frequent non-negative `values` entry among each instance's points (-1 if none).

    Args:
        instance_ids: (N,) instance index in [0, K) or -1.
        values: (N,) non-negative integer per point (e.g. a semantic id), -1 = unknown.
        k: number of instances K.
    """
    out = np.full(k, -1, dtype=np.int64)
    valid = (instance_ids >= 0) & (values >= 0)
    if not np.any(valid):
        return out
    pairs = np.stack([instance_ids[valid], values[valid]], axis=1)
    unique, counts = np.unique(pairs, axis=0, return_counts=True)
    # sort by instance, then count descending: the first row per instance is its majority
    order = np.lexsort((-counts, unique[:, 0]))
    unique = unique[order]
    first = np.r_[True, unique[1:, 0] != unique[:-1, 0]]
    out[unique[first, 0]] = unique[first, 1]
    return out


# what numpy raises on a corrupt .npy / .npz: besides the usual, its header dict is parsed with
# ast.literal_eval (tokenizer and syntax errors), and .npz members are deflated (zlib errors)
ARRAY_FILE_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, NotImplementedError, RuntimeError, SyntaxError,
    TypeError, TokenError, RecursionError, MemoryError, OverflowError, zlib.error,
)  # fmt: skip


def _npy_header(path: Path, what: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header of the `.npy` file `path`, checked against the file size.

    Checking first keeps a lying header (a shape far larger than the file) from making numpy
    allocate the array it describes before noticing the data is missing.
    """
    fmt = np.lib.format
    try:
        with open(path, "rb") as handle:
            if handle.read(6) != fmt.MAGIC_PREFIX:
                handle.seek(0, os.SEEK_END)
                empty = handle.tell() == 0
                raise FormatError(f"not a .npy {what}: " + ("the file is empty" if empty else "no NPY magic bytes"), path)
            handle.seek(0)
            version = fmt.read_magic(handle)
            # version 3 differs from 2 only in allowing a UTF-8 header, which 2.0's parser reads for ASCII keys
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(handle, max_header_size=10_000)
            data_start = handle.tell()
            handle.seek(0, os.SEEK_END)
            size = handle.tell() - data_start
    except FileNotFoundError as error:
        raise InputError("no such file", path) from error
    except IsADirectoryError as error:
        raise InputError(f"expected a .npy {what} file, got a folder", path) from error
    except ARRAY_FILE_ERRORS as error:
        detail = (str(error).splitlines() or [type(error).__name__])[0]
        raise FormatError(f"not a readable .npy {what}: corrupt header ({detail[:160]})", path) from error
    if dtype.hasobject:
        raise FormatError(f"the {what} holds Python objects, which are never unpickled; expected a numeric array", path)
    needed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if needed > size:
        raise FormatError(f"file is truncated: header says shape {shape} ({needed} bytes), the file holds {size}", path)
    return tuple(int(d) for d in shape), dtype


def load_npy_array(path: Path, what: str = "array") -> np.ndarray:
    """Load a numeric `.npy` array without pickles; unreadable or non-numeric data -> FormatError."""
    path = Path(path)
    _npy_header(path, what)
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError as error:
        raise InputError("no such file", path) from error
    except (ValueError, OSError, EOFError) as error:
        message = (str(error).splitlines() or [type(error).__name__])[0] if str(error) else type(error).__name__
        if "cannot reshape" in message or "EOF" in message or isinstance(error, EOFError):
            message = f"file is truncated ({message})"
        raise FormatError(f"not a readable .npy {what}: {message}", path) from error
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise FormatError(
            f"the {what} must be numeric, got dtype {getattr(array, 'dtype', type(array).__name__)}", path
        )
    return array


def integer_labels(values: np.ndarray, what: str, path: Path) -> np.ndarray:
    """`values` as int64, or a `FormatError` "<what> must hold integer ids" naming `path`.

    Floats must be finite whole numbers and every value must fit int64 (a cast would wrap
    silently otherwise).
    """
    values = np.asarray(values)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise FormatError(f"{what} must hold integer ids", path)
        if values.size and np.abs(values).max() >= 2.0**62:
            raise FormatError(f"{what} holds ids too large to be integer ids (up to {np.abs(values).max():.3g})", path)
    elif values.dtype.kind == "u" and values.dtype.itemsize == 8 and values.size and values.max() > np.iinfo(np.int64).max:
        raise FormatError(f"{what} holds ids too large for int64", path)
    elif values.dtype.kind not in "biuf":
        raise FormatError(f"{what} must hold integer ids, got dtype {values.dtype}", path)
    return values.astype(np.int64)


def load_json(path: Path) -> Any:
    """Parse a JSON file; a missing file is an `InputError`, bad JSON a `FormatError` naming it."""
    try:
        with open(path, "rb") as handle:
            return json.load(handle)
    except FileNotFoundError as error:
        raise InputError("no such file", path) from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FormatError(f"malformed JSON ({(str(error).splitlines() or [type(error).__name__])[0]})", path) from error


def seg_groups(data: Any, path: Path) -> list[dict[str, Any]]:
    """Validated `segGroups` of a ScanNet aggregation / ScanNet++ segments_anno file.

    Each returned group has `label` (str) and `segments` (list of int); other keys are kept.
    """
    groups = data.get("segGroups") if isinstance(data, dict) else None
    if not isinstance(groups, list):
        raise FormatError("JSON has no 'segGroups' list", path)
    for i, group in enumerate(groups):
        if not isinstance(group, dict) or not isinstance(group.get("segments"), list):
            raise FormatError(f"segGroups[{i}] has no 'segments' list", path)
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in group["segments"]):
            raise FormatError(f"segGroups[{i}] 'segments' must hold integers", path)
        group.setdefault("label", "")
        if not isinstance(group["label"], str):
            raise FormatError(f"segGroups[{i}] 'label' must be a string", path)
    return groups


def seg_indices(data: Any, path: Path, n: int) -> np.ndarray:
    """(N,) int64 `segIndices` of a ScanNet segs.json / ScanNet++ segments.json, checked against N."""
    values = data.get("segIndices") if isinstance(data, dict) else None
    if not isinstance(values, list):
        raise FormatError("JSON has no 'segIndices' list", path)
    try:
        array = np.asarray(values, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as error:
        raise FormatError("'segIndices' must hold integers", path) from error
    if array.ndim != 1 or array.shape[0] != n:
        raise InputError(f"segIndices has {array.size} entries for {n} mesh vertices", path)
    return array
