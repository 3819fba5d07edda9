"""NEP training workflows.

- ``sseff.train.nep.base`` (:class:`NepTrainBaseWorkChain`): one ``sseff.nep.train`` CalcJob in a
  BaseRestartWorkChain. GPUMD ``nep`` out of wall time continues from its ``nep.restart`` for the remaining
  generations; ``neppo`` (which reads no restart file) is repeated with twice the wall time; a NaN loss with neppo
  is retried once with a ten times lower learning rate; otherwise a NaN loss or a loss that does not decrease ends
  the work chain with an exit code that says so.
- ``sseff.train.nep`` (:class:`NepTrainingWorkChain`): ``n_replicas`` models trained in parallel with different
  seeds, each evaluated on a held-out set by calorine's CPUNEP in a calcfunction (energy, force, virial RMSE;
  force RMSE per element), and a summary (mean ± std over replicas). Protocols: ``protocols/training.yaml``.
"""

from __future__ import annotations

import math

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import (
    ProcessHandlerReport,
    ToContext,
    WorkChain,
    calcfunction,
    process_handler,
)

from aiida_sseff.calculations.nep import NepTrainCalculation, resolve_program
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.data.model import MaceModel, NepModel
from aiida_sseff.protocols.utils import ProtocolMixin
from aiida_sseff.units import EV_PER_A3_IN_GPA
from aiida_sseff.utils import json_safe
from aiida_sseff.workflows.restart import SseffBaseRestartWorkChain

__all__ = [
    'NepTrainBaseWorkChain',
    'NepTrainingWorkChain',
    'evaluate_model',
    'evaluate_nep_model',
    'model_errors',
    'split_train_validation_test',
    'summarise_replicas',
]

#: scalar metrics of :func:`model_errors` that the replica summary averages
SUMMARY_KEYS = ('energy_mev_per_atom', 'force_mev_per_angstrom', 'virial_mev_per_atom', 'stress_gpa')


# ------------------------------------------------------------------------------------------------ calcfunctions


def model_errors(calculator, structures) -> dict:
    """Errors of an ASE calculator against the labels of ``structures`` (GPUMD's definitions, no energy shift).

    Returns ``energy_mev_per_atom`` (RMSE of E/N), ``force_mev_per_angstrom`` (over all 3N components),
    ``virial_mev_per_atom`` (RMSE of the 6 components of virial/N = -stress·V/N, over structures with a stress
    label), ``stress_gpa``, ``force_per_element`` (``{element: {rmse_mev_per_angstrom, mae_mev_per_angstrom,
    n_atoms}}``), ``energy_r2``, ``force_r2``, ``n_structures``, ``n_atoms``. NaN becomes None.
    """
    from aiida_sseff.analysis.metrics import per_element_errors, r2_score, rmse

    energy_p, energy_t, forces_p, forces_t, symbols = [], [], [], [], []
    virial_p, virial_t, stress_p, stress_t = [], [], [], []
    for atoms in structures:
        n = len(atoms)
        labels = dict(atoms.calc.results) if atoms.calc is not None else {}
        energy_t.append(labels['energy'] / n)
        forces_t.append(np.asarray(labels['forces']))
        symbols.extend(atoms.get_chemical_symbols())
        copy = atoms.copy()
        copy.calc = calculator
        energy_p.append(copy.get_potential_energy() / n)
        forces_p.append(copy.get_forces())
        if 'stress' in labels:
            volume = atoms.get_volume()
            target = np.asarray(labels['stress'], dtype=float).reshape(-1)
            predicted = copy.get_stress(voigt=True)
            virial_t.append(-target * volume / n)
            virial_p.append(-predicted * volume / n)
            stress_t.append(target * EV_PER_A3_IN_GPA)
            stress_p.append(predicted * EV_PER_A3_IN_GPA)
    forces_p, forces_t = np.concatenate(forces_p), np.concatenate(forces_t)
    per_element = per_element_errors(forces_p, forces_t, symbols)
    result = {
        'energy_mev_per_atom': 1000.0 * rmse(energy_p, energy_t),
        'force_mev_per_angstrom': 1000.0 * rmse(forces_p, forces_t),
        'virial_mev_per_atom': 1000.0 * rmse(virial_p, virial_t) if virial_t else math.nan,
        'stress_gpa': rmse(stress_p, stress_t) if stress_t else math.nan,
        'energy_r2': r2_score(energy_p, energy_t),
        'force_r2': r2_score(forces_p, forces_t),
    }
    result = {key: json_safe(value) for key, value in result.items()}
    result['force_per_element'] = {
        element: {'rmse_mev_per_angstrom': json_safe(1000.0 * errors['rmse']),
                  'mae_mev_per_angstrom': json_safe(1000.0 * errors['mae']), 'n_atoms': errors['n'] // 3}
        for element, errors in per_element.items()}
    result['n_structures'] = len(energy_t)
    result['n_atoms'] = len(symbols)
    return result


@calcfunction
def evaluate_nep_model(model: NepModel, dataset: LabelledDataset) -> orm.Dict:
    """RMSEs of a NEP model on a labelled dataset, evaluated by calorine's CPUNEP (see :func:`model_errors`;
    energies meV/atom, forces meV/Å, virials meV/atom, stress GPa)."""
    return orm.Dict(model_errors(model.get_calculator(), dataset.get_ase()))


@calcfunction
def evaluate_model(model: orm.Data, dataset: LabelledDataset) -> orm.Dict:
    """RMSEs of any trained model (``sseff.model.nep`` by calorine's CPUNEP, ``sseff.model.mace`` by mace-torch's
    MACECalculator on the CPU, float64) on a labelled dataset: the keys and units of :func:`evaluate_nep_model`
    (:func:`model_errors`), so that one reader serves every architecture."""
    if not isinstance(model, NepModel | MaceModel):
        raise TypeError(f'evaluate_model takes a NepModel or a MaceModel, got {type(model).__name__}')
    return orm.Dict(model_errors(model.get_calculator(), dataset.get_ase()))


def _held_out_count(fraction: float, n: int) -> int:
    return max(1, int(round(fraction * n))) if fraction > 0 else 0


@calcfunction
def split_train_validation_test(dataset: LabelledDataset, validation_fraction: orm.Float, test_fraction: orm.Float,
                                seed: orm.Int) -> dict:
    """Split a dataset three ways with one seeded permutation: ``train``, ``validation`` (a random
    ``validation_fraction``: picks the best replica) and ``test`` (a random ``test_fraction``: the reported held-out
    errors). A fraction of 0 makes no such set (it is given otherwise); a positive one holds out at least one
    structure, and at least one is left for training. Structures keep their relative order in each set."""
    structures = dataset.get_ase()
    n = len(structures)
    n_validation = _held_out_count(validation_fraction.value, n)
    n_test = _held_out_count(test_fraction.value, n)
    if n_validation + n_test > n - 1:
        raise ValueError(f'cannot hold out {n_validation} validation and {n_test} test structure(s) of {n}: at least '
                         'one must be left for training')
    permutation = np.random.default_rng(seed.value).permutation(n)
    validation = set(permutation[:n_validation].tolist())
    test = set(permutation[n_validation:n_validation + n_test].tolist())
    result = {'train': LabelledDataset([a for i, a in enumerate(structures) if i not in validation | test])}
    if validation:
        result['validation'] = LabelledDataset([a for i, a in enumerate(structures) if i in validation])
    if test:
        result['test'] = LabelledDataset([a for i, a in enumerate(structures) if i in test])
    return result


@calcfunction
def summarise_replicas(chosen: orm.Str | None = None, **metrics: orm.Dict) -> orm.Dict:
    """Mean, standard deviation (ddof 1; 0 for one replica), minimum and maximum of each error over the replicas,
    force RMSE per element included, and ``best_replica``: ``chosen`` when given (the replica picked on another set),
    else the replica with the lowest force RMSE on this one."""
    labels = sorted(metrics)
    data = {label: metrics[label].get_dict() for label in labels}

    def stats(values):
        values = [v for v in values if v is not None]
        if not values:
            return None
        array = np.asarray(values, dtype=float)
        return {'mean': float(array.mean()), 'std': float(array.std(ddof=1)) if len(array) > 1 else 0.0,
                'min': float(array.min()), 'max': float(array.max()), 'values': array.tolist()}

    summary = {key: stats([data[label].get(key) for label in labels]) for key in SUMMARY_KEYS}
    elements = sorted({e for label in labels for e in data[label].get('force_per_element', {})})
    summary['force_per_element_mev_per_angstrom'] = {
        element: stats([data[label].get('force_per_element', {}).get(element, {}).get('rmse_mev_per_angstrom')
                        for label in labels]) for element in elements}
    forces = [(data[label].get('force_mev_per_angstrom'), label) for label in labels]
    forces = [item for item in forces if item[0] is not None]
    summary['best_replica'] = chosen.value if chosen is not None else (min(forces)[1] if forces else None)
    summary['replicas'] = labels
    summary['n_replicas'] = len(labels)
    summary['n_structures'] = data[labels[0]].get('n_structures') if labels else 0
    return orm.Dict(summary)


# -------------------------------------------------------------------------------------------- base work chain


class NepTrainBaseWorkChain(SseffBaseRestartWorkChain):
    """One NEP training (``sseff.nep.train``) with restarts and clear failures."""

    _process_class = NepTrainCalculation

    defaults = AttributeDict({
        'walltime_factor': 2.0,  # neppo out of wall time: repeat with this much more wall time
        'learning_rate_factor': 0.1,  # neppo NaN loss: retry with the learning rates scaled by this
        'max_learning_rate_reductions': 1,
        'default_learning_rate': (1e-2, 1e-4),  # neppo's default when nep.in gives none
    })

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(NepTrainCalculation, namespace='nep')
        spec.expose_outputs(NepTrainCalculation)
        spec.exit_code(410, 'ERROR_LOSS_NAN',
                       message='The training diverged (NaN loss) and could not be rescued; lower the learning rate '
                               '(neppo) or check the dataset for outliers.')
        spec.exit_code(411, 'ERROR_LOSS_NOT_DECREASING',
                       message='The loss did not decrease during the training: the learning rate is too small, or '
                               'the generation count too low to leave the starting point.')
        spec.exit_code(412, 'ERROR_CANNOT_CONTINUE',
                       message='The training ran out of time and cannot be continued: {message}')

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(NepTrainCalculation, 'nep'))
        self.ctx.program = resolve_program(self.ctx.inputs.get('program'), self.ctx.inputs.code)
        self.ctx.generation_total = int(self.ctx.inputs.parameters.get_dict().get('generation', 100000))
        self.ctx.generation_done = 0
        self.ctx.learning_rate_reductions = 0

    def _parameters(self) -> dict:
        return self.ctx.inputs.parameters.get_dict()

    @process_handler(priority=500, exit_codes=[NepTrainCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME,
                                               NepTrainCalculation.exit_codes.ERROR_TRAINING_INCOMPLETE])
    def handle_out_of_walltime(self, node):
        """Out of wall time: GPUMD nep continues from nep.restart for the remaining generations; neppo (no restart
        file) starts again with more wall time."""
        if self.ctx.program == 'nep':
            if 'restart' not in node.outputs:
                return ProcessHandlerReport(True, self.exit_codes.ERROR_CANNOT_CONTINUE.format(
                    message='GPUMD wrote no nep.restart before it stopped'))
            done = int(node.outputs.results.get('generation', 0)) if 'results' in node.outputs else 0
            self.ctx.generation_done += done
            remaining = self.ctx.generation_total - self.ctx.generation_done
            if remaining <= 0:
                return None
            self.ctx.inputs.restart = node.outputs.restart
            self.ctx.inputs.parameters = orm.Dict({**self._parameters(), 'generation': remaining})
            self.report_error_handled(node, f'continuing from nep.restart for the remaining {remaining} generations')
            return ProcessHandlerReport(True)
        options = dict(self.ctx.inputs.get('metadata', {}).get('options', {}))
        walltime = options.get('max_wallclock_seconds')
        if not walltime:
            return ProcessHandlerReport(True, self.exit_codes.ERROR_CANNOT_CONTINUE.format(
                message='neppo reads no restart file and no max_wallclock_seconds was set to increase'))
        options['max_wallclock_seconds'] = int(walltime * self.defaults.walltime_factor)
        self.ctx.inputs.setdefault('metadata', {})['options'] = options
        self.report_error_handled(node, f'neppo cannot resume: training again with max_wallclock_seconds = '
                                        f'{options["max_wallclock_seconds"]} s')
        return ProcessHandlerReport(True)

    @process_handler(priority=400, exit_codes=[NepTrainCalculation.exit_codes.ERROR_LOSS_NAN])
    def handle_loss_nan(self, node):
        """NaN loss: neppo is retried once with a ten times lower learning rate; otherwise the work chain stops."""
        if self.ctx.program == 'neppo' and \
                self.ctx.learning_rate_reductions < self.defaults.max_learning_rate_reductions:
            parameters = self._parameters()
            start, stop = parameters.get('learning_rate', self.defaults.default_learning_rate)
            factor = self.defaults.learning_rate_factor
            parameters['learning_rate'] = [start * factor, min(stop, start * factor)]
            self.ctx.inputs.parameters = orm.Dict(parameters)
            self.ctx.learning_rate_reductions += 1
            self.report_error_handled(node, f'NaN loss: retrying with learning_rate {parameters["learning_rate"]}')
            return ProcessHandlerReport(True)
        self.report_error_handled(node, 'NaN loss: giving up')
        return ProcessHandlerReport(True, self.exit_codes.ERROR_LOSS_NAN)

    @process_handler(priority=300, exit_codes=[NepTrainCalculation.exit_codes.ERROR_LOSS_NOT_DECREASING])
    def handle_loss_not_decreasing(self, node):
        """The loss did not decrease: nothing a restart would change; the work chain stops with a clear message."""
        self.report_error_handled(node, 'the loss did not decrease: giving up')
        return ProcessHandlerReport(True, self.exit_codes.ERROR_LOSS_NOT_DECREASING)


# ------------------------------------------------------------------------------------------- replicas + held-out


def declare_held_out_inputs(spec, chooses: str) -> None:
    """The ``validation`` and ``test`` sets (or the fractions of ``dataset`` split off as them) of every training
    WorkChain: the validation set chooses (``chooses``), the test set gives the reported held-out errors."""
    spec.input('validation', valid_type=LabelledDataset, required=False,
               help=f'Labelled structures that choose {chooses}.')
    spec.input('test', valid_type=LabelledDataset, required=False,
               help='Labelled structures never used for training or choice: the reported held-out errors.')
    spec.input('validation_fraction', valid_type=orm.Float, default=lambda: orm.Float(0.15),
               help='Fraction of `dataset` held out for validation when no `validation` is given.')
    spec.input('test_fraction', valid_type=orm.Float, default=lambda: orm.Float(0.15),
               help='Fraction of `dataset` held out for the test when no `test` is given.')


def held_out_fractions(inputs) -> tuple[dict, str | None]:
    """The fractions of ``dataset`` to split off as the held-out sets that were not given (``{name: fraction}``),
    or a sentence naming a fraction outside (0, 1)."""
    fractions = {}
    for name in ('validation', 'test'):
        if name not in inputs:
            fraction = inputs[f'{name}_fraction'].value
            if not 0.0 < fraction < 1.0:
                return {}, f'{name}_fraction must be between 0 and 1 (exclusive), got {fraction}'
            fractions[name] = fraction
    return fractions, None


def _validate_training(inputs, port_namespace):  # noqa: PLR0911 - one sentence per bad input
    if inputs['n_replicas'].value < 1:
        return 'n_replicas must be at least 1'
    fractions, problem = held_out_fractions(inputs)
    if problem:
        return problem
    if 'dataset' not in port_namespace or 'dataset' not in inputs:
        # exposed in another WorkChain that makes the dataset: the training validates it when it is launched
        return None
    dataset = inputs['dataset']
    n = dataset.base.attributes.get('n_structures', 0)
    held_out = sum(_held_out_count(fraction, n) for fraction in fractions.values())
    if held_out > n - 1:
        return (f'the dataset of {n} structure(s) cannot give {" and ".join(fractions)} set(s) and keep one for '
                f'training: give more structures, or the held-out sets as inputs')
    for name in ('validation', 'test'):
        if name in inputs:
            missing = set(inputs[name].elements or []) - set(dataset.elements or [])
            if missing:
                return f'the {name} set holds element(s) {", ".join(sorted(missing))} that the dataset lacks'
    return None


class NepTrainingWorkChain(ProtocolMixin, WorkChain):
    """Train ``n_replicas`` NEP models (seeds ``seed``, ``seed + 1``, ...) in parallel; pick the best on the validation
    set, report the errors on a separate test set (CPUNEP), and the spread over replicas.

    Model selection and reporting use different data: the validation set (also ``test.xyz`` of every training, which
    the trainers only report on) chooses the best replica, so its errors are biased low; the test set is never seen
    by a trainer nor by the choice, so its errors (``test_metrics``, ``summary``) are the held-out numbers.
    """

    _protocol_file = 'training.yaml'
    _protocol_open_keys = ('parameters', 'program_parameters.nep', 'program_parameters.neppo', 'options')

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('dataset', valid_type=LabelledDataset,
                   help='Labelled structures to train on (the validation and test sets are split off it unless given).')
        declare_held_out_inputs(spec, chooses='the best replica (test.xyz of every training)')
        spec.input('n_replicas', valid_type=orm.Int, default=lambda: orm.Int(3),
                   help='Number of models trained with different seeds.')
        spec.input('seed', valid_type=orm.Int, default=lambda: orm.Int(1),
                   help='Seed of replica 0 (replica i: seed + i; neppo) and of the split. GPUMD nep '
                        '(released versions) takes no seed: its replicas differ by its own random start.')
        spec.expose_inputs(NepTrainBaseWorkChain, namespace='training', exclude=('nep.train', 'nep.test', 'nep.seed'))
        spec.inputs.validator = _validate_training
        spec.outline(cls.setup, cls.run_training, cls.inspect_training, cls.evaluate, cls.summarise)

        spec.output('train_dataset', valid_type=LabelledDataset, help='The structures the models were trained on.')
        spec.output('validation_dataset', valid_type=LabelledDataset,
                    help='The structures that picked the best replica (biased: not a held-out error).')
        spec.output('test_dataset', valid_type=LabelledDataset,
                    help='The held-out structures of the reported errors (unused by training and choice).')
        spec.output_namespace('replicas', dynamic=True, valid_type=(NepModel, orm.Dict),
                              help='Per replica `replica_NN`: `model` (NepModel), `validation_metrics` and '
                                   '`test_metrics` (errors, Dict) and `training` (the parser results, Dict).')
        spec.output('validation_summary', valid_type=orm.Dict,
                    help='Errors on the validation set over the replicas; `best_replica` is chosen here.')
        spec.output('summary', valid_type=orm.Dict,
                    help='Mean ± std of the test-set (held-out) errors over the replicas, and the best replica.')
        spec.output('model', valid_type=NepModel, help='The replica with the lowest validation force RMSE.')
        spec.output('validation_metrics', valid_type=orm.Dict, help='Its errors on the validation set (chose it).')
        spec.output('test_metrics', valid_type=orm.Dict, help='Its errors on the test set: the held-out errors.')

        spec.exit_code(401, 'ERROR_ALL_REPLICAS_FAILED', message='No replica finished its training: {message}')

    @classmethod
    def get_builder_from_protocol(cls, code, dataset=None, protocol=None, overrides=None, options=None,
                                  validation=None, program=None, test=None):
        """A ready builder for ``dataset`` (``sseff.dataset``) trained with ``code`` (GPUMD ``nep`` or ``neppo``).

        :param dataset: the labelled set; None leaves it to be set (a pipeline sets it from its labelling stage).
        :param protocol: ``fast`` (CPU, minutes), ``balanced`` or ``stringent`` (the seed paper's NEP settings);
            default ``balanced``.
        :param overrides: merged recursively into the protocol's inputs (``parameters``, ``program_parameters``,
            ``n_replicas``, ``validation_fraction``, ``test_fraction``, ``seed``, ``max_iterations``, ``options``).
        :param options: CalcJob ``metadata.options`` (resources, max_wallclock_seconds, device, ...).
        :param validation: a ``sseff.dataset`` that picks the best replica; without it a fraction of ``dataset``.
        :param test: a ``sseff.dataset`` for the reported errors; without it a fraction of ``dataset``.
        :param program: ``'nep'`` or ``'neppo'``; default from the code (see ``resolve_program``).
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        chosen = resolve_program(program, code)
        parameters = {**inputs['parameters'], **(inputs.get('program_parameters', {}).get(chosen) or {})}
        builder = cls.get_builder()
        if dataset is not None:
            builder.dataset = dataset
        if validation is not None:
            builder.validation = validation
        if test is not None:
            builder.test = test
        builder.validation_fraction = orm.Float(inputs['validation_fraction'])
        builder.test_fraction = orm.Float(inputs['test_fraction'])
        builder.n_replicas = orm.Int(inputs['n_replicas'])
        builder.seed = orm.Int(inputs['seed'])
        builder.training.max_iterations = orm.Int(inputs['max_iterations'])
        builder.training.nep.code = code
        builder.training.nep.parameters = orm.Dict(parameters)
        if program is not None:
            builder.training.nep.program = orm.Str(chosen)
        metadata_options = {**inputs.get('options', {}), **(options or {})}
        if chosen != 'neppo':
            metadata_options.pop('device', None)
        builder.training.nep.metadata.options = metadata_options
        return builder

    def setup(self):
        inputs = AttributeDict(self.exposed_inputs(NepTrainBaseWorkChain, 'training'))
        self.ctx.training_inputs = inputs
        self.ctx.program = resolve_program(inputs.nep.get('program'), inputs.nep.code)
        self.ctx.train = self.inputs.dataset
        self.ctx.validation = self.inputs.get('validation')
        self.ctx.test = self.inputs.get('test')
        if self.ctx.validation is None or self.ctx.test is None:
            split = split_train_validation_test(
                self.inputs.dataset,
                orm.Float(0.0) if self.ctx.validation is not None else self.inputs.validation_fraction,
                orm.Float(0.0) if self.ctx.test is not None else self.inputs.test_fraction,
                self.inputs.seed)
            self.ctx.train = split['train']
            self.ctx.validation = self.ctx.validation or split['validation']
            self.ctx.test = self.ctx.test or split['test']
        self.out('train_dataset', self.ctx.train)
        self.out('validation_dataset', self.ctx.validation)
        self.out('test_dataset', self.ctx.test)
        self.ctx.labels = [f'replica_{index:02d}' for index in range(self.inputs.n_replicas.value)]

    def run_training(self):
        jobs = {}
        for index, label in enumerate(self.ctx.labels):
            inputs = AttributeDict(self.ctx.training_inputs)
            nep = AttributeDict(inputs.nep)
            nep.train = self.ctx.train
            nep.test = self.ctx.validation  # never the test set: it must stay unseen
            if self.ctx.program == 'neppo':
                nep.seed = orm.Int(self.inputs.seed.value + index)
            inputs.nep = nep
            inputs.metadata = {'call_link_label': label, 'label': label}
            jobs[label] = self.submit(NepTrainBaseWorkChain, **inputs)
            self.report(f'submitted training {label} <{jobs[label].pk}>')
        return ToContext(**jobs)

    def inspect_training(self):
        self.ctx.finished = [label for label in self.ctx.labels if self.ctx[label].is_finished_ok]
        failed = [label for label in self.ctx.labels if label not in self.ctx.finished]
        for label in failed:
            node = self.ctx[label]
            self.report(f'{label} <{node.pk}> failed: {node.exit_status} {node.exit_message}')
        if not self.ctx.finished:
            messages = '; '.join(f'{label}: {self.ctx[label].exit_message}' for label in failed)
            return self.exit_codes.ERROR_ALL_REPLICAS_FAILED.format(message=messages)
        return None

    def evaluate(self):
        self.ctx.validation_metrics, self.ctx.test_metrics = {}, {}
        for label in self.ctx.finished:
            node = self.ctx[label]
            model = node.outputs.model
            validation = evaluate_nep_model(model, self.ctx.validation,
                                            metadata={'call_link_label': f'validate_{label}'})
            test = evaluate_nep_model(model, self.ctx.test, metadata={'call_link_label': f'test_{label}'})
            self.ctx.validation_metrics[label] = validation
            self.ctx.test_metrics[label] = test
            self.out(f'replicas.{label}', {'model': model, 'validation_metrics': validation, 'test_metrics': test,
                                           'training': node.outputs.results})
            self.report(f'{label}: force RMSE {validation["force_mev_per_angstrom"]:.1f} meV/Å (validation), '
                        f'{test["force_mev_per_angstrom"]:.1f} meV/Å (test)')

    def summarise(self):
        validation_summary = summarise_replicas(**self.ctx.validation_metrics,
                                                metadata={'call_link_label': 'summarise_validation'})
        best = validation_summary['best_replica']
        summary = summarise_replicas(chosen=orm.Str(best), **self.ctx.test_metrics,
                                     metadata={'call_link_label': 'summarise_test'})
        self.out('validation_summary', validation_summary)
        self.out('summary', summary)
        self.out('model', self.ctx[best].outputs.model)
        self.out('validation_metrics', self.ctx.validation_metrics[best])
        self.out('test_metrics', self.ctx.test_metrics[best])
        force = summary['force_mev_per_angstrom']
        self.report(f'test-set force RMSE over {summary["n_replicas"]} replica(s): {force["mean"]:.1f} ± '
                    f'{force["std"]:.1f} meV/Å; best on the validation set: {best} (test '
                    f'{self.ctx.test_metrics[best]["force_mev_per_angstrom"]:.1f} meV/Å)')
