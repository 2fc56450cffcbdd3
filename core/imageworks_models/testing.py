"""Helpers for testing imageworks-models and its plugins (bundled or third-party).

    import pytest
    from imageworks_models.testing import isolate_environment, plugin_row

    @pytest.fixture(autouse=True)
    def isolated(tmp_path, monkeypatch):
        yield from isolate_environment(tmp_path, monkeypatch)

    def test_my_plugin_loads():
        assert plugin_row("myplugin")["status"] == "ok"
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

_SETTING_PREFIXES = ("IMAGEWORKS_", "CHAT_PROXY_")
_SETTING_NAMES = ("OLLAMA_HOST", "OLLAMA_MODELS", "HF_HOME", "HF_ENDPOINT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def isolate_environment(tmp_path: Path, monkeypatch) -> Iterator[Path]:
    """Run a test with a private HOME (``tmp_path/home``), XDG folders and working folder
    (``tmp_path/cwd``), none of our settings from the environment, and freshly loaded plugins.

    A generator for an autouse fixture (``yield from``); yields the home folder.
    """
    from imageworks_models.pluginhost.manager import reset_plugins

    for key in list(os.environ):
        if key.startswith(_SETTING_PREFIXES) or key in _SETTING_NAMES:
            monkeypatch.delenv(key, raising=False)
    home, work = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.chdir(work)
    reset_plugins()
    yield home
    reset_plugins()


def test_settings(tmp_path: Path, **env: str):
    """Settings resolved inside :func:`isolate_environment`'s folders, with ``env`` as the environment."""
    from imageworks_models.settings import load_settings

    return load_settings(env={"HOME": str(tmp_path / "home"), **env}, cwd=tmp_path / "cwd")


test_settings.__test__ = False  # not a test, despite its name


def run_cli(*args: str, prog: str = "imageworks-models", input: str | None = None):
    """Run a console script's click app in-process; returns click's ``Result`` (stdout, stderr, exit_code)."""
    from click.testing import CliRunner

    from imageworks_models.cli import CliState, make_cli

    return CliRunner().invoke(make_cli(prog), list(args), obj=CliState(prog), input=input, catch_exceptions=False)


def plugin_row(name: str) -> dict[str, Any]:
    """The ``plugins --json`` row of the plugin named ``name`` (asserting there is exactly one)."""
    result = run_cli("plugins", "--json")
    assert result.exit_code == 0, result.stderr
    rows = [p for p in json.loads(result.stdout) if p["name"] == name]
    assert len(rows) == 1, result.stdout
    return rows[0]


def make_registry(folder: Path, *entries: dict[str, Any]) -> str:
    """A registry at ``folder`` whose curated layer holds ``entries``; returns the folder as a string."""
    from imageworks_models.registry.store import RegistryStore

    with RegistryStore(folder).edit() as layers:
        for entry in entries:
            layers.curated.put(entry)
    return str(folder)


def check_installed_plugin(plugin_dir: Path, name: str, *, hooks: list[str],
                           provides: dict[str, list[str]]) -> dict[str, Any]:
    """Assert that the plugin distribution in ``plugin_dir`` is installed as its ``pyproject.toml`` says
    and loads cleanly: its entry point ``name`` is the installed one, and its ``plugins --json`` row is
    ``ok`` with the pyproject's distribution name and version, the hooks it implements and what it
    registered. Returns the row."""
    import tomllib
    from importlib.metadata import entry_points, version

    project = tomllib.loads((Path(plugin_dir) / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dist = project["name"]
    declared = project["entry-points"]["imageworks_models"]
    installed = {ep.name: ep.value for ep in entry_points(group="imageworks_models") if ep.dist.name == dist}
    assert installed == declared, (installed, declared)
    row = plugin_row(name)
    assert row["status"] == "ok", row["errors"]
    assert row["distribution"] == dist
    assert row["version"] == project["version"] == version(dist)
    assert row["module"] == declared[name]
    assert row["hooks"] == hooks
    assert row["provides"] == provides
    assert row["errors"] == []
    return row


class GatewayProcess:
    """``imageworks-models gateway`` as a real process, for tests and benchmarks (standard library only).

    ``start()`` runs it on a free port with the current environment plus ``env`` and waits until it answers
    ``/v1/models``; ``stop()`` sends SIGTERM and waits for it to exit (returns its exit code).
    """

    def __init__(self, *, env: dict[str, str] | None = None, host: str = "127.0.0.1", port: int | None = None,
                 args: tuple[str, ...] = (), log_path: Path | None = None):
        import socket

        if port is None:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
        self.host, self.port, self.env, self.args = host, port, env or {}, args
        self.log_path = log_path
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, *, timeout: float = 60.0, wait: bool = True) -> "GatewayProcess":
        import os
        import subprocess
        import sys
        import time
        import urllib.error
        import urllib.request

        exe = Path(sys.executable).with_name("imageworks-models")
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen([str(exe), "gateway", "--host", self.host, "--port", str(self.port), *self.args],
                                     env={**os.environ, **self.env}, stdout=out, stderr=out if self.log_path
                                     else subprocess.PIPE)
        if not wait:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"the gateway exited with {self.proc.returncode}: {err}")
            try:
                urllib.request.urlopen(f"{self.url}/models", timeout=1).read()
                return self
            except urllib.error.HTTPError:
                return self  # it answers (401 without a key)
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the gateway did not answer within the timeout")

    def stop(self, timeout: float = 30.0) -> int | None:
        import signal

        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except Exception:  # noqa: BLE001 - it hung: kill it, the test reports the orphans
            self.proc.kill()
            return self.proc.wait(5)
