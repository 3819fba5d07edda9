"""``sseff.study.dataset_size``: refusals before anything runs, and one REAL study on 11 LLZO DFT cells (the shared
reference set): 1 validation + 2 test cells held out, the pool of 8 reduced to 8/4/2 by nested FPS, a tiny neppo NEP
per size, each one's Li transport at two temperatures with the CPU engine, the table and the report section."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.workflows.dataset_size import DatasetSizeStudyWorkChain, n_halvings

N_CELLS = 11


@pytest.fixture(scope='module')
def llzo(aiida_profile, reference_dir):
    """11 cells of the real LLZO DFT training set (192 atoms, 56 Li) and the first one as the MD cell."""
    from ase.io import read

    frames = read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index=f'0:{N_CELLS}')
    return LabelledDataset(frames).store(), orm.StructureData(ase=frames[0]).store()


def _n_workflows() -> int:
    return orm.QueryBuilder().append(orm.WorkflowNode).count()


def _builder(neppo_code, engine_code, llzo, overrides=None):
    from aiida_sseff.protocols.utils import recursive_merge

    dataset, structure = llzo
    tiny = {
        'n_sizes': 3, 'validation_fraction': 1 / N_CELLS, 'test_fraction': 2 / N_CELLS,
        # 30 AdamW steps: seconds per model; the ZBL core keeps the 2-cell model from collapsing atoms in MD
        'training': {'nep': {'overrides': {'parameters': {'generation': 30, 'zbl': 2.0},
                                           'program_parameters': {'neppo': {'output_interval': 15}}}}},
        'diffusion': {'temperatures': [1500.0, 1800.0], 'md': {'equilibration_ps': 0.1, 'production_ps': 1.0},
                      'analysis': {'min_msd_A2': 0.3}},
    }
    return DatasetSizeStudyWorkChain.get_builder_from_protocol(
        neppo_code, dataset, engine_code, structure, protocol='fast', overrides=recursive_merge(tiny, overrides or {}))


def test_n_halvings():
    assert n_halvings(48, n_sizes=3) == 2
    assert n_halvings(48, min_size=12) == 2  # 48, 24, 12
    assert n_halvings(48, min_size=13) == 1
    assert n_halvings(5, min_size=6) == 0


@pytest.mark.parametrize(('overrides', 'message'), [
    ({'n_sizes': 5}, 'the pool of 8 structures .* cannot give 5 sizes by halving'),
    ({'n_sizes': 1}, 'n_sizes must be at least 2'),
    ({'architecture': {'NEP': {'kind': 'nep', 'parameters': {}}, 'qNEP': {'kind': 'nep', 'parameters': {}}}},
     'exactly one architecture'),
    ({'convergence_n_sigma': 0.0}, 'convergence_n_sigma must be > 0'),
    ({'test_fraction': 1.5}, 'test_fraction must be between 0 and 1'),
])
def test_refusals(neppo_code, engine_code, llzo, overrides, message):
    before = _n_workflows()
    with pytest.raises(ValueError, match=message):
        run_get_node(_builder(neppo_code, engine_code, llzo, overrides))
    assert _n_workflows() == before  # nothing half-made


def test_refuses_a_dataset_without_the_mobile_species(neppo_code, engine_code, llzo):
    builder = _builder(neppo_code, engine_code, llzo)
    builder.diffusion.mobile_species = orm.Str('Na')
    with pytest.raises(ValueError, match='the dataset holds no Na'):
        run_get_node(builder)


def _hashes(dataset) -> set:
    return {hashlib.sha256(np.round(atoms.positions, 6).tobytes()).hexdigest() for atoms in dataset.get_ase()}


@pytest.mark.slow
def test_study_end_to_end(neppo_code, engine_code, llzo):
    """Checks that can fail: the test set is disjoint from every training subset and is the test set of every
    training; the subsets are nested with sizes 8/4/2; the environments are 56 Li per cell; every row's RMSE and Ea
    are the stored test metrics and transport of that size; the report section's rows are the table's."""
    results, node = run_get_node(_builder(neppo_code, engine_code, llzo))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    test, validation = results['test_dataset'], results['validation_dataset']
    assert (test.n_structures, validation.n_structures, results['pool'].n_structures) == (2, 1, 8)
    subsets = results['subsets']
    assert [subsets[f'level_{n}'].n_structures for n in range(3)] == [8, 4, 2]
    for level in range(3):
        subset = subsets[f'level_{level}']
        assert not _hashes(subset) & (_hashes(test) | _hashes(validation))
        if level:
            assert _hashes(subset) <= _hashes(subsets[f'level_{level - 1}'])
        assert results['mobile_environments'][f'level_{level}'].value == 56 * subset.n_structures
        training = node.base.links.get_outgoing(link_label_filter=f'training_level_{level}').one().node
        assert training.inputs.test.uuid == test.uuid and training.inputs.train.uuid == subset.uuid
    table = results['table'].get_dict()
    rows = {row['label']: row for row in table['rows']}
    assert [row['n_structures'] for row in table['rows']] == [2, 4, 8]
    for label, metrics in results['test_metrics'].items():
        assert metrics['n_structures'] == 2
        assert rows[label]['force_rmse_mev_per_angstrom'] == pytest.approx(metrics['force_mev_per_angstrom'])
    assert results['transport'], 'no size gave an Arrhenius fit'
    for label, transport in results['transport'].items():
        assert rows[label]['Ea_eV'] == pytest.approx(transport['Ea_eV'])
        d_1500 = next(r for r in transport['table'] if r['temperature_K'] == 1500.0)
        assert rows[label]['D_cm2_s'] == pytest.approx(d_1500['D_cm2_s'])
    for label, row in rows.items():
        assert (label in results['transport']) == (row['failure'] is None)
    from aiida_sseff.report import Table, section_for

    blocks = section_for(node)(node)
    tables = [block for block in blocks if isinstance(block, Table)]
    assert len(tables) == 1
    expected = [[r['n_structures'], r['n_mobile_environments'], r['energy_rmse_mev_per_atom'],
                 r['force_rmse_mev_per_angstrom'], r['D_cm2_s'], r['D_err_cm2_s'], r['Ea_eV'], r['Ea_err_eV'],
                 r['failure'] or ''] for r in table['rows']]
    assert tables[0].rows == expected
