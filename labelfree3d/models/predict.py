"""Inference: a trained mask transformer turned into full-resolution `InstanceMasks`.

Per scan: voxelise at the model's voxel size, run the model, keep the last decoder step. A
query's mask is sigmoid(logits) > 0.5 over voxels, lifted to every point of its voxels; its
confidence is c = c_mask * c_obj (Segment3D §3.2), c_mask the mean sigmoid over the points inside
the mask and c_obj the sigmoid of the objectness logit. Optional Segment3D post-processing follows
(superpoint smoothing, DBSCAN split). Scans with more voxels than `max_voxels` are processed in
overlapping horizontal tiles whose masks are merged where they agree on the overlap.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from labelfree3d.errors import ParameterError
from labelfree3d.models._params import check_fraction, check_int, check_positive
from labelfree3d.models.postprocess import (
    scene_superpoints,
    smooth_with_superpoints,
    split_disconnected,
    suppress_duplicates,
)
from labelfree3d.models.voxelize import (
    VoxelizedScene,
    collate,
    model_points,
    point_features,
    voxelize,
    with_model_superpoints,
)
from labelfree3d.structures import InstanceMasks, Scene

__all__ = ["PredictConfig", "Predictor", "masks_from_logits", "merge_tile_masks"]


@dataclass(frozen=True)
class PredictConfig:
    """Inference and post-processing settings.

    Attributes:
        mask_threshold: sigmoid level a point must exceed to be in a mask (Segment3D §3.1: 0.5).
        score_threshold: masks with confidence c below this are dropped (0: keep all).
        min_points: masks with fewer points (after post-processing) are dropped.
        max_masks: keep at most this many masks, most confident first (None: all).
        superpoint_smoothing: snap masks to superpoints (Segment3D's post-processing).
        smoothing_fraction: share of a superpoint a mask must cover to take it (majority, 0.5).
        dbscan_split: split masks into DBSCAN clusters (Segment3D's post-processing).
        dbscan_eps: DBSCAN radius in metres. Segment3D gives no value; 5 voxels of 2 cm (0.1 m)
            separates parts further apart than a few voxels, which the sparse convolutions
            could not have linked.
        dbscan_min_points: DBSCAN min_samples (1: connected components at radius eps).
        split_min_points: DBSCAN clusters with fewer points are dropped.
        nms_iou: drop a mask whose IoU with a more confident one reaches this (greedy mask NMS,
            `suppress_duplicates`); None: keep duplicates (the papers' models, trained long
            enough that one query owns each object).
        max_voxels: scans with more voxels are processed in tiles (None: never tile).
        tile_size: tile edge in metres along the two longest horizontal axes.
        tile_overlap: overlap of neighbouring tiles in metres.
        merge_iou: masks from neighbouring tiles whose IoU on the shared points exceeds this are merged.
    """

    mask_threshold: float = 0.5
    score_threshold: float = 0.0
    min_points: int = 1
    max_masks: int | None = None
    superpoint_smoothing: bool = False
    smoothing_fraction: float = 0.5
    dbscan_split: bool = False
    dbscan_eps: float = 0.1
    dbscan_min_points: int = 1
    split_min_points: int = 1
    nms_iou: float | None = None
    max_voxels: int | None = None
    tile_size: float = 4.0
    tile_overlap: float = 0.5
    merge_iou: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.mask_threshold < 1:
            raise ParameterError(f"predict.mask_threshold must be in (0, 1), got {self.mask_threshold!r}")
        check_fraction(self.score_threshold, "predict.score_threshold")
        check_int(self.min_points, "predict.min_points", 1)
        if self.max_masks is not None:
            check_int(self.max_masks, "predict.max_masks", 1)
        check_fraction(self.smoothing_fraction, "predict.smoothing_fraction")
        check_positive(self.dbscan_eps, "predict.dbscan_eps")
        check_int(self.dbscan_min_points, "predict.dbscan_min_points", 1)
        check_int(self.split_min_points, "predict.split_min_points", 1)
        if self.nms_iou is not None:
            check_fraction(self.nms_iou, "predict.nms_iou", open_low=True)
        if self.max_voxels is not None:
            check_int(self.max_voxels, "predict.max_voxels", 1)
        check_positive(self.tile_size, "predict.tile_size")
        check_positive(self.tile_overlap, "predict.tile_overlap", allow_zero=True)
        if self.tile_overlap >= self.tile_size:
            raise ParameterError(f"predict.tile_overlap {self.tile_overlap} must be smaller than tile_size {self.tile_size}")
        check_fraction(self.merge_iou, "predict.merge_iou", open_low=True)


def masks_from_logits(
    mask_logits: np.ndarray, objectness_logits: np.ndarray, voxels: VoxelizedScene, mask_threshold: float = 0.5
) -> InstanceMasks:
    """Full-resolution masks and confidences from one scan's voxel-level predictions.

    Args:
        mask_logits: (Q, M) mask logits over the scan's voxels.
        objectness_logits: (Q,) objectness logits.
        voxels: the voxelised scan (for point counts and the voxel of each point).
        mask_threshold: sigmoid level for membership.

    Returns:
        Masks over the scan's N points, empty predictions removed, scores c = c_mask * c_obj.
    """
    heat = 1.0 / (1.0 + np.exp(-mask_logits.astype(np.float64)))
    inside = heat > mask_threshold
    weights = inside * voxels.counts[None, :]  # points per voxel inside each mask
    points_inside = weights.sum(axis=1)
    c_mask = (heat * weights).sum(axis=1) / np.maximum(points_inside, 1)
    c_obj = 1.0 / (1.0 + np.exp(-objectness_logits.astype(np.float64)))
    keep = points_inside > 0
    voxel_masks = InstanceMasks.from_sparse(sp.csr_matrix(inside[keep]), (c_mask * c_obj)[keep])
    return voxel_masks.lift(voxels.inverse)


def merge_tile_masks(parts: list[InstanceMasks], tile_points: list[np.ndarray], num_points: int, merge_iou: float) -> InstanceMasks:
    """Merge the masks of overlapping tiles into masks over the whole scan.

    Args:
        parts: per tile, masks over the tile's points.
        tile_points: per tile, the (N_t,) scan indices of its points.
        num_points: N, points of the whole scan.
        merge_iou: masks of different tiles whose IoU, counted on the points both tiles hold,
            exceeds this are merged (union of points, highest score).

    Returns:
        Masks over the N points.
    """
    lifted = []
    tile_of_mask = []
    for t, (masks, points) in enumerate(zip(parts, tile_points)):
        indices = points[masks.indices]
        csr = sp.csr_matrix((np.ones(indices.shape[0], np.int8), indices, masks.indptr), shape=(len(masks), num_points))
        lifted.append(csr)
        tile_of_mask.append(np.full(len(masks), t))
    if not lifted:
        return InstanceMasks.empty(num_points)
    matrix = sp.vstack(lifted).tocsr()
    scores = np.concatenate([m.scores for m in parts])
    tiles = np.concatenate(tile_of_mask)
    coverage = np.bincount(np.concatenate(tile_points), minlength=num_points)
    shared = (coverage > 1).astype(np.int8)
    in_shared = matrix.multiply(shared[None, :]).tocsr().astype(np.int64)
    intersection = (in_shared @ in_shared.T).tocoo()
    sizes = np.asarray(in_shared.sum(axis=1)).ravel()
    rows, cols, inter = intersection.row, intersection.col, intersection.data
    union = sizes[rows] + sizes[cols] - inter
    merge = (rows < cols) & (tiles[rows] != tiles[cols]) & (inter > merge_iou * np.maximum(union, 1))
    graph = sp.csr_matrix((np.ones(int(merge.sum())), (rows[merge], cols[merge])), shape=(len(scores),) * 2)
    count, group = sp.csgraph.connected_components(graph, directed=False)
    grouping = sp.csr_matrix((np.ones(len(scores)), (group, np.arange(len(scores)))), shape=(count, len(scores)))
    merged = (grouping @ matrix).tocsr()
    merged.data[:] = 1
    best = np.full(count, -np.inf)
    np.maximum.at(best, group, scores)
    return InstanceMasks.from_sparse(merged, best)


class Predictor:
    """Runs a trained model on scans and returns full-resolution masks.

    Args:
        model: a `MaskTransformer` (or a DDP wrapper of one).
        config: inference and post-processing settings.
        device: torch device for the forward pass (default: the model's).
        amp: use float16 autocast on CUDA (ignored on CPU).
    """

    def __init__(self, model, config: PredictConfig | None = None, device=None, amp: bool = True):
        import torch

        self.model = getattr(model, "module", model)
        self.config = config or PredictConfig()
        self.device = torch.device(device) if device is not None else next(self.model.parameters()).device
        self.amp = bool(amp) and self.device.type == "cuda"

    @classmethod
    def from_checkpoint(cls, path, config: PredictConfig | None = None, device: str = "cpu", amp: bool = True) -> Predictor:
        """A predictor for the model stored in a checkpoint (loaded on `device`)."""
        from labelfree3d.models.checkpoint import load_model

        return cls(load_model(path, map_location=device), config, device, amp)

    def voxelize(self, scene: Scene) -> VoxelizedScene:
        """The scan voxelised as the model expects (no augmentation)."""
        spec = self.model.input_spec
        superpoints = with_model_superpoints(scene, spec).superpoints if spec.superpoints else None
        return voxelize(scene.points, point_features(scene, spec.features), spec.voxel_size, scene.name, superpoints=superpoints)

    def _forward(self, voxels: VoxelizedScene) -> tuple[np.ndarray, np.ndarray]:
        import torch

        batch = collate([voxels]).to(self.device)
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), autocast:
                final = self.model(batch)[-1]
        finally:
            self.model.train(was_training)
        return final.masks[0].float().cpu().numpy(), final.objectness[0].float().cpu().numpy()

    def predict_raw(self, scene: Scene) -> InstanceMasks:
        """Masks of one forward pass over the whole scan (no tiling, no post-processing)."""
        voxels = self.voxelize(scene)
        mask_logits, objectness = self._forward(voxels)
        return masks_from_logits(mask_logits, objectness, voxels, self.config.mask_threshold)

    def predict(self, scene: Scene) -> InstanceMasks:
        """Full-resolution masks of `scene` with confidences, post-processed and filtered.

        A model whose input cuts the structure away (`InputSpec.structure` "remove") sees the
        rest of the scan only; its masks never cover structure points.
        """
        scene = with_model_superpoints(scene, self.model.input_spec)  # on the whole scan, before any subset
        seen = model_points(scene, self.model.input_spec)
        if seen is None:
            return self._predict_seen(scene)
        if seen.shape[0] == 0:
            return InstanceMasks.empty(scene.num_points)
        return self._predict_seen(scene.subset(seen)).expand(seen, scene.num_points)

    def _predict_seen(self, scene: Scene) -> InstanceMasks:
        config = self.config
        voxels = self.voxelize(scene)
        if config.max_voxels is not None and voxels.num_voxels > config.max_voxels:
            masks = self._predict_tiled(scene)
        else:
            mask_logits, objectness = self._forward(voxels)
            masks = masks_from_logits(mask_logits, objectness, voxels, config.mask_threshold)
        if config.superpoint_smoothing and len(masks):
            masks = smooth_with_superpoints(masks, scene_superpoints(scene), config.smoothing_fraction)
        if config.dbscan_split and len(masks):
            masks = split_disconnected(masks, scene.points, config.dbscan_eps, config.dbscan_min_points, config.split_min_points)
        masks = masks.filter(min_points=config.min_points, min_score=config.score_threshold).sorted_by_score()
        if config.nms_iou is not None:
            masks = suppress_duplicates(masks, config.nms_iou)
        if config.max_masks is not None and len(masks) > config.max_masks:
            masks = masks.select(np.arange(config.max_masks))
        return masks

    def tiles(self, scene: Scene) -> list[np.ndarray]:
        """Point indices of the overlapping horizontal tiles covering the scan (each non-empty)."""
        config = self.config
        extent = scene.points.max(axis=0) - scene.points.min(axis=0)
        axes = np.argsort(-extent)[:2]  # tile along the two longest axes, whatever the up axis
        low = scene.points.min(axis=0)
        step = config.tile_size - config.tile_overlap
        # floor(...) + 1 tiles end strictly beyond the maximum, so every point falls in one
        starts = [low[a] + step * np.arange(int(np.floor(max(extent[a] - config.tile_overlap, 0.0) / step)) + 1) for a in axes]
        tiles = []
        for sx in starts[0]:
            for sy in starts[1]:
                inside = (
                    (scene.points[:, axes[0]] >= sx)
                    & (scene.points[:, axes[0]] < sx + config.tile_size)
                    & (scene.points[:, axes[1]] >= sy)
                    & (scene.points[:, axes[1]] < sy + config.tile_size)
                )
                indices = np.flatnonzero(inside)
                if indices.size:
                    tiles.append(indices)
        return tiles

    def _predict_tiled(self, scene: Scene) -> InstanceMasks:
        tiles = self.tiles(scene)
        parts = []
        for indices in tiles:
            part = scene.subset(indices)
            voxels = self.voxelize(part)
            mask_logits, objectness = self._forward(voxels)
            parts.append(masks_from_logits(mask_logits, objectness, voxels, self.config.mask_threshold))
        return merge_tile_masks(parts, tiles, scene.num_points, self.config.merge_iou)
