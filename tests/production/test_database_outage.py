"""Fault (issue #13, item 3d): PostgreSQL stopped for a few seconds under a running WorkChain; the daemon
stopped, `verdi process repair`, the daemon started again: the work chain finishes (the workers alone do not recover).
Runs last (tests/production/conftest.py orders it): it breaks every open database connection, this process's too."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import submit

from aiida_sseff.calculations.engine import EngineMdCalculation
from aiida_sseff.workflows.md import EngineMdBaseWorkChain

pytestmark = pytest.mark.production

# as test_faults.py and tests/workflows/test_engine_md_base.py: 300 steps, a checkpoint every 100
SEGMENTED = {'ensemble': 'nvt_bussi', 'temperature_K': 1200.0, 'timestep_fs': 2.0, 'n_steps': 300,
             'thermo_interval': 10, 'trajectory_interval': 5, 'snapshot_interval': 50, 'checkpoint_interval': 100,
             'seed': 5}


def md_inputs(code, structure, **options):
    return {'code': code, 'structure': structure, 'calculator': orm.Dict({'kind': 'emt'}),
            'parameters': orm.Dict(SEGMENTED), 'metadata': {'options': options}}


def md_jobs(node):
    return sorted((child for child in node.called if child.process_class is EngineMdCalculation),
                  key=lambda child: child.ctime)


def _reconnect(attempts: int = 20) -> None:
    """This test's own connection died too: the first statement on it fails (and SQLAlchemy marks it invalid), a
    rollback lets the session take a new one. The daemon's workers are on their own: that is the test."""
    from aiida.manage import get_manager
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    session = get_manager().get_profile_storage().get_session()
    for _ in range(attempts):
        try:
            session.execute(text('SELECT 1'))
            return
        except OperationalError:
            session.rollback()
            time.sleep(1)
    pytest.fail(f'no database connection {attempts} s after PostgreSQL was started again')


def _postgres_cluster() -> tuple[str, str]:
    """The (version, name) of the PostgreSQL cluster start.sh runs (Debian's pg_lsclusters)."""
    line = subprocess.run(['pg_lsclusters', '--no-header'], capture_output=True, text=True, check=True).stdout
    version, name = line.split()[:2]
    return version, name


def test_database_lost_for_seconds_then_repair_recovers(aiida_profile, daemon_client, remote_engine_code,
                                                         copper_structure, wait_for, wait_until):
    """PostgreSQL stopped for 5 s while a three-segment sseff.engine.md.base and the same MD as one job are running
    (the chain's first Slurm job in the queue); after the repair both finish, with the same numbers."""
    reference = submit(EngineMdCalculation, **md_inputs(remote_engine_code, copper_structure))
    chain = submit(EngineMdBaseWorkChain, md=md_inputs(remote_engine_code, copper_structure, max_wallclock_seconds=1))

    def first_job_submitted():
        jobs = md_jobs(orm.load_node(chain.pk))
        return len(jobs) >= 1 and jobs[0].get_job_id() is not None

    wait_until(first_job_submitted, 300, 'the first segment submitted to Slurm')
    chain_pk, reference_pk = chain.pk, reference.pk
    version, name = _postgres_cluster()
    subprocess.run(['pg_ctlcluster', version, name, 'stop', '--', '-m', 'fast'], check=True)
    try:
        time.sleep(5)
    finally:
        subprocess.run(['pg_ctlcluster', version, name, 'start'], check=True)
    _reconnect()
    # aiida-core 2.9's workers do not come back by themselves: a worker whose statement failed during the outage keeps
    # a session in PendingRollbackError, and a process whose step failed then has lost its broker task while its node
    # still says WAITING (`verdi process kill` calls it unreachable). The recovery is the operator's: stop the daemon,
    # `verdi process repair --force` (new tasks for such processes, orphaned connections ended), start it; the processes
    # continue from their last checkpoint.
    daemon_client.stop_daemon(wait=True)
    try:
        repair = subprocess.run([str(Path(sys.executable).parent / 'verdi'), '-p', aiida_profile.name, 'process',
                                 'repair', '--force'], capture_output=True, text=True, timeout=120)
    finally:
        daemon_client.start_daemon(number_workers=2)
    assert repair.returncode == 0, repair.stderr
    _reconnect()  # --force also ends the connections no daemon worker holds: this test's among them
    try:
        # uninterrupted, both finish within ~90 s here
        chain = wait_for(orm.load_node(chain_pk), timeout=240)
        reference = wait_for(orm.load_node(reference_pk), timeout=240)
    finally:
        from aiida.engine.processes import control

        stuck = [node for node in (orm.load_node(chain_pk), orm.load_node(reference_pk)) if not node.is_terminated]
        if stuck:  # leave no waiting process behind in the profile
            control.kill_processes(stuck, force=True, timeout=10)
    assert chain.is_finished_ok, chain.exit_message
    assert reference.is_finished_ok, reference.exit_message
    assert daemon_client.is_daemon_running
    assert chain.outputs.results['n_segments'] == 3
    np.testing.assert_allclose(chain.outputs.trajectory.get_array('positions'),
                               reference.outputs.trajectory.get_array('positions'), rtol=0, atol=1e-5)
