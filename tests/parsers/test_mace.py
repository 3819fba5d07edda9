"""``sseff.mace.train`` parser on REAL mace-torch output (one tiny training run here by ``aiida-sseff-mace``), and on
broken copies of it: truncated log (stopped early), missing model, NaN loss, unreadable results file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from ase.io import read

from aiida_sseff.calculations.mace import MaceTrainCalculation, output_names
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.io.mace import read_log, read_predictions, read_results, training_arguments, write_mace_xyz

pytestmark = pytest.mark.slow  # every test reads the output of one real training (about 20 s of CPU)

SEED = 4
PARAMETERS = {'r_max': 4.0, 'num_channels': 8, 'correlation': 2, 'max_ell': 1, 'num_radial_basis': 4,
              'radial_MLP': [16], 'MLP_irreps': '8x0e', 'max_num_epochs': 1, 'batch_size': 2, 'plot': False,
              'error_table': 'PerAtomRMSEstressvirials'}


@pytest.fixture(scope='module')
def llzo_frames(reference_dir):
    """Three LLZO cells (192 atoms, DFT labels incl. stress) of the reference NEP training set."""
    return read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index='10:13')


@pytest.fixture(scope='module')
def mace_run(tmp_path_factory, llzo_frames):
    """A real run of the job's two commands in a folder, as the CalcJob would (1 epoch, 2 + 1 structures)."""
    pytest.importorskip('mace')
    wrapper = Path(sys.executable).parent / 'aiida-sseff-mace'
    folder = tmp_path_factory.mktemp('mace_run')
    write_mace_xyz(llzo_frames[:2], folder / 'train.xyz')
    write_mace_xyz(llzo_frames[2:], folder / 'valid.xyz')
    arguments = training_arguments(PARAMETERS, 'MACE-T0-I', name='mace', seed=SEED, train_file='train.xyz',
                                   valid_file='valid.xyz', stress=True)
    names = output_names(SEED)
    environment = {**os.environ, 'OMP_NUM_THREADS': '2'}
    for command in (['train', *arguments],
                    ['eval', '--configs', 'train.xyz,valid.xyz', '--model', names['model'], '--output',
                     f'{names["predictions_train"]},{names["predictions_validation"]}', '--compute_stress',
                     '--info_prefix', 'MACE_']):
        subprocess.run([str(wrapper), *command], cwd=folder, check=True, capture_output=True, env=environment)
    retrieved = tmp_path_factory.mktemp('retrieved')
    for name in (names['model'], names['log_path'], names['results_path'], names['predictions_train'],
                 names['predictions_validation']):
        shutil.copy(folder / name, retrieved / Path(name).name)
    return retrieved


def parse(calc_job_node_factory, folder, train, validation):
    from aiida.plugins import ParserFactory

    node = calc_job_node_factory('sseff.mace.train', folder, {
        'train': train, 'validation': validation, 'variant': orm.Str('MACE-T0-I'),
        'parameters': orm.Dict(PARAMETERS), 'seed': orm.Int(SEED)})
    return ParserFactory('sseff.mace.train').parse_from_node(node, store_provenance=False)


@pytest.fixture(scope='module')
def datasets(aiida_profile, llzo_frames):
    return LabelledDataset(llzo_frames[:2]).store(), LabelledDataset(llzo_frames[2:]).store()


def test_readers_on_real_output(mace_run, llzo_frames):
    names = output_names(SEED)
    results = read_results(mace_run / names['results'])
    np.testing.assert_array_equal(results['epoch'], [-1, 0])
    assert np.isfinite(results['train_loss'][1]) and np.isnan(results['train_loss'][0])  # no steps before epoch 0
    log = read_log(mace_run / names['log'])
    assert log['complete'] and log['done'] and log['last_epoch'] == 0 and log['errors'] == []
    assert set(log['error_tables']) == {'train_Default', 'valid_Default'}
    tables = read_predictions(mace_run / names['predictions_train'])
    np.testing.assert_allclose(tables['energy'].target, [a.get_potential_energy() / 192 for a in llzo_frames[:2]])
    np.testing.assert_allclose(tables['force'].target, np.concatenate([a.get_forces() for a in llzo_frames[:2]]))
    # virial/N from the ASE stress: -stress * V / N, components xx yy zz xy yz zx
    atoms = llzo_frames[0]
    stress = atoms.get_stress(voigt=False)
    expected = -np.array([stress[0, 0], stress[1, 1], stress[2, 2], stress[0, 1], stress[1, 2], stress[2, 0]]) \
        * atoms.get_volume() / len(atoms)
    np.testing.assert_allclose(tables['virial'].target[0], expected, rtol=1e-10)
    assert tables['stress'].predicted.shape == (2, 6) and np.all(np.isfinite(tables['stress'].predicted))


def test_parse_complete_run(calc_job_node_factory, mace_run, datasets):
    results, calcfunction = parse(calc_job_node_factory, mace_run, *datasets)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    assert results['model'].base.attributes.get('num_interactions') == 1
    assert set(results) >= {'model', 'training_log', 'parity_train', 'parity_validation', 'results'}
    summary = results['results'].get_dict()
    # mace's table and our recomputation evaluate the same model (the table prints 0.1 meV/Å)
    assert summary['recomputed']['validation']['force_mev_per_angstrom'] == pytest.approx(
        summary['error_tables']['valid_Default']['force_mev_per_angstrom'], abs=0.06)
    assert summary['last_epoch'] == 0


def _copy(mace_run, tmp_path):
    target = tmp_path / 'retrieved'
    shutil.copytree(mace_run, target)
    return target


def test_stopped_training_is_exit_400(calc_job_node_factory, mace_run, datasets, tmp_path):
    """The log of a job killed during training: no `Training complete`, no model."""
    folder = _copy(mace_run, tmp_path)
    names = output_names(SEED)
    log = (folder / names['log']).read_text().splitlines()
    cut = next(i for i, line in enumerate(log) if 'Training complete' in line)
    (folder / names['log']).write_text('\n'.join(log[:cut]) + '\n')
    (folder / names['model']).unlink()
    results, calcfunction = parse(calc_job_node_factory, folder, *datasets)
    assert calcfunction.exit_status == MaceTrainCalculation.exit_codes.ERROR_TRAINING_INCOMPLETE.status
    assert 'stopped after epoch 0 of 1' in calcfunction.exit_message
    assert 'training_log' in results and 'model' not in results  # what the restart needs, nothing more


def test_missing_model_and_log(calc_job_node_factory, mace_run, datasets, tmp_path):
    folder = _copy(mace_run, tmp_path)
    names = output_names(SEED)
    (folder / names['model']).unlink()
    _, calcfunction = parse(calc_job_node_factory, folder, *datasets)
    assert calcfunction.exit_status == 300 and '`mace.model` is missing' in calcfunction.exit_message
    (folder / names['log']).unlink()
    _, calcfunction = parse(calc_job_node_factory, folder, *datasets)
    assert calcfunction.exit_status == 300 and f'logs/mace_run-{SEED}.log' in calcfunction.exit_message


def test_nan_loss_is_exit_410(calc_job_node_factory, mace_run, datasets, tmp_path):
    folder = _copy(mace_run, tmp_path)
    path = folder / output_names(SEED)['results']
    lines = path.read_text().splitlines()
    last_eval = max(i for i, line in enumerate(lines) if '"mode": "eval"' in line)
    lines[last_eval] = lines[last_eval].replace('{"loss": ', '{"loss": NaN, "was": ', 1)
    path.write_text('\n'.join(lines) + '\n')
    _, calcfunction = parse(calc_job_node_factory, folder, *datasets)
    assert calcfunction.exit_status == 410 and 'NaN at epoch 0' in calcfunction.exit_message


def test_unreadable_results_is_exit_301(calc_job_node_factory, mace_run, datasets, tmp_path):
    folder = _copy(mace_run, tmp_path)
    path = folder / output_names(SEED)['results']
    path.write_text(path.read_text()[:-40])  # a line cut in the middle
    _, calcfunction = parse(calc_job_node_factory, folder, *datasets)
    assert calcfunction.exit_status == 301 and 'not a JSON object' in calcfunction.exit_message
