"""ASE molecular dynamics with any calculator of :mod:`aiida_sseff.engines.calculators`.

Writes, in the working directory:
- ``thermo.dat``: whitespace columns with a ``#`` header (step, time_ps, temperature_K, potential_energy_eV,
  kinetic_energy_eV, total_energy_eV, volume_A3, pressure_GPa), every ``thermo_interval`` steps of production;
- ``trajectory.npz``: unwrapped Cartesian positions (float32, Å; frames × atoms × 3), per-frame cells (Å), steps,
  times (ps), atomic numbers, and velocities/forces when asked — every ``trajectory_interval`` steps. Positions are
  unwrapped because ASE's integrators never wrap atoms back into the cell, which is what MSD analysis needs;
- ``snapshots.xyz``: wrapped configurations every ``snapshot_interval`` steps (candidates for sampling);
- ``final.xyz``: the last configuration (with velocities).
Time starts at 0 at the beginning of production; equilibration steps are run first and not recorded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.io import write

ENSEMBLES = ('nvt_bussi', 'nvt_langevin', 'nvt_nose_hoover', 'npt_mtk', 'npt_mtk_iso', 'nve')

DEFAULT_MD_PARAMETERS = {
    'ensemble': 'nvt_bussi',
    'temperature_K': 300.0,
    'timestep_fs': 2.0,
    'n_steps': 1000,
    'n_equilibration_steps': 0,
    'thermo_interval': 10,
    'trajectory_interval': 10,
    'snapshot_interval': 0,
    'seed': 1,
    'thermostat_time_fs': 100.0,
    'friction_per_fs': 0.01,
    'pressure_GPa': 0.0,
    'barostat_time_fs': 1000.0,
    'store_velocities': False,
    'store_forces': False,
    'min_distance_A': 0.6,
    'max_temperature_factor': 5.0,
}


class MdParameterError(ValueError):
    """Invalid MD parameters."""


class MdUnstableError(RuntimeError):
    """The MD run blew up (NaN, runaway temperature)."""


class AtomsTooCloseError(RuntimeError):
    """Two atoms came closer than the allowed minimum distance."""


def validate_md_parameters(parameters: dict) -> dict:
    """Fill defaults and check ranges; raise ``MdParameterError`` naming the bad key."""
    unknown = set(parameters) - set(DEFAULT_MD_PARAMETERS)
    if unknown:
        raise MdParameterError(f'unknown MD parameter(s): {sorted(unknown)}; known: {sorted(DEFAULT_MD_PARAMETERS)}')
    result = {**DEFAULT_MD_PARAMETERS, **parameters}
    if result['ensemble'] not in ENSEMBLES:
        raise MdParameterError(f'ensemble `{result["ensemble"]}` unknown; choose one of {", ".join(ENSEMBLES)}')
    positive = ('temperature_K', 'timestep_fs', 'thermostat_time_fs', 'friction_per_fs', 'barostat_time_fs')
    for key in positive:
        if not float(result[key]) > 0:
            raise MdParameterError(f'{key} must be > 0, got {result[key]}')
    if float(result['timestep_fs']) > 10:
        raise MdParameterError(f'timestep_fs = {result["timestep_fs"]} fs is too large for atomistic MD (≤ 10 fs)')
    for key in ('n_steps', 'thermo_interval', 'trajectory_interval'):
        if int(result[key]) < 1 or int(result[key]) != result[key]:
            raise MdParameterError(f'{key} must be a positive integer, got {result[key]}')
    for key in ('n_equilibration_steps', 'snapshot_interval', 'seed'):
        if int(result[key]) < 0 or int(result[key]) != result[key]:
            raise MdParameterError(f'{key} must be a non-negative integer, got {result[key]}')
    if result['trajectory_interval'] > result['n_steps']:
        raise MdParameterError('trajectory_interval is longer than the production run: no frame would be stored')
    return result


def _make_dynamics(atoms: Atoms, p: dict, rng: np.random.Generator):
    from ase.md.bussi import Bussi
    from ase.md.langevin import Langevin
    from ase.md.nose_hoover_chain import MTKNPT, IsotropicMTKNPT, NoseHooverChainNVT
    from ase.md.verlet import VelocityVerlet

    dt = p['timestep_fs'] * units.fs
    temperature = p['temperature_K']
    tdamp = p['thermostat_time_fs'] * units.fs
    ensemble = p['ensemble']
    if ensemble == 'nvt_bussi':
        return Bussi(atoms, dt, temperature_K=temperature, taut=tdamp, rng=rng)
    if ensemble == 'nvt_langevin':
        return Langevin(atoms, dt, temperature_K=temperature, friction=p['friction_per_fs'] / units.fs, rng=rng)
    if ensemble == 'nvt_nose_hoover':
        return NoseHooverChainNVT(atoms, dt, temperature_K=temperature, tdamp=tdamp)
    if ensemble in ('npt_mtk', 'npt_mtk_iso'):
        cls = MTKNPT if ensemble == 'npt_mtk' else IsotropicMTKNPT
        return cls(
            atoms,
            dt,
            temperature_K=temperature,
            pressure_au=p['pressure_GPa'] * units.GPa,
            tdamp=tdamp,
            pdamp=p['barostat_time_fs'] * units.fs,
        )
    return VelocityVerlet(atoms, dt)


def _pressure_gpa(atoms: Atoms) -> float:
    try:
        stress = atoms.get_stress(include_ideal_gas=True)
    except Exception:  # calculators without stress (non-periodic, some models): pressure is not defined
        return float('nan')
    return float(-np.mean(stress[:3]) / units.GPa)


def _check_sanity(atoms: Atoms, p: dict, step: int) -> None:
    from ase.neighborlist import neighbor_list

    positions = atoms.get_positions()
    if not np.isfinite(positions).all():
        raise MdUnstableError(f'positions became NaN/inf at step {step}')
    temperature = atoms.get_temperature()
    if not np.isfinite(temperature) or temperature > p['max_temperature_factor'] * max(p['temperature_K'], 100.0):
        raise MdUnstableError(
            f'temperature {temperature:.1f} K at step {step} exceeds {p["max_temperature_factor"]}× the target: '
            'the model or the time step is unstable'
        )
    i, j, d = neighbor_list('ijd', atoms, p['min_distance_A'])
    if len(d):
        k = int(np.argmin(d))
        symbols = atoms.get_chemical_symbols()
        raise AtomsTooCloseError(
            f'atoms {i[k]} ({symbols[i[k]]}) and {j[k]} ({symbols[j[k]]}) are {d[k]:.3f} Å apart at step {step} '
            f'(minimum {p["min_distance_A"]} Å): the model lets atoms collapse'
        )


def run_md(atoms: Atoms, calculator, parameters: dict, directory: str | Path = '.') -> dict:
    """Run equilibration + production MD and write the output files; return a summary dict."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    p = validate_md_parameters(parameters)
    directory = Path(directory)
    atoms = atoms.copy()
    atoms.calc = calculator
    rng = np.random.default_rng(p['seed'])
    MaxwellBoltzmannDistribution(atoms, temperature_K=p['temperature_K'], rng=rng)
    Stationary(atoms)
    dynamics = _make_dynamics(atoms, p, rng)
    n_atoms = len(atoms)

    start = time.perf_counter()
    _check_sanity(atoms, p, 0)
    check_every = p['thermo_interval']
    n_eq = p['n_equilibration_steps']
    done = 0
    while done < n_eq:
        chunk = min(check_every, n_eq - done)
        dynamics.run(chunk)
        done += chunk
        _check_sanity(atoms, p, done)

    frames: dict[str, list] = {'positions': [], 'cells': [], 'steps': [], 'velocities': [], 'forces': []}
    thermo_rows = []
    snapshots = []
    dt_ps = p['timestep_fs'] / 1000.0

    def record(step: int) -> None:
        if step % p['thermo_interval'] == 0:
            epot = atoms.get_potential_energy()
            ekin = atoms.get_kinetic_energy()
            thermo_rows.append(
                (step, step * dt_ps, atoms.get_temperature(), epot, ekin, epot + ekin, atoms.get_volume(),
                 _pressure_gpa(atoms))
            )
        if step % p['trajectory_interval'] == 0:
            frames['positions'].append(atoms.get_positions().astype(np.float32))
            frames['cells'].append(atoms.get_cell().array.copy())
            frames['steps'].append(step)
            if p['store_velocities']:
                # Å/fs, the unit GPUMD uses in model.xyz
                frames['velocities'].append((atoms.get_velocities() * units.fs).astype(np.float32))
            if p['store_forces']:
                frames['forces'].append(atoms.get_forces().astype(np.float32))
        if p['snapshot_interval'] and step > 0 and step % p['snapshot_interval'] == 0:
            snapshot = Atoms(atoms.get_chemical_symbols(), atoms.get_positions(), cell=atoms.cell, pbc=atoms.pbc)
            snapshot.wrap()
            snapshot.info.update(
                {'config_type': f'md_{p["temperature_K"]:g}K', 'md_step': step, 'md_temperature_K': p['temperature_K'],
                 'md_energy': float(atoms.get_potential_energy())}
            )
            snapshots.append(snapshot)

    step = 0
    record(step)
    interval = int(np.gcd.reduce([p['thermo_interval'], p['trajectory_interval'], p['snapshot_interval'] or 0]))
    interval = interval or 1
    while step < p['n_steps']:
        chunk = min(interval, p['n_steps'] - step)
        dynamics.run(chunk)
        step += chunk
        if step % check_every == 0 or step == p['n_steps']:
            _check_sanity(atoms, p, n_eq + step)
        record(step)
    wall = time.perf_counter() - start

    header = 'step time_ps temperature_K potential_energy_eV kinetic_energy_eV total_energy_eV volume_A3 pressure_GPa'
    np.savetxt(directory / 'thermo.dat', np.array(thermo_rows, dtype=float), header=header,
               fmt=['%d', '%.6f', '%.4f', '%.8f', '%.8f', '%.8f', '%.6f', '%.6f'])
    arrays = {
        'positions': np.array(frames['positions'], dtype=np.float32),
        'cells': np.array(frames['cells'], dtype=float),
        'steps': np.array(frames['steps'], dtype=np.int64),
        'times_ps': np.array(frames['steps'], dtype=float) * dt_ps,
        'numbers': atoms.get_atomic_numbers(),
        'pbc': atoms.get_pbc(),
    }
    if p['store_velocities']:
        arrays['velocities'] = np.array(frames['velocities'], dtype=np.float32)
    if p['store_forces']:
        arrays['forces'] = np.array(frames['forces'], dtype=np.float32)
    np.savez_compressed(directory / 'trajectory.npz', **arrays)
    if snapshots:
        write(directory / 'snapshots.xyz', snapshots, format='extxyz')
    write(directory / 'final.xyz', atoms, format='extxyz')
    temperatures = np.array([row[2] for row in thermo_rows])
    total_steps = n_eq + p['n_steps']
    return {
        'n_steps': p['n_steps'],
        'n_equilibration_steps': n_eq,
        'n_frames': len(frames['steps']),
        'n_snapshots': len(snapshots),
        'mean_temperature_K': float(temperatures.mean()),
        'std_temperature_K': float(temperatures.std()),
        'wall_time_s': wall,
        'speed_atom_step_per_s': n_atoms * total_steps / wall if wall > 0 else None,
    }


def load_trajectory(path: str | Path) -> dict:
    """Read ``trajectory.npz`` into a dict of arrays (the engine's own compact format)."""
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def write_report(directory: str | Path, report: dict) -> None:
    Path(directory, 'report.json').write_text(json.dumps(report, indent=2, default=float))
