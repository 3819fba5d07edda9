"""CP2K input writer, library reader and output reader; physics checks run the real CP2K (Debian ``cp2k``).

The forces are checked against central finite differences of CP2K's own energy, and the sign of the stress against
the energy of a uniformly strained cell: those are the tests that fail if a unit or a sign is wrong.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ase.spacegroup import crystal

from aiida_sseff.analysis.geometry import closest_pair
from aiida_sseff.io import cp2k

CP2K = shutil.which('cp2k.psmp') or shutil.which('cp2k.ssmp') or shutil.which('cp2k')

try:
    DATA_DIR = cp2k.find_data_dir()
except cp2k.Cp2kDataError:
    DATA_DIR = None

needs_data = pytest.mark.skipif(DATA_DIR is None, reason='CP2K data (Debian package cp2k-data) not installed: '
                                                          'run scripts/install-system-deps.sh')
needs_cp2k = pytest.mark.skipif(CP2K is None or DATA_DIR is None,
                                reason='cp2k not installed: run scripts/install-system-deps.sh')

# A cheap but real setting: SZV basis, 300 Ry; the checks compare CP2K with itself, not with experiment.
CHEAP = {'basis_set': 'SZV-MOLOPT-SR-GTH', 'cutoff_Ry': 300.0, 'rel_cutoff_Ry': 40.0,
         'scf': {'eps_scf': 1.0e-7}}


def li2o(a: float = 4.61):
    """Conventional antifluorite Li2O (12 atoms); a = 4.61 Å is the experimental lattice constant (4.611 Å)."""
    return crystal(['O', 'Li'], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=225, cellpar=[a, a, a, 90, 90, 90])


def run_cp2k(atoms, parameters, directory: Path, restart_from: Path | None = None) -> dict:
    """Write the inputs with :mod:`aiida_sseff.io.cp2k`, run CP2K, read its output.

    ``restart_from``: the directory of an earlier run of the same atoms (displaced or strained), whose converged
    wavefunction starts the SCF (GLOBAL%PROJECT-RESTART.wfn): measured on the rattled Li2O cell, 11 SCF steps instead
    of 18 and the same energy to 1e-12 eV, hence the same finite differences.
    """
    directory.mkdir(parents=True, exist_ok=True)
    parameters = cp2k.validate_parameters(parameters)
    kinds = cp2k.resolve_kinds(atoms.get_chemical_symbols(), basis_set=parameters['basis_set'])
    basis, potentials = cp2k.write_library_files(kinds)
    (directory / cp2k.BASIS_FILENAME).write_text(basis)
    (directory / cp2k.POTENTIAL_FILENAME).write_text(potentials)
    restart_file = None
    if restart_from is not None:
        restart_file = 'start.wfn'
        shutil.copyfile(restart_from / f'{cp2k.PROJECT}-RESTART.wfn', directory / restart_file)
    (directory / 'aiida.inp').write_text(cp2k.write_input(atoms, parameters, kinds, restart_file=restart_file))
    # one OpenMP thread per test process: the suite runs on as many processes as cores (pytest-xdist), and CP2K with
    # two threads in each of two processes on two cores only waits for the other (issue #14)
    env = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}
    subprocess.run([CP2K, '-i', 'aiida.inp', '-o', 'aiida.out'], cwd=directory, env=env, check=False,
                   capture_output=True, timeout=600)
    return cp2k.read_output(directory / 'aiida.out', n_atoms=len(atoms))


# --- pure functions ---------------------------------------------------------------------------------------------------
def test_kpoint_mesh_follows_kspacing_convention():
    atoms = li2o()
    # |b| = 2π / 4.61 Å = 1.3630 Å⁻¹ (hand computed): 1.3630 / 0.25 = 5.45 → 6; / 0.5 = 2.73 → 3; / 2 → 1
    assert cp2k.kpoint_mesh(atoms.cell, 0.25) == (6, 6, 6)
    assert cp2k.kpoint_mesh(atoms.cell, 0.5) == (3, 3, 3)
    assert cp2k.kpoint_mesh(atoms.cell, 2.0) == (1, 1, 1)
    assert cp2k.kpoint_mesh(atoms.cell, None) == (1, 1, 1)
    # a non-cubic cell: each direction from its own reciprocal vector
    cell = np.diag([4.0, 8.0, 16.0])
    assert cp2k.kpoint_mesh(cell, 0.3) == tuple(math.ceil(2 * np.pi / L / 0.3) for L in (4.0, 8.0, 16.0))
    for bad in (0.0, -0.1):
        with pytest.raises(ValueError, match='kpoints_spacing must be > 0'):
            cp2k.kpoint_mesh(atoms.cell, bad)


@pytest.mark.parametrize('parameters, message', [
    ({'kpoints_spacing': 0.0}, 'kpoints_spacing must be > 0'),
    ({'kpoints_spacing': -0.2}, 'kpoints_spacing must be > 0'),
    ({'cutoff_Ry': 0}, 'cutoff_Ry must be > 0'),
    ({'cutof_Ry': 400}, 'unknown CP2K parameter'),
    ({'scf': {'solver': 'magic'}}, 'solver `magic` unknown'),
    ({'scf': {'solver': 'ot'}, 'kpoints_spacing': 0.3}, 'works at Γ only'),
    ({'scf': {'mixing_alpha': 1.5}}, 'mixing_alpha must be in'),
    ({'scf': {'max_scf': 0}}, 'max_scf ≥ 1'),
])
def test_bad_parameters_refused(parameters, message):
    with pytest.raises(ValueError, match=message):
        cp2k.validate_parameters(parameters)


def test_closest_pair_minimum_image():
    atoms = li2o()
    _, _, distance = closest_pair(atoms)
    assert distance == pytest.approx(4.61 * math.sqrt(3) / 4, rel=1e-9)  # Li–O bond of antifluorite: a·√3/4
    atoms.positions[0] = atoms.positions[4] + [0.3, 0.0, 0.0]
    first, second, distance = closest_pair(atoms)
    assert {first, second} == {0, 4} and distance == pytest.approx(0.3)


@needs_data
def test_library_entries_match_valence():
    kinds = cp2k.resolve_kinds(['Li', 'O', 'La', 'Zr', 'Ge', 'S'])
    # every basis set has the valence of its pseudopotential (GTH-PBE-q3 for Li, q11 for La found in BASIS_MOLOPT_UCL)
    for element, entry in kinds.items():
        assert entry['basis_set'].valence == entry['potential'].valence, element
    assert kinds['Li']['potential'].names[0] == 'GTH-PBE-q3'
    assert kinds['La']['basis_set'].names == ('DZVP-MOLOPT-SR-GTH', 'DZVP-MOLOPT-SR-GTH-q11')
    basis, potentials = cp2k.write_library_files(kinds)
    assert basis.count('DZVP-MOLOPT-SR-GTH-q') == 6 and potentials.count('GTH-PBE-q') == 6


@needs_data
def test_missing_basis_or_potential_names_the_element():
    # TZV2P-MOLOPT-GTH exists in BASIS_MOLOPT for O but not for Li
    with pytest.raises(cp2k.Cp2kDataError, match=r'element\(s\) Li: no basis set `TZV2P-MOLOPT-GTH`') as info:
        cp2k.resolve_kinds(['Li', 'O'], basis_set='TZV2P-MOLOPT-GTH')
    assert 'O:' not in str(info.value)
    # GTH_POTENTIALS has U only as GTH-PBE-q14, without the GTH-PBE alias
    with pytest.raises(cp2k.Cp2kDataError, match=r'U: no pseudopotential `GTH-PBE`.*GTH-PBE-q14'):
        cp2k.resolve_kinds(['U', 'O'])
    with pytest.raises(cp2k.Cp2kDataError, match='no CP2K data directory'):
        cp2k.find_data_dir('/nonexistent')


@needs_data
def test_write_input_gamma_and_mesh():
    atoms = li2o()
    kinds = cp2k.resolve_kinds(['Li', 'O'])
    gamma = cp2k.write_input(atoms, {}, kinds)
    assert '&KPOINTS' not in gamma and 'RUN_TYPE ENERGY_FORCE' in gamma and 'STRESS_TENSOR ANALYTICAL' in gamma
    assert gamma.count('\n      Li ') == 8 and gamma.count('\n      O ') == 4
    assert 'BASIS_SET DZVP-MOLOPT-SR-GTH' in gamma and 'POTENTIAL GTH-PBE-q3' in gamma
    mesh = cp2k.write_input(atoms, {'kpoints_spacing': 0.5}, kinds, walltime_s=100, restart_file='parent-RESTART.kp')
    assert 'SCHEME MONKHORST-PACK 3 3 3' in mesh and 'WALLTIME 100' in mesh
    assert 'SCF_GUESS RESTART' in mesh and 'WFN_RESTART_FILE_NAME parent-RESTART.kp' in mesh
    with pytest.raises(cp2k.Cp2kDataError, match='Li'):
        cp2k.write_input(atoms, {}, {'O': kinds['O']})


def test_read_output_rejects_truncated_text():
    with pytest.raises(ValueError, match='no `ENERGY'):
        cp2k.read_output(' CP2K| version string: CP2K version 2023.1\n SCF WAVEFUNCTION OPTIMIZATION\n')
    text = (' ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]:   -1.0\n\n ATOMIC FORCES in [a.u.]\n\n'
            ' # Atom   Kind   Element          X              Y              Z\n'
            '      1      1      Li          0.1     0.0     0.0\n')
    with pytest.raises(ValueError, match='truncated'):
        cp2k.read_output(text)


# --- real CP2K runs ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def rattled_run(tmp_path_factory):
    if CP2K is None or DATA_DIR is None:
        pytest.skip('cp2k not installed: run scripts/install-system-deps.sh')
    atoms = li2o()
    atoms.rattle(0.05, seed=3)
    directory = tmp_path_factory.mktemp('cp2k')
    return atoms, directory, run_cp2k(atoms, CHEAP, directory / 'base')


@needs_cp2k
def test_real_output_units_and_flags(rattled_run):
    atoms, _, result = rattled_run
    assert result['finished'] and result['scf_converged'] and not result['walltime_exceeded']
    assert result['cp2k_version'].startswith('CP2K version')
    # (the sum of the forces is not zero in GPW: the real-space grid breaks translation invariance; 0.2 eV/Å here)
    assert result['symbols'] == atoms.get_chemical_symbols()
    # Energy in eV: GTH valence-only total energies of the free atoms are about -7.3 Ha (Li, 3 e⁻) and -15.8 Ha
    # (O, 6 e⁻), so a Li2O formula unit is about -30.9 Ha = -842 eV; measured here: -839 eV (Γ only, SZV).
    # An energy left in Hartree would give -31.
    assert -870 < result['energy'] / 4 < -810
    assert result['stress'].shape == (3, 3)
    np.testing.assert_allclose(result['stress'], result['stress'].T, atol=1e-6)


@needs_cp2k
@pytest.mark.slow
def test_forces_and_stress_against_finite_differences(rattled_run):
    """F = -dE/dx by central differences (h = 0.01 Å); trace(σ)·V = dE/dε for a uniform strain ε (ASE sign)."""
    atoms, directory, base = rattled_run
    h = 0.01
    atom, axis = 5, 0
    energies = []
    for sign in (1, -1):
        displaced = atoms.copy()
        displaced.positions[atom, axis] += sign * h
        energies.append(run_cp2k(displaced, CHEAP, directory / f'disp{sign:+d}', directory / 'base')['energy'])
    finite_difference = -(energies[0] - energies[1]) / (2 * h)
    # measured on this cell (seed 3, Γ, SZV, 300 Ry): 0.4192 (FD) vs 0.4140 eV/Å (analytical), 1.3 % apart
    assert base['forces'][atom, axis] == pytest.approx(finite_difference, rel=0.03, abs=5e-3)
    assert abs(base['forces'][atom, axis]) > 0.1  # the rattle made the component non-trivial

    epsilon = 0.005
    energies = []
    for sign in (1, -1):
        strained = atoms.copy()
        strained.set_cell(atoms.cell * (1 + sign * epsilon), scale_atoms=True)
        energies.append(run_cp2k(strained, CHEAP, directory / f'strain{sign:+d}', directory / 'base')['energy'])
    # E(ε) for the strain (1+ε)·I: dE/dε = V·trace(σ) with σ in the ASE sign (positive = tensile)
    trace_fd = (energies[0] - energies[1]) / (2 * epsilon) / atoms.get_volume()
    trace = np.trace(base['stress'])
    assert np.sign(trace) == np.sign(trace_fd) and abs(trace_fd) > 0.05  # compressed cell: both negative
    # measured: -0.408 (FD) vs -0.432 eV/Å³ (analytical), 6 % apart at 300 Ry: GPW stress converges slowly with
    # the cutoff. A flipped sign would put them 0.84 eV/Å³ apart.
    assert trace == pytest.approx(trace_fd, rel=0.15)
