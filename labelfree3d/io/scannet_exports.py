"""Two common exports of ScanNet v2 scans: VoteNet's detection export and Pointcept's folders.

VoteNet (`scannet_votenet`; ScanNet's `batch_load_scannet_data.py` as VoteNet ships it), four
files per scan, read through the `_vert.npy` one:

- `sceneXXXX_YY_vert.npy`: (N, 6) float32 ``x y z r g b``, metres, axis-aligned, z up, colour
  0-255;
- `sceneXXXX_YY_ins_label.npy`: (N,) uint32 ScanNet objectId + 1 per point, 0 = unannotated;
- `sceneXXXX_YY_sem_label.npy`: (N,) uint32 NYU40 class id per point (1 wall, 2 floor,
  22 ceiling, 0 unannotated; `labelfree3d.io.scannet_classes.NYU40_NAMES`);
- optional `sceneXXXX_YY_bbox.npy`: (K, 7) axis-aligned boxes (centre xyz, size xyz, NYU40
  class), kept as ``metadata["gt_boxes"]``.

The scene is named `sceneXXXX_YY`. Reading one of the label files directly is an error that
names the `_vert.npy` to read instead.

Pointcept (`pointcept`; `preprocess_scannet.py` of Pointcept), a folder per scan:

- `coord.npy` (N, 3) float, metres (required);
- `color.npy` (N, 3) 0-255, `normal.npy` (N, 3);
- `segment20.npy` / `segment200.npy` (N,) class index in ScanNet-20's / ScanNet-200's class
  list (0-based, -1 = ignore; `SCANNET20_NAMES`, `SCANNET200_NAMES`);
- `instance.npy` (N,) instance id (ScanNet objectId, -1 = ignore).

All but `coord.npy` are optional; without `instance.npy` the scene has no ground truth. The
semantics come from `segment20.npy` when present, else `segment200.npy` (`semantics=` picks).
The scene is named after the folder.

Ground truth (both): one instance per (semantic class, instance id) pair of the points with an
annotated instance id (> 0 for VoteNet, >= 0 for Pointcept), as ScanNet's benchmark encodes
``class * 1000 + instance`` (`labelfree3d.io._labels.paired_ground_truth`). An instance is
evaluated unless its class is void or unannotated / ignored (named "unannotated" resp.
"ignore"). Default void classes are wall,
floor and ceiling: NYU40 1, 2, 22; ScanNet-20 0, 1 (ceiling is not a ScanNet-20 class, and
Pointcept marks it -1, i.e. ignored); ScanNet-200 0, 2, 35. So, with `segment20`, objects of
classes outside ScanNet-20 (ceiling, pillow, lamp, ...) are in the table but not evaluated, as
in Pointcept's own ScanNet-20 instance evaluation. Instances are named after their class.
When there are instance ids but no semantics, every instance is evaluated (``metadata["gt_note"]``
says so). Rows with NaN or infinite coordinates are dropped with their labels, their count in
``metadata["dropped_nan_points"]``, as the generic `.npy` reader does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from labelfree3d.errors import FormatError, InputError
from labelfree3d.io._labels import integer_labels, load_npy_array, paired_ground_truth
from labelfree3d.io.registry import register_reader
from labelfree3d.io.scannet_classes import (
    NYU40_NAMES,
    NYU40_VOID_IDS,
    SCANNET20_NAMES,
    SCANNET20_VOID_IDS,
    SCANNET200_NAMES,
    SCANNET200_VOID_IDS,
)
from labelfree3d.structures import GroundTruth, Scene

__all__ = ["read_pointcept", "read_scannet_votenet"]

_VOTENET_PARTS = {"vert": "vertex", "ins_label": "instance-label", "sem_label": "semantic-label", "bbox": "box"}
_VOTENET_NAME = re.compile(r"^(?P<scene>.+)_(?P<part>vert|ins_label|sem_label|bbox)\.npy$")
_SCANNET_SCENE = re.compile(r"^scene\d{4}_\d{2}$")

_POINTCEPT_SEMANTICS: dict[str, tuple[Mapping[int, str], tuple[int, ...]]] = {
    "segment20": (SCANNET20_NAMES, SCANNET20_VOID_IDS),
    "segment200": (SCANNET200_NAMES, SCANNET200_VOID_IDS),
}


# --- shared checks ----------------------------------------------------------------------------


def _per_point(path: Path, n: int, what: str, columns: int | None = None) -> np.ndarray:
    """Load a per-point array: (N,) or (N, 1) labels when `columns` is None, else (N, columns)."""
    array = load_npy_array(path, what)
    if columns is None:
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise FormatError(f"{what} array has shape {array.shape}, expected ({n},)", path)
    elif array.ndim != 2 or array.shape[1] != columns:
        raise FormatError(f"{what} array has shape {array.shape}, expected ({n}, {columns})", path)
    if array.shape[0] != n:
        raise InputError(f"file of the wrong length: {array.shape[0]} rows for {n} points", path)
    return array


def _finite_rows(points: np.ndarray, path: Path) -> np.ndarray:
    """(N,) bool rows with finite xyz; an empty or all-NaN cloud is an `InputError`."""
    if points.shape[0] == 0:
        raise InputError("the point cloud is empty", path)
    finite = np.isfinite(points).all(axis=1)
    if not np.any(finite):
        raise InputError(f"all {points.shape[0]} points have NaN or infinite coordinates", path)
    return finite


def _record_dropped(keep: np.ndarray, metadata: dict[str, object]) -> None:
    dropped = int(np.count_nonzero(~keep))
    if dropped:
        metadata["dropped_nan_points"] = dropped


def _colors_255(rgb: np.ndarray, path: Path) -> np.ndarray:
    """(N, 3) float32 colour in [0, 1] from 0-255 values; anything else is a `FormatError`."""
    rgb = rgb.astype(np.float32)
    if rgb.size and (not np.all(np.isfinite(rgb)) or rgb.min() < 0 or rgb.max() > 255):
        raise FormatError("colour values must lie in 0-255", path)
    return rgb / 255.0


def _ground_truth(
    instance: np.ndarray | None,
    labelled: np.ndarray | None,
    semantic: np.ndarray | None,
    void_ids: Sequence[int],
    class_names: Mapping[int, str],
    metadata: dict[str, object],
    missing: str,
    unknown_name: str,
) -> GroundTruth | None:
    """Paired ground truth, or None with a `gt_note` when there are no instance labels."""
    if instance is None or labelled is None:
        metadata["gt_note"] = f"no {missing}: scene has no ground truth"
        return None
    if semantic is None:
        metadata["gt_note"] = "no semantic labels: void classes unknown, every instance is evaluated"
        return paired_ground_truth(instance, None, labelled)
    metadata["void_semantic_ids"] = ",".join(str(v) for v in void_ids)
    return paired_ground_truth(instance, semantic, labelled, void_ids, class_names, unknown_name)


# --- VoteNet ------------------------------------------------------------------------------------


def _votenet_sibling(path: Path, scene: str, part: str) -> Path:
    return path.with_name(f"{scene}_{part}.npy")


def _is_votenet(path: Path) -> bool:
    match = _VOTENET_NAME.match(path.name)
    if match is None:
        return False
    scene, part = match["scene"], match["part"]
    if _SCANNET_SCENE.match(scene):
        return True
    return any(_votenet_sibling(path, scene, other).is_file() for other in _VOTENET_PARTS if other != part)


@register_reader(
    "scannet_votenet",
    detect=_is_votenet,
    description="VoteNet's ScanNet export: <scene>_vert.npy + _ins_label.npy + _sem_label.npy (+ _bbox.npy)",
)
def read_scannet_votenet(path: Path, void_semantic_ids: Sequence[int] = NYU40_VOID_IDS) -> Scene:
    """Read one scan of VoteNet's ScanNet export through its `_vert.npy` (module docs).

    Args:
        path: `<scene>_vert.npy`; its `_ins_label.npy`, `_sem_label.npy` and `_bbox.npy`
            siblings are found by name.
        void_semantic_ids: NYU40 class ids whose instances are void (default wall 1, floor 2,
            ceiling 22).

    Returns:
        Scene `<scene>` of N points (metres) with colours and, when the instance labels are
        there, ground truth: one instance per (NYU40 class, objectId) pair, named after the
        class, `semantic_ids` = NYU40 ids (-1 = unannotated); `metadata["gt_boxes"]` is the
        (K, 7) float32 box array when `_bbox.npy` exists.

    Raises:
        FormatError: `path` is a label or box file of the export (the message names the
            `_vert.npy` to read), or an array has the wrong shape.
        InputError: a label file's length differs from the vertex count (names the label file),
            or every point has NaN coordinates.
    """
    match = _VOTENET_NAME.match(path.name)
    if match is None:
        raise FormatError("not a VoteNet ScanNet export file (expected <scene>_vert.npy)", path)
    scene_name, part = match["scene"], match["part"]
    vert_path = _votenet_sibling(path, scene_name, "vert")
    if part != "vert":
        raise FormatError(
            f"this is the {_VOTENET_PARTS[part]} file of a VoteNet ScanNet export; read {vert_path} instead", path
        )
    vert = load_npy_array(path, "vertex array")
    if vert.ndim != 2 or vert.shape[1] != 6:
        raise FormatError(f"vertex array has shape {vert.shape}, expected (N, 6) x y z r g b", path)
    n = vert.shape[0]
    keep = _finite_rows(vert[:, :3], path)
    metadata: dict[str, object] = {}
    ins_path = _votenet_sibling(path, scene_name, "ins_label")
    sem_path = _votenet_sibling(path, scene_name, "sem_label")
    instance = semantic = None
    if ins_path.is_file():
        instance = integer_labels(_per_point(ins_path, n, "instance-label"), "instance labels", ins_path)[keep]
        metadata["ins_label_file"] = ins_path.name
    if sem_path.is_file():
        semantic = integer_labels(_per_point(sem_path, n, "semantic-label"), "semantic labels", sem_path)[keep]
        semantic = np.where(semantic <= 0, -1, semantic)  # NYU40 0 = unannotated
        metadata["sem_label_file"] = sem_path.name
    box_path = _votenet_sibling(path, scene_name, "bbox")
    if box_path.is_file():
        boxes = load_npy_array(box_path, "box array")
        if boxes.size == 0:
            boxes = boxes.reshape(0, 7)
        if boxes.ndim != 2 or boxes.shape[1] != 7:
            raise FormatError(f"box array has shape {boxes.shape}, expected (K, 7)", box_path)
        metadata["gt_boxes"] = boxes.astype(np.float32)
        metadata["gt_box_count"] = int(boxes.shape[0])
    _record_dropped(keep, metadata)
    vert = vert[keep]
    void = tuple(int(v) for v in void_semantic_ids)
    labelled = None if instance is None else instance > 0  # objectId + 1: 0 = unannotated
    gt = _ground_truth(instance, labelled, semantic, void, NYU40_NAMES, metadata, ins_path.name, "unannotated")
    colors = _colors_255(vert[:, 3:6], path)
    scene = Scene(points=vert[:, :3], colors=colors, gt=gt, name=scene_name, source=path)
    scene.metadata.update(metadata)
    return scene


# --- Pointcept ----------------------------------------------------------------------------------


def _is_pointcept(path: Path) -> bool:
    # coord.npy, or a label file of the layout: a folder missing only coord.npy is then
    # reported as such rather than as an unknown layout
    return any((path / name).is_file() for name in ("coord.npy", "segment20.npy", "segment200.npy", "instance.npy"))


@register_reader(
    "pointcept",
    folder=True,
    detect=_is_pointcept,
    description="Pointcept's preprocessed ScanNet scan folder (coord.npy, color.npy, segment20/200.npy, instance.npy)",
)
def read_pointcept(path: Path, semantics: str = "auto", void_semantic_ids: Sequence[int] | None = None) -> Scene:
    """Read a scan folder of Pointcept's preprocessed ScanNet (module docs).

    Args:
        path: the scan folder (e.g. `scannet/train/scene0000_00`).
        semantics: "segment20", "segment200", or "auto" (segment20 when present, else
            segment200).
        void_semantic_ids: class indices (in the chosen space) whose instances are void; None =
            wall and floor for segment20 (0, 1), wall, floor and ceiling for segment200
            (0, 2, 35).

    Returns:
        Scene named after the folder with colours and normals when present and, with
        `instance.npy`, ground truth: one instance per (class, instance id) pair, named after
        the class; `semantic_ids` = the chosen segment file's indices (-1 = ignore) and
        `metadata["semantic_space"]` its name.

    Raises:
        InputError: no coord.npy, a file whose length differs from coord.npy's (names it), a
            requested segment file that is missing, or only NaN coordinates.
        FormatError: an array of the wrong shape or type.
    """
    if semantics not in ("auto", *_POINTCEPT_SEMANTICS):
        raise InputError(f"semantics must be 'auto', 'segment20' or 'segment200', got {semantics!r}", path)
    coord_path = path / "coord.npy"
    if not coord_path.is_file():
        raise InputError("no such file (a Pointcept scan folder needs coord.npy)", coord_path)
    coord = load_npy_array(coord_path, "coordinate array")
    if coord.ndim != 2 or coord.shape[1] != 3:
        raise FormatError(f"coordinate array has shape {coord.shape}, expected (N, 3)", coord_path)
    n = coord.shape[0]
    keep = _finite_rows(coord, coord_path)
    metadata: dict[str, object] = {}
    colors = normals = None
    if (path / "color.npy").is_file():
        colors = _colors_255(_per_point(path / "color.npy", n, "colour", 3)[keep], path / "color.npy")
    if (path / "normal.npy").is_file():
        normals = _per_point(path / "normal.npy", n, "normal", 3)[keep].astype(np.float32)
        if not np.all(np.isfinite(normals)):
            raise FormatError("normals contain NaN or infinite values", path / "normal.npy")
    if semantics == "auto":
        semantics = next((s for s in _POINTCEPT_SEMANTICS if (path / f"{s}.npy").is_file()), "segment20")
    elif not (path / f"{semantics}.npy").is_file():
        raise InputError(f"no such file (asked for semantics={semantics!r})", path / f"{semantics}.npy")
    names, default_void = _POINTCEPT_SEMANTICS[semantics]
    semantic = None
    semantic_path = path / f"{semantics}.npy"
    if semantic_path.is_file():
        semantic = integer_labels(_per_point(semantic_path, n, "segment"), "segment labels", semantic_path)[keep]
        metadata["semantic_space"] = semantics
    instance = labelled = None
    instance_path = path / "instance.npy"
    if instance_path.is_file():
        instance = integer_labels(_per_point(instance_path, n, "instance"), "instance labels", instance_path)[keep]
        labelled = instance >= 0  # -1 = ignore
    _record_dropped(keep, metadata)
    void = default_void if void_semantic_ids is None else tuple(int(v) for v in void_semantic_ids)
    gt = _ground_truth(instance, labelled, semantic, void, names, metadata, "instance.npy", "ignore")
    scene = Scene(points=coord[keep], colors=colors, normals=normals, gt=gt, name=path.name, source=path)
    scene.metadata.update(metadata)
    return scene
