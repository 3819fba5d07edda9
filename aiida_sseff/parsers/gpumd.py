"""Parser of ``sseff.gpumd``: ``msd.out``, ``thermo.out`` and the log, read only from ``self.retrieved``."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_sseff.calculations.gpumd import LOG_FILENAME, RESTART_FILENAME, STDERR_FILENAME

__all__ = ['GpumdParser', 'parse_log']

_VERSION_RE = re.compile(r'^\s*\*?\s*version\s+(\S+)', re.IGNORECASE | re.MULTILINE)
_N_ATOMS_RE = re.compile(r'Number of atoms is\s+(\d+)')
_RUN_TIME_RE = re.compile(r'Time used for this run\s*=\s*([-+0-9.eE]+)\s*second')
_TOTAL_TIME_RE = re.compile(r'Time used\s*=\s*([-+0-9.eE]+)\s*s\.')


def parse_log(text: str) -> dict:
    """What the GPUMD log (stdout) says about the run: version, atoms, speed (atom·step/s) and time (s) per run.

    ``finished`` is True when GPUMD printed ``Finished running GPUMD`` (it reached the end of run.in).
    """
    from aiida_sseff.io.gpumd import read_speed

    version = _VERSION_RE.search(text)
    n_atoms = _N_ATOMS_RE.search(text)
    total = _TOTAL_TIME_RE.search(text)
    speeds = read_speed(text)
    return {
        'gpumd_version': version.group(1).strip('*').strip() if version else None,
        'n_atoms': int(n_atoms.group(1)) if n_atoms else None,
        'speed_atom_step_per_s': speeds,
        'mean_speed_atom_step_per_s': float(np.mean(speeds)) if speeds else None,
        'run_time_s': [float(x) for x in _RUN_TIME_RE.findall(text)],
        'total_time_s': float(total.group(1)) if total else None,
        'n_runs_completed': len(speeds),
        'finished': 'Finished running GPUMD' in text,
    }


def _stderr_error(text: str) -> tuple[str, str] | None:
    """``('input', message)`` for GPUMD's ``Input Error:`` block, ``('error', message)`` for any other error
    (``CUDA Error:``, ``Error:`` …) printed by GPUMD's error macros to stderr; None if there is none."""
    if not text.strip():
        return None
    detail = re.search(r'Error text:\s*(.*)', text)
    message = detail.group(1).strip() if detail else text.strip().splitlines()[-1][:300]
    if 'Input Error' in text:
        return 'input', message
    if re.search(r'error', text, re.IGNORECASE):
        return 'error', message
    return None


def read_gpumd_log(parser: Parser):
    """``(log, None)`` from the retrieved GPUMD stdout (:func:`parse_log`), or ``(None, exit code)`` when GPUMD's
    stderr holds an error (``ERROR_INPUT_REFUSED`` for its input errors, else ``ERROR_GPUMD_FAILED``) or there is no
    log (``ERROR_MISSING_LOG``); for every parser of a GPUMD job."""
    repository = parser.retrieved.base.repository
    names = repository.list_object_names()
    if STDERR_FILENAME in names:
        error = _stderr_error(repository.get_object_content(STDERR_FILENAME))
        if error is not None:
            kind, message = error
            code = parser.exit_codes.ERROR_INPUT_REFUSED if kind == 'input' else parser.exit_codes.ERROR_GPUMD_FAILED
            return None, code.format(message=message)
    if LOG_FILENAME not in names:
        return None, parser.exit_codes.ERROR_MISSING_LOG
    return parse_log(repository.get_object_content(LOG_FILENAME)), None


#: largest deviation of msd.out's total MSD from the one recomputed from the unwrapped dump, relative to the
#: largest MSD: both are printed with about 6 significant digits (``%g``), so honest files agree to ~1e-4; GPUMD's bug
#: in unwrapped positions under variable cells gave deviations of order 1
MSD_CONSISTENCY_RTOL = 0.01


def _msd_step_files(names) -> list[tuple[int, str]]:
    """``[(step, name), …]`` of the ``msd_step<step>.out`` files (``compute_msd … save_every``), by step."""
    found = []
    for name in names:
        match = re.fullmatch(r'msd_step(\d+)\.out', name)
        if match:
            found.append((int(match.group(1)), name))
    return sorted(found)


class GpumdParser(Parser):
    """``msd.out`` → ``msd`` (ArrayData), ``thermo.out`` → ``thermo`` (ArrayData), log → ``performance`` (Dict).

    ``thermo.out`` is required only when the input parameters asked for it (``dump_thermo``, on by default).
    The ``msd`` node carries GPUMD's statistics as attributes: ``sample_interval``, ``n_correlation`` (Nc),
    ``n_samples`` (production steps // sample interval), ``n_time_origins`` (``n_samples - Nc + 1``, msd.cu),
    ``num_atoms_per_group`` (msd.out's header, else the structure's grouping), ``statistics_from`` and
    ``gpumd_version``. ``thermo`` has ``production_rows_from`` (the first row of the production run).

    A run that stopped early (exit 400) with a ``restart.xyz`` and a saved ``msd_step<n>.out`` (``dump_restart``)
    still outputs ``restart`` and the MSD accumulated up to step n (attribute ``steps_completed``), for
    :class:`~aiida_sseff.workflows.gpumd.GpumdBaseWorkChain` to continue from. A dump with
    ``unwrapped_position`` gives ``trajectory``, and its MSD, recomputed with GPUMD's algorithm
    (:func:`aiida_sseff.analysis.gpumd_msd.gpumd_msd`), is compared with msd.out (``msd_check``; exit 403 beyond
    :data:`MSD_CONSISTENCY_RTOL`).
    """

    def _names(self) -> list[str]:
        return self.retrieved.base.repository.list_object_names()

    def _text(self, name: str) -> str:
        return self.retrieved.base.repository.get_object_content(name)

    def _parameters(self) -> dict:
        try:
            return self.node.inputs.parameters.get_dict()
        except AttributeError:
            return {}

    def _local_copy(self, name: str, directory: Path) -> Path:
        """Copy one retrieved file to ``directory`` (the io readers take paths; the repository may not be a
        file system)."""
        path = directory / name
        with self.retrieved.base.repository.open(name, mode='rb') as source:
            path.write_bytes(source.read())
        return path

    def parse(self, **kwargs):
        names = self._names()
        parameters = self._parameters()
        log, exit_code = read_gpumd_log(self)
        if exit_code:
            return exit_code
        self._version = log['gpumd_version']
        expected_runs = 1 + (int(parameters.get('equilibration_steps', 0) or 0) > 0) if parameters else None
        if not log['finished'] or (expected_runs is not None and log['n_runs_completed'] < expected_runs):
            done = log['n_runs_completed']
            saved = self._partial_outputs(names, parameters)
            self.out('performance', orm.Dict({key: value for key, value in log.items() if key != 'finished'}))
            return self.exit_codes.ERROR_MD_INCOMPLETE.format(
                message=f'{done} of {expected_runs or "?"} runs of run.in completed' + saved)

        with_msd = not (parameters and 'compute_msd' in parameters and parameters['compute_msd'] is None)
        if with_msd and 'msd.out' not in names:
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename='msd.out')
        thermo_requested = parameters.get('dump_thermo', 1000) is not None if parameters else False
        if thermo_requested and 'thermo.out' not in names:
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename='thermo.out')

        from aiida_sseff.io.gpumd import read_msd, read_thermo

        with tempfile.TemporaryDirectory() as tmp:
            blocks = []
            try:
                if with_msd:
                    blocks = read_msd(self._local_copy('msd.out', Path(tmp)))
            except (ValueError, UnicodeDecodeError) as exception:
                return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(filename='msd.out', message=str(exception))
            if RESTART_FILENAME in names:  # the final state, e.g. of an NPT equilibration job
                self.out('restart', orm.SinglefileData(self._local_copy(RESTART_FILENAME, Path(tmp))))
            thermo = None
            if 'thermo.out' in names:
                try:
                    thermo = read_thermo(self._local_copy('thermo.out', Path(tmp)))
                except (ValueError, IndexError, UnicodeDecodeError) as exception:
                    return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(filename='thermo.out', message=str(exception))

        production = parameters.get('production_steps') if parameters else None
        msd = block = None
        if with_msd:
            block = blocks[-1]  # one compute_msd run per CalcJob; an appended file keeps its last block
            if not (np.isfinite(block.msd).all() and np.isfinite(block.sdc).all()):
                return self.exit_codes.ERROR_MD_UNSTABLE.format(message='msd.out holds NaN or inf')
            try:
                msd = self._msd_node(block, parameters, production)
            except ValueError as exception:
                return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(filename='msd.out', message=str(exception))
            msd.base.attributes.set('n_blocks_in_file', len(blocks))
            if len(blocks) > 1:
                self.logger.warning(f'msd.out holds {len(blocks)} appended blocks; the last one is parsed')

        if thermo is not None:
            numeric = thermo.select_dtypes(include=[np.number])
            values = numeric.to_numpy(dtype=float)
            if not np.isfinite(values[:, [c != 'block' for c in numeric.columns]]).all():
                return self.exit_codes.ERROR_MD_UNSTABLE.format(message='thermo.out holds NaN or inf')
            node = orm.ArrayData()
            for column in numeric.columns:
                node.set_array(str(column), numeric[column].to_numpy())
            interval = parameters.get('dump_thermo', 1000) if parameters else None
            if interval and production:
                # thermo.out rows are written when (step + 1) % interval == 0: production // interval of them last
                node.base.attributes.set('production_rows_from', max(len(numeric) - int(production) // int(interval),
                                                                     0))
            self.out('thermo', node)

        if msd is not None:
            self.out('msd', msd)
        self.out('performance', orm.Dict({key: value for key, value in log.items() if key != 'finished'}))
        return self._check_dump(names, parameters, block) if block is not None else None

    # ------------------------------------------------------------------------------------------ msd statistics
    def _statistics(self, block, parameters: dict, production_steps: int | None) -> dict:
        """GPUMD's sampling of this MSD: from msd.out's ``# compute_msd si Nc`` header (GPUMD >= 5.6) or the
        CalcJob's parameters (what run.in was written from); the ions per group from the header or the structure."""
        from aiida_sseff.analysis.gpumd_msd import gpumd_time_origins

        cmsd = (parameters or {}).get('compute_msd') or {}
        source = 'msd.out header'
        if block.n_correlation is not None:
            sample_interval, n_correlation = int(block.sample_interval), int(block.n_correlation)
            if cmsd.get('n_correlation') and int(cmsd['n_correlation']) != n_correlation:
                raise ValueError(f'its header says Nc = {n_correlation}, run.in asked for {cmsd["n_correlation"]}')
        elif cmsd:
            sample_interval, n_correlation = int(cmsd.get('sample_interval', 10)), cmsd.get('n_correlation')
            n_correlation = int(n_correlation) if n_correlation else len(block.time)
            source = 'run parameters'
        else:
            return {}
        if len(block.time) != n_correlation:
            raise ValueError(f'{len(block.time)} rows, but Nc = {n_correlation} ({source})')
        stats = {'sample_interval': sample_interval, 'n_correlation': n_correlation, 'statistics_from': source}
        if production_steps:
            stats['n_samples'] = int(production_steps) // sample_interval
            stats['n_time_origins'] = gpumd_time_origins(stats['n_samples'], n_correlation)
        if block.num_atoms_per_group is not None:
            stats['num_atoms_per_group'] = [int(x) for x in block.num_atoms_per_group]
        else:
            counts = self._group_counts(block.n_groups)
            if counts:
                stats['num_atoms_per_group'] = counts
        return stats

    def _msd_node(self, block, parameters: dict, production_steps: int | None) -> orm.ArrayData:
        msd = orm.ArrayData()
        msd.set_array('time', block.time)
        msd.set_array('msd', block.msd)
        msd.set_array('sdc', block.sdc)
        msd.base.attributes.set('units', {'time': 'ps', 'msd': 'angstrom^2', 'sdc': 'angstrom^2/ps'})
        msd.base.attributes.set_many(self._statistics(block, parameters, production_steps))
        msd.base.attributes.set('gpumd_version', self._version)
        species = self._group_species(block.n_groups, parameters)
        if species:
            msd.base.attributes.set('group_species', species)
        return msd

    def _group_counts(self, n_groups: int) -> list[int] | None:
        try:
            symbols = self.node.inputs.structure.get_ase().get_chemical_symbols()
        except AttributeError:
            return None
        species = self._group_species(n_groups, {}) or []
        return [sum(1 for s in symbols if s == name) for name in species] or None

    # ------------------------------------------------------------------------------------------ early stop
    def _partial_outputs(self, names, parameters: dict) -> str:
        """``restart`` and the MSD saved with it, when the run wrote both; a note for the exit message."""
        from aiida_sseff.io.gpumd import read_msd

        saved = _msd_step_files(names)
        if RESTART_FILENAME not in names or not saved:
            return '; no restart file with a saved MSD'
        step, name = saved[-1]
        with tempfile.TemporaryDirectory() as tmp:
            try:
                block = read_msd(self._local_copy(name, Path(tmp)))[-1]
                msd = self._msd_node(block, parameters, step)
            except ValueError as exception:
                self.logger.warning(f'{name} cannot be read ({exception}): no continuation possible')
                return f'; {name} unreadable'
            restart = orm.SinglefileData(self._local_copy(RESTART_FILENAME, Path(tmp)))
        msd.base.attributes.set('steps_completed', step)
        self.out('msd', msd)
        self.out('restart', restart)
        return f'; restart.xyz and the MSD of the first {step} production steps saved'

    # ------------------------------------------------------------------------------------------ unwrapped dump
    def _check_dump(self, names, parameters: dict, block):
        """The unwrapped dump → ``trajectory``; its MSD by GPUMD's algorithm against msd.out → ``msd_check``."""
        dump = (parameters or {}).get('dump') or {}
        filename = dump.get('filename', 'dump.xyz')
        if 'unwrapped_position' not in (dump.get('properties') or ()) or filename not in names:
            return None
        from ase.io import read

        with tempfile.TemporaryDirectory() as tmp:
            try:
                frames = read(self._local_copy(filename, Path(tmp)), index=':', format='extxyz')
            except Exception as exception:  # ASE raises many types on a malformed extxyz
                return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(filename=filename, message=str(exception))
        if not frames or 'unwrapped_position' not in frames[0].arrays:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                filename=filename, message='no unwrapped_position column')
        interval = int(dump['interval'])
        dt_ps = float(parameters.get('time_step_fs', 1.0)) / 1000.0
        positions = np.array([f.arrays['unwrapped_position'] for f in frames])
        trajectory = orm.TrajectoryData()
        # dump_xyz writes after step s when (s + 1) % interval == 0: frame k is at (k + 1) · interval steps
        times = (np.arange(len(frames)) + 1) * interval * dt_ps
        trajectory.set_trajectory(frames[0].get_chemical_symbols(), positions,
                                  cells=np.array([f.cell.array for f in frames]), times=times)
        trajectory.base.attributes.set('positions_are', 'unwrapped (GPUMD unwrapped_position)')
        self.out('trajectory', trajectory)
        check = self._msd_check(positions, frames[0].get_chemical_symbols(), interval, dt_ps, parameters, block)
        self.out('msd_check', orm.Dict(check))
        if not check['consistent']:
            return self.exit_codes.ERROR_MSD_INCONSISTENT.format(message=check['message'])
        return None

    def _msd_check(self, positions, symbols, interval, dt_ps, parameters, block) -> dict:
        from aiida_sseff.analysis.gpumd_msd import gpumd_msd

        cmsd = parameters.get('compute_msd') or {}
        sample_interval = int(cmsd.get('sample_interval', 10))
        n_correlation = len(block.time)
        if sample_interval % interval or block.n_groups != 1:
            return {'consistent': True, 'checked': False,
                    'message': f'not compared: dump every {interval} steps, MSD every {sample_interval}, '
                               f'{block.n_groups} MSD group(s)'}
        stride = sample_interval // interval
        samples = positions[stride - 1::stride]  # the frames at the MSD's sampled steps
        mobile = self.node.inputs.mobile_species.value if 'mobile_species' in self.node.inputs else 'Li'
        selected = np.array([s == mobile for s in symbols])
        recomputed = gpumd_msd(samples[:, selected], n_correlation, sample_interval * dt_ps).msd[0]
        total, expected = block.msd[0].sum(axis=1), recomputed.sum(axis=1)
        deviation = float(np.abs(expected - total).max() / (np.abs(total).max() or 1.0))
        consistent = deviation <= MSD_CONSISTENCY_RTOL
        message = (f'largest deviation {deviation:.2e} of the MSD at the longest lag; tolerance '
                   f'{MSD_CONSISTENCY_RTOL:g}')
        if not consistent:
            self.logger.warning(f'msd.out vs the unwrapped dump: {message}')
        return {'consistent': consistent, 'checked': True, 'max_relative_deviation': deviation,
                'tolerance': MSD_CONSISTENCY_RTOL, 'n_frames': int(len(samples)), 'message': message}

    def _group_species(self, n_groups: int, parameters: dict) -> list[str] | None:
        """Species of each MSD group: the mobile one alone, or (``all_groups``) the model.xyz grouping."""
        try:
            mobile = self.node.inputs.mobile_species.value
        except AttributeError:
            return None
        if n_groups == 1:
            return [mobile]
        try:
            symbols = self.node.inputs.structure.get_ase().get_chemical_symbols()
            elements = self.node.inputs.model.elements or []
        except AttributeError:
            return None
        order = [s for s in elements if s in set(symbols)] or None
        from aiida_sseff.io.gpumd import species_grouping

        labels = species_grouping(symbols, mobile, order=order)
        by_group = {int(g): s for g, s in zip(labels, symbols, strict=True)}
        return [by_group.get(g, '?') for g in range(n_groups)]
