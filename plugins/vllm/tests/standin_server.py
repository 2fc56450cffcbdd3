#!/usr/bin/env python3
"""A stand-in for ``vllm serve`` and ``lmdeploy serve api_server``, for testing a serving orchestrator
without a GPU, vLLM or LMDeploy. Standard library only.

It accepts the real command lines (after the program name) and speaks the real OpenAI-compatible endpoints::

    python standin_server.py serve MODEL_PATH --host H --port P --served-model-name NAME [ignored flags...]
    python standin_server.py serve --model MODEL_PATH --host H --port P ...
    python standin_server.py serve api_server MODEL_PATH --server-name H --server-port P --model-name NAME \\
        --backend turbomind|pytorch --model-format hf|awq [ignored flags...]

Unknown flags (``--limit-mm-per-prompt image=4``, ``--max-model-len 4096``, ``--trust-remote-code``...) are
ignored. Defaults as the real servers: vLLM 0.0.0.0:8000, LMDeploy 0.0.0.0:23333, the served name defaults to
the model path. Startup lines go to stdout in uvicorn's style (``INFO:     Uvicorn running on http://H:P``);
errors go to stderr as ``ERROR ...`` lines. Access logs are not written (a pipe nobody reads never fills).

Endpoints:

- ``GET /health``: 200 with an empty body once ready, 503 before.
- ``GET /v1/models``: ``{"object": "list", "data": [{"id": NAME, "object": "model", "created": <int>,
  "owned_by": "vllm" (``"lmdeploy"`` for the LMDeploy command line), "root": MODEL_PATH, "parent": null,
  "max_model_len": 4096}]}``.
- ``GET /version``: ``{"version": "0.11.0"}``.
- ``POST /v1/chat/completions``: a minimal ``chat.completion`` whose assistant message echoes the text of the
  last user message; 404 error JSON (vLLM's shape) when ``model`` is given and is not the served name, 400 for
  a body that is not JSON, 503 before ready. With ``"stream": true``: Server-Sent Events, one
  ``chat.completion.chunk`` per word (``max_tokens`` words at most; the text repeats when it is shorter), then
  ``data: [DONE]``.
- ``POST /v1/completions``: the same for ``prompt`` (``text_completion``, streamed as ``text_completion`` chunks).
- ``POST /v1/embeddings``: ``{"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [8 floats
  from the input's bytes]}], ...}``.
- anything else: 404 ``{"object": "error", "message": ..., "type": "NotFoundError", "code": 404}``.

Fault switches (environment variables):

- ``STANDIN_BIND_DELAY``: seconds to wait before binding the port (connections are refused meanwhile).
- ``STANDIN_START_DELAY``: seconds after binding before ``/health`` turns 200 (503 meanwhile), like a model
  that is still loading.
- ``STANDIN_EXIT_CODE``: print an ``ERROR`` line and exit at once with this code, before binding (an early
  crash, e.g. a bad model path or out of GPU memory).
- ``STANDIN_NEVER_READY=1``: binds, but ``/health`` stays 503 forever.
- ``STANDIN_FORK_GRANDCHILD=1``: spawns a grandchild (``python -c "import time; time.sleep(3600)"``) in this
  process's process group and leaves it running even on SIGTERM (as stray engine workers would), so the
  orchestrator must kill the whole group. Its pid is written to the file named by ``STANDIN_PID_FILE`` if set.
- ``STANDIN_IGNORE_SIGTERM=1``: SIGTERM is ignored; only SIGKILL stops the server.
- ``STANDIN_CRASH_AFTER``: seconds after becoming ready, print an ``ERROR`` line and exit with code 3.
- ``STANDIN_TOKEN_DELAY``: seconds between streamed chunks (default 0).
- ``STANDIN_DIE_MIDSTREAM``: exit with code 3 (no clean shutdown) after sending this many chunks of a stream;
  with ``STANDIN_DIE_ONCE_FILE`` set, only if that file does not exist yet (it is created first), so a
  restarted server streams normally.

Otherwise SIGTERM (and SIGINT) shut it down cleanly: the socket is closed and it exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "0.11.0"
MAX_MODEL_LEN = 4096


def log(message: str) -> None:
    print(f"INFO:     {message}", flush=True)


def error(message: str) -> None:
    print(f"ERROR {time.strftime('%m-%d %H:%M:%S')} {message}", file=sys.stderr, flush=True)


def env_float(name: str) -> float | None:
    value = os.environ.get(name, "").strip()
    return float(value) if value else None


def parse_args(argv: list[str]) -> argparse.Namespace:
    """vLLM's or LMDeploy's command line (without the program name) -> flavor, model, host, port, name."""
    args = list(argv)
    if args and args[0] == "serve":
        args = args[1:]
    if args and args[0] == "api_server":  # lmdeploy serve api_server MODEL_PATH ...
        parser = argparse.ArgumentParser(prog="lmdeploy serve api_server")
        parser.add_argument("model_path")
        parser.add_argument("--server-name", default="0.0.0.0")
        parser.add_argument("--server-port", type=int, default=23333)
        parser.add_argument("--model-name", default=None)
        parser.add_argument("--backend", choices=["turbomind", "pytorch"], default="turbomind")
        parser.add_argument("--model-format", default=None)
        ns, _ = parser.parse_known_args(args[1:])
        return argparse.Namespace(
            flavor="lmdeploy", model=ns.model_path, host=ns.server_name, port=ns.server_port,
            name=ns.model_name or ns.model_path,
        )
    parser = argparse.ArgumentParser(prog="vllm serve")
    parser.add_argument("model_tag", nargs="?", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name", nargs="+", default=None)
    ns, _ = parser.parse_known_args(args)
    model = ns.model_tag or ns.model
    if not model:
        parser.error("a model is required (vllm serve MODEL or --model MODEL)")
    names = ns.served_model_name or [model]
    return argparse.Namespace(flavor="vllm", model=model, host=ns.host, port=ns.port, name=names[0])


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # many clients at once (a benchmark's 200 streams), as uvicorn's backlog allows

    def __init__(self, address, config: argparse.Namespace, ready_at: float):
        super().__init__(address, Handler)
        self.config = config
        self.ready_at = ready_at
        self.created = int(time.time())

    @property
    def ready(self) -> bool:
        return time.monotonic() >= self.ready_at


class Handler(BaseHTTPRequestHandler):
    server: StandinServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

    def log_message(self, format, *args):  # no access log
        pass

    def send_json(self, status: int, payload) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_error_json(self, status: int, message: str, kind: str) -> None:
        self.send_json(status, {"object": "error", "message": message, "type": kind, "param": None, "code": status})

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        config = self.server.config
        if path == "/health":
            self.send_response(200 if self.server.ready else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/v1/models":
            card = {
                "id": config.name, "object": "model", "created": self.server.created,
                "owned_by": config.flavor, "root": config.model, "parent": None, "max_model_len": MAX_MODEL_LEN,
            }
            self.send_json(200, {"object": "list", "data": [card]})
        elif path == "/version":
            self.send_json(200, {"version": VERSION})
        else:
            self.send_error_json(404, "Not Found", "NotFoundError")

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path not in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
            self.send_error_json(404, "Not Found", "NotFoundError")
            return
        if not self.server.ready:
            self.send_error_json(503, "The model is still loading.", "ServiceUnavailableError")
            return
        try:
            request = json.loads(raw or b"null")
            if not isinstance(request, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as exc:
            self.send_error_json(400, f"Invalid request body: {exc}", "BadRequestError")
            return
        name = self.server.config.name
        model = request.get("model") or name
        if model != name:
            self.send_error_json(404, f"The model `{model}` does not exist.", "NotFoundError")
            return
        if path == "/v1/embeddings":
            data = str(request.get("input") or "").encode()
            vector = [round((sum(data[i::8]) % 997) / 997, 6) for i in range(8)]
            self.send_json(200, {"object": "list", "model": model, "data": [
                {"object": "embedding", "index": 0, "embedding": vector}],
                "usage": {"prompt_tokens": len(data.split()), "total_tokens": len(data.split())}})
            return
        chat = path == "/v1/chat/completions"
        text = last_user_text(request.get("messages") or []) if chat else str(request.get("prompt") or "")
        if request.get("stream") is True:
            self.stream(model, text, chat=chat, max_tokens=request.get("max_tokens"))
            return
        words = len(text.split())
        if not chat:
            self.send_json(200, {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
                                 "created": int(time.time()), "model": model,
                                 "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": words, "completion_tokens": words,
                                           "total_tokens": 2 * words}})
            return
        self.send_json(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": words, "completion_tokens": words, "total_tokens": 2 * words},
        })


    def stream(self, model: str, text: str, *, chat: bool, max_tokens) -> None:
        """Server-Sent Events, one chunk per word, then ``data: [DONE]`` (chunked transfer encoding)."""
        words = text.split() or ["ok"]
        count = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else len(words)
        delay = env_float("STANDIN_TOKEN_DELAY") or 0.0
        die_after = os.environ.get("STANDIN_DIE_MIDSTREAM", "").strip()
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(data: str) -> None:
            raw = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            self.wfile.flush()

        try:
            for i in range(count):
                if die_after and i >= int(die_after) and first_death():
                    os._exit(3)
                word = words[i % len(words)] + ("" if i == count - 1 else " ")
                if chat:
                    choice = {"index": 0, "delta": {"content": word} if i else {"role": "assistant", "content": word},
                              "logprobs": None, "finish_reason": "stop" if i == count - 1 else None}
                    chunk = {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()),
                             "model": model, "choices": [choice]}
                else:
                    chunk = {"id": ident, "object": "text_completion", "created": int(time.time()), "model": model,
                             "choices": [{"index": 0, "text": word, "logprobs": None,
                                          "finish_reason": "stop" if i == count - 1 else None}]}
                send(json.dumps(chunk))
                if delay:
                    time.sleep(delay)
            send("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def first_death() -> bool:
    """Whether to die now (``STANDIN_DIE_ONCE_FILE``: only the first time)."""
    once = os.environ.get("STANDIN_DIE_ONCE_FILE", "").strip()
    if not once:
        return True
    try:
        os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def last_user_text(messages) -> str:
    """The text of the last user message: a string, or the text parts of a list of content parts."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
                )
            return ""
    return ""


def main(argv: list[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    log(f"Started server process [{os.getpid()}]")

    exit_code = os.environ.get("STANDIN_EXIT_CODE", "").strip()
    if exit_code:
        error(f"standin: simulated crash while loading {config.model} (STANDIN_EXIT_CODE={exit_code})")
        return int(exit_code)

    # The handlers only append to a list: a handler that took a lock (threading.Event.set) could run while this
    # same thread holds that lock inside Event.wait, and then the server would never exit (CI saw SIGKILLs).
    stopping: list[int] = []

    def request_stop(signum, frame):
        stopping.append(signum)

    def stopped_within(seconds: float) -> bool:
        end = time.monotonic() + seconds
        while not stopping and time.monotonic() < end:
            time.sleep(min(0.02, max(0.0, end - time.monotonic())))  # a signal cuts the sleep short
        return bool(stopping)

    if os.environ.get("STANDIN_IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    if os.environ.get("STANDIN_FORK_GRANDCHILD") == "1":
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        pid_file = os.environ.get("STANDIN_PID_FILE")
        if pid_file:
            with open(pid_file + ".tmp", "w") as handle:
                handle.write(str(grandchild.pid))
            os.replace(pid_file + ".tmp", pid_file)
        log(f"Started engine worker process [{grandchild.pid}]")

    bind_delay = env_float("STANDIN_BIND_DELAY")
    if bind_delay and stopped_within(bind_delay):
        return 0

    start_delay = env_float("STANDIN_START_DELAY") or 0.0
    never_ready = os.environ.get("STANDIN_NEVER_READY") == "1"
    ready_at = float("inf") if never_ready else time.monotonic() + start_delay
    crash_after = env_float("STANDIN_CRASH_AFTER")
    crash_at = ready_at + crash_after if crash_after is not None else None

    try:
        server = StandinServer((config.host, config.port), config, ready_at)
    except OSError as exc:
        error(f"[Errno {exc.errno}] error while attempting to bind on address ({config.host!r}, {config.port}): "
              f"{exc.strerror}")
        return 1
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    log("Waiting for application startup.")
    log(f"Uvicorn running on http://{config.host}:{config.port} (Press CTRL+C to quit)")

    announced = False
    try:
        while not stopped_within(0.02):
            now = time.monotonic()
            if not announced and now >= ready_at:
                log("Application startup complete.")
                announced = True
            if crash_at is not None and now >= crash_at:
                error("standin: simulated engine crash (STANDIN_CRASH_AFTER)")
                return 3
        log("Shutting down")
        log(f"Finished server process [{os.getpid()}]")
        return 0
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
