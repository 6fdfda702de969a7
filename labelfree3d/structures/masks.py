"""`InstanceMasks`: the one result type every segmentation method returns.

K possibly overlapping binary masks over N points, each with a confidence score, stored in
compressed sparse row form (for each mask, the sorted indices of its points) so that 1,000 masks
over 2 M points cost memory proportional to the covered points, not K x N.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from labelfree3d.errors import InputError, ParameterError

__all__ = ["InstanceMasks"]


class InstanceMasks:
    """K binary masks over N points with one confidence per mask.

    Args:
        indptr: (K + 1,) int64 offsets into `indices`; mask k owns indices[indptr[k]:indptr[k+1]].
        indices: (nnz,) point indices in [0, N), sorted and unique within each mask.
        scores: (K,) float64 confidence per mask (higher is more confident).
        num_points: N, the number of points the masks are defined over.
        validate: check the invariants (cheap, O(nnz)); internal constructors skip it.
    """

    __slots__ = ("indptr", "indices", "scores", "num_points")

    def __init__(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        scores: np.ndarray,
        num_points: int,
        *,
        validate: bool = True,
    ):
        self.indptr = np.asarray(indptr, dtype=np.int64)
        index_dtype = np.int32 if num_points < np.iinfo(np.int32).max else np.int64
        self.indices = np.asarray(indices, dtype=index_dtype)
        self.scores = np.asarray(scores, dtype=np.float64)
        self.num_points = int(num_points)
        if validate:
            self._validate()

    def _validate(self) -> None:
        k = self.scores.shape[0]
        if self.num_points < 0:
            raise InputError(f"num_points must be >= 0, got {self.num_points}")
        if self.scores.ndim != 1:
            raise InputError(f"scores must be 1-D, got shape {self.scores.shape}")
        if self.indptr.shape != (k + 1,) or self.indptr[0] != 0 or self.indptr[-1] != self.indices.shape[0]:
            raise InputError(
                f"indptr of shape {self.indptr.shape} does not describe {k} masks over {self.indices.shape[0]} indices"
            )
        if np.any(np.diff(self.indptr) < 0):
            raise InputError("indptr must be non-decreasing")
        if not np.all(np.isfinite(self.scores)):
            raise InputError("mask scores contain NaN or infinite values")
        if self.indices.size:
            if self.indices.min() < 0 or self.indices.max() >= self.num_points:
                raise InputError(f"mask point indices fall outside [0, {self.num_points})")
            # within each mask indices must increase strictly; across mask borders anything goes
            steps = np.diff(self.indices.astype(np.int64))
            border = np.zeros(steps.shape[0], dtype=bool)
            starts = self.indptr[1:-1]
            starts = starts[(starts > 0) & (starts < self.indices.shape[0])]
            border[starts - 1] = True
            if np.any((steps <= 0) & ~border):
                raise InputError("mask point indices must be sorted and unique within each mask")

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls, num_points: int) -> InstanceMasks:
        """No masks over `num_points` points."""
        return cls(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0), num_points)

    @classmethod
    def from_labels(
        cls,
        labels: np.ndarray,
        scores: np.ndarray | None = None,
        ignore_label: int = -1,
    ) -> InstanceMasks:
        """One mask per distinct label of a per-point label array.

        Args:
            labels: (N,) integer label per point; points equal to `ignore_label` are in no mask.
            scores: (K,) score per mask in ascending label order; defaults to 1.0 each.
            ignore_label: label of background / unassigned points.

        Returns:
            Masks ordered by ascending label value.
        """
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise InputError(f"labels must be 1-D, got shape {labels.shape}")
        n = labels.shape[0]
        keep = np.flatnonzero(labels != ignore_label)
        unique, inverse = np.unique(labels[keep], return_inverse=True)
        order = np.argsort(inverse, kind="stable")  # stable: point indices stay sorted per mask
        indices = keep[order]
        counts = np.bincount(inverse, minlength=unique.shape[0])
        indptr = np.concatenate([[0], np.cumsum(counts)])
        if scores is None:
            scores = np.ones(unique.shape[0])
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != unique.shape:
            raise InputError(f"{scores.shape[0]} scores given for {unique.shape[0]} labels")
        return cls(indptr, indices, scores, n, validate=False)

    @classmethod
    def from_dense(cls, dense: np.ndarray, scores: np.ndarray | None = None) -> InstanceMasks:
        """From a (K, N) boolean matrix; `scores` (K,) default to 1.0."""
        dense = np.asarray(dense, dtype=bool)
        if dense.ndim != 2:
            raise InputError(f"dense masks must be 2-D (K, N), got shape {dense.shape}")
        return cls.from_sparse(sp.csr_matrix(dense), scores)

    @classmethod
    def from_sparse(cls, matrix: sp.spmatrix | sp.sparray, scores: np.ndarray | None = None) -> InstanceMasks:
        """From a (K, N) scipy sparse matrix; every stored non-zero entry marks membership."""
        csr = sp.csr_matrix(matrix)
        csr.eliminate_zeros()
        csr.sum_duplicates()
        csr.sort_indices()
        k = csr.shape[0]
        scores = np.ones(k) if scores is None else np.asarray(scores, dtype=np.float64)
        if scores.shape != (k,):
            raise InputError(f"{scores.shape} scores given for {k} masks")
        return cls(csr.indptr, csr.indices, scores, csr.shape[1])

    @classmethod
    def from_index_lists(
        cls, index_lists: Sequence[np.ndarray], scores: np.ndarray | None, num_points: int
    ) -> InstanceMasks:
        """From one array of point indices per mask (any order, duplicates allowed)."""
        cleaned = [np.unique(np.asarray(ix, dtype=np.int64)) for ix in index_lists]
        lengths = np.array([c.shape[0] for c in cleaned], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        indices = np.concatenate(cleaned) if cleaned else np.zeros(0, np.int64)
        scores = np.ones(len(cleaned)) if scores is None else scores
        return cls(indptr, indices, scores, num_points)

    @classmethod
    def concatenate(cls, parts: Iterable[InstanceMasks]) -> InstanceMasks:
        """All masks of several results over the same N points, in order."""
        parts = list(parts)
        if not parts:
            raise InputError("nothing to concatenate")
        n = parts[0].num_points
        if any(p.num_points != n for p in parts):
            raise InputError("cannot concatenate masks over different point counts")
        offsets = np.cumsum([0] + [p.indices.shape[0] for p in parts[:-1]])
        indptr = np.concatenate([[0]] + [p.indptr[1:] + off for p, off in zip(parts, offsets)])
        return cls(
            indptr,
            np.concatenate([p.indices for p in parts]),
            np.concatenate([p.scores for p in parts]),
            n,
            validate=False,
        )

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __getitem__(self, k: int) -> np.ndarray:
        """Sorted point indices of mask k."""
        if not -len(self) <= k < len(self):
            raise IndexError(f"mask {k} out of range for {len(self)} masks")
        k %= len(self)
        return self.indices[self.indptr[k] : self.indptr[k + 1]]

    def __repr__(self) -> str:
        return f"InstanceMasks({len(self)} masks over {self.num_points} points)"

    @property
    def sizes(self) -> np.ndarray:
        """(K,) int64 number of points per mask."""
        return np.diff(self.indptr)

    @property
    def mask_ids(self) -> np.ndarray:
        """(nnz,) mask index of every entry of `indices` (the COO row array)."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.sizes)

    def to_sparse(self) -> sp.csr_matrix:
        """(K, N) scipy CSR matrix with int8 ones where a point belongs to a mask."""
        data = np.ones(self.indices.shape[0], dtype=np.int8)
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(len(self), self.num_points))

    def to_dense(self) -> np.ndarray:
        """(K, N) bool matrix. Only for small K x N: prefer `to_sparse`."""
        dense = np.zeros((len(self), self.num_points), dtype=bool)
        dense[self.mask_ids, self.indices] = True
        return dense

    def coverage(self) -> np.ndarray:
        """(N,) int32 number of masks covering each point."""
        return np.bincount(self.indices, minlength=self.num_points).astype(np.int32)

    @property
    def is_overlapping(self) -> bool:
        """True when some point belongs to more than one mask."""
        return bool(self.indices.size and self.coverage().max() > 1)

    def to_labels(self, background: int = -1) -> np.ndarray:
        """(N,) int64 mask index per point; overlaps go to the highest-scoring mask.

        Ties in score go to the lower mask index. Points in no mask get `background`.
        """
        labels = np.full(self.num_points, background, dtype=np.int64)
        # paint from least to most confident so the most confident mask is written last
        order = np.lexsort((-np.arange(len(self)), self.scores))
        for k in order:
            labels[self[k]] = k
        return labels

    # ------------------------------------------------------------------ transforms
    def select(self, keep: np.ndarray | Sequence[int]) -> InstanceMasks:
        """The masks picked by `keep`: (K,) bool or an index array (reorders allowed)."""
        keep = np.asarray(keep)
        order = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64)
        if keep.dtype == bool and keep.shape != (len(self),):
            raise InputError(f"boolean selector has shape {keep.shape}, expected ({len(self)},)")
        sizes = self.sizes[order]
        indptr = np.concatenate([[0], np.cumsum(sizes)])
        if order.size:
            starts = self.indptr[order]
            gather = np.repeat(starts - indptr[:-1], sizes) + np.arange(indptr[-1])
            indices = self.indices[gather]
        else:
            indices = self.indices[:0]
        return InstanceMasks(indptr, indices, self.scores[order], self.num_points, validate=False)

    def filter(self, min_points: int = 1, min_score: float = -np.inf, max_points: int | None = None) -> InstanceMasks:
        """Masks with at least `min_points` points (and at most `max_points`) and score >= `min_score`."""
        if min_points < 0:
            raise ParameterError(f"min_points must be >= 0, got {min_points}")
        keep = (self.sizes >= min_points) & (self.scores >= min_score)
        if max_points is not None:
            keep &= self.sizes <= max_points
        return self.select(keep)

    def sorted_by_score(self) -> InstanceMasks:
        """Masks in descending score order (stable for ties)."""
        return self.select(np.argsort(-self.scores, kind="stable"))

    def with_scores(self, scores: np.ndarray) -> InstanceMasks:
        """Same masks with new (K,) scores."""
        return InstanceMasks(self.indptr, self.indices, scores, self.num_points)

    def lift(self, inverse: np.ndarray) -> InstanceMasks:
        """Map masks over M coarse points to N fine points.

        Args:
            inverse: (N,) int index of the coarse point each fine point belongs to (e.g. the
                voxel of each original point after voxel down-sampling), values in [0, M).

        Returns:
            Masks over N points: a fine point is in mask k iff its coarse point is.
        """
        inverse = np.asarray(inverse, dtype=np.int64)
        if inverse.ndim != 1 or (inverse.size and (inverse.min() < 0 or inverse.max() >= self.num_points)):
            raise InputError(f"inverse map must be 1-D with values in [0, {self.num_points})")
        # fine-by-coarse selector P (N, M); masks_fine = masks @ P^T
        selector = sp.csr_matrix(
            (np.ones(inverse.shape[0], dtype=np.int8), (np.arange(inverse.shape[0]), inverse)),
            shape=(inverse.shape[0], self.num_points),
        )
        fine = (self.to_sparse() @ selector.T).tocsr()
        fine.sort_indices()
        return InstanceMasks(fine.indptr, fine.indices, self.scores, inverse.shape[0], validate=False)

    def restrict(self, point_indices: np.ndarray) -> InstanceMasks:
        """Masks over the subset `point_indices` ((M,) unique ints or (N,) bool) of the points.

        Returns masks over M points (position i stands for point point_indices[i]); masks that
        lose all their points are kept, empty, so that mask k still means the same object.
        """
        point_indices = np.asarray(point_indices)
        if point_indices.dtype == bool:
            point_indices = np.flatnonzero(point_indices)
        new_position = np.full(self.num_points, -1, dtype=np.int64)
        new_position[point_indices] = np.arange(point_indices.shape[0])
        mapped = new_position[self.indices]
        kept = mapped >= 0
        rows = self.mask_ids[kept]
        counts = np.bincount(rows, minlength=len(self))
        order = np.lexsort((mapped[kept], rows))
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return InstanceMasks(indptr, mapped[kept][order], self.scores, point_indices.shape[0], validate=False)

    def expand(self, point_indices: np.ndarray, num_points: int) -> InstanceMasks:
        """Masks over a subset of points, placed back among all `num_points` points (inverse of `restrict`).

        Args:
            point_indices: (M,) unique int indices in [0, num_points): position i of these masks
                stands for point point_indices[i].
            num_points: size N of the full point set.

        Returns:
            Masks over N points with the same scores; points outside the subset are in no mask.
        """
        point_indices = np.asarray(point_indices, dtype=np.int64)
        if point_indices.shape != (self.num_points,):
            raise InputError(f"expand needs {self.num_points} point indices, got shape {point_indices.shape}")
        if point_indices.size and (point_indices.min() < 0 or point_indices.max() >= num_points):
            raise InputError(f"point indices must lie in [0, {num_points})")
        indices = point_indices[self.indices]
        rows = self.mask_ids
        order = np.lexsort((indices, rows))  # subsets need not be sorted: keep each mask's indices ascending
        return InstanceMasks(self.indptr.copy(), indices[order], self.scores, num_points, validate=False)

    def intersection_counts(self, labels: np.ndarray, num_labels: int) -> sp.csr_matrix:
        """(K, num_labels) sparse count of each mask's points carrying each label.

        Args:
            labels: (N,) int label per point in [0, num_labels); negative labels are skipped.

        Returns:
            CSR matrix of int64 counts with sorted column indices and no explicit zeros.
        """
        labels = np.asarray(labels)
        if labels.shape != (self.num_points,):
            raise InputError(f"labels have shape {labels.shape}, expected ({self.num_points},)")
        k = len(self)
        point_labels = labels[self.indices].astype(np.int64, copy=False)
        valid = point_labels >= 0
        rows = self.mask_ids
        if not np.all(valid):
            rows, point_labels = rows[valid], point_labels[valid]
        if point_labels.size and point_labels.max() >= num_labels:
            raise InputError(f"labels reach {int(point_labels.max())}, expected < {num_labels}")
        # one flat key per (mask, label) cell; counting keys replaces scipy's COO->CSR
        # conversion, whose duplicate summing sorts every row and is ~7x slower here
        keys = rows * num_labels + point_labels
        cells = k * num_labels
        if cells <= max(4 * keys.shape[0], 1 << 22):
            counts = np.bincount(keys, minlength=cells)
            occupied = np.flatnonzero(counts)
            values = counts[occupied]
        else:  # a dense (K, L) table would dwarf the data: sort the keys instead
            occupied, values = np.unique(keys, return_counts=True)
        row_of = occupied // max(num_labels, 1)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(row_of, minlength=k))])
        return sp.csr_matrix(
            (values.astype(np.int64), (occupied - row_of * num_labels).astype(np.int64), indptr),
            shape=(k, num_labels),
        )
