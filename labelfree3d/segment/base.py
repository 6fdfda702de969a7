"""The `Segmenter` interface shared by every training-free method, and its registry.

A segmenter is a small scikit-learn-style estimator: a dataclass whose fields are its
parameters (with the paper's defaults, validated on construction) and one verb,
`segment(scene, features=None) -> InstanceMasks`. Methods register under a name so that the
CLI (`labelfree3d segment --method NAME --set key=value`) and configs can build them.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from labelfree3d.errors import InputError, ParameterError
from labelfree3d.geometry.structure import CEILING, SUPPORT, WALL
from labelfree3d.segment.structure import scene_structure, structure_score_factor
from labelfree3d.status import report_status
from labelfree3d.structures import InstanceMasks, Scene

__all__ = [
    "MAX_COUNT",
    "MAX_SEED",
    "SEGMENTERS",
    "STRUCTURE_MODES",
    "Segmenter",
    "check_range",
    "make_segmenter",
    "register_segmenter",
    "require_points",
    "subset_features",
    "valid_range",
]


STRUCTURE_MODES = ("remove", "support", "keep")
INT64_MAX = 2**63 - 1
#: upper bound of parameters that count points, segments or iterations: more than any scan holds
MAX_COUNT = 10**9
#: largest seed (numpy's legacy seeding and scikit-learn's random_state take 32-bit seeds)
MAX_SEED = 2**32 - 1


@dataclass
class Segmenter(ABC):
    """Base class: subclasses are dataclasses whose fields are the method's parameters.

    Subclasses implement `validate()` (raise `ParameterError` for absurd values) and
    `segment_points()`, which segments whatever scene it is given. `segment()` first takes the
    room structure out (floor, walls, ceiling, table: `labelfree3d.segment.structure`), runs
    `segment_points()` on the rest and multiplies every confidence by
    `structure_score_factor`, so that a mask that is mostly structure or spans the whole scan
    ranks after compact objects. `score_rule` documents how the method's own confidences are
    computed, since AP is only meaningful when confidences rank masks.

    Attributes:
        structure: "remove" (default): segment only what is not floor, walls, ceiling or the
            supporting table; every class-agnostic benchmark counts those as void. "keep":
            segment the whole scan, as the papers' baseline rows do (UnScene3D Tab. 1, FreePoint
            Tab. S1); structure-like masks are still ranked last. "support": remove the floor /
            table and the ceiling but keep the walls (objects on them, doors, windows, pictures,
            stay whole), ranking mostly-wall masks last.
        structure_scores: multiply every confidence by `structure_score_factor` (mostly-structure
            and scan-spanning masks last); False keeps the method's own scores, for comparison.
    """

    structure: str = "remove"
    structure_scores: bool = True

    name: ClassVar[str] = ""
    score_rule: ClassVar[str] = ""
    # True for methods that run a trained network (a `checkpoint` parameter with no default):
    # batch runs over "every method" leave them out
    requires_model: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.structure not in STRUCTURE_MODES:
            raise ParameterError(
                f"{self.name}.structure must be one of {', '.join(STRUCTURE_MODES)}, got {self.structure!r}"
            )
        self.validate()

    def validate(self) -> None:
        """Check parameter values; raise `ParameterError` with a one-line message."""

    def segment(self, scene: Scene, features: Any = None) -> InstanceMasks:
        """Segment `scene` into instance masks over its N points.

        Args:
            scene: the scan.
            features: optional (N, C) float per-point features (learned or lifted 2D), or a
                mapping name -> (N, C) for methods that take several, for methods that use them.

        Returns:
            Masks over `scene.num_points` points with one confidence each; structure points
            are in no mask unless `structure="keep"`.
        """
        require_points(scene)
        if self.structure == "keep":
            report_status(f"{self.name}: segmenting {scene.num_points:,} points")
            return self.structure_scored(self.segment_points(scene, features), scene)
        report_status(f"finding floor, walls and ceiling among {scene.num_points:,} points")
        labels = scene_structure(scene).labels
        removed = (SUPPORT, CEILING) if self.structure == "support" else (SUPPORT, CEILING, WALL)
        rest = np.flatnonzero(~np.isin(labels, removed))
        if rest.shape[0] == 0:
            return InstanceMasks.empty(scene.num_points)
        part = scene if rest.shape[0] == scene.num_points else scene.subset(rest)
        report_status(f"{self.name}: segmenting the {part.num_points:,} points off the structure")
        masks = self.segment_points(part, subset_features(features, rest, scene.num_points))
        if part is not scene:
            masks = masks.expand(rest, scene.num_points)
        return self.structure_scored(masks, scene)

    @abstractmethod
    def segment_points(self, scene: Scene, features: Any = None) -> InstanceMasks:
        """Segment every point of `scene` (no structure removal); `features` as in `segment`."""

    def structure_scored(self, masks: InstanceMasks, scene: Scene) -> InstanceMasks:
        """`masks` with each score multiplied by `structure_score_factor` (structure-like masks last),
        unless `structure_scores` is off."""
        if not self.structure_scores or len(masks) == 0:
            return masks
        return masks.with_scores(masks.scores * structure_score_factor(masks, scene))

    def get_params(self) -> dict[str, Any]:
        """The parameters as a dict (for configs and provenance)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


SEGMENTERS: dict[str, type[Segmenter]] = {}

S = TypeVar("S", bound=type[Segmenter])


def register_segmenter(name: str) -> Callable[[S], S]:
    """Class decorator registering a Segmenter dataclass under `name`."""

    def decorate(cls: S) -> S:
        if name in SEGMENTERS:
            raise ValueError(f"segmenter {name!r} registered twice")
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass")
        cls.name = name
        SEGMENTERS[name] = cls
        return cls

    return decorate


def make_segmenter(name: str, **settings: Any) -> Segmenter:
    """Build the registered segmenter `name` with `settings` overriding its defaults.

    Values given as strings or numbers (e.g. from `--set key=value`) are coerced to the type of
    the field's default. Unknown names and keys raise `ParameterError` listing the valid ones;
    values out of a parameter's range (NaN, infinities and numbers beyond int64 included) raise
    `ParameterError` naming `method.key` and the valid range (`check_range`).
    """
    _load_builtin_methods()
    if name not in SEGMENTERS:
        raise ParameterError(f"unknown method {name!r}; available: {', '.join(sorted(SEGMENTERS))}")
    cls = SEGMENTERS[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        raise ParameterError(f"{name} has no parameter(s) {unknown}; valid: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    coerced: dict[str, Any] = {}
    refused: list[ParameterError] = []
    for key, value in settings.items():
        try:
            coerced[key] = _coerce(name, key, value, hints.get(key))
        except ParameterError as error:
            number = _unrepresentable_number(value)
            if number is None:
                raise
            if typing.get_origin(hints.get(key)) is tuple and not isinstance(number, tuple):
                number = (number,)
            # inf, nan, 1e20 for an integer...: the method's own range check names the valid range
            coerced[key] = number
            refused.append(error)
    if not refused:
        return cls(**coerced)
    try:
        cls(**coerced)
    except ParameterError:
        raise
    except Exception:  # a check that does arithmetic on the value before its range check
        pass
    raise refused[0]  # the range check let it through (no upper bound): the coercion's own message


def _coerce(method: str, key: str, value: Any, hint: Any) -> Any:
    """Coerce CLI/config values to the annotated field type (int, float, bool, tuple)."""
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    target = hint
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None:
            return None
        target = args[0] if args else hint
        origin = typing.get_origin(target)
    try:
        if target is bool and not isinstance(value, bool):
            raise ValueError("expected true or false")
        if target is int and not isinstance(value, bool):
            return _as_int(value)
        if target is float:
            return _as_float(value)
        if origin is tuple:
            if isinstance(value, str):  # "a,b" from a config or the Python API
                value = [v.strip() for v in value.split(",") if v.strip()]
            items = value if isinstance(value, (list, tuple)) else [value]
            inner = typing.get_args(target)
            if inner and inner[-1] is not Ellipsis and len(items) != len(inner):
                raise ValueError(f"expected {len(inner)} values")
            item_type = inner[0] if inner else str
            item_type = {int: _as_int, float: _as_float}.get(item_type, item_type)
            return tuple(item_type(v) for v in items)
    except (TypeError, ValueError, OverflowError) as error:
        raise ParameterError(f"{method}.{key}={value!r}: {error}") from error
    return value


def _as_int(value: Any) -> int:
    """An integer within int64 from an int, an integral float or a string ("10", "1e3")."""
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
        if number is not None:
            value = number
    if not isinstance(value, numbers.Integral):
        number = float(value)
        if not math.isfinite(number) or number != int(number):
            raise ValueError("expected an integer")
        value = int(number)
    if not -INT64_MAX - 1 <= int(value) <= INT64_MAX:
        raise ValueError("expected an integer within int64")
    return int(value)


def _unrepresentable_number(value: Any) -> float | tuple[float, ...] | None:
    """`value` as a float when it is a number that is non-finite or beyond int64 (e.g. "inf",
    "1e400", 1e20 for an integer), a tuple of floats for a sequence ("1,inf") holding one, else None."""
    if isinstance(value, str) and "," in value:
        value = [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, (list, tuple)):
        try:
            numbers_given = tuple(float(item) for item in value if not isinstance(item, bool))
        except (TypeError, ValueError, OverflowError):
            return None
        if len(numbers_given) != len(value) or all(math.isfinite(x) and abs(x) <= INT64_MAX for x in numbers_given):
            return None
        return numbers_given
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Real)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if math.isfinite(number) and abs(number) <= INT64_MAX:
        return None
    return number


def _as_float(value: Any) -> float:
    """A finite float (NaN and infinities are no parameter values)."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def require_points(scene: Scene) -> None:
    """Raise `InputError` for a scene without points (an RGB-D sequence that was not fused)."""
    if scene.num_points == 0:
        hint = ": fuse its RGB-D frames into a mesh first (labelfree3d fuse)" if scene.frames is not None else ""
        raise InputError(f"cannot segment a scene without points{hint}", scene.source)


def subset_features(features: Any, indices: np.ndarray, num_points: int) -> Any:
    """Per-point `features` (None, an (N, C) array or a mapping of them) restricted to `indices`.

    Arrays of the wrong length are passed through untouched so that the method's own check
    reports them with their shape.
    """
    if features is None:
        return None
    if isinstance(features, Mapping):
        return {key: subset_features(value, indices, num_points) for key, value in features.items()}
    array = np.asarray(features)
    if array.ndim >= 1 and array.shape[0] == num_points:
        return array[indices]
    return features


def check_range(
    method: str, key: str, value: float, low: float | None = None, high: float | None = None, *, open_low: bool = False
) -> None:
    """Raise `ParameterError` unless low <= value <= high (low < value when `open_low`).

    The value must be a finite real number (integers within int64). Every message names
    `method.key` and the valid range, e.g. "kmeans.n_clusters must be in [0, 1000], got 1e+20".
    """
    span = valid_range(low, high, open_low)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{method}.{key} must be a finite number{' ' + span if span else ''}, got {value!r}")
    if isinstance(value, numbers.Integral):
        if not -INT64_MAX - 1 <= int(value) <= INT64_MAX:
            raise ParameterError(f"{method}.{key} must be an integer within int64{' ' + span if span else ''}, got {value!r}")
    elif not math.isfinite(float(value)):
        raise ParameterError(f"{method}.{key} must be a finite number{' ' + span if span else ''}, got {value!r}")
    if (low is not None and (value < low or (open_low and value == low))) or (high is not None and value > high):
        raise ParameterError(f"{method}.{key} must be {span}, got {value!r}")


def valid_range(low: float | None, high: float | None, open_low: bool = False) -> str:
    """The range `check_range` accepts, as text: "in [0, 1000]", "in (0.0, 1.0]", ">= 1", "<= 5" or ""."""
    if low is not None and high is not None:
        return f"in {'(' if open_low else '['}{low}, {high}]"
    if low is not None:
        return f"> {low}" if open_low else f">= {low}"
    return "" if high is None else f"<= {high}"


def _load_builtin_methods() -> None:
    # registration happens on import; importing the package registers every built-in method
    import labelfree3d.segment  # noqa: F401
