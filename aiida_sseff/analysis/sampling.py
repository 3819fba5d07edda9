"""Candidate structures and their farthest-point selection, as plain functions (ase.Atoms in, numpy out, no database).

The one implementation behind the ``sseff.sample`` work chains (:mod:`aiida_sseff.workflows.sampling`, whose
calcfunctions wrap these functions so that every step is in the provenance graph) and the ``aiida-sseff sample``
command, usable from a notebook as it is:

* :func:`describe_structures`: descriptor vectors of candidates and of a seed set in one consistent space;
* :func:`select_by_fps`, :func:`series_by_fps`: greedy max-min FPS (:mod:`aiida_sseff.analysis.fps`) of structures,
  and its nested 1/2^n subsets;
* :func:`rattled_structures`, :func:`strained_structures`: perturbations of a structure;
* :func:`merge_structures`: sources of structures concatenated, optionally with their labels removed;
* ``check_*``: validation of the sampling parameters, returning a message naming the value (or None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from aiida_sseff.analysis.descriptors import (
    check_species_covered,
    nep_descriptors,
    nep_model_types,
    rdf_descriptors,
    untrained_nep_descriptors,
)
from aiida_sseff.analysis.fps import FPSResult, farthest_point_sampling, reduction_series
from aiida_sseff.analysis.geometry import shortest_distance

__all__ = (
    'DESCRIPTORS',
    'MAX_RATTLE_AMPLITUDE_A',
    'MAX_STRAIN',
    'MIN_INTERATOMIC_DISTANCE_A',
    'bare_copy',
    'check_no_overlap',
    'check_rattle_amplitudes',
    'check_strain_range',
    'describe_structures',
    'json_distances',
    'merge_structures',
    'rattled_structures',
    'select_by_fps',
    'series_by_fps',
    'strained_structures',
)

DESCRIPTORS = ('nep', 'untrained_nep', 'rdf')
# Largest Gaussian rattle amplitude (standard deviation per Cartesian component, Å) accepted: beyond it neighbours
# swap places and the "perturbation" is a different (often unphysical) structure.
MAX_RATTLE_AMPLITUDE_A = 0.5
# Largest absolute strain component accepted (fractional): beyond it a strain is not a perturbation.
MAX_STRAIN = 0.2
# Two atoms of an input structure closer than this (Å) overlap: no force field or DFT code gives sensible labels.
MIN_INTERATOMIC_DISTANCE_A = 0.5
# Keys of ``Atoms.info`` that are labels (removed with the calculator by :func:`bare_copy`).
_LABEL_INFO_KEYS = ('energy', 'stress', 'virial', 'free_energy')


# --- descriptors and selection ----------------------------------------------------------------------------------------
def _check_has_species(structures: Sequence[Atoms], species: str, name: str) -> None:
    for index, atoms in enumerate(structures):
        if species not in atoms.get_chemical_symbols():
            raise ValueError(f'{name}: structure {index} has no {species} atoms to average the descriptor over')


def describe_structures(structures: Sequence[Atoms], seed_structures: Sequence[Atoms] | None = None,
                        descriptor: str = 'untrained_nep', model_path=None, per_species: bool = False,
                        species: str | None = None, names: tuple[str, str] = ('candidates', 'seed set'),
                        ) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Descriptor vectors of candidates and of an optional seed set, in one consistent space.

    :param structures: the candidates (ase.Atoms).
    :param seed_structures: an existing set the selection should move away from, or None.
    :param descriptor: ``'nep'`` (a trained model, ``model_path``; calorine's NEP descriptors), ``'untrained_nep'``
        (the NEP descriptor with fixed, seeded random radial/angular coefficients c_nk; species = union of both sets
        in alphabetical order; see :mod:`aiida_sseff.analysis.descriptors` for what it is and why FPS may use it) or
        ``'rdf'`` (smooth pair-distance histograms, 6 Å).
    :param model_path: the ``nep.txt`` for ``descriptor='nep'``.
    :param per_species: NEP kinds only: concatenate per-species means (Li environments weigh in).
    :param species: NEP kinds only: mean over the atoms of this species only.
    :param names: how the two sets are named in error messages (e.g. their file names).
    :returns: ``(candidate_descriptors (N, d), seed_descriptors (M, d) or None, info)``; ``info`` holds
        ``descriptor``, ``elements``, ``dimension``, ``per_species``, ``species``. Components are dimensionless.
    :raises ValueError: unknown descriptor, a model file that is missing or not a NEP model, an element the model does
        not know, a structure without ``species``, options that do not apply to the descriptor.

    The untrained-NEP descriptor is scaled per component by 1/(max - min) over all atoms of *both* sets, so it is
    computed in one call for candidates and seed set together: its values (and min-distances) depend on that batch.
    """
    structures = list(structures)
    seeds = list(seed_structures) if seed_structures is not None else []
    if not structures:
        raise ValueError(f'{names[0]}: no structures to select from')
    if descriptor not in DESCRIPTORS:
        raise ValueError(f'descriptor must be one of {", ".join(DESCRIPTORS)}; got {descriptor!r}')
    if descriptor == 'nep' and model_path is None:
        raise ValueError("descriptor 'nep' needs a trained NEP model (nep.txt)")
    if descriptor != 'nep' and model_path is not None:
        raise ValueError(f'a NEP model gives the descriptor itself; it cannot be combined with descriptor '
                         f'{descriptor!r}')
    if descriptor == 'rdf' and (per_species or species):
        raise ValueError('per-species means and a single species apply to the NEP descriptors only (the rdf '
                         'descriptor is resolved by species pair already)')
    if species is not None:
        _check_has_species(structures, species, names[0])
        _check_has_species(seeds, species, names[1])

    if descriptor == 'nep':
        elements = list(nep_model_types(model_path))
        check_species_covered(structures, elements, f'the NEP model {model_path}', names[0])
        check_species_covered(seeds, elements, f'the NEP model {model_path}', names[1])
        candidate = nep_descriptors(structures, model_path, per_species=per_species, species=species)
        seed = nep_descriptors(seeds, model_path, per_species=per_species, species=species) if seeds else None
    else:
        present = {s for atoms in structures + seeds for s in atoms.get_chemical_symbols()}
        if descriptor == 'untrained_nep':
            elements = sorted(present)
            # one call: the 1/(max - min) scaling must be the same for candidates and seed set
            vectors = untrained_nep_descriptors(structures + seeds, elements, per_species=per_species,
                                                species=species)
        else:
            elements = sorted(present, key=lambda s: atomic_numbers[s])
            vectors = rdf_descriptors(structures + seeds, elements=elements)
        candidate = vectors[:len(structures)]
        seed = vectors[len(structures):] if seeds else None
    info = {'descriptor': descriptor, 'elements': elements, 'dimension': int(candidate.shape[1]),
            'per_species': bool(per_species), 'species': species}
    return candidate, seed, info


def _check_count(value, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f'{what} must be a whole number; got {value!r}')


def select_by_fps(structures: Sequence[Atoms], n_select: int | None = None, min_distance: float | None = None,
                  seed_structures: Sequence[Atoms] | None = None, descriptor: str = 'untrained_nep',
                  model_path=None, per_species: bool = False, species: str | None = None,
                  names: tuple[str, str] = ('candidates', 'seed set')) -> tuple[FPSResult, dict]:
    """Farthest-point selection of ``structures`` (see :func:`describe_structures` for the descriptor options).

    :param n_select: number to pick (1 <= n_select <= number of candidates); or
    :param min_distance: keep picking while the farthest remaining candidate is at least this far (descriptor units,
        >= 0) from every pick and seed structure. Exactly one of the two.
    :returns: ``(FPSResult(indices, min_distances), info)``; with a seed set and ``min_distance`` the selection may be
        empty. ``min_distances[0]`` is ``inf`` for a first pick without a seed set.
    :raises ValueError: as :func:`describe_structures`, both or neither stop criterion, ``n_select`` outside
        [1, number of candidates], a negative or non-finite ``min_distance``.
    """
    n = len(structures)
    if (n_select is None) == (min_distance is None):
        raise ValueError('give exactly one stop criterion: a number of structures or a minimum distance')
    if n_select is not None:
        _check_count(n_select, 'the number of structures to select')
        if not 1 <= n_select <= n:
            raise ValueError(f'{names[0]}: cannot select {n_select} of {n} structures (expected 1 to {n})')
    if min_distance is not None and not (np.isfinite(min_distance) and min_distance >= 0):
        raise ValueError(f'the minimum distance must be a finite number >= 0 (descriptor units); got {min_distance}')
    candidate, seed, info = describe_structures(structures, seed_structures, descriptor, model_path, per_species,
                                                species, names)
    result = farthest_point_sampling(candidate, n_select=n_select, min_distance=min_distance, seed_descriptors=seed)
    return result, info


def series_by_fps(structures: Sequence[Atoms], n_levels: int = 7,
                  seed_structures: Sequence[Atoms] | None = None, descriptor: str = 'untrained_nep',
                  model_path=None, per_species: bool = False, species: str | None = None,
                  names: tuple[str, str] = ('dataset', 'seed set')) -> tuple[list[np.ndarray], dict]:
    """The nested FPS subsets of sizes N // 2^n, n = 1 .. ``n_levels`` (:func:`~aiida_sseff.analysis.fps.reduction_series`).

    :returns: ``(levels, info)``: ``levels[n - 1]`` holds the indices of level n in FPS order; level n is the first
        N // 2^n entries of level n - 1.
    :raises ValueError: ``n_levels`` < 1, fewer than 2^n_levels structures, and as :func:`describe_structures`.
    """
    _check_count(n_levels, 'the number of levels')
    if n_levels < 1:
        raise ValueError(f'the number of levels (halvings) must be at least 1; got {n_levels}')
    n = len(structures)
    if n // 2**n_levels < 1:
        raise ValueError(f'{names[0]}: {n} structures cannot be halved {n_levels} times (N / 2^{n_levels} = '
                         f'{n / 2**n_levels:g} < 1; need at least {2**n_levels} structures or fewer levels)')
    candidate, seed, info = describe_structures(structures, seed_structures, descriptor, model_path, per_species,
                                                species, names)
    return reduction_series(candidate, n_levels=n_levels, seed_descriptors=seed), info


def json_distances(values) -> list:
    """Min-distances as JSON-able floats (``None`` for the ``inf`` of a first pick without a seed set)."""
    return [float(v) if np.isfinite(v) else None for v in values]


# --- candidates -------------------------------------------------------------------------------------------------------
def bare_copy(atoms: Atoms) -> Atoms:
    """A copy without labels (calculator, forces, energy/stress keys), with the rest of ``info``."""
    copy = Atoms(atoms.get_chemical_symbols(), atoms.get_positions(), cell=atoms.get_cell(), pbc=atoms.get_pbc())
    copy.info.update({k: v for k, v in atoms.info.items() if k not in _LABEL_INFO_KEYS})
    return copy


def rattled_structures(atoms: Atoms, amplitudes: Sequence[float], n_per_amplitude: int, seed: int) -> list[Atoms]:
    """``n_per_amplitude`` copies of ``atoms`` per amplitude, every Cartesian coordinate displaced by a Gaussian.

    The amplitude is the standard deviation of each displacement component, in Å. Draws come from one
    ``numpy.random.default_rng(seed)`` stream, amplitude by amplitude. Copies are wrapped into the cell, without
    labels, and carry ``info['config_type'] = 'rattle'`` and ``info['rattle_amplitude_A']``.
    """
    rng = np.random.default_rng(seed)
    result = []
    for amplitude in amplitudes:
        for _ in range(n_per_amplitude):
            rattled = bare_copy(atoms)
            rattled.positions += rng.normal(0.0, float(amplitude), size=rattled.positions.shape)
            rattled.wrap()
            rattled.info.update({'config_type': 'rattle', 'rattle_amplitude_A': float(amplitude)})
            result.append(rattled)
    return result


def strained_structures(atoms: Atoms, strain_range: Sequence[float], n_strains: int, seed: int) -> list[Atoms]:
    """``n_strains`` copies of ``atoms`` under random homogeneous strains.

    Each copy gets a symmetric strain tensor ε whose six independent components are drawn from
    U(strain_range[0], strain_range[1]) (fractional, dimensionless); the cell becomes ``cell @ (I + ε)`` and the
    fractional coordinates are kept. Copies carry no labels, ``info['config_type'] = 'strain'`` and
    ``info['strain_voigt']`` (xx, yy, zz, yz, xz, xy).
    """
    low, high = (float(v) for v in strain_range)
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(n_strains):
        voigt = rng.uniform(low, high, size=6)
        xx, yy, zz, yz, xz, xy = voigt
        epsilon = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        strained = bare_copy(atoms)
        strained.set_cell(atoms.get_cell().array @ (np.eye(3) + epsilon), scale_atoms=True)
        strained.info.update({'config_type': 'strain', 'strain_voigt': voigt})
        result.append(strained)
    return result


def merge_structures(sources: Mapping[str, Sequence[Atoms]], drop_labels: bool = False) -> list[Atoms]:
    """The structures of all ``sources``, concatenated in the sorted order of their keys.

    :param sources: name -> structures (zero-padded names such as ``part_000`` keep a given order).
    :param drop_labels: remove the labels (:func:`bare_copy`) and record the source in ``info['candidate_source']``:
        the result is a set of candidates awaiting new labels. Otherwise the structures are returned as they are.
    """
    result = []
    for key in sorted(sources):
        for atoms in sources[key]:
            if drop_labels:
                atoms = bare_copy(atoms)
                atoms.info['candidate_source'] = key
            result.append(atoms)
    return result


# --- validation of sampling parameters (messages name the value and what was expected) --------------------------------
def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating) \
        and bool(np.isfinite(value))


def check_rattle_amplitudes(values: Sequence, name: str = 'rattle amplitudes') -> str | None:
    """None, or why ``values`` are not standard deviations (Å) in (0, :data:`MAX_RATTLE_AMPLITUDE_A`]."""
    values = list(values)
    if not values:
        return f'{name} is empty'
    if not all(_is_number(v) and 0 < v <= MAX_RATTLE_AMPLITUDE_A for v in values):
        return (f'{name} must be numbers in (0, {MAX_RATTLE_AMPLITUDE_A}] Å (the standard deviation of each '
                f'displacement component); got {values}')
    return None


def check_strain_range(values: Sequence, name: str = 'strain range') -> str | None:
    """None, or why ``values`` are not ``[min, max]`` with -:data:`MAX_STRAIN` <= min <= max <= :data:`MAX_STRAIN`."""
    values = list(values)
    if len(values) != 2 or not all(_is_number(v) for v in values):
        return f'{name} must be two numbers [min, max] (fractional strain); got {values}'
    if not values[0] <= values[1] or max(abs(v) for v in values) > MAX_STRAIN:
        return (f'{name} must satisfy -{MAX_STRAIN} <= min <= max <= {MAX_STRAIN} (fractional strain, e.g. '
                f'[-0.03, 0.03]); got {values}')
    return None


def check_no_overlap(atoms: Atoms, name: str = 'the structure') -> str | None:
    """None, or a message when two atoms of ``atoms`` are closer than :data:`MIN_INTERATOMIC_DISTANCE_A`."""
    if len(atoms) < 2:
        return None
    distance = shortest_distance(atoms)
    if distance < MIN_INTERATOMIC_DISTANCE_A:
        return (f'{name} has overlapping atoms: two are {distance:.3f} Å apart (less than '
                f'{MIN_INTERATOMIC_DISTANCE_A} Å)')
    return None
