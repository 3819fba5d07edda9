"""``aiida-sseff launch|show|plot dataset-size``: the dataset-size study (``sseff.study.dataset_size``), its table and
figure, from the stored nodes alone. ``show``/``plot`` also take a main job (``sseff.pipeline``) that ran the study."""

from __future__ import annotations

from pathlib import Path

import click
from aiida.cmdline.params import arguments

from aiida_sseff.cli.root import cmd_launch, cmd_plot, cmd_show, finished_process, launch_options

STUDY_TYPE = 'aiida.workflows:sseff.study.dataset_size'


@cmd_launch.command('dataset-size')
@click.argument('dataset')
@click.argument('structure')
@click.option('--training-code', 'training_code_label', default='neppo@localhost', show_default=True,
              help='GPUMD `nep` or `neppo`: one NEP model per size.')
@click.option('--diffusion-code', 'diffusion_code_label', default='sseff-engine@localhost', show_default=True,
              help='The CPU engine (CPUNEP) or GPUMD `gpumd`: the transport of every model.')
@click.option('--n-sizes', type=click.IntRange(min=2), default=None,
              help='Number of sizes (the pool and its halvings; default: the protocol\'s).')
@click.option('--mobile-species', default=None, help='The diffusing ion (default: the protocol\'s, Li).')
@launch_options
def cmd_launch_dataset_size(dataset, structure, training_code_label, diffusion_code_label, n_sizes,  # noqa: PLR0913
                            mobile_species, protocol, overrides, daemon, wait):
    """Errors and Li transport versus training-set size: DATASET (labelled extxyz file or pk) held out once, reduced
    by nested FPS, one NEP per size, each one's diffusion in STRUCTURE (sseff.study.dataset_size)."""
    # the launch helpers at call time: no CLI module imports another command module at import (test_cli_docs)
    from aiida_sseff.cli.cmd_launch import (
        DIFFUSION_PLUGINS,
        TRAINING_PLUGINS,
        load_code_option,
        load_dataset_option,
        load_overrides,
        load_structure_file,
        report_end,
        run_builder,
    )
    from aiida_sseff.protocols.utils import recursive_merge
    from aiida_sseff.workflows.dataset_size import DatasetSizeStudyWorkChain

    training_code = load_code_option(training_code_label, '--training-code', TRAINING_PLUGINS)
    diffusion_code = load_code_option(diffusion_code_label, '--diffusion-code', DIFFUSION_PLUGINS)
    structure_node = load_structure_file(structure)
    if mobile_species is not None and mobile_species not in structure_node.get_symbols_set():
        raise click.BadParameter(f'the structure ({structure_node.get_formula()}) holds no {mobile_species}',
                                 param_hint='--mobile-species')
    # the files are stored only once every option is known to be right
    dataset_node = load_dataset_option(dataset, require_labels=True)
    merged = recursive_merge(load_overrides(overrides) or {}, {'n_sizes': n_sizes} if n_sizes else {})
    builder = DatasetSizeStudyWorkChain.get_builder_from_protocol(
        training_code, dataset_node, diffusion_code, structure_node, protocol=protocol, overrides=merged or None,
        mobile_species=mobile_species)
    node = run_builder(builder, 'dataset-size study', daemon, wait)
    report_end(node, 'dataset-size study')
    if node.is_finished_ok:
        click.echo(node.outputs.table['markdown'])


def finished_study(process):
    """The dataset-size study of PROCESS (itself, or the ``dataset_size`` child of a main job) with its table."""
    if process.process_type == 'aiida.workflows:sseff.pipeline':
        children = process.base.links.get_outgoing(link_label_filter='dataset_size').all()
        if not children:
            raise click.BadParameter(f'the main job <{process.pk}> ran no dataset-size study', param_hint='PROCESS')
        process = children[0].node
    return finished_process(process, 'sseff.study.dataset_size')

@cmd_show.command('dataset-size')
@arguments.PROCESS()
def cmd_show_dataset_size(process):
    """The dataset-size table (RMSE, D, Ea per size) and the converged size."""
    click.echo(finished_study(process).outputs.table['markdown'])


@cmd_plot.command('dataset-size')
@arguments.PROCESS()
@click.option('-o', '--output', 'path', type=click.Path(dir_okay=False, path_type=Path), default=None,
              help='The image (default: dataset-size-<pk>.png).')
def cmd_plot_dataset_size(process, path):
    """RMSE and Ea ± σ versus mobile-ion environments, the converged size marked (the paper's Fig. 1)."""
    from aiida_sseff.plots.dataset_size import plot_dataset_size

    study = finished_study(process)
    table = study.outputs.table.get_dict()
    converged = table['converged']
    path = path or Path(f'dataset-size-{study.pk}.png')
    plot_dataset_size(table['rows'], converged['size'] if converged['converged'] else None, table['temperature_K'],
                      path=path)
    click.echo(f'Wrote {path}')
