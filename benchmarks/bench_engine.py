"""Benchmark: the CPU MD engine (``aiida-sseff-engine md``) against a bare ASE + CPUNEP loop, and its start-up.

1. In one process, interleaved round by round: the bare loop (ASE ``Bussi`` + calorine ``CPUNEP``, ``dynamics.run(n)``,
   nothing recorded) and :func:`aiida_sseff.engines.md.run_md` with its default recording (thermo and trajectory
   every 10 steps, the sanity checks, the final write of thermo.dat / trajectory.npz / final.xyz / checkpoint.npz),
   same cell, model, seed and steps. Goal (issue #14): the engine within 5 % of the bare loop at 192 atoms.
2. The console program: ``python -c pass`` and ``aiida-sseff-engine md`` on a short and a longer run (subprocesses,
   interleaved). Start-up and I/O = program (short) - interpreter - the short run's steps at the per-step cost of
   (long - short). Goal: under 0.5 s. Beside them the floor: an interpreter importing only what any NEP engine needs
   (numpy, ``ase.atoms``, ``ase.calculators.calculator`` and calorine's ``_nepy`` extension).

The cell is the first structure of the LLZO reference set (192 atoms; ``--sizes 1 2`` adds the 2x2x2 supercell,
1,536 atoms) with the real ``nep25_zbl.txt``; 600 K, 1 fs. Times are CPU seconds (of this process, or of the child
processes), single-threaded with OMP_NUM_THREADS=1: on the shared 2-core machine (load average 10-20) wall times
were 2-10x longer and varied from round to round. The load average is printed beside every number; the ratios of
the same round are what counts.

    OMP_NUM_THREADS=1 python benchmarks/bench_engine.py [--steps 300] [--sizes 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Report, add_arguments, children_cpu_time, interleaved, load_text, ratio_text, round_ratios  # noqa: E402

DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference'
TEMPERATURE_K = 600.0
TIMESTEP_FS = 1.0


def bare_loop(atoms, model: str, steps: int, seed: int = 1) -> float:
    """ASE Bussi + CPUNEP for ``steps`` steps, the same start as the engine's (Maxwell-Boltzmann + Stationary)."""
    from ase import units
    from ase.md.bussi import Bussi
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from calorine.calculators import CPUNEP

    atoms = atoms.copy()
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=TEMPERATURE_K, rng=rng)
    Stationary(atoms)
    atoms.calc = CPUNEP(model)
    dynamics = Bussi(atoms, TIMESTEP_FS * units.fs, temperature_K=TEMPERATURE_K, taut=100 * units.fs, rng=rng)
    dynamics.run(steps)
    return float(atoms.get_potential_energy())


def engine_run(atoms, model: str, steps: int, directory: Path) -> dict:
    from calorine.calculators import CPUNEP

    from aiida_sseff.engines.md import run_md

    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir()
    return run_md(atoms, CPUNEP(model), {'n_steps': steps, 'temperature_K': TEMPERATURE_K,
                                         'timestep_fs': TIMESTEP_FS}, directory)


def engine_program() -> list[str]:
    script = Path(sys.executable).parent / 'aiida-sseff-engine'
    return [str(script)] if script.is_file() else [sys.executable, '-m', 'aiida_sseff.engines']


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--reference', type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument('--steps', type=int, default=300, help='MD steps of the in-process comparison')
    parser.add_argument('--program-steps', type=int, default=20, help='MD steps of the console-program runs')
    parser.add_argument('--sizes', type=int, nargs='+', default=[1], help='supercell multiples of the 192-atom cell')
    add_arguments(parser)
    args = parser.parse_args()
    warnings.filterwarnings('ignore', category=DeprecationWarning)  # ASE's MaxwellBoltzmannDistribution notice
    report = Report('bench_engine.py')

    training = args.reference / 'llzo' / 'nep_training'
    model = args.reference / 'llzo' / 'nep25_zbl.txt'
    if not training.is_dir():
        sys.exit(f'reference data absent: {training}')
    from ase.io import read, write

    cell = read(training / 'train.xyz', index=0)
    cell.calc = None
    print(f'engine vs bare ASE + CPUNEP loop; {load_text()}; {args.repeat} rounds, min / median')
    with tempfile.TemporaryDirectory(prefix='bench_engine_') as tmp:
        tmp = Path(tmp)
        for size in args.sizes:
            atoms = cell.repeat(size)
            steps = max(20, args.steps // size**3)
            def engine(atoms=atoms, steps=steps):
                return engine_run(atoms, str(model), steps, tmp / 'engine')

            timings, load = interleaved({'bare': lambda atoms=atoms, steps=steps: bare_loop(atoms, str(model), steps),
                                         'engine': engine}, repeat=args.repeat, clock=time.process_time)
            bare, ours = timings['bare'], timings['engine']
            ratios = round_ratios(ours, bare)
            print(f'{len(atoms):6d} atoms, {steps} steps: bare {bare.text()}, engine {ours.text()}, '
                  f'engine / bare {ratio_text(ours, bare)}; {load_text(load["after"])}')
            if size == 1:
                report.goal('MD engine vs bare ASE+CPUNEP loop, 192 atoms', 'engine / bare <= 1.05 (median)',
                            f'{statistics.median(ratios):.3f} (min {min(ratios):.3f}; bare {bare.median:.2f} s, '
                            f'{steps} steps)', statistics.median(ratios) <= 1.05, load)

        # the console program, as the CalcJob runs it
        run_dir = tmp / 'program'
        run_dir.mkdir()
        write(run_dir / 'structure.xyz', cell, format='extxyz')
        shutil.copy(model, run_dir / 'nep.txt')

        def program(steps: int):
            (run_dir / 'engine.json').write_text(json.dumps({
                'calculator': {'kind': 'nep', 'model': 'nep.txt'},
                'parameters': {'n_steps': steps, 'temperature_K': TEMPERATURE_K, 'timestep_fs': TIMESTEP_FS}}))
            subprocess.run(engine_program() + ['md', '--directory', str(run_dir)], check=True, capture_output=True)

        short, long = args.program_steps, 4 * args.program_steps
        floor = 'import numpy, ase.atoms, ase.calculators.calculator, _nepy'
        timings, load = interleaved({'python': lambda: subprocess.run([sys.executable, '-c', 'pass'], check=True),
                                     'floor': lambda: subprocess.run([sys.executable, '-c', floor], check=True),
                                     'short': lambda: program(short), 'long': lambda: program(long)},
                                    repeat=args.repeat, clock=children_cpu_time)
        per_step = [(b - a) / (long - short) for a, b in zip(timings['short'].seconds, timings['long'].seconds,
                                                             strict=True)]
        overheads = [p - i - short * s for p, i, s in zip(timings['short'].seconds, timings['python'].seconds,
                                                          per_step, strict=True)]
        print(f'console program (CPU s), 192 atoms: {short} steps {timings["short"].text()}, {long} steps '
              f'{timings["long"].text()}, interpreter {timings["python"].text()}, floor ({floor}) '
              f'{timings["floor"].text()}; start-up + I/O beyond the '
              f'interpreter {min(overheads):.3f} / {statistics.median(overheads):.3f} s; {load_text(load["after"])}')
        report.goal('engine program start-up + I/O beyond the interpreter (CPU s)', '< 0.5 s (median)',
                    f'{statistics.median(overheads):.2f} s (min {min(overheads):.2f} s)',
                    statistics.median(overheads) < 0.5, load)
    report.write(args.json)


if __name__ == '__main__':
    main()
