"""``aiida-sseff show process|pipeline`` and ``aiida-sseff export`` (the ``show`` group is in :mod:`.root`)."""

from __future__ import annotations

from pathlib import Path

import click
from aiida.cmdline.params import arguments

from aiida_sseff.cli.root import cmd_root, cmd_show


@cmd_show.command('process')
@arguments.PROCESS()
def cmd_show_process(process):
    """Call graph and exit status of any process."""
    from aiida.cmdline.utils.ascii_vis import format_call_graph

    click.echo(format_call_graph(process))
    if not process.is_finished_ok:
        click.echo(f'exit status {process.exit_status}: {process.exit_message}')


@cmd_show.command('pipeline')
@arguments.PROCESS()
def cmd_show_pipeline(process):
    """The main job: MD runs, candidates, labelled dataset."""
    from aiida.cmdline.utils.ascii_vis import format_call_graph

    from aiida_sseff.cli.cmd_launch import pipeline_summary

    click.echo(format_call_graph(process))
    if not process.is_finished_ok:
        raise click.ClickException(f'<{process.pk}> did not finish ok: {process.exit_status} {process.exit_message}')
    for key, value in pipeline_summary(process).items():
        click.echo(f'{key}: {value}')


@cmd_root.command('export')
@arguments.PROCESS()
@click.argument('filename', type=click.Path(dir_okay=False))
def cmd_export(process, filename):
    """Export a workflow with its whole provenance as a `verdi archive` file."""
    from aiida_sseff.cli.cmd_launch import export_archive

    path = export_archive(process, Path(filename))
    click.echo(f'Exported <{process.pk}> to {path}')
