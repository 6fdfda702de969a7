"""Classical clustering baselines: HDBSCAN, DBSCAN, K-means and Birch on per-point features.

These are the "traditional methods" rows of the papers: UnScene3D Table 1 / Table 2 (HDBSCAN
given "input mesh vertices, colors, and normals", Sec. 4) and FreePoint supplementary Table S1
(DBSCAN with eps = 0.05, K-means and Birch with n_clusters = 10, "we adopt the implementation of
sklearn"). All four share one pipeline (`FeatureClusteringSegmenter`):

1. Per-point features, each modality scaled by its own weight:
   ``[xyz_weight * xyz (m), color_weight * rgb (0-1), normal_weight * e(n)]`` where ``e(n)`` is
   the sign-invariant embedding of the unit normal by its outer product n nᵀ (6 values:
   nx², ny², nz², √2 nx ny, √2 nx nz, √2 ny nz), so that ``|e(n) - e(m)| = sqrt(2 (1 - (n·m)²))``.
   PCA leaves the sign of estimated normals arbitrary and averaging signed normals inside a
   voxel cancels them out; the embedding makes both harmless. Normals come from the scene when
   it has them, else from the mesh (area-weighted vertex normals), else they are estimated by PCA
   on the down-sampled cloud. Colours are skipped when the scene has none.
2. Voxel down-sampling to `voxel_size` (features averaged per voxel) for speed; the clusters are
   lifted back to every input point with `InstanceMasks.lift`.
3. By default the room structure (floor, walls, ceiling, table top) is taken out first by
   `Segmenter.segment`, as FreePoint's pre-processing does (Sec. 3.1); `structure="keep"` clusters
   the full scene as the papers' baseline rows do.
4. The scikit-learn estimator, then clusters smaller than `min_cluster_points` voxels dropped.

Each subclass documents its confidence rule in `score_rule`.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from labelfree3d.errors import ParameterError
from labelfree3d.geometry import estimate_point_normals, mesh_vertex_normals, voxel_downsample
from labelfree3d.segment.base import MAX_COUNT, MAX_SEED, Segmenter, check_range, register_segmenter
from labelfree3d.segment.structure import scene_scale
from labelfree3d.status import report_status
from labelfree3d.structures import InstanceMasks, Scene

__all__ = [
    "BirchSegmenter",
    "DBSCANSegmenter",
    "FeatureClusteringSegmenter",
    "HDBSCANSegmenter",
    "KMeansSegmenter",
    "PreparedCloud",
    "attach_noise",
    "normal_embedding",
    "simplified_silhouette",
]

# neighbours for PCA normals of clouds without normals (as `point_cloud_superpoints`' normal_k)
NORMAL_NEIGHBOURS = 20
# most (point, neighbour) entries DBSCAN may hold (scikit-learn keeps every eps-neighbourhood, 8 bytes
# an entry: about 2 GB); the densest shared scan (an OSD frame at the default voxel) needs 4e7
MAX_DBSCAN_NEIGHBOURS = 250_000_000


class PreparedCloud(NamedTuple):
    """The down-sampled cloud a clustering baseline works on.

    Attributes:
        points: (M, 3) voxel centroids, metres.
        features: (F, D) float64 weighted feature vectors of the F foreground voxels.
        foreground: (F,) int64 indices of the voxels that are clustered among the M.
        inverse: (N,) int64 voxel of each input point.
        voxel: the voxel edge used, metres (0 = none).
    """

    points: np.ndarray
    features: np.ndarray
    foreground: np.ndarray
    inverse: np.ndarray
    voxel: float = 0.0


def normal_embedding(normals: np.ndarray) -> np.ndarray:
    """Sign-invariant embedding of unit normals by their outer product.

    Args:
        normals: (N, 3) unit normals (zero rows stay zero).

    Returns:
        (N, 6) float64 [nx², ny², nz², √2 nx ny, √2 nx nz, √2 ny nz]: the upper triangle of n nᵀ
        scaled so that Euclidean distances equal Frobenius distances, sqrt(2 (1 - (n·m)²)) for
        unit n, m. n and -n map to the same vector.
    """
    n = np.asarray(normals, dtype=np.float64)
    root2 = np.sqrt(2.0)
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    return np.stack([x * x, y * y, z * z, root2 * x * y, root2 * x * z, root2 * y * z], axis=1)


def attach_noise(points: np.ndarray, labels: np.ndarray, radius: float) -> np.ndarray:
    """Give each noise point (label -1) the label of its nearest labelled point within `radius`.

    Args:
        points: (N, 3) coordinates, metres.
        labels: (N,) cluster index per point, -1 for noise.
        radius: largest distance to the labelled neighbour, metres.

    Returns:
        (N,) labels with the attached noise relabelled; noise farther than `radius` stays -1.
    """
    from scipy.spatial import cKDTree

    labelled, noise = np.flatnonzero(labels >= 0), np.flatnonzero(labels < 0)
    if labelled.size == 0 or noise.size == 0:
        return labels
    distances, nearest = cKDTree(points[labelled]).query(points[noise], distance_upper_bound=radius)
    found = np.isfinite(distances)
    attached = labels.copy()
    attached[noise[found]] = labels[labelled[nearest[found]]]
    return attached


def simplified_silhouette(features: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Per-cluster mean of the simplified (centroid) silhouette.

    For each point, a = distance to its own cluster's centre and b = distance to the nearest other
    centre; s = (b - a) / max(a, b) lies in [-1, 1] (1: tight and far from the rest). O(N K)
    instead of the O(N²) of the exact silhouette.

    Args:
        features: (N, D) feature vectors.
        labels: (N,) cluster index in [0, K) per point (no noise label).
        centers: (K, D) cluster centres.

    Returns:
        (K,) float64 mean s per cluster (0 for a cluster without points or when K = 1).
    """
    k = centers.shape[0]
    if k < 2 or features.shape[0] == 0:
        return np.zeros(k)
    # squared distances via |x|² - 2 x.c + |c|², chunked so N x K stays small in memory
    distances = np.empty((features.shape[0], k))
    center_norms = np.einsum("ij,ij->i", centers, centers)
    for start in range(0, features.shape[0], 65536):
        block = features[start : start + 65536]
        squared = np.einsum("ij,ij->i", block, block)[:, None] - 2.0 * block @ centers.T + center_norms[None, :]
        distances[start : start + 65536] = np.sqrt(np.maximum(squared, 0.0))
    rows = np.arange(features.shape[0])
    own = distances[rows, labels]
    distances[rows, labels] = np.inf
    other = distances.min(axis=1)
    denominator = np.maximum(np.maximum(own, other), 1e-12)
    silhouette = (other - own) / denominator
    counts = np.bincount(labels, minlength=k)
    return np.bincount(labels, silhouette, minlength=k) / np.maximum(counts, 1)


@dataclass
class FeatureClusteringSegmenter(Segmenter):
    """Shared pipeline of the scikit-learn clustering baselines (not registered itself).

    Attributes:
        voxel_size: down-sampling voxel edge, metres (0 = cluster every point); None = from the
            scan's spacing, so that about `target_points` points are clustered
            (`ScanScale.voxel_for`), never finer than the spacing.
        target_points: points left by the automatic voxel size (bounds the estimators' cost).
        xyz_weight: scale of the coordinates in the feature vector (metres -> feature units).
        color_weight: scale of RGB in [0, 1]; ignored when the scene has no colours.
        normal_weight: scale of the sign-invariant normal embedding (see `normal_embedding`).
        noise_radius: voxels the estimator leaves as noise (DBSCAN, HDBSCAN) join the cluster of
            the nearest clustered voxel within this distance, metres (0 = noise stays in no mask);
            None = 3 voxel edges (3 point spacings without voxels).
            Density-based clustering of evenly sampled surfaces leaves object borders as noise,
            which shrinks every mask below the IoU thresholds.
        min_cluster_points: clusters with fewer voxels are dropped.
        seed: seed of randomised estimators.
    """

    voxel_size: float | None = None
    target_points: int = 20000
    xyz_weight: float = 1.0
    color_weight: float = 0.0
    normal_weight: float = 0.0
    noise_radius: float | None = 0.0
    min_cluster_points: int = 5
    seed: int = 0

    def validate(self) -> None:
        if self.voxel_size is not None:
            check_range(self.name, "voxel_size", self.voxel_size, 0.0, 1.0)
        check_range(self.name, "target_points", self.target_points, 100, 10**8)
        check_range(self.name, "xyz_weight", self.xyz_weight, 0.0, 1e6)
        check_range(self.name, "color_weight", self.color_weight, 0.0, 1e6)
        check_range(self.name, "normal_weight", self.normal_weight, 0.0, 1e6)
        if self.xyz_weight == 0 and self.color_weight == 0 and self.normal_weight == 0:
            raise ParameterError(f"{self.name}: xyz_weight, color_weight and normal_weight are all 0: no features")
        if self.noise_radius is not None:
            check_range(self.name, "noise_radius", self.noise_radius, 0.0, 10.0)
        check_range(self.name, "min_cluster_points", self.min_cluster_points, 1, MAX_COUNT)
        check_range(self.name, "seed", self.seed, 0, MAX_SEED)

    def segment_points(self, scene: Scene, features: np.ndarray | None = None) -> InstanceMasks:
        """Cluster the scene's (down-sampled) points; `features` are not used.

        Returns:
            One mask per cluster of at least `min_cluster_points` voxels, over all N points,
            scored by the subclass's `score_rule`.
        """
        cloud = self.prepare(scene)
        if cloud.features.shape[0] == 0:
            return InstanceMasks.empty(scene.num_points)
        unit = f"voxels of {100 * cloud.voxel:.1f} cm" if cloud.voxel > 0 else "points (no voxels)"
        report_status(f"{self.name}: clustering {cloud.features.shape[0]:,} {unit} in {cloud.features.shape[1]}-D")
        labels, scores = self.cluster(cloud.features)
        if scores.shape[0] == 0:  # every voxel noise (e.g. DBSCAN on a sparse LiDAR sweep)
            return InstanceMasks.empty(scene.num_points)
        noise_radius = self.noise_radius
        if noise_radius is None:
            noise_radius = 3.0 * (cloud.voxel if cloud.voxel > 0 else scene_scale(scene).spacing)
        if noise_radius > 0:
            labels = attach_noise(cloud.points[cloud.foreground], labels, noise_radius)
        sizes = np.bincount(labels[labels >= 0], minlength=scores.shape[0])
        keep = sizes >= self.min_cluster_points
        new_id = np.full(scores.shape[0], -1, dtype=np.int64)
        new_id[keep] = np.arange(int(keep.sum()))
        voxel_labels = np.full(cloud.points.shape[0], -1, dtype=np.int64)
        voxel_labels[cloud.foreground] = np.where(labels >= 0, new_id[np.maximum(labels, 0)], -1)
        return InstanceMasks.from_labels(voxel_labels, scores[keep]).lift(cloud.inverse)

    @abstractmethod
    def cluster(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cluster (F, D) feature vectors.

        Returns:
            (labels (F,) int64 cluster index per vector, -1 for noise; scores (K,) float64
            confidence of each cluster 0..K-1).
        """

    def xyz_unit(self, voxel: float, scene: Scene) -> float:
        """Metres per feature unit of the coordinates: 1 (metres, as the papers' baselines use them)."""
        return 1.0

    def working_voxel(self, scene: Scene) -> float:
        """The voxel edge used on `scene`, metres (`voxel_size`, or the automatic choice)."""
        if self.voxel_size is not None:
            return self.voxel_size
        return scene_scale(scene).voxel_for(self.target_points)

    def prepare(self, scene: Scene) -> PreparedCloud:
        """Down-sample and build the weighted feature vectors."""
        n = scene.num_points
        per_point: list[np.ndarray] = []
        use_colors = self.color_weight > 0 and scene.colors is not None
        if use_colors:
            per_point.append(scene.colors.astype(np.float64))  # type: ignore[union-attr]
        given_normals = None
        if self.normal_weight > 0:
            if scene.normals is not None:
                given_normals = scene.normals
            elif scene.is_mesh:
                given_normals = mesh_vertex_normals(scene.points, scene.faces, weighting="area")
            if given_normals is not None:
                per_point.append(normal_embedding(given_normals))
        pooled_input = np.concatenate(per_point, axis=1) if per_point else None
        voxel = self.working_voxel(scene)
        if voxel > 0:
            grid = voxel_downsample(scene.points, voxel, features=pooled_input)
            points, inverse, pooled = grid.points.astype(np.float64), grid.inverse, grid.features
        else:
            points, inverse, pooled = scene.points.astype(np.float64), np.arange(n), pooled_input
        m = points.shape[0]
        blocks = [(self.xyz_weight / self.xyz_unit(voxel, scene)) * points] if self.xyz_weight > 0 else []
        column = 0
        if use_colors:
            blocks.append(self.color_weight * pooled[:, :3])  # type: ignore[index]
            column = 3
        if self.normal_weight > 0:
            if given_normals is not None:
                embedded = pooled[:, column : column + 6]  # type: ignore[index]
            elif m >= 4:
                estimated = estimate_point_normals(points, k=min(NORMAL_NEIGHBOURS, m - 1), orientation="none")
                embedded = normal_embedding(estimated)
            else:
                embedded = np.zeros((m, 6))
            blocks.append(self.normal_weight * embedded)
        if not blocks:  # only colours were asked for and the scene has none: cluster on nothing
            raise ParameterError(f"{self.name}: the scene has no colours and xyz_weight = normal_weight = 0")
        features = np.concatenate(blocks, axis=1)
        return PreparedCloud(points, features, np.arange(m), inverse, voxel)


@register_segmenter("hdbscan")
@dataclass
class HDBSCANSegmenter(FeatureClusteringSegmenter):
    """HDBSCAN (McInnes et al.; scikit-learn's `HDBSCAN`), UnScene3D's Table 1 baseline.

    UnScene3D gives HDBSCAN "mesh vertices, colors, and normals" (Sec. 4) without further
    settings. scikit-learn's defaults (excess-of-mass selection, min_cluster_size 5) are kept in
    kind; the rest was chosen on the selection split (docs/results.md): voxels sized from the
    scan's spacing to leave about 10,000 (5 cm on a ScanNet room; the mutual-reachability MST in
    9-D is the cost), colours and normals at 0.3 next to metres (on xyz alone excess of mass
    returns a handful of room-sized clusters), clusters of at least 30 voxels, and noise voxels
    attached to the nearest cluster within 3 voxel edges (without it about half the voxels are
    noise and every mask shrinks below the IoU thresholds).

    Attributes:
        min_cluster_size: smallest cluster, in voxels (scikit-learn's default is 5).
        min_samples: neighbours defining core distances (None: = min_cluster_size). 5 (chosen on the
            selection split: AP25 10 -> 31 on the rooms, AP 54 -> 60 on OSD): core distances over
            30 neighbours smooth touching objects into one cluster.
        cluster_selection_epsilon: clusters closer than this (feature units) are merged. Under
            NumPy 2, scikit-learn up to at least 1.9 fails whenever it merges clusters (scikit-learn
            issue #33219); that failure is raised as `ParameterError` asking for 0.
        cluster_selection_method: "leaf" or "eom" (excess of mass).
        xyz_scale: metres per coordinate feature unit; None = 20 working voxels (see `xyz_unit`).
    """

    target_points: int = 10000
    color_weight: float = 0.3
    normal_weight: float = 0.3
    noise_radius: float | None = None
    min_cluster_size: int = 30
    min_samples: int | None = 5
    cluster_selection_epsilon: float = 0.0
    cluster_selection_method: str = "eom"
    xyz_scale: float | None = None

    score_rule = (
        "membership mass m / (m + 4 * min_cluster_size), m = sum of the HDBSCAN membership probabilities "
        "(scikit-learn probabilities_: how long each voxel persists in its cluster) of the cluster's voxels: "
        "large clusters of firmly held voxels rank first"
    )

    def validate(self) -> None:
        super().validate()
        check_range(self.name, "min_cluster_size", self.min_cluster_size, 2, 10**6)
        if self.min_samples is not None:  # a (voxels x min_samples) kNN table
            check_range(self.name, "min_samples", self.min_samples, 1, 1000)
        check_range(self.name, "cluster_selection_epsilon", self.cluster_selection_epsilon, 0.0, 100.0)
        if self.xyz_scale is not None:
            check_range(self.name, "xyz_scale", self.xyz_scale, 0.0, 1e6, open_low=True)
        if self.cluster_selection_method not in ("leaf", "eom"):
            method = self.cluster_selection_method
            raise ParameterError(f"{self.name}.cluster_selection_method must be 'leaf' or 'eom', got {method!r}")

    def xyz_unit(self, voxel: float, scene: Scene) -> float:
        """Coordinates in units of 20 working voxels (1 m at a room's 5 cm), so that the colour and
        normal weights mean the same on a 2 mm Kinect cloud as in a room; `xyz_scale` overrides."""
        if self.xyz_scale is not None:
            return self.xyz_scale
        spacing = voxel if voxel > 0 else scene_scale(scene).spacing
        return 20.0 * spacing if spacing > 0 else 1.0

    def cluster(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.cluster import HDBSCAN

        if features.shape[0] < 2:
            return np.full(features.shape[0], -1, dtype=np.int64), np.zeros(0)
        estimator = HDBSCAN(
            min_cluster_size=min(self.min_cluster_size, features.shape[0]),
            min_samples=None if self.min_samples is None else min(self.min_samples, features.shape[0]),
            cluster_selection_epsilon=self.cluster_selection_epsilon,
            cluster_selection_method=self.cluster_selection_method,
            copy=True,
        )
        try:
            labels = estimator.fit_predict(features).astype(np.int64)
        except TypeError as error:
            # scikit-learn's epsilon search (`_tree.traverse_upwards`) assigns a size-1 array to a
            # scalar, which NumPy 2 refuses (scikit-learn issue #33219): any epsilon that merges
            # clusters fails there
            if self.cluster_selection_epsilon > 0 and "0-dimensional" in str(error):
                raise ParameterError(
                    f"{self.name}.cluster_selection_epsilon={self.cluster_selection_epsilon} merges clusters, which "
                    f"this scikit-learn fails to do under NumPy 2 (scikit-learn issue #33219); use 0"
                ) from error
            raise
        k = int(labels.max()) + 1
        clustered = labels >= 0
        mass = np.bincount(labels[clustered], estimator.probabilities_[clustered], minlength=k)
        return labels, mass / (mass + 4.0 * self.min_cluster_size)


@register_segmenter("dbscan")
@dataclass
class DBSCANSegmenter(FeatureClusteringSegmenter):
    """DBSCAN (Ester et al.; scikit-learn's `DBSCAN`), FreePoint's Table S1 baseline.

    FreePoint: "For DBSCAN, we set eps = 0.05" with scikit-learn's other defaults (min_samples
    5); on coordinates in metres that is a 5 cm neighbourhood.

    Attributes:
        eps: neighbourhood radius in feature units (metres when only xyz is used).
        min_samples: neighbours (the point included) that make a core point.
    """

    eps: float = 0.05
    min_samples: int = 5

    score_rule = (
        "fraction of the cluster's voxels that are core points (dense interior rather than a thin "
        "chain) times size / (size + 10 * min_samples)"
    )

    def validate(self) -> None:
        super().validate()
        check_range(self.name, "eps", self.eps, 0.0, 100.0, open_low=True)
        check_range(self.name, "min_samples", self.min_samples, 1, 10**6)

    def cluster(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.cluster import DBSCAN

        # coincident vectors (duplicated points, unvoxelised clouds) enter once, weighted by their
        # count: the same clusters without an eps-neighbourhood of every copy in memory
        unique, inverse, counts = np.unique(features, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        weights = counts if unique.shape[0] < features.shape[0] else None
        data = unique if weights is not None else features
        self._check_neighbourhoods(data)
        estimator = DBSCAN(eps=self.eps, min_samples=self.min_samples).fit(data, sample_weight=weights)
        labels = estimator.labels_.astype(np.int64)
        core = np.zeros(data.shape[0], dtype=np.float64)
        core[estimator.core_sample_indices_] = 1.0
        if weights is not None:
            labels, core = labels[inverse], core[inverse]
        k = int(labels.max()) + 1
        clustered = labels >= 0
        sizes = np.bincount(labels[clustered], minlength=k).astype(np.float64)
        core_fraction = np.bincount(labels[clustered], core[clustered], minlength=k) / np.maximum(sizes, 1)
        return labels, core_fraction * sizes / (sizes + 10.0 * self.min_samples)

    def _check_neighbourhoods(self, data: np.ndarray) -> None:
        """Raise `ParameterError` when the eps-neighbourhoods of `data` would not fit in memory."""
        from scipy.spatial import cKDTree

        n = data.shape[0]
        if n * n <= MAX_DBSCAN_NEIGHBOURS:
            return
        tree = cKDTree(data)
        sample = data[np.random.default_rng(0).choice(n, 1000, replace=False)]
        estimate = float(np.mean(tree.query_ball_point(sample, self.eps, return_length=True))) * n
        if estimate < MAX_DBSCAN_NEIGHBOURS / 2:  # the sampled estimate is far below the limit
            return
        entries = int(tree.count_neighbors(tree, self.eps))
        if entries > MAX_DBSCAN_NEIGHBOURS:
            raise ParameterError(
                f"{self.name}: eps={self.eps} puts {entries / n:.0f} neighbours around each of {n} points "
                f"({entries:.1e} in all, more than memory allows); lower eps or set a larger voxel_size"
            )


@dataclass
class _CentroidClusteringSegmenter(FeatureClusteringSegmenter):
    """K-means and Birch: a fixed cluster count, or one estimated by the simplified silhouette.

    Attributes:
        n_clusters: number of clusters (FreePoint Table S1: 10); 0 estimates it as the count in
            [2, max_clusters] whose cut of a Ward hierarchy of at most 2,000 sampled voxels has
            the highest mean simplified silhouette (`simplified_silhouette`).
        max_clusters: upper end of the estimate's search range.
    """

    n_clusters: int = 10
    max_clusters: int = 40

    score_rule = (
        "(1 + s) / 2 with s the cluster's mean simplified silhouette (b - a) / max(a, b), a = distance "
        "to its own centre, b = to the nearest other centre: compact, well-separated clusters rank first"
    )

    def validate(self) -> None:
        super().validate()
        # the silhouette scores hold a (voxels x clusters) distance table
        check_range(self.name, "n_clusters", self.n_clusters, 0, 1000)
        if self.n_clusters == 1:
            raise ParameterError(f"{self.name}.n_clusters must be 0 (estimate) or >= 2, got 1")
        check_range(self.name, "max_clusters", self.max_clusters, 2, 1000)

    @abstractmethod
    def fit_labels(self, features: np.ndarray, n_clusters: int) -> np.ndarray:
        """(F,) cluster index in [0, n_clusters) per feature vector."""

    def estimate_clusters(self, features: np.ndarray) -> int:
        """Cluster count in [2, max_clusters] maximising the mean simplified silhouette.

        One Ward hierarchy (scipy) on at most 2,000 sampled vectors is cut at every count, so the
        search costs one O(S²) linkage instead of one estimator fit per candidate count.
        """
        from scipy.cluster.hierarchy import fcluster, linkage

        rng = np.random.default_rng(self.seed)
        sample = features if features.shape[0] <= 2000 else features[rng.choice(features.shape[0], 2000, replace=False)]
        tree = linkage(sample, method="ward")
        best, best_score = 2, -np.inf
        for count in range(2, min(self.max_clusters, sample.shape[0] - 1) + 1):
            _, labels = np.unique(fcluster(tree, count, criterion="maxclust"), return_inverse=True)
            found = int(labels.max()) + 1
            centers = _centers(sample, labels, found)
            sizes = np.bincount(labels, minlength=found)
            score = float(np.dot(simplified_silhouette(sample, labels, centers), sizes) / sample.shape[0])
            if score > best_score:
                best, best_score = count, score
        return best

    def cluster(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if features.shape[0] < 3:
            return np.zeros(features.shape[0], dtype=np.int64), np.full(min(features.shape[0], 1), 0.5)
        count = self.n_clusters if self.n_clusters > 0 else self.estimate_clusters(features)
        count = min(count, features.shape[0])
        labels = self.fit_labels(features, count).astype(np.int64)
        centers = _centers(features, labels, count)
        return labels, (1.0 + simplified_silhouette(features, labels, centers)) / 2.0


def _centers(features: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    sizes = np.bincount(labels, minlength=count).astype(np.float64)
    sums = np.stack([np.bincount(labels, features[:, d], minlength=count) for d in range(features.shape[1])], axis=1)
    return sums / np.maximum(sizes, 1)[:, None]


@register_segmenter("kmeans")
@dataclass
class KMeansSegmenter(_CentroidClusteringSegmenter):
    """K-means (scikit-learn's `KMeans`, k-means++ initialisation), FreePoint's Table S1 baseline.

    FreePoint: "For K-Means and Birch, we set n clusters = 10". See `_CentroidClusteringSegmenter`
    for `n_clusters = 0` (estimated).
    """

    def fit_labels(self, features: np.ndarray, n_clusters: int) -> np.ndarray:
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=n_clusters, n_init=1, random_state=self.seed).fit_predict(features)


@register_segmenter("birch")
@dataclass
class BirchSegmenter(_CentroidClusteringSegmenter):
    """Birch (Zhang et al.; scikit-learn's `Birch`), FreePoint's Table S1 baseline.

    Birch summarises the cloud into sub-clusters of radius below `threshold` (a CF tree), then
    groups them into `n_clusters` by agglomerative clustering. FreePoint states only n_clusters
    and otherwise "adopt[s] the implementation of sklearn", so the threshold is scikit-learn's
    default 0.5: half a metre on coordinates, coarse next to objects, but fast on a room (about
    10x faster than 5 cm on scene0000_00, with a higher AP25 there: 7.1 % against 2.4 %). Set
    it to a few cm for tabletop scans.

    Attributes:
        threshold: largest sub-cluster radius, feature units (metres for xyz).
        branching_factor: most sub-clusters per CF-tree node (scikit-learn's default).
    """

    threshold: float = 0.5
    branching_factor: int = 50

    def validate(self) -> None:
        super().validate()
        check_range(self.name, "threshold", self.threshold, 0.0, 100.0, open_low=True)
        check_range(self.name, "branching_factor", self.branching_factor, 2, 10000)  # arrays of this size per node

    def fit_labels(self, features: np.ndarray, n_clusters: int) -> np.ndarray:
        from sklearn.cluster import Birch
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            # fewer sub-clusters than n_clusters: Birch returns what it has, which is what we want
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator = Birch(threshold=self.threshold, branching_factor=self.branching_factor, n_clusters=n_clusters)
            labels = estimator.fit_predict(features)
        _, labels = np.unique(labels, return_inverse=True)
        return labels.reshape(-1)
