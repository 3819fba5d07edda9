"""Greedy max-min farthest-point sampling (FPS) in descriptor space.

Each candidate structure is one row of an ``(N, d)`` array of descriptors (for example the per-structure mean of the
per-atom NEP descriptors, see :mod:`aiida_sseff.analysis.descriptors`). FPS repeatedly picks the candidate whose
distance to its nearest already-selected point (or seed point) is largest, the algorithm of PyNEP's
``FarthestPointSample`` and GPUMDkit's selection scripts.

Conventions (all distances are Euclidean, in the units of the descriptors):

* **Start.** With a non-empty ``seed_descriptors`` (an existing training set), the first pick is the candidate
  farthest from the seed set. Without one, the first pick is the candidate farthest from the mean of all candidates
  (an extreme point that does not depend on the order of the rows), unless ``start_index`` names the first pick
  (``start_index=0`` reproduces PyNEP/GPUMDkit, which start from row 0).
* **Ties** always go to the lowest index, so the result is deterministic.
* **Stop** after ``n_select`` picks, or -- with ``min_distance`` -- as soon as the largest remaining min-distance is
  below ``min_distance`` (a candidate at exactly ``min_distance`` is still selected). A first pick without a seed
  set is always made. Exactly one of the two criteria must be given.
* Selected candidates are never selected twice, even when the remaining ones are duplicates of selected ones.

Cost: O(N (k + M) d) time for k picks and a seed set of M points, and O(N) extra memory (a few length-N arrays,
plus the k + M reference points and fixed-size tiles); no N x N, N x k or N x M matrix is ever formed. The
min-distances are updated incrementally with the distances to the newly picked point, computed in float64 by the
direct-difference formula ``sqrt(sum((x_i - x_new)**2))`` (scipy's ``cdist``, on row blocks), which does not suffer
the cancellation of ``|x|^2 + |y|^2 - 2 x.y`` for nearby points. Rows whose min-distance provably cannot change are
skipped using the triangle inequality: if ``d(c_i, new) >= 2 m_i``, where ``c_i`` is the selected or seed point
nearest to row ``i`` and ``m_i`` its distance, then ``d(i, new) >= m_i``. This is exact (a safety margin covers
rounding) and pays off on clustered descriptor sets; on isotropic random data the full update is used.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.spatial.distance import cdist

__all__ = ('FPSResult', 'farthest_point_sampling', 'reduction_series')

# Rows per block when distances are computed: bounds the temporary arrays to _BLOCK x d, independent of N.
_BLOCK = 8192
# Relative safety margin of the triangle-inequality skip test; float64 direct-difference distances are accurate to
# ~d * 1e-16 relative, far inside this margin, so skipping never changes a min-distance.
_SKIP_MARGIN = 1e-9
# When more than this fraction of the rows needs an update, update all rows (a gather would cost more).
_DENSE_FRACTION = 0.3
_MAX_CHECK_INTERVAL = 32
# Candidate-seed pairs per cdist tile when the distances to an existing set are computed (8 MB of float64).
_TILE = 1 << 20
_SEED_BLOCK = 4096


class FPSResult(NamedTuple):
    """Result of :func:`farthest_point_sampling`.

    ``indices``: selected row indices in the order they were picked (int64).
    ``min_distances``: for each pick, its distance to the nearest previously selected or seed point at the moment it
    was picked (descriptor units); ``inf`` for a first pick made without a seed set. Non-increasing.
    """

    indices: np.ndarray
    min_distances: np.ndarray


def _as_2d(array, name: str) -> np.ndarray:
    """Return ``array`` as a 2-D floating-point array (no copy where possible); raise ValueError otherwise."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f'{name} must be a 2-D array (n_points, n_features); got shape {array.shape}')
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ValueError(f'{name} must hold real numbers; got dtype {array.dtype}')
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def _require_finite(array: np.ndarray, name: str) -> None:
    """Raise ValueError naming the first row of ``array`` holding NaN or inf (checked block-wise, O(block) memory)."""
    for start in range(0, array.shape[0], _BLOCK):
        block = array[start:start + _BLOCK]
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            row = start + int(np.argmin(finite))
            kind = 'NaN' if np.isnan(block[row - start]).any() else 'inf'
            raise ValueError(f'{name} row {row} contains {kind}; descriptors must be finite')


def _distances(points: np.ndarray, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances (float64) from ``x`` to ``points[rows]`` (all rows if None), block by block.

    scipy's cdist evaluates ``sqrt(sum((u - v)**2))`` in float64, the numerically careful direct formula; blocking
    keeps the float64 conversion of float32 input and the fancy-index gather at O(block x d) memory.
    """
    xx = np.asarray(x, dtype=np.float64).reshape(1, -1)
    if rows is None and points.dtype == np.float64 and points.flags.c_contiguous:
        # cdist(x, points) rather than cdist(points, x): scipy's loop is several times faster in this orientation
        return cdist(xx, points)[0]
    n = points.shape[0] if rows is None else rows.shape[0]
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        block = points[start:stop] if rows is None else points[rows[start:stop]]
        out[start:stop] = cdist(xx, block.astype(np.float64, copy=False))[0]
    return out


class _MinDistances:
    """The min-distance of every candidate to the current reference set (seed points + picks), updated in place.

    ``dist[i]`` is the distance of row i to its nearest reference point ``owner[i]`` (an index into the reference
    points), or -1 once row i is itself selected (so it is never picked again and never updated). Memory: two
    length-N arrays plus the reference points themselves (k x d).
    """

    def __init__(self, points: np.ndarray):
        self.points = points
        n = points.shape[0]
        self.dist = np.full(n, np.inf)
        self.owner = np.zeros(n, dtype=np.int64)
        self._centers = np.empty((16, points.shape[1]), dtype=np.float64)  # grows by doubling
        self.n_centers = 0
        # The skip test costs O(N) per new point; where it keeps failing (isotropic, high-dimensional data), it is
        # tried again only after an interval that doubles each time (up to _MAX_CHECK_INTERVAL new points).
        self._check_interval = 1
        self._until_check = 0

    def _append_center(self, x: np.ndarray) -> None:
        if self.n_centers == self._centers.shape[0]:
            self._centers = np.concatenate([self._centers, np.empty_like(self._centers)])
        self._centers[self.n_centers] = x
        self.n_centers += 1

    def add_center(self, x: np.ndarray) -> None:
        """Make ``x`` (a float64 vector) a reference point and lower the min-distances accordingly."""
        x = np.asarray(x, dtype=np.float64)
        c = self.n_centers
        rows = None
        self._until_check -= 1
        if c > 0 and self._until_check <= 0:
            # d(i, x) >= d(owner_i, x) - dist_i, so row i can only improve if d(owner_i, x) / 2 < dist_i.
            half_center_dist = cdist(x.reshape(1, -1), self._centers[:c])[0] * (0.5 / (1.0 + _SKIP_MARGIN))
            candidate = half_center_dist[self.owner] < self.dist
            n_candidate = int(np.count_nonzero(candidate))
            if n_candidate <= _DENSE_FRACTION * self.dist.size:
                rows = np.flatnonzero(candidate)
                self._check_interval = 1
            else:
                self._check_interval = min(2 * self._check_interval, _MAX_CHECK_INTERVAL)
            self._until_check = self._check_interval
        new = _distances(self.points, x, rows)
        if rows is None:
            changed = np.flatnonzero(new < self.dist)
            self.dist[changed] = new[changed]
        else:
            better = np.flatnonzero(new < self.dist[rows])
            changed = rows[better]
            self.dist[changed] = new[better]
        self.owner[changed] = c
        self._append_center(x)

    def add_seed_points(self, seed: np.ndarray) -> None:
        """Make all rows of ``seed`` (M x d) reference points, before any pick.

        Distances come from cdist on tiles of at most _TILE candidate-seed pairs (bounded memory, never N x M), the
        running minimum and its owner kept per candidate.
        """
        first = self.n_centers
        n_seed = seed.shape[0]
        seed_block = min(n_seed, _SEED_BLOCK)
        row_block = max(1, _TILE // seed_block)
        for s0 in range(0, n_seed, seed_block):
            seeds = seed[s0:s0 + seed_block].astype(np.float64, copy=False)
            for r0 in range(0, self.dist.size, row_block):
                rows = self.points[r0:r0 + row_block].astype(np.float64, copy=False)
                tile = cdist(rows, seeds)
                nearest = np.argmin(tile, axis=1)
                best = tile[np.arange(tile.shape[0]), nearest]
                better = np.flatnonzero(best < self.dist[r0:r0 + row_block])
                self.dist[r0 + better] = best[better]
                self.owner[r0 + better] = first + s0 + nearest[better]
            for row in seeds:
                self._append_center(row)

    def select(self, index: int) -> None:
        """Add row ``index`` to the reference set and mark it as selected."""
        self.add_center(self.points[index])
        self.dist[index] = -1.0


def farthest_point_sampling(descriptors, n_select: int | None = None, min_distance: float | None = None,
                            seed_descriptors=None, start_index: int | None = None) -> FPSResult:
    """Select rows of ``descriptors`` by greedy max-min farthest-point sampling.

    :param descriptors: candidates, array ``(N, d)``, one descriptor vector per structure (any real dtype; distances
        are computed in float64).
    :param n_select: number of candidates to pick (1 <= n_select <= N); new picks only, the seed set not counted.
    :param min_distance: alternatively, keep picking while the farthest remaining candidate is at least this far
        (descriptor units) from every selected and seed point.
    :param seed_descriptors: optional existing set ``(M, d)`` (e.g. the current training set); the first pick is the
        candidate farthest from it. An empty seed set (M = 0) counts as none.
    :param start_index: first pick when there is no seed set; default: the candidate farthest from the mean of all
        candidates. ``start_index=0`` reproduces PyNEP/GPUMDkit.
    :returns: :class:`FPSResult` ``(indices, min_distances)``, the picks in order and each pick's distance to the
        nearest earlier pick or seed point (``inf`` for a first pick without a seed set).
    :raises ValueError: empty candidate set, wrong shapes, NaN/inf in the descriptors, ``n_select`` out of range,
        both or neither stop criterion, a negative ``min_distance``, or ``start_index`` out of range or given
        together with a seed set.
    """
    points = _as_2d(descriptors, 'descriptors')
    n_points, n_features = points.shape
    if n_points == 0:
        raise ValueError('descriptors is empty: there are no candidates to select from')
    if (n_select is None) == (min_distance is None):
        raise ValueError('give exactly one stop criterion: n_select or min_distance '
                         f'(got n_select={n_select!r}, min_distance={min_distance!r})')
    if n_select is not None:
        if isinstance(n_select, bool) or not isinstance(n_select, int | np.integer):
            raise ValueError(f'n_select must be an integer; got {n_select!r}')
        if not 1 <= n_select <= n_points:
            raise ValueError(f'n_select must be between 1 and the number of candidates ({n_points}); got {n_select}')
    if min_distance is not None and not (np.isfinite(min_distance) and min_distance >= 0):
        raise ValueError(f'min_distance must be a finite number >= 0; got {min_distance!r}')
    _require_finite(points, 'descriptors')

    seed = None
    if seed_descriptors is not None:
        seed = _as_2d(seed_descriptors, 'seed_descriptors')
        if seed.shape[0] == 0:
            seed = None
        elif seed.shape[1] != n_features:
            raise ValueError(f'seed_descriptors has {seed.shape[1]} features per row; the descriptors have '
                             f'{n_features}')
        else:
            _require_finite(seed, 'seed_descriptors')
    if start_index is not None:
        if seed is not None:
            raise ValueError('start_index cannot be combined with a non-empty seed_descriptors: the first pick is '
                             'the candidate farthest from the seed set')
        if isinstance(start_index, bool) or not isinstance(start_index, int | np.integer):
            raise ValueError(f'start_index must be an integer; got {start_index!r}')
        if not 0 <= start_index < n_points:
            raise ValueError(f'start_index must be in [0, {n_points}); got {start_index}')

    state = _MinDistances(points)
    picks: list[int] = []
    pick_distances: list[float] = []
    if seed is None:
        if start_index is None:
            mean = points.mean(axis=0, dtype=np.float64)
            start_index = int(np.argmax(_distances(points, mean)))
        picks.append(int(start_index))
        pick_distances.append(np.inf)
        state.select(int(start_index))
    else:
        state.add_seed_points(seed)

    n_target = n_points if n_select is None else n_select
    while len(picks) < n_target:
        index = int(np.argmax(state.dist))  # first maximum: ties go to the lowest index
        distance = float(state.dist[index])
        if distance < 0:  # every candidate is selected already
            break
        if min_distance is not None and distance < min_distance:
            break
        picks.append(index)
        pick_distances.append(distance)
        state.select(index)
    return FPSResult(np.asarray(picks, dtype=np.int64), np.asarray(pick_distances, dtype=np.float64))


def reduction_series(descriptors, n_levels: int = 7, seed_descriptors=None,
                     start_index: int | None = None) -> list[np.ndarray]:
    """Nested FPS subsets of sizes ``N // 2**n`` for ``n = 1 .. n_levels`` (the 1/2^n dataset-size series).

    One FPS run picks ``N // 2`` candidates; level ``n`` is the first ``N // 2**n`` picks of that order. Because FPS
    is greedy, this prefix is exactly what an FPS run stopped at ``N // 2**n`` would pick, and every subset is the
    prefix of (hence contained in) its parent: the series is nested, so a smaller training set is always a subset of
    the larger ones. Sizes are rounded down.

    :param descriptors: candidates, array ``(N, d)``.
    :param n_levels: number of halvings (>= 1); requires ``N // 2**n_levels >= 1``.
    :param seed_descriptors: optional existing set, passed to :func:`farthest_point_sampling`.
    :param start_index: optional first pick, passed to :func:`farthest_point_sampling`.
    :returns: list of ``n_levels`` int64 index arrays, largest first, each in FPS order.
    :raises ValueError: when ``n_levels`` < 1 or N is too small for ``n_levels`` halvings, and for every error of
        :func:`farthest_point_sampling`.
    """
    n_points = _as_2d(descriptors, 'descriptors').shape[0]
    if isinstance(n_levels, bool) or not isinstance(n_levels, int | np.integer) or n_levels < 1:
        raise ValueError(f'n_levels must be an integer >= 1; got {n_levels!r}')
    if n_points // 2**n_levels < 1:
        raise ValueError(f'{n_points} candidates cannot be halved {n_levels} times: N / 2^{n_levels} = '
                         f'{n_points / 2**n_levels:g} < 1 (need N >= {2**n_levels})')
    order = farthest_point_sampling(descriptors, n_select=n_points // 2, seed_descriptors=seed_descriptors,
                                    start_index=start_index).indices
    return [order[:n_points // 2**level].copy() for level in range(1, n_levels + 1)]
