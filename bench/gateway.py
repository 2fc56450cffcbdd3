"""Benchmark: the gateway against the same engines called directly, in the same run.

Run by hand (not in CI):  uv run python bench/gateway.py [--requests 400] [--streams 200] [--swaps 7]

Engines: the fast stand-in (plugins/vllm/tests/standin_server.py, the OpenAI protocol with SSE streaming) and,
when llama-cpp-python's server is installed (the ``engine`` group), the real llama.cpp engine on a tiny GGUF
model (plugins/llamacpp/tests/tinygguf.py). A real ``imageworks-models gateway`` process serves both; each
measurement alternates direct and gateway calls (interleaved) over kept-alive connections.

Prints, each with its target:
- added latency per non-streamed request: p50 and p99 through the gateway minus the same percentiles direct
  (target: p50 <= 2 ms, p99 <= 10 ms);
- streaming: tokens per second through the gateway as a ratio of direct (median of interleaved runs;
  target >= 0.9x);
- concurrency: ``--streams`` streams at once through the gateway to the stand-in; errors and incomplete
  streams (target 0);
- swap: first streamed byte from a model the gateway has to start, minus the engine's own readiness (the same
  engine started by hand and polled every 5 ms until ``/v1/models`` lists it), median of ``--swaps`` interleaved
  runs (target <= 0.3 s).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "plugins" / "vllm" / "tests" / "standin_server.py"
sys.path.insert(0, str(ROOT / "plugins" / "llamacpp" / "tests"))
MESSAGES = [{"role": "user", "content": "say hello to the tiny test model"}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def have_engine() -> bool:
    from importlib.util import find_spec

    return all(find_spec(m) for m in ("llama_cpp", "uvicorn", "sse_starlette"))


class Client:
    """One kept-alive HTTP/1.1 connection (the same client code for direct and gateway calls)."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def post(self, path: str, payload: dict) -> tuple[int, bytes]:
        self.conn.request("POST", path, body=json.dumps(payload), headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        return response.status, response.read()

    def stream(self, path: str, payload: dict, *, first_data: list | None = None) -> list[bytes]:
        self.conn.request("POST", path, body=json.dumps(payload), headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        lines = []
        while True:
            line = response.fp.readline() if response.chunked is False else response.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                if first_data is not None and not first_data:
                    first_data.append(time.monotonic())
                lines.append(line.strip())
                if line.strip() == b"data: [DONE]":
                    response.read()
                    break
        return lines


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def latency(name: str, direct_port: int, gw_port: int, model_direct: str, model_gw: str, n: int,
            extra: dict) -> dict:
    d, g = Client(direct_port), Client(gw_port)
    direct, through = [], []
    for i in range(n + 20):
        for client, model, out in ((d, model_direct, direct), (g, model_gw, through))[:: 1 if i % 2 else -1]:
            began = time.perf_counter()
            status, _ = client.post("/v1/chat/completions", {"model": model, "messages": MESSAGES, **extra})
            took = time.perf_counter() - began
            assert status == 200, status
            if i >= 20:  # warm-up
                out.append(took)
    row = {"engine": name, "direct_p50_ms": pct(direct, 50) * 1e3, "gateway_p50_ms": pct(through, 50) * 1e3,
           "added_p50_ms": (pct(through, 50) - pct(direct, 50)) * 1e3,
           "added_p99_ms": (pct(through, 99) - pct(direct, 99)) * 1e3}
    return row


def streaming(direct_port: int, gw_port: int, model_direct: str, model_gw: str, tokens: int, runs: int) -> dict:
    d, g = Client(direct_port), Client(gw_port)
    rates = {"direct": [], "gateway": []}
    for i in range(runs):
        for client, model, key in ((d, model_direct, "direct"), (g, model_gw, "gateway"))[:: 1 if i % 2 else -1]:
            began = time.perf_counter()
            lines = client.stream("/v1/chat/completions", {"model": model, "messages": MESSAGES, "stream": True,
                                                           "temperature": 0, "max_tokens": tokens})
            took = time.perf_counter() - began
            chunks = len([x for x in lines if x != b"data: [DONE]"])
            rates[key].append(chunks / took)
    direct, through = statistics.median(rates["direct"]), statistics.median(rates["gateway"])
    return {"direct_tok_s": direct, "gateway_tok_s": through, "ratio": through / direct}


def concurrent(gw_port: int, model: str, streams: int, tokens: int) -> dict:
    errors, incomplete = [], []
    barrier = threading.Barrier(streams)

    def one():
        try:
            client = Client(gw_port)
            barrier.wait(30)
            lines = client.stream("/v1/chat/completions", {"model": model, "messages": MESSAGES, "stream": True,
                                                           "max_tokens": tokens})
            if not lines or lines[-1] != b"data: [DONE]" or len(lines) != tokens + 1:
                incomplete.append(len(lines))
        except Exception as exc:  # noqa: BLE001 - counted
            errors.append(repr(exc))

    began = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return {"streams": streams, "errors": len(errors), "incomplete": len(incomplete),
            "seconds": time.monotonic() - began, "first_error": errors[0] if errors else None}


def engine_readiness(argv: list[str], port: int, served: str, env: dict) -> float:
    """The engine by itself: exec to ``/v1/models`` listing ``served``, polled every 5 ms."""
    began = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    try:
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/v1/models")
                body = conn.getresponse().read()
                if served.encode() in body:
                    return time.monotonic() - began
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {proc.returncode}")
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


def swap(gw_port: int, model: str) -> float:
    """Unload ``model`` in the gateway, then time a streamed request to its first data line."""
    c = Client(gw_port)
    status, body = c.post("/gateway/unload", {"model": model})
    assert status == 200, body
    while True:  # its port is free again before the next start
        c2 = Client(gw_port)
        c2.conn.request("GET", "/gateway/status")
        if model not in c2.conn.getresponse().read().decode():
            break
        time.sleep(0.01)
    first: list[float] = []
    began = time.monotonic()
    lines = Client(gw_port).stream("/v1/chat/completions", {"model": model, "messages": MESSAGES, "stream": True,
                                                            "temperature": 0, "max_tokens": 2}, first_data=first)
    assert lines[-1] == b"data: [DONE]", lines[-3:]
    return first[0] - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--swaps", type=int, default=7)
    parser.add_argument("--no-engine", action="store_true", help="the stand-in only")
    args = parser.parse_args()

    from imageworks_models.testing import GatewayProcess, make_registry

    engine = have_engine() and not args.no_engine
    tmp = Path(tempfile.mkdtemp(prefix="iw-gateway-bench-"))
    weights = tmp / "weights" / "model"
    weights.mkdir(parents=True)
    (weights / "config.json").write_text("{}")
    entries = [{"name": "fast", "backend": "vllm", "served_model_id": "fast",
                "backend_config": {"model_path": str(weights)}}]
    if engine:
        import tinygguf

        model = tinygguf.write_tiny_llama(tmp / "tiny.gguf")
        entries.append({"name": "tiny", "backend": "llamacpp", "served_model_id": "tiny",
                        "backend_config": {"model_path": str(model), "ctx_size": 2048}})
    make_registry(tmp / "registry", *entries)
    standin = f"{shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))}"
    env = {"IMAGEWORKS_REGISTRY_DIR": str(tmp / "registry"), "IMAGEWORKS_VLLM_BIN": standin,
           "IMAGEWORKS_LLAMACPP_BIN": f"{shlex.quote(sys.executable)} -m llama_cpp.server",
           "IMAGEWORKS_STOP_GRACE": "3", "IMAGEWORKS_LLAMACPP_STOP_GRACE": "3",
           "XDG_CACHE_HOME": str(tmp / "cache"), "IMAGEWORKS_GATEWAY_MAX_QUEUE": "1000"}
    os.environ.update(env)
    gw = GatewayProcess(env=env, log_path=tmp / "gateway.log").start()
    try:
        def status():
            c = Client(gw.port)
            c.conn.request("GET", "/gateway/status")
            return {m["name"]: m for m in json.loads(c.conn.getresponse().read())["models"]}

        for name in [e["name"] for e in entries]:
            Client(gw.port).post("/v1/chat/completions", {"model": name, "messages": MESSAGES, "max_tokens": 1})
        ports = {name: m["port"] for name, m in status().items()}
        print(f"gateway {gw.url}; engines: stand-in" + (" and llama-cpp-python (tiny GGUF)" if engine else ""))

        print("\nadded latency, non-streamed (target: p50 <= 2 ms, p99 <= 10 ms)")
        rows = [latency("stand-in", ports["fast"], gw.port, "fast", "fast", args.requests, {})]
        if engine:
            rows.append(latency("llama.cpp", ports["tiny"], gw.port, "tiny", "tiny", max(100, args.requests // 4),
                                {"max_tokens": 1, "temperature": 0}))
        for r in rows:
            print(f"  {r['engine']:<10} direct p50 {r['direct_p50_ms']:.2f} ms, gateway p50 {r['gateway_p50_ms']:.2f} ms;"
                  f" added p50 {r['added_p50_ms']:+.2f} ms, p99 {r['added_p99_ms']:+.2f} ms")

        print("\nstreaming tokens/s through the gateway vs direct (target >= 0.9x)")
        s = streaming(ports["fast"], gw.port, "fast", "fast", 400, 9)
        print(f"  stand-in   direct {s['direct_tok_s']:.0f} chunks/s, gateway {s['gateway_tok_s']:.0f} chunks/s: "
              f"{s['ratio']:.2f}x")
        if engine:
            s = streaming(ports["tiny"], gw.port, "tiny", "tiny", 200, 7)
            print(f"  llama.cpp  direct {s['direct_tok_s']:.0f} tok/s, gateway {s['gateway_tok_s']:.0f} tok/s: "
                  f"{s['ratio']:.2f}x")

        print(f"\n{args.streams} concurrent streams through the gateway (target: 0 errors)")
        c = concurrent(gw.port, "fast", args.streams, 20)
        print(f"  stand-in   {c['streams']} streams x 20 chunks in {c['seconds']:.2f} s: {c['errors']} errors, "
              f"{c['incomplete']} incomplete" + (f" (first: {c['first_error']})" if c["first_error"] else ""))

        print("\nswap: first byte from a model the gateway starts, minus the engine's own readiness (target <= 0.3 s)")
        targets = [("stand-in", "fast", [sys.executable, str(STANDIN), "serve", str(weights), "--host", "127.0.0.1",
                                         "--port", "{port}", "--served-model-name", "fast"])]
        if engine:
            targets.append(("llama.cpp", "tiny", [sys.executable, "-m", "llama_cpp.server", "--model",
                                                  str(tmp / "tiny.gguf"), "--host", "127.0.0.1", "--port", "{port}",
                                                  "--model_alias", "tiny", "--n_ctx", "2048"]))
        for label, name, argv in targets:
            own, through = [], []
            for _ in range(args.swaps):
                port = free_port()
                own.append(engine_readiness([a.replace("{port}", str(port)) for a in argv], port, name,
                                            {**os.environ}))
                through.append(swap(gw.port, name))
            extra = statistics.median(through) - statistics.median(own)
            print(f"  {label:<10} engine ready {statistics.median(own):.3f} s, first byte through the gateway "
                  f"{statistics.median(through):.3f} s: +{extra:.3f} s (median of {args.swaps})")
    finally:
        code = gw.stop()
        print(f"\ngateway exit code {code}; log {tmp / 'gateway.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
