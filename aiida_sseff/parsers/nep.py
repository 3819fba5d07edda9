"""Parser of ``sseff.nep.train`` (GPUMD ``nep`` / ``neppo train``); it reads only ``self.retrieved``.

The file formats are read by :mod:`aiida_sseff.io.nep`, whose :func:`~aiida_sseff.io.nep.training_summary` (no
database needed) turns a run directory's outputs into the final RMSEs, as reported in ``loss.out`` and as recomputed
from ``*_train.out`` / ``*_test.out`` with GPUMD's definitions. ``aiida-sseff analyze nep-training`` uses the same
function (through :func:`~aiida_sseff.io.nep.summarise_training_directory`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from aiida import orm
from aiida.parsers import Parser

__all__ = ['NepTrainParser']

#: relative margin for "the loss decreased": the last total loss must be below (1 - margin) x the first one
LOSS_DECREASE_MARGIN = 0.01
#: GPUMD nep writes a loss.out row every 100 generations
GPUMD_LOSS_INTERVAL = 100

def _nan_generation(loss) -> int | None:
    """First generation whose total loss or a training RMSE is not finite, else None.

    (neppo writes 0 for an RMSE that has no entries but NaN for a diverged total loss; GPUMD writes nan.)
    """
    columns = [c for c in loss.columns if c == 'total_loss' or (c.startswith('RMSE_') and c.endswith('_train'))]
    values = loss[columns].to_numpy(dtype=float)
    bad = ~np.isfinite(values).all(axis=1)
    return int(loss.index[np.argmax(bad)]) if bad.any() else None


def expected_last_generation(program: str, generation: int) -> int:
    """The generation of the last ``loss.out`` row of a complete run: neppo reports after its last step; GPUMD
    every 100 generations (a run of 150 generations ends with the row of generation 100)."""
    if program == 'neppo' or generation < GPUMD_LOSS_INTERVAL:
        return generation
    return generation - generation % GPUMD_LOSS_INTERVAL


class NepTrainParser(Parser):
    """nep.txt -> ``model``; loss.out -> ``loss``; ``*_train.out``/``*_test.out`` -> parity data and ``results``."""

    def parse(self, **kwargs):
        from aiida_sseff.calculations.nep import (
            BEST_MODEL_FILENAME,
            LOSS_FILENAME,
            MODEL_FILENAME,
            RESTART_FILENAME,
            STDERR_FILENAME,
            resolve_program,
        )
        from aiida_sseff.data.model import ModelFileError, NepModel
        from aiida_sseff.io.nep import (
            DEFAULT_BATCH,
            read_loss,
            read_training_directory,
            rows_follow_input_order,
            training_summary,
        )

        names = set(self.retrieved.base.repository.list_object_names())
        stderr = ''
        if STDERR_FILENAME in names:
            stderr = self.retrieved.base.repository.get_object_content(STDERR_FILENAME)[-2000:]
        hint = f'stderr ends: {stderr.strip().splitlines()[-1]}' if stderr.strip() else ''
        for filename in (MODEL_FILENAME, LOSS_FILENAME):
            if filename not in names:
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=filename, message=hint)

        program = resolve_program(getattr(self.node.inputs, 'program', None), getattr(self.node.inputs, 'code', None))
        parameters = self.node.inputs.parameters.get_dict()
        with self.retrieved.base.repository.as_path() as directory:
            directory = Path(directory)
            try:
                loss = read_loss(directory / LOSS_FILENAME)
            except (ValueError, IndexError, KeyError) as exception:
                return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(filename=LOSS_FILENAME, message=str(exception))
            try:
                model = NepModel(directory / MODEL_FILENAME)
            except ModelFileError as exception:
                return self.exit_codes.ERROR_INVALID_MODEL.format(message=str(exception))
            best_model = None
            if BEST_MODEL_FILENAME in names:
                try:
                    best_model = NepModel(directory / BEST_MODEL_FILENAME)
                except ModelFileError:
                    self.logger.warning(f'{BEST_MODEL_FILENAME} is not a usable model; left out')
            try:
                outputs = read_training_directory(directory)
            except (ValueError, FileNotFoundError) as exception:
                return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(filename='*_train.out/*_test.out',
                                                                      message=str(exception))
            restart = None
            if RESTART_FILENAME in names:
                restart = orm.SinglefileData(file=str(directory / RESTART_FILENAME), filename=RESTART_FILENAME)

        volume_per_atom = {}
        for label in ('train', 'test'):
            dataset = getattr(self.node.inputs, label, None)
            if dataset is not None and outputs.get(label) and 'virial' not in outputs[label]:
                volume_per_atom[label] = [atoms.get_volume() / len(atoms) for atoms in dataset.get_ase()]
        train = getattr(self.node.inputs, 'train', None)
        n_train = train.n_structures if train is not None else None
        batch = parameters.get('batch', DEFAULT_BATCH[program])
        in_order = rows_follow_input_order(program, int(batch), n_train)
        atoms_per_structure = {}
        for label in ('train', 'test'):
            dataset = getattr(self.node.inputs, label, None)
            if dataset is not None and 'charge' in (outputs.get(label) or {}):
                atoms_per_structure[label] = [len(atoms) for atoms in dataset.get_ase()]
        summary = training_summary(outputs, program, volume_per_atom, rows_in_order=in_order,
                                   atoms_per_structure=atoms_per_structure)
        summary['model_type'] = model.base.attributes.get('model_type', None)
        summary['charge_mode'] = model.base.attributes.get('charge_mode', 0)
        charges = self._mean_charges(outputs, in_order)
        if charges:
            summary['mean_charge_by_element'] = charges
        requested = int(parameters.get('generation', 100000))
        summary['generation_requested'] = requested
        if n_train is not None and outputs.get('train') and 'energy' in outputs['train']:
            n_rows = len(outputs['train']['energy'].predicted)
            if n_rows != n_train:
                self.logger.warning(f'energy_train.out has {n_rows} rows for {n_train} training structures')

        self.out('model', model)
        if best_model is not None:
            self.out('best_model', best_model)
        self.out('loss', self._loss_node(loss))
        for label in ('train', 'test'):
            if outputs.get(label):
                self.out(f'parity_{label}', self._parity_node(outputs[label]))
        if restart is not None:
            self.out('restart', restart)
        self.out('results', orm.Dict(summary))

        generation = _nan_generation(loss)
        if generation is not None:
            return self.exit_codes.ERROR_LOSS_NAN.format(generation=generation)
        done = int(loss.index[-1])
        if done < expected_last_generation(program, requested):
            return self.exit_codes.ERROR_TRAINING_INCOMPLETE.format(done=done, requested=requested)
        total = loss['total_loss'].to_numpy(dtype=float) if 'total_loss' in loss.columns else None
        if total is not None and len(total) >= 2 and not total[-1] < (1.0 - LOSS_DECREASE_MARGIN) * total[0]:
            return self.exit_codes.ERROR_LOSS_NOT_DECREASING.format(
                first=float(total[0]), first_generation=int(loss.index[0]), last=float(total[-1]),
                last_generation=done)
        return None

    def _mean_charges(self, outputs: dict, in_order: bool) -> dict:
        """Mean predicted charge (e) per element of each set with a ``charge_*.out`` (a charge model), where the rows
        follow the dataset (neppo; GPUMD only with a full batch) and the atom count matches."""
        from aiida_sseff.io.nep import mean_charge_by_element

        result = {}
        for label in ('train', 'test'):
            dataset = getattr(self.node.inputs, label, None)
            charges = (outputs.get(label) or {}).get('charge')
            if dataset is None or charges is None or not in_order:
                continue
            symbols = [symbol for atoms in dataset.get_ase() for symbol in atoms.get_chemical_symbols()]
            if len(symbols) != len(charges):
                self.logger.warning(f'charge_{label}.out has {len(charges)} rows for {len(symbols)} atoms')
                continue
            result[label] = mean_charge_by_element(charges, symbols)
        return result

    @staticmethod
    def _loss_node(loss) -> orm.ArrayData:
        node = orm.ArrayData()
        node.set_array('generation', np.asarray(loss.index, dtype=int))
        for column in loss.columns:
            node.set_array(str(column), loss[column].to_numpy(dtype=float))
        units = {'RMSE_E': 'eV/atom', 'RMSE_F': 'eV/angstrom', 'RMSE_V': 'eV/atom'}
        if any(str(column).startswith('RMSE_Q') for column in loss.columns):
            units.update({'RMSE_Q': 'e/atom', 'RMSE_Z': 'e'})  # the extra columns of a charge model (qNEP)
        node.base.attributes.set('units', units)
        return node

    @staticmethod
    def _parity_node(files: dict) -> orm.ArrayData:
        node = orm.ArrayData()
        units = {'energy': 'eV/atom', 'force': 'eV/angstrom', 'virial': 'eV/atom', 'stress': 'GPa', 'charge': 'e',
                 'bec': 'e'}
        for quantity, table in files.items():
            if quantity == 'charge':  # charge_*.out: predictions only (qNEP learns charges without targets)
                node.set_array('charge_predicted', np.asarray(table, dtype=float))
                continue
            node.set_array(f'{quantity}_predicted', np.asarray(table.predicted, dtype=float))
            node.set_array(f'{quantity}_target', np.asarray(table.target, dtype=float))
        node.base.attributes.set('units', {k: v for k, v in units.items() if k in files})
        node.base.attributes.set('components', ['xx', 'yy', 'zz', 'xy', 'yz', 'zx'])
        return node
