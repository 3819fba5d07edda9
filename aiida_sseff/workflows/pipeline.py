"""``sseff.pipeline``: the main job. Sample an SSE by MD at several temperatures, select, label, train a NEP model —
all in provenance. ``aiida-sseff demo`` runs it on the shipped Li10GeP2S12 cell.

Each optional stage runs when its code is given (``training.code``); the stage's own WorkChain is built at run time
from its protocol name and overrides (inputs of this WorkChain, so they are in provenance) and the dataset made here.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction, if_

from aiida_sseff.calculations.engine import EngineLabelCalculation, EngineMdCalculation
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.data.model import NepModel
from aiida_sseff.protocols.utils import ProtocolMixin
from aiida_sseff.workflows.diffusion import DiffusionWorkChain
from aiida_sseff.workflows.stages import declare_stage, stage_builder, stage_requested
from aiida_sseff.workflows.training import NepTrainingWorkChain


@calcfunction
def collect_candidates(**snapshots: LabelledDataset) -> LabelledDataset:
    """Merge the MD snapshots of all temperatures into one unlabelled candidate set (ordered by temperature label)."""
    structures = []
    for key in sorted(snapshots):
        structures.extend(snapshots[key].get_ase())
    return LabelledDataset(structures, require_labels=False)


@calcfunction
def select_structures(candidates: LabelledDataset, n_structures: orm.Int) -> LabelledDataset:
    """Select ``n_structures`` candidates by farthest-point sampling of untrained-NEP descriptors.

    Per-species means of the untrained-NEP descriptor (:func:`aiida_sseff.analysis.sampling.select_by_fps`).
    """
    from aiida_sseff.analysis.sampling import select_by_fps

    structures = candidates.get_ase()
    indices = [int(i) for i in select_by_fps(structures, n_structures.value, per_species=True)[0].indices]
    selected = [structures[i] for i in indices]
    for index, atoms in zip(indices, selected, strict=True):
        atoms.info['candidate_index'] = int(index)
    return LabelledDataset(selected, require_labels=False)


def _validate_inputs(inputs, _):
    temperatures = inputs['sampling']['temperatures'].get_list()
    if not temperatures:
        return 'sampling.temperatures is empty'
    if any(float(t) <= 0 for t in temperatures):
        return f'sampling.temperatures must be positive (K), got {temperatures}'
    if len(set(temperatures)) != len(temperatures):
        return f'sampling.temperatures has duplicates: {temperatures}'
    md = inputs['sampling']['md'].get_dict()
    if 'temperature_K' in md:
        return 'give temperatures in sampling.temperatures, not sampling.md.temperature_K'
    if not md.get('snapshot_interval'):
        return 'sampling.md.snapshot_interval must be > 0: snapshots are the candidates'
    if inputs['selection']['n_structures'].value < 1:
        return 'selection.n_structures must be at least 1'
    if 'Li' not in inputs['structure'].get_symbols_set():
        return 'the structure holds no Li: aiida-sseff studies Li-ion conductors'


class SseffPipelineWorkChain(ProtocolMixin, WorkChain):
    """Sample → select → label, on any engine code (``aiida-sseff-engine``), every step a node in provenance."""

    _protocol_file = 'pipeline.yaml'
    _protocol_open_keys = ('training.overrides', 'diffusion.overrides', 'sampling.calculator', 'labelling.calculator')

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The electrolyte (periodic cell).')
        spec.input('code', valid_type=orm.AbstractCode, help='The `aiida-sseff-engine` code.')
        spec.input_namespace('sampling', help='MD sampling with a surrogate model.')
        spec.input('sampling.temperatures', valid_type=orm.List, help='Temperatures (K), one MD run each.')
        spec.input('sampling.md', valid_type=orm.Dict, help='MD parameters except temperature_K (engine md).')
        spec.input('sampling.calculator', valid_type=orm.Dict, help='Calculator spec of the sampling model.')
        spec.input('sampling.model', required=False, help='Model node for kind nep/mace.')
        spec.input_namespace('selection')
        spec.input('selection.n_structures', valid_type=orm.Int, help='How many candidates to label.')
        spec.input_namespace('labelling', help='The reference that labels the selection.')
        spec.input('labelling.calculator', valid_type=orm.Dict, help='Calculator spec of the reference.')
        spec.input('labelling.model', required=False, help='Model node for kind nep/mace.')
        spec.input('options', valid_type=orm.Dict, required=False, help='CalcJob metadata.options for every job.')
        declare_stage(spec, 'training', 'NEP training of the labelled dataset (sseff.train.nep); skipped without a code.',
                      'GPUMD `nep` or `neppo`.')
        declare_stage(spec, 'diffusion', 'Li transport of the trained model (sseff.diffusion); needs training.',
                      'The engine (CPUNEP) or a GPUMD `gpumd` code.')
        spec.inputs.validator = _validate_inputs

        spec.outline(
            cls.setup, cls.run_sampling, cls.inspect_sampling, cls.select, cls.run_labelling, cls.inspect_labelling,
            if_(cls.should_train)(
                cls.run_training, cls.inspect_training,
                if_(cls.should_diffuse)(cls.run_diffusion, cls.inspect_diffusion),
            ),
        )

        spec.output('candidates', valid_type=LabelledDataset, help='All MD snapshots (unlabelled).')
        spec.output('selected', valid_type=LabelledDataset, help='The selected candidates (unlabelled).')
        spec.output('dataset', valid_type=LabelledDataset, help='The selection with reference labels.')
        spec.output('model', valid_type=NepModel, required=False, help='The best NEP replica (held-out force RMSE).')
        spec.output('training_metrics', valid_type=orm.Dict, required=False, help='Its held-out errors.')
        spec.output('transport', valid_type=orm.Dict, required=False,
                    help='Ea, D0, D and σ at 300 K with errors, per-temperature table (sseff.diffusion results).')

        spec.exit_code(401, 'ERROR_SAMPLING_FAILED', message='The sampling MD failed at {temperatures} K.')
        spec.exit_code(402, 'ERROR_LABELLING_FAILED', message='The labelling calculation failed: {message}')
        spec.exit_code(403, 'ERROR_TOO_FEW_CANDIDATES',
                       message='Only {n_candidates} candidates for {n_structures} structures: sample longer.')
        spec.exit_code(404, 'ERROR_TRAINING_FAILED', message='The NEP training failed: {message}')
        spec.exit_code(405, 'ERROR_DIFFUSION_FAILED', message='The diffusion MD of the trained model failed: {message}')

    @classmethod
    def get_builder_from_protocol(cls, code, structure, protocol=None, overrides=None, options=None,
                                  training_code=None, diffusion_code=None):
        """A ready builder: protocol defaults (``fast``, ``balanced``, ``stringent``) merged with ``overrides``.

        :param training_code: GPUMD ``nep`` or ``neppo``; with it, the labelled dataset is used to train NEP models
            with the training protocol named in this protocol's ``training`` section.
        :param diffusion_code: the engine code (CPUNEP) or GPUMD ``gpumd``; with it (and a training code), the trained
            model's Li diffusivity is computed at the temperatures of the ``diffusion`` section (Arrhenius → Ea, σ).
        """
        if diffusion_code is not None and training_code is None:
            raise ValueError('the diffusion stage needs a trained model: give a training_code too')
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.code = code
        builder.structure = structure
        builder.sampling.temperatures = orm.List([float(t) for t in inputs['sampling']['temperatures']])
        builder.sampling.md = orm.Dict(inputs['sampling']['md'])
        builder.sampling.calculator = orm.Dict(inputs['sampling']['calculator'])
        builder.selection.n_structures = orm.Int(inputs['selection']['n_structures'])
        builder.labelling.calculator = orm.Dict(inputs['labelling']['calculator'])
        if options:
            builder.options = orm.Dict(options)
        if training_code is not None:
            builder.training.code = training_code
            builder.training.protocol = orm.Str(inputs['training']['protocol'])
            builder.training.overrides = orm.Dict(inputs['training'].get('overrides') or {})
        if diffusion_code is not None:
            builder.diffusion.code = diffusion_code
            builder.diffusion.protocol = orm.Str(inputs['diffusion']['protocol'])
            builder.diffusion.overrides = orm.Dict(inputs['diffusion'].get('overrides') or {})
        return builder

    def setup(self):
        self.ctx.temperatures = [float(t) for t in self.inputs.sampling.temperatures.get_list()]

    def _job_inputs(self, calculator, model, label):
        inputs = AttributeDict({'code': self.inputs.code, 'calculator': calculator})
        if model is not None:
            inputs.model = model
        options = self.inputs.options.get_dict() if 'options' in self.inputs else {}
        inputs.metadata = {'label': label, 'options': options, 'call_link_label': label}
        return inputs

    def run_sampling(self):
        md = self.inputs.sampling.md.get_dict()
        jobs = {}
        base_seed = int(md.get('seed', 1))
        for index, temperature in enumerate(self.ctx.temperatures):
            label = f'md_{temperature:g}K'
            inputs = self._job_inputs(self.inputs.sampling.calculator, self.inputs.sampling.get('model'), label)
            inputs.structure = self.inputs.structure
            # a different seed per temperature: the runs must be independent samples, not one trajectory rescaled
            inputs.parameters = orm.Dict({**md, 'temperature_K': temperature, 'seed': base_seed + index})
            jobs[label] = self.submit(EngineMdCalculation, **inputs)
            self.report(f'submitted {label} <{jobs[label].pk}>')
        return ToContext(**jobs)

    def inspect_sampling(self):
        failed = [t for t in self.ctx.temperatures if not self.ctx[f'md_{t:g}K'].is_finished_ok]
        if failed:
            return self.exit_codes.ERROR_SAMPLING_FAILED.format(temperatures=', '.join(f'{t:g}' for t in failed))
        snapshots = {f'T{int(round(t)):05d}K': self.ctx[f'md_{t:g}K'].outputs.snapshots for t in self.ctx.temperatures}
        self.ctx.candidates = collect_candidates(**snapshots)
        self.out('candidates', self.ctx.candidates)

    def select(self):
        n_candidates = self.ctx.candidates.n_structures
        n_structures = self.inputs.selection.n_structures.value
        if n_candidates < n_structures:
            return self.exit_codes.ERROR_TOO_FEW_CANDIDATES.format(n_candidates=n_candidates,
                                                                   n_structures=n_structures)
        self.ctx.selected = select_structures(self.ctx.candidates, self.inputs.selection.n_structures)
        self.out('selected', self.ctx.selected)

    def run_labelling(self):
        inputs = self._job_inputs(self.inputs.labelling.calculator, self.inputs.labelling.get('model'), 'label')
        inputs.structures = self.ctx.selected
        node = self.submit(EngineLabelCalculation, **inputs)
        self.report(f'submitted labelling <{node.pk}>')
        return ToContext(label=node)

    def inspect_labelling(self):
        node = self.ctx.label
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_LABELLING_FAILED.format(message=node.exit_message or node.process_state)
        self.out('dataset', node.outputs.dataset)
        failures = node.outputs.results.get('failures', [])
        self.report(f'labelled {node.outputs.dataset.n_structures} structures ({len(failures)} left out)')
        self.ctx.dataset = node.outputs.dataset

    def should_train(self):
        return stage_requested(self.inputs, 'training')

    def run_training(self):
        try:
            builder = stage_builder(NepTrainingWorkChain, self.inputs.training, self.ctx.dataset)
            builder.metadata.call_link_label = 'training'
            node = self.submit(builder)
        except ValueError as exception:  # the stage's own validators refused its inputs
            return self.exit_codes.ERROR_TRAINING_FAILED.format(message=f'invalid training inputs: {exception}')
        self.report(f'submitted NEP training <{node.pk}>')
        return ToContext(training=node)

    def inspect_training(self):
        node = self.ctx.training
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_TRAINING_FAILED.format(message=node.exit_message or node.process_state)
        self.out('model', node.outputs.model)
        self.out('training_metrics', node.outputs.metrics)
        metrics = node.outputs.metrics
        self.report(
            f"trained NEP: held-out force RMSE {metrics['force_mev_per_angstrom']:.1f} meV/Å, energy "
            f"{metrics['energy_mev_per_atom']:.2f} meV/atom"
        )

    def should_diffuse(self):
        return stage_requested(self.inputs, 'diffusion')

    def run_diffusion(self):
        options = self.inputs.options.get_dict() if 'options' in self.inputs else None
        try:
            builder = stage_builder(DiffusionWorkChain, self.inputs.diffusion, self.inputs.structure,
                                    model=self.ctx.training.outputs.model, options=options)
            builder.metadata.call_link_label = 'diffusion'
            node = self.submit(builder)
        except ValueError as exception:  # the stage's own validators refused its inputs
            return self.exit_codes.ERROR_DIFFUSION_FAILED.format(message=f'invalid diffusion inputs: {exception}')
        self.report(f'submitted diffusion of the trained model <{node.pk}>')
        return ToContext(diffusion=node)

    def inspect_diffusion(self):
        node = self.ctx.diffusion
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_DIFFUSION_FAILED.format(message=node.exit_message or node.process_state)
        self.out('transport', node.outputs.results)
        results = node.outputs.results
        self.report(
            f"trained NEP: Ea = {results['Ea_eV']:.3f} ± {results['Ea_err_eV']:.3f} eV, "
            f"σ(300 K) = {1e3 * results['sigma_extrapolated_S_cm']:.3g} mS/cm"
        )
