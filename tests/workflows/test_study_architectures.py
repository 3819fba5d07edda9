"""``sseff.study.architectures``: refusals before anything runs, the table calcfunction on stored results, and a REAL
study on LLZO DFT cells (NEP, qNEP, MACE-T0-I trained, each one's Li transport by the CPU engine, the classical
LAMMPS row where LAMMPS is installed) that produces the table and both figures."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_sseff.analysis.arrhenius import fit_arrhenius
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.workflows.studies import ArchitecturesStudyWorkChain, tabulate_architectures

K_B = 8.617333262e-5


@pytest.fixture(scope='module')
def llzo(aiida_profile, reference_dir):
    """10 cells of the real LLZO DFT training set (192 atoms, energy/forces/stress) and one as the MD cell."""
    from ase.io import read

    frames = read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index='0:10')
    return LabelledDataset(frames).store(), orm.StructureData(ase=frames[0]).store()


def _n_workflows() -> int:
    return orm.QueryBuilder().append(orm.WorkflowNode).count()


def _study(neppo_code, mace_code, engine_code, llzo, architectures=None, **kwargs):
    dataset, structure = llzo
    architectures = architectures or {'NEP': {'kind': 'nep', 'parameters': {}},
                                      'MACE_T0_I': {'kind': 'mace', 'variant': 'MACE-T0-I', 'parameters': {}}}
    return ArchitecturesStudyWorkChain.get_builder_from_protocol(
        {'nep': neppo_code, 'mace': mace_code, 'engine': engine_code}, dataset, engine_code, structure,
        protocol='fast', architectures=architectures, **kwargs)


def test_refusals(neppo_code, mace_code, engine_code, llzo, aiida_code_installed, gpumd_standin):
    before = _n_workflows()
    builder = _study(neppo_code, mace_code, engine_code, llzo)
    builder.reference_architecture = orm.Str('MACE_T1_E')
    with pytest.raises(ValueError, match='reference_architecture `MACE_T1_E` is not one of the architectures'):
        run_get_node(builder)
    gpumd = aiida_code_installed(label='gpumd-standin', default_calc_job_plugin='sseff.gpumd',
                                 filepath_executable=str(gpumd_standin))
    builder = _study(neppo_code, mace_code, engine_code, llzo)
    builder.diffusion.code = gpumd
    with pytest.raises(ValueError, match='GPUMD runs NEP models only; MACE_T0_I cannot run there'):
        run_get_node(builder)
    builder = _study(neppo_code, mace_code, engine_code, llzo)
    del builder.diffusion['structure']
    with pytest.raises(ValueError, match='diffusion.structure is required'):
        run_get_node(builder)
    assert _n_workflows() == before  # nothing half-made


def _transport(ea: float) -> orm.Dict:
    t = np.array([1000.0, 1200.0, 1400.0])
    d = 1e-3 * np.exp(-ea / (K_B * t))
    fit = fit_arrhenius(t, d, 0.05 * d)
    return orm.Dict({'Ea_eV': fit.ea, 'Ea_err_eV': fit.ea_err, 'arrhenius_params': list(fit.params),
                     'arrhenius_cov': fit.cov.tolist(), 'dof': fit.dof})


def test_tabulate_architectures_is_a_node_with_the_rows(aiida_profile):
    metrics = {'NEP': orm.Dict({'force_mev_per_angstrom': 120.0, 'energy_mev_per_atom': 3.0}),
               'MACE_T0_I': orm.Dict({'force_mev_per_angstrom': 30.0, 'energy_mev_per_atom': 1.5})}
    nodes = {f'metrics__{k}': v for k, v in metrics.items()}
    nodes['transport__NEP'] = _transport(0.25)
    nodes['transport__MACE_T0_I'] = _transport(0.26)
    nodes['cost__NEP'] = orm.Dict({'train_wall_time_s': 20.0, 'md_speed': [{'n_atoms': 192, 'atom_steps_per_s': 9e3}]})
    nodes['cost__MACE_T0_I'] = orm.Dict({'train_wall_time_s': 60.0,
                                         'md_speed': [{'n_atoms': 192, 'atom_steps_per_s': 3e2}]})
    table, node = tabulate_architectures.run_get_node(orm.Str('NEP'), orm.Float(1000.0), orm.Dict({'NEP': 'nep'}),
                                                      orm.Dict({'classical': '[420] too few hops'}), **nodes)
    rows = {row['label']: row for row in table['rows']}
    assert rows['MACE_T0_I']['force_rmse_relative'] == pytest.approx(0.25)
    assert rows['MACE_T0_I']['md_speed_relative'] == pytest.approx(3e2 / 9e3)
    assert rows['MACE_T0_I']['Ea_agrees_with_reference'] is True
    assert rows['NEP']['D_cm2_s'] == pytest.approx(1e-3 * np.exp(-0.25 / (K_B * 1000.0)), rel=1e-6)
    assert set(node.base.links.get_incoming().all_link_labels()) >= {'metrics__NEP', 'transport__MACE_T0_I'}
    assert 'MACE_T0_I' in table['markdown']


@pytest.mark.slow
def test_study_end_to_end(neppo_code, mace_code, engine_code, llzo, aiida_code_installed, tmp_path):
    """NEP, qNEP and MACE-T0-I on one split of 10 LLZO DFT cells, the Li transport of each at two temperatures with
    the CPU engine (NVT at the input cell: 10-cell models have no equation of state), and LAMMPS's classical row
    where LAMMPS and aiida-lammps are installed. Checks that can fail: one table row per model with the test-set
    errors sseff.train measured, an Arrhenius fit for every model that diffused (each row's Ea is its diffusion's),
    the speed ratio of the rows equal to the ratio of the measured speeds, and both figures drawn from the graph."""
    architectures = {'NEP': {'kind': 'nep', 'parameters': {}}, 'qNEP': {'kind': 'nep', 'parameters': {'charge_mode': 1}},
                     'MACE_T0_I': {'kind': 'mace', 'variant': 'MACE-T0-I', 'parameters': {}}}
    overrides = {
        'training': {'nep': {'overrides': {'parameters': {'generation': 60},
                                           'program_parameters': {'neppo': {'output_interval': 30}}}},
                     'mace': {'overrides': {'mace': {'parameters': {'max_num_epochs': 2}}}},
                     'speed': {'n_steps': 5, 'replications': [[1, 1, 1]]}},
        'diffusion': {'temperatures': [1500.0, 1800.0], 'md': {'equilibration_ps': 0.2, 'production_ps': 2.0,
                                                               'volume': 'input'},
                      'analysis': {'min_msd_A2': 0.3}},
    }
    lammps = shutil.which('lmp') or shutil.which('lmp_serial')
    classical = None
    if lammps is not None:
        pytest.importorskip('aiida_lammps')
        classical = aiida_code_installed(label='lammps', default_calc_job_plugin='lammps.raw',
                                         filepath_executable=lammps)
    builder = _study(neppo_code, mace_code, engine_code, llzo, architectures=architectures, overrides=overrides,
                     classical_code=classical)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    table = results['table'].get_dict()
    rows = {row['label']: row for row in table['rows']}
    expected = set(architectures) | ({'classical'} if classical is not None else set())
    assert set(rows) == expected
    assert table['reference'] == 'NEP' and rows['NEP']['force_rmse_relative'] == 1.0
    training = results['training']
    for label in architectures:
        assert rows[label]['force_mev_per_angstrom'] == pytest.approx(
            training['test_metrics'][label]['force_mev_per_angstrom'])
        speed = training['cost'][label]['md_speed'][0]['atom_steps_per_s']
        assert rows[label]['md_speed_relative'] == pytest.approx(
            speed / training['cost']['NEP']['md_speed'][0]['atom_steps_per_s'])
    for label, transport in results['transport'].items():
        assert rows[label]['Ea_eV'] == pytest.approx(transport['Ea_eV'])
        assert rows[label]['diffusion_failure'] is None
    assert 'NEP' in results['transport']
    from aiida_sseff.cli.plots import plot_architecture_study

    paths = plot_architecture_study(node, tmp_path)
    assert len(paths) == 2 and all(p.stat().st_size > 10_000 for p in paths)
