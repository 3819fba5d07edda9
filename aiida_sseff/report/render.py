"""The report of a finished process, built from the provenance graph alone, and its HTML rendering.

:func:`build_report` walks the process and the WorkChains it called (recursively, in call order) and collects, for
each, the blocks of its registered section (:mod:`aiida_sseff.report.registry`), or for an aiida-sseff WorkChain
without one, its Dict outputs as tables. The header holds the process, the inputs that matter, the software versions
the nodes recorded and a provenance table. Only stored nodes are read, and nodes are named by uuid (never by pk,
which an archive import changes), so the report of an imported archive is byte-identical to the original.

A process that is still running is refused; a process that finished with a non-zero exit status (or was killed or
excepted) is rendered with a visible "did not finish ok" banner, since the report of a failed study is what one
wants to share when asking why it failed.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from aiida_sseff.report.blocks import Figure, Table, Text
from aiida_sseff.report.registry import entry_point_of, section_for
from aiida_sseff.report.tables import dict_rows

__all__ = ('ProcessReport', 'Report', 'ReportError', 'build_report', 'format_number', 'render_html', 'report_json')

#: the restart wrappers and the plumbing WorkChains: their numbers are those of the WorkChain that called them
_NO_FALLBACK_SUFFIXES = ('.base',)


class ReportError(ValueError):
    """The process cannot be reported (it is not a process, or it has not terminated)."""


@dataclass
class ProcessReport:
    """The blocks of one process of the report."""

    title: str
    entry_point: str | None
    uuid: str
    call_link: str
    depth: int
    finished_ok: bool
    blocks: list = field(default_factory=list)
    generic: bool = False  # True: the fallback (Dict outputs as tables), the process registers no section


@dataclass
class Report:
    """Everything the renderer shows, free of any output format; ``tables()`` are what a comparison checks."""

    title: str
    uuid: str
    finished_ok: bool
    banner: str
    metadata: Table
    inputs: Table
    versions: Table
    provenance: Table
    outputs: Table
    sections: list[ProcessReport]

    def header_tables(self) -> list[Table]:
        return [self.metadata, self.inputs, self.versions, self.provenance, self.outputs]


# ------------------------------------------------------------------------------------------------ graph walking
def _called(node) -> list[tuple[str, Any]]:
    """``(call link label, child)`` of a process, in call order (ctime, then uuid: both survive an archive)."""
    from aiida.common.links import LinkType

    links = node.base.links.get_outgoing(link_type=(LinkType.CALL_WORK, LinkType.CALL_CALC)).all()
    return sorted(((link.link_label, link.node) for link in links), key=lambda x: (x[1].ctime, x[1].uuid))


def _walk(node, depth=0, link='') -> list[tuple[Any, int, str]]:
    """Every process below ``node`` (itself first), depth first in call order."""
    rows = [(node, depth, link)]
    for label, child in _called(node):
        rows.extend(_walk(child, depth + 1, label))
    return rows


def _type_name(node) -> str:
    entry_point = entry_point_of(node)
    if entry_point:
        return entry_point
    return node.process_type or type(node).__name__


def _status(node) -> str:
    state = node.process_state.value if node.process_state else 'unknown'
    if node.is_finished:
        return f'{state} [{node.exit_status}]'
    return state


# ------------------------------------------------------------------------------------------------- the header
def _describe_value(node) -> str:
    """A short, profile-independent description of an input node."""
    from aiida import orm

    attributes = node.base.attributes
    if node.node_type.startswith('data.sseff.dataset.'):  # by type string: importing the class costs seconds
        return (f'{attributes.get("n_structures")} structures, {attributes.get("n_atoms")} atoms, '
                f'{"/".join(attributes.get("elements", []))}, sha256 {attributes.get("sha256")}')
    if isinstance(node, orm.StructureData):
        return f'{node.get_formula()} ({len(node.sites)} atoms, {node.get_cell_volume():.2f} Å³)'
    if isinstance(node, orm.AbstractCode):
        computer = node.computer.label if getattr(node, 'computer', None) is not None else '-'
        return f'{node.full_label} (plugin {node.default_calc_job_plugin}, computer {computer})'
    if isinstance(node, orm.List):
        return json.dumps(node.get_list())
    if isinstance(node, orm.Dict):
        return json.dumps(node.get_dict(), sort_keys=True)
    if isinstance(node, orm.BaseType):
        return str(node.value)
    sha = node.base.attributes.get('sha256', None)
    name = type(node).__name__
    elements = node.base.attributes.get('elements', None)
    parts = [name]
    if elements:
        parts.append('/'.join(elements))
    if sha:
        parts.append(f'sha256 {sha}')
    return ', '.join(parts)


def _inputs_table(node) -> Table:
    from aiida.common.links import LinkType

    rows = []
    links = node.base.links.get_incoming(link_type=(LinkType.INPUT_WORK, LinkType.INPUT_CALC)).all()
    for link in sorted(links, key=lambda x: x.link_label):
        rows.append([link.link_label.replace('__', '.'), link.node.__class__.__name__, link.node.uuid,
                     _describe_value(link.node)])
    return Table('Inputs', ['input', 'type', 'uuid', 'value'], rows,
                 caption='The inputs of the reported process (nested namespaces joined by dots).')


def _codes_rows(processes) -> list[list]:
    """Every code a CalcJob of the tree ran, once, with its computer."""
    from aiida import orm

    seen = {}
    for process, _, _ in processes:
        if isinstance(process, orm.CalcJobNode):
            code = process.inputs.code if 'code' in process.inputs else None
            if code is not None and code.uuid not in seen:
                seen[code.uuid] = code
    return [[f'code {code.full_label}', code.__class__.__name__, code.uuid, _describe_value(code)]
            for code in sorted(seen.values(), key=lambda c: (c.full_label, c.uuid))]


def _package_of(node) -> str:
    """The distribution that defines a process: ``aiida-<namespace>`` for entry points (``sseff.`` -> aiida-sseff,
    ``core.`` -> aiida-core), the top-level module for calcfunctions (``aiida_sseff.x.y`` -> aiida-sseff)."""
    entry_point = entry_point_of(node)
    if entry_point:
        return f'aiida-{entry_point.split(".", 1)[0]}'
    top = (node.process_type or '').split('.', 1)[0]
    return top.replace('_', '-') or type(node).__name__


def _versions_rows(processes) -> list[list]:
    """aiida-core and plugin versions from the process attributes (``version.core``, ``version.plugin``), and the
    program versions the outputs recorded (``*_version`` keys of Dicts, attributes of arrays, reference models)."""
    from aiida import orm

    found: dict[tuple[str, str], set] = {}

    def add(package, version, where):
        if version is not None:
            found.setdefault((str(package), str(version)), set()).add(where)

    for process, _, _ in processes:
        versions = process.base.attributes.get('version', {}) or {}
        add('aiida-core', versions.get('core'), 'process attribute version.core')
        add(_package_of(process), versions.get('plugin'), 'process attribute version.plugin')
        if not isinstance(process, orm.CalcJobNode | orm.CalcFunctionNode):
            continue
        for link in process.base.links.get_outgoing().all():
            output = link.node
            if isinstance(output, orm.Dict):
                for key, value in sorted(output.get_dict().items()):
                    if key.endswith('_version') and isinstance(value, str | int | float):
                        add(key[:-len('_version')], value, f'output `{key}`')
            elif isinstance(output, orm.ArrayData):
                for key, value in sorted(output.base.attributes.all.items()):
                    if key.endswith('_version') and isinstance(value, str | int | float):
                        add(key[:-len('_version')], value, f'output attribute `{key}`')
        for link in process.base.links.get_incoming().all():
            attributes = link.node.base.attributes
            if attributes.get('package', None) and attributes.get('version', None):  # a surrogate reference model
                add(attributes.get('package'), attributes.get('version'), 'reference model')
    return [[package, version, '; '.join(sorted(where))] for (package, version), where in sorted(found.items())]


def _provenance_table(processes) -> Table:
    rows = []
    for process, depth, link in processes:
        rows.append([depth, process.process_label or type(process).__name__, _type_name(process),
                     link.replace('__', '.'), _status(process), process.uuid])
    return Table('Provenance', ['depth', 'process', 'type', 'call link', 'state [exit status]', 'uuid'], rows,
                 caption='Every process of the run, depth first in call order (the depth is the call level).')


def _outputs_table(node) -> Table:
    from aiida.common.links import LinkType

    links = node.base.links.get_outgoing(link_type=(LinkType.RETURN, LinkType.CREATE)).all()
    rows = [[link.link_label.replace('__', '.'), link.node.__class__.__name__, link.node.uuid]
            for link in sorted(links, key=lambda x: x.link_label)]
    return Table('Outputs', ['output', 'type', 'uuid'], rows, caption='The outputs of the reported process.')


# ------------------------------------------------------------------------------------------------- the sections
def generic_section(node) -> list:
    """The fallback of a process without a registered section: each Dict output as a key/value table."""
    from aiida import orm
    from aiida.common.links import LinkType

    blocks = []
    links = node.base.links.get_outgoing(link_type=(LinkType.RETURN, LinkType.CREATE)).all()
    for link in sorted(links, key=lambda x: x.link_label):
        if isinstance(link.node, orm.Dict):
            blocks.append(Table(f'Output `{link.link_label.replace("__", ".")}`', ['key', 'value'],
                                dict_rows(link.node.get_dict()), caption=f'Dict {link.node.uuid}'))
    if not blocks:
        blocks.append(Text('No Dict outputs.'))
    return blocks


def _wants_fallback(node, is_root: bool) -> bool:
    from aiida import orm

    if is_root:  # the reported process always has a section (a CalcJob's: its Dict outputs)
        return True
    entry_point = entry_point_of(node) or ''
    return (isinstance(node, orm.WorkflowNode) and entry_point.startswith('sseff.')
            and not entry_point.endswith(_NO_FALLBACK_SUFFIXES))


def _section(node, is_root: bool, depth: int, link: str) -> ProcessReport | None:
    section = section_for(node)
    if section is None and not _wants_fallback(node, is_root):
        return None
    title = f'{node.process_label} ({_type_name(node)})'
    report = ProcessReport(title=title, entry_point=entry_point_of(node), uuid=node.uuid, call_link=link,
                           depth=depth, finished_ok=node.is_finished_ok)
    if section is None:
        report.blocks, report.generic = generic_section(node), True
    elif node.is_finished_ok:
        with figure_style():
            report.blocks = list(section(node))  # a section that fails on a finished-ok node is a bug: let it raise
    else:
        try:
            with figure_style():
                report.blocks = list(section(node))
        except Exception as exception:  # noqa: BLE001 - a failed process lacks outputs its section expects
            report.blocks = [Text(f'The section of this process could not be built (it did not finish ok: '
                                  f'{type(exception).__name__}: {exception}); its Dict outputs follow.')]
            report.blocks += generic_section(node)
            report.generic = True
    return report


def build_report(node) -> Report:
    """The report of a terminated process: header tables and the sections of it and its called WorkChains."""
    from aiida import orm

    if not isinstance(node, orm.ProcessNode):
        raise ReportError(f'<{node.pk}> is a {type(node).__name__}, not a process: report a workflow or calculation')
    if not node.is_terminated:
        raise ReportError(f'<{node.pk}> ({node.process_label}) has not terminated ({node.process_state.value}): '
                          f'report it when it has finished')
    processes = _walk(node)
    banner = ''
    if not node.is_finished_ok:
        banner = (f'This process did not finish ok: {_status(node)}'
                  + (f' — {node.exit_message}' if node.exit_message else '') + '. Sections show what was stored.')
    metadata = Table('Process', ['field', 'value'], [
        ['process', node.process_label],
        ['type', _type_name(node)],
        ['uuid', node.uuid],
        ['label', node.label or ''],
        ['state [exit status]', _status(node)],
        ['exit message', node.exit_message or ''],
        ['created (UTC)', node.ctime.astimezone(UTC).isoformat(timespec='seconds')],
        ['processes in the run', len(processes)],
    ])
    inputs = _inputs_table(node)
    given = {row[2] for row in inputs.rows}  # a code that is an input of the process already has its row
    inputs.rows.extend(row for row in _codes_rows(processes) if row[2] not in given)
    versions = Table('Software versions', ['package', 'version', 'recorded in'], _versions_rows(processes),
                     caption='As recorded by the nodes (aiida-core adds version.core/version.plugin to each '
                             'process; parsers add the program versions they read).')
    sections = []
    for process, depth, link in processes:
        section = _section(process, process is node or process.uuid == node.uuid, depth, link)
        if section is not None:
            sections.append(section)
    return Report(title=f'{node.process_label} {node.uuid}', uuid=node.uuid, finished_ok=node.is_finished_ok,
                  banner=banner, metadata=metadata, inputs=inputs, versions=versions,
                  provenance=_provenance_table(processes), outputs=_outputs_table(node), sections=sections)


# ------------------------------------------------------------------------------------------------- numbers, json
def format_number(value) -> str:
    """One format for every cell: integers as they are, floats with 4 significant digits (scientific below 1e-3 and
    from 1e5 on), None as '–', NaN/inf as 'n/a', booleans as yes/no."""
    if value is None:
        return '–'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return 'n/a'
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f'{value:.3e}'
        return f'{value:.4g}'
    if isinstance(value, list | tuple):
        return ', '.join(format_number(v) for v in value)
    return str(value)


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, 'tolist'):  # numpy scalars and arrays
        return _jsonable(value.tolist())
    return value


def _table_json(table: Table) -> dict:
    return {'title': table.title, 'columns': list(table.columns), 'rows': _jsonable(table.rows),
            'caption': table.caption}


def report_json(report: Report) -> dict:
    """The report's tables (all numbers as stored), texts and figure titles and data: what a comparison checks."""
    sections = []
    for section in report.sections:
        blocks = []
        for block in section.blocks:
            if isinstance(block, Table):
                blocks.append({'table': _table_json(block)})
            elif isinstance(block, Text):
                blocks.append({'text': block.markdown})
            elif isinstance(block, Figure):
                blocks.append({'figure': block.title, 'caption': block.caption, 'data': _jsonable(block.data)})
        sections.append({'title': section.title, 'entry_point': section.entry_point, 'uuid': section.uuid,
                         'call_link': section.call_link, 'depth': section.depth, 'generic': section.generic,
                         'blocks': blocks})
    return {'title': report.title, 'uuid': report.uuid, 'finished_ok': report.finished_ok, 'banner': report.banner,
            'header': [_table_json(table) for table in report.header_tables()], 'sections': sections}


# ------------------------------------------------------------------------------------------------------ HTML
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#1d1d1f;line-height:1.45}
h1{font-size:1.5em;border-bottom:2px solid #2c6e9b;padding-bottom:.3em}h2{font-size:1.25em;margin-top:1.8em;
color:#2c6e9b}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #ccd;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#eef3f8}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
caption{caption-side:bottom;text-align:left;color:#555;font-size:.92em;padding-top:.3em}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
.uuid{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.78em;white-space:nowrap}
.banner{background:#fde8e8;border:2px solid #c0392b;color:#8e1b10;padding:.7em 1em;font-weight:600}
.ok{background:#e6f4ea;border:1px solid #2e7d32;color:#1b5e20;padding:.5em 1em}
figure{margin:1em 0}figure img{max-width:100%}figcaption{color:#555;font-size:.92em}
nav ul{columns:2;font-size:.92em}.scroll{overflow-x:auto}.depth{color:#777}.generic{color:#777;font-style:italic}
"""


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r'`([^`]+)`', r'<code>\1</code>', text)
    text = re.sub(r'\*\*([^*]+)\*\*', r'<strong>\1</strong>', text)
    return re.sub(r'(?<![*\w])\*([^*]+)\*(?!\w)', r'<em>\1</em>', text)


def markdown_to_html(markdown: str) -> str:
    """The Markdown subset sections use: paragraphs, ``#`` headings, ``-`` lists, `code`, **strong**, *em*.

    Written here rather than depending on a Markdown package at run time for these five constructs; everything is
    HTML-escaped first, so a stored string cannot inject markup."""
    out, items, paragraph = [], [], []

    def flush():
        if paragraph:
            out.append(f'<p>{_inline(" ".join(paragraph))}</p>')
            paragraph.clear()
        if items:
            out.append('<ul>' + ''.join(f'<li>{_inline(item)}</li>' for item in items) + '</ul>')
            items.clear()

    for line in markdown.splitlines():
        stripped = line.strip()
        if not stripped:
            flush()
        elif stripped.startswith(('- ', '* ')):
            if paragraph:
                flush()
            items.append(stripped[2:])
        elif stripped.startswith('#'):
            flush()
            level = min(len(stripped) - len(stripped.lstrip('#')) + 2, 6)  # a section's # is below the report's h2
            out.append(f'<h{level}>{_inline(stripped.lstrip("#").strip())}</h{level}>')
        else:
            if items:
                flush()
            paragraph.append(stripped)
    flush()
    return '\n'.join(out)


_UUID = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')


def _cell(value) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return f'<td class="num">{html.escape(format_number(value))}</td>'
    if isinstance(value, str) and _UUID.match(value):
        return f'<td class="uuid">{value}</td>'
    return f'<td>{html.escape(format_number(value))}</td>'


def _table_html(table: Table, level: int = 3) -> str:
    head = ''.join(f'<th>{html.escape(str(c))}</th>' for c in table.columns)
    body = ''.join('<tr>' + ''.join(_cell(v) for v in row) + '</tr>' for row in table.rows)
    caption = f'<caption>{_inline(table.caption)}</caption>' if table.caption else ''
    return (f'<h{level}>{_inline(table.title)}</h{level}>\n<div class="scroll"><table>{caption}<thead><tr>{head}'
            f'</tr></thead><tbody>{body}</tbody></table></div>')


@contextlib.contextmanager
def figure_style():
    """matplotlib's default style while a section draws and while a figure is saved. Why: importing some libraries
    changes the global rcParams (mace.calculators sets ``font.size``), so the same nodes gave other PNG bytes in a
    process that had imported MACE than in a fresh one, and the report of an imported archive differed."""
    import matplotlib.style

    with matplotlib.style.context('default'):
        yield


def figure_png(figure) -> bytes:
    """A matplotlib figure as PNG bytes (no timestamp is written: the same figure gives the same bytes)."""
    buffer = io.BytesIO()
    with figure_style():
        figure.savefig(buffer, format='png', dpi=100, metadata={'Software': None})
    return buffer.getvalue()


def _figure_html(block: Figure) -> str:
    import matplotlib.pyplot as plt

    try:
        data = base64.b64encode(figure_png(block.figure)).decode()
    finally:
        plt.close(block.figure)
    caption = f'<figcaption>{_inline(block.caption)}</figcaption>' if block.caption else ''
    return (f'<h3>{_inline(block.title)}</h3>\n<figure><img alt="{html.escape(block.title)}" '
            f'src="data:image/png;base64,{data}">{caption}</figure>')


def _anchor(uuid: str) -> str:
    return f'p-{uuid}'


def render_html(report: Report) -> str:
    """One self-contained HTML page (inline CSS, figures as base64 PNG, no script, no network)."""
    section_uuids = {section.uuid for section in report.sections}
    parts = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
             f'<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>',
             f'<h1>aiida-sseff report: {html.escape(report.title)}</h1>']
    if report.banner:
        parts.append(f'<div class="banner">{html.escape(report.banner)}</div>')
    else:
        parts.append('<div class="ok">Finished ok. Every number below is read from the stored nodes of this run.'
                     '</div>')
    parts.append('<nav><h2>Contents</h2><ul>')
    for section in report.sections:
        parts.append(f'<li><a href="#{_anchor(section.uuid)}">{html.escape(section.title)}</a>'
                     f'{" <span class=generic>(outputs only)</span>" if section.generic else ""}</li>')
    parts.append('<li><a href="#provenance">Provenance</a></li></ul></nav>')
    for table in (report.metadata, report.inputs, report.versions):
        parts.append(_table_html(table, level=2))
    for section in report.sections:
        where = f'called as <code>{html.escape(section.call_link)}</code>, ' if section.call_link else ''
        parts.append(f'<section id="{_anchor(section.uuid)}"><h2>{html.escape(section.title)}</h2>'
                     f'<p class="depth">{where}call level {section.depth}, uuid <span class="uuid">{section.uuid}'
                     f'</span>{"" if section.finished_ok else " — <strong>did not finish ok</strong>"}</p>')
        for block in section.blocks:
            if isinstance(block, Text):
                parts.append(markdown_to_html(block.markdown))
            elif isinstance(block, Table):
                parts.append(_table_html(block))
            elif isinstance(block, Figure):
                parts.append(_figure_html(block))
            else:
                raise TypeError(f'a report section returned a {type(block).__name__}, not Text/Table/Figure')
        parts.append('</section>')
    # the provenance table links each process that has a section to it
    provenance = report.provenance
    head = ''.join(f'<th>{html.escape(c)}</th>' for c in provenance.columns)
    rows = []
    for depth, label, type_name, link, status, uuid in provenance.rows:
        name = html.escape(label)
        if uuid in section_uuids:
            name = f'<a href="#{_anchor(uuid)}">{name}</a>'
        rows.append(f'<tr>{_cell(depth)}<td>{"&nbsp;&nbsp;" * depth}{name}</td><td>{html.escape(type_name)}</td>'
                    f'<td>{html.escape(link)}</td><td>{html.escape(status)}</td>'
                    f'<td class="uuid">{uuid}</td></tr>')
    parts.append(f'<h2 id="provenance">{html.escape(provenance.title)}</h2><div class="scroll"><table><caption>'
                 f'{_inline(provenance.caption)}</caption><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
                 f'</tbody></table></div>')
    parts.append(_table_html(report.outputs, level=2))
    parts.append('<p class="depth">Made by <code>aiida-sseff report</code> from the provenance graph; nodes are '
                 'named by uuid (<code>verdi node show UUID</code>).</p></body></html>')
    return '\n'.join(parts) + '\n'
