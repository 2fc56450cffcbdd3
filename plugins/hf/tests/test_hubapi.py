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


LISTING = [{"type": "file", "path": "config.json", "size": 2, "oid": "a" * 40}]


class _FlakyHub(http.server.ThreadingHTTPServer):
    """Answers model info, then each tree request with the next of ``faults`` (then the listing). A fault is
    ``(status, headers)`` for an error answer, or ``"short"`` (a Content-Length the body never reaches) or
    ``"bad chunk"`` (a chunked body with a broken size line). Also answers as an http proxy. ``seen`` keeps each
    request line's target, ``proxy_auth`` and ``auth`` each request's Proxy-Authorization and Authorization."""

    def __init__(self, faults=()):
        self.faults, self.seen, self.proxy_auth, self.auth = list(faults), [], [], []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.seen.append(self.path)
                outer.proxy_auth.append(self.headers.get("Proxy-Authorization"))
                outer.auth.append(self.headers.get("Authorization"))
                if "/tree/" in self.path and outer.faults:
                    fault = outer.faults.pop(0)
                    if fault == "short":
                        self._broken(("Content-Length", "1000"), b'[{"type": "file"')
                    elif fault == "bad chunk":
                        self._broken(("Transfer-Encoding", "chunked"), b"zz-not-hex\r\n[]\r\n0\r\n\r\n")
                    else:
                        status, headers = fault
                        self._send(status, {"error": "try later"}, headers)
                elif "/tree/" in self.path:
                    self._send(200, LISTING)
                else:
                    self._send(200, {"id": "org/flaky", "sha": "c" * 40})

            def _broken(self, header, body):
                """A 200 whose body breaks what ``header`` promised; the connection closed after it."""
                self.send_response(200)
                self.send_header(*header)
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


@pytest.fixture
def fast_retries(monkeypatch):
    waits = []
    monkeypatch.setattr(hubapi, "RETRY_WAITS", (0.01, 0.01, 0.01))
    monkeypatch.setattr(hubapi.time, "sleep", waits.append)  # records each wait instead of sleeping it
    return waits


@pytest.mark.parametrize("fault", [(429, {}), (503, {}), "short", "bad chunk"])
def test_the_listing_is_retried_when_the_hub_is_busy_or_its_answer_breaks(fast_retries, fault):
    with _FlakyHub([fault, fault]) as server:
        repo = resolve("org/flaky", "main", endpoint=server.url, token=None)
    assert [f.path for f in repo.files] == ["config.json"]
    assert sum("/tree/" in p for p in server.seen) == 3
    assert fast_retries == [0.01, 0.01]


@pytest.mark.parametrize("fault, words", [((503, {}), ("HTTP 503", "try later")),
                                          ("short", ("cut short",)), ("bad chunk", ("cannot read",))])
def test_a_listing_still_failing_after_the_retries_is_one_clear_error(fast_retries, fault, words):
    with _FlakyHub([fault] * 10) as server:
        with pytest.raises(RemoteUnavailableError) as info:
            resolve("org/flaky", "main", endpoint=server.url, token=None)
    assert "org/flaky" in info.value.message and all(w in info.value.message for w in words), info.value.message
    assert sum("/tree/" in p for p in server.seen) == 4


@pytest.mark.parametrize("headers, wait", [({"Retry-After": "7"}, 7.0), ({"Retry-After": "nan"}, 0.01),
                                           ({"Retry-After": "soon"}, 0.01), ({"Retry-After": "-5"}, 0.0),
                                           ({"Retry-After": "99999"}, 60.0),
                                           ({"RateLimit": '"api";r=0;t=12'}, 13.0), ({}, 0.01)])
def test_a_busy_hub_is_asked_again_after_the_wait_it_names(fast_retries, headers, wait):
    with _FlakyHub([(429, headers)]) as server:
        resolve("org/flaky", "main", endpoint=server.url, token=None)
    assert fast_retries == [wait]


@pytest.mark.parametrize("proxy, auth", [("127.0.0.1:{port}", None), ("http://127.0.0.1:{port}", None),
                                         ("http://bob:s%40cret@127.0.0.1:{port}", "Basic Ym9iOnNAY3JldA==")])
def test_the_hub_is_asked_through_the_environments_proxy(monkeypatch, proxy, auth):
    for name in ("no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with _FlakyHub() as proxy_server:
        monkeypatch.setenv("http_proxy", proxy.format(port=proxy_server.server_address[1]))
        repo = resolve("org/flaky", "main", endpoint="http://hub.invalid", token=None)  # only the proxy resolves it
    assert [f.path for f in repo.files] == ["config.json"]
    assert proxy_server.seen[0].startswith("http://hub.invalid/api/models/org/flaky/revision/main")
    assert set(proxy_server.proxy_auth) == {auth}


def test_a_socks_proxy_is_one_clear_error_naming_it_without_its_password(monkeypatch):
    for name in ("no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("all_proxy", "socks5://bob:secret@127.0.0.1:1080")
    with pytest.raises(AcquisitionError) as info:
        resolve("org/flaky", "main", endpoint="http://hub.invalid", token=None)
    assert "socks5" in info.value.message and "secret" not in info.value.message + info.value.hint


def test_stored_tokens_it_cannot_read_are_no_stored_tokens_as_for_huggingface_hub(tmp_path, monkeypatch):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    (tmp_path / "stored_tokens").symlink_to(tmp_path / "stored_tokens")  # a loop: ELOOP on open
    assert hubapi.get_token() is None  # anonymous: no token file, and the odd stored_tokens is never an error
    (tmp_path / "token").write_text("hf_plain")
    assert hubapi.get_token() == "hf_plain" == eval(_token_in_a_new_process("huggingface_hub", dict(os.environ)))


def test_a_token_that_cannot_go_in_a_header_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_\u00e9t\u00e9")
    with pytest.raises(AcquisitionError) as info:
        hubapi.get_token()
    assert "HF_TOKEN" in info.value.message and "\u00e9" not in info.value.message


def test_the_token_goes_to_the_hub_only(monkeypatch):
    """A next-page link or a redirect to another host never carries it; an http -> https upgrade of the same host
    on the default ports does (as with huggingface_hub's client)."""
    from imageworks_models_hf.transfer import _token_goes_to

    assert _token_goes_to("https://huggingface.co/api/x", "https://huggingface.co:443")
    assert not _token_goes_to("https://evil.example/api/x", "https://huggingface.co:443")
    assert not _token_goes_to("https://huggingface.co:8443/api/x", "https://huggingface.co:443")
    assert not _token_goes_to("http://huggingface.co/api/x", "https://huggingface.co:443")  # never downgraded
    assert _token_goes_to("https://mirror.example/api/x", "http://mirror.example:80")
    assert not _token_goes_to("https://other.example/api/x", "http://mirror.example:80")
    assert not _token_goes_to("https://mirror.example:8443/api/x", "http://mirror.example:80")


def test_a_next_page_on_another_host_is_asked_without_the_token(hub, monkeypatch):
    import hubserver

    hub.add_repo("org/paged", FILES)
    hub.tree_page_size = 3
    real = hubserver._HubHandler.send_json
    with _FlakyHub() as other:
        def send_json(self, method, status, obj, headers=None):  # the Hub's next-page links point at `other`
            if headers and "Link" in headers:
                headers = {**headers, "Link": headers["Link"].replace(hub.url, other.url)}
            return real(self, method, status, obj, headers)

        monkeypatch.setattr(hubserver._HubHandler, "send_json", send_json)
        resolve("org/paged", "main", endpoint=hub.url, token="hf_secret_token")

    assert [p for p in other.seen if "/tree/" in p] and other.auth == [None] * len(other.seen)
    sent = [r for r in hub.requests if r.path.startswith("/api/")]
    assert len(sent) == 2 and all(r.headers.get("authorization") == "Bearer hf_secret_token" for r in sent)


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
