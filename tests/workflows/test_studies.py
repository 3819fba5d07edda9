"""``sseff.study.reference_quality``: two references of the same structures, compared per element."""


import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.io import read
from ase.spacegroup import crystal

from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.data.model import NepModel
from aiida_sseff.workflows.studies import ReferenceQualityWorkChain, compare_labels


def llzo(reference_dir, n):
    return read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index=f':{n}')


def test_compare_labels_reproduces_the_nep_training_rmse(reference_dir):
    """DFT labels of the real LLZO set against the real NEP model trained on them: 36.03 meV/Å.

    The number is GPUMD's own final force RMSE in shared/reference/llzo/nep_training/loss.out (0.03603 eV/Å).
    """
    from calorine.calculators import CPUNEP

    dft = {i: atoms for i, atoms in enumerate(llzo(reference_dir, 25))}
    nep = {}
    for i, atoms in dft.items():
        copy = atoms.copy()
        copy.calc = CPUNEP(str(reference_dir / 'llzo' / 'nep25_zbl.txt'))
        copy.get_forces()
        nep[i] = copy
    result = compare_labels(dft, nep)
    assert result['n_structures'] == 25
    assert result['force_rmse_mev_per_angstrom'] == pytest.approx(36.03, rel=0.01)
    assert set(result['force_rmse_per_element_mev_per_angstrom']) == {'Li', 'La', 'Zr', 'O'}
    # GPUMD's energy RMSE (0.12 meV/atom in loss.out) is also after removing the mean offset
    assert result['energy_rmse_mev_per_atom'] < 1.0


def test_compare_labels_refuses_different_structures(reference_dir):
    a = {0: llzo(reference_dir, 1)[0]}
    b_atoms = a[0].copy()
    b_atoms.positions[0] += 0.1
    b_atoms.calc = a[0].calc
    with pytest.raises(ValueError, match='structure 0 differs'):
        compare_labels(a, {0: b_atoms})
    with pytest.raises(ValueError, match='no structure in common'):
        compare_labels(a, {5: b_atoms})


@pytest.mark.slow
def test_reference_quality_with_two_surrogates(aiida_profile, engine_code, reference_dir):
    """CHGNet against the LLZO NEP model as the two 'references' of three real LLZO structures."""
    structures = LabelledDataset(llzo(reference_dir, 3))
    builder = ReferenceQualityWorkChain.get_builder_from_protocol(engine_code, structures, labeller='surrogate',
                                                                  protocols=('fast', 'fast'))
    builder.reference_b.surrogate.calculator = orm.Dict({'kind': 'nep'})
    builder.reference_b.surrogate.model = NepModel(reference_dir / 'llzo' / 'nep25_zbl.txt')
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    comparison = results['comparison'].get_dict()
    assert comparison['n_structures'] == 3
    # the calcfunction's numbers are those of the two output datasets, matched by source_index
    a = {i: atoms for i, atoms in enumerate(results['reference_a']['dataset'].get_ase())}
    b = {i: atoms for i, atoms in enumerate(results['reference_b']['dataset'].get_ase())}
    direct = compare_labels(a, b)
    assert comparison['force_rmse_mev_per_angstrom'] == pytest.approx(direct['force_rmse_mev_per_angstrom'])
    # CHGNet (PBE, MP) against a NEP fitted to this set's DFT: different references, tens to hundreds of meV/Å
    assert 10 < comparison['force_rmse_mev_per_angstrom'] < 500
    assert comparison['force_rmse_per_element_mev_per_angstrom'].keys() == {'Li', 'La', 'Zr', 'O'}
    # the report's table of label differences is the stored comparison, key by key
    from aiida_sseff.report.render import build_report, report_json

    [section] = [s for s in report_json(build_report(node))['sections']
                 if s['entry_point'] == 'sseff.study.reference_quality']
    rows = dict(map(tuple, section['blocks'][1]['table']['rows']))
    assert rows['force_rmse_mev_per_angstrom'] == comparison['force_rmse_mev_per_angstrom']
    assert rows['n_structures'] == 3


@pytest.mark.slow
def test_gamma_against_kmesh_with_cp2k(aiida_profile, cp2k_code):
    """The seed paper's experiment in miniature: Γ-only against a k-mesh, real CP2K DFT on a rattled Li2O cell."""
    atoms = crystal(['O', 'Li'], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=225, cellpar=[4.61, 4.61, 4.61, 90, 90, 90])
    atoms.rattle(0.05, seed=3)
    structures = LabelledDataset([atoms], require_labels=False)
    builder = ReferenceQualityWorkChain.get_builder_from_protocol(
        cp2k_code, structures, labeller='cp2k', protocols=('fast', 'fast'),
        overrides=(None, {'kpoints_spacing': 0.3}),  # 2π/4.61/0.3 → a 5×5×5 mesh
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    comparison = results['comparison'].get_dict()
    assert 'kpoints_spacing' not in node.inputs.reference_a and node.inputs.reference_b.kpoints_spacing.value == 0.3
    # Γ only in a 4.6 Å cell is one k-point for a Brillouin zone that needs ~5 per direction: the force error is of
    # the order of the forces themselves (0.1-1 eV/Å here; measured 346 meV/Å), the seed paper's point taken to the
    # extreme. A value near zero would mean the mesh was not used; above 2 eV/Å, a broken calculation.
    assert 30 < comparison['force_rmse_mev_per_angstrom'] < 2000
    assert comparison['force_rmse_per_element_mev_per_angstrom'].keys() == {'Li', 'O'}
    assert np.isfinite(comparison['stress_rmse_gpa'])


def test_study_refuses_diffusion_without_training(aiida_profile, engine_code):
    structures = LabelledDataset([crystal(['Li'], [(0, 0, 0)], spacegroup=229, cellpar=[3.44] * 3 + [90] * 3)],
                                 require_labels=False)
    builder = ReferenceQualityWorkChain.get_builder_from_protocol(engine_code, structures, labeller='surrogate',
                                                                  protocols=('fast', 'fast'),
                                                                  diffusion_code=engine_code)
    with pytest.raises(ValueError, match='needs models'):
        run_get_node(builder)


def test_cli_reference_quality_refuses_unreadable_file(aiida_profile, tmp_path):
    from click.testing import CliRunner

    from aiida_sseff.cli import cmd_root

    bad = tmp_path / 'bad.xyz'
    bad.write_text('not an xyz file\n')
    result = CliRunner().invoke(cmd_root, ['launch', 'reference-quality', str(bad), '--code', 'x', '--no-daemon'])
    assert result.exit_code != 0
    assert 'cannot read' in result.output
