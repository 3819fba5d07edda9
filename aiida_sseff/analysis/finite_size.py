"""Finite-size and run-length convergence of D(T) and Ea, pure python/numpy (no aiida).

The perspective paper names finite-size effects as the reason LGPS gives Ea = 0.18 eV in a 200-atom cell and 0.23 eV
in a larger one; users size cells and runs by guesswork. Here one model's Arrhenius fit is measured for a series of
supercells and production run lengths, and the verdict says from which cell (and run length) on the numbers stop
changing beyond their errors.

Inputs are plain dicts: one entry per (cell, run length) with ``cell`` (a label), ``n_atoms``, ``n_mobile``,
``run_length_ps`` and ``transport`` (``sseff.diffusion``'s ``results``, or None where its diffusion failed, with the
reason in ``failure``).

The rule (:data:`CONVERGENCE_RULE`): two entries *agree* when their Ea differ by at most ``n_sigma`` combined
standard errors (``hypot`` of the two σ) and so do their log10 D at every temperature where both diffused. Within a
series ordered by size (or run length), the converged member is the smallest one from which every pair of members
of that size or larger agree, with at least one larger member to compare with (the largest alone is never called
converged: nothing checks it). Entries without a fit are left out of the series and listed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from aiida_sseff.analysis.replicas import transport_rows

__all__ = ['CONVERGENCE_RULE', 'DEFAULT_AGREEMENT_SIGMAS', 'agreement', 'finite_size_table', 'format_finite_size_table',
           'smallest_converged']

#: the same two combined σ as the architecture table's agreement of Ea (aiida_sseff.analysis.architectures)
DEFAULT_AGREEMENT_SIGMAS = 2.0

CONVERGENCE_RULE = ('two runs agree when |ΔEa| <= n_sigma × hypot(σ1, σ2) and |Δlog10 D| <= n_sigma × hypot(σ1, σ2) '
                    'at every temperature where both diffused; converged = the smallest member of a series (by '
                    'n_atoms, or by run length) from which every pair of members of that size or larger agree, with '
                    'at least one larger member (the largest alone is never converged)')


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def agreement(a: Mapping, b: Mapping, n_sigma: float = DEFAULT_AGREEMENT_SIGMAS) -> tuple[bool, list[str]]:
    """Whether two sseff.diffusion ``results`` agree (see :data:`CONVERGENCE_RULE`), and the disagreements."""
    reasons = []
    ea_a, ea_b = _finite(a.get('Ea_eV')), _finite(b.get('Ea_eV'))
    err_a, err_b = _finite(a.get('Ea_err_eV')), _finite(b.get('Ea_err_eV'))
    if None in (ea_a, ea_b, err_a, err_b):
        reasons.append('Ea or its error missing')
    elif abs(ea_a - ea_b) > n_sigma * math.hypot(err_a, err_b):
        reasons.append(f'Ea {ea_a:.3f} vs {ea_b:.3f} eV (|Δ| > {n_sigma:g} × {math.hypot(err_a, err_b):.3f})')
    rows_b = {row['temperature_K']: row for row in transport_rows(b)}
    for row in transport_rows(a):
        other = rows_b.get(row['temperature_K'])
        if other is None or not (row['diffusive'] and other['diffusive']) or None in (
                row['log10_D'], other['log10_D'], row['log10_D_err'], other['log10_D_err']):
            continue
        combined = math.hypot(row['log10_D_err'], other['log10_D_err'])
        if abs(row['log10_D'] - other['log10_D']) > n_sigma * combined:
            reasons.append(f"log10 D at {row['temperature_K']:g} K {row['log10_D']:.3f} vs {other['log10_D']:.3f} "
                           f'(|Δ| > {n_sigma:g} × {combined:.3f})')
    return not reasons, reasons


def smallest_converged(series: Sequence[Mapping], n_sigma: float = DEFAULT_AGREEMENT_SIGMAS) -> int | None:
    """Index into ``series`` (transport results, ordered small → large) of the converged member, or None."""
    n = len(series)
    agree = [[agreement(series[i], series[j], n_sigma)[0] for j in range(n)] for i in range(n)]
    for start in range(n - 1):
        if all(agree[i][j] for i in range(start, n) for j in range(i + 1, n)):
            return start
    return None


def _series_verdict(entries: list[dict], key: str, n_sigma: float) -> dict:
    """The converged member of entries ordered by ``key`` (n_atoms or run_length_ps), with the disagreements."""
    ordered = sorted(entries, key=lambda e: e[key])
    index = smallest_converged([e['transport'] for e in ordered], n_sigma)
    chosen = ordered[index] if index is not None else None
    disagreements = []
    for i in range(len(ordered) - 1):
        ok, reasons = agreement(ordered[i]['transport'], ordered[i + 1]['transport'], n_sigma)
        if not ok:
            disagreements.append(f"{ordered[i]['cell']}/{ordered[i]['run_length_ps']:g} ps vs "
                                 f"{ordered[i + 1]['cell']}/{ordered[i + 1]['run_length_ps']:g} ps: "
                                 + '; '.join(reasons))
    return {'order': [e['cell'] if key == 'n_atoms' else e['run_length_ps'] for e in ordered],
            'converged_index': index,
            'converged_cell': chosen['cell'] if chosen else None,
            'converged_n_atoms': chosen['n_atoms'] if chosen else None,
            'converged_run_length_ps': chosen['run_length_ps'] if chosen else None,
            'neighbour_disagreements': disagreements}


def finite_size_table(entries: Sequence[Mapping], n_sigma: float = DEFAULT_AGREEMENT_SIGMAS) -> dict:
    """Rows per (cell, run length) and the convergence verdicts.

    Returns ``rows`` (``cell``, ``replication``, ``n_atoms``, ``n_mobile``, ``run_length_ps``, ``Ea_eV``,
    ``Ea_err_eV``, ``D``: :func:`~aiida_sseff.analysis.replicas.transport_rows`, ``failure``), ``by_run_length``
    (per run length, the converged cell among the cells of that length), ``by_cell`` (per cell, the converged run
    length), ``converged_cell`` / ``converged_n_atoms`` (the verdict at the longest run length),
    ``converged_run_length_ps`` (at the largest cell), ``failed`` and ``rule``.
    """
    rows, fitted = [], []
    for entry in entries:
        transport = entry.get('transport')
        rows.append({'cell': entry['cell'], 'replication': entry.get('replication'), 'n_atoms': int(entry['n_atoms']),
                     'n_mobile': int(entry['n_mobile']), 'run_length_ps': float(entry['run_length_ps']),
                     'Ea_eV': _finite((transport or {}).get('Ea_eV')),
                     'Ea_err_eV': _finite((transport or {}).get('Ea_err_eV')),
                     'D': transport_rows(transport), 'failure': entry.get('failure')})
        if transport is not None:
            fitted.append({**entry, 'n_atoms': int(entry['n_atoms']), 'run_length_ps': float(entry['run_length_ps'])})
    rows.sort(key=lambda r: (r['n_atoms'], r['run_length_ps']))
    lengths = sorted({e['run_length_ps'] for e in fitted})
    cells = sorted({(e['n_atoms'], e['cell']) for e in fitted})
    by_length = {f'{length:g}': _series_verdict([e for e in fitted if e['run_length_ps'] == length], 'n_atoms',
                                                n_sigma) for length in lengths}
    by_cell = {cell: _series_verdict([e for e in fitted if e['cell'] == cell], 'run_length_ps', n_sigma)
               for _, cell in cells}
    longest = by_length[f'{lengths[-1]:g}'] if lengths else None
    largest = by_cell[cells[-1][1]] if cells else None
    return {
        'rows': rows,
        'n_sigma': float(n_sigma),
        'by_run_length': by_length,
        'by_cell': by_cell,
        'longest_run_length_ps': lengths[-1] if lengths else None,
        'largest_cell': cells[-1][1] if cells else None,
        'converged_cell': longest['converged_cell'] if longest else None,
        'converged_n_atoms': longest['converged_n_atoms'] if longest else None,
        'converged_run_length_ps': largest['converged_run_length_ps'] if largest else None,
        'failed': [{'cell': r['cell'], 'run_length_ps': r['run_length_ps'], 'failure': r['failure']}
                   for r in rows if r['failure']],
        'rule': CONVERGENCE_RULE,
    }


def format_finite_size_table(table: Mapping) -> str:
    """The table and verdict as Markdown."""
    rows = table['rows']
    temperatures = sorted({d['temperature_K'] for row in rows for d in row['D']})
    header = ['cell', 'atoms', 'mobile', 'run (ps)', 'Ea (eV)', *(f'D({t:g} K) (cm²/s)' for t in temperatures)]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for row in rows:
        by_t = {d['temperature_K']: d for d in row['D']}
        ea = (f"failed: {row['failure']}" if row['failure'] else '–' if row['Ea_eV'] is None
              else f"{row['Ea_eV']:.3f} ± {row['Ea_err_eV']:.3f}")
        cells = [row['cell'], str(row['n_atoms']), str(row['n_mobile']), f"{row['run_length_ps']:g}", ea]
        for t in temperatures:
            d = by_t.get(t)
            cells.append('–' if d is None or d['D_cm2_s'] is None else
                         f"{d['D_cm2_s']:.2e} ± {d['D_err_cm2_s']:.1e}" if d['D_err_cm2_s'] is not None
                         else f"{d['D_cm2_s']:.2e}")
        lines.append('| ' + ' | '.join(cells) + ' |')
    cell = table['converged_cell']
    length = table['converged_run_length_ps']
    if table['longest_run_length_ps'] is None:
        return '\n'.join([*lines, '', 'No run gave an Arrhenius fit: no verdict.']) + '\n'
    lines += ['', f"Converged cell (at {table['longest_run_length_ps']:g} ps, {table['n_sigma']:g} σ): "
                  + (f"{cell} ({table['converged_n_atoms']} atoms)" if cell else 'none: the cells still disagree, or '
                     'only one was fitted') + '.',
              f"Converged run length (in {table['largest_cell']}): "
              + (f'{length:g} ps' if length is not None else 'none: the run lengths still disagree, or only one was '
                 'fitted') + '.']
    return '\n'.join(lines) + '\n'
