"""The dataset-size figure is drawn from the table rows: the plotted points are the rows' numbers, the converged size
is marked, and a size without transport leaves a gap rather than a made-up point."""

import numpy as np

from aiida_sseff.plots.dataset_size import plot_dataset_size


def _rows():
    return [
        {'n_structures': 12, 'n_mobile_environments': 240, 'energy_rmse_mev_per_atom': 9.0,
         'force_rmse_mev_per_angstrom': 180.0, 'D_cm2_s': None, 'D_err_cm2_s': None, 'Ea_eV': None, 'Ea_err_eV': None},
        {'n_structures': 24, 'n_mobile_environments': 480, 'energy_rmse_mev_per_atom': 5.0,
         'force_rmse_mev_per_angstrom': 150.0, 'D_cm2_s': 2e-5, 'D_err_cm2_s': 2e-6, 'Ea_eV': 0.30, 'Ea_err_eV': 0.04},
        {'n_structures': 48, 'n_mobile_environments': 960, 'energy_rmse_mev_per_atom': 3.0,
         'force_rmse_mev_per_angstrom': 120.0, 'D_cm2_s': 2.2e-5, 'D_err_cm2_s': 2e-6, 'Ea_eV': 0.28,
         'Ea_err_eV': 0.03},
    ]


def test_points_are_the_rows_and_the_converged_size_is_marked(tmp_path):
    fig = plot_dataset_size(_rows(), converged_size=480, temperature_K=900.0)
    top, bottom = fig.axes[0], fig.axes[1]  # the twin axes come after the two panels
    force = top.lines[0]
    assert list(force.get_xdata()) == [240.0, 480.0, 960.0] and list(force.get_ydata()) == [180.0, 150.0, 120.0]
    ea = bottom.lines[0].get_ydata()
    assert np.isnan(ea[0]) and list(ea[1:]) == [0.30, 0.28]
    assert bottom.get_xscale() == 'log'
    marked = [line for line in bottom.lines if list(line.get_xdata()) == [480, 480]]
    assert marked, 'the converged size is not marked'
    path = plot_dataset_size(_rows(), None, 900.0, path=tmp_path / 'fig.png')
    assert path.stat().st_size > 10_000
