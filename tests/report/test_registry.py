"""The section registry: one section per entry point, found from a node's process_type."""

import pytest

from aiida_sseff.report.registry import entry_point_of, register_section, section_for


class _Node:
    def __init__(self, process_type):
        self.process_type = process_type


def test_section_found_by_entry_point():
    @register_section('sseff.test.registry_a')
    def section(node):
        return []

    assert entry_point_of(_Node('aiida.workflows:sseff.test.registry_a')) == 'sseff.test.registry_a'
    assert section_for(_Node('aiida.workflows:sseff.test.registry_a')) is section
    assert section_for(_Node('aiida.workflows:sseff.test.unknown')) is None
    assert section_for(_Node(None)) is None


def test_second_section_for_one_entry_point_is_refused():
    @register_section('sseff.test.registry_b')
    def first(node):
        return []

    with pytest.raises(ValueError, match='registered twice'):
        @register_section('sseff.test.registry_b')
        def second(node):
            return []
