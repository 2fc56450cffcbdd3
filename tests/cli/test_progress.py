"""The hashing progress bar: shown on a terminal (bytes, rate, ETA), absent in pipes."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest

from imageworks_models.registry.store import RegistryStore
from imageworks_models.testing import make_registry

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")


@pytest.fixture
def registry(tmp_path):
    model = tmp_path / "weights" / "big-model"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(os.urandom(64 << 20))
    reg = make_registry(tmp_path / "reg", {"name": "big-model-vllm", "backend": "vllm"})
    with RegistryStore(reg).edit() as layers:
        layers.discovered.put({"name": "big-model-vllm", "download": {"path": str(model)}})
    return reg


def _cmd(reg):
    return [sys.executable, "-c", "from imageworks_models.cli import main_loader; main_loader()",
            "--registry-dir", reg, "verify", "big-model-vllm"]


def _env(tmp_path):
    return {**os.environ, "HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "COLUMNS": "120", "TERM": "xterm"}


def test_progress_bar_on_a_terminal(tmp_path, registry):
    leader, follower = pty.openpty()
    proc = subprocess.Popen(_cmd(registry), stdin=follower, stdout=subprocess.PIPE, stderr=follower,
                            env=_env(tmp_path))
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the command is done
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(leader)
    text = seen.decode("utf-8", "replace")
    assert proc.returncode == 0, text
    assert "big-model-vllm (1 file)" in text  # the bar's label
    assert "MiB" in text  # bytes done / total and rate, in the one unit system (binary, as `hf` and `du -h`)
    assert " MB" not in text and " GB" not in text and "MB/s" not in text


def test_no_progress_bar_in_a_pipe(tmp_path, registry):
    proc = subprocess.run(_cmd(registry), capture_output=True, text=True, env=_env(tmp_path), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "(1 file)" not in proc.stderr and "\x1b[" not in proc.stderr
    assert proc.stdout.startswith("recorded")
