"""aiida_sseff.analysis.sampling: FPS of structures, perturbations, merging and parameter checks, without a database."""

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_sseff.analysis.descriptors import untrained_nep_descriptors
from aiida_sseff.analysis.fps import farthest_point_sampling
from aiida_sseff.analysis.sampling import (
    check_no_overlap,
    check_rattle_amplitudes,
    check_strain_range,
    merge_structures,
    rattled_structures,
    select_by_fps,
    series_by_fps,
    strained_structures,
)


def rattled_lif(n, amplitude=0.02):
    base = bulk('LiF', 'rocksalt', a=4.03, cubic=True)  # 8 atoms
    structures = []
    for seed in range(n):
        atoms = base.copy()
        atoms.rattle(amplitude, seed=seed)
        structures.append(atoms)
    return structures


def test_fps_picks_an_outlier_and_is_deterministic():
    """The most distinct structure (rattled 15x more than the others) is among the first 3 picks, every time."""
    candidates = rattled_lif(12)
    outlier = bulk('LiF', 'rocksalt', a=4.03, cubic=True)
    outlier.rattle(0.3, seed=99)
    candidates.insert(7, outlier)
    result, info = select_by_fps(candidates, n_select=3, per_species=True)
    picks = result.indices.tolist()
    assert len(set(picks)) == 3 and 7 in picks
    assert select_by_fps(candidates, n_select=3, per_species=True)[0].indices.tolist() == picks
    # the same picks as FPS called directly on the descriptor the function documents (species in alphabetical order)
    direct = farthest_point_sampling(untrained_nep_descriptors(candidates, ['F', 'Li'], per_species=True), n_select=3)
    assert direct.indices.tolist() == picks
    assert info['elements'] == ['F', 'Li'] and info['per_species']


@pytest.mark.parametrize('kwargs, message', [
    ({'n_select': 20}, r'candidates: cannot select 20 of 13 structures \(expected 1 to 13\)'),
    ({'n_select': -2}, 'cannot select -2 of 13'),
    ({'n_select': 2.5}, 'must be a whole number; got 2.5'),
    ({'min_distance': -0.1}, r'minimum distance must be a finite number >= 0 \(descriptor units\); got -0.1'),
    ({'n_select': 2, 'min_distance': 0.1}, 'exactly one stop criterion'),
    ({'n_select': 2, 'descriptor': 'soap'}, "descriptor must be one of nep, untrained_nep, rdf; got 'soap'"),
    ({'n_select': 2, 'descriptor': 'nep'}, "descriptor 'nep' needs a trained NEP model"),
    ({'n_select': 2, 'descriptor': 'rdf', 'per_species': True}, 'apply to the NEP descriptors only'),
    ({'n_select': 2, 'species': 'Na'}, 'candidates: structure 0 has no Na atoms'),
])
def test_select_by_fps_refuses_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        select_by_fps(rattled_lif(13), **kwargs)


def test_series_refuses_bad_levels():
    with pytest.raises(ValueError, match='must be at least 1; got 0'):
        series_by_fps(rattled_lif(4), n_levels=0)
    with pytest.raises(ValueError, match=r'4 structures cannot be halved 3 times .* need at least 8'):
        series_by_fps(rattled_lif(4), n_levels=3)


def test_a_file_that_is_not_a_nep_model_is_named(tmp_path, reference_dir):
    """The message calorine gives for a file of numbers is 'Unknown field: 1': ours names the file and the format."""
    numbers = tmp_path / 'weights.txt'
    numbers.write_text('1 2 3\n4 5 6\n')
    with pytest.raises(ValueError, match=r'`.*weights.txt` is not a NEP model: its first line is `1 2 3`; expected '
                                         r'a NEP model \(nep.txt'):
        select_by_fps(rattled_lif(3), n_select=1, descriptor='nep', model_path=numbers)
    truncated = tmp_path / 'nep.txt'
    truncated.write_text('nep4 2 Li F\ncutoff 6 4\n')
    with pytest.raises(ValueError, match=r'`.*nep.txt` is not a readable NEP model \(ValueError'):
        select_by_fps(rattled_lif(3), n_select=1, descriptor='nep', model_path=truncated)
    with pytest.raises(ValueError, match='NEP model file `.*absent.txt` does not exist'):
        select_by_fps(rattled_lif(3), n_select=1, descriptor='nep', model_path=tmp_path / 'absent.txt')
    # a real model that does not know an element: the set, the structure and the element are named
    with pytest.raises(ValueError, match=r'cands.xyz: structure 0 contains F, which the NEP model .* does not know'):
        select_by_fps(rattled_lif(2), n_select=1, descriptor='nep', model_path=reference_dir / 'llzo' / 'nep25_zbl.txt',
                      names=('cands.xyz', 'seed.xyz'))


def minimum_image(delta, cell):
    fractional = np.linalg.solve(cell.T, delta.T).T
    fractional -= np.round(fractional)
    return fractional @ cell


def test_rattles_have_the_stated_standard_deviation():
    reference = bulk('OLi2', 'fluorite', a=4.61, cubic=True).repeat(2)  # 96 atoms
    reference.calc = SinglePointCalculator(reference, energy=-1.0)
    structures = rattled_structures(reference, [0.05, 0.1], n_per_amplitude=10, seed=7)
    assert len(structures) == 20 and all(atoms.calc is None for atoms in structures)
    for amplitude in (0.05, 0.1):
        displacements = np.concatenate([minimum_image(atoms.positions - reference.positions, reference.cell.array)
                                        for atoms in structures if atoms.info['rattle_amplitude_A'] == amplitude])
        # 10 x 96 x 3 = 2880 Gaussian draws: the sample standard deviation has a relative standard error of
        # 1/sqrt(2 x 2880) = 1.3 %, so 4 % is 3 standard errors; the mean has a standard error of amplitude/54
        assert displacements.std() == pytest.approx(amplitude, rel=0.04)
        assert abs(displacements.mean()) < 4 * amplitude / np.sqrt(displacements.size)
    again = rattled_structures(reference, [0.05, 0.1], n_per_amplitude=10, seed=7)
    np.testing.assert_array_equal(again[13].positions, structures[13].positions)


def test_strains_are_symmetric_and_keep_fractional_positions():
    reference = bulk('OLi2', 'fluorite', a=4.61, cubic=True)
    structures = strained_structures(reference, [-0.02, 0.03], n_strains=5, seed=3)
    components = []
    for atoms in structures:
        epsilon = np.linalg.solve(reference.cell.array, atoms.cell.array) - np.eye(3)
        xx, yy, zz, yz, xz, xy = atoms.info['strain_voigt']
        np.testing.assert_allclose(epsilon, [[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]], atol=1e-12)
        np.testing.assert_allclose(atoms.get_scaled_positions(), reference.get_scaled_positions(), atol=1e-12)
        components.extend(atoms.info['strain_voigt'])
    assert -0.02 <= min(components) and max(components) <= 0.03


def test_merge_keeps_or_drops_labels_in_key_order():
    first, second = rattled_lif(2), rattled_lif(1, amplitude=0.05)
    for atoms in first + second:
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((len(atoms), 3)))
    kept = merge_structures({'part_001': second, 'part_000': first})
    assert [atoms is original for atoms, original in zip(kept, first + second, strict=True)] == [True] * 3
    dropped = merge_structures({'strains': second, 'md_T00600K': first}, drop_labels=True)
    assert [atoms.info['candidate_source'] for atoms in dropped] == ['md_T00600K', 'md_T00600K', 'strains']
    assert all(atoms.calc is None for atoms in dropped)
    np.testing.assert_array_equal(dropped[2].positions, second[0].positions)


def test_parameter_checks_name_the_value():
    assert check_rattle_amplitudes([0.05, 0.1]) is None
    assert 'must be numbers in (0, 0.5] Å' in check_rattle_amplitudes([0.05, -0.1], 'amps')
    assert check_rattle_amplitudes([], 'amps') == 'amps is empty'
    assert check_strain_range([-0.03, 0.03]) is None
    assert 'two numbers [min, max]' in check_strain_range([0.03])
    assert 'got [0.03, -0.03]' in check_strain_range([0.03, -0.03])
    overlapping = bulk('LiF', 'rocksalt', a=4.03, cubic=True)
    overlapping.positions[1] = overlapping.positions[0] + [0.1, 0.0, 0.0]
    assert 'two are 0.100 Å apart' in check_no_overlap(overlapping)
    assert check_no_overlap(bulk('LiF', 'rocksalt', a=4.03, cubic=True)) is None
