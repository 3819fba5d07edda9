"""``sseff.gpumd`` input writing: prepare_for_submission into a sandbox, run.in and model.xyz compared line by line.

GPUMD itself cannot run here (a CUDA program): the parser is tested on real GPUMD output in
tests/parsers/test_gpumd.py.
"""

import numpy as np
import pytest
from aiida import orm
from aiida.common.folders import SandboxFolder
from aiida.plugins import CalculationFactory
from ase import Atoms

from aiida_sseff.data.model import NepModel

GpumdCalculation = CalculationFactory('sseff.gpumd')


@pytest.fixture
def generate_calc_job():
    """aiida-quantumespresso's ``generate_calc_job``: instantiate the process and run prepare_for_submission."""

    def _generate(folder, inputs, return_process=False):
        from aiida.engine.utils import instantiate_process
        from aiida.manage import get_manager

        process = instantiate_process(get_manager().get_runner(), GpumdCalculation, **inputs)
        if return_process:
            return process
        return process.prepare_for_submission(folder)

    return _generate


@pytest.fixture
def gpumd_code(aiida_code_installed):
    """A code entry for `gpumd` (never run here; /bin/true stands in for the executable path)."""
    return aiida_code_installed(label='gpumd', default_calc_job_plugin='sseff.gpumd', filepath_executable='/bin/true')


@pytest.fixture
def nep_model(tmp_path):
    """An untrained NEP4 model for O, La, Li (type order of the file: O La Li), written by our own writer."""
    from aiida_sseff.analysis.descriptors import write_descriptor_model

    return NepModel(write_descriptor_model(tmp_path / 'nep.txt', ['O', 'La', 'Li'], n_max=(2, 2),
                                           basis_size=(2, 2), l_max=(2, 0, 0)))


def small_structure():
    atoms = Atoms('OLiLaLiO', cell=[[6.0, 0, 0], [0.5, 6.5, 0], [0, 0, 7.0]], pbc=True,
                  scaled_positions=[[0, 0, 0], [0.25, 0.25, 0.25], [0.5, 0.5, 0.5], [0.75, 0.75, 0.75],
                                    [0.5, 0, 0.5]])
    return orm.StructureData(ase=atoms)


PARAMETERS = {
    'temperature': 1000,
    'time_step_fs': 1.0,
    'ensemble': 'nvt_bdp',
    'equilibration_steps': 10_000,
    'production_steps': 100_000,
    'velocity_seed': 3,
    'dump_thermo': 1000,
    'compute_msd': {'sample_interval': 10, 'n_correlation': 5000},
}


def base_inputs(code, model, **changes):
    inputs = {
        'code': code,
        'structure': small_structure(),
        'model': model,
        'parameters': orm.Dict(PARAMETERS),
        'metadata': {'options': {'resources': {'num_machines': 1}}},
    }
    inputs.update(changes)
    return inputs


def test_run_in_and_model_xyz(aiida_profile, generate_calc_job, gpumd_code, nep_model):
    with SandboxFolder() as folder:
        calc_info = generate_calc_job(folder, base_inputs(gpumd_code, nep_model))
        run_in = folder.get_abs_path('run.in')
        model_xyz = folder.get_abs_path('model.xyz')
        with open(run_in) as handle:
            assert handle.read().splitlines() == [
                'potential nep.txt',
                'velocity 1000 seed 3',
                'time_step 1',
                '',
                'ensemble nvt_bdp 1000 1000 100',
                'dump_thermo 1000',
                'run 10000',
                '',
                'ensemble nvt_bdp 1000 1000 100',
                'dump_thermo 1000',
                'compute_msd 10 5000 group 0 0',
                'run 100000',
            ]
        with open(model_xyz) as handle:
            lines = handle.read().splitlines()
    assert lines[0] == '5'
    header = lines[1]
    # GPUMD's model.xyz keys (case-insensitive): lattice, properties species/pos/mass/group, pbc -- nothing else
    assert header == 'Lattice="6.0 0.0 0.0 0.5 6.5 0.0 0.0 0.0 7.0" Properties=species:S:1:pos:R:3:mass:R:1:group:I:1 ' \
                     'pbc="T T T"'
    # one grouping method: Li (mobile) is group 0, the others follow the model's type order O, La
    groups = {line.split()[0]: int(line.split()[-1]) for line in lines[2:]}
    assert groups == {'Li': 0, 'O': 1, 'La': 2}
    positions = np.array([[float(x) for x in line.split()[1:4]] for line in lines[2:]])
    np.testing.assert_allclose(positions, small_structure().get_ase().positions, atol=1e-8)
    # the model is copied (not uploaded from a path on this machine), the outputs retrieved
    assert calc_info.local_copy_list == [(nep_model.uuid, nep_model.filename, 'nep.txt')]
    # run.in (the statistics of msd.out), and what a run stopped early leaves for its continuation
    assert set(calc_info.retrieve_list) == {'log', 'gpumd.err', 'run.in', 'thermo.out', 'msd.out', 'restart.xyz',
                                            'msd_step*.out'}
    assert calc_info.codes_info[0].stdout_name == 'log'


def test_version_from_code_extra_and_dump(aiida_profile, generate_calc_job, gpumd_code, nep_model):
    """The dump syntax follows the GPUMD version: the code's extra, unless the input says otherwise."""
    parameters = dict(PARAMETERS, equilibration_steps=0, dump_thermo=None,
                      compute_msd={'sample_interval': 100, 'n_correlation': 1000, 'all_groups': True},
                      dump={'interval': 1000, 'filename': 'traj.xyz', 'properties': ['unwrapped_position'],
                            'mobile_only': True})
    gpumd_code.base.extras.set('gpumd_version', 'dev')
    try:
        with SandboxFolder() as folder:
            info = generate_calc_job(folder, base_inputs(gpumd_code, nep_model, parameters=orm.Dict(parameters)))
            text = folder.get_abs_path('run.in')
            lines = open(text).read().splitlines()
        assert lines[-3:] == ['compute_msd 100 1000 all_groups 0', 'dump_xyz 1000 traj.xyz group 0 0 unwrapped_position',
                              'run 100000']
        assert 'traj.xyz' in info.retrieve_list
        with SandboxFolder() as folder:
            generate_calc_job(folder, base_inputs(gpumd_code, nep_model, parameters=orm.Dict(parameters),
                                                  gpumd_version=orm.Str('5.6')))
            lines = open(folder.get_abs_path('run.in')).read().splitlines()
        assert lines[-2] == 'dump_xyz 0 0 1000 traj.xyz unwrapped_position'  # <= 5.6 argument order
    finally:
        gpumd_code.base.extras.delete('gpumd_version')


def test_restart_replaces_model_xyz_and_keeps_velocities(aiida_profile, generate_calc_job, gpumd_code, nep_model,
                                                         tmp_path):
    """A continuation: the restart.xyz given becomes model.xyz byte for byte, run.in has no `velocity` line (GPUMD
    then keeps the file's velocities), and dump_restart saves the MSD at the restart steps (save_every)."""
    restart = tmp_path / 'restart.xyz'
    restart.write_text('5\npbc="T T T" Lattice="6 0 0 0.5 6.5 0 0 0 7" '
                       'Properties=species:S:1:pos:R:3:mass:R:1:vel:R:3:group:I:1\n'
                       + ''.join(f'{s} {i} 0 0 1.0 0.01 0 0 {g}\n' for i, (s, g) in
                                 enumerate(zip(['O', 'Li', 'La', 'Li', 'O'], [1, 0, 2, 0, 1], strict=True))))
    parameters = dict(PARAMETERS, equilibration_steps=0, dump_restart=10_000)
    inputs = base_inputs(gpumd_code, nep_model, parameters=orm.Dict(parameters),
                         restart=orm.SinglefileData(restart))
    with SandboxFolder() as folder:
        generate_calc_job(folder, inputs)
        lines = open(folder.get_abs_path('run.in')).read().splitlines()
        model_xyz = open(folder.get_abs_path('model.xyz')).read()
    assert model_xyz == restart.read_text()
    assert not any(line.startswith('velocity') for line in lines)
    assert 'compute_msd 10 5000 group 0 0 save_every 10000' in lines and 'dump_restart 10000' in lines
    # a restart interval between two MSD samples could never be matched by a saved MSD
    inputs['parameters'] = orm.Dict(dict(parameters, dump_restart=10_005))
    with SandboxFolder() as folder, pytest.raises(ValueError, match='multiple of compute_msd.sample_interval'):
        generate_calc_job(folder, inputs)


def test_qnep_model_gets_kspace(aiida_profile, generate_calc_job, gpumd_code, tmp_path):
    """A model whose header says nep4_charge1 gets `kspace pppm` (GPUMD's default solver, written out) right after
    the potential, or `kspace ewald` when asked."""
    from aiida_sseff.analysis.descriptors import write_descriptor_model

    model = NepModel(write_descriptor_model(tmp_path / 'nep.txt', ['O', 'La', 'Li'], n_max=(2, 2),
                                            basis_size=(2, 2), l_max=(2, 0, 0)))
    # the header attribute is what the CalcJob reads (set by read_nep_attributes from the file's first token)
    model.base.attributes.set('model_header', 'nep4_charge1')
    with SandboxFolder() as folder:
        generate_calc_job(folder, base_inputs(gpumd_code, model))
        lines = open(folder.get_abs_path('run.in')).read().splitlines()
    assert lines[:2] == ['potential nep.txt', 'kspace pppm']
    inputs = base_inputs(gpumd_code, model)
    inputs['parameters'] = orm.Dict(dict(inputs['parameters'].get_dict(), kspace='ewald'))
    with SandboxFolder() as folder:
        generate_calc_job(folder, inputs)
        lines = open(folder.get_abs_path('run.in')).read().splitlines()
    assert lines[:2] == ['potential nep.txt', 'kspace ewald']


@pytest.mark.parametrize('changes, match', [
    ({'parameters': {'temperature': 1000}}, '`production_steps` is required'),
    ({'parameters': dict(PARAMETERS, thermostat='x')}, "unknown key"),
    ({'parameters': dict(PARAMETERS, compute_msd={'sample_interval': 100, 'n_correlation': 5000})},
     'exceeds the 100000 production steps'),
    ({'parameters': dict(PARAMETERS, kspace='ewald')}, 'kspace is for charge-aware'),
    ({'parameters': dict(PARAMETERS, ensemble='nvt_xyz')}, "ensemble 'nvt_xyz' not supported"),
    ({'mobile_species': 'Na'}, 'holds no Na'),
])
def test_inputs_refused_before_submission(aiida_profile, generate_calc_job, gpumd_code, nep_model, changes, match):
    changes = {key: orm.Dict(value) if key == 'parameters' else orm.Str(value) for key, value in changes.items()}
    with SandboxFolder() as folder, pytest.raises(ValueError, match=match):
        generate_calc_job(folder, base_inputs(gpumd_code, nep_model, **changes))


def test_unknown_element_refused(aiida_profile, generate_calc_job, gpumd_code, tmp_path):
    from aiida_sseff.analysis.descriptors import write_descriptor_model

    model = NepModel(write_descriptor_model(tmp_path / 'nep.txt', ['O', 'Li'], n_max=(2, 2), basis_size=(2, 2),
                                            l_max=(2, 0, 0)))
    with SandboxFolder() as folder, pytest.raises(ValueError, match='does not know the element'):
        generate_calc_job(folder, base_inputs(gpumd_code, model))
