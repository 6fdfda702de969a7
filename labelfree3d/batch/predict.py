"""`predict_scans`: a trained model over many scans through the batch engine (`labelfree3d predict`).

Each worker loads the checkpoint once (the engine's per-worker `setup`) and keeps the model for
all its scans; a task reads its own scan, predicts full-resolution masks and writes them
atomically as `<output>/<scene>.npz`, returning only counts and timings. The default runs in
this process (`workers=1`), which suits one GPU or a few scans; worker processes pay when many
scans are read and voxelised on the CPU.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labelfree3d.batch.engine import BatchRun, run_batch
from labelfree3d.io.atomic import check_output

__all__ = ["predict_scans", "predict_scan", "load_predictor"]

# per worker process: (checkpoint, settings, device) -> Predictor, so a worker loads each model once
_PREDICTORS: dict[tuple[str, str, str], Any] = {}


def load_predictor(checkpoint: str, settings_json: str, device: str) -> Any:
    """The `Predictor` of `checkpoint` with the inference `settings` (JSON) on `device`, loaded once per process.

    Settings stored in the checkpoint's config ("predict") are the base; `settings` override them.
    """
    key = (checkpoint, settings_json, device)
    if key not in _PREDICTORS:
        from labelfree3d.models._params import dataclass_from_dict
        from labelfree3d.models.checkpoint import read_checkpoint, resolve_device
        from labelfree3d.models.predict import PredictConfig, Predictor

        stored = read_checkpoint(checkpoint, map_location="cpu", with_optimizer=False).config or {}
        values = dict(stored.get("predict") or {})
        values.update(json.loads(settings_json))
        config = dataclass_from_dict(PredictConfig, values, "predict")
        _PREDICTORS[key] = Predictor.from_checkpoint(checkpoint, config, device=str(resolve_device(device)))
    return _PREDICTORS[key]


def predict_scan(
    path: Path, checkpoint: str, settings_json: str, device: str, output: str, to_file: bool, input_format: str | None
) -> dict[str, Any]:
    """Worker task: predict one scan and write `<output>/<scene>.npz` (or `output` itself when `to_file`).

    Returns:
        {"scene", "points", "masks", "seconds" (prediction alone), "file"}.
    """
    from labelfree3d.io import read_scene, write_predictions

    predictor = load_predictor(checkpoint, settings_json, device)
    scene = read_scene(path, format=input_format)
    started = time.perf_counter()
    masks = predictor.predict(scene)
    seconds = time.perf_counter() - started
    target = Path(output) if to_file else Path(output) / f"{scene.name}.npz"
    # the scan it came from: lets a resumed self-training stage skip scans already predicted
    metadata = {"source_scan": str(path)}
    write_predictions(masks, target, scene_name=scene.name, method=f"checkpoint:{Path(checkpoint).name}", metadata=metadata)
    return {"scene": scene.name, "points": scene.num_points, "masks": len(masks), "seconds": seconds, "file": str(target)}


def predict_scans(
    scans: list[Path],
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    settings: Mapping[str, Any] | None = None,
    *,
    device: str = "auto",
    input_format: str | None = None,
    to_file: bool = False,
    workers: int | None = 1,
    threads_per_worker: int | None = None,
    progress: Any = False,
) -> BatchRun:
    """Predict every scan with the model of `checkpoint`; a scan that fails is recorded, the others go on.

    Args:
        scans: scan paths (`labelfree3d.io.scans.list_scans`).
        checkpoint: a `.safetensors` checkpoint written by `labelfree3d train`.
        output: output folder (`<scene>.npz` per scan), or the `.npz` file itself when `to_file`.
        settings: `PredictConfig` overrides (docs/training.md).
        device: "auto", "cpu", "cuda" or "cuda:N".
        input_format: reader name for the scans (None: detected).
        to_file: write the single scan's masks to `output` itself.
        workers, threads_per_worker, progress: as in `run_batch` (default: this process).

    Returns:
        The engine's `BatchRun`; each successful result's value is `predict_scan`'s dict.

    Raises:
        InputError / ParameterError: a missing or unreadable checkpoint, or bad settings (checked
        here before any scan is read).
    """
    settings_json = json.dumps(dict(settings or {}), sort_keys=True, default=str)
    checkpoint, output = str(checkpoint), str(output)
    # a bad output fails once, here, rather than once per scan
    check_output(output, inputs=[checkpoint, *scans] if to_file else [checkpoint], folder=not to_file)
    load_predictor(checkpoint, settings_json, device)  # fails here, once, on a bad checkpoint or setting
    task = functools.partial(
        predict_scan, checkpoint=checkpoint, settings_json=settings_json, device=device, output=output, to_file=to_file,
        input_format=input_format,
    )  # fmt: skip
    setup = functools.partial(load_predictor, checkpoint, settings_json, device)
    return run_batch(
        task, scans, workers=workers, threads_per_worker=threads_per_worker, setup=setup, progress=progress,
        description="predicting",
    )  # fmt: skip
