"""CalcJobs that run ``aiida-sseff-engine`` (ASE + any calculator) on the compute node: MD and single-point labelling."""

from __future__ import annotations

import json

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.data.model import MaceModel, NepModel
from aiida_sseff.data.reference import SurrogateReference
from aiida_sseff.engines.calculators import CalculatorSpecError, validate_spec
from aiida_sseff.engines.md import MdParameterError, validate_md_parameters

MODEL_FILENAMES = {'nep': 'nep.txt', 'mace': 'model.model'}
MODEL_TYPES = {'nep': NepModel, 'mace': MaceModel}


def _validate_calculator(value, _):
    spec = value.get_dict()
    if 'model' in spec:
        return 'give the model as the `model` input node, not as a file name in `calculator`'
    try:
        kind = spec.get('kind')
        validate_spec({**spec, 'model': 'x'} if kind in MODEL_FILENAMES else spec)
    except CalculatorSpecError as exception:
        return str(exception)


def _validate_inputs(inputs, _):
    kind = inputs['calculator'].get_dict().get('kind')
    model = inputs.get('model')
    if kind in MODEL_TYPES:
        if model is None:
            return f'calculator kind `{kind}` needs a `model` input ({MODEL_TYPES[kind].__name__})'
        if not isinstance(model, MODEL_TYPES[kind]):
            return f'calculator kind `{kind}` needs a {MODEL_TYPES[kind].__name__}, got {type(model).__name__}'
    elif model is not None:
        return f'calculator kind `{kind}` takes no `model` input'
    elements = None
    if 'structure' in inputs:
        elements = set(inputs['structure'].get_symbols_set())
    elif 'structures' in inputs:
        elements = set(inputs['structures'].elements or [])
    if model is not None and elements and model.elements:
        missing = sorted(elements - set(model.elements))
        if missing:
            return f'the model does not know the element(s) {", ".join(missing)} (it knows {", ".join(model.elements)})'


class EngineCalculation(CalcJob):
    """Base class: the calculator spec, the optional model file, report.json and the exit codes they share."""

    _TASK = ''

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            'calculator',
            valid_type=orm.Dict,
            validator=_validate_calculator,
            help='ASE calculator spec: {"kind": "chgnet"|"nep"|"mace"|"emt", "device": "cpu"|"cuda"}.',
        )
        spec.input('model', valid_type=(NepModel, MaceModel), required=False, help='Model for kind nep or mace.')
        spec.inputs.validator = _validate_inputs
        spec.inputs['metadata']['options']['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        spec.inputs['metadata']['options']['withmpi'].default = False
        spec.output('results', valid_type=orm.Dict, help='Summary written by the engine (timings, counts).')

        spec.exit_code(300, 'ERROR_MISSING_REPORT', message='The engine wrote no report.json: it crashed or was killed.')
        spec.exit_code(301, 'ERROR_UNREADABLE_OUTPUT', message='An output file could not be read: {message}')
        spec.exit_code(302, 'ERROR_MISSING_OUTPUT', message='The output file `{filename}` is missing.')
        spec.exit_code(310, 'ERROR_INVALID_INPUT', message='The engine refused its input: {message}')
        spec.exit_code(320, 'ERROR_ENGINE_EXCEPTION', message='The engine raised an exception: {message}')
        spec.exit_code(402, 'ERROR_UNKNOWN_ELEMENT', message='The model does not know an element: {message}')

    def _engine_config(self) -> dict:
        spec = validate_spec(
            {**self.inputs.calculator.get_dict(), **({'model': MODEL_FILENAMES[self.inputs.calculator['kind']]}
                                                   if 'model' in self.inputs else {})}
        )
        return {'calculator': spec}

    def _write_inputs(self, folder) -> None:
        raise NotImplementedError

    def _retrieve_list(self) -> list[str]:
        return ['report.json']

    def prepare_for_submission(self, folder):
        config = self._engine_config()
        config.update(self._extra_config())
        folder.get_subfolder('.', create=True)
        with folder.open('engine.json', 'w', encoding='utf8') as handle:
            json.dump(config, handle, indent=2)
        self._write_inputs(folder)

        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = [self._TASK, '--input', 'engine.json']
        codeinfo.stdout_name = 'engine.out'

        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = []
        if 'model' in self.inputs:
            model = self.inputs.model
            target = MODEL_FILENAMES[self.inputs.calculator['kind']]
            calcinfo.local_copy_list.append((model.uuid, model.filename, target))
        calcinfo.retrieve_list = self._retrieve_list() + ['engine.out']
        return calcinfo

    def _extra_config(self) -> dict:
        return {}


class EngineMdCalculation(EngineCalculation):
    """Molecular dynamics with ASE (NVT Bussi/Langevin/Nosé–Hoover chain, NPT MTK, NVE) and any model.

    Outputs an unwrapped-coordinate trajectory (``TrajectoryData``: positions in Å, cells, times in ps), the
    thermodynamics (``ArrayData``), the final structure, and MD snapshots as an unlabelled ``sseff.dataset``.
    """

    _TASK = 'md'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='Initial structure (periodic).')
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            validator=cls._validate_parameters,
            help='MD parameters (see aiida_sseff.engines.md.DEFAULT_MD_PARAMETERS).',
        )
        spec.inputs['metadata']['options']['parser_name'].default = 'sseff.engine.md'
        spec.output('trajectory', valid_type=orm.TrajectoryData, help='Unwrapped positions (Å), cells, times (ps).')
        spec.output('thermo', valid_type=orm.ArrayData, help='step, time_ps, temperature_K, energies (eV), volume, pressure.')
        spec.output('structure', valid_type=orm.StructureData, help='The last configuration.')
        spec.output('snapshots', valid_type=LabelledDataset, required=False, help='Unlabelled MD snapshots.')
        spec.exit_code(400, 'ERROR_MD_UNSTABLE', message='The MD run became unstable: {message}')
        spec.exit_code(401, 'ERROR_ATOMS_TOO_CLOSE', message='Atoms came too close: {message}')

    @staticmethod
    def _validate_parameters(value, _):
        try:
            validate_md_parameters(value.get_dict())
        except MdParameterError as exception:
            return str(exception)

    def _extra_config(self) -> dict:
        return {'parameters': validate_md_parameters(self.inputs.parameters.get_dict())}

    def _write_inputs(self, folder) -> None:
        from ase.io import write

        atoms = self.inputs.structure.get_ase()
        with folder.open('structure.xyz', 'w', encoding='utf8') as handle:
            write(handle, atoms, format='extxyz')

    def _retrieve_list(self) -> list[str]:
        return ['report.json', 'thermo.dat', 'trajectory.npz', 'snapshots.xyz', 'final.xyz']


def _validate_label_inputs(inputs, port_namespace):
    message = _validate_inputs(inputs, port_namespace)
    if message or 'reference' not in inputs:
        return message
    problem = inputs['reference'].matches(inputs['calculator'].get_dict(), inputs.get('model'))
    return f'reference <{inputs["reference"].pk}>: {problem}' if problem else None


class EngineLabelCalculation(EngineCalculation):
    """Single points (energy, forces, stress) of every structure of a ``sseff.dataset`` with one model.

    Structures whose calculation fails are left out of the output ``dataset`` and listed in ``results['failures']``.
    The ``reference`` input (``sseff.reference.surrogate``) puts the model itself (package, version, weights sha256)
    in the provenance graph, linked to every dataset it labelled; ``sseff.label`` always gives it.
    """

    _TASK = 'label'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structures', valid_type=LabelledDataset, help='Structures to label (labels, if any, are replaced).')
        spec.input('reference', valid_type=SurrogateReference, required=False,
                   help='The model as a reference node (SurrogateReference.get_or_create(calculator, model)).')
        spec.inputs.validator = _validate_label_inputs
        spec.inputs['metadata']['options']['parser_name'].default = 'sseff.engine.label'
        spec.output('dataset', valid_type=LabelledDataset, help='The labelled structures.')
        spec.exit_code(410, 'ERROR_ALL_STRUCTURES_FAILED', message='No structure could be labelled: {message}')

    def _write_inputs(self, folder) -> None:
        with folder.open('structures.xyz', 'wb') as handle:
            handle.write(self.inputs.structures.get_content())

    def _retrieve_list(self) -> list[str]:
        return ['report.json', 'labelled.xyz']
