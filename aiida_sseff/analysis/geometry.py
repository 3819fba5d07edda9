"""Cell and distance geometry shared by io, analysis and the workflows (pure numpy/ASE, no aiida).

One implementation each: the perpendicular widths of a cell (used for supercell sizes, GPUMD's ``nep``
replication and the locality test's sphere), the replication reaching a minimum width, and the closest pair of
atoms under periodic boundaries.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ['closest_pair', 'perpendicular_widths', 'replication_for_width', 'shortest_distance']


def perpendicular_widths(cell) -> np.ndarray:
    """Distances (Å) between opposite faces of the cell: ``V/|b×c|``, ``V/|c×a|``, ``V/|a×b|``.

    ``cell`` is a (3, 3) array of lattice vectors (rows), an ASE ``Cell`` or an ``Atoms`` object. Raises
    ``ValueError`` for a cell without volume.
    """
    if hasattr(cell, 'get_cell'):  # ase.Atoms
        cell = cell.get_cell(complete=True)
    cell = np.asarray(cell, dtype=float)
    if cell.shape != (3, 3):
        raise ValueError(f'cell: expected 3 lattice vectors (3, 3), got shape {cell.shape}')
    volume = abs(np.linalg.det(cell))
    a, b, c = cell
    areas = np.array([np.linalg.norm(np.cross(b, c)), np.linalg.norm(np.cross(c, a)), np.linalg.norm(np.cross(a, b))])
    if volume < 1e-9 or np.any(areas < 1e-12):
        raise ValueError('cell has zero volume; expected three linearly independent lattice vectors')
    return volume / areas


def replication_for_width(cell, min_width: float) -> tuple[int, int, int]:
    """Smallest repetition ``(n1, n2, n3)`` making every perpendicular width ≥ ``min_width`` (Å)."""
    if not min_width > 0:
        raise ValueError(f'min_width must be positive (Å), got {min_width}')
    widths = perpendicular_widths(cell)
    return tuple(max(1, math.ceil(min_width / w - 1e-9)) for w in widths)


def closest_pair(atoms) -> tuple[int, int, float]:
    """The two closest atoms (minimum image in periodic directions) and their distance in Å; ``(-1, -1, inf)`` when
    there is no pair within 50 Å (one atom in a large or non-periodic cell)."""
    from ase.neighborlist import neighbor_list

    if len(atoms) == 1 and not atoms.pbc.any():
        return -1, -1, math.inf
    cutoff = 2.0
    while True:
        first, second, distances = neighbor_list('ijd', atoms, cutoff)
        if len(distances):
            k = int(np.argmin(distances))
            return int(first[k]), int(second[k]), float(distances[k])
        if cutoff > 50:
            return -1, -1, math.inf
        cutoff *= 2


def shortest_distance(atoms) -> float:
    """Shortest interatomic distance in Å (periodic images included); ``inf`` when there is none within 50 Å."""
    return closest_pair(atoms)[2]
