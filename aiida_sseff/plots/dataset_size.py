"""The dataset-size figure (the perspective paper's Fig. 1): test-set RMSE and Ea ± σ against the number of
mobile-ion environments the model was trained on (log x), the converged size marked.

No aiida imports: it takes the rows of :func:`aiida_sseff.analysis.dataset_size.dataset_size_rows` (the ``rows`` of
the study's ``table`` output) and the converged size, so it serves stored nodes and notebooks alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aiida_sseff.plots.transport import _finish, _pyplot

__all__ = ['plot_dataset_size']


def _values(rows, key):
    return np.array([np.nan if row.get(key) is None else float(row[key]) for row in rows])


def plot_dataset_size(rows: Sequence[dict], converged_size: float | None = None, temperature_K: float | None = None,
                      path: str | Path | None = None):
    """Two panels sharing a log x axis (mobile-ion environments): force (left axis) and energy (right axis) RMSE on
    the fixed test set; Ea ± σ (and D ± σ at ``temperature_K`` on a right log axis). A dashed line marks
    ``converged_size``; sizes without transport are left out of the lower panel. Returns the figure, or the path
    when ``path`` is given."""
    plt = _pyplot()
    rows = sorted(rows, key=lambda row: row['n_mobile_environments'])
    x = np.array([row['n_mobile_environments'] for row in rows], dtype=float)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.0, 5.6), sharex=True)
    top.plot(x, _values(rows, 'force_rmse_mev_per_angstrom'), 'o-', color='C0', label='force')
    top.set_ylabel('force RMSE (meV/Å)', color='C0')
    energy_axis = top.twinx()
    energy_axis.plot(x, _values(rows, 'energy_rmse_mev_per_atom'), 's--', color='C1', label='energy')
    energy_axis.set_ylabel('energy RMSE (meV/atom)', color='C1')
    top.set_title('test-set error (the same held-out structures for every size)', fontsize=9)
    ea, ea_err = _values(rows, 'Ea_eV'), _values(rows, 'Ea_err_eV')
    bottom.errorbar(x, ea, yerr=ea_err, fmt='o-', color='C2', capsize=3, label='Ea')
    bottom.set_ylabel('Ea (eV)', color='C2')
    d, d_err = _values(rows, 'D_cm2_s'), _values(rows, 'D_err_cm2_s')
    if np.isfinite(d).any():
        d_axis = bottom.twinx()
        d_axis.errorbar(x, d, yerr=d_err, fmt='^:', color='C3', capsize=3)
        d_axis.set_yscale('log')
        d_axis.set_ylabel(f'D({temperature_K:g} K) (cm²/s)' if temperature_K else 'D (cm²/s)', color='C3')
    bottom.set_xscale('log')
    bottom.set_xlabel('mobile-ion environments (structures × mobile ions)')
    for ax in (top, bottom):
        if converged_size is not None:
            ax.axvline(converged_size, color='0.3', ls='--', lw=0.9)
        ax.set_xticks(x, [f'{int(v)}' for v in x])
        ax.minorticks_off()
    if converged_size is not None:
        bottom.text(converged_size, 0.97, ' transport converged', transform=bottom.get_xaxis_transform(), va='top',
                    fontsize=7, color='0.3')
    else:
        bottom.text(0.02, 0.97, 'not converged within the series', transform=bottom.transAxes, va='top', fontsize=7,
                    color='0.3')
    return _finish(fig, path)
