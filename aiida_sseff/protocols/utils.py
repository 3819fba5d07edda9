"""Protocols: YAML files of default inputs (``default_inputs``) and named variations (``protocols``).

Same layout and merging rules as aiida-quantumespresso's ``workflows/protocols/utils.py``: a protocol holds only
what differs from ``default_inputs``; overrides merge recursively; unknown override keys are refused with a warning
naming them and are still passed on, so the process's own validators refuse what is really wrong (a warning
alone would let a typo silently change nothing). Free-form mappings (``_protocol_open_keys``, e.g. the nep.in
keywords of a training) take any key without a warning. (aiida-quantumespresso is not a dependency of ours, so this
small mixin is re-implemented here.)
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


def unknown_keys(reference: dict, overrides: dict, prefix: str = '', open_keys: tuple[str, ...] = ()) -> list[str]:
    """Keys of ``overrides`` that ``reference`` does not have, as dotted paths (none below an ``open_keys`` path)."""
    result = []
    for key, value in overrides.items():
        path = f'{prefix}{key}'
        if path in open_keys:
            continue
        if key not in reference:
            result.append(path)
        elif isinstance(value, dict) and isinstance(reference[key], dict) and reference[key]:
            result.extend(unknown_keys(reference[key], value, f'{path}.', open_keys))
    return result


class ProtocolMixin:
    """Adds ``get_available_protocols``, ``get_default_protocol`` and ``get_protocol_inputs`` to a process class."""

    _protocol_file: str = ''
    _protocol_open_keys: tuple[str, ...] = ()

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
            unknown = unknown_keys(inputs, overrides, open_keys=cls._protocol_open_keys)
            if unknown:
                warnings.warn(f'overrides with keys unknown to protocol `{protocol}`: {unknown}', stacklevel=2)
            inputs = recursive_merge(inputs, overrides)
        return inputs

