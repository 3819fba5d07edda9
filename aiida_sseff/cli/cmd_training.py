"""``aiida-sseff plot training``, ``show training`` (stored NEP trainings) and ``analyze nep-training`` (a nep/neppo
run directory, no database)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from aiida.cmdline.params import arguments

from aiida_sseff.cli.root import cmd_analyze, cmd_plot, cmd_show

_COLUMNS = (('energy_mev_per_atom', 'energy (meV/atom)'), ('force_mev_per_angstrom', 'force (meV/Å)'),
            ('virial_mev_per_atom', 'virial (meV/atom)'))


def _format(value) -> str:
    return f'{value:10.3f}' if isinstance(value, int | float) else f'{"-":>10}'


def summary_table(summary: dict) -> str:
    """Text table of :func:`aiida_sseff.io.nep.training_summary`: train/test rows, loss.out vs recomputed."""
    lines = [f'{"set":<6} {"source":<11}' + ''.join(f'{title:>20}' for _, title in _COLUMNS)]
    for label in ('train', 'test'):
        for source, key in (('loss.out', 'loss_out'), ('recomputed', 'recomputed')):
            values = (summary.get(key) or {}).get(label)
            if values is None:
                continue
            note = ''
            if key == 'recomputed' and (summary.get('virial_from') or {}).get(label) == 'stress_out':
                note = '  (virial from stress_*.out x V/N)'
            lines.append(f'{label:<6} {source:<11}' + ''.join(f'{_format(values.get(k)):>20}' for k, _ in _COLUMNS)
                         + note)
    return '\n'.join(lines)


# --------------------------------------------------------------------------------------------- run directories


def _plot_training(generation, columns, parity, path: Path, title: str) -> None:
    """:func:`aiida_sseff.plots.training.plot_training`, with a message naming ``path`` when it cannot be written."""
    from aiida_sseff.plots.training import plot_training

    try:
        plot_training(generation, columns, parity, path, title=title)
    except (OSError, ValueError) as exception:  # a missing folder; matplotlib's ValueError for an unknown suffix
        raise click.ClickException(f'cannot write the plot to `{path}` (expected a writable .png/.pdf/.svg file): '
                                   f'{exception}') from exception


def _parity_sets(outputs: dict) -> dict:
    return {label: {q: tuple(t) for q, t in outputs[label].items()} for label in ('train', 'test') if outputs[label]}


@cmd_analyze.command('nep-training')
@click.argument('directory', type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option('--program', type=click.Choice(['auto', 'nep', 'neppo']), default='auto', show_default=True,
              help='Which program wrote the directory (auto: neppo when nep_best.txt exists).')
@click.option('--json', 'as_json', is_flag=True, help='Print one JSON object instead of a table.')
@click.option('--plot', 'plot_file', type=click.Path(dir_okay=False, path_type=Path), default=None,
              help='Also write the loss curves and parity plots to this PNG file.')
def cmd_analyze_nep_training(directory, program, as_json, plot_file):
    """Final train/test RMSEs of a nep/neppo run DIRECTORY, as reported in loss.out and recomputed from
    *_train.out/*_test.out (energy meV/atom, force meV/Å, virial meV/atom)."""
    from aiida_sseff.io.nep import summarise_training_directory

    try:
        summary, outputs = summarise_training_directory(directory, program)
    except (FileNotFoundError, ValueError) as exception:
        raise click.ClickException(str(exception)) from exception
    if plot_file is not None:
        loss = outputs['loss']
        columns = {c: loss[c].to_numpy() for c in loss.columns} if loss is not None else None
        _plot_training(loss.index.to_numpy() if loss is not None else None, columns, _parity_sets(outputs),
                       plot_file, title=str(directory))
        summary['plot'] = str(plot_file)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    header = f'{directory}: program {summary["program"]}'
    if 'generation' in summary:
        header += f', loss.out: {summary["n_reports"]} reports up to generation {summary["generation"]}'
    click.echo(header)
    click.echo(summary_table(summary))
    if plot_file is not None:
        click.echo(f'Plot written to {plot_file}')


# ------------------------------------------------------------------------------------------------ stored nodes


def training_calcjob(node, replica: str | None = None):
    """The ``sseff.nep.train`` CalcJobNode behind ``node`` (:func:`aiida_sseff.report.stored.nep_training_calcjob`);
    a click error naming the node otherwise."""
    from aiida_sseff.report.stored import nep_training_calcjob

    try:
        return nep_training_calcjob(node, replica)
    except ValueError as exception:
        raise click.ClickException(str(exception)) from exception


@cmd_plot.command('training')
@arguments.PROCESS()
@click.option('-o', '--output', 'output', type=click.Path(dir_okay=False, path_type=Path), default=None,
              help='PNG file (default: training-<pk>.png).')
@click.option('--replica', default=None, help='Replica of a sseff.train.nep work chain (default: the best).')
def cmd_plot_training(process, output, replica):
    """Loss curves and parity plots of a NEP training (CalcJob, base or replica WorkChain)."""
    from aiida_sseff.report.stored import stored_parity

    calcjob = training_calcjob(process, replica)
    if 'loss' not in calcjob.outputs:
        raise click.ClickException(f'<{calcjob.pk}> has no loss output (exit status {calcjob.exit_status})')
    loss = calcjob.outputs.loss
    columns = {name: loss.get_array(name) for name in loss.get_arraynames() if name != 'generation'}
    output = output or Path(f'training-{process.pk}.png')
    _plot_training(loss.get_array('generation'), columns, stored_parity(calcjob), output,
                   title=f'NEP training <{calcjob.pk}>')
    click.echo(f'Plot of <{calcjob.pk}> written to {output}')


@cmd_show.command('training')
@arguments.PROCESS()
def cmd_show_training(process):
    """Final RMSEs of a NEP training; for sseff.train.nep, the held-out errors of every replica and their spread."""
    if process.process_type == 'aiida.workflows:sseff.train.nep':
        if not process.is_finished_ok:
            click.echo(f'<{process.pk}> did not finish ok: {process.exit_status} {process.exit_message}')
        if 'replicas' in process.outputs:
            click.echo(f'held-out errors (CPUNEP on the {process.outputs.test_dataset.n_structures} test-set '
                       f'structures; the best replica was chosen on the validation set):')
            click.echo(f'{"replica":<12}' + ''.join(f'{title:>20}' for _, title in _COLUMNS))
            for label in sorted(process.outputs.replicas):
                metrics = process.outputs.replicas[label].test_metrics.get_dict()
                click.echo(f'{label:<12}' + ''.join(f'{_format(metrics.get(k)):>20}' for k, _ in _COLUMNS))
        if 'summary' in process.outputs:
            summary = process.outputs.summary.get_dict()
            row = ''
            for key, _ in _COLUMNS:
                stats = summary.get(key)
                text = f"{stats['mean']:.2f} ± {stats['std']:.2f}" if stats else '-'
                row += f'{text:>20}'
            click.echo(f'{"mean ± std":<12}' + row)
            click.echo(f'best replica: {summary["best_replica"]} (model <{process.outputs.model.pk}>)')
        return
    calcjob = training_calcjob(process)
    click.echo(f'NEP training <{calcjob.pk}>: exit status {calcjob.exit_status}'
               + (f' ({calcjob.exit_message})' if calcjob.exit_message else ''))
    if 'results' not in calcjob.outputs:
        raise click.ClickException(f'<{calcjob.pk}> has no results output')
    summary = calcjob.outputs.results.get_dict()
    click.echo(f'program {summary.get("program")}, generation {summary.get("generation")} of '
               f'{summary.get("generation_requested")}')
    click.echo(summary_table(summary))
    if 'model' in calcjob.outputs:
        click.echo(f'model <{calcjob.outputs.model.pk}> ({", ".join(calcjob.outputs.model.elements)})')
