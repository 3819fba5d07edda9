"""``aiida-sseff show`` and ``aiida-sseff export``."""

from __future__ import annotations

from pathlib import Path

import click
from aiida.cmdline.params import arguments

from aiida_sseff.cli import cmd_root


@cmd_root.command('show')
@arguments.PROCESS()
def cmd_show(process):
    """Summarise a finished aiida-sseff workflow."""
    from aiida.cmdline.utils.ascii_vis import format_call_graph

    click.echo(format_call_graph(process))
    if process.process_label == 'SseffPipelineWorkChain' and process.is_finished_ok:
        from aiida_sseff.cli.cmd_launch import pipeline_summary

        for key, value in pipeline_summary(process).items():
            click.echo(f'{key}: {value}')
    elif not process.is_finished_ok:
        click.echo(f'exit status {process.exit_status}: {process.exit_message}')


@cmd_root.command('export')
@arguments.PROCESS()
@click.argument('filename', type=click.Path(dir_okay=False))
def cmd_export(process, filename):
    """Export a workflow with its whole provenance as a `verdi archive` file."""
    from aiida_sseff.cli.cmd_launch import export_archive

    path = export_archive(process, Path(filename))
    click.echo(f'Exported <{process.pk}> to {path}')
