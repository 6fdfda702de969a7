"""PointINS's unsupervised instances: BFS clustering of offset-shifted points (supplementary §C).

A network pre-trained by `labelfree3d pretrain` predicts for every point an offset towards its
instance centre. Points shifted by their offsets crowd around the centres, and the connected
components of the radius graph of the shifted points (what a BFS finds) are the instances. The
network runs on the whole scan, as in pre-training; the room structure is taken out before
clustering like every other segmenter's (`Segmenter.segment`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labelfree3d.errors import ParameterError
from labelfree3d.geometry import voxel_downsample
from labelfree3d.segment.base import MAX_COUNT, Segmenter, check_range, register_segmenter
from labelfree3d.structures import InstanceMasks, Scene

__all__ = ["PointINSOffsetsSegmenter"]


@register_segmenter("pointins_offsets")
@dataclass
class PointINSOffsetsSegmenter(Segmenter):
    """Instances as connected components of offset-shifted points.

    Attributes:
        checkpoint: `model.safetensors` of a PointINS pre-training run (required).
        radius: link two shifted points closer than this, metres; None = 1.5 voxel edges of the
            network (the paper gives no value).
        min_points: clusters with fewer input points get no mask.
        voxel_size: cluster one shifted point per voxel of this edge (metres), then give every
            point its voxel's cluster; None = the network's voxel size.
        device: torch device of the forward pass.
    """

    checkpoint: str = ""
    radius: float | None = None
    min_points: int = 100
    voxel_size: float | None = None
    device: str = "cpu"

    requires_model = True
    score_rule = (
        "compactness of the cluster's shifted points, exp(-mean distance to their mean / radius) "
        "(`offset_instance_scores`): clusters whose points agree on one centre rank first"
    )

    def validate(self) -> None:
        if not self.checkpoint:
            raise ParameterError(f"{self.name} needs checkpoint=RUN/model.safetensors (written by labelfree3d pretrain)")
        if self.radius is not None:
            check_range(self.name, "radius", self.radius, 0.0, 100.0, open_low=True)
        check_range(self.name, "min_points", self.min_points, 1, MAX_COUNT)
        if self.voxel_size is not None:
            check_range(self.name, "voxel_size", self.voxel_size, 0.0, 10.0, open_low=True)

    def _network_voxel(self) -> float:
        from labelfree3d.features.pointins import load_pointins

        return float(load_pointins(self.checkpoint, self.device).input_spec.voxel_size)

    def segment(self, scene: Scene, features: Any = None) -> InstanceMasks:
        """Masks of `scene`: the network's offsets on the whole scan, clustered on what is not structure."""
        from labelfree3d.features.pointins import pointins_outputs

        if features is None:
            features = pointins_outputs(scene, self.checkpoint, self.device).offsets
        return super().segment(scene, features)

    def segment_points(self, scene: Scene, features: Any = None) -> InstanceMasks:
        """Cluster `scene`'s points shifted by `features`, their (N, 3) offsets in metres."""
        from labelfree3d.models.pointins.regularize import offset_instance_scores, offset_instances

        offsets = np.asarray(features, dtype=np.float64) if features is not None else None
        if offsets is None or offsets.shape != (scene.num_points, 3):
            raise ParameterError(f"{self.name}: offsets must be ({scene.num_points}, 3), got {None if offsets is None else offsets.shape}")
        voxel = self.voxel_size if self.voxel_size is not None else self._network_voxel()
        radius = self.radius if self.radius is not None else 1.5 * voxel
        shifted = scene.points.astype(np.float64) + offsets
        grid = voxel_downsample(scene.points, voxel, features=shifted)
        labels = offset_instances(grid.points, grid.features - grid.points, radius, min_size=1)
        point_labels = labels[grid.inverse]
        sizes = np.bincount(point_labels[point_labels >= 0], minlength=int(labels.max(initial=-1)) + 1)
        small = sizes < self.min_points
        point_labels = np.where((point_labels >= 0) & ~small[np.maximum(point_labels, 0)], point_labels, -1)
        if not (point_labels >= 0).any():
            return InstanceMasks.empty(scene.num_points)
        _, compact = np.unique(point_labels[point_labels >= 0], return_inverse=True)
        final = np.full(scene.num_points, -1, dtype=np.int64)
        final[point_labels >= 0] = compact
        scores = offset_instance_scores(scene.points, offsets, final, scale=radius)
        return InstanceMasks.from_labels(final, np.asarray(scores, dtype=np.float64))
