"""Dominant planes: RANSAC whose hypotheses are single points with their normals.

The one plane detector of labelfree3d: room structure (`labelfree3d.geometry.structure`), the
plane removal of the clustering baselines and FreePoint's background planes all use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labelfree3d.errors import ParameterError
from labelfree3d.geometry._checks import as_points, int_at_least, positive_float
from labelfree3d.geometry.voxel import voxel_downsample

__all__ = ["detect_planes", "fit_plane", "plane_inliers", "point_plane_distances"]


def detect_planes(
    points: np.ndarray,
    normals: np.ndarray,
    distance: float = 0.02,
    max_angle: float = 30.0,
    max_planes: int = 8,
    min_fraction: float = 0.05,
    min_ratio: float = 0.0,
    voxel: float = 0.05,
    hypotheses: int = 256,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Largest planes one after another, by RANSAC whose hypotheses are single points with normals.

    A hypothesis is the plane through one point orthogonal to its normal, so a plane holding a
    fraction w of the cloud is hit with probability w per draw rather than w^3 for three-point
    RANSAC: 256 draws find a 5 % wall with probability 1 - 0.95^256 > 0.99999, where three-point
    RANSAC would need ~10^5 hypotheses (Open3D's 3-point `segment_plane`, which this replaced, took
    39-44 s for 8 planes of a ScanNet room at 10^4 hypotheses per plane on the one thread that
    makes it deterministic, and missed uneven floors). Hypotheses are scored on one representative point per `voxel`
    cell, so support is measured by area rather than by sensor density; each winner is refitted by
    least squares to its full-resolution inliers (twice) before its points are removed.

    Args:
        points: (N, 3) coordinates, metres.
        normals: (N, 3) unit normals (sign ignored).
        distance: largest point-to-plane distance of an inlier, metres.
        max_angle: largest angle in degrees between an inlier's normal and the plane's normal.
        max_planes: most planes extracted.
        min_fraction: stop when the best plane holds fewer than this fraction of the voxel cells.
        min_ratio: also stop when it holds fewer than this fraction of the first plane's cells.
        voxel: cell edge in metres of the scoring grid (0 = every point).
        hypotheses: points drawn per plane.
        seed: seed of the draws (same input and seed, same planes).

    Returns:
        (models (P, 4) float64 planes a x + b y + c z + d = 0 with unit (a, b, c), in extraction
        order; labels (N,) int64 plane of each point, -1 for points on none).
    """
    points = np.asarray(points, dtype=np.float64)
    normals = np.asarray(normals, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or normals.shape != points.shape:
        raise ParameterError(f"points and normals must both have shape (N, 3), got {points.shape} and {normals.shape}")
    if not (np.isfinite(points).all() and np.isfinite(normals).all()):
        raise ParameterError("points or normals contain NaN or infinite values")
    distance = positive_float(distance, "distance")
    max_angle = positive_float(max_angle, "max_angle")
    if max_angle > 90:
        raise ParameterError(f"max_angle must be <= 90 degrees, got {max_angle!r}")
    max_planes = int_at_least(max_planes, "max_planes", 0)
    min_fraction = _fraction(min_fraction, "min_fraction")
    min_ratio = _fraction(min_ratio, "min_ratio")
    voxel = positive_float(voxel, "voxel", allow_zero=True)
    hypotheses = int_at_least(hypotheses, "hypotheses", 1)
    n = points.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    models: list[np.ndarray] = []
    if n < 3:
        return np.zeros((0, 4)), labels
    if voxel > 0:
        _, representative = np.unique(voxel_downsample(points, voxel).inverse, return_index=True)
    else:
        representative = np.arange(n)
    needed = max(3, int(np.ceil(min_fraction * representative.shape[0])))
    min_cos = float(np.cos(np.radians(max_angle)))
    rng = np.random.default_rng(seed)
    free = np.ones(n, dtype=bool)
    while len(models) < max_planes:
        candidates = representative[free[representative]]
        if candidates.shape[0] < needed:
            break
        drawn = rng.choice(candidates, size=min(hypotheses, candidates.shape[0]), replace=False)
        plane_normals = normals[drawn]
        offsets = -np.einsum("ij,ij->i", plane_normals, points[drawn])
        support = np.zeros(drawn.shape[0], dtype=np.int64)
        # (cells, hypotheses) tests in chunks of cells, to bound memory on large clouds
        for chunk in np.array_split(candidates, max(1, candidates.shape[0] // 8192)):
            near = np.abs(points[chunk] @ plane_normals.T + offsets) <= distance
            aligned = np.abs(normals[chunk] @ plane_normals.T) >= min_cos
            support += np.count_nonzero(near & aligned, axis=0)
        best = int(np.argmax(support))
        if support[best] < needed:
            break
        model = np.append(plane_normals[best], offsets[best])
        for _ in range(2):  # least-squares refit on the full-resolution inliers
            inliers = plane_inliers(points, normals, model, distance, min_cos) & free
            if np.count_nonzero(inliers) < 3:
                break
            model = fit_plane(points[inliers])
        inliers = plane_inliers(points, normals, model, distance, min_cos) & free
        cells = np.count_nonzero(inliers[representative])
        if cells < needed:
            break
        if not models:
            needed = max(needed, int(np.ceil(min_ratio * cells)))
        labels[inliers] = len(models)
        free &= ~inliers
        models.append(model)
    return np.array(models, dtype=np.float64).reshape(-1, 4), labels


def plane_inliers(
    points: np.ndarray, normals: np.ndarray, model: np.ndarray, distance: float, min_cos: float
) -> np.ndarray:
    """(N,) bool: within `distance` (metres) of the plane (4,) and with a normal within arccos(`min_cos`) of its normal."""
    near = np.abs(points @ model[:3] + model[3]) <= distance
    return near & (np.abs(normals @ model[:3]) >= min_cos)


def fit_plane(points: np.ndarray) -> np.ndarray:
    """(4,) least-squares plane (unit normal, offset) through (M, 3) points, M >= 3."""
    centroid = points.mean(axis=0)
    # the normal is the direction of least variance: the last right singular vector
    _, _, vt = np.linalg.svd(points - centroid, full_matrices=False)
    normal = vt[-1]
    return np.append(normal, -normal @ centroid)


def point_plane_distances(points: Any, model: Any) -> np.ndarray:
    """Signed distance of each point to the plane (a, b, c, d), positive on the normal's side.

    Args:
        points: (N, 3) coordinates.
        model: (4,) plane coefficients; (a, b, c) need not be unit length.

    Returns:
        (N,) float64 distances in the unit of `points`.
    """
    points = as_points(points)
    model = np.asarray(model, dtype=np.float64).reshape(-1)
    if model.shape != (4,) or not np.isfinite(model).all() or not np.any(model[:3]):
        raise ParameterError(f"plane model must be 4 finite numbers with a non-zero normal, got {model}")
    return (points.astype(np.float64) @ model[:3] + model[3]) / np.linalg.norm(model[:3])


def _fraction(value: Any, name: str) -> float:
    number = positive_float(value, name, allow_zero=True)
    if number > 1:
        raise ParameterError(f"{name} must lie in [0, 1], got {value!r}")
    return number
