"""The non-timing parts of benchmarks/bench_threads.py and of bench_architectures' MD workers, on ASE's EMT (a toy
potential, fast): the engine runs report the threads they were given, a batch past its timeout is stopped and
flagged, and an MD worker answers one JSON line per block of steps. No speed is asserted."""

from __future__ import annotations

import pytest


@pytest.fixture(scope='module')
def copper():
    from ase.build import bulk

    return bulk('Cu', 'fcc', a=3.6, cubic=True).repeat(2)


@pytest.mark.parametrize('concurrent', [True, False])
def test_batch_runs_the_engine_with_the_threads_given(benchmark_module, copper, tmp_path, concurrent):
    bench = benchmark_module('bench_threads')
    folders = bench.prepare_runs(tmp_path, copper, {'kind': 'emt'}, None, steps=5)
    assert [folder.name for folder in folders] == ['T300', 'T450', 'T600']
    result = bench.batch(folders, threads=2, concurrent=concurrent, timeout=300)  # exits if a report says otherwise
    assert result['censored'] is False and result['cpu_s'] > 0 and result['speed'] > 0


def test_batch_past_its_timeout_is_stopped_and_flagged(benchmark_module, copper, tmp_path):
    bench = benchmark_module('bench_threads')
    folders = bench.prepare_runs(tmp_path, copper, {'kind': 'emt'}, None, steps=100000)
    result = bench.batch(folders, threads=1, concurrent=True, timeout=0.5)
    assert result['censored'] is True and result['speed'] is None


def test_md_worker_answers_each_block_of_steps(benchmark_module, copper, tmp_path):
    from ase.io import write

    bench = benchmark_module('bench_architectures')
    structure = tmp_path / 'cu.xyz'
    write(structure, copper, format='extxyz')
    worker = bench.MdWorker(120, kind='emt', model=None, structure_file=str(structure), replicas=1, warmup=1)
    try:
        answers = [worker.run(3), worker.run(5)]
    finally:
        worker.close()
    assert [a['steps'] for a in answers] == [3, 5] and all(a['atoms'] == len(copper) for a in answers)
    assert all(a['rate_cpu'] > 0 and a['peak_mb'] > 0 for a in answers)
    broken = bench.MdWorker(120, kind='nep', model=str(tmp_path / 'absent.txt'), structure_file=str(structure),
                            replicas=1, warmup=1)
    assert 'error' in broken.run(3)
