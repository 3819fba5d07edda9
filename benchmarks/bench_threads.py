"""Benchmark: three MD temperatures run together or one after another, with 1 or 2 threads per job (issue #14.4).

What the direct scheduler does with three engine CalcJobs submitted at once: it starts three ``aiida-sseff-engine md``
processes side by side, each with the thread variables its submit script exports
(:mod:`aiida_sseff.calculations.threads`: one thread per job unless the job asks for cores). This script starts the
same program the same way (a subprocess per run, ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` in
its environment, ``engine.json`` + ``structure.xyz`` in its own folder), without AiiDA around it, so that only the
threads and the concurrency differ between the four ways:

- ``concurrent × 1 thread`` (the default now), ``concurrent × 2 threads`` (what a job got before: every library one
  thread per core), ``sequential × 1 thread``, ``sequential × 2 threads``.

Each way runs the three temperatures (300, 600, 900 K), ``--repeats`` times; printed are the wall time of the whole
batch (min and median over the repeats: the user's wait for the three results), the mean production speed of the
runs (atom-steps/s of the MD loop, from each run's report.json) and the 1-minute load average before each batch
(the development machine is shared: compare the ways of one run of this script, not across runs).

The calculator is CHGNet by default (torch: threaded, the case that oversubscribes); ``--calculator nep`` runs the
reference LLZO NEP through calorine's CPUNEP, whose C++ core is single-threaded (only numpy's BLAS would thread).

    OMP_NUM_THREADS=1 python benchmarks/bench_threads.py --quick        # 1 repeat, 10 steps
    python benchmarks/bench_threads.py                                  # 3 repeats, 30 steps
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference'
TEMPERATURES_K = (300.0, 600.0, 900.0)
THREAD_VARIABLES = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')


def _engine() -> str:
    found = shutil.which('aiida-sseff-engine', path=str(Path(sys.executable).parent)) or shutil.which(
        'aiida-sseff-engine')
    if found is None:
        sys.exit('aiida-sseff-engine is not installed: pip install -e .')
    return found


def _structure(calculator: str, reference: Path):
    """Li2O (antifluorite, 2x2x2 conventional cells, 96 atoms) for CHGNet; the 192-atom LLZO cell for the NEP."""
    if calculator == 'nep':
        from ase.io import read

        atoms = read(reference / 'llzo' / 'nep_training' / 'train.xyz', index=0)
        atoms.calc = None
        return atoms
    from ase.build import bulk

    return bulk('OLi2', 'fluorite', a=4.61, cubic=True).repeat(2)  # O on the Ca site: antifluorite


def _prepare(folder: Path, atoms, calculator: str, reference: Path, temperature: float, n_steps: int) -> None:
    from ase.io import write

    folder.mkdir(parents=True)
    write(folder / 'structure.xyz', atoms, format='extxyz')
    spec = {'kind': calculator}
    if calculator == 'nep':
        shutil.copy(reference / 'llzo' / 'nep25_zbl.txt', folder / 'nep.txt')
        spec['model'] = 'nep.txt'
    parameters = {'temperature_K': temperature, 'timestep_fs': 1.0, 'n_steps': n_steps, 'n_equilibration_steps': 0,
                  'thermo_interval': n_steps, 'trajectory_interval': n_steps, 'checkpoint_interval': n_steps}
    (folder / 'engine.json').write_text(json.dumps({'calculator': spec, 'parameters': parameters}))


def _batch(root: Path, atoms, args, threads: int, concurrent: bool) -> dict:
    """The three temperatures, all at once or one after another; wall time of the batch and the runs' speeds."""
    environment = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(threads))}
    folders = []
    for temperature in TEMPERATURES_K:
        folder = Path(tempfile.mkdtemp(dir=root)) / f'T{temperature:g}'
        _prepare(folder, atoms, args.calculator, args.reference, temperature, args.steps)
        folders.append(folder)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    command = [_engine(), 'md', '--input', 'engine.json']
    if concurrent:
        processes = [subprocess.Popen(command, cwd=folder, env=environment, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL) for folder in folders]
        codes = [process.wait() for process in processes]
    else:
        codes = [subprocess.run(command, cwd=folder, env=environment, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, check=False).returncode for folder in folders]
    wall = time.perf_counter() - start
    reports = [json.loads((folder / 'report.json').read_text()) for folder in folders]
    if any(codes) or any(report.get('status') != 'ok' for report in reports):
        sys.exit(f'an engine run failed: {[report.get("message") for report in reports]}')
    return {'wall_s': wall, 'load': load, 'threads_reported': [report.get('threads') for report in reports],
            'speed': statistics.mean(report['production_speed_atom_step_per_s'] for report in reports)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--calculator', choices=('chgnet', 'nep'), default='chgnet')
    parser.add_argument('--steps', type=int, default=30, help='production MD steps per run')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--quick', action='store_true', help='1 repeat of 10 steps')
    parser.add_argument('--reference', type=Path, default=DEFAULT_REFERENCE, help='shared/reference (for --calculator nep)')
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 10, 1
    atoms = _structure(args.calculator, args.reference)
    print(f'{args.calculator}, {len(atoms)} atoms, {args.steps} steps at {", ".join(f"{t:g}" for t in TEMPERATURES_K)} K; '
          f'{os.cpu_count()} CPUs; {args.repeats} repeat(s)')
    ways = [(concurrent, threads) for concurrent in (True, False) for threads in (1, 2)]
    measured = {way: [] for way in ways}
    with tempfile.TemporaryDirectory(prefix='bench-threads-') as root:
        for _ in range(args.repeats):
            for way in ways:  # interleaved, so that a change of the machine's load hits every way alike
                measured[way].append(_batch(Path(root), atoms, args, threads=way[1], concurrent=way[0]))
    print(f'{"way":<26} {"batch wall min (s)":>19} {"median (s)":>11} {"speed (atom-steps/s)":>21} '
          f'{"load before":>12}  threads reported')
    for (concurrent, threads), batches in measured.items():
        walls = [batch['wall_s'] for batch in batches]
        print(f'{("concurrent" if concurrent else "sequential") + f" × {threads} thread(s)":<26} {min(walls):>19.1f} '
              f'{statistics.median(walls):>11.1f} {statistics.median(b["speed"] for b in batches):>21.4g} '
              f'{statistics.median(b["load"] for b in batches):>12.1f}  {batches[0]["threads_reported"]}')


if __name__ == '__main__':
    main()
