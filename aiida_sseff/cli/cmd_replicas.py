"""``aiida-sseff launch replicas``, ``show replicas`` and ``plot replicas``: the replica study (sseff.study.replicas)."""

from __future__ import annotations

import re
from pathlib import Path

import click
from aiida.cmdline.params import arguments

from aiida_sseff.cli.root import cmd_launch, cmd_plot, cmd_show, finished_process, launch_options

ENTRY_POINT = 'sseff.study.replicas'



def dataset_label(argument: str) -> tuple[str, str]:
    """``label=path`` → (label, path); a bare path → (its file stem made a link name, path)."""
    if '=' in argument:
        label, value = argument.split('=', 1)
    else:
        value = argument
        label = re.sub(r'[^A-Za-z0-9]+', '_', Path(argument).stem).strip('_')
        if not label or not label[0].isalpha():
            label = f'dataset_{label}'
    return label, value


def finished_study(process, entry_point: str = ENTRY_POINT):
    return finished_process(process, entry_point)

@cmd_launch.command('replicas')
@click.argument('datasets', nargs=-1, required=True)
@click.argument('structure')
@click.option('--code', 'code_label', default='neppo@localhost', show_default=True,
              help='The training code of the architecture (GPUMD `nep` or `neppo` for NEP).')
@click.option('--engine-code', 'engine_code_label', default='sseff-engine@localhost', show_default=True,
              help='The diffusion MD code: the CPU engine or GPUMD (NEP only).')
@click.option('--seeds', default=None, help='Comma-separated seeds, one replica each (default: the protocol\'s).')
@launch_options
def cmd_launch_replicas(datasets, structure, code_label, engine_code_label, seeds, protocol, overrides, daemon, wait):
    """Train n replicas (seeds) of one architecture on each DATASET (`label=file-or-pk`, or a file: labelled by its
    stem) and compare the spread of the Li transport they predict in STRUCTURE with their own error bars
    (sseff.study.replicas)."""
    from aiida_sseff.cli.cmd_launch import (
        DIFFUSION_PLUGINS,
        load_code_option,
        load_dataset_option,
        load_overrides,
        load_structure_file,
        report_end,
        run_builder,
    )
    from aiida_sseff.protocols.utils import recursive_merge
    from aiida_sseff.workflows.replicas import ReplicaStudyWorkChain

    labelled = [dataset_label(argument) for argument in datasets]
    labels = [label for label, _ in labelled]
    if len(set(labels)) != len(labels):
        raise click.BadParameter(f'two datasets have the same label ({", ".join(labels)}): name them label=path',
                                 param_hint='DATASETS')
    overrides = load_overrides(overrides) or {}
    if seeds:
        try:
            overrides = recursive_merge(overrides, {'seeds': [int(s) for s in seeds.split(',') if s.strip()]})
        except ValueError as exception:
            raise click.BadParameter(f'`{seeds}` is not a comma-separated list of integers',
                                     param_hint='--seeds') from exception
    code = load_code_option(code_label, '--code', ('sseff.nep.train', 'sseff.mace.train'))
    engine = load_code_option(engine_code_label, '--engine-code', DIFFUSION_PLUGINS)
    # the files are stored only once every option is known to be right
    nodes = {label: load_dataset_option(value, require_labels=True) for label, value in labelled}
    builder = ReplicaStudyWorkChain.get_builder_from_protocol(code, nodes, engine, load_structure_file(structure),
                                                              protocol=protocol, overrides=overrides or None)
    node = run_builder(builder, 'replica study', daemon, wait)
    report_end(node, 'replica study')
    if node.is_finished_ok:
        click.echo(node.outputs.table['markdown'])


@cmd_show.command('replicas')
@arguments.PROCESS()
def cmd_show_replicas(process):
    """The replica table: per dataset and replica force RMSE, Ea ± σ, D(T) ± σ; the spread and the verdict."""
    click.echo(finished_study(process).outputs.table['markdown'])


@cmd_plot.command('replicas')
@arguments.PROCESS()
@click.option('-o', '--output', 'folder', type=click.Path(file_okay=False, path_type=Path), default=Path('.'),
              show_default=True, help='Folder for the two images.')
def cmd_plot_replicas(process, folder):
    """D(T) per replica with its own error bars, one panel per dataset, and Ea ± σ per replica (the paper's Fig. S4)."""
    from aiida_sseff.plots.replicas import plot_replica_arrhenius, plot_replica_ea
    from aiida_sseff.workflows.replicas import replica_fits

    node = finished_study(process)
    datasets = node.outputs.table.get_dict()['datasets']
    folder.mkdir(parents=True, exist_ok=True)
    for path in (plot_replica_arrhenius(datasets, replica_fits(node), path=folder / f'replicas-{node.pk}.png'),
                 plot_replica_ea(datasets, path=folder / f'replicas-ea-{node.pk}.png')):
        click.echo(f'Wrote {path}')
