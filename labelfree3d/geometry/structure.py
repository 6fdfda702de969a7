"""Scan structure: point spacing, the gravity axis, and the supporting surfaces of a scan.

Indoor rooms are enclosed by a floor, walls and (sometimes) a ceiling; a tabletop frame has a
table and the room behind it; a LiDAR sweep has the ground. None of these are objects, and every
class-agnostic benchmark counts them as void, so the methods segment what is left
(`RoomStructure.rest`). One detector serves every method and the renders:

1. **Scale.** `point_spacing` (median nearest-neighbour distance) and `surface_noise` (median
   distance of points to their local tangent plane) set every distance below, so that the same
   code works on a 2 mm Kinect cloud and a 3 cm room subsample.
2. **Gravity.** The caller gives a prior up direction (`up_hint`: +z for ScanNet/LiDAR files,
   -y for camera-frame clouds) and how far gravity may deviate from it. Large planes whose
   normals lie within that cone are candidate supports; the **support** (floor, table top,
   ground) is the lowest of the large ones, with the fewest points beneath it. Its normal is the
   measured up axis, so tilted scans and camera frames get a true gravity axis.
3. **Ceiling.** A horizontal plane at least `min_ceiling_height` above the support with almost
   nothing above it.
4. **Walls.** Vertical planes, split into pieces along the wall; a piece is a wall when it
   spans at least `min_wall_span` of the scan's height and `min_wall_height` (1 m) and almost no point lies behind it (the
   scan's boundary). Everything behind a wall (scanning through windows, outliers) is structure.

Label values: 0 = rest (objects), 1 = support (floor/table/ground), 2 = ceiling, 3 = wall.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labelfree3d.errors import ParameterError
from labelfree3d.geometry._checks import as_points, as_vector3, positive_float
from labelfree3d.geometry.neighbors import knn
from labelfree3d.geometry.planes import detect_planes

__all__ = [
    "CEILING",
    "REST",
    "SUPPORT",
    "WALL",
    "RoomStructure",
    "detect_structure",
    "point_spacing",
    "surface_noise",
]

REST, SUPPORT, CEILING, WALL = 0, 1, 2, 3
_SAMPLE = 20000  # points sampled for scale statistics: medians settle long before that


def _sample(points: np.ndarray, count: int) -> np.ndarray:
    step = max(1, points.shape[0] // count)
    return points[::step]


def point_spacing(points: Any) -> float:
    """Median distance from a point to its nearest neighbour (metres), over a sample of the points.

    Args:
        points: (N, 3) coordinates, N >= 2.

    Returns:
        The spacing; 0 only when (almost) all points coincide.
    """
    points = as_points(points, min_count=2).astype(np.float64)
    distances, _ = knn(points, 2, query=_sample(points, _SAMPLE))
    spacing = float(np.median(distances[:, 1]))
    if spacing == 0.0:  # duplicated points (e.g. a mesh with seams): take the nearest distinct neighbour
        positive = distances[:, 1][distances[:, 1] > 0]
        spacing = float(np.median(positive)) if positive.size else 0.0
    return spacing


def surface_noise(points: Any, k: int = 16) -> float:
    """Median distance of points to the least-squares plane of their k nearest neighbours (metres).

    A measure of the sensor's depth noise (a few mm for a Kinect at 1 m, ~0 for a mesh), used
    with the spacing to set plane inlier distances.

    Args:
        points: (N, 3) coordinates, N > k.
        k: neighbours per local plane.
    """
    points = as_points(points, min_count=4).astype(np.float64)
    k = min(k, points.shape[0] - 1)
    query = _sample(points, 4000)
    _, neighbours = knn(points, k, query=query)
    local = points[neighbours]
    centred = local - local.mean(axis=1, keepdims=True)
    # the smallest eigenvalue of the local covariance is the mean squared distance to the plane
    eigenvalues = np.linalg.eigvalsh(np.einsum("qki,qkj->qij", centred, centred) / k)
    return float(np.median(np.sqrt(np.maximum(eigenvalues[:, 0], 0.0))))


@dataclass
class RoomStructure:
    """The supporting surfaces of a scan, found by `detect_structure`.

    Attributes:
        labels: (N,) int8 per point: 0 rest (objects), 1 support, 2 ceiling, 3 wall.
        up: (3,) unit gravity direction (pointing up), the support's normal when one was found,
            else the prior.
        support: (4,) plane a x + b y + c z + d = 0 of the floor / table / ground with (a, b, c)
            = `up`, or None.
        ceiling: (4,) ceiling plane (normal = `up`), or None.
        walls: (W, 4) wall planes, normals pointing into the scan.
        spacing: point spacing, metres.
        distance: plane inlier distance used, metres.
    """

    labels: np.ndarray
    up: np.ndarray
    support: np.ndarray | None
    ceiling: np.ndarray | None
    walls: np.ndarray
    spacing: float
    distance: float

    @property
    def rest(self) -> np.ndarray:
        """(N,) bool: points that are not structure (the part worth segmenting)."""
        return self.labels == REST

    def heights(self, points: np.ndarray) -> np.ndarray:
        """(N,) float64 height of `points` above the support plane (along `up` when there is none), metres."""
        points = np.asarray(points, dtype=np.float64)
        if self.support is None:
            return points @ self.up
        return points @ self.support[:3] + self.support[3]


def detect_structure(
    points: Any,
    normals: Any,
    up_hint: Any = (0.0, 0.0, 1.0),
    max_tilt: float = 30.0,
    spacing: float | None = None,
    distance: float | None = None,
    min_support_fraction: float = 0.05,
    walls: bool = True,
    ceiling: bool = True,
    min_ceiling_height: float = 1.8,
    min_wall_span: float = 0.5,
    min_wall_height: float = 1.0,
    behind_tolerance: float = 0.1,
    max_walls: int = 16,
    support_behind: bool = False,
    seed: int = 0,
) -> RoomStructure:
    """Find the support (floor / table / ground), ceiling and walls of a scan (module docs).

    Args:
        points: (N, 3) coordinates, metres.
        normals: (N, 3) unit normals (sign ignored).
        up_hint: (3,) prior up direction (+z for ScanNet, S3DIS and LiDAR; -y for depth-camera frames).
        max_tilt: largest angle in degrees between the true up axis and `up_hint` (30 for
            gravity-aligned files, 60 for a hand-held camera looking down at a table).
        spacing: point spacing (metres); measured when None.
        distance: plane inlier distance (metres); None = max(2 x spacing, 3 x surface noise).
        min_support_fraction: a support plane must cover this fraction of the scan's occupied
            area (cells of 4 x spacing), 5 % by default: a floor or a table top, not a box lid.
        walls: look for walls.
        ceiling: look for a ceiling.
        min_ceiling_height: the ceiling lies at least this far above the support, metres (1.8 m:
            a person stands under it; tabletop and LiDAR scans never have one).
        min_wall_span: a wall piece spans at least this fraction of the scan's height above the
            support (the 95th height percentile), so box sides on a table are not walls.
        min_wall_height: and at least this many metres (1 m: a room's wall, never a box side on a
            table, whatever the scan's height).
        behind_tolerance: a wall piece may have at most this many points behind it, as a
            fraction of its own inliers (windows, doors, registration noise).
        max_walls: most wall planes examined.
        support_behind: count support points behind a wall piece too. On for depth-camera frames,
            where the table behind a box front shows that it is no wall (the box's hidden back
            would not); off for rooms, where floor seen through a doorway would veto the wall.
        seed: seed of the plane hypotheses.

    Returns:
        `RoomStructure`. A scan too small or too flat for any plane gets all-rest labels.
    """
    points = as_points(points, min_count=1).astype(np.float64)
    normals = np.asarray(normals, dtype=np.float64)
    n = points.shape[0]
    if normals.shape != points.shape or not np.isfinite(normals).all():
        raise ParameterError(f"normals must be finite with shape {points.shape}, got {normals.shape}")
    hint = as_vector3(up_hint, "up_hint").astype(np.float64)
    if not np.linalg.norm(hint) > 0:
        raise ParameterError("up_hint must be a non-zero vector")
    hint = hint / np.linalg.norm(hint)
    max_tilt = positive_float(max_tilt, "max_tilt")
    if max_tilt > 90:
        raise ParameterError(f"max_tilt must be <= 90 degrees, got {max_tilt!r}")
    labels = np.zeros(n, dtype=np.int8)
    empty = RoomStructure(labels, hint, None, None, np.zeros((0, 4)), 0.0, 0.0)
    if n < 16:
        return empty
    spacing = point_spacing(points) if spacing is None else positive_float(spacing, "spacing")
    if spacing == 0.0:
        return empty
    if distance is None:
        distance = max(2.0 * spacing, 3.0 * surface_noise(points))
    distance = positive_float(distance, "distance")
    cell = 4.0 * spacing

    support, up = _find_support(points, normals, hint, max_tilt, distance, cell, min_support_fraction, seed)
    if support is None:
        return RoomStructure(labels, hint, None, None, np.zeros((0, 4)), spacing, distance)
    height = points @ support[:3] + support[3]
    horizontal = np.abs(normals @ up) >= np.cos(np.radians(30.0))
    # the support: its inliers, whatever lies beneath it, and horizontal points just above it
    # (uneven floors, carpets), within twice the inlier distance
    labels[(height <= distance) | (horizontal & (height <= 2.0 * distance))] = SUPPORT

    ceiling_plane = None
    if ceiling:
        ceiling_plane = _find_ceiling(points, normals, up, height, labels, distance, cell, min_ceiling_height, seed)
        if ceiling_plane is not None:
            above = points @ ceiling_plane[:3] + ceiling_plane[3]
            labels[(labels == REST) & (above >= -distance)] = CEILING

    wall_planes = np.zeros((0, 4))
    if walls:
        wall_planes = _find_walls(
            points,
            normals,
            up,
            height,
            labels,
            distance,
            cell,
            min_wall_span,
            min_wall_height,
            behind_tolerance,
            max_walls,
            support_behind,
            seed,
        )
    return RoomStructure(labels, up, support, ceiling_plane, wall_planes, spacing, distance)


def _find_support(
    points: np.ndarray,
    normals: np.ndarray,
    hint: np.ndarray,
    max_tilt: float,
    distance: float,
    cell: float,
    min_fraction: float,
    seed: int,
) -> tuple[np.ndarray | None, np.ndarray]:
    """The lowest large plane facing up: (plane with unit normal = up, up), or (None, hint)."""
    facing = np.flatnonzero(np.abs(normals @ hint) >= np.cos(np.radians(max_tilt)))
    if facing.shape[0] < 3:
        return None, hint
    total_cells = _occupied_cells(points, cell)
    models, plane_of = detect_planes(
        points[facing], normals[facing], distance=distance, max_angle=20.0, max_planes=6, voxel=cell, seed=seed
    )
    best, best_key = None, None
    for index, model in enumerate(models):
        normal, offset = _facing(model, hint)
        if normal @ hint < np.cos(np.radians(max_tilt)):
            continue
        area = _occupied_cells(points[facing[plane_of == index]], cell)
        if area < min_fraction * total_cells:
            continue
        below = np.count_nonzero(points @ normal + offset < -2.0 * distance)
        # the lowest large plane: fewest points beneath it, ties to the larger plane
        key = (below // max(1, points.shape[0] // 100), -area)
        if best_key is None or key < best_key:
            best, best_key = np.append(normal, offset), key
    if best is None:
        return None, hint
    return best, best[:3].copy()


def _find_ceiling(
    points: np.ndarray,
    normals: np.ndarray,
    up: np.ndarray,
    height: np.ndarray,
    labels: np.ndarray,
    distance: float,
    cell: float,
    min_height: float,
    seed: int,
) -> np.ndarray | None:
    """(4,) a horizontal plane (normal = up) high above the support with (almost) nothing above it, or None."""
    high = np.flatnonzero(
        (labels == REST) & (height >= min_height) & (np.abs(normals @ up) >= np.cos(np.radians(20.0)))
    )
    if high.shape[0] < 3:
        return None
    models, plane_of = detect_planes(
        points[high], normals[high], distance=distance, max_angle=20.0, max_planes=3, voxel=cell, seed=seed
    )
    support_cells = _occupied_cells(points[labels == SUPPORT], cell)
    for index, model in enumerate(models):
        normal, offset = _facing(model, up)
        if normal @ up < np.cos(np.radians(10.0)):
            continue
        above = np.count_nonzero(points @ normal + offset > 2.0 * distance)
        area = _occupied_cells(points[high[plane_of == index]], cell)
        if above <= 0.01 * points.shape[0] and area >= 0.1 * support_cells:
            return np.append(normal, offset)
    return None


def _find_walls(
    points: np.ndarray,
    normals: np.ndarray,
    up: np.ndarray,
    height: np.ndarray,
    labels: np.ndarray,
    distance: float,
    cell: float,
    min_span: float,
    min_height: float,
    behind_tolerance: float,
    max_walls: int,
    support_behind: bool,
    seed: int,
) -> np.ndarray:
    """Mark wall pieces in `labels` (in place); returns the (W, 4) wall planes, normals inward."""
    rest = labels == REST
    vertical = np.flatnonzero(rest & (np.abs(normals @ up) <= np.sin(np.radians(30.0))))
    if vertical.shape[0] < 3 or not rest.any():
        return np.zeros((0, 4))
    scan_height = float(np.percentile(height[rest], 95))
    models, plane_of = detect_planes(
        points[vertical],
        normals[vertical],
        distance=distance,
        max_angle=30.0,
        max_planes=max_walls,
        min_fraction=0.005,
        voxel=cell,
        seed=seed,
    )
    gap = max(0.3, 10.0 * cell)  # door openings and occluded stretches split a wall into pieces
    bin_width = max(0.25, 5.0 * cell)
    found = []
    for index, model in enumerate(models):
        if abs(model[:3] @ up) > 0.2:
            continue  # a slanted plane (a sloped roof, a reclined backrest), not a wall
        along_axis = np.cross(up, model[:3])
        along_axis /= np.linalg.norm(along_axis)
        signed = points @ model[:3] + model[3]
        along = points @ along_axis
        inliers = vertical[plane_of == index]
        for piece in _runs(along[inliers], gap):
            members = inliers[piece]
            low, high = float(height[members].min()), float(height[members].max())
            if high - low < max(min_span * scan_height, min_height):
                continue
            start, stop = float(along[members].min()), float(along[members].max())
            column = (along >= start) & (along <= stop) & (height <= high)
            if support_behind:
                column &= height >= low - 2.0 * distance
            else:
                column &= (labels == REST) & (height >= low)
            positive = column & (signed > 2.0 * distance)
            negative = column & (signed < -2.0 * distance)
            outward = 1.0 if np.count_nonzero(positive) < np.count_nonzero(negative) else -1.0
            behind = positive if outward > 0 else negative
            # judged stretch by stretch: where the scan goes on behind the plane (a doorway into
            # a corridor, a partition) that stretch is no wall, the rest of the piece still is
            edges = np.arange(start, stop + bin_width, bin_width)
            inlier_count = np.histogram(along[members], edges)[0]
            behind_count = np.histogram(along[behind], edges)[0]
            closed = (inlier_count > 0) & (behind_count <= behind_tolerance * inlier_count)
            if not closed.any():
                continue
            stretch = np.clip(np.searchsorted(edges, along, side="right") - 1, 0, closed.shape[0] - 1)
            within = (along >= start - distance) & (along <= stop + distance) & closed[stretch]
            wall = within & ((np.abs(signed) <= distance) | (outward * signed > 0)) & (labels == REST)
            labels[wall] = WALL
            found.append(-outward * model)
    return np.array(found, dtype=np.float64).reshape(-1, 4)


def _facing(model: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, float]:
    """The plane (4,) as (unit normal, offset) with the normal on `direction`'s side."""
    sign = 1.0 if model[:3] @ direction >= 0 else -1.0
    return sign * model[:3], float(sign * model[3])


def _runs(values: np.ndarray, gap: float) -> list[np.ndarray]:
    """Positions of `values` grouped into runs whose sorted neighbours are at most `gap` apart."""
    order = np.argsort(values, kind="stable")
    breaks = np.flatnonzero(np.diff(values[order]) > gap) + 1
    return np.split(order, breaks)


def _occupied_cells(points: np.ndarray, cell: float) -> int:
    """Number of distinct cubic cells of edge `cell` the points occupy (an area measure for surfaces)."""
    if points.shape[0] == 0:
        return 0
    keys = np.floor(points / cell).astype(np.int64)
    return int(np.unique(keys, axis=0).shape[0])
