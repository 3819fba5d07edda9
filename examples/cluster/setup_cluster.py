"""A Slurm GPU cluster for aiida-sseff: the computer (SSH + Slurm) and the codes GPUMD (``gpumd``, ``nep``), VASP
(``vasp_std``, optionally ``vasp_gam``), neppo, MACE (``aiida-sseff-mace``) and the CPU engine.

The same set-up as ``docs/user/hpc.md`` (whose YAML files do it with ``verdi``), from Python. Every path is an
argument; nothing is guessed. ``--dry-run`` builds every computer and code without storing them and checks them:
the transport and scheduler plugins load, the SSH settings are ones ``core.ssh`` accepts, every code's plugin is
installed and every executable path is absolute. Without ``--profile`` a dry run uses an in-memory profile, so it
runs anywhere::

    python examples/cluster/setup_cluster.py --dry-run --hostname login.cluster.example.org --username jdoe \\
        --key-filename ~/.ssh/id_ed25519 --work-dir '/scratch/{username}/aiida' \\
        --gpumd-dir /opt/gpumd/5.6/src --gpumd-version 5.6 --vasp-dir /opt/vasp/6.4/bin \\
        --sseff-bin /home/jdoe/venvs/sseff/bin --cuda-module cuda/12.4

Without ``--dry-run`` it stores them in ``--profile`` (a computer or code that exists with the same label is kept,
not changed) and prints what to run next (``verdi computer test``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import PurePosixPath


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--profile', help='AiiDA profile to store into (default: the default profile; dry run: an '
                                          'in-memory one)')
    parser.add_argument('--label', default='gpu-cluster', help='label of the computer (default: %(default)s)')
    parser.add_argument('--hostname', required=True, help='login node, e.g. login.cluster.example.org')
    parser.add_argument('--username', required=True, help='your user name on the cluster')
    parser.add_argument('--key-filename', help='private SSH key (default: the keys ssh finds itself)')
    parser.add_argument('--port', type=int, default=22)
    parser.add_argument('--work-dir', default='/scratch/{username}/aiida',
                        help='AiiDA work directory on the cluster ({username} is replaced; default: %(default)s)')
    parser.add_argument('--mpiprocs-per-machine', type=int, default=64, help='cores of a CPU node (default: 64)')
    parser.add_argument('--mpirun-command', default='srun -n {tot_num_mpiprocs}')
    parser.add_argument('--gpumd-dir', help='folder with the GPUMD executables `gpumd` and `nep`')
    parser.add_argument('--gpumd-version', default='5.6',
                        help="GPUMD version for run.in ('X.Y', 'X.Y.Z' or 'dev'; default %(default)s), stored as the "
                             'gpumd code\'s extra `gpumd_version`')
    parser.add_argument('--vasp-dir', help='folder with `vasp_std` (and `vasp_gam`, see --vasp-gam)')
    parser.add_argument('--vasp-gam', action='store_true', help='also a code for `vasp_gam` (Γ-only labelling)')
    parser.add_argument('--vasp-module', default='', help='module line for VASP, e.g. intel-oneapi-mpi')
    parser.add_argument('--sseff-bin', help='bin folder of the aiida-sseff environment on the cluster '
                                            '(aiida-sseff-engine, neppo, aiida-sseff-mace)')
    parser.add_argument('--cuda-module', default='', help='module of CUDA for the GPU codes, e.g. cuda/12.4')
    parser.add_argument('--dry-run', action='store_true', help='build and check everything, store nothing')
    args = parser.parse_args(argv)
    if not (args.gpumd_dir or args.vasp_dir or args.sseff_bin):
        parser.error('no code to set up: give --gpumd-dir, --vasp-dir and/or --sseff-bin')
    return args


def computer_settings(args) -> dict:
    """The arguments of ``orm.Computer`` (the keys of ``verdi computer setup --config``, under their API names)."""
    return {
        'label': args.label,
        'hostname': args.hostname,
        'description': 'Slurm cluster with CPU and GPU partitions (examples/cluster/setup_cluster.py)',
        'transport_type': 'core.ssh',
        'scheduler_type': 'core.slurm',
        'workdir': args.work_dir,
    }


def ssh_settings(args) -> dict:
    """The ``core.ssh`` authentication settings (``verdi computer configure core.ssh``)."""
    settings = {'username': args.username, 'port': args.port, 'look_for_keys': True, 'allow_agent': True,
                'timeout': 60, 'compress': True, 'load_system_host_keys': True, 'key_policy': 'RejectPolicy',
                'safe_interval': 10.0}
    if args.key_filename:
        settings['key_filename'] = args.key_filename
    return settings


def _module(name: str) -> str:
    return f'module load {name}' if name else ''


def code_settings(args) -> list[dict]:
    """One dict per code: label, plugin, executable, prepend text, extras."""
    engine_threads = 'export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}\nexport MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}'
    codes = []
    if args.gpumd_dir:
        gpumd = PurePosixPath(args.gpumd_dir)
        codes += [
            {'label': 'gpumd', 'plugin': 'sseff.gpumd', 'executable': gpumd / 'gpumd', 'prepend': _module(args.cuda_module),
             'extras': {'gpumd_version': args.gpumd_version}, 'description': f'GPUMD {args.gpumd_version} gpumd'},
            {'label': 'nep', 'plugin': 'sseff.nep.train', 'executable': gpumd / 'nep',
             'prepend': _module(args.cuda_module), 'extras': {'nep_program': 'nep'},
             'description': f'GPUMD {args.gpumd_version} nep (SNES training on a GPU)'},
        ]
    if args.vasp_dir:
        vasp = PurePosixPath(args.vasp_dir)
        codes.append({'label': 'vasp-std', 'plugin': 'vasp.vasp', 'executable': vasp / 'vasp_std', 'mpi': True,
                      'prepend': _module(args.vasp_module), 'description': 'VASP vasp_std (any k-mesh)'})
        if args.vasp_gam:
            codes.append({'label': 'vasp-gam', 'plugin': 'vasp.vasp', 'executable': vasp / 'vasp_gam', 'mpi': True,
                          'prepend': _module(args.vasp_module), 'description': 'VASP vasp_gam (Γ-only meshes only)'})
    if args.sseff_bin:
        sseff = PurePosixPath(args.sseff_bin)
        codes += [
            {'label': 'sseff-engine', 'plugin': 'sseff.engine.md', 'executable': sseff / 'aiida-sseff-engine',
             'prepend': engine_threads, 'description': 'aiida-sseff CPU engine (ASE MD, single points)'},
            {'label': 'neppo', 'plugin': 'sseff.nep.train', 'executable': sseff / 'neppo',
             'prepend': _module(args.cuda_module), 'extras': {'nep_program': 'neppo'},
             'description': 'neppo (NEP training by gradient descent; device cpu or cuda)'},
            {'label': 'sseff-mace', 'plugin': 'sseff.mace.train', 'executable': sseff / 'aiida-sseff-mace',
             'prepend': _module(args.cuda_module), 'description': 'mace_run_train through aiida-sseff-mace'},
        ]
    return codes


def load_profile_for(args):
    """``--profile`` (or the default); a dry run without a profile gets an in-memory one, so nothing is stored."""
    from aiida import load_profile
    from aiida.manage import get_manager

    if get_manager().get_profile() is not None and args.profile is None:
        return get_manager().get_profile()  # already loaded (e.g. by `verdi run` or a test)
    if args.dry_run and args.profile is None:
        from aiida.storage.sqlite_temp import SqliteTempBackend

        return load_profile(SqliteTempBackend.create_profile('sseff-cluster-dry-run'), allow_switch=True)
    return load_profile(args.profile, allow_switch=True)


def build(args):
    """The unstored computer, its SSH settings and the unstored codes, each checked; ValueError names a problem."""
    from aiida import orm
    from aiida.common.exceptions import MissingEntryPointError, ValidationError
    from aiida.plugins import CalculationFactory

    computer = orm.Computer(**computer_settings(args))
    computer.set_mpirun_command(args.mpirun_command.split())
    computer.set_default_mpiprocs_per_machine(args.mpiprocs_per_machine)
    computer.set_shebang('#!/bin/bash')
    try:
        computer.validate()
        transport = computer.get_transport_class()
        computer.get_scheduler()
    except (ValidationError, MissingEntryPointError) as exception:
        raise ValueError(f'computer `{args.label}`: {exception}') from exception
    if args.gpumd_dir:
        from aiida_sseff.io.gpumd import parse_gpumd_version

        parse_gpumd_version(args.gpumd_version)  # ValueError naming the expected form
    auth = ssh_settings(args)
    unknown = sorted(set(auth) - set(transport.get_valid_auth_params()))
    if unknown:
        raise ValueError(f'core.ssh does not accept the setting(s) {unknown}')
    codes = []
    for settings in code_settings(args):
        if not settings['executable'].is_absolute():
            raise ValueError(f"code `{settings['label']}`: {settings['executable']} is not an absolute path")
        try:
            CalculationFactory(settings['plugin'])
        except MissingEntryPointError as exception:
            raise ValueError(f"code `{settings['label']}` needs the plugin `{settings['plugin']}`, not installed here: "
                             "pip install 'aiida-sseff[vasp]' for vasp.vasp") from exception
        code = orm.InstalledCode(label=settings['label'], computer=computer,
                                 filepath_executable=str(settings['executable']),
                                 default_calc_job_plugin=settings['plugin'], description=settings['description'],
                                 prepend_text=settings.get('prepend', ''), with_mpi=settings.get('mpi', False))
        codes.append((code, settings.get('extras', {})))
    return computer, auth, codes


def store(computer, auth, codes) -> None:
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        existing = orm.load_computer(computer.label)
    except NotExistent:
        existing = None
    if existing is not None and existing.hostname != computer.hostname:
        raise ValueError(f'a computer `{computer.label}` exists for {existing.hostname}: choose another --label')
    if existing is None:
        computer.store()
        print(f'Stored computer `{computer.label}` ({computer.hostname}, core.ssh + core.slurm)')
    else:
        computer = existing
        print(f'Computer `{computer.label}` exists: kept as it is')
    if not computer.is_configured:
        computer.configure(**auth)
        print(f'Configured `{computer.label}` for {auth["username"]}')
    for code, extras in codes:
        try:
            found = orm.load_code(f'{code.label}@{computer.label}')
            print(f'Code `{found.full_label}` exists: kept as it is')
            continue
        except NotExistent:
            pass
        code.computer = computer
        code.store()
        for key, value in extras.items():
            code.base.extras.set(key, value)
        print(f'Stored code `{code.full_label}` -> {code.filepath_executable}')
    print(f'Next: verdi computer test {computer.label}')


def main(argv=None) -> int:
    args = parse_args(argv)
    load_profile_for(args)
    try:
        computer, auth, codes = build(args)
    except ValueError as exception:
        print(f'Error: {exception}', file=sys.stderr)
        return 1
    if args.dry_run:
        print(f'Dry run, nothing stored. Computer `{computer.label}`: {computer.hostname}, core.ssh as '
              f'{auth["username"]}, core.slurm, work directory {computer.get_workdir()}')
        for code, extras in codes:
            print(f'  code `{code.label}`: {code.default_calc_job_plugin} -> {code.filepath_executable}'
                  + (f' (extras {extras})' if extras else ''))
        return 0
    try:
        store(computer, auth, codes)
    except ValueError as exception:
        print(f'Error: {exception}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
