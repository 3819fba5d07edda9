"""Parser of ``sseff.engine.locality``; reads only ``self.retrieved``."""

from __future__ import annotations

import io

import numpy as np
from aiida import orm
from aiida.parsers import Parser
from ase import Atoms

from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.engines.locality import RESULTS_FILENAME, SNAPSHOTS_FILENAME
from aiida_sseff.io.structures import read_extxyz
from aiida_sseff.parsers.engine import _EngineParser

#: arrays of locality.npz that become the ``forces`` output
ARRAYS = ('forces', 'centers', 'radii', 'n_frozen', 'snapshot_steps', 'mean_temperature_K')


class EngineLocalityParser(_EngineParser):
    """locality.npz → ``forces`` (ArrayData), snapshots.xyz → ``snapshots``, report.json → ``results``."""

    def parse(self, **kwargs):
        report, exit_code = self._finished_report(RESULTS_FILENAME)
        if exit_code:
            return exit_code
        repository = self.retrieved.base.repository
        try:
            with repository.open(RESULTS_FILENAME, mode='rb') as handle, np.load(io.BytesIO(handle.read())) as data:
                arrays = {key: data[key] for key in ARRAYS}
        except (OSError, ValueError, KeyError) as exception:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(message=f'{RESULTS_FILENAME}: {exception}')
        shape = (len(arrays['centers']), len(arrays['radii']), len(arrays['snapshot_steps']), 3)
        if arrays['forces'].shape != shape or not np.isfinite(arrays['forces']).all():
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                message=f'{RESULTS_FILENAME}: forces of shape {arrays["forces"].shape} (expected {shape}) or not '
                        'finite: the run did not complete')
        node = orm.ArrayData()
        for name, values in arrays.items():
            node.set_array(name, values)
        node.base.attributes.set('units', {'forces': 'eV/angstrom', 'radii': 'angstrom'})
        self.out('forces', node)
        if self._has(SNAPSHOTS_FILENAME):
            snapshots = read_extxyz(repository.get_object_content(SNAPSHOTS_FILENAME, mode='rb'))
            self.out('snapshots', LabelledDataset(snapshots, require_labels=False))
        self.out('results', self._results(report))
        return None


class GpumdLocalityParser(Parser):
    """dump.xyz of a GPUMD frozen-sphere run → ``snapshots`` (unlabelled), each frame tagged with ``center_index``,
    ``r_f`` and ``snapshot``; a run that did not finish, or dumped a different number of frames, is an exit code."""

    def parse(self, **kwargs):
        from aiida_sseff.calculations.locality import GPUMD_DUMP_FILENAME, gpumd_locality_parameters
        from aiida_sseff.parsers.gpumd import read_gpumd_log

        log, exit_code = read_gpumd_log(self)
        if exit_code:
            return exit_code
        repository = self.retrieved.base.repository
        names = repository.list_object_names()
        p = gpumd_locality_parameters(self.node.inputs.parameters.get_dict())
        if not log['finished']:
            return self.exit_codes.ERROR_MD_INCOMPLETE.format(message=f'{log["n_runs_completed"]} runs completed')
        if GPUMD_DUMP_FILENAME not in names:
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=GPUMD_DUMP_FILENAME)
        try:
            frames = read_extxyz(repository.get_object_content(GPUMD_DUMP_FILENAME, mode='rb'))
        except ValueError as exception:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(filename=GPUMD_DUMP_FILENAME, message=str(exception))
        if len(frames) != p['n_snapshots']:
            return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                filename=GPUMD_DUMP_FILENAME, message=f'{len(frames)} frames, expected {p["n_snapshots"]}')
        snapshots = []
        for index, frame in enumerate(frames):
            clean = Atoms(frame.get_chemical_symbols(), frame.get_positions(), cell=frame.cell, pbc=True)
            clean.info.update({'center_index': int(p['center']), 'r_f': float(p['radius']), 'snapshot': index})
            snapshots.append(clean)
        self.out('snapshots', LabelledDataset(snapshots, require_labels=False))
        return None
