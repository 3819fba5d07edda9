"""Which report section renders which process: sections register per entry point, in modules of
:mod:`aiida_sseff.report.sections` (one module per WorkChain or study, so that adding a study touches no shared file).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

#: ``{'sseff.study.dataset_size': section}``; a section maps a finished process node to a list of blocks
_SECTIONS: dict[str, Callable] = {}
_LOADED = False


def register_section(*entry_points: str):
    """Decorator: ``@register_section('sseff.study.dataset_size')`` on ``def section(node) -> list[Block]``."""

    def decorator(function: Callable) -> Callable:
        for entry_point in entry_points:
            if entry_point in _SECTIONS and _SECTIONS[entry_point] is not function:
                raise ValueError(f'a report section for {entry_point} is registered twice')
            _SECTIONS[entry_point] = function
        return function

    return decorator


def _load_sections() -> None:
    global _LOADED  # noqa: PLW0603 - import the section modules once, on first use
    if _LOADED:
        return
    from aiida_sseff.report import sections

    for module in pkgutil.iter_modules(sections.__path__):
        importlib.import_module(f'{sections.__name__}.{module.name}')
    _LOADED = True


def entry_point_of(node) -> str | None:
    """``'sseff.study.dataset_size'`` for a node whose process_type is ``aiida.workflows:sseff.study.dataset_size``."""
    process_type = node.process_type or ''
    return process_type.split(':', 1)[1] if ':' in process_type else None


def section_for(node) -> Callable | None:
    """The registered section of this process node, or None."""
    _load_sections()
    return _SECTIONS.get(entry_point_of(node))
