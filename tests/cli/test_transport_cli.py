"""``aiida-sseff analyze msd|arrhenius`` on real and synthetic files, ``show|plot diffusion`` on a stored result."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from aiida_sseff.cli import cmd_root

K_B = 8.617333262e-5  # eV/K


def invoke(args):
    result = CliRunner().invoke(cmd_root, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def refused(args) -> str:
    result = CliRunner().invoke(cmd_root, args)
    assert result.exit_code != 0, result.output
    return result.output


def write_msd_out(path: Path, d_cm2_s: float, n_rows: int = 500, dt_ps: float = 0.1, plateau: float = 0.4):
    """A header-less single-group msd.out (GPUMD ≤ 5.5 layout, 7 columns) whose MSD is exactly linear per direction,
    MSD_a = 2 D t + plateau/3, with the SDC columns = D (Å²/ps)."""
    d = d_cm2_s * 1e4  # Å²/ps
    t = np.arange(n_rows) * dt_ps
    msd = np.where(t[:, None] > 0, 2 * d * t[:, None] + plateau / 3, 0.0) * np.ones((1, 3))
    sdc = np.full((n_rows, 3), d)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.column_stack([t, msd, sdc]), fmt='%.8g')


# ------------------------------------------------------------------------------------------------ analyze msd
@pytest.mark.reference
def test_analyze_msd_real_file(llzo_md_dir, tmp_path):
    """The tutorial's numbers (shared/reference/llzo/gpumd_md_1000K/README.md): D_total 9.667e-6 cm²/s, D_x/y/z
    9.627/9.680/9.693e-6; σ 448.0 mS/cm with V = 143800.502 Å³ (the tutorial's mean volume) and 3584 Li."""
    text = invoke(['analyze', 'msd', str(llzo_md_dir / 'msd.out'), '--temperature', '999.96', '--volume', '143800.502'])
    assert 'D_total = 9.667e-06' in text and 'D_x     = 9.627e-06' in text
    plot = tmp_path / 'msd.png'
    data = json.loads(invoke(['analyze', 'msd', str(llzo_md_dir / 'msd.out'), '-T', '999.96', '--volume', '143800.502',
                              '--json', '--plot', str(plot)]))
    assert data['D_cm2_s'] == pytest.approx(9.667e-6, rel=0.01)
    assert data['n_ions'] == 3584 and data['run_length_ps'] == pytest.approx(1000.0)  # from model.xyz, run.in
    # run.in: 1,000,000 steps // 100 = 10,000 samples, Nc = 1000: 9001 origins (GPUMD msd.cu), said in the output
    assert data['n_time_origins'] == 9001 and data['sources']['n_ions'].startswith('model.xyz')
    assert 'n_time_origins = 9001: run.in line 8' in text and 'n_ions = 3584: model.xyz' in text
    assert 0 < data['D_err_cm2_s'] < 0.05 * data['D_cm2_s']
    assert 1e3 * data['sigma_S_cm'] == pytest.approx(448.0, rel=0.01)
    assert plot.stat().st_size > 10_000
    # group 3 (O) only vibrates: D two orders of magnitude below Li
    oxygen = json.loads(invoke(['analyze', 'msd', str(llzo_md_dir / 'msd.out'), '-T', '1000', '--group', '3', '--json']))
    assert abs(oxygen['D_cm2_s']) < 1e-2 * data['D_cm2_s']


def test_analyze_msd_bad_group(tmp_path):
    write_msd_out(tmp_path / 'msd.out', 1e-5)
    result = CliRunner().invoke(cmd_root, ['analyze', 'msd', str(tmp_path / 'msd.out'), '-T', '900', '--group', '2'])
    assert result.exit_code != 0 and 'group 2 requested, the file has 1 group' in result.output


def test_analyze_msd_without_statistics_says_why(tmp_path):
    write_msd_out(tmp_path / 'run' / 'msd.out', 1e-5)
    text = invoke(['analyze', 'msd', str(tmp_path / 'run'), '-T', '900'])  # the folder of msd.out
    assert 'D_total = 1.000e-05 cm²/s' in text
    assert 'errors: none: n_ions and n_time_origins unknown' in text
    assert 'n_time_origins: unknown: no run.in beside msd.out' in text


@pytest.mark.parametrize(
    ('options', 'message'),
    [
        (['-T', '-5'], "Invalid value for '--temperature' / '-T': -5.0 is not in the range x>0"),
        (['-T', '0'], "'--temperature' / '-T': 0.0 is not in the range x>0"),
        (['-T', '900', '--volume', '-1'], "'--volume': -1.0 is not in the range x>0"),
        (['-T', '900', '--n-ions', '0'], "'--n-ions': 0 is not in the range x>=1"),
        (['-T', '900', '--run-time', '0'], "'--run-time': 0.0 is not in the range x>0"),
        (['-T', '900', '--dt', '-0.1'], "'--dt': -0.1 is not in the range x>0"),
        (['-T', '900', '--group', '-1'], "'--group': -1 is not in the range x>=0"),
        (['-T', '900', '--start-fraction', '1.5'], "'--start-fraction': 1.5 is not in the range 0<=x<=1"),
        (['-T', '900', '--start-fraction', '0.5', '--end-fraction', '0.2'],
         'start_fraction 0.5 must be below end_fraction 0.2'),
    ],
)
def test_analyze_msd_bad_values(tmp_path, options, message):
    write_msd_out(tmp_path / 'msd.out', 1e-5)
    assert message in refused(['analyze', 'msd', str(tmp_path / 'msd.out'), *options])


def test_analyze_msd_bad_files(tmp_path):
    assert 'no msd.out in this folder' in refused(['analyze', 'msd', str(tmp_path), '-T', '900'])
    assert 'does not exist' in refused(['analyze', 'msd', str(tmp_path / 'none.out'), '-T', '900'])
    (tmp_path / 'notes.txt').write_text('hello\n')
    assert 'line 1: not a row of numbers' in refused(['analyze', 'msd', str(tmp_path / 'notes.txt'), '-T', '900'])


def random_walk_trajectory(d_A2_ps=0.5, dt_ps=0.05, n_frames=400, n_li=32, seed=0):
    """Li on a Gaussian random walk (D known) among 32 O that only vibrate, in a 12 Å cubic cell."""
    rng = np.random.default_rng(seed)
    li = np.cumsum(rng.normal(scale=np.sqrt(2 * d_A2_ps * dt_ps), size=(n_frames, n_li, 3)), axis=0)
    li += rng.uniform(0, 12, size=(1, n_li, 3))
    o = rng.uniform(0, 12, size=(1, 32, 3)) + rng.normal(scale=0.1, size=(n_frames, 32, 3))
    return np.concatenate([li, o], axis=1), [3] * n_li + [8] * 32


def test_analyze_msd_trajectories_npz_and_wrapped_extxyz(tmp_path):
    """Engine-format .npz (unwrapped) and a wrapped extxyz of the same walk: the same D, within its error of 0.5."""
    from ase import Atoms
    from ase.io import write

    positions, numbers = random_walk_trajectory()
    cell = np.eye(3) * 12.0
    np.savez(tmp_path / 'trajectory.npz', positions=positions.astype(np.float32), cells=np.repeat(cell[None], 400, 0),
             numbers=np.array(numbers), times_ps=np.arange(400) * 0.05)
    npz = json.loads(invoke(['analyze', 'msd', str(tmp_path / 'trajectory.npz'), '-T', '1000', '--json']))
    frames = []
    for frame in positions:
        atoms = Atoms(numbers=numbers, positions=frame, cell=cell, pbc=True)
        atoms.wrap()
        frames.append(atoms)
    write(tmp_path / 'traj.extxyz', frames)
    xyz = json.loads(invoke(['analyze', 'msd', str(tmp_path / 'traj.extxyz'), '-T', '1000', '--dt', '0.05',
                             '--json']))
    assert xyz['D_cm2_s'] == pytest.approx(npz['D_cm2_s'], rel=1e-4)  # unwrapping restores the walk
    assert abs(npz['D_cm2_s'] - 0.5e-4) < 3 * npz['D_err_cm2_s']
    assert npz['n_ions'] == 32 and npz['haven_ratio'] is not None
    result = CliRunner().invoke(cmd_root, ['analyze', 'msd', str(tmp_path / 'traj.extxyz'), '-T', '1000'])
    assert result.exit_code != 0 and '--dt' in result.output


# ------------------------------------------------------------------------------------------ analyze arrhenius
def test_analyze_arrhenius_synthetic_known_ea(tmp_path):
    """Four folders <T>K/msd.out with D = D0 exp(-Ea/kT), Ea = 0.25 eV, D0 = 2e-3 cm²/s, exactly linear MSD."""
    for t in (700, 800, 1000, 1200):
        write_msd_out(tmp_path / f'{t}K' / 'msd.out', 2e-3 * np.exp(-0.25 / (K_B * t)))
    (tmp_path / 'notes').mkdir()  # other folders are ignored
    data = json.loads(invoke(['analyze', 'arrhenius', str(tmp_path), '--n-ions', '100', '--run-time', '100',
                              '--volume', '2000', '--json']))
    assert [row['temperature_K'] for row in data['rows']] == [700, 800, 1000, 1200]
    assert data['weighted'] is True
    assert data['Ea_eV'] == pytest.approx(0.25, abs=1e-4)  # %.8g in the file: exact to ~1e-7 relative
    assert data['D0_cm2_s'] == pytest.approx(2e-3, rel=1e-3)
    assert data['D_extrapolated_cm2_s'] == pytest.approx(2e-3 * np.exp(-0.25 / (K_B * 300)), rel=1e-2)
    assert data['sigma_extrapolated_S_cm'] > 0 and data['Ea_err_eV'] > 0
    text = invoke(['analyze', 'arrhenius', str(tmp_path), '--plot', str(tmp_path / 'arr.png')])
    assert 'Ea = 0.2500' in text and 'unweighted' in text  # no ion count / run length: errors from the scatter
    assert 'kink test: ' in text and 'D errors: none: n_ions and n_time_origins unknown' in text
    assert (tmp_path / 'arr.png').stat().st_size > 10_000


def test_analyze_arrhenius_warns_of_a_kink_without_errors(tmp_path):
    """Ea = 0.5 eV below 850 K, 0.2 eV above, 3 % scatter, msd.out without ions or run length (no D errors): the
    unweighted kink test flags it, in the text (a WARNING) and in the JSON."""
    rng = np.random.default_rng(3)
    for t in (600, 700, 800, 900, 1000, 1100, 1200):
        ln_d = np.log(1e-3) - 0.2 / (K_B * t) if t >= 850 else \
            np.log(1e-3) - 0.2 / (K_B * 850) - 0.5 / K_B * (1 / t - 1 / 850)
        write_msd_out(tmp_path / f'{t}K' / 'msd.out', np.exp(ln_d + rng.normal(0, 0.03)))
    text = invoke(['analyze', 'arrhenius', str(tmp_path)])
    assert 'kink test: two regimes significantly better than one' in text and 'unweighted (no D errors)' in text
    assert 'WARNING: D(T) has two Arrhenius regimes (break near' in text
    data = json.loads(invoke(['analyze', 'arrhenius', str(tmp_path), '--json']))
    assert data['kink']['significant'] is True and data['kink']['weighted'] is False
    assert 'homoscedastic' in data['kink']['assumption']


def test_analyze_arrhenius_few_temperatures_warns(tmp_path):
    for t in (800, 1000, 1200):
        write_msd_out(tmp_path / f'{t}K' / 'msd.out', 2e-3 * np.exp(-0.25 / (K_B * t)))
    text = invoke(['analyze', 'arrhenius', str(tmp_path)])
    assert 'kink test: not testable: 3 temperatures' in text
    assert 'WARNING: with fewer than 4 temperatures' in text


def test_analyze_arrhenius_bad_folders(tmp_path):
    write_msd_out(tmp_path / '800K' / 'msd.out', 1e-6)
    assert 'found 1 folder(s) <T>K/msd.out; an Arrhenius fit needs at least 2' in refused(
        ['analyze', 'arrhenius', str(tmp_path)])
    write_msd_out(tmp_path / 'hot' / 'msd.out', 1e-5)
    assert 'has msd.out but its name is not <T>K' in refused(['analyze', 'arrhenius', str(tmp_path)])
    (tmp_path / 'hot' / 'msd.out').unlink()
    (tmp_path / '1000K').mkdir()
    assert '1000K: a temperature folder without msd.out' in refused(['analyze', 'arrhenius', str(tmp_path)])
    assert "'--extrapolate-to': -300.0 is not in the range x>0" in refused(
        ['analyze', 'arrhenius', str(tmp_path), '--extrapolate-to', '-300'])


@pytest.mark.reference
def test_analyze_arrhenius_with_the_real_1000K_run(llzo_md_dir, tmp_path):
    """The real 1000 K folder (linked, not copied) with synthetic 800 K and 1200 K folders made to lie on Ea = 0.30 eV
    through the tutorial's D(1000 K) = 9.667e-6 cm²/s: Ea comes back, and D(1000 K) is the tutorial's."""
    real = tmp_path / '1000K'
    real.mkdir()
    for name in ('msd.out', 'run.in', 'model.xyz'):
        (real / name).symlink_to(llzo_md_dir / name)
    for t in (800, 1200):
        write_msd_out(tmp_path / f'{t}K' / 'msd.out', 9.667e-6 * np.exp(-0.30 / K_B * (1 / t - 1 / 1000)))
    data = json.loads(invoke(['analyze', 'arrhenius', str(tmp_path), '--n-ions', '3584', '--run-time', '1000',
                              '--volume', '143800.502', '--json']))
    rows = {row['temperature_K']: row for row in data['rows']}
    assert rows[1000]['D_cm2_s'] == pytest.approx(9.667e-6, rel=0.01)
    assert data['Ea_eV'] == pytest.approx(0.30, abs=0.01)
    assert data['sigma_extrapolated_S_cm'] > 0


# ------------------------------------------------------------------------------------------ stored results
@pytest.fixture
def stored_diffusion(aiida_profile):
    """A WorkChainNode carrying the outputs of sseff.diffusion: results/diffusion from the real arrhenius_analysis
    calcfunction on synthetic per-run Dicts (Ea = 0.3 eV), and one MSD ArrayData per run."""
    from aiida import orm
    from aiida.common import LinkType

    from aiida_sseff.workflows.diffusion import arrhenius_analysis

    runs, msds = {}, {}
    for t in (900.0, 1000.0, 1100.0, 1200.0):
        d = 1e-3 * np.exp(-0.30 / (K_B * t))
        label = f'T{t:g}K_r0'
        runs[label] = orm.Dict({'temperature_K': t, 'temperature_mean_K': t, 'volume_A3': 2200.0, 'n_ions': 56,
                                'D_cm2_s': d, 'D_err_cm2_s': 0.1 * d, 'D_xyz_cm2_s': [d] * 3,
                                'D_xyz_err_cm2_s': [0.17 * d] * 3, 'D_collective_cm2_s': None, 'msd_end_A2': 5.0,
                                'diffusive': True, 'reason': ''})
        msd = orm.ArrayData()
        time = np.arange(100) * 0.1
        msd.set_array('time_ps', time)
        msd.set_array('msd_xyz', np.outer(2e4 * d * time, [1, 1, 1]))
        msd.base.attributes.set_many({'fit_t_start_ps': 1.0, 'fit_t_end_ps': 4.9, 'fit_slope_A2_ps': 6e4 * d,
                                      'fit_intercept_A2': 0.0})
        msds[label] = msd.store()
    out = arrhenius_analysis(orm.Dict({}), **runs)
    node = orm.WorkChainNode(process_type='aiida.workflows:sseff.diffusion').store()
    for label, data in [('results', out['results']), ('diffusion', out['diffusion'])] + \
            [(f'msd__{k}', v) for k, v in msds.items()]:
        data.base.links.add_incoming(node, link_type=LinkType.RETURN, link_label=label)
    return node


def test_show_and_plot_diffusion(stored_diffusion, tmp_path):
    text = invoke(['show', 'diffusion', str(stored_diffusion.pk)])
    assert 'Ea = 0.3000 ± 0.' in text
    assert text.count('yes') == 4 and 'kink test' in text and 'sigma(300 K)' in text
    assert 'WARNING' not in text  # one straight line (Ea = 0.3 eV at every T)
    from aiida_sseff.cli.cmd_transport import diffusion_table

    results = stored_diffusion.outputs.results.get_dict()
    results['kink'] = {'testable': True, 'significant': True, 'message': 'two regimes significantly better',
                       'break_temperature_K': 1000.0, 'ea_low_T_eV': 0.5, 'ea_high_T_eV': 0.2}
    assert diffusion_table(results)[-1].startswith('WARNING: D(T) has two Arrhenius regimes (break near 1000 K: '
                                                   'Ea = 0.500 eV below, 0.200 eV above)')
    path = tmp_path / 'diffusion.png'
    assert 'Wrote' in invoke(['plot', 'diffusion', str(stored_diffusion.pk), '-o', str(path)])
    assert path.stat().st_size > 10_000


def test_show_diffusion_refuses_a_node_without_results(aiida_profile):
    from aiida import orm

    node = orm.WorkChainNode(process_type='aiida.workflows:sseff.diffusion').store()
    result = CliRunner().invoke(cmd_root, ['show', 'diffusion', str(node.pk)])
    assert result.exit_code != 0 and 'has no diffusion results' in result.output
