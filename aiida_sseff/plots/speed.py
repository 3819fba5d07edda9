"""The speed study's figure (Fig. 4): MD speed and peak memory against the number of atoms, log-log, one line per
model and engine. No aiida imports: :func:`plot_speed_study` takes the ``table`` dict of ``sseff.study.speed``
(:func:`aiida_sseff.analysis.speed.speed_table`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aiida_sseff.plots.transport import _finish, _pyplot

__all__ = ['plot_speed_study', 'speed_series']


def speed_series(table: Mapping) -> dict[str, dict[str, list]]:
    """``{'<model> (<engine>)': {'n_atoms': [...], 'atom_steps_per_s': [...], 'peak_memory_mb': [...]}}`` of the
    finished runs of a speed table, by n_atoms (failed runs have no numbers to plot)."""
    series: dict[str, dict[str, list]] = {}
    for row in sorted(table['rows'], key=lambda r: (r['model'], r['engine'], r['n_atoms'])):
        if row['status'] != 'ok':
            continue
        entry = series.setdefault(f'{row["model"]} ({row["engine"]})',
                                  {'n_atoms': [], 'atom_steps_per_s': [], 'peak_memory_mb': []})
        for key in entry:
            entry[key].append(row[key])
    return series


def plot_speed_study(table: Mapping, path: str | Path | None = None):
    """Two panels: speed (atom-steps/s) and peak memory (MB) against atoms, log-log; the memory limit and the largest
    cell of each line's linear fit are marked where the table has them. Returns the figure, or ``path`` once saved."""
    plt = _pyplot()
    fig, (ax_speed, ax_memory) = plt.subplots(1, 2, figsize=(8.4, 3.6))
    largest = {f'{e["model"]} ({e["engine"]})': e for e in table.get('largest_cell') or []}
    for label, entry in speed_series(table).items():
        line = ax_speed.plot(entry['n_atoms'], entry['atom_steps_per_s'], marker='o', label=label)[0]
        memory = [(n, m) for n, m in zip(entry['n_atoms'], entry['peak_memory_mb'], strict=True) if m is not None]
        if memory:
            ax_memory.plot(*zip(*memory, strict=True), marker='o', color=line.get_color(), label=label)
        fit = largest.get(label)
        if fit and fit.get('max_n_atoms'):
            ax_memory.plot([fit['max_n_atoms']], [fit['limit_mb']], marker='*', markersize=10, color=line.get_color(),
                           linestyle='none', label=f'{label}: largest cell ≈ {fit["max_n_atoms"]} atoms')
    limit = table.get('memory_limit_mb')
    if limit:
        ax_memory.axhline(limit, color='grey', linestyle='--', linewidth=0.8)
    for ax, ylabel in ((ax_speed, 'MD speed (atom-steps / s)'), (ax_memory, 'peak memory (MB)')):
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('atoms')
        ax.set_ylabel(ylabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    ax_speed.set_title('speed (production loop)', fontsize=9)
    ax_memory.set_title('peak memory (RSS), linear fit → largest cell', fontsize=9)
    return _finish(fig, path)
