"""``sseff.study.replicas`` (:class:`ReplicaStudyWorkChain`): the perspective paper's Fig. S4 as one workflow.

Per labelled dataset (e.g. the Γ-only and the dense-k labels of ``sseff.study.reference_quality``), ``sseff.train``
trains one architecture (NEP by default) once per seed on one split; ``sseff.diffusion`` then runs every replica
model with the same temperatures, cell and MD seeds. One calcfunction tabulates, per dataset and replica, D(T) ± σ,
Ea ± σ and the test-set force RMSE, and across the replicas the spread (std, max − min) of Ea and of log10 D per
temperature next to the mean of the replicas' own error bars (:mod:`aiida_sseff.analysis.replicas`; the rule:
reproducible when std(Ea) ≤ mean own σ(Ea)). Protocols: ``protocols/replicas.yaml``.
"""

from __future__ import annotations

import re

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction

from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.data.model import MaceModel, NepModel
from aiida_sseff.protocols.utils import ProtocolMixin
from aiida_sseff.utils import json_safe
from aiida_sseff.workflows.architectures import ArchitectureTrainingWorkChain, seed_label
from aiida_sseff.workflows.architectures import _validate_inputs as validate_training_inputs
from aiida_sseff.workflows.diffusion import DiffusionWorkChain
from aiida_sseff.workflows.stages import declare_stage, stage_builder, stage_requested

__all__ = ['ReplicaStudyWorkChain', 'tabulate_replicas', 'validate_diffusion_stage']

#: a dataset label becomes part of link names: letters, digits and single underscores
_LABEL = re.compile(r'[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*')


@calcfunction
def tabulate_replicas(failures: orm.Dict, **nodes) -> orm.Dict:
    """The replica table (:func:`aiida_sseff.analysis.replicas.replica_summary` per dataset) from the stored test
    metrics and Arrhenius results (``metrics__<dataset>__<seed label>``, ``transport__<dataset>__<seed label>``);
    ``failures`` (``{dataset: {seed label: exit message}}``) say why a replica has no transport."""
    from aiida_sseff.analysis.replicas import REPRODUCIBILITY_RULE, format_replica_table, replica_summary

    parts: dict = {}
    for key, node in nodes.items():
        part, dataset, replica = key.split('__')
        parts.setdefault(dataset, {'metrics': {}, 'transport': {}})[part][replica] = node.get_dict()
    failed = failures.get_dict()
    datasets = {}
    for dataset in sorted(parts):
        metrics, transport = parts[dataset]['metrics'], parts[dataset]['transport']
        for replica in metrics:
            transport.setdefault(replica, None)
        datasets[dataset] = replica_summary(
            transport, {replica: m.get('force_mev_per_angstrom') for replica, m in metrics.items()},
            failures=failed.get(dataset, {}))
    return orm.Dict(json_safe({'datasets': datasets, 'rule': REPRODUCIBILITY_RULE,
                               'markdown': format_replica_table(datasets)}))


def validate_diffusion_stage(inputs, engine_name: str | None = None) -> str | None:
    """The diffusion stage's protocol and overrides, checked before anything runs (the MD settings and the fit
    window as ``sseff.diffusion``'s own validator checks them; the model and cell are known only at run time)."""
    from aiida_sseff.workflows.diffusion import _analysis_options, check_fit_window, md_parameters

    if not stage_requested(inputs, 'diffusion'):
        return 'diffusion.code is required: the study compares the transport of the models'
    if 'structure' not in inputs['diffusion']:
        return 'diffusion.structure is required: the cell whose Li transport every model predicts'
    stage = inputs['diffusion']
    protocol = stage['protocol'].value if 'protocol' in stage else None
    overrides = stage['overrides'].get_dict() if 'overrides' in stage else None
    plugin = stage['code'].default_calc_job_plugin
    engine = engine_name or {'sseff.gpumd': 'gpumd', 'lammps.raw': 'lammps'}.get(plugin, 'engine')
    try:
        settings = DiffusionWorkChain.get_protocol_inputs(protocol, overrides)
        md_parameters(settings['md'], engine, 1000.0, 1)
        _analysis_options(settings['analysis'])
        check_fit_window(settings['md'], settings['analysis'], engine)
    except ValueError as exception:
        return f'diffusion: {exception}'
    return None


def _validate_replica_study(inputs, _):
    datasets = inputs.get('datasets') or {}
    if not datasets:
        return 'datasets is empty: give at least one labelled dataset, e.g. {"gamma": ..., "dense_k": ...}'
    for label in datasets:
        if not _LABEL.fullmatch(label):
            return (f'dataset label `{label}` cannot be a link name: use letters, digits and single underscores, '
                    'starting with a letter')
    seeds = inputs['seeds'].get_list() if 'seeds' in inputs else []
    if len(seeds) < 2:
        return f'seeds: a replica spread needs at least 2 seeds, got {seeds}'
    training = dict(inputs.get('training') or {})
    architectures = training['architectures'].get_dict() if 'architectures' in training else {}
    if len(architectures) != 1:
        return (f'training.architectures: the replica study trains ONE architecture (n seeds), got '
                f'{len(architectures)} ({", ".join(architectures) or "none"})')
    for label, dataset in datasets.items():
        message = validate_training_inputs({**training, 'dataset': dataset, 'seeds': inputs['seeds']}, None)
        if message:
            return f'dataset `{label}`: {message}'
    message = validate_diffusion_stage(inputs)
    if message:
        return message
    if inputs['diffusion']['code'].default_calc_job_plugin == 'sseff.gpumd':
        kind = next(iter(architectures.values())).get('kind')
        if kind != 'nep':
            return f'GPUMD runs NEP models only; the {kind} replicas cannot run there: use the CPU engine code'
    return None


class ReplicaStudyWorkChain(ProtocolMixin, WorkChain):
    """n replicas (seeds) of one architecture per dataset (``sseff.train``), the Li transport of every replica
    (``sseff.diffusion``, same temperatures, cell and MD seeds) → the spread across replicas of Ea and D(T) next to
    each replica's own error bar, per dataset."""

    _protocol_file = 'replicas.yaml'
    _protocol_open_keys = ('architecture', 'training', 'diffusion')

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace('datasets', valid_type=LabelledDataset, dynamic=True,
                             help='{label: labelled dataset}, e.g. gamma and dense_k; each is split and trained on '
                                  'alone.')
        spec.input('seeds', valid_type=orm.List, help='One model per seed and dataset (at least 2).')
        spec.expose_inputs(ArchitectureTrainingWorkChain, namespace='training',
                           exclude=('dataset', 'train', 'validation', 'test', 'seeds'),
                           namespace_options={'help': 'sseff.train: ONE architecture, its code and settings, split.'})
        # sseff.train's validator needs the dataset and seeds set here per run: _validate_replica_study calls it
        spec.inputs['training'].validator = None
        declare_stage(spec, 'diffusion', 'Li transport of every replica model (sseff.diffusion), same settings each.',
                      'The CPU engine (any model) or GPUMD (NEP models only).', extra={'structure': orm.StructureData})
        spec.inputs.validator = _validate_replica_study
        spec.outline(cls.run_training, cls.inspect_training, cls.run_diffusion, cls.inspect_diffusion, cls.tabulate)
        spec.output_namespace('models', valid_type=(NepModel, MaceModel), dynamic=True,
                              help='Per dataset, per seed label: the replica model.')
        spec.output_namespace('test_metrics', valid_type=orm.Dict, dynamic=True,
                              help='Per dataset, per seed label: the test-set errors (evaluate_model).')
        spec.output_namespace('transport', valid_type=orm.Dict, dynamic=True,
                              help='Per dataset, per seed label: sseff.diffusion results.')
        spec.output('table', valid_type=orm.Dict,
                    help='Per dataset: per replica force RMSE, Ea ± σ, D(T) ± σ; the spread and the verdict.')
        spec.exit_code(401, 'ERROR_TRAINING_FAILED', message='sseff.train on dataset {dataset} failed: {message}')
        spec.exit_code(402, 'ERROR_TOO_FEW_REPLICAS',
                       message='Dataset {dataset} gave {n} trained replica(s): a spread needs 2 ({message})')
        spec.exit_code(403, 'ERROR_DIFFUSION_FAILED', message='No replica model gave an Arrhenius fit: {message}')

    @classmethod
    def get_builder_from_protocol(cls, training_code, datasets: dict, diffusion_code, structure, protocol=None,
                                  overrides=None, options=None):
        """A ready builder from ``protocols/replicas.yaml``: ``sseff.train``'s protocol of the same name with the
        study's ``architecture`` (default NEP) and ``seeds``, and ``sseff.diffusion``'s for every replica;
        ``overrides``: ``{'seeds': [...], 'architecture': {label: spec}, 'training': {...}, 'diffusion': {...}}``.
        ``training_code`` trains the architecture's kind (neppo / GPUMD nep, or the mace wrapper)."""
        inputs = cls.get_protocol_inputs(protocol, overrides)
        protocol = protocol or cls.get_default_protocol()
        architecture = inputs['architecture']
        kind = next(iter(architecture.values())).get('kind') if len(architecture) == 1 else 'nep'
        no_stress = [d for d in datasets.values() if not d.base.attributes.get('has_virial', False)]
        training = ArchitectureTrainingWorkChain.get_builder_from_protocol(
            training_code if kind == 'nep' else None, training_code if kind == 'mace' else None,
            no_stress[0] if no_stress else next(iter(datasets.values())), architectures=architecture,
            protocol=protocol, overrides=inputs['training'] or None, options=options)
        training_inputs = training._inputs(prune=True)  # noqa: SLF001 - the documented way to nest one builder
        for name in ('metadata', 'dataset', 'seeds'):
            training_inputs.pop(name, None)
        builder = cls.get_builder()
        builder.datasets = dict(datasets)
        builder.seeds = orm.List([int(seed) for seed in inputs['seeds']])
        builder.training = training_inputs
        builder.diffusion.code = diffusion_code
        builder.diffusion.structure = structure
        builder.diffusion.protocol = orm.Str(protocol)
        if inputs['diffusion']:
            builder.diffusion.overrides = orm.Dict(inputs['diffusion'])
        return builder

    def run_training(self):
        futures = {}
        for label, dataset in self.inputs.datasets.items():
            inputs = AttributeDict(self.exposed_inputs(ArchitectureTrainingWorkChain, namespace='training'))
            inputs.dataset = dataset
            inputs.seeds = self.inputs.seeds
            inputs.metadata = {'call_link_label': f'training_{label}'}
            futures[f'training_{label}'] = self.submit(ArchitectureTrainingWorkChain, **inputs)
            self.report(f'submitted sseff.train on {label} <{futures[f"training_{label}"].pk}>')
        return ToContext(**futures)

    def inspect_training(self):
        """Every seed that trained is a replica; a dataset with fewer than 2 replicas has no spread: the study fails."""
        self.ctx.replicas = {}
        architecture = next(iter(self.inputs.training.architectures.get_dict()))
        for label in self.inputs.datasets:
            node = self.ctx[f'training_{label}']
            replicas = dict(node.outputs.replicas[architecture]) if 'replicas' in node.outputs and \
                architecture in node.outputs.replicas else {}
            seeds = [seed_label(seed) for seed in self.inputs.seeds.get_list()
                     if f'{seed_label(seed)}_model' in replicas]
            if not node.is_finished_ok and not seeds:
                return self.exit_codes.ERROR_TRAINING_FAILED.format(dataset=label, message=node.exit_message)
            if len(seeds) < 2:
                return self.exit_codes.ERROR_TOO_FEW_REPLICAS.format(dataset=label, n=len(seeds),
                                                                     message=node.exit_message or 'seeds failed')
            self.ctx.replicas[label] = {seed: (replicas[f'{seed}_model'], replicas[f'{seed}_test_metrics'])
                                        for seed in seeds}
            self.out(f'models.{label}', {seed: model for seed, (model, _) in self.ctx.replicas[label].items()})
            self.out(f'test_metrics.{label}', {seed: m for seed, (_, m) in self.ctx.replicas[label].items()})

    def run_diffusion(self):
        futures = {}
        for label, replicas in self.ctx.replicas.items():
            for seed, (model, _) in replicas.items():
                key = f'diffusion_{label}_{seed}'
                builder = stage_builder(DiffusionWorkChain, self.inputs.diffusion, self.inputs.diffusion.structure,
                                        model=model)
                builder.metadata.call_link_label = key
                futures[key] = self.submit(builder)
                self.report(f'submitted the diffusion of {label} {seed} <{futures[key].pk}>')
        return ToContext(**futures)

    def inspect_diffusion(self):
        """A replica whose MD gave no Arrhenius fit keeps its row with the reason; the study fails only when none
        did (a model can be wrong enough to give no hops: that is a result of the study, not an error)."""
        self.ctx.failures = {}
        n_ok = 0
        for label, replicas in self.ctx.replicas.items():
            good = {}
            for seed in replicas:
                node = self.ctx[f'diffusion_{label}_{seed}']
                if node.is_finished_ok:
                    good[seed] = node.outputs.results
                    n_ok += 1
                else:
                    self.ctx.failures.setdefault(label, {})[seed] = f'[{node.exit_status}] {node.exit_message}'
                    self.report(f'the diffusion of {label} {seed} <{node.pk}> failed: '
                                f'{self.ctx.failures[label][seed]}')
            if good:
                self.out(f'transport.{label}', good)
        if n_ok == 0:
            return self.exit_codes.ERROR_DIFFUSION_FAILED.format(
                message='; '.join(f'{label} {seed}: {text}' for label, seeds in self.ctx.failures.items()
                                  for seed, text in seeds.items()))
        return None

    def tabulate(self):
        nodes = {}
        for label, replicas in self.ctx.replicas.items():
            for seed, (_, metrics) in replicas.items():
                nodes[f'metrics__{label}__{seed}'] = metrics
                if seed not in self.ctx.failures.get(label, {}):
                    nodes[f'transport__{label}__{seed}'] = self.ctx[f'diffusion_{label}_{seed}'].outputs.results
        table = tabulate_replicas(orm.Dict(self.ctx.failures), **nodes, metadata={'call_link_label': 'tabulate'})
        self.out('table', table)
        self.report('replica study:\n' + table['markdown'])


def replica_fits(node) -> dict:
    """``{dataset: {seed label: ArrheniusFit}}`` of a finished study, from its stored ``transport`` outputs (for the
    fit lines of :func:`aiida_sseff.plots.replicas.plot_replica_arrhenius`)."""
    from aiida_sseff.analysis.architectures import stored_arrhenius_fit

    fits = {}
    if 'transport' not in node.outputs:
        return fits
    for dataset, replicas in node.outputs.transport.items():
        fits[dataset] = {seed: stored_arrhenius_fit(results.get_dict()) for seed, results in replicas.items()}
    return fits
