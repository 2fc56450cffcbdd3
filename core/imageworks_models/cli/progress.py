"""A rich progress bar (bytes, rate, ETA) for long hashing work: on a terminal only, silent in pipes."""

from __future__ import annotations

import sys

from imageworks_models.reports import SILENT, Progress


class RichProgress(Progress):
    """Shows one bar per hashing run on stderr; rich's ``Progress`` is thread-safe, so worker threads
    may call :meth:`advance` directly."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress as _Bar, TextColumn, TimeRemainingColumn
        from rich.text import Text

        from imageworks_models.units import human_rate

        class _Speed(TextColumn):  # rich's TransferSpeedColumn counts in decimal GB; ours are GiB, like `hf`
            def render(self, task):
                rate = human_rate(int(task.speed or 0), 1.0) if task.speed else None
                return Text(rate or "", style="progress.data.speed")

        self._bar = _Bar(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
                         _Speed(""), TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self._task = None

    def start(self, *, total_bytes: int, files: int, label: str) -> None:
        self._bar.start()
        self._task = self._bar.add_task(f"{label} ({files} file{'s' if files != 1 else ''})", total=total_bytes)

    def advance(self, nbytes: int) -> None:
        self._bar.advance(self._task, nbytes)

    def finish(self) -> None:
        if self._task is not None:
            self._bar.remove_task(self._task)
            self._task = None
        self._bar.stop()


def progress_for_terminal() -> Progress:
    """A rich bar when stderr is a terminal, else the silent reporter (pipes, CI logs, tests)."""
    return RichProgress() if sys.stderr.isatty() else SILENT
