"""GPUMD's ``compute_msd``, re-implemented: the MSD exactly as ``msd.out`` holds it, and its number of time origins.

Why a re-implementation: GPUMD cannot run without CUDA, yet the error of a D fitted to ``msd.out`` depends on how GPUMD
averaged it, and the tests need MSDs accumulated as GPUMD accumulates them. The algorithm (``src/measure/msd.cu``,
``MSD::process`` and ``MSD::write``, GPUMD 3.x–5.x and the development branch):

- a sample is taken after MD step ``s`` when ``(s + 1) % sample_interval == 0``; ``sample_step = s // sample_interval``
  counts them from 0. The unwrapped positions go into slot ``sample_step % Nc`` of a ring buffer of ``Nc`` samples;
- once ``sample_step >= Nc - 1`` the sample is a *correlation event*: for every lag ``k = 0 … Nc-1`` it adds
  ``Σ_atoms |r(sample_step) - r(sample_step - k)|²`` to ``msd[k]`` and counts one time origin;
- ``msd.out`` holds ``msd[k] / (atoms in the group × time origins)`` at time ``k · sample_interval · dt``, and
  ``sdc[k] = ½ (msd[k] - msd[k-1]) / (sample_interval · dt)`` (row 0 is 0).

So every lag has the same number of terms, ``n_samples - Nc + 1`` (not ``n_samples - k`` as in an MSD over a whole
trajectory), and with ``Nc = n_samples`` the MSD comes from a single time origin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ['GpumdMsd', 'combine_gpumd_msd', 'gpumd_msd', 'gpumd_time_origins']


@dataclass
class GpumdMsd:
    """What ``compute_msd`` writes for one run.

    Attributes
    ----------
    time_ps : (Nc,) lag times ``k · dt_sample`` (ps).
    msd : (G, Nc, 3) MSD of each group in x, y, z (Å²), normalised as GPUMD does.
    sdc : (G, Nc, 3) ``½ dMSD/dt`` by GPUMD's backward difference (Å²/ps); row 0 is 0.
    n_time_origins : number of correlation events, ``n_samples - Nc + 1``.
    n_atoms_per_group : (G,) atoms averaged in each group.
    """

    time_ps: np.ndarray
    msd: np.ndarray
    sdc: np.ndarray
    n_time_origins: int
    n_atoms_per_group: np.ndarray


def gpumd_time_origins(n_samples: int, n_correlation: int) -> int:
    """Time origins of GPUMD's MSD: ``n_samples - n_correlation + 1``, 0 when ``n_correlation > n_samples``.

    ``n_samples`` is ``production_steps // sample_interval`` (GPUMD samples after every ``sample_interval``-th step).
    """
    if n_correlation < 1:
        raise ValueError(f'n_correlation (Nc) must be >= 1, got {n_correlation}')
    return max(int(n_samples) - int(n_correlation) + 1, 0)


def gpumd_msd(positions, n_correlation: int, dt_sample_ps: float, groups=None) -> GpumdMsd:
    """The MSD that GPUMD's ``compute_msd`` writes, from the positions it would sample.

    Parameters
    ----------
    positions : (n_samples, n_atoms, 3) unwrapped positions (Å) at GPUMD's sample steps (after steps
        ``sample_interval - 1, 2·sample_interval - 1, …``, counting from 0).
    n_correlation : Nc, the number of lags (``compute_msd <interval> <Nc>``).
    dt_sample_ps : time between samples, ``sample_interval × time_step`` (ps).
    groups : None (one group of all given atoms: ``compute_msd`` without a group, or the atoms of ``group gm gid``
        selected beforehand) or (n_atoms,) integer labels ``0 … G-1`` (``all_groups gm``).

    The lags are accumulated as GPUMD does (one term per lag per correlation event); the arithmetic is vectorised
    over events, which changes only the order of the floating-point sums.
    """
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 3 or positions.shape[2] != 3:
        raise ValueError(f'positions: expected shape (n_samples, n_atoms, 3), got {positions.shape}')
    n_samples, n_atoms, _ = positions.shape
    nc = int(n_correlation)
    if nc < 1:
        raise ValueError(f'n_correlation (Nc) must be >= 1, got {n_correlation}')
    if nc > n_samples:
        # GPUMD refuses this in MSD::preprocess ("correlation times sampling interval should be <= number of MD steps")
        raise ValueError(f'Nc = {nc} exceeds the {n_samples} samples of the run: GPUMD refuses this compute_msd')
    if not dt_sample_ps > 0:
        raise ValueError(f'dt_sample_ps must be positive, got {dt_sample_ps}')
    if groups is None:
        labels = np.zeros(n_atoms, dtype=int)
    else:
        labels = np.asarray(groups)
        if labels.shape != (n_atoms,) or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
            raise ValueError(f'groups: expected ({n_atoms},) non-negative integer labels, got {labels.shape}')
    n_groups = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=n_groups)
    ends = np.arange(nc - 1, n_samples)  # the correlation events: sample_step >= Nc - 1
    sums = np.zeros((n_groups, nc, 3))
    for k in range(nc):
        per_atom = ((positions[ends] - positions[ends - k]) ** 2).sum(axis=0)  # (atoms, 3), summed over events
        for d in range(3):
            sums[:, k, d] = np.bincount(labels, weights=per_atom[:, d], minlength=n_groups)
    n_origins = ends.size
    scale = np.where(counts > 0, 1.0 / np.maximum(counts, 1) / n_origins, 0.0)  # GPUMD writes 0 for an empty group
    msd = sums * scale[:, None, None]
    sdc = np.zeros_like(msd)
    sdc[:, 1:] = 0.5 * np.diff(msd, axis=1) / dt_sample_ps
    return GpumdMsd(time_ps=np.arange(nc) * float(dt_sample_ps), msd=msd, sdc=sdc, n_time_origins=int(n_origins),
                    n_atoms_per_group=counts)


def combine_gpumd_msd(blocks: Sequence[tuple]) -> tuple[np.ndarray, list[int]]:
    """One MSD from the segments of a run continued after restarts: ``[(msd, n_time_origins), ...]``.

    Each segment's ``compute_msd`` starts with an empty ring buffer, so its origins lie inside the segment (a restart
    loses ``Nc - 1`` origins). The combined MSD is the mean over all origins of all segments, i.e. the origin-weighted
    mean of the segments' MSDs; the list of origin counts goes to
    :func:`aiida_sseff.analysis.diffusion.fit_diffusion_from_msd_curve` (``n_time_origins=``), which treats the segments
    as independent samples. All segments must have the same shape (same Nc and groups).
    """
    if not blocks:
        raise ValueError('combine_gpumd_msd: no segments')
    shapes = {np.shape(msd) for msd, _ in blocks}
    if len(shapes) != 1:
        raise ValueError(f'combine_gpumd_msd: segments differ in shape {sorted(shapes)} (Nc or groups changed)')
    origins = [int(n) for _, n in blocks]
    if any(n < 1 for n in origins):
        raise ValueError(f'combine_gpumd_msd: every segment needs at least one time origin, got {origins}')
    weights = np.array(origins, dtype=float)
    stacked = np.array([np.asarray(msd, dtype=float) for msd, _ in blocks])
    combined = np.tensordot(weights / weights.sum(), stacked, axes=1)
    return combined, origins
