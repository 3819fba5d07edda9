"""The classical baseline: LAMMPS (aiida-lammps ``lammps.raw``) with the Du/Teter Buckingham + PPPM Coulomb potential.

The refusals run without LAMMPS; the MD tests need Debian's ``lmp`` (scripts/install-system-deps.sh) and the real
LLZO structures in ../shared/reference (skipped with the reason where either is absent).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_sseff.potentials.classical import classical_potential, potential_problems
from aiida_sseff.workflows.diffusion import DiffusionWorkChain
from aiida_sseff.workflows.lammps import LammpsMdWorkChain, lammps_md_script, lammps_potential_problem

LLZO_TRAIN = Path(__file__).resolve().parents[2].parent / 'shared' / 'reference' / 'llzo' / 'nep_training' / 'train.xyz'


@pytest.fixture
def lammps_code(aiida_code_installed, aiida_localhost):
    """Debian's LAMMPS (``lmp``) as an InstalledCode of aiida-lammps' ``lammps.raw``."""
    executable = shutil.which('lmp') or shutil.which('lmp_serial')
    if executable is None:
        pytest.skip('LAMMPS (lmp) not installed: run scripts/install-system-deps.sh')
    aiida_localhost.set_minimum_job_poll_interval(0.0)
    return aiida_code_installed(label='lammps', default_calc_job_plugin='lammps.raw', filepath_executable=executable,
                                prepend_text='export OMP_NUM_THREADS=1')


def _llzo(index: int):
    if not LLZO_TRAIN.is_file():
        pytest.skip(f'real LLZO structures not found at {LLZO_TRAIN} (shared/reference beside the repository)')
    from ase.io import read

    return read(LLZO_TRAIN, index)


def _small_structure(symbols=('Li', 'La', 'Zr', 'O')):
    from ase import Atoms

    return orm.StructureData(ase=Atoms(symbols, scaled_positions=np.random.default_rng(0).random((len(symbols), 3)),
                                       cell=[5.0, 5.0, 5.0], pbc=True))


# ------------------------------------------------------------------------------------------------ refusals
def test_potential_problems_name_the_missing_pair_and_charge():
    potential = classical_potential()
    assert potential_problems(potential, ['Li', 'La', 'Zr', 'O']) == []
    del potential['pairs']['Zr-O']
    del potential['charges']['La']
    problems = ' '.join(potential_problems(potential, ['O', 'Zr', 'La', 'Li']))
    assert 'Zr-O' in problems and 'no charge for La' in problems
    # the pair key does not depend on the order the pair was written in
    potential = classical_potential()
    potential['pairs']['O-Zr'] = potential['pairs'].pop('Zr-O')
    assert potential_problems(potential, ['Li', 'La', 'Zr', 'O']) == []


def test_net_charge_refused():
    # Li7La3Zr2O12 is neutral with the partial charges (7*0.6 + 3*1.8 + 2*2.4 = 12*1.2); one Li more is not
    symbols = ['Li'] * 7 + ['La'] * 3 + ['Zr'] * 2 + ['O'] * 12
    assert lammps_potential_problem(classical_potential(), symbols) is None
    assert 'net charge +0.6000 e' in lammps_potential_problem(classical_potential(), symbols + ['Li'])


def test_lammps_md_refuses_a_potential_without_a_pair_before_running(aiida_profile, aiida_localhost,
                                                                    aiida_code_installed):
    code = aiida_code_installed(label='lammps-never-run', default_calc_job_plugin='lammps.raw',
                                filepath_executable='/bin/false')
    potential = classical_potential()
    del potential['pairs']['La-O']
    before = orm.QueryBuilder().append(orm.CalcJobNode).count()
    with pytest.raises(ValueError, match='no Buckingham parameters for the pair\\(s\\) La-O'):
        run_get_node(LammpsMdWorkChain, structure=_small_structure(), potential=orm.Dict(potential),
                     parameters=orm.Dict({'temperature_K': 300.0}), lammps={'code': code})
    assert orm.QueryBuilder().append(orm.CalcJobNode).count() == before  # nothing ran


def test_diffusion_refuses_a_lammps_potential_without_a_charge(aiida_profile, aiida_code_installed):
    code = aiida_code_installed(label='lammps-never-run-2', default_calc_job_plugin='lammps.raw',
                                filepath_executable='/bin/false')
    builder = DiffusionWorkChain.get_builder_from_protocol(code, _small_structure())
    assert 'lammps' in builder and builder.lammps.lammps.code.pk == code.pk  # the engine follows the code
    potential = classical_potential()
    del potential['charges']['Zr']
    builder.lammps.potential = orm.Dict(potential)
    builder.md = orm.Dict({**builder.md.get_dict(), 'volume': 'input'})
    with pytest.raises(ValueError, match='no charge for Zr'):
        run_get_node(builder)


@pytest.mark.parametrize('md, match', [
    ({'ensemble': 'nvt_bussi'}, "ensemble must be one of \\('nvt', 'npt'\\)"),
    ({'engine_parameters': {'n_stepz': 3}}, "unknown key\\(s\\) \\['n_stepz'\\]"),
])
def test_diffusion_refuses_bad_lammps_md_settings(aiida_profile, aiida_code_installed, md, match):
    code = aiida_code_installed(label='lammps-never-run-3', default_calc_job_plugin='lammps.raw',
                                filepath_executable='/bin/false')
    builder = DiffusionWorkChain.get_builder_from_protocol(code, _small_structure())
    builder.md = orm.Dict({**builder.md.get_dict(), 'volume': 'input', **md})
    with pytest.raises(ValueError, match=match):
        run_get_node(builder)


def test_script_has_one_pair_coeff_per_type_pair():
    script = lammps_md_script(classical_potential(), ['O', 'Li', 'Zr', 'La'], {'temperature_K': 1000.0})
    coeffs = [line for line in script.splitlines() if line.startswith('pair_coeff')]
    assert len(coeffs) == 10
    assert 'pair_coeff 1 1 2029.2204 0.34364 192.58  # O-O' in coeffs
    assert 'pair_coeff 1 3 17943.384 0.226627 127.65  # O-Zr' in coeffs
    assert 'kspace_style pppm 1e-05' in script and 'pair_style buck/coul/long 10' in script


# ------------------------------------------------------------------------------------------------ real LAMMPS
def _independent_energy(atoms, potential) -> tuple[float, float]:
    """(Coulomb, Buckingham) energy in eV: pymatgen's Ewald sum of the partial charges, and a direct pair sum of
    A exp(-r/ρ) - C/r⁶ to the cutoff (as LAMMPS truncates it, unshifted) with ASE's neighbour list."""
    from ase.neighborlist import neighbor_list
    from pymatgen.analysis.ewald import EwaldSummation
    from pymatgen.io.ase import AseAtomsAdaptor

    from aiida_sseff.potentials.classical import pair_key

    structure = AseAtomsAdaptor.get_structure(atoms)
    structure.add_oxidation_state_by_element(potential['charges'])
    coulomb = EwaldSummation(structure, acc_factor=12.0).total_energy
    i, j, d = neighbor_list('ijd', atoms, potential['cutoff_A'])
    symbols = np.array(atoms.get_chemical_symbols())
    buckingham = 0.0
    for key, c in potential['pairs'].items():
        a, b = key.split('-')
        mask = np.array([pair_key(x, y) == pair_key(a, b) for x, y in zip(symbols[i], symbols[j], strict=True)])
        r = d[mask]
        buckingham += 0.5 * np.sum(c['A'] * np.exp(-r / c['rho']) - c['C'] / r**6)
    return float(coulomb), float(buckingham)


@pytest.mark.reference
def test_first_frame_energy_against_ewald_and_direct_sum(aiida_profile, lammps_code):
    """The LAMMPS energy of a real (triclinic) LLZO cell equals pymatgen's Ewald sum + a direct Buckingham sum, and
    the trajectory comes back in the input structure's frame (aiida-lammps rotates the cell to lower-triangular)."""
    atoms = _llzo(0)  # a strained cell with angles of 88-91°
    assert not np.allclose(atoms.cell.angles(), 90.0)
    potential = classical_potential()
    coulomb, buckingham = _independent_energy(atoms, potential)
    _, node = run_get_node(LammpsMdWorkChain, structure=orm.StructureData(ase=atoms),
                           parameters=orm.Dict({'temperature_K': 300.0, 'n_steps': 2, 'trajectory_interval': 1}),
                           lammps={'code': lammps_code})
    assert node.is_finished_ok, node.exit_message
    energy = node.outputs.thermo.base.attributes.get('initial_potential_energy_eV')
    # PPPM at a relative force accuracy of 1e-5 gives the Coulomb energy to ~1e-5 relative; 2e-5 of ~1650 eV
    # is 0.03 eV, far below the Buckingham term (+81 eV here) that a wrong pair or a wrong type order would change
    assert energy == pytest.approx(coulomb + buckingham, rel=2e-5)
    assert abs(buckingham) > 50.0
    trajectory = node.outputs.trajectory
    np.testing.assert_allclose(trajectory.get_cells()[0], atoms.cell.array, atol=1e-6)
    # frame 0 is the input (no equilibration); positions equal up to a lattice vector (read_data wraps them)
    fractional = np.linalg.solve(atoms.cell.array.T, (trajectory.get_positions()[0] - atoms.positions).T).T
    np.testing.assert_allclose(fractional, np.round(fractional), atol=1e-6)


@pytest.mark.reference
def test_nvt_md_holds_temperature_and_cell(aiida_profile, lammps_code):
    """A short NVT run of the 192-atom LLZO cell: mean temperature near the target, no pair closer than 1.4 Å (the
    Buckingham barriers are at 0.9-1.4 Å), an unwrapped trajectory, the thermo rows the analysis reads."""
    atoms = _llzo(24)
    parameters = {'temperature_K': 1000.0, 'timestep_fs': 1.0, 'n_equilibration_steps': 200, 'n_steps': 600,
                  'trajectory_interval': 20, 'seed': 7}
    _, node = run_get_node(LammpsMdWorkChain, structure=orm.StructureData(ase=atoms),
                           parameters=orm.Dict(parameters), lammps={'code': lammps_code})
    assert node.is_finished_ok, node.exit_message
    thermo, trajectory = node.outputs.thermo, node.outputs.trajectory
    assert node.outputs.results['compute_variables']['steps_per_second'] > 0
    temperature = thermo.get_array('temperature_K')
    assert len(temperature) == 31 and trajectory.numsteps == 31
    # 192 atoms: instantaneous T fluctuates by sqrt(2/(3N)) ≈ 6 %; the mean of 31 correlated rows to within 8 %
    assert np.mean(temperature) == pytest.approx(1000.0, rel=0.08)
    np.testing.assert_allclose(thermo.get_array('volume_A3'), atoms.get_volume(), rtol=1e-9)
    np.testing.assert_allclose(trajectory.get_array('times')[1] - trajectory.get_array('times')[0], 0.020)
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    positions = trajectory.get_positions()
    for frame in positions[::5]:
        distances = neighbor_list('d', Atoms(atoms.get_chemical_symbols(), positions=frame, cell=atoms.cell,
                                             pbc=True), 1.4)
        assert distances.size == 0, f'atoms closer than 1.4 Å: {np.sort(distances)[:3]}'
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=2)
    assert steps.max() < 2.0, 'a jump of a box length between frames: the positions are wrapped'


@pytest.mark.slow
@pytest.mark.reference
def test_diffusion_workchain_on_lammps_gives_a_finite_d(aiida_profile, lammps_code):
    """DiffusionWorkChain with the `lammps` namespace at two temperatures: the classical baseline through the same
    analysis (diffusion_from_trajectory, arrhenius_analysis) as the ML engines, a finite D at both."""
    structure = orm.StructureData(ase=_llzo(24))
    builder = DiffusionWorkChain.get_builder_from_protocol(
        lammps_code, structure, protocol='fast',
        overrides={'temperatures': [1300.0, 1600.0],
                   'md': {'timestep_fs': 2.0, 'equilibration_ps': 0.5, 'production_ps': 6.0, 'volume': 'input'}})
    assert 'min_cell_width_factor' not in builder  # an ML-cutoff multiple; not applied to the Ewald potential
    _, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    rows = node.outputs.results['table']
    assert [row['temperature_K'] for row in rows] == [1300.0, 1600.0]
    for row in rows:
        assert row['diffusive'], row['reason']
        assert np.isfinite(row['D_cm2_s']) and row['D_cm2_s'] > 0
        assert 0 < row['D_err_cm2_s'] < row['D_cm2_s']
        # Li in a stable framework at 1300-1600 K: between 1e-6 and 1e-3 cm²/s (measured ~5e-5 and ~6e-5, ±10 %); a
        # wrong unit (Å²/ps vs cm²/s is 1e-4) or a molten/exploded cell falls outside
        assert 1e-6 < row['D_cm2_s'] < 1e-3
    assert np.isfinite(node.outputs.results['Ea_eV'])
    md = node.called[0] if node.called[0].process_class is LammpsMdWorkChain else \
        next(n for n in node.called if n.process_class is LammpsMdWorkChain)
    assert md.inputs.parameters['ensemble'] == 'nvt' and md.inputs.parameters['timestep_fs'] == 2.0


def test_diffusion_imports_without_aiida_lammps():
    """aiida-lammps is an optional extra: without it DiffusionWorkChain loads, with no `lammps` namespace."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['aiida_lammps'] = None\n"
            "from aiida_sseff.workflows.diffusion import DiffusionWorkChain\n"
            "inputs = DiffusionWorkChain.spec().inputs\n"
            "assert 'lammps' not in inputs and 'engine' in inputs and 'gpumd' in inputs\n")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_lammps_run_that_writes_nothing_gives_a_named_exit_code(aiida_profile, aiida_localhost,
                                                                  aiida_code_installed):
    aiida_localhost.set_minimum_job_poll_interval(0.0)
    code = aiida_code_installed(label='lammps-false', default_calc_job_plugin='lammps.raw',
                                filepath_executable='/bin/false')
    _, node = run_get_node(LammpsMdWorkChain, structure=_small_structure(['Li', 'Li', 'O']),
                           potential=orm.Dict({**classical_potential(), 'charges': {'Li': 0.6, 'O': -1.2}}),
                           parameters=orm.Dict({'temperature_K': 300.0, 'n_steps': 2, 'trajectory_interval': 1}),
                           lammps={'code': code})
    # aiida-lammps' raw parser accepts the empty lammps.out; the missing dump is refused before any calcfunction runs
    assert node.exit_status == LammpsMdWorkChain.exit_codes.ERROR_OUTPUT_UNREADABLE.status, node.exit_message
    assert 'wrote no initial_state.txt, thermo.txt, trajectory.dump' in node.exit_message
    assert 'trajectory' not in node.outputs
    assert not [n for n in node.called if n.process_label == 'lammps_md_outputs']


@pytest.mark.reference
def test_npt_equilibration_then_production_in_the_mean_cell(aiida_profile, lammps_code):
    """`production_cell: equilibrated_mean`: NPT equilibration, then NVT in its mean cell. The potential's pressure at
    the DFT cell is positive (+2.7 GPa at 0 K), so the mean cell is larger than the input (measured +1.1 % at 1000 K,
    volume fluctuations ±1 %, the mean of 0.75 ps to a few tenths of a %); the production volume is constant."""
    atoms = _llzo(24)
    parameters = {'temperature_K': 1000.0, 'timestep_fs': 1.0, 'n_equilibration_steps': 1500, 'n_steps': 100,
                  'trajectory_interval': 10, 'equilibration_ensemble': 'npt', 'production_cell': 'equilibrated_mean',
                  'barostat_time_fs': 200.0}
    _, node = run_get_node(LammpsMdWorkChain, structure=orm.StructureData(ase=atoms),
                           parameters=orm.Dict(parameters), lammps={'code': lammps_code})
    assert node.is_finished_ok, node.exit_message
    volume = node.outputs.thermo.get_array('volume_A3')
    np.testing.assert_allclose(volume, volume[0], rtol=1e-9)
    assert node.outputs.thermo.base.attributes.get('initial_pressure_GPa') > 1.0
    assert volume[0] > atoms.get_volume()
    np.testing.assert_allclose(abs(np.linalg.det(node.outputs.trajectory.get_cells()[0])), volume[0], rtol=1e-6)
