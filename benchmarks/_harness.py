"""The shared harness of the benchmarks: repeats, min / median, peers interleaved, the machine load beside every number.

Rules it enforces (issue #14): every measurement is repeated (default 3) and reported as min / median; peers that are
compared are measured interleaved in the same run (A B A B A B, not A A A B B B), so a change of load on a shared
machine hits both alike and their ratio stays meaningful; the load average and CPU count are recorded when the
measurement starts and ends. A script writes its goals (a target, the measured value, met or not) with
``--json PATH``, which ``run_all.py`` collects into one table.

Written here rather than taken from pyperf or pytest-benchmark: both time one function at a time (pyperf spawns
worker processes per benchmark), neither interleaves two peers repeat by repeat, and neither records the load average
beside the number; the harness is ~100 lines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def machine_load() -> dict:
    """The 1/5/15-minute load averages and the number of CPUs this process may use."""
    one, five, fifteen = os.getloadavg()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    return {'load_1min': round(one, 2), 'load_5min': round(five, 2), 'load_15min': round(fifteen, 2), 'cpus': cpus}


def load_text(load: dict | None = None) -> str:
    load = load or machine_load()
    return f'load average {load["load_1min"]:.1f} / {load["load_5min"]:.1f} / {load["load_15min"]:.1f} on {load["cpus"]} CPUs'


def children_cpu_time() -> float:
    """CPU seconds (user + system) of the finished child processes of this one: a clock for subprocess peers that a
    loaded machine disturbs much less than wall time (a process waiting for a core is not charged)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def engine_command() -> list[str]:
    """The command that starts ``aiida-sseff-engine`` of this environment (its console script, else ``python -m``)."""
    import sys

    script = Path(sys.executable).parent / 'aiida-sseff-engine'
    return [str(script)] if script.is_file() else [sys.executable, '-m', 'aiida_sseff.engines']


@dataclass
class Timing:
    """The seconds of each repeat of one peer, and the load around them."""

    name: str
    seconds: list[float] = field(default_factory=list)
    results: list = field(default_factory=list)

    @property
    def min(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def text(self, unit: str = 's') -> str:
        return f'{self.min:.3f} / {self.median:.3f} {unit}'


def interleaved(peers: dict[str, Callable[[], object]], repeat: int = 3, clock: Callable[[], float] = time.perf_counter,
                keep_results: bool = False) -> tuple[dict[str, Timing], dict]:
    """Run every peer once per round, ``repeat`` rounds, in the order given; return their timings and the load.

    :param peers: name -> a callable taking no argument (its set-up done outside, or inside if it is to be timed).
    :param clock: ``time.perf_counter`` (wall) or ``time.process_time`` (CPU of this process).
    :param keep_results: keep each call's return value (e.g. to check that peers agree).
    :returns: ``({name: Timing}, {'before': load, 'after': load})``.
    """
    if repeat < 1:
        raise ValueError(f'repeat must be >= 1; got {repeat}')
    timings = {name: Timing(name) for name in peers}
    before = machine_load()
    for _ in range(repeat):
        for name, function in peers.items():
            start = clock()
            result = function()
            timings[name].seconds.append(clock() - start)
            if keep_results:
                timings[name].results.append(result)
    return timings, {'before': before, 'after': machine_load()}


def ratio_text(numerator: Timing, denominator: Timing) -> str:
    """min / median of the ratio numerator / denominator, taken round by round (the interleaved pairs)."""
    ratios = [a / b for a, b in zip(numerator.seconds, denominator.seconds, strict=True)]
    return f'{min(ratios):.2f} / {statistics.median(ratios):.2f}'


def round_ratios(numerator: Timing, denominator: Timing) -> list[float]:
    return [a / b for a, b in zip(numerator.seconds, denominator.seconds, strict=True)]


def add_arguments(parser: argparse.ArgumentParser, repeat: int = 3) -> None:
    parser.add_argument('--repeat', type=int, default=repeat, help=f'rounds of each measurement (default {repeat})')
    parser.add_argument('--json', type=Path, default=None, help='write the goals and measurements to this file '
                                                                '(read by run_all.py)')


class Report:
    """Goals of one script: what was aimed at, what was measured, met or not, and the load during the measurement."""

    def __init__(self, script: str):
        self.script = script
        self.goals: list[dict] = []
        self.load_start = machine_load()

    def goal(self, goal: str, target: str, measured: str, met: bool | None, load: dict | None = None) -> None:
        """Record one goal; ``met`` None where the goal could not be measured (say why in ``measured``)."""
        entry = {'script': self.script, 'goal': goal, 'target': target, 'measured': measured, 'met': met,
                 'load': load or {'before': machine_load()}}
        self.goals.append(entry)
        state = {True: 'met', False: 'NOT met', None: 'not measured'}[met]
        print(f'GOAL {goal}: target {target}; measured {measured} -> {state}')

    def write(self, path: Path | None) -> None:
        if path is not None:
            Path(path).write_text(json.dumps({'script': self.script, 'load_start': self.load_start,
                                              'load_end': machine_load(), 'goals': self.goals}, indent=2))
