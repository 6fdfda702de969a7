"""How well predicted offsets point at instance centres (PointINS's offset branch, judged against ground truth).

For every point of an evaluated ground-truth instance, the distance from its shifted position
x + O to the centroid of its instance, in metres. Zero offsets give the baseline: the mean
distance of the points to their own centroids. The function takes arrays only, whatever
produced the offsets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labelfree3d.errors import InputError
from labelfree3d.structures import GroundTruth

__all__ = ["offset_centroid_errors"]


def offset_centroid_errors(gt: GroundTruth, points: Any, offsets: Any) -> dict[str, Any]:
    """Distances from shifted points to their ground-truth instance centroids.

    Args:
        gt: the scan's ground truth (void instances and unlabelled points are skipped).
        points: (N, 3) coordinates, metres.
        offsets: (N, 3) predicted offsets, metres.

    Returns:
        {"distances": (M,) float64 |x + O - c| of the M evaluated points, "baseline": (M,) |x - c|,
        "instance": (M,) their instance ids}; M = 0 when the scan has no evaluated instance.

    Raises:
        InputError: shapes disagree or values are not finite.
    """
    points = np.asarray(points, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.float64)
    ids = gt.evaluated_ids()
    if points.shape != (ids.shape[0], 3) or offsets.shape != points.shape:
        raise InputError(f"points {points.shape} and offsets {offsets.shape} must both be ({ids.shape[0]}, 3)")
    if not (np.isfinite(points).all() and np.isfinite(offsets).all()):
        raise InputError("points or offsets contain NaN or infinite values")
    chosen = np.flatnonzero(ids >= 0)
    _, compact = np.unique(ids[chosen], return_inverse=True)
    counts = np.bincount(compact)
    if chosen.size == 0:
        empty = np.zeros(0)
        return {"distances": empty, "baseline": empty, "instance": np.zeros(0, dtype=np.int64)}
    centroids = np.stack([np.bincount(compact, weights=points[chosen, axis]) / counts for axis in range(3)], axis=1)
    centre = centroids[compact]
    return {
        "distances": np.linalg.norm(points[chosen] + offsets[chosen] - centre, axis=1),
        "baseline": np.linalg.norm(points[chosen] - centre, axis=1),
        "instance": ids[chosen],
    }
