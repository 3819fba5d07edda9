"""Plots from stored nodes (matplotlib, Agg backend: works without a display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_pipeline(node, path: Path) -> Path:
    """MD temperature traces per sampling run and the distribution of reference force components."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_f) = plt.subplots(1, 2, figsize=(10, 4))
    for link in sorted(node.base.links.get_outgoing(link_label_filter='md_%').all(), key=lambda link: link.node.inputs.parameters['temperature_K']):
        thermo = link.node.outputs.thermo
        ax_t.plot(thermo.get_array('time_ps'), thermo.get_array('temperature_K'), label=link.link_label)
        target = link.node.inputs.parameters['temperature_K']
        ax_t.axhline(target, color='0.6', lw=0.8, ls='--')
    ax_t.set_xlabel('time (ps)')
    ax_t.set_ylabel('temperature (K)')
    ax_t.legend(fontsize=8)
    ax_t.set_title('sampling MD')
    dataset = node.outputs.dataset.get_ase()
    forces = np.concatenate([atoms.get_forces().ravel() for atoms in dataset])
    ax_f.hist(forces, bins=60, color='C0')
    ax_f.set_xlabel('reference force component (eV/Å)')
    ax_f.set_ylabel('count')
    ax_f.set_title(f'{len(dataset)} labelled structures')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
