"""``sseff.study.finite_size``: refusals before anything runs, and a REAL study (a tiny neppo NEP trained here on
EMT-labelled Cu/Al, the CPU engine's MD of molten Cu/Al with Al as the mobile species, 2 cells x 2 run lengths at
two temperatures) whose table must hold the numbers of the stored diffusion nodes and the atoms of the stored cells,
whose verdict must follow the stated rule applied to those numbers, and whose report section's rows are the table's."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_sseff.analysis.finite_size import smallest_converged
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.workflows.finite_size import FiniteSizeStudyWorkChain, cell_label, run_length_label

#: Cu/Al at 2200-2800 K is a melt (EMT's Cu melts near 1300 K): Al diffuses in a 1 ps run whatever the tiny model's
#: errors; the ZBL core (zbl 2 Å) keeps its atoms apart. A test of the composition and bookkeeping, not a converged study.
OVERRIDES = {
    'replications': [[1, 1, 1], [2, 1, 1]],
    'run_lengths_ps': [1.0, 2.0],
    'diffusion': {'temperatures': [2200.0, 2800.0], 'mobile_species': 'Al',
                  'md': {'equilibration_ps': 0.1, 'sample_interval_fs': 50.0, 'volume': 'input'},
                  'analysis': {'min_msd_A2': 0.5}},
}


@pytest.fixture
def cu_al_model(neppo_code, cu_al_structures):
    """A NEP trained for 40 AdamW steps on 8 EMT-labelled Cu/Al cells (one replica), and a 32-atom cell."""
    from aiida_sseff.workflows.training import NepTrainingWorkChain

    builder = NepTrainingWorkChain.get_builder_from_protocol(
        neppo_code, LabelledDataset(cu_al_structures(8)), protocol='fast',
        overrides={'n_replicas': 1, 'parameters': {'generation': 40, 'zbl': 2.0},
                   'program_parameters': {'neppo': {'output_interval': 20}}})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    return results['model'], orm.StructureData(ase=cu_al_structures(1, seed=7)[0]).store()


def _n_workflows() -> int:
    return orm.QueryBuilder().append(orm.WorkflowNode).count()


def test_refusals(aiida_profile, engine_code, reference_dir, cu_al_structures):
    """With the LLZO reference NEP and an LLZO cell: each bad input refused by name, nothing stored."""
    from ase.io import read

    from aiida_sseff.data.model import NepModel

    model = NepModel(reference_dir / 'llzo' / 'nep25_zbl.txt')
    structure = orm.StructureData(ase=read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index=0))
    before = _n_workflows()
    llzo = {**OVERRIDES, 'diffusion': {**OVERRIDES['diffusion'], 'mobile_species': 'Li'}}
    cases = [
        ({'replications': [[1, 1, 1], [1, 1, 1]]}, 'at least 2 different cells'),
        ({'replications': [[1, 1, 0], [2, 1, 1]]}, r'replications must be a list of \[n1, n2, n3\]'),
        ({'run_lengths_ps': [1.0, 1.0]}, 'run_lengths_ps must be distinct positive'),
        ({'run_lengths_ps': [0.2, 1.0]}, 'run length 0.2 ps: diffusion: md: production_ps/sample_interval_fs gives 4'),
    ]
    for change, match in cases:
        builder = FiniteSizeStudyWorkChain.get_builder_from_protocol(engine_code, model, structure, protocol='fast',
                                                                     overrides={**llzo, **change})
        with pytest.raises(ValueError, match=match):
            run_get_node(builder)
    builder = FiniteSizeStudyWorkChain.get_builder_from_protocol(engine_code, model, structure, protocol='fast',
                                                                 overrides=llzo)
    builder.min_cell_widths = orm.List([5.0, 10.0])
    with pytest.raises(ValueError, match='give exactly one of `replications`'):
        run_get_node(builder)
    cu_al = orm.StructureData(ase=cu_al_structures(1)[0])
    builder = FiniteSizeStudyWorkChain.get_builder_from_protocol(engine_code, model, cu_al, protocol='fast',
                                                                 overrides=OVERRIDES)
    with pytest.raises(ValueError, match='the model does not know the element'):
        run_get_node(builder)
    assert _n_workflows() == before  # nothing half-made


@pytest.mark.slow
def test_study_end_to_end(engine_code, cu_al_model):
    model, structure = cu_al_model
    builder = FiniteSizeStudyWorkChain.get_builder_from_protocol(engine_code, model, structure, protocol='fast',
                                                                 overrides=OVERRIDES)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    table = results['table'].get_dict()
    print(table['markdown'])  # the example in docs/user/finite_size.md
    assert len(table['rows']) == 4
    cells = {cell_label(r): results['structures'][cell_label(r)] for r in OVERRIDES['replications']}
    assert len(cells['cell_1x1x1'].sites) == 32 and len(cells['cell_2x1x1'].sites) == 64
    for row in table['rows']:
        cell = cells[row['cell']]
        assert row['n_atoms'] == len(cell.sites)
        assert row['n_mobile'] == cell.get_ase().get_chemical_symbols().count('Al')
        transport = results['transport'].get(row['cell'], {}).get(run_length_label(row['run_length_ps']))
        if transport is None:
            assert row['failure'] and row['Ea_eV'] is None
            continue
        assert row['Ea_eV'] == pytest.approx(transport['Ea_eV'])
        assert row['Ea_err_eV'] == pytest.approx(transport['Ea_err_eV'])
        stored = {r['temperature_K']: r for r in transport['table']}
        for d in row['D']:
            assert d['D_cm2_s'] == pytest.approx(stored[d['temperature_K']]['D_cm2_s'])
            assert d['D_err_cm2_s'] == pytest.approx(stored[d['temperature_K']]['D_err_cm2_s'])
    # each (cell, run length) ran in the cell as given, for its own length
    for diffusion in (c for c in node.called if c.process_label == 'DiffusionWorkChain'):
        assert 'min_cell_width_factor' not in diffusion.inputs and 'structure' not in diffusion.outputs
        assert diffusion.inputs.md['production_ps'] in (1.0, 2.0)
    # the verdict is the stated rule applied to the stored results (at the longest run, by size)
    longest = [results['transport'][label][run_length_label(2.0)].get_dict() for label in ('cell_1x1x1', 'cell_2x1x1')
               if run_length_label(2.0) in results['transport'].get(label, {})]
    if len(longest) == 2:
        index = smallest_converged(longest, table['n_sigma'])
        assert table['converged_cell'] == (None if index is None else ['cell_1x1x1', 'cell_2x1x1'][index])

    from aiida_sseff.report import Figure, Table, section_for
    from aiida_sseff.report.sections.finite_size import finite_size_rows

    blocks = section_for(node)(node)
    tables = [b for b in blocks if isinstance(b, Table)]
    assert tables[0].rows == finite_size_rows(table)
    assert any(isinstance(b, Figure) for b in blocks)
