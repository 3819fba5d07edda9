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

It prints, for N = 8, 16, 32 snapshots, the wall time of each, the surrogate part per snapshot (it must be flat in
N: the work scales with snapshots × one call) and the ratio label-all / surrogate.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_locality.py [--repeat 2] [--snapshots 8 16 32] [--interval 5]``
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.io import read

from aiida_sseff.analysis.locality import central_atoms
from aiida_sseff.engines.label import label_structures
from aiida_sseff.engines.locality import run_locality

REFERENCE = Path(__file__).resolve().parents[1].parent / 'shared' / 'reference' / 'llzo'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeat', type=int, default=2, help='best of this many runs')
    parser.add_argument('--snapshots', type=int, nargs='+', default=[8, 16, 32])
    parser.add_argument('--interval', type=int, default=5, help='MD steps between snapshots')
    parser.add_argument('--supercell', type=int, default=2)
    parser.add_argument('--radius', type=float, default=8.0)
    args = parser.parse_args()
    if not REFERENCE.is_dir():
        raise SystemExit(f'reference data not found at {REFERENCE}')
    from calorine.calculators import CPUNEP

    atoms = read(REFERENCE / 'nep_training' / 'train.xyz', index=0)
    atoms.calc = None
    atoms = atoms.repeat(args.supercell)
    center = central_atoms(atoms, ['Li'])['Li']
    model = str(REFERENCE / 'nep25_zbl.txt')
    md_calculator, surrogate = CPUNEP(model), CPUNEP(model)
    print(f'LLZO {len(atoms)} atoms, Li centre, r_f = {args.radius} Å, {args.interval} MD steps between snapshots, '
          f'best of {args.repeat}')
    print(f'{"N":>4} {"reused s":>9} {"surrogate s":>12} {"label-all s":>12} {"sur./snap s":>12} '
          f'{"label/snap s":>13} {"label-all/surrogate":>20}')
    with tempfile.TemporaryDirectory() as directory:
        for n in args.snapshots:
            parameters = {'centers': [center], 'radii': [args.radius], 'n_snapshots': n,
                          'snapshot_interval': args.interval, 'n_equilibration_steps': 0, 'min_snapshots': 1,
                          'store_snapshots': True, 'temperature_K': 1000.0}
            best = {'reused': np.inf, 'surrogate': np.inf, 'label': np.inf, 'per_call': np.inf, 'per_label': np.inf}
            for _ in range(args.repeat):
                begin = time.perf_counter()
                run_locality(atoms, md_calculator, parameters, None, directory)
                reused = time.perf_counter() - begin
                begin = time.perf_counter()
                summary = run_locality(atoms, md_calculator, parameters, surrogate, directory)
                with_surrogate = time.perf_counter() - begin
                # the peer: the same MD (the reused run's cost) + full labels of every stored snapshot
                snapshots = read(Path(directory) / 'snapshots.xyz', index=':')
                _, failures, label_wall = label_structures(snapshots, surrogate)
                assert not failures
                best['reused'] = min(best['reused'], reused)
                best['surrogate'] = min(best['surrogate'], with_surrogate)
                best['label'] = min(best['label'], reused + label_wall)
                best['per_call'] = min(best['per_call'], summary['surrogate_wall_time_s'] / n)
                best['per_label'] = min(best['per_label'], label_wall / n)
            print(f'{n:>4} {best["reused"]:>9.2f} {best["surrogate"]:>12.2f} {best["label"]:>12.2f} '
                  f'{best["per_call"]:>12.3f} {best["per_label"]:>13.3f} {best["label"] / best["surrogate"]:>20.2f}')


if __name__ == '__main__':
    main()
