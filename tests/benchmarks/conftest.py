"""The benchmark scripts are not a package: their tests load them from benchmarks/ by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / 'benchmarks'


def load_benchmark(name: str):
    """The module of ``benchmarks/<name>.py`` (its folder on ``sys.path``: the scripts import ``_harness`` from it)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def benchmark_module():
    """``benchmark_module('bench_neppo')``: load a benchmark script as a module."""
    return load_benchmark
