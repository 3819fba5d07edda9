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
   evaluation of the validation structures), and the CPU seconds of each whole program run (start-up included).
   The models are trained interleaved, once per round (``--repeat`` rounds; the quick run trains each once). Models
   are tiny (short training, small MACE), because the cost of a step or an epoch, not the accuracy, is compared.
2. MD speed: each model (and the real trained model ``llzo/nep25_zbl.txt``) runs ASE Langevin dynamics (1 fs,
   600 K) through :func:`aiida_sseff.engines.calculators.make_calculator` (``kind`` nep -> calorine CPUNEP, mace ->
   MACECalculator) on the first LLZO cell replicated n x n x n (192 atoms x n^3). Every (model, size) runs in its
   own persistent Python process (so its peak resident memory, ``VmHWM``, imports included: torch for MACE, is its
   own), which does a few warm-up steps and then a block of steps per round on request: the models are measured
   interleaved, round by round (``--repeat``, default 3). Speed is atom-steps per second of process CPU time (the MD
   is single-threaded with OMP_NUM_THREADS=1, and CPU time is disturbed less than wall time by other load on a shared
   machine); wall rates are printed beside, and the ratio to the trained NEP is taken round by round.
3. The full run adds a MACE-T1-E with the architecture of the project's ``balanced`` MACE protocol
   (``aiida_sseff/protocols/mace.yaml``: 64 channels, l <= 3, correlation 3, r_max 5 Å), trained for 2 epochs on
   2 structures: MD speed does not depend on how well a model is trained, and the tiny MACE models are far cheaper
   than the models the paper compares.

The paper's claim (NEP one to two orders of magnitude faster than MACE) is printed beside the measured ratios (and
recorded as a goal of the full run, with the balanced-size MACE). Usage (set OMP_NUM_THREADS=1 for a single-threaded comparison)::

    python benchmarks/bench_architectures.py --quick     # 2 training structures, each model trained once;
                                                         # MD at 192 and 1,536 atoms, 3 rounds
    python benchmarks/bench_architectures.py             # fuller: 20 structures, 3 training rounds, MD at
                                                         # 192 / 1,536 / 5,184 atoms, + a balanced-size MACE
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Report, add_arguments, load_text, machine_load  # noqa: E402

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
    # n_train: training structures; neppo_steps; mace_epochs; md: replications n (192 n^3 atoms); steps per round
    # after the warm-up; train_rounds: None = --repeat, 1 = the quick run trains each model once (its cost printed as
    # one run: three rounds of four trainings would take ~8 min of mostly program start-up on the 2-core machine)
    'quick': {'n_train': 2, 'neppo_steps': 3, 'mace_epochs': 2, 'replicas': (1, 2), 'md_steps': {1: 20, 2: 5},
              'warmup': 2, 'real_nep': True, 'balanced_mace': False, 'train_rounds': 1},
    'full': {'n_train': 20, 'neppo_steps': 6, 'mace_epochs': 3, 'replicas': (1, 2, 3),
             'md_steps': {1: 30, 2: 10, 3: 5}, 'warmup': 3, 'real_nep': True, 'balanced_mace': True,
             'train_rounds': None},
}
BALANCED = 'MACE-T1-E (balanced size)'
REAL_NEP = 'NEP nep25_zbl.txt (real)'
#: the balanced-size MACE runs at 192 atoms only, 1 warm-up + 3 steps: on 2 loaded cores one step of it took 2 s
#: of CPU at 192 atoms (4.6 GB peak in its training), so 1,536 atoms would take minutes per row
BALANCED_MD = {'replicas': (1,), 'steps': 3, 'warmup': 1}


# ----------------------------------------------------------------------------------------------- training helpers

def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes: the training programs' whole cost, start-up
    included, less disturbed by other load than their logs' wall times."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
    start, cpu = time.perf_counter(), _children_cpu()
    process = subprocess.run([_console_script('neppo'), 'train', str(directory), '--device', 'cpu'],
                             capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
    log = process.stdout + process.stderr
    (directory / 'neppo.log').write_text(log)
    if process.returncode != 0 or not (directory / 'nep.txt').is_file():
        lines = [line for line in log.strip().splitlines() if line.strip()]
        return {'refused': ' / '.join(lines[-2:]) or f'exit code {process.returncode}', 'wall_s': wall}
    match = re.search(r'([\d.eE+]+) ms per\s+step', log)
    if match is None:
        raise ValueError(f'{directory / "neppo.log"}: no "ms per step" in neppo\'s summary')
    return {'model': directory / 'nep.txt', 'ms_per_step': float(match.group(1)), 'wall_s': wall, 'cpu_s': cpu}


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
    start, cpu = time.perf_counter(), _children_cpu()
    process = subprocess.run([executable, 'train', *arguments], cwd=directory, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
    (directory / 'mace_train.log').write_text(process.stdout + process.stderr)
    logs = sorted((directory / 'logs').glob('mace_run-*.log')) if (directory / 'logs').is_dir() else []
    logs = [path for path in logs if not path.name.endswith('_debug.log')]
    if process.returncode != 0 or not (directory / 'mace.model').is_file() or not logs:
        lines = [line for line in (process.stdout + process.stderr).strip().splitlines() if line.strip()]
        return {'refused': ' / '.join(lines[-2:]) or f'exit code {process.returncode}', 'wall_s': wall}
    intervals = mace_epoch_seconds(logs[0].read_text())
    return {'model': directory / 'mace.model', 'epoch_s': sum(intervals) / len(intervals) if intervals else None,
            'wall_s': wall, 'cpu_s': cpu}


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

def md_worker(kind: str, model: str, structure_file: str, replicas: int, warmup: int,
              dtype: str | None = None) -> None:
    """A persistent MD process for one (model, size): set up ASE Langevin with the project's calculator, run the
    warm-up, print ``ready``; then for every line ``N`` on stdin run N steps and print one JSON line (CPU and wall
    seconds, rates, this process's peak memory). Run in its own process (:class:`MdWorker`), so that the peak memory
    is this model's alone and several models can be measured interleaved, round by round, without re-importing."""
    import warnings

    import numpy as np
    from ase import units
    from ase.io import read
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    from aiida_sseff.engines.calculators import make_calculator

    atoms = read(structure_file, index=0).repeat(replicas)
    spec = {'kind': kind, 'model': model, **({'dtype': dtype} if dtype else {})}
    atoms.calc = make_calculator(spec)
    rng = np.random.default_rng(1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # ASE's note on Langevin's fixcm default
        dynamics = Langevin(atoms, MD_TIMESTEP_FS * units.fs, temperature_K=MD_TEMPERATURE_K,
                            friction=0.01 / units.fs, rng=rng)
    thermalize_momenta(atoms, MD_TEMPERATURE_K, rng=rng)
    dynamics.run(warmup)  # neighbour lists, torch's first calls
    print('ready', flush=True)
    for line in sys.stdin:
        steps = int(line)
        cpu, wall = time.process_time(), time.perf_counter()
        dynamics.run(steps)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        temperature = float(atoms.get_temperature())
        if not np.isfinite(temperature) or temperature > 5 * MD_TEMPERATURE_K:
            raise RuntimeError(f'MD blew up (T = {temperature:.0f} K)')
        print(json.dumps({'atoms': len(atoms), 'steps': steps, 'cpu_s': cpu, 'wall_s': wall,
                          'rate_cpu': len(atoms) * steps / cpu, 'rate_wall': len(atoms) * steps / wall,
                          'peak_mb': peak_resident_mb(), 'temperature_K': temperature}), flush=True)


class MdWorker:
    """The parent's handle on one :func:`md_worker` process: ``run(steps)`` -> its JSON answer, or ``error``."""

    def __init__(self, timeout: float, **arguments):
        self.timeout, self.error = timeout, None
        self.stderr = tempfile.TemporaryFile(mode='w+')  # a file, not a pipe: a full pipe would block the worker
        self.process = subprocess.Popen([sys.executable, __file__, '--md-worker', json.dumps(arguments)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self._answer(lambda line: line == 'ready')

    def _answer(self, wanted) -> str | None:
        """The next line of the worker's stdout for which ``wanted(line)`` holds (libraries print notices there too,
        e.g. mace's note on cuequivariance); None, with ``error`` set, when the worker ends or stays silent."""
        import select

        deadline = time.perf_counter() + self.timeout
        while True:
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, deadline - time.perf_counter()))
            line = self.process.stdout.readline() if ready else ''
            if not line:
                self.process.kill()
                self.process.wait()
                self.stderr.seek(0)
                tail = [x for x in self.stderr.read().strip().splitlines() if x.strip()][-1:]
                self.error = (tail[0] if tail else f'no answer in {self.timeout:.0f} s')[:120]
                return None
            if wanted(line.strip()):
                return line.strip()

    def run(self, steps: int) -> dict:
        if self.error:
            return {'error': self.error}
        self.process.stdin.write(f'{steps}\n')
        self.process.stdin.flush()
        answer = self._answer(lambda line: line.startswith('{'))
        return json.loads(answer) if answer else {'error': self.error}

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)
        self.stderr.close()


def peak_resident_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` of /proc/self/status (Linux), which, unlike
    ``getrusage``'s ``ru_maxrss``, is not inherited from the parent across fork + exec (ours imports torch)."""
    status = Path('/proc/self/status')
    if status.is_file():
        match = re.search(r'^VmHWM:\s+(\d+) kB', status.read_text(), re.MULTILINE)
        if match:
            return int(match.group(1)) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------------------- main

def _format(value, spec: str, missing: str = '-') -> str:
    return missing if value is None else format(value, spec)


def _stats(values: list[float], spec: str) -> str:
    return f'{format(min(values), spec)} / {format(statistics.median(values), spec)}'


def train_all(train, validation, workdir: Path, mode: dict, rounds: int) -> dict[str, list[dict]]:
    """Every model trained once per round, the models interleaved round by round (a fresh folder each time)."""
    trainings = {
        'NEP': lambda d: train_neppo(train, d, mode['neppo_steps']),
        'qNEP': lambda d: train_neppo(train, d, mode['neppo_steps'], charge_mode=1),
        'MACE-T0-I': lambda d: train_mace(train, validation, d, 'MACE-T0-I', TINY_MACE, mode['mace_epochs']),
        'MACE-T1-E': lambda d: train_mace(train, validation, d, 'MACE-T1-E', TINY_MACE, mode['mace_epochs']),
    }
    if mode['balanced_mace']:
        trainings[BALANCED] = lambda d: train_mace(train[:2], validation, d, 'MACE-T1-E',
                                                   balanced_mace_parameters(), 2)
    results = {name: [] for name in trainings}
    for round_ in range(rounds):
        for name, training in trainings.items():
            results[name].append(training(workdir / f'{name.replace(" ", "_")}_{round_}'))
    return results


def print_training(results: dict[str, list[dict]], n_train: int, n_validation: int) -> None:
    print(f'{"model":28s} {"s/epoch (log)":>15s} {"ms/structure":>13s} {"ratio to NEP":>13s} {"program CPU s":>15s}  '
          'note')
    nep = [r['ms_per_step'] / 1e3 for r in results['NEP'] if 'ms_per_step' in r]
    for name, runs in results.items():
        n = 2 if name == BALANCED else n_train
        refused = [r['refused'] for r in runs if 'refused' in r]
        if refused:
            print(f'{name:28s} refused: {refused[0][:160]}')
            continue
        epochs = [r['ms_per_step'] / 1e3 if 'ms_per_step' in r else r['epoch_s'] for r in runs]
        if None in epochs:
            print(f'{name:28s} no epoch interval in the log')
            continue
        ratios = [(e / n) / (b / n_train) for e, b in zip(epochs, nep, strict=False)] if nep else []
        note = ('neppo, full batch: 1 step = 1 epoch' if 'ms_per_step' in runs[0]
                else f'mace, batch 2, epochs 1+ (+{n_validation} validation structures)')
        if name == BALANCED:
            note += ', 2 training structures'
        print(f'{name:28s} {_stats(epochs, ".2f"):>15s} {_stats([1e3 * e / n for e in epochs], ".0f"):>13s} '
              f'{_stats(ratios, ".2f") if ratios else "-":>13s} {_stats([r["cpu_s"] for r in runs], ".1f"):>15s}  '
              f'{note}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--reference', type=Path, default=DEFAULT_REFERENCE,
                        help='the shared reference folder (holds llzo/nep_training/train.xyz)')
    parser.add_argument('--quick', action='store_true', help='2 training structures (each model trained once), '
                                                             '192 and 1,536 atoms')
    parser.add_argument('--md-timeout', type=float, default=600.0, help='seconds allowed for one MD answer')
    parser.add_argument('--keep', type=Path, default=None, help='work here instead of a temporary folder')
    parser.add_argument('--md-worker', help=argparse.SUPPRESS)  # internal: one MD worker, JSON arguments
    add_arguments(parser)
    args = parser.parse_args()
    if args.md_worker:
        md_worker(**json.loads(args.md_worker))
        return

    training = args.reference / 'llzo' / 'nep_training'
    if not (training / 'train.xyz').is_file():
        sys.exit(f'reference data absent: {training / "train.xyz"} (the LLZO set of ../shared/reference; '
                 'pass --reference DIR)')
    mode = MODES['quick' if args.quick else 'full']
    report = Report('bench_architectures.py')
    from aiida_sseff.io.extxyz import read_train_xyz

    structures = read_train_xyz(training / 'train.xyz')
    n_train = mode['n_train']
    train, validation = structures[:n_train], structures[n_train:n_train + N_VALID]
    rounds = mode['train_rounds'] or args.repeat
    print(f'LLZO reference set: {len(structures)} structures of {len(structures[0])} atoms; training on {n_train} '
          f'(MACE validation: {len(validation)}); OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "unset")}; '
          f'{load_text()}')

    with tempfile.TemporaryDirectory(prefix='bench_architectures_') as tmp:
        workdir = args.keep or Path(tmp)
        start = time.perf_counter()
        trained = train_all(train, validation, workdir, mode, rounds)
        print(f'\nTraining on the same {n_train} structures x {len(structures[0])} atoms, CPU; {rounds} round(s), '
              "models interleaved; s/epoch from the programs' logs (wall), program CPU s = the whole run with its "
              'start-up; min / median:')
        print_training(trained, n_train, len(validation))
        print(f'(training stage {time.perf_counter() - start:.0f} s wall in all; {load_text()})', flush=True)

        models = [(name, 'nep' if 'NEP' in name else 'mace', str(runs[-1]['model']))
                  for name, runs in trained.items() if 'model' in runs[-1]]
        if mode['real_nep']:
            models.insert(1, (REAL_NEP, 'nep', str(args.reference / 'llzo' / 'nep25_zbl.txt')))
        print(f'\nMD speed: ASE Langevin {MD_TIMESTEP_FS:g} fs, {MD_TEMPERATURE_K:g} K, make_calculator (nep: calorine '
              'CPUNEP; mace: MACECalculator float64), one process per (model, size), warm-up excluded, '
              f'{args.repeat} rounds interleaved; atom-steps per CPU s min / median (wall median), ratio to the '
              'trained NEP round by round')
        print(f'{"model":28s} {"atoms":>6s} {"steps":>5s} {"atom-steps/s (CPU)":>19s} {"(wall)":>8s} '
              f'{"ratio to NEP":>13s} {"peak MB":>8s}', flush=True)
        rows = {}  # (model, replicas) -> list of answers
        for replicas in mode['replicas']:
            workers = {}
            for name, kind, model in models:
                if name == BALANCED and replicas not in BALANCED_MD['replicas']:
                    continue
                warmup = BALANCED_MD['warmup'] if name == BALANCED else mode['warmup']
                workers[name] = MdWorker(args.md_timeout, kind=kind, model=model,
                                         structure_file=str(training / 'train.xyz'), replicas=replicas, warmup=warmup)
            for _ in range(args.repeat):
                for name, worker in workers.items():
                    steps = BALANCED_MD['steps'] if name == BALANCED else mode['md_steps'][replicas]
                    rows.setdefault((name, replicas), []).append(worker.run(steps))
            for worker in workers.values():
                worker.close()
            load = {'after': machine_load()}
            for name in workers:
                answers = rows[(name, replicas)]
                failed = [a['error'] for a in answers if 'error' in a]
                if failed:
                    print(f'{name:28s} {192 * replicas ** 3:6d} failed: {failed[0]}', flush=True)
                    continue
                rates = [a['rate_cpu'] for a in answers]
                nep = rows.get(('NEP', replicas), [])
                ratios = ([a['rate_cpu'] / b['rate_cpu'] for a, b in zip(answers, nep, strict=True)]
                          if nep and not any('error' in b for b in nep) else [])
                print(f'{name:28s} {answers[0]["atoms"]:6d} {answers[0]["steps"]:5d} {_stats(rates, ".0f"):>19s} '
                      f'{statistics.median(a["rate_wall"] for a in answers):8.0f} '
                      f'{_stats(ratios, ".3f") if ratios else "-":>13s} {max(a["peak_mb"] for a in answers):8.0f}',
                      flush=True)
                if name == REAL_NEP and replicas == 1 and ratios:
                    report.goal('MD speed of the NEP trained here vs the real nep25_zbl.txt (same architecture), '
                                '192 atoms', 'real / trained within 0.8-1.25 (median)',
                                f'{statistics.median(ratios):.2f} (min {min(ratios):.2f})',
                                0.8 <= statistics.median(ratios) <= 1.25, load)
                if name == BALANCED and ratios:
                    speedup = [1 / r for r in ratios]
                    report.goal('paper: NEP 1-2 orders of magnitude faster than MACE (balanced-size MACE-T1-E, '
                                '192 atoms, CPU)', 'NEP / MACE >= 10 (median)',
                                f'{statistics.median(speedup):.0f} (min {min(speedup):.0f})',
                                statistics.median(speedup) >= 10, load)
        print(f'\n{load_text()} at the end; atom-steps/s per CPU second.')
        print('Paper: NEP (GPUMD) is 1-2 orders of magnitude faster than MACE. Measured here, NEP (CPUNEP) / MACE '
              '(median of the rounds):')
        for replicas in mode['replicas']:
            nep = rows.get(('NEP', replicas), [])
            if not nep or any('error' in a for a in nep):
                continue
            pieces = []
            for (name, size), answers in rows.items():
                if size == replicas and 'MACE' in name and not any('error' in a for a in answers):
                    pieces.append(f'{name} {statistics.median(b["rate_cpu"] / a["rate_cpu"] for a, b in zip(answers, nep, strict=True)):.1f}x')
            print(f'  {192 * replicas ** 3:6d} atoms: ' + ('; '.join(pieces) if pieces else 'no NEP/MACE pair'))
        print("  (tiny MACE models of 8 channels are far smaller than the paper's; the balanced-size row, where run, is "
              "the fairer comparison; CPUNEP is calorine's Python-wrapped CPU evaluator, not GPUMD)")
    report.write(args.json)


if __name__ == '__main__':
    main()
