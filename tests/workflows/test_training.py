"""``sseff.train.nep`` and ``sseff.train.nep.base``: protocols, the calcfunctions, and REAL neppo trainings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.io.nep import validate_nep_parameters
from aiida_sseff.workflows.training import (
    NepTrainBaseWorkChain,
    NepTrainingWorkChain,
    evaluate_nep_model,
    split_train_validation_test,
    summarise_replicas,
)

REFERENCE = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'reference'
LLZO = REFERENCE / 'llzo'


@pytest.fixture(scope='module')
def small_set(aiida_profile, cu_al_structures):
    """The LLZO reference set's first 6 structures (192 atoms, DFT labels), else 8 EMT Cu/Al cells."""
    from aiida_sseff.io.extxyz import read_train_xyz

    if (LLZO / 'nep_training' / 'train.xyz').is_file():
        return LabelledDataset(read_train_xyz(LLZO / 'nep_training' / 'train.xyz')[:6]).store()
    return LabelledDataset(cu_al_structures(8)).store()


# ---------------------------------------------------------------------------------------------------- protocols


def test_protocols(neppo_code, small_set):
    assert set(NepTrainingWorkChain.get_available_protocols()) == {'fast', 'balanced', 'stringent'}
    builder = NepTrainingWorkChain.get_builder_from_protocol(neppo_code, small_set, protocol='fast')
    parameters = builder.training.nep.parameters.get_dict()
    assert parameters['cutoff'] == [5.0, 4.0] and parameters['neuron'] == 16 and parameters['batch'] == 2
    assert parameters['generation'] == 800 and parameters['learning_rate'] == [0.02, 0.0005]
    assert 'population' not in parameters and builder.n_replicas.value == 2
    assert builder.training.nep.metadata.options['device'] == 'cpu'
    validate_nep_parameters(parameters, small_set.elements, 'neppo')

    # the seed paper's settings, for GPUMD nep: nothing neppo-specific, everything nep needs
    builder = NepTrainingWorkChain.get_builder_from_protocol(neppo_code, small_set, protocol='stringent',
                                                             program='nep')
    parameters = builder.training.nep.parameters.get_dict()
    normalised = validate_nep_parameters(parameters, small_set.elements, 'nep')
    assert normalised['cutoff'] == (6.0, 4.0) and normalised['n_max'] == (4, 4)
    assert normalised['basis_size'] == (8, 8) and normalised['l_max'] == (4, 2, 0)
    assert normalised['neuron'] == 30 and normalised['population'] == 50 and normalised['generation'] == 100000
    assert builder.training.nep.program.value == 'nep' and 'device' not in builder.training.nep.metadata.options

    # balanced with neppo: one structure a step, 4,000 steps (bench_neppo.py's race); GPUMD nep keeps its own
    # generations and batch (the neppo settings are program_parameters.neppo or a generation nep overrides)
    builder = NepTrainingWorkChain.get_builder_from_protocol(neppo_code, small_set, protocol='balanced')
    normalised = validate_nep_parameters(builder.training.nep.parameters.get_dict(), small_set.elements, 'neppo')
    assert normalised['batch'] == 1 and normalised['generation'] == 4000
    assert normalised['learning_rate'] == (0.02, 0.0002) and normalised['neuron'] == 30
    builder = NepTrainingWorkChain.get_builder_from_protocol(neppo_code, small_set, protocol='balanced', program='nep')
    parameters = builder.training.nep.parameters.get_dict()
    assert parameters['generation'] == 20000 and parameters['batch'] == 1000 and 'learning_rate' not in parameters

    with pytest.warns(UserWarning, match='unknown to protocol'):
        builder = NepTrainingWorkChain.get_builder_from_protocol(
            neppo_code, small_set, protocol='fast', overrides={'n_replicas': 4, 'parameters': {'neuron': 20},
                                                               'nonsense': 1})
    assert builder.n_replicas.value == 4 and builder.training.nep.parameters['neuron'] == 20


# ------------------------------------------------------------------------------------------------ calcfunctions


def test_three_way_split_and_summary(aiida_profile, cu_al_structures):
    """train / validation (picks the replica) / test (reported): disjoint, together the whole set, seeded."""
    dataset = LabelledDataset(cu_al_structures(10))
    split = split_train_validation_test(dataset, orm.Float(0.2), orm.Float(0.3), orm.Int(3))
    sizes = {name: node.n_structures for name, node in split.items()}
    assert sizes == {'train': 5, 'validation': 2, 'test': 3}
    keys = {name: {round(a.get_potential_energy(), 10) for a in node.get_ase()} for name, node in split.items()}
    assert not keys['validation'] & keys['test'] and not keys['train'] & (keys['validation'] | keys['test'])
    energies = sorted(a.get_potential_energy() for s in split.values() for a in s.get_ase())
    np.testing.assert_allclose(energies, sorted(a.get_potential_energy() for a in dataset.get_ase()))
    again = split_train_validation_test(dataset, orm.Float(0.2), orm.Float(0.3), orm.Int(3))
    assert again['validation'].sha256 == split['validation'].sha256 and again['test'].sha256 == split['test'].sha256
    only_test = split_train_validation_test(dataset, orm.Float(0.0), orm.Float(0.1), orm.Int(3))
    assert set(only_test) == {'train', 'test'} and only_test['test'].n_structures == 1
    with pytest.raises(ValueError, match='at least one must be left for training'):
        split_train_validation_test(LabelledDataset(cu_al_structures(2)), orm.Float(0.1), orm.Float(0.1), orm.Int(1))

    metrics = {f'replica_{i:02d}': orm.Dict({'energy_mev_per_atom': e, 'force_mev_per_angstrom': f,
                                             'virial_mev_per_atom': None, 'stress_gpa': 0.1, 'n_structures': 2,
                                             'force_per_element': {'Cu': {'rmse_mev_per_angstrom': f - 1}}})
               for i, (e, f) in enumerate([(2.0, 100.0), (4.0, 90.0), (3.0, 110.0)])}
    summary = summarise_replicas(**metrics).get_dict()
    assert summary['force_mev_per_angstrom']['mean'] == pytest.approx(100.0)
    assert summary['force_mev_per_angstrom']['std'] == pytest.approx(10.0)  # sample std (ddof 1)
    assert summary['energy_mev_per_atom']['std'] == pytest.approx(1.0)
    assert summary['virial_mev_per_atom'] is None and summary['best_replica'] == 'replica_01'
    assert summary['force_per_element_mev_per_angstrom']['Cu']['mean'] == pytest.approx(99.0)
    # the test-set summary names the replica chosen on the validation set, not its own lowest
    assert summarise_replicas(chosen=orm.Str('replica_02'), **metrics)['best_replica'] == 'replica_02'


def test_training_refuses_a_set_too_small_to_split(neppo_code, aiida_profile, cu_al_structures):
    builder = NepTrainingWorkChain.get_builder_from_protocol(neppo_code, LabelledDataset(cu_al_structures(2)),
                                                             protocol='fast')
    with pytest.raises(ValueError, match='dataset of 2 structure.*cannot give validation and test'):
        run_get_node(builder)


@pytest.mark.reference
def test_evaluate_reference_model_reproduces_gpumd(aiida_profile):
    """CPUNEP evaluation of the reference LLZO model on its own training set: GPUMD's loss.out reports, at
    generation 100000, E 0.00012 eV/atom, F 0.03603 eV/Å, V 0.00322 eV/atom (stress_train.out: 5 printed decimals);
    the calcfunction must give these within 1 % (force), 2 % (virial) and 0.01 meV/atom (energy)."""
    from aiida_sseff.data.model import NepModel
    from aiida_sseff.io.extxyz import read_train_xyz

    if not (LLZO / 'nep_training' / 'train.xyz').is_file():
        pytest.skip(f'reference data absent: {LLZO}')
    model = NepModel(LLZO / 'nep_training' / 'nep.txt')
    dataset = LabelledDataset(read_train_xyz(LLZO / 'nep_training' / 'train.xyz'))
    metrics = evaluate_nep_model(model, dataset).get_dict()
    assert metrics['force_mev_per_angstrom'] == pytest.approx(36.03, rel=0.01)
    assert metrics['virial_mev_per_atom'] == pytest.approx(3.22, rel=0.02)
    assert metrics['energy_mev_per_atom'] == pytest.approx(0.12, abs=0.01)
    per_element = metrics['force_per_element']
    assert set(per_element) == {'Li', 'La', 'Zr', 'O'}
    assert sum(v['n_atoms'] for v in per_element.values()) == 25 * 192
    # the per-element RMSEs recombine into the total (weighted by 3 components per atom)
    total = np.sqrt(sum(v['rmse_mev_per_angstrom'] ** 2 * v['n_atoms'] for v in per_element.values()) / 4800)
    assert total == pytest.approx(metrics['force_mev_per_angstrom'], rel=1e-9)


# ------------------------------------------------------------------------------------------------- real runs


@pytest.mark.slow
def test_base_workchain_stops_when_loss_does_not_decrease(neppo_code, aiida_profile, cu_al_structures):
    """A learning rate of 1e-9 leaves the model where it started: the CalcJob exits 411 and the base work chain
    stops with its own 411 instead of restarting."""
    train = LabelledDataset(cu_al_structures(3))
    parameters = {'cutoff': [5, 4], 'n_max': [4, 4], 'basis_size': [4, 4], 'neuron': 6, 'batch': 3,
                  'generation': 10, 'output_interval': 5, 'learning_rate': [1e-9, 1e-9]}
    _, node = run_get_node(NepTrainBaseWorkChain, nep={'code': neppo_code, 'train': train,
                                                       'parameters': orm.Dict(parameters), 'seed': orm.Int(1)})
    assert node.exit_status == NepTrainBaseWorkChain.exit_codes.ERROR_LOSS_NOT_DECREASING.status
    calcjobs = node.called
    assert len(calcjobs) == 1 and calcjobs[0].exit_status == 411


@pytest.mark.slow
def test_two_replica_fast_training(neppo_code, small_set):
    """The `fast` protocol with 40 steps on 6 LLZO structures (or 8 EMT cells), 2 replicas in parallel.

    The validation set is test.xyz of both trainings, so the calcfunction's CPUNEP errors on it must equal the
    errors neppo wrote to *_test.out (1e-3 relative: float32 PyTorch against float64 C++). It picks the best replica;
    the errors reported as held-out are those on the test set, which neither the trainer nor the choice saw."""
    builder = NepTrainingWorkChain.get_builder_from_protocol(
        neppo_code, small_set, protocol='fast',
        overrides={'parameters': {'generation': 40}, 'program_parameters': {'neppo': {'output_interval': 20}}})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    # 0.15 of 6 rounds to 1 validation and 1 test structure (training.yaml)
    assert results['validation_dataset'].n_structures == 1 and results['test_dataset'].n_structures == 1
    assert results['train_dataset'].n_structures == 4
    assert results['validation_dataset'].sha256 != results['test_dataset'].sha256
    replicas = results['replicas']
    assert set(replicas) == {'replica_00', 'replica_01'}
    calls = [n for n in node.called if isinstance(n, orm.WorkflowNode) and 'nep' in n.inputs]
    assert {n.inputs.nep.seed.value for n in calls} == {1, 2}
    assert {n.inputs.nep.test.uuid for n in calls} == {results['validation_dataset'].uuid}  # never the test set
    models = {replicas[label]['model'].sha256 for label in replicas}
    assert len(models) == 2  # different seeds, different models
    validation, test = {}, {}
    for label in replicas:
        metrics = replicas[label]['validation_metrics'].get_dict()
        training = replicas[label]['training'].get_dict()
        assert metrics['force_mev_per_angstrom'] == pytest.approx(
            training['recomputed']['test']['force_mev_per_angstrom'], rel=1e-3)
        assert metrics['energy_mev_per_atom'] == pytest.approx(
            training['recomputed']['test']['energy_mev_per_atom'], rel=1e-3, abs=1e-3)
        validation[label] = metrics['force_mev_per_angstrom']
        test[label] = replicas[label]['test_metrics']['force_mev_per_angstrom']
    best = min(validation, key=validation.get)
    summary = results['summary'].get_dict()
    assert summary['best_replica'] == best == results['validation_summary']['best_replica']
    assert results['model'].uuid == replicas[best]['model'].uuid
    assert results['validation_metrics']['force_mev_per_angstrom'] == pytest.approx(validation[best])
    assert results['test_metrics']['force_mev_per_angstrom'] == pytest.approx(test[best])
    assert summary['force_mev_per_angstrom']['mean'] == pytest.approx(np.mean(list(test.values())))
    assert summary['force_mev_per_angstrom']['std'] == pytest.approx(np.std(list(test.values()), ddof=1))
    assert set(summary['force_per_element_mev_per_angstrom']) == set(small_set.elements)
