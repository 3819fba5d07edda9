"""Parser of ``sseff.gpumd``: ``msd.out``, ``thermo.out`` and the log, read only from ``self.retrieved``."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_sseff.calculations.gpumd import LOG_FILENAME, STDERR_FILENAME

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


class GpumdParser(Parser):
    """``msd.out`` → ``msd`` (ArrayData), ``thermo.out`` → ``thermo`` (ArrayData), log → ``performance`` (Dict).

    ``thermo.out`` is required only when the input parameters asked for it (``dump_thermo``, on by default).
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
        if STDERR_FILENAME in names:
            error = _stderr_error(self._text(STDERR_FILENAME))
            if error is not None:
                kind, message = error
                code = self.exit_codes.ERROR_INPUT_REFUSED if kind == 'input' else self.exit_codes.ERROR_GPUMD_FAILED
                return code.format(message=message)
        if LOG_FILENAME not in names:
            return self.exit_codes.ERROR_MISSING_LOG
        log = parse_log(self._text(LOG_FILENAME))
        expected_runs = 1 + (int(parameters.get('equilibration_steps', 0) or 0) > 0) if parameters else None
        if not log['finished'] or (expected_runs is not None and log['n_runs_completed'] < expected_runs):
            done = log['n_runs_completed']
            return self.exit_codes.ERROR_MD_INCOMPLETE.format(
                message=f'{done} of {expected_runs or "?"} runs of run.in completed')

        if 'msd.out' not in names:
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename='msd.out')
        thermo_requested = parameters.get('dump_thermo', 1000) is not None if parameters else False
        if thermo_requested and 'thermo.out' not in names:
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename='thermo.out')

        from aiida_sseff.io.gpumd import read_msd, read_thermo

        with tempfile.TemporaryDirectory() as tmp:
            try:
                blocks = read_msd(self._local_copy('msd.out', Path(tmp)))
            except (ValueError, UnicodeDecodeError) as exception:
                return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(filename='msd.out', message=str(exception))
            thermo = None
            if 'thermo.out' in names:
                try:
                    thermo = read_thermo(self._local_copy('thermo.out', Path(tmp)))
                except (ValueError, IndexError, UnicodeDecodeError) as exception:
                    return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(filename='thermo.out', message=str(exception))

        block = blocks[-1]  # one compute_msd run per CalcJob; an appended file keeps its last block
        if not (np.isfinite(block.msd).all() and np.isfinite(block.sdc).all()):
            return self.exit_codes.ERROR_MD_UNSTABLE.format(message='msd.out holds NaN or inf')
        msd = orm.ArrayData()
        msd.set_array('time', block.time)
        msd.set_array('msd', block.msd)
        msd.set_array('sdc', block.sdc)
        msd.base.attributes.set('units', {'time': 'ps', 'msd': 'angstrom^2', 'sdc': 'angstrom^2/ps'})
        msd.base.attributes.set('n_blocks_in_file', len(blocks))
        species = self._group_species(block.n_groups, parameters)
        if species:
            msd.base.attributes.set('group_species', species)
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
            self.out('thermo', node)

        self.out('msd', msd)
        self.out('performance', orm.Dict({key: value for key, value in log.items() if key != 'finished'}))

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
