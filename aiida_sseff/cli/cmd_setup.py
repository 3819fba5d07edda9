"""``aiida-sseff setup``: a profile (or the user's own) with a localhost computer and the CPU engine codes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click

from aiida_sseff.cli import cmd_root

ENGINE_CODE_LABEL = 'sseff-engine'
# One thread per engine job: several MD jobs run side by side on a small machine, and torch/OpenMP would otherwise
# start one thread per core in every job and oversubscribe it.
ENGINE_PREPEND = 'export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}\nexport MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}'


def _engine_executable() -> str:
    candidate = Path(sys.executable).parent / 'aiida-sseff-engine'
    found = str(candidate) if candidate.exists() else shutil.which('aiida-sseff-engine')
    if not found:
        raise click.ClickException('aiida-sseff-engine is not on the PATH: install aiida-sseff first (pip install -e .)')
    return found


def ensure_profile(name: str, email: str):
    """Load profile ``name``, creating it `verdi presto` style (SQLite + ZeroMQ broker) if it does not exist."""
    from aiida import load_profile
    from aiida.manage.configuration import get_config

    config = get_config(create=True)
    if name not in config.profile_names:
        click.echo(f'Creating profile `{name}` (core.sqlite_dos storage, core.zeromq broker) in {config.dirpath}')
        command = [sys.executable, '-m', 'aiida', 'presto', '--use-zeromq', '--profile-name', name,
                   '--email', email, '--non-interactive']
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise click.ClickException(f'`verdi presto` failed:\n{result.stdout}\n{result.stderr}')
        from aiida.manage.configuration import reset_config

        reset_config()
    else:
        click.echo(f'Profile `{name}` exists')
    return load_profile(name, allow_switch=True)


def ensure_localhost():
    """The ``localhost`` computer (core.local transport, core.direct scheduler), configured."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        computer = orm.load_computer('localhost')
    except NotExistent:
        import tempfile

        workdir = Path(tempfile.gettempdir()) / 'aiida-sseff-work'
        computer = orm.Computer(
            label='localhost',
            hostname='localhost',
            description='This machine (created by aiida-sseff setup)',
            transport_type='core.local',
            scheduler_type='core.direct',
            workdir=str(workdir),
        ).store()
        computer.set_minimum_job_poll_interval(0.0)
        computer.set_default_mpiprocs_per_machine(1)
        click.echo(f'Created computer `localhost` (work directory {workdir})')
    if not computer.is_configured:
        computer.configure(safe_interval=0.0)
    return computer


def ensure_engine_code(computer, label: str = ENGINE_CODE_LABEL):
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    executable = _engine_executable()
    try:
        code = orm.load_code(f'{label}@{computer.label}')
    except (NotExistent, MultipleObjectsError):
        code = None
    if code is not None and str(code.filepath_executable) == executable:
        return code
    if code is not None:
        # The environment moved (a new .venv): keep the old code for provenance, make a new one under the label.
        code.label = f'{label}-old-{code.pk}'
    code = orm.InstalledCode(
        label=label,
        computer=computer,
        filepath_executable=executable,
        default_calc_job_plugin='sseff.engine.md',
        description='aiida-sseff CPU engine: ASE MD and single points with CHGNet/NEP/MACE',
        prepend_text=ENGINE_PREPEND,
    ).store()
    click.echo(f'Created code `{code.full_label}` -> {executable}')
    return code


@cmd_root.command('setup')
@click.option('--profile-name', default='sseff', show_default=True,
              help='Profile to create (SQLite + ZeroMQ, no services) or to reuse if it exists.')
@click.option('--email', default='user@aiida-sseff.local', show_default=True, help='Email of the default user.')
def cmd_setup(profile_name, email):
    """Create or reuse a profile, its localhost computer and the engine code. Idempotent."""
    profile = ensure_profile(profile_name, email)
    computer = ensure_localhost()
    code = ensure_engine_code(computer)
    click.echo(f'Ready: profile `{profile.name}`, computer `{computer.label}`, code `{code.full_label}`')
