"""The force-locality runs of ``aiida-sseff-engine locality``: frozen sphere, NVT MD of the rest, surrogate forces.

For each central atom and each frozen radius ``r_f``: every atom within ``r_f`` of the central atom (minimum image,
:func:`aiida_sseff.analysis.locality.frozen_sphere_mask`) is frozen with ASE's ``FixAtoms``, the rest is run by NVT
MD with the perturbation model (the integrators of :mod:`aiida_sseff.engines.md`), and after an equilibration
``n_snapshots`` equally spaced snapshots are taken; the surrogate's force on the central atom in each is recorded.

Writes ``locality.npz``: ``forces`` (centres × radii × snapshots × 3, eV/Å, float64), ``centers``, ``radii`` (Å),
``n_frozen`` (centres × radii), ``snapshot_steps``; with ``store_snapshots`` also ``snapshots.xyz`` (wrapped, with
``center_index``, ``r_f`` and ``snapshot`` in each frame's info) for relabelling elsewhere.

What is and is not saved in surrogate work:
- The surrogate is called on the snapshots only, never on the MD steps in between: the cost is
  snapshots × (one surrogate call), plus the perturbation MD.
- When the surrogate is the perturbation model (no ``surrogate`` spec), its forces at the snapshot are the ones the
  integrator has just computed: they are read from the calculator's cache (``apply_constraint=False``: ``FixAtoms``
  zeroes the constrained forces that ``get_forces`` returns), at no extra cost.
- An ASE calculator returns the forces of every atom; none of ours (CPUNEP, MACE, CHGNet) can be asked for one atom.
  For a NEP of cutoff R the central atom's force depends only on atoms within 2R of it, so a non-periodic cluster
  of radius 2R would give that force exactly at a fraction of the cost in a large cell (LLZO 3x3x3: ~12 % of the
  atoms); not done yet: it needs a check that CPUNEP treats a cluster in vacuum exactly, and it is no help when the
  surrogate is the MD model (free, above). For MACE/CHGNet (message passing, long receptive field) a cluster cut
  changes the graph near its surface and so the force: not exact, so not done. The whole cell is evaluated, once
  per snapshot.

The GPUMD path writes the same run for ``gpumd`` (:func:`write_gpumd_locality_inputs`): the frozen sphere is group 1
of grouping method 0 in ``model.xyz``, frozen by ``fix``; snapshots come from the dump. GPUMD's ``fix`` zeroes the
forces of the fixed group (``fix.rst``: "velocities and forces are always set to zero"), so the central atom's force
cannot be read from the dump even when the surrogate is the MD model: the snapshots are labelled by the label engine.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from ase import Atoms

from aiida_sseff.engines.md import MdParameterError, _check_sanity, _make_dynamics, validate_md_parameters

#: Locality parameters and their defaults; the MD ones are those of :data:`aiida_sseff.engines.md.DEFAULT_MD_PARAMETERS`
DEFAULT_LOCALITY_PARAMETERS = {
    'centers': None,
    'radii': None,
    'n_snapshots': 100,
    'snapshot_interval': 50,
    'n_equilibration_steps': 500,
    'margin_A': 0.0,
    'store_snapshots': False,
    'min_snapshots': 16,
    # MD of the outer region
    'ensemble': 'nvt_bussi',
    'temperature_K': 1000.0,
    'timestep_fs': 2.0,
    'thermostat_time_fs': 100.0,
    'friction_per_fs': 0.01,
    'seed': 1,
    'min_distance_A': 0.6,
    'max_temperature_factor': 5.0,
}
_MD_KEYS = ('ensemble', 'temperature_K', 'timestep_fs', 'thermostat_time_fs', 'friction_per_fs', 'seed',
            'min_distance_A', 'max_temperature_factor')
#: a fixed cell: a barostat would move the frozen atoms with the cell; NVE has no temperature to perturb at
NVT_ENSEMBLES = ('nvt_bussi', 'nvt_langevin', 'nvt_nose_hoover')
RESULTS_FILENAME = 'locality.npz'
SNAPSHOTS_FILENAME = 'snapshots.xyz'


class LocalityParameterError(MdParameterError):
    """Invalid locality parameters (an ``MdParameterError``, so the engine reports ``invalid_input``)."""


def validate_locality_parameters(parameters: dict, n_atoms: int | None = None) -> dict:
    """Fill defaults and check; raise :class:`LocalityParameterError` naming the bad key."""
    unknown = set(parameters) - set(DEFAULT_LOCALITY_PARAMETERS)
    if unknown:
        raise LocalityParameterError(f'unknown locality parameter(s): {sorted(unknown)}; known: '
                                     f'{sorted(DEFAULT_LOCALITY_PARAMETERS)}')
    p = {**DEFAULT_LOCALITY_PARAMETERS, **parameters}
    for key in ('centers', 'radii'):
        if not p[key] or not isinstance(p[key], (list, tuple)):
            raise LocalityParameterError(f'`{key}` must be a non-empty list, got {p[key]!r}')
    centers = [int(c) for c in p['centers']]
    if any(c != original for c, original in zip(centers, p["centers"], strict=True)) or min(centers) < 0 or (
            n_atoms is not None and max(centers) >= n_atoms):
        raise LocalityParameterError(f'`centers` must be atom indices in 0..{"N-1" if n_atoms is None else n_atoms - 1}'
                                     f', got {p["centers"]}')
    radii = [float(r) for r in p['radii']]
    if not all(r > 0 for r in radii):
        raise LocalityParameterError(f'`radii` (r_f, Å) must be positive, got {p["radii"]}')
    for key in ('n_snapshots', 'snapshot_interval'):
        if isinstance(p[key], bool) or int(p[key]) != p[key] or int(p[key]) < 1:
            raise LocalityParameterError(f'`{key}` must be a positive integer, got {p[key]!r}')
    if int(p['n_equilibration_steps']) != p['n_equilibration_steps'] or p['n_equilibration_steps'] < 0:
        raise LocalityParameterError(f'`n_equilibration_steps` must be an integer >= 0, got {p["n_equilibration_steps"]}')
    if p['n_snapshots'] < p['min_snapshots']:
        raise LocalityParameterError(f'n_snapshots = {p["n_snapshots"]} is too few: σ_f and its blocked error need at '
                                     f'least {p["min_snapshots"]} snapshots (min_snapshots)')
    if p['ensemble'] not in NVT_ENSEMBLES:
        raise LocalityParameterError(f'ensemble `{p["ensemble"]}`: the frozen-sphere MD needs a fixed cell and a '
                                     f'thermostat; choose one of {", ".join(NVT_ENSEMBLES)}')
    if float(p['margin_A']) < 0:
        raise LocalityParameterError(f'`margin_A` must be >= 0, got {p["margin_A"]}')
    return {**p, 'centers': centers, 'radii': radii, 'n_snapshots': int(p['n_snapshots']),
            'snapshot_interval': int(p['snapshot_interval']), 'n_equilibration_steps': int(p['n_equilibration_steps'])}


def md_parameters(p: dict) -> dict:
    """The MD parameters (validated by :func:`aiida_sseff.engines.md.validate_md_parameters`) of one locality run."""
    md = {key: p[key] for key in _MD_KEYS}
    md.update(n_steps=p['n_snapshots'] * p['snapshot_interval'], n_equilibration_steps=p['n_equilibration_steps'],
              thermo_interval=p['snapshot_interval'], trajectory_interval=p['snapshot_interval'])
    return validate_md_parameters(md)


def _surrogate_force(atoms: Atoms, center: int, surrogate) -> np.ndarray:
    """Force (eV/Å) on ``center`` from the surrogate, on a copy without constraints (the full cell, see above)."""
    snapshot = Atoms(atoms.get_chemical_symbols(), atoms.get_positions(), cell=atoms.cell, pbc=atoms.pbc)
    snapshot.calc = surrogate
    return np.array(snapshot.get_forces()[center], dtype=float)


def run_locality(atoms: Atoms, perturbation, parameters: dict, surrogate=None, directory: str | Path = '.') -> dict:
    """Run every (central atom, r_f) point and write :data:`RESULTS_FILENAME`; return a summary dict.

    ``perturbation``: the ASE calculator of the MD; ``surrogate``: the ASE calculator whose central-atom force is
    measured, or None for the perturbation model itself (its forces are then reused, see the module docstring).
    Raises ``SphereDoesNotFitError`` (a ``ValueError``) for a radius the cell cannot hold.
    """
    from ase.constraints import FixAtoms
    from ase.io import write
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    from aiida_sseff.analysis.locality import check_sphere_fits, frozen_sphere_mask

    start = time.perf_counter()
    p = validate_locality_parameters(parameters, len(atoms))
    for radius in p['radii']:  # refuse before any MD is run, not at the largest radius
        check_sphere_fits(atoms.cell, radius, p['margin_A'])
    md = md_parameters(p)
    directory = Path(directory)
    n_c, n_r, n_s = len(p['centers']), len(p['radii']), p['n_snapshots']
    forces = np.full((n_c, n_r, n_s, 3), np.nan)
    n_frozen = np.zeros((n_c, n_r), dtype=int)
    steps = (np.arange(1, n_s + 1) * p['snapshot_interval']).astype(np.int64)
    rng = np.random.default_rng(p['seed'])
    snapshots = []
    md_wall = surrogate_wall = 0.0
    n_surrogate_calls = 0
    mean_temperatures = np.zeros((n_c, n_r))
    for ic, center in enumerate(p['centers']):
        for ir, radius in enumerate(p['radii']):
            mask = frozen_sphere_mask(atoms, center, radius, p['margin_A'])
            n_frozen[ic, ir] = int(mask.sum())
            system = Atoms(atoms.get_chemical_symbols(), atoms.get_positions(), cell=atoms.cell, pbc=True)
            system.set_constraint(FixAtoms(mask=mask))
            system.calc = perturbation
            MaxwellBoltzmannDistribution(system, temperature_K=md['temperature_K'], rng=rng)
            Stationary(system)  # set_momenta applies FixAtoms: the frozen atoms keep zero momenta
            dynamics = _make_dynamics(system, md, rng, md['ensemble'])
            began = time.perf_counter()
            _check_sanity(system, md, 0)
            done = 0
            while done < md['n_equilibration_steps']:
                chunk = min(p['snapshot_interval'], md['n_equilibration_steps'] - done)
                dynamics.run(chunk)
                done += chunk
                _check_sanity(system, md, done)
            temperatures = []
            for k in range(n_s):
                dynamics.run(p['snapshot_interval'])
                _check_sanity(system, md, md['n_equilibration_steps'] + int(steps[k]))
                temperatures.append(system.get_temperature())
                if surrogate is None:
                    # the integrator's last force call, from the cache: no new evaluation
                    forces[ic, ir, k] = system.get_forces(apply_constraint=False)[center]
                else:
                    md_wall += time.perf_counter() - began
                    began = time.perf_counter()
                    forces[ic, ir, k] = _surrogate_force(system, center, surrogate)
                    surrogate_wall += time.perf_counter() - began
                    n_surrogate_calls += 1
                    began = time.perf_counter()
                if p['store_snapshots']:
                    snapshot = Atoms(system.get_chemical_symbols(), system.get_positions(), cell=system.cell, pbc=True)
                    snapshot.wrap()
                    snapshot.info.update({'center_index': center, 'r_f': radius, 'snapshot': k,
                                          'md_step': int(steps[k])})
                    snapshots.append(snapshot)
            md_wall += time.perf_counter() - began
            mean_temperatures[ic, ir] = float(np.mean(temperatures))
    np.savez(directory / RESULTS_FILENAME, forces=forces, centers=np.array(p['centers'], dtype=np.int64),
             radii=np.array(p['radii']), n_frozen=n_frozen, snapshot_steps=steps,
             mean_temperature_K=mean_temperatures, numbers=atoms.get_atomic_numbers())
    if snapshots:
        write(directory / SNAPSHOTS_FILENAME, snapshots, format='extxyz')
    return {
        'status': 'ok',
        'n_centers': n_c,
        'n_radii': n_r,
        'n_snapshots': n_s,
        'n_atoms': len(atoms),
        'n_md_steps_per_point': md['n_equilibration_steps'] + md['n_steps'],
        'surrogate_is_perturbation': surrogate is None,
        'n_surrogate_calls': n_surrogate_calls,
        'md_wall_time_s': md_wall,
        'surrogate_wall_time_s': surrogate_wall,
        'wall_time_s': time.perf_counter() - start,
    }


def run_from_config(config: dict, directory: str | Path = '.') -> dict:
    """``aiida-sseff-engine locality``: ``structure.xyz`` and ``engine.json``'s ``calculator`` (the MD model),
    optional ``surrogate`` and ``parameters``. A sphere the cell cannot hold is an invalid input."""
    from ase.io import read

    from aiida_sseff.analysis.locality import SphereDoesNotFitError
    from aiida_sseff.engines.calculators import check_elements, make_calculator, validate_spec

    directory = Path(directory)
    atoms = read(directory / 'structure.xyz', format='extxyz')
    specs = [validate_spec(config['calculator'])]
    if config.get('surrogate'):
        specs.append(validate_spec(config['surrogate']))
    for spec in specs:
        check_elements(atoms.get_chemical_symbols(), spec, directory)
    perturbation = make_calculator(specs[0], directory)
    surrogate = make_calculator(specs[1], directory) if len(specs) > 1 else None
    try:
        return run_locality(atoms, perturbation, config.get('parameters', {}), surrogate, directory)
    except SphereDoesNotFitError as exception:
        raise LocalityParameterError(str(exception)) from None


def gpumd_frozen_groups(mask) -> np.ndarray:
    """Grouping method 0 of ``model.xyz`` for the GPUMD locality run: 0 outside the sphere, 1 the frozen sphere."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any() or mask.all():
        raise ValueError(f'the frozen sphere holds {int(mask.sum())} of {mask.size} atoms: nothing to freeze or '
                         'nothing to perturb')
    return mask.astype(int)


def write_gpumd_locality_inputs(directory, atoms: Atoms, center: int, radius: float, *, temperature: float,
                                n_snapshots: int, snapshot_interval: int, equilibration_steps: int = 0,
                                time_step_fs: float = 1.0, velocity_seed: int | None = None, margin: float = 0.0,
                                gpumd_version: str = '5.6', potential: str = 'nep.txt') -> str:
    """Write ``model.xyz`` and ``run.in`` of one GPUMD frozen-sphere run into ``directory``; return run.in's text.

    The sphere is group 1 of grouping method 0, because ``fix <group>`` of every GPUMD version refers to grouping
    method 0 (``fix <gm> <gid>`` only since 5.3: ``aiida_sseff.io.gpumd`` writes the syntax of ``gpumd_version``).
    The ``fix`` stands in both runs (it does not propagate, ``fix.rst``). Snapshots: ``dump_exyz`` up to GPUMD 5.6,
    ``dump_xyz`` after (positions; the surrogate forces come from the label engine, see the module docstring).
    """
    from aiida_sseff.analysis.locality import frozen_sphere_mask
    from aiida_sseff.io.gpumd import TrajectoryDump, make_run_in, parse_gpumd_version, write_model_xyz

    groups = gpumd_frozen_groups(frozen_sphere_mask(atoms, center, radius, margin))
    dump_style = 'dump_exyz' if parse_gpumd_version(gpumd_version) <= (5, 6, 0) else 'dump_xyz'
    run_in = make_run_in(
        temperature=temperature, production_steps=n_snapshots * snapshot_interval,
        equilibration_steps=equilibration_steps, time_step_fs=time_step_fs, ensemble='nvt_bdp',
        velocity_seed=velocity_seed, dump_thermo=snapshot_interval, fix=[(0, 1)],
        trajectory=TrajectoryDump(snapshot_interval, style=dump_style), gpumd_version=gpumd_version,
        potential=potential,
    )
    directory = Path(directory)
    plain = Atoms(atoms.get_chemical_symbols(), atoms.get_positions(), cell=atoms.cell, pbc=True)
    write_model_xyz(plain, directory / 'model.xyz', groups=groups)
    (directory / 'run.in').write_text(run_in)
    return run_in
