"""PointINS (instance-aware self-supervised pre-training): the network and its offset regularisers."""

from labelfree3d.models.pointins.model import PointINSConfig, PointINSHeadConfig, PointINSNet, PointINSOutput
from labelfree3d.models.pointins.regularize import (
    OffsetPrior,
    SCRResult,
    align_offset_magnitudes,
    offset_instance_scores,
    offset_instances,
    spatial_clustering_targets,
)

__all__ = [
    "OffsetPrior",
    "PointINSConfig",
    "PointINSHeadConfig",
    "PointINSNet",
    "PointINSOutput",
    "SCRResult",
    "align_offset_magnitudes",
    "offset_instance_scores",
    "offset_instances",
    "spatial_clustering_targets",
]
