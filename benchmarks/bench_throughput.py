"""Benchmark: work-chain throughput of the production profile (PostgreSQL + RabbitMQ, 2 daemon workers) against an
SQLite + ZeroMQ profile (``aiida-sseff setup``'s default, made here in a temporary AIIDA_PATH, 2 daemon workers) on
the same machine (issue #13, item 4).

The workload is tests/production/test_load.py's: N ``sseff.engine.md.base`` (a 20-step NVE EMT MD of a rattled
32-atom Cu cell each) submitted through aiida-submission-controller, at most ``--max-concurrent`` active, on the
profile's local ``core.direct`` computer; so the peers differ only in storage and broker. Each measurement runs in a
new process of its profile and times the span from the first submission until the last chain terminated (the inputs
are stored before); every chain must finish ok with the numbers its input implies (the test's checks). The peers
are interleaved round by round; throughput = N / span, in work chains per minute (each chain is 2 processes: itself
and its engine job). Both daemons stay up during the whole run (an idle daemon costs little).

    OMP_NUM_THREADS=1 python benchmarks/bench_throughput.py [--n 30] [--repeat 3] [--max-concurrent 20]

Do not run it under ``nice``: the SQLite profile's daemon, started by this script, would inherit the niceness while
the production daemon keeps its own. Needs the production profile of scripts/production/*.sh in this checkout's .aiida (``--production-aiida-path``);
without it the goals are recorded as not measured.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _harness import Report, Timing, add_arguments, load_text, machine_load  # noqa: E402

LOAD_TEST = ROOT / 'tests' / 'production' / 'test_load.py'
SQLITE_PROFILE = 'bench-sqlite-zeromq'
WORKERS = 2


def _load_workload():
    spec = importlib.util.spec_from_file_location('sseff_load_workload', LOAD_TEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(profile_name: str, n_chains: int, max_concurrent: int) -> dict:
    """In this process (its AIIDA_PATH): start the profile's daemon if needed, run the workload, check it."""
    from aiida import load_profile, orm

    from aiida_sseff.cli.cmd_launch import ensure_daemon
    from aiida_sseff.cli.cmd_setup import ensure_engine_code, ensure_localhost

    load_profile(profile_name, allow_switch=True)
    ensure_daemon(n_workers=WORKERS)  # for ZeroMQ it waits until the workers listen for tasks
    workload = _load_workload()
    code = ensure_engine_code(ensure_localhost())
    label = f'sseff-bench-throughput-{time.strftime("%Y%m%d-%H%M%S")}-{os.getpid()}'
    controller = workload.make_load_controller(code, n_chains, max_concurrent, label)
    submitted, seconds = workload.run_throttled(controller, timeout=3600)
    if sorted(submitted) != list(range(n_chains)):
        raise RuntimeError(f'{n_chains - len(submitted)} chains were not submitted')
    for index, pk in submitted.items():
        chain = orm.load_node(pk)
        workload.check_chain(chain, orm.load_node(controller.structure_uuids[index]))
    processes = n_chains + sum(len(orm.load_node(pk).called_descendants) for pk in submitted.values())
    return {'seconds': seconds, 'n_chains': n_chains, 'n_processes': processes}


def _run_measurement(env: dict, profile: str, args) -> dict:
    command = [sys.executable, __file__, '--measure', profile, '--n', str(args.n), '--max-concurrent',
               str(args.max_concurrent)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=4000, check=False)
    if result.returncode != 0:
        raise RuntimeError(f'measurement on {profile} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def _make_sqlite_profile(env: dict) -> None:
    setup = [str(Path(sys.executable).parent / 'aiida-sseff'), 'setup', '--profile-name', SQLITE_PROFILE]
    subprocess.run(setup, env=env, check=True, capture_output=True, text=True, timeout=600)
    verdi = str(Path(sys.executable).parent / 'verdi')
    # as profile.sh does for the production profile: circus answers slowly on a loaded machine
    subprocess.run([verdi, '-p', SQLITE_PROFILE, 'config', 'set', 'daemon.timeout', '60'], env=env, check=True,
                   capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument('--n', type=int, default=30, help='work chains per measurement (default 30)')
    parser.add_argument('--max-concurrent', type=int, default=20, help='active work chains at most (default 20)')
    parser.add_argument('--production-profile', default=os.environ.get('SSEFF_PROD_PROFILE', 'sseff-prod'))
    parser.add_argument('--production-aiida-path', type=Path, default=ROOT / '.aiida')
    parser.add_argument('--measure', metavar='PROFILE', help=argparse.SUPPRESS)  # internal: one measurement
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.n, args.max_concurrent)))
        return

    report = Report('bench_throughput.py')
    goal = f'production profile throughput >= SQLite + ZeroMQ (N = {args.n}, {args.max_concurrent} active)'
    config = args.production_aiida_path / 'config.json'
    if not config.is_file() or args.production_profile not in json.loads(config.read_text()).get('profiles', {}):
        report.goal(goal, 'ratio >= 1.0', f'no profile {args.production_profile} in {config}: run '
                    'scripts/production/*.sh', None)
        report.write(args.json)
        return

    base = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1'),
            'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))}
    base.pop('AIIDA_PROFILE', None)
    with tempfile.TemporaryDirectory(prefix='bench_throughput_') as tmp:
        envs = {'production (PostgreSQL + RabbitMQ)': (args.production_profile,
                                                       {**base, 'AIIDA_PATH': str(args.production_aiida_path)}),
                'SQLite + ZeroMQ': (SQLITE_PROFILE, {**base, 'AIIDA_PATH': tmp})}
        _make_sqlite_profile(envs['SQLite + ZeroMQ'][1])
        print(f'bench_throughput: {args.n} work chains per measurement, {args.max_concurrent} active at most, '
              f'{WORKERS} daemon workers each; {load_text()}', flush=True)
        timings = {name: Timing(name) for name in envs}
        before = machine_load()
        try:
            for round_index in range(args.repeat):
                for name, (profile, env) in envs.items():
                    result = _run_measurement(env, profile, args)
                    timings[name].seconds.append(result['seconds'])
                    timings[name].results.append(result)
                    print(f'round {round_index + 1} {name}: {result["seconds"]:.1f} s, '
                          f'{60 * args.n / result["seconds"]:.1f} work chains/min '
                          f'({60 * result["n_processes"] / result["seconds"]:.1f} processes/min); {load_text()}',
                          flush=True)
        finally:
            verdi = str(Path(sys.executable).parent / 'verdi')
            subprocess.run([verdi, '-p', SQLITE_PROFILE, 'daemon', 'stop'], env=envs['SQLite + ZeroMQ'][1],
                           capture_output=True, timeout=300, check=False)
        load = {'before': before, 'after': machine_load()}

    production, sqlite = timings.values()
    for timing in timings.values():
        rates = sorted(60 * args.n / s for s in timing.seconds)
        print(f'{timing.name}: {timing.text()} (min / median), {rates[-1]:.1f} / {statistics.median(rates):.1f} '
              'work chains/min (max / median)')
    # throughput ratio production / SQLite of each round = SQLite's span / production's span
    ratios = [b / a for a, b in zip(production.seconds, sqlite.seconds, strict=True)]
    measured = (f'{min(ratios):.2f} / {statistics.median(ratios):.2f} (min / median of the rounds); production '
                f'{60 * args.n / production.median:.1f}, SQLite + ZeroMQ {60 * args.n / sqlite.median:.1f} work '
                'chains/min (median)')
    report.goal(goal, 'ratio >= 1.0', measured, statistics.median(ratios) >= 1.0, load)
    print(f'load: {load_text(load["before"])} -> {load_text(load["after"])}')
    report.write(args.json)


if __name__ == '__main__':
    main()
