"""``sseff.label``: reference labels (energy, forces, stress) for every structure of a ``sseff.dataset``.

Labellers, interchangeable:

- ``cp2k``: one :class:`Cp2kBaseWorkChain` (``sseff.label.cp2k.base``) per structure, which retries a failed
  :class:`~aiida_sseff.calculations.cp2k.Cp2kCalculation` with adjusted SCF settings or from its wavefunction;
- ``vasp``: one aiida-vasp ``VaspWorkChain`` per structure (its own restart handlers), k-points from a spacing;
- ``surrogate``: the engine's ASE calculators (CHGNet, a NEP or MACE model) through
  :class:`~aiida_sseff.calculations.engine.EngineLabelCalculation`, one job per batch of structures.

k-points (``kpoints_spacing``, Å⁻¹): VASP's KSPACING convention, ``n_i = max(1, ceil(|b_i| / spacing))`` with the
reciprocal vectors ``b_i`` including 2π; absent = Γ only. aiida-vasp gets ``kpoints_spacing / 2π``, its own unit.
Single points that still fail after the retries are left out of the output dataset and listed in ``failures``:
a structure is never kept with a label from a failed calculation.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import (
    ProcessHandlerReport,
    ToContext,
    WorkChain,
    calcfunction,
    process_handler,
    while_,
)

from aiida_sseff.analysis.geometry import closest_pair
from aiida_sseff.calculations.cp2k import Cp2kCalculation, kinds_problem, structure_problem
from aiida_sseff.calculations.engine import EngineLabelCalculation
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.data.reference import ReferenceError, SurrogateReference
from aiida_sseff.io import cp2k as cp2k_io
from aiida_sseff.io.structures import attach_labels
from aiida_sseff.protocols.utils import ProtocolMixin
from aiida_sseff.units import KBAR_IN_EV_PER_A3
from aiida_sseff.workflows.restart import SseffBaseRestartWorkChain

try:  # aiida-vasp is the optional extra `vasp` of aiida-sseff
    from aiida_vasp.workchains.v2.vasp import VaspWorkChain
except ImportError:  # pragma: no cover - exercised only where aiida-vasp is not installed
    VaspWorkChain = None

__all__ = ['LABELLERS', 'Cp2kBaseWorkChain', 'LabellingWorkChain', 'batch_structures', 'collect_batches',
           'collect_single_points', 'extract_structures', 'labeller_problem']

LABELLERS = ('cp2k', 'vasp', 'surrogate')


# --------------------------------------------------------------------------------------------------------------------
# CP2K restart wrapper
# --------------------------------------------------------------------------------------------------------------------
class Cp2kBaseWorkChain(SseffBaseRestartWorkChain):
    """Run a :class:`Cp2kCalculation`, restarting it when the SCF does not converge or the walltime is reached."""

    _process_class = Cp2kCalculation

    defaults = AttributeDict({
        'max_scf_factor': 2,  # MAX_SCF is multiplied by this after an unconverged SCF ...
        'max_scf_cap': 400,  # ... up to this many steps
        'mixing_alpha_factor': 0.5,  # Broyden mixing parameter multiplied by this (diagonalization)
        'mixing_alpha_min': 0.05,
    })

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(Cp2kCalculation, namespace='cp2k')
        spec.expose_outputs(Cp2kCalculation)
        spec.exit_code(300, 'ERROR_UNRECOVERABLE_FAILURE',
                       message='The calculation failed with an error no handler can fix: {message}')

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(Cp2kCalculation, 'cp2k'))
        self.ctx.inputs.parameters = cp2k_io.validate_parameters(self.ctx.inputs.parameters.get_dict())
        self.ctx.scf_failures = 0

    def _restart_file_available(self, node) -> bool:
        extension = 'wfn' if self.ctx.inputs.parameters['kpoints_spacing'] is None else 'kp'
        try:
            names = node.outputs.remote_folder.listdir()
        except (OSError, AttributeError, KeyError):  # no remote folder or the computer cannot be reached
            return False
        return f'{cp2k_io.PROJECT}-RESTART.{extension}' in names

    @process_handler(priority=600, exit_codes=[Cp2kCalculation.exit_codes.ERROR_WALLTIME,
                                               Cp2kCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME])
    def handle_walltime(self, node):
        """CP2K (or the scheduler) stopped at the walltime: go on from the last wavefunction if it was written."""
        if self._restart_file_available(node):
            self.ctx.inputs.parent_calc_folder = node.outputs.remote_folder
            self.report_error_handled(node, 'restarting from the wavefunction of the interrupted run')
        else:
            self.ctx.inputs.pop('parent_calc_folder', None)
            self.report_error_handled(node, 'no wavefunction was written: restarting from scratch')
        return ProcessHandlerReport(True)

    @process_handler(priority=500, exit_codes=[Cp2kCalculation.exit_codes.ERROR_SCF_NOT_CONVERGED])
    def handle_scf_not_converged(self, node):
        """The SCF did not converge: first more steps and gentler mixing, then the other solver (OT ↔ diagonalization,
        at Γ only; with k-points CP2K has no OT, so the mixing is reduced again)."""
        parameters = self.ctx.inputs.parameters
        scf = dict(parameters['scf'])
        self.ctx.scf_failures += 1
        scf['max_scf'] = min(self.defaults.max_scf_cap, int(scf['max_scf']) * self.defaults.max_scf_factor)
        gamma_only = parameters['kpoints_spacing'] is None
        if self.ctx.scf_failures >= 2 and gamma_only:
            scf['solver'] = 'ot' if scf['solver'] == 'diagonalization' else 'diagonalization'
            action = f"switched the SCF solver to {scf['solver']}, MAX_SCF {scf['max_scf']}"
        else:
            scf['mixing_alpha'] = max(self.defaults.mixing_alpha_min,
                                      float(scf['mixing_alpha']) * self.defaults.mixing_alpha_factor)
            action = f"MAX_SCF {scf['max_scf']}, mixing ALPHA {scf['mixing_alpha']:.3g}"
        self.ctx.inputs.parameters = {**parameters, 'scf': scf}
        self.ctx.inputs.pop('parent_calc_folder', None)  # an unconverged wavefunction is no better start
        self.report_error_handled(node, action)
        return ProcessHandlerReport(True)

    @process_handler(priority=100, exit_codes=[Cp2kCalculation.exit_codes.ERROR_NON_FINITE])
    def handle_non_finite(self, node):
        """NaN or inf in the output is a broken run that a restart will not fix."""
        self.report_error_handled(node, 'none: a non-finite result is not retried')
        return ProcessHandlerReport(True, self.exit_codes.ERROR_UNRECOVERABLE_FAILURE.format(
            message=node.exit_message))


# --------------------------------------------------------------------------------------------------------------------
# calcfunctions: every structure going in and every label coming out is a node with provenance
# --------------------------------------------------------------------------------------------------------------------
def _key(index: int) -> str:
    return f's{index:05d}'


@calcfunction
def extract_structures(dataset: LabelledDataset, indices: orm.List) -> dict:
    """One ``StructureData`` per selected structure of ``dataset``, keyed ``s<index>`` (index in the dataset)."""
    structures = dataset.get_ase()
    result = {}
    for index in indices.get_list():
        atoms = structures[index]
        atoms.calc = None
        result[_key(index)] = orm.StructureData(ase=atoms)
    return result


@calcfunction
def batch_structures(dataset: LabelledDataset, indices: orm.List, batch_size: orm.Int) -> dict:
    """The selected structures in consecutive batches of ``batch_size`` (keys ``b<first index position>``); each
    structure carries ``info['dataset_index']``, its index in ``dataset`` (the engine writes its own, batch-local,
    ``source_index``)."""
    structures = dataset.get_ase()
    selected = indices.get_list()
    result = {}
    for start in range(0, len(selected), batch_size.value):
        batch = []
        for index in selected[start:start + batch_size.value]:
            atoms = structures[index]
            atoms.info['dataset_index'] = int(index)
            batch.append(atoms)
        result[f'b{start:05d}'] = LabelledDataset(batch, require_labels=False)
    return result


def _report_node(n_input: int, labelled: list[int], failures: list) -> orm.Dict:
    return orm.Dict({
        'n_selected': n_input,
        'n_labelled': len(labelled),
        'n_failed': len(failures),
        'labelled_indices': labelled,
        'failures': sorted(failures, key=lambda f: f['index']),
    })


@calcfunction
def collect_single_points(dataset: LabelledDataset, failures: orm.List, **single_points) -> dict:
    """Build the labelled dataset from one single point per structure, in the order of ``dataset``.

    ``single_points`` are keyed ``s<index>``: a CP2K ``labels`` ArrayData (eV, eV/Å, eV/Å³ ASE sign) or an aiida-vasp
    ``misc`` Dict (energy: ``energy_free``, the free energy TOTEN that the forces derive from; forces eV/Å; stress in
    kbar with VASP's pressure sign, converted to eV/Å³ with the ASE sign). Each structure keeps its ``info`` and gets
    ``source_index``.
    """
    structures = dataset.get_ase()
    labelled, kept = [], []
    for key in sorted(single_points):
        index = int(key[1:])
        atoms = structures[index]
        info = {k: v for k, v in atoms.info.items() if k not in ('energy', 'stress', 'virial', 'free_energy')}
        atoms.calc = None
        atoms.info = info
        atoms.info['source_index'] = index
        energy, forces, stress = _labels_of(single_points[key], len(atoms))
        attach_labels(atoms, energy=energy, forces=forces, stress=stress)
        labelled.append(atoms)
        kept.append(index)
    return {
        'dataset': LabelledDataset(labelled),
        'report': _report_node(len(kept) + len(failures.get_list()), kept, failures.get_list()),
    }


def _labels_of(node, n_atoms: int):
    if isinstance(node, orm.ArrayData):
        names = node.get_arraynames()
        stress = node.get_array('stress') if 'stress' in names else None
        return float(node.get_array('energy')[0]), node.get_array('forces'), stress
    misc = node.get_dict()
    energies = misc.get('total_energies', {})
    energy = energies.get('energy_free', energies.get('energy_extrapolated'))
    if energy is None:
        raise ValueError(f'aiida-vasp misc has no total energy: {sorted(energies)}')
    forces = np.asarray(misc['forces'], dtype=float).reshape(n_atoms, 3)
    stress = misc.get('stress')
    if stress is not None:
        # VASP prints the stress in kbar with the pressure sign (positive = compressed); ASE uses the opposite sign
        stress = -np.asarray(stress, dtype=float).reshape(3, 3) * KBAR_IN_EV_PER_A3
    return float(energy), forces, stress


@calcfunction
def collect_batches(failures: orm.List, reference: SurrogateReference, **batches) -> dict:
    """Merge the labelled batches of the surrogate labeller into one dataset, ordered by ``source_index``.

    ``reference`` is the model that labelled them: an input here too, so the merged dataset is one link from it.
    """
    structures = []
    for key in sorted(batches):
        for atoms in batches[key].get_ase():
            atoms.info['source_index'] = int(atoms.info.pop('dataset_index'))
            structures.append(atoms)
    structures.sort(key=lambda atoms: atoms.info['source_index'])
    kept = [int(atoms.info['source_index']) for atoms in structures]
    return {
        'dataset': LabelledDataset(structures),
        'report': _report_node(len(kept) + len(failures.get_list()), kept, failures.get_list()),
    }


# --------------------------------------------------------------------------------------------------------------------
# the labelling WorkChain
# --------------------------------------------------------------------------------------------------------------------
def _selected_indices(inputs) -> list[int]:
    n_structures = inputs['structures'].n_structures or 0
    if 'indices' in inputs:
        return [int(i) for i in inputs['indices'].get_list()]
    return list(range(n_structures))


def labeller_problem(inputs, elements) -> str | None:
    """What is wrong with the labeller's inputs (its name, k-points, batch size, its namespace) for structures of
    ``elements``, or None. Also used by WorkChains that expose this one before they have the structures."""
    labeller = inputs['labeller'].value
    if labeller not in LABELLERS:
        return f'labeller `{labeller}` unknown; choose one of {", ".join(LABELLERS)}'
    spacing = inputs['kpoints_spacing'].value if 'kpoints_spacing' in inputs else None
    if spacing is not None and not spacing > 0:
        return f'kpoints_spacing must be > 0 Å⁻¹ (leave it out for Γ only), got {spacing}'
    if inputs['batch_size'].value < 1:
        return f"batch_size must be at least 1, got {inputs['batch_size'].value}"
    namespace = inputs.get(labeller, {})
    if labeller == 'cp2k':
        return _cp2k_problem(namespace, elements)
    if labeller == 'vasp':
        return _vasp_problem(namespace, elements)
    return _surrogate_problem(namespace, elements)


def _validate_inputs(inputs, port_namespace):  # noqa: PLR0911 - one sentence per bad input
    if 'structures' not in port_namespace:
        # exposed in another WorkChain without `structures`: that one checks `labeller_problem` with the elements
        return None
    labeller = inputs['labeller'].value
    if labeller not in LABELLERS:
        return f'labeller `{labeller}` unknown; choose one of {", ".join(LABELLERS)}'
    dataset = inputs['structures']
    n_structures = dataset.n_structures or 0
    selected = _selected_indices(inputs)
    if not selected:
        return 'the selection of structures to label is empty'
    bad = [i for i in selected if not 0 <= i < n_structures]
    if bad:
        return f'indices {bad[:10]} out of range for a dataset of {n_structures} structures'
    if len(set(selected)) != len(selected):
        return 'the selection holds the same structure twice'
    min_distance = inputs['min_distance'].value
    structures = dataset.get_ase()
    for index in selected:
        atoms = structures[index]
        problem = _overlap_problem(atoms, min_distance) if labeller == 'surrogate' else structure_problem(atoms,
                                                                                                        min_distance)
        if problem:
            return f'structure {index}: {problem}'
    return labeller_problem(inputs, sorted({s for i in selected for s in structures[i].get_chemical_symbols()}))


def _overlap_problem(atoms, min_distance: float) -> str | None:
    first, second, distance = closest_pair(atoms)
    if distance < min_distance:
        return (f'atoms {first} ({atoms[first].symbol}) and {second} ({atoms[second].symbol}) are {distance:.3f} Å '
                f'apart, closer than {min_distance} Å: the structure has overlapping atoms')
    return None


def _cp2k_problem(namespace, elements) -> str | None:
    calc = namespace.get('cp2k', {}) if namespace else {}
    if 'code' not in calc or 'parameters' not in calc:
        return 'labeller `cp2k` needs the inputs cp2k.cp2k.code and cp2k.cp2k.parameters'
    raw = calc['parameters'].get_dict()
    if raw.get('kpoints_spacing') is not None:
        return 'give the k-point spacing as the kpoints_spacing input of the WorkChain, not in cp2k.cp2k.parameters'
    try:
        parameters = cp2k_io.validate_parameters(raw)
    except ValueError as exception:
        return f'cp2k.cp2k.parameters: {exception}'
    return kinds_problem(elements, parameters)


def _vasp_problem(namespace, elements) -> str | None:
    if VaspWorkChain is None:
        return 'labeller `vasp` needs aiida-vasp: `pip install aiida-sseff[vasp]`'
    for key in ('code', 'parameters', 'potential_family'):
        if not namespace or key not in namespace:
            return f'labeller `vasp` needs the input vasp.{key}'
    incar = {k.lower(): v for k, v in namespace['parameters'].get_dict().get('incar', {}).items()}
    if 'kspacing' in incar or 'kgamma' in incar:
        return ('INCAR tag KSPACING/KGAMMA refused: aiida-vasp always writes a KPOINTS file, and VASP then ignores '
                'KSPACING silently; give the spacing (Å⁻¹, VASP convention) as the kpoints_spacing input instead')
    from aiida.common.exceptions import NotExistent
    from aiida_vasp.data.potcar import PotcarData

    family = namespace['potential_family'].value
    mapping = namespace['potential_mapping'].get_dict() if 'potential_mapping' in namespace else {}
    mapping = {element: mapping.get(element, element) for element in elements}
    try:
        PotcarData.get_potcars_dict(elements, family, mapping=mapping)
    except (NotExistent, ValueError) as exception:
        return f'POTCAR family `{family}` cannot describe the element(s) {", ".join(elements)}: {exception}'
    return None


def _surrogate_problem(namespace, elements) -> str | None:
    if not namespace or 'code' not in namespace or 'calculator' not in namespace:
        return 'labeller `surrogate` needs the inputs surrogate.code and surrogate.calculator'
    model = namespace.get('model')
    if model is not None and model.elements:
        missing = sorted(set(elements) - set(model.elements))
        if missing:
            return f'the surrogate model does not know the element(s) {", ".join(missing)}'
    try:
        SurrogateReference.describe(namespace['calculator'].get_dict(), model)
    except ReferenceError as exception:
        return f'the surrogate reference cannot be described: {exception}'
    return None


class LabellingWorkChain(ProtocolMixin, WorkChain):
    """Label the structures of a ``sseff.dataset`` with CP2K, VASP or a surrogate model; output a labelled dataset.

    Every single point is a process node in the provenance graph; the structures going in and the labels coming
    out are linked through calcfunctions. Structures whose single point failed after the retries are left out and
    listed in the ``failures`` output (index, process, exit status, message).
    """

    _protocol_file = 'labelling.yaml'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structures', valid_type=LabelledDataset, help='The structures (labels, if any, are replaced).')
        spec.input('labeller', valid_type=orm.Str, help=f'One of {", ".join(LABELLERS)}.')
        spec.input('indices', valid_type=orm.List, required=False,
                   help='Indices of the structures to label (default: all).')
        spec.input('kpoints_spacing', valid_type=orm.Float, required=False,
                   help='k-point spacing in Å⁻¹, VASP KSPACING convention (2π included); absent: Γ only. '
                        'Not used by the surrogate labeller.')
        spec.input('batch_size', valid_type=orm.Int, default=lambda: orm.Int(8),
                   help='Single points (surrogate: structures per job) running at the same time.')
        spec.input('min_distance', valid_type=orm.Float, default=lambda: orm.Float(0.5),
                   help='Structures with two atoms closer than this (Å) are refused before submission.')
        spec.expose_inputs(Cp2kBaseWorkChain, namespace='cp2k', exclude=('cp2k.structure',),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'Inputs of Cp2kBaseWorkChain for labeller `cp2k`.'})
        if VaspWorkChain is not None:
            spec.expose_inputs(VaspWorkChain, namespace='vasp', exclude=('structure', 'kpoints', 'kpoints_spacing'),
                               namespace_options={'required': False, 'populate_defaults': False,
                                                  'help': 'Inputs of aiida-vasp VaspWorkChain for labeller `vasp`.'})
        else:  # pragma: no cover
            spec.input_namespace('vasp', dynamic=True, required=False, help='Needs aiida-vasp (extra `vasp`).')
        spec.expose_inputs(EngineLabelCalculation, namespace='surrogate', exclude=('structures', 'reference'),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'Inputs of EngineLabelCalculation for labeller `surrogate`.'})
        spec.inputs.validator = _validate_inputs

        spec.outline(
            cls.setup,
            while_(cls.has_pending)(cls.submit_batch, cls.inspect_batch),
            cls.collect,
        )
        spec.output('dataset', valid_type=LabelledDataset, help='The structures that were labelled, in input order.')
        spec.output('failures', valid_type=orm.Dict,
                    help='n_selected, n_labelled, n_failed, labelled_indices, failures [{index, process, '
                         'exit_status, message}].')
        spec.output('reference', valid_type=SurrogateReference, required=False,
                    help='Labeller `surrogate`: the model as a node (package, version, weights sha256), an input of '
                         'every labelling job.')
        spec.exit_code(410, 'ERROR_ALL_FAILED', message='No structure could be labelled: {message}')

    @classmethod
    def get_builder_from_protocol(cls, code, structures=None, labeller='cp2k', protocol=None, overrides=None,
                                  options=None, model=None, elements=None):
        """A ready builder for ``labeller`` with the protocol's settings (``fast``, ``balanced``, ``stringent``,
        ``gamma``), merged with ``overrides``; ``options`` become the ``metadata.options`` of every job.

        :param structures: the ``sseff.dataset`` to label; None leaves it to be set (a pipeline sets it from its
            sampling stage), and then ``elements`` (the elements it will hold) gives the VASP potential mapping.
        """
        if labeller not in LABELLERS:
            raise ValueError(f'labeller `{labeller}` unknown; choose one of {", ".join(LABELLERS)}')
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        if structures is not None:
            builder.structures = structures
            elements = structures.elements
        builder.labeller = orm.Str(labeller)
        builder.batch_size = orm.Int(inputs['batch_size'])
        builder.min_distance = orm.Float(inputs['min_distance'])
        if inputs.get('kpoints_spacing') is not None and labeller != 'surrogate':
            builder.kpoints_spacing = orm.Float(inputs['kpoints_spacing'])
        if labeller == 'cp2k':
            section = inputs['cp2k']
            builder.cp2k.max_iterations = orm.Int(section['max_iterations'])
            builder.cp2k.cp2k.code = code
            builder.cp2k.cp2k.parameters = orm.Dict(section['parameters'])
            if options:
                builder.cp2k.cp2k.metadata.options = options
        elif labeller == 'vasp':
            section = inputs['vasp']
            builder.vasp.code = code
            builder.vasp.max_iterations = orm.Int(section['max_iterations'])
            builder.vasp.parameters = orm.Dict({'incar': section['incar']})
            builder.vasp.potential_family = orm.Str(section['potential_family'])
            mapping = section.get('potential_mapping') or {}
            if elements:
                builder.vasp.potential_mapping = orm.Dict({el: mapping.get(el, el) for el in elements})
            builder.vasp.settings = orm.Dict({'parser_settings': {'energy_type': ['energy_free',
                                                                                   'energy_extrapolated']}})
            if options:
                builder.vasp.calc.metadata.options = options
        elif labeller == 'surrogate':
            builder.surrogate.code = code
            builder.surrogate.calculator = orm.Dict(inputs['surrogate']['calculator'])
            if model is not None:
                builder.surrogate.model = model
            if options:
                builder.surrogate.metadata.options = options
        else:
            raise ValueError(f'labeller `{labeller}` unknown; choose one of {", ".join(LABELLERS)}')
        return builder

    # --- steps ---------------------------------------------------------------------------------------------------
    def setup(self):
        self.ctx.labeller = self.inputs.labeller.value
        indices = orm.List(_selected_indices(self.inputs))
        self.ctx.failures = []
        self.ctx.done = {}
        if self.ctx.labeller == 'surrogate':
            surrogate = self.inputs.surrogate
            # the model itself in the provenance graph (one node per reference, reused): an input of every job
            self.ctx.reference = SurrogateReference.get_or_create(surrogate.calculator.get_dict(),
                                                                  surrogate.get('model'))
            self.out('reference', self.ctx.reference)
            batches = batch_structures(self.inputs.structures, indices, self.inputs.batch_size)
            self.ctx.pending = sorted(batches.items())
        else:
            structures = extract_structures(self.inputs.structures, indices)
            self.ctx.pending = sorted(structures.items())
        self.ctx.n_selected = len(indices.get_list())

    def has_pending(self):
        return bool(self.ctx.pending)

    def submit_batch(self):
        # DFT: batch_size single points at a time; surrogate: all jobs at once, each holding batch_size structures
        size = len(self.ctx.pending) if self.ctx.labeller == 'surrogate' else self.inputs.batch_size.value
        batch, self.ctx.pending = self.ctx.pending[:size], self.ctx.pending[size:]
        self.ctx.batch = [key for key, _ in batch]
        futures = {}
        for key, node in batch:
            futures[key] = self.submit(*self._process_and_inputs(key, node))
        self.report(f'submitted {len(futures)} {self.ctx.labeller} job(s): '
                    + ', '.join(f'{key}<{node.pk}>' for key, node in futures.items()))
        return ToContext(**futures)

    def _process_and_inputs(self, key, node):
        label = f'label_{key}'
        if self.ctx.labeller == 'cp2k':
            inputs = AttributeDict(self.exposed_inputs(Cp2kBaseWorkChain, namespace='cp2k'))
            parameters = inputs.cp2k.parameters.get_dict()
            if 'kpoints_spacing' in self.inputs:
                parameters['kpoints_spacing'] = self.inputs.kpoints_spacing.value
            inputs.cp2k = {**inputs.cp2k, 'structure': node, 'parameters': orm.Dict(parameters)}
            inputs.metadata = {'call_link_label': label, 'label': label}
            return Cp2kBaseWorkChain, inputs
        if self.ctx.labeller == 'vasp':
            inputs = AttributeDict(self.exposed_inputs(VaspWorkChain, namespace='vasp'))
            inputs.structure = node
            if 'kpoints_spacing' in self.inputs:
                inputs.kpoints_spacing = orm.Float(self.inputs.kpoints_spacing.value / (2 * np.pi))
            else:
                kpoints = orm.KpointsData()
                kpoints.set_kpoints_mesh([1, 1, 1])
                inputs.kpoints = kpoints
            if 'potential_mapping' not in inputs:
                inputs.potential_mapping = orm.Dict({kind: kind for kind in node.get_kind_names()})
            inputs.metadata = {'call_link_label': label, 'label': label}
            return VaspWorkChain, inputs
        inputs = AttributeDict(self.exposed_inputs(EngineLabelCalculation, namespace='surrogate'))
        inputs.structures = node
        inputs.reference = self.ctx.reference
        metadata = dict(inputs.get('metadata', {}))
        inputs.metadata = {**metadata, 'call_link_label': label, 'label': label}
        return EngineLabelCalculation, inputs

    def inspect_batch(self):
        for key in self.ctx.batch:
            node = self.ctx[key]
            if self.ctx.labeller == 'surrogate':
                self._inspect_surrogate(key, node)
            elif node.is_finished_ok:
                self.ctx.done[key] = node.outputs.labels if self.ctx.labeller == 'cp2k' else node.outputs.misc
            else:
                self.ctx.failures.append(self._failure(int(key[1:]), node))

    def _inspect_surrogate(self, key, node):
        batch_indices = [int(a.info['dataset_index']) for a in node.inputs.structures.get_ase()]
        if not node.is_finished_ok:
            self.ctx.failures.extend(self._failure(index, node) for index in batch_indices)
            return
        self.ctx.done[key] = node.outputs.dataset
        for failure in node.outputs.results.get('failures', []):
            self.ctx.failures.append({'index': batch_indices[failure['index']], 'process': node.pk,
                                      'exit_status': 0, 'message': failure['reason']})

    @staticmethod
    def _failure(index, node) -> dict:
        return {'index': index, 'process': node.pk, 'exit_status': node.exit_status,
                'message': node.exit_message or str(node.process_state.value)}

    def collect(self):
        for failure in self.ctx.failures:
            self.report(f"structure {failure['index']} left out: process <{failure['process']}> "
                        f"exit status {failure['exit_status']}: {failure['message']}")
        if not self.ctx.done:
            messages = '; '.join(f"{f['index']}: {f['message']}" for f in self.ctx.failures[:5])
            return self.exit_codes.ERROR_ALL_FAILED.format(message=messages)
        failures = orm.List(self.ctx.failures)
        if self.ctx.labeller == 'surrogate':
            result = collect_batches(failures, self.ctx.reference, **self.ctx.done)
        else:
            result = collect_single_points(self.inputs.structures, failures, **self.ctx.done)
        self.out('dataset', result['dataset'])
        self.out('failures', result['report'])
        self.report(f"labelled {result['dataset'].n_structures} of {self.ctx.n_selected} structures "
                    f'({len(self.ctx.failures)} left out)')
        return None
