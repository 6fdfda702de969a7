"""UnScene3D's pseudo masks: masked Normalized Cut on superpoints (Rozenberszki et al., CVPR 2024, §3.1).

Pipeline (§3.1.3-3.1.4, supplementary Algorithm 1):

1. superpoints (ScanNet's mesh segmentation, Felzenszwalb on the mesh graph);
2. per-superpoint features = mean of the point features, one matrix per modality;
3. affinity A = weighted average of the per-modality cosine-similarity matrices, each min-max
   normalised (official code's `normalize_mat`); W = 1 where A >= tau_cut, else epsilon;
4. repeat: second smallest generalised eigenvector of (D - W) v = lambda D v; foreground =
   segments with v >= mean(v), complemented when it holds more than half of the segments; keep
   the foreground component, connected in the superpoint adjacency graph, that holds the largest
   activation; accept it when it has at least `min_foreground` segments; mask it out of W.

Every choice the paper leaves open is a parameter of `MaskedNCutSegmenter`; docs/methods/
unscene3d_ncut.md explains each one with its paper reference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg
from scipy.sparse.csgraph import connected_components

from labelfree3d.errors import InputError, ParameterError
from labelfree3d.features import (
    HANDCRAFTED_MODALITIES,
    compact_superpoints,
    handcrafted_features,
    point_graph_edges,
    scene_normals,
    superpoint_adjacency,
    superpoint_features,
)
from labelfree3d.geometry import felzenszwalb_segmentation, knn_graph, mesh_superpoints, point_edge_weights
from labelfree3d.segment.base import MAX_COUNT, STRUCTURE_MODES, Segmenter, check_range, register_segmenter
from labelfree3d.segment.structure import scan_kind
from labelfree3d.structures import InstanceMasks, Scene

__all__ = [
    "MaskedNCutSegmenter",
    "NCutMasks",
    "cosine_similarity",
    "masked_ncut",
    "modality_affinity",
    "second_smallest_eigenvector",
]

SEPARATIONS = ("max", "avg", "largest", "none")
MASKINGS = ("remove", "epsilon")
SOLVERS = ("auto", "dense", "lanczos")
SCORES = ("cut", "eigenvalue", "activation", "order")
SUPERPOINT_SOURCES = ("auto", "scene", "mesh", "points")

#: handcrafted modalities used when no features are given (chosen on scene0000_00 and OSD, see docs)
DEFAULT_HANDCRAFTED = ("normal", "fpfh", "rgb")
#: largest graph solved with dense LAPACK under solver="auto"; Lanczos is faster beyond
DENSE_SOLVER_LIMIT = 400
#: most superpoints NCut cuts: it holds a few dense (S, S) float32 matrices (affinity, weights,
#: 400 MB each at this size). The shared scans give 400-2,700 with the defaults; superpoints
#: of single points (superpoint_min_size=1) on a 180,000-point Kinect frame would need 130 GB each
MAX_SEGMENTS = 10_000

FeatureInput = np.ndarray | Mapping[str, np.ndarray] | None


def cosine_similarity(features: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Cosine similarity of every pair of rows, optionally min-max normalised to [0, 1].

    Args:
        features: (S, C) one feature vector per superpoint; all-zero rows have similarity 0 to
            everything (UnScene3D zeroes the features of segments without valid points).
        normalize: subtract the smallest non-zero similarity, clip at 0 and divide by the largest,
            as the official code's `normalize_mat` does before thresholding (so tau_cut acts on a
            [0, 1] scale whatever the feature statistics).

    Returns:
        (S, S) float32 symmetric similarity matrix.
    """
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise ParameterError(f"features must have shape (S, C), got {features.shape}")
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = features / np.maximum(norms, 1e-12)
    similarity = unit @ unit.T
    if normalize:
        nonzero = similarity[similarity != 0]
        if nonzero.size and np.any(similarity > 0):
            similarity -= nonzero.min()
            np.maximum(similarity, 0.0, out=similarity)
            similarity /= similarity.max() + 1e-5  # the official code's epsilon keeps 1 out of reach
    return similarity


def modality_affinity(
    features: Mapping[str, np.ndarray], weights: Sequence[float] | None = None, normalize: bool = True
) -> np.ndarray:
    """Weighted average of per-modality cosine-similarity matrices (UnScene3D §3.1.4).

    The paper found averaging similarities more robust than concatenating features because the
    modalities have different statistics; the official code averages the two min-max normalised
    matrices with equal weights.

    Args:
        features: modality name -> (S, C_m) per-superpoint features (same S for all).
        weights: one non-negative weight per modality (in mapping order), not all zero; None =
            equal weights.
        normalize: min-max normalise each modality's similarity (see `cosine_similarity`).

    Returns:
        (S, S) float32 affinity in [0, 1] when normalised.
    """
    names = list(features)
    if not names:
        raise ParameterError("no feature modality given")
    weights = np.ones(len(names)) if weights is None or len(weights) == 0 else np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(names),) or np.any(weights < 0) or weights.sum() <= 0:
        raise ParameterError(f"need {len(names)} non-negative weights, not all zero, got {list(weights)}")
    affinity = None
    for name, weight in zip(names, weights / weights.sum()):
        if weight == 0:
            continue
        term = cosine_similarity(features[name], normalize)
        term *= np.float32(weight)
        affinity = term if affinity is None else affinity + term
    return affinity


def second_smallest_eigenvector(weights: np.ndarray, solver: str = "auto") -> tuple[float, np.ndarray]:
    """Second smallest solution of the Normalized Cut eigenproblem (D - W) v = lambda D v (Shi & Malik).

    Solved in the equivalent symmetric form D^-1/2 W D^-1/2 u = (1 - lambda) u, v = D^-1/2 u,
    which LAPACK and ARPACK handle faster than the generalised problem.

    Args:
        weights: (n, n) symmetric non-negative affinity W with positive row sums.
        solver: "dense" (LAPACK `eigh` with a subset), "lanczos" (ARPACK `eigsh`, largest
            algebraic, on the dense matrix; deterministic start vector), or "auto" (dense up to
            400 nodes).

    Returns:
        (lambda, (n,) float64 eigenvector v normalised so that v^T D v = 1 and that its entry of
        largest magnitude is positive, which fixes the sign LAPACK/ARPACK leave arbitrary).
    """
    n = weights.shape[0]
    if weights.ndim != 2 or weights.shape != (n, n) or n < 2:
        raise ParameterError(f"weights must be a square matrix with at least 2 rows, got {weights.shape}")
    degree = weights.sum(axis=1, dtype=np.float64)
    if np.any(degree <= 0):
        raise ParameterError("every node needs a positive degree (epsilon > 0 guarantees it)")
    scale = 1.0 / np.sqrt(degree)
    normalized = (weights * scale[:, None]) * scale[None, :]
    if solver == "auto":
        solver = "dense" if n <= DENSE_SOLVER_LIMIT else "lanczos"
    if solver == "lanczos" and n > 3:
        start = np.random.default_rng(0).standard_normal(n)
        try:
            values, vectors = scipy.sparse.linalg.eigsh(normalized, k=2, which="LA", v0=start, tol=1e-8)
        except scipy.sparse.linalg.ArpackNoConvergence:
            solver = "dense"
        else:
            second = int(np.argmin(values))
            mu, u = float(values[second]), vectors[:, second]
    if solver != "lanczos" or n <= 3:
        values, vectors = scipy.linalg.eigh(normalized.astype(np.float64), subset_by_index=[n - 2, n - 2])
        mu, u = float(values[0]), vectors[:, 0]
    v = u * scale
    v /= np.sqrt(np.sum(degree * v * v))
    if v[np.argmax(np.abs(v))] < 0:
        v = -v
    return 1.0 - mu, v


@dataclass
class NCutMasks:
    """Masks found by `masked_ncut` over S segments, with what each cut measured.

    Attributes:
        segments: one int64 array of segment indices per accepted mask, in acceptance order.
        eigenvalue: (K,) lambda of the cut that produced each mask (relaxed NCut cost, in [0, 1]
            for a connected graph; small = a clean cut).
        cut: (K,) exact normalized cut of the final mask against the rest of the graph it was
            cut from, cut(m, r) / vol(m) + cut(m, r) / vol(r), in [0, 2].
        activation: (K,) mean of the oriented eigenvector over the mask divided by its largest
            entry, in (0, 1].
        iteration: (K,) index of the NCut iteration that produced each mask.
        iterations: number of NCut iterations run.
    """

    segments: list[np.ndarray] = field(default_factory=list)
    eigenvalue: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cut: np.ndarray = field(default_factory=lambda: np.zeros(0))
    activation: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iteration: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    iterations: int = 0

    def scores(self, rule: str) -> np.ndarray:
        """(K,) confidences: "cut" = 1 - cut / 2, "eigenvalue" = 1 - lambda, "activation",
        "order" = 1 / (1 + iteration) (the paper's greedy order of confidence)."""
        if rule == "cut":
            return 1.0 - self.cut / 2.0
        if rule == "eigenvalue":
            return np.clip(1.0 - self.eigenvalue, 0.0, 1.0)
        if rule == "activation":
            return self.activation.copy()
        if rule == "order":
            return 1.0 / (1.0 + self.iteration.astype(np.float64))
        raise ParameterError(f"unknown score rule {rule!r}; valid: {', '.join(SCORES)}")


def masked_ncut(
    affinity: np.ndarray,
    adjacency: np.ndarray,
    tau: float = 0.55,
    epsilon: float = 1e-5,
    min_foreground: int = 8,
    max_instances: int = 20,
    max_iterations: int | None = None,
    max_foreground_fraction: float = 0.5,
    separation: str = "max",
    masking: str = "remove",
    solver: str = "auto",
) -> NCutMasks:
    """UnScene3D's iterative masked Normalized Cut over segments (supplementary Algorithm 1).

    Args:
        affinity: (S, S) symmetric similarity of the segments (see `modality_affinity`).
        adjacency: (A, 2) pairs of touching segments (see `superpoint_adjacency`).
        tau: tau_cut; W = 1 where affinity >= tau, else `epsilon` (§3.1.4).
        epsilon: weight of dissimilar pairs; keeps the graph connected (official code: 1e-5).
        min_foreground: smallest accepted mask, in segments (supplementary §7.4: 8). Smaller
            components are masked out all the same, so the loop moves on.
        max_instances: stop after accepting this many masks.
        max_iterations: stop after this many cuts, accepted or not (the official loop runs 20
            iterations); None = until `max_instances` or no segments are left.
        max_foreground_fraction: complement the bipartition when its foreground holds more than
            this fraction of the segments still in play (Algorithm 1: 1/2; official code: 0.8).
        separation: which connected part of the foreground is kept (Table 9): "max" = the one
            holding the largest eigenvector activation, "avg" = the highest mean activation,
            "largest" = the most segments, "none" = the whole foreground.
        masking: how accepted segments leave the graph: "remove" deletes their rows and columns
            (§3.1.4 "mask out the row and column vectors"), "epsilon" keeps them with affinity
            epsilon to everything, as the official code does; then a foreground that is mostly
            (> 50 %) already taken is skipped and taken segments are subtracted from masks.
        solver: eigen-solver, see `second_smallest_eigenvector`.

    Returns:
        `NCutMasks` with the accepted segment sets and their cut statistics.
    """
    s = affinity.shape[0]
    if affinity.shape != (s, s):
        raise ParameterError(f"affinity must be square, got {affinity.shape}")
    adjacency = np.asarray(adjacency, dtype=np.int64).reshape(-1, 2)
    touching = sp.csr_matrix(
        (np.ones(2 * adjacency.shape[0], dtype=np.int8), (adjacency.ravel(), adjacency[:, ::-1].ravel())), shape=(s, s)
    )
    weights = np.where(affinity >= tau, np.float32(1.0), np.float32(epsilon)).astype(np.float32)
    result = _Accumulator()
    removed = np.zeros(s, dtype=bool)  # masked out of the graph (accepted or rejected)
    accepted = np.zeros(s, dtype=bool)
    limit = np.inf if max_iterations is None else max_iterations
    iteration = 0
    while iteration < limit and len(result.segments) < max_instances:
        if masking == "remove":
            nodes = np.flatnonzero(~removed)
            if nodes.shape[0] < max(min_foreground, 2):
                break
            graph = weights[np.ix_(nodes, nodes)]
        else:
            if removed.all():
                break
            nodes = np.arange(s)
            graph = weights.copy()
            graph[removed, :] = epsilon
            graph[:, removed] = epsilon
        eigenvalue, vector = second_smallest_eigenvector(graph, solver)
        foreground = vector >= vector.mean()
        if np.count_nonzero(foreground) > max_foreground_fraction * nodes.shape[0]:
            foreground, vector = ~foreground, -vector
        chosen = _separate(foreground, vector, touching[nodes][:, nodes], separation)
        iteration += 1
        if chosen.size == 0:
            break
        chosen_segments = nodes[chosen]
        if masking == "epsilon":
            if removed[chosen_segments].all():
                # the cut picked only masked-out segments: the eigenproblem is unchanged and
                # would give the same cut forever (the official loop spins until its limit)
                break
            overlap = np.count_nonzero(accepted[chosen_segments]) / chosen_segments.shape[0]
            removed[chosen_segments] = True
            if overlap > 0.5 or chosen_segments.shape[0] < min_foreground:
                continue
            chosen = chosen[~accepted[chosen_segments]]
            chosen_segments = nodes[chosen]
        else:
            removed[chosen_segments] = True
            if chosen_segments.shape[0] < min_foreground:
                continue
        accepted[chosen_segments] = True
        result.add(chosen_segments, eigenvalue, _normalized_cut(graph, chosen), vector, chosen, iteration - 1)
    return result.finish(iteration)


class _Accumulator:
    """Collects accepted masks and their statistics."""

    def __init__(self) -> None:
        self.segments: list[np.ndarray] = []
        self.eigenvalue: list[float] = []
        self.cut: list[float] = []
        self.activation: list[float] = []
        self.iteration: list[int] = []

    def add(
        self, segments: np.ndarray, eigenvalue: float, cut: float, vector: np.ndarray, local: np.ndarray, iteration: int
    ) -> None:
        """Record one accepted mask: its segment ids and the statistics of the cut that made it."""
        self.segments.append(np.sort(segments))
        self.eigenvalue.append(eigenvalue)
        self.cut.append(cut)
        self.activation.append(float(vector[local].mean() / max(vector.max(), 1e-300)))
        self.iteration.append(iteration)

    def finish(self, iterations: int) -> NCutMasks:
        return NCutMasks(
            self.segments,
            np.asarray(self.eigenvalue, dtype=np.float64),
            np.asarray(self.cut, dtype=np.float64),
            np.asarray(self.activation, dtype=np.float64),
            np.asarray(self.iteration, dtype=np.int64),
            iterations,
        )


def _separate(foreground: np.ndarray, vector: np.ndarray, touching: sp.csr_matrix, separation: str) -> np.ndarray:
    """Local indices of the foreground part kept by the separation rule (Table 9)."""
    members = np.flatnonzero(foreground)
    if separation == "none" or members.size == 0:
        return members
    _, component = connected_components(touching[members][:, members], directed=False)
    if separation == "max":
        keep = component[np.argmax(vector[members])]
    elif separation == "avg":
        sums = np.bincount(component, weights=vector[members])
        keep = int(np.argmax(sums / np.bincount(component)))
    else:  # "largest"
        keep = int(np.argmax(np.bincount(component)))
    return members[component == keep]


def _normalized_cut(graph: np.ndarray, members: np.ndarray) -> float:
    """cut(m, r) / vol(m) + cut(m, r) / vol(r) of node set `members` in `graph` (Shi & Malik)."""
    inside = np.zeros(graph.shape[0], dtype=bool)
    inside[members] = True
    rows = graph[inside].astype(np.float64)
    volume_in = rows.sum()
    cut = rows[:, ~inside].sum()
    volume_out = graph[~inside].sum(dtype=np.float64)
    if volume_in <= 0 or volume_out <= 0:
        return 2.0
    return float(cut / volume_in + cut / volume_out)


@register_segmenter("ncut")
@dataclass
class MaskedNCutSegmenter(Segmenter):
    """UnScene3D's initial pseudo masks: masked Normalized Cut on superpoint features (§3.1).

    `segment(scene, features)` computes superpoints, averages each feature modality over them,
    builds the thresholded affinity graph and runs `masked_ncut`; segment masks are expanded to
    the scene's points.

    Features: with `features=None` the handcrafted `modalities` are computed from the scene. An
    (N, C) array is one modality named "features"; a mapping name -> (N, C) array gives several
    (e.g. {"dino": lifted_2d, "csc": learned_3d}), whose similarities are averaged with
    `modality_weights` like the paper's 2D + 3D setting. `modalities` may name handcrafted
    modalities and keys of the mapping together.

    Attributes:
        tau_cut: affinity threshold (§7.4, Table 7): the paper uses 0.55 for geometric-only and
            0.65 for combined 2D + 3D learned features; with the handcrafted modalities 0.55 beat
            0.65 and 0.75 on both ScanNet and OSD (docs/methods/unscene3d_ncut.md).
        epsilon: weight of pairs below tau_cut (official code: 1e-5).
        min_foreground: smallest accepted mask in superpoints (§7.4, Table 9: 8; 2 = denser).
        max_instances: most masks per scene (official loop: 20).
        max_iterations: most cuts per scene, accepted or not; None = no limit besides
            `max_instances` and running out of segments.
        max_foreground_fraction: complement a bipartition whose foreground exceeds this fraction
            of the segments in play (Algorithm 1: 1/2).
        separation: foreground component kept, "max" | "avg" | "largest" | "none" (Table 9).
        masking: "remove" (rows and columns deleted, §3.1.4) | "epsilon" (official code).
        solver: "auto" | "dense" | "lanczos" (see `second_smallest_eigenvector`).
        score: mask confidence, "cut" | "eigenvalue" | "activation" | "order" (see `NCutMasks.scores`).
        normalize_similarity: min-max normalise each modality's cosine similarity (official code).
        center_features: subtract each modality's scene mean before the cosine similarity. Not
            in the paper: its learned features are roughly zero-centred, whereas handcrafted ones
            are all positive (colours, histograms) or dominated by one direction (floor normals),
            so that uncentred cosine similarities are close to 1 for almost every pair.
        modalities: modality names; () = the handcrafted `DEFAULT_HANDCRAFTED` when no features
            are given (without "rgb" when the scene has no colours), else every given feature modality.
        modality_weights: one weight per modality in `modalities` order; () = equal weights.
        superpoints: "auto" (the scene's own superpoints, else mesh Felzenszwalb when it has
            faces, else point-cloud Felzenszwalb) | "scene" | "mesh" | "points".
        superpoint_k_thresh: Felzenszwalb scale k for computed superpoints (ScanNet: 0.01).
        superpoint_min_size: smallest computed superpoint, in points (ScanNet: 20).
        knn: neighbours of the point graph of clouds without faces (superpoints and adjacency).
        max_edge_length: longest kNN edge that links two superpoints, metres; None = any.
        fpfh_voxel_size: voxel edge of the FPFH computation, metres; None = the coarser of 1 cm
            and the scan's median point spacing (`auto_fpfh_voxel_size`: 1 cm on OSD, 2.9 cm on
            ScanNet).
        fpfh_radius: FPFH support radius, metres; None = 5 voxel edges.
        learned_features: "pointins:PATH" computes the features of a PointINS checkpoint
            (`labelfree3d pretrain`'s RUN/model.safetensors) on the whole scan and uses them as
            the only modality, in place of the handcrafted ones (the paper's learned-feature
            setting, §3.1); "" (default) = handcrafted. Features passed to `segment` win.
        tabletop_structure: `structure` on tabletop frames (`scan_kind`); "keep" (default) cuts
            the whole frame with the method's own scores. Chosen on the selection split: on OSD,
            AP 27.9 with the table kept against 9.4 with it removed, where the dense feature
            affinity joins look-alike faces of different boxes; rooms keep `structure` ("remove":
            AP25 21.7 against 14.2).
    """

    tau_cut: float = 0.55
    epsilon: float = 1e-5
    min_foreground: int = 8
    max_instances: int = 20
    max_iterations: int | None = None
    max_foreground_fraction: float = 0.5
    separation: str = "max"
    masking: str = "remove"
    solver: str = "auto"
    score: str = "cut"
    normalize_similarity: bool = True
    center_features: bool = True
    modalities: tuple[str, ...] = ()
    modality_weights: tuple[float, ...] = ()
    superpoints: str = "auto"
    superpoint_k_thresh: float = 0.01
    superpoint_min_size: int = 20
    knn: int = 10
    max_edge_length: float | None = None
    fpfh_voxel_size: float | None = None
    fpfh_radius: float | None = None
    learned_features: str = ""
    tabletop_structure: str = "keep"

    score_rule = (
        "score='cut' (default): 1 - NCut(mask, rest) / 2, the exact normalized cut of the mask against the "
        "segments still in play when it was cut (clean, well separated masks rank first); alternatives: "
        "1 - eigenvalue, mean eigenvector activation, iteration order"
    )

    def validate(self) -> None:
        name = self.name
        if self.learned_features and not (self.learned_features.startswith("pointins:") and len(self.learned_features) > 9):
            raise ParameterError(f"{name}.learned_features must be pointins:PATH or empty, got {self.learned_features!r}")
        if self.tabletop_structure not in STRUCTURE_MODES:
            raise ParameterError(f"{name}.tabletop_structure must be one of {', '.join(STRUCTURE_MODES)}, got {self.tabletop_structure!r}")
        check_range(name, "tau_cut", self.tau_cut, 0.0, 1.0)
        check_range(name, "epsilon", self.epsilon, 0.0, 1.0, open_low=True)
        check_range(name, "min_foreground", self.min_foreground, 1, MAX_COUNT)
        check_range(name, "max_instances", self.max_instances, 1, MAX_COUNT)
        if self.max_iterations is not None:
            check_range(name, "max_iterations", self.max_iterations, 1, MAX_COUNT)
        check_range(name, "max_foreground_fraction", self.max_foreground_fraction, 0.0, 1.0, open_low=True)
        for key, options in (
            ("separation", SEPARATIONS),
            ("masking", MASKINGS),
            ("solver", SOLVERS),
            ("score", SCORES),
            ("superpoints", SUPERPOINT_SOURCES),
        ):
            if getattr(self, key) not in options:
                raise ParameterError(f"{name}.{key} must be one of {', '.join(options)}, got {getattr(self, key)!r}")
        if self.modality_weights and len(self.modality_weights) != len(self.modalities):
            raise ParameterError(
                f"{name}.modality_weights has {len(self.modality_weights)} values for {len(self.modalities)} modalities"
            )
        for weight in self.modality_weights:
            check_range(name, "modality_weights", weight, 0.0, 1e6)
        if self.modality_weights and sum(self.modality_weights) <= 0:
            raise ParameterError(f"{name}.modality_weights must not all be 0, got {self.modality_weights}")
        if len(set(self.modalities)) != len(self.modalities):
            raise ParameterError(f"{name}.modalities repeats a name: {self.modalities}")
        check_range(name, "superpoint_k_thresh", self.superpoint_k_thresh, 0.0, 1e6, open_low=True)
        check_range(name, "superpoint_min_size", self.superpoint_min_size, 1, MAX_COUNT)
        check_range(name, "knn", self.knn, 1, 1000)  # an (N x knn) point graph
        if self.max_edge_length is not None:
            check_range(name, "max_edge_length", self.max_edge_length, 0.0, 1000.0, open_low=True)
        if self.fpfh_voxel_size is not None:
            check_range(name, "fpfh_voxel_size", self.fpfh_voxel_size, 0.0, 1.0, open_low=True)
        if self.fpfh_radius is not None:
            check_range(name, "fpfh_radius", self.fpfh_radius, 0.0, 10.0, open_low=True)

    # ------------------------------------------------------------------ pipeline steps
    def scene_superpoints(self, scene: Scene, normals: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Superpoints and point connectivity of a scene.

        Args:
            scene: the scan.
            normals: (N, 3) unit normals for point-cloud superpoints (estimated when None).

        Returns:
            ((N,) int64 superpoint id in [0, S), (E, 2) int64 point edges: mesh edges, or the
            kNN graph the point-cloud superpoints were cut from).
        """
        source = self.superpoints
        if source == "auto":
            source = "scene" if scene.superpoints is not None else ("mesh" if scene.is_mesh else "points")
        if source == "mesh" and not scene.is_mesh:
            raise InputError("superpoints='mesh' needs a mesh and the scene has no faces", scene.source)
        if source == "scene":
            if scene.superpoints is None:
                raise InputError("superpoints='scene' but the scene carries no superpoints", scene.source)
            labels = scene.superpoints
        elif source == "mesh":
            labels = mesh_superpoints(scene.points, scene.faces, self.superpoint_k_thresh, self.superpoint_min_size)
        if source != "points":
            return compact_superpoints(labels)[0], point_graph_edges(scene, self.knn, self.max_edge_length)
        if scene.num_points < 2:
            return np.zeros(scene.num_points, dtype=np.int64), np.zeros((0, 2), dtype=np.int64)
        # point_cloud_superpoints' steps, sharing its kNN graph with the adjacency
        edges, lengths = knn_graph(scene.points, min(self.knn, scene.num_points - 1))
        normals = scene_normals(scene) if normals is None else normals
        weights = point_edge_weights(edges, normals)
        labels = felzenszwalb_segmentation(
            scene.num_points, edges, weights, self.superpoint_k_thresh, self.superpoint_min_size
        )
        if self.max_edge_length is not None:
            edges = edges[lengths <= self.max_edge_length]
        return labels, edges

    def point_features(self, scene: Scene, features: FeatureInput = None) -> dict[str, np.ndarray]:
        """The per-point features of every modality used, in `modalities` order.

        Args:
            scene: the scan.
            features: None, an (N, C) array (modality "features") or a mapping name -> (N, C).

        Returns:
            Mapping modality -> (N, C_m) float array.
        """
        given: dict[str, np.ndarray] = {}
        if isinstance(features, Mapping):
            given = {str(k): v for k, v in features.items()}
        elif features is not None:
            given = {"features": features}
        names = list(self.modalities) or (list(given) if given else list(DEFAULT_HANDCRAFTED))
        if not self.modalities and not given and scene.colors is None:
            names = [m for m in names if m != "rgb"]  # defaults on a colour-less scan (LiDAR, xyz-only files)
        unknown = [m for m in names if m not in given and m not in HANDCRAFTED_MODALITIES]
        if unknown:
            raise ParameterError(
                f"{self.name}: modalities {unknown} are neither given features ({', '.join(given) or 'none'}) "
                f"nor handcrafted ({', '.join(HANDCRAFTED_MODALITIES)})"
            )
        for key in names:
            if key in given:
                array = np.asarray(given[key])
                if array.ndim != 2 or array.shape[0] != scene.num_points:
                    raise InputError(
                        f"features {key!r} have shape {array.shape}, expected ({scene.num_points}, C)", scene.source
                    )
                if not np.all(np.isfinite(array)):
                    raise InputError(f"features {key!r} contain NaN or infinite values", scene.source)
        computed = handcrafted_features(
            scene,
            [m for m in names if m not in given],
            fpfh_voxel_size=self.fpfh_voxel_size,
            fpfh_radius=self.fpfh_radius,
        )
        return {m: (np.asarray(given[m]) if m in given else computed[m]) for m in names}

    def segment_masks(
        self, superpoints: np.ndarray, features: Mapping[str, np.ndarray], edges: np.ndarray
    ) -> NCutMasks:
        """The masked NCut on pooled features.

        Args:
            superpoints: (N,) int64 superpoint id per point in [0, S).
            features: modality -> (N, C) per-point features.
            edges: (E, 2) point edges defining which superpoints touch.

        Returns:
            `NCutMasks` over the S superpoints.
        """
        num = int(superpoints.max()) + 1 if superpoints.size else 0
        if num < 2:
            return NCutMasks()
        if num > MAX_SEGMENTS:
            raise ParameterError(
                f"{self.name}: {num} superpoints, more than the {MAX_SEGMENTS} whose dense affinity fits in memory; "
                f"raise superpoint_min_size (now {self.superpoint_min_size}) or superpoint_k_thresh "
                f"(now {self.superpoint_k_thresh})"
            )
        pooled = {}
        for modality, values in features.items():
            values = np.asarray(values, dtype=np.float32)
            if self.center_features:
                values = values - values.mean(axis=0, dtype=np.float64).astype(np.float32)
            pooled[modality] = superpoint_features(values, superpoints, num)
        affinity = modality_affinity(pooled, self.modality_weights or None, self.normalize_similarity)
        return masked_ncut(
            affinity,
            superpoint_adjacency(superpoints, edges, num),
            tau=self.tau_cut,
            epsilon=self.epsilon,
            min_foreground=self.min_foreground,
            max_instances=self.max_instances,
            max_iterations=self.max_iterations,
            max_foreground_fraction=self.max_foreground_fraction,
            separation=self.separation,
            masking=self.masking,
            solver=self.solver,
        )

    def segment(self, scene: Scene, features: FeatureInput = None) -> InstanceMasks:
        """`Segmenter.segment`, with `tabletop_structure` in place of `structure` on tabletop frames."""
        if features is None and self.learned_features:
            from labelfree3d.features.pointins import pointins_outputs

            features = {"pointins": pointins_outputs(scene, self.learned_features.split(":", 1)[1]).features}
        if self.tabletop_structure != self.structure and scan_kind(scene) == "tabletop_frame":
            scored = self.structure_scores and self.tabletop_structure != "keep"
            mode = dataclasses.replace(self, structure=self.tabletop_structure, structure_scores=scored)
            return mode.segment(scene, features)
        return super().segment(scene, features)

    def segment_points(self, scene: Scene, features: FeatureInput = None) -> InstanceMasks:
        """Pseudo masks over the scene's points, scored by `score`.

        Args:
            scene: the scan (mesh or point cloud; colours needed for the "rgb" modality).
            features: optional learned / lifted features, see the class docstring.

        Returns:
            Masks over `scene.num_points` points, in acceptance order; each is a union of whole
            superpoints, and masks never overlap.
        """
        if scene.num_points < 4:  # too few points for normals, let alone two superpoints to cut
            return InstanceMasks.empty(scene.num_points)
        point_features = self.point_features(scene, features)
        normals = point_features.get("normal")  # reused by point-cloud superpoints when computed
        if normals is not None and np.shape(normals) != (scene.num_points, 3):
            normals = None
        superpoints, edges = self.scene_superpoints(scene, normals)
        found = self.segment_masks(superpoints, point_features, edges)
        num = int(superpoints.max()) + 1 if superpoints.size else 0
        if not found.segments:
            return InstanceMasks.empty(scene.num_points)
        on_segments = InstanceMasks.from_index_lists(found.segments, found.scores(self.score), num)
        return on_segments.lift(superpoints)
