"""Tests of aiida_sseff.analysis.fps against a straightforward cdist-based greedy reference."""

import tracemalloc

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from aiida_sseff.analysis import fps as fps_module
from aiida_sseff.analysis.fps import farthest_point_sampling, reduction_series


def reference_fps(points, n_select=None, min_distance=None, seed=None, start_index=None):
    """Textbook greedy max-min FPS: recompute min over cdist(all, reference set) at every step (O(N k) memory).

    Same conventions as the package: no seed -> first pick farthest from the mean (or start_index); ties -> lowest
    index; selected rows are never picked again; stop at n_select or below min_distance.
    """
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    selected, distances = [], []
    if seed is None or len(seed) == 0:
        if start_index is None:
            start_index = int(np.argmax(cdist(points, points.mean(axis=0, keepdims=True))[:, 0]))
        selected.append(start_index)
        distances.append(np.inf)
    target = n if n_select is None else n_select
    while len(selected) < target:
        reference = points[selected] if seed is None or len(seed) == 0 else np.vstack([seed, points[selected]])
        mind = cdist(points, reference).min(axis=1)
        mind[selected] = -1.0
        i = int(np.argmax(mind))
        if mind[i] < 0 or (min_distance is not None and mind[i] < min_distance):
            break
        selected.append(i)
        distances.append(mind[i])
    return np.array(selected), np.array(distances)


def plain_fps(points, n_select, seed=None, start_index=0):
    """PyNEP's loop (benchmarks/bench_fps.py): one cdist to the new pick per step, np.minimum, np.argmax (first
    maximum: ties to the lowest index); selected rows are set to -1 so they are never picked again. O(N) memory, for
    the larger sets where reference_fps's cdist to the whole reference set would be slow."""
    points = np.asarray(points, dtype=np.float64)
    if seed is None:
        selected, distances = [start_index], [np.inf]
        mind = cdist(points[start_index:start_index + 1], points)[0]
        mind[start_index] = -1.0
    else:
        selected, distances = [], []
        mind = cdist(points, seed).min(axis=1)
    while len(selected) < n_select:
        i = int(np.argmax(mind))
        selected.append(i)
        distances.append(mind[i])
        mind = np.minimum(mind, cdist(points[i:i + 1], points)[0])
        mind[selected] = -1.0
    return np.array(selected), np.array(distances)


def low_dimensional(rng, n, d, k=2):
    """Points near a smooth k-dimensional manifold in d dimensions (like descriptors of MD snapshots): the case where
    the triangle-inequality skip is active."""
    latent = rng.normal(size=(n, k))
    return np.tanh(latent @ rng.normal(size=(k, d))) + 1e-3 * rng.normal(size=(n, d))


@pytest.mark.parametrize('n, d, n_select', [(1, 3, 1), (2, 1, 2), (10, 3, 10), (137, 5, 40), (1000, 30, 60)])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_matches_reference_without_seed_set(n, d, n_select, seed):
    points = np.random.default_rng(seed).normal(size=(n, d))
    result = farthest_point_sampling(points, n_select=n_select)
    indices, distances = reference_fps(points, n_select=n_select)
    np.testing.assert_array_equal(result.indices, indices)
    np.testing.assert_allclose(result.min_distances, distances, rtol=1e-12)
    assert np.all(np.diff(result.min_distances) <= 0)  # greedy max-min distances never increase


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_matches_reference_with_seed_set(seed):
    rng = np.random.default_rng(seed)
    points, existing = rng.normal(size=(500, 8)), rng.normal(size=(37, 8)) + 0.5
    result = farthest_point_sampling(points, n_select=50, seed_descriptors=existing)
    indices, distances = reference_fps(points, n_select=50, seed=existing)
    np.testing.assert_array_equal(result.indices, indices)
    np.testing.assert_allclose(result.min_distances, distances, rtol=1e-12)
    # the first pick is the candidate farthest from the seed set
    assert result.indices[0] == np.argmax(cdist(points, existing).min(axis=1))


@pytest.mark.parametrize('seed', [0, 1])
def test_matches_reference_on_low_dimensional_data(seed):
    """Clustered data exercise the triangle-inequality skip; the result must not change."""
    rng = np.random.default_rng(seed)
    points = low_dimensional(rng, 4000, 12)
    existing = low_dimensional(rng, 20, 12)
    for kwargs in ({}, {'start_index': 7}, {'seed_descriptors': existing}):
        result = farthest_point_sampling(points, n_select=150, **kwargs)
        indices, distances = reference_fps(points, n_select=150, seed=kwargs.get('seed_descriptors'),
                                           start_index=kwargs.get('start_index'))
        np.testing.assert_array_equal(result.indices, indices)
        np.testing.assert_allclose(result.min_distances[1:], distances[1:], rtol=1e-12)


@pytest.mark.parametrize('seed', [0, 1])
def test_matches_plain_loop_on_clustered_data(seed):
    """Clusters in d = 40, N = 3000: most updates are pruned."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(6, 40))
    points = centres[rng.integers(6, size=3000)] + low_dimensional(rng, 3000, 40, k=5) * 0.3
    for start in (0, 1234):
        result = farthest_point_sampling(points, n_select=300, start_index=start)
        indices, distances = plain_fps(points, 300, start_index=start)
        np.testing.assert_array_equal(result.indices, indices)
        np.testing.assert_array_equal(result.min_distances[1:], distances[1:])  # the same float64 values
    existing = centres[:3] + rng.normal(size=(3, 40))
    result = farthest_point_sampling(points, n_select=300, seed_descriptors=existing)
    indices, distances = plain_fps(points, 300, seed=existing)
    np.testing.assert_array_equal(result.indices, indices)
    np.testing.assert_array_equal(result.min_distances, distances)


def test_exact_ties_and_duplicates():
    """Integer lattice points in d = 20 (many exactly equal distances) and every row twice: ties must go to the lowest
    index as in the plain loop, and duplicates come last with distance 0."""
    rng = np.random.default_rng(13)
    distinct = rng.integers(-2, 3, size=(700, 20)).astype(np.float64)
    points = np.concatenate([distinct, distinct[::-1]])  # 1400 rows, each distinct one twice
    n_distinct = len(np.unique(distinct, axis=0))
    result = farthest_point_sampling(points, n_select=n_distinct + 50, start_index=3)
    indices, distances = plain_fps(points, n_distinct + 50, start_index=3)
    np.testing.assert_array_equal(result.indices, indices)
    np.testing.assert_array_equal(result.min_distances[1:], distances[1:])
    assert np.all(result.min_distances[n_distinct:] == 0) and np.all(result.min_distances[:n_distinct] > 0)
    assert len(np.unique(result.indices)) == len(result.indices)


def test_skip_path_is_taken_on_low_dimensional_data(monkeypatch):
    """Guard that the tests above really exercise the pruned update: count the rows whose distances are computed."""
    counted = []
    original = fps_module._distances

    def counting(points, x, rows=None):
        if points.shape[1] == n_features:
            counted.append(len(points) if rows is None else len(rows))
        return original(points, x, rows)

    monkeypatch.setattr(fps_module, '_distances', counting)
    for n_features, latent in ((12, 2), (40, 2)):
        counted.clear()
        points = low_dimensional(np.random.default_rng(0), 4000, n_features, k=latent)
        farthest_point_sampling(points, n_select=150)
        # first: distance to the mean and to the first pick (all rows); later updates measure a small fraction
        assert sum(counted[2:]) < 0.2 * len(points) * (len(counted) - 2)


def test_blocked_float32_and_noncontiguous_input(monkeypatch):
    """float32 and strided input go through the block-wise path; small blocks make several blocks."""
    monkeypatch.setattr(fps_module, '_BLOCK', 64)
    rng = np.random.default_rng(3)
    wide = rng.normal(size=(700, 20))
    strided = wide[:, ::2]  # non-contiguous view
    result = farthest_point_sampling(strided, n_select=30)
    indices, _ = reference_fps(strided, n_select=30)
    np.testing.assert_array_equal(result.indices, indices)
    single = low_dimensional(rng, 700, 6).astype(np.float32)
    result = farthest_point_sampling(single, n_select=30)
    indices, _ = reference_fps(single.astype(np.float64), n_select=30)
    np.testing.assert_array_equal(result.indices, indices)


def test_seed_set_in_tiles(monkeypatch):
    """Distances to a seed set are computed in tiles; several seed blocks and row blocks give the same result."""
    monkeypatch.setattr(fps_module, '_TILE', 50)
    monkeypatch.setattr(fps_module, '_SEED_BLOCK', 7)
    rng = np.random.default_rng(12)
    points, existing = low_dimensional(rng, 600, 5), low_dimensional(rng, 23, 5)
    result = farthest_point_sampling(points, n_select=40, seed_descriptors=existing.astype(np.float32))
    indices, distances = reference_fps(points, n_select=40, seed=existing.astype(np.float32).astype(np.float64))
    np.testing.assert_array_equal(result.indices, indices)
    np.testing.assert_allclose(result.min_distances, distances, rtol=1e-12)


def test_start_index_reproduces_pynep_start():
    points = np.random.default_rng(4).normal(size=(300, 4))
    result = farthest_point_sampling(points, n_select=10, start_index=0)
    assert result.indices[0] == 0 and np.isinf(result.min_distances[0])
    np.testing.assert_array_equal(result.indices, reference_fps(points, n_select=10, start_index=0)[0])


def test_stop_by_min_distance():
    rng = np.random.default_rng(5)
    points = rng.uniform(size=(2000, 2))
    threshold = 0.1
    result = farthest_point_sampling(points, min_distance=threshold)
    indices, distances = reference_fps(points, min_distance=threshold)
    np.testing.assert_array_equal(result.indices, indices)
    assert np.all(result.min_distances >= threshold)
    # stopped because every remaining candidate is within the threshold of a selected point
    rest = np.setdiff1d(np.arange(len(points)), result.indices)
    assert cdist(points[rest], points[result.indices]).min(axis=1).max() < threshold
    # a covering of the unit square by discs of radius 0.1 with centres >= 0.1 apart: between 1/(pi 0.1^2) ~ 32
    # (area bound) and the packing bound of discs of radius 0.05 in the enlarged square, (1.1^2)/(pi 0.05^2) ~ 154
    assert 32 <= len(result.indices) <= 154


def test_min_distance_with_seed_set_can_select_nothing():
    points = np.zeros((5, 3)) + np.arange(5)[:, None] * 1e-3
    result = farthest_point_sampling(points, min_distance=1.0, seed_descriptors=np.zeros((1, 3)))
    assert result.indices.size == 0 and result.min_distances.size == 0


def test_ties_go_to_lowest_index_and_runs_are_deterministic():
    # a centre and four points at distance 1 from it: after the centre all four tie -> index 1; then 2, 3 and 4 all
    # have min-distance 1 (to the centre) -> 2, and so on
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    result = farthest_point_sampling(points, n_select=5, start_index=0)
    np.testing.assert_array_equal(result.indices, [0, 1, 2, 3, 4])
    # without start_index: the four outer points tie as farthest from the mean (the centre) -> index 1 first
    assert farthest_point_sampling(points, n_select=1).indices[0] == 1
    data = np.random.default_rng(6).normal(size=(3000, 10))
    first, second = farthest_point_sampling(data, n_select=100), farthest_point_sampling(data, n_select=100)
    np.testing.assert_array_equal(first.indices, second.indices)
    np.testing.assert_array_equal(first.min_distances, second.min_distances)


def test_duplicates_are_never_selected_twice():
    points = np.repeat(np.random.default_rng(7).normal(size=(5, 3)), 4, axis=0)  # 20 rows, 5 distinct
    result = farthest_point_sampling(points, n_select=20)
    assert sorted(result.indices.tolist()) == list(range(20))
    np.testing.assert_array_equal(result.min_distances[5:], 0.0)
    assert np.all(result.min_distances[1:5] > 0)


def test_reduction_series_is_nested_fps():
    points = np.random.default_rng(8).normal(size=(1000, 6))
    series = reduction_series(points, n_levels=7)
    assert [len(level) for level in series] == [500, 250, 125, 62, 31, 15, 7]
    for parent, child in zip(series, series[1:], strict=False):
        np.testing.assert_array_equal(child, parent[:len(child)])  # prefix of the parent's FPS order
    for level in series:
        np.testing.assert_array_equal(level, farthest_point_sampling(points, n_select=len(level)).indices)
        assert len(np.unique(level)) == len(level)
    existing = np.random.default_rng(9).normal(size=(10, 6))
    seeded = reduction_series(points, n_levels=3, seed_descriptors=existing)
    np.testing.assert_array_equal(seeded[2], farthest_point_sampling(points, 125, seed_descriptors=existing).indices)


def test_reduction_series_validates_size():
    assert [len(level) for level in reduction_series(np.eye(128), n_levels=7)] == [64, 32, 16, 8, 4, 2, 1]
    with pytest.raises(ValueError, match='cannot be halved 7 times'):
        reduction_series(np.eye(127), n_levels=7)
    with pytest.raises(ValueError, match='n_levels'):
        reduction_series(np.eye(8), n_levels=0)


@pytest.mark.parametrize('kwargs, message', [
    ({'descriptors': np.empty((0, 3)), 'n_select': 1}, 'empty'),
    ({'descriptors': np.ones(5), 'n_select': 1}, '2-D'),
    ({'descriptors': np.eye(4), 'n_select': 5}, 'between 1 and the number of candidates'),
    ({'descriptors': np.eye(4), 'n_select': 0}, 'between 1 and the number of candidates'),
    ({'descriptors': np.eye(4)}, 'exactly one stop criterion'),
    ({'descriptors': np.eye(4), 'n_select': 2, 'min_distance': 0.1}, 'exactly one stop criterion'),
    ({'descriptors': np.eye(4), 'min_distance': -1.0}, 'min_distance'),
    ({'descriptors': np.eye(4), 'n_select': 2, 'start_index': 4}, 'start_index'),
    ({'descriptors': np.eye(4), 'n_select': 2, 'start_index': 0, 'seed_descriptors': np.eye(4)}, 'start_index'),
    ({'descriptors': np.eye(4), 'n_select': 2, 'seed_descriptors': np.eye(3)}, 'features'),
    ({'descriptors': np.eye(4), 'n_select': 2, 'seed_descriptors': np.full((1, 4), np.nan)},
     'seed_descriptors row 0 contains NaN'),
    ({'descriptors': np.array([[0.0, 1.0], [2.0, np.nan]]), 'n_select': 1}, 'descriptors row 1 contains NaN'),
    ({'descriptors': np.array([[0.0, np.inf], [2.0, 1.0]]), 'n_select': 1}, 'descriptors row 0 contains inf'),
])
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        farthest_point_sampling(**kwargs)


def test_memory_is_linear_in_n():
    """50 picks from 200,000 points (d = 30) allocate O(N) memory: far below N x N (or N x k) doubles."""
    n, d = 200_000, 30
    points = np.random.default_rng(10).normal(size=(n, d))
    existing = np.random.default_rng(11).normal(size=(100, d))
    tracemalloc.start()
    try:
        result = farthest_point_sampling(points, n_select=50)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        seeded = farthest_point_sampling(points, n_select=50, seed_descriptors=existing)
        _, peak_seeded = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result.indices) == 50 and len(seeded.indices) == 50
    # the N x k matrix of the textbook method would be 50 x N x 8 bytes, N x N 200,000 x N x 8 bytes; ours was 6.6
    # doubles per row (min-distances, owners, the threshold buffer, temporaries), 13.8 with the seed set (its 8 MB
    # distance tiles), measured 2026-12-07
    assert peak < 25 * n * 8, f'peak {peak / 1e6:.1f} MB'
    assert peak_seeded < 25 * n * 8, f'peak with seed set {peak_seeded / 1e6:.1f} MB'


@pytest.mark.reference
def test_matches_plain_loop_on_real_nep_descriptors(reference_dir):
    """Per-atom NEP descriptors (nep25_zbl.txt, d = 30) of the 25 LLZO DFT structures and of rattled copies: 9,600
    real atomic environments, as calorine returns them (Fortran-ordered rows). The picks, their order and the float64
    min-distances are those of PyNEP's loop, without and with a seed set (the environments of 3 structures)."""
    from ase.io import read
    from calorine.calculators import CPUNEP

    structures = read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index=':')
    calculator = CPUNEP(str(reference_dir / 'llzo' / 'nep25_zbl.txt'))
    rng = np.random.default_rng(14)
    blocks = []
    for atoms in structures:
        rattled = atoms.copy()
        rattled.positions += rng.normal(scale=0.05, size=rattled.positions.shape)
        blocks += [calculator.get_descriptors(atoms.copy()), calculator.get_descriptors(rattled)]
    points = np.concatenate(blocks)
    assert points.shape == (9600, 30)
    result = farthest_point_sampling(points, n_select=400, start_index=0)
    indices, distances = plain_fps(points, 400, start_index=0)
    np.testing.assert_array_equal(result.indices, indices)
    np.testing.assert_array_equal(result.min_distances[1:], distances[1:])
    seed, candidates = points[:3 * 384], points[3 * 384:]
    result = farthest_point_sampling(candidates, n_select=400, seed_descriptors=seed)
    indices, distances = plain_fps(candidates, 400, seed=seed)
    np.testing.assert_array_equal(result.indices, indices)
    np.testing.assert_array_equal(result.min_distances, distances)
