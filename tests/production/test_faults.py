"""Faults on the production profile (issue #13, item 3), each with the real engine on the loopback computer (SSH +
Slurm) and the daemon: the daemon stopped in the middle of a WorkChain, a job killed by Slurm for its wall time, job
outputs truncated (test_database_outage.py: the database stopped under a
running WorkChain)."""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
from aiida import orm
from aiida.engine import submit

from aiida_sseff.calculations.engine import EngineLabelCalculation, EngineMdCalculation
from aiida_sseff.workflows.md import EngineMdBaseWorkChain

pytestmark = pytest.mark.production

# as tests/workflows/test_engine_md_base.py: 300 steps, a checkpoint every 100
SEGMENTED = {'ensemble': 'nvt_bussi', 'temperature_K': 1200.0, 'timestep_fs': 2.0, 'n_steps': 300,
             'thermo_interval': 10, 'trajectory_interval': 5, 'snapshot_interval': 50, 'checkpoint_interval': 100,
             'seed': 5}


def md_inputs(code, structure, parameters, **options):
    inputs = {'code': code, 'structure': structure, 'calculator': orm.Dict({'kind': 'emt'}),
              'parameters': orm.Dict(parameters)}
    if options:
        inputs['metadata'] = {'options': options}
    return inputs


def halve(*files: str) -> str:
    """Shell lines (a job's append_text) that cut each file to half its size."""
    return '\n'.join(f'truncate -s $(( $(stat -c %s {name}) / 2 )) {name}' for name in files)


def md_jobs(node):
    return sorted((child for child in node.called if child.process_class is EngineMdCalculation),
                  key=lambda child: child.ctime)


@pytest.fixture(scope='module')
def uninterrupted_md(daemon_client, remote_engine_code, copper_structure, wait_for):
    """The 300-step run as one job, never interrupted: the reference of the daemon-restart test."""
    node = wait_for(submit(EngineMdCalculation, **md_inputs(remote_engine_code, copper_structure, SEGMENTED)))
    assert node.is_finished_ok, node.exit_message
    return node


def test_daemon_stopped_mid_workchain_finishes_with_the_same_numbers(daemon_client, remote_engine_code,
                                                                     copper_structure, uninterrupted_md, wait_for,
                                                                     wait_until):
    """sseff.engine.md.base in three wall-time segments (max_wallclock_seconds=1: the engine stops after each
    checkpoint interval); the daemon is stopped while the second segment's Slurm job is in the queue, and started
    again after that job has left the queue. The work chain picks up its job and gives the uninterrupted run's
    trajectory and temperatures."""
    chain = submit(EngineMdBaseWorkChain, md=md_inputs(remote_engine_code, copper_structure, SEGMENTED,
                                                       max_wallclock_seconds=1))

    def second_job_submitted():
        jobs = md_jobs(orm.load_node(chain.pk))
        return len(jobs) >= 2 and jobs[1].get_job_id() is not None

    wait_until(second_job_submitted, 300, 'the second segment submitted to Slurm')
    job = md_jobs(orm.load_node(chain.pk))[1]
    daemon_client.stop_daemon(wait=True)
    try:
        assert not daemon_client.is_daemon_running
        stopped_state = orm.load_node(chain.pk).process_state
        # the job runs on without the daemon; wait until Slurm is done with it
        wait_until(lambda: job.get_job_id() not in subprocess.run(['squeue', '-h', '-o', '%i'], capture_output=True,
                                                                  text=True).stdout.split(),
                   120, f'Slurm job {job.get_job_id()} finished')
        time.sleep(2)
        assert orm.load_node(chain.pk).process_state == stopped_state  # nothing moved while the daemon was down
    finally:
        daemon_client.start_daemon(number_workers=2)
    chain = wait_for(chain, timeout=600)
    assert chain.is_finished_ok, chain.exit_message
    jobs = md_jobs(chain)
    out_of_walltime = EngineMdCalculation.exit_codes.ERROR_OUT_OF_WALLTIME.status
    assert [job.exit_status for job in jobs] == [out_of_walltime, out_of_walltime, 0]

    reference = uninterrupted_md.outputs
    trajectory = chain.outputs.trajectory
    np.testing.assert_array_equal(trajectory.get_stepids(), reference.trajectory.get_stepids())
    # the complete dynamical state is checkpointed: the same trajectory up to float32 round-off of the files
    np.testing.assert_allclose(trajectory.get_array('positions'), reference.trajectory.get_array('positions'),
                               rtol=0, atol=1e-5)
    np.testing.assert_allclose(chain.outputs.thermo.get_array('temperature_K'),
                               reference.thermo.get_array('temperature_K'), rtol=1e-6)
    assert chain.outputs.results['n_segments'] == 3
    assert chain.outputs.results['mean_temperature_K'] == pytest.approx(
        reference.results['mean_temperature_K'], rel=1e-6)


def test_job_killed_by_slurm_for_walltime_is_continued(daemon_client, remote_engine_code, copper_structure,
                                                       uninterrupted_md, wait_for):
    """A 1-minute Slurm limit (`--time`) and no wall time given to the engine: Slurm kills the first job, the restart
    handler of sseff.engine.md.base continues from the last checkpoint the engine wrote, and the joined trajectory
    has every step once. The run is sized from the engine's measured speed to last ~150 s, beyond the latest kill
    (60 s limit + Slurm's 30 s check period + KillWait 5 s)."""
    speed = uninterrupted_md.outputs.results['speed_atom_step_per_s'] / len(copper_structure.sites)  # steps per s
    n_steps = int(np.ceil(150 * speed / 1000) * 1000)
    parameters = {**SEGMENTED, 'n_steps': n_steps, 'thermo_interval': 100, 'trajectory_interval': 500,
                  'snapshot_interval': 0, 'checkpoint_interval': 1000}
    chain = wait_for(submit(EngineMdBaseWorkChain, md=md_inputs(
        remote_engine_code, copper_structure, parameters, custom_scheduler_commands='#SBATCH --time=00:01:00')),
        timeout=900)
    assert chain.is_finished_ok, chain.exit_message
    jobs = md_jobs(chain)
    assert len(jobs) >= 2, f'no job was killed: {n_steps} steps at {speed:.0f} steps/s'
    killed = jobs[0]
    assert 'DUE TO TIME LIMIT' in (killed.get_scheduler_stderr() or '')
    assert killed.exit_status in (EngineMdCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME.status,
                                  EngineMdCalculation.exit_codes.ERROR_MISSING_REPORT.status)
    assert jobs[1].inputs.checkpoint.uuid == killed.outputs.checkpoint.uuid
    assert jobs[-1].is_finished_ok
    steps = chain.outputs.trajectory.get_stepids()
    np.testing.assert_array_equal(steps, np.arange(0, n_steps + 1, 500))
    np.testing.assert_array_equal(chain.outputs.thermo.get_array('step'), np.arange(0, n_steps + 1, 100))
    assert chain.outputs.results['n_segments'] == len(jobs)


def test_truncated_outputs_give_a_named_exit_code_and_no_partial_outputs(daemon_client, remote_engine_code,
                                                                        copper_structure, cu_al_dataset, wait_for):
    """The job's files are cut to half their size on the compute node after the engine wrote them (a full disk, a
    node lost while copying): the parser names the problem and adds no output with partial numbers."""
    md = submit(EngineMdCalculation, **md_inputs(
        remote_engine_code, copper_structure, {**SEGMENTED, 'n_steps': 100, 'checkpoint_interval': 100},
        append_text=halve('thermo.dat', 'trajectory.npz')))
    dataset, _ = cu_al_dataset
    label = submit(EngineLabelCalculation, code=remote_engine_code, structures=dataset,
                   calculator=orm.Dict({'kind': 'emt'}),
                   metadata={'options': {'append_text': halve('labelled.xyz')}})
    md, label = wait_for(md), wait_for(label)

    assert md.exit_status == EngineMdCalculation.exit_codes.ERROR_UNREADABLE_OUTPUT.status, md.exit_message
    assert not {'trajectory', 'thermo', 'structure', 'results', 'snapshots'} & set(md.outputs)
    assert label.exit_status == EngineLabelCalculation.exit_codes.ERROR_UNREADABLE_OUTPUT.status, label.exit_message
    assert 'labelled.xyz' in label.exit_message
    assert not {'dataset', 'results'} & set(label.outputs)

