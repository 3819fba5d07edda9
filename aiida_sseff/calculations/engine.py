"""CalcJobs that run ``aiida-sseff-engine`` (ASE + any calculator) on the compute node: MD and single-point labelling."""

from __future__ import annotations

import json

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_sseff.calculations.threads import thread_prepend_text
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.data.model import MaceModel, NepModel
from aiida_sseff.data.reference import SurrogateReference
from aiida_sseff.engines.calculators import CalculatorSpecError, validate_spec
from aiida_sseff.engines.md import (
    CHECKPOINT_FILENAME,
    MdParameterError,
    check_restart_compatible,
    read_checkpoint,
    validate_md_parameters,
)

MODEL_FILENAMES = {'nep': 'nep.txt', 'mace': 'model.model'}
RESTART_FILENAME = 'restart.npz'
# The engine stops this much before the scheduler's wall time, to write its outputs and checkpoint and to leave the
# job before the scheduler kills it: a fixed part (start-up, retrieval of large files) plus a fraction of the budget.
WALLTIME_MARGIN_S = 60.0
WALLTIME_MARGIN_FRACTION = 0.02


def engine_wall_time(max_wallclock_seconds: float) -> float:
    """The soft wall time the engine gets for a job of ``max_wallclock_seconds``; 0 for a budget shorter than the
    margin (the engine then stops after one checkpoint interval)."""
    margin = WALLTIME_MARGIN_S + WALLTIME_MARGIN_FRACTION * max_wallclock_seconds
    return max(0.0, float(max_wallclock_seconds) - margin)
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


def _validate_md_inputs(inputs, ctx):
    message = _validate_inputs(inputs, ctx)
    if message or 'checkpoint' not in inputs or 'parameters' not in inputs or 'structure' not in inputs:
        return message
    import io

    import numpy as np

    checkpoint = inputs['checkpoint']
    try:
        parameters = validate_md_parameters(inputs['parameters'].get_dict())
        saved = read_checkpoint(io.BytesIO(checkpoint.get_content(mode='rb')))
        numbers = np.array(inputs['structure'].get_ase().get_atomic_numbers())
        check_restart_compatible(saved, numbers, parameters, f'<{checkpoint.filename}>')
    except MdParameterError as exception:  # CheckpointError included
        return f'`checkpoint`: {exception}'


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
        # threads = this job's share of the cores (several engine jobs may share one machine); the engine passes
        # OMP_NUM_THREADS on to torch
        calcinfo.prepend_text = thread_prepend_text(self.node.get_option('resources'),
                                                    self.node.get_option('environment_variables'))
        calcinfo.local_copy_list = self._local_copies()
        if 'model' in self.inputs:
            model = self.inputs.model
            target = MODEL_FILENAMES[self.inputs.calculator['kind']]
            calcinfo.local_copy_list.append((model.uuid, model.filename, target))
        calcinfo.retrieve_list = self._retrieve_list() + ['engine.out']
        return calcinfo

    def _extra_config(self) -> dict:
        return {}

    def _local_copies(self) -> list[tuple]:
        return []


class EngineMdCalculation(EngineCalculation):
    """Molecular dynamics with ASE (NVT Bussi/Langevin/Nosé–Hoover chain, NPT MTK, NVE) and any model.

    Outputs an unwrapped-coordinate trajectory (``TrajectoryData``: positions in Å, cells, times in ps), the
    thermodynamics (``ArrayData``), the final structure, MD snapshots as an unlabelled ``sseff.dataset`` and the
    ``checkpoint``. With ``metadata.options.max_wallclock_seconds`` the engine stops cleanly before the scheduler
    would kill it (:func:`engine_wall_time`) with ``ERROR_OUT_OF_WALLTIME`` and the partial outputs; the
    ``checkpoint`` input continues a run (``sseff.engine.md.base`` does both for you).
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
        spec.input('checkpoint', valid_type=orm.SinglefileData, required=False,
                   help='checkpoint.npz of an earlier run with the same parameters (its `checkpoint` output): continue '
                        'from it, same trajectory and time axis, for the remaining steps.')
        spec.inputs.validator = _validate_md_inputs
        spec.inputs['metadata']['options']['parser_name'].default = 'sseff.engine.md'
        spec.output('trajectory', valid_type=orm.TrajectoryData, help='Unwrapped positions (Å), cells, times (ps).')
        spec.output('thermo', valid_type=orm.ArrayData, help='step, time_ps, temperature_K, energies (eV), volume, pressure.')
        spec.output('structure', valid_type=orm.StructureData, help='The last configuration.')
        spec.output('snapshots', valid_type=LabelledDataset, required=False, help='Unlabelled MD snapshots.')
        spec.output('checkpoint', valid_type=orm.SinglefileData, required=False,
                    help='The dynamical state at the end (or at the wall-time stop): the `checkpoint` input of a '
                         'continuation.')
        spec.exit_code(400, 'ERROR_MD_UNSTABLE', message='The MD run became unstable: {message}')
        spec.exit_code(401, 'ERROR_ATOMS_TOO_CLOSE', message='Atoms came too close: {message}')
        spec.exit_code(403, 'ERROR_OUT_OF_WALLTIME',
                       message='The run stopped for its wall time at {where}; the trajectory so far and a '
                               'checkpoint to continue from are in the outputs.')

    @staticmethod
    def _validate_parameters(value, _):
        try:
            validate_md_parameters(value.get_dict())
        except MdParameterError as exception:
            return str(exception)

    def _extra_config(self) -> dict:
        config = {'parameters': validate_md_parameters(self.inputs.parameters.get_dict())}
        if 'checkpoint' in self.inputs:
            config['checkpoint'] = RESTART_FILENAME
        walltime = self.inputs.metadata.options.get('max_wallclock_seconds')
        if walltime:
            config['wall_time_s'] = engine_wall_time(walltime)
        return config

    def _write_inputs(self, folder) -> None:
        from ase.io import write

        atoms = self.inputs.structure.get_ase()
        with folder.open('structure.xyz', 'w', encoding='utf8') as handle:
            write(handle, atoms, format='extxyz')

    def _local_copies(self) -> list[tuple]:
        if 'checkpoint' not in self.inputs:
            return []
        checkpoint = self.inputs.checkpoint
        return [(checkpoint.uuid, checkpoint.filename, RESTART_FILENAME)]

    def _retrieve_list(self) -> list[str]:
        return ['report.json', 'thermo.dat', 'trajectory.npz', 'snapshots.xyz', 'final.xyz', CHECKPOINT_FILENAME]


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
