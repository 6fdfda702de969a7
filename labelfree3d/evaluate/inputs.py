"""File and folder inputs of `labelfree3d evaluate`: predictions, ground truth and their pairing.

Predictions are our `.npz` files (`labelfree3d.io.predictions`), a folder of them, or a ScanNet
benchmark folder (`<scene>.txt` index files next to `predicted_masks/`). A prediction's scene is
its `scene_name` key, else its file stem. Ground truth is any scan `read_scene` understands that
carries instances, or a folder of such scans; its scene is `Scene.name`. Ground-truth scans are
read one at a time and reduced immediately, so a folder of hundreds of scans never sits in
memory at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelfree3d.errors import InputError
from labelfree3d.io import detect_format, read_predictions, read_scannet_benchmark, read_scene
from labelfree3d.structures import GroundTruth, InstanceMasks

__all__ = ["PredictionInput", "GroundTruthInput", "load_predictions", "load_ground_truth", "pair_scenes", "evaluate_paths"]

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


def _read_prediction_file(path: Path) -> PredictionInput:
    if path.suffix.lower() == ".npz":
        masks, info = read_predictions(path)
        return PredictionInput(info.get("scene_name") or path.stem, masks, path)
    if path.suffix.lower() == ".txt":
        masks, _labels = read_scannet_benchmark(path)  # class-agnostic: every label id counts
        return PredictionInput(path.stem, masks, path)
    raise InputError("not a prediction file (expected our .npz or a ScanNet benchmark <scene>.txt)", path)


def load_predictions(path: str | os.PathLike[str]) -> list[PredictionInput]:
    """Read a prediction file or every prediction file of a folder (not recursive).

    Raises:
        InputError: missing path, a folder without prediction files, unreadable files, or two
            files claiming the same scene.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such prediction file or folder", path)
    if path.is_file():
        files = [path]
    else:
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in (".npz", ".txt") and p.name != _SCANNET_RESULT_FILE
        )
        if not files:
            raise InputError("folder holds no prediction files (.npz, or ScanNet benchmark <scene>.txt)", path)
    loaded: dict[str, PredictionInput] = {}
    for file in files:
        prediction = _read_prediction_file(file)
        if prediction.name in loaded:
            raise InputError(f"scene {prediction.name!r} is also predicted by {loaded[prediction.name].source}", file)
        loaded[prediction.name] = prediction
    return list(loaded.values())


def _ground_truth_sources(path: Path, format: str | None) -> list[tuple[Path, str | None]]:
    from labelfree3d.io.scans import is_scan, list_scans

    if not path.exists():
        raise InputError("no such ground-truth file or folder", path)
    if format is not None:
        return [(path, format)]
    if path.is_dir() and not is_scan(path):
        try:
            return [(source, None) for source in list_scans(path)]
        except InputError:
            raise InputError("neither a scan nor a folder of scans with ground truth", path) from None
    return [(path, detect_format(path))]


def load_ground_truth(
    path: str | os.PathLike[str],
    void_labels: Sequence[str] | None = None,
    format: str | None = None,
) -> Iterator[GroundTruthInput]:
    """Yield the ground truth of a scan, or of each scan in a folder, one at a time.

    Args:
        path: a scan (file or scene folder) or a folder of scans.
        void_labels: category names to treat as void (e.g. wall, floor, ceiling); None keeps
            the reader's own evaluated flags.
        format: reader name for `path` itself; detected when None.

    Raises:
        InputError: unreadable scans, scans without ground-truth instances, or void labels
            requested for a format that names no categories.
    """
    for source, fmt in _ground_truth_sources(Path(path), format):
        scene = read_scene(source, format=fmt)
        fmt = scene.metadata.get("format", fmt)
        if scene.gt is None:
            raise InputError("scan carries no ground-truth instances", source)
        gt = scene.gt
        if void_labels:
            if gt.instance_names is None:
                raise InputError(f"--void-labels needs category names, which this {fmt} scan does not carry", source)
            gt = gt.with_void_names(void_labels)
        yield GroundTruthInput(scene.name, gt, fmt, source)


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


def evaluate_paths(
    predictions: str | os.PathLike[str],
    ground_truth: str | os.PathLike[str],
    *,
    void_labels: Sequence[str] | None = None,
    gt_format: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate prediction file(s) against ground-truth scan(s) (what `labelfree3d evaluate` runs).

    Args:
        predictions: `.npz` prediction file, folder of them, or ScanNet benchmark folder.
        ground_truth: scan or folder of scans with instances.
        void_labels: category names treated as void (None: the reader's choice).
        gt_format: reader name for `ground_truth`; detected when None.
        **options: `InstanceEvaluator` options.

    Returns:
        The evaluator's report plus "skipped_gt_scenes" (scans without predictions) and
        "inputs" (the prediction and ground-truth paths).
    """
    from labelfree3d.evaluate.evaluator import InstanceEvaluator

    loaded = load_predictions(predictions)
    if void_labels and "void_rule" not in options:
        options["void_rule"] = f"unlabelled points and instances labelled {', '.join(void_labels)}"
    evaluator = InstanceEvaluator(**options)
    skipped: list[str] = []
    pairs = pair_scenes(loaded, load_ground_truth(ground_truth, void_labels, gt_format), skipped)
    for prediction, truth, masks in pairs:
        evaluator.process(truth.name, truth.gt, masks, truth.dataset)
    if len(evaluator) == 0:
        raise InputError("no ground-truth scan found to evaluate against", ground_truth)
    report = evaluator.evaluate()
    report["skipped_gt_scenes"] = skipped
    report["inputs"] = {"predictions": str(predictions), "ground_truth": str(ground_truth)}
    return report
