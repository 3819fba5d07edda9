"""``sseff.model.nep`` / ``sseff.model.mace``: attributes read from real files, corrupt files refused."""

import numpy as np
import pytest
from aiida import orm

from aiida_sseff.data.model import MaceModel, ModelFileError, NepModel


@pytest.fixture
def llzo_nep(reference_dir):
    return reference_dir / 'llzo' / 'nep25_zbl.txt'


def test_nep_model_attributes(aiida_profile, llzo_nep):
    node = NepModel(llzo_nep).store()
    loaded = orm.load_node(node.pk)
    # Header of the real file: "nep4_zbl 4 Li La Zr O", cutoff 6 4 (shared/reference/llzo/nep_training/nep.in)
    assert loaded.elements == ['Li', 'La', 'Zr', 'O']
    assert loaded.cutoff == (6.0, 4.0)
    assert loaded.base.attributes.get('model_header') == 'nep4_zbl'
    assert loaded.base.attributes.get('version') == 4
    assert loaded.base.attributes.get('n_neuron') == 30
    assert loaded.base.attributes.get('n_parameters') == 5311
    import hashlib

    assert loaded.sha256 == hashlib.sha256(llzo_nep.read_bytes()).hexdigest()


def test_nep_calculator_matches_direct_cpunep(aiida_profile, llzo_nep, reference_dir):
    from ase.io import read
    from calorine.calculators import CPUNEP

    atoms = read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index=0)
    atoms.calc = NepModel(llzo_nep).store().get_calculator()
    ours = atoms.get_forces()
    atoms.calc = CPUNEP(str(llzo_nep))
    np.testing.assert_array_equal(ours, atoms.get_forces())


@pytest.mark.parametrize('keep_fraction', [0.5, 0.999])
def test_truncated_nep_refused(aiida_profile, llzo_nep, tmp_path, keep_fraction):
    lines = llzo_nep.read_text().splitlines()
    broken = tmp_path / 'nep.txt'
    broken.write_text('\n'.join(lines[: int(len(lines) * keep_fraction)]) + '\n')
    with pytest.raises(ModelFileError, match='nep.txt'):
        NepModel(broken)


def test_garbage_nep_refused(aiida_profile, tmp_path):
    path = tmp_path / 'nep.txt'
    path.write_text('this is not a model\n1.0\n')
    with pytest.raises(ModelFileError, match='not a readable NEP model'):
        NepModel(path)


def test_missing_file_refused(aiida_profile, tmp_path):
    with pytest.raises(ModelFileError, match='no NEP model file'):
        NepModel(tmp_path / 'absent.txt')
    with pytest.raises(ModelFileError, match='no MACE model file'):
        MaceModel(tmp_path / 'absent.model')


def test_mace_model_needs_elements_when_unreadable(aiida_profile, tmp_path):
    path = tmp_path / 'model.model'
    path.write_bytes(b'not a torch file')
    with pytest.raises(ModelFileError, match='MACE model'):
        MaceModel(path)
