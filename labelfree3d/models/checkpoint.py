"""Checkpoints: one safetensors file holding weights, the model spec and (optionally) trainer state.

Layout of a checkpoint file (safetensors: tensors + a str -> str metadata header, no pickle):

=====================  =============================================================
tensor keys            ``model.<state-dict key>``: every parameter and buffer, on CPU;
                       ``optimizer.<param index>.<name>``: optimiser moments (training
                       checkpoints only)
metadata ``format``    ``labelfree3d-checkpoint``
metadata ``version``   ``1``
metadata ``model``     JSON model spec, enough for `build_model` to rebuild the network
metadata ``config``    JSON training configuration (YAML-equivalent), or ``null``
metadata ``trainer``   JSON trainer state: step, epoch, optimiser hyper-parameters per
                       group, AMP scaler state (training checkpoints only), or ``null``
metadata ``model_sha256``      sha256 of the ``model.*`` tensors (`payload_digest`)
metadata ``optimizer_sha256``  sha256 of the ``optimizer.*`` tensors (training checkpoints)
=====================  =============================================================

Tensors are moved to the CPU before saving and nothing device-specific is recorded, so a
checkpoint written on a GPU loads on a machine without CUDA (`map_location="cpu"`). Files are
written to a temporary name and renamed, so a crash never leaves a truncated checkpoint; the
digests are checked on reading, so a file truncated or damaged later (a copy cut short, a
bad disk) is refused with "checkpoint is truncated or corrupt" instead of loading wrong
weights. Checkpoints written before the digests existed load without the check.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labelfree3d.errors import DependencyError, FormatError, InputError, ParameterError
from labelfree3d.io.atomic import atomic_path

if TYPE_CHECKING:
    import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "Checkpoint",
    "save_checkpoint",
    "read_checkpoint",
    "load_backbone",
    "load_model",
    "payload_digest",
    "resolve_device",
]

CHECKPOINT_FORMAT = "labelfree3d-checkpoint"
CHECKPOINT_VERSION = "1"


def resolve_device(map_location: Any = "cpu") -> torch.device:
    """A torch device from "cpu", "cuda", "cuda:1", "auto" or a `torch.device`.

    "auto" picks CUDA when available. Asking for CUDA on a machine without it raises
    `DependencyError` rather than failing later inside a kernel.
    """
    import torch

    if map_location is None or map_location == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(map_location)
    except (RuntimeError, TypeError) as error:
        raise ParameterError(f"not a device: {map_location!r} (use cpu, cuda, cuda:N or auto)") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DependencyError(f"device {map_location!r} requested but CUDA is not available here; load with map_location='cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DependencyError(f"device {map_location!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type != "cpu":
        raise ParameterError(f"unsupported device {map_location!r} (use cpu, cuda, cuda:N or auto)")
    return device


def payload_digest(tensors: dict[str, Any], prefix: str) -> str:
    """Hex sha256 over the CPU tensors of `tensors` whose key starts with `prefix`.

    Covers each key, dtype, shape and the raw bytes, in key order, so a renamed, reshaped or
    altered tensor changes the digest.
    """
    import torch

    digest = hashlib.sha256()
    for key in sorted(k for k in tensors if k.startswith(prefix)):
        value = tensors[key]
        digest.update(f"{key}|{value.dtype}|{tuple(value.shape)}\n".encode())
        digest.update(value.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _check_digest(metadata: dict[str, str], name: str, tensors: dict[str, Any], prefix: str, path: Path) -> None:
    expected = metadata.get(name)
    if expected is not None and payload_digest(tensors, prefix) != expected:
        raise FormatError(f"checkpoint is truncated or corrupt ({prefix}* tensors do not match their sha256)", path)


@dataclass
class Checkpoint:
    """A checkpoint read back.

    Attributes:
        model_spec: mapping for `build_model`.
        model_state: state dict of the model (tensors on the requested device).
        config: the training configuration as a plain mapping, or None.
        trainer_state: step, epoch, optimiser groups, scaler state..., or None.
        optimizer_state: per parameter index, its optimiser tensors, or None.
    """

    model_spec: dict[str, Any]
    model_state: dict[str, Any]
    config: dict[str, Any] | None
    trainer_state: dict[str, Any] | None
    optimizer_state: dict[int, dict[str, Any]] | None


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Any,
    config: dict[str, Any] | None = None,
    trainer_state: dict[str, Any] | None = None,
    optimizer: Any = None,
) -> Path:
    """Write a checkpoint atomically and return its path.

    Args:
        path: destination `.safetensors` file.
        model: the model (a DDP wrapper is unwrapped).
        config: training configuration (plain mapping) stored for provenance and resuming.
        trainer_state: JSON-able trainer state (step, epoch, scaler...), stored with the
            optimiser's hyper-parameters when `optimizer` is given.
        optimizer: optimiser whose state is saved for resuming (None for model-only exports).
    """
    from safetensors.torch import save_file

    from labelfree3d.models.registry import model_spec

    inner = getattr(model, "module", model)
    tensors = {f"model.{key}": value.detach().to("cpu").contiguous() for key, value in inner.state_dict().items()}
    state = dict(trainer_state) if trainer_state is not None else None
    if optimizer is not None:
        optim_state = optimizer.state_dict()
        extra: dict[str, dict[str, Any]] = {}
        for index, entries in optim_state["state"].items():
            for name, value in entries.items():
                if hasattr(value, "detach"):
                    tensors[f"optimizer.{index}.{name}"] = value.detach().to("cpu").contiguous()
                else:
                    extra.setdefault(str(index), {})[name] = value
        state = state or {}
        state["optimizer_groups"] = optim_state["param_groups"]
        state["optimizer_scalars"] = extra
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": json.dumps(model_spec(inner)),
        "config": json.dumps(config),
        "trainer": json.dumps(state),
        "model_sha256": payload_digest(tensors, "model."),
    }
    if any(key.startswith("optimizer.") for key in tensors):
        metadata["optimizer_sha256"] = payload_digest(tensors, "optimizer.")
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu", with_optimizer: bool = True) -> Checkpoint:
    """Read a checkpoint (tensors placed on `map_location`).

    Raises:
        InputError: the file does not exist.
        FormatError: not a labelfree3d checkpoint (or from an unknown version), or a file that is
            truncated or corrupt (unreadable, or tensors that do not match their sha256).
        DependencyError: `map_location` asks for CUDA on a machine without it.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError("no such checkpoint file", path)
    device = resolve_device(map_location)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != CHECKPOINT_FORMAT:
                raise FormatError(f"not a labelfree3d checkpoint (format {metadata.get('format')!r})", path)
            if metadata.get("version") != CHECKPOINT_VERSION:
                raise FormatError(f"checkpoint version {metadata.get('version')!r} is not supported (expected {CHECKPOINT_VERSION})", path)
            wanted = ("model.", "optimizer.") if with_optimizer else ("model.",)
            raw = {key: handle.get_tensor(key) for key in handle.keys() if key.startswith(wanted)}
            _check_digest(metadata, "model_sha256", raw, "model.", path)
            if with_optimizer:
                _check_digest(metadata, "optimizer_sha256", raw, "optimizer.", path)
            model_state: dict[str, Any] = {}
            optimizer_state: dict[int, dict[str, Any]] = {}
            for key, value in raw.items():
                if key.startswith("model."):
                    model_state[key[len("model.") :]] = value.to(device)
                else:
                    _, index, name = key.split(".", 2)
                    optimizer_state.setdefault(int(index), {})[name] = value
            spec = json.loads(metadata["model"])
            config = json.loads(metadata.get("config", "null"))
            trainer = json.loads(metadata.get("trainer", "null"))
    except (SafetensorError, OSError, json.JSONDecodeError, KeyError, ValueError, RuntimeError) as error:
        raise FormatError(f"checkpoint is truncated or corrupt ({str(error).splitlines()[0][:160]})", path) from error
    if trainer is not None:
        for index, scalars in trainer.get("optimizer_scalars", {}).items():
            optimizer_state.setdefault(int(index), {}).update(scalars)
    return Checkpoint(spec, model_state, config, trainer, optimizer_state if with_optimizer and trainer else None)


def load_model(path: str | os.PathLike[str], map_location: Any = "cpu") -> Any:
    """Rebuild a checkpoint's model, load its weights and return it on `map_location` in eval mode.

    A checkpoint written on CUDA loads on a CPU-only machine with the default `map_location="cpu"`.
    """
    from labelfree3d.models.registry import build_model

    checkpoint = read_checkpoint(path, map_location, with_optimizer=False)
    model = build_model(checkpoint.model_spec)
    missing, unexpected = model.load_state_dict(checkpoint.model_state, strict=False)
    if missing or unexpected:
        raise FormatError(f"checkpoint weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}", path)
    return model.to(resolve_device(map_location)).eval()


def load_backbone(model: Any, path: str | os.PathLike[str]) -> None:
    """Copy a checkpoint's backbone weights (`backbone.*`) into `model.backbone`, in place.

    Lets a model start from another model's backbone, e.g. a Mask3D model from a PointINS
    pre-training run (`TrainConfig.init_backbone_from`).

    Raises:
        ParameterError: `model` has no backbone.
        FormatError: the checkpoint holds no backbone, or one of another architecture.
    """
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        raise ParameterError(f"a {getattr(model, 'model_name', type(model).__name__)!r} model has no backbone to initialise")
    checkpoint = read_checkpoint(path, "cpu", with_optimizer=False)
    state = {key[len("backbone.") :]: value for key, value in checkpoint.model_state.items() if key.startswith("backbone.")}
    if not state:
        raise FormatError("the checkpoint holds no backbone weights", path)
    wanted = backbone.state_dict()
    wrong = [key for key in wanted if key not in state or state[key].shape != wanted[key].shape]
    if wrong or len(state) != len(wanted):
        theirs = checkpoint.model_spec.get("backbone"), checkpoint.model_spec.get("input")
        raise FormatError(f"its backbone does not fit the model's (first mismatch {wrong[:1]}); its backbone and input: {theirs}", path)
    backbone.load_state_dict(state)
