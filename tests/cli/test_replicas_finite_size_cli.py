"""The argument parsing of ``launch replicas`` and ``launch finite-size`` (labels, replications, numbers), and the
refusal of a process that is not the study ``show``/``plot`` were asked for."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from aiida_sseff.cli import cmd_root
from aiida_sseff.cli.cmd_finite_size import _numbers, _replications
from aiida_sseff.cli.cmd_replicas import dataset_label


def test_dataset_labels():
    assert dataset_label('gamma=data/g.xyz') == ('gamma', 'data/g.xyz')
    assert dataset_label('runs/dense-k.xyz') == ('dense_k', 'runs/dense-k.xyz')
    assert dataset_label('12.xyz') == ('dataset_12', '12.xyz')


def test_replications_and_numbers():
    assert _replications('1x1x1, 2X2x1') == [[1, 1, 1], [2, 2, 1]]
    with pytest.raises(click.BadParameter, match='`2x2` is not a replication'):
        _replications('1x1x1,2x2')
    assert _numbers('5, 10.5', '--run-lengths') == [5.0, 10.5]
    with pytest.raises(click.BadParameter, match='not a comma-separated list of numbers'):
        _numbers('5,ten', '--run-lengths')


def test_show_refuses_another_process(aiida_profile):
    from aiida import orm

    node = orm.WorkflowNode()
    node.set_process_type('aiida.workflows:sseff.diffusion')
    node.store()
    for command in (['show', 'replicas'], ['show', 'finite-size'], ['plot', 'replicas'], ['plot', 'finite-size']):
        result = CliRunner().invoke(cmd_root, [*command, str(node.pk)])
        assert result.exit_code != 0 and 'not an sseff.study' in result.output, result.output
