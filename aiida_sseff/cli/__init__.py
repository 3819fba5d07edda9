"""``aiida-sseff``: set up a profile, launch, inspect and export the workflows of aiida-sseff.

The root command and its groups live in :mod:`aiida_sseff.cli.root`; this package only imports the modules whose
commands register on them.
"""

from __future__ import annotations

# first, so that ``aiida_sseff.cli.cmd_root`` exists before any command module is imported
from aiida_sseff.cli.root import cmd_root

# isort: split
from aiida_sseff.cli import (  # noqa: F401  (imported for their commands)
    cmd_dataset_size,
    cmd_finite_size,
    cmd_launch,
    cmd_loop,
    cmd_replicas,
    cmd_report,
    cmd_sample,
    cmd_setup,
    cmd_show,
    cmd_speed,
    cmd_studies,
    cmd_training,
    cmd_transport,
)

__all__ = ('cmd_root',)
