"""Parser of ``sseff.cp2k``: reads CP2K's main output from ``self.retrieved`` only."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_sseff.io.cp2k import read_output


class Cp2kParser(Parser):
    """``aiida.out`` → ``labels`` (energy eV, forces eV/Å, stress eV/Å³ with the ASE sign) + ``output_parameters``.

    Labels are attached only when the SCF converged and CP2K did not stop at its walltime: a single point that
    failed must never yield numbers that look like labels.
    """

    def parse(self, **kwargs):
        filename = self.node.get_option('output_filename') or 'aiida.out'
        try:
            text = self.retrieved.base.repository.get_object_content(filename)
        except FileNotFoundError:
            return self.exit_codes.ERROR_OUTPUT_MISSING
        n_atoms = len(self.node.inputs.structure.sites)
        try:
            result = read_output(text, n_atoms=n_atoms)
        except ValueError as exception:
            if 'exceeded requested execution time' in text:
                return self.exit_codes.ERROR_WALLTIME
            if 'PROGRAM ENDED AT' not in text:
                return self.exit_codes.ERROR_OUTPUT_INCOMPLETE
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(message=str(exception))

        summary = {
            'energy_eV': result['energy'],
            'scf_converged': result['scf_converged'],
            'n_scf_steps': result['n_scf_steps'],
            'walltime_exceeded': result['walltime_exceeded'],
            'finished': result['finished'],
            'cp2k_version': result['cp2k_version'],
            'n_warnings': result['warnings'],
            'units': {'energy': 'eV', 'forces': 'eV/angstrom', 'stress': 'eV/angstrom^3 (ASE sign)'},
        }
        self.out('output_parameters', orm.Dict(summary))

        if result['walltime_exceeded']:
            return self.exit_codes.ERROR_WALLTIME
        if not result['scf_converged']:
            return self.exit_codes.ERROR_SCF_NOT_CONVERGED
        if not result['finished']:
            return self.exit_codes.ERROR_OUTPUT_INCOMPLETE
        structure = self.node.inputs.structure
        expected = [structure.get_kind(site.kind_name).symbol for site in structure.sites]
        if result['symbols'] != expected:
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(
                message='the atoms of the force block are not those of the input structure, in its order'
            )
        stress = result['stress']
        values = [np.atleast_1d(result['energy']), result['forces']] + ([stress] if stress is not None else [])
        if not all(np.isfinite(value).all() for value in values):
            return self.exit_codes.ERROR_NON_FINITE

        labels = orm.ArrayData()
        labels.set_array('energy', np.array([result['energy']]))
        labels.set_array('forces', result['forces'])
        if stress is not None:
            labels.set_array('stress', stress)
        labels.base.attributes.set('units', summary['units'])
        self.out('labels', labels)
        return None
