"""The report renderer on small hand-made process nodes: call order, the generic fallback, the banner of a failed
process, refusals, number formatting and escaping (the real-workflow round trip is in test_roundtrip.py)."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.common.links import LinkType
from plumpy import ProcessState

from aiida_sseff.report import Table, Text, register_section
from aiida_sseff.report.render import (
    ReportError,
    build_report,
    format_number,
    markdown_to_html,
    render_html,
    report_json,
)


def _workflow(entry_point: str, exit_status: int | None = 0, caller=None, call_label='CALL', outputs=None):
    node = orm.WorkflowNode()
    node.set_process_type(f'aiida.workflows:{entry_point}')
    node.set_process_label(entry_point.rsplit('.', 1)[-1].title() + 'WorkChain')
    if exit_status is None:
        node.set_process_state(ProcessState.RUNNING)
    else:
        node.set_process_state(ProcessState.FINISHED)
        node.set_exit_status(exit_status)
    node.base.links.add_incoming(orm.Int(3).store(), LinkType.INPUT_WORK, 'n_replicas')
    if caller is not None:
        node.base.links.add_incoming(caller, LinkType.CALL_WORK, call_label)
    node.store()
    creator = orm.CalcFunctionNode()
    creator.set_process_state(ProcessState.FINISHED)
    creator.set_exit_status(0)
    creator.store()
    for label, value in (outputs or {}).items():
        value.base.links.add_incoming(creator, LinkType.CREATE, label)
        value.store()
        value.base.links.add_incoming(node, LinkType.RETURN, label)
    return node


@register_section('sseff.test.render_child')
def _child_section(node):
    return [Text('child *section*'), Table('child table', ['x', 'y'], [[1, node.outputs.numbers['y']]])]


def test_format_number():
    assert format_number(3) == '3'
    assert format_number(0.30012345) == '0.3001'
    assert format_number(1.234e-5) == '1.234e-05'
    assert format_number(123456.0) == '1.235e+05'
    assert format_number(0.0) == '0'
    assert format_number(float('nan')) == 'n/a'
    assert format_number(None) == '–'
    assert format_number(True) == 'yes'
    assert format_number([1, 2.5]) == '1, 2.5'


def test_markdown_is_escaped():
    html = markdown_to_html('# Head\nsome `code` and **bold** <script>alert(1)</script>\n\n- one\n- *two*')
    assert '<script>' not in html and '&lt;script&gt;' in html
    assert '<h3>Head</h3>' in html and '<code>code</code>' in html and '<strong>bold</strong>' in html
    assert '<ul><li>one</li><li><em>two</em></li></ul>' in html


def test_sections_in_call_order_with_generic_fallback(aiida_profile):
    """The root (no section: its Dict outputs), then its children in call order: one with a registered section,
    one restart wrapper (no section, no fallback: its numbers are its caller's)."""
    root = _workflow('sseff.test.render_root', outputs={'summary': orm.Dict({'a': {'b': 1.5}, 'n': 2})})
    first = _workflow('sseff.test.render_child', caller=root, call_label='first',
                      outputs={'numbers': orm.Dict({'y': 0.25})})
    _workflow('sseff.test.render.base', caller=root, call_label='second')
    report = build_report(root)
    assert [s.uuid for s in report.sections] == [root.uuid, first.uuid]
    assert report.sections[0].generic and not report.sections[1].generic
    data = report_json(report)
    generic_table = data['sections'][0]['blocks'][0]['table']
    assert generic_table['rows'] == [['a.b', 1.5], ['n', 2]]
    assert data['sections'][1]['blocks'][1]['table']['rows'] == [[1, 0.25]]
    assert [row[3] for row in data['header'][3]['rows']] == ['', 'first', 'second']  # call links, in call order
    html = render_html(report)
    assert report.banner == '' and 'Finished ok' in html
    assert f'href="#p-{first.uuid}"' in html and 'child <em>section</em>' in html
    assert f'<{root.pk}>' not in html  # nodes are named by uuid only: the same page after an archive import


def test_failed_process_gets_a_banner_and_its_outputs(aiida_profile):
    """A failed sseff.diffusion has no `results`: its section cannot be built, the report says so, shows the Dict
    outputs it has and a visible banner, instead of refusing."""
    node = _workflow('sseff.diffusion', exit_status=420, outputs={'runs__T300K_r0': orm.Dict({'diffusive': False})})
    report = build_report(node)
    assert 'did not finish ok' in report.banner and '[420]' in report.banner
    assert report.sections[0].generic
    html = render_html(report)
    assert 'class="banner"' in html and 'could not be built' in html and 'runs.T300K_r0' in html


def test_refusals(aiida_profile):
    with pytest.raises(ReportError, match='has not terminated'):
        build_report(_workflow('sseff.test.render_root', exit_status=None))
    with pytest.raises(ReportError, match='not a process'):
        build_report(orm.Int(1).store())


def test_cli_writes_the_report_and_refuses_a_running_process(aiida_profile, tmp_path):
    import json

    from click.testing import CliRunner

    from aiida_sseff.cli import cmd_root

    node = _workflow('sseff.test.render_root', outputs={'summary': orm.Dict({'n': 2})})
    html, tables = tmp_path / 'r.html', tmp_path / 'r.json'
    result = CliRunner().invoke(cmd_root, ['report', node.uuid, '-o', str(html), '--json', str(tables)])
    assert result.exit_code == 0, result.output
    assert str(html.resolve()) in result.output and 'Open it in a browser' in result.output
    assert json.loads(tables.read_text())['sections'][0]['blocks'][0]['table']['rows'] == [['n', 2]]
    assert html.read_text().startswith('<!DOCTYPE html>')
    running = _workflow('sseff.test.render_root', exit_status=None)
    result = CliRunner().invoke(cmd_root, ['report', str(running.pk), '-o', str(tmp_path / 'x.html')])
    assert result.exit_code != 0 and 'has not terminated' in result.output
    assert not (tmp_path / 'x.html').exists()  # nothing half-written
