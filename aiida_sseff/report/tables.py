"""Tables from stored dictionaries, shared by the report sections (numbers stay numbers: the renderer formats them)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from aiida_sseff.report.blocks import Table


def dict_rows(value, prefix: str = '') -> list[list]:
    """``[key, value]`` rows of a nested dict, keys joined by dots and sorted; a list of dicts stays one JSON cell."""
    if isinstance(value, Mapping):
        rows = []
        for key in sorted(value, key=str):
            rows.extend(dict_rows(value[key], f'{prefix}.{key}' if prefix else str(key)))
        return rows
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return [[prefix, json.dumps(value, sort_keys=True)]]
    return [[prefix, value]]


def dict_table(title: str, value: Mapping, caption: str = '') -> Table:
    return Table(title, ['key', 'value'], dict_rows(value), caption)


def records_table(title: str, records: Iterable[Mapping], columns: Sequence[tuple[str, str]],
                  caption: str = '') -> Table:
    """One row per record; ``columns`` are ``(key, header)``; a missing key is an empty (None) cell."""
    return Table(title, [header for _, header in columns],
                 [[record.get(key) for key, _ in columns] for record in records], caption)
