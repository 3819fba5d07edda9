"""The scripts in examples/ compile, are listed in examples/README.md, and build inputs that their WorkChains accept.

Each CPU example runs here with ``--dry-run``: the builder from ``get_builder_from_protocol``, then the WorkChain's
own defaults and validators (``spec().inputs.pre_process`` + ``validate``, what the engine does when the process
starts), nothing run. The cluster set-up runs with ``--dry-run`` (nothing stored) and for real into the test
profile (computer, codes and their extras stored, a second run keeps them).
"""

from __future__ import annotations

import importlib.util
import py_compile
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / 'examples'
CPU_EXAMPLES = sorted(path for path in (EXAMPLES / 'cpu').glob('*.py') if path.stem != 'common')
LGPS_ELEMENTS = ('Li', 'Ge', 'P', 'S')


def load_example(path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(path.parent))  # the scripts import their folder's `common`
    spec = importlib.util.spec_from_file_location(f'example_{path.parent.name}_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('path', sorted(EXAMPLES.rglob('*.py')), ids=lambda path: str(path.relative_to(EXAMPLES)))
def test_example_compiles(path, tmp_path):
    py_compile.compile(str(path), cfile=str(tmp_path / 'compiled.pyc'), doraise=True)


def test_readme_lists_every_example():
    readme = (EXAMPLES / 'README.md').read_text(encoding='utf-8')
    scripts = [path.relative_to(EXAMPLES) for path in EXAMPLES.rglob('*.py') if path.name != 'common.py']
    missing = [str(path) for path in scripts if f'`{path}`' not in readme]
    assert not missing, f'examples/README.md does not list {missing}'


@pytest.fixture
def lgps_model(tmp_path):
    """A NEP model file for Li, Ge, P, S with fixed random weights: enough to build and check inputs, not a model
    of anything (no example runs here)."""
    from aiida_sseff.analysis.descriptors import write_descriptor_model

    path = tmp_path / 'nep.txt'
    write_descriptor_model(path, LGPS_ELEMENTS, cutoff=(5.0, 4.0))
    return path


@pytest.fixture
def lgps_dataset_file(tmp_path):
    """Three rattled copies of the shipped LGPS cell with made-up labels (energies, forces, stress of the right shape
    and units): the architecture study's validators read the elements and labels, and nothing is trained here."""
    from importlib.resources import files

    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import read, write

    rng = np.random.default_rng(0)
    structures = []
    for seed in range(12):  # enough for the dataset-size study to halve the pool twice
        atoms = read(str(files('aiida_sseff.structures').joinpath('Li10GeP2S12.cif')))
        atoms.rattle(0.05, seed=seed)
        atoms.calc = SinglePointCalculator(atoms, energy=-4.0 * len(atoms) + rng.normal(),
                                           forces=rng.normal(scale=0.3, size=(len(atoms), 3)),
                                           stress=rng.normal(scale=1e-3, size=6))
        structures.append(atoms)
    path = tmp_path / 'train.xyz'
    write(path, structures, format='extxyz')
    return path


def _arguments(name, request, lgps_model, lgps_dataset_file) -> list[str]:
    engine = request.getfixturevalue('engine_code').uuid
    if name == 'pipeline':
        return ['--engine-code', engine, '--training-code', request.getfixturevalue('neppo_code').uuid,
                '--diffusion-code', engine]
    if name in ('diffusion', 'locality'):
        return ['--code', engine, '--model', str(lgps_model)]
    if name == 'architectures_study':
        return ['--dataset', str(lgps_dataset_file), '--engine-code', engine,
                '--nep-code', request.getfixturevalue('neppo_code').uuid,
                '--mace-code', request.getfixturevalue('mace_code').uuid]
    if name in ('dataset_size_study', 'replicas_study'):
        dataset = str(lgps_dataset_file) if name == 'dataset_size_study' else f'set_a={lgps_dataset_file}'
        return ['--dataset', dataset, '--engine-code', engine, '--training-code',
                request.getfixturevalue('neppo_code').uuid]
    if name == 'finite_size_study':
        return ['--code', engine, '--model', str(lgps_model)]
    if name == 'speed_study':
        return ['--code', engine, '--model', f'NEP={lgps_model}', '--memory-limit-mb', '16000']
    if name == 'loop':
        return ['--code', engine, '--training-code', request.getfixturevalue('neppo_code').uuid]
    if name == 'reference_quality_study':
        return ['--code', request.getfixturevalue('cp2k_code').uuid]
    raise AssertionError(f'examples/cpu/{name}.py is new: add its arguments to this test')


@pytest.mark.parametrize('path', CPU_EXAMPLES, ids=lambda path: path.stem)
def test_cpu_example_dry_run(path, request, monkeypatch, aiida_profile, lgps_model, lgps_dataset_file, capsys):
    from aiida import orm

    module = load_example(path, monkeypatch)
    arguments = _arguments(path.stem, request, lgps_model, lgps_dataset_file)  # the codes are stored here
    before = orm.QueryBuilder().append(orm.Node).count()
    assert module.main([*arguments, '--dry-run']) == 0
    assert 'inputs of' in capsys.readouterr().out
    assert orm.QueryBuilder().append(orm.Node).count() == before, f'{path.name} --dry-run stored nodes'


def test_cpu_example_refuses_inputs_its_workchain_refuses(request, monkeypatch, aiida_profile, tmp_path):
    """The dry run is a real check: a model without the structure's elements is refused by sseff.diffusion."""
    from aiida_sseff.analysis.descriptors import write_descriptor_model

    write_descriptor_model(tmp_path / 'cu.txt', ('Cu', 'Al'), cutoff=(5.0, 4.0))
    module = load_example(EXAMPLES / 'cpu' / 'diffusion.py', monkeypatch)
    with pytest.raises(SystemExit, match='refused'):
        module.main(['--code', request.getfixturevalue('engine_code').uuid, '--model', str(tmp_path / 'cu.txt'),
                     '--dry-run'])


CLUSTER_ARGUMENTS = ['--label', 'example-cluster', '--hostname', 'login.cluster.example.org', '--username', 'jdoe',
                     '--key-filename', '/home/jdoe/.ssh/id_ed25519', '--gpumd-dir', '/opt/gpumd/5.6/src',
                     '--gpumd-version', '5.6', '--vasp-dir', '/opt/vasp/6.4/bin', '--vasp-gam',
                     '--sseff-bin', '/home/jdoe/venvs/sseff/bin', '--cuda-module', 'cuda/12.4']
CLUSTER_CODES = {'gpumd': 'sseff.gpumd', 'nep': 'sseff.nep.train', 'vasp-std': 'vasp.vasp', 'vasp-gam': 'vasp.vasp',
                 'sseff-engine': 'sseff.engine.md', 'neppo': 'sseff.nep.train', 'sseff-mace': 'sseff.mace.train'}


def test_cluster_setup(monkeypatch, aiida_profile, capsys):
    from aiida import orm

    from aiida_sseff.calculations.gpumd import resolve_gpumd_version
    from aiida_sseff.calculations.nep import resolve_program

    module = load_example(EXAMPLES / 'cluster' / 'setup_cluster.py', monkeypatch)
    before = orm.QueryBuilder().append(orm.Computer).count(), orm.QueryBuilder().append(orm.Node).count()
    assert module.main([*CLUSTER_ARGUMENTS, '--dry-run']) == 0
    assert 'nothing stored' in capsys.readouterr().out
    assert (orm.QueryBuilder().append(orm.Computer).count(), orm.QueryBuilder().append(orm.Node).count()) == before

    assert module.main(CLUSTER_ARGUMENTS) == 0
    computer = orm.load_computer('example-cluster')
    assert (computer.transport_type, computer.scheduler_type) == ('core.ssh', 'core.slurm')
    assert computer.get_authinfo(orm.User.collection.get_default()).get_auth_params()['username'] == 'jdoe'
    for label, plugin in CLUSTER_CODES.items():
        code = orm.load_code(f'{label}@example-cluster')
        assert code.default_calc_job_plugin == plugin
    # the extras are what the CalcJobs read: the run.in version and the training program
    assert resolve_gpumd_version(None, orm.load_code('gpumd@example-cluster')) == '5.6'
    assert resolve_program(None, orm.load_code('nep@example-cluster')) == 'nep'
    assert resolve_program(None, orm.load_code('neppo@example-cluster')) == 'neppo'
    count = orm.QueryBuilder().append(orm.Node).count()
    assert module.main(CLUSTER_ARGUMENTS) == 0  # again: everything kept
    assert orm.QueryBuilder().append(orm.Node).count() == count


@pytest.mark.parametrize('change, message', [
    (['--gpumd-dir', 'gpumd/bin'], 'not an absolute path'),
    (['--gpumd-version', 'five'], 'gpumd_version'),
])
def test_cluster_setup_refuses_bad_input(change, message, monkeypatch, aiida_profile, capsys):
    module = load_example(EXAMPLES / 'cluster' / 'setup_cluster.py', monkeypatch)
    arguments = list(CLUSTER_ARGUMENTS)
    index = arguments.index(change[0])
    arguments[index + 1] = change[1]
    assert module.main([*arguments, '--dry-run']) == 1
    assert message in capsys.readouterr().err

