"""Convergence of Ea and D with cell size and run length (aiida_sseff.analysis.finite_size) on constructed numbers:
a series that converges at the middle cell, one that never converges, a failed run left out of the series."""

from __future__ import annotations

import pytest

from aiida_sseff.analysis.finite_size import agreement, finite_size_table, format_finite_size_table, smallest_converged


def _results(ea, ea_err, d1000=1e-5, rel_err=0.05):
    return {'Ea_eV': ea, 'Ea_err_eV': ea_err,
            'table': [{'temperature_K': 1000.0, 'D_cm2_s': d1000, 'D_err_cm2_s': rel_err * d1000, 'diffusive': True}]}


def test_agreement_uses_combined_sigma():
    ok, _ = agreement(_results(0.20, 0.01), _results(0.22, 0.01))  # 0.02 <= 2 * 0.0141
    assert ok
    ok, reasons = agreement(_results(0.20, 0.01), _results(0.24, 0.01))  # 0.04 > 0.028
    assert not ok and 'Ea' in reasons[0]
    ok, reasons = agreement(_results(0.20, 0.01, 1e-5), _results(0.20, 0.01, 2e-5))  # log10 2 = 0.30 > 2 * 0.031
    assert not ok and 'log10 D at 1000 K' in reasons[0]
    assert agreement(_results(0.20, 0.01), _results(0.24, 0.01), n_sigma=3.0)[0]


def test_smallest_converged_series():
    # LGPS-like: the small cell is off (0.18 eV), the larger ones agree (0.23 eV)
    series = [_results(0.18, 0.01), _results(0.23, 0.01), _results(0.235, 0.01), _results(0.228, 0.01)]
    assert smallest_converged(series) == 1
    # every cell disagrees with the next: never converged
    assert smallest_converged([_results(0.10, 0.01), _results(0.15, 0.01), _results(0.20, 0.01)]) is None
    # the largest alone is never called converged
    assert smallest_converged([_results(0.10, 0.01), _results(0.20, 0.01)]) is None
    assert smallest_converged([_results(0.2, 0.01)]) is None


def _entries(values):
    """``{(cell, n_atoms, run_length): Ea}`` -> workflow-style entries."""
    return [{'cell': cell, 'n_atoms': n, 'n_mobile': n // 4, 'run_length_ps': length,
             'transport': None if ea is None else _results(ea, 0.01), 'failure': None if ea is not None else '[420]'}
            for (cell, n, length), ea in values.items()]


def test_table_verdicts_converged_and_failed():
    entries = _entries({('1x1x1', 96, 10.0): 0.17, ('2x1x1', 192, 10.0): 0.23, ('2x2x1', 384, 10.0): 0.235,
                        ('1x1x1', 96, 20.0): 0.18, ('2x1x1', 192, 20.0): 0.228, ('2x2x1', 384, 20.0): 0.232,
                        ('2x2x2', 768, 20.0): None})
    table = finite_size_table(entries)
    assert table['converged_cell'] == '2x1x1' and table['converged_n_atoms'] == 192
    assert table['by_run_length']['10']['converged_cell'] == '2x1x1'
    assert table['largest_cell'] == '2x2x1'  # 2x2x2 failed: left out of the series
    assert table['converged_run_length_ps'] == 10.0  # 0.235 and 0.232 agree
    assert table['failed'] == [{'cell': '2x2x2', 'run_length_ps': 20.0, 'failure': '[420]'}]
    assert [r['n_atoms'] for r in table['rows']] == [96, 96, 192, 192, 384, 384, 768]
    assert 'Converged cell (at 20 ps, 2 σ): 2x1x1 (192 atoms)' in format_finite_size_table(table)


def test_table_never_converged():
    entries = _entries({('1x1x1', 96, 5.0): 0.10, ('2x1x1', 192, 5.0): 0.16, ('2x2x1', 384, 5.0): 0.22,
                        ('1x1x1', 96, 10.0): 0.30})
    table = finite_size_table(entries)
    assert table['converged_cell'] is None and table['converged_n_atoms'] is None
    assert len(table['by_run_length']['5']['neighbour_disagreements']) == 2
    assert table['by_cell']['1x1x1']['converged_run_length_ps'] is None  # 0.10 vs 0.30 eV
    assert 'none: the cells still disagree' in format_finite_size_table(table)
    assert 'no verdict' in format_finite_size_table(finite_size_table(_entries({('a', 8, 1.0): None})))


def test_rejects_nothing_silently():
    with pytest.raises(KeyError):
        finite_size_table([{'cell': 'a', 'run_length_ps': 1.0, 'transport': None}])  # n_atoms missing
