"""Plots from stored nodes (matplotlib, Agg backend: works without a display)."""

from __future__ import annotations

from pathlib import Path


def plot_pipeline(node, path: Path) -> Path:
    """MD temperature traces per sampling run and the distribution of reference force components."""
    import matplotlib.pyplot as plt

    from aiida_sseff.report.stored import pipeline_figure

    fig = pipeline_figure(node)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_architecture_study(node, folder: Path) -> list[Path]:
    """Fig. 3 (relative RMSE bars, Arrhenius plots side by side) and Fig. 4 (MD speed vs atoms) of a finished
    ``sseff.study.architectures`` (:func:`aiida_sseff.report.stored.architecture_study_figures`), saved in ``folder``."""
    import matplotlib.pyplot as plt

    from aiida_sseff.report.stored import architecture_study_figures

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = {'comparison': f'architectures-{node.pk}.png', 'speed': f'architectures-speed-{node.pk}.png'}
    paths = []
    for key, figure in architecture_study_figures(node).items():
        figure.tight_layout()
        figure.savefig(folder / names[key], dpi=120)
        plt.close(figure)
        paths.append(folder / names[key])
    return paths
