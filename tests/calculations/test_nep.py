"""``sseff.nep.train``: input writing into a sandbox, refusals before submission, and a REAL ``neppo train`` run on
the CPU whose model, evaluated by calorine's CPUNEP, reproduces the RMSE the parser reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.common.folders import Folder
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_sseff.calculations.nep import NepTrainCalculation, resolve_program
from aiida_sseff.data.dataset import LabelledDataset


@pytest.fixture(scope='module')
def cu_al(aiida_profile, cu_al_structures):
    return LabelledDataset(cu_al_structures(5)).store()


@pytest.fixture(scope='module')
def cu_al_test(aiida_profile, cu_al_structures):
    return LabelledDataset(cu_al_structures(2, seed=1)).store()


SMALL = {'cutoff': [5, 4], 'n_max': [4, 4], 'basis_size': [4, 4], 'l_max': [4, 2, 0], 'neuron': 8,
         'batch': 5, 'generation': 40, 'output_interval': 10}


def prepare(tmp_path, **inputs):
    """Run prepare_for_submission into a sandbox folder; returns (folder path, calcinfo)."""
    process = instantiate_process(get_manager().get_runner(), NepTrainCalculation, **inputs)
    (tmp_path / 'sandbox').mkdir()
    folder = Folder(str(tmp_path / 'sandbox'))
    calcinfo = process.prepare_for_submission(folder)
    return Path(folder.abspath), calcinfo


def test_prepare_neppo(tmp_path, neppo_code, cu_al, cu_al_test):
    from aiida_sseff.io.extxyz import read_train_xyz

    folder, calcinfo = prepare(tmp_path, code=neppo_code, train=cu_al, test=cu_al_test,
                               parameters=orm.Dict({**SMALL, 'population': 50}), seed=orm.Int(7),
                               metadata={'options': {'device': 'cpu'}})
    # every architecture keyword explicit, `type` from the dataset (sorted symbols), population dropped for neppo
    assert (folder / 'nep.in').read_text() == (
        'type 2 Al Cu\nversion 4\ncutoff 5 4\nn_max 4 4\nbasis_size 4 4\nl_max 4 2 0\nneuron 8\n'
        'lambda_e 1\nlambda_f 1\nlambda_v 0.1\nbatch 5\ngeneration 40\nseed 7\noutput_interval 10\n')
    train = read_train_xyz(folder / 'train.xyz')
    assert len(train) == 5 and len(read_train_xyz(folder / 'test.xyz')) == 2
    original = cu_al.get_ase()
    for written, source in zip(train, original, strict=True):
        np.testing.assert_allclose(written.get_forces(), source.get_forces(), atol=1e-8)
        assert written.get_potential_energy() == pytest.approx(source.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(written.get_stress(), source.get_stress(), atol=1e-10)
    assert calcinfo.codes_info[0].cmdline_params == ['train', '.', '--device', 'cpu']
    assert {'nep.txt', 'loss.out', 'force_train.out', 'virial_test.out'} <= set(calcinfo.retrieve_list)
    assert calcinfo.local_copy_list == []


def test_prepare_gpumd_nep_with_restart(tmp_path, neppo_code, cu_al):
    """program 'nep': no arguments, population kept, nep.restart copied into the folder."""
    restart = orm.SinglefileData.from_string('0.1 0.01\n' * 10, filename='nep.restart').store()
    params = {k: v for k, v in SMALL.items() if k != 'output_interval'}
    folder, calcinfo = prepare(tmp_path, code=neppo_code, program=orm.Str('nep'), train=cu_al,
                               parameters=orm.Dict({**params, 'population': 30}), restart=restart)
    text = (folder / 'nep.in').read_text()
    assert 'population 30\n' in text and text.startswith('type 2 Al Cu\n')
    assert calcinfo.codes_info[0].cmdline_params == []
    assert calcinfo.local_copy_list == [(restart.uuid, 'nep.restart', 'nep.restart')]


@pytest.mark.parametrize('program', ['neppo', 'nep'])
def test_prepare_charge_model(tmp_path, neppo_code, cu_al, cu_al_test, program):
    """qNEP (charge_mode 1) for either program: the keyword and the charge-loss weight in nep.in after the
    architecture, and the charge and BEC prediction files (GPUMD src/main_nep/fitness.cu, neppo/output.py) retrieved
    with the others."""
    params = {k: v for k, v in SMALL.items() if program == 'neppo' or k != 'output_interval'}
    folder, calcinfo = prepare(tmp_path, code=neppo_code, program=orm.Str(program), train=cu_al, test=cu_al_test,
                               parameters=orm.Dict({**params, 'charge_mode': 1, 'lambda_q': 0.2}))
    lines = (folder / 'nep.in').read_text().splitlines()
    assert lines[:8] == ['type 2 Al Cu', 'version 4', 'cutoff 5 4', 'n_max 4 4', 'basis_size 4 4', 'l_max 4 2 0',
                         'neuron 8', 'charge_mode 1']
    assert 'lambda_q 0.2' in lines
    assert {'charge_train.out', 'charge_test.out', 'bec_train.out', 'bec_test.out', 'nep.txt',
            'loss.out'} <= set(calcinfo.retrieve_list)


def test_program_from_code(neppo_code):
    assert resolve_program(None, neppo_code) == 'neppo'
    assert resolve_program(orm.Str('nep'), neppo_code) == 'nep'
    neppo_code.base.extras.set('nep_program', 'nep')
    try:
        assert resolve_program(None, neppo_code) == 'nep'
    finally:
        neppo_code.base.extras.delete('nep_program')
    with pytest.raises(ValueError, match='program must be one of'):
        resolve_program('gpumd')


@pytest.mark.parametrize(('change', 'message'), [
    ({'parameters': {**SMALL, 'type': ['Cu']}}, 'element(s) Al of the dataset are not in the nep.in `type`'),
    ({'parameters': {**SMALL, 'type': ['Cu', 'Al', 'O']}}, '`type` lists O, which no training structure holds'),
    ({'parameters': {**SMALL, 'force_delta': 0.1}}, "'force_delta' is not accepted by neppo"),
    ({'parameters': {**SMALL, 'learning_rate': [0.01, 0.0001]}, 'program': 'nep'},
     "'output_interval' is not accepted by nep"),
    ({'parameters': {k: v for k, v in SMALL.items() if k != 'output_interval'} | {'learning_rate': [0.01, 0.001]},
      'program': 'nep'}, "'learning_rate' is not accepted by nep"),
    ({'parameters': {**SMALL, 'seed': 3}, 'seed': 4}, 'seed given twice'),
    ({'parameters': {**SMALL, 'cutoff': [4, 5]}}, 'rc_A = 5.0 > rc_R = 4.0'),
    ({'restart': True}, 'neppo 1.0 cannot continue from nep.restart'),
    ({'parameters': {**SMALL, 'lambda_q': 0.2}}, "'lambda_q' weights a loss term of a charge model (qNEP) only"),
    ({'parameters': {**SMALL, 'charge_mode': 3}}, "'charge_mode': 3, expected 0, 1 or 2"),
])
def test_refused_before_submission(neppo_code, cu_al, change, message):
    inputs = {'code': neppo_code, 'train': cu_al, 'parameters': orm.Dict(change.get('parameters', SMALL))}
    if 'program' in change:
        inputs['program'] = orm.Str(change['program'])
    if 'seed' in change:
        inputs['seed'] = orm.Int(change['seed'])
    if 'restart' in change:
        inputs['restart'] = orm.SinglefileData.from_string('0 0\n', filename='nep.restart')
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)').replace('.', r'\.')):
        instantiate_process(get_manager().get_runner(), NepTrainCalculation, **inputs)


def test_refused_empty_test_set_and_foreign_element(neppo_code, cu_al):
    from ase.build import bulk

    empty = LabelledDataset()  # a node without structures (n_structures unset)
    with pytest.raises(ValueError, match='the test set is empty'):
        instantiate_process(get_manager().get_runner(), NepTrainCalculation, code=neppo_code, train=cu_al,
                            test=empty, parameters=orm.Dict(SMALL))
    nickel = bulk('Ni', 'fcc', a=3.52, cubic=True)
    nickel.info['energy'] = -1.0
    nickel.arrays['forces'] = np.zeros((4, 3))
    with pytest.raises(ValueError, match='the test set holds element.s. Ni that the training set lacks'):
        instantiate_process(get_manager().get_runner(), NepTrainCalculation, code=neppo_code, train=cu_al,
                            test=LabelledDataset([nickel]), parameters=orm.Dict(SMALL))


@pytest.mark.slow
def test_neppo_training_through_calcjob_agrees_with_cpunep(neppo_code, cu_al, cu_al_test):
    """A real `neppo train --device cpu` (40 AdamW steps, 5+2 thin Cu/Al cells) through the CalcJob; then the
    output NepModel evaluated by calorine's CPUNEP (C++, float64) on the training set reproduces the RMSEs the
    parser reports (neppo, PyTorch float32): two independent NEP implementations.

    Tolerances: recomputed from force_train.out (6 significant digits) to 1e-3 relative; loss.out prints 5 decimals
    (eV/Å), hence 1e-3 relative or 6e-3 meV/Å absolute.
    """
    from aiida_sseff.analysis.metrics import rmse

    results, node = run_get_node(NepTrainCalculation, code=neppo_code, train=cu_al, test=cu_al_test,
                                 parameters=orm.Dict(SMALL), seed=orm.Int(1))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    summary = results['results'].get_dict()
    assert summary['generation'] == 40 and summary['n_reports'] == 4 and summary['program'] == 'neppo'
    assert summary['total_loss_last'] < summary['total_loss_first']
    assert results['loss'].get_array('generation').tolist() == [10, 20, 30, 40]
    assert results['parity_train'].get_array('virial_predicted').shape == (5, 6)
    assert results['parity_test'].get_array('force_target').shape == (64, 3)
    assert results['model'].elements == ['Al', 'Cu'] and 'best_model' in results

    calculator = results['model'].get_calculator()
    predicted, target, energy_errors = [], [], []
    for atoms in cu_al.get_ase():
        reference_energy, reference_forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = calculator
        predicted.append(atoms.get_forces())
        target.append(reference_forces)
        energy_errors.append((atoms.get_potential_energy() - reference_energy) / len(atoms))
    cpunep_force = 1000 * rmse(np.concatenate(predicted), np.concatenate(target))
    cpunep_energy = 1000 * float(np.sqrt(np.mean(np.square(energy_errors))))
    recomputed, reported = summary['recomputed']['train'], summary['loss_out']['train']
    assert cpunep_force == pytest.approx(recomputed['force_mev_per_angstrom'], rel=1e-3)
    assert cpunep_force == pytest.approx(reported['force_mev_per_angstrom'], rel=1e-3, abs=6e-3)
    assert cpunep_energy == pytest.approx(reported['energy_mev_per_atom'], rel=1e-3, abs=6e-3)
    np.testing.assert_allclose(np.concatenate(predicted), results['parity_train'].get_array('force_predicted'),
                               atol=5e-5)
