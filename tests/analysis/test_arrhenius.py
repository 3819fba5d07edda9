"""Tests of aiida_sseff.analysis.arrhenius: weighted Arrhenius fit, extrapolation with covariance, kink test."""

import numpy as np
import pytest

from aiida_sseff.analysis.arrhenius import K_B_EV, detect_kink, fit_arrhenius

TEMPERATURES = np.array([600.0, 700.0, 800.0, 900.0, 1000.0, 1100.0, 1200.0])


def _synthetic(seed, ea=0.3, d0=1e-3, rel=0.05, temperatures=TEMPERATURES):
    """D(T) = D0 exp(-Ea/kT) with log-normal noise of relative size ``rel`` (and that error stated)."""
    rng = np.random.default_rng(seed)
    d = d0 * np.exp(-ea / (K_B_EV * temperatures)) * np.exp(rng.normal(0, rel, temperatures.size))
    return temperatures, d, rel * d


def test_k_b_value():
    assert K_B_EV == pytest.approx(8.617333262e-5, rel=1e-9)  # CODATA 2018, eV/K


def test_recovers_known_activation_energy_with_calibrated_errors():
    z_ea, z_d300 = [], []
    d300_true = 1e-3 * np.exp(-0.3 / (K_B_EV * 300))
    for seed in range(100):
        fit = fit_arrhenius(*_synthetic(seed))
        z_ea.append((fit.ea - 0.3) / fit.ea_err)
        d300, err = fit.predict(300.0)
        ln_d, ln_err = fit.ln_d(300.0)
        z_d300.append((ln_d - np.log(d300_true)) / ln_err)
        assert err == pytest.approx(d300 * ln_err)
    assert 0.8 < np.sqrt(np.mean(np.square(z_ea))) < 1.25
    assert 0.8 < np.sqrt(np.mean(np.square(z_d300))) < 1.25
    fit = fit_arrhenius(*_synthetic(0))
    assert fit.ea == pytest.approx(0.3, abs=3 * fit.ea_err)
    assert fit.ea_err < 0.02
    assert fit.d0 == pytest.approx(1e-3, rel=5 * fit.d0_err / fit.d0)
    assert fit.dof == 5 and 0 < fit.p_value < 1


def test_extrapolation_uses_parameter_covariance():
    t, d, e = _synthetic(1)
    fit = fit_arrhenius(t, d, e)
    _, ln_err = fit.ln_d(300.0)
    # ln D0 and -Ea/k anti-correlate: treating them as independent overstates the error (measured for this
    # 600-1200 K set: ×1.6 at 300 K, ×6 at 850 K)
    assert fit.cov[0, 1] < 0
    for temperature, factor in ((300.0, 0.75), (850.0, 0.25)):
        independent = np.sqrt(fit.cov[0, 0] + fit.cov[1, 1] / temperature**2)
        assert fit.ln_d(temperature)[1] < factor * independent
    lo, hi = fit.interval(300.0)
    d300, _ = fit.predict(300.0)
    assert lo < d300 < hi
    # Nernst–Einstein at 300 K, same relative error as D(300 K)
    sigma, sigma_err = fit.conductivity(300.0, n_ions=3584, volume_A3=143800.0)
    assert sigma_err / sigma == pytest.approx(fit.predict(300.0)[1] / d300)


def test_chi2_scaling_option():
    t, d, _ = _synthetic(2, rel=0.2)
    tiny = 0.01 * d  # errors stated 20× too small
    absolute = fit_arrhenius(t, d, tiny)
    scaled = fit_arrhenius(t, d, tiny, absolute_sigma=False)
    assert scaled.scaled and not absolute.scaled
    assert absolute.reduced_chi2 > 50
    assert scaled.ea_err == pytest.approx(absolute.ea_err * np.sqrt(absolute.reduced_chi2))


def test_input_validation():
    with pytest.raises(ValueError, match=r'point 1 \(T=700.0, D=-1.0'):
        fit_arrhenius([600.0, 700.0, 800.0], [1e-6, -1.0, 1e-5], [1e-7, 1e-7, 1e-6])
    with pytest.raises(ValueError, match='equal length'):
        fit_arrhenius([600.0, 700.0], [1e-6], [1e-7])


def test_kink_detected_for_two_regimes():
    # Ea = 0.5 eV below 850 K, 0.2 eV above (a superionic-like transition), 5 % noise
    rng = np.random.default_rng(3)
    t = TEMPERATURES
    tb = 850.0
    ln_d = np.where(t >= tb, np.log(1e-3) - 0.2 / (K_B_EV * t),
                    np.log(1e-3) - 0.2 / (K_B_EV * tb) - 0.5 / K_B_EV * (1 / t - 1 / tb))
    d = np.exp(ln_d + rng.normal(0, 0.05, t.size))
    res = detect_kink(t, d, 0.05 * d)
    assert res.testable and res.significant
    assert res.break_temperature in (800.0, 900.0)
    assert res.ea_low_T == pytest.approx(0.5, abs=0.1)
    assert res.ea_high_T == pytest.approx(0.2, abs=0.1)
    assert res.p_value < 0.01 and res.delta_bic > 0


def test_no_kink_for_single_regime():
    # false-positive rate over 100 noise realisations of a straight Arrhenius line stays small
    flags = [detect_kink(*_synthetic(seed)).significant for seed in range(100)]
    assert np.mean(flags) <= 0.05
    res = detect_kink(*_synthetic(0))
    assert res.testable and not res.significant
    assert 'not significantly' in res.message


def test_kink_not_testable_with_three_points():
    t, d, e = _synthetic(0, temperatures=np.array([800.0, 1000.0, 1200.0]))
    res = detect_kink(t, d, e)
    assert not res.testable and not res.significant
    assert res.message.startswith('not testable')


def test_unweighted_kink_test_without_errors():
    # D without error bars (an msd.out alone): the F-test on residual sums of squares, same data as above
    rng = np.random.default_rng(3)
    t, tb = TEMPERATURES, 850.0
    ln_d = np.where(t >= tb, np.log(1e-3) - 0.2 / (K_B_EV * t),
                    np.log(1e-3) - 0.2 / (K_B_EV * tb) - 0.5 / K_B_EV * (1 / t - 1 / tb))
    d = np.exp(ln_d + rng.normal(0, 0.05, t.size))
    res = detect_kink(t, d)
    assert res.testable and res.significant and 'unweighted' in res.message
    assert res.break_temperature in (800.0, 900.0)
    # the F statistic does not depend on a common error scale: weighting by any constant relative error agrees
    assert res.f_statistic == pytest.approx(detect_kink(t, d, 0.3 * d).f_statistic, rel=1e-9)
    # straight lines: false positives stay rare (alpha = 0.01, anti-conservative by the choice of the best of 5
    # breaks; measured 4.75 % over seeds 0-1999, so 8 % over 200 seeds is 2 binomial standard deviations above)
    flags = [detect_kink(*_synthetic(seed)[:2]).significant for seed in range(200)]
    assert np.mean(flags) <= 0.08
    assert not detect_kink(*_synthetic(0, temperatures=TEMPERATURES[:3])[:2]).testable
