"""``aiida-sseff launch speed``, ``show speed`` and ``plot speed``: the speed study (sseff.study.speed)."""

from __future__ import annotations

import re
from pathlib import Path

import click
from aiida.cmdline.params import arguments

from aiida_sseff.cli.root import cmd_launch, cmd_plot, cmd_show, finished_process, launch_options

ENTRY_POINT = 'sseff.study.speed'
_LABEL = re.compile(r'[A-Za-z][A-Za-z0-9_]*')


def _models(values: tuple[str, ...]) -> dict:
    """``{label: model}`` from ``--model`` values ``PK`` or ``LABEL=PK`` (default label: ``NEP_<pk>``/``MACE_<pk>``)."""
    from aiida_sseff.cli.cmd_launch import load_node_option
    from aiida_sseff.data.model import MaceModel, NepModel

    models = {}
    for value in values:
        label, _, identifier = value.rpartition('=')
        model = load_node_option(identifier, '--model', (NepModel, MaceModel))
        label = label or f'{"NEP" if isinstance(model, NepModel) else "MACE"}_{model.pk}'
        if not _LABEL.fullmatch(label) or '__' in label:
            raise click.BadParameter(f'`{label}` cannot be a label: letters, digits and single underscores, starting '
                                     'with a letter', param_hint='--model')
        if label in models:
            raise click.BadParameter(f'the label `{label}` is given twice', param_hint='--model')
        models[label] = model
    return models


def _sizes(text: str | None, option: str) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(item) for item in text.split(',') if item.strip()]
    except ValueError as exception:
        raise click.BadParameter(f'`{text}`: give comma-separated integers', param_hint=option) from exception


@cmd_launch.command('speed')
@click.argument('structure')
@click.option('--model', 'model_values', multiple=True, required=True,
              help='A NEP or MACE model as PK or LABEL=PK; repeat for several.')
@click.option('--engine-code', 'engine_code_label', default='sseff-engine@localhost', show_default=True,
              help='The CPU engine (aiida-sseff-engine md).')
@click.option('--gpumd-code', 'gpumd_code_label', default=None, help='A GPUMD code: the NEP models also run on it.')
@click.option('--atoms', 'target_atoms', default=None,
              help='Sizes as comma-separated atom counts (each becomes the nearest replication); default: the '
                   "protocol's replications.")
@click.option('--memory-limit-mb', type=float, default=None,
              help="Memory the largest cell must fit in (default: the engine computer's default_memory_per_machine).")
@launch_options
def cmd_launch_speed(structure, model_values, engine_code_label, gpumd_code_label, target_atoms, memory_limit_mb,
                     protocol, overrides, daemon, wait):
    """MD speed and peak memory of each model versus the number of atoms in replicas of STRUCTURE (sseff.study.speed)."""
    from aiida_sseff.cli.cmd_launch import (
        load_code_option,
        load_overrides,
        load_structure_file,
        report_end,
        run_builder,
    )
    from aiida_sseff.protocols.utils import recursive_merge
    from aiida_sseff.workflows.speed import SpeedStudyWorkChain

    engine_code = load_code_option(engine_code_label, '--engine-code', ('sseff.engine.md',))
    gpumd_code = load_code_option(gpumd_code_label, '--gpumd-code', ('sseff.gpumd',)) if gpumd_code_label else None
    models = _models(model_values)
    targets = _sizes(target_atoms, '--atoms')
    extra = {'replications': None, 'target_n_atoms': targets} if targets else {}
    builder = SpeedStudyWorkChain.get_builder_from_protocol(
        engine_code, load_structure_file(structure), models, gpumd_code=gpumd_code, protocol=protocol,
        overrides=recursive_merge(load_overrides(overrides) or {}, extra), memory_limit_mb=memory_limit_mb)
    node = run_builder(builder, 'speed study', daemon, wait)
    report_end(node, 'speed study')
    if 'table' in node.outputs:
        click.echo(speed_text(node.outputs.table.get_dict()))


def _finished_study(process):
    return finished_process(process, ENTRY_POINT)

def _number(value, spec: str) -> str:
    return '-' if value is None else format(value, spec)


def speed_text(table: dict) -> str:
    """The speed table as plain text: one line per run, then the largest cell per model and engine."""
    steps = table['n_extrapolated_steps']
    lines = [f'{"model":<16} {"engine":<7} {"atoms":>7} {"atom-steps/s":>13} {"peak MB":>9} '
             f'{f"wall {steps:.0e} steps":>18}  note']
    for row in table['rows']:
        wall = row['wall_time_extrapolated_s']
        lines.append(f'{row["model"]:<16} {row["engine"]:<7} {row["n_atoms"]:>7d} '
                     f'{_number(row["atom_steps_per_s"], ".4g"):>13} {_number(row["peak_memory_mb"], ".1f"):>9} '
                     f'{_number(None if wall is None else wall / 3600, ".3g") + " h":>18}  '
                     f'{row["reason"] or ""}')
    for entry in table.get('largest_cell') or []:
        found = (f'about {entry["max_n_atoms"]} atoms' if entry['max_n_atoms'] is not None
                 else f'unknown ({entry["reason"]})')
        lines.append(f'largest cell in {entry["limit_mb"]:g} MB, {entry["model"]} on {entry["engine"]}: {found} '
                     '(linear fit of peak memory vs atoms)')
    return '\n'.join(lines)


@cmd_show.command('speed')
@arguments.PROCESS()
def cmd_show_speed(process):
    """The speed table: atom-steps/s, peak memory and the extrapolated wall time per model, engine and size."""
    click.echo(speed_text(_finished_study(process).outputs.table.get_dict()))


@cmd_plot.command('speed')
@arguments.PROCESS()
@click.option('-o', '--output', 'folder', type=click.Path(file_okay=False, path_type=Path), default=Path('.'),
              show_default=True, help='Folder for the image.')
def cmd_plot_speed(process, folder):
    """Speed and peak memory versus atoms, log-log, per model and engine (the paper's Fig. 4)."""
    from aiida_sseff.plots.speed import plot_speed_study

    node = _finished_study(process)
    folder.mkdir(parents=True, exist_ok=True)
    path = plot_speed_study(node.outputs.table.get_dict(), path=folder / f'speed-{node.pk}.png')
    click.echo(f'Wrote {path}')
