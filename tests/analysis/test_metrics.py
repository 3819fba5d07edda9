"""Tests of aiida_sseff.analysis.metrics against hand-computed values and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from aiida_sseff.analysis.metrics import (
    error_summary,
    mae,
    max_abs_error,
    parity_data,
    per_element_errors,
    r2_score,
    rmse,
)


def test_hand_computed_values():
    predicted = np.array([1.0, 2.0, 4.0])
    target = np.array([1.0, 3.0, 2.0])
    assert rmse(predicted, target) == pytest.approx(np.sqrt(5 / 3))
    assert mae(predicted, target) == pytest.approx(1.0)
    assert max_abs_error(predicted, target) == pytest.approx(2.0)
    # SS_res = 5, SS_tot = (1-2)² + (3-2)² + 0 = 2
    assert r2_score(predicted, target) == pytest.approx(1 - 5 / 2)


def test_force_rmse_is_over_all_components():
    """GPUMD's force RMSE: sqrt(sum |dF|^2 / (3 N)); with |dF| = 1 on every atom along x it is 1/sqrt(3)."""
    target = np.zeros((10, 3))
    predicted = target.copy()
    predicted[:, 0] = 1.0
    assert rmse(predicted, target) == pytest.approx(1 / np.sqrt(3))


def test_r2_matches_scipy_linregress_for_a_linear_fit():
    rng = np.random.default_rng(1)
    target = rng.normal(size=200)
    observed = 2.0 * target + rng.normal(scale=0.3, size=200)
    # for the least-squares prediction of y from x, R² equals the squared Pearson r
    fit = stats.linregress(target, observed)
    predicted = fit.intercept + fit.slope * target
    assert r2_score(predicted, observed) == pytest.approx(fit.rvalue ** 2, rel=1e-10)


def test_nan_entries_are_ignored():
    predicted = np.array([[1.0, 2.0], [5.0, 6.0]])
    target = np.array([[1.5, 2.0], [np.nan, np.nan]])  # second row: frame without target
    assert rmse(predicted, target) == pytest.approx(np.sqrt(0.25 / 2))
    summary = error_summary(predicted, target)
    assert summary['n'] == 2 and summary['max_abs'] == pytest.approx(0.5)
    assert np.isnan(rmse([np.nan], [1.0]))
    assert np.isnan(r2_score([1.0, 1.0], [2.0, 2.0]))  # no spread in the target


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r'shape \(3,\) but target has shape \(2,\)'):
        rmse(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match='one symbol per row'):
        per_element_errors(np.zeros((3, 3)), np.zeros((3, 3)), ['Li', 'O'])


def test_per_element_errors():
    symbols = ['Li', 'O', 'Li', 'La']
    target = np.zeros((4, 3))
    predicted = np.zeros((4, 3))
    predicted[0] = [0.3, 0.0, 0.0]
    predicted[2] = [0.0, 0.4, 0.0]
    predicted[3] = [1.0, 1.0, 1.0]
    result = per_element_errors(predicted, target, symbols)
    assert list(result) == ['Li', 'O', 'La']
    assert result['Li']['rmse'] == pytest.approx(np.sqrt((0.09 + 0.16) / 6))
    assert result['Li']['n'] == 6
    assert result['O']['rmse'] == 0.0
    assert result['La']['mae'] == pytest.approx(1.0)


def test_parity_data():
    predicted = np.array([[0.0, 1.0, 2.0], [3.0, np.nan, 5.0]])
    target = np.array([[0.1, 1.1, 1.9], [3.2, 4.0, 4.8]])
    data = parity_data(predicted, target, symbols=['Li', 'O'])
    assert data['predicted'].shape == (5,)
    assert list(data['element']) == ['Li', 'Li', 'Li', 'O', 'O']
    low, high = data['limits']
    assert low < 0.0 and high > 5.0 and high - low == pytest.approx(5.0 * 1.04)
