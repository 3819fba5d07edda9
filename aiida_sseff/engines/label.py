"""Single points of many structures with one ASE calculator: energy (eV), forces (eV/Å), stress (eV/Å³, ASE sign)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from aiida_sseff.io.structures import attach_labels


def label_structures(structures: Sequence[Atoms], calculator) -> tuple[list[Atoms], list[dict], float]:
    """Label each structure; a structure whose calculation fails or gives non-finite numbers is left out and reported.

    :returns: (labelled structures, failures as ``{'index', 'reason'}``, wall time in s)
    """
    labelled, failures = [], []
    start = time.perf_counter()
    for index, atoms in enumerate(structures):
        atoms = atoms.copy()
        info = dict(atoms.info)
        atoms.calc = calculator
        try:
            energy = float(atoms.get_potential_energy())
            forces = np.array(atoms.get_forces(), dtype=float)
            stress = np.array(atoms.get_stress(voigt=False), dtype=float) if atoms.pbc.all() else None
        except Exception as exception:  # any calculator failure: report it, never keep a wrong label
            failures.append({'index': index, 'reason': f'{type(exception).__name__}: {exception}'})
            continue
        values = [energy, forces] + ([stress] if stress is not None else [])
        if not all(np.isfinite(v).all() for v in values):
            failures.append({'index': index, 'reason': 'non-finite energy, forces or stress'})
            continue
        result = Atoms(atoms.get_chemical_symbols(), atoms.get_positions(), cell=atoms.cell, pbc=atoms.pbc)
        result.info.update({k: v for k, v in info.items() if k not in ('energy', 'stress', 'virial')})
        result.info['source_index'] = index
        attach_labels(result, energy=energy, forces=forces, stress=stress)
        labelled.append(result)
    return labelled, failures, time.perf_counter() - start
