"""sseff.sample (SamplingWorkChain) and the reduction series: real engine MD (EMT, CHGNet), real descriptors, real LLZO.

Every number below is recomputed by an independent route (the analysis functions called directly on the same
structures), or is a count that follows from the inputs (stated in the comment beside it).
"""

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk
from ase.calculators.emt import EMT

from aiida_sseff.analysis.descriptors import nep_descriptors, untrained_nep_descriptors
from aiida_sseff.analysis.fps import farthest_point_sampling, reduction_series
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.workflows.sampling import (
    ReductionSeriesWorkChain,
    SamplingWorkChain,
    expected_candidates,
    rattle_structure,
    strain_structure,
)


@pytest.fixture(scope='module')
def llzo_paths(reference_dir):
    """The real LLZO training set (25 DFT structures, 192 atoms) and its NEP model (skipped with reference_dir)."""
    return reference_dir / 'llzo' / 'nep_training' / 'train.xyz', reference_dir / 'llzo' / 'nep25_zbl.txt'


@pytest.fixture
def llzo_dataset(aiida_profile, llzo_paths):
    return LabelledDataset.from_file(llzo_paths[0])


def copper(repeat=2):
    """fcc Cu, a = 3.6 Å, conventional cell repeated (32 atoms for repeat=2): EMT knows Cu."""
    return bulk('Cu', 'fcc', a=3.6, cubic=True).repeat(repeat)


def li2o(repeat=1):
    """Antifluorite Li2O, a = 4.61 Å (12 atoms per conventional cell)."""
    return bulk('OLi2', 'fluorite', a=4.61, cubic=True).repeat(repeat)


def rattled_copper_dataset(n, seed=0, labelled=False):
    structures = []
    for index in range(n):
        atoms = copper()
        atoms.rattle(0.03, seed=seed + index)
        if labelled:
            atoms.calc = EMT()
            atoms.get_forces()
        structures.append(atoms)
    return LabelledDataset(structures, require_labels=labelled)


def minimum_image(delta, cell):
    fractional = np.linalg.solve(cell.T, delta.T).T
    fractional -= np.round(fractional)
    return fractional @ cell


def test_rattle_and_strain_are_what_they_claim(aiida_profile):
    structure = orm.StructureData(ase=li2o(2))  # 96 atoms
    reference = li2o(2)
    rattled = rattle_structure(structure, orm.List([0.05, 0.1]), orm.Int(10), orm.Int(7))
    assert rattled.n_structures == 20 and not rattled.has_labels
    assert rattled.creator.process_label == 'rattle_structure'
    for amplitude in (0.05, 0.1):
        displacements = np.concatenate([
            minimum_image(atoms.positions - reference.positions, reference.cell.array)
            for atoms in rattled.get_ase() if atoms.info['rattle_amplitude_A'] == amplitude])
        # 10 x 96 x 3 = 2880 Gaussian samples: the standard error of the sample standard deviation is
        # 1/sqrt(2 * 2880) = 1.3 %, so ±5 % is about 4 standard errors
        assert displacements.std() == pytest.approx(amplitude, rel=0.05)
        # the mean of 2880 draws has a standard error of amplitude / sqrt(2880): 4 standard errors
        assert abs(displacements.mean()) < 4 * amplitude / np.sqrt(displacements.size)
    again = rattle_structure(structure, orm.List([0.05, 0.1]), orm.Int(10), orm.Int(7))
    np.testing.assert_array_equal(again.get_ase()[4].positions, rattled.get_ase()[4].positions)

    strained = strain_structure(structure, orm.List([-0.02, 0.03]), orm.Int(5), orm.Int(3))
    assert strained.n_structures == 5
    components = []
    for atoms in strained.get_ase():
        epsilon = np.linalg.solve(reference.cell.array, atoms.cell.array) - np.eye(3)
        np.testing.assert_allclose(epsilon, epsilon.T, atol=1e-12)
        xx, yy, zz, yz, xz, xy = atoms.info['strain_voigt']
        np.testing.assert_allclose(epsilon, [[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]], atol=1e-12)
        fractional = atoms.get_scaled_positions(wrap=False) - reference.get_scaled_positions(wrap=False)
        # same fractional positions, to the 1e-8 Å with which the extxyz file stores positions
        np.testing.assert_allclose(fractional - np.round(fractional), 0.0, atol=1e-8)
        components.extend(atoms.info['strain_voigt'])
    assert min(components) >= -0.02 and max(components) <= 0.03
    # 30 uniform draws on a range L span less than 0.8 L with probability 30 x 0.8^29 - 29 x 0.8^30 = 1 %
    assert max(components) - min(components) > 0.8 * 0.05


def test_sampling_md_perturbations_dataset_and_seed_set(aiida_profile, engine_code):
    """Engine MD (EMT, 2 temperatures) + rattles + strains + a labelled dataset, away from a seed set."""
    builder = SamplingWorkChain.get_builder()
    builder.structure = orm.StructureData(ase=copper())
    builder.md.md.code = engine_code
    builder.md.md.calculator = orm.Dict({'kind': 'emt'})
    builder.md.temperatures = orm.List([300.0, 900.0])
    builder.md.md.parameters = orm.Dict({'n_steps': 20, 'snapshot_interval': 5, 'thermo_interval': 5,
                                      'trajectory_interval': 5, 'seed': 3})
    builder.md.md.metadata.options.custom_scheduler_commands = '# sseff sampling test'
    builder.perturbations.rattle_amplitudes = orm.List([0.05])
    builder.perturbations.n_rattles = orm.Int(3)
    builder.perturbations.strain_range = orm.List([-0.02, 0.02])
    builder.perturbations.n_strains = orm.Int(2)
    builder.candidates = rattled_copper_dataset(2, seed=10, labelled=True)
    builder.seed_set = rattled_copper_dataset(3, seed=20)
    builder.selection.n_structures = orm.Int(6)
    # 2 temperatures x (20 // 5) snapshots + 1 x 3 rattles + 2 strains + 2 given structures
    assert expected_candidates(builder._inputs(prune=True)) == 15

    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    candidates = results['candidates']
    assert candidates.n_structures == 15 and not candidates.has_labels
    assert candidates.creator.process_label == 'merge_datasets'  # the one merge, labels dropped
    sources = [atoms.info['candidate_source'] for atoms in candidates.get_ase()]
    assert sources.count('md_T00300K') == 4 and sources.count('md_T00900K') == 4
    assert sources.count('rattles') == 3 and sources.count('strains') == 2 and sources.count('dataset') == 2
    md_jobs = [n for n in node.called if n.process_label == 'EngineMdBaseWorkChain']
    assert sorted(n.label for n in md_jobs) == ['md_300K', 'md_900K']
    assert sorted(n.inputs.md.parameters['seed'] for n in md_jobs) == [3, 4]
    assert all(n.called[0].get_option('custom_scheduler_commands') == '# sseff sampling test' for n in md_jobs)

    selected = results['selected']
    indices = results['indices'].get_list()
    assert selected.n_structures == 6 and len(set(indices)) == 6
    assert selected.creator.process_label == 'subset_dataset'
    assert results['indices'].creator.process_label == 'fps_select'
    structures = candidates.get_ase()
    for atoms, index in zip(selected.get_ase(), indices, strict=True):
        np.testing.assert_allclose(atoms.positions, structures[index].positions, atol=1e-10)

    # independent route: describe candidates + seed set in one batch, FPS directly (untrained NEP, per species)
    seeds = builder.seed_set.get_ase()
    vectors = untrained_nep_descriptors(structures + seeds, ['Cu'], per_species=True)
    direct = farthest_point_sampling(vectors[:15], n_select=6, seed_descriptors=vectors[15:])
    assert indices == direct.indices.tolist()
    report = results['report'].get_dict()
    np.testing.assert_allclose(report['min_distances'], direct.min_distances, rtol=1e-12)
    assert report['descriptor'] == 'untrained_nep' and report['per_species'] and report['n_seed'] == 3


def test_md_failure_is_an_exit_code(aiida_profile, engine_code):
    """EMT does not know Li: the engine refuses, the work chain says which temperature failed and why."""
    builder = SamplingWorkChain.get_builder()
    builder.structure = orm.StructureData(ase=li2o())
    builder.md.md.code = engine_code
    builder.md.md.calculator = orm.Dict({'kind': 'emt'})
    builder.md.temperatures = orm.List([600.0])
    builder.md.md.parameters = orm.Dict({'n_steps': 10, 'snapshot_interval': 5})
    builder.selection.n_structures = orm.Int(1)
    _, node = run_get_node(builder)
    assert node.exit_status == SamplingWorkChain.exit_codes.ERROR_MD_FAILED.status
    assert '600 K' in node.exit_message and 'Li' in node.exit_message


def test_selection_with_a_trained_nep_model(llzo_dataset, llzo_paths):
    """Candidates = the 25 LLZO DFT structures, descriptor = the trained NEP's, per species (the default)."""
    from aiida_sseff.data.model import NepModel

    builder = SamplingWorkChain.get_builder()
    builder.candidates = llzo_dataset
    builder.selection.model = NepModel(llzo_paths[1])
    builder.selection.n_structures = orm.Int(5)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    from ase.io import read

    structures = read(llzo_paths[0], ':')
    direct = farthest_point_sampling(nep_descriptors(structures, llzo_paths[1], per_species=True), n_select=5)
    assert results['indices'].get_list() == direct.indices.tolist()
    assert results['report']['descriptor'] == 'nep' and results['report']['dimension'] == 4 * 30
    assert not results['selected'].has_labels  # the selection is for labelling: old labels are dropped


def test_empty_selection_exit_code(aiida_profile):
    """The seed set holds exactly the candidates: every candidate is at distance 0, nothing is 1e-6 away."""
    dataset = rattled_copper_dataset(4)
    builder = SamplingWorkChain.get_builder()
    builder.candidates = dataset
    builder.seed_set = dataset
    builder.selection.min_distance = orm.Float(1e-6)
    results, node = run_get_node(builder)
    assert node.exit_status == SamplingWorkChain.exit_codes.ERROR_EMPTY_SELECTION.status
    assert 'selection is empty' in node.exit_message
    assert results['indices'].get_list() == [] and 'selected' not in results


def test_min_distance_selection(aiida_profile):
    """A min-distance stop: every pick is at least that far, and the next one would not be."""
    dataset = rattled_copper_dataset(10)
    structures = dataset.get_ase()
    vectors = untrained_nep_descriptors(structures, ['Cu'], per_species=True)
    full = farthest_point_sampling(vectors, n_select=10)
    threshold = float(full.min_distances[4] + full.min_distances[5]) / 2  # between the 5th and 6th pick
    builder = SamplingWorkChain.get_builder()
    builder.candidates = dataset
    builder.selection.min_distance = orm.Float(threshold)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    assert results['indices'].get_list() == full.indices[:5].tolist()


@pytest.mark.parametrize('change, message', [
    ({'no_source': True}, 'no source of candidates'),
    ({'rattle_amplitudes': [-0.1]}, 'rattle_amplitudes must be numbers in'),
    ({'rattle_amplitudes': [0.8]}, 'rattle_amplitudes must be numbers in'),
    ({'rattle_amplitudes': []}, 'rattle_amplitudes is empty'),
    ({'strain_range': [0.05, -0.05]}, 'strain_range must satisfy'),
    ({'strain_range': [0.3]}, 'strain_range must be two numbers'),
    ({'n_structures': 20}, 'larger than the 7 candidates'),
    ({'min_distance': 0.1}, 'exactly one of selection.n_structures and selection.min_distance'),
    ({'descriptor': 'nep'}, "descriptor 'nep' needs selection.model"),
    ({'descriptor': 'rdf', 'per_species': True}, 'apply to NEP descriptors only'),
    ({'descriptor': 'soap'}, 'descriptor must be one of'),
    ({'overlap': True}, 'overlapping atoms'),
    ({'no_structure': True}, 'start from `structure`'),
])
def test_sampling_refuses_bad_inputs(aiida_profile, change, message):
    builder = SamplingWorkChain.get_builder()
    atoms = copper()
    if change.get('overlap'):
        atoms.positions[1] = atoms.positions[0] + [0.2, 0.0, 0.0]
    if not change.get('no_structure'):
        builder.structure = orm.StructureData(ase=atoms)
    if not change.get('no_source'):
        builder.perturbations.rattle_amplitudes = orm.List(change.get('rattle_amplitudes', [0.05]))
        builder.perturbations.n_rattles = orm.Int(3)
        builder.perturbations.strain_range = orm.List(change.get('strain_range', [-0.02, 0.02]))  # default 4 strains
    builder.selection.n_structures = orm.Int(change.get('n_structures', 2))
    if 'min_distance' in change:
        builder.selection.min_distance = orm.Float(change['min_distance'])
    if 'descriptor' in change:
        builder.selection.descriptor = orm.Str(change['descriptor'])
    if 'per_species' in change:
        builder.selection.per_species = orm.Bool(change['per_species'])
    with pytest.raises(ValueError, match=message):
        run_get_node(builder)


def test_sampling_refuses_model_without_the_elements(llzo_paths, aiida_profile, engine_code):
    from aiida_sseff.data.model import NepModel

    model = NepModel(llzo_paths[1])
    builder = SamplingWorkChain.get_builder()
    builder.candidates = rattled_copper_dataset(3)
    builder.selection.model = model
    builder.selection.n_structures = orm.Int(2)
    with pytest.raises(ValueError, match='selection.model does not know the element.s. Cu'):
        run_get_node(builder)
    builder = SamplingWorkChain.get_builder_from_protocol(engine_code, orm.StructureData(ase=copper()),
                                                          protocol='fast', model=model)
    with pytest.raises(ValueError, match='md.md.model does not know the element.s. Cu'):
        run_get_node(builder)


def test_reduction_series_on_llzo(llzo_dataset, llzo_paths):
    """25 DFT structures, 4 halvings: levels of 12, 6, 3, 1 structures, each made from its parent and nested."""
    results, node = run_get_node(ReductionSeriesWorkChain, dataset=llzo_dataset, n_levels=orm.Int(4))
    assert node.is_finished_ok, node.exit_message
    series = results['series']
    assert sorted(series) == ['level_1', 'level_2', 'level_3', 'level_4']
    assert [series[f'level_{n}'].n_structures for n in range(1, 5)] == [12, 6, 3, 1]  # 25 // 2, // 4, // 8, // 16

    from ase.io import read

    original = read(llzo_paths[0], ':')
    vectors = untrained_nep_descriptors(original, ['La', 'Li', 'O', 'Zr'], per_species=True)
    expected = reduction_series(vectors, n_levels=4)
    parent = llzo_dataset
    for level in range(1, 5):
        child = series[f'level_{level}']
        assert child.creator.process_label == 'subset_dataset'
        assert child.creator.inputs.dataset.uuid == parent.uuid  # made from its parent: the nesting is provenance
        assert child.has_labels and child.has_virial  # labels travel unchanged
        structures = child.get_ase()
        for atoms, index in zip(structures, expected[level - 1], strict=True):
            np.testing.assert_allclose(atoms.positions, original[index].positions, atol=1e-10)
            assert atoms.get_potential_energy() == pytest.approx(original[index].get_potential_energy(), abs=1e-8)
        parent_structures = parent.get_ase()
        if level > 1:  # the child is the first half of its parent
            for atoms, in_parent in zip(structures, parent_structures, strict=False):
                np.testing.assert_array_equal(atoms.positions, in_parent.positions)
        parent = child
    assert results['indices'].get_list() == expected[0].tolist()

    with pytest.raises(ValueError, match='5 halvings need at least 32'):
        run_get_node(ReductionSeriesWorkChain, dataset=llzo_dataset, n_levels=orm.Int(5))


def test_protocols_and_builder(aiida_profile, engine_code):
    assert set(SamplingWorkChain.get_available_protocols()) == {'fast', 'balanced', 'stringent'}
    assert SamplingWorkChain.get_default_protocol() == 'balanced'
    structure = orm.StructureData(ase=li2o())
    counts = {}
    for protocol, described in (('fast', 30), ('balanced', 80), ('stringent', 450)):
        builder = SamplingWorkChain.get_builder_from_protocol(engine_code, structure, protocol=protocol)
        counts[protocol] = expected_candidates(builder._inputs(prune=True))
        assert str(described) in SamplingWorkChain.get_available_protocols()[protocol]['description']
    assert counts == {'fast': 30, 'balanced': 80, 'stringent': 450}
    builder = SamplingWorkChain.get_builder_from_protocol(None, structure, protocol='fast',
                                                          overrides={'selection': {'min_distance': 0.05}})
    assert 'md' not in builder._inputs(prune=True)
    assert builder.selection.min_distance.value == 0.05 and 'n_structures' not in builder.selection
    with pytest.warns(UserWarning, match='perturbations.n_rattle'):
        SamplingWorkChain.get_protocol_inputs('fast', {'perturbations': {'n_rattle': 3}})


@pytest.mark.slow
def test_sampling_with_chgnet_on_li2o(aiida_profile, engine_code):
    """The fast protocol, shortened, with the CHGNet surrogate on Li2O (12 atoms): MD at two temperatures."""
    overrides = {'md': {'parameters': {'n_equilibration_steps': 5, 'n_steps': 20, 'snapshot_interval': 5,
                                       'thermo_interval': 5, 'trajectory_interval': 5}},
                 'selection': {'n_structures': 8}}
    builder = SamplingWorkChain.get_builder_from_protocol(engine_code, orm.StructureData(ase=li2o()), protocol='fast',
                                                          overrides=overrides)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    # 2 temperatures x 4 snapshots + 3 amplitudes x 2 rattles + 4 strains
    assert results['candidates'].n_structures == 18
    assert results['selected'].n_structures == 8
    md_energies = [atoms.info['md_energy'] / len(atoms) for atoms in results['candidates'].get_ase()
                   if 'md_energy' in atoms.info]
    # CHGNet on Li2O: about -4.8 eV/atom (MP PBE-compatible, mp-1960: -4.77); short MD at <= 1200 K stays near
    assert len(md_energies) == 8 and all(-5.3 < e < -4.2 for e in md_energies), md_energies


@pytest.mark.slow
def test_both_work_chains_on_the_daemon(aiida_profile, submit_and_await):
    """Daemon workers (ZeroMQ broker) load both classes: perturbations-only sampling, then a series of its labels."""
    builder = SamplingWorkChain.get_builder()
    builder.structure = orm.StructureData(ase=copper())
    builder.perturbations.rattle_amplitudes = orm.List([0.02, 0.08])
    builder.perturbations.strain_range = orm.List([-0.01, 0.01])
    builder.selection.n_structures = orm.Int(5)
    node = submit_and_await(builder, timeout=300)
    assert node.is_finished_ok, node.exit_message
    assert node.outputs.candidates.n_structures == 2 * 4 + 4  # default n_rattles = 4 per amplitude, n_strains = 4

    labelled = rattled_copper_dataset(8, labelled=True)
    series = submit_and_await(_series_builder(labelled), timeout=300)
    assert series.is_finished_ok, series.exit_message
    assert [series.outputs.series[f'level_{n}'].n_structures for n in (1, 2, 3)] == [4, 2, 1]  # 8 // 2, // 4, // 8


def _series_builder(dataset):
    builder = ReductionSeriesWorkChain.get_builder()
    builder.dataset = dataset
    builder.n_levels = orm.Int(3)
    return builder
