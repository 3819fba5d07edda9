"""Figure of the finite-size study: Ea ± σ against the number of atoms, one series per run length, the converged
cell marked. No aiida imports: takes the stored ``table`` (:func:`aiida_sseff.analysis.finite_size.finite_size_table`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from aiida_sseff.plots.transport import _finish, _pyplot

__all__ = ['plot_finite_size']


def plot_finite_size(table: Mapping, path: str | Path | None = None):
    """Ea ± σ vs n_atoms per run length (log x axis); a dashed line at the converged cell (at the longest run)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.8))
    lengths = sorted({row['run_length_ps'] for row in table['rows']})
    for index, length in enumerate(lengths):
        rows = [row for row in table['rows'] if row['run_length_ps'] == length and row['Ea_eV'] is not None]
        if not rows:
            continue
        n = np.array([row['n_atoms'] for row in rows], dtype=float)
        # a small shift per run length so that the error bars of one cell do not hide each other
        shift = 1.0 + 0.03 * (index - (len(lengths) - 1) / 2)
        ax.errorbar(n * shift, [row['Ea_eV'] for row in rows], yerr=[row['Ea_err_eV'] or 0.0 for row in rows],
                    fmt='o-', capsize=3, color=f'C{index % 10}', label=f'{length:g} ps')
    if table.get('converged_n_atoms'):
        ax.axvline(table['converged_n_atoms'], color='0.3', ls='--', lw=1,
                   label=f"converged from {table['converged_cell']}")
    ax.set_xscale('log')
    ax.set_xlabel('atoms in the cell')
    ax.set_ylabel('Ea (eV)')
    ax.set_title('Ea vs cell size' + ('' if table.get('converged_cell') else ' (not converged)'), fontsize=9)
    ax.legend(fontsize=7)
    return _finish(fig, path)
