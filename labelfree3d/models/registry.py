"""Model registry (Pointcept-style): models register under a name and are built from a spec.

A spec is a plain mapping, e.g. the `model:` section of a training YAML or the `model` entry of a
checkpoint's metadata: `{"name": "mask3d", "input": {...}, "backbone": {...}, "decoder": {...}}`.
Each registered class declares `config_class`, a dataclass tree validated on construction, and
takes an instance of it; `model_spec(model)` gives the spec back, so a checkpoint always holds
everything needed to rebuild its model.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from labelfree3d.errors import ParameterError
from labelfree3d.models._params import dataclass_from_dict, dataclass_to_dict

__all__ = ["MODELS", "register_model", "build_model", "model_spec", "normalize_spec", "BUILTIN_MODEL_MODULES"]

MODELS: dict[str, type] = {}

# imported on first use so that `import labelfree3d.models` stays cheap (no spconv import)
BUILTIN_MODEL_MODULES = ("labelfree3d.models.mask3d", "labelfree3d.models.pointins.model")

M = TypeVar("M", bound=type)


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator registering a model class (with a `config_class` dataclass) under `name`."""

    def decorate(cls: M) -> M:
        if name in MODELS and MODELS[name] is not cls:
            raise ValueError(f"model {name!r} registered twice")
        if not hasattr(cls, "config_class"):
            raise TypeError(f"{cls.__name__} must define config_class")
        cls.model_name = name  # type: ignore[attr-defined]
        MODELS[name] = cls
        return cls

    return decorate


def _load_builtin_models() -> None:
    for module in BUILTIN_MODEL_MODULES:
        importlib.import_module(module)


def _parse_spec(spec: Mapping[str, Any]) -> tuple[type, Any]:
    """(model class, validated config) of a spec."""
    _load_builtin_models()
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ParameterError(f"a model spec needs a 'name' (one of {', '.join(sorted(MODELS))}), got {spec!r}")
    settings = dict(spec)
    name = settings.pop("name")
    if name not in MODELS:
        raise ParameterError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    cls = MODELS[name]
    return cls, dataclass_from_dict(cls.config_class, settings, "model")


def build_model(spec: Mapping[str, Any]) -> Any:
    """Build the model a spec describes; unknown names or settings raise `ParameterError`."""
    cls, config = _parse_spec(spec)
    return cls(config)


def normalize_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with every default filled in (what `model_spec` returns for the built model)."""
    cls, config = _parse_spec(spec)
    return {"name": cls.model_name, **dataclass_to_dict(config)}


def model_spec(model: Any) -> dict[str, Any]:
    """The spec that rebuilds `model` with `build_model` (JSON/YAML-ready)."""
    inner = getattr(model, "module", model)  # unwrap DistributedDataParallel
    return {"name": inner.model_name, **dataclass_to_dict(inner.config)}
