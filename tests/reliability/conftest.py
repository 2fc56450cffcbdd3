"""The reliability suite's figures (issue 17): each test records what it measured with ``figure(...)``; the
lines are printed at once (outside capture) and again together at the end of the run, so a CI log shows
writes lost, survivors, seconds and bytes whatever the reporting flags."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # --import-mode=importlib: _helpers.py is imported by name
    sys.path.insert(0, HERE)

FIGURES: list[str] = []


@pytest.fixture
def figure(capsys):
    def record(line: str) -> None:
        FIGURES.append(line)
        with capsys.disabled():
            print(f"\n{line}", flush=True)

    return record


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("reliability figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
