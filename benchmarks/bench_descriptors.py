"""Benchmark: NEP descriptors of a dataset, and the FPS pipeline around them, against the bare calorine evaluation.

Peers, interleaved round by round in one process (CPU seconds of this process, single-threaded):

* ``bare``: one ``calorine.calculators.CPUNEP(model)`` and ``get_descriptors(atoms)`` for every structure (structures
  already in memory) -- the cost of the descriptors themselves;
* ``per-structure``: ``calorine.nep.get_descriptors(atoms, model_filename)`` for every structure (rereads the model and
  builds a NEP_CPU object each time; what ``analysis/descriptors.py`` did before issue #14);
* ``ours``: :func:`aiida_sseff.analysis.descriptors.nep_descriptors` (per-species means, the sampling default);
* ``pipeline``: read the extended XYZ file -> :func:`aiida_sseff.analysis.sampling.select_by_fps` (NEP descriptors,
  per species, FPS of a quarter of the structures) -> write the selected frames of the file, verbatim; what
  ``aiida-sseff sample fps -o`` does (the ``fps_select`` calcfunction, between two dataset nodes, writes the new
  node's file with ASE instead).

Goals (issue #14): ``pipeline / bare`` <= 1.2. The structures are the 25 DFT LLZO cells (192 atoms) and
``--copies`` rattled copies of each (Gaussian, 0.05 Å), so that the set is not trivially small.

    OMP_NUM_THREADS=1 python benchmarks/bench_descriptors.py [--copies 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Report, add_arguments, interleaved, load_text, ratio_text, round_ratios  # noqa: E402

DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--reference', type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument('--copies', type=int, default=8, help='rattled copies of each of the 25 LLZO cells')
    add_arguments(parser)
    args = parser.parse_args()
    report = Report('bench_descriptors.py')

    training = args.reference / 'llzo' / 'nep_training'
    model = str(args.reference / 'llzo' / 'nep25_zbl.txt')
    if not training.is_dir():
        sys.exit(f'reference data absent: {training}')
    from ase.io import read
    from calorine.calculators import CPUNEP
    from calorine.nep import get_descriptors

    from aiida_sseff.analysis.descriptors import nep_descriptors
    from aiida_sseff.analysis.sampling import select_by_fps
    from aiida_sseff.io.structures import read_extxyz, split_xyz_frames, write_extxyz_bytes

    cells = read(training / 'train.xyz', index=':')
    rng = np.random.default_rng(0)
    structures = []
    for atoms in cells:
        atoms.calc = None
        structures.append(atoms)
        for _ in range(args.copies):
            copy = atoms.copy()
            copy.positions += rng.normal(scale=0.05, size=copy.positions.shape)
            structures.append(copy)
    n_select = len(structures) // 4

    with tempfile.TemporaryDirectory(prefix='bench_descriptors_') as tmp:
        source, target = Path(tmp) / 'candidates.xyz', Path(tmp) / 'selected.xyz'
        source.write_bytes(write_extxyz_bytes(structures))

        def bare():
            calculator = CPUNEP(model)
            return [calculator.get_descriptors(atoms) for atoms in structures]

        def pipeline():
            candidates = read_extxyz(source)
            result, _ = select_by_fps(candidates, n_select=n_select, descriptor='nep', model_path=model,
                                      per_species=True)
            # as `aiida-sseff sample fps -o` writes them: the picked frames of the file, verbatim
            frames = split_xyz_frames(source.read_bytes())
            target.write_bytes(b''.join(frames[i] for i in result.indices))
            return result.indices

        peers = {'bare': bare,
                 'per-structure': lambda: [get_descriptors(atoms, model) for atoms in structures],
                 'ours': lambda: nep_descriptors(structures, model, per_species=True),
                 'pipeline': pipeline}
        print(f'{len(structures)} LLZO structures of 192 atoms ({len(cells)} DFT cells + {args.copies} rattled copies '
              f'each); CPU s, {args.repeat} rounds, min / median; {load_text()}')
        timings, load = interleaved(peers, repeat=args.repeat, clock=time.process_time, keep_results=True)
    same = all(np.array_equal(a, b) for a, b in zip(timings['bare'].results[0], timings['per-structure'].results[0],
                                                    strict=True))
    for name, timing in timings.items():
        ratio = '' if name == 'bare' else f'   {name} / bare {ratio_text(timing, timings["bare"])}'
        print(f'  {name:14s} {timing.text()}{ratio}')
    print(f'  per-structure and bare descriptors identical: {same}; {load_text(load["after"])}')
    old = round_ratios(timings['per-structure'], timings['bare'])
    ours = round_ratios(timings['ours'], timings['bare'])
    pipe = round_ratios(timings['pipeline'], timings['bare'])
    report.goal('descriptors: ours vs one CPUNEP reused', 'ours / bare ~ 1 (was 1.8 per structure)',
                f'{statistics.median(ours):.2f} (calorine per structure: {statistics.median(old):.2f})',
                statistics.median(ours) <= 1.1 and same, load)
    report.goal('FPS pipeline read -> descriptors -> FPS -> write', 'pipeline / bare <= 1.2 (median)',
                f'{statistics.median(pipe):.2f} (min {min(pipe):.2f}; bare {timings["bare"].median:.2f} s, '
                f'{len(structures)} structures)', statistics.median(pipe) <= 1.2, load)
    report.write(args.json)


if __name__ == '__main__':
    main()
