"""Choosing which candidates to label: farthest-point sampling in a descriptor space (the seed paper's method)."""

from __future__ import annotations

import numpy as np

from aiida_sseff.analysis.descriptors import untrained_nep_descriptors
from aiida_sseff.analysis.fps import farthest_point_sampling


def candidate_descriptors(structures) -> np.ndarray:
    """Per-species means of NEP descriptors from an untrained NEP model (fixed seed, cutoffs 6/4 Å).

    The first round of sampling has no trained model; the descriptor part of NEP needs none (only the ANN is trained
    on top), and per-species means let the Li environments weigh in rather than being averaged into the framework.
    """
    elements = sorted({symbol for atoms in structures for symbol in atoms.get_chemical_symbols()})
    return untrained_nep_descriptors(structures, elements, per_species=True)


def select_indices(structures, n_structures: int) -> list[int]:
    """Indices of ``n_structures`` candidates chosen by greedy max–min FPS (deterministic), in the order picked."""
    n = len(structures)
    if not 1 <= n_structures <= n:
        raise ValueError(f'cannot select {n_structures} of {n} candidates')
    result = farthest_point_sampling(candidate_descriptors(structures), n_select=n_structures)
    return [int(i) for i in result.indices]
