"""``sseff.dataset``: round trips and every bad input the foundation issue lists."""

import numpy as np
import pytest
from aiida import orm
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_sseff.data.dataset import DatasetValidationError, LabelledDataset


def labelled_cells(n=4, seed=0):
    """Small Cu cells with EMT labels (EMT is a test calculator only)."""
    rng = np.random.default_rng(seed)
    structures = []
    for i in range(n):
        atoms = bulk('Cu', 'fcc', a=3.6, cubic=True) * (1, 1, 2)
        atoms.rattle(0.05, seed=int(rng.integers(1000)))
        atoms.calc = EMT()
        atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        atoms.calc = SinglePointCalculator(
            atoms, energy=atoms.get_potential_energy(), forces=atoms.get_forces(), stress=atoms.get_stress()
        )
        atoms.info['config_type'] = 'rattle' if i % 2 else 'bulk'
        atoms.info['weight'] = 1.0 + i
        structures.append(atoms)
    return structures


def test_round_trip_ase(aiida_profile):
    structures = labelled_cells()
    node = LabelledDataset(structures).store()
    loaded = orm.load_node(node.pk)
    assert loaded.n_structures == 4
    assert loaded.n_atoms == 4 * 8
    assert loaded.elements == ['Cu']
    assert loaded.has_labels and loaded.has_virial
    assert loaded.base.attributes.get('config_types') == {'bulk': 2, 'rattle': 2}
    back = loaded.get_ase()
    for original, copy in zip(structures, back, strict=True):
        # ASE's extxyz writer stores per-atom columns with 8 decimals (1e-8 eV/Å, far below DFT noise)
        np.testing.assert_allclose(copy.get_forces(), original.get_forces(), rtol=0, atol=6e-9)
        assert copy.get_potential_energy() == pytest.approx(original.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(copy.get_stress(), original.get_stress(), atol=1e-12)
        assert copy.info['config_type'] == original.info['config_type']
        assert copy.info['weight'] == original.info['weight']
    import hashlib

    assert loaded.sha256 == hashlib.sha256(loaded.get_content()).hexdigest()


def test_round_trip_file_and_pymatgen(aiida_profile, tmp_path):
    node = LabelledDataset(labelled_cells())
    path = node.write(tmp_path / 'set.xyz')
    again = LabelledDataset.from_file(path)
    assert again.sha256 == node.sha256  # the file written back is read into the same bytes
    structures = node.get_pymatgen()
    assert structures[0].properties['energy'] == pytest.approx(node.get_ase()[0].get_potential_energy())
    from_pmg = LabelledDataset.from_pymatgen(structures)
    for a, b in zip(from_pmg.get_ase(), node.get_ase(), strict=True):
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=6e-9)
        np.testing.assert_allclose(a.get_stress(), b.get_stress(), atol=1e-12)


def test_virial_converted_to_stress(aiida_profile):
    atoms = labelled_cells(1)[0]
    stress = atoms.get_stress(voigt=False)
    virial = -stress * atoms.get_volume()
    plain = Atoms(atoms.get_chemical_symbols(), atoms.positions, cell=atoms.cell, pbc=True)
    plain.info.update(energy=atoms.get_potential_energy(), virial=virial.ravel())
    plain.arrays['forces'] = atoms.get_forces()
    node = LabelledDataset([plain])
    np.testing.assert_allclose(node.get_ase()[0].get_stress(voigt=False), stress, atol=1e-12)


def test_subset_and_merge_keep_provenance(aiida_profile):
    node = LabelledDataset(labelled_cells(6)).store()
    sub = node.subset([4, 1])
    assert sub.n_structures == 2
    assert sub.get_ase()[0].get_potential_energy() == pytest.approx(node.get_ase()[4].get_potential_energy())
    creator = sub.creator
    assert creator is not None and creator.process_label == 'subset_dataset'
    assert {link.node.pk for link in creator.base.links.get_incoming().all()} >= {node.pk}
    merged = node.merge(sub)
    assert merged.n_structures == 8 and merged.has_labels  # labels kept, this set first, then the others in order
    assert merged.creator.process_label == 'merge_datasets'
    energies = [atoms.get_potential_energy() for atoms in merged.get_ase()]
    expected = [atoms.get_potential_energy() for atoms in node.get_ase() + sub.get_ase()]
    assert energies == pytest.approx(expected, abs=1e-10)


def test_merge_with_drop_labels_makes_candidates(aiida_profile):
    from aiida_sseff.data.dataset import merge_datasets

    first, second = LabelledDataset(labelled_cells(2)), LabelledDataset(labelled_cells(1, seed=5))
    candidates = merge_datasets(drop_labels=orm.Bool(True), strains=second, md_T00600K=first)
    assert candidates.n_structures == 3 and not candidates.has_labels
    assert [atoms.info['candidate_source'] for atoms in candidates.get_ase()] == ['md_T00600K', 'md_T00600K',
                                                                                  'strains']
    with pytest.raises(DatasetValidationError, match='nothing to merge'):
        merge_datasets()


@pytest.mark.parametrize('name, content, message', [
    ('missing.xyz', None, 'structure file `.*missing.xyz` does not exist'),
    ('folder', 'dir', '`.*folder` is a directory; expected a structure file'),
    ('numbers.txt', '1 2 3\n', 'ASE does not recognise its format'),
    ('bad.xyz', 'hello\n', 'cannot read `.*bad.xyz`: .*Expected xyz header'),
])
def test_from_file_names_the_file_and_what_was_expected(tmp_path, name, content, message):
    path = tmp_path / name
    if content == 'dir':
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DatasetValidationError, match=message):
        LabelledDataset.from_file(path)


@pytest.mark.parametrize(
    'mutate, message',
    [
        (lambda s: s[2].calc.results.pop('energy'), 'structure 2: missing energy'),
        (lambda s: s[1].calc.results.pop('forces'), 'structure 1: missing forces'),
        (lambda s: s[3].calc.results.__setitem__('forces', np.zeros((5, 3))), 'structure 3: forces have shape'),
        (lambda s: s[0].calc.results.__setitem__('energy', float('nan')), 'structure 0: energy is not a finite'),
        (lambda s: s[1].calc.results['forces'].__setitem__((0, 0), np.inf), 'structure 1: forces contain NaN'),
        (lambda s: s[2].calc.results.__setitem__('energy', -3.5e6), 'structure 2: energy'),
        (lambda s: s[0].calc.results.__setitem__('stress', np.full(6, 20.0)), 'expected eV/Å³'),
    ],
)
def test_bad_input_names_the_structure(aiida_profile, mutate, message):
    structures = labelled_cells()
    mutate(structures)
    with pytest.raises(DatasetValidationError, match=message):
        LabelledDataset(structures)


def test_empty_set_refused(aiida_profile):
    with pytest.raises(DatasetValidationError, match='empty'):
        LabelledDataset([])


def test_unlabelled_set_allowed_only_when_asked(aiida_profile):
    plain = [Atoms('Cu2', positions=[[0, 0, 0], [1.8, 1.8, 0]], cell=[3.6] * 3, pbc=True)]
    with pytest.raises(DatasetValidationError, match='missing energy'):
        LabelledDataset(plain)
    node = LabelledDataset(plain, require_labels=False)
    assert node.has_labels is False


def test_nothing_half_written_on_error(aiida_profile):
    before = orm.QueryBuilder().append(LabelledDataset).count()
    structures = labelled_cells()
    structures[1].calc.results.pop('forces')
    with pytest.raises(DatasetValidationError):
        LabelledDataset(structures).store()
    assert orm.QueryBuilder().append(LabelledDataset).count() == before
