"""Parser of ``sseff.engine.locality``; reads only ``self.retrieved``."""

from __future__ import annotations

import io

import numpy as np
from aiida import orm

from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.engines.locality import RESULTS_FILENAME, SNAPSHOTS_FILENAME
from aiida_sseff.io.structures import read_extxyz
from aiida_sseff.parsers.engine import _EngineParser

#: arrays of locality.npz that become the ``forces`` output
ARRAYS = ('forces', 'centers', 'radii', 'n_frozen', 'snapshot_steps', 'mean_temperature_K')


class EngineLocalityParser(_EngineParser):
    """locality.npz → ``forces`` (ArrayData), snapshots.xyz → ``snapshots``, report.json → ``results``."""

    def parse(self, **kwargs):
        report, exit_code = self._read_report()
        if exit_code:
            return exit_code
        exit_code = self._status_exit_code(report)
        if exit_code:
            return exit_code
        if not self._has(RESULTS_FILENAME):
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=RESULTS_FILENAME)
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
