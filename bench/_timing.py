"""Timing helpers the benchmarks share: a command timed as a process, and the median the goals are judged on.

Imported by the scripts beside it (run as ``uv run python bench/NAME.py``, which puts this folder on sys.path).
"""

from __future__ import annotations

import subprocess
import time


def timed(cmd: list[str], env: dict) -> float:
    """Seconds ``cmd`` takes as a process, its output discarded (``check``: a failing command stops the bench)."""
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def median(values: list[float]) -> float:
    """The middle value (the upper one of an even count)."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
