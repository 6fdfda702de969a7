"""Surface reconstruction for users without one: TSDF fusion of RGB-D frames, Poisson for clouds.

* `TSDFFusion` integrates posed RGB-D frames into Open3D's hashed TSDF volume (`VoxelBlockGrid`:
  Curless & Levoy's running weighted average of truncated signed distances, as in KinectFusion
  and BundleFusion, which made ScanNet's meshes) and extracts a coloured triangle mesh by
  marching cubes. Open3D's legacy `ScalableTSDFVolume` would do the same, but in open3d-cpu 0.20
  it returned empty meshes and voxel clouds for every input tried (real 7-Scenes frames and a
  synthetic plane), so the current tensor API is used.
* `poisson_reconstruction` meshes a LiDAR-like point cloud with screened Poisson reconstruction
  (Open3D's `create_from_point_cloud_poisson`), as UnScene3D does for ARKitScenes' LiDAR scans
  (unscene3d.md §4, "Datasets") before building its mesh-graph primitives.
* `point_to_mesh_distances` / `frames_to_mesh_distances` measure how well frames and a mesh agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelfree3d.errors import InputError, ParameterError
from labelfree3d.lift.camera import backproject_frame, check_intrinsics, check_pose, world_to_camera
from labelfree3d.structures import RGBDFrame, Scene

__all__ = [
    "TSDFFusion",
    "FusionReport",
    "TSDFMemoryEstimate",
    "poisson_reconstruction",
    "point_to_mesh_distances",
    "frames_to_mesh_distances",
]

_BLOCK_RESOLUTION = 16  # voxels per hash-block edge (Open3D's default)
_INITIAL_BLOCKS = 1_000  # initial hash capacity (~80 KB per block is allocated up front); it grows as needed

Progress = Callable[[int], Any]  # called with the number of frames just processed (for progress bars)

# How Open3D's VoxelBlockGrid allocates (open3d 0.18-0.20, CPU), which the memory estimate follows:
# each frame touches the blocks met by 4 evenly spaced samples over [d - trunc, d + trunc] along the
# rays of every 4th pixel row and column with 0 < d < max_depth (`compute_unique_block_coordinates`);
# a block holds 16^3 voxels of float32 attributes (tsdf, weight, 3 colour channels); the hash map
# starts at `_INITIAL_BLOCKS` and doubles its capacity when full, holding old and new buffers while it
# rehashes (1.5 x capacity at the peak). On top come Open3D's import (65 MB measured) and the mesh
# marching cubes extracts, about 160 vertices per touched block on 7-Scenes at every voxel edge
# tried (4, 2, 1, 0.6 cm), 12 KB per block in Open3D's and our copies of it. docs/benchmarks.md
# ("Memory and scale") compares this model with measured peaks.
_TOUCH_PIXEL_STRIDE = 4
_TOUCH_SAMPLES = 4
_REHASH_PEAK = 1.5
_OPEN3D_IMPORT_BYTES = 65 * 2**20
_MESH_BYTES_PER_BLOCK = 12 * 2**10
# frames whose rays are simulated exactly; longer sequences are sampled evenly and extrapolated
_ESTIMATE_FRAMES = 200


@dataclass
class FusionReport:
    """What a fusion run did: frames integrated and skipped (no pose / no valid depth)."""

    integrated: int = 0
    skipped_no_pose: int = 0
    skipped_no_depth: int = 0


@dataclass
class TSDFMemoryEstimate:
    """Predicted memory of a TSDF fusion run (`TSDFFusion.estimate_memory`).

    Attributes:
        blocks: hash blocks the frames touch (16^3 voxels each).
        capacity: hash-map capacity Open3D grows to for them (blocks).
        bytes: estimated peak bytes allocated by the fusion on top of the current RSS.
        frames: frames the estimate covers.
    """

    blocks: int
    capacity: int
    bytes: float
    frames: int


@dataclass
class TSDFFusion:
    """TSDF integration of posed RGB-D frames into a coloured triangle mesh (Open3D).

    Attributes:
        voxel_length: TSDF voxel edge, metres. 2 cm matches the 2 cm voxelisation Segment3D and
            Mask3D train at (segment3d.md, supplementary A) and keeps 100 frames fast; 1 cm
            gives finer meshes at ~4x the vertices.
        sdf_trunc: truncation distance of the signed distance, metres; 4 voxels is the usual
            choice (thinner truncation holes thin objects, thicker blurs them).
        max_depth: depth readings beyond this are not integrated, metres: Kinect-class depth
            noise grows with the square of the distance (≈ 2.5 cm at 3 m).
        min_weight: marching cubes only meshes voxels whose accumulated weight (number of
            frames that observed them) is at least this; 1 keeps everything seen once, higher
            values drop surfaces seen in a single frame (Open3D's own default is 3).
        color: integrate RGB too (vertex colours of the mesh).
    """

    voxel_length: float = 0.02
    sdf_trunc: float = 0.08
    max_depth: float = 4.0
    min_weight: float = 1.0
    color: bool = True

    def __post_init__(self) -> None:
        for key in ("voxel_length", "sdf_trunc", "max_depth"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ParameterError(f"TSDFFusion.{key} must be a positive number of metres, got {value!r}")
        if not (isinstance(self.min_weight, (int, float)) and 1 <= self.min_weight < 1e6):
            raise ParameterError(
                f"TSDFFusion.min_weight must be a number of observations >= 1, got {self.min_weight!r}"
            )
        if self.sdf_trunc < self.voxel_length:
            raise ParameterError(
                f"TSDFFusion.sdf_trunc ({self.sdf_trunc}) must be at least voxel_length ({self.voxel_length})"
            )

    def block_bytes(self) -> int:
        """Bytes of one hash block: 16^3 voxels x float32 (tsdf, weight and, with colour, 3 channels)."""
        channels = 5 if self.color else 2
        return _BLOCK_RESOLUTION**3 * 4 * channels

    def estimate_memory(self, frames: Sequence[RGBDFrame], voxel_length: float | None = None) -> TSDFMemoryEstimate:
        """Predict the peak memory of `fuse(frames)` without allocating the volume.

        Replays the block allocation of Open3D's VoxelBlockGrid (see `_TOUCH_SAMPLES`) on the
        frames' depth: exact for up to 200 frames; longer sequences are sampled evenly and the
        blocks new in the second half of the sample, per sampled frame, are extrapolated to the
        frames in between (an over-estimate: neighbouring frames overlap more than sampled ones).

        Args:
            frames: the posed frames `fuse` would integrate (frames without pose are skipped).
            voxel_length: voxel edge to estimate for, metres (default: this fusion's).

        Returns:
            `TSDFMemoryEstimate`; its `bytes` are on top of the process's RSS before fusing.
        """
        voxel = float(self.voxel_length if voxel_length is None else voxel_length)
        rays = self._frame_rays(frames)
        blocks = _touched_blocks(rays, voxel * _BLOCK_RESOLUTION, self.sdf_trunc, self.max_depth, len(frames))
        capacity = _hash_capacity(blocks)
        return TSDFMemoryEstimate(blocks, capacity, self._peak_bytes(blocks), len(frames))

    def _peak_bytes(self, blocks: int) -> float:
        """Peak bytes of a fusion that touches `blocks` hash blocks (the model above `_TOUCH_PIXEL_STRIDE`)."""
        capacity = _hash_capacity(blocks)
        volume = (_REHASH_PEAK if capacity > _INITIAL_BLOCKS else 1.0) * capacity * self.block_bytes()
        return _OPEN3D_IMPORT_BYTES + volume + _MESH_BYTES_PER_BLOCK * blocks

    def suggest_voxel(self, frames: Sequence[RGBDFrame], allowed: float) -> float | None:
        """The finest voxel edge (2 significant digits, metres) whose estimate stays within `allowed` bytes.

        Returns None when even a voxel as large as the truncation distance does not fit.
        """
        rays = self._frame_rays(frames)

        def needed(voxel: float) -> float:
            return self._peak_bytes(_touched_blocks(rays, voxel * _BLOCK_RESOLUTION, self.sdf_trunc, self.max_depth, len(frames)))

        low, high = float(self.voxel_length), float(self.sdf_trunc)
        if needed(high) > allowed:
            return None
        for _ in range(12):  # bisection in log space: the estimate falls as the voxel grows
            middle = float(np.sqrt(low * high))
            low, high = (middle, high) if needed(middle) > allowed else (low, middle)
        # round up to two significant digits; block grids alias, so confirm the rounded edge still fits
        unit = 10.0 ** (np.floor(np.log10(high)) - 1)
        suggestion = float(np.ceil(high / unit - 1e-9) * unit)
        for _ in range(20):
            if suggestion >= self.sdf_trunc or needed(suggestion) <= allowed:
                break
            suggestion += unit
        return float(f"{min(suggestion, float(self.sdf_trunc)):.2g}")

    def check_memory(self, frames: Sequence[RGBDFrame], what: str = "TSDF fusion") -> TSDFMemoryEstimate:
        """Raise `MemoryBudgetError` (naming a voxel edge that fits) when `fuse(frames)` would exceed the budget.

        Returns:
            The estimate, when it fits.
        """
        from labelfree3d.memory import check_memory, current_rss, fits, memory_budget

        estimate = self.estimate_memory(frames)
        if fits(estimate.bytes):
            return estimate
        budget, _ = memory_budget()
        allowed = (budget or 0) - current_rss()
        voxel = self.suggest_voxel(frames, allowed) if allowed > 0 else None
        if voxel is not None:
            suggestion = f"--voxel {voxel:g} or larger would fit"
        else:
            suggestion = "no voxel up to the truncation distance fits: lower --trunc or --max-depth, or raise --frame-stride"
        check_memory(
            f"{what} at --voxel {self.voxel_length:g} ({estimate.frames} frames, {estimate.blocks} blocks of "
            f"{_BLOCK_RESOLUTION}^3 voxels)",
            estimate.bytes,
            suggestion,
        )
        return estimate

    def _frame_rays(self, frames: Sequence[RGBDFrame]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(camera origin (3,), ray directions at unit depth (R, 3), depths (R,)) of the sampled frames' touch rays."""
        count = len(frames)
        positions = range(count) if count <= _ESTIMATE_FRAMES else np.linspace(0, count - 1, _ESTIMATE_FRAMES).round().astype(int)
        rays = []
        for position in positions:
            frame = frames[int(position)]
            pose = None if frame.camera_to_world is None else np.asarray(frame.camera_to_world, dtype=np.float64)
            if pose is None or pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
                continue
            k = np.asarray(frame.intrinsics, dtype=np.float64)
            depth = np.asarray(frame.depth, dtype=np.float64)[::_TOUCH_PIXEL_STRIDE, ::_TOUCH_PIXEL_STRIDE]
            rows, columns = np.nonzero((depth > 0) & (depth < self.max_depth))
            if rows.size == 0 or k.shape != (3, 3) or k[0, 0] <= 0 or k[1, 1] <= 0:
                continue
            u, v = columns * _TOUCH_PIXEL_STRIDE, rows * _TOUCH_PIXEL_STRIDE
            directions = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones(u.shape[0])], axis=1)
            rays.append((pose[:3, 3], directions @ pose[:3, :3].T, depth[rows, columns]))
        return rays

    def fuse(
        self,
        frames: Iterable[RGBDFrame],
        name: str = "fused",
        progress: Progress | None = None,
        source: str | None = None,
        memory_check: bool = True,
    ) -> tuple[Scene, FusionReport]:
        """Integrate `frames` and extract the mesh.

        Args:
            frames: posed RGB-D frames (depth metres, `camera_to_world`); frames without a pose
                or without valid depth are skipped and counted.
            name: name of the returned scene.
            progress: called with 1 after each frame (e.g. a rich progress bar's advance).
            source: the sequence's folder, named in error messages.
            memory_check: False when the caller already ran `check_memory` on these frames.

        When `frames` is a sequence (a list, a `FrameSequence`), the volume's memory is estimated
        first (`check_memory`): a request past the memory budget is refused before any allocation.

        Returns:
            (mesh `Scene` with vertices (N, 3) float32 metres in world coordinates, faces (F, 3),
            vertex colours in [0, 1] when `color`, and `metadata["fusion"]` holding the parameters;
            the `FusionReport`).

        Raises:
            InputError: no frame could be integrated, or the volume holds no surface.
            MemoryBudgetError: the estimated volume does not fit the memory budget.
        """
        if memory_check and isinstance(frames, Sequence):
            self.check_memory(frames, f"TSDF fusion of {source}" if source else "TSDF fusion")
        import open3d as o3d
        import open3d.core as o3c

        # Open3D's VoxelBlockGrid (its current reconstruction system); see the module docs for
        # why not the legacy ScalableTSDFVolume
        names, dtypes, channels = ["tsdf", "weight"], [o3c.float32, o3c.float32], [1, 1]
        if self.color:
            names.append("color"), dtypes.append(o3c.float32), channels.append(3)
        grid = o3d.t.geometry.VoxelBlockGrid(
            attr_names=names,
            attr_dtypes=dtypes,
            attr_channels=channels,
            voxel_size=float(self.voxel_length),
            block_resolution=_BLOCK_RESOLUTION,
            block_count=_INITIAL_BLOCKS,
            device=o3c.Device("CPU:0"),
        )
        trunc_multiplier = float(self.sdf_trunc / self.voxel_length)
        report = FusionReport()
        for frame in frames:
            if progress is not None:
                progress(1)
            if frame.camera_to_world is None:
                report.skipped_no_pose += 1
                continue
            depth_array = np.ascontiguousarray(frame.depth, dtype=np.float32)
            if not np.any(depth_array > 0):
                report.skipped_no_depth += 1
                continue
            k = o3c.Tensor(check_intrinsics(frame.intrinsics, frame.name), o3c.float64)
            extrinsic = o3c.Tensor(world_to_camera(check_pose(frame.camera_to_world, frame.name)), o3c.float64)
            depth = o3d.t.geometry.Image(o3c.Tensor(depth_array))
            blocks = grid.compute_unique_block_coordinates(
                depth, k, extrinsic, 1.0, float(self.max_depth), trunc_multiplier
            )
            if self.color and frame.color is not None:
                color = o3d.t.geometry.Image(
                    o3c.Tensor(np.ascontiguousarray(frame.color[..., :3], dtype=np.float32) / 255.0)
                )
                grid.integrate(blocks, depth, color, k, k, extrinsic, 1.0, float(self.max_depth), trunc_multiplier)
            else:
                grid.integrate(blocks, depth, k, extrinsic, 1.0, float(self.max_depth), trunc_multiplier)
            report.integrated += 1
        if report.integrated == 0:
            raise InputError(
                f"no frame could be fused ({report.skipped_no_pose} without pose, "
                f"{report.skipped_no_depth} without depth)",
                source,
            )
        # Open3D keeps voxels whose weight is strictly above the threshold: subtract half an
        # observation so that min_weight=1 keeps surfaces seen by a single frame
        mesh = grid.extract_triangle_mesh(weight_threshold=float(self.min_weight) - 0.5)
        vertices = mesh.vertex.positions.numpy().astype(np.float32)
        faces = mesh.triangle.indices.numpy().astype(np.int64)
        if vertices.shape[0] == 0 or faces.shape[0] == 0:
            raise InputError("TSDF fusion produced an empty mesh (check depth units, poses and max_depth)", source)
        colors = None
        if self.color and "colors" in mesh.vertex:
            colors = np.clip(mesh.vertex.colors.numpy().astype(np.float32), 0.0, 1.0)
        vertices, colors, faces = _canonical_order(vertices, colors, faces)
        scene = Scene(points=vertices, colors=colors, faces=faces, name=name)
        scene.metadata["format"] = "tsdf-mesh"
        scene.metadata["fusion"] = (
            f"TSDF voxel {self.voxel_length} m, trunc {self.sdf_trunc} m, max depth {self.max_depth} m, "
            f"{report.integrated} frames"
        )
        return scene, report


def _touched_blocks(
    rays: list[tuple[np.ndarray, np.ndarray, np.ndarray]], block: float, trunc: float, max_depth: float, frames: int
) -> int:
    """Distinct hash blocks of edge `block` metres the rays touch (see `TSDFFusion.estimate_memory`).

    Frame by frame, each frame's blocks de-duplicated before they are kept, so the estimate holds at
    most one int64 per distinct (frame, block) pair: under 80 MB for 100 Kinect frames at any voxel.
    """
    try:
        return _count_touched(rays, block, trunc, max_depth, frames, packed=True)
    except OverflowError:  # blocks more than a million edges from the origin (sub-millimetre voxels, far scans)
        return _count_touched(rays, block, trunc, max_depth, frames, packed=False)


def _count_touched(
    rays: list[tuple[np.ndarray, np.ndarray, np.ndarray]], block: float, trunc: float, max_depth: float, frames: int,
    packed: bool,
) -> int:
    """`_touched_blocks` with keys packed in one int64 (OverflowError when they do not fit) or as 24-byte rows."""
    kept = []
    for origin, directions, depths in rays:
        near = np.maximum(depths - trunc, 0.0)
        far = np.minimum(depths + trunc, max_depth)
        samples = [
            np.floor((origin + (near + (far - near) * (step / (_TOUCH_SAMPLES - 1)))[:, None] * directions) / block)
            for step in range(_TOUCH_SAMPLES)
        ]
        coordinates = np.concatenate(samples).astype(np.int64)
        kept.append(_frame_block_keys(coordinates, packed))
    if not kept:
        return 0
    distinct = _distinct(np.concatenate(kept))
    sampled = len(kept)
    if frames <= sampled or sampled < 2:
        return distinct
    first_half = _distinct(np.concatenate(kept[: sampled // 2]))
    new_per_frame = (distinct - first_half) / (sampled - sampled // 2)
    return int(distinct + new_per_frame * (frames - sampled))


_KEY_BIAS = 2**20  # block coordinates within +-2^20 pack into three 21-bit fields of one int64


def _frame_block_keys(coordinates: np.ndarray, packed: bool) -> np.ndarray:
    """Sorted distinct keys of (B, 3) int64 block coordinates: packed int64, or 24-byte rows when not `packed`."""
    if not packed:
        return np.unique(np.ascontiguousarray(coordinates).view(np.dtype((np.void, 24))).reshape(-1))
    if coordinates.shape[0] and not (-_KEY_BIAS <= int(coordinates.min()) and int(coordinates.max()) < _KEY_BIAS):
        raise OverflowError("block coordinates do not fit 21 bits")
    shifted = coordinates + _KEY_BIAS
    keys = np.sort((shifted[:, 0] << 42) | (shifted[:, 1] << 21) | shifted[:, 2])
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if keys.shape[0] else keys


def _hash_capacity(blocks: int) -> int:
    """Capacity Open3D's block hash map grows to for `blocks` blocks (doubling from `_INITIAL_BLOCKS`)."""
    capacity = _INITIAL_BLOCKS
    while capacity < blocks:
        capacity *= 2
    return capacity


def _distinct(values: np.ndarray) -> int:
    """Number of distinct values (sort and count: numpy 2.4's hash-based `np.unique` is ~100x slower here)."""
    if values.shape[0] == 0:
        return 0
    if values.dtype.kind == "V":
        return int(np.unique(values).shape[0])
    ordered = np.sort(values)
    return 1 + int(np.count_nonzero(ordered[1:] != ordered[:-1]))


def _canonical_order(
    vertices: np.ndarray, colors: np.ndarray | None, faces: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Sort vertices by (x, y, z) and faces by their vertex ids.

    Open3D's hash map visits blocks in thread-dependent order, so the same frames can give the
    same mesh with its vertices permuted; per-vertex predictions are only reusable with the mesh
    they were made on, so the order is made canonical.
    """
    order = np.lexsort((vertices[:, 2], vertices[:, 1], vertices[:, 0]))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    faces = rank[faces]
    faces = faces[np.lexsort((faces[:, 2], faces[:, 1], faces[:, 0]))]
    return vertices[order], None if colors is None else colors[order], faces


def poisson_reconstruction(
    scene: Scene,
    depth: int = 9,
    density_quantile: float = 0.02,
    normal_neighbors: int = 30,
) -> Scene:
    """Screened Poisson surface reconstruction of a point cloud (Open3D), for LiDAR-like scans.

    Args:
        scene: the cloud, metres; its normals are used when present, else estimated from
            `normal_neighbors` nearest neighbours and oriented by a consistent tangent plane walk.
        depth: octree depth of the Poisson solver (9: 512^3 cells over the bounding cube).
        density_quantile: vertices whose Poisson density (support by input points) is in this
            lowest quantile are removed: Poisson closes the surface and invents sheets far from
            any data, which low density marks.
        normal_neighbors: k for normal estimation.

    Returns:
        Mesh `Scene` (vertices, faces; colours copied from the nearest input point when the cloud
        has colours), cropped to the input's bounding box.
    """
    import open3d as o3d
    from scipy.spatial import cKDTree

    if not isinstance(depth, int) or not 4 <= depth <= 12:
        raise ParameterError(f"poisson depth must be an integer in [4, 12], got {depth!r}")
    if not 0.0 <= density_quantile < 1.0:
        raise ParameterError(f"density_quantile must be in [0, 1), got {density_quantile!r}")
    if scene.num_points < 10:
        raise InputError(f"Poisson reconstruction needs at least 10 points, got {scene.num_points}", scene.source)
    plane_normal = _check_surface_spread(scene)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(scene.points.astype(np.float64)))
    try:
        if scene.normals is not None:
            cloud.normals = o3d.utility.Vector3dVector(scene.normals.astype(np.float64))
        else:
            cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(normal_neighbors))
            if plane_normal is not None:  # qhull's Delaunay behind the tangent-plane walk rejects coplanar points
                cloud.orient_normals_to_align_with_direction(plane_normal)
            else:
                cloud.orient_normals_consistent_tangent_plane(min(normal_neighbors, 15))
        mesh, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud, depth=depth)
    except RuntimeError as error:  # Open3D / qhull failures on degenerate clouds: one line, not a traceback
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"Poisson reconstruction failed: {first_line}", scene.source) from error
    densities = np.asarray(densities)
    if density_quantile > 0 and densities.size:
        mesh.remove_vertices_by_mask(densities < np.quantile(densities, density_quantile))
    low, high = (bound.astype(np.float64) for bound in scene.bounds())
    # one octree cell of slack: a flat cloud has a zero-thickness box, which Open3D cannot crop to
    cell = float((high - low).max()) / 2**depth
    mesh = mesh.crop(o3d.geometry.AxisAlignedBoundingBox(low - cell, high + cell))
    mesh.remove_unreferenced_vertices()
    vertices = np.asarray(mesh.vertices, dtype=np.float32)
    faces = np.asarray(mesh.triangles, dtype=np.int64)
    if faces.shape[0] == 0:
        raise InputError("Poisson reconstruction produced an empty mesh", scene.source)
    colors = None
    if scene.colors is not None:
        _, nearest = cKDTree(scene.points).query(vertices, k=1)
        colors = scene.colors[nearest]
    result = Scene(points=vertices, colors=colors, faces=faces, name=scene.name, source=scene.source)
    result.metadata["format"] = "poisson-mesh"
    result.metadata["fusion"] = f"screened Poisson depth {depth}, density quantile {density_quantile}"
    return result


def _check_surface_spread(scene: Scene) -> np.ndarray | None:
    """Raise `InputError` for clouds with no surface to mesh (one point repeated, points on a line).

    Returns:
        The unit normal (3,) of the plane the points lie in when they are coplanar, else None.
    """
    points = scene.points.astype(np.float64)
    centred = points - points.mean(axis=0)
    spread = np.sqrt(np.maximum(np.linalg.eigvalsh(centred.T @ centred / points.shape[0]), 0.0))  # ascending
    largest = float(spread[2])
    if not np.isfinite(largest) or largest <= 1e-9:
        raise InputError(f"cannot mesh a cloud whose {points.shape[0]} points all coincide", scene.source)
    if spread[1] <= 1e-6 * largest:
        raise InputError(f"cannot mesh a cloud whose {points.shape[0]} points lie on one line (no surface)", scene.source)
    if spread[0] <= 1e-6 * largest:
        _, vectors = np.linalg.eigh(centred.T @ centred)
        return vectors[:, 0]
    return None


def point_to_mesh_distances(points: np.ndarray, mesh: Scene) -> np.ndarray:
    """(M,) float32 unsigned distance, metres, from each point to the nearest triangle of `mesh`."""
    import open3d as o3d

    if not mesh.is_mesh:
        raise InputError("the scene has no faces: point-to-mesh distances need a mesh", mesh.source)
    raycasting = o3d.t.geometry.RaycastingScene()
    raycasting.add_triangles(
        o3d.core.Tensor(mesh.points.astype(np.float32)), o3d.core.Tensor(mesh.faces.astype(np.uint32))
    )
    query = o3d.core.Tensor(np.ascontiguousarray(points, dtype=np.float32))
    return raycasting.compute_distance(query).numpy().astype(np.float32)


def frames_to_mesh_distances(
    frames: Iterable[RGBDFrame],
    mesh: Scene,
    pixel_stride: int = 4,
    max_depth: float | None = 4.0,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Back-project each posed frame on its own and measure its points' distance to `mesh`.

    Returns:
        {frame name: (M,) float32 point-to-mesh distances in metres} for frames with a pose.
    """
    distances = {}
    for frame in frames:
        if progress is not None:
            progress(1)
        if frame.camera_to_world is None:
            continue
        cloud = backproject_frame(frame, pixel_stride=pixel_stride, max_depth=max_depth)
        distances[frame.name] = point_to_mesh_distances(cloud.points, mesh)
    return distances
