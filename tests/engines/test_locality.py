"""engines.locality: the frozen-sphere MD, the physical law of a finite-range surrogate, the GPUMD inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read

from aiida_sseff.analysis.locality import SphereDoesNotFitError, central_atoms, sigma_f
from aiida_sseff.engines.locality import (
    LocalityParameterError,
    run_locality,
    validate_locality_parameters,
    write_gpumd_locality_inputs,
)

LLZO = 'llzo/nep_training/train.xyz'
NEP = 'llzo/nep25_zbl.txt'


def llzo(reference_dir, repeat=1):
    atoms = read(reference_dir / LLZO, index=0)
    atoms.calc = None
    return atoms.repeat(repeat)


def copper():
    return bulk('Cu', 'fcc', a=3.6, cubic=True).repeat((3, 3, 3))  # 108 atoms, 10.8 Å


def small_run(**overrides):
    return {'n_snapshots': 16, 'snapshot_interval': 4, 'n_equilibration_steps': 8, 'temperature_K': 600.0,
            'timestep_fs': 2.0, 'seed': 3, **overrides}


def test_reused_md_forces_equal_a_fresh_surrogate_call(tmp_path):
    """With no surrogate the MD model's forces of the last step are reused (the calculator's cache, read past
    FixAtoms, which zeroes the frozen atoms' forces): they must equal those of a separate calculator on the same
    snapshots, and the frozen central atom must get a non-zero force."""
    atoms = copper()
    center = central_atoms(atoms)['Cu']
    parameters = small_run(centers=[center], radii=[2.6, 4.0])
    run_locality(atoms, EMT(), parameters, None, tmp_path)
    reused = np.load(tmp_path / 'locality.npz')['forces']
    summary = run_locality(atoms, EMT(), parameters, EMT(), tmp_path)
    fresh = np.load(tmp_path / 'locality.npz')['forces']
    assert summary['n_surrogate_calls'] == 2 * 16
    np.testing.assert_allclose(reused, fresh, rtol=0, atol=1e-12)  # the same trajectory, the same seed
    assert np.abs(reused).max() > 1e-3  # read through FixAtoms it would be exactly 0
    # the sphere is frozen: a nearest neighbour (2.55 Å) inside r_f = 2.6 never moves, so the force varies less
    assert sigma_f(reused[0, 1]).sigma < sigma_f(reused[0, 0]).sigma


@pytest.mark.reference
def test_nep_surrogate_force_is_constant_beyond_twice_its_cutoff(reference_dir, tmp_path):
    """The paper's argument on many-body descriptors: the NEP force on atom i is a sum over neighbours j (within
    R = 6 Å, the model's radial cutoff, nep25_zbl.txt line 3) of derivatives of site energies that see atoms within
    R of j; so it depends only on atoms within 2R = 12 Å. With every atom within r_f = 12.8 Å frozen and no moving
    atom coming within 12 Å (checked on the snapshots: 300 K, 0.13 ps), σ_f must be zero to round-off (float64: the
    force is ~1 eV/Å, summed over a few hundred terms whose order the neighbour list may change: < 1e-10 eV/Å);
    at r_f = 8 Å it is not. Measured with these settings: 5.6e-17 eV/Å at 12.8 Å, 5.9e-3 ± 0.6e-3 eV/Å at 8 Å."""
    from calorine.calculators import CPUNEP

    atoms = llzo(reference_dir, 2)  # 1536 atoms, widths 25.7-26.6 Å
    center = central_atoms(atoms, ['Li'])['Li']
    parameters = small_run(centers=[center], radii=[8.0, 12.8], temperature_K=300.0, store_snapshots=True)
    run_locality(atoms, CPUNEP(str(reference_dir / NEP)), parameters, None, tmp_path)
    data = np.load(tmp_path / 'locality.npz')
    forces = data['forces'][0]
    # the premise: in every snapshot of the r_f = 12.8 Å run no atom outside the sphere is within 2R of the centre
    from ase.geometry import get_distances

    snapshots = [s for s in read(tmp_path / 'snapshots.xyz', index=':') if s.info['r_f'] == 12.8]
    start = get_distances(atoms.positions[center], atoms.positions, cell=atoms.cell, pbc=True)[1][0]
    outside = start > 12.8
    for snapshot in snapshots:
        d = get_distances(snapshot.positions[center], snapshot.positions, cell=snapshot.cell, pbc=True)[1][0]
        assert d[outside].min() > 12.0
    tight, loose = sigma_f(forces[1]), sigma_f(forces[0])
    assert tight.sigma < 1e-10, tight.sigma
    assert loose.sigma > 5e-4, loose.sigma
    assert np.linalg.norm(tight.mean_force) > 0.01  # a real force, held constant, not a zero one


@pytest.mark.slow
@pytest.mark.reference
def test_chgnet_surrogate_sigma_f_decreases_with_the_frozen_radius(reference_dir, tmp_path):
    """CHGNet (4 message-passing layers on a 5 Å graph: a receptive field far beyond the cell) as the surrogate,
    the NEP as the MD model: σ_f of a Li atom falls as r_f grows (3 Å: only the first O shell frozen; 6 Å: ~40 % of
    the 192-atom cell). Asserted: σ_f(3 Å) > σ_f(6 Å) + 3 of their combined errors, and σ_f(6 Å) > 0 (no finite
    range)."""
    from calorine.calculators import CPUNEP

    from aiida_sseff.engines.calculators import make_calculator

    atoms = llzo(reference_dir)
    center = central_atoms(atoms, ['Li'])['Li']
    parameters = small_run(centers=[center], radii=[3.0, 6.0], temperature_K=1000.0)
    run_locality(atoms, CPUNEP(str(reference_dir / NEP)), parameters, make_calculator({'kind': 'chgnet'}), tmp_path)
    forces = np.load(tmp_path / 'locality.npz')['forces'][0]
    small, large = sigma_f(forces[0]), sigma_f(forces[1])
    assert small.sigma > large.sigma + 3 * np.hypot(small.sigma_err, large.sigma_err), (small, large)
    assert large.sigma > 1e-4


def test_bad_locality_input_is_refused_before_any_md(tmp_path):
    atoms = copper()
    with pytest.raises(LocalityParameterError, match='too few'):
        validate_locality_parameters(small_run(centers=[0], radii=[3.0], n_snapshots=8))
    with pytest.raises(LocalityParameterError, match='fixed cell'):
        validate_locality_parameters(small_run(centers=[0], radii=[3.0], ensemble='npt_mtk'))
    with pytest.raises(LocalityParameterError, match='atom indices'):
        validate_locality_parameters(small_run(centers=[200], radii=[3.0]), n_atoms=len(atoms))
    with pytest.raises(LocalityParameterError, match='unknown locality parameter'):
        validate_locality_parameters(small_run(centers=[0], radii=[3.0], n_steps=10))
    with pytest.raises(SphereDoesNotFitError, match='use a 2x2x2 supercell'):
        run_locality(atoms, EMT(), small_run(centers=[0], radii=[3.0, 6.0]), None, tmp_path)
    assert not (tmp_path / 'locality.npz').exists()  # nothing half-written


def test_engine_program_reports_a_sphere_too_large_as_invalid_input(tmp_path):
    from ase.io import write

    from aiida_sseff.engines.__main__ import main

    write(tmp_path / 'structure.xyz', copper(), format='extxyz')
    (tmp_path / 'engine.json').write_text(json.dumps({'calculator': {'kind': 'emt'},
                                                      'parameters': small_run(centers=[0], radii=[7.0])}))
    assert main(['locality', '--directory', str(tmp_path)]) == 2
    report = json.loads((tmp_path / 'report.json').read_text())
    assert report['status'] == 'invalid_input' and 'supercell' in report['message']


def test_gpumd_locality_inputs_follow_the_documented_fix_syntax(tmp_path):
    """GPUMD's fix.rst: ``fix <group_label>`` freezes a group of grouping method 0 (velocities and forces zero) and
    holds for one run only; ``fix <gm> <gid>`` from v5.3 (reference/GPUMD_NOTES.md). ``dump_exyz`` up to 5.6."""
    atoms = copper()
    center = central_atoms(atoms)['Cu']
    run_in = write_gpumd_locality_inputs(tmp_path, atoms, center, 4.0, temperature=1000.0, n_snapshots=20,
                                         snapshot_interval=50, equilibration_steps=100, gpumd_version='5.2')
    lines = run_in.splitlines()
    assert lines.count('fix 1') == 2  # both runs (equilibration and production): fix does not propagate
    assert 'dump_exyz 50 0 0' in lines and lines[-1] == 'run 1000'
    assert lines.index('dump_exyz 50 0 0') > lines.index('run 100')  # snapshots of the production run only
    model = read(tmp_path / 'model.xyz', format='extxyz')
    groups = model.arrays['group']
    from ase.geometry import get_distances

    d = get_distances(atoms.positions[center], atoms.positions, cell=atoms.cell, pbc=True)[1][0]
    np.testing.assert_array_equal(groups, (d <= 4.0).astype(int))
    newer = write_gpumd_locality_inputs(tmp_path, atoms, center, 4.0, temperature=1000.0, n_snapshots=20,
                                        snapshot_interval=50, gpumd_version='5.6').splitlines()
    assert 'fix 0 1' in newer and 'dump_exyz 50 0 0' in newer
    dev = write_gpumd_locality_inputs(tmp_path, atoms, center, 4.0, temperature=1000.0, n_snapshots=20,
                                      snapshot_interval=50, gpumd_version='dev').splitlines()
    assert 'fix 0 1' in dev and 'dump_xyz 50 dump.xyz' in dev
    with pytest.raises(SphereDoesNotFitError):
        write_gpumd_locality_inputs(tmp_path, atoms, center, 6.0, temperature=1000.0, n_snapshots=20,
                                    snapshot_interval=50)


@pytest.mark.reference
def test_gpumd_locality_inputs_freeze_the_sphere_in_the_gpumd_standin(reference_dir, tmp_path, gpumd_standin):
    """The written model.xyz + run.in, run by the GPUMD stand-in (which reads run.in as GPUMD does and honours
    ``fix``): in every dumped snapshot the atoms of the sphere are where they started, the others have moved."""
    import shutil
    import subprocess

    atoms = llzo(reference_dir)
    center = central_atoms(atoms, ['Li'])['Li']
    shutil.copy(reference_dir / NEP, tmp_path / 'nep.txt')
    write_gpumd_locality_inputs(tmp_path, atoms, center, 4.0, temperature=1000.0, n_snapshots=3,
                                snapshot_interval=10, equilibration_steps=10, velocity_seed=5)
    process = subprocess.run([str(gpumd_standin)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr
    frames = read(tmp_path / 'dump.xyz', index=':')
    assert len(frames) == 3
    frozen = read(tmp_path / 'model.xyz', format='extxyz').arrays['group'] == 1
    start = atoms.copy()
    start.wrap()
    for frame in frames:
        moved = np.linalg.norm(frame.positions - start.positions, axis=1)
        assert moved[frozen].max() < 1e-5
        assert np.median(moved[~frozen]) > 0.01
