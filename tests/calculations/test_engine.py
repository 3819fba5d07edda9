"""The engine CalcJobs really run ``aiida-sseff-engine`` on localhost (tiny cells, few steps)."""

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.build import bulk

from aiida_sseff.calculations.engine import EngineLabelCalculation, EngineMdCalculation
from aiida_sseff.data.dataset import LabelledDataset


def md_inputs(engine_code, structure, calculator=None, **parameters):
    defaults = dict(temperature_K=600.0, n_steps=60, timestep_fs=2.0, thermo_interval=10, trajectory_interval=5,
                    snapshot_interval=20, seed=7)
    defaults.update(parameters)
    return {
        'code': engine_code,
        'structure': orm.StructureData(ase=structure),
        'calculator': orm.Dict(calculator or {'kind': 'emt'}),
        'parameters': orm.Dict(defaults),
    }


def copper(repeat=(2, 2, 2)):
    return bulk('Cu', 'fcc', a=3.6, cubic=True) * repeat


def test_md_emt_outputs(aiida_profile, engine_code):
    results, node = run_get_node(EngineMdCalculation, **md_inputs(engine_code, copper()))
    assert node.is_finished_ok, node.exit_message
    trajectory = results['trajectory']
    assert trajectory.numsteps == 60 // 5 + 1
    times = trajectory.get_array('times')
    np.testing.assert_allclose(np.diff(times), 5 * 2.0 / 1000)  # ps
    thermo = results['thermo']
    assert set(thermo.get_arraynames()) >= {'temperature_K', 'potential_energy_eV', 'total_energy_eV'}
    assert np.all(np.isfinite(thermo.get_array('temperature_K')))
    assert results['snapshots'].n_structures == 3 and results['snapshots'].has_labels is False
    assert results['results']['n_frames'] == 13
    assert set(results['results']['software']) >= {'python', 'aiida-sseff', 'numpy', 'ase'}  # the versions it ran with
    # positions are unwrapped: the last frame matches the final structure up to a lattice vector
    final = results['structure'].get_ase()
    last = trajectory.get_array('positions')[-1]
    np.testing.assert_allclose(last, final.positions, atol=1e-4)


def test_md_positions_unwrapped_across_boundary(aiida_profile, engine_code):
    """A fast atom crosses the cell: the stored positions must not jump back by a lattice vector."""
    atoms = copper((2, 2, 2))
    results, node = run_get_node(
        EngineMdCalculation,
        **md_inputs(engine_code, atoms, temperature_K=3000.0, n_steps=400, ensemble='nve', trajectory_interval=1,
                    snapshot_interval=0, max_temperature_factor=10.0),
    )
    assert node.is_finished_ok, node.exit_message
    positions = results['trajectory'].get_array('positions')
    steps = np.abs(np.diff(positions, axis=0)).max()
    assert steps < 1.0  # per-frame displacement at 2 fs; a wrap would be ≥ 7.2 Å


def test_md_blow_up_gives_exit_code(aiida_profile, engine_code):
    """Two atoms at 0.3 Å: the sanity check at step 0 refuses to go on (exit code 401)."""
    atoms = copper((2, 2, 2))
    atoms.positions[1] = atoms.positions[0] + [0.3, 0, 0]
    _, node = run_get_node(EngineMdCalculation, **md_inputs(engine_code, atoms))
    assert node.exit_status == EngineMdCalculation.exit_codes.ERROR_ATOMS_TOO_CLOSE.status
    assert 'Å apart' in node.exit_message
    assert 'trajectory' not in node.outputs


def test_md_unknown_element_exit_code(aiida_profile, engine_code):
    atoms = copper((1, 1, 1))
    atoms[0].symbol = 'Li'  # EMT knows no Li
    _, node = run_get_node(EngineMdCalculation, **md_inputs(engine_code, atoms))
    assert node.exit_status == EngineMdCalculation.exit_codes.ERROR_UNKNOWN_ELEMENT.status
    assert 'Li' in node.exit_message


@pytest.mark.parametrize(
    'parameters, message',
    [
        ({'ensemble': 'nvt_magic'}, 'ensemble `nvt_magic` unknown'),
        ({'timestep_fs': -1}, 'timestep_fs must be > 0'),
        ({'n_stepz': 5}, 'unknown MD parameter'),
    ],
)
def test_md_bad_parameters_refused_before_submission(aiida_profile, engine_code, parameters, message):
    inputs = md_inputs(engine_code, copper(), **parameters)
    with pytest.raises(ValueError, match=message):
        run_get_node(EngineMdCalculation, **inputs)


def test_bad_calculator_spec_refused(aiida_profile, engine_code):
    inputs = md_inputs(engine_code, copper(), calculator={'kind': 'nep'})
    with pytest.raises(ValueError, match='needs a `model` input'):
        run_get_node(EngineMdCalculation, **inputs)
    inputs = md_inputs(engine_code, copper(), calculator={'kind': 'dft'})
    with pytest.raises(ValueError, match='kind `dft` unknown'):
        run_get_node(EngineMdCalculation, **inputs)


def test_label_emt_matches_direct_ase(aiida_profile, engine_code):
    from ase.calculators.emt import EMT

    structures = []
    for seed in range(3):
        atoms = copper((1, 1, 2))
        atoms.rattle(0.05, seed=seed)
        atoms.info['config_type'] = f'rattle{seed}'
        structures.append(atoms)
    dataset = LabelledDataset(structures, require_labels=False)
    results, node = run_get_node(
        EngineLabelCalculation, code=engine_code, structures=dataset, calculator=orm.Dict({'kind': 'emt'})
    )
    assert node.is_finished_ok, node.exit_message
    labelled = results['dataset']
    assert labelled.has_labels and labelled.has_virial and labelled.n_structures == 3
    for original, copy in zip(structures, labelled.get_ase(), strict=True):
        reference = original.copy()
        reference.calc = EMT()
        # positions travel as extxyz with 8 decimals, so the engine evaluates a structure 1e-8 Å away
        assert copy.get_potential_energy() == pytest.approx(reference.get_potential_energy(), abs=1e-7)
        np.testing.assert_allclose(copy.get_forces(), reference.get_forces(), atol=1e-6)
        np.testing.assert_allclose(copy.get_stress(), reference.get_stress(), atol=1e-8)
        assert copy.info['config_type'] == original.info['config_type']


def test_label_chgnet_on_li_cell(aiida_profile, engine_code):
    """CHGNet (pretrained weights inside the wheel) labels a small Li-containing cell: the real surrogate reference."""
    atoms = bulk('Li', 'bcc', a=3.44, cubic=True) * (2, 1, 1)
    atoms.rattle(0.05, seed=1)
    dataset = LabelledDataset([atoms], require_labels=False)
    results, node = run_get_node(
        EngineLabelCalculation, code=engine_code, structures=dataset, calculator=orm.Dict({'kind': 'chgnet'})
    )
    assert node.is_finished_ok, node.exit_message
    labelled = results['dataset'].get_ase()[0]
    # CHGNet's Li bcc energy is about -1.9 eV/atom (the MP-compatible PBE reference, -1.91 eV/atom in MP)
    assert -2.3 < labelled.get_potential_energy() / len(labelled) < -1.5
    assert np.abs(labelled.get_forces().sum(axis=0)).max() < 1e-3  # momentum conservation of a real model


def test_label_unknown_element(aiida_profile, engine_code):
    atoms = Atoms('LiCu', positions=[[0, 0, 0], [1.3, 1.3, 1.3]], cell=[2.6] * 3, pbc=True)
    dataset = LabelledDataset([atoms], require_labels=False)
    _, node = run_get_node(
        EngineLabelCalculation, code=engine_code, structures=dataset, calculator=orm.Dict({'kind': 'emt'})
    )
    assert node.exit_status == EngineLabelCalculation.exit_codes.ERROR_UNKNOWN_ELEMENT.status


def test_md_walltime_stop_outputs_and_continuation(aiida_profile, engine_code):
    """max_wallclock_seconds shorter than the margin: the engine stops after one checkpoint interval (60 steps) with
    ERROR_OUT_OF_WALLTIME and the outputs so far; a job given its checkpoint continues the time axis to the end.
    (The direct scheduler on localhost does not enforce the wall time itself, so only the engine's stop is tested.)"""
    inputs = md_inputs(engine_code, copper(), n_steps=120, checkpoint_interval=60, snapshot_interval=0)
    inputs['metadata'] = {'options': {'max_wallclock_seconds': 1}}
    results, node = run_get_node(EngineMdCalculation, **inputs)
    assert node.exit_status == EngineMdCalculation.exit_codes.ERROR_OUT_OF_WALLTIME.status
    assert 'production step 60 of 120' in node.exit_message
    assert results['trajectory'].get_stepids().tolist() == list(range(0, 61, 5))
    assert results['thermo'].get_array('step').tolist() == [0, 10, 20, 30, 40, 50, 60]
    assert results['results']['step'] == 60 and results['results']['n_checkpoints'] == 1

    inputs = md_inputs(engine_code, copper(), n_steps=120, checkpoint_interval=60, snapshot_interval=0)
    inputs['checkpoint'] = results['checkpoint']
    continued, node = run_get_node(EngineMdCalculation, **inputs)
    assert node.is_finished_ok, node.exit_message
    np.testing.assert_allclose(continued['trajectory'].get_array('times'), np.arange(65, 121, 5) * 2.0 / 1000)
    assert continued['results']['restart_step'] == 60


def test_md_checkpoint_of_another_run_refused_before_submission(aiida_profile, engine_code):
    inputs = md_inputs(engine_code, copper(), n_steps=20, snapshot_interval=0)
    results, node = run_get_node(EngineMdCalculation, **inputs)
    assert node.is_finished_ok, node.exit_message
    inputs = md_inputs(engine_code, copper(), n_steps=20, snapshot_interval=0, temperature_K=900.0)
    inputs['checkpoint'] = results['checkpoint']
    with pytest.raises(ValueError, match=r'`checkpoint`: .*temperature_K: 600.0 in the checkpoint, 900.0 now'):
        run_get_node(EngineMdCalculation, **inputs)


def test_md_parser_after_a_hard_kill_keeps_the_checkpoint(aiida_profile, calc_job_node_factory, tmp_path):
    """No report.json (the scheduler killed the engine) but a checkpoint: ERROR_MISSING_REPORT, and the outputs
    written with that checkpoint, so that sseff.engine.md.base can continue and join the run."""
    from ase.calculators.emt import EMT

    from aiida_sseff.engines.md import run_md
    from aiida_sseff.parsers.engine import EngineMdParser

    parameters = {'n_steps': 60, 'thermo_interval': 10, 'trajectory_interval': 10, 'checkpoint_interval': 20}
    run_md(copper(), EMT(), parameters, tmp_path, wall_time_s=0.0)  # stops at step 20 like a killed run's last save
    inputs = {'parameters': orm.Dict(parameters), 'structure': orm.StructureData(ase=copper()),
              'calculator': orm.Dict({'kind': 'emt'})}
    node = calc_job_node_factory('sseff.engine.md', tmp_path, inputs,
                                 files=['thermo.dat', 'trajectory.npz', 'final.xyz', 'checkpoint.npz'])
    results, calcfunction = EngineMdParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == EngineMdCalculation.exit_codes.ERROR_MISSING_REPORT.status
    assert results['trajectory'].get_stepids().tolist() == [0, 10, 20]
    assert results['results']['killed'] is True and results['results']['step'] == 20
    assert 'checkpoint' in results
