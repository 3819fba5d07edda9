"""The CLI on the test profile: setup is idempotent, data commands list/show/import/export."""

import numpy as np
import pytest
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
    from aiida_sseff.cli.cmd_setup import find_cp2k

    cp2k, reason = find_cp2k()
    if cp2k is None:
        assert f'Skipping the cp2k code: {reason}' in first.output
    else:  # Debian's cp2k + cp2k-data here: registered for the CP2K labeller
        code = orm.load_code('cp2k@localhost')
        assert str(code.filepath_executable) == cp2k and code.default_calc_job_plugin == 'sseff.cp2k'
    # the MACE trainer (mace-torch is in the dev extras) and, where LAMMPS and aiida-lammps are installed, LAMMPS
    assert orm.load_code('sseff-mace@localhost').default_calc_job_plugin == 'sseff.mace.train'
    if 'Skipping the lammps code' not in first.output:
        assert orm.load_code('lammps@localhost').default_calc_job_plugin == 'lammps.raw'


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


def test_launch_covers_every_workchain():
    result = invoke(cmd_root, ['launch', '--help'])
    for command in ('sample', 'label', 'train', 'diffusion', 'pipeline', 'reference-quality'):
        assert f'  {command} ' in result.output, command


@pytest.mark.parametrize('args, message', [
    (['--labeller', 'cp2k'], "labeller `cp2k` needs its code"),
    (['--labeller', 'cp2k', '--code', 'nothing@nowhere'], 'no code `nothing@nowhere`'),
    (['--labeller', 'cp2k', '--code', 'sseff-engine@localhost'],
     'code `sseff-engine@localhost` runs `sseff.engine.md`, expected a code of sseff.cp2k'),
    (['--mobile-species', 'Xx'], '`Xx` is not a chemical element symbol'),
    (['--mobile-species', 'Na'], 'holds no Na; it holds Ge, Li, P, S'),
    (['--diffusion-code', 'sseff-engine@localhost'], 'needs a trained model: give --training-code'),
    (['--surrogate-model', '999999999'], 'no node `999999999`'),
    (['--labeller', 'vasp', '--surrogate-model', '1', '--code', 'sseff-engine@localhost'],
     'runs `sseff.engine.md`, expected a code of vasp.vasp'),
])
def test_launch_pipeline_refuses_bad_options(aiida_profile, aiida_localhost, args, message):
    _engine_code_on_localhost()
    result = CliRunner().invoke(cmd_root, ['launch', 'pipeline', '--no-daemon', *args])
    assert result.exit_code != 0
    assert message in ' '.join(result.output.split()), result.output


def _engine_code_on_localhost():
    """`sseff-engine@localhost`, the CLI's default engine code (setup creates it)."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from aiida_sseff.cli.cmd_setup import ensure_engine_code, ensure_localhost

    try:
        return orm.load_code('sseff-engine@localhost')
    except NotExistent:
        return ensure_engine_code(ensure_localhost())


def test_launch_train_refuses_unlabelled_dataset(aiida_profile, tmp_path):
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / 'plain.xyz', [bulk('Cu', cubic=True)])
    result = CliRunner().invoke(cmd_root, ['launch', 'train', str(tmp_path / 'plain.xyz'), '--no-daemon'])
    assert result.exit_code != 0 and 'structure 0: missing energy' in result.output
    result = CliRunner().invoke(cmd_root, ['launch', 'train', 'no-such-thing', '--no-daemon'])
    assert result.exit_code != 0 and '`no-such-thing` is neither a file nor the pk/uuid of a dataset' in result.output


@pytest.mark.slow
def test_launch_pipeline_with_cp2k_labels_end_to_end(aiida_profile, cp2k_code, aiida_code_installed, tmp_path):
    """`aiida-sseff launch pipeline --labeller cp2k`: CHGNet MD samples a 12-atom Li2O cell, real CP2K labels four
    structures (Γ only, SZV basis: labelling.yaml fast), neppo trains on them, the engine runs the trained model's
    MD; every stage finishes and the labels are CP2K's (the dataset's energies are the CalcJobs' own)."""
    import shutil
    import sys
    from pathlib import Path

    import yaml
    from aiida import orm
    from ase.io import write
    from ase.spacegroup import crystal

    _engine_code_on_localhost()
    neppo = aiida_code_installed(label='neppo-cli', default_calc_job_plugin='sseff.nep.train',
                                 filepath_executable=shutil.which('neppo', path=str(Path(sys.executable).parent)))
    # antifluorite Li2O, experimental a = 4.611 Å, conventional cell (12 atoms)
    li2o = crystal(['O', 'Li'], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=225, cellpar=[4.61] * 3 + [90] * 3)
    write(tmp_path / 'Li2O.cif', li2o)
    overrides = {
        'sampling': {'md': {'temperatures': [600.0, 1200.0],
                            'parameters': {'n_equilibration_steps': 5, 'n_steps': 20, 'snapshot_interval': 5,
                                           'thermo_interval': 5, 'trajectory_interval': 5}},
                     'perturbations': {'n_rattles': 1, 'n_strains': 1},
                     'selection': {'n_structures': 4}},
        'labelling': {'batch_size': 2},
        'training': {'n_replicas': 1, 'parameters': {'generation': 40, 'zbl': 2.0},
                     'program_parameters': {'neppo': {'output_interval': 20, 'batch': 2}}},
        'diffusion': {'temperatures': [1500.0, 2000.0],
                      'md': {'equilibration_ps': 0.02, 'production_ps': 0.2, 'sample_interval_fs': 10.0},
                      # the wiring is tested, not a D: a 2-structure model's MSD is mostly vibration
                      'analysis': {'min_msd_A2': 0.05}},
        'min_cell_width_factor': 0.0,  # the 12-atom cell as it is: a short MD, not a converged D
    }
    (tmp_path / 'overrides.yaml').write_text(yaml.safe_dump(overrides))
    result = CliRunner().invoke(cmd_root, [
        'launch', 'pipeline', str(tmp_path / 'Li2O.cif'), '--labeller', 'cp2k', '--code', cp2k_code.full_label,
        '--training-code', neppo.full_label, '--diffusion-code', 'sseff-engine@localhost', '--mobile-species', 'Li',
        '--overrides', str(tmp_path / 'overrides.yaml'), '--no-daemon'], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    pk = int(result.output.split('pipeline <')[-1].split('>')[0])
    node = orm.load_node(pk)
    assert node.is_finished_ok, (node.exit_status, node.exit_message, result.output)
    for stage in ('sampling', 'labelling', 'training', 'diffusion'):
        child = node.base.links.get_outgoing(link_label_filter=stage).one().node
        assert child.is_finished_ok, (stage, child.exit_message)
    labelling = node.base.links.get_outgoing(link_label_filter='labelling').one().node
    bases = [n for n in labelling.called if n.process_label == 'Cp2kBaseWorkChain']
    dataset = node.outputs.labelling.dataset
    assert dataset.n_structures == 4 and len(bases) == 4
    # the labels are CP2K's: the energy of each structure is that of the last CP2K run of its restart wrapper
    energies = {int(base.label.split('s')[-1]): base.outputs.labels.get_array('energy')[0] for base in bases}
    for atoms in dataset.get_ase():
        assert atoms.get_potential_energy() == pytest.approx(energies[atoms.info['source_index']], rel=1e-7)
    assert node.outputs.diffusion.results['Ea_eV'] is not None
