"""qNEP (NEP with charges) end to end: the protocol override that selects it, a REAL neppo training of a charge model
through ``sseff.nep.train`` on the LLZO DFT set, and a short engine MD (``sseff.engine.md``, calorine CPUNEP) with
the trained model, checked for energy conservation."""

from __future__ import annotations

import warnings
from importlib import resources

import numpy as np
import pytest
import yaml
from aiida import orm
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_sseff.calculations.engine import EngineMdCalculation
from aiida_sseff.calculations.nep import NepTrainCalculation
from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.workflows.training import NepTrainingWorkChain

#: a tiny charge model: 30 AdamW steps on 3 structures of 192 atoms take ~15 s on one core
TINY_QNEP = {'cutoff': [5, 4], 'n_max': [2, 2], 'basis_size': [4, 4], 'l_max': [4, 0, 0], 'neuron': 4,
             'charge_mode': 1, 'batch': 3, 'generation': 30, 'output_interval': 10}


def qnep_overrides() -> dict:
    """The `overrides` of the `qnep` architecture in protocols/training.yaml."""
    text = resources.files('aiida_sseff.protocols').joinpath('training.yaml').read_text()
    return yaml.safe_load(text)['architectures']['qnep']['overrides']


@pytest.fixture(scope='module')
def llzo_sets(aiida_profile, reference_dir):
    """The first 4 real LLZO structures (192 atoms, DFT labels): 3 to train on, 1 as test set."""
    from aiida_sseff.io.extxyz import read_train_xyz

    structures = read_train_xyz(reference_dir / 'llzo' / 'nep_training' / 'train.xyz')[:4]
    return LabelledDataset(structures[:3]).store(), LabelledDataset(structures[3:]).store()


@pytest.mark.reference
@pytest.mark.parametrize('program', ['neppo', 'nep'])
def test_qnep_architecture_override(neppo_code, llzo_sets, tmp_path, program):
    """overrides={'parameters': {'charge_mode': 1}} on any protocol gives a charge model's nep.in, for neppo and for
    GPUMD nep, without an unknown-key warning."""
    from aiida.common.folders import Folder

    assert qnep_overrides() == {'parameters': {'charge_mode': 1}}
    train, test = llzo_sets
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        builder = NepTrainingWorkChain.get_builder_from_protocol(neppo_code, train, protocol='fast',
                                                                 overrides=qnep_overrides(), program=program)
    parameters = builder.training.nep.parameters.get_dict()
    assert parameters['charge_mode'] == 1
    process = instantiate_process(get_manager().get_runner(), NepTrainCalculation, code=neppo_code,
                                  program=orm.Str(program), train=train, test=test,
                                  parameters=orm.Dict(parameters))
    (tmp_path / 'sandbox').mkdir()
    process.prepare_for_submission(Folder(str(tmp_path / 'sandbox')))
    lines = (tmp_path / 'sandbox' / 'nep.in').read_text().splitlines()
    assert 'charge_mode 1' in lines and lines[0] == 'type 4 La Li O Zr'


@pytest.mark.slow
@pytest.mark.reference
def test_qnep_trained_by_neppo_runs_engine_md(neppo_code, engine_code, llzo_sets):
    """Train a charge model with `neppo train --device cpu` through sseff.nep.train, then run 40 NVE steps of the
    trained model with the CPU engine (calorine CPUNEP: short-range network + charges + Ewald electrostatics).

    Checks: the model is a potential with charges; the charge RMSE recomputed from charge_*.out equals loss.out's to
    its print precision; and NVE conserves the total energy (measured: largest drift 1.4e-7 eV/atom over 40 x 0.5 fs
    while the kinetic energy swings by 2.3e-3 eV/atom), which holds only if the engine's forces are the gradient of
    its energy, Coulomb part included. About 140 s on a loaded 2-core machine, most of it the training's CalcJob."""
    train, test = llzo_sets
    results, node = run_get_node(NepTrainCalculation, code=neppo_code, train=train, test=test,
                                 parameters=orm.Dict(TINY_QNEP), seed=orm.Int(1))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    model = results['model']
    assert model.base.attributes.get('model_type') == 'potential_with_charges'
    assert model.base.attributes.get('charge_mode') == 1 and model.base.attributes.get('model_header') == 'nep4_charge1'
    summary = results['results'].get_dict()
    for label in ('train', 'test'):
        assert summary['recomputed'][label]['charge_e_per_atom'] == pytest.approx(
            summary['loss_out'][label]['charge_e_per_atom'], abs=0.6e-5)
    assert results['parity_train'].get_array('charge_predicted').shape == (3 * 192,)

    structure = orm.StructureData(ase=test.get_ase()[0])
    parameters = {'ensemble': 'nve', 'temperature_K': 300.0, 'timestep_fs': 0.5, 'n_steps': 40, 'thermo_interval': 5,
                  'trajectory_interval': 10, 'seed': 3}
    md, md_node = run_get_node(EngineMdCalculation, code=engine_code, structure=structure, model=model,
                               calculator=orm.Dict({'kind': 'nep'}), parameters=orm.Dict(parameters))
    assert md_node.is_finished_ok, (md_node.exit_status, md_node.exit_message)
    # the results node records what computed the forces: calorine's version (and torch not loaded for NEP)
    from importlib.metadata import version

    software = md['results']['software']
    assert software['calorine'] == version('calorine') and 'torch' not in software
    thermo = md['thermo']
    n_atoms = len(structure.sites)
    total = thermo.get_array('total_energy_eV') / n_atoms
    kinetic = thermo.get_array('kinetic_energy_eV') / n_atoms
    assert len(total) >= 8
    drift = float(np.max(np.abs(total - total[0])))
    swing = float(np.ptp(kinetic))
    assert drift < 1e-5, f'NVE total energy drifts by {drift:.2e} eV/atom'
    assert swing > 100 * drift, f'kinetic energy swing {swing:.2e} eV/atom: the dynamics barely moved'
