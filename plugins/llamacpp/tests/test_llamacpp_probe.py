"""The llama.cpp readiness probe against a small local HTTP server answering as each engine does: llama-server
(``/health`` 503 while loading, then 200) and llama_cpp.server (no ``/health``: 404; ``/v1/models`` once it
listens). No engine runs here."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from imageworks_models.pluginhost.manager import get_plugins
from imageworks_models.testing import test_settings as settings

pytestmark = pytest.mark.usefixtures("imageworks_isolated")


class Server:
    """Answers ``GET path`` with ``routes[path] = (status, body)``; anything else 404."""

    def __init__(self):
        self.routes: dict[str, tuple[int, bytes]] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                status, body = routes.get(self.path, (404, b'{"detail": "Not Found"}'))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def models(self, *ids: str) -> None:
        self.routes["/v1/models"] = (200, json.dumps({"object": "list", "data": [{"id": i} for i in ids]}).encode())


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def probe(tmp_path, server, served="org/tiny"):
    return get_plugins().backend("llamacpp").load().probe(server.endpoint, served, settings=settings(tmp_path))


def test_llama_server_loading_then_ready(tmp_path, server):
    server.routes["/health"] = (503, b'{"error": {"message": "Loading model"}}')
    server.models("org/tiny")

    loading = probe(tmp_path, server)
    server.routes["/health"] = (200, b'{"status": "ok"}')
    ready = probe(tmp_path, server)

    assert (loading.ready, loading.detail) == (False, "/health answered 503 (loading the model)")
    assert (ready.ready, ready.detail) == (True, "serving org/tiny")


def test_python_server_without_health_is_ready_when_it_lists_the_alias(tmp_path, server):
    server.models("org/tiny")

    assert probe(tmp_path, server).ready


def test_another_model_listed_is_not_ready(tmp_path, server):
    server.routes["/health"] = (200, b"{}")
    server.models("org/other")

    result = probe(tmp_path, server)

    assert (result.ready, result.detail) == (False, "/v1/models lists org/other, not org/tiny")


def test_a_server_error_is_not_ready(tmp_path, server):
    server.routes["/health"] = (500, b"{}")
    server.models("org/tiny")

    assert probe(tmp_path, server).detail == "/health answered 500"


def test_nothing_listening_is_not_ready(tmp_path, server):
    server.httpd.shutdown()
    server.httpd.server_close()

    result = probe(tmp_path, server)

    assert (result.ready, result.detail) == (False, "connection refused")


def test_health_row_names_the_build_when_llama_server_says_it(tmp_path, server, monkeypatch):
    server.routes["/props"] = (200, b'{"build_info": "b6000-abcdef0"}')
    server.models("org/tiny")
    port = server.endpoint.rsplit(":", 1)[1].split("/")[0]

    row = get_plugins().backend("llamacpp").load().health(
        settings=settings(tmp_path, CHAT_PROXY_VLLM_PORT=port, CHAT_PROXY_VLLM_SINGLE_PORT="1"))

    assert row == {"backend": "llamacpp", "url": server.endpoint, "ok": True, "version": "b6000-abcdef0",
                   "loaded": [{"model": "org/tiny"}], "error": None, "hint": None}
