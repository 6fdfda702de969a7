"""Class-agnostic evaluation of instance masks, reproducing ScanNet's benchmark script exactly.

* `InstanceEvaluator` / `evaluate_scenes`: AP, AP50, AP25 (ScanNet's `evaluate_semantic_instance.py`
  with every class folded into one), per GT size, per dataset and per scene, plus panoptic
  quality, Hungarian-matched metrics and the adjusted Rand index.
* `compute_scene_overlaps` / `scannet_ap`: the vectorised core, usable on its own.
* `load_predictions` / `load_ground_truth` / `pair_scenes`: file and folder inputs;
  `labelfree3d.evaluate.inputs.evaluate_paths` (the CLI) runs one task per ground-truth scan on
  the batch engine and merges the one-scene evaluators.

This package judges methods and so never imports them (segment/, recipes/, models/...): it
depends only on `labelfree3d.structures`, `labelfree3d.errors`, `labelfree3d.io` and the batch
engine `labelfree3d.batch.engine` (which imports none of them either).
The protocol is written up in docs/evaluation.md.
"""

from labelfree3d.evaluate.ap import PrecisionRecallCurve, scannet_ap, scannet_precision_recall
from labelfree3d.evaluate.evaluator import InstanceEvaluator, evaluate_scenes, jsonable_report
from labelfree3d.evaluate.inputs import load_ground_truth, load_predictions, pair_scenes
from labelfree3d.evaluate.overlaps import SceneOverlaps, compute_scene_overlaps
from labelfree3d.evaluate.protocol import (
    AP_THRESHOLDS,
    DEFAULT_VOID_LABELS,
    MIN_REGION_SIZE,
    SIZE_BUCKETS,
    THRESHOLDS,
)

__all__ = [
    "InstanceEvaluator",
    "evaluate_scenes",
    "jsonable_report",
    "scannet_ap",
    "scannet_precision_recall",
    "PrecisionRecallCurve",
    "SceneOverlaps",
    "compute_scene_overlaps",
    "load_predictions",
    "load_ground_truth",
    "pair_scenes",
    "AP_THRESHOLDS",
    "THRESHOLDS",
    "MIN_REGION_SIZE",
    "SIZE_BUCKETS",
    "DEFAULT_VOID_LABELS",
]
