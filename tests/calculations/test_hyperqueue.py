"""HyperQueue (issue #13.5): our CalcJobs on a computer whose scheduler is aiida-hyperqueue's ``hyperqueue``.

HyperQueue packs many small jobs (hundreds of DFT single points, one CalcJob each) into a few Slurm allocations. The
``hq`` program itself is distributed as a GitHub release binary, on neither PyPI nor Debian, so it cannot run here;
what is tested is everything on our side of it: aiida-hyperqueue 0.4.0 loads with aiida-core 2.9, takes our CalcJobs'
resources, and the submit scripts they really write (aiida-core dry runs) ask HyperQueue for the CPUs and memory given
and start the program with that many threads.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiida import orm
from aiida.engine import run_get_node

pytest.importorskip('aiida_hyperqueue', reason='aiida-hyperqueue is not installed (pip install -e .[hyperqueue])')


@pytest.fixture
def hyperqueue_engine_code(aiida_profile, tmp_path, engine_code):
    """The engine's executable as a code on a computer that submits through HyperQueue (core.local transport)."""
    computer = orm.Computer(label=f'hq-{tmp_path.name}', hostname='localhost', transport_type='core.local',
                            scheduler_type='hyperqueue', workdir=str(tmp_path / 'work')).store()
    computer.configure()
    return orm.InstalledCode(computer=computer, filepath_executable=engine_code.filepath_executable.as_posix(),
                             default_calc_job_plugin='sseff.engine.md').store()


def _dry_run_script(hyperqueue_engine_code, monkeypatch, tmp_path, options: dict) -> str:
    from ase.build import bulk

    from aiida_sseff.calculations.engine import EngineMdCalculation

    monkeypatch.chdir(tmp_path)  # a dry run writes its folder below the working directory
    _, node = run_get_node(
        EngineMdCalculation, code=hyperqueue_engine_code,
        structure=orm.StructureData(ase=bulk('Cu', 'fcc', a=3.6, cubic=True)),
        calculator=orm.Dict({'kind': 'emt'}), parameters=orm.Dict({'n_steps': 10}),
        metadata={'dry_run': True, 'store_provenance': False, 'options': options})
    return (Path(node.dry_run_info['folder']) / node.dry_run_info['script_filename']).read_text()


def test_engine_job_asks_hyperqueue_for_its_cpus_and_threads_follow(hyperqueue_engine_code, monkeypatch, tmp_path):
    script = _dry_run_script(hyperqueue_engine_code, monkeypatch, tmp_path, {
        'resources': {'num_cpus': 3, 'memory_mb': 2000}, 'max_wallclock_seconds': 600})
    header = [line for line in script.splitlines() if line.startswith('#HQ')]
    assert '#HQ --cpus=3' in header and '#HQ --resource mem=2000' in header
    assert '#HQ --time-limit=600s' in header and '#HQ --time-request=600s' in header
    # the task's CPUs become its threads (aiida_sseff.calculations.threads), after the code's own default
    for variable in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
        assert script.rindex(f'export {variable}=3') > script.rindex('#HQ')
    assert "'aiida-sseff-engine'" in script or 'aiida-sseff-engine' in script


def test_node_number_resources_still_accepted(hyperqueue_engine_code, monkeypatch, tmp_path):
    """Our CalcJobs' default resources (num_machines / num_mpiprocs_per_machine) are what aiida-hyperqueue 0.4 still
    accepts, with its deprecation warning: one CPU, one thread."""
    with pytest.warns(Warning, match='num_cpus'):
        script = _dry_run_script(hyperqueue_engine_code, monkeypatch, tmp_path, {})
    assert '#HQ --cpus=1' in script
    assert script.rindex('export OMP_NUM_THREADS=1') > script.rindex('#HQ')


def test_bad_resources_are_refused_by_name(hyperqueue_engine_code, monkeypatch, tmp_path):
    with pytest.raises(ValueError, match='num_cpus'):
        _dry_run_script(hyperqueue_engine_code, monkeypatch, tmp_path, {'resources': {'num_cpus': 2.5}})
