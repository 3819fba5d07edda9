"""Readers of stored nodes shared by the report sections and the CLI (``show``/``plot`` call these; the CLI keeps
only the printing and the saving): the MSD curves and figure of a ``sseff.diffusion``, the sampling MD jobs, summary
and figure of a pipeline, the NEP training CalcJob and its figure, the architecture study's figures. Nothing here
reads a file outside the profile."""

from __future__ import annotations

import numpy as np


def _run_temperature(label: str) -> float:
    """``T1500K_r0`` / ``T1500p5K_r1`` -> 1500.0 / 1500.5 (the labels of the ``msd`` and ``runs`` namespaces)."""
    return float(label[1:].split('K')[0].replace('p', '.'))


def diffusion_curves(node) -> list[dict]:
    """The MSD curves of a finished ``sseff.diffusion`` with their fit windows, as
    :func:`aiida_sseff.plots.transport.plot_transport` takes them, in order of temperature then label."""
    curves = []
    for label in sorted(node.outputs.msd, key=lambda k: (_run_temperature(k), k)):
        msd = node.outputs.msd[label]
        attrs = msd.base.attributes.all
        curves.append({'label': label, 'time_ps': msd.get_array('time_ps'), 'msd_xyz': msd.get_array('msd_xyz'),
                       'fit_window': (attrs['fit_t_start_ps'], attrs['fit_t_end_ps']),
                       'slope': attrs.get('fit_slope_A2_ps'), 'intercept': attrs.get('fit_intercept_A2')})
    return curves


def diffusion_figure(node, title: str | None = None):
    """The two-panel MSD + Arrhenius figure of a finished ``sseff.diffusion`` (a matplotlib Figure, not saved)."""
    from aiida_sseff.analysis.architectures import stored_arrhenius_fit
    from aiida_sseff.plots.transport import plot_transport

    results = node.outputs.results.get_dict()
    table = node.outputs.diffusion
    return plot_transport(diffusion_curves(node), table.get_array('temperature_K'), table.get_array('D_cm2_s'),
                          table.get_array('D_err_cm2_s'), fit=stored_arrhenius_fit(results),
                          extrapolate_to_K=results['extrapolation_temperature_K'],
                          fitted=table.get_array('fitted') > 0, path=None, title=title)


def sampling_md_jobs(node) -> list:
    """The finished MD CalcJobs of a pipeline's sampling stage, by temperature (wherever a restart wrapper put them)."""
    sampling = node.base.links.get_outgoing(link_label_filter='sampling').one().node
    jobs = [n for n in sampling.called_descendants
            if n.process_type == 'aiida.calculations:sseff.engine.md' and n.is_finished_ok]
    return sorted(jobs, key=lambda job: (job.inputs.parameters['temperature_K'], job.uuid))


def pipeline_figure(node):
    """MD temperature traces per sampling run of a finished ``sseff.pipeline`` and the distribution of the reference
    force components (a matplotlib Figure, not saved)."""
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
    return fig


def pipeline_summary(node) -> dict:
    """The main job in a few numbers: sampling MD, candidates, labels (and their reference), held-out errors."""
    dataset = node.outputs.labelling.dataset
    energies = [atoms.get_potential_energy() / len(atoms) for atoms in dataset.get_ase()]
    md = {}
    for job in sampling_md_jobs(node):
        results = job.outputs.results
        md[f"md_{job.inputs.parameters['temperature_K']:g}K"] = {
            'mean_T_K': round(results['mean_temperature_K'], 1),
            'frames': results['n_frames'],
            'speed_atom_step_per_s': round(results['speed_atom_step_per_s'] or 0, 1),
        }
    labelling = node.base.links.get_outgoing(link_label_filter='labelling').one().node
    summary = {
        'structure': node.inputs.structure.get_formula(),
        'mobile_species': node.inputs.mobile_species.value,
        'md': md,
        'candidates': node.outputs.sampling.candidates.n_structures,
        'labeller': labelling.inputs.labeller.value,
        'labelled': dataset.n_structures,
        'elements': dataset.elements,
        'energy_per_atom_eV_range': [round(float(min(energies)), 4), round(float(max(energies)), 4)],
        'dataset_sha256': dataset.sha256,
    }
    if 'reference' in node.outputs.labelling:
        reference = node.outputs.labelling.reference
        summary['reference'] = f'{reference.model_name} ({reference.package} {reference.version}, weights sha256 ' \
                               f'{str(reference.weights_sha256)[:12]})'
    if 'training' in node.outputs:
        metrics = node.outputs.training.test_metrics
        summary['nep_test_set_rmse'] = {
            'energy_meV_per_atom': round(metrics['energy_mev_per_atom'], 2),
            'force_meV_per_A': round(metrics['force_mev_per_angstrom'], 1),
            'n_structures': metrics['n_structures'],
        }
    if 'dataset_size' in node.outputs:
        table = node.outputs.dataset_size.table
        summary['dataset_size'] = {'rows': table['rows'], 'converged': table['converged'],
                                   'temperature_K': table['temperature_K']}
    return summary


def nep_training_calcjob(node, replica: str | None = None):
    """The ``sseff.nep.train`` CalcJobNode behind ``node``: itself, the last one of a NepTrainBaseWorkChain, or that
    of the best (or the named) replica of a NepTrainingWorkChain. Raises ValueError naming the node otherwise."""
    from aiida import orm

    if isinstance(node, orm.CalcJobNode):
        if node.process_type != 'aiida.calculations:sseff.nep.train':
            raise ValueError(f'<{node.pk}> is a {node.process_label}, not a NEP training')
        return node
    if node.process_type == 'aiida.workflows:sseff.train.nep.base':
        calcjobs = sorted((n for n in node.called if isinstance(n, orm.CalcJobNode)), key=lambda n: (n.ctime, n.uuid))
        if not calcjobs:
            raise ValueError(f'<{node.pk}> has not launched a training yet')
        return calcjobs[-1]
    if node.process_type == 'aiida.workflows:sseff.train.nep':
        if replica is None:
            if 'summary' not in node.outputs:
                raise ValueError(f'<{node.pk}> has no summary yet; name a replica with --replica')
            replica = node.outputs.summary['best_replica']
        children = node.base.links.get_outgoing(link_label_filter=replica).all_nodes()
        if not children:
            raise ValueError(f'<{node.pk}> has no replica `{replica}`')
        return nep_training_calcjob(children[0])
    raise ValueError(f'<{node.pk}> ({node.process_label}) is not a NEP training CalcJob or WorkChain')


def stored_parity(calcjob) -> dict:
    """``{'train'|'test': {quantity: (predicted, target)}}`` from the ``parity_*`` outputs of a NEP training."""
    sets = {}
    for label in ('train', 'test'):
        key = f'parity_{label}'
        if key in calcjob.outputs:
            node = calcjob.outputs[key]
            names = node.get_arraynames()
            sets[label] = {q: (node.get_array(f'{q}_predicted'), node.get_array(f'{q}_target'))
                           for q in ('energy', 'force', 'virial', 'stress') if f'{q}_predicted' in names}
    return sets


def training_figure(calcjob, title: str | None = None):
    """Loss curves and parity plots of a finished NEP training CalcJob (a matplotlib Figure, not saved)."""
    from aiida_sseff.plots.training import plot_training

    loss = calcjob.outputs.loss
    columns = {name: loss.get_array(name) for name in loss.get_arraynames() if name != 'generation'}
    return plot_training(loss.get_array('generation'), columns, stored_parity(calcjob), None, title=title)


def architecture_study_figures(node) -> dict:
    """``{'comparison': fig, 'speed': fig}`` of a finished ``sseff.study.architectures`` (the paper's Fig. 3: relative
    RMSE bars with the Arrhenius plots; Fig. 4: MD speed versus atoms, when speed was measured), from its stored
    table and the ``diffusion`` arrays of each model's run; the figures are not saved."""
    from aiida_sseff.plots.architectures import arrhenius_entry, plot_architecture_comparison, plot_md_speed

    table = node.outputs.table.get_dict()
    arrhenius = {}
    for label in sorted(node.outputs.transport):
        diffusion = node.base.links.get_outgoing(link_label_filter=f'diffusion_{label}').one().node
        arrays = {name: diffusion.outputs.diffusion.get_array(name)
                  for name in ('temperature_K', 'D_cm2_s', 'D_err_cm2_s', 'fitted')}
        arrhenius[label] = arrhenius_entry(arrays, diffusion.outputs.results.get_dict())
    figures = {'comparison': plot_architecture_comparison(table['rows'], arrhenius, table['reference'], path=None)}
    speeds = {label: cost.get_dict().get('md_speed') or [] for label, cost in sorted(node.outputs.training.cost.items())}
    if any(speeds.values()):
        figures['speed'] = plot_md_speed(speeds, path=None)
    return figures
