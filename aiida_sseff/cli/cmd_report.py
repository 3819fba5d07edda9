"""``aiida-sseff report``: a self-contained HTML report of a finished process, rebuilt from the provenance graph
(the report itself is built in :mod:`aiida_sseff.report.render`; this module only writes the files)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from aiida.cmdline.params import arguments

from aiida_sseff.cli.root import cmd_root


@cmd_root.command('report')
@arguments.PROCESS()
@click.option('-o', '--output', 'output', type=click.Path(dir_okay=False, path_type=Path), default=None,
              help='HTML file (default: report-<uuid>.html).')
@click.option('--json', 'json_path', type=click.Path(dir_okay=False, path_type=Path), default=None,
              help='Also write the report\'s tables (all numbers as stored) to this JSON file, for comparisons.')
def cmd_report(process, output, json_path):
    """One HTML page (tables, figures, inputs, versions, provenance) of a finished workflow or calculation; a
    process that did not finish ok gets a "did not finish ok" banner, a running one is refused."""
    from aiida_sseff.report.render import ReportError, build_report, render_html, report_json

    try:
        report = build_report(process)
    except ReportError as exception:
        raise click.ClickException(str(exception)) from exception
    output = output or Path(f'report-{process.uuid}.html')
    try:
        output.write_text(render_html(report), encoding='utf-8')
        if json_path is not None:
            json_path.write_text(json.dumps(report_json(report), indent=1, sort_keys=True), encoding='utf-8')
    except OSError as exception:
        raise click.ClickException(f'cannot write the report: {exception}') from exception
    if report.banner:
        click.echo(f'Warning: {report.banner}')
    click.echo(f'Report of <{process.pk}> ({len(report.sections)} sections) written to {output.resolve()}')
    if json_path is not None:
        click.echo(f'Tables written to {json_path.resolve()}')
    click.echo(f'Open it in a browser: xdg-open {output}   (or file://{output.resolve()})')
