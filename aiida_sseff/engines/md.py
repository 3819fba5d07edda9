"""ASE molecular dynamics with any calculator of :mod:`aiida_sseff.engines.calculators`, with checkpoints.

Writes, in the working directory:
- ``thermo.dat``: whitespace columns with a ``#`` header (step, time_ps, temperature_K, potential_energy_eV,
  kinetic_energy_eV, total_energy_eV, volume_A3, pressure_GPa), every ``thermo_interval`` steps of production;
- ``trajectory.npz``: unwrapped Cartesian positions (float32, Å; frames × atoms × 3), per-frame cells (Å), steps,
  times (ps), atomic numbers, and velocities/forces when asked — every ``trajectory_interval`` steps. Positions are
  unwrapped because ASE's integrators never wrap atoms back into the cell, which is what MSD analysis needs;
- ``snapshots.xyz``: wrapped configurations every ``snapshot_interval`` steps (candidates for sampling);
- ``final.xyz``: the last configuration (with velocities);
- ``checkpoint.npz``: the complete dynamical state (see below), every ``checkpoint_interval`` steps, when the run
  stops for its wall time, and at the end.
Time starts at 0 at the beginning of production; equilibration steps are run first and not recorded.

Checkpoints. At every checkpoint the outputs recorded so far are rewritten (each file atomically: a temporary file,
then a rename) and then the checkpoint, so a hard kill loses at most one checkpoint interval and the files on disk
never hold half a frame. The checkpoint holds positions and momenta (float64, bit for bit), the cell, the step
counters, the state of the thermostat's random number generator (``numpy`` ``bit_generator.state``) and the
internal variables of the ASE integrator (:data:`INTEGRATOR_STATE`). Because the forces are a deterministic function
of the positions, a run continued from a checkpoint follows the same trajectory as one that never stopped. A restarted
run writes only its own segment (frames after the checkpoint's step); joining the segments is the work chain's job.

Volume. ``equilibration_ensemble`` (default: ``ensemble``) is the ensemble of the equilibration;
``production_cell = 'equilibrated_mean'`` sets the cell, after an NPT equilibration, to the mean cell of the second
half of that equilibration (positions scaled affinely, velocities kept), so that "NPT equilibration, then NVT
production at the equilibrated mean volume" is one run. ``'input'`` (the default) runs a fixed-cell production at
the input cell (scaled back to it after an NPT equilibration); an NPT production continues from the cell it has.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
from ase import Atoms, units

from aiida_sseff.engines._lazy import ase_io

ENSEMBLES = ('nvt_bussi', 'nvt_langevin', 'nvt_nose_hoover', 'npt_mtk', 'npt_mtk_iso', 'nve')
NPT_ENSEMBLES = ('npt_mtk', 'npt_mtk_iso')
PRODUCTION_CELLS = ('input', 'equilibrated_mean')
CHECKPOINT_FILENAME = 'checkpoint.npz'
CHECKPOINT_FORMAT = 1

DEFAULT_MD_PARAMETERS = {
    'ensemble': 'nvt_bussi',
    'equilibration_ensemble': None,
    'production_cell': 'input',
    'temperature_K': 300.0,
    'timestep_fs': 2.0,
    'n_steps': 1000,
    'n_equilibration_steps': 0,
    'thermo_interval': 10,
    'trajectory_interval': 10,
    'snapshot_interval': 0,
    'checkpoint_interval': 10000,
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

#: Parameters a restart may change: the run length, how often to checkpoint, and the blow-up checks. Every other
#: parameter defines the trajectory and must equal the checkpoint's.
RESTART_MAY_CHANGE = ('n_steps', 'checkpoint_interval', 'min_distance_A', 'max_temperature_factor')

#: The internal variables of each ASE integrator (ase 3.29, ``ase/md/{bussi,langevin,nose_hoover_chain}.py``) beyond
#: the atoms' positions, momenta and cell, and beyond ``rng``, which is saved for every integrator that has one.
#: Positions/momenta the integrators keep as ``_q``/``_p`` are re-read from the atoms when one is built.
#: The random number generator (of the velocities and the stochastic thermostats) is one ``numpy`` Generator of the
#: run, saved once by :func:`run_md`, so a stream that continues across an equilibration in another ensemble is kept.
#: ``Bussi.transferred_energy`` is a diagnostic (the energy the thermostat exchanged), kept so it stays continuous.
INTEGRATOR_STATE = {
    'VelocityVerlet': (),
    'Bussi': ('transferred_energy',),
    'Langevin': (),
    'NoseHooverChainNVT': ('_thermostat._eta', '_thermostat._p_eta'),
    'IsotropicMTKNPT': ('_thermostat._eta', '_thermostat._p_eta', '_barostat._xi', '_barostat._p_xi', '_eps',
                        '_p_eps', '_cell0', '_volume0'),
    'MTKNPT': ('_thermostat._eta', '_thermostat._p_eta', '_barostat._xi', '_barostat._p_xi', '_h', '_p_g'),
}


class MdParameterError(ValueError):
    """Invalid MD parameters."""


class CheckpointError(MdParameterError):
    """A checkpoint cannot be written for this integrator, or cannot be used to continue this run."""


class MdUnstableError(RuntimeError):
    """The MD run blew up (NaN, runaway temperature)."""


class AtomsTooCloseError(RuntimeError):
    """Two atoms came closer than the allowed minimum distance."""


def peak_memory_mb() -> float:
    """Peak resident set size (RSS) of this process so far, in MB (2**20 bytes): ``getrusage`` reports kB on Linux
    and bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == 'darwin' else peak / 2**10


def peak_gpu_memory_mb() -> float | None:
    """Peak GPU memory that torch allocated in this process, in MB; None where torch never used CUDA (CPU models)."""
    torch = sys.modules.get('torch')  # never import torch for a NEP run only to ask
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return float(torch.cuda.max_memory_allocated()) / 2**20


def validate_md_parameters(parameters: dict) -> dict:
    """Fill defaults and check ranges; raise ``MdParameterError`` naming the bad key."""
    unknown = set(parameters) - set(DEFAULT_MD_PARAMETERS)
    if unknown:
        raise MdParameterError(f'unknown MD parameter(s): {sorted(unknown)}; known: {sorted(DEFAULT_MD_PARAMETERS)}')
    result = {**DEFAULT_MD_PARAMETERS, **parameters}
    if result['equilibration_ensemble'] is None:
        result['equilibration_ensemble'] = result['ensemble']
    for key in ('ensemble', 'equilibration_ensemble'):
        if result[key] not in ENSEMBLES:
            raise MdParameterError(f'{key} `{result[key]}` unknown; choose one of {", ".join(ENSEMBLES)}')
    positive = ('temperature_K', 'timestep_fs', 'thermostat_time_fs', 'friction_per_fs', 'barostat_time_fs')
    for key in positive:
        if not float(result[key]) > 0:
            raise MdParameterError(f'{key} must be > 0, got {result[key]}')
    if float(result['timestep_fs']) > 10:
        raise MdParameterError(f'timestep_fs = {result["timestep_fs"]} fs is too large for atomistic MD (≤ 10 fs)')
    for key in ('n_steps', 'thermo_interval', 'trajectory_interval', 'checkpoint_interval'):
        if int(result[key]) < 1 or int(result[key]) != result[key]:
            raise MdParameterError(f'{key} must be a positive integer, got {result[key]}')
    for key in ('n_equilibration_steps', 'snapshot_interval', 'seed'):
        if int(result[key]) < 0 or int(result[key]) != result[key]:
            raise MdParameterError(f'{key} must be a non-negative integer, got {result[key]}')
    if result['trajectory_interval'] > result['n_steps']:
        raise MdParameterError('trajectory_interval is longer than the production run: no frame would be stored')
    if result['production_cell'] not in PRODUCTION_CELLS:
        raise MdParameterError(f'production_cell `{result["production_cell"]}` unknown; choose one of '
                               f'{", ".join(PRODUCTION_CELLS)}')
    if result['production_cell'] == 'equilibrated_mean':
        if result['equilibration_ensemble'] not in NPT_ENSEMBLES:
            raise MdParameterError(
                f"production_cell 'equilibrated_mean' needs an NPT equilibration (equilibration_ensemble one of "
                f"{', '.join(NPT_ENSEMBLES)}), got `{result['equilibration_ensemble']}`: with a fixed cell there is "
                'no equilibrated volume to take')
        if result['n_equilibration_steps'] < 1:
            raise MdParameterError("production_cell 'equilibrated_mean' needs n_equilibration_steps > 0: the mean "
                                   'cell is taken over the second half of the equilibration')
    return result


def _output_stride(p: dict) -> int:
    """Steps between two moments at which something is recorded: the run advances in chunks of this many steps."""
    return int(np.gcd.reduce([p['thermo_interval'], p['trajectory_interval'], p['snapshot_interval'] or 0])) or 1


def checkpoint_stride(p: dict) -> int:
    """``checkpoint_interval`` rounded up to a multiple of the output stride (checkpoints fall between chunks)."""
    stride = _output_stride(p)
    return -(-int(p['checkpoint_interval']) // stride) * stride


def _make_dynamics(atoms: Atoms, p: dict, rng: np.random.Generator, ensemble: str):
    from aiida_sseff.engines._lazy import ase_integrator

    dt = p['timestep_fs'] * units.fs
    temperature = p['temperature_K']
    tdamp = p['thermostat_time_fs'] * units.fs
    if ensemble == 'nvt_bussi':
        return ase_integrator('ase.md.bussi', 'Bussi')(atoms, dt, temperature_K=temperature, taut=tdamp, rng=rng)
    if ensemble == 'nvt_langevin':
        return ase_integrator('ase.md.langevin', 'Langevin')(
            atoms, dt, temperature_K=temperature, friction=p['friction_per_fs'] / units.fs, rng=rng)
    if ensemble == 'nvt_nose_hoover':
        return ase_integrator('ase.md.nose_hoover_chain', 'NoseHooverChainNVT')(atoms, dt, temperature_K=temperature,
                                                                                 tdamp=tdamp)
    if ensemble in NPT_ENSEMBLES:
        cls = ase_integrator('ase.md.nose_hoover_chain', 'MTKNPT' if ensemble == 'npt_mtk' else 'IsotropicMTKNPT')
        return cls(
            atoms,
            dt,
            temperature_K=temperature,
            pressure_au=p['pressure_GPa'] * units.GPa,
            tdamp=tdamp,
            pdamp=p['barostat_time_fs'] * units.fs,
        )
    return ase_integrator('ase.md.verlet', 'VelocityVerlet')(atoms, dt)


def _get_dotted(obj, name: str):
    for part in name.split('.'):
        obj = getattr(obj, part)
    return obj


def _set_dotted(obj, name: str, value) -> None:
    *parents, last = name.split('.')
    for part in parents:
        obj = getattr(obj, part)
    setattr(obj, last, value)


def integrator_state(dynamics) -> dict:
    """The internal variables of an ASE integrator (:data:`INTEGRATOR_STATE`) as plain floats/lists.

    Raises ``CheckpointError`` for an integrator whose state is not known here, or when the installed ASE lacks one
    of the variables (a newer ASE may rename them): a checkpoint without them would not continue the same trajectory.
    """
    import ase

    name = type(dynamics).__name__
    if name not in INTEGRATOR_STATE:
        raise CheckpointError(f'the state of the ASE integrator {name} cannot be saved (known: '
                              f'{", ".join(INTEGRATOR_STATE)}): a restart would not continue the same trajectory')
    state = {'nsteps': int(dynamics.nsteps)}
    for attribute in INTEGRATOR_STATE[name]:
        try:
            value = _get_dotted(dynamics, attribute)
        except AttributeError:
            raise CheckpointError(f'ASE {ase.__version__}: {name} has no attribute `{attribute}`; its state cannot be '
                                  'saved, so the run cannot be checkpointed') from None
        state[attribute] = np.asarray(value, dtype=float).tolist()
    rng = getattr(dynamics, 'rng', None)
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise CheckpointError(f'{name} draws from {type(rng).__name__}, not a numpy Generator: its random state '
                              'cannot be saved')
    return state


def restore_integrator_state(dynamics, state: dict) -> None:
    name = type(dynamics).__name__
    dynamics.nsteps = int(state['nsteps'])
    for attribute in INTEGRATOR_STATE[name]:
        current = _get_dotted(dynamics, attribute)
        value = np.array(state[attribute], dtype=float)
        _set_dotted(dynamics, attribute, value if isinstance(current, np.ndarray) else float(value))


def _pressure_gpa(atoms: Atoms) -> float:
    try:
        stress = atoms.get_stress(include_ideal_gas=True)
    except Exception:  # calculators without stress (non-periodic, some models): pressure is not defined
        return float('nan')
    return float(-np.mean(stress[:3]) / units.GPa)


#: Extra reach (Å) of the neighbour list of the closest-approach check beyond ``min_distance_A``: while no atom has
#: moved more than half of (closest distance found - min_distance_A) since that list, no pair can have come closer
#: than the minimum, and the list is not rebuilt (the Verlet-skin argument of MD codes' neighbour lists).
CONTACT_SKIN_A = 1.0


_PAIR_BLOCK = 256  # rows per block of the minimum-image pair search (block x N x 3 temporaries)
_MINIMUM_IMAGE_MAX_ATOMS = 4096


def _pairs_within(atoms: Atoms, reach: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of atoms closer than ``reach`` (Å) and their distances, through periodic images: ``(i, j, d)``.

    Where the cell is periodic in all three directions and ``reach`` is below half its smallest width (the distance
    between opposite faces), a vector shorter than ``reach`` has fractional coordinates in (-1/2, 1/2): the minimum
    image (fractional difference minus its rounding) finds every such pair exactly once (``i < j``), with numpy
    alone. Otherwise (slabs, small cells, very many atoms) ASE's neighbour list as it is (each pair in both orders, once
    per image), which imports scipy (~0.35 s of start-up).
    """
    cell = atoms.cell.array
    n_atoms = len(atoms)
    if atoms.pbc.all() and n_atoms <= _MINIMUM_IMAGE_MAX_ATOMS:
        volume = abs(np.linalg.det(cell))
        widths = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
        if volume > 0 and reach < 0.5 * widths.min():
            inverse = np.linalg.inv(cell)
            fractional = atoms.positions @ inverse
            pairs_i, pairs_j, distances = [], [], []
            for start in range(0, n_atoms, _PAIR_BLOCK):
                rows = np.arange(start, min(start + _PAIR_BLOCK, n_atoms))
                difference = fractional[None, :, :] - fractional[rows, None, :]
                difference -= np.round(difference)
                squared = np.einsum('abk,abk->ab', difference @ cell, difference @ cell)
                a, b = np.nonzero((squared < reach * reach) & (np.arange(n_atoms)[None, :] > rows[:, None]))
                pairs_i.append(rows[a])
                pairs_j.append(b)
                distances.append(np.sqrt(squared[a, b]))
            return np.concatenate(pairs_i), np.concatenate(pairs_j), np.concatenate(distances)
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list('ijd', atoms, reach)
    return i, j, d


class _ContactGuard:
    """Raises :class:`AtomsTooCloseError` once two atoms are closer than ``min_distance_A``, exactly as a neighbour
    list at every check would, but builds that list only when the atoms may have come close enough.

    Why not a neighbour list at every check: at 192 atoms ASE's list (every 10 steps) costs ~5 % of a CPUNEP run.
    The list is :func:`_pairs_within` (numpy minimum image where the cell allows it: no scipy import at start-up).
    The bound: a pair at distance r at the last list is, after every atom moved at most ``shift``, at least
    r - 2 shift apart (the periodic image vector is fixed while the cell is); pairs outside the list's reach
    (min_distance_A + CONTACT_SKIN_A) were farther than the closest pair found. A changed cell (NPT) voids the bound,
    so every check then builds the list, as before.
    """

    def __init__(self, min_distance: float):
        self.min_distance = float(min_distance)
        self.reference = None  # positions and cell at the last neighbour list
        self.cell = None
        self.closest = 0.0  # the closest distance of that list (its reach if no pair was within)
        self.n_lists = 0

    def check(self, atoms: Atoms, step: int) -> None:
        if not self.min_distance > 0:
            return
        positions = atoms.positions
        cell = atoms.cell.array
        if self.reference is not None and np.array_equal(cell, self.cell):
            shift = float(np.sqrt(np.max(np.einsum('ij,ij->i', positions - self.reference,
                                                    positions - self.reference))))
            # a relative margin of 1e-9 covers rounding of the distances
            if self.closest - 2.0 * shift > self.min_distance * (1.0 + 1e-9):
                return
        reach = self.min_distance + CONTACT_SKIN_A
        i, j, d = _pairs_within(atoms, reach)
        self.n_lists += 1
        too_close = d < self.min_distance
        if too_close.any():
            k = int(np.argmin(d))
            symbols = atoms.get_chemical_symbols()
            raise AtomsTooCloseError(
                f'atoms {i[k]} ({symbols[i[k]]}) and {j[k]} ({symbols[j[k]]}) are {d[k]:.3f} Å apart at step {step} '
                f'(minimum {self.min_distance} Å): the model lets atoms collapse'
            )
        self.closest = float(d.min()) if len(d) else reach
        self.reference = positions.copy()
        self.cell = cell.copy()


def _check_sanity(atoms: Atoms, p: dict, step: int, contacts: _ContactGuard | None = None) -> None:
    positions = atoms.get_positions()
    if not np.isfinite(positions).all():
        raise MdUnstableError(f'positions became NaN/inf at step {step}')
    temperature = atoms.get_temperature()
    if not np.isfinite(temperature) or temperature > p['max_temperature_factor'] * max(p['temperature_K'], 100.0):
        raise MdUnstableError(
            f'temperature {temperature:.1f} K at step {step} exceeds {p["max_temperature_factor"]}× the target: '
            'the model or the time step is unstable'
        )
    (contacts or _ContactGuard(p['min_distance_A'])).check(atoms, step)


def _replace_atomically(path: Path, write_to) -> None:
    """Write through ``write_to(temporary_path)``, then rename: a kill never leaves a half-written file."""
    temporary = path.with_name(f'.{path.name}.tmp')
    write_to(temporary)
    os.replace(temporary, path)


THERMO_HEADER = ('step time_ps temperature_K potential_energy_eV kinetic_energy_eV total_energy_eV volume_A3 '
                 'pressure_GPa')


class _Recorder:
    """Frames, thermo rows and snapshots of one run segment, written to disk at every checkpoint."""

    def __init__(self, p: dict, numbers, pbc):
        self.p = p
        self.numbers = numbers
        self.pbc = pbc
        self.frames: dict[str, list] = {'positions': [], 'cells': [], 'steps': [], 'velocities': [], 'forces': []}
        self.thermo_rows: list[tuple] = []
        self.snapshots: list[Atoms] = []
        self.dt_ps = p['timestep_fs'] / 1000.0

    def record(self, atoms: Atoms, step: int) -> None:
        p = self.p
        if step % p['thermo_interval'] == 0:
            epot = atoms.get_potential_energy()
            ekin = atoms.get_kinetic_energy()
            self.thermo_rows.append(
                (step, step * self.dt_ps, atoms.get_temperature(), epot, ekin, epot + ekin, atoms.get_volume(),
                 _pressure_gpa(atoms))
            )
        if step % p['trajectory_interval'] == 0:
            frames = self.frames
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
            self.snapshots.append(snapshot)

    def write(self, directory: Path, atoms: Atoms) -> None:
        p = self.p
        write = ase_io().write
        rows = np.array(self.thermo_rows, dtype=float).reshape(-1, 8)
        _replace_atomically(directory / 'thermo.dat', lambda path: np.savetxt(
            path, rows, header=THERMO_HEADER, fmt=['%d', '%.6f', '%.4f', '%.8f', '%.8f', '%.8f', '%.6f', '%.6f']))
        n_atoms = len(self.numbers)
        arrays = {
            'positions': np.array(self.frames['positions'], dtype=np.float32).reshape(-1, n_atoms, 3),
            'cells': np.array(self.frames['cells'], dtype=float).reshape(-1, 3, 3),
            'steps': np.array(self.frames['steps'], dtype=np.int64),
            'times_ps': np.array(self.frames['steps'], dtype=float) * self.dt_ps,
            'numbers': self.numbers,
            'pbc': self.pbc,
        }
        for key, wanted in (('velocities', p['store_velocities']), ('forces', p['store_forces'])):
            if wanted:
                arrays[key] = np.array(self.frames[key], dtype=np.float32).reshape(-1, n_atoms, 3)
        # np.savez appends `.npz` to a name without it: give the temporary file that suffix
        temporary = directory / '.trajectory.tmp.npz'
        np.savez_compressed(temporary, **arrays)
        os.replace(temporary, directory / 'trajectory.npz')
        if self.snapshots:
            _replace_atomically(directory / 'snapshots.xyz',
                                lambda path: write(path, self.snapshots, format='extxyz'))
        _replace_atomically(directory / 'final.xyz', lambda path: write(path, atoms, format='extxyz'))


def write_checkpoint(path: str | Path, atoms: Atoms, state: dict) -> None:
    """The dynamical state: float64 positions, momenta and cell as arrays, everything else as JSON."""
    path = Path(path)
    temporary = path.with_name('.checkpoint.tmp.npz')
    np.savez(temporary, positions=atoms.get_positions(), momenta=atoms.get_momenta(), cell=atoms.get_cell().array,
             numbers=atoms.get_atomic_numbers(), pbc=atoms.get_pbc(), state=np.array(json.dumps(state)))
    os.replace(temporary, path)


def read_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint into ``{'positions', 'momenta', 'cell', 'numbers', 'pbc', 'state'}``."""
    try:
        with np.load(path) as data:
            checkpoint = {key: data[key] for key in ('positions', 'momenta', 'cell', 'numbers', 'pbc')}
            checkpoint['state'] = json.loads(str(data['state']))
    except (OSError, KeyError, ValueError) as exception:
        raise CheckpointError(f'{path} is not a checkpoint of aiida-sseff-engine md: {exception}') from None
    if checkpoint['state'].get('format') != CHECKPOINT_FORMAT:
        raise CheckpointError(f'{path}: checkpoint format {checkpoint["state"].get("format")} not understood '
                              f'(this engine reads format {CHECKPOINT_FORMAT})')
    return checkpoint


def check_restart_compatible(checkpoint: dict, numbers, p: dict, path) -> None:
    """Raise ``CheckpointError`` unless ``checkpoint`` (of :func:`read_checkpoint`) can continue a run of the
    validated parameters ``p`` on atoms of these atomic ``numbers``."""
    previous = checkpoint['state']['parameters']
    different = {key: (previous.get(key), p[key]) for key in p
                 if key not in RESTART_MAY_CHANGE and previous.get(key) != p[key]}
    if different:
        details = ', '.join(f'{key}: {old!r} in the checkpoint, {new!r} now' for key, (old, new) in different.items())
        raise CheckpointError(f'the checkpoint {path} belongs to a different run ({details}); only '
                              f'{", ".join(RESTART_MAY_CHANGE)} may change on a restart')
    if not np.array_equal(checkpoint['numbers'], numbers):
        raise CheckpointError(f'the checkpoint {path} holds {len(checkpoint["numbers"])} atoms of other elements or '
                              f'in another order than the structure ({len(numbers)} atoms)')
    state = checkpoint['state']
    if state['phase'] == 'production' and state['step'] >= p['n_steps']:
        raise CheckpointError(f'the checkpoint {path} is at production step {state["step"]}, n_steps = '
                              f'{p["n_steps"]} leaves nothing to run: give a larger n_steps to extend the run')


def run_md(atoms: Atoms, calculator, parameters: dict, directory: str | Path = '.', checkpoint: str | Path | None = None,
           wall_time_s: float | None = None) -> dict:
    """Run equilibration + production MD and write the output files; return a summary dict.

    :param checkpoint: a ``checkpoint.npz`` of an earlier run of the same parameters: continue from it (only
        :data:`RESTART_MAY_CHANGE` may differ), writing the frames after the checkpoint's step.
    :param wall_time_s: stop cleanly, with a checkpoint, once this many seconds have passed; the summary's ``status``
        is then ``'out_of_walltime'``. A run always advances at least one checkpoint interval first (else a restart
        loop could make no progress when the start-up alone takes longer than the budget).
    """
    from aiida_sseff.engines._lazy import ASE_SKIPPED, import_without_package_inits

    velocities = import_without_package_inits('ase.md.velocitydistribution', ASE_SKIPPED)
    MaxwellBoltzmannDistribution, Stationary = velocities.MaxwellBoltzmannDistribution, velocities.Stationary

    start = time.perf_counter()
    p = validate_md_parameters(parameters)
    directory = Path(directory)
    atoms = atoms.copy()
    n_eq, n_steps = p['n_equilibration_steps'], p['n_steps']
    rng = np.random.default_rng(p['seed'])
    eq_cell_sum, eq_cell_count = np.zeros((3, 3)), 0
    input_cell = atoms.get_cell().array.copy()
    if checkpoint is None:
        phase, eq_done, step = ('equilibration' if n_eq else 'production'), 0, 0
        MaxwellBoltzmannDistribution(atoms, temperature_K=p['temperature_K'], rng=rng)
        Stationary(atoms)
        restart_info = {}
        resumed_in_production = False
    else:
        saved = read_checkpoint(checkpoint)
        check_restart_compatible(saved, atoms.get_atomic_numbers(), p, checkpoint)
        atoms.set_cell(saved['cell'], scale_atoms=False)
        atoms.set_positions(saved['positions'])
        atoms.set_momenta(saved['momenta'])
        state = saved['state']
        rng.bit_generator.state = state['rng']
        phase, eq_done, step = state['phase'], state['equilibration_step'], state['step']
        eq_cell_sum, eq_cell_count = np.array(state['equilibration_cell_sum']), state['equilibration_cell_count']
        input_cell = np.array(state['input_cell'])
        restart_info = {'restart_phase': phase, 'restart_step': step if phase == 'production' else None,
                        'restart_equilibration_step': eq_done}
        resumed_in_production = phase == 'production'
    atoms.calc = calculator

    def build(ensemble):
        dynamics = _make_dynamics(atoms, p, rng, ensemble)
        integrator_state(dynamics)  # refuse now, not at the first checkpoint, an integrator that cannot be saved
        return dynamics

    # one integrator for both phases when nothing changes between them (its thermostat variables carry over)
    same_dynamics = p['equilibration_ensemble'] == p['ensemble'] and p['production_cell'] == 'input'
    dynamics = build(p['equilibration_ensemble'] if phase == 'equilibration' else p['ensemble'])
    if checkpoint is not None:
        restore_integrator_state(dynamics, state['integrator'])

    recorder = _Recorder(p, atoms.get_atomic_numbers(), atoms.get_pbc())
    stride = checkpoint_stride(p)
    check_every = p['thermo_interval']
    contacts = _ContactGuard(p['min_distance_A'])
    n_done_here = 0  # steps advanced in this run (both phases)
    last_checkpoint = 0
    checkpoint_wall = 0.0
    n_checkpoints = 0
    stopped = False
    equilibrated_volume = None
    production_wall, production_steps = 0.0, 0

    def save() -> None:
        nonlocal checkpoint_wall, n_checkpoints, last_checkpoint
        begin = time.perf_counter()
        recorder.write(directory, atoms)
        state = {'format': CHECKPOINT_FORMAT, 'phase': phase, 'equilibration_step': eq_done, 'step': step,
                 'time_ps': step * recorder.dt_ps, 'integrator_class': type(dynamics).__name__,
                 'integrator': integrator_state(dynamics), 'rng': rng.bit_generator.state,
                 'equilibration_cell_sum': eq_cell_sum.tolist(),
                 'equilibration_cell_count': eq_cell_count, 'input_cell': input_cell.tolist(), 'parameters': p}
        write_checkpoint(directory / CHECKPOINT_FILENAME, atoms, state)
        checkpoint_wall += time.perf_counter() - begin
        n_checkpoints += 1
        last_checkpoint = n_done_here

    def must_stop() -> bool:
        """Checkpoint when due; stop for the wall time once at least one checkpoint interval was done here."""
        out_of_time = wall_time_s is not None and time.perf_counter() - start >= wall_time_s
        if out_of_time and n_done_here >= stride:
            return True  # the checkpoint is written once the loops are left
        if n_done_here - last_checkpoint >= stride:
            save()
        return False

    if checkpoint is None:
        _check_sanity(atoms, p, 0, contacts)
    while phase == 'equilibration' and eq_done < n_eq:
        chunk = min(check_every, n_eq - eq_done)
        dynamics.run(chunk)
        eq_done += chunk
        n_done_here += chunk
        _check_sanity(atoms, p, eq_done, contacts)
        if eq_done > n_eq / 2:  # the second half: the cell there is the equilibrated one
            eq_cell_sum += atoms.get_cell().array
            eq_cell_count += 1
        if eq_done < n_eq and must_stop():
            stopped = True
            break

    if not stopped:
        if eq_cell_count and p['equilibration_ensemble'] in NPT_ENSEMBLES:
            equilibrated_volume = float(abs(np.linalg.det(eq_cell_sum / eq_cell_count)))
        if phase == 'equilibration':
            phase = 'production'
            if p['production_cell'] == 'equilibrated_mean':
                atoms.set_cell(eq_cell_sum / eq_cell_count, scale_atoms=True)  # momenta are left as they are
            elif p['equilibration_ensemble'] in NPT_ENSEMBLES and p['ensemble'] not in NPT_ENSEMBLES:
                atoms.set_cell(input_cell, scale_atoms=True)  # 'input': a fixed-cell production at the input cell
            if not same_dynamics:
                dynamics = build(p['ensemble'])
        if not resumed_in_production:  # a continued run's first frame is the checkpoint's, recorded before
            recorder.record(atoms, 0)
        interval = _output_stride(p)
        production_start, production_start_step = time.perf_counter(), step
        while step < n_steps:
            chunk = min(interval, n_steps - step)
            dynamics.run(chunk)
            step += chunk
            n_done_here += chunk
            if step % check_every == 0 or step == n_steps:
                _check_sanity(atoms, p, n_eq + step, contacts)
            recorder.record(atoms, step)
            if step < n_steps and must_stop():
                stopped = True
                break
        production_wall = time.perf_counter() - production_start
        production_steps = step - production_start_step
    save()  # the end (or the wall-time stop): outputs and the checkpoint to extend or continue the run
    wall = time.perf_counter() - start

    rows = np.array(recorder.thermo_rows, dtype=float).reshape(-1, 8)
    summary = {
        'status': 'out_of_walltime' if stopped else 'ok',
        'n_steps': n_steps,
        'n_equilibration_steps': n_eq,
        'phase': phase,
        'step': step,
        'equilibration_step': eq_done,
        'n_frames': len(recorder.frames['steps']),
        'n_snapshots': len(recorder.snapshots),
        'mean_temperature_K': float(rows[:, 2].mean()) if len(rows) else None,
        'std_temperature_K': float(rows[:, 2].std()) if len(rows) else None,
        'mean_pressure_GPa': float(np.nanmean(rows[:, 7])) if len(rows) and np.isfinite(rows[:, 7]).any() else None,
        'mean_volume_A3': float(rows[:, 6].mean()) if len(rows) else None,
        'production_cell': p['production_cell'],
        'equilibration_ensemble': p['equilibration_ensemble'],
        'equilibrated_volume_A3': equilibrated_volume,
        'wall_time_s': wall,
        'checkpoint_interval': stride,
        'n_checkpoints': n_checkpoints,
        'checkpoint_wall_time_s': checkpoint_wall,
        'speed_atom_step_per_s': len(atoms) * n_done_here / wall if wall > 0 else None,
        # the production loop alone (no start-up, first force call, equilibration or final write; checkpoints
        # included): the cost of MD with this model, comparable between models and sizes
        'n_atoms': len(atoms),
        'production_wall_time_s': production_wall,
        'production_speed_atom_step_per_s': (len(atoms) * production_steps / production_wall
                                             if production_wall > 0 else None),
        'peak_memory_mb': peak_memory_mb(),
        'peak_gpu_memory_mb': peak_gpu_memory_mb(),
        **restart_info,
    }
    return summary


def load_trajectory(path: str | Path) -> dict:
    """Read ``trajectory.npz`` into a dict of arrays (the engine's own compact format)."""
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def write_report(directory: str | Path, report: dict) -> None:
    Path(directory, 'report.json').write_text(json.dumps(report, indent=2, default=float))
