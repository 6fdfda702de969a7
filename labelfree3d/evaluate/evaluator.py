"""`InstanceEvaluator` (detectron2-style: reset / process / evaluate) and `evaluate_scenes`.

`process` reduces each scene at once to small tables (overlaps, panoptic and Hungarian counts,
ARI), so evaluating a whole dataset never holds more than one scene's points. `evaluate` pools
the tables into one report whose numbers are fractions in [0, 1] (NaN where undefined, e.g. AP
without any counted GT).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelfree3d.errors import InputError, ParameterError
from labelfree3d.evaluate.ap import PooledOverlaps, PrecisionRecallCurve, scannet_ap, scannet_precision_recall
from labelfree3d.evaluate.overlaps import SceneOverlaps, compact_gt_labels, compute_scene_overlaps
from labelfree3d.evaluate.panoptic import PanopticCounts, panoptic_counts, panoptic_quality
from labelfree3d.evaluate.protocol import MIN_REGION_SIZE, SIZE_BUCKETS, protocol_description
from labelfree3d.evaluate.unsupervised import (
    HungarianCounts,
    adjusted_rand_index,
    hungarian_counts,
    hungarian_metrics,
)
from labelfree3d.structures import GroundTruth, InstanceMasks

__all__ = ["InstanceEvaluator", "evaluate_scenes", "jsonable_report"]

UNSPECIFIED_DATASET = "unspecified"


@dataclass(frozen=True, eq=False)
class _SceneRecord:
    overlaps: SceneOverlaps
    panoptic: PanopticCounts | None
    hungarian: HungarianCounts | None
    ari: float
    void_points: int


def _paint_kept(masks: InstanceMasks, kept: np.ndarray) -> np.ndarray:
    """(N,) index into `kept` of the most confident kept mask per point, -1 where none.

    Same result as `masks.select(kept).to_labels()` without copying the masks: dropped masks
    are given a score below every kept one, so they are painted first and always overwritten,
    and the points only they cover are mapped back to -1.
    """
    if kept.shape[0] == len(masks):
        return masks.to_labels(background=-1)
    scores = np.full(len(masks), (masks.scores.min() if len(masks) else 0.0) - 1.0)
    scores[kept] = masks.scores[kept]
    painted = InstanceMasks(masks.indptr, masks.indices, scores, masks.num_points, validate=False).to_labels(background=-1)
    lookup = np.full(len(masks) + 1, -1, dtype=np.int64)  # last slot: background stays -1
    lookup[kept] = np.arange(kept.shape[0])
    return lookup[painted]


class InstanceEvaluator:
    """Accumulates scenes and reports class-agnostic ScanNet AP and companions.

    Args:
        min_region_size: GT instances and predicted masks under this many points are ignored /
            dropped (ScanNet: 100).
        size_buckets: name -> [low, high) GT size in points for the per-size breakdown
            (default: Segment3D's small / medium / large).
        void_rule: one line saying what was void, copied into the report's protocol block
            (e.g. "wall, floor, ceiling and unannotated vertices").
        extra_metrics: also compute PQ, Hungarian metrics and ARI (they need the painted
            labelling, which costs a pass over each scene's points).

    Example:
        >>> evaluator = InstanceEvaluator()
        >>> for name, gt, masks in scenes:
        ...     evaluator.process(name, gt, masks, dataset="scannet")
        >>> report = evaluator.evaluate()  # report["ap"], report["per_scene"][name]["ap50"], ...
    """

    def __init__(
        self,
        *,
        min_region_size: int = MIN_REGION_SIZE,
        size_buckets: Mapping[str, tuple[float, float]] | None = None,
        void_rule: str | None = None,
        extra_metrics: bool = True,
    ):
        if int(min_region_size) < 0:
            raise ParameterError(f"min_region_size must be >= 0, got {min_region_size}")
        self.min_region_size = int(min_region_size)
        buckets = dict(SIZE_BUCKETS if size_buckets is None else size_buckets)
        for name, bounds in buckets.items():
            if len(bounds) != 2 or not bounds[0] < bounds[1]:
                raise ParameterError(f"size bucket {name!r} must be (low, high) with low < high, got {bounds}")
        self.size_buckets = {name: (float(lo), float(hi)) for name, (lo, hi) in buckets.items()}
        self.void_rule = void_rule
        self.extra_metrics = extra_metrics
        self._records: list[_SceneRecord] = []
        self._names: set[str] = set()

    def reset(self) -> None:
        """Forget every processed scene."""
        self._records = []
        self._names = set()

    def __len__(self) -> int:
        return len(self._records)

    def process(self, scene_name: str, gt: GroundTruth, masks: InstanceMasks, dataset: str | None = None) -> None:
        """Add one scene.

        Args:
            scene_name: unique name of the scene.
            gt: its ground truth over N points (void = unlabelled and non-evaluated instances).
            masks: predicted masks over the same N points with confidences.
            dataset: optional dataset name for the per-dataset breakdown.

        Raises:
            InputError: masks and GT disagree on N, or the scene name was already processed.
        """
        if scene_name in self._names:
            raise InputError(f"scene {scene_name!r} was already evaluated")
        if masks.num_points != gt.num_points:
            raise InputError(f"scene {scene_name!r}: predictions cover {masks.num_points} points, ground truth has {gt.num_points}")
        labels = compact_gt_labels(gt)
        overlaps = compute_scene_overlaps(
            gt, masks, name=scene_name, dataset=dataset, min_region_size=self.min_region_size, gt_labels=labels
        )
        panoptic = hungarian = None
        ari = float("nan")
        if self.extra_metrics:
            segments = _paint_kept(masks, overlaps.pred_index)
            panoptic = panoptic_counts(segments, labels[0], overlaps.num_predictions, overlaps.num_gt, self.min_region_size)
            hungarian = hungarian_counts(overlaps)
            ari = adjusted_rand_index(segments, labels[0])
        void_points = int(np.count_nonzero(labels[0] < 0))
        self._records.append(_SceneRecord(overlaps, panoptic, hungarian, ari, void_points))
        self._names.add(scene_name)

    def merge(self, other: InstanceEvaluator) -> None:
        """Add the scenes `other` processed, e.g. evaluators filled in worker processes and gathered here.

        The pooled numbers are those of one evaluator that processed every scene (scenes are
        reduced to small tables in `process`, so an evaluator pickles cheaply).

        Raises:
            ParameterError: the evaluators follow different protocols (region size, buckets,
                extra metrics).
            InputError: a scene both have processed.
        """
        mine = (self.min_region_size, self.size_buckets, self.extra_metrics)
        theirs = (other.min_region_size, other.size_buckets, other.extra_metrics)
        if mine != theirs:
            raise ParameterError(f"cannot merge evaluators with different protocols: {mine} vs {theirs}")
        for record in other._records:
            if record.overlaps.name in self._names:
                raise InputError(f"scene {record.overlaps.name!r} was already evaluated")
            self._records.append(record)
            self._names.add(record.overlaps.name)

    # ------------------------------------------------------------------ reporting
    def _summary(self, records: list[_SceneRecord]) -> dict[str, Any]:
        ap = scannet_ap([r.overlaps for r in records], min_region_size=self.min_region_size)
        out: dict[str, Any] = {
            "ap": ap["ap"],
            "ap50": ap["ap50"],
            "ap25": ap["ap25"],
            "ap_per_threshold": ap["per_threshold"],
        }
        if self.extra_metrics:
            panoptic = sum((r.panoptic for r in records), PanopticCounts())  # type: ignore[misc]
            hungarian = sum((r.hungarian for r in records), HungarianCounts())  # type: ignore[misc]
            out.update(panoptic_quality(panoptic))
            out["hungarian"] = hungarian_metrics(hungarian)
            aris = np.array([r.ari for r in records])
            aris = aris[~np.isnan(aris)]
            out["ari"] = float(aris.mean()) if aris.size else float("nan")
        return out

    def evaluate(self) -> dict[str, Any]:
        """The report over every processed scene.

        Returns:
            {"ap", "ap50", "ap25", "ap_per_threshold", "pq", "sq", "rq", "panoptic",
            "hungarian", "ari", "per_size", "per_dataset", "per_scene", "counts", "protocol"};
            metrics are fractions in [0, 1] (ARI in [-0.5, 1]), NaN when undefined. PQ,
            Hungarian and ARI entries are present only with `extra_metrics`.
        """
        records = self._records
        report = self._summary(records)
        pooled = PooledOverlaps.from_scenes([r.overlaps for r in records])
        if self.extra_metrics:
            panoptic = sum((r.panoptic for r in records), PanopticCounts())  # type: ignore[misc]
            report["panoptic"] = {"tp": panoptic.tp, "fp": panoptic.fp, "fn": panoptic.fn}

        per_size = {}
        for name, (low, high) in self.size_buckets.items():
            ap = scannet_ap(pooled, min_region_size=self.min_region_size, size_range=(low, high))
            per_size[name] = {
                "range": [low, None if np.isinf(high) else high],
                "gt_instances": ap["gt_instances"],
                "ap": ap["ap"],
                "ap50": ap["ap50"],
                "ap25": ap["ap25"],
            }
        report["per_size"] = per_size

        datasets: dict[str, list[_SceneRecord]] = {}
        for record in records:
            datasets.setdefault(record.overlaps.dataset or UNSPECIFIED_DATASET, []).append(record)
        report["per_dataset"] = (
            {}
            if set(datasets) <= {UNSPECIFIED_DATASET}
            else {name: {"scenes": len(group), **self._summary(group)} for name, group in datasets.items()}
        )

        per_scene = {}
        for record in records:
            o = record.overlaps
            entry: dict[str, Any] = {
                "dataset": o.dataset,
                "points": o.num_points,
                "void_points": record.void_points,
                "gt_instances": int(np.count_nonzero(o.gt_sizes >= self.min_region_size)),
                "gt_ignored_small": int(np.count_nonzero(o.gt_sizes < self.min_region_size)),
                "predictions": o.num_predictions,
                "predictions_dropped_small": o.num_dropped,
            }
            entry.update(self._summary([record]))
            entry.pop("ap_per_threshold")
            per_scene[o.name] = entry
        report["per_scene"] = per_scene

        counted = pooled.gt_sizes >= self.min_region_size
        report["counts"] = {
            "scenes": len(records),
            "points": int(sum(r.overlaps.num_points for r in records)),
            "void_points": int(sum(r.void_points for r in records)),
            "gt_instances": int(np.count_nonzero(counted)),
            "gt_ignored_small": int(counted.shape[0] - np.count_nonzero(counted)),
            "predictions": int(pooled.pred_sizes.shape[0]),
            "predictions_dropped_small": int(sum(r.overlaps.num_dropped for r in records)),
        }
        report["protocol"] = protocol_description(self.min_region_size, self.size_buckets, self.void_rule)
        return report

    def precision_recall_curves(self, size_range: tuple[float, float] | None = None) -> dict[str, PrecisionRecallCurve | None]:
        """Precision/recall curve per IoU threshold over every processed scene.

        They are the curves whose areas are `evaluate()`'s "ap_per_threshold" (kept out of the
        report itself: they hold a point per distinct score).

        Args:
            size_range: optional [low, high) GT size in points, as in the per-size breakdown.

        Returns:
            threshold key ("0.50", ..., "0.90", "0.25") -> `PrecisionRecallCurve`, None where
            undefined (no counted GT or no scored prediction).
        """
        pooled = PooledOverlaps.from_scenes([r.overlaps for r in self._records])
        return scannet_precision_recall(pooled, min_region_size=self.min_region_size, size_range=size_range)


def evaluate_scenes(
    predictions: Mapping[str, InstanceMasks],
    ground_truth: Mapping[str, GroundTruth],
    *,
    datasets: Mapping[str, str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate predicted masks against ground truth, paired by scene name.

    Args:
        predictions: scene name -> masks over that scene's N points. Every scene named here is
            evaluated (a scene without masks: pass `InstanceMasks.empty(N)`).
        ground_truth: scene name -> ground truth; scenes without predictions are not evaluated
            (as in ScanNet's script, which is driven by the prediction files) and are listed
            under report["skipped_gt_scenes"].
        datasets: optional scene name -> dataset name.
        **options: `InstanceEvaluator` options (min_region_size, size_buckets, void_rule,
            extra_metrics).

    Returns:
        The report of `InstanceEvaluator.evaluate`, plus "skipped_gt_scenes".

    Raises:
        InputError: a predicted scene has no ground truth, or sizes disagree.
    """
    missing = [name for name in predictions if name not in ground_truth]
    if missing:
        raise InputError(f"no ground truth for predicted scene(s) {', '.join(map(repr, missing[:5]))}")
    evaluator = InstanceEvaluator(**options)
    for name, masks in predictions.items():
        evaluator.process(name, ground_truth[name], masks, None if datasets is None else datasets.get(name))
    report = evaluator.evaluate()
    report["skipped_gt_scenes"] = [name for name in ground_truth if name not in predictions]
    return report


def jsonable_report(report: Any) -> Any:
    """A copy of a report with NaN / inf replaced by None and numpy scalars by Python ones.

    JSON has no NaN; `None` (null) marks an undefined metric, e.g. AP without any GT.
    """
    if isinstance(report, Mapping):
        return {str(key): jsonable_report(value) for key, value in report.items()}
    if isinstance(report, (list, tuple)):
        return [jsonable_report(value) for value in report]
    if isinstance(report, np.generic):
        report = report.item()
    if isinstance(report, float) and not np.isfinite(report):
        return None
    return report
