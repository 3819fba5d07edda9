"""``aiida-sseff setup``: a profile (or the user's own) with a localhost computer and the CPU engine codes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click

from aiida_sseff.cli.root import cmd_root

ENGINE_CODE_LABEL = 'sseff-engine'
NEPPO_CODE_LABEL = 'neppo'
CP2K_CODE_LABEL = 'cp2k'
MACE_CODE_LABEL = 'sseff-mace'
LAMMPS_CODE_LABEL = 'lammps'
# CP2K's OpenMP threads per job; several single points run side by side (sseff.label batch_size)
CP2K_PREPEND = 'export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}'
# One thread per engine job: several MD jobs run side by side on a small machine, and torch/OpenMP would otherwise
# start one thread per core in every job and oversubscribe it.
ENGINE_PREPEND = 'export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}\nexport MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}'


def _executable(name: str, hint: str) -> str:
    """A console script of this environment (beside the running Python), else from the PATH."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise click.ClickException(f'{name} is not on the PATH: {hint}')
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


def ensure_installed_code(computer, label: str, executable: str, plugin: str, description: str,
                          prepend_text: str = ''):
    """An InstalledCode ``label@computer`` for ``executable``; a code pointing elsewhere is renamed, not deleted."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

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
        default_calc_job_plugin=plugin,
        description=description,
        prepend_text=prepend_text,
    ).store()
    click.echo(f'Created code `{code.full_label}` -> {executable}')
    return code


def ensure_engine_code(computer, label: str = ENGINE_CODE_LABEL):
    executable = _executable('aiida-sseff-engine', 'install aiida-sseff first (pip install -e .)')
    return ensure_installed_code(computer, label, executable, 'sseff.engine.md',
                                 'aiida-sseff CPU engine: ASE MD and single points with CHGNet/NEP/MACE', ENGINE_PREPEND)


def _ensure_optional_code(computer, label: str, names: tuple[str, ...], hint: str, plugin: str, description: str,
                          prepend: str = ENGINE_PREPEND, needs_plugin: bool = False):
    """A code for the first of ``names`` found (this environment, then the PATH), or None with the reason printed
    when the program (or, with ``needs_plugin``, its AiiDA plugin) is not installed."""
    if needs_plugin:
        from aiida.common.exceptions import MissingEntryPointError
        from aiida.plugins import CalculationFactory

        try:
            CalculationFactory(plugin)
        except MissingEntryPointError:
            click.echo(f'Skipping the {label} code: the AiiDA plugin `{plugin}` is not installed ({hint})')
            return None
    for name in names:
        try:
            executable = _executable(name, hint)
        except click.ClickException:
            continue
        return ensure_installed_code(computer, label, executable, plugin, description, prepend)
    click.echo(f'Skipping the {label} code: none of {", ".join(names)} is on the PATH ({hint})')
    return None


def ensure_neppo_code(computer, label: str = NEPPO_CODE_LABEL):
    """``neppo`` (NEP training by gradient descent, CPU or GPU), when installed (the `neppo` extra)."""
    return _ensure_optional_code(computer, label, ('neppo',), "install the 'neppo' extra", 'sseff.nep.train',
                                 'neppo: NEP training with PyTorch (same files as GPUMD nep)')


def ensure_mace_code(computer, label: str = MACE_CODE_LABEL):
    """``aiida-sseff-mace`` (mace_run_train with the torch 2.13 e3nn fix), when mace-torch is installed."""
    try:
        import mace  # noqa: F401 - only whether it is installed
    except ImportError:
        click.echo("Skipping the sseff-mace code: mace-torch is not installed (the 'mace' extra)")
        return None
    return _ensure_optional_code(computer, label, ('aiida-sseff-mace',), 'install aiida-sseff first',
                                 'sseff.mace.train', 'mace_run_train (mace-torch) for sseff.mace.train')


def ensure_lammps_code(computer, label: str = LAMMPS_CODE_LABEL):
    """LAMMPS (``lmp``, Debian's package) for aiida-lammps' ``lammps.raw`` (the script our LammpsMdWorkChain writes): the classical baseline."""
    return _ensure_optional_code(computer, label, ('lmp', 'lmp_serial', 'lmp_mpi'),
                                 "install the 'lammps' extra and LAMMPS (Debian: apt install lammps)", 'lammps.raw',
                                 'LAMMPS: the classical Buckingham + Coulomb baseline', needs_plugin=True)


def find_cp2k() -> tuple[str | None, str]:
    """The CP2K program (cp2k.psmp, cp2k.ssmp or cp2k on the PATH) when its data files (GTH potentials, MOLOPT
    basis sets) are found too; otherwise None and the reason."""
    from aiida_sseff.io import cp2k as cp2k_io

    executable = shutil.which('cp2k.psmp') or shutil.which('cp2k.ssmp') or shutil.which('cp2k')
    if executable is None:
        return None, 'no cp2k.psmp, cp2k.ssmp or cp2k on the PATH (Debian: apt install cp2k cp2k-data)'
    try:
        cp2k_io.find_data_dir()
    except cp2k_io.Cp2kDataError as exception:
        return None, str(exception)
    return executable, ''


def ensure_cp2k_code(computer, label: str = CP2K_CODE_LABEL):
    """``cp2k@localhost`` (the CP2K labeller of sseff.label), when CP2K and its data are installed."""
    executable, reason = find_cp2k()
    if executable is None:
        click.echo(f'Skipping the cp2k code: {reason}')
        return None
    return ensure_installed_code(computer, label, executable, 'sseff.cp2k',
                                 'CP2K (Quickstep DFT): reference labels for sseff.label', CP2K_PREPEND)


@cmd_root.command('setup')
@click.option('--profile-name', default='sseff', show_default=True,
              help='Profile to create (SQLite + ZeroMQ, no services) or to reuse if it exists.')
@click.option('--email', default='user@aiida-sseff.local', show_default=True, help='Email of the default user.')
def cmd_setup(profile_name, email):
    """Create or reuse a profile, its localhost computer and the codes found here (engine, neppo, cp2k, MACE,
    LAMMPS). Idempotent."""
    profile = ensure_profile(profile_name, email)
    computer = ensure_localhost()
    codes = [code for code in (ensure_engine_code(computer), ensure_neppo_code(computer), ensure_cp2k_code(computer),
                               ensure_mace_code(computer), ensure_lammps_code(computer)) if code is not None]
    labels = ', '.join(f'`{code.full_label}`' for code in codes)
    click.echo(f'Ready: profile `{profile.name}`, computer `{computer.label}`, codes {labels}')
