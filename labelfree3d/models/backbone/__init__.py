"""Sparse-voxel backbones built on spconv (no MinkowskiEngine)."""

from labelfree3d.models.backbone.res16unet import FeatureLevel, SparseResUNet, SparseUNetConfig, parent_rows

__all__ = ["SparseResUNet", "SparseUNetConfig", "FeatureLevel", "parent_rows"]
