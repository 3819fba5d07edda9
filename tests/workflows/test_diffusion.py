"""``sseff.diffusion``: real MD on the CPU engine (CPUNEP with the real LLZO NEP model; CHGNet on Li2O), the
calcfunctions on synthetic and real GPUMD data, and the refusals of bad inputs."""

from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms

from aiida_sseff.analysis.geometry import perpendicular_widths, replication_for_width
from aiida_sseff.workflows.diffusion import (
    DiffusionWorkChain,
    arrhenius_analysis,
    combine_replicas,
    diffusion_from_gpumd_msd,
    make_supercell,
    md_parameters,
)

REFERENCE = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'reference'
LLZO = REFERENCE / 'llzo'
K_B = 8.617333262e-5  # eV/K (CODATA 2018, = scipy.constants.k / e)


@pytest.fixture(scope='module')
def llzo_dir():
    if not (LLZO / 'nep25_zbl.txt').is_file():
        pytest.skip(f'real LLZO reference data not found at {LLZO} (shared/reference beside the repository)')
    return LLZO


def llzo_structure():
    """The first 192-atom LLZO cell (Li56 La24 Zr16 O96) of the real training set."""
    from ase.io import read

    atoms = read(LLZO / 'nep_training' / 'train.xyz', index=0)
    atoms.calc = None
    return orm.StructureData(ase=atoms)


def li2o():
    """Antifluorite Li2O conventional cell (12 atoms), from pymatgen's shipped Li2O.json."""
    import pymatgen.util
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    structure = Structure.from_file(Path(pymatgen.util.__file__).parent / 'structures' / 'Li2O.json')
    structure.remove_oxidation_states()
    return orm.StructureData(ase=AseAtomsAdaptor.get_atoms(SpacegroupAnalyzer(structure)
                                                         .get_conventional_standard_structure()))


# ------------------------------------------------------------------------------------------------ real MD runs
@pytest.mark.slow
@pytest.mark.reference
def test_fast_protocol_llzo_cpunep(aiida_profile, engine_code, llzo_dir):
    """The `fast` protocol as shipped: 4 temperatures 1300-1600 K, 7 ps each, CPUNEP, 192-atom LLZO."""
    from aiida_sseff.data.model import NepModel

    model = NepModel(llzo_dir / 'nep25_zbl.txt')
    builder = DiffusionWorkChain.get_builder_from_protocol(engine_code, llzo_structure(), model=model,
                                                           protocol='fast')
    assert builder.min_cell_width.value == 12.0  # 2 × the 6 Å radial cutoff; the cell is ~12.9 Å wide
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    assert 'structure' not in node.outputs  # no replication was needed
    table = results['diffusion']
    t = table.get_array('temperature_K')
    d, e = table.get_array('D_cm2_s'), table.get_array('D_err_cm2_s')
    np.testing.assert_array_equal(t, [1300, 1400, 1500, 1600])
    assert np.all(d > 0) and np.all(np.isfinite(e)) and np.all(e > 0)
    # D increases with T: the hottest above the coldest, and a positive Arrhenius slope (Ea > 0, below). Neighbours
    # are not compared one by one: single 7 ps runs of 56 Li scatter beyond their stated errors (measured: 1500 K
    # gave 0.86e-5 cm²/s with seed 3 and 1.41e-5, 1.56e-5 with seeds 11, 12) -- replicas or longer runs fix that
    assert d[-1] > d[0]
    assert len(results['results']['temperatures_fitted_K']) >= 3
    # the GPUMD-Tutorials run gives D(1000 K) = 9.7e-6 cm²/s for this model (12,288 atoms); at 1300-1600 K in the
    # small cell D must be of order 1e-5 cm²/s, not 1e-7 or 1e-3
    assert np.all((d > 2e-6) & (d < 2e-4))
    r = results['results']
    # the seed paper: Ea = 0.28-0.30 eV with NEP models (long runs, 700-1000 K); 6 ps runs: a broad range
    assert 0.0 < r['Ea_eV'] < 0.8
    assert np.isfinite(r['Ea_err_eV']) and 0 < r['Ea_err_eV'] < 0.5
    assert r['D_300K_cm2_s'] > 0 and r['sigma_300K_S_cm'] > 0 and np.isfinite(r['sigma_300K_err_S_cm'])
    assert r['n_ions'] == 56 and len(r['table']) == 4
    assert set(node.outputs.runs) == {'T1300K_r0', 'T1400K_r0', 'T1500K_r0', 'T1600K_r0'}
    msd = node.outputs.msd['T1500K_r0']
    assert msd.get_array('msd_total')[-1] > 2.0
    # provenance: every number comes from a calcfunction
    assert r.creator.process_label == 'arrhenius_analysis'
    assert node.outputs.runs['T1300K_r0'].creator.process_label == 'diffusion_from_trajectory'


@pytest.fixture
def quick_case(aiida_profile):
    """A structure and calculator for short runs: the real LLZO cell with its NEP model (16 ms per step) where the
    reference folder exists, else Li2O with CHGNet (pretrained weights ship in the wheel; ~1 s per step here)."""
    from aiida_sseff.data.model import NepModel

    if (LLZO / 'nep25_zbl.txt').is_file():
        return {'structure': llzo_structure(), 'model': NepModel(LLZO / 'nep25_zbl.txt'),
                'calculator': {'kind': 'nep'}, 'production_ps': 0.2}
    return {'structure': li2o(), 'model': None, 'calculator': {'kind': 'chgnet'}, 'production_ps': 0.04}


def quick_builder(engine_code, case, temperatures):
    builder = DiffusionWorkChain.get_builder()
    builder.structure = case['structure']
    if case['model'] is not None:
        builder.model = case['model']
    builder.temperatures = orm.List(temperatures)
    production = case['production_ps']
    builder.md = orm.Dict({'timestep_fs': 2.0, 'equilibration_ps': 0.0, 'production_ps': production,
                           'sample_interval_fs': 1000 * production / 20})
    builder.engine.code = engine_code
    builder.engine.calculator = orm.Dict(case['calculator'])
    builder.engine.metadata.options = {'max_wallclock_seconds': 1800}  # partial options: resources default kept
    return builder


def test_too_few_diffusion_events(engine_code, quick_case):
    """A very short run at 300 and 400 K: no Li hops, MSD ≪ 2 Å² → exit 420, 'run longer or hotter'."""
    _, node = run_get_node(quick_builder(engine_code, quick_case, [300.0, 400.0]))
    assert node.exit_status == DiffusionWorkChain.exit_codes.ERROR_TOO_FEW_DIFFUSION_EVENTS.status
    assert 'run longer or hotter' in node.exit_message
    # the per-run numbers are kept, with the reason
    run = node.outputs.runs['T300K_r0']
    assert run['diffusive'] is False and run['msd_end_A2'] < 2.0
    assert 'results' not in node.outputs
    job = node.called[0]
    assert job.get_option('max_wallclock_seconds') == 1800 and job.get_option('resources')['num_machines'] == 1


def test_failed_md_exit_code(engine_code, quick_case):
    """Two atoms 0.3 Å apart: the engine refuses at step 0, the WorkChain says which run failed (410)."""
    builder = quick_builder(engine_code, quick_case, [300.0, 400.0])
    atoms = builder.structure.get_ase()
    atoms.positions[1] = atoms.positions[0] + [0.3, 0, 0]
    builder.structure = orm.StructureData(ase=atoms)
    _, node = run_get_node(builder)
    assert node.exit_status == DiffusionWorkChain.exit_codes.ERROR_MD_FAILED.status
    assert 'T300K_r0' in node.exit_message and 'Å apart' in node.exit_message


# ------------------------------------------------------------------------------------------------ input refusals
def _inputs(engine_code, **changes):
    inputs = {'structure': li2o(), 'temperatures': orm.List([800.0, 1000.0]),
              'engine': {'code': engine_code, 'calculator': orm.Dict({'kind': 'chgnet'})}}
    inputs.update(changes)
    return inputs


@pytest.mark.parametrize('changes, match', [
    ({'structure': 'MgO'}, 'holds no Li'),
    ({'mobile_species': 'Na'}, 'holds no Na'),
    ({'temperatures': [1000.0]}, 'at least 2'),
    ({'temperatures': [1000.0, 1000.0]}, 'distinct'),
    ({'md': {'production_ps': 0.1, 'sample_interval_fs': 50.0}}, 'at least 20'),
    ({'md': {'temperature_K': 300}}, 'unknown key'),
    ({'analysis': {'start_fraction': 0.6}}, 'start_fraction < end_fraction'),
    ({'calculator': {'kind': 'nep'}}, 'needs a `model` input'),
    ({'gpumd': True}, 'exactly one of the namespaces'),
])
def test_inputs_refused(aiida_profile, engine_code, aiida_code_installed, changes, match):
    from aiida.engine import run

    inputs = _inputs(engine_code)
    for key, value in changes.items():
        if key == 'structure':
            inputs['structure'] = orm.StructureData(ase=Atoms('MgO', cell=[4.2] * 3, pbc=True,
                                                                scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]]))
        elif key == 'calculator':
            inputs['engine']['calculator'] = orm.Dict(value)
        elif key == 'gpumd':
            inputs['gpumd'] = {'code': aiida_code_installed(default_calc_job_plugin='sseff.gpumd',
                                                            filepath_executable='/bin/true')}
        elif key == 'temperatures':
            inputs[key] = orm.List(value)
        elif key == 'mobile_species':
            inputs[key] = orm.Str(value)
        else:
            inputs[key] = orm.Dict(value)
    with pytest.raises(ValueError, match=match):
        run(DiffusionWorkChain, **inputs)


def test_gpumd_needs_a_nep_model(aiida_profile, aiida_code_installed):
    from aiida.engine import run

    code = aiida_code_installed(default_calc_job_plugin='sseff.gpumd', filepath_executable='/bin/true')
    builder = DiffusionWorkChain.get_builder_from_protocol(code, li2o(), protocol='fast',
                                                           options={'max_wallclock_seconds': 600})
    assert 'code' in builder.gpumd and 'code' not in builder.engine
    assert builder.gpumd.metadata.options.max_wallclock_seconds == 600
    with pytest.raises(ValueError, match='needs a NEP model'):
        run(builder)


# ------------------------------------------------------------------------------------------------ helpers
def test_replication_for_width_triclinic():
    cell = np.array([[10.0, 0, 0], [5.0, 8.660254, 0], [0, 0, 6.0]])  # 60° between a and b
    widths = perpendicular_widths(cell)
    # width along a* is the distance between the b-c faces: |a| sin 60° = 8.660 Å; likewise for b; c: 6 Å
    np.testing.assert_allclose(widths, [8.660254, 8.660254, 6.0], rtol=1e-6)
    assert replication_for_width(cell, 12.0) == (2, 2, 2)
    assert replication_for_width(cell, 8.0) == (1, 1, 2)


def test_make_supercell_calcfunction(aiida_profile):
    structure = li2o()
    supercell = make_supercell(structure, orm.Float(9.0))
    assert supercell.creator.process_label == 'make_supercell'
    assert len(supercell.sites) == 12 * 8  # 4.6 Å cubic cell → 2×2×2
    assert min(perpendicular_widths(supercell.cell)) >= 9.0


def test_md_parameters_both_engines():
    md = {'timestep_fs': 1.0, 'equilibration_ps': 2.0, 'production_ps': 100.0, 'sample_interval_fs': 100.0}
    engine = md_parameters(md, 'engine', 900.0, 7)
    assert engine == {'ensemble': 'nvt_bussi', 'temperature_K': 900.0, 'timestep_fs': 1.0, 'n_steps': 100_000,
                      'n_equilibration_steps': 2000, 'thermo_interval': 100, 'trajectory_interval': 100,
                      'snapshot_interval': 0, 'seed': 7, 'thermostat_time_fs': 100.0}
    gpumd = md_parameters({**md, 'engine_parameters': {'ensemble': 'nvt_lan'}}, 'gpumd', 900.0, 7)
    assert gpumd['compute_msd'] == {'sample_interval': 100, 'n_correlation': 1000}
    assert gpumd['ensemble'] == 'nvt_lan' and gpumd['temperature_coupling'] == 100.0
    from aiida_sseff.calculations.gpumd import gpumd_run_in

    lines = gpumd_run_in(gpumd, '5.6').splitlines()
    assert lines[-2:] == ['compute_msd 100 1000 group 0 0', 'run 100000']


def _run(temperature, d, err, diffusive=True, msd_end=10.0, n_ions=56, volume=2200.0):
    return {'temperature_K': temperature, 'temperature_mean_K': temperature, 'volume_A3': volume, 'n_ions': n_ions,
            'D_cm2_s': d, 'D_err_cm2_s': err, 'D_xyz_cm2_s': [d] * 3, 'D_xyz_err_cm2_s': [err * 1.7] * 3,
            'D_collective_cm2_s': 2 * d, 'D_collective_err_cm2_s': 10 * err, 'msd_end_A2': msd_end,
            'diffusive': diffusive, 'reason': '' if diffusive else 'MSD too small'}


def test_combine_replicas_takes_the_larger_error():
    # two replicas that agree within their errors: propagated error 1/sqrt(2)·0.1 = 0.0707
    row = combine_replicas([_run(1000, 1.0, 0.1), _run(1000, 1.02, 0.1)])
    assert row['D_cm2_s'] == pytest.approx(1.01) and row['D_err_cm2_s'] == pytest.approx(0.1 / np.sqrt(2))
    # two that disagree: the scatter wins, std/sqrt(n) = 0.4243/1.414 = 0.3
    row = combine_replicas([_run(1000, 1.0, 0.1), _run(1000, 1.6, 0.1)])
    assert row['D_err_cm2_s'] == pytest.approx(np.std([1.0, 1.6], ddof=1) / np.sqrt(2))
    assert row['haven_ratio'] == pytest.approx(0.5, rel=0.01)


def test_arrhenius_calcfunction_recovers_known_ea(aiida_profile):
    """D = D0 exp(-Ea/kT) with Ea = 0.30 eV, D0 = 1e-3 cm²/s, 5 % errors and 5 % Gaussian noise (seeded)."""
    rng = np.random.default_rng(3)
    temperatures = [700.0, 800.0, 900.0, 1000.0, 1100.0, 1200.0]
    runs = {}
    for t in temperatures:
        d = 1e-3 * np.exp(-0.30 / (K_B * t)) * (1 + 0.05 * rng.normal())
        runs[f'T{t:g}K_r0'] = orm.Dict(_run(t, d, 0.05 * d))
    runs['T500K_r0'] = orm.Dict(_run(500.0, 1e-8, 1e-8, diffusive=False, msd_end=0.5))
    out = arrhenius_analysis(orm.Dict({}), **runs)
    r = out['results']
    assert abs(r['Ea_eV'] - 0.30) < 3 * r['Ea_err_eV'] and r['Ea_err_eV'] < 0.03
    assert r['temperatures_excluded_K'] == [500.0]
    d300 = 1e-3 * np.exp(-0.30 / (K_B * 300))
    assert abs(np.log(r['D_300K_cm2_s'] / d300)) < 3 * r['D_300K_err_cm2_s'] / r['D_300K_cm2_s']
    # σ(300 K) = Nernst–Einstein of the extrapolated D with 56 Li in 2200 Å³
    from aiida_sseff.analysis.diffusion import nernst_einstein_conductivity

    sigma, _ = nernst_einstein_conductivity(r['D_300K_cm2_s'], 56, 2200.0, 300.0)
    assert r['sigma_300K_S_cm'] == pytest.approx(sigma, rel=1e-9)
    assert r['kink']['testable'] and not r['kink']['significant']
    array = out['diffusion']
    np.testing.assert_array_equal(array.get_array('fitted'), [0, 1, 1, 1, 1, 1, 1])


@pytest.mark.reference
def test_gpumd_msd_calcfunction_on_real_msd_out(aiida_profile):
    """The GPUMD branch's analysis on the real 1000 K msd.out: D with the GPUMDkit window = the tutorial's value."""
    md_dir = LLZO / 'gpumd_md_1000K'
    if not (md_dir / 'msd.out').is_file():
        pytest.skip(f'real GPUMD reference data not found at {md_dir}')
    from aiida_sseff.io.gpumd import read_msd

    block = read_msd(md_dir / 'msd.out')[0]
    msd = orm.ArrayData()
    msd.set_array('time', block.time)
    msd.set_array('msd', block.msd)
    # 3584 Li in the 4×4×4 cell: a StructureData with the right count stands in for the 12,288-atom model.xyz
    cell = np.diag([52.295, 52.290, 52.279])
    structure = orm.StructureData(ase=Atoms('Li3584O', positions=np.zeros((3585, 3)), cell=cell, pbc=True))
    analysis = orm.Dict({'start_fraction': 0.1, 'end_fraction': 0.4, 'method': 'ols'})
    out = diffusion_from_gpumd_msd(msd, structure, orm.Float(1000.0), orm.Float(1000.0), analysis, orm.Str('Li'))
    result = out['result']
    # shared/reference/llzo/gpumd_md_1000K/README.md: D_total = 9.667e-6 cm²/s
    assert result['D_cm2_s'] == pytest.approx(9.667e-6, rel=0.01)
    assert result['method'] == 'ols+sandwich' and 0 < result['D_err_cm2_s'] < 0.05 * result['D_cm2_s']
    assert result['diffusive'] and result['msd_end_A2'] > 2.0
    assert result['n_ions'] == 3584


@pytest.mark.reference
def test_gpumd_branch_with_replayed_outputs(aiida_profile, aiida_code_installed, aiida_localhost, llzo_dir, tmp_path):
    """The GPUMD branch end to end: GPUMD cannot run here (CUDA), so the `gpumd` code is a script that replays the
    real 1000 K run's msd.out and log into the working directory; everything else (CalcJob, parser, calcfunctions,
    Arrhenius) is ours and runs. Both temperatures replay the same file: D must come out as the tutorial's."""
    from aiida_sseff.data.model import NepModel

    source = llzo_dir / 'gpumd_md_1000K'
    script = tmp_path / 'gpumd-replay'
    script.write_text(f'#!/bin/bash\ntest -f run.in && test -f model.xyz && test -f nep.txt || exit 2\n'
                      f'cp {source}/msd.out .\ncat {source}/log\n')
    script.chmod(0o755)
    aiida_localhost.set_minimum_job_poll_interval(0.0)  # a local process: no need to wait between polls
    code = aiida_code_installed(default_calc_job_plugin='sseff.gpumd', filepath_executable=str(script))
    builder = DiffusionWorkChain.get_builder()
    builder.structure = llzo_structure()
    builder.model = NepModel(llzo_dir / 'nep25_zbl.txt')
    builder.temperatures = orm.List([1000.0, 1100.0])
    # the replayed run: 1 ns at 1 fs, MSD sampled every 100 steps; its thermo.out was not kept, so none is asked for
    builder.md = orm.Dict({'timestep_fs': 1.0, 'equilibration_ps': 0.0, 'production_ps': 1000.0,
                           'sample_interval_fs': 100.0, 'engine_parameters': {'dump_thermo': None}})
    builder.analysis = orm.Dict({'end_fraction': 0.4, 'method': 'ols'})  # GPUMDkit's window and slope
    builder.gpumd.code = code
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    job = node.called[0] if node.called[0].process_label == 'GpumdCalculation' else node.called[1]
    run_in = job.base.repository.get_object_content('run.in')
    assert 'compute_msd 100 10000 group 0 0' in run_in and 'dump_thermo' not in run_in
    assert job.outputs.performance['gpumd_version'] == '5.0'
    d = results['diffusion'].get_array('D_cm2_s')
    # shared/reference/llzo/gpumd_md_1000K/README.md: D_total = 9.667e-6 cm²/s
    np.testing.assert_allclose(d, 9.667e-6, rtol=0.01)
    assert results['results']['n_ions'] == 56  # the ions of the structure given, not of the replayed run
