"""``sseff.train`` (ArchitectureTrainingWorkChain): refusals before anything runs, the generic evaluation, the cost and
summary calcfunctions, the wall-time readers on the programs' own formats, and a REAL run of NEP, qNEP, MACE-T0-I
and MACE-T1-E on LLZO DFT cells with a short MD of each model."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.io.training_logs import read_gpumd_nep_wall_time, read_mace_wall_time, read_neppo_wall_time
from aiida_sseff.workflows.architectures import (
    ArchitectureTrainingWorkChain,
    architecture_cost,
    summarise_architectures,
)
from aiida_sseff.workflows.training import evaluate_model, evaluate_nep_model


@pytest.fixture(scope='module')
def cu_al(aiida_profile, cu_al_structures):
    """8 EMT Cu/Al cells with stress, and the same without (energy and forces only)."""
    structures = cu_al_structures(8)
    bare = []
    for atoms in structures:
        copy = atoms.copy()
        copy.calc = SinglePointCalculator(copy, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
        bare.append(copy)
    return LabelledDataset(structures).store(), LabelledDataset(bare).store()


def _n_workflows() -> int:
    return orm.QueryBuilder().append(orm.WorkflowNode).count()


def _refused(builder, match: str) -> None:
    """The inputs validator refuses the builder with ``match``, and no process node is made."""
    before = _n_workflows()
    with pytest.raises(ValueError, match=match):
        run_get_node(builder)
    assert _n_workflows() == before


def _builder(neppo_code, mace_code, dataset, architectures, **kwargs):
    return ArchitectureTrainingWorkChain.get_builder_from_protocol(neppo_code, mace_code, dataset,
                                                                   architectures=architectures, protocol='fast',
                                                                   **kwargs)


# ------------------------------------------------------------------------------------------------ refusals


def test_protocol_builder_is_accepted(neppo_code, mace_code, engine_code, cu_al):
    """The fast protocol on the Cu/Al set: the children's protocols, and a speed cell it can run on."""
    with_stress, without_stress = cu_al
    structure = orm.StructureData(ase=with_stress.get_ase()[0])
    assert set(ArchitectureTrainingWorkChain.get_available_protocols()) == {'fast', 'balanced', 'stringent'}
    builder = ArchitectureTrainingWorkChain.get_builder_from_protocol(
        neppo_code, mace_code, with_stress, protocol='fast', engine_code=engine_code, speed_structure=structure)
    assert set(builder.architectures.get_dict()) == {'NEP', 'qNEP', 'MACE_T0_I', 'MACE_T1_E'}
    assert builder.nep.nep.parameters['neuron'] == 16  # training.yaml, fast
    assert builder.mace.mace.parameters['num_channels'] == 8  # mace.yaml, fast
    assert builder.seeds.get_list() == [1] and builder.speed.replications.get_list() == [[1, 1, 1], [2, 1, 1]]
    assert 'device' not in builder.speed.md.metadata.options
    inputs = builder._inputs(prune=True)
    assert ArchitectureTrainingWorkChain.spec().inputs.validate(inputs) is None
    # without stress labels the protocol trains without stress, and is accepted
    builder = ArchitectureTrainingWorkChain.get_builder_from_protocol(neppo_code, mace_code, without_stress,
                                                                      protocol='fast')
    assert builder.nep.nep.parameters['lambda_v'] == 0.0 and builder.mace.mace.parameters['stress_weight'] == 0.0
    assert ArchitectureTrainingWorkChain.spec().inputs.validate(builder._inputs(prune=True)) is None


def test_refuses_unknown_variant_and_les(neppo_code, mace_code, cu_al):
    from aiida_sseff.io.mace import les_available

    dataset = cu_al[0]
    _refused(_builder(neppo_code, mace_code, dataset, {'M': {'kind': 'mace', 'variant': 'MACE-T2-X'}}),
             'architecture `M`: unknown MACE variant `MACE-T2-X`; choose one of MACE-T0-I, MACE-T0-E')
    if les_available():
        pytest.skip('the les package is installed here: MACE-T1-E-LES is then a valid variant')
    _refused(_builder(neppo_code, mace_code, dataset, {'LES': {'kind': 'mace', 'variant': 'MACE-T1-E-LES'}}),
             'variant `MACE-T1-E-LES` needs the `les` package')


def test_refuses_unknown_kind_and_bad_labels(neppo_code, mace_code, cu_al):
    dataset = cu_al[0]
    _refused(_builder(neppo_code, mace_code, dataset, {'A': {'kind': 'allegro'}}),
             'architecture `A`: unknown architecture kind `allegro`; choose one of nep, mace')
    _refused(_builder(neppo_code, mace_code, dataset, {'MACE-T0-I': {'kind': 'mace', 'variant': 'MACE-T0-I'}}),
             'label `MACE-T0-I` cannot be a link name.*MACE_T0_I')
    _refused(_builder(neppo_code, mace_code, dataset, {'N': {'kind': 'nep', 'variant': 'MACE-T0-I'}}),
             r'architecture `N` \(kind nep\): unknown key\(s\) variant')
    _refused(_builder(neppo_code, None, dataset, {'M': {'kind': 'mace', 'variant': 'MACE-T0-I'}}),
             'architecture `M` is of kind mace, but no mace code was given')


def test_refuses_stress_training_without_stress(neppo_code, mace_code, cu_al):
    without_stress = cu_al[1]
    assert not without_stress.base.attributes.get('has_virial')
    _refused(_builder(neppo_code, mace_code, without_stress, {'NEP': {'kind': 'nep', 'parameters': {'lambda_v': 0.1}}}),
             r'architecture `NEP` trains on stress \(nep.in lambda_v = 0.1 > 0\), but the dataset <.*has_virial')
    _refused(_builder(neppo_code, mace_code, without_stress,
                      {'M': {'kind': 'mace', 'variant': 'MACE-T0-I', 'parameters': {'stress_weight': 10.0}}}),
             r'architecture `M` trains on stress \(mace stress_weight = 10.0 > 0\)')
    # the same spec on the set with stress is accepted
    builder = _builder(neppo_code, mace_code, cu_al[0],
                       {'M': {'kind': 'mace', 'variant': 'MACE-T0-I', 'parameters': {'stress_weight': 10.0}}})
    assert ArchitectureTrainingWorkChain.spec().inputs.validate(builder._inputs(prune=True)) is None


def test_refuses_missing_or_too_small_data(neppo_code, mace_code, cu_al, cu_al_structures):
    _refused(_builder(neppo_code, mace_code, None, {'NEP': {'kind': 'nep'}}),
             'give the labelled data: `dataset` .* or all three of `train`, `validation` and `test` \\(got none\\)')
    _refused(_builder(neppo_code, mace_code, LabelledDataset(cu_al_structures(2)), {'NEP': {'kind': 'nep'}}),
             'the dataset of 2 structure\\(s\\) cannot give validation and test set\\(s\\) and keep one')
    builder = _builder(neppo_code, mace_code, cu_al[0], {'NEP': {'kind': 'nep'}})
    builder.test_fraction = orm.Float(1.0)
    _refused(builder, 'test_fraction must be between 0 and 1 \\(exclusive\\), got 1.0')


def test_refuses_speed_structure_with_other_elements(neppo_code, mace_code, engine_code, cu_al):
    from ase.build import bulk

    structure = orm.StructureData(ase=bulk('CuNi', 'rocksalt', a=3.6))
    _refused(_builder(neppo_code, mace_code, cu_al[0], {'NEP': {'kind': 'nep'}}, engine_code=engine_code,
                      speed_structure=structure),
             'the speed structure holds element\\(s\\) Ni that the training data lack \\(it has Al, Cu\\)')


def test_refuses_bad_child_parameters(neppo_code, mace_code, cu_al):
    """The children's own checks run before anything is trained (a bad MACE option would otherwise fail after the
    NEP trainings finished)."""
    _refused(_builder(neppo_code, mace_code, cu_al[0],
                      {'M': {'kind': 'mace', 'variant': 'MACE-T0-I', 'parameters': {'num_chanels': 8}}}),
             'architecture `M`: mace_run_train .* has no option\\(s\\) num_chanels')
    _refused(_builder(neppo_code, mace_code, cu_al[0], {'N': {'kind': 'nep', 'parameters': {'neuron': 0}}}),
             "architecture `N`: nep.in keyword 'neuron'")


# ------------------------------------------------------------------------------------------ calcfunctions


@pytest.mark.reference
def test_evaluate_model_matches_gpumd_for_the_reference_nep(aiida_profile, reference_dir):
    """evaluate_model (the one evaluation of every architecture) on the reference LLZO model and its own training set:
    GPUMD's loss.out reports at generation 100000 a force RMSE of 0.03603 eV/Å and E 0.00012 eV/atom; the result
    must match that within 1 % and equal the NEP-only evaluate_nep_model."""
    from aiida_sseff.data.model import NepModel
    from aiida_sseff.io.extxyz import read_train_xyz

    model = NepModel(reference_dir / 'llzo' / 'nep_training' / 'nep.txt')
    dataset = LabelledDataset(read_train_xyz(reference_dir / 'llzo' / 'nep_training' / 'train.xyz'))
    metrics = evaluate_model(model, dataset).get_dict()
    assert metrics['force_mev_per_angstrom'] == pytest.approx(36.03, rel=0.01)
    assert metrics['energy_mev_per_atom'] == pytest.approx(0.12, abs=0.01)
    nep_only = evaluate_nep_model(model, dataset).get_dict()
    assert metrics['force_mev_per_angstrom'] == pytest.approx(nep_only['force_mev_per_angstrom'], rel=1e-12)
    assert set(metrics) == set(nep_only)  # the same keys: the NEP readers read every architecture
    with pytest.raises(TypeError, match='takes a NepModel or a MaceModel, got Dict'):
        evaluate_model(orm.Dict({'a': 1}), dataset)


def test_wall_time_readers_on_the_programs_own_formats():
    """Text made by the programs' own formatting code (neppo's summary block, mace-torch's logger), and GPUMD nep's
    printf format from src/main_nep/main.cu."""
    from neppo._log import format_duration
    from neppo._representation import text_representation

    summary = text_representation('Summary', [('finished', '2026-12-02 00:00:00'),
                                              ('wall time', f'{format_duration(3725.4)}, 12.3 ms per step, 9 '
                                                            'structures/s'), ('RMSE train', 'E 1 meV/atom')])
    assert read_neppo_wall_time('step epoch\n' + summary) == 3725.0
    assert read_neppo_wall_time('Training\n  step 10\n') is None

    gpumd = ('Time used for initialization = 1.250000 s.\n---\nTime used for training = 812.500000 s.\n'
             'Finished running nep.\n')
    assert read_gpumd_nep_wall_time(gpumd) == pytest.approx(813.75)
    assert read_gpumd_nep_wall_time('Started running nep.\n') is None

    pytest.importorskip('mace')
    from aiida_sseff.compat import import_mace

    import_mace()
    from mace.tools.utils import setup_logger

    setup_logger(level=logging.INFO)
    formatter = logging.getLogger().handlers[-1].formatter
    lines = []
    for created, message in ((1.7e9, 'MACE version: 0.3.16'), (1.7e9 + 95.25, 'Training complete'),
                             (1.7e9 + 100.5, 'Done')):
        record = logging.LogRecord('root', logging.INFO, __file__, 1, message, None, None)
        record.created, record.msecs = created, (created % 1) * 1000
        lines.append(formatter.format(record))
    assert read_mace_wall_time('\n'.join(lines)) == pytest.approx(100.5, abs=1e-3)
    assert read_mace_wall_time(lines[0]) is None


def test_cost_and_summary(aiida_profile):
    """architecture_cost sums a seed's restarts and sorts the sizes; summarise_architectures takes the ratio to NEP."""
    def folder(name: str, text: str) -> orm.FolderData:
        node = orm.FolderData()
        node.base.repository.put_object_from_bytes(text.encode(), name)
        return node

    log = 'wall time                : {}, 1 ms per step\n'
    cost = architecture_cost(
        orm.Str('neppo'), orm.Str('seed_2'), orm.Str('cpu'),
        retrieved_seed_1_00=folder('nep.log', log.format('0:01:40')),
        retrieved_seed_2_00=folder('nep.log', log.format('0:00:30')),
        retrieved_seed_2_01=folder('nep.log', log.format('0:00:20')),  # a restart: summed
        replication_00=orm.List([2, 1, 1]), md_00=orm.Dict({'n_atoms': 384, 'production_speed_atom_step_per_s': 5e3,
                                                            'peak_memory_mb': 300.0, 'n_steps': 20}),
        replication_01=orm.List([1, 1, 1]), md_01=orm.Dict({'n_atoms': 192, 'production_speed_atom_step_per_s': 4e3,
                                                            'peak_memory_mb': 250.0, 'n_steps': 20}),
        replication_02=orm.List([2, 2, 1])).get_dict()  # its MD failed
    assert cost['train_wall_time_s'] == 50.0 and cost['train_wall_time_s_per_seed'] == {'seed_1': 100.0,
                                                                                         'seed_2': 50.0}
    assert cost['train_wall_time_mean_s'] == 75.0
    assert [entry['n_atoms'] for entry in cost['md_speed']] == [192, 384]
    assert cost['md_speed'][1]['atom_steps_per_s'] == 5e3 and cost['md_failed'] == [[2, 2, 1]]

    def metrics(force):
        return orm.Dict({'energy_mev_per_atom': 1.0, 'force_mev_per_angstrom': force, 'virial_mev_per_atom': None,
                         'stress_gpa': 0.1})

    spread = orm.Dict({'best_replica': 'seed_1', 'n_replicas': 2,
                       'force_mev_per_angstrom': {'mean': 105.0, 'std': 7.0},
                       'energy_mev_per_atom': {'mean': 1.0, 'std': 0.0}})
    architectures = orm.Dict({'NEP': {'kind': 'nep'}, 'M': {'kind': 'mace', 'variant': 'MACE-T0-I'},
                              'X': {'kind': 'mace', 'variant': 'MACE-T1-E'}})
    summary = summarise_architectures(architectures, test_metrics_NEP=metrics(100.0), test_metrics_M=metrics(25.0),
                                      seed_spread_NEP=spread, seed_spread_M=spread, cost_NEP=orm.Dict(cost),
                                      cost_M=orm.Dict({'train_wall_time_s': 9.0})).get_dict()
    rows = {row['architecture']: row for row in summary['rows']}
    assert summary['reference_architecture'] == 'NEP' and summary['failed'] == ['X']
    assert rows['M']['force_relative_to_reference'] == pytest.approx(0.25)
    assert rows['NEP']['md_n_atoms'] == [192, 384] and rows['NEP']['md_atom_steps_per_s'] == [4e3, 5e3]
    assert rows['M']['force_seed_std_mev_per_angstrom'] == 7.0 and rows['M']['md_n_atoms'] == []


# ------------------------------------------------------------------------------------------------- real run


@pytest.mark.slow
def test_three_architectures_train_and_run_md(neppo_code, mace_code, engine_code, reference_dir):
    """NEP, qNEP and MACE-T1-E trained for a few steps/epochs on 10 LLZO DFT cells (192 atoms, one shared split),
    each chosen model run for 5 MD steps on an LLZO cell. (MACE-T0-I differs from T1-E only by one interaction: it
    is trained and run in tests/calculations/test_mace.py and in the architecture study's end-to-end test.)

    Checks that can fail: every architecture trained on the same train set and validated on the same validation
    set; evaluate_model's force RMSE on the validation set equals what each trainer itself reported on it (neppo's
    *_test.out, mace_eval_configs on valid.xyz: another implementation of the same model, 1e-3 relative); the
    training wall time came from the programs' logs; the MD speed is positive for each model."""
    from ase.io import read

    frames = read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index='0:10')
    dataset = LabelledDataset(frames).store()
    structure = orm.StructureData(ase=frames[0])
    architectures = {label: spec for label, spec in
                     ArchitectureTrainingWorkChain.get_protocol_inputs('fast')['architectures'].items()
                     if label != 'MACE_T0_I'}
    builder = ArchitectureTrainingWorkChain.get_builder_from_protocol(
        neppo_code, mace_code, dataset, protocol='fast', engine_code=engine_code, speed_structure=structure,
        architectures=architectures,
        overrides={'nep': {'overrides': {'parameters': {'generation': 40},
                                         'program_parameters': {'neppo': {'output_interval': 20}}}},
                   'mace': {'overrides': {'mace': {'parameters': {'max_num_epochs': 2}}}},
                   'speed': {'n_steps': 5, 'replications': [[1, 1, 1]]}})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    labels = {'NEP', 'qNEP', 'MACE_T1_E'}
    assert set(results['models']) == set(results['test_metrics']) == set(results['cost']) == labels
    assert results['models']['qNEP'].base.attributes.get('charge_mode') == 1
    assert results['models']['MACE_T1_E'].base.attributes.get('num_interactions') == 2

    trainings = {n.label: n for n in node.called if n.label.startswith('train_')}
    assert len(trainings) == 3
    train_sets = {(n.inputs.nep.train if 'nep' in n.inputs else n.inputs.mace.train).uuid for n in trainings.values()}
    validation_sets = {(n.inputs.nep.test if 'nep' in n.inputs else n.inputs.mace.validation).uuid
                       for n in trainings.values()}
    assert train_sets == {results['train_dataset'].uuid} and validation_sets == {results['validation_dataset'].uuid}

    for label, training in trainings.items():
        architecture = label[len('train_'):-len('_seed_1')]
        own = training.outputs.results['recomputed']
        own = own['test'] if 'nep' in training.inputs else own['validation']
        ours = results['replicas'][architecture]['seed_1_validation_metrics']['force_mev_per_angstrom']
        assert ours == pytest.approx(own['force_mev_per_angstrom'], rel=1e-3), architecture

    summary = results['summary'].get_dict()
    rows = {row['architecture']: row for row in summary['rows']}
    assert summary['reference_architecture'] == 'NEP' and rows['NEP']['force_relative_to_reference'] == 1.0
    for label in labels:
        cost = results['cost'][label].get_dict()
        assert cost['train_wall_time_s'] is not None and cost['train_wall_time_s'] > 0, (label, cost)
        assert [entry['n_atoms'] for entry in cost['md_speed']] == [192]
        assert cost['md_speed'][0]['atom_steps_per_s'] > 0 and cost['md_speed'][0]['peak_memory_mb'] > 0
        assert rows[label]['md_atom_steps_per_s'] == [cost['md_speed'][0]['atom_steps_per_s']]
        assert np.isfinite(rows[label]['force_mev_per_angstrom'])

    # the report section (sseff.train) shows these numbers: one row per architecture, the three data splits
    from aiida_sseff.report.sections.training import architecture_training_section

    text, splits, table = architecture_training_section(node)
    assert '`NEP`' in text.markdown and 'No model trained' not in text.markdown
    assert [row[0] for row in splits.rows] == ['train', 'validation', 'test']
    assert splits.rows[0][1] == results['train_dataset'].n_structures
    force = table.columns.index('force (meV/Å)')
    assert {row[0]: row[force] for row in table.rows} == {label: rows[label]['force_mev_per_angstrom']
                                                          for label in labels}


@pytest.mark.slow
def test_failed_architecture_is_named_and_the_others_reported(neppo_code, aiida_profile, cu_al_structures):
    """Given sets (no split), two seeds trained one at a time: `NEP` trains (10 neppo steps on 3 EMT Cu/Al cells),
    `Frozen` cannot (a learning rate of 1e-9 leaves the loss where it started: sseff.train.nep.base exits 411 for both
    seeds). The work chain exits 402 naming `Frozen`, with NEP's model, metrics, seed spread, cost and summary row."""
    structures = cu_al_structures(5)
    train, validation, test = (LabelledDataset(part).store() for part in (structures[:3], structures[3:4],
                                                                          structures[4:]))
    parameters = {'cutoff': [5, 4], 'n_max': [4, 4], 'basis_size': [4, 4], 'neuron': 6, 'batch': 3,
                  'generation': 10, 'output_interval': 5}
    builder = ArchitectureTrainingWorkChain.get_builder()
    builder.train, builder.validation, builder.test = train, validation, test
    builder.seeds = orm.List([3, 4])
    builder.serial_training = orm.Bool(True)
    builder.architectures = orm.Dict({'NEP': {'kind': 'nep', 'parameters': {'learning_rate': [0.01, 0.001]}},
                                      'Frozen': {'kind': 'nep', 'parameters': {'learning_rate': [1e-9, 1e-9]}}})
    builder.nep.nep.code = neppo_code
    builder.nep.nep.parameters = orm.Dict(parameters)
    results, node = run_get_node(builder)
    assert node.exit_status == ArchitectureTrainingWorkChain.exit_codes.ERROR_ARCHITECTURE_FAILED.status
    assert 'Frozen' in node.exit_message and 'NEP' not in node.exit_message.split(':')[0]
    assert results['train_dataset'].uuid == train.uuid and results['test_dataset'].uuid == test.uuid
    assert set(results['models']) == {'NEP'} and set(results['cost']) == {'NEP'}
    trainings = sorted((n for n in node.called if n.label.startswith('train_')), key=lambda n: n.ctime)
    assert [n.label for n in trainings] == ['train_Frozen_seed_3', 'train_Frozen_seed_4', 'train_NEP_seed_3',
                                            'train_NEP_seed_4']
    for earlier, later in zip(trainings, trainings[1:], strict=False):  # one at a time
        assert later.ctime >= earlier.mtime or later.ctime >= max(c.mtime for c in earlier.called_descendants)
    assert {n.inputs.nep.seed.value for n in trainings} == {3, 4}
    spread = results['seed_spread']['NEP'].get_dict()
    forces = [results['replicas']['NEP'][f'seed_{seed}_test_metrics']['force_mev_per_angstrom'] for seed in (3, 4)]
    assert spread['force_mev_per_angstrom']['std'] == pytest.approx(np.std(forces, ddof=1))
    chosen = min((results['replicas']['NEP'][f'seed_{seed}_validation_metrics']['force_mev_per_angstrom'],
                  f'seed_{seed}') for seed in (3, 4))[1]
    assert spread['best_replica'] == chosen
    assert results['models']['NEP'].uuid == results['replicas']['NEP'][f'{chosen}_model'].uuid
    summary = results['summary'].get_dict()
    assert summary['failed'] == ['Frozen'] and [row['architecture'] for row in summary['rows']] == ['NEP']
    from aiida_sseff.report.sections.training import architecture_training_section

    text, _, table = architecture_training_section(node)  # the report names the architecture that failed
    assert 'No model trained: Frozen.' in text.markdown and [row[0] for row in table.rows] == ['NEP']
    cost = results['cost']['NEP'].get_dict()
    assert set(cost['train_wall_time_s_per_seed']) == {'seed_3', 'seed_4'} and cost['md_speed'] == []
