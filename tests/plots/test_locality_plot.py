"""plots.locality: a PNG from a σ_f table; shapes are checked; a σ_f of exactly zero is drawn, not dropped."""

import numpy as np
import pytest

from aiida_sseff.plots.locality import plot_locality


def test_plot_locality_writes_a_png_and_checks_shapes(tmp_path):
    sigma = np.array([[0.2, 0.05, 0.0], [0.3, 0.08, 0.01]])
    path = plot_locality([6.0, 8.0, 12.0], sigma, sigma / 10, ['Li', 'O'], path=tmp_path / 'locality.png',
                         model_rmse=(12.0, 111.0, 'NEP RMSE'))
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    fig = plot_locality([6.0, 8.0, 12.0], sigma, sigma / 10, ['Li', 'O'])
    ax = fig.axes[0]
    assert ax.get_yscale() == 'log'
    # the zero of Li at 12 Å is drawn at the floor with an open marker
    markers = [line for line in ax.lines if line.get_marker() == 'v']
    assert len(markers) == 1 and markers[0].get_xdata()[0] == 12.0
    with pytest.raises(ValueError, match='species × radii'):
        plot_locality([6.0, 8.0], sigma, sigma, ['Li', 'O'])
