"""Optional stages of a workflow given as ``{code, protocol, overrides}``: the stage's WorkChain is built at run time
from its own protocol and the nodes made before it, so the protocol name and overrides are inputs in provenance."""

from __future__ import annotations

from aiida import orm


def declare_stage(spec, name: str, help: str, code_help: str, extra: dict | None = None) -> None:
    """Declare the optional input namespace ``name`` with ``code``, ``protocol`` and ``overrides`` (and ``extra``)."""
    spec.input_namespace(name, required=False, populate_defaults=False, help=help)
    spec.input(f'{name}.code', valid_type=orm.AbstractCode, required=False, help=code_help)
    spec.input(f'{name}.protocol', valid_type=orm.Str, required=False, help='Protocol name of the stage.')
    spec.input(f'{name}.overrides', valid_type=orm.Dict, required=False, help='Overrides of that protocol.')
    for port, valid_type in (extra or {}).items():
        spec.input(f'{name}.{port}', valid_type=valid_type, required=False)


def stage_requested(inputs, name: str) -> bool:
    return name in inputs and 'code' in inputs[name]


def stage_builder(process_class, namespace, *args, **kwargs):
    """``process_class.get_builder_from_protocol(code, *args, protocol=..., overrides=..., **kwargs)`` for a stage."""
    protocol = namespace.protocol.value if 'protocol' in namespace else None
    overrides = namespace.overrides.get_dict() if 'overrides' in namespace else None
    return process_class.get_builder_from_protocol(namespace.code, *args, protocol=protocol, overrides=overrides,
                                                   **kwargs)
