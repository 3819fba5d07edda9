"""Parsers of the locality CalcJobs, on real output of ``aiida-sseff-engine locality`` (EMT copper, a short run
made in the test) and of the GPUMD stand-in; broken variants give the named exit codes."""

from __future__ import annotations

import json
import shutil

import numpy as np
from aiida import orm
from aiida.plugins import ParserFactory
from ase.build import bulk
from ase.io import write

ENGINE_PARAMETERS = {'centers': [0], 'radii': [2.6, 4.0], 'n_snapshots': 16, 'snapshot_interval': 2,
                     'n_equilibration_steps': 0, 'store_snapshots': True, 'seed': 2}


def engine_output(tmp_path):
    from aiida_sseff.engines.__main__ import main

    folder = tmp_path / 'run'
    folder.mkdir()
    write(folder / 'structure.xyz', bulk('Cu', 'fcc', a=3.6, cubic=True).repeat(3), format='extxyz')
    (folder / 'engine.json').write_text(json.dumps({'calculator': {'kind': 'emt'}, 'parameters': ENGINE_PARAMETERS}))
    assert main(['locality', '--directory', str(folder)]) == 0
    (folder / 'engine.json').unlink()
    (folder / 'structure.xyz').unlink()
    return folder


def parse(calc_job_node_factory, folder):
    node = calc_job_node_factory('sseff.engine.locality', folder,
                                 {'calculator': orm.Dict({'kind': 'emt'}), 'parameters': orm.Dict(ENGINE_PARAMETERS)})
    return ParserFactory('sseff.engine.locality').parse_from_node(node, store_provenance=False)


def test_engine_locality_parser_outputs_and_broken_variants(aiida_profile, calc_job_node_factory, tmp_path):
    folder = engine_output(tmp_path)
    results, calcfunction = parse(calc_job_node_factory, folder)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    forces = results['forces']
    assert forces.get_array('forces').shape == (1, 2, 16, 3)
    np.testing.assert_allclose(forces.get_array('radii'), [2.6, 4.0])
    assert results['snapshots'].n_structures == 32 and results['results']['n_snapshots'] == 16

    missing = tmp_path / 'missing'
    shutil.copytree(folder, missing)
    (missing / 'locality.npz').unlink()
    _, calcfunction = parse(calc_job_node_factory, missing)
    assert calcfunction.exit_status == 302 and 'locality.npz' in calcfunction.exit_message

    no_report = tmp_path / 'no_report'
    shutil.copytree(folder, no_report)
    (no_report / 'report.json').unlink()
    _, calcfunction = parse(calc_job_node_factory, no_report)
    assert calcfunction.exit_status == 300

    unstable = tmp_path / 'unstable'
    shutil.copytree(folder, unstable)
    (unstable / 'report.json').write_text(json.dumps({'status': 'md_unstable', 'message': 'temperature 9000 K'}))
    _, calcfunction = parse(calc_job_node_factory, unstable)
    assert calcfunction.exit_status == 400 and '9000 K' in calcfunction.exit_message

    truncated = tmp_path / 'truncated'
    shutil.copytree(folder, truncated)
    with np.load(folder / 'locality.npz') as data:
        arrays = {key: data[key] for key in data.files}
    arrays['forces'] = arrays['forces'][:, :, :10]
    np.savez(truncated / 'locality.npz', **arrays)
    _, calcfunction = parse(calc_job_node_factory, truncated)
    assert calcfunction.exit_status == 301 and 'did not complete' in calcfunction.exit_message
