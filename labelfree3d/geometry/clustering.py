"""Euclidean clustering: connected components of the radius graph, PCL-style."""

from __future__ import annotations

from typing import Any

import numpy as np

from labelfree3d.errors import ParameterError
from labelfree3d.geometry._checks import as_points, int_at_least, positive_float
from labelfree3d.geometry.components import connected_components
from labelfree3d.geometry.neighbors import radius_graph

__all__ = ["euclidean_clustering"]


def euclidean_clustering(
    points: Any, tolerance: float, min_size: int = 1, max_size: int | None = None, node_mask: Any = None
) -> np.ndarray:
    """Group points into clusters whose members are chained by gaps of at most `tolerance`.

    The semantics of PCL's `EuclideanClusterExtraction`: clusters are the connected components
    of the graph linking points closer than `tolerance`; clusters with fewer than `min_size` or
    more than `max_size` points are discarded as noise. The radius graph is held in memory, so
    keep `tolerance` to a few point spacings (or voxel-down-sample dense clouds first).

    Args:
        points: (N, 3) coordinates in metres.
        tolerance: largest gap inside a cluster, in metres (e.g. 2 cm for a Kinect tabletop).
        min_size: smallest cluster kept, in points.
        max_size: largest cluster kept (None: no limit).
        node_mask: optional (N,) bool: cluster only these points (e.g. the points off the
            dominant planes); the others are labelled -1.

    Returns:
        (N,) int64 cluster id, consecutive from 0 by decreasing size (ties: lowest point index
        first), -1 for noise and masked-out points.
    """
    points = as_points(points)
    n = points.shape[0]
    tolerance = positive_float(tolerance, "tolerance")
    min_size = int_at_least(min_size, "min_size", 1)
    if max_size is not None:
        max_size = int_at_least(max_size, "max_size", 1)
        if max_size < min_size:
            raise ParameterError(f"max_size={max_size} is smaller than min_size={min_size}")
    selected = np.arange(n)
    if node_mask is not None:
        node_mask = np.asarray(node_mask)
        if node_mask.dtype != bool or node_mask.shape != (n,):
            raise ParameterError(f"node_mask must be a ({n},) bool array, got {node_mask.dtype} {node_mask.shape}")
        selected = np.flatnonzero(node_mask)
    labels = np.full(n, -1, dtype=np.int64)
    if selected.size == 0:
        return labels
    # the graph is built on the selected points only, so masked-out points cannot bridge clusters;
    # coincident points enter it once (they share a cluster), so that a pile of duplicates does
    # not make a radius graph of all their pairs
    chosen = points[selected]
    unique, inverse = np.unique(chosen, axis=0, return_inverse=True)
    if unique.shape[0] < chosen.shape[0]:
        edges, _ = radius_graph(unique, tolerance)
        merged = connected_components(edges, unique.shape[0])[inverse.reshape(-1)]
        # renumbered in order of each component's lowest point, as without duplicates
        _, first, position = np.unique(merged, return_index=True, return_inverse=True)
        components = np.argsort(np.argsort(first))[position.reshape(-1)]
    else:
        edges, _ = radius_graph(chosen, tolerance)
        components = connected_components(edges, selected.shape[0])
    sizes = np.bincount(components)
    valid = sizes >= min_size
    if max_size is not None:
        valid &= sizes <= max_size
    kept = np.flatnonzero(valid)
    # components are numbered by lowest point, so a stable sort on -size breaks ties by index
    order = kept[np.argsort(-sizes[kept], kind="stable")]
    new_id = np.full(sizes.shape[0], -1, dtype=np.int64)
    new_id[order] = np.arange(order.shape[0])
    labels[selected] = new_id[components]
    return labels
