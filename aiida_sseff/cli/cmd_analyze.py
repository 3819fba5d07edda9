"""``aiida-sseff analyze ...``: analyses of files outside any database (GPUMDkit-style), and ``plot`` of nodes."""

from __future__ import annotations

from aiida_sseff.cli import cmd_root


@cmd_root.group('analyze')
def cmd_analyze():
    """Analyse GPUMD / nep / neppo output files directly, without a profile (use --help on each)."""


@cmd_root.group('plot')
def cmd_plot():
    """Plot stored results (use --help on each)."""
