"""``sseff.cp2k`` and ``sseff.label.cp2k.base`` with the real CP2K (Debian ``cp2k``) on a 12-atom Li2O cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.spacegroup import crystal

from aiida_sseff.calculations.cp2k import Cp2kCalculation

CHEAP = {'basis_set': 'SZV-MOLOPT-SR-GTH', 'cutoff_Ry': 300.0, 'rel_cutoff_Ry': 40.0, 'scf': {'eps_scf': 1.0e-6}}


def li2o(a: float = 4.61, rattle: float = 0.0, seed: int = 1):
    """Conventional antifluorite Li2O, 12 atoms (experimental a = 4.611 Å)."""
    atoms = crystal(['O', 'Li'], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=225, cellpar=[a, a, a, 90, 90, 90])
    if rattle:
        atoms.rattle(rattle, seed=seed)
    return atoms


def inputs(code, atoms, parameters=None, **options):
    return {
        'code': code,
        'structure': orm.StructureData(ase=atoms),
        'parameters': orm.Dict(parameters if parameters is not None else CHEAP),
        'metadata': {'options': options},
    }


def test_input_files_written(aiida_profile, cp2k_code, tmp_path, monkeypatch):
    """prepare_for_submission (dry run): the input file and the basis/potential entries the structure needs."""
    monkeypatch.chdir(tmp_path)  # a dry run writes its folder under the working directory
    calc_inputs = inputs(cp2k_code, li2o(), {**CHEAP, 'kpoints_spacing': 0.5}, max_wallclock_seconds=1000)
    calc_inputs['metadata'].update({'dry_run': True, 'store_provenance': False})
    _, node = run_get_node(Cp2kCalculation, **calc_inputs)
    folder = Path(node.dry_run_info['folder'])
    text = (folder / 'aiida.inp').read_text()
    assert 'SCHEME MONKHORST-PACK 3 3 3' in text  # 2π/4.61 Å / 0.5 Å⁻¹ = 2.73 → 3
    assert 'WALLTIME 900' in text  # 10 % of the scheduler's walltime is left to CP2K to write its files
    assert 'BASIS_SET SZV-MOLOPT-SR-GTH' in text and 'POTENTIAL GTH-PBE-q3' in text
    basis = (folder / 'BASIS_SETS').read_text()
    assert basis.startswith('Li SZV-MOLOPT-SR-GTH') or basis.startswith('O SZV-MOLOPT-SR-GTH')
    assert {line.split()[0] for line in basis.splitlines() if 'MOLOPT' in line} == {'Li', 'O'}


@pytest.mark.parametrize('case, message', [
    ('overlap', 'closer than 0.5 Å'),
    ('element', r'element\(s\) U: no pseudopotential'),
    ('kspacing', 'kpoints_spacing must be > 0'),
])
def test_bad_input_refused_before_submission(aiida_profile, cp2k_code, case, message):
    atoms, parameters = li2o(), dict(CHEAP)
    if case == 'overlap':
        atoms.positions[1] = atoms.positions[0] + [0.2, 0.2, 0.0]
    elif case == 'element':
        atoms[0].symbol = 'U'
    else:
        parameters['kpoints_spacing'] = -0.25
    with pytest.raises(ValueError, match=message):
        run_get_node(Cp2kCalculation, **inputs(cp2k_code, atoms, parameters))


def test_single_point_labels(aiida_profile, cp2k_code):
    atoms = li2o(a=4.50, rattle=0.03)
    results, node = run_get_node(Cp2kCalculation, **inputs(cp2k_code, atoms))
    assert node.is_finished_ok, node.exit_message
    labels = results['labels']
    forces = labels.get_array('forces')
    assert forces.shape == (12, 3) and np.abs(forces).max() > 0.05
    # a = 4.50 Å is 2.4 % below the experimental 4.611 Å: compressed, so the ASE-sign stress is negative
    assert np.trace(labels.get_array('stress')) < 0
    assert results['output_parameters']['scf_converged'] is True
    assert results['output_parameters']['energy_eV'] == pytest.approx(labels.get_array('energy')[0])


def test_scf_not_converged_exit_code(aiida_profile, cp2k_code):
    results, node = run_get_node(Cp2kCalculation, **inputs(cp2k_code, li2o(), {**CHEAP, 'scf': {'max_scf': 2}}))
    assert node.exit_status == Cp2kCalculation.exit_codes.ERROR_SCF_NOT_CONVERGED.status
    assert 'labels' not in results  # an unconverged run never yields labels
    assert results['output_parameters']['scf_converged'] is False


def test_walltime_exit_code_and_restart(aiida_profile, cp2k_code):
    """max_wallclock_seconds = 2 gives CP2K a WALLTIME of 1 s: it leaves the SCF at once (exit 400); the base
    workchain then restarts from the wavefunction CP2K wrote (SCF_GUESS RESTART in the second input)."""
    from aiida_sseff.workflows.labelling import Cp2kBaseWorkChain

    calc_inputs = inputs(cp2k_code, li2o(), max_wallclock_seconds=2)
    _, node = run_get_node(Cp2kBaseWorkChain, cp2k=calc_inputs, max_iterations=orm.Int(2))
    calcs = sorted(node.called, key=lambda n: n.ctime)
    assert [c.exit_status for c in calcs] == [Cp2kCalculation.exit_codes.ERROR_WALLTIME.status] * 2
    assert 'parent_calc_folder' in calcs[1].inputs
    assert 'SCF_GUESS RESTART' in calcs[1].base.repository.get_object_content('aiida.inp')
    assert node.exit_status == Cp2kBaseWorkChain.exit_codes.ERROR_MAXIMUM_ITERATIONS_EXCEEDED.status


@pytest.mark.slow
def test_scf_handler_recovers(aiida_profile, cp2k_code):
    """MAX_SCF 5 is too few: the handler doubles it and halves the mixing, then switches solver (Γ only) until the
    SCF converges; the labels of the last run are the output."""
    from aiida_sseff.workflows.labelling import Cp2kBaseWorkChain

    calc_inputs = inputs(cp2k_code, li2o(rattle=0.02), {**CHEAP, 'scf': {'max_scf': 5, 'eps_scf': 1e-5}})
    results, node = run_get_node(Cp2kBaseWorkChain, cp2k=calc_inputs, max_iterations=orm.Int(4))
    assert node.is_finished_ok, node.exit_message
    calcs = sorted(node.called, key=lambda n: n.ctime)
    assert calcs[0].exit_status == Cp2kCalculation.exit_codes.ERROR_SCF_NOT_CONVERGED.status
    second = calcs[1].inputs.parameters['scf']
    assert second['max_scf'] == 10 and second['mixing_alpha'] == pytest.approx(0.15)
    assert calcs[-1].is_finished_ok and 'labels' in results
