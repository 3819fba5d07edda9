"""Checkpoints, restarts and the equilibrated volume of the engine MD, without AiiDA (EMT copper, a few hundred steps).

A run continued from a checkpoint holds the complete dynamical state (float64 positions and momenta, the random
stream, the integrator's thermostat/barostat variables), and EMT's forces are a deterministic function of the
positions: the continued trajectory must equal the uninterrupted one bit for bit, for every ensemble.
"""

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write

from aiida_sseff.analysis.msd import compute_msd
from aiida_sseff.engines.__main__ import RETURN_CODES, main
from aiida_sseff.engines.md import (
    CHECKPOINT_FILENAME,
    CheckpointError,
    MdParameterError,
    integrator_state,
    load_trajectory,
    run_md,
    validate_md_parameters,
)


def copper(a=3.6):
    return bulk('Cu', 'fcc', a=a, cubic=True) * (2, 2, 2)


def run_in(path, parameters, **kwargs):
    path.mkdir()
    summary = run_md(copper(kwargs.pop('a', 3.6)), EMT(), parameters, path, **kwargs)
    return summary, load_trajectory(path / 'trajectory.npz'), np.loadtxt(path / 'thermo.dat', ndmin=2)


@pytest.mark.parametrize('ensemble', ['nvt_bussi', 'nvt_langevin', 'nvt_nose_hoover', 'npt_mtk', 'npt_mtk_iso', 'nve'])
def test_continued_run_is_the_uninterrupted_run(tmp_path, ensemble):
    """Stopped for its wall time (0 s: after one checkpoint interval) and continued: the same frames, the same time
    axis, the same thermo rows, for every ensemble (Bussi/Langevin also test the random stream)."""
    parameters = {'ensemble': ensemble, 'temperature_K': 900.0, 'n_steps': 120, 'n_equilibration_steps': 20,
                  'thermo_interval': 10, 'trajectory_interval': 5, 'checkpoint_interval': 40, 'seed': 3}
    _, reference, reference_thermo = run_in(tmp_path / 'whole', parameters)
    stopped, first, first_thermo = run_in(tmp_path / 'first', parameters, wall_time_s=0.0)
    # 40 steps done in this run: 20 of equilibration and 20 of production
    assert stopped['status'] == 'out_of_walltime' and stopped['phase'] == 'production' and stopped['step'] == 20
    continued, second, second_thermo = run_in(tmp_path / 'second', parameters,
                                              checkpoint=tmp_path / 'first' / CHECKPOINT_FILENAME)
    assert continued['status'] == 'ok' and continued['restart_step'] == 20
    assert second['steps'][0] == 25  # the frame at step 20 belongs to the first segment
    joined = {key: np.concatenate([first[key], second[key]]) for key in ('positions', 'cells', 'steps', 'times_ps')}
    for key, values in joined.items():
        np.testing.assert_array_equal(values, reference[key], err_msg=key)
    np.testing.assert_array_equal(np.concatenate([first_thermo, second_thermo]), reference_thermo)


def test_msd_of_continued_run_equals_uninterrupted(tmp_path):
    """The issue's criterion on the MSD (analysis.msd) itself: several stops, float32 round-off tolerance."""
    parameters = {'ensemble': 'nvt_bussi', 'temperature_K': 1200.0, 'n_steps': 300, 'thermo_interval': 10,
                  'trajectory_interval': 5, 'checkpoint_interval': 100, 'seed': 11}
    _, reference, _ = run_in(tmp_path / 'whole', parameters)
    segments, checkpoint = [], None
    for index in range(3):
        summary, trajectory, _ = run_in(tmp_path / f'part{index}', parameters, wall_time_s=0.0, checkpoint=checkpoint)
        segments.append(trajectory['positions'])
        checkpoint = tmp_path / f'part{index}' / CHECKPOINT_FILENAME
    assert summary['status'] == 'ok'  # the third segment reached n_steps
    symbols = ['Cu'] * 32
    expected = compute_msd(reference['positions'], symbols, species='Cu', remove_drift=False, dt_ps=0.01)
    result = compute_msd(np.concatenate(segments), symbols, species='Cu', remove_drift=False, dt_ps=0.01)
    # same float32 positions in, so the same MSD out; 1e-6 leaves room for summation order only
    np.testing.assert_allclose(result.msd_total, expected.msd_total, rtol=1e-6, atol=1e-9)
    assert expected.msd_total[-1] > 0.01  # a real signal (vibrations of Cu at 1200 K), not zeros compared


def test_restart_during_npt_equilibration_then_nvt_at_mean_volume(tmp_path):
    """A stop inside an NPT equilibration keeps the barostat variables and the running mean of the cell."""
    parameters = {'ensemble': 'nvt_bussi', 'equilibration_ensemble': 'npt_mtk_iso',
                  'production_cell': 'equilibrated_mean', 'temperature_K': 600.0, 'n_steps': 100,
                  'n_equilibration_steps': 400, 'thermo_interval': 10, 'trajectory_interval': 10,
                  'checkpoint_interval': 250, 'barostat_time_fs': 200.0, 'seed': 3}
    whole, reference, _ = run_in(tmp_path / 'whole', parameters, a=3.5)
    stopped, _, _ = run_in(tmp_path / 'first', parameters, a=3.5, wall_time_s=0.0)
    assert stopped['phase'] == 'equilibration' and stopped['equilibration_step'] == 250 and stopped['n_frames'] == 0
    continued, second, _ = run_in(tmp_path / 'second', parameters, a=3.5,
                                  checkpoint=tmp_path / 'first' / CHECKPOINT_FILENAME)
    np.testing.assert_array_equal(second['positions'], reference['positions'])
    assert continued['equilibrated_volume_A3'] == whole['equilibrated_volume_A3']


def test_npt_equilibration_sets_the_production_volume(tmp_path):
    """Copper compressed to a = 3.5 Å (EMT's a0 is 3.59 Å): NVT at the input cell is under a large pressure; after an
    NPT equilibration at 0 GPa, NVT at the equilibrated mean cell is near 0 GPa, and every production frame has that
    cell."""
    common = {'ensemble': 'nvt_bussi', 'equilibration_ensemble': 'npt_mtk_iso', 'temperature_K': 600.0,
              'n_steps': 200, 'n_equilibration_steps': 400, 'thermo_interval': 10, 'trajectory_interval': 10,
              'barostat_time_fs': 200.0, 'seed': 3}
    at_input, input_trajectory, _ = run_in(tmp_path / 'input', {**common, 'production_cell': 'input'}, a=3.5)
    at_mean, mean_trajectory, thermo = run_in(tmp_path / 'mean', {**common, 'production_cell': 'equilibrated_mean'},
                                              a=3.5)
    assert at_input['mean_volume_A3'] == pytest.approx(3.5**3 * 8, rel=1e-12)  # scaled back to the input cell
    # EMT copper compressed by 2.5 % in a: bulk modulus ~ 140 GPa → well above 5 GPa
    assert at_input['mean_pressure_GPa'] > 5.0
    volume = at_mean['equilibrated_volume_A3']
    assert volume > 1.05 * 3.5**3 * 8  # it expanded towards a0 = 3.59 Å (and thermal expansion)
    volumes = np.abs(np.linalg.det(mean_trajectory['cells']))
    np.testing.assert_allclose(volumes, volume, rtol=1e-12)
    np.testing.assert_allclose(thermo[:, 6], volume, rtol=1e-6)
    # a 32-atom cell fluctuates by ~1 GPa; the mean over 0.4 ps at the equilibrated volume is well inside 0.5 GPa
    assert abs(at_mean['mean_pressure_GPa']) < 0.5


@pytest.mark.parametrize(
    'parameters, message',
    [
        ({'production_cell': 'equilibrated_mean', 'n_equilibration_steps': 100},
         "needs an NPT equilibration .*got `nvt_bussi`"),
        ({'production_cell': 'equilibrated_mean', 'equilibration_ensemble': 'npt_mtk'}, 'needs n_equilibration_steps'),
        ({'production_cell': 'average'}, 'production_cell `average` unknown'),
        ({'equilibration_ensemble': 'npt_magic'}, 'equilibration_ensemble `npt_magic` unknown'),
        ({'checkpoint_interval': 0}, 'checkpoint_interval must be a positive integer'),
    ],
)
def test_volume_and_checkpoint_parameter_errors(parameters, message):
    with pytest.raises(MdParameterError, match=message):
        validate_md_parameters(parameters)


def test_restart_refuses_another_run(tmp_path):
    parameters = {'n_steps': 40, 'thermo_interval': 10, 'trajectory_interval': 10, 'checkpoint_interval': 20}
    run_in(tmp_path / 'first', parameters, wall_time_s=0.0)
    checkpoint = tmp_path / 'first' / CHECKPOINT_FILENAME
    with pytest.raises(CheckpointError, match=r'different run \(seed: 1 in the checkpoint, 2 now\)'):
        run_md(copper(), EMT(), {**parameters, 'seed': 2}, tmp_path, checkpoint=checkpoint)
    other = copper()
    other[0].symbol = 'Ni'
    with pytest.raises(CheckpointError, match='other elements'):
        run_md(other, EMT(), parameters, tmp_path, checkpoint=checkpoint)
    with pytest.raises(CheckpointError, match='leaves nothing to run'):
        run_md(copper(), EMT(), {**parameters, 'n_steps': 20}, tmp_path, checkpoint=checkpoint)
    # the run length may change: extend it
    summary = run_md(copper(), EMT(), {**parameters, 'n_steps': 60}, tmp_path / 'first', checkpoint=checkpoint)
    assert summary['status'] == 'ok' and summary['step'] == 60


def test_integrator_without_known_state_is_refused():
    from ase.md.andersen import Andersen

    atoms = copper()
    dynamics = Andersen(atoms, 1.0, temperature_K=300, andersen_prob=0.01)
    with pytest.raises(CheckpointError, match='Andersen cannot be saved'):
        integrator_state(dynamics)


def test_command_line_walltime_status(tmp_path):
    write(tmp_path / 'structure.xyz', copper(), format='extxyz')
    parameters = {'n_steps': 60, 'thermo_interval': 10, 'trajectory_interval': 10, 'checkpoint_interval': 20}
    (tmp_path / 'engine.json').write_text(json.dumps({'calculator': {'kind': 'emt'}, 'parameters': parameters,
                                                      'wall_time_s': 0}))
    assert main(['md', '--directory', str(tmp_path)]) == RETURN_CODES['out_of_walltime']
    report = json.loads((tmp_path / 'report.json').read_text())
    assert report['status'] == 'out_of_walltime' and report['step'] == 20 and report['n_checkpoints'] == 1
    assert load_trajectory(tmp_path / 'trajectory.npz')['steps'].tolist() == [0, 10, 20]
    (tmp_path / 'engine.json').write_text(json.dumps({'calculator': {'kind': 'emt'}, 'parameters': parameters,
                                                      'checkpoint': 'missing.npz'}))
    assert main(['md', '--directory', str(tmp_path)]) == RETURN_CODES['invalid_input']
    assert 'missing.npz' in json.loads((tmp_path / 'report.json').read_text())['message']
