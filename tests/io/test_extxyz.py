"""Tests of aiida_sseff.io.extxyz: train.xyz writing/reading and thin cells in neppo and CPUNEP; and of the XYZ frame
splitter of aiida_sseff.io.structures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_sseff.analysis.geometry import perpendicular_widths
from aiida_sseff.io.extxyz import check_cell_thickness, read_train_xyz, write_train_xyz
from aiida_sseff.io.structures import read_extxyz, split_xyz_frames, write_extxyz_bytes


def _emt_cell(seed: int = 0) -> Atoms:
    atoms = bulk('Cu', cubic=True).repeat(2)
    atoms.rattle(0.05, seed=seed)
    atoms.calc = EMT()
    return atoms


def test_write_train_xyz_keys_and_round_trip(tmp_path):
    first = _emt_cell()
    first.info.update(weight=2.0, config_type='rattle', unrelated='dropped')
    second = bulk('Al', 'fcc', a=4.05).repeat(2)
    second.calc = SinglePointCalculator(second, energy=-10.0, forces=np.zeros((len(second), 3)))  # no stress
    path = write_train_xyz([first, second], tmp_path / 'train.xyz')
    lines = path.read_text().splitlines()
    header = lines[1]
    for key in ('Lattice=', 'energy=', 'stress=', 'weight=2.0', 'config_type=rattle', 'pbc="T T T"',
                'Properties=species:S:1:pos:R:3:forces:R:3'):
        assert key in header, key
    assert 'energies' not in header and 'unrelated' not in header and 'free_energy' not in header
    second_header = lines[len(first) + 3]
    assert 'energy=-10.0' in second_header and 'stress=' not in second_header

    frames = read_train_xyz(path)
    assert len(frames) == 2
    assert frames[0].get_potential_energy() == pytest.approx(first.get_potential_energy(), rel=1e-12)
    np.testing.assert_allclose(frames[0].get_forces(), first.get_forces(), atol=1e-8)  # ASE writes %.8f
    np.testing.assert_allclose(frames[0].get_stress(), first.get_stress(), atol=1e-12)
    assert frames[0].info['weight'] == 2.0


def test_virial_key_becomes_ase_stress(tmp_path):
    """A GPUMD-style `virial=` (eV) is the ASE stress times -V; both directions of the conversion."""
    atoms = _emt_cell(1)
    stress_voigt = atoms.get_stress()
    from ase.stress import voigt_6_to_full_3x3_stress

    virial = -voigt_6_to_full_3x3_stress(stress_voigt) * atoms.get_volume()
    labelled = atoms.copy()
    labelled.calc = None
    labelled.info['energy'] = atoms.get_potential_energy()
    labelled.info['virial'] = virial.ravel()
    labelled.arrays['forces'] = atoms.get_forces()
    path = write_train_xyz([labelled], tmp_path / 'train.xyz')
    np.testing.assert_allclose(read_train_xyz(path)[0].get_stress(), stress_voigt, atol=1e-12)

    gpumd_style = tmp_path / 'gpumd.xyz'
    cell = ' '.join(f'{x:.10f}' for x in atoms.cell.ravel())
    body = '\n'.join(f'{a.symbol} {a.position[0]:.10f} {a.position[1]:.10f} {a.position[2]:.10f} '
                     f'{f[0]:.10f} {f[1]:.10f} {f[2]:.10f}' for a, f in zip(atoms, atoms.get_forces(), strict=True))
    gpumd_style.write_text(f'{len(atoms)}\nlattice="{cell}" energy={atoms.get_potential_energy():.10f} '
                           f'Virial="{" ".join(f"{v:.10f}" for v in virial.ravel())}" '
                           f'properties=species:S:1:pos:R:3:force:R:3\n{body}\n')
    frame = read_train_xyz(gpumd_style)[0]
    np.testing.assert_allclose(frame.get_stress(), stress_voigt, atol=1e-9)
    np.testing.assert_allclose(frame.get_forces(), atoms.get_forces(), atol=1e-9)


@pytest.mark.parametrize(('change', 'message'), [
    ('no_forces', 'structure 1: no forces'),
    ('weight', 'structure 1: weight 101.0 out of range'),
    ('pbc', r'structure 1: pbc=\[True, True, False\]'),
    ('no_cell', 'structure 1: the cell has zero volume'),
])
def test_write_train_xyz_errors_name_the_structure(tmp_path, change, message):
    good = _emt_cell()
    bad = bulk('Cu', cubic=True)
    if change == 'no_forces':
        bad.calc = SinglePointCalculator(bad, energy=-1.0)
    else:
        bad.calc = SinglePointCalculator(bad, energy=-1.0, forces=np.zeros((len(bad), 3)))
    if change == 'weight':
        bad.info['weight'] = 101.0
    if change == 'pbc':
        bad.pbc = (True, True, False)
    if change == 'no_cell':
        bad.set_cell(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=message):
        write_train_xyz([good, bad], tmp_path / 'train.xyz')


def test_check_cell_thickness_matches_gpumd_rule():
    # triclinic check: thickness is V/|b x c| etc., not the lattice-vector lengths
    atoms = Atoms('Cu', cell=[[4.0, 0, 0], [2.0, 4.0, 0], [0, 0, 11.0]], pbc=True)
    np.testing.assert_allclose(perpendicular_widths(atoms), [4.0 * 4.0 / np.hypot(4.0, 2.0), 4.0, 11.0])
    # GPUMD: num_cell = ceil(2 rc / thickness)
    assert check_cell_thickness(atoms, 5.0) == (3, 3, 1)
    assert check_cell_thickness(atoms, 5.5) == (4, 3, 1)
    cubic = Atoms('Cu', cell=np.eye(3) * 12.0, pbc=True)
    assert check_cell_thickness(cubic, 6.0) == (1, 1, 1)  # exactly 2 rc: no replication
    assert check_cell_thickness(cubic, 6.01) == (2, 2, 2)
    with pytest.raises(ValueError, match='cutoff must be positive'):
        check_cell_thickness(cubic, 0.0)


def _assert_thin_cell_equals_supercell(model_path: Path, primitive: Atoms, cutoff: float, repeat: int):
    """Energy per atom, forces and stress of a cell thinner than 2 cutoff equal those of a supercell thick enough,
    for both calorine's CPUNEP and neppo (float64)."""
    import torch
    from calorine.calculators import CPUNEP
    from neppo.io import read_model
    from neppo.prediction import predict

    assert max(check_cell_thickness(primitive, cutoff)) > 1  # really thin
    supercell = primitive.repeat(repeat)
    assert check_cell_thickness(supercell, cutoff) == (1, 1, 1)
    model = read_model(model_path, dtype=torch.float64)
    results = {}
    for name, atoms in (('thin', primitive), ('super', supercell)):
        copy = atoms.copy()
        copy.calc = CPUNEP(str(model_path))
        neppo_result = predict(model, [copy])[0]
        results[name] = {
            'cpunep_energy': copy.get_potential_energy() / len(copy),
            'cpunep_forces': copy.get_forces()[:len(primitive)],
            'cpunep_stress': copy.get_stress(),
            'neppo_energy': neppo_result.info['energy_predicted'][0],
            'neppo_forces': neppo_result.arrays['force_predicted'][:len(primitive)],
        }
    thin, thick = results['thin'], results['super']
    assert abs(thick['cpunep_forces']).max() > 1e-3  # a non-trivial configuration
    for implementation in ('cpunep', 'neppo'):
        assert thin[f'{implementation}_energy'] == pytest.approx(thick[f'{implementation}_energy'], abs=1e-9)
        np.testing.assert_allclose(thin[f'{implementation}_forces'], thick[f'{implementation}_forces'], atol=1e-9)
    np.testing.assert_allclose(thin['cpunep_stress'], thick['cpunep_stress'], atol=1e-9)
    # and the two implementations agree with each other (nep.txt prints 8 significant digits)
    assert thin['neppo_energy'] == pytest.approx(thin['cpunep_energy'], abs=1e-6)
    np.testing.assert_allclose(thin['neppo_forces'], thin['cpunep_forces'], atol=1e-6)


def test_thin_cells_handled_by_neppo_and_cpunep(tmp_path):
    """A randomly initialised neppo NEP (no reference data needed) on a 2-atom CsCl CuAl cell, 2.95 Å thick, with
    a 5 Å cutoff: GPUMD would replicate 4x4x4; neppo and CPUNEP need no replication."""
    import torch
    from neppo.models import NEP, Descriptor

    torch.manual_seed(0)
    model = NEP(Descriptor(['Cu', 'Al'], radial_cutoff=5.0, angular_cutoff=4.0, n_max_radial=3, n_max_angular=3,
                           n_basis_radial=4, n_basis_angular=4), neurons=[5]).double()
    model.max_neighbors_radial, model.max_neighbors_angular = 200, 100  # needed to write nep.txt
    model.write(tmp_path / 'nep.txt')
    primitive = bulk('CuAl', 'cesiumchloride', a=2.95)
    primitive.rattle(0.05, seed=3)
    assert check_cell_thickness(primitive, 5.0) == (4, 4, 4)
    _assert_thin_cell_equals_supercell(tmp_path / 'nep.txt', primitive, 5.0, 4)


def test_thin_cells_with_reference_llzo_model(reference_dir):
    """The real LLZO NEP (rc_R = 6 Å) on a primitive Li2O cell (2.66 Å thick) against its 5x5x5 supercell."""
    primitive = bulk('Li2O', 'fluorite', a=4.61)
    primitive.rattle(0.05, seed=1)
    _assert_thin_cell_equals_supercell(reference_dir / 'llzo' / 'nep_training' / 'nep.txt', primitive, 6.0, 5)


def test_split_xyz_frames_round_trip_and_errors():
    """Frames split from a written file are the bytes of each structure written alone; blank lines between frames and
    a missing final newline are tolerated; a bad count line or a truncated frame is named."""
    structures = [bulk('LiF', 'rocksalt', a=4.0), bulk('Li', 'bcc', a=3.5, cubic=True).repeat((2, 1, 1))]
    structures[0].rattle(0.01, seed=1)
    content = write_extxyz_bytes(structures)
    frames = split_xyz_frames(content)
    assert frames == [write_extxyz_bytes([atoms]) for atoms in structures]
    assert b''.join(frames) == content
    assert split_xyz_frames(frames[0] + b'\n\n' + frames[1].rstrip(b'\n')) == frames
    assert [len(atoms) for atoms in read_extxyz(frames[1])] == [4]
    assert split_xyz_frames(b'') == []
    with pytest.raises(ValueError, match='line 1: expected the atom count'):
        split_xyz_frames(b'Li 0 0 0\n')
    with pytest.raises(ValueError, match='frame of 4 atoms ends after 1 atom lines'):
        split_xyz_frames(frames[0] + b'4\ncomment\nLi 0 0 0\n')
