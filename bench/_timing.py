"""Timing helpers the benchmarks share: commands timed as processes, interleaved rounds, and goals judged on the median.

Every bench times what the user runs (the CLI command as a process) next to a reference timed the same way in
the same rounds, so a busy neighbour slows both alike. It prints min/median/max over the runs and judges each
goal on the median, printing ``met`` or ``MISSED`` with the ratio. Nothing here prepares the machine in a way a
user's install would not (no bytecode compile, no warm-up beyond one discarded round).

Imported by the scripts beside it (run as ``uv run python bench/NAME.py``, which puts this folder on sys.path).
"""

from __future__ import annotations

import subprocess
import time
from typing import Callable

_RESULTS: list[tuple[str, bool]] = []


def timed(cmd: list[str], env: dict, *, cwd: str | None = None) -> float:
    """Seconds ``cmd`` takes as a process, its output discarded (a failing command stops the bench, showing its stderr)."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {proc.stderr.decode()[-800:]}")
    return elapsed


def median(values: list[float]) -> float:
    """The middle value (the upper one of an even count)."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def interleave(cases: dict[str, Callable[[], float]], *, runs: int, warmup: int = 1,
               before_each: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """Run every case once per round, ``runs`` rounds (after ``warmup`` discarded rounds); return seconds per case.

    ``before_each(name)`` runs untimed before each case (e.g. dropping the page cache, staling a snapshot).
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for round_no in range(warmup + runs):
        for name, case in cases.items():
            if before_each is not None:
                before_each(name)
            value = case()
            if round_no >= warmup:
                samples[name].append(value)
    return samples


def show(label: str, values: list[float], *, unit: str = "ms") -> float:
    """Print ``label: min/median/max`` and return the median (in seconds)."""
    scale, places = (1000.0, 1) if unit == "ms" else (1.0, 3)
    lo, mid, hi = min(values) * scale, median(values) * scale, max(values) * scale
    print(f"  {label:<52} min {lo:8.{places}f}  median {mid:8.{places}f}  max {hi:8.{places}f} {unit}  "
          f"(n={len(values)})")
    return median(values)


def goal(label: str, met: bool, detail: str) -> bool:
    """Print one goal as met/MISSED with its figure; remembered for :func:`summary`."""
    _RESULTS.append((label, met))
    print(f"  GOAL {label}: {'met' if met else 'MISSED'} ({detail})")
    return met


def summary() -> int:
    """Print the goals' tally; return 0 when every goal was met, else 1 (the bench's exit status)."""
    missed = [label for label, ok in _RESULTS if not ok]
    print(f"\n{len(_RESULTS) - len(missed)}/{len(_RESULTS)} goals met" + (f"; missed: {', '.join(missed)}" if missed else ""))
    return 1 if missed else 0
