"""Nearest-neighbour queries and neighbourhood graphs (scipy cKDTree, all cores)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from labelfree3d.errors import ParameterError
from labelfree3d.geometry._checks import as_edges, as_points, int_at_least, positive_float

__all__ = ["edges_to_csr", "knn", "knn_graph", "radius_graph", "unique_undirected_edges"]


def knn(points: Any, k: int, query: Any = None, workers: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest neighbours of each query point.

    Args:
        points: (N, 3) reference coordinates.
        k: neighbours per query point (1 <= k; k < N when `query` is None, else k <= N).
        query: (Q, 3) query coordinates, or None to query every reference point against the
            others. Then a point is never its own neighbour, even when it has exact duplicates
            (which are returned as neighbours at distance 0).
        workers: threads for the query (-1 = all cores).

    Returns:
        (distances (Q, k) float64 in the unit of `points`, ascending per row;
         indices (Q, k) int64 into `points`). Q = N when `query` is None.
    """
    points = as_points(points)
    k = int_at_least(k, "k", 1)
    n = points.shape[0]
    tree = cKDTree(points)
    if query is not None:
        query = as_points(query, "query")
        if k > n:
            raise ParameterError(f"k={k} exceeds the {n} reference points")
        distances, indices = tree.query(query, k=k, workers=workers)
        return distances.reshape(-1, k), indices.reshape(-1, k).astype(np.int64)
    if k >= n:
        raise ParameterError(f"k={k} needs more than {n} points (a point is not its own neighbour)")
    distances, indices = tree.query(points, k=k + 1, workers=workers)
    indices = indices.astype(np.int64)
    # Drop each point itself. With duplicate points it may not be in column 0 (ties at distance
    # 0 come back in any order) or not be returned at all; then drop the farthest column instead.
    is_self = indices == np.arange(n)[:, None]
    is_self[~is_self.any(axis=1), k] = True
    keep = ~is_self
    return distances[keep].reshape(n, k), indices[keep].reshape(n, k)


def knn_graph(points: Any, k: int, workers: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Undirected k-nearest-neighbour graph: i and j are linked when either is among the other's k nearest.

    FreePoint builds its superpoint graph this way with k1 = 4 neighbours.

    Args:
        points: (N, 3) coordinates.
        k: neighbours per point (1 <= k < N).
        workers: threads for the tree query (-1 = all cores).

    Returns:
        (edges (E, 2) int64 with edges[:, 0] < edges[:, 1], unique and sorted lexicographically;
         distances (E,) float64 Euclidean length of each edge). N*k/2 <= E <= N*k.
    """
    distances, indices = knn(points, k, workers=workers)
    n = indices.shape[0]
    sources = np.repeat(np.arange(n, dtype=np.int64), k)
    return unique_undirected_edges(np.stack([sources, indices.reshape(-1)], axis=1), distances.reshape(-1), n)


def radius_graph(
    points: Any, radius: float, max_neighbors: int | None = None, workers: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """Undirected graph linking every pair of points closer than `radius`.

    Args:
        points: (N, 3) coordinates.
        radius: linking distance, in the unit of `points` (inclusive).
        max_neighbors: cap on the neighbours each point contributes (its nearest ones), to bound
            memory in dense regions; None links all pairs within `radius`.
        workers: threads for the tree query when `max_neighbors` is set (-1 = all cores).

    Returns:
        (edges (E, 2) int64 with edges[:, 0] < edges[:, 1], unique and sorted; distances (E,) float64).
    """
    points = as_points(points)
    radius = positive_float(radius, "radius")
    n = points.shape[0]
    tree = cKDTree(points)
    if max_neighbors is None:
        edges = tree.query_pairs(radius, output_type="ndarray").astype(np.int64)
        edges = edges[np.lexsort((edges[:, 1], edges[:, 0]))]
        distances = np.linalg.norm(points[edges[:, 0]].astype(np.float64) - points[edges[:, 1]], axis=1)
        return edges, distances
    max_neighbors = int_at_least(max_neighbors, "max_neighbors", 1)
    count = min(max_neighbors + 1, n)
    distances, indices = tree.query(points, k=count, distance_upper_bound=radius, workers=workers)
    distances, indices = distances.reshape(n, count), indices.reshape(n, count).astype(np.int64)
    sources = np.repeat(np.arange(n, dtype=np.int64), count)
    # cKDTree marks missing neighbours with index n and infinite distance
    valid = (indices.reshape(-1) < n) & (indices.reshape(-1) != sources)
    pairs = np.stack([sources[valid], indices.reshape(-1)[valid]], axis=1)
    return unique_undirected_edges(pairs, distances.reshape(-1)[valid], n)


def unique_undirected_edges(
    edges: Any, values: Any = None, num_nodes: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Canonical form of an edge list: each undirected edge once as (i, j), i < j, self-loops removed.

    Args:
        edges: (E, 2) int node pairs in any direction, possibly repeated.
        values: optional (E,) per-edge values (e.g. distances); a repeated edge keeps the value of
            its first occurrence.
        num_nodes: number of nodes; defaults to the largest index + 1.

    Returns:
        (edges (U, 2) int64 sorted lexicographically; values (U,) or None).
    """
    edges = np.asarray(edges)
    if num_nodes is None:
        num_nodes = int(edges.max()) + 1 if edges.size else 0
    edges = as_edges(edges, num_nodes)
    low = np.minimum(edges[:, 0], edges[:, 1])
    high = np.maximum(edges[:, 0], edges[:, 1])
    proper = low != high
    low, high = low[proper], high[proper]
    # one int64 key per pair; num_nodes**2 stays below 2**63 for any cloud that fits in memory
    keys = low * np.int64(num_nodes) + high
    _, first = np.unique(keys, return_index=True)
    out = np.stack([low[first], high[first]], axis=1)
    if values is None:
        return out, None
    values = np.asarray(values)
    if values.shape[0] != proper.shape[0]:
        raise ParameterError(f"values has {values.shape[0]} entries for {proper.shape[0]} edges")
    return out, values[proper][first]


def edges_to_csr(edges: Any, num_nodes: int, weights: Any = None) -> sp.csr_matrix:
    """Symmetric (num_nodes, num_nodes) sparse adjacency matrix of an undirected edge list.

    Args:
        edges: (E, 2) node pairs; each pair is entered in both directions.
        num_nodes: number of nodes.
        weights: optional (E,) edge weights (default 1). Repeated pairs are summed.

    Returns:
        scipy CSR matrix; `indptr`/`indices` list each node's neighbours.
    """
    num_nodes = int_at_least(num_nodes, "num_nodes", 1)
    edges = as_edges(edges, num_nodes)
    data = np.ones(edges.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    if data.shape != (edges.shape[0],):
        raise ParameterError(f"weights must have shape ({edges.shape[0]},), got {data.shape}")
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    cols = np.concatenate([edges[:, 1], edges[:, 0]])
    matrix = sp.csr_matrix((np.concatenate([data, data]), (rows, cols)), shape=(num_nodes, num_nodes))
    matrix.sum_duplicates()
    return matrix
