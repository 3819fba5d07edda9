"""CP2K single points without AiiDA: the basis/potential library, the input writer and the output reader.

Units: CP2K works in Hartree and bohr; everything this module returns is in eV, Å and eV/Å³ (stress with the ASE
sign, positive = tensile). CP2K prints the stress tensor with the opposite sign — positive = compressed, so that
1/3·trace is the pressure (``ase/calculators/cp2k.py`` negates it the same way); ``tests/io/test_cp2k.py`` checks
the sign against the energy of a strained cell.

Why our own reader and writer: aiida-cp2k's output parser (cp2k-output-tools) pins numpy < 2 (DESIGN.md), and
ASE's CP2K calculator drives ``cp2k_shell`` interactively instead of writing an input file that a scheduler can run.
The input format is documented at https://manual.cp2k.org/ (FORCE_EVAL/DFT, SUBSYS/KIND, DFT/KPOINTS).

Basis sets and pseudopotentials come from the ``cp2k-data`` package (``/usr/share/cp2k`` on Debian). The entries a
structure needs are copied into the calculation folder (``BASIS_SETS``, ``POTENTIALS``), so a run does not depend on
the data directory of the machine it runs on and the exact parameters are kept with the calculation.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols
from ase.units import Bohr, GPa, Hartree, bar

__all__ = [
    'BASIS_FILENAME',
    'DEFAULT_PARAMETERS',
    'POTENTIAL_FILENAME',
    'PROJECT',
    'Cp2kDataError',
    'KindEntry',
    'find_data_dir',
    'kpoint_mesh',
    'read_library',
    'read_output',
    'resolve_kinds',
    'validate_parameters',
    'write_input',
    'write_library_files',
]

PROJECT = 'aiida'  # GLOBAL%PROJECT: CP2K names its restart files <PROJECT>-RESTART.wfn (.kp with k-points)
BASIS_FILENAME = 'BASIS_SETS'
POTENTIAL_FILENAME = 'POTENTIALS'

HARTREE_TO_EV = Hartree
FORCE_AU_TO_EV_PER_A = Hartree / Bohr
STRESS_UNITS = {'GPa': GPa, 'bar': bar}  # eV/Å³ per unit

# Where the Debian/Ubuntu package cp2k-data and conda-forge's cp2k put the data; CP2K_DATA_DIR wins.
DATA_DIR_CANDIDATES = ('/usr/share/cp2k', '/usr/share/cp2k/data', '/usr/local/share/cp2k')

DEFAULT_PARAMETERS: dict = {
    'xc': 'PBE',
    'basis_set': 'DZVP-MOLOPT-SR-GTH',
    'potential': 'GTH-PBE',
    'basis_files': ['BASIS_MOLOPT', 'BASIS_MOLOPT_UCL'],
    'potential_file': 'GTH_POTENTIALS',
    'cutoff_Ry': 400.0,
    'rel_cutoff_Ry': 50.0,
    'eps_default': 1.0e-10,
    'kpoints_spacing': None,  # Å⁻¹, VASP KSPACING convention (2π included); None = Γ only
    'scf': {
        'solver': 'diagonalization',  # or 'ot' (Γ only)
        'eps_scf': 1.0e-6,
        'max_scf': 60,
        'mixing_alpha': 0.3,
        'smearing_K': 300.0,  # Fermi–Dirac electronic temperature (diagonalization only); None = no smearing
        'added_mos': 20,
    },
}

_SCF_KEYS = set(DEFAULT_PARAMETERS['scf'])
_SOLVERS = ('diagonalization', 'ot')
_XC = ('PBE', 'PBESOL', 'LDA', 'PADE', 'BLYP')


class Cp2kDataError(ValueError):
    """A basis set or pseudopotential is missing from the CP2K data files, or the data files cannot be found."""


@dataclass(frozen=True)
class KindEntry:
    """One entry of a CP2K library file: its element, all its names, and its text (header line included)."""

    element: str
    names: tuple[str, ...]
    text: str

    @property
    def valence(self) -> int | None:
        """The number of valence electrons from a ``-qN`` name suffix, or None when the names carry none."""
        for name in self.names:
            match = re.search(r'-q(\d+)$', name)
            if match:
                return int(match.group(1))
        return None


def find_data_dir(data_dir: str | Path | None = None) -> Path:
    """The CP2K data directory: ``data_dir`` if given, else ``$CP2K_DATA_DIR``, else the packaged locations.

    :raises Cp2kDataError: when none holds ``GTH_POTENTIALS`` (install the Debian package ``cp2k-data``).
    """
    candidates = [data_dir] if data_dir else [os.environ.get('CP2K_DATA_DIR'), *DATA_DIR_CANDIDATES]
    for candidate in candidates:
        if candidate and (Path(candidate) / 'GTH_POTENTIALS').is_file():
            return Path(candidate)
    raise Cp2kDataError(
        f'no CP2K data directory with GTH_POTENTIALS found (looked in {", ".join(str(c) for c in candidates if c)}); '
        'install the Debian package `cp2k-data` or set CP2K_DATA_DIR'
    )


def read_library(path: str | Path) -> dict[str, list[KindEntry]]:
    """Read a CP2K basis-set or pseudopotential file into ``{element: [entries in file order]}``.

    An entry starts at a line whose first word is an element symbol followed by the entry's names (``Li GTH-PBE-q3
    GTH-PBE``) and runs to the next such line; ``#`` comment lines and blank lines are dropped.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding='utf8', errors='replace').splitlines()
    except OSError as exception:
        raise Cp2kDataError(f'cannot read the CP2K library file `{path}`: {exception}') from exception
    symbols = set(chemical_symbols[1:])
    library: dict[str, list[KindEntry]] = {}
    current: list[str] | None = None
    header: list[str] = []

    def close():
        if current is not None:
            entry = KindEntry(header[0], tuple(header[1:]), '\n'.join(current) + '\n')
            library.setdefault(entry.element, []).append(entry)

    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith('#'):
            continue
        words = stripped.split()
        if words[0] in symbols and len(words) >= 2 and not _is_number(words[1]):
            close()
            header = words
            current = [stripped]
        elif current is not None:
            current.append(line.rstrip())
    close()
    return library


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def resolve_kinds(
    elements: Iterable[str],
    basis_set: str = DEFAULT_PARAMETERS['basis_set'],
    potential: str = DEFAULT_PARAMETERS['potential'],
    data_dir: str | Path | None = None,
    basis_files: Sequence[str] = tuple(DEFAULT_PARAMETERS['basis_files']),
    potential_file: str = DEFAULT_PARAMETERS['potential_file'],
) -> dict[str, dict[str, KindEntry]]:
    """Choose, for every element, the pseudopotential named ``potential`` and a basis set named ``basis_set`` with
    the same number of valence electrons (the ``-qN`` suffix).

    :returns: ``{element: {'potential': KindEntry, 'basis_set': KindEntry}}``
    :raises Cp2kDataError: naming every element without a matching entry and the files searched.
    """
    directory = find_data_dir(data_dir)
    potentials = read_library(directory / potential_file)
    bases = [(name, read_library(directory / name)) for name in basis_files]
    result, problems = {}, []
    for element in sorted(set(elements)):
        candidates = [e for e in potentials.get(element, []) if potential in e.names]
        if not candidates:
            available = sorted({e.names[0] for e in potentials.get(element, [])})
            problems.append(f'{element}: no pseudopotential `{potential}` in {directory / potential_file}'
                            + (f" (it has {', '.join(available)})" if available else ''))
            continue
        pseudo = candidates[0]
        basis = None
        for _, library in bases:
            for entry in library.get(element, []):
                if basis_set in entry.names and entry.valence in (None, pseudo.valence):
                    basis = entry
                    break
            if basis is not None:
                break
        if basis is None:
            problems.append(
                f'{element}: no basis set `{basis_set}` for {pseudo.valence} valence electrons ({pseudo.names[0]}) in '
                f'{", ".join(str(directory / name) for name, _ in bases)}'
            )
            continue
        result[element] = {'potential': pseudo, 'basis_set': basis}
    if problems:
        raise Cp2kDataError('CP2K cannot describe the element(s) ' + '; '.join(problems))
    return result


def write_library_files(kinds: Mapping[str, Mapping[str, KindEntry]]) -> tuple[str, str]:
    """The text of the ``BASIS_SETS`` and ``POTENTIALS`` files holding only the chosen entries."""
    basis = ''.join(kinds[element]['basis_set'].text for element in sorted(kinds))
    potentials = ''.join(kinds[element]['potential'].text for element in sorted(kinds))
    return basis, potentials


def validate_parameters(parameters: Mapping | None) -> dict:
    """Merge ``parameters`` into :data:`DEFAULT_PARAMETERS` and check them.

    :raises ValueError: naming the key and what was expected (unknown keys, cutoffs ≤ 0, k-spacing ≤ 0, OT with
        k-points, ...).
    """
    parameters = dict(parameters or {})
    unknown = set(parameters) - set(DEFAULT_PARAMETERS)
    if unknown:
        raise ValueError(f'unknown CP2K parameter(s) {sorted(unknown)}; known: {sorted(DEFAULT_PARAMETERS)}')
    scf = dict(parameters.pop('scf', None) or {})
    unknown = set(scf) - _SCF_KEYS
    if unknown:
        raise ValueError(f'unknown CP2K scf parameter(s) {sorted(unknown)}; known: {sorted(_SCF_KEYS)}')
    merged = {**DEFAULT_PARAMETERS, **parameters, 'scf': {**DEFAULT_PARAMETERS['scf'], **scf}}
    if str(merged['xc']).upper() not in _XC:
        raise ValueError(f"xc `{merged['xc']}` unknown; choose one of {', '.join(_XC)}")
    for key in ('cutoff_Ry', 'rel_cutoff_Ry', 'eps_default'):
        if not float(merged[key]) > 0:
            raise ValueError(f'{key} must be > 0, got {merged[key]}')
    spacing = merged['kpoints_spacing']
    if spacing is not None and not float(spacing) > 0:
        raise ValueError(f'kpoints_spacing must be > 0 Å⁻¹ (or None for Γ only), got {spacing}')
    scf = merged['scf']
    if scf['solver'] not in _SOLVERS:
        raise ValueError(f"scf.solver `{scf['solver']}` unknown; choose one of {', '.join(_SOLVERS)}")
    if scf['solver'] == 'ot' and spacing is not None:
        raise ValueError('scf.solver `ot` works at Γ only in CP2K; use `diagonalization` with kpoints_spacing')
    if not float(scf['eps_scf']) > 0 or int(scf['max_scf']) < 1:
        raise ValueError(f"scf.eps_scf must be > 0 and scf.max_scf ≥ 1, got {scf['eps_scf']}, {scf['max_scf']}")
    if not 0 < float(scf['mixing_alpha']) <= 1:
        raise ValueError(f"scf.mixing_alpha must be in (0, 1], got {scf['mixing_alpha']}")
    if scf['smearing_K'] is not None and not float(scf['smearing_K']) > 0:
        raise ValueError(f"scf.smearing_K must be > 0 K or None, got {scf['smearing_K']}")
    if not isinstance(merged['basis_files'], (list, tuple)) or not merged['basis_files']:
        raise ValueError('basis_files must be a non-empty list of file names')
    return merged


def kpoint_mesh(cell, spacing: float | None) -> tuple[int, int, int]:
    """The k-point mesh for a spacing in Å⁻¹, VASP's KSPACING rule: ``n_i = max(1, ceil(|b_i| / spacing))`` with
    reciprocal vectors ``b_i`` that include the factor 2π. ``None`` gives Γ only, (1, 1, 1).

    (aiida-vasp's ``kpoints_spacing`` is this spacing divided by 2π.)
    """
    if spacing is None:
        return (1, 1, 1)
    if not spacing > 0:
        raise ValueError(f'kpoints_spacing must be > 0 Å⁻¹, got {spacing}')
    reciprocal = 2 * np.pi * np.linalg.inv(np.asarray(cell, dtype=float)).T
    # round() before ceil: a mesh must not jump by one because of a 1e-12 rounding error in the cell
    return tuple(max(1, math.ceil(round(float(np.linalg.norm(b)) / spacing, 8))) for b in reciprocal)


def write_input(
    atoms: Atoms,
    parameters: Mapping | None,
    kinds: Mapping[str, Mapping[str, KindEntry]],
    walltime_s: float | None = None,
    restart_file: str | None = None,
) -> str:
    """The CP2K input (``aiida.inp``) of a PBE single point with forces and the analytical stress tensor.

    :param atoms: a periodic cell (Å); Γ only, or the mesh of ``parameters['kpoints_spacing']`` (Monkhorst–Pack:
        CP2K shifts even meshes off Γ).
    :param kinds: from :func:`resolve_kinds`; the entries are read from ``BASIS_SETS``/``POTENTIALS``.
    :param walltime_s: GLOBAL%WALLTIME; CP2K leaves the SCF loop and stops cleanly after this many seconds.
    :param restart_file: a wavefunction file (``.wfn``, or ``.kp`` with k-points) to start the SCF from.
    """
    p = validate_parameters(parameters)
    scf = p['scf']
    if not atoms.pbc.all():
        raise ValueError('the CP2K labeller needs a cell periodic in all three directions')
    missing = sorted(set(atoms.get_chemical_symbols()) - set(kinds))
    if missing:
        raise Cp2kDataError(f'no basis/potential chosen for the element(s) {", ".join(missing)}')
    mesh = kpoint_mesh(atoms.cell, p['kpoints_spacing'])
    gamma_only = p['kpoints_spacing'] is None

    lines = ['&GLOBAL', f'  PROJECT {PROJECT}', '  RUN_TYPE ENERGY_FORCE', '  PRINT_LEVEL MEDIUM']
    if walltime_s:
        lines.append(f'  WALLTIME {max(1, int(walltime_s))}')
    lines += ['&END GLOBAL', '&FORCE_EVAL', '  METHOD Quickstep', '  STRESS_TENSOR ANALYTICAL', '  &DFT',
              f'    BASIS_SET_FILE_NAME {BASIS_FILENAME}', f'    POTENTIAL_FILE_NAME {POTENTIAL_FILENAME}']
    if restart_file:
        lines.append(f'    WFN_RESTART_FILE_NAME {restart_file}')
    lines += ['    &MGRID', f"      CUTOFF {float(p['cutoff_Ry']):.6g}", f"      REL_CUTOFF {float(p['rel_cutoff_Ry']):.6g}",
              '    &END MGRID', '    &QS', f"      EPS_DEFAULT {float(p['eps_default']):.3E}", '    &END QS']
    if not gamma_only:
        lines += ['    &KPOINTS', '      SCHEME MONKHORST-PACK {} {} {}'.format(*mesh), '      FULL_GRID OFF',
                  '    &END KPOINTS']
    lines += ['    &SCF', f"      EPS_SCF {float(scf['eps_scf']):.3E}", f"      MAX_SCF {int(scf['max_scf'])}",
              f"      SCF_GUESS {'RESTART' if restart_file else 'ATOMIC'}"]
    if scf['solver'] == 'ot':
        lines += ['      &OT', '        MINIMIZER DIIS', '        PRECONDITIONER FULL_SINGLE_INVERSE', '      &END OT']
    else:
        if scf['smearing_K'] is not None:
            lines += [f"      ADDED_MOS {int(scf['added_mos'])}", '      &SMEAR ON', '        METHOD FERMI_DIRAC',
                      f"        ELECTRONIC_TEMPERATURE [K] {float(scf['smearing_K']):.6g}", '      &END SMEAR']
        lines += ['      &DIAGONALIZATION', '        ALGORITHM STANDARD', '      &END DIAGONALIZATION',
                  '      &MIXING', '        METHOD BROYDEN_MIXING', f"        ALPHA {float(scf['mixing_alpha']):.4g}",
                  '      &END MIXING']
    lines += ['      &PRINT', '        &RESTART ON', '        &END RESTART', '      &END PRINT', '    &END SCF',
              '    &XC', f"      &XC_FUNCTIONAL {str(p['xc']).upper()}", '      &END XC_FUNCTIONAL', '    &END XC',
              '  &END DFT', '  &SUBSYS', '    &CELL']
    for label, vector in zip('ABC', atoms.cell.array, strict=True):
        lines.append(f'      {label} [angstrom] ' + ' '.join(f'{x:.12f}' for x in vector))
    lines += ['      PERIODIC XYZ', '    &END CELL', '    &COORD', '      UNIT angstrom']
    for symbol, position in zip(atoms.get_chemical_symbols(), atoms.positions, strict=True):
        lines.append(f'      {symbol} ' + ' '.join(f'{x:.12f}' for x in position))
    lines.append('    &END COORD')
    for element in sorted(kinds):
        if element not in set(atoms.get_chemical_symbols()):
            continue
        lines += [f'    &KIND {element}', f"      BASIS_SET {kinds[element]['basis_set'].names[0]}",
                  f"      POTENTIAL {kinds[element]['potential'].names[0]}", '    &END KIND']
    lines += ['  &END SUBSYS', '  &PRINT', '    &FORCES ON', '    &END FORCES', '    &STRESS_TENSOR ON',
              '    &END STRESS_TENSOR', '  &END PRINT', '&END FORCE_EVAL', '']
    return '\n'.join(lines)


_ENERGY = re.compile(r'ENERGY\| Total FORCE_EVAL \( \w+ \) energy \[a\.u\.\]:\s+(\S+)')
_STRESS_HEADER = re.compile(r'STRESS\| Analytical stress tensor \[(\w+)\]')
_SCF_CONVERGED = re.compile(r'\*\*\* SCF run converged in\s+(\d+) steps')


def read_output(source: str | Path, n_atoms: int | None = None) -> dict:
    """Read the main output of a CP2K ENERGY_FORCE run (the file given with ``-o`` or stdout).

    :returns: a dict with ``energy`` (eV, the last ``ENERGY| Total FORCE_EVAL`` line), ``forces`` (eV/Å, N×3, the
        last ``ATOMIC FORCES in [a.u.]`` block), ``stress`` (eV/Å³, 3×3, ASE sign, or None), ``symbols``,
        ``scf_converged`` (False when CP2K warned ``SCF run NOT converged``), ``n_scf_steps``,
        ``walltime_exceeded``, ``finished`` (``PROGRAM ENDED`` reached), ``cp2k_version``, ``warnings`` (count).
    :raises ValueError: naming the file when the text holds no energy or forces, or a block cannot be read.
    """
    if isinstance(source, Path) or (isinstance(source, str) and '\n' not in source and Path(source).is_file()):
        name = str(source)
        text = Path(source).read_text(encoding='utf8', errors='replace')
    else:
        name, text = '<CP2K output>', str(source)
    lines = text.splitlines()
    result: dict = {
        'energy': None, 'forces': None, 'stress': None, 'symbols': None, 'scf_converged': True, 'n_scf_steps': None,
        'walltime_exceeded': False, 'finished': False, 'cp2k_version': None, 'warnings': 0,
    }
    index = 0
    while index < len(lines):
        line = lines[index]
        if 'CP2K| version string:' in line:
            result['cp2k_version'] = line.split(':', 1)[1].strip()
        elif 'SCF run NOT converged' in line:
            result['scf_converged'] = False
        elif 'exceeded requested execution time' in line:
            result['walltime_exceeded'] = True
        elif (match := _SCF_CONVERGED.search(line)) is not None:
            result['n_scf_steps'] = int(match.group(1))
        elif (match := _ENERGY.search(line)) is not None:
            result['energy'] = float(match.group(1)) * HARTREE_TO_EV
        elif line.strip().startswith('ATOMIC FORCES in [a.u.]'):
            index, result['symbols'], result['forces'] = _read_forces(lines, index, name)
            continue
        elif (match := _STRESS_HEADER.search(line)) is not None:
            result['stress'] = _read_stress(lines, index, match.group(1), name)
        elif 'The number of warnings for this run is' in line:
            result['warnings'] = int(line.split(':')[-1])
        elif 'PROGRAM ENDED AT' in line:
            result['finished'] = True
        index += 1
    if result['energy'] is None:
        raise ValueError(f'{name}: no `ENERGY| Total FORCE_EVAL` line (the run stopped before the energy)')
    if result['forces'] is None:
        raise ValueError(f'{name}: no `ATOMIC FORCES in [a.u.]` block (FORCE_EVAL%PRINT%FORCES missing?)')
    if n_atoms is not None and len(result['forces']) != n_atoms:
        raise ValueError(f"{name}: {len(result['forces'])} forces for a structure of {n_atoms} atoms")
    return result


def _read_forces(lines: list[str], start: int, name: str) -> tuple[int, list[str], np.ndarray]:
    """The block after ``ATOMIC FORCES in [a.u.]``: a ``# Atom Kind Element X Y Z`` header, one line per atom, and a
    ``SUM OF ATOMIC FORCES`` line."""
    index = start + 1
    while index < len(lines) and not lines[index].strip().startswith('# Atom'):
        index += 1
    index += 1
    symbols, rows = [], []
    while index < len(lines) and not lines[index].strip().startswith('SUM OF ATOMIC FORCES'):
        words = lines[index].split()
        if words:
            if len(words) != 6:
                raise ValueError(f'{name}, line {index + 1}: expected `atom kind element fx fy fz`, got {words}')
            symbols.append(words[2])
            rows.append([float(x) for x in words[3:]])
        index += 1
    if index >= len(lines):
        raise ValueError(f'{name}: the ATOMIC FORCES block is truncated (no `SUM OF ATOMIC FORCES` line)')
    return index + 1, symbols, np.array(rows, dtype=float).reshape(-1, 3) * FORCE_AU_TO_EV_PER_A


def _read_stress(lines: list[str], start: int, unit: str, name: str) -> np.ndarray:
    if unit not in STRESS_UNITS:
        raise ValueError(f'{name}, line {start + 1}: stress unit `{unit}` unknown (expected GPa or bar)')
    rows = []
    for offset, axis in enumerate('xyz', start=2):
        words = lines[start + offset].split() if start + offset < len(lines) else []
        if len(words) != 5 or words[1] != axis:
            raise ValueError(f'{name}, line {start + offset + 1}: expected `STRESS| {axis} sxx sxy sxz`, got {words}')
        rows.append([float(x) for x in words[2:]])
    # CP2K prints the stress with the pressure sign (positive = compressed); ASE's is the opposite
    return -np.array(rows) * STRESS_UNITS[unit]
