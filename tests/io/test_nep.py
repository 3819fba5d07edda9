"""Tests of aiida_sseff.io.nep on real GPUMD output (LLZO reference run) and on a real neppo CPU training."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from aiida_sseff.analysis.metrics import rmse
from aiida_sseff.io.extxyz import read_train_xyz, write_train_xyz
from aiida_sseff.io.nep import (
    MISSING_TARGET,
    charge_rmse,
    mean_charge_by_element,
    read_bec_out,
    read_charge_out,
    read_energy_out,
    read_force_out,
    read_loss,
    read_nep_in,
    read_stress_out,
    read_training_directory,
    read_virial_out,
    rmse_from_outputs,
    validate_nep_parameters,
    write_nep_in,
)

LLZO = ('Li', 'La', 'Zr', 'O')
EV_PER_A3_TO_GPA = 160.21766208  # 1 eV/Å³ in GPa (GPUMD's PRESSURE_UNIT_CONVERSION)


@pytest.fixture
def nep_training(reference_dir) -> Path:
    """The real GPUMD `nep` run on 25 LLZO structures (shared/reference/llzo/README.md; skipped with reference_dir)."""
    return reference_dir / 'llzo' / 'nep_training'


# ------------------------------------------------------------------------------------------- real GPUMD output


@pytest.mark.reference
def test_loss_force_rmse_equals_force_train_out(nep_training):
    """Last loss.out row (generation 100000) against the RMSE recomputed from force_train.out.

    loss.out prints 5 decimals (0.03603 eV/Å), so they agree to half a unit of the last digit; batch 200 >= 25
    structures is a full batch, so force_train.out holds the same structures GPUMD reported on.
    """
    loss = read_loss(nep_training / 'loss.out')
    assert loss.index[-1] == 100000
    assert list(loss.columns[:6]) == ['total_loss', 'L1', 'L2', 'RMSE_E_train', 'RMSE_F_train', 'RMSE_V_train']
    forces = read_force_out(nep_training / 'force_train.out')
    assert forces.predicted.shape == (25 * 192, 3)
    recomputed = rmse(*forces)
    assert recomputed == pytest.approx(loss['RMSE_F_train'].iloc[-1], abs=0.5e-5 + 1e-7)
    # GPUMD's definition is over all 3N components, not over per-atom norms (which would be sqrt(3) larger here)
    norms = np.sqrt(np.mean(np.sum((forces.predicted - forces.target) ** 2, axis=1)))
    assert abs(norms - loss['RMSE_F_train'].iloc[-1]) > 0.01


@pytest.mark.reference
def test_loss_energy_and_virial_rmse_equal_outputs(nep_training):
    """Energy RMSE from energy_train.out and virial RMSE from stress_train.out (converted back to eV/atom with
    the volumes of train.xyz) reproduce loss.out's 0.00012 eV/atom and 0.00322 eV/atom (5 printed decimals)."""
    loss = read_loss(nep_training / 'loss.out').iloc[-1]
    outputs = read_training_directory(nep_training)
    rmses = rmse_from_outputs(outputs['train'])
    assert rmses['energy_mev_per_atom'] / 1000 == pytest.approx(loss['RMSE_E_train'], abs=0.5e-5 + 1e-7)
    assert rmses['force_mev_per_angstrom'] / 1000 == pytest.approx(loss['RMSE_F_train'], abs=0.5e-5 + 1e-7)
    # GPUMD removes the mean energy offset in its training RMSE and folds it into the bias before writing the
    # file, so removing it again changes nothing beyond the print precision
    shifted = rmse_from_outputs(outputs['train'], remove_energy_shift=True)['energy_mev_per_atom']
    assert shifted == pytest.approx(rmses['energy_mev_per_atom'], rel=1e-3)

    frames = read_train_xyz(nep_training / 'train.xyz')
    stress = outputs['train']['stress']
    factor = np.array([a.get_volume() / len(a) for a in frames])[:, None] / EV_PER_A3_TO_GPA
    virial_rmse = rmse(stress.predicted * factor, stress.target * factor)
    assert virial_rmse == pytest.approx(loss['RMSE_V_train'], abs=0.5e-5 + 1e-7)


@pytest.mark.reference
def test_reference_directory_is_stress_only(nep_training):
    outputs = read_training_directory(nep_training)
    assert set(outputs['train']) == {'energy', 'force', 'stress'}  # no virial_train.out in this run
    assert outputs['test'] == {}
    assert np.isnan(rmse_from_outputs(outputs['train'])['virial_mev_per_atom'])
    assert outputs['train']['energy'].predicted.shape == (25,)


@pytest.mark.reference
def test_stress_out_is_minus_ase_stress(nep_training):
    """stress_train.out targets (GPa, xx yy zz xy yz zx) are -1 x the ASE stress of train.xyz (eV/Å³)."""
    stress = read_stress_out(nep_training / 'stress_train.out')
    frames = read_train_xyz(nep_training / 'train.xyz')
    voigt = np.array([a.get_stress() for a in frames])  # ASE order xx yy zz yz xz xy
    expected = -EV_PER_A3_TO_GPA * voigt[:, [0, 1, 2, 5, 3, 4]]
    np.testing.assert_allclose(stress.target, expected, rtol=2e-5, atol=2e-5)  # %g prints 6 significant digits


@pytest.mark.reference
def test_cpunep_reproduces_gpumd_force_rmse(nep_training):
    """calorine's CPUNEP on the same nep.txt + train.xyz gives GPUMD's force RMSE (0.03603 eV/Å in loss.out)
    to the 5 decimals loss.out prints, and its forces match GPUMD's predictions (float32 on the GPU) to 1e-4 eV/Å.

    Measured here (calorine 4.1): RMSE 0.0360339 eV/Å against 0.03603 printed, largest force difference 3.8e-5 eV/Å
    (float32 carries ~7 digits of forces of up to a few eV/Å summed over ~100 neighbours)."""
    from calorine.calculators import CPUNEP

    loss = read_loss(nep_training / 'loss.out').iloc[-1]
    frames = read_train_xyz(nep_training / 'train.xyz')
    calculator = CPUNEP(str(nep_training / 'nep.txt'))
    predicted, target, energy_errors = [], [], []
    for atoms in frames:
        copy = atoms.copy()
        copy.calc = calculator
        predicted.append(copy.get_forces())
        target.append(atoms.get_forces())
        energy_errors.append((copy.get_potential_energy() - atoms.get_potential_energy()) / len(atoms))
    predicted, target = np.concatenate(predicted), np.concatenate(target)
    assert rmse(predicted, target) == pytest.approx(loss['RMSE_F_train'], abs=0.5e-5 + 1e-7)
    assert np.sqrt(np.mean(np.square(energy_errors))) == pytest.approx(loss['RMSE_E_train'], abs=1e-5)
    gpumd = read_force_out(nep_training / 'force_train.out')
    assert np.max(np.abs(predicted - gpumd.predicted)) < 1e-4


@pytest.mark.reference
def test_reference_nep_in_relies_on_pre_v53_defaults(nep_training):
    """The reference nep.in omits n_max/basis_size; its nep.txt records 4 4 / 8 8 (GPUMD < v5.3 defaults), which
    GPUMD >= v5.3 would have replaced by 6 6 / 6 6 -- hence write_nep_in writes every architecture keyword."""
    from calorine.nep import read_model

    given = read_nep_in(nep_training / 'nep.in')
    assert 'n_max' not in given and 'basis_size' not in given
    model = read_model(str(nep_training / 'nep.txt'))
    assert (model.n_max_radial, model.n_max_angular) == (4, 4)
    assert (model.n_basis_radial, model.n_basis_angular) == (8, 8)
    normalised = validate_nep_parameters(given, LLZO)
    assert normalised['n_max'] == (6, 6) and normalised['basis_size'] == (6, 6)
    pinned = validate_nep_parameters({**given, 'n_max': (4, 4), 'basis_size': (8, 8), 'l_max': (4, 2, 0)}, LLZO)
    assert pinned['zbl'] == 1.8 and pinned['cutoff'] == (6.0, 4.0)


# ------------------------------------------------------------------------------------------------- nep.in


@pytest.mark.parametrize('program', ['nep', 'neppo'])
def test_nep_in_round_trip(tmp_path, program):
    params = {'cutoff': '6 4', 'n_max': [4, 4], 'neuron': 16, 'zbl': 1.8, 'lambda_v': 0.5, 'generation': 1000,
              'batch': 10}
    if program == 'neppo':
        params.update(seed=7, learning_rate=(1e-2, 1e-4))
    normalised = validate_nep_parameters(params, LLZO, program)
    path = write_nep_in(normalised, tmp_path / 'nep.in')
    lines = path.read_text().splitlines()
    assert lines[0] == 'type 4 Li La Zr O'
    for key in ('version', 'cutoff', 'n_max', 'basis_size', 'l_max', 'neuron'):
        assert any(line.split()[0] == key for line in lines), key
    assert read_nep_in(path) == normalised
    assert validate_nep_parameters(read_nep_in(path), LLZO, program) == normalised
    assert normalised['batch'] == 10 and normalised['l_max'] == (4, 2, 0) and normalised['basis_size'] == (6, 6)


def test_written_nep_in_is_accepted_by_neppo(tmp_path):
    """neppo's own parser reads our file without warnings and builds the model it describes."""
    from neppo.nep_in import get_model
    from neppo.nep_in import read_nep_in as neppo_read_nep_in

    normalised = validate_nep_parameters({'cutoff': (5, 4), 'n_max': (4, 4), 'basis_size': (5, 5), 'neuron': 8,
                                          'seed': 1}, ('Cu', 'Al'), 'neppo')
    path = write_nep_in(normalised, tmp_path / 'nep.in')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        settings = neppo_read_nep_in(path)
    model = get_model(settings, tmp_path)
    assert tuple(model.types) == ('Cu', 'Al')
    assert model.descriptor.radial_cutoffs[0] == pytest.approx(5.0)


@pytest.mark.parametrize(('params', 'program', 'message'), [
    ({'foo': 1}, 'nep', "unknown nep.in keyword 'foo'"),
    ({'force_delta': 0.1}, 'neppo', "'force_delta' is not accepted by neppo"),
    ({'learning_rate': (1e-2, 1e-4)}, 'nep', "'learning_rate' is not accepted by nep"),
    ({'seed': 1}, 'nep', "'seed' is not accepted by nep"),
    ({'cutoff': (6, 2.5)}, 'nep', 'rc_A = 2.5 out of range'),
    ({'cutoff': (11, 4)}, 'neppo', 'rc_R = 11.0 out of range'),
    ({'cutoff': (4, 5)}, 'nep', 'rc_A = 5.0 > rc_R = 4.0'),
    ({'cutoff': (6,)}, 'nep', "'cutoff': got 1 value"),
    ({'zbl': 3.5}, 'nep', "'zbl'"),
    ({'version': 3}, 'nep', "'version': 3 not supported"),
    ({'l_max': (3,)}, 'nep', 'l_max_3b = 3'),
    ({'l_max': (4, 1)}, 'nep', 'l_max_4b = 1'),
    ({'neuron': 0}, 'nep', "'neuron'"),
    ({'n_max': (13, 4)}, 'nep', 'n_max radial'),
    ({'batch': 0}, 'nep', "'batch'"),
    ({'charge_mode': 3}, 'neppo', "'charge_mode': 3"),
    ({'lambda_f': -1}, 'nep', "'lambda_f'"),
    ({'neuron': 2.5}, 'nep', 'are not ints'),
    ({'type': ['La', 'Li', 'Zr', 'O']}, 'nep', 'differs from the dataset elements'),
    ({}, 'gpumd', 'program must be one of'),
])
def test_validation_errors(params, program, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        validate_nep_parameters(params, LLZO, program)


def test_validation_program_specific_keywords():
    with pytest.warns(UserWarning, match="'population' is ignored by neppo"):
        neppo = validate_nep_parameters({'population': 50}, ('Cu',), 'neppo')
    assert 'population' not in neppo and neppo['batch'] == 32 and neppo['version'] == 4
    nep = validate_nep_parameters({'seed': 3}, ('Cu',), 'nep', allow_gpumd_seed=True)
    assert nep['seed'] == 3 and nep['population'] == 50 and nep['batch'] == 1000
    qnep = validate_nep_parameters({'charge_mode': 1}, ('Cu',), 'nep')
    assert qnep['charge_mode'] == 1 and 'charge_mode' not in validate_nep_parameters({'charge_mode': 0}, ('Cu',))
    assert validate_nep_parameters({'type': '2 Cu Al'}, ('Cu', 'Al'))['type'] == ('Cu', 'Al')


# ------------------------------------------------------------------------------------------ output readers


def test_missing_virial_targets_are_nan(tmp_path):
    """virial_*.out holds -1e6 for frames without virial; GPUMD's stress_*.out holds -1e6 N/V x 160.2 GPa."""
    virial = tmp_path / 'virial_train.out'
    rows = [[0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 0.11, 0.19, 0.3, 0.0, 0.0, 0.0],
            [0.5] * 6 + [MISSING_TARGET] * 6]
    np.savetxt(virial, rows)
    parsed = read_virial_out(virial)
    assert np.all(np.isnan(parsed.target[1])) and not np.any(np.isnan(parsed.target[0]))
    assert rmse_from_outputs({'virial': parsed})['virial_mev_per_atom'] == pytest.approx(
        1000 * np.sqrt((0.01 ** 2 + 0.01 ** 2) / 6))
    stress = tmp_path / 'stress_test.out'
    sentinel = MISSING_TARGET * 192 / 2138.0 * EV_PER_A3_TO_GPA  # what GPUMD's Fitness::output prints
    np.savetxt(stress, [[1.0] * 6 + [sentinel] * 6, [1.0] * 6 + [1.5] * 6])
    parsed = read_stress_out(stress)
    assert np.all(np.isnan(parsed.target[0]))
    assert rmse_from_outputs({'stress': parsed})['stress_gpa'] == pytest.approx(0.5)


def test_reader_errors_name_the_file(tmp_path):
    bad = tmp_path / 'force_train.out'
    bad.write_text('1 2 3 4 5 6\n1 2 3 4 5\n')
    with pytest.raises(ValueError, match=r'force_train.out, line 2: 5 columns, expected 6'):
        read_force_out(bad)
    empty = tmp_path / 'energy_train.out'
    empty.write_text('')
    with pytest.raises(ValueError, match='energy_train.out: no data rows'):
        read_energy_out(empty)
    with pytest.raises(FileNotFoundError):
        read_training_directory(tmp_path / 'nothing')
    (tmp_path / 'empty_dir').mkdir()
    with pytest.raises(FileNotFoundError, match='holds no loss.out'):
        read_training_directory(tmp_path / 'empty_dir')


def test_read_loss_headerless_column_counts(tmp_path):
    qnep = tmp_path / 'loss.out'
    np.savetxt(qnep, [[100] + [0.1] * 13, [200] + [0.05] * 13], fmt='%g')
    frame = read_loss(qnep)
    assert list(frame.index) == [100, 200]
    assert {'RMSE_Q_train', 'RMSE_Z_train', 'RMSE_F_test'} <= set(frame.columns)
    bad = tmp_path / 'bad' / 'loss.out'
    bad.parent.mkdir()
    np.savetxt(bad, [[100] + [0.1] * 6], fmt='%g')
    with pytest.raises(ValueError, match=r'bad/loss.out: .*7 data columns'):
        read_loss(bad)


# ------------------------------------------------------------------------------- real training with neppo


def _synthetic_structures(n: int = 5):
    """EMT-labelled rattled and strained 32-atom Cu/Al fcc cells (cell 7.3 Å: thinner than 2 x 5 Å)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(0)
    structures = []
    for k in range(n):
        atoms = bulk('Cu', 'fcc', a=3.65, cubic=True).repeat(2)
        atoms.symbols[rng.choice(len(atoms), size=8 + k, replace=False)] = 'Al'
        atoms.set_cell(atoms.cell * (1 + 0.01 * (k - 2)), scale_atoms=True)
        atoms.rattle(0.08, seed=k)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        structures.append(atoms)
    return structures, ('Cu', 'Al'), (5.0, 4.0)


def _reference_structures(nep_training: Path, n: int = 5):
    return read_train_xyz(nep_training / 'train.xyz')[:n], LLZO, (5.0, 4.0)


@pytest.mark.slow
@pytest.mark.parametrize('source', ['synthetic', 'reference'])
def test_neppo_training_agrees_with_cpunep(tmp_path, source, request):
    """Train a tiny NEP with `neppo train --device cpu` (AdamW, 60 steps) and evaluate the written nep.txt with
    calorine's CPUNEP (nep_cpu, C++): two independent implementations must agree on the final training RMSE.

    Observed (neppo 1.0, calorine 4.1, 2 CPUs): force RMSE from CPUNEP and from force_train.out agree to 7e-7
    (synthetic) and 3e-7 (LLZO) relative, loss.out (5 decimals) to its print precision (5e-5, 9e-6 relative),
    and per-atom forces to 8e-6 eV/Å at most.
    """
    from calorine.calculators import CPUNEP

    if source == 'reference':
        structures, elements, cutoff = _reference_structures(request.getfixturevalue('nep_training'))
    else:
        structures, elements, cutoff = _synthetic_structures()
    executable = shutil.which('neppo') or str(Path(sys.executable).parent / 'neppo')
    if not Path(executable).exists():
        pytest.skip('neppo executable not installed')

    params = validate_nep_parameters({'cutoff': cutoff, 'n_max': (4, 4), 'basis_size': (4, 4), 'neuron': 8,
                                      'batch': len(structures), 'generation': 60, 'seed': 1,
                                      'output_interval': 20}, elements, 'neppo')
    write_nep_in(params, tmp_path / 'nep.in')
    write_train_xyz(structures, tmp_path / 'train.xyz')
    completed = subprocess.run([executable, 'train', str(tmp_path), '--device', 'cpu'], capture_output=True,
                               text=True, timeout=900)  # a guard against a hang, not a speed test (170 s failed at load 10+)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]

    outputs = read_training_directory(tmp_path)
    assert {'energy', 'force', 'virial', 'stress'} <= set(outputs['train'])
    last = outputs['loss'].iloc[-1]
    assert outputs['loss'].index[-1] == 60
    from_files = rmse_from_outputs(outputs['train'])

    calculator = CPUNEP(str(tmp_path / 'nep.txt'))
    predicted, target, energy_errors = [], [], []
    for atoms in read_train_xyz(tmp_path / 'train.xyz'):
        copy = atoms.copy()
        copy.calc = calculator
        predicted.append(copy.get_forces())
        target.append(atoms.get_forces())
        energy_errors.append((copy.get_potential_energy() - atoms.get_potential_energy()) / len(atoms))
    cpunep_force = rmse(np.concatenate(predicted), np.concatenate(target))
    cpunep_energy = float(np.sqrt(np.mean(np.square(energy_errors))))

    assert cpunep_force == pytest.approx(from_files['force_mev_per_angstrom'] / 1000, rel=1e-4)
    assert cpunep_force == pytest.approx(last['RMSE_F_train'], rel=1e-3, abs=0.6e-5)
    assert cpunep_energy == pytest.approx(last['RMSE_E_train'], rel=1e-3, abs=0.6e-5)
    # the forces themselves, atom by atom (float32 training vs float64 nep_cpu)
    np.testing.assert_allclose(np.concatenate(predicted), outputs['train']['force'].predicted, atol=5e-5)


@pytest.mark.reference
def test_summarise_training_directory(nep_training):
    """The library function behind `aiida-sseff analyze nep-training` and the parser's results: the last loss.out row
    (E 0.00012 eV/atom, F 0.03603 eV/Å, V 0.00322 eV/atom) and the RMSEs recomputed from *_train.out, the virial from
    stress_train.out x V/N (batch 200 >= 25 structures keeps the order of train.xyz), to the 5 printed decimals."""
    from aiida_sseff.io.nep import summarise_training_directory

    summary, outputs = summarise_training_directory(nep_training)
    assert summary['program'] == 'nep' and summary['generation'] == 100000 and summary['directory'] == str(nep_training)
    assert summary['loss_out']['train'] == pytest.approx({'energy_mev_per_atom': 0.12, 'force_mev_per_angstrom': 36.03,
                                                          'virial_mev_per_atom': 3.22})
    recomputed = summary['recomputed']['train']
    for key, printed in (('energy_mev_per_atom', 0.12), ('force_mev_per_angstrom', 36.03), ('virial_mev_per_atom', 3.22)):
        assert recomputed[key] == pytest.approx(printed, abs=0.005 + 1e-9)
    assert summary['virial_from']['train'] == 'stress_out' and summary['loss_out']['test'] is None
    assert set(outputs['train']) == {'energy', 'force', 'stress'}
    with pytest.raises(ValueError, match="program must be 'auto', 'nep' or 'neppo'; got 'gpumd'"):
        summarise_training_directory(nep_training, program='gpumd')


# ------------------------------------------------------------------------------------------- qNEP (charge models)


@pytest.mark.parametrize('charge_mode', [1, 2])
def test_qnep_keywords_written_and_read_by_neppo(tmp_path, charge_mode):
    """charge_mode 1/2 with lambda_q/lambda_z goes to nep.in, and neppo's own parser builds a charge model (QNEP)
    whose loss weights the total charge with lambda_q (neppo.nep_in.get_loss)."""
    from neppo.losses import ChargeLoss
    from neppo.models import QNEP
    from neppo.nep_in import get_loss, get_model
    from neppo.nep_in import read_nep_in as neppo_read_nep_in

    normalised = validate_nep_parameters({'cutoff': (5, 4), 'neuron': 8, 'charge_mode': charge_mode, 'lambda_q': 0.3,
                                          'lambda_z': 0.0, 'seed': 1}, LLZO, 'neppo')
    path = write_nep_in(normalised, tmp_path / 'nep.in')
    lines = path.read_text().splitlines()
    assert f'charge_mode {charge_mode}' in lines and 'lambda_q 0.3' in lines and 'lambda_z 0' in lines
    assert read_nep_in(path) == normalised
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        settings = neppo_read_nep_in(path)
    model = get_model(settings, tmp_path)
    assert isinstance(model, QNEP) and model.charge_mode == charge_mode
    charge_terms = [term for term in get_loss(settings, has_bec=False).terms if isinstance(term, ChargeLoss)]
    assert len(charge_terms) == 1 and charge_terms[0].weight == pytest.approx(0.3 * charge_terms[0].sigma)
    gpumd = validate_nep_parameters({'charge_mode': charge_mode, 'zbl': 2.0}, LLZO, 'nep')
    assert gpumd['charge_mode'] == charge_mode and gpumd['zbl'] == 2.0  # nep4_zbl_charge<m>: ZBL is allowed


@pytest.mark.parametrize(('params', 'message'), [
    ({'lambda_q': 0.1}, "'lambda_q' weights a loss term of a charge model"),
    ({'lambda_z': 0.5, 'charge_mode': 0}, "'lambda_z' weights a loss term of a charge model"),
    ({'lambda_q': -0.1, 'charge_mode': 1}, "'lambda_q'"),
    ({'charge_mode': (1, 1)}, "'charge_mode': got 2 value"),  # flip_charge: neppo refuses it
])
def test_qnep_validation_errors(params, message):
    with pytest.raises(ValueError, match=message):
        validate_nep_parameters(params, LLZO, 'neppo')


def test_charge_rmse_and_mean_charge_by_element():
    """GPUMD's RMSE_Q by hand: structures of 2 and 1 atoms with raw charges (0.1, -0.1) and (0.3): errors of the
    total charge per atom 0 and 0.3 e/atom -> sqrt(0.09 / 2)."""
    charges = [0.1, -0.1, 0.3]
    assert charge_rmse(charges, [2, 1]) == pytest.approx(np.sqrt(0.09 / 2))
    assert charge_rmse(charges, [2, 1], total_charges=[0.0, 0.3]) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match='3 charges for structures of 4 atoms'):
        charge_rmse(charges, [2, 2])
    assert mean_charge_by_element(charges, ['Li', 'O', 'Li']) == pytest.approx({'Li': 0.2, 'O': -0.1})
    with pytest.raises(ValueError, match='3 charges for 2 atoms'):
        mean_charge_by_element(charges, ['Li', 'O'])


def test_read_bec_out_counts_labelled_atoms_only(tmp_path):
    """bec_*.out: 9 predicted then 9 target components per atom; atoms without targets (zeros, as neppo writes for
    structures without BEC) do not enter the BEC RMSE."""
    path = tmp_path / 'bec_train.out'
    labelled = np.r_[np.eye(3).ravel() * 2.1, np.eye(3).ravel() * 2.0]
    unlabelled = np.r_[np.full(9, 5.0), np.zeros(9)]
    np.savetxt(path, [labelled, unlabelled])
    table = read_bec_out(path)
    assert table.predicted.shape == table.target.shape == (2, 9)
    assert rmse_from_outputs({'bec': table})['bec_e'] == pytest.approx(np.sqrt(3 * 0.1 ** 2 / 9))
    (tmp_path / 'charge_train.out').write_text('0.5\n-0.25\n')
    np.testing.assert_allclose(read_charge_out(tmp_path / 'charge_train.out'), [0.5, -0.25])
    assert set(read_training_directory(tmp_path)['train']) == {'bec', 'charge'}


@pytest.fixture(scope='module')
def neppo_qnep_run(tmp_path_factory, reference_dir):
    """A real `neppo train --device cpu` of a charge model (charge_mode 1, tiny net, 30 steps) on 3 LLZO structures
    (192 atoms each) with a fourth as test set: about 15 s."""
    executable = shutil.which('neppo') or str(Path(sys.executable).parent / 'neppo')
    if not Path(executable).exists():
        pytest.skip('neppo executable not installed')
    directory = tmp_path_factory.mktemp('qnep')
    structures = read_train_xyz(reference_dir / 'llzo' / 'nep_training' / 'train.xyz')[:4]
    params = validate_nep_parameters({'cutoff': (5, 4), 'n_max': (2, 2), 'basis_size': (4, 4), 'l_max': (4, 0, 0),
                                      'neuron': 4, 'charge_mode': 1, 'batch': 3, 'generation': 30, 'seed': 1,
                                      'output_interval': 10}, LLZO, 'neppo')
    write_nep_in(params, directory / 'nep.in')
    write_train_xyz(structures[:3], directory / 'train.xyz')
    write_train_xyz(structures[3:], directory / 'test.xyz')
    completed = subprocess.run([executable, 'train', str(directory), '--device', 'cpu'], capture_output=True,
                               text=True, timeout=900)  # a guard against a hang, not a speed test (170 s failed at load 10+)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    return directory


@pytest.mark.reference
def test_neppo_qnep_outputs(neppo_qnep_run):
    """The files of a real qNEP training: nep.txt says nep4_charge1; loss.out has the charge columns (no BEC column
    without BEC targets); charge_*.out one raw charge per atom, from which the total-charge RMSE recomputed equals
    loss.out's RMSE_Q to its 5 printed decimals (measured: 0.003870 vs 0.00387 for a 20-step run)."""
    from aiida_sseff.io.nep import summarise_training_directory

    assert (neppo_qnep_run / 'nep.txt').read_text().split()[0] == 'nep4_charge1'
    summary, outputs = summarise_training_directory(neppo_qnep_run)
    loss = outputs['loss']
    assert {'RMSE_Q_train', 'RMSE_Q_test'} <= set(loss.columns) and 'RMSE_Z_train' not in loss.columns
    assert set(outputs['train']) == {'energy', 'force', 'virial', 'stress', 'charge'}
    assert outputs['train']['charge'].shape == (3 * 192,) and outputs['test']['charge'].shape == (192,)
    for label in ('train', 'test'):
        recomputed = charge_rmse(outputs[label]['charge'], [192] * (3 if label == 'train' else 1))
        assert recomputed > 1e-5  # raw charges do not sum to zero: the check below is not 0 == 0
        assert recomputed == pytest.approx(loss[f'RMSE_Q_{label}'].iloc[-1], abs=0.6e-5)
        assert summary['recomputed'][label]['charge_e_per_atom'] == pytest.approx(recomputed)
        assert summary['loss_out'][label]['charge_e_per_atom'] == loss[f'RMSE_Q_{label}'].iloc[-1]
        assert summary['loss_out'][label]['bec_e'] is None


@pytest.mark.reference
def test_cpunep_charges_are_the_neutralised_raw_charges(neppo_qnep_run):
    """calorine's CPUNEP on the trained qNEP returns per-atom charges that are neppo's raw charges (charge_train.out)
    shifted by the structure's mean, so that the cell is neutral (measured: 1e-16 e against neppo in memory; the
    file's %g print limits it here to ~1e-7 e)."""
    from calorine.calculators import CPUNEP

    raw = read_charge_out(neppo_qnep_run / 'charge_train.out').reshape(3, 192)
    calculator = CPUNEP(str(neppo_qnep_run / 'nep.txt'))
    for index, atoms in enumerate(read_train_xyz(neppo_qnep_run / 'train.xyz')):
        atoms.calc = calculator
        atoms.get_potential_energy()
        charges = calculator.results['charges']
        assert abs(charges.sum()) < 1e-12
        np.testing.assert_allclose(charges, raw[index] - raw[index].mean(), atol=1e-6)
