"""``sseff.locality``: the force-locality test of the perspective paper as one work chain.

structure (replicated so that the largest frozen sphere fits) → the central atom of each species nearest the cell
centre → :class:`~aiida_sseff.calculations.locality.EngineLocalityCalculation` (frozen sphere of each r_f, NVT MD
of the rest with the perturbation model, the surrogate's force on the central atom in each snapshot) → the σ_f table
(species × r_f, with blocked errors) by a calcfunction; optionally the largest σ_f at a chosen model's cutoff against
that model's force RMSE.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction, if_

from aiida_sseff.analysis.geometry import replication_for_width
from aiida_sseff.analysis.locality import central_atoms, sigma_f
from aiida_sseff.calculations.engine import EngineLabelCalculation
from aiida_sseff.calculations.locality import EngineLocalityCalculation, GpumdLocalityCalculation
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.data.model import MaceModel, NepModel
from aiida_sseff.engines.locality import LocalityParameterError, validate_locality_parameters
from aiida_sseff.protocols.utils import ProtocolMixin
from aiida_sseff.utils import json_safe
from aiida_sseff.workflows.diffusion import make_supercell

__all__ = ['LocalityWorkChain', 'central_forces', 'compare_with_model_error', 'join_snapshots', 'locality_table',
           'model_cutoff']

#: snapshots σ_f needs (analysis.locality.sigma_f: 8 blocks of at least 2 values)
MIN_SNAPSHOTS = 16
#: engine parameters that the GPUMD branch uses, and their names there (GPUMD's NVT is nvt_bdp, Bussi's thermostat)
GPUMD_PARAMETERS = {'temperature_K': 'temperature_K', 'n_snapshots': 'n_snapshots', 'snapshot_interval': 'snapshot_interval',
                    'n_equilibration_steps': 'n_equilibration_steps', 'timestep_fs': 'timestep_fs',
                    'margin_A': 'margin_A', 'seed': 'velocity_seed'}


def model_cutoff(model) -> float | None:
    """The cutoff R_cut (Å) of a model node: a NEP's radial cutoff, a MACE model's r_max."""
    if isinstance(model, NepModel):
        return float(model.cutoff[0])
    if isinstance(model, MaceModel):
        return model.cutoff
    return None


@calcfunction
def locality_table(forces: orm.ArrayData, species: orm.List) -> orm.ArrayData:
    """σ_f (eV/Å) and its blocked standard error per species (rows, in ``species`` order) and r_f (columns), from the
    central-atom forces of the locality run (one central atom per species, same order)."""
    data = forces.get_array('forces')
    names = species.get_list()
    if data.shape[0] != len(names):
        raise ValueError(f'{data.shape[0]} central atoms for {len(names)} species')
    sigma = np.zeros(data.shape[:2])
    error = np.zeros(data.shape[:2])
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            result = sigma_f(data[i, j])
            sigma[i, j], error[i, j] = result.sigma, result.sigma_err
    table = orm.ArrayData()
    table.set_array('sigma_f', sigma)
    table.set_array('sigma_f_err', error)
    table.set_array('radii', forces.get_array('radii'))
    table.set_array('centers', forces.get_array('centers'))
    table.set_array('n_frozen', forces.get_array('n_frozen'))
    table.base.attributes.set('species', names)
    table.base.attributes.set('units', {'sigma_f': 'eV/angstrom', 'radii': 'angstrom'})
    return table


@calcfunction
def join_snapshots(**datasets: LabelledDataset) -> LabelledDataset:
    """The snapshots of the GPUMD runs (inputs ``point_00``, ``point_01``, …) as one dataset, in that order."""
    structures = [atoms for key in sorted(datasets) for atoms in datasets[key].get_ase()]
    return LabelledDataset(structures, require_labels=False)


@calcfunction
def central_forces(labelled: LabelledDataset, structure: orm.StructureData, layout: orm.Dict) -> orm.ArrayData:
    """The surrogate's force on the central atom of every labelled GPUMD snapshot, in the layout of the engine's
    ``forces`` output (centres × radii × snapshots × 3, eV/Å; ``layout``: centers, radii, n_snapshots,
    snapshot_interval). A snapshot the label job left out is an error: σ_f would silently use fewer."""
    from aiida_sseff.analysis.locality import frozen_sphere_mask

    p = layout.get_dict()
    centers, radii, n = p['centers'], p['radii'], p['n_snapshots']
    forces = np.full((len(centers), len(radii), n, 3), np.nan)
    for atoms in labelled.get_ase():
        i = centers.index(int(atoms.info['center_index']))
        j = int(np.argmin(np.abs(np.array(radii) - float(atoms.info['r_f']))))
        forces[i, j, int(atoms.info['snapshot'])] = atoms.get_forces()[int(atoms.info['center_index'])]
    if not np.isfinite(forces).all():
        raise ValueError(f'{int(np.isnan(forces[..., 0]).sum())} snapshots have no label: the label job left them out')
    cell = structure.get_ase()
    node = orm.ArrayData()
    node.set_array('forces', forces)
    node.set_array('centers', np.array(centers, dtype=np.int64))
    node.set_array('radii', np.array(radii, dtype=float))
    node.set_array('n_frozen', np.array([[int(frozen_sphere_mask(cell, c, r).sum()) for r in radii] for c in centers]))
    node.set_array('snapshot_steps', np.arange(1, n + 1, dtype=np.int64) * int(p['snapshot_interval']))
    node.base.attributes.set('units', {'forces': 'eV/angstrom', 'radii': 'angstrom'})
    return node


@calcfunction
def compare_with_model_error(table: orm.ArrayData, cutoff: orm.Float, metrics: orm.Dict) -> orm.Dict:
    """The largest σ_f over species at r_f = 2·R_cut of a model, against that model's force RMSE.

    σ_f is the spread of the force *vector*; an RMSE over force components compares with σ_f/√3 (isotropic
    spread). ``locality_fraction`` = (σ_f/√3)/RMSE: the part of the RMSE that locality alone explains (a
    short-range model cannot get below it). The per-element RMSE (``force_per_element``) is used where the metrics
    have it, the overall ``force_mev_per_angstrom`` otherwise.
    """
    radii = table.get_array('radii')
    target = 2.0 * cutoff.value
    matches = np.flatnonzero(np.isclose(radii, target, atol=1e-6))
    if not matches.size:
        raise ValueError(f'no r_f = 2·R_cut = {target:g} Å among the radii {radii.tolist()}')
    column = int(matches[0])
    sigma = table.get_array('sigma_f')[:, column]
    error = table.get_array('sigma_f_err')[:, column]
    species = table.base.attributes.get('species')
    values = metrics.get_dict()
    per_element = values.get('force_per_element') or {}
    rows = {}
    for name, s, e in zip(species, sigma, error, strict=True):
        rmse = (per_element.get(name) or {}).get('rmse_mev_per_angstrom') or values.get('force_mev_per_angstrom')
        component = 1000.0 * s / np.sqrt(3.0)
        rows[name] = {'sigma_f_mev_per_angstrom': 1000.0 * float(s), 'sigma_f_err_mev_per_angstrom': 1000.0 * float(e),
                      'sigma_f_per_component_mev_per_angstrom': float(component),
                      'force_rmse_mev_per_angstrom': rmse,
                      'locality_fraction': float(component / rmse) if rmse else None}
    worst = species[int(np.argmax(sigma))]
    return orm.Dict(json_safe({'r_f_A': target, 'cutoff_A': cutoff.value, 'largest_species': worst,
                               'largest': rows[worst], 'per_species': rows}))


class LocalityWorkChain(ProtocolMixin, WorkChain):
    """σ_f versus r_f per species (the paper's Fig. 5), with a perturbation model for the MD and a surrogate.

    The CalcJob's inputs are exposed in ``locality`` (``code``, ``calculator``/``model`` = perturbation,
    ``surrogate_calculator``/``surrogate_model``); the work chain computes ``structure`` (replicated) and
    ``parameters`` (centres and radii added to the ``parameters`` input).

    GPUMD instead: ``gpumd`` (``GpumdLocalityCalculation``: ``code``, ``model`` = the NEP of the MD) runs each
    (centre, r_f) point with ``fix``; the snapshots are joined and labelled by the surrogate in one
    ``EngineLabelCalculation`` (``label``: ``code``, ``calculator``, ``model``), and the central-atom forces taken from
    those labels. Give exactly one of ``locality`` and ``gpumd`` (+ ``label``).
    """

    _protocol_file = 'locality.yaml'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(EngineLocalityCalculation, namespace='locality', exclude=('structure', 'parameters'),
                           namespace_options={'required': False, 'populate_defaults': False})
        spec.expose_inputs(GpumdLocalityCalculation, namespace='gpumd', exclude=('structure', 'parameters'),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'GPUMD runs the frozen-sphere MD (with `label`).'})
        spec.expose_inputs(EngineLabelCalculation, namespace='label', exclude=('structures',),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'The surrogate that labels the GPUMD snapshots.'})
        spec.input('structure', valid_type=orm.StructureData, help='The electrolyte cell (replicated as needed).')
        spec.input('species', valid_type=orm.List, help='Species whose central atom is tested, e.g. [Li, La, Zr, O].')
        spec.input('radii', valid_type=orm.List, required=False, help='Frozen radii r_f (Å).')
        spec.input('cutoffs', valid_type=orm.List, required=False,
                   help='Cutoffs R_cut (Å) instead of radii: r_f = 2·R_cut each (the x axis of the paper\'s Fig. 5).')
        spec.input('parameters', valid_type=orm.Dict,
                   help='Engine parameters without centers/radii: temperature_K, n_snapshots, snapshot_interval, '
                        'n_equilibration_steps, timestep_fs, margin_A, ... (engines.locality).')
        spec.input('compare_model', valid_type=(NepModel, MaceModel), required=False,
                   help='A model whose cutoff gets r_f = 2·R_cut (added to the radii) and whose force RMSE '
                        '(`compare_metrics`) is compared with σ_f there.')
        spec.input('compare_metrics', valid_type=orm.Dict, required=False,
                   help='Errors of `compare_model` (force_mev_per_angstrom, force_per_element), e.g. a training\'s '
                        'test_metrics.')
        spec.inputs.validator = cls._validate_inputs
        spec.outline(
            cls.setup,
            if_(cls.on_gpumd)(
                cls.run_gpumd,
                cls.run_label,
                cls.inspect_label,
            ).else_(
                cls.run_locality,
                cls.inspect_locality,
            ),
            cls.tabulate,
            if_(cls.should_compare)(cls.compare),
        )
        spec.output('structure', valid_type=orm.StructureData, required=False, help='The replicated cell, if it was.')
        spec.output('sigma_f', valid_type=orm.ArrayData,
                    help='sigma_f and sigma_f_err (species × radii, eV/Å), radii (Å), centers, n_frozen.')
        spec.output('forces', valid_type=orm.ArrayData, help='The central-atom forces of every snapshot.')
        spec.output('comparison', valid_type=orm.Dict, required=False,
                    help='The largest σ_f at r_f = 2·R_cut of compare_model against its force RMSE.')
        spec.exit_code(300, 'ERROR_LOCALITY_FAILED', message='The locality CalcJob<{pk}> failed: {message}')
        spec.exit_code(301, 'ERROR_GPUMD_FAILED', message='The GPUMD locality run(s) failed: {message}')
        spec.exit_code(302, 'ERROR_LABEL_FAILED', message='Labelling the GPUMD snapshots failed: {message}')
        spec.exit_code(401, 'ERROR_SPECIES_ABSENT', message='{message}')

    @staticmethod
    def _validate_inputs(inputs, _):
        engine, gpumd, label = (bool(inputs.get(name)) for name in ('locality', 'gpumd', 'label'))
        if engine == gpumd:
            return 'give exactly one of `locality` (the CPU engine) and `gpumd` (GPUMD, with `label`)'
        if gpumd != label:
            return '`gpumd` needs `label` (the surrogate that labels its snapshots), and `label` is for `gpumd` only'
        if ('radii' in inputs) == ('cutoffs' in inputs):
            return 'give exactly one of `radii` (r_f) and `cutoffs` (R_cut, r_f = 2·R_cut)'
        if 'parameters' in inputs:
            parameters = inputs['parameters'].get_dict()
            if {'centers', 'radii'} & set(parameters):
                return '`parameters` must not hold centers or radii: the work chain sets them'
            try:
                validated = validate_locality_parameters({**parameters, 'centers': [0], 'radii': [1.0]})
            except LocalityParameterError as exception:
                return f'parameters: {exception}'
            if validated['n_snapshots'] < MIN_SNAPSHOTS:  # min_snapshots may be lowered for the engine, not for σ_f
                return (f'parameters: n_snapshots = {validated["n_snapshots"]} is too few: σ_f and its blocked error '
                        f'need at least {MIN_SNAPSHOTS}')
        if ('compare_metrics' in inputs) and ('compare_model' not in inputs):
            return '`compare_metrics` needs `compare_model` (its cutoff)'
        if not inputs['species'].get_list():
            return '`species` is empty'

    @classmethod
    def get_builder_from_protocol(cls, code, structure, surrogate_model=None, model=None, protocol=None,
                                  overrides=None, options=None, surrogate_calculator=None, calculator=None,
                                  species=None):
        """A builder from ``protocols/locality.yaml``: ``model`` (or ``calculator``) is the perturbation model,
        ``surrogate_model`` (or ``surrogate_calculator``, e.g. ``{'kind': 'chgnet'}``) the surrogate (default: the
        perturbation model). ``species`` default: every species of the structure."""
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.structure = structure
        builder.species = orm.List(list(species or sorted(structure.get_symbols_set())))
        if inputs.get('cutoffs'):
            builder.cutoffs = orm.List([float(r) for r in inputs['cutoffs']])
        else:
            builder.radii = orm.List([float(r) for r in inputs['radii']])
        builder.parameters = orm.Dict(inputs['parameters'])
        kinds = {NepModel: 'nep', MaceModel: 'mace'}
        builder.locality.code = code
        builder.locality.calculator = orm.Dict(calculator or {'kind': kinds.get(type(model), 'chgnet')})
        if model is not None:
            builder.locality.model = model
        if surrogate_model is not None or surrogate_calculator is not None:
            builder.locality.surrogate_calculator = orm.Dict(
                surrogate_calculator or {'kind': kinds.get(type(surrogate_model), 'chgnet')})
            if surrogate_model is not None:
                builder.locality.surrogate_model = surrogate_model
        if options:
            builder.locality.metadata.options = options
        return builder

    def setup(self):
        if 'radii' in self.inputs:
            radii = [float(r) for r in self.inputs.radii.get_list()]
        else:
            radii = [2.0 * float(r) for r in self.inputs.cutoffs.get_list()]
        if 'compare_model' in self.inputs:
            cutoff = model_cutoff(self.inputs.compare_model)
            if cutoff and not np.isclose(radii, 2.0 * cutoff, atol=1e-6).any():
                radii.append(2.0 * cutoff)
                self.report(f'added r_f = 2·R_cut = {2.0 * cutoff:g} Å of the compared model to the radii')
        self.ctx.radii = sorted(radii)
        parameters = self.inputs.parameters.get_dict()
        margin = float(parameters.get('margin_A', 0.0))
        structure = self.inputs.structure
        width = 2.0 * (max(self.ctx.radii) + margin)
        reps = replication_for_width(structure.cell, width)
        if reps != (1, 1, 1):
            structure = make_supercell(structure, orm.Float(width))
            self.out('structure', structure)
            self.report(f'replicated the cell {reps} to {len(structure.sites)} atoms so that a sphere of r_f = '
                        f'{max(self.ctx.radii):g} Å fits (every width >= {width:g} Å)')
        self.ctx.structure = structure
        try:
            centers = central_atoms(structure.get_ase(), self.inputs.species.get_list())
        except ValueError as exception:
            return self.exit_codes.ERROR_SPECIES_ABSENT.format(message=str(exception))
        self.ctx.species = list(centers)
        self.ctx.centers = [centers[s] for s in self.ctx.species]

    def run_locality(self):
        inputs = AttributeDict(self.exposed_inputs(EngineLocalityCalculation, 'locality'))
        inputs.structure = self.ctx.structure
        inputs.parameters = orm.Dict({**self.inputs.parameters.get_dict(), 'centers': self.ctx.centers,
                                      'radii': self.ctx.radii})
        node = self.submit(EngineLocalityCalculation, **inputs)
        self.report(f'launched {node.process_label}<{node.pk}>: {len(self.ctx.centers)} central atoms × '
                    f'{len(self.ctx.radii)} radii')
        return ToContext(calculation=node)

    def inspect_locality(self):
        node = self.ctx.calculation
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_LOCALITY_FAILED.format(pk=node.pk, message=node.exit_message)
        self.ctx.forces = node.outputs.forces

    def on_gpumd(self):
        return bool(self.inputs.get('gpumd'))

    def _gpumd_parameters(self) -> dict:
        given = validate_locality_parameters({**self.inputs.parameters.get_dict(), 'centers': [0], 'radii': [1.0]})
        return {GPUMD_PARAMETERS[key]: given[key] for key in GPUMD_PARAMETERS}

    def run_gpumd(self):
        base = self._gpumd_parameters()
        futures = {}
        for i, center in enumerate(self.ctx.centers):
            for j, radius in enumerate(self.ctx.radii):
                inputs = AttributeDict(self.exposed_inputs(GpumdLocalityCalculation, 'gpumd'))
                inputs.structure = self.ctx.structure
                inputs.parameters = orm.Dict({**base, 'center': center, 'radius': radius})
                futures[f'point_{i:02d}_{j:02d}'] = self.submit(GpumdLocalityCalculation, **inputs)
        self.report(f'launched {len(futures)} GPUMD frozen-sphere runs')
        return ToContext(**futures)

    def run_label(self):
        nodes = {key: self.ctx[key] for key in sorted(self.ctx) if key.startswith('point_')}
        failed = [f'<{node.pk}> [{node.exit_status}] {node.exit_message}' for node in nodes.values()
                  if not node.is_finished_ok]
        if failed:
            return self.exit_codes.ERROR_GPUMD_FAILED.format(message='; '.join(failed))
        snapshots = join_snapshots(**{key: node.outputs.snapshots for key, node in nodes.items()})
        inputs = AttributeDict(self.exposed_inputs(EngineLabelCalculation, 'label'))
        inputs.structures = snapshots
        node = self.submit(EngineLabelCalculation, **inputs)
        self.report(f'labelling {snapshots.n_structures} GPUMD snapshots with {node.process_label}<{node.pk}>')
        return ToContext(labelling=node)

    def inspect_label(self):
        node = self.ctx.labelling
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_LABEL_FAILED.format(message=f'<{node.pk}> {node.exit_message}')
        layout = {'centers': self.ctx.centers, 'radii': self.ctx.radii,
                  **{key: self._gpumd_parameters()[key] for key in ('n_snapshots', 'snapshot_interval')}}
        self.ctx.forces = central_forces(node.outputs.dataset, self.ctx.structure, orm.Dict(layout))

    def tabulate(self):
        self.out('forces', self.ctx.forces)
        table = locality_table(self.ctx.forces, orm.List(self.ctx.species))
        self.out('sigma_f', table)
        self.ctx.table = table
        sigma = table.get_array('sigma_f')
        for name, row in zip(self.ctx.species, sigma, strict=True):
            self.report(f'σ_f of {name}: ' + ', '.join(f'{1000 * s:.1f}' for s in row) + ' meV/Å at r_f = '
                        + ', '.join(f'{r:g}' for r in self.ctx.radii) + ' Å')

    def should_compare(self):
        return 'compare_model' in self.inputs and 'compare_metrics' in self.inputs

    def compare(self):
        cutoff = model_cutoff(self.inputs.compare_model)
        comparison = compare_with_model_error(self.ctx.table, orm.Float(cutoff), self.inputs.compare_metrics)
        self.out('comparison', comparison)
        largest = comparison['largest']
        self.report(f"largest σ_f at r_f = {comparison['r_f_A']:g} Å: {comparison['largest_species']} "
                    f"{largest['sigma_f_mev_per_angstrom']:.1f} meV/Å against a force RMSE of "
                    f"{largest['force_rmse_mev_per_angstrom']} meV/Å")
