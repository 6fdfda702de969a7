"""Segment3D's post-processing of predicted masks (§4.1 "with post-processing").

1. Superpoint smoothing: a mask becomes the union of the graph-based over-segments
   (Felzenszwalb superpoints) that it covers by majority, so mask borders follow the geometry.
2. DBSCAN split: a mask whose points form spatially separate groups is split into one mask per
   group (Segment3D App. A uses it to split erroneously merged instances).
3. Duplicate suppression (greedy mask NMS): not in the papers, whose models train until every
   object has one confident query; a briefly trained model still sends several queries to the
   same object, and every copy after the first counts as a false positive.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from labelfree3d.errors import ParameterError
from labelfree3d.models._params import check_fraction, check_int, check_positive
from labelfree3d.structures import InstanceMasks, Scene

__all__ = ["scene_superpoints", "smooth_with_superpoints", "split_disconnected", "suppress_duplicates"]


def scene_superpoints(scene: Scene) -> np.ndarray:
    """(N,) superpoint id per point: the scan's own (e.g. ScanNet segs.json) or computed.

    Meshes get ScanNet's mesh segmentator (`geometry.mesh_superpoints`), point clouds its kNN
    variant (`geometry.point_cloud_superpoints`), both with ScanNet's default parameters.
    """
    if scene.superpoints is not None:
        return scene.superpoints
    from labelfree3d.geometry import mesh_superpoints, point_cloud_superpoints

    if scene.is_mesh:
        return mesh_superpoints(scene.points, scene.faces)
    return point_cloud_superpoints(scene.points, normals=scene.normals)


def smooth_with_superpoints(masks: InstanceMasks, superpoints: np.ndarray, min_fraction: float = 0.5) -> InstanceMasks:
    """Snap masks to superpoints: superpoint s joins mask k when > `min_fraction` of its points are in k.

    Args:
        masks: K masks over N points.
        superpoints: (N,) int superpoint id per point.
        min_fraction: share of a superpoint's points a mask must cover to take all of it
            (0.5: majority vote).

    Returns:
        K masks over N points with the same scores (a mask may become empty).
    """
    min_fraction = check_fraction(min_fraction, "smoothing_fraction")
    superpoints = np.asarray(superpoints, dtype=np.int64)
    if superpoints.shape != (masks.num_points,):
        raise ParameterError(f"superpoints have shape {superpoints.shape}, expected ({masks.num_points},)")
    _, compact = np.unique(superpoints, return_inverse=True)
    num_segments = int(compact.max()) + 1 if compact.size else 0
    sizes = np.bincount(compact, minlength=num_segments)
    covered = masks.intersection_counts(compact, num_segments).tocsr()  # (K, S) points of mask k in segment s
    fraction = covered.multiply(1.0 / sizes[None, :]).tocsr()
    keep = fraction > min_fraction
    segment_points = sp.csr_matrix(
        (np.ones(compact.shape[0], dtype=np.int8), (compact, np.arange(compact.shape[0]))), shape=(num_segments, compact.shape[0])
    )
    smoothed = (keep.astype(np.int8) @ segment_points).tocsr()
    smoothed.sort_indices()
    return InstanceMasks(smoothed.indptr, smoothed.indices, masks.scores, masks.num_points)


def split_disconnected(masks: InstanceMasks, points: np.ndarray, eps: float, min_samples: int = 1, min_points: int = 1) -> InstanceMasks:
    """Split every mask into its DBSCAN clusters; each cluster keeps the mask's score.

    Args:
        masks: K masks over N points.
        points: (N, 3) coordinates in metres.
        eps: DBSCAN neighbourhood radius in metres (points closer than this chain together).
        min_samples: DBSCAN core-point threshold (1: plain connected components at radius eps).
        min_points: clusters smaller than this are dropped (DBSCAN noise is always dropped).

    Returns:
        Masks over N points, clusters of mask 0 first, each mask's clusters by decreasing size.
    """
    from sklearn.cluster import DBSCAN  # imported here: scikit-learn takes ~2 s to import

    eps = check_positive(eps, "dbscan_eps")
    min_samples = check_int(min_samples, "dbscan_min_points", 1)
    min_points = check_int(min_points, "split_min_points", 1)
    parts, scores = [], []
    for k in range(len(masks)):
        members = masks[k]
        if members.size == 0:
            continue
        labels = DBSCAN(eps=eps, min_samples=min_samples).fit(points[members]).labels_
        clusters = [c for c in np.unique(labels) if c >= 0]
        clusters.sort(key=lambda c: -int(np.count_nonzero(labels == c)))
        for c in clusters:
            part = members[labels == c]
            if part.size >= min_points:
                parts.append(part)
                scores.append(masks.scores[k])
    if not parts:
        return InstanceMasks.empty(masks.num_points)
    return InstanceMasks.from_index_lists(parts, np.asarray(scores), masks.num_points)


def suppress_duplicates(masks: InstanceMasks, iou: float) -> InstanceMasks:
    """Greedy mask NMS: visiting masks by decreasing score, drop one whose IoU with a kept mask is >= `iou`.

    Args:
        masks: K masks over N points.
        iou: IoU (in (0, 1]) at which a less confident mask is a duplicate.

    Returns:
        The kept masks, most confident first.
    """
    iou = check_fraction(iou, "nms_iou", open_low=True)
    masks = masks.sorted_by_score()
    if len(masks) < 2:
        return masks
    matrix = masks.to_sparse().astype(np.float32)
    intersection = (matrix @ matrix.T).toarray()
    sizes = masks.sizes.astype(np.float64)
    overlap = intersection / np.maximum(sizes[:, None] + sizes[None, :] - intersection, 1)
    kept: list[int] = []
    for k in range(len(masks)):
        if not kept or overlap[k, kept].max() < iou:
            kept.append(k)
    return masks.select(np.asarray(kept, dtype=np.int64))
