"""The ``aiida-sseff`` root command and its command groups, in one module that imports nothing of aiida-sseff.

Every ``cmd_*`` module adds its commands to these groups (``from aiida_sseff.cli.root import cmd_root, cmd_show``);
:mod:`aiida_sseff.cli` imports the ``cmd_*`` modules so that they register. No module of the CLI imports another
``cmd_*`` module for its group, so there is no import cycle (``tests/cli/test_cli_docs.py`` imports each alone).
"""

from __future__ import annotations

import click
from aiida.cmdline.groups import VerdiCommandGroup
from aiida.cmdline.params import options, types

__all__ = ('cmd_analyze', 'cmd_launch', 'cmd_plot', 'cmd_root', 'cmd_sample', 'cmd_show', 'finished_process', 'launch_options')


@click.group('aiida-sseff', cls=VerdiCommandGroup, context_settings={'help_option_names': ['-h', '--help']})
@options.VERBOSITY()
@options.PROFILE(type=types.ProfileParamType(load_profile=True), expose_value=False)
def cmd_root():
    """aiida-sseff: machine-learning force fields for solid-state electrolytes, with provenance."""


@cmd_root.group('launch')
def cmd_launch():
    """Launch a workflow (use --help on each)."""


@cmd_root.group('show')
def cmd_show():
    """Summarise a finished workflow (use --help on each)."""


@cmd_root.group('analyze')
def cmd_analyze():
    """Analyse GPUMD / nep / neppo output files directly, without a profile (use --help on each)."""


@cmd_root.group('plot')
def cmd_plot():
    """Plot stored results (use --help on each)."""


@cmd_root.group('sample')
def cmd_sample():
    """Select structures by farthest-point sampling (files in, files out; no profile needed)."""


def launch_options(function):
    """``--protocol``, ``--overrides``, ``--daemon/--no-daemon``, ``--wait/--no-wait`` of a ``launch`` command (the
    options of ``cmd_launch._common_options``; here so that a command module, which may import only this module at
    module level, can decorate with them)."""
    for decorator in reversed((
        click.option('--protocol', type=click.Choice(['fast', 'balanced', 'stringent']), default='fast',
                     show_default=True),
        click.option('--overrides', type=click.Path(exists=True, dir_okay=False),
                     help='YAML file merged into the protocol.'),
        click.option('--daemon/--no-daemon', default=True, show_default=True, help='Submit to the daemon or run here.'),
        click.option('--wait/--no-wait', default=True, show_default=True, help='With --daemon: wait for the end.'),
    )):
        function = decorator(function)
    return function


def finished_process(process, entry_point: str, output: str = 'table'):
    """``process`` if it is a ``entry_point`` WorkChain with the output ``output``; otherwise a click error that says
    what it is instead, or in which state it is (for the ``show``/``plot`` commands of every study)."""
    if process.process_type != f'aiida.workflows:{entry_point}':
        raise click.BadParameter(f'<{process.pk}> is a {process.process_label}, not an {entry_point}',
                                 param_hint='PROCESS')
    if output not in process.outputs:
        state = process.process_state.value if process.process_state else 'created'
        raise click.ClickException(f'<{process.pk}> has no {output} yet: {state} {process.exit_status or ""} '
                                   f'{process.exit_message or ""}'.rstrip())
    return process

