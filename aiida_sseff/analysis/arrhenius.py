"""Arrhenius analysis of diffusion coefficients: Ea, D0, extrapolation to room temperature, kink test.

Pure numpy/scipy, no aiida. Units: T in K, D in cm²/s (any unit works, D0 comes out in the same unit), Ea in eV,
conductivity in S/cm.

Model: ``ln D = ln D0 - Ea/(k_B T)``, fitted by weighted least squares in ``(1/T, ln D)`` with
``σ_lnD = σ_D/D``. Extrapolated values use the full parameter covariance (the slope and intercept of an
Arrhenius fit are strongly anti-correlated; treating their errors as independent overstates the error of
D(T) — measured on a 600–1200 K set: ×1.6 at 300 K, ×6 inside the range).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import constants as sc_const
from scipy import stats

from .diffusion import nernst_einstein_conductivity

__all__ = ['K_B_EV', 'ArrheniusFit', 'KinkTest', 'detect_kink', 'fit_arrhenius']

#: Boltzmann constant in eV/K
K_B_EV = sc_const.k / sc_const.e


def _wls(x, y, sigma):
    """Weighted straight line y = a + b x. Returns (a, b), cov (absolute, from sigma), chi²."""
    w = 1.0 / sigma**2
    xm = np.column_stack([np.ones_like(x), x])
    cov = np.linalg.inv(xm.T @ (xm * w[:, None]))
    beta = cov @ xm.T @ (w * y)
    chi2 = float(np.sum(w * (y - xm @ beta) ** 2))
    return beta, cov, chi2


@dataclass
class ArrheniusFit:
    """Weighted Arrhenius fit ``ln D = ln D0 - Ea/(k_B T)``.

    Attributes
    ----------
    ea, ea_err : activation energy and its standard error (eV).
    d0, d0_err : prefactor and its standard error (same unit as the input D, e.g. cm²/s).
    params : ``(ln D0, -Ea/k_B)``; ``cov`` their 2×2 covariance (after the χ² scaling, if any).
    chi2, dof : weighted χ² and degrees of freedom; ``p_value`` of χ² (small: scatter exceeds the errors).
    scaled : whether ``cov`` was multiplied by the reduced χ² (``absolute_sigma=False`` and χ²/dof > 1).
    """

    ea: float
    ea_err: float
    d0: float
    d0_err: float
    params: np.ndarray
    cov: np.ndarray
    chi2: float
    dof: int
    scaled: bool
    temperatures: np.ndarray = field(repr=False, default=None)

    @property
    def reduced_chi2(self) -> float:
        return self.chi2 / self.dof if self.dof > 0 else float('nan')

    @property
    def p_value(self) -> float:
        return float(stats.chi2.sf(self.chi2, self.dof)) if self.dof > 0 else float('nan')

    def ln_d(self, temperature_K) -> tuple[np.ndarray, np.ndarray]:
        """``ln D`` at ``temperature_K`` and its standard error (full covariance)."""
        x = 1.0 / np.asarray(temperature_K, dtype=float)
        jac = np.stack([np.ones_like(x), x], axis=-1)
        val = jac @ self.params
        var = np.einsum('...i,ij,...j->...', jac, self.cov, jac)
        return val, np.sqrt(var)

    def predict(self, temperature_K) -> tuple[np.ndarray, np.ndarray]:
        """D at ``temperature_K`` and its standard error (first order in the log: σ_D = D·σ_lnD)."""
        ln_d, err = self.ln_d(temperature_K)
        d = np.exp(ln_d)
        return d, d * err

    def interval(self, temperature_K, level: float = 0.6827) -> tuple[np.ndarray, np.ndarray]:
        """Confidence interval of D at ``temperature_K`` (asymmetric, from the Gaussian interval of ln D)."""
        ln_d, err = self.ln_d(temperature_K)
        z = stats.norm.ppf(0.5 + level / 2)
        return np.exp(ln_d - z * err), np.exp(ln_d + z * err)

    def conductivity(self, temperature_K: float, n_ions: int, volume_A3: float, charge: float = 1.0,
                     d_unit_to_cm2_s: float = 1.0) -> tuple[float, float]:
        """Nernst–Einstein σ (S/cm) at ``temperature_K`` from the extrapolated D, with its standard error.

        ``n_ions`` ions of ``charge`` (e) in ``volume_A3`` (Å³, e.g. the volume of the MD cell at that T);
        ``d_unit_to_cm2_s`` converts the fitted D unit to cm²/s (1 when D was given in cm²/s).
        """
        d, err = self.predict(temperature_K)
        return nernst_einstein_conductivity(float(d) * d_unit_to_cm2_s, n_ions, volume_A3, temperature_K, charge,
                                            float(err) * d_unit_to_cm2_s)


def _check_inputs(temperatures_K, d, d_err):
    t = np.asarray(temperatures_K, dtype=float)
    d = np.asarray(d, dtype=float)
    e = np.asarray(d_err, dtype=float)
    if not (t.shape == d.shape == e.shape and t.ndim == 1):
        raise ValueError(f'Arrhenius: temperatures, D and D errors must be 1-D of equal length, '
                         f'got {t.shape}, {d.shape}, {e.shape}.')
    if t.size < 2:
        raise ValueError(f'Arrhenius: need at least 2 temperatures, got {t.size}.')
    bad = np.flatnonzero(~((t > 0) & (d > 0) & (e > 0) & np.isfinite(e)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f'Arrhenius: point {i} (T={t[i]}, D={d[i]}, err={e[i]}): expected T > 0, D > 0 and a '
                         f'finite error > 0 (a negative or zero D cannot enter a fit in ln D).')
    return t, d, e


def fit_arrhenius(temperatures_K, d, d_err, absolute_sigma: bool = True) -> ArrheniusFit:
    """Weighted fit of ``ln D`` versus ``1/T`` with weights ``(D/σ_D)²``.

    Parameters
    ----------
    temperatures_K : (n,) temperatures in K.
    d, d_err : (n,) diffusion coefficients and standard errors (e.g. cm²/s).
    absolute_sigma : if True (default), the errors are taken as absolute standard errors (as scipy's
        ``curve_fit(absolute_sigma=True)``); if False, the covariance is multiplied by χ²/dof when that
        exceeds 1 (errors then at least as large as the scatter of the points says).

    Returns
    -------
    ArrheniusFit
    """
    t, dv, de = _check_inputs(temperatures_K, d, d_err)
    x, y, s = 1.0 / t, np.log(dv), de / dv
    beta, cov, chi2 = _wls(x, y, s)
    dof = t.size - 2
    scaled = False
    if not absolute_sigma and dof > 0 and chi2 / dof > 1:
        cov = cov * (chi2 / dof)
        scaled = True
    ea = -beta[1] * K_B_EV
    ea_err = np.sqrt(cov[1, 1]) * K_B_EV
    d0 = np.exp(beta[0])
    d0_err = d0 * np.sqrt(cov[0, 0])
    return ArrheniusFit(ea=float(ea), ea_err=float(ea_err), d0=float(d0), d0_err=float(d0_err), params=beta,
                        cov=cov, chi2=chi2, dof=dof, scaled=scaled, temperatures=t)


@dataclass
class KinkTest:
    """Single line versus two Arrhenius regimes joined at a break temperature.

    ``testable`` is False (and ``message`` says why) for fewer than 4 temperatures. ``significant`` is True when
    the two-regime model is better by the F-test at level ``alpha`` *and* by BIC. ``ea_low_T``/``ea_high_T`` are
    the activation energies (eV) below/above ``break_temperature`` (K) in the best two-regime model.
    """

    testable: bool
    significant: bool
    message: str
    break_temperature: float = float('nan')
    ea_low_T: float = float('nan')
    ea_high_T: float = float('nan')
    f_statistic: float = float('nan')
    p_value: float = float('nan')
    delta_bic: float = float('nan')
    chi2_single: float = float('nan')
    chi2_two: float = float('nan')


def detect_kink(temperatures_K, d, d_err=None, alpha: float = 0.01) -> KinkTest:
    """Test whether two Arrhenius regimes describe ``D(T)`` significantly better than one.

    Two-regime model: a continuous broken line in ``(1/T, ln D)``, ``ln D = a + b·x + c·max(x - x_b, 0)`` with
    the break ``x_b`` at one of the interior measured temperatures (each regime then has at least 2 points);
    the break giving the lowest weighted χ² is kept. Compared with the single line by

    * the F-test on the extra slope, ``F = (χ²₁ - χ²₂) / (χ²₂/(n-3))`` with (1, n-3) degrees of freedom
      (conditional on the chosen break, hence somewhat anti-conservative: the default ``alpha`` is 0.01), and
    * BIC = χ² + k·ln n with k = 2 (line) and k = 4 (two lines: + slope change + break position),

    and flagged ``significant`` when both prefer the two regimes. With fewer than 4 temperatures the test
    has no degree of freedom left: ``testable=False``, message "not testable".

    ``d_err=None`` (D without errors): the same test unweighted. The F statistic is a ratio of residual sums of
    squares and needs no absolute errors, only that the scatter of ln D is the same at every temperature
    (homoscedastic residuals, as in ordinary least squares); BIC uses the Gaussian likelihood with that unknown
    scatter, ``n·ln(RSS/n) + k·ln n``. The message says "unweighted".
    """
    weighted = d_err is not None
    t, dv, de = _check_inputs(temperatures_K, d, d_err if weighted else d)
    n = t.size
    if n < 4:
        return KinkTest(testable=False, significant=False,
                        message=f'not testable: {n} temperatures, a kink test needs at least 4')
    order = np.argsort(1.0 / t)
    x, y = (1.0 / t)[order], np.log(dv)[order]
    s = (de / dv)[order] if weighted else np.ones_like(x)  # unweighted: χ² is the residual sum of squares
    w = 1.0 / s**2
    _, _, chi2_1 = _wls(x, y, s)
    best = None
    for k in range(1, n - 1):  # break at interior points: x[0..k] and x[k..n-1] each have >= 2 points
        xb = x[k]
        xm = np.column_stack([np.ones_like(x), x, np.maximum(x - xb, 0.0)])
        cov = np.linalg.inv(xm.T @ (xm * w[:, None]))
        beta = cov @ xm.T @ (w * y)
        chi2 = float(np.sum(w * (y - xm @ beta) ** 2))
        if best is None or chi2 < best[0]:
            best = (chi2, xb, beta)
    chi2_2, xb, beta = best
    dof2 = n - 3
    if chi2_2 <= 0:
        f_stat, p = float('inf'), 0.0
    else:
        f_stat = (chi2_1 - chi2_2) / (chi2_2 / dof2)
        p = float(stats.f.sf(f_stat, 1, dof2))
    if weighted:
        bic_1 = chi2_1 + 2 * np.log(n)
        bic_2 = chi2_2 + 4 * np.log(n)
    else:
        tiny = 1e-300  # a perfect fit (RSS = 0) has an infinitely better likelihood
        bic_1 = n * np.log(max(chi2_1, tiny) / n) + 2 * np.log(n)
        bic_2 = n * np.log(max(chi2_2, tiny) / n) + 4 * np.log(n)
    delta_bic = float(bic_1 - bic_2)
    significant = bool(p < alpha and delta_bic > 0)
    # x = 1/T increasing: x > x_b is the low-temperature side, with slope b + c
    ea_high = -beta[1] * K_B_EV
    ea_low = -(beta[1] + beta[2]) * K_B_EV
    msg = (f'two regimes {"significantly " if significant else "not significantly "}better than one '
           f'(F={f_stat:.3g}, p={p:.3g}, ΔBIC={delta_bic:.3g}); break at {1 / xb:.1f} K'
           + ('' if weighted else '; unweighted (no D errors): assumes the same scatter of ln D at every temperature'))
    return KinkTest(testable=True, significant=significant, message=msg, break_temperature=float(1 / xb),
                    ea_low_T=float(ea_low), ea_high_T=float(ea_high), f_statistic=float(f_stat), p_value=p,
                    delta_bic=delta_bic, chi2_single=float(chi2_1), chi2_two=float(chi2_2))
