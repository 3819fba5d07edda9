"""The GPUMD stand-in (tests/standins/gpumd_standin.py) honours run.in: its msd.out is the MSD of its own unwrapped
trajectory with GPUMD's time origins, for the group asked, and it refuses what GPUMD refuses.

Real MD: the 192-atom LLZO cell of the DFT training set with the real NEP25-ZBL model (shared/reference/llzo).
"""

import subprocess

import numpy as np
import pytest

from aiida_sseff.io.gpumd import (
    ComputeMsd,
    TrajectoryDump,
    make_run_in,
    read_model_xyz,
    read_msd,
    read_run_in,
    read_thermo,
    species_grouping,
    write_model_xyz,
)

pytestmark = pytest.mark.reference


@pytest.fixture(scope='module')
def llzo(reference_dir):
    from ase.io import read

    atoms = read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index=0)  # Li56 La24 Zr16 O96
    return atoms, reference_dir / 'llzo' / 'nep25_zbl.txt'


def _prepare(folder, atoms, model, run_in: str):
    folder.mkdir(exist_ok=True)
    write_model_xyz(atoms, folder / 'model.xyz', groups=species_grouping(atoms.get_chemical_symbols(), 'Li',
                                                                         order=['La', 'Zr', 'O']))
    (folder / 'nep.txt').write_text(model.read_text())
    (folder / 'run.in').write_text(run_in)


def _run(executable, folder):
    return subprocess.run([str(executable)], cwd=folder, capture_output=True, text=True, timeout=600)


def _independent_msd(unwrapped, n_correlation):
    """MSD at lag k averaged over GPUMD's correlation events e = Nc-1 … n-1 (pairs e-k, e), written out directly."""
    n = len(unwrapped)
    events = range(n_correlation - 1, n)
    return np.array([np.mean([((unwrapped[e] - unwrapped[e - k]) ** 2).mean(axis=0) for e in events], axis=0)
                     for k in range(n_correlation)])


@pytest.fixture(scope='module')
def nvt_run(llzo, gpumd_standin, tmp_path_factory):
    atoms, model = llzo
    folder = tmp_path_factory.mktemp('standin-nvt')
    # 50 + 400 steps of 2 fs at 1500 K; MSD of group 0 (Li) sampled every 10 steps: 40 samples, Nc 20 → 21 origins
    run_in = make_run_in(temperature=1500, equilibration_steps=50, production_steps=400, time_step_fs=2.0,
                         ensemble='nvt_bdp', velocity_seed=3, dump_thermo=50, dump_restart=200,
                         msd=ComputeMsd(10, 20, group=(0, 0)),
                         trajectory=TrajectoryDump(10, 'traj.xyz', properties=('unwrapped_position', 'velocity')))
    _prepare(folder, atoms, model, run_in)
    result = _run(gpumd_standin, folder)
    assert result.returncode == 0, result.stderr
    return folder, result


@pytest.mark.slow
def test_msd_out_is_the_msd_of_its_own_trajectory(nvt_run):
    from ase.io import read

    folder, _ = nvt_run
    (block,) = read_msd(folder / 'msd.out')  # only the production run has compute_msd
    assert (block.sample_interval, block.n_correlation, block.group, block.all_groups) == (10, 20, (0, 0), None)
    assert block.num_atoms == 56 and block.num_atoms_per_group.tolist() == [56]  # the Li of Li56La24Zr16O96
    assert block.dt_output_ps == pytest.approx(0.02) and block.time.size == 20
    frames = read(folder / 'traj.xyz', index=':')
    assert len(frames) == 40  # production only, after steps 9, 19, …, 399: the MSD samples
    unwrapped = np.array([f.arrays['unwrapped_position'] for f in frames])
    li = np.array(frames[0].get_chemical_symbols()) == 'Li'
    expected = _independent_msd(unwrapped[:, li], 20)
    # msd.out prints %g (6 significant digits); extxyz positions carry 8 decimals
    np.testing.assert_allclose(block.msd[0], expected, rtol=2e-5, atol=1e-6)
    # the test can fail: all atoms, or a single time origin (Nc = all 40 samples), give a different curve
    every_atom = _independent_msd(unwrapped, 20)
    assert np.abs(every_atom[-1] - block.msd[0, -1]).max() > 0.1 * block.msd[0, -1].max()
    one_origin = ((unwrapped[19:20, li] - unwrapped[:20, li]) ** 2).mean(axis=1)[::-1]
    assert np.abs(one_origin[1:] / expected[1:] - 1).max() > 0.05
    # Li moves at 1500 K: its MSD grows over the 0.38 ps of lags
    assert block.msd[0, -1].sum() > block.msd[0, 1].sum() > 0


@pytest.mark.slow
def test_thermo_log_and_restart(nvt_run):
    from ase.io import read

    from aiida_sseff.parsers.gpumd import parse_log

    folder, result = nvt_run
    log = parse_log(result.stdout)
    assert log['finished'] and log['n_runs_completed'] == 2 and log['gpumd_version'] == '5.6'
    assert log['n_atoms'] == 192
    thermo = read_thermo(folder / 'thermo.out')
    assert thermo['block'].tolist() == [0] + [1] * 8  # 50 / 50 and 400 / 50 rows, one header block per run
    # NVT: the cell of model.xyz throughout
    np.testing.assert_allclose(thermo[['cell_xx', 'cell_yy', 'cell_zz']].to_numpy()[-1],
                               np.diag(read_model_xyz(folder / 'model.xyz')[0].cell.array), rtol=1e-9)
    # Bussi at 1500 K: 192 atoms fluctuate by 1500·sqrt(2/(3·192)) ≈ 90 K per row; the mean of 8 rows is within 400 K
    assert abs(thermo['temperature'][1:].mean() - 1500) < 400
    restart, groups = read_model_xyz(folder / 'restart.xyz')  # written after step 400 (the last), wrapped
    last = read(folder / 'traj.xyz', index=-1)
    np.testing.assert_allclose(restart.positions, last.positions, atol=1e-4)
    from ase import units

    np.testing.assert_allclose(restart.get_velocities() * units.fs, last.arrays['vel'], rtol=1e-4, atol=1e-7)
    assert groups[:, 0].tolist() == species_grouping(restart.get_chemical_symbols(), 'Li', ['La', 'Zr', 'O']).tolist()


@pytest.mark.slow
def test_continuation_from_restart_npt_all_groups(nvt_run, llzo, gpumd_standin, tmp_path):
    """model.xyz = restart.xyz, no velocity line: the run continues at 1500 K (GPUMD's default would be 300 K)."""
    folder, _ = nvt_run
    (tmp_path / 'model.xyz').write_text((folder / 'restart.xyz').read_text())
    (tmp_path / 'nep.txt').write_text(llzo[1].read_text())
    run_in = make_run_in(temperature=1500, production_steps=60, time_step_fs=2.0, ensemble='npt_mttk',
                         pressure=(0, 0), pressure_direction='iso', initial_velocities=False, dump_thermo=10,
                         msd=ComputeMsd(5, 6, all_groups=0))
    (tmp_path / 'run.in').write_text(run_in)
    assert read_run_in(run_in)[0].velocity is None
    result = _run(gpumd_standin, tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'default T = 300 K' not in result.stdout
    thermo = read_thermo(tmp_path / 'thermo.out')
    assert thermo['temperature'].iloc[0] > 1000
    assert np.ptp(thermo['volume']) > 0  # the barostat moves the cell
    (block,) = read_msd(tmp_path / 'msd.out')
    assert block.all_groups == 0 and block.num_atoms == 192
    assert block.num_atoms_per_group.tolist() == [56, 24, 16, 96]  # Li, La, Zr, O
    assert block.msd.shape == (4, 6, 3)


@pytest.mark.parametrize(
    ('msd_line', 'error'),
    [
        ('compute_msd 10 11', 'MSD correlation times sampling interval should be <= number of MD steps'),
        ('compute_msd 10 5 group 0 4', 'group ID should < number of groups'),
        ('compute_msd 10 5 group 1 0', 'grouping method should < number of grouping methods'),
        ('compute_msd 10 5 groups 0 0', "line 4: `compute_msd 10 5 groups 0 0`: unrecognised argument 'groups'"),
    ],
)
def test_refuses_what_gpumd_refuses(llzo, gpumd_standin, tmp_path, msd_line, error):
    atoms, model = llzo
    # 100 steps / 10 = 10 samples: Nc = 11 is more than GPUMD accepts (msd.cu MSD::preprocess)
    _prepare(tmp_path, atoms, model, f'potential nep.txt\nvelocity 1000\nensemble nvt_bdp 1000 1000 100\n'
                                     f'{msd_line}\nrun 100\n')
    result = _run(gpumd_standin, tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith('Input Error:') and error in result.stderr
    assert 'Finished running GPUMD' not in result.stdout and not (tmp_path / 'msd.out').exists()


def test_refuses_missing_files(gpumd_standin, tmp_path):
    result = _run(gpumd_standin, tmp_path)
    assert result.returncode == 1 and 'Failed to open run.in' in result.stderr


@pytest.mark.slow
def test_runs_in_sequence_with_their_ensembles_and_fix(llzo, gpumd_standin, tmp_path):
    """Three runs (Nosé–Hoover chain, Langevin with La fixed, Berendsen NPT), each with its own thermo block; the
    fixed La do not move during their run (GPUMD's `fix`: zero velocity and force), the others do."""
    atoms, model = llzo
    _prepare(tmp_path, atoms, model, 'potential nep.txt\nvelocity 1200 seed 2\ntime_step 1\n'
                                     'ensemble nvt_nhc 1200 1200 100\ndump_thermo 10\nrun 20\n'
                                     'ensemble nvt_lan 1200 1200 100\nfix 0 1\ndump_thermo 10\n'
                                     'dump_xyz -1 0 10 fixed.xyz unwrapped_position\nrun 20\n'
                                     'ensemble npt_ber 1200 1200 100 0 100 1000\ndump_thermo 5\nrun 20\n')
    result = _run(gpumd_standin, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('Speed of this run') == 3
    thermo = read_thermo(tmp_path / 'thermo.out')
    assert thermo.groupby('block').size().tolist() == [2, 2, 4]
    assert np.ptp(thermo['volume'][:4]) == 0 and np.ptp(thermo['volume'][4:]) > 0  # only npt_ber moves the cell
    from ase.io import read

    first, last = read(tmp_path / 'fixed.xyz', index=0), read(tmp_path / 'fixed.xyz', index=-1)
    la = np.array(first.get_chemical_symbols()) == 'La'
    moved = np.linalg.norm(last.arrays['unwrapped_position'] - first.arrays['unwrapped_position'], axis=1)
    assert moved[la].max() == 0.0 and moved[~la].min() > 0.0


def test_refuses_what_it_cannot_reproduce(llzo, gpumd_standin, tmp_path):
    atoms, model = llzo
    _prepare(tmp_path, atoms, model, 'potential nep.txt\nensemble nvt_ber 300 1200 100\nrun 10\n')
    result = _run(gpumd_standin, tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith('Error:') and 'temperature ramp 300 -> 1200 K is not reproduced' in result.stderr


def test_walltime_kill_leaves_a_restart(llzo, gpumd_standin, tmp_path):
    """GPUMD_STANDIN_WALLTIME_STEPS=25: killed after 25 of 40 steps, with restart.xyz of step 20, thermo rows so far,
    no msd.out block and no `Finished running GPUMD.`."""
    import os

    atoms, model = llzo
    _prepare(tmp_path, atoms, model, 'potential nep.txt\nvelocity 1200 seed 2\nensemble nvt_bdp 1200 1200 100\n'
                                     'dump_thermo 5\ndump_restart 10\ncompute_msd 5 2\nrun 40\n')
    result = subprocess.run([str(gpumd_standin)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={**os.environ, 'GPUMD_STANDIN_WALLTIME_STEPS': '25'})
    assert result.returncode == 143 and result.stderr == ''
    assert 'Finished running GPUMD' not in result.stdout and 'Speed of this run' not in result.stdout
    assert len(read_thermo(tmp_path / 'thermo.out')) == 5 and not (tmp_path / 'msd.out').exists()
    restart, _ = read_model_xyz(tmp_path / 'restart.xyz')
    assert len(restart) == 192 and np.any(restart.get_velocities())
