"""``sseff.loop`` (:class:`LoopWorkChain`): active learning that stops when the Li transport has converged.

Every iteration composes the existing work chains, each exposed in its own namespace:

1. ``training`` — ``sseff.train`` (:class:`ArchitectureTrainingWorkChain`, one architecture, NEP by default): a
   committee of one model per seed on the current dataset, all evaluated on ONE fixed test set (held out once, at
   the start), so that the RMSE column compares like with like across iterations;
2. ``diffusion`` — ``sseff.diffusion`` (:class:`DiffusionWorkChain`) of every committee model at the study
   temperatures: D(T) and Ea ± σ of the best model (the one ``sseff.train`` chose on the validation set), and the
   spread of Ea across the replicas;
3. ``exploration`` — ``sseff.sample`` (:class:`SamplingWorkChain`): MD with the best model at the study temperatures;
   its snapshots are the candidates (its selection keeps all of them: ``min_distance`` 0);
4. :func:`committee_disagreement` (each committee model on each candidate, DP-GEN's ``max_devi_f``) and
   :func:`select_in_trust_window` (frames inside the trust window, then FPS away from the dataset, up to the
   per-iteration budget);
5. ``labelling`` — ``sseff.label`` (:class:`LabellingWorkChain`, any labeller) of the selection, merged into the
   dataset by :func:`~aiida_sseff.data.dataset.merge_datasets` (the growth of the dataset is the provenance graph).

After step 2 :func:`loop_iteration` records the iteration's numbers and applies the criterion
(:func:`aiida_sseff.analysis.committee.transport_convergence`): Ea and D at every temperature agree with the previous
iteration within ``n_sigma`` × their combined uncertainty and the replica spread of Ea is at most
``ea_spread_tolerance_eV``. The RMSE on the fixed test set is reported beside, never used to stop. Steps 3–5 run
only while the criterion fails and label budget is left; the loop ends with exit code 0 on convergence, or with
``ERROR_NOT_CONVERGED`` (naming what did not converge) when the budget is spent.

Restart: the state is in ``ctx`` (plain values and stored nodes only), so AiiDA's checkpoints carry it over a daemon
restart. Extension: a new loop given the previous one's ``dataset``, ``test_set`` and ``iterations`` outputs
(``aiida-sseff launch loop --extend PK``) continues from its last iteration with a new budget and labels nothing that
is already labelled.

GPUMD's own committee uncertainty during MD (the ``active`` keyword) is not used: the keyword is not documented in
anything this project ships (calculations/gpumd.py, io/gpumd.py, the reference notes), so exploration runs on the
engine path and the disagreement is evaluated afterwards, here.
"""

from __future__ import annotations

import math

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction, if_, while_

from aiida_sseff.data.dataset import LabelledDataset, merge_datasets, subset_dataset
from aiida_sseff.data.model import MaceModel, NepModel
from aiida_sseff.protocols.utils import ProtocolMixin
from aiida_sseff.utils import json_safe
from aiida_sseff.workflows.architectures import ArchitectureTrainingWorkChain
from aiida_sseff.workflows.diffusion import DiffusionWorkChain
from aiida_sseff.workflows.labelling import LabellingWorkChain, labeller_problem
from aiida_sseff.workflows.sampling import SamplingWorkChain
from aiida_sseff.workflows.training import split_train_validation_test

__all__ = ['LoopWorkChain', 'committee_disagreement', 'loop_iteration', 'loop_summary', 'select_in_trust_window']

#: inputs of each composed work chain that the loop computes
TRAINING_EXCLUDE = ('dataset', 'train', 'validation', 'test')
EXPLORATION_EXCLUDE = ('structure', 'candidates', 'seed_set', 'md.temperatures', 'md.md.model')
INITIAL_EXCLUDE = ('structure',)
LABELLING_EXCLUDE = ('structures', 'indices')
DIFFUSION_EXCLUDE = ('structure', 'model', 'temperatures', 'mobile_species')
#: the table's columns (:func:`loop_summary` rows), also read by the CLI, the plot and the report
ROW_KEYS = ('iteration', 'n_structures', 'labels_added', 'disagreement_mean_eV_A', 'disagreement_max_eV_A',
            'force_rmse_mev_A', 'energy_rmse_mev_atom', 'Ea_eV', 'Ea_err_eV', 'ea_replica_spread_eV', 'D')


# --- calcfunctions ----------------------------------------------------------------------------------------------------
@calcfunction
def committee_disagreement(candidates: LabelledDataset, **models: orm.Data) -> orm.Dict:
    """Each committee model (NepModel by calorine's CPUNEP, MaceModel by mace-torch; one calculator per model, reused
    for every frame) on each candidate: per frame DP-GEN's ``max_devi_f``
    (:func:`aiida_sseff.analysis.committee.max_force_deviation`).

    :returns: Dict ``deviations`` (eV/Å, one per candidate), ``mean``, ``max``, ``min``, ``models`` (link labels),
        ``definition``.
    """
    import numpy as np

    from aiida_sseff.analysis.committee import DEVIATION_DEFINITION, committee_forces, max_force_deviation

    names = sorted(models)
    calculators = [models[name].get_calculator() for name in names]
    deviations = max_force_deviation(committee_forces(candidates.get_ase(), calculators))
    return orm.Dict({'deviations': [float(v) for v in deviations], 'mean': float(np.mean(deviations)),
                     'max': float(np.max(deviations)), 'min': float(np.min(deviations)), 'models': names,
                     'definition': DEVIATION_DEFINITION})


@calcfunction
def select_in_trust_window(candidates: LabelledDataset, disagreement: orm.Dict, window: orm.List,
                           n_structures: orm.Int, seed_set: LabelledDataset) -> dict:
    """Frames whose committee deviation lies in ``window`` [lower, upper) eV/Å, then up to ``n_structures`` of them
    by FPS away from ``seed_set`` (:func:`aiida_sseff.analysis.committee.select_candidates`).

    :returns: ``indices`` (List, possibly empty) and ``report`` (Dict: counts below/inside/above, picked deviations).
    """
    from aiida_sseff.analysis.committee import select_candidates

    lower, upper = (float(v) for v in window.get_list())
    result = select_candidates(candidates.get_ase(), disagreement['deviations'], lower, upper, n_structures.value,
                               seed_structures=seed_set.get_ase())
    return {'indices': orm.List(result['indices']), 'report': orm.Dict(json_safe(result))}


def _transport_numbers(results: dict, diffusion: orm.ArrayData) -> dict:
    temperatures = diffusion.get_array('temperature_K')
    d = diffusion.get_array('D_cm2_s')
    d_err = diffusion.get_array('D_err_cm2_s')
    return {'Ea_eV': results.get('Ea_eV'), 'Ea_err_eV': results.get('Ea_err_eV'),
            'D': {f'{float(t):g}': [float(v), float(e)] for t, v, e in zip(temperatures, d, d_err, strict=True)}}


@calcfunction
def loop_iteration(iteration: orm.Int, dataset: LabelledDataset, labels_added: orm.Int, criterion: orm.Dict,
                   best_results: orm.Dict, best_diffusion: orm.ArrayData, test_metrics: orm.Dict,
                   previous: orm.Dict | None = None, **replica_results: orm.Dict) -> orm.Dict:
    """One row of the loop's table and the stopping criterion applied to it.

    ``best_*``: the diffusion outputs of the committee's best model; ``replica_results``: the ``results`` of every
    committee model whose diffusion finished (its Ea gives the replica spread); ``previous``: the previous row, or
    the ``iterations`` table of the loop this one extends (its last row is then the previous iteration); none in a
    fresh loop's first iteration; ``criterion``: ``n_sigma``, ``ea_spread_tolerance_eV``. Returns the row
    (:data:`ROW_KEYS`, disagreement filled in later by :func:`loop_summary`) with ``replica_Ea_eV`` and
    ``convergence`` (:func:`aiida_sseff.analysis.committee.transport_convergence`).
    """
    from aiida_sseff.analysis.committee import replica_spread, transport_convergence

    transport = _transport_numbers(best_results.get_dict(), best_diffusion)
    replica_ea = {key: node.get('Ea_eV') for key, node in sorted(replica_results.items())}
    transport['ea_replica_spread_eV'] = replica_spread(list(replica_ea.values()))
    rule = criterion.get_dict()
    before = previous.get_dict() if previous is not None else None
    if before is not None and 'rows' in before:  # the table of the loop this one extends
        before = before['rows'][-1] if before['rows'] else None
    convergence = transport_convergence(before, transport,
                                        float(rule['n_sigma']), float(rule['ea_spread_tolerance_eV']))
    row = {'iteration': iteration.value, 'n_structures': dataset.n_structures, 'labels_added': labels_added.value,
           'force_rmse_mev_A': test_metrics.get('force_mev_per_angstrom'),
           'energy_rmse_mev_atom': test_metrics.get('energy_mev_per_atom'),
           **transport, 'replica_Ea_eV': replica_ea, 'convergence': convergence}
    return orm.Dict(json_safe(row))


@calcfunction
def loop_summary(criterion: orm.Dict, outcome: orm.Str, **nodes: orm.Dict) -> orm.Dict:
    """The per-iteration table of the loop: ``rows`` from the ``iteration_<n>`` records (oldest first, the previous
    loop's rows first when extending: ``previous``), each with the committee disagreement of the candidates explored
    after it (``disagreement_<n>``); ``criterion`` (its thresholds), ``outcome`` (``converged`` or the budget message),
    ``converged``, ``labels_used`` (by this loop)."""
    rows = [dict(row) for row in nodes['previous']['rows']] if 'previous' in nodes else []
    own = sorted((int(key.split('_')[1]), node) for key, node in nodes.items() if key.startswith('iteration_'))
    for _, node in own:
        row = node.get_dict()
        row['disagreement_mean_eV_A'] = row['disagreement_max_eV_A'] = None
        rows.append(row)
    # the exploration after iteration n (an extension explores after the previous loop's last iteration first)
    for row in rows:
        disagreement = nodes.get(f"disagreement_{int(row['iteration']):03d}")
        if disagreement is not None:
            row['disagreement_mean_eV_A'], row['disagreement_max_eV_A'] = disagreement['mean'], disagreement['max']
    labels_used = sum(int(node['labels_added']) for _, node in own)
    last = rows[-1]['convergence'] if rows else {'converged': False}
    return orm.Dict(json_safe({'rows': rows, 'criterion': criterion.get_dict(), 'outcome': outcome.value,
                               'converged': bool(last['converged']), 'labels_used': labels_used,
                               'columns': list(ROW_KEYS)}))


def _fmt(value, spec: str = '.3f') -> str:
    return 'n/a' if value is None else format(value, spec)


# --- validation -------------------------------------------------------------------------------------------------------
def _positive_int(inputs, name: str, minimum: int = 1) -> str | None:
    if name in inputs and inputs[name].value < minimum:
        return f'{name} must be at least {minimum}; got {inputs[name].value}'
    return None


def _validate_inputs(inputs, _):  # noqa: PLR0911 - one sentence per bad input
    structure = inputs['structure']
    symbols = set(structure.get_symbols_set())
    species = inputs['mobile_species'].value
    if species not in symbols:
        return f'the structure ({structure.get_formula()}) holds no {species}, the mobile species'
    temperatures = inputs['temperatures'].get_list()
    if len(temperatures) < 2 or len(set(map(float, temperatures))) != len(temperatures) or \
            any(not float(t) > 0 for t in temperatures):
        return f'temperatures: at least 2 distinct positive temperatures (K) are needed for Ea; got {temperatures}'
    for name in ('n_per_iteration', 'max_labels', 'max_iterations'):
        message = _positive_int(inputs, name)
        if message:
            return message
    window = inputs['trust_window'].get_list()
    if len(window) != 2 or not all(isinstance(v, int | float) for v in window) or not \
            (math.isfinite(window[0]) and window[0] >= 0 and window[1] > window[0]):
        return f'trust_window must be [lower, upper] with 0 <= lower < upper (eV/Å); got {window}'
    criterion = inputs['criterion'].get_dict()
    if set(criterion) != {'n_sigma', 'ea_spread_tolerance_eV'}:
        return f'criterion must have exactly the keys n_sigma and ea_spread_tolerance_eV; got {sorted(criterion)}'
    if any(not (isinstance(v, int | float) and math.isfinite(v) and v >= 0) for v in criterion.values()):
        return f'criterion values must be finite numbers >= 0; got {criterion}'
    if 'dataset' not in inputs and not inputs.get('initial_sampling'):
        return 'give the initial labelled `dataset` or `initial_sampling` (the candidates of the first dataset)'
    if 'dataset' in inputs and not inputs['dataset'].has_labels:
        return 'dataset must be labelled (energies and forces): it is the training set of the first committee'
    extension = [name for name in ('dataset', 'test_set', 'committee', 'committee_model') if inputs.get(name)]
    if 'iterations' in inputs:
        missing = [name for name in ('dataset', 'test_set', 'committee', 'committee_model') if name not in extension]
        if missing:
            return f'extending a loop (`iterations`) needs its {", ".join(missing)} too'
        if inputs['committee_model'].uuid not in {model.uuid for model in inputs['committee'].values()}:
            return 'committee_model must be one of the committee models'
        if len(inputs['committee']) < 2:
            return 'committee: a committee of one model has no disagreement'
    elif 'committee' in extension or 'committee_model' in extension:
        return 'committee and committee_model continue a loop: give its `iterations` too'
    training = inputs['training']
    architectures = training['architectures'].get_dict() if 'architectures' in training else {}
    if len(architectures) != 1:
        return f'training.architectures must hold exactly one architecture (the committee\'s); got {sorted(architectures)}'
    if len(training['seeds'].get_list()) < 2:
        return 'training.seeds must give at least two seeds: a committee of one model has no disagreement'
    message = labeller_problem(inputs['labelling'], sorted(symbols))
    if message:
        return f'labelling: {message}'
    exploration = {**inputs['exploration'], 'structure': structure,
                   'md': {**inputs['exploration'].get('md', {}), 'temperatures': inputs['temperatures']}}
    message = SamplingWorkChain.spec().inputs.validator(exploration, None)
    if message:
        return f'exploration: {message}'
    if inputs.get('initial_sampling'):
        message = SamplingWorkChain.spec().inputs.validator({**inputs['initial_sampling'], 'structure': structure},
                                                            None)
        if message:
            return f'initial_sampling: {message}'
    return None


# --- the work chain ---------------------------------------------------------------------------------------------------
class LoopWorkChain(ProtocolMixin, WorkChain):
    """Train a committee → transport → (explore → select by disagreement and FPS → label → merge) until D(T) and Ea
    agree across iterations and replicas, or the label budget is spent."""

    _protocol_file = 'loop.yaml'
    _protocol_open_keys = ('initial_sampling', 'exploration', 'labelling', 'training', 'diffusion')

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The electrolyte (periodic cell).')
        spec.input('mobile_species', valid_type=orm.Str, default=lambda: orm.Str('Li'), help='The diffusing ion.')
        spec.input('temperatures', valid_type=orm.List,
                   help='Study temperatures (K): the exploration MD and the diffusion runs (at least 2, for Ea).')
        spec.input('dataset', valid_type=LabelledDataset, required=False,
                   help='The initial labelled dataset (else `initial_sampling` is labelled first).')
        spec.input('test_set', valid_type=LabelledDataset, required=False,
                   help='The fixed test set of the RMSE column (else `test_fraction` of the initial dataset).')
        spec.input('test_fraction', valid_type=orm.Float, default=lambda: orm.Float(0.15),
                   help='Share of the initial dataset held out once as the fixed test set.')
        spec.input('iterations', valid_type=orm.Dict, required=False,
                   help='The `iterations` output of a previous loop: this one extends it (its last row is the '
                        'previous iteration of the criterion); give its `dataset` and `test_set` too.')
        spec.input('n_per_iteration', valid_type=orm.Int, help='Labelling budget per iteration (structures).')
        spec.input('max_labels', valid_type=orm.Int, help='Total labelling budget of this loop (structures).')
        spec.input('max_iterations', valid_type=orm.Int, default=lambda: orm.Int(10),
                   help='At most this many committee trainings.')
        spec.input('trust_window', valid_type=orm.List,
                   help='[lower, upper) of the committee force deviation max_devi_f (eV/Å) of frames worth labelling.')
        spec.input('criterion', valid_type=orm.Dict,
                   help='{"n_sigma": k, "ea_spread_tolerance_eV": s}: converged when Ea and every D agree with the '
                        'previous iteration within k × the combined uncertainty, and the std of Ea over the replicas '
                        'is at most s.')
        spec.input_namespace('committee', valid_type=(NepModel, MaceModel), dynamic=True, required=False,
                             help='Extending a loop: its last committee (its `committee` output); the new loop starts '
                                  'by exploring with it, so the last iteration is neither retrained nor relabelled.')
        spec.input('committee_model', valid_type=(NepModel, MaceModel), required=False,
                   help='Extending a loop: its best committee model (its `model` output).')
        spec.input('seed', valid_type=orm.Int, default=lambda: orm.Int(1), help='Seed of the test-set hold-out.')
        spec.expose_inputs(SamplingWorkChain, namespace='initial_sampling', exclude=INITIAL_EXCLUDE,
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'sseff.sample for the first dataset (without `dataset`).'})
        spec.expose_inputs(SamplingWorkChain, namespace='exploration', exclude=EXPLORATION_EXCLUDE,
                           namespace_options={'help': 'sseff.sample of the exploration MD (model: the best '
                                                      'committee model; temperatures: the loop\'s).'})
        spec.expose_inputs(LabellingWorkChain, namespace='labelling', exclude=LABELLING_EXCLUDE,
                           namespace_options={'help': 'sseff.label of the selected frames (any labeller).'})
        spec.expose_inputs(ArchitectureTrainingWorkChain, namespace='training', exclude=TRAINING_EXCLUDE,
                           namespace_options={'help': 'sseff.train of the committee: one architecture, one model '
                                                      'per seed.'})
        spec.expose_inputs(DiffusionWorkChain, namespace='diffusion', exclude=DIFFUSION_EXCLUDE,
                           namespace_options={'help': 'sseff.diffusion of every committee model.'})
        # these need what the loop hands over (structure, dataset, model): checked by _validate_inputs with them, or
        # by the child when it is submitted (a refusal is then the loop's exit code)
        for name in ('initial_sampling', 'exploration', 'training', 'diffusion'):
            spec.inputs[name].validator = None
        spec.inputs.validator = _validate_inputs

        spec.outline(
            cls.setup,
            if_(cls.needs_initial_dataset)(
                cls.run_initial_sampling, cls.inspect_initial_sampling,
                cls.run_initial_labelling, cls.inspect_initial_labelling,
            ),
            cls.hold_out_test_set,
            if_(cls.extends_a_loop)(
                cls.resume_committee,
                cls.run_exploration, cls.inspect_exploration,
                if_(cls.has_selection)(cls.run_labelling, cls.inspect_labelling),
            ),
            while_(cls.should_iterate)(
                cls.run_training, cls.inspect_training,
                cls.run_transport, cls.inspect_transport,
                if_(cls.should_add_labels)(
                    cls.run_exploration, cls.inspect_exploration,
                    if_(cls.has_selection)(cls.run_labelling, cls.inspect_labelling),
                ),
            ),
            cls.finalise,
        )

        spec.output('dataset', valid_type=LabelledDataset, help='The final training pool (initial + added labels).')
        spec.output('test_set', valid_type=LabelledDataset, help='The fixed test set of the RMSE column.')
        spec.output('model', valid_type=(NepModel, MaceModel), help='The best committee model of the last iteration.')
        spec.output_namespace('committee', valid_type=(NepModel, MaceModel), dynamic=True,
                              help='The committee of the last iteration (seed_<n>): with `model`, `dataset`, '
                                   '`test_set` and `iterations` the inputs of an extension.')
        spec.output('transport', valid_type=orm.Dict, required=False,
                    help='sseff.diffusion `results` of that model (absent when an extension stopped before training).')
        spec.output('iterations', valid_type=orm.Dict,
                    help='The per-iteration table (rows), the criterion, its thresholds and the outcome.')

        spec.exit_code(401, 'ERROR_INITIAL_DATASET_FAILED', message='The initial dataset could not be made: {message}')
        spec.exit_code(402, 'ERROR_TRAINING_FAILED', message='The committee training (sseff.train) failed: {message}')
        spec.exit_code(403, 'ERROR_TRANSPORT_FAILED',
                       message='The diffusion of the best committee model (sseff.diffusion) failed: {message}')
        spec.exit_code(404, 'ERROR_EXPLORATION_FAILED', message='The exploration MD (sseff.sample) failed: {message}')
        spec.exit_code(405, 'ERROR_LABELLING_FAILED', message='The labelling (sseff.label) failed: {message}')
        spec.exit_code(410, 'ERROR_NOT_CONVERGED',
                       message='Transport not converged when the budget was spent ({budget}): {what}')
        spec.exit_code(411, 'ERROR_NO_FRAME_IN_TRUST_WINDOW',
                       message='No explored frame has a committee deviation in the trust window {window} eV/Å '
                               '({n_below} below, {n_above} above): nothing to label; widen the window or explore '
                               'differently')

    # --- protocol ---------------------------------------------------------------------------------------------------
    @classmethod
    def get_builder_from_protocol(cls, code, structure, protocol=None, overrides=None, options=None,  # noqa: PLR0913
                                  labeller='surrogate', labelling_code=None, training_code=None, dataset=None,
                                  labelling_model=None):
        """A ready builder: each composed work chain from its own ``get_builder_from_protocol`` with the same protocol
        name, merged with this protocol's section for it (``protocols/loop.yaml``) and ``overrides``.

        :param code: the ``aiida-sseff-engine`` code (exploration MD, diffusion MD, the surrogate labeller).
        :param training_code: ``neppo`` or GPUMD ``nep`` (the committee's trainer).
        :param dataset: an initial labelled dataset; without it the protocol's ``initial_sampling`` is labelled first.
        :param labeller: ``surrogate`` (CHGNet unless ``labelling_model``), ``cp2k`` or ``vasp``.
        """
        from aiida_sseff.workflows.pipeline import _stage_inputs

        if training_code is None:
            raise ValueError('the loop trains a committee: give training_code (neppo or GPUMD nep)')
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.structure = structure
        builder.mobile_species = orm.Str(inputs['mobile_species'])
        builder.temperatures = orm.List([float(t) for t in inputs['temperatures']])
        for name in ('n_per_iteration', 'max_labels', 'max_iterations', 'seed'):
            builder[name] = orm.Int(inputs[name])
        builder.test_fraction = orm.Float(inputs['test_fraction'])
        builder.trust_window = orm.List([float(v) for v in inputs['trust_window']])
        builder.criterion = orm.Dict({key: float(value) for key, value in inputs['criterion'].items()})
        if dataset is not None:
            builder.dataset = dataset
        else:
            initial = SamplingWorkChain.get_builder_from_protocol(
                code, structure, protocol=protocol, overrides=inputs['initial_sampling'], options=options)
            builder.initial_sampling = _stage_inputs(initial, INITIAL_EXCLUDE)
        exploration = SamplingWorkChain.get_builder_from_protocol(
            code, structure, protocol=protocol, overrides=inputs['exploration'], options=options)
        exploration = _stage_inputs(exploration, ('structure',))
        exploration['md'].pop('temperatures', None)
        exploration['md']['md']['calculator'] = orm.Dict({'kind': 'nep'})
        builder.exploration = exploration

        labelling_overrides = dict(inputs['labelling'])
        if labeller == 'surrogate' and labelling_model is not None:
            kind = {NepModel: 'nep', MaceModel: 'mace'}.get(type(labelling_model))
            if kind is None:
                raise ValueError(f'labelling_model must be a NepModel or MaceModel, got {type(labelling_model)}')
            labelling_overrides['surrogate'] = {**labelling_overrides.get('surrogate', {}), 'calculator': {'kind': kind}}
        labelling = LabellingWorkChain.get_builder_from_protocol(
            labelling_code or code, None, labeller=labeller, protocol=protocol, overrides=labelling_overrides,
            options=options, model=labelling_model, elements=sorted(structure.get_symbols_set()))
        builder.labelling = _stage_inputs(labelling, LABELLING_EXCLUDE)

        training = ArchitectureTrainingWorkChain.get_builder_from_protocol(
            nep_code=training_code, dataset=dataset, architectures=inputs['architectures'], protocol=protocol,
            overrides=inputs['training'], options=options)
        builder.training = _stage_inputs(training, TRAINING_EXCLUDE)

        diffusion = DiffusionWorkChain.get_builder_from_protocol(
            code, structure, protocol=protocol, overrides=inputs['diffusion'], options=options,
            calculator={'kind': 'nep'})
        builder.diffusion = _stage_inputs(diffusion, DIFFUSION_EXCLUDE)
        return builder

    # --- helpers ----------------------------------------------------------------------------------------------------
    def _submit(self, name: str, process_class, exit_code, link: str, **computed):
        inputs = AttributeDict(self.exposed_inputs(process_class, namespace=name))
        inputs.update(computed)
        inputs.metadata = {'call_link_label': link}
        try:
            return self.submit(process_class, **inputs), None
        except ValueError as exception:
            return None, exit_code.format(message=f'invalid {name} inputs: {exception}')

    @staticmethod
    def _failure(node) -> str:
        state = node.process_state.value if node.process_state else 'unknown'
        return f'{node.process_label}<{node.pk}> [{node.exit_status}] {node.exit_message or state}'

    def _last_record(self) -> orm.Dict:
        return self.ctx.records[max(self.ctx.records)]

    # --- steps ------------------------------------------------------------------------------------------------------
    def setup(self):
        self.ctx.iteration = 0
        self.ctx.labels_used = 0
        self.ctx.labels_added = 0
        self.ctx.converged = False
        self.ctx.stop = False
        self.ctx.empty_window = None
        self.ctx.records = {}
        self.ctx.disagreements = {}
        # the previous iteration of the criterion: the previous loop's table when extending one (its last row)
        self.ctx.previous = self.inputs.get('iterations')
        if self.ctx.previous is not None and self.ctx.previous['rows']:
            self.ctx.iteration = int(self.ctx.previous['rows'][-1]['iteration']) + 1
        self.ctx.first_iteration = self.ctx.iteration
        self.ctx.dataset = self.inputs.get('dataset')

    def extends_a_loop(self):
        return 'committee' in self.inputs and bool(self.inputs.committee)

    def resume_committee(self):
        """The previous loop's last committee explores first: its last iteration is not trained again."""
        self.ctx.committee = dict(self.inputs.committee)
        self.ctx.best_model = self.inputs.committee_model
        self.report(f'extending a loop from its iteration {self.ctx.iteration - 1} with its committee of '
                    f'{len(self.ctx.committee)} models')

    def needs_initial_dataset(self):
        return 'dataset' not in self.inputs

    def run_initial_sampling(self):
        node, failed = self._submit('initial_sampling', SamplingWorkChain,
                                    self.exit_codes.ERROR_INITIAL_DATASET_FAILED, 'initial_sampling',
                                    structure=self.inputs.structure)
        if failed:
            return failed
        self.report(f'submitted the initial sampling <{node.pk}>')
        return ToContext(initial_sampling=node)

    def inspect_initial_sampling(self):
        node = self.ctx.initial_sampling
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_INITIAL_DATASET_FAILED.format(message=self._failure(node))
        return None

    def run_initial_labelling(self):
        structures = self.ctx.initial_sampling.outputs.selected
        node, failed = self._submit('labelling', LabellingWorkChain, self.exit_codes.ERROR_INITIAL_DATASET_FAILED,
                                    'initial_labelling', structures=structures)
        if failed:
            return failed
        self.report(f'submitted the labelling of {structures.n_structures} initial structures <{node.pk}>')
        return ToContext(initial_labelling=node)

    def inspect_initial_labelling(self):
        node = self.ctx.initial_labelling
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_INITIAL_DATASET_FAILED.format(message=self._failure(node))
        self.ctx.dataset = node.outputs.dataset
        return None

    def hold_out_test_set(self):
        """The fixed test set: given, or held out once from the initial dataset (the pool keeps the rest)."""
        if 'test_set' in self.inputs:
            self.ctx.test_set = self.inputs.test_set
            return None
        try:
            split = split_train_validation_test(self.ctx.dataset, orm.Float(0.0), self.inputs.test_fraction,
                                                self.inputs.seed, metadata={'call_link_label': 'hold_out_test_set'})
        except ValueError as exception:
            return self.exit_codes.ERROR_INITIAL_DATASET_FAILED.format(message=str(exception))
        self.ctx.dataset, self.ctx.test_set = split['train'], split['test']
        return None

    def should_iterate(self):
        return not self.ctx.stop and self.ctx.iteration - self.ctx.first_iteration < self.inputs.max_iterations.value

    def run_training(self):
        node, failed = self._submit('training', ArchitectureTrainingWorkChain, self.exit_codes.ERROR_TRAINING_FAILED,
                                    f'training_{self.ctx.iteration:03d}', dataset=self.ctx.dataset,
                                    test=self.ctx.test_set)
        if failed:
            return failed
        self.report(f'iteration {self.ctx.iteration}: committee training on {self.ctx.dataset.n_structures} '
                    f'structures <{node.pk}>')
        return ToContext(training=node)

    def inspect_training(self):
        node = self.ctx.training
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_TRAINING_FAILED.format(message=self._failure(node))
        label = next(iter(node.outputs.models))
        self.ctx.architecture = label
        self.ctx.best_model = node.outputs.models[label]
        replicas = node.outputs.replicas[label]
        self.ctx.committee = {key[:-len('_model')]: replicas[key] for key in replicas if key.endswith('_model')}
        return None

    def run_transport(self):
        jobs = {}
        for name, model in sorted(self.ctx.committee.items()):
            node, failed = self._submit('diffusion', DiffusionWorkChain, self.exit_codes.ERROR_TRANSPORT_FAILED,
                                        f'diffusion_{self.ctx.iteration:03d}_{name}', structure=self.inputs.structure,
                                        model=model, temperatures=self.inputs.temperatures,
                                        mobile_species=self.inputs.mobile_species)
            if failed:
                return failed
            jobs[f'diffusion_{name}'] = node
        self.ctx.diffusion_keys = sorted(jobs)
        return ToContext(**jobs)

    def inspect_transport(self):
        best_name = next(name for name, model in self.ctx.committee.items() if model.uuid == self.ctx.best_model.uuid)
        best = self.ctx[f'diffusion_{best_name}']
        if not best.is_finished_ok:
            return self.exit_codes.ERROR_TRANSPORT_FAILED.format(message=self._failure(best))
        finished = {}
        for key in self.ctx.diffusion_keys:
            node = self.ctx[key]
            if node.is_finished_ok:
                finished[key[len('diffusion_'):]] = node.outputs.results
            else:
                self.report(f'diffusion of {key} failed ({self._failure(node)}): left out of the replica spread')
        inputs = {'iteration': orm.Int(self.ctx.iteration), 'dataset': self.ctx.dataset,
                  'labels_added': orm.Int(self.ctx.labels_added),
                  'criterion': self.inputs.criterion, 'best_results': best.outputs.results,
                  'best_diffusion': best.outputs.diffusion,
                  'test_metrics': self.ctx.training.outputs.test_metrics[self.ctx.architecture], **finished}
        if self.ctx.previous is not None:
            inputs['previous'] = self.ctx.previous
        record = loop_iteration(**inputs, metadata={'call_link_label': f'iteration_{self.ctx.iteration:03d}'})
        self.ctx.records[f'iteration_{self.ctx.iteration:03d}'] = record
        self.ctx.previous = record
        self.ctx.converged = record['convergence']['converged']
        self.report(f"iteration {self.ctx.iteration}: Ea = {_fmt(record['Ea_eV'])} ± {_fmt(record['Ea_err_eV'])} eV, "
                    f"replica spread {_fmt(record['ea_replica_spread_eV'])} eV, test force RMSE "
                    f"{_fmt(record['force_rmse_mev_A'], '.1f')} meV/Å; "
                    + ('converged' if self.ctx.converged else
                       'not converged: ' + ', '.join(record['convergence']['not_converged'])))
        self.ctx.iteration += 1
        if self.ctx.converged or self.ctx.labels_used >= self.inputs.max_labels.value:
            self.ctx.stop = True
        return None

    def should_add_labels(self):
        return not self.ctx.stop and self.ctx.iteration - self.ctx.first_iteration < self.inputs.max_iterations.value

    def run_exploration(self):
        model = self.ctx.best_model
        md = AttributeDict(self.exposed_inputs(SamplingWorkChain, namespace='exploration')['md'])
        md['temperatures'] = self.inputs.temperatures
        md['md'] = {**md['md'], 'model': model,
                    'calculator': orm.Dict({'kind': 'nep' if isinstance(model, NepModel) else 'mace'})}
        node, failed = self._submit('exploration', SamplingWorkChain, self.exit_codes.ERROR_EXPLORATION_FAILED,
                                    f'exploration_{self.ctx.iteration - 1:03d}', structure=self.inputs.structure,
                                    md=md)
        if failed:
            return failed
        return ToContext(exploration=node)

    def inspect_exploration(self):
        node = self.ctx.exploration
        number = self.ctx.iteration - 1
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_EXPLORATION_FAILED.format(message=self._failure(node))
        candidates = node.outputs.candidates
        disagreement = committee_disagreement(candidates, **self.ctx.committee,
                                              metadata={'call_link_label': f'disagreement_{number:03d}'})
        self.ctx.disagreements[f'disagreement_{number:03d}'] = disagreement
        budget = min(self.inputs.n_per_iteration.value, self.inputs.max_labels.value - self.ctx.labels_used)
        selection = select_in_trust_window(candidates, disagreement, self.inputs.trust_window, orm.Int(budget),
                                           self.ctx.dataset, metadata={'call_link_label': f'select_{number:03d}'})
        report = selection['report']
        self.report(f"iteration {number}: {candidates.n_structures} candidates, deviation mean "
                    f"{disagreement['mean']:.3f} max {disagreement['max']:.3f} eV/Å; {report['n_inside']} in the "
                    f"trust window, {len(selection['indices'].get_list())} selected")
        if not selection['indices'].get_list():
            # the loop ends here, with its table: finalise returns this exit code
            self.ctx.stop = True
            self.ctx.empty_window = {'window': report['window'], 'n_below': report['n_below'],
                                     'n_above': report['n_above']}
            return None
        self.ctx.selected = subset_dataset(candidates, selection['indices'],
                                           metadata={'call_link_label': f'selected_{number:03d}'})
        return None

    def has_selection(self):
        return not self.ctx.empty_window

    def run_labelling(self):
        node, failed = self._submit('labelling', LabellingWorkChain, self.exit_codes.ERROR_LABELLING_FAILED,
                                    f'labelling_{self.ctx.iteration - 1:03d}', structures=self.ctx.selected)
        if failed:
            return failed
        return ToContext(labelling=node)

    def inspect_labelling(self):
        node = self.ctx.labelling
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_LABELLING_FAILED.format(message=self._failure(node))
        added = node.outputs.dataset
        self.ctx.dataset = merge_datasets(part_000=self.ctx.dataset, part_001=added,
                                          metadata={'call_link_label': f'merge_{self.ctx.iteration - 1:03d}'})
        self.ctx.labels_added = added.n_structures
        self.ctx.labels_used += added.n_structures
        self.report(f'added {added.n_structures} labelled structures: the dataset has {self.ctx.dataset.n_structures}')
        return None

    def finalise(self):
        rule = self.inputs.criterion.get_dict()
        if self.ctx.converged:
            outcome = 'converged: Ea and D(T) agree with the previous iteration and the replica spread of Ea is ' \
                      'within tolerance'
        elif self.ctx.empty_window:
            outcome = f"stopped: no explored frame in the trust window {self.ctx.empty_window['window']} eV/Å"
        else:
            what = ', '.join(self._last_record()['convergence']['not_converged'])
            outcome = f'not converged ({what})'
        nodes = {**self.ctx.records, **self.ctx.disagreements}
        if 'iterations' in self.inputs:
            nodes['previous'] = self.inputs.iterations
        summary = loop_summary(orm.Dict(rule), orm.Str(outcome), **nodes, metadata={'call_link_label': 'summary'})
        self.out('iterations', summary)
        self.out('dataset', self.ctx.dataset)
        self.out('test_set', self.ctx.test_set)
        self.out('model', self.ctx.best_model)
        for name, model in self.ctx.committee.items():
            self.out(f'committee.{name}', model)
        best_name = next(name for name, model in self.ctx.committee.items() if model.uuid == self.ctx.best_model.uuid)
        if f'diffusion_{best_name}' in self.ctx and self.ctx.records:  # an extension may stop before it trains
            self.out('transport', self.ctx[f'diffusion_{best_name}'].outputs.results)
        if self.ctx.empty_window:
            return self.exit_codes.ERROR_NO_FRAME_IN_TRUST_WINDOW.format(**self.ctx.empty_window)
        if not self.ctx.converged:
            return self.exit_codes.ERROR_NOT_CONVERGED.format(
                budget=f'{self.ctx.labels_used} of {self.inputs.max_labels.value} labels, '
                       f'{self.ctx.iteration - self.ctx.first_iteration} iterations',
                what=', '.join(self._last_record()['convergence']['not_converged']))
        self.report(f'converged after {self.ctx.iteration - self.ctx.first_iteration} iterations and '
                    f'{self.ctx.labels_used} labels')
        return None

