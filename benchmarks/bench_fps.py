"""Benchmark: farthest-point sampling of aiida_sseff.analysis.fps against the PyNEP / GPUMDkit greedy loop.

PyNEP is not on PyPI (``pip download pynep``: no matching distribution), so the peer is its algorithm, read in
``pynep/select.py`` (``FarthestPointSample.select``, github.com/bigd4/PyNEP, commit 2038ee4), which
GPUMDkit copies verbatim into ``Scripts/sample_structures/neptrain_select_structs.py`` (and calls through PyNEP in
``pynep_select_structs.py``): start from row 0 (or from the min over ``cdist(candidates, existing set)``, an N x M
matrix), then per pick ``np.minimum(distances, cdist([x_new], candidates)[0])``. It is re-implemented below (the
mutable default argument of the original left out), not imported.

Both are run in the same process on the same data, interleaved round by round (CPU time of this process, both are
single-threaded): 1,000 picks, without and with an existing set of 500 points, from 100,000 points of isotropic
Gaussian data (no structure: the worst case for our triangle-inequality skip), of data near a 3-dimensional manifold,
and -- the case that matters -- from the real per-atom NEP descriptors (``nep25_zbl.txt``) of MD snapshots of the
192-atom LLZO cell at 1000 K (300 frames x 192 atoms = 57,600 points; ~30 s of MD to make, ``--cache`` keeps them).
The script checks that the selections are identical and prints min / median of the CPU times and of the per-round
ratio (peer / ours); ``--memory`` adds the peak traced memory (tracemalloc, one further run) of each. calorine returns
descriptors in Fortran order, which slows PyNEP's per-pick cdist ~2x (it copies the array to C order every pick): the
LLZO set is given to PyNEP both as calorine returns it (``PyNEP``) and as a C-ordered copy made outside the timing
(``PyNEP C``, its best case, which the goal uses); ours gets calorine's array.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_fps.py [--n 100000] [--k 1000] [--seed-set 500] [--repeat 3]``
"""

import argparse
import statistics
import sys
import time
import tracemalloc
from functools import partial
from pathlib import Path

import numpy as np
from scipy.spatial.distance import cdist

from aiida_sseff.analysis.fps import farthest_point_sampling

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Report, add_arguments, interleaved, load_text, ratio_text, round_ratios  # noqa: E402

DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference'


def pynep_farthest_point_sample(new_data, now_data=None, min_distance=-1.0, min_select=1, max_select=None):
    """PyNEP's FarthestPointSample.select / GPUMDkit's FarthestPointSample (Euclidean metric), re-implemented."""
    max_select = max_select or len(new_data)
    to_add = []
    if len(new_data) == 0:
        return to_add
    now_data = [] if now_data is None else list(now_data)
    if len(now_data) == 0:
        to_add.append(0)
        now_data.append(new_data[0])
    distances = np.min(cdist(new_data, now_data, metric='euclidean'), axis=1)
    while np.max(distances) > min_distance or len(to_add) < min_select:
        i = np.argmax(distances)
        to_add.append(i)
        if len(to_add) >= max_select:
            break
        distances = np.minimum(distances, cdist([new_data[i]], new_data, metric='euclidean')[0])
    return to_add


def peak_memory(function):
    """Peak traced memory in MB of one run (numpy reports its allocations to tracemalloc)."""
    tracemalloc.start()
    try:
        function()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 1e6


def synthetic(n, d, rng):
    yield f'gaussian d={d}', rng.normal(size=(n, d))
    latent = rng.normal(size=(n, 3))
    yield f'manifold-3d d={d}', np.tanh(latent @ rng.normal(size=(3, d))) + 0.01 * rng.normal(size=(n, d))


def llzo_md_descriptors(reference: Path, n_frames: int, stride: int, cache: Path | None) -> np.ndarray:
    """Per-atom NEP descriptors (nep25_zbl.txt, 30 components) of MD snapshots of the 192-atom LLZO cell at 1000 K.

    ASE Bussi with calorine CPUNEP, 1 fs, a frame every ``stride`` steps after 100 steps; one row per atom and frame
    (Li, La, Zr and O environments as they vibrate and Li hops), the points one selects atomic environments from.
    """
    if cache is not None and cache.is_file():
        return np.load(cache)
    from ase import units
    from ase.io import read
    from ase.md.bussi import Bussi
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from calorine.calculators import CPUNEP

    model = str(reference / 'llzo' / 'nep25_zbl.txt')
    atoms = read(reference / 'llzo' / 'nep_training' / 'train.xyz', index=0)
    atoms.calc = CPUNEP(model)
    rng = np.random.default_rng(7)
    MaxwellBoltzmannDistribution(atoms, temperature_K=1000, rng=rng)
    dynamics = Bussi(atoms, 1.0 * units.fs, temperature_K=1000, taut=100 * units.fs, rng=rng)
    dynamics.run(100)
    describe = CPUNEP(model)
    rows = []
    for _ in range(n_frames):
        dynamics.run(stride)
        rows.append(describe.get_descriptors(atoms.copy()))
    points = np.concatenate(rows)
    if cache is not None:
        np.save(cache, points)
    return points


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n', type=int, default=100_000, help='number of candidates of the synthetic sets')
    parser.add_argument('--k', type=int, default=1_000, help='number of picks')
    parser.add_argument('--seed-set', type=int, default=500, help='size of the existing set for the seeded runs')
    parser.add_argument('--dims', type=int, nargs='+', default=[30, 100])
    parser.add_argument('--reference', type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument('--frames', type=int, default=300, help='MD snapshots of the LLZO set (x 192 atoms)')
    parser.add_argument('--stride', type=int, default=5, help='MD steps between snapshots')
    parser.add_argument('--cache', type=Path, default=None, help='keep the LLZO MD descriptors in this .npy file')
    parser.add_argument('--no-synthetic', action='store_true', help='only the LLZO MD descriptors')
    parser.add_argument('--memory', action='store_true', help='also the peak traced memory (one more run each)')
    add_arguments(parser)
    args = parser.parse_args()
    report = Report('bench_fps.py')

    rng = np.random.default_rng(2024)
    sets = [] if args.no_synthetic else [item for d in args.dims for item in synthetic(args.n, d, rng)]
    if (args.reference / 'llzo').is_dir():
        points = llzo_md_descriptors(args.reference, args.frames, args.stride, args.cache)
        sets.append((f'LLZO MD NEP d={points.shape[1]}', points))
    else:
        print(f'reference data absent ({args.reference / "llzo"}): no LLZO MD descriptors')
    header = (f'{"data":22} {"N":>7} {"seed":>5} | {"peer":7} {"peer s":>15} {"ours s":>15} {"ratio":>11} | '
              f'{"PyNEP MB":>9} {"ours MB":>8} | identical')
    print(f'FPS: {args.k} picks; CPU s, {args.repeat} rounds interleaved, min / median; ratio = peer / ours per '
          f'round; {load_text()}')
    print(header)
    print('-' * len(header))
    for name, points in sets:
        existing = points[rng.choice(len(points), args.seed_set, replace=False)] + 0.01 * rng.normal(
            size=(args.seed_set, points.shape[1]))
        for seed_set in (None, existing):
            kwargs = {'start_index': 0} if seed_set is None else {'seed_descriptors': seed_set}  # PyNEP: row 0 first
            peers = {'pynep': partial(pynep_farthest_point_sample, points, seed_set, min_select=args.k,
                                      max_select=args.k)}
            if not points.flags.c_contiguous:
                peers['pynep C'] = partial(pynep_farthest_point_sample, np.ascontiguousarray(points), seed_set,
                                           min_select=args.k, max_select=args.k)
            peers['ours'] = partial(farthest_point_sampling, points, n_select=args.k, **kwargs)
            timings, load = interleaved(peers, repeat=args.repeat, clock=time.process_time, keep_results=True)
            identical = all(np.array_equal(np.asarray(a), b.indices) for peer in peers if peer != 'ours'
                            for a, b in zip(timings[peer].results, timings['ours'].results, strict=True))
            m = 0 if seed_set is None else len(seed_set)
            for peer in (peer for peer in peers if peer != 'ours'):
                memory = (f'{peak_memory(peers[peer]):9.1f} {peak_memory(peers["ours"]):8.1f}' if args.memory
                          else f'{"-":>9} {"-":>8}')
                print(f'{name:22} {len(points):7d} {m:5d} | {peer:7} {timings[peer].text("")} '
                      f'{timings["ours"].text("")} {ratio_text(timings[peer], timings["ours"]):>11} | {memory} | '
                      f'{identical}')
            if not identical:
                raise SystemExit('selections differ')
            if name.startswith('LLZO'):
                best = 'pynep C' if 'pynep C' in peers else 'pynep'
                ratios = round_ratios(timings[best], timings['ours'])
                report.goal(f'FPS on NEP descriptors of LLZO MD snapshots ({len(points)} points, seed set {m}), '
                            f'against {best}', 'PyNEP / ours >= 5 (median), identical picks',
                            f'{statistics.median(ratios):.1f}x (min {min(ratios):.1f}x), identical {identical}',
                            statistics.median(ratios) >= 5 and identical, load)
    print(load_text())
    report.write(args.json)


if __name__ == '__main__':
    main()
