"""``sseff.cp2k``: a CP2K DFT single point (energy, forces, analytical stress) of one periodic structure.

Our own CalcJob rather than aiida-cp2k's (its output parser pins numpy < 2, see DESIGN.md). The input file, and the
basis-set and pseudopotential entries the structure needs, are written by :mod:`aiida_sseff.io.cp2k`.
"""

from __future__ import annotations

import os

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_sseff.analysis.geometry import closest_pair
from aiida_sseff.io import cp2k as cp2k_io

# Two atoms closer than this are an error in the structure, never a configuration to label (the shortest bond in
# any solid, H–H in H2, is 0.74 Å).
MIN_DISTANCE_A = 0.5


def _validate_parameters(value, _):
    try:
        cp2k_io.validate_parameters(value.get_dict())
    except ValueError as exception:
        return str(exception)


def _validate_structure(value, _):
    return structure_problem(value.get_ase())


def structure_problem(atoms, min_distance: float = MIN_DISTANCE_A) -> str | None:
    """A sentence naming what makes ``atoms`` unfit for a single point (non-periodic cell, overlapping atoms)."""
    if not atoms.pbc.all():
        return 'the structure must be periodic in all three directions for a CP2K single point'
    first, second, distance = closest_pair(atoms)
    if distance < min_distance:
        return (
            f'atoms {first} ({atoms[first].symbol}) and {second} ({atoms[second].symbol}) are {distance:.3f} Å apart, '
            f'closer than {min_distance} Å: the structure has overlapping atoms'
        )
    return None


def kinds_problem(elements, parameters: dict) -> str | None:
    """A sentence naming the elements without a basis set or pseudopotential in the local CP2K data, or None."""
    try:
        cp2k_io.resolve_kinds(
            elements,
            basis_set=parameters['basis_set'],
            potential=parameters['potential'],
            basis_files=parameters['basis_files'],
            potential_file=parameters['potential_file'],
        )
    except cp2k_io.Cp2kDataError as exception:
        return str(exception)
    return None


def _validate_inputs(inputs, _):
    if 'structure' not in inputs or 'parameters' not in inputs:
        return None
    try:
        parameters = cp2k_io.validate_parameters(inputs['parameters'].get_dict())
    except ValueError:
        return None  # reported by the port validator
    return kinds_problem(inputs['structure'].get_symbols_set(), parameters)


class Cp2kCalculation(CalcJob):
    """CP2K (Quickstep, GPW) single point: PBE, GTH pseudopotentials, MOLOPT basis sets, Γ only or a k-point mesh.

    Outputs ``labels`` (ArrayData: ``energy`` [eV], ``forces`` [eV/Å, N×3], ``stress`` [eV/Å³, 3×3, ASE sign]) and
    ``output_parameters`` (Dict). A run whose SCF did not converge ends with exit code 410 and no ``labels``.
    """

    _INPUT = 'aiida.inp'
    _OUTPUT = 'aiida.out'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, validator=_validate_structure,
                   help='The periodic structure (Å).')
        spec.input('parameters', valid_type=orm.Dict, validator=_validate_parameters,
                   help='Settings merged into aiida_sseff.io.cp2k.DEFAULT_PARAMETERS (cutoffs in Ry, '
                        'kpoints_spacing in Å⁻¹ with 2π included, scf solver/mixing/smearing).')
        spec.input('parent_calc_folder', valid_type=orm.RemoteData, required=False,
                   help='A previous run of the same structure: its wavefunction starts the SCF.')
        spec.inputs.validator = _validate_inputs
        options = spec.inputs['metadata']['options']
        options['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        options['withmpi'].default = False
        options['parser_name'].default = 'sseff.cp2k'
        options['input_filename'].default = cls._INPUT
        options['output_filename'].default = cls._OUTPUT

        spec.output('labels', valid_type=orm.ArrayData, help='energy (eV), forces (eV/Å), stress (eV/Å³, ASE sign).')
        spec.output('output_parameters', valid_type=orm.Dict, help='Energy, SCF steps, CP2K version, warnings.')

        spec.exit_code(301, 'ERROR_OUTPUT_MISSING', message='CP2K wrote no output file `aiida.out`.')
        spec.exit_code(302, 'ERROR_OUTPUT_UNREADABLE', message='The CP2K output could not be read: {message}')
        spec.exit_code(303, 'ERROR_OUTPUT_INCOMPLETE',
                       message='The CP2K output stops before the energy and forces: CP2K crashed or was killed.')
        spec.exit_code(400, 'ERROR_WALLTIME',
                       message='CP2K reached its walltime before the SCF converged; the labels are not usable.')
        spec.exit_code(410, 'ERROR_SCF_NOT_CONVERGED',
                       message='The SCF did not converge within MAX_SCF steps; the labels are not usable.')
        spec.exit_code(420, 'ERROR_NON_FINITE', message='CP2K returned a non-finite energy, force or stress.')

    def prepare_for_submission(self, folder):
        parameters = cp2k_io.validate_parameters(self.inputs.parameters.get_dict())
        atoms = self.inputs.structure.get_ase()
        kinds = cp2k_io.resolve_kinds(
            atoms.get_chemical_symbols(),
            basis_set=parameters['basis_set'],
            potential=parameters['potential'],
            basis_files=parameters['basis_files'],
            potential_file=parameters['potential_file'],
        )
        basis, potentials = cp2k_io.write_library_files(kinds)

        remote_copy_list = []
        restart_file = None
        if 'parent_calc_folder' in self.inputs:
            parent = self.inputs.parent_calc_folder
            extension = 'wfn' if parameters['kpoints_spacing'] is None else 'kp'
            restart_file = f'parent-RESTART.{extension}'
            source = os.path.join(parent.get_remote_path(), f'{cp2k_io.PROJECT}-RESTART.{extension}')
            # a copy, not a link: CP2K rewrites <PROJECT>-RESTART.* and must not overwrite the parent's file
            remote_copy_list.append((parent.computer.uuid, source, restart_file))

        walltime = self.inputs.metadata.options.get('max_wallclock_seconds')
        # leave CP2K time to write its restart file and output before the scheduler kills the job
        walltime_s = walltime - min(300.0, 0.1 * walltime) if walltime else None

        with folder.open(self._INPUT, 'w', encoding='utf8') as handle:
            handle.write(cp2k_io.write_input(atoms, parameters, kinds, walltime_s=walltime_s,
                                             restart_file=restart_file))
        with folder.open(cp2k_io.BASIS_FILENAME, 'w', encoding='utf8') as handle:
            handle.write(basis)
        with folder.open(cp2k_io.POTENTIAL_FILENAME, 'w', encoding='utf8') as handle:
            handle.write(potentials)

        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = ['-i', self._INPUT, '-o', self._OUTPUT]
        codeinfo.stdout_name = 'cp2k.stdout'

        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = []
        calcinfo.remote_copy_list = remote_copy_list
        calcinfo.retrieve_list = [self._OUTPUT, 'cp2k.stdout']
        return calcinfo
