"""``sseff.pipeline``: the main job, the composition of its stages, every step in provenance.

``sseff.sample`` (:class:`SamplingWorkChain`) → ``sseff.label`` (:class:`LabellingWorkChain`) → ``sseff.train.nep``
(:class:`NepTrainingWorkChain`) → ``sseff.diffusion`` (:class:`DiffusionWorkChain`), each exposed in its own input
namespace (aiida-quantumespresso's ``PwBandsWorkChain`` pattern): the pipeline sets only what it hands from one stage
to the next — the structure, the selected candidates, the labelled dataset, the trained model and the cell width it
needs (``min_cell_width_factor`` × the model's cutoff) — and never repeats a step of a stage. Every labeller (CP2K,
VASP, a surrogate) and every MD engine of the stages is reachable. Training and diffusion are optional: a namespace
that is not given is skipped. The optional ``dataset_size`` namespace runs ``sseff.study.dataset_size``
(:class:`~aiida_sseff.workflows.dataset_size.DatasetSizeStudyWorkChain`) on the labelled dataset and the pipeline's
structure: held-out sets, the FPS series, one NEP per size and its transport. ``aiida-sseff demo`` runs sample →
label → dataset-size study on the shipped Li10GeP2S12 cell.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, if_

from aiida_sseff.protocols.utils import ProtocolMixin
from aiida_sseff.workflows.dataset_size import DatasetSizeStudyWorkChain
from aiida_sseff.workflows.diffusion import DiffusionWorkChain
from aiida_sseff.workflows.labelling import LabellingWorkChain, labeller_problem
from aiida_sseff.workflows.sampling import SamplingWorkChain
from aiida_sseff.workflows.training import NepTrainingWorkChain

__all__ = ['SseffPipelineWorkChain']

#: the inputs of each stage that the pipeline computes (handed from the stage before it, or the pipeline's own)
SAMPLING_EXCLUDE = ('structure',)
LABELLING_EXCLUDE = ('structures', 'indices')
TRAINING_EXCLUDE = ('dataset',)
DIFFUSION_EXCLUDE = ('structure', 'model', 'min_cell_width', 'mobile_species')
DATASET_SIZE_EXCLUDE = ('dataset', 'diffusion.structure', 'diffusion.mobile_species', 'diffusion.min_cell_width_factor')


def _validate_mobile_species(value, _):
    from ase.data import chemical_symbols

    if value.value not in chemical_symbols[1:]:
        return f'mobile_species `{value.value}` is not a chemical element symbol (e.g. Li, Na, Mg)'
    return None


def _validate_inputs(inputs, _):
    """What the stages' own validators cannot check before the stage runs: the parts that the pipeline hands over."""
    structure = inputs['structure']
    species = inputs['mobile_species'].value
    symbols = set(structure.get_symbols_set())
    if species not in symbols:
        return (f'the structure ({structure.get_formula()}) holds no {species}, the mobile species: nothing can '
                f'diffuse; give mobile_species, one of {", ".join(sorted(symbols))}')
    if inputs['min_cell_width_factor'].value < 0:
        return f'min_cell_width_factor must be >= 0, got {inputs["min_cell_width_factor"].value}'
    # the sampling stage's own validator, with the structure that the pipeline gives it
    message = SamplingWorkChain.spec().inputs.validator({**inputs['sampling'], 'structure': structure}, None)
    if message:
        return f'sampling: {message}'
    # the labelling stage's checks that need no structures, for the elements the candidates will hold
    message = labeller_problem(inputs['labelling'], sorted(symbols))
    if message:
        return f'labelling: {message}'
    if inputs.get('diffusion') and not inputs.get('training'):
        return 'the diffusion stage needs a trained model: give the training namespace too'
    if inputs.get('dataset_size'):
        # the study's own validator, without the dataset that the labelling stage makes
        message = DatasetSizeStudyWorkChain.spec().inputs.validator(inputs['dataset_size'], None)
        if message:
            return f'dataset_size: {message}'
    return None


class SseffPipelineWorkChain(ProtocolMixin, WorkChain):
    """Sample → label → train NEP → diffusion, each stage its own WorkChain exposed in a namespace."""

    _protocol_file = 'pipeline.yaml'
    # each stage checks its own overrides against its own protocol
    _protocol_open_keys = ('sampling', 'labelling', 'training', 'diffusion', 'dataset_size')

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The electrolyte (periodic cell).')
        spec.input('mobile_species', valid_type=orm.Str, default=lambda: orm.Str('Li'),
                   validator=_validate_mobile_species, help='The diffusing ion (Li, Na, Mg, ...).')
        spec.input('min_cell_width_factor', valid_type=orm.Float, default=lambda: orm.Float(2.0),
                   help='The diffusion MD runs in a cell whose every perpendicular width is at least this × the '
                        "trained model's radial cutoff (replicated if needed); 0: the cell as given.")
        spec.expose_inputs(SamplingWorkChain, namespace='sampling', exclude=SAMPLING_EXCLUDE,
                           namespace_options={'help': 'Inputs of sseff.sample (the structure is the pipeline\'s).'})
        spec.expose_inputs(LabellingWorkChain, namespace='labelling', exclude=LABELLING_EXCLUDE,
                           namespace_options={'help': 'Inputs of sseff.label (structures: the selected candidates).'})
        spec.expose_inputs(NepTrainingWorkChain, namespace='training', exclude=TRAINING_EXCLUDE,
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'Inputs of sseff.train.nep (dataset: the labelled set); '
                                                      'no training without them.'})
        spec.expose_inputs(DiffusionWorkChain, namespace='diffusion', exclude=DIFFUSION_EXCLUDE,
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'Inputs of sseff.diffusion (structure, model, mobile species: '
                                                      'the pipeline\'s); no diffusion without them.'})
        spec.expose_inputs(DatasetSizeStudyWorkChain, namespace='dataset_size', exclude=DATASET_SIZE_EXCLUDE,
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'Inputs of sseff.study.dataset_size (dataset: the labelled set; '
                                                      'diffusion cell and mobile species: the pipeline\'s); no study '
                                                      'without them.'})
        # these validators need what the pipeline hands over (the structure, the model): the pipeline's validator
        # runs the sampling one with the structure filled in; the diffusion stage validates itself when submitted
        spec.inputs['sampling'].validator = None
        spec.inputs['diffusion'].validator = None
        spec.inputs['dataset_size'].validator = None
        spec.inputs.validator = _validate_inputs

        spec.outline(
            cls.run_sampling, cls.inspect_sampling,
            cls.run_labelling, cls.inspect_labelling,
            if_(cls.should_train)(
                cls.run_training, cls.inspect_training,
                if_(cls.should_diffuse)(cls.run_diffusion, cls.inspect_diffusion),
            ),
            if_(cls.should_study_dataset_size)(cls.run_dataset_size, cls.inspect_dataset_size),
        )

        spec.expose_outputs(SamplingWorkChain, namespace='sampling')
        spec.expose_outputs(LabellingWorkChain, namespace='labelling')
        spec.expose_outputs(NepTrainingWorkChain, namespace='training', namespace_options={'required': False})
        spec.expose_outputs(DiffusionWorkChain, namespace='diffusion', namespace_options={'required': False})
        spec.expose_outputs(DatasetSizeStudyWorkChain, namespace='dataset_size', namespace_options={'required': False})

        spec.exit_code(401, 'ERROR_SAMPLING_FAILED', message='The sampling stage (sseff.sample) failed: {message}')
        spec.exit_code(402, 'ERROR_LABELLING_FAILED', message='The labelling stage (sseff.label) failed: {message}')
        spec.exit_code(404, 'ERROR_TRAINING_FAILED', message='The training stage (sseff.train.nep) failed: {message}')
        spec.exit_code(405, 'ERROR_DIFFUSION_FAILED', message='The diffusion stage (sseff.diffusion) failed: {message}')
        spec.exit_code(406, 'ERROR_DATASET_SIZE_FAILED',
                       message='The dataset-size study (sseff.study.dataset_size) failed: {message}')

    @classmethod
    def get_builder_from_protocol(cls, code, structure, protocol=None, overrides=None, options=None,  # noqa: PLR0913
                                  labeller='surrogate', labelling_code=None, training_code=None, diffusion_code=None,
                                  mobile_species=None, sampling_model=None, labelling_model=None,
                                  dataset_size=False):
        """A ready builder: each stage's builder from its own ``get_builder_from_protocol`` with the same protocol name
        (``fast``, ``balanced``, ``stringent``), merged with this protocol's section for the stage and ``overrides``.

        :param code: the ``aiida-sseff-engine`` code of the sampling MD (and of the surrogate labeller by default).
        :param labeller: ``surrogate`` (default; CHGNet unless ``labelling_model`` is given), ``cp2k`` or ``vasp``.
        :param labelling_code: the CP2K or VASP code (the engine code for ``surrogate``, default ``code``).
        :param training_code: GPUMD ``nep`` or ``neppo``; without it there is no training (nor diffusion).
        :param diffusion_code: the engine (CPUNEP) or GPUMD ``gpumd``; needs ``training_code``.
        :param mobile_species: the diffusing ion (default: the protocol's, Li).
        :param dataset_size: run ``sseff.study.dataset_size`` on the labelled set with ``training_code`` and
            ``diffusion_code`` (one NEP per size of the FPS series, each one's transport) INSTEAD of the single
            training and diffusion stages (the study's largest size is that model).
        :param options: ``metadata.options`` of every CalcJob of every stage.
        """
        from aiida_sseff.data.model import MaceModel, NepModel

        if diffusion_code is not None and training_code is None:
            raise ValueError('the diffusion stage needs a trained model: give a training_code too')
        if dataset_size and (training_code is None or diffusion_code is None):
            raise ValueError('the dataset-size study trains and diffuses: give training_code and diffusion_code')
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.structure = structure
        builder.mobile_species = orm.Str(mobile_species or inputs['mobile_species'])
        builder.min_cell_width_factor = orm.Float(inputs['min_cell_width_factor'])

        sampling = SamplingWorkChain.get_builder_from_protocol(
            code, structure, protocol=protocol, overrides=inputs.get('sampling'), options=options, model=sampling_model)
        builder.sampling = _stage_inputs(sampling, SAMPLING_EXCLUDE)

        if labeller == 'surrogate' and labelling_model is not None:
            kind = {NepModel: 'nep', MaceModel: 'mace'}.get(type(labelling_model))
            if kind is None:
                raise ValueError(f'labelling_model must be a NepModel or MaceModel, got {type(labelling_model)}')
            labelling_overrides = {**(inputs.get('labelling') or {})}
            labelling_overrides['surrogate'] = {**labelling_overrides.get('surrogate', {}),
                                                'calculator': {'kind': kind}}
        else:
            labelling_overrides = inputs.get('labelling')
        labelling = LabellingWorkChain.get_builder_from_protocol(
            labelling_code or code, None, labeller=labeller, protocol=protocol, overrides=labelling_overrides,
            options=options, model=labelling_model, elements=sorted(structure.get_symbols_set()))
        builder.labelling = _stage_inputs(labelling, LABELLING_EXCLUDE)

        if dataset_size:
            study = DatasetSizeStudyWorkChain.get_builder_from_protocol(
                training_code, None, diffusion_code, None, protocol=protocol, overrides=inputs.get('dataset_size'),
                options=options)
            builder.dataset_size = _stage_inputs(study, ('dataset',))
            for name in DATASET_SIZE_EXCLUDE[1:]:
                builder.dataset_size['diffusion'].pop(name.split('.', 1)[1], None)
            return builder
        if training_code is not None:
            training = NepTrainingWorkChain.get_builder_from_protocol(
                training_code, None, protocol=protocol, overrides=inputs.get('training'), options=options)
            builder.training = _stage_inputs(training, TRAINING_EXCLUDE)
        if diffusion_code is not None:
            # the trained model is a NEP model: the engine runs it with CPUNEP
            diffusion = DiffusionWorkChain.get_builder_from_protocol(
                diffusion_code, structure, protocol=protocol, overrides=inputs.get('diffusion'), options=options,
                calculator={'kind': 'nep'})
            builder.diffusion = _stage_inputs(diffusion, DIFFUSION_EXCLUDE)
        return builder

    # --- the stages: each one the WorkChain that does it, with the inputs the pipeline computes ---------------------
    def _submit_stage(self, name: str, process_class, exit_code, what: str, **computed):
        """Submit stage ``name`` (its exposed inputs plus ``computed``) as ``self.ctx.<name>``; a refusal by the
        stage's own validator (it sees the computed inputs only now) is the stage's exit code."""
        inputs = AttributeDict(self.exposed_inputs(process_class, namespace=name))
        inputs.update(computed)
        inputs.metadata = {'call_link_label': name}
        try:
            node = self.submit(process_class, **inputs)
        except ValueError as exception:
            return exit_code.format(message=f'invalid {name} inputs: {exception}')
        self.report(f'submitted {what} <{node.pk}>')
        return ToContext(**{name: node})

    def _finish_stage(self, name: str, process_class, exit_code):
        """The stage's exit code when it failed, else its outputs become the pipeline's ``<name>.*`` outputs."""
        node = self.ctx[name]
        if not node.is_finished_ok:
            return exit_code.format(message=_failure(node))
        self.out_many(self.exposed_outputs(node, process_class, namespace=name))
        return None

    def run_sampling(self):
        return self._submit_stage('sampling', SamplingWorkChain, self.exit_codes.ERROR_SAMPLING_FAILED, 'sampling',
                                  structure=self.inputs.structure)

    def inspect_sampling(self):
        return self._finish_stage('sampling', SamplingWorkChain, self.exit_codes.ERROR_SAMPLING_FAILED)

    def run_labelling(self):
        structures = self.ctx.sampling.outputs.selected
        labeller = self.inputs.labelling.labeller.value
        return self._submit_stage('labelling', LabellingWorkChain, self.exit_codes.ERROR_LABELLING_FAILED,
                                  f'labelling ({labeller}) of {structures.n_structures} structures',
                                  structures=structures)

    def inspect_labelling(self):
        return self._finish_stage('labelling', LabellingWorkChain, self.exit_codes.ERROR_LABELLING_FAILED)

    def should_train(self):
        return bool(self.inputs.get('training'))

    def run_training(self):
        return self._submit_stage('training', NepTrainingWorkChain, self.exit_codes.ERROR_TRAINING_FAILED,
                                  'NEP training', dataset=self.ctx.labelling.outputs.dataset)

    def inspect_training(self):
        failed = self._finish_stage('training', NepTrainingWorkChain, self.exit_codes.ERROR_TRAINING_FAILED)
        if failed is None:
            metrics = self.ctx.training.outputs.test_metrics
            self.report(f"trained NEP: test-set force RMSE {metrics['force_mev_per_angstrom']:.1f} meV/Å, energy "
                        f"{metrics['energy_mev_per_atom']:.2f} meV/atom")
        return failed

    def should_diffuse(self):
        return bool(self.inputs.get('diffusion'))

    def run_diffusion(self):
        model = self.ctx.training.outputs.model
        computed = {'structure': self.inputs.structure, 'model': model, 'mobile_species': self.inputs.mobile_species}
        factor = self.inputs.min_cell_width_factor.value
        if factor > 0:
            # the width the trained model needs is known only now: factor × its radial cutoff
            computed['min_cell_width'] = orm.Float(factor * float(model.cutoff[0]))
        return self._submit_stage('diffusion', DiffusionWorkChain, self.exit_codes.ERROR_DIFFUSION_FAILED,
                                  'diffusion of the trained model', **computed)

    def inspect_diffusion(self):
        failed = self._finish_stage('diffusion', DiffusionWorkChain, self.exit_codes.ERROR_DIFFUSION_FAILED)
        if failed is None:
            results = self.ctx.diffusion.outputs.results
            self.report(f"trained NEP: Ea = {results['Ea_eV']:.3f} ± {results['Ea_err_eV']:.3f} eV, "
                        f"σ(300 K) = {1e3 * results['sigma_extrapolated_S_cm']:.3g} mS/cm")
        return failed

    def should_study_dataset_size(self):
        return bool(self.inputs.get('dataset_size'))

    def run_dataset_size(self):
        computed = {'dataset': self.ctx.labelling.outputs.dataset}
        inputs = AttributeDict(self.exposed_inputs(DatasetSizeStudyWorkChain, namespace='dataset_size'))
        diffusion = AttributeDict(inputs.diffusion)
        diffusion.update(structure=self.inputs.structure, mobile_species=self.inputs.mobile_species)
        if self.inputs.min_cell_width_factor.value > 0:
            # every size's model runs in a cell this × its own cutoff wide (sseff.diffusion replicates per model)
            diffusion.min_cell_width_factor = self.inputs.min_cell_width_factor
        computed['diffusion'] = diffusion
        return self._submit_stage('dataset_size', DatasetSizeStudyWorkChain, self.exit_codes.ERROR_DATASET_SIZE_FAILED,
                                  'the dataset-size study', **computed)

    def inspect_dataset_size(self):
        failed = self._finish_stage('dataset_size', DatasetSizeStudyWorkChain,
                                    self.exit_codes.ERROR_DATASET_SIZE_FAILED)
        if failed is None:
            converged = self.ctx.dataset_size.outputs.table['converged']
            self.report(f"dataset-size study: converged size {converged['size']} ({converged['reason']})")
        return failed


def _stage_inputs(builder, exclude) -> dict:
    """The inputs a stage's builder holds, without those the pipeline computes (PwBandsWorkChain's ``_inputs``)."""
    inputs = builder._inputs(prune=True)  # noqa: SLF001 - the documented way to nest one builder in another
    for name in exclude:
        inputs.pop(name, None)
    return inputs


def _failure(node) -> str:
    state = node.process_state.value if node.process_state else 'unknown'
    return f'{node.process_label}<{node.pk}> [{node.exit_status}] {node.exit_message or state}'
