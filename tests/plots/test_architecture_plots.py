"""The Fig. 3 / Fig. 4 style figures of the architecture study are drawn from table rows and stored arrays."""

import numpy as np

from aiida_sseff.analysis.architectures import architecture_table
from aiida_sseff.analysis.arrhenius import fit_arrhenius
from aiida_sseff.plots.architectures import arrhenius_entry, plot_architecture_comparison, plot_md_speed


def _diffusion(ea):
    t = np.array([800.0, 1000.0, 1200.0])
    d = 1e-3 * np.exp(-ea / (8.617e-5 * t))
    fit = fit_arrhenius(t, d, 0.1 * d)
    arrays = {'temperature_K': t, 'D_cm2_s': d, 'D_err_cm2_s': 0.1 * d, 'fitted': np.ones(3)}
    results = {'Ea_eV': fit.ea, 'Ea_err_eV': fit.ea_err, 'arrhenius_params': list(fit.params),
               'arrhenius_cov': fit.cov.tolist()}
    return arrays, results


def test_figures(tmp_path):
    transport, arrhenius = {}, {}
    for label, ea in (('NEP', 0.25), ('MACE-T0-I', 0.27)):
        arrays, results = _diffusion(ea)
        transport[label] = results
        arrhenius[label] = arrhenius_entry(arrays, results)
    metrics = {'NEP': {'force_mev_per_angstrom': 100.0, 'energy_mev_per_atom': 2.0},
               'MACE-T0-I': {'force_mev_per_angstrom': 30.0, 'energy_mev_per_atom': 1.0}}
    rows = architecture_table(metrics, transport, {}, 'NEP', 300.0)
    fig = plot_architecture_comparison(rows, arrhenius, 'NEP')
    assert len(fig.axes) >= 3  # bars + one Arrhenius panel per model (+ their secondary T axes)
    bars = fig.axes[0].patches
    assert [round(b.get_height(), 6) for b in bars[:2]] == [1.0, 0.3]  # force RMSE relative to NEP
    path = plot_architecture_comparison(rows, arrhenius, 'NEP', path=tmp_path / 'fig3.png')
    assert path.stat().st_size > 10_000
    speed = plot_md_speed({'NEP': [{'n_atoms': 192, 'atom_steps_per_s': 1e5}, {'n_atoms': 1536, 'atom_steps_per_s': 2e5}],
                           'MACE-T0-I': [{'n_atoms': 192, 'atom_steps_per_s': 2e3}]}, path=tmp_path / 'fig4.png')
    assert speed.stat().st_size > 10_000
