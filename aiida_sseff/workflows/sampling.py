"""``sseff.sample``: candidate configurations → farthest-point selection → an unlabelled ``sseff.dataset``.

Candidates come from any combination of

* MD snapshots: the engine MD (:class:`~aiida_sseff.workflows.md.EngineMdBaseWorkChain`, which restarts a run from its
  checkpoint after a wall time and halves the time step once after an instability) at several
  temperatures, with a given model (``NepModel``/``MaceModel``) or the CHGNet surrogate;
* perturbations of a structure: Gaussian rattles of given amplitudes and random strains within a given range, made by
  the calcfunctions :func:`rattle_structure` and :func:`strain_structure` (so they are in the provenance graph);
* an existing dataset.

All candidates are merged (labels removed) by :func:`~aiida_sseff.data.dataset.merge_datasets`; :func:`fps_select`
picks a subset by greedy max-min farthest-point sampling, optionally away from a seed set (an existing training set);
:func:`~aiida_sseff.data.dataset.subset_dataset` makes the selected dataset from the candidates and the picked
indices. :class:`ReductionSeriesWorkChain` makes the nested 1/2^n subsets of a labelled set.

This module holds the calcfunctions and the work chains only; the science is plain Python in
:mod:`aiida_sseff.analysis.sampling` (descriptors, FPS of structures, perturbations, parameter checks), which the
``aiida-sseff sample`` command and notebooks use directly.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction, if_

from aiida_sseff.analysis.sampling import (
    DESCRIPTORS,
    MAX_RATTLE_AMPLITUDE_A,
    check_no_overlap,
    check_rattle_amplitudes,
    check_strain_range,
    json_distances,
    rattled_structures,
    select_by_fps,
    strained_structures,
)
from aiida_sseff.data.dataset import LabelledDataset, merge_datasets, subset_dataset
from aiida_sseff.data.model import NepModel
from aiida_sseff.protocols.utils import ProtocolMixin
from aiida_sseff.workflows.md import EngineMdBaseWorkChain

__all__ = (
    'ReductionSeriesWorkChain',
    'SamplingWorkChain',
    'expected_candidates',
    'fps_select',
    'rattle_structure',
    'strain_structure',
)


# --- calcfunctions ----------------------------------------------------------------------------------------------------
@calcfunction
def rattle_structure(structure: orm.StructureData, amplitudes: orm.List, n_per_amplitude: orm.Int,
                     seed: orm.Int) -> LabelledDataset:
    """``n_per_amplitude`` copies of ``structure`` per amplitude, every Cartesian coordinate displaced by a Gaussian.

    See :func:`aiida_sseff.analysis.sampling.rattled_structures` (amplitude = standard deviation per component, Å;
    one ``numpy.random.default_rng(seed)`` stream; ``info['config_type'] = 'rattle'``, ``info['rattle_amplitude_A']``).
    """
    structures = rattled_structures(structure.get_ase(), amplitudes.get_list(), n_per_amplitude.value, seed.value)
    return LabelledDataset(structures, require_labels=False)


@calcfunction
def strain_structure(structure: orm.StructureData, strain_range: orm.List, n_strains: orm.Int,
                     seed: orm.Int) -> LabelledDataset:
    """``n_strains`` copies of ``structure`` under random homogeneous strains.

    See :func:`aiida_sseff.analysis.sampling.strained_structures`: symmetric strain tensors with components from
    U(strain_range[0], strain_range[1]), fractional coordinates kept; ``info['config_type'] = 'strain'`` and
    ``info['strain_voigt']`` (xx, yy, zz, yz, xz, xy).
    """
    structures = strained_structures(structure.get_ase(), strain_range.get_list(), n_strains.value, seed.value)
    return LabelledDataset(structures, require_labels=False)


@calcfunction
def fps_select(candidates: LabelledDataset, descriptor: orm.Str, per_species: orm.Bool,
               n_structures: orm.Int | None = None, min_distance: orm.Float | None = None,
               species: orm.Str | None = None, seed_set: LabelledDataset | None = None,
               model: NepModel | None = None) -> dict:
    """Farthest-point selection of ``candidates`` (:func:`aiida_sseff.analysis.sampling.select_by_fps`).

    :returns: ``indices`` (List of candidate indices, in the order picked; possibly empty with a seed set and a
        ``min_distance``) and ``report`` (Dict: ``min_distances`` per pick, None for the first pick without a seed set;
        ``descriptor``, ``elements``, ``dimension``, ``per_species``, ``species``, ``n_candidates``, ``n_seed``).
    """
    structures = candidates.get_ase()
    seeds = seed_set.get_ase() if seed_set is not None else None
    options = {'descriptor': descriptor.value, 'per_species': per_species.value,
               'species': species.value if species is not None else None,
               'n_select': n_structures.value if n_structures is not None else None,
               'min_distance': min_distance.value if min_distance is not None else None}
    if model is not None:
        with model.as_path() as path:
            result, info = select_by_fps(structures, seed_structures=seeds, model_path=path, **options)
        info['model_sha256'] = model.sha256
    else:
        result, info = select_by_fps(structures, seed_structures=seeds, **options)
    report = {**info, 'min_distances': json_distances(result.min_distances), 'n_candidates': len(structures),
              'n_seed': len(seeds or [])}
    return {'indices': orm.List([int(i) for i in result.indices]), 'report': orm.Dict(report)}


# --- input validation -------------------------------------------------------------------------------------------------
def _validate_selection(selection: dict, model_elements: list | None, elements: set) -> str | None:
    has_n = 'n_structures' in selection
    has_d = 'min_distance' in selection
    if has_n == has_d:
        return 'give exactly one of selection.n_structures and selection.min_distance'
    if has_n and selection['n_structures'].value < 1:
        return f'selection.n_structures must be at least 1; got {selection["n_structures"].value}'
    if has_d and not (np.isfinite(selection['min_distance'].value) and selection['min_distance'].value >= 0):
        return f'selection.min_distance must be a finite number >= 0; got {selection["min_distance"].value}'
    return _validate_descriptor(selection, model_elements, elements, 'selection.')


def _validate_descriptor(inputs: dict, model_elements: list | None, elements: set, prefix: str) -> str | None:
    descriptor = inputs['descriptor'].value if 'descriptor' in inputs else None
    model = inputs.get('model')
    if descriptor is not None and descriptor not in DESCRIPTORS:
        return f'{prefix}descriptor must be one of {", ".join(DESCRIPTORS)}; got `{descriptor}`'
    if descriptor == 'nep' and model is None:
        return f"{prefix}descriptor 'nep' needs {prefix}model (a NepModel)"
    if model is not None and descriptor not in (None, 'nep'):
        return f'{prefix}model gives NEP descriptors; it cannot be combined with {prefix}descriptor `{descriptor}`'
    species = inputs['species'].value if 'species' in inputs else None
    per_species = inputs['per_species'].value if 'per_species' in inputs else False  # explicit choices only
    if species is not None and per_species:
        return f'{prefix}species and {prefix}per_species exclude each other: set per_species to False'
    if descriptor == 'rdf' and (species is not None or per_species):
        return f'{prefix}per_species and {prefix}species apply to NEP descriptors only (rdf is resolved by species pair)'
    if model_elements is not None and elements:
        missing = sorted(elements - set(model_elements))
        if missing:
            return (f'{prefix}model does not know the element(s) {", ".join(missing)} of the candidates '
                    f'(it knows {", ".join(model_elements)})')
    if species is not None and elements and species not in elements:
        return f'{prefix}species `{species}` is not among the elements of the candidates ({", ".join(sorted(elements))})'
    return None


def _validate_perturbations(perturbations: dict) -> str | None:
    amplitudes = perturbations.get('rattle_amplitudes')
    strain_range = perturbations.get('strain_range')
    if amplitudes is None and strain_range is None:
        return 'perturbations needs rattle_amplitudes and/or strain_range'
    if amplitudes is not None:
        message = check_rattle_amplitudes(amplitudes.get_list(), 'perturbations.rattle_amplitudes')
        if message:
            return message
        if perturbations.get('n_rattles') is not None and perturbations['n_rattles'].value < 1:
            return 'perturbations.n_rattles must be at least 1'
    if strain_range is not None:
        message = check_strain_range(strain_range.get_list(), 'perturbations.strain_range')
        if message:
            return message
        if perturbations.get('n_strains') is not None and perturbations['n_strains'].value < 1:
            return 'perturbations.n_strains must be at least 1'
    return None


def _validate_md(md: dict) -> str | None:
    temperatures = md['temperatures'].get_list() if 'temperatures' in md else []
    if not temperatures:
        return 'md.temperatures is empty: give the temperatures (K) of the MD runs'
    if any(isinstance(t, bool) or not isinstance(t, int | float) or not t > 0 for t in temperatures):
        return f'md.temperatures must be positive numbers (K); got {temperatures}'
    if len(set(temperatures)) != len(temperatures):
        return f'md.temperatures has duplicates: {temperatures}'
    job = md.get('md') or {}  # the inputs of each EngineMdBaseWorkChain's CalcJob
    if 'parameters' not in job:
        return 'md.md.parameters is required (MD parameters of the engine, without temperature_K)'
    parameters = job['parameters'].get_dict()
    if 'temperature_K' in parameters:
        return 'give temperatures in md.temperatures, not md.md.parameters.temperature_K'
    snapshot = parameters.get('snapshot_interval', 0)
    if not snapshot:
        return 'md.md.parameters.snapshot_interval must be > 0: the snapshots are the candidates'
    if snapshot > parameters.get('n_steps', 1000):
        return 'md.md.parameters.snapshot_interval is longer than n_steps: the MD would give no snapshot'
    if 'code' not in job:
        return 'md.md.code (the aiida-sseff-engine code) is required to run the MD'
    if 'calculator' not in job:
        return 'md.md.calculator is required: e.g. {"kind": "chgnet"}, or {"kind": "nep"} with md.md.model'
    return None


def expected_candidates(inputs) -> int:
    """Number of candidates the inputs will give (MD: n_steps // snapshot_interval per temperature)."""
    from aiida_sseff.engines.md import DEFAULT_MD_PARAMETERS

    count = 0
    if 'md' in inputs and inputs['md']:
        parameters = {**DEFAULT_MD_PARAMETERS, **inputs['md']['md']['parameters'].get_dict()}
        count += len(inputs['md']['temperatures'].get_list()) * (parameters['n_steps'] //
                                                                  parameters['snapshot_interval'])
    perturbations = inputs.get('perturbations') or {}
    defaults = SamplingWorkChain.defaults
    if 'rattle_amplitudes' in perturbations:
        n_rattles = perturbations['n_rattles'].value if 'n_rattles' in perturbations else defaults.n_rattles
        count += len(perturbations['rattle_amplitudes'].get_list()) * n_rattles
    if 'strain_range' in perturbations:
        count += perturbations['n_strains'].value if 'n_strains' in perturbations else defaults.n_strains
    if 'candidates' in inputs:
        count += inputs['candidates'].n_structures
    return count


def _validate_sampling(inputs, _):
    md = inputs.get('md') or {}
    perturbations = inputs.get('perturbations') or {}
    if not md and not perturbations and 'candidates' not in inputs:
        return ('no source of candidates: give md (MD snapshots), perturbations (rattles/strains of `structure`) '
                'and/or candidates (an existing dataset)')
    if (md or perturbations) and 'structure' not in inputs:
        return 'md and perturbations start from `structure`: give it'
    elements: set = set()
    if 'structure' in inputs:
        structure = inputs['structure']
        elements |= set(structure.get_symbols_set())
        message = check_no_overlap(structure.get_ase())
        if message:
            return message
    if md:
        message = _validate_md(md)
        if message:
            return message
        md_model = (md.get('md') or {}).get('model')
        if md_model is not None and md_model.elements and 'structure' in inputs:
            missing = sorted(set(inputs['structure'].get_symbols_set()) - set(md_model.elements))
            if missing:
                return (f'md.md.model does not know the element(s) {", ".join(missing)} of the structure (it knows '
                        f'{", ".join(md_model.elements)})')
    if perturbations:
        message = _validate_perturbations(perturbations)
        if message:
            return message
    if 'candidates' in inputs:
        elements |= set(inputs['candidates'].elements or [])
    if 'seed_set' in inputs:
        elements |= set(inputs['seed_set'].elements or [])
    selection = inputs.get('selection') or {}
    model = selection.get('model')
    message = _validate_selection(selection, model.elements if model is not None else None, elements)
    if message:
        return message
    if 'n_structures' in selection:
        expected = expected_candidates(inputs)
        if selection['n_structures'].value > expected:
            return (f'selection.n_structures = {selection["n_structures"].value} is larger than the '
                    f'{expected} candidates the inputs give: sample more or select fewer')
    return None


# --- work chains ------------------------------------------------------------------------------------------------------
def _selection_ports(spec, namespace: str = '') -> None:
    """The descriptor inputs shared by both work chains, in ``namespace`` (top level when empty)."""
    prefix = f'{namespace}.' if namespace else ''
    spec.input(f'{prefix}descriptor', valid_type=orm.Str, required=False,
               help="'untrained_nep' (default without a model: NEP descriptor with fixed random c_nk), 'rdf', or "
                    "'nep' (default with `model`).")
    spec.input(f'{prefix}model', valid_type=NepModel, required=False,
               help='A trained NEP model: its descriptors (calorine) define the distances.')
    spec.input(f'{prefix}per_species', valid_type=orm.Bool, required=False,
               help='NEP descriptors: concatenate per-species means so that Li environments weigh in (default True '
                    'for the NEP descriptors unless `species` is given; not for rdf).')
    spec.input(f'{prefix}species', valid_type=orm.Str, required=False,
               help='NEP descriptors: average over the atoms of this species only (needs per_species False).')


def _descriptor_inputs(namespace) -> dict:
    """Keyword arguments of :func:`fps_select` from a selection namespace of the inputs."""
    model = namespace.get('model')
    descriptor = namespace['descriptor'] if 'descriptor' in namespace else orm.Str('nep' if model else 'untrained_nep')
    if 'per_species' in namespace:
        per_species = namespace['per_species']
    else:
        per_species = orm.Bool(descriptor.value != 'rdf' and 'species' not in namespace)
    inputs = {'descriptor': descriptor, 'per_species': per_species}
    if 'species' in namespace:
        inputs['species'] = namespace['species']
    if model is not None:
        inputs['model'] = model
    return inputs


class SamplingWorkChain(ProtocolMixin, WorkChain):
    """Candidates (MD snapshots, rattles/strains, an existing dataset) → FPS selection → unlabelled ``sseff.dataset``."""

    _protocol_file = 'sampling.yaml'

    defaults = AttributeDict({
        'n_rattles': 4,  # structures per rattle amplitude
        'n_strains': 4,
        'seed': 1,  # of the rattle and strain draws
    })

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, required=False,
                   help='The starting structure of the MD runs and of the rattles/strains (periodic).')
        spec.expose_inputs(EngineMdBaseWorkChain, namespace='md', exclude=('md.structure', 'md.checkpoint'),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'MD sampling with the engine (EngineMdBaseWorkChain: '
                                                      'checkpoint restarts), one run per temperature.'})
        # the CalcJob's own validator needs the structure, given per run; the sampling validator checks the rest
        spec.inputs['md']['md'].validator = None
        spec.input('md.temperatures', valid_type=orm.List, required=False,
                   help='Temperatures (K), one MD run each (seeds: md.parameters.seed + index).')
        spec.input_namespace('perturbations', required=False, populate_defaults=False,
                             help='Rattles and strains of `structure`.')
        spec.input('perturbations.rattle_amplitudes', valid_type=orm.List, required=False,
                   help=f'Standard deviations (Å) of the Gaussian displacements, each in (0, '
                        f'{MAX_RATTLE_AMPLITUDE_A}].')
        spec.input('perturbations.n_rattles', valid_type=orm.Int, required=False,
                   help=f'Rattled structures per amplitude (default {cls.defaults.n_rattles}).')
        spec.input('perturbations.strain_range', valid_type=orm.List, required=False,
                   help='[min, max] of the strain components (fractional), e.g. [-0.03, 0.03].')
        spec.input('perturbations.n_strains', valid_type=orm.Int, required=False,
                   help=f'Strained structures (default {cls.defaults.n_strains}).')
        spec.input('perturbations.seed', valid_type=orm.Int, required=False,
                   help=f'Seed of the rattle and strain draws (default {cls.defaults.seed}).')
        spec.input('candidates', valid_type=LabelledDataset, required=False,
                   help='Existing structures to select from (labels, if any, are dropped).')
        spec.input('seed_set', valid_type=LabelledDataset, required=False,
                   help='An existing training set: the selection moves away from it (not selected itself).')
        spec.input_namespace('selection', help='Farthest-point selection.')
        spec.input('selection.n_structures', valid_type=orm.Int, required=False, help='How many to select.')
        spec.input('selection.min_distance', valid_type=orm.Float, required=False,
                   help='Alternatively: select while the farthest candidate is at least this far (descriptor units).')
        _selection_ports(spec, 'selection')
        spec.inputs.validator = _validate_sampling

        spec.outline(
            cls.setup,
            if_(cls.should_run_md)(cls.run_md, cls.inspect_md),
            cls.make_candidates,
            cls.select,
        )

        spec.output('candidates', valid_type=LabelledDataset, help='All candidates, unlabelled.')
        spec.output('selected', valid_type=LabelledDataset, help='The selected candidates (unlabelled), FPS order.')
        spec.output('indices', valid_type=orm.List, help='Indices of the selected candidates, in the order picked.')
        spec.output('report', valid_type=orm.Dict, help='Min-distance of each pick and the descriptor used.')

        spec.exit_code(401, 'ERROR_MD_FAILED', message='The sampling MD failed at {temperatures} K: {messages}')
        spec.exit_code(403, 'ERROR_TOO_FEW_CANDIDATES',
                       message='Only {n_candidates} candidates for {n_structures} structures: sample more.')
        spec.exit_code(404, 'ERROR_EMPTY_SELECTION',
                       message='No candidate is {min_distance} or farther from the seed set: the selection is empty '
                               '(lower selection.min_distance, or the seed set covers these candidates already).')

    @classmethod
    def get_builder_from_protocol(cls, code=None, structure=None, protocol=None, overrides=None, options=None,
                                  model=None, candidates=None, seed_set=None):
        """A ready builder from a protocol (``fast``, ``balanced``, ``stringent``) merged with ``overrides``.

        :param code: the ``aiida-sseff-engine`` code; None skips the MD (perturbations and/or ``candidates`` only).
        :param structure: the structure to run MD on and to rattle/strain; None skips MD and perturbations.
        :param options: CalcJob ``metadata.options`` of the MD runs.
        :param model: a NepModel or MaceModel that drives the MD (instead of CHGNet); a NepModel also gives the
            selection descriptor.
        :param candidates: an existing dataset to select from as well.
        :param seed_set: an existing training set to move away from.

        With ``overrides={'selection': {'min_distance': d}}`` (and no ``n_structures`` in the overrides) the
        selection stops at the distance instead of the protocol's count.
        """
        from aiida_sseff.data.model import MaceModel

        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        if structure is not None:
            builder.structure = structure
            if code is not None:
                md = inputs['md']
                builder.md.md.code = code
                builder.md.temperatures = orm.List([float(t) for t in md['temperatures']])
                builder.md.md.parameters = orm.Dict(md['parameters'])
                calculator = dict(md['calculator'])
                if model is not None:
                    calculator['kind'] = 'nep' if isinstance(model, NepModel) else 'mace'
                    builder.md.md.model = model
                builder.md.md.calculator = orm.Dict(calculator)
                if options:
                    builder.md.md.metadata.options = options
            perturbations = inputs['perturbations']
            if perturbations.get('rattle_amplitudes'):
                builder.perturbations.rattle_amplitudes = orm.List([float(a) for a in
                                                                    perturbations['rattle_amplitudes']])
                builder.perturbations.n_rattles = orm.Int(perturbations['n_rattles'])
            if perturbations.get('strain_range'):
                builder.perturbations.strain_range = orm.List([float(a) for a in perturbations['strain_range']])
                builder.perturbations.n_strains = orm.Int(perturbations['n_strains'])
            if perturbations.get('rattle_amplitudes') or perturbations.get('strain_range'):
                builder.perturbations.seed = orm.Int(perturbations['seed'])
        elif model is not None and isinstance(model, MaceModel):
            raise ValueError('a MaceModel only drives the MD, which needs a structure and a code')
        if candidates is not None:
            builder.candidates = candidates
        if seed_set is not None:
            builder.seed_set = seed_set
        selection = inputs['selection']
        given = (overrides or {}).get('selection', {})
        if selection.get('min_distance') is not None and 'n_structures' not in given:
            builder.selection.min_distance = orm.Float(selection['min_distance'])
        else:
            if selection.get('n_structures') is not None:
                builder.selection.n_structures = orm.Int(selection['n_structures'])
            if selection.get('min_distance') is not None:
                builder.selection.min_distance = orm.Float(selection['min_distance'])
        if selection.get('per_species') is not None:
            builder.selection.per_species = orm.Bool(selection['per_species'])
        if selection.get('descriptor'):
            builder.selection.descriptor = orm.Str(selection['descriptor'])
        if isinstance(model, NepModel):
            builder.selection.model = model
        return builder

    def setup(self):
        self.ctx.sources = {}

    def should_run_md(self):
        return bool(self.inputs.get('md'))

    def run_md(self):
        inputs = AttributeDict(self.exposed_inputs(EngineMdBaseWorkChain, namespace='md'))
        parameters = inputs.md.parameters.get_dict()
        base_seed = int(parameters.get('seed', 1))
        metadata = dict(inputs.md.get('metadata', {}))
        self.ctx.md_labels = []
        jobs = {}
        for index, temperature in enumerate(float(t) for t in self.inputs.md.temperatures.get_list()):
            label = f'md_{temperature:g}K'
            job = AttributeDict(inputs)
            job.md = AttributeDict(inputs.md)
            job.md.structure = self.inputs.structure
            # a different seed per temperature: independent samples, not one trajectory rescaled
            job.md.parameters = orm.Dict({**parameters, 'temperature_K': temperature, 'seed': base_seed + index})
            job.md.metadata = {**metadata, 'label': label}
            job.metadata = {'label': label, 'call_link_label': label}
            jobs[label] = self.submit(EngineMdBaseWorkChain, **job)
            self.ctx.md_labels.append((label, temperature))
            self.report(f'submitted {label} <{jobs[label].pk}>')
        return ToContext(**jobs)

    def inspect_md(self):
        failed = [(t, self.ctx[label]) for label, t in self.ctx.md_labels
                  if not self.ctx[label].is_finished_ok or 'snapshots' not in self.ctx[label].outputs]
        if failed:
            return self.exit_codes.ERROR_MD_FAILED.format(
                temperatures=', '.join(f'{t:g}' for t, _ in failed),
                messages='; '.join(f'{t:g} K: {node.exit_message or node.process_state.value}' for t, node in failed))
        for label, temperature in self.ctx.md_labels:
            self.ctx.sources[f'md_T{int(round(temperature)):05d}K'] = self.ctx[label].outputs.snapshots

    def make_candidates(self):
        structure = self.inputs.get('structure')
        perturbations = self.inputs.get('perturbations') or {}
        seed = perturbations.get('seed') or orm.Int(self.defaults.seed)
        if 'rattle_amplitudes' in perturbations:
            n_rattles = perturbations.get('n_rattles') or orm.Int(self.defaults.n_rattles)
            self.ctx.sources['rattles'] = rattle_structure(structure, perturbations['rattle_amplitudes'], n_rattles,
                                                           seed)
        if 'strain_range' in perturbations:
            n_strains = perturbations.get('n_strains') or orm.Int(self.defaults.n_strains)
            self.ctx.sources['strains'] = strain_structure(structure, perturbations['strain_range'], n_strains, seed)
        if 'candidates' in self.inputs:
            self.ctx.sources['dataset'] = self.inputs.candidates
        self.ctx.candidates = merge_datasets(drop_labels=orm.Bool(True), **self.ctx.sources)
        self.out('candidates', self.ctx.candidates)
        self.report(f'{self.ctx.candidates.n_structures} candidates from {", ".join(sorted(self.ctx.sources))}')

    def select(self):
        selection = self.inputs.selection
        n_candidates = self.ctx.candidates.n_structures
        inputs = _descriptor_inputs(selection)
        if 'n_structures' in selection:
            if selection.n_structures.value > n_candidates:
                return self.exit_codes.ERROR_TOO_FEW_CANDIDATES.format(n_candidates=n_candidates,
                                                                       n_structures=selection.n_structures.value)
            inputs['n_structures'] = selection.n_structures
        else:
            inputs['min_distance'] = selection.min_distance
        if 'seed_set' in self.inputs:
            inputs['seed_set'] = self.inputs.seed_set
        result = fps_select(self.ctx.candidates, **inputs)
        self.out('indices', result['indices'])
        self.out('report', result['report'])
        if not result['indices'].get_list():
            return self.exit_codes.ERROR_EMPTY_SELECTION.format(min_distance=selection.min_distance.value)
        selected = subset_dataset(self.ctx.candidates, result['indices'])
        self.out('selected', selected)
        self.report(f'selected {selected.n_structures} of {n_candidates} candidates')


def _validate_series(inputs, _):
    n_structures = inputs['dataset'].n_structures
    n_levels = inputs['n_levels'].value
    if n_levels < 1:
        return f'n_levels must be at least 1; got {n_levels}'
    if n_structures // 2**n_levels < 1:
        return (f'the dataset has {n_structures} structures: {n_levels} halvings need at least {2**n_levels} '
                '(N / 2^n must stay >= 1)')
    elements = set(inputs['dataset'].elements or [])
    if 'seed_set' in inputs:
        elements |= set(inputs['seed_set'].elements or [])
    model = inputs.get('model')
    return _validate_descriptor(inputs, model.elements if model is not None else None, elements, '')


class ReductionSeriesWorkChain(WorkChain):
    """The nested FPS subsets of a (labelled) dataset of sizes N // 2^n, n = 1 .. n_levels.

    One FPS run (:func:`fps_select`, N // 2 picks) orders the structures; level 1 is
    ``subset_dataset(dataset, order)`` and level n is ``subset_dataset(level n-1, first N // 2^n)``: each level is a
    node made from its parent, so the nesting is the provenance graph itself.
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('dataset', valid_type=LabelledDataset, help='The set to reduce (usually labelled).')
        spec.input('n_levels', valid_type=orm.Int, default=lambda: orm.Int(7), help='Number of halvings.')
        spec.input('seed_set', valid_type=LabelledDataset, required=False,
                   help='Optional existing set the first picks move away from.')
        _selection_ports(spec)
        spec.inputs.validator = _validate_series
        spec.outline(cls.order, cls.halve)
        spec.output('indices', valid_type=orm.List, help='The FPS order of the dataset (N // 2 indices).')
        spec.output('report', valid_type=orm.Dict, help='Min-distance of each pick and the descriptor used.')
        spec.output_namespace('series', valid_type=LabelledDataset, dynamic=True,
                              help='level_1 (N // 2 structures) ... level_n (N // 2^n), each a subset of the previous.')

    def order(self):
        inputs = _descriptor_inputs(self.inputs)
        if 'seed_set' in self.inputs:
            inputs['seed_set'] = self.inputs.seed_set
        n_structures = self.inputs.dataset.n_structures
        result = fps_select(self.inputs.dataset, n_structures=orm.Int(n_structures // 2), **inputs)
        self.out('indices', result['indices'])
        self.out('report', result['report'])
        self.ctx.order = result['indices']

    def halve(self):
        n_structures = self.inputs.dataset.n_structures
        parent = subset_dataset(self.inputs.dataset, self.ctx.order)
        self.out('series.level_1', parent)
        for level in range(2, self.inputs.n_levels.value + 1):
            # the parent is in FPS order, so its first N // 2^n structures are what FPS stopped there would pick
            parent = subset_dataset(parent, orm.List(list(range(n_structures // 2**level))))
            self.out(f'series.level_{level}', parent)
        self.report(f'series of {self.inputs.n_levels.value} levels, sizes '
                    + ', '.join(str(n_structures // 2**n) for n in range(1, self.inputs.n_levels.value + 1)))
