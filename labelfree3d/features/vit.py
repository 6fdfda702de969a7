"""A minimal Vision Transformer that loads DINO's released checkpoints (no timm needed).

UnScene3D's 2D modality is self-supervised DINO features (unscene3d.md §3.1.1, ref. [3]), the
features CutLER's NCut runs on. DINO's ViTs (facebookresearch/dino, `vision_transformer.py`) are
plain pre-norm ViTs; their state dicts use the names below, which this module reproduces so the
official files load directly:

    cls_token, pos_embed, patch_embed.proj.{weight,bias},
    blocks.<i>.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.{weight,bias}, norm.{weight,bias}

The architecture is read from the state dict (width, depth, patch size; heads = width / 64 as in
every DINO ViT). Inputs of any size whose sides are multiples of the patch size work: the
position embedding is interpolated bicubically, as DINO's `interpolate_pos_encoding` does.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from labelfree3d.errors import InputError

__all__ = ["DinoViT"]


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        out = F.scaled_dot_product_attention(q, k, v)
        keys = k.transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim)), keys


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, keys = self.attn(self.norm1(x))
        x = x + attended
        return x + self.mlp(self.norm2(x)), keys


class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)


class DinoViT(nn.Module):
    """DINO-compatible ViT returning dense patch features.

    Args:
        embed_dim: token width D (384 ViT-S, 768 ViT-B).
        depth: number of blocks.
        heads: attention heads.
        patch_size: patch edge, pixels (8 or 16 for DINO).
        num_positions: patches of the pre-training grid (784 = 28x28 for 224 px / 8 px).
        mlp_ratio: MLP hidden width / D.
        output: `tokens` (final normalised patch tokens) or `keys` (the last block's attention
            keys, the features CutLER and LOST cut on).
    """

    num_prefix_tokens = 1

    def __init__(
        self,
        embed_dim: int = 384,
        depth: int = 12,
        heads: int = 6,
        patch_size: int = 8,
        num_positions: int = 784,
        mlp_ratio: float = 4.0,
        output: str = "tokens",
    ):
        super().__init__()
        if output not in ("tokens", "keys"):
            raise ValueError(f"output must be tokens or keys, got {output!r}")
        self.patch_size = patch_size
        self.output = output
        self.patch_embed = _PatchEmbed(patch_size, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_positions, embed_dim))
        self.blocks = nn.ModuleList(_Block(embed_dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], output: str = "tokens", source: str | None = None) -> DinoViT:
        """Build the architecture a DINO state dict describes and load it.

        Accepts the hub files (`dino_vits8_pretrain.pth`, ...) and full training checkpoints
        (the `teacher` entry, with `module.` / `backbone.` prefixes stripped).
        """
        if "teacher" in state and isinstance(state["teacher"], dict):
            state = state["teacher"]
        state = {re.sub(r"^(module\.)?(backbone\.)?", "", key): value for key, value in state.items()}
        state = {key: value for key, value in state.items() if not key.startswith("head.")}
        try:
            weight = state["patch_embed.proj.weight"]
            positions = state["pos_embed"].shape[1] - 1
        except KeyError as error:
            raise InputError(f"not a DINO ViT state dict (missing {error.args[0]})", source) from error
        embed_dim, patch = int(weight.shape[0]), int(weight.shape[2])
        depth = 1 + max(int(m.group(1)) for key in state if (m := re.match(r"blocks\.(\d+)\.", key)))
        mlp_ratio = state["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim
        model = cls(embed_dim, depth, max(embed_dim // 64, 1), patch, positions, mlp_ratio, output)
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise InputError(
                f"state dict does not fit a DINO ViT ({(str(error).splitlines() or [type(error).__name__])[0][:160]})", source
            ) from error
        return model.eval()

    def _positions(self, grid_h: int, grid_w: int) -> torch.Tensor:
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        side = int(math.isqrt(patch_pos.shape[1]))
        if (grid_h, grid_w) == (side, side):
            return self.pos_embed
        grid = patch_pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        return torch.cat([cls_pos, grid.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)], dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images (H, W multiples of the patch) -> (B, D, H/p, W/p) features."""
        batch, _, height, width = images.shape
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        x = self.patch_embed.proj(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(batch, -1, -1), x], dim=1) + self._positions(grid_h, grid_w)
        keys = x
        for block in self.blocks:
            x, keys = block(x)
        features = self.norm(x) if self.output == "tokens" else keys
        patches = features[:, self.num_prefix_tokens :]
        return patches.transpose(1, 2).reshape(batch, -1, grid_h, grid_w)
