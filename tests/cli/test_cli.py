"""The CLI on the test profile: setup is idempotent, data commands list/show/import/export."""

import numpy as np
from click.testing import CliRunner

from aiida_sseff.cli import cmd_root
from aiida_sseff.cli.data import data_sseff


def invoke(command, args):
    result = CliRunner().invoke(command, args, catch_exceptions=False)
    return result


def test_setup_is_idempotent(aiida_profile, aiida_localhost):
    first = invoke(cmd_root, ['setup', '--profile-name', aiida_profile.name])
    assert first.exit_code == 0, first.output
    assert 'Ready' in first.output
    from aiida import orm

    code = orm.load_code('sseff-engine@localhost')
    second = invoke(cmd_root, ['setup', '--profile-name', aiida_profile.name])
    assert second.exit_code == 0 and 'Created code' not in second.output
    assert orm.load_code('sseff-engine@localhost').pk == code.pk
    assert 'OMP_NUM_THREADS' in code.prepend_text
    assert orm.load_code('neppo@localhost').filepath_executable.name == 'neppo'


def test_dataset_import_show_export(aiida_profile, tmp_path):
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.io import read, write

    structures = []
    for seed in range(2):
        atoms = bulk('Cu', cubic=True)
        atoms.rattle(0.02, seed=seed)
        atoms.calc = EMT()
        atoms.get_forces(), atoms.get_stress()
        structures.append(atoms)
    source = tmp_path / 'in.xyz'
    write(source, structures)
    result = invoke(data_sseff, ['dataset', 'import', str(source)])
    assert result.exit_code == 0, result.output
    pk = int(result.output.split('<')[1].split('>')[0])
    listing = invoke(data_sseff, ['dataset', 'list'])
    assert str(pk) in listing.output and 'Cu' in listing.output
    shown = invoke(data_sseff, ['dataset', 'show', str(pk)])
    assert 'n_structures: 2' in shown.output
    target = tmp_path / 'out.xyz'
    assert invoke(data_sseff, ['dataset', 'export', str(pk), str(target)]).exit_code == 0
    back = read(target, ':')
    np.testing.assert_allclose(back[1].get_forces(), structures[1].get_forces(), atol=1e-7)


def test_dataset_import_refuses_unlabelled_with_reason(aiida_profile, tmp_path):
    from ase.build import bulk
    from ase.io import write

    source = tmp_path / 'plain.xyz'
    write(source, [bulk('Cu', cubic=True)])
    result = CliRunner().invoke(data_sseff, ['dataset', 'import', str(source)])
    assert result.exit_code != 0
    assert 'structure 0: missing energy' in result.output
    assert CliRunner().invoke(data_sseff, ['dataset', 'import', '--unlabelled', str(source)]).exit_code == 0


def test_model_import_and_show(aiida_profile, reference_dir):
    result = invoke(data_sseff, ['model', 'import', str(reference_dir / 'llzo' / 'nep25_zbl.txt')])
    assert result.exit_code == 0, result.output
    pk = result.output.split('<')[1].split('>')[0]
    shown = invoke(data_sseff, ['model', 'show', pk])
    assert "['Li', 'La', 'Zr', 'O']" in shown.output


def test_launch_refuses_missing_structure_file(aiida_profile, tmp_path):
    result = CliRunner().invoke(cmd_root, ['launch', 'pipeline', str(tmp_path / 'nothing.cif'), '--no-daemon'])
    assert result.exit_code != 0
    assert 'no file' in result.output


def test_model_import_of_a_torch_file_is_weights_only(aiida_profile, tmp_path):
    import torch

    state = {'r_max': torch.tensor(4.5), 'num_interactions': torch.tensor(1), 'atomic_numbers': torch.tensor([11, 17])}
    torch.save(state, tmp_path / 'safe.model')
    result = invoke(data_sseff, ['model', 'import', '--kind', 'mace', str(tmp_path / 'safe.model')])
    assert result.exit_code == 0, result.output
    assert '(Na Cl)' in result.output

    torch.save({'f': print}, tmp_path / 'unsafe.model')  # a function: a weights-only load never calls one
    result = CliRunner().invoke(data_sseff, ['model', 'import', '--kind', 'mace', str(tmp_path / 'unsafe.model')])
    assert result.exit_code != 0 and 'asks for builtins.print' in result.output and '--allow-pickle' in result.output
    result = CliRunner().invoke(data_sseff, ['model', 'import', '--kind', 'nep', '--allow-pickle',
                                             str(tmp_path / 'unsafe.model')])
    assert result.exit_code != 0 and 'MACE/torch files only' in result.output
