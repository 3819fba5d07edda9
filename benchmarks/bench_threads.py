"""Benchmark: three MD temperatures run together or one after another, with threads = the job's share of the cores or
one thread per core (issue #14.4).

What the direct scheduler does with three engine CalcJobs submitted at once: it starts three ``aiida-sseff-engine md``
processes side by side, each with the thread variables its submit script exports
(:mod:`aiida_sseff.calculations.threads`: the job's share of the cores, one thread unless the job asks for cores).
This script starts the same program the same way (a subprocess per run, ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` /
``OPENBLAS_NUM_THREADS`` in its environment, ``engine.json`` + ``structure.xyz`` in its own folder), without AiiDA
around it, so that only the threads and the concurrency differ between the four ways:

- ``concurrent × share`` (the default now: share = CPUs // 3, at least 1), ``concurrent × all`` (what a job got
  before: every library one thread per CPU, 3 × CPUs threads), ``sequential × share``, ``sequential × all``.

The four ways are interleaved round by round (``--repeat`` rounds), so that a change of the machine's load hits them
alike. Each batch is the three temperatures (300, 450, 600 K); printed are min / median over the rounds of the wall
time of the batch (a batch past ``--batch-timeout`` is stopped and counts as that long: a lower bound) (the user's wait for the three results) and of the CPU seconds of its three processes (a measure of
the work done, which oversubscription inflates: threads spinning and waiting for cores), with the load average.

Two models: ``nep`` (the reference LLZO NEP through calorine's CPUNEP, 192 atoms: C++, single-threaded: only
numpy's BLAS could thread) and ``mace`` (the tiny MACE-T1-E of bench_architectures, 8 channels, trained here for 5
epochs on 6 LLZO cells with the project's ``aiida-sseff-mace`` wrapper, 192 atoms: torch, threaded: the case that
oversubscribes). MD speed does not depend on how well the model is trained, but a barely trained MACE lets atoms
collapse: trained 2 epochs on 2 cells it did at 900 K within 60 steps, hence 5 epochs and at most 600 K. On a
machine shared with other work the wall times favour the concurrent ways (three processes get a larger share of a
busy machine than one): the CPU seconds and the load are printed beside them.

    OMP_NUM_THREADS=1 python benchmarks/bench_threads.py --quick      # 100 NEP / 20 MACE steps
    OMP_NUM_THREADS=1 python benchmarks/bench_threads.py              # 300 NEP / 40 MACE steps, 3 rounds
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import (  # noqa: E402
    Report,
    add_arguments,
    children_cpu_time,
    engine_command,
    interleaved,
    load_text,
    machine_load,
    round_ratios,
)

DEFAULT_REFERENCE = HERE.parents[0] / '..' / 'shared' / 'reference'
TEMPERATURES_K = (300.0, 450.0, 600.0)  # a barely trained MACE lets atoms collapse at 900 K
THREAD_VARIABLES = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')
STEPS = {'full': {'nep': 300, 'mace': 40}, 'quick': {'nep': 100, 'mace': 20}}


def train_mace(reference: Path, directory: Path) -> Path:
    """The tiny MACE-T1-E of bench_architectures (8 channels, the test suite's size) trained 5 epochs on 6 LLZO cells
    with its training helper (the project's aiida-sseff-mace wrapper and training options)."""
    spec = importlib.util.spec_from_file_location('bench_architectures', HERE / 'bench_architectures.py')
    architectures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(architectures)
    from aiida_sseff.io.extxyz import read_train_xyz

    structures = read_train_xyz(reference / 'llzo' / 'nep_training' / 'train.xyz')
    result = architectures.train_mace(structures[:6], structures[6:8], directory, 'MACE-T1-E',
                                      architectures.TINY_MACE, epochs=5)
    if 'refused' in result:
        sys.exit(f'MACE training failed: {result["refused"]}')
    return result['model']


def prepare_runs(root: Path, atoms, spec: dict, model: Path | None, steps: int) -> list[Path]:
    """One folder per temperature with engine.json, structure.xyz and the model file."""
    from ase.io import write

    folders = []
    for temperature in TEMPERATURES_K:
        folder = root / f'T{temperature:g}'
        folder.mkdir(parents=True)
        write(folder / 'structure.xyz', atoms, format='extxyz')
        if model is not None:
            shutil.copy(model, folder / spec['model'])
        parameters = {'temperature_K': temperature, 'timestep_fs': 1.0, 'n_steps': steps, 'n_equilibration_steps': 0,
                      'thermo_interval': steps, 'trajectory_interval': steps, 'checkpoint_interval': steps}
        (folder / 'engine.json').write_text(json.dumps({'calculator': spec, 'parameters': parameters}))
        folders.append(folder)
    return folders


def batch(folders: list[Path], threads: int, concurrent: bool, timeout: float) -> dict:
    """Run the engine in every folder, all at once or one after another; CPU seconds of the runs, their mean speed,
    and ``censored`` True where the batch ran past ``timeout`` seconds of wall time and was stopped (its wall time is
    then a lower bound; on a loaded machine oversubscribed torch runs crawled: 90 s for what took 34 s alone)."""
    environment = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(threads))}
    command = [*engine_command(), 'md', '--input', 'engine.json']
    for folder in folders:
        (folder / 'report.json').unlink(missing_ok=True)
    cpu, deadline = children_cpu_time(), time.perf_counter() + timeout
    censored, codes = False, []
    groups = [folders] if concurrent else [[folder] for folder in folders]
    for group in groups:
        processes = [subprocess.Popen(command, cwd=folder, env=environment, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL) for folder in group]
        for process in processes:
            try:
                codes.append(process.wait(timeout=max(0.0, deadline - time.perf_counter())))
            except subprocess.TimeoutExpired:
                censored = True
        if censored:
            for process in processes:
                process.kill()
                process.wait()
            break
    cpu = children_cpu_time() - cpu
    if censored:
        return {'cpu_s': cpu, 'speed': None, 'censored': True}
    reports = [json.loads((folder / 'report.json').read_text()) if (folder / 'report.json').is_file() else {}
               for folder in folders]
    if any(codes) or any(report.get('status') != 'ok' for report in reports):
        sys.exit(f'an engine run failed: {[r.get("status") for r in reports]} {[r.get("message") for r in reports]}')
    if any(report.get('threads') != threads for report in reports):
        sys.exit(f'the runs report threads {[r.get("threads") for r in reports]}, not {threads}')
    return {'cpu_s': cpu, 'speed': statistics.mean(r['production_speed_atom_step_per_s'] for r in reports),
            'censored': False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', choices=('nep', 'mace'), default=['nep', 'mace'])
    parser.add_argument('--quick', action='store_true', help='fewer MD steps (100 NEP, 20 MACE)')
    parser.add_argument('--steps', type=int, default=None, help='production steps of every run (default by model)')
    parser.add_argument('--mace-model', type=Path, default=None, help='a MACE model file instead of training one')
    parser.add_argument('--reference', type=Path, default=DEFAULT_REFERENCE, help='shared/reference')
    parser.add_argument('--batch-timeout', type=float, default=240.0,
                        help='seconds after which a batch is stopped and counted as at least that long')
    add_arguments(parser)
    args = parser.parse_args()
    training = args.reference / 'llzo' / 'nep_training' / 'train.xyz'
    if not training.is_file():
        sys.exit(f'reference data absent: {training}')
    from ase.io import read

    atoms = read(training, index=0)
    atoms.calc = None
    cpus = machine_load()['cpus']
    share = max(1, cpus // len(TEMPERATURES_K))
    thread_counts = sorted({share, cpus})
    ways = {f'{"concurrent" if concurrent else "sequential"} x {threads}': (concurrent, threads)
            for concurrent in (True, False) for threads in thread_counts}
    report = Report('bench_threads.py')
    print(f'{len(TEMPERATURES_K)} engine MD runs ({len(atoms)} atoms) per batch; share of the cores = {share} '
          f'thread(s), all = {cpus}; {args.repeat} rounds, ways interleaved; {load_text()}')
    with tempfile.TemporaryDirectory(prefix='bench_threads_') as tmp:
        tmp = Path(tmp)
        for name in args.models:
            steps = args.steps or STEPS['quick' if args.quick else 'full'][name]
            if name == 'nep':
                spec, model = {'kind': 'nep', 'model': 'nep.txt'}, args.reference / 'llzo' / 'nep25_zbl.txt'
            else:
                model = args.mace_model
                if model is None:
                    begin = time.perf_counter()
                    model = train_mace(args.reference, tmp / 'mace_training')
                    print(f'(MACE trained in {time.perf_counter() - begin:.0f} s wall)')
                spec = {'kind': 'mace', 'model': 'mace.model'}
            folders = {way: prepare_runs(tmp / name / way.replace(' ', ''), atoms, spec, model, steps) for way in ways}
            peers = {way: (lambda run=folders[way], way=ways[way]: batch(run, way[1], way[0], args.batch_timeout)) for way in ways}
            walls, load = interleaved(peers, repeat=args.repeat, keep_results=True)
            print(f'\n{name}: {steps} steps per run; {load_text(load["after"])} at the end')
            print(f'  {"way":<18} {"wall min / median (s)":>22} {"CPU min / median (s)":>21} {"atom-steps/s (median)":>22}')
            for way, timing in walls.items():
                cpu = [result['cpu_s'] for result in timing.results]
                speeds = [result['speed'] for result in timing.results if result['speed'] is not None]
                stopped = sum(result['censored'] for result in timing.results)
                note = f'  {stopped} of {len(timing.results)} stopped at {args.batch_timeout:.0f} s' if stopped else ''
                print(f'  {way:<18} {timing.min:>10.1f} / {timing.median:<9.1f} {min(cpu):>9.1f} / '
                      f'{statistics.median(cpu):<9.1f} {statistics.median(speeds) if speeds else float("nan"):>22.0f}'
                      f'{note}')
            together, sequential = walls[f'concurrent x {share}'], [walls[f'sequential x {t}'] for t in thread_counts]
            # per round: concurrent with the share of the cores / the faster of the sequential ways of that round
            ratios = [c / min(s) for c, *s in zip(together.seconds, *(t.seconds for t in sequential), strict=True)]
            report.goal(f'{name}: 3 runs side by side (threads = share of {cpus} cores) vs one after another',
                        'concurrent / faster sequential <= 1 (wall, median of rounds)',
                        f'{statistics.median(ratios):.2f} (min {min(ratios):.2f}; concurrent {together.median:.1f} s)',
                        statistics.median(ratios) <= 1.0, load)
            # the work done: side by side with their share of the cores, the runs must not cost more CPU than alone
            alone = walls[f'sequential x {share}']
            work = [a['cpu_s'] / b['cpu_s'] for a, b in zip(together.results, alone.results, strict=True)]
            complete = not any(r['censored'] for r in together.results + alone.results)
            report.goal(f'{name}: CPU s of the 3 runs side by side vs one after another (threads = share)',
                        'concurrent / sequential <= 1.1 (CPU, median of rounds)',
                        f'{statistics.median(work):.2f} (min {min(work):.2f})' if complete else
                        'a batch was stopped at --batch-timeout', statistics.median(work) <= 1.1 if complete else None,
                        load)
            if share != cpus:
                over = walls[f'concurrent x {cpus}']
                cpu_ratio = [a['cpu_s'] / b['cpu_s'] for a, b in zip(over.results, together.results, strict=True)]
                wall_ratio = round_ratios(over, together)
                print(f'  oversubscribed (concurrent x {cpus}) / concurrent x {share}: wall '
                      f'{min(wall_ratio):.2f} / {statistics.median(wall_ratio):.2f}, CPU '
                      f'{min(cpu_ratio):.2f} / {statistics.median(cpu_ratio):.2f} (min / median of rounds'
                      f'{"; lower bounds: batches were stopped" if any(r["censored"] for r in over.results) else ""})')
    report.write(args.json)


if __name__ == '__main__':
    main()
