"""SAM automatic mask generation from a local checkpoint, without torchvision.

Segment3D makes its stage-1 labels with SAM's automatic mask generation: "we prompt SAM with a
regular grid on the RGB image" and keep the masks that survive SAM's post-processing
(segment3d.md §3.1 and supplementary A). `SamMaskGenerator` runs exactly that pipeline with the
`segment-anything` package's model and defaults (`SamAutomaticMaskGenerator` with ViT-H,
one crop layer):

1. the image is resized so its longer side is the encoder's input size (1024), normalised,
   padded, and embedded once;
2. a regular grid of `points_per_side`^2 single-point prompts (cell centres) is decoded in
   batches of `points_per_batch`, three masks per prompt (`multimask_output=True`) with their
   predicted IoU;
3. masks with predicted IoU <= `pred_iou_thresh` (0.88) or stability score <
   `stability_score_thresh` (0.95; the IoU of the masks thresholded at logit +-1) are dropped;
4. duplicates are removed by box non-maximum suppression at IoU `box_nms_thresh` (0.7),
   ranked by predicted IoU.

Why not call `SamAutomaticMaskGenerator` itself: the package's `__init__` imports it, and it
imports torchvision (`batched_nms`, resize transforms). PyPI's torchvision wheel does not load
beside the CPU torch wheel this project pins ("operator torchvision::nms does not exist"), so by
default (`engine="builtin"`) this module loads only the torch-only `modeling` and `build_sam`
modules of the installed package (under a private alias, without running its `__init__`),
resizes with Pillow (bilinear, as torchvision's PIL path does) and suppresses duplicates with
its own NMS. `engine="stock"` runs the package's own generator instead; it needs a torchvision
built for the installed torch (see docs/lifting.md).

Nothing downloads weights: the checkpoint is a local path (`sam_vit_h_4b8939.pth`,
`sam_vit_l_0b3195.pth` or `sam_vit_b_01ec64.pth` from the segment-anything README).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelfree3d.errors import DependencyError, InputError, ParameterError
from labelfree3d.lift.masks2d import ImageMasks, MaskGenerator, register_mask_generator
from labelfree3d.segment.base import check_range
from labelfree3d.structures import RGBDFrame

__all__ = ["SamMaskGenerator", "load_sam", "sam_modules", "box_nms", "point_grid", "SAM_CHECKPOINT_HELP"]

SAM_CHECKPOINT_HELP = (
    "download a SAM checkpoint (e.g. sam_vit_h_4b8939.pth, 2.4 GB, or sam_vit_b_01ec64.pth, 375 MB) from "
    "https://github.com/facebookresearch/segment-anything#model-checkpoints and pass its path with "
    "--sam-checkpoint PATH (or --masks classic for the weight-free generator)"
)
_ALIAS = "_labelfree3d_segment_anything"
# encoder width of each released SAM backbone, read from the checkpoint to pick the architecture
_EMBED_DIMS = {1280: "vit_h", 1024: "vit_l", 768: "vit_b"}


def sam_modules() -> types.ModuleType:
    """The installed `segment_anything.build_sam` module, imported without torchvision.

    The package is loaded under a private alias whose `__init__` is never run (that is the
    file that imports the torchvision-dependent automatic generator), so `segment_anything`
    itself stays untouched in `sys.modules`.

    Raises:
        DependencyError: segment-anything is not installed.
    """
    if _ALIAS not in sys.modules:
        spec = importlib.util.find_spec("segment_anything")
        if spec is None or not spec.submodule_search_locations:
            raise DependencyError("segment-anything is not installed: pip install 'labelfree3d[sam]'")
        package = types.ModuleType(_ALIAS)
        package.__path__ = list(spec.submodule_search_locations)
        package.__package__ = _ALIAS
        sys.modules[_ALIAS] = package
    return importlib.import_module(f"{_ALIAS}.build_sam")


def _infer_model_type(state: dict[str, Any], source: Path) -> str:
    weight = state.get("image_encoder.patch_embed.proj.weight")
    if weight is None:
        raise InputError("not a SAM checkpoint (no image_encoder.patch_embed.proj.weight)", source)
    model_type = _EMBED_DIMS.get(int(weight.shape[0]))
    if model_type is None:
        raise InputError(f"unknown SAM encoder width {int(weight.shape[0])} (expected 768, 1024 or 1280)", source)
    return model_type


def load_sam(checkpoint: str | Path | None, model_type: str = "auto", device: str = "cpu") -> Any:
    """Build SAM and load a local checkpoint (never downloads).

    Args:
        checkpoint: path of a SAM `.pth` state dict.
        model_type: `vit_h`, `vit_l`, `vit_b`, or `auto` (read the encoder width from the file).
        device: torch device.

    Returns:
        The `Sam` module in eval mode.

    Raises:
        DependencyError: no checkpoint given or the file does not exist (the message says where
            to get one); InputError: the file is not a SAM checkpoint.
    """
    import torch

    if checkpoint is None or str(checkpoint) == "":
        raise DependencyError(f"the sam mask generator needs a checkpoint: {SAM_CHECKPOINT_HELP}")
    path = Path(checkpoint)
    if not path.is_file():
        raise DependencyError(f"{path}: no such SAM checkpoint; {SAM_CHECKPOINT_HELP}")
    if path.stat().st_size == 0:
        raise InputError(f"the SAM checkpoint is an empty file; {SAM_CHECKPOINT_HELP}", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip and runtime errors for bad files
        raise InputError(
            f"unreadable SAM checkpoint ({_torch_load_problem(error)})", path
        ) from error
    if not isinstance(state, dict):
        raise InputError("not a SAM checkpoint (expected a state dict)", path)
    if model_type == "auto":
        model_type = _infer_model_type(state, path)
    builders = sam_modules().sam_model_registry
    if model_type not in builders:
        raise ParameterError(f"unknown SAM model type {model_type!r}; use auto, vit_h, vit_l or vit_b")
    model = builders[model_type]()
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise InputError(
            f"checkpoint does not fit SAM {model_type} ({(str(error).splitlines() or [type(error).__name__])[0][:160]})", path
        ) from error
    return model.to(device).eval()


def point_grid(points_per_side: int) -> np.ndarray:
    """(n^2, 2) prompt points (x, y) in [0, 1]^2 at the centres of an n x n grid (SAM's `build_point_grid`)."""
    offset = 1.0 / (2 * points_per_side)
    side = np.linspace(offset, 1.0 - offset, points_per_side)
    xs, ys = np.meshgrid(side, side)  # row-major: x varies fastest, as in SAM
    return np.stack([xs.reshape(-1), ys.reshape(-1)], axis=1)


def box_nms(boxes: Any, scores: Any, iou_threshold: float) -> Any:
    """Greedy non-maximum suppression in torch only (torchvision's `nms`).

    Args:
        boxes: (K, 4) float tensor, (x0, y0, x1, y1) inclusive pixel bounds as SAM produces.
        scores: (K,) float tensor, higher = better.
        iou_threshold: a box overlapping a better kept box with IoU above this is suppressed.

    Returns:
        (K',) int64 tensor of kept indices in descending score order.
    """
    import torch

    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64)
    order = torch.argsort(scores, descending=True, stable=True)
    boxes = boxes[order].to(torch.float64)
    area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    low = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    high = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (high - low).clamp(min=0).prod(dim=2)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp(min=1e-12)
    suppressed = torch.zeros(boxes.shape[0], dtype=torch.bool)
    keep = []
    for i in range(boxes.shape[0]):  # K <= a few thousand candidates; each step is one vector op
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.as_tensor(keep, dtype=torch.int64)]


def _mask_boxes(masks: Any) -> Any:
    """(K, 4) float boxes (x0, y0, x1, y1) of (K, H, W) bool masks; zeros for empty masks."""
    import torch

    k, height, width = masks.shape
    if k == 0:
        return torch.zeros(0, 4)
    rows = masks.any(dim=2)
    cols = masks.any(dim=1)
    row_ids = torch.arange(height)
    col_ids = torch.arange(width)
    y1 = torch.where(rows, row_ids, -1).amax(dim=1)
    y0 = torch.where(rows, row_ids, height).amin(dim=1)
    x1 = torch.where(cols, col_ids, -1).amax(dim=1)
    x0 = torch.where(cols, col_ids, width).amin(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).to(torch.float32)
    boxes[~rows.any(dim=1)] = 0.0
    return boxes


@register_mask_generator("sam")
@dataclass
class SamMaskGenerator(MaskGenerator):
    """SAM automatic mask generation with grid prompts (defaults: `SamAutomaticMaskGenerator`'s).

    Attributes:
        checkpoint: local path of a SAM checkpoint (required unless `model` is given).
        model_type: `auto` (from the checkpoint), `vit_h`, `vit_l` or `vit_b`.
        points_per_side: prompts per image side (32 -> 1,024 prompts).
        points_per_batch: prompts decoded at once (memory: 3 full-resolution float masks each).
        pred_iou_thresh: keep masks whose predicted IoU is above this (0 = keep all).
        stability_score_thresh: keep masks whose stability score is at least this (0 = keep all).
        stability_score_offset: logit offset of the stability score.
        box_nms_thresh: box IoU above which the lower-ranked of two masks is dropped.
        min_mask_area: masks with fewer pixels are dropped (0 = keep all).
        engine: `builtin` (torch only) or `stock` (segment_anything's own generator; needs a
            torchvision matching torch).
        device: torch device of the model.
        model: an already built `Sam` module (e.g. randomly initialised in tests); overrides
            `checkpoint`.
    """

    checkpoint: str | None = None
    model_type: str = "auto"
    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    min_mask_area: int = 0
    engine: str = "builtin"
    device: str = "cpu"
    model: Any = field(default=None, repr=False)

    needs_depth = False
    score_rule = "SAM's predicted IoU of the mask"

    def validate(self) -> None:
        check_range(self.name, "points_per_side", self.points_per_side, 1, 256)
        check_range(self.name, "points_per_batch", self.points_per_batch, 1)
        check_range(self.name, "pred_iou_thresh", self.pred_iou_thresh, 0.0, 1.0)
        check_range(self.name, "stability_score_thresh", self.stability_score_thresh, 0.0, 1.0)
        check_range(self.name, "stability_score_offset", self.stability_score_offset, 0.0)
        check_range(self.name, "box_nms_thresh", self.box_nms_thresh, 0.0, 1.0)
        check_range(self.name, "min_mask_area", self.min_mask_area, 0)
        if self.engine not in ("builtin", "stock"):
            raise ParameterError(f"sam.engine must be builtin or stock, got {self.engine!r}")
        if self.model_type not in ("auto", "vit_h", "vit_l", "vit_b"):
            raise ParameterError(f"sam.model_type must be auto, vit_h, vit_l or vit_b, got {self.model_type!r}")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model is None:
            # load at construction so a missing checkpoint fails before any frame is read
            self.model = load_sam(self.checkpoint, self.model_type, self.device)

    # ------------------------------------------------------------------ generation
    def generate(self, frame: RGBDFrame) -> ImageMasks:
        """SAM masks of the frame's colour image, scored by predicted IoU, in descending order."""
        if frame.color is None:
            raise InputError(f"frame {frame.name}: the sam generator needs a colour image")
        image = np.ascontiguousarray(frame.color[..., :3], dtype=np.uint8)
        if self.engine == "stock":
            masks, scores = self._generate_stock(image)
        else:
            masks, scores = self._generate_builtin(image)
        if self.min_mask_area > 0 and masks.shape[0]:
            keep = masks.reshape(masks.shape[0], -1).sum(axis=1) >= self.min_mask_area
            masks, scores = masks[keep], scores[keep]
        return ImageMasks(masks, scores, frame.name)

    def _generate_builtin(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch
        from PIL import Image

        model = self.model
        height, width = image.shape[:2]
        target = int(model.image_encoder.img_size)
        scale = target / max(height, width)
        new_h, new_w = int(height * scale + 0.5), int(width * scale + 0.5)
        resized = np.array(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))  # writable copy for torch
        device = model.device
        with torch.inference_mode():
            pixels = torch.as_tensor(resized, device=device).permute(2, 0, 1).contiguous()[None].float()
            embedding = model.image_encoder(model.preprocess(pixels))
            dense_pe = model.prompt_encoder.get_dense_pe()
            prompts = point_grid(self.points_per_side) * np.array([width, height])
            kept_masks, kept_scores, kept_boxes = [], [], []
            for start in range(0, prompts.shape[0], self.points_per_batch):
                batch = prompts[start : start + self.points_per_batch]
                coords = torch.as_tensor(
                    batch * np.array([new_w / width, new_h / height]), dtype=torch.float32, device=device
                )
                labels = torch.ones(coords.shape[0], 1, dtype=torch.int64, device=device)
                sparse, dense = model.prompt_encoder(points=(coords[:, None, :], labels), boxes=None, masks=None)
                low_res, iou = model.mask_decoder(
                    image_embeddings=embedding,
                    image_pe=dense_pe,
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=True,
                )
                logits = model.postprocess_masks(low_res, (new_h, new_w), (height, width)).flatten(0, 1)
                iou = iou.flatten()
                keep = (
                    iou > self.pred_iou_thresh if self.pred_iou_thresh > 0 else torch.ones_like(iou, dtype=torch.bool)
                )
                logits, iou = logits[keep], iou[keep]
                threshold = model.mask_threshold
                high = (logits > threshold + self.stability_score_offset).flatten(1).sum(1)
                low = (logits > threshold - self.stability_score_offset).flatten(1).sum(1)
                stability = high / low.clamp(min=1)
                if self.stability_score_thresh > 0:
                    keep = stability >= self.stability_score_thresh
                    logits, iou = logits[keep], iou[keep]
                masks = (logits > threshold).cpu()
                kept_masks.append(masks)
                kept_scores.append(iou.cpu())
                kept_boxes.append(_mask_boxes(masks))
            masks = torch.cat(kept_masks) if kept_masks else torch.zeros(0, height, width, dtype=torch.bool)
            scores = torch.cat(kept_scores) if kept_scores else torch.zeros(0)
            boxes = torch.cat(kept_boxes) if kept_boxes else torch.zeros(0, 4)
            # SAM's crop-edge filter is a no-op for the single full-image crop used here
            order = box_nms(boxes, scores.float(), self.box_nms_thresh)
        return masks[order].numpy(), scores[order].double().numpy()

    def _generate_stock(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        try:
            from segment_anything import SamAutomaticMaskGenerator
        except Exception as error:  # ImportError, or RuntimeError from a torchvision built for another torch
            raise DependencyError(
                "sam.engine=stock needs torchvision built for the installed torch "
                f"({type(error).__name__}: {(str(error).splitlines() or [type(error).__name__])[0][:100]}); "
                "see docs/lifting.md, or use engine=builtin"
            ) from error
        generator = SamAutomaticMaskGenerator(
            self.model,
            points_per_side=self.points_per_side,
            points_per_batch=self.points_per_batch,
            pred_iou_thresh=self.pred_iou_thresh,
            stability_score_thresh=self.stability_score_thresh,
            stability_score_offset=self.stability_score_offset,
            box_nms_thresh=self.box_nms_thresh,
        )
        records = generator.generate(image)
        height, width = image.shape[:2]
        if not records:
            return np.zeros((0, height, width), dtype=bool), np.zeros(0)
        records.sort(key=lambda r: -r["predicted_iou"])
        return np.stack([r["segmentation"] for r in records]), np.array([r["predicted_iou"] for r in records])

    def get_params(self) -> dict[str, Any]:
        """Parameters for provenance; the model object itself is left out."""
        params = super().get_params()
        params.pop("model", None)
        return params


def _torch_load_problem(error: Exception) -> str:
    """One line on why `torch.load(..., weights_only=True)` refused a file."""
    if type(error).__name__ == "UnpicklingError":
        # torch's own text invites loading with weights_only=False, which would run the file's code
        return "not a plain tensor state dict: it is corrupt or holds Python objects, which are never unpickled"
    return f"{type(error).__name__}: {(str(error).splitlines() or [type(error).__name__])[0][:120]}"
