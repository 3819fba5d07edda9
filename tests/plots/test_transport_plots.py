"""Plots of Li transport (Agg backend): files written, and the drawn lines carry the numbers they should."""

import numpy as np
import pytest

from aiida_sseff.analysis.arrhenius import fit_arrhenius
from aiida_sseff.plots.transport import plot_arrhenius, plot_msd, plot_transport

K_B = 8.617333262e-5  # eV/K


def test_plot_msd_file_and_fit_line(tmp_path):
    t = np.arange(200) * 0.1
    msd = np.outer(1.0 * t, [1.0, 1.1, 0.9]) + 0.1
    path = plot_msd(t, msd, fit_window=(2.0, 10.0), slope=3.0, intercept=0.3, path=tmp_path / 'msd.png', title='x')
    assert path.stat().st_size > 5_000
    fig = plot_msd(t, msd, fit_window=(2.0, 10.0), slope=3.0, intercept=0.3)
    ax = fig.axes[0]
    total = [line for line in ax.lines if line.get_label() == 'total'][0]
    np.testing.assert_allclose(total.get_ydata(), msd.sum(axis=1))
    fit = [line for line in ax.lines if line.get_label() == 'fit (6D)'][0]
    x, y = fit.get_xdata(), fit.get_ydata()
    assert x[0] == 2.0 and x[-1] == 10.0 and np.allclose(y, 3.0 * x + 0.3)
    with pytest.raises(ValueError, match='msd_xyz must have shape'):
        plot_msd(t, msd[:, :2])


def test_plot_arrhenius_line_and_extrapolation(tmp_path):
    temperatures = np.array([800.0, 900.0, 1000.0, 1100.0])
    d = 1e-3 * np.exp(-0.3 / (K_B * temperatures))
    fit = fit_arrhenius(temperatures, d, 0.1 * d)
    fig = plot_arrhenius(temperatures, d, 0.1 * d, fit=fit, fitted=[False, True, True, True])
    ax = fig.axes[0]
    line = [ln for ln in ax.lines if ln.get_label().startswith('Ea =')][0]
    # the line runs from 300 K (1000/T = 3.33) to the hottest point and follows D0 exp(-Ea/kT)
    x, y = line.get_xdata(), line.get_ydata()
    assert x.max() == pytest.approx(1000 / 300) and x.min() == pytest.approx(1000 / 1100)
    np.testing.assert_allclose(y, 1e-3 * np.exp(-0.3 * x * 1e-3 / K_B), rtol=1e-6)
    assert ax.get_yscale() == 'log'
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert 'not fitted' in labels and any(label.startswith('D(300 K) =') for label in labels)
    assert plot_arrhenius(temperatures, d, 0.1 * d, path=tmp_path / 'a.png').stat().st_size > 5_000


def test_plot_transport_two_panels(tmp_path):
    t = np.arange(100) * 0.1
    curves = [{'label': f'{temp} K', 'time_ps': t, 'msd_xyz': np.outer(temp / 1000 * t, [1, 1, 1]),
               'fit_window': (1.0, 5.0), 'slope': 3 * temp / 1000, 'intercept': 0.0} for temp in (900, 1000)]
    d = np.array([1e-5, 2e-5])
    path = plot_transport(curves, [900.0, 1000.0], d, 0.1 * d, fit=fit_arrhenius([900.0, 1000.0], d, 0.1 * d),
                          path=tmp_path / 'transport.png', title='LLZO')
    assert path.stat().st_size > 10_000
