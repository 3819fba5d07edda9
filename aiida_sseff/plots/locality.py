"""The locality plot: σ_f versus 2·R_cut (= r_f) per species, as in Fig. 5 of the perspective paper.

matplotlib with the Agg backend; no aiida imports: the function takes arrays (those of the ``sigma_f`` output of
``sseff.locality``). Units: r_f in Å, σ_f shown in meV/Å on a log axis (σ_f falls by orders of magnitude).
"""

from __future__ import annotations

import numpy as np

from aiida_sseff.plots.transport import _finish, _pyplot

__all__ = ['plot_locality']


def plot_locality(radii, sigma_f, sigma_f_err, species, ax=None, path=None, title=None, model_rmse=None):
    """σ_f (eV/Å, ``(n_species, n_radii)``) with error bars versus r_f = 2·R_cut (Å), one line per species.

    ``model_rmse``: optional ``(r_f, rmse_mev_per_angstrom, label)`` drawn as a marker (a model's force RMSE at its
    2·R_cut, against which σ_f/√3 is the part locality alone explains). Values ≤ 0 (a σ_f of exactly zero) are drawn
    at the bottom of the axis with an open marker, since a log axis cannot show them.
    """
    plt = _pyplot()
    r = np.asarray(radii, dtype=float)
    sigma = np.atleast_2d(np.asarray(sigma_f, dtype=float)) * 1000.0
    error = np.atleast_2d(np.asarray(sigma_f_err, dtype=float)) * 1000.0
    if sigma.shape != (len(species), r.size) or error.shape != sigma.shape:
        raise ValueError(f'plot_locality: sigma_f {sigma.shape} and sigma_f_err {error.shape} must be '
                         f'({len(species)}, {r.size}) (species × radii)')
    own = ax is None
    fig, ax = plt.subplots(figsize=(5, 4)) if own else (ax.figure, ax)
    order = np.argsort(r)
    positive = sigma[sigma > 0]
    floor = positive.min() / 10 if positive.size else 1e-6
    for i, name in enumerate(species):
        s, e = sigma[i, order], error[i, order]
        shown = np.where(s > 0, s, floor)
        line = ax.errorbar(r[order], shown, yerr=np.where(s > 0, e, 0), marker='o', ms=4, capsize=2, lw=1.2,
                           label=name)
        zero = s <= 0
        if zero.any():
            ax.plot(r[order][zero], shown[zero], ls='none', marker='v', mfc='white', color=line[0].get_color())
    if model_rmse is not None:
        r_model, rmse, label = model_rmse
        ax.plot([r_model], [rmse], marker='*', ms=12, color='k', ls='none', label=label)
    ax.set_yscale('log')
    ax.set_xlabel(r'$r_f = 2\,R_\mathrm{cut}$ (Å)')
    ax.set_ylabel(r'$\sigma_f$ (meV/Å)')
    ax.grid(alpha=0.3, which='both')
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return _finish(fig, path) if own else ax
