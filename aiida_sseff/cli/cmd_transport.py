"""Li-transport commands: ``show diffusion``, ``plot diffusion`` (stored ``sseff.diffusion`` runs) and, outside any
database, ``analyze msd`` and ``analyze arrhenius`` on GPUMD / engine output files (GPUMDkit's folder convention).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
from aiida.cmdline.params import arguments

from aiida_sseff.cli.root import cmd_analyze, cmd_plot, cmd_show

#: option types that refuse, with the option's name, what is not physical
_POSITIVE = click.FloatRange(min=0, min_open=True)
_FRACTION = click.FloatRange(min=0, max=1)


def _pm(value, err, fmt='.3e'):
    if value is None or not np.isfinite(value):
        return 'n/a'
    if err is None or not np.isfinite(err):
        return f'{value:{fmt}}'
    return f'{value:{fmt}} ± {err:.2g}'


def _echo_sources(result: dict, indent: str = '  ') -> None:
    """Where each number behind the error bars came from (``sources`` of the analysis)."""
    values = {'n_ions': result.get('n_ions'), 'n_time_origins': result.get('n_time_origins'),
              'volume': None if result.get('volume_A3') is None else f"{result['volume_A3']:.1f} Å³"}
    for key, text in result.get('sources', {}).items():
        value = values.get(key)
        click.echo(f'{indent}{key} = {value}: {text}' if value is not None else f'{indent}{key}: {text}')


def _echo_single(result: dict) -> None:
    click.echo(f"{result['file']}: T = {result['temperature_K']:g} K, fit window {result['t_start_ps']:.3g}-"
               f"{result['t_end_ps']:.3g} ps ({result['method']}), MSD at its end {result['msd_end_A2']:.2f} Å²")
    errors = result.get('D_xyz_err_cm2_s') or [None] * 3
    for i, name in enumerate('xyz'):
        click.echo(f"  D_{name}     = {_pm(result['D_xyz_cm2_s'][i], errors[i])} cm²/s")
    click.echo(f"  D_total = {_pm(result['D_cm2_s'], result['D_err_cm2_s'])} cm²/s")
    if result.get('D_collective_cm2_s') is not None:
        click.echo(f"  D_sigma = {_pm(result['D_collective_cm2_s'], result['D_collective_err_cm2_s'])} cm²/s, "
                   f"Haven ratio {_pm(result['haven_ratio'], result['haven_ratio_err'], '.2f')}")
    if result.get('sigma_S_cm') is not None and np.isfinite(result['sigma_S_cm']):
        err = None if result.get('sigma_err_S_cm') is None else 1e3 * result['sigma_err_S_cm']
        click.echo(f"  sigma   = {_pm(1e3 * result['sigma_S_cm'], err, '.4g')} mS/cm "
                   f"(Nernst–Einstein, N = {result['n_ions']}, V = {result['volume_A3']:.1f} Å³)")
    click.echo(f"  errors: {result['errors']}")
    _echo_sources(result)


_FEW_TEMPERATURES = 'WARNING: with fewer than 4 temperatures a change of slope (phase transition) cannot be detected.'


def _kink_warning(break_temperature, ea_low, ea_high) -> str:
    def fmt(x, spec):
        return 'n/a' if x is None or not np.isfinite(x) else format(x, spec)

    return (f'WARNING: D(T) has two Arrhenius regimes (break near {fmt(break_temperature, ".0f")} K: Ea = '
            f'{fmt(ea_low, ".3f")} eV below, {fmt(ea_high, ".3f")} eV above); the single line misrepresents it '
            f'(a phase transition?): fit each regime separately.')


def _failure(exception: Exception) -> click.ClickException:
    return click.ClickException(str(exception))


# ------------------------------------------------------------------------------------------------- commands
@cmd_analyze.command('msd')
@click.argument('path', type=click.Path(exists=True, path_type=Path))
@click.option('--temperature', '-T', type=_POSITIVE, required=True, help='Temperature of the run (K).')
@click.option('--group', type=click.IntRange(min=0), default=0, show_default=True,
              help='msd.out: group of the last block (with all_groups gm: group g of grouping method gm).')
@click.option('--species', default='Li', show_default=True, help='Trajectory: the mobile species.')
@click.option('--dt', 'dt_ps', type=_POSITIVE, help='Trajectory: time between frames (ps); from the file if known.')
@click.option('--n-ions', type=click.IntRange(min=1),
              help='msd.out: ions in the group (default: msd.out header, else model.xyz beside it).')
@click.option('--run-time', 'run_length_ps', type=_POSITIVE,
              help='msd.out: length of the production run with compute_msd (ps) (default: run.in beside it).')
@click.option('--volume', type=_POSITIVE, help='Volume (Å³) for σ (default: thermo.out beside msd.out, or the cell).')
@click.option('--start-fraction', type=_FRACTION, default=0.1, show_default=True,
              help='Fit window start (fraction of the lags).')
@click.option('--end-fraction', type=_FRACTION, help='Fit window end (default 0.4 for msd.out as GPUMDkit, else 0.5).')
@click.option('--json', 'as_json', is_flag=True, help='Print one JSON object.')
@click.option('--plot', 'plot_path', type=click.Path(dir_okay=False, path_type=Path), help='Plot MSD and fit here.')
def cmd_analyze_msd(path, temperature, group, species, dt_ps, n_ions, run_length_ps, volume, start_fraction,
                    end_fraction, as_json, plot_path):
    """D per direction and total (cm²/s, with error) from GPUMD's msd.out (or its folder) or a trajectory
    (.npz of the engine, extended XYZ)."""
    from aiida_sseff.analysis.transport_files import analyse_msd_out, analyse_trajectory, public

    try:
        if path.is_file() and path.suffix in ('.npz', '.xyz', '.extxyz'):
            result = analyse_trajectory(path, temperature, species, dt_ps, volume, start_fraction,
                                        end_fraction or 0.5)
        else:
            result = analyse_msd_out(path, temperature, group, n_ions, run_length_ps, volume, start_fraction,
                                     end_fraction or 0.4)
    except ValueError as exception:
        raise _failure(exception) from exception
    if plot_path is not None:
        from aiida_sseff.plots.transport import plot_msd

        time, msd, fit = result['_curve']
        plot_msd(time, msd, (fit.t_start_ps, fit.t_end_ps), slope=6 * fit.d, intercept=fit.intercept, path=plot_path,
                 title=f'{path.name}, {temperature:g} K')
        result['plot'] = str(plot_path)
    if as_json:
        click.echo(json.dumps(public(result)))
        return
    _echo_single(result)
    if plot_path is not None:
        click.echo(f'plot: {plot_path}')


@cmd_analyze.command('arrhenius')
@click.argument('directory', type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option('--group', type=click.IntRange(min=0), default=0, show_default=True,
              help='Group of the last block of each msd.out.')
@click.option('--n-ions', type=click.IntRange(min=1),
              help='Ions in the group (default: msd.out header, else model.xyz in each folder).')
@click.option('--run-time', 'run_length_ps', type=_POSITIVE,
              help='Production run length in ps (default: run.in in each folder).')
@click.option('--volume', type=_POSITIVE, help='Volume (Å³) for σ (default: thermo.out in each folder).')
@click.option('--start-fraction', type=_FRACTION, default=0.1, show_default=True)
@click.option('--end-fraction', type=_FRACTION, default=0.4, show_default=True)
@click.option('--extrapolate-to', type=_POSITIVE, default=300.0, show_default=True, help='Temperature (K).')
@click.option('--json', 'as_json', is_flag=True, help='Print one JSON object.')
@click.option('--plot', 'plot_path', type=click.Path(dir_okay=False, path_type=Path), help='Arrhenius plot here.')
def cmd_analyze_arrhenius(directory, group, n_ions, run_length_ps, volume, start_fraction, end_fraction,
                          extrapolate_to, as_json, plot_path):
    """D(T), Ea ± σ, D0, D and σ at 300 K, and the kink test, from <DIRECTORY>/<T>K/msd.out (GPUMDkit's layout)."""
    from aiida_sseff.analysis.transport_files import arrhenius_from_folders, public

    try:
        result = arrhenius_from_folders(directory, group, n_ions, run_length_ps, volume, start_fraction,
                                        end_fraction, extrapolate_to)
    except ValueError as exception:
        raise _failure(exception) from exception
    rows = result['rows']
    if plot_path is not None:
        from aiida_sseff.plots.transport import plot_transport

        curves = [{'label': f"{r['temperature_K']:g} K", 'time_ps': r['_curve'][0], 'msd_xyz': r['_curve'][1],
                   'fit_window': (r['t_start_ps'], r['t_end_ps']), 'slope': 6 * r['_curve'][2].d,
                   'intercept': r['_curve'][2].intercept} for r in rows]
        plot_transport(curves, [r['temperature_K'] for r in rows], [r['D_cm2_s'] for r in rows],
                       [r['D_err_cm2_s'] for r in rows], fit=result['_fit'], extrapolate_to_K=extrapolate_to,
                       path=plot_path, title=str(directory.resolve()))
        result['plot'] = str(plot_path)
    if as_json:
        click.echo(json.dumps(public(result)))
        return
    click.echo(f"{'T (K)':>8} {'D (cm²/s)':>24} {'sigma (mS/cm)':>22} {'MSD end (Å²)':>13}")
    for r in rows:
        sigma = 'n/a'
        if 'sigma_S_cm' in r:
            err = None if r['sigma_err_S_cm'] is None else 1e3 * r['sigma_err_S_cm']
            sigma = _pm(1e3 * r['sigma_S_cm'], err, '.4g')
        click.echo(f"{r['temperature_K']:>8g} {_pm(r['D_cm2_s'], r['D_err_cm2_s']):>24} {sigma:>22} "
                   f"{r['msd_end_A2']:>13.2f}")
    x = result['extrapolation_temperature_K']
    click.echo(f"Ea = {_pm(result['Ea_eV'], result['Ea_err_eV'], '.4f')} eV"
               f"{'' if result['weighted'] else ' (unweighted: errors from the scatter of the points)'}")
    click.echo(f"D0 = {_pm(result['D0_cm2_s'], result['D0_err_cm2_s'])} cm²/s")
    click.echo(f"D({x:g} K) = {_pm(result['D_extrapolated_cm2_s'], result['D_extrapolated_err_cm2_s'])} cm²/s")
    if 'sigma_extrapolated_S_cm' in result:
        click.echo(f"sigma({x:g} K) = {_pm(1e3 * result['sigma_extrapolated_S_cm'], 1e3 * result['sigma_extrapolated_err_S_cm'], '.4g')} mS/cm")
    else:
        click.echo(f'sigma({x:g} K): n/a (give --volume and --n-ions, or keep thermo.out and model.xyz in the folders)')
    kink = result['kink']
    click.echo(f"kink test: {kink['message']}")
    if kink['significant']:
        click.echo(_kink_warning(kink['break_temperature_K'], kink['Ea_low_T_eV'], kink['Ea_high_T_eV']))
    elif not kink['testable']:
        click.echo(_FEW_TEMPERATURES)
    if not result['weighted']:
        reasons = sorted({r['errors'] for r in rows if r['D_err_cm2_s'] is None})
        click.echo(f"D errors: {'; '.join(reasons)}")
    if plot_path is not None:
        click.echo(f'plot: {plot_path}')


# ------------------------------------------------------------------------------------------ stored workflows
def _diffusion_node(process):
    if 'results' not in process.outputs or 'diffusion' not in process.outputs:
        state = f'exit status {process.exit_status}: {process.exit_message}' if process.is_terminated else 'running'
        raise click.ClickException(f'<{process.pk}> has no diffusion results ({process.process_label}, {state})')
    return process


def diffusion_table(results: dict) -> list[str]:
    """Lines of the per-temperature table and the Arrhenius summary of a ``sseff.diffusion`` results Dict."""

    def fmt(row, key, scale=1.0, spec='.3e'):
        value, err = row.get(key), row.get(key.replace('_cm2_s', '_err_cm2_s').replace('_S_cm', '_err_S_cm')
                                             .replace('haven_ratio', 'haven_ratio_err'))
        if value is None:
            return 'n/a'
        return _pm(scale * value, None if err is None else scale * err, spec)

    lines = [f"{'T (K)':>8} {'D (cm²/s)':>22} {'D_x / D_y / D_z (cm²/s)':>32} {'Haven':>14} {'sigma (mS/cm)':>20} "
             f"{'MSD (Å²)':>9} fit"]
    for row in results['table']:
        dxyz = ' / '.join('n/a' if v is None else f'{v:.2e}' for v in row['D_xyz_cm2_s'])
        lines.append(f"{row['temperature_K']:>8g} {fmt(row, 'D_cm2_s'):>22} {dxyz:>32} "
                     f"{fmt(row, 'haven_ratio', spec='.2f'):>14} {fmt(row, 'sigma_S_cm', 1e3, '.4g'):>20} "
                     f"{row['msd_end_A2']:>9.2f} {'yes' if row['diffusive'] else 'no: ' + row.get('reason', '')}")
    x = results['extrapolation_temperature_K']
    lines += [
        f"Ea = {_pm(results['Ea_eV'], results['Ea_err_eV'], '.4f')} eV"
        f"{' (errors scaled by sqrt(χ²/dof))' if results.get('errors_scaled_by_chi2') else ''}",
        f"D0 = {_pm(results['D0_cm2_s'], results['D0_err_cm2_s'])} cm²/s",
        f"D({x:g} K) = {_pm(results['D_extrapolated_cm2_s'], results['D_extrapolated_err_cm2_s'])} cm²/s",
        f"sigma({x:g} K) = {_pm(1e3 * results['sigma_extrapolated_S_cm'], 1e3 * results['sigma_extrapolated_err_S_cm'], '.4g')} "
        f"mS/cm (Nernst–Einstein, {results['n_ions']} ions in {results['volume_A3']:.1f} Å³)",
        f"kink test: {results['kink']['message']}",
    ]
    kink = results['kink']
    if kink.get('significant'):
        lines.append(_kink_warning(kink.get('break_temperature_K'), kink.get('ea_low_T_eV'), kink.get('ea_high_T_eV')))
    elif not kink.get('testable', True):
        lines.append(_FEW_TEMPERATURES)
    return lines


@cmd_show.command('diffusion')
@arguments.PROCESS()
def cmd_show_diffusion(process):
    """D(T), Haven ratio, σ(T) and the Arrhenius fit of a sseff.diffusion run."""
    node = _diffusion_node(process)
    for line in diffusion_table(node.outputs.results.get_dict()):
        click.echo(line)


@cmd_plot.command('diffusion')
@arguments.PROCESS()
@click.option('-o', '--output', 'path', type=click.Path(dir_okay=False, path_type=Path), required=True,
              help='Image file (png, pdf, svg).')
def cmd_plot_diffusion(process, path):
    """MSD of every run with its fit window, and the Arrhenius plot with the extrapolation to 300 K."""
    import matplotlib.pyplot as plt

    from aiida_sseff.report.stored import diffusion_figure

    figure = diffusion_figure(_diffusion_node(process), title=f'sseff.diffusion <{process.pk}>')
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    click.echo(f'Wrote {path}')
