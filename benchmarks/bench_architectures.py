"""Benchmark: NEP, qNEP and MACE (T0-I, T1-E) on the LLZO reference set — training cost and MD speed (issue #9).

Everything is measured in one run on one machine, so only the ratios between the models mean anything.

1. Training (in a temporary folder, with the project's own writers): NEP and qNEP with ``neppo train --device cpu``
   (``nep.in`` from :func:`aiida_sseff.io.nep.write_nep_in`; qNEP adds ``charge_mode 1``), full batch, so one
   training step is one pass over the training structures; MACE-T0-I and MACE-T1-E with mace-torch's
   ``mace_run_train`` behind the project's ``aiida-sseff-mace`` wrapper (options from
   :func:`aiida_sseff.io.mace.training_arguments` for the named variant of :data:`aiida_sseff.io.mace.VARIANTS`).
   Times are read from the programs' own logs: neppo's ``ms per step`` (its summary line: the wall time of the
   training loop over the steps, which includes its one report, an evaluation of the training set) and the
   timestamps of mace's ``Epoch N:`` log lines (epoch 0 holds the warm-up and is left out; an epoch includes mace's
   evaluation of the validation structures). Models are tiny (short training, small MACE), because the cost of a
   step or an epoch, not the accuracy, is compared.
2. MD speed: each model (and the real trained model ``llzo/nep25_zbl.txt``) runs ASE Langevin dynamics (1 fs,
   600 K) through :func:`aiida_sseff.engines.calculators.make_calculator` (``kind`` nep -> calorine CPUNEP, mace ->
   MACECalculator) on the first LLZO cell replicated n x n x n (192 atoms x n^3). Every (model, size) runs in its
   own Python process, so its peak resident memory (``ru_maxrss``, imports included: torch for MACE) is its own;
   a few warm-up steps are excluded. Speed is atom-steps per second of process CPU time (the MD is
   single-threaded with OMP_NUM_THREADS=1, and CPU time is disturbed less than wall time by other load on a shared
   machine); wall time is printed as well.
3. The full run adds a MACE-T1-E with the architecture of the project's ``balanced`` MACE protocol
   (``aiida_sseff/protocols/mace.yaml``: 64 channels, l <= 3, correlation 3, r_max 5 Å), trained for 2 epochs on
   2 structures: MD speed does not depend on how well a model is trained, and the tiny MACE models are far cheaper
   than the models the paper compares.

The paper's claim (NEP one to two orders of magnitude faster than MACE) is printed beside the measured ratios, not
asserted. Usage (set OMP_NUM_THREADS=1 for a single-threaded comparison)::

    python benchmarks/bench_architectures.py --quick     # 4 training structures, 192 and 1,536 atoms
                                                         # (5 min measured at load 7-11 on 2 cores)
    python benchmarks/bench_architectures.py             # fuller: 20 structures, 192 / 1,536 / 5,184 atoms,
                                                         # + the real NEP model and a balanced-size MACE
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference'
ELEMENTS = ('Li', 'La', 'Zr', 'O')
#: the reference model's architecture (llzo/nep_training/nep.in + nep.txt): NEP models are this small anyway
NEP_ARCHITECTURE = {'cutoff': (6, 4), 'n_max': (4, 4), 'basis_size': (8, 8), 'l_max': (4, 2, 0), 'neuron': 30,
                    'zbl': 1.8}
#: a MACE small enough for two CPU cores (the test suite's and the `fast` protocol's size)
TINY_MACE = {'r_max': 4.0, 'num_channels': 8, 'correlation': 2, 'max_ell': 1, 'num_radial_basis': 4,
             'radial_MLP': [16], 'MLP_irreps': '8x0e', 'batch_size': 2, 'valid_batch_size': 2, 'plot': False,
             'default_dtype': 'float64'}
MACE_PROTOCOLS = Path(__file__).resolve().parents[1] / 'aiida_sseff' / 'protocols' / 'mace.yaml'
N_VALID = 2  # validation structures of a MACE training (mace evaluates them every epoch)
MD_TEMPERATURE_K = 600.0
MD_TIMESTEP_FS = 1.0

MODES = {
    # n_train: training structures; neppo_steps; mace_epochs; md: replications n (192 n^3 atoms); steps after warm-up
    'quick': {'n_train': 4, 'neppo_steps': 3, 'mace_epochs': 2, 'replicas': (1, 2), 'md_steps': {1: 10, 2: 4},
              'warmup': 2, 'real_nep': False, 'balanced_mace': False},
    'full': {'n_train': 20, 'neppo_steps': 6, 'mace_epochs': 3, 'replicas': (1, 2, 3),
             'md_steps': {1: 30, 2: 10, 3: 5}, 'warmup': 3, 'real_nep': True, 'balanced_mace': True},
}
BALANCED = 'MACE-T1-E (balanced size)'
#: the balanced-size MACE runs at 192 atoms only, 1 warm-up + 3 steps: on 2 loaded cores one step of it took 2 s
#: of CPU at 192 atoms (4.6 GB peak in its training), so 1,536 atoms would take minutes per row
BALANCED_MD = {'replicas': (1,), 'steps': 3, 'warmup': 1}


# ----------------------------------------------------------------------------------------------- training helpers

def _console_script(name: str) -> str:
    """The console script of this interpreter's environment (falls back to the PATH)."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f'`{name}` is not installed in this environment (pip install -e .)')
    return found


def train_neppo(structures, directory: Path, steps: int, charge_mode: int = 0) -> dict:
    """Train a NEP (``charge_mode`` 0) or qNEP (1) with ``neppo train --device cpu``, full batch, ``steps`` steps.

    Returns ``model`` (the nep.txt path) and ``ms_per_step`` (neppo's summary line) on success, or ``refused`` with
    neppo's message (the last lines of its output) when it exits with an error.
    """
    from aiida_sseff.io.extxyz import write_train_xyz
    from aiida_sseff.io.nep import validate_nep_parameters, write_nep_in

    parameters = {**NEP_ARCHITECTURE, 'batch': len(structures), 'generation': steps, 'seed': 1,
                  'output_interval': steps}
    if charge_mode:
        parameters['charge_mode'] = charge_mode
    directory.mkdir(parents=True, exist_ok=True)
    write_nep_in(validate_nep_parameters(parameters, ELEMENTS, 'neppo'), directory / 'nep.in')
    write_train_xyz(structures, directory / 'train.xyz')
    start = time.perf_counter()
    process = subprocess.run([_console_script('neppo'), 'train', str(directory), '--device', 'cpu'],
                             capture_output=True, text=True)
    wall = time.perf_counter() - start
    log = process.stdout + process.stderr
    (directory / 'neppo.log').write_text(log)
    if process.returncode != 0 or not (directory / 'nep.txt').is_file():
        lines = [line for line in log.strip().splitlines() if line.strip()]
        return {'refused': ' / '.join(lines[-2:]) or f'exit code {process.returncode}', 'wall_s': wall}
    match = re.search(r'([\d.eE+]+) ms per\s+step', log)
    if match is None:
        raise ValueError(f'{directory / "neppo.log"}: no "ms per step" in neppo\'s summary')
    return {'model': directory / 'nep.txt', 'ms_per_step': float(match.group(1)), 'wall_s': wall}


_EPOCH_LINE = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) INFO: Epoch (\d+):', re.MULTILINE)


def mace_epoch_seconds(log_text: str) -> list[float]:
    """Seconds between consecutive ``Epoch N:`` lines of a mace_run_train log (epoch 1 - epoch 0, ...)."""
    stamps = [datetime.strptime(m.group(1), '%Y-%m-%d %H:%M:%S.%f') for m in _EPOCH_LINE.finditer(log_text)]
    return [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]


def train_mace(structures, validation, directory: Path, variant: str, parameters: dict, epochs: int) -> dict:
    """Train a MACE variant with ``aiida-sseff-mace train`` (mace_run_train behind the e3nn import fix) on the CPU.

    Returns ``model`` (``mace.model``), ``epoch_s`` (seconds per epoch after the first, from the log's timestamps)
    and ``wall_s``; or ``refused`` with the reason (mace-torch missing, the run failed).
    """
    from aiida_sseff.io.mace import training_arguments, write_mace_xyz

    directory.mkdir(parents=True, exist_ok=True)
    write_mace_xyz(structures, directory / 'train.xyz')
    write_mace_xyz(validation, directory / 'valid.xyz')
    try:
        arguments = training_arguments({**parameters, 'max_num_epochs': epochs}, variant, name='mace', seed=1,
                                       train_file='train.xyz', valid_file='valid.xyz', stress=True)
        executable = _console_script('aiida-sseff-mace')
    except (ImportError, ValueError, FileNotFoundError) as exception:
        return {'refused': str(exception)}
    start = time.perf_counter()
    process = subprocess.run([executable, 'train', *arguments], cwd=directory, capture_output=True, text=True)
    wall = time.perf_counter() - start
    (directory / 'mace_train.log').write_text(process.stdout + process.stderr)
    logs = sorted((directory / 'logs').glob('mace_run-*.log')) if (directory / 'logs').is_dir() else []
    logs = [path for path in logs if not path.name.endswith('_debug.log')]
    if process.returncode != 0 or not (directory / 'mace.model').is_file() or not logs:
        lines = [line for line in (process.stdout + process.stderr).strip().splitlines() if line.strip()]
        return {'refused': ' / '.join(lines[-2:]) or f'exit code {process.returncode}', 'wall_s': wall}
    intervals = mace_epoch_seconds(logs[0].read_text())
    return {'model': directory / 'mace.model', 'epoch_s': sum(intervals) / len(intervals) if intervals else None,
            'wall_s': wall}


def balanced_mace_parameters() -> dict:
    """The ``balanced`` MACE protocol's mace_run_train options (read from the project's YAML, not copied)."""
    import yaml

    protocol = yaml.safe_load(MACE_PROTOCOLS.read_text())
    parameters = dict(protocol['default_inputs']['mace']['parameters'])
    parameters.update(protocol['protocols'].get('balanced', {}).get('mace', {}).get('parameters', {}))
    parameters.pop('max_num_epochs', None)
    parameters.update(batch_size=2, valid_batch_size=2)  # 2 training structures
    return parameters


# ------------------------------------------------------------------------------------------------------------ MD

def md_speed(kind: str, model: str, structure_file: str, replicas: int, steps: int, warmup: int,
             dtype: str | None = None) -> dict:
    """Atom-steps per second of ASE Langevin MD with the project's calculator, in this process.

    Run it in a fresh process (see :func:`md_speed_in_child`) so that ``peak_mb`` is this model's alone.
    """
    import warnings

    import numpy as np
    from ase import units
    from ase.io import read
    from ase.md.langevin import Langevin

    from aiida_sseff.engines.calculators import make_calculator

    atoms = read(structure_file, index=0).repeat(replicas)
    spec = {'kind': kind, 'model': model, **({'dtype': dtype} if dtype else {})}
    atoms.calc = make_calculator(spec)
    rng = np.random.default_rng(1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # ASE's note on Langevin's fixcm default
        dynamics = Langevin(atoms, MD_TIMESTEP_FS * units.fs, temperature_K=MD_TEMPERATURE_K,
                            friction=0.01 / units.fs, rng=rng)
    from ase.md.velocitydistribution import thermalize_momenta

    thermalize_momenta(atoms, MD_TEMPERATURE_K, rng=rng)
    dynamics.run(warmup)  # neighbour lists, torch's first calls
    cpu, wall = time.process_time(), time.perf_counter()
    dynamics.run(steps)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    temperature = float(atoms.get_temperature())
    if not np.isfinite(temperature) or temperature > 5 * MD_TEMPERATURE_K:
        raise RuntimeError(f'MD blew up (T = {temperature:.0f} K)')
    return {'atoms': len(atoms), 'steps': steps, 'cpu_s': cpu, 'wall_s': wall,
            'rate_cpu': len(atoms) * steps / cpu, 'rate_wall': len(atoms) * steps / wall,
            'peak_mb': peak_resident_mb(), 'temperature_K': temperature}


def peak_resident_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` of /proc/self/status (Linux), which, unlike
    ``getrusage``'s ``ru_maxrss``, is not inherited from the parent across fork + exec (ours imports torch)."""
    status = Path('/proc/self/status')
    if status.is_file():
        match = re.search(r'^VmHWM:\s+(\d+) kB', status.read_text(), re.MULTILINE)
        if match:
            return int(match.group(1)) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def md_speed_in_child(timeout: float, **arguments) -> dict:
    """:func:`md_speed` in a fresh Python process; ``error`` holds the reason where it failed."""
    command = [sys.executable, __file__, '--md-child', json.dumps(arguments)]
    try:
        process = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {'error': f'over {timeout:.0f} s'}
    lines = [line for line in process.stdout.splitlines() if line.startswith('{')]
    if process.returncode != 0 or not lines:
        tail = [line for line in process.stderr.strip().splitlines() if line.strip()][-1:]
        return {'error': (tail[0] if tail else f'exit code {process.returncode}')[:120]}
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------------------------- main

def _format(value, spec: str, missing: str = '-') -> str:
    return missing if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--reference', type=Path, default=DEFAULT_REFERENCE,
                        help='the shared reference folder (holds llzo/nep_training/train.xyz)')
    parser.add_argument('--quick', action='store_true', help='a few-minute run: 4 structures, 192 and 1,536 atoms')
    parser.add_argument('--md-timeout', type=float, default=600.0, help='seconds allowed for one (model, size)')
    parser.add_argument('--keep', type=Path, default=None, help='work here instead of a temporary folder')
    parser.add_argument('--md-child', help=argparse.SUPPRESS)  # internal: one MD measurement, JSON arguments
    args = parser.parse_args()
    if args.md_child:
        print(json.dumps(md_speed(**json.loads(args.md_child))))
        return

    training = args.reference / 'llzo' / 'nep_training'
    if not (training / 'train.xyz').is_file():
        sys.exit(f'reference data absent: {training / "train.xyz"} (the LLZO set of ../shared/reference; '
                 'pass --reference DIR)')
    mode = MODES['quick' if args.quick else 'full']
    from aiida_sseff.io.extxyz import read_train_xyz

    structures = read_train_xyz(training / 'train.xyz')
    n_train = mode['n_train']
    train, validation = structures[:n_train], structures[n_train:n_train + N_VALID]
    print(f'LLZO reference set: {len(structures)} structures of {len(structures[0])} atoms; training on {n_train} '
          f'(MACE validation: {len(validation)}); {os.cpu_count()} CPUs, OMP_NUM_THREADS='
          f'{os.environ.get("OMP_NUM_THREADS", "unset")}, load average {os.getloadavg()[0]:.1f} at start')

    with tempfile.TemporaryDirectory(prefix='bench_architectures_') as tmp:
        workdir = args.keep or Path(tmp)
        trained = {}  # name -> result dict of the training
        start = time.perf_counter()
        trained['NEP'] = train_neppo(train, workdir / 'nep', mode['neppo_steps'])
        trained['qNEP'] = train_neppo(train, workdir / 'qnep', mode['neppo_steps'], charge_mode=1)
        for variant in ('MACE-T0-I', 'MACE-T1-E'):
            trained[variant] = train_mace(train, validation, workdir / variant, variant, TINY_MACE,
                                          mode['mace_epochs'])
        if mode['balanced_mace']:
            trained[BALANCED] = train_mace(train[:2], validation, workdir / 'balanced',
                                                               'MACE-T1-E', balanced_mace_parameters(), 2)
        training_time = time.perf_counter() - start

        print(f'\nTraining on the same {n_train} structures x {len(structures[0])} atoms, CPU (times from the '
              "programs' logs):")
        print(f'{"model":28s} {"s/epoch":>9s} {"ms/structure":>13s} {"ratio to NEP":>13s} {"wall (run)":>11s}  note (ratio per structure)')
        nep_epoch = trained['NEP'].get('ms_per_step', 0) / 1e3 or None
        for name, result in trained.items():
            n = 2 if name == BALANCED else n_train
            if 'refused' in result:
                print(f'{name:28s} {"refused":>9s} {"":13s} {"":13s} {_format(result.get("wall_s"), "10.1f")}s  '
                      f'{result["refused"][:160]}')
                continue
            epoch = result['ms_per_step'] / 1e3 if 'ms_per_step' in result else result['epoch_s']
            note = ('neppo, full batch: 1 step = 1 epoch' if 'ms_per_step' in result
                    else f'mace, batch 2, epochs 1+ (+{len(validation)} validation structures)')
            if name == BALANCED:
                note += ', 2 training structures'
            ratio = (epoch / n) / (nep_epoch / n_train) if epoch and nep_epoch else None  # per structure
            print(f'{name:28s} {_format(epoch, "9.2f")} {_format(epoch and 1e3 * epoch / n, "13.0f")} '
                  f'{_format(ratio, "13.2f")} {result["wall_s"]:10.1f}s  {note}')
        print(f'(training stage {training_time:.0f} s wall in all)', flush=True)

        models = [(name, 'nep' if 'NEP' in name else 'mace', str(result['model']))
                  for name, result in trained.items() if 'model' in result]
        if mode['real_nep']:
            models.insert(1, ('NEP nep25_zbl.txt (real)', 'nep', str(args.reference / 'llzo' / 'nep25_zbl.txt')))
        print(f'\nMD speed: ASE Langevin {MD_TIMESTEP_FS:g} fs, {MD_TEMPERATURE_K:g} K, make_calculator (nep: calorine '
              'CPUNEP; mace: MACECalculator float64), one process per row, warm-up excluded')
        print(f'{"model":28s} {"atoms":>6s} {"steps":>5s} {"atom-steps/s":>13s} {"(wall)":>9s} '
              f'{"ratio to NEP":>13s} {"peak MB":>8s}', flush=True)
        rows, reference_rate = [], {}  # reference_rate: replicas -> the trained NEP's rate (measured first)
        for replicas in mode['replicas']:
            for name, kind, model in models:
                steps, warmup = mode['md_steps'][replicas], mode['warmup']
                if name == BALANCED:
                    if replicas not in BALANCED_MD['replicas']:
                        continue
                    steps, warmup = BALANCED_MD['steps'], BALANCED_MD['warmup']
                row = {'model': name, 'replicas': replicas, **md_speed_in_child(
                    args.md_timeout, kind=kind, model=model, structure_file=str(training / 'train.xyz'),
                    replicas=replicas, steps=steps, warmup=warmup)}
                rows.append(row)
                if 'error' in row:
                    print(f'{name:28s} {192 * replicas ** 3:6d} {"":5s} failed: {row["error"]}', flush=True)
                    continue
                if name == 'NEP':
                    reference_rate[replicas] = row['rate_cpu']
                ratio = row['rate_cpu'] / reference_rate[replicas] if replicas in reference_rate else None
                print(f'{name:28s} {row["atoms"]:6d} {row["steps"]:5d} {row["rate_cpu"]:13.0f} '
                      f'{row["rate_wall"]:9.0f} {_format(ratio, "13.3f")} {row["peak_mb"]:8.0f}', flush=True)

    print(f'\nload average at the end {os.getloadavg()[0]:.1f} (1 min); atom-steps/s per CPU second.')
    print('Paper: NEP (GPUMD) is 1-2 orders of magnitude faster than MACE. Measured here, NEP (CPUNEP) / MACE:')
    for replicas in mode['replicas']:
        nep = reference_rate.get(replicas)
        pieces = [f'{row["model"]} {nep / row["rate_cpu"]:.1f}x' for row in rows
                  if row['replicas'] == replicas and 'rate_cpu' in row and 'MACE' in row['model'] and nep]
        print(f'  {192 * replicas ** 3:6d} atoms: ' + ('; '.join(pieces) if pieces else 'no NEP/MACE pair measured'))
    print('  (tiny MACE models of 8 channels are far smaller than the paper\'s; the balanced-size row, where run, is '
          'the fairer comparison; CPUNEP is calorine\'s Python-wrapped CPU evaluator, not GPUMD)')


if __name__ == '__main__':
    main()
