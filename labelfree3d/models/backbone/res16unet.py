"""A Res16UNet34C-like sparse residual UNet on spconv, returning features at five scales.

Res16UNet34C (MinkowskiEngine's model zoo) is the backbone of Mask3D, UnScene3D (§3.3) and
Segment3D (App. A): a stem convolution, four stride-2 encoder stages of residual basic blocks,
four transposed-convolution decoder stages with skip concatenation, all sparse. This version uses
spconv 2.x: submanifold 3x3x3 convolutions inside stages (they keep the active voxel set), a 2x2x2
stride-2 `SparseConv3d` to go down and the matching `SparseInverseConv3d` to come back up, which
restores exactly the voxels of the finer level, so skip features are concatenated row by row.

Widths and depths are configurable; the defaults are Res16UNet34C's
(planes 32-64-128-256 | 256-128-96-96, blocks 2-3-4-6 | 2-2-2-2, stem width 32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from labelfree3d.errors import ParameterError
from labelfree3d.models._params import check_fraction, check_int, check_int_list
from labelfree3d.models.spconv_compat import import_spconv

spconv = import_spconv()

__all__ = ["SparseUNetConfig", "SparseResUNet", "FeatureLevel", "parent_rows"]


@dataclass(frozen=True)
class SparseUNetConfig:
    """Widths and depths of the sparse residual UNet.

    Attributes:
        init_dim: width of the stem convolution (Res16UNet34C: 32).
        planes: 8 widths, encoder stages 1-4 then decoder stages 1-4 (Res16UNet34C:
            32, 64, 128, 256, 256, 128, 96, 96).
        layers: 8 numbers of residual basic blocks per stage (Res16UNet34C: 2, 3, 4, 6, 2, 2, 2, 2).
        stem_kernel_size: kernel of the stem convolution; the papers do not state it, 3 keeps the
            stem as cheap as the other submanifold convolutions.
        bn_momentum: BatchNorm running-statistics momentum (0.02 as in Mask3D's backbone
            configuration; torch's default is 0.1).
    """

    init_dim: int = 32
    planes: tuple[int, ...] = (32, 64, 128, 256, 256, 128, 96, 96)
    layers: tuple[int, ...] = (2, 3, 4, 6, 2, 2, 2, 2)
    stem_kernel_size: int = 3
    bn_momentum: float = 0.02

    def __post_init__(self) -> None:
        check_int(self.init_dim, "backbone.init_dim", 1)
        object.__setattr__(self, "planes", check_int_list(self.planes, "backbone.planes", 8, 1))
        object.__setattr__(self, "layers", check_int_list(self.layers, "backbone.layers", 8, 1))
        check_int(self.stem_kernel_size, "backbone.stem_kernel_size", 1)
        if self.stem_kernel_size % 2 == 0:
            raise ParameterError(f"backbone.stem_kernel_size must be odd, got {self.stem_kernel_size}")
        check_fraction(self.bn_momentum, "backbone.bn_momentum", open_low=True)


class FeatureLevel(NamedTuple):
    """Backbone output at one scale.

    Attributes:
        features: (V_l, C_l) float features of the active voxels at this scale.
        coords: (V_l, 4) int32 [scan index, x, y, z] coordinates in units of this scale's voxels.
        stride: voxel edge at this scale in input voxels (16, 8, 4, 2 or 1).
    """

    features: torch.Tensor
    coords: torch.Tensor
    stride: int


class _ResidualBlock(nn.Module):
    """Basic residual block: two 3x3x3 submanifold convolutions with BatchNorm and ReLU.

    The shortcut is the identity, or a 1x1x1 convolution (a per-voxel linear map) when the
    width changes, as in ResNet's basic block.
    """

    def __init__(self, in_channels: int, out_channels: int, indice_key: str, bn_momentum: float):
        super().__init__()
        self.conv1 = spconv.SubMConv3d(in_channels, out_channels, 3, bias=False, indice_key=indice_key)
        self.norm1 = nn.BatchNorm1d(out_channels, momentum=bn_momentum)
        self.conv2 = spconv.SubMConv3d(out_channels, out_channels, 3, bias=False, indice_key=indice_key)
        self.norm2 = nn.BatchNorm1d(out_channels, momentum=bn_momentum)
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Linear(in_channels, out_channels, bias=False), nn.BatchNorm1d(out_channels, momentum=bn_momentum))

    def forward(self, x):  # x: spconv.SparseConvTensor
        out = self.conv1(x)
        out = out.replace_feature(torch.relu(self.norm1(out.features)))
        out = self.conv2(out)
        return out.replace_feature(torch.relu(self.norm2(out.features) + self.shortcut(x.features)))


class _Stage(nn.Module):
    """`depth` residual blocks at one resolution (sharing spconv's neighbour maps via indice_key)."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, indice_key: str, bn_momentum: float):
        super().__init__()
        widths = [in_channels] + [out_channels] * depth
        self.blocks = nn.ModuleList(
            _ResidualBlock(widths[i], widths[i + 1], indice_key, bn_momentum) for i in range(depth)
        )

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


class SparseResUNet(nn.Module):
    """Res16UNet34C-like sparse residual UNet (spconv), returning five feature scales.

    Args:
        in_channels: input feature channels C per voxel.
        config: widths and depths (`SparseUNetConfig`).

    `forward(coords, features, spatial_shape, batch_size)` takes (V, 4) int32 [scan, x, y, z]
    coordinates and (V, C) features and returns `FeatureLevel`s from coarsest to finest:
    strides 16 (end of encoder), 8, 4, 2 and 1 (decoder stages). `level_channels` lists their widths.
    """

    strides = (16, 8, 4, 2, 1)

    def __init__(self, in_channels: int, config: SparseUNetConfig | None = None):
        super().__init__()
        self.config = config = config or SparseUNetConfig()
        self.in_channels = check_int(in_channels, "in_channels", 1)
        p, n, momentum = config.planes, config.layers, config.bn_momentum

        def norm_relu(channels: int) -> list[nn.Module]:
            return [nn.BatchNorm1d(channels, momentum=momentum), nn.ReLU()]

        self.stem = spconv.SparseSequential(
            spconv.SubMConv3d(in_channels, config.init_dim, config.stem_kernel_size, bias=False, indice_key="stem"),
            *norm_relu(config.init_dim),
        )
        encoder_in = [config.init_dim, p[0], p[1], p[2]]
        self.down = nn.ModuleList()
        self.encoder = nn.ModuleList()
        for level in range(4):  # level l brings stride 2**l to 2**(l+1)
            self.down.append(
                spconv.SparseSequential(
                    spconv.SparseConv3d(encoder_in[level], encoder_in[level], 2, stride=2, bias=False, indice_key=f"down{level}"),
                    *norm_relu(encoder_in[level]),
                )
            )
            self.encoder.append(_Stage(encoder_in[level], p[level], n[level], f"subm{level + 1}", momentum))
        # decoder stage d goes from stride 2**(4-d) to 2**(3-d) and concatenates the skip there
        skip_channels = [p[2], p[1], p[0], config.init_dim]
        up_in = [p[3], p[4], p[5], p[6]]
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for d in range(4):
            level = 3 - d
            self.up.append(
                spconv.SparseSequential(
                    spconv.SparseInverseConv3d(up_in[d], p[4 + d], 2, bias=False, indice_key=f"down{level}"),
                    *norm_relu(p[4 + d]),
                )
            )
            self.decoder.append(_Stage(p[4 + d] + skip_channels[d], p[4 + d], n[4 + d], f"subm{level}" if level else "stem", momentum))

    @property
    def level_channels(self) -> tuple[int, ...]:
        """Feature widths of the returned levels, coarsest (stride 16) first."""
        p = self.config.planes
        return (p[3], p[4], p[5], p[6], p[7])

    def forward(
        self, coords: torch.Tensor, features: torch.Tensor, spatial_shape: tuple[int, int, int], batch_size: int
    ) -> list[FeatureLevel]:
        """Features at strides 16, 8, 4, 2, 1 (see the class docstring for shapes)."""
        x = spconv.SparseConvTensor(features, coords.int(), list(spatial_shape), batch_size)
        x = self.stem(x)
        skips = [x]
        for down, stage in zip(self.down, self.encoder):
            x = stage(down(x))
            skips.append(x)
        levels = [FeatureLevel(x.features, x.indices, 16)]
        for d, (up, stage) in enumerate(zip(self.up, self.decoder)):
            x = up(x)
            skip = skips[3 - d]
            x = x.replace_feature(torch.cat([x.features, skip.features], dim=1))
            x = stage(x)
            levels.append(FeatureLevel(x.features, x.indices, 2 ** (3 - d)))
        return levels


def parent_rows(level: FeatureLevel, fine_coords: torch.Tensor, spatial_shape) -> torch.Tensor:
    """(V,) row of `level.features` holding each stride-1 voxel's parent (the voxel that covers it at that scale).

    Args:
        level: a backbone output at stride s.
        fine_coords: (V, 4) int [scan, x, y, z] coordinates of the input (stride-1) voxels.
        spatial_shape: grid extent of the batch at stride 1.
    """
    coarse = level.coords.long()
    fine = fine_coords.long()
    stride = level.stride
    extent = [int(-(-s // stride)) + 1 for s in spatial_shape]

    def keys(c: torch.Tensor) -> torch.Tensor:
        return ((c[:, 0] * extent[0] + c[:, 1]) * extent[1] + c[:, 2]) * extent[2] + c[:, 3]

    sorted_keys, order = torch.sort(keys(coarse))
    parent_keys = keys(torch.cat([fine[:, :1], torch.div(fine[:, 1:], stride, rounding_mode="floor")], dim=1))
    found = torch.searchsorted(sorted_keys, parent_keys).clamp_(max=sorted_keys.shape[0] - 1)
    if not torch.equal(sorted_keys[found], parent_keys):
        raise RuntimeError(f"voxels at stride {stride} do not cover every input voxel")  # a backbone bug, not user input
    return order[found]
