"""Load on the production profile (issue #13, item 4): 100 small work chains submitted at once through a throttle
(aiida-submission-controller) all finish, none is lost or stuck, and each one's numbers are those its input implies.

The work chain is ``sseff.engine.md.base`` around a 20-step NVE EMT MD of a 32-atom Cu cell (a different rattle per
chain), on the local ``core.direct`` computer: the subject here is the daemon, RabbitMQ and PostgreSQL under many
processes, which SSH and Slurm would only slow down (Slurm's two CPUs would throttle the jobs themselves);
test_remote.py and test_faults.py run the loopback computer. benchmarks/bench_throughput.py imports the workload
from here to measure the throughput against an SQLite + ZeroMQ profile.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida_submission_controller import BaseSubmissionController

from aiida_sseff.calculations.engine import EngineMdCalculation
from aiida_sseff.workflows.md import EngineMdBaseWorkChain

pytestmark = pytest.mark.production

N_CHAINS = 100
MAX_CONCURRENT = 20  # active work chains at a time (each runs one engine process on the 2-core machine)
LOAD_EXTRA = 'sseff_load_index'
#: NVE: no thermostat, so the total energy is conserved and step 0 is the input structure itself
MD_PARAMETERS = {'ensemble': 'nve', 'temperature_K': 300.0, 'timestep_fs': 2.0, 'n_steps': 20,
                 'thermo_interval': 10, 'trajectory_interval': 10, 'snapshot_interval': 0,
                 'checkpoint_interval': 100, 'seed': 1}
RATTLE_A = 0.05


def rattled_copper(index: int):
    """The 32-atom fcc Cu cell of conftest.py, rattled by 0.05 Å with seed ``index``: every chain has its own
    structure, so a result given to the wrong chain shows in its energy."""
    from ase.build import bulk

    atoms = bulk('Cu', 'fcc', a=3.6, cubic=True) * (2, 2, 2)
    atoms.rattle(stdev=RATTLE_A, seed=index)
    return atoms


class MdLoadController(BaseSubmissionController):
    """Submits one ``sseff.engine.md.base`` per structure of ``structure_uuids``, at most ``max_concurrent`` active
    at a time; the extra ``sseff_load_index`` names the structure (aiida-submission-controller's unique key)."""

    code_uuid: str
    calculator_uuid: str
    parameters_uuid: str
    structure_uuids: tuple[str, ...]

    def get_all_extras_to_submit(self):
        return {(index,) for index in range(len(self.structure_uuids))}

    def get_inputs_and_processclass_from_extras(self, extras_values):
        (index,) = extras_values
        builder = EngineMdBaseWorkChain.get_builder()
        builder.md.code = orm.load_code(self.code_uuid)
        builder.md.structure = orm.load_node(self.structure_uuids[index])
        builder.md.calculator = orm.load_node(self.calculator_uuid)
        builder.md.parameters = orm.load_node(self.parameters_uuid)
        return builder


def make_load_controller(code, n_chains: int, max_concurrent: int, group_label: str) -> MdLoadController:
    """Store the inputs (one calculator and parameters node shared by all chains, one structure each) and a new
    group for the chains; return the controller that will submit them."""
    orm.Group(label=group_label).store()
    calculator = orm.Dict({'kind': 'emt'}).store()
    parameters = orm.Dict(MD_PARAMETERS).store()
    structures = tuple(orm.StructureData(ase=rattled_copper(index)).store().uuid for index in range(n_chains))
    return MdLoadController(group_label=group_label, max_concurrent=max_concurrent, unique_extra_keys=(LOAD_EXTRA,),
                            code_uuid=code.uuid, calculator_uuid=calculator.uuid, parameters_uuid=parameters.uuid,
                            structure_uuids=structures)


def run_throttled(controller: MdLoadController, timeout: float, poll: float = 1.0) -> tuple[dict[int, int], float]:
    """Submit through the controller until every chain was submitted and none is active; return
    ``({index: pk}, seconds from the first submission until the last chain terminated)``. At ``timeout`` a
    ``TimeoutError`` names the chains still active."""
    start = time.perf_counter()
    while True:
        controller.submit_new_batch(sort=True)
        if controller.num_to_run == 0 and controller.num_active_slots == 0:
            break
        if time.perf_counter() - start > timeout:
            active = controller.get_all_submitted_processes(only_active=True)
            states = {index[0]: f'<{node.pk}> {node.process_state}' for index, node in active.items()}
            raise TimeoutError(f'{len(states)} chains still active and {controller.num_to_run} not submitted after '
                               f'{timeout:.0f} s: {states}')
        time.sleep(poll)
    return {index[0]: pk for index, pk in controller.get_all_submitted_pks().items()}, time.perf_counter() - start


def broker_process_tasks(profile) -> tuple[int, int]:
    """(ready, unacknowledged) messages in the profile's RabbitMQ process queue (``rabbitmqctl``, run as root): each
    process that a daemon worker runs holds one unacknowledged task; a ready one is waiting for a worker."""
    queue = f'aiida-{profile.uuid}.process.queue'
    result = subprocess.run(['rabbitmqctl', 'list_queues', '-q', '--no-table-headers', 'name', 'messages_ready',
                             'messages_unacknowledged'], capture_output=True, text=True, timeout=60, check=True)
    for line in result.stdout.splitlines():
        fields = line.split()
        if fields and fields[0] == queue:
            return int(fields[1]), int(fields[2])
    raise AssertionError(f'no queue {queue} in `rabbitmqctl list_queues`:\n{result.stdout}')


def live_processes() -> list[tuple[int, str]]:
    """(pk, state) of every process of the profile that is not terminated."""
    builder = orm.QueryBuilder().append(orm.ProcessNode, filters={'attributes.process_state': {
        'in': ['created', 'waiting', 'running']}}, project=['id', 'attributes.process_state'])
    return builder.all()


def check_chain(chain, structure) -> None:
    """The chain's outputs are those its input implies: one engine job, the 20-step trajectory starting at its own
    structure, the EMT energy of that structure at step 0 (ASE's EMT called here), the total energy conserved."""
    from ase.calculators.emt import EMT

    assert chain.is_finished_ok, f'<{chain.pk}> [{chain.exit_status}] {chain.exit_message}'
    jobs = [node for node in chain.called if node.process_class is EngineMdCalculation]
    assert len(jobs) == 1 and jobs[0].is_finished_ok and jobs[0].computer.scheduler_type == 'core.direct'
    # the chain's outputs are its job's own (exposed), not another chain's
    assert chain.outputs.trajectory.uuid == jobs[0].outputs.trajectory.uuid
    trajectory, thermo = chain.outputs.trajectory, chain.outputs.thermo
    np.testing.assert_array_equal(trajectory.get_stepids(), [0, 10, 20])
    atoms = structure.get_ase()
    np.testing.assert_allclose(trajectory.get_array('positions')[0], atoms.positions, rtol=0, atol=1e-5)
    atoms.calc = EMT()
    potential = thermo.get_array('potential_energy_eV')
    assert potential[0] == pytest.approx(atoms.get_potential_energy(), abs=1e-6)  # thermo.dat has 8 decimals
    total = thermo.get_array('total_energy_eV')
    # velocity Verlet at 2 fs on EMT Cu: ~4e-4 eV drift in 20 steps (run_md by hand); a thermostat would move it ~0.1
    assert np.abs(total - total[0]).max() < 5e-3
    assert chain.outputs.results['n_steps'] == MD_PARAMETERS['n_steps']
    assert chain.outputs.results['n_frames'] == 3


def test_hundred_workchains_submitted_at_once_all_finish(aiida_profile, daemon_client, local_engine_code, wait_until):
    """100 ``sseff.engine.md.base`` through aiida-submission-controller (20 active at most): every submitted chain
    terminated ok with its own numbers; no task left in RabbitMQ and no process Created/Waiting/Running."""
    label = f'sseff-load-{time.strftime("%Y%m%d-%H%M%S")}-{aiida_profile.uuid[:8]}'
    controller = make_load_controller(local_engine_code, N_CHAINS, MAX_CONCURRENT, label)
    try:
        submitted, seconds = run_throttled(controller, timeout=900)
    except TimeoutError as exception:
        pytest.fail(str(exception))
    print(f'{N_CHAINS} chains in {seconds:.0f} s: {60 * N_CHAINS / seconds:.1f} work chains per minute '
          f'(load average {" / ".join(f"{x:.1f}" for x in os.getloadavg())})', file=sys.stderr)

    assert sorted(submitted) == list(range(N_CHAINS))  # nothing lost between the controller and the database
    group = orm.load_group(label)
    assert group.count() == N_CHAINS
    chains = {index: orm.load_node(pk) for index, pk in submitted.items()}
    assert all(chain.is_sealed for chain in chains.values())
    for index, chain in chains.items():
        structure = chain.base.links.get_incoming(link_type=LinkType.INPUT_WORK, link_label_filter='md__structure')
        assert structure.one().node.uuid == controller.structure_uuids[index]
        check_chain(chain, structure.one().node)

    # every process below the chains terminated, and the broker holds no task for any of them: its queue has only
    # the tasks of processes still alive in this profile (none, unless another run shares the profile)
    descendants = [node for chain in chains.values() for node in chain.called_descendants]
    assert all(node.is_terminated for node in descendants)
    wait_until(lambda: broker_process_tasks(aiida_profile) == (0, len(live_processes())), 60,
               'the RabbitMQ process queue holds exactly the tasks of the live processes')
    assert not {pk for pk, _ in live_processes()} & {node.pk for node in [*chains.values(), *descendants]}
