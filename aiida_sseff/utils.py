"""Small helpers shared across layers (no aiida imports)."""

from __future__ import annotations

import numpy as np

__all__ = ['json_safe']


def json_safe(value):
    """A JSON-safe copy for a ``Dict`` node or a ``--json`` output: numpy → Python, NaN/inf → ``None``, tuples and
    arrays → lists, keys → ``str``."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value
