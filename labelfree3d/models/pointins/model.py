"""The PointINS network: a sparse UNet with a semantic (prototype) head and an offset head.

PointINS (Yang et al., supplementary §A) follows Sonata / DOS: point features are the
concatenation of the last three backbone stages, up-sampled to the input; a projection head
maps them to an embedding compared with K learnable prototypes (the semantic branch), and an
offset head maps them to a 3-D vector from each point towards its instance centre (the offset
branch). Teacher and student share this architecture (`labelfree3d.train.pretrain`).

Our backbone is the project's sparse residual UNet (`SparseResUNet`), not Sonata's Point
Transformer V3: its last three stages are the decoder's stride-4, stride-2 and stride-1 outputs,
which is what `feature_levels=3` concatenates. A UNet rather than an encoder-only network keeps
the pre-trained backbone usable as the Mask3D models' backbone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from labelfree3d.errors import ParameterError
from labelfree3d.models._params import check_int
from labelfree3d.models.backbone import SparseResUNet, SparseUNetConfig, parent_rows
from labelfree3d.models.registry import register_model
from labelfree3d.models.voxelize import InputSpec, SparseBatch

__all__ = ["PointINSHeadConfig", "PointINSConfig", "PointINSOutput", "PointINSNet"]


@dataclass(frozen=True)
class PointINSHeadConfig:
    """Widths of the heads.

    Attributes:
        feature_levels: how many of the backbone's finest stages are concatenated into the point
            features (3: "the last three encoder stages", supplementary §A).
        projection_hidden: hidden width of the semantic projection MLP.
        projection_dim: width of the embedding compared with the prototypes.
        num_prototypes: K prototypes of the semantic branch (DOS; PointINS gives no value for its
            indoor single-dataset runs).
        offset_hidden: hidden width of the offset MLP.
    """

    feature_levels: int = 3
    projection_hidden: int = 512
    projection_dim: int = 256
    num_prototypes: int = 4096
    offset_hidden: int = 128

    def __post_init__(self) -> None:
        check_int(self.feature_levels, "head.feature_levels", 1)
        if self.feature_levels > len(SparseResUNet.strides):
            raise ParameterError(f"head.feature_levels must be at most {len(SparseResUNet.strides)}, got {self.feature_levels}")
        for name in ("projection_hidden", "projection_dim", "num_prototypes", "offset_hidden"):
            check_int(getattr(self, name), f"head.{name}", 1)


@dataclass(frozen=True)
class PointINSConfig:
    """Everything needed to rebuild a PointINS network: input, backbone and heads."""

    input: InputSpec = field(default_factory=InputSpec)
    backbone: SparseUNetConfig = field(default_factory=SparseUNetConfig)
    head: PointINSHeadConfig = field(default_factory=PointINSHeadConfig)


class PointINSOutput(NamedTuple):
    """Per-voxel outputs of one forward pass over a batch of V voxels.

    Attributes:
        features: (V, F) concatenated multi-scale features (what probes and segmenters use).
        embedding: (V, D) L2-normalised semantic embedding.
        prototype_logits: (V, K) cosine similarity of each embedding with each prototype.
        offsets: (V, 3) predicted offsets towards the instance centre, metres, in the frame of
            the voxel positions the batch was built from.
    """

    features: torch.Tensor
    embedding: torch.Tensor
    prototype_logits: torch.Tensor
    offsets: torch.Tensor


@register_model("pointins")
class PointINSNet(nn.Module):
    """Sparse residual UNet + semantic projection/prototypes + offset head (PointINS, Fig. 3).

    `forward(batch)` returns a `PointINSOutput` over the batch's voxels.
    """

    config_class = PointINSConfig
    model_name = "pointins"

    def __init__(self, config: PointINSConfig | None = None):
        super().__init__()
        self.config = config = config or PointINSConfig()
        self.backbone = SparseResUNet(config.input.channels, config.backbone)
        head = config.head
        widths = self.backbone.level_channels[-head.feature_levels :]
        self.feature_dim = int(sum(widths))
        momentum = config.backbone.bn_momentum
        # The UNet's features leave a ReLU: all positive, they share one dominant direction, and
        # so would every embedding (cosine ~0.999 between random points at initialisation). With
        # identical embeddings Sinkhorn balancing can only return uniform targets and the semantic
        # branch collapses. Batch normalisation of the projector's output (as in BYOL/SimSiam
        # projectors) centres the embeddings over the batch before they are L2-normalised.
        self.projection = nn.Sequential(
            nn.Linear(self.feature_dim, head.projection_hidden),
            nn.BatchNorm1d(head.projection_hidden, momentum=momentum),
            nn.GELU(),
            nn.Linear(head.projection_hidden, head.projection_dim),
            nn.BatchNorm1d(head.projection_dim, affine=False, momentum=momentum),
        )
        self.prototypes = nn.Parameter(nn.functional.normalize(torch.randn(head.num_prototypes, head.projection_dim), dim=1))
        self.offset_head = nn.Sequential(
            nn.Linear(self.feature_dim, head.offset_hidden),
            nn.BatchNorm1d(head.offset_hidden, momentum=momentum),
            nn.ReLU(),
            nn.Linear(head.offset_hidden, 3),
        )

    @property
    def input_spec(self) -> InputSpec:
        """Voxel size and input features the network was built for."""
        return self.config.input

    def point_features(self, batch: SparseBatch) -> torch.Tensor:
        """(V, F) multi-scale features of the batch's voxels: the last stages, each up-sampled by its parent voxel."""
        levels = self.backbone(batch.coords, batch.features, batch.spatial_shape, batch.batch_size)
        fine = levels[-1]
        parts = []
        for level in levels[-self.config.head.feature_levels :]:
            parts.append(level.features if level.stride == 1 else level.features[parent_rows(level, fine.coords, batch.spatial_shape)])
        return torch.cat(parts, dim=1)

    def forward(self, batch: SparseBatch) -> PointINSOutput:
        """Features, embedding, prototype similarities and offsets of every voxel (see `PointINSOutput`)."""
        features = self.point_features(batch)
        embedding = nn.functional.normalize(self.projection(features), dim=1)
        logits = embedding @ nn.functional.normalize(self.prototypes, dim=1).T
        return PointINSOutput(features, embedding, logits, self.offset_head(features))
