"""MD speed and memory versus system size (the speed study, ``sseff.study.speed``): pure numpy, no AiiDA.

From short MD runs of one model on cells of several sizes: the wall time of a long run extrapolated from the measured
production speed, and the largest cell that fits in a memory limit from a straight-line fit of the peak memory
against the number of atoms. Speeds are atom-steps per second (atoms × MD steps / wall seconds of the production
loop); memories in MB (2**20 bytes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    'DEFAULT_EXTRAPOLATED_STEPS',
    'largest_cell_in_memory',
    'linear_memory_fit',
    'replication_for_atoms',
    'speed_table',
    'wall_time_for_steps',
]

#: the run length the study extrapolates the wall time to (one million MD steps, a typical diffusion run)
DEFAULT_EXTRAPOLATED_STEPS = 1_000_000


def wall_time_for_steps(n_atoms: int, atom_steps_per_s: float | None, n_steps: int = DEFAULT_EXTRAPOLATED_STEPS
                        ) -> float | None:
    """Wall time (s) of ``n_steps`` MD steps of ``n_atoms`` atoms at the measured speed: ``n_atoms × n_steps /
    speed``. An extrapolation: it assumes the speed of the short run holds (no start-up cost, the same machine
    load); None where no positive speed was measured."""
    if atom_steps_per_s is None or not np.isfinite(atom_steps_per_s) or atom_steps_per_s <= 0:
        return None
    return float(n_atoms) * float(n_steps) / float(atom_steps_per_s)


def linear_memory_fit(n_atoms: Sequence[float], memory_mb: Sequence[float]) -> tuple[float, float]:
    """Least-squares straight line ``memory = intercept + slope × n_atoms`` through the measured peak memories;
    returns ``(slope MB/atom, intercept MB)``. Linear because the neighbour lists, descriptors and trajectory
    buffers of a short-ranged model grow with the number of atoms and the interpreter and model are a constant;
    a model with long-ranged parts would need another form.

    :raises ValueError: fewer than two distinct sizes, or lengths that differ.
    """
    x = np.asarray(n_atoms, dtype=float)
    y = np.asarray(memory_mb, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f'{len(x)} atom counts but {len(y)} memories')
    if len(np.unique(x)) < 2:
        raise ValueError(f'a straight line needs at least two distinct sizes, got {sorted(set(x.tolist()))}')
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def largest_cell_in_memory(n_atoms: Sequence[float], memory_mb: Sequence[float], limit_mb: float) -> dict:
    """The largest number of atoms whose peak memory stays below ``limit_mb``, from :func:`linear_memory_fit`.

    Returns ``{max_n_atoms, slope_mb_per_atom, intercept_mb, n_sizes, fit: 'linear', reason}``; ``max_n_atoms`` is
    None (and ``reason`` says why) with fewer than two sizes, a memory that does not grow with the size (the
    measurement is dominated by noise: measure larger cells), or a limit below the fitted memory of one atom.
    """
    result = {'max_n_atoms': None, 'slope_mb_per_atom': None, 'intercept_mb': None, 'n_sizes': len(set(n_atoms)),
              'fit': 'linear', 'limit_mb': float(limit_mb), 'reason': None}
    try:
        slope, intercept = linear_memory_fit(n_atoms, memory_mb)
    except ValueError as exception:
        return {**result, 'reason': str(exception)}
    result.update(slope_mb_per_atom=slope, intercept_mb=intercept)
    if slope <= 0:
        return {**result, 'reason': f'the peak memory does not grow with the size (slope {slope:.3g} MB/atom): '
                                    'measure cells further apart in size'}
    largest = math.floor((float(limit_mb) - intercept) / slope)
    if largest < 1:
        return {**result, 'reason': f'the limit of {limit_mb:g} MB is below the fitted memory of one atom '
                                    f'({intercept + slope:.1f} MB)'}
    result['max_n_atoms'] = int(largest)
    return result


def _perpendicular_widths(cell: np.ndarray) -> np.ndarray:
    volume = abs(np.linalg.det(cell))
    return np.array([volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)])


def replication_for_atoms(cell, n_atoms_in_cell: int, target_n_atoms: int) -> list[int]:
    """The replication ``[a, b, c]`` of a cell of ``n_atoms_in_cell`` atoms whose atom count is nearest
    ``target_n_atoms`` (in ratio); among equally near ones, the most nearly cubic supercell (the smallest ratio of
    its largest to its smallest perpendicular width), so that the supercell is as far from thin as it can be.

    :raises ValueError: a target below one atom or a cell without atoms.
    """
    if n_atoms_in_cell < 1:
        raise ValueError('the cell has no atoms')
    if target_n_atoms < 1:
        raise ValueError(f'a target of {target_n_atoms} atoms: give a positive number')
    widths = _perpendicular_widths(np.asarray(cell, dtype=float))
    cells = max(1, round(target_n_atoms / n_atoms_in_cell))
    best_key, best = None, None
    # every product a·b·c near `cells`: a and b run over their divisor-like range, c is then fixed by the count
    for a in range(1, 2 * cells + 1):
        for b in range(1, 2 * cells // a + 1):
            for c in {max(1, math.floor(cells / (a * b))), max(1, math.ceil(cells / (a * b)))}:
                n = a * b * c * n_atoms_in_cell
                lengths = widths * (a, b, c)
                key = (round(abs(math.log(n / target_n_atoms)), 12), lengths.max() / lengths.min())
                if best_key is None or key < best_key:
                    best_key, best = key, [a, b, c]
    return best


def speed_table(runs: Sequence[dict], n_extrapolated_steps: int = DEFAULT_EXTRAPOLATED_STEPS,
                memory_limit_mb: float | None = None) -> dict:
    """The speed study's table from its runs.

    Each run: ``{model, engine, n_atoms, replication`` and, for a finished run, ``atom_steps_per_s``,
    ``peak_memory_mb`` (None where the engine reports none, e.g. GPUMD), ``n_steps``, ``threads``; for a failed one
    ``reason``}``. Returns ``rows`` (one per run, sorted by model, engine and n_atoms: the run's numbers,
    ``status`` ``ok``/``failed``, ``reason``, ``wall_time_extrapolated_s`` for ``n_extrapolated_steps`` steps by
    :func:`wall_time_for_steps`) and ``largest_cell`` (per model and engine, :func:`largest_cell_in_memory` of its
    finished runs with a memory, against ``memory_limit_mb``; omitted without a limit).
    """
    rows = []
    for run in runs:
        ok = run.get('reason') is None
        speed = run.get('atom_steps_per_s') if ok else None
        rows.append({
            'model': run['model'],
            'engine': run['engine'],
            'n_atoms': int(run['n_atoms']),
            'replication': list(run.get('replication') or []),
            'status': 'ok' if ok else 'failed',
            'reason': run.get('reason'),
            'atom_steps_per_s': speed,
            'peak_memory_mb': run.get('peak_memory_mb') if ok else None,
            'n_steps': run.get('n_steps'),
            'threads': run.get('threads'),
            'wall_time_extrapolated_s': wall_time_for_steps(run['n_atoms'], speed, n_extrapolated_steps) if ok
            else None,
        })
    rows.sort(key=lambda row: (row['model'], row['engine'], row['n_atoms']))
    largest = []
    if memory_limit_mb is not None:
        for model, engine in dict.fromkeys((row['model'], row['engine']) for row in rows):
            measured = [row for row in rows if row['model'] == model and row['engine'] == engine
                        and row['peak_memory_mb'] is not None]
            fit = largest_cell_in_memory([row['n_atoms'] for row in measured],
                                         [row['peak_memory_mb'] for row in measured], memory_limit_mb)
            if not measured:
                fit['reason'] = f'{engine} reports no peak memory'
            largest.append({'model': model, 'engine': engine, **fit})
    return {'rows': rows, 'largest_cell': largest, 'n_extrapolated_steps': int(n_extrapolated_steps),
            'memory_limit_mb': None if memory_limit_mb is None else float(memory_limit_mb),
            'units': {'speed': 'atom-steps/s', 'memory': 'MB', 'time': 's'}}
