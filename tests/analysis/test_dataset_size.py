"""The dataset-size study's pure analysis: mobile-ion environments, D at one temperature, the converged-size rule
(constructed numbers whose agreement is decided by hand: |a - b| against sqrt(σa² + σb²))."""

from __future__ import annotations

import pytest

from aiida_sseff.analysis.dataset_size import (
    converged_size,
    d_at_temperature,
    dataset_size_rows,
    format_dataset_size_table,
    mobile_environments,
)


def _row(size, ea, ea_err, d=1e-5, d_err=1e-6):
    return {'n_mobile_environments': size, 'Ea_eV': ea, 'Ea_err_eV': ea_err, 'D_cm2_s': d, 'D_err_cm2_s': d_err}


def test_mobile_environments_counts_the_species_over_structures():
    structures = [['Li', 'Li', 'O'], ['Li', 'La', 'O', 'O'], ['Zr']]
    assert mobile_environments(structures, 'Li') == 3
    assert mobile_environments(structures, 'O') == 3
    assert mobile_environments(structures, 'Na') == 0


def test_converged_from_the_second_size():
    # 0.40 vs 0.30: |Δ| = 0.10 > hypot(0.02, 0.02) = 0.028; from 0.30 on all pairs within 0.03-0.04 of each other
    rows = [_row(100, 0.40, 0.02), _row(200, 0.30, 0.02), _row(400, 0.28, 0.02), _row(800, 0.29, 0.01)]
    result = converged_size(rows)
    assert result['converged'] and result['size'] == 200 and result['index'] == 1


def test_converged_rule_is_pairwise_not_only_against_the_first():
    # 0.30 agrees with 0.33 (0.03 <= 0.0354) and with 0.27 (0.03), but 0.33 vs 0.27 = 0.06 > 0.0354: 200 is not
    # converged; from 400 on (0.33, 0.34) it is
    rows = [_row(200, 0.30, 0.025), _row(400, 0.33, 0.025), _row(800, 0.27, 0.025)]
    assert converged_size(rows)['converged'] is False
    rows = [_row(200, 0.30, 0.025), _row(400, 0.27, 0.025), _row(800, 0.29, 0.025)]
    assert converged_size(rows)['size'] == 200


def test_d_must_agree_too():
    rows = [_row(100, 0.30, 0.02, d=1e-5, d_err=1e-7), _row(200, 0.30, 0.02, d=2e-5, d_err=1e-7),
            _row(400, 0.30, 0.02, d=2.0e-5, d_err=1e-7)]
    assert converged_size(rows)['size'] == 200


def test_never_converged_and_the_largest_size_alone_is_not_converged():
    rows = [_row(100, 0.50, 0.01), _row(200, 0.40, 0.01), _row(400, 0.30, 0.01)]
    result = converged_size(rows)
    assert not result['converged'] and result['size'] is None
    assert 'still changes at the largest size' in result['reason']
    assert not converged_size([_row(100, 0.3, 0.01)])['converged']


def test_wider_sigma_converges_earlier():
    rows = [_row(100, 0.50, 0.01), _row(200, 0.40, 0.01), _row(400, 0.38, 0.01)]
    assert converged_size(rows)['converged'] is False
    assert converged_size(rows, n_sigma=2.0)['size'] == 200
    with pytest.raises(ValueError, match='n_sigma must be > 0'):
        converged_size(rows, n_sigma=0)


def test_a_size_without_transport_moves_the_start_above_it():
    rows = [_row(100, 0.30, 0.02), _row(200, None, None), _row(400, 0.30, 0.02), _row(800, 0.31, 0.02)]
    assert converged_size(rows)['size'] == 400
    rows = [_row(100, 0.30, 0.02), _row(200, 0.30, 0.02), _row(400, None, None)]
    result = converged_size(rows)
    assert not result['converged'] and 'largest size has no transport' in result['reason']


def test_rows_read_d_at_the_temperature_and_sort_by_size():
    transport = {'Ea_eV': 0.3, 'Ea_err_eV': 0.05,
                 'table': [{'temperature_K': 900.0, 'D_cm2_s': 1e-5, 'D_err_cm2_s': 2e-6},
                           {'temperature_K': 1200.0, 'D_cm2_s': 4e-5, 'D_err_cm2_s': 5e-6}]}
    assert d_at_temperature(transport['table'], 1200.0) == (4e-5, 5e-6)
    assert d_at_temperature(transport['table'], 1000.0) == (None, None)
    sizes = [{'label': 'level_0', 'n_structures': 8, 'n_mobile_environments': 80, 'transport': transport,
              'metrics': {'energy_mev_per_atom': 2.0, 'force_mev_per_angstrom': 90.0}, 'failure': None},
             {'label': 'level_1', 'n_structures': 4, 'n_mobile_environments': 40, 'transport': None,
              'metrics': {'energy_mev_per_atom': 5.0, 'force_mev_per_angstrom': 150.0}, 'failure': '[420] few hops'}]
    rows = dataset_size_rows(sizes, 900.0)
    assert [row['n_structures'] for row in rows] == [4, 8]
    assert rows[1]['D_cm2_s'] == 1e-5 and rows[1]['Ea_eV'] == 0.3 and rows[1]['force_rmse_mev_per_angstrom'] == 90.0
    assert rows[0]['Ea_eV'] is None and rows[0]['failure'] == '[420] few hops'
    text = format_dataset_size_table(rows, converged_size(rows), 900.0)
    assert '[420] few hops' in text and 'converged size: none' in text
