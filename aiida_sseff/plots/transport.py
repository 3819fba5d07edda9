"""Plots of Li transport: MSD with the fit window, Arrhenius plot with error bars and the extrapolation.

matplotlib with the Agg backend (no display needed); no aiida imports: the functions take arrays, so they serve the
CLI on stored nodes and on plain files alike. Units: time ps, MSD Å², T K, D cm²/s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ['plot_arrhenius', 'plot_msd', 'plot_transport']


def _pyplot():
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, path):
    if path is None:
        return fig
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return Path(path)


def plot_msd(time_ps, msd_xyz, fit_window=None, slope=None, intercept=0.0, ax=None, path=None, title=None,
             label_prefix=''):
    """MSD per direction and total versus lag time, the fit window shaded and the fitted line drawn.

    Parameters
    ----------
    time_ps : (M,) lag times in ps.
    msd_xyz : (M, 3) MSD in Å² per direction (x, y, z).
    fit_window : ``(t_start, t_end)`` in ps, or None.
    slope, intercept : the fitted line of the total MSD, ``slope`` in Å²/ps (= 6 D), ``intercept`` in Å².
    ax : draw into this axes (then ``path`` is ignored); else a new figure is made.
    path : save to this file and return its path; None returns the figure.
    """
    plt = _pyplot()
    t = np.asarray(time_ps, dtype=float)
    msd = np.asarray(msd_xyz, dtype=float)
    if msd.ndim != 2 or msd.shape != (t.size, 3):
        raise ValueError(f'plot_msd: msd_xyz must have shape ({t.size}, 3), got {msd.shape}.')
    own = ax is None
    fig, ax = plt.subplots(figsize=(5, 4)) if own else (ax.figure, ax)
    for i, name in enumerate('xyz'):
        ax.plot(t, msd[:, i], lw=0.8, alpha=0.7, label=f'{label_prefix}{name}')
    ax.plot(t, msd.sum(axis=1), color='k', lw=1.4, label=f'{label_prefix}total')
    if fit_window is not None:
        ax.axvspan(fit_window[0], fit_window[1], color='C2', alpha=0.12, label='fit window')
        if slope is not None and np.isfinite(slope):
            tt = np.linspace(fit_window[0], fit_window[1], 50)
            ax.plot(tt, slope * tt + (intercept if intercept is not None and np.isfinite(intercept) else 0.0),
                    color='C3', ls='--', lw=1.4, label='fit (6D)')
    ax.set_xlabel('lag time (ps)')
    ax.set_ylabel('MSD (Å²)')
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    return _finish(fig, path) if own else ax


def plot_arrhenius(temperatures_K, d, d_err, fit=None, extrapolate_to_K: float = 300.0, fitted=None, ax=None,
                   path=None, title=None):
    """``log10 D`` versus ``1000/T`` with error bars, the fitted line and its 1σ band down to ``extrapolate_to_K``.

    Parameters
    ----------
    temperatures_K, d, d_err : the D(T) points (cm²/s).
    fit : an :class:`aiida_sseff.analysis.arrhenius.ArrheniusFit` (or None for the points only).
    fitted : boolean mask of the points that entered the fit; the others are drawn hollow.
    """
    plt = _pyplot()
    t = np.asarray(temperatures_K, dtype=float)
    dv = np.asarray(d, dtype=float)
    de = np.asarray(d_err, dtype=float)
    mask = np.ones(t.size, dtype=bool) if fitted is None else np.asarray(fitted, dtype=bool)
    own = ax is None
    fig, ax = plt.subplots(figsize=(5, 4)) if own else (ax.figure, ax)
    x = 1000.0 / t
    ok = mask & (dv > 0)
    ax.errorbar(x[ok], dv[ok], yerr=np.where(np.isfinite(de[ok]), de[ok], 0.0), fmt='o', color='C0',
                capsize=3, label='MD')
    other = ~mask & (dv > 0)
    if other.any():
        ax.errorbar(x[other], dv[other], yerr=np.where(np.isfinite(de[other]), de[other], 0.0), fmt='o',
                    mfc='none', color='0.5', capsize=3, label='not fitted')
    if fit is not None:
        t_line = np.linspace(min(t.min(), extrapolate_to_K), t.max(), 200)
        line, err = fit.predict(t_line)
        ax.plot(1000.0 / t_line, line, color='C3', lw=1.2,
                label=f'Ea = {fit.ea:.3f} ± {fit.ea_err:.3f} eV')
        lo, hi = fit.interval(t_line)
        ax.fill_between(1000.0 / t_line, lo, hi, color='C3', alpha=0.15, lw=0)
        d_x, d_x_err = fit.predict(extrapolate_to_K)
        ax.errorbar([1000.0 / extrapolate_to_K], [float(d_x)], yerr=[[float(d_x - fit.interval(extrapolate_to_K)[0])],
                                                                     [float(fit.interval(extrapolate_to_K)[1] - d_x)]],
                    fmt='s', color='C3', capsize=3, label=f'D({extrapolate_to_K:g} K) = {float(d_x):.2e} cm²/s')
    ax.set_yscale('log')
    ax.set_xlabel('1000 / T (1/K)')
    ax.set_ylabel('D (cm²/s)')
    secondary = ax.secondary_xaxis('top', functions=(lambda v: 1000.0 / np.maximum(v, 1e-9),
                                                     lambda v: 1000.0 / np.maximum(v, 1e-9)))
    secondary.set_xlabel('T (K)')
    lo, hi = sorted(ax.get_xlim())
    ticks, last = [], None
    for temperature in (3000, 2000, 1500, 1200, 1000, 800, 600, 500, 400, 300, 250, 200):
        x_tick = 1000.0 / temperature
        if lo <= x_tick <= hi and (last is None or x_tick - last >= 0.08 * (hi - lo)):
            ticks.append(temperature)
            last = x_tick
    secondary.set_xticks(ticks, labels=[str(t) for t in ticks])  # in the secondary axis' own unit (K)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    return _finish(fig, path) if own else ax


def plot_transport(msd_curves, temperatures_K, d, d_err, fit=None, extrapolate_to_K: float = 300.0, fitted=None,
                   path=None, title=None):
    """Two panels: the total MSD of every run with its fit window, and the Arrhenius plot.

    ``msd_curves``: list of dicts with ``label``, ``time_ps``, ``msd_xyz`` and optionally ``fit_window``,
    ``slope``, ``intercept`` (as :func:`plot_msd`).
    """
    plt = _pyplot()
    fig, (ax_m, ax_a) = plt.subplots(1, 2, figsize=(10, 4))
    for i, curve in enumerate(msd_curves):
        t = np.asarray(curve['time_ps'])
        total = np.asarray(curve['msd_xyz']).sum(axis=1)
        ax_m.plot(t, total, color=f'C{i % 10}', lw=1.2, label=curve['label'])
        window = curve.get('fit_window')
        if window is not None:
            sel = (t >= window[0]) & (t <= window[1])
            ax_m.plot(t[sel], total[sel], color=f'C{i % 10}', lw=3, alpha=0.35)
            slope = curve.get('slope')
            if slope is not None and np.isfinite(slope):
                ax_m.plot(t[sel], slope * t[sel] + (curve.get('intercept') or 0.0), color=f'C{i % 10}', ls='--',
                          lw=0.9)
    ax_m.set_xlabel('lag time (ps)')
    ax_m.set_ylabel('total MSD (Å²)')
    ax_m.set_title('MSD (thick: fit window; dashed: fit)')
    ax_m.legend(fontsize=7)
    plot_arrhenius(temperatures_K, d, d_err, fit=fit, extrapolate_to_K=extrapolate_to_K, fitted=fitted, ax=ax_a)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)
