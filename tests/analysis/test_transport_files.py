"""aiida_sseff.analysis.transport_files: D of GPUMD folders and trajectories with the ions and time origins taken from
msd.out's header, model.xyz and run.in (and saying so), Arrhenius over <T>K folders with the kink test."""

import subprocess

import numpy as np
import pytest

from aiida_sseff.analysis.arrhenius import K_B_EV
from aiida_sseff.analysis.diffusion import fit_diffusion_from_msd_curve
from aiida_sseff.analysis.transport_files import (
    analyse_msd_out,
    analyse_trajectory,
    arrhenius_from_folders,
    msd_statistics,
    public,
    temperature_folders,
)
from aiida_sseff.io.gpumd import ComputeMsd, make_run_in, read_msd, write_msd


def linear_msd(d_A2_ps, nc, dt_ps, plateau=0.3):
    t = np.arange(nc) * dt_ps
    msd = np.where(t[:, None] > 0, 2 * d_A2_ps * t[:, None] + plateau / 3, 0.0) * np.ones((1, 3))
    sdc = np.zeros_like(msd)
    sdc[1:] = 0.5 * np.diff(msd, axis=0) / dt_ps
    return t, msd, sdc


def gpumd56_folder(folder, d_A2_ps=0.1, nc=100, interval=10, time_step_fs=2.0, steps=20_000, n_li=56,
                   write_run=True, run_nc=None):
    """A GPUMD >= 5.6 folder: msd.out with header (compute_msd <interval> <Nc> group 0 0, n_li ions) and run.in."""
    folder.mkdir(parents=True, exist_ok=True)
    dt = interval * time_step_fs / 1000
    t, msd, sdc = linear_msd(d_A2_ps, nc, dt)
    write_msd(folder / 'msd.out', t, msd[None], sdc[None], compute_msd=ComputeMsd(interval, nc, group=(0, 0)),
              num_atoms=n_li, num_atoms_per_group=[n_li], cell=12 * np.eye(3), dt_output_ps=dt)
    if write_run:
        (folder / 'run.in').write_text(make_run_in(temperature=1000, production_steps=steps, time_step_fs=time_step_fs,
                                                   msd=ComputeMsd(interval, run_nc or nc, group=(0, 0))))
    return folder


# --------------------------------------------------------------------------------------------- msd_statistics
@pytest.mark.reference
def test_statistics_of_the_real_folder(llzo_md_dir):
    # header-less msd.out (GPUMD 5.0); model.xyz groups: 3584 Li; run.in: 1,000,000 steps // 100 = 10,000 samples,
    # Nc = 1000: 9001 time origins (GPUMD msd.cu)
    stats = msd_statistics(llzo_md_dir / 'msd.out')
    assert (stats['n_ions'], stats['n_time_origins'], stats['n_samples']) == (3584, 9001, 10_000)
    assert stats['run_length_ps'] == pytest.approx(1000.0)
    assert stats['sources']['n_ions'] == 'model.xyz (group 0 of grouping method 0)'
    assert stats['sources']['n_time_origins'].startswith('run.in line 8: run 1000000 // compute_msd interval 100')
    assert msd_statistics(llzo_md_dir / 'msd.out', group=3)['n_ions'] == 6144  # O


def test_ions_from_the_header_origins_from_run_in(tmp_path):
    folder = gpumd56_folder(tmp_path / 'run')  # 20,000 // 10 = 2000 samples, Nc = 100: 1901 origins
    (folder / 'model.xyz').write_text('not read: the header has the ions\n')
    stats = msd_statistics(folder / 'msd.out')
    assert (stats['n_ions'], stats['n_time_origins']) == (56, 1901)
    assert stats['sources']['n_ions'] == 'msd.out header (# num_atoms_per_group, group 0)'
    given = msd_statistics(folder / 'msd.out', n_ions=10, run_length_ps=10.0)  # 10 ps / 0.02 ps = 500 samples
    assert (given['n_ions'], given['n_time_origins']) == (10, 401)
    assert given['sources']['n_ions'] == 'given'


@pytest.mark.parametrize(
    ('changes', 'match'),
    [
        ({'run_nc': 50}, r'compute_msd has Nc = 50, but the last block of .*msd.out has 100 rows'),
        ({'time_step_fs': 1.0, 'write_run': False}, None),
    ],
)
def test_run_in_must_belong_to_the_msd_out(tmp_path, changes, match):
    folder = gpumd56_folder(tmp_path / 'run', **changes)
    if match is None:  # no run.in: no origins, and the result says why
        stats = msd_statistics(folder / 'msd.out')
        assert stats['n_time_origins'] is None and stats['sources']['n_time_origins'].startswith('unknown')
        return
    with pytest.raises(ValueError, match=match):
        msd_statistics(folder / 'msd.out')


def test_run_in_with_another_sample_spacing_is_refused(tmp_path):
    folder = gpumd56_folder(tmp_path / 'run')
    (folder / 'run.in').write_text(make_run_in(temperature=1000, production_steps=20_000, time_step_fs=1.0,
                                               msd=ComputeMsd(10, 100, group=(0, 0))))
    with pytest.raises(ValueError, match=r'samples every 0.01 ps .* spaced by 0.02 ps'):
        msd_statistics(folder / 'msd.out')
    (folder / 'run.in').write_text(make_run_in(temperature=1000, production_steps=20_000, time_step_fs=2.0,
                                               msd=ComputeMsd(10, 100, all_groups=0)))
    with pytest.raises(ValueError, match=r'header `compute_msd 10 100 group 0 0` differs from the compute_msd'):
        msd_statistics(folder / 'msd.out')


# ------------------------------------------------------------------------------------------------ analyse_msd_out
def test_d_and_its_error_from_gpumd_statistics(tmp_path):
    folder = gpumd56_folder(tmp_path / 'run', d_A2_ps=0.1)
    result = analyse_msd_out(folder, temperature=1000)  # a folder or its msd.out
    assert result['D_cm2_s'] == pytest.approx(0.1e-4, rel=1e-5)  # linear MSD, 2·D·t per direction
    block = read_msd(folder / 'msd.out')[0]
    direct = fit_diffusion_from_msd_curve(block.time, block.msd[0], 0.1, 0.4, n_atoms=56, n_time_origins=1901)
    assert result['D_err_cm2_s'] == pytest.approx(direct.d_err_cm2_s, rel=1e-12)
    assert result['errors'] == 'GPUMD windowed estimator (56 ions, 1901 time origins)'
    # fewer origins (a run only 2x the correlation window: 101 origins) must give a larger error
    short = gpumd56_folder(tmp_path / 'short', d_A2_ps=0.1, steps=2000)
    assert analyse_msd_out(short, temperature=1000)['D_err_cm2_s'] > 2 * result['D_err_cm2_s']
    # without run.in: D, but no error, and why
    bare = gpumd56_folder(tmp_path / 'bare', write_run=False)
    alone = analyse_msd_out(bare / 'msd.out', temperature=1000)
    assert alone['D_err_cm2_s'] is None and alone['errors'] == 'none: n_time_origins unknown (see sources)'
    assert public(alone)['sources']['n_ions'].startswith('msd.out header') and '_curve' not in public(alone)


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'temperature': -5}, r'temperature: expected a positive number, got -5'),
        ({'temperature': 1000, 'volume_A3': 0.0}, r'volume_A3: expected a positive number, got 0.0'),
        ({'temperature': 1000, 'start_fraction': 0.5, 'end_fraction': 0.4}, 'must be below end_fraction'),
        ({'temperature': 1000, 'end_fraction': 1.5}, 'end_fraction: expected a fraction'),
        ({'temperature': 1000, 'group': 1}, r'group 1 requested, the file has 1 group'),
        ({'temperature': 1000, 'n_ions': 0}, r'n_ions: expected a positive number, got 0'),
        ({'temperature': 1000, 'run_length_ps': -1.0}, r'run_length_ps: expected a positive number'),
    ],
)
def test_bad_values_are_refused(tmp_path, kwargs, match):
    folder = gpumd56_folder(tmp_path / 'run')
    with pytest.raises(ValueError, match=match):
        analyse_msd_out(folder / 'msd.out', **kwargs)


def test_missing_msd_out(tmp_path):
    with pytest.raises(ValueError, match=r'no msd.out in this folder'):
        analyse_msd_out(tmp_path, temperature=1000)


@pytest.mark.slow
@pytest.mark.reference
def test_a_folder_written_by_the_gpumd_standin(reference_dir, gpumd_standin, tmp_path):
    """End to end on a real (stand-in) GPUMD run: ions from the header, origins from run.in, volume from thermo.out."""
    from ase.io import read

    from aiida_sseff.io.gpumd import species_grouping, write_model_xyz

    atoms = read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index=0)
    write_model_xyz(atoms, tmp_path / 'model.xyz', groups=species_grouping(atoms.get_chemical_symbols()))
    (tmp_path / 'nep.txt').write_text((reference_dir / 'llzo' / 'nep25_zbl.txt').read_text())
    (tmp_path / 'run.in').write_text(make_run_in(temperature=1500, production_steps=200, time_step_fs=2.0,
                                                 velocity_seed=1, dump_thermo=20, msd=ComputeMsd(5, 10, group=(0, 0))))
    run = subprocess.run([str(gpumd_standin)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    result = analyse_msd_out(tmp_path, temperature=1500)
    # 200 // 5 = 40 samples, Nc = 10: 31 origins; 56 Li
    assert (result['n_ions'], result['n_time_origins']) == (56, 31)
    assert result['sources']['n_ions'].startswith('msd.out header')
    assert result['D_err_cm2_s'] is not None and result['D_err_cm2_s'] > 0
    assert result['volume_A3'] == pytest.approx(atoms.get_volume(), rel=1e-6)  # NVT: the model.xyz cell
    assert result['sources']['volume'].startswith('thermo.out')


# --------------------------------------------------------------------------------------------------- trajectory
def test_trajectory_uses_gpumds_unwrapped_position(tmp_path):
    """A dump_xyz with unwrapped_position: jumps longer than half the cell between frames, which unwrapping the
    wrapped positions frame to frame cannot recover, still give the walk's D."""
    from ase import Atoms
    from ase.io import write

    rng = np.random.default_rng(4)
    n_frames, n_li, cell = 200, 40, 8.0
    step = 0.5 * cell  # ± half a cell per frame and direction
    walk = np.cumsum(rng.choice([-step, step], size=(n_frames, n_li, 3)), axis=0)
    frames = []
    for positions in walk:
        atoms = Atoms(['Li'] * n_li, positions=positions, cell=np.eye(3) * cell, pbc=True)
        atoms.new_array('unwrapped_position', positions.copy())
        atoms.wrap()
        frames.append(atoms)
    write(tmp_path / 'dump.xyz', frames, format='extxyz')
    result = analyse_trajectory(tmp_path / 'dump.xyz', temperature=1000, dt_ps=0.1)
    # per direction <dx²> = step² per frame: D = step² / (2 dt) = 4² / 0.2 = 80 Å²/ps = 8e-3 cm²/s
    assert abs(result['D_cm2_s'] - 8e-3) < 4 * result['D_err_cm2_s']
    with pytest.raises(ValueError, match=r"no 'Na' atom"):
        analyse_trajectory(tmp_path / 'dump.xyz', temperature=1000, dt_ps=0.1, species='Na')
    with pytest.raises(ValueError, match=r'dt_ps: expected a positive number, got 0'):
        analyse_trajectory(tmp_path / 'dump.xyz', temperature=1000, dt_ps=0)


# ---------------------------------------------------------------------------------------------------- Arrhenius
def test_temperature_folders_and_their_errors(tmp_path):
    for name in ('700K', '1000.5K'):
        gpumd56_folder(tmp_path / name)
    (tmp_path / 'notes').mkdir()
    assert [t for t, _ in temperature_folders(tmp_path)] == [700.0, 1000.5]
    gpumd56_folder(tmp_path / 'hot')
    with pytest.raises(ValueError, match=r'hot: has msd.out but its name is not <T>K'):
        temperature_folders(tmp_path)
    (tmp_path / 'hot' / 'msd.out').unlink()
    (tmp_path / '1200K').mkdir()
    with pytest.raises(ValueError, match=r'1200K: a temperature folder without msd.out'):
        temperature_folders(tmp_path)
    with pytest.raises(ValueError, match='not a folder'):
        temperature_folders(tmp_path / 'missing')


def kinked_folders(directory, with_run_in):
    """Ea = 0.5 eV below 850 K, 0.2 eV above (a superionic-like transition), 3 % scatter of D."""
    rng = np.random.default_rng(3)
    for t in (600, 700, 800, 900, 1000, 1100, 1200):
        ln_d = np.log(1e-3) - 0.2 / (K_B_EV * t) if t >= 850 else \
            np.log(1e-3) - 0.2 / (K_B_EV * 850) - 0.5 / K_B_EV * (1 / t - 1 / 850)
        d_A2_ps = np.exp(ln_d + rng.normal(0, 0.03)) * 1e4
        gpumd56_folder(directory / f'{t}K', d_A2_ps=d_A2_ps, write_run=with_run_in)


@pytest.mark.parametrize('with_run_in', [True, False])
def test_arrhenius_kink_is_reported_weighted_or_not(tmp_path, with_run_in):
    kinked_folders(tmp_path, with_run_in)
    result = arrhenius_from_folders(tmp_path)
    kink = result['kink']
    assert result['weighted'] is with_run_in  # errors need the origins: run.in
    assert kink['testable'] and kink['significant'] and kink['weighted'] is with_run_in
    assert kink['break_temperature_K'] in (800.0, 900.0)
    assert kink['Ea_low_T_eV'] == pytest.approx(0.5, abs=0.1) and kink['Ea_high_T_eV'] == pytest.approx(0.2, abs=0.1)
    if not with_run_in:
        assert 'homoscedastic' in kink['assumption'] and 'unweighted' in kink['message']


def test_arrhenius_straight_line_no_kink(tmp_path):
    # one Arrhenius line, Ea = 0.3 eV, with 3 % scatter; the unweighted test flags 2.25 % of such 5-point sets
    # (measured over seeds 0-1999 with alpha = 0.01: the best of 3 breaks makes it anti-conservative); seed 0 is not
    scatter = np.exp(np.random.default_rng(0).normal(0, 0.03, 5))
    for t, noise in zip((600, 750, 900, 1050, 1200), scatter, strict=True):
        gpumd56_folder(tmp_path / f'{t}K', d_A2_ps=1e-3 * np.exp(-0.3 / (K_B_EV * t)) * 1e4 * noise, write_run=False)
    result = arrhenius_from_folders(tmp_path)
    assert not result['weighted'] and result['Ea_eV'] == pytest.approx(0.3, abs=0.03)
    assert result['kink']['testable'] and not result['kink']['significant']
    with pytest.raises(ValueError, match='found 0 folder'):
        arrhenius_from_folders(tmp_path / '600K')
