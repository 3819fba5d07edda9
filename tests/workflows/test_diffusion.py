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
    # 2 × the 6 Å radial cutoff, applied at run time; the cell is ~12.9 Å wide
    assert builder.min_cell_width_factor.value == 2.0 and 'min_cell_width' not in builder
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
    # no equilibration, so NVT at the input cell (an explicit choice; the default volume needs an NPT equilibration)
    builder.md = orm.Dict({'timestep_fs': 2.0, 'equilibration_ps': 0.0, 'production_ps': production,
                           'sample_interval_fs': 1000 * production / 20, 'volume': 'input'})
    builder.engine.md.code = engine_code
    builder.engine.md.calculator = orm.Dict(case['calculator'])
    builder.engine.md.metadata.options = {'max_wallclock_seconds': 1800}  # partial options: resources default kept
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
    base = next(c for c in node.called if c.process_label == 'EngineMdBaseWorkChain')  # the restart wrapper
    job = base.called[0]
    assert job.get_option('max_wallclock_seconds') == 1800 and job.get_option('resources')['num_machines'] == 1


def test_failed_md_exit_code(engine_code, quick_case):
    """Two atoms 0.3 Å apart: the engine refuses at step 0, the WorkChain says which run failed (410). The cell is
    first replicated to min_cell_width_factor 2.2 × the cutoff (6 Å for NEP25-ZBL and for CHGNet): 13.2 Å."""
    builder = quick_builder(engine_code, quick_case, [300.0, 400.0])
    atoms = builder.structure.get_ase()
    atoms.positions[1] = atoms.positions[0] + [0.3, 0, 0]
    builder.structure = orm.StructureData(ase=atoms)
    builder.min_cell_width_factor = orm.Float(2.2)
    _, node = run_get_node(builder)
    assert node.exit_status == DiffusionWorkChain.exit_codes.ERROR_MD_FAILED.status
    assert 'T300K_r0' in node.exit_message and 'Å apart' in node.exit_message
    supercell = node.outputs.structure
    assert min(perpendicular_widths(supercell.cell)) >= 13.2
    # the smallest replication that reaches it: LLZO's 12.89/13.32/12.88 Å → (2, 1, 2); Li2O's 4.6 Å → (3, 3, 3)
    reps = replication_for_width(builder.structure.cell, 13.2)
    assert len(supercell.sites) == len(atoms) * int(np.prod(reps)) and reps != (1, 1, 1)


# ------------------------------------------------------------------------------------------------ input refusals
def _inputs(engine_code, **changes):
    inputs = {'structure': li2o(), 'temperatures': orm.List([800.0, 1000.0]),
              'engine': {'md': {'code': engine_code, 'calculator': orm.Dict({'kind': 'chgnet'})}}}
    inputs.update(changes)
    return inputs


@pytest.mark.parametrize('changes, match', [
    ({'structure': 'MgO'}, 'holds no Li'),
    ({'mobile_species': 'Na'}, 'holds no Na'),
    ({'temperatures': [1000.0]}, 'at least 2'),
    ({'temperatures': [1000.0, 1000.0]}, 'distinct'),
    ({'md': {'production_ps': 0.1, 'sample_interval_fs': 50.0}}, 'at least 20'),
    ({'md': {'temperature_K': 300}}, 'unknown key'),
    ({'md': {'equilibration_ps': 0.0}}, "'equilibrated_mean' needs an NPT equilibration"),
    ({'md': {'volume': 'nph'}}, 'md.volume must be one of'),
    ({'analysis': {'t_start_ps': 5.0, 't_end_ps': 2.0}}, 't_start_ps < t_end_ps'),
    ({'analysis': {'t_end_ps': 25.0}}, 'beyond the production run'),
    ({'min_cell_width_factor': 2.0}, 'needs a model whose cutoff is known'),
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
            inputs['engine']['md']['calculator'] = orm.Dict(value)
        elif key == 'gpumd':
            inputs['gpumd'] = {'gpumd': {'code': aiida_code_installed(default_calc_job_plugin='sseff.gpumd',
                                                                      filepath_executable='/bin/true')}}
        elif key == 'temperatures':
            inputs[key] = orm.List(value)
        elif key == 'mobile_species':
            inputs[key] = orm.Str(value)
        elif key == 'min_cell_width_factor':
            inputs['engine']['md']['calculator'] = orm.Dict({'kind': 'emt'})  # a calculator of unknown range
            inputs[key] = orm.Float(value)
        else:
            inputs[key] = orm.Dict(value)
    with pytest.raises(ValueError, match=match):
        run(DiffusionWorkChain, **inputs)


def test_gpumd_needs_a_nep_model(aiida_profile, aiida_code_installed):
    from aiida.engine import run

    code = aiida_code_installed(default_calc_job_plugin='sseff.gpumd', filepath_executable='/bin/true')
    builder = DiffusionWorkChain.get_builder_from_protocol(code, li2o(), protocol='fast',
                                                           options={'max_wallclock_seconds': 600})
    assert 'code' in builder.gpumd.gpumd and 'code' not in builder.engine  # GpumdBaseWorkChain's `gpumd` namespace
    assert builder.gpumd.gpumd.metadata.options.max_wallclock_seconds == 600
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
    nvt_input = md_parameters({**md, 'volume': 'input'}, 'engine', 900.0, 7)
    # NVT at the input cell: what the engine ran before (no barostat keys at all)
    assert nvt_input == {'ensemble': 'nvt_bussi', 'temperature_K': 900.0, 'timestep_fs': 1.0, 'n_steps': 100_000,
                         'n_equilibration_steps': 2000, 'thermo_interval': 100, 'trajectory_interval': 100,
                         'snapshot_interval': 0, 'seed': 7, 'thermostat_time_fs': 100.0}
    # the engine default: NPT equilibration, NVT production in the mean equilibration cell
    default = md_parameters(md, 'engine', 900.0, 7)
    assert default == {**nvt_input, 'equilibration_ensemble': 'npt_mtk_iso', 'production_cell': 'equilibrated_mean',
                       'pressure_GPa': 0.0, 'barostat_time_fs': 1000.0}
    assert md_parameters({**md, 'volume': 'npt'}, 'engine', 900.0, 7)['ensemble'] == 'npt_mtk_iso'

    gpumd = md_parameters({**md, 'engine_parameters': {'ensemble': 'nvt_lan'}, 'volume': 'input'}, 'gpumd', 900.0, 7)
    # 1000 samples of 100 steps; Nc = msd_max_lag_fraction (0.5) × 1000 = 500 → 1000 - 500 + 1 = 501 time origins
    assert gpumd['compute_msd'] == {'sample_interval': 100, 'n_correlation': 500}
    assert gpumd['ensemble'] == 'nvt_lan' and gpumd['temperature_coupling'] == 100.0 and 'pressure' not in gpumd
    from aiida_sseff.calculations.gpumd import gpumd_run_in

    lines = gpumd_run_in(gpumd, '5.6').splitlines()
    assert lines[-2:] == ['compute_msd 100 500 group 0 0', 'run 100000']
    # NPT (npt_mttk, iso, 0 GPa, pperiod = 1000 fs / 1 fs) in equilibration and production
    npt = md_parameters({**md, 'msd_max_lag_fraction': 0.25, 'volume': 'npt'}, 'gpumd', 900.0, 7)
    assert npt['compute_msd']['n_correlation'] == 250
    lines = gpumd_run_in(npt, '5.6').splitlines()
    assert lines.count('ensemble npt_mttk temp 900 900 iso 0 0 tperiod 100 pperiod 1000') == 2
    # the default, equilibrated_mean: an NPT job of 2 ps (no MSD, restart.xyz at its last step), then the NVT
    # production without equilibration (it starts from that restart file in the mean cell)
    from aiida_sseff.workflows.diffusion import gpumd_equilibration_parameters

    production = md_parameters(md, 'gpumd', 900.0, 7)
    assert production['ensemble'] == 'nvt_bdp' and production['equilibration_steps'] == 0
    lines = gpumd_run_in(gpumd_equilibration_parameters(md, 900.0, 7), '5.6').splitlines()
    assert lines == ['potential nep.txt', 'velocity 900 seed 7', 'time_step 1', '',
                     'ensemble npt_mttk temp 900 900 iso 0 0 tperiod 100 pperiod 1000', 'dump_thermo 100',
                     'dump_restart 2000', 'run 2000']


@pytest.mark.parametrize('md, match', [
    ({'msd_max_lag_fraction': 0.7}, r'must be in \(0, 0.5\]'),
    ({'production_ps': 1.0, 'sample_interval_fs': 50.0, 'min_time_origins': 12}, r'leaves 11 time origin\(s\)'),
])
def test_gpumd_md_settings_refused(md, match):
    """Nc at most half the samples; fewer time origins than asked for (20 samples, Nc = 10 → 11 origins: io's
    MsdTimeOriginsError, a ValueError)."""
    with pytest.raises(ValueError, match=match):
        md_parameters(md, 'gpumd', 1000.0, 1)


def test_fit_window_is_the_same_lag_time_for_both_engines():
    from aiida_sseff.workflows.diffusion import check_fit_window, fit_window_ps

    md = {'production_ps': 20.0}
    assert fit_window_ps({}, 20.0) == (2.0, 10.0)  # 0.1 and 0.5 of the production run
    assert fit_window_ps({'t_start_ps': 1.0, 't_end_ps': 4.0}, 20.0) == (1.0, 4.0)
    check_fit_window(md, {}, 'gpumd')  # ends at 10 ps = Nc × sample interval = 200 × 50 fs
    check_fit_window(md, {'end_fraction': 0.8}, 'engine')
    with pytest.raises(ValueError, match='beyond the longest GPUMD lag'):
        check_fit_window(md, {'end_fraction': 0.8}, 'gpumd')


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
    """The GPUMD branch's analysis on the real 1000 K msd.out: D with the GPUMDkit window = the tutorial's value, and
    the error model gets the time origins and ions that the real run.in and model.xyz imply."""
    md_dir = LLZO / 'gpumd_md_1000K'
    if not (md_dir / 'msd.out').is_file():
        pytest.skip(f'real GPUMD reference data not found at {md_dir}')
    from aiida_sseff.analysis.diffusion import fit_diffusion_from_msd_curve
    from aiida_sseff.io.gpumd import read_msd

    block = read_msd(md_dir / 'msd.out')[0]
    msd = orm.ArrayData()
    msd.set_array('time', block.time)
    msd.set_array('msd', block.msd)
    # 3584 Li in the 4×4×4 cell: a StructureData with the right count stands in for the 12,288-atom model.xyz
    cell = np.diag([52.295, 52.290, 52.279])
    structure = orm.StructureData(ase=Atoms('Li3584O', positions=np.zeros((3585, 3)), cell=cell, pbc=True))
    # the real run.in: `compute_msd 100 1000 all_groups 0`, `run 1000000` at 1 fs → 10,000 samples, Nc = 1000,
    # msd.cu: 10,000 - 1000 + 1 = 9001 time origins
    parameters = orm.Dict({'production_steps': 1_000_000, 'time_step_fs': 1.0,
                           'compute_msd': {'sample_interval': 100, 'n_correlation': 1000}})
    # GPUMDkit's window, rows 10 %-40 % of the 1000 lags: 10.0-39.9 ps, and its least-squares slope
    analysis = orm.Dict({'t_start_ps': 10.0, 't_end_ps': 39.9, 'method': 'ols'})
    out = diffusion_from_gpumd_msd(msd, structure, orm.Float(1000.0), orm.Float(1000.0), analysis, orm.Str('Li'),
                                   parameters=parameters)
    result = out['result']
    # shared/reference/llzo/gpumd_md_1000K/README.md: D_total = 9.667e-6 cm²/s
    assert result['D_cm2_s'] == pytest.approx(9.667e-6, rel=0.01)
    assert result['n_time_origins'] == 9001 and result['n_ions'] == 3584
    assert result['time_origins_from'] == 'run parameters'
    # the error is that of the windowed estimator with those numbers, not of a full-trajectory MSD
    expected = fit_diffusion_from_msd_curve(block.time, block.msd[0], t_start_ps=10.0, t_end_ps=39.9, n_atoms=3584,
                                            n_time_origins=9001, method='ols')
    assert result['D_err_cm2_s'] == pytest.approx(expected.d_err_cm2_s, rel=1e-9)
    assert result['method'] == 'ols+sandwich' and 0 < result['D_err_cm2_s'] < 0.05 * result['D_cm2_s']
    assert result['diffusive'] and result['msd_end_A2'] > 2.0
    # one time origin (Nc = all samples, what the workflow used to write) gives a much larger error
    one_origin = fit_diffusion_from_msd_curve(block.time, block.msd[0], t_start_ps=10.0, t_end_ps=39.9,
                                              n_atoms=3584, n_time_origins=1, method='ols')
    assert one_origin.d_err_cm2_s > 3 * result['D_err_cm2_s']


def test_gpumd_msd_calcfunction_pressure_and_header_statistics(aiida_profile):
    """A synthetic MSD = 6 D t (D = 0.1 Å²/ps) with the parser's attributes (msd.out header: 40 ions, 101 origins)
    and a thermo whose production rows hold 1.2 GPa: the run gets the pressure and the warning flag."""
    time = np.arange(100) * 0.05
    msd_xyz = np.repeat((2 * 0.1 * time)[:, None], 3, axis=1)
    msd = orm.ArrayData()
    msd.set_array('time', time)
    msd.set_array('msd', msd_xyz[None])
    msd.base.attributes.set_many({'n_time_origins': 101, 'num_atoms_per_group': [40], 'gpumd_version': '5.6'})
    structure = orm.StructureData(ase=Atoms('Li8O', positions=np.zeros((9, 3)), cell=[10.0] * 3, pbc=True))
    thermo = orm.ArrayData()
    # 5 equilibration rows at 3 GPa (ignored), then 10 production rows at 1.2 GPa
    thermo.set_array('pressure', np.r_[np.full(5, 3.0), np.full(10, 1.2)])
    thermo.set_array('volume', np.r_[np.full(5, 900.0), np.full(10, 1000.0)])
    thermo.set_array('temperature', np.full(15, 1000.0))
    thermo.base.attributes.set('production_rows_from', 5)
    out = diffusion_from_gpumd_msd(msd, structure, orm.Float(1000.0), orm.Float(10.0), orm.Dict({}), orm.Str('Li'),
                                   thermo=thermo)
    r = out['result']
    assert r['D_cm2_s'] == pytest.approx(0.1e-4, rel=1e-6)  # 0.1 Å²/ps = 1e-5 cm²/s
    assert r['n_ions'] == 40 and r['n_time_origins'] == 101 and r['time_origins_from'] == 'msd attributes'
    assert r['volume_A3'] == pytest.approx(1000.0) and r['pressure_mean_GPa'] == pytest.approx(1.2)
    assert r['pressure_warning'] is True and r['gpumd_version'] == '5.6'
    # fit window 0.1-0.5 of the 10 ps run: 1-5 ps, all within the longest lag (4.95 ps, clipped)
    assert r['t_start_ps'] == pytest.approx(1.0) and r['t_end_ps'] == pytest.approx(4.95)
    relaxed = diffusion_from_gpumd_msd(msd, structure, orm.Float(1000.0), orm.Float(10.0),
                                       orm.Dict({'max_abs_pressure_GPa': 2.0}), orm.Str('Li'), thermo=thermo)
    assert relaxed['result']['pressure_warning'] is False
    no_origins = orm.ArrayData()
    no_origins.set_array('time', time)
    no_origins.set_array('msd', msd_xyz[None])
    with pytest.raises(ValueError, match='number of time origins is unknown'):
        diffusion_from_gpumd_msd(no_origins, structure, orm.Float(1000.0), orm.Float(10.0), orm.Dict({}),
                                 orm.Str('Li'))


@pytest.mark.slow
@pytest.mark.reference
def test_gpumd_branch_end_to_end_on_the_standin(aiida_profile, aiida_code_installed, aiida_localhost, gpumd_standin,
                                                llzo_dir):
    """The GPUMD branch end to end on the stand-in `gpumd` (real CPUNEP MD honouring run.in), by default: an NPT job,
    then NVT from its restart.xyz in the mean NPT cell, compute_msd with Nc = half the samples, an unwrapped dump. The WorkChain's MSD
    and D are recomputed independently from the stand-in's dump, and the time origins and ions the error model used
    are those run.in implies: a wrong Nc, run length or group fails here."""
    from aiida_sseff.analysis.diffusion import fit_diffusion_from_msd_curve
    from aiida_sseff.data.model import NepModel

    aiida_localhost.set_minimum_job_poll_interval(0.0)
    code = aiida_code_installed(default_calc_job_plugin='sseff.gpumd', filepath_executable=str(gpumd_standin))
    builder = DiffusionWorkChain.get_builder()
    builder.structure = llzo_structure()
    builder.model = NepModel(llzo_dir / 'nep25_zbl.txt')
    builder.temperatures = orm.List([1400.0, 1600.0])
    # 50 + 400 steps of 2 fs; MSD every 10 steps: 40 samples, Nc = 0.5 × 40 = 20, 40 - 20 + 1 = 21 origins
    builder.md = orm.Dict({'timestep_fs': 2.0, 'equilibration_ps': 0.1, 'production_ps': 0.8,
                           'sample_interval_fs': 20.0,
                           'engine_parameters': {'dump': {'interval': 10, 'properties': ['unwrapped_position']}}})
    builder.analysis = orm.Dict({'min_msd_A2': 0.05})  # 0.8 ps runs: a plumbing test, not a converged D
    builder.gpumd.gpumd.code = code
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    for label in ('T1400K_r0', 'T1600K_r0'):
        base = next(c for c in node.called if c.process_label == 'GpumdBaseWorkChain' and c.label == f'md_{label}')
        job = base.called[0]
        temperature = label[1:5]
        npt = next(c for c in node.called if c.process_label == 'GpumdBaseWorkChain' and c.label == f'npt_{label}')
        npt_run_in = npt.called[0].base.repository.get_object_content('run.in').splitlines()
        assert npt_run_in[-4:] == [f'ensemble npt_mttk temp {temperature} {temperature} iso 0 0 tperiod 50 pperiod 500',
                                   'dump_thermo 10', 'dump_restart 50', 'run 50']
        # the production starts from the NPT state in its mean cell: no velocity line, no equilibration, NVT
        mean_cell = job.inputs.restart
        assert mean_cell.creator.process_label == 'restart_in_mean_cell'
        assert job.base.repository.get_object_content('model.xyz') == mean_cell.get_content()
        run_in = job.base.repository.get_object_content('run.in').splitlines()
        assert not any(line.startswith('velocity') for line in run_in)
        assert run_in.count(f'ensemble nvt_bdp {temperature} {temperature} 50') == 1
        # GpumdBaseWorkChain saves the MSD with each restart.xyz, every max(10 % of the run, Nc samples) = 200 steps
        assert 'compute_msd 10 20 group 0 0 save_every 200' in run_in and run_in[-1] == 'run 400'
        run = node.outputs.runs[label]
        # NVT in the mean cell: the run's volume is the NPT mean
        assert run['volume_A3'] == pytest.approx(mean_cell.base.attributes.get('mean_volume_A3'), rel=1e-4)
        assert run['n_time_origins'] == 21 and run['n_ions'] == 56 and run['gpumd_version'] == '5.6'
        assert np.isfinite(run['pressure_mean_GPa']) and isinstance(run['pressure_warning'], bool)
        assert job.outputs.msd_check['consistent'] and job.outputs.msd_check['checked']
        # independent MSD from the dump: GPUMD's correlation events e = Nc-1 … n-1, pairs (e-k, e), Li only
        trajectory = job.outputs.trajectory
        li = np.array([s == 'Li' for s in trajectory.symbols])
        x = trajectory.get_array('positions')[:, li]
        assert x.shape == (40, 56, 3)
        events = range(19, 40)
        direct = np.array([np.mean([((x[e] - x[e - k]) ** 2).mean(axis=0) for e in events], axis=0)
                           for k in range(20)])
        msd = node.outputs.msd[label]
        np.testing.assert_allclose(msd.get_array('msd_xyz'), direct, rtol=1e-4, atol=1e-6)
        time = msd.get_array('time_ps')
        np.testing.assert_allclose(time, np.arange(20) * 0.02, atol=1e-9)
        # the fit window: 0.1-0.5 of the 0.8 ps run, 0.08-0.4 ps (the last lag is 0.38 ps)
        fit = fit_diffusion_from_msd_curve(time, direct, t_start_ps=0.08, t_end_ps=0.38, n_atoms=56,
                                           n_time_origins=21, method='gls')
        assert run['D_cm2_s'] == pytest.approx(fit.d_cm2_s, rel=1e-3)
        assert run['D_err_cm2_s'] == pytest.approx(fit.d_err_cm2_s, rel=1e-2)
        # the dump of every atom gives the collective D, as on the engine path
        assert run['D_collective_cm2_s'] is not None and np.isfinite(run['D_collective_err_cm2_s'])
    assert results['results']['n_ions'] == 56


def test_restart_in_mean_cell(aiida_profile, tmp_path):
    """GPUMD's restart.xyz scaled to the mean cell of the second half of the NPT rows: fractional positions,
    velocities and groups kept."""
    from aiida_sseff.io.gpumd import read_model_xyz, write_model_xyz
    from aiida_sseff.workflows.diffusion import restart_in_mean_cell

    rng = np.random.default_rng(1)
    atoms = Atoms('Li2O', scaled_positions=rng.uniform(size=(3, 3)), cell=np.diag([10.0, 11.0, 12.0]), pbc=True)
    atoms.set_velocities(rng.normal(scale=0.01, size=(3, 3)))
    write_model_xyz(atoms, tmp_path / 'restart.xyz', groups=np.array([0, 0, 1]))
    thermo = orm.ArrayData()
    # 8 rows of the NPT run: the first half (settling) at +10 %, the second half at a, b, c = 10.2, 11.3, 12.1 on average
    a = np.r_[[11.0] * 4, 10.1, 10.3, 10.2, 10.2]
    b = np.r_[[12.0] * 4, 11.3, 11.3, 11.2, 11.4]
    c = np.r_[[13.0] * 4, 12.0, 12.2, 12.1, 12.1]
    zero = np.zeros(8)
    for name, values in {'cell_xx': a, 'cell_xy': zero, 'cell_xz': zero, 'cell_yx': zero, 'cell_yy': b,
                         'cell_yz': zero, 'cell_zx': zero, 'cell_zy': zero, 'cell_zz': c,
                         'pressure': np.r_[[1.0] * 4, [0.1] * 4]}.items():
        thermo.set_array(name, values)
    node = restart_in_mean_cell(orm.SinglefileData(tmp_path / 'restart.xyz'), thermo)
    (tmp_path / 'out.xyz').write_bytes(node.get_content(mode='rb'))
    scaled, groups = read_model_xyz(tmp_path / 'out.xyz')
    np.testing.assert_allclose(scaled.cell.array, np.diag([10.2, 11.3, 12.1]), atol=1e-12)
    np.testing.assert_allclose(scaled.get_scaled_positions(), atoms.get_scaled_positions(), atol=1e-6)
    np.testing.assert_allclose(scaled.get_velocities(), atoms.get_velocities(), rtol=1e-4)  # file precision
    assert groups[:, 0].tolist() == [0, 0, 1]
    assert node.base.attributes.get('mean_volume_A3') == pytest.approx(10.2 * 11.3 * 12.1)
    assert node.base.attributes.get('mean_pressure_GPa') == pytest.approx(0.1)
