"""The engine without AiiDA: parameter validation, calculator specs, the command-line program's report."""

import json
import sys

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

from aiida_sseff.engines.__main__ import main
from aiida_sseff.engines.calculators import CalculatorSpecError, validate_spec
from aiida_sseff.engines.md import MdParameterError, load_trajectory, validate_md_parameters


@pytest.mark.parametrize(
    'parameters, message',
    [
        ({'n_steps': 0}, 'n_steps must be a positive integer'),
        ({'n_steps': 2.5}, 'n_steps must be a positive integer'),
        ({'timestep_fs': 20}, 'too large'),
        ({'trajectory_interval': 50, 'n_steps': 10}, 'no frame would be stored'),
        ({'temperature_K': 0}, 'temperature_K must be > 0'),
    ],
)
def test_md_parameter_errors(parameters, message):
    with pytest.raises(MdParameterError, match=message):
        validate_md_parameters(parameters)


@pytest.mark.parametrize(
    'spec, message',
    [
        ({'kind': 'mace'}, 'needs a model file'),
        ({'kind': 'chgnet', 'model': 'x'}, 'takes no model file'),
        ({'kind': 'emt', 'precision': 'high'}, 'unknown calculator spec keys'),
    ],
)
def test_spec_errors(spec, message):
    with pytest.raises(CalculatorSpecError, match=message):
        validate_spec(spec)


@pytest.mark.parametrize('ensemble', ['nvt_bussi', 'nvt_langevin', 'nvt_nose_hoover', 'npt_mtk', 'nve'])
def test_every_ensemble_runs_and_conserves_or_thermostats(tmp_path, ensemble):
    atoms = bulk('Cu', 'fcc', a=3.6, cubic=True) * (2, 2, 2)
    write(tmp_path / 'structure.xyz', atoms, format='extxyz')
    parameters = {'ensemble': ensemble, 'temperature_K': 300.0, 'n_steps': 200, 'timestep_fs': 2.0,
                  'thermo_interval': 10, 'trajectory_interval': 20, 'store_velocities': True, 'store_forces': True}
    (tmp_path / 'engine.json').write_text(json.dumps({'calculator': {'kind': 'emt'}, 'parameters': parameters}))
    assert main(['md', '--directory', str(tmp_path)]) == 0
    report = json.loads((tmp_path / 'report.json').read_text())
    assert report['status'] == 'ok' and report['n_frames'] == 11
    # the versions the numbers were computed with
    import ase

    assert report['software']['ase'] == ase.__version__ and report['software']['numpy'] == np.__version__
    assert report['software']['python'] == '.'.join(map(str, sys.version_info[:3]))
    thermo = np.loadtxt(tmp_path / 'thermo.dat')
    if ensemble == 'nve':
        drift = np.ptp(thermo[:, 5]) / len(atoms)
        assert drift < 2e-3  # eV/atom over 0.4 ps with velocity Verlet at 2 fs on EMT copper
    else:
        assert 100 < thermo[5:, 2].mean() < 500  # starts at 300 K and is held there
    trajectory = load_trajectory(tmp_path / 'trajectory.npz')
    assert trajectory['positions'].shape == (11, 32, 3) and trajectory['positions'].dtype == np.float32
    assert trajectory['velocities'].shape == (11, 32, 3) and trajectory['forces'].shape == (11, 32, 3)


def test_engine_reports_invalid_input(tmp_path):
    (tmp_path / 'engine.json').write_text(json.dumps({'calculator': {'kind': 'emt'}, 'parameters': {'n_steps': -1}}))
    write(tmp_path / 'structure.xyz', bulk('Cu', cubic=True), format='extxyz')
    assert main(['md', '--directory', str(tmp_path)]) == 2
    report = json.loads((tmp_path / 'report.json').read_text())
    assert report['status'] == 'invalid_input' and 'n_steps' in report['message']


def test_engine_reports_missing_structure(tmp_path):
    (tmp_path / 'engine.json').write_text(json.dumps({'calculator': {'kind': 'emt'}}))
    assert main(['label', '--directory', str(tmp_path)]) == 2
    assert 'structures.xyz' in json.loads((tmp_path / 'report.json').read_text())['message']
