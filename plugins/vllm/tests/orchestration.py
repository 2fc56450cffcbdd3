"""Helpers for testing the serving orchestrator against the stand-in server (``standin_server.py``).

``Orchestration`` sets up an isolated registry with a few entries, points ``IMAGEWORKS_VLLM_BIN`` and
``IMAGEWORKS_LMDEPLOY_BIN`` at the stand-in, picks a free port, and after the test stops whatever is still
running and reports stand-in processes left behind (the tests assert there are none).

The test process becomes a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``), so servers started by a CLI
subprocess that has exited are re-parented here rather than to this machine's init (which, in a container, may
never reap them); ``reap_orphans`` collects those, and only those, by pid.
"""

from __future__ import annotations

import ctypes
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from imageworks_models import testing

STANDIN = Path(__file__).resolve().with_name("standin_server.py")
STANDIN_COMMAND = f"{shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))}"


def become_subreaper() -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_state(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()[0]


def _parent(pid: int) -> int:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(raw[raw.rfind(")") + 2:].split()[1])


def _descends_from_us(pid: int) -> bool:
    # Servers started by an exited CLI are re-parented to us (the subreaper), so they count as ours too;
    # another test session's servers (a second pytest on this machine) never do.
    me = os.getpid()
    for _ in range(64):
        pid = _parent(pid)
        if pid == me:
            return True
        if pid <= 1:
            return False
    return False


def standin_processes() -> list[int]:
    """Live (non-zombie) processes of this test session running the stand-in or the log launcher of one."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            args = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (any(str(STANDIN).encode() == a for a in args) and proc_state(int(name)) not in (None, "Z", "X")
                and _descends_from_us(int(name))):
            found.append(int(name))
    return found


def zombies_of(parent: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                raw = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            rest = raw[raw.rfind(")") + 2:].split()
            if rest[0] == "Z" and int(rest[1]) == parent:
                out.append(int(name))
    return out


def reap_orphans(pids) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def wait_until(condition, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return condition()


def entry(name: str, weights: Path, **fields: Any) -> dict[str, Any]:
    cfg = {"model_path": str(weights), **fields.pop("backend_config", {})}
    return {"name": name, "backend": fields.pop("backend", "vllm"), "served_model_id": f"org/{name}",
            "backend_config": cfg, **fields}


class Orchestration:
    """An isolated orchestrator set-up; see the module docstring."""

    def __init__(self, tmp_path: Path, monkeypatch, *entries: dict[str, Any]):
        self.tmp = tmp_path
        self.weights = tmp_path / "weights" / "model"
        self.weights.mkdir(parents=True, exist_ok=True)
        (self.weights / "config.json").write_text("{}")
        self.registry = tmp_path / "registry"
        self.port = free_port()
        self.monkeypatch = monkeypatch
        self.seen: set[int] = set()
        self.zombies_before = set(zombies_of(os.getpid()))
        default = (entry("qwen-a", self.weights), entry("qwen-b", self.weights, capabilities={"vision": True}))
        testing.make_registry(self.registry, *(entries or default))
        for key, value in {
            "IMAGEWORKS_REGISTRY_DIR": str(self.registry),
            "IMAGEWORKS_VLLM_BIN": STANDIN_COMMAND,
            "IMAGEWORKS_LMDEPLOY_BIN": STANDIN_COMMAND,
            "CHAT_PROXY_VLLM_PORT": str(self.port),
            "CHAT_PROXY_VLLM_SINGLE_PORT": "1",
            # a stand-in that honours SIGTERM exits in ~0.3 s; the grace is only the bound on a loaded machine
            # (CI once took over 2 s); tests of the SIGKILL path set their own short grace
            "IMAGEWORKS_STOP_GRACE": "10",
            "IMAGEWORKS_ACTIVATION_TIMEOUT": "20",
        }.items():
            monkeypatch.setenv(key, value)
        for key in [k for k in os.environ if k.startswith("STANDIN_")]:
            monkeypatch.delenv(key)

    @property
    def state_file(self) -> Path:
        return self.registry / "_staging" / "active_vllm.json"

    def state(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None

    def settings(self):
        from imageworks_models.settings import load_settings

        return load_settings()

    def activate(self, name: str, **kwargs):
        from imageworks_models.serving.control import activate

        result = activate(name, settings=self.settings(), **kwargs)
        self.seen.add(result["pid"])
        return result

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60,
            prog: str = "imageworks-loader") -> subprocess.CompletedProcess:
        """Run ``prog`` in a subprocess (a real CLI process that exits, as a user's would)."""
        exe = Path(sys.executable).with_name(prog)
        proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
        state = self.state()
        if state and state.get("pid"):
            self.seen.add(state["pid"])
        return proc

    def server_pids(self) -> list[int]:
        return standin_processes()

    def cleanup(self) -> list[int]:
        """Stop what is still running; returns the stand-in processes that had to be killed by hand."""
        from imageworks_models.serving.activation import stop

        try:
            stop(settings=self.settings())
        except Exception:  # noqa: BLE001 - cleanup must go on
            pass
        left = standin_processes()
        for pid in left:
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        wait_until(lambda: not standin_processes(), 5)
        # Servers whose launcher was killed are re-parented to us (the subreaper): reap what this test left.
        reap_orphans(self.seen | set(left) | (set(zombies_of(os.getpid())) - self.zombies_before))
        return left
