"""Report section of ``sseff.study.speed``: the speed table, the largest cells and the speed/memory figure, from the
study's stored ``table`` output only."""

from __future__ import annotations

from aiida_sseff.report import Figure, Table, Text, register_section

#: the columns of the speed table, in the order of the rows (the keys of the ``table`` output's rows)
SPEED_COLUMNS = ('model', 'engine', 'n_atoms', 'status', 'atom_steps_per_s', 'peak_memory_mb',
                 'wall_time_extrapolated_s', 'threads', 'reason')
LARGEST_COLUMNS = ('model', 'engine', 'max_n_atoms', 'limit_mb', 'slope_mb_per_atom', 'intercept_mb', 'n_sizes',
                   'reason')


@register_section('sseff.study.speed')
def speed_section(node) -> list:
    """Text, the per-run table, the largest-cell table and the figure of a finished speed study."""
    if 'table' not in node.outputs:
        return [Text(f'The speed study <{node.pk}> has no `table` output (exit status {node.exit_status}: '
                     f'{node.exit_message or "not finished"}).')]
    table = node.outputs.table.get_dict()
    steps = table['n_extrapolated_steps']
    blocks = [
        Text(f'**MD speed and memory versus size** (`sseff.study.speed` <{node.pk}>). Each run is a short '
             'production MD (no equilibration) of one model on one engine; runs went one at a time. The speed is '
             'that of the production loop (atoms × steps / wall seconds); the wall time of '
             f'{steps:.0e} steps is extrapolated from it (no start-up cost, the same machine). Peak memory is the '
             'RSS of the engine process (GPUMD reports none).'),
        Table('Speed per model, engine and size', list(SPEED_COLUMNS),
              [[row.get(column) for column in SPEED_COLUMNS] for row in table['rows']],
              caption=f'atom-steps/s, MB, s (for {steps} steps); failed runs give their reason.'),
    ]
    if table.get('largest_cell'):
        blocks.append(Table(
            'Largest cell in memory', list(LARGEST_COLUMNS),
            [[entry.get(column) for column in LARGEST_COLUMNS] for entry in table['largest_cell']],
            caption=f'A straight line through peak memory against atoms (least squares), solved for the limit of '
                    f'{table["memory_limit_mb"]:g} MB: an extrapolation, linear by assumption.'))
    if any(row['status'] == 'ok' for row in table['rows']):
        from aiida_sseff.plots.speed import plot_speed_study, speed_series

        blocks.append(Figure('Speed and memory versus atoms', plot_speed_study(table),
                             caption='log-log; the star marks the largest cell of each fit at the memory limit.',
                             data=speed_series(table)))
    return blocks
