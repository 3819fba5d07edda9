"""Report section of ``sseff.study.dataset_size`` (also reached through the main job's ``dataset_size`` child): the
table of errors and transport per training-set size, the converged size, the figure, and one Arrhenius plot per
size — all from stored nodes (the study's ``table``, its ``transport`` outputs)."""

from __future__ import annotations

from aiida_sseff.report import Figure, Table, Text, register_section

COLUMNS = ['structures', 'mobile-ion environments', 'energy RMSE (meV/atom)', 'force RMSE (meV/Å)', 'D (cm²/s)',
           'σ D (cm²/s)', 'Ea (eV)', 'σ Ea (eV)', 'note']


def table_rows(table: dict) -> list[list]:
    """The report's rows (numbers kept as numbers) from the study's ``table`` Dict contents."""
    return [[row['n_structures'], row['n_mobile_environments'], row['energy_rmse_mev_per_atom'],
             row['force_rmse_mev_per_angstrom'], row['D_cm2_s'], row['D_err_cm2_s'], row['Ea_eV'], row['Ea_err_eV'],
             row['failure'] or ''] for row in table['rows']]


@register_section('sseff.study.dataset_size')
def dataset_size_section(node) -> list:
    """Text (what was done, the convergence rule and its verdict), the table, the figure, the Arrhenius plots."""
    from aiida_sseff.plots.dataset_size import plot_dataset_size

    if 'table' not in node.outputs:
        state = node.process_state.value if node.process_state else 'unknown'
        return [Text(f'The dataset-size study <{node.pk}> has no table ({state} [{node.exit_status}] '
                     f'{node.exit_message or ""}).')]
    table = node.outputs.table.get_dict()
    converged = table['converged']
    temperature = table['temperature_K']
    test = node.outputs.test_dataset.n_structures
    verdict = (f'**Converged size: {converged["size"]} mobile-ion environments** ({converged["reason"]}).'
               if converged['converged'] else f'**Not converged within the series**: {converged["reason"]}.')
    blocks = [
        Text(f'Nested FPS subsets of a pool of {node.outputs.pool.n_structures} labelled structures, one model per '
             f'size, every RMSE on the same {test} held-out test structures; D at {temperature:g} K and Ea from each '
             f'model\'s Arrhenius fit. Two sizes agree when |ΔEa| and |ΔD| are within {table["n_sigma"]:g} combined '
             f'σ; the converged size is the smallest from which every pair of sizes agrees.\n\n{verdict}'),
        Table('Dataset size: errors and transport', COLUMNS, table_rows(table),
              caption=f'D at {temperature:g} K; a row without transport says why.'),
        Figure('RMSE and Ea versus training-set size',
               plot_dataset_size(table['rows'], converged['size'] if converged['converged'] else None, temperature),
               caption='Dashed line: the converged size. Log x axis.',
               data={'n_mobile_environments': [row['n_mobile_environments'] for row in table['rows']],
                     'Ea_eV': [row['Ea_eV'] for row in table['rows']]}),
    ]
    blocks.extend(_arrhenius_figures(node))
    return blocks


def _arrhenius_figures(node) -> list:
    """One Arrhenius plot per size, from its stored sseff.diffusion results."""
    from aiida_sseff.analysis.architectures import stored_arrhenius_fit
    from aiida_sseff.plots.transport import plot_arrhenius

    figures = []
    subsets = node.outputs.subsets
    for label, results in sorted(node.outputs.transport.items()):
        results = results.get_dict()
        rows = results['table']
        n_structures = subsets[label].n_structures
        figure = plot_arrhenius([r['temperature_K'] for r in rows], [r['D_cm2_s'] for r in rows],
                                [r['D_err_cm2_s'] for r in rows], fit=stored_arrhenius_fit(results),
                                fitted=[r['diffusive'] for r in rows],
                                extrapolate_to_K=results.get('extrapolation_temperature_K', 300.0),
                                title=f'{n_structures} structures: Ea = {results["Ea_eV"]:.3f} ± '
                                      f'{results["Ea_err_eV"]:.3f} eV')
        figures.append(Figure(f'Arrhenius plot, {n_structures} structures', figure))
    return figures
