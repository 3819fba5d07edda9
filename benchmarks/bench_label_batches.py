"""Benchmark: the surrogate labeller's batch size, the cost of one job against the cost of one structure (issue #13.5).

``sseff.label`` with a surrogate labeller (CHGNet, a NEP, a MACE) runs one ``EngineLabelCalculation`` per batch of
``batch_size`` structures. Every job pays a fixed price before its first structure: the interpreter, the imports, the
model's loading; on a cluster also the scheduler's queueing, which this machine cannot show. This script runs the
program those jobs run (``aiida-sseff-engine label``, in its own folder per job, as the CalcJob stages it) over the
same ``--structures`` structures split into batches of each ``--batch-sizes``, one after another, and times the
whole labelling in CPU seconds of the child processes (single-threaded: what the idle machine's wall time would be).
The batch sizes are interleaved round by round (harness). From the two extremes it derives

    per-job overhead = (T(1) - T(N)) / (N - 1),  per-structure cost = T(N) / N - overhead / N

and, for every batch size, the share of the CPU spent on overhead. Every label is checked to be the same whatever
the batching (energies to 1e-9 eV): batching changes the cost, never the numbers.

    OMP_NUM_THREADS=1 python benchmarks/bench_label_batches.py [--calculator nep|chgnet|emt] [--repeat 3]
    OMP_NUM_THREADS=1 python benchmarks/bench_label_batches.py --calculator chgnet --structures 8 --batch-sizes 1 8

``nep`` labels the LLZO DFT cells (192 atoms, ``../shared/reference/llzo``) with the reference NEP; ``chgnet`` the
same cells with CHGNet (its model loads in seconds: the case where batching matters most); ``emt`` 32-atom Cu/Al
cells with ASE's EMT (no model to load: the floor, the interpreter and our imports).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import add_arguments, children_cpu_time, engine_command, interleaved, load_text  # noqa: E402

DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference'
#: the labelling protocol's default (protocols/labelling.yaml)
DEFAULT_BATCH_SIZE = 8


def _structures(calculator: str, reference: Path, count: int) -> list:
    from ase.build import bulk
    from ase.io import read

    if calculator == 'emt':
        rng = np.random.default_rng(0)
        cells = []
        for index in range(count):
            atoms = bulk('Cu', 'fcc', a=3.6, cubic=True) * (2, 2, 2)
            atoms.symbols[rng.choice(len(atoms), 8, replace=False)] = 'Al'
            atoms.rattle(0.05, seed=index)
            cells.append(atoms)
        return cells
    training = reference / 'llzo' / 'nep_training' / 'train.xyz'
    if not training.is_file():
        sys.exit(f'reference data absent: {training}')
    cells = read(training, index=':')
    if count > len(cells):
        sys.exit(f'--structures {count}: the LLZO set has {len(cells)} cells')
    for atoms in cells:
        atoms.calc = None
    return cells[:count]


def _spec(calculator: str, reference: Path, folder: Path) -> dict:
    if calculator == 'nep':
        shutil.copy(reference / 'llzo' / 'nep25_zbl.txt', folder / 'nep.txt')
        return {'kind': 'nep', 'model': 'nep.txt'}
    return {'kind': calculator}


def _label_in_batches(root: Path, structures: list, batch_size: int, calculator: str, reference: Path) -> list:
    """Label ``structures`` as ``sseff.label`` would with this batch size: one engine process per batch, each in its
    own folder; return the energies in the order of the structures."""
    from ase.io import read, write

    engine = engine_command()
    energies = []
    for start in range(0, len(structures), batch_size):
        folder = Path(tempfile.mkdtemp(dir=root))
        write(folder / 'structures.xyz', structures[start:start + batch_size], format='extxyz')
        (folder / 'engine.json').write_text(json.dumps({'calculator': _spec(calculator, reference, folder)}))
        result = subprocess.run([*engine, 'label', '--input', 'engine.json'], cwd=folder, capture_output=True,
                                text=True, check=False)
        if result.returncode != 0:
            sys.exit(f'engine label failed in {folder} ({result.returncode}):\n{result.stderr[-2000:]}')
        energies.extend(atoms.get_potential_energy() for atoms in read(folder / 'labelled.xyz', index=':'))
        shutil.rmtree(folder)
    return energies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--calculator', choices=('nep', 'chgnet', 'emt'), default='nep')
    parser.add_argument('--structures', type=int, default=24, help='structures to label (default 24)')
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=None,
                        help=f'default: 1, {DEFAULT_BATCH_SIZE} (the protocol default) and all of them in one job')
    parser.add_argument('--reference', type=Path, default=DEFAULT_REFERENCE)
    add_arguments(parser)
    args = parser.parse_args()
    sizes = sorted(set(args.batch_sizes or (1, DEFAULT_BATCH_SIZE, args.structures)))
    if sizes[0] != 1 or sizes[-1] != args.structures:
        sys.exit(f'--batch-sizes must include 1 and --structures ({args.structures}) to separate the two costs')
    structures = _structures(args.calculator, args.reference, args.structures)
    print(f'{args.calculator}: {len(structures)} structures of {len(structures[0])} atoms; batch sizes {sizes}; '
          f'{load_text()}')

    with tempfile.TemporaryDirectory(prefix='bench_label_batches_') as tmp:
        peers = {size: (lambda size=size: _label_in_batches(Path(tmp), structures, size, args.calculator,
                                                            args.reference)) for size in sizes}
        timings, load = interleaved(peers, repeat=args.repeat, clock=children_cpu_time, keep_results=True)

    reference_energies = timings[sizes[-1]].results[0]
    for size, timing in timings.items():
        for energies in timing.results:
            np.testing.assert_allclose(energies, reference_energies, rtol=0, atol=1e-9,
                                       err_msg=f'batch size {size} labelled differently')

    n = args.structures
    single, whole = timings[1], timings[n]
    overheads = [(a - b) / (n - 1) for a, b in zip(single.seconds, whole.seconds, strict=True)]
    per_structure = [(b - o) / n for b, o in zip(whole.seconds, overheads, strict=True)]
    overhead, cost = float(np.median(overheads)), float(np.median(per_structure))
    print(f'\n{"batch size":>10} {"jobs":>5} {"CPU s (min / median)":>22} {"overhead share":>15}')
    for size in sizes:
        jobs = -(-n // size)
        share = jobs * overhead / (jobs * overhead + n * cost)
        print(f'{size:>10} {jobs:>5} {timings[size].text():>22} {share:>14.0%}')
    print(f'per-job overhead {overhead:.2f} s (min {min(overheads):.2f}), per structure {cost:.3f} s: one job costs '
          f'as much as {overhead / cost:.1f} structures; {load_text(load["after"])}')
    need = int(np.ceil(9 * overhead / cost))  # jobs*o <= 0.1 (jobs*o + n*c)  <=>  n/jobs >= 9 o / c
    print(f'batches of >= {need} structures keep the overhead under 10 % of the CPU')
    if args.json is not None:  # measurements for the docs (issue #13.5), not goals: run_all.py does not collect them
        args.json.write_text(json.dumps({
            'script': 'bench_label_batches.py', 'calculator': args.calculator, 'structures': n,
            'atoms': len(structures[0]), 'cpu_s': {str(size): timings[size].seconds for size in sizes},
            'overhead_s': overhead, 'per_structure_s': cost, 'batch_for_10_percent': need, 'load': load}, indent=2))


if __name__ == '__main__':
    main()
