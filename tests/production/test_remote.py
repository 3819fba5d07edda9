"""A real engine CalcJob and a labelling WorkChain on the production profile, run on the ``loopback`` computer
(core.ssh to 127.0.0.1, core.slurm) by the daemon; their parsers read only what was retrieved over SSH."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import submit

from aiida_sseff.calculations.engine import EngineLabelCalculation, EngineMdCalculation

pytestmark = pytest.mark.production

MD_PARAMETERS = {'ensemble': 'nvt_bussi', 'temperature_K': 900.0, 'timestep_fs': 2.0, 'n_steps': 100,
                 'thermo_interval': 10, 'trajectory_interval': 10, 'snapshot_interval': 50, 'seed': 11}


def test_computer_is_ssh_and_slurm(remote_computer):
    """The brief asks for core.slurm where a single-node Slurm starts; start.sh starts one on every Debian here."""
    assert remote_computer.hostname == '127.0.0.1'
    assert remote_computer.scheduler_type == 'core.slurm', 'Slurm did not start: see scripts/production/start.sh'
    with remote_computer.get_transport() as transport:
        assert transport.whoami()


def test_engine_md_through_ssh_and_slurm(wait_for, daemon_client, remote_engine_code, copper_structure, tmp_path):
    """EMT MD of Cu as a Slurm job over SSH: the outputs parsed from the retrieved files are those of the same engine
    input run here by hand (same seed → the same trajectory to float32 round-off)."""
    node = wait_for(submit(EngineMdCalculation, code=remote_engine_code, structure=copper_structure,
                           calculator=orm.Dict({'kind': 'emt'}), parameters=orm.Dict(MD_PARAMETERS)))
    assert node.is_finished_ok, node.exit_message
    assert node.computer.label == 'loopback'
    assert node.get_job_id().isdigit()  # a Slurm job id
    assert '#SBATCH' in node.base.repository.get_object_content('_aiidasubmit.sh')

    trajectory = node.outputs.trajectory
    assert trajectory.numsteps == 100 // 10 + 1
    temperatures = node.outputs.thermo.get_array('temperature_K')
    assert np.all(np.isfinite(temperatures)) and 300 < temperatures[1:].mean() < 2000  # 900 K ± thermostat noise
    assert node.outputs.snapshots.n_structures == 2

    # the same input files, run here without AiiDA, SSH or Slurm
    for name in ('engine.json', 'structure.xyz'):
        (tmp_path / name).write_bytes(node.base.repository.get_object_content(name, mode='rb'))
    engine = Path(sys.executable).parent / 'aiida-sseff-engine'
    subprocess.run([str(engine), 'md', '--input', 'engine.json'], cwd=tmp_path, check=True, capture_output=True,
                   env={'OMP_NUM_THREADS': '1', 'PATH': '/usr/bin:/bin'})
    with np.load(tmp_path / 'trajectory.npz') as local:
        np.testing.assert_allclose(trajectory.get_array('positions'), local['positions'], rtol=0, atol=1e-5)
    report = json.loads((tmp_path / 'report.json').read_text())
    assert node.outputs.results['n_frames'] == report['n_frames']


def test_label_workchain_through_ssh_and_slurm(label_run, cu_al_dataset):
    """sseff.label (surrogate: EMT) on the loopback computer: two batch jobs, the labels those of EMT in-process."""
    node = label_run
    assert node.is_finished_ok, node.exit_message
    jobs = [child for child in node.called_descendants if isinstance(child, orm.CalcJobNode)]
    assert len(jobs) == 2 and all(job.process_class is EngineLabelCalculation for job in jobs)
    assert {job.computer.scheduler_type for job in jobs} == {'core.slurm'}
    _, reference = cu_al_dataset
    labelled = node.outputs.dataset.get_ase()
    assert [atoms.info['config_type'] for atoms in labelled] == ['cual0', 'cual1', 'cual2']
    for atoms, expected in zip(labelled, reference, strict=True):
        assert atoms.get_potential_energy() == pytest.approx(expected.get_potential_energy(), abs=1e-6)
        np.testing.assert_allclose(atoms.get_forces(), expected.get_forces(), atol=1e-6)
    assert node.outputs.failures['n_failed'] == 0
