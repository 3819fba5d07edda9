"""``sseff.study.finite_size`` (:class:`FiniteSizeStudyWorkChain`): are D(T) and Ea converged with the cell size and
the run length? (Beyond the perspective paper, which names finite-size effects as why LGPS gives 0.18 eV in a
200-atom cell and 0.23 eV in a larger one.)

One model, one structure, a series of supercells (replications, or minimum perpendicular widths) and of production
run lengths: one ``sseff.diffusion`` per (cell, run length), every run with the same temperatures, MD seeds and
analysis. The run lengths are separate runs, not prefixes of the longest: the fit window of ``sseff.diffusion`` is a
fraction of the run length and its error model counts the time origins of the whole run, so a prefix would need the
analysis re-done outside that WorkChain. The cells are taken as given (the protocol's ``min_cell_width_factor`` is
not applied: a cell thinner than 2 × the cutoff is exactly what this study tests). One calcfunction tabulates per
cell (atoms, mobile ions) and run length D(T) ± σ and Ea ± σ, and the verdict
(:mod:`aiida_sseff.analysis.finite_size`: the smallest cell and the shortest run from which every larger one agrees
within ``agreement_sigmas`` combined σ). Protocols: ``protocols/finite_size.yaml``.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction

from aiida_sseff.analysis.geometry import replication_for_width
from aiida_sseff.data.model import MaceModel, NepModel
from aiida_sseff.protocols.utils import ProtocolMixin, recursive_merge
from aiida_sseff.utils import json_safe
from aiida_sseff.workflows.architectures import replicate_structure
from aiida_sseff.workflows.diffusion import DiffusionWorkChain
from aiida_sseff.workflows.replicas import validate_diffusion_stage
from aiida_sseff.workflows.stages import declare_stage

__all__ = ['FiniteSizeStudyWorkChain', 'cell_label', 'run_length_label', 'tabulate_finite_size']


def cell_label(replication) -> str:
    return 'cell_' + 'x'.join(str(int(n)) for n in replication)


def run_length_label(run_length_ps: float) -> str:
    return f'run_{float(run_length_ps):g}ps'.replace('.', 'p')


@calcfunction
def tabulate_finite_size(layout: orm.List, agreement_sigmas: orm.Float, **transport) -> orm.Dict:
    """The finite-size table and verdict (:func:`aiida_sseff.analysis.finite_size.finite_size_table`).

    ``layout``: one entry per (cell, run length) with ``key``, ``cell``, ``replication``, ``n_atoms``, ``n_mobile``,
    ``run_length_ps`` and ``failure`` (None, or why its diffusion gave no fit); ``transport__<key>``: the
    ``sseff.diffusion`` results of the entries that gave one."""
    from aiida_sseff.analysis.finite_size import finite_size_table, format_finite_size_table

    entries = []
    for entry in layout.get_list():
        node = transport.get(f'transport__{entry["key"]}')
        entries.append({**entry, 'transport': node.get_dict() if node is not None else None})
    table = finite_size_table(entries, agreement_sigmas.value)
    table['markdown'] = format_finite_size_table(table)
    return orm.Dict(json_safe(table))


def _validate_finite_size(inputs, _):  # noqa: PLR0911 - one sentence per bad input
    given = [name for name in ('replications', 'min_cell_widths') if name in inputs]
    if len(given) != 1:
        return 'give exactly one of `replications` ([[n1, n2, n3], ...]) or `min_cell_widths` ([Å, ...])'
    if 'replications' in inputs:
        replications = inputs['replications'].get_list()
        for replication in replications:
            if not (isinstance(replication, list | tuple) and len(replication) == 3
                    and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in replication)):
                return f'replications must be a list of [n1, n2, n3] (positive integers), got {replication}'
        cells = [tuple(r) for r in replications]
    else:
        widths = inputs['min_cell_widths'].get_list()
        if not all(isinstance(w, int | float) and w > 0 for w in widths):
            return f'min_cell_widths must be positive lengths (Å), got {widths}'
        cells = [replication_for_width(inputs['structure'].cell, float(w)) for w in widths]
    if len(set(cells)) < 2:
        return f'the study needs at least 2 different cells, got {sorted(set(cells))}'
    lengths = inputs['run_lengths_ps'].get_list()
    if not lengths or not all(isinstance(v, int | float) and v > 0 for v in lengths) or len(set(lengths)) != len(lengths):
        return f'run_lengths_ps must be distinct positive lengths (ps), got {lengths}'
    if not inputs['agreement_sigmas'].value > 0:
        return f'agreement_sigmas must be > 0, got {inputs["agreement_sigmas"].value}'
    if 'diffusion' not in inputs or 'code' not in inputs['diffusion']:
        return 'diffusion.code is required: the MD code of every run'
    # the structure is this study's own input: give the stage check one so that it looks at the MD settings only
    stage = {**inputs['diffusion'], 'structure': inputs['structure']}
    for length in lengths:
        overrides = stage['overrides'].get_dict() if 'overrides' in stage else {}
        checked = {**stage, 'overrides': orm.Dict(recursive_merge(overrides, {'md': {'production_ps': float(length)}}))}
        message = validate_diffusion_stage({'diffusion': checked})
        if message:
            return f'run length {length:g} ps: {message}'
    model = inputs['model']
    missing = sorted(set(inputs['structure'].get_symbols_set()) - set(model.elements or []))
    if model.elements and missing:
        return f'the model does not know the element(s) {", ".join(missing)} (it knows {", ".join(model.elements)})'
    if inputs['diffusion']['code'].default_calc_job_plugin == 'sseff.gpumd' and not isinstance(model, NepModel):
        return 'GPUMD runs NEP models only: use the CPU engine code for a MACE model'
    return None


class FiniteSizeStudyWorkChain(ProtocolMixin, WorkChain):
    """D(T) and Ea of one model for a series of supercells and run lengths (``sseff.diffusion`` each) → whether they
    have converged with size and time, and the smallest converged cell and shortest converged run."""

    _protocol_file = 'finite_size.yaml'
    _protocol_open_keys = ('diffusion',)

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('model', valid_type=(NepModel, MaceModel), help='The force field whose transport is measured.')
        spec.input('structure', valid_type=orm.StructureData, help='The unit cell the supercells are made of.')
        spec.input('replications', valid_type=orm.List, required=False,
                   help='[[n1, n2, n3], ...]: the supercells (or give `min_cell_widths`).')
        spec.input('min_cell_widths', valid_type=orm.List, required=False,
                   help='[Å, ...]: each supercell the smallest replication with every perpendicular width ≥ this.')
        spec.input('run_lengths_ps', valid_type=orm.List, help='Production run lengths (ps), one run each per cell.')
        spec.input('agreement_sigmas', valid_type=orm.Float, default=lambda: orm.Float(2.0),
                   help='Two runs agree when Ea (and log10 D per T) differ by at most this many combined σ.')
        declare_stage(spec, 'diffusion', 'The Li transport of every (cell, run length) (sseff.diffusion).',
                      'The CPU engine or GPUMD (NEP only).')
        spec.inputs.validator = _validate_finite_size
        spec.outline(cls.make_cells, cls.run_diffusion, cls.inspect_diffusion, cls.tabulate)
        spec.output_namespace('structures', valid_type=orm.StructureData, dynamic=True, help='Per cell label.')
        spec.output_namespace('transport', valid_type=orm.Dict, dynamic=True,
                              help='Per cell label, per run-length label: sseff.diffusion results.')
        spec.output('table', valid_type=orm.Dict, help='Per cell and run length: D(T), Ea; the convergence verdict.')
        spec.exit_code(401, 'ERROR_DIFFUSION_FAILED', message='No (cell, run length) gave an Arrhenius fit: {message}')

    @classmethod
    def get_builder_from_protocol(cls, diffusion_code, model, structure, protocol=None, overrides=None):
        """A ready builder from ``protocols/finite_size.yaml``: its ``replications`` (or ``min_cell_widths``) and
        ``run_lengths_ps``, and ``sseff.diffusion``'s protocol of the same name with the study's ``diffusion``
        overrides; ``overrides``: ``{'replications': ..., 'run_lengths_ps': ..., 'agreement_sigmas': ...,
        'diffusion': {...}}``."""
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.model = model
        builder.structure = structure
        if inputs.get('min_cell_widths'):
            builder.min_cell_widths = orm.List([float(w) for w in inputs['min_cell_widths']])
        else:
            builder.replications = orm.List([[int(n) for n in r] for r in inputs['replications']])
        builder.run_lengths_ps = orm.List([float(v) for v in inputs['run_lengths_ps']])
        builder.agreement_sigmas = orm.Float(float(inputs['agreement_sigmas']))
        builder.diffusion.code = diffusion_code
        builder.diffusion.protocol = orm.Str(protocol or cls.get_default_protocol())
        if inputs['diffusion']:
            builder.diffusion.overrides = orm.Dict(inputs['diffusion'])
        return builder

    def make_cells(self):
        structure = self.inputs.structure
        if 'replications' in self.inputs:
            replications = [tuple(int(n) for n in r) for r in self.inputs.replications.get_list()]
        else:
            replications = [replication_for_width(structure.cell, float(w))
                            for w in self.inputs.min_cell_widths.get_list()]
        self.ctx.cells = {}
        for replication in dict.fromkeys(replications):  # the same cell twice is one cell
            label = cell_label(replication)
            cell = structure if replication == (1, 1, 1) else replicate_structure(
                structure, orm.List(list(replication)), metadata={'call_link_label': f'replicate_{label}'})
            self.ctx.cells[label] = (list(replication), cell)
            self.out(f'structures.{label}', cell)
        self.report('cells: ' + ', '.join(f'{label} ({len(cell.sites)} atoms)'
                                          for label, (_, cell) in self.ctx.cells.items()))

    def run_diffusion(self):
        stage = self.inputs.diffusion
        protocol = stage.protocol.value if 'protocol' in stage else None
        base = stage.overrides.get_dict() if 'overrides' in stage else {}
        futures = {}
        for label, (_, cell) in self.ctx.cells.items():
            for length in self.inputs.run_lengths_ps.get_list():
                key = f'{label}__{run_length_label(length)}'
                overrides = recursive_merge(base, {'md': {'production_ps': float(length)}})
                builder = DiffusionWorkChain.get_builder_from_protocol(stage.code, cell, model=self.inputs.model,
                                                                       protocol=protocol, overrides=overrides)
                # the cell as given: replicating a thin cell to 2 x the cutoff would undo what the study measures
                builder.pop('min_cell_width_factor', None)
                builder.metadata.call_link_label = f'diffusion_{label}_{run_length_label(length)}'
                futures[key] = self.submit(builder)
                self.report(f'submitted the diffusion of {label} for {length:g} ps <{futures[key].pk}>')
        return ToContext(**futures)

    def inspect_diffusion(self):
        """A run without an Arrhenius fit (too few hops in a short run) keeps its row with the reason: it is a
        result of the study; the study fails only when no run gave a fit."""
        self.ctx.failures = {}
        for label in self.ctx.cells:
            good = {}
            for length in self.inputs.run_lengths_ps.get_list():
                node = self.ctx[f'{label}__{run_length_label(length)}']
                if node.is_finished_ok:
                    good[run_length_label(length)] = node.outputs.results
                else:
                    self.ctx.failures[f'{label}__{run_length_label(length)}'] = \
                        f'[{node.exit_status}] {node.exit_message}'
                    self.report(f'the diffusion of {label} for {length:g} ps <{node.pk}> failed: '
                                f'[{node.exit_status}] {node.exit_message}')
            if good:
                self.out(f'transport.{label}', good)
        if len(self.ctx.failures) == len(self.ctx.cells) * len(self.inputs.run_lengths_ps.get_list()):
            return self.exit_codes.ERROR_DIFFUSION_FAILED.format(
                message='; '.join(f'{key}: {text}' for key, text in self.ctx.failures.items()))
        return None

    def tabulate(self):
        stage = self.inputs.diffusion
        settings = DiffusionWorkChain.get_protocol_inputs(stage.protocol.value if 'protocol' in stage else None,
                                                          stage.overrides.get_dict() if 'overrides' in stage else None)
        species = settings['mobile_species']
        layout, nodes = [], {}
        for label, (replication, cell) in self.ctx.cells.items():
            symbols = cell.get_ase().get_chemical_symbols()
            for length in self.inputs.run_lengths_ps.get_list():
                key = f'{label}__{run_length_label(length)}'
                layout.append({'key': key, 'cell': label, 'replication': replication, 'n_atoms': len(symbols),
                               'n_mobile': symbols.count(species), 'run_length_ps': float(length),
                               'failure': self.ctx.failures.get(key)})
                if key not in self.ctx.failures:
                    nodes[f'transport__{key}'] = self.ctx[key].outputs.results
        table = tabulate_finite_size(orm.List(layout), self.inputs.agreement_sigmas, **nodes,
                                     metadata={'call_link_label': 'tabulate'})
        self.out('table', table)
        self.report('finite-size study:\n' + table['markdown'])
