"""Plots of a NEP training: loss curves and parity plots (matplotlib, Agg backend; arrays in, PNG out; no aiida).

Units: loss.out RMSEs in eV/atom (energy, virial) and eV/Å (force) are plotted in meV; parity plots show energy per
atom (eV/atom), force components (eV/Å) and virial per atom (eV/atom) or stress (GPa).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ['plot_loss', 'plot_parity', 'plot_training']

_LOSS_LABELS = {'RMSE_E': ('energy', 'meV/atom'), 'RMSE_F': ('force', 'meV/Å'), 'RMSE_V': ('virial', 'meV/atom')}
_PARITY_UNITS = {'energy': 'eV/atom', 'force': 'eV/Å', 'virial': 'eV/atom', 'stress': 'GPa'}


def _pyplot():
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def _draw_loss(ax, generation, columns: Mapping[str, np.ndarray]) -> None:
    generation = np.asarray(generation, dtype=float)
    drawn = False
    for index, (prefix, (name, unit)) in enumerate(_LOSS_LABELS.items()):
        for label, style in (('train', '-'), ('test', '--')):
            key = f'{prefix}_{label}'
            if key not in columns:
                continue
            values = 1000.0 * np.asarray(columns[key], dtype=float)
            if not np.any(values > 0):
                continue  # GPUMD writes zeros for a missing test set
            ax.plot(generation, values, style, color=f'C{index}', label=f'{name} {label} ({unit})')
            drawn = True
    if drawn:
        ax.set_yscale('log')
        ax.legend(fontsize=7)
    ax.set_xlabel('generation / step')
    ax.set_ylabel('RMSE (meV/atom, meV/Å)')
    ax.set_title('loss.out')


def _draw_parity(ax, quantity: str, sets: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
    from aiida_sseff.analysis.metrics import parity_data, rmse

    limits = []
    for index, (label, (predicted, target)) in enumerate(sets.items()):
        data = parity_data(predicted, target)
        if data['target'].size == 0:
            continue
        error = rmse(predicted, target) * (1.0 if quantity == 'stress' else 1000.0)
        unit = 'GPa' if quantity == 'stress' else ('meV/Å' if quantity == 'force' else 'meV/atom')
        ax.scatter(data['target'], data['predicted'], s=4, alpha=0.5, color=f'C{index}',
                   label=f'{label}: RMSE {error:.3g} {unit}')
        limits.append(data['limits'])
    if limits:
        low, high = min(lim[0] for lim in limits), max(lim[1] for lim in limits)
        ax.plot([low, high], [low, high], color='0.4', lw=0.8)
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.legend(fontsize=7)
    unit = _PARITY_UNITS[quantity]
    ax.set_xlabel(f'target {quantity} ({unit})')
    ax.set_ylabel(f'predicted {quantity} ({unit})')
    ax.set_aspect('equal', adjustable='box')


def _quantities(parity: Mapping[str, Mapping[str, tuple]]) -> list[str]:
    present = {q for files in parity.values() for q in files}
    quantities = [q for q in ('energy', 'force') if q in present]
    if 'virial' in present:
        quantities.append('virial')
    elif 'stress' in present:
        quantities.append('stress')
    return quantities


def plot_loss(generation, columns: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Loss curves: the RMSE columns of loss.out (``RMSE_E_train`` ... ``RMSE_V_test``, eV/atom and eV/Å) in meV,
    log scale, against the generation (GPUMD) or step (neppo). Returns the PNG path."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    _draw_loss(ax, generation, columns)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_parity(parity: Mapping[str, Mapping[str, tuple]], path: str | Path) -> Path:
    """Parity plots: ``parity = {'train': {'energy': (predicted, target), 'force': ..., 'virial'|'stress': ...},
    'test': {...}}``; one panel per quantity (energy, force, then virial, else stress), one colour per set."""
    plt = _pyplot()
    quantities = _quantities(parity)
    fig, axes = plt.subplots(1, max(len(quantities), 1), figsize=(4.2 * max(len(quantities), 1), 4), squeeze=False)
    for ax, quantity in zip(axes[0], quantities, strict=False):
        _draw_parity(ax, quantity, {label: files[quantity] for label, files in parity.items() if quantity in files})
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_training(generation, columns: Mapping[str, np.ndarray] | None, parity: Mapping[str, Mapping[str, tuple]],
                  path: str | Path | None, title: str | None = None):
    """One figure: the loss curves (when ``columns`` is given) followed by the parity panels; see
    :func:`plot_loss` and :func:`plot_parity` for the arguments. Returns the PNG path, or with ``path=None`` the
    figure (neither saved nor closed)."""
    plt = _pyplot()
    quantities = _quantities(parity)
    n_panels = len(quantities) + (1 if columns is not None else 0)
    fig, axes = plt.subplots(1, max(n_panels, 1), figsize=(4.2 * max(n_panels, 1), 4), squeeze=False)
    panels = list(axes[0])
    if columns is not None:
        _draw_loss(panels.pop(0), generation, columns)
    for ax, quantity in zip(panels, quantities, strict=False):
        _draw_parity(ax, quantity, {label: files[quantity] for label, files in parity.items() if quantity in files})
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if path is None:  # the report embeds the figure itself
        return fig
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
