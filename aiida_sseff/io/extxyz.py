"""Extended-XYZ training sets for GPUMD ``nep`` and ``neppo train`` (``train.xyz`` / ``test.xyz``).

What GPUMD reads from line 2 of a frame (``src/main_nep/structure.cu``, keys case-insensitive): ``lattice=``
(mandatory), ``energy=`` (total, eV; mandatory for potentials), ``virial=`` (9 values, eV) or ``stress=`` (9 values,
eV/Å³, ASE sign: virial = -stress·V), ``weight=`` (0 < w <= 100); per-atom ``species:S:1``, ``pos:R:3`` and
``force:R:3`` or ``forces:R:3``. neppo reads the same file with ASE.

Writing reuses :func:`calorine.nep.io.write_structures` (ASE's extxyz writer: ``Lattice=``, ``energy=``,
``stress=`` in the ASE sign, ``forces:R:3``, ``weight=`` and ``config_type=`` from ``info``, ``pbc="T T T"``).
We feed it clean copies, because calorine passes through whatever the calculator holds (e.g. EMT's per-atom
``energies`` column and ``free_energy``) and keeps ``pbc`` as given: GPUMD ignores ``pbc`` for potentials and treats
every frame as periodic, whereas neppo honours ``pbc="F F F"`` (no periodic images), so a non-periodic frame would
be trained on two different structures. Frames must therefore be periodic (``pbc`` all True); a non-periodic frame
is refused rather than silently switched, since its labels may have been computed without periodic images.

Thin cells: GPUMD replicates a cell internally when a thickness is below 2·rc_R (``change_box`` in
``structure.cu``: ``num_cell = ceil(2 rc / thickness)``, thickness = V/|b×c| etc.); :func:`check_cell_thickness`
returns that replication. neppo 1.0 (``ase.neighborlist.neighbor_list``, all periodic images) and calorine 4.1's
``CPUNEP`` (nep_cpu, which always treats the cell as periodic) both handle cells thinner than 2·cutoff: verified
here on a 2-atom CsCl cell of thickness 2.95 Å with a 5 Å cutoff and a Li2O primitive cell (2.66 Å, 6 Å cutoff)
whose energy per atom, forces and stress equal those of 6x6x6 supercells (tests/io/test_extxyz.py).
The DESIGN.md claim holds for these versions; the replication matters only for GPUMD's own neighbour sizing.

Units: eV, Å, eV/Å, eV/Å³ (ASE stress). No aiida imports.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read
from ase.stress import full_3x3_to_voigt_6_stress
from calorine.nep.io import write_structures as _calorine_write_structures

from aiida_sseff.analysis.geometry import perpendicular_widths

__all__ = [
    'check_cell_thickness',
    'read_train_xyz',
    'write_train_xyz',
]

_KEPT_INFO = ('weight', 'config_type')


def _labels(atoms: Atoms, index: int) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Energy (eV), forces (eV/Å) and ASE Voigt stress (eV/Å³ or None) of frame ``index``; ValueError if missing."""
    results = {}
    if atoms.calc is not None:
        # ask the calculator (computes if needed, like calorine's writer); a missing property is simply absent
        for name, getter in (('energy', atoms.get_potential_energy), ('forces', atoms.get_forces),
                             ('stress', atoms.get_stress)):
            try:
                results[name] = getter()
            except (PropertyNotImplementedError, RuntimeError, NotImplementedError):
                pass
    energy = results.get('energy', atoms.info.get('energy'))
    forces = results.get('forces', atoms.arrays.get('forces', atoms.arrays.get('force')))
    if energy is None:
        raise ValueError(f'structure {index}: no energy; expected a calculator result or info["energy"] (eV)')
    if forces is None:
        raise ValueError(f'structure {index}: no forces; expected a calculator result or arrays["forces"] (eV/Å)')
    forces = np.asarray(forces, dtype=float)
    if forces.shape != (len(atoms), 3):
        raise ValueError(f'structure {index}: forces have shape {forces.shape}, expected ({len(atoms)}, 3)')
    stress = results.get('stress')
    if stress is None and 'stress' in atoms.info:
        stress = atoms.info['stress']
    if stress is None and 'virial' in atoms.info:
        virial = np.asarray(atoms.info['virial'], dtype=float).reshape(3, 3)
        stress = -virial / atoms.get_volume()  # GPUMD convention: virial = -stress * V
    if stress is not None:
        stress = np.asarray(stress, dtype=float)
        if stress.shape == (3, 3) or stress.size == 9:
            stress = full_3x3_to_voigt_6_stress(stress.reshape(3, 3))
        if stress.shape != (6,):
            raise ValueError(f'structure {index}: stress has shape {stress.shape}, expected 6 (Voigt) or 3x3')
    energy = float(np.asarray(energy).reshape(()))
    if not math.isfinite(energy) or not np.all(np.isfinite(forces)):
        raise ValueError(f'structure {index}: energy or forces are not finite')
    return energy, forces, stress


def write_train_xyz(structures: Sequence[Atoms], path: str | Path) -> Path:
    """Write labelled structures as a GPUMD/neppo ``train.xyz`` (or ``test.xyz``) and return the path.

    Each structure needs an energy (eV, total) and forces (eV/Å) -- from its calculator (e.g. a
    ``SinglePointCalculator``) or ``info['energy']``/``arrays['forces']`` -- and may carry a stress (calculator,
    ASE sign, eV/Å³) or ``info['virial']`` (9 values, eV; converted to stress = -virial/V). Frames without stress
    are written without ``stress=`` (GPUMD then stores the -1e6 sentinel). ``info['weight']`` (0 < w <= 100) and
    ``info['config_type']`` are kept; other info keys are dropped. Frames are written with ``pbc="T T T"``.

    :raises ValueError: empty list, a frame not periodic in all three directions (GPUMD treats every frame as
        periodic, neppo would not), missing/ill-shaped labels, zero-volume cell or weight out of (0, 100];
        the message names the structure index.
    """
    path = Path(path)
    if len(structures) == 0:
        raise ValueError(f'cannot write {path}: no structures')
    clean = []
    for index, atoms in enumerate(structures):
        if not np.all(atoms.pbc):
            raise ValueError(f'structure {index}: pbc={atoms.pbc.tolist()}, expected periodic in all directions '
                             '(GPUMD treats every frame as periodic, neppo honours pbc; set pbc=True if the labels '
                             'were computed periodically, e.g. in a vacuum box)')
        if atoms.cell.rank < 3 or abs(atoms.cell.volume) < 1e-9:
            raise ValueError(f'structure {index}: the cell has zero volume; GPUMD needs a full 3x3 lattice')
        energy, forces, stress = _labels(atoms, index)
        copy = Atoms(symbols=atoms.get_chemical_symbols(), positions=atoms.get_positions(), cell=atoms.get_cell(),
                     pbc=True)
        for key in _KEPT_INFO:
            if key in atoms.info:
                copy.info[key] = atoms.info[key]
        if 'weight' in copy.info:
            weight = float(copy.info['weight'])
            if not 0.0 < weight <= 100.0:
                raise ValueError(f'structure {index}: weight {weight} out of range, expected 0 < weight <= 100')
        results = {'energy': energy, 'forces': forces}
        if stress is not None:
            results['stress'] = stress
        copy.calc = SinglePointCalculator(copy, **results)
        clean.append(copy)
    with warnings.catch_warnings():
        # calorine warns for every frame without stress; stress-less frames are legitimate training data
        warnings.filterwarnings('ignore', message='Failed to retrieve stresses', category=UserWarning)
        _calorine_write_structures(str(path), clean)
    return path


def read_train_xyz(path: str | Path) -> list[Atoms]:
    """Read a ``train.xyz``/``test.xyz`` (GPUMD or ASE written) into ASE Atoms with a ``SinglePointCalculator``.

    ASE's extxyz reader already puts ``energy=``, ``stress=`` and ``forces``/``force`` on the calculator. A
    ``virial=`` key (eV) is converted to the ASE stress -virial/V (eV/Å³) when no ``stress=`` is present.
    Keys are matched case-insensitively, as GPUMD does: ASE needs ``Lattice=``/``Properties=`` capitalised and
    silently drops the cell and the forces of a GPUMD-style ``lattice=``/``properties=`` frame, so those two keys
    are capitalised before ASE parses the file.

    :raises ValueError: a frame without energy or forces (index named), or a file with no frames.
    :raises FileNotFoundError: missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path} does not exist')
    frames = read(io.StringIO(_canonical_keys(path)), index=':', format='extxyz')
    if not frames:
        raise ValueError(f'{path}: no frames')
    for index, atoms in enumerate(frames):
        calc = atoms.calc
        results = dict(calc.results) if calc is not None else {}
        if 'forces' not in results and 'force' in atoms.arrays:
            results['forces'] = atoms.arrays.pop('force')
        if 'energy' not in results and 'energy' in atoms.info:
            results['energy'] = float(atoms.info.pop('energy'))
        virial_key = next((k for k in atoms.info if k.lower() == 'virial'), None)
        if 'stress' not in results and virial_key is not None:
            virial = np.asarray(atoms.info.pop(virial_key), dtype=float).reshape(3, 3)
            results['stress'] = full_3x3_to_voigt_6_stress(-virial / atoms.get_volume())
        if 'energy' not in results or 'forces' not in results:
            raise ValueError(f'{path}, frame {index}: missing energy= or force(s):R:3')
        atoms.calc = SinglePointCalculator(atoms, **results)
    return frames


_KEY_PATTERN = re.compile(r'(?<![\w"])(lattice|properties)=', flags=re.IGNORECASE)


def _canonical_keys(path: Path) -> str:
    """Text of an extxyz file with ``lattice=``/``properties=`` on every comment line spelt as ASE expects."""
    lines = path.read_text().splitlines(keepends=True)
    index = 0
    while index < len(lines):
        count = lines[index].strip()
        if not count:
            index += 1
            continue
        if not count.isdigit() or index + 1 >= len(lines):
            raise ValueError(f'{path}, line {index + 1}: expected the number of atoms, got {count!r}')
        lines[index + 1] = _KEY_PATTERN.sub(lambda m: m.group(1).capitalize() + '=', lines[index + 1])
        index += 2 + int(count)
    return ''.join(lines)


def check_cell_thickness(atoms: Atoms, cutoff: float) -> tuple[int, int, int]:
    """Replication (n_a, n_b, n_c) GPUMD ``nep`` applies to this cell for radial cutoff ``cutoff`` (Å).

    n_i = ceil(2·cutoff / thickness_i), as in ``change_box`` of GPUMD's ``src/main_nep/structure.cu``;
    (1, 1, 1) means no thickness is below 2·cutoff. neppo and calorine's CPUNEP need no replication (see the
    module docstring); GPUMD does it internally, so this is informational (e.g. memory estimates, warnings).
    """
    if not cutoff > 0:
        raise ValueError(f'cutoff must be positive (Å), got {cutoff}')
    thickness = perpendicular_widths(atoms)
    return tuple(int(math.ceil(2.0 * cutoff / t - 1e-9)) for t in thickness)
