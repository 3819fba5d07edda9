"""Dataset-size sensitivity (the perspective paper's Fig. 1): the table of errors and transport per training-set size
and the size from which the transport stops changing. Pure Python (no aiida): the study's calcfunction
``tabulate_dataset_size`` calls these, and so can a notebook.

Sizes are counted in mobile-ion environments: structures × mobile ions per structure, summed over the training
set (:func:`mobile_environments`), because a model learns the mobile ion's interactions from the environments it
has seen, not from the number of cells.

The converged size (:func:`converged_size`): sort the sizes from small to large; the converged size is the smallest
size *s* such that every pair of sizes >= *s* agrees — ``|Ea_i - Ea_j| <= n_sigma * sqrt(σ_i² + σ_j²)`` and the same
for D at the comparison temperature — and at least one larger size exists to agree with (the largest size alone
proves nothing). A size without transport (its diffusion failed) cannot agree with anything, so the converged range
starts above it. No such size: None (not converged within the series).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

#: the transport quantities the convergence rule compares: (value key, error key) of a table row
CONVERGENCE_KEYS = (('Ea_eV', 'Ea_err_eV'), ('D_cm2_s', 'D_err_cm2_s'))


def mobile_environments(symbols: Iterable[Sequence[str]], species: str) -> int:
    """Number of mobile-ion environments of a set of structures: the count of ``species`` summed over them.

    :param symbols: the chemical symbols of each structure (e.g. ``[atoms.get_chemical_symbols() for atoms in s]``).
    """
    return int(sum(sum(1 for symbol in structure if symbol == species) for structure in symbols))


def agree(a: float, a_err: float, b: float, b_err: float, n_sigma: float = 1.0) -> bool:
    """``|a - b| <= n_sigma * sqrt(a_err² + b_err²)``."""
    return abs(a - b) <= n_sigma * math.hypot(a_err, b_err)


def _has_transport(row: dict, keys) -> bool:
    return all(row.get(value) is not None and row.get(error) is not None and math.isfinite(row[value])
               and math.isfinite(row[error]) for value, error in keys)


def converged_size(rows: Sequence[dict], n_sigma: float = 1.0, size_key: str = 'n_mobile_environments',
                   keys=CONVERGENCE_KEYS) -> dict:
    """The smallest size from which the transport stops changing (rule in the module docstring).

    :param rows: one dict per size with ``size_key`` and the ``keys`` (value, error); a value or error of None
        means that size has no transport.
    :returns: ``{'converged': bool, 'size': the converged size or None, 'index': its position in ``rows`` or None,
        'reason': a sentence}``.
    """
    if n_sigma <= 0:
        raise ValueError(f'n_sigma must be > 0, got {n_sigma}')
    order = sorted(range(len(rows)), key=lambda i: rows[i][size_key])
    if len(order) < 2:
        return {'converged': False, 'size': None, 'index': None,
                'reason': f'{len(order)} size(s): at least two are needed to see the transport stop changing'}
    missing = [i for i in order if not _has_transport(rows[i], keys)]
    # candidates: sizes above the largest size without transport, and not the largest size itself
    first = order.index(missing[-1]) + 1 if missing else 0
    for position in range(first, len(order) - 1):
        tail = [rows[i] for i in order[position:]]
        if all(agree(a[value], a[error], b[value], b[error], n_sigma)
               for k, a in enumerate(tail) for b in tail[k + 1:] for value, error in keys):
            index = order[position]
            return {'converged': True, 'size': rows[index][size_key], 'index': index,
                    'reason': f'every size from {rows[index][size_key]} on agrees within {n_sigma:g} combined σ '
                              f'({", ".join(value for value, _ in keys)})'}
    if missing and order.index(missing[-1]) == len(order) - 1:
        reason = 'the largest size has no transport: nothing to converge to'
    else:
        reason = (f'no size agrees with every larger one within {n_sigma:g} combined σ: the transport still changes '
                  'at the largest size (more data are needed)')
    return {'converged': False, 'size': None, 'index': None, 'reason': reason}


def d_at_temperature(transport_table: Sequence[dict], temperature: float) -> tuple[float | None, float | None]:
    """D ± σ (cm²/s) at ``temperature`` from the per-temperature rows of a ``sseff.diffusion`` result (``table``);
    (None, None) when that temperature was not run."""
    for row in transport_table:
        if math.isclose(float(row['temperature_K']), temperature, abs_tol=1e-6):
            return row.get('D_cm2_s'), row.get('D_err_cm2_s')
    return None, None


def dataset_size_rows(sizes: Sequence[dict], temperature: float) -> list[dict]:
    """The table rows, smallest size first.

    :param sizes: per size ``{'label', 'n_structures', 'n_mobile_environments', 'metrics'`` (evaluate_model keys, or
        None), ``'transport'`` (a sseff.diffusion ``results`` dict, or None), ``'failure'`` (a sentence or None)}``.
    :param temperature: where D is read (K).
    """
    rows = []
    for size in sorted(sizes, key=lambda s: s['n_mobile_environments']):
        metrics = size.get('metrics') or {}
        transport = size.get('transport')
        d, d_err = d_at_temperature(transport.get('table', []), temperature) if transport else (None, None)
        failure = size.get('failure')
        if transport and d is None and failure is None:
            failure = f'no MD at the comparison temperature {temperature:g} K'
        rows.append({
            'label': size['label'],
            'n_structures': size['n_structures'],
            'n_mobile_environments': size['n_mobile_environments'],
            'energy_rmse_mev_per_atom': metrics.get('energy_mev_per_atom'),
            'force_rmse_mev_per_angstrom': metrics.get('force_mev_per_angstrom'),
            'D_cm2_s': d, 'D_err_cm2_s': d_err,
            'Ea_eV': transport.get('Ea_eV') if transport else None,
            'Ea_err_eV': transport.get('Ea_err_eV') if transport else None,
            'failure': failure,
        })
    return rows


def _number(value, digits: int, scientific: bool = False) -> str:
    if value is None:
        return '—'
    return f'{value:.{digits}e}' if scientific else f'{value:.{digits}f}'


def format_dataset_size_table(rows: Sequence[dict], converged: dict, temperature: float) -> str:
    """The table in Markdown; the converged size is marked with ``*``."""
    lines = [f'| structures | mobile-ion environments | E RMSE (meV/atom) | F RMSE (meV/Å) | D({temperature:g} K) '
             '(cm²/s) | Ea (eV) | note |',
             '|---:|---:|---:|---:|---:|---:|---|']
    for row in rows:
        mark = ' *' if converged.get('size') == row['n_mobile_environments'] else ''
        d = '—' if row['D_cm2_s'] is None else f"{row['D_cm2_s']:.2e} ± {row['D_err_cm2_s']:.1e}"
        ea = '—' if row['Ea_eV'] is None else f"{row['Ea_eV']:.3f} ± {row['Ea_err_eV']:.3f}"
        lines.append(f"| {row['n_structures']} | {row['n_mobile_environments']}{mark} | "
                     f"{_number(row['energy_rmse_mev_per_atom'], 2)} | {_number(row['force_rmse_mev_per_angstrom'], 1)}"
                     f" | {d} | {ea} | {row['failure'] or ''} |")
    lines.append('')
    lines.append(f"converged size: {converged['size'] if converged['converged'] else 'none'} "
                 f"({converged['reason']})")
    return '\n'.join(lines)
