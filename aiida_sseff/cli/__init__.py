"""``aiida-sseff``: set up a profile, launch, inspect and export the workflows of aiida-sseff."""

from __future__ import annotations

import click
from aiida.cmdline.groups import VerdiCommandGroup
from aiida.cmdline.params import options, types


@click.group('aiida-sseff', cls=VerdiCommandGroup, context_settings={'help_option_names': ['-h', '--help']})
@options.VERBOSITY()
@options.PROFILE(type=types.ProfileParamType(load_profile=True), expose_value=False)
def cmd_root():
    """aiida-sseff: machine-learning force fields for solid-state electrolytes, with provenance."""


# Sub-commands register themselves on import.
from aiida_sseff.cli import (  # noqa: E402, F401
    cmd_analyze,
    cmd_launch,
    cmd_sample,
    cmd_setup,
    cmd_show,
    cmd_training,
    cmd_transport,
)
