"""Report section of ``sseff.locality``: σ_f of the central atom per species versus the frozen radius, the plot, and
the comparison with a model's force RMSE when one was given."""

from __future__ import annotations

from aiida_sseff.report import Figure, Table, register_section
from aiida_sseff.report.tables import dict_table


@register_section('sseff.locality')
def locality_section(node) -> list:
    from aiida_sseff.plots.locality import plot_locality

    table = node.outputs.sigma_f
    species = table.base.attributes.get('species')
    radii = table.get_array('radii').tolist()
    sigma, error = 1e3 * table.get_array('sigma_f'), 1e3 * table.get_array('sigma_f_err')
    rows = [[name, radius, float(sigma[i, j]), float(error[i, j])]
            for i, name in enumerate(species) for j, radius in enumerate(radii)]
    blocks = [Table('σ_f versus frozen radius', ['species', 'r_f (Å)', 'σ_f (meV/Å)', 'σ_f err (meV/Å)'], rows,
                    caption='σ_f = sqrt(mean ‖f − mean f‖²) of the central atom over the perturbed snapshots.')]
    comparison = node.outputs.comparison.get_dict() if 'comparison' in node.outputs else None
    rmse = None
    if comparison:
        blocks.append(dict_table('Against the model error', comparison))
        largest = comparison['largest'].get('force_rmse_mev_per_angstrom')
        if largest is not None:
            rmse = (comparison['r_f_A'], largest, 'model force RMSE')
    figure = plot_locality(radii, table.get_array('sigma_f'), table.get_array('sigma_f_err'), species,
                           model_rmse=rmse)
    blocks.append(Figure('σ_f versus r_f', figure, data={'radii_A': radii, 'species': species}))
    return blocks
