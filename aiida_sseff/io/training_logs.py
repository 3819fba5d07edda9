"""Training wall time as the training programs themselves report it, without AiiDA.

- ``neppo train`` (neppo 1.0, ``neppo/trainer.py``): its summary block on stdout has a row
  ``wall time : H:MM:SS, ... ms per step, ...`` (``format_duration``: whole seconds) — the time of its training loop.
- GPUMD ``nep`` (``src/main_nep/main.cu``): ``Time used for training = <s> s.`` after the SNES loop, and
  ``Time used for initialization = <s> s.`` before it. GPUMD measures these with ``clock()`` in the versions we read:
  host CPU time, which on a GPU run is close to the wall time because the host thread waits on the device.
- ``mace_run_train`` (mace-torch 0.3.16, ``mace/tools/utils.py`` ``setup_logger``): every log line starts with
  ``YYYY-MM-DD HH:MM:SS.mmm``; the wall time is the last stamp minus the first (from the first log line, after
  Python has imported torch and mace, to ``Done``).

Each reader returns seconds (float) or None when the text does not hold the number (a crashed or older program):
a missing cost is reported as missing, never guessed.
"""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ['read_gpumd_nep_wall_time', 'read_mace_wall_time', 'read_neppo_wall_time']

_NEPPO_WALL_TIME = re.compile(r'^\s*wall time\s*:\s*(\d+):(\d{2}):(\d{2})\b', re.MULTILINE)
_GPUMD_TIME = re.compile(r'Time used for (training|initialization)\s*=\s*([-+0-9.eE]+)\s*s')
_MACE_STAMP = re.compile(r'^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) ', re.MULTILINE)


def read_neppo_wall_time(text: str) -> float | None:
    """Seconds of ``neppo train``'s training loop from its stdout (the last ``wall time`` row; 1 s resolution)."""
    matches = _NEPPO_WALL_TIME.findall(text)
    if not matches:
        return None
    hours, minutes, seconds = (int(value) for value in matches[-1])
    return float(3600 * hours + 60 * minutes + seconds)


def read_gpumd_nep_wall_time(text: str) -> float | None:
    """Seconds of GPUMD ``nep``'s initialization plus its training, from its stdout (None without the training
    line)."""
    times = {kind: float(value) for kind, value in _GPUMD_TIME.findall(text)}
    if 'training' not in times:
        return None
    return times['training'] + times.get('initialization', 0.0)


def read_mace_wall_time(text: str) -> float | None:
    """Seconds between the first and the last time stamp of a ``mace_run_train`` log (None with fewer than two)."""
    stamps = _MACE_STAMP.findall(text)
    if len(stamps) < 2:
        return None
    first, last = (datetime.strptime(stamp, '%Y-%m-%d %H:%M:%S.%f') for stamp in (stamps[0], stamps[-1]))
    return (last - first).total_seconds()
