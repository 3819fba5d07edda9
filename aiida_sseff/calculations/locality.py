"""``sseff.engine.locality``: the frozen-sphere runs of ``aiida-sseff-engine locality`` as a CalcJob.

The ``calculator``/``model`` inputs (of :class:`~aiida_sseff.calculations.engine.EngineCalculation`) are the
perturbation model that runs the MD of the outer region; ``surrogate_calculator``/``surrogate_model`` the model
whose force on the central atom is measured (default: the perturbation model, whose forces are then reused).
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import CalcJob

from aiida_sseff.calculations.engine import MODEL_FILENAMES, EngineCalculation, _validate_calculator, _validate_inputs
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.data.model import MaceModel, NepModel
from aiida_sseff.engines.calculators import validate_spec
from aiida_sseff.engines.locality import RESULTS_FILENAME, SNAPSHOTS_FILENAME, validate_locality_parameters
from aiida_sseff.engines.md import MdParameterError

__all__ = ['EngineLocalityCalculation', 'GpumdLocalityCalculation', 'surrogate_model_filename']


def surrogate_model_filename(kind: str) -> str:
    """Where the surrogate's model file goes in the working directory (beside the perturbation model's)."""
    return f'surrogate_{MODEL_FILENAMES[kind]}'


def _validate_locality_inputs(inputs, ctx):
    message = _validate_inputs(inputs, ctx)
    if message:
        return message
    if 'surrogate_calculator' in inputs:
        surrogate = {key: value for key, value in (('calculator', inputs['surrogate_calculator']),
                                                   ('model', inputs.get('surrogate_model')),
                                                   ('structure', inputs.get('structure'))) if value is not None}
        message = _validate_inputs(surrogate, ctx)
        if message:
            return f'surrogate: {message}'
    elif 'surrogate_model' in inputs:
        return '`surrogate_model` needs a `surrogate_calculator` (its kind)'
    if 'parameters' in inputs and 'structure' in inputs:
        from aiida_sseff.analysis.locality import check_sphere_fits

        structure = inputs['structure']
        try:
            parameters = validate_locality_parameters(inputs['parameters'].get_dict(), len(structure.sites))
            for radius in parameters['radii']:
                check_sphere_fits(structure.cell, radius, parameters['margin_A'])
        except (MdParameterError, ValueError) as exception:  # SphereDoesNotFitError is a ValueError
            return f'parameters: {exception}'


class EngineLocalityCalculation(EngineCalculation):
    """σ_f raw data: for each central atom and frozen radius r_f, the surrogate's force on the central atom in
    ``n_snapshots`` snapshots of an NVT MD of the atoms outside the sphere (see :mod:`aiida_sseff.engines.locality`).

    Output ``forces`` (ArrayData): ``forces`` (centres × radii × snapshots × 3, eV/Å), ``centers``, ``radii`` (Å),
    ``n_frozen``, ``snapshot_steps``, ``mean_temperature_K``; ``snapshots`` with ``store_snapshots``.
    """

    _TASK = 'locality'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData,
                   help='The periodic cell; it must hold every frozen sphere (see the `sseff.locality` work chain, '
                        'which replicates it).')
        spec.input('parameters', valid_type=orm.Dict,
                   help='centers, radii (Å), n_snapshots, snapshot_interval, n_equilibration_steps, temperature_K, '
                        '... (aiida_sseff.engines.locality.DEFAULT_LOCALITY_PARAMETERS).')
        spec.input('surrogate_calculator', valid_type=orm.Dict, required=False, validator=_validate_calculator,
                   help='Calculator spec of the surrogate (default: the perturbation model `calculator`).')
        spec.input('surrogate_model', valid_type=(NepModel, MaceModel), required=False,
                   help='Model of the surrogate, for kind nep or mace.')
        spec.inputs.validator = _validate_locality_inputs
        spec.inputs['metadata']['options']['parser_name'].default = 'sseff.engine.locality'
        spec.output('forces', valid_type=orm.ArrayData, help='Central-atom forces per snapshot and the run layout.')
        spec.output('snapshots', valid_type=LabelledDataset, required=False,
                    help='The snapshots (with `store_snapshots`), unlabelled.')
        spec.exit_code(400, 'ERROR_MD_UNSTABLE', message='The MD of the outer region became unstable: {message}')
        spec.exit_code(401, 'ERROR_ATOMS_TOO_CLOSE', message='Atoms came too close: {message}')

    def _extra_config(self) -> dict:
        config = {'parameters': validate_locality_parameters(self.inputs.parameters.get_dict())}
        if 'surrogate_calculator' in self.inputs:
            spec = self.inputs.surrogate_calculator.get_dict()
            if 'surrogate_model' in self.inputs:
                spec['model'] = surrogate_model_filename(spec['kind'])
            config['surrogate'] = validate_spec(spec)
        return config

    def _write_inputs(self, folder) -> None:
        from ase.io import write

        with folder.open('structure.xyz', 'w', encoding='utf8') as handle:
            write(handle, self.inputs.structure.get_ase(), format='extxyz')

    def _local_copies(self) -> list[tuple]:
        if 'surrogate_model' not in self.inputs:
            return []
        model = self.inputs.surrogate_model
        return [(model.uuid, model.filename, surrogate_model_filename(self.inputs.surrogate_calculator['kind']))]

    def _retrieve_list(self) -> list[str]:
        return ['report.json', RESULTS_FILENAME, SNAPSHOTS_FILENAME]


#: keys of the GPUMD locality ``parameters`` and their defaults (see :func:`write_gpumd_locality_inputs`)
GPUMD_LOCALITY_DEFAULTS = {'center': None, 'radius': None, 'temperature_K': 1000.0, 'n_snapshots': 100,
                           'snapshot_interval': 5000, 'n_equilibration_steps': 10000, 'timestep_fs': 1.0,
                           'velocity_seed': None, 'margin_A': 0.0}
GPUMD_DUMP_FILENAME = 'dump.xyz'


def gpumd_locality_parameters(parameters: dict) -> dict:
    """Fill the defaults of :data:`GPUMD_LOCALITY_DEFAULTS`; ``ValueError`` naming an unknown or missing key."""
    unknown = sorted(set(parameters) - set(GPUMD_LOCALITY_DEFAULTS))
    if unknown:
        raise ValueError(f'parameters: unknown key(s) {unknown}; known: {sorted(GPUMD_LOCALITY_DEFAULTS)}')
    p = {**GPUMD_LOCALITY_DEFAULTS, **parameters}
    for key in ('center', 'radius'):
        if p[key] is None:
            raise ValueError(f'parameters: `{key}` is required')
    return p


def _validate_gpumd_locality_inputs(inputs, _):
    if 'structure' not in inputs or 'parameters' not in inputs:
        return None
    import tempfile

    structure = inputs['structure']
    model = inputs.get('model')
    if model is not None and model.elements:
        missing = sorted(set(structure.get_symbols_set()) - set(model.elements))
        if missing:
            return f'the model does not know the element(s) {", ".join(missing)} (it knows {", ".join(model.elements)})'
    try:
        p = gpumd_locality_parameters(inputs['parameters'].get_dict())
        version = _gpumd_version(inputs)
        with tempfile.TemporaryDirectory() as directory:  # the same writer as the job: what it refuses, we refuse
            _write_gpumd_inputs(directory, structure, p, version)
    except ValueError as exception:  # SphereDoesNotFitError and the run.in checks of io.gpumd included
        return f'parameters: {exception}'


def _gpumd_version(inputs) -> str:
    from aiida_sseff.calculations.gpumd import resolve_gpumd_version

    return resolve_gpumd_version(inputs.get('gpumd_version'), inputs.get('code'))


def _write_gpumd_inputs(directory, structure, p: dict, version: str) -> str:
    from aiida_sseff.calculations.gpumd import POTENTIAL_FILENAME, _gpumd_atoms
    from aiida_sseff.engines.locality import write_gpumd_locality_inputs

    return write_gpumd_locality_inputs(
        directory, _gpumd_atoms(structure), int(p['center']), float(p['radius']), temperature=p['temperature_K'],
        n_snapshots=p['n_snapshots'], snapshot_interval=p['snapshot_interval'],
        equilibration_steps=p['n_equilibration_steps'], time_step_fs=p['timestep_fs'],
        velocity_seed=p['velocity_seed'], margin=p['margin_A'], gpumd_version=version, potential=POTENTIAL_FILENAME)


class GpumdLocalityCalculation(CalcJob):
    """One frozen-sphere run on GPUMD: the sphere of ``radius`` around atom ``center`` is group 1 of grouping
    method 0, frozen by ``fix``; NVT (``nvt_bdp``) of the rest; ``n_snapshots`` snapshots dumped. Output
    ``snapshots`` (unlabelled, ``center_index``/``r_f``/``snapshot`` in each frame's info): the surrogate's forces
    come from the label engine (GPUMD zeroes the forces of fixed atoms in its dump)."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The periodic cell (it must hold the sphere).')
        spec.input('model', valid_type=NepModel, help='The NEP model of the perturbation MD, copied as nep.txt.')
        spec.input('parameters', valid_type=orm.Dict,
                   help='center, radius (Å), temperature_K, n_snapshots, snapshot_interval, n_equilibration_steps, '
                        'timestep_fs, velocity_seed, margin_A.')
        spec.input('gpumd_version', valid_type=orm.Str, required=False,
                   help="GPUMD version run.in is written for; default the code's extra `gpumd_version`, else 5.6.")
        spec.inputs.validator = _validate_gpumd_locality_inputs
        spec.inputs['metadata']['options']['parser_name'].default = 'sseff.gpumd.locality'
        spec.inputs['metadata']['options']['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        spec.inputs['metadata']['options']['withmpi'].default = False
        spec.output('snapshots', valid_type=LabelledDataset, help='The dumped snapshots (unlabelled).')
        from aiida_sseff.calculations.gpumd import declare_gpumd_run_exit_codes

        declare_gpumd_run_exit_codes(spec)

    def prepare_for_submission(self, folder):
        from aiida.common import datastructures

        from aiida_sseff.calculations.gpumd import LOG_FILENAME, POTENTIAL_FILENAME, STDERR_FILENAME

        p = gpumd_locality_parameters(self.inputs.parameters.get_dict())
        _write_gpumd_inputs(folder.get_abs_path('.'), self.inputs.structure, p, _gpumd_version(self.inputs))
        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = []
        codeinfo.stdout_name = LOG_FILENAME
        codeinfo.stderr_name = STDERR_FILENAME
        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        model = self.inputs.model
        calcinfo.local_copy_list = [(model.uuid, model.filename, POTENTIAL_FILENAME)]
        calcinfo.retrieve_list = [LOG_FILENAME, STDERR_FILENAME, 'run.in', 'thermo.out', GPUMD_DUMP_FILENAME]
        return calcinfo
