"""GPUMD's compute_msd re-implemented (aiida_sseff.analysis.gpumd_msd) and the error model of D fitted to its output.

The literal translation below follows src/measure/msd.cu (MSD::process / MSD::write, GPUMD 5.x) step by step: a
sample after step s when (s + 1) % interval == 0, the ring-buffer slot sample_step % Nc, correlation events once
sample_step >= Nc - 1 adding |r_now - r_slot|² to msd[(slot_now - slot) mod Nc], normalisation by atoms × origins.
"""

from __future__ import annotations

import numpy as np
import pytest

from aiida_sseff.analysis.diffusion import fit_diffusion_from_msd_curve
from aiida_sseff.analysis.gpumd_msd import combine_gpumd_msd, gpumd_msd, gpumd_time_origins


def msd_cu_literal(trajectory, sample_interval, n_correlation, groups, n_groups):
    """msd.cu, statement by statement, on a trajectory with one frame per MD step (frame s = after step s)."""
    n_steps, n_atoms, _ = trajectory.shape
    buffer = np.zeros((n_correlation, n_atoms, 3))
    msd = np.zeros((n_groups, n_correlation, 3))
    n_origins = 0
    for step in range(n_steps):
        if (step + 1) % sample_interval != 0:
            continue
        sample_step = step // sample_interval
        correlation_step = sample_step % n_correlation
        buffer[correlation_step] = trajectory[step]
        if sample_step >= n_correlation - 1:
            n_origins += 1
            for bid in range(n_correlation):  # one CUDA block per ring slot
                d2 = (trajectory[step] - buffer[bid]) ** 2
                lag = correlation_step - bid if bid <= correlation_step else correlation_step + n_correlation - bid
                for atom in range(n_atoms):
                    msd[groups[atom], lag] += d2[atom]
    counts = np.bincount(groups, minlength=n_groups)
    return msd / (counts[:, None, None] * n_origins), n_origins


def test_gpumd_msd_equals_msd_cu_step_by_step():
    rng = np.random.default_rng(7)
    n_steps, n_atoms, interval, nc = 95, 7, 3, 8  # 31 samples (the last 2 steps are not sampled), 24 origins
    trajectory = np.cumsum(rng.normal(size=(n_steps, n_atoms, 3)), axis=0)
    groups = np.array([0, 1, 0, 2, 1, 0, 2])
    expected, origins = msd_cu_literal(trajectory, interval, nc, groups, 3)
    sampled = trajectory[interval - 1::interval]  # the steps GPUMD samples
    result = gpumd_msd(sampled, nc, dt_sample_ps=0.003, groups=groups)
    assert result.n_time_origins == origins == gpumd_time_origins(31, 8) == 24
    np.testing.assert_allclose(result.msd, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(result.n_atoms_per_group, [3, 2, 2])
    np.testing.assert_allclose(result.time_ps, 0.003 * np.arange(8))
    # sdc = ½ ΔMSD/Δt (MSD::write), row 0 = 0
    np.testing.assert_allclose(result.sdc[:, 1:], 0.5 * np.diff(expected, axis=1) / 0.003, rtol=1e-10)
    assert np.all(result.sdc[:, 0] == 0)


def test_single_origin_and_refusals():
    rng = np.random.default_rng(1)
    positions = np.cumsum(rng.normal(size=(20, 4, 3)), axis=0)
    one = gpumd_msd(positions, 20, 0.1)  # Nc = all samples: the MSD of the last sample against each earlier one
    assert one.n_time_origins == 1
    np.testing.assert_allclose(one.msd[0, 5], ((positions[-1] - positions[-6]) ** 2).mean(axis=0))
    with pytest.raises(ValueError, match='exceeds the 20 samples'):
        gpumd_msd(positions, 21, 0.1)
    with pytest.raises(ValueError, match='Nc'):
        gpumd_time_origins(10, 0)
    assert gpumd_time_origins(10, 11) == 0


def test_combine_segments_is_the_mean_over_all_origins():
    rng = np.random.default_rng(3)
    first, second = (np.cumsum(rng.normal(size=(n, 5, 3)), axis=0) for n in (30, 18))
    a, b = gpumd_msd(first, 6, 0.1), gpumd_msd(second, 6, 0.1)
    combined, origins = combine_gpumd_msd([(a.msd, a.n_time_origins), (b.msd, b.n_time_origins)])
    assert origins == [25, 13]
    # every correlation event of both segments, summed by hand
    total = np.zeros((6, 3))
    for seg in (first, second):
        for end in range(5, len(seg)):
            for k in range(6):
                total[k] += ((seg[end] - seg[end - k]) ** 2).mean(axis=0)
    np.testing.assert_allclose(combined[0], total / 38, rtol=1e-12)
    with pytest.raises(ValueError, match='differ in shape'):
        combine_gpumd_msd([(a.msd, 25), (a.msd[:, :4], 3)])


def _z_scores(n_walkers, n_samples, nc, method, seeds, origins='gpumd'):
    """(D_fit - D)/σ_D for Gaussian random walks (D = 0.5 Å²/ps, 0.1 ps between samples) through GPUMD's MSD."""
    d_true, dt = 0.5, 0.1
    z = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        positions = np.cumsum(rng.normal(scale=np.sqrt(2 * d_true * dt), size=(n_samples, n_walkers, 3)), axis=0)
        out = gpumd_msd(positions, nc, dt)
        stats = {'n_time_origins': out.n_time_origins} if origins == 'gpumd' else {'total_time_ps': n_samples * dt}
        fit = fit_diffusion_from_msd_curve(out.time_ps, out.msd[0], start_fraction=0.1, end_fraction=1.0,
                                           n_atoms=n_walkers, method=method, max_fit_lags=60, **stats)
        z.append((fit.d - d_true) / fit.d_err)
    return np.array(z)


@pytest.mark.slow
@pytest.mark.parametrize('method', ['ols', 'gls'])
@pytest.mark.parametrize('nc', [150, 300, 15])
def test_reported_error_matches_the_scatter_over_seeds(method, nc):
    """The statistical test of issue #8: 120 seeds of 20 walkers, 300 samples, Nc = half, all (one origin) or a
    twentieth of the samples. The spread of z = (D - D_true)/σ must be 1; over 120 seeds its sampling error is
    1/sqrt(240) ≈ 6.5 %, so [0.8, 1.25] is a ~3σ band. Measured: 0.94-1.02 (/tmp runs of 200 seeds)."""
    z = _z_scores(20, 300, nc, method, seeds=120)
    assert 0.8 < z.std() < 1.25, f'std(z) = {z.std():.3f}'
    assert abs(z.mean()) < 0.35, f'mean(z) = {z.mean():.3f}'  # 3 × 1/sqrt(120) ≈ 0.27, plus the small OLS bias


@pytest.mark.slow
def test_full_trajectory_error_model_is_wrong_for_one_origin():
    """Why the number of origins matters: the old GPUMD branch wrote Nc = all samples and fitted with the
    full-trajectory model (n = N·T/t). With one origin that reports errors about 2× too small (measured std(z)
    2.2-2.8 with 200 seeds), which the origin-aware model corrects (previous test)."""
    z = _z_scores(20, 300, 300, 'gls', seeds=120, origins='all')
    assert z.std() > 1.6, f'std(z) = {z.std():.3f}'


def test_fit_needs_a_consistent_origin_model():
    t = np.arange(50) * 0.1
    msd = np.column_stack([t, t, t])
    with pytest.raises(ValueError, match='not both'):
        fit_diffusion_from_msd_curve(t, msd, n_atoms=10, n_time_origins=5, total_time_ps=5.0)
    with pytest.raises(ValueError, match='n_time_origins'):
        fit_diffusion_from_msd_curve(t, msd, n_atoms=10, n_time_origins=0)
    # a perfect line: D = 1/2 Å²/ps in every direction, with a finite, positive error
    fit = fit_diffusion_from_msd_curve(t, msd, n_atoms=10, n_time_origins=[40, 12], method='gls')
    assert fit.d == pytest.approx(0.5, rel=1e-9)  # MSD_total = 3t → slope 3 Å²/ps, D = slope/6
    assert np.isfinite(fit.d_err) and fit.d_err > 0
