"""SemanticKITTI LiDAR frames: `sequences/XX/velodyne/NNNNNN.bin` with `labels/NNNNNN.label`.

A `.bin` holds float32 rows `x y z remission`; the matching `.label` (when present) one uint32
per point, semantic class in the low 16 bits and instance id in the high 16 bits. Points of a
*thing* class with non-zero instance bits form instances, one per (class, instance bits) pair;
all other points (stuff classes such as road or building, things without instance bits) belong
to no instance (-1). Thing classes, in the raw label space of the `.label` files: car 10,
bicycle 11, bus 13, motorcycle 15, on-rails 16, truck 18, other-vehicle 20, person 30,
bicyclist 31, motorcyclist 32 and their moving variants 252-259 (bus and on-rails are
"other-vehicle" in the 19-class learning map, so they are things too). In the 19-class learning
space (used by Open3D-ML's demo arrays, ids 0-19) the things are 1-8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labelfree3d.errors import FormatError, InputError
from labelfree3d.io.registry import register_reader
from labelfree3d.structures import GroundTruth, Scene

__all__ = [
    "LEARNING_CLASSES",
    "LEARNING_THINGS",
    "RAW_CLASSES",
    "RAW_THINGS",
    "read_semantickitti",
    "semantickitti_ground_truth",
]

# fmt: off
RAW_CLASSES: dict[int, str] = {
    0: "unlabeled", 1: "outlier", 10: "car", 11: "bicycle", 13: "bus", 15: "motorcycle", 16: "on-rails",
    18: "truck", 20: "other-vehicle", 30: "person", 31: "bicyclist", 32: "motorcyclist", 40: "road",
    44: "parking", 48: "sidewalk", 49: "other-ground", 50: "building", 51: "fence", 52: "other-structure",
    60: "lane-marking", 70: "vegetation", 71: "trunk", 72: "terrain", 80: "pole", 81: "traffic-sign",
    99: "other-object", 252: "moving-car", 253: "moving-bicyclist", 254: "moving-person",
    255: "moving-motorcyclist", 256: "moving-on-rails", 257: "moving-bus", 258: "moving-truck",
    259: "moving-other-vehicle",
}
LEARNING_CLASSES: dict[int, str] = {
    0: "unlabeled", 1: "car", 2: "bicycle", 3: "motorcycle", 4: "truck", 5: "other-vehicle", 6: "person",
    7: "bicyclist", 8: "motorcyclist", 9: "road", 10: "parking", 11: "sidewalk", 12: "other-ground",
    13: "building", 14: "fence", 15: "vegetation", 16: "trunk", 17: "terrain", 18: "pole", 19: "traffic-sign",
}
RAW_THINGS = frozenset({10, 11, 13, 15, 16, 18, 20, 30, 31, 32, *range(252, 260)})
LEARNING_THINGS = frozenset(range(1, 9))
# fmt: on


def detect_label_space(semantic: np.ndarray) -> str:
    """ "learning" when every semantic id is <= 19 (the 19-class map), else "raw"."""
    return "learning" if semantic.size == 0 or int(semantic.max()) <= 19 else "raw"


def semantickitti_ground_truth(labels: np.ndarray, space: str = "auto") -> GroundTruth:
    """Ground truth from SemanticKITTI labels.

    Args:
        labels: (N,) integer labels, semantic class in the low 16 bits, instance id in the high.
        space: "raw" (the `.label` files' ids), "learning" (ids 0-19) or "auto" (learning when
            every class id is <= 19).

    Returns:
        GroundTruth with one instance per (thing class, instance bits) pair, in increasing
        order of that pair, named after its class; `semantic_ids` = the low 16 bits (0, i.e.
        unlabeled, becomes -1) and `semantic_names` the class names of the space.
    """
    bits = np.asarray(labels).astype(np.int64).reshape(-1) & 0xFFFFFFFF
    semantic = bits & 0xFFFF
    instance = bits >> 16
    if space == "auto":
        space = detect_label_space(semantic)
    if space not in ("raw", "learning"):
        raise InputError(f"unknown SemanticKITTI label space {space!r}; expected raw, learning or auto")
    things, names = (RAW_THINGS, RAW_CLASSES) if space == "raw" else (LEARNING_THINGS, LEARNING_CLASSES)
    is_instance = np.isin(semantic, list(things)) & (instance != 0)
    keys, inverse = np.unique((semantic[is_instance] << 16) | instance[is_instance], return_inverse=True)
    instance_ids = np.full(bits.shape[0], -1, dtype=np.int64)
    instance_ids[is_instance] = inverse
    instance_names = tuple(names.get(int(c), f"class {int(c)}") for c in keys >> 16)
    semantic_ids = np.where(semantic == 0, -1, semantic)
    present = {int(c): names.get(int(c), f"class {int(c)}") for c in np.unique(semantic_ids[semantic_ids >= 0])}
    return GroundTruth(instance_ids, np.ones(keys.size, dtype=bool), semantic_ids, instance_names, present)

# a velodyne .bin has no header: these leading bytes mean another format was forced onto it
_OTHER_MAGICS = {
    b"\x93NUMPY": ".npy array",
    b"PK\x03\x04": "zip / .npz archive",
    b"ply": "PLY file",
    b"# .PCD": "PCD file",
    b"VERSION": "PCD file",
    b"LASF": "LAS file",
    b"\x89PNG": "PNG image",
    b"\xff\xd8\xff": "JPEG image",
}
# no LiDAR measures beyond a few hundred metres; 10 km leaves room for georeferenced frames
_MAX_LIDAR_RANGE_M = 1.0e4


def _refuse_other_formats(path: Path) -> None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except FileNotFoundError as error:
        raise InputError("no such file", path) from error
    for magic, kind in _OTHER_MAGICS.items():
        if head.startswith(magic):
            raise FormatError(f"not a velodyne scan: the file starts like a {kind}", path)


def _check_plausible_scan(scan: np.ndarray, path: Path) -> None:
    """Refuse float32 x y z remission records that cannot be a LiDAR scan (another file read as one)."""
    xyz = scan[:, :3]
    finite = np.isfinite(xyz).all(axis=1)
    if scan.shape[0] and np.count_nonzero(finite) < 0.5 * scan.shape[0]:
        raise FormatError(
            f"not a velodyne scan: {scan.shape[0] - np.count_nonzero(finite)} of {scan.shape[0]} records have "
            "NaN or infinite coordinates",
            path,
        )
    reach = float(np.abs(xyz[finite]).max()) if finite.any() else 0.0
    if reach > _MAX_LIDAR_RANGE_M:
        raise FormatError(
            f"not a velodyne scan: coordinates reach {reach:.3g} m (a LiDAR frame stays within "
            f"{_MAX_LIDAR_RANGE_M:.0f} m); is it another format?",
            path,
        )


def _is_velodyne_bin(path: Path) -> bool:
    return path.suffix.lower() == ".bin" and path.parent.name.lower() == "velodyne"


def frame_scene(
    path: Path,
    scan: np.ndarray,
    labels: np.ndarray | None,
    name: str,
    space: str,
    format_name: str,
) -> Scene:
    """Scene of a LiDAR frame: (N, 3|4) `scan` (x y z [remission]) and optional (N,) labels.

    Points with a non-finite coordinate are dropped (`metadata["dropped_nan_points"]`); the
    remission column is kept as the per-point `metadata["remission"]` ((N,) float32).
    """
    if scan.shape[0] == 0:
        raise InputError("the point cloud is empty", path)
    finite = np.isfinite(scan[:, :3]).all(axis=1)
    keep = np.flatnonzero(finite)
    if keep.size == 0:
        raise InputError(f"all {scan.shape[0]} points have NaN or infinite coordinates", path)
    gt = None if labels is None else semantickitti_ground_truth(labels[keep], space)
    scene = Scene(points=scan[keep, :3].astype(np.float32), gt=gt, name=name, source=path)
    scene.metadata["format"] = format_name
    if scan.shape[1] > 3:
        scene.metadata["remission"] = scan[keep, 3].astype(np.float32)
    if keep.size < scan.shape[0]:
        scene.metadata["dropped_nan_points"] = int(scan.shape[0] - keep.size)
    if labels is not None:
        scene.metadata["label_space"] = (
            detect_label_space(labels.astype(np.int64) & 0xFFFF) if space == "auto" else space
        )
    return scene


def check_label_count(labels: np.ndarray, n: int, label_path: Path) -> None:
    """Raise `InputError` naming `label_path` when it does not hold one label per point."""
    if labels.shape[0] != n:
        raise InputError(f"label file of the wrong length: {labels.shape[0]} labels for {n} points", label_path)


@register_reader(
    "semantickitti",
    extensions=(".bin",),
    detect=_is_velodyne_bin,
    description="SemanticKITTI / KITTI velodyne .bin frame (+ ../labels/*.label)",
)
def read_semantickitti(path: Path, labels: str | Path | None = None, label_space: str = "raw") -> Scene:
    """Read a SemanticKITTI velodyne frame with its panoptic labels when present.

    Args:
        path: `sequences/XX/velodyne/NNNNNN.bin` (float32 N x 4: x y z remission, metres).
        labels: the `.label` file; by default `../labels/NNNNNN.label` next to `velodyne/`,
            used when it exists.
        label_space: "raw" (the `.label` files), "learning" (ids 0-19) or "auto".

    Returns:
        Scene named `XX_NNNNNN` (sequence and frame) when the folder layout gives a sequence;
        `metadata["remission"]` is the (N,) float32 remission per point.

    Raises:
        FormatError: the .bin size is not a multiple of 16 bytes.
        InputError: the label file does not hold one uint32 per point.
    """
    _refuse_other_formats(path)
    raw = np.fromfile(path, dtype="<f4")
    if raw.size % 4:
        raise FormatError(
            f"velodyne scan of {raw.size * 4} bytes is not a whole number of 16-byte points (x y z remission float32)",
            path,
        )
    scan = raw.reshape(-1, 4)
    _check_plausible_scan(scan, path)
    label_path = Path(labels) if labels is not None else path.parent.parent / "labels" / f"{path.stem}.label"
    label_values = None
    if labels is not None or label_path.is_file():
        if not label_path.is_file():
            raise InputError("no such label file", label_path)
        size = label_path.stat().st_size
        if size % 4:
            raise InputError(
                f"label file of the wrong length: {size} bytes is not a whole number of uint32 labels", label_path
            )
        label_values = np.fromfile(label_path, dtype="<u4")
        check_label_count(label_values, scan.shape[0], label_path)
    sequence = path.parent.parent.name
    name = f"{sequence}_{path.stem}" if path.parent.name.lower() == "velodyne" and sequence.isdigit() else path.stem
    scene = frame_scene(path, scan, label_values, name, label_space, "semantickitti")
    if label_values is not None:
        scene.metadata["label_file"] = str(label_path)
    return scene
