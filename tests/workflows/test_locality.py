"""sseff.locality end to end on the real LLZO cell with the real NEP model (CPUNEP), and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.io import read

from aiida_sseff.analysis.locality import sigma_f
from aiida_sseff.data.model import NepModel
from aiida_sseff.workflows.locality import LocalityWorkChain, compare_with_model_error


def llzo_structure(reference_dir):
    atoms = read(reference_dir / 'llzo/nep_training/train.xyz', index=0)
    atoms.calc = None
    return orm.StructureData(ase=atoms)


@pytest.mark.reference
def test_fast_protocol_llzo_nep_end_to_end(aiida_profile, engine_code, reference_dir):
    """The fast protocol (r_f = 3 and 5 Å, 16 snapshots) on the 192-atom LLZO cell, NEP as MD model and surrogate:
    the σ_f table must be what sigma_f gives on the forces output, and the frozen spheres must hold more atoms at 5 Å."""
    model = NepModel(reference_dir / 'llzo/nep25_zbl.txt')
    builder = LocalityWorkChain.get_builder_from_protocol(engine_code, llzo_structure(reference_dir), model=model,
                                                          protocol='fast', species=['Li', 'Zr'],
                                                          overrides={'parameters': {'n_equilibration_steps': 8}})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    assert 'structure' not in results  # a 12.9 Å cell holds a 5 Å sphere: no replication
    table, forces = results['sigma_f'], results['forces'].get_array('forces')
    assert table.base.attributes.get('species') == ['Li', 'Zr']
    np.testing.assert_allclose(table.get_array('radii'), [3.0, 5.0])
    sigma = table.get_array('sigma_f')
    assert sigma.shape == (2, 2) and np.all(sigma > 0) and np.all(table.get_array('sigma_f_err') > 0)
    for i in range(2):
        for j in range(2):
            assert sigma[i, j] == pytest.approx(sigma_f(forces[i, j]).sigma, rel=1e-12)
    n_frozen = table.get_array('n_frozen')
    assert np.all(n_frozen[:, 1] > n_frozen[:, 0])
    calculation = node.called[0]
    assert calculation.outputs.results['surrogate_is_perturbation'] is True
    # the report's σ_f table holds the stored numbers (meV/Å), species by radius
    from aiida_sseff.report.render import build_report, report_json

    [section] = [s for s in report_json(build_report(node))['sections'] if s['entry_point'] == 'sseff.locality']
    rows = section['blocks'][0]['table']['rows']
    assert rows == [[name, radius, 1e3 * sigma[i, j], 1e3 * table.get_array('sigma_f_err')[i, j]]
                    for i, name in enumerate(['Li', 'Zr']) for j, radius in enumerate([3.0, 5.0])]


def test_species_absent_is_a_named_exit_code(aiida_profile, engine_code):
    from ase.build import bulk

    structure = orm.StructureData(ase=bulk('Cu', 'fcc', a=3.6, cubic=True).repeat(3))
    builder = LocalityWorkChain.get_builder_from_protocol(engine_code, structure, calculator={'kind': 'emt'},
                                                          protocol='fast', species=['Cu', 'Li'])
    _, node = run_get_node(builder)
    assert node.exit_status == LocalityWorkChain.exit_codes.ERROR_SPECIES_ABSENT.status
    assert "['Li'] not in the structure" in node.exit_message


def test_too_few_snapshots_and_radii_and_cutoffs_are_refused(aiida_profile, engine_code):
    from ase.build import bulk

    structure = orm.StructureData(ase=bulk('Cu', 'fcc', a=3.6, cubic=True).repeat(3))
    builder = LocalityWorkChain.get_builder_from_protocol(
        engine_code, structure, calculator={'kind': 'emt'}, protocol='fast',
        overrides={'parameters': {'n_snapshots': 4}})
    with pytest.raises(ValueError, match='too few'):
        run_get_node(builder)
    builder = LocalityWorkChain.get_builder_from_protocol(engine_code, structure, calculator={'kind': 'emt'},
                                                          protocol='fast')
    builder.cutoffs = orm.List([2.0])
    with pytest.raises(ValueError, match='exactly one of `radii`'):
        run_get_node(builder)


def test_calcjob_refuses_a_sphere_the_cell_cannot_hold(aiida_profile, engine_code):
    from ase.build import bulk

    from aiida_sseff.calculations.locality import EngineLocalityCalculation

    inputs = {'code': engine_code, 'calculator': orm.Dict({'kind': 'emt'}),
              'structure': orm.StructureData(ase=bulk('Cu', 'fcc', a=3.6, cubic=True).repeat(3)),
              'parameters': orm.Dict({'centers': [0], 'radii': [6.0], 'n_snapshots': 16})}
    with pytest.raises(ValueError, match='use a 2x2x2 supercell'):
        run_get_node(EngineLocalityCalculation, **inputs)


def test_comparison_with_the_model_rmse(aiida_profile):
    """σ_f/√3 against the per-element RMSE where the metrics have it, else the overall one."""
    table = orm.ArrayData()
    table.set_array('sigma_f', np.array([[0.30, 0.050], [0.40, 0.020]]))
    table.set_array('sigma_f_err', np.full((2, 2), 0.001))
    table.set_array('radii', np.array([8.0, 12.0]))
    table.base.attributes.set('species', ['Li', 'O'])
    metrics = orm.Dict({'force_mev_per_angstrom': 100.0, 'force_per_element': {'Li': {'rmse_mev_per_angstrom': 50.0}}})
    result = compare_with_model_error(table, orm.Float(6.0), metrics).get_dict()
    assert result['largest_species'] == 'Li' and result['r_f_A'] == 12.0
    assert result['per_species']['Li']['locality_fraction'] == pytest.approx(50.0 / np.sqrt(3) / 50.0)
    assert result['per_species']['O']['force_rmse_mev_per_angstrom'] == 100.0
    with pytest.raises(ValueError, match='no r_f = 2·R_cut = 10'):
        compare_with_model_error(table, orm.Float(5.0), metrics)


@pytest.mark.slow
@pytest.mark.reference
def test_compare_model_adds_its_radius_and_replicates(aiida_profile, engine_code, reference_dir):
    """compare_model = the NEP (R_cut 6 Å): r_f = 12 Å is added, the cell replicated 2x2x2 so that it fits, and
    σ_f at 12 Å is compared with the given RMSE; at 2·R_cut a NEP surrogate's σ_f is near zero (only atoms moving
    in across 12 Å reach it: measured ~4e-8 eV/Å at 1000 K), far below r_f = 3 Å."""
    model = NepModel(reference_dir / 'llzo/nep25_zbl.txt')
    builder = LocalityWorkChain.get_builder_from_protocol(engine_code, llzo_structure(reference_dir), model=model,
                                                          protocol='fast', species=['Li'],
                                                          overrides={'radii': [3.0]})
    builder.compare_model = model
    builder.compare_metrics = orm.Dict({'force_mev_per_angstrom': 111.0})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    assert len(results['structure'].sites) == 8 * 192
    sigma = results['sigma_f'].get_array('sigma_f')[0]
    np.testing.assert_allclose(results['sigma_f'].get_array('radii'), [3.0, 12.0])
    assert sigma[1] < 1e-3 * sigma[0]
    comparison = results['comparison'].get_dict()
    assert comparison['r_f_A'] == 12.0 and comparison['largest']['force_rmse_mev_per_angstrom'] == 111.0


@pytest.mark.slow
@pytest.mark.reference
def test_gpumd_branch_on_the_standin_then_label_engine(aiida_profile, aiida_code_installed, engine_code, gpumd_standin,
                                                       reference_dir):
    """GPUMD path: one GpumdLocalityCalculation per (centre, r_f) (run by the GPUMD stand-in, which honours `fix`),
    the snapshots joined and labelled by the NEP surrogate in one label job, the central-atom forces taken from the
    labels. Checked: the forces are the NEP's on the dumped snapshots, the frozen atoms did not move in the dump,
    and the table is sigma_f of those forces."""
    from calorine.calculators import CPUNEP

    gpumd = aiida_code_installed(default_calc_job_plugin='sseff.gpumd.locality', filepath_executable=str(gpumd_standin))
    model = NepModel(reference_dir / 'llzo/nep25_zbl.txt')
    structure = llzo_structure(reference_dir)
    builder = LocalityWorkChain.get_builder()
    builder.structure = structure
    builder.species = orm.List(['Li'])
    builder.radii = orm.List([3.0, 5.0])
    builder.parameters = orm.Dict({'n_snapshots': 16, 'snapshot_interval': 4, 'n_equilibration_steps': 8,
                                   'temperature_K': 1000.0, 'seed': 3})
    builder.gpumd.code = gpumd
    builder.gpumd.model = model
    builder.label.code = engine_code
    builder.label.calculator = orm.Dict({'kind': 'nep'})
    builder.label.model = model
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    forces = results['forces'].get_array('forces')
    assert forces.shape == (1, 2, 16, 3)
    runs = sorted((n for n in node.called if n.process_label == 'GpumdLocalityCalculation'),
                  key=lambda n: n.inputs.parameters['radius'])
    assert [n.inputs.parameters['radius'] for n in runs] == [3.0, 5.0]
    center = int(results['forces'].get_array('centers')[0])
    initial = structure.get_ase()
    calculator = CPUNEP(str(reference_dir / 'llzo/nep25_zbl.txt'))
    for j, run in enumerate(runs):
        assert '\nfix 0 1\n' in run.outputs.retrieved.base.repository.get_object_content('run.in')
        snapshots = run.outputs.snapshots.get_ase()
        from aiida_sseff.analysis.locality import frozen_sphere_mask

        frozen = frozen_sphere_mask(initial, center, run.inputs.parameters['radius'])
        snapshot = snapshots[5]
        shift = snapshot.positions[frozen] - initial.positions[frozen]
        fractional = np.linalg.solve(initial.cell.array.T, shift.T).T
        assert np.abs(fractional - np.round(fractional)).max() < 1e-6  # frozen, up to a wrap
        snapshot.calc = calculator
        np.testing.assert_allclose(forces[0, j, 5], snapshot.get_forces()[center], atol=1e-8)
    sigma = results['sigma_f'].get_array('sigma_f')
    assert sigma[0, 0] == pytest.approx(sigma_f(forces[0, 0]).sigma, rel=1e-12) and np.all(sigma > 0)


@pytest.mark.slow
@pytest.mark.reference
def test_chgnet_surrogate_end_to_end(aiida_profile, engine_code, reference_dir):
    """The NEP drives the MD, CHGNet (no model file) is the surrogate, through the work chain and the CalcJob: one
    CHGNet call per snapshot, and σ_f of Li at r_f = 3 Å above that at 5 Å (CHGNet's range is longer than both)."""
    model = NepModel(reference_dir / 'llzo/nep25_zbl.txt')
    builder = LocalityWorkChain.get_builder_from_protocol(engine_code, llzo_structure(reference_dir), model=model,
                                                          surrogate_calculator={'kind': 'chgnet'}, protocol='fast',
                                                          species=['Li'])
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    summary = node.called[0].outputs.results
    assert summary['surrogate_is_perturbation'] is False and summary['n_surrogate_calls'] == 2 * 16
    table = results['sigma_f']
    sigma, error = table.get_array('sigma_f')[0], table.get_array('sigma_f_err')[0]
    assert sigma[0] > sigma[1] + 2 * np.hypot(*error), (sigma, error)
