"""``sseff.train`` (:class:`ArchitectureTrainingWorkChain`): several architectures trained on the same data, evaluated
and costed alike.

One split (``split_train_validation_test``) is shared by every architecture; each architecture is trained once per
seed (the same seeds for all) by its own work chain (``sseff.train.nep.base`` for NEP-kind, ``sseff.mace.train.base``
for MACE-kind); every model is evaluated on the same validation and test sets by ONE calcfunction
(:func:`~aiida_sseff.workflows.training.evaluate_model`, the keys of the NEP metrics); per architecture the seed with
the lowest validation force RMSE is chosen and the spread over seeds of the test errors reported. The cost of each
chosen model: its training wall time as the training program reported it in its retrieved files (neppo's ``wall
time`` row, GPUMD nep's ``Time used for training``, the time stamps of the mace-torch log), and the speed (atom-steps
per second of the production loop) and peak memory (RSS) of a short engine MD (``sseff.engine.md.base``) on
``speed.structure`` and its replications, run one at a time so that no two measurements share the machine.
Protocols: ``protocols/architectures.yaml`` (the NEP and MACE parts come from ``training.yaml`` and ``mace.yaml``).
"""

from __future__ import annotations

import re

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction, if_, while_

from aiida_sseff.calculations.nep import resolve_program
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.data.model import MaceModel, NepModel
from aiida_sseff.protocols.utils import ProtocolMixin
from aiida_sseff.utils import json_safe
from aiida_sseff.workflows.mace import MaceTrainBaseWorkChain
from aiida_sseff.workflows.md import EngineMdBaseWorkChain
from aiida_sseff.workflows.training import (
    NepTrainBaseWorkChain,
    declare_held_out_inputs,
    evaluate_model,
    split_train_validation_test,
    summarise_replicas,
)

__all__ = ['ARCHITECTURE_KINDS', 'ArchitectureTrainingWorkChain', 'architecture_cost', 'replicate_structure',
           'summarise_architectures']

ARCHITECTURE_KINDS = ('nep', 'mace')
#: keys an architecture spec may have, per kind
SPEC_KEYS = {'nep': {'kind', 'parameters'}, 'mace': {'kind', 'variant', 'parameters'}}
#: the architecture the relative force RMSE is taken against, when present (else the first nep-kind label)
REFERENCE_LABEL = 'NEP'
#: a label becomes a link name: letters, digits and single underscores (``__`` separates AiiDA namespaces)
_LABEL = re.compile(r'[A-Za-z][A-Za-z0-9_]*')
#: MD parameters of the speed runs when ``speed.md.parameters`` gives none
DEFAULT_SPEED_PARAMETERS = {'temperature_K': 300.0, 'timestep_fs': 1.0, 'ensemble': 'nvt_bussi'}
WALL_TIME_SOURCES = {
    'neppo': 'neppo stdout (nep.log), summary row `wall time` (whole seconds)',
    'nep': 'GPUMD nep stdout (nep.log), `Time used for initialization` + `Time used for training`',
    'mace': 'mace_run_train log (logs/mace_run-<seed>.log): last minus first time stamp',
}


def seed_label(seed: int) -> str:
    return f'seed_{int(seed)}'


# ------------------------------------------------------------------------------------------------ calcfunctions


@calcfunction
def replicate_structure(structure: orm.StructureData, replication: orm.List) -> orm.StructureData:
    """``structure`` repeated ``n1 × n2 × n3`` times (ASE ``Atoms.repeat``): a larger cell for the speed-vs-atoms
    measurement."""
    return orm.StructureData(ase=structure.get_ase().repeat([int(n) for n in replication.get_list()]))


def _training_wall_time(program: str, retrieved: orm.FolderData) -> float | None:
    from aiida_sseff.calculations.nep import STDOUT_FILENAME as NEP_STDOUT
    from aiida_sseff.io.training_logs import read_gpumd_nep_wall_time, read_mace_wall_time, read_neppo_wall_time

    names = retrieved.base.repository.list_object_names()
    if program == 'mace':
        logs = sorted(name for name in names if name.startswith('mace_run-') and name.endswith('.log')
                      and not name.endswith('_debug.log'))
        return read_mace_wall_time(retrieved.base.repository.get_object_content(logs[-1])) if logs else None
    if NEP_STDOUT not in names:
        return None
    text = retrieved.base.repository.get_object_content(NEP_STDOUT)
    return read_neppo_wall_time(text) if program == 'neppo' else read_gpumd_nep_wall_time(text)


@calcfunction
def architecture_cost(program: orm.Str, chosen: orm.Str, device: orm.Str, **nodes) -> orm.Dict:
    """The cost of one architecture: training wall time and MD speed.

    Inputs: ``retrieved_<seed label>_<NN>`` (the ``retrieved`` folders of every CalcJob of that seed's training, in
    order: restarts are summed), ``chosen`` (the seed label of the chosen model), and for every speed run
    ``replication_<NN>`` (List) with, where the MD finished, ``md_<NN>`` (the engine MD ``results``).

    Returns ``train_wall_time_s`` (the chosen seed's; None where its program reported none),
    ``train_wall_time_s_per_seed``, ``train_wall_time_mean_s``, ``train_wall_time_source``, ``md_device`` (of the
    speed runs' calculator), and ``md_speed``: per size, ``{n_atoms, replication, atom_steps_per_s`` (of the
    production loop), ``peak_memory_mb`` (peak RSS of the engine process), ``peak_gpu_memory_mb`` (None on a CPU),
    ``n_steps, production_wall_time_s}``, sorted by ``n_atoms``; ``md_failed``: the replications whose MD did not
    finish (no speed for them).
    """
    program = program.value
    per_seed: dict[str, float | None] = {}
    for key in sorted(k for k in nodes if k.startswith('retrieved_')):
        label = key[len('retrieved_'):].rsplit('_', 1)[0]
        seconds = _training_wall_time(program, nodes[key])
        if seconds is not None:
            per_seed[label] = per_seed.get(label, 0.0) + seconds
        else:
            per_seed.setdefault(label, None)
    known = [value for value in per_seed.values() if value is not None]
    speed, failed = [], []
    for key in sorted(k for k in nodes if k.startswith('replication_')):
        index = key.rsplit('_', 1)[1]
        replication = nodes[key].get_list()
        results = nodes.get(f'md_{index}')
        if results is None:
            failed.append(replication)
            continue
        results = results.get_dict()
        speed.append({
            'n_atoms': results.get('n_atoms'),
            'replication': replication,
            'atom_steps_per_s': results.get('production_speed_atom_step_per_s'),
            'peak_memory_mb': results.get('peak_memory_mb'),
            'peak_gpu_memory_mb': results.get('peak_gpu_memory_mb'),
            'n_steps': results.get('n_steps'),
            'production_wall_time_s': results.get('production_wall_time_s'),
        })
    speed.sort(key=lambda entry: entry['n_atoms'] or 0)
    return orm.Dict(json_safe({
        'train_wall_time_s': per_seed.get(chosen.value),
        'train_wall_time_s_per_seed': per_seed,
        'train_wall_time_mean_s': float(np.mean(known)) if known else None,
        'train_wall_time_source': WALL_TIME_SOURCES[program],
        'md_device': device.value,
        'md_speed': speed,
        'md_failed': failed,
    }))


def reference_architecture(architectures: dict) -> str | None:
    """``NEP`` when it is one of the labels, else the first nep-kind label (sorted), else None."""
    if REFERENCE_LABEL in architectures:
        return REFERENCE_LABEL
    neps = sorted(label for label, spec in architectures.items() if spec.get('kind') == 'nep')
    return neps[0] if neps else None


def _statistic(spread: dict, key: str, statistic: str):
    entry = spread.get(key)
    return entry.get(statistic) if entry else None


@calcfunction
def summarise_architectures(architectures: orm.Dict, **nodes) -> orm.Dict:
    """One row per architecture from ``test_metrics_<label>``, ``seed_spread_<label>`` and ``cost_<label>``.

    Returns ``reference_architecture`` (see :func:`reference_architecture`), ``architectures`` (the labels, sorted)
    and ``rows``: ``{architecture, kind, variant, chosen_seed, n_seeds, energy_mev_per_atom,
    force_mev_per_angstrom, virial_mev_per_atom, stress_gpa`` (the chosen model on the test set),
    ``force_relative_to_reference`` (its force RMSE / the reference's), ``force_seed_mean_mev_per_angstrom``,
    ``force_seed_std_mev_per_angstrom``, ``energy_seed_mean_mev_per_atom``, ``energy_seed_std_mev_per_atom`` (over
    the seeds' test errors, std ddof 1), ``train_wall_time_s``, ``train_wall_time_mean_s``, ``md_n_atoms``,
    ``md_atom_steps_per_s``, ``md_peak_memory_mb`` (lists, one entry per speed-run size, by n_atoms)}``.
    Architectures without a trained model are absent from ``rows`` and listed in ``failed``.
    """
    specs = architectures.get_dict()
    reference = reference_architecture(specs)
    trained = [label for label in sorted(specs) if f'test_metrics_{label}' in nodes]
    metrics = {label: nodes[f'test_metrics_{label}'].get_dict() for label in trained}
    reference_force = metrics.get(reference, {}).get('force_mev_per_angstrom')
    rows = []
    for label in trained:
        spread = nodes[f'seed_spread_{label}'].get_dict()
        cost = nodes[f'cost_{label}'].get_dict() if f'cost_{label}' in nodes else {}
        force = metrics[label].get('force_mev_per_angstrom')
        speed = cost.get('md_speed') or []
        rows.append({
            'architecture': label,
            'kind': specs[label]['kind'],
            'variant': specs[label].get('variant'),
            'chosen_seed': spread.get('best_replica'),
            'n_seeds': spread.get('n_replicas'),
            **{key: metrics[label].get(key) for key in ('energy_mev_per_atom', 'force_mev_per_angstrom',
                                                        'virial_mev_per_atom', 'stress_gpa')},
            'force_relative_to_reference': (force / reference_force if force is not None and reference_force
                                            else None),
            'force_seed_mean_mev_per_angstrom': _statistic(spread, 'force_mev_per_angstrom', 'mean'),
            'force_seed_std_mev_per_angstrom': _statistic(spread, 'force_mev_per_angstrom', 'std'),
            'energy_seed_mean_mev_per_atom': _statistic(spread, 'energy_mev_per_atom', 'mean'),
            'energy_seed_std_mev_per_atom': _statistic(spread, 'energy_mev_per_atom', 'std'),
            'train_wall_time_s': cost.get('train_wall_time_s'),
            'train_wall_time_mean_s': cost.get('train_wall_time_mean_s'),
            'md_n_atoms': [entry['n_atoms'] for entry in speed],
            'md_atom_steps_per_s': [entry['atom_steps_per_s'] for entry in speed],
            'md_peak_memory_mb': [entry['peak_memory_mb'] for entry in speed],
        })
    return orm.Dict(json_safe({
        'reference_architecture': reference if reference in metrics else None,
        'architectures': sorted(specs),
        'rows': rows,
        'failed': [label for label in sorted(specs) if label not in metrics],
        'units': {'energy': 'meV/atom', 'force': 'meV/Å', 'virial': 'meV/atom', 'stress': 'GPa', 'time': 's',
                  'speed': 'atom-steps/s', 'memory': 'MB'},
    }))


# --------------------------------------------------------------------------------------------------- validation


def _validate_architecture(label: str, spec) -> str | None:  # noqa: PLR0911
    """The refusal for one architecture spec (kind, keys, variant), None when it is well formed."""
    if not _LABEL.fullmatch(label) or '__' in label:
        return (f'architecture label `{label}` cannot be a link name: use letters, digits and single underscores, '
                f'starting with a letter (e.g. `{re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_") or "NEP"}`)')
    if not isinstance(spec, dict):
        return f'architecture `{label}`: the spec must be a dict with a `kind`, got {type(spec).__name__}'
    kind = spec.get('kind')
    if kind not in ARCHITECTURE_KINDS:
        return f'architecture `{label}`: unknown architecture kind `{kind}`; choose one of {", ".join(ARCHITECTURE_KINDS)}'
    extra = sorted(set(spec) - SPEC_KEYS[kind])
    if extra:
        return (f'architecture `{label}` (kind {kind}): unknown key(s) {", ".join(extra)}; a {kind} spec has '
                f'{", ".join(sorted(SPEC_KEYS[kind]))}')
    if not isinstance(spec.get('parameters', {}), dict):
        return f'architecture `{label}`: `parameters` must be a dict of {"nep.in" if kind == "nep" else "mace"} options'
    if kind == 'mace':
        from aiida_sseff.io.mace import UnknownVariantError, variant_options

        if 'variant' not in spec:
            return f'architecture `{label}` (kind mace) needs a `variant` (e.g. MACE-T0-I)'
        try:
            variant_options(spec['variant'])
        except UnknownVariantError as exception:
            return f'architecture `{label}`: {exception}'
    return None


def _namespace_dict(inputs, *path) -> dict:
    value = inputs
    for key in path:
        if value is None or key not in value:
            return {}
        value = value[key]
    return value


def _base_parameters(inputs, namespace: str) -> dict:
    node = _namespace_dict(inputs, namespace, namespace).get('parameters')
    return node.get_dict() if node is not None else {}


def _validate_data(inputs) -> str | None:
    given = [name for name in ('train', 'validation', 'test') if name in inputs]
    if 'dataset' in inputs:
        if 'train' in inputs:
            return 'give either `dataset` (split here) or `train` with `validation` and `test`, not both'
        from aiida_sseff.workflows.training import _held_out_count, held_out_fractions

        fractions, problem = held_out_fractions(inputs)
        if problem:
            return problem
        n = inputs['dataset'].base.attributes.get('n_structures', 0)
        if sum(_held_out_count(fraction, n) for fraction in fractions.values()) > n - 1:
            return (f'the dataset of {n} structure(s) cannot give {" and ".join(fractions)} set(s) and keep one for '
                    'training: give more structures, or the held-out sets as inputs')
        return None
    if len(given) != 3:
        return ('give the labelled data: `dataset` (split here into train, validation and test) or all three of '
                f'`train`, `validation` and `test` (got {", ".join(given) or "none"})')
    return None


def _validate_stress(label: str, kind: str, parameters: dict, inputs, datasets) -> str | None:
    """Training on stress (nep.in ``lambda_v`` > 0, mace ``stress_weight`` > 0 or ``stress`` True, given
    explicitly) where a training or validation set has structures without stress/virial."""
    lacking = [(name, dataset) for name, dataset in datasets
               if not dataset.base.attributes.get('has_virial', False)]
    if not lacking:
        return None
    if kind == 'nep':
        weight = parameters.get('lambda_v')
        asked = f'nep.in lambda_v = {weight} > 0' if weight is not None and float(weight) > 0 else None
    else:
        weight = parameters.get('stress_weight')
        stress = _namespace_dict(inputs, 'mace', 'mace').get('stress')
        asked = (f'mace stress_weight = {weight} > 0' if weight is not None and float(weight) > 0
                 else 'mace stress = True' if stress is not None and stress.value else None)
    if asked is None:
        return None
    name, dataset = lacking[0]
    name = {'dataset': 'dataset', 'train': 'training set', 'validation': 'validation set'}[name]
    return (f'architecture `{label}` trains on stress ({asked}), but the {name} <{dataset.pk or "unstored"}> '
            'has structures without stress/virial (has_virial is false): set the stress weight to 0, or give a '
            'dataset with stress labels')


def _validate_parameters(label: str, kind: str, spec: dict, parameters: dict, inputs, elements) -> str | None:
    """The children's own checks, before anything runs: nep.in keywords, or the mace_run_train command line."""
    if kind == 'nep':
        from aiida_sseff.io.nep import validate_nep_parameters

        nep = _namespace_dict(inputs, 'nep', 'nep')
        program = resolve_program(nep['program'].value if 'program' in nep else None, nep.get('code'))
        try:
            validate_nep_parameters(parameters, tuple(sorted(elements or ())), program)
        except ValueError as exception:
            return f'architecture `{label}`: {exception}'
        return None
    from aiida_sseff.io.mace import UnknownVariantError, training_arguments

    try:
        training_arguments(parameters, spec['variant'], name='mace', seed=1, train_file='train.xyz')
    except (ValueError, UnknownVariantError) as exception:
        return f'architecture `{label}`: {exception}'
    return None


def _validate_inputs(inputs, port_namespace):  # noqa: PLR0911, PLR0912 - one sentence per bad input
    if 'architectures' not in inputs:
        return None  # exposed in a study that sets them: validated when this work chain is launched
    message = _validate_data(inputs)
    if message:
        return message
    seeds = inputs['seeds'].get_list()
    if not seeds or not all(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 for seed in seeds):
        return f'seeds must be a non-empty list of non-negative integers, got {seeds}'
    if len(set(seeds)) != len(seeds):
        return f'seeds must differ (each trains one model per architecture), got {seeds}'
    architectures = inputs['architectures'].get_dict()
    if not architectures:
        return 'architectures is empty: give at least one {label: {"kind": "nep"|"mace", ...}}'
    train = inputs.get('dataset', inputs.get('train'))
    elements = set(train.elements or []) if train is not None else None
    datasets = [(name, inputs[name]) for name in ('dataset', 'train', 'validation') if name in inputs]
    for label, spec in architectures.items():
        message = _validate_architecture(label, spec)
        if message:
            return message
        kind = spec['kind']
        if not _namespace_dict(inputs, kind, kind).get('code'):
            return (f'architecture `{label}` is of kind {kind}, but no {kind} code was given '
                    f'(`{kind}.{kind}.code`)')
        parameters = {**_base_parameters(inputs, kind), **spec.get('parameters', {})}
        message = _validate_stress(label, kind, parameters, inputs, datasets) or \
            _validate_parameters(label, kind, spec, parameters, inputs, elements)
        if message:
            return message
    speed = _namespace_dict(inputs, 'speed')
    if speed:
        return _validate_speed(speed, elements)
    return None


def _validate_speed(speed, elements) -> str | None:
    from aiida_sseff.engines.md import MdParameterError, validate_md_parameters

    if 'structure' not in speed or not _namespace_dict(speed, 'md').get('code'):
        return 'the speed runs need `speed.structure` and the engine code `speed.md.code`'
    symbols = set(speed['structure'].get_symbols_set())
    if elements is not None and not symbols <= elements:
        return (f'the speed structure holds element(s) {", ".join(sorted(symbols - elements))} that the training '
                f'data lack (it has {", ".join(sorted(elements))}): no model trained on it could run MD on that cell')
    n_steps = speed['n_steps'].value if 'n_steps' in speed else 0
    if n_steps < 1:
        return f'speed.n_steps must be at least 1, got {n_steps}'
    replications = speed['replications'].get_list() if 'replications' in speed else [[1, 1, 1]]
    for replication in replications:
        if not (isinstance(replication, list | tuple) and len(replication) == 3
                and all(isinstance(n, int) and n >= 1 for n in replication)):
            return f'speed.replications must be a list of [n1, n2, n3] (positive integers), got {replication}'
    try:
        validate_md_parameters(_speed_parameters(speed))
    except MdParameterError as exception:
        return f'speed.md.parameters: {exception}'
    return None


def _speed_parameters(speed) -> dict:
    """The MD parameters of a speed run: the given ones (or :data:`DEFAULT_SPEED_PARAMETERS`), ``n_steps`` of
    production and no equilibration, and every output only at the end, so the time measured is the model's."""
    given = _namespace_dict(speed, 'md').get('parameters')
    parameters = given.get_dict() if given is not None else dict(DEFAULT_SPEED_PARAMETERS)
    n_steps = int(speed['n_steps'].value)
    parameters.update({'n_steps': n_steps, 'n_equilibration_steps': 0, 'thermo_interval': n_steps,
                       'trajectory_interval': n_steps, 'checkpoint_interval': n_steps, 'snapshot_interval': 0})
    return parameters


# --------------------------------------------------------------------------------------------------- work chain


class ArchitectureTrainingWorkChain(ProtocolMixin, WorkChain):
    """Train every architecture of ``architectures`` once per seed on one shared split, evaluate all models on the
    same test set, choose per architecture the seed with the lowest validation force RMSE, and measure the cost
    (training wall time, MD speed and peak memory) of the chosen models."""

    _protocol_file = 'architectures.yaml'
    _protocol_open_keys = ('architectures', 'nep.overrides', 'mace.overrides', 'speed.parameters', 'speed.options',
                           'nep.options', 'mace.options')

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('dataset', valid_type=LabelledDataset, required=False,
                   help='Labelled structures, split here into train, validation and test (unless those are given).')
        spec.input('train', valid_type=LabelledDataset, required=False,
                   help='Training structures (with `validation` and `test`, instead of `dataset`).')
        declare_held_out_inputs(spec, chooses='the seed of each architecture (and early-stop/validate the trainers)')
        spec.input('split_seed', valid_type=orm.Int, default=lambda: orm.Int(1),
                   help='Seed of the one split that every architecture shares.')
        spec.input('seeds', valid_type=orm.List, default=lambda: orm.List([1]),
                   help='Every architecture is trained once per seed, the same seeds for all (GPUMD nep takes no '
                        'seed: its trainings differ by its own random start).')
        spec.input('architectures', valid_type=orm.Dict,
                   help='{label: spec}; spec {"kind": "nep", "parameters": {nep.in overrides}} or {"kind": "mace", '
                        '"variant": "MACE-T0-I", "parameters": {mace_run_train overrides}}. Labels become link '
                        'names (letters, digits, single underscores).')
        spec.input('serial_training', valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help='Train one model at a time, so that the training wall times do not share the machine '
                        '(needed for comparable costs on one workstation; on a cluster each job has its own node).')
        spec.expose_inputs(NepTrainBaseWorkChain, namespace='nep', exclude=('nep.train', 'nep.test', 'nep.seed'),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'The NEP trainings: code, base nep.in parameters, options.'})
        spec.expose_inputs(MaceTrainBaseWorkChain, namespace='mace',
                           exclude=('mace.train', 'mace.validation', 'mace.test', 'mace.variant', 'mace.seed'),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'The MACE trainings: code, base parameters, options.'})
        spec.expose_inputs(EngineMdBaseWorkChain, namespace='speed',
                           exclude=('md.structure', 'md.model', 'md.calculator', 'md.checkpoint'),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'The MD speed runs of the chosen models: engine code, options.'})
        spec.inputs['speed']['md']['parameters'].required = False
        # the engine's own validator needs the calculator and model, which are set here per run: it checks them when
        # each speed run is launched, and _validate_speed checks the rest before anything runs
        spec.inputs['speed']['md'].validator = None
        spec.input('speed.structure', valid_type=orm.StructureData, required=False,
                   help='The cell the MD speed is measured on (its elements must be among the training data\'s).')
        spec.input('speed.n_steps', valid_type=orm.Int, default=lambda: orm.Int(20),
                   help='Production steps of each speed run (no equilibration, outputs only at the end).')
        spec.input('speed.replications', valid_type=orm.List, required=False,
                   help='[[n1, n2, n3], ...]: the speed is measured on each replication of the structure (default '
                        '[[1, 1, 1]]), for speed against the number of atoms.')
        spec.input('speed.device', valid_type=orm.Str, default=lambda: orm.Str('cpu'),
                   help="Device of the MACE calculator in the speed runs ('cpu' or 'cuda'; NEP runs CPUNEP).")
        spec.inputs.validator = _validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.should_train)(cls.run_training),
            cls.inspect_training,
            cls.evaluate,
            cls.choose,
            if_(cls.should_measure_speed)(
                while_(cls.should_run_speed)(cls.run_speed),
            ),
            cls.cost,
            cls.summarise,
        )

        spec.output('train_dataset', valid_type=LabelledDataset, help='The structures every model was trained on.')
        spec.output('validation_dataset', valid_type=LabelledDataset,
                    help='The structures that chose the seed (biased: not a held-out error).')
        spec.output('test_dataset', valid_type=LabelledDataset, help='The held-out structures of `test_metrics`.')
        spec.output_namespace('models', dynamic=True, valid_type=(NepModel, MaceModel),
                              help='Per architecture label: the model of the chosen seed.')
        spec.output_namespace('test_metrics', dynamic=True, valid_type=orm.Dict,
                              help='Per architecture: the chosen model\'s errors on the test set (evaluate_model '
                                   'keys: energy_mev_per_atom, force_mev_per_angstrom, virial_mev_per_atom, '
                                   'stress_gpa, force_per_element, ...).')
        spec.output_namespace('seed_spread', dynamic=True, valid_type=orm.Dict,
                              help='Per architecture: mean/std/min/max of the test errors over the seeds '
                                   '(summarise_replicas; best_replica is the chosen seed label).')
        spec.output_namespace('cost', dynamic=True, valid_type=orm.Dict,
                              help='Per architecture: train_wall_time_s, md_speed [{n_atoms, atom_steps_per_s, '
                                   'peak_memory_mb, ...}], ... (architecture_cost).')
        spec.output_namespace('replicas', dynamic=True, valid_type=(NepModel, MaceModel, orm.Dict),
                              help='Per architecture, per seed: `seed_<n>_model`, `seed_<n>_validation_metrics`, '
                                   '`seed_<n>_test_metrics`.')
        spec.output('summary', valid_type=orm.Dict,
                    help='One row per architecture: errors, relative force RMSE, seed spread, cost '
                         '(summarise_architectures).')

        spec.exit_code(401, 'ERROR_NO_MODEL_TRAINED', message='No architecture finished a training: {message}')
        spec.exit_code(402, 'ERROR_ARCHITECTURE_FAILED',
                       message='Architecture(s) {labels} trained no model (the others are reported): {message}')
        spec.exit_code(403, 'ERROR_SPEED_RUN_FAILED',
                       message='The MD speed run(s) of {runs} failed (their cost has no speed): {message}')

    # ----------------------------------------------------------------------------------------------- protocol

    @classmethod
    def get_builder_from_protocol(cls, nep_code=None, mace_code=None, dataset=None, architectures=None,
                                  protocol=None, engine_code=None, speed_structure=None, overrides=None,
                                  options=None):
        """A ready builder: ``dataset`` split once, every architecture of ``architectures`` (default: the
        protocol's NEP, qNEP, MACE-T0-I and MACE-T1-E) trained per seed; the NEP part from ``sseff.train.nep``'s
        protocol (``training.yaml``), the MACE part from ``sseff.mace.train.base``'s (``mace.yaml``), of the same
        name unless ``nep.protocol``/``mace.protocol`` says otherwise; with ``engine_code`` and ``speed_structure``,
        the MD speed runs.

        :param protocol: ``fast`` (a 2-core CPU, minutes), ``balanced`` or ``stringent``.
        :param overrides: merged into the protocol's inputs (``seeds``, ``architectures``, ``nep.overrides`` /
            ``mace.overrides`` passed to the children's protocols, ``speed.n_steps``, ...).
        :param options: CalcJob ``metadata.options`` of every training and MD job (``device`` of MACE included).
        A dataset without stress labels trains without them (nep.in ``lambda_v`` 0, mace ``stress_weight`` 0).
        """
        from aiida_sseff.workflows.training import NepTrainingWorkChain

        inputs = cls.get_protocol_inputs(protocol, overrides)
        protocol = protocol or cls.get_default_protocol()
        architectures = architectures if architectures is not None else inputs['architectures']
        kinds = {spec.get('kind') for spec in architectures.values()}
        no_stress = dataset is not None and not dataset.base.attributes.get('has_virial', False)
        builder = cls.get_builder()
        if dataset is not None:
            builder.dataset = dataset
        builder.architectures = orm.Dict(architectures)
        builder.seeds = orm.List(list(inputs['seeds']))
        builder.validation_fraction = orm.Float(inputs['validation_fraction'])
        builder.test_fraction = orm.Float(inputs['test_fraction'])
        builder.split_seed = orm.Int(inputs['split_seed'])
        builder.serial_training = orm.Bool(inputs['serial_training'])
        if 'nep' in kinds and nep_code is not None:
            child = NepTrainingWorkChain.get_builder_from_protocol(
                nep_code, protocol=inputs['nep'].get('protocol', protocol), overrides=inputs['nep'].get('overrides'),
                options={**inputs['nep'].get('options', {}), **(options or {})})
            parameters = child.training.nep.parameters.get_dict()
            if no_stress:
                parameters['lambda_v'] = 0.0
            builder.nep.nep.code = nep_code
            builder.nep.nep.parameters = orm.Dict(parameters)
            builder.nep.nep.metadata.options = dict(child.training.nep.metadata.options)
            builder.nep.max_iterations = child.training.max_iterations
        if 'mace' in kinds and mace_code is not None:
            # the child's protocol inputs (its builder would need the training set, which the split makes)
            child = MaceTrainBaseWorkChain.get_protocol_inputs(inputs['mace'].get('protocol', protocol),
                                                               inputs['mace'].get('overrides') or None)
            parameters = dict(child['mace']['parameters'])
            if no_stress:
                parameters['stress_weight'] = 0.0
            builder.mace.mace.code = mace_code
            builder.mace.mace.parameters = orm.Dict(parameters)
            builder.mace.mace.metadata.options = {**child['mace']['options'], **inputs['mace'].get('options', {}),
                                                  **(options or {})}
            builder.mace.max_iterations = orm.Int(child['max_iterations'])
        if engine_code is not None and speed_structure is not None:
            speed = inputs['speed']
            builder.speed.md.code = engine_code
            builder.speed.md.parameters = orm.Dict(speed['parameters'])
            # `device` is a training option; the engine MD takes the calculator's device (speed.device) instead
            builder.speed.md.metadata.options = {key: value for key, value in {**speed.get('options', {}),
                                                                               **(options or {})}.items()
                                                 if key != 'device'}
            builder.speed.structure = speed_structure
            builder.speed.n_steps = orm.Int(speed['n_steps'])
            builder.speed.replications = orm.List([list(r) for r in speed['replications']])
            builder.speed.device = orm.Str((options or {}).get('device', speed.get('device', 'cpu')))
        return builder

    # ------------------------------------------------------------------------------------------------- steps

    def setup(self):
        self.ctx.architectures = self.inputs.architectures.get_dict()
        self.ctx.labels = sorted(self.ctx.architectures)
        self.ctx.seeds = [int(seed) for seed in self.inputs.seeds.get_list()]
        if 'dataset' in self.inputs:
            given = {name: self.inputs.get(name) for name in ('validation', 'test')}
            self.ctx.train = self.inputs.dataset
            if given['validation'] is None or given['test'] is None:
                split = split_train_validation_test(
                    self.inputs.dataset,
                    orm.Float(0.0) if given['validation'] is not None else self.inputs.validation_fraction,
                    orm.Float(0.0) if given['test'] is not None else self.inputs.test_fraction,
                    self.inputs.split_seed, metadata={'call_link_label': 'split'})
                self.ctx.train = split['train']
                given = {name: given[name] or split[name] for name in given}
            self.ctx.validation, self.ctx.test = given['validation'], given['test']
        else:
            self.ctx.train, self.ctx.validation, self.ctx.test = (self.inputs.train, self.inputs.validation,
                                                                  self.inputs.test)
        self.out('train_dataset', self.ctx.train)
        self.out('validation_dataset', self.ctx.validation)
        self.out('test_dataset', self.ctx.test)
        self.ctx.parameters = {}
        for label in self.ctx.labels:
            spec = self.ctx.architectures[label]
            base = self.inputs[spec['kind']][spec['kind']].parameters.get_dict()
            self.ctx.parameters[label] = orm.Dict({**base, **spec.get('parameters', {})})
        self.ctx.pending = [(label, seed) for label in self.ctx.labels for seed in self.ctx.seeds]
        self.ctx.jobs = {label: {} for label in self.ctx.labels}

    @staticmethod
    def _job_key(label: str, seed: int) -> str:
        return f'training_{label}_{seed_label(seed)}'

    def should_train(self):
        return bool(self.ctx.pending)

    def _training_inputs(self, label: str, seed: int):
        spec = self.ctx.architectures[label]
        link = f'train_{label}_{seed_label(seed)}'
        if spec['kind'] == 'nep':
            inputs = AttributeDict(self.exposed_inputs(NepTrainBaseWorkChain, 'nep'))
            nep = AttributeDict(inputs.nep)
            nep.parameters = self.ctx.parameters[label]
            nep.train = self.ctx.train
            nep.test = self.ctx.validation  # never the test set: it must stay unseen
            if resolve_program(nep.get('program'), nep.code) == 'neppo':
                nep.seed = orm.Int(seed)
            inputs.nep = nep
            process = NepTrainBaseWorkChain
        else:
            inputs = AttributeDict(self.exposed_inputs(MaceTrainBaseWorkChain, 'mace'))
            mace = AttributeDict(inputs.mace)
            mace.parameters = self.ctx.parameters[label]
            mace.train = self.ctx.train
            mace.validation = self.ctx.validation
            mace.variant = orm.Str(spec['variant'])
            mace.seed = orm.Int(seed)
            inputs.mace = mace
            process = MaceTrainBaseWorkChain
        inputs.metadata = {'call_link_label': link, 'label': link}
        return process, inputs

    def run_training(self):
        batch = self.ctx.pending[:1] if self.inputs.serial_training.value else list(self.ctx.pending)
        self.ctx.pending = self.ctx.pending[len(batch):]
        jobs = {}
        for label, seed in batch:
            process, inputs = self._training_inputs(label, seed)
            key = self._job_key(label, seed)
            jobs[key] = self.submit(process, **inputs)
            self.report(f'submitted {label} seed {seed} <{jobs[key].pk}>')
        return ToContext(**jobs)

    def inspect_training(self):
        self.ctx.finished = {}
        failures = {}
        for label in self.ctx.labels:
            for seed in self.ctx.seeds:
                node = self.ctx[self._job_key(label, seed)]
                if node.is_finished_ok:
                    self.ctx.finished.setdefault(label, []).append(seed)
                else:
                    failures.setdefault(label, []).append(f'seed {seed}: [{node.exit_status}] {node.exit_message}')
                    self.report(f'{label} seed {seed} <{node.pk}> failed: {node.exit_status} {node.exit_message}')
        self.ctx.failed_architectures = {label: '; '.join(messages) for label, messages in failures.items()
                                         if label not in self.ctx.finished}
        if not self.ctx.finished:
            message = '; '.join(f'{label}: {text}' for label, text in self.ctx.failed_architectures.items())
            return self.exit_codes.ERROR_NO_MODEL_TRAINED.format(message=message)
        return None

    def evaluate(self):
        self.ctx.validation_metrics, self.ctx.test_metrics = {}, {}
        for label, seeds in self.ctx.finished.items():
            validation, test, replicas = {}, {}, {}
            for seed in seeds:
                model = self.ctx[self._job_key(label, seed)].outputs.model
                name = f'{label}_{seed_label(seed)}'
                validation[seed_label(seed)] = evaluate_model(model, self.ctx.validation,
                                                              metadata={'call_link_label': f'validate_{name}'})
                test[seed_label(seed)] = evaluate_model(model, self.ctx.test,
                                                        metadata={'call_link_label': f'test_{name}'})
                replicas.update({f'{seed_label(seed)}_model': model,
                                 f'{seed_label(seed)}_validation_metrics': validation[seed_label(seed)],
                                 f'{seed_label(seed)}_test_metrics': test[seed_label(seed)]})
            self.out(f'replicas.{label}', replicas)
            self.ctx.validation_metrics[label], self.ctx.test_metrics[label] = validation, test

    def choose(self):
        self.ctx.chosen, self.ctx.spread = {}, {}
        for label in self.ctx.finished:
            validation = self.ctx.validation_metrics[label]
            forces = [(node['force_mev_per_angstrom'], key) for key, node in validation.items()
                      if node['force_mev_per_angstrom'] is not None]
            chosen = min(forces)[1] if forces else sorted(validation)[0]
            spread = summarise_replicas(chosen=orm.Str(chosen), **self.ctx.test_metrics[label],
                                        metadata={'call_link_label': f'seed_spread_{label}'})
            self.ctx.chosen[label], self.ctx.spread[label] = chosen, spread
            seed = int(chosen.split('_', 1)[1])
            self.out(f'models.{label}', self.ctx[self._job_key(label, seed)].outputs.model)
            self.out(f'test_metrics.{label}', self.ctx.test_metrics[label][chosen])
            self.out(f'seed_spread.{label}', spread)
            force = spread['force_mev_per_angstrom']
            self.report(f'{label}: chose {chosen}; test force RMSE {force["mean"]:.1f} ± {force["std"]:.1f} meV/Å '
                        f'over {spread["n_replicas"]} seed(s)')
        speed = self.inputs.get('speed', {})
        self.ctx.speed_pending = []
        if 'structure' in speed:
            replications = speed['replications'].get_list() if 'replications' in speed else [[1, 1, 1]]
            self.ctx.speed_structures = []
            for index, replication in enumerate(replications):
                structure = speed['structure'] if list(replication) == [1, 1, 1] else replicate_structure(
                    speed['structure'], orm.List(list(replication)),
                    metadata={'call_link_label': f'replicate_{index:02d}'})
                self.ctx.speed_structures.append((orm.List(list(replication)), structure))
            self.ctx.speed_pending = [(label, index) for label in self.ctx.labels if label in self.ctx.chosen
                                      for index in range(len(replications))]

    def should_measure_speed(self):
        return bool(self.ctx.speed_pending)

    def should_run_speed(self):
        return bool(self.ctx.speed_pending)

    def run_speed(self):
        """One speed run at a time: two MD runs on the same machine would slow each other down."""
        label, index = self.ctx.speed_pending.pop(0)
        spec = self.ctx.architectures[label]
        seed = int(self.ctx.chosen[label].split('_', 1)[1])
        inputs = AttributeDict(self.exposed_inputs(EngineMdBaseWorkChain, 'speed'))
        md = AttributeDict(inputs.md)
        md.structure = self.ctx.speed_structures[index][1]
        md.model = self.ctx[self._job_key(label, seed)].outputs.model
        calculator = {'kind': spec['kind']}
        if spec['kind'] == 'mace':
            calculator['device'] = self.inputs.speed.device.value
        md.calculator = orm.Dict(calculator)
        md.parameters = orm.Dict(_speed_parameters(self.inputs.speed))
        inputs.md = md
        link = f'speed_{label}_{index:02d}'
        inputs.metadata = {'call_link_label': link, 'label': link}
        node = self.submit(EngineMdBaseWorkChain, **inputs)
        self.report(f'submitted the speed run {link} ({len(md.structure.sites)} atoms) <{node.pk}>')
        return ToContext(**{link: node})

    def cost(self):
        self.ctx.speed_failures, self.ctx.cost = [], {}
        for label in self.ctx.labels:
            if label not in self.ctx.chosen:
                continue
            spec = self.ctx.architectures[label]
            if spec['kind'] == 'nep':
                nep = self.inputs.nep.nep
                program = resolve_program(nep.program.value if 'program' in nep else None, nep.code)
            else:
                program = 'mace'
            device = self.inputs.speed.device.value if spec['kind'] == 'mace' and 'speed' in self.inputs else 'cpu'
            nodes = {}
            for seed in self.ctx.finished[label]:
                training = self.ctx[self._job_key(label, seed)]
                calcjobs = sorted((n for n in training.called if isinstance(n, orm.CalcJobNode)), key=lambda n: n.pk)
                for number, calcjob in enumerate(calcjobs):
                    if 'retrieved' in calcjob.outputs:
                        nodes[f'retrieved_{seed_label(seed)}_{number:02d}'] = calcjob.outputs.retrieved
            for index, (replication, _) in enumerate(self.ctx.get('speed_structures', [])):
                nodes[f'replication_{index:02d}'] = replication
                run = self.ctx.get(f'speed_{label}_{index:02d}')
                if run is None:
                    continue
                if run.is_finished_ok:
                    nodes[f'md_{index:02d}'] = run.outputs.results
                else:
                    self.ctx.speed_failures.append(f'{label} {replication.get_list()}: [{run.exit_status}] '
                                                   f'{run.exit_message}')
            cost = architecture_cost(orm.Str(program), orm.Str(self.ctx.chosen[label]), orm.Str(device), **nodes,
                                     metadata={'call_link_label': f'cost_{label}'})
            self.ctx.cost[label] = cost
            self.out(f'cost.{label}', cost)

    def summarise(self):
        nodes = {}
        for label in self.ctx.chosen:
            nodes[f'test_metrics_{label}'] = self.ctx.test_metrics[label][self.ctx.chosen[label]]
            nodes[f'seed_spread_{label}'] = self.ctx.spread[label]
            nodes[f'cost_{label}'] = self.ctx.cost[label]
        summary = summarise_architectures(self.inputs.architectures, **nodes,
                                          metadata={'call_link_label': 'summarise'})
        self.out('summary', summary)
        for row in summary['rows']:
            relative = row['force_relative_to_reference']
            self.report(f'{row["architecture"]}: test force RMSE {row["force_mev_per_angstrom"]:.1f} meV/Å'
                        + (f' ({relative:.2f}× the reference)' if relative is not None else '')
                        + (f', trained in {row["train_wall_time_s"]:.0f} s' if row['train_wall_time_s'] else ''))
        if self.ctx.failed_architectures:
            labels = ', '.join(self.ctx.failed_architectures)
            message = '; '.join(f'{label}: {text}' for label, text in self.ctx.failed_architectures.items())
            return self.exit_codes.ERROR_ARCHITECTURE_FAILED.format(labels=labels, message=message)
        if self.ctx.speed_failures:
            runs = ', '.join(failure.split(':', 1)[0] for failure in self.ctx.speed_failures)
            return self.exit_codes.ERROR_SPEED_RUN_FAILED.format(runs=runs, message='; '.join(self.ctx.speed_failures))
        return None
