"""Run the harness benchmarks one after another and print one table of their goals (issue #14).

Each script is run as ``python SCRIPT --repeat N --json FILE [its quick arguments]``; the table lists every goal the
scripts recorded: target, measured value (min / median of the repeats where it is a time), met or not, and the load
average when the measurement ended. A script that fails is listed with its exit code and the end of its output.

    OMP_NUM_THREADS=1 python benchmarks/run_all.py [--quick] [--repeat 3] [--only engine fps]

``--quick`` uses smaller inputs (and skips neppo's 5-minute convergence runs; bench_architectures trains each model
once): the ratios are noisier, the goals the same. Run it on a machine as idle as you can get, and read the load column: on a shared 2-core machine at load 20
every wall time is several times longer, and only the ratios of peers measured in the same round mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import load_text  # noqa: E402

#: script -> (arguments of a full run, arguments of a quick run)
SCRIPTS = {
    'engine': ('bench_engine.py', [], ['--steps', '150', '--program-steps', '10']),
    'descriptors': ('bench_descriptors.py', [], ['--copies', '3']),
    'fps': ('bench_fps.py', [], ['--no-synthetic', '--frames', '150']),
    'neppo': ('bench_neppo.py', [], ['--skip-convergence']),
    'msd': ('bench_msd.py', [], ['--quick']),
    'lammps': ('bench_lammps.py', [], ['--quick']),
    'locality': ('bench_locality.py', [], ['--quick']),
    'architectures': ('bench_architectures.py', [], ['--quick']),
    'threads': ('bench_threads.py', [], ['--quick']),
    # needs the production profile (scripts/production/); without it its goal is recorded as not measured
    'throughput': ('bench_throughput.py', [], ['--n', '10']),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='smaller inputs, no neppo convergence runs')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--only', nargs='+', choices=sorted(SCRIPTS), default=sorted(SCRIPTS))
    parser.add_argument('--timeout', type=float, default=3600, help='seconds allowed to each script')
    args = parser.parse_args()
    environment = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}
    print(f'run_all: {", ".join(args.only)}; {load_text()}; OMP_NUM_THREADS={environment["OMP_NUM_THREADS"]}')
    rows = []
    with tempfile.TemporaryDirectory(prefix='bench_run_all_') as tmp:
        for name in args.only:
            script, full, quick = SCRIPTS[name]
            output = Path(tmp) / f'{name}.json'
            command = [sys.executable, str(HERE / script), '--repeat', str(args.repeat), '--json', str(output),
                       *(quick if args.quick else full)]
            print(f'\n$ {" ".join(command[1:])}', flush=True)
            start = time.perf_counter()
            try:
                result = subprocess.run(command, env=environment, text=True, capture_output=True,
                                        timeout=args.timeout, check=False)
                print(result.stdout, end='', flush=True)
                failed = result.returncode != 0 or not output.is_file()
                tail = (result.stdout + result.stderr).strip().splitlines()[-1:] if failed else []
                code = result.returncode
            except subprocess.TimeoutExpired:
                failed, tail, code = True, [f'timed out after {args.timeout:.0f} s'], None
            wall = time.perf_counter() - start
            if failed:
                rows.append((script, '(the script failed)', '', f'exit {code}: {" ".join(tail)[:80]}', 'failed', ''))
                continue
            for goal in json.loads(output.read_text())['goals']:
                load = goal['load'].get('after') or goal['load'].get('before')
                state = {True: 'met', False: 'NOT met', None: 'not measured'}[goal['met']]
                rows.append((script, goal['goal'], goal['target'], goal['measured'], state,
                             f'{load["load_1min"]:.1f} ({load["cpus"]} CPUs)'))
            print(f'({script}: {wall:.0f} s wall)')
    headers = ('script', 'goal', 'target', 'measured', 'state', 'load')
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    print('\n' + ' | '.join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print('-+-'.join('-' * w for w in widths))
    for row in rows:
        print(' | '.join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    print(f'\n{load_text()} at the end')


if __name__ == '__main__':
    main()
