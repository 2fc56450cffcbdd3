"""The core's HTTP probe of OpenAI-compatible servers (``serving/probing.py``, in the plugin API as
``openai_ready``, ``probe_get``...) against a local server on 127.0.0.1 answering as each case needs: bounded
answers and time, redirects never followed, the token only where it was meant to go and never in a message."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from imageworks_models.api import (ProbeError, model_ids, openai_health, openai_ready, probe_get, probe_root,
                                   served_ids, version_at)

TOKEN = "sk-probe-secret-0123456789"


class Server:
    """Answers ``GET path`` with ``routes[path]``: ``(status, body, headers)`` or a callable writing the answer
    itself; records ``(path, Authorization)`` of every request."""

    def __init__(self):
        self.routes: dict = {}
        self.seen: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - http.server's name
                outer.seen.append((self.path, self.headers.get("Authorization")))
                route = outer.routes.get(self.path, (404, b'{"detail": "Not Found"}', {}))
                if callable(route):
                    return route(self)
                status, body, headers = route
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def models(*ids: str) -> bytes:
    return json.dumps({"object": "list", "data": [{"id": i, "object": "model"} for i in ids]}).encode()


def test_ready_when_health_is_up_and_the_model_is_listed(server):
    server.routes.update({"/health": (200, b"", {}), "/v1/models": (200, models("org/a", "org/b"), {})})

    got = openai_ready(f"{server.root}/v1/", "org/b")

    assert (got.ready, got.detail) == (True, "serving org/b")
    assert served_ids(server.root) == ["org/a", "org/b"]  # with or without /v1: the same server root


def test_not_ready_says_what_it_saw(server):
    server.routes.update({"/health": (503, b"", {}), "/v1/models": (200, models("org/a"), {})})
    assert openai_ready(server.root, "org/a").detail == "/health answered 503"
    assert openai_ready(server.root, "org/a", loading=(503,)).detail == "/health answered 503 (loading the model)"
    server.routes["/health"] = (200, b"", {})
    assert openai_ready(server.root, "org/z").detail == "/v1/models lists org/a, not org/z"
    del server.routes["/health"]  # a server without /health (llama_cpp.server): 404 may count as up
    assert openai_ready(server.root, "org/a").detail == "/health answered 404"
    assert openai_ready(server.root, "org/a", health_ok=(200, 404)).ready


def test_an_answer_over_the_limit_is_an_error_and_is_not_read_whole(server):
    sent = []

    def endless(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        try:
            for _ in range(4096):  # 256 MiB if it were all read
                handler.wfile.write(b" " * 65536)
                sent.append(1)
        except OSError:
            pass

    server.routes["/v1/models"] = endless

    with pytest.raises(ProbeError) as caught:
        probe_get(f"{server.root}/v1/models", limit=1 << 20)

    assert "answered more than 1,048,576 bytes at /v1/models" in str(caught.value)
    assert len(sent) < 1024  # the writer was stopped long before the end (the socket was closed)


def test_a_server_that_never_answers_is_given_up_on_after_the_read_timeout(server):
    def silent(handler):
        time.sleep(8)

    server.routes["/health"] = silent
    began = time.monotonic()

    got = openai_ready(server.root, "org/a")

    assert (got.ready, got.detail) == (False, "no answer within 2s")
    assert time.monotonic() - began < 2.0 + 2.0  # the read timeout, and slack for a loaded machine


@pytest.mark.parametrize("location", ["http://127.0.0.1:9/steal", "http://user:hunter2@elsewhere.example/x"])
def test_a_redirect_is_never_followed_and_the_token_goes_nowhere_else(server, location):
    server.routes["/v1/models"] = (302, b"", {"Location": location})

    with pytest.raises(ProbeError) as caught:
        served_ids(server.root, token=TOKEN)

    assert server.seen == [("/v1/models", f"Bearer {TOKEN}")]  # one request: to the URL it was meant for
    assert "(not followed)" in str(caught.value) and "hunter2" not in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_no_token_no_authorization_header(server):
    server.routes["/v1/models"] = (200, models("a"), {})

    served_ids(server.root)

    assert server.seen == [("/v1/models", None)]


@pytest.mark.parametrize("url", ["ftp://user:hunter2@host/x", "file:///etc/passwd", "http://", "//host:80/",
                                 "http://host:notaport/"])
def test_a_url_that_is_not_http_is_refused_without_its_password(url):
    with pytest.raises(ProbeError) as caught:
        probe_get(url)

    assert "not an http(s) URL" in str(caught.value) and "hunter2" not in str(caught.value)


def test_a_closed_port_is_connection_refused(server):
    root = server.root
    server.close()

    with pytest.raises(ProbeError, match="^connection refused$"):
        probe_get(f"{root}/health")


@pytest.mark.parametrize("body, ids", [(models("a", "b"), ["a", "b"]), (b'{"data": null}', []),
                                       (b'{"data": [{"id": 1}, "x", {"id": "ok"}]}', ["ok"])])
def test_model_ids_of_a_model_list(body, ids):
    assert model_ids(body) == ids


@pytest.mark.parametrize("body", [b"<html>", b"[]", b'{"data": {"id": "a"}}', b"[" * 100_000])
def test_model_ids_of_something_else_is_one_clear_error(body):
    with pytest.raises(ProbeError, match="^/v1/models answered something that is not a model list$"):
        model_ids(body)


def test_health_row_and_version(server):
    server.routes.update({"/v1/models": (200, models("org/a"), {}), "/version": (200, b'{"version": "0.9.1"}', {})})

    row = openai_health(f"{server.root}/v1", backend="vllm", label="vLLM",
                        version=lambda url: version_at(url, "/version", "version"))

    assert row == {"backend": "vllm", "url": f"{server.root}/v1", "ok": True, "version": "0.9.1",
                   "loaded": [{"model": "org/a"}], "error": None, "hint": None}
    assert version_at(server.root, "/props", "build_info") is None  # 404: no version, no error
    server.close()
    down = openai_health(f"{server.root}/v1", backend="vllm", label="vLLM")
    assert down["ok"] is False and down["error"] == f"no vLLM server answers at {server.root}/v1 (connection refused)"
    assert probe_root("http://h:1/v1/") == "http://h:1"
