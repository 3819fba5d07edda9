"""Benchmark: our MSD + D (aiida_sseff.analysis) against pymatgen-analysis-diffusion and kinisi, same arrays.

Synthetic but realistic trajectory: 3,584 Li (as in a 4×4×4 LLZO cell) hopping between sites (~2 Å jumps,
2 % of the frames) on top of a thermal vibration of 0.15 Å, plus 64 framework atoms that only vibrate, in a
52.3 Å cubic cell, 0.1 ps between frames (2 fs × 50 steps). Positions are float32 (as a dumped trajectory).

On the shared harness (``_harness.py``): the analyses compared are run interleaved round by round (``--repeat``,
default 3) and timed in CPU seconds of the process (single-threaded with OMP_NUM_THREADS=1), wall seconds beside;
printed are min / median, the per-round ratios peer / ours, the load average, and the peak memory of each analysis
relative to the float32 positions array (tracemalloc peak of new allocations, in one separate pass: tracemalloc
slows Python code down). The peers are slow on the full size, so they run on the first ``--peer-frames`` frames,
and ours is timed again on exactly that array. Goals (``--json``): pymatgen / ours >= 10 (issue #14), D* within 3σ
of the hop model and of pymatgen's.

    OMP_NUM_THREADS=1 python benchmarks/bench_msd.py           # full: 3584 Li × 10000 frames; peers on 1000 frames
    OMP_NUM_THREADS=1 python benchmarks/bench_msd.py --quick   # 512 Li × 2000 frames; peers on 500, kinisi 50 lags
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Report, add_arguments, interleaved, load_text, ratio_text, round_ratios  # noqa: E402

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


def peak_memory(func) -> tuple[object, int]:
    """Run ``func()`` once under tracemalloc; return its result and the peak bytes of new allocations (a separate
    pass from the timed rounds: tracemalloc slows Python code down)."""
    gc.collect()
    tracemalloc.start()
    result = func()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, peak


def timed_peers(peers: dict, repeat: int) -> tuple[dict, dict]:
    """The peers interleaved round by round, timed in CPU seconds of this process (single-threaded with
    OMP_NUM_THREADS=1; a loaded machine disturbs it less than wall time); each result keeps its wall seconds too."""
    def with_wall(function):
        def run():
            start = time.perf_counter()
            result = function()
            return result, time.perf_counter() - start
        return run

    return interleaved({name: with_wall(function) for name, function in peers.items()}, repeat=repeat,
                       clock=time.process_time, keep_results=True)


def print_timings(timings: dict, load: dict) -> None:
    for name, timing in timings.items():
        walls = [wall for _, wall in timing.results]
        print(f'  {name:<48s} CPU {timing.text()}   (wall {min(walls):.2f} / {statistics.median(walls):.2f} s)')
    print(f'  ({load_text(load["after"])})', flush=True)


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
    ap.add_argument('--quick', action='store_true', help='512 Li x 2000 frames, peers on 500 frames, kinisi 50 lags')
    add_arguments(ap)
    args = ap.parse_args()
    if args.quick:
        args.atoms, args.frames, args.peer_frames, args.kinisi_lags = 512, 2000, 500, 50
    warnings.simplefilter('ignore')
    report = Report('bench_msd.py')

    pos, symbols = make_trajectory(args.atoms, args.frames)
    li = np.flatnonzero(np.asarray(symbols) == 'Li')
    ref = pos.nbytes
    print(f'positions: {pos.shape} float32 = {ref / 2**20:.0f} MiB (memory ratios below are relative to this); '
          f'{args.repeat} rounds, interleaved, CPU s min / median; {load_text()}')
    print(f'\nfull size, ours ({args.atoms} Li × {args.frames} frames):')
    timings, load = timed_peers({'msd_fft (tracer MSD, all lags)': lambda p=pos: ours_msd_only(p, li),
                                 'analyse_transport (MSD, D*±σ, D_σ±σ, H, σ)': lambda p=pos: ours(p, symbols)},
                                args.repeat)
    print_timings(timings, load)
    full = timings['analyse_transport (MSD, D*±σ, D_σ±σ, H, σ)'].results[0][0]
    _, peak_msd = peak_memory(lambda p=pos: ours_msd_only(p, li))
    _, peak_full = peak_memory(lambda p=pos: ours(p, symbols))
    print(f'  peak new allocations (tracemalloc, one pass): msd_fft {peak_msd / ref:.2f}×, '
          f'analyse_transport {peak_full / ref:.2f}× the positions')
    print(f'  D* = {full.tracer.d_cm2_s:.4e} ± {full.tracer.d_err_cm2_s:.1e} cm²/s (GLS); '
          f'H = {full.haven_ratio:.2f} ± {full.haven_ratio_err:.2f}')
    # hop model: D = rate·a²/6 with a = 2 Å, rate = 0.02/0.1 ps ⇒ 0.1333 Å²/ps = 1.333e-5 cm²/s
    expected = 0.02 * 2.0**2 / 6 / DT_PS * 1e-4
    deviation = full.tracer.d_cm2_s / expected - 1
    print(f'  expected D* (hop model: 0.02 hops/frame × (2 Å)² / 6 / 0.1 ps) = {expected:.4e} cm²/s '
          f'({100 * deviation:+.1f} %)')
    report.goal('D* of the hop model (full size)', 'within 3 σ of the GLS error',
                f'{100 * deviation:+.1f} % ({abs(full.tracer.d_cm2_s - expected) / full.tracer.d_err_cm2_s:.1f} σ)',
                abs(full.tracer.d_cm2_s - expected) <= 3 * full.tracer.d_err_cm2_s, load)
    if args.skip_peers:
        report.write(args.json)
        return
    sub = np.ascontiguousarray(pos[:args.peer_frames])
    del pos
    gc.collect()
    ref_sub = sub.nbytes
    print(f'\nreduced size for the peers: {args.atoms} Li × {args.peer_frames} frames '
          f'({ref_sub / 2**20:.0f} MiB float32); the peers are far slower at the full size')
    lags_text = 'all lags' if args.kinisi_lags is None else f'{args.kinisi_lags} lags'
    names = {'ours': 'ours: analyse_transport', 'ours_msd': 'ours: msd_fft only',
             'pymatgen': 'pymatgen-analysis-diffusion DiffusionAnalyzer',
             'kinisi': f'kinisi Parser + calculate_msd ({lags_text})'}
    functions = {names['ours']: lambda: ours(sub, symbols), names['ours_msd']: lambda: ours_msd_only(sub, li)}
    missing = {}  # peer -> why it is not measured
    for key, make in (('pymatgen', lambda: pymatgen_peer(sub, symbols)),
                      ('kinisi', lambda: kinisi_peer(sub, symbols, args.kinisi_lags))):
        try:
            functions[names[key]] = make()
        except ImportError as exception:
            missing[key] = f'not installed ({exception})'
            print(f'  {names[key]}: {missing[key]}')
    names = {key: name for key, name in names.items() if key not in missing}
    timings, load = timed_peers(functions, args.repeat)
    print_timings(timings, load)
    t = {key: timings[name] for key, name in names.items()}
    if missing:
        for goal in ('pymatgen DiffusionAnalyzer / ours analyse_transport (CPU)', 'D* ours vs pymatgen (same array)'):
            if 'pymatgen' in missing:
                report.goal(goal, '>= 10 (median)' if 'CPU' in goal else 'within 3 σ (ours, GLS)',
                            f'pymatgen-analysis-diffusion {missing["pymatgen"]}', None, load)
        if 'kinisi' in missing:
            print(f'kinisi {missing["kinisi"]}')
        if 'pymatgen' in missing or 'kinisi' in missing:
            peaks = {key: peak_memory(functions[name])[1] / sub.nbytes for key, name in names.items()}
            print('peak memory relative to the float32 positions array (tracemalloc, one pass each): ' +
                  ', '.join(f'{key} {value:.2f}×' for key, value in peaks.items()))
            if 'kinisi' in t:
                print(f'kinisi calculate_msd / ours msd_fft (CPU, round by round): {ratio_text(t["kinisi"], t["ours_msd"])}')
            report.write(args.json)
            return
    print('\nratios (peer CPU time / ours, same array, round by round, min / median):')
    print(f'  pymatgen DiffusionAnalyzer / ours analyse_transport : {ratio_text(t["pymatgen"], t["ours"])}')
    print(f'  kinisi calculate_msd       / ours msd_fft            : {ratio_text(t["kinisi"], t["ours_msd"])}')
    print(f'  kinisi calculate_msd       / ours analyse_transport : {ratio_text(t["kinisi"], t["ours"])}')
    pymatgen_ratios = round_ratios(t['pymatgen'], t['ours'])
    report.goal('pymatgen DiffusionAnalyzer / ours analyse_transport (CPU)', '>= 10 (median)',
                f'{statistics.median(pymatgen_ratios):.1f} (min {min(pymatgen_ratios):.1f}; '
                f'{args.atoms} Li × {args.peer_frames} frames)', statistics.median(pymatgen_ratios) >= 10, load)
    peaks = {key: peak_memory(functions[name])[1] / ref_sub for key, name in names.items()}
    print('peak memory relative to the float32 positions array (tracemalloc, one pass each):')
    print(f'  ours analyse_transport {peaks["ours"]:.2f}×, ours msd_fft {peaks["ours_msd"]:.2f}×, '
          f'pymatgen {peaks["pymatgen"]:.2f}×, kinisi {peaks["kinisi"]:.2f}×')

    res_ours, pmg, kin = t['ours'].results[0][0], t['pymatgen'].results[0][0], t['kinisi'].results[0][0]
    print('\nagreement (cm²/s; MSD in Å² at a few lags):')
    print(f'  D*: ours {res_ours.tracer.d_cm2_s:.4e} ± {res_ours.tracer.d_err_cm2_s:.1e} (GLS, 10–50 % window), '
          f'pymatgen {pmg.diffusivity:.4e} ± {pmg.diffusivity_std_dev:.1e}')
    agreement = res_ours.tracer.d_cm2_s / pmg.diffusivity - 1
    report.goal('D* ours vs pymatgen (same array)', 'within 3 σ (ours, GLS)',
                f'{100 * agreement:+.1f} % ({abs(res_ours.tracer.d_cm2_s - pmg.diffusivity) / res_ours.tracer.d_err_cm2_s:.1f} σ)',
                abs(res_ours.tracer.d_cm2_s - pmg.diffusivity) <= 3 * res_ours.tracer.d_err_cm2_s, load)
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
    report.write(args.json)


if __name__ == '__main__':
    main()
