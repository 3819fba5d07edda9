"""``aiida-sseff launch|show|plot dataset-size``: refusals that name the problem, before anything is stored."""

from aiida import orm
from aiida.engine import calcfunction
from click.testing import CliRunner

from aiida_sseff.cli import cmd_root


def _n_nodes() -> int:
    return orm.QueryBuilder().append(orm.Node).count()


def test_launch_refuses_a_wrong_code_before_storing(aiida_profile, engine_code, tmp_path, cu_al_structures):
    from ase.io import write

    structures = cu_al_structures(4)
    write(tmp_path / 'train.xyz', structures)
    write(tmp_path / 'cell.xyz', structures[0])
    before = _n_nodes()
    result = CliRunner().invoke(cmd_root, ['launch', 'dataset-size', str(tmp_path / 'train.xyz'),
                                           str(tmp_path / 'cell.xyz'), '--training-code', engine_code.uuid,
                                           '--no-daemon'])
    assert result.exit_code != 0 and 'expected a code of sseff.nep.train' in result.output
    result = CliRunner().invoke(cmd_root, ['launch', 'dataset-size', str(tmp_path / 'train.xyz'),
                                           str(tmp_path / 'cell.xyz'), '--training-code', engine_code.uuid,
                                           '--n-sizes', '1', '--no-daemon'])
    assert result.exit_code != 0 and '--n-sizes' in result.output
    assert _n_nodes() == before


@calcfunction
def _not_a_study(x: orm.Int) -> orm.Int:
    return orm.Int(x.value + 1)


def test_show_and_plot_refuse_other_processes(aiida_profile):
    _, node = _not_a_study.run_get_node(orm.Int(1))
    for command in ('show', 'plot'):
        result = CliRunner().invoke(cmd_root, [command, 'dataset-size', str(node.pk)])
        assert result.exit_code != 0 and 'not an sseff.study.dataset_size' in result.output
