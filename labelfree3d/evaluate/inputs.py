"""File and folder inputs of `labelfree3d evaluate`: predictions, ground truth and their pairing.

Predictions are our `.npz` files (`labelfree3d.io.predictions`), a folder of them, or a ScanNet
benchmark folder (`<scene>.txt` index files next to `predicted_masks/`). A prediction's scene is
its `scene_name` key, else its file stem. Ground truth is any scan `read_scene` understands that
carries instances, a ScanNet benchmark ground-truth `<scene>.txt` (`labelfree3d.io.scannet_gt`),
or a folder of either; its scene is `Scene.name` (the file stem for a ground-truth `.txt`).

`evaluate_paths` runs one task per ground-truth scan on the batch engine
(`labelfree3d.batch.engine.run_batch`): the task reads the scan and its paired prediction file,
evaluates the scene at once and sends back a one-scene `InstanceEvaluator` (small tables),
which this process merges; only the scene-name -> prediction-file map is built here. So a
folder of hundreds of scans never sits in memory at once, and can be spread over processes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelfree3d.errors import FormatError, InputError, UnknownFormatError
from labelfree3d.evaluate.protocol import check_void_labels
from labelfree3d.io import detect_format, read_predictions, read_scannet_benchmark, read_scene
from labelfree3d.io._labels import ARRAY_FILE_ERRORS
from labelfree3d.io.scannet_gt import SCANNET_GT_FORMAT, is_scannet_gt_txt, read_scannet_gt_txt
from labelfree3d.structures import GroundTruth, InstanceMasks
from labelfree3d.structures.scene import safe_scene_name

if TYPE_CHECKING:
    from labelfree3d.evaluate.evaluator import InstanceEvaluator

__all__ = [
    "GroundTruthInput",
    "PredictionInput",
    "SceneOutcome",
    "evaluate_paths",
    "evaluate_scan",
    "ground_truth_sources",
    "load_ground_truth",
    "load_predictions",
    "pair_scenes",
    "prediction_files",
]

# the file ScanNet's script writes its results to inside the prediction folder
_SCANNET_RESULT_FILE = "semantic_instance_evaluation.txt"


@dataclass(frozen=True, eq=False)
class PredictionInput:
    """One scene's predictions and where they came from."""

    name: str
    masks: InstanceMasks
    source: Path


@dataclass(frozen=True, eq=False)
class GroundTruthInput:
    """One scene's ground truth, its dataset (the reader's format name) and its source."""

    name: str
    gt: GroundTruth
    dataset: str | None
    source: Path


# ---------------------------------------------------------------------- predictions
def _read_prediction_file(path: Path) -> PredictionInput:
    if path.suffix.lower() == ".npz":
        masks, info = read_predictions(path)
        return PredictionInput(info.get("scene_name") or path.stem, masks, path)
    if path.suffix.lower() == ".txt":
        masks, _labels = read_scannet_benchmark(path)  # class-agnostic: every label id counts
        return PredictionInput(path.stem, masks, path)
    raise InputError("not a prediction file (expected our .npz or a ScanNet benchmark <scene>.txt)", path)


def _prediction_paths(path: Path) -> list[Path]:
    if not path.exists():
        raise InputError("no such prediction file or folder", path)
    if path.is_file():
        return [path]
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix.lower() in (".npz", ".txt")
        and p.name != _SCANNET_RESULT_FILE
    )
    if not files:
        raise InputError("folder holds no prediction files (.npz, or ScanNet benchmark <scene>.txt)", path)
    return files


def _prediction_scene_name(path: Path) -> str:
    """The scene a prediction file claims, without reading its masks: the npz `scene_name`, else the stem."""
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:  # reads the zip directory, then one small member
                if "scene_name" in data.files:
                    if data["scene_name"].ndim != 0 or data["scene_name"].dtype.kind != "U":
                        raise FormatError("prediction member 'scene_name' must be one string", path)
                    return safe_scene_name(str(data["scene_name"])) if str(data["scene_name"]) else path.stem
        except ARRAY_FILE_ERRORS as error:
            raise FormatError(f"not a readable .npz prediction file ({error})", path) from error
        return path.stem
    if path.suffix.lower() == ".txt":
        return path.stem
    raise InputError("not a prediction file (expected our .npz or a ScanNet benchmark <scene>.txt)", path)


def _claim(claimed: dict[str, Path], name: str, file: Path) -> None:
    if name in claimed:
        raise InputError(f"scene {name!r} is also predicted by {claimed[name]}", file)
    claimed[name] = file


def load_predictions(path: str | os.PathLike[str]) -> list[PredictionInput]:
    """Read a prediction file or every prediction file of a folder (not recursive).

    Raises:
        InputError: missing path, a folder without prediction files, unreadable files, or two
            files claiming the same scene.
    """
    loaded: dict[str, PredictionInput] = {}
    claimed: dict[str, Path] = {}
    for file in _prediction_paths(Path(path)):
        prediction = _read_prediction_file(file)
        _claim(claimed, prediction.name, file)
        loaded[prediction.name] = prediction
    return list(loaded.values())


def prediction_files(path: str | os.PathLike[str]) -> dict[str, Path]:
    """Scene name -> prediction file, for a prediction file or a folder of them, masks unread.

    A name costs a directory listing and, for an `.npz`, its small `scene_name` member; the
    masks are read later, by the task that evaluates the scene.

    Raises:
        InputError: missing path, a folder without prediction files, an `.npz` that is no zip,
            or two files claiming the same scene.
    """
    claimed: dict[str, Path] = {}
    for file in _prediction_paths(Path(path)):
        _claim(claimed, _prediction_scene_name(file), file)
    return claimed


# ---------------------------------------------------------------------- ground truth
def _gt_txt_children(folder: Path) -> list[Path]:
    from labelfree3d.io.scans import natural_key

    return sorted((p for p in folder.iterdir() if is_scannet_gt_txt(p)), key=lambda p: natural_key(p.name))


def ground_truth_sources(path: str | os.PathLike[str], format: str | None = None) -> list[tuple[Path, str | None]]:
    """(scan, reader name or None to detect) for a ground-truth scan or each scan of a folder.

    Scans are what `labelfree3d.io.scans.list_scans` finds; a ScanNet benchmark ground-truth
    `.txt` (`format="scannet_gt_txt"`, or detected: a `.txt` whose first line is an integer) or
    a folder of them is ground truth too.

    Raises:
        InputError: the path is missing, or is neither a scan nor a folder of scans.
    """
    from labelfree3d.io.scans import is_scan, list_scans

    path = Path(path)
    if not path.exists():
        raise InputError("no such ground-truth file or folder", path)
    if format == SCANNET_GT_FORMAT:
        if path.is_file():
            return [(path, format)]
        children = _gt_txt_children(path)
        if not children:
            raise InputError("folder holds no ScanNet ground-truth <scene>.txt files", path)
        return [(child, format) for child in children]
    if format is not None:
        return [(path, format)]
    if path.is_dir() and not is_scan(path):
        try:
            return [(source, None) for source in list_scans(path)]
        except InputError:
            children = _gt_txt_children(path)
            if children:
                return [(child, SCANNET_GT_FORMAT) for child in children]
            raise InputError("neither a scan nor a folder of scans with ground truth", path) from None
    try:
        return [(path, detect_format(path))]
    except UnknownFormatError:
        if is_scannet_gt_txt(path):
            return [(path, SCANNET_GT_FORMAT)]
        raise


def _read_truth(source: Path, format: str | None, void_labels: Sequence[str] | None) -> GroundTruthInput:
    """Read one ground-truth scan, voiding `void_labels` by name (InputError naming it)."""
    if format == SCANNET_GT_FORMAT:
        name, gt, fmt = source.stem, read_scannet_gt_txt(source), format
    else:
        scene = read_scene(source, format=format)
        fmt = scene.metadata.get("format", format)
        if scene.gt is None:
            raise InputError("scan carries no ground-truth instances", source)
        name, gt = scene.name, scene.gt
    if void_labels:
        if gt.instance_names is None:
            raise InputError(f"--void-labels needs category names, which this {fmt} scan does not carry", source)
        gt = gt.with_void_names(void_labels)
    return GroundTruthInput(name, gt, fmt, source)


def load_ground_truth(
    path: str | os.PathLike[str],
    void_labels: Sequence[str] | None = None,
    format: str | None = None,
) -> Iterator[GroundTruthInput]:
    """Yield the ground truth of a scan, or of each scan in a folder, one at a time.

    Args:
        path: a scan (file or scene folder), a ScanNet ground-truth `.txt`, or a folder of
            either.
        void_labels: category names to treat as void (e.g. wall, floor, ceiling); None keeps
            the reader's own evaluated flags.
        format: reader name for `path` itself (or "scannet_gt_txt"); detected when None.

    Raises:
        InputError: unreadable scans, scans without ground-truth instances, or void labels
            requested for a format that names no categories.
    """
    for source, fmt in ground_truth_sources(path, format):
        yield _read_truth(source, fmt, void_labels)


# ---------------------------------------------------------------------- pairing
def _fit(prediction: PredictionInput, truth: GroundTruthInput) -> InstanceMasks:
    masks = prediction.masks
    if len(masks) == 0:  # an empty benchmark index cannot say how many points its scene has
        return InstanceMasks.empty(truth.gt.num_points)
    if masks.num_points != truth.gt.num_points:
        raise InputError(
            f"predictions cover {masks.num_points} points but scene {truth.name!r} ({truth.source}) has {truth.gt.num_points}",
            prediction.source,
        )
    return masks


def pair_scenes(
    predictions: Sequence[PredictionInput],
    truths: Iterable[GroundTruthInput],
    skipped: list[str] | None = None,
) -> Iterator[tuple[PredictionInput, GroundTruthInput, InstanceMasks]]:
    """Pair predictions with ground truth by scene name, lazily over the ground truth.

    One prediction and one scan are paired whatever their names. Ground truth without a
    prediction is not evaluated (ScanNet's script is driven by the prediction files too); its
    scene names are appended to `skipped`.

    Yields:
        (prediction, ground truth, masks fitted to the scene's point count).

    Raises:
        InputError (naming the prediction file): a prediction without ground truth, or one whose
            point count differs from its scene's.
    """
    skipped = [] if skipped is None else skipped
    truths = iter(truths)
    by_name = {p.name: p for p in predictions}
    first = next(truths, None)
    if first is None:
        return
    second = next(truths, None)
    if second is None and len(predictions) == 1:
        prediction = predictions[0]
        yield prediction, first, _fit(prediction, first)
        return
    seen: set[str] = set()
    chain = [first] if second is None else [first, second]
    for truth in _prepend(chain, truths):
        prediction = by_name.get(truth.name)
        if prediction is None:
            skipped.append(truth.name)
            continue
        if truth.name in seen:
            raise InputError(f"two ground-truth scans are named {truth.name!r}", truth.source)
        seen.add(truth.name)
        yield prediction, truth, _fit(prediction, truth)
    unmatched = [p for p in predictions if p.name not in seen]
    if unmatched:
        raise InputError(f"no ground-truth scan is named {unmatched[0].name!r}", unmatched[0].source)


def _prepend(items: list[GroundTruthInput], rest: Iterator[GroundTruthInput]) -> Iterator[GroundTruthInput]:
    yield from items
    yield from rest


# ---------------------------------------------------------------------- one scene (a batch task)
@dataclass
class SceneOutcome:
    """What `evaluate_scan` sends back for one ground-truth scan (small: no point arrays).

    Attributes:
        source: the ground-truth scan.
        name: its scene name; None when the scan could not be read.
        evaluator: an `InstanceEvaluator` holding this one scene; None when no prediction
            claims the scene (skipped) or when it failed.
        error: (exception class name, problem, path) of the `InputError` that stopped it.
    """

    source: Path
    name: str | None = None
    evaluator: InstanceEvaluator | None = None
    error: tuple[str, str, str | None] | None = None
    categories: frozenset[str] = frozenset()

    def raise_error(self) -> None:
        """Raise the recorded error again, same class, message and file, in this process."""
        if self.error is not None:
            kind, problem, path = self.error
            cls = {c.__name__: c for c in (InputError, FormatError, UnknownFormatError)}.get(kind, InputError)
            raise cls(problem, path)


def evaluate_scan(
    source: Path,
    *,
    format: str | None,
    predictions: Mapping[str, str | os.PathLike[str]],
    paired: str | os.PathLike[str] | None = None,
    void_labels: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> SceneOutcome:
    """The per-scan task of `evaluate_paths`: read a ground-truth scan and its prediction, evaluate.

    Args:
        source: the ground-truth scan.
        format: its reader name (None: detected; "scannet_gt_txt" for ScanNet's ground truth).
        predictions: scene name -> prediction file (`prediction_files`).
        paired: a prediction file to use whatever the scene's name (one prediction, one scan).
        void_labels: category names treated as void.
        options: `InstanceEvaluator` options.

    Returns:
        `SceneOutcome`; input problems (unreadable files, a point-count mismatch) are recorded
        in it rather than raised, so that the scene's name still comes back with them.
    """
    from labelfree3d.evaluate.evaluator import InstanceEvaluator

    outcome = SceneOutcome(Path(source))
    try:
        truth = _read_truth(outcome.source, format, void_labels)
        outcome.name = truth.name
        outcome.categories = truth.gt.category_names()
        file = paired if paired is not None else predictions.get(truth.name)
        if file is None:
            return outcome
        prediction = _read_prediction_file(Path(file))
        masks = _fit(prediction, truth)
        evaluator = InstanceEvaluator(**dict(options or {}))
        evaluator.process(truth.name, truth.gt, masks, truth.dataset)
    except InputError as error:
        outcome.error = (type(error).__name__, error.problem, error.path)
        return outcome
    outcome.evaluator = evaluator
    return outcome


class _RemoteTraceback(Exception):
    """The traceback of a failure in a worker, chained to the error raised here (`--debug` shows it)."""


# ---------------------------------------------------------------------- the whole evaluation
# `workers=None` evaluates in this process unless there are this many ground-truth scans and
# this many cores: a scene takes ~0.03-0.1 s (reading included), starting a local cluster and
# its workers' imports 2-4 s, so processes pay only for hundreds of scans (docs/benchmarks.md)
AUTO_PARALLEL_MIN_SCANS = 200
AUTO_PARALLEL_MIN_CORES = 4


def evaluate_paths(
    predictions: str | os.PathLike[str],
    ground_truth: str | os.PathLike[str],
    *,
    void_labels: Sequence[str] | None = None,
    gt_format: str | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    progress: Any = False,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate prediction file(s) against ground-truth scan(s) (what `labelfree3d evaluate` runs).

    One batch task per ground-truth scan (`evaluate_scan`) reads the scan and its prediction
    file and evaluates the scene; the one-scene evaluators are merged here in scan order, so
    the numbers are those of one `InstanceEvaluator` over every scene. If a scan fails, the
    first failure (in scan order) is raised: a partial evaluation is never reported.

    Args:
        predictions: `.npz` prediction file, folder of them, or ScanNet benchmark folder.
        ground_truth: scan or folder of scans with instances, or ScanNet ground-truth `.txt`
            file(s).
        void_labels: category names treated as void (None: the reader's choice).
        gt_format: reader name for `ground_truth` (or "scannet_gt_txt"); detected when None.
        workers: worker processes (`labelfree3d.batch.engine.run_batch`); 0 or 1: in this
            process; None: one per core from `AUTO_PARALLEL_MIN_SCANS` scans on machines with
            `AUTO_PARALLEL_MIN_CORES` cores, else in this process.
        threads_per_worker: thread cap of each scan's numerical libraries (None: cores /
            workers; no cap in this process).
        progress: False, True or a `rich` console for the engine's progress bar.
        **options: `InstanceEvaluator` options.

    Returns:
        The evaluator's report plus "skipped_gt_scenes" (scans without predictions) and
        "inputs" (the prediction and ground-truth paths).

    Raises:
        InputError (naming the file): unreadable inputs, a prediction without ground truth,
            two ground-truth scans of one name, a point-count mismatch, or no scene to evaluate.
        ParameterError: invalid `workers`, `threads_per_worker` or evaluator options.
    """
    from labelfree3d.batch.engine import available_cores, run_batch
    from labelfree3d.evaluate.evaluator import InstanceEvaluator

    if void_labels and "void_rule" not in options:
        options["void_rule"] = f"unlabelled points and instances labelled {', '.join(void_labels)}"
    evaluator = InstanceEvaluator(**options)  # checks the options before any file is read
    files = prediction_files(predictions)
    sources = ground_truth_sources(ground_truth, gt_format)
    paired = next(iter(files.values())) if len(files) == 1 and len(sources) == 1 else None
    if workers is None and (len(sources) < AUTO_PARALLEL_MIN_SCANS or available_cores() < AUTO_PARALLEL_MIN_CORES):
        workers = 0
    # ground_truth_sources names one reader for all (None: detected per scan, as a folder's mix needs)
    fmt = sources[0][1]
    task = functools.partial(
        evaluate_scan, format=fmt, predictions=files, paired=paired,
        void_labels=tuple(void_labels or ()) or None, options=options,
    )  # fmt: skip
    paths = [source for source, _ in sources]
    run = run_batch(
        task, paths, workers=workers, threads_per_worker=threads_per_worker, progress=progress, description="evaluate"
    )

    skipped: list[str] = []
    seen: set[str] = set()
    categories: set[str] = set()
    for source, result in zip(paths, run.results):  # in scan order: the first failure is raised
        if not result.ok:  # not an InputError: a bug, or a worker that died
            raise InputError(result.error or f"{source}: failed") from _RemoteTraceback(result.traceback or "")
        outcome: SceneOutcome = result.value
        if outcome.name is None:
            outcome.raise_error()
        if paired is None:
            if outcome.evaluator is None and outcome.error is None:
                skipped.append(outcome.name)
                continue
            if outcome.name in seen:
                raise InputError(f"two ground-truth scans are named {outcome.name!r}", source)
            seen.add(outcome.name)
        outcome.raise_error()
        categories |= outcome.categories
        evaluator.merge(outcome.evaluator)
    if paired is None:
        unmatched = [(name, file) for name, file in files.items() if name not in seen]
        if unmatched:
            raise InputError(f"no ground-truth scan is named {unmatched[0][0]!r}", unmatched[0][1])
    if len(evaluator) == 0:
        raise InputError("no ground-truth scan found to evaluate against", ground_truth)
    check_void_labels(void_labels, categories)
    report = evaluator.evaluate()
    report["skipped_gt_scenes"] = skipped
    report["inputs"] = {"predictions": str(predictions), "ground_truth": str(ground_truth)}
    return report
