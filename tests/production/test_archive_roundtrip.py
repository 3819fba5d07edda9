"""Archive round trip (issue #13, item 6): a finished ``sseff.diffusion`` study on the production profile (its MD jobs
run by Slurm over SSH on ``loopback``), exported, then imported into a FRESH SQLite profile (its own AIIDA_PATH, in
a subprocess): every node (uuid, type, attributes, extras, file hashes) and every link are the same, and
``aiida-sseff report`` writes the same HTML and JSON bytes from both profiles.

Run as a script (``python test_archive_roundtrip.py PROFILE UUID...``), this module prints the manifest of those
nodes in that profile: the test runs it so in the fresh profile.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.production

#: Cu diffusion in a 32-atom fcc Cu24Al8 cell (EMT knows both; the study's drift correction needs a second species),
#: superheated far above EMT's melting point so that 0.4 ps give a measurable MSD: a plumbing run of the whole study
#: (MD jobs, MSD, D(T), Arrhenius), not a converged D
DIFFUSION_MD = {'timestep_fs': 2.0, 'equilibration_ps': 0.0, 'production_ps': 0.4, 'sample_interval_fs': 20.0,
                'volume': 'input'}
TEMPERATURES = [2500.0, 3000.0]
HASH_EXTRA = '_aiida_hash'


def manifest(uuids: list[str]) -> dict:
    """Everything the archive must keep of these nodes: per node its type, process type, attributes, extras,
    computer, user, the sha256 of every repository file and the node's caching hash; and every link among them
    (source, target, type, label)."""
    from aiida import orm

    nodes = {}
    for uuid in uuids:
        node = orm.load_node(uuid)
        files = {}
        for directory, _, filenames in node.base.repository.walk():
            for name in filenames:
                path = str(directory / name)
                files[path] = hashlib.sha256(node.base.repository.get_object_content(path, mode='rb')).hexdigest()
        nodes[uuid] = {'node_type': node.node_type, 'process_type': node.process_type, 'label': node.label,
                       'description': node.description, 'ctime': node.ctime.isoformat(),
                       'attributes': node.base.attributes.all,
                       # aiida-core's export leaves out the caching hash extra: it is recomputed here instead, from
                       # the node's content, in each profile
                       'extras': {k: v for k, v in node.base.extras.all.items() if k != HASH_EXTRA},
                       'hash': node.base.caching.compute_hash(),
                       'computer': node.computer.uuid if node.computer else None, 'user': node.user.email,
                       'files': files}
    builder = orm.QueryBuilder()
    builder.append(orm.Node, filters={'uuid': {'in': uuids}}, project='uuid', tag='source')
    builder.append(orm.Node, filters={'uuid': {'in': uuids}}, project='uuid', with_incoming='source',
                   edge_project=['type', 'label'])
    links = sorted(builder.all())
    return json.loads(json.dumps({'nodes': nodes, 'links': links}, sort_keys=True, default=str))


def _console(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _call(env: dict, *args) -> str:
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f'{args}: {result.stdout}\n{result.stderr}'
    return result.stdout


def _report(env: dict, profile: str, uuid: str, prefix: Path) -> tuple[bytes, bytes]:
    """``aiida-sseff report`` of ``uuid`` in a new process (as a user runs it): the HTML and JSON bytes."""
    html, report_json = prefix.with_suffix('.html'), prefix.with_suffix('.json')
    _call(env, _console('aiida-sseff'), '-p', profile, 'report', uuid, '-o', str(html), '--json', str(report_json))
    return html.read_bytes(), report_json.read_bytes()


@pytest.fixture(scope='module')
def diffusion_study(daemon_client, remote_engine_code, wait_for):
    from aiida import orm
    from aiida.engine import submit
    from ase.build import bulk

    from aiida_sseff.workflows.diffusion import DiffusionWorkChain

    builder = DiffusionWorkChain.get_builder()
    atoms = bulk('Cu', 'fcc', a=3.65, cubic=True) * (2, 2, 2)
    atoms.symbols[::4] = 'Al'
    builder.structure = orm.StructureData(ase=atoms)
    builder.temperatures = orm.List(TEMPERATURES)
    builder.mobile_species = orm.Str('Cu')
    builder.md = orm.Dict(DIFFUSION_MD)
    builder.analysis = orm.Dict({'min_msd_A2': 0.05})
    builder.engine.md.code = remote_engine_code
    builder.engine.md.calculator = orm.Dict({'kind': 'emt'})
    node = wait_for(submit(builder), timeout=600)
    assert node.is_finished_ok, node.exit_message
    return node


def test_study_exported_and_imported_into_a_fresh_sqlite_profile_is_the_same(aiida_profile, diffusion_study,
                                                                             tmp_path):
    from aiida.tools.graph.graph_traversers import get_nodes_export

    from aiida_sseff.cli.cmd_launch import export_archive

    node = diffusion_study
    jobs = [child for child in node.called_descendants if child.process_type == 'aiida.calculations:sseff.engine.md']
    assert len(jobs) == len(TEMPERATURES) and {job.computer.scheduler_type for job in jobs} == {'core.slurm'}

    archive = export_archive(node, tmp_path / 'study.aiida')
    # the nodes an export of the study must hold (aiida-core's export traversal rules), and what the profile has
    from aiida import orm

    pks = get_nodes_export(starting_pks=[node.pk])['nodes']
    uuids = sorted(orm.QueryBuilder().append(orm.Node, filters={'id': {'in': list(pks)}}, project='uuid').all(flat=True))
    assert node.uuid in uuids and all(job.uuid in uuids for job in jobs)
    original = manifest(uuids)
    assert sum(len(entry['files']) for entry in original['nodes'].values()) > 0

    fresh = {**os.environ, 'AIIDA_PATH': str(tmp_path / 'fresh-config'), 'OMP_NUM_THREADS': '1'}
    fresh.pop('AIIDA_PROFILE', None)
    _call(fresh, _console('verdi'), 'profile', 'setup', 'core.sqlite_dos', '--non-interactive', '--profile-name',
          'fresh', '--email', 'archive@test.invalid', '--first-name', 'Archive', '--last-name', 'Test',
          '--institution', 'Test', '--filepath', str(tmp_path / 'fresh-storage'), '--no-use-rabbitmq')
    _call(fresh, _console('verdi'), '-p', 'fresh', 'archive', 'import', str(archive))
    count = _call(fresh, sys.executable, '-c', 'from aiida import load_profile, orm; load_profile("fresh"); '
                                               'print(orm.QueryBuilder().append(orm.Node).count())')
    assert int(count) == len(uuids)  # the fresh profile holds the study's nodes and nothing else
    imported = json.loads(_call(fresh, sys.executable, __file__, 'fresh', *uuids))

    assert imported['nodes'].keys() == original['nodes'].keys()
    different = {uuid: {key: (value, imported['nodes'][uuid].get(key)) for key, value in entry.items()
                        if imported['nodes'][uuid].get(key) != value}
                 for uuid, entry in original['nodes'].items() if imported['nodes'][uuid] != entry}
    assert not different, f'{len(different)} nodes differ after the import, e.g. {list(different.items())[:2]}'
    assert imported['links'] == original['links'] and len(original['links']) >= len(uuids) - 1

    # the report, rebuilt from each profile's graph by the CLI in a new process: the same bytes
    production_env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    production_html, production_json = _report(production_env, aiida_profile.name, node.uuid, tmp_path / 'prod')
    fresh_html, fresh_json = _report(fresh, 'fresh', node.uuid, tmp_path / 'fresh')
    assert b'sseff.diffusion' in production_json and node.uuid.encode() in production_html
    assert fresh_json == production_json
    assert fresh_html == production_html


if __name__ == '__main__':
    from aiida import load_profile

    load_profile(sys.argv[1])
    print(json.dumps(manifest(sys.argv[2:])))
