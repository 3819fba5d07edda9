"""Li transport from output files on disk, outside any database: a GPUMD folder (``msd.out`` with ``run.in``,
``model.xyz``, ``thermo.out`` beside it), a trajectory file, and an Arrhenius fit over GPUMDkit's ``<DIR>/<T>K/``
folders. Pure functions (no aiida, no click), behind ``aiida-sseff analyze msd|arrhenius`` and usable from a notebook.

Units: T in K, time in ps, D in cm²/s, σ in S/cm, volume in Å³. Every function returns a plain dict (JSON-ready
after :func:`public`) whose ``sources`` say where each number that the error bars need came from.

Error bars of a GPUMD ``msd.out`` need the ions of the group and the number of time origins GPUMD averaged
(:func:`aiida_sseff.analysis.gpumd_msd.gpumd_time_origins`: ``n_samples - Nc + 1``). The ions come from the
block's ``# num_atoms_per_group`` header (GPUMD ≥ 5.6), else ``model.xyz``; the origins from ``run.in`` (the run
with ``compute_msd``: steps // sample interval samples) or a given run length. They go to
:func:`aiida_sseff.analysis.diffusion.fit_diffusion_from_msd_curve` (``n_atoms``, ``n_time_origins``: GPUMD's
windowed estimator). Without them D has no error and ``errors`` says why.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

__all__ = ['analyse_msd_out', 'analyse_trajectory', 'arrhenius_from_folders', 'msd_statistics', 'public',
           'temperature_folders']

_T_FOLDER = re.compile(r'^(\d+(?:\.\d+)?)K$')
#: the unweighted kink test's assumption, reported with its verdict
HOMOSCEDASTIC = 'unweighted: assumes the same scatter of ln D at every temperature (homoscedastic residuals)'


def _require_positive(name, value, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value) \
            or not value > 0:
        raise ValueError(f'{name}: expected a positive number, got {value!r}.')
    return value


def _check_window(start_fraction, end_fraction):
    for name, value in (('start_fraction', start_fraction), ('end_fraction', end_fraction)):
        if not (isinstance(value, (int, float)) and 0 <= value <= 1):
            raise ValueError(f'{name}: expected a fraction of the lags between 0 and 1, got {value!r}.')
    if not start_fraction < end_fraction:
        raise ValueError(f'fit window: start_fraction {start_fraction} must be below end_fraction {end_fraction}.')


def public(result: dict) -> dict:
    """A JSON-safe copy without the private (``_``) entries (curves and fit objects for plots)."""
    from aiida_sseff.utils import json_safe

    def drop_private(value):
        if isinstance(value, dict):
            return {k: drop_private(v) for k, v in value.items() if not str(k).startswith('_')}
        if isinstance(value, list):
            return [drop_private(v) for v in value]
        return value

    return json_safe(drop_private(result))


# ------------------------------------------------------------------------------------------------------ msd.out
def msd_statistics(msd_path, block=None, group: int = 0, n_ions: int | None = None,
                   run_length_ps: float | None = None) -> dict:
    """The ions and time origins behind one ``msd.out`` block, and where each came from.

    Parameters
    ----------
    msd_path : the ``msd.out``; ``run.in`` and ``model.xyz`` are looked for in its folder.
    block : the :class:`~aiida_sseff.io.gpumd.MsdBlock` (default: the file's last block, GPUMD's last run).
    group : the block's group (0 … G-1; with ``all_groups gm`` group g of grouping method gm).
    n_ions, run_length_ps : given values, used before anything found in the files (``run_length_ps`` is the
        production run with ``compute_msd``; samples = run length / sample spacing of the block).

    Returns
    -------
    dict with ``n_ions``, ``n_time_origins``, ``n_samples``, ``n_correlation``, ``run_length_ps`` (None where
    unknown) and ``sources`` (one sentence per number).
    """
    from aiida_sseff.analysis.gpumd_msd import gpumd_time_origins
    from aiida_sseff.io.gpumd import model_group_sizes, msd_run, read_msd, read_run_in

    msd_path = Path(msd_path)
    folder = msd_path.parent
    if block is None:
        block = read_msd(msd_path)[-1]
    sources: dict[str, str] = {}
    nc = block.time.size
    spacing = float(block.time[1] - block.time[0]) if nc > 1 else None
    run = None
    if (folder / 'run.in').is_file():
        run = msd_run(read_run_in(folder / 'run.in'), source=str(folder / 'run.in'))
        msd = run.compute_msd
        if msd.n_correlation != nc:
            raise ValueError(f'{folder / "run.in"}: compute_msd has Nc = {msd.n_correlation}, but the last block of '
                             f'{msd_path} has {nc} rows: the run.in is not that of this msd.out.')
        if spacing is not None and not np.isclose(run.dt_sample_ps, spacing, rtol=1e-4):
            raise ValueError(f'{folder / "run.in"}: samples every {run.dt_sample_ps:g} ps (compute_msd '
                             f'{msd.sample_interval} × time_step {run.time_step_fs:g} fs), but {msd_path} is spaced '
                             f'by {spacing:g} ps.')
    if block.has_header and run is not None and (block.sample_interval, block.group, block.all_groups) != (
            run.compute_msd.sample_interval, run.compute_msd.group, run.compute_msd.all_groups):
        raise ValueError(f'{msd_path}: its header `compute_msd {" ".join(block.header["compute_msd"])}` differs '
                         f'from the compute_msd of {folder / "run.in"} (line {run.line}).')
    all_groups = block.all_groups if block.has_header else (run.compute_msd.all_groups if run else None)
    one_group = block.group if block.has_header else (run.compute_msd.group if run else None)

    # ions of the group
    if n_ions is not None:
        n_ions = int(_require_positive('n_ions', n_ions))
        sources['n_ions'] = 'given'
    elif block.num_atoms_per_group is not None:
        n_ions = int(block.num_atoms_per_group[group])
        sources['n_ions'] = f'msd.out header (# num_atoms_per_group, group {group})'
    elif (folder / 'model.xyz').is_file():
        method, label = (all_groups, group) if all_groups is not None else one_group or (None, None)
        if method is None and block.n_groups == 1 and run is not None:
            from aiida_sseff.io.gpumd import read_model_xyz

            n_ions = len(read_model_xyz(folder / 'model.xyz')[0])  # compute_msd without a group: every atom
            sources['n_ions'] = 'model.xyz (all atoms: compute_msd in run.in has no group)'
        else:
            assumed = method is None
            method, label = (0, group) if assumed else (method, label)  # no run.in: GPUMDkit's all_groups 0
            sizes = model_group_sizes(folder / 'model.xyz', method)
            if sizes is not None and label < sizes.size:
                n_ions = int(sizes[label])
                sources['n_ions'] = f'model.xyz (group {label} of grouping method {method}' + (
                    ', assumed: no run.in says how msd.out was grouped)' if assumed else ')')
    if n_ions is None:
        sources['n_ions'] = 'unknown: no header in msd.out, no model.xyz with groups beside it, no --n-ions'

    # time origins: GPUMD's samples - Nc + 1
    n_samples = None
    if run_length_ps is not None:
        _require_positive('run_length_ps', run_length_ps)
        if spacing is None:
            raise ValueError(f'{msd_path}: one row only; the sample spacing (and the samples of the run) are unknown.')
        n_samples = int(round(run_length_ps / spacing))
        sources['n_time_origins'] = (f'given run length {run_length_ps:g} ps / {spacing:g} ps per sample = '
                                     f'{n_samples} samples, minus Nc - 1 = {nc - 1}')
    elif run is not None:
        n_samples, run_length_ps = run.n_samples, run.duration_ps
        sources['n_time_origins'] = (f'run.in line {run.line}: run {run.steps} // compute_msd interval '
                                     f'{run.compute_msd.sample_interval} = {n_samples} samples, minus Nc - 1 = {nc - 1}')
    else:
        sources['n_time_origins'] = 'unknown: no run.in beside msd.out and no --run-time (msd.out does not say the ' \
                                    'run length)'
    n_origins = None if n_samples is None else gpumd_time_origins(n_samples, nc)
    if n_origins == 0:
        raise ValueError(f'{msd_path}: Nc = {nc} rows but only {n_samples} samples in the run: no time origin '
                         f'(check the run length).')
    return {'n_ions': n_ions, 'n_time_origins': n_origins, 'n_samples': n_samples, 'n_correlation': nc,
            'run_length_ps': run_length_ps, 'sources': sources}


def analyse_msd_out(path, temperature: float, group: int = 0, n_ions: int | None = None,
                    run_length_ps: float | None = None, volume_A3: float | None = None,
                    start_fraction: float = 0.1, end_fraction: float = 0.4, charge: float = 1.0) -> dict:
    """D per direction and total (cm²/s) from a GPUMD ``msd.out`` (its last block) or a GPUMD folder, and σ (S/cm).

    The default window (rows 10 %–40 %) and least-squares slope are GPUMDkit's ``calc_ion_conductivity.py``. The
    error of D is GPUMD's windowed estimator, from the ions and time origins of :func:`msd_statistics`; without
    them it is None and ``errors`` says why. The volume (and mean temperature) for the Nernst–Einstein σ come from
    ``volume_A3`` or ``thermo.out`` in the folder.
    """
    from aiida_sseff.analysis.diffusion import fit_diffusion_from_msd_curve, nernst_einstein_conductivity
    from aiida_sseff.io.gpumd import read_msd, read_thermo

    _require_positive('temperature', temperature, allow_none=False)
    _require_positive('volume_A3', volume_A3)
    _require_positive('charge', charge, allow_none=False)
    _check_window(start_fraction, end_fraction)
    path = Path(path)
    if path.is_dir():
        if not (path / 'msd.out').is_file():
            raise ValueError(f'{path}: no msd.out in this folder (expected the output of GPUMD compute_msd).')
        path = path / 'msd.out'
    if not path.is_file():
        raise ValueError(f'{path}: no such file (expected GPUMD msd.out).')
    folder = path.parent
    block = read_msd(path)[-1]
    if not (isinstance(group, (int, np.integer)) and 0 <= group < block.n_groups):
        raise ValueError(f'{path}: group {group!r} requested, the file has {block.n_groups} group(s) (0 … '
                         f'{block.n_groups - 1}).')
    stats = msd_statistics(path, block, group, n_ions, run_length_ps)
    sources = dict(stats['sources'])
    t_mean = temperature
    if volume_A3 is not None:
        sources['volume'] = 'given'
    elif (folder / 'thermo.out').is_file():
        thermo = read_thermo(folder / 'thermo.out')
        last = thermo[thermo['block'] == thermo['block'].max()]  # the last run's rows, that of the last MSD block
        volume_A3, t_mean = float(last['volume'].mean()), float(last['temperature'].mean())
        sources['volume'] = f'thermo.out (mean over the {len(last)} rows of its last block)'
    else:
        sources['volume'] = 'unknown: no thermo.out beside msd.out and no --volume'
    have_stats = stats['n_ions'] is not None and stats['n_time_origins'] is not None
    fit = fit_diffusion_from_msd_curve(block.time, block.msd[group], start_fraction=start_fraction,
                                       end_fraction=end_fraction, n_atoms=stats['n_ions'] if have_stats else None,
                                       n_time_origins=stats['n_time_origins'] if have_stats else None)
    missing = [k for k in ('n_ions', 'n_time_origins') if stats[k] is None]
    errors = (f'GPUMD windowed estimator ({stats["n_ions"]} ions, {stats["n_time_origins"]} time origins)' if have_stats
              else f'none: {" and ".join(missing)} unknown (see sources)')
    result = {
        'file': str(path), 'group': group, 'temperature_K': temperature, 'n_ions': stats['n_ions'],
        'n_time_origins': stats['n_time_origins'], 'n_samples': stats['n_samples'],
        'n_correlation': stats['n_correlation'], 'run_length_ps': stats['run_length_ps'],
        'gpumd_header': block.has_header, 'method': fit.method, 't_start_ps': fit.t_start_ps,
        't_end_ps': fit.t_end_ps, 'D_cm2_s': fit.d_cm2_s, 'D_err_cm2_s': fit.d_err_cm2_s if have_stats else None,
        'D_xyz_cm2_s': list(fit.d_xyz_cm2_s), 'D_xyz_err_cm2_s': list(fit.d_xyz_err_cm2_s) if have_stats else None,
        'msd_end_A2': float(np.interp(fit.t_end_ps, block.time, block.msd[group].sum(axis=1))),
        'volume_A3': volume_A3, 'temperature_mean_K': t_mean, 'errors': errors, 'sources': sources,
        '_curve': (block.time, block.msd[group], fit),
    }
    n = stats['n_ions']
    if volume_A3 is not None and n and fit.d > 0:
        err = fit.d_err_cm2_s if have_stats and np.isfinite(fit.d_err_cm2_s) else 0.0
        sigma, sigma_err = nernst_einstein_conductivity(fit.d_cm2_s, n, volume_A3, t_mean, charge, err)
        result['sigma_S_cm'], result['sigma_err_S_cm'] = sigma, sigma_err if have_stats else None
        result['sigma_xyz_S_cm'] = [nernst_einstein_conductivity(d, n, volume_A3, t_mean, charge)[0]
                                    for d in fit.d_xyz_cm2_s]
    return result


# --------------------------------------------------------------------------------------------------- trajectory
def _load_trajectory(path: Path, dt_ps: float | None):
    """(unwrapped positions (M, N, 3) Å, symbols, dt ps, mean volume Å³) from an engine ``trajectory.npz`` or an
    extended XYZ trajectory (GPUMD's ``unwrapped_position`` column if present, else unwrapped frame to frame)."""
    from ase.data import chemical_symbols

    from aiida_sseff.analysis.msd import unwrap_positions

    if path.suffix == '.npz':
        with np.load(path) as data:
            missing = {'positions', 'cells', 'numbers'} - set(data.files)
            if missing:
                raise ValueError(f'{path}: not an engine trajectory.npz (no {sorted(missing)}).')
            positions, cells = data['positions'], data['cells']
            symbols = [chemical_symbols[int(z)] for z in data['numbers']]
            times = data['times_ps'] if 'times_ps' in data.files else None
        if dt_ps is None:
            if times is None or len(times) < 2:
                raise ValueError(f'{path}: no times_ps array; give the time between frames (--dt, ps).')
            dt_ps = float(np.median(np.diff(times)))
        return positions, symbols, dt_ps, float(np.abs(np.linalg.det(cells)).mean())
    from ase.io import read

    try:
        frames = read(path, index=':')
    except Exception as exception:  # ASE raises many types on a file that is not a trajectory
        raise ValueError(f'{path}: not an extended XYZ trajectory ({exception}).') from exception
    if len(frames) < 2:
        raise ValueError(f'{path}: {len(frames)} frame(s); a trajectory needs at least 2.')
    if dt_ps is None:
        raise ValueError(f'{path}: give the time between frames (--dt, ps).')
    cells = np.array([atoms.cell.array for atoms in frames])
    if all('unwrapped_position' in atoms.arrays for atoms in frames):
        positions = np.array([atoms.arrays['unwrapped_position'] for atoms in frames])
    else:
        frac = np.array([atoms.get_scaled_positions(wrap=False) for atoms in frames])
        positions = unwrap_positions(frac, cells)
    return positions, frames[0].get_chemical_symbols(), dt_ps, float(np.abs(np.linalg.det(cells)).mean())


def analyse_trajectory(path, temperature: float, species: str = 'Li', dt_ps: float | None = None,
                       volume_A3: float | None = None, start_fraction: float = 0.1, end_fraction: float = 0.5,
                       charge: float = 1.0) -> dict:
    """D* (per direction, total), D_σ, Haven ratio and σ from a trajectory file (``.npz`` of the engine, extxyz)."""
    from aiida_sseff.analysis.diffusion import analyse_transport

    _require_positive('temperature', temperature, allow_none=False)
    _require_positive('dt_ps', dt_ps)
    _require_positive('volume_A3', volume_A3)
    _check_window(start_fraction, end_fraction)
    path = Path(path)
    positions, symbols, dt_ps, volume = _load_trajectory(path, dt_ps)
    if species not in symbols:
        raise ValueError(f'{path}: no {species!r} atom; the trajectory has {sorted(set(symbols))}.')
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
        'errors': f'every frame an origin, {result.msd.n_atoms} {species} ions ({tracer.method})',
        'sources': {'n_ions': f'the {species} atoms of the trajectory',
                    'volume': 'given' if volume_A3 else 'mean cell of the trajectory'},
        '_curve': (result.msd.time_ps, result.msd.msd_xyz, tracer),
    }


# ----------------------------------------------------------------------------------------------------- Arrhenius
def temperature_folders(directory) -> list[tuple[float, Path]]:
    """GPUMDkit's ``<DIR>/<T>K/msd.out`` folders as ``[(T, folder), ...]`` sorted by T.

    ``ValueError`` naming the folder for a ``<T>K`` folder without ``msd.out`` and for a folder with ``msd.out``
    whose name is not ``<T>K`` (its temperature would be unknown); other folders are ignored.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f'{directory}: not a folder (expected one with <T>K/msd.out subfolders, e.g. 1000K/).')
    found = []
    for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
        match = _T_FOLDER.match(folder.name)
        if match and not (folder / 'msd.out').is_file():
            raise ValueError(f'{folder}: a temperature folder without msd.out (expected GPUMD compute_msd output).')
        if not match and (folder / 'msd.out').is_file():
            raise ValueError(f'{folder}: has msd.out but its name is not <T>K (e.g. 1000K), so its temperature is '
                             f'unknown; rename it.')
        if match:
            temperature = float(match.group(1))
            if not temperature > 0:
                raise ValueError(f'{folder}: temperature {temperature:g} K; expected a positive temperature.')
            found.append((temperature, folder))
    return sorted(found)


def arrhenius_from_folders(directory, group: int = 0, n_ions: int | None = None, run_length_ps: float | None = None,
                           volume_A3: float | None = None, start_fraction: float = 0.1, end_fraction: float = 0.4,
                           extrapolate_to_K: float = 300.0, charge: float = 1.0, kink_alpha: float = 0.01) -> dict:
    """D(T) from ``<DIR>/<T>K/msd.out`` (:func:`analyse_msd_out` each), Arrhenius fit, D and σ extrapolated, and the
    kink test (:func:`aiida_sseff.analysis.arrhenius.detect_kink`).

    With D errors at every temperature the fit and the kink test are weighted. Otherwise the fit is unweighted in
    ln D, its errors come from the scatter of the points (3 temperatures or more), and the kink test is the
    unweighted F-test, which assumes the same scatter of ln D at every temperature. ``kink`` is in the result in
    both cases (``testable`` False below 4 temperatures).
    """
    from aiida_sseff.analysis.arrhenius import detect_kink, fit_arrhenius

    _require_positive('extrapolate_to_K', extrapolate_to_K, allow_none=False)
    folders = temperature_folders(directory)
    if len(folders) < 2:
        raise ValueError(f'{directory}: found {len(folders)} folder(s) <T>K/msd.out; an Arrhenius fit needs at least 2.')
    rows = [analyse_msd_out(p / 'msd.out', t, group, n_ions, run_length_ps, volume_A3, start_fraction, end_fraction,
                            charge) for t, p in folders]
    t = np.array([r['temperature_K'] for r in rows])
    d = np.array([r['D_cm2_s'] for r in rows])
    if np.any(d <= 0):
        bad = ', '.join(f'{r["temperature_K"]:g} K' for r in rows if r['D_cm2_s'] <= 0)
        raise ValueError(f'D is not positive at {bad}: no Arrhenius fit (run longer or hotter).')
    err = np.array([np.nan if r['D_err_cm2_s'] is None else r['D_err_cm2_s'] for r in rows], dtype=float)
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
    kink = detect_kink(t, d, err if weighted else None, alpha=kink_alpha)
    d_x, d_x_err = fit.predict(extrapolate_to_K)
    out = {
        'directory': str(directory), 'weighted': weighted, 'rows': rows,
        'Ea_eV': fit.ea, 'Ea_err_eV': fit.ea_err, 'D0_cm2_s': fit.d0, 'D0_err_cm2_s': fit.d0_err,
        'extrapolation_temperature_K': extrapolate_to_K,
        'D_extrapolated_cm2_s': float(d_x), 'D_extrapolated_err_cm2_s': float(d_x_err),
        'reduced_chi2': fit.reduced_chi2 if weighted else None,
        'kink': {'testable': kink.testable, 'significant': kink.significant, 'message': kink.message,
                 'weighted': weighted, 'assumption': None if weighted else HOMOSCEDASTIC,
                 'break_temperature_K': kink.break_temperature, 'Ea_low_T_eV': kink.ea_low_T,
                 'Ea_high_T_eV': kink.ea_high_T, 'p_value': kink.p_value, 'alpha': kink_alpha},
        '_fit': fit,
    }
    volumes = [r['volume_A3'] for r in rows if r['volume_A3'] is not None]
    ions = {r['n_ions'] for r in rows if r['n_ions']}
    if volumes and len(ions) == 1:
        out['sigma_extrapolated_S_cm'], out['sigma_extrapolated_err_S_cm'] = fit.conductivity(
            extrapolate_to_K, ions.pop(), float(np.mean(volumes)), charge)
    return out
