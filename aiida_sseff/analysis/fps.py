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

Cost. The first picks update the min-distances of all rows (one contiguous cdist pass, as PyNEP does). Once the
triangle inequality would leave few rows to measure, a new point x only measures the rows whose min-distance can
drop: row i, in the Voronoi cell of its nearest reference point c (seed point or pick), is skipped when
d(c, x) >= 2 m_i (then d(i, x) >= d(c, x) - m_i >= m_i). That test is one gather of the k + M half-distances
``d(c, x) / 2`` by each row's owner and one comparison, a few vectorised passes over N floats instead of the N x d
pass of the plain update (see :class:`_MinDistances`). The distances that are computed are float64 direct
differences ``sqrt(sum((x_i - x_new)**2))`` (scipy's ``cdist``, which does not suffer the cancellation of
``|x|^2 + |y|^2 - 2 x.y`` for nearby points), pair by pair the same values a full update computes; the bound has a
safety margin far above rounding, so the picks and their order are those of the plain O(N k d) loop (PyNEP's), ties
included. The worst case (no pruning: isotropic random data) is still O(N (k + M) d).
Memory: O(N) (min-distances, owners, two N-sized buffers) plus one C-ordered float64 copy of the descriptors where
they are given otherwise, and the k + M reference points; no N x N, N x k or N x M matrix.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.spatial.distance import cdist

__all__ = ('FPSResult', 'farthest_point_sampling', 'reduction_series')

# Rows per block of the NaN/inf check and of gathered rows: bounds temporary arrays to _BLOCK x d, independent of N.
_BLOCK = 8192
# Relative safety margin of the triangle-inequality skip test; float64 direct-difference distances are accurate to
# ~d * 1e-16 relative, far inside this margin, so skipping never changes a min-distance.
_SKIP_MARGIN = 1e-9
# Candidate-seed pairs per cdist tile when the distances to an existing set are computed (8 MB of float64).
_TILE = 1 << 20
_SEED_BLOCK = 4096
# Pruned updates start once the triangle inequality would leave fewer than _SPARSE_FRACTION of the rows to measure,
# and stop (dense updates: one contiguous pass over all rows per point) when it leaves more than _DENSE_FRACTION.
_SPARSE_FRACTION = 0.3
_DENSE_FRACTION = 0.5
_MAX_CHECK_INTERVAL = 32



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
    """Euclidean distances (float64) from ``x`` to ``points[rows]`` (all rows if None); ``points`` is a C-ordered
    float64 array.

    scipy's cdist evaluates ``sqrt(sum((u - v)**2))`` in float64, the numerically careful direct formula, pair by pair:
    the distance of a pair is the same bits whichever rows are computed with it, so a subset of rows gives exactly the
    values the full update would. cdist(x, points) rather than cdist(points, x): scipy's loop is several times faster
    in this orientation; ``np.take`` gathers rows ~4x faster than fancy indexing.
    """
    xx = x.reshape(1, -1)
    if rows is None:
        return cdist(xx, points)[0]
    if rows.size <= _BLOCK:
        return cdist(xx, np.take(points, rows, axis=0))[0]
    # blocks: the gathered rows stay O(block x d) however many rows there are
    return np.concatenate([cdist(xx, np.take(points, rows[start:start + _BLOCK], axis=0))[0]
                           for start in range(0, rows.size, _BLOCK)])


class _MinDistances:
    """The min-distance of every candidate to the reference set (seed points + picks), updated as points are added.

    ``dist[i]`` is the min-distance of row i (-1 once it is selected, so it is never picked or updated again) and
    ``owner[i]`` its nearest reference point: row i lies in the Voronoi cell of ``owner[i]``. The pick is
    ``argmax(dist)`` (first maximum: ties go to the lowest index). Two ways to lower the min-distances when a point
    ``x`` is added, both giving the values and picks of the plain loop:

    * **dense** (the first picks, and data where pruning does not pay): the distances of all rows to ``x`` in one
      contiguous pass;
    * **pruned**: row i can come closer only if ``d(c_owner(i), x) < 2 m_i`` (triangle inequality: ``d(i, x) >=
      d(c_owner(i), x) - m_i``). The k + M distances from ``x`` to the reference points give every row its threshold
      in one gather (``half[owner]``), and only the rows above it are measured.

    The pruned update is a fixed number of vectorised passes over N floats (a gather, a comparison, an argmax: ~0.1 ms
    at 57,600 rows against the d-times larger pass of the dense update), plus the measured rows (~5 % of them late
    in a run on LLZO NEP descriptors, gathered by row index, ~0.1-0.2 ms). What was tried and measured slower on those
    descriptors (1,000 picks of 57,600, d = 30), so that the next attempt need not repeat it:

    * per-cell lists (members, radius, head; this module's version before 2026-12-07), which skip whole cells: keeping
      them up to date is a Python loop over the ~60 cells near each new point, 0.4-0.7 ms per pick;
    * a lower bound from the distance along the 8 leading principal axes (same version): it removed ~80 % of the
      measured rows but cost more than the distances it saved (also on synthetic sets, d = 30 and 100);
    * fixed-size blocks of the rows of one cell (a slot layout rebuilt whenever the picks double, whole blocks skipped
      by ``d(c_b, x) - r_b >= max m``, the descriptors copied into slot order): it confines the passes to ~14 % of the
      slots, but the extra calls per pick and the rebuilds cost more (0.48 s against 0.40 s in the same run).

    The pruned update is tried once the dense one finds that the triangle inequality would leave fewer than
    _SPARSE_FRACTION of the rows to measure; where that test keeps failing it is tried again only after an interval
    that doubles each time (up to _MAX_CHECK_INTERVAL new points), and a pruned update that leaves more than
    _DENSE_FRACTION of the rows falls back to dense updates.
    """

    def __init__(self, points: np.ndarray):
        self.points = points
        n = points.shape[0]
        self.dist = np.full(n, np.inf)
        self.owner = np.zeros(n, dtype=np.int64)
        self.n_centers = 0
        self.pruned = False
        # buffers of the pruned update, reused: a fresh N-sized temporary per pick is mapped and page-faulted anew
        # (glibc serves allocations above ~128 kB with mmap), which costs as much as the pass itself
        self._threshold = np.empty(n, dtype=np.float64)
        self._above = np.empty(n, dtype=bool)
        # per reference point, grown by doubling
        self._centers = np.empty((16, points.shape[1]), dtype=np.float64)
        self._check_interval = 1
        self._until_check = 0

    def _append_center(self, x: np.ndarray) -> None:
        c = self.n_centers
        if c == self._centers.shape[0]:
            self._centers = np.concatenate([self._centers, np.empty_like(self._centers)])
        self._centers[c] = x
        self.n_centers += 1

    def farthest(self) -> tuple[int, float] | None:
        """The unselected row farthest from the reference set (lowest index among ties) and its min-distance, or
        None when every row is selected."""
        index = int(np.argmax(self.dist))  # first maximum: ties go to the lowest index
        distance = float(self.dist[index])
        return None if distance < 0 else (index, distance)

    def select(self, index: int) -> None:
        """Add row ``index`` to the reference set and mark it as selected."""
        self.dist[index] = -1.0
        self.add_center(index)

    def _half_center_distances(self, x: np.ndarray) -> np.ndarray:
        """Half the distances from ``x`` to every reference point, shrunk by the safety margin."""
        return cdist(x, self._centers[:self.n_centers])[0] * (0.5 / (1.0 + _SKIP_MARGIN))

    def add_center(self, index: int) -> None:
        """Make row ``index`` a reference point and lower the min-distances accordingly."""
        x = self.points[index:index + 1]
        if self.pruned and self._update_pruned(index):
            return
        c = self.n_centers
        self._until_check -= 1
        if c > 0 and self._until_check <= 0:
            threshold = np.take(self._half_center_distances(x), self.owner)
            self.pruned = np.count_nonzero(self.dist > threshold) < _SPARSE_FRACTION * self.dist.size
            self._check_interval = 1 if self.pruned else min(2 * self._check_interval, _MAX_CHECK_INTERVAL)
            self._until_check = self._check_interval
        new = _distances(self.points, x)
        changed = np.flatnonzero(new < self.dist)
        self.dist[changed] = new[changed]
        self.owner[changed] = c
        self._append_center(x)

    def _update_pruned(self, index: int) -> bool:
        """The pruned update; False (and back to dense updates) when the triangle inequality leaves most rows."""
        x = self.points[index:index + 1]
        # a row's min-distance can only drop if it exceeds half the distance from its reference point to x
        np.take(self._half_center_distances(x), self.owner, out=self._threshold)
        candidate = np.flatnonzero(np.greater(self.dist, self._threshold, out=self._above))
        if candidate.size > _DENSE_FRACTION * self.dist.size:
            self.pruned = False
            return False
        new = _distances(self.points, x, candidate)
        closer = new < self.dist[candidate]
        moved = candidate[closer]
        self.dist[moved] = new[closer]
        self.owner[moved] = self.n_centers
        self._append_center(x)
        return True

    def add_first_center(self, index: int) -> None:
        """Make row ``index`` the first pick (no seed set)."""
        self.dist = _distances(self.points, self.points[index:index + 1])
        self.dist[index] = -1.0
        self._append_center(self.points[index])

    def add_seed_points(self, seed: np.ndarray) -> None:
        """Make all rows of ``seed`` (M x d) reference points, before any pick.

        Distances come from cdist on tiles of at most _TILE candidate-seed pairs (bounded memory, never N x M), the
        running minimum and its owner kept per candidate.
        """
        n_points, n_seed = self.dist.size, seed.shape[0]
        seed_block = min(n_seed, _SEED_BLOCK)
        row_block = max(1, _TILE // seed_block)
        for s0 in range(0, n_seed, seed_block):
            seeds = seed[s0:s0 + seed_block].astype(np.float64, copy=False)
            for r0 in range(0, n_points, row_block):
                tile = cdist(self.points[r0:r0 + row_block], seeds)
                nearest = np.argmin(tile, axis=1)
                best = tile[np.arange(tile.shape[0]), nearest]
                better = np.flatnonzero(best < self.dist[r0:r0 + row_block])
                self.dist[r0 + better] = best[better]
                self.owner[r0 + better] = self.n_centers + s0 + nearest[better]
        for row in seed:
            self._append_center(row)


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
    # one C-ordered float64 copy where the input is not already (calorine returns descriptors in Fortran order): rows
    # are gathered and measured every pick, which a strided or float32 array would slow down several times
    points = np.ascontiguousarray(points, dtype=np.float64)

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
        state.add_first_center(int(start_index))
    else:
        state.add_seed_points(seed)

    n_target = n_points if n_select is None else n_select
    while len(picks) < n_target:
        farthest = state.farthest()  # ties go to the lowest index
        if farthest is None:  # every candidate is selected already
            break
        index, distance = farthest
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
