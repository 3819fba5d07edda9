"""sseff.loop: active learning that stops on transport. One end-to-end run on the CPU (CHGNet labels of a 12-atom Li2O
cell, a committee of two neppo models, engine MD with CPUNEP), and its extension; the rest are fast checks of the
builder, the validator and the calcfunctions on hand-made numbers."""

from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.protocols.utils import recursive_merge
from aiida_sseff.workflows.loop import LoopWorkChain, loop_iteration, loop_summary

#: the smallest loop that still runs every stage: 2 temperatures, 2 replicas, 8 candidates per exploration, 3 labels
#: per iteration, 100 neppo steps. The models are not physical (nothing here asserts a D or an Ea value); what is
#: asserted is the loop's logic on the numbers its stages produced.
TINY = {
    'temperatures': [1500.0, 2000.0],
    'n_per_iteration': 3,
    'max_labels': 3,
    'max_iterations': 3,
    'test_fraction': 0.2,
    'trust_window': [0.0, 1000.0],
    # built to converge: any two iterations agree within 1000 sigma, any replica spread is below 100 eV
    'criterion': {'n_sigma': 1000.0, 'ea_spread_tolerance_eV': 100.0},
    'exploration': {'md': {'parameters': {'n_equilibration_steps': 5, 'n_steps': 20, 'snapshot_interval': 5,
                                          'thermo_interval': 5, 'trajectory_interval': 5}}},
    'training': {'seeds': [1, 2],
                 'nep': {'overrides': {'parameters': {'generation': 100, 'zbl': 2.0},
                                       'program_parameters': {'neppo': {'output_interval': 20, 'batch': 4}}}}},
    # the 11-atom cell as it is (no supercell: CPUNEP takes every periodic image; a few ms per step), 2 ps at 1500 and
    # 2000 K; min_msd_A2 lowered because the loop's logic is tested here, not D. The Li vacancy (li2o_with_vacancy)
    # is what makes Li move in so small a cell: in the perfect 12-atom cell a replica's D came out negative (no
    # Frenkel pair in 2 ps), which is a failed diffusion and, rightly, no replica spread
    'diffusion': {'min_cell_width_factor': None,
                  'md': {'equilibration_ps': 0.1, 'production_ps': 2.0, 'sample_interval_fs': 20.0},
                  'analysis': {'min_msd_A2': 0.05}},
}


def li2o() -> orm.StructureData:
    """Antifluorite Li2O (12 atoms), the structure pymatgen ships (pymatgen/util/structures/Li2O.json)."""
    import pymatgen.util
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    structure = Structure.from_file(Path(pymatgen.util.__file__).parent / 'structures' / 'Li2O.json')
    structure.remove_oxidation_states()
    conventional = SpacegroupAnalyzer(structure).get_conventional_standard_structure()
    return orm.StructureData(ase=AseAtomsAdaptor.get_atoms(conventional))


def chgnet_dataset(structure: orm.StructureData, n: int = 10) -> LabelledDataset:
    """``n`` rattled (0.05-0.14 Å) copies of ``structure`` labelled here by CHGNet, the loop's labeller below."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from aiida_sseff.engines.calculators import make_calculator

    calculator = make_calculator({'kind': 'chgnet'})
    frames = []
    for k in range(n):
        atoms = structure.get_ase()
        atoms.rattle(0.05 + 0.01 * k, seed=k)
        atoms.calc = calculator
        results = {'energy': atoms.get_potential_energy(), 'forces': atoms.get_forces(), 'stress': atoms.get_stress()}
        atoms.calc = SinglePointCalculator(atoms, **results)
        frames.append(atoms)
    return LabelledDataset(frames)


def li2o_with_vacancy() -> orm.StructureData:
    """The 12-atom Li2O cell less one Li (Li7O4): vacancy hopping moves Li within picoseconds."""
    atoms = li2o().get_ase()
    del atoms[[atom.index for atom in atoms if atom.symbol == 'Li'][0]]
    return orm.StructureData(ase=atoms)


def tiny_builder(engine_code, neppo_code, structure, dataset=None, overrides=None):
    return LoopWorkChain.get_builder_from_protocol(
        engine_code, structure, protocol='fast', overrides=recursive_merge(TINY, overrides or {}),
        training_code=neppo_code, dataset=dataset)


def labelling_calls(node) -> list:
    return [child for child in node.called if child.process_label == 'LabellingWorkChain']


@pytest.mark.slow
def test_loop_converges_on_transport_then_extends_to_the_budget(aiida_profile, engine_code, neppo_code):
    """A: a criterion built to converge stops by transport at the second iteration (exit 0), after adding labels.
    B: the extension of A (its dataset, test set, table and last committee) with a tolerance of zero explores with
    A's committee first (A's last iteration is not retrained), adds new labels only, never relabels A's, and stops
    at its budget with ERROR_NOT_CONVERGED naming what did not converge."""
    structure = li2o_with_vacancy()
    dataset = chgnet_dataset(structure)
    _, first = run_get_node(tiny_builder(engine_code, neppo_code, structure, dataset))
    assert first.is_finished_ok, first.exit_message
    table = first.outputs.iterations.get_dict()
    rows = table['rows']
    assert [row['iteration'] for row in rows] == [0, 1]
    # the fixed test set (2 of 10) is held out once; 8 to train on, then 3 labels added
    assert first.outputs.test_set.n_structures == 2
    assert [row['n_structures'] for row in rows] == [8, 11] and [row['labels_added'] for row in rows] == [0, 3]
    assert table['labels_used'] == 3 and table['converged']
    # stopped by the transport criterion: Ea and D at both temperatures were compared with the previous iteration
    last = rows[-1]['convergence']
    assert last['converged'] and set(last['checks']) == {'ea_replica_spread', 'Ea', 'D_1500K', 'D_2000K'}
    assert rows[0]['convergence']['not_converged'] == ['previous_iteration']
    # Ea moved when the data grew (a new committee on 11 structures), and both replicas gave one
    assert rows[0]['Ea_eV'] != rows[1]['Ea_eV']
    assert all(len(row['replica_Ea_eV']) == 2 and row['ea_replica_spread_eV'] is not None for row in rows)
    assert rows[0]['disagreement_max_eV_A'] > 0 and rows[1]['disagreement_max_eV_A'] is None  # no exploration after
    assert set(first.outputs.committee) == {'seed_1', 'seed_2'}
    assert first.outputs.model.uuid in {model.uuid for model in first.outputs.committee.values()}
    # the growth of the dataset is in the provenance graph: merge_datasets of the pool and the labelled selection
    assert first.outputs.dataset.creator.process_label == 'merge_datasets'
    (labelling,) = labelling_calls(first)
    assert labelling.inputs.structures.n_structures == 3
    assert first.outputs.transport['Ea_eV'] == pytest.approx(rows[-1]['Ea_eV'])

    # the report section shows the output's numbers
    from aiida_sseff.report.sections.loop import loop_section

    blocks = loop_section(first)
    table_block = next(block for block in blocks if hasattr(block, 'rows'))
    ea_column = table_block.columns.index('Ea (eV)')
    assert [cells[ea_column] for cells in table_block.rows] == [row['Ea_eV'] for row in rows]
    figure = next(block for block in blocks if hasattr(block, 'figure'))
    assert figure.data['force_rmse_mev_A'] == [row['force_rmse_mev_A'] for row in rows]

    # --- B: extend A, tolerance zero, a budget of 3 new labels
    from aiida_sseff.cli.cmd_loop import extension_builder

    builder = extension_builder(first, max_labels=3)
    builder.criterion = orm.Dict({'n_sigma': 0.0, 'ea_spread_tolerance_eV': 0.0})
    _, second = run_get_node(builder)
    assert second.exit_status == LoopWorkChain.exit_codes.ERROR_NOT_CONVERGED.status, second.exit_message
    assert 'Ea' in second.exit_message and 'ea_replica_spread' in second.exit_message
    extended = second.outputs.iterations.get_dict()
    assert [row['iteration'] for row in extended['rows']] == [0, 1, 2]
    assert extended['rows'][0] == rows[0] and extended['labels_used'] == 3
    # A's last row now has the disagreement of the exploration B made with A's committee
    assert extended['rows'][1]['Ea_eV'] == rows[1]['Ea_eV'] and extended['rows'][1]['disagreement_max_eV_A'] > 0
    assert extended['rows'][2]['labels_added'] == 3 and extended['rows'][2]['n_structures'] == 14
    trainings = [child for child in second.called if child.process_label == 'ArchitectureTrainingWorkChain']
    assert len(trainings) == 1  # A's last committee explored; only the grown dataset was trained on
    # no relabelling: one labelling call, of the 3 new frames only; A's labelled structures are carried over as they are
    (labelling,) = labelling_calls(second)
    assert labelling.inputs.structures.n_structures == 3
    assert 'initial_labelling' not in {link.link_label for link in second.base.links.get_outgoing().all()}
    final = second.outputs.dataset.get_ase()
    previous = first.outputs.dataset.get_ase()
    assert len(final) == len(previous) + 3
    for old, kept in zip(previous, final[:len(previous)], strict=True):
        assert kept.get_potential_energy() == old.get_potential_energy()
        assert np.array_equal(kept.get_positions(), old.get_positions())
    new_positions = [atoms.get_positions() for atoms in final[len(previous):]]
    assert not any(np.allclose(new, old.get_positions()) for new in new_positions for old in previous)

    # --- C: extend A with a trust window no frame reaches (50-100 eV/Å): A's committee explores, every frame's
    # deviation is below the window, nothing is labelled, and the loop ends with exit 411 and its table
    builder = extension_builder(first, max_labels=3)
    builder.trust_window = orm.List([50.0, 100.0])
    _, third = run_get_node(builder)
    assert third.exit_status == LoopWorkChain.exit_codes.ERROR_NO_FRAME_IN_TRUST_WINDOW.status, third.exit_message
    assert '[50.0, 100.0]' in third.exit_message and '0 above' in third.exit_message
    assert not labelling_calls(third)
    stopped = third.outputs.iterations.get_dict()
    assert stopped['outcome'].startswith('stopped: no explored frame in the trust window')
    assert stopped['labels_used'] == 0 and third.outputs.dataset.uuid == first.outputs.dataset.uuid


# --- fast checks -------------------------------------------------------------------------------------------------------
def test_builder_is_the_stages_builders(aiida_profile, engine_code, neppo_code):
    builder = LoopWorkChain.get_builder_from_protocol(engine_code, li2o(), protocol='fast', training_code=neppo_code)
    assert builder.temperatures.get_list() == [1300.0, 1600.0]
    assert builder.training.seeds.get_list() == [1, 2]
    assert builder.training.architectures.get_dict() == {'NEP': {'kind': 'nep', 'parameters': {}}}
    assert builder.training.nep.nep.parameters['zbl'] == 2.0
    assert builder.exploration.selection.min_distance.value == 0.0  # every snapshot is a candidate
    assert builder.exploration.md.md.calculator.get_dict() == {'kind': 'nep'}
    assert not dict(builder.exploration.perturbations)  # MD snapshots only
    assert builder.initial_sampling.selection.n_structures.value == 16  # no dataset: sample the first one
    assert builder.labelling.labeller.value == 'surrogate'
    with pytest.raises(ValueError, match='give training_code'):
        LoopWorkChain.get_builder_from_protocol(engine_code, li2o(), protocol='fast')


@pytest.mark.parametrize('overrides, message', [
    ({'trust_window': [0.5, 0.1]}, 'trust_window must be'),
    ({'criterion': {'n_sigma': 1.0, 'ea_spread_tolerance_eV': 0.1, 'rmse': 3.0}}, 'exactly the keys'),
    ({'criterion': {'n_sigma': -1.0, 'ea_spread_tolerance_eV': 0.1}}, 'finite numbers >= 0'),
    ({'training': {'seeds': [1]}}, 'a committee of one model'),
    ({'temperatures': [1300.0]}, 'at least 2 distinct'),
    ({'n_per_iteration': 0}, 'n_per_iteration must be at least 1'),
])
def test_bad_inputs_refused_by_name(aiida_profile, engine_code, neppo_code, overrides, message):
    with pytest.raises(ValueError, match=message):
        run_get_node(tiny_builder(engine_code, neppo_code, li2o(), overrides=overrides))


def test_extension_needs_dataset_and_test_set(aiida_profile, engine_code, neppo_code):
    builder = tiny_builder(engine_code, neppo_code, li2o())
    builder.iterations = orm.Dict({'rows': []})
    with pytest.raises(ValueError, match='extending a loop'):
        run_get_node(builder)


def _diffusion(d1, d2):
    array = orm.ArrayData()
    array.set_array('temperature_K', np.array([1300.0, 1600.0]))
    array.set_array('D_cm2_s', np.array([d1, d2]))
    array.set_array('D_err_cm2_s', np.array([0.1e-5, 0.1e-5]))
    return array


def test_iteration_record_and_summary(aiida_profile, cu_al_structures):
    """loop_iteration applies the criterion to the stored numbers; loop_summary adds the disagreement columns."""
    dataset = LabelledDataset(cu_al_structures(3))
    rule = orm.Dict({'n_sigma': 1.0, 'ea_spread_tolerance_eV': 0.05})
    metrics = orm.Dict({'force_mev_per_angstrom': 120.0, 'energy_mev_per_atom': 4.0})
    first = loop_iteration(orm.Int(0), dataset, orm.Int(0), rule, orm.Dict({'Ea_eV': 0.30, 'Ea_err_eV': 0.03}),
                           _diffusion(1.0e-5, 2.0e-5), metrics, seed_1=orm.Dict({'Ea_eV': 0.30}),
                           seed_2=orm.Dict({'Ea_eV': 0.33}))
    assert first['convergence']['not_converged'] == ['previous_iteration']
    assert first['ea_replica_spread_eV'] == pytest.approx(np.std([0.30, 0.33], ddof=1))
    assert first['D'] == {'1300': [1.0e-5, 1.0e-6], '1600': [2.0e-5, 1.0e-6]}
    second = loop_iteration(orm.Int(1), dataset, orm.Int(3), rule, orm.Dict({'Ea_eV': 0.31, 'Ea_err_eV': 0.03}),
                            _diffusion(1.05e-5, 2.05e-5), metrics, previous=first, seed_1=orm.Dict({'Ea_eV': 0.31}),
                            seed_2=orm.Dict({'Ea_eV': 0.32}))
    assert second['convergence']['converged']
    # extending: the previous loop's table gives its last row as the previous iteration
    table = loop_summary(rule, orm.Str('converged'), iteration_000=first, iteration_001=second,
                         disagreement_000=orm.Dict({'mean': 0.2, 'max': 0.5}))
    assert table['labels_used'] == 3 and table['converged']
    assert [row['disagreement_max_eV_A'] for row in table['rows']] == [0.5, None]
    third = loop_iteration(orm.Int(2), dataset, orm.Int(0), rule, orm.Dict({'Ea_eV': 0.50, 'Ea_err_eV': 0.03}),
                           _diffusion(1.05e-5, 2.05e-5), metrics, previous=table, seed_1=orm.Dict({'Ea_eV': 0.5}),
                           seed_2=orm.Dict({'Ea_eV': 0.5}))
    assert third['convergence']['not_converged'] == ['Ea']
