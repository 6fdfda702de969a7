"""Connectivity of triangle meshes: edges and vertex adjacency."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from labelfree3d.geometry._checks import as_faces, int_at_least
from labelfree3d.geometry.neighbors import edges_to_csr, unique_undirected_edges

__all__ = ["face_edges", "mesh_adjacency", "mesh_edges"]


def face_edges(faces: Any) -> np.ndarray:
    """The three directed edges of every triangle, in the order ScanNet's segmentator lists them.

    Args:
        faces: (F, 3) vertex indices (i1, i2, i3) per triangle.

    Returns:
        (3F, 2) int64: rows 3f, 3f+1, 3f+2 are (i1, i2), (i1, i3), (i3, i2) of face f. An edge
        shared by two faces appears twice; use `mesh_edges` for the unique undirected set.
    """
    faces = as_faces(faces)
    return np.stack([faces[:, [0, 0, 2]].reshape(-1), faces[:, [1, 2, 1]].reshape(-1)], axis=1)


def mesh_edges(faces: Any, num_vertices: int | None = None) -> np.ndarray:
    """Unique undirected edges of a triangle mesh.

    Args:
        faces: (F, 3) vertex indices.
        num_vertices: vertex count N (defaults to the largest index + 1).

    Returns:
        (E, 2) int64 with edges[:, 0] < edges[:, 1], sorted lexicographically. Degenerate faces
        that repeat a vertex contribute no self-loops.
    """
    faces = as_faces(faces, num_vertices)
    n = int(faces.max()) + 1 if num_vertices is None else int_at_least(num_vertices, "num_vertices", 1)
    edges, _ = unique_undirected_edges(face_edges(faces), None, n)
    return edges


def mesh_adjacency(faces: Any, num_vertices: int) -> sp.csr_matrix:
    """Vertex adjacency of a triangle mesh as a symmetric CSR matrix.

    Args:
        faces: (F, 3) vertex indices.
        num_vertices: vertex count N; vertices in no face get empty rows.

    Returns:
        (N, N) scipy CSR matrix of ones; the neighbours of vertex v are
        `indices[indptr[v]:indptr[v + 1]]`, sorted.
    """
    num_vertices = int_at_least(num_vertices, "num_vertices", 1)
    matrix = edges_to_csr(mesh_edges(faces, num_vertices), num_vertices)
    matrix.sort_indices()
    return matrix
