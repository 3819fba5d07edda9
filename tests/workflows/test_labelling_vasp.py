"""``sseff.label`` with the VASP labeller, without VASP.

``mock-vasp`` is aiida-vasp's own test tool: a program installed with aiida-vasp that hashes the INCAR, KPOINTS and
POSCAR it is given, looks the hash up in a registry of *real* VASP calculations (inputs + outputs), and copies that
calculation's real outputs (vasprun.xml, OUTCAR, ...) into the working directory. The registry used here is aiida-vasp's
test data in ``../shared/reference/aiida-vasp`` (``MOCK_VASP_REG_BASE`` of ``aiida_vasp/utils/mock_code.py``), read in
place. POTCARs are licensed: aiida-vasp's test data holds dummy POTCARs (``test_data/potcar``) that it uploads as a
family, and so do we. The physics comes from VASP's real outputs; what is tested is our side: the k-mesh from a
spacing, the INCAR, aiida-vasp's restart handler in the chain, and the unit/sign conversion of the labels.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms

pytest.importorskip('aiida_vasp', reason='aiida-vasp (extra `vasp`) is not installed')

from aiida_sseff.data.dataset import LabelledDataset  # noqa: E402
from aiida_sseff.workflows.labelling import LabellingWorkChain  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'reference'
TEST_DATA = REFERENCE / 'aiida-vasp' / 'src' / 'aiida_vasp' / 'test_data'
# A real VASP calculation of 1-atom Si that aiida-vasp's VaspWorkChain restarted: NELM = 7 did not converge
# (calc-000), the handler set NELM = 150 (calc-001). Its INCAR, with the values below, is what the mock hashes.
NELM_REGISTRY = TEST_DATA / 'vasp_wc_nelm'
NELM_INCAR = {'ediff': 1e-09, 'encut': 240, 'ibrion': -1, 'isif': 3, 'ismear': 0, 'nelm': 7, 'nsw': -1,
              'potim': 0.01, 'sigma': 0.1}


@pytest.fixture(scope='module')
def registry() -> Path:
    if not (NELM_REGISTRY / 'calc-000' / 'out' / 'vasprun.xml').is_file():
        pytest.skip(f'aiida-vasp test data not found at {NELM_REGISTRY} (../shared/reference beside the repository)')
    return NELM_REGISTRY


@pytest.fixture
def mock_vasp_code(aiida_code_installed, aiida_localhost, registry):
    executable = shutil.which('mock-vasp', path=str(Path(sys.executable).parent)) or shutil.which('mock-vasp')
    if executable is None:
        pytest.skip('mock-vasp (installed with aiida-vasp) not found')
    aiida_localhost.set_minimum_job_poll_interval(0.0)
    return aiida_code_installed(label='mock-vasp', default_calc_job_plugin='vasp.vasp', filepath_executable=executable,
                                prepend_text=f'export MOCK_VASP_REG_BASE={registry.resolve()}')


@pytest.fixture
def potcar_family(aiida_profile, tmp_path, registry):
    """aiida-vasp's dummy Si POTCAR (test_data/potcar/Si) as a family; copied to tmp because the upload walker
    unpacks archives next to the files it finds."""
    from aiida_vasp.data.potcar import PotcarData

    source = TEST_DATA / 'potcar' / 'Si' / 'POTCAR'
    target = tmp_path / 'potcars' / 'Si'
    target.mkdir(parents=True)
    shutil.copy(source, target / 'POTCAR')
    name = 'mock-PBE'
    PotcarData.upload_potcar_family(str(tmp_path / 'potcars'), name, 'dummy POTCARs of aiida-vasp test data',
                                    stop_if_existing=False)
    return name


def silicon() -> Atoms:
    """The structure of the registry's POSCAR: one Si at (0.1, 0, 0) in an fcc cell of a = 3.9 Å."""
    cell = [[1.95, 1.95, 0.0], [0.0, 1.95, 1.95], [1.95, 0.0, 1.95]]
    return Atoms('Si', scaled_positions=[[0.1, 0.0, 0.0]], cell=cell, pbc=True)


def vasp_builder(code, family, dataset, incar, kpoints_spacing):
    overrides = {'vasp': {'incar': {}, 'potential_family': family, 'max_iterations': 3}}
    builder = LabellingWorkChain.get_builder_from_protocol(code, dataset, labeller='vasp', overrides=overrides,
                                                           options={'resources': {'num_machines': 1},
                                                                    'withmpi': False})
    builder.vasp.parameters = orm.Dict({'incar': incar})  # exactly the registry's INCAR, so the mock finds it
    if kpoints_spacing is None:
        builder.pop('kpoints_spacing', None)
    else:
        builder.kpoints_spacing = orm.Float(kpoints_spacing)
    return builder


def test_vasp_labels_through_mock_vasp_with_restart(aiida_profile, mock_vasp_code, potcar_family, registry):
    """kpoints_spacing 0.37 Å⁻¹ gives the registry's 8×8×8 mesh (|b| = 2π√3/3.9 Å = 2.791 Å⁻¹; 2.791/0.37 = 7.54 → 8);
    the first run does not converge in NELM = 7 steps, aiida-vasp's handler reruns it with NELM = 150."""
    from ase.io import read

    dataset = LabelledDataset([silicon()], require_labels=False)
    builder = vasp_builder(mock_vasp_code, potcar_family, dataset, NELM_INCAR, kpoints_spacing=0.37)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    vasp_chain = [n for n in node.called if n.process_label == 'VaspWorkChain'][0]
    calcs = sorted(vasp_chain.called, key=lambda n: n.ctime)
    assert len(calcs) == 2  # the restart by aiida-vasp's electronic-convergence handler
    assert calcs[0].inputs.parameters['nelm'] == 7 and calcs[1].inputs.parameters['nelm'] == 150
    mesh, _ = calcs[1].inputs.kpoints.get_kpoints_mesh()
    assert list(mesh) == [8, 8, 8]

    labelled = results['dataset'].get_ase()[0]
    # The same real vasprun.xml read independently by ASE (its own kbar → eV/Å³ conversion and sign flip)
    reference = read(registry / 'calc-001' / 'out' / 'vasprun.xml', index=-1)
    assert labelled.get_potential_energy() == pytest.approx(reference.get_potential_energy(force_consistent=True),
                                                            abs=1e-6)
    np.testing.assert_allclose(labelled.get_forces(), reference.get_forces(), atol=1e-6)
    np.testing.assert_allclose(labelled.get_stress(voigt=False), reference.get_stress(voigt=False), atol=1e-8)
    assert results['failures']['n_failed'] == 0


def test_vasp_gamma_only_writes_gamma_kpoints_and_failure_is_reported(aiida_profile, mock_vasp_code,
                                                                      potcar_family):
    """Γ only: the KPOINTS mesh is 1×1×1. The registry holds no such calculation, so mock-vasp refuses to run: the
    structure is left out, reported, and the WorkChain ends with ERROR_ALL_FAILED rather than a dataset."""
    dataset = LabelledDataset([silicon()], require_labels=False)
    builder = vasp_builder(mock_vasp_code, potcar_family, dataset, NELM_INCAR, kpoints_spacing=None)
    _, node = run_get_node(builder)
    assert node.exit_status == LabellingWorkChain.exit_codes.ERROR_ALL_FAILED.status
    calc = [n for n in node.called_descendants if n.process_label == 'VaspCalculation'][0]
    mesh, offset = calc.inputs.kpoints.get_kpoints_mesh()
    assert list(mesh) == [1, 1, 1] and list(offset) == [0, 0, 0]
    assert 'dataset' not in node.outputs


@pytest.mark.parametrize('tag', ['KSPACING', 'kspacing', 'KGAMMA'])
def test_kspacing_in_incar_refused(aiida_profile, mock_vasp_code, potcar_family, tag):
    dataset = LabelledDataset([silicon()], require_labels=False)
    builder = vasp_builder(mock_vasp_code, potcar_family, dataset, {**NELM_INCAR, tag: 0.25}, kpoints_spacing=0.37)
    with pytest.raises(ValueError, match='aiida-vasp always writes a KPOINTS file'):
        run_get_node(builder)


def test_element_without_potcar_refused(aiida_profile, mock_vasp_code, potcar_family):
    atoms = silicon() * (2, 1, 1)
    atoms[1].symbol = 'Li'  # the family holds Si only
    builder = vasp_builder(mock_vasp_code, potcar_family, LabelledDataset([atoms], require_labels=False),
                           NELM_INCAR, kpoints_spacing=0.37)
    with pytest.raises(ValueError, match=r'POTCAR family `mock-PBE` cannot describe .*Li'):
        run_get_node(builder)
