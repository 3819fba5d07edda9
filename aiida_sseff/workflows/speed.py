"""``sseff.study.speed`` (:class:`SpeedStudyWorkChain`): MD speed and peak memory versus the number of atoms, per
model and engine (the paper's Fig. 4).

The user's structure is replicated to the sizes asked for (``replications``, or ``target_n_atoms`` turned into the
nearest replications by :func:`aiida_sseff.analysis.speed.replication_for_atoms`); every model runs one short MD
on every size with the CPU engine (``sseff.engine.md.base``) and, for NEP models when a GPUMD code is given, with
GPUMD (``sseff.gpumd.base``). The runs go one at a time, so that no two measurements share the machine. One
calcfunction (:func:`tabulate_speed`) turns the runs into the ``table``: per model, engine and size the production
speed (atom-steps/s), the peak memory (MB, RSS of the engine process; GPUMD reports none) and the wall time of 10⁶
steps extrapolated from that speed, and per model and engine the largest cell that fits in ``memory_limit_mb`` by a
straight-line fit of memory against atoms. A failed run (out of memory, unstable) is a row with its reason; the
study goes on. Protocols: ``protocols/speed.yaml``.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction, while_

from aiida_sseff.data.model import MaceModel, NepModel
from aiida_sseff.protocols.utils import ProtocolMixin
from aiida_sseff.utils import json_safe
from aiida_sseff.workflows.architectures import DEFAULT_SPEED_PARAMETERS, _speed_parameters, replicate_structure
from aiida_sseff.workflows.gpumd import GpumdBaseWorkChain
from aiida_sseff.workflows.md import EngineMdBaseWorkChain

__all__ = ['ENGINES', 'SpeedStudyWorkChain', 'gpumd_speed_parameters', 'tabulate_speed']

#: the engines a model can be measured on: the CPU engine (every model) and GPUMD (NEP models, with a GPUMD code)
ENGINES = ('engine', 'gpumd')
_MODEL_KINDS = {NepModel: 'nep', MaceModel: 'mace'}


def gpumd_speed_parameters(md_parameters: dict, n_steps: int) -> dict:
    """The ``sseff.gpumd`` parameters of a speed run matching the engine's (:func:`_speed_parameters` output):
    ``n_steps`` of production at the same temperature and time step, no equilibration, no MSD, one thermo row."""
    return {'temperature': float(md_parameters.get('temperature_K', DEFAULT_SPEED_PARAMETERS['temperature_K'])),
            'time_step_fs': float(md_parameters.get('timestep_fs', DEFAULT_SPEED_PARAMETERS['timestep_fs'])),
            'production_steps': int(n_steps), 'equilibration_steps': 0, 'ensemble': 'nvt_bdp',
            'compute_msd': None, 'dump_thermo': int(n_steps)}


def _run_from_results(engine: str, results: dict) -> dict:
    """Speed, memory and threads of one finished run from its results (engine) or performance (GPUMD) node."""
    if engine == 'gpumd':
        speeds = results.get('speed_atom_step_per_s') or []
        # the last run of run.in is the production run (the study writes no equilibration)
        return {'atom_steps_per_s': speeds[-1] if speeds else None, 'peak_memory_mb': None,
                'n_steps': None, 'threads': None}
    return {'atom_steps_per_s': results.get('production_speed_atom_step_per_s'),
            'peak_memory_mb': results.get('peak_memory_mb'), 'n_steps': results.get('n_steps'),
            'threads': results.get('threads')}


@calcfunction
def tabulate_speed(n_extrapolated_steps: orm.Int, **nodes) -> orm.Dict:
    """The speed study's table (:func:`aiida_sseff.analysis.speed.speed_table`).

    Inputs: ``memory_limit_mb`` (Float, optional), and per run ``run_<NN>`` (Dict: ``model, engine, n_atoms,
    replication``, ``reason`` for a failed run) with, for a finished run, ``results_<NN>`` (the engine MD's
    ``results`` or GPUMD's ``performance``).
    """
    from aiida_sseff.analysis.speed import speed_table

    runs = []
    for key in sorted(k for k in nodes if k.startswith('run_')):
        run = nodes[key].get_dict()
        results = nodes.get(f'results_{key[len("run_"):]}')
        if results is not None:
            run.update(_run_from_results(run['engine'], results.get_dict()))
        runs.append(run)
    limit = nodes.get('memory_limit_mb')
    return orm.Dict(json_safe(speed_table(runs, int(n_extrapolated_steps.value),
                                          None if limit is None else float(limit.value))))


def _computer_memory_mb(code) -> float | None:
    """The compute node's memory (the computer's ``default_memory_per_machine``, kB) in MB; None where unknown."""
    computer = getattr(code, 'computer', None)
    memory_kb = computer.get_default_memory_per_machine() if computer is not None else None
    return float(memory_kb) / 1024 if memory_kb else None


def _validate_inputs(inputs, _):  # noqa: PLR0911
    from aiida_sseff.engines.md import MdParameterError, validate_md_parameters

    if ('replications' in inputs) == ('target_n_atoms' in inputs):
        return 'give the sizes either as `replications` ([[a, b, c], ...]) or as `target_n_atoms`, exactly one'
    if 'replications' in inputs:
        replications = inputs['replications'].get_list()
        if not replications or any(len(r) != 3 or any(int(n) != n or n < 1 for n in r) for r in replications):
            return f'`replications` must be a non-empty list of three positive integers each, got {replications}'
    else:
        targets = inputs['target_n_atoms'].get_list()
        if not targets or any(int(n) != n or n < 1 for n in targets):
            return f'`target_n_atoms` must be a non-empty list of positive integers, got {targets}'
    if not inputs.get('models'):
        return 'give at least one model in `models` (label → NepModel or MaceModel)'
    structure = inputs.get('structure')
    for label, model in inputs['models'].items():
        if structure is not None and model.elements:
            missing = sorted(set(structure.get_symbols_set()) - set(model.elements))
            if missing:
                return f'model `{label}` does not know the element(s) {", ".join(missing)} of the structure'
    if inputs['n_steps'].value < 1:
        return f'`n_steps` must be at least 1, got {inputs["n_steps"].value}'
    try:
        validate_md_parameters(_speed_parameters({'md': {'parameters': inputs.get('parameters')},
                                                  'n_steps': inputs['n_steps']}))
    except MdParameterError as exception:
        return f'`parameters`: {exception}'
    limit = inputs.get('memory_limit_mb')
    if limit is not None and not limit.value > 0:
        return f'`memory_limit_mb` must be positive, got {limit.value}'
    code = inputs.get('engine', {}).get('md', {}).get('code')
    if limit is None and code is not None and _computer_memory_mb(code) is None:
        return (f'give `memory_limit_mb`: the memory of computer `{code.computer.label}` is not known (set it with '
                '`verdi computer configure` default_memory_per_machine, or give the limit)')
    return None


class SpeedStudyWorkChain(ProtocolMixin, WorkChain):
    """MD speed (atom-steps/s) and peak memory of each model on each engine versus the number of atoms."""

    _protocol_file = 'speed.yaml'
    _protocol_open_keys = ('parameters',)

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The cell to replicate (periodic).')
        spec.input_namespace('models', valid_type=(NepModel, MaceModel), dynamic=True,
                             help='The models to measure: label → NepModel or MaceModel.')
        spec.input('replications', valid_type=orm.List, required=False,
                   help='The sizes as replications of `structure`: [[a, b, c], ...].')
        spec.input('target_n_atoms', valid_type=orm.List, required=False,
                   help='The sizes as atom counts: each becomes the replication nearest to it (most nearly cubic '
                        'among equally near ones).')
        spec.input('n_steps', valid_type=orm.Int, default=lambda: orm.Int(200),
                   help='Production MD steps of each run (no equilibration: the speed is that of the model).')
        spec.input('parameters', valid_type=orm.Dict, required=False,
                   help='Engine MD parameters (temperature_K, timestep_fs, ensemble, ...); default 300 K, 1 fs, '
                        'Bussi NVT. GPUMD runs take the same temperature and time step.')
        spec.input('n_extrapolated_steps', valid_type=orm.Int, default=lambda: orm.Int(1_000_000),
                   help='The run length the wall time is extrapolated to.')
        spec.input('memory_limit_mb', valid_type=orm.Float, required=False,
                   help="Memory (MB) the largest cell must fit in; default: the engine computer's "
                        '`default_memory_per_machine`, required where that is not set.')
        spec.input('device', valid_type=orm.Str, default=lambda: orm.Str('cpu'),
                   help="Device of MACE models on the engine: 'cpu' or 'cuda'.")
        spec.expose_inputs(EngineMdBaseWorkChain, namespace='engine',
                           exclude=('md.structure', 'md.parameters', 'md.model', 'md.calculator', 'md.checkpoint'),
                           namespace_options={'help': 'The CPU engine (aiida-sseff-engine md) through '
                                                      'EngineMdBaseWorkChain: code, options.'})
        spec.expose_inputs(GpumdBaseWorkChain, namespace='gpumd',
                           exclude=('gpumd.structure', 'gpumd.parameters', 'gpumd.model', 'gpumd.mobile_species',
                                    'gpumd.restart'),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'GPUMD (gpumd) through GpumdBaseWorkChain, for the NEP models: '
                                                      'code, options. Without it only the engine runs.'})
        # the CalcJobs' own validators need the excluded structure/model (set in the steps)
        spec.inputs['engine']['md'].validator = None
        spec.inputs['gpumd']['gpumd'].validator = None
        spec.inputs['gpumd']['gpumd']['metadata']['options']['resources'].required = False
        spec.inputs.validator = _validate_inputs

        spec.outline(
            cls.setup,
            while_(cls.should_run)(cls.run_next),
            cls.tabulate,
        )
        spec.output('table', valid_type=orm.Dict,
                    help='rows (model, engine, n_atoms, replication, status, reason, atom_steps_per_s, '
                         'peak_memory_mb, wall_time_extrapolated_s, n_steps, threads) and largest_cell (per model '
                         'and engine: max_n_atoms, the linear fit, limit_mb, reason).')
        spec.exit_code(401, 'ERROR_ALL_RUNS_FAILED',
                       message='No speed run finished ({message}); the table lists every run with its reason.')

    @classmethod
    def get_builder_from_protocol(cls, engine_code, structure, models: dict, gpumd_code=None, protocol=None,
                                  overrides=None, options=None, memory_limit_mb=None):
        """A builder from ``protocols/speed.yaml``: ``models`` (label → NepModel/MaceModel) on ``engine_code`` and,
        for the NEP models, on ``gpumd_code`` when given; ``options`` go to the engine's metadata.options."""
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.structure = structure
        builder.models = dict(models)
        if inputs.get('target_n_atoms'):
            builder.target_n_atoms = orm.List([int(n) for n in inputs['target_n_atoms']])
        else:
            builder.replications = orm.List([[int(n) for n in r] for r in inputs['replications']])
        builder.n_steps = orm.Int(inputs['n_steps'])
        builder.n_extrapolated_steps = orm.Int(inputs['n_extrapolated_steps'])
        builder.parameters = orm.Dict(inputs['parameters'])
        builder.device = orm.Str(inputs['device'])
        builder.engine.md.code = engine_code
        builder.engine.md.metadata.options = {**inputs.get('options', {}), **(options or {})}
        if gpumd_code is not None:
            builder.gpumd.gpumd.code = gpumd_code
        if memory_limit_mb is not None:
            builder.memory_limit_mb = orm.Float(memory_limit_mb)
        return builder

    # ------------------------------------------------------------------------------------------------- steps

    def setup(self):
        from aiida_sseff.analysis.speed import replication_for_atoms

        structure = self.inputs.structure
        if 'replications' in self.inputs:
            replications = [[int(n) for n in r] for r in self.inputs.replications.get_list()]
        else:
            replications = [replication_for_atoms(structure.cell, len(structure.sites), int(n))
                            for n in self.inputs.target_n_atoms.get_list()]
        replications = list(dict.fromkeys(tuple(r) for r in replications))  # the same cell once
        self.ctx.structures = []
        for index, replication in enumerate(replications):
            cell = structure if replication == (1, 1, 1) else replicate_structure(
                structure, orm.List(list(replication)), metadata={'call_link_label': f'replicate_{index:02d}'})
            self.ctx.structures.append((list(replication), cell))
        self.ctx.pending = []
        for label in sorted(self.inputs.models):
            engines = ['engine']
            if 'gpumd' in self.inputs and isinstance(self.inputs.models[label], NepModel):
                engines.append('gpumd')
            self.ctx.pending += [(label, engine, index) for engine in engines
                                 for index in range(len(self.ctx.structures))]
        self.ctx.runs = []  # (link, label, engine, index) in run order
        self.ctx.md_parameters = _speed_parameters({'md': {'parameters': self.inputs.get('parameters')},
                                                    'n_steps': self.inputs.n_steps})
        sizes = ', '.join(f'{len(s.sites)}' for _, s in self.ctx.structures)
        self.report(f'{len(self.ctx.pending)} speed runs: sizes {sizes} atoms')

    def should_run(self):
        return bool(self.ctx.pending)

    def _engine_inputs(self, label: str, structure) -> AttributeDict:
        inputs = AttributeDict(self.exposed_inputs(EngineMdBaseWorkChain, 'engine'))
        md = AttributeDict(inputs.md)
        model = self.inputs.models[label]
        calculator = {'kind': _MODEL_KINDS[type(model)]}
        if calculator['kind'] == 'mace':
            calculator['device'] = self.inputs.device.value
        md.structure, md.model, md.calculator = structure, model, orm.Dict(calculator)
        md.parameters = orm.Dict(self.ctx.md_parameters)
        inputs.md = md
        return inputs

    def _gpumd_inputs(self, label: str, structure) -> AttributeDict:
        inputs = AttributeDict(self.exposed_inputs(GpumdBaseWorkChain, 'gpumd'))
        job = AttributeDict(inputs.gpumd)
        job.structure, job.model = structure, self.inputs.models[label]
        job.parameters = orm.Dict(gpumd_speed_parameters(self.ctx.md_parameters, self.inputs.n_steps.value))
        symbols = structure.get_symbols_set()
        # GPUMD groups the mobile species; a speed run measures no MSD, so any species present will do
        job.mobile_species = orm.Str('Li' if 'Li' in symbols else sorted(symbols)[0])
        inputs.gpumd = job
        return inputs

    def run_next(self):
        """One run at a time: two MD runs on the same machine would slow each other down."""
        label, engine, index = self.ctx.pending.pop(0)
        structure = self.ctx.structures[index][1]
        if engine == 'engine':
            process, inputs = EngineMdBaseWorkChain, self._engine_inputs(label, structure)
        else:
            process, inputs = GpumdBaseWorkChain, self._gpumd_inputs(label, structure)
        link = f'speed_{label}_{engine}_{index:02d}'
        inputs.metadata = {'call_link_label': link, 'label': link}
        node = self.submit(process, **inputs)
        self.ctx.runs.append((link, label, engine, index))
        self.report(f'submitted {link} ({len(structure.sites)} atoms) <{node.pk}>')
        return ToContext(**{link: node})

    def tabulate(self):
        nodes, failures = {}, []
        for number, (link, label, engine, index) in enumerate(self.ctx.runs):
            replication, structure = self.ctx.structures[index]
            node = self.ctx[link]
            run = {'model': label, 'engine': engine, 'n_atoms': len(structure.sites), 'replication': replication}
            output = 'results' if engine == 'engine' else 'performance'
            if node.is_finished_ok and output in node.outputs:
                nodes[f'results_{number:02d}'] = node.outputs[output]
            else:
                run['reason'] = f'[{node.exit_status}] {node.exit_message or "no message"}'
                failures.append(f'{link}: {run["reason"]}')
                self.report(f'{link} <{node.pk}> failed: {run["reason"]}')
            nodes[f'run_{number:02d}'] = orm.Dict(run)
        limit = self.inputs.get('memory_limit_mb')
        if limit is None:
            memory = _computer_memory_mb(self.inputs.engine.md.code)
            limit = orm.Float(memory) if memory is not None else None
        if limit is not None:
            nodes['memory_limit_mb'] = limit
        table = tabulate_speed(self.inputs.n_extrapolated_steps, **nodes, metadata={'call_link_label': 'tabulate'})
        self.out('table', table)
        for entry in table['largest_cell']:
            if entry['max_n_atoms'] is not None:
                self.report(f'{entry["model"]} on {entry["engine"]}: the largest cell in {entry["limit_mb"]:g} MB '
                            f'holds about {entry["max_n_atoms"]} atoms (linear fit of the peak memory)')
        if len(failures) == len(self.ctx.runs):
            return self.exit_codes.ERROR_ALL_RUNS_FAILED.format(message='; '.join(failures))
        return None
