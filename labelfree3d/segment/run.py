"""Run a registered segmenter on a scan file and save the result: the work behind `labelfree3d segment`.

`segment_file` reads any scan `read_scene` understands, runs `make_segmenter(method, **settings)`,
writes the masks (`labelfree3d.io.write_segmentation`: npz, ScanNet benchmark folder or coloured
PLY) and, when the scan carries ground truth, evaluates them with ScanNet's class-agnostic
protocol. `describe_methods` lists the registered methods for `labelfree3d methods`.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelfree3d.errors import InputError, LabelFree3DError
from labelfree3d.io import SEGMENTATION_FORMATS, read_scene, write_segmentation
from labelfree3d.io.atomic import check_output
from labelfree3d.io.segmentation_output import segmentation_format_for
from labelfree3d.segment.base import SEGMENTERS, Segmenter, make_segmenter
from labelfree3d.segment.memory import check_segment_memory
from labelfree3d.status import report_status
from labelfree3d.structures import InstanceMasks, Scene

__all__ = [
    "DEFAULT_METHODS",
    "SegmentationRun",
    "default_method",
    "default_output_path",
    "describe_methods",
    "segment_file",
    "segment_scene",
]

# The method `labelfree3d segment SCAN` runs without --method, by kind of scan
# (`labelfree3d.segment.structure.scan_kind`). Chosen on the selection split of the dev data
# (docs/results.md, "Default method per kind of scan"); LiDAR has no instance ground truth here,
# so it gets the classic ground removal + Euclidean clustering of LiDAR pipelines.
DEFAULT_METHODS: dict[str, str] = {
    "room_mesh": "felzenszwalb",
    "room_cloud": "felzenszwalb",
    "tabletop_frame": "felzenszwalb",
    "lidar_sweep": "plane_euclidean",
}


def default_method(scene: Scene) -> str:
    """The registered method `segment` uses for `scene` when none is named (`DEFAULT_METHODS`)."""
    from labelfree3d.segment.structure import scan_kind

    return DEFAULT_METHODS[scan_kind(scene)]


@dataclass
class SegmentationRun:
    """What one `segment_file` call did.

    Attributes:
        scene: the scan that was segmented.
        masks: the predicted masks over its points.
        method: registered method name.
        parameters: every parameter of the segmenter, defaults included.
        seconds: wall time of `segment()` alone (reading and writing excluded).
        output: the written file (for "scannet", the scene's index file), or None.
        format: the output format.
        metrics: AP / AP50 / AP25 (fractions) when the scan has ground truth with evaluated
            instances, else None.
    """

    scene: Scene
    masks: InstanceMasks
    method: str
    parameters: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    output: Path | None = None
    format: str = "npz"
    metrics: dict[str, float] | None = None


def segment_scene(scene: Scene, method: str | None = None, settings: dict[str, Any] | None = None) -> SegmentationRun:
    """Segment an in-memory scene with a registered method and time it.

    Args:
        scene: the scan.
        method: registered name (see `describe_methods`); None = `default_method(scene)`.
        settings: parameter overrides, coerced to the parameters' types (`make_segmenter`).

    Returns:
        `SegmentationRun` without output or metrics.
    """
    method = default_method(scene) if method is None else method
    segmenter = make_segmenter(method, **(settings or {}))
    check_segment_memory(segmenter, scene)
    started = time.perf_counter()
    masks = _segment_naming_the_scan(segmenter, scene, scene.source)
    seconds = time.perf_counter() - started
    return SegmentationRun(scene, masks, method, segmenter.get_params(), seconds)


def _segment_naming_the_scan(segmenter: Segmenter, scene: Scene, path: str | os.PathLike[str] | None) -> InstanceMasks:
    """`segmenter.segment(scene)`, with every deliberate error raised inside it naming the scan and the method.

    Geometry helpers deep inside a method know neither ("points is empty", "k=2 exceeds the 1
    reference points"); the CLI line must say which file and method failed.
    """
    try:
        return segmenter.segment(scene)
    except LabelFree3DError as error:
        if path is None or (isinstance(error, InputError) and error.path is not None):
            raise
        problem = error.problem if isinstance(error, InputError) else str(error)
        if not problem.startswith(segmenter.name):
            problem = f"{segmenter.name}: {problem}"
        if isinstance(error, InputError):
            raise type(error)(problem, path) from error
        try:
            renamed = type(error)(f"{path}: {problem}")
        except TypeError:  # a subclass with another signature: keep it as it is
            raise error from None
        raise renamed from error


def default_output_path(scene_name: str, method: str, format: str, folder: str | os.PathLike[str] = ".") -> Path:
    """`<folder>/<scene>_<method>.npz|.ply`, or the folder `<folder>/<scene>_<method>_scannet` for "scannet".

    The default folder is the working directory, not the scan's own folder, which is often read-only.
    """
    suffix = SEGMENTATION_FORMATS[format] or "_scannet"
    return Path(folder) / f"{scene_name}_{method}{suffix}"


def segment_file(
    path: str | os.PathLike[str],
    method: str | None = None,
    settings: dict[str, Any] | None = None,
    output: str | os.PathLike[str] | None = None,
    format: str | None = None,
    input_format: str | None = None,
    evaluate: bool = True,
) -> SegmentationRun:
    """Read a scan, segment it, write the masks and evaluate them against the scan's ground truth.

    Args:
        path: any scan `read_scene` reads (PLY, PCD, OSD, ScanNet folder, ...).
        method: registered method name; None = `default_method` of the scan's kind.
        settings: parameter overrides (e.g. from `--set key=value`).
        output: where to write; default `default_output_path(scene name, method, format)`.
        format: "npz", "scannet" or "ply"; default from the output's suffix, else "npz".
        input_format: reader name, detected when None.
        evaluate: compute AP / AP50 / AP25 when the scan has evaluated ground-truth instances.

    Returns:
        `SegmentationRun` with the output path and, when evaluated, the metrics.

    Raises:
        InputError / FormatError for unreadable scans, ParameterError for bad settings or an
        output suffix that contradicts `format`. Errors raised while segmenting name the scan
        (`path`) and the method. Nothing is written when segmentation fails.
    """
    format = segmentation_format_for(output, format)
    if output is not None:  # before the expensive part: never segment for an output that cannot be written
        check_output(output, inputs=[path], folder=format == "scannet")
    if method is not None:
        segmenter = make_segmenter(method, **(settings or {}))  # bad settings fail before reading
    report_status(f"reading {Path(path).name}")
    scene = read_scene(path, format=input_format)
    if method is None:
        method = default_method(scene)
        segmenter = make_segmenter(method, **(settings or {}))
    check_segment_memory(segmenter, scene)
    started = time.perf_counter()
    masks = _segment_naming_the_scan(segmenter, scene, path)
    seconds = time.perf_counter() - started
    target = Path(output) if output is not None else default_output_path(scene.name, method, format)
    check_output(target, inputs=[path], folder=format == "scannet")
    report_status(f"writing {len(masks)} masks to {target.name}")
    written = write_segmentation(scene, masks, target, format, method=method)
    run = SegmentationRun(scene, masks, method, segmenter.get_params(), seconds, written, format)
    if evaluate and scene.gt is not None and scene.gt.num_evaluated > 0:
        from labelfree3d.evaluate import evaluate_scenes

        report = evaluate_scenes({scene.name: masks}, {scene.name: scene.gt}, extra_metrics=False)
        run.metrics = {key: float(report[key]) for key in ("ap", "ap50", "ap25")}
    return run


def describe_methods() -> list[dict[str, Any]]:
    """Every registered method: name, one-line summary, parameters (name, type, default) and score rule.

    Returns:
        One dict per method, sorted by name, with keys "name", "summary", "parameters" (list of
        {"name", "type", "default"}) and "score_rule".
    """
    described = []
    for name in sorted(SEGMENTERS):
        cls = SEGMENTERS[name]
        hints = typing.get_type_hints(cls)
        parameters = []
        for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
            default = spec.default if spec.default is not dataclasses.MISSING else None
            parameters.append({"name": spec.name, "type": _type_name(hints.get(spec.name)), "default": default})
        doc = inspect.getdoc(cls) or ""
        summary = doc.splitlines()[0] if doc else ""
        described.append({"name": name, "summary": summary, "parameters": parameters, "score_rule": cls.score_rule})
    return described


def _type_name(hint: Any) -> str:
    if hint is None:
        return "any"
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")
