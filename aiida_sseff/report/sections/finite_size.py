"""Report section of ``sseff.study.finite_size``: the verdict, one row per (cell, run length, temperature) and the
figure of Ea against the number of atoms, from the stored ``table``."""

from __future__ import annotations

from aiida_sseff.report import Figure, Table, Text, register_section

COLUMNS = ['cell', 'atoms', 'mobile ions', 'run (ps)', 'Ea (eV)', 'σ(Ea) (eV)', 'T (K)', 'D (cm²/s)', 'σ(D) (cm²/s)',
           'failure']


def finite_size_rows(table: dict) -> list[list]:
    rows = []
    for row in table['rows']:
        points = row['D'] or [{'temperature_K': None, 'D_cm2_s': None, 'D_err_cm2_s': None}]
        for point in points:
            rows.append([row['cell'], row['n_atoms'], row['n_mobile'], row['run_length_ps'], row['Ea_eV'],
                         row['Ea_err_eV'], point['temperature_K'], point['D_cm2_s'], point['D_err_cm2_s'],
                         row['failure']])
    return rows


@register_section('sseff.study.finite_size')
def finite_size_section(node) -> list:
    if 'table' not in node.outputs:
        return [Text(f'The finite-size study <{node.pk}> has no table: [{node.exit_status}] {node.exit_message}')]
    from aiida_sseff.plots.finite_size import plot_finite_size

    table = node.outputs.table.get_dict()
    cell = (f"`{table['converged_cell']}` ({table['converged_n_atoms']} atoms)" if table['converged_cell']
            else '**none** (the cells still disagree, or only one gave a fit)')
    length = (f"{table['converged_run_length_ps']:g} ps" if table['converged_run_length_ps'] is not None
              else '**none** (the run lengths still disagree, or only one gave a fit)')
    text = (f"Smallest converged cell at the longest run ({table['longest_run_length_ps']} ps): {cell}. Shortest "
            f"converged run in the largest cell (`{table['largest_cell']}`): {length}.\n\nRule "
            f"({table['n_sigma']:g} combined σ): {table['rule']}.")
    return [Text(text),
            Table('D(T) and Ea per cell and run length', COLUMNS, finite_size_rows(table),
                  'One sseff.diffusion per (cell, run length), the same model, temperatures and MD seeds.'),
            Figure('Ea against cell size', plot_finite_size(table), 'One series per run length; dashed: the '
                   'converged cell.')]
