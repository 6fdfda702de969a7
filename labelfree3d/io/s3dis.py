"""S3DIS room folders (Stanford 2D-3D-Semantics, `Stanford3dDataset_v1.2*/Area_N/<room>`).

The room is the concatenation of `Annotations/<class>_<k>.txt` (one line `x y z r g b` per
point, colours 0-255), one ground-truth instance per annotation file, in natural file-name
order (chair_2 before chair_10). `instance_names` are the class names from the file names and
`semantic_ids` index the 13 classes of `S3DIS_CLASSES` (`stairs`, present in a few rooms, is
folded into `clutter` as in the usual 13-class protocol; unknown names get -1).

Void classes: `ceiling`, `floor` and `wall` by default. The papers this toolkit reproduces give
no S3DIS-specific list (UnScene3D evaluates class-agnostic AP on Area 5 without naming one,
FreePoint treats "floors, walls and ceilings" as the background it removes), so the default is
the same structural background as ScanNet's class-agnostic protocol; it also matches
evaluation scripts that score S3DIS instances over beam ... clutter (ids 3-12). `beam`,
`column` and `clutter` stay evaluated: beams and columns are separate physical elements, and
`clutter` annotations are individual objects (lamps, boxes, plants, ...). Pass `void_labels`
to change it, e.g. add "beam" and "column" for a stricter object-only protocol.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labelfree3d.errors import FormatError, InputError
from labelfree3d.io._labels import void_flags
from labelfree3d.io.registry import register_reader
from labelfree3d.structures import GroundTruth, Scene

__all__ = ["S3DIS_CLASSES", "S3DIS_VOID_LABELS", "read_s3dis"]

# fmt: off
S3DIS_CLASSES: tuple[str, ...] = (
    "ceiling", "floor", "wall", "beam", "column", "window", "door",
    "table", "chair", "sofa", "bookcase", "board", "clutter",
)
# fmt: on
S3DIS_VOID_LABELS: tuple[str, ...] = ("ceiling", "floor", "wall")
_CLASS_ALIASES = {"stairs": "clutter"}


def _annotation_files(path: Path) -> list[Path]:
    folder = path / "Annotations"
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.txt"), key=_natural_key)


def _natural_key(path: Path) -> tuple[object, ...]:
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.stem))


def _is_s3dis(path: Path) -> bool:
    return bool(_annotation_files(path))


def _class_of(path: Path) -> str:
    stem = path.stem
    head, _, tail = stem.rpartition("_")
    return head if head and tail.isdigit() else stem


def _read_annotation(path: Path) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # empty files warn; they are skipped by the caller
            table = np.loadtxt(path, dtype=np.float64, ndmin=2, comments=None)
    except ValueError as error:
        detail = str(error).splitlines()[0] if str(error) else "unparsable values"
        raise FormatError(f"malformed S3DIS annotation ({detail})", path) from error
    if table.size == 0:
        return np.zeros((0, 6))
    if table.shape[1] < 6:
        raise FormatError(f"S3DIS annotation rows have {table.shape[1]} values, expected 6 (x y z r g b)", path)
    return table[:, :6]


@register_reader("s3dis", folder=True, detect=_is_s3dis, description="S3DIS room folder (Annotations/<class>_<k>.txt)")
def read_s3dis(path: Path, void_labels: Sequence[str] = S3DIS_VOID_LABELS) -> Scene:
    """Read an S3DIS room folder with one ground-truth instance per annotation file.

    Args:
        path: the room folder (holding `Annotations/`).
        void_labels: class names whose instances are void (see the module docs for the default).

    Returns:
        Scene named `Area_N_<room>` (or the folder name outside an `Area_N` folder) with
        colours and ground truth; `metadata["empty_annotations"]` counts skipped empty files.
    """
    files = _annotation_files(path)
    if not files:
        raise InputError("no Annotations/*.txt in the S3DIS room folder", path)
    tables, names, skipped = [], [], 0
    for file in files:
        table = _read_annotation(file)
        if table.shape[0] == 0:
            skipped += 1
            continue
        tables.append(table)
        names.append(_class_of(file))
    if not tables:
        raise InputError("the point cloud is empty: every annotation file is empty", path)
    data = np.concatenate(tables)
    counts = np.array([t.shape[0] for t in tables])
    instance_ids = np.repeat(np.arange(len(tables), dtype=np.int64), counts)
    class_index = {name: i for i, name in enumerate(S3DIS_CLASSES)}
    semantic_of_instance = np.array(
        [class_index.get(_CLASS_ALIASES.get(n.lower(), n.lower()), -1) for n in names], dtype=np.int64
    )
    gt = GroundTruth(
        instance_ids,
        void_flags(names, void_labels),
        semantic_of_instance[instance_ids],
        tuple(names),
        dict(enumerate(S3DIS_CLASSES)),
    )
    rgb = data[:, 3:6]
    if rgb.size and (rgb.min() < 0 or rgb.max() > 255):
        raise FormatError("S3DIS colours must lie in [0, 255]", path)
    colors = (rgb / 255.0).astype(np.float32)
    area = path.parent.name
    name = f"{area}_{path.name}" if re.fullmatch(r"Area_\d+[a-z]?", area) else path.name
    points = data[:, :3]
    # the rule of every reader: points with a NaN/inf coordinate are dropped and counted
    finite = np.isfinite(points).all(axis=1)
    dropped = int(np.count_nonzero(~finite))
    if dropped == points.shape[0]:
        raise InputError(f"all {dropped} points have NaN or infinite coordinates", path)
    if dropped:
        points, colors, gt = points[finite], colors[finite], gt.subset(np.flatnonzero(finite))
    scene = Scene(points=points, colors=colors, gt=gt, name=name, source=path)
    if dropped:
        scene.metadata["dropped_nan_points"] = dropped
    scene.metadata["annotation_files"] = len(files)
    if skipped:
        scene.metadata["empty_annotations"] = skipped
    return scene
