"""``aiida-sseff launch ...`` and ``aiida-sseff demo``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from aiida_sseff.cli.root import cmd_launch, cmd_root, launch_options

SHIPPED_STRUCTURES = {'Li10GeP2S12': 'Li10GeP2S12.cif'}


def load_structure_file(path_or_name: str):
    """A StructureData from a file ASE/pymatgen reads (CIF, POSCAR, extxyz) or the name of a shipped structure."""
    from importlib import resources

    from aiida import orm
    from ase.io import read

    if path_or_name in SHIPPED_STRUCTURES:
        path = resources.files('aiida_sseff.structures').joinpath(SHIPPED_STRUCTURES[path_or_name])
    else:
        path = Path(path_or_name)
        if not path.is_file():
            raise click.BadParameter(f'no file `{path}` (and not a shipped structure: {", ".join(SHIPPED_STRUCTURES)})')
    try:
        atoms = read(str(path))
    except Exception as exception:  # ASE raises many exception types; the user needs the reason
        raise click.BadParameter(f'cannot read a structure from `{path}`: {exception}') from exception
    if not atoms.pbc.all():
        raise click.BadParameter(f'`{path}` is not a periodic crystal')
    return orm.StructureData(ase=atoms)


def ensure_daemon(n_workers: int = 1, broker_timeout: float = 120.0):
    from aiida.engine.daemon.client import get_daemon_client
    from aiida.manage import get_manager

    client = get_daemon_client()
    if not client.is_daemon_running:
        click.echo(f'Starting the daemon ({n_workers} worker, ZeroMQ broker)')
        started = time.time()
        client.start_daemon(number_workers=n_workers)
        _wait_for_task_subscribers(n_workers, started, broker_timeout)
    # on a loaded machine the embedded broker can take longer than aiida-core's 10 s to publish its endpoint (make
    # demo failed so with a load average of 20 on 2 cores): keep asking, each try waits those 10 s
    deadline = time.monotonic() + broker_timeout
    while True:
        try:
            get_manager().get_communicator()
            break
        except ConnectionError as exception:
            if time.monotonic() > deadline:
                raise click.ClickException(f'the broker did not start within {broker_timeout:.0f} s: {exception}; '
                                           'see verdi daemon status') from exception
    return client


def _wait_for_task_subscribers(n_workers: int, started: float, timeout: float) -> None:
    """After a daemon start, wait until aiida-core's ZeroMQ broker reports (in a status written after ``started``)
    that the daemon's workers listen for tasks, and connect this process only then. Why: a submission made while the
    previous broker's socket file was still there went to that dead endpoint and was lost — the pipeline stayed
    `Created` with the broker showing no pending task (make demo, pipeline <1781>). RabbitMQ keeps tasks in its
    queue, so this is only done for a broker that reports its status (``probe_service_status``)."""
    from aiida.manage import get_manager

    manager = get_manager()
    broker = manager.get_broker()
    if not hasattr(broker, 'probe_service_status'):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = broker.probe_service_status()
        if (status.get('connected') and status.get('running') and status.get('timestamp', 0) > started
                and status.get('task_subscribers', 0) >= n_workers):
            manager.reset_broker()  # a communicator opened before the start may point at the old endpoint
            return
        time.sleep(0.5)
    raise click.ClickException(f'the daemon\'s {n_workers} worker(s) did not connect to the broker within '
                               f'{timeout:.0f} s; see verdi daemon status')


def _progress_lines(node, seen: dict, elapsed: float) -> list[str]:
    """One line per work chain or CalcJob below ``node`` that started or ended since the last call (``seen``:
    pk -> last state), each with its stage (the top-level step it belongs to), process label, pk and link label."""
    from aiida.common.links import LinkType

    lines = []
    for stage in node.called:
        stage_name = stage.base.links.get_incoming(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).first()
        stage_name = stage_name.link_label if stage_name else stage.process_label
        for child in [stage, *stage.called_descendants]:
            if not isinstance(child, orm_process_types()):
                continue
            state = 'finished' if child.is_terminated else 'running'
            if seen.get(child.pk) == state:
                continue
            if child.pk not in seen or state == 'finished':
                link = child.base.links.get_incoming(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).first()
                link = f' ({link.link_label})' if link and child is not stage else ''
                if state == 'finished':
                    outcome = f'done [{child.exit_status}]' + (f' {child.exit_message}' if child.exit_message else '')
                else:
                    outcome = 'started'
                lines.append(f'[{elapsed:6.0f} s] {stage_name:<13} {outcome:<9} {child.process_label}<{child.pk}>'
                             f'{link}')
            seen[child.pk] = state
    return lines


def orm_process_types() -> tuple:
    """The processes the progress lines follow: work chains and CalcJobs (not the many calcfunctions)."""
    from aiida import orm

    return (orm.WorkChainNode, orm.CalcJobNode)


def wait_for(node, poll: float = 5.0, timeout: float | None = None):
    """Block until ``node`` terminates, printing a line whenever a work chain or CalcJob below it starts or ends
    (stage, process label and pk, elapsed time), then the call graph; returns the node (loaded again when a
    database rollback detached it)."""
    from aiida import orm
    from aiida.cmdline.utils.ascii_vis import format_call_graph
    from aiida.manage import get_manager
    from sqlalchemy.exc import OperationalError

    start = time.monotonic()
    seen: dict = {}
    pk = node.pk if isinstance(node, orm.Node) else None
    while True:
        try:
            if node.is_terminated:
                break
            for line in _progress_lines(node, seen, time.monotonic() - start):
                click.echo(line)
        except OperationalError as exception:
            # SQLite (the embedded profile) answers `database is locked` while the daemon holds a long write: this
            # watcher only reads, so it rolls back its session and looks again at the next poll
            if 'database is locked' not in str(exception):
                raise
            get_manager().get_profile_storage().get_session().rollback()
            if pk is not None:
                # the rollback can detach the node's database row from the session: load it again
                node = orm.load_node(pk)
            time.sleep(poll)
            continue
        if timeout is not None and time.monotonic() - start > timeout:
            raise click.ClickException(f'<{node.pk}> did not finish within {timeout} s; it goes on in the daemon')
        time.sleep(poll)
    click.echo(format_call_graph(node))
    # the caller's node object may be the detached one: hand back the loaded one
    return node


def export_archive(node, path: Path) -> Path:
    import logging

    from aiida.tools.archive import create_archive

    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger('aiida')
    level = logger.level
    logger.setLevel(logging.WARNING)  # create_archive reports every traversal rule at REPORT level
    try:
        create_archive([node], filename=path, overwrite=True)
    finally:
        logger.setLevel(level)
    return path


LABELLER_PLUGINS = {'cp2k': ('sseff.cp2k',), 'vasp': ('vasp.vasp',), 'surrogate': ('sseff.engine.md', 'sseff.engine.label')}
ENGINE_PLUGINS = ('sseff.engine.md', 'sseff.engine.label')
TRAINING_PLUGINS = ('sseff.nep.train',)
DIFFUSION_PLUGINS = ('sseff.engine.md', 'sseff.gpumd')
PROTOCOLS = ['fast', 'balanced', 'stringent']


def load_code_option(label: str, option: str, plugins: tuple[str, ...]):
    """The code ``label`` for ``option``; a click error naming the value when it does not exist or runs the wrong
    program (its default plugin is not one of ``plugins``)."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    try:
        code = orm.load_code(label)
    except (NotExistent, MultipleObjectsError, ValueError) as exception:
        raise click.BadParameter(f'no code `{label}` ({exception}); list them with `verdi code list`',
                                 param_hint=option) from exception
    plugin = code.default_calc_job_plugin
    if plugin not in plugins:
        raise click.BadParameter(f'code `{label}` runs `{plugin}`, expected a code of {" or ".join(plugins)}',
                                 param_hint=option)
    return code


def load_node_option(value: str, option: str, types: tuple):
    """A stored node of one of ``types`` by pk/uuid; a click error naming the value otherwise."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    try:
        node = orm.load_node(value)
    except (NotExistent, MultipleObjectsError, ValueError) as exception:
        raise click.BadParameter(f'no node `{value}`: {exception}', param_hint=option) from exception
    if not isinstance(node, types):
        names = ' or '.join(t.__name__ for t in types)
        raise click.BadParameter(f'node <{node.pk}> is a {type(node).__name__}, expected a {names}', param_hint=option)
    return node


def load_overrides(path) -> dict | None:
    import yaml

    if not path:
        return None
    try:
        overrides = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exception:
        raise click.BadParameter(f'`{path}` is not valid YAML: {exception}', param_hint='--overrides') from exception
    if overrides is not None and not isinstance(overrides, dict):
        raise click.BadParameter(f'`{path}` must hold a mapping of protocol keys, got a {type(overrides).__name__}',
                                 param_hint='--overrides')
    return overrides


def check_mobile_species(species: str, structure) -> str:
    from ase.data import chemical_symbols

    if species not in chemical_symbols[1:]:
        raise click.BadParameter(f'`{species}` is not a chemical element symbol (e.g. Li, Na, Mg)',
                                 param_hint='--mobile-species')
    symbols = sorted(structure.get_symbols_set())
    if species not in symbols:
        raise click.BadParameter(f'the structure ({structure.get_formula()}) holds no {species}; it holds '
                                 f'{", ".join(symbols)}', param_hint='--mobile-species')
    return species


def run_builder(builder, what: str, daemon: bool, wait: bool):
    """Run ``builder`` here, or submit it to the daemon (and wait); a builder refused by its validators is a click
    error with the validator's sentence, and nothing is stored."""
    from aiida.engine import run_get_node, submit

    try:
        if not daemon:
            _, node = run_get_node(builder)
            return node
        ensure_daemon()
        node = submit(builder)
    except ValueError as exception:  # the WorkChain's own validators refused the inputs
        raise click.ClickException(f'{what}: invalid inputs: {exception}') from exception
    click.echo(f'Submitted {what} <{node.pk}> (verdi process status {node.pk})')
    if wait:
        node = wait_for(node)
    return node


def report_end(node, what: str) -> None:
    state = node.process_state.value if node.process_state else 'created'
    click.echo(f'{what} <{node.pk}>: {state}' + (f' [{node.exit_status}] {node.exit_message}'
                                                  if node.is_terminated and not node.is_finished_ok else ''))


_common_options = launch_options  # the options of every `launch` command (declared in root.py)


@cmd_launch.command('pipeline')
@click.argument('structure', default='Li10GeP2S12')
@click.option('--labeller', type=click.Choice(['surrogate', 'cp2k', 'vasp']), default='surrogate', show_default=True,
              help='The reference of the labels.')
@click.option('--code', 'code_label', default=None,
              help='The labeller\'s code: cp2k (e.g. cp2k@localhost), VASP, or the engine for `surrogate` '
                   '(default: --engine-code).')
@click.option('--engine-code', 'engine_code_label', default='sseff-engine@localhost', show_default=True,
              help='The aiida-sseff-engine code of the sampling MD.')
@click.option('--surrogate-model', default=None,
              help='pk/uuid of a NEP or MACE model that labels (labeller `surrogate`; default CHGNet).')
@click.option('--mobile-species', default='Li', show_default=True, help='The diffusing ion (Li, Na, Mg, ...).')
@click.option('--training-code', 'training_code_label', default=None,
              help='GPUMD `nep` or `neppo` code: also train NEP models on the labelled set (e.g. neppo@localhost).')
@click.option('--diffusion-code', 'diffusion_code_label', default=None,
              help='Engine or GPUMD `gpumd` code: also compute the trained model\'s transport (needs --training-code).')
@_common_options
def cmd_launch_pipeline(structure, labeller, code_label, engine_code_label, surrogate_model, mobile_species,
                        training_code_label, diffusion_code_label, protocol, overrides, daemon, wait):
    """The main job on STRUCTURE (file or shipped name): sample → label → [train → diffusion]."""
    node = launch_pipeline(structure, protocol, engine_code_label, overrides, daemon, wait, training_code_label,
                           diffusion_code_label, labeller=labeller, labelling_code_label=code_label,
                           mobile_species=mobile_species, surrogate_model=surrogate_model)
    report_end(node, 'pipeline')


def launch_pipeline(structure, protocol, code_label, overrides_path=None, daemon=True, wait=True,  # noqa: PLR0913
                    training_code_label=None, diffusion_code_label=None, labeller='surrogate',
                    labelling_code_label=None, mobile_species='Li', surrogate_model=None, dataset_size=False):
    from aiida_sseff.data.model import MaceModel, NepModel
    from aiida_sseff.workflows.pipeline import SseffPipelineWorkChain

    structure_node = load_structure_file(structure)
    mobile_species = check_mobile_species(mobile_species, structure_node)
    code = load_code_option(code_label, '--engine-code', ENGINE_PLUGINS)
    if labeller == 'surrogate':
        labelling_code = load_code_option(labelling_code_label, '--code', ENGINE_PLUGINS) if labelling_code_label \
            else code
    else:
        if not labelling_code_label:
            raise click.BadParameter(f'labeller `{labeller}` needs its code', param_hint='--code')
        labelling_code = load_code_option(labelling_code_label, '--code', LABELLER_PLUGINS[labeller])
    if surrogate_model is not None and labeller != 'surrogate':
        raise click.BadParameter(f'a surrogate model labels only with --labeller surrogate, not `{labeller}`',
                                 param_hint='--surrogate-model')
    model = load_node_option(surrogate_model, '--surrogate-model', (NepModel, MaceModel)) if surrogate_model else None
    if diffusion_code_label and not training_code_label:
        raise click.BadParameter('the diffusion stage needs a trained model: give --training-code too',
                                 param_hint='--diffusion-code')
    training_code = load_code_option(training_code_label, '--training-code', TRAINING_PLUGINS) \
        if training_code_label else None
    diffusion_code = load_code_option(diffusion_code_label, '--diffusion-code', DIFFUSION_PLUGINS) \
        if diffusion_code_label else None
    builder = SseffPipelineWorkChain.get_builder_from_protocol(
        code, structure_node, protocol=protocol, overrides=load_overrides(overrides_path), labeller=labeller,
        labelling_code=labelling_code, labelling_model=model, training_code=training_code,
        diffusion_code=diffusion_code, mobile_species=mobile_species, dataset_size=dataset_size,
    )
    return run_builder(builder, 'pipeline', daemon, wait)


@cmd_launch.command('sample')
@click.argument('structure')
@click.option('--code', 'code_label', default='sseff-engine@localhost', show_default=True,
              help='The aiida-sseff-engine code of the MD.')
@click.option('--model', default=None, help='pk/uuid of a NEP or MACE model that drives the MD (default CHGNet).')
@_common_options
def cmd_launch_sample(structure, code_label, model, protocol, overrides, daemon, wait):
    """Candidates of STRUCTURE (MD snapshots, rattles, strains) and their FPS selection (sseff.sample)."""
    from aiida_sseff.data.model import MaceModel, NepModel
    from aiida_sseff.workflows.sampling import SamplingWorkChain

    structure_node = load_structure_file(structure)
    code = load_code_option(code_label, '--code', ENGINE_PLUGINS)
    model = load_node_option(model, '--model', (NepModel, MaceModel)) if model else None
    builder = SamplingWorkChain.get_builder_from_protocol(code, structure_node, protocol=protocol,
                                                          overrides=load_overrides(overrides), model=model)
    report_end(run_builder(builder, 'sampling', daemon, wait), 'sampling')


def load_dataset_option(value: str, require_labels: bool):
    """A ``sseff.dataset`` by pk/uuid, or a file ASE reads stored as one; a click error naming the value otherwise."""
    from aiida_sseff.data.dataset import DatasetValidationError, LabelledDataset

    if Path(value).is_file():
        try:
            return LabelledDataset.from_file(value, require_labels=require_labels)
        except DatasetValidationError as exception:
            raise click.BadParameter(f'`{value}`: {exception}', param_hint='DATASET') from exception
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    try:
        node = orm.load_node(value)
    except (NotExistent, MultipleObjectsError, ValueError) as exception:
        raise click.BadParameter(f'`{value}` is neither a file nor the pk/uuid of a dataset ({exception})',
                                 param_hint='DATASET') from exception
    if not isinstance(node, LabelledDataset):
        raise click.BadParameter(f'node <{node.pk}> is a {type(node).__name__}, expected a LabelledDataset',
                                 param_hint='DATASET')
    return node


@cmd_launch.command('label')
@click.argument('dataset')
@click.option('--labeller', type=click.Choice(['surrogate', 'cp2k', 'vasp']), default='surrogate', show_default=True)
@click.option('--code', 'code_label', default='sseff-engine@localhost', show_default=True,
              help='cp2k, VASP, or the engine code for `surrogate`.')
@click.option('--model', default=None, help='pk/uuid of a NEP or MACE model that labels (surrogate; default CHGNet).')
@click.option('--protocol', type=click.Choice(['fast', 'balanced', 'gamma', 'stringent']), default='fast',
              show_default=True)
@click.option('--overrides', type=click.Path(exists=True, dir_okay=False), help='YAML file merged into the protocol.')
@click.option('--daemon/--no-daemon', default=True, show_default=True)
@click.option('--wait/--no-wait', default=True, show_default=True)
def cmd_launch_label(dataset, labeller, code_label, model, protocol, overrides, daemon, wait):
    """Reference labels for DATASET (a file ASE reads, or a dataset pk) with CP2K, VASP or a surrogate (sseff.label)."""
    from aiida_sseff.data.model import MaceModel, NepModel
    from aiida_sseff.workflows.labelling import LabellingWorkChain

    structures = load_dataset_option(dataset, require_labels=False)
    code = load_code_option(code_label, '--code', LABELLER_PLUGINS[labeller])
    if model is not None and labeller != 'surrogate':
        raise click.BadParameter(f'a model labels only with --labeller surrogate, not `{labeller}`', param_hint='--model')
    model = load_node_option(model, '--model', (NepModel, MaceModel)) if model else None
    overrides = load_overrides(overrides) or {}
    if model is not None:
        kind = 'nep' if isinstance(model, NepModel) else 'mace'
        overrides = {**overrides, 'surrogate': {**overrides.get('surrogate', {}), 'calculator': {'kind': kind}}}
    builder = LabellingWorkChain.get_builder_from_protocol(code, structures, labeller=labeller, protocol=protocol,
                                                           overrides=overrides or None, model=model)
    report_end(run_builder(builder, 'labelling', daemon, wait), 'labelling')


@cmd_launch.command('train')
@click.argument('dataset')
@click.option('--code', 'code_label', default='neppo@localhost', show_default=True,
              help='GPUMD `nep` or `neppo` code.')
@_common_options
def cmd_launch_train(dataset, code_label, protocol, overrides, daemon, wait):
    """NEP replicas on DATASET (a labelled file or dataset pk), validation and test sets split off (sseff.train.nep)."""
    from aiida_sseff.workflows.training import NepTrainingWorkChain

    labelled = load_dataset_option(dataset, require_labels=True)
    if not labelled.has_labels:
        raise click.BadParameter(f'dataset <{labelled.pk}> has no labels: label it first (aiida-sseff launch label)',
                                 param_hint='DATASET')
    code = load_code_option(code_label, '--code', TRAINING_PLUGINS)
    builder = NepTrainingWorkChain.get_builder_from_protocol(code, labelled, protocol=protocol,
                                                             overrides=load_overrides(overrides))
    report_end(run_builder(builder, 'training', daemon, wait), 'training')


@cmd_launch.command('diffusion')
@click.argument('structure')
@click.option('--code', 'code_label', default='sseff-engine@localhost', show_default=True,
              help='The engine (CPU) or a GPUMD `gpumd` code.')
@click.option('--model', default=None, help='pk/uuid of the NEP or MACE model (default: CHGNet on the engine).')
@click.option('--mobile-species', default='Li', show_default=True, help='The diffusing ion.')
@_common_options
def cmd_launch_diffusion(structure, code_label, model, mobile_species, protocol, overrides, daemon, wait):
    """MD of STRUCTURE at several temperatures → D(T) → Arrhenius Ea and σ(300 K) (sseff.diffusion)."""
    from aiida_sseff.data.model import MaceModel, NepModel
    from aiida_sseff.protocols.utils import recursive_merge
    from aiida_sseff.workflows.diffusion import DiffusionWorkChain

    structure_node = load_structure_file(structure)
    check_mobile_species(mobile_species, structure_node)
    code = load_code_option(code_label, '--code', DIFFUSION_PLUGINS)
    model = load_node_option(model, '--model', (NepModel, MaceModel)) if model else None
    overrides = recursive_merge(load_overrides(overrides) or {}, {'mobile_species': mobile_species})
    builder = DiffusionWorkChain.get_builder_from_protocol(code, structure_node, model=model, protocol=protocol,
                                                           overrides=overrides)
    report_end(run_builder(builder, 'diffusion', daemon, wait), 'diffusion')


@cmd_launch.command('reference-quality')
@click.argument('structures', type=click.Path(exists=True, dir_okay=False))
@click.option('--labeller', type=click.Choice(['cp2k', 'vasp', 'surrogate']), default='cp2k', show_default=True)
@click.option('--code', 'code_label', required=True, help='The labeller code (cp2k, vasp, or the engine).')
@click.option('--protocols', nargs=2, default=('gamma', 'balanced'), show_default=True,
              help='The two sseff.label protocols to compare (reference a, reference b).')
@click.option('--training-code', 'training_code_label', default=None, help='Also train a NEP model on each reference.')
@click.option('--diffusion-code', 'diffusion_code_label', default=None,
              help='Also compare the two models\' Li transport (needs --training-code and --diffusion-structure).')
@click.option('--diffusion-structure', type=click.Path(exists=True, dir_okay=False), default=None)
@click.option('--daemon/--no-daemon', default=True, show_default=True)
def cmd_launch_reference_quality(structures, labeller, code_label, protocols, training_code_label,
                                 diffusion_code_label, diffusion_structure, daemon):
    """Label STRUCTURES (any file ASE reads) with two reference settings and compare them (sseff.study.reference_quality)."""
    from aiida import orm
    from aiida.engine import run_get_node, submit

    from aiida_sseff.data.dataset import DatasetValidationError, LabelledDataset
    from aiida_sseff.workflows.studies import ReferenceQualityWorkChain

    try:
        dataset = LabelledDataset.from_file(structures, require_labels=False)
    except DatasetValidationError as exception:
        raise click.BadParameter(str(exception)) from exception
    builder = ReferenceQualityWorkChain.get_builder_from_protocol(
        orm.load_code(code_label), dataset, labeller=labeller, protocols=tuple(protocols),
        training_code=orm.load_code(training_code_label) if training_code_label else None,
        diffusion_code=orm.load_code(diffusion_code_label) if diffusion_code_label else None,
        diffusion_structure=load_structure_file(diffusion_structure) if diffusion_structure else None,
    )
    if daemon:
        ensure_daemon()
        node = submit(builder)
        click.echo(f'Submitted reference-quality study <{node.pk}> (verdi process status {node.pk})')
        return
    _, node = run_get_node(builder)
    if not node.is_finished_ok:
        raise click.ClickException(f'<{node.pk}> failed: {node.exit_status} {node.exit_message}')
    comparison = node.outputs.comparison
    click.echo(f"force difference b − a: {comparison['force_rmse_mev_per_angstrom']:.2f} meV/Å over "
               f"{comparison['n_structures']} structures")
    for element, value in comparison['force_rmse_per_element_mev_per_angstrom'].items():
        click.echo(f'  {element}: {value:.2f} meV/Å')


@cmd_launch.command('architectures')
@click.argument('dataset')
@click.argument('structure')
@click.option('--architectures', 'labels', default=None,
              help='Comma-separated labels of the protocol\'s architectures to compare (default: all of them, e.g. '
                   'NEP,qNEP,MACE_T0_I,MACE_T1_E).')
@click.option('--reference', default='NEP', show_default=True, help='The architecture the others are compared with.')
@click.option('--nep-code', 'nep_code_label', default='neppo@localhost', show_default=True,
              help='GPUMD `nep` or `neppo` (NEP and qNEP training).')
@click.option('--mace-code', 'mace_code_label', default='sseff-mace@localhost', show_default=True,
              help='The aiida-sseff-mace wrapper of mace_run_train.')
@click.option('--engine-code', 'engine_code_label', default='sseff-engine@localhost', show_default=True,
              help='The CPU engine: MD speed runs and the diffusion MD of every model.')
@click.option('--lammps-code', 'lammps_code_label', default=None,
              help='A LAMMPS code (aiida-lammps `lammps.raw`): adds the classical Buckingham + Coulomb baseline.')
@_common_options
def cmd_launch_architectures(dataset, structure, labels, reference, nep_code_label, mace_code_label,  # noqa: PLR0913
                             engine_code_label, lammps_code_label, protocol, overrides, daemon, wait):
    """Train NEP, qNEP and MACE variants on DATASET, compare their errors, cost and the Li transport they predict in
    STRUCTURE (and a classical potential's) in one table (sseff.study.architectures)."""
    from aiida_sseff.protocols.utils import recursive_merge
    from aiida_sseff.workflows.architectures import ArchitectureTrainingWorkChain
    from aiida_sseff.workflows.studies import ArchitecturesStudyWorkChain

    available = ArchitectureTrainingWorkChain.get_protocol_inputs(protocol)['architectures']
    architectures = available
    if labels:
        chosen = [label.strip() for label in labels.split(',') if label.strip()]
        unknown = [label for label in chosen if label not in available]
        if unknown:
            raise click.BadParameter(f'unknown architecture(s) {", ".join(unknown)}; the {protocol} protocol has '
                                     f'{", ".join(available)}', param_hint='--architectures')
        architectures = {label: available[label] for label in chosen}
    if reference not in architectures:
        raise click.BadParameter(f'`{reference}` is not among the architectures ({", ".join(architectures)})',
                                 param_hint='--reference')
    kinds = {spec['kind'] for spec in architectures.values()}
    codes = {'engine': load_code_option(engine_code_label, '--engine-code', ENGINE_PLUGINS)}
    if 'nep' in kinds:
        codes['nep'] = load_code_option(nep_code_label, '--nep-code', TRAINING_PLUGINS)
    if 'mace' in kinds:
        codes['mace'] = load_code_option(mace_code_label, '--mace-code', ('sseff.mace.train',))
    classical = load_code_option(lammps_code_label, '--lammps-code', ('lammps.raw',)) if lammps_code_label else None
    # the files are stored only once every option is known to be right
    dataset_node = load_dataset_option(dataset, require_labels=True)
    structure_node = load_structure_file(structure)
    builder = ArchitecturesStudyWorkChain.get_builder_from_protocol(
        codes, dataset_node, codes['engine'], structure_node, protocol=protocol, architectures=architectures,
        overrides=recursive_merge(load_overrides(overrides) or {}, {'reference_architecture': reference}),
        classical_code=classical)
    node = run_builder(builder, 'architecture study', daemon, wait)
    report_end(node, 'architecture study')
    if node.is_finished_ok:
        click.echo(node.outputs.table['markdown'])


@cmd_root.command('demo')
@click.option('--protocol', type=click.Choice(['fast', 'balanced', 'stringent']), default='fast', show_default=True)
@click.option('--output', type=click.Path(file_okay=False), default='results', show_default=True,
              help='Folder for the archive, the dataset and the plots.')
def cmd_demo(protocol, output):
    """The main job on the shipped Li10GeP2S12 cell: sample, label (CHGNet surrogate), the dataset-size study (FPS
    series, one NEP per size with neppo, each one's diffusion at four temperatures), then export and plots."""
    from aiida_sseff.cli.cmd_setup import ensure_engine_code, ensure_localhost, ensure_neppo_code

    computer = ensure_localhost()
    ensure_engine_code(computer)
    neppo = ensure_neppo_code(computer)
    start = time.monotonic()
    training_code_label = neppo.full_label if neppo is not None else None
    click.echo(f'Main job ({protocol} protocol): sample -> label -> '
               + ('dataset-size study (FPS series, NEP per size, diffusion per model)' if training_code_label
                  else 'no training (neppo is not installed)'))
    node = launch_pipeline('Li10GeP2S12', protocol, 'sseff-engine@localhost', daemon=True, wait=True,
                           training_code_label=training_code_label,
                           diffusion_code_label='sseff-engine@localhost' if training_code_label else None,
                           dataset_size=training_code_label is not None)
    demo_outputs(node, protocol, output, start)


def demo_outputs(node, protocol: str, output, start: float) -> None:
    """The demo's files and its closing summary for a finished main job ``node`` (``start``: time.monotonic() at
    launch)."""
    if not node.is_finished_ok:
        raise click.ClickException(f'pipeline <{node.pk}> failed: {node.exit_status} {node.exit_message}')
    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    archive = export_archive(node, output / f'pipeline-{node.pk}.aiida')
    dataset_path = node.outputs.labelling.dataset.write(output / f'dataset-{node.pk}.xyz')
    from aiida_sseff.cli.plots import plot_pipeline

    plot_path = plot_pipeline(node, output / f'pipeline-{node.pk}.png')
    plots = [plot_path]
    if 'training' in node.outputs:
        from aiida_sseff.cli.cmd_training import cmd_plot_training

        training = node.base.links.get_outgoing(link_label_filter='training').one().node
        training_plot = output / f'training-{training.pk}.png'
        click.get_current_context().invoke(cmd_plot_training, process=training, output=training_plot, replica=None)
        plots.append(training_plot)
        node.outputs.training.model.export_file(output / f'nep-{node.pk}.txt')
    if 'diffusion' in node.outputs:
        from aiida_sseff.cli.cmd_transport import cmd_plot_diffusion

        diffusion = node.base.links.get_outgoing(link_label_filter='diffusion').one().node
        arrhenius_plot = output / f'diffusion-{diffusion.pk}.png'
        click.get_current_context().invoke(cmd_plot_diffusion, process=diffusion, path=arrhenius_plot)
        plots.append(arrhenius_plot)
    study = None
    if 'dataset_size' in node.outputs:
        from aiida_sseff.cli.cmd_transport import cmd_plot_diffusion
        from aiida_sseff.plots.dataset_size import plot_dataset_size

        study = node.base.links.get_outgoing(link_label_filter='dataset_size').one().node
        table = study.outputs.table.get_dict()
        converged = table['converged']
        plots.append(plot_dataset_size(table['rows'], converged['size'] if converged['converged'] else None,
                                       table['temperature_K'], path=output / f'dataset-size-{study.pk}.png'))
        for label in sorted(study.outputs.transport):
            diffusion = study.base.links.get_outgoing(link_label_filter=f'diffusion_{label}').one().node
            arrhenius_plot = output / f'diffusion-{label}-{diffusion.pk}.png'
            click.get_current_context().invoke(cmd_plot_diffusion, process=diffusion, path=arrhenius_plot)
            plots.append(arrhenius_plot)
        for label, model in study.outputs.models.items():
            model.export_file(output / f'nep-{label}-{node.pk}.txt')
    summary = pipeline_summary(node)
    (output / f'pipeline-{node.pk}.json').write_text(json.dumps(summary, indent=2))
    from aiida_sseff.report.render import build_report, render_html, report_json

    # the report is built from the provenance graph only: `aiida-sseff report` on the archive, imported into another
    # profile, writes the same page
    report = build_report(node)
    report_path = output / f'report-{node.pk}.html'
    report_path.write_text(render_html(report), encoding='utf-8')
    (output / f'report-{node.pk}.json').write_text(json.dumps(report_json(report), indent=1, sort_keys=True),
                                                   encoding='utf-8')
    click.echo('')
    click.echo(f'Main job finished in {time.monotonic() - start:.0f} s: pipeline <{node.pk}>')
    for key, value in summary.items():
        if key != 'dataset_size':
            click.echo(f'  {key}: {value}')
    click.echo(f'  provenance: verdi process status {node.pk}; aiida-sseff show pipeline {node.pk}')
    click.echo(f'  archive:    {archive}')
    click.echo(f'  dataset:    {dataset_path}')
    if 'diffusion' in node.outputs:
        from aiida_sseff.cli.cmd_transport import diffusion_table

        species = node.inputs.mobile_species.value
        click.echo(f'  {species} transport of the trained NEP model (sseff.diffusion, {protocol} protocol: a smoke test):')
        for line in diffusion_table(node.outputs.diffusion.results.get_dict()):
            click.echo(f'    {line}')
    if study is not None:
        click.echo(f'  dataset-size study <{study.pk}> ({protocol} protocol: a smoke test, not numbers to publish):')
        for line in study.outputs.table['markdown'].splitlines():
            click.echo(f'    {line}')
        click.echo(f'  NEP models: {output}/nep-level_*-{node.pk}.txt')
    click.echo(f'  plots:      {", ".join(str(p) for p in plots)}')
    if 'training' in node.outputs:
        click.echo(f'  NEP model:  {output / f"nep-{node.pk}.txt"}')
    if study is not None:
        click.echo(f'  table again: aiida-sseff show dataset-size {node.pk}; figure: aiida-sseff plot dataset-size '
                   f'{node.pk}')
    click.echo(f'  report:     {report_path}  ({len(report.sections)} sections, built from the provenance graph; the '
               f'same page from the archive: verdi archive import {archive.name}, then aiida-sseff report {node.uuid})')
    click.echo(f'Open the report in a browser: xdg-open {report_path}   (or file://{report_path})')


def pipeline_summary(node) -> dict:
    """The main job in a few numbers (:func:`aiida_sseff.report.stored.pipeline_summary`, shared with the report)."""
    from aiida_sseff.report.stored import pipeline_summary as summary

    return summary(node)


@cmd_launch.command('locality')
@click.argument('structure')
@click.option('--code', 'code_label', default='sseff-engine@localhost', show_default=True,
              help='The aiida-sseff-engine code.')
@click.option('--model', default=None, help='pk/uuid of the NEP or MACE model of the perturbation MD (default CHGNet).')
@click.option('--surrogate-model', default=None,
              help='pk/uuid of the NEP or MACE surrogate whose forces are measured (default: the MD model).')
@click.option('--chgnet-surrogate', is_flag=True, help='CHGNet (no model file) as the surrogate.')
@click.option('--species', default=None, help='Comma-separated species to test (default: every species).')
@_common_options
def cmd_launch_locality(structure, code_label, model, surrogate_model, chgnet_surrogate, species, protocol, overrides,
                        daemon, wait):
    """σ_f of the central atom of each species versus the frozen radius r_f for STRUCTURE (sseff.locality)."""
    from aiida_sseff.data.model import MaceModel, NepModel
    from aiida_sseff.workflows.locality import LocalityWorkChain

    if surrogate_model and chgnet_surrogate:
        raise click.BadParameter('give either --surrogate-model or --chgnet-surrogate', param_hint='--surrogate-model')
    structure_node = load_structure_file(structure)
    code = load_code_option(code_label, '--code', ENGINE_PLUGINS)
    model = load_node_option(model, '--model', (NepModel, MaceModel)) if model else None
    surrogate = load_node_option(surrogate_model, '--surrogate-model', (NepModel, MaceModel)) if surrogate_model \
        else None
    builder = LocalityWorkChain.get_builder_from_protocol(
        code, structure_node, surrogate_model=surrogate, model=model, protocol=protocol,
        overrides=load_overrides(overrides), surrogate_calculator={'kind': 'chgnet'} if chgnet_surrogate else None,
        species=[s.strip() for s in species.split(',')] if species else None)
    report_end(run_builder(builder, 'locality', daemon, wait), 'locality')
