"""The production suite (issue #13): the plugin on the profile that scripts/production/*.sh make (PostgreSQL storage,
RabbitMQ, 2 daemon workers, the computer ``loopback``: core.ssh to 127.0.0.1 + core.slurm). Everything is submitted to
the daemon, as on a cluster.

Run it with ``make test-production``. Without ``-m production`` (the normal suite) every test here is skipped: it needs
the services. These fixtures replace aiida-core's temporary test profile by the production one, for this folder only.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

PRODUCTION_DIR = Path(__file__).resolve().parent
PROFILE_NAME = os.environ.get('SSEFF_PROD_PROFILE', 'sseff-prod')
COMPUTER_LABEL = 'loopback'
DAEMON_WORKERS = 2
SKIP_REASON = ('production suite: needs PostgreSQL, RabbitMQ, Slurm and sshd (scripts/production/); '
               'run `make test-production`')


LAST_MODULE = 'test_database_outage.py'  # it stops PostgreSQL: every open connection breaks, this process's too


def pytest_collection_modifyitems(config, items):
    """Skip this folder unless the production marker was asked for (``-m production``); the database outage last."""
    if 'production' in (config.getoption('markexpr') or ''):
        items.sort(key=lambda item: Path(item.path).name == LAST_MODULE)  # stable: the order is otherwise kept
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if PRODUCTION_DIR in Path(item.path).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope='session')
def aiida_config():
    """The project's own configuration (``AIIDA_PATH``, the checkout's .aiida; the Makefile exports it)."""
    from aiida.manage.configuration import get_config

    config = get_config()
    if PROFILE_NAME not in config.profile_names:
        pytest.fail(f'no profile `{PROFILE_NAME}` in {config.dirpath}: run scripts/production/start.sh and '
                    'scripts/production/profile.sh (or `make test-production`)')
    return config


@pytest.fixture(scope='session')
def aiida_profile(aiida_config):
    """The production profile, loaded (instead of aiida-core's temporary SQLite profile)."""
    from aiida import load_profile

    profile = load_profile(PROFILE_NAME, allow_switch=True)
    assert profile.storage_backend == 'core.psql_dos' and profile.process_control_backend == 'core.rabbitmq'
    return profile


@pytest.fixture(scope='session')
def daemon_client(aiida_profile):
    """The daemon of the production profile, started with its workers if it is not running."""
    from aiida.engine.daemon.client import get_daemon_client

    client = get_daemon_client(aiida_profile.name)
    if not client.is_daemon_running:
        client.start_daemon(number_workers=DAEMON_WORKERS)
    return client


@pytest.fixture(scope='session')
def remote_computer(aiida_profile):
    from aiida import orm

    computer = orm.load_computer(COMPUTER_LABEL)
    assert computer.transport_type == 'core.ssh'
    return computer


@pytest.fixture(scope='session')
def remote_engine_code(remote_computer):
    """``sseff-engine@loopback``: the engine reached over SSH, run by Slurm (profile.sh made it)."""
    from aiida import orm

    return orm.load_code(f'sseff-engine@{COMPUTER_LABEL}')


def _wait_for(node, timeout: float = 600.0, poll: float = 2.0):
    """Wait until the daemon has finished ``node``, return it reloaded; fail with its state and report at
    ``timeout``."""
    start = time.monotonic()
    while not node.is_terminated:
        if time.monotonic() - start > timeout:
            from aiida.cmdline.utils.common import get_workchain_report

            pytest.fail(f'{node.process_label}<{node.pk}> not finished after {timeout:.0f} s (state '
                        f'{node.process_state}):\n{get_workchain_report(node, "REPORT") if node.called else ""}')
        time.sleep(poll)
    from aiida import orm

    # a fresh instance: the one that was submitted caches its (then empty) file repository
    return orm.load_node(node.pk)


def _wait_until(condition, timeout: float, what: str, poll: float = 1.0):
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f'{what}: not reached within {timeout:.0f} s')
        time.sleep(poll)


@pytest.fixture(scope='session')
def wait_for():
    """``wait_for(node, timeout=600)``: wait until the daemon has finished ``node``."""
    return _wait_for


@pytest.fixture(scope='session')
def wait_until():
    """``wait_until(condition, timeout, what)``: poll ``condition()`` until it is true."""
    return _wait_until


@pytest.fixture(scope='session')
def copper_structure():
    """32-atom fcc Cu (a = 3.6 Å, EMT's equilibrium is 3.59 Å): EMT is an ASE built-in, so MD costs milliseconds."""
    from aiida import orm
    from ase.build import bulk

    return orm.StructureData(ase=bulk('Cu', 'fcc', a=3.6, cubic=True) * (2, 2, 2))


@pytest.fixture(scope='session')
def cu_al_dataset(cu_al_structures):
    """Three EMT-labelled Cu/Al cells (tests/conftest.py), their labels stripped for sseff.label to redo; the
    in-process EMT labels are the reference."""
    from aiida_sseff.data.dataset import LabelledDataset

    reference = cu_al_structures(3, seed=3)
    unlabelled = []
    for index, atoms in enumerate(reference):
        copy = atoms.copy()
        copy.calc = None
        copy.info['config_type'] = f'cual{index}'
        unlabelled.append(copy)
    return LabelledDataset(unlabelled, require_labels=False), reference


@pytest.fixture(scope='session')
def label_run(daemon_client, remote_engine_code, cu_al_dataset, wait_for):
    """``sseff.label`` with the surrogate labeller (EMT) on the loopback computer, 3 structures in 2 batch jobs."""
    from aiida.engine import submit

    from aiida_sseff.workflows.labelling import LabellingWorkChain

    dataset, _ = cu_al_dataset
    builder = LabellingWorkChain.get_builder_from_protocol(
        remote_engine_code, dataset, labeller='surrogate',
        overrides={'batch_size': 2, 'surrogate': {'calculator': {'kind': 'emt'}}})
    return wait_for(submit(builder), timeout=600)


@pytest.fixture(scope='session')
def local_engine_code(aiida_profile):
    """``sseff-engine@localhost`` in the production profile (core.local transport, core.direct scheduler; made here if
    absent, as ``aiida-sseff setup`` makes it): for the load test and its benchmark, whose subject is the daemon,
    broker and storage rather than SSH and Slurm (test_remote.py and test_faults.py cover those)."""
    from aiida_sseff.cli.cmd_setup import ensure_engine_code, ensure_localhost

    return ensure_engine_code(ensure_localhost())
