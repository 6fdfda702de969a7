"""Surface normals: per face and per vertex of a triangle mesh, and by PCA on point clouds."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from labelfree3d.errors import ParameterError
from labelfree3d.geometry._checks import as_faces, as_points, as_vector3, choice, int_at_least, positive_float

__all__ = ["estimate_point_normals", "face_normals", "mesh_vertex_normals", "orient_normals"]

VERTEX_WEIGHTINGS = ("area", "uniform", "scannet")
ORIENTATIONS = ("auto", "viewpoint", "tangent_plane", "outward", "direction", "none")


def face_normals(points: Any, faces: Any, normalize: bool = True) -> np.ndarray:
    """Normal of every triangle, following the winding order (right-hand rule).

    Args:
        points: (N, 3) vertex coordinates (any length unit).
        faces: (F, 3) vertex indices of each triangle.
        normalize: unit normals if True; otherwise the raw cross products, whose length is twice
            the triangle's area (in squared units of `points`).

    Returns:
        (F, 3) float64 normals; degenerate (zero-area) triangles get a zero vector.
    """
    points = as_points(points).astype(np.float64, copy=False)
    faces = as_faces(faces, points.shape[0])
    corners = points[faces]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    if normalize:
        cross = _normalized(cross)
    return cross


def mesh_vertex_normals(points: Any, faces: Any, weighting: str = "area", normalize: bool = True) -> np.ndarray:
    """Vertex normals of a triangle mesh, accumulated from its faces.

    Args:
        points: (N, 3) vertex coordinates.
        faces: (F, 3) vertex indices of each triangle (consistent winding gives consistent normals).
        weighting: how faces are blended into a vertex normal:
            - "area": sum of the faces' cross products, so larger faces weigh more (the usual
              choice; equal to Open3D's `compute_vertex_normals`);
            - "uniform": mean of the faces' unit normals, every face alike;
            - "scannet": ScanNet's mesh segmentator's computation replayed operation by
              operation in float32: a running mean of unit face normals, updated face by face
              in file order. It is the "uniform" mean up to float32 rounding; its use is
              reproducing ScanNet's superpoints (see `mesh_superpoints`). Degenerate faces,
              which make the C++ tool produce NaN normals, are skipped.
        normalize: scale each normal to unit length. The segmentator does *not*: its edge weights
            are computed from the raw mean, which is shorter than 1 where faces disagree.

    Returns:
        (N, 3) float32 normals; vertices in no (non-degenerate) face get a zero vector.
    """
    weighting = choice(weighting, "weighting", VERTEX_WEIGHTINGS)
    points = as_points(points)
    faces = as_faces(faces, points.shape[0])
    n = points.shape[0]
    if weighting == "scannet":
        normals = _scannet_vertex_normals(
            np.ascontiguousarray(points, dtype=np.float32), np.ascontiguousarray(faces, dtype=np.int64)
        )
    else:
        per_face = face_normals(points, faces, normalize=weighting == "uniform")
        vertex_ids = faces.reshape(-1)
        repeated = np.repeat(per_face, 3, axis=0)  # row 3f+c is face f's normal for its corner c
        # bincount per axis: an unbuffered scatter-add that is several times faster than np.add.at
        normals = np.stack([np.bincount(vertex_ids, repeated[:, a], minlength=n) for a in range(3)], axis=1)
        if weighting == "uniform" and not normalize:
            degree = np.bincount(vertex_ids[np.repeat(np.any(per_face != 0, axis=1), 3)], minlength=n)
            normals /= np.maximum(degree, 1)[:, None]
    if normalize:
        normals = _normalized(np.asarray(normals, dtype=np.float64))
    return np.asarray(normals, dtype=np.float32)


@numba.njit(cache=True, nogil=True)
def _scannet_vertex_normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    # Sequential on purpose: the segmentator blends each face into a running mean in float32,
    # and the rounding of that mean depends on the order faces arrive in.
    n = points.shape[0]
    normals = np.zeros((n, 3), dtype=np.float32)
    counts = np.zeros(n, dtype=np.float32)
    one = np.float32(1.0)
    for f in range(faces.shape[0]):
        i1, i2, i3 = faces[f, 0], faces[f, 1], faces[f, 2]
        ux = points[i2, 0] - points[i1, 0]
        uy = points[i2, 1] - points[i1, 1]
        uz = points[i2, 2] - points[i1, 2]
        vx = points[i3, 0] - points[i1, 0]
        vy = points[i3, 1] - points[i1, 1]
        vz = points[i3, 2] - points[i1, 2]
        cx = uy * vz - uz * vy
        cy = uz * vx - ux * vz
        cz = ux * vy - uy * vx
        length = np.sqrt(cx * cx + cy * cy + cz * cz)
        if not length > 0:
            continue
        cx /= length
        cy /= length
        cz /= length
        for v in (i1, i2, i3):
            t = one / (counts[v] + one)
            s = one - t
            normals[v, 0] = t * cx + s * normals[v, 0]
            normals[v, 1] = t * cy + s * normals[v, 1]
            normals[v, 2] = t * cz + s * normals[v, 2]
            counts[v] += one
    return normals


def estimate_point_normals(
    points: Any,
    k: int = 30,
    radius: float | None = None,
    orientation: str = "auto",
    viewpoint: Any = None,
    direction: Any = (0.0, 0.0, 1.0),
    tangent_k: int = 10,
) -> np.ndarray:
    """Unit normals of a point cloud by PCA of each point's neighbourhood (Open3D), then oriented.

    Args:
        points: (N, 3) coordinates in metres (N >= 3).
        k: neighbours used for the PCA (with `radius`: at most k neighbours within it).
        radius: search radius in metres for a hybrid radius/kNN neighbourhood, or None for pure kNN.
        orientation: how the sign of each normal is chosen, since PCA leaves it arbitrary:
            - "auto": "viewpoint" when `viewpoint` is given, else "tangent_plane";
            - "viewpoint": point towards `viewpoint` (the sensor position; best for a single scan);
            - "tangent_plane": propagate a consistent sign over a minimum spanning tree of the
              `tangent_k`-NN graph (Open3D, Hoppe et al. 1992); good for closed or fused surfaces;
            - "outward": away from the cloud's centroid (objects seen from outside);
            - "direction": positive dot product with `direction` (e.g. +z for floors and tables);
            - "none": the sign PCA happens to give.
        viewpoint: (3,) sensor position in the points' frame, for "viewpoint".
        direction: (3,) reference direction for "direction".
        tangent_k: neighbours of the orientation graph for "tangent_plane".

    Returns:
        (N, 3) float32 unit normals.
    """
    import open3d as o3d

    points = as_points(points, min_count=3)
    k = int_at_least(k, "k", 3)
    if radius is not None:
        radius = positive_float(radius, "radius")
    orientation = choice(orientation, "orientation", ORIENTATIONS)
    if orientation == "auto":
        orientation = "viewpoint" if viewpoint is not None else "tangent_plane"
    if orientation == "viewpoint" and viewpoint is None:
        raise ParameterError("orientation 'viewpoint' needs the viewpoint (sensor position)")

    coordinates = points.astype(np.float64)
    if np.abs(coordinates).max() > 1e4:
        # far from the origin (georeferenced, 1e6 m offsets): Open3D's covariances (sums of
        # squares) and Qhull lose the local geometry there; neither depends on the origin
        coordinates -= coordinates.mean(axis=0)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(coordinates))
    search = (
        o3d.geometry.KDTreeSearchParamKNN(k)
        if radius is None
        else o3d.geometry.KDTreeSearchParamHybrid(radius=radius, max_nn=k)
    )
    cloud.estimate_normals(search)
    if orientation == "tangent_plane":
        try:
            cloud.orient_normals_consistent_tangent_plane(int_at_least(tangent_k, "tangent_k", 3))
            normals = np.asarray(cloud.normals)
        except RuntimeError:  # Qhull rejects degenerate input (flat, collinear, coincident, cospherical)
            normals = _fallback_orientation(coordinates, np.asarray(cloud.normals))
    else:
        normals = np.asarray(cloud.normals)
        if orientation != "none":
            normals = orient_normals(points, normals, orientation, viewpoint=viewpoint, direction=direction)
    return np.asarray(normals, dtype=np.float32)


def orient_normals(
    points: Any, normals: Any, orientation: str, viewpoint: Any = None, direction: Any = (0.0, 0.0, 1.0)
) -> np.ndarray:
    """Flip normals so that they point towards a viewpoint, away from the centroid or along a direction.

    Args:
        points: (N, 3) coordinates.
        normals: (N, 3) normals with arbitrary sign.
        orientation: "viewpoint", "outward" or "direction" (see `estimate_point_normals`).
        viewpoint: (3,) sensor position, for "viewpoint".
        direction: (3,) reference direction, for "direction".

    Returns:
        (N, 3) normals of the input dtype, each either kept or negated.
    """
    orientation = choice(orientation, "orientation", ("viewpoint", "outward", "direction"))
    points = as_points(points)
    normals = as_points(normals, "normals")
    if normals.shape != points.shape:
        raise ParameterError(f"normals have shape {normals.shape}, expected {points.shape}")
    if orientation == "viewpoint":
        if viewpoint is None:
            raise ParameterError("orientation 'viewpoint' needs the viewpoint (sensor position)")
        reference = as_vector3(viewpoint, "viewpoint") - points
    elif orientation == "outward":
        reference = points - points.mean(axis=0)
    else:
        reference = np.broadcast_to(as_vector3(direction, "direction"), points.shape)
    flip = np.einsum("ij,ij->i", normals, reference) < 0
    return np.where(flip[:, None], -normals, normals)


def _fallback_orientation(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """A consistent sign where tangent-plane propagation cannot run (Qhull failed).

    Flat clouds (normals within ~25 degrees of one direction on average) take the sign of their
    dominant normal; others point away from the centroid, right for a sphere or a convex object.
    """
    values, vectors = np.linalg.eigh(normals.T @ normals)
    if values[-1] >= 0.8 * max(float(values.sum()), 1e-300):
        flip = normals @ vectors[:, -1] < 0
        return np.where(flip[:, None], -normals, normals)
    return orient_normals(points, normals, "outward")


def _normalized(vectors: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, length, out=np.zeros_like(vectors), where=length > 0)
