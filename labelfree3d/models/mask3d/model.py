"""`MaskTransformer`: the class-agnostic Mask3D-style model of Segment3D, UnScene3D and FreePoint."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from labelfree3d.errors import ParameterError
from labelfree3d.models.backbone import SparseResUNet, SparseUNetConfig
from labelfree3d.models.mask3d.decoder import MaskDecoderConfig, MaskPrediction, MaskTransformerDecoder
from labelfree3d.models.registry import register_model
from labelfree3d.models.voxelize import InputSpec, SparseBatch

__all__ = ["MaskTransformerConfig", "MaskTransformer", "count_parameters"]


@dataclass(frozen=True)
class MaskTransformerConfig:
    """Everything needed to rebuild the model: its input, backbone and decoder settings."""

    input: InputSpec = field(default_factory=InputSpec)
    backbone: SparseUNetConfig = field(default_factory=SparseUNetConfig)
    decoder: MaskDecoderConfig = field(default_factory=MaskDecoderConfig)


@register_model("mask3d")
class MaskTransformer(nn.Module):
    """Sparse residual UNet (spconv) + mask transformer decoder, predicting class-agnostic masks.

    `forward(batch)` takes a `SparseBatch` and returns the decoder's `MaskPrediction`s, the last
    being the answer: per scan, Q objectness logits and (Q, M_b) mask logits over its voxels.
    """

    config_class = MaskTransformerConfig
    model_name = "mask3d"

    def __init__(self, config: MaskTransformerConfig | None = None):
        super().__init__()
        self.config = config = config or MaskTransformerConfig()
        self.backbone = SparseResUNet(config.input.channels, config.backbone)
        self.decoder = MaskTransformerDecoder(self.backbone.level_channels, config.decoder)

    @property
    def input_spec(self) -> InputSpec:
        """Voxel size and input features the model was built for."""
        return self.config.input

    def forward(self, batch: SparseBatch) -> list[MaskPrediction]:
        """Decoder predictions for every step (see `MaskTransformerDecoder.forward`)."""
        segments = None
        if self.config.input.superpoints:
            if batch.segments is None:
                raise ParameterError("this model predicts per superpoint (input.superpoints) but the batch has no voxel segments")
            segments = batch.segments
        levels = self.backbone(batch.coords, batch.features, batch.spatial_shape, batch.batch_size)
        return self.decoder(levels, batch.positions, batch.offsets, batch.spatial_shape, segments)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable parameter counts: total, backbone and decoder (for docs and logs)."""
    inner = getattr(model, "module", model)

    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters() if p.requires_grad)

    return {"total": count(inner), "backbone": count(inner.backbone), "decoder": count(inner.decoder)}



