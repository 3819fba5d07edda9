"""``sseff.study.replicas``: refusals before anything runs, and a REAL study (tiny neppo NEPs on two EMT-labelled
Cu/Al sets, 2 seeds each, the CPU engine's MD of molten Cu/Al at two temperatures with Al as the mobile species) whose
table must hold the numbers of the stored diffusion and test-metric nodes, and whose report section's rows must hold
the table's."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.workflows.replicas import ReplicaStudyWorkChain

#: tiny trainings and short MD: a test of the composition and bookkeeping, not of the physics. Cu/Al at 2500-3000 K
#: is a melt (EMT's Cu melts near 1300 K), so Al diffuses in a 1.5 ps run whatever the tiny model's errors.
OVERRIDES = {
    'seeds': [1, 2],
    'training': {'nep': {'overrides': {'parameters': {'generation': 40, 'zbl': 2.0},
                                       'program_parameters': {'neppo': {'output_interval': 20}}}}},
    'diffusion': {'temperatures': [2500.0, 3000.0], 'mobile_species': 'Al', 'min_cell_width_factor': 0,
                  'md': {'equilibration_ps': 0.1, 'production_ps': 1.5, 'sample_interval_fs': 50.0,
                         'volume': 'input'},
                  'analysis': {'min_msd_A2': 0.5}},
}


@pytest.fixture(scope='module')
def cu_al_sets(aiida_profile, cu_al_structures):
    """Two labelled sets of 8 Cu/Al cells (different substitutions and rattles) and a 32-atom cell for the MD."""
    return ({'set_a': LabelledDataset(cu_al_structures(8, seed=0)).store(),
             'set_b': LabelledDataset(cu_al_structures(8, seed=1)).store()},
            orm.StructureData(ase=cu_al_structures(1, seed=7)[0]).store())


def _builder(neppo_code, engine_code, cu_al_sets, overrides=None):
    datasets, structure = cu_al_sets
    return ReplicaStudyWorkChain.get_builder_from_protocol(neppo_code, datasets, engine_code, structure,
                                                           protocol='fast', overrides=overrides or OVERRIDES)


def _n_workflows() -> int:
    return orm.QueryBuilder().append(orm.WorkflowNode).count()


def test_refusals(neppo_code, engine_code, cu_al_sets):
    before = _n_workflows()
    builder = _builder(neppo_code, engine_code, cu_al_sets)
    builder.seeds = orm.List([1])
    with pytest.raises(ValueError, match='a replica spread needs at least 2 seeds'):
        run_get_node(builder)
    builder = _builder(neppo_code, engine_code, cu_al_sets)
    builder.training.architectures = orm.Dict({'NEP': {'kind': 'nep'}, 'qNEP': {'kind': 'nep'}})
    with pytest.raises(ValueError, match='trains ONE architecture'):
        run_get_node(builder)
    builder = _builder(neppo_code, engine_code, cu_al_sets)
    del builder.diffusion['structure']
    with pytest.raises(ValueError, match='diffusion.structure is required'):
        run_get_node(builder)
    builder = _builder(neppo_code, engine_code, cu_al_sets,
                       overrides={**OVERRIDES, 'diffusion': {**OVERRIDES['diffusion'],
                                                             'md': {'production_ps': 0.1}}})
    with pytest.raises(ValueError, match='diffusion: md: production_ps/sample_interval_fs gives 2 MSD samples'):
        run_get_node(builder)
    builder = _builder(neppo_code, engine_code, cu_al_sets)
    builder.training.test_fraction = orm.Float(1.5)
    with pytest.raises(ValueError, match='dataset `set_a`: test_fraction must be between 0 and 1'):
        run_get_node(builder)
    assert _n_workflows() == before  # nothing half-made


@pytest.mark.slow
def test_study_end_to_end(neppo_code, engine_code, cu_al_sets):
    """Two datasets x two seeds: four models, four diffusions at the same temperatures and cell. Checks that can fail:
    every table row (force RMSE, Ea ± σ, D(T) ± σ) is the number of its stored node, the spread is numpy's std and
    max − min of those numbers, the verdict follows the stated rule, and the report section's rows are the table's."""
    results, node = run_get_node(_builder(neppo_code, engine_code, cu_al_sets))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    table = results['table'].get_dict()
    print(table['markdown'])  # the example in docs/user/replicas.md
    assert set(table['datasets']) == {'set_a', 'set_b'}
    temperatures = set()
    for label, summary in table['datasets'].items():
        rows = {row['replica']: row for row in summary['rows']}
        assert set(rows) == {'seed_1', 'seed_2'}
        for seed, row in rows.items():
            metrics = results['test_metrics'][label][seed]
            assert row['force_mev_per_angstrom'] == pytest.approx(metrics['force_mev_per_angstrom'])
            transport = results.get('transport', {}).get(label, {}).get(seed)
            if transport is None:
                assert row['failure'] and row['Ea_eV'] is None
                continue
            assert row['Ea_eV'] == pytest.approx(transport['Ea_eV'])
            assert row['Ea_err_eV'] == pytest.approx(transport['Ea_err_eV'])
            stored = {r['temperature_K']: r for r in transport['table']}
            assert [d['temperature_K'] for d in row['D']] == sorted(stored)
            for d in row['D']:
                assert d['D_cm2_s'] == pytest.approx(stored[d['temperature_K']]['D_cm2_s'])
                assert d['D_err_cm2_s'] == pytest.approx(stored[d['temperature_K']]['D_err_cm2_s'])
                temperatures.add(d['temperature_K'])
        eas = [row['Ea_eV'] for row in rows.values() if row['Ea_eV'] is not None]
        if len(eas) == 2:
            ea = summary['spread']['Ea_eV']
            assert ea['std'] == pytest.approx(np.std(eas, ddof=1))
            assert ea['max_minus_min'] == pytest.approx(max(eas) - min(eas))
            assert summary['reproducible'] is (ea['std'] <= ea['mean_own_err'])
    assert temperatures <= {2500.0, 3000.0} and temperatures  # at least one replica gave a fit
    # the same cell and MD seeds for every replica: the diffusions differ only by their model
    diffusions = [c for c in node.called if c.process_label == 'DiffusionWorkChain']
    assert len(diffusions) == 4
    assert len({d.inputs.md['seed'] for d in diffusions}) == 1
    assert len({d.inputs.structure.uuid for d in diffusions}) == 1

    from aiida_sseff.report import Figure, Table, section_for
    from aiida_sseff.report.sections.replicas import replica_rows, spread_rows

    blocks = section_for(node)(node)
    tables = [b for b in blocks if isinstance(b, Table)]
    assert tables[0].rows == replica_rows(table['datasets'])
    assert tables[1].rows == spread_rows(table['datasets'])
    by_replica = {(r[0], r[1], r[5]): r for r in tables[0].rows}
    for label, replicas in results['transport'].items():
        for seed, transport in replicas.items():
            first = transport['table'][0]
            assert by_replica[(label, seed, first['temperature_K'])][6] == pytest.approx(first['D_cm2_s'])
    assert len([b for b in blocks if isinstance(b, Figure)]) == 2
