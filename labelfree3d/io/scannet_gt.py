"""ScanNet benchmark ground truth: `<scene>.txt` with one ``label * 1000 + instance`` per vertex line.

This is the ground truth ScanNet's `evaluate_semantic_instance.py` reads (`--gt_path`, one file
per scene named like the scene's prediction index), as ScanNet's
`export_train_mesh_for_evaluation.py --type instance` writes it: line i is vertex i of the
scene's `_vh_clean_2.ply`; the value is ``nyu40_class * 1000 + instance`` (instance 1-based)
for annotated vertices and 0 for unannotated ones.

It holds no points, so it is not a scan for `read_scene`; `labelfree3d evaluate` reads it as
ground truth (`--gt-format scannet_gt_txt`, detected for `.txt` files that start with an
integer line) through `read_scannet_gt_txt`. The protocol is the project's class-agnostic one
(docs/evaluation.md): every value >= 1000 is an instance whose class is ``value // 1000``; its
instances are numbered by ascending value, the order in which ScanNet's script visits them;
instances of NYU40 wall, floor and ceiling (1, 2, 22) are void by default, as for the other
NYU40 exports; values below 1000 (0 = unannotated) are unlabelled. ScanNet's script itself
also voids the classes outside its 18 (`SCANNET18_NYU40_IDS`), which
`read_scannet_gt_txt(path, void_class_ids=SCANNET18_VOID_IDS)` reproduces.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from labelfree3d.errors import InputError
from labelfree3d.io._integer_lines import integer_lines, normalise_lines
from labelfree3d.io.atomic import atomic_path
from labelfree3d.io.scannet_classes import NYU40_NAMES, NYU40_VOID_IDS, SCANNET20_NYU40_IDS
from labelfree3d.structures import GroundTruth

__all__ = [
    "SCANNET18_NYU40_IDS",
    "SCANNET18_VOID_IDS",
    "SCANNET_GT_FORMAT",
    "is_scannet_gt_txt",
    "read_scannet_gt_txt",
    "write_scannet_gt_txt",
]

SCANNET_GT_FORMAT = "scannet_gt_txt"
"""The name `labelfree3d evaluate --gt-format` and reports use for this layout."""

SCANNET18_NYU40_IDS: tuple[int, ...] = tuple(i for i in SCANNET20_NYU40_IDS if i not in (1, 2))
"""NYU40 ids of the 18 classes ScanNet's instance benchmark evaluates (its `VALID_CLASS_IDS`)."""

SCANNET18_VOID_IDS: tuple[int, ...] = tuple(i for i in NYU40_NAMES if i not in SCANNET18_NYU40_IDS)
"""Every other NYU40 class: void exactly where ScanNet's script voids (`bool_void`)."""

# the first line of a ground-truth file: an unsigned integer (ScanNet lists and index files
# start with a path, mask files hold 0/1 and sit in predicted_masks/)
_FIRST_LINE = re.compile(rb"^\s*\d{1,18}\s*(\n|$)")


def is_scannet_gt_txt(path: str | os.PathLike[str]) -> bool:
    """True for a `.txt` file whose first line is one unsigned integer (cheap: reads 64 bytes)."""
    path = Path(path)
    if path.suffix.lower() != ".txt" or path.name.startswith(".") or not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError:
        return False
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    return bool(_FIRST_LINE.match(first)) and (b"\n" in head or len(head) < 64)


def read_scannet_gt_txt(path: str | os.PathLike[str], void_class_ids: Iterable[int] = NYU40_VOID_IDS) -> GroundTruth:
    """Read a ScanNet benchmark ground-truth file into a `GroundTruth` over its N vertex lines.

    Args:
        path: `<scene>.txt`, one integer per line (see the module docstring).
        void_class_ids: NYU40 classes whose instances are void (default wall, floor,
            ceiling; `SCANNET18_VOID_IDS` for exactly the script's void).

    Returns:
        GroundTruth with `instance_ids` (N,) in [0, K), numbered by ascending value, -1 for
        values below 1000; `instance_evaluated` (K,) False for void classes; `instance_names`
        the NYU40 class names (so `--void-labels` works); `semantic_ids` (N,) the NYU40 class
        (value // 1000), -1 where unlabelled; `semantic_names` the classes present.

    Raises:
        InputError: the file is missing or has no lines.
        FormatError (naming the file): a line that is not one integer.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such ScanNet ground-truth file", path)
    values = integer_lines(normalise_lines(path.read_bytes()), path, "ScanNet ground-truth file")
    if values.shape[0] == 0:
        raise InputError("ScanNet ground-truth file has no vertex lines", path)
    labelled = values >= 1000
    instance_ids = np.full(values.shape[0], -1, dtype=np.int64)
    encoded, instance_ids[labelled] = np.unique(values[labelled], return_inverse=True)
    classes = encoded // 1000
    void = {int(c) for c in void_class_ids}
    evaluated = np.array([int(c) not in void for c in classes], dtype=bool)
    names = tuple(NYU40_NAMES.get(int(c), f"class {int(c)}") for c in classes)
    semantic = np.where(labelled, values // 1000, -1)
    present = {int(c): NYU40_NAMES.get(int(c), f"class {int(c)}") for c in np.unique(classes)}
    return GroundTruth(instance_ids, evaluated, semantic, names, present)


def write_scannet_gt_txt(
    gt: GroundTruth,
    path: str | os.PathLike[str],
    class_ids: np.ndarray | Sequence[int] | None = None,
    void_class_id: int = 1,
) -> Path:
    """Write ground truth as a ScanNet benchmark ground-truth file (atomically); returns the path.

    Args:
        gt: ground truth over N points (the scene's vertices, in order).
        path: the file to write, `<scene>.txt`.
        class_ids: (K,) NYU40 class of each instance; None writes a class-agnostic file:
            evaluated instances as class 39 (otherfurniture, one of the 18 classes ScanNet's
            script evaluates), void ones as `void_class_id`.
        void_class_id: NYU40 class written for void instances when `class_ids` is None
            (default 1, wall: void for both ScanNet's script and `read_scannet_gt_txt`).

    Raises:
        InputError: more than 999 instances of one class (the encoding's limit), or a class
            table of the wrong length or with ids below 1.
    """
    k = gt.num_instances
    if class_ids is None:
        classes = np.where(np.asarray(gt.instance_evaluated, dtype=bool), 39, int(void_class_id)).astype(np.int64)
    else:
        classes = np.asarray(class_ids, dtype=np.int64)
        if classes.shape != (k,):
            raise InputError(f"class ids have shape {classes.shape}, expected ({k},): one per instance", path)
        if k and classes.min() < 1:
            raise InputError("class ids must be >= 1: values below 1000 mean unannotated", path)
    # instance numbers 1, 2, ... within each class, in instance order
    within = np.zeros(k, dtype=np.int64)
    for c in np.unique(classes):
        members = np.flatnonzero(classes == c)
        within[members] = np.arange(1, members.shape[0] + 1)
    if k and within.max() > 999:
        raise InputError("more than 999 instances of one class do not fit the label * 1000 + instance encoding", path)
    codes = np.concatenate([classes * 1000 + within, [0]])  # last slot: unlabelled points write 0
    values = codes[np.where(gt.instance_ids >= 0, gt.instance_ids, k)]
    text = "\n".join(map(str, values.tolist())) + "\n" if values.shape[0] else ""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)
