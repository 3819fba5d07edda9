"""The non-timing helpers of benchmarks/bench_architectures.py: a neppo training makes a loadable model and the
MACE log reader finds the epoch intervals. No speed is asserted (speed lives in the benchmark's output only)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope='module')
def bench(benchmark_module):
    return benchmark_module('bench_architectures')


def test_mace_epoch_seconds_reads_log_timestamps(bench):
    """Intervals between mace_run_train's `Epoch N:` lines (format of mace-torch 0.3.16's log); other lines
    and the `Initial:` evaluation are not epochs."""
    log = ('2026-12-02 00:18:32.085 INFO: Started training, reporting errors on validation set\n'
           '2026-12-02 00:18:33.919 INFO: Initial: head: Default, loss=76.58969457\n'
           '2026-12-02 00:18:35.984 INFO: Epoch 0: head: Default, loss=76.42101965\n'
           '2026-12-02 00:18:36.417 INFO: Epoch 1: head: Default, loss=76.27151531\n'
           '2026-12-02 00:18:59.000 INFO: Epoch 2: head: Default, loss=76.1\n'
           '2026-12-02 00:19:00.000 INFO: Training complete\n')
    assert bench.mace_epoch_seconds(log) == pytest.approx([0.433, 22.583])
    assert bench.mace_epoch_seconds('no epochs here') == []


@pytest.mark.reference
def test_train_neppo_writes_a_model_calorine_loads(bench, reference_dir, tmp_path):
    """One full-batch neppo step on two LLZO cells: the nep.txt loads in calorine with the set's elements and the
    benchmark's architecture, and neppo's `ms per step` was found in its log. 14 s at load 6.5 on the 2-core
    machine (55 s at load 10): neppo runs as a subprocess that imports torch."""
    from calorine.nep import read_model

    from aiida_sseff.io.extxyz import read_train_xyz

    structures = read_train_xyz(reference_dir / 'llzo' / 'nep_training' / 'train.xyz')[:2]
    result = bench.train_neppo(structures, tmp_path / 'nep', steps=1)
    assert 'refused' not in result, result.get('refused')
    model = read_model(str(result['model']))
    assert sorted(model.types) == sorted(bench.ELEMENTS)
    assert model.radial_cutoff == pytest.approx(bench.NEP_ARCHITECTURE['cutoff'][0])
    assert result['ms_per_step'] > 0
