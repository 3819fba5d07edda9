"""Report sections of the trainings: ``sseff.train.nep`` (NEP replicas: held-out errors per replica, their spread,
the best replica's loss curves and parity plots) and ``sseff.train`` (several architectures: one row each)."""

from __future__ import annotations

from aiida_sseff.report import Figure, Table, Text, register_section
from aiida_sseff.report.stored import nep_training_calcjob, training_figure
from aiida_sseff.report.tables import records_table

#: the held-out errors every training reports (keys of model_errors), with their headers
ERROR_COLUMNS = [('energy_mev_per_atom', 'energy (meV/atom)'), ('force_mev_per_angstrom', 'force (meV/Å)'),
                 ('virial_mev_per_atom', 'virial (meV/atom)'), ('stress_gpa', 'stress (GPa)')]


def _datasets_table(node) -> Table:
    rows = []
    for name in ('train_dataset', 'validation_dataset', 'test_dataset'):
        if name in node.outputs:
            dataset = node.outputs[name]
            rows.append([name.replace('_dataset', ''), dataset.n_structures, dataset.n_atoms, dataset.sha256])
    return Table('Data splits', ['set', 'structures', 'atoms', 'sha256'], rows,
                 caption='The test set chose nothing: its errors are the held-out errors.')


def nep_replica_rows(node) -> list[list]:
    """Held-out errors of every replica (``replicas.<label>.test_metrics``), then the mean ± std row."""
    rows = []
    for label in sorted(node.outputs.replicas):
        metrics = node.outputs.replicas[label].test_metrics.get_dict()
        rows.append([label, *[metrics.get(key) for key, _ in ERROR_COLUMNS]])
    return rows


@register_section('sseff.train.nep')
def nep_training_section(node) -> list:
    summary = node.outputs.summary.get_dict()
    blocks = [Text(f"{summary['n_replicas']} replicas; the best, `{summary['best_replica']}`, was chosen on the "
                   f"validation set; errors on the {summary['n_structures']} test structures (CPUNEP)."),
              _datasets_table(node),
              Table('Held-out errors per replica', ['replica', *[h for _, h in ERROR_COLUMNS]], nep_replica_rows(node)),
              Table('Spread over the replicas', ['quantity', 'mean', 'std', 'min', 'max'],
                    [[header, *[(summary.get(key) or {}).get(s) for s in ('mean', 'std', 'min', 'max')]]
                     for key, header in ERROR_COLUMNS if summary.get(key)],
                    caption='Standard deviation with ddof = 1.')]
    calcjob = nep_training_calcjob(node)
    if 'loss' in calcjob.outputs:
        blocks.append(Figure('Best replica: loss curves and parity', training_figure(calcjob),
                             caption=f'The training CalcJob {calcjob.uuid}.'))
    return blocks


ARCHITECTURE_COLUMNS = [('architecture', 'architecture'), ('kind', 'kind'), ('variant', 'variant'),
                        ('chosen_seed', 'chosen seed'), ('n_seeds', 'seeds'),
                        ('energy_mev_per_atom', 'energy (meV/atom)'), ('force_mev_per_angstrom', 'force (meV/Å)'),
                        ('force_relative_to_reference', 'force rel. to ref.'),
                        ('force_seed_std_mev_per_angstrom', 'force std over seeds (meV/Å)'),
                        ('virial_mev_per_atom', 'virial (meV/atom)'), ('train_wall_time_s', 'train (s)'),
                        ('md_atom_steps_per_s', 'MD (atom-steps/s)')]


@register_section('sseff.train')
def architecture_training_section(node) -> list:
    summary = node.outputs.summary.get_dict()
    blocks = [Text(f"Reference architecture: `{summary.get('reference_architecture')}`."
                   + (f" No model trained: {', '.join(summary['failed'])}." if summary.get('failed') else '')),
              _datasets_table(node),
              records_table('Architectures on the test set', summary['rows'], ARCHITECTURE_COLUMNS,
                            caption='The chosen seed of each architecture; MD speed per speed-run size.')]
    return blocks
