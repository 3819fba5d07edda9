"""``sseff.engine.md.base`` on the real engine (EMT copper): wall-time continuation and the half-time-step restart."""

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk

from aiida_sseff.analysis.msd import compute_msd
from aiida_sseff.calculations.engine import EngineMdCalculation
from aiida_sseff.workflows.md import EngineMdBaseWorkChain

PARAMETERS = {'ensemble': 'nvt_bussi', 'temperature_K': 1200.0, 'timestep_fs': 2.0, 'n_steps': 300,
              'thermo_interval': 10, 'trajectory_interval': 5, 'snapshot_interval': 50, 'checkpoint_interval': 100,
              'seed': 5}


def md_namespace(engine_code, **parameters):
    return {
        'code': engine_code,
        'structure': orm.StructureData(ase=bulk('Cu', 'fcc', a=3.6, cubic=True) * (2, 2, 2)),
        'calculator': orm.Dict({'kind': 'emt'}),
        'parameters': orm.Dict({**PARAMETERS, **parameters}),
    }


def called_md(node):
    return sorted((c for c in node.called if c.process_class is EngineMdCalculation), key=lambda c: c.ctime)


@pytest.mark.slow
def test_walltime_segments_join_to_the_uninterrupted_run(aiida_profile, engine_code):
    """A wall time shorter than the engine's margin stops every job after one checkpoint interval (100 of 300
    steps): three jobs, joined in provenance, give the uninterrupted run's trajectory and MSD."""
    reference, reference_node = run_get_node(EngineMdCalculation, **md_namespace(engine_code))
    assert reference_node.is_finished_ok, reference_node.exit_message

    md = md_namespace(engine_code)
    md['metadata'] = {'options': {'max_wallclock_seconds': 1}}  # the direct scheduler does not enforce it
    results, node = run_get_node(EngineMdBaseWorkChain, md=md)
    assert node.is_finished_ok, node.exit_message
    jobs = called_md(node)
    assert [job.exit_status for job in jobs] == [EngineMdCalculation.exit_codes.ERROR_OUT_OF_WALLTIME.status] * 2 + [0]
    assert jobs[1].inputs.checkpoint.uuid == jobs[0].outputs.checkpoint.uuid

    trajectory = results['trajectory']
    assert trajectory.creator.process_label == 'join_md_segments'
    expected = reference['trajectory']
    np.testing.assert_array_equal(trajectory.get_stepids(), expected.get_stepids())
    np.testing.assert_array_equal(trajectory.get_array('times'), expected.get_array('times'))
    symbols = trajectory.symbols
    msd = compute_msd(trajectory.get_array('positions'), symbols, species='Cu', remove_drift=False, dt_ps=0.01)
    msd_reference = compute_msd(expected.get_array('positions'), symbols, species='Cu', remove_drift=False,
                                dt_ps=0.01)
    # with the complete state saved the trajectory is the same bit for bit; rtol 1e-6 is float32 round-off
    np.testing.assert_allclose(msd.msd_total, msd_reference.msd_total, rtol=1e-6, atol=1e-9)
    assert msd_reference.msd_total[-1] > 0.01  # Cu vibrating at 1200 K: a real signal

    np.testing.assert_array_equal(results['thermo'].get_array('step'), reference['thermo'].get_array('step'))
    np.testing.assert_allclose(results['thermo'].get_array('temperature_K'),
                               reference['thermo'].get_array('temperature_K'), rtol=1e-9)
    assert results['snapshots'].n_structures == reference['snapshots'].n_structures == 6
    summary = results['results'].get_dict()
    assert summary['n_segments'] == 3 and summary['n_frames'] == 61
    assert summary['mean_temperature_K'] == pytest.approx(reference['results']['mean_temperature_K'], rel=1e-6)


@pytest.mark.slow
def test_unstable_restarts_once_with_half_the_timestep_then_exit_code(aiida_profile, engine_code):
    """A temperature limit no run can meet (0.01 × 1200 K) makes every job unstable at step 0: the work chain
    restarts once with half the time step and doubled step counts (the same times), then stops with
    ERROR_MD_UNSTABLE."""
    md = md_namespace(engine_code, n_steps=40, snapshot_interval=0, checkpoint_interval=40,
                      max_temperature_factor=0.01)
    _, node = run_get_node(EngineMdBaseWorkChain, md=md)
    assert node.exit_status == EngineMdBaseWorkChain.exit_codes.ERROR_MD_UNSTABLE.status
    assert 'reduced to 1 fs' in node.exit_message
    first, second = called_md(node)
    assert first.exit_status == second.exit_status == EngineMdCalculation.exit_codes.ERROR_MD_UNSTABLE.status
    parameters = second.inputs.parameters.get_dict()
    assert parameters['timestep_fs'] == 1.0
    assert (parameters['n_steps'], parameters['thermo_interval'], parameters['trajectory_interval']) == (80, 20, 10)
    assert 'checkpoint' not in second.inputs


@pytest.mark.slow
def test_atoms_too_close_gets_its_own_exit_code(aiida_profile, engine_code):
    """Two atoms 0.3 Å apart fail the check at step 0 however small the time step: ERROR_ATOMS_TOO_CLOSE."""
    md = md_namespace(engine_code, n_steps=20, snapshot_interval=0)
    atoms = md['structure'].get_ase()
    atoms.positions[1] = atoms.positions[0] + [0.3, 0, 0]
    md['structure'] = orm.StructureData(ase=atoms)
    _, node = run_get_node(EngineMdBaseWorkChain, md=md)
    assert node.exit_status == EngineMdBaseWorkChain.exit_codes.ERROR_ATOMS_TOO_CLOSE.status
    assert len(called_md(node)) == 2


def _segment(steps, value):
    trajectory = orm.TrajectoryData()
    positions = np.full((len(steps), 1, 3), value, dtype=float)
    trajectory.set_trajectory(symbols=['Cu'], positions=positions, stepids=np.array(steps),
                              cells=np.repeat(np.eye(3)[None] * 3.6, len(steps), axis=0),
                              times=np.array(steps) * 0.002)
    thermo = orm.ArrayData()
    thermo.set_array('step', np.array(steps, dtype=float))
    for name in ('temperature_K', 'volume_A3', 'pressure_GPa'):
        thermo.set_array(name, np.full(len(steps), value))
    return trajectory, thermo


def test_join_drops_what_a_killed_segment_recorded_after_its_checkpoint(aiida_profile):
    """Segment 0 was killed after recording step 30, but its last checkpoint is at step 20; segment 1 continued from
    20 and recorded 30 and 40 again: the join keeps steps 0–20 of segment 0 and all of segment 1."""
    from aiida_sseff.workflows.md import join_md_segments

    trajectory_0, thermo_0 = _segment([0, 10, 20, 30], 1.0)
    trajectory_1, thermo_1 = _segment([30, 40], 2.0)
    results_0 = orm.Dict({'killed': True, 'step': 20, 'wall_time_s': 5.0, 'equilibrated_volume_A3': None})
    results_1 = orm.Dict({'restart_step': 20, 'step': 40, 'n_steps': 40, 'wall_time_s': 3.0})
    joined = join_md_segments(trajectory_00=trajectory_0, thermo_00=thermo_0, results_00=results_0,
                              trajectory_01=trajectory_1, thermo_01=thermo_1, results_01=results_1)
    assert joined['trajectory'].get_stepids().tolist() == [0, 10, 20, 30, 40]
    assert joined['trajectory'].get_array('positions')[:, 0, 0].tolist() == [1.0, 1.0, 1.0, 2.0, 2.0]
    assert joined['thermo'].get_array('step').tolist() == [0, 10, 20, 30, 40]
    summary = joined['results'].get_dict()
    assert summary['n_segments'] == 2 and summary['wall_time_s'] == 8.0 and 'restart_step' not in summary
    assert summary['mean_temperature_K'] == pytest.approx((3 * 1.0 + 2 * 2.0) / 5)
