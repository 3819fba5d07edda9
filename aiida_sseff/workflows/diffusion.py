"""``sseff.diffusion``: Li transport from MD at several temperatures — D(T) with honest errors, Arrhenius Ea, D0,
extrapolated D and Nernst–Einstein σ at 300 K — every derived number a calcfunction node.

MD runs either on the CPU engine (``aiida-sseff-engine md``: CPUNEP, MACE or CHGNet; namespace ``engine``), on
GPUMD (``sseff.gpumd``; namespace ``gpumd``), or on LAMMPS with a classical Buckingham + Coulomb potential (the
classical baseline, :class:`~aiida_sseff.workflows.lammps.LammpsMdWorkChain`; namespace ``lammps``); give exactly one
of the three namespaces. The analysis is
:mod:`aiida_sseff.analysis` (FFT MSD, GLS diffusion fit with the kinisi covariance, weighted Arrhenius fit).
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction, if_

from aiida_sseff.analysis.geometry import replication_for_width
from aiida_sseff.data.model import MaceModel, NepModel
from aiida_sseff.potentials.classical import classical_potential
from aiida_sseff.protocols.utils import ProtocolMixin
from aiida_sseff.utils import json_safe
from aiida_sseff.workflows.gpumd import GpumdBaseWorkChain
from aiida_sseff.workflows.md import EngineMdBaseWorkChain

try:  # aiida-lammps is optional (extras `lammps`, `dev`): without it there is no `lammps` namespace
    from aiida_sseff.workflows.lammps import (
        LammpsMdWorkChain,
        lammps_potential_problem,
        validate_lammps_md_parameters,
    )
except ImportError:
    LammpsMdWorkChain = None

__all__ = [
    'DEFAULT_ANALYSIS',
    'DEFAULT_MD',
    'DiffusionWorkChain',
    'arrhenius_analysis',
    'combine_replicas',
    'diffusion_from_gpumd_msd',
    'diffusion_from_trajectory',
    'make_supercell',
    'md_parameters',
    'run_label',
]

#: engine-neutral MD settings (``md`` input); times in fs / ps
DEFAULT_MD = {
    'timestep_fs': 2.0,
    'equilibration_ps': 1.0,
    'production_ps': 20.0,
    'sample_interval_fs': 50.0,
    'thermostat_time_fs': 100.0,
    'ensemble': 'nvt',
    'seed': 1,
    # the volume at each temperature (D depends strongly on it): 'equilibrated_mean' (NPT equilibration, NVT
    # production in the mean equilibration cell; for GPUMD two jobs), 'npt' (NPT equilibration and production),
    # 'input' (NVT at the input cell: an explicit choice)
    'volume': 'equilibrated_mean',
    'pressure_GPa': 0.0,  # target pressure of the NPT runs
    'barostat_time_fs': 1000.0,
    # GPUMD's compute_msd: Nc = this fraction of the production samples (at most 1/2, so that at least half the
    # samples are time origins; msd.cu adds an origin per sample once sample_step >= Nc - 1)
    'msd_max_lag_fraction': 0.5,
    'min_time_origins': 10,  # a GPUMD run whose Nc leaves fewer time origins is refused
    'engine_parameters': {},
}

_VOLUMES = ('equilibrated_mean', 'npt', 'input')

#: analysis settings (``analysis`` input)
DEFAULT_ANALYSIS = {
    # fit window in lag time, the same physical window for the engine and GPUMD: fractions of the production run
    # length (t = fraction × production_ps), or absolute lags t_start_ps/t_end_ps (override the fractions). The
    # start skips the ballistic/vibrational part, the end the long lags with few independent time origins; for
    # GPUMD the end must lie within the longest lag, Nc × sample interval (md.msd_max_lag_fraction)
    'start_fraction': 0.1,
    'end_fraction': 0.5,
    't_start_ps': None,
    't_end_ps': None,
    'method': 'gls',  # 'gls' | 'ols' | 'blocks' (aiida_sseff.analysis.diffusion.estimate_diffusion)
    'min_msd_A2': 2.0,  # total tracer MSD needed at the end of the fit window for a temperature to count
    'charge': 1.0,  # charge of the mobile ion (e), for Nernst–Einstein
    'remove_drift': True,  # subtract the framework's centre-of-mass drift (engine trajectories)
    'extrapolate_to_K': 300.0,
    'arrhenius_absolute_sigma': False,  # False: inflate the fit errors by sqrt(χ²/dof) when the points scatter
    'kink_alpha': 0.01,
    'max_abs_pressure_GPa': 0.5,  # a production run whose mean pressure is further from zero gets a warning
}

_NVT_NAMES = {'engine': 'nvt_bussi', 'gpumd': 'nvt_bdp', 'lammps': 'nvt'}
_NPT_NAMES = {'engine': 'npt_mtk_iso', 'gpumd': 'npt_mttk', 'lammps': 'npt'}


# ------------------------------------------------------------------------------------------------ pure helpers
def run_label(temperature: float, replica: int) -> str:
    """Link label of one MD run: ``T1200K_r0`` (a decimal point becomes ``p``)."""
    return f'T{temperature:g}K_r{replica}'.replace('.', 'p')


def msd_correlation(production_steps: int, sample_interval: int, max_lag_fraction: float = 0.5) -> dict:
    """GPUMD's ``compute_msd`` statistics of a production run: samples, Nc, time origins.

    ``src/measure/msd.cu`` samples after step s when ``(s + 1) % sample_interval == 0`` (``n_samples =
    production_steps // sample_interval``), keeps the last Nc samples in a ring buffer, and adds one time origin
    per sample once ``sample_step >= Nc - 1``; every lag 0 … Nc-1 then averages the same ``n_samples - Nc + 1``
    origins. Nc = ``max_lag_fraction`` × n_samples (at most 1/2: at least half the samples are origins).
    """
    from aiida_sseff.analysis.gpumd_msd import gpumd_time_origins

    if not 0 < float(max_lag_fraction) <= 0.5:
        raise ValueError(f'md.msd_max_lag_fraction must be in (0, 0.5] (Nc at most half the production samples, '
                         f'so that at least half of them are time origins), got {max_lag_fraction}')
    n_samples = production_steps // sample_interval
    n_correlation = max(int(float(max_lag_fraction) * n_samples), 2)
    return {'n_samples': n_samples, 'n_correlation': n_correlation,
            'n_time_origins': gpumd_time_origins(n_samples, n_correlation)}


def resolved_volume(md: dict, engine: str) -> str:
    """``md.volume`` (default ``'equilibrated_mean'``), checked."""
    volume = md.get('volume') or DEFAULT_MD['volume']
    if volume not in _VOLUMES:
        raise ValueError(f'md.volume must be one of {_VOLUMES}, got {volume!r}')
    return volume


def md_parameters(md: dict, engine: str, temperature: float, seed: int) -> dict:
    """Parameters of one MD job from the engine-neutral ``md`` settings (see :data:`DEFAULT_MD`).

    ``engine`` is ``'engine'`` (``aiida-sseff-engine md``), ``'gpumd'`` or ``'lammps'`` (the classical baseline,
    :class:`~aiida_sseff.workflows.lammps.LammpsMdWorkChain`: the engine's parameter names, the NPT equilibration
    and mean-cell production done in the LAMMPS script); ``md['engine_parameters']`` is merged last, for anything
    engine-specific (e.g. ``{'ensemble': 'nvt_lan'}`` for GPUMD).

    The volume (``md.volume``): ``'equilibrated_mean'`` (default) equilibrates in NPT at ``pressure_GPa`` and runs
    the production in NVT in the mean equilibration cell: on the engine in one job (its ``equilibration_ensemble``
    and ``production_cell``); on GPUMD the NPT equilibration is a job of its own
    (:func:`gpumd_equilibration_parameters`) and these are the parameters of the NVT production, which starts from
    its restart file scaled to the mean cell (no equilibration here). ``'npt'`` runs both in NPT; ``'input'`` both
    in NVT at the input cell. For GPUMD, ``compute_msd`` gets Nc from :func:`msd_correlation`. Raises
    ``ValueError`` naming the bad setting (too few MSD samples, too few time origins, ...).
    """
    unknown = sorted(set(md) - set(DEFAULT_MD))
    if unknown:
        raise ValueError(f'md: unknown key(s) {unknown}; known: {sorted(DEFAULT_MD)}')
    if engine not in _NVT_NAMES:
        raise ValueError(f"engine must be 'engine', 'gpumd' or 'lammps', got {engine!r}")
    p = {**DEFAULT_MD, **md}
    for key in ('timestep_fs', 'production_ps', 'sample_interval_fs', 'thermostat_time_fs', 'barostat_time_fs'):
        if not float(p[key]) > 0:
            raise ValueError(f'md.{key} must be > 0, got {p[key]}')
    if float(p['equilibration_ps']) < 0:
        raise ValueError(f'md.equilibration_ps must be >= 0, got {p["equilibration_ps"]}')
    dt = float(p['timestep_fs'])
    production = int(round(1000.0 * float(p['production_ps']) / dt))
    equilibration = int(round(1000.0 * float(p['equilibration_ps']) / dt))
    sample = int(round(float(p['sample_interval_fs']) / dt))
    if sample < 1:
        raise ValueError(f'md.sample_interval_fs ({p["sample_interval_fs"]}) is shorter than the time step ({dt} fs)')
    if production // sample < 20:
        raise ValueError(f'md: production_ps/sample_interval_fs gives {production // sample} MSD samples; at least 20 '
                         'are needed for a diffusion fit')
    volume = resolved_volume(p, engine)
    if volume == 'equilibrated_mean' and equilibration == 0:
        raise ValueError("md.volume 'equilibrated_mean' needs an NPT equilibration (equilibration_ps > 0); set "
                         "volume 'input' for NVT at the input cell")
    nvt = _NVT_NAMES[engine] if p['ensemble'] == 'nvt' else p['ensemble']
    npt = _NPT_NAMES[engine]
    pressure = float(p['pressure_GPa'])
    if engine in ('engine', 'lammps'):
        params = {
            'ensemble': npt if volume == 'npt' else nvt, 'temperature_K': float(temperature), 'timestep_fs': dt,
            'n_steps': production, 'n_equilibration_steps': equilibration, 'thermo_interval': sample,
            'trajectory_interval': sample, 'snapshot_interval': 0, 'seed': int(seed),
            'thermostat_time_fs': float(p['thermostat_time_fs']),
        }
        if volume != 'input':
            params.update({'pressure_GPa': pressure, 'barostat_time_fs': float(p['barostat_time_fs'])})
        if volume == 'equilibrated_mean':
            # keys of the engine's restart branch: NPT equilibration, production in the mean equilibration cell
            params.update({'equilibration_ensemble': npt, 'production_cell': 'equilibrated_mean'})
        if engine == 'lammps':
            params.pop('snapshot_interval')  # the CPU engine's structure snapshots; LAMMPS dumps the trajectory
    else:
        from aiida_sseff.io.gpumd import ComputeMsd, MsdTimeOriginsError

        stats = msd_correlation(production, sample, p['msd_max_lag_fraction'])
        try:
            ComputeMsd(sample, stats['n_correlation']).check(production, int(p['min_time_origins']))
        except MsdTimeOriginsError as exception:
            raise MsdTimeOriginsError(f'md (msd_max_lag_fraction {p["msd_max_lag_fraction"]}, min_time_origins '
                                      f'{p["min_time_origins"]}): {exception}') from None
        params = {
            'ensemble': npt if volume == 'npt' else nvt, 'temperature': float(temperature), 'time_step_fs': dt,
            'production_steps': production, 'velocity_seed': int(seed),
            'equilibration_steps': 0 if volume == 'equilibrated_mean' else equilibration,
            'temperature_coupling': float(p['thermostat_time_fs']) / dt,  # GPUMD's T_coup is in time steps
            'dump_thermo': sample,
            'compute_msd': {'sample_interval': sample, 'n_correlation': stats['n_correlation']},
            'min_time_origins': int(p['min_time_origins']),  # checked again by make_run_in at submission
        }
        if volume == 'npt':
            # npt_mttk: tperiod and pperiod in time steps, target pressures in GPa
            params.update({'pressure': [pressure, pressure], 'pressure_direction': 'iso',
                           'pressure_coupling': float(p['barostat_time_fs']) / dt})
    params.update(p.get('engine_parameters') or {})
    return params


def gpumd_equilibration_parameters(md: dict, temperature: float, seed: int) -> dict:
    """The GPUMD NPT equilibration job of ``md.volume = 'equilibrated_mean'``: ``equilibration_ps`` in NPT
    (``npt_mttk … iso`` at ``pressure_GPa``), no MSD, thermo.out every sample interval (its cells give the mean
    cell) and restart.xyz at the last step (the production starts from it). ``engine_parameters`` are for the
    production and are not applied here."""
    p = {**DEFAULT_MD, **md}
    production = md_parameters({**md, 'engine_parameters': {}}, 'gpumd', temperature, seed)
    dt = float(p['timestep_fs'])
    steps = int(round(1000.0 * float(p['equilibration_ps']) / dt))
    pressure = float(p['pressure_GPa'])
    return {
        'ensemble': _NPT_NAMES['gpumd'], 'temperature': float(temperature), 'time_step_fs': dt,
        'production_steps': steps, 'equilibration_steps': 0, 'velocity_seed': int(seed),
        'temperature_coupling': production['temperature_coupling'], 'dump_thermo': production['dump_thermo'],
        'pressure': [pressure, pressure], 'pressure_direction': 'iso',
        'pressure_coupling': float(p['barostat_time_fs']) / dt, 'compute_msd': None, 'dump_restart': steps,
    }


@calcfunction
def restart_in_mean_cell(restart: orm.SinglefileData, thermo: orm.ArrayData) -> orm.SinglefileData:
    """GPUMD's ``restart.xyz`` (positions, velocities, groups) with its cell set to the mean cell of the second half
    of the NPT run's ``thermo.out`` rows (the first half is the barostat settling), positions scaled with it.

    The output carries ``mean_cell`` (Å), ``mean_volume_A3`` and ``mean_pressure_GPa`` of those rows as attributes.
    """
    import tempfile
    from pathlib import Path

    from ase import Atoms

    from aiida_sseff.io.gpumd import read_model_xyz, write_model_xyz

    names = ('cell_xx', 'cell_xy', 'cell_xz', 'cell_yx', 'cell_yy', 'cell_yz', 'cell_zx', 'cell_zy', 'cell_zz')
    missing = [n for n in names if n not in thermo.get_arraynames()]
    if missing:
        raise ValueError(f'restart_in_mean_cell: thermo has no {missing} (an 18-column thermo.out is needed)')
    cells = np.stack([thermo.get_array(n) for n in names], axis=1).reshape(-1, 3, 3)
    start = int(thermo.base.attributes.get('production_rows_from', 0))
    rows = cells[start:]
    rows = rows[len(rows) // 2:]
    if len(rows) == 0:
        raise ValueError('restart_in_mean_cell: thermo holds no rows of the NPT run')
    mean_cell = rows.mean(axis=0)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / 'restart.xyz'
        with restart.open(mode='rb') as handle:
            source.write_bytes(handle.read())
        state, groups = read_model_xyz(source)
        # a fresh Atoms: the writer adds `vel`/`mass`/`group` itself and refuses arrays already there
        atoms = Atoms(state.get_chemical_symbols(), positions=state.positions, cell=state.cell, pbc=True,
                      velocities=state.get_velocities())
        if not np.allclose(state.get_masses(), atoms.get_masses()):
            atoms.new_array('mass', state.get_masses())
        atoms.set_cell(mean_cell, scale_atoms=True)
        target = Path(tmp) / 'restart_mean_cell.xyz'
        write_model_xyz(atoms, target, groups=None if groups is None else groups.T)
        node = orm.SinglefileData(target, filename='restart.xyz')
    attributes = {'mean_cell': mean_cell.tolist(), 'mean_volume_A3': float(abs(np.linalg.det(mean_cell))),
                  'n_rows_averaged': len(rows)}
    if 'pressure' in thermo.get_arraynames():
        attributes['mean_pressure_GPa'] = float(np.mean(thermo.get_array('pressure')[start:][-len(rows):]))
    node.base.attributes.set_many(attributes)
    return node


def _analysis_options(analysis: dict | None) -> dict:
    options = {**DEFAULT_ANALYSIS, **(analysis or {})}
    unknown = sorted(set(options) - set(DEFAULT_ANALYSIS))
    if unknown:
        raise ValueError(f'analysis: unknown key(s) {unknown}; known: {sorted(DEFAULT_ANALYSIS)}')
    if not 0 <= options['start_fraction'] < options['end_fraction'] <= 1:
        raise ValueError('analysis: expected 0 <= start_fraction < end_fraction <= 1, got '
                         f'{options["start_fraction"]}, {options["end_fraction"]}')
    t0, t1 = options['t_start_ps'], options['t_end_ps']
    if (t0 is not None and not float(t0) >= 0) or (t1 is not None and not float(t1) > 0) or \
            (t0 is not None and t1 is not None and not float(t0) < float(t1)):
        raise ValueError(f'analysis: expected 0 <= t_start_ps < t_end_ps, got {t0}, {t1}')
    if options['method'] not in ('gls', 'ols', 'blocks'):
        raise ValueError(f"analysis.method must be 'gls', 'ols' or 'blocks', got {options['method']!r}")
    return options


def fit_window_ps(analysis: dict, production_ps: float) -> tuple[float, float]:
    """The fit window (lag times, ps) of a run of ``production_ps``: ``t_start_ps``/``t_end_ps`` where given, else
    ``start_fraction``/``end_fraction`` × the production run length."""
    opts = _analysis_options(analysis)
    t0 = opts['t_start_ps'] if opts['t_start_ps'] is not None else opts['start_fraction'] * production_ps
    t1 = opts['t_end_ps'] if opts['t_end_ps'] is not None else opts['end_fraction'] * production_ps
    return float(t0), float(t1)


def check_fit_window(md: dict, analysis: dict, engine: str) -> None:
    """Refuse a fit window that ends beyond the longest lag the run gives (GPUMD: Nc × sample interval)."""
    p = {**DEFAULT_MD, **md}
    production_ps = float(p['production_ps'])
    t0, t1 = fit_window_ps(analysis, production_ps)
    if engine == 'gpumd':
        params = md_parameters(md, engine, 1000.0, 1)
        msd = params['compute_msd']
        max_lag = msd['n_correlation'] * msd['sample_interval'] * float(params['time_step_fs']) / 1000.0
        where = (f'the longest GPUMD lag, Nc × sample interval = {max_lag:g} ps (md.msd_max_lag_fraction = '
                 f'{p["msd_max_lag_fraction"]})')
    else:
        max_lag, where = production_ps, f'the production run ({production_ps:g} ps)'
    if t1 > max_lag * (1 + 1e-9):
        raise ValueError(f'analysis: the fit window ends at {t1:g} ps, beyond {where}')
    if t0 >= min(t1, max_lag):
        raise ValueError(f'analysis: the fit window starts at {t0:g} ps, not before its end {min(t1, max_lag):g} ps')


def mean_pressure_entries(pressure_gpa, max_abs_gpa: float) -> dict:
    """``pressure_mean_GPa`` (mean over the production rows) and the ``pressure_warning`` flag."""
    values = np.asarray(pressure_gpa, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {'pressure_mean_GPa': None, 'pressure_warning': False}
    mean = float(values.mean())
    return {'pressure_mean_GPa': mean, 'pressure_warning': bool(abs(mean) > float(max_abs_gpa))}


def _msd_at(time_ps, msd_total, t_ps) -> float:
    return float(np.interp(t_ps, time_ps, msd_total))


def _msd_node(time_ps, msd_xyz, fit, msd_collective=None) -> orm.ArrayData:
    node = orm.ArrayData()
    node.set_array('time_ps', np.asarray(time_ps, dtype=float))
    node.set_array('msd_xyz', np.asarray(msd_xyz, dtype=float))
    node.set_array('msd_total', np.asarray(msd_xyz, dtype=float).sum(axis=1))
    if msd_collective is not None:
        node.set_array('msd_collective', np.asarray(msd_collective, dtype=float))
    node.base.attributes.set_many(json_safe({
        'fit_t_start_ps': fit.t_start_ps, 'fit_t_end_ps': fit.t_end_ps,
        'fit_slope_A2_ps': 6.0 * fit.d, 'fit_intercept_A2': fit.intercept,
        'units': {'time_ps': 'ps', 'msd_xyz': 'angstrom^2'},
    }))
    return node


def _fit_entries(fit, prefix: str = 'D') -> dict:
    return {
        f'{prefix}_cm2_s': fit.d_cm2_s, f'{prefix}_err_cm2_s': fit.d_err_cm2_s,
        f'{prefix}_xyz_cm2_s': list(fit.d_xyz_cm2_s), f'{prefix}_xyz_err_cm2_s': list(fit.d_xyz_err_cm2_s),
    }


def _diffusive(d: float, d_err: float, msd_end: float, min_msd: float) -> tuple[bool, str]:
    if not (np.isfinite(d) and d > 0):
        return False, f'D = {d:.3g} Å²/ps is not positive'
    if not np.isfinite(msd_end) or msd_end < min_msd:
        return False, f'MSD {msd_end:.2f} Å² < {min_msd:g} Å² at the end of the fit window'
    if not (np.isfinite(d_err) and d_err > 0):
        return False, 'no finite error on D'
    return True, ''


# ------------------------------------------------------------------------------------------------ calcfunctions
@calcfunction
def make_supercell(structure: orm.StructureData, min_width: orm.Float) -> orm.StructureData:
    """The structure repeated so that every perpendicular width is ≥ ``min_width`` (Å), e.g. twice the cutoff."""
    atoms = structure.get_ase()
    reps = replication_for_width(atoms.cell.array, min_width.value)
    supercell = atoms.repeat(reps)
    node = orm.StructureData(ase=supercell)
    node.base.extras.set('replication', list(reps))
    return node


def _transport_entries(result) -> dict:
    """Per-run entries of :func:`aiida_sseff.analysis.diffusion.analyse_transport`'s collective part."""
    coll = result.collective
    return {
        **_fit_entries(coll, 'D_collective'),
        'haven_ratio': result.haven_ratio if coll.d > 0 else None,
        'haven_ratio_err': result.haven_ratio_err if coll.d > 0 else None,
        'sigma_collective_S_cm': result.sigma_collective, 'sigma_collective_err_S_cm': result.sigma_collective_err,
    }


def _engine_run_result(traj: orm.TrajectoryData, thermo: orm.ArrayData, temperature: float, opts: dict):
    from aiida_sseff.analysis.diffusion import analyse_transport

    positions = traj.get_array('positions')
    times = traj.get_array('times')
    symbols = list(traj.symbols)
    dt_ps = float(np.median(np.diff(times)))
    names = thermo.get_arraynames()
    volume = float(np.mean(thermo.get_array('volume_A3'))) if 'volume_A3' in names else \
        float(abs(np.linalg.det(traj.get_array('cells')).mean()))
    t_mean = float(np.mean(thermo.get_array('temperature_K')))
    species = opts['species']
    run_length = float(times[-1] - times[0])
    t_start, t_end = fit_window_ps(opts['analysis'], run_length)
    result = analyse_transport(positions, symbols, dt_ps, species=species, temperature_K=t_mean, volume_A3=volume,
                               charge=opts['charge'], remove_drift=opts['remove_drift'], method=opts['method'],
                               t_start_ps=t_start, t_end_ps=t_end)
    tracer = result.tracer
    msd_end = _msd_at(result.msd.time_ps, result.msd.msd_total, tracer.t_end_ps)
    ok, reason = _diffusive(tracer.d, tracer.d_err, msd_end, opts['min_msd_A2'])
    pressure = thermo.get_array('pressure_GPa') if 'pressure_GPa' in names else []
    entries = {
        'temperature_K': temperature, 'temperature_mean_K': t_mean, 'volume_A3': volume,
        'n_ions': result.msd.n_atoms, 'species': species, 'method': tracer.method,
        't_start_ps': tracer.t_start_ps, 't_end_ps': tracer.t_end_ps, 'run_length_ps': run_length,
        'msd_end_A2': msd_end, 'diffusive': ok, 'reason': reason, 'drift_removed': result.msd.drift_removed,
        **_fit_entries(tracer), **_transport_entries(result),
        'sigma_S_cm': result.sigma_ne, 'sigma_err_S_cm': result.sigma_ne_err,
        **mean_pressure_entries(pressure, opts['max_abs_pressure_GPa']),
    }
    return orm.Dict(json_safe(entries)), _msd_node(result.msd.time_ps, result.msd.msd_xyz, tracer,
                                                result.msd.msd_collective)


@calcfunction
def diffusion_from_trajectory(trajectory: orm.TrajectoryData, thermo: orm.ArrayData, temperature: orm.Float,
                              analysis: orm.Dict, species: orm.Str):
    """D*, D_σ, Haven ratio and Nernst–Einstein σ (cm²/s, S/cm) of ``species`` from an unwrapped engine trajectory.

    Outputs ``result`` (Dict, per-run numbers; σ uses the mean volume and the mean measured temperature of the
    run; ``pressure_mean_GPa`` and ``pressure_warning``) and ``msd`` (ArrayData: time_ps, msd_xyz in Å², the fit
    window and line as attributes). The fit window is :func:`fit_window_ps` of the run length.
    """
    opts = {**_analysis_options(analysis.get_dict()), 'species': species.value, 'analysis': analysis.get_dict()}
    result, msd = _engine_run_result(trajectory, thermo, temperature.value, opts)
    return {'result': result, 'msd': msd}


def gpumd_msd_statistics(msd: orm.ArrayData, n_ions_in_structure: int, parameters: dict | None = None):
    """``(n_atoms, n_time_origins, source)`` for the error model of a GPUMD MSD curve.

    The number of ions of the group: ``num_atoms_per_group`` of msd.out's header (kept by the parser as the
    attribute of the same name), else the structure's count of the mobile species (group 0 of model.xyz). The
    time origins: the ``n_time_origins`` attribute (an int, or a list with one entry per restart segment from
    :class:`~aiida_sseff.workflows.gpumd.GpumdBaseWorkChain`), which the parser derives from msd.out's
    ``compute_msd`` header line (or run.in) and the production steps; else from ``parameters`` (a run's
    ``production_steps`` and ``compute_msd``). Raises ``ValueError`` when neither tells.
    """
    from aiida_sseff.analysis.gpumd_msd import gpumd_time_origins

    attributes = msd.base.attributes.all
    per_group = attributes.get('num_atoms_per_group')
    n_atoms = int(per_group[0]) if per_group else int(n_ions_in_structure)
    origins = attributes.get('n_time_origins')
    source = 'msd attributes'
    if origins is None and parameters and parameters.get('compute_msd'):
        cmsd = parameters['compute_msd']
        origins = gpumd_time_origins(int(parameters['production_steps']) // int(cmsd['sample_interval']),
                                     int(cmsd['n_correlation']))
        source = 'run parameters'
    if origins is None:
        raise ValueError('GPUMD MSD: the number of time origins is unknown (no `n_time_origins` attribute on the '
                         'msd node and no run parameters with production_steps and compute_msd)')
    return n_atoms, origins, source


@calcfunction
def diffusion_from_gpumd_msd(msd: orm.ArrayData, structure: orm.StructureData, temperature: orm.Float,
                             run_length_ps: orm.Float, analysis: orm.Dict, species: orm.Str,
                             thermo: orm.ArrayData | None = None, parameters: orm.Dict | None = None,
                             trajectory: orm.TrajectoryData | None = None):
    """D* (cm²/s) per direction and total from GPUMD's ``msd.out`` (group 0 = the mobile species) and σ_NE.

    The error model (:func:`aiida_sseff.analysis.diffusion.fit_diffusion_from_msd_curve` with ``n_atoms`` and
    ``n_time_origins``) follows GPUMD's algorithm (``src/measure/msd.cu``): positions are sampled every
    ``sample_interval`` steps into a ring buffer of Nc samples, and once ``sample_step >= Nc - 1`` every sample is
    a time origin for all lags 0 … Nc-1 at once, so each lag averages the same ``n_samples - Nc + 1`` origins (not
    the ``n_samples - lag`` of a full-trajectory MSD) over the group's ions, and the normalisation is 1 / (ions ×
    origins). The origins and ions come from :func:`gpumd_msd_statistics` (msd.out's header, run.in, the
    structure). Displacements are taken as Gaussian (a curve alone cannot give the non-Gaussian factor).

    The fit window is :func:`fit_window_ps` of ``run_length_ps`` (the production run length), clipped to the
    longest lag. GPUMD's MSD is not corrected for the framework drift. With ``trajectory`` (the unwrapped dump
    of every atom), the collective D, the Haven ratio and σ from D_σ come from
    :func:`aiida_sseff.analysis.diffusion.analyse_transport`, as on the engine path. Volume, temperature and the
    mean pressure are means over the production rows of ``thermo`` (attribute ``production_rows_from``).
    """
    from aiida_sseff.analysis.diffusion import (
        analyse_transport,
        fit_diffusion_from_msd_curve,
        nernst_einstein_conductivity,
    )

    opts = _analysis_options(analysis.get_dict())
    symbols = structure.get_ase().get_chemical_symbols()
    n_structure = sum(1 for s in symbols if s == species.value)
    params = parameters.get_dict() if parameters is not None else None
    n_ions, n_origins, origins_source = gpumd_msd_statistics(msd, n_structure, params)
    time = msd.get_array('time')
    msd_xyz = msd.get_array('msd')[0]
    method = 'gls' if opts['method'] == 'gls' else 'ols'
    t_start, t_end = fit_window_ps(analysis.get_dict(), run_length_ps.value)
    fit = fit_diffusion_from_msd_curve(time, msd_xyz, t_start_ps=t_start, t_end_ps=min(t_end, float(time[-1])),
                                       n_atoms=n_ions, n_time_origins=n_origins, method=method)
    pressure_entries = {'pressure_mean_GPa': None, 'pressure_warning': False}
    volume, t_mean = float(structure.get_cell_volume()), temperature.value
    if thermo is not None and 'volume' in thermo.get_arraynames():
        start = int(thermo.base.attributes.get('production_rows_from', 0))
        volume = float(np.mean(thermo.get_array('volume')[start:]))
        t_mean = float(np.mean(thermo.get_array('temperature')[start:]))
        if 'pressure' in thermo.get_arraynames():
            pressure_entries = mean_pressure_entries(thermo.get_array('pressure')[start:],
                                                     opts['max_abs_pressure_GPa'])
    msd_end = _msd_at(time, msd_xyz.sum(axis=1), fit.t_end_ps)
    ok, reason = _diffusive(fit.d, fit.d_err, msd_end, opts['min_msd_A2'])
    sigma, sigma_err = (nernst_einstein_conductivity(fit.d_cm2_s, n_ions, volume, t_mean, opts['charge'],
                                                     fit.d_err_cm2_s) if fit.d > 0 else (float('nan'),) * 2)
    entries = {
        'temperature_K': temperature.value, 'temperature_mean_K': t_mean, 'volume_A3': volume, 'n_ions': n_ions,
        'n_time_origins': n_origins, 'time_origins_from': origins_source,
        'species': species.value, 'method': fit.method, 't_start_ps': fit.t_start_ps, 't_end_ps': fit.t_end_ps,
        'run_length_ps': run_length_ps.value, 'msd_end_A2': msd_end, 'diffusive': ok, 'reason': reason,
        'drift_removed': False, **_fit_entries(fit), 'D_collective_cm2_s': None, 'haven_ratio': None,
        'sigma_S_cm': sigma, 'sigma_err_S_cm': sigma_err, **pressure_entries,
        'gpumd_version': msd.base.attributes.get('gpumd_version', None),
    }
    if trajectory is not None:
        times = trajectory.get_array('times')
        result = analyse_transport(trajectory.get_array('positions'), list(trajectory.symbols),
                                   float(np.median(np.diff(times))), species=species.value, temperature_K=t_mean,
                                   volume_A3=volume, charge=opts['charge'], remove_drift=opts['remove_drift'],
                                   method=opts['method'], t_start_ps=t_start, t_end_ps=t_end)
        entries.update(_transport_entries(result))
        entries['D_trajectory_cm2_s'] = result.tracer.d_cm2_s  # same ions, all origins of the dump
    return {'result': orm.Dict(json_safe(entries)), 'msd': _msd_node(time, msd_xyz, fit)}


def combine_replicas(runs: list[dict]) -> dict:
    """One temperature's replicas (per-run result dicts) → one row.

    D is the inverse-variance weighted mean; its error is the larger of the propagated error ``1/sqrt(Σ w)`` and
    the scatter of the replicas ``std/sqrt(n)`` (independent replicas that disagree by more than their errors
    say show that the errors were too small). σ is recomputed from the combined D, mean volume and temperature.
    """
    from aiida_sseff.analysis.diffusion import nernst_einstein_conductivity

    def combine(values, errors):
        v = np.array([np.nan if x is None else x for x in values], dtype=float)
        e = np.array([np.nan if x is None else x for x in errors], dtype=float)
        good = np.isfinite(v) & np.isfinite(e) & (e > 0)
        if not good.any():
            return float(np.nanmean(v)) if np.isfinite(v).any() else float('nan'), float('nan')
        v, e = v[good], e[good]
        w = 1.0 / e**2
        mean = float(np.sum(w * v) / np.sum(w))
        err = float(1.0 / np.sqrt(np.sum(w)))
        if v.size > 1:
            err = max(err, float(np.std(v, ddof=1) / np.sqrt(v.size)))
        return mean, err

    first = runs[0]
    d, d_err = combine([r['D_cm2_s'] for r in runs], [r['D_err_cm2_s'] for r in runs])
    d_xyz = [combine([r['D_xyz_cm2_s'][i] for r in runs], [r['D_xyz_err_cm2_s'][i] for r in runs]) for i in range(3)]
    row = {
        'temperature_K': first['temperature_K'], 'n_replicas': len(runs),
        'temperature_mean_K': float(np.mean([r['temperature_mean_K'] for r in runs])),
        'volume_A3': float(np.mean([r['volume_A3'] for r in runs])), 'n_ions': first['n_ions'],
        'D_cm2_s': d, 'D_err_cm2_s': d_err,
        'D_xyz_cm2_s': [x[0] for x in d_xyz], 'D_xyz_err_cm2_s': [x[1] for x in d_xyz],
        'msd_end_A2': float(np.mean([r['msd_end_A2'] for r in runs])),
        'diffusive': all(r['diffusive'] for r in runs),
        'reason': '; '.join(r['reason'] for r in runs if r.get('reason')),
        'pressure_warning': any(r.get('pressure_warning') for r in runs),
    }
    pressures = [r['pressure_mean_GPa'] for r in runs if r.get('pressure_mean_GPa') is not None]
    row['pressure_mean_GPa'] = float(np.mean(pressures)) if pressures else None
    if all(r.get('D_collective_cm2_s') is not None for r in runs):
        dc, dc_err = combine([r['D_collective_cm2_s'] for r in runs], [r['D_collective_err_cm2_s'] for r in runs])
        row['D_collective_cm2_s'], row['D_collective_err_cm2_s'] = dc, dc_err
        if dc > 0 and d > 0:
            from aiida_sseff.analysis.diffusion import haven_ratio

            row['haven_ratio'], row['haven_ratio_err'] = haven_ratio(d, d_err, dc, dc_err)
    if d > 0:
        row['sigma_S_cm'], row['sigma_err_S_cm'] = nernst_einstein_conductivity(
            d, row['n_ions'], row['volume_A3'], row['temperature_mean_K'], first.get('charge', 1.0), d_err)
    return row


@calcfunction
def arrhenius_analysis(analysis: orm.Dict, **runs: orm.Dict):
    """Replicas combined per temperature, weighted Arrhenius fit of the diffusive temperatures, extrapolation.

    Outputs ``results`` (Dict: Ea ± σ in eV, D0 ± σ in cm²/s, D and Nernst–Einstein σ at ``extrapolate_to_K``
    with errors from the full fit covariance, the kink test, the per-temperature table) and ``diffusion``
    (ArrayData: one row per temperature). σ(300 K) takes the mean MD volume (the thermal expansion down to
    300 K is neglected).
    """
    from aiida_sseff.analysis.arrhenius import detect_kink, fit_arrhenius

    opts = _analysis_options(analysis.get_dict())
    by_t: dict[float, list[dict]] = {}
    for key in sorted(runs):
        run = runs[key].get_dict()
        run['charge'] = opts['charge']
        by_t.setdefault(float(run['temperature_K']), []).append(run)
    rows = [combine_replicas(by_t[t]) for t in sorted(by_t)]
    fitted = [r for r in rows if r['diffusive']]
    if len(fitted) < 2:
        raise ValueError(f'Arrhenius: {len(fitted)} diffusive temperature(s); at least 2 are needed')
    t = np.array([r['temperature_K'] for r in fitted])
    d = np.array([r['D_cm2_s'] for r in fitted])
    e = np.array([r['D_err_cm2_s'] for r in fitted])
    fit = fit_arrhenius(t, d, e, absolute_sigma=opts['arrhenius_absolute_sigma'])
    kink = detect_kink(t, d, e, alpha=opts['kink_alpha'])
    t_x = float(opts['extrapolate_to_K'])
    d_x, d_x_err = fit.predict(t_x)
    lo, hi = fit.interval(t_x)
    n_ions = fitted[0]['n_ions']
    volume = float(np.mean([r['volume_A3'] for r in rows]))
    sigma_x, sigma_x_err = fit.conductivity(t_x, n_ions, volume, opts['charge'])
    results = {
        'Ea_eV': fit.ea, 'Ea_err_eV': fit.ea_err, 'D0_cm2_s': fit.d0, 'D0_err_cm2_s': fit.d0_err,
        'extrapolation_temperature_K': t_x,
        'D_extrapolated_cm2_s': float(d_x), 'D_extrapolated_err_cm2_s': float(d_x_err),
        'D_extrapolated_interval_cm2_s': [float(lo), float(hi)],
        'sigma_extrapolated_S_cm': sigma_x, 'sigma_extrapolated_err_S_cm': sigma_x_err,
        'arrhenius_params': list(fit.params), 'arrhenius_cov': fit.cov.tolist(),
        'reduced_chi2': fit.reduced_chi2, 'dof': fit.dof, 'errors_scaled_by_chi2': fit.scaled,
        'kink': {'testable': kink.testable, 'significant': kink.significant, 'message': kink.message,
                 'break_temperature_K': kink.break_temperature, 'ea_low_T_eV': kink.ea_low_T,
                 'ea_high_T_eV': kink.ea_high_T},
        'n_ions': n_ions, 'volume_A3': volume,
        'temperatures_fitted_K': [r['temperature_K'] for r in fitted],
        'temperatures_excluded_K': [r['temperature_K'] for r in rows if not r['diffusive']],
        'table': rows,
        # the temperatures whose production runs were far from zero pressure (analysis.max_abs_pressure_GPa)
        'pressure_warning_temperatures_K': [r['temperature_K'] for r in rows if r['pressure_warning']],
    }
    if t_x == 300.0:  # the names users look for
        results.update({'D_300K_cm2_s': float(d_x), 'D_300K_err_cm2_s': float(d_x_err),
                        'sigma_300K_S_cm': sigma_x, 'sigma_300K_err_S_cm': sigma_x_err})
    array = orm.ArrayData()
    columns = {
        'temperature_K': [r['temperature_K'] for r in rows],
        'D_cm2_s': [r['D_cm2_s'] for r in rows], 'D_err_cm2_s': [r['D_err_cm2_s'] for r in rows],
        'D_xyz_cm2_s': [r['D_xyz_cm2_s'] for r in rows], 'D_xyz_err_cm2_s': [r['D_xyz_err_cm2_s'] for r in rows],
        'D_collective_cm2_s': [r.get('D_collective_cm2_s', np.nan) for r in rows],
        'D_collective_err_cm2_s': [r.get('D_collective_err_cm2_s', np.nan) for r in rows],
        'haven_ratio': [r.get('haven_ratio', np.nan) for r in rows],
        'haven_ratio_err': [r.get('haven_ratio_err', np.nan) for r in rows],
        'sigma_S_cm': [r.get('sigma_S_cm', np.nan) for r in rows],
        'sigma_err_S_cm': [r.get('sigma_err_S_cm', np.nan) for r in rows],
        'msd_end_A2': [r['msd_end_A2'] for r in rows],
        'fitted': [int(r['diffusive']) for r in rows],
    }
    for name, values in columns.items():
        array.set_array(name, np.array(values, dtype=float))
    return {'results': orm.Dict(json_safe(results)), 'diffusion': array}


# ------------------------------------------------------------------------------------------------ the WorkChain
_ENGINES = ('engine', 'gpumd', 'lammps')


def _engine_of(inputs) -> str | None:
    given = [name for name in _ENGINES if inputs.get(name)]
    return given[0] if len(given) == 1 else None


def _validate_inputs(inputs, _):
    """Refuse, before any MD runs, what cannot give a diffusion coefficient."""
    given = [name for name in _ENGINES if inputs.get(name)]
    if len(given) != 1:
        return 'give exactly one of the namespaces `engine` (CPU engine), `gpumd` (GPUMD) or `lammps` (LAMMPS, ' \
            'classical potential), got ' + (', '.join(given) or 'none')
    engine = given[0]
    species = inputs['mobile_species'].value if 'mobile_species' in inputs else 'Li'
    symbols = set(inputs['structure'].get_symbols_set())
    if species not in symbols:
        return f'the structure holds no {species} (the mobile species): nothing can diffuse; it holds ' \
               f'{", ".join(sorted(symbols))}'
    if len(symbols) < 2:
        return f'the structure holds only {species}: the framework drift correction needs another species'
    temperatures = inputs['temperatures'].get_list()
    if len(temperatures) < 2:
        return f'temperatures: at least 2 are needed for an Arrhenius fit, got {temperatures}'
    if any(not float(t) > 0 for t in temperatures) or len(set(map(float, temperatures))) != len(temperatures):
        return f'temperatures must be positive (K) and distinct, got {temperatures}'
    if 'replicas' in inputs and inputs['replicas'].value < 1:
        return f'replicas must be >= 1, got {inputs["replicas"].value}'
    if 'min_cell_width_factor' in inputs:
        factor = inputs['min_cell_width_factor'].value
        if not factor > 0:
            return f'min_cell_width_factor must be > 0 (a multiple of the model cutoff), got {factor}'
        if _model_cutoff(inputs.get('model'), _calculator_of(inputs)) is None:
            return 'min_cell_width_factor needs a model whose cutoff is known (a NepModel or MaceModel, or CHGNet)'
    model = inputs.get('model')
    try:
        md = inputs['md'].get_dict() if 'md' in inputs else {}
        md_parameters(md, engine, 1000.0, 1)
        analysis = inputs['analysis'].get_dict() if 'analysis' in inputs else {}
        _analysis_options(analysis)
        check_fit_window(md, analysis, engine)
    except ValueError as exception:
        return str(exception)
    if model is not None and model.elements:
        missing = sorted(symbols - set(model.elements))
        if missing:
            return f'the model does not know the element(s) {", ".join(missing)} (it knows {", ".join(model.elements)})'
    if engine == 'gpumd':
        if not isinstance(model, NepModel):
            return 'the gpumd engine needs a NEP model (`model`, a NepModel)'
    elif engine == 'lammps':
        if model is not None:
            return 'the lammps engine takes its classical potential from `lammps.potential`, not a `model` input'
        if 'min_cell_width_factor' in inputs:
            return 'min_cell_width_factor multiplies an ML model cutoff; with the lammps engine give min_cell_width (Å)'
        try:
            validate_lammps_md_parameters(md_parameters(md, engine, 1000.0, 1))
        except ValueError as exception:
            return str(exception)
        potential = inputs['lammps'].get('potential')
        potential = potential.get_dict() if potential is not None else classical_potential()
        return lammps_potential_problem(potential, inputs['structure'].get_ase().get_chemical_symbols())
    else:
        calculator = inputs['engine'].get('md', {}).get('calculator')
        kind = calculator.get_dict().get('kind') if calculator is not None else None
        needs = {'nep': NepModel, 'mace': MaceModel}
        if kind in needs and not isinstance(model, needs[kind]):
            return f'calculator kind `{kind}` needs a `model` input ({needs[kind].__name__})'
        if kind not in needs and model is not None:
            return f'calculator kind `{kind}` takes no `model` input'


class DiffusionWorkChain(ProtocolMixin, WorkChain):
    """MD at several temperatures (in parallel, with replicas) → D(T) with errors → Arrhenius Ea, D0, σ(300 K)."""

    _protocol_file = 'diffusion.yaml'
    _protocol_open_keys = ('md.engine_parameters',)

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The electrolyte (periodic cell).')
        spec.input('model', valid_type=(NepModel, MaceModel), required=False,
                   help='The force field (NEP for GPUMD or CPUNEP, MACE); none for CHGNet.')
        spec.input('temperatures', valid_type=orm.List, help='Temperatures (K), one MD run each per replica.')
        spec.input('md', valid_type=orm.Dict, required=False,
                   help='timestep_fs, equilibration_ps, production_ps, sample_interval_fs, thermostat_time_fs, '
                        "ensemble ('nvt' or an engine's own name), seed, engine_parameters (merged last).")
        spec.input('analysis', valid_type=orm.Dict, required=False,
                   help='Fit window (start/end_fraction), method, min_msd_A2, charge, extrapolate_to_K, ...')
        spec.input('replicas', valid_type=orm.Int, default=lambda: orm.Int(1),
                   help='Independent MD runs (different seeds) per temperature.')
        spec.input('min_cell_width', valid_type=orm.Float, required=False,
                   help='Replicate the cell until every perpendicular width is at least this (Å), e.g. 2× cutoff.')
        spec.input('min_cell_width_factor', valid_type=orm.Float, required=False,
                   help='Replicate the cell until every perpendicular width is at least this multiple of the '
                        "`model`'s cutoff (applied at run time; with `min_cell_width` too, the larger width wins).")
        spec.input('mobile_species', valid_type=orm.Str, default=lambda: orm.Str('Li'), help='The diffusing ion.')
        spec.expose_inputs(EngineMdBaseWorkChain, namespace='engine',
                           exclude=('md.structure', 'md.parameters', 'md.model', 'md.checkpoint'),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'MD on the CPU engine (aiida-sseff-engine md), through '
                                                      'EngineMdBaseWorkChain (checkpoint restarts).'})
        spec.expose_inputs(GpumdBaseWorkChain, namespace='gpumd',
                           exclude=('gpumd.structure', 'gpumd.parameters', 'gpumd.model', 'gpumd.mobile_species',
                                    'gpumd.restart'),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'MD on GPUMD (gpumd), through GpumdBaseWorkChain (restarts).'})
        all_options = [spec.inputs['engine']['md']['metadata']['options'],
                       spec.inputs['gpumd']['gpumd']['metadata']['options']]
        if LammpsMdWorkChain is not None:
            spec.expose_inputs(LammpsMdWorkChain, namespace='lammps', exclude=('structure', 'parameters'),
                               namespace_options={'required': False, 'populate_defaults': False,
                                                  'help': 'MD on LAMMPS with a classical Buckingham + Coulomb '
                                                          'potential (the classical baseline), LammpsMdWorkChain.'})
            spec.inputs['lammps'].validator = None  # needs the excluded structure; _validate_inputs checks it
            all_options.append(spec.inputs['lammps']['lammps']['metadata']['options'])
        # the CalcJobs' own validators need the excluded structure/model; the WorkChain's validator checks them
        spec.inputs['engine']['md'].validator = None
        spec.inputs['gpumd']['gpumd'].validator = None
        for options in all_options:
            # the namespaces are not populated with defaults (only the one given is used), so a partial
            # metadata.options must not need `resources`: the CalcJob fills in its own default
            options['resources'].required = False
        spec.inputs.validator = _validate_inputs

        spec.outline(
            cls.setup,
            cls.prepare_cell,
            if_(cls.equilibrates_separately)(cls.run_equilibration, cls.inspect_equilibration),
            cls.run_md,
            cls.inspect_md,
            cls.analyse,
            cls.fit,
            cls.finalise,
        )

        spec.output('results', valid_type=orm.Dict, help='Ea, D0, D and σ at 300 K with errors, kink test, table.')
        spec.output('diffusion', valid_type=orm.ArrayData, help='D(T), errors, D per direction, σ(T), per row.')
        spec.output('structure', valid_type=orm.StructureData, required=False, help='The supercell used, if any.')
        spec.output_namespace('runs', valid_type=orm.Dict, dynamic=True, help='Per-run D, σ, Haven ratio.')
        spec.output_namespace('msd', valid_type=orm.ArrayData, dynamic=True, help='Per-run MSD and fit window.')

        spec.exit_code(401, 'ERROR_NO_MOBILE_SPECIES',
                       message='The structure holds no {species}: nothing can diffuse.')
        spec.exit_code(410, 'ERROR_MD_FAILED', message='The MD failed at {runs}: {message}')
        spec.exit_code(420, 'ERROR_TOO_FEW_DIFFUSION_EVENTS',
                       message='Too few diffusion events in the fit window at {temperatures} K ({reasons}); only '
                               '{n_ok} temperature(s) usable, 2 needed: run longer or hotter.')

    @classmethod
    def get_builder_from_protocol(cls, code, structure, model=None, protocol=None, overrides=None, options=None,
                                  calculator=None):
        """A ready builder from ``protocols/diffusion.yaml`` (``fast``, ``balanced``, ``stringent``).

        The engine follows the code: a code whose default plugin is ``sseff.gpumd`` runs GPUMD, ``lammps.raw``
        LAMMPS with the classical potential (``model`` is then not given), any other the CPU engine (calculator kind from the model: ``nep``, ``mace``, or ``chgnet`` without a model, unless
        ``calculator`` is given). The protocol's ``min_cell_width_factor`` becomes the input of that name (the
        width follows the model's cutoff at run time). ``options`` go to the CalcJob's ``metadata.options``.
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        if structure is not None:  # None: a parent work chain hands the cell over (sseff.study.dataset_size)
            builder.structure = structure
        if model is not None:
            builder.model = model
        builder.temperatures = orm.List([float(t) for t in inputs['temperatures']])
        builder.md = orm.Dict(inputs['md'])
        builder.analysis = orm.Dict(inputs['analysis'])
        builder.replicas = orm.Int(inputs['replicas'])
        builder.mobile_species = orm.Str(inputs['mobile_species'])
        engine = {'sseff.gpumd': 'gpumd', 'lammps.raw': 'lammps'}.get(code.get_input_plugin_name(), 'engine')
        factor = inputs.get('min_cell_width_factor')
        # the factor multiplies an ML model's cutoff; the classical potential's Ewald sum counts every image anyway
        if factor and engine != 'lammps' and _model_cutoff(model, calculator):
            builder.min_cell_width_factor = orm.Float(float(factor))
        namespace = {'engine': builder.engine.md, 'gpumd': builder.gpumd.gpumd,
                     'lammps': builder.lammps.lammps}[engine]
        namespace.code = code
        if engine == 'engine':
            if calculator is None:
                calculator = {'kind': {NepModel: 'nep', MaceModel: 'mace'}.get(type(model), 'chgnet')}
            namespace.calculator = orm.Dict(calculator)
        if options:
            namespace.metadata.options = options
        return builder

    def setup(self):
        self.ctx.engine = _engine_of(self.inputs)
        self.ctx.species = self.inputs.mobile_species.value
        self.ctx.temperatures = [float(t) for t in self.inputs.temperatures.get_list()]
        self.ctx.md = self.inputs.md.get_dict() if 'md' in self.inputs else {}
        self.ctx.analysis = self.inputs.analysis if 'analysis' in self.inputs else orm.Dict(DEFAULT_ANALYSIS)
        if self.ctx.species not in self.inputs.structure.get_symbols_set():
            return self.exit_codes.ERROR_NO_MOBILE_SPECIES.format(species=self.ctx.species)

    def prepare_cell(self):
        structure = self.inputs.structure
        widths = []
        if 'min_cell_width' in self.inputs:
            widths.append(self.inputs.min_cell_width.value)
        if 'min_cell_width_factor' in self.inputs:
            cutoff = _model_cutoff(self.inputs.get('model'), _calculator_of(self.inputs))
            widths.append(self.inputs.min_cell_width_factor.value * cutoff)
        if widths:
            width = max(widths)
            reps = replication_for_width(structure.cell, width)
            if reps != (1, 1, 1):
                node = self.inputs.min_cell_width if width == self.inputs.get('min_cell_width', orm.Float(-1)).value \
                    else orm.Float(width)
                structure = make_supercell(structure, node)
                self.out('structure', structure)
                self.report(f'replicated the cell {reps} to {len(structure.sites)} atoms (every width >= '
                            f'{width:g} Å)')
        self.ctx.structure = structure

    def _runs(self):
        """``(label, temperature, seed)`` of every MD run: a different seed per run (independent samples)."""
        base_seed = int(self.ctx.md.get('seed', DEFAULT_MD['seed']))
        runs, counter = [], 0
        for temperature in self.ctx.temperatures:
            for replica in range(self.inputs.replicas.value):
                runs.append((run_label(temperature, replica), temperature, base_seed + counter))
                counter += 1
        return runs

    def _gpumd_inputs(self, label: str, parameters: dict) -> AttributeDict:
        inputs = AttributeDict(self.exposed_inputs(GpumdBaseWorkChain, namespace='gpumd'))
        job = inputs.gpumd = AttributeDict(inputs.gpumd)
        job.mobile_species = self.inputs.mobile_species
        job.structure = self.ctx.structure
        job.parameters = orm.Dict(parameters)
        job.model = self.inputs.model
        inputs.metadata = {**dict(inputs.get('metadata', {})), 'label': label, 'call_link_label': label}
        return inputs

    def equilibrates_separately(self):
        """GPUMD with ``md.volume = 'equilibrated_mean'``: an NPT job first, then NVT from its mean cell."""
        return self.ctx.engine == 'gpumd' and resolved_volume(self.ctx.md, 'gpumd') == 'equilibrated_mean'

    def run_equilibration(self):
        jobs = {}
        for label, temperature, seed in self._runs():
            parameters = gpumd_equilibration_parameters(self.ctx.md, temperature, seed)
            jobs[f'npt_{label}'] = self.submit(GpumdBaseWorkChain, **self._gpumd_inputs(f'npt_{label}', parameters))
        self.report(f'submitted {len(jobs)} NPT equilibrations (GPUMD): the production runs in their mean cells')
        return ToContext(**jobs)

    def inspect_equilibration(self):
        self.ctx.restarts = {}
        failed = []
        for label, _, _ in self._runs():
            node = self.ctx[f'npt_{label}']
            if not node.is_finished_ok or 'restart' not in node.outputs or 'thermo' not in node.outputs:
                failed.append(f'npt_{label}: [{node.exit_status}] {node.exit_message or "no restart.xyz/thermo.out"}')
                continue
            restart = restart_in_mean_cell(node.outputs.restart, node.outputs.thermo,
                                           metadata={'call_link_label': f'mean_cell_{label}'})
            self.ctx.restarts[label] = restart
            self.report(f'{label}: mean NPT volume {restart.base.attributes.get("mean_volume_A3"):.1f} Å³ (input '
                        f'cell {self.ctx.structure.get_cell_volume():.1f} Å³)')
        if failed:
            return self.exit_codes.ERROR_MD_FAILED.format(runs=', '.join(f.split(':')[0] for f in failed),
                                                          message='; '.join(failed))

    def run_md(self):
        jobs = {}
        self.ctx.labels = []
        restarts = self.ctx.get('restarts', {})
        for label, temperature, seed in self._runs():
            parameters = md_parameters(self.ctx.md, self.ctx.engine, temperature, seed)
            if self.ctx.engine == 'engine':
                inputs = AttributeDict(self.exposed_inputs(EngineMdBaseWorkChain, namespace='engine'))
                inputs.md = AttributeDict(inputs.md)
                inputs.md.structure = self.ctx.structure
                inputs.md.parameters = orm.Dict(parameters)
                if 'model' in self.inputs:
                    inputs.md.model = self.inputs.model
                inputs.md.metadata = {**dict(inputs.md.get('metadata', {})), 'label': f'md_{label}'}
                inputs.metadata = {'label': f'md_{label}', 'call_link_label': f'md_{label}'}
                jobs[label] = self.submit(EngineMdBaseWorkChain, **inputs)
            elif self.ctx.engine == 'lammps':
                inputs = AttributeDict(self.exposed_inputs(LammpsMdWorkChain, namespace='lammps'))
                inputs.structure = self.ctx.structure
                inputs.parameters = orm.Dict(parameters)
                inputs.metadata = {'label': f'md_{label}', 'call_link_label': f'md_{label}'}
                jobs[label] = self.submit(LammpsMdWorkChain, **inputs)
            else:
                inputs = self._gpumd_inputs(f'md_{label}', parameters)
                if label in restarts:
                    inputs.gpumd.restart = restarts[label]  # NVT from the NPT state scaled to its mean cell
                jobs[label] = self.submit(GpumdBaseWorkChain, **inputs)
            self.ctx.labels.append((label, temperature))
        self.report(f'submitted {len(jobs)} MD runs ({self.ctx.engine}) at {self.ctx.temperatures} K')
        return ToContext(**jobs)

    def inspect_md(self):
        failed = [label for label, _ in self.ctx.labels if not self.ctx[label].is_finished_ok]
        if failed:
            messages = '; '.join(f'{label}: [{self.ctx[label].exit_status}] {self.ctx[label].exit_message}'
                                 for label in failed)
            return self.exit_codes.ERROR_MD_FAILED.format(runs=', '.join(failed), message=messages)

    def analyse(self):
        self.ctx.runs = {}
        species = orm.Str(self.ctx.species)
        for label, temperature in self.ctx.labels:
            node = self.ctx[label]
            metadata = {'call_link_label': f'diffusion_{label}'}
            if self.ctx.engine in ('engine', 'lammps'):  # both give an unwrapped trajectory and thermo
                out = diffusion_from_trajectory(node.outputs.trajectory, node.outputs.thermo, orm.Float(temperature),
                                                self.ctx.analysis, species, metadata=metadata)
            else:
                parameters = node.inputs['gpumd']['parameters']
                length = (parameters['production_steps'] * parameters.get('time_step_fs', 1.0) / 1000.0)
                msd = node.outputs.msd
                kwargs = {'thermo': node.outputs.thermo} if 'thermo' in node.outputs else {}
                if 'trajectory' in node.outputs and not msd.base.attributes.get('n_segments', 1) > 1:
                    kwargs['trajectory'] = node.outputs.trajectory  # one segment: the dump covers the whole run
                out = diffusion_from_gpumd_msd(msd, self.ctx.structure, orm.Float(temperature), orm.Float(length),
                                               self.ctx.analysis, species, parameters=parameters,
                                               metadata=metadata, **kwargs)
            self.ctx.runs[label] = out['result']
            self.out(f'runs.{label}', out['result'])
            self.out(f'msd.{label}', out['msd'])
            result = out['result']
            self.report(f'{label}: D = {result["D_cm2_s"]:.3e} ± {result["D_err_cm2_s"] or float("nan"):.1e} cm²/s, '
                        f'MSD at fit end {result["msd_end_A2"]:.2f} Å²')
            change = result['volume_A3'] / self.ctx.structure.get_cell_volume() - 1.0
            if abs(change) > 0.1:
                # an NPT-equilibrated volume this far from the input cell's says more about the model's equation of
                # state than about the electrolyte (seen with a 24-structure NEP: +40 %); D depends strongly on it
                self.report(f'warning: {label}: the MD volume is {100 * change:+.0f} % from the input cell '
                            f'({result["volume_A3"]:.0f} vs {self.ctx.structure.get_cell_volume():.0f} Å³): check '
                            'the model (is its equation of state trained?) or run at the input volume (md.volume)')
            if result.get('pressure_warning'):
                self.report(f'warning: {label}: mean production pressure {result["pressure_mean_GPa"]:.2f} GPa, '
                            f'beyond ±{_analysis_options(self.ctx.analysis.get_dict())["max_abs_pressure_GPa"]:g} '
                            'GPa: the volume is not that of the model at this temperature (md.volume)')
        by_t: dict[float, list[dict]] = {}
        for label, temperature in self.ctx.labels:
            by_t.setdefault(temperature, []).append(self.ctx.runs[label].get_dict())
        bad = {t: [r['reason'] for r in runs if not r['diffusive']] for t, runs in by_t.items()}
        bad = {t: reasons for t, reasons in bad.items() if reasons}
        n_ok = len(by_t) - len(bad)
        if bad:
            self.report(f'excluded from the Arrhenius fit (too few diffusion events): {sorted(bad)} K')
        if n_ok < 2:
            return self.exit_codes.ERROR_TOO_FEW_DIFFUSION_EVENTS.format(
                temperatures=', '.join(f'{t:g}' for t in sorted(bad)), n_ok=n_ok,
                reasons='; '.join(f'{t:g} K: {reasons[0]}' for t, reasons in sorted(bad.items())))

    def fit(self):
        out = arrhenius_analysis(self.ctx.analysis, **self.ctx.runs, metadata={'call_link_label': 'arrhenius'})
        self.ctx.results = out['results']
        self.out('results', out['results'])
        self.out('diffusion', out['diffusion'])

    def finalise(self):
        r = self.ctx.results
        x = r['extrapolation_temperature_K']
        self.report(f"Ea = {r['Ea_eV']:.3f} ± {r['Ea_err_eV']:.3f} eV, D({x:g} K) = {r['D_extrapolated_cm2_s']:.2e} "
                    f"cm²/s, σ({x:g} K) = {1e3 * r['sigma_extrapolated_S_cm']:.3g} mS/cm")
        if r['kink']['significant']:
            self.report(f"warning: two Arrhenius regimes: {r['kink']['message']}")


def _calculator_of(inputs) -> dict | None:
    engine = inputs.get('engine') or {}
    calculator = (engine.get('md') or {}).get('calculator')
    return calculator.get_dict() if calculator is not None else None


def _model_cutoff(model, calculator=None) -> float | None:
    """The model's interaction range (Å): NEP radial cutoff, MACE r_max; CHGNet's atom-graph cutoff (6 Å)."""
    if isinstance(model, NepModel):
        return float(model.cutoff[0])
    if isinstance(model, MaceModel):
        return model.cutoff
    kind = (calculator or {}).get('kind', 'chgnet') if model is None else None
    return 6.0 if kind == 'chgnet' else None
