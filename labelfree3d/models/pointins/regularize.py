"""PointINS's offset regularisers (ODR, SCR) and the clustering of offset-shifted points.

These run on the teacher's outputs of one scene, in NumPy, between the teacher's forward pass
and the student's loss (`labelfree3d.train.pretrain`), and again at inference
(`labelfree3d.segment.pointins_offsets`).

* **ODR** (Offset Distribution Regularization). The paper publishes only its hyper-parameters:
  D = Uniform(0, 1) and a magnitude prior M = Gamma(a 0.24, θ 2.53) indoors or
  LogNormal(μ 0, σ 0.76) outdoors (supplementary Table 1). We read it as distribution alignment
  by quantile matching: each offset keeps its direction, the rank of its magnitude among the
  scene's offsets becomes a quantile u ∈ (0, 1) (uniform by construction, which is D), and the
  new magnitude is M⁻¹(u). The regularised magnitudes then follow M exactly, whatever the
  network predicts, while their order (which point is farther from its centre) is the
  network's.
* **SCR** (Spatial Clustering Regularization, supplementary Algorithm 1). Predicted centroids
  ĉ = x + Õ are grouped per K-means segment of the teacher's features by the connected
  components of a kNN graph in centroid space with edges shorter than τ_d; components under
  τ_min points are dropped; every kept point's target is its component's mean centroid minus
  its position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.spatial import cKDTree

from labelfree3d.errors import ParameterError
from labelfree3d.geometry import connected_components, euclidean_clustering

KMEANS_SAMPLE = 8192  # feature rows K-means is fitted on (all rows are assigned)

__all__ = [
    "OffsetPrior",
    "SCRResult",
    "align_offset_magnitudes",
    "offset_instance_scores",
    "offset_instances",
    "spatial_clustering_targets",
]


@dataclass(frozen=True)
class OffsetPrior:
    """The distribution M of offset magnitudes (metres) that ODR aligns the teacher's offsets to.

    Attributes:
        kind: "gamma" (indoor) or "lognormal" (outdoor).
        a: Gamma shape (supplementary Table 1: 0.24 indoor).
        theta: Gamma scale in metres (Table 1: 2.53 indoor).
        mu: LogNormal location of log(magnitude) (Table 1: 0 outdoor).
        sigma: LogNormal scale of log(magnitude) (Table 1: 0.76 outdoor).
    """

    kind: Literal["gamma", "lognormal"] = "gamma"
    a: float = 0.24
    theta: float = 2.53
    mu: float = 0.0
    sigma: float = 0.76

    def __post_init__(self) -> None:
        if self.kind not in ("gamma", "lognormal"):
            raise ParameterError(f"offset prior kind must be 'gamma' or 'lognormal', got {self.kind!r}")
        for name in ("a", "theta", "sigma"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ParameterError(f"offset prior {name} must be a positive number, got {value!r}")
        if not np.isfinite(self.mu):
            raise ParameterError(f"offset prior mu must be finite, got {self.mu!r}")

    @classmethod
    def indoor(cls) -> OffsetPrior:
        """Gamma(0.24, 2.53), supplementary Table 1 (ScanNet)."""
        return cls(kind="gamma", a=0.24, theta=2.53)

    @classmethod
    def outdoor(cls) -> OffsetPrior:
        """LogNormal(0, 0.76), supplementary Table 1 (outdoor LiDAR)."""
        return cls(kind="lognormal", mu=0.0, sigma=0.76)

    def distribution(self) -> Any:
        """The frozen `scipy.stats` distribution."""
        from scipy import stats

        if self.kind == "gamma":
            return stats.gamma(self.a, scale=self.theta)
        return stats.lognorm(self.sigma, scale=float(np.exp(self.mu)))

    def quantile(self, u: Any) -> np.ndarray:
        """M⁻¹(u): magnitudes in metres for quantiles `u` in (0, 1), same shape as `u`."""
        return np.asarray(self.distribution().ppf(np.asarray(u, dtype=np.float64)), dtype=np.float64)

    def cdf(self, magnitude: Any) -> np.ndarray:
        """M(magnitude): the prior's cumulative distribution at magnitudes in metres."""
        return np.asarray(self.distribution().cdf(np.asarray(magnitude, dtype=np.float64)), dtype=np.float64)


def _as_offsets(offsets: Any, name: str = "offsets") -> np.ndarray:
    array = np.asarray(offsets, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ParameterError(f"{name} must be (N, 3), got {array.shape}")
    if not np.isfinite(array).all():
        raise ParameterError(f"{name} hold NaN or infinite values")
    return array


def align_offset_magnitudes(offsets: Any, prior: OffsetPrior) -> np.ndarray:
    """ODR: give the offsets of one scene magnitudes distributed as `prior`, keeping directions and order.

    Args:
        offsets: (N, 3) offsets in metres.
        prior: the magnitude distribution M.

    Returns:
        (N, 3) float32 offsets. An offset of magnitude r_i at rank k_i (ascending, ties in input
        order) among the M non-zero offsets becomes direction_i × M⁻¹((k_i + 0.5) / M); exactly
        zero offsets have no direction and stay zero.
    """
    offsets = _as_offsets(offsets)
    magnitudes = np.linalg.norm(offsets, axis=1)
    moving = np.flatnonzero(magnitudes > 0)
    result = np.zeros_like(offsets)
    if moving.size:
        order = moving[np.argsort(magnitudes[moving], kind="stable")]
        quantiles = (np.arange(order.size, dtype=np.float64) + 0.5) / order.size
        wanted = prior.quantile(quantiles)
        result[order] = offsets[order] / magnitudes[order, None] * wanted[:, None]
    return result.astype(np.float32)


@dataclass(frozen=True)
class SCRResult:
    """What SCR derives from one scene's teacher outputs.

    Attributes:
        targets: (N, 3) float32 target offsets O* = c̄ − x in metres; rows that are not `valid`
            keep the input offsets (they carry no loss).
        valid: (N,) bool, the point belongs to a kept component.
        components: (N,) int64 component id, consecutive from 0; −1 outside kept components.
        segments: (N,) int64 K-means segment of each point's feature.
    """

    targets: np.ndarray
    valid: np.ndarray
    components: np.ndarray
    segments: np.ndarray


def spatial_clustering_targets(
    points: Any,
    offsets: Any,
    features: Any,
    num_segments: int = 20,
    kmeans_iterations: int = 10,
    knn: int = 150,
    max_distance: float = 1.2,
    min_size: int = 30,
    seed: int = 0,
) -> SCRResult:
    """SCR (supplementary Algorithm 1) on one scene: refined centroid targets for the offsets.

    Defaults are the indoor column of supplementary Table 1 (K 20, 10 iterations, k_nn 150,
    τ_d 1.2 m, τ_min 30); the outdoor column is k_nn 20, τ_d 1 m, τ_min 10.

    Args:
        points: (N, 3) positions x in metres.
        offsets: (N, 3) (ODR-regularised) teacher offsets Õ in metres.
        features: (N, D) teacher features; rows are L2-normalised before K-means, since the
            semantic branch compares them with prototypes by cosine similarity.
        num_segments: K of K-means (capped at N).
        kmeans_iterations: Lloyd iterations of K-means (one random initialisation, fitted on at
            most `KMEANS_SAMPLE` rows, then every row is assigned to its nearest centre).
        knn: neighbours per predicted centroid inside its segment.
        max_distance: τ_d, longest kept kNN edge between predicted centroids, metres.
        min_size: τ_min, smallest kept component, points.
        seed: K-means seed.

    Returns:
        `SCRResult`.
    """
    from sklearn.cluster import KMeans

    offsets = _as_offsets(offsets)
    points = _as_offsets(points, "points")
    features = np.asarray(features, dtype=np.float64)
    n = points.shape[0]
    if offsets.shape[0] != n or features.ndim != 2 or features.shape[0] != n:
        raise ParameterError(f"points {points.shape}, offsets {offsets.shape} and features {features.shape} must have the same rows")
    for name, value, low in (("num_segments", num_segments, 1), ("kmeans_iterations", kmeans_iterations, 1), ("knn", knn, 1), ("min_size", min_size, 1)):
        if int(value) != value or value < low:
            raise ParameterError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (np.isfinite(max_distance) and max_distance > 0):
        raise ParameterError(f"max_distance must be a positive number of metres, got {max_distance!r}")
    centroids = points + offsets
    components = np.full(n, -1, dtype=np.int64)
    segments = np.zeros(n, dtype=np.int64)
    if n == 0:
        return SCRResult(offsets.astype(np.float32), np.zeros(0, dtype=bool), components, segments)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = features / np.maximum(norms, 1e-12)
    k = min(int(num_segments), n)
    if k > 1:
        # Lloyd's iterations on a sample, then every point to its nearest centre: the segments
        # only group features coarsely, and k-means++ seeding on all points cost ~3 s per view
        unit = unit.astype(np.float32)
        rng = np.random.default_rng(seed)
        sample = unit if n <= KMEANS_SAMPLE else unit[rng.choice(n, KMEANS_SAMPLE, replace=False)]
        kmeans = KMeans(n_clusters=k, init="random", n_init=1, max_iter=int(kmeans_iterations), random_state=int(seed))
        kmeans.fit(sample)
        segments = kmeans.predict(unit).astype(np.int64)
    next_id = 0
    for segment in np.unique(segments):
        members = np.flatnonzero(segments == segment)
        if members.size < min_size:
            continue
        neighbours = min(int(knn), members.size - 1)
        local = centroids[members]
        if neighbours >= 1:
            distances, indices = cKDTree(local).query(local, k=neighbours + 1, distance_upper_bound=max_distance)
            sources = np.repeat(np.arange(members.size), neighbours + 1)
            targets = indices.reshape(-1)
            keep = (targets < members.size) & (targets != sources) & (distances.reshape(-1) < max_distance)
            edges = np.stack([sources[keep], targets[keep]], axis=1)
        else:
            edges = np.zeros((0, 2), dtype=np.int64)
        labels = connected_components(edges, members.size)
        sizes = np.bincount(labels)
        kept = np.flatnonzero(sizes >= min_size)
        if kept.size == 0:
            continue
        remap = np.full(sizes.size, -1, dtype=np.int64)
        remap[kept] = next_id + np.arange(kept.size)
        components[members] = remap[labels]
        next_id += kept.size
    valid = components >= 0
    targets = offsets.copy()
    if next_id:
        counts = np.bincount(components[valid], minlength=next_id).astype(np.float64)
        means = np.stack([np.bincount(components[valid], weights=centroids[valid, axis], minlength=next_id) for axis in range(3)], axis=1)
        means /= counts[:, None]
        targets[valid] = means[components[valid]] - points[valid]
    return SCRResult(targets.astype(np.float32), valid, components, segments)


def offset_instances(points: Any, offsets: Any, radius: float, min_size: int = 1) -> np.ndarray:
    """Instances as the connected components of offset-shifted points (supplementary §C's BFS).

    Args:
        points: (N, 3) positions in metres.
        offsets: (N, 3) predicted offsets towards instance centres, metres.
        radius: two shifted points closer than this (metres) are in one instance.
        min_size: smaller components get −1.

    Returns:
        (N,) int64 instance id, consecutive from 0 by decreasing size; −1 for dropped points.
    """
    points = _as_offsets(points, "points")
    offsets = _as_offsets(offsets)
    if offsets.shape != points.shape:
        raise ParameterError(f"offsets {offsets.shape} do not match points {points.shape}")
    if points.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return euclidean_clustering(points + offsets, radius, min_size=min_size)


def offset_instance_scores(points: Any, offsets: Any, labels: Any, scale: float) -> np.ndarray:
    """Confidence of each offset cluster: how tightly its shifted points agree on one centre.

    Args:
        points: (N, 3) positions in metres.
        offsets: (N, 3) predicted offsets, metres.
        labels: (N,) int instance id 0..K−1, −1 for unassigned points.
        scale: metres; the score is exp(−mean distance of the shifted points to their mean / scale).

    Returns:
        (K,) float64 scores in (0, 1].
    """
    points = _as_offsets(points, "points")
    offsets = _as_offsets(offsets)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (points.shape[0],) or offsets.shape != points.shape:
        raise ParameterError(f"labels {labels.shape}, offsets {offsets.shape} and points {points.shape} do not match")
    if not (np.isfinite(scale) and scale > 0):
        raise ParameterError(f"scale must be a positive number of metres, got {scale!r}")
    count = int(labels.max(initial=-1)) + 1
    if count == 0:
        return np.zeros(0, dtype=np.float64)
    assigned = labels >= 0
    shifted = (points + offsets)[assigned]
    ids = labels[assigned]
    sizes = np.maximum(np.bincount(ids, minlength=count), 1).astype(np.float64)
    means = np.stack([np.bincount(ids, weights=shifted[:, axis], minlength=count) for axis in range(3)], axis=1) / sizes[:, None]
    spread = np.bincount(ids, weights=np.linalg.norm(shifted - means[ids], axis=1), minlength=count) / sizes
    return np.exp(-spread / scale)
