"""Tests of aiida_sseff.analysis.diffusion: D with honest errors, the GPUMD tutorial number, kinisi cross-checks."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from aiida_sseff.analysis.diffusion import (
    analyse_transport,
    estimate_collective_diffusion,
    estimate_diffusion,
    fit_diffusion_from_msd_curve,
    fit_window,
    haven_ratio,
    nernst_einstein_conductivity,
)
from aiida_sseff.analysis.msd import framework_drift, unwrap_positions

REFERENCE = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'reference'
LLZO_MSD = REFERENCE / 'llzo' / 'gpumd_md_1000K' / 'msd.out'


@pytest.fixture
def llzo_msd_out():
    if not LLZO_MSD.is_file():
        pytest.skip(f'real GPUMD reference data not found at {LLZO_MSD} (shared/reference beside the repository)')
    return LLZO_MSD


def _walk(seed, n_frames, n_atoms, d=0.5, dt=0.1):
    """Gaussian random walk with diffusion coefficient d (Å²/ps), frames dt (ps) apart."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(scale=np.sqrt(2 * d * dt), size=(n_frames, n_atoms, 3)), axis=0)


# ------------------------------------------------------------------------------------------ GPUMD tutorial number
@pytest.mark.reference
def test_gpumd_tutorial_d_total_from_msd_out(llzo_msd_out):
    """D(1000 K) of Li in LLZO from GPUMD's own msd.out, computed the tutorial's way.

    Reference: shared/reference/llzo/gpumd_md_1000K/README.md (GPUMD-Tutorials, example 24): D_total =
    9.667e-6 cm²/s, D_x/y/z = 9.627/9.680/9.693e-6 cm²/s, σ_total = 448.0 mS/cm with N = 3584, V = 143800.502 Å³,
    T = 999.960 K. The tutorial ran GPUMDkit's calc_ion_conductivity.py, which fits a straight line (np.polyfit)
    to MSD_x+MSD_y+MSD_z over rows int(0.1·n) … int(0.4·n)-1 of msd.out (t = 10.0 … 39.9 ps here) and divides the
    slope by 6 (by 2 per direction): the defaults of fit_diffusion_from_msd_curve.
    """
    from aiida_sseff.io.gpumd import read_msd

    block = read_msd(llzo_msd_out)[0]
    fit = fit_diffusion_from_msd_curve(block.time, block.msd_xyz(0))  # Li = group 0, columns 2-4
    assert fit.t_start_ps == pytest.approx(10.0) and fit.t_end_ps == pytest.approx(39.9)
    assert fit.d_cm2_s == pytest.approx(9.667e-6, rel=0.01)
    np.testing.assert_allclose(fit.d_xyz_cm2_s, [9.627e-6, 9.680e-6, 9.693e-6], rtol=0.01)
    assert np.isnan(fit.d_err)  # a bare curve carries no sample count: no error is invented
    sigma, _ = nernst_einstein_conductivity(fit.d_cm2_s, 3584, 143800.502, 999.960)
    assert sigma * 1e3 == pytest.approx(448.0, rel=0.01)  # mS/cm
    # with the sample count (3584 Li, 1 ns run) a Gaussian-statistics error: small but not the OLS one
    fit_err = fit_diffusion_from_msd_curve(block.time, block.msd_xyz(0), n_atoms=3584, total_time_ps=1000.0)
    assert fit_err.method == 'ols+sandwich'
    assert fit_err.d == fit.d
    assert 0.001 < fit_err.d_err / fit_err.d < 0.05
    gls = fit_diffusion_from_msd_curve(block.time, block.msd_xyz(0), n_atoms=3584, total_time_ps=1000.0,
                                       method='gls')
    assert abs(gls.d - fit.d) < 2 * fit_err.d_err


def test_nernst_einstein_hand_computed():
    # σ = N q² D / (V k_B T); N = 1 ion of charge 2 in 1000 Å³ at 500 K with D = 1e-5 cm²/s:
    # 1e27 m⁻³ · (2·1.602176634e-19 C)² · 1e-9 m²/s / (1.380649e-23 J/K · 500 K) = 14.8740 S/m = 0.148740 S/cm
    sigma, err = nernst_einstein_conductivity(1e-5, 1, 1000.0, 500.0, charge=2, d_err_cm2_s=1e-6,
                                              volume_err_A3=20.0)
    assert sigma == pytest.approx(0.148740, rel=1e-4)
    assert err == pytest.approx(sigma * np.hypot(0.1, 0.02), rel=1e-9)
    with pytest.raises(ValueError, match='positive'):
        nernst_einstein_conductivity(1e-5, 0, 1000.0, 500.0)


def test_haven_ratio_propagation():
    h, err = haven_ratio(1.0, 0.1, 2.0, 0.4)
    assert h == 0.5
    assert err == pytest.approx(0.5 * np.hypot(0.1, 0.2))


# ----------------------------------------------------------------------------------------- synthetic random walks
def test_random_walk_d_recovered_with_calibrated_errors():
    """Known D = 0.5 Å²/ps: the stated error covers the truth about as often as a standard error should."""
    d_true = 0.5
    z_gls, z_ols, ratio_to_naive = [], [], []
    for seed in range(20):
        x = _walk(seed, 400, 32, d_true)
        fit = estimate_diffusion(x, 0.1)
        z_gls.append((fit.d - d_true) / fit.d_err)
        ols = estimate_diffusion(x, 0.1, method='ols')
        z_ols.append((ols.d - d_true) / ols.d_err)
        # the plain least-squares error treats the MSD points as independent: far too small
        t = np.arange(400)[40:200] * 0.1
        msd = ((x[40:200] - x[0]) ** 2).sum(axis=2).mean(axis=1)  # any curve will do for the naive error
        naive = np.sqrt(np.polyfit(t, msd, 1, cov=True)[1][0, 0]) / 6
        ratio_to_naive.append(fit.d_err / naive)
    for z in (np.array(z_gls), np.array(z_ols)):
        # a calibrated error gives RMS(z) ≈ 1 and ~95 % within 2σ; loose bounds for 20 seeds
        assert 0.6 < np.sqrt(np.mean(z**2)) < 1.6
        assert np.mean(np.abs(z) < 2) >= 0.8
        assert abs(np.mean(z)) < 0.8
    assert np.median(ratio_to_naive) > 3


def test_directional_and_block_estimates():
    d_true = 0.5
    x = _walk(100, 1000, 50, d_true)
    fit = estimate_diffusion(x, 0.1)
    assert fit.method == 'gls' and fit.n_points == 64
    assert fit.t_start_ps == pytest.approx(10.0) and fit.t_end_ps == pytest.approx(49.9)
    assert np.all(np.abs(fit.d_xyz - d_true) < 3 * fit.d_xyz_err)
    assert np.all(fit.d_xyz_err > fit.d_err)  # one direction has a third of the data
    assert fit.d_cm2_s == pytest.approx(fit.d * 1e-4)
    blocks = estimate_diffusion(x, 0.1, method='blocks', n_blocks=5)
    assert blocks.details['block_slopes'].shape == (5, 4)
    assert abs(blocks.d - d_true) < 4 * blocks.d_err  # Student t with 4 dof: wide tails
    with pytest.raises(ValueError, match="method: expected 'gls', 'ols' or 'blocks'"):
        estimate_diffusion(x, 0.1, method='mcmc')
    with pytest.raises(ValueError, match='dt_ps'):
        estimate_diffusion(x, 0.0)


def test_fit_window():
    assert fit_window(1000, 0.1, 0.4) == slice(100, 400)
    t = np.arange(100) * 0.5
    assert fit_window(100, time_ps=t, t_start_ps=5.0, t_end_ps=20.0) == slice(10, 41)
    with pytest.raises(ValueError, match='need at least 3'):
        fit_window(10, 0.1, 0.3)
    with pytest.raises(ValueError, match='start_fraction < end_fraction'):
        fit_window(100, 0.5, 0.2)


def test_collective_diffusion_and_haven_ratio():
    """Independent ions: D_sigma = D*, H = 1. Ions moving in rigid pairs: D_sigma = 2 D*, H = 1/2."""
    d_true, n_frames = 0.5, 1000
    z = []
    for seed in range(10):
        x = _walk(200 + seed, n_frames, 32, d_true)
        coll = estimate_collective_diffusion(x.sum(axis=1), 32, 0.1)
        z.append((coll.d - d_true) / coll.d_err)
    assert np.sqrt(np.mean(np.square(z))) < 2.0
    pairs = _walk(300, n_frames, 64, d_true)
    li = np.concatenate([pairs, pairs], axis=1)
    framework = np.full((n_frames, 4, 3), 3.0) + np.random.default_rng(1).normal(scale=0.05, size=(n_frames, 4, 3))
    symbols = ['Li'] * 128 + ['O'] * 4
    res = analyse_transport(np.concatenate([li, framework], axis=1), symbols, 0.1, temperature_K=800.0,
                            volume_A3=5000.0)
    assert abs(res.tracer.d - d_true) < 3 * res.tracer.d_err
    assert abs(res.haven_ratio - 0.5) < 3 * res.haven_ratio_err
    assert res.haven_ratio_err < 0.25
    assert res.sigma_collective / res.sigma_ne == pytest.approx(1 / res.haven_ratio)
    sigma_ref, _ = nernst_einstein_conductivity(res.tracer.d_cm2_s, 128, 5000.0, 800.0)
    assert res.sigma_ne == pytest.approx(sigma_ref)


# ------------------------------------------------------------------------------- cross-check against kinisi (data
# shipped in the kinisi wheel, written by kinisi's authors)
def _kinisi_inputs():
    kinisi = pytest.importorskip('kinisi')
    return Path(os.path.dirname(kinisi.__file__)) / 'tests' / 'inputs'


def _kinisi_d(analyzer_factory, lag_times_ps):
    import scipp as sc

    analyzer = analyzer_factory(sc.array(dims=['time interval'], values=lag_times_ps, unit='ps'))
    analyzer.diffusion(lag_times_ps[0] * sc.Unit('ps'), progress=False, random_state=np.random.RandomState(0))
    return float(np.mean(analyzer.D.values)), float(np.std(analyzer.D.values))


def _ours(frac, cells, symbols, dt_ps, n_lags):
    symbols = np.asarray(symbols)
    pos = unwrap_positions(frac, cells)
    li = np.flatnonzero(symbols == 'Li')
    # kinisi removes the unweighted mean displacement of all other atoms: same here (masses=None)
    drift = framework_drift(pos, None, np.flatnonzero(symbols != 'Li'))
    fit = estimate_diffusion(pos, dt_ps, li, drift, max_fit_lags=n_lags)
    m = frac.shape[0]
    lags = fit.details['lags']
    assert lags[0] == int(0.1 * m) and lags[-1] == int(0.5 * m) - 1
    return fit, pos, li, drift


def test_kinisi_crosscheck_argyrodite_xdatcar():
    """Li6PS5Cl (kinisi's example_XDATCAR.gz: 140 frames, 2 fs × 50 steps = 0.1 ps apart, 192 Li).

    Same lags for both: 20 evenly spaced in 10 %–50 % of the trajectory. kinisi 2.1's covariance uses the
    measured variance lag by lag and is not positive definite with many lags (its D then drifts, e.g. for LiPS
    below with 40 lags); with 20 lags it is stable, and ours is stable for any number of lags.
    """
    inputs = _kinisi_inputs()  # skips when kinisi is not installed
    from kinisi.analyze import DiffusionAnalyzer
    from pymatgen.io.vasp.outputs import Xdatcar

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        xd = Xdatcar(inputs / 'example_XDATCAR.gz')
    frac = np.array([s.frac_coords for s in xd.structures])
    cells = np.array([s.lattice.matrix for s in xd.structures])
    symbols = [str(site.specie) for site in xd.structures[0]]
    fit, *_ = _ours(frac, cells, symbols, 0.1, 20)
    lag_times = fit.details['lags'] * 0.1
    import scipp as sc

    def factory(dt):
        return DiffusionAnalyzer.from_xdatcar(xd, specie='Li', time_step=2.0 * sc.Unit('fs'),
                                              step_skip=50 * sc.Unit('dimensionless'), dt=dt, progress=False)

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        d_k, err_k = _kinisi_d(factory, lag_times)
    assert abs(fit.d_cm2_s - d_k) < err_k
    assert 0.4 < fit.d_err_cm2_s / err_k < 2.5
    # more MSD points do not move our estimate
    fit64, *_ = _ours(frac, cells, symbols, 0.1, 64)
    assert abs(fit64.d - fit.d) < 0.3 * fit.d_err


@pytest.mark.slow
def test_kinisi_crosscheck_lips_triclinic():
    """Li7P3S11 (kinisi's LiPS.exyz, 84 MB: 200 frames 0.02 ps apart, 896 Li, strongly skewed triclinic cell)."""
    inputs = _kinisi_inputs()  # skips when kinisi is not installed
    import scipp as sc
    from ase.io import iread
    from kinisi.analyze import DiffusionAnalyzer

    path = inputs / 'LiPS.exyz'
    frames = list(iread(path, index=':', format='extxyz'))
    frac = np.array([f.get_scaled_positions(wrap=True) for f in frames])
    cells = np.array([f.cell.array for f in frames])
    symbols = frames[0].get_chemical_symbols()
    fit, pos, li, drift = _ours(frac, cells, symbols, 0.02, 20)
    # kinisi's own stored MSD of this file (LiPS_msd.npy: older kinisi, lags 1 … 200, no drift correction):
    # the early MSD agrees to 1 % (drift correction and the origin sampling differ slightly)
    from aiida_sseff.analysis.msd import msd_fft

    stored = np.load(inputs / 'LiPS_msd.npy')
    ours_msd = msd_fft(pos, li).sum(axis=1)
    np.testing.assert_allclose(ours_msd[1:21], stored[:20], rtol=0.01)

    def factory(dt):
        return DiffusionAnalyzer.from_ase(frames, specie='Li', time_step=0.001 * sc.Unit('ps'),
                                          step_skip=20 * sc.Unit('dimensionless'), dt=dt, progress=False)

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        d_k, err_k = _kinisi_d(factory, fit.details['lags'] * 0.02)
    assert abs(fit.d_cm2_s - d_k) < err_k
    assert 0.4 < fit.d_err_cm2_s / err_k < 2.5
