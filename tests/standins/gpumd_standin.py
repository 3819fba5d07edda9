"""A CPU stand-in for GPUMD's ``gpumd`` executable, for tests only (GPUMD needs CUDA).

It honours its inputs: in the working directory it reads ``run.in`` (:func:`aiida_sseff.io.gpumd.read_run_in`),
``model.xyz`` (species, cell, velocities, ``group`` columns) and the ``potential`` file, runs real MD with
calorine's CPUNEP and ASE for each ``run`` in order, and writes GPUMD's files in GPUMD's formats:

- ``msd.out``: the MSD of the unwrapped positions sampled after every step s with (s + 1) % interval == 0,
  accumulated by :func:`aiida_sseff.analysis.gpumd_msd.gpumd_msd` (GPUMD's ring buffer) for the atoms of
  ``group gm gid``, all atoms, or every group of ``all_groups gm``; one block with the GPUMD >= 5.6 header per run
  (:func:`aiida_sseff.io.gpumd.write_msd`), appended;
- ``thermo.out``: the GPUMD >= 5.6 header, then 18 columns ``T KE PE Pxx Pyy Pzz Pyz Pxz Pxy ax … cz`` (K, eV, GPa, Å)
  every ``dump_thermo`` steps, appended;
- ``dump_xyz`` files (extended XYZ; ``unwrapped_position``, ``vel`` (Å/fs), ``forces``, ``group`` if asked);
- ``restart.xyz`` (model.xyz format, velocities in Å/fs) every ``dump_restart`` steps;
- on stdout the log lines that GPUMD prints and our parser reads (banner with the version, ``Number of atoms is N.``,
  ``Run N steps.``, ``Time used for this run = X second.``, ``Speed of this run = X atom*step/second.``,
  ``Time used = X s.``, ``Finished running GPUMD.``).

A walltime without timing (tests must not depend on speed): with ``GPUMD_STANDIN_WALLTIME_STEPS=N`` in the
environment the process stops dead after N MD steps in total, as a scheduler's kill would leave it (outputs so far,
``restart.xyz`` if due, no ``msd.out`` block for the unfinished run, no ``Finished`` line, exit code 143).

What GPUMD refuses it refuses the same way (``Input Error:`` block on stderr as GPUMD's ``PRINT_INPUT_ERROR``,
exit 1), e.g. ``compute_msd`` with Nc > steps / sample_interval (msd.cu ``MSD::preprocess``). What GPUMD accepts
but this stand-in cannot reproduce (temperature ramps, unknown keywords) is refused with ``Error: stand-in: …``.

Ensembles map onto ASE's integrators by :func:`aiida_sseff.engines.md._make_dynamics` (the CPU engine's): nvt_bdp and
nvt_ber → Bussi (the stochastic velocity rescaling of Bussi, Donadio and Parrinello; Berendsen is its
non-stochastic limit), nvt_nhc → Nosé–Hoover chain, nvt_lan/nvt_bao → Langevin, npt_ber/npt_scr/npt_mttk →
MTK (isotropic when one pressure is given / ``iso``), nve → velocity Verlet. Coupling times are GPUMD's, in steps.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

VERSION = '5.6'  # the headers of msd.out and thermo.out are those of GPUMD >= 5.6
WALLTIME_EXIT_CODE = 143  # 128 + SIGTERM, what a batch scheduler's kill at the walltime leaves
THERMO_COLUMNS = 'T KE PE sxx syy szz syz sxz sxy ax ay az bx by bz cx cy cz'


class StandinError(Exception):
    def __init__(self, text: str, input_error: bool = True):
        super().__init__(text)
        self.input_error = input_error


def _dynamics(atoms, run, rng):
    from aiida_sseff.engines.md import _make_dynamics

    args = list(run.ensemble or ())
    if not args:
        raise StandinError(f'stand-in: run.in line {run.line}: no ensemble before this run.', input_error=False)
    name, dt = args[0], run.time_step_fs
    p = {'timestep_fs': dt, 'thermostat_time_fs': 100 * dt, 'pressure_GPa': 0.0, 'barostat_time_fs': 1000 * dt}
    if name == 'npt_mttk':  # npt_mttk temp T1 T2 iso|aniso|tri p1 p2 [tperiod n] [pperiod n]
        keys = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i] in ('tperiod', 'pperiod')}
        temps, direction, pressures = args[2:4], args[4], args[5:7]
        p['ensemble'] = 'npt_mtk_iso' if direction == 'iso' else 'npt_mtk'
        p['thermostat_time_fs'] = float(keys.get('tperiod', 100)) * dt
        p['barostat_time_fs'] = float(keys.get('pperiod', 1000)) * dt
    elif name in ('nvt_ber', 'nvt_bdp', 'nvt_nhc', 'nvt_lan', 'nvt_bao', 'npt_ber', 'npt_scr'):
        temps, rest = args[1:3], [float(x) for x in args[3:]]
        p['thermostat_time_fs'] = rest[0] * dt
        p['ensemble'] = {'nvt_ber': 'nvt_bussi', 'nvt_bdp': 'nvt_bussi', 'nvt_nhc': 'nvt_nose_hoover',
                         'nvt_lan': 'nvt_langevin', 'nvt_bao': 'nvt_langevin'}.get(name)
        p['friction_per_fs'] = 1.0 / (rest[0] * dt)
        if name.startswith('npt'):  # p_hydro C p_coup | p_xx p_yy p_zz C_xx C_yy C_zz p_coup | 6 p, 6 C, p_coup
            pressures = rest[1:-1][: {3: 1, 7: 3, 13: 6}.get(len(rest) - 1, 1)]
            p['ensemble'] = 'npt_mtk_iso' if len(rest) == 4 else 'npt_mtk'
            p['barostat_time_fs'] = rest[-1] * dt
    elif name == 'nve':
        temps, p['ensemble'] = None, 'nve'
    else:
        raise StandinError(f'stand-in: ensemble {name!r} is not reproduced.', input_error=False)
    if temps is not None:
        t1, t2 = (float(t) for t in temps)
        if t1 != t2:
            raise StandinError(f'stand-in: temperature ramp {t1:g} -> {t2:g} K is not reproduced.', input_error=False)
        p['temperature_K'] = t1
    if name.startswith('npt'):
        values = {float(x) for x in pressures}
        if len(values) != 1:
            raise StandinError('stand-in: anisotropic target pressures are not reproduced.', input_error=False)
        p['pressure_GPa'] = values.pop()
    return _make_dynamics(atoms, p, rng, p['ensemble'])


def _thermo_row(atoms) -> str:
    from ase import units

    stress = -atoms.get_stress(include_ideal_gas=True, voigt=True) / units.GPa  # GPUMD: pressure, compression > 0
    values = [atoms.get_temperature(), atoms.get_kinetic_energy(), atoms.get_potential_energy(), *stress,
              *atoms.cell.array.reshape(9)]
    return ''.join(f'{v:20.10e}' for v in values) + '\n'


def _dump_frame(atoms, groups, dump, step, dt_fs):
    from ase import Atoms, units
    from ase.io import write

    select = np.arange(len(atoms)) if dump.group is None else np.flatnonzero(groups[:, dump.group[0]] == dump.group[1])
    frame = Atoms(np.array(atoms.get_chemical_symbols())[select], atoms.positions[select], cell=atoms.cell, pbc=True)
    frame.wrap()
    columns = ['symbols', 'positions']
    for prop, name, values in (('velocity', 'vel', lambda: atoms.get_velocities() * units.fs),
                               ('force', 'forces', atoms.get_forces),
                               ('unwrapped_position', 'unwrapped_position', lambda: atoms.positions),
                               ('group', 'group', lambda: groups)):
        if prop in dump.properties or (prop == 'group' and 'group_labels' in dump.properties):
            frame.new_array(name, np.asarray(values())[select])
            columns.append(name)
    frame.info['Time'] = (step + 1) * dt_fs
    write(dump.filename, frame, format='extxyz', append=True, columns=columns, write_info=True)


def _check_msd(run, groups, n_atoms):
    """GPUMD's own checks of compute_msd (msd.cu ``MSD::preprocess``, ``parse_group``)."""
    msd = run.compute_msd
    if msd.n_correlation > run.steps // msd.sample_interval:
        raise StandinError('MSD correlation times sampling interval should be <= number of MD steps.\n')
    method = msd.group[0] if msd.group is not None else msd.all_groups
    if method is None:
        return np.arange(n_atoms), None
    if groups is None or not 0 <= method < groups.shape[1]:
        raise StandinError('grouping method should < number of grouping methods.\n')
    if msd.all_groups is not None:
        return np.arange(n_atoms), groups[:, method]
    if not 0 <= msd.group[1] <= groups[:, method].max():
        raise StandinError('group ID should < number of groups.\n')
    return np.flatnonzero(groups[:, method] == msd.group[1]), None


def perform_run(atoms, groups, run, rng, state) -> None:
    from ase import Atoms
    from ase.constraints import FixAtoms
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    from aiida_sseff.analysis.gpumd_msd import gpumd_msd
    from aiida_sseff.io.gpumd import write_model_xyz, write_msd

    if run.velocity is not None and run.velocity is not state['velocity']:
        temperature, seed = run.velocity  # GPUMD: Maxwell-Boltzmann at T, zero total momentum
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
        Stationary(atoms)
        state['velocity'] = run.velocity
        print(f'Initialized velocities with input T = {temperature:g} K.')
    selected = labels = None
    if run.compute_msd is not None:
        selected, labels = _check_msd(run, groups, len(atoms))
        print(f'Compute mean square displacement (MSD).\n    sample interval is {run.compute_msd.sample_interval}.\n'
              f'    number of correlation steps is {run.compute_msd.n_correlation}.')
    needs_groups = [*run.fix, *(d.group for d in run.dumps if d.group is not None)]
    if needs_groups and (groups is None or max(gm for gm, _ in needs_groups) >= groups.shape[1]):
        raise StandinError('grouping method should < number of grouping methods.\n')
    fixed = [i for gm, gid in run.fix for i in np.flatnonzero(groups[:, gm] == gid)]
    atoms.set_constraint(FixAtoms(indices=fixed) if fixed else None)
    dynamics = _dynamics(atoms, run, rng)
    cell_at_start = atoms.cell.array.copy()
    if run.dump_thermo:
        with open('thermo.out', 'a') as handle:
            handle.write(f'# dump_thermo {run.dump_thermo}\n# format_version 1\n# num_atoms {len(atoms)}\n'
                         f'# dt_output {run.time_step_fs * run.dump_thermo:.10e} fs\n# columns {THERMO_COLUMNS}\n')
    intervals = [i for i in (run.compute_msd.sample_interval if run.compute_msd else None, run.dump_thermo,
                             run.dump_restart, *(d.interval for d in run.dumps)) if i]
    samples = []
    print(f'Run {run.steps} steps.')
    start, done = time.perf_counter(), 0
    while done < run.steps:
        # the next step s (0-based) after which some output is due: (s + 1) % interval == 0
        target = min([run.steps, *((done // i + 1) * i for i in intervals)])
        if state['walltime_steps'] is not None:
            target = min(target, done + state['walltime_steps'])
            state['walltime_steps'] -= target - done
        dynamics.run(target - done)
        done, step = target, target - 1
        if not np.isfinite(atoms.positions).all():
            raise StandinError(f'stand-in: positions became NaN at step {done}.', input_error=False)
        if run.compute_msd and done % run.compute_msd.sample_interval == 0:
            samples.append(atoms.positions[selected].copy())  # ASE never wraps: these are unwrapped
        if run.dump_thermo and done % run.dump_thermo == 0:
            with open('thermo.out', 'a') as handle:
                handle.write(_thermo_row(atoms))
        for dump in run.dumps:
            if done % dump.interval == 0:
                _dump_frame(atoms, groups, dump, step, run.time_step_fs)
        if run.dump_restart and done % run.dump_restart == 0:
            restart = Atoms(atoms.get_chemical_symbols(), atoms.positions, cell=atoms.cell, pbc=True,
                            masses=atoms.get_masses(), momenta=atoms.get_momenta())
            restart.wrap()
            write_model_xyz(restart, 'restart.xyz.tmp', groups=None if groups is None else groups.T)
            Path('restart.xyz.tmp').replace('restart.xyz')
        if state['walltime_steps'] == 0:  # killed as by a scheduler at its walltime: no message, no msd.out block
            sys.stdout.flush()
            os._exit(WALLTIME_EXIT_CODE)
    used = max(time.perf_counter() - start, 1e-9)
    print(f'Time used for this run = {used:g} second.\nSpeed of this run = {len(atoms) * run.steps / used:g} '
          f'atom*step/second.')
    if run.compute_msd is not None:
        msd = run.compute_msd
        dt_sample = msd.sample_interval * run.time_step_fs / 1000.0
        result = gpumd_msd(np.array(samples), msd.n_correlation, dt_sample, groups=labels)
        write_msd('msd.out', result.time_ps, result.msd, result.sdc, compute_msd=msd, num_atoms=len(selected),
                  num_atoms_per_group=result.n_atoms_per_group, cell=cell_at_start, dt_output_ps=dt_sample)
    atoms.set_constraint()


def main() -> int:
    from aiida_sseff.io.gpumd import read_model_xyz, read_run_in

    begin = time.perf_counter()
    print('*' * 63 + f'\n*                 Welcome to use GPUMD                        *\n'
          f'*                     version {VERSION:<32}*\n*     aiida-sseff test stand-in (CPUNEP + ASE, no GPU)        *\n'
          + '*' * 63 + '\n\nStarted running GPUMD.')
    try:
        for name in ('run.in', 'model.xyz'):
            if not Path(name).is_file():
                raise StandinError(f'Failed to open {name}.')
        atoms, groups = read_model_xyz('model.xyz')
        print(f'Number of atoms is {len(atoms)}.')
        if not np.any(atoms.get_velocities()):
            from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

            # GPUMD's initialisation without velocities in model.xyz
            MaxwellBoltzmannDistribution(atoms, temperature_K=300.0, rng=np.random.default_rng(0))
            print('Initialized velocities with default T = 300 K.')
        try:
            runs = read_run_in(Path('run.in'))
        except ValueError as exception:
            raise StandinError(str(exception)) from None
        if not runs:
            raise StandinError('run.in has no run.')
        potentials = runs[0].potentials
        if len(potentials) != 1 or not Path(potentials[0]).is_file():
            raise StandinError(f'stand-in: expected one potential file before the first run, got {potentials}.',
                               input_error=not potentials or len(potentials) == 1)
        from calorine.calculators import CPUNEP

        atoms.calc = CPUNEP(potentials[0])
        walltime = os.environ.get('GPUMD_STANDIN_WALLTIME_STEPS')
        state = {'velocity': None, 'walltime_steps': int(walltime) if walltime else None}
        rng = np.random.default_rng(0)
        for run in runs:
            perform_run(atoms, groups, run, rng, state)
    except StandinError as exception:
        header = 'Input Error:' if exception.input_error else 'Error:'
        sys.stderr.write(f'{header}\n    File:       gpumd_standin.py\n    Error text: {exception}\n')
        return 1
    print(f'Finished executing the commands in run.in.\nTime used = {time.perf_counter() - begin:f} s.\n'
          'Finished running GPUMD.')
    return 0


if __name__ == '__main__':
    import warnings

    warnings.simplefilter('ignore', DeprecationWarning)  # stderr is GPUMD's error channel, keep it clean
    sys.exit(main())
