"""``sseff.study.speed``: refusals before anything runs, the GPUMD inputs of a speed run, and one real study (the
reference LLZO NEP on the CPU engine and on the GPUMD stand-in, two sizes) whose table is the stored MD results and
whose report section shows the table's numbers."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_sseff.workflows.speed import SpeedStudyWorkChain, gpumd_speed_parameters


def _llzo(reference_dir):
    """The first 192-atom LLZO cell (Li56 La24 Zr16 O96) of the real training set and the reference NEP model."""
    from ase.io import read

    from aiida_sseff.data.model import NepModel

    atoms = read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index=0)
    atoms.calc = None
    return orm.StructureData(ase=atoms), NepModel(reference_dir / 'llzo' / 'nep25_zbl.txt')


@pytest.fixture
def gpumd_code(aiida_code_installed, gpumd_standin):
    return aiida_code_installed(label='gpumd-standin', default_calc_job_plugin='sseff.gpumd',
                                filepath_executable=str(gpumd_standin))


def test_sizes_and_memory_limit_refused_by_name(aiida_profile, engine_code, reference_dir):
    structure, model = _llzo(reference_dir)
    builder = SpeedStudyWorkChain.get_builder_from_protocol(engine_code, structure, {'NEP': model},
                                                            protocol='fast', memory_limit_mb=4000.0)
    builder.target_n_atoms = orm.List([400])
    with pytest.raises(ValueError, match='either as `replications`'):
        run_get_node(builder)
    # the test computer has no default_memory_per_machine: without a limit the study cannot size the largest cell
    builder = SpeedStudyWorkChain.get_builder_from_protocol(engine_code, structure, {'NEP': model}, protocol='fast')
    with pytest.raises(ValueError, match='give `memory_limit_mb`'):
        run_get_node(builder)


def test_gpumd_speed_run_inputs_are_valid_gpumd_input():
    from aiida_sseff.calculations.gpumd import gpumd_run_in

    parameters = gpumd_speed_parameters({'temperature_K': 600.0, 'timestep_fs': 2.0}, 300)
    run_in = gpumd_run_in(parameters, '5.6')
    lines = run_in.splitlines()
    assert 'ensemble nvt_bdp 600 600 100' in run_in and 'time_step 2' in lines and 'run 300' in lines
    assert not any(line.startswith('compute_msd') for line in lines)  # speed only: no MSD to accumulate
    assert sum(line.startswith('run') for line in lines) == 1  # no equilibration run


@pytest.mark.slow
@pytest.mark.reference
def test_speed_study_llzo_nep(aiida_profile, engine_code, gpumd_code, reference_dir, tmp_path):
    """Two sizes (192 and 384 atoms) × the reference NEP × {engine, GPUMD stand-in}, 20 steps each."""
    from aiida_sseff.report import section_for
    from aiida_sseff.report.blocks import Figure, Table
    from aiida_sseff.report.sections.speed import SPEED_COLUMNS

    structure, model = _llzo(reference_dir)
    builder = SpeedStudyWorkChain.get_builder_from_protocol(
        engine_code, structure, {'NEP': model}, gpumd_code=gpumd_code, protocol='fast',
        overrides={'n_steps': 20}, memory_limit_mb=8000.0)
    _, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    table = node.outputs.table.get_dict()
    rows = table['rows']
    assert [(r['engine'], r['n_atoms'], r['status']) for r in rows] == [
        ('engine', 192, 'ok'), ('engine', 384, 'ok'), ('gpumd', 192, 'ok'), ('gpumd', 384, 'ok')]

    # every number is that of the stored run it came from
    runs = {child.label: child for child in node.called if child.label.startswith('speed_')}
    for row in rows:
        index = {192: 0, 384: 1}[row['n_atoms']]
        run = runs[f'speed_NEP_{row["engine"]}_{index:02d}']
        if row['engine'] == 'engine':
            results = run.outputs.results.get_dict()
            assert row['atom_steps_per_s'] == results['production_speed_atom_step_per_s']
            assert row['peak_memory_mb'] == results['peak_memory_mb']
            assert results['n_atoms'] == row['n_atoms'] and results['n_steps'] == 20
            assert row['threads'] == 1  # the default: one thread per job (no cores requested)
        else:
            assert row['atom_steps_per_s'] == run.outputs.performance['speed_atom_step_per_s'][-1]
            assert row['peak_memory_mb'] is None
        assert row['wall_time_extrapolated_s'] == pytest.approx(row['n_atoms'] * 1e6 / row['atom_steps_per_s'],
                                                                rel=1e-12)
    engine_fit, gpumd_fit = table['largest_cell']
    memories = [r['peak_memory_mb'] for r in rows[:2]]
    slope = (memories[1] - memories[0]) / 192
    assert engine_fit['slope_mb_per_atom'] == pytest.approx(slope, rel=1e-9, abs=1e-12)
    if slope > 0:
        assert engine_fit['max_n_atoms'] == pytest.approx((8000.0 - (memories[0] - 192 * slope)) / slope, abs=1)
    assert gpumd_fit['max_n_atoms'] is None and 'no peak memory' in gpumd_fit['reason']

    blocks = section_for(node)(node)
    tables = [block for block in blocks if isinstance(block, Table)]
    assert tables[0].columns == list(SPEED_COLUMNS)
    assert tables[0].rows == [[row[column] for column in SPEED_COLUMNS] for row in rows]
    assert tables[1].rows[0][2] == engine_fit['max_n_atoms']
    figure = next(block for block in blocks if isinstance(block, Figure))
    assert figure.data['NEP (engine)']['atom_steps_per_s'] == [r['atom_steps_per_s'] for r in rows[:2]]

    # the CLI shows and plots the same stored table
    from click.testing import CliRunner

    from aiida_sseff.cli import cmd_root

    shown = CliRunner().invoke(cmd_root, ['show', 'speed', str(node.pk)])
    assert shown.exit_code == 0, shown.output
    assert f'{rows[0]["atom_steps_per_s"]:.4g}' in shown.output and 'largest cell in 8000 MB' in shown.output
    plotted = CliRunner().invoke(cmd_root, ['plot', 'speed', str(node.pk), '-o', str(tmp_path)])
    assert plotted.exit_code == 0, plotted.output
    assert (tmp_path / f'speed-{node.pk}.png').stat().st_size > 0


def test_launch_speed_refuses_a_node_that_is_no_model(aiida_profile, engine_code):
    from click.testing import CliRunner

    from aiida_sseff.cli import cmd_root

    node = orm.Int(3).store()
    result = CliRunner().invoke(cmd_root, ['launch', 'speed', 'Li10GeP2S12', '--model', f'NEP={node.pk}',
                                           '--engine-code', engine_code.uuid, '--no-daemon'])
    assert result.exit_code != 0 and 'expected a NepModel or MaceModel' in result.output
