"""Per-point outputs of a pre-trained PointINS network: multi-scale features and instance offsets.

A checkpoint written by `labelfree3d pretrain` (`RUN/model.safetensors`) is loaded once per
(path, device) and run on a scan voxelised at its own voxel size; voxel outputs come back to every
point through the point-to-voxel map. The features replace the handcrafted ones of the NCut
segmenter (`features=pointins:RUN/model.safetensors`); the offsets drive `pointins_offsets`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from labelfree3d.errors import InputError, ParameterError
from labelfree3d.structures import Scene

__all__ = ["PointINSOutputs", "load_pointins", "network_outputs", "pointins_outputs"]


class PointINSOutputs(NamedTuple):
    """Per-point outputs over a scan's N points.

    Attributes:
        features: (N, F) float32 multi-scale backbone features.
        offsets: (N, 3) float32 predicted offsets towards instance centres, metres.
    """

    features: np.ndarray
    offsets: np.ndarray


@functools.lru_cache(maxsize=4)
def _cached_model(path: str, modified: float, device: str):
    from labelfree3d.models.checkpoint import load_model

    model = load_model(path, map_location=device)
    if getattr(model, "model_name", None) != "pointins":
        raise ParameterError(f"{path}: holds a {getattr(model, 'model_name', type(model).__name__)!r} model, not a pointins one")
    return model.eval()


def load_pointins(checkpoint: str | os.PathLike[str], device: str = "cpu"):
    """The PointINS network of a checkpoint, in eval mode on `device` (cached while the file is unchanged)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError("no such PointINS checkpoint", path)
    return _cached_model(str(path.resolve()), path.stat().st_mtime, str(device))


def pointins_outputs(scene: Scene, checkpoint: str | os.PathLike[str], device: str = "cpu") -> PointINSOutputs:
    """Features and offsets of every point of `scene` from a pre-trained PointINS checkpoint.

    Args:
        scene: the scan (it needs colours when the network was trained on them).
        checkpoint: `model.safetensors` written by `labelfree3d pretrain`.
        device: torch device of the forward pass.

    Returns:
        `PointINSOutputs` over the scan's N points.
    """
    return network_outputs(scene, load_pointins(checkpoint, device), device)


def network_outputs(scene: Scene, model, device: str = "cpu") -> PointINSOutputs:
    """`pointins_outputs` for a PointINS network object (e.g. one at initialisation, for probes)."""
    import torch

    from labelfree3d.models.voxelize import collate, point_features, voxelize

    spec = model.input_spec
    voxels = voxelize(scene.points, point_features(scene, spec.features), spec.voxel_size, scene.name)
    with torch.no_grad():
        out = model(collate([voxels]).to(device))
    features = out.features.float().cpu().numpy()[voxels.inverse]
    offsets = out.offsets.float().cpu().numpy()[voxels.inverse]
    return PointINSOutputs(features.astype(np.float32, copy=False), offsets.astype(np.float32, copy=False))
