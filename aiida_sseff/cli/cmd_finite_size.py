"""``aiida-sseff launch finite-size``, ``show finite-size`` and ``plot finite-size``: the finite-size study
(sseff.study.finite_size)."""

from __future__ import annotations

from pathlib import Path

import click
from aiida.cmdline.params import arguments

from aiida_sseff.cli.root import cmd_launch, cmd_plot, cmd_show, launch_options

ENTRY_POINT = 'sseff.study.finite_size'


def _numbers(value: str, option: str, kind=float) -> list:
    try:
        return [kind(part) for part in value.split(',') if part.strip()]
    except ValueError as exception:
        raise click.BadParameter(f'`{value}` is not a comma-separated list of numbers', param_hint=option) from exception


def _replications(value: str) -> list:
    result = []
    for part in value.split(','):
        pieces = part.strip().lower().split('x')
        if len(pieces) != 3 or not all(p.isdigit() and int(p) >= 1 for p in pieces):
            raise click.BadParameter(f'`{part}` is not a replication n1xn2xn3 (e.g. 2x2x1)', param_hint='--cells')
        result.append([int(p) for p in pieces])
    return result


@cmd_launch.command('finite-size')
@click.argument('model')
@click.argument('structure')
@click.option('--code', 'code_label', default='sseff-engine@localhost', show_default=True,
              help='The diffusion MD code: the CPU engine or GPUMD (NEP only).')
@click.option('--cells', default=None, help='Comma-separated replications, e.g. 1x1x1,2x1x1,2x2x2 (default: the '
                                            'protocol\'s).')
@click.option('--min-widths', default=None, help='Comma-separated minimum cell widths (Å), instead of --cells.')
@click.option('--run-lengths', default=None, help='Comma-separated production run lengths (ps) (default: the '
                                                  'protocol\'s).')
@launch_options
def cmd_launch_finite_size(model, structure, code_label, cells, min_widths, run_lengths, protocol, overrides, daemon,
                           wait):
    """D(T) and Ea of MODEL (pk/uuid of a NEP or MACE model) in supercells of STRUCTURE and for several run
    lengths, and the smallest converged cell and shortest converged run (sseff.study.finite_size)."""
    from aiida_sseff.cli.cmd_launch import (
        DIFFUSION_PLUGINS,
        load_code_option,
        load_node_option,
        load_overrides,
        load_structure_file,
        report_end,
        run_builder,
    )
    from aiida_sseff.data.model import MaceModel, NepModel
    from aiida_sseff.protocols.utils import recursive_merge
    from aiida_sseff.workflows.finite_size import FiniteSizeStudyWorkChain

    if cells and min_widths:
        raise click.BadParameter('give --cells or --min-widths, not both', param_hint='--min-widths')
    extra = {}
    if cells:
        extra.update({'replications': _replications(cells), 'min_cell_widths': None})
    if min_widths:
        extra['min_cell_widths'] = _numbers(min_widths, '--min-widths')
    if run_lengths:
        extra['run_lengths_ps'] = _numbers(run_lengths, '--run-lengths')
    code = load_code_option(code_label, '--code', DIFFUSION_PLUGINS)
    model_node = load_node_option(model, 'MODEL', (NepModel, MaceModel))
    builder = FiniteSizeStudyWorkChain.get_builder_from_protocol(
        code, model_node, load_structure_file(structure), protocol=protocol,
        overrides=recursive_merge(load_overrides(overrides) or {}, extra) or None)
    node = run_builder(builder, 'finite-size study', daemon, wait)
    report_end(node, 'finite-size study')
    if node.is_finished_ok:
        click.echo(node.outputs.table['markdown'])


@cmd_show.command('finite-size')
@arguments.PROCESS()
def cmd_show_finite_size(process):
    """The finite-size table: per cell and run length D(T) ± σ and Ea ± σ; the converged cell and run length."""
    from aiida_sseff.cli.cmd_replicas import finished_study

    click.echo(finished_study(process, ENTRY_POINT).outputs.table['markdown'])


@cmd_plot.command('finite-size')
@arguments.PROCESS()
@click.option('-o', '--output', 'path', type=click.Path(dir_okay=False, path_type=Path), default=None,
              help='Image file (default finite-size-<pk>.png).')
def cmd_plot_finite_size(process, path):
    """Ea ± σ against the number of atoms, one series per run length, the converged cell marked."""
    from aiida_sseff.cli.cmd_replicas import finished_study
    from aiida_sseff.plots.finite_size import plot_finite_size

    node = finished_study(process, ENTRY_POINT)
    written = plot_finite_size(node.outputs.table.get_dict(), path=path or Path(f'finite-size-{node.pk}.png'))
    click.echo(f'Wrote {written}')
