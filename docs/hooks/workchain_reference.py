"""MkDocs hook: ``user/reference.md``, the reference of every ``sseff.*`` WorkChain and CalcJob, from their specs.

The page is generated at build time (mkdocs.yml ``hooks:``) and never committed, so it cannot fall behind the code:
the entry points are read from ``setup.cfg`` (the ``aiida.workflows`` and ``aiida.calculations`` groups, names
starting with ``sseff.``), each class is imported and its ``spec()`` walked: docstring summary, inputs (nested
namespaces as dotted names), outputs and exit codes. A new entry point in setup.cfg appears on the next build,
without a reinstall. ``python docs/hooks/workchain_reference.py`` prints the page.

The standard ``metadata`` inputs of aiida-core (``metadata.options.resources``, ``metadata.call_link_label``, ...)
are left out of every table, except those a plugin class adds (``metadata.options.device`` of ``sseff.nep.train``);
they are documented once by aiida-core. Exit codes that aiida-core declares for every CalcJob or WorkChain are
marked as such.
"""

from __future__ import annotations

import configparser
import importlib
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUP_CFG = ROOT / 'setup.cfg'
PAGE = 'user/reference.md'
GROUPS = (('aiida.workflows', 'Workflows'), ('aiida.calculations', 'Calculations'))
PREFIX = 'sseff.'
MAX_DEFAULT_CHARS = 100


def sseff_entry_points(setup_cfg: Path = SETUP_CFG) -> dict[str, dict[str, str]]:
    """``{group: {name: 'module:Class'}}`` of the ``sseff.*`` process entry points declared in ``setup_cfg``."""
    parser = configparser.ConfigParser()
    parser.read(setup_cfg, encoding='utf-8')
    result = {}
    for group, _ in GROUPS:
        text = parser.get('options.entry_points', group, fallback='')
        pairs = [line.split('=', 1) for line in text.splitlines() if '=' in line]
        result[group] = {name.strip(): target.strip() for name, target in pairs if name.strip().startswith(PREFIX)}
    return result


def _load(target: str):
    module, _, attribute = target.partition(':')
    return getattr(importlib.import_module(module), attribute)


def _ensure_profile() -> None:
    """Calling a port's default (``lambda: orm.Int(8)``) makes a node, which needs a profile: an in-memory one
    (``core.sqlite_temp``) unless one is loaded already. Nothing is stored."""
    from aiida import load_profile
    from aiida.manage import get_manager

    if get_manager().get_profile() is None:
        from aiida.storage.sqlite_temp import SqliteTempBackend

        load_profile(SqliteTempBackend.create_profile('sseff-docs-reference'), allow_switch=True)


def _markdown(text: str) -> str:
    """Docstrings and help strings are reStructuredText: ``x`` and :class:`~a.B` become Markdown `x` and `B`."""
    text = re.sub(r':(?:class|func|meth|mod|attr|obj|data):`~?([^`]+)`',
                  lambda match: f'`{match.group(1).rsplit(".", 1)[-1] if "~" in match.group(0) else match.group(1)}`',
                  text)
    return re.sub(r'``([^`]+)``', r'`\1`', text)


def _cell(text) -> str:
    """Text fit for one cell of a Markdown table."""
    text = _markdown(' '.join(str(text).split()))
    # escape outside code spans only (a code span shows its text as is; the table extension skips pipes in it)
    parts = re.split(r'(`[^`]*`)', text)
    return ''.join(part if index % 2 else part.replace('|', r'\|').replace('<', '&lt;').replace('*', r'\*')
                   for index, part in enumerate(parts))


def _type_name(valid_type) -> str:
    if valid_type is None:
        return 'any'
    types = valid_type if isinstance(valid_type, tuple) else (valid_type,)
    # aiida-core adds NoneType to every optional port: "required: no" says it already
    return ', '.join(getattr(t, '__name__', str(t)) for t in types if t is not type(None)) or 'any'


def _value(value) -> str:
    from aiida import orm

    if isinstance(value, orm.BaseType):
        value = value.value
    elif isinstance(value, orm.Dict):
        value = value.get_dict()
    elif isinstance(value, orm.List):
        value = value.get_list()
    elif isinstance(value, orm.Node):
        return type(value).__name__
    text = repr(value)
    # a long default (a whole potential's parameters) would fill the table: its start, the rest in the spec
    return f'`{text[:MAX_DEFAULT_CHARS]}`…' if len(text) > MAX_DEFAULT_CHARS else f'`{text}`'


def _default(port) -> str:
    if not port.has_default():
        return ''
    value = port.default
    if callable(value):
        value = value()
    return _value(value)


def _standard_metadata() -> set[str]:
    """Dotted names (below ``metadata``) of the metadata inputs aiida-core gives every CalcJob and WorkChain."""
    from aiida.engine import CalcJob, WorkChain

    names: set[str] = set()
    for process in (CalcJob, WorkChain):
        for name, _port in _walk(process.spec().inputs['metadata'], ''):
            names.add(name)
    return names


def _walk(namespace, prefix: str):
    """(dotted name, port) of every port and namespace below ``namespace``, depth first, sorted by name."""
    from plumpy.ports import PortNamespace

    for name in sorted(namespace):
        port = namespace[name]
        full = f'{prefix}{name}'
        yield full, port
        if isinstance(port, PortNamespace):
            yield from _walk(port, f'{full}.')


def _is_standard_metadata(name: str, standard: set[str]) -> bool:
    parts = name.split('.')
    if 'metadata' not in parts:
        return False
    below = '.'.join(parts[parts.index('metadata') + 1:])
    return not below or below in standard


def input_rows(process_class) -> list[tuple[str, str, str, str, str]]:
    """(name, type, required, default, help) of every input, nested namespaces as dotted names."""
    from plumpy.ports import PortNamespace

    standard = _standard_metadata()
    rows = []
    for name, port in _walk(process_class.spec().inputs, ''):
        if _is_standard_metadata(name, standard):
            continue
        if isinstance(port, PortNamespace):
            kind = 'namespace, dynamic' if port.dynamic else 'namespace'
            rows.append((f'{name}.', kind, 'yes' if port.required else 'no', '', port.help or ''))
        else:
            rows.append((name, _type_name(port.valid_type), 'yes' if port.required else 'no', _default(port),
                         port.help or ''))
    return rows


def output_rows(process_class) -> list[tuple[str, str, str, str]]:
    """(name, type, required, help) of every output."""
    from plumpy.ports import PortNamespace

    rows = []
    for name, port in _walk(process_class.spec().outputs, ''):
        kind = ('namespace, dynamic' if port.dynamic else 'namespace') if isinstance(port, PortNamespace) \
            else _type_name(port.valid_type)
        rows.append((f'{name}.' if isinstance(port, PortNamespace) else name, kind,
                     'yes' if port.required else 'no', port.help or ''))
    return rows


def exit_code_rows(process_class) -> list[tuple[int, str, str, bool]]:
    """(status, label, message, declared by aiida-core) of every exit code, by status."""
    from aiida.engine import BaseRestartWorkChain, CalcJob, WorkChain

    core = {(code.status, label) for base in (CalcJob, WorkChain, BaseRestartWorkChain)
            for label, code in base.spec().exit_codes.items()}
    return sorted((code.status, label, code.message or '', (code.status, label) in core)
                  for label, code in process_class.spec().exit_codes.items())


def summary(process_class) -> str:
    """The first paragraph of the class docstring."""
    doc = inspect.getdoc(process_class) or ''
    return ' '.join(doc.split('\n\n', 1)[0].split())


def anchor(entry_point: str) -> str:
    """The id MkDocs gives the heading of ``entry_point`` (Python-Markdown's toc slugify of its text)."""
    from markdown.extensions.toc import slugify

    return slugify(entry_point, '-')


def _table(header: tuple[str, ...], rows) -> list[str]:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(_cell(value) for value in row) + ' |' for row in rows]
    return lines


def process_section(entry_point: str, process_class) -> list[str]:
    lines = [f'### `{entry_point}`', '',
             f'`{process_class.__module__}.{process_class.__name__}`: {_markdown(summary(process_class))}', '']
    inputs = input_rows(process_class)
    lines += ['**Inputs**', '']
    lines += _table(('input', 'type', 'required', 'default', 'help'),
                    [(f'`{name}`', kind, required, default, help_) for name, kind, required, default, help_ in inputs])
    outputs = output_rows(process_class)
    lines += ['', '**Outputs**', '']
    lines += _table(('output', 'type', 'required', 'help'),
                    [(f'`{name}`', kind, required, help_) for name, kind, required, help_ in outputs]) if outputs \
        else ['None.']
    lines += ['', '**Exit codes**', '']
    lines += _table(('status', 'label', 'message'),
                    [(status, f'`{label}`', message + (' (aiida-core)' if core else ''))
                     for status, label, message, core in exit_code_rows(process_class)])
    return [*lines, '']


def generate(setup_cfg: Path = SETUP_CFG) -> str:
    """The Markdown text of the reference page."""
    _ensure_profile()
    entry_points = sseff_entry_points(setup_cfg)
    lines = [
        '# WorkChain and CalcJob reference',
        '',
        'Generated from the process specs when the documentation is built (`docs/hooks/workchain_reference.py`): '
        'every `aiida.workflows` and `aiida.calculations` entry point of `setup.cfg` whose name starts with '
        '`sseff.`. Nested namespaces are written as dotted names (`label.cp2k.cp2k.code`); a name ending in `.` is '
        'a namespace. The standard `metadata` inputs of aiida-core (`metadata.options.resources`, '
        '`metadata.options.max_wallclock_seconds`, ...) are left out; see '
        '[aiida-core\'s documentation](https://aiida.readthedocs.io/projects/aiida-core/en/stable/topics/calculations/usage.html#options). '
        'Exit codes marked *(aiida-core)* are declared by aiida-core for every CalcJob or WorkChain. Convention of '
        'this plugin: 300–399 missing or unreadable outputs, 400 and above physics failures.',
        '',
        'Load any of them with `aiida.plugins.WorkflowFactory(name)` / `CalculationFactory(name)`, and see the '
        'same information for an installed version with `verdi plugin list aiida.workflows NAME`.',
        '',
    ]
    for group, title in GROUPS:
        names = sorted(entry_points[group])
        lines += [f'## {title}', '', '| entry point | class | summary |', '|---|---|---|']
        classes = {name: _load(entry_points[group][name]) for name in names}
        lines += [f'| [`{name}`](#{anchor(name)}) | `{cls.__name__}` | {_cell(summary(cls))} |'
                  for name, cls in classes.items()]
        lines.append('')
        for name in names:
            lines += process_section(name, classes[name])
    return '\n'.join(lines) + '\n'


def on_files(files, config):
    """Add the generated page to the build (mkdocs >= 1.6: ``File.generated``)."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=generate()))
    return files


if __name__ == '__main__':
    print(generate(), end='')
