"""``aiida-sseff analyze nep-training`` on the REAL GPUMD run directory (shared/reference/llzo/nep_training), and
``show training`` / ``plot training`` on stored trainings."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.common import LinkType
from aiida.plugins import ParserFactory
from click.testing import CliRunner

from aiida_sseff.cli import cmd_root

PNG_MAGIC = b'\x89PNG'


@pytest.fixture(scope='module')
def nep_training(reference_dir):
    """The real GPUMD `nep` run on 25 LLZO structures (shared/reference/llzo/README.md; skipped with reference_dir)."""
    return reference_dir / 'llzo' / 'nep_training'


def invoke(args):
    return CliRunner().invoke(cmd_root, args, catch_exceptions=False)


@pytest.mark.reference
def test_analyze_reference_directory(nep_training, tmp_path):
    """loss.out's last row (E 0.00012 eV/atom, F 0.03603 eV/Å, V 0.00322 eV/atom) and the RMSEs recomputed from
    the *_train.out files (virial from stress_train.out x V/N, batch 200 >= 25 structures keeps train.xyz order)."""
    result = invoke(['analyze', 'nep-training', str(nep_training)])
    assert result.exit_code == 0, result.output
    assert 'program nep' in result.output and 'up to generation 100000' in result.output
    rows = {tuple(line.split()[:2]): line.split()[2:5] for line in result.output.splitlines()[2:]}
    assert rows[('train', 'loss.out')] == ['0.120', '36.030', '3.220']
    recomputed = [float(v) for v in rows[('train', 'recomputed')]]
    np.testing.assert_allclose(recomputed, [0.120, 36.030, 3.220], atol=0.005 + 1e-9)  # 5 printed decimals (eV)

    plot = tmp_path / 'training.png'
    result = invoke(['analyze', 'nep-training', str(nep_training), '--json', '--plot', str(plot)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary['loss_out']['train']['force_mev_per_angstrom'] == pytest.approx(36.03)
    assert summary['recomputed']['train']['force_mev_per_angstrom'] == pytest.approx(36.03, abs=0.005)
    assert summary['recomputed']['test'] is None and summary['virial_from']['train'] == 'stress_out'
    assert plot.read_bytes()[:4] == PNG_MAGIC


def test_analyze_refuses_a_directory_without_outputs(tmp_path):
    (tmp_path / 'nep.in').write_text('type 1 Cu\n')
    result = CliRunner().invoke(cmd_root, ['analyze', 'nep-training', str(tmp_path)])
    assert result.exit_code != 0 and 'holds no loss.out' in result.output


def test_analyze_names_broken_files_and_unwritable_plots(tmp_path, nep_training):
    """A file with the wrong number of columns is named with its line; a plot path that cannot be written too."""
    (tmp_path / 'energy_train.out').write_text('1 2 3\n')
    result = CliRunner().invoke(cmd_root, ['analyze', 'nep-training', str(tmp_path)])
    assert result.exit_code != 0 and 'energy_train.out, line 1: 3 columns, expected 2' in result.output
    result = CliRunner().invoke(cmd_root, ['analyze', 'nep-training', str(nep_training), '--plot',
                                           str(tmp_path / 'missing' / 'plot.png')])
    assert result.exit_code != 0 and 'cannot write the plot to' in result.output and 'plot.png' in result.output


@pytest.mark.reference
def test_show_and_plot_stored_calcjob(aiida_profile, calc_job_node_factory, nep_training, tmp_path):
    """A finished sseff.nep.train node whose outputs the parser made from the real GPUMD files."""
    from aiida_sseff.data.dataset import LabelledDataset
    from aiida_sseff.io.extxyz import read_train_xyz

    inputs = {'parameters': orm.Dict({'batch': 200, 'generation': 100000}), 'program': orm.Str('nep'),
              'train': LabelledDataset(read_train_xyz(nep_training / 'train.xyz'))}
    node = calc_job_node_factory('sseff.nep.train', nep_training, inputs,
                                 files=('nep.txt', 'loss.out', 'energy_train.out', 'force_train.out',
                                        'stress_train.out'))
    outputs, calcfunction = ParserFactory('sseff.nep.train').parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok
    for label, output in outputs.items():
        output.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label=label)
        output.store()
    node.set_exit_status(0)
    node.set_process_state('finished')
    node.seal()

    result = invoke(['show', 'training', str(node.pk)])
    assert result.exit_code == 0, result.output
    assert 'generation 100000 of 100000' in result.output and '36.030' in result.output
    plot = tmp_path / 'plot.png'
    result = invoke(['plot', 'training', str(node.pk), '-o', str(plot)])
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:4] == PNG_MAGIC


@pytest.mark.slow
def test_show_and_plot_training_workchain(aiida_profile, aiida_code_installed, aiida_localhost, tmp_path):
    """A real one-replica sseff.train.nep (neppo, 10 steps, 4 EMT Cu/Al cells): show lists the replica's held-out
    errors, plot draws the best replica's training."""
    from aiida.engine import run_get_node
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    from aiida_sseff.data.dataset import LabelledDataset
    from aiida_sseff.workflows.training import NepTrainingWorkChain

    executable = Path(sys.executable).parent / 'neppo'
    if not executable.exists() and shutil.which('neppo') is None:
        pytest.skip('neppo is not installed')
    aiida_localhost.set_minimum_job_poll_interval(0.0)
    code = aiida_code_installed(label='neppo-cli', default_calc_job_plugin='sseff.nep.train',
                                filepath_executable=str(executable if executable.exists() else shutil.which('neppo')))
    structures = []
    for k in range(4):
        atoms = bulk('Cu', 'fcc', a=3.65, cubic=True).repeat(2)
        atoms.symbols[[k, k + 8, k + 16]] = 'Al'
        atoms.rattle(0.08, seed=k)
        atoms.calc = EMT()
        atoms.calc = SinglePointCalculator(atoms, energy=atoms.get_potential_energy(), forces=atoms.get_forces(),
                                           stress=atoms.get_stress())
        structures.append(atoms)
    builder = NepTrainingWorkChain.get_builder_from_protocol(
        code, LabelledDataset(structures), protocol='fast',
        overrides={'n_replicas': 1, 'validation_fraction': 0.25,
                   'parameters': {'generation': 10, 'neuron': 6, 'basis_size': [4, 4]},
                   'program_parameters': {'neppo': {'batch': 3, 'output_interval': 5}}})
    _, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)

    result = invoke(['show', 'training', str(node.pk)])
    assert result.exit_code == 0, result.output
    assert 'replica_00' in result.output and 'mean ± std' in result.output and 'best replica: replica_00' in result.output
    plot = tmp_path / 'wc.png'
    result = invoke(['plot', 'training', str(node.pk), '-o', str(plot)])
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:4] == PNG_MAGIC
