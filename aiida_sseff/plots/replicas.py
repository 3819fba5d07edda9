"""Figures of the replica study (the perspective paper's Fig. S4): D(T) per replica with its own error bars, one
panel per dataset, and Ea ± σ per replica with the spread across replicas.

No aiida imports: the functions take the ``datasets`` part of the stored ``table``
(:func:`aiida_sseff.analysis.replicas.replica_summary` per dataset) and, for the fit lines, ``ArrheniusFit`` objects
(:func:`aiida_sseff.analysis.architectures.stored_arrhenius_fit`). Units: T K, D cm²/s, Ea eV.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from aiida_sseff.plots.transport import _finish, _pyplot

__all__ = ['plot_replica_arrhenius', 'plot_replica_ea']


def plot_replica_arrhenius(datasets: Mapping[str, Mapping], fits: Mapping[str, Mapping] | None = None,
                           path: str | Path | None = None):
    """One Arrhenius panel per dataset: every replica's D(T) with its own error bars (and its fit line where
    ``fits[dataset][replica]`` is given), on shared axes so that the datasets compare at a glance."""
    plt = _pyplot()
    labels = list(datasets)
    fig, axes = plt.subplots(1, len(labels), figsize=(4.0 * len(labels), 3.6), squeeze=False, sharey=True)
    for ax, label in zip(axes[0], labels, strict=True):
        for index, row in enumerate(datasets[label]['rows']):
            points = [d for d in row['D'] if d['D_cm2_s'] is not None and d['D_cm2_s'] > 0]
            if not points:
                continue
            color = f'C{index % 10}'
            t = np.array([d['temperature_K'] for d in points])
            d = np.array([d['D_cm2_s'] for d in points])
            err = np.array([d_['D_err_cm2_s'] if d_['D_err_cm2_s'] is not None else 0.0 for d_ in points])
            name = row['replica'] + ('' if row['Ea_eV'] is None else f" (Ea {row['Ea_eV']:.3f} ± {row['Ea_err_eV']:.3f})")
            ax.errorbar(1000.0 / t, d, yerr=err, fmt='o', color=color, capsize=3, ms=4, label=name)
            fit = (fits or {}).get(label, {}).get(row['replica'])
            if fit is not None:
                t_line = np.linspace(t.min(), t.max(), 50)
                ax.plot(1000.0 / t_line, fit.predict(t_line)[0], color=color, lw=1.0)
        ax.set_yscale('log')
        ax.set_xlabel('1000 / T (1/K)')
        verdict = {True: 'reproducible', False: 'not reproducible', None: 'no verdict'}[datasets[label]['reproducible']]
        ax.set_title(f'{label}: {verdict}', fontsize=9)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel('D (cm²/s)')
    return _finish(fig, path)


def plot_replica_ea(datasets: Mapping[str, Mapping], path: str | Path | None = None):
    """Ea ± own σ per replica, grouped by dataset; the band is the mean ± std across the replicas."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 1.6 * len(datasets), 3.6))
    ticks, names = [], []
    for group, (label, summary) in enumerate(datasets.items()):
        rows = [row for row in summary['rows'] if row['Ea_eV'] is not None]
        x = group + np.linspace(-0.25, 0.25, max(len(rows), 1))[:len(rows)]
        ax.errorbar(x, [row['Ea_eV'] for row in rows], yerr=[row['Ea_err_eV'] or 0.0 for row in rows], fmt='o',
                    color=f'C{group % 10}', capsize=3)
        ea = summary['spread']['Ea_eV']
        if ea is not None:
            ax.fill_between([group - 0.35, group + 0.35], ea['mean'] - ea['std'], ea['mean'] + ea['std'],
                            color=f'C{group % 10}', alpha=0.2, lw=0)
            ax.hlines(ea['mean'], group - 0.35, group + 0.35, color=f'C{group % 10}', lw=1)
        ticks.append(group)
        names.append(label)
    ax.set_xticks(ticks, names)
    ax.set_ylabel('Ea (eV)')
    ax.set_title('Ea per replica (bars: own σ; band: spread)', fontsize=9)
    return _finish(fig, path)
