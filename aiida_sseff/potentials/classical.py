"""Classical pair potentials (Buckingham + long-range Coulomb) as data: charges per species, (A, ρ, C) per pair,
cutoff and k-space settings, each set with its citation. Pure Python: no aiida import (the workflows turn a set into
a ``Dict`` node and a LAMMPS input).

The Buckingham pair energy is ``A exp(-r/ρ) - C/r⁶`` (A in eV, ρ in Å, C in eV Å⁶); the Coulomb energy of the
partial charges is summed by Ewald/PPPM (LAMMPS ``pair_style buck/coul/long`` + ``kspace_style``).

Every pair of species that a structure holds must be listed, also a pair without short-range term (A = C = 0): a
missing pair is then a gap in the parameter set (refused), never a silent zero.
"""

from __future__ import annotations

import copy
import itertools

__all__ = ['CLASSICAL_POTENTIALS', 'DEFAULT_POTENTIAL', 'classical_potential', 'pair_key', 'potential_problems',
           'total_charge']

#: the Du/Teter partial-charge set for Li, La, Zr, O (Li–La–Zr–O oxides; no LLZO-specific Buckingham set was found
#: in a source we could read, see the citation notes)
DU_TETER_LI_LA_ZR_O = {
    'name': 'du_teter_li_la_zr_o',
    'description': 'Du/Teter partial-charge Buckingham potential (oxide glasses), the Li-O, La-O, Zr-O and O-O '
                   'terms; cation-cation pairs are Coulomb only, as in the Teter form. Not fitted to LLZO: a '
                   'classical baseline, not a reference.',
    'charges': {'Li': 0.6, 'La': 1.8, 'Zr': 2.4, 'O': -1.2},
    # (A eV, rho Å, C eV Å^6)
    'pairs': {
        'Li-O': {'A': 41051.9380, 'rho': 0.151160, 'C': 0.000},
        'La-O': {'A': 4369.3900, 'rho': 0.278600, 'C': 60.278},
        'Zr-O': {'A': 17943.3840, 'rho': 0.226627, 'C': 127.650},
        'O-O': {'A': 2029.2204, 'rho': 0.343640, 'C': 192.580},
        # Coulomb only (no short-range cation–cation term in the Teter form)
        'Li-Li': {'A': 0.0, 'rho': 1.0, 'C': 0.0},
        'La-Li': {'A': 0.0, 'rho': 1.0, 'C': 0.0},
        'Li-Zr': {'A': 0.0, 'rho': 1.0, 'C': 0.0},
        'La-La': {'A': 0.0, 'rho': 1.0, 'C': 0.0},
        'La-Zr': {'A': 0.0, 'rho': 1.0, 'C': 0.0},
        'Zr-Zr': {'A': 0.0, 'rho': 1.0, 'C': 0.0},
    },
    # one real-space cutoff for Buckingham and the real-space Ewald part (Å); the source used 11 Å with a
    # damped-shifted Coulomb sum, here Ewald/PPPM does the long range, so 10 Å suffices (C/r^6 < 2e-4 eV there)
    'cutoff_A': 10.0,
    'kspace': {'style': 'pppm', 'accuracy': 1.0e-5},
    'citations': [
        {'author': 'L. Deng and J. Du', 'title': 'Development of boron oxide potentials for computer simulations of '
         'multicomponent oxide glasses', 'journal': 'J. Am. Ceram. Soc.', 'volume': '102', 'pages': '2482-2505',
         'year': 2019, 'doi': '10.1111/jace.16082', 'terms': ['Li-O', 'Zr-O', 'charges']},
        {'author': 'J. Kalahe, X. Lu, K. Miller, M. Peterson, B. J. Riley, J. D. Vienna, J. E. Saal and J. Du',
         'title': 'Revealing the Structure-Property Relationships of Nd2O3-Containing Alkali Iron Phosphate Glasses '
         'from Molecular Dynamics Simulations', 'journal': 'Chem. Mater.', 'volume': '37', 'pages': '8595-8613',
         'year': 2025, 'doi': '10.1021/acs.chemmater.5c01505', 'terms': ['O-O']},
        {'author': 'D. M. Teter', 'title': 'unpublished (private communication, as cited by Du and co-workers)',
         'journal': None, 'volume': None, 'year': None, 'doi': None, 'terms': ['La-O']},
    ],
    'source': 'numbers as tabulated in glasagent/amorphouspy, amorphouspy/src/amorphouspy/potentials/'
              'du_teter_potential.py (`du_teter_potential_params`), which cites the two papers above; the same '
              'Li-O, La-O and O-O numbers are used for the Li-La-Ti-O perovskite electrolyte (LLTO) in a public '
              'LAMMPS input. The short-range repulsive correction B/r^n + D r^2 below r0 (1.2-1.9 Å) of the Du '
              'form is omitted: the Buckingham + Coulomb barriers (O-O 24 eV at 1.39 Å, La-O 30 eV, Zr-O 54 eV) '
              'are far above kT at the MD temperatures, and the MD tests check that no pair comes that close.',
}

CLASSICAL_POTENTIALS = {DU_TETER_LI_LA_ZR_O['name']: DU_TETER_LI_LA_ZR_O}
DEFAULT_POTENTIAL = DU_TETER_LI_LA_ZR_O['name']


def pair_key(a: str, b: str) -> str:
    """The key of an unordered species pair: ``'La-O'`` for (O, La) or (La, O); alphabetical, except that O (the
    anion of these sets) comes last, as in the literature tables."""
    first, second = sorted((a, b), key=lambda s: (s == 'O', s))
    return f'{first}-{second}'


def classical_potential(name: str = DEFAULT_POTENTIAL) -> dict:
    """A copy of the named parameter set (see :data:`CLASSICAL_POTENTIALS`)."""
    if name not in CLASSICAL_POTENTIALS:
        raise ValueError(f'unknown classical potential {name!r}; known: {sorted(CLASSICAL_POTENTIALS)}')
    return copy.deepcopy(CLASSICAL_POTENTIALS[name])


def potential_problems(potential: dict, species) -> list[str]:
    """What stops ``potential`` from describing a structure of ``species``: charges or pairs missing, malformed
    numbers, a bad cutoff or k-space setting. An empty list means usable."""
    species = sorted(set(species))
    problems = []
    charges = potential.get('charges') or {}
    pairs = {pair_key(*key.split('-')): value for key, value in (potential.get('pairs') or {}).items()
             if len(key.split('-')) == 2}
    missing_charges = [s for s in species if s not in charges]
    if missing_charges:
        problems.append(f'no charge for {", ".join(missing_charges)} (charges given for {", ".join(sorted(charges))})')
    missing_pairs = [pair_key(a, b) for a, b in itertools.combinations_with_replacement(species, 2)
                     if pair_key(a, b) not in pairs]
    if missing_pairs:
        problems.append(f'no Buckingham parameters for the pair(s) {", ".join(missing_pairs)} (list a pair without '
                        'short-range term explicitly, with A = C = 0)')
    for key, value in pairs.items():
        try:
            a, rho, c = float(value['A']), float(value['rho']), float(value['C'])
        except (KeyError, TypeError, ValueError):
            problems.append(f'pair {key}: expected numbers A (eV), rho (Å), C (eV Å^6), got {value}')
            continue
        if a < 0 or rho <= 0 or c < 0:
            problems.append(f'pair {key}: expected A >= 0, rho > 0, C >= 0, got A={a}, rho={rho}, C={c}')
    cutoff = potential.get('cutoff_A')
    if not isinstance(cutoff, (int, float)) or not cutoff > 0:
        problems.append(f'cutoff_A must be a positive number (Å), got {cutoff!r}')
    kspace = potential.get('kspace') or {}
    if kspace.get('style') not in ('ewald', 'pppm'):
        problems.append(f"kspace.style must be 'ewald' or 'pppm', got {kspace.get('style')!r}")
    accuracy = kspace.get('accuracy')
    if not isinstance(accuracy, (int, float)) or not 0 < accuracy < 1:
        problems.append(f'kspace.accuracy must be a relative accuracy in (0, 1), got {accuracy!r}')
    return problems


def total_charge(potential: dict, symbols) -> float:
    """The net charge (e) of a structure with these symbols under the potential's charges."""
    charges = potential['charges']
    return float(sum(charges[s] for s in symbols))
