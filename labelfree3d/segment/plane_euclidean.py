"""The classic PCL tabletop pipeline: remove the supporting planes, then Euclidean clustering."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelfree3d.geometry import euclidean_clustering, point_spacing, voxel_downsample
from labelfree3d.segment.base import MAX_COUNT, Segmenter, check_range, register_segmenter
from labelfree3d.segment.structure import scene_scale
from labelfree3d.structures import InstanceMasks, Scene


@register_segmenter("plane_euclidean")
@dataclass
class PlaneEuclideanSegmenter(Segmenter):
    """Structure removal + Euclidean clustering (the "plane removal + Euclidean clustering" baseline).

    The supporting planes (floor, walls, ceiling, table top) are those of the shared structure
    detector (`labelfree3d.geometry.detect_structure`, run by `Segmenter.segment`). What is left
    is down-sampled when it is dense, clustered by connectivity within `tolerance`, and mapped back
    to full resolution.

    Attributes:
        voxel_size: down-sampling voxel edge, metres; None = from the scan's spacing so that about
            60,000 points are left (`ScanScale.voxel_for`), 0 = none.
        tolerance: largest gap inside a cluster, metres; None = `tolerance_spacings` x the median
            nearest-neighbour spacing of the (down-sampled) cloud, so it adapts to a 2 mm Kinect
            cloud as to a 3 cm room subsample.
        tolerance_spacings: the gap in point spacings when `tolerance` is None (PCL's tabletop
            tutorial uses 2 cm at ~1 cm spacing).
        min_cluster_points: smallest cluster kept, in (down-sampled) points.
    """

    voxel_size: float | None = None
    tolerance: float | None = None
    tolerance_spacings: float = 2.5
    min_cluster_points: int = 20

    score_rule = (
        "size / (size + 10 * min_cluster_points), in down-sampled points: larger clusters are "
        "more likely whole objects than fragments"
    )

    def validate(self) -> None:
        if self.voxel_size is not None:
            check_range(self.name, "voxel_size", self.voxel_size, 0.0, 1.0)
        if self.tolerance is not None:
            check_range(self.name, "tolerance", self.tolerance, 0.0, 10.0, open_low=True)
        check_range(self.name, "tolerance_spacings", self.tolerance_spacings, 1.0, 100.0)
        check_range(self.name, "min_cluster_points", self.min_cluster_points, 1, MAX_COUNT)

    def segment_points(self, scene: Scene, features: np.ndarray | None = None) -> InstanceMasks:
        """Masks of the Euclidean clusters of `scene`'s points; `features` are not used."""
        if scene.num_points < 2:
            return InstanceMasks.empty(scene.num_points)
        voxel = scene_scale(scene).voxel_for() if self.voxel_size is None else self.voxel_size
        if voxel > 0:
            grid = voxel_downsample(scene.points, voxel)
            points, inverse = grid.points, grid.inverse
        else:
            points, inverse = scene.points, np.arange(scene.num_points)
        if points.shape[0] < 2:
            return InstanceMasks.empty(scene.num_points)
        tolerance = self.tolerance
        if tolerance is None:
            spacing = point_spacing(points)
            if spacing <= 0:  # (almost) every point in one place: one cluster, no radius graph
                return InstanceMasks.from_labels(np.zeros(scene.num_points, dtype=np.int64), np.ones(1))
            tolerance = self.tolerance_spacings * spacing
        labels = euclidean_clustering(points, tolerance, min_size=self.min_cluster_points)
        coarse = InstanceMasks.from_labels(labels)
        sizes = coarse.sizes.astype(np.float64)
        coarse = coarse.with_scores(sizes / (sizes + 10.0 * self.min_cluster_points))
        return coarse.lift(inverse)
