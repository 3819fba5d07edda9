"""Studies that reproduce the seed paper's experiments as single workflows.

``sseff.study.reference_quality``: the same structures labelled at two reference settings (e.g. Γ-only against a
dense k-mesh) → force/energy/stress differences between the two references, per element (the seed paper: 2.80, 6.87
and 40.20 meV/Å for LLZO, LYC and LGPS) → optionally a NEP model trained on each reference and compared downstream by
the diffusion WorkChain (the seed paper: Γ-only LGPS labels give Ea = 0.34 eV against 0.23 eV).

``sseff.study.architectures``: NEP, qNEP and MACE variants trained on the same data by ``sseff.train``, the Li
transport of each by ``sseff.diffusion`` at the same temperatures and cell, and optionally a classical Buckingham +
Coulomb potential (LAMMPS) as one more row → one table: force RMSE relative to NEP, Ea ± σ and whether it agrees with
NEP's, D at one temperature, training time and MD speed (the seed paper: ~10x lower RMSE for MACE-T1, the same
Arrhenius plot, 10-100x the cost).
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction, if_

from aiida_sseff.analysis.metrics import per_element_errors, rmse
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.protocols.utils import ProtocolMixin
from aiida_sseff.units import EV_PER_A3_IN_GPA
from aiida_sseff.utils import json_safe
from aiida_sseff.workflows.architectures import ArchitectureTrainingWorkChain
from aiida_sseff.workflows.diffusion import DiffusionWorkChain
from aiida_sseff.workflows.labelling import LabellingWorkChain
from aiida_sseff.workflows.stages import declare_stage, stage_builder, stage_requested
from aiida_sseff.workflows.training import NepTrainingWorkChain

REFERENCES = ('reference_a', 'reference_b')


def _by_source_index(dataset: LabelledDataset) -> dict:
    """Labelled structures keyed by the index they had in the input set (``source_index``, set by the labellers)."""
    result = {}
    for position, atoms in enumerate(dataset.get_ase()):
        result[int(atoms.info.get('source_index', position))] = atoms
    return result


def compare_labels(structures_a, structures_b) -> dict:
    """Differences between two labellings of the same structures (b − a): RMSE of E/N (meV/atom), of all force
    components (meV/Å) and per element, of the stress (GPa). Pure function of two {index: Atoms} mappings."""
    common = sorted(set(structures_a) & set(structures_b))
    if not common:
        raise ValueError('the two references have no structure in common')
    energy_a, energy_b, forces_a, forces_b, stress_a, stress_b, symbols = [], [], [], [], [], [], []
    for index in common:
        a, b = structures_a[index], structures_b[index]
        if a.get_chemical_symbols() != b.get_chemical_symbols() or not np.allclose(a.positions, b.positions,
                                                                                     atol=1e-6):
            raise ValueError(f'structure {index} differs between the two references: not the same input')
        energy_a.append(a.get_potential_energy() / len(a))
        energy_b.append(b.get_potential_energy() / len(b))
        forces_a.append(a.get_forces())
        forces_b.append(b.get_forces())
        symbols.extend(a.get_chemical_symbols())
        if 'stress' in a.calc.results and 'stress' in b.calc.results:
            stress_a.append(a.get_stress(voigt=True))
            stress_b.append(b.get_stress(voigt=True))
    forces_a, forces_b = np.concatenate(forces_a), np.concatenate(forces_b)
    # the energy zero of two settings may differ by a constant (basis, k-mesh): compare after removing the mean shift
    shift = float(np.mean(np.array(energy_b) - np.array(energy_a)))
    per_element = per_element_errors(forces_b, forces_a, symbols)
    result = {
        'n_structures': len(common),
        'indices': common,
        'energy_rmse_mev_per_atom': 1000.0 * rmse(np.array(energy_b) - shift, np.array(energy_a)),
        'energy_shift_mev_per_atom': 1000.0 * shift,
        'force_rmse_mev_per_angstrom': 1000.0 * rmse(forces_b, forces_a),
        'force_rmse_per_element_mev_per_angstrom': {
            element: 1000.0 * values['rmse'] for element, values in per_element.items()
        },
    }
    if stress_a:
        result['stress_rmse_gpa'] = EV_PER_A3_IN_GPA * rmse(np.array(stress_b), np.array(stress_a))
    return result


@calcfunction
def compare_references(reference_a: LabelledDataset, reference_b: LabelledDataset) -> orm.Dict:
    """Label differences between two references of the same structures (matched by ``source_index``)."""
    return orm.Dict(compare_labels(_by_source_index(reference_a), _by_source_index(reference_b)))


@calcfunction
def compare_transport(results_a: orm.Dict, results_b: orm.Dict) -> orm.Dict:
    """Ea and σ(300 K) from models trained on each reference, and their differences with combined errors."""
    a, b = results_a.get_dict(), results_b.get_dict()
    delta = b['Ea_eV'] - a['Ea_eV']
    delta_err = float(np.hypot(a['Ea_err_eV'], b['Ea_err_eV']))
    return orm.Dict({
        'Ea_a_eV': a['Ea_eV'], 'Ea_a_err_eV': a['Ea_err_eV'],
        'Ea_b_eV': b['Ea_eV'], 'Ea_b_err_eV': b['Ea_err_eV'],
        'delta_Ea_eV': delta, 'delta_Ea_err_eV': delta_err,
        'delta_Ea_significant': bool(abs(delta) > 2 * delta_err),
        'sigma300_a_S_cm': a['sigma_extrapolated_S_cm'], 'sigma300_b_S_cm': b['sigma_extrapolated_S_cm'],
    })


def _validate_inputs(inputs, _):
    for name in REFERENCES:
        if name not in inputs:
            return f'`{name}` is required: the labelling settings of that reference'
    if 'diffusion' in inputs and 'code' in inputs['diffusion'] and not (
        'training' in inputs and 'code' in inputs['training']
    ):
        return 'the diffusion comparison needs models: give training.code too'
    if 'diffusion' in inputs and 'code' in inputs['diffusion'] and 'structure' not in inputs['diffusion']:
        return 'diffusion.structure is required: the cell whose Li transport the two models predict'


class ReferenceQualityWorkChain(WorkChain):
    """Label the same structures with two reference settings, compare the labels, and optionally the models.

    ``reference_a`` and ``reference_b`` are the inputs of two ``sseff.label`` runs (any labeller: CP2K, VASP, a
    surrogate), typically the cheap setting (Γ only) and the dense one (KSPACING 0.25 Å⁻¹).
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structures', valid_type=LabelledDataset, help='The structures to label with both references.')
        for name in REFERENCES:
            spec.expose_inputs(LabellingWorkChain, namespace=name, exclude=('structures',),
                               namespace_options={'required': False, 'populate_defaults': False,
                                                  'help': f'sseff.label inputs of {name}.'})
        declare_stage(spec, 'training', 'Train NEP models on each reference (sseff.train.nep); skipped without a code.',
                      'GPUMD `nep` or `neppo`.')
        declare_stage(spec, 'diffusion', 'Li transport of both models (sseff.diffusion); needs training.',
                      'The engine (CPUNEP) or a GPUMD `gpumd` code.', extra={'structure': orm.StructureData})
        spec.inputs.validator = _validate_inputs

        spec.outline(
            cls.run_labelling, cls.inspect_labelling, cls.compare,
            if_(cls.should_train)(
                cls.run_training, cls.inspect_training,
                if_(cls.should_diffuse)(cls.run_diffusion, cls.inspect_diffusion),
            ),
        )
        for name in REFERENCES:
            spec.output(f'{name}.dataset', valid_type=LabelledDataset, required=False)
            spec.output(f'{name}.model', required=False)
            spec.output(f'{name}.metrics', valid_type=orm.Dict, required=False)
            spec.output(f'{name}.transport', valid_type=orm.Dict, required=False)
        spec.output('comparison', valid_type=orm.Dict, help='Label differences b − a: energy, force (per element), stress.')
        spec.output('transport_comparison', valid_type=orm.Dict, required=False, help='ΔEa and σ(300 K) of the models.')
        spec.exit_code(401, 'ERROR_LABELLING_FAILED', message='Labelling with {reference} failed: {message}')
        spec.exit_code(402, 'ERROR_NO_COMMON_STRUCTURES', message='The two references share no labelled structure.')
        spec.exit_code(403, 'ERROR_TRAINING_FAILED', message='Training on {reference} failed: {message}')
        spec.exit_code(404, 'ERROR_DIFFUSION_FAILED', message='Diffusion with the {reference} model failed: {message}')

    @classmethod
    def get_builder_from_protocol(cls, code, structures, labeller='cp2k', protocols=('gamma', 'balanced'),
                                  overrides=(None, None), options=None, model=None, training_code=None,
                                  diffusion_code=None, diffusion_structure=None):
        """Two ``sseff.label`` protocols (default: Γ only against KSPACING 0.25 Å⁻¹) on the same structures."""
        builder = cls.get_builder()
        builder.structures = structures
        for name, protocol, override in zip(REFERENCES, protocols, overrides, strict=True):
            sub = LabellingWorkChain.get_builder_from_protocol(code, structures, labeller=labeller, protocol=protocol,
                                                               overrides=override, options=options, model=model)
            inputs = sub._inputs(prune=True)
            inputs.pop('structures', None)
            inputs.pop('metadata', None)
            builder[name] = inputs
        if training_code is not None:
            builder.training.code = training_code
        if diffusion_code is not None:
            builder.diffusion.code = diffusion_code
            if diffusion_structure is not None:
                builder.diffusion.structure = diffusion_structure
        return builder

    def run_labelling(self):
        futures = {}
        for name in REFERENCES:
            inputs = self.exposed_inputs(LabellingWorkChain, namespace=name)
            inputs['structures'] = self.inputs.structures
            inputs['metadata'] = {'call_link_label': f'label_{name}'}
            futures[name] = self.submit(LabellingWorkChain, **inputs)
            self.report(f'submitted {name} labelling <{futures[name].pk}>')
        return ToContext(**futures)

    def inspect_labelling(self):
        for name in REFERENCES:
            node = self.ctx[name]
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_LABELLING_FAILED.format(reference=name, message=node.exit_message)
            self.out(f'{name}.dataset', node.outputs.dataset)

    def compare(self):
        try:
            comparison = compare_references(self.ctx.reference_a.outputs.dataset, self.ctx.reference_b.outputs.dataset)
        except ValueError:
            return self.exit_codes.ERROR_NO_COMMON_STRUCTURES
        self.out('comparison', comparison)
        per_element = ', '.join(f'{k} {v:.2f}' for k, v in comparison['force_rmse_per_element_mev_per_angstrom'].items())
        self.report(f"force difference between the references: {comparison['force_rmse_mev_per_angstrom']:.2f} "
                    f'meV/Å ({per_element})')

    def should_train(self):
        return stage_requested(self.inputs, 'training')

    def run_training(self):
        futures = {}
        for name in REFERENCES:
            try:
                builder = stage_builder(NepTrainingWorkChain, self.inputs.training, self.ctx[name].outputs.dataset)
                builder.metadata.call_link_label = f'train_{name}'
                futures[f'training_{name}'] = self.submit(builder)
            except ValueError as exception:
                return self.exit_codes.ERROR_TRAINING_FAILED.format(reference=name, message=str(exception))
        return ToContext(**futures)

    def inspect_training(self):
        for name in REFERENCES:
            node = self.ctx[f'training_{name}']
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_TRAINING_FAILED.format(reference=name, message=node.exit_message)
            self.out(f'{name}.model', node.outputs.model)
            self.out(f'{name}.metrics', node.outputs.test_metrics)

    def should_diffuse(self):
        return stage_requested(self.inputs, 'diffusion')

    def run_diffusion(self):
        futures = {}
        for name in REFERENCES:
            try:
                builder = stage_builder(DiffusionWorkChain, self.inputs.diffusion, self.inputs.diffusion.structure,
                                        model=self.ctx[f'training_{name}'].outputs.model)
                builder.metadata.call_link_label = f'diffusion_{name}'
                futures[f'diffusion_{name}'] = self.submit(builder)
            except ValueError as exception:
                return self.exit_codes.ERROR_DIFFUSION_FAILED.format(reference=name, message=str(exception))
        return ToContext(**futures)

    def inspect_diffusion(self):
        for name in REFERENCES:
            node = self.ctx[f'diffusion_{name}']
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_DIFFUSION_FAILED.format(reference=name, message=node.exit_message)
            self.out(f'{name}.transport', node.outputs.results)
        comparison = compare_transport(self.ctx.diffusion_reference_a.outputs.results,
                                       self.ctx.diffusion_reference_b.outputs.results)
        self.out('transport_comparison', comparison)
        self.report(f"ΔEa (b − a) = {comparison['delta_Ea_eV']:.3f} ± {comparison['delta_Ea_err_eV']:.3f} eV")


# ------------------------------------------------------------------------------------------------ architectures
@calcfunction
def tabulate_architectures(reference: orm.Str, temperature: orm.Float, kinds: orm.Dict, diffusion_failures: orm.Dict,
                           **nodes) -> orm.Dict:
    """The architecture table (:func:`aiida_sseff.analysis.architectures.architecture_table`) from the stored
    test metrics, Arrhenius results and costs (``metrics__<label>``, ``transport__<label>``, ``cost__<label>``);
    ``diffusion_failures`` ({label: exit message}) say why a row has no transport."""
    from aiida_sseff.analysis.architectures import architecture_table, format_architecture_table

    parts = {'metrics': {}, 'transport': {}, 'cost': {}}
    for key, node in nodes.items():
        part, label = key.split('__', 1)
        parts[part][label] = node.get_dict()
    rows = architecture_table(parts['metrics'], parts['transport'], parts['cost'], reference.value, temperature.value,
                              kinds=kinds.get_dict())
    failures = diffusion_failures.get_dict()
    for row in rows:
        row['diffusion_failure'] = failures.get(row['label'])
    return orm.Dict(json_safe({'reference': reference.value, 'temperature_K': temperature.value, 'rows': rows,
                               'markdown': format_architecture_table(rows)}))


def _validate_architectures_study(inputs, _):
    if not stage_requested(inputs, 'diffusion'):
        return 'diffusion.code is required: the study compares the transport of the models'
    if 'structure' not in inputs['diffusion']:
        return 'diffusion.structure is required: the cell whose Li transport every model predicts'
    architectures = inputs['training']['architectures'].get_dict() if 'architectures' in inputs['training'] else {}
    reference = inputs['reference_architecture'].value if 'reference_architecture' in inputs else 'NEP'
    if architectures and reference not in architectures:
        return f'reference_architecture `{reference}` is not one of the architectures ({", ".join(architectures)})'
    diffusion_code = inputs['diffusion']['code']
    if diffusion_code.default_calc_job_plugin == 'sseff.gpumd':
        not_nep = [label for label, spec in architectures.items() if spec.get('kind') != 'nep']
        if not_nep:
            return f'GPUMD runs NEP models only; {", ".join(not_nep)} cannot run there: use the CPU engine code'


class ArchitecturesStudyWorkChain(ProtocolMixin, WorkChain):
    """The perspective paper's architecture comparison: NEP, qNEP and MACE variants trained on the same data
    (``sseff.train``), the Li transport of each (``sseff.diffusion``, same temperatures, cell and MD settings) and,
    optionally, a classical Buckingham + Coulomb potential through LAMMPS as one more row → one table (RMSE
    relative to the reference, Ea ± σ and its agreement with the reference's, D at one temperature, cost)."""

    _protocol_file = 'architectures_study.yaml'
    _protocol_open_keys = ('training', 'diffusion', 'classical')

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(ArchitectureTrainingWorkChain, namespace='training',
                           namespace_options={'help': 'sseff.train: the architectures, data, split and seeds.'})
        declare_stage(spec, 'diffusion', 'Li transport of every trained model (sseff.diffusion), same settings each.',
                      'The CPU engine (any model) or GPUMD (NEP models only).', extra={'structure': orm.StructureData})
        declare_stage(spec, 'classical', 'The classical baseline (Buckingham + Coulomb, LAMMPS) as one more row.',
                      'A LAMMPS code (aiida-lammps `lammps.raw`).')
        spec.input('reference_architecture', valid_type=orm.Str, default=lambda: orm.Str('NEP'),
                   help='The architecture the RMSE, Ea and speed are compared against (the paper: NEP).')
        spec.input('comparison_temperature', valid_type=orm.Float, required=False,
                   help='Where D is compared (K); default: the lowest MD temperature (a measured, not extrapolated D).')
        spec.inputs.validator = _validate_architectures_study
        spec.outline(cls.run_training, cls.inspect_training, cls.run_diffusion, cls.inspect_diffusion, cls.tabulate)
        spec.expose_outputs(ArchitectureTrainingWorkChain, namespace='training')
        spec.output_namespace('transport', valid_type=orm.Dict, dynamic=True, help='sseff.diffusion results per model.')
        spec.output('table', valid_type=orm.Dict, help='One row per model: RMSE (and relative), Ea, ΔEa, D, cost.')
        spec.exit_code(401, 'ERROR_TRAINING_FAILED', message='sseff.train failed: {message}')
        spec.exit_code(402, 'ERROR_DIFFUSION_FAILED', message='Diffusion with the {model} model failed: {message}')

    @classmethod
    def get_builder_from_protocol(cls, training_codes: dict, dataset, diffusion_code, structure, protocol=None,
                                  architectures=None, overrides=None, classical_code=None, options=None):
        """A ready builder from ``protocols/architectures_study.yaml``: ``sseff.train``'s protocol of the same name
        (``training_codes``: ``{'nep': code, 'mace': code, 'engine': code}``, the engine for the speed runs) and
        ``sseff.diffusion``'s for every model, with the study's own overrides of both; ``overrides`` is
        ``{'reference_architecture': ..., 'training': {...}, 'diffusion': {...}, 'classical': {...}}``."""
        inputs = cls.get_protocol_inputs(protocol, overrides)
        protocol = protocol or cls.get_default_protocol()
        builder = cls.get_builder()
        training = ArchitectureTrainingWorkChain.get_builder_from_protocol(
            training_codes.get('nep'), training_codes.get('mace'), dataset, architectures=architectures,
            protocol=protocol, overrides=inputs['training'] or None, engine_code=training_codes.get('engine'),
            speed_structure=structure, options=options)
        training_inputs = training._inputs(prune=True)  # noqa: SLF001 - the documented way to nest one builder
        training_inputs.pop('metadata', None)
        builder.training = training_inputs
        builder.reference_architecture = orm.Str(inputs['reference_architecture'])
        builder.diffusion.code = diffusion_code
        builder.diffusion.structure = structure
        builder.diffusion.protocol = orm.Str(protocol)
        if inputs['diffusion']:
            builder.diffusion.overrides = orm.Dict(inputs['diffusion'])
        if classical_code is not None:
            builder.classical.code = classical_code
            if inputs['classical']:
                builder.classical.overrides = orm.Dict(inputs['classical'])
        return builder

    def run_training(self):
        inputs = AttributeDict(self.exposed_inputs(ArchitectureTrainingWorkChain, namespace='training'))
        inputs.metadata = {'call_link_label': 'training'}
        node = self.submit(ArchitectureTrainingWorkChain, **inputs)
        self.report(f'submitted sseff.train <{node.pk}>')
        return ToContext(training=node)

    def inspect_training(self):
        node = self.ctx.training
        partial = ArchitectureTrainingWorkChain.exit_codes
        if not node.is_finished_ok:
            # some architectures (or speed runs) failed, the others were reported: compare those, say which failed
            if node.exit_status not in (partial.ERROR_ARCHITECTURE_FAILED.status, partial.ERROR_SPEED_RUN_FAILED.status) \
                    or 'models' not in node.outputs:
                return self.exit_codes.ERROR_TRAINING_FAILED.format(message=node.exit_message)
            self.report(f'sseff.train <{node.pk}> finished in part ({node.exit_status}): {node.exit_message}; the '
                        'study goes on with the models it has')
        self.out_many(self.exposed_outputs(node, ArchitectureTrainingWorkChain, namespace='training'))

    def _diffusion_overrides(self, namespace) -> dict:
        """The diffusion stage's overrides (then the namespace's own): the classical row uses the same MD settings."""
        from aiida_sseff.protocols.utils import recursive_merge

        merged = self.inputs.diffusion.overrides.get_dict() if 'overrides' in self.inputs.diffusion else {}
        if namespace is not self.inputs.diffusion and 'overrides' in namespace:
            merged = recursive_merge(merged, namespace.overrides.get_dict())
        return merged

    def run_diffusion(self):
        stage = self.inputs.diffusion
        protocol = stage.protocol.value if 'protocol' in stage else None
        futures = {}
        jobs = [(label, stage.code, model) for label, model in self.ctx.training.outputs.models.items()]
        if stage_requested(self.inputs, 'classical'):
            jobs.append(('classical', self.inputs.classical.code, None))
        for label, code, model in jobs:
            namespace = self.inputs.classical if label == 'classical' else stage
            try:
                builder = DiffusionWorkChain.get_builder_from_protocol(
                    code, stage.structure, model=model, protocol=protocol, overrides=self._diffusion_overrides(namespace))
            except ValueError as exception:
                return self.exit_codes.ERROR_DIFFUSION_FAILED.format(model=label, message=str(exception))
            builder.metadata.call_link_label = f'diffusion_{label}'
            futures[f'diffusion_{label}'] = self.submit(builder)
            self.report(f'submitted the diffusion of {label} <{futures[f"diffusion_{label}"].pk}>')
        self.ctx.diffusion_labels = [label for label, _, _ in jobs]
        return ToContext(**futures)

    def inspect_diffusion(self):
        """A model whose MD gave no diffusion (e.g. too few hops: a model can be that wrong) keeps its row, without
        transport and with the reason; the study fails only when no model gave an Arrhenius fit."""
        self.ctx.diffusion_failures = {}
        for label in self.ctx.diffusion_labels:
            node = self.ctx[f'diffusion_{label}']
            if node.is_finished_ok:
                self.out(f'transport.{label}', node.outputs.results)
            else:
                self.ctx.diffusion_failures[label] = f'[{node.exit_status}] {node.exit_message}'
                self.report(f'the diffusion of {label} <{node.pk}> failed: {self.ctx.diffusion_failures[label]}')
        if len(self.ctx.diffusion_failures) == len(self.ctx.diffusion_labels):
            return self.exit_codes.ERROR_DIFFUSION_FAILED.format(
                model='every', message='; '.join(f'{k}: {v}' for k, v in self.ctx.diffusion_failures.items()))
        return None

    def tabulate(self):
        training = self.ctx.training.outputs
        nodes = {f'metrics__{label}': node for label, node in training.test_metrics.items()}
        nodes.update({f'cost__{label}': node for label, node in training.cost.items()})
        nodes.update({f'transport__{label}': self.ctx[f'diffusion_{label}'].outputs.results
                      for label in self.ctx.diffusion_labels if label not in self.ctx.diffusion_failures})
        if 'comparison_temperature' in self.inputs:
            temperature = self.inputs.comparison_temperature
        else:
            first = self.ctx[f'diffusion_{self.ctx.diffusion_labels[0]}']
            temperature = orm.Float(min(float(t) for t in first.inputs.temperatures.get_list()))
        architectures = self.inputs.training.architectures.get_dict()
        kinds = {label: spec.get('variant', spec.get('kind')) for label, spec in architectures.items()}
        if 'classical' in self.ctx.diffusion_labels:
            kinds['classical'] = 'Buckingham + Coulomb (LAMMPS)'
        table = tabulate_architectures(self.inputs.reference_architecture, temperature, orm.Dict(kinds),
                                       orm.Dict(self.ctx.diffusion_failures), **nodes)
        self.out('table', table)
        self.report('architecture comparison:\n' + table['markdown'])
