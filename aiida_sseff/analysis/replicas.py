"""Replica spread of the Li transport (the perspective paper's Fig. S4), pure python/numpy (no aiida).

n models trained on the same data with different seeds, each one's Arrhenius fit from the same MD settings: is the
spread of Ea and of D(T) across the replicas larger than each replica's own error bar? When it is, the error bar of
one model understates the uncertainty of the prediction (the model, not the MD statistics, dominates), and the
reference data (or the architecture) does not give reproducible transport.

Inputs are the plain dicts the workflows store: per replica the ``results`` of ``sseff.diffusion`` (``Ea_eV``,
``Ea_err_eV``, ``table``: one row per temperature with ``temperature_K``, ``D_cm2_s``, ``D_err_cm2_s``,
``diffusive``) and the force RMSE on the test set (meV/Å). A replica whose diffusion failed has ``None`` transport
and keeps its row (with the reason) but does not enter the spread.

The rule (:data:`REPRODUCIBILITY_RULE`): the transport is *reproducible* when the standard deviation of Ea across the
replicas (ddof 1) is at most the mean of the replicas' own σ(Ea); it needs at least two replicas with a fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

__all__ = ['REPRODUCIBILITY_RULE', 'format_replica_table', 'log10_with_error', 'replica_summary', 'spread',
           'transport_rows']

REPRODUCIBILITY_RULE = ('reproducible when std(Ea) across the replicas (ddof 1) <= the mean of the replicas\' own '
                        'σ(Ea); at least 2 replicas with an Arrhenius fit')


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def log10_with_error(d: float | None, d_err: float | None) -> tuple[float | None, float | None]:
    """log10 D and its standard error σ(D) / (D ln 10) (first-order propagation); None for D ≤ 0 or missing."""
    d, d_err = _finite(d), _finite(d_err)
    if d is None or d <= 0:
        return None, None
    return math.log10(d), (d_err / (d * math.log(10.0)) if d_err is not None else None)


def transport_rows(results: Mapping | None) -> list[dict]:
    """One entry per temperature of a stored ``sseff.diffusion`` ``results``: T, D ± σ, log10 D ± σ, diffusive."""
    rows = []
    for row in (results or {}).get('table') or []:
        log_d, log_err = log10_with_error(row.get('D_cm2_s'), row.get('D_err_cm2_s'))
        rows.append({'temperature_K': float(row['temperature_K']), 'D_cm2_s': _finite(row.get('D_cm2_s')),
                     'D_err_cm2_s': _finite(row.get('D_err_cm2_s')), 'log10_D': log_d, 'log10_D_err': log_err,
                     'diffusive': bool(row.get('diffusive', True))})
    return sorted(rows, key=lambda r: r['temperature_K'])


def spread(values, own_errors) -> dict | None:
    """Across replicas: ``n``, ``mean``, ``std`` (ddof 1), ``max_minus_min``, ``mean_own_err`` (mean of the own σ)
    and ``spread_over_own_err`` (std / mean own σ). Entries that are None are left out; None below 2 values."""
    pairs = [(float(v), None if e is None else float(e)) for v, e in zip(values, own_errors, strict=True)
             if v is not None and math.isfinite(float(v))]
    if len(pairs) < 2:
        return None
    v = np.array([p[0] for p in pairs])
    errors = [p[1] for p in pairs if p[1] is not None and math.isfinite(p[1])]
    std = float(np.std(v, ddof=1))
    mean_err = float(np.mean(errors)) if errors else None
    return {'n': len(pairs), 'mean': float(v.mean()), 'std': std, 'max_minus_min': float(v.max() - v.min()),
            'mean_own_err': mean_err,
            'spread_over_own_err': std / mean_err if mean_err else None}


def replica_summary(transport: Mapping[str, Mapping | None], force_rmse: Mapping[str, float | None],
                    failures: Mapping[str, str] | None = None) -> dict:
    """The replicas of one dataset: one row per replica and the spread across them.

    ``transport``: ``{replica: sseff.diffusion results or None}``; ``force_rmse``: ``{replica: meV/Å}``;
    ``failures``: ``{replica: why its diffusion gave no fit}``. Returns ``rows`` (``replica``,
    ``force_mev_per_angstrom``, ``Ea_eV``, ``Ea_err_eV``, ``D``: :func:`transport_rows`, ``failure``), ``spread``
    (``Ea``, ``force_mev_per_angstrom`` and ``log10_D`` per temperature: :func:`spread` of the diffusive points)
    and ``reproducible`` (True/False by :data:`REPRODUCIBILITY_RULE`, None with fewer than 2 fits).
    """
    failures = failures or {}
    replicas = sorted(set(transport) | set(force_rmse) | set(failures))
    rows = []
    for replica in replicas:
        results = transport.get(replica)
        rows.append({'replica': replica, 'force_mev_per_angstrom': _finite(force_rmse.get(replica)),
                     'Ea_eV': _finite((results or {}).get('Ea_eV')),
                     'Ea_err_eV': _finite((results or {}).get('Ea_err_eV')),
                     'D': transport_rows(results), 'failure': failures.get(replica)})
    temperatures = sorted({d['temperature_K'] for row in rows for d in row['D']})
    log_d = {}
    for temperature in temperatures:
        points = [d for row in rows for d in row['D'] if d['temperature_K'] == temperature and d['diffusive']]
        log_d[f'{temperature:g}'] = spread([p['log10_D'] for p in points], [p['log10_D_err'] for p in points])
    ea = spread([row['Ea_eV'] for row in rows], [row['Ea_err_eV'] for row in rows])
    force = spread([row['force_mev_per_angstrom'] for row in rows], [None] * len(rows))
    reproducible = None
    if ea is not None and ea['mean_own_err'] is not None:
        reproducible = bool(ea['std'] <= ea['mean_own_err'])
    return {'rows': rows, 'temperatures_K': temperatures,
            'spread': {'Ea_eV': ea, 'log10_D': log_d, 'force_mev_per_angstrom': force},
            'reproducible': reproducible, 'rule': REPRODUCIBILITY_RULE}


def _fmt(value, fmt: str) -> str:
    return '–' if value is None else format(value, fmt)


def format_replica_table(datasets: Mapping[str, Mapping]) -> str:
    """The study as Markdown: per dataset one line per replica (force RMSE, Ea ± σ, D ± σ per T), then the spread."""
    lines = []
    for label, summary in datasets.items():
        temperatures = summary['temperatures_K']
        header = ['replica', 'force RMSE (meV/Å)', 'Ea (eV)', *(f'D({t:g} K) (cm²/s)' for t in temperatures)]
        lines += [f'**{label}**', '', '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
        for row in summary['rows']:
            by_t = {d['temperature_K']: d for d in row['D']}
            cells = [row['replica'], _fmt(row['force_mev_per_angstrom'], '.1f'),
                     '–' if row['Ea_eV'] is None else f"{row['Ea_eV']:.3f} ± {_fmt(row['Ea_err_eV'], '.3f')}"]
            for t in temperatures:
                d = by_t.get(t)
                cells.append('–' if d is None or d['D_cm2_s'] is None
                             else f"{d['D_cm2_s']:.2e} ± {_fmt(d['D_err_cm2_s'], '.1e')}")
            if row['failure']:
                cells[2] = f'failed: {row["failure"]}'
            lines.append('| ' + ' | '.join(cells) + ' |')
        ea = summary['spread']['Ea_eV']
        if ea is None:
            lines += ['', 'Fewer than 2 replicas with an Arrhenius fit: no spread.', '']
            continue
        verdict = {True: 'reproducible', False: 'NOT reproducible', None: 'undecided'}[summary['reproducible']]
        lines += ['', f"Ea across {ea['n']} replicas: std {ea['std']:.3f} eV, max−min {ea['max_minus_min']:.3f} eV, "
                      f"mean own σ {_fmt(ea['mean_own_err'], '.3f')} eV, ratio {_fmt(ea['spread_over_own_err'], '.2f')} "
                      f'→ {verdict}.']
        for t, entry in summary['spread']['log10_D'].items():
            if entry is not None:
                lines.append(f"log10 D at {t} K: std {entry['std']:.3f}, max−min {entry['max_minus_min']:.3f}, "
                             f"mean own σ {_fmt(entry['mean_own_err'], '.3f')}, ratio "
                             f"{_fmt(entry['spread_over_own_err'], '.2f')}.")
        lines.append('')
    return '\n'.join(lines).rstrip() + '\n'
