"""``sseff.mace.train``: input writing into a sandbox, refusals before submission, and REAL mace-torch trainings on
the CPU (MACE-T0-I and MACE-T1-E, tiny models, 2 epochs on LLZO cells) whose models are loaded by ``MaceModel`` and
run MD through the engine; a second job continues the first from its checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.common.folders import Folder
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager
from ase.io import read

from aiida_sseff.calculations.mace import MaceTrainCalculation
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.data.model import MaceModel

#: a model small enough for 2 CPU cores (about 10-20 s per training of 4 LLZO cells of 192 atoms)
TINY = {'r_max': 4.0, 'num_channels': 8, 'correlation': 2, 'max_ell': 1, 'num_radial_basis': 4,
        'radial_MLP': [16], 'MLP_irreps': '8x0e', 'max_num_epochs': 2, 'batch_size': 2, 'valid_batch_size': 2,
        'plot': False, 'error_table': 'PerAtomRMSEstressvirials', 'default_dtype': 'float64'}


def llzo(reference_dir: Path, start: int, stop: int) -> list:
    """Frames of the LLZO NEP training set (DFT energy, forces, stress; 192 atoms; shared/reference/README)."""
    return read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index=f'{start}:{stop}')


@pytest.fixture(scope='module')
def llzo_sets(aiida_profile, reference_dir):
    return {'train': LabelledDataset(llzo(reference_dir, 0, 4)).store(),
            'validation': LabelledDataset(llzo(reference_dir, 4, 6)).store(),
            'test': LabelledDataset(llzo(reference_dir, 6, 8)).store()}


def prepare(tmp_path, **inputs):
    process = instantiate_process(get_manager().get_runner(), MaceTrainCalculation, **inputs)
    (tmp_path / 'sandbox').mkdir()
    folder = Folder(str(tmp_path / 'sandbox'))
    calcinfo = process.prepare_for_submission(folder)
    return Path(folder.abspath), calcinfo


def test_prepare_writes_ref_keys_and_variant_options(tmp_path, mace_code, llzo_sets):
    folder, calcinfo = prepare(tmp_path, code=mace_code, variant=orm.Str('MACE-T1-E'), parameters=orm.Dict(TINY),
                               seed=orm.Int(5), e0s=orm.Dict({'Li': -1.0, 'La': -2.0, 'Zr': -3.0, 'O': -4.0}),
                               **llzo_sets)
    written = read(folder / 'train.xyz', index=':')
    source = llzo_sets['train'].get_ase()
    assert len(written) == 4 and len(read(folder / 'test.xyz', index=':')) == 2
    for frame, atoms in zip(written, source, strict=True):
        assert frame.calc is None  # labels under REF_ keys, not taken over by a SinglePointCalculator
        assert frame.info['REF_energy'] == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(frame.arrays['REF_forces'], atoms.get_forces(), atol=1e-8)
        np.testing.assert_allclose(frame.info['REF_stress'].reshape(3, 3), atoms.get_stress(voigt=False), atol=1e-12)
    train, *evaluations = calcinfo.codes_info
    args = train.cmdline_params
    assert args[0] == 'train'
    options = dict(zip(args[1::2], args[2::2], strict=False))
    assert options['--num_interactions'] == '2' and options['--max_L'] == '1'  # T1 and E
    assert options['--seed'] == '5' and options['--device'] == 'cpu'
    assert options['--loss'] == 'stress' and options['--compute_stress'] == 'True'  # every frame has a stress
    assert json.loads(options['--E0s']) == {'3': -1.0, '57': -2.0, '40': -3.0, '8': -4.0}  # by atomic number
    assert options['--radial_MLP'] == '[16]' and options['--plot'] == 'False'
    assert '--restart_latest' not in args
    evaluation, = evaluations  # one process evaluates every set
    assert evaluation.cmdline_params[:3] == ['eval', '--configs', 'train.xyz,valid.xyz,test.xyz']
    assert 'logs/mace_run-5.log' in calcinfo.retrieve_list and 'mace.model' in calcinfo.retrieve_list


def test_t0_i_is_one_invariant_layer(tmp_path, mace_code, llzo_sets):
    _, calcinfo = prepare(tmp_path, code=mace_code, variant=orm.Str('MACE-T0-I'), parameters=orm.Dict(TINY),
                          train=llzo_sets['train'], stress=orm.Bool(False))
    args = calcinfo.codes_info[0].cmdline_params
    options = dict(zip(args[1::2], args[2::2], strict=False))
    assert options['--num_interactions'] == '1' and options['--max_L'] == '0'
    assert options['--loss'] == 'weighted' and options['--E0s'] == 'average'
    assert calcinfo.codes_info[1].cmdline_params[2] == 'train.xyz'  # only the training set is evaluated


def _without_stress(reference_dir):
    frames = llzo(reference_dir, 0, 2)
    for atoms in frames:
        atoms.calc.results.pop('stress')
    return LabelledDataset(frames)


@pytest.mark.parametrize(('change', 'message'), [
    ({'variant': 'MACE-T2-X'}, 'unknown MACE variant `MACE-T2-X`; choose one of MACE-T0-I, MACE-T0-E, MACE-T1-E'),
    ({'variant': 'MACE-T1-E-LES'}, 'needs the `les` package'),
    ({'parameters': {**TINY, 'num_interactions': 3}}, 'parameters may not set num_interactions'),
    ({'parameters': {**TINY, 'max_L': 1}}, 'variant `MACE-T0-I` is invariant (I): max_L must be 0, got max_L = 1'),
    ({'parameters': {**TINY, 'r_cut': 4.0}}, 'has no option(s) r_cut'),
    ({'e0s': {'Li': -1.0}}, 'e0s gives no isolated-atom energy for La, O, Zr'),
    ({'stress': True, 'no_stress': True}, 'stress training was asked for (stress=True), but the train set'),
])
def test_refused_before_submission(mace_code, llzo_sets, reference_dir, change, message):
    inputs = {'code': mace_code, 'variant': orm.Str(change.get('variant', 'MACE-T0-I')),
              'parameters': orm.Dict(change.get('parameters', TINY)),
              'train': _without_stress(reference_dir) if change.get('no_stress') else llzo_sets['train']}
    if 'e0s' in change:
        inputs['e0s'] = orm.Dict(change['e0s'])
    if 'stress' in change:
        inputs['stress'] = orm.Bool(change['stress'])
    escaped = message.replace('(', r'\(').replace(')', r'\)').replace('.', r'\.')
    with pytest.raises(ValueError, match=escaped):
        instantiate_process(get_manager().get_runner(), MaceTrainCalculation, **inputs)


# ---------------------------------------------------------------------------------------------- real trainings

_TRAINED: dict[str, int] = {}


def trained(variant, mace_code, llzo_sets):
    """One real training per variant per session (the later tests of this module reuse it)."""
    if variant not in _TRAINED:
        _, node = run_get_node(MaceTrainCalculation, code=mace_code, variant=orm.Str(variant),
                               parameters=orm.Dict(TINY), seed=orm.Int(3), **llzo_sets)
        _TRAINED[variant] = node.pk
    return orm.load_node(_TRAINED[variant])


@pytest.mark.slow
@pytest.mark.parametrize(('variant', 'interactions', 'irreps'), [
    ('MACE-T0-I', 1, '8x0e'), ('MACE-T1-E', 2, '8x0e+8x1o')])
def test_training_outputs_and_md(mace_code, engine_code, llzo_sets, tmp_path, variant, interactions, irreps):
    from aiida_sseff.calculations.engine import EngineMdCalculation

    node = trained(variant, mace_code, llzo_sets)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    model = node.outputs.model
    assert isinstance(model, MaceModel)
    # read from the model file by MaceModel, and equal to what was asked for
    assert model.base.attributes.get('num_interactions') == interactions
    assert model.base.attributes.get('hidden_irreps') == irreps
    assert model.base.attributes.get('correlation') == 2
    assert model.base.attributes.get('r_max') == pytest.approx(4.0)
    assert sorted(model.elements) == ['La', 'Li', 'O', 'Zr']
    assert 'compiled_model' in node.outputs

    log = node.outputs.training_log
    np.testing.assert_array_equal(log.get_array('epoch'), [-1, 0, 1])  # before training, then 2 epochs
    assert np.all(np.isfinite(log.get_array('valid_rmse_f')))

    results = node.outputs.results.get_dict()
    for label, table in (('train', 'train_Default'), ('validation', 'valid_Default'), ('test', 'Default_Default')):
        parity = node.outputs[f'parity_{label}']
        n_structures = len(llzo_sets[label].get_ase())
        assert parity.get_array('energy_predicted').shape == (n_structures,)
        assert parity.get_array('force_target').shape == (192 * n_structures, 3)
        assert parity.get_array('stress_predicted').shape == (n_structures, 6)
        # The same model evaluated twice, independently: by mace_run_train's own error table after training and by
        # mace_eval_configs + our RMSE (GPUMD's definitions). The log prints one decimal (meV), hence 0.06 meV.
        ours = results['recomputed'][label]
        assert table in results['error_tables'], results
        theirs = results['error_tables'][table]
        assert ours['force_mev_per_angstrom'] == pytest.approx(theirs['force_mev_per_angstrom'], abs=0.06)
        assert ours['energy_mev_per_atom'] == pytest.approx(theirs['energy_mev_per_atom'], abs=0.06)
    # targets are the DFT labels of the dataset (GPUMD stress sign: -ASE stress, GPa)
    frames = llzo_sets['test'].get_ase()
    np.testing.assert_allclose(node.outputs.parity_test.get_array('energy_target'),
                               [a.get_potential_energy() / len(a) for a in frames], atol=1e-10)
    np.testing.assert_allclose(node.outputs.parity_test.get_array('stress_target')[:, 0],
                               [-a.get_stress()[0] * 160.21766208 for a in frames], rtol=1e-6)

    # a few MD steps with the trained model through the engine, on a 192-atom LLZO cell
    structure = frames[0].copy()
    structure.calc = None
    md_parameters = {'temperature_K': 600.0, 'n_steps': 4, 'timestep_fs': 1.0, 'thermo_interval': 2,
                     'trajectory_interval': 2, 'snapshot_interval': 0, 'seed': 1}
    # a structure with an element the model lacks is refused: before submission, and by the engine itself
    foreign = structure.copy()
    foreign[0].symbol = 'Al'
    with pytest.raises(ValueError, match='the model does not know the element.s. Al'):
        instantiate_process(get_manager().get_runner(), EngineMdCalculation, code=engine_code,
                            structure=orm.StructureData(ase=foreign), model=model,
                            calculator=orm.Dict({'kind': 'mace'}), parameters=orm.Dict(md_parameters))
    from aiida_sseff.engines.calculators import UnknownElementError, check_elements

    model_file = model.export_file(tmp_path / 'model.model')
    with pytest.raises(UnknownElementError, match='mace model does not know the element.s. Al'):
        check_elements(foreign.get_chemical_symbols(), {'kind': 'mace', 'model': model_file.name}, tmp_path)
    outputs, md = run_get_node(
        EngineMdCalculation, code=engine_code, structure=orm.StructureData(ase=structure), model=model,
        calculator=orm.Dict({'kind': 'mace'}), parameters=orm.Dict(md_parameters))
    assert md.is_finished_ok, md.exit_message
    assert outputs['trajectory'].numsteps == 3
    assert np.all(np.isfinite(outputs['thermo'].get_array('potential_energy_eV')))


@pytest.mark.slow
def test_continues_from_checkpoints(mace_code, llzo_sets):
    """A second job given the first one's remote folder resumes after its last epoch (mace --restart_latest)."""
    first = trained('MACE-T0-I', mace_code, llzo_sets)
    assert first.is_finished_ok
    _, node = run_get_node(MaceTrainCalculation, code=mace_code, variant=orm.Str('MACE-T0-I'),
                           parameters=orm.Dict({**TINY, 'max_num_epochs': 3}), seed=orm.Int(3),
                           parent_folder=first.outputs.remote_folder, **llzo_sets)
    assert node.is_finished_ok, node.exit_message
    results = node.outputs.results.get_dict()
    # mace-torch checkpoints an epoch only when the validation loss improves (mace/tools/train.py), and a restart
    # starts at the checkpoint's epoch (start_epoch = load_latest(), mace/cli/run_train.py): the first run's best
    # epoch, the first minimum of its validation loss over epochs 0 and 1 (not 0 unless it was the best)
    log = first.outputs.training_log
    trained_epochs = log.get_array('epoch') >= 0
    best = int(log.get_array('epoch')[trained_epochs][np.argmin(log.get_array('valid_loss')[trained_epochs])])
    assert results['start_epoch'] == best
    assert results['last_epoch'] == 2  # and goes on to max_num_epochs = 3


@pytest.mark.slow
def test_e3nn_import_fix():
    """torch 2.13 + e3nn 0.4.4: a bare `import e3nn.o3` fails (weights_only load of a file with `slice`s); through
    aiida_sseff.compat it works, e3nn imported first (the order mace-torch's own workaround does not cover)."""
    import subprocess
    import sys

    pytest.importorskip('mace')
    import os

    # mace's import, earlier in this test process, set TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD; the children must not inherit it
    environment = {key: value for key, value in os.environ.items() if key != 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'}
    bare = subprocess.run([sys.executable, '-c', 'import e3nn.o3'], capture_output=True, text=True, env=environment)
    assert bare.returncode != 0 and 'slice' in bare.stderr
    fixed = subprocess.run([sys.executable, '-c', 'from aiida_sseff.compat import import_mace; import_mace(); '
                            'from mace.calculators import MACECalculator'], capture_output=True, text=True,
                           env=environment)
    assert fixed.returncode == 0, fixed.stderr
