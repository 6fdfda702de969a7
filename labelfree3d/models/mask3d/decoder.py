"""Class-agnostic mask transformer decoder (Mask3D; Segment3D §3.1).

Queries start at farthest-point-sampled voxel positions: their positional embedding is an MLP of
the Fourier encoding of the position and their content starts at zero (Mask3D's non-parametric
queries). Each decoder layer lets the queries cross-attend to the voxel features of one backbone
scale (optionally masked to the voxels of the query's current mask, Mask2Former's masked
attention), then self-attend, then pass an FFN; the decoder sweeps the chosen scales coarse to fine
`num_decoders` times. Before every layer and after the last, every query is decoded into a mask
embedding and an objectness logit; a query's mask logits over the voxels are the dot product (or
scaled cosine similarity) of its embedding with the per-voxel mask features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from labelfree3d.errors import ParameterError
from labelfree3d.geometry import farthest_point_sampling
from labelfree3d.models._params import check_choice, check_fraction, check_int, check_int_list, check_positive
from labelfree3d.models.backbone import FeatureLevel, parent_rows
from labelfree3d.models.mask3d.positional import FourierPositionalEncoding, normalize_positions

__all__ = ["MaskDecoderConfig", "MaskTransformerDecoder", "MaskPrediction"]


@dataclass(frozen=True)
class MaskDecoderConfig:
    """Transformer decoder settings (defaults: Mask3D's, with Segment3D's 150 queries).

    Attributes:
        hidden_dim: query and mask-feature width (Mask3D: 128).
        num_queries: queries per scan (Segment3D App. A: 150 for both stages).
        num_heads: attention heads (Mask3D: 8).
        dim_feedforward: FFN width (Mask3D: 1024).
        num_decoders: sweeps over `levels` (Mask3D: 3, i.e. 12 layers over 4 scales).
        levels: backbone scales the layers attend to, as indices into the backbone's output
            list (0 = stride 16, 1 = stride 8, 2 = stride 4, 3 = stride 2; Mask3D: 0, 1, 2, 3).
        shared_decoder: reuse the same layer weights in every sweep (Mask3D: true).
        dropout: attention and FFN dropout (Mask3D: 0).
        masked_attention: restrict each query's cross-attention to the voxels its current mask
            covers (Mask2Former / Mask3D); a query whose mask is empty attends everywhere.
        attention_sample_sizes: during training, at most this many voxels of each backbone
            scale 0..3 (strides 16, 8, 4, 2) are attended, drawn at random (Mask3D: 200, 800,
            3200, 12800); empty = all. Evaluation always attends to every voxel.
        gauss_scale: standard deviation of the Fourier frequencies (Mask3D: 1.0).
        mask_similarity: "dot" (Mask3D's implementation) or "cosine" (Segment3D §3.1's wording)
            between a query's mask embedding and the voxel mask features.
        cosine_temperature: with "cosine", logits are cos / temperature, so that sigmoid can
            reach confident values (cos alone spans only [-1, 1]). Not stated in the paper; 0.02
            (logits within +-50) because on the OSD chain check (configs/overfit_osd.yaml, 150
            steps) 0.1 and 0.05 reached AP50 0.2 and 0.05 while 0.02 reached 1.0, as "dot" does.
        spatial_prior: "none" (Mask3D) or "gaussian": every query also predicts a centre (its
            sampled position plus a learned offset) and a radius, and -d^2 / (2 radius^2) of each
            voxel's distance d from that centre is added to its mask logits. Not in any of the
            papers: relative positions in the mask head are CondInst's (Tian et al., ECCV 2020,
            Table 1) and ISBNet's (CVPR 2023) remedy for merged neighbours; here it gives a model
            trained on a few scans a prior that objects are compact (docs/training.md).
        spatial_prior_radius: the radius a query starts with, as a fraction of the scan's
            bounding-box diagonal (then learned per query).
    """

    hidden_dim: int = 128
    num_queries: int = 150
    num_heads: int = 8
    dim_feedforward: int = 1024
    num_decoders: int = 3
    levels: tuple[int, ...] = (0, 1, 2, 3)
    shared_decoder: bool = True
    dropout: float = 0.0
    masked_attention: bool = True
    attention_sample_sizes: tuple[int, ...] = (200, 800, 3200, 12800)
    gauss_scale: float = 1.0
    mask_similarity: str = "dot"
    cosine_temperature: float = 0.02
    spatial_prior: str = "none"
    spatial_prior_radius: float = 0.1

    def __post_init__(self) -> None:
        check_int(self.hidden_dim, "decoder.hidden_dim", 2)
        if self.hidden_dim % 2:
            raise ParameterError(f"decoder.hidden_dim must be even, got {self.hidden_dim}")
        check_int(self.num_queries, "decoder.num_queries", 1)
        check_int(self.num_heads, "decoder.num_heads", 1)
        if self.hidden_dim % self.num_heads:
            raise ParameterError(f"decoder.hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}")
        check_int(self.dim_feedforward, "decoder.dim_feedforward", 1)
        check_int(self.num_decoders, "decoder.num_decoders", 1)
        levels = check_int_list(self.levels, "decoder.levels", minimum=0)
        if not levels or max(levels) > 3:
            raise ParameterError(f"decoder.levels must be non-empty indices in 0..3, got {list(levels)}")
        object.__setattr__(self, "levels", levels)
        sizes = tuple(self.attention_sample_sizes or ())
        if sizes:
            sizes = check_int_list(sizes, "decoder.attention_sample_sizes", 4, 1)
        object.__setattr__(self, "attention_sample_sizes", sizes)
        check_fraction(self.dropout, "decoder.dropout")
        check_positive(self.gauss_scale, "decoder.gauss_scale")
        check_choice(self.mask_similarity, "decoder.mask_similarity", ("dot", "cosine"))
        check_positive(self.cosine_temperature, "decoder.cosine_temperature")
        check_choice(self.spatial_prior, "decoder.spatial_prior", ("none", "gaussian"))
        check_fraction(self.spatial_prior_radius, "decoder.spatial_prior_radius", open_low=True)


@dataclass
class MaskPrediction:
    """Predictions of one decoder step for a batch of B scans.

    Attributes:
        objectness: (B, Q) objectness logits.
        masks: per scan b a (Q, M_b) tensor of mask logits over its voxels.
    """

    objectness: torch.Tensor
    masks: list[torch.Tensor]


class _CrossAttentionLayer(nn.Module):
    """Post-norm cross-attention: queries (+ query pos) attend to memory (+ memory pos)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries, query_pos, memory, memory_pos, blocked):
        attended, _ = self.attention(queries + query_pos, memory + memory_pos, memory, attn_mask=blocked, need_weights=False)
        return self.norm(queries + self.dropout(attended))


class _SelfAttentionLayer(nn.Module):
    """Post-norm self-attention among the queries of each scan."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries, query_pos):
        q = queries + query_pos
        attended, _ = self.attention(q, q, queries, need_weights=False)
        return self.norm(queries + self.dropout(attended))


class _FeedForwardLayer(nn.Module):
    """Post-norm two-layer MLP with a residual connection."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries):
        return self.norm(queries + self.dropout(self.mlp(queries)))


class _ScaleIndex:
    """Where each scan's voxels live at one backbone scale, and each fine voxel's parent there.

    Attributes:
        rows: per scan the (V_lb,) rows of the level's feature tensor that belong to it.
        parent: per scan the (M_b,) local index (into rows[b]) of each stride-1 voxel's parent.
        positions: per scan the (V_lb, 3) mean position (metres) of the fine voxels under each voxel.
    """

    def __init__(self, level: FeatureLevel, fine_coords: torch.Tensor, fine_positions: torch.Tensor, offsets: torch.Tensor, spatial_shape):
        coarse = level.coords.long()
        global_parent = parent_rows(level, fine_coords, spatial_shape)
        batch_size = offsets.shape[0] - 1
        scan = coarse[:, 0]
        local = torch.empty_like(scan)
        self.rows: list[torch.Tensor] = []
        self.parent: list[torch.Tensor] = []
        self.positions: list[torch.Tensor] = []
        for b in range(batch_size):
            rows = torch.nonzero(scan == b, as_tuple=False).squeeze(1)
            local[rows] = torch.arange(rows.shape[0], device=rows.device)
            self.rows.append(rows)
        for b in range(batch_size):
            fine_rows = slice(int(offsets[b]), int(offsets[b + 1]))
            parent = local[global_parent[fine_rows]]
            count = torch.zeros(self.rows[b].shape[0], device=parent.device).index_add_(0, parent, torch.ones_like(parent, dtype=torch.float32))
            summed = torch.zeros(self.rows[b].shape[0], 3, device=parent.device).index_add_(0, parent, fine_positions[fine_rows].float())
            self.parent.append(parent)
            self.positions.append(summed / count.clamp(min=1)[:, None])


class _SpatialFrame:
    """What the Gaussian spatial prior needs per scan (decoder.spatial_prior = "gaussian").

    Attributes:
        query_xyz: (B, Q, 3) sampled query positions in metres.
        positions: per scan the (M_b, 3) voxel positions in metres.
        diagonal: (B,) bounding-box diagonal of each scan in metres (the prior's length unit).
        log_radius: log of the starting radius, as a fraction of the diagonal.
    """

    def __init__(self, query_xyz: torch.Tensor, positions: list[torch.Tensor], diagonal: torch.Tensor, radius: float):
        self.query_xyz = query_xyz
        self.positions = positions
        self.diagonal = diagonal
        self.log_radius = float(np.log(radius))

    def log_prior(self, b: int, shape: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """(Q, P) -d^2 / (2 r^2) of P points (metres) from each query's centre.

        `shape` is the (Q, 4) head output: the centre's offset in diagonals and the change of log radius.
        """
        unit = self.diagonal[b]
        centre = self.query_xyz[b] / unit + shape[:, :3].float()  # in diagonals
        radius = torch.exp(self.log_radius + shape[:, 3].float()).clamp(min=1e-3)
        squared = torch.cdist(centre, points.float() / unit).square()
        return (-squared / (2 * radius[:, None].square())).to(shape.dtype)


def _pool_to_parents(values: torch.Tensor, parent: torch.Tensor, num_parents: int) -> torch.Tensor:
    """(Q, M) per-fine-voxel values averaged into (Q, num_parents) coarse voxels."""
    summed = torch.zeros(values.shape[0], num_parents, device=values.device, dtype=values.dtype).index_add_(1, parent, values)
    count = torch.zeros(num_parents, device=values.device, dtype=values.dtype).index_add_(0, parent, torch.ones_like(parent, dtype=values.dtype))
    return summed / count.clamp(min=1)


class MaskTransformerDecoder(nn.Module):
    """Queries -> (objectness logit, mask logits over voxels) per decoder step.

    Args:
        level_channels: widths of the backbone's five levels, coarsest first.
        config: `MaskDecoderConfig`.
    """

    def __init__(self, level_channels: tuple[int, ...], config: MaskDecoderConfig | None = None):
        super().__init__()
        self.config = config = config or MaskDecoderConfig()
        dim = config.hidden_dim
        self.positional = FourierPositionalEncoding(dim, config.gauss_scale)
        self.query_projection = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.mask_features = nn.Linear(level_channels[-1], dim)
        self.level_projections = nn.ModuleList(nn.Linear(level_channels[level], dim) for level in config.levels)
        layer_sets = 1 if config.shared_decoder else config.num_decoders
        count = layer_sets * len(config.levels)
        self.cross_attention = nn.ModuleList(_CrossAttentionLayer(dim, config.num_heads, config.dropout) for _ in range(count))
        self.self_attention = nn.ModuleList(_SelfAttentionLayer(dim, config.num_heads, config.dropout) for _ in range(count))
        self.feed_forward = nn.ModuleList(_FeedForwardLayer(dim, config.dim_feedforward, config.dropout) for _ in range(count))
        self.output_norm = nn.LayerNorm(dim)
        self.mask_embedding = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.objectness = nn.Linear(dim, 1)
        if config.spatial_prior == "gaussian":
            # (dx, dy, dz, log radius) per query; zero-initialised, so every query starts at its
            # sampled position with the configured radius
            self.spatial_head = nn.Linear(dim, 4)
            nn.init.zeros_(self.spatial_head.weight)
            nn.init.zeros_(self.spatial_head.bias)

    # ------------------------------------------------------------------ helpers
    def _query_positions(self, positions: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """(B, Q, 3) farthest-point-sampled voxel positions per scan (repeated when M_b < Q)."""
        q = self.config.num_queries
        chosen = []
        for b in range(offsets.shape[0] - 1):
            scan = positions[int(offsets[b]) : int(offsets[b + 1])]
            cloud = scan.detach().float().cpu().numpy()
            picked = farthest_point_sampling(cloud, min(q, cloud.shape[0]), method="exact" if cloud.shape[0] < 2048 else "bucket")
            if picked.shape[0] < q:  # tiny scans: cycle through the voxels so that every query has a position
                picked = np.resize(picked, q)
            chosen.append(scan[torch.from_numpy(picked).to(scan.device)])
        return torch.stack(chosen)

    def _predict(
        self,
        queries: torch.Tensor,
        mask_features: list[torch.Tensor],
        segments: list[torch.Tensor] | None = None,
        spatial: _SpatialFrame | None = None,
    ) -> MaskPrediction:
        decoded = self.output_norm(queries)
        embedding = self.mask_embedding(decoded)  # (B, Q, D)
        objectness = self.objectness(decoded).squeeze(-1)
        shape = self.spatial_head(decoded) if spatial is not None else None  # (B, Q, 4)
        masks = []
        for b, features in enumerate(mask_features):
            query_embedding = embedding[b]
            positions = spatial.positions[b] if spatial is not None else None
            if segments is not None:
                # one logit per superpoint, repeated on its voxels: masks take or leave whole superpoints
                segment = segments[b]
                count = int(segment.max()) + 1 if segment.numel() else 0
                pooled = _pool_to_parents(features.T, segment, count).T  # (S_b, D)
                logits = self._similarity(query_embedding, pooled)
                if spatial is not None:
                    centroids = _pool_to_parents(positions.T, segment, count).T
                    logits = logits + spatial.log_prior(b, shape[b], centroids)
                masks.append(logits[:, segment])
                continue
            logits = self._similarity(query_embedding, features)
            if spatial is not None:
                logits = logits + spatial.log_prior(b, shape[b], positions)
            masks.append(logits)
        return MaskPrediction(objectness, masks)

    def _similarity(self, query_embedding: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """(Q, M) mask logits of Q query embeddings against M feature rows."""
        if self.config.mask_similarity == "cosine":
            logits = nn.functional.normalize(query_embedding, dim=-1) @ nn.functional.normalize(features, dim=-1).T
            return logits / self.config.cosine_temperature
        return query_embedding @ features.T

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        levels: list[FeatureLevel],
        positions: torch.Tensor,
        offsets: torch.Tensor,
        spatial_shape,
        segments: list[torch.Tensor] | None = None,
    ) -> list[MaskPrediction]:
        """Run the decoder.

        Args:
            levels: backbone outputs, coarsest first; the last (stride 1) is row-aligned with the input voxels.
            positions: (V, 3) voxel positions in metres (for queries and positional encodings).
            offsets: (B + 1,) scan boundaries in the stacked voxel rows.
            spatial_shape: grid extent of the batch.
            segments: per scan the (M_b,) superpoint of each voxel (0..S_b-1); masks are then
                predicted per superpoint and repeated on its voxels. None: per voxel.

        Returns:
            One `MaskPrediction` per decoder step: before each layer, then after the last
            (num_decoders * len(levels) + 1 in all); the last is the model's answer.
        """
        config = self.config
        batch_size = offsets.shape[0] - 1
        fine = levels[-1]
        rows = [slice(int(offsets[b]), int(offsets[b + 1])) for b in range(batch_size)]
        mask_features_all = self.mask_features(fine.features)
        mask_features = [mask_features_all[r] for r in rows]
        low = torch.stack([positions[r].min(dim=0).values for r in rows]).float()  # (B, 3)
        high = torch.stack([positions[r].max(dim=0).values for r in rows]).float()

        query_xyz = self._query_positions(positions, offsets)
        spatial = None
        if config.spatial_prior == "gaussian":
            diagonal = (high - low).norm(dim=1).clamp(min=1e-6)
            scan_positions = [positions[r].float() for r in rows]
            spatial = _SpatialFrame(query_xyz.float(), scan_positions, diagonal, config.spatial_prior_radius)
        query_pos = self.query_projection(self.positional(normalize_positions(query_xyz.float(), low[:, None], high[:, None])))
        queries = torch.zeros_like(query_pos)

        scales = [_ScaleIndex(levels[level], fine.coords, positions, offsets, spatial_shape) for level in config.levels]
        memory = []  # per level: (B, K, D) features, (B, K, D) positional encodings, (B, K) padding, per-scan sampled ids
        for i, (level, scale) in enumerate(zip(config.levels, scales)):
            projected = self.level_projections[i](levels[level].features)
            limit = config.attention_sample_sizes[level] if (self.training and config.attention_sample_sizes) else None
            memory.append(self._gather_memory(projected, scale, low, high, limit))

        predictions: list[MaskPrediction] = []
        layer = 0
        for sweep in range(config.num_decoders):
            for i in range(len(config.levels)):
                prediction = self._predict(queries, mask_features, segments, spatial)
                predictions.append(prediction)
                features, encodings, padding, sampled = memory[i]
                blocked = self._blocked(prediction, scales[i], sampled, padding)
                index = i if config.shared_decoder else layer
                queries = self.cross_attention[index](queries, query_pos, features, encodings, blocked)
                queries = self.self_attention[index](queries, query_pos)
                queries = self.feed_forward[index](queries)
                layer += 1
        predictions.append(self._predict(queries, mask_features, segments, spatial))
        return predictions

    def _gather_memory(self, projected, scale: _ScaleIndex, low, high, limit):
        """Pad the (optionally sub-sampled) voxels of each scan at one level into (B, K, D)."""
        batch_size = len(scale.rows)
        sampled = []
        for b in range(batch_size):
            count = scale.rows[b].shape[0]
            if limit is not None and count > limit:
                sampled.append(torch.randperm(count, device=projected.device)[:limit])
            else:
                sampled.append(torch.arange(count, device=projected.device))
        k = max(s.shape[0] for s in sampled)
        dim = projected.shape[1]
        features = projected.new_zeros(batch_size, k, dim)
        encodings = projected.new_zeros(batch_size, k, dim)
        padding = torch.ones(batch_size, k, dtype=torch.bool, device=projected.device)
        for b, ids in enumerate(sampled):
            n = ids.shape[0]
            features[b, :n] = projected[scale.rows[b][ids]]
            normalized = normalize_positions(scale.positions[b][ids], low[b], high[b])
            encodings[b, :n] = self.positional(normalized).to(encodings.dtype)
            padding[b, :n] = False
        return features, encodings, padding, sampled

    def _blocked(self, prediction: MaskPrediction, scale: _ScaleIndex, sampled, padding) -> torch.Tensor:
        """(B * heads, Q, K) bool attention mask: True where a query may not look."""
        batch_size, k = padding.shape
        q = self.config.num_queries
        blocked = padding[:, None, :].expand(batch_size, q, k).clone()
        if self.config.masked_attention:
            for b in range(batch_size):
                with torch.no_grad():
                    heat = prediction.masks[b].detach().float().sigmoid()
                    pooled = _pool_to_parents(heat, scale.parent[b], scale.rows[b].shape[0])[:, sampled[b]]
                    outside = pooled < 0.5
                    # a query whose mask covers none of these voxels attends to all of them instead
                    outside[outside.all(dim=1)] = False
                blocked[b, :, : sampled[b].shape[0]] = outside
        return blocked.repeat_interleave(self.config.num_heads, dim=0)
