"""Figures of the architecture comparison, in the style of the perspective paper's Fig. 3 and Fig. 4.

- :func:`plot_architecture_comparison` (Fig. 3): force and energy RMSE on the shared test set relative to the
  reference architecture (bars), then one Arrhenius panel per model, side by side on the same axes, with the
  reference model's fit drawn in grey in every panel so that agreement (or not) is seen at a glance.
- :func:`plot_md_speed` (Fig. 4): MD speed (atom-steps per second) against the number of atoms, log-log.

No aiida imports: the functions take the rows of :func:`aiida_sseff.analysis.architectures.architecture_table` and
plain arrays, so they serve stored nodes and notebooks alike. Units: T K, D cm²/s, RMSE meV/Å and meV/atom.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from aiida_sseff.analysis.architectures import stored_arrhenius_fit
from aiida_sseff.plots.transport import _finish, _pyplot, plot_arrhenius

__all__ = ['arrhenius_entry', 'plot_architecture_comparison', 'plot_md_speed']


def _bars(ax, rows: list[dict], reference: str) -> None:
    labels = [row['label'] for row in rows]
    x = np.arange(len(labels))
    width = 0.38
    for offset, key, name in ((-width / 2, 'force_rmse_relative', 'force'),
                              (width / 2, 'energy_rmse_relative', 'energy')):
        values = [row.get(key) for row in rows]
        heights = [np.nan if v is None else v for v in values]
        ax.bar(x + offset, heights, width, label=name)
        for xi, v in zip(x + offset, values, strict=True):
            if v is None:
                ax.text(xi, 0.02, 'n/a', ha='center', va='bottom', fontsize=6, rotation=90, transform=ax.get_xaxis_transform())
    ax.axhline(1.0, color='0.4', lw=0.8, ls='--')
    ax.set_xticks(x, labels, rotation=30, ha='right', fontsize=8)
    ax.set_ylabel(f'RMSE / RMSE({reference})')
    ax.set_title('test-set error', fontsize=9)
    ax.legend(fontsize=7)


def plot_architecture_comparison(rows: list[dict], arrhenius: Mapping[str, Mapping], reference: str,
                                 path: str | Path | None = None, extrapolate_to_K: float = 300.0):
    """Fig. 3 of the paper for this study: relative RMSE bars and the Arrhenius plots side by side.

    Parameters
    ----------
    rows : the table rows (:func:`~aiida_sseff.analysis.architectures.architecture_table`), reference first.
    arrhenius : ``{label: {'temperature_K', 'D_cm2_s', 'D_err_cm2_s', 'fitted', 'fit'}}`` per model with a
        diffusion result; ``fit`` is an :class:`~aiida_sseff.analysis.arrhenius.ArrheniusFit` or None (see :func:`arrhenius_entry`).
    reference : the label the RMSE is divided by and whose fit is drawn in grey in every Arrhenius panel.
    """
    plt = _pyplot()
    models = [row['label'] for row in rows if row['label'] in arrhenius]
    n_panels = 1 + len(models)
    fig, axes = plt.subplots(1, n_panels, figsize=(3.2 * n_panels, 3.4), squeeze=False)
    axes = axes[0]
    _bars(axes[0], rows, reference)
    reference_fit = (arrhenius.get(reference) or {}).get('fit')
    for ax, label in zip(axes[1:], models, strict=True):
        entry = arrhenius[label]
        plot_arrhenius(entry['temperature_K'], entry['D_cm2_s'], entry['D_err_cm2_s'], fit=entry.get('fit'),
                       fitted=entry.get('fitted'), extrapolate_to_K=extrapolate_to_K, ax=ax, title=label)
        if reference_fit is not None and label != reference:
            t_line = np.linspace(min(np.min(entry['temperature_K']), extrapolate_to_K),
                                 np.max(entry['temperature_K']), 100)
            line, _ = reference_fit.predict(t_line)
            ax.plot(1000.0 / t_line, line, color='0.55', lw=1.0, ls='--', label=f'{reference} fit')
            ax.legend(fontsize=6)
    if models:  # one D scale for all panels, so that the lines can be compared across panels
        limits = np.array([ax.get_ylim() for ax in axes[1:]])
        for ax in axes[1:]:
            ax.set_ylim(limits[:, 0].min(), limits[:, 1].max())
    return _finish(fig, path)


def plot_md_speed(speeds: Mapping[str, list[Mapping]], path: str | Path | None = None):
    """Fig. 4 of the paper: MD atom-steps per second against the number of atoms, one line per model.

    ``speeds``: ``{label: [{'n_atoms', 'atom_steps_per_s'}, ...]}`` (the ``md_speed`` entries of the cost dicts).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    for label, entries in speeds.items():
        entries = sorted(entries, key=lambda e: e['n_atoms'])
        n = [e['n_atoms'] for e in entries]
        speed = [e['atom_steps_per_s'] for e in entries]
        if n:
            ax.plot(n, speed, marker='o', label=label)
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('atoms')
    ax.set_ylabel('MD speed (atom-steps / s)')
    ax.set_title('cost of MD (same engine, same CPU)', fontsize=9)
    ax.legend(fontsize=7)
    return _finish(fig, path)


def arrhenius_entry(diffusion_arrays: Mapping[str, np.ndarray], results: Mapping) -> dict:
    """The ``arrhenius`` entry of one model from its stored ``diffusion`` arrays and ``results`` dict."""
    fit = stored_arrhenius_fit(results)
    return {'temperature_K': np.asarray(diffusion_arrays['temperature_K'], dtype=float),
            'D_cm2_s': np.asarray(diffusion_arrays['D_cm2_s'], dtype=float),
            'D_err_cm2_s': np.asarray(diffusion_arrays['D_err_cm2_s'], dtype=float),
            'fitted': np.asarray(diffusion_arrays['fitted'], dtype=bool), 'fit': fit}
