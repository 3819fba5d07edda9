"""Li-transport commands: ``show diffusion``, ``plot diffusion`` (stored ``sseff.diffusion`` runs) and, outside any
database, ``analyze msd`` and ``analyze arrhenius`` on GPUMD / engine output files (GPUMDkit's folder convention).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import numpy as np
from aiida.cmdline.params import arguments

from aiida_sseff.cli.root import cmd_analyze, cmd_plot, cmd_show

_T_FOLDER = re.compile(r'^(\d+(?:\.\d+)?)K$')


# ----------------------------------------------------------------------------------------------- file analysis
def _finite(value):
    """NaN/inf → None, numpy → Python (for JSON)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_finite(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value


def _gpumd_run_length_ps(run_in: Path) -> float | None:
    """Length (ps) of the ``run`` that carries ``compute_msd`` in a GPUMD ``run.in`` (``time_step`` default 1 fs).

    Our own small reader: only ``time_step``, ``compute_msd`` and ``run`` matter here, and io/gpumd.py writes
    run.in but has no reader.
    """
    dt_fs, msd_seen, length = 1.0, False, None
    for raw in run_in.read_text().splitlines():
        tokens = raw.split('#', 1)[0].split()
        if not tokens:
            continue
        if tokens[0] == 'time_step' and len(tokens) > 1:
            dt_fs = float(tokens[1])
        elif tokens[0] == 'compute_msd':
            msd_seen = True
        elif tokens[0] == 'run' and len(tokens) > 1:
            if msd_seen:
                length = int(float(tokens[1])) * dt_fs / 1000.0
                msd_seen = False  # compute_msd applies to the next run only
    return length


def _group_size(model_xyz: Path, group: int) -> int | None:
    """Atoms in ``group`` of grouping method 0 of a GPUMD ``model.xyz`` (None without a group column)."""
    from ase.io import read

    atoms = read(model_xyz)
    if 'group' not in atoms.arrays:
        return None
    labels = np.asarray(atoms.arrays['group'])
    labels = labels[:, 0] if labels.ndim == 2 else labels
    return int(np.sum(labels == group))


def analyse_msd_out(path, temperature: float, group: int = 0, n_ions: int | None = None,
                    run_length_ps: float | None = None, volume_A3: float | None = None,
                    start_fraction: float = 0.1, end_fraction: float = 0.4, charge: float = 1.0) -> dict:
    """D per direction and total (cm²/s) from a GPUMD ``msd.out`` (last block), and Nernst–Einstein σ (S/cm).

    The default window (rows 10 %–40 %) and least-squares slope are GPUMDkit's ``calc_ion_conductivity.py``.
    Errors need the number of ions and the run length: taken from the options, else from ``model.xyz`` (group
    size) and ``run.in`` (the run with ``compute_msd``) in the same folder; without them errors are None. The
    volume (and mean temperature) for σ come from ``volume_A3`` or ``thermo.out`` in the folder.
    """
    from aiida_sseff.analysis.diffusion import fit_diffusion_from_msd_curve, nernst_einstein_conductivity
    from aiida_sseff.io.gpumd import read_msd, read_thermo

    path = Path(path)
    folder = path.parent
    blocks = read_msd(path)
    block = blocks[-1]
    if not 0 <= group < block.n_groups:
        raise ValueError(f'{path}: group {group} requested, the file has {block.n_groups} group(s) (0 … '
                         f'{block.n_groups - 1}).')
    if n_ions is None and (folder / 'model.xyz').is_file():
        n_ions = _group_size(folder / 'model.xyz', group)
    if run_length_ps is None and (folder / 'run.in').is_file():
        run_length_ps = _gpumd_run_length_ps(folder / 'run.in')
    t_mean = temperature
    sources = {}
    if volume_A3 is None and (folder / 'thermo.out').is_file():
        thermo = read_thermo(folder / 'thermo.out')
        volume_A3, t_mean = float(thermo['volume'].mean()), float(thermo['temperature'].mean())
        sources['volume'] = 'thermo.out'
    have_stats = n_ions is not None and run_length_ps is not None
    fit = fit_diffusion_from_msd_curve(block.time, block.msd[group], start_fraction=start_fraction,
                                       end_fraction=end_fraction, n_atoms=n_ions if have_stats else None,
                                       total_time_ps=run_length_ps if have_stats else None)
    result = {
        'file': str(path), 'group': group, 'temperature_K': temperature, 'n_ions': n_ions,
        'run_length_ps': run_length_ps, 'method': fit.method, 't_start_ps': fit.t_start_ps, 't_end_ps': fit.t_end_ps,
        'D_cm2_s': fit.d_cm2_s, 'D_err_cm2_s': fit.d_err_cm2_s,
        'D_xyz_cm2_s': list(fit.d_xyz_cm2_s), 'D_xyz_err_cm2_s': list(fit.d_xyz_err_cm2_s),
        'msd_end_A2': float(np.interp(fit.t_end_ps, block.time, block.msd[group].sum(axis=1))),
        'volume_A3': volume_A3, 'temperature_mean_K': t_mean,
        '_curve': (block.time, block.msd[group], fit),
    }
    if volume_A3 is not None and n_ions and fit.d > 0:
        err = fit.d_err_cm2_s if np.isfinite(fit.d_err_cm2_s) else 0.0
        result['sigma_S_cm'], result['sigma_err_S_cm'] = nernst_einstein_conductivity(
            fit.d_cm2_s, n_ions, volume_A3, t_mean, charge, err)
        result['sigma_xyz_S_cm'] = [nernst_einstein_conductivity(d, n_ions, volume_A3, t_mean, charge)[0]
                                    for d in fit.d_xyz_cm2_s]
    return result


def _load_trajectory(path: Path, dt_ps: float | None):
    """(positions unwrapped (M, N, 3) Å, symbols, dt ps, mean volume Å³) from an engine ``trajectory.npz`` or an
    extended XYZ trajectory (wrapped or not: unwrapped here frame to frame)."""
    from ase.data import chemical_symbols

    from aiida_sseff.analysis.msd import unwrap_positions

    if path.suffix == '.npz':
        with np.load(path) as data:
            positions, cells = data['positions'], data['cells']
            symbols = [chemical_symbols[int(z)] for z in data['numbers']]
            times = data['times_ps'] if 'times_ps' in data.files else None
        if dt_ps is None:
            if times is None or len(times) < 2:
                raise click.BadParameter(f'{path}: no times_ps array; give --dt (ps between frames)')
            dt_ps = float(np.median(np.diff(times)))
        return positions, symbols, dt_ps, float(np.abs(np.linalg.det(cells)).mean())
    from ase.io import read

    frames = read(path, index=':')
    if len(frames) < 2:
        raise click.BadParameter(f'{path}: {len(frames)} frame(s); a trajectory needs at least 2')
    if dt_ps is None:
        raise click.BadParameter(f'{path}: give --dt, the time between frames in ps')
    cells = np.array([atoms.cell.array for atoms in frames])
    frac = np.array([atoms.get_scaled_positions(wrap=False) for atoms in frames])
    positions = unwrap_positions(frac, cells)
    return positions, frames[0].get_chemical_symbols(), dt_ps, float(np.abs(np.linalg.det(cells)).mean())


def analyse_trajectory(path, temperature: float, species: str = 'Li', dt_ps: float | None = None,
                       volume_A3: float | None = None, start_fraction: float = 0.1, end_fraction: float = 0.5,
                       charge: float = 1.0) -> dict:
    """D* (per direction, total), D_σ, Haven ratio, σ from a trajectory file (see :func:`_load_trajectory`)."""
    from aiida_sseff.analysis.diffusion import analyse_transport

    path = Path(path)
    positions, symbols, dt_ps, volume = _load_trajectory(path, dt_ps)
    volume = volume_A3 or volume
    result = analyse_transport(positions, symbols, dt_ps, species=species, temperature_K=temperature,
                               volume_A3=volume, charge=charge, start_fraction=start_fraction,
                               end_fraction=end_fraction)
    tracer = result.tracer
    return {
        'file': str(path), 'species': species, 'temperature_K': temperature, 'n_ions': result.msd.n_atoms,
        'n_frames': int(positions.shape[0]), 'dt_ps': dt_ps, 'method': tracer.method,
        't_start_ps': tracer.t_start_ps, 't_end_ps': tracer.t_end_ps,
        'D_cm2_s': tracer.d_cm2_s, 'D_err_cm2_s': tracer.d_err_cm2_s,
        'D_xyz_cm2_s': list(tracer.d_xyz_cm2_s), 'D_xyz_err_cm2_s': list(tracer.d_xyz_err_cm2_s),
        'D_collective_cm2_s': result.collective.d_cm2_s, 'D_collective_err_cm2_s': result.collective.d_err_cm2_s,
        'haven_ratio': result.haven_ratio, 'haven_ratio_err': result.haven_ratio_err,
        'msd_end_A2': float(np.interp(tracer.t_end_ps, result.msd.time_ps, result.msd.msd_total)),
        'volume_A3': volume, 'sigma_S_cm': result.sigma_ne, 'sigma_err_S_cm': result.sigma_ne_err,
        '_curve': (result.msd.time_ps, result.msd.msd_xyz, tracer),
    }


def arrhenius_from_folders(directory, group: int = 0, n_ions: int | None = None, run_length_ps: float | None = None,
                           volume_A3: float | None = None, start_fraction: float = 0.1, end_fraction: float = 0.4,
                           extrapolate_to_K: float = 300.0, charge: float = 1.0) -> dict:
    """GPUMDkit's convention ``<DIR>/<T>K/msd.out``: D(T) per folder, weighted Arrhenius fit, D and σ at 300 K.

    Without the statistics for D errors (ions and run length), the fit is unweighted in ln D and its errors come
    from the scatter of the points (needs 3 temperatures or more).
    """
    from aiida_sseff.analysis.arrhenius import detect_kink, fit_arrhenius

    directory = Path(directory)
    folders = sorted((float(m.group(1)), p) for p in directory.iterdir()
                     if p.is_dir() and (m := _T_FOLDER.match(p.name)) and (p / 'msd.out').is_file())
    if len(folders) < 2:
        raise click.BadParameter(f'{directory}: found {len(folders)} folder(s) <T>K/msd.out; need at least 2')
    rows = [analyse_msd_out(p / 'msd.out', t, group, n_ions, run_length_ps, volume_A3, start_fraction, end_fraction,
                            charge) for t, p in folders]
    t = np.array([r['temperature_K'] for r in rows])
    d = np.array([r['D_cm2_s'] for r in rows])
    if np.any(d <= 0):
        bad = ', '.join(f'{r["temperature_K"]:g} K' for r in rows if r['D_cm2_s'] <= 0)
        raise click.ClickException(f'D is not positive at {bad}: no Arrhenius fit (run longer or hotter)')
    err = np.array([r['D_err_cm2_s'] for r in rows])
    weighted = bool(np.all(np.isfinite(err) & (err > 0)))
    if weighted:
        fit = fit_arrhenius(t, d, err, absolute_sigma=False)
    else:
        # unweighted: σ_lnD = s for all points with s the residual scatter, so that the covariance is that of OLS
        first = fit_arrhenius(t, d, d)
        scatter = np.sqrt(first.chi2 / first.dof) if first.dof > 0 else np.nan
        fit = fit_arrhenius(t, d, d * scatter) if np.isfinite(scatter) and scatter > 0 else first
        if not (np.isfinite(scatter) and scatter > 0):
            fit.ea_err = fit.d0_err = float('nan')
            fit.cov = np.full((2, 2), np.nan)
    d_x, d_x_err = fit.predict(extrapolate_to_K)
    out = {
        'directory': str(directory), 'weighted': weighted, 'rows': rows,
        'Ea_eV': fit.ea, 'Ea_err_eV': fit.ea_err, 'D0_cm2_s': fit.d0, 'D0_err_cm2_s': fit.d0_err,
        'extrapolation_temperature_K': extrapolate_to_K,
        'D_extrapolated_cm2_s': float(d_x), 'D_extrapolated_err_cm2_s': float(d_x_err),
        'reduced_chi2': fit.reduced_chi2, '_fit': fit,
    }
    volumes = [r['volume_A3'] for r in rows if r['volume_A3'] is not None]
    ions = {r['n_ions'] for r in rows if r['n_ions']}
    if volumes and len(ions) == 1:
        out['sigma_extrapolated_S_cm'], out['sigma_extrapolated_err_S_cm'] = fit.conductivity(
            extrapolate_to_K, ions.pop(), float(np.mean(volumes)), charge)
    if weighted:
        kink = detect_kink(t, d, err)
        out['kink'] = {'testable': kink.testable, 'significant': kink.significant, 'message': kink.message}
    return out


def _public(result: dict) -> dict:
    return _finite({k: v for k, v in result.items() if not k.startswith('_')})


def _pm(value, err, fmt='.3e'):
    if value is None or not np.isfinite(value):
        return 'n/a'
    if err is None or not np.isfinite(err):
        return f'{value:{fmt}}'
    return f'{value:{fmt}} ± {err:.2g}'


def _echo_single(result: dict) -> None:
    click.echo(f"{result['file']}: T = {result['temperature_K']:g} K, fit window {result['t_start_ps']:.3g}-"
               f"{result['t_end_ps']:.3g} ps ({result['method']}), MSD at its end {result['msd_end_A2']:.2f} Å²")
    for i, name in enumerate('xyz'):
        click.echo(f"  D_{name}     = {_pm(result['D_xyz_cm2_s'][i], result['D_xyz_err_cm2_s'][i])} cm²/s")
    click.echo(f"  D_total = {_pm(result['D_cm2_s'], result['D_err_cm2_s'])} cm²/s")
    if result.get('D_collective_cm2_s') is not None:
        click.echo(f"  D_sigma = {_pm(result['D_collective_cm2_s'], result['D_collective_err_cm2_s'])} cm²/s, "
                   f"Haven ratio {_pm(result['haven_ratio'], result['haven_ratio_err'], '.2f')}")
    if result.get('sigma_S_cm') is not None and np.isfinite(result['sigma_S_cm']):
        click.echo(f"  sigma   = {_pm(1e3 * result['sigma_S_cm'], 1e3 * result['sigma_err_S_cm'], '.4g')} mS/cm "
                   f"(Nernst–Einstein, N = {result['n_ions']}, V = {result['volume_A3']:.1f} Å³)")
    if result.get('D_err_cm2_s') is None or not np.isfinite(result['D_err_cm2_s']):
        click.echo('  (no error: give --n-ions and --run-time, or keep model.xyz and run.in beside msd.out)')


# ------------------------------------------------------------------------------------------------- commands
@cmd_analyze.command('msd')
@click.argument('path', type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option('--temperature', '-T', type=float, required=True, help='Temperature of the run (K).')
@click.option('--group', type=int, default=0, show_default=True, help='msd.out: group (grouping method 0).')
@click.option('--species', default='Li', show_default=True, help='Trajectory: the mobile species.')
@click.option('--dt', 'dt_ps', type=float, help='Trajectory: time between frames (ps); from the file if known.')
@click.option('--n-ions', type=int, help='msd.out: ions in the group (default: from model.xyz beside it).')
@click.option('--run-time', 'run_length_ps', type=float,
              help='msd.out: length of the run (ps) (default: from run.in beside it).')
@click.option('--volume', type=float, help='Volume (Å³) for σ (default: thermo.out beside msd.out, or the cell).')
@click.option('--start-fraction', type=float, default=0.1, show_default=True, help='Fit window start (of the lags).')
@click.option('--end-fraction', type=float, help='Fit window end (default 0.4 for msd.out as GPUMDkit, else 0.5).')
@click.option('--json', 'as_json', is_flag=True, help='Print one JSON object.')
@click.option('--plot', 'plot_path', type=click.Path(dir_okay=False, path_type=Path), help='Plot MSD and fit here.')
def cmd_analyze_msd(path, temperature, group, species, dt_ps, n_ions, run_length_ps, volume, start_fraction,
                    end_fraction, as_json, plot_path):
    """D per direction and total (cm²/s, with error) from GPUMD's msd.out or a trajectory (.npz, extxyz)."""
    try:
        if path.suffix in ('.npz', '.xyz', '.extxyz'):
            result = analyse_trajectory(path, temperature, species, dt_ps, volume, start_fraction,
                                        end_fraction or 0.5)
        else:
            result = analyse_msd_out(path, temperature, group, n_ions, run_length_ps, volume, start_fraction,
                                     end_fraction or 0.4)
    except ValueError as exception:
        raise click.ClickException(str(exception)) from exception
    if plot_path is not None:
        from aiida_sseff.plots.transport import plot_msd

        time, msd, fit = result['_curve']
        plot_msd(time, msd, (fit.t_start_ps, fit.t_end_ps), slope=6 * fit.d, intercept=fit.intercept, path=plot_path,
                 title=f'{path.name}, {temperature:g} K')
        result['plot'] = str(plot_path)
    if as_json:
        click.echo(json.dumps(_public(result)))
        return
    _echo_single(result)
    if plot_path is not None:
        click.echo(f'plot: {plot_path}')


@cmd_analyze.command('arrhenius')
@click.argument('directory', type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option('--group', type=int, default=0, show_default=True, help='Group of msd.out (grouping method 0).')
@click.option('--n-ions', type=int, help='Ions in the group (default: model.xyz in each folder).')
@click.option('--run-time', 'run_length_ps', type=float, help='Run length in ps (default: run.in in each folder).')
@click.option('--volume', type=float, help='Volume (Å³) for σ (default: thermo.out in each folder).')
@click.option('--start-fraction', type=float, default=0.1, show_default=True)
@click.option('--end-fraction', type=float, default=0.4, show_default=True)
@click.option('--extrapolate-to', type=float, default=300.0, show_default=True, help='Temperature (K).')
@click.option('--json', 'as_json', is_flag=True, help='Print one JSON object.')
@click.option('--plot', 'plot_path', type=click.Path(dir_okay=False, path_type=Path), help='Arrhenius plot here.')
def cmd_analyze_arrhenius(directory, group, n_ions, run_length_ps, volume, start_fraction, end_fraction,
                          extrapolate_to, as_json, plot_path):
    """D(T), Ea ± σ, D0, D and σ at 300 K from <DIRECTORY>/<T>K/msd.out (GPUMDkit's layout)."""
    try:
        result = arrhenius_from_folders(directory, group, n_ions, run_length_ps, volume, start_fraction,
                                        end_fraction, extrapolate_to)
    except ValueError as exception:
        raise click.ClickException(str(exception)) from exception
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
        click.echo(json.dumps(_public({**result, 'rows': [_public(r) for r in rows]})))
        return
    click.echo(f"{'T (K)':>8} {'D (cm²/s)':>24} {'sigma (mS/cm)':>22} {'MSD end (Å²)':>13}")
    for r in rows:
        sigma = _pm(1e3 * r['sigma_S_cm'], 1e3 * r['sigma_err_S_cm'], '.4g') if 'sigma_S_cm' in r else 'n/a'
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
    if result.get('kink', {}).get('testable'):
        click.echo(f"kink test: {result['kink']['message']}")
    if plot_path is not None:
        click.echo(f'plot: {plot_path}')


# ------------------------------------------------------------------------------------------ stored workflows
def _diffusion_node(process):
    if 'results' not in process.outputs or 'diffusion' not in process.outputs:
        state = f'exit status {process.exit_status}: {process.exit_message}' if process.is_terminated else 'running'
        raise click.ClickException(f'<{process.pk}> has no diffusion results ({process.process_label}, {state})')
    return process


def fit_from_results(results: dict):
    """An :class:`~aiida_sseff.analysis.arrhenius.ArrheniusFit` rebuilt from a stored ``results`` Dict."""
    from aiida_sseff.analysis.arrhenius import ArrheniusFit

    return ArrheniusFit(ea=results['Ea_eV'], ea_err=results['Ea_err_eV'], d0=results['D0_cm2_s'],
                        d0_err=results['D0_err_cm2_s'], params=np.array(results['arrhenius_params'], dtype=float),
                        cov=np.array(results['arrhenius_cov'], dtype=float), chi2=float('nan'),
                        dof=int(results['dof']), scaled=bool(results['errors_scaled_by_chi2']))


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
    from aiida_sseff.plots.transport import plot_transport

    node = _diffusion_node(process)
    results = node.outputs.results.get_dict()
    curves = []
    for label in sorted(node.outputs.msd, key=lambda k: float(k[1:].split('K')[0].replace('p', '.'))):
        msd = node.outputs.msd[label]
        attrs = msd.base.attributes.all
        curves.append({'label': label, 'time_ps': msd.get_array('time_ps'), 'msd_xyz': msd.get_array('msd_xyz'),
                       'fit_window': (attrs['fit_t_start_ps'], attrs['fit_t_end_ps']),
                       'slope': attrs.get('fit_slope_A2_ps'), 'intercept': attrs.get('fit_intercept_A2')})
    table = node.outputs.diffusion
    plot_transport(curves, table.get_array('temperature_K'), table.get_array('D_cm2_s'),
                   table.get_array('D_err_cm2_s'), fit=fit_from_results(results),
                   extrapolate_to_K=results['extrapolation_temperature_K'], fitted=table.get_array('fitted') > 0,
                   path=path, title=f'sseff.diffusion <{node.pk}>')
    click.echo(f'Wrote {path}')
