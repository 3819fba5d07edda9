"""``sseff.label``: the surrogate labeller with the real engine (CHGNet, EMT), the CP2K labeller with the real CP2K,
and the bad inputs refused before anything is submitted."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk
from ase.spacegroup import crystal

from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.io import cp2k as cp2k_io
from aiida_sseff.workflows.labelling import LabellingWorkChain

CHEAP_CP2K = {'basis_set': 'SZV-MOLOPT-SR-GTH', 'cutoff_Ry': 300.0, 'rel_cutoff_Ry': 40.0, 'scf': {'eps_scf': 1e-6}}


def li2o(a: float = 4.61, rattle: float = 0.0, seed: int = 1):
    """Conventional antifluorite Li2O, 12 atoms (experimental a = 4.611 Å)."""
    atoms = crystal(['O', 'Li'], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=225, cellpar=[a, a, a, 90, 90, 90])
    if rattle:
        atoms.rattle(rattle, seed=seed)
    return atoms


def lif(a: float = 4.03):
    """Rocksalt LiF, primitive cell (2 atoms; experimental a = 4.03 Å)."""
    return bulk('LiF', 'rocksalt', a=a)


def unlabelled(*structures):
    for index, atoms in enumerate(structures):
        atoms.info['config_type'] = f'test{index}'
    return LabelledDataset(list(structures), require_labels=False)


# --- surrogate ---------------------------------------------------------------------------------------------------------
def test_surrogate_chgnet_labels_in_input_order(aiida_profile, engine_code):
    """CHGNet through the engine, three Li cells in two batch jobs: labels back in input order, each a CalcJob."""
    from chgnet.model.dynamics import CHGNetCalculator

    structures = [li2o(rattle=0.05, seed=1), lif(), li2o(a=4.5, rattle=0.05, seed=2)]
    dataset = unlabelled(*[s.copy() for s in structures])
    builder = LabellingWorkChain.get_builder_from_protocol(engine_code, dataset, labeller='surrogate',
                                                           overrides={'batch_size': 2})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    labelled = results['dataset'].get_ase()
    assert [a.info['source_index'] for a in labelled] == [0, 1, 2]
    assert [a.info['config_type'] for a in labelled] == ['test0', 'test1', 'test2']
    jobs = [n for n in node.called if n.process_label == 'EngineLabelCalculation']
    assert len(jobs) == 2  # ceil(3 / 2) batch jobs
    assert results['failures']['n_failed'] == 0 and results['failures']['n_labelled'] == 3
    # the same numbers as CHGNet called directly (the engine runs the same pretrained weights on CPU, float32)
    calculator = CHGNetCalculator(use_device='cpu', on_isolated_atoms='ignore')
    for original, copy in zip(structures, labelled, strict=True):
        original.calc = calculator
        assert copy.get_potential_energy() == pytest.approx(original.get_potential_energy(), abs=1e-3)
        np.testing.assert_allclose(copy.get_forces(), original.get_forces(), atol=2e-3)
    # CHGNet on Li2O: about -4.8 eV/atom (MP PBE for mp-1960: -4.77 eV/atom); LiF about -4.9 eV/atom (mp-1138)
    assert -5.3 < labelled[0].get_potential_energy() / 12 < -4.3
    assert -5.5 < labelled[1].get_potential_energy() / 2 < -4.3


def test_surrogate_failure_is_left_out_and_reported(aiida_profile, engine_code):
    """EMT knows Cu but not Li: the Li cell's job fails, the structure is left out and listed; Cu is labelled."""
    dataset = unlabelled(bulk('Cu', 'fcc', a=3.6, cubic=True), lif())
    builder = LabellingWorkChain.get_builder_from_protocol(engine_code, dataset, labeller='surrogate',
                                                           overrides={'batch_size': 1,
                                                                      'surrogate': {'calculator': {'kind': 'emt'}}})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    assert results['dataset'].n_structures == 1 and results['dataset'].elements == ['Cu']
    report = results['failures'].get_dict()
    assert report['labelled_indices'] == [0] and [f['index'] for f in report['failures']] == [1]
    assert 'Li' in report['failures'][0]['message']


# --- bad input ---------------------------------------------------------------------------------------------------------
def _cp2k_builder(code, dataset, **overrides):
    builder = LabellingWorkChain.get_builder_from_protocol(code, dataset, labeller='cp2k', protocol='fast',
                                                           overrides=overrides or None)
    return builder


@pytest.mark.parametrize('case, message', [
    ('overlap', 'structure 1: atoms 0 .* closer than 0.5 Å'),
    ('element', r'element\(s\) U: no pseudopotential `GTH-PBE`'),
    ('basis', r'element\(s\) Li: no basis set `TZV2P-MOLOPT-GTH`'),
    ('kspacing_zero', 'kpoints_spacing must be > 0'),
    ('kspacing_negative', 'kpoints_spacing must be > 0'),
    ('empty', 'selection of structures to label is empty'),
    ('out_of_range', r'indices \[5\] out of range'),
    ('labeller', 'labeller `dft` unknown'),
    ('kspacing_in_parameters', 'kpoints_spacing input of the WorkChain'),
])
def test_bad_input_refused_before_submission(aiida_profile, cp2k_code, case, message):
    close = li2o()
    close.positions[0] = close.positions[4] + [0.2, 0.1, 0.0]
    structures = [li2o(), close if case == 'overlap' else li2o(rattle=0.02)]
    if case == 'element':
        structures[1][0].symbol = 'U'
    builder = _cp2k_builder(cp2k_code, unlabelled(*structures))
    if case == 'basis':
        builder.cp2k.cp2k.parameters = orm.Dict({'basis_set': 'TZV2P-MOLOPT-GTH'})
    elif case == 'kspacing_zero':
        builder.kpoints_spacing = orm.Float(0.0)
    elif case == 'kspacing_negative':
        builder.kpoints_spacing = orm.Float(-0.25)
    elif case == 'empty':
        builder.indices = orm.List([])
    elif case == 'out_of_range':
        builder.indices = orm.List([0, 5])
    elif case == 'labeller':
        builder.labeller = orm.Str('dft')
    elif case == 'kspacing_in_parameters':
        builder.cp2k.cp2k.parameters = orm.Dict({'kpoints_spacing': 0.3})
    with pytest.raises(ValueError, match=message):
        run_get_node(builder)


def test_missing_labeller_inputs_refused(aiida_profile, engine_code):
    builder = LabellingWorkChain.get_builder()
    builder.structures = unlabelled(lif())
    builder.labeller = orm.Str('cp2k')
    with pytest.raises(ValueError, match='needs the inputs cp2k.cp2k.code'):
        run_get_node(builder)


def test_protocols():
    protocols = LabellingWorkChain.get_available_protocols()
    assert set(protocols) == {'fast', 'balanced', 'gamma', 'stringent'}
    assert LabellingWorkChain.get_protocol_inputs('balanced')['kpoints_spacing'] == 0.25  # the seed's dense KSPACING
    assert LabellingWorkChain.get_protocol_inputs('gamma')['kpoints_spacing'] is None
    assert LabellingWorkChain.get_protocol_inputs('balanced')['vasp']['incar']['lreal'] is False


# --- CP2K --------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cp2k_labels_two_cells(aiida_profile, cp2k_code):
    """Two Li cells labelled by real CP2K with a k-point mesh from a spacing, each a Cp2kBaseWorkChain in provenance;
    the dataset carries exactly the numbers the CalcJobs parsed."""
    structures = [lif(a=3.95), li2o(a=4.50, rattle=0.04)]
    dataset = unlabelled(*structures)
    builder = _cp2k_builder(cp2k_code, dataset, kpoints_spacing=1.0, cp2k={'parameters': CHEAP_CP2K})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    labelled = results['dataset']
    assert labelled.n_structures == 2 and labelled.has_labels and labelled.has_virial
    assert results['failures']['n_failed'] == 0
    assert labelled.creator.process_label == 'collect_single_points'
    bases = sorted((n for n in node.called if n.process_label == 'Cp2kBaseWorkChain'), key=lambda n: n.label)
    assert len(bases) == 2
    for base, atoms in zip(bases, labelled.get_ase(), strict=True):
        calc = [c for c in base.called if c.process_label == 'Cp2kCalculation'][-1]
        text = calc.base.repository.get_object_content('aiida.inp')
        mesh = cp2k_io.kpoint_mesh(atoms.cell, 1.0)  # LiF 3×3×3, Li2O 2×2×2
        assert 'SCHEME MONKHORST-PACK {} {} {}'.format(*mesh) in text
        # the dataset's extxyz keeps ~8 significant digits
        np.testing.assert_allclose(atoms.get_forces(), calc.outputs.labels.get_array('forces'), atol=1e-6)
        assert atoms.get_potential_energy() == pytest.approx(calc.outputs.labels.get_array('energy')[0])
    # both cells are compressed relative to experiment (LiF 3.95 < 4.03 Å, Li2O 4.50 < 4.61 Å): negative ASE stress
    for atoms in labelled.get_ase():
        assert np.trace(atoms.get_stress(voigt=False)) < 0


# --- the surrogate reference in the provenance graph ------------------------------------------------------------------
def datasets_labelled_by(reference_sha256: str) -> list:
    """The docs' QueryBuilder recipe (docs/user/labelling.md): the final datasets of sseff.label that one reference
    labelled, found from the sha256 of its weights."""
    from aiida_sseff.data.reference import SurrogateReference

    query = orm.QueryBuilder()
    query.append(SurrogateReference, filters={'attributes.weights_sha256': reference_sha256}, tag='reference')
    query.append(orm.CalcFunctionNode, with_incoming='reference', filters={'attributes.process_label':
                                                                           'collect_batches'}, tag='merge')
    query.append(LabelledDataset, with_incoming='merge', edge_filters={'label': 'dataset'}, project='uuid')
    return sorted(query.all(flat=True))


@pytest.mark.slow
def test_reference_is_a_node_linked_to_every_dataset_it_labelled(aiida_profile, engine_code):
    """CHGNet as a node: package, version and the sha256 of the checkpoint its calculator loads (the file named in
    chgnet.model.model.CHGNet.load for 0.3.0); the same node for two labellings, an input of every job; a query
    from it finds exactly the datasets it labelled, not those of another reference (EMT)."""
    import hashlib
    import importlib.metadata
    from pathlib import Path

    import chgnet

    weights = Path(chgnet.__file__).parent / 'pretrained' / '0.3.0' / 'chgnet_0.3.0_e29f68s314m37.pth.tar'
    sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()
    runs = []
    for structures, calculator in (([lif()], 'chgnet'), ([li2o(rattle=0.05)], 'chgnet'),
                                   ([bulk('Cu', 'fcc', a=3.6)], 'emt')):
        builder = LabellingWorkChain.get_builder_from_protocol(
            engine_code, unlabelled(*structures), labeller='surrogate',
            overrides={'surrogate': {'calculator': {'kind': calculator}}})
        results, node = run_get_node(builder)
        assert node.is_finished_ok, node.exit_message
        runs.append((results, node))
    (first, first_node), (second, _), (emt, _) = runs
    reference = first['reference']
    assert (reference.kind, reference.package, reference.model_name) == ('chgnet', 'chgnet', 'CHGNet 0.3.0')
    assert reference.version == importlib.metadata.version('chgnet')
    assert reference.weights_sha256 == sha256
    assert second['reference'].uuid == reference.uuid  # one node per reference
    assert emt['reference'].uuid != reference.uuid and emt['reference'].weights_sha256 is None
    jobs = [n for n in first_node.called if n.process_label == 'EngineLabelCalculation']
    assert jobs and all(job.inputs.reference.uuid == reference.uuid for job in jobs)
    assert datasets_labelled_by(sha256) == sorted([first['dataset'].uuid, second['dataset'].uuid])


def test_labelling_job_refuses_a_reference_of_another_model(aiida_profile, engine_code):
    from aiida_sseff.calculations.engine import EngineLabelCalculation
    from aiida_sseff.data.reference import SurrogateReference

    emt = SurrogateReference.get_or_create({'kind': 'emt'})
    assert SurrogateReference.get_or_create({'kind': 'emt'}).uuid == emt.uuid
    builder = EngineLabelCalculation.get_builder()
    builder.code = engine_code
    builder.structures = unlabelled(lif())
    builder.calculator = orm.Dict({'kind': 'chgnet'})
    builder.reference = emt
    with pytest.raises(ValueError, match=r'reference <\d+>: the reference is of kind `emt`, the calculator kind is '
                                         '`chgnet`'):
        run_get_node(builder)
