"""The architecture-comparison table: ratios against the reference, D at a reference temperature from the stored
Arrhenius fit, Ea agreement, and speed compared on the same cell."""

import math

import numpy as np
import pytest

from aiida_sseff.analysis.architectures import (
    architecture_table,
    d_at_temperature,
    format_architecture_table,
    stored_arrhenius_fit,
)
from aiida_sseff.analysis.arrhenius import fit_arrhenius

K_B = 8.617333262e-5


def _results(ea, d0, temperatures=(700.0, 900.0, 1100.0, 1300.0), relative_error=0.05):
    """What sseff.diffusion stores for an exact Arrhenius law D0·exp(-Ea/kT) with 5 % errors."""
    t = np.array(temperatures)
    d = d0 * np.exp(-ea / (K_B * t))
    fit = fit_arrhenius(t, d, relative_error * d)
    return {'Ea_eV': fit.ea, 'Ea_err_eV': fit.ea_err, 'D0_cm2_s': fit.d0, 'D0_err_cm2_s': fit.d0_err,
            'arrhenius_params': list(fit.params), 'arrhenius_cov': fit.cov.tolist(), 'dof': fit.dof}, fit


def test_d_at_temperature_is_the_fit_prediction():
    results, fit = _results(0.25, 1e-3)
    d, err = d_at_temperature(results, 600.0)
    # the exact law at 600 K (the fit goes through exact points)
    assert d == pytest.approx(1e-3 * math.exp(-0.25 / (K_B * 600.0)), rel=1e-9)
    assert err == pytest.approx(float(fit.predict(600.0)[1]), rel=1e-9)
    assert err > 0
    assert stored_arrhenius_fit({'Ea_eV': 0.2}) is None
    assert d_at_temperature({}, 600.0) == (None, None)


def test_table_ratios_agreement_and_speed_on_the_same_cell():
    nep, _ = _results(0.23, 1e-3)
    mace, _ = _results(0.24, 1.1e-3)  # within the combined error of NEP's
    gamma, _ = _results(0.34, 1e-2)  # the paper's wrong Γ-only LGPS activation energy
    metrics = {'NEP': {'force_mev_per_angstrom': 100.0, 'energy_mev_per_atom': 2.0,
                       'force_per_element': {'Li': {'rmse_mev_per_angstrom': 50.0}}},
               'MACE': {'force_mev_per_angstrom': 10.0, 'energy_mev_per_atom': 0.5},
               'NEP-gamma': {'force_mev_per_angstrom': 101.0, 'energy_mev_per_atom': 2.0}}
    cost = {'NEP': {'train_wall_time_s': 10.0, 'md_speed': [{'n_atoms': 1536, 'atom_steps_per_s': 2e5},
                                                            {'n_atoms': 192, 'atom_steps_per_s': 1e5}]},
            'MACE': {'train_wall_time_s': 100.0, 'md_speed': [{'n_atoms': 192, 'atom_steps_per_s': 3e3},
                                                             {'n_atoms': 1536, 'atom_steps_per_s': 4e3,
                                                              'peak_memory_mb': 900.0}]},
            'classical': {'md_speed': [{'n_atoms': 192, 'atom_steps_per_s': 1e6}]}}
    transport = {'NEP': nep, 'MACE': mace, 'NEP-gamma': gamma, 'classical': None}
    rows = {row['label']: row for row in architecture_table(metrics, transport, cost, 'NEP', 600.0)}
    assert list(rows)[0] == 'NEP'
    assert rows['MACE']['force_rmse_relative'] == pytest.approx(0.1)
    assert rows['MACE']['energy_rmse_relative'] == pytest.approx(0.25)
    assert rows['NEP']['force_per_element_mev_per_angstrom'] == {'Li': 50.0}
    assert rows['MACE']['Ea_agrees_with_reference'] is True
    assert rows['NEP-gamma']['Ea_agrees_with_reference'] is False
    assert rows['NEP-gamma']['delta_Ea_eV'] == pytest.approx(0.11, abs=1e-6)
    assert rows['NEP']['delta_Ea_eV'] is None  # the reference is not compared with itself
    # speed at the largest cell NEP was timed on (1536 atoms): 4e3 / 2e5
    assert rows['MACE']['md_n_atoms'] == 1536
    assert rows['MACE']['md_speed_relative'] == pytest.approx(0.02)
    assert rows['MACE']['md_peak_memory_mb'] == 900.0
    # the classical potential was timed on another cell only: no ratio of unlike cells
    assert rows['classical']['md_speed_relative'] is None
    assert rows['classical']['force_rmse_relative'] is None and rows['classical']['Ea_eV'] is None
    text = format_architecture_table(list(rows.values()))
    assert text.count('\n') == 1 + len(rows)
    assert '(differs)' in text.splitlines()[4]  # NEP-gamma row
