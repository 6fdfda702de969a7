"""Region growing of partial labels along the surface (pseudo-mask completion)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse.csgraph import dijkstra

from labelfree3d.errors import ParameterError
from labelfree3d.geometry._checks import as_points, positive_float
from labelfree3d.geometry.neighbors import edges_to_csr, radius_graph

__all__ = ["grow_labels"]


def grow_labels(
    points: Any,
    labels: Any,
    eligible: Any,
    link_radius: float,
    max_distance: float,
    max_neighbors: int = 16,
) -> np.ndarray:
    """Give unlabelled points the label of the region that reaches them first along the surface.

    Points are linked to their neighbours within `link_radius` (at most `max_neighbors` each);
    from every labelled point at once, a multi-source Dijkstra walks the graph, and each eligible
    unlabelled point within geodesic distance `max_distance` of some labelled point takes that
    point's label. Growth passes only through eligible or labelled points, so it stops at gaps
    wider than `link_radius` and at what `eligible` excludes (e.g. the room structure); where two
    regions meet, each point goes to the nearer one.

    Args:
        points: (N, 3) coordinates (metres).
        labels: (N,) int labels, -1 = unlabelled.
        eligible: (N,) bool, the unlabelled points that may be labelled.
        link_radius: neighbour linking distance (metres), about 2-3 times the point spacing.
        max_distance: how far (metres, along the graph) a region may grow.
        max_neighbors: neighbours per point in the graph (bounds memory on dense scans).

    Returns:
        (N,) int64 labels: the input labels, plus the grown ones.
    """
    points = as_points(points)
    labels = np.asarray(labels).astype(np.int64, copy=True)
    eligible = np.asarray(eligible, dtype=bool)
    n = points.shape[0]
    if labels.shape != (n,) or eligible.shape != (n,):
        raise ParameterError(f"labels {labels.shape} and eligible {eligible.shape} must both be ({n},), one per point")
    link_radius = positive_float(link_radius, "link_radius")
    max_distance = positive_float(max_distance, "max_distance", allow_zero=True)
    labelled = labels >= 0
    nodes = np.flatnonzero(labelled | (eligible & ~labelled))
    if max_distance == 0 or not labelled.any() or nodes.shape[0] == np.count_nonzero(labelled):
        return labels
    edges, lengths = radius_graph(points[nodes], link_radius, max_neighbors=max_neighbors)
    if edges.shape[0] == 0:
        return labels
    # a tiny floor keeps zero-length edges (duplicate points) edges rather than gaps
    graph = edges_to_csr(edges, nodes.shape[0], np.maximum(lengths, 1e-9))
    sources = np.flatnonzero(labelled[nodes])
    distance, _, source = dijkstra(graph, directed=False, indices=sources, min_only=True, limit=max_distance,
                                   return_predecessors=True)  # fmt: skip
    reached = np.isfinite(distance) & (source >= 0) & ~labelled[nodes]
    labels[nodes[reached]] = labels[nodes[source[reached]]]
    return labels
