"""``aiida-sseff show architectures`` and ``aiida-sseff plot architectures``: the architecture study's table and
figures, from the stored nodes alone."""

from __future__ import annotations

from pathlib import Path

import click
from aiida.cmdline.params import arguments

from aiida_sseff.cli.root import cmd_plot, cmd_show, finished_process


def _finished_study(process):
    return finished_process(process, 'sseff.study.architectures')

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
