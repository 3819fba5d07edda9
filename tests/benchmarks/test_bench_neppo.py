"""The non-timing helpers of benchmarks/bench_neppo.py: the race trains what the protocols give a neppo training, and
the held-out split keeps every structure once. No speed is asserted (speed lives in the benchmark's output only)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope='module')
def bench(benchmark_module):
    return benchmark_module('bench_neppo')


@pytest.mark.parametrize('protocol', ['fast', 'balanced', 'stringent'])
def test_protocol_settings_are_what_the_work_chain_passes_to_neppo(bench, protocol, neppo_code):
    """bench_neppo reads training.yaml without AiiDA: its merge must equal get_builder_from_protocol's parameters of
    a neppo training, or the race would measure settings the protocol does not use."""
    from aiida_sseff.workflows.training import NepTrainingWorkChain

    builder = NepTrainingWorkChain.get_builder_from_protocol(neppo_code, protocol=protocol, program='neppo')
    passed = builder.training.nep.parameters.get_dict()
    architecture, training = bench.protocol_settings(protocol)
    assert {**architecture, **training} == passed


def test_split_keeps_every_structure_once(bench):
    train, test = bench.split(list(range(25)), n_test=5, seed=0)
    assert len(train) == 20 and len(test) == 5 and sorted(train + test) == list(range(25))
    assert bench.split(list(range(25)), 5, 0) == (train, test)  # the same split for every peer of a race
