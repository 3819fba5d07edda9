"""Diffusion coefficients from MSD, with an honest uncertainty; Haven ratio; Nernst–Einstein conductivity.

Pure numpy/scipy, no aiida. Units: time ps, MSD Å², D in Å²/ps internally (1 Å²/ps = 1e-4 cm²/s; every result
object also exposes cm²/s), volume Å³, temperature K, charge in units of e, conductivity S/cm.

Uncertainty
-----------
MSD points at different lags are strongly correlated (they share the same displacements), so the ordinary
least-squares (OLS) standard error of the slope is far too small and is never reported here. Estimators:

``'gls'`` (default)
    Generalised least squares with the MSD covariance approximated as in kinisi (McCluskey et al.,
    J. Chem. Theory Comput. 2024, doi:10.1021/acs.jctc.4c01249; ``kinisi.diffusion.Diffusion``):
    ``Var(MSD_i) = Var(s_i)/n_i`` with ``s`` the squared displacement of one particle over lag ``t_i`` and
    ``n_i = N·T/t_i`` the number of *independent* samples (N particles, trajectory length T), and
    ``Cov(MSD_i, MSD_j) = Var(s_i)/n_j`` for ``t_i ≤ t_j``. kinisi samples that likelihood by MCMC; for a
    straight line the posterior is Gaussian and the GLS estimate with covariance ``(XᵀΣ⁻¹X)⁻¹`` is its mean and
    spread. Two deliberate differences, both found necessary in tests on random walks (coverage checked over
    40 seeds for N = 1 … 50 particles): ``Var(s_i)`` is written ``κ·m(t_i)²`` with ``m`` the fitted line
    (iterated) instead of the noisy data, and ``κ = Var(s)/MSD²`` is one constant, the median of its measured
    values over the window (Gaussian: 2 per direction, 2/3 in 3-D; larger for hopping ions). Lag-by-lag
    measured variances gave errors up to 7× too small for a single particle (the collective MSD).
``'ols'``
    The least-squares slope, with its standard error from the same covariance by the sandwich formula
    ``(XᵀX)⁻¹XᵀΣX(XᵀX)⁻¹`` (less efficient than GLS, equally honest).
``'blocks'``
    Block averaging: the trajectory is cut into ``n_blocks`` contiguous blocks, D is fitted in each with the same
    window fractions, and the result is the block mean with standard error ``std/√n`` (use Student's t with
    n−1 degrees of freedom for intervals: with 5 blocks the error itself is uncertain by ~35 %).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import constants as sc_const
from scipy.linalg import solve_triangular

from aiida_sseff.units import ANGSTROM2_PER_PS_TO_CM2_PER_S

from .msd import (
    MSDResult,
    _check_positions,
    _species_indices,
    _sum_positions,
    compute_msd,
    framework_drift,
    msd_fft,
)

__all__ = [
    'ANGSTROM2_PER_PS_TO_CM2_PER_S',
    'DiffusionFit',
    'TransportResult',
    'analyse_transport',
    'estimate_collective_diffusion',
    'estimate_diffusion',
    'fit_diffusion_from_msd_curve',
    'fit_window',
    'haven_ratio',
    'kinisi_covariance',
    'nernst_einstein_conductivity',
]



def _single_thread_blas():
    """Run the small dense linear algebra (≤ 200×200) on one BLAS thread: threads only add overhead there, and
    on a loaded machine a threaded Cholesky of 200×200 was measured 50× slower. No-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api='blas')


@dataclass
class DiffusionFit:
    """Result of a diffusion fit. D values in Å²/ps; the ``*_cm2_s`` properties convert to cm²/s.

    Attributes
    ----------
    d_xyz, d_xyz_err : (3,) D_x, D_y, D_z = slope/2 of each directional MSD and their standard errors.
    d, d_err : total D = slope/6 of the total MSD (3-D), and its standard error.
    method : how the estimate and its error were obtained (``'gls'``, ``'ols+sandwich'``, ``'blocks'``,
        ``'ols'`` = no uncertainty available, errors are NaN).
    t_start_ps, t_end_ps : the fit window (lag times, ps).
    n_points : number of MSD points entering the fit.
    intercept : intercept of the total-MSD line (Å²).
    details : extra diagnostics (block values, lags used, ...).
    """

    d_xyz: np.ndarray
    d_xyz_err: np.ndarray
    d: float
    d_err: float
    method: str
    t_start_ps: float
    t_end_ps: float
    n_points: int
    intercept: float = float('nan')
    details: dict = field(default_factory=dict)

    @property
    def d_cm2_s(self) -> float:
        """Total D in cm²/s."""
        return self.d * ANGSTROM2_PER_PS_TO_CM2_PER_S

    @property
    def d_err_cm2_s(self) -> float:
        """Standard error of the total D in cm²/s."""
        return self.d_err * ANGSTROM2_PER_PS_TO_CM2_PER_S

    @property
    def d_xyz_cm2_s(self) -> np.ndarray:
        """D_x, D_y, D_z in cm²/s."""
        return np.asarray(self.d_xyz) * ANGSTROM2_PER_PS_TO_CM2_PER_S

    @property
    def d_xyz_err_cm2_s(self) -> np.ndarray:
        """Standard errors of D_x, D_y, D_z in cm²/s."""
        return np.asarray(self.d_xyz_err) * ANGSTROM2_PER_PS_TO_CM2_PER_S


def fit_window(n_lags: int, start_fraction: float = 0.1, end_fraction: float = 0.5, time_ps=None,
               t_start_ps: float | None = None, t_end_ps: float | None = None) -> slice:
    """Row slice of an MSD curve used for the linear fit.

    By fractions: rows ``int(start_fraction·n) … int(end_fraction·n) - 1`` (the convention of GPUMDkit's
    ``calc_ion_conductivity.py``). The first rows are skipped because the MSD there is ballistic/vibrational,
    the last ones because few independent time origins remain. Absolute limits ``t_start_ps``/``t_end_ps``
    (inclusive, need ``time_ps``) override the fractions.
    """
    if not 0 <= start_fraction < end_fraction <= 1:
        raise ValueError(f'fit window: expected 0 <= start_fraction < end_fraction <= 1, '
                         f'got {start_fraction}, {end_fraction}.')
    lo, hi = int(start_fraction * n_lags), int(end_fraction * n_lags)
    if t_start_ps is not None or t_end_ps is not None:
        if time_ps is None:
            raise ValueError('fit window: t_start_ps/t_end_ps need the time axis.')
        time_ps = np.asarray(time_ps)
        if t_start_ps is not None:
            lo = int(np.searchsorted(time_ps, t_start_ps - 1e-9 * max(1.0, abs(t_start_ps)), side='left'))
        if t_end_ps is not None:
            hi = int(np.searchsorted(time_ps, t_end_ps + 1e-9 * max(1.0, abs(t_end_ps)), side='right'))
    lo = max(lo, 1) if n_lags > 2 else lo  # lag 0 (MSD = 0 by definition) carries no information
    if hi - lo < 3:
        raise ValueError(f'fit window: only {max(hi - lo, 0)} MSD points between rows {lo} and {hi} '
                         f'(of {n_lags}); need at least 3.')
    return slice(lo, hi)


def _ols(t, y):
    """Slope and intercept of y = a t + b (plain least squares)."""
    a, b = np.polyfit(t, y, 1)
    return a, b


def kinisi_covariance(var_s, n_samples, cond_max: float = 1e12) -> np.ndarray:
    """Covariance matrix of MSD points following kinisi (Å⁴).

    ``Σ_ij = Var(s_i)/n_j`` for ``i <= j`` (lags increasing, so ``n`` decreasing), symmetric; ``var_s`` is the
    variance of the squared displacement of one particle at each lag, ``n_samples`` the number of independent
    samples (``N·T/t``). A kernel ``f(min)·g(max)`` is positive semi-definite only when ``f/g = Var(s_i)·n_i``
    is non-decreasing, which noise or a large vibrational offset can break; ``Var(s_i)·n_i`` is therefore
    replaced by its running maximum (this only raises variances). Eigenvalues below ``λ_max/cond_max`` are then
    raised to that floor (kinisi's minimum-eigenvalue reconditioning).
    """
    var_s = np.asarray(var_s, dtype=float)
    n = np.asarray(n_samples, dtype=float)
    if np.any(np.diff(n) > 0):
        raise ValueError('kinisi_covariance: n_samples must not increase with the lag.')
    var_s = np.maximum.accumulate(np.maximum(var_s, 0.0) * n) / n
    i, j = np.meshgrid(np.arange(var_s.size), np.arange(var_s.size), indexing='ij')
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    cov = var_s[lo] / n[hi]
    try:  # cheap path: already well conditioned (the Cholesky diagonal bounds the condition number from below)
        diag = np.diag(np.linalg.cholesky(cov))
        if (diag.min() / diag.max()) ** 2 > 1e3 / cond_max:
            return cov
    except np.linalg.LinAlgError:
        pass
    w, v = np.linalg.eigh(cov)
    floor = w.max() / cond_max
    if w.min() < floor:
        w = np.maximum(w, floor)
        cov = (v * w) @ v.T
        cov = 0.5 * (cov + cov.T)
    return cov


def _gls(t, y, cov):
    """GLS straight line. Returns slope, intercept, covariance of (slope, intercept)."""
    x = np.column_stack([t, np.ones_like(t)])
    # whitening by the Cholesky factor (Σ is positive definite after reconditioning)
    chol = np.linalg.cholesky(cov)
    xw = solve_triangular(chol, x, lower=True)
    yw = solve_triangular(chol, y, lower=True)
    cov_beta = np.linalg.inv(xw.T @ xw)
    beta = cov_beta @ xw.T @ yw
    return beta[0], beta[1], cov_beta


def _ols_sandwich(t, y, cov):
    """OLS straight line with the sandwich covariance (XᵀX)⁻¹ XᵀΣX (XᵀX)⁻¹ for correlated data."""
    x = np.column_stack([t, np.ones_like(t)])
    xtx_inv = np.linalg.inv(x.T @ x)
    beta = xtx_inv @ x.T @ y
    cov_beta = xtx_inv @ x.T @ cov @ x @ xtx_inv
    return beta[0], beta[1], cov_beta


def _subsample(sl: slice, max_points: int) -> np.ndarray:
    idx = np.arange(sl.start, sl.stop)
    if idx.size > max_points:
        idx = np.unique(np.round(np.linspace(idx[0], idx[-1], max_points)).astype(int))
    return idx


def _kappa(var_s, msd) -> np.ndarray:
    """Non-Gaussian ratio ``κ = Var(s)/MSD²`` over the window, as one constant (the median), repeated per lag.

    Measured variances are noisy, and a covariance built from them lag by lag makes the GLS unstable for few
    particles (tested: with a single particle, as for the collective MSD, the errors came out 7× too small).
    A constant κ does not move the GLS estimate at all (it scales Σ) and only sets the size of the error;
    the ratio is far less noisy than the variance itself because both fluctuate together.
    """
    kappa = np.asarray(var_s) / np.maximum(np.asarray(msd), 1e-300) ** 2
    return np.full(kappa.shape, float(np.median(kappa)))


def _gls_iterative(t, y, kappa, n_samples, estimator: str, n_iter: int = 4):
    """Straight-line fit with the kinisi covariance evaluated on the *model* line, ``Var(s_i) = κ_i·m(t_i)²``.

    Using the fitted line rather than the noisy data in the covariance avoids the well-known bias of
    data-weighted fits (points that fluctuate low would get small variances and pull the slope down) and
    keeps the matrix positive definite. A few fixed-point iterations from the OLS line converge.
    """
    a, b = _ols(t, y)
    # the variance model never drops below 5 % of the mean MSD of the window: for diffusive data the line starts
    # higher (the window begins after 10 % of the lags), and a line through zero must not make variances vanish
    floor = 0.05 * max(float(np.mean(np.abs(y))), 1e-300)
    line = (a, b)
    result = None
    for _ in range(n_iter if estimator == 'gls' else 1):
        # a negative intercept is noise (vibrations only add to the diffusive 6Dt): the variance model keeps the
        # diffusive part, else single-origin MSDs (GPUMD with Nc = all samples) got near-zero variances at short lags
        model = np.maximum(line[0] * t + max(line[1], 0.0), floor)
        cov = kinisi_covariance(kappa * model**2, n_samples)
        result = _gls(t, y, cov) if estimator == 'gls' else _ols_sandwich(t, y, cov)
        if result[0] <= 0 < line[0]:
            # the variance model follows the fit only while the slope stays positive: a line through zero would make
            # the variances vanish and the fit collapse onto it (seen for one direction of 20 random walkers)
            break
        line = result[:2]
    if estimator == 'gls':
        # GLS is more efficient only while its covariance model holds; where it lands far from the robust OLS
        # estimate (beyond 4 sandwich errors of that estimate, computed with the same covariance) the model is wrong
        # for these data (seen for 1 in 200 sets of 20 random walkers, a strongly curved MSD): report the OLS one
        robust = _ols_sandwich(t, y, cov)
        if not result[0] > 0 or abs(result[0] - robust[0]) > 4.0 * np.sqrt(robust[2][0, 0]):
            return robust
    return result


def _fit_columns(t, msd4, kappa4, n_samples, method):
    """Fit the 4 columns (x, y, z, total) of ``msd4`` (n, 4). Returns slopes, errs, intercept of total."""
    with _single_thread_blas():
        return _fit_columns_impl(t, msd4, kappa4, n_samples, method)


def _fit_columns_impl(t, msd4, kappa4, n_samples, method):
    slopes, errs, intercept = np.zeros(4), np.zeros(4), np.nan
    for c in range(4):
        y = msd4[:, c]
        if method == 'ols':
            a, b = _ols(t, y)
            err = np.nan
        else:
            a, b, cb = _gls_iterative(t, y, kappa4[:, c], n_samples, method)
            err = float(np.sqrt(cb[0, 0]))
        slopes[c], errs[c] = a, err
        if c == 3:
            intercept = b
    return slopes, errs, intercept


def _to_fit(slopes, errs, intercept, method, t, n_points, details) -> DiffusionFit:
    dims = np.array([2.0, 2.0, 2.0, 6.0])
    d, e = slopes / dims, errs / dims
    return DiffusionFit(d_xyz=d[:3], d_xyz_err=e[:3], d=float(d[3]), d_err=float(e[3]), method=method,
                        t_start_ps=float(t[0]), t_end_ps=float(t[-1]), n_points=int(n_points),
                        intercept=float(intercept), details=details)


def _origin_span_factor(x) -> np.ndarray:
    """Independent samples per particle in an MSD at lag ``t`` averaged over origins spread uniformly over a span
    ``L = x·t``: ``Var(s)/Var(mean of s)`` for Brownian (Gaussian) displacements, where the squared displacements of
    origins ``u`` apart have covariance ``∝ (t - |u|)²`` for ``|u| < t``. Integrating over the span:
    ``1/(1 - 2x/3 + x²/6)`` for ``x ≤ 1`` and ``6x²/(4x - 1)`` for ``x ≥ 1`` (1 for one origin, 2 at ``x = 1``,
    ``1.5·x`` for long spans: 1.5× the ``T/t`` of kinisi's approximation, whose errors come out ~20 % too large there)."""
    x = np.asarray(x, dtype=float)
    short = 1.0 / (1.0 - 2.0 * x / 3.0 + x**2 / 6.0)
    long = 6.0 * x**2 / np.maximum(4.0 * x - 1.0, 1e-300)
    return np.where(x <= 1.0, short, long)


def _independent_samples(t, idx, n_atoms, total_time_ps, n_time_origins) -> np.ndarray:
    """Independent samples at the lags ``t[idx]`` (see :func:`fit_diffusion_from_msd_curve`)."""
    lags = t[idx]
    if n_time_origins is None:
        if not total_time_ps > 0:
            raise ValueError(f'total_time_ps must be positive, got {total_time_ps}.')
        return n_atoms * total_time_ps / lags
    origins = np.atleast_1d(np.asarray(n_time_origins, dtype=float))
    if origins.ndim != 1 or origins.size == 0 or np.any(origins < 1):
        raise ValueError(f'n_time_origins: expected a positive count (or one per segment), got {n_time_origins!r}.')
    if t.size < 2 or not t[1] > t[0]:
        raise ValueError('n_time_origins needs an increasing time axis (its spacing is the sample interval).')
    spans = (origins - 1.0) * (t[1] - t[0])  # origins of one segment lie one sample interval apart
    return n_atoms * np.sum(_origin_span_factor(spans[:, None] / lags[None, :]), axis=0)


def fit_diffusion_from_msd_curve(
    time_ps,
    msd_xyz,
    start_fraction: float = 0.1,
    end_fraction: float = 0.4,
    t_start_ps: float | None = None,
    t_end_ps: float | None = None,
    n_atoms: int | None = None,
    total_time_ps: float | None = None,
    n_time_origins: int | Sequence[int] | None = None,
    method: str = 'ols',
    max_fit_lags: int = 200,
) -> DiffusionFit:
    """D from a precomputed MSD curve (e.g. GPUMD's ``msd.out``), in Å²/ps (``.d_cm2_s`` for cm²/s).

    The default window, rows ``int(0.1·n)`` to ``int(0.4·n)`` (exclusive), and the straight-line least-squares
    slope of ``MSD_x+MSD_y+MSD_z`` divided by 6 (by 2 per direction) are what GPUMDkit's
    ``calc_ion_conductivity.py`` does (the script behind the GPUMD ionic-conductivity tutorial), so
    ``method='ols'`` reproduces the tutorial's numbers.

    A curve alone does not tell how many independent samples it averages, so an uncertainty needs ``n_atoms``
    (atoms averaged) and how the time origins were taken:

    ``n_time_origins`` (GPUMD's ``compute_msd``; see :mod:`aiida_sseff.analysis.gpumd_msd`)
        every lag averages the same ``n_o = n_samples - Nc + 1`` origins, spaced by the sample interval ``Δ``
        (= ``time_ps[1] - time_ps[0]``) over a span ``L = (n_o - 1)·Δ``. Displacements over a lag ``t`` from origins
        closer than ``t`` overlap, so the number of independent samples at lag ``t`` is ``n_atoms·g(L/t)`` with
        ``g`` the exact factor for Gaussian displacements (:func:`_origin_span_factor`): ``n_atoms`` for a single
        origin (``Nc`` = all samples), ``1.5·n_atoms·L/t`` for long spans. A list of counts (segments of a run
        continued after restarts, each with its own ring buffer) adds the segments' samples (independent).
    ``total_time_ps`` (an MSD over every origin of a run of that length, as :func:`estimate_diffusion` computes)
        ``n(t) = n_atoms·T/t`` (kinisi).

    The kinisi covariance ``Σ_ij = Var(s_i)/n(t_j)`` (``t_i ≤ t_j``) is then built with Gaussian displacement
    statistics (``Var(s) = 2·MSD²`` per direction; an underestimate for strongly non-Gaussian hopping, where
    :func:`estimate_diffusion` on the trajectory is better), ``method='ols'`` gets a sandwich error
    (``'ols+sandwich'``) and ``method='gls'`` refits by GLS. Without them errors are NaN.
    The GPUMD form is calibrated in ``tests/analysis/test_gpumd_msd.py`` (random walks through GPUMD's ring buffer:
    the scatter of D over seeds matches the reported error).

    Parameters
    ----------
    time_ps : (n,) lag times in ps (row 0 may be lag 0).
    msd_xyz : (n, 3) MSD in Å² per direction.
    """
    t = np.asarray(time_ps, dtype=float)
    msd = np.asarray(msd_xyz, dtype=float)
    if msd.ndim != 2 or msd.shape[1] != 3 or msd.shape[0] != t.size:
        raise ValueError(f'msd_xyz: expected shape ({t.size}, 3), got {msd.shape}.')
    if method not in ('ols', 'gls'):
        raise ValueError(f"method: expected 'ols' or 'gls', got {method!r}.")
    sl = fit_window(t.size, start_fraction, end_fraction, t, t_start_ps, t_end_ps)
    msd4 = np.column_stack([msd, msd.sum(axis=1)])
    if n_time_origins is not None and total_time_ps is not None:
        raise ValueError('give either n_time_origins (GPUMD compute_msd) or total_time_ps (all origins), not both.')
    have_stats = n_atoms is not None and (total_time_ps is not None or n_time_origins is not None)
    if n_atoms is not None and not n_atoms >= 1:
        raise ValueError(f'n_atoms must be >= 1, got {n_atoms}.')
    if not have_stats:
        if method == 'gls':
            raise ValueError("method='gls' needs n_atoms and n_time_origins or total_time_ps (to build the MSD "
                             'covariance).')
        tt = t[sl]
        slopes, errs, icpt = _fit_columns(tt, msd4[sl], None, None, 'ols')
        return _to_fit(slopes, errs, icpt, 'ols', tt, tt.size, {'note': 'no uncertainty: n_atoms/total_time unknown'})
    # OLS point estimate on every row of the window (as GPUMDkit); the covariance on a subsample of rows
    tt = t[sl]
    slopes, _, icpt = _fit_columns(tt, msd4[sl], None, None, 'ols')
    idx = _subsample(sl, max_fit_lags)
    # Gaussian displacements: Var(Δx²) = 2 MSD_x²; Var(|Δr|²) = 2 Σ_d MSD_d²  ->  κ = Var/MSD²
    # (one constant κ for the total, the median over the window: a κ that varies lag by lag makes Var(s)·n flat in
    # places, and the GLS then trusts those increments exactly -- errors 1e6× too small for a single-origin MSD)
    m_idx = msd[idx]
    kappa_total = 2.0 * (m_idx**2).sum(axis=1) / np.maximum(m_idx.sum(axis=1), 1e-300) ** 2
    kappa4 = np.column_stack([np.full((idx.size, 3), 2.0), np.full(idx.size, float(np.median(kappa_total)))])
    n_samp = _independent_samples(t, idx, n_atoms, total_time_ps, n_time_origins)
    if method == 'gls' and n_atoms < 5:
        # a curve of one or a few ions is far from Gaussian (χ² with few degrees of freedom): the GLS weights built on
        # the Gaussian κ are unreliable there (random-walk tests gave absurd errors for one ion), the sandwich is not
        method = 'ols'
    if method == 'gls':
        slopes, errs, icpt = _fit_columns(t[idx], msd4[idx], kappa4, n_samp, 'gls')
        used = 'gls'
    else:
        # sandwich error of the full-window OLS estimator, approximated on the subsampled rows
        _, errs, _ = _fit_columns(t[idx], msd4[idx], kappa4, n_samp, 'ols+sandwich')
        used = 'ols+sandwich'
    return _to_fit(slopes, errs, icpt, used, tt, tt.size,
                   {'covariance': 'kinisi, Gaussian Var(s)', 'lags_used': t[idx]})


def _squared_displacement_variance(positions, indices, lags, offset=None, max_samples: int = 200_000,
                                   chunk_atoms: int = 1024) -> np.ndarray:
    """Variance over (atoms, time origins) of Δx², Δy², Δz², |Δr|² at each lag (rows), ``(len(lags), 4)`` Å⁴.

    Origins are subsampled with a stride so that at most ~``max_samples`` (atom, origin) pairs enter each lag:
    only the ratio κ = Var/MSD² is used (as a median over lags), which 2·10⁵ samples fix to a few per mille.
    """
    with _single_thread_blas():
        return _squared_displacement_variance_impl(positions, indices, lags, offset, max_samples, chunk_atoms)


def _squared_displacement_variance_impl(positions, indices, lags, offset, max_samples, chunk_atoms):
    m = positions.shape[0]
    n_atoms = len(indices)
    out = np.zeros((len(lags), 4))
    for row, k in enumerate(lags):
        n_orig = m - k
        stride = max(1, int(np.ceil(n_orig * n_atoms / max_samples)))
        s1 = np.zeros(4)
        s2 = np.zeros(4)
        count = 0
        for start in range(0, n_atoms, chunk_atoms):
            sel = indices[start:start + chunk_atoms]
            a = np.asarray(positions[0:n_orig:stride, sel], dtype=float)
            d = np.asarray(positions[k::stride, sel][: a.shape[0]], dtype=float)
            d -= a
            if offset is not None:
                d -= (offset[k::stride][: a.shape[0]] - offset[0:n_orig:stride])[:, None, :]
            d = d.reshape(-1, 3)
            d *= d
            tot = d[:, 0] + d[:, 1] + d[:, 2]
            s1[:3] += np.einsum('ni->i', d)
            s1[3] += tot.sum()
            s2[:3] += np.einsum('ni,ni->i', d, d)
            s2[3] += tot @ tot
            count += tot.size
        mean = s1 / count
        out[row] = (s2 / count - mean**2) * count / max(count - 1, 1)
    return out


def estimate_diffusion(
    positions,
    dt_ps: float,
    indices=None,
    offset=None,
    method: str = 'gls',
    start_fraction: float = 0.1,
    end_fraction: float = 0.5,
    t_start_ps: float | None = None,
    t_end_ps: float | None = None,
    n_blocks: int = 5,
    max_fit_lags: int = 64,
    msd_xyz=None,
    gaussian: bool = False,
) -> DiffusionFit:
    """Tracer diffusion coefficient D* (Å²/ps) of the atoms ``indices`` with an honest standard error.

    Parameters
    ----------
    positions : (M, N, 3) unwrapped Cartesian positions in Å.
    dt_ps : time between frames (ps).
    indices : atoms to use (default all).
    offset : optional (M, 3) drift (Å) subtracted from every atom (see :func:`~.msd.framework_drift`).
    method : ``'gls'`` (kinisi covariance with measured Var(s)), ``'ols'`` (least-squares slope, error from the
        same covariance by the sandwich formula) or ``'blocks'`` (block averaging); see the module doc.
    start_fraction, end_fraction, t_start_ps, t_end_ps : fit window (:func:`fit_window`); default 10 %–50 % of
        the trajectory length.
    n_blocks : number of blocks for ``'blocks'`` (each block is fitted with the same window *fractions*).
    max_fit_lags : at most this many (evenly spaced) MSD points of the window enter the GLS.
    msd_xyz : optional precomputed ``(M, 3)`` MSD of these atoms (saves one FFT pass).
    gaussian : take ``Var(s)`` as for Gaussian displacements (κ = 2 per direction, 2Σ_d MSD_d²/MSD² in 3-D)
        instead of measuring it; right for a sum over many ions (central limit), used for the collective MSD.
    """
    positions = _check_positions(positions)
    if not dt_ps > 0:
        raise ValueError(f'dt_ps: expected a positive time between frames, got {dt_ps}.')
    m = positions.shape[0]
    idx = np.arange(positions.shape[1]) if indices is None else np.arange(positions.shape[1])[np.asarray(indices)]
    offset = None if offset is None else np.asarray(offset, dtype=float)
    t_all = np.arange(m) * dt_ps
    if method in ('gls', 'ols'):
        if msd_xyz is None:
            msd_xyz = msd_fft(positions, indices=idx, offset=offset)
        sl = fit_window(m, start_fraction, end_fraction, t_all, t_start_ps, t_end_ps)
        lags = _subsample(sl, max_fit_lags)
        msd4 = np.column_stack([msd_xyz, msd_xyz.sum(axis=1)])[lags]
        n_samp = idx.size * (m - 1) / lags
        if gaussian:
            var4 = np.column_stack([2.0 * msd4[:, :3] ** 2, 2.0 * (msd4[:, :3] ** 2).sum(axis=1)])
        else:
            var4 = _squared_displacement_variance(positions, idx, lags, offset)
        kappa4 = np.column_stack([_kappa(var4[:, c], msd4[:, c]) for c in range(4)])
        used = 'gls' if method == 'gls' else 'ols+sandwich'
        slopes, errs, icpt = _fit_columns(t_all[lags], msd4, kappa4, n_samp, used)
        return _to_fit(slopes, errs, icpt, used, t_all[lags], lags.size,
                       {'lags': lags, 'var_s': var4, 'kappa': kappa4[0], 'n_samples': n_samp})
    if method == 'blocks':
        if n_blocks < 2:
            raise ValueError(f'n_blocks: expected at least 2, got {n_blocks}.')
        if msd_xyz is None:
            msd_xyz = msd_fft(positions, indices=idx, offset=offset)
        sl = fit_window(m, start_fraction, end_fraction, t_all, t_start_ps, t_end_ps)
        msd4 = np.column_stack([msd_xyz, msd_xyz.sum(axis=1)])
        full, _, icpt = _fit_columns(t_all[sl], msd4[sl], None, None, 'ols')
        length = m // n_blocks
        block_vals = []
        for b in range(n_blocks):
            fr = slice(b * length, (b + 1) * length)
            off = None if offset is None else offset[fr]
            mb = msd_fft(positions[fr], indices=idx, offset=off)
            tb = np.arange(length) * dt_ps
            # the window scales with the block: the same fractions of the block length
            bsl = fit_window(length, start_fraction, end_fraction)
            mb4 = np.column_stack([mb, mb.sum(axis=1)])
            s, _, _ = _fit_columns(tb[bsl], mb4[bsl], None, None, 'ols')
            block_vals.append(s)
        block_vals = np.array(block_vals)
        # the estimate is the block mean: its standard error is std/sqrt(n). (The full-trajectory fit over a
        # window that scales with the trajectory has about the same relative error as one block, not 1/sqrt(n)
        # of it, so the block error must not be attached to it.)
        mean = block_vals.mean(axis=0)
        errs = block_vals.std(axis=0, ddof=1) / np.sqrt(n_blocks)
        return _to_fit(mean, errs, icpt, 'blocks', tb[bsl], bsl.stop - bsl.start,
                       {'block_slopes': block_vals, 'n_blocks': n_blocks, 'full_trajectory_slopes': full})
    raise ValueError(f"method: expected 'gls', 'ols' or 'blocks', got {method!r}.")


def estimate_collective_diffusion(
    summed_positions,
    n_atoms: int,
    dt_ps: float,
    method: str = 'gls',
    start_fraction: float = 0.1,
    end_fraction: float = 0.5,
    t_start_ps: float | None = None,
    t_end_ps: float | None = None,
    n_blocks: int = 5,
    max_fit_lags: int = 64,
) -> DiffusionFit:
    """Collective ("charge") diffusivity D_sigma (Å²/ps) from the summed displacement of ``n_atoms`` ions.

    ``D_sigma = lim d/dt <|Σ_i Δr_i(t)|²> / (6 N)``; ``summed_positions`` is ``(M, 3)`` = ``Σ_i r_i(t)`` (Å),
    drift-corrected. Only one "particle" contributes, so its uncertainty is much larger than that of D*.
    ``Var(s)`` is taken as Gaussian: the summed displacement of many ions is close to Gaussian (central limit
    theorem), while its variance measured from one trajectory is too noisy (tested: errors too small).
    """
    summed = np.asarray(summed_positions, dtype=float)
    if summed.ndim != 2 or summed.shape[1] != 3:
        raise ValueError(f'summed_positions: expected shape (M, 3), got {summed.shape}.')
    fit = estimate_diffusion(summed[:, None, :], dt_ps, method=method, start_fraction=start_fraction,
                             end_fraction=end_fraction, t_start_ps=t_start_ps, t_end_ps=t_end_ps,
                             n_blocks=n_blocks, max_fit_lags=max_fit_lags, gaussian=True)
    fit.d_xyz = fit.d_xyz / n_atoms
    fit.d_xyz_err = fit.d_xyz_err / n_atoms
    fit.d, fit.d_err = fit.d / n_atoms, fit.d_err / n_atoms
    fit.intercept = fit.intercept / n_atoms
    fit.details['collective_n_atoms'] = n_atoms
    return fit


def haven_ratio(d_tracer: float, d_tracer_err: float, d_sigma: float, d_sigma_err: float) -> tuple[float, float]:
    """Haven ratio ``H = D*/D_sigma`` and its standard error (first-order propagation, errors independent)."""
    h = d_tracer / d_sigma
    err = abs(h) * np.sqrt((d_tracer_err / d_tracer) ** 2 + (d_sigma_err / d_sigma) ** 2)
    return float(h), float(err)


def nernst_einstein_conductivity(
    d_cm2_s: float,
    n_ions: int,
    volume_A3: float,
    temperature_K: float,
    charge: float = 1.0,
    d_err_cm2_s: float = 0.0,
    volume_err_A3: float = 0.0,
    temperature_err_K: float = 0.0,
) -> tuple[float, float]:
    """Nernst–Einstein conductivity ``σ = N (q e)² D / (V k_B T)`` in S/cm, and its standard error.

    Parameters: D in cm²/s, ``n_ions`` ions of charge ``charge`` (units of e) in the volume ``volume_A3`` (Å³)
    at ``temperature_K``. Relative errors of D, V and T are combined in quadrature (independent).
    """
    if not (volume_A3 > 0 and temperature_K > 0 and n_ions > 0):
        raise ValueError(f'nernst_einstein_conductivity: expected positive n_ions, volume, temperature; '
                         f'got {n_ions}, {volume_A3}, {temperature_K}.')
    q = charge * sc_const.e
    n_per_m3 = n_ions / (volume_A3 * 1e-30)
    d_m2_s = d_cm2_s * 1e-4
    sigma = n_per_m3 * q**2 * d_m2_s / (sc_const.k * temperature_K) / 100.0  # S/m -> S/cm
    rel = np.sqrt((d_err_cm2_s / d_cm2_s) ** 2 + (volume_err_A3 / volume_A3) ** 2
                  + (temperature_err_K / temperature_K) ** 2) if d_cm2_s != 0 else np.nan
    return float(sigma), float(abs(sigma) * rel)


@dataclass
class TransportResult:
    """Tracer and collective diffusion of one species and the derived Haven ratio and conductivities.

    ``sigma_ne`` (S/cm) is Nernst–Einstein from D*; ``sigma_collective`` (S/cm) uses D_sigma (includes the
    ion–ion correlations of the species, not cross terms with other species). NaN when T or V is not given.
    """

    msd: MSDResult
    tracer: DiffusionFit
    collective: DiffusionFit
    haven_ratio: float
    haven_ratio_err: float
    sigma_ne: float = float('nan')
    sigma_ne_err: float = float('nan')
    sigma_collective: float = float('nan')
    sigma_collective_err: float = float('nan')


def analyse_transport(
    positions_unwrapped,
    symbols,
    dt_ps: float,
    species: str = 'Li',
    temperature_K: float | None = None,
    volume_A3: float | None = None,
    charge: float = 1.0,
    masses=None,
    remove_drift: bool = True,
    method: str = 'gls',
    **window,
) -> TransportResult:
    """MSD, D* and D_sigma with uncertainties, Haven ratio and conductivities for ``species``.

    ``positions_unwrapped`` (M, N, 3) Å; ``dt_ps`` between frames; ``window`` is passed on to
    :func:`estimate_diffusion` (``start_fraction``, ``end_fraction``, ``t_start_ps``, ``t_end_ps``,
    ``n_blocks``, ``max_fit_lags``). The framework (all other species) centre-of-mass drift is removed.
    """
    positions = _check_positions(positions_unwrapped, 'positions_unwrapped')
    mobile, framework = _species_indices(symbols, species)
    if masses is None:
        from ase.data import atomic_masses, atomic_numbers

        masses = np.array([atomic_masses[atomic_numbers[s]] for s in symbols])
    drift = framework_drift(positions, masses, framework) if remove_drift and framework.size else None
    msd = compute_msd(positions, symbols, species, masses, remove_drift, dt_ps)
    tracer = estimate_diffusion(positions, dt_ps, mobile, drift, method=method, msd_xyz=msd.msd_xyz, **window)
    summed = _sum_positions(positions, mobile)
    if drift is not None:
        summed -= mobile.size * drift
    coll = estimate_collective_diffusion(summed, mobile.size, dt_ps, method=method, **window)
    h, h_err = haven_ratio(tracer.d, tracer.d_err, coll.d, coll.d_err)
    result = TransportResult(msd=msd, tracer=tracer, collective=coll, haven_ratio=h, haven_ratio_err=h_err)
    if temperature_K is not None and volume_A3 is not None:
        result.sigma_ne, result.sigma_ne_err = nernst_einstein_conductivity(
            tracer.d_cm2_s, mobile.size, volume_A3, temperature_K, charge, tracer.d_err_cm2_s)
        result.sigma_collective, result.sigma_collective_err = nernst_einstein_conductivity(
            coll.d_cm2_s, mobile.size, volume_A3, temperature_K, charge, coll.d_err_cm2_s)
    return result
