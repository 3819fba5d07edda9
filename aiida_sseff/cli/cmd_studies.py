"""``aiida-sseff show architectures`` and ``aiida-sseff plot architectures``: the architecture study's table and
figures, from the stored nodes alone."""

from __future__ import annotations

from pathlib import Path

import click
from aiida.cmdline.params import arguments

from aiida_sseff.cli.root import cmd_plot, cmd_show


def _finished_study(process):
    if process.process_type != 'aiida.workflows:sseff.study.architectures':
        raise click.BadParameter(f'<{process.pk}> is a {process.process_label}, not an sseff.study.architectures',
                                 param_hint='PROCESS')
    if 'table' not in process.outputs:
        raise click.ClickException(f'<{process.pk}> has no table yet: {process.process_state.value} '
                                   f'{process.exit_status or ""} {process.exit_message or ""}')
    return process


@cmd_show.command('architectures')
@arguments.PROCESS()
def cmd_show_architectures(process):
    """The architecture comparison table: RMSE (relative to the reference), Ea, ΔEa, D, cost."""
    click.echo(_finished_study(process).outputs.table['markdown'])


@cmd_plot.command('architectures')
@arguments.PROCESS()
@click.option('-o', '--output', 'folder', type=click.Path(file_okay=False, path_type=Path), default=Path('.'),
              show_default=True, help='Folder for the two images.')
def cmd_plot_architectures(process, folder):
    """Relative RMSE bars with the Arrhenius plots side by side (the paper's Fig. 3) and MD speed vs atoms (Fig. 4)."""
    from aiida_sseff.cli.plots import plot_architecture_study

    for path in plot_architecture_study(_finished_study(process), folder):
        click.echo(f'Wrote {path}')
