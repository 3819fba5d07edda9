"""The non-timing helpers of benchmarks/bench_neppo.py: the race trains what the protocols give a neppo training, and
the held-out split keeps every structure once. No speed is asserted (speed lives in the benchmark's output only)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / 'benchmarks' / 'bench_neppo.py'


@pytest.fixture(scope='module')
def bench():
    sys.path.insert(0, str(BENCHMARK.parent))  # bench_neppo imports _harness from its folder
    spec = importlib.util.spec_from_file_location('bench_neppo', BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
