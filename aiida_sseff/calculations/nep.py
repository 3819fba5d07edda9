"""``sseff.nep.train``: train a NEP model with GPUMD's ``nep`` (SNES, GPU) or with ``neppo train`` (AdamW, CPU/GPU).

Both programs read the same run directory (``nep.in``, ``train.xyz``, optional ``test.xyz``) and write the same
files (``nep.txt``, ``loss.out``, ``*_train.out``, ``*_test.out``), so one CalcJob serves both. Which program
runs is decided by the Code (see :func:`resolve_program`): ``neppo`` is called as ``neppo train . --device
<device>``, GPUMD's ``nep`` without arguments.

Before submission the inputs are checked with :func:`aiida_sseff.io.nep.validate_nep_parameters` for the chosen
program (unknown keywords, keywords the program does not know, ranges), and the ``type`` list is derived from the
elements of the datasets. Every architecture keyword is written explicitly to ``nep.in`` (GPUMD changed the
``n_max``/``basis_size`` defaults in v5.3).

A charge model (qNEP: ``charge_mode`` 1 or 2 in ``parameters``) needs nothing else: GPUMD ``nep`` and ``neppo``
train it from the same energies, forces and virials (no target charges; ``lambda_q``/``lambda_z`` weight its extra
loss terms), write ``nep.txt`` with the header ``nep4[_zbl]_charge<mode>``, two more ``loss.out`` columns per set
(``RMSE_Q``, total charge, e/atom; ``RMSE_Z``, Born effective charges, e) and ``charge_*.out``; GPUMD's ``nep``
accepts only one hidden layer and ``model_type 0`` for it (``Parameters::calculate_parameters``), which the
validator already requires of every model.

Thin cells (a perpendicular width below 2 x the radial cutoff) need no special handling: GPUMD replicates such
cells internally, and neppo and calorine's CPUNEP take all periodic images into account (checked in
``aiida_sseff/io/extxyz.py`` and by a training test on 7.3 Å cells with a 5 Å cutoff), so no input is refused for it.
"""

from __future__ import annotations

import warnings
from pathlib import PurePath

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_sseff.calculations.threads import thread_prepend_text
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.data.model import NepModel

__all__ = [
    'PROGRAMS',
    'NepTrainCalculation',
    'nep_elements',
    'normalised_parameters',
    'resolve_program',
]

PROGRAMS = ('nep', 'neppo')

#: extra of a Code that names its program explicitly (``code.base.extras.set('nep_program', 'neppo')``)
PROGRAM_EXTRA = 'nep_program'

INPUT_FILENAME = 'nep.in'
TRAIN_FILENAME = 'train.xyz'
TEST_FILENAME = 'test.xyz'
RESTART_FILENAME = 'nep.restart'
MODEL_FILENAME = 'nep.txt'
BEST_MODEL_FILENAME = 'nep_best.txt'
LOSS_FILENAME = 'loss.out'
STDOUT_FILENAME = 'nep.log'
STDERR_FILENAME = 'nep.err'
#: ``charge_*.out`` (predicted charge per atom) and ``bec_*.out`` (Born effective charges, only with BEC targets) are
#: written for a charge model (``charge_mode`` 1/2) by GPUMD (``src/main_nep/fitness.cu``) and neppo
#: (``neppo/output.py``); retrieving names that a run does not write costs nothing.
PREDICTION_FILENAMES = tuple(f'{quantity}_{label}.out' for label in ('train', 'test')
                             for quantity in ('energy', 'force', 'virial', 'stress', 'charge', 'bec'))


def resolve_program(program=None, code=None) -> str:
    """The training program, ``'nep'`` (GPUMD) or ``'neppo'``.

    Order of precedence: the ``program`` input (``Str`` or str); the Code's extra ``nep_program``; the name of the
    Code's executable (``neppo...`` -> ``'neppo'``, anything else -> ``'nep'``). The last rule fits the codes that
    ``aiida-sseff setup`` creates and a plain GPUMD installation; a wrapper script with another name needs the
    extra or the input.

    :raises ValueError: a program other than ``nep``/``neppo``.
    """
    if program is not None:
        value = str(program.value if isinstance(program, orm.Str) else program)
    elif code is not None and code.base.extras.get(PROGRAM_EXTRA, None):
        value = str(code.base.extras.get(PROGRAM_EXTRA))
    elif code is not None:
        try:
            name = PurePath(str(code.get_executable())).name
        except Exception:  # codes without a single executable path (containerised, ...): assume GPUMD
            name = 'nep'
        value = 'neppo' if name.startswith('neppo') else 'nep'
    else:
        value = 'nep'
    if value not in PROGRAMS:
        raise ValueError(f'program must be one of {PROGRAMS}, got {value!r}')
    return value


def nep_elements(train: LabelledDataset, test: LabelledDataset | None = None, parameters: dict | None = None
                 ) -> tuple[str, ...]:
    """The ``type`` list of the model: the order of ``parameters['type']`` if given, else the training set's.

    :raises ValueError: an element of a dataset that is not in ``type``; an element of the test set that is not in
        the training set (the model cannot learn it); a ``type`` element absent from the training set.
    """
    train_elements = list(train.elements or [])
    test_elements = list(test.elements or []) if test is not None else []
    given = (parameters or {}).get('type')
    if given is not None:
        listed = given.split() if isinstance(given, str) else [str(item) for item in given]
        if listed and listed[0].isdigit():
            listed = listed[1:]
        missing = [e for e in dict.fromkeys(train_elements + test_elements) if e not in listed]
        if missing:
            raise ValueError(f'element(s) {", ".join(missing)} of the dataset are not in the nep.in `type` list '
                             f'{listed}; add them or leave `type` out (it is derived from the dataset)')
        unused = [e for e in listed if e not in train_elements]
        if unused:
            raise ValueError(f'`type` lists {", ".join(unused)}, which no training structure holds: the model '
                             'cannot learn an element it never sees')
        return tuple(listed)
    extra = [e for e in test_elements if e not in train_elements]
    if extra:
        raise ValueError(f'the test set holds element(s) {", ".join(extra)} that the training set lacks')
    return tuple(train_elements)


def normalised_parameters(parameters: dict, elements, program: str, seed: int | None = None) -> dict:
    """``nep.in`` parameters validated for ``program`` with the ``seed`` input merged in (raises ValueError).

    ``population`` (SNES) is dropped for neppo, which ignores it, without the warning of the validator: protocols
    that serve both programs carry it.
    """
    from aiida_sseff.io.nep import validate_nep_parameters

    params = dict(parameters)
    if seed is not None:
        if 'seed' in params and int(params['seed']) != int(seed):
            raise ValueError(f'seed given twice: parameters.seed = {params["seed"]} and the seed input = {seed}')
        params['seed'] = int(seed)
    if program == 'neppo':
        params.pop('population', None)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        return validate_nep_parameters(params, elements, program, allow_gpumd_seed=False)


def _validate_test(value, _):
    if value is not None and not value.base.attributes.get('n_structures', 0):
        return 'the test set is empty: give at least one structure or leave `test` out'
    if value is not None and not value.base.attributes.get('has_labels', False):
        return 'the test set has no reference labels (energy and forces)'


def _validate_train(value, _):
    if value is not None and not value.base.attributes.get('n_structures', 0):
        return 'the training set is empty'
    if value is not None and not value.base.attributes.get('has_labels', False):
        return 'the training set has no reference labels (energy and forces)'


def _validate_inputs(inputs, _):
    """Refuse, before submission, what nep/neppo would refuse or silently misread."""
    train = inputs.get('train')
    if train is None or 'parameters' not in inputs:
        return None
    try:
        program = resolve_program(inputs.get('program'), inputs.get('code'))
        parameters = inputs['parameters'].get_dict()
        elements = nep_elements(train, inputs.get('test'), parameters)
        seed = inputs['seed'].value if 'seed' in inputs else None
        normalised = normalised_parameters(parameters, elements, program, seed)
    except ValueError as exception:
        return str(exception)
    if 'restart' in inputs:
        if program == 'neppo':
            return ('neppo 1.0 cannot continue from nep.restart (it reads no restart file); '
                    'leave `restart` out or train with GPUMD nep')
        if normalised.get('prediction') == 1:
            return 'prediction mode evaluates nep.txt; it takes no `restart` input'
    if normalised.get('prediction') == 1:
        return 'prediction 1 (evaluation of an existing model) is not a training; use the engine to evaluate models'
    return None


class NepTrainCalculation(CalcJob):
    """Train a NEP potential with GPUMD ``nep`` or ``neppo train`` on a ``sseff.dataset``.

    Outputs (by :class:`aiida_sseff.parsers.nep.NepTrainParser`): ``model`` (``sseff.model.nep``, the final
    ``nep.txt``), ``best_model`` (neppo's ``nep_best.txt``, when written), ``loss`` (ArrayData, one array per
    ``loss.out`` column; RMSEs in eV/atom, eV/Å), ``parity_train``/``parity_test`` (ArrayData: predicted and target
    energy per atom in eV/atom, forces eV/Å, virial eV/atom, stress GPa), ``results`` (Dict: final RMSEs in meV/atom
    and meV/Å as reported in ``loss.out`` and as recomputed from the ``*_train.out`` files), ``restart``
    (``nep.restart`` of GPUMD, for a continuation). For a charge model (``charge_mode`` 1/2) the parity nodes hold
    ``charge_predicted`` (e, one per atom) and, with BEC targets, ``bec_predicted``/``bec_target``; ``loss`` has
    the ``RMSE_Q_*``/``RMSE_Z_*`` columns and ``results`` the charge RMSEs and the mean charge of each element.
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('train', valid_type=LabelledDataset, validator=_validate_train,
                   help='Labelled training structures (energy eV, forces eV/Å, optional stress), written as train.xyz.')
        spec.input('test', valid_type=LabelledDataset, required=False, validator=_validate_test,
                   help='Labelled test structures (test.xyz): reported in loss.out and *_test.out, not trained on.')
        spec.input('parameters', valid_type=orm.Dict,
                   help='nep.in keywords (see aiida_sseff.io.nep.NEP_KEYWORDS); `type` is derived from the datasets.')
        spec.input('program', valid_type=orm.Str, required=False,
                   help="'nep' (GPUMD) or 'neppo'; default: from the Code (extra `nep_program`, else the name of "
                        'its executable).')
        spec.input('seed', valid_type=orm.Int, required=False,
                   help='Random seed of the initial parameters and batches (neppo; written as `seed` in nep.in).')
        spec.input('restart', valid_type=orm.SinglefileData, required=False,
                   help='A nep.restart of an earlier GPUMD nep run (same nep.in architecture) to continue from.')
        spec.input('metadata.options.device', valid_type=str, default='cpu',
                   help="Device of neppo (`--device`): 'cpu', 'cuda' or 'cuda:N'. GPUMD nep always uses the GPU.")
        spec.inputs.validator = _validate_inputs
        spec.inputs['metadata']['options']['parser_name'].default = 'sseff.nep.train'
        spec.inputs['metadata']['options']['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        spec.inputs['metadata']['options']['withmpi'].default = False

        spec.output('model', valid_type=NepModel, help='The trained model (the final nep.txt).')
        spec.output('best_model', valid_type=NepModel, required=False,
                    help='neppo: the model of the lowest test (else training) loss, nep_best.txt.')
        spec.output('loss', valid_type=orm.ArrayData,
                    help='loss.out: `generation` and one array per column (RMSEs in eV/atom and eV/Å).')
        spec.output('parity_train', valid_type=orm.ArrayData, required=False,
                    help='Predicted vs target on the training set: energy (eV/atom), force (eV/Å), virial (eV/atom), '
                         'stress (GPa); NaN where a target is missing.')
        spec.output('parity_test', valid_type=orm.ArrayData, required=False, help='The same on the test set.')
        spec.output('results', valid_type=orm.Dict,
                    help='Final RMSEs (meV/atom, meV/Å, GPa) from loss.out and recomputed from *_train/test.out.')
        spec.output('restart', valid_type=orm.SinglefileData, required=False, help='nep.restart (GPUMD nep).')

        spec.exit_code(300, 'ERROR_MISSING_OUTPUT',
                       message='The output file `{filename}` is missing: the program did not start, crashed or was '
                               'killed before its first report. {message}')
        spec.exit_code(301, 'ERROR_UNREADABLE_OUTPUT', message='The output file `{filename}` cannot be read: {message}')
        spec.exit_code(302, 'ERROR_INVALID_MODEL', message='The written nep.txt is not a usable NEP model: {message}')
        spec.exit_code(400, 'ERROR_TRAINING_INCOMPLETE',
                       message='The training stopped at generation {done} of {requested} (out of wall time or '
                               'killed); the outputs hold the model of generation {done}.')
        spec.exit_code(410, 'ERROR_LOSS_NAN',
                       message='The loss became NaN at generation {generation}: the training diverged (lower the '
                               'learning rate or check the labels for outliers).')
        spec.exit_code(411, 'ERROR_LOSS_NOT_DECREASING',
                       message='The total loss did not decrease: {first:.5g} at generation {first_generation}, '
                               '{last:.5g} at generation {last_generation}.')

    def prepare_for_submission(self, folder):
        from aiida_sseff.io.extxyz import write_train_xyz
        from aiida_sseff.io.nep import write_nep_in

        program = resolve_program(self.inputs.get('program'), self.inputs.code)
        train = self.inputs.train
        test = self.inputs.get('test')
        elements = nep_elements(train, test, self.inputs.parameters.get_dict())
        seed = self.inputs.seed.value if 'seed' in self.inputs else None
        params = normalised_parameters(self.inputs.parameters.get_dict(), elements, program, seed)
        write_nep_in(params, folder.get_abs_path(INPUT_FILENAME))
        # written through io/extxyz (not the node's bytes): periodic frames, only the keys GPUMD/neppo read
        write_train_xyz(train.get_ase(), folder.get_abs_path(TRAIN_FILENAME))
        if test is not None:
            write_train_xyz(test.get_ase(), folder.get_abs_path(TEST_FILENAME))

        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        if program == 'neppo':
            codeinfo.cmdline_params = ['train', '.', '--device', self.inputs.metadata.options.device]
        else:
            codeinfo.cmdline_params = []
        codeinfo.stdout_name = STDOUT_FILENAME
        codeinfo.stderr_name = STDERR_FILENAME

        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        if program == 'neppo':
            # torch's CPU threads = this job's share of the cores (GPUMD nep runs on the GPU: nothing to share)
            calcinfo.prepend_text = thread_prepend_text(self.node.get_option('resources'),
                                                        self.node.get_option('environment_variables'))
        calcinfo.local_copy_list = []
        if 'restart' in self.inputs:
            restart = self.inputs.restart
            calcinfo.local_copy_list.append((restart.uuid, restart.filename, RESTART_FILENAME))
        calcinfo.retrieve_list = [MODEL_FILENAME, BEST_MODEL_FILENAME, LOSS_FILENAME, RESTART_FILENAME,
                                  STDOUT_FILENAME, STDERR_FILENAME, *PREDICTION_FILENAMES]
        return calcinfo
