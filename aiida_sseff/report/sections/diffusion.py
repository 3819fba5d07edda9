"""Report section of ``sseff.diffusion``: D(T) per run, the Arrhenius fit (Ea, D0, extrapolated D and σ), the kink
test, and the MSD + Arrhenius figure, all from the stored ``results``/``diffusion``/``msd`` outputs."""

from __future__ import annotations

from aiida_sseff.report import Figure, Table, Text, register_section
from aiida_sseff.report.stored import diffusion_figure


def _milli(value):
    return None if value is None else 1e3 * value


def diffusion_rows(results: dict) -> list[list]:
    """One row per run of the results Dict: T, D ± err, D_x/y/z, Haven ratio, σ ± err (mS/cm), MSD end, fitted."""
    rows = []
    for row in results['table']:
        d_xyz = list(row.get('D_xyz_cm2_s') or [None] * 3)
        rows.append([row['temperature_K'], row['D_cm2_s'], row.get('D_err_cm2_s'), *d_xyz,
                     row.get('haven_ratio'), _milli(row.get('sigma_S_cm')), _milli(row.get('sigma_err_S_cm')),
                     row['msd_end_A2'], bool(row['diffusive']), row.get('reason', '')])
    return rows


DIFFUSION_COLUMNS = ['T (K)', 'D (cm²/s)', 'D err (cm²/s)', 'D_x (cm²/s)', 'D_y (cm²/s)', 'D_z (cm²/s)',
                     'Haven ratio', 'σ (mS/cm)', 'σ err (mS/cm)', 'MSD end (Å²)', 'fitted', 'why not']


def arrhenius_rows(results: dict) -> list[list]:
    x = results['extrapolation_temperature_K']
    return [
        ['Ea', results['Ea_eV'], results['Ea_err_eV'], 'eV'],
        ['D0', results['D0_cm2_s'], results['D0_err_cm2_s'], 'cm²/s'],
        [f'D({x:g} K)', results['D_extrapolated_cm2_s'], results['D_extrapolated_err_cm2_s'], 'cm²/s'],
        [f'σ({x:g} K)', _milli(results['sigma_extrapolated_S_cm']), _milli(results['sigma_extrapolated_err_S_cm']),
         'mS/cm'],
        ['reduced χ²', results.get('reduced_chi2'), None, ''],
        ['degrees of freedom', results.get('dof'), None, ''],
        ['mobile ions', results['n_ions'], None, ''],
        ['volume', results['volume_A3'], None, 'Å³'],
    ]


@register_section('sseff.diffusion')
def diffusion_section(node) -> list:
    results = node.outputs.results.get_dict()
    kink = results['kink']
    text = [f"Arrhenius fit over {len(results['temperatures_fitted_K'])} temperatures "
            f"({', '.join(f'{t:g}' for t in results['temperatures_fitted_K'])} K)"
            + (', errors scaled by sqrt(χ²/dof)' if results.get('errors_scaled_by_chi2') else '') + '.',
            '', f"Kink test: {kink['message']}"]
    if kink.get('significant'):
        text.append(f"**Two Arrhenius regimes** (break near {kink.get('break_temperature_K')} K): fit each regime "
                    f'separately.')
    if results.get('temperatures_excluded_K'):
        text += ['', f"Not diffusive, left out of the fit: "
                     f"{', '.join(f'{t:g}' for t in results['temperatures_excluded_K'])} K."]
    if results.get('pressure_warning_temperatures_K'):
        text += ['', f"Pressure warning at {', '.join(f'{t:g}' for t in results['pressure_warning_temperatures_K'])}"
                     ' K (see the runs).']
    figure = diffusion_figure(node)
    return [
        Text('\n'.join(text)),
        Table('D(T) per temperature', DIFFUSION_COLUMNS, diffusion_rows(results),
              caption='From the `results` output (σ by Nernst–Einstein).'),
        Table('Arrhenius fit', ['quantity', 'value', 'error', 'unit'], arrhenius_rows(results),
              caption='D = D0 exp(−Ea / kT), weighted least squares on log D.'),
        Figure('MSD and Arrhenius plot', figure,
               caption='Left: total MSD of each run, its fit window thick; right: D(T) with the fit and its 1σ band.',
               data={'temperature_K': [row['temperature_K'] for row in results['table']],
                     'D_cm2_s': [row['D_cm2_s'] for row in results['table']]}),
    ]
