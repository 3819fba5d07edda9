"""``sseff.engine.locality``: the frozen-sphere runs of ``aiida-sseff-engine locality`` as a CalcJob.

The ``calculator``/``model`` inputs (of :class:`~aiida_sseff.calculations.engine.EngineCalculation`) are the
perturbation model that runs the MD of the outer region; ``surrogate_calculator``/``surrogate_model`` the model
whose force on the central atom is measured (default: the perturbation model, whose forces are then reused).
"""

from __future__ import annotations

from aiida import orm

from aiida_sseff.calculations.engine import MODEL_FILENAMES, EngineCalculation, _validate_calculator, _validate_inputs
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.data.model import MaceModel, NepModel
from aiida_sseff.engines.calculators import validate_spec
from aiida_sseff.engines.locality import RESULTS_FILENAME, SNAPSHOTS_FILENAME, validate_locality_parameters
from aiida_sseff.engines.md import MdParameterError

__all__ = ['EngineLocalityCalculation', 'surrogate_model_filename']


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
