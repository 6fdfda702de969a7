"""`run_benchmark`: registered segmenters on every scan of a folder, judged against its ground truth.

What `labelfree3d benchmark DATA` runs (docs/evaluation.md, "Benchmarking methods"). Each
worker of the batch engine (`labelfree3d.batch.engine.run_batch`) reads one scan, runs every
selected method on it (`make_segmenter(method, **settings).segment(scene)`, timed alone),
evaluates each method's masks against the scan's ground truth at once and sends back only
small tables (an `InstanceEvaluator` holding one scene, mask counts, seconds, errors, and
PNG thumbnails for a few scans). Here the evaluators are merged per method, so AP / AP50 /
AP25 are pooled over the folder as a benchmark does, with the same numbers as
`evaluate_scenes` over all the masks.

A method that raises on a scan is recorded with its one-line error and scored as if it had
predicted nothing there (its ground truth counts as missed), so a method cannot gain by
failing. Scans without ground truth are not segmented and are listed; scans that cannot be
read are listed with their errors.

`labelfree3d.evaluate` never imports the methods it judges; this module is where they meet.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelfree3d.batch.engine import one_line_error, run_batch
from labelfree3d.errors import InputError, ParameterError
from labelfree3d.evaluate import InstanceEvaluator, PrecisionRecallCurve, jsonable_report
from labelfree3d.evaluate.protocol import MIN_REGION_SIZE, check_void_labels
from labelfree3d.io.scans import ScanSource, list_scans

__all__ = [
    "MethodOnScan",
    "ScanOutcome",
    "MethodResult",
    "BenchmarkResult",
    "resolve_methods",
    "split_settings",
    "benchmark_scan",
    "run_benchmark",
    "THUMBNAIL_SIZE",
]

THUMBNAIL_SIZE = (240, 180)


# ---------------------------------------------------------------------- settings
def resolve_methods(methods: str | Sequence[str] | None) -> list[str]:
    """Method names from "a,b" or a list (None: every registered segmenter that needs no trained model, sorted).

    Raises:
        ParameterError: an unknown or repeated name, or an empty selection.
    """
    from labelfree3d.segment import SEGMENTERS

    if methods is None:
        return sorted(name for name, cls in SEGMENTERS.items() if not cls.requires_model)
    names = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m and m.strip()]
    if not names:
        raise ParameterError("no method selected")
    unknown = [m for m in names if m not in SEGMENTERS]
    if unknown:
        raise ParameterError(f"unknown method {unknown[0]!r}; available: {', '.join(sorted(SEGMENTERS))}")
    repeated = next((m for m in names if names.count(m) > 1), None)
    if repeated is not None:
        raise ParameterError(f"method {repeated!r} is selected twice")
    return names


def _parameters_of(method: str) -> set[str]:
    from labelfree3d.segment import SEGMENTERS

    return {f.name for f in dataclasses.fields(SEGMENTERS[method])}  # type: ignore[arg-type]


def split_settings(settings: Mapping[str, Any] | None, methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per-method settings from `{"method.key": value, "key": value}` (what `--set` gives).

    `method.key` sets `key` of that method only. A bare `key` sets it for every selected
    method, and is an error unless each of them has that parameter (a typo, or a key that means
    something else to another method, would otherwise go unnoticed). A `method.key` wins over a
    bare `key`. Values are checked when the segmenters are built (`make_segmenter`).

    Raises:
        ParameterError: an unknown method prefix, a method that is not selected, or a bare key
            some selected method lacks.
    """
    from labelfree3d.segment import SEGMENTERS

    per_method: dict[str, dict[str, Any]] = {m: {} for m in methods}
    prefixed = []
    for key, value in (settings or {}).items():
        if "." in key:
            prefixed.append((key, value))
            continue
        lacking = [m for m in methods if key not in _parameters_of(m)]
        if lacking:
            raise ParameterError(
                f"--set {key}: {', '.join(lacking)} {'has' if len(lacking) == 1 else 'have'} no parameter {key!r}; "
                f"write METHOD.{key}=VALUE to set it for one method"
            )
        for method in methods:
            per_method[method][key] = value
    for key, value in prefixed:
        method, _, name = key.partition(".")
        if method not in SEGMENTERS:
            raise ParameterError(f"--set {key}: unknown method {method!r}; available: {', '.join(sorted(SEGMENTERS))}")
        if method not in per_method:
            raise ParameterError(f"--set {key}: {method} is not among the selected methods ({', '.join(methods)})")
        if not name:
            raise ParameterError(f"--set {key}: expected METHOD.KEY=VALUE")
        per_method[method][name] = value
    return per_method


# ---------------------------------------------------------------------- one scan (in a worker)
@dataclass
class MethodOnScan:
    """One method on one scan: its evaluation (one scene), mask count, time and error."""

    evaluator: InstanceEvaluator
    masks: int = 0
    seconds: float | None = None
    error: str | None = None
    traceback: str | None = None


@dataclass
class ScanOutcome:
    """What a worker sends back for one scan (small: no point arrays)."""

    name: str
    points: int
    dataset: str | None
    has_gt: bool
    methods: dict[str, MethodOnScan] = field(default_factory=dict)
    thumbnails: dict[str, bytes] | None = None  # "gt" and method name -> PNG bytes
    thumbnail_error: str | None = None
    categories: frozenset[str] = frozenset()  # the ground truth's category names, to check --void-labels


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def benchmark_scan(
    path: Path,
    methods: Mapping[str, Mapping[str, Any]],
    *,
    format: str | None = None,
    void_labels: Sequence[str] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    thumbnail_scans: frozenset[str] = frozenset(),
    thumbnail_size: tuple[int, int] = THUMBNAIL_SIZE,
) -> ScanOutcome:
    """The per-scan task of `run_benchmark`: read, segment with each method, evaluate, render.

    Raises:
        InputError: the scan cannot be read (the engine records it as a failed scan).
    """
    import time as _time

    from labelfree3d.io import read_scene
    from labelfree3d.segment import make_segmenter
    from labelfree3d.structures import InstanceMasks

    scene = read_scene(path, format=format)
    dataset = scene.metadata.get("format", format)
    if scene.gt is None:
        return ScanOutcome(scene.name, scene.num_points, dataset, has_gt=False)
    gt = scene.gt
    if void_labels:
        if gt.instance_names is None:
            raise InputError(f"void labels need category names, which this {dataset} scan does not carry", path)
        gt = gt.with_void_names(void_labels)
        scene = scene.replace(gt=gt)
    outcome = ScanOutcome(scene.name, scene.num_points, dataset, has_gt=True, categories=gt.category_names())
    predictions = {}
    for method, settings in methods.items():
        evaluator = InstanceEvaluator(**(evaluation or {}))
        entry = MethodOnScan(evaluator)
        try:
            segmenter = make_segmenter(method, **settings)
            # a copy per method: the room structure and normals a method derives are cached on the
            # Scene object, and the first method alone would pay for them in its time
            fresh = scene.replace()
            started = _time.perf_counter()
            masks = segmenter.segment(fresh)
            entry.seconds = _time.perf_counter() - started
            entry.masks = len(masks)
            predictions[method] = masks
        except Exception as error:  # recorded; the scan is scored as if nothing was predicted
            import traceback

            entry.error = one_line_error(error, path)
            entry.traceback = traceback.format_exc()
            masks = InstanceMasks.empty(scene.num_points)
        evaluator.process(scene.name, gt, masks, dataset)
        outcome.methods[method] = entry
    if str(path) in thumbnail_scans:
        try:
            from labelfree3d.viz.render import render_layers

            layers = ["gt", *(f"pred:{m}" for m in predictions)]
            images = render_layers(scene, predictions, layers, ["top"], *thumbnail_size)
            outcome.thumbnails = {"gt": _png(images["gt", "top"])}
            outcome.thumbnails.update({m: _png(images[f"pred:{m}", "top"]) for m in predictions})
        except Exception as error:  # a picture is not worth failing the scan for
            outcome.thumbnail_error = one_line_error(error, path)
    return outcome


def warm_up(methods: Mapping[str, Mapping[str, Any]]) -> None:
    """One call per method on a small generated scene, so numba compilation is not timed."""
    from labelfree3d.segment import make_segmenter
    from labelfree3d.synthetic import make_scene

    scene = make_scene("tabletop", seed=0)
    for method, settings in methods.items():
        try:
            make_segmenter(method, **settings).segment(scene)
        except Exception:  # settings meant for real scans may not suit the toy scene; timing only
            pass


# ---------------------------------------------------------------------- the folder
@dataclass
class MethodResult:
    """One method over the folder.

    Attributes:
        name: registered method name.
        settings: the overrides given (`--set`).
        parameters: every parameter of the segmenter, defaults included.
        report: `InstanceEvaluator.evaluate()` over the evaluated scans (pooled AP, AP50,
            AP25, per size, per dataset, per scene, counts, protocol).
        curves: precision/recall curve per IoU threshold key (None where undefined).
        seconds: scene -> wall time of `segment()` (scans where it succeeded).
        masks: scene -> number of masks predicted.
        failures: scene -> one-line error of the scans where the method raised.
        tracebacks: scene -> full traceback of those failures.
    """

    name: str
    settings: dict[str, Any]
    parameters: dict[str, Any]
    report: dict[str, Any]
    curves: dict[str, PrecisionRecallCurve | None]
    seconds: dict[str, float]
    masks: dict[str, int]
    failures: dict[str, str]
    tracebacks: dict[str, str] = field(default_factory=dict)

    @property
    def masks_per_scene(self) -> float:
        return float(np.mean(list(self.masks.values()))) if self.masks else float("nan")

    @property
    def seconds_per_scene(self) -> float:
        return float(np.mean(list(self.seconds.values()))) if self.seconds else float("nan")

    def summary(self) -> dict[str, Any]:
        """The row of the results table (and of the JSON), fractions in [0, 1]."""
        times = list(self.seconds.values())
        return {
            "ap": self.report["ap"],
            "ap50": self.report["ap50"],
            "ap25": self.report["ap25"],
            "masks_per_scene": self.masks_per_scene,
            "seconds_per_scene": self.seconds_per_scene,
            "seconds_median": statistics.median(times) if times else float("nan"),
            "seconds_max": max(times) if times else float("nan"),
            "failures": len(self.failures),
        }


@dataclass
class Thumbnail:
    """Top-view PNGs of one scan: "gt" and one per method that succeeded on it."""

    scene: str
    images: dict[str, bytes]


@dataclass
class BenchmarkResult:
    """Every method over the folder, and what could not be benchmarked.

    Attributes:
        data: what was given (folder, scan or list).
        scans: every scan listed.
        scenes: names of the scans evaluated (with ground truth), in order.
        methods: method name -> `MethodResult`, in the order selected.
        without_gt: scans without ground-truth instances (not segmented).
        unreadable: scan path -> one-line error, for scans that could not be read (and
            scans named like an earlier one).
        thumbnails: top-view renders of a few scans.
        workers, threads_per_worker: how the batch ran (0 workers: in this process).
        seconds: wall time of the whole run.
        protocol: the evaluation protocol (`report["protocol"]`).
    """

    data: str
    scans: list[Path]
    scenes: list[str]
    methods: dict[str, MethodResult]
    without_gt: list[str]
    unreadable: dict[str, str]
    thumbnails: list[Thumbnail]
    workers: int
    threads_per_worker: int | None
    seconds: float
    protocol: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Metrics as JSON-ready builtins (NaN -> None); PR curves and pictures left out."""
        methods = {}
        for name, result in self.methods.items():
            report = result.report
            per_scene = {}
            for scene, entry in report["per_scene"].items():
                per_scene[scene] = {
                    **{k: entry.get(k) for k in ("ap", "ap50", "ap25", "points", "gt_instances", "predictions")},
                    "seconds": result.seconds.get(scene),
                    "error": result.failures.get(scene),
                }
            methods[name] = {
                **result.summary(),
                "ap_per_threshold": report["ap_per_threshold"],
                "per_size": report["per_size"],
                "per_dataset": report["per_dataset"],
                "counts": report["counts"],
                "settings": result.settings,
                "parameters": result.parameters,
                "failed_scenes": result.failures,
                "per_scene": per_scene,
            }
        payload = {
            "data": self.data,
            "scans": len(self.scans),
            "evaluated_scenes": self.scenes,
            "without_gt": self.without_gt,
            "unreadable": self.unreadable,
            "workers": self.workers,
            "threads_per_worker": self.threads_per_worker,
            "wall_seconds": self.seconds,
            "protocol": self.protocol,
            "methods": methods,
        }
        return jsonable_report(_builtin(payload))


def _builtin(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_builtin(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _thumbnail_scans(scans: Sequence[Path], count: int) -> frozenset[str]:
    if count <= 0 or not scans:
        return frozenset()
    if len(scans) <= count:
        return frozenset(str(p) for p in scans)
    picks = np.unique(np.linspace(0, len(scans) - 1, count).round().astype(int))
    return frozenset(str(scans[i]) for i in picks)


def run_benchmark(
    data: ScanSource,
    methods: str | Sequence[str] | None = None,
    settings: Mapping[str, Any] | None = None,
    *,
    method_settings: Mapping[str, Mapping[str, Any]] | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    format: str | None = None,
    void_labels: Sequence[str] | None = None,
    min_region_size: int = MIN_REGION_SIZE,
    thumbnails: int = 8,
    thumbnail_size: tuple[int, int] = THUMBNAIL_SIZE,
    warm_up_methods: bool = True,
    progress: Any = False,
) -> BenchmarkResult:
    """Run segmenters on every scan of `data` and evaluate them against the scans' ground truth.

    Args:
        data: a folder of scans, one scan, a scan list (`.txt`) or a sequence of paths
            (`labelfree3d.io.scans.list_scans`).
        methods: method names ("a,b" or a list; None: every registered segmenter).
        settings: `{"method.key": value}` for one method, `{"key": value}` for every selected
            method (what `--set` gives; see `split_settings`).
        method_settings: `{method: {key: value}}` applied first (e.g. per-dataset defaults of
            a harness); entries of unselected methods are ignored; `settings` wins.
        workers, threads_per_worker: see `labelfree3d.batch.engine.run_batch`.
        format: reader name for the scans (None: detected per scan).
        void_labels: category names treated as void (None: each reader's default).
        min_region_size: GT instances and masks under this many points are ignored / dropped.
        thumbnails: top-view renders of GT and every method for this many scans, spread over
            the list (0: none).
        thumbnail_size: (width, height) of each render in pixels.
        warm_up_methods: run each method once on a small generated scene in every worker
            before timing (numba compilation is not counted).
        progress: False, True or a `rich` console for the engine's progress bar.

    Returns:
        `BenchmarkResult`.

    Raises:
        ParameterError: unknown methods, settings or values (before any scan is read).
        InputError: `data` names no scans, no scan could be read, or none has ground truth.
    """
    from labelfree3d.segment import make_segmenter

    if isinstance(thumbnails, bool) or not isinstance(thumbnails, int) or thumbnails < 0:
        raise ParameterError(f"thumbnails must be an integer >= 0 (0: none), got {thumbnails!r}")
    names = resolve_methods(methods)
    given = split_settings(settings, names)
    per_method = {m: {**dict((method_settings or {}).get(m, {})), **given[m]} for m in names}
    parameters = {m: make_segmenter(m, **per_method[m]).get_params() for m in names}  # fails fast on bad settings
    scans = list_scans(data, format=format)
    void_rule = f"unlabelled points and instances labelled {', '.join(void_labels)}" if void_labels else None
    evaluation = {"min_region_size": min_region_size, "void_rule": void_rule, "extra_metrics": False}
    task = functools.partial(
        benchmark_scan, methods=per_method, format=format, void_labels=tuple(void_labels or ()) or None,
        evaluation=evaluation, thumbnail_scans=_thumbnail_scans(scans, thumbnails), thumbnail_size=tuple(thumbnail_size),
    )  # fmt: skip
    setup = functools.partial(warm_up, per_method) if warm_up_methods else None
    started = time.perf_counter()
    run = run_batch(task, scans, workers=workers, threads_per_worker=threads_per_worker, setup=setup,
                    progress=progress, description="benchmark")  # fmt: skip

    evaluators = {m: InstanceEvaluator(**evaluation) for m in names}
    seconds: dict[str, dict[str, float]] = {m: {} for m in names}
    masks: dict[str, dict[str, int]] = {m: {} for m in names}
    failures: dict[str, dict[str, str]] = {m: {} for m in names}
    tracebacks: dict[str, dict[str, str]] = {m: {} for m in names}
    unreadable: dict[str, str] = {}
    without_gt: list[str] = []
    scenes: list[str] = []
    pictures: list[Thumbnail] = []
    notes: list[str] = []
    for result in run.results:
        if not result.ok:
            unreadable[str(result.path)] = result.error or "failed"
            continue
        outcome: ScanOutcome = result.value
        if not outcome.has_gt:
            without_gt.append(str(result.path))
            continue
        if outcome.name in scenes:
            unreadable[str(result.path)] = (
                f"{result.path}: another scan is also named {outcome.name!r}; not evaluated twice"
            )
            continue
        scenes.append(outcome.name)
        for method in names:
            entry = outcome.methods[method]
            evaluators[method].merge(entry.evaluator)
            if entry.error is None:
                seconds[method][outcome.name] = float(entry.seconds or 0.0)
                masks[method][outcome.name] = entry.masks
            else:
                failures[method][outcome.name] = entry.error
                tracebacks[method][outcome.name] = entry.traceback or ""
        if outcome.thumbnails:
            pictures.append(Thumbnail(outcome.name, outcome.thumbnails))
        if outcome.thumbnail_error:
            notes.append(f"no thumbnails of {outcome.name}: {outcome.thumbnail_error}")
    if not scenes:
        source = data if isinstance(data, (str, os.PathLike)) else None
        if unreadable and not without_gt:
            first = next(iter(unreadable.values()))
            raise InputError(f"none of the {len(scans)} scan(s) could be read (first: {first})", source)
        raise InputError(
            f"none of the {len(scans)} scan(s) carries ground-truth instances to benchmark against", source
        )
    check_void_labels(void_labels, {c for r in run.results if r.ok and r.value.has_gt for c in r.value.categories})
    results = {}
    for method in names:
        results[method] = MethodResult(
            method, dict(per_method[method]), parameters[method], evaluators[method].evaluate(),
            evaluators[method].precision_recall_curves(), seconds[method], masks[method], failures[method], tracebacks[method],
        )  # fmt: skip
    protocol = next(iter(results.values())).report["protocol"]
    shown = str(data) if isinstance(data, (str, os.PathLike)) else ", ".join(map(str, data))
    return BenchmarkResult(
        shown, scans, scenes, results, without_gt, unreadable, pictures, run.workers, run.threads_per_worker,
        time.perf_counter() - started, protocol, notes,
    )  # fmt: skip


def format_percent(value: Any) -> str:
    """AP-style fraction as a percentage with one decimal ("–" when undefined)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{100.0 * float(value):.1f}"
