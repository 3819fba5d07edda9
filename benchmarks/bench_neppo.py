"""Benchmark: NEP training with `neppo train --device cpu` against CPUNEP evaluation, on the LLZO reference set.

Measures, in one run on one machine (so only ratios of peers are meaningful):

1. the wall time of one neppo training step (full batch: forward + backward over all 25 structures, 4,800 atoms),
   from the difference of two runs with different numbers of steps (set-up and final report cancel);
2. the wall time of one energy + forces + virial evaluation of the same 25 structures by calorine's CPUNEP
   (nep_cpu, C++) with a model of the same architecture (the reference nep.txt), and by neppo's own forward pass;
3. the wall time (and step) at which neppo's training force RMSE first reaches a target (100 meV/Å), polling
   loss.out of a `neppo train` subprocess, capped at --cap seconds; the GPUMD reference run (SNES, population 50)
   needed 6,800 generations for the same target (its loss.out; no timing is recorded there).

Architecture = the reference model's (nep.txt): cutoff 6 4, n_max 4 4, basis_size 8 8, l_max 4 2 0, 30 neurons,
ZBL 1.8 Å. Usage:

    python benchmarks/bench_neppo.py [--reference ../shared/reference] [--cap 600] [--target 0.1]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from aiida_sseff.io.extxyz import read_train_xyz, write_train_xyz
from aiida_sseff.io.nep import read_loss, validate_nep_parameters, write_nep_in

DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference'
ARCHITECTURE = {'cutoff': (6, 4), 'n_max': (4, 4), 'basis_size': (8, 8), 'l_max': (4, 2, 0), 'neuron': 30,
                'zbl': 1.8}
ELEMENTS = ('Li', 'La', 'Zr', 'O')


def prepare(directory: Path, structures, generation: int, output_interval: int, batch: int | None = None) -> None:
    params = validate_nep_parameters({**ARCHITECTURE, 'batch': batch or len(structures), 'generation': generation,
                                      'seed': 1, 'output_interval': output_interval}, ELEMENTS, 'neppo')
    directory.mkdir(parents=True, exist_ok=True)
    write_nep_in(params, directory / 'nep.in')
    write_train_xyz(structures, directory / 'train.xyz')


def time_neppo_steps(structures, workdir: Path, steps: tuple[int, int]) -> tuple[float, float]:
    """Seconds per training step from two in-process runs of neppo.nep_in.run; also returns the short run's time."""
    from neppo.nep_in import run

    logging.getLogger('neppo').setLevel(logging.WARNING)
    times = []
    for n in steps:
        directory = workdir / f'steps_{n}'
        prepare(directory, structures, generation=n, output_interval=n)
        start = time.perf_counter()
        run(directory, device='cpu')
        times.append(time.perf_counter() - start)
    return (times[1] - times[0]) / (steps[1] - steps[0]), times[0]


def time_cpunep(structures, model: Path, repeats: int = 3) -> float:
    """Best-of-`repeats` seconds for energy + forces + stress of all structures with CPUNEP."""
    from calorine.calculators import CPUNEP

    calculator = CPUNEP(str(model))
    best = np.inf
    for _ in range(repeats):
        copies = [atoms.copy() for atoms in structures]
        start = time.perf_counter()
        for atoms in copies:
            atoms.calc = calculator
            atoms.get_potential_energy()
            atoms.get_forces()
            atoms.get_stress()
        best = min(best, time.perf_counter() - start)
    return best


def time_neppo_forward(structures, model: Path, repeats: int = 3) -> float:
    """Best-of-`repeats` seconds for neppo's evaluation (energy, forces, virial) of all structures, float32 as in
    training, neighbour graphs included."""
    from neppo.io import read_model
    from neppo.prediction import predict

    nep = read_model(model)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        predict(nep, structures)
        best = min(best, time.perf_counter() - start)
    return best


def time_to_target(structures, workdir: Path, target: float, cap: float, generation: int,
                   batch: int | None = None) -> dict:
    """Run `neppo train` as a subprocess, poll loss.out, stop when RMSE_F_train <= target or after `cap` s."""
    directory = workdir / 'converge'
    prepare(directory, structures, generation=generation, output_interval=10, batch=batch)
    executable = shutil.which('neppo') or str(Path(sys.executable).parent / 'neppo')
    start = time.perf_counter()
    process = subprocess.Popen([executable, 'train', str(directory), '--device', 'cpu'],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = {'reached': False, 'seconds': None, 'step': None, 'last_step': None, 'last_rmse_f': None}
    try:
        while True:
            time.sleep(1.0)
            elapsed = time.perf_counter() - start
            if (directory / 'loss.out').is_file():
                try:
                    loss = read_loss(directory / 'loss.out')
                except (ValueError, IndexError):
                    loss = None  # a row being written
                if loss is not None and len(loss):
                    result['last_step'], result['last_rmse_f'] = int(loss.index[-1]), float(loss['RMSE_F_train'].iloc[-1])
                    hit = loss[loss['RMSE_F_train'] <= target]
                    if len(hit):
                        result.update(reached=True, seconds=elapsed, step=int(hit.index[0]))
                        break
            if process.poll() is not None or elapsed > cap:
                result['seconds'] = elapsed
                break
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--reference', type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument('--cap', type=float, default=600.0, help='seconds allowed to reach the target')
    parser.add_argument('--target', type=float, default=0.1, help='force RMSE target in eV/Å')
    parser.add_argument('--steps', type=int, nargs=2, default=(5, 25), help='step counts of the two timing runs')
    parser.add_argument('--batch', type=int, default=None,
                        help='batch size of the convergence run (default: full batch, 25)')
    parser.add_argument('--skip-convergence', action='store_true')
    args = parser.parse_args()

    training = args.reference / 'llzo' / 'nep_training'
    if not training.is_dir():
        sys.exit(f'reference data absent: {training}')
    structures = read_train_xyz(training / 'train.xyz')
    n_atoms = sum(len(a) for a in structures)
    import torch

    print(f'LLZO reference set: {len(structures)} structures, {n_atoms} atoms; torch threads {torch.get_num_threads()},'
          f' {os.cpu_count()} CPUs')

    with tempfile.TemporaryDirectory(prefix='bench_neppo_') as tmp:
        workdir = Path(tmp)
        step, short_run = time_neppo_steps(structures, workdir, tuple(args.steps))
        cpunep = time_cpunep(structures, training / 'nep.txt')
        forward = time_neppo_forward(structures, training / 'nep.txt')
        print(f'neppo training step (full batch, {n_atoms} atoms):   {step:8.3f} s')
        print(f'CPUNEP energy+forces+virial, same {n_atoms} atoms:   {cpunep:8.3f} s')
        print(f'neppo forward energy+forces+virial, same atoms:  {forward:8.3f} s')
        print(f'ratio neppo step / CPUNEP evaluation:            {step / cpunep:8.2f}')
        print(f'ratio neppo forward / CPUNEP evaluation:         {forward / cpunep:8.2f}')
        print(f'set-up + {args.steps[0]} steps of neppo run():              {short_run:8.1f} s')

        if not args.skip_convergence:
            batches = -(-len(structures) // (args.batch or len(structures)))
            generation = max(100, int(0.9 * args.cap / step * batches))  # a step costs ~1/batches of a full one
            result = time_to_target(structures, workdir, args.target, args.cap, generation, args.batch)
            gpumd = read_loss(training / 'loss.out')
            gpumd_hit = gpumd[gpumd['RMSE_F_train'] <= args.target]
            gpumd_generation = int(gpumd_hit.index[0]) if len(gpumd_hit) else None
            print(f'time to force RMSE <= {1000 * args.target:.0f} meV/Å (neppo, lr cosine over {generation} steps, '
                  f'cap {args.cap:.0f} s):')
            if result['reached']:
                print(f'    reached at step {result["step"]} after {result["seconds"]:.1f} s wall '
                      f'(incl. start-up); = {result["seconds"] / cpunep:.0f} CPUNEP evaluations of the set')
            else:
                print(f'    NOT reached within {result["seconds"]:.0f} s; last report step {result["last_step"]}, '
                      f'RMSE_F_train {result["last_rmse_f"]} eV/Å')
            print(f'    GPUMD reference run (SNES, population 50) reached it at generation {gpumd_generation}')


if __name__ == '__main__':
    main()
