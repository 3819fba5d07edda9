"""Report section of the main job, ``sseff.pipeline``: the sampling MD runs, the candidates, the labels and their
reference, the held-out errors (its training and diffusion stages have their own sections, which follow it)."""

from __future__ import annotations

from aiida_sseff.report import Figure, Table, Text, register_section
from aiida_sseff.report.stored import pipeline_figure, pipeline_summary


@register_section('sseff.pipeline')
def pipeline_section(node) -> list:
    summary = pipeline_summary(node)
    blocks = [Text(f"{summary['structure']}, mobile species {summary['mobile_species']}: "
                   f"{summary['candidates']} candidates sampled, {summary['labelled']} labelled by "
                   f"`{summary['labeller']}`" + (f" ({summary['reference']})" if 'reference' in summary else '')
                   + '.'),
              Table('Sampling MD', ['run', 'mean T (K)', 'frames', 'speed (atom-steps/s)'],
                    [[name, md['mean_T_K'], md['frames'], md['speed_atom_step_per_s']]
                     for name, md in summary['md'].items()]),
              Table('Labelled dataset', ['field', 'value'], [
                  ['structures', summary['labelled']], ['elements', '/'.join(summary['elements'])],
                  ['energy per atom, min (eV)', summary['energy_per_atom_eV_range'][0]],
                  ['energy per atom, max (eV)', summary['energy_per_atom_eV_range'][1]],
                  ['sha256', summary['dataset_sha256']]])]
    if 'nep_test_set_rmse' in summary:
        rmse = summary['nep_test_set_rmse']
        blocks.append(Table('NEP held-out errors', ['energy (meV/atom)', 'force (meV/Å)', 'test structures'],
                            [[rmse['energy_meV_per_atom'], rmse['force_meV_per_A'], rmse['n_structures']]]))
    blocks.append(Figure('Sampling and labels', pipeline_figure(node),
                         caption='Left: temperature of each sampling MD run; right: the reference force components.'))
    return blocks
