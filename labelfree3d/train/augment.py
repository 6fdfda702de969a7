"""Training augmentations of Segment3D App. A / Mask3D, on points and colours before voxelisation.

Geometry: elastic distortion, random flips of the horizontal axes, rotation about the up axis,
uniform scaling. Colour: per-point jitter, brightness shift, contrast change. Every random draw
comes from the `numpy.random.Generator` passed in, so a (seed, epoch, sample) triple fixes the
augmented scan exactly, whichever process or DataLoader worker builds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import RegularGridInterpolator
from scipy.ndimage import convolve

from labelfree3d.errors import ParameterError
from labelfree3d.models._params import check_choice, check_fraction, check_positive

__all__ = ["AugmentConfig", "augment_points", "elastic_distortion", "place_beside"]

AXES = {"x": 0, "y": 1, "z": 2}


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run, with what strength (Segment3D App. A names them, not their values).

    Attributes:
        enabled: master switch (false for evaluation and for the overfit check).
        up_axis: the vertical axis ("z" for ScanNet; OSD's Kinect frames have "y" pointing down,
            use "y" there); rotation is about it, flips mirror the other two.
        flip_probability: chance of mirroring each horizontal axis (0.5).
        rotation_degrees: rotation about the up axis drawn uniformly in [-r, r] (180: any heading).
        scale_range: uniform scale factor range (0.9, 1.1), as in Mask3D's ScanNet setup.
        elastic: ((granularity, magnitude), ...) in metres for elastic distortion, applied in
            order, MinkowskiEngine / Mask3D's ((0.2, 0.4), (0.8, 1.6)); empty disables it.
        elastic_probability: chance of applying the elastic distortion (0.95, Mask3D).
        color_jitter_std: std of per-point Gaussian RGB noise, colours in [0, 1] (0.05).
        brightness: brightness shift drawn uniformly in [-b, b] and added to all channels (0.1).
        contrast: contrast factor drawn uniformly in [1 - c, 1 + c] about the scan's mean colour (0.2).
        mix_probability: chance that a training sample is two scans side by side (0: never).
            Mix3D (Nekrasov et al., 3DV 2021) overlays two augmented scenes to take objects out of
            their context; this places the second scan next to the first instead, along a random
            horizontal axis with `mix_gap` metres between their bounding boxes, so that no object
            intersects another and a sample holds the objects of both scans. Meant for training
            sets of a dozen scans, from which a decoder learns how many objects a scan has; off
            in every config and preset, since it gave no clear gain on the OSD selection split
            (docs/recipes.md).
        mix_gap: gap in metres between the two scans' bounding boxes when mixing (0.05).
    """

    enabled: bool = True
    up_axis: str = "z"
    flip_probability: float = 0.5
    rotation_degrees: float = 180.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    elastic: tuple[tuple[float, float], ...] = ((0.2, 0.4), (0.8, 1.6))
    elastic_probability: float = 0.95
    color_jitter_std: float = 0.05
    brightness: float = 0.1
    contrast: float = 0.2
    mix_probability: float = 0.0
    mix_gap: float = 0.05

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ParameterError(f"augment.enabled must be true or false, got {self.enabled!r}")
        check_choice(self.up_axis, "augment.up_axis", tuple(AXES))
        check_fraction(self.flip_probability, "augment.flip_probability")
        check_positive(self.rotation_degrees, "augment.rotation_degrees", allow_zero=True)
        if len(self.scale_range) != 2:
            raise ParameterError(f"augment.scale_range must be [low, high], got {self.scale_range!r}")
        low, high = (check_positive(v, "augment.scale_range") for v in self.scale_range)
        if low > high:
            raise ParameterError(f"augment.scale_range low {low} exceeds high {high}")
        object.__setattr__(self, "scale_range", (low, high))
        elastic = tuple(tuple(pair) for pair in self.elastic or ())
        for pair in elastic:
            if len(pair) != 2:
                raise ParameterError(f"augment.elastic entries must be [granularity, magnitude], got {pair!r}")
            check_positive(pair[0], "augment.elastic granularity")
            check_positive(pair[1], "augment.elastic magnitude", allow_zero=True)
        object.__setattr__(self, "elastic", elastic)
        check_fraction(self.elastic_probability, "augment.elastic_probability")
        check_positive(self.color_jitter_std, "augment.color_jitter_std", allow_zero=True)
        check_positive(self.brightness, "augment.brightness", allow_zero=True)
        check_fraction(self.contrast, "augment.contrast")
        check_fraction(self.mix_probability, "augment.mix_probability")
        check_positive(self.mix_gap, "augment.mix_gap", allow_zero=True)


def elastic_distortion(points: np.ndarray, granularity: float, magnitude: float, rng: np.random.Generator) -> np.ndarray:
    """Smoothly displace points by a random field (MinkowskiEngine's `elastic_distortion`).

    A Gaussian noise grid with cells of `granularity` metres is smoothed by three passes of 3-cell
    box filters along each axis and trilinearly interpolated at every point.

    Args:
        points: (N, 3) coordinates in metres.
        granularity: noise cell size in metres.
        magnitude: displacement multiplier (metres per unit of smoothed noise).
        rng: random generator.

    Returns:
        (N, 3) displaced coordinates (float32).
    """
    low = points.min(axis=0)
    shape = ((points.max(axis=0) - low) // granularity).astype(int) + 3
    noise = rng.standard_normal((*shape, 3)).astype(np.float32)
    kernels = [np.ones((3, 1, 1, 1)), np.ones((1, 3, 1, 1)), np.ones((1, 1, 3, 1))]
    for _ in range(2):
        for kernel in kernels:
            noise = convolve(noise, kernel.astype(np.float32) / 3, mode="constant", cval=0)
    axes = [np.linspace(lo - granularity, lo + granularity * (n - 2), n) for lo, n in zip(low, shape)]
    interpolate = RegularGridInterpolator(axes, noise, bounds_error=False, fill_value=0)
    return (points + interpolate(points) * magnitude).astype(np.float32)


def augment_points(
    points: np.ndarray,
    colors: np.ndarray | None,
    config: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply the configured augmentations.

    Args:
        points: (N, 3) coordinates in metres.
        colors: (N, 3) RGB in [0, 1], or None for scans without colour.
        config: which augmentations and how strong.
        rng: random generator (seeded by the caller for reproducibility).

    Returns:
        (points (N, 3) float32, colours (N, 3) float32 or None), new arrays.
    """
    points = np.asarray(points, dtype=np.float32).copy()
    colors = None if colors is None else np.asarray(colors, dtype=np.float32).copy()
    if not config.enabled:
        return points, colors
    up = AXES[config.up_axis]
    horizontal = [a for a in range(3) if a != up]
    if config.elastic and rng.random() < config.elastic_probability:
        for granularity, magnitude in config.elastic:
            points = elastic_distortion(points, granularity, magnitude, rng)
    center = (points.min(axis=0) + points.max(axis=0)) / 2
    points -= center
    for axis in horizontal:
        if rng.random() < config.flip_probability:
            points[:, axis] = -points[:, axis]
    if config.rotation_degrees:
        angle = np.deg2rad(rng.uniform(-config.rotation_degrees, config.rotation_degrees))
        cos, sin = np.cos(angle), np.sin(angle)
        a, b = horizontal
        rotated_a = cos * points[:, a] - sin * points[:, b]
        rotated_b = sin * points[:, a] + cos * points[:, b]
        points[:, a], points[:, b] = rotated_a, rotated_b
    points *= rng.uniform(*config.scale_range)
    points += center
    if colors is not None:
        if config.contrast:
            mean = colors.mean(axis=0, keepdims=True)
            colors = mean + (colors - mean) * rng.uniform(1 - config.contrast, 1 + config.contrast)
        if config.brightness:
            colors += rng.uniform(-config.brightness, config.brightness)
        if config.color_jitter_std:
            colors += rng.normal(0.0, config.color_jitter_std, colors.shape).astype(np.float32)
        colors = np.clip(colors, 0.0, 1.0)
    return points.astype(np.float32), colors


def place_beside(points: np.ndarray, other: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Shift `other` so that its bounding box sits next to that of `points` (scene mixing).

    The side is drawn at random among the four horizontal directions (the two axes other than
    `config.up_axis`, either sign); the boxes are centred on each other along the remaining axes
    and `config.mix_gap` metres apart along the chosen one.

    Args:
        points: (N, 3) the first scan's (augmented) coordinates in metres.
        other: (M, 3) the second scan's (augmented) coordinates in metres.
        config: augmentation settings (`up_axis`, `mix_gap`).
        rng: random generator.

    Returns:
        (M, 3) float32 shifted copy of `other`.
    """
    low, high = points.min(axis=0), points.max(axis=0)
    other_low, other_high = other.min(axis=0), other.max(axis=0)
    shift = (low + high) / 2 - (other_low + other_high) / 2
    up = AXES[config.up_axis]
    axis = [a for a in range(3) if a != up][int(rng.integers(2))]
    if rng.random() < 0.5:
        shift[axis] = high[axis] + config.mix_gap - other_low[axis]
    else:
        shift[axis] = low[axis] - config.mix_gap - other_high[axis]
    return (other + shift).astype(np.float32)
