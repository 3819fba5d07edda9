"""``aiida-sseff launch ...`` and ``aiida-sseff demo``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from aiida_sseff.cli.root import cmd_root

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


def ensure_daemon(n_workers: int = 1):
    from aiida.engine.daemon.client import get_daemon_client

    client = get_daemon_client()
    if not client.is_daemon_running:
        click.echo(f'Starting the daemon ({n_workers} worker, ZeroMQ broker)')
        client.start_daemon(number_workers=n_workers)
    return client


def wait_for(node, poll: float = 5.0, timeout: float | None = None) -> None:
    """Block until ``node`` terminates, printing a status line whenever it changes."""
    from aiida.cmdline.utils.ascii_vis import format_call_graph

    start = time.monotonic()
    last = ''
    while not node.is_terminated:
        lines = format_call_graph(node).splitlines()
        summary = f'[{time.monotonic() - start:6.0f} s] ' + ' | '.join(line.strip() for line in lines[1:][-3:])
        if summary.split('] ', 1)[1] != last:
            click.echo(summary)
            last = summary.split('] ', 1)[1]
        if timeout is not None and time.monotonic() - start > timeout:
            raise click.ClickException(f'<{node.pk}> did not finish within {timeout} s; it goes on in the daemon')
        time.sleep(poll)
    click.echo(format_call_graph(node))


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


@cmd_root.group('launch')
def cmd_launch():
    """Launch a workflow (use --help on each)."""


@cmd_launch.command('pipeline')
@click.argument('structure', default='Li10GeP2S12')
@click.option('--protocol', type=click.Choice(['fast', 'balanced', 'stringent']), default='fast', show_default=True)
@click.option('--code', 'code_label', default='sseff-engine@localhost', show_default=True, help='Engine code.')
@click.option('--overrides', type=click.Path(exists=True, dir_okay=False), help='YAML file merged into the protocol.')
@click.option('--training-code', 'training_code_label', default=None,
              help='GPUMD `nep` or `neppo` code: also train NEP models on the labelled set (e.g. neppo@localhost).')
@click.option('--diffusion-code', 'diffusion_code_label', default=None,
              help='Engine or GPUMD `gpumd` code: also compute the trained model\'s Li transport (needs --training-code).')
@click.option('--daemon/--no-daemon', default=True, show_default=True, help='Submit to the daemon or run here.')
@click.option('--wait/--no-wait', default=True, show_default=True, help='With --daemon: wait for the end.')
def cmd_launch_pipeline(structure, protocol, code_label, overrides, training_code_label, diffusion_code_label, daemon,
                        wait):
    """Sample STRUCTURE (file or shipped name) by MD, select and label it, optionally train and diffuse: the main job."""
    node = launch_pipeline(structure, protocol, code_label, overrides, daemon, wait, training_code_label,
                           diffusion_code_label)
    click.echo(f'pipeline <{node.pk}>: {node.process_state.value if node.process_state else "created"}')


def launch_pipeline(structure, protocol, code_label, overrides_path=None, daemon=True, wait=True,
                    training_code_label=None, diffusion_code_label=None):
    import yaml
    from aiida import orm
    from aiida.engine import run_get_node, submit

    from aiida_sseff.workflows.pipeline import SseffPipelineWorkChain

    code = orm.load_code(code_label)
    overrides = yaml.safe_load(Path(overrides_path).read_text()) if overrides_path else None
    training_code = orm.load_code(training_code_label) if training_code_label else None
    diffusion_code = orm.load_code(diffusion_code_label) if diffusion_code_label else None
    builder = SseffPipelineWorkChain.get_builder_from_protocol(
        code, load_structure_file(structure), protocol=protocol, overrides=overrides, training_code=training_code,
        diffusion_code=diffusion_code,
    )
    if not daemon:
        _, node = run_get_node(builder)
        return node
    ensure_daemon()
    node = submit(builder)
    click.echo(f'Submitted pipeline <{node.pk}> (verdi process status {node.pk})')
    if wait:
        wait_for(node)
    return node


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


@cmd_root.command('demo')
@click.option('--protocol', type=click.Choice(['fast', 'balanced', 'stringent']), default='fast', show_default=True)
@click.option('--output', type=click.Path(file_okay=False), default='results', show_default=True,
              help='Folder for the archive, the dataset and the plots.')
def cmd_demo(protocol, output):
    """The main job: the pipeline on the shipped Li10GeP2S12 cell (sample, label, train NEP), then export and plots."""
    from aiida_sseff.cli.cmd_setup import ensure_engine_code, ensure_localhost, ensure_neppo_code

    computer = ensure_localhost()
    ensure_engine_code(computer)
    neppo = ensure_neppo_code(computer)
    start = time.monotonic()
    training_code_label = neppo.full_label if neppo is not None else None
    node = launch_pipeline('Li10GeP2S12', protocol, 'sseff-engine@localhost', daemon=True, wait=True,
                           training_code_label=training_code_label,
                           diffusion_code_label='sseff-engine@localhost' if training_code_label else None)
    if not node.is_finished_ok:
        raise click.ClickException(f'pipeline <{node.pk}> failed: {node.exit_status} {node.exit_message}')
    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    archive = export_archive(node, output / f'pipeline-{node.pk}.aiida')
    dataset_path = node.outputs.dataset.write(output / f'dataset-{node.pk}.xyz')
    from aiida_sseff.cli.plots import plot_pipeline

    plot_path = plot_pipeline(node, output / f'pipeline-{node.pk}.png')
    plots = [plot_path]
    if 'model' in node.outputs:
        from aiida_sseff.cli.cmd_training import cmd_plot_training

        training = node.base.links.get_outgoing(link_label_filter='training').one().node
        training_plot = output / f'training-{training.pk}.png'
        click.get_current_context().invoke(cmd_plot_training, process=training, output=training_plot, replica=None)
        plots.append(training_plot)
        node.outputs.model.export_file(output / f'nep-{node.pk}.txt')
    if 'transport' in node.outputs:
        from aiida_sseff.cli.cmd_transport import cmd_plot_diffusion, diffusion_table

        diffusion = node.base.links.get_outgoing(link_label_filter='diffusion').one().node
        arrhenius_plot = output / f'diffusion-{diffusion.pk}.png'
        click.get_current_context().invoke(cmd_plot_diffusion, process=diffusion, path=arrhenius_plot)
        plots.append(arrhenius_plot)
    summary = pipeline_summary(node)
    (output / f'pipeline-{node.pk}.json').write_text(json.dumps(summary, indent=2))
    click.echo('')
    click.echo(f'Main job finished in {time.monotonic() - start:.0f} s: pipeline <{node.pk}>')
    for key, value in summary.items():
        click.echo(f'  {key}: {value}')
    click.echo(f'  provenance: verdi process status {node.pk}; aiida-sseff show pipeline {node.pk}')
    click.echo(f'  archive:    {archive}')
    click.echo(f'  dataset:    {dataset_path}')
    if 'transport' in node.outputs:
        click.echo('  Li transport of the trained NEP model (sseff.diffusion, fast protocol: a smoke test):')
        for line in diffusion_table(node.outputs.transport.get_dict()):
            click.echo(f'    {line}')
    click.echo(f'  plots:      {", ".join(str(p) for p in plots)}')
    if 'model' in node.outputs:
        click.echo(f'  NEP model:  {output / f"nep-{node.pk}.txt"}')


def pipeline_summary(node) -> dict:
    dataset = node.outputs.dataset
    energies = [atoms.get_potential_energy() / len(atoms) for atoms in dataset.get_ase()]
    md = {}
    for link in node.base.links.get_outgoing(link_label_filter='md_%').all():
        results = link.node.outputs.results
        md[link.link_label] = {
            'mean_T_K': round(results['mean_temperature_K'], 1),
            'frames': results['n_frames'],
            'speed_atom_step_per_s': round(results['speed_atom_step_per_s'] or 0, 1),
        }
    summary = {
        'structure': node.inputs.structure.get_formula(),
        'md': md,
        'candidates': node.outputs.candidates.n_structures,
        'labelled': dataset.n_structures,
        'elements': dataset.elements,
        'energy_per_atom_eV_range': [round(float(min(energies)), 4), round(float(max(energies)), 4)],
        'dataset_sha256': dataset.sha256,
    }
    if 'training_metrics' in node.outputs:
        metrics = node.outputs.training_metrics
        summary['nep_held_out_rmse'] = {
            'energy_meV_per_atom': round(metrics['energy_mev_per_atom'], 2),
            'force_meV_per_A': round(metrics['force_mev_per_angstrom'], 1),
        }
    return summary
