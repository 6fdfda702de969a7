"""Voxel grids: integer voxel coordinates and down-sampling with the map back to every point."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from labelfree3d.errors import ParameterError
from labelfree3d.geometry._checks import as_features, as_points, as_vector3, positive_float

__all__ = ["VoxelGrid", "voxel_coordinates", "voxel_downsample", "one_point_per_cell"]

# UnScene3D and Segment3D voxelise ScanNet at 2 cm before their sparse 3D networks
DEFAULT_VOXEL_SIZE = 0.02


class VoxelGrid(NamedTuple):
    """Result of `voxel_downsample` (M occupied voxels, N input points).

    Attributes:
        points: (M, 3) centroid of the points in each voxel, in the input's float dtype.
        inverse: (N,) int64 voxel of each input point; `points[inverse]` and
            `InstanceMasks.lift(inverse)` bring voxel results back to full resolution.
        coords: (M, 3) int64 integer voxel coordinates floor((p - origin) / voxel_size).
        counts: (M,) int64 number of points in each voxel.
        features: (M, C) float64 mean of the given per-point features, or None.
    """

    points: np.ndarray
    inverse: np.ndarray
    coords: np.ndarray
    counts: np.ndarray
    features: np.ndarray | None


def voxel_coordinates(points: Any, voxel_size: float, origin: Any = None) -> np.ndarray:
    """Integer coordinates of the voxel containing each point.

    Args:
        points: (N, 3) coordinates in metres.
        voxel_size: voxel edge length in metres.
        origin: (3,) corner of voxel (0, 0, 0); default the world origin, so that grids of
            different scans align.

    Returns:
        (N, 3) int64 floor((points - origin) / voxel_size).
    """
    points = as_points(points)
    voxel_size = positive_float(voxel_size, "voxel_size")
    shifted = points.astype(np.float64) - (0.0 if origin is None else as_vector3(origin, "origin"))
    scaled = np.floor(shifted / voxel_size)
    if np.abs(scaled).max() >= 2**62:
        raise ParameterError(f"voxel_size {voxel_size} is too small for coordinates of this extent")
    return scaled.astype(np.int64)


def _cell_keys(coords: np.ndarray) -> np.ndarray:
    """(N,) one int64 key per integer cell (row-major), or the (N, 3) coordinates when the grid is too large for one."""
    low = coords.min(axis=0)
    extent = coords.max(axis=0) - low + 1
    if float(np.prod(extent.astype(np.float64))) < 2**62:
        return ((coords[:, 0] - low[0]) * extent[1] + (coords[:, 1] - low[1])) * extent[2] + (coords[:, 2] - low[2])
    return coords


def one_point_per_cell(points: Any, cell_size: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices of one point per occupied cubic cell: a cheap uniform thinning of dense scans.

    Args:
        points: (N, 3) coordinates in metres.
        cell_size: cell edge in metres.
        rng: picks a random point of each cell; None takes each cell's first point.

    Returns:
        (M,) sorted int64 indices into `points`, M the number of occupied cells.
    """
    cell_size = positive_float(cell_size, "cell_size")
    if np.shape(points) == (0, 3):
        return np.zeros(0, dtype=np.int64)
    points = as_points(points)
    order = np.arange(points.shape[0]) if rng is None else rng.permutation(points.shape[0])
    keys = _cell_keys(voxel_coordinates(points[order], cell_size))
    _, first = np.unique(keys, axis=0 if keys.ndim == 2 else None, return_index=True)
    return np.sort(order[first]).astype(np.int64)


def voxel_downsample(
    points: Any, voxel_size: float = DEFAULT_VOXEL_SIZE, features: Any = None, origin: Any = None
) -> VoxelGrid:
    """Down-sample a cloud to one point per occupied voxel, keeping the map back to the input.

    Args:
        points: (N, 3) coordinates in metres.
        voxel_size: voxel edge in metres (default 2 cm, the resolution of UnScene3D and Segment3D).
        features: optional (N, C) or (N,) per-point values to average per voxel (colours,
            normals, which you may want to re-normalise, ...).
        origin: (3,) corner of voxel (0, 0, 0); default the world origin.

    Returns:
        `VoxelGrid` (points, inverse, coords, counts, features). Voxels are ordered by their
        coordinates (x, then y, then z), so the output does not depend on the input order.
    """
    points = as_points(points)
    n = points.shape[0]
    coords = voxel_coordinates(points, voxel_size, origin)
    # one int64 key per voxel (row-major in x, y, z) makes np.unique 1-D and several times faster
    keys = _cell_keys(coords)
    _, first, inverse = np.unique(keys, axis=0 if keys.ndim == 2 else None, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    m = first.shape[0]
    counts = np.bincount(inverse, minlength=m)
    # sparse (M, N) averaging operator: one row per voxel with 1/count at each of its points
    average = sp.csr_matrix((1.0 / counts[inverse], (inverse, np.arange(n))), shape=(m, n))
    centroids = (average @ points.astype(np.float64)).astype(points.dtype)
    pooled = None
    if features is not None:
        pooled = average @ as_features(features, n)
    return VoxelGrid(centroids, inverse, coords[first], counts.astype(np.int64), pooled)
