"""``sseff.gpumd.base`` (GpumdBaseWorkChain): a run stopped by its wall time continues from GPUMD's restart.xyz and
the segments' MSDs are combined by their own time origins; the step-doubling of a halved time step.

The MD is real: the GPUMD stand-in (tests/standins/gpumd_standin.py: CPUNEP + ASE, GPUMD's files) on the 192-atom
LLZO cell with the real NEP25-ZBL model. A cluster's wall time is emulated by a wrapper that stops the first segment
(the one whose run.in sets velocities) after a given number of production steps, as a kill there would: the log
lacks `Finished running GPUMD`, msd.out is never written, and what `compute_msd … save_every n` had saved at that
step is `msd_step<n>.out` (the stand-in's msd.out of exactly those steps), next to the last restart.xyz.
"""

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_sseff.workflows.gpumd import GpumdBaseWorkChain, halved_time_step, restart_interval

PARAMETERS = {
    'temperature': 1500, 'time_step_fs': 2.0, 'ensemble': 'nvt_bdp', 'equilibration_steps': 0,
    'production_steps': 200, 'velocity_seed': 3, 'dump_thermo': 50,
    # 40 samples, Nc = 10 → 31 origins in one piece; restarts every max(10 % of 200, Nc × 5) = 50 steps
    'compute_msd': {'sample_interval': 5, 'n_correlation': 10},
    'dump': {'interval': 5, 'properties': ['unwrapped_position']},
}


def test_restart_interval_and_halved_time_step():
    # 10 % of 200 steps = 20 < Nc × sample interval = 50: GPUMD has no MSD to save before step 50
    assert restart_interval(PARAMETERS, 0.1) == 50
    assert restart_interval({**PARAMETERS, 'production_steps': 10_000}, 0.1) == 1000
    assert restart_interval({**PARAMETERS, 'production_steps': 10_030}, 0.1) == 1005  # 1003 up to a multiple of 5
    halved = halved_time_step({**PARAMETERS, 'temperature_coupling': 50, 'dump_restart': 50})
    # the same physical run: 1 fs steps, every interval in steps doubled (0.4 ps, MSD every 10 fs, Nc samples kept)
    assert halved['time_step_fs'] == 1.0 and halved['production_steps'] == 400 and halved['dump_thermo'] == 100
    assert halved['compute_msd'] == {'sample_interval': 10, 'n_correlation': 10}
    assert halved['dump']['interval'] == 10 and halved['temperature_coupling'] == 100 and halved['dump_restart'] == 100
    assert halved['temperature'] == 1500 and PARAMETERS['time_step_fs'] == 2.0  # the input is not changed


@pytest.fixture
def killed_standin(gpumd_standin, tmp_path):
    """A `gpumd` whose first segment is stopped after `stop` production steps (see the module docstring)."""

    def _make(stop: int):
        script = tmp_path / f'gpumd-killed-at-{stop}'
        # a stop before Nc samples: GPUMD would refuse `run <stop>` with that compute_msd, and a kill there leaves
        # no MSD anyway, so the line goes
        drop_msd = "sed -i '/^compute_msd/d' run.in" if stop < 50 else ''
        script.write_text(f'''#!/bin/sh
if ! grep -q '^velocity' run.in; then exec "{gpumd_standin}"; fi
cp run.in run.in.asked
sed -i '$s/^run .*/run {stop}/' run.in
{drop_msd}
"{gpumd_standin}" | grep -v 'Finished running GPUMD'
mv run.in.asked run.in
test -f msd.out && mv msd.out msd_step{stop}.out
exit 0
''')
        script.chmod(0o755)
        return script

    return _make


@pytest.fixture
def llzo_case(aiida_profile, reference_dir):
    from ase.io import read

    from aiida_sseff.data.model import NepModel

    atoms = read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index=0)  # Li56 La24 Zr16 O96
    atoms.calc = None
    return orm.StructureData(ase=atoms), NepModel(reference_dir / 'llzo' / 'nep25_zbl.txt')


def _builder(code, structure, model):
    builder = GpumdBaseWorkChain.get_builder()
    builder.gpumd.code = code
    builder.gpumd.structure = structure
    builder.gpumd.model = model
    builder.gpumd.parameters = orm.Dict(PARAMETERS)
    builder.gpumd.metadata.options = {'resources': {'num_machines': 1}, 'max_wallclock_seconds': 600}
    return builder


@pytest.mark.slow
@pytest.mark.reference
def test_walltime_stop_continues_from_restart_and_combines_msd(llzo_case, killed_standin, aiida_code_installed,
                                                               aiida_localhost):
    """Stopped after 100 of 200 steps: the continuation runs the other 100 from restart.xyz, and the MSD is the
    origin-weighted mean of the two segments (20 samples each, Nc = 10 → 11 + 11 origins; 9 lost to the restart)."""
    aiida_localhost.set_minimum_job_poll_interval(0.0)
    code = aiida_code_installed(default_calc_job_plugin='sseff.gpumd', filepath_executable=str(killed_standin(100)))
    results, node = run_get_node(_builder(code, *llzo_case))
    assert node.is_finished_ok, node.exit_message
    first, second = sorted((c for c in node.called if c.process_label == 'GpumdCalculation'), key=lambda c: c.ctime)
    assert first.exit_status == first.process_class.exit_codes.ERROR_MD_INCOMPLETE.status
    assert first.outputs.msd.base.attributes.get('steps_completed') == 100
    run_in = second.base.repository.get_object_content('run.in').splitlines()
    # the continuation: the remaining 100 steps, velocities from restart.xyz (no `velocity` line), restarts kept
    assert run_in[-1] == 'run 100' and not any(line.startswith('velocity') for line in run_in)
    assert 'dump_restart 50' in run_in
    assert second.inputs.restart.get_content() == first.outputs.restart.get_content()
    msd = results['msd']
    assert msd.base.attributes.get('n_time_origins') == [11, 11]
    m1, m2 = first.outputs.msd.get_array('msd'), second.outputs.msd.get_array('msd')
    np.testing.assert_allclose(msd.get_array('msd'), (11 * m1 + 11 * m2) / 22, rtol=1e-12)
    assert msd.creator.process_label == 'combine_msd_segments'
    # the trajectory is continuous across the restart: the first frame of the continuation is 5 steps (10 fs)
    # after the last saved state, so every atom moved less than 0.5 Å (wrapped coordinates, %g-rounded in restart.xyz)
    before = first.outputs.restart.get_content().splitlines()[2:]
    restart_positions = np.array([[float(x) for x in line.split()[1:4]] for line in before])
    after = second.outputs.trajectory.get_array('positions')[0]
    cell = np.array(llzo_case[0].cell)
    delta = after - restart_positions
    delta -= np.round(delta @ np.linalg.inv(cell)) @ cell
    assert np.linalg.norm(delta, axis=1).max() < 0.5
    assert second.outputs.msd_check['consistent'] and second.outputs.msd_check['checked']


@pytest.mark.slow
@pytest.mark.reference
def test_stopped_before_the_first_restart_file(llzo_case, killed_standin, aiida_code_installed, aiida_localhost):
    """Stopped after 30 steps, before the first restart at step 50: nothing to continue from → exit 310."""
    aiida_localhost.set_minimum_job_poll_interval(0.0)
    code = aiida_code_installed(default_calc_job_plugin='sseff.gpumd', filepath_executable=str(killed_standin(30)))
    _, node = run_get_node(_builder(code, *llzo_case))
    assert node.exit_status == GpumdBaseWorkChain.exit_codes.ERROR_NO_RESTART_FILE.status
    assert 'raise the wall time' in node.exit_message
