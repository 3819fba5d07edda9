"""``sseff.study.dataset_size`` (the perspective paper's Fig. 1): how much data does the Li transport need?

A labelled dataset is split ONCE into a pool, a validation set and a test set
(:func:`~aiida_sseff.workflows.training.split_train_validation_test`, a calcfunction); the pool is reduced by nested
farthest-point sampling to sizes N, N/2, ..., N/2^n (``sseff.sample.series``, exposed in ``series``); one model is
trained per size by ``sseff.train`` (exposed in ``training``: one architecture, NEP by default, any of sseff.train's)
with the subset as its training set and the SAME validation and test sets for every size, so every RMSE is on data no
model was trained on or chosen by; every model's Li transport comes from ``sseff.diffusion`` (exposed in
``diffusion``: the same cell, temperatures and MD settings for all); the calcfunction :func:`tabulate_dataset_size`
makes the table (per size: structures, mobile-ion environments, energy/force RMSE, D at one temperature ± σ,
Ea ± σ) and the converged size (:func:`aiida_sseff.analysis.dataset_size.converged_size`: the smallest size from
which every pair of sizes agrees in Ea and in D within ``convergence_n_sigma`` combined σ).
A size whose training or diffusion failed keeps its row, with None and the reason.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction

from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.data.model import MaceModel, NepModel
from aiida_sseff.protocols.utils import ProtocolMixin
from aiida_sseff.utils import json_safe
from aiida_sseff.workflows.architectures import ArchitectureTrainingWorkChain
from aiida_sseff.workflows.diffusion import DiffusionWorkChain
from aiida_sseff.workflows.sampling import ReductionSeriesWorkChain
from aiida_sseff.workflows.training import (
    _held_out_count,
    declare_held_out_inputs,
    held_out_fractions,
    split_train_validation_test,
)

__all__ = ['DatasetSizeStudyWorkChain', 'count_mobile_environments', 'n_halvings', 'tabulate_dataset_size']

#: the inputs of sseff.train that the study sets itself (the data: subset, fixed validation and test sets)
TRAINING_EXCLUDE = ('dataset', 'train', 'validation', 'test', 'validation_fraction', 'test_fraction', 'split_seed',
                    'speed')
#: the inputs of sseff.sample.series that the study sets itself
SERIES_EXCLUDE = ('dataset', 'n_levels')
#: the input of sseff.diffusion that the study sets itself
DIFFUSION_EXCLUDE = ('model',)


def n_halvings(n_pool: int, n_sizes: int | None = None, min_size: int | None = None) -> int:
    """How many halvings of a pool of ``n_pool`` structures: ``n_sizes - 1`` (the pool is the first size), or the
    most that keep every size >= ``min_size``."""
    if n_sizes is not None:
        return n_sizes - 1
    levels = 0
    while n_pool // 2 ** (levels + 1) >= min_size:
        levels += 1
    return levels


@calcfunction
def count_mobile_environments(dataset: LabelledDataset, species: orm.Str) -> orm.Int:
    """Mobile-ion environments of a training set: the number of ``species`` atoms summed over its structures."""
    from aiida_sseff.analysis.dataset_size import mobile_environments

    return orm.Int(mobile_environments((atoms.get_chemical_symbols() for atoms in dataset.get_ase()), species.value))


@calcfunction
def tabulate_dataset_size(temperature: orm.Float, n_sigma: orm.Float, failures: orm.Dict, **nodes) -> orm.Dict:
    """The dataset-size table from stored nodes, per size label ``<label>``: ``subset__<label>`` (the training set),
    ``environments__<label>`` (Int), and where they exist ``metrics__<label>`` (test-set errors) and
    ``transport__<label>`` (sseff.diffusion results); ``failures`` ({label: reason}) say why a row lacks them.

    Returns ``rows`` (:func:`aiida_sseff.analysis.dataset_size.dataset_size_rows`, smallest size first),
    ``converged`` (:func:`~aiida_sseff.analysis.dataset_size.converged_size` on the mobile-ion environments),
    ``temperature_K``, ``n_sigma`` and ``markdown``.
    """
    from aiida_sseff.analysis.dataset_size import converged_size, dataset_size_rows, format_dataset_size_table

    labels = sorted(key.split('__', 1)[1] for key in nodes if key.startswith('subset__'))
    reasons = failures.get_dict()
    sizes = []
    for label in labels:
        metrics, transport = nodes.get(f'metrics__{label}'), nodes.get(f'transport__{label}')
        sizes.append({'label': label, 'n_structures': nodes[f'subset__{label}'].n_structures,
                      'n_mobile_environments': nodes[f'environments__{label}'].value,
                      'metrics': metrics.get_dict() if metrics is not None else None,
                      'transport': transport.get_dict() if transport is not None else None,
                      'failure': reasons.get(label)})
    rows = dataset_size_rows(sizes, temperature.value)
    converged = converged_size(rows, n_sigma=n_sigma.value)
    return orm.Dict(json_safe({
        'rows': rows, 'converged': converged, 'temperature_K': temperature.value, 'n_sigma': n_sigma.value,
        'markdown': format_dataset_size_table(rows, converged, temperature.value),
        'units': {'energy': 'meV/atom', 'force': 'meV/Å', 'D': 'cm²/s', 'Ea': 'eV'},
    }))


def _validate_inputs(inputs, port_namespace):  # noqa: PLR0911 - one sentence per bad input
    has_n, has_min = 'n_sizes' in inputs, 'min_size' in inputs
    if has_n == has_min:
        return 'give exactly one of n_sizes and min_size'
    if has_n and inputs['n_sizes'].value < 2:
        return f'n_sizes must be at least 2 (a series to compare), got {inputs["n_sizes"].value}'
    if has_min and inputs['min_size'].value < 1:
        return f'min_size must be at least 1, got {inputs["min_size"].value}'
    if inputs['convergence_n_sigma'].value <= 0:
        return f'convergence_n_sigma must be > 0, got {inputs["convergence_n_sigma"].value}'
    fractions, problem = held_out_fractions(inputs)
    if problem:
        return problem
    architectures = inputs['training']['architectures'].get_dict() if 'architectures' in inputs.get('training', {}) \
        else {}
    if len(architectures) != 1:
        return (f'training.architectures must hold exactly one architecture (one model per size), got '
                f'{", ".join(architectures) or "none"}')
    if 'dataset' not in inputs:
        return None  # exposed in the main job, which hands the labelled dataset over: checked when launched
    if 'structure' not in inputs.get('diffusion', {}):
        return 'diffusion.structure is required: the cell whose Li transport every model predicts'
    n = inputs['dataset'].n_structures
    n_pool = n - sum(_held_out_count(fraction, n) for fraction in fractions.values())
    if n_pool < 1:
        return f'the dataset of {n} structures leaves no pool to reduce after the held-out sets'
    levels = n_halvings(n_pool, inputs['n_sizes'].value if has_n else None,
                        inputs['min_size'].value if has_min else None)
    if levels < 1 or n_pool // 2 ** levels < 1:
        wanted = f'{inputs["n_sizes"].value} sizes' if has_n else f'sizes of at least {inputs["min_size"].value}'
        return (f'the pool of {n_pool} structures (the dataset of {n} less the held-out sets) cannot give {wanted} '
                'by halving: give more structures, fewer sizes or a smaller min_size')
    species = inputs['diffusion']['mobile_species'].value if 'mobile_species' in inputs.get('diffusion', {}) else 'Li'
    if species not in (inputs['dataset'].elements or []):
        return f'the dataset holds no {species} (the mobile species): no mobile-ion environment to count'
    return None


class DatasetSizeStudyWorkChain(ProtocolMixin, WorkChain):
    """Fixed held-out sets, nested FPS subsets of the pool, one model per subset (``sseff.train``), its RMSE on the
    fixed test set and its Li transport (``sseff.diffusion``) → one table and the size where transport converges."""

    _protocol_file = 'dataset_size.yaml'
    _protocol_open_keys = ('training', 'diffusion', 'series', 'architecture')

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('dataset', valid_type=LabelledDataset, required=False,
                   help='The labelled structures: split once into pool, validation and test.')
        declare_held_out_inputs(spec, chooses='the seed of every size\'s model (the same set for every size)')
        spec.input('split_seed', valid_type=orm.Int, default=lambda: orm.Int(1), help='Seed of the one split.')
        spec.input('n_sizes', valid_type=orm.Int, required=False,
                   help='Number of sizes: the pool and n_sizes - 1 halvings (N, N/2, ...).')
        spec.input('min_size', valid_type=orm.Int, required=False,
                   help='Alternatively: halve while the size stays at least this many structures.')
        spec.input('comparison_temperature', valid_type=orm.Float, required=False,
                   help='Where D is compared (K); default the lowest MD temperature (a measured D).')
        spec.input('convergence_n_sigma', valid_type=orm.Float, default=lambda: orm.Float(1.0),
                   help='Two sizes agree when |ΔEa| and |ΔD| are within this many combined standard errors.')
        spec.expose_inputs(ReductionSeriesWorkChain, namespace='series', exclude=SERIES_EXCLUDE,
                           namespace_options={'help': 'sseff.sample.series: the FPS descriptor of the nested subsets.'})
        spec.expose_inputs(ArchitectureTrainingWorkChain, namespace='training', exclude=TRAINING_EXCLUDE,
                           namespace_options={'help': 'sseff.train: ONE architecture, its code, seeds and parameters '
                                                      '(the data are the study\'s).'})
        spec.expose_inputs(DiffusionWorkChain, namespace='diffusion', exclude=DIFFUSION_EXCLUDE,
                           namespace_options={'help': 'sseff.diffusion: the cell, temperatures and MD of every model.'})
        # these need what the study hands over (the data, the model): they check themselves when each child starts
        spec.inputs['training'].validator = None
        spec.inputs['diffusion'].validator = None
        spec.inputs['series'].validator = None
        # a parent (the main job) hands the cell over with the dataset; standalone, the validator asks for it
        spec.inputs['diffusion']['structure'].required = False
        spec.inputs.validator = _validate_inputs
        spec.outline(cls.split, cls.run_series, cls.inspect_series, cls.run_training, cls.inspect_training,
                     cls.run_diffusion, cls.inspect_diffusion, cls.tabulate)
        spec.output('pool', valid_type=LabelledDataset, help='The structures the subsets are drawn from.')
        spec.output('validation_dataset', valid_type=LabelledDataset, help='Chose the seed of every model.')
        spec.output('test_dataset', valid_type=LabelledDataset, help='The held-out set of every RMSE.')
        spec.output_namespace('subsets', valid_type=LabelledDataset, dynamic=True,
                              help='level_0 (the pool) ... level_n (N // 2^n): each a subset of the previous.')
        spec.output_namespace('mobile_environments', valid_type=orm.Int, dynamic=True,
                              help='Per level: mobile-ion atoms summed over the subset\'s structures.')
        spec.output_namespace('models', valid_type=(NepModel, MaceModel), dynamic=True, help='Per level: the trained model.')
        spec.output_namespace('test_metrics', valid_type=orm.Dict, dynamic=True,
                              help='Per level: the model\'s errors on the test set (evaluate_model).')
        spec.output_namespace('transport', valid_type=orm.Dict, dynamic=True,
                              help='Per level: sseff.diffusion results (Ea, D(T) table, ...).')
        spec.output('table', valid_type=orm.Dict, help='Rows per size and the converged size (tabulate_dataset_size).')
        spec.exit_code(401, 'ERROR_SPLIT_FAILED', message='The held-out split failed: {message}')
        spec.exit_code(402, 'ERROR_SERIES_FAILED', message='The FPS reduction series failed: {message}')
        spec.exit_code(403, 'ERROR_TRAINING_FAILED', message='No size trained a model: {message}')
        spec.exit_code(404, 'ERROR_DIFFUSION_FAILED', message='No model gave an Arrhenius fit: {message}')

    @classmethod
    def get_builder_from_protocol(cls, training_code, dataset, diffusion_code, structure, protocol=None,  # noqa: PLR0913
                                  overrides=None, options=None, mace_code=None, mobile_species=None):
        """A ready builder from ``protocols/dataset_size.yaml``: the study's sizes and split, ``sseff.train``'s
        protocol of the same name with the protocol's single ``architecture`` (``overrides['architecture']``:
        ``{label: spec}``, any sseff.train spec; ``training_code`` is the nep/neppo code, ``mace_code`` for a MACE
        spec) and ``sseff.diffusion``'s, each with the study's overrides (``training``, ``diffusion``). ``dataset``
        and ``structure`` may be None when a parent hands them over (the main job)."""
        inputs = cls.get_protocol_inputs(protocol, overrides)
        protocol = protocol or cls.get_default_protocol()
        # an architecture given in the overrides replaces the protocol's (a merge would make two)
        architecture = (overrides or {}).get('architecture') or inputs['architecture']
        kind = next(iter(architecture.values()))['kind']
        builder = cls.get_builder()
        if dataset is not None:
            builder.dataset = dataset
        if inputs.get('min_size') is not None and (overrides or {}).get('n_sizes') is None:
            builder.min_size = orm.Int(inputs['min_size'])
        else:
            builder.n_sizes = orm.Int(inputs['n_sizes'])
        builder.validation_fraction = orm.Float(inputs['validation_fraction'])
        builder.test_fraction = orm.Float(inputs['test_fraction'])
        builder.split_seed = orm.Int(inputs['split_seed'])
        builder.convergence_n_sigma = orm.Float(inputs['convergence_n_sigma'])
        if inputs.get('comparison_temperature') is not None:
            builder.comparison_temperature = orm.Float(inputs['comparison_temperature'])
        for key, value in (inputs.get('series') or {}).items():
            if value is not None:
                builder.series[key] = {'descriptor': orm.Str, 'per_species': orm.Bool, 'species': orm.Str}[key](value)
        training = ArchitectureTrainingWorkChain.get_builder_from_protocol(
            training_code if kind == 'nep' else None, mace_code if kind == 'mace' else None, dataset,
            architectures=architecture, protocol=protocol, overrides=inputs['training'] or None, options=options)
        training_inputs = training._inputs(prune=True)  # noqa: SLF001 - the documented way to nest one builder
        for name in (*TRAINING_EXCLUDE, 'metadata'):
            training_inputs.pop(name, None)
        builder.training = training_inputs
        diffusion_protocol = DiffusionWorkChain.get_protocol_inputs(protocol, inputs['diffusion'] or None)
        diffusion = DiffusionWorkChain.get_builder_from_protocol(
            diffusion_code, structure, protocol=protocol, overrides=inputs['diffusion'] or None, options=options,
            calculator={'kind': kind})
        diffusion_inputs = diffusion._inputs(prune=True)  # noqa: SLF001
        for name in (*DIFFUSION_EXCLUDE, 'metadata'):
            diffusion_inputs.pop(name, None)
        if structure is None:
            diffusion_inputs.pop('structure', None)
        if diffusion_protocol.get('min_cell_width_factor'):
            # the width follows each model's cutoff at run time (sseff.diffusion replicates the cell)
            diffusion_inputs['min_cell_width_factor'] = orm.Float(float(diffusion_protocol['min_cell_width_factor']))
        if mobile_species is not None:
            diffusion_inputs['mobile_species'] = orm.Str(mobile_species)
        builder.diffusion = diffusion_inputs
        return builder

    # ------------------------------------------------------------------------------------------------- steps
    def split(self):
        """The held-out sets first, from the whole dataset: every size is tested on the same unseen structures."""
        given = {name: self.inputs.get(name) for name in ('validation', 'test')}
        try:
            split = split_train_validation_test(
                self.inputs.dataset,
                orm.Float(0.0) if given['validation'] is not None else self.inputs.validation_fraction,
                orm.Float(0.0) if given['test'] is not None else self.inputs.test_fraction,
                self.inputs.split_seed, metadata={'call_link_label': 'split'})
        except ValueError as exception:
            return self.exit_codes.ERROR_SPLIT_FAILED.format(message=str(exception))
        self.ctx.pool = split['train']
        self.ctx.validation = given['validation'] or split['validation']
        self.ctx.test = given['test'] or split['test']
        self.out('pool', self.ctx.pool)
        self.out('validation_dataset', self.ctx.validation)
        self.out('test_dataset', self.ctx.test)
        return None

    def run_series(self):
        inputs = AttributeDict(self.exposed_inputs(ReductionSeriesWorkChain, namespace='series'))
        n_pool = self.ctx.pool.n_structures
        levels = n_halvings(n_pool, self.inputs.n_sizes.value if 'n_sizes' in self.inputs else None,
                            self.inputs.min_size.value if 'min_size' in self.inputs else None)
        inputs.update(dataset=self.ctx.pool, n_levels=orm.Int(levels), metadata={'call_link_label': 'series'})
        try:
            node = self.submit(ReductionSeriesWorkChain, **inputs)
        except ValueError as exception:
            return self.exit_codes.ERROR_SERIES_FAILED.format(message=f'invalid series inputs: {exception}')
        self.report(f'submitted the FPS series of the pool of {n_pool} ({levels} halvings) <{node.pk}>')
        return ToContext(series=node)

    def inspect_series(self):
        node = self.ctx.series
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_SERIES_FAILED.format(message=f'[{node.exit_status}] {node.exit_message}')
        self.ctx.subsets = {'level_0': self.ctx.pool, **dict(node.outputs.series.items())}
        species = orm.Str(self.inputs.diffusion.mobile_species.value if 'mobile_species' in self.inputs.diffusion
                          else 'Li')
        self.ctx.environments = {}
        for label, subset in sorted(self.ctx.subsets.items()):
            self.out(f'subsets.{label}', subset)
            environments = count_mobile_environments(subset, species,
                                                     metadata={'call_link_label': f'environments_{label}'})
            self.ctx.environments[label] = environments
            self.out(f'mobile_environments.{label}', environments)
        return None

    def run_training(self):
        futures = {}
        for label, subset in sorted(self.ctx.subsets.items()):
            inputs = AttributeDict(self.exposed_inputs(ArchitectureTrainingWorkChain, namespace='training'))
            inputs.update(train=subset, validation=self.ctx.validation, test=self.ctx.test,
                          metadata={'call_link_label': f'training_{label}', 'label': f'{subset.n_structures} structures'})
            futures[f'training_{label}'] = self.submit(ArchitectureTrainingWorkChain, **inputs)
            self.report(f'submitted sseff.train on {label} ({subset.n_structures} structures) '
                        f'<{futures[f"training_{label}"].pk}>')
        return ToContext(**futures)

    def inspect_training(self):
        self.ctx.failures, self.ctx.models, self.ctx.metrics = {}, {}, {}
        architecture = next(iter(self.inputs.training.architectures.get_dict()))
        for label in sorted(self.ctx.subsets):
            node = self.ctx[f'training_{label}']
            if node.is_finished_ok and architecture in node.outputs.models:
                self.ctx.models[label] = node.outputs.models[architecture]
                self.out(f'models.{label}', self.ctx.models[label])
                self.ctx.metrics[label] = node.outputs.test_metrics[architecture]
                self.out(f'test_metrics.{label}', self.ctx.metrics[label])
            else:
                self.ctx.failures[label] = f'training [{node.exit_status}] {node.exit_message}'
                self.report(f'the training on {label} <{node.pk}> failed: {self.ctx.failures[label]}')
        if not self.ctx.models:
            return self.exit_codes.ERROR_TRAINING_FAILED.format(message='; '.join(self.ctx.failures.values()))
        return None

    def run_diffusion(self):
        futures = {}
        for label, model in sorted(self.ctx.models.items()):
            inputs = AttributeDict(self.exposed_inputs(DiffusionWorkChain, namespace='diffusion'))
            inputs.update(model=model, metadata={'call_link_label': f'diffusion_{label}',
                                                 'label': f'{self.ctx.subsets[label].n_structures} structures'})
            try:
                futures[f'diffusion_{label}'] = self.submit(DiffusionWorkChain, **inputs)
            except ValueError as exception:
                self.ctx.failures[label] = f'diffusion: invalid inputs: {exception}'
                self.report(f'the diffusion of {label} was refused: {exception}')
                continue
            self.report(f'submitted the diffusion of {label} <{futures[f"diffusion_{label}"].pk}>')
        return ToContext(**futures)

    def inspect_diffusion(self):
        """A model whose MD gave no Arrhenius fit keeps its row without transport; the study fails only when none
        gave one."""
        self.ctx.transport = {}
        for label in sorted(self.ctx.models):
            node = self.ctx.get(f'diffusion_{label}')
            if node is None:
                continue
            if node.is_finished_ok:
                self.ctx.transport[label] = node.outputs.results
                self.out(f'transport.{label}', node.outputs.results)
            else:
                self.ctx.failures[label] = f'diffusion [{node.exit_status}] {node.exit_message}'
                self.report(f'the diffusion of {label} <{node.pk}> failed: {self.ctx.failures[label]}')
        if not self.ctx.transport:
            return self.exit_codes.ERROR_DIFFUSION_FAILED.format(message='; '.join(self.ctx.failures.values()))
        return None

    def tabulate(self):
        if 'comparison_temperature' in self.inputs:
            temperature = self.inputs.comparison_temperature
        else:
            temperature = orm.Float(min(float(t) for t in self.inputs.diffusion.temperatures.get_list()))
        nodes = {}
        for label, subset in self.ctx.subsets.items():
            nodes[f'subset__{label}'] = subset
            nodes[f'environments__{label}'] = self.ctx.environments[label]
            if label in self.ctx.models:
                nodes[f'metrics__{label}'] = self.ctx.metrics[label]
            if label in self.ctx.transport:
                nodes[f'transport__{label}'] = self.ctx.transport[label]
        table = tabulate_dataset_size(temperature, self.inputs.convergence_n_sigma, orm.Dict(self.ctx.failures),
                                      **nodes, metadata={'call_link_label': 'tabulate'})
        self.out('table', table)
        self.report('dataset-size study:\n' + table['markdown'])

