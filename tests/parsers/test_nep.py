"""``sseff.nep.train`` parser on the REAL outputs of a GPUMD ``nep`` training (shared/reference/llzo/nep_training:
25 DFT-labelled LLZO structures, NEP4+ZBL, 100,000 generations), made into the ``retrieved`` folder of a fake
finished CalcJob node, and on broken variants of those files (missing, truncated, NaN, non-decreasing loss)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.plugins import CalculationFactory, ParserFactory

NepTrainCalculation = CalculationFactory('sseff.nep.train')
NepTrainParser = ParserFactory('sseff.nep.train')

OUTPUT_FILES = ('nep.txt', 'loss.out', 'energy_train.out', 'force_train.out', 'stress_train.out')

# the reference nep.in (type 4 Li La Zr O, version 4, cutoff 6 4, zbl 1.8, neuron 30, batch 200, population 50,
# generation 100000) with the n_max/basis_size its nep.txt records (GPUMD < v5.3 defaults 4 4 / 8 8)
REFERENCE_PARAMETERS = {'cutoff': [6, 4], 'zbl': 1.8, 'neuron': 30, 'batch': 200, 'population': 50,
                        'generation': 100000, 'n_max': [4, 4], 'basis_size': [8, 8], 'l_max': [4, 2, 0]}


@pytest.fixture(scope='module')
def nep_training(reference_dir):
    """The real GPUMD `nep` run on 25 LLZO structures (shared/reference/llzo/README.md; skipped with reference_dir)."""
    return reference_dir / 'llzo' / 'nep_training'


@pytest.fixture(scope='module')
def llzo_train(aiida_profile, nep_training):
    """The reference train.xyz as a stored ``sseff.dataset`` (the parser reads its volumes for stress -> virial)."""
    from aiida_sseff.data.dataset import LabelledDataset
    from aiida_sseff.io.extxyz import read_train_xyz

    return LabelledDataset(read_train_xyz(nep_training / 'train.xyz')).store()


@pytest.fixture
def generate_calc_job_node(calc_job_node_factory):
    """A stored CalcJobNode of ``sseff.nep.train`` with the given inputs and a ``retrieved`` FolderData."""

    def _generate(folder: Path, train, parameters: dict | None = None, program: str = 'nep'):
        inputs = {'parameters': orm.Dict(parameters or REFERENCE_PARAMETERS), 'program': orm.Str(program),
                  'train': train}
        return calc_job_node_factory('sseff.nep.train', folder, inputs)

    return _generate


def retrieved(tmp_path, source, names=OUTPUT_FILES) -> Path:
    folder = tmp_path / 'retrieved'
    folder.mkdir()
    for name in names:
        shutil.copy(source / name, folder / name)
    (folder / 'nep.err').write_text('')
    return folder


@pytest.mark.reference
def test_real_output_parsed(tmp_path, nep_training, llzo_train, generate_calc_job_node):
    """Final RMSEs: loss.out's last row (generation 100000: E 0.00012 eV/atom, F 0.03603 eV/Å, V 0.00322 eV/atom)
    equals the RMSEs recomputed from energy/force/stress_train.out (loss.out prints 5 decimals, so within
    0.5e-5 eV = 0.005 meV)."""
    from aiida_sseff.analysis.metrics import rmse
    from aiida_sseff.io.nep import read_force_out

    node = generate_calc_job_node(retrieved(tmp_path, nep_training), llzo_train)
    outputs, calcfunction = NepTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    results = outputs['results'].get_dict()
    reported, recomputed = results['loss_out']['train'], results['recomputed']['train']
    assert reported['force_mev_per_angstrom'] == pytest.approx(36.03, abs=1e-9)
    forces = read_force_out(nep_training / 'force_train.out')
    assert recomputed['force_mev_per_angstrom'] == pytest.approx(1000 * rmse(*forces), rel=1e-12)
    assert recomputed['force_mev_per_angstrom'] == pytest.approx(reported['force_mev_per_angstrom'], abs=0.005)
    assert recomputed['energy_mev_per_atom'] == pytest.approx(reported['energy_mev_per_atom'], abs=0.005)
    # stress-only run: the virial RMSE comes from stress_train.out x V/N (batch 200 >= 25: rows in train.xyz order)
    assert results['virial_from']['train'] == 'stress_out'
    assert recomputed['virial_mev_per_atom'] == pytest.approx(reported['virial_mev_per_atom'], abs=0.005)
    assert results['loss_out']['test'] is None and results['recomputed']['test'] is None
    assert results['generation'] == 100000 and results['n_reports'] == 1000
    assert results['total_loss_last'] == pytest.approx(0.06169) and results['total_loss_first'] == pytest.approx(0.50701)

    loss = outputs['loss']
    assert loss.get_array('generation')[-1] == 100000 and len(loss.get_array('RMSE_F_train')) == 1000
    parity = outputs['parity_train']
    assert parity.get_array('force_predicted').shape == (4800, 3)
    assert parity.get_array('energy_target').shape == (25,)
    assert set(parity.get_arraynames()) == {f'{q}_{w}' for q in ('energy', 'force', 'stress')
                                            for w in ('predicted', 'target')}
    model = outputs['model']
    assert model.elements == ['Li', 'La', 'Zr', 'O'] and model.cutoff == (6.0, 4.0)
    assert 'parity_test' not in outputs and 'restart' not in outputs


@pytest.mark.reference
def test_parsed_model_reproduces_gpumd_force_rmse_with_cpunep(tmp_path, nep_training, llzo_train,
                                                            generate_calc_job_node):
    """calorine's CPUNEP (via NepModel.get_calculator) on the parsed nep.txt and train.xyz gives the force RMSE the
    parser recomputes from GPUMD's force_train.out (float32 on a GPU: 36.034 meV/Å): two independent NEP
    implementations. Measured: 1.9e-6 relative; 1e-4 allows float32 rounding of ~5000 force components."""
    from aiida_sseff.analysis.metrics import rmse

    node = generate_calc_job_node(retrieved(tmp_path, nep_training), llzo_train)
    outputs, calcfunction = NepTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok
    calculator = outputs['model'].get_calculator()
    predicted, target = [], []
    for atoms in llzo_train.get_ase():
        target.append(atoms.get_forces())
        atoms.calc = calculator
        predicted.append(atoms.get_forces())
    cpunep = 1000 * rmse(np.concatenate(predicted), np.concatenate(target))
    reported = outputs['results']['recomputed']['train']['force_mev_per_angstrom']
    assert cpunep == pytest.approx(reported, rel=1e-4)


@pytest.mark.reference
@pytest.mark.parametrize('missing', ['nep.txt', 'loss.out'])
def test_missing_file_exit_code(tmp_path, nep_training, llzo_train, generate_calc_job_node, missing):
    folder = retrieved(tmp_path, nep_training, [n for n in OUTPUT_FILES if n != missing])
    (folder / 'nep.err').write_text('CUDA Error:\n    Error text: out of memory\n')
    node = generate_calc_job_node(folder, llzo_train)
    _, calcfunction = NepTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == NepTrainCalculation.exit_codes.ERROR_MISSING_OUTPUT.status
    assert missing in calcfunction.exit_message and 'out of memory' in calcfunction.exit_message


@pytest.mark.reference
def test_truncated_loss_means_incomplete_training(tmp_path, nep_training, llzo_train, generate_calc_job_node):
    """A run killed after 50,000 generations (first 500 rows of loss.out kept): exit code 400, outputs kept."""
    folder = retrieved(tmp_path, nep_training)
    lines = (nep_training / 'loss.out').read_text().splitlines(keepends=True)
    (folder / 'loss.out').write_text(''.join(lines[:500]))
    node = generate_calc_job_node(folder, llzo_train)
    outputs, calcfunction = NepTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == NepTrainCalculation.exit_codes.ERROR_TRAINING_INCOMPLETE.status
    assert 'generation 50000 of 100000' in calcfunction.exit_message
    assert 'model' in outputs and outputs['results']['generation'] == 50000


@pytest.mark.reference
def test_truncated_files_unreadable(tmp_path, nep_training, llzo_train, generate_calc_job_node):
    """A half-written last line of loss.out is unreadable (301); a nep.txt cut in the middle is not a model (302)."""
    folder = retrieved(tmp_path, nep_training)
    text = (nep_training / 'loss.out').read_text()
    (folder / 'loss.out').write_text(text[:-40])
    node = generate_calc_job_node(folder, llzo_train)
    _, calcfunction = NepTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == NepTrainCalculation.exit_codes.ERROR_UNREADABLE_OUTPUT.status
    assert 'loss.out' in calcfunction.exit_message

    shutil.rmtree(folder)
    folder = retrieved(tmp_path, nep_training)
    lines = (nep_training / 'nep.txt').read_text().splitlines(keepends=True)
    (folder / 'nep.txt').write_text(''.join(lines[: len(lines) // 2]))
    node = generate_calc_job_node(folder, llzo_train)
    _, calcfunction = NepTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == NepTrainCalculation.exit_codes.ERROR_INVALID_MODEL.status


@pytest.mark.reference
def test_nan_and_flat_loss_exit_codes(tmp_path, nep_training, llzo_train, generate_calc_job_node):
    """A NaN in loss.out (diverged) gives 410 naming the generation; a loss that never fell gives 411."""
    folder = retrieved(tmp_path, nep_training)
    lines = (nep_training / 'loss.out').read_text().splitlines()
    fields = lines[700].split()
    fields[1] = 'nan'
    lines[700] = ' '.join(fields)
    (folder / 'loss.out').write_text('\n'.join(lines) + '\n')
    node = generate_calc_job_node(folder, llzo_train)
    outputs, calcfunction = NepTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == NepTrainCalculation.exit_codes.ERROR_LOSS_NAN.status
    assert 'generation 70100' in calcfunction.exit_message

    flat = [line.split() for line in (nep_training / 'loss.out').read_text().splitlines()]
    for row in flat:
        row[1] = '0.50701'  # the total loss of the first report, unchanged for 100,000 generations
    (folder / 'loss.out').write_text('\n'.join(' '.join(row) for row in flat) + '\n')
    node = generate_calc_job_node(folder, llzo_train)
    _, calcfunction = NepTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == NepTrainCalculation.exit_codes.ERROR_LOSS_NOT_DECREASING.status


# ------------------------------------------------------------------------------------------- qNEP (charge models)

QNEP_PARAMETERS = {'cutoff': [5, 4], 'n_max': [2, 2], 'basis_size': [4, 4], 'l_max': [4, 0, 0], 'neuron': 4,
                   'charge_mode': 1, 'batch': 3, 'generation': 30, 'seed': 1, 'output_interval': 10}
QNEP_FILES = ('nep.txt', 'nep_best.txt', 'loss.out', *(f'{q}_{label}.out' for label in ('train', 'test')
                                                       for q in ('energy', 'force', 'virial', 'stress', 'charge')))


@pytest.fixture(scope='module')
def qnep_run(aiida_profile, tmp_path_factory, nep_training):
    """A REAL `neppo train --device cpu` of a charge model (charge_mode 1, tiny net, 30 AdamW steps) on 3 LLZO
    structures with a fourth as test set, in the files the CalcJob writes; returns (directory, train, test). 10 s on
    an idle core, 40-70 s on the shared CI machine, hence the tests that use it are marked slow."""
    import subprocess
    import sys

    from aiida_sseff.data.dataset import LabelledDataset
    from aiida_sseff.io.extxyz import read_train_xyz, write_train_xyz
    from aiida_sseff.io.nep import validate_nep_parameters, write_nep_in

    executable = shutil.which('neppo') or str(Path(sys.executable).parent / 'neppo')
    if not Path(executable).exists():
        pytest.skip('neppo executable not installed')
    structures = read_train_xyz(nep_training / 'train.xyz')[:4]
    train, test = LabelledDataset(structures[:3]).store(), LabelledDataset(structures[3:]).store()
    directory = tmp_path_factory.mktemp('qnep_run')
    write_nep_in(validate_nep_parameters(QNEP_PARAMETERS, train.elements, 'neppo'), directory / 'nep.in')
    write_train_xyz(train.get_ase(), directory / 'train.xyz')
    write_train_xyz(test.get_ase(), directory / 'test.xyz')
    completed = subprocess.run([executable, 'train', str(directory), '--device', 'cpu'], capture_output=True,
                               text=True, timeout=900)  # a guard against a hang, not a speed test (170 s failed at load 10+)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    return directory, train, test


def _qnep_node(tmp_path, calc_job_node_factory, qnep_run, names=QNEP_FILES):
    directory, train, test = qnep_run
    folder = retrieved(tmp_path, directory, names)
    inputs = {'parameters': orm.Dict(QNEP_PARAMETERS), 'program': orm.Str('neppo'), 'train': train, 'test': test}
    return calc_job_node_factory('sseff.nep.train', folder, inputs)


@pytest.mark.slow
@pytest.mark.reference
def test_qnep_output_parsed(tmp_path, calc_job_node_factory, qnep_run):
    """Real neppo qNEP output: the model is recorded as a potential with charges; loss holds RMSE_Q (e/atom); the
    parity nodes hold one predicted charge per atom; the charge RMSE recomputed from charge_*.out equals loss.out's
    RMSE_Q to its 5 printed decimals; the mean charge of each element adds up to the raw total charge."""
    from aiida_sseff.io.nep import read_charge_out

    directory, train, test = qnep_run
    node = _qnep_node(tmp_path, calc_job_node_factory, qnep_run)
    outputs, calcfunction = NepTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    model = outputs['model']
    assert model.base.attributes.get('model_type') == 'potential_with_charges'
    assert model.base.attributes.get('charge_mode') == 1 and model.base.attributes.get('model_header') == 'nep4_charge1'
    loss = outputs['loss']
    assert loss.get_array('generation').tolist() == [10, 20, 30]
    assert loss.base.attributes.get('units')['RMSE_Q'] == 'e/atom' and 'RMSE_Z_train' not in loss.get_arraynames()
    assert outputs['parity_train'].get_array('charge_predicted').shape == (3 * 192,)
    assert outputs['parity_test'].get_array('charge_predicted').shape == (192,)
    assert outputs['parity_train'].base.attributes.get('units')['charge'] == 'e'

    results = outputs['results'].get_dict()
    assert results['model_type'] == 'potential_with_charges' and results['charge_mode'] == 1
    for label in ('train', 'test'):
        reported = results['loss_out'][label]['charge_e_per_atom']
        assert reported == loss.get_array(f'RMSE_Q_{label}')[-1] and reported > 1e-5
        assert results['recomputed'][label]['charge_e_per_atom'] == pytest.approx(reported, abs=0.6e-5)
    means = results['mean_charge_by_element']['train']
    assert set(means) == {'Li', 'La', 'Zr', 'O'}
    counts = {'Li': 3 * 56, 'La': 3 * 24, 'Zr': 3 * 16, 'O': 3 * 96}
    total = read_charge_out(directory / 'charge_train.out').sum()
    assert sum(means[e] * n for e, n in counts.items()) == pytest.approx(total, abs=1e-6)


@pytest.mark.slow
@pytest.mark.reference
def test_qnep_broken_charge_file(tmp_path, calc_job_node_factory, qnep_run):
    """A charge_train.out with a half-written row is refused with the unreadable-output exit code (301)."""
    directory, train, test = qnep_run
    folder = retrieved(tmp_path, directory, QNEP_FILES)
    (folder / 'charge_train.out').write_text((folder / 'charge_train.out').read_text() + '0.1 0.2\n')
    inputs = {'parameters': orm.Dict(QNEP_PARAMETERS), 'program': orm.Str('neppo'), 'train': train, 'test': test}
    node = calc_job_node_factory('sseff.nep.train', folder, inputs)
    _, calcfunction = NepTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == NepTrainCalculation.exit_codes.ERROR_UNREADABLE_OUTPUT.status
    assert 'charge_train.out' in calcfunction.exit_message
