"""The figures of the replica and finite-size studies draw the numbers they are given (constructed tables)."""

from __future__ import annotations

import numpy as np

from aiida_sseff.analysis.arrhenius import fit_arrhenius
from aiida_sseff.analysis.finite_size import finite_size_table
from aiida_sseff.analysis.replicas import replica_summary
from aiida_sseff.plots.finite_size import plot_finite_size
from aiida_sseff.plots.replicas import plot_replica_arrhenius, plot_replica_ea

K_B = 8.617333262e-5
T = np.array([1000.0, 1200.0, 1400.0])


def _results(ea):
    d = 1e-3 * np.exp(-ea / (K_B * T))
    fit = fit_arrhenius(T, d, 0.05 * d)
    table = [{'temperature_K': t, 'D_cm2_s': v, 'D_err_cm2_s': 0.05 * v, 'diffusive': True} for t, v in zip(T, d, strict=True)]
    return {'Ea_eV': fit.ea, 'Ea_err_eV': fit.ea_err, 'table': table}, fit


def test_replica_figures(tmp_path):
    (a, fit_a), (b, fit_b) = _results(0.25), _results(0.28)
    datasets = {'gamma': replica_summary({'seed_1': a, 'seed_2': b}, {'seed_1': 50.0, 'seed_2': 55.0})}
    fig = plot_replica_arrhenius(datasets, {'gamma': {'seed_1': fit_a, 'seed_2': fit_b}})
    ax = fig.axes[0]
    assert ax.get_yscale() == 'log' and 'gamma' in ax.get_title()
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 50]  # the two fit lines
    assert len(lines) == 2
    np.testing.assert_allclose(lines[0].get_ydata()[0], fit_a.predict(T.min())[0], rtol=1e-9)
    path = plot_replica_ea(datasets, path=tmp_path / 'ea.png')
    assert path.stat().st_size > 5_000


def test_finite_size_figure_marks_the_converged_cell(tmp_path):
    entries = [{'cell': c, 'n_atoms': n, 'n_mobile': n // 4, 'run_length_ps': 10.0, 'transport': _results(ea)[0]}
               for c, n, ea in (('1x1x1', 96, 0.18), ('2x1x1', 192, 0.23), ('2x2x1', 384, 0.231))]
    table = finite_size_table(entries)
    fig = plot_finite_size(table)
    ax = fig.axes[0]
    assert any(list(line.get_xdata()) == [192, 192] for line in ax.get_lines())  # the dashed converged marker
    assert plot_finite_size(table, path=tmp_path / 'fs.png').stat().st_size > 5_000
