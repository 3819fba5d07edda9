"""Plots from stored nodes (matplotlib, Agg backend: works without a display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def sampling_md_jobs(node) -> list:
    """The finished MD CalcJobs of a pipeline's sampling stage, by temperature (wherever a restart wrapper put them)."""
    sampling = node.base.links.get_outgoing(link_label_filter='sampling').one().node
    jobs = [n for n in sampling.called_descendants
            if n.process_type == 'aiida.calculations:sseff.engine.md' and n.is_finished_ok]
    return sorted(jobs, key=lambda job: job.inputs.parameters['temperature_K'])


def plot_pipeline(node, path: Path) -> Path:
    """MD temperature traces per sampling run and the distribution of reference force components."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_f) = plt.subplots(1, 2, figsize=(10, 4))
    for job in sampling_md_jobs(node):
        thermo = job.outputs.thermo
        target = job.inputs.parameters['temperature_K']
        ax_t.plot(thermo.get_array('time_ps'), thermo.get_array('temperature_K'), label=f'{target:g} K')
        ax_t.axhline(target, color='0.6', lw=0.8, ls='--')
    ax_t.set_xlabel('time (ps)')
    ax_t.set_ylabel('temperature (K)')
    ax_t.legend(fontsize=8)
    ax_t.set_title('sampling MD')
    dataset = node.outputs.labelling.dataset.get_ase()
    forces = np.concatenate([atoms.get_forces().ravel() for atoms in dataset])
    ax_f.hist(forces, bins=60, color='C0')
    ax_f.set_xlabel('reference force component (eV/Å)')
    ax_f.set_ylabel('count')
    ax_f.set_title(f'{len(dataset)} labelled structures')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_architecture_study(node, folder: Path) -> list[Path]:
    """Fig. 3 (relative RMSE bars, Arrhenius plots side by side) and Fig. 4 (MD speed vs atoms) of a finished
    ``sseff.study.architectures``, from its stored table and the ``diffusion`` arrays of each model's run."""
    from aiida_sseff.plots.architectures import arrhenius_entry, plot_architecture_comparison, plot_md_speed

    table = node.outputs.table.get_dict()
    arrhenius = {}
    for label in node.outputs.transport:
        diffusion = node.base.links.get_outgoing(link_label_filter=f'diffusion_{label}').one().node
        arrays = {name: diffusion.outputs.diffusion.get_array(name)
                  for name in ('temperature_K', 'D_cm2_s', 'D_err_cm2_s', 'fitted')}
        arrhenius[label] = arrhenius_entry(arrays, diffusion.outputs.results.get_dict())
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [plot_architecture_comparison(table['rows'], arrhenius, table['reference'],
                                          path=folder / f'architectures-{node.pk}.png')]
    speeds = {label: cost.get_dict().get('md_speed') or [] for label, cost in node.outputs.training.cost.items()}
    if any(speeds.values()):
        paths.append(plot_md_speed(speeds, path=folder / f'architectures-speed-{node.pk}.png'))
    return paths
