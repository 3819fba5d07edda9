"""The report of a real ``sseff.diffusion`` run, and the same report rebuilt in a FRESH profile from the archive that
``aiida-sseff export`` wrote: same tables (every number), same section titles, byte-identical HTML (the report names
nodes by uuid, never by pk)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiida import orm
from aiida.engine import run_get_node

REFERENCE = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'reference'
LLZO = REFERENCE / 'llzo'


def _console(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _run_in_fresh_profile(tmp_path: Path, archive: Path, uuid: str) -> tuple[str, dict, str]:
    """`verdi profile setup` a new SQLite profile in its own AIIDA_PATH, `verdi archive import` the archive, and
    `aiida-sseff report` the imported process by uuid; returns the HTML, the JSON and the CLI's output."""
    env = {**os.environ, 'AIIDA_PATH': str(tmp_path / 'fresh-config'), 'OMP_NUM_THREADS': '1'}
    env.pop('AIIDA_PROFILE', None)

    def call(*args):
        result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, f'{args}: {result.stdout}\n{result.stderr}'
        return result.stdout

    call(_console('verdi'), 'profile', 'setup', 'core.sqlite_dos', '--non-interactive', '--profile-name', 'fresh',
         '--email', 'report@test.invalid', '--first-name', 'Report', '--last-name', 'Test', '--institution', 'Test',
         '--filepath', str(tmp_path / 'fresh-storage'), '--no-use-rabbitmq')
    call(_console('verdi'), '-p', 'fresh', 'archive', 'import', str(archive))
    html_path, json_path = tmp_path / 'fresh.html', tmp_path / 'fresh.json'
    stdout = call(_console('aiida-sseff'), '-p', 'fresh', 'report', uuid, '-o', str(html_path), '--json',
                  str(json_path))
    return html_path.read_text(encoding='utf-8'), json.loads(json_path.read_text(encoding='utf-8')), stdout


@pytest.mark.slow
@pytest.mark.reference
def test_report_of_imported_archive_is_identical(aiida_profile, engine_code, tmp_path, monkeypatch):
    """Real CPUNEP MD (the LLZO NEP model, 192 atoms, 2 × 0.4 ps) → report → export → import into a fresh profile →
    report there: the same bytes. The section's tables carry the numbers of the stored ``results`` output."""
    if not (LLZO / 'nep25_zbl.txt').is_file():
        pytest.skip(f'real LLZO reference data not found at {LLZO} (shared/reference beside the repository)')
    from ase.io import read

    from aiida_sseff.cli.cmd_launch import export_archive
    from aiida_sseff.data.model import NepModel
    from aiida_sseff.report.render import build_report, render_html, report_json
    from aiida_sseff.workflows.diffusion import DiffusionWorkChain

    atoms = read(LLZO / 'nep_training' / 'train.xyz', index=0)
    atoms.calc = None
    builder = DiffusionWorkChain.get_builder()
    builder.structure = orm.StructureData(ase=atoms)
    builder.model = NepModel(LLZO / 'nep25_zbl.txt')
    builder.temperatures = orm.List([1500.0, 1800.0])
    builder.md = orm.Dict({'timestep_fs': 2.0, 'equilibration_ps': 0.0, 'production_ps': 0.4,
                           'sample_interval_fs': 20.0, 'volume': 'input'})
    builder.analysis = orm.Dict({'min_msd_A2': 0.05})  # 0.4 ps runs: a plumbing test, not a converged D
    builder.engine.md.code = engine_code
    builder.engine.md.calculator = orm.Dict({'kind': 'nep'})
    _, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message

    # a library imported in this process may change matplotlib's global style (mace.calculators sets font.size);
    # the fresh profile's process has not imported it: the page must not depend on that
    import matplotlib

    monkeypatch.setitem(matplotlib.rcParams, 'font.size', matplotlib.rcParams['font.size'] + 3)
    report = build_report(node)
    original_html, original_json = render_html(report), report_json(report)
    # the section shows the stored numbers: the D(T) table is the `results` table, the fit is the stored fit
    results = node.outputs.results.get_dict()
    section = next(s for s in original_json['sections'] if s['entry_point'] == 'sseff.diffusion')
    tables = {b['table']['title']: b['table'] for b in section['blocks'] if 'table' in b}
    d_t = tables['D(T) per temperature']
    assert [row[0] for row in d_t['rows']] == [row['temperature_K'] for row in results['table']] == [1500.0, 1800.0]
    assert [row[1] for row in d_t['rows']] == [row['D_cm2_s'] for row in results['table']]
    assert [row[2] for row in d_t['rows']] == [row['D_err_cm2_s'] for row in results['table']]
    fit = {row[0]: row[1:3] for row in tables['Arrhenius fit']['rows']}
    assert fit['Ea'] == [results['Ea_eV'], results['Ea_err_eV']]
    assert fit['D0'] == [results['D0_cm2_s'], results['D0_err_cm2_s']]
    # header: the structure, the model's sha256 and the engine code with its computer are among the inputs
    inputs = {row[0]: row[3] for row in original_json['header'][1]['rows']}
    assert inputs['structure'].startswith('La24Li56O96Zr16 (192 atoms')
    assert node.inputs.model.sha256 in inputs['model']
    assert inputs['engine.md.code'] == f'{engine_code.full_label} (plugin sseff.engine.md, computer localhost)'
    versions = {row[0]: row[1] for row in original_json['header'][2]['rows']}
    assert versions['aiida-core'] == node.base.attributes.get('version')['core']
    assert versions['aiida-sseff'] == node.base.attributes.get('version')['plugin']
    # every process of the run is in the provenance table, and nothing profile-specific is in the page
    assert len(original_json['header'][3]['rows']) == len(node.called_descendants) + 1
    assert f'<{node.pk}>' not in original_html and aiida_profile.name not in original_html

    archive = export_archive(node, tmp_path / 'diffusion.aiida')
    fresh_html, fresh_json, stdout = _run_in_fresh_profile(tmp_path, archive, node.uuid)
    assert 'written to' in stdout and 'Open it in a browser' in stdout
    assert [s['title'] for s in fresh_json['sections']] == [s['title'] for s in original_json['sections']]
    assert fresh_json == original_json  # every table, every number, every text
    assert fresh_html == original_html  # byte-identical, figures included
