"""The remote computer of the production profile: ``loopback`` (core.ssh to 127.0.0.1), its scheduler core.slurm when
the single-node Slurm of start.sh answers, else core.direct over the same SSH; and ``sseff-engine@loopback``.

Idempotent. The private key stays a file (its path is in the computer's AuthInfo, which archives leave out); no node
holds it. Run by scripts/production/profile.sh.
"""

from __future__ import annotations

import argparse
import getpass
import shutil
import subprocess
from pathlib import Path

COMPUTER_LABEL = 'loopback'


def slurm_answers() -> tuple[bool, str]:
    """Whether slurmctld answers and a node is up, and why not."""
    if shutil.which('scontrol') is None or shutil.which('sinfo') is None:
        return False, 'the Slurm commands are not installed'
    ping = subprocess.run(['scontrol', 'ping'], capture_output=True, text=True, check=False)
    if ' is UP' not in ping.stdout:
        return False, f'slurmctld does not answer: {ping.stdout.strip() or ping.stderr.strip()}'
    states = subprocess.run(['sinfo', '-h', '-o', '%T'], capture_output=True, text=True, check=False).stdout.split()
    if not {'idle', 'mixed', 'allocated'} & set(states):
        return False, f'no Slurm node is up (states: {", ".join(states) or "none"})'
    return True, ''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--profile', required=True)
    parser.add_argument('--key', required=True, type=Path, help='private key of the SSH login to 127.0.0.1')
    parser.add_argument('--port', type=int, default=22)
    parser.add_argument('--work-dir', required=True, type=Path)
    args = parser.parse_args()

    from aiida import load_profile, orm
    from aiida.common.exceptions import NotExistent

    from aiida_sseff.cli.cmd_setup import ENGINE_PREPEND, _executable, ensure_installed_code

    load_profile(args.profile)
    use_slurm, why_not = slurm_answers()
    scheduler = 'core.slurm' if use_slurm else 'core.direct'
    if not use_slurm:
        print(f'[computer] Slurm is not usable ({why_not}): scheduler core.direct over SSH')
    try:
        computer = orm.load_computer(COMPUTER_LABEL)
    except NotExistent:
        computer = None
    if computer is not None and computer.scheduler_type != scheduler:
        # a computer's scheduler cannot be changed once it ran jobs: keep the old one for provenance
        computer.label = f'{COMPUTER_LABEL}-{computer.scheduler_type.split(".")[-1]}-{computer.pk}'
        computer = None
    if computer is None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        computer = orm.Computer(
            label=COMPUTER_LABEL,
            hostname='127.0.0.1',
            description=f'This machine over SSH, {scheduler} (aiida-sseff production profile)',
            transport_type='core.ssh',
            scheduler_type=scheduler,
            workdir=str(args.work_dir),
        ).store()
        computer.set_default_mpiprocs_per_machine(1)
        print(f'[computer] created `{COMPUTER_LABEL}` (core.ssh, {scheduler}, work directory {args.work_dir})')
    # squeue once a second at most: the tests wait for short jobs (a cluster would keep the 10 s default)
    computer.set_minimum_job_poll_interval(1.0)
    computer.configure(
        username=getpass.getuser(),
        port=args.port,
        look_for_keys=False,
        key_filename=str(args.key.resolve()),
        allow_agent=False,
        key_policy='RejectPolicy',  # the host key was recorded in known_hosts by profile.sh
        load_system_host_keys=True,
        timeout=30,
        safe_interval=0.5,
        use_login_shell=False,
    )
    code = ensure_installed_code(
        computer, 'sseff-engine', _executable('aiida-sseff-engine', 'install aiida-sseff first (pip install -e .)'),
        'sseff.engine.md', 'aiida-sseff CPU engine on the loopback computer', ENGINE_PREPEND,
    )
    print(f'[computer] ready: `{code.full_label}` on {computer.label} ({computer.scheduler_type})')


if __name__ == '__main__':
    main()
