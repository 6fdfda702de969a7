"""The work behind `labelfree3d fuse` and `labelfree3d lift`, kept out of the CLI layer.

`fuse_input` reconstructs and writes a mesh; `resolve_lift_input` tells what a `lift` input is
(an RGB-D sequence or organized clouds). Both take a `progress(description, total)` factory
returning an `advance(n)` callable, which the CLI backs with rich progress bars.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labelfree3d.errors import InputError, UnknownFormatError
from labelfree3d.io import detect_format, read_scene, write_scene
from labelfree3d.io.atomic import check_output
from labelfree3d.lift.fusion import (
    TSDFFusion,
    frames_to_mesh_distances,
    point_to_mesh_distances,
    poisson_reconstruction,
)
from labelfree3d.lift.pipeline import ProgressFactory, no_progress
from labelfree3d.structures import Scene

__all__ = ["FuseResult", "fuse_input", "LiftInput", "resolve_lift_input"]


@dataclass
class FuseResult:
    """A written mesh and how it was made.

    Attributes:
        mesh: the reconstructed mesh.
        method: `tsdf` or `poisson`.
        path: where it was written.
        seconds: reconstruction time (reading frames included).
        frames: frames integrated (TSDF).
        distances: frame -> (M,) point-to-mesh distances, metres (only with `check`).
    """

    mesh: Scene
    method: str
    path: Path
    seconds: float
    frames: int = 0
    distances: dict[str, np.ndarray] = field(default_factory=dict)

    def distance_summary(self) -> dict[str, float]:
        """Median / 90th percentile over all checked points, and the worst frame's median (metres)."""
        if not self.distances:
            return {}
        values = np.concatenate(list(self.distances.values()))
        return {
            "median": float(np.median(values)),
            "p90": float(np.quantile(values, 0.9)),
            "worst_frame_median": float(max(np.median(v) for v in self.distances.values())),
            "points": float(values.size),
        }


def fuse_input(
    source: str | Path,
    output: str | Path,
    fusion: TSDFFusion | None = None,
    frame_stride: int = 1,
    poisson_depth: int = 9,
    check: bool = False,
    progress: ProgressFactory = no_progress,
) -> FuseResult:
    """Reconstruct a mesh from an RGB-D sequence (TSDF) or a point cloud (Poisson) and write it.

    Args:
        source: RGB-D sequence folder, or any scan `read_scene` reads (a cloud).
        output: mesh path (.ply).
        fusion: TSDF settings (default `TSDFFusion()`).
        frame_stride: fuse every N-th frame.
        poisson_depth: Poisson octree depth.
        check: back-project every frame independently and measure its distance to the mesh.
    """
    if frame_stride < 1:
        raise InputError(f"--frame-stride must be >= 1, got {frame_stride}")
    check_output(output, inputs=[source])  # before fusing: minutes lost to an output that cannot be written
    scene = read_scene(source)
    started = time.perf_counter()
    if scene.frames is not None and len(scene.frames) > 0 and scene.num_points == 0:
        frames = scene.frames[::frame_stride]
        fusion = fusion or TSDFFusion()
        fusion.check_memory(frames, f"TSDF fusion of {source}")  # before the progress bar appears
        mesh, report = fusion.fuse(
            frames,
            name=scene.name,
            progress=progress("fusing frames (TSDF)", len(frames)),
            source=str(source),
            memory_check=False,
        )
        result = FuseResult(mesh, "tsdf", Path(output), time.perf_counter() - started, frames=report.integrated)
        if check:
            result.distances = frames_to_mesh_distances(
                frames, mesh, progress=progress("checking frames against the mesh", len(frames))
            )
    else:
        mesh = poisson_reconstruction(scene, depth=poisson_depth)
        result = FuseResult(mesh, "poisson", Path(output), time.perf_counter() - started)
        if check:
            result.distances = {scene.name: point_to_mesh_distances(scene.points, mesh)}
    result.path = write_scene(mesh, output)
    return result


@dataclass
class LiftInput:
    """What `labelfree3d lift` was given: an RGB-D sequence, or organized cloud files."""

    kind: str  # "sequence" or "organized"
    sequence: Scene | None = None
    clouds: list[Path] = field(default_factory=list)


def resolve_lift_input(path: str | Path) -> LiftInput:
    """Classify a `lift` input: RGB-D sequence folder, one organized cloud, or a folder of them.

    Raises:
        InputError: neither (e.g. an unorganized cloud, which has no frames to lift from).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path)
    if path.is_dir():
        try:
            fmt: str | None = detect_format(path)
        except UnknownFormatError:
            fmt = None
        if fmt == "rgbd":
            return LiftInput("sequence", sequence=read_scene(path, format="rgbd"))
        if fmt is not None:
            raise InputError(
                f"a {fmt} scan has no frames to lift from; give an RGB-D sequence or organized clouds", path
            )
        clouds = _organized_folder(path)
        if not clouds:
            raise InputError("folder holds neither RGB-D frames nor point-cloud files", path)
        return LiftInput("organized", clouds=clouds)
    detect_format(path)  # unknown file types fail here, naming the file
    return LiftInput("organized", clouds=[path])


def _organized_folder(path: Path) -> list[Path]:
    from labelfree3d.io.scans import is_scan, natural_key

    children = sorted(path.iterdir(), key=lambda p: natural_key(p.name))
    return [child for child in children if child.is_file() and is_scan(child)]
