"""The loop figure: Ea ± σ and the test RMSE versus iteration, from the rows of a loop's table."""

import numpy as np
import pytest

from aiida_sseff.plots.loop import loop_figure, plot_loop

ROWS = [
    {'iteration': 0, 'Ea_eV': 0.40, 'Ea_err_eV': 0.05, 'ea_replica_spread_eV': 0.08, 'force_rmse_mev_A': 150.0},
    {'iteration': 1, 'Ea_eV': 0.31, 'Ea_err_eV': 0.04, 'ea_replica_spread_eV': None, 'force_rmse_mev_A': 120.0},
]


def test_loop_figure_draws_the_rows(tmp_path):
    figure = loop_figure(ROWS)
    left, right = figure.axes
    ea_line = left.get_lines()[0]
    assert np.allclose(ea_line.get_ydata(), [0.40, 0.31])
    assert np.allclose(right.get_lines()[0].get_ydata(), [150.0, 120.0])
    path = plot_loop(ROWS, tmp_path / 'loop.png', title='test')
    assert path.stat().st_size > 0


def test_loop_figure_needs_rows():
    with pytest.raises(ValueError, match='no iteration'):
        loop_figure([])
