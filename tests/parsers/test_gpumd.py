"""``sseff.gpumd`` parser on REAL GPUMD output (shared/reference/llzo/gpumd_md_1000K: msd.out and log of a 1 ns
NPT run of 12,288-atom LLZO at 1000 K, GPUMD 5.0), made into the ``retrieved`` folder of a fake finished CalcJob
node (aiida-quantumespresso's ``generate_calc_job_node`` pattern), parsed by ``Parser.parse_from_node``."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.plugins import CalculationFactory, ParserFactory

GpumdCalculation = CalculationFactory('sseff.gpumd')
GpumdParser = ParserFactory('sseff.gpumd')

REFERENCE = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'reference'
LLZO = REFERENCE / 'llzo'
MD_DIR = LLZO / 'gpumd_md_1000K'

# the real run.in (compute_msd 100 1000 all_groups 0 save_every 100000, dump_thermo 100, run 1000000, npt_mttk)
# expressed as the CalcJob's parameters
REAL_PARAMETERS = {
    'temperature': 1000,
    'ensemble': 'npt_mttk',
    'pressure': [0, 0],
    'pressure_direction': 'aniso',
    'time_step_fs': 1.0,
    'production_steps': 1_000_000,
    'dump_thermo': 100,
    'compute_msd': {'sample_interval': 100, 'n_correlation': 1000, 'all_groups': True, 'save_every': 100_000},
}


@pytest.fixture(scope='module')
def md_dir():
    if not (MD_DIR / 'msd.out').is_file():
        pytest.skip(f'real GPUMD reference data not found at {MD_DIR} (shared/reference beside the repository)')
    return MD_DIR


@pytest.fixture(scope='module')
def llzo_inputs(aiida_profile, md_dir):
    """Model (the real nep25_zbl.txt) and structure of the reference run, stored once and shared by the nodes.

    The parser reads only the species of the structure (to name the MSD groups); the 192-atom LLZO cell of the
    training set stands in for the 12,288-atom model.xyz (same species; storing that one takes seconds).
    """
    from ase.io import read

    from aiida_sseff.data.model import NepModel

    atoms = read(LLZO / 'nep_training' / 'train.xyz', index=0)
    atoms.calc = None
    inputs = {'structure': orm.StructureData(ase=atoms), 'model': NepModel(LLZO / 'nep25_zbl.txt'),
              'mobile_species': orm.Str('Li')}
    for node in inputs.values():
        node.store()
    return inputs


@pytest.fixture
def generate_calc_job_node(calc_job_node_factory):
    """A stored CalcJobNode of ``sseff.gpumd`` with the given inputs and a ``retrieved`` FolderData from a folder."""

    def _generate(folder: Path, parameters: dict, **inputs):
        return calc_job_node_factory('sseff.gpumd', folder, {'parameters': orm.Dict(parameters), **inputs})

    return _generate


def retrieved_folder(tmp_path, md_dir, names=('msd.out', 'log'), stderr=''):
    """What a retrieve of the reference run gives: the files that exist (thermo.out was not kept)."""
    folder = tmp_path / 'retrieved'
    folder.mkdir()
    for name in names:
        shutil.copy(md_dir / name, folder / name)
    (folder / 'gpumd.err').write_text(stderr)
    return folder


@pytest.mark.reference
def test_real_output_parsed_and_d_reproduced(tmp_path, md_dir, llzo_inputs, generate_calc_job_node):
    """thermo.out was not asked for (dump_thermo None): msd and performance parse; D(1000 K) as the tutorial's."""
    from aiida_sseff.analysis.diffusion import fit_diffusion_from_msd_curve

    node = generate_calc_job_node(retrieved_folder(tmp_path, md_dir), dict(REAL_PARAMETERS, dump_thermo=None),
                                  **llzo_inputs)
    results, calcfunction = GpumdParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    assert 'thermo' not in results
    msd = results['msd']
    assert msd.get_array('msd').shape == (4, 1000, 3) and msd.get_array('sdc').shape == (4, 1000, 3)
    assert msd.base.attributes.get('group_species') == ['Li', 'La', 'Zr', 'O']
    np.testing.assert_allclose(np.diff(msd.get_array('time')), 0.1, atol=1e-9)  # 100 steps of 1 fs
    # reference: shared/reference/llzo/gpumd_md_1000K/README.md (GPUMD-Tutorials 24): D_total = 9.667e-6 cm²/s,
    # from GPUMDkit's window (rows 10 %-40 %) and least-squares slope, the defaults of fit_diffusion_from_msd_curve
    fit = fit_diffusion_from_msd_curve(msd.get_array('time'), msd.get_array('msd')[0])
    assert fit.d_cm2_s == pytest.approx(9.667e-6, rel=0.01)
    np.testing.assert_allclose(fit.d_xyz_cm2_s, [9.627e-6, 9.680e-6, 9.693e-6], rtol=0.01)
    # the statistics for the error model: the file has no header (GPUMD 5.0), so they come from the run's
    # parameters: 1e6 steps / 100 = 10,000 samples, Nc = 1000 → 9001 time origins (msd.cu); ions per group from the
    # structure's grouping (the 192-atom cell given here: Li56 La24 Zr16 O96)
    attributes = msd.base.attributes.all
    assert attributes['statistics_from'] == 'run parameters'
    assert (attributes['sample_interval'], attributes['n_correlation'], attributes['n_samples']) == (100, 1000, 10000)
    assert attributes['n_time_origins'] == 9001
    assert attributes['num_atoms_per_group'] == [56, 24, 16, 96] and attributes['gpumd_version'] == '5.0'
    performance = results['performance'].get_dict()
    # the log: "version 5.0", "Number of atoms is 12288.", "Speed of this run = 6.68988e+06 atom*step/second.",
    # "Time used for this run = 1836.8 second."
    assert performance['gpumd_version'] == '5.0'
    assert performance['n_atoms'] == 12288
    assert performance['speed_atom_step_per_s'] == [6.68988e6]
    assert performance['run_time_s'] == [1836.8]
    # the speed is consistent with the run: 12,288 atoms × 1e6 steps / 1836.8 s = 6.690e6 atom·step/s
    assert performance['mean_speed_atom_step_per_s'] == pytest.approx(12288 * 1e6 / 1836.8, rel=1e-3)


@pytest.mark.reference
def test_missing_thermo_out_when_requested(tmp_path, md_dir, llzo_inputs, generate_calc_job_node):
    """The real run.in had dump_thermo 100 but thermo.out was not kept: that is a missing output (301)."""
    node = generate_calc_job_node(retrieved_folder(tmp_path, md_dir), REAL_PARAMETERS, **llzo_inputs)
    _, calcfunction = GpumdParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == GpumdCalculation.exit_codes.ERROR_MISSING_OUTPUT.status
    assert 'thermo.out' in calcfunction.exit_message


def _thermo_rows(n, temperature=1000.0):
    """18-column thermo.out rows (T K U Pxx Pyy Pzz Pyz Pxz Pxy ax ay az bx by bz cx cy cz), made up here."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(n):
        a = 52.29 + rng.normal(scale=0.01)
        rows.append([temperature + rng.normal(scale=5), 1588.0, -90139.0, 0.1, 0.1, 0.1, 0, 0, 0,
                     a, 0, 0, 0, a, 0, 0, 0, a])
    return rows


@pytest.mark.reference
def test_thermo_parsed_and_nan_is_unstable(tmp_path, md_dir, llzo_inputs, generate_calc_job_node):
    folder = retrieved_folder(tmp_path, md_dir)
    np.savetxt(folder / 'thermo.out', np.array(_thermo_rows(20)))
    node = generate_calc_job_node(folder, REAL_PARAMETERS, **llzo_inputs)
    results, calcfunction = GpumdParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    thermo = results['thermo']
    assert thermo.get_array('temperature').shape == (20,)
    assert thermo.get_array('volume').mean() == pytest.approx(52.29**3, rel=1e-3)

    rows = _thermo_rows(20)
    rows[7][0] = float('nan')
    np.savetxt(folder / 'thermo.out', np.array(rows))
    node = generate_calc_job_node(folder, REAL_PARAMETERS, **llzo_inputs)
    _, calcfunction = GpumdParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == GpumdCalculation.exit_codes.ERROR_MD_UNSTABLE.status


@pytest.mark.reference
def test_broken_variants_give_exit_codes(tmp_path, md_dir, generate_calc_job_node):
    """Missing log, truncated log, truncated msd.out, GPUMD input error: one exit code each."""
    parameters = dict(REAL_PARAMETERS, dump_thermo=None)
    codes = GpumdCalculation.exit_codes

    def parse(folder):
        _, calcfunction = GpumdParser.parse_from_node(generate_calc_job_node(folder, parameters),
                                                      store_provenance=False)
        return calcfunction

    no_log = retrieved_folder(tmp_path / 'a', md_dir, names=('msd.out',)) if (tmp_path / 'a').mkdir() is None else None
    assert parse(no_log).exit_status == codes.ERROR_MISSING_LOG.status

    (tmp_path / 'b').mkdir()
    truncated_log = retrieved_folder(tmp_path / 'b', md_dir)
    text = (md_dir / 'log').read_text()
    (truncated_log / 'log').write_text(text[: text.index('500000 steps completed')])  # killed mid-run
    result = parse(truncated_log)
    assert result.exit_status == codes.ERROR_MD_INCOMPLETE.status
    assert '0 of 1 runs' in result.exit_message

    (tmp_path / 'c').mkdir()
    truncated_msd = retrieved_folder(tmp_path / 'c', md_dir)
    lines = (md_dir / 'msd.out').read_text().splitlines()
    (truncated_msd / 'msd.out').write_text('\n'.join(lines[:500] + [lines[500][:40]]) + '\n')  # cut mid-row
    result = parse(truncated_msd)
    assert result.exit_status == codes.ERROR_UNREADABLE_OUTPUT.status
    assert 'msd.out' in result.exit_message

    (tmp_path / 'd').mkdir()
    refused = retrieved_folder(tmp_path / 'd', md_dir, names=(), stderr=(
        'Input Error:\n    File:       src/main_gpumd/run.cu\n    Line:       421\n'
        '    Error text: Invalid keyword dump_exyz.\n'))
    result = parse(refused)
    assert result.exit_status == codes.ERROR_INPUT_REFUSED.status
    assert 'dump_exyz' in result.exit_message


def test_parse_log_synthetic_two_runs():
    """Equilibration + production: two speed lines; 'Finished running GPUMD' marks the end (GPUMD ≥ 3 log)."""
    from aiida_sseff.parsers.gpumd import parse_log

    text = ('*                     version 5.6                             *\nNumber of atoms is 192.\n'
            'Time used for this run = 2.5 second.\nSpeed of this run = 7.68e+05 atom*step/second.\n'
            'Time used for this run = 25 second.\nSpeed of this run = 7.7e+05 atom*step/second.\n'
            'Time used = 27.6 s.\nFinished running GPUMD.\n')
    log = parse_log(text)
    assert log['gpumd_version'] == '5.6' and log['n_atoms'] == 192
    assert log['speed_atom_step_per_s'] == [7.68e5, 7.7e5] and log['n_runs_completed'] == 2
    assert log['total_time_s'] == 27.6 and log['finished']


# ------------------------------------------------------------------------------------------------ synthetic runs
def write_msd_out(path, msd, sample_interval, dt_sample_ps, n_atoms, cell, save_every=None):
    """msd.out as GPUMD >= 5.6 writes it (io.gpumd.write_msd follows msd.cu's MSD::write), one group (0 0)."""
    from aiida_sseff.io.gpumd import ComputeMsd, write_msd

    n_correlation = msd.shape[0]
    sdc = np.zeros_like(msd)
    sdc[1:] = 0.5 * np.diff(msd, axis=0) / dt_sample_ps
    Path(path).unlink(missing_ok=True)  # write_msd appends, as GPUMD does
    write_msd(path, np.arange(n_correlation) * dt_sample_ps, msd[None], sdc[None],
              compute_msd=ComputeMsd(sample_interval, n_correlation, group=(0, 0), save_every=save_every),
              num_atoms=n_atoms, num_atoms_per_group=[n_atoms], cell=cell, dt_output_ps=dt_sample_ps)


def random_walk(n_frames, n_li=6, n_o=2, step=0.3, seed=0):
    """Unwrapped positions (n_frames, atoms, 3): Li random walkers of rms step `step` Å per axis, O still."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 8, size=(n_li + n_o, 3))
    steps = rng.normal(scale=step, size=(n_frames, n_li + n_o, 3))
    steps[:, n_li:] = 0.0
    return start + np.cumsum(steps, axis=0), ['Li'] * n_li + ['O'] * n_o


SYNTHETIC_LOG = ('*                     version 5.6                             *\nNumber of atoms is 8.\n'
                 'Time used for this run = 1 second.\nSpeed of this run = 8e+03 atom*step/second.\n'
                 'Time used = 1 s.\nFinished running GPUMD.\n')
SYNTHETIC_PARAMETERS = {'temperature': 1000, 'time_step_fs': 1.0, 'production_steps': 600, 'dump_thermo': None,
                        'compute_msd': {'sample_interval': 10, 'n_correlation': 20},
                        'dump': {'interval': 10, 'properties': ['unwrapped_position']}}


@pytest.fixture
def synthetic_run(tmp_path):
    """A run of 600 steps sampled every 10 (60 samples, Nc = 20 → 41 origins): msd.out from GPUMD's algorithm on
    a random walk, and the dump of the same unwrapped positions (dump_xyz ... unwrapped_position)."""
    from ase import Atoms
    from ase.io import write

    from aiida_sseff.analysis.gpumd_msd import gpumd_msd

    positions, symbols = random_walk(60)
    cell = np.diag([8.0, 8.0, 8.0])
    folder = tmp_path / 'run'
    folder.mkdir()
    msd = gpumd_msd(positions[:, :6], 20, 0.01).msd[0]
    write_msd_out(folder / 'msd.out', msd, 10, 0.01, 6, cell)
    frames = []
    for frame in positions:
        atoms = Atoms(symbols, positions=frame % 8.0, cell=cell, pbc=True)
        atoms.new_array('unwrapped_position', frame)
        frames.append(atoms)
    write(folder / 'dump.xyz', frames, format='extxyz')
    (folder / 'log').write_text(SYNTHETIC_LOG)
    (folder / 'gpumd.err').write_text('')
    structure = orm.StructureData(ase=Atoms(symbols, positions=positions[0] % 8.0, cell=cell, pbc=True))
    return folder, structure, positions, msd


def test_unwrapped_dump_checked_against_msd_out(synthetic_run, generate_calc_job_node):
    """The dump's MSD, by GPUMD's ring-buffer algorithm, equals msd.out (both %g-printed: within 1e-4); the
    trajectory is an output; the statistics come from the header (41 origins, 6 ions)."""
    folder, structure, positions, _ = synthetic_run
    node = generate_calc_job_node(folder, SYNTHETIC_PARAMETERS, structure=structure, mobile_species=orm.Str('Li'))
    results, calcfunction = GpumdParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    check = results['msd_check'].get_dict()
    assert check['checked'] and check['consistent'] and check['max_relative_deviation'] < 1e-4
    attributes = results['msd'].base.attributes.all
    assert attributes['statistics_from'] == 'msd.out header' and attributes['n_time_origins'] == 41
    assert attributes['num_atoms_per_group'] == [6] and attributes['gpumd_version'] == '5.6'
    trajectory = results['trajectory']
    np.testing.assert_allclose(trajectory.get_array('positions'), positions, atol=1e-6)
    # frame k after (k + 1) × 10 steps of 1 fs
    np.testing.assert_allclose(trajectory.get_array('times')[:2], [0.01, 0.02])


def test_msd_out_inconsistent_with_the_dump_is_exit_403(synthetic_run, generate_calc_job_node):
    """msd.out 5 % above the dump's MSD (as with GPUMD's unwrapped-position bug): exit 403, the numbers in msd_check."""
    folder, structure, _, msd = synthetic_run
    write_msd_out(folder / 'msd.out', 1.05 * msd, 10, 0.01, 6, np.diag([8.0] * 3))
    node = generate_calc_job_node(folder, SYNTHETIC_PARAMETERS, structure=structure, mobile_species=orm.Str('Li'))
    results, calcfunction = GpumdParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == GpumdCalculation.exit_codes.ERROR_MSD_INCONSISTENT.status
    assert results['msd_check']['max_relative_deviation'] == pytest.approx(0.05, rel=0.05)


def test_run_stopped_early_keeps_restart_and_saved_msd(synthetic_run, generate_calc_job_node):
    """No 'Finished running GPUMD' (wall time): restart.xyz and the last msd_step<n>.out become outputs, with the
    statistics of n steps (400 steps / 10 = 40 samples, Nc = 20 → 21 origins); exit 400 all the same."""
    from aiida_sseff.analysis.gpumd_msd import gpumd_msd

    folder, structure, positions, _ = synthetic_run
    (folder / 'msd.out').unlink()
    (folder / 'log').write_text(SYNTHETIC_LOG.split('Time used for')[0])
    for step in (200, 400):
        partial = gpumd_msd(positions[: step // 10, :6], 20, 0.01).msd[0]
        write_msd_out(folder / f'msd_step{step}.out', partial, 10, 0.01, 6, np.diag([8.0] * 3), save_every=200)
    (folder / 'restart.xyz').write_text('8\npbc="T T T" Lattice="8 0 0 0 8 0 0 0 8" '
                                        'Properties=species:S:1:pos:R:3:mass:R:1:vel:R:3:group:I:1\n' + ''.join(
                                            'Li 1 1 1 6.94 0 0 0 0\n' for _ in range(8)))
    parameters = dict(SYNTHETIC_PARAMETERS, dump_restart=200)
    node = generate_calc_job_node(folder, parameters, structure=structure, mobile_species=orm.Str('Li'))
    results, calcfunction = GpumdParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == GpumdCalculation.exit_codes.ERROR_MD_INCOMPLETE.status
    assert 'restart.xyz and the MSD of the first 400 production steps saved' in calcfunction.exit_message
    attributes = results['msd'].base.attributes.all
    assert attributes['steps_completed'] == 400 and attributes['n_time_origins'] == 21
    assert results['restart'].get_content().startswith('8\n')
    # without the restart file there is nothing to continue from
    (folder / 'restart.xyz').unlink()
    node = generate_calc_job_node(folder, parameters, structure=structure, mobile_species=orm.Str('Li'))
    results, calcfunction = GpumdParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == GpumdCalculation.exit_codes.ERROR_MD_INCOMPLETE.status
    assert 'restart' not in results and 'msd' not in results
