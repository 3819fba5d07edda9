"""Mean-square displacement (MSD) of MD trajectories: unwrapping, FFT MSD, drift removal.

Pure numpy/scipy, no aiida. Units: positions in Å, time in ps, MSD in Å².

Conventions
-----------
* ``positions`` arrays are ``(n_frames, n_atoms, 3)``.
* Cells are ``(3, 3)`` or ``(n_frames, 3, 3)`` with the lattice vectors as *rows* (ASE/pymatgen convention), so
  Cartesian = fractional @ cell.
* The MSD at lag ``k`` is averaged over every time origin ``t = 0 … M-1-k`` (all overlapping windows), the
  estimator of nMOLDYN (Calandrini et al., Collection SFN 12, 201 (2011)) and of ``tidynamics.msd``.

Why not ``tidynamics.msd`` directly: it handles one particle at a time in float64 and gives no per-atom or
collective results; here atoms are processed in chunks with one batched real FFT so that the peak memory stays
bounded for 3,584 atoms × 10,000 frames. The tests check that both agree to 1e-10.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft

__all__ = [
    'MSDResult',
    'compute_msd',
    'framework_drift',
    'msd_direct',
    'msd_fft',
    'remove_com_drift',
    'unwrap_positions',
]

#: default memory budget (bytes) of the temporary arrays of one FFT chunk
_CHUNK_BYTES = 64 * 1024**2


def _as_cells(cells, n_frames: int) -> np.ndarray:
    """Return cells as ``(n_frames, 3, 3)`` float64, validating the shape."""
    cells = np.asarray(cells, dtype=float)
    if cells.shape == (3, 3):
        return np.broadcast_to(cells, (n_frames, 3, 3))
    if cells.shape != (n_frames, 3, 3):
        raise ValueError(f'cells: expected shape (3, 3) or ({n_frames}, 3, 3), got {cells.shape}.')
    return cells


def _check_positions(positions, name: str = 'positions') -> np.ndarray:
    positions = np.asarray(positions)
    if positions.ndim != 3 or positions.shape[2] != 3:
        raise ValueError(f'{name}: expected shape (n_frames, n_atoms, 3), got {positions.shape}.')
    if positions.shape[0] < 2:
        raise ValueError(f'{name}: need at least 2 frames, got {positions.shape[0]}.')
    return positions


def unwrap_positions(frac_positions, cells, method: str = 'tor', chunk_atoms: int = 4096) -> np.ndarray:
    """Unwrap a trajectory of wrapped fractional coordinates into continuous Cartesian positions (Å).

    The frame-to-frame jump of each atom is reduced to its minimum image in *fractional* space (the integer
    lattice translation is removed by rounding), which is exact for any triclinic cell as long as no atom moves
    by half a cell (in fractional units) between two frames. Two ways of going back to Cartesian are offered,
    identical for a fixed cell and different only in NPT:

    ``'image'``
        Image flags: unwrapped fractional coordinates ``u_t = f_t + n_t`` (``n_t`` the accumulated integer
        jumps), then Cartesian with each frame's own cell, ``r_t = u_t @ h_t``. This is LAMMPS' ``xu`` and
        what GPUMD's unwrapped positions are. In NPT it multiplies every box fluctuation by the number of boxes
        the atom has crossed, which adds a spurious displacement that grows with ``n_t`` (von Bülow, Bullerjahn
        & Hummer, J. Chem. Phys. 153, 021101 (2020)).
    ``'tor'`` (default)
        The "toroidal-view-preserving" scheme of the same paper (also kinisi's): accumulate the Cartesian
        wrapped increments ``w_{t+1} - w_t`` after removing the lattice vector of frame ``t+1`` found by
        rounding in fractional space. Box fluctuations then enter only through the local increment.

    Parameters
    ----------
    frac_positions
        ``(n_frames, n_atoms, 3)`` fractional coordinates (any wrapping, e.g. in [0, 1)).
    cells
        ``(3, 3)`` or ``(n_frames, 3, 3)`` cells in Å, lattice vectors as rows.
    method
        ``'tor'`` or ``'image'`` (see above).
    chunk_atoms
        Atoms processed at a time (bounds the temporaries).

    Returns
    -------
    numpy.ndarray
        ``(n_frames, n_atoms, 3)`` float64 unwrapped Cartesian positions in Å; frame 0 equals the Cartesian
        image of the input frame 0.
    """
    frac = _check_positions(frac_positions, 'frac_positions')
    n_frames, n_atoms, _ = frac.shape
    cells = _as_cells(cells, n_frames)
    if method not in ('tor', 'image'):
        raise ValueError(f"method: expected 'tor' or 'image', got {method!r}.")
    out = np.empty((n_frames, n_atoms, 3), dtype=float)
    inv_next = np.linalg.inv(cells[1:]) if method == 'tor' else None
    for start in range(0, n_atoms, chunk_atoms):
        sl = slice(start, min(start + chunk_atoms, n_atoms))
        f = np.asarray(frac[:, sl], dtype=float)
        if method == 'image':
            jumps = np.rint(np.diff(f, axis=0))
            u = f.copy()
            u[1:] -= np.cumsum(jumps, axis=0)
            out[:, sl] = np.einsum('fai,fij->faj', u, cells)
        else:
            w = np.einsum('fai,fij->faj', f, cells)
            inc = np.diff(w, axis=0)
            shift = np.rint(np.einsum('fai,fij->faj', inc, inv_next))
            inc -= np.einsum('fai,fij->faj', shift, cells[1:])
            out[0, sl] = w[0]
            np.cumsum(inc, axis=0, out=out[1:, sl])
            out[1:, sl] += w[0]
    return out


def _msd_chunk(x: np.ndarray, n_fft: int) -> np.ndarray:
    """FFT MSD of ``x`` with shape ``(M, C)`` (C independent 1-D series). Returns ``(M, C)`` float64."""
    m = x.shape[0]
    x = x - x.mean(axis=0)  # MSD is shift invariant; centring reduces cancellation in S1 - 2 S2
    # S2: autocorrelation sum_t x_t x_{t+k} through a zero-padded FFT (Wiener–Khinchin)
    fx = sp_fft.rfft(x, n=n_fft, axis=0, workers=-1)
    fx *= fx.conj()
    s2 = sp_fft.irfft(fx, n=n_fft, axis=0, workers=-1)[:m]
    del fx
    return _combine(x * x, s2)


def _combine(d: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """MSD(k) = (S1(k) - 2 S2(k)) / (M - k) from the squares ``d = x²`` and the autocorrelation sums ``S2``."""
    m = d.shape[0]
    # S1: sum_{t=0}^{M-1-k} (x_{t+k}^2 + x_t^2) by cumulative sums
    cs = np.cumsum(d, axis=0)
    total = cs[-1]
    s1 = np.empty_like(d)
    s1[0] = 2.0 * total
    # sum_{t=k}^{M-1} d_t + sum_{t=0}^{M-1-k} d_t
    s1[1:] = (total - cs[:-1]) + cs[-2::-1]
    counts = (m - np.arange(m, dtype=float))[:, None]
    return (s1 - 2.0 * s2) / counts


def _msd_chunk_sum(x: np.ndarray, n_fft: int) -> np.ndarray:
    """Sum over atoms of the FFT MSD of ``x`` with shape ``(M, n_atoms, 3)``; returns ``(M, 3)`` float64.

    Both parts of ``S1 - 2 S2`` are linear in per-atom quantities (``|F|²`` and ``x²``), so they are summed over the
    atoms before the inverse FFT and the cumulative sums: one inverse FFT per direction instead of one per atom.
    """
    m = x.shape[0]
    x = x - x.mean(axis=0)  # MSD is shift invariant; centring reduces cancellation in S1 - 2 S2
    fx = sp_fft.rfft(x, n=n_fft, axis=0, workers=-1)
    power = (fx.real * fx.real + fx.imag * fx.imag).sum(axis=1)
    del fx
    s2 = sp_fft.irfft(power, n=n_fft, axis=0, workers=-1)[:m]
    return _combine((x * x).sum(axis=1), s2)


def msd_fft(
    positions,
    indices=None,
    per_atom: bool = False,
    chunk_bytes: int = _CHUNK_BYTES,
    offset=None,
):
    """Time-origin-averaged MSD per Cartesian direction by FFT, O(M log M) per atom (Å²).

    ``MSD_a(k) = 1/(M-k) sum_{t=0}^{M-1-k} (x_a(t+k) - x_a(t))^2`` for each atom and direction, computed as
    ``S1(k) - 2 S2(k)`` with the autocorrelation ``S2`` from a zero-padded real FFT (the algorithm of nMOLDYN /
    tidynamics). Atoms are processed in chunks sized by ``chunk_bytes`` so that the temporaries stay small;
    the input may be float32 (each chunk is promoted to float64).

    Parameters
    ----------
    positions
        ``(M, N, 3)`` *unwrapped* Cartesian positions in Å (any float dtype, may be a memmap).
    indices
        Optional atom indices or boolean mask selecting the atoms to average over.
    per_atom
        Also return the per-atom MSD, ``(M, n_selected, 3)`` float64 (this array is as large as
        2× the float32 positions: only ask for it when needed).
    chunk_bytes
        Memory budget for one chunk's temporaries (bytes).
    offset
        Optional ``(M, 3)`` displacement (Å) subtracted from every atom chunk by chunk, e.g. the framework
        centre-of-mass drift, without materialising a corrected copy of ``positions``.

    Returns
    -------
    numpy.ndarray or tuple
        ``(M, 3)`` MSD averaged over the selected atoms (lag ``k`` in row ``k``), or ``(mean, per_atom)``.
    """
    positions = _check_positions(positions)
    if indices is not None:
        idx = np.arange(positions.shape[1])[np.asarray(indices)]
    else:
        idx = np.arange(positions.shape[1])
    if idx.size == 0:
        raise ValueError('msd_fft: no atoms selected.')
    m = positions.shape[0]
    n_fft = sp_fft.next_fast_len(2 * m, real=True)
    # per chunk column: input copy, centred copy, complex spectrum (n_fft/2+1), irfft output, d, cumsum, s1
    bytes_per_column = 8 * (6 * m + 2 * n_fft)
    chunk_atoms = max(1, int(chunk_bytes // (3 * bytes_per_column)))
    if offset is not None:
        offset = np.asarray(offset, dtype=float)
        if offset.shape != (m, 3):
            raise ValueError(f'offset: expected shape ({m}, 3), got {offset.shape}.')
    total = np.zeros((m, 3), dtype=float)
    per = np.empty((m, idx.size, 3), dtype=float) if per_atom else None
    for start in range(0, idx.size, chunk_atoms):
        sel = idx[start:start + chunk_atoms]
        x = np.asarray(positions[:, sel], dtype=float)
        if offset is not None:
            x = x - offset[:, None, :]
        if per is None:
            total += _msd_chunk_sum(x, n_fft)
            continue
        res = _msd_chunk(x.reshape(m, -1), n_fft).reshape(m, sel.size, 3)
        total += res.sum(axis=1)
        per[:, start:start + sel.size] = res
    mean = total / idx.size
    return (mean, per) if per_atom else mean


def msd_direct(positions, indices=None) -> np.ndarray:
    """Reference O(M²) MSD (Å²), same definition and return shape ``(M, 3)`` as :func:`msd_fft`.

    Only for tests and small inputs.
    """
    positions = _check_positions(positions)
    if indices is not None:
        positions = positions[:, np.asarray(indices)]
    x = np.asarray(positions, dtype=float)
    m = x.shape[0]
    out = np.zeros((m, 3))
    for k in range(1, m):
        d = x[k:] - x[:-k]
        out[k] = np.mean(d * d, axis=(0, 1))
    return out


def remove_com_drift(positions, masses=None, framework_mask=None) -> np.ndarray:
    """Subtract the displacement of the framework's centre of mass from every atom (Å).

    ``r_i(t) -> r_i(t) - [R_fw(t) - R_fw(0)]`` with ``R_fw`` the mass-weighted centre of the framework atoms.
    A thermostat or an integrator drift that moves the whole crystal would otherwise be counted as diffusion
    (GPUMD's ``msd.out`` does not remove it).

    Parameters
    ----------
    positions
        ``(M, N, 3)`` unwrapped Cartesian positions in Å.
    masses
        ``(N,)`` masses in amu; ``None`` gives every atom the same weight (kinisi's convention).
    framework_mask
        Boolean ``(N,)`` (or indices) of the framework atoms; ``None`` uses all atoms.

    Returns
    -------
    numpy.ndarray
        New ``(M, N, 3)`` float64 array.
    """
    positions = _check_positions(positions)
    drift = framework_drift(positions, masses, framework_mask)
    return np.asarray(positions, dtype=float) - drift[:, None, :]


@dataclass
class MSDResult:
    """MSD of one species (all arrays indexed by lag).

    Attributes
    ----------
    time_ps : (M,) lag times in ps.
    msd_xyz : (M, 3) tracer MSD per direction, averaged over the species' atoms (Å²).
    msd_total : (M,) sum over the three directions (Å²).
    msd_collective_xyz : (M, 3) MSD of the summed displacement of the species divided by its number of atoms,
        ``<|sum_i Δr_i(t)|²> / N`` per direction (Å²): same expectation as ``msd_xyz`` for independent ions;
        its slope gives the charge diffusivity D_sigma (Haven ratio H = D*/D_sigma).
    msd_collective : (M,) sum over directions of ``msd_collective_xyz`` (Å²).
    n_atoms : number of atoms of the species.
    dt_ps : time between frames (ps).
    species : element symbol.
    drift_removed : whether the framework centre-of-mass drift was subtracted.
    """

    time_ps: np.ndarray
    msd_xyz: np.ndarray
    msd_total: np.ndarray
    msd_collective_xyz: np.ndarray
    msd_collective: np.ndarray
    n_atoms: int
    dt_ps: float
    species: str
    drift_removed: bool

    @property
    def total_time_ps(self) -> float:
        """Length of the trajectory (ps)."""
        return float(self.time_ps[-1])


def _species_indices(symbols, species: str) -> tuple[np.ndarray, np.ndarray]:
    symbols = np.asarray(symbols)
    mobile = symbols == species
    if not mobile.any():
        raise ValueError(f'symbols: no atom of species {species!r} (found {sorted(set(symbols.tolist()))}).')
    return np.flatnonzero(mobile), np.flatnonzero(~mobile)


def compute_msd(
    positions_unwrapped,
    symbols,
    species: str = 'Li',
    masses=None,
    remove_drift: bool = True,
    dt_ps: float | None = None,
) -> MSDResult:
    """Tracer and collective MSD of one species from an unwrapped trajectory.

    Parameters
    ----------
    positions_unwrapped
        ``(M, N, 3)`` unwrapped Cartesian positions in Å (see :func:`unwrap_positions`).
    symbols
        ``(N,)`` chemical symbols.
    species
        The mobile species (e.g. ``'Li'``).
    masses
        ``(N,)`` masses in amu for the drift correction; ``None`` takes ASE's standard atomic masses.
    remove_drift
        Subtract the centre-of-mass displacement of the framework (all atoms not of ``species``).
    dt_ps
        Time between frames in ps (required: no default time unit is guessed).

    Returns
    -------
    MSDResult
    """
    positions = _check_positions(positions_unwrapped, 'positions_unwrapped')
    if len(symbols) != positions.shape[1]:
        raise ValueError(f'symbols: expected {positions.shape[1]} entries (one per atom), got {len(symbols)}.')
    if dt_ps is None or not dt_ps > 0:
        raise ValueError(f'dt_ps: expected the positive time between frames in ps, got {dt_ps}.')
    mobile, framework = _species_indices(symbols, species)
    m = positions.shape[0]
    drift = None
    if remove_drift and framework.size:
        if masses is None:
            from ase.data import atomic_masses, atomic_numbers

            masses = np.array([atomic_masses[atomic_numbers[s]] for s in symbols])
        drift = framework_drift(positions, masses, framework)
    # chunked: no float64 copy of the whole trajectory is made (peak memory, see benchmarks/bench_msd.py)
    msd_xyz = msd_fft(positions, indices=mobile, offset=drift)
    summed = _sum_positions(positions, mobile)
    if drift is not None:
        summed -= mobile.size * drift
    msd_coll = msd_fft(summed[:, None, :]) / mobile.size
    return MSDResult(
        time_ps=np.arange(m) * float(dt_ps),
        msd_xyz=msd_xyz,
        msd_total=msd_xyz.sum(axis=1),
        msd_collective_xyz=msd_coll,
        msd_collective=msd_coll.sum(axis=1),
        n_atoms=int(mobile.size),
        dt_ps=float(dt_ps),
        species=species,
        drift_removed=drift is not None,
    )


def _sum_positions(positions, indices, chunk_atoms: int = 256) -> np.ndarray:
    """``sum_i r_i(t)`` over ``indices`` as ``(M, 3)`` float64, chunk by chunk."""
    out = np.zeros((positions.shape[0], 3))
    for start in range(0, len(indices), chunk_atoms):
        out += np.asarray(positions[:, indices[start:start + chunk_atoms]], dtype=float).sum(axis=1)
    return out


def framework_drift(positions, masses, framework) -> np.ndarray:
    """Displacement ``R(t) - R(0)`` (Å) of the mass-weighted centre of the atoms ``framework``, ``(M, 3)``.

    ``masses`` is ``(N,)`` in amu (``None``: equal weights); ``framework`` indices or a boolean mask.
    """
    positions = _check_positions(positions)
    n_atoms = positions.shape[1]
    weights = np.ones(n_atoms) if masses is None else np.asarray(masses, dtype=float)
    if weights.shape != (n_atoms,):
        raise ValueError(f'masses: expected shape ({n_atoms},), got {weights.shape}.')
    sel = np.arange(n_atoms)[np.asarray(framework)] if framework is not None else np.arange(n_atoms)
    if sel.size == 0:
        raise ValueError('framework selection is empty.')
    w = weights[sel]
    com = np.zeros((positions.shape[0], 3))
    for start in range(0, sel.size, 256):
        part = sel[start:start + 256]
        com += np.einsum('fai,a->fi', np.asarray(positions[:, part], dtype=float), w[start:start + 256])
    com /= w.sum()
    return com - com[0]
