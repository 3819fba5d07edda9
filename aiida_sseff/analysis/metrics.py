"""Error metrics of a model against reference data: RMSE, MAE, R², per-element force errors, parity data.

Pure numpy. Every function takes ``predicted`` and ``target`` arrays of the same shape, in whatever unit the
caller uses (eV/atom, eV/Å, GPa, ...), and returns numbers in that same unit (R² is dimensionless).
Entries where either array is NaN are left out, which is how missing targets (e.g. frames without a virial,
written by GPUMD as the sentinel -1e6 and turned into NaN by :mod:`aiida_sseff.io.nep`) are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    'error_summary',
    'mae',
    'max_abs_error',
    'parity_data',
    'per_element_errors',
    'r2_score',
    'rmse',
]


def _paired(predicted, target) -> tuple[np.ndarray, np.ndarray]:
    """Return the flattened finite pairs of two arrays of equal shape; raise ValueError otherwise."""
    predicted = np.asarray(predicted, dtype=float)
    target = np.asarray(target, dtype=float)
    if predicted.shape != target.shape:
        raise ValueError(f'predicted has shape {predicted.shape} but target has shape {target.shape}; '
                         'expected equal shapes')
    predicted, target = predicted.ravel(), target.ravel()
    keep = np.isfinite(predicted) & np.isfinite(target)
    return predicted[keep], target[keep]


def rmse(predicted, target) -> float:
    """Root-mean-square error over all finite entries (all components of all rows), in the unit of the input.

    For forces of shape (n_atoms, 3) this is GPUMD's force RMSE: sqrt(sum |ΔF|² / (3 n_atoms)).
    Returns NaN when no finite pair is left.
    """
    p, t = _paired(predicted, target)
    if p.size == 0:
        return float('nan')
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mae(predicted, target) -> float:
    """Mean absolute error over all finite entries, in the unit of the input (NaN when none)."""
    p, t = _paired(predicted, target)
    if p.size == 0:
        return float('nan')
    return float(np.mean(np.abs(p - t)))


def max_abs_error(predicted, target) -> float:
    """Largest absolute error over all finite entries, in the unit of the input (NaN when none)."""
    p, t = _paired(predicted, target)
    if p.size == 0:
        return float('nan')
    return float(np.max(np.abs(p - t)))


def r2_score(predicted, target) -> float:
    """Coefficient of determination 1 - SS_res/SS_tot over all finite entries (dimensionless).

    NaN when fewer than two pairs are left or the target has no spread.
    """
    p, t = _paired(predicted, target)
    if p.size < 2:
        return float('nan')
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    if ss_tot == 0.0:
        return float('nan')
    return 1.0 - float(np.sum((p - t) ** 2)) / ss_tot


def error_summary(predicted, target) -> dict[str, float]:
    """RMSE, MAE, max |error| (unit of the input), R² and the number ``n`` of finite entries used."""
    p, t = _paired(predicted, target)
    return {
        'rmse': rmse(p, t),
        'mae': mae(p, t),
        'max_abs': max_abs_error(p, t),
        'r2': r2_score(p, t),
        'n': int(p.size),
    }


def per_element_errors(predicted, target, symbols: Sequence[str]) -> dict[str, dict[str, float]]:
    """Error summary of a per-atom quantity (e.g. forces, shape (n_atoms, 3)) for each chemical element.

    ``symbols`` holds one chemical symbol per row (atom), in the row order of ``predicted``/``target``.
    Returns ``{element: error_summary(...)}`` in order of first appearance; RMSE/MAE are over all components
    of that element's atoms, in the unit of the input (eV/Å for forces).
    """
    predicted = np.asarray(predicted, dtype=float)
    target = np.asarray(target, dtype=float)
    symbols = np.asarray(symbols)
    if predicted.shape != target.shape:
        raise ValueError(f'predicted has shape {predicted.shape} but target has shape {target.shape}')
    if symbols.ndim != 1 or len(symbols) != len(predicted):
        raise ValueError(f'symbols has {symbols.size} entries but predicted has {len(predicted)} rows; '
                         'expected one symbol per row')
    result = {}
    for element in dict.fromkeys(symbols.tolist()):
        rows = symbols == element
        result[element] = error_summary(predicted[rows], target[rows])
    return result


def parity_data(predicted, target, symbols: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Flattened finite (target, predicted) pairs for a parity plot, with the plot limits.

    Returns ``{'target': 1-D, 'predicted': 1-D, 'limits': (low, high)}`` (unit of the input) and, when
    ``symbols`` (one per row) is given, ``'element'`` with the element of each flattened entry.
    The limits span both arrays with a 2 % margin so the diagonal can be drawn from ``low`` to ``high``.
    """
    predicted = np.asarray(predicted, dtype=float)
    target = np.asarray(target, dtype=float)
    if predicted.shape != target.shape:
        raise ValueError(f'predicted has shape {predicted.shape} but target has shape {target.shape}')
    per_row = int(np.prod(predicted.shape[1:])) if predicted.ndim > 1 else 1
    flat_p, flat_t = predicted.ravel(), target.ravel()
    keep = np.isfinite(flat_p) & np.isfinite(flat_t)
    data = {'target': flat_t[keep], 'predicted': flat_p[keep]}
    if symbols is not None:
        symbols = np.asarray(symbols)
        if len(symbols) != len(predicted):
            raise ValueError(f'symbols has {len(symbols)} entries but predicted has {len(predicted)} rows')
        data['element'] = np.repeat(symbols, per_row)[keep]
    if keep.any():
        low = float(min(data['target'].min(), data['predicted'].min()))
        high = float(max(data['target'].max(), data['predicted'].max()))
        margin = 0.02 * (high - low) if high > low else 1.0
        data['limits'] = (low - margin, high + margin)
    else:
        data['limits'] = (float('nan'), float('nan'))
    return data
