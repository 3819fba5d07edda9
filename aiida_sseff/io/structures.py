"""Validation and (de)serialisation of labelled structure sets as extended XYZ, without AiiDA.

Conventions (DESIGN.md): energies are total energies in eV, forces in eV/Å, stress in eV/Å³ with the ASE sign
(positive = tensile, so the virial is ``-stress * volume``). The file written here is the one stored in a
``sseff.dataset`` node and the one ``nep``/``neppo`` read as ``train.xyz`` after :func:`aiida_sseff.io.nep` adds
their keys, so it is written by ASE's extxyz writer (well kept, read by every code of the field).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from aiida_sseff.units import EV_PER_A3_IN_GPA

__all__ = [
    'DatasetValidationError',
    'attach_labels',
    'get_labels',
    'read_extxyz',
    'sha256_bytes',
    'split_xyz_frames',
    'summarise',
    'validate_structures',
    'write_extxyz_bytes',
]

# Plausibility bounds that catch numbers given in the wrong unit (meV, kbar, GPa, kJ/mol). They are far beyond
# anything physical for a condensed phase, so a real structure never trips them.
MAX_ABS_ENERGY_PER_ATOM_EV = 1.0e3  # the most negative DFT total energy per atom is about -1e3 eV (all-electron)
MAX_ABS_FORCE_EV_PER_A = 1.0e3
MAX_ABS_STRESS_EV_PER_A3 = 5.0  # 5 eV/Å³ = 801 GPa


class DatasetValidationError(ValueError):
    """A structure set that cannot be a training/validation set; the message names the structure index."""


def get_labels(atoms: Atoms) -> dict:
    """Return the labels carried by ``atoms`` (from its calculator results or its ``info``/``arrays``).

    Recognised: ``energy`` (eV), ``forces`` (eV/Å, N×3), ``stress`` (eV/Å³, Voigt 6 or 3×3, ASE sign) or ``virial``
    (eV, 9 values or 3×3; converted to stress = −virial/V).
    """
    labels: dict = {}
    calc = atoms.calc
    results = getattr(calc, 'results', {}) if calc is not None else {}
    for key in ('energy', 'forces', 'stress'):
        if key in results and results[key] is not None:
            labels[key] = np.asarray(results[key], dtype=float)
    for key in ('energy', 'stress', 'virial'):
        if key not in labels and key in atoms.info:
            labels[key] = np.asarray(atoms.info[key], dtype=float)
    for key in ('forces', 'force'):
        if 'forces' not in labels and key in atoms.arrays:
            labels['forces'] = np.asarray(atoms.arrays[key], dtype=float)
    return labels


def _stress_from_virial(virial: np.ndarray, volume: float) -> np.ndarray:
    return -np.asarray(virial, dtype=float).reshape(3, 3) / volume


def _as_3x3(stress: np.ndarray) -> np.ndarray:
    stress = np.asarray(stress, dtype=float)
    if stress.shape == (6,):
        xx, yy, zz, yz, xz, xy = stress
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return stress.reshape(3, 3)


def validate_structures(structures: Sequence[Atoms], require_labels: bool = True) -> list[Atoms]:
    """Check a list of structures and return copies with labels attached as calculator results.

    :param require_labels: every structure must carry a finite total energy and an N×3 force array; when False the
        structures may be unlabelled, but labels that are present are still checked.
    :raises DatasetValidationError: naming the structure index and the problem (empty set, missing energy or forces,
        wrong force shape, NaN/inf, a number in the wrong unit, a stress and a virial that disagree).
    """
    structures = list(structures)
    if not structures:
        raise DatasetValidationError('the structure set is empty')
    checked = []
    for index, atoms in enumerate(structures):
        if not isinstance(atoms, Atoms):
            raise DatasetValidationError(f'structure {index}: expected an ase.Atoms, got {type(atoms).__name__}')
        n_atoms = len(atoms)
        if n_atoms == 0:
            raise DatasetValidationError(f'structure {index}: has no atoms')
        if not np.all(np.isfinite(atoms.positions)):
            raise DatasetValidationError(f'structure {index}: positions contain NaN or inf')
        if atoms.pbc.any() and abs(atoms.cell.volume) < 1e-6:
            raise DatasetValidationError(f'structure {index}: periodic but its cell has zero volume')
        labels = get_labels(atoms)
        if require_labels:
            for key in ('energy', 'forces'):
                if key not in labels:
                    raise DatasetValidationError(f'structure {index}: missing {key}')
        energy = labels.get('energy')
        if energy is not None:
            if energy.size != 1 or not np.isfinite(energy).all():
                raise DatasetValidationError(f'structure {index}: energy is not a finite number ({energy})')
            energy = float(energy)
            if abs(energy) / n_atoms > MAX_ABS_ENERGY_PER_ATOM_EV:
                raise DatasetValidationError(
                    f'structure {index}: energy {energy:.6g} eV is {energy / n_atoms:.3g} eV/atom; expected the total '
                    'energy in eV (was it given in meV or kJ/mol?)'
                )
        forces = labels.get('forces')
        if forces is not None:
            if forces.shape != (n_atoms, 3):
                raise DatasetValidationError(
                    f'structure {index}: forces have shape {forces.shape}, expected ({n_atoms}, 3)'
                )
            if not np.isfinite(forces).all():
                raise DatasetValidationError(f'structure {index}: forces contain NaN or inf')
            if np.abs(forces).max() > MAX_ABS_FORCE_EV_PER_A:
                raise DatasetValidationError(
                    f'structure {index}: a force component of {np.abs(forces).max():.3g} eV/Å; expected eV/Å '
                    '(wrong unit, or overlapping atoms)'
                )
        stress = labels.get('stress')
        virial = labels.get('virial')
        if (stress is not None or virial is not None) and not atoms.pbc.all():
            raise DatasetValidationError(f'structure {index}: a stress or virial needs a periodic cell')
        if virial is not None:
            if virial.size != 9 or not np.isfinite(virial).all():
                raise DatasetValidationError(f'structure {index}: virial must be 9 finite numbers (eV)')
            from_virial = _stress_from_virial(virial, atoms.cell.volume)
            if stress is not None and not np.allclose(_as_3x3(stress), from_virial, atol=1e-6, rtol=1e-4):
                raise DatasetValidationError(
                    f'structure {index}: stress and virial disagree (expected virial = -stress * volume, stress in '
                    'eV/Å³ with the ASE sign)'
                )
            stress = from_virial
        if stress is not None:
            if stress.size not in (6, 9) or not np.isfinite(stress).all():
                raise DatasetValidationError(f'structure {index}: stress must be 6 or 9 finite numbers (eV/Å³)')
            stress = _as_3x3(stress)
            if np.abs(stress).max() > MAX_ABS_STRESS_EV_PER_A3:
                raise DatasetValidationError(
                    f'structure {index}: a stress component of {np.abs(stress).max():.3g} eV/Å³ '
                    f'({np.abs(stress).max() * EV_PER_A3_IN_GPA:.3g} GPa); expected eV/Å³ (was it given in GPa or kbar?)'
                )
        copy = Atoms(
            symbols=atoms.get_chemical_symbols(),
            positions=atoms.get_positions(),
            cell=atoms.get_cell(),
            pbc=atoms.get_pbc(),
        )
        for key, value in atoms.info.items():
            if key in ('energy', 'stress', 'virial', 'free_energy'):
                continue
            copy.info[key] = value
        if 'weight' in copy.info:
            weight = float(copy.info['weight'])
            if not 0 < weight <= 100:
                raise DatasetValidationError(f'structure {index}: weight {weight} outside (0, 100] (GPUMD range)')
        attach_labels(copy, energy=energy, forces=forces, stress=stress)
        checked.append(copy)
    return checked


def attach_labels(atoms: Atoms, energy=None, forces=None, stress=None) -> Atoms:
    """Attach labels as a SinglePointCalculator (the form ASE's extxyz writer stores as ``energy``/``forces``/``stress``)."""
    results = {}
    if energy is not None:
        results['energy'] = float(energy)
    if forces is not None:
        results['forces'] = np.asarray(forces, dtype=float)
    if stress is not None:
        results['stress'] = _as_3x3(stress)
    atoms.calc = SinglePointCalculator(atoms, **results) if results else None
    return atoms


def write_extxyz_bytes(structures: Iterable[Atoms]) -> bytes:
    """Serialise structures to extended XYZ bytes (ASE writer, full float precision)."""
    handle = io.StringIO()
    write(handle, list(structures), format='extxyz', write_results=True)
    return handle.getvalue().encode('utf-8')


def read_extxyz(source: str | Path | bytes) -> list[Atoms]:
    """Read an extended XYZ file (path or bytes) into ASE atoms with labels as calculator results."""
    if isinstance(source, bytes):
        handle = io.StringIO(source.decode('utf-8'))
        return list(read(handle, index=':', format='extxyz'))
    return list(read(str(source), index=':', format='extxyz'))


def split_xyz_frames(content: bytes) -> list[bytes]:
    """The frames of (extended) XYZ content, each as its own bytes exactly as in the file, in file order.

    A frame is its atom-count line, its comment line (the extxyz header) and one line per atom; blank lines between
    frames are dropped. Used to write a selection of frames verbatim (``aiida-sseff sample fps``) rather than through
    ASE's writer again: the selected structures keep every key and digit of the file, and re-serialising them was a
    quarter of the FPS pipeline's cost beyond the descriptors (issue #14). Each frame ends with a newline.

    :raises ValueError: a count line that is not a non-negative integer, or a frame with fewer lines than it says.
    """
    lines = content.splitlines(keepends=True)
    frames, position = [], 0
    while position < len(lines):
        count_line = lines[position]
        if not count_line.strip():
            position += 1
            continue
        try:
            n_atoms = int(count_line)
        except ValueError:
            raise ValueError(f'line {position + 1}: expected the atom count of a frame, got '
                             f'{count_line[:40].decode(errors="replace").strip()!r}') from None
        if n_atoms < 0:
            raise ValueError(f'line {position + 1}: negative atom count {n_atoms}')
        frame = lines[position:position + n_atoms + 2]
        if len(frame) < n_atoms + 2:
            raise ValueError(f'line {position + 1}: the frame of {n_atoms} atoms ends after {len(frame) - 2} atom '
                             'lines (file cut short)')
        if not frame[-1].endswith((b'\n', b'\r')):
            frame[-1] += b'\n'
        frames.append(b''.join(frame))
        position += n_atoms + 2
    return frames


def sha256_bytes(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def summarise(structures: Sequence[Atoms]) -> dict:
    """Counts and flags stored as node attributes."""
    elements = sorted({s for atoms in structures for s in atoms.get_chemical_symbols()})
    labels = [get_labels(atoms) for atoms in structures]
    config_types: dict[str, int] = {}
    for atoms in structures:
        key = str(atoms.info.get('config_type', ''))
        config_types[key] = config_types.get(key, 0) + 1
    return {
        'n_structures': len(structures),
        'n_atoms': int(sum(len(atoms) for atoms in structures)),
        'elements': elements,
        'has_labels': all('energy' in lab and 'forces' in lab for lab in labels),
        'has_virial': all('stress' in lab or 'virial' in lab for lab in labels),
        'config_types': config_types,
    }
