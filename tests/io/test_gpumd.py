"""Tests of aiida_sseff.io.gpumd: msd.out (typed header) / thermo.out readers, msd.out writer, log speed, model.xyz
and run.in writers and readers."""

import numpy as np
import pytest

from aiida_sseff.io.gpumd import (
    ComputeMsd,
    MsdTimeOriginsError,
    TrajectoryDump,
    make_run_in,
    model_group_sizes,
    msd_run,
    parse_gpumd_version,
    read_model_xyz,
    read_msd,
    read_run_in,
    read_speed,
    read_thermo,
    species_grouping,
    write_model_xyz,
    write_msd,
    write_run_in,
)


# ------------------------------------------------------------------------------------------------------- msd.out
@pytest.mark.reference
def test_read_msd_real_file(llzo_md_dir):
    blocks = read_msd(llzo_md_dir / 'msd.out')
    assert len(blocks) == 1
    block = blocks[0]
    # compute_msd 100 1000 all_groups 0 with time_step 1 fs: 1000 rows, 0.1 ps apart; groups Li, La, Zr, O
    assert block.n_groups == 4
    assert block.time.shape == (1000,)
    assert block.time[0] == 0.0
    np.testing.assert_allclose(np.diff(block.time), 0.1, atol=1e-9)
    assert block.header == {}  # no '#' header: GPUMD <= 5.5
    assert not block.has_header
    assert (block.sample_interval, block.n_correlation, block.num_atoms_per_group, block.dt_output_ps,
            block.cell, block.all_groups, block.group) == (None,) * 7
    np.testing.assert_array_equal(block.msd[:, 0], 0.0)
    # last row of the file, Li (group 0) columns 2-4
    np.testing.assert_allclose(block.msd_xyz(0)[-1], [19.3502, 19.4583, 19.6791])
    # second row, O (group 3) SDC columns 23-25
    np.testing.assert_allclose(block.sdc[3, 1], [0.275359, 0.275449, 0.275465])
    # GPUMD writes sdc = (msd[k] - msd[k-1]) / (2 dt); both are printed with %g (6 significant digits), so the
    # check holds to the rounding of two MSD values (5e-6 relative each) divided by 2 dt, plus that of sdc
    deriv = np.diff(block.msd, axis=1) / (2 * 0.1)
    bound = 1e-5 * np.abs(block.msd[:, 1:]) / (2 * 0.1) + 5e-6 * np.abs(block.sdc[:, 1:]) + 1e-12
    assert np.all(np.abs(block.sdc[:, 1:] - deriv) <= bound)
    # Li diffuses, the framework only vibrates (plateau below 0.1 Å² per direction)
    assert block.msd[0, -1].min() > 10
    assert block.msd[1:, -1].max() < 0.1


def _msd_rows(n_rows, n_groups, dt, scale):
    t = np.arange(n_rows) * dt
    cols = [t]
    for g in range(n_groups):
        msd = np.outer(t, [1.0, 1.1, 1.2]) * scale * (g + 1)
        sdc = np.vstack([np.zeros((1, 3)), np.diff(msd, axis=0) / (2 * dt)])
        cols += [msd[:, 0], msd[:, 1], msd[:, 2], sdc[:, 0], sdc[:, 1], sdc[:, 2]]
    return np.column_stack(cols)


def _gpumd56_header(n_groups, dt, sample_interval=10, nc=5):
    # header as written by GPUMD's MSD::write (src/measure/msd.cu, development branch)
    cols = ' '.join(f'msdx_{g} msdy_{g} msdz_{g} sdcx_{g} sdcy_{g} sdcz_{g}' for g in range(n_groups))
    return '\n'.join([
        f'# compute_msd {sample_interval} {nc} all_groups 0',
        '# format_version 1',
        f'# num_atoms {4 * n_groups}',
        f'# num_groups {n_groups}',
        '# num_atoms_per_group ' + ' '.join(['4'] * n_groups),
        '# cell ' + ' '.join(['1.0000000000e+01', '0', '0', '0', '1.0000000000e+01', '0', '0', '0', '1.0e+01']),
        f'# dt_output {dt:.10e} ps',
        f'# columns time_ps {cols}',
    ]) + '\n'


def _rows_text(rows):
    return ''.join(' '.join(f'{v:g}' for v in row) + '\n' for row in rows)


def test_read_msd_headers_and_appended_blocks(tmp_path):
    first, second = _msd_rows(5, 2, 0.01, 1.0), _msd_rows(8, 2, 0.02, 3.0)
    path = tmp_path / 'msd.out'
    path.write_text(_gpumd56_header(2, 0.01) + _rows_text(first) + _gpumd56_header(2, 0.02, 20, 8)
                    + _rows_text(second))
    blocks = read_msd(path)
    assert [b.time.size for b in blocks] == [5, 8]
    assert [b.n_groups for b in blocks] == [2, 2]
    assert blocks[1].header['compute_msd'] == ['20', '8', 'all_groups', '0']
    assert blocks[1].header['dt_output'] == [f'{0.02:.10e}', 'ps']
    np.testing.assert_allclose(blocks[0].msd[1, :, 2], first[:, 9])
    np.testing.assert_allclose(blocks[1].sdc[0, :, 1], second[:, 5])
    np.testing.assert_allclose(blocks[1].time, second[:, 0])
    # the typed header fields
    assert (blocks[1].sample_interval, blocks[1].n_correlation, blocks[1].all_groups, blocks[1].group) == \
        (20, 8, 0, None)
    assert blocks[1].has_header and blocks[1].format_version == 1 and blocks[1].num_atoms == 8
    np.testing.assert_array_equal(blocks[1].num_atoms_per_group, [4, 4])
    assert blocks[1].dt_output_ps == pytest.approx(0.02)
    np.testing.assert_allclose(blocks[0].cell, 10.0 * np.eye(3))
    assert blocks[0].columns[:2] == ('time_ps', 'msdx_0')


# one block as GPUMD's MSD::write prints it (src/measure/msd.cu): header, then `%g` time and `% g %g %g %g %g %g`
GPUMD_MSD_BLOCK = """\
# compute_msd 10 3 group 0 1 save_every 500
# format_version 1
# num_atoms 64
# num_groups 1
# num_atoms_per_group 64
# cell 1.2000000000e+01 0.0000000000e+00 0.0000000000e+00 1.0000000000e+00 1.1000000000e+01 0.0000000000e+00 \
0.0000000000e+00 0.0000000000e+00 1.0500000000e+01
# dt_output 2.0000000000e-02 ps
# columns time_ps msdx msdy msdz sdcx sdcy sdcz
0 0 0 0 0 0 0
0.02 0.125 0.25 0.5 3.125 6.25 12.5
0.04 0.375 0.5 1.25 6.25 6.25 18.75
"""


def test_write_msd_is_gpumds_format_and_reads_back(tmp_path):
    block = read_msd_text(tmp_path, GPUMD_MSD_BLOCK)
    assert block.group == (0, 1) and block.all_groups is None and block.save_every == 500
    assert block.num_atoms == 64 and block.n_correlation == 3 and block.sample_interval == 10
    np.testing.assert_allclose(block.cell, [[12, 0, 0], [1, 11, 0], [0, 0, 10.5]])
    path = tmp_path / 'written.out'
    write_msd(path, block.time, block.msd, block.sdc, compute_msd=ComputeMsd(10, 3, group=(0, 1), save_every=500),
              num_atoms=64, num_atoms_per_group=[64], cell=block.cell, dt_output_ps=0.02)
    assert path.read_text() == GPUMD_MSD_BLOCK
    # appended per run, as GPUMD does; all_groups names its columns per group
    msd = np.stack([block.msd[0], 2 * block.msd[0]])
    write_msd(path, block.time, msd, msd, compute_msd=ComputeMsd(10, 3, all_groups=0), num_atoms=96,
              num_atoms_per_group=[64, 32], cell=block.cell, dt_output_ps=0.02)
    blocks = read_msd(path)
    assert len(blocks) == 2 and blocks[1].all_groups == 0 and blocks[1].columns[-1] == 'sdcz_1'
    np.testing.assert_array_equal(blocks[1].num_atoms_per_group, [64, 32])
    np.testing.assert_allclose(blocks[1].msd[1], 2 * block.msd[0])


def read_msd_text(tmp_path, text):
    path = tmp_path / 'msd.out'
    path.write_text(text)
    (block,) = read_msd(path)
    return block


@pytest.mark.parametrize(
    ('old', 'new', 'match'),
    [
        ('# compute_msd 10 3 group', '# compute_msd 10 4 group', 'header says Nc = 4, the block has 3 rows'),
        ('# num_atoms_per_group 64', '# num_atoms_per_group 64 3', 'lists 2 groups, the data have 1'),
        ('# dt_output 2.0000000000e-02', '# dt_output 2.0000000000e-03', r'time column steps by 0\.02 ps'),
        ('# cell 1.2000000000e+01 ', '# cell ', 'must hold 9 numbers'),
        ('save_every 500', 'every 500', "unexpected 'every'"),
    ],
)
def test_read_msd_header_inconsistent(tmp_path, old, new, match):
    with pytest.raises(ValueError, match=match):
        read_msd_text(tmp_path, GPUMD_MSD_BLOCK.replace(old, new))


def test_read_msd_headerless_appended_single_group(tmp_path):
    # GPUMD <= 5.5 appends without any marker: the time column restarting at 0 starts the next block
    first, second = _msd_rows(6, 1, 0.1, 1.0), _msd_rows(4, 1, 0.1, 2.0)
    path = tmp_path / 'msd.out'
    path.write_text(_rows_text(first) + _rows_text(second))
    blocks = read_msd(path)
    assert len(blocks) == 2
    assert blocks[0].msd.shape == (1, 6, 3)
    assert blocks[1].first_line == 7
    np.testing.assert_allclose(blocks[1].msd[0], second[:, 1:4])


@pytest.mark.parametrize(
    ('text', 'match'),
    [
        ('0 0 0 0 0 0 0 0\n0.1 1 1 1 1 1 1 1\n', r'msd\.out: line 1: 8 columns; expected 1 \+ 6'),
        ('0 0 0 0 0 0 0\n0.1 1 1 1 1 1 1 1 1 1 1 1 1\n', 'line 2: 13 columns, the rows above have 7'),
        ('# columns time_ps msdx msdy msdz sdcx sdcy sdcz\n0 0 0 0 0 0 0 0 0 0 0 0 0\n',
         'declares 7 columns, the data have 13'),
        ('# num_groups 3\n0 0 0 0 0 0 0\n', 'declares 3 groups, the data have 1'),
        ('# format_version 1\n', 'no data rows'),
        ('0 0 0 0 0 0 0\n0.1 a 1 1 1 1 1\n', 'line 2: not a row of numbers'),
    ],
)
def test_read_msd_errors(tmp_path, text, match):
    path = tmp_path / 'msd.out'
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_msd(path)


# ---------------------------------------------------------------------------------------------------- thermo.out
@pytest.mark.parametrize('ncols', [9, 12, 15, 18])
def test_read_thermo_headerless_column_counts(tmp_path, ncols):
    rng = np.random.default_rng(ncols)
    n = 7
    data = rng.uniform(1, 2, size=(n, ncols))
    data[:, 0] = np.linspace(990, 1010, n)
    ncell = ncols - (6 if ncols in (9, 15) else 9)
    cell = np.eye(3) * 12.0 if ncell == 3 else np.array([[12.0, 0, 0], [1.0, 11.0, 0], [0.5, 0.3, 10.0]])
    data[:, -ncell:] = np.diag(cell) if ncell == 3 else cell.ravel()
    path = tmp_path / 'thermo.out'
    np.savetxt(path, data)
    df = read_thermo(path)
    assert len(df) == n
    np.testing.assert_allclose(df['temperature'], data[:, 0])
    np.testing.assert_allclose(df['potential_energy'], data[:, 2])
    np.testing.assert_allclose(df['volume'], abs(np.linalg.det(cell)))
    assert (df['block'] == 0).all()


def test_read_thermo_header_blocks(tmp_path):
    # header as written by GPUMD's dump_thermo (format_version 1)
    def header(interval):
        return (f'# dump_thermo {interval}\n# format_version 1\n# num_atoms 192\n'
                f'# dt_output {interval:.10e} fs\n'
                '# columns T KE PE sxx syy szz syz sxz sxy ax ay az bx by bz cx cy cz\n')

    row = '1000 24.8 -1500 0.1 0.2 0.3 0 0 0 12 0 0 0 12 0 0 0 12\n'
    path = tmp_path / 'thermo.out'
    path.write_text(header(100) + row * 3 + header(1000) + row * 2)
    df = read_thermo(path)
    assert df['block'].tolist() == [0, 0, 0, 1, 1]
    # calorine lays the blocks end to end: 3 × 0.1 ps, then 1 ps steps
    np.testing.assert_allclose(df['time'], [0.1, 0.2, 0.3, 1.3, 2.3])
    np.testing.assert_allclose(df['volume'], 12.0**3)


def test_read_thermo_bad_column_count(tmp_path):
    path = tmp_path / 'thermo.out'
    np.savetxt(path, np.ones((3, 10)))
    with pytest.raises(ValueError, match='10 data columns'):
        read_thermo(path)


# ---------------------------------------------------------------------------------------------------------- log
@pytest.mark.reference
def test_read_speed_real_log(llzo_md_dir):
    speeds = read_speed((llzo_md_dir / 'log').read_text())
    assert speeds == [6.68988e06]  # "Speed of this run = 6.68988e+06 atom*step/second." in the real log


def test_read_speed_several_runs():
    log = ('Speed of this run = 1.5e+07 atom*step/second.\nnoise\n'
           'Speed of this run = 2.25e6 atom*step/second.\n')
    assert read_speed(log) == [1.5e7, 2.25e6]
    assert read_speed('no speed here') == []


# ---------------------------------------------------------------------------------------------------- model.xyz
@pytest.mark.reference
def test_species_grouping_matches_real_model(llzo_md_dir):
    from ase.io import read

    atoms = read(llzo_md_dir / 'model.xyz')
    labels = species_grouping(atoms.get_chemical_symbols(), 'Li', order=['La', 'Zr', 'O'])
    # the tutorial grouped with `gpumdkit.sh -addgroup ... Li La Zr O`
    np.testing.assert_array_equal(labels, atoms.arrays['group'])


@pytest.mark.reference
def test_model_group_sizes_real_model(llzo_md_dir):
    # the real log: "3584 atoms in group 0. 1536 atoms in group 1. 1024 atoms in group 2. 6144 atoms in group 3."
    np.testing.assert_array_equal(model_group_sizes(llzo_md_dir / 'model.xyz'), [3584, 1536, 1024, 6144])
    with pytest.raises(ValueError, match='grouping method 1 requested, the file has 1'):
        model_group_sizes(llzo_md_dir / 'model.xyz', grouping_method=1)


def test_read_model_xyz_groups_and_velocities(tmp_path):
    from ase import Atoms

    atoms = Atoms('Li2O2', positions=np.random.default_rng(2).uniform(0, 4, (4, 3)), cell=[4, 4, 4], pbc=True)
    atoms.set_velocities(np.full((4, 3), 0.01))
    write_model_xyz(atoms, tmp_path / 'model.xyz', groups=[np.array([0, 0, 1, 1]), np.array([1, 0, 0, 0])])
    back, groups = read_model_xyz(tmp_path / 'model.xyz')
    assert groups.shape == (4, 2)
    np.testing.assert_allclose(back.get_velocities(), atoms.get_velocities(), rtol=1e-6)
    np.testing.assert_array_equal(model_group_sizes(tmp_path / 'model.xyz', 1), [3, 1])
    write_model_xyz(atoms, tmp_path / 'plain.xyz')
    assert read_model_xyz(tmp_path / 'plain.xyz')[1] is None and model_group_sizes(tmp_path / 'plain.xyz') is None
    (tmp_path / 'bad.xyz').write_text('two\n')
    with pytest.raises(ValueError, match='bad.xyz: not a GPUMD model.xyz'):
        read_model_xyz(tmp_path / 'bad.xyz')


def test_species_grouping_first_appearance_and_errors():
    np.testing.assert_array_equal(species_grouping(['O', 'Li', 'La', 'O', 'Li']), [1, 0, 2, 1, 0])
    with pytest.raises(ValueError, match="no 'Na' atom"):
        species_grouping(['Li', 'O'], 'Na')
    with pytest.raises(ValueError, match='lacks'):
        species_grouping(['Li', 'O', 'S'], order=['O'])


def test_write_model_xyz_roundtrip(tmp_path):
    from ase import Atoms
    from ase.io import read

    atoms = Atoms('Li2O2La', positions=np.random.default_rng(1).uniform(0, 5, (5, 3)), cell=[5, 6, 7], pbc=True)
    labels = species_grouping(atoms.get_chemical_symbols())
    path = tmp_path / 'model.xyz'
    write_model_xyz(atoms, path, groups=[labels, np.array([0, 1, 0, 1, 0])])
    header = path.read_text().splitlines()[1]
    assert 'group:I:2' in header and 'mass:R:1' in header
    back = read(path)
    np.testing.assert_array_equal(back.arrays['group'][:, 0], labels)
    np.testing.assert_allclose(back.positions, atoms.positions)
    with pytest.raises(ValueError, match='without gaps'):
        write_model_xyz(atoms, path, groups=np.array([0, 2, 0, 2, 0]))
    with pytest.raises(ValueError, match='one per atom'):
        write_model_xyz(atoms, path, groups=np.array([0, 1]))


# ------------------------------------------------------------------------------------------------------- run.in
def test_parse_gpumd_version():
    assert parse_gpumd_version('5.6') == (5, 6, 0)
    assert parse_gpumd_version('v4.9.1') == (4, 9, 1)
    assert parse_gpumd_version('dev') > parse_gpumd_version('5.6')
    with pytest.raises(ValueError, match='gpumd_version'):
        parse_gpumd_version('five')


RUN_PARAMS = dict(
    temperature=1000,
    production_steps=1_000_000,
    equilibration_steps=100_000,
    time_step_fs=1.0,
    ensemble='nvt_bdp',
    temperature_coupling=100,
    velocity_seed=7,
    dump_thermo=1000,
    msd=ComputeMsd(sample_interval=100, n_correlation=1000, all_groups=0, save_every=100_000),
    trajectory=TrajectoryDump(interval=10_000, filename='traj.xyz', group=(0, 0),
                              properties=('velocity', 'unwrapped_position', 'group')),
    fix=[(0, 3)],
)


def test_run_in_gpumd_5_6_line_by_line(tmp_path):
    text = write_run_in(tmp_path / 'run.in', gpumd_version='5.6', **RUN_PARAMS)
    assert (tmp_path / 'run.in').read_text() == text
    assert text.splitlines() == [
        'potential nep.txt',
        'velocity 1000 seed 7',
        'time_step 1',
        '',
        'ensemble nvt_bdp 1000 1000 100',
        'fix 0 3',
        'dump_thermo 1000',
        'run 100000',
        '',
        'ensemble nvt_bdp 1000 1000 100',
        'fix 0 3',
        'dump_thermo 1000',
        'compute_msd 100 1000 all_groups 0 save_every 100000',
        'dump_xyz 0 0 10000 traj.xyz velocity unwrapped_position group',
        'run 1000000',
    ]


def test_run_in_gpumd_dev_and_old_fix_line_by_line():
    params = dict(RUN_PARAMS, equilibration_steps=0, kspace='pppm',
                  model_header='nep4_zbl_charge1 4 Li La Zr O', ensemble='npt_ber',
                  pressure=(0, 0, 0, 100, 100, 100, 1000),
                  trajectory=TrajectoryDump(interval=5000, group=(0, 0), precision='double',
                                            properties=('force', 'group')))
    assert make_run_in(gpumd_version='dev', **params).splitlines() == [
        'potential nep.txt',
        'kspace pppm',
        'velocity 1000 seed 7',
        'time_step 1',
        '',
        'ensemble npt_ber 1000 1000 100 0 0 0 100 100 100 1000',
        'fix 0 3',
        'dump_thermo 1000',
        'compute_msd 100 1000 all_groups 0 save_every 100000',
        'dump_xyz 5000 dump.xyz group 0 0 precision double force group_labels',
        'run 1000000',
    ]
    old = make_run_in(gpumd_version='5.2', **dict(RUN_PARAMS, trajectory=TrajectoryDump(
        interval=1000, style='dump_exyz', velocity=True, force=True))).splitlines()
    assert old[5] == 'fix 3'  # before 5.3 `fix <gid>` (grouping method 0)
    assert old[-2] == 'dump_exyz 1000 1 1'


@pytest.mark.parametrize(('version', 'kspace', 'expected'), [
    ('5.6', None, 'kspace pppm'),  # GPUMD's default solver for a charge model, written out
    ('dev', 'ewald', 'kspace ewald'),
    ('4.5', None, 'kspace pppm'),
    ('4.4', None, None),  # no kspace keyword before 4.5 (run.cu aborts on it); Ewald is the only solver there
    ('4.4', 'ewald', None),
])
def test_run_in_charge_model_kspace(version, kspace, expected):
    """The kspace line of a charge model (qNEP) by GPUMD version; a plain model never gets one."""
    lines = make_run_in(temperature=600, production_steps=1000, kspace=kspace, gpumd_version=version,
                        model_header='nep4_zbl_charge2 4 Li La Zr O').splitlines()
    assert lines[1] == (expected or 'velocity 600')
    plain = make_run_in(temperature=600, production_steps=1000, model_header='nep4_zbl 4 Li La Zr O').splitlines()
    assert not any(line.startswith('kspace') for line in plain)


def test_run_in_npt_mttk():
    lines = make_run_in(temperature=1000, production_steps=10_000, ensemble='npt_mttk', pressure=(0, 0),
                        pressure_direction='aniso', pressure_coupling=1000, dump_thermo=None).splitlines()
    assert lines == ['potential nep.txt', 'velocity 1000', 'time_step 1', '',
                     'ensemble npt_mttk temp 1000 1000 aniso 0 0 tperiod 100 pperiod 1000', 'run 10000']


@pytest.mark.parametrize(
    ('changes', 'match'),
    [
        ({'msd': ComputeMsd(100, 20_000)}, r'Nc·sample_interval = 20000·100 = 2000000 exceeds the 1000000'),
        ({'msd': ComputeMsd(100, 1000, group=(0, 0), all_groups=0)}, 'cannot be used together'),
        ({'msd': ComputeMsd(0, 1000)}, 'sample_interval: expected a positive integer'),
        ({'gpumd_version': 'dev', 'trajectory': TrajectoryDump(1000, style='dump_exyz')}, 'removed after GPUMD 5.6'),
        ({'trajectory': TrajectoryDump(1000, precision='double')}, 'precision needs GPUMD > 5.6'),
        ({'trajectory': TrajectoryDump(1000, properties=('spin',))}, r"unknown properties \['spin'\]"),
        ({'gpumd_version': '5.2', 'fix': [(1, 0)]}, 'needs GPUMD >= 5.3'),
        ({'kspace': 'ewald', 'model_header': 'nep4_zbl 4 Li La Zr O'}, 'charge-aware'),
        ({'kspace': 'p3m'}, "expected 'ewald' or 'pppm'"),
        # GPUMD's kspace takes the method only (src/force/nep_charge.cu exits on a second parameter)
        ({'kspace': 'pppm', 'kspace_spacing': 1.5, 'model_header': 'nep4_charge1 4 Li La Zr O'}, 'one parameter'),
        ({'kspace': 'pppm', 'gpumd_version': '4.4', 'model_header': 'nep4_charge1 4 Li La Zr O'},
         'kspace pppm needs GPUMD >= 4.5'),
        ({'gpumd_version': '4.0', 'model_header': 'nep4_charge1 4 Li La Zr O'}, 'only from v4.1 on'),
        ({'ensemble': 'npt_ber'}, 'pressure must be 3 numbers'),
        ({'ensemble': 'nvt_xyz'}, "ensemble 'nvt_xyz' not supported"),
        ({'production_steps': 0}, 'production_steps: expected a positive integer'),
        ({'temperature': -5}, 'temperature: expected a positive number'),
    ],
)
def test_run_in_validation_errors(changes, match):
    with pytest.raises(ValueError, match=match):
        make_run_in(**dict(RUN_PARAMS, **changes))


def test_run_in_old_msd_limit():
    # GPUMD < 5.0 only required Nc <= steps, but Nc > steps // interval leaves no time origin (msd.cu): refused too
    params = dict(RUN_PARAMS, msd=ComputeMsd(100, 20_000), gpumd_version='4.9.1', trajectory=None)
    with pytest.raises(MsdTimeOriginsError, match='leaves 0 time origin'):
        make_run_in(**params)
    with pytest.raises(ValueError, match=r'Nc = 2000000 exceeds'):
        make_run_in(**dict(params, msd=ComputeMsd(1, 2_000_000)))


def test_run_in_refuses_too_few_time_origins():
    # 1,000,000 steps / 100 = 10,000 samples; Nc = 10,000 leaves 1 origin (10,000 - 10,000 + 1), Nc = 5,000 5,001
    params = dict(RUN_PARAMS, msd=ComputeMsd(100, 10_000, all_groups=0))
    assert 'compute_msd 100 10000 all_groups 0' in make_run_in(**params)  # GPUMD's own limit: 1 origin
    with pytest.raises(MsdTimeOriginsError,
                       match=r'compute_msd 100 10000: 1000000 production steps give 10000 samples, and Nc = 10000 '
                             r'leaves 1 time origin\(s\).*at least 1000 are required: use Nc <= 9001'):
        make_run_in(min_time_origins=1000, **params)
    assert 'compute_msd 100 5000' in make_run_in(min_time_origins=5001, **dict(params, msd=ComputeMsd(100, 5000)))
    with pytest.raises(MsdTimeOriginsError, match='leaves 5001 time origin'):
        make_run_in(min_time_origins=5002, **dict(params, msd=ComputeMsd(100, 5000)))
    assert ComputeMsd(100, 5000).check(1_000_000, min_time_origins=10) == 5001
    with pytest.raises(ValueError, match='min_time_origins: expected a positive integer'):
        make_run_in(min_time_origins=0, **params)


def test_run_in_dump_restart_and_continuation():
    lines = make_run_in(**dict(RUN_PARAMS, trajectory=None, dump_restart=50_000)).splitlines()
    assert lines.count('dump_restart 50000') == 2  # in both runs: dump_* apply to the next run only
    assert lines.index('dump_restart 50000') < lines.index('run 100000')
    cont = make_run_in(**dict(RUN_PARAMS, trajectory=None, equilibration_steps=0, initial_velocities=False,
                              dump_restart=50_000)).splitlines()
    assert not any(line.startswith('velocity') for line in cont)  # keep model.xyz's (restart.xyz's) velocities
    assert cont[-3:] == ['dump_restart 50000', 'compute_msd 100 1000 all_groups 0 save_every 100000', 'run 1000000']
    with pytest.raises(ValueError, match='dump_restart: expected a positive integer'):
        make_run_in(**dict(RUN_PARAMS, dump_restart=0))


# -------------------------------------------------------------------------------------------------- run.in reader
@pytest.mark.reference
def test_read_run_in_real_file(llzo_md_dir):
    (run,) = read_run_in(llzo_md_dir / 'run.in')
    # potential ../nep.txt / velocity 1000 / ensemble npt_mttk temp 1000 1000 aniso 0 0 /
    # compute_msd 100 1000 all_groups 0 save_every 100000 / dump_thermo 100 / dump_restart 1000000 / run 1000000
    assert run.steps == 1_000_000 and run.time_step_fs == 1.0  # no time_step line: GPUMD's default 1 fs
    assert run.compute_msd == ComputeMsd(100, 1000, all_groups=0, save_every=100_000)
    assert run.ensemble == ('npt_mttk', 'temp', '1000', '1000', 'aniso', '0', '0')
    assert (run.velocity, run.dump_thermo, run.dump_restart, run.potentials) == \
        ((1000.0, None), 100, 1_000_000, ('../nep.txt',))
    assert run.n_samples == 10_000 and run.n_time_origins == 9001 and run.dt_sample_ps == pytest.approx(0.1)
    assert run.duration_ps == 1000.0
    assert msd_run([run]) is run


def test_read_run_in_reads_back_make_run_in(tmp_path):
    text = write_run_in(tmp_path / 'run.in', **dict(RUN_PARAMS, time_step_fs=2.0, dump_restart=1000))
    equilibration, production = read_run_in(tmp_path / 'run.in')
    assert read_run_in(text) == [equilibration, production]  # a path or the text
    assert (equilibration.steps, production.steps) == (100_000, 1_000_000)
    assert equilibration.compute_msd is None and equilibration.dumps == ()
    assert production.compute_msd == RUN_PARAMS['msd'] and production.fix == ((0, 3),)
    assert production.velocity == (1000.0, 7) and production.time_step_fs == 2.0 and production.dump_restart == 1000
    assert production.dumps == (TrajectoryDump(10_000, 'traj.xyz', group=(0, 0),
                                               properties=('velocity', 'unwrapped_position', 'group')),)
    assert production.n_time_origins == 9001 and production.dt_sample_ps == pytest.approx(0.2)
    assert msd_run([equilibration, production]) is production
    dev = read_run_in(make_run_in(gpumd_version='dev', **dict(RUN_PARAMS, trajectory=TrajectoryDump(
        5000, group=(0, 0), precision='double', properties=('unwrapped_position',)))))
    assert dev[1].dumps == (TrajectoryDump(5000, 'dump.xyz', group=(0, 0), precision='double',
                                           properties=('unwrapped_position',)),)


@pytest.mark.parametrize(
    ('text', 'match'),
    [
        ('time_step fast\nrun 10\n', r'line 1: `time_step fast`: time_step needs a number'),
        ('# comment\n\ncompute_msd 10\nrun 10\n', r'line 3: `compute_msd 10`: Nc .* must be an integer'),
        ('compute_msd 10 5 groups 0 0\nrun 10\n', "unrecognised argument 'groups'"),
        ('compute_msd 10 5 group 0 0 all_groups 0\nrun 10\n', 'cannot be used together'),
        ('run -5\n', r'line 1: `run -5`: expected run <positive number of steps>'),
        ('dump_restart 0\nrun 5\n', 'the interval must be positive'),
    ],
)
def test_read_run_in_errors(text, match):
    with pytest.raises(ValueError, match=match):
        read_run_in(text)
    with pytest.raises(ValueError, match='no run has compute_msd'):
        msd_run(read_run_in('run 10\n'))
