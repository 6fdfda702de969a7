"""FreePoint's pseudo masks: plane removal, FPS, a kNN graph of feature affinities, multicut.

Zhang et al., "FreePoint: Unsupervised Point Cloud Instance Segmentation" (papers/freepoint.md),
sections 3.1-3.2 and the implementation details of section 4. The pipeline:

1. background = the major planes: floor, walls, ceiling and table top, found by the shared
   structure detector (`labelfree3d.geometry.detect_structure`, one-point RANSAC with normals);
2. farthest point sampling keeps `sample_ratio` (1/2) of the foreground points;
3. each sampled point is linked to its k1 = 4 nearest sampled points;
4. per edge, four affinities, cos(F) of deep features, cos(N) of normals, -||xyz|| and
   -||rgb||, each normalised to mean 0 / variance 1 over the edges, are blended with weights
   alpha (eq. 1-3);
5. a multicut solver (python-elf; GAEC warm start + Kernighan-Lin by default) partitions the
   graph with edge costs A + sigma (eq. 4) for sigma_low = 0.9 (base, over-segmented masks) and
   sigma_high = 1.2 (under-segmented masks);
6. every foreground point takes the majority label of its k2 = 4 nearest sampled points.

Choices the paper leaves open are parameters and are written up in
docs/methods/freepoint_multicut.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from labelfree3d.errors import ParameterError
from labelfree3d.geometry import (
    estimate_point_normals,
    farthest_point_sampling,
    knn,
    knn_graph,
    mesh_vertex_normals,
)
from labelfree3d.geometry.structure import CEILING, SUPPORT
from labelfree3d.segment.base import MAX_COUNT, MAX_SEED, Segmenter, check_range, register_segmenter, require_points
from labelfree3d.segment.structure import scan_kind, scene_structure
from labelfree3d.structures import InstanceMasks, Scene

__all__ = [
    "KIND_DEFAULTS",
    "MULTICUT_SOLVERS",
    "FreePointMulticutSegmenter",
    "FreePointPseudoLabels",
    "majority_vote",
    "solve_multicut",
    "standardize",
]

LEVELS = ("low", "high", "both")

# Defaults of the parameters left None, by kind of scan (`labelfree3d.segment.structure.scan_kind`),
# chosen on the selection split of the dev data (docs/results.md); LiDAR keeps the paper's sigmas.
KIND_DEFAULTS: dict[str, dict[str, float]] = {
    "room_mesh": {"sigma_low": 0.6, "sigma_high": 0.9, "alpha_normal": 2.0},
    "room_cloud": {"sigma_low": 0.6, "sigma_high": 0.9, "alpha_normal": 2.0},
    "tabletop_frame": {"sigma_low": 1.4, "sigma_high": 1.6, "alpha_normal": 1.0},
    "lidar_sweep": {"sigma_low": 0.9, "sigma_high": 1.2, "alpha_normal": 1.0},
}
NORMAL_SIMILARITIES = ("cos", "abs_cos")
SCORE_RULES = ("size_closure", "size", "contrast")
TERMS = ("embedding", "normal", "xyz", "rgb")

# name -> python-elf solver function (all but "rama" run on the CPU through bioimage-cpp)
MULTICUT_SOLVERS: dict[str, str] = {
    "gaec+kl": "multicut_kernighan_lin",  # GAEC warm start, then Kernighan-Lin moves
    "gaec": "multicut_gaec",
    "kl": "multicut_kernighan_lin",  # Kernighan-Lin from singletons (no warm start)
    "greedy-fixation": "multicut_greedy_fixation",
    "fusion-moves": "multicut_fusion_moves",
    "rama": "multicut_rama",  # the paper's GPU solver; needs the optional rama_py package
}


def solve_multicut(edges: np.ndarray, costs: np.ndarray, num_nodes: int, solver: str = "gaec+kl") -> np.ndarray:
    """Node labels of a multicut of the graph `edges` under edge `costs`, by a python-elf solver.

    Sign convention (elf / bioimage-cpp, the same as RAMA's): a positive cost is attractive
    (cutting the edge costs that much, so its ends tend to be joined), a negative cost is
    repulsive. The solver minimises the summed cost of the cut edges.

    Args:
        edges: (E, 2) int node pairs, each undirected edge once.
        costs: (E,) float edge costs.
        num_nodes: number of nodes V (isolated nodes become singleton segments).
        solver: a key of `MULTICUT_SOLVERS`.

    Returns:
        (V,) int64 segment ids, consecutive from 0 in order of each segment's lowest node.
    """
    import bioimage_cpp as bic
    import elf.segmentation.multicut as elf_multicut

    if solver not in MULTICUT_SOLVERS:
        raise ParameterError(f"solver must be one of {', '.join(MULTICUT_SOLVERS)}; got {solver!r}")
    edges = np.asarray(edges, dtype=np.uint64).reshape(-1, 2)
    costs = np.asarray(costs, dtype=np.float64).reshape(-1)
    if costs.shape[0] != edges.shape[0]:
        raise ParameterError(f"{costs.shape[0]} costs for {edges.shape[0]} edges")
    if edges.shape[0] == 0:
        return np.arange(num_nodes, dtype=np.int64)
    graph = bic.graph.UndirectedGraph.from_edges(int(num_nodes), edges)
    function = getattr(elf_multicut, MULTICUT_SOLVERS[solver])
    if solver == "kl":
        labels = function(graph, costs, warmstart=False)
    else:
        labels = function(graph, costs)
    _, first, inverse = np.unique(np.asarray(labels), return_index=True, return_inverse=True)
    # renumber by lowest node so that ids do not depend on the solver's internal numbering
    rank = np.argsort(np.argsort(first))
    return rank[inverse].astype(np.int64)


def standardize(values: np.ndarray) -> np.ndarray:
    """(E,) values shifted and scaled to mean 0 and variance 1 (all zeros when constant).

    FreePoint normalises each of its four edge affinities this way before blending them (sec. 3.2).
    """
    values = np.asarray(values, dtype=np.float64)
    deviation = float(values.std()) if values.size else 0.0
    if not deviation > 1e-12 * max(1.0, float(np.abs(values).max(initial=0.0))):
        return np.zeros_like(values)
    return (values - values.mean()) / deviation


def majority_vote(neighbor_labels: np.ndarray) -> np.ndarray:
    """Most frequent label in each row; ties go to the label seen first (the nearest neighbour).

    Args:
        neighbor_labels: (Q, k) int labels of each query point's k nearest sampled points,
            columns in ascending distance.

    Returns:
        (Q,) int64 winning label per row.
    """
    neighbor_labels = np.asarray(neighbor_labels)
    # votes[q, j] = how many of row q's k labels equal its j-th label; argmax takes the first
    # (nearest) column among equal counts. k is tiny (4), so the (Q, k, k) comparison is cheap.
    votes = (neighbor_labels[:, :, None] == neighbor_labels[:, None, :]).sum(axis=2)
    winner = np.argmax(votes, axis=1)
    return neighbor_labels[np.arange(neighbor_labels.shape[0]), winner].astype(np.int64)


@dataclass
class FreePointPseudoLabels:
    """Everything the pipeline computes for one scene, for training, inspection and tests.

    Attributes:
        labels: level name ("low", "high") -> (N,) int64 segment id per point, -1 for background
            (plane) points and for points of segments smaller than `min_mask_points`.
        scores: level name -> (K,) float64 confidence of segment k (see the segmenter's `score_rule`).
        background: (N,) bool, points removed as background planes.
        sample_indices: (S,) int64 indices of the farthest-point samples (the graph's nodes).
        edges: (E, 2) int64 kNN graph over the samples (positions in `sample_indices`).
        affinity: (E,) float64 blended affinity A of each edge (before sigma is added).
        sample_labels: level name -> (S,) int64 multicut segment of each sample (before the
            small-segment filter).
        planes: (P, 4) background plane models a x + b y + c z + d = 0.
    """

    labels: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    background: np.ndarray
    sample_indices: np.ndarray
    edges: np.ndarray
    affinity: np.ndarray
    sample_labels: dict[str, np.ndarray]
    planes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))

    def masks(self, level: str) -> InstanceMasks:
        """Masks of one level ("low" or "high") with their confidences."""
        return InstanceMasks.from_labels(self.labels[level], self.scores[level])


@register_segmenter("multicut")
@dataclass
class FreePointMulticutSegmenter(Segmenter):
    """FreePoint's pseudo-mask generator (sec. 3.1-3.2): planes out, FPS, kNN graph, multicut.

    Attributes:
        structure: "remove" (default) makes the scan's structure (floor, walls, ceiling, table
            top; `labelfree3d.segment.structure`) the background of sec. 3.1; "keep" segments the
            whole scan. The paper uses "plane segmentation [64]" without numbers; the shared
            detector's distances follow the scan's point spacing.
        sample_ratio: fraction of the foreground points kept by farthest point sampling (sec. 4:
            "half of the number of original points").
        k1: neighbours per sampled point in the graph (sec. 4: k1 = 4).
        k2: nearest samples voting for each foreground point's label (sec. 4: k2 = 4).
        alpha_embedding, alpha_normal, alpha_xyz, alpha_rgb: weights alpha_1..alpha_4 of eq. 3.
            The paper gives no values; they are renormalised to sum to 1 over the terms that
            are available (no `features` -> no embedding term; no colours -> no rgb term), so
            that the blended affinity keeps a scale (variance <= 1) on which sigma in 0.8-1.2
            means what Fig. 6-7 show. alpha_normal None = from `KIND_DEFAULTS` (2 for rooms,
            where furniture parts meet at creases, 1 elsewhere).
        sigma_low: eq. 4 offset for the base (over-segmented) masks. The paper's 0.9 (sec. 4) is
            for its affinity with a learned-feature term; without one, the best offset differs by
            kind of scan, so None takes it from `KIND_DEFAULTS` (chosen on the selection split,
            docs/results.md): 0.6 for rooms (touching furniture needs more cuts), 1.4 for
            tabletop frames (objects stand apart; box faces must stay together), the paper's 0.9
            for LiDAR sweeps.
        sigma_high: eq. 4 offset for the under-segmented masks (sec. 4: 1.2); None = from
            `KIND_DEFAULTS` (sigma_low + 0.2 to 0.3).
        level: what `segment()` returns: "low" (base masks, the paper's best coarse masks),
            "high", or "both" (the two levels concatenated).
        solver: multicut solver (`MULTICUT_SOLVERS`); the paper uses RAMA on GPU, the default is
            python-elf's GAEC + Kernighan-Lin on CPU.
        normal_similarity: the normal affinity: "cos" (eq. 1, needs consistently oriented
            normals) or "abs_cos" (sign-free; no orientation needed for raw point clouds).
        normal_k: neighbours for PCA normals when the scene has neither normals nor faces.
        score: mask confidence, see `score_rule`.
        min_mask_points: segments with fewer points (full resolution) are dropped and their
            points left unlabelled; 100 matches ScanNet's minimum region size.
        seed: seed of the plane hypotheses and start point of the FPS.
    """

    sample_ratio: float = 0.5
    k1: int = 4
    k2: int = 4
    alpha_embedding: float = 1.0
    alpha_normal: float | None = None
    alpha_xyz: float = 1.0
    alpha_rgb: float = 0.5
    sigma_low: float | None = None
    sigma_high: float | None = None
    level: str = "low"
    solver: str = "gaec+kl"
    normal_similarity: str = "cos"
    normal_k: int = 30
    score: str = "size_closure"
    min_mask_points: int = 100
    seed: int = 0

    score_rule: ClassVar[str] = (
        "size_closure (default): S / (S + 10 min_mask_points) x (1 - c), S the mask's points and c the "
        "fraction of its graph edge ends that the multicut cut: large segments sealed off from their "
        "surroundings rank above fragments split off a larger surface. size: the first factor only. "
        "contrast: logistic of (mean blended affinity inside the segment - mean over its cut edges)"
    )

    def validate(self) -> None:
        name = self.name
        check_range(name, "sample_ratio", self.sample_ratio, 0.0, 1.0, open_low=True)
        check_range(name, "k1", self.k1, 1, 100)
        check_range(name, "k2", self.k2, 1, 100)
        for term in TERMS:
            if getattr(self, f"alpha_{term}") is not None:
                check_range(name, f"alpha_{term}", getattr(self, f"alpha_{term}"), 0.0, 100.0)
        if (self.alpha_normal or 0.0) + self.alpha_xyz + self.alpha_rgb <= 0 and self.alpha_normal is not None:
            raise ParameterError(f"{name}: alpha_normal, alpha_xyz and alpha_rgb cannot all be 0")
        for key in ("sigma_low", "sigma_high"):
            if getattr(self, key) is not None:
                check_range(name, key, getattr(self, key), -10.0, 10.0)
        if self.sigma_low is not None and self.sigma_high is not None and self.sigma_high < self.sigma_low:
            raise ParameterError(f"{name}.sigma_high ({self.sigma_high}) must be >= sigma_low ({self.sigma_low})")
        _check_choice(name, "level", self.level, LEVELS)
        _check_choice(name, "solver", self.solver, tuple(MULTICUT_SOLVERS))
        if self.solver == "rama" and not _rama_available():
            raise ParameterError(f"{name}.solver='rama' needs the rama_py package (CUDA); use 'gaec+kl'")
        _check_choice(name, "normal_similarity", self.normal_similarity, NORMAL_SIMILARITIES)
        check_range(name, "normal_k", self.normal_k, 3, 1000)
        _check_choice(name, "score", self.score, SCORE_RULES)
        check_range(name, "min_mask_points", self.min_mask_points, 1, MAX_COUNT)
        check_range(name, "seed", self.seed, 0, MAX_SEED)

    # ------------------------------------------------------------------ public verbs
    def segment(self, scene: Scene, features: np.ndarray | None = None) -> InstanceMasks:
        """Masks of `level` over the scene's N points (background points are in no mask).

        Args:
            scene: the scan (colours and normals are used when present).
            features: optional (N, C) deep features for the cos(F) term.
        """
        require_points(scene)
        levels = self.segment_levels(scene, features, which=("low", "high") if self.level == "both" else (self.level,))
        if self.level == "both":
            return self.structure_scored(InstanceMasks.concatenate([levels["low"], levels["high"]]), scene)
        return self.structure_scored(levels[self.level], scene)

    def segment_points(self, scene: Scene, features: np.ndarray | None = None) -> InstanceMasks:
        """`segment` without the background: the pipeline on every point of `scene`."""
        keep = dataclasses.replace(self, structure="keep")
        return keep.segment(scene, features)

    def segment_levels(
        self, scene: Scene, features: np.ndarray | None = None, which: tuple[str, ...] = ("low", "high")
    ) -> dict[str, InstanceMasks]:
        """Base (sigma_low) and under-segmented (sigma_high) masks, as FreePoint's two-step training uses them.

        Returns:
            {"low": masks, "high": masks}, each over the scene's N points (only the levels in `which`).
        """
        result = self.pseudo_labels(scene, features, which=which)
        return {level: result.masks(level) for level in which}

    def pseudo_labels(
        self, scene: Scene, features: np.ndarray | None = None, which: tuple[str, ...] = ("low", "high")
    ) -> FreePointPseudoLabels:
        """Run the whole pipeline and keep its intermediate results (see `FreePointPseudoLabels`).

        Args:
            scene: the scan.
            features: optional (N, C) per-point deep features.
            which: levels to solve, a subset of ("low", "high").
        """
        unknown = [level for level in which if level not in ("low", "high")]
        if unknown or not which:
            raise ParameterError(f"levels must be 'low' and/or 'high', got {which!r}")
        unset = {key: value for key, value in KIND_DEFAULTS[scan_kind(scene)].items() if getattr(self, key) is None}
        if unset:
            if self.sigma_low is not None and self.sigma_high is None:
                unset["sigma_high"] = max(unset["sigma_high"], self.sigma_low)
            if self.sigma_high is not None and self.sigma_low is None:
                unset["sigma_low"] = min(unset["sigma_low"], self.sigma_high)
            return dataclasses.replace(self, **unset).pseudo_labels(scene, features, which)
        n = scene.num_points
        if features is not None:
            features = np.asarray(features, dtype=np.float64)
            if features.ndim != 2 or features.shape[0] != n:
                raise ParameterError(f"features must have shape ({n}, C), got {features.shape}")
            if not np.isfinite(features).all():
                raise ParameterError("features contain NaN or infinite values")
        points = scene.points.astype(np.float64)
        if round(self.sample_ratio * n) <= max(self.k1, self.k2):
            # too few points for a graph (and for PCA normals): no masks, nothing background
            return _unsegmented(np.zeros(n, dtype=bool), np.zeros((0, 4)), which)
        normals = self.point_normals(scene)
        planes, background = self.background(scene)
        foreground = np.flatnonzero(~background)
        num_samples = round(self.sample_ratio * foreground.shape[0])
        if num_samples <= max(self.k1, self.k2):
            return _unsegmented(background, planes, which)  # (almost) all background

        start = self.seed % foreground.shape[0]
        samples = foreground[farthest_point_sampling(points[foreground], num_samples, start_index=start)]
        edges, lengths = knn_graph(points[samples], self.k1)
        affinity = self.edge_affinity(edges, lengths, samples, scene, normals[samples], features)

        # every foreground point votes among its k2 nearest samples (sec. 3.2, "up sample")
        _, nearest = knn(points[samples], self.k2, query=points[foreground])
        labels: dict[str, np.ndarray] = {}
        scores: dict[str, np.ndarray] = {}
        sample_labels: dict[str, np.ndarray] = {}
        for level in which:
            sigma = self.sigma_low if level == "low" else self.sigma_high
            segment_of_sample = solve_multicut(edges, affinity + sigma, num_samples, self.solver)
            sample_labels[level] = segment_of_sample
            point_labels = np.full(n, -1, dtype=np.int64)
            point_labels[foreground] = majority_vote(segment_of_sample[nearest])
            labels[level], scores[level] = self._filter_and_score(point_labels, segment_of_sample, edges, affinity)
        return FreePointPseudoLabels(labels, scores, background, samples, edges, affinity, sample_labels, planes)

    # ------------------------------------------------------------------ steps
    def background(self, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
        """Background of sec. 3.1: the scan's structure (without the walls for `structure="support"`,
        nothing with "keep").

        Returns:
            (planes (P, 4) float64 support, ceiling and wall planes; background (N,) bool).
        """
        if self.structure == "keep":
            return np.zeros((0, 4)), np.zeros(scene.num_points, dtype=bool)
        structure = scene_structure(scene)
        planes = [plane for plane in (structure.support, structure.ceiling) if plane is not None]
        if self.structure == "support":
            return np.array(planes).reshape(-1, 4), np.isin(structure.labels, (SUPPORT, CEILING))
        planes = np.concatenate([np.array(planes).reshape(-1, 4), structure.walls])
        return planes, ~structure.rest

    def point_normals(self, scene: Scene) -> np.ndarray:
        """(N, 3) float64 unit normals of every point.

        The scene's own normals when it has them, area-weighted vertex normals of a mesh, else
        PCA normals from `normal_k` neighbours, oriented towards the sensor when the reader
        recorded its position (PCD `VIEWPOINT`) and by tangent-plane propagation otherwise:
        cos(N) (eq. 1) needs normals of consistent sign.
        """
        if scene.normals is not None:
            return scene.normals.astype(np.float64)
        if scene.is_mesh:
            return mesh_vertex_normals(scene.points, scene.faces).astype(np.float64)
        viewpoint = _sensor_position(scene)
        if viewpoint is not None:
            orientation = "viewpoint"
        else:  # |cos| ignores the sign, so the costly consistent orientation is only needed for cos
            orientation = "tangent_plane" if self.normal_similarity == "cos" else "none"
        normals = estimate_point_normals(scene.points, k=self.normal_k, orientation=orientation, viewpoint=viewpoint)
        return normals.astype(np.float64)

    def edge_affinity(
        self,
        edges: np.ndarray,
        lengths: np.ndarray,
        samples: np.ndarray,
        scene: Scene,
        normals: np.ndarray,
        features: np.ndarray | None = None,
    ) -> np.ndarray:
        """Blended affinity A of each edge (eq. 1-3), before sigma is added.

        Args:
            edges: (E, 2) sample positions joined by each edge.
            lengths: (E,) Euclidean edge lengths, metres.
            samples: (S,) point index of each sample.
            scene: the scan (colours).
            normals: (S, 3) unit normals of the samples.
            features: optional (N, C) deep features.

        Returns:
            (E,) float64 sum over the available terms of alpha_t * standardize(term_t), with the
            alphas renormalised to sum to 1.
        """
        a, b = edges[:, 0], edges[:, 1]
        terms: dict[str, np.ndarray] = {
            "normal": np.einsum("ij,ij->i", normals[a], normals[b]),
            "xyz": -np.asarray(lengths, dtype=np.float64),
        }
        if scene.colors is not None:
            colors = scene.colors[samples].astype(np.float64)
            terms["rgb"] = -np.linalg.norm(colors[a] - colors[b], axis=1)
        if features is not None:
            embedded = features[samples]
            length = np.linalg.norm(embedded, axis=1)
            embedded = embedded / np.where(length > 0, length, 1.0)[:, None]
            terms["embedding"] = np.einsum("ij,ij->i", embedded[a], embedded[b])
        if self.normal_similarity == "abs_cos":
            terms["normal"] = np.abs(terms["normal"])
        weights = {term: float(getattr(self, f"alpha_{term}")) for term in terms}
        total = sum(weights.values())
        if total <= 0:
            raise ParameterError(f"{self.name}: every available affinity term has alpha 0 ({', '.join(terms)})")
        affinity = np.zeros(edges.shape[0])
        for term, values in terms.items():
            if weights[term] > 0:
                affinity += (weights[term] / total) * standardize(values)
        return affinity

    def _filter_and_score(
        self, point_labels: np.ndarray, sample_labels: np.ndarray, edges: np.ndarray, affinity: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Drop segments under `min_mask_points`, renumber the rest 0..K-1 and score them."""
        num_segments = int(sample_labels.max()) + 1
        sizes = np.bincount(point_labels[point_labels >= 0], minlength=num_segments)
        kept = sizes >= self.min_mask_points
        new_id = np.full(num_segments, -1, dtype=np.int64)
        new_id[kept] = np.arange(np.count_nonzero(kept))
        out = np.where(point_labels >= 0, new_id[np.maximum(point_labels, 0)], -1)
        scores = self._segment_scores(sample_labels, edges, affinity, sizes, num_segments)[kept]
        return out, scores

    def _segment_scores(
        self, sample_labels: np.ndarray, edges: np.ndarray, affinity: np.ndarray, sizes: np.ndarray, count: int
    ) -> np.ndarray:
        """(count,) confidence per multicut segment, following `score` (see `score_rule`)."""
        size_term = sizes / (sizes + 10.0 * self.min_mask_points)
        if self.score == "size":
            return size_term
        left, right = sample_labels[edges[:, 0]], sample_labels[edges[:, 1]]
        inside = left == right
        internal_count = np.bincount(left[inside], minlength=count)
        cut_ends = np.concatenate([left[~inside], right[~inside]])
        cut_count = np.bincount(cut_ends, minlength=count)
        if self.score == "size_closure":
            ends = 2 * internal_count + cut_count  # each internal edge has both ends in the segment
            cut_fraction = cut_count / np.maximum(ends, 1)
            return size_term * (1.0 - cut_fraction)
        internal_sum = np.bincount(left[inside], affinity[inside], minlength=count)
        cut_sum = np.bincount(cut_ends, np.concatenate([affinity[~inside], affinity[~inside]]), minlength=count)
        # no internal edge (one sample): the weakest affinity seen; no cut edge (an isolated
        # component): as separated as the strongest cut seen
        weakest = float(affinity.min()) if affinity.size else 0.0
        internal = np.where(internal_count > 0, internal_sum / np.maximum(internal_count, 1), weakest)
        boundary = np.where(cut_count > 0, cut_sum / np.maximum(cut_count, 1), weakest)
        return 1.0 / (1.0 + np.exp(-(internal - boundary)))


def _unsegmented(background: np.ndarray, planes: np.ndarray, which: tuple[str, ...]) -> FreePointPseudoLabels:
    """The result for a scene too small to segment: every point unlabelled, no graph."""
    n = background.shape[0]
    return FreePointPseudoLabels(
        labels={level: np.full(n, -1, dtype=np.int64) for level in which},
        scores={level: np.zeros(0) for level in which},
        background=background,
        sample_indices=np.zeros(0, np.int64),
        edges=np.zeros((0, 2), np.int64),
        affinity=np.zeros(0),
        sample_labels={level: np.zeros(0, np.int64) for level in which},
        planes=planes,
    )


def _check_choice(method: str, key: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ParameterError(f"{method}.{key} must be one of {', '.join(options)}; got {value!r}")


def _rama_available() -> bool:
    try:
        import rama_py  # noqa: F401
    except ImportError:
        return False
    return True


def _sensor_position(scene: Scene) -> np.ndarray | None:
    """(3,) sensor position from a PCD `VIEWPOINT` ("tx ty tz qw qx qy qz") in the metadata, or None."""
    viewpoint = scene.metadata.get("viewpoint")
    if viewpoint is None:
        return None
    try:
        values = [float(v) for v in str(viewpoint).split()]
    except ValueError:
        return None
    if len(values) < 3 or not all(math.isfinite(v) for v in values[:3]):
        return None
    return np.array(values[:3])
