"""Peak-memory model of the training-free segmenters: refuse up front what cannot fit.

A segmentation run allocates, on top of the scan it has read,

    bytes ~ IMPORT_BYTES + PER_POINT_BYTES x N + WORKING_BYTES[method] x M

where IMPORT_BYTES covers the libraries the methods load after the scan is read (scikit-learn,
numba, scipy's sparse graphs), N is the scan's point count (structure detection, masks over every
point, lifting back from voxels) and M the points the method itself works on: the voxels left by
its `voxel_size` (or its automatic voxel), estimated from the scan's spacing as
N x (spacing / voxel)^2 (surface scans hold points in proportion to area, as `ScanScale.voxel_for`
assumes), M = N without voxels, and N for felzenszwalb on meshes (which are used whole). The
structure the methods skip is not subtracted from M, so M is an upper bound. The coefficients are
peak-RSS slopes measured by bench/bench_memory.py on tiled ScanNet rooms (docs/benchmarks.md,
"Memory and scale"), rounded up; methods without a measured working coefficient are checked on
the other two terms alone.
"""

from __future__ import annotations

import math

from labelfree3d.segment.base import Segmenter
from labelfree3d.segment.structure import scene_scale
from labelfree3d.structures import Scene

__all__ = [
    "IMPORT_BYTES",
    "PER_POINT_BYTES",
    "WORKING_BYTES",
    "check_segment_memory",
    "estimate_segment_memory",
    "working_points",
]

# scikit-learn, numba and the graph code imported after reading: 300 MB peak at 100k points
# against 56 MB for reading alone
IMPORT_BYTES = 250 * 2**20
# bytes per input point of everything that scales with N: the peak-RSS slope of `labelfree3d segment`
# at the default voxels from 100k to 2M points, less reading's 61 B (already held at the check):
# felzenszwalb 183, dbscan 81, hdbscan 81
PER_POINT_BYTES = 200.0
# bytes per point the method works on: 2M points with voxel_size=0 (every point worked on) peaked at
# 2,237 MB (felzenszwalb), 2,101 MB (dbscan); hdbscan is taken as dbscan (its 2M-point run did not
# finish in 10 min; at 100k points its working set was below dbscan's)
WORKING_BYTES: dict[str, float] = {
    "felzenszwalb": 800.0,
    "dbscan": 750.0,
    "hdbscan": 750.0,
}


def working_points(segmenter: Segmenter, scene: Scene) -> int:
    """Points (voxels) `segmenter` works on for `scene`: N (spacing / voxel)^2, at most N."""
    n = scene.num_points
    if scene.is_mesh and segmenter.name == "felzenszwalb":
        return n
    scale = scene_scale(scene)
    working_voxel = getattr(segmenter, "working_voxel", None)
    if callable(working_voxel):
        voxel = float(working_voxel(scene))
    elif hasattr(segmenter, "voxel_size"):
        size = getattr(segmenter, "voxel_size")
        voxel = scale.voxel_for() if size is None else float(size)
    else:
        return n
    if voxel <= 0 or scale.spacing <= 0:
        return n
    return int(min(n, math.ceil(n * (scale.spacing / voxel) ** 2)))


def estimate_segment_memory(segmenter: Segmenter, scene: Scene) -> float:
    """Estimated bytes `segmenter.segment(scene)` allocates on top of what the process holds (see the module doc)."""
    working = WORKING_BYTES.get(segmenter.name, 0.0) * working_points(segmenter, scene)
    return IMPORT_BYTES + PER_POINT_BYTES * scene.num_points + working


def check_segment_memory(segmenter: Segmenter, scene: Scene) -> None:
    """Raise `MemoryBudgetError` when segmenting `scene` would exceed the memory budget.

    The message names the estimate, the budget and, for methods with a `voxel_size`, the finest
    voxel edge whose working set would fit.
    """
    from labelfree3d.memory import check_memory, current_rss, fits, memory_budget

    needed = estimate_segment_memory(segmenter, scene)
    if fits(needed):
        return
    budget, _ = memory_budget()
    allowed = (budget or 0) - current_rss() - IMPORT_BYTES - PER_POINT_BYTES * scene.num_points
    per_working = WORKING_BYTES.get(segmenter.name, 0.0)
    spacing = scene_scale(scene).spacing
    suggestion = "the scan alone needs more: split it or down-sample it first"
    if allowed > 0 and per_working > 0 and hasattr(segmenter, "voxel_size") and spacing > 0:
        target = max(int(allowed / per_working), 1)
        voxel = spacing * math.sqrt(scene.num_points / target)
        unit = 10.0 ** (math.floor(math.log10(voxel)) - 1)
        voxel = math.ceil(voxel / unit) * unit  # two significant digits, rounded up
        suggestion = f"--set voxel_size={float(f'{voxel:.2g}'):g} or larger would fit (about {target:,} voxels)"
    check_memory(
        f"{segmenter.name} on {scene.num_points:,} points ({working_points(segmenter, scene):,} worked on)",
        needed,
        suggestion,
    )
