"""``analysis/speed.py``: extrapolated wall time, the linear memory fit and the largest cell, the replication for a
target atom count and the study's table. Pure functions: numbers worked out by hand in each test."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_sseff.analysis.speed import (
    largest_cell_in_memory,
    linear_memory_fit,
    replication_for_atoms,
    speed_table,
    wall_time_for_steps,
)


def test_wall_time_for_steps():
    # 192 atoms at 1.92e4 atom-steps/s: 100 steps/s, so 1e6 steps take 1e4 s
    assert wall_time_for_steps(192, 1.92e4) == pytest.approx(1.0e4)
    assert wall_time_for_steps(192, 1.92e4, n_steps=500) == pytest.approx(5.0)
    for speed in (None, 0.0, -1.0, float('nan')):
        assert wall_time_for_steps(192, speed) is None


def test_linear_memory_fit_recovers_a_line_and_refuses_one_size():
    n = np.array([100, 200, 400, 800])
    slope, intercept = linear_memory_fit(n, 150.0 + 0.05 * n)
    assert slope == pytest.approx(0.05) and intercept == pytest.approx(150.0)
    with pytest.raises(ValueError, match='two distinct sizes'):
        linear_memory_fit([100, 100], [150, 151])
    with pytest.raises(ValueError, match='2 atom counts but 3'):
        linear_memory_fit([100, 200], [1, 2, 3])


def test_largest_cell_in_memory():
    n = [192, 384, 1536]
    memory = [150.0 + 0.05 * x for x in n]
    fit = largest_cell_in_memory(n, memory, limit_mb=1150.01)
    # (1150.01 - 150) / 0.05 = 20000.2 atoms
    assert fit['max_n_atoms'] == 20000 and fit['fit'] == 'linear' and fit['reason'] is None
    assert fit['slope_mb_per_atom'] == pytest.approx(0.05) and fit['n_sizes'] == 3
    assert 'two distinct sizes' in largest_cell_in_memory([192], [160.0], 1000.0)['reason']
    flat = largest_cell_in_memory([192, 384], [200.0, 199.0], 1000.0)
    assert flat['max_n_atoms'] is None and 'does not grow' in flat['reason']
    small = largest_cell_in_memory(n, memory, limit_mb=100.0)
    assert small['max_n_atoms'] is None and 'below the fitted memory of one atom' in small['reason']


def test_replication_for_atoms_nearest_count_then_most_cubic():
    cubic = np.eye(3) * 13.0
    assert replication_for_atoms(cubic, 192, 1536) == [2, 2, 2]  # 8 cells: 2x2x2 rather than 8x1x1 or 4x2x1
    assert replication_for_atoms(cubic, 192, 100) == [1, 1, 1]
    assert sorted(replication_for_atoms(cubic, 192, 768)) == [1, 2, 2]  # 4 cells
    # a cell twice as long along a: the most nearly cubic 2-cell supercell doubles b or c, not a
    long_a = np.diag([26.0, 13.0, 13.0])
    assert replication_for_atoms(long_a, 96, 192) in ([1, 2, 1], [1, 1, 2])
    with pytest.raises(ValueError, match='positive'):
        replication_for_atoms(cubic, 192, 0)


def test_speed_table_rows_failures_and_largest_cell():
    runs = [
        {'model': 'NEP', 'engine': 'engine', 'n_atoms': 384, 'replication': [2, 1, 1], 'atom_steps_per_s': 2.0e4,
         'peak_memory_mb': 170.0, 'n_steps': 50, 'threads': 1},
        {'model': 'NEP', 'engine': 'engine', 'n_atoms': 192, 'replication': [1, 1, 1], 'atom_steps_per_s': 1.92e4,
         'peak_memory_mb': 160.0, 'n_steps': 50, 'threads': 1},
        {'model': 'NEP', 'engine': 'engine', 'n_atoms': 1536, 'replication': [2, 2, 2],
         'reason': '[412] killed: out of memory'},
        {'model': 'NEP', 'engine': 'gpumd', 'n_atoms': 192, 'replication': [1, 1, 1], 'atom_steps_per_s': 1.0e7,
         'peak_memory_mb': None},
    ]
    table = speed_table(runs, n_extrapolated_steps=1_000_000, memory_limit_mb=1160.01)
    rows = table['rows']
    assert [(r['engine'], r['n_atoms']) for r in rows] == [('engine', 192), ('engine', 384), ('engine', 1536),
                                                           ('gpumd', 192)]
    assert rows[0]['wall_time_extrapolated_s'] == pytest.approx(1.0e4)
    assert rows[1]['wall_time_extrapolated_s'] == pytest.approx(384 * 1e6 / 2.0e4)
    failed = rows[2]
    assert failed['status'] == 'failed' and 'out of memory' in failed['reason']
    assert failed['atom_steps_per_s'] is None and failed['wall_time_extrapolated_s'] is None
    engine, gpumd = table['largest_cell']
    # the line through (192, 160) and (384, 170): slope 10/192 MB/atom, 1160.01 MB at (1160.01 - 150)·19.2 = 19392.2 atoms
    assert engine['max_n_atoms'] == 19392 and engine['n_sizes'] == 2
    assert gpumd['max_n_atoms'] is None and 'gpumd reports no peak memory' in gpumd['reason']
    assert speed_table(runs)['largest_cell'] == []  # no limit, no fit
