"""The README's command list and settings table are the ones the code generates (issue 19 items 4 and 5):
``uv run python -m imageworks_models.present.readme --write`` makes them anew."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from imageworks_models.present import readme

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("block", sorted(readme.BLOCKS))
def test_the_readme_block_is_the_generated_one(block):
    assert block not in readme.stale((REPO / "README.md").read_text(encoding="utf-8")), (
        f"README.md's {block} differ from the code: run `uv run python -m imageworks_models.present.readme --write`")


def test_check_fails_on_a_stale_readme_and_write_fixes_it(tmp_path):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    stale = tmp_path / "README.md"
    stale.write_text(text.replace("| `list` |", "| `lsit` |", 1), encoding="utf-8")
    check = [sys.executable, "-m", "imageworks_models.present.readme", "--check", str(stale)]
    assert subprocess.run(check, capture_output=True, text=True).returncode == 1
    subprocess.run([sys.executable, "-m", "imageworks_models.present.readme", "--write", str(stale)], check=True)
    assert subprocess.run(check, capture_output=True, text=True).returncode == 0
    assert stale.read_text(encoding="utf-8") == text
