"""Parser of ``sseff.mace.train`` (mace-torch ``mace_run_train`` + ``mace_eval_configs``); reads only ``self.retrieved``.

The files are read by :mod:`aiida_sseff.io.mace`. Parity data have the form of ``sseff.nep.train``'s
(:meth:`aiida_sseff.parsers.nep.NepTrainParser._parity_node`), and the recomputed RMSEs use the same function
(:func:`aiida_sseff.io.nep.rmse_from_outputs`), so NEP and MACE trainings compare one to one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_sseff.utils import json_safe

__all__ = ['MaceTrainParser', 'error_table_summary']

#: columns of mace's error tables (meV units in the log) -> our keys
_TABLE_COLUMNS = {
    'RMSE E / meV / atom': 'energy_mev_per_atom',
    'RMSE F / meV / A': 'force_mev_per_angstrom',
    'relative F RMSE %': 'force_relative_percent',
}
_STRESS_COLUMN_PREFIX = 'RMSE Stress'


def error_table_summary(tables: dict) -> dict:
    """mace's final error tables (``{config_type: {header: value}}`` from :func:`aiida_sseff.io.mace.read_log`) with
    our key names: ``energy_mev_per_atom``, ``force_mev_per_angstrom``, ``force_relative_percent`` and
    ``stress_mev_per_angstrom3`` (mace's stress column, meV/Å³), per config type (``train_Default``, ...)."""
    result = {}
    for config_type, columns in tables.items():
        row = {}
        for header, value in columns.items():
            if header in _TABLE_COLUMNS:
                row[_TABLE_COLUMNS[header]] = json_safe(value)
            elif header.startswith(_STRESS_COLUMN_PREFIX):
                row['stress_mev_per_angstrom3'] = json_safe(value)
        result[config_type] = row
    return result


class MaceTrainParser(Parser):
    """``<name>.model`` -> ``model``; the results file -> ``training_log``; predictions -> parity and ``results``."""

    def parse(self, **kwargs):
        from aiida_sseff.calculations.mace import EVAL_STDERR_FILENAME, PARITY_SETS, STDERR_FILENAME, output_names
        from aiida_sseff.data.model import MaceModel, ModelFileError
        from aiida_sseff.io.mace import read_log, read_predictions, read_results
        from aiida_sseff.io.nep import rmse_from_outputs
        from aiida_sseff.parsers.nep import NepTrainParser

        names = output_names(self.node.inputs.seed.value)
        retrieved = set(self.retrieved.base.repository.list_object_names())
        hint = self._stderr_hint(STDERR_FILENAME, retrieved)
        requested = int(self.node.inputs.parameters.get_dict().get('max_num_epochs', 2048))  # mace's default
        for key in ('log', 'results'):
            if names[key] not in retrieved:
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=names[f'{key}_path'], message=hint)

        with self.retrieved.base.repository.as_path() as directory:
            directory = Path(directory)
            log = read_log(directory / names['log'])
            try:
                results = read_results(directory / names['results'])
            except ValueError as exception:
                if not log['complete']:
                    return self.exit_codes.ERROR_TRAINING_INCOMPLETE.format(epoch='none', requested=requested)
                return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(filename=names['results_path'],
                                                                      message=str(exception))
            self.out('training_log', self._training_log_node(results))
            nan_epoch = self._nan_epoch(results)
            if nan_epoch is not None:
                return self.exit_codes.ERROR_LOSS_NAN.format(epoch=nan_epoch)
            if not log['complete']:
                last = log['last_epoch']
                return self.exit_codes.ERROR_TRAINING_INCOMPLETE.format(
                    epoch='none' if last is None else last, requested=requested)
            if names['model'] not in retrieved:
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=names['model'], message=hint)
            try:
                # mace-torch pickles whole modules (e3nn's torch.fx code-generated GraphModules among them), which no
                # weights-only load rebuilds; this file was written by mace_run_train in the job whose outputs these
                # are, so it is read as a full pickle. Files from elsewhere stay weights-only (model import).
                with warnings.catch_warnings():
                    warnings.simplefilter('ignore', UserWarning)
                    model = MaceModel(directory / names['model'], filename=names['model'], allow_pickle=True)
            except ModelFileError as exception:
                return self.exit_codes.ERROR_INVALID_MODEL.format(message=str(exception))
            compiled = None
            if names['compiled_model'] in retrieved:
                compiled = orm.SinglefileData(file=str(directory / names['compiled_model']),
                                              filename=names['compiled_model'])
            parity = {}
            for label in PARITY_SETS:
                if label not in self.node.inputs:
                    continue
                filename = names[f'predictions_{label}']
                if filename not in retrieved:
                    return self.exit_codes.ERROR_MISSING_OUTPUT.format(
                        filename=filename, message=self._stderr_hint(EVAL_STDERR_FILENAME, retrieved))
                try:
                    parity[label] = read_predictions(directory / filename)
                except ValueError as exception:
                    return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(filename=filename, message=str(exception))

        summary = {
            'variant': self.node.inputs.variant.value,
            'epochs_requested': requested,
            'last_epoch': log['last_epoch'],
            'start_epoch': log['start_epoch'],
            'best_valid_loss': json_safe(float(np.nanmin(results['valid_loss']))),
            'error_tables': error_table_summary(log['error_tables']),
            'recomputed': {label: {key: json_safe(value) for key, value in rmse_from_outputs(tables).items()}
                           for label, tables in parity.items()},
            'model_architecture': {key: model.base.attributes.get(key, None)
                                   for key in ('r_max', 'num_interactions', 'hidden_irreps', 'correlation')},
        }
        self.out('model', model)
        if compiled is not None:
            self.out('compiled_model', compiled)
        for label, tables in parity.items():
            self.out(f'parity_{label}', NepTrainParser._parity_node(tables))
        self.out('results', orm.Dict(summary))
        return None

    def _stderr_hint(self, filename: str, retrieved: set) -> str:
        if filename not in retrieved:
            return ''
        lines = self.retrieved.base.repository.get_object_content(filename)[-4000:].strip().splitlines()
        return f'{filename} ends: {lines[-1]}' if lines else ''

    @staticmethod
    def _nan_epoch(results: dict) -> int | None:
        """First evaluated epoch whose validation loss is not finite (mace writes NaN as ``NaN`` in JSON)."""
        bad = ~np.isfinite(results['valid_loss'])
        return int(results['epoch'][np.argmax(bad)]) if bad.any() else None

    @staticmethod
    def _training_log_node(results: dict) -> orm.ArrayData:
        node = orm.ArrayData()
        for key, values in results.items():
            node.set_array(key, np.asarray(values))
        node.base.attributes.set('units', {
            'valid_rmse_e_per_atom': 'eV/atom', 'valid_rmse_f': 'eV/angstrom', 'valid_rmse_stress': 'eV/angstrom^3',
            'valid_rmse_virials_per_atom': 'eV/atom', 'valid_mae_e_per_atom': 'eV/atom', 'valid_mae_f': 'eV/angstrom',
            'valid_rel_rmse_f': 'percent'})
        node.base.attributes.set('note', 'epoch -1 is the evaluation before the first epoch')
        return node

