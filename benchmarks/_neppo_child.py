"""Child process of bench_neppo.py: ``neppo train`` of one run directory, with the CPU time of every report.

Runs ``neppo.nep_in.run(directory, device='cpu')`` unchanged (what ``neppo train`` and the CalcJob run) and appends,
for every row of neppo's progress table (one per report, logged just before the row of ``loss.out`` is written),
``step cpu_s wall_s`` to ``directory/report_times.txt``: the CPU seconds of this process since it started (imports
and set-up included, all threads) and the wall seconds since the start of this script. The step comes from the
row's first column (neppo's log format: ``neppo._log.format_table_row``); the errors are read from ``loss.out``.

    python benchmarks/_neppo_child.py RUN_DIRECTORY
"""

from __future__ import annotations

import time

START_WALL = time.perf_counter()

import logging  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

_ROW = re.compile(r'^\s*(\d+)\s+\d+\.\d\s')  # step, epoch (one decimal), ... of a progress-table row


class ReportTimes(logging.Handler):
    def __init__(self, path: Path):
        super().__init__(level=logging.INFO)
        self.handle_file = path.open('w', buffering=1)

    def emit(self, record: logging.LogRecord) -> None:
        match = _ROW.match(record.getMessage())
        if match:
            self.handle_file.write(f'{match.group(1)} {time.process_time():.3f} '
                                   f'{time.perf_counter() - START_WALL:.3f}\n')


def main() -> None:
    directory = Path(sys.argv[1])
    from neppo.nep_in import run

    trainer_logger = logging.getLogger('neppo.trainer')
    trainer_logger.setLevel(logging.INFO)
    trainer_logger.addHandler(ReportTimes(directory / 'report_times.txt'))
    run(directory, device='cpu')


if __name__ == '__main__':
    main()
