"""Per-structure descriptor vectors for farthest-point sampling (:mod:`aiida_sseff.analysis.fps`).

Three kinds, all invariant under translation, rotation and atom permutation:

* ``nep``: the per-atom descriptors of a trained NEP model (``nep.txt``), computed by calorine's
  :func:`calorine.nep.get_descriptors` (NEP_CPU; the values include the model's ``q_scaler``), averaged over the atoms
  of each structure -- the GPUMDkit/NepTrain convention.
* ``untrained_nep``: the NEP descriptor of a model that has not been trained, for the first round when no model
  exists. It is *not* "the descriptor of NEP, which needs no training": in NEP the expansion coefficients c_nk of
  the descriptor are trained together with the network, and an untrained model's are random. What is used, exactly
  (NEP4, as GPUMD's ``find_fn`` and NEP_CPU evaluate it; ``tests/analysis/test_descriptors.py`` recomputes the
  radial part from this definition):

  - radial, n = 0 .. n_max_R: q_n^i = sum_j g_n(r_ij), g_n(r) = sum_{k=0}^{N_bas} c_nk^{t_i t_j} f_k(r), over the
    neighbours j within r_c^R = 6 Å, with the Chebyshev basis f_k(r) = (T_k(2 (r/r_c - 1)^2 - 1) + 1) / 2 f_c(r)
    and f_c(r) = (1 + cos(pi r / r_c)) / 2; c_nk^{t_i t_j} depends on the species of the centre i and the neighbour j;
  - angular (r_c^A = 4 Å, its own coefficients): the three-body q_nl^i, l = 1 .. 4, = sum over pairs of
    neighbours j, k of g_n(r_ij) g_n(r_ik) P_l(cos theta_ijk) (times GPUMD's normalisation), and one four-body
    combination per n (l_max_4b = 2); 5 + 5 x 5 = 30 components per atom with the defaults n_max = (4, 4), basis (8, 8);
  - the c_nk are drawn once from U(-1, 1) with ``seed=0`` (the distribution GPUMD's SNES starts training from,
    ``SNES::initialize_mu_and_sigma``) and written with zero network weights into a fresh ``nep.txt`` by calorine's
    :class:`calorine.nep.model.Model`, which calorine then evaluates. A fresh file given the c_nk and ``q_scaler``
    of a trained model reproduces that model's descriptors bit for bit (tested), so nothing else differs.

  Why it is acceptable for FPS, and what it cannot do: per centre species, q is one fixed linear map (the c_nk) of
  the species-resolved basis sums B_{t,k}^i = sum_{j of species t} f_k(r_ij) (and of their angular analogues).
  The map is the same for every structure and every call (fixed seed; species in alphabetical order), the sums are
  invariant under translation, rotation and permutation and continuous in the positions, and different species
  pairs get different random coefficients, so the neighbours' species are seen. A random map is a random
  projection: it keeps 5 radial channels of the 9 x n_species basis sums, so two environments that differ only in
  the discarded directions look alike, and distances are distorted pair by pair. FPS needs only that structures
  that differ much are far apart: on the 25 DFT LLZO structures the rank correlation of pairwise distances with
  those of the trained NEP25 model is 0.94-0.96 for three seeds (0.87 for ``rdf``; tested). The picks themselves
  differ from those of the trained descriptor (3 of the first 6 and 6 of the first 12 agree there): greedy FPS
  turns small differences between near-equal distances into different picks. From the second round on, use the
  trained model (``nep``).

  By default the per-atom components are scaled by 1/(max - min) over all atoms passed in the call (what GPUMD's
  ``q_scaler`` does over a training set), so radial and angular parts weigh alike in distances. Describe the existing
  set and the candidates in **one call** when they are compared.
* ``rdf``: a model-free check, Gaussian-smeared pair-distance histograms per unordered species pair
  (ase's neighbour list), per atom. Radial only (no angles), but with no NEP machinery involved.

Species handling of the NEP kinds (``per_species``/``species``): by default the mean runs over all atoms. With
``per_species=True`` the means over the atoms of each species of the model are concatenated, in the model's species
order, so that Li environments weigh in even though Li is outnumbered by O; a species absent from a structure
contributes a block of zeros. ``species='Li'`` takes the mean over the Li atoms only (a structure without Li is an
error).

Structures are :class:`ase.Atoms` (a single one or a sequence). Distances are in Å; descriptor components are
dimensionless.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.neighborlist import neighbor_list

__all__ = (
    'check_species_covered',
    'nep_descriptors',
    'nep_model_types',
    'rdf_descriptors',
    'structure_descriptors',
    'untrained_nep_descriptors',
    'write_descriptor_model',
)


def _as_structures(structures) -> list[Atoms]:
    """Return ``structures`` as a non-empty list of non-empty ase.Atoms; raise ValueError naming the bad index."""
    if isinstance(structures, Atoms):
        structures = [structures]
    structures = list(structures)
    if not structures:
        raise ValueError('no structures given: expected a non-empty sequence of ase.Atoms')
    for index, atoms in enumerate(structures):
        if not isinstance(atoms, Atoms):
            raise ValueError(f'structure {index} is a {type(atoms).__name__}; expected ase.Atoms')
        if len(atoms) == 0:
            raise ValueError(f'structure {index} has no atoms')
    return structures


def check_species_covered(structures: Sequence[Atoms], types: Sequence[str], what: str, name: str | None = None):
    """Raise ValueError naming ``name`` (a file or set, if given), the index and the element when a structure holds a
    species missing from ``types``."""
    known = set(types)
    prefix = f'{name}: ' if name else ''
    for index, atoms in enumerate(structures):
        unknown = sorted(set(atoms.get_chemical_symbols()) - known)
        if unknown:
            raise ValueError(f'{prefix}structure {index} contains {", ".join(unknown)}, which {what} does not know '
                             f'(it knows {", ".join(types)})')


def _check_species_options(types: Sequence[str], per_species: bool, species: str | None) -> None:
    if per_species and species is not None:
        raise ValueError('per_species=True and species=... exclude each other: choose one')
    if species is not None and species not in types:
        raise ValueError(f'species {species!r} is not one of the model species {", ".join(types)}')


def _per_atom_nep(structures: list[Atoms], model_path: str) -> Iterator[np.ndarray]:
    """Yield calorine's per-atom NEP descriptors, shape (n_atoms, dim), structure by structure."""
    # calorine evaluates NEP through NEP_CPU; its CPUNEP calculator is the reference implementation to reuse. One
    # calculator per atom count for the whole call: calorine's get_descriptors(atoms, model_filename) rereads the model
    # and builds a new NEP_CPU object for every structure (1.8x the cost), and a NEP_CPU object is bound to one atom
    # count (CPUNEP rebuilds it when the count changes). The values are the same (the same NEP_CPU call).
    from calorine.calculators import CPUNEP

    calculators: dict[int, CPUNEP] = {}
    for atoms in structures:
        calculator = calculators.get(len(atoms))
        if calculator is None:
            calculator = calculators[len(atoms)] = CPUNEP(model_path)
        yield np.array(calculator.get_descriptors(atoms), dtype=np.float64)


def _reduce(per_atom: np.ndarray, symbols: np.ndarray, types: Sequence[str], per_species: bool,
            species: str | None, index: int) -> np.ndarray:
    """Per-structure vector from per-atom descriptors: mean over all atoms, per species, or over one species."""
    if species is not None:
        mask = symbols == species
        if not mask.any():
            raise ValueError(f'structure {index} has no {species} atoms to average over')
        return per_atom[mask].mean(axis=0)
    if per_species:
        dim = per_atom.shape[1]
        blocks = []
        for element in types:
            mask = symbols == element
            blocks.append(per_atom[mask].mean(axis=0) if mask.any() else np.zeros(dim))
        return np.concatenate(blocks)
    return per_atom.mean(axis=0)


def nep_model_types(model_path) -> tuple[str, ...]:
    """The species of the NEP model file ``model_path``, read by calorine; a ValueError naming the file otherwise.

    calorine's own messages (``Unknown field: 1`` for a file of numbers) do not say which file or what was expected:
    this check does, before any descriptor is computed.
    """
    from calorine.nep import read_model

    path = Path(model_path)
    expected = ("expected a NEP model (nep.txt written by GPUMD's nep or neppo, whose first line is like "
                "`nep4 3 Li La O`)")
    if not path.is_file():
        raise ValueError(f'NEP model file `{path}` does not exist' if not path.exists() else
                         f'NEP model `{path}` is not a file; {expected}')
    try:
        with path.open(encoding='utf-8') as handle:
            first = handle.readline().strip()
    except (OSError, UnicodeDecodeError) as exception:
        raise ValueError(f'cannot read `{path}` ({exception}); {expected}') from exception
    if not first.split() or not first.split()[0].lower().startswith('nep'):
        raise ValueError(f'`{path}` is not a NEP model: its first line is `{first[:60]}`; {expected}')
    try:
        model = read_model(str(path))
    except Exception as exception:  # calorine raises ValueError/IndexError/OSError depending on where the file breaks
        raise ValueError(f'`{path}` is not a readable NEP model ({type(exception).__name__}: {exception}); '
                         f'{expected}') from exception
    return tuple(model.types)


def nep_descriptors(structures, model_path, per_species: bool = False, species: str | None = None) -> np.ndarray:
    """Per-structure mean of the per-atom descriptors of a NEP model.

    :param structures: ase.Atoms or a sequence of them; every species must be one of the model's.
    :param model_path: path to a ``nep.txt`` (NEP4, potential type), read by calorine.
    :param per_species: concatenate the means over the atoms of each model species (model order; zeros for a species
        absent from a structure) instead of one mean over all atoms.
    :param species: take the mean over the atoms of this species only (e.g. ``'Li'``).
    :returns: float64 array (n_structures, dim), or (n_structures, n_species * dim) with ``per_species``; dim is the
        model's descriptor length (radial + angular), components as calorine returns them (scaled by ``q_scaler``).
    :raises ValueError: missing model file, species not covered by the model, bad options, empty input.
    """
    model_path = Path(model_path)
    types = nep_model_types(model_path)
    structures = _as_structures(structures)
    _check_species_options(types, per_species, species)
    check_species_covered(structures, types, f'the model {model_path}')
    vectors = []
    for index, (atoms, per_atom) in enumerate(zip(structures, _per_atom_nep(structures, str(model_path)),
                                                  strict=True)):
        symbols = np.asarray(atoms.get_chemical_symbols())
        vectors.append(_reduce(per_atom, symbols, types, per_species, species, index))
    return np.asarray(vectors)


def _pair(value, name: str, kind: type) -> tuple:
    values = tuple(value) if np.ndim(value) else (value, value)
    if len(values) != 2:
        raise ValueError(f'{name} must be one value or a (radial, angular) pair; got {value!r}')
    return tuple(kind(v) for v in values)


def write_descriptor_model(filename, elements: Sequence[str], cutoff=(6.0, 4.0), n_max=(4, 4), basis_size=(8, 8),
                           l_max=(4, 2, 0), seed: int = 0, radial_weights: dict | None = None,
                           angular_weights: dict | None = None, q_scaler=None) -> Path:
    """Write a fresh ``nep.txt`` (NEP4 potential, untrained network) that defines a NEP descriptor.

    The network (one neuron, all weights zero) plays no role in the descriptor. The expansion coefficients
    c_nk^{ij} are ``radial_weights``/``angular_weights`` where given (dicts keyed by species pairs, as
    :attr:`calorine.nep.model.Model.radial_descriptor_weights`, arrays of shape (n_max + 1, basis_size + 1)), else
    drawn from U(-1, 1) with ``seed`` (GPUMD's SNES starting distribution). ``q_scaler`` defaults to ones, so
    calorine returns the raw descriptor.

    :param filename: path to write.
    :param elements: species of the model, in order.
    :param cutoff: radial and angular cutoff in Å (radial >= angular).
    :param n_max: radial and angular n_max.
    :param basis_size: radial and angular basis size.
    :param l_max: (l_max_3b, l_max_4b, l_max_5b) as on the ``l_max`` line of ``nep.in`` (4b is 0 or 2, 5b 0 or 1).
    :param seed: seed of the U(-1, 1) draw of the coefficients.
    :returns: the path written.
    :raises ValueError: on inconsistent parameters.
    """
    from calorine.nep.model import Model

    elements = tuple(elements)
    if not elements or len(set(elements)) != len(elements) or any(e not in atomic_numbers for e in elements):
        raise ValueError(f'elements must be distinct chemical symbols; got {elements!r}')
    rc_radial, rc_angular = _pair(cutoff, 'cutoff', float)
    if not 0 < rc_angular <= rc_radial:
        raise ValueError(f'cutoff must satisfy 0 < angular <= radial (Å); got {cutoff!r}')
    n_max_r, n_max_a = _pair(n_max, 'n_max', int)
    basis_r, basis_a = _pair(basis_size, 'basis_size', int)
    if min(n_max_r, n_max_a, basis_r, basis_a) < 0:
        raise ValueError(f'n_max and basis_size must be >= 0; got {n_max!r}, {basis_size!r}')
    l_max = tuple(int(v) for v in l_max)
    if len(l_max) != 3 or not 1 <= l_max[0] <= 8 or l_max[1] not in (0, 2) or l_max[2] not in (0, 1):
        raise ValueError(f'l_max must be (l_max_3b in 1..8, l_max_4b in {{0, 2}}, l_max_5b in {{0, 1}}); '
                         f'got {l_max!r}')
    n_desc_r = n_max_r + 1
    n_desc_a = (n_max_a + 1) * (l_max[0] + (l_max[1] > 0) + (l_max[2] > 0))
    dim = n_desc_r + n_desc_a

    rng = np.random.default_rng(seed)
    pairs = [(s1, s2) for s1 in elements for s2 in elements]

    def weights(given: dict | None, shape: tuple[int, int], name: str) -> dict:
        if given is None:
            return {pair: rng.uniform(-1.0, 1.0, size=shape) for pair in pairs}
        out = {}
        for pair in pairs:
            if pair not in given or np.shape(given[pair]) != shape:
                raise ValueError(f'{name} needs an array of shape {shape} for every species pair; '
                                 f'{pair} is missing or has another shape')
            out[pair] = np.asarray(given[pair], dtype=np.float64)
        return out

    radial = weights(radial_weights, (n_max_r + 1, basis_r + 1), 'radial_weights')
    angular = weights(angular_weights, (n_max_a + 1, basis_a + 1), 'angular_weights')
    q_scaler = [1.0] * dim if q_scaler is None else [float(v) for v in q_scaler]
    if len(q_scaler) != dim:
        raise ValueError(f'q_scaler needs {dim} values (the descriptor length); got {len(q_scaler)}')

    n_neuron = 1
    ann = {e: {'w0': np.zeros((n_neuron, dim)), 'b0': np.zeros((n_neuron, 1)), 'w1': np.zeros((1, n_neuron))}
           for e in elements}
    ann['b1'] = 0.0
    n_types = len(elements)
    n_ann = n_types * (dim + 2) * n_neuron + 1
    n_desc_par = n_types**2 * ((n_max_r + 1) * (basis_r + 1) + (n_max_a + 1) * (basis_a + 1))
    model = Model(
        version=4, model_type='potential', types=elements, radial_cutoff=rc_radial, angular_cutoff=rc_angular,
        n_basis_radial=basis_r, n_basis_angular=basis_a, n_max_radial=n_max_r, n_max_angular=n_max_a,
        l_max_3b=l_max[0], l_max_4b=l_max[1], l_max_5b=l_max[2], has_q_112=0, has_q_123=0, has_q_233=0,
        has_q_134=0, n_descriptor_radial=n_desc_r, n_descriptor_angular=n_desc_a, n_neuron=n_neuron,
        n_parameters=n_ann + n_desc_par + dim, n_descriptor_parameters=n_desc_par, n_ann_parameters=n_ann,
        ann_parameters=ann, q_scaler=q_scaler, radial_descriptor_weights=radial,
        angular_descriptor_weights=angular,
        # NEP_CPU (calorine) does not use these neighbour limits; GPUMD sizes its lists with them
        max_neighbors_radial=400, max_neighbors_angular=200,
    )
    filename = Path(filename)
    model.write(str(filename))
    return filename


def untrained_nep_descriptors(structures, elements: Sequence[str], cutoff=(6.0, 4.0), n_max=(4, 4),
                              basis_size=(8, 8), l_max=(4, 2, 0), seed: int = 0, per_species: bool = False,
                              species: str | None = None, normalize: bool = True) -> np.ndarray:
    """NEP descriptors from a fresh, untrained model (see the module docstring), per structure.

    :param structures: ase.Atoms or a sequence of them; every species must be in ``elements``.
    :param elements: species of the descriptor model, in order (also the block order with ``per_species``).
    :param cutoff: radial and angular cutoff in Å.
    :param n_max: radial and angular n_max.
    :param basis_size: radial and angular basis size.
    :param l_max: (l_max_3b, l_max_4b, l_max_5b).
    :param seed: seed of the random expansion coefficients (same seed, same descriptor).
    :param per_species: per-species means, concatenated (zeros for absent species).
    :param species: mean over the atoms of this species only.
    :param normalize: scale each per-atom component by 1/(max - min) over all atoms of all ``structures`` (1 where
        the range is zero), like GPUMD's ``q_scaler``; the scale then depends on the set passed in.
    :returns: float64 array (n_structures, dim) or (n_structures, len(elements) * dim).
    """
    structures = _as_structures(structures)
    elements = tuple(elements)
    _check_species_options(elements, per_species, species)
    check_species_covered(structures, elements, 'elements')
    with tempfile.TemporaryDirectory(prefix='sseff-nep-descriptor-') as folder:
        model_path = str(write_descriptor_model(Path(folder) / 'nep.txt', elements, cutoff=cutoff, n_max=n_max,
                                                basis_size=basis_size, l_max=l_max, seed=seed))
        vectors = []
        low = high = None
        for index, (atoms, per_atom) in enumerate(zip(structures, _per_atom_nep(structures, model_path),
                                                      strict=True)):
            symbols = np.asarray(atoms.get_chemical_symbols())
            vectors.append(_reduce(per_atom, symbols, elements, per_species, species, index))
            low = per_atom.min(axis=0) if low is None else np.minimum(low, per_atom.min(axis=0))
            high = per_atom.max(axis=0) if high is None else np.maximum(high, per_atom.max(axis=0))
    vectors = np.asarray(vectors)
    if normalize:
        span = high - low
        scale = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 1.0)
        vectors = vectors * np.tile(scale, vectors.shape[1] // scale.size)
    return vectors


def rdf_descriptors(structures, elements: Sequence[str] | None = None, cutoff: float = 6.0, n_bins: int = 60,
                    sigma: float | None = None) -> np.ndarray:
    """Smooth pair-distance histograms per unordered species pair, per atom.

    For each pair block (A, B), A <= B in ``elements`` order, and bin centre r_k = (k + 1/2) cutoff / n_bins:
    ``h_AB(r_k) = 1/N sum_{i != j, {s_i, s_j} = {A, B}} f_c(r_ij) exp(-(r_k - r_ij)^2 / (2 sigma^2))``, over ordered
    neighbour pairs within the cutoff (periodic images included, via ase's neighbour list), with N the number of
    atoms and the cosine cutoff ``f_c(r) = (1 + cos(pi r / cutoff)) / 2`` that makes the descriptor continuous when
    atoms cross the cutoff. Not divided by shell volume (this is not g(r)).

    :param structures: ase.Atoms or a sequence of them.
    :param elements: species order; default: all species present, by atomic number (pass it explicitly when
        descriptors of different calls are compared).
    :param cutoff: cutoff in Å.
    :param n_bins: number of bins.
    :param sigma: Gaussian width in Å; default cutoff / n_bins.
    :returns: float64 array (n_structures, n_pairs * n_bins), n_pairs = n_species (n_species + 1) / 2.
    """
    structures = _as_structures(structures)
    if elements is None:
        present = {s for atoms in structures for s in atoms.get_chemical_symbols()}
        elements = sorted(present, key=lambda s: atomic_numbers[s])
    elements = tuple(elements)
    check_species_covered(structures, elements, 'elements')
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f'cutoff must be > 0 Å; got {cutoff!r}')
    if int(n_bins) < 1:
        raise ValueError(f'n_bins must be >= 1; got {n_bins!r}')
    n_bins = int(n_bins)
    sigma = cutoff / n_bins if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f'sigma must be > 0 Å; got {sigma!r}')
    centres = (np.arange(n_bins) + 0.5) * cutoff / n_bins
    n_species = len(elements)
    pair_index = np.full((n_species, n_species), -1, dtype=np.int64)
    n_pairs = 0
    for a in range(n_species):
        for b in range(a, n_species):
            pair_index[a, b] = pair_index[b, a] = n_pairs
            n_pairs += 1
    species_index = {e: k for k, e in enumerate(elements)}

    vectors = np.zeros((len(structures), n_pairs, n_bins))
    for index, atoms in enumerate(structures):
        first, second, distance = neighbor_list('ijd', atoms, cutoff)
        kinds = np.array([species_index[s] for s in atoms.get_chemical_symbols()], dtype=np.int64)
        pair = pair_index[kinds[first], kinds[second]]
        weight = 0.5 * (1.0 + np.cos(np.pi * distance / cutoff))
        for p in range(n_pairs):
            mask = pair == p
            r, w = distance[mask], weight[mask]
            for start in range(0, r.size, 20000):  # bounded temporaries: 20000 x n_bins
                gauss = np.exp(-0.5 * ((r[start:start + 20000, None] - centres) / sigma) ** 2)
                vectors[index, p] += w[start:start + 20000] @ gauss
        vectors[index] /= len(atoms)
    return vectors.reshape(len(structures), n_pairs * n_bins)


def structure_descriptors(structures, kind: str = 'rdf', model_path=None, **kwargs) -> np.ndarray:
    """Dispatch to a descriptor kind; returns (n_structures, n_features).

    :param kind: ``'rdf'`` (:func:`rdf_descriptors`), ``'nep'`` (:func:`nep_descriptors`, needs ``model_path``) or
        ``'untrained_nep'`` (:func:`untrained_nep_descriptors`, needs ``elements=``).
    :param model_path: trained ``nep.txt``, for ``kind='nep'`` only.
    :param kwargs: passed to the chosen function.
    """
    if kind == 'nep':
        if model_path is None:
            raise ValueError("kind='nep' needs model_path (a trained nep.txt)")
        return nep_descriptors(structures, model_path, **kwargs)
    if model_path is not None:
        raise ValueError(f'model_path is only used with kind=\'nep\'; got kind={kind!r}')
    if kind == 'rdf':
        return rdf_descriptors(structures, **kwargs)
    if kind == 'untrained_nep':
        if 'elements' not in kwargs:
            raise ValueError("kind='untrained_nep' needs elements=[...] (the species of the descriptor model)")
        return untrained_nep_descriptors(structures, **kwargs)
    raise ValueError(f"kind must be 'rdf', 'nep' or 'untrained_nep'; got {kind!r}")
