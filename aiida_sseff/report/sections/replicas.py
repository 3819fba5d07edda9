"""Report section of ``sseff.study.replicas``: the verdict per dataset, one table row per replica (force RMSE, Ea ± σ,
D at each temperature ± σ), the spread table, and the two figures, from the stored ``table`` and ``transport``."""

from __future__ import annotations

from aiida_sseff.report import Figure, Table, Text, register_section

REPLICA_COLUMNS = ['dataset', 'replica', 'force RMSE (meV/Å)', 'Ea (eV)', 'σ(Ea) (eV)', 'T (K)', 'D (cm²/s)',
                   'σ(D) (cm²/s)', 'failure']
SPREAD_COLUMNS = ['dataset', 'quantity', 'n', 'mean', 'std', 'max − min', 'mean own σ', 'std / own σ']


def replica_rows(datasets: dict) -> list[list]:
    """One row per dataset, replica and temperature (a replica without D(T) gets one row with None)."""
    rows = []
    for label, summary in datasets.items():
        for row in summary['rows']:
            points = row['D'] or [{'temperature_K': None, 'D_cm2_s': None, 'D_err_cm2_s': None}]
            for point in points:
                rows.append([label, row['replica'], row['force_mev_per_angstrom'], row['Ea_eV'], row['Ea_err_eV'],
                             point['temperature_K'], point['D_cm2_s'], point['D_err_cm2_s'], row['failure']])
    return rows


def spread_rows(datasets: dict) -> list[list]:
    rows = []
    for label, summary in datasets.items():
        entries = [('Ea (eV)', summary['spread']['Ea_eV'])]
        entries += [(f'log10 D at {t} K', entry) for t, entry in summary['spread']['log10_D'].items()]
        for name, entry in entries:
            if entry is not None:
                rows.append([label, name, entry['n'], entry['mean'], entry['std'], entry['max_minus_min'],
                             entry['mean_own_err'], entry['spread_over_own_err']])
    return rows


@register_section('sseff.study.replicas')
def replicas_section(node) -> list:
    if 'table' not in node.outputs:
        return [Text(f'The replica study <{node.pk}> has no table: [{node.exit_status}] {node.exit_message}')]
    from aiida_sseff.plots.replicas import plot_replica_arrhenius, plot_replica_ea
    from aiida_sseff.workflows.replicas import replica_fits

    table = node.outputs.table.get_dict()
    datasets = table['datasets']
    verdicts = {True: 'reproducible', False: '**not reproducible**', None: 'no verdict (fewer than 2 fits)'}
    lines = [f'Rule: {table["rule"]}.', '']
    for label, summary in datasets.items():
        ea = summary['spread']['Ea_eV']
        detail = '' if ea is None else (f" (std of Ea {ea['std']:.3f} eV over {ea['n']} replicas, mean own σ "
                                        f"{ea['mean_own_err']:.3f} eV)" if ea['mean_own_err'] is not None else '')
        lines.append(f'- `{label}`: {verdicts[summary["reproducible"]]}{detail}')
    return [
        Text('\n'.join(lines)),
        Table('Replicas', REPLICA_COLUMNS, replica_rows(datasets),
              'Each replica: a model of its own seed on the same data, its test-set force RMSE and its Arrhenius fit '
              'from the same MD settings.'),
        Table('Spread across replicas', SPREAD_COLUMNS, spread_rows(datasets),
              'std (ddof 1) and max − min across replicas, next to the mean of their own error bars.'),
        Figure('D(T) per replica', plot_replica_arrhenius(datasets, replica_fits(node)),
               'One panel per dataset; error bars are each replica\'s own.'),
        Figure('Ea per replica', plot_replica_ea(datasets), 'Bars: own σ; band: mean ± std across replicas.'),
    ]
