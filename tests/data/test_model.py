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


def _mace_like_state(path):
    """A torch file as MACE writes its buffers (r_max, num_interactions, atomic_numbers are registered buffers of
    mace.modules.models.MACE); mace-torch is not installed here, so the test writes the file itself."""
    import collections

    import torch

    state = collections.OrderedDict(r_max=torch.tensor(5.0), num_interactions=torch.tensor(2),
                                    atomic_numbers=torch.tensor([3, 8]), weight=torch.zeros(4, 4))
    torch.save({'model': state, 'epoch': 7}, path)
    return path


class _RunsCode:
    """Pickles to a call of os.system: what a malicious model file holds."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f'touch {self.marker}',))


def test_mace_file_read_weights_only(aiida_profile, tmp_path):
    node = MaceModel(_mace_like_state(tmp_path / 'model.pt'))
    assert node.elements == ['Li', 'O'] and node.cutoff == 5.0
    assert node.base.attributes.get('num_interactions') == 2


def test_mace_file_that_runs_code_is_refused(aiida_profile, tmp_path):
    import torch

    from aiida_sseff.data.model import UnsafeModelFileError

    marker = tmp_path / 'code-ran'
    path = tmp_path / 'evil.model'
    torch.save({'payload': _RunsCode(marker)}, path)
    with pytest.raises(UnsafeModelFileError, match=r'`evil.model` asks for posix.system.*--allow-pickle'):
        MaceModel(path, architecture={'elements': ['Li']})
    assert not marker.exists()  # nothing from the file ran
    # the explicit opt-in loads it as a full pickle, with a warning: and the file's code runs, as the warning says
    with pytest.warns(UserWarning, match='runs any code the file holds'):
        MaceModel(path, architecture={'elements': ['Li']}, allow_pickle=True)
    assert marker.exists()


# ------------------------------------------------------------------------------------------- qNEP (charge models)


def _write_neppo_charge_model(path, charge_mode: int, zbl: bool = False, seed: int = 3):
    """An untrained qNEP for Li La Zr O written by neppo (random weights: charges of ~0.6-1 e and forces of ~2 eV/Å,
    so two implementations can disagree visibly)."""
    import torch
    from neppo.nep_in import get_model

    torch.manual_seed(seed)
    settings = {'type': ['4', 'Li', 'La', 'Zr', 'O'], 'cutoff': ['5', '4'], 'n_max': ['3', '3'],
                'basis_size': ['4', '4'], 'l_max': ['4', '2', '0'], 'neuron': ['6'], 'charge_mode': [str(charge_mode)]}
    if zbl:
        settings['zbl'] = ['2']
    model = get_model(settings)
    model.max_neighbors_radial, model.max_neighbors_angular = 200, 100  # GPUMD's neighbour-list sizes, any bound
    model.write(path)
    return path


@pytest.mark.parametrize(('charge_mode', 'zbl', 'header'), [(1, False, 'nep4_charge1'), (2, True, 'nep4_zbl_charge2')])
def test_charge_model_attributes(aiida_profile, tmp_path, charge_mode, zbl, header):
    """A qNEP nep.txt (written by neppo) is recorded as a potential with charges, with its charge mode and header."""
    node = NepModel(_write_neppo_charge_model(tmp_path / 'nep.txt', charge_mode, zbl)).store()
    loaded = orm.load_node(node.pk)
    assert loaded.base.attributes.get('model_header') == header
    assert loaded.base.attributes.get('model_type') == 'potential_with_charges'
    assert loaded.base.attributes.get('charge_mode') == charge_mode
    assert (loaded.base.attributes.get('zbl') is not None) == zbl
    assert loaded.elements == ['Li', 'La', 'Zr', 'O'] and loaded.cutoff == (5.0, 4.0)


def test_plain_model_has_no_charges(aiida_profile, llzo_nep):
    node = NepModel(llzo_nep)
    assert node.base.attributes.get('model_type') == 'potential' and node.base.attributes.get('charge_mode') == 0


@pytest.mark.reference
@pytest.mark.parametrize('charge_mode', [1, 2])
def test_charge_model_cpunep_agrees_with_neppo(aiida_profile, tmp_path, reference_dir, charge_mode):
    """The calculator of a qNEP NepModel (calorine's CPUNEP, C++ nep_cpu with its own Ewald sum) and neppo's
    prediction (PyTorch, autograd forces, float64) on the same nep.txt and two real LLZO cells (192 atoms): two
    independent implementations of the short-range network, the charges and the electrostatics. Measured: forces
    agree to 6e-14 eV/Å (|F| up to 7 eV/Å), energies to 3e-16 eV/atom, virials to 1e-8 GPa; the tolerances leave
    room for summation order, not for a different Ewald splitting or a missing real-space term (the same weights
    read as mode 1 and as mode 2 differ by 1.5 eV/Å in CPUNEP's forces)."""
    import torch
    from ase.io import read
    from neppo import predict, read_model

    path = _write_neppo_charge_model(tmp_path / 'nep.txt', charge_mode)
    frames = read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index=':2')
    reference = predict(read_model(path, dtype=torch.float64), frames)
    calculator = NepModel(path).get_calculator()
    for atoms, expected in zip(frames, reference, strict=True):
        atoms.calc = calculator
        np.testing.assert_allclose(atoms.get_forces(), expected.arrays['force_predicted'], rtol=0, atol=1e-9)
        assert atoms.get_potential_energy() / len(atoms) == pytest.approx(expected.info['energy_predicted'][0],
                                                                          abs=1e-9)
        # neppo's stress_predicted is virial/volume in GPa, the negative of ASE's stress (1 eV/Å³ = 160.21766 GPa)
        np.testing.assert_allclose(-atoms.get_stress(voigt=True) * 160.21766208, expected.info['stress_predicted'],
                                   atol=1e-6)
        charges = calculator.results['charges']
        raw = expected.arrays['charge_predicted'][:, 0]
        np.testing.assert_allclose(charges, raw - raw.mean(), atol=1e-12)  # neutral cell: shifted raw charges
        assert np.abs(charges).max() > 0.1  # a check of real charges, not of zeros
