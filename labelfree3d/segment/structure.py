"""Room structure and scale of a `Scene`: the bridge from `labelfree3d.geometry.structure` to the methods.

Every training-free method segments the part of a scan that is not floor, walls, ceiling or
table (`rest_of_scene`), measures distances in the scan's own point spacing (`scene_scale`), and
ranks structure-like masks last (`structure_score_factor`). The renders use the same detector
to cut the ceiling from top views. One detection per scene object is cached, so a method, its
score rule and a render never disagree about what the structure is.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from labelfree3d.geometry import (
    REST,
    RoomStructure,
    detect_structure,
    estimate_point_normals,
    mesh_vertex_normals,
    point_spacing,
)
from labelfree3d.structures import InstanceMasks, Scene

__all__ = [
    "SCAN_KINDS",
    "ScanScale",
    "gravity_prior",
    "scan_kind",
    "scene_normals",
    "scene_scale",
    "scene_structure",
    "structure_score_factor",
]

# formats whose coordinates are a depth camera's frame (x right, y down, z forward)
_CAMERA_FORMATS = ("osd", "rgbd")
_LIDAR_FORMATS = ("semantickitti", "semantickitti_npy", "las")
SCAN_KINDS = ("room_mesh", "room_cloud", "tabletop_frame", "lidar_sweep")

_structure_cache: weakref.WeakKeyDictionary[Scene, RoomStructure] = weakref.WeakKeyDictionary()
_scale_cache: weakref.WeakKeyDictionary[Scene, ScanScale] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ScanScale:
    """Size facts of a scan that scale-aware defaults derive from.

    Attributes:
        spacing: median nearest-neighbour distance, metres.
        extent: (3,) bounding-box edge lengths, metres.
        num_points: N.
    """

    spacing: float
    extent: np.ndarray
    num_points: int

    def voxel_for(self, target_points: int = 60000) -> float:
        """Voxel edge (metres) that leaves about `target_points` of a surface scan, never below the spacing.

        Surfaces hold points in proportion to area, so the count falls with the square of the voxel
        edge: edge = spacing x sqrt(N / target). 0 when the scan already has at most `target_points`.
        """
        if self.num_points <= target_points or self.spacing <= 0:
            return 0.0
        return float(self.spacing * np.sqrt(self.num_points / target_points))


def gravity_prior(scene: Scene) -> tuple[np.ndarray, float]:
    """(up direction prior (3,), largest tilt in degrees) from what the reader knows of the frame.

    Depth-camera clouds (organized PCD such as OSD, RGB-D frames) are in the camera frame with y
    pointing down, and a hand-held camera looks down at a table by up to ~60°; everything else the
    readers produce (ScanNet and its exports, S3DIS, LiDAR, LAS, our synthetic scenes) is z-up.
    """
    if "pixel_index" in scene.metadata or scene.metadata.get("format") in _CAMERA_FORMATS:
        return np.array([0.0, -1.0, 0.0]), 60.0
    return np.array([0.0, 0.0, 1.0]), 30.0


def scene_normals(scene: Scene) -> np.ndarray:
    """(N, 3) float64 unit normals: the scene's own, a mesh's area-weighted vertex normals, else PCA (16 neighbours)."""
    if scene.normals is not None:
        return scene.normals.astype(np.float64)
    if scene.is_mesh:
        return mesh_vertex_normals(scene.points, scene.faces).astype(np.float64)
    if scene.num_points < 4:
        return np.tile([0.0, 0.0, 1.0], (scene.num_points, 1))
    return estimate_point_normals(scene.points, k=min(16, scene.num_points - 1), orientation="none").astype(np.float64)


def scene_scale(scene: Scene) -> ScanScale:
    """The scan's spacing, extent and size (cached per scene object)."""
    cached = _scale_cache.get(scene)
    if cached is None:
        points = scene.points
        spacing = point_spacing(points) if scene.num_points >= 2 else 0.0
        extent = (points.max(axis=0) - points.min(axis=0)).astype(np.float64) if scene.num_points else np.zeros(3)
        cached = ScanScale(spacing, extent, scene.num_points)
        _scale_cache[scene] = cached
    return cached


def scene_structure(scene: Scene) -> RoomStructure:
    """Support, ceiling and walls of the scan (`labelfree3d.geometry.detect_structure`), cached per scene object.

    LiDAR sweeps get the ground only: a street has no walls that enclose it, and building
    facades are instances some benchmarks count.
    """
    cached = _structure_cache.get(scene)
    if cached is None:
        up, tilt = gravity_prior(scene)
        open_scan = scene.metadata.get("format") in _LIDAR_FORMATS
        spacing = scene_scale(scene).spacing
        if scene.num_points < 16 or spacing <= 0:
            labels = np.zeros(scene.num_points, dtype=np.int8)
            cached = RoomStructure(labels, up, None, None, np.zeros((0, 4)), spacing, 0.0)
        else:
            cached = detect_structure(
                scene.points,
                scene_normals(scene),
                up_hint=up,
                max_tilt=tilt,
                spacing=spacing,
                walls=not open_scan,
                ceiling=not open_scan,
                support_behind=bool(up[1] < 0),
            )
        _structure_cache[scene] = cached
    return cached


def scan_kind(scene: Scene) -> str:
    """What kind of scan this is: "room_mesh", "room_cloud", "tabletop_frame" or "lidar_sweep".

    By the frame and extent: camera-frame clouds, and z-up scans under 2 m across, are tabletop
    frames; LiDAR formats (or z-up clouds wider than 30 m) are sweeps; other z-up scans are rooms,
    meshes or clouds.
    """
    fmt = scene.metadata.get("format")
    up, _ = gravity_prior(scene)
    if up[1] < 0:
        return "tabletop_frame"
    extent = float(scene_scale(scene).extent[:2].max()) if scene.num_points else 0.0
    if fmt in ("semantickitti", "semantickitti_npy") or extent > 30.0:
        return "lidar_sweep"
    if extent < 2.0:  # a z-up scan smaller than any room: a tabletop or a single object
        return "tabletop_frame"
    return "room_mesh" if scene.is_mesh else "room_cloud"


def structure_score_factor(masks: InstanceMasks, scene: Scene) -> np.ndarray:
    """(K,) factor in [0, 1] that ranks structure-like masks below compact objects.

    factor = (1 - s) x (1 - e), with s the fraction of the mask's points that are structure
    (floor, walls, ceiling, table) and e = clip((r - 0.5) / 0.4, 0, 1) for r the mask's horizontal
    extent over the scan's (the larger of the two horizontal bounding-box ratios): a mask spanning
    more than 90 % of the scan across is the room, not an object in it; up to half is untouched.
    """
    k = len(masks)
    if k == 0:
        return np.zeros(0)
    structure = scene_structure(scene)
    on_structure = (structure.labels != REST).astype(np.float64)
    sizes = np.maximum(masks.sizes, 1).astype(np.float64)
    rows = masks.mask_ids
    structure_fraction = np.bincount(rows, on_structure[masks.indices], minlength=k) / sizes
    up = structure.up
    first = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
    first /= np.linalg.norm(first)
    second = np.cross(up, first)
    plane = np.stack([scene.points @ first, scene.points @ second], axis=1)
    span = np.maximum(plane.max(axis=0) - plane.min(axis=0), 1e-9)
    coordinates = plane[masks.indices]
    high = np.full((k, 2), -np.inf)
    low = np.full((k, 2), np.inf)
    np.maximum.at(high, rows, coordinates)
    np.minimum.at(low, rows, coordinates)
    ratio = np.where(masks.sizes[:, None] > 0, (high - low) / span, 0.0).max(axis=1)
    extent_penalty = np.clip((ratio - 0.5) / 0.4, 0.0, 1.0)
    return (1.0 - structure_fraction) * (1.0 - extent_penalty)
