"""Choosing which candidates to label."""

from __future__ import annotations

import numpy as np


def select_indices(structures, n_structures: int) -> list[int]:
    """Indices of ``n_structures`` candidates, evenly spread over the candidate list (deterministic)."""
    n = len(structures)
    if not 1 <= n_structures <= n:
        raise ValueError(f'cannot select {n_structures} of {n} candidates')
    return [int(i) for i in np.linspace(0, n - 1, n_structures).round().astype(int)]
