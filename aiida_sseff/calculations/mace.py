"""``sseff.mace.train``: train a MACE model with mace-torch's ``mace_run_train`` (CPU or CUDA) on a ``sseff.dataset``.

The job folder receives ``train.xyz`` (and ``valid.xyz``/``test.xyz``) written from the dataset nodes with the
``REF_`` label keys (:func:`aiida_sseff.io.mace.write_mace_xyz`): the data travel in the provenance graph, never
as a path of the submitting machine. The Code is the ``aiida-sseff-mace`` wrapper of this package
(:mod:`aiida_sseff.compat`: mace-torch behind the torch 2.13 / e3nn import fix); it runs

1. ``aiida-sseff-mace train <mace_run_train options>`` (options from the variant, the parameters and the inputs,
   :func:`aiida_sseff.io.mace.training_arguments`), then
2. ``aiida-sseff-mace eval`` (``mace_eval_configs``, all sets in one process) of the trained model on the
   training set and on the validation/test sets given, for the parity data.

A ``parent_folder`` (the ``remote_folder`` of an earlier run with the same inputs) continues that training: its
``checkpoints/`` folder is copied in and ``--restart_latest`` given, so mace-torch resumes after the last saved
epoch (its checkpoint names hold the run name and seed, which therefore stay the same).
"""

from __future__ import annotations

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.data.model import MaceModel

__all__ = ['MaceTrainCalculation', 'output_names', 'wants_stress']

RUN_NAME = 'mace'
TRAIN_FILENAME = 'train.xyz'
VALID_FILENAME = 'valid.xyz'
TEST_FILENAME = 'test.xyz'
CHECKPOINTS_FOLDER = 'checkpoints'
STDOUT_FILENAME = 'mace_train.out'
STDERR_FILENAME = 'mace_train.err'
EVAL_STDOUT_FILENAME = 'mace_eval.out'
EVAL_STDERR_FILENAME = 'mace_eval.err'
#: sets evaluated after training -> the file they are written from
PARITY_SETS = {'train': TRAIN_FILENAME, 'validation': VALID_FILENAME, 'test': TEST_FILENAME}


def output_names(seed: int) -> dict[str, str]:
    """File names of one run (as retrieved: basenames). mace-torch names its log and results ``<name>_run-<seed>``."""
    tag = f'{RUN_NAME}_run-{int(seed)}'
    names = {
        'model': f'{RUN_NAME}.model',
        'compiled_model': f'{RUN_NAME}_compiled.model',
        'log': f'{tag}.log',
        'results': f'{tag}_train.txt',
        'log_path': f'logs/{tag}.log',
        'results_path': f'results/{tag}_train.txt',
    }
    for label in PARITY_SETS:
        names[f'predictions_{label}'] = f'{label}_predictions.xyz'
    return names


def wants_stress(inputs) -> bool:
    """Whether to train on stress: the ``stress`` input if given, else whether every dataset has stress labels."""
    if 'stress' in inputs and inputs['stress'] is not None:
        return bool(inputs['stress'].value)
    datasets = [inputs[key] for key in ('train', 'validation') if key in inputs and inputs[key] is not None]
    return bool(datasets) and all(dataset.base.attributes.get('has_virial', False) for dataset in datasets)


def _validate_labelled(value, _):
    if value is not None and not value.base.attributes.get('n_structures', 0):
        return f'the dataset <{value.pk or "unstored"}> is empty'
    if value is not None and not value.base.attributes.get('has_labels', False):
        return f'the dataset <{value.pk or "unstored"}> has no reference labels (energy and forces)'


def _validate_variant(value, _):
    from aiida_sseff.io.mace import UnknownVariantError, variant_options

    if value is None:
        return None
    try:
        variant_options(value.value)
    except UnknownVariantError as exception:
        return str(exception)


def _validate_inputs(inputs, _):
    """Refuse before submission what mace_run_train would refuse or silently misread."""
    from aiida_sseff.io.mace import UnknownVariantError, training_arguments

    train = inputs.get('train')
    if train is None or 'variant' not in inputs or 'parameters' not in inputs:
        return None
    if 'stress' in inputs and inputs['stress'].value:
        for key in ('train', 'validation'):
            dataset = inputs.get(key)
            if dataset is not None and not dataset.base.attributes.get('has_virial', False):
                return (f'stress training was asked for (stress=True), but the {key} set <{dataset.pk or "unstored"}>'
                        ' has structures without a stress label; give stress=False or a dataset with stress')
    elements = set(train.elements or [])
    for key in ('validation', 'test'):
        dataset = inputs.get(key)
        if dataset is not None:
            extra = sorted(set(dataset.elements or []) - elements)
            if extra:
                return f'the {key} set holds element(s) {", ".join(extra)} that the training set lacks'
    e0s = inputs['e0s'].get_dict() if 'e0s' in inputs else 'average'
    if isinstance(e0s, dict):
        missing = sorted(elements - set(e0s))
        if missing:
            return f'e0s gives no isolated-atom energy for {", ".join(missing)} (it gives {", ".join(sorted(e0s))})'
    try:
        training_arguments(inputs['parameters'].get_dict(), inputs['variant'].value, name=RUN_NAME,
                           seed=inputs['seed'].value if 'seed' in inputs else 0, train_file=TRAIN_FILENAME,
                           e0s=e0s, stress=wants_stress(inputs))
    except (ValueError, UnknownVariantError) as exception:
        return str(exception)
    return None


class MaceTrainCalculation(CalcJob):
    """Train a MACE model (mace-torch ``mace_run_train``) on a ``sseff.dataset``; evaluate it for parity data.

    Outputs (by :class:`aiida_sseff.parsers.mace.MaceTrainParser`): ``model`` (``sseff.model.mace``, the model
    file for MD), ``compiled_model`` (the TorchScript file mace-torch compiles, where it did), ``training_log``
    (ArrayData: per-epoch validation loss and RMSEs, mean training loss), ``parity_train`` / ``parity_validation``
    / ``parity_test`` (ArrayData in the form of ``sseff.nep.train``'s: energy eV/atom, force eV/Å, virial eV/atom,
    stress GPa), ``results`` (Dict: final RMSEs from mace's error tables and recomputed from the parity data).
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('train', valid_type=LabelledDataset, validator=_validate_labelled,
                   help='Labelled training structures (energy eV, forces eV/Å, optional stress), written as train.xyz.')
        spec.input('validation', valid_type=LabelledDataset, required=False, validator=_validate_labelled,
                   help='Validation structures (valid.xyz; mace picks the best epoch on them). Without it, mace '
                        'holds out `valid_fraction` (parameters; mace default 0.1) of the training set.')
        spec.input('test', valid_type=LabelledDataset, required=False, validator=_validate_labelled,
                   help='Test structures (test.xyz): evaluated after training, never trained on.')
        spec.input('variant', valid_type=orm.Str, validator=_validate_variant,
                   help='Named architecture: MACE-T0-I, MACE-T0-E, MACE-T1-E or MACE-T1-E-LES (see '
                        'aiida_sseff.io.mace.VARIANTS).')
        spec.input('parameters', valid_type=orm.Dict,
                   help='Other mace_run_train options by their mace-torch names (r_max, num_channels, correlation, '
                        'max_ell, max_num_epochs, batch_size, lr, ...); not those the CalcJob sets.')
        spec.input('e0s', valid_type=orm.Dict, required=False,
                   help='Isolated-atom energies {element: eV}; default: mace\'s `average` (least squares on the '
                        'training set).')
        spec.input('seed', valid_type=orm.Int, default=lambda: orm.Int(1),
                   help='Random seed of mace-torch (initial weights, batches, held-out split).')
        spec.input('stress', valid_type=orm.Bool, required=False,
                   help='Train on stress (mace `stress` loss). Default: yes where every structure has a stress.')
        spec.input('parent_folder', valid_type=orm.RemoteData, required=False,
                   help='remote_folder of an earlier run with the same inputs: continue from its checkpoints.')
        spec.input('metadata.options.device', valid_type=str, default='cpu',
                   help="mace-torch device: 'cpu' or 'cuda'.")
        spec.inputs.validator = _validate_inputs
        spec.inputs['metadata']['options']['parser_name'].default = 'sseff.mace.train'
        spec.inputs['metadata']['options']['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        spec.inputs['metadata']['options']['withmpi'].default = False

        spec.output('model', valid_type=MaceModel, help='The trained model (mace-torch `<name>.model`), for MD.')
        spec.output('compiled_model', valid_type=orm.SinglefileData, required=False,
                    help='The TorchScript-compiled model (`<name>_compiled.model`, for LAMMPS/OpenMM), where made.')
        spec.output('training_log', valid_type=orm.ArrayData,
                    help='Per evaluated epoch: validation loss, RMSE_E/atom (eV), RMSE_F (eV/Å), ..., train loss.')
        for label in PARITY_SETS:
            spec.output(f'parity_{label}', valid_type=orm.ArrayData, required=False,
                        help=f'Predicted vs target on the {label} set: energy (eV/atom), force (eV/Å), virial '
                             '(eV/atom), stress (GPa); NaN where a target is missing.')
        spec.output('results', valid_type=orm.Dict,
                    help='Final RMSEs (meV/atom, meV/Å, GPa) from mace\'s error tables and from the parity data.')

        spec.exit_code(300, 'ERROR_MISSING_OUTPUT',
                       message='The output file `{filename}` is missing: mace_run_train did not start, crashed or was '
                               'killed before it wrote it. {message}')
        spec.exit_code(301, 'ERROR_UNREADABLE_OUTPUT', message='The output file `{filename}` cannot be read: {message}')
        spec.exit_code(302, 'ERROR_INVALID_MODEL', message='The written model is not a usable MACE model: {message}')
        spec.exit_code(400, 'ERROR_TRAINING_INCOMPLETE',
                       message='The training stopped after epoch {epoch} of {requested} (out of wall time or killed); '
                               'its checkpoints in the remote folder can continue it.')
        spec.exit_code(410, 'ERROR_LOSS_NAN',
                       message='The validation loss became NaN at epoch {epoch}: the training diverged (lower `lr`, '
                               'or check the labels for outliers).')

    def prepare_for_submission(self, folder):
        from aiida_sseff.io.mace import PREDICTION_PREFIX, training_arguments, write_mace_xyz

        stress = wants_stress(self.inputs)
        files = {'train': TRAIN_FILENAME}
        write_mace_xyz(self.inputs.train.get_ase(), folder.get_abs_path(TRAIN_FILENAME), stress=stress)
        for label, filename in (('validation', VALID_FILENAME), ('test', TEST_FILENAME)):
            if label in self.inputs:
                write_mace_xyz(self.inputs[label].get_ase(), folder.get_abs_path(filename), stress=stress)
                files[label] = filename
        parameters = self.inputs.parameters.get_dict()
        device = self.inputs.metadata.options.device
        seed = self.inputs.seed.value
        arguments = training_arguments(
            parameters, self.inputs.variant.value, name=RUN_NAME, seed=seed, train_file=TRAIN_FILENAME,
            valid_file=files.get('validation'), test_file=files.get('test'),
            e0s=self.inputs.e0s.get_dict() if 'e0s' in self.inputs else 'average', stress=stress, device=device,
            restart='parent_folder' in self.inputs)

        train = datastructures.CodeInfo()
        train.code_uuid = self.inputs.code.uuid
        train.cmdline_params = ['train', *arguments]
        train.stdout_name = STDOUT_FILENAME
        train.stderr_name = STDERR_FILENAME
        names = output_names(seed)
        evaluate = datastructures.CodeInfo()
        evaluate.code_uuid = self.inputs.code.uuid
        evaluate.cmdline_params = [
            'eval', '--configs', ','.join(files.values()),
            '--output', ','.join(names[f'predictions_{label}'] for label in files), '--model', names['model'],
            '--device', device, '--default_dtype', str(parameters.get('default_dtype', 'float64')),
            '--compute_stress', '--info_prefix', PREDICTION_PREFIX]
        evaluate.stdout_name = EVAL_STDOUT_FILENAME
        evaluate.stderr_name = EVAL_STDERR_FILENAME
        codes_info = [train, evaluate]

        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = codes_info
        calcinfo.codes_run_mode = datastructures.CodeRunMode.SERIAL
        calcinfo.local_copy_list = []
        calcinfo.remote_copy_list = []
        if 'parent_folder' in self.inputs:
            parent = self.inputs.parent_folder
            calcinfo.remote_copy_list.append(
                (parent.computer.uuid, f'{parent.get_remote_path()}/{CHECKPOINTS_FOLDER}', CHECKPOINTS_FOLDER))
        calcinfo.retrieve_list = [
            names['model'], names['compiled_model'], names['log_path'], names['results_path'], STDOUT_FILENAME,
            STDERR_FILENAME, EVAL_STDERR_FILENAME, *(names[f'predictions_{label}'] for label in files)]
        return calcinfo
