"""The layers a scene can be looked at through, and their colours, shared by renders and viewer.

A layer is named by a key:

=====================  ======================================================================
``rgb``                the scan's own colours (a height ramp when it has none)
``gt``                 ground-truth instances (void-class instances muted, unlabelled gray)
``pred:NAME``          prediction set NAME, one colour per mask (overlaps: most confident wins)
``superpoints``        the scene's over-segmentation
``confidence:NAME``    the score of the mask each point shows in ``pred:NAME`` (viridis)
=====================  ======================================================================

Colours come from `labelfree3d.viz.palette`, indexed by instance id / mask index, so a layer
looks the same in a PNG render and in the HTML viewer.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from labelfree3d.errors import InputError, ParameterError
from labelfree3d.structures import GroundTruth, InstanceMasks, Scene
from labelfree3d.viz.palette import UNASSIGNED_GRAY, confidence_colors, muted, palette

__all__ = [
    "layer_keys",
    "layer_title",
    "point_colors",
    "rgb_colors",
    "gt_color_table",
    "compact_labels",
    "up_vector",
    "check_predictions",
]

PREDICTION_PREFIX = "pred:"
CONFIDENCE_PREFIX = "confidence:"


def check_predictions(scene: Scene, predictions: Mapping[str, InstanceMasks] | None) -> dict[str, InstanceMasks]:
    """The prediction sets as a dict, after checking each covers the scene's N points.

    Raises:
        InputError: a set's point count differs from the scene's (names the set).
    """
    checked = dict(predictions or {})
    for name, masks in checked.items():
        if masks.num_points != scene.num_points:
            raise InputError(
                f"prediction set {name!r} covers {masks.num_points} points, the scene has {scene.num_points}",
                scene.source,
            )
    return checked


def layer_keys(scene: Scene, predictions: Mapping[str, InstanceMasks] | None = None) -> list[str]:
    """Keys of every layer `scene` with `predictions` offers, in display order.

    RGB first, then ground truth, each prediction set, superpoints and each set's confidence.
    """
    names = list(predictions or {})
    keys = ["rgb"]
    if scene.gt is not None:
        keys.append("gt")
    keys += [PREDICTION_PREFIX + name for name in names]
    if scene.superpoints is not None:
        keys.append("superpoints")
    keys += [CONFIDENCE_PREFIX + name for name in names]
    return keys


def layer_title(key: str, scene: Scene | None = None) -> str:
    """Human-readable name of a layer key, e.g. "confidence: unscene3d"."""
    if key == "rgb":
        return "RGB" if scene is None or scene.colors is not None else "height (scan has no colour)"
    if key == "gt":
        return "ground truth"
    if key == "superpoints":
        return "superpoints"
    if key.startswith(PREDICTION_PREFIX):
        return key[len(PREDICTION_PREFIX) :]
    if key.startswith(CONFIDENCE_PREFIX):
        return f"confidence: {key[len(CONFIDENCE_PREFIX) :]}"
    raise ParameterError(f"unknown layer {key!r}")


def up_vector(scene: Scene) -> np.ndarray:
    """(3,) float64 unit vector pointing up in the scene's coordinates.

    The gravity axis measured by the structure detector (the floor's or table's normal), which
    starts from the frame's prior: z-up for ScanNet, S3DIS, LiDAR and our synthetic scenes, y down
    for organized depth-camera clouds such as OSD (`labelfree3d.segment.structure.gravity_prior`).
    """
    from labelfree3d.segment.structure import scene_structure

    return np.asarray(scene_structure(scene).up, dtype=np.float64)


def rgb_colors(scene: Scene) -> np.ndarray:
    """(N, 3) uint8 colours of the scan itself; a gray height ramp (low dark) without colours."""
    if scene.colors is not None:
        return np.round(np.clip(scene.colors, 0.0, 1.0) * 255.0).astype(np.uint8)
    height = scene.points.astype(np.float64) @ up_vector(scene)
    span = float(height.max() - height.min()) if height.size else 0.0
    fraction = (height - height.min()) / span if span > 0 else np.full(height.shape, 0.5)
    gray = np.round(90.0 + 140.0 * fraction).astype(np.uint8)
    return np.repeat(gray[:, None], 3, axis=1)


def gt_color_table(gt: GroundTruth) -> np.ndarray:
    """(K, 3) uint8 colour of each ground-truth instance id; void-class instances muted."""
    table = palette(gt.num_instances)
    void = ~np.asarray(gt.instance_evaluated, dtype=bool)
    table[void] = muted(table[void])
    return table


def compact_labels(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber (N,) ids to [0, K) in ascending id order, negatives to -1; returns (labels, K).

    ScanNet's superpoint ids are vertex indices (up to N), so they are compacted before they
    index a colour table.
    """
    ids = np.asarray(ids, dtype=np.int64)
    labels = np.full(ids.shape[0], -1, dtype=np.int64)
    valid = ids >= 0
    unique, inverse = np.unique(ids[valid], return_inverse=True)
    labels[valid] = inverse
    return labels, int(unique.shape[0])


def _paint(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
    out = np.full((labels.shape[0], 3), UNASSIGNED_GRAY, dtype=np.uint8)
    assigned = labels >= 0
    out[assigned] = table[labels[assigned]]
    return out


def point_colors(scene: Scene, predictions: Mapping[str, InstanceMasks] | None, key: str) -> np.ndarray:
    """(N, 3) uint8 colour of every point of `scene` in layer `key` (see the module docstring).

    Raises:
        ParameterError: the layer does not exist for this scene (no GT, no such prediction set).
    """
    predictions = predictions or {}
    if key == "rgb":
        return rgb_colors(scene)
    if key == "gt":
        if scene.gt is None:
            raise ParameterError("layer 'gt': the scene has no ground truth")
        return _paint(scene.gt.instance_ids, gt_color_table(scene.gt))
    if key == "superpoints":
        if scene.superpoints is None:
            raise ParameterError("layer 'superpoints': the scene has no superpoints")
        labels, count = compact_labels(scene.superpoints)
        return _paint(labels, palette(count))
    for prefix in (PREDICTION_PREFIX, CONFIDENCE_PREFIX):
        if key.startswith(prefix):
            name = key[len(prefix) :]
            if name not in predictions:
                raise ParameterError(f"layer {key!r}: no prediction set named {name!r} (have {sorted(predictions)})")
            masks = predictions[name]
            table = palette(len(masks)) if prefix == PREDICTION_PREFIX else confidence_colors(masks.scores)
            return _paint(masks.to_labels(), table)
    raise ParameterError(f"unknown layer {key!r}; layers are rgb, gt, superpoints, pred:NAME, confidence:NAME")
