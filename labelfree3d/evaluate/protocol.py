"""Constants of the class-agnostic ScanNet instance protocol and the report's protocol block.

The values are those of ScanNet's `BenchmarkScripts/3d_evaluation/evaluate_semantic_instance.py`
(`opt.overlaps`, `opt.min_region_sizes`; its distance filters are +inf / -inf and so filter
nothing). The IoU thresholds are built with the same `np.arange` call as the script, so that the
strict `IoU > t` comparisons see bit-identical floats (0.6000000000000001, not 0.6).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "AP_THRESHOLDS",
    "THRESHOLDS",
    "AP25_THRESHOLD",
    "MIN_REGION_SIZE",
    "SIZE_BUCKETS",
    "DEFAULT_VOID_LABELS",
    "PQ_MATCH_IOU",
    "protocol_description",
    "check_void_labels",
    "threshold_key",
]

# (9,) the thresholds AP averages over: 0.50, 0.55, ..., 0.90 as np.arange produces them
AP_THRESHOLDS: np.ndarray = np.arange(0.5, 0.95, 0.05)
AP25_THRESHOLD: float = 0.25
# (10,) every threshold evaluated, in the script's order (0.25 last)
THRESHOLDS: np.ndarray = np.append(AP_THRESHOLDS, AP25_THRESHOLD)

# GT instances below this many points are not positives; predictions below it are dropped
MIN_REGION_SIZE: int = 100

# Segment3D's size breakdown, in GT points (void excluded by construction): [low, high)
SIZE_BUCKETS: dict[str, tuple[float, float]] = {
    "small": (0.0, 2_000.0),
    "medium": (2_000.0, 15_000.0),
    "large": (15_000.0, float("inf")),
}

# category names that are void (not instances) in indoor class-agnostic evaluation
DEFAULT_VOID_LABELS: tuple[str, ...] = ("wall", "floor", "ceiling")

# a panoptic match needs IoU strictly above this (which makes matches unique)
PQ_MATCH_IOU: float = 0.5


def threshold_key(threshold: float) -> str:
    """Report key of an IoU threshold, e.g. 0.6000000000000001 -> "0.60"."""
    return f"{threshold:.2f}"


def protocol_description(
    min_region_size: int,
    size_buckets: dict[str, tuple[float, float]],
    void_rule: str | None,
) -> dict[str, Any]:
    """The `protocol` block of an evaluation report: everything needed to reproduce its numbers."""
    return {
        "name": "scannet-instance-class-agnostic",
        "reference": "ScanNet BenchmarkScripts/3d_evaluation/evaluate_semantic_instance.py, all classes folded into one",
        "thresholds": [threshold_key(t) for t in THRESHOLDS],
        "ap": "mean of AP over IoU > 0.50, 0.55, ..., 0.90 (np.arange(0.5, 0.95, 0.05))",
        "ap50": "AP at IoU > 0.50",
        "ap25": "AP at IoU > 0.25",
        "iou": "|P & G| / (|G| + |P| - |P & G|) with |P| counting all points of the prediction, void included",
        "min_region_size": int(min_region_size),
        "gt": f"evaluated instances with >= {min_region_size} points, visited in ascending instance id",
        "predictions": f"masks with >= {min_region_size} points, in their given order",
        "void": void_rule or "points of unlabelled and non-evaluated (void-class) instances",
        "ignore_rule": (
            "an unmatched prediction is not a false positive when more than t of its points lie on void, "
            f"on GT instances under {min_region_size} points (or outside the size bucket)"
        ),
        "size_buckets": {name: [low, None if np.isinf(high) else high] for name, (low, high) in size_buckets.items()},
        "size_bucket_rule": "GT outside the bucket is ignored exactly like GT under min_region_size",
        "pq": (
            f"class-agnostic things; masks >= {min_region_size} points painted by descending score into a "
            f"non-overlapping labelling; match = IoU > {PQ_MATCH_IOU} with void points removed from segments; "
            f"segments/GT under {min_region_size} points are not counted as FP/FN; segments more than half void are not FP"
        ),
        "hungarian": (
            "per scene, one-to-one assignment maximising the summed IoU (scipy linear_sum_assignment) between "
            "kept masks and counted GT; mean_iou over assigned pairs with IoU > 0; precision/recall count pairs "
            "with IoU > 0.5 over kept masks / counted GT"
        ),
        "ari": "adjusted Rand index between the painted labelling (unassigned = one cluster) and GT on non-void points, mean over scenes",
    }


# the room structure classes that every room benchmark voids: accepted as void labels even when
# no scan evaluated carries them (a room scanned without its ceiling, a subset of rooms)
STRUCTURE_CATEGORIES = ("wall", "floor", "ceiling")


def check_void_labels(void_labels: Sequence[str] | None, categories: Iterable[str]) -> None:
    """Refuse void labels that name no category of the ground truth (a typo would void nothing).

    `--void-labels` replaces the reader's void classes, so a misspelt name silently turns wall,
    floor and ceiling into evaluated instances; every name must therefore be a category of at
    least one ground-truth scan evaluated, or one of `STRUCTURE_CATEGORIES`.

    Args:
        void_labels: the requested void category names (case-insensitive); None or empty: no check.
        categories: every category name the ground-truth scans carry (`GroundTruth.category_names`).

    Raises:
        ParameterError: naming the unknown labels and listing the valid ones.
    """
    from labelfree3d.errors import ParameterError

    if not void_labels:
        return
    known = {str(c).strip().lower() for c in categories} | set(STRUCTURE_CATEGORIES)
    unknown = [label for label in void_labels if label.strip().lower() not in known]
    if unknown:
        listed = sorted(known)
        shown = ", ".join(listed[:80]) + (f", ... ({len(listed)} in all)" if len(listed) > 80 else "")
        raise ParameterError(
            f"--void-labels: unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}; "
            f"valid are the ground truth's categories and wall, floor, ceiling: {shown}"
        )
