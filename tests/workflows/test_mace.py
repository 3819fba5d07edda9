"""``sseff.mace.train.base``: protocols, and a REAL run of the work chain (MACE-T0-I, 1 epoch, LLZO cells)."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.io import read

from aiida_sseff.data.dataset import LabelledDataset
from aiida_sseff.protocols.utils import ProtocolError
from aiida_sseff.workflows.mace import MaceTrainBaseWorkChain


@pytest.fixture(scope='module')
def llzo(aiida_profile, reference_dir):
    frames = read(reference_dir / 'llzo' / 'nep_training' / 'train.xyz', index='14:18')
    return LabelledDataset(frames[:3]).store(), LabelledDataset(frames[3:]).store()


def test_protocols(mace_code, llzo):
    assert set(MaceTrainBaseWorkChain.get_available_protocols()) == {'fast', 'balanced', 'stringent'}
    builder = MaceTrainBaseWorkChain.get_builder_from_protocol(mace_code, llzo[0], 'MACE-T1-E', protocol='fast',
                                                               overrides={'mace': {'parameters': {'lr': 0.005}}})
    parameters = builder.mace.parameters.get_dict()
    assert parameters['num_channels'] == 8 and parameters['max_num_epochs'] == 20  # fast
    assert parameters['pair_repulsion'] is True
    assert parameters['lr'] == 0.005 and parameters['r_max'] == 4.0
    assert builder.mace.variant.value == 'MACE-T1-E'
    assert builder.mace.metadata.options['device'] == 'cpu'
    with pytest.raises(ProtocolError, match='protocol `quick` unknown'):
        MaceTrainBaseWorkChain.get_builder_from_protocol(mace_code, llzo[0], 'MACE-T1-E', protocol='quick')


@pytest.mark.slow
def test_work_chain_trains(mace_code, llzo):
    train, test = llzo
    builder = MaceTrainBaseWorkChain.get_builder_from_protocol(
        mace_code, train, 'MACE-T0-I', protocol='fast', test=test,
        overrides={'mace': {'parameters': {'max_num_epochs': 1, 'valid_fraction': 0.34}}})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    assert len(node.called) == 1  # nothing to handle
    assert results['model'].base.attributes.get('num_interactions') == 1
    assert 'parity_test' in results and 'parity_validation' not in results  # mace's own held-out split
    assert results['results']['recomputed']['test']['force_mev_per_angstrom'] > 0
    assert isinstance(results['training_log'], orm.ArrayData)
