"""A local stand-in for an Ollama server: Ollama's REST API shapes over a real on-disk model store.

It serves what ``ollama serve`` would serve for the store it is given (see :mod:`ollamastore`), on
127.0.0.1 and a free port, so that code under test can talk to it with any HTTP client, the official
``ollama`` Python client included. It never runs a model: "loading" one only records it for ``/api/ps``.
The shapes, status codes and messages follow Ollama's ``server/routes.go`` (0.12.x).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar, Self
from urllib.parse import urlsplit

from ollamastore import (
    LICENSE_MEDIA_TYPE,
    PARAMS_MEDIA_TYPE,
    TEMPLATE_MEDIA_TYPE,
    ModelInfo,
    blob_path,
    find_model,
    list_models,
    parse_served_id,
    read_gguf_kv,
    served_id_of,
)

CONTEXT_LENGTH = 4096  # what /api/ps reports as a loaded model's context (Ollama's default num_ctx)
DEFAULT_KEEP_ALIVE = timedelta(minutes=5)  # OLLAMA_KEEP_ALIVE's default
FOREVER = timedelta(seconds=(2**63 - 1) / 1e9)  # a negative keep_alive: Go's maximal time.Duration
DEFAULT_TEMPLATE = "{{ .Prompt }}"  # Ollama's template for a model that has no template layer
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_DURATION_PART = r"(\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h)"
_SCALES = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def rfc3339(moment: datetime) -> str:
    """A time as Go's encoding/json writes a time.Time: RFC 3339 with fractional seconds, "Z" for UTC."""
    return moment.isoformat().replace("+00:00", "Z")


def parse_keep_alive(value) -> timedelta:
    """How long a ``keep_alive`` keeps a model loaded, as Ollama's api.Duration reads it: absent is 5
    minutes, a number is seconds, a string is a Go duration ("5m", "-1m", "0"; "-1" lacks a unit), a negative
    one is forever. Raises ValueError (a bad string) or TypeError (not a string or number), with about Go's
    message."""
    if value is None:
        return DEFAULT_KEEP_ALIVE
    if isinstance(value, str):
        text = value.lstrip("+-")
        if text != "0" and not re.fullmatch(f"(?:{_DURATION_PART})+", text):
            raise ValueError(f'time: invalid duration "{value}"')
        seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in re.findall(_DURATION_PART, text))
        seconds = -seconds if value.startswith("-") else seconds
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value
    else:
        raise TypeError(f"unsupported duration type: {type(value).__name__}")
    return FOREVER if seconds < 0 else timedelta(seconds=seconds)


def parameter_count(model_type: str) -> int:
    """The parameter count a size label stands for ("8.0B" → 8000000000; 0 if it is no such label)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMBT])", model_type)
    return int(float(match[1]) * _SCALES[match[2]]) if match else 0


def modified_at(info: ModelInfo) -> datetime:
    """When a tag was last written: its manifest file's modification time, in local time as Go reports it."""
    return datetime.fromtimestamp(info.manifest_path.stat().st_mtime, UTC).astimezone()


def details(info: ModelInfo) -> dict:
    """The "details" object of /api/tags, /api/show and /api/ps, read from the config blob."""
    return {"parent_model": "", "format": info.config.get("model_format", ""), "family": info.family,
            "families": info.config.get("model_families"), "parameter_size": info.model_type,
            "quantization_level": info.file_type}


def _go_value(value, quoted: bool) -> str:
    """A parameter value as Go's fmt prints it: %#v (quoted strings) or %v; whole floats without ".0"."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, str) and not quoted else json.dumps(value, ensure_ascii=False)


class _HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that remembers its open connections, so that stopping it drops them
    (a stopped stand-in refuses pooled keep-alive connections too, like a killed ``ollama serve``)."""

    daemon_threads = True

    def __init__(self, owner: StandInOllama):
        self.owner = owner
        self.connections: set[socket.socket] = set()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request, client_address):
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up (timeout) is no error
            super().handle_error(request, client_address)


class StandInOllama:
    """A stand-in ``ollama serve`` over the model store ``store`` (an ``$OLLAMA_MODELS`` folder).

    Use it as a context manager (or call :meth:`start` and :meth:`stop`); ``url`` is "http://127.0.0.1:PORT"
    and ``host`` "127.0.0.1:PORT" (an ``OLLAMA_HOST`` value). ``catalogue`` maps the models a pull may
    fetch (Ollama short names, e.g. "llama3.2:1b") to functions that write them into the store.

    Endpoints: ``GET|HEAD /``, ``/api/version``, ``/api/tags``, ``POST /api/show``, ``GET /api/ps``,
    ``POST /api/generate`` (no prompt: load, or unload with ``keep_alive`` 0), ``POST /api/pull`` and
    ``DELETE /api/delete``, and the OpenAI-compatible ``POST /v1/chat/completions`` (not streamed: the last user
    message echoed; like Ollama's, it loads the model with the default keep_alive, 5 minutes). The store is read
    afresh on every request, so tests may change it at any time.

    Fault switches, plain attributes that tests may set at any time:

    - ``delay``: seconds slept before answering /api/generate and /api/show (to make clients time out);
    - ``status_override``: an HTTP status (e.g. 500) that every /api/* call answers with ``{"error": ...}``;

    and records:

    - ``requests``: (method, path, JSON body or None) of every call, in order, as it arrives;
    - ``answered``: (method, path) of every call whose answer has begun, in order; a call's changes (to
      ``loaded``, to the store) are all in place before its answer begins, so a test waiting on an effect waits
      on this, not on ``requests``;
    - ``loaded``: served id → expiry time (UTC) of the models /api/ps lists.
    """

    def __init__(self, store: Path, *, version: str = "0.12.6",
                 catalogue: dict[str, Callable[[Path], object]] | None = None):
        self.store = Path(store)
        self.version = version
        self.catalogue = {served_id_of(*parse_served_id(name)): write for name, write in (catalogue or {}).items()}
        self.delay = 0.0
        self.status_override: int | None = None
        self.requests: list[tuple[str, str, object]] = []
        self.answered: list[tuple[str, str]] = []
        self.loaded: dict[str, datetime] = {}
        self.port: int | None = None
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> Self:
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"stand-in-ollama-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection; ``url`` then refuses connections."""
        self._stopping.set()  # wakes requests sleeping out a delay
        self._httpd.shutdown()
        for connection in list(self._httpd.connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # closed meanwhile by its own thread
                pass
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    """One connection to the stand-in; HTTP/1.1 with keep-alive, as Go's net/http serves it."""

    protocol_version = "HTTP/1.1"
    routes: ClassVar[dict[str, dict[str, str]]] = {
        "/": {"GET": "root", "HEAD": "root"},
        "/api/version": {"GET": "version", "HEAD": "version"},
        "/api/tags": {"GET": "tags", "HEAD": "tags"},
        "/api/show": {"POST": "show"},
        "/api/ps": {"GET": "ps"},
        "/api/generate": {"POST": "generate"},
        "/api/pull": {"POST": "pull"},
        "/api/delete": {"DELETE": "delete"},
        "/v1/chat/completions": {"POST": "openai_chat"},
    }

    server: _HTTPServer

    def log_message(self, format, *args):  # quiet: no access log on stderr
        pass

    @property
    def owner(self) -> StandInOllama:
        return self.server.owner

    @property
    def store(self) -> Path:
        return self.owner.store

    def dispatch(self):
        path = urlsplit(self.path).path
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError as exc:
            self.owner.requests.append((self.command, path, raw.decode(errors="replace")))
            return self.send_json(400, {"error": f"invalid JSON body: {exc}"})
        self.owner.requests.append((self.command, path, body))
        if self.owner.status_override and path.startswith("/api/"):
            return self.send_json(self.owner.status_override,
                                  {"error": f"stand-in fault: status {self.owner.status_override}"})
        methods = self.routes.get(path)
        if methods is None:  # gin's answers for unknown routes and methods
            return self.send(404, b"404 page not found", "text/plain")
        if self.command not in methods:
            return self.send(405, b"405 method not allowed", "text/plain")
        if self.command in ("POST", "DELETE") and not isinstance(body, dict):
            return self.send_json(400, {"error": "missing request body" if body is None else "invalid request body"})
        getattr(self, "api_" + methods[self.command])(body)

    do_GET = do_HEAD = do_POST = do_DELETE = dispatch

    # --- writing answers ------------------------------------------------------------------------------------

    def send_response(self, code, message=None):
        self.owner.answered.append((self.command, urlsplit(self.path).path))
        super().send_response(code, message)

    def send(self, status: int, body: bytes, content_type: str | None = None):
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, obj):
        """One JSON object, as gin's c.JSON writes it."""
        self.send(status, json.dumps(obj, separators=(",", ":")).encode(), "application/json; charset=utf-8")

    def send_stream(self, events: list[dict]):
        """NDJSON lines in a chunked 200 answer, as Ollama's streamResponse writes progress."""
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            line = json.dumps(event, separators=(",", ":")).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
        self.wfile.write(b"0\r\n\r\n")

    def sleep_out_delay(self):
        if self.owner.delay:
            self.owner._stopping.wait(self.owner.delay)

    def layer_text(self, info: ModelInfo, media_type: str) -> str | None:
        digest = next((layer["digest"] for layer in info.layers if layer["mediaType"] == media_type), None)
        return blob_path(self.store, digest).read_text() if digest else None

    # --- endpoints ------------------------------------------------------------------------------------------

    def api_root(self, body):
        self.send(200, b"Ollama is running", "text/plain; charset=utf-8")

    def api_version(self, body):
        self.send_json(200, {"version": self.owner.version})

    def api_tags(self, body):
        """ListHandler: every readable manifest, most recently modified first."""
        models = [(modified_at(info), info) for info in list_models(self.store)]
        models.sort(key=lambda pair: -int(pair[0].timestamp()))  # whole seconds, stable, as Ollama compares
        self.send_json(200, {"models": [
            {"name": info.served_id, "model": info.served_id, "modified_at": rfc3339(modified), "size": info.size,
             "digest": info.manifest_digest, "details": details(info)}
            for modified, info in models]})

    def api_show(self, body):
        """ShowHandler: the Modelfile, template, parameters, details, GGUF metadata and capabilities."""
        self.sleep_out_delay()
        model = body.get("model") or body.get("name", "")
        info = find_model(self.store, model)
        if info is None:
            return self.send_json(404, {"error": f"model '{model}' not found"})
        template = self.layer_text(info, TEMPLATE_MEDIA_TYPE) or DEFAULT_TEMPLATE
        params = json.loads(self.layer_text(info, PARAMS_MEDIA_TYPE) or "{}")
        license = self.layer_text(info, LICENSE_MEDIA_TYPE)
        pairs = [(key, value) for key, values in params.items()
                 for value in (values if isinstance(values, list) else [values])]
        model_path = blob_path(self.store, info.model_digest)
        model_info = read_gguf_kv(model_path)
        model_info.pop("general.name", None)  # as GetModelInfo drops them
        model_info.pop("tokenizer.chat_template", None)
        model_info["general.parameter_count"] = parameter_count(info.model_type)
        capabilities = ["completion"]
        capabilities += [capability for var, capability in (("Tools", "tools"), ("Suffix", "insert"))
                         if re.search(rf"\.{var}\b", template)]
        modelfile = ['# Modelfile generated by "ollama show"',
                     "# To build a new Modelfile based on this, replace FROM with:",
                     f"# FROM {info.served_id}", "", f"FROM {model_path}"]
        if info.projector_digest:
            capabilities.append("vision")
            modelfile.append(f"FROM {blob_path(self.store, info.projector_digest)}")
        modelfile.append(f'TEMPLATE """{template}"""')
        modelfile += [f"PARAMETER {key} {_go_value(value, quoted=False)}" for key, value in pairs]
        modelfile += [f'LICENSE """{license}"""'] if license else []
        response = {
            "license": license,
            "modelfile": "\n".join(modelfile) + "\n",
            "parameters": "\n".join(f"{key:<30} {_go_value(value, quoted=True)}" for key, value in pairs),
            "template": template,
            "details": details(info),
            "model_info": model_info,
            "projector_info": info.projector_digest and read_gguf_kv(blob_path(self.store, info.projector_digest)),
            "capabilities": capabilities,
            "modified_at": rfc3339(modified_at(info)),
        }
        self.send_json(200, {key: value for key, value in response.items() if value})  # Go's omitempty

    def api_ps(self, body):
        """PsHandler: the loaded models whose keep_alive has not run out, longest-lived first."""
        now = datetime.now(UTC)
        for served_id, expires_at in list(self.owner.loaded.items()):
            if expires_at <= now:
                self.owner.loaded.pop(served_id, None)
        models = {info.served_id: info for info in list_models(self.store)}
        loaded = sorted(((expires_at, models[served_id]) for served_id, expires_at in self.owner.loaded.items()
                         if served_id in models), key=lambda pair: pair[0], reverse=True)
        self.send_json(200, {"models": [
            {"name": info.served_id, "model": info.served_id, "size": info.size, "digest": info.manifest_digest,
             "details": details(info), "expires_at": rfc3339(expires_at.astimezone()), "size_vram": info.size,
             "context_length": CONTEXT_LENGTH}
            for expires_at, info in loaded]})

    def api_generate(self, body):
        """GenerateHandler without a prompt: load the model (or unload it when keep_alive is 0)."""
        self.sleep_out_delay()
        model = body.get("model", "")
        try:
            keep_alive = parse_keep_alive(body.get("keep_alive"))
        except (ValueError, TypeError) as exc:  # Ollama fails to bind the request
            return self.send_json(400, {"error": str(exc)})
        info = find_model(self.store, model)
        if info is None:
            return self.send_json(404, {"error": f"model '{model}' not found"})
        if body.get("prompt"):
            return self.send_json(501, {"error": "the stand-in Ollama does not generate text"})
        now = datetime.now(UTC)
        if keep_alive:
            self.owner.loaded[info.served_id] = now + keep_alive
        else:
            self.owner.loaded.pop(info.served_id, None)
        self.send_json(200, {"model": model, "created_at": rfc3339(now), "response": "", "done": True,
                             "done_reason": "load" if keep_alive else "unload"})

    def api_openai_chat(self, body):
        """The OpenAI route: echo the last user message; the model stays loaded for Ollama's default 5 minutes."""
        model = body.get("model", "")
        info = find_model(self.store, model)
        if info is None:
            return self.send_json(404, {"error": {"message": f"model '{model}' not found", "type": "api_error",
                                                  "param": None, "code": None}})
        self.owner.loaded[info.served_id] = datetime.now(UTC) + parse_keep_alive(None)
        text = next((m.get("content") for m in reversed(body.get("messages") or [])
                     if isinstance(m, dict) and m.get("role") == "user"), "")
        self.send_json(200, {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
                             "model": model, "system_fingerprint": "fp_ollama",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    def api_pull(self, body):
        """PullHandler: write a catalogue model into the store, streaming Ollama's progress lines."""
        try:
            served_id = served_id_of(*parse_served_id(body.get("model") or body.get("name", "")))
        except ValueError:
            return self.send_json(400, {"error": "invalid model name"})
        stream = body.get("stream") is not False
        write = self.owner.catalogue.get(served_id)
        if write is None:  # the registry answers 404 for the manifest
            error = "pull model manifest: file does not exist"
            if not stream:
                return self.send_json(500, {"error": error})
            return self.send_stream([{"status": "pulling manifest"}, {"error": error}])
        write(self.store)
        info = find_model(self.store, served_id)
        config = {"digest": info.config_digest, "size": blob_path(self.store, info.config_digest).stat().st_size}
        events = [{"status": "pulling manifest"}]
        events += [{"status": f"pulling {layer['digest'][7:19]}", "digest": layer["digest"],
                    "total": layer["size"], "completed": layer["size"]} for layer in info.layers + [config]]
        events += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"}, {"status": "success"}]
        if not stream:
            return self.send_json(200, {"status": "success"})
        self.send_stream(events)

    def api_delete(self, body):
        """DeleteHandler: remove the manifest, prune empty manifest folders, and remove each of its blobs
        that no remaining manifest references. It also unloads the model, as ``ollama rm`` does first."""
        model = body.get("model") or body.get("name", "")
        info = find_model(self.store, model)
        if info is None:
            return self.send_json(404, {"error": f"model '{model}' not found"})
        info.manifest_path.unlink()
        for folder, _, _ in reversed(list(os.walk(self.store / "manifests"))):  # deepest first
            if not any(Path(folder).iterdir()):
                Path(folder).rmdir()
        in_use = {digest for other in list_models(self.store) for digest in other.digests}
        for digest in set(info.digests) - in_use:
            blob_path(self.store, digest).unlink(missing_ok=True)
        self.owner.loaded.pop(info.served_id, None)
        self.send(200, b"")
