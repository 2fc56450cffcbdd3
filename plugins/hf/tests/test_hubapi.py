"""The Hub API calls a download makes without huggingface_hub (imageworks_models_hf.hubapi): the same token, the same
listing across pages, retries of the listing, and a download command that never imports huggingface_hub."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from imageworks_models.errors import AcquisitionError, RemoteUnavailableError
from imageworks_models.testing import make_registry
from imageworks_models_hf import hubapi
from imageworks_models_hf.remote import resolve

FILES = {f"{d}/part-{i}.txt": f"{d} {i}\n".encode() for d in ("a", "b/c") for i in range(4)}
FILES["model.safetensors"] = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "


def test_resolve_lists_every_file_across_the_hubs_pages_as_huggingface_hub_does(hub):
    commit = hub.add_repo("org/paged", FILES)
    hub.tree_page_size = 3  # 9 files and 3 folders: four pages

    ours = resolve("org/paged", "main", endpoint=hub.url, token=None)
    theirs = [e for e in HfApi(endpoint=hub.url).list_repo_tree("org/paged", revision=commit, recursive=True,
                                                                  token=False) if hasattr(e, "blob_id")]

    assert ours.commit == commit
    assert [(f.path, f.size, f.sha256, f.git_oid) for f in ours.files] == sorted(
        (e.path, e.size, e.lfs.sha256 if e.lfs else None, None if e.lfs else e.blob_id) for e in theirs)
    assert sorted(f.path for f in ours.files) == sorted(FILES)
    pages = [r for r in hub.requests if "/tree/" in r.path]
    assert len(pages) == 2 * 4  # ours and huggingface_hub's, four pages each


def _token_in_a_new_process(module: str, env: dict) -> str:
    """``repr(module.get_token())`` in a process of its own, as a command sees it (huggingface_hub reads its paths
    when imported, and ours hands it the cases it knows better)."""
    code = f"from {module} import get_token; print(repr(get_token()))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()


@pytest.mark.parametrize("layout", ["none", "HF_TOKEN", "legacy variable", "both variables", "token file",
                                    "HF_TOKEN_PATH", "XDG_CACHE_HOME", "spaces and newlines", "empty variable",
                                    "oauth token that is not due"])
def test_the_token_is_the_one_huggingface_hub_would_use(tmp_path, monkeypatch, layout):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "XDG_CACHE_HOME", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "hf-home"
    home.mkdir()
    monkeypatch.setenv("HF_HOME", str(home))
    if layout == "HF_TOKEN":
        monkeypatch.setenv("HF_TOKEN", "hf_from_variable")
        (home / "token").write_text("hf_from_file")
    elif layout == "legacy variable":
        monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hf_legacy")
    elif layout == "both variables":
        monkeypatch.setenv("HF_TOKEN", "hf_new")
        monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hf_legacy")
    elif layout == "token file":
        (home / "token").write_text("hf_from_file")
    elif layout == "HF_TOKEN_PATH":
        (tmp_path / "elsewhere").write_text("hf_elsewhere")
        monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "elsewhere"))
    elif layout == "XDG_CACHE_HOME":
        monkeypatch.delenv("HF_HOME")
        (tmp_path / "xdg" / "huggingface").mkdir(parents=True)
        (tmp_path / "xdg" / "huggingface" / "token").write_text("hf_xdg")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    elif layout == "spaces and newlines":
        (home / "token").write_text("  hf_spaced\r\n")
    elif layout == "empty variable":
        monkeypatch.setenv("HF_TOKEN", "")
        (home / "token").write_text("hf_from_file")
    elif layout == "oauth token that is not due":  # refreshable tokens are left to huggingface_hub
        (home / "token").write_text("hf_oauth")
        (home / "stored_tokens").write_text("[login]\nhf_token = hf_oauth\nrefresh_token = r\nexpires_at = 4102444800\n")

    ours = _token_in_a_new_process("imageworks_models_hf.hubapi", dict(os.environ))

    assert ours == _token_in_a_new_process("huggingface_hub", dict(os.environ))
    assert (ours == "None") == (layout == "none")
    if layout != "oauth token that is not due":  # read here, in this process, without huggingface_hub
        assert repr(hubapi.get_token()) == ours


def test_a_token_path_that_is_not_a_regular_file_is_one_clear_error(tmp_path, monkeypatch):
    fifo = tmp_path / "token"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(fifo))

    with pytest.raises(AcquisitionError) as info:
        hubapi.get_token()

    assert str(fifo) in info.value.message and "HF_TOKEN" in info.value.hint


class _FlakyHub(http.server.ThreadingHTTPServer):
    """Answers model info, then the tree with 503 ``failures`` times before the listing."""

    def __init__(self, failures: int, status: int = 503):
        self.failures, self.status, self.seen = failures, status, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.seen.append(self.path)
                if "/tree/" in self.path and outer.failures:
                    outer.failures -= 1
                    self._send(outer.status, {"error": "try later"}, {"Retry-After": "0"})
                elif "/tree/" in self.path:
                    self._send(200, [{"type": "file", "path": "config.json", "size": 2, "oid": "a" * 40}])
                else:
                    self._send(200, {"id": "org/flaky", "sha": "c" * 40})

            def _send(self, status, obj, headers=None):
                body = json.dumps(obj).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", "Content-Length": str(len(body)),
                             **(headers or {})}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.mark.parametrize("status", [429, 503])
def test_the_listing_is_retried_when_the_hub_is_busy(monkeypatch, status):
    monkeypatch.setattr(hubapi, "RETRY_WAITS", (0.01, 0.01, 0.01))
    server = _FlakyHub(failures=2, status=status)
    try:
        repo = resolve("org/flaky", "main", endpoint=server.url, token=None)
    finally:
        server.shutdown()
    assert [f.path for f in repo.files] == ["config.json"]
    assert sum("/tree/" in p for p in server.seen) == 3


def test_a_listing_still_busy_after_the_retries_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(hubapi, "RETRY_WAITS", (0.01, 0.01))
    server = _FlakyHub(failures=10)
    try:
        with pytest.raises(RemoteUnavailableError) as info:
            resolve("org/flaky", "main", endpoint=server.url, token=None)
    finally:
        server.shutdown()
    assert "HTTP 503" in info.value.message and "org/flaky" in info.value.message and "try later" in info.value.message
    assert sum("/tree/" in p for p in server.seen) == 3


def test_a_download_command_never_imports_huggingface_hub(hub, tmp_path):
    """Its import and HTTP client cost ~110 ms of the command (issue 20's download against curl)."""
    hub.add_repo("org/tiny", {"config.json": b'{"model_type": "llama"}', "model.safetensors": FILES["model.safetensors"]})
    env = dict(os.environ, IMAGEWORKS_REGISTRY_DIR=str(make_registry(tmp_path / "reg")),
               IMAGEWORKS_WEIGHTS_ROOT=str(tmp_path / "w"), IMAGEWORKS_CACHE_DIR=str(tmp_path / "cache"),
               IMAGEWORKS_USE_ARIA2="0")
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('huggingface_hub imported:', 'huggingface_hub' in sys.modules))\n"
            "from imageworks_models.cli import main_download\n"
            "sys.argv = ['imageworks-download', 'download', 'org/tiny', '--non-interactive']\n"
            "main_download()\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "w" / "org" / "tiny" / "model.safetensors").exists()
    assert "huggingface_hub imported: False" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("value", ["1", "true", "ON"])
def test_hf_hub_offline_stops_every_hub_call_before_the_network(hub, monkeypatch, value):
    hub.add_repo("org/tiny", {"config.json": b"{}"})
    monkeypatch.setenv("HF_HUB_OFFLINE", value)

    with pytest.raises(RemoteUnavailableError) as info:
        resolve("org/tiny", "main", endpoint=hub.url, token=None)

    assert "HF_HUB_OFFLINE" in info.value.message and "HF_HUB_OFFLINE" in info.value.hint
    assert not [r for r in hub.requests if r.path.startswith("/api/")]
