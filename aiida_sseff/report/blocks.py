"""The blocks a report section returns: text, tables and figures, free of any output format (HTML is one renderer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Text:
    """A paragraph in Markdown (headings, emphasis, lists, inline code)."""

    markdown: str


@dataclass(frozen=True)
class Table:
    """A table: ``rows`` are lists of cells in the order of ``columns``; numbers stay numbers (the renderer formats
    them, and the archive round trip compares them)."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ''


@dataclass(frozen=True)
class Figure:
    """A matplotlib figure (the renderer embeds it, so the report is one self-contained file)."""

    title: str
    figure: Any  # matplotlib.figure.Figure; not imported here so that a report without figures needs no matplotlib
    caption: str = ''
    data: dict = field(default_factory=dict)  # optional: the numbers plotted, for tests and for a reader's check
