"""Score-free metrics for unsupervised segmentations (PointINS Tab. 5 style).

* Hungarian matching: per scene, a one-to-one assignment between kept predicted masks and
  counted GT instances that maximises the summed IoU (`scipy.optimize.linear_sum_assignment`,
  loaded alone, see `_scipy_lsap`).
  IoU is the AP protocol's (prediction counted with all its points). Reported: the mean IoU of
  assigned pairs that overlap at all (a zero-IoU pair is an arbitrary filler of the assignment,
  not a match), and precision / recall of assigned pairs with IoU > 0.5 over kept masks / counted
  GT. Counts are pooled over scenes.
* Adjusted Rand index (scikit-learn's formula, computed here) between the painted prediction
  (overlaps resolved by score, points in no mask forming one cluster) and the GT instances, on
  non-void points only: void points carry no GT partition to agree with. Reported per scene and
  as the mean over scenes that have non-void points.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelfree3d.evaluate.overlaps import SceneOverlaps

__all__ = ["HungarianCounts", "hungarian_counts", "hungarian_metrics", "adjusted_rand_index"]


@dataclass(frozen=True)
class HungarianCounts:
    """Additive Hungarian-matching statistics.

    Attributes:
        predictions: kept predicted masks.
        gt: counted GT instances.
        assigned: assigned pairs with IoU > 0.
        iou_sum: summed IoU of those pairs.
        matched50: assigned pairs with IoU > 0.5.
    """

    predictions: int = 0
    gt: int = 0
    assigned: int = 0
    iou_sum: float = 0.0
    matched50: int = 0

    def __add__(self, other: HungarianCounts) -> HungarianCounts:
        return HungarianCounts(
            self.predictions + other.predictions,
            self.gt + other.gt,
            self.assigned + other.assigned,
            self.iou_sum + other.iou_sum,
            self.matched50 + other.matched50,
        )


@functools.cache
def _scipy_lsap() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """`scipy.optimize.linear_sum_assignment`, without importing the rest of `scipy.optimize`.

    The function is scipy's C extension `scipy/optimize/_lsap`; importing the package around it
    (linprog, minimize, shgo, ...) costs ~0.3 s, a third of a whole `labelfree3d evaluate` run on
    a ScanNet scene. So the extension is loaded from its file; where scipy lays it out otherwise,
    the public import is used. Both are the same C function (`scipy.optimize.linear_sum_assignment
    is scipy.optimize._lsap.linear_sum_assignment`).
    """
    import importlib.machinery
    import importlib.util

    import scipy

    folder = Path(scipy.__file__).parent / "optimize"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"_lsap{suffix}"
        if not path.is_file():
            continue
        try:
            spec = importlib.util.spec_from_file_location("_lsap", path)
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            return module.linear_sum_assignment
        except (ImportError, AttributeError, OSError):
            break
    from scipy.optimize import linear_sum_assignment as public

    return public


def hungarian_counts(overlaps: SceneOverlaps) -> HungarianCounts:
    """Maximum-IoU one-to-one assignment of one scene's kept masks to its counted GT."""
    counted = overlaps.gt_sizes >= overlaps.min_region_size
    result = HungarianCounts(predictions=overlaps.num_predictions, gt=int(np.count_nonzero(counted)))
    keep = counted[overlaps.pair_gt]
    if not np.any(keep):
        return result
    iou = overlaps.pair_iou()[keep]
    rows_all, cols_all = overlaps.pair_pred[keep], overlaps.pair_gt[keep]
    # only masks and GT that overlap something can gain IoU: the dense matrix is restricted to them
    rows, row_index = np.unique(rows_all, return_inverse=True)
    cols, col_index = np.unique(cols_all, return_inverse=True)
    matrix = np.zeros((rows.shape[0], cols.shape[0]))
    matrix[row_index, col_index] = iou
    r, c = _scipy_lsap()(matrix, maximize=True)
    values = matrix[r, c]
    positive = values > 0
    return HungarianCounts(
        predictions=result.predictions,
        gt=result.gt,
        assigned=int(np.count_nonzero(positive)),
        iou_sum=float(values[positive].sum()),
        matched50=int(np.count_nonzero(values > 0.5)),
    )


def hungarian_metrics(counts: HungarianCounts) -> dict[str, float | int]:
    """Mean IoU of assigned pairs, precision and recall at IoU > 0.5 (fractions; NaN if undefined)."""
    nan = float("nan")
    return {
        "mean_iou": counts.iou_sum / counts.assigned if counts.assigned else (0.0 if counts.gt else nan),
        "precision": counts.matched50 / counts.predictions if counts.predictions else nan,
        "recall": counts.matched50 / counts.gt if counts.gt else nan,
        "pairs": counts.assigned,
        "pairs_iou50": counts.matched50,
    }


def adjusted_rand_index(segments: np.ndarray, gt_labels: np.ndarray) -> float:
    """ARI between a painted prediction and the GT on non-void points.

    The formula of `sklearn.metrics.adjusted_rand_score` (pair confusion counts, 1.0 when no
    pair is split differently), computed here from `np.bincount` tables: importing
    scikit-learn takes about a second, longer than evaluating a ScanNet scene.

    Args:
        segments: (N,) int segment per point, -1 for points in no mask (one cluster).
        gt_labels: (N,) int GT instance per point, -1 on void.

    Returns:
        ARI in [-0.5, 1]; NaN when the scene has no non-void point.
    """
    valid = gt_labels >= 0
    if not np.any(valid):
        return float("nan")
    truth = _dense_codes(gt_labels[valid])
    found = _dense_codes(segments[valid])
    # contingency cells n_ij as counts of the joint codes (both sides are dense in [0, K))
    cells = _dense_codes(truth * (int(found.max()) + 1) + found)
    n = int(truth.shape[0])
    # Python ints from here on: n ** 2 and the products below overflow int64 on large scans
    sum_cells = _sum_squares(np.bincount(cells))
    sum_truth = _sum_squares(np.bincount(truth))
    sum_found = _sum_squares(np.bincount(found))
    tp = sum_cells - n  # pairs together in both (each counted twice, as sklearn's pair confusion matrix)
    fp = sum_found - sum_cells  # together in the prediction only
    fn = sum_truth - sum_cells  # together in the GT only
    tn = n * n - fp - fn - sum_cells
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def _dense_codes(values: np.ndarray) -> np.ndarray:
    """(N,) int64 codes in [0, number of distinct values), same partition as `values`."""
    values = values.astype(np.int64, copy=False)
    low, high = int(values.min()), int(values.max())
    if high - low <= 4 * values.shape[0]:  # small range: a lookup table instead of a sort
        present = np.zeros(high - low + 1, dtype=bool)
        present[values - low] = True
        return (np.cumsum(present) - 1)[values - low]
    return np.unique(values, return_inverse=True)[1].reshape(-1)


def _sum_squares(counts: np.ndarray) -> int:
    counts = counts.astype(np.int64, copy=False)
    return int(counts @ counts)  # exact: the counts sum to N, so the squares sum to at most N**2 < 2**63
