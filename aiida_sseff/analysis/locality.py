"""The force-locality test of the perspective paper: how much the force on a central atom still varies when every atom
within ``r_f`` of it is frozen and the rest is perturbed (pure numpy/ASE, no aiida).

σ_f = sqrt((1/N) Σ_i ||f_i - f̄||²) over N snapshots of the central atom's force ``f_i``. A short-range model of
cutoff R cannot see beyond its receptive field, so σ_f at ``r_f`` bounds the force error that any model of that range
must make on a reference of longer range.

Uncertainty: snapshots of one MD run are correlated in time, so the squared deviations ``q_i = ||f_i - f̄||²`` are
block-averaged (Flyvbjerg & Petersen, J. Chem. Phys. 91, 461 (1989)): the standard error of the mean of ``q`` is taken
at the block size where it stops growing (the largest value over block levels with at least ``min_blocks`` blocks,
a conservative reading of the plateau), and propagated to σ_f = sqrt(mean q) as ``err_q / (2 σ_f)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aiida_sseff.analysis.geometry import perpendicular_widths, replication_for_width

__all__ = [
    'LocalityResult',
    'SphereDoesNotFitError',
    'blocked_standard_error',
    'central_atoms',
    'check_sphere_fits',
    'frozen_sphere_mask',
    'sigma_f',
]


class SphereDoesNotFitError(ValueError):
    """The frozen sphere (plus its margin) would meet its own periodic image: a larger supercell is needed."""


def _minimum_image_distances(atoms, center: np.ndarray) -> np.ndarray:
    """Distances (Å) of every atom from the point ``center`` under periodic boundaries (any triclinic cell)."""
    from ase.geometry import get_distances

    _, distances = get_distances(np.atleast_2d(center), atoms.get_positions(), cell=atoms.cell, pbc=atoms.pbc)
    return distances[0]


def central_atoms(atoms, species=None) -> dict[str, int]:
    """Index of the atom of each species nearest the centre of the cell (minimum image), ``{symbol: index}``.

    ``species``: the symbols wanted (default every species of the structure); a symbol the structure lacks is an error.
    """
    symbols = np.array(atoms.get_chemical_symbols())
    present = list(dict.fromkeys(symbols.tolist()))
    wanted = present if species is None else list(species)
    missing = [s for s in wanted if s not in present]
    if missing:
        raise ValueError(f'species {missing} not in the structure (it holds {", ".join(present)})')
    centre = atoms.cell.cartesian_positions([0.5, 0.5, 0.5])
    distances = _minimum_image_distances(atoms, centre)
    result = {}
    for symbol in wanted:
        candidates = np.flatnonzero(symbols == symbol)
        result[symbol] = int(candidates[np.argmin(distances[candidates])])
    return result


def check_sphere_fits(cell, radius: float, margin: float = 0.0) -> None:
    """Refuse a sphere of ``radius`` + ``margin`` (Å) that does not fit in the cell without meeting its periodic image.

    The sphere fits when every perpendicular width is at least ``2·(radius + margin)``; the error names the widths
    and the supercell (repetition of this cell) that would hold it.
    """
    if not radius > 0:
        raise ValueError(f'the frozen radius r_f must be positive (Å), got {radius}')
    if margin < 0:
        raise ValueError(f'margin must be >= 0 (Å), got {margin}')
    widths = perpendicular_widths(cell)
    needed = 2.0 * (radius + margin)
    if widths.min() < needed:
        reps = replication_for_width(cell, needed)
        raise SphereDoesNotFitError(
            f'a frozen sphere of r_f = {radius:g} Å (+ {margin:g} Å margin) needs every cell width >= {needed:g} Å; '
            f'this cell has widths {", ".join(f"{w:.2f}" for w in widths)} Å: use a {reps[0]}x{reps[1]}x{reps[2]} '
            'supercell of it (or a smaller r_f)')


def frozen_sphere_mask(atoms, center_index: int, radius: float, margin: float = 0.0) -> np.ndarray:
    """Boolean mask of the atoms within ``radius`` (Å) of atom ``center_index`` (itself included), minimum image.

    Raises :class:`SphereDoesNotFitError` when the sphere (+ ``margin``) does not fit in the cell.
    """
    if not 0 <= center_index < len(atoms):
        raise ValueError(f'center_index {center_index} out of range for {len(atoms)} atoms')
    check_sphere_fits(atoms.cell, radius, margin)
    distances = _minimum_image_distances(atoms, atoms.positions[center_index])
    return distances <= radius


def blocked_standard_error(values, min_blocks: int = 8) -> tuple[float, int]:
    """Standard error of the mean of a correlated series by block averaging, and the block size it was read at.

    Blocks of 1, 2, 4, … consecutive values; at each level the error is ``std(block means)/sqrt(n_blocks)``; the
    largest over the levels with at least ``min_blocks`` blocks is returned (it grows until blocks are longer than
    the correlation time, then stays flat within noise).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size < 2 * min_blocks:
        raise ValueError(f'blocked_standard_error: need at least {2 * min_blocks} values, got {values.size}')
    best, best_size = 0.0, 1
    size = 1
    while values.size // size >= min_blocks:
        n_blocks = values.size // size
        means = values[: n_blocks * size].reshape(n_blocks, size).mean(axis=1)
        error = float(means.std(ddof=1) / np.sqrt(n_blocks))
        if error > best:
            best, best_size = error, size
        size *= 2
    return best, best_size


@dataclass
class LocalityResult:
    """σ_f of one central atom at one frozen radius (eV/Å), with its standard error and the mean force."""

    sigma: float
    sigma_err: float
    mean_force: np.ndarray
    n_snapshots: int
    block_size: int


def sigma_f(forces, min_snapshots: int = 16, min_blocks: int = 8) -> LocalityResult:
    """σ_f = sqrt(mean ||f_i - f̄||²) of the central atom's forces ``(N, 3)`` (eV/Å) over N snapshots, with its error.

    Refuses fewer than ``min_snapshots`` snapshots (the error needs ``min_blocks`` blocks of at least one value).
    """
    forces = np.asarray(forces, dtype=float)
    if forces.ndim != 2 or forces.shape[1] != 3:
        raise ValueError(f'forces: expected (n_snapshots, 3), got {forces.shape}')
    if forces.shape[0] < max(min_snapshots, 2 * min_blocks):
        raise ValueError(f'sigma_f: {forces.shape[0]} snapshots are too few; at least '
                         f'{max(min_snapshots, 2 * min_blocks)} are needed for σ_f and its error')
    if not np.isfinite(forces).all():
        raise ValueError('sigma_f: the forces hold NaN or inf')
    mean = forces.mean(axis=0)
    squared = ((forces - mean) ** 2).sum(axis=1)
    sigma = float(np.sqrt(squared.mean()))
    error_q, block = blocked_standard_error(squared, min_blocks)
    sigma_err = error_q / (2.0 * sigma) if sigma > 0 else 0.0
    return LocalityResult(sigma=sigma, sigma_err=float(sigma_err), mean_force=mean, n_snapshots=forces.shape[0],
                          block_size=block)
