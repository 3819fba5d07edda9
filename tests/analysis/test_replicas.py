"""Replica spread of Ea and D(T) (aiida_sseff.analysis.replicas) on constructed numbers: the spread statistics
against numpy computed by hand, the reproducibility rule on both sides of its threshold, failed replicas kept."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aiida_sseff.analysis.replicas import format_replica_table, log10_with_error, replica_summary, spread


def _results(ea, ea_err, d_by_t, rel_err=0.1):
    return {'Ea_eV': ea, 'Ea_err_eV': ea_err,
            'table': [{'temperature_K': t, 'D_cm2_s': d, 'D_err_cm2_s': rel_err * d, 'diffusive': True}
                      for t, d in d_by_t.items()]}


def test_log10_error_is_first_order_propagation():
    log_d, err = log10_with_error(2e-5, 2e-6)
    assert log_d == pytest.approx(math.log10(2e-5))
    assert err == pytest.approx(0.1 / math.log(10.0))
    assert log10_with_error(-1e-6, 1e-7) == (None, None)


def test_spread_statistics():
    result = spread([0.20, 0.26, 0.23, None], [0.02, 0.04, 0.03, 0.01])
    assert result['n'] == 3
    assert result['std'] == pytest.approx(np.std([0.20, 0.26, 0.23], ddof=1))
    assert result['max_minus_min'] == pytest.approx(0.06)
    assert result['mean_own_err'] == pytest.approx(0.03)
    assert result['spread_over_own_err'] == pytest.approx(result['std'] / 0.03)
    assert spread([0.2], [0.01]) is None


def test_reproducible_when_spread_within_own_error():
    transport = {'seed_1': _results(0.25, 0.03, {1000.0: 1e-5, 1200.0: 3e-5}),
                 'seed_2': _results(0.27, 0.03, {1000.0: 1.1e-5, 1200.0: 3.1e-5})}
    summary = replica_summary(transport, {'seed_1': 50.0, 'seed_2': 60.0})
    ea = summary['spread']['Ea_eV']
    assert ea['std'] == pytest.approx(np.std([0.25, 0.27], ddof=1))  # 0.014 < 0.03
    assert summary['reproducible'] is True
    d1000 = summary['spread']['log10_D']['1000']
    assert d1000['max_minus_min'] == pytest.approx(math.log10(1.1e-5) - math.log10(1e-5))
    assert summary['spread']['force_mev_per_angstrom']['mean'] == pytest.approx(55.0)
    assert summary['temperatures_K'] == [1000.0, 1200.0]


def test_not_reproducible_when_spread_exceeds_own_error_and_failures_kept():
    transport = {'seed_1': _results(0.20, 0.01, {1000.0: 1e-5, 1200.0: 3e-5}),
                 'seed_2': _results(0.30, 0.01, {1000.0: 4e-6, 1200.0: 2e-5}), 'seed_3': None}
    summary = replica_summary(transport, {'seed_1': 50.0, 'seed_2': 52.0, 'seed_3': 49.0},
                              failures={'seed_3': '[420] too few hops'})
    assert summary['reproducible'] is False
    assert summary['spread']['Ea_eV']['n'] == 2
    assert summary['spread']['Ea_eV']['spread_over_own_err'] == pytest.approx(np.std([0.2, 0.3], ddof=1) / 0.01)
    failed = next(row for row in summary['rows'] if row['replica'] == 'seed_3')
    assert failed['Ea_eV'] is None and failed['failure'] == '[420] too few hops'
    text = format_replica_table({'gamma': summary})
    assert 'NOT reproducible' in text and 'failed: [420] too few hops' in text


def test_one_fit_gives_no_verdict():
    summary = replica_summary({'seed_1': _results(0.2, 0.01, {1000.0: 1e-5}), 'seed_2': None}, {})
    assert summary['spread']['Ea_eV'] is None and summary['reproducible'] is None
    assert 'no spread' in format_replica_table({'x': summary})
