"""Threads of a job from its resources (issue #14.4): the pure rule, and the submit scripts the engine MD and the
neppo training CalcJobs really write (aiida-core dry runs), including the user's override."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_sseff.calculations.threads import THREAD_VARIABLES, thread_prepend_text, threads_per_process


@pytest.mark.parametrize(('resources', 'threads'), [
    ({'num_machines': 1, 'num_mpiprocs_per_machine': 1}, 1),  # no cores asked for: one, the job shares the machine
    ({'num_machines': 1, 'num_mpiprocs_per_machine': 1, 'num_cores_per_mpiproc': 2}, 2),
    ({'num_machines': 1, 'num_mpiprocs_per_machine': 2, 'num_cores_per_machine': 8}, 4),
    ({'num_machines': 2, 'tot_num_mpiprocs': 4, 'num_cores_per_machine': 6}, 3),  # 2 processes per machine
    ({'num_machines': 1, 'num_mpiprocs_per_machine': 4, 'num_cores_per_machine': 2}, 1),  # fewer cores than processes
])
def test_threads_per_process(resources, threads):
    assert threads_per_process(resources) == threads


def test_prepend_text_leaves_the_users_variables_alone():
    text = thread_prepend_text({'num_machines': 1, 'num_mpiprocs_per_machine': 1, 'num_cores_per_mpiproc': 2},
                               {'OMP_NUM_THREADS': '4'})
    assert 'export MKL_NUM_THREADS=2' in text and 'export OPENBLAS_NUM_THREADS=2' in text
    assert 'OMP_NUM_THREADS' not in text
    assert thread_prepend_text({}, dict.fromkeys(THREAD_VARIABLES, '1')) == ''


def _exported(script: str) -> dict:
    """The value each thread variable has when the program starts: the last assignment in the script wins."""
    values = {}
    for line in script.splitlines():
        match = re.match(r"\s*export (\w+)=['\"]?([^'\"\s]+)", line)
        if match and match.group(1) in THREAD_VARIABLES:
            name, value = match.groups()
            default = re.fullmatch(r'\$\{(\w+):-(\w+)\}', value)  # ${NAME:-1}: keeps a value set before
            values[name] = values.get(name, default.group(2)) if default else value
    return values


def _dry_run_script(process, monkeypatch, tmp_path, **inputs) -> str:
    monkeypatch.chdir(tmp_path)  # a dry run writes its folder below the working directory
    _, node = run_get_node(process, **inputs)
    return (Path(node.dry_run_info['folder']) / node.dry_run_info['script_filename']).read_text()


@pytest.fixture
def engine_md_inputs(aiida_profile, engine_code):
    from ase.build import bulk

    return {'code': engine_code, 'structure': orm.StructureData(ase=bulk('Cu', 'fcc', a=3.6, cubic=True)),
            'calculator': orm.Dict({'kind': 'emt'}), 'parameters': orm.Dict({'n_steps': 10})}


@pytest.mark.parametrize(('options', 'expected'), [
    ({}, '1'),
    ({'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1, 'num_cores_per_mpiproc': 2}}, '2'),
])
def test_engine_md_submit_script_threads(engine_md_inputs, monkeypatch, tmp_path, options, expected):
    from aiida_sseff.calculations.engine import EngineMdCalculation

    script = _dry_run_script(EngineMdCalculation, monkeypatch, tmp_path, **engine_md_inputs,
                             metadata={'dry_run': True, 'store_provenance': False, 'options': options})
    # the code's prepend (OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}) comes first; the job's share of the cores wins
    assert _exported(script) == dict.fromkeys(THREAD_VARIABLES, expected)
    assert script.index('${OMP_NUM_THREADS:-1}') < script.rindex(f'export OMP_NUM_THREADS={expected}')


def test_engine_md_submit_script_user_override(engine_md_inputs, monkeypatch, tmp_path):
    from aiida_sseff.calculations.engine import EngineMdCalculation

    options = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1, 'num_cores_per_mpiproc': 2},
               'environment_variables': {'OMP_NUM_THREADS': '3'}}
    script = _dry_run_script(EngineMdCalculation, monkeypatch, tmp_path, **engine_md_inputs,
                             metadata={'dry_run': True, 'store_provenance': False, 'options': options})
    assert _exported(script) == {'OMP_NUM_THREADS': '3', 'MKL_NUM_THREADS': '2', 'OPENBLAS_NUM_THREADS': '2'}


def test_neppo_submit_script_threads(aiida_profile, neppo_code, cu_al_structures, monkeypatch, tmp_path):
    from aiida_sseff.calculations.nep import NepTrainCalculation
    from aiida_sseff.data.dataset import LabelledDataset

    parameters = {'cutoff': [5, 4], 'n_max': [4, 4], 'basis_size': [4, 4], 'l_max': [4, 2, 0], 'neuron': 8,
                  'batch': 2, 'generation': 10}
    options = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1, 'num_cores_per_machine': 2}}
    script = _dry_run_script(NepTrainCalculation, monkeypatch, tmp_path, code=neppo_code,
                             train=LabelledDataset(cu_al_structures(2)), parameters=orm.Dict(parameters),
                             metadata={'dry_run': True, 'store_provenance': False, 'options': options})
    assert _exported(script) == dict.fromkeys(THREAD_VARIABLES, '2')


def test_engine_sets_torch_threads_from_the_environment(monkeypatch):
    torch = pytest.importorskip('torch')
    from aiida_sseff.engines.calculators import torch_threads_from_environment

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv('OMP_NUM_THREADS', '3')
        assert torch_threads_from_environment() == 3 and torch.get_num_threads() == 3
        monkeypatch.setenv('OMP_NUM_THREADS', '')
        assert torch_threads_from_environment() is None
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_neppo_runs_with_the_threads_of_its_resources(neppo_code, cu_al_structures):
    """A real `neppo train` (2 steps, 2 cells) through the CalcJob on the direct scheduler: torch in neppo runs with
    the job's share of the cores, as neppo's own log says (its `CPU threads  N of M` row, torch.get_num_threads()).
    The code's prepend alone would give 1: the job's 2 cores must reach torch."""
    from aiida_sseff.calculations.nep import STDOUT_FILENAME, NepTrainCalculation
    from aiida_sseff.data.dataset import LabelledDataset

    parameters = {'cutoff': [5, 4], 'n_max': [4, 4], 'basis_size': [4, 4], 'l_max': [4, 2, 0], 'neuron': 8,
                  'batch': 2, 'generation': 2, 'output_interval': 1}
    options = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1, 'num_cores_per_mpiproc': 2}}
    _, node = run_get_node(NepTrainCalculation, code=neppo_code, train=LabelledDataset(cu_al_structures(2)),
                           parameters=orm.Dict(parameters), metadata={'options': options})
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    log = node.outputs.retrieved.base.repository.get_object_content(STDOUT_FILENAME)
    threads = re.search(r'CPU threads\W+(\d+) of (\d+)', log)
    assert threads is not None, log[-2000:]
    assert threads.group(1) == '2'
