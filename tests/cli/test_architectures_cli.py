"""``aiida-sseff launch|show|plot architectures``: refusals that name the problem, before anything is stored."""

import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_sseff.cli import cmd_root


@pytest.fixture
def llzo_files(reference_dir, tmp_path):
    from ase.io import read, write

    frames = read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index='0:10')
    write(tmp_path / 'train.xyz', frames)
    write(tmp_path / 'cell.xyz', frames[0])
    return str(tmp_path / 'train.xyz'), str(tmp_path / 'cell.xyz')


def _n_nodes() -> int:
    return orm.QueryBuilder().append(orm.Node).count()


def test_launch_architectures_refusals(aiida_profile, engine_code, neppo_code, llzo_files):
    before = _n_nodes()
    dataset, cell = llzo_files
    result = CliRunner().invoke(cmd_root, ['launch', 'architectures', dataset, cell, '--architectures', 'NEP,SchNet',
                                           '--nep-code', neppo_code.uuid, '--engine-code', engine_code.uuid,
                                           '--no-daemon'])
    assert result.exit_code != 0
    assert 'unknown architecture(s) SchNet; the fast protocol has NEP, qNEP, MACE_T0_I, MACE_T1_E' in result.output
    result = CliRunner().invoke(cmd_root, ['launch', 'architectures', dataset, cell, '--architectures', 'NEP',
                                           '--reference', 'qNEP', '--nep-code', neppo_code.uuid,
                                           '--engine-code', engine_code.uuid, '--no-daemon'])
    assert result.exit_code != 0 and '`qNEP` is not among the architectures (NEP)' in result.output
    result = CliRunner().invoke(cmd_root, ['launch', 'architectures', dataset, cell, '--architectures', 'NEP',
                                           '--nep-code', engine_code.uuid, '--engine-code',
                                           engine_code.uuid, '--no-daemon'])
    assert result.exit_code != 0 and 'expected a code of sseff.nep.train' in result.output
    assert _n_nodes() == before  # not even the dataset was stored


def test_show_architectures_refuses_other_processes(aiida_profile):
    from aiida.orm import WorkflowNode

    node = WorkflowNode().store()
    result = CliRunner().invoke(cmd_root, ['show', 'architectures', str(node.pk)])
    assert result.exit_code != 0 and 'not an sseff.study.architectures' in result.output
