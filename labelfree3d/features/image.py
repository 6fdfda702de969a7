"""Dense 2D feature extractors: RGB image (H, W, 3) uint8 -> feature map (h, w, C) float32.

Both kinds plug into `labelfree3d.lift.lift_features`, which averages them onto 3D points seen
by the frames (and `segment_means` onto superpoints) for UnScene3D's 2D modality (unscene3d.md
§3.1.1: self-supervised colour features back-projected with depth and pose, and averaged over
geometric primitives, §3.1.3-3.1.4):

* `TorchImageFeatures`: any torch image model given as a local checkpoint: a DINO ViT state
  dict (loaded by `DinoViT`, the paper's choice), or any TorchScript module / torch.export
  program (`.pt2`) mapping a normalised (1, 3, H, W) image to a (1, C, h, w) feature map (e.g. a
  timm model exported on a machine where timm's torchvision dependency loads).
  `load_image_features(path)` picks the right loader.
* `ColorTextureFeatures`: a weight-free colour and texture descriptor (CIE Lab at several
  Gaussian scales, gradient magnitude and local contrast), so the pipeline runs without weights.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from labelfree3d.errors import DependencyError, InputError, ParameterError

__all__ = [
    "rgb_to_lab",
    "ColorTextureFeatures",
    "TorchImageFeatures",
    "load_image_features",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] < 3 or image.dtype != np.uint8:
        raise InputError(f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
    return image[..., :3]


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of an (..., 3) uint8 sRGB array as float64; L in [0, 100]."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = (
        linear
        @ np.array(
            [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
        ).T
    )
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


@dataclass
class ColorTextureFeatures:
    """Weight-free per-pixel colour and texture descriptor.

    Channels (C = 3 + 5 * len(scales)): Lab (L / 100, a / 128, b / 128); then per Gaussian
    scale sigma: the smoothed Lab (3), the gradient magnitude of smoothed L (1) and the local
    standard deviation of L in a sigma window (1, texture contrast).

    Attributes:
        scales: Gaussian sigmas in pixels of the (down-sampled) image.
        downsample: compute on every `downsample`-th pixel (the map is (H/d, W/d)).
    """

    scales: tuple[float, ...] = (1.0, 2.0, 4.0)
    downsample: int = 2

    def __post_init__(self) -> None:
        if not self.scales or any(not (s > 0) for s in self.scales):
            raise ParameterError(f"ColorTextureFeatures.scales must be positive sigmas, got {self.scales!r}")
        if self.downsample < 1:
            raise ParameterError(f"ColorTextureFeatures.downsample must be >= 1, got {self.downsample}")

    @property
    def channels(self) -> int:
        """Feature width C."""
        return 3 + 5 * len(self.scales)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(h, w, C) float32 features of an (H, W, 3) uint8 image, h = ceil(H / downsample)."""
        image = _check_image(image)[:: self.downsample, :: self.downsample]
        lab = rgb_to_lab(image) / np.array([100.0, 128.0, 128.0])
        channels = [lab[..., c] for c in range(3)]
        lightness = lab[..., 0]
        for sigma in self.scales:
            smoothed = [ndimage.gaussian_filter(lab[..., c], sigma) for c in range(3)]
            channels += smoothed
            channels.append(ndimage.gaussian_gradient_magnitude(lightness, sigma))
            mean = smoothed[0]
            second = ndimage.gaussian_filter(lightness**2, sigma)
            channels.append(np.sqrt(np.maximum(second - mean**2, 0.0)))
        return np.stack(channels, axis=-1).astype(np.float32)


@dataclass
class TorchImageFeatures:
    """Dense features of any torch image model.

    Attributes:
        model: a module mapping a normalised (1, 3, H, W) float image to a (1, C, h, w) map.
        stride: the model's output stride (the ViT patch size); the input is resized so that
            both sides are multiples of it.
        max_side: the longer image side is resized to about this many pixels (cost grows with
            the square of the token count for ViTs).
        mean, std: per-channel normalisation of [0, 1] RGB (ImageNet's for DINO).
        l2_normalize: unit-length features per location (NCut compares them by cosine).
        device: torch device.
    """

    model: Any
    stride: int = 8
    max_side: int = 448
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    l2_normalize: bool = True
    device: str = "cpu"
    _moved: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.stride < 1 or self.max_side < self.stride:
            raise ParameterError(
                f"TorchImageFeatures needs stride >= 1 and max_side >= stride, got {self.stride}, {self.max_side}"
            )

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(h, w, C) float32 feature map of an (H, W, 3) uint8 image."""
        import torch
        from PIL import Image

        image = _check_image(image)
        height, width = image.shape[:2]
        scale = self.max_side / max(height, width)
        new_h = max(self.stride, int(round(height * scale / self.stride)) * self.stride)
        new_w = max(self.stride, int(round(width * scale / self.stride)) * self.stride)
        resized = np.array(Image.fromarray(image).resize((new_w, new_h), Image.BICUBIC), dtype=np.float32) / 255.0
        normalised = (resized - np.array(self.mean, dtype=np.float32)) / np.array(self.std, dtype=np.float32)
        if not self._moved:
            self.model = self.model.to(self.device)
            try:
                self.model = self.model.eval()
            except NotImplementedError:  # torch.export modules are already in inference form
                pass
            self._moved = True
        with torch.inference_mode():
            tensor = torch.from_numpy(normalised).permute(2, 0, 1)[None].to(self.device)
            output = self.model(tensor)
            if isinstance(output, (tuple, list)):
                output = output[0]
            if output.ndim != 4 or output.shape[0] != 1:
                raise InputError(f"image model returned shape {tuple(output.shape)}, expected (1, C, h, w)")
            features = output[0].permute(1, 2, 0).float()
            if self.l2_normalize:
                features = torch.nn.functional.normalize(features, dim=-1)
        return features.cpu().numpy().astype(np.float32)


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


def load_image_features(
    checkpoint: str | Path, output: str = "tokens", max_side: int = 448, device: str = "cpu"
) -> TorchImageFeatures:
    """An extractor for a local checkpoint: a DINO ViT state dict, a TorchScript module or a
    torch.export program (`.pt2`; exported for the resized input size, or with dynamic H and W).

    Args:
        checkpoint: path of the file (never downloaded).
        output: for DINO ViTs, `tokens` (final patch tokens) or `keys` (last-layer keys).
        max_side: longer side of the resized input, pixels.
        device: torch device.

    Raises:
        DependencyError: the file does not exist; InputError: it is neither format.
    """
    import torch

    from labelfree3d.features.vit import DinoViT

    path = Path(checkpoint)
    if not path.is_file():
        raise DependencyError(
            f"{path}: no such image-model checkpoint; download e.g. DINO ViT-S/8 (dino_deitsmall8_pretrain.pth) from "
            "https://github.com/facebookresearch/dino#pretrained-models, or use --features colortexture"
        )
    if path.stat().st_size == 0:
        raise InputError("the image-model checkpoint is an empty file", path)
    if path.suffix == ".pt2":  # a torch.export program (torch's successor to TorchScript)
        try:
            module = torch.export.load(str(path)).module()
        except Exception as error:
            raise InputError(f"unreadable torch.export program ({type(error).__name__})", path) from error
        return TorchImageFeatures(module, stride=1, max_side=max_side, device=device)
    if _is_torchscript(path):
        import warnings

        try:
            with warnings.catch_warnings():  # torch 2.10+ deprecates TorchScript, which still loads fine
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location="cpu")
        except Exception as error:
            raise InputError(f"unreadable TorchScript module ({type(error).__name__})", path) from error
        stride = int(getattr(module, "patch_size", 1))  # a scripted ViT keeps its patch_size attribute
        return TorchImageFeatures(module, stride=stride, max_side=max_side, device=device)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise InputError(
            f"unreadable checkpoint ({_torch_load_problem(error)})", path
        ) from error
    if not isinstance(state, dict):
        raise InputError("checkpoint is neither TorchScript nor a state dict", path)
    model = DinoViT.from_state_dict(state, output=output, source=str(path))
    return TorchImageFeatures(model, stride=model.patch_size, max_side=max_side, device=device)


def _torch_load_problem(error: Exception) -> str:
    """One line on why `torch.load(..., weights_only=True)` refused a file."""
    if type(error).__name__ == "UnpicklingError":
        # torch's own text invites loading with weights_only=False, which would run the file's code
        return "not a plain tensor state dict: it is corrupt or holds Python objects, which are never unpickled"
    return f"{type(error).__name__}: {(str(error).splitlines() or [type(error).__name__])[0][:120]}"
