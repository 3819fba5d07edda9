"""Protocols: YAML files of default inputs (``default_inputs``) and named variations (``protocols``).

Same layout and merging rules as aiida-quantumespresso's ``workflows/protocols/utils.py``: a protocol holds only
what differs from ``default_inputs``; overrides merge recursively; unknown override keys are refused with a warning
naming them. (aiida-quantumespresso is not a dependency of ours, so this small mixin is re-implemented here.)
"""

from __future__ import annotations

import copy
import warnings
from importlib import resources

import yaml


class ProtocolError(ValueError):
    """Unknown protocol name or a malformed protocol file."""


def recursive_merge(left: dict, right: dict) -> dict:
    """Return ``left`` updated by ``right``, merging nested dicts (right wins)."""
    merged = copy.deepcopy(left)
    for key, value in right.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = recursive_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def unknown_keys(reference: dict, overrides: dict, prefix: str = '') -> list[str]:
    """Keys of ``overrides`` that ``reference`` does not have, as dotted paths."""
    result = []
    for key, value in overrides.items():
        path = f'{prefix}{key}'
        if key not in reference:
            result.append(path)
        elif isinstance(value, dict) and isinstance(reference[key], dict) and reference[key]:
            result.extend(unknown_keys(reference[key], value, f'{path}.'))
    return result


class ProtocolMixin:
    """Adds ``get_available_protocols``, ``get_default_protocol`` and ``get_protocol_inputs`` to a process class."""

    _protocol_file: str = ''

    @classmethod
    def _load_protocol_file(cls) -> dict:
        text = resources.files('aiida_sseff.protocols').joinpath(cls._protocol_file).read_text()
        return yaml.safe_load(text)

    @classmethod
    def get_default_protocol(cls) -> str:
        return cls._load_protocol_file()['default_protocol']

    @classmethod
    def get_available_protocols(cls) -> dict:
        data = cls._load_protocol_file()
        return {name: {'description': value['description']} for name, value in data['protocols'].items()}

    @classmethod
    def get_protocol_inputs(cls, protocol: str | None = None, overrides: dict | None = None) -> dict:
        data = cls._load_protocol_file()
        protocol = protocol or data['default_protocol']
        if protocol not in data['protocols']:
            raise ProtocolError(f'protocol `{protocol}` unknown; choose one of {", ".join(data["protocols"])}')
        specific = {k: v for k, v in data['protocols'][protocol].items() if k != 'description'}
        inputs = recursive_merge(data['default_inputs'], specific)
        if overrides:
            unknown = unknown_keys(inputs, overrides)
            if unknown:
                warnings.warn(f'overrides with keys unknown to protocol `{protocol}` are ignored: {unknown}',
                              stacklevel=2)
                overrides = _drop(overrides, unknown)
            inputs = recursive_merge(inputs, overrides)
        return inputs


def _drop(overrides: dict, paths: list[str]) -> dict:
    result = copy.deepcopy(overrides)
    for path in paths:
        node = result
        *parents, last = path.split('.')
        for parent in parents:
            node = node[parent]
        node.pop(last, None)
    return result
