"""benchmarks/bench_label_batches.py labels through the real engine program, batch by batch: the energies are those
of the calculator called in process, whatever the batch size. No speed is asserted (speed lives in the benchmark's
output only)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope='module')
def bench(benchmark_module):
    return benchmark_module('bench_label_batches')


def test_batches_label_like_the_calculator_in_process(bench, tmp_path):
    from ase.calculators.emt import EMT

    structures = bench._structures('emt', tmp_path, 3)
    expected = []
    for atoms in structures:
        copy = atoms.copy()
        copy.calc = EMT()
        expected.append(copy.get_potential_energy())
    for batch_size in (1, 3):  # 3 jobs, 1 job
        energies = bench._label_in_batches(tmp_path, structures, batch_size, 'emt', tmp_path)
        # 1e-6 eV: the job reads positions from extended XYZ, written to 1e-8 Å (3e-8 eV apart here)
        np.testing.assert_allclose(energies, expected, rtol=0, atol=1e-6)
