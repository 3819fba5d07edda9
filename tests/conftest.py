"""Shared fixtures: a temporary SQLite profile with the ZeroMQ broker (so the daemon test can submit), the engine code."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from aiida_sseff.cli.cmd_setup import ENGINE_PREPEND

pytest_plugins = ['aiida.tools.pytest_fixtures']

REFERENCE_DIR = Path(__file__).resolve().parents[1].parent / 'shared' / 'reference'


@pytest.fixture(scope='session')
def aiida_profile(aiida_config, aiida_profile_factory):
    """The test profile: ``core.sqlite_dos`` storage and aiida-core's bundled ZeroMQ broker (no services needed)."""
    with aiida_profile_factory(aiida_config, storage_backend='core.sqlite_dos', broker_backend='core.zeromq') as profile:
        # circus answers slowly on a loaded 2-core machine; the 2 s default made daemon start/stop time out there
        aiida_config.set_option('daemon.timeout', 60, scope=profile.name)
        aiida_config.store()
        yield profile


@pytest.fixture(scope='session')
def reference_dir() -> Path:
    """The real GPUMD files in ../shared/reference (never copied into the project)."""
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f'reference data not found at {REFERENCE_DIR} (it is beside the repository on the dev machines)')
    return REFERENCE_DIR


@pytest.fixture
def llzo_md_dir(reference_dir):
    """The real GPUMD 1000 K LLZO run (GPUMD-Tutorials, see shared/reference/llzo/README.md)."""
    path = reference_dir / 'llzo' / 'gpumd_md_1000K'
    if not (path / 'msd.out').is_file():
        pytest.skip(f'real GPUMD run not found at {path}')
    return path


@pytest.fixture
def engine_code(aiida_code_installed, aiida_localhost):
    """The ``aiida-sseff-engine`` console script of this environment as an InstalledCode on localhost."""
    executable = shutil.which('aiida-sseff-engine', path=str(Path(sys.executable).parent)) or shutil.which(
        'aiida-sseff-engine'
    )
    if executable is None:
        pytest.fail('aiida-sseff-engine is not installed: run `pip install -e .`')
    aiida_localhost.set_minimum_job_poll_interval(0.0)  # tests poll a local process: no need to wait 10 s
    return aiida_code_installed(
        label='sseff-engine', default_calc_job_plugin='sseff.engine.md', filepath_executable=executable,
        prepend_text=ENGINE_PREPEND,
    )


@pytest.fixture
def calc_job_node_factory(aiida_localhost):
    """A stored CalcJobNode of a CalcJob entry point, its inputs linked, and a ``retrieved`` FolderData holding the
    files of ``folder`` (all, or ``files``): aiida-quantumespresso's ``generate_calc_job_node`` pattern, for parsers."""
    from aiida import orm
    from aiida.common import LinkType
    from aiida.plugins.entry_point import format_entry_point_string

    def _generate(entry_point: str, folder, inputs: dict, files=None):
        node = orm.CalcJobNode(computer=aiida_localhost,
                               process_type=format_entry_point_string('aiida.calculations', entry_point))
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        node.set_option('parser_name', entry_point)
        for label, value in inputs.items():
            if not value.is_stored:
                value.store()
            node.base.links.add_incoming(value, link_type=LinkType.INPUT_CALC, link_label=label)
        node.store()
        retrieved = orm.FolderData()
        if files is None:
            retrieved.base.repository.put_object_from_tree(str(folder))
        else:
            for name in files:
                retrieved.base.repository.put_object_from_file(str(Path(folder) / name), name)
        retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
        retrieved.store()
        return node

    return _generate


def _cp2k_executable() -> str | None:
    """The CP2K program with its data files (GTH potentials, MOLOPT basis sets), or None when either is missing."""
    from aiida_sseff.io import cp2k as cp2k_io

    executable = shutil.which('cp2k.psmp') or shutil.which('cp2k.ssmp') or shutil.which('cp2k')
    try:
        cp2k_io.find_data_dir()
    except cp2k_io.Cp2kDataError:
        return None
    return executable


@pytest.fixture
def cp2k_code(aiida_code_installed, aiida_localhost):
    """Real CP2K (Debian `cp2k` + `cp2k-data`) as an InstalledCode; skips with the reason where it is not installed."""
    executable = _cp2k_executable()
    if executable is None:
        pytest.skip('cp2k/cp2k-data not installed: run scripts/install-system-deps.sh')
    aiida_localhost.set_minimum_job_poll_interval(0.0)
    return aiida_code_installed(label='cp2k', default_calc_job_plugin='sseff.cp2k', filepath_executable=executable,
                                prepend_text='export OMP_NUM_THREADS=2')


@pytest.fixture(scope='session')
def gpumd_standin(tmp_path_factory) -> Path:
    """An executable ``gpumd`` that runs tests/standins/gpumd_standin.py (CPUNEP + ASE, GPUMD's file formats) with
    this interpreter; give it as ``filepath_executable`` of a ``sseff.gpumd`` code or run it in a folder."""
    script = tmp_path_factory.mktemp('gpumd-standin') / 'gpumd'
    standin = Path(__file__).parent / 'standins' / 'gpumd_standin.py'
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{standin}" "$@"\n')
    script.chmod(0o755)
    return script


def _cu_al_structures(n: int, seed: int = 0) -> list:
    """EMT-labelled 32-atom Cu/Al fcc cells: 8 + k % 6 Al atoms, cell scaled by 1 + 0.01 (k % 5 - 2), rattled 0.08 Å.

    Energies, forces and stresses are stored as SinglePointCalculator results (EMT is not re-evaluated). The cells
    are 7.3 Å wide, thinner than 2 x the 5 Å cutoff the tests train with: neppo and CPUNEP take all periodic images
    into account, GPUMD would replicate.
    """
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    structures = []
    for k in range(n):
        atoms = bulk('Cu', 'fcc', a=3.65, cubic=True).repeat(2)
        atoms.symbols[rng.choice(len(atoms), size=8 + k % 6, replace=False)] = 'Al'
        atoms.set_cell(atoms.cell * (1 + 0.01 * (k % 5 - 2)), scale_atoms=True)
        atoms.rattle(0.08, seed=seed * 100 + k)
        atoms.calc = EMT()
        results = {'energy': atoms.get_potential_energy(), 'forces': atoms.get_forces(), 'stress': atoms.get_stress()}
        atoms.calc = SinglePointCalculator(atoms, **results)
        structures.append(atoms)
    return structures


@pytest.fixture(scope='session')
def cu_al_structures():
    """The synthetic NEP training set, as a factory: ``cu_al_structures(n, seed=0)`` -> n labelled ase.Atoms."""
    return _cu_al_structures


def _console_script_code(aiida_code_installed, aiida_localhost, name: str, label: str, plugin: str, prepend: str,
                         missing):
    """A console script of this environment (beside the running Python, else on the PATH) as an InstalledCode;
    ``missing(message)`` (pytest.skip or pytest.fail) when it is not installed."""
    executable = Path(sys.executable).parent / name
    if not executable.exists():
        executable = shutil.which(name)
        if executable is None:
            missing(f'{name} is not installed')
    aiida_localhost.set_minimum_job_poll_interval(0.0)
    return aiida_code_installed(label=label, default_calc_job_plugin=plugin, filepath_executable=str(executable),
                                prepend_text=prepend)


@pytest.fixture
def neppo_code(aiida_code_installed, aiida_localhost):
    """The ``neppo`` console script of this environment as an InstalledCode (its name selects program neppo)."""
    return _console_script_code(aiida_code_installed, aiida_localhost, 'neppo', 'neppo', 'sseff.nep.train',
                                'export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}', pytest.skip)


@pytest.fixture
def mace_code(aiida_code_installed, aiida_localhost):
    """This environment's ``aiida-sseff-mace`` wrapper (mace-torch behind the e3nn import fix) as an InstalledCode;
    mace-torch is in the dev extras, so a missing wrapper is a failure, not a skip."""
    pytest.importorskip('mace')
    return _console_script_code(aiida_code_installed, aiida_localhost, 'aiida-sseff-mace', 'mace', 'sseff.mace.train',
                                'export OMP_NUM_THREADS=2', lambda message: pytest.fail(f'{message}: pip install -e .'))
