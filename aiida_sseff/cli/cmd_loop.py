"""``launch loop``, ``show loop``, ``plot loop``: the active-learning loop that stops on transport (``sseff.loop``)."""

from __future__ import annotations

from pathlib import Path

import click
from aiida.cmdline.params import arguments

from aiida_sseff.cli.root import cmd_launch, cmd_plot, cmd_show, finished_process, launch_options

ENGINE_PLUGINS = ('sseff.engine.md', 'sseff.engine.label')


def _loop_node(process):
    return finished_process(process, 'sseff.loop', 'iterations')

def extension_builder(previous, max_labels: int):
    """A new loop that continues ``previous`` (a terminated sseff.loop with outputs) from its last iteration: its
    inputs, with its final dataset, its fixed test set, its table (the last row is the criterion's previous
    iteration), its last committee (which explores first: that iteration is not retrained) and ``max_labels`` new
    labels. Nothing it labelled is labelled again."""
    missing = [name for name in ('dataset', 'test_set', 'iterations', 'model', 'committee')
               if name not in previous.outputs]
    if missing:
        raise click.ClickException(f'sseff.loop <{previous.pk}> has no {", ".join(missing)} output: it cannot be '
                                   'extended (it stopped before its first iteration)')
    builder = previous.get_builder_restart()
    builder.dataset = previous.outputs.dataset
    builder.test_set = previous.outputs.test_set
    builder.iterations = previous.outputs.iterations
    builder.committee = dict(previous.outputs.committee)
    builder.committee_model = previous.outputs.model
    builder.initial_sampling = {}
    from aiida import orm

    builder.max_labels = orm.Int(max_labels)
    return builder


@cmd_launch.command('loop')
@click.argument('structure', default='Li10GeP2S12')
@click.option('--labeller', type=click.Choice(['surrogate', 'cp2k', 'vasp']), default='surrogate', show_default=True,
              help='The reference of the labels.')
@click.option('--code', 'code_label', default=None,
              help='The labeller\'s code (cp2k, VASP; default: --engine-code for `surrogate`).')
@click.option('--engine-code', 'engine_code_label', default='sseff-engine@localhost', show_default=True,
              help='The aiida-sseff-engine code: exploration and diffusion MD.')
@click.option('--training-code', 'training_code_label', default='neppo@localhost', show_default=True,
              help='GPUMD `nep` or `neppo`: trains the committee.')
@click.option('--surrogate-model', default=None, help='pk/uuid of a NEP or MACE model that labels (default CHGNet).')
@click.option('--dataset', default=None, help='An initial labelled dataset (pk/uuid or file) instead of sampling one.')
@click.option('--extend', 'extend_pk', default=None, type=int,
              help='pk of a finished sseff.loop to continue from its last iteration (no relabelling).')
@click.option('--max-labels', type=click.IntRange(min=1), default=None,
              help='The label budget (with --extend: the new labels; default: the protocol\'s).')
@launch_options
def cmd_launch_loop(structure, labeller, code_label, engine_code_label, training_code_label, surrogate_model, dataset,
                    extend_pk, max_labels, protocol, overrides, daemon, wait):
    """Active learning on STRUCTURE (file or shipped name) until D(T) and Ea converge (sseff.loop)."""
    from aiida import orm

    from aiida_sseff.cli.cmd_launch import (
        load_code_option,
        load_dataset_option,
        load_overrides,
        load_structure_file,
        report_end,
        run_builder,
    )
    from aiida_sseff.workflows.loop import LoopWorkChain

    if extend_pk is not None:
        if max_labels is None:
            raise click.BadParameter('give the new budget with --max-labels', param_hint='--extend')
        previous = orm.load_node(extend_pk)
        if previous.process_type != 'aiida.workflows:sseff.loop':
            raise click.BadParameter(f'<{extend_pk}> is not a sseff.loop', param_hint='--extend')
        builder = extension_builder(previous, max_labels)
    else:
        engine = load_code_option(engine_code_label, '--engine-code', ENGINE_PLUGINS)
        trainer = load_code_option(training_code_label, '--training-code', ('sseff.nep.train',))
        labelling_code = None
        if code_label is not None:
            labelling_code = load_code_option(code_label, '--code', ('sseff.cp2k', 'vasp.vasp', *ENGINE_PLUGINS))
        labelling_model = orm.load_node(surrogate_model) if surrogate_model else None
        initial = load_dataset_option(dataset, require_labels=True) if dataset else None
        builder = LoopWorkChain.get_builder_from_protocol(
            engine, load_structure_file(structure), protocol=protocol, overrides=load_overrides(overrides),
            labeller=labeller, labelling_code=labelling_code, training_code=trainer, dataset=initial,
            labelling_model=labelling_model)
        if max_labels is not None:
            builder.max_labels = orm.Int(max_labels)
    node = run_builder(builder, 'loop', daemon, wait)
    report_end(node, 'loop')
    if node.is_terminated and 'iterations' in node.outputs:
        for line in loop_table(node.outputs.iterations.get_dict()):
            click.echo(line)


def loop_table(table: dict) -> list[str]:
    """The per-iteration table as text lines (``show loop``)."""
    from aiida_sseff.report.sections.loop import loop_rows, loop_table_columns

    rows = table['rows']
    columns = loop_table_columns(rows)
    cells = loop_rows(rows)

    def fmt(value):
        if value is None:
            return '-'
        if isinstance(value, bool):
            return 'yes' if value else 'no'
        if isinstance(value, float):
            return f'{value:.3e}' if abs(value) < 1e-2 and value != 0 else f'{value:.3f}'
        return str(value)

    text = [[fmt(value) for value in row] for row in cells]
    widths = [max(len(column), *(len(row[i]) for row in text)) for i, column in enumerate(columns)]
    lines = ['  '.join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines += ['  '.join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in text]
    criterion = table['criterion']
    lines.append(f"outcome: {table['outcome']}; labels added by this loop: {table['labels_used']}; criterion: "
                 f"n_sigma {criterion['n_sigma']:g}, Ea replica spread <= {criterion['ea_spread_tolerance_eV']:g} eV")
    return lines


@cmd_show.command('loop')
@arguments.PROCESS()
def cmd_show_loop(process):
    """The per-iteration table of a sseff.loop: dataset size, labels, disagreement, RMSE, Ea ± σ, spread, D(T)."""
    node = _loop_node(process)
    for line in loop_table(node.outputs.iterations.get_dict()):
        click.echo(line)


@cmd_plot.command('loop')
@arguments.PROCESS()
@click.option('-o', '--output', 'path', type=click.Path(dir_okay=False, path_type=Path), required=True,
              help='Image file (png, pdf, svg).')
def cmd_plot_loop(process, path):
    """Ea ± σ (and the replica spread) and the test force RMSE of a sseff.loop versus iteration."""
    from aiida_sseff.plots.loop import plot_loop

    node = _loop_node(process)
    plot_loop(node.outputs.iterations['rows'], path, title=f'sseff.loop <{node.pk}>')
    click.echo(f'Wrote {path}')
