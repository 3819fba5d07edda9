"""The cost the engine MD reports (for ``sseff.train``'s speed comparison): production speed and peak memory.

No speed is asserted (speed belongs in benchmarks/): the tests check that the numbers are what they claim to be —
the production speed is atoms × production steps / production wall time, and the peak RSS agrees with the kernel's
own high-water mark of the same process (``VmHWM`` in /proc/self/status) and grows with a large allocation.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from aiida_sseff.engines.md import peak_memory_mb, run_md


def _proc_status_mb(key: str) -> float:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(f'{key}:'):
            return float(line.split()[1]) / 1024  # kB
    raise AssertionError(f'no {key} line in /proc/self/status')


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='/proc/self/status is Linux only')
def test_peak_memory_is_the_kernels_high_water_mark():
    before = peak_memory_mb()
    assert before == pytest.approx(_proc_status_mb('VmHWM'), rel=0.02, abs=2.0)
    # touch enough memory that the resident size ends 100 MB above the earlier peak: the peak must follow
    size_mb = max(0.0, before - _proc_status_mb('VmRSS')) + 100
    block = np.ones(int(size_mb * 2**20) // 8)
    after = peak_memory_mb()
    assert after == pytest.approx(_proc_status_mb('VmHWM'), rel=0.02, abs=2.0)
    assert after >= before + 80
    del block


def test_md_summary_reports_production_speed_and_memory(tmp_path):
    atoms = bulk('Cu', 'fcc', a=3.61, cubic=True).repeat(2)  # 32 atoms
    summary = run_md(atoms, EMT(), {'n_steps': 20, 'n_equilibration_steps': 10, 'thermo_interval': 5,
                                    'trajectory_interval': 5, 'temperature_K': 300}, tmp_path)
    assert summary['n_atoms'] == 32
    wall = summary['production_wall_time_s']
    assert 0 < wall < summary['wall_time_s']  # the production loop is part of the whole run
    assert summary['production_speed_atom_step_per_s'] == pytest.approx(32 * 20 / wall, rel=1e-12)
    # the whole run's speed counts the equilibration steps too, over the whole wall time
    assert summary['speed_atom_step_per_s'] == pytest.approx(32 * 30 / summary['wall_time_s'], rel=1e-12)
    # the same process: the peak during the run is at most the peak now, and at least what numpy + ASE take
    assert 10 < summary['peak_memory_mb'] <= peak_memory_mb()
    assert summary['peak_gpu_memory_mb'] is None  # EMT: torch never used the GPU
