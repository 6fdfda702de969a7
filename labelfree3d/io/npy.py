"""Point clouds stored as plain `.npy` arrays, told apart by their column count.

==========  ====================================================================================
columns     meaning (one row per point)
==========  ====================================================================================
3           ``x y z``
4           ``x y z intensity`` (LiDAR; intensity kept as per-point ``metadata["intensity"]``)
6           ``x y z r g b``, colour in [0, 255] or [0, 1] (any value > 1 means 0-255)
7           ``x y z r g b instance``, instance id per point, negative = none
8           ``x y z r g b semantic instance``: Mask3D-style preprocessed ScanNet with NYU40
            class ids (the ScanNet-20 classes among them; 0 = unannotated, 1 = wall,
            2 = floor, 22 = ceiling), instance negative = none
12          ``x y z r g b nx ny nz segment semantic instance``: Mask3D's own preprocessed
            ScanNet layout; ``segment`` -> ``superpoints``, ``semantic`` = raw ScanNet category
            id (the ``.labels.ply`` value: 0 = unannotated, 1 = wall, 3 = floor, 41 = ceiling),
            instance negative = none
==========  ====================================================================================

Without a semantic column (7 columns) each instance id is one instance, renumbered to [0, K)
in increasing order. With one (8 and 12 columns), ground truth follows ScanNet's benchmark,
which encodes an instance as ``class * 1000 + instance``: an instance is a (semantic class,
instance id) pair (`labelfree3d.io._labels.paired_ground_truth`), numbered in increasing
(instance id, class) order, so a point is void when its own class is void even where one
instance id spans points of several classes. An instance is evaluated unless its class is in
`void_semantic_ids` (default: wall, floor and ceiling, NYU40 ids 1, 2, 22 for 8 columns, raw
ids 1, 3, 41 for 12) or unannotated (0). With 8 columns instances are named after their NYU40
class (`labelfree3d.io.scannet_classes.NYU40_NAMES`). Rows with NaN or infinite xyz are
dropped (count in ``metadata["dropped_nan_points"]``).
Mask3D names its files `SSSS_VV.npy`; such names become `sceneSSSS_VV` to pair with ScanNet GT.

SemanticKITTI arrays from Open3D-ML's demo data (format `semantickitti_npy`) are a pair:
``*points*.npy`` (N x 3 or N x 4 float32) and a sibling ``*labels*.npy`` (the same name with
"points" replaced by "labels"; N or N x 1 int32, semantic id in the low 16 bits, instance id in
the high 16 bits, see `labelfree3d.io.semantickitti`). The pair is found by name automatically.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labelfree3d.errors import FormatError, InputError
from labelfree3d.io._labels import integer_labels, load_npy_array, paired_ground_truth
from labelfree3d.io.registry import register_reader
from labelfree3d.io.scannet_classes import NYU40_NAMES, NYU40_VOID_IDS
from labelfree3d.io.semantickitti import check_label_count, frame_scene
from labelfree3d.structures import Scene

__all__ = ["load_npy_array", "read_npy", "read_semantickitti_npy"]

LAYOUTS = {
    3: "xyz",
    4: "xyz_intensity",
    6: "xyz_rgb",
    7: "xyz_rgb_instance",
    8: "mask3d_scannet20",
    12: "mask3d_scannet",
}
_DEFAULT_VOID = {8: NYU40_VOID_IDS, 12: (1, 3, 41)}
_MASK3D_NAME = re.compile(r"^\d{4}_\d{2}$")


def _integer_column(values: np.ndarray, name: str, path: Path) -> np.ndarray:
    return integer_labels(values, f"column '{name}'", path)


def _is_semantickitti_pair(path: Path) -> bool:
    return path.suffix.lower() == ".npy" and "points" in path.stem and _labels_sibling(path).is_file()


def _labels_sibling(path: Path) -> Path:
    stem = path.stem
    cut = stem.rfind("points")
    return path.with_name(stem[:cut] + "labels" + stem[cut + len("points") :] + path.suffix)


@register_reader(
    "semantickitti_npy",
    detect=_is_semantickitti_pair,
    description="SemanticKITTI *points*.npy + *labels*.npy pair (Open3D-ML demo data)",
)
def read_semantickitti_npy(path: Path, labels: str | Path | None = None, label_space: str = "auto") -> Scene:
    """Read a SemanticKITTI point array with its sibling label array.

    Args:
        path: `*points*.npy`, float32 (N, 3) or (N, 4) (x y z [remission]).
        labels: the label array; by default the sibling with "points" replaced by "labels".
        label_space: "raw", "learning" (ids 0-19, what Open3D-ML ships) or "auto".

    Returns:
        Scene named after the file without the "points" token (e.g. `sk_000700`), with
        `semantic_ids` and instances from the high 16 bits (none when they are all zero).

    Raises:
        InputError: the label array does not hold one label per point.
    """
    scan = load_npy_array(path, "point array")
    if scan.ndim != 2 or scan.shape[1] not in (3, 4):
        raise FormatError(f"point array has shape {scan.shape}, expected (N, 3) or (N, 4)", path)
    label_path = Path(labels) if labels is not None else _labels_sibling(path)
    values = load_npy_array(label_path, "label array")
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise InputError(f"label array has shape {values.shape}, expected (N,) or (N, 1)", label_path)
    check_label_count(values, scan.shape[0], label_path)
    values = _integer_column(values, "label", label_path)
    name = re.sub(r"_{2,}", "_", path.stem.replace("points", "")).strip("_-") or path.stem
    scene = frame_scene(path, scan, values, name, label_space, "semantickitti_npy")
    scene.metadata["label_file"] = str(label_path)
    return scene


@register_reader("npy", extensions=(".npy",), description="N x 3/4/6/7/8/12 .npy point array (see labelfree3d.io.npy)")
def read_npy(path: Path, void_semantic_ids: Sequence[int] | None = None) -> Scene:
    """Read an (N, C) `.npy` point array; the column count C selects the layout (module docs).

    Args:
        path: the .npy file.
        void_semantic_ids: class ids whose instances are void; None = the layout's default
            (wall, floor, ceiling: NYU40 1, 2, 22 for 8 columns, raw ScanNet 1, 3, 41 for 12).

    Returns:
        Scene with colours, normals, superpoints and ground truth as the layout provides (one
        instance per (class, instance id) pair with a semantic column, see the module docs);
        `metadata["npy_layout"]` names the layout. Rows with non-finite xyz are dropped.
    """
    array = load_npy_array(path, "point array")
    if array.ndim != 2 or array.shape[1] not in LAYOUTS:
        hint = ""
        if "labels" in path.stem and path.with_name(path.name.replace("labels", "points")).is_file():
            hint = "; this is the label half of a SemanticKITTI pair: read its *points* file"
        raise FormatError(
            f"point array has shape {array.shape}; expected (N, C) with C in {sorted(LAYOUTS)} "
            f"(see labelfree3d.io.npy){hint}",
            path,
        )
    columns = array.shape[1]
    if array.shape[0] == 0:
        raise InputError("the point cloud is empty", path)
    finite = np.isfinite(array[:, :3]).all(axis=1)
    if not np.any(finite):
        raise InputError(f"all {array.shape[0]} points have NaN or infinite coordinates", path)
    dropped = int(np.count_nonzero(~finite))
    if dropped:
        array = array[finite]
    points = array[:, :3]
    colors = normals = superpoints = gt = None
    metadata: dict[str, object] = {"npy_layout": LAYOUTS[columns]}
    if columns == 4:
        metadata["intensity"] = array[:, 3].astype(np.float32)
    if columns >= 6:
        rgb = array[:, 3:6].astype(np.float32)
        colors = rgb / 255.0 if rgb.size and np.nanmax(rgb) > 1.0 else rgb
    if columns == 12:
        normals = array[:, 6:9]
        superpoints = _integer_column(array[:, 9], "segment", path)
    if columns >= 7:
        instance_raw = _integer_column(array[:, -1], "instance", path)
        semantic = void = None
        if columns >= 8:
            semantic = _integer_column(array[:, -2], "semantic", path)
            semantic = np.where(semantic <= 0, -1, semantic)  # 0 = unannotated in ScanNet's id spaces
            void = _DEFAULT_VOID[columns] if void_semantic_ids is None else tuple(int(v) for v in void_semantic_ids)
            metadata["void_semantic_ids"] = ",".join(str(v) for v in void)
        names = NYU40_NAMES if columns == 8 else None
        gt = paired_ground_truth(instance_raw, semantic, instance_raw >= 0, void or (), names)
    name = f"scene{path.stem}" if columns in (8, 12) and _MASK3D_NAME.match(path.stem) else path.stem
    scene = Scene(points=points, colors=colors, normals=normals, gt=gt, superpoints=superpoints, name=name, source=path)
    scene.metadata.update(metadata)
    if dropped:
        scene.metadata["dropped_nan_points"] = dropped
    return scene
