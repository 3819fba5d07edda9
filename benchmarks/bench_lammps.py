"""Benchmark: LAMMPS MD speed of the classical baseline (Du/Teter Buckingham + PPPM Coulomb) on the LLZO cell, in
atom-steps per second, and (``--nep``) that of CPUNEP (calorine, the CPU engine's NEP calculator) in the same run.

The input is exactly what ``sseff.lammps.md`` runs: the script of :func:`aiida_sseff.workflows.lammps.lammps_md_script`
and the data file of aiida-lammps' ``generate_lammps_structure`` (in a temporary AiiDA storage: no profile needed).
The speed is LAMMPS's own ``Performance: ... timesteps/s`` line of the production run (equilibration excluded)
times the number of atoms. The structure is a 192-atom LLZO cell from ../shared/reference (``--structure`` for
another file), optionally replicated.

    python benchmarks/bench_lammps.py                          # 192 atoms, 2000 NVT steps at 1000 K, 1 thread
    python benchmarks/bench_lammps.py --replicate 2 --nep      # 1536 atoms; and CPUNEP (nep25_zbl.txt) on the same
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[1].parent / 'shared' / 'reference' / 'llzo'


def lammps_speed(atoms, steps: int, threads: int, executable: str) -> dict:
    """Run the production MD of ``sseff.lammps.md`` on ``atoms``; LAMMPS's timesteps/s and the wall time."""
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
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, 'structure.dat').write_text(data)
        Path(tmp, 'input.in').write_text(script)
        env = {**os.environ, 'OMP_NUM_THREADS': str(threads)}
        start = time.perf_counter()
        out = subprocess.run([executable, '-in', 'input.in'], cwd=tmp, env=env, capture_output=True, text=True,
                             check=True).stdout
        wall = time.perf_counter() - start
    speeds = [float(m) for m in re.findall(r'Performance:.*?([0-9.]+) timesteps/s', out)]
    version = re.search(r'LAMMPS \(([^)]+)\)', out)
    return {'timesteps_per_s': speeds[-1], 'wall_s': wall, 'version': version.group(1) if version else '?'}


def nep_speed(atoms, steps: int, model: Path) -> float:
    """CPUNEP (calorine) + ASE velocity Verlet: MD steps per second on ``atoms``."""
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
    start = time.perf_counter()
    dyn.run(steps)
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--structure', type=Path, default=REFERENCE / 'nep_training' / 'train.xyz')
    parser.add_argument('--index', type=int, default=24, help='frame of --structure (24: the near-cubic cell)')
    parser.add_argument('--replicate', type=int, default=1, help='repeat the cell n×n×n')
    parser.add_argument('--steps', type=int, default=2000)
    parser.add_argument('--threads', type=int, default=1, help='OMP_NUM_THREADS for LAMMPS')
    parser.add_argument('--lmp', default=shutil.which('lmp') or shutil.which('lmp_serial'))
    parser.add_argument('--nep', action='store_true', help='also time CPUNEP (nep25_zbl.txt) on the same cell')
    parser.add_argument('--nep-steps', type=int, default=100)
    args = parser.parse_args()
    if args.lmp is None:
        parser.error('no LAMMPS executable (lmp) found: run scripts/install-system-deps.sh or give --lmp')
    if not args.structure.is_file():
        parser.error(f'{args.structure} not found (the LLZO reference data beside the repository)')
    from ase.io import read

    atoms = read(args.structure, args.index).repeat(args.replicate)
    n = len(atoms)
    result = lammps_speed(atoms, args.steps, args.threads, args.lmp)
    lammps_rate = result['timesteps_per_s'] * n
    print(f'LLZO cell: {n} atoms ({atoms.get_chemical_formula()}), {args.steps} NVT steps at 1 fs, 1000 K')
    print(f'LAMMPS {result["version"]} ({args.lmp}), {args.threads} thread(s), Du/Teter buck/coul/long 10 Å + '
          f'PPPM 1e-5:')
    print(f'  {result["timesteps_per_s"]:.1f} steps/s = {lammps_rate:.3g} atom-steps/s '
          f'(whole run incl. equilibration and set-up: {result["wall_s"]:.1f} s wall)')
    if args.nep:
        model = REFERENCE / 'nep25_zbl.txt'
        rate = nep_speed(atoms, args.nep_steps, model) * n
        print(f'CPUNEP ({model.name}, calorine, ASE velocity Verlet, 1 process): {rate:.3g} atom-steps/s')
        print(f'  LAMMPS classical / CPUNEP = {lammps_rate / rate:.1f}')


if __name__ == '__main__':
    main()
