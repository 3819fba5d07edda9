"""Report section of ``sseff.loop``: the per-iteration table and the figure of Ea and RMSE versus iteration, from the
loop's ``iterations`` output alone."""

from __future__ import annotations

from aiida_sseff.report import Figure, Table, Text, register_section

__all__ = ['loop_rows', 'loop_section', 'loop_table_columns']


def loop_table_columns(rows: list[dict]) -> list[str]:
    temperatures = sorted({float(t) for row in rows for t in (row.get('D') or {})})
    return ['iteration', 'structures', 'labels added', 'disagreement mean (eV/Å)', 'disagreement max (eV/Å)',
            'test force RMSE (meV/Å)', 'Ea (eV)', 'Ea σ (eV)', 'replica spread of Ea (eV)',
            *[f'D {t:g} K (cm²/s)' for t in temperatures], 'converged']


def loop_rows(rows: list[dict]) -> list[list]:
    """The table's cells, numbers as stored (one list per iteration, in :func:`loop_table_columns` order)."""
    temperatures = sorted({float(t) for row in rows for t in (row.get('D') or {})})
    cells = []
    for row in rows:
        d = {float(t): value for t, value in (row.get('D') or {}).items()}
        cells.append([row['iteration'], row['n_structures'], row['labels_added'], row.get('disagreement_mean_eV_A'),
                      row.get('disagreement_max_eV_A'), row.get('force_rmse_mev_A'), row.get('Ea_eV'),
                      row.get('Ea_err_eV'), row.get('ea_replica_spread_eV'),
                      *[d[t][0] if t in d else None for t in temperatures], bool(row['convergence']['converged'])])
    return cells


@register_section('sseff.loop')
def loop_section(node) -> list:
    """The loop's outcome, its criterion, the per-iteration table and the Ea/RMSE figure."""
    if 'iterations' not in node.outputs:
        return [Text(f'The loop <{node.pk}> has no `iterations` output (exit status {node.exit_status}: '
                     f'{node.exit_message or "not finished"}).')]
    table = node.outputs.iterations.get_dict()
    rows, criterion = table['rows'], table['criterion']
    last = rows[-1]
    text = (f"**Outcome**: {table['outcome']} (exit status {node.exit_status}). {len(rows)} iteration(s), "
            f"{table['labels_used']} labels added by this loop; final Ea = {last['Ea_eV']:.3f} ± "
            f"{last['Ea_err_eV']:.3f} eV.\n\n**Criterion**: Ea and D at every temperature within "
            f"{criterion['n_sigma']:g} × their combined uncertainty of the previous iteration, and the std of Ea over "
            f"the committee's replicas at most {criterion['ea_spread_tolerance_eV']:g} eV. The force RMSE on the fixed "
            'test set is shown for comparison; it is not part of the criterion.')
    from aiida_sseff.plots.loop import loop_figure

    return [Text(text),
            Table('Active-learning iterations', loop_table_columns(rows), loop_rows(rows),
                  'Disagreement: DP-GEN max_devi_f of the candidates explored after that iteration (empty when the '
                  'loop stopped there). D, Ea: the best committee model; spread: sample std over the replicas.'),
            Figure('Ea and test RMSE versus iteration', loop_figure(rows),
                   'Ea ± σ of the best model (band: ± the replica spread) and the force RMSE on the fixed test set.',
                   data={'iteration': [row['iteration'] for row in rows], 'Ea_eV': [row['Ea_eV'] for row in rows],
                         'force_rmse_mev_A': [row['force_rmse_mev_A'] for row in rows]})]
