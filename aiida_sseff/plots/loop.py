"""Plot of an active-learning loop (``sseff.loop``): Ea ± σ of the best committee model (with the replica spread) and
the test-set force RMSE versus iteration, on two axes, so that a reader sees whether the RMSE predicted the
convergence of Ea (matplotlib, Agg backend; the table's rows in, a figure out; no aiida)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ['loop_figure', 'plot_loop']


def _value(row: dict, key: str) -> float:
    value = row.get(key)
    return float(value) if value is not None else np.nan


def loop_figure(rows: Sequence[dict], title: str = ''):
    """The figure of ``rows`` (the ``rows`` of a loop's ``iterations`` output): Ea ± σ (eV, left, error bars; the
    replica spread as a shaded band) and the force RMSE on the fixed test set (meV/Å, right)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError('the loop has no iteration to plot')
    iteration = np.array([int(row['iteration']) for row in rows])
    ea = np.array([_value(row, 'Ea_eV') for row in rows])
    ea_err = np.array([_value(row, 'Ea_err_eV') for row in rows])
    spread = np.array([_value(row, 'ea_replica_spread_eV') for row in rows])
    rmse = np.array([_value(row, 'force_rmse_mev_A') for row in rows])
    figure, left = plt.subplots(figsize=(6.0, 4.0), constrained_layout=True)
    left.errorbar(iteration, ea, yerr=ea_err, fmt='o-', color='C0', capsize=3, label='Ea ± σ (best model)')
    left.fill_between(iteration, ea - np.nan_to_num(spread), ea + np.nan_to_num(spread), color='C0', alpha=0.15,
                      label='± replica spread of Ea')
    left.set_xlabel('iteration')
    left.set_ylabel('Ea (eV)', color='C0')
    left.set_xticks(iteration)
    right = left.twinx()
    right.plot(iteration, rmse, 's--', color='C3', label='test force RMSE')
    right.set_ylabel('force RMSE on the fixed test set (meV/Å)', color='C3')
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    labels = left.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    left.legend(handles, labels, fontsize='small', loc='best')
    if title:
        left.set_title(title)
    return figure


def plot_loop(rows: Sequence[dict], path: str | Path, title: str = '') -> Path:
    """:func:`loop_figure` saved as a PNG at ``path``."""
    import matplotlib.pyplot as plt

    figure = loop_figure(rows, title)
    path = Path(path)
    figure.savefig(path, dpi=150)
    plt.close(figure)
    return path
