"""Benchmark: our MSD + D (aiida_sseff.analysis) against pymatgen-analysis-diffusion and kinisi, same arrays.

Synthetic but realistic trajectory: 3,584 Li (as in a 4×4×4 LLZO cell) hopping between sites (~2 Å jumps,
2 % of the frames) on top of a thermal vibration of 0.15 Å, plus 64 framework atoms that only vibrate, in a
52.3 Å cubic cell, 0.1 ps between frames (2 fs × 50 steps). Positions are float32 (as a dumped trajectory).

Prints wall times and their ratios (peer / ours, measured in this run on this machine) and the peak memory of
each analysis relative to the float32 positions array (tracemalloc peak of new allocations, and the growth of the
process's maximum resident set). The peers are slow on the full size, so they run on the first ``--peer-frames``
frames, and ours is timed again on exactly that array.

    python benchmarks/bench_msd.py                       # full: 3584 Li × 10000 frames; peers on 1000 frames
    python benchmarks/bench_msd.py --frames 2000 --peer-frames 500 --atoms 512     # quick
"""

from __future__ import annotations

import argparse
import gc
import resource
import time
import tracemalloc
import warnings

import numpy as np

DT_PS = 0.1
CELL = 52.3
N_FRAMEWORK = 64


def make_trajectory(n_li: int, n_frames: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """(n_frames, n_li + 64, 3) float32 unwrapped positions (Å) and symbols, generated frame-chunk by chunk."""
    rng = np.random.default_rng(seed)
    n = n_li + N_FRAMEWORK
    pos = np.empty((n_frames, n, 3), dtype=np.float32)
    sites = rng.uniform(0, CELL, (n, 3))
    carry = np.zeros((n_li, 3))
    chunk = 500
    for start in range(0, n_frames, chunk):
        m = min(chunk, n_frames - start)
        hops = rng.normal(size=(m, n_li, 3))
        hops *= (2.0 / np.linalg.norm(hops, axis=2, keepdims=True)) * (rng.random((m, n_li, 1)) < 0.02)
        walk = carry + np.cumsum(hops, axis=0)
        carry = walk[-1]
        frame = np.empty((m, n, 3))
        frame[:, :n_li] = sites[:n_li] + walk
        frame[:, n_li:] = sites[n_li:]
        frame += rng.normal(scale=0.15, size=frame.shape)
        pos[start:start + m] = frame
    return pos, ['Li'] * n_li + ['O'] * N_FRAMEWORK


def measure(label, func):
    """Run ``func()``; return (result, seconds, tracemalloc peak bytes, max-RSS growth bytes)."""
    gc.collect()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    t0 = time.perf_counter()
    result = func()
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f'  {label:<48s} {seconds:9.2f} s   peak new allocations {peak / 2**20:8.0f} MiB   '
          f'max-RSS growth {(rss1 - rss0) / 2**20:8.0f} MiB', flush=True)
    return result, seconds, peak, rss1 - rss0


def ours(pos, symbols):
    from aiida_sseff.analysis.diffusion import analyse_transport

    return analyse_transport(pos, symbols, DT_PS, 'Li', temperature_K=1000.0, volume_A3=CELL**3)


def ours_msd_only(pos, li):
    from aiida_sseff.analysis.msd import msd_fft

    return msd_fft(pos, indices=li)


def pymatgen_peer(pos, symbols):
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer
    from pymatgen.core import Lattice, Structure

    structure = Structure(Lattice.cubic(CELL), symbols, pos[0].astype(float) % CELL, coords_are_cartesian=True)
    disp = np.ascontiguousarray(np.transpose(pos - pos[0], (1, 0, 2)), dtype=float)  # (site, step, 3) Å

    def run():
        # time_step 2 fs, step_skip 50: 0.1 ps between frames; smoothed='max' averages over time origins
        return DiffusionAnalyzer(structure, disp, 'Li', 1000.0, 2, 50, smoothed='max')

    return run


def kinisi_peer(pos, symbols, n_lags=None):
    import scipp as sc
    from kinisi.displacement import calculate_msd
    from kinisi.parser import Parser

    n_frames = pos.shape[0]
    frac = (pos.astype(float) / CELL) % 1.0
    coords = sc.array(dims=['time', 'particle', 'dimension'], values=frac)
    latt = sc.array(dims=['time', 'dimension1', 'dimension2'], values=np.tile(np.eye(3) * CELL, (n_frames, 1, 1)),
                    unit=sc.units.angstrom)
    li = np.flatnonzero(np.asarray(symbols) == 'Li')
    fw = np.flatnonzero(np.asarray(symbols) != 'Li')
    dt = None
    if n_lags is not None:
        lags = np.unique(np.round(np.linspace(1, n_frames - 1, n_lags)).astype(int))
        dt = sc.array(dims=['time interval'], values=lags * 0.1, unit='ps')

    def run():
        parser = Parser(coords, latt, time_step=0.002 * sc.Unit('ps'), step_skip=50 * sc.units.dimensionless, dt=dt,
                        specie_indices=sc.array(dims=['particle'], values=li),
                        drift_indices=sc.array(dims=['particle'], values=fw))
        return calculate_msd(parser, progress=False)

    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--atoms', type=int, default=3584, help='number of Li (default 3584)')
    ap.add_argument('--frames', type=int, default=10000, help='frames of the full trajectory (default 10000)')
    ap.add_argument('--peer-frames', type=int, default=1000, help='frames given to the peers (default 1000)')
    ap.add_argument('--kinisi-lags', type=int, default=None,
                    help='lags for kinisi (default: all, its own default)')
    ap.add_argument('--skip-peers', action='store_true')
    args = ap.parse_args()
    warnings.simplefilter('ignore')

    pos, symbols = make_trajectory(args.atoms, args.frames)
    li = np.flatnonzero(np.asarray(symbols) == 'Li')
    ref = pos.nbytes
    print(f'positions: {pos.shape} float32 = {ref / 2**20:.0f} MiB (memory ratios below are relative to this)')
    print(f'\nfull size, ours ({args.atoms} Li × {args.frames} frames):')
    _, t_msd, peak_msd, rss_msd = measure('msd_fft (tracer MSD, all lags)', lambda p=pos: ours_msd_only(p, li))
    full, t_full, peak_full, rss_full = measure('analyse_transport (MSD, D*±σ, D_σ±σ, H, σ)',
                                                lambda p=pos: ours(p, symbols))
    print(f'  memory ratio msd_fft: tracemalloc {peak_msd / ref:.2f}×, RSS {rss_msd / ref:.2f}×; '
          f'analyse_transport: tracemalloc {peak_full / ref:.2f}×, RSS {rss_full / ref:.2f}×')
    print(f'  D* = {full.tracer.d_cm2_s:.4e} ± {full.tracer.d_err_cm2_s:.1e} cm²/s (GLS); '
          f'H = {full.haven_ratio:.2f} ± {full.haven_ratio_err:.2f}')
    # hop model: D = rate·a²/6 with a = 2 Å, rate = 0.02/0.1 ps ⇒ 0.1333 Å²/ps = 1.333e-5 cm²/s
    print('  expected D* (hop model: 0.02 hops/frame × (2 Å)² / 6 / 0.1 ps) = 1.3333e-05 cm²/s')
    if args.skip_peers:
        return
    sub = np.ascontiguousarray(pos[:args.peer_frames])
    del pos
    gc.collect()
    ref_sub = sub.nbytes
    print(f'\nreduced size for the peers: {args.atoms} Li × {args.peer_frames} frames '
          f'({ref_sub / 2**20:.0f} MiB float32); the peers are far slower at the full size')
    res_ours, t_ours, peak_ours, _ = measure('ours: analyse_transport', lambda: ours(sub, symbols))
    _, t_ours_msd, peak_ours_msd, _ = measure('ours: msd_fft only', lambda: ours_msd_only(sub, li))
    run_pmg = pymatgen_peer(sub, symbols)
    pmg, t_pmg, peak_pmg, _ = measure('pymatgen-analysis-diffusion DiffusionAnalyzer', run_pmg)
    run_kin = kinisi_peer(sub, symbols, args.kinisi_lags)
    lags_text = 'all lags' if args.kinisi_lags is None else f'{args.kinisi_lags} lags'
    kin, t_kin, peak_kin, _ = measure(f'kinisi Parser + calculate_msd ({lags_text})', run_kin)

    print('\nratios (peer time / our time, same array, same run):')
    print(f'  pymatgen DiffusionAnalyzer / ours analyse_transport : {t_pmg / t_ours:8.1f}×')
    print(f'  kinisi calculate_msd       / ours msd_fft            : {t_kin / t_ours_msd:8.1f}×')
    print(f'  kinisi calculate_msd       / ours analyse_transport : {t_kin / t_ours:8.1f}×')
    print('peak memory relative to the float32 positions array (tracemalloc):')
    print(f'  ours analyse_transport {peak_ours / ref_sub:.2f}×, ours msd_fft {peak_ours_msd / ref_sub:.2f}×, '
          f'pymatgen {peak_pmg / ref_sub:.2f}×, kinisi {peak_kin / ref_sub:.2f}×')

    print('\nagreement (cm²/s; MSD in Å² at a few lags):')
    print(f'  D*: ours {res_ours.tracer.d_cm2_s:.4e} ± {res_ours.tracer.d_err_cm2_s:.1e} (GLS, 10–50 % window), '
          f'pymatgen {pmg.diffusivity:.4e} ± {pmg.diffusivity_std_dev:.1e}')
    t_ours_axis = res_ours.msd.time_ps
    for t_check in (2.0, 10.0, 30.0):
        k = int(round(t_check / DT_PS))
        if k >= len(t_ours_axis):
            continue
        line = f'  t = {t_check:5.1f} ps: ours {res_ours.msd.msd_total[k]:.4f}'
        j = np.flatnonzero(np.isclose(pmg.dt, t_check * 1000.0))
        if j.size:
            line += f', pymatgen {pmg.msd[j[0]]:.4f}'
        kin_t = kin['da'].coords['time interval'].values
        j = np.flatnonzero(np.isclose(kin_t, t_check))
        if j.size:
            line += f', kinisi {kin["da"].values[j[0]]:.4f}'
        print(line)


if __name__ == '__main__':
    main()
