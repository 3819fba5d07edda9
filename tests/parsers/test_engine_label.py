"""The label parser on real output of ``aiida-sseff-engine label`` (EMT, three Cu cells labelled in the test): a
labelled.xyz cut in the middle of a structure, or exactly between two, is an exit code and no dataset (found by the
production suite's truncated-output fault, where ASE's XYZError, an OSError, crashed the parser)."""

from __future__ import annotations

import json
import shutil

from aiida import orm
from aiida.plugins import ParserFactory
from ase.build import bulk
from ase.io import write


def label_output(tmp_path):
    from aiida_sseff.engines.__main__ import main

    folder = tmp_path / 'run'
    folder.mkdir()
    cells = [bulk('Cu', 'fcc', a=a, cubic=True) for a in (3.55, 3.6, 3.65)]
    write(folder / 'structures.xyz', cells, format='extxyz')
    (folder / 'engine.json').write_text(json.dumps({'calculator': {'kind': 'emt'}}))
    assert main(['label', '--directory', str(folder)]) == 0
    for name in ('engine.json', 'structures.xyz'):
        (folder / name).unlink()
    return folder


def parse(calc_job_node_factory, folder):
    from aiida_sseff.data.dataset import LabelledDataset

    structures = LabelledDataset([bulk('Cu', 'fcc', a=3.6, cubic=True)], require_labels=False)
    node = calc_job_node_factory('sseff.engine.label', folder, {'calculator': orm.Dict({'kind': 'emt'}),
                                                                 'structures': structures})
    return ParserFactory('sseff.engine.label').parse_from_node(node, store_provenance=False)


def test_label_parser_complete_and_truncated(aiida_profile, calc_job_node_factory, tmp_path):
    folder = label_output(tmp_path)
    results, calcfunction = parse(calc_job_node_factory, folder)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    assert results['dataset'].n_structures == 3

    lines = (folder / 'labelled.xyz').read_text().splitlines(keepends=True)
    per_structure = len(lines) // 3
    for name, kept in (('mid_structure', lines[: per_structure + 3]), ('between', lines[: 2 * per_structure])):
        broken = tmp_path / name
        shutil.copytree(folder, broken)
        (broken / 'labelled.xyz').write_text(''.join(kept))
        results, calcfunction = parse(calc_job_node_factory, broken)
        assert calcfunction.exit_status == 301, (name, calcfunction.exit_status, calcfunction.exit_message)
        assert 'labelled.xyz' in calcfunction.exit_message
        assert 'dataset' not in results
