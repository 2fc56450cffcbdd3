"""The llama.cpp plugin's test harness: is the engine here, the ``Llama`` set-up (see ``conftest.py``), and
helpers to find engine processes and free ports."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imageworks_models.testing import make_registry

HERE = Path(__file__).resolve().parent
PLUGINS = HERE.parents[1]
HELPERS = {"hubserver": PLUGINS / "hf" / "tests", "ollamastore": PLUGINS / "ollama" / "tests"}
ENGINE_COMMAND = f"{shlex.quote(sys.executable)} -m llama_cpp.server"


def engine_missing() -> str | None:
    """Why the engine cannot run here, or ``None`` when it can."""
    from importlib.util import find_spec

    for module, what in (("llama_cpp", "llama-cpp-python"), ("uvicorn", "llama-cpp-python[server]"),
                         ("sse_starlette", "llama-cpp-python[server]")):
        if find_spec(module) is None:
            return (f"the llama.cpp engine is not installed ({what} is missing): run .ci/run, or see the README's "
                    "'Installing the llama.cpp engine' (uv sync --group engine, with the CPU build flags)")
    return None


def helper(name: str):
    """Import a helper module of another plugin's tests (``hubserver``, ``ollamastore``, ``orchestration``);
    skips when that plugin's tests are not beside this one."""
    if not (HELPERS[name] / f"{name}.py").is_file():
        pytest.skip(f"{HELPERS[name] / (name + '.py')} is missing: the bundled plugins' tests are not beside this one")
    return __import__(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _state(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()[0]


def engine_processes(marker: str) -> list[int]:
    """Live processes whose command line runs the engine (or its log launcher) and mentions ``marker`` (the
    test's tmp_path: another test run's engines are neither ours to count nor to kill)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            args = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if b"llama_cpp.server" in args and marker.encode() in args and _state(int(name)) not in (None, "Z", "X"):
            found.append(int(name))
    return found


class Llama:
    """The ``llama`` fixture's set-up: registry at ``tmp/registry``, serving port ``port``, the engine as the
    llama.cpp server command. ``cli(...)`` runs a real CLI process; ``state()`` reads the active-model record."""

    def __init__(self, tmp_path: Path, monkeypatch):
        self.tmp = tmp_path
        self.registry = tmp_path / "registry"
        self.weights = tmp_path / "weights"
        self.port = free_port()
        # the engine exits ~0.2 s after SIGTERM (~0.5 s with its launcher); the grace is only the bound on a loaded
        # machine, where tests expect a SIGTERM stop; the test of the SIGKILL path sets its own short grace
        for key, value in {"IMAGEWORKS_REGISTRY_DIR": str(self.registry), "IMAGEWORKS_WEIGHTS_ROOT": str(self.weights),
                           "IMAGEWORKS_LLAMACPP_BIN": ENGINE_COMMAND, "CHAT_PROXY_VLLM_PORT": str(self.port),
                           "CHAT_PROXY_VLLM_SINGLE_PORT": "1", "IMAGEWORKS_LLAMACPP_STOP_GRACE": "10",
                           "IMAGEWORKS_ACTIVATION_TIMEOUT": "60"}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("CONFIG_FILE", raising=False)
        make_registry(self.registry)
        self.zombies_before = set(self._zombies())

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def state(self) -> dict | None:
        try:
            return json.loads((self.registry / "_staging" / "active_vllm.json").read_text())
        except FileNotFoundError:
            return None

    def cli(self, *args: str, prog: str = "imageworks-loader", timeout: float = 120) -> subprocess.CompletedProcess:
        exe = Path(sys.executable).with_name(prog)
        return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ))

    def ok(self, *args: str, prog: str = "imageworks-loader"):
        """Run the CLI and return its ``--json`` output (the test fails with its stderr when it fails)."""
        proc = self.cli(*args, "--json", prog=prog)
        assert proc.returncode == 0, f"{prog} {' '.join(args)}: exit {proc.returncode}\n{proc.stderr}"
        return json.loads(proc.stdout)

    def processes(self) -> list[int]:
        return engine_processes(str(self.tmp))

    @staticmethod
    def _zombies() -> list[int]:
        out = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    raw = Path(f"/proc/{name}/stat").read_text()
                except OSError:
                    continue
                rest = raw[raw.rfind(")") + 2:].split()
                if rest[0] == "Z" and int(rest[1]) == os.getpid():
                    out.append(int(name))
        return out

    def reap(self) -> None:
        """Collect launchers re-parented to this (subreaper) process by CLI processes that exited."""
        for pid in set(self._zombies()) - self.zombies_before:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass

    def cleanup(self) -> list[int]:
        from imageworks_models.serving.activation import stop
        from imageworks_models.settings import load_settings

        try:
            stop(settings=load_settings())
        except Exception:  # noqa: BLE001 - cleanup must go on
            pass
        left = self.processes()
        for pid in left:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.reap()
        return left
