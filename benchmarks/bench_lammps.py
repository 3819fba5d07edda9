"""Benchmark: LAMMPS MD speed of the classical baseline (Du/Teter Buckingham + PPPM Coulomb) on the LLZO cell, in
atom-steps per second, and (``--nep``) that of CPUNEP (calorine, the CPU engine's NEP calculator) in the same run.

The input is exactly what ``sseff.lammps.md`` runs: the script of :func:`aiida_sseff.workflows.lammps.lammps_md_script`
and the data file of aiida-lammps' ``generate_lammps_structure`` (in a temporary AiiDA storage: no profile needed).
The speed is in atom-steps per CPU second of the production run (equilibration and set-up excluded): for LAMMPS its
own ``Loop time of T`` line of the production run times its ``N% CPU use`` (the loop's CPU time), for CPUNEP the
process CPU time of ``dyn.run(steps)`` after 5 warm-up steps; both single-threaded (on the shared 2-core machine wall
times were several times longer and varied from run to run: they are printed beside). On the shared harness
(``_harness.py``): the two are interleaved round by round (``--repeat``, default 3), min / median, the load average.
The structure is a 192-atom LLZO cell from ../shared/reference (``--structure`` for another file), optionally
replicated.

    OMP_NUM_THREADS=1 python benchmarks/bench_lammps.py             # 192 atoms, 2000 LAMMPS / 200 CPUNEP steps
    OMP_NUM_THREADS=1 python benchmarks/bench_lammps.py --quick     # 500 LAMMPS / 60 CPUNEP steps
    python benchmarks/bench_lammps.py --replicate 2 --no-nep        # 1536 atoms, LAMMPS alone
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Report, add_arguments, interleaved, load_text  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1].parent / 'shared' / 'reference' / 'llzo'


def lammps_input(atoms, steps: int) -> tuple[str, str]:
    """The data file and the input script of ``sseff.lammps.md``'s production MD on ``atoms``."""
    from aiida import load_profile, orm
    from aiida.storage.sqlite_temp import SqliteTempBackend
    from aiida_lammps.parsers.utils import generate_lammps_structure

    from aiida_sseff.potentials.classical import classical_potential
    from aiida_sseff.workflows.lammps import _kind_charges, _type_symbols, lammps_md_script

    load_profile(SqliteTempBackend.create_profile('bench-lammps'), allow_switch=True)
    structure = orm.StructureData(ase=atoms)
    potential = classical_potential()
    data, _ = generate_lammps_structure(structure, 'charge', charge_dict=_kind_charges(structure, potential))
    script = lammps_md_script(potential, _type_symbols(structure),
                              {'temperature_K': 1000.0, 'timestep_fs': 1.0, 'n_equilibration_steps': 100,
                               'n_steps': steps, 'trajectory_interval': 100})
    return data, script


def lammps_speed(data: str, script: str, n_atoms: int, threads: int, executable: str) -> dict:
    """Run LAMMPS on the input; atom-steps per CPU second and per wall second of the production run (its last
    ``Loop time`` line and ``% CPU use``), the wall time of the whole program and LAMMPS's version."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, 'structure.dat').write_text(data)
        Path(tmp, 'input.in').write_text(script)
        env = {**os.environ, 'OMP_NUM_THREADS': str(threads)}
        start = time.perf_counter()
        out = subprocess.run([executable, '-in', 'input.in'], cwd=tmp, env=env, capture_output=True, text=True,
                             check=True).stdout
        wall = time.perf_counter() - start
    loops = re.findall(r'Loop time of ([0-9.eE+-]+) on \d+ procs for (\d+) steps', out)
    usage = re.findall(r'([0-9.]+)% CPU use', out)
    if not loops or len(usage) != len(loops):
        raise RuntimeError(f'no "Loop time" / "% CPU use" lines in the LAMMPS output:\n{out[-1500:]}')
    loop_wall, steps = float(loops[-1][0]), int(loops[-1][1])
    loop_cpu = loop_wall * float(usage[-1]) / 100
    version = re.search(r'LAMMPS \(([^)]+)\)', out)
    return {'rate_cpu': n_atoms * steps / loop_cpu, 'rate_wall': n_atoms * steps / loop_wall, 'program_wall_s': wall,
            'version': version.group(1) if version else '?'}


def nep_speed(atoms, steps: int, model: Path) -> dict:
    """CPUNEP (calorine) + ASE velocity Verlet on ``atoms``: atom-steps per CPU and per wall second."""
    import numpy as np
    from ase import units
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet
    from calorine.calculators import CPUNEP

    atoms = atoms.copy()
    atoms.calc = CPUNEP(str(model))
    thermalize_momenta(atoms, temperature_K=1000.0, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.run(5)  # warm-up (neighbour list, first evaluation)
    cpu, wall = time.process_time(), time.perf_counter()
    dyn.run(steps)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {'rate_cpu': len(atoms) * steps / cpu, 'rate_wall': len(atoms) * steps / wall}


def _rates(results: list[dict], key: str) -> str:
    values = [result[key] for result in results]
    return f'{min(values):.3g} / {statistics.median(values):.3g}'


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--structure', type=Path, default=REFERENCE / 'nep_training' / 'train.xyz')
    parser.add_argument('--index', type=int, default=24, help='frame of --structure (24: the near-cubic cell)')
    parser.add_argument('--replicate', type=int, default=1, help='repeat the cell n×n×n')
    parser.add_argument('--steps', type=int, default=2000, help='LAMMPS production steps')
    parser.add_argument('--threads', type=int, default=1, help='OMP_NUM_THREADS for LAMMPS')
    parser.add_argument('--lmp', default=shutil.which('lmp') or shutil.which('lmp_serial'))
    parser.add_argument('--no-nep', dest='nep', action='store_false', help='LAMMPS alone, no CPUNEP peer')
    parser.add_argument('--nep-steps', type=int, default=200)
    parser.add_argument('--quick', action='store_true', help='500 LAMMPS steps, 60 CPUNEP steps')
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.nep_steps = 500, 60
    if args.lmp is None:
        parser.error('no LAMMPS executable (lmp) found: run scripts/install-system-deps.sh or give --lmp')
    if not args.structure.is_file():
        parser.error(f'{args.structure} not found (the LLZO reference data beside the repository)')
    from ase.io import read

    report = Report('bench_lammps.py')
    atoms = read(args.structure, args.index).repeat(args.replicate)
    atoms.calc = None
    n = len(atoms)
    data, script = lammps_input(atoms, args.steps)
    model = REFERENCE / 'nep25_zbl.txt'
    peers = {'LAMMPS': lambda: lammps_speed(data, script, n, args.threads, args.lmp)}
    if args.nep:
        peers['CPUNEP'] = lambda: nep_speed(atoms, args.nep_steps, model)
    print(f'LLZO cell: {n} atoms ({atoms.get_chemical_formula()}), NVT 1 fs, 1000 K; {args.repeat} rounds, '
          f'interleaved; {load_text()}')
    timings, load = interleaved(peers, repeat=args.repeat, keep_results=True)
    lammps = timings['LAMMPS'].results
    print(f'LAMMPS {lammps[0]["version"]} ({args.lmp}), {args.threads} thread(s), Du/Teter buck/coul/long 10 Å + '
          f'PPPM 1e-5, {args.steps} production steps:')
    print(f'  atom-steps per CPU s {_rates(lammps, "rate_cpu")} (min / median; per wall s '
          f'{_rates(lammps, "rate_wall")}; whole program {timings["LAMMPS"].text()} wall)')
    if args.nep:
        nep = timings['CPUNEP'].results
        print(f'CPUNEP ({model.name}, calorine, ASE velocity Verlet, {args.nep_steps} steps after 5 warm-up):')
        print(f'  atom-steps per CPU s {_rates(nep, "rate_cpu")} (per wall s {_rates(nep, "rate_wall")})')
        ratios = [a['rate_cpu'] / b['rate_cpu'] for a, b in zip(lammps, nep, strict=True)]
        print(f'  LAMMPS classical / CPUNEP (CPU, round by round) = {min(ratios):.1f} / {statistics.median(ratios):.1f}; '
              f'{load_text(load["after"])}')
        report.goal(f'classical baseline (LAMMPS, 1 thread) vs CPUNEP, {n} atoms, atom-steps per CPU s',
                    'LAMMPS / CPUNEP >= 1 (median: the baseline is the cheaper model)',
                    f'{statistics.median(ratios):.1f} (min {min(ratios):.1f}; LAMMPS '
                    f'{statistics.median(r["rate_cpu"] for r in lammps):.3g}, CPUNEP '
                    f'{statistics.median(r["rate_cpu"] for r in nep):.3g})', statistics.median(ratios) >= 1, load)
    report.write(args.json)


if __name__ == '__main__':
    main()
