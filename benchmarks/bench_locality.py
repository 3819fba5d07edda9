"""Benchmark: the cost of one force-locality point on the CPU, against labelling every atom of every snapshot.

One point = one central atom at one r_f: NVT MD of the atoms outside the frozen sphere (CPUNEP, nep25_zbl.txt of
shared/reference/llzo) and the surrogate's force on the central atom in N snapshots. Measured in the same process
on the same LLZO supercell (default 2x2x2, 1536 atoms):

- ``reused``: the surrogate is the MD model: its forces at the snapshot are the integrator's (no extra call);
- ``surrogate``: a second CPUNEP instance as the surrogate, called once per snapshot (what a CHGNet/MACE surrogate
  costs, with that model's time per call in place of CPUNEP's);
- ``label-all`` (the peer): the same MD, then every snapshot labelled in full by the label engine
  (:func:`aiida_sseff.engines.label.label_structures`: energy, forces and stress of every atom), which is what a
  workflow without the engine's locality task would do (MD job, then a label job on all snapshots).

On the shared harness (``_harness.py``): the three are interleaved round by round (``--repeat``, default 3; a
label-all round = that round's MD-only run + the labels of the snapshots), timed in CPU seconds of the process (all
single-threaded with OMP_NUM_THREADS=1), min / median and the load average are printed. For N = 8, 16, 32 snapshots:
the time of each, the surrogate part per snapshot ((surrogate - reused) / N: it must be flat in N, the work is
snapshots × one call), and the ratio label-all / surrogate, round by round.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_locality.py [--repeat 3] [--snapshots 8 16 32] [--interval 5]``
(``--quick``: N = 4, 8, 3 steps apart)
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ase.io import read

from aiida_sseff.analysis.locality import central_atoms
from aiida_sseff.engines.label import label_structures
from aiida_sseff.engines.locality import run_locality

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Report, add_arguments, interleaved, load_text  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1].parent / 'shared' / 'reference' / 'llzo'


def _text(values) -> str:
    return f'{min(values):.2f} / {statistics.median(values):.2f}'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--snapshots', type=int, nargs='+', default=[8, 16, 32])
    parser.add_argument('--interval', type=int, default=5, help='MD steps between snapshots')
    parser.add_argument('--supercell', type=int, default=2)
    parser.add_argument('--radius', type=float, default=8.0)
    parser.add_argument('--quick', action='store_true', help='N = 4 and 8 snapshots, 3 MD steps apart')
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.snapshots, args.interval = [4, 8], 3
    if not REFERENCE.is_dir():
        raise SystemExit(f'reference data not found at {REFERENCE}')
    from calorine.calculators import CPUNEP

    report = Report('bench_locality.py')
    atoms = read(REFERENCE / 'nep_training' / 'train.xyz', index=0)
    atoms.calc = None
    atoms = atoms.repeat(args.supercell)
    center = central_atoms(atoms, ['Li'])['Li']
    model = str(REFERENCE / 'nep25_zbl.txt')
    md_calculator, surrogate = CPUNEP(model), CPUNEP(model)
    print(f'LLZO {len(atoms)} atoms, Li centre, r_f = {args.radius} Å, {args.interval} MD steps between snapshots; '
          f'{args.repeat} rounds, interleaved, CPU s min / median; {load_text()}')
    print(f'{"N":>4} {"reused s":>13} {"surrogate s":>13} {"label-all s":>13} {"sur./snap s":>13} '
          f'{"label/snap s":>13} {"label-all/surrogate":>20}')
    per_snapshot = {}
    with tempfile.TemporaryDirectory() as directory:
        snapshots_file = Path(directory) / 'snapshots.xyz'
        for n in args.snapshots:
            parameters = {'centers': [center], 'radii': [args.radius], 'n_snapshots': n,
                          'snapshot_interval': args.interval, 'n_equilibration_steps': 0, 'min_snapshots': 1,
                          'store_snapshots': True, 'temperature_K': 1000.0}

            def labels():
                # the peer's second job: full labels of every stored snapshot (of this round's surrogate run)
                _, failures, _ = label_structures(read(snapshots_file, index=':'), surrogate)
                assert not failures

            timings, load = interleaved({
                'reused': lambda parameters=parameters: run_locality(atoms, md_calculator, parameters, None, directory),
                'surrogate': lambda parameters=parameters: run_locality(atoms, md_calculator, parameters, surrogate,
                                                                        directory),
                'labels': labels}, repeat=args.repeat, clock=time.process_time)
            reused, with_surrogate, label = (timings[k].seconds for k in ('reused', 'surrogate', 'labels'))
            label_all = [a + b for a, b in zip(reused, label, strict=True)]
            per_snapshot[n] = [(b - a) / n for a, b in zip(reused, with_surrogate, strict=True)]
            ratio = [a / b for a, b in zip(label_all, with_surrogate, strict=True)]
            print(f'{n:>4} {_text(reused):>13} {_text(with_surrogate):>13} {_text(label_all):>13} '
                  f'{_text(per_snapshot[n]):>13} {_text([x / n for x in label]):>13} {_text(ratio):>20}')
            if n == max(args.snapshots):
                saved = [a / b for a, b in zip(reused, label_all, strict=True)]
                report.goal(f'locality point with the MD model as surrogate vs MD + labels of all {n} snapshots',
                            'reused / label-all < 1 (median)', f'{statistics.median(saved):.2f} '
                            f'(min {min(saved):.2f}; label-all / separate surrogate {statistics.median(ratio):.2f})',
                            statistics.median(saved) < 1, load)
        print(f'({load_text()})')
    small, large = min(args.snapshots), max(args.snapshots)
    flat = statistics.median(per_snapshot[large]) / statistics.median(per_snapshot[small])
    report.goal(f'surrogate CPU s per snapshot flat in N ({small} -> {large} snapshots)',
                'median ratio within 0.75-1.33', f'{flat:.2f} ({statistics.median(per_snapshot[small]):.3f} -> '
                f'{statistics.median(per_snapshot[large]):.3f} s)', 0.75 <= flat <= 1.33)
    report.write(args.json)


if __name__ == '__main__':
    main()
