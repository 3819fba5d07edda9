"""``aiida-sseff``: set up a profile, launch, inspect and export the workflows of aiida-sseff.

The root command and its groups live in :mod:`aiida_sseff.cli.root`; this package only imports the modules whose
commands register on them.
"""

from __future__ import annotations

from aiida_sseff.cli import (  # noqa: F401  (imported for their commands)
    cmd_launch,
    cmd_sample,
    cmd_setup,
    cmd_show,
    cmd_training,
    cmd_transport,
)
from aiida_sseff.cli.root import cmd_root

__all__ = ('cmd_root',)
