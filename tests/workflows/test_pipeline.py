"""The main job's WorkChain: real engine runs (CHGNet on a small Li2O cell), daemon on the ZeroMQ broker, archive."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_sseff.workflows.pipeline import SseffPipelineWorkChain

TINY = {
    'sampling': {'temperatures': [500.0, 1000.0], 'md': {'n_equilibration_steps': 5, 'n_steps': 20,
                                                          'snapshot_interval': 5, 'thermo_interval': 5,
                                                          'trajectory_interval': 5}},
    'selection': {'n_structures': 5},
}


def li2o():
    """Antifluorite Li2O (12 atoms), the structure pymatgen ships (pymatgen/util/structures/Li2O.json)."""
    import pymatgen.util
    from pymatgen.core import Structure

    path = Path(pymatgen.util.__file__).parent / 'structures' / 'Li2O.json'
    structure = Structure.from_file(path)
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    structure.remove_oxidation_states()
    conventional = SpacegroupAnalyzer(structure).get_conventional_standard_structure()
    return orm.StructureData(ase=AseAtomsAdaptor.get_atoms(conventional))


def tiny_builder(code, structure=None, overrides=None):
    from aiida_sseff.protocols.utils import recursive_merge

    return SseffPipelineWorkChain.get_builder_from_protocol(
        code, structure or li2o(), protocol='fast', overrides=recursive_merge(TINY, overrides or {})
    )


def file_digests(node) -> dict:
    """sha256 of every file in the repositories of a workflow, the processes it called, their inputs and outputs."""
    nodes = {}
    for process in [node, *node.called_descendants]:
        nodes[process.uuid] = process
        for link in process.base.links.get_incoming().all() + process.base.links.get_outgoing().all():
            nodes[link.node.uuid] = link.node
    digests = {}
    for item in nodes.values():
        for name in item.base.repository.list_object_names():
            try:
                content = item.base.repository.get_object_content(name, mode='rb')
            except IsADirectoryError:
                continue
            digests[(item.uuid, name)] = hashlib.sha256(content).hexdigest()
    return digests


@pytest.mark.slow
def test_pipeline_on_daemon_and_archive_round_trip(aiida_profile, aiida_config, aiida_profile_factory, engine_code,
                                                   submit_and_await, tmp_path):
    """Submitted to the daemon (ZeroMQ broker, no RabbitMQ): finishes, outputs in provenance, archive byte-identical."""
    node = submit_and_await(tiny_builder(engine_code), timeout=600)
    assert node.is_finished_ok, node.exit_message
    candidates = node.outputs.candidates
    assert candidates.n_structures == 2 * 4  # 20 steps / snapshot every 5 steps, two temperatures
    dataset = node.outputs.dataset
    assert dataset.n_structures == 5 and dataset.has_labels and dataset.has_virial
    assert dataset.creator.process_label == 'EngineLabelCalculation'
    assert node.outputs.selected.creator.process_label == 'select_structures'
    energies = np.array([atoms.get_potential_energy() / len(atoms) for atoms in dataset.get_ase()])
    # CHGNet on Li2O gives about -4.8 eV/atom (MP-compatible PBE: -4.77 eV/atom for mp-1960); MD at ≤ 1000 K stays near
    assert np.all((energies > -5.3) & (energies < -4.2)), energies

    # export, then import into a second, empty profile: every repository file must come back byte for byte
    digests = file_digests(node)
    assert any(name == 'trajectory.npz' for _, name in digests)
    archive = tmp_path / 'pipeline.aiida'
    from aiida.tools.archive import create_archive, import_archive

    create_archive([node], filename=archive)
    uuid = node.uuid
    with aiida_profile_factory(aiida_config, name='import-target'):
        import_archive(archive)
        imported = orm.load_node(uuid)
        assert imported.is_finished_ok
        assert file_digests(imported) == digests


def test_pipeline_refuses_structure_without_li(aiida_profile, engine_code):
    from ase.build import bulk

    copper = orm.StructureData(ase=bulk('Cu', 'fcc', a=3.6, cubic=True))
    with pytest.raises(ValueError, match='holds no Li'):
        run_get_node(tiny_builder(engine_code, copper))


@pytest.mark.parametrize(
    'overrides, message',
    [
        ({'sampling': {'temperatures': []}}, 'temperatures is empty'),
        ({'sampling': {'temperatures': [300.0, -5.0]}}, 'must be positive'),
        ({'sampling': {'md': {'snapshot_interval': 0}}}, 'snapshot_interval must be > 0'),
        ({'selection': {'n_structures': 0}}, 'at least 1'),
    ],
)
def test_pipeline_bad_inputs(aiida_profile, engine_code, overrides, message):
    with pytest.raises(ValueError, match=message):
        run_get_node(tiny_builder(engine_code, overrides=overrides))


def test_pipeline_too_few_candidates(aiida_profile, engine_code):
    """More structures asked for than MD produced: a clear exit code, not a crash (EMT would not know Li: CHGNet)."""
    overrides = {'sampling': {'temperatures': [600.0], 'md': {'n_steps': 10, 'n_equilibration_steps': 0}},
                 'selection': {'n_structures': 50}}
    _, node = run_get_node(tiny_builder(engine_code, overrides=overrides))
    assert node.exit_status == SseffPipelineWorkChain.exit_codes.ERROR_TOO_FEW_CANDIDATES.status
    assert 'sample longer' in node.exit_message


def test_protocols_available():
    protocols = SseffPipelineWorkChain.get_available_protocols()
    assert set(protocols) == {'fast', 'balanced', 'stringent'}
    assert SseffPipelineWorkChain.get_default_protocol() == 'balanced'
    fast = SseffPipelineWorkChain.get_protocol_inputs('fast')
    assert fast['sampling']['md']['n_steps'] == 250 and fast['sampling']['md']['timestep_fs'] == 2.0
    with pytest.warns(UserWarning, match='sampling.md.n_stepz'):
        SseffPipelineWorkChain.get_protocol_inputs('fast', {'sampling': {'md': {'n_stepz': 3}}})


@pytest.mark.slow
def test_pipeline_training_and_diffusion_stages_are_wired(aiida_profile, engine_code, aiida_code_installed):
    """Sample → label → train (neppo) → diffusion of the trained model, on a tiny Li2O run.

    A model from five structures and 30 training steps cannot give a meaningful D: what is tested is that the trained
    model reaches the diffusion stage and that whatever the diffusion reports comes back as the pipeline's outcome.
    The physics of each stage is tested in its own module (test_training.py, test_diffusion.py).
    """
    import shutil
    import sys

    neppo = aiida_code_installed(label='neppo-pipeline', default_calc_job_plugin='sseff.nep.train',
                                 filepath_executable=shutil.which('neppo', path=str(Path(sys.executable).parent)))
    overrides = {
        'training': {'protocol': 'fast', 'overrides': {'n_replicas': 1, 'parameters': {'generation': 30, 'zbl': 2.0},
                                                       'program_parameters': {'neppo': {'output_interval': 10}}}},
        'diffusion': {'protocol': 'fast', 'overrides': {'temperatures': [800.0, 1200.0],
                                                        'md': {'equilibration_ps': 0.05, 'production_ps': 0.2,
                                                               'sample_interval_fs': 10.0}}},
    }
    from aiida_sseff.protocols.utils import recursive_merge

    builder = SseffPipelineWorkChain.get_builder_from_protocol(
        engine_code, li2o(), protocol='fast', overrides=recursive_merge(TINY, overrides), training_code=neppo,
        diffusion_code=engine_code,
    )
    _, node = run_get_node(builder)
    training = node.base.links.get_outgoing(link_label_filter='training').one().node
    diffusion = node.base.links.get_outgoing(link_label_filter='diffusion').one().node
    assert training.is_finished_ok, training.exit_message
    assert node.outputs.model.uuid == training.outputs.model.uuid
    assert diffusion.inputs.model.uuid == training.outputs.model.uuid
    assert [float(t) for t in diffusion.inputs.temperatures.get_list()] == [800.0, 1200.0]
    if diffusion.is_finished_ok:
        assert node.is_finished_ok and node.outputs.transport['Ea_eV'] == diffusion.outputs.results['Ea_eV']
    else:
        assert node.exit_status == SseffPipelineWorkChain.exit_codes.ERROR_DIFFUSION_FAILED.status
        assert str(diffusion.exit_status) in node.exit_message or diffusion.exit_message in node.exit_message


def test_diffusion_stage_needs_training():
    with pytest.raises(ValueError, match='needs a trained model'):
        SseffPipelineWorkChain.get_builder_from_protocol(None, None, protocol='fast', diffusion_code=object())


@pytest.mark.slow
def test_invalid_stage_inputs_give_an_exit_code_not_a_crash(aiida_profile, engine_code, aiida_code_installed):
    """A stage whose protocol overrides its own validator refuses ends the pipeline with the stage's exit code."""
    import shutil
    import sys

    neppo = aiida_code_installed(label='neppo-pipeline', default_calc_job_plugin='sseff.nep.train',
                                 filepath_executable=shutil.which('neppo', path=str(Path(sys.executable).parent)))
    from aiida_sseff.protocols.utils import recursive_merge

    overrides = recursive_merge(TINY, {'training': {'protocol': 'fast', 'overrides': {'n_replicas': 0}}})
    builder = SseffPipelineWorkChain.get_builder_from_protocol(engine_code, li2o(), protocol='fast',
                                                               overrides=overrides, training_code=neppo)
    _, node = run_get_node(builder)
    assert node.exit_status == SseffPipelineWorkChain.exit_codes.ERROR_TRAINING_FAILED.status
    assert 'n_replicas must be at least 1' in node.exit_message
