"""Parsers of the engine CalcJobs; they read only ``self.retrieved``."""

from __future__ import annotations

import io
import json

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.engines.md import CHECKPOINT_FILENAME
from aiida_sseff.io.structures import read_extxyz

STATUS_EXIT_CODES = {
    'out_of_walltime': 'ERROR_OUT_OF_WALLTIME',
    'invalid_input': 'ERROR_INVALID_INPUT',
    'unknown_element': 'ERROR_UNKNOWN_ELEMENT',
    'md_unstable': 'ERROR_MD_UNSTABLE',
    'atoms_too_close': 'ERROR_ATOMS_TOO_CLOSE',
    'all_failed': 'ERROR_ALL_STRUCTURES_FAILED',
    'error': 'ERROR_ENGINE_EXCEPTION',
}


class _EngineParser(Parser):
    def _read_report(self):
        try:
            text = self.retrieved.base.repository.get_object_content('report.json')
        except FileNotFoundError:
            return None, self.exit_codes.ERROR_MISSING_REPORT
        try:
            return json.loads(text), None
        except json.JSONDecodeError as exception:
            return None, self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(message=f'report.json: {exception}')

    def _status_exit_code(self, report: dict):
        status = report.get('status')
        if status == 'ok':
            return None
        label = STATUS_EXIT_CODES.get(status, 'ERROR_ENGINE_EXCEPTION')
        exit_code = getattr(self.exit_codes, label)
        message = report.get('message', '')
        if report.get('failures'):
            message = '; '.join(f"structure {f['index']}: {f['reason']}" for f in report['failures'][:5])
        return exit_code.format(message=message)

    def _has(self, filename: str) -> bool:
        return filename in self.retrieved.base.repository.list_object_names()

    def _finished_report(self, output_filename: str):
        """``(report, None)`` of a run that finished ok and wrote ``output_filename``; else ``(None, exit code)``
        (no or unreadable report, the engine's own failure status, the output file missing)."""
        report, exit_code = self._read_report()
        if exit_code is None:
            exit_code = self._status_exit_code(report)
        if exit_code is None and not self._has(output_filename):
            exit_code = self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=output_filename)
        return (None, exit_code) if exit_code else (report, None)

    def _results(self, report: dict) -> orm.Dict:
        return orm.Dict({k: v for k, v in report.items() if k not in ('status', 'traceback')})


class EngineMdParser(_EngineParser):
    """thermo.dat → ArrayData, trajectory.npz → TrajectoryData, final.xyz → StructureData, snapshots.xyz → dataset,
    checkpoint.npz → SinglefileData. A run stopped for its wall time gets ``ERROR_OUT_OF_WALLTIME`` with all of these
    (the trajectory so far), so that a continuation can start from the checkpoint and the segments can be joined."""

    def parse(self, **kwargs):
        report, exit_code = self._read_report()
        if exit_code:
            if exit_code.status == self.exit_codes.ERROR_MISSING_REPORT.status and self._has(CHECKPOINT_FILENAME):
                self._parse_killed()
            return exit_code
        if report.get('status') == 'out_of_walltime':
            exit_code = self._parse_outputs(report)
            if report.get('phase') == 'equilibration':
                where = f"equilibration step {report.get('equilibration_step')} of {report.get('n_equilibration_steps')}"
            else:
                where = f"production step {report.get('step')} of {report.get('n_steps')}"
            return exit_code or self.exit_codes.ERROR_OUT_OF_WALLTIME.format(where=where)
        exit_code = self._status_exit_code(report)
        if exit_code:
            return exit_code
        return self._parse_outputs(report)

    def _parse_killed(self) -> None:
        """The engine was killed (no report.json) after a checkpoint: the outputs it wrote with that checkpoint, so
        that the run can be continued and joined; the results describe the checkpoint."""
        from aiida_sseff.engines.md import CheckpointError, read_checkpoint

        try:
            with self.retrieved.base.repository.open(CHECKPOINT_FILENAME, mode='rb') as handle:
                state = read_checkpoint(io.BytesIO(handle.read()))['state']
        except CheckpointError as exception:
            self.logger.warning(f'the engine was killed and its checkpoint is unreadable: {exception}')
            return
        report = {'killed': True, 'phase': state['phase'], 'step': state['step'],
                  'equilibration_step': state['equilibration_step'], 'n_steps': state['parameters']['n_steps']}
        if state['phase'] == 'equilibration':
            report['n_frames'] = 0
        self._parse_outputs(report)

    def _parse_outputs(self, report: dict):
        if report.get('n_frames') == 0:  # stopped for the wall time before production: no frame, no thermo row yet
            return self._parse_state(report)
        for filename in ('thermo.dat', 'trajectory.npz', 'final.xyz'):
            if not self._has(filename):
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=filename)
        repository = self.retrieved.base.repository
        try:
            thermo = np.loadtxt(io.StringIO(repository.get_object_content('thermo.dat')), ndmin=2)
            header = repository.get_object_content('thermo.dat').splitlines()[0].lstrip('#').split()
            with repository.open('trajectory.npz', mode='rb') as handle:
                with np.load(io.BytesIO(handle.read())) as data:
                    arrays = {key: data[key] for key in data.files}
            from ase.io import read

            final = read(io.StringIO(repository.get_object_content('final.xyz')), format='extxyz')
        except (OSError, ValueError, KeyError) as exception:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(message=str(exception))
        if thermo.shape[1] != len(header):
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(message='thermo.dat: header and columns differ')

        thermo_node = orm.ArrayData()
        for index, name in enumerate(header):
            thermo_node.set_array(name, thermo[:, index])
        self.out('thermo', thermo_node)

        from ase.data import chemical_symbols

        trajectory = orm.TrajectoryData()
        symbols = [chemical_symbols[int(z)] for z in arrays['numbers']]
        trajectory.set_trajectory(
            symbols=symbols,
            positions=arrays['positions'].astype(float),
            stepids=arrays['steps'],
            cells=arrays['cells'],
            times=arrays['times_ps'],
            velocities=arrays['velocities'].astype(float) if 'velocities' in arrays else None,
        )
        if 'forces' in arrays:
            trajectory.set_array('forces', arrays['forces'].astype(float))
        trajectory.base.attributes.set('positions_unwrapped', True)
        trajectory.base.attributes.set('units', {'positions': 'angstrom', 'times': 'ps', 'velocities': 'angstrom/fs',
                                                 'forces': 'eV/angstrom'})
        self.out('trajectory', trajectory)

        if self._has('snapshots.xyz'):
            snapshots = read_extxyz(repository.get_object_content('snapshots.xyz', mode='rb'))
            self.out('snapshots', LabelledDataset(snapshots, require_labels=False))
        return self._parse_state(report, final)

    def _parse_state(self, report: dict, final=None):
        """The last configuration, the checkpoint and the results."""
        repository = self.retrieved.base.repository
        if final is None:
            if not self._has('final.xyz'):
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename='final.xyz')
            from ase.io import read

            final = read(io.StringIO(repository.get_object_content('final.xyz')), format='extxyz')
        final.calc = None
        self.out('structure', orm.StructureData(ase=final))
        if self._has(CHECKPOINT_FILENAME):
            with repository.open(CHECKPOINT_FILENAME, mode='rb') as handle:
                self.out('checkpoint', orm.SinglefileData(io.BytesIO(handle.read()), filename=CHECKPOINT_FILENAME))
        self.out('results', self._results(report))
        return None


class EngineLabelParser(_EngineParser):
    """labelled.xyz → ``sseff.dataset``; failed structures listed in ``results``."""

    def parse(self, **kwargs):
        report, exit_code = self._finished_report('labelled.xyz')
        if exit_code:
            return exit_code
        try:
            dataset = LabelledDataset(read_extxyz(self.retrieved.base.repository.get_object_content('labelled.xyz',
                                                                                                  mode='rb')))
        except (ValueError, OSError) as exception:  # ase's XYZError (a truncated frame) is an OSError
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(message=f'labelled.xyz: {exception}')
        expected = report.get('n_labelled')
        if expected is not None and dataset.n_structures != expected:
            # a file cut at a frame boundary still reads: the engine's own count tells
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                message=f'labelled.xyz holds {dataset.n_structures} structures, the engine labelled {expected}')
        self.out('dataset', dataset)
        self.out('results', self._results(report))
        if report.get('failures'):
            self.logger.warning(
                f"{len(report['failures'])} structure(s) could not be labelled and were left out: "
                + '; '.join(f"{f['index']}: {f['reason']}" for f in report['failures'][:5])
            )
