"""Report section of ``sseff.study.architectures``: the comparison table (RMSE relative to the reference, Ea, ΔEa,
D, cost) and the paper's Fig. 3/Fig. 4, from the stored ``table`` and the diffusion runs of each model."""

from __future__ import annotations

from aiida_sseff.report import Figure, Text, register_section
from aiida_sseff.report.stored import architecture_study_figures
from aiida_sseff.report.tables import records_table

STUDY_COLUMNS = [('label', 'model'), ('kind', 'kind'), ('force_mev_per_angstrom', 'force RMSE (meV/Å)'),
                 ('force_rmse_relative', 'rel. to ref.'), ('energy_mev_per_atom', 'energy RMSE (meV/atom)'),
                 ('Ea_eV', 'Ea (eV)'), ('Ea_err_eV', 'Ea err (eV)'), ('delta_Ea_eV', 'ΔEa vs ref. (eV)'),
                 ('delta_Ea_err_eV', 'ΔEa err (eV)'), ('Ea_agrees_with_reference', 'Ea agrees'),
                 ('D_cm2_s', 'D (cm²/s)'), ('D_err_cm2_s', 'D err (cm²/s)'), ('train_wall_time_s', 'train (s)'),
                 ('md_atom_steps_per_s', 'MD (atom-steps/s)'), ('md_speed_relative', 'speed rel.'),
                 ('md_peak_memory_mb', 'peak MB'), ('diffusion_failure', 'diffusion failure')]


@register_section('sseff.study.architectures')
def architectures_study_section(node) -> list:
    table = node.outputs.table.get_dict()
    figures = architecture_study_figures(node)
    blocks = [Text(f"Reference model: `{table['reference']}`; D at {table['temperature_K']:g} K."),
              records_table('Architecture comparison', table['rows'], STUDY_COLUMNS,
                            caption='From the `table` output (tabulate_architectures); "Ea agrees": |ΔEa| within '
                                    'the combined error bars.'),
              Figure('Relative RMSE and Arrhenius plots', figures['comparison'],
                     caption='The reference fit is dashed grey in every panel; one D scale for all panels.')]
    if 'speed' in figures:
        blocks.append(Figure('MD speed', figures['speed'], caption='atom-steps per second versus atoms.'))
    return blocks
