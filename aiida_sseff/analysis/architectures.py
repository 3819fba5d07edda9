"""The architecture comparison of the perspective paper as one table (pure python/numpy, no aiida).

One row per force field: its errors on the shared test set (and relative to the reference architecture, NEP in the
paper), its Arrhenius fit (Ea ± σ, D at a reference temperature) and whether Ea agrees with the reference's within
the combined error, and its cost (training wall time, MD atom-steps per second, peak memory, speed relative to the
reference). The paper's finding this table tests: force RMSE falls about 10x from NEP to MACE-T1, the Arrhenius
plots agree, and MACE costs 10-100x more per MD step.

Inputs are the plain dicts the workflows store: test metrics (``model_errors`` keys: ``energy_mev_per_atom``,
``force_mev_per_angstrom``, ``stress_gpa``, ``force_per_element``), Arrhenius results (``sseff.diffusion``'s
``results``: ``Ea_eV``, ``Ea_err_eV``, ``arrhenius_params`` = (ln D0, -Ea/k_B), ``arrhenius_cov``) and cost dicts
(``train_wall_time_s``, ``md_speed``: a list of ``{n_atoms, atom_steps_per_s, peak_memory_mb}``). A row may lack any
part (a classical potential has no test-set errors here; a failed diffusion has no Ea): those entries are None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from aiida_sseff.analysis.arrhenius import ArrheniusFit

__all__ = ['AGREEMENT_SIGMAS', 'architecture_table', 'd_at_temperature', 'format_architecture_table', 'md_speed_rows',
           'stored_arrhenius_fit']

#: Two Arrhenius fits "agree" when their Ea differ by at most this many combined standard errors.
AGREEMENT_SIGMAS = 2.0


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _ratio(value, reference) -> float | None:
    value, reference = _finite(value), _finite(reference)
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def stored_arrhenius_fit(results: Mapping) -> ArrheniusFit | None:
    """The :class:`ArrheniusFit` that ``sseff.diffusion`` stored in its ``results`` (None without a fit)."""
    params, cov = results.get('arrhenius_params'), results.get('arrhenius_cov')
    if params is None or cov is None:
        return None
    return ArrheniusFit(ea=float(results['Ea_eV']), ea_err=float(results['Ea_err_eV']),
                        d0=float(results.get('D0_cm2_s', math.exp(params[0]))),
                        d0_err=float(results.get('D0_err_cm2_s', math.nan)), params=np.asarray(params, dtype=float),
                        cov=np.asarray(cov, dtype=float), chi2=math.nan, dof=int(results.get('dof', 0)),
                        scaled=bool(results.get('errors_scaled_by_chi2', False)))


def d_at_temperature(results: Mapping, temperature_K: float) -> tuple[float, float] | tuple[None, None]:
    """D (cm²/s) and its standard error at ``temperature_K`` from a stored Arrhenius fit (full covariance)."""
    fit = stored_arrhenius_fit(results)
    if fit is None:
        return None, None
    d, err = fit.predict(float(temperature_K))
    return float(d), float(err)


def md_speed_rows(cost: Mapping | None) -> list[dict]:
    """The MD speed entries of a cost dict, sorted by the number of atoms."""
    rows = list((cost or {}).get('md_speed') or [])
    return sorted(rows, key=lambda row: row['n_atoms'])


def _speed_at(cost: Mapping | None, n_atoms: int | None) -> dict | None:
    rows = md_speed_rows(cost)
    if not rows:
        return None
    if n_atoms is None:
        return rows[-1]
    same = [row for row in rows if row['n_atoms'] == n_atoms]
    return same[0] if same else None


def architecture_table(metrics: Mapping[str, Mapping | None], transport: Mapping[str, Mapping | None],
                       cost: Mapping[str, Mapping | None], reference: str, temperature_K: float,
                       kinds: Mapping[str, str] | None = None) -> list[dict]:
    """One row per architecture label (the union of the three mappings' keys, reference first).

    ``reference`` is the label the ratios are taken against (the paper: NEP). ``temperature_K`` is where D is
    compared. MD speeds are compared at the largest cell the reference was timed on (the same cell for every
    model, so the ratio is a ratio of like with like); rows without a timing at that size get None.
    """
    labels = list(dict.fromkeys([reference, *metrics, *transport, *cost]))
    ref_metrics = metrics.get(reference) or {}
    ref_transport = transport.get(reference) or {}
    ref_speed = _speed_at(cost.get(reference), None)
    speed_atoms = ref_speed['n_atoms'] if ref_speed else None
    rows = []
    for label in labels:
        m = metrics.get(label) or {}
        t = transport.get(label) or {}
        c = cost.get(label) or {}
        speed = _speed_at(c, speed_atoms) if speed_atoms is not None else _speed_at(c, None)
        d, d_err = d_at_temperature(t, temperature_K) if t else (None, None)
        ea, ea_err = _finite(t.get('Ea_eV')), _finite(t.get('Ea_err_eV'))
        ref_ea, ref_ea_err = _finite(ref_transport.get('Ea_eV')), _finite(ref_transport.get('Ea_err_eV'))
        row = {
            'label': label,
            'kind': (kinds or {}).get(label),
            'energy_mev_per_atom': _finite(m.get('energy_mev_per_atom')),
            'force_mev_per_angstrom': _finite(m.get('force_mev_per_angstrom')),
            'stress_gpa': _finite(m.get('stress_gpa')),
            'force_per_element_mev_per_angstrom': {
                element: _finite(errors.get('rmse_mev_per_angstrom'))
                for element, errors in (m.get('force_per_element') or {}).items()} or None,
            'force_rmse_relative': _ratio(m.get('force_mev_per_angstrom'), ref_metrics.get('force_mev_per_angstrom')),
            'energy_rmse_relative': _ratio(m.get('energy_mev_per_atom'), ref_metrics.get('energy_mev_per_atom')),
            'Ea_eV': ea, 'Ea_err_eV': ea_err,
            'temperature_K': float(temperature_K),
            'D_cm2_s': _finite(d), 'D_err_cm2_s': _finite(d_err),
            'train_wall_time_s': _finite(c.get('train_wall_time_s')),
            'md_n_atoms': speed['n_atoms'] if speed else None,
            'md_atom_steps_per_s': _finite(speed['atom_steps_per_s']) if speed else None,
            'md_peak_memory_mb': _finite(speed.get('peak_memory_mb')) if speed else None,
        }
        row['md_speed_relative'] = _ratio(row['md_atom_steps_per_s'],
                                          ref_speed['atom_steps_per_s'] if ref_speed else None)
        if None not in (ea, ea_err, ref_ea, ref_ea_err) and label != reference:
            delta, delta_err = ea - ref_ea, math.hypot(ea_err, ref_ea_err)
            row.update({'delta_Ea_eV': delta, 'delta_Ea_err_eV': delta_err,
                        'Ea_agrees_with_reference': bool(abs(delta) <= AGREEMENT_SIGMAS * delta_err)})
        else:
            row.update({'delta_Ea_eV': None, 'delta_Ea_err_eV': None, 'Ea_agrees_with_reference': None})
        rows.append(row)
    return rows


def _cell(value, fmt: str) -> str:
    return '–' if value is None else format(value, fmt)


def format_architecture_table(rows: list[dict]) -> str:
    """The table as Markdown (what ``aiida-sseff show`` and the report print)."""
    if not rows:
        return ''
    temperature = rows[0]['temperature_K']
    header = ('| model | force RMSE (meV/Å) | rel. to ref. | energy RMSE (meV/atom) | Ea (eV) | ΔEa vs ref. (eV) | '
              f'D({temperature:g} K) (cm²/s) | train (s) | MD (atom-steps/s) | speed rel. | peak MB |')
    lines = [header, '|' + '---|' * (header.count('|') - 1)]
    for row in rows:
        ea = '–' if row['Ea_eV'] is None else f"{row['Ea_eV']:.3f} ± {row['Ea_err_eV']:.3f}"
        delta = '–' if row['delta_Ea_eV'] is None else (
            f"{row['delta_Ea_eV']:+.3f} ± {row['delta_Ea_err_eV']:.3f}"
            + ('' if row['Ea_agrees_with_reference'] else ' (differs)'))
        d = '–' if row['D_cm2_s'] is None else f"{row['D_cm2_s']:.2e} ± {row['D_err_cm2_s']:.1e}"
        lines.append('| ' + ' | '.join([
            row['label'], _cell(row['force_mev_per_angstrom'], '.1f'), _cell(row['force_rmse_relative'], '.2f'),
            _cell(row['energy_mev_per_atom'], '.2f'), ea, delta, d, _cell(row['train_wall_time_s'], '.0f'),
            _cell(row['md_atom_steps_per_s'], '.3g'), _cell(row['md_speed_relative'], '.3g'),
            _cell(row['md_peak_memory_mb'], '.0f')]) + ' |')
    return '\n'.join(lines)
