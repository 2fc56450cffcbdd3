"""The gateway (``imageworks-models gateway``, a real process) against the stand-in server: routing by name,
alias and role, on-demand start, streaming pass-through, keep-alives while loading, residency and eviction,
idle unload, concurrency limits, faults (engine never ready, engine dying mid-stream, client disconnect),
SIGTERM, the API key, verify before serve, metrics, ``gateway status`` and ``current-model``.

The end-to-end tests with the real engine are in tests/gateway/test_gateway_engine.py.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
from imageworks_models import testing
from orchestration import entry, standin_processes, wait_until

pytest.importorskip("uvicorn", reason="the gateway extra (starlette, uvicorn, httpx, prometheus_client) is missing")
MESSAGES = [{"role": "user", "content": "one two three four five"}]


@pytest.fixture
def gateway(orch):
    """Start ``imageworks-models gateway`` with extra environment; stopped (SIGTERM) after the test."""
    started = []

    def start(*args: str, **env: str) -> testing.GatewayProcess:
        proc = testing.GatewayProcess(env={"IMAGEWORKS_GATEWAY_KEEPALIVE_INTERVAL": "0.2", **env}, args=args,
                                      log_path=orch.tmp / f"gateway-{len(started)}.log")
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


def chat(gw, model: str, *, stream: bool = False, timeout: float = 30, **extra):
    return requests.post(f"{gw.url}/chat/completions", timeout=timeout, stream=stream,
                         json={"model": model, "messages": MESSAGES, "stream": stream, **extra})


def events(response) -> list[str]:
    """The ``data:`` payloads and ``:`` comments of an SSE response, in order."""
    out = []
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith(("data: ", ":")):
            out.append(line)
    return out


def content(lines: list[str]) -> str:
    text = []
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            chunk = json.loads(line[6:])
            assert "error" not in chunk, chunk
            text.append(chunk["choices"][0]["delta"].get("content") or "")
    return "".join(text)


def status(gw) -> dict:
    return requests.get(f"http://127.0.0.1:{gw.port}/gateway/status", timeout=5).json()


def metric(gw, name: str, **labels) -> float:
    """One sample's value from /metrics (0 when it is not there yet)."""
    text = requests.get(f"http://127.0.0.1:{gw.port}/metrics", timeout=5).text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            head, value = line.rsplit(" ", 1)
            got = ",".join(sorted(head[len(name) + 1:-1].split(",")))
            if got == want:
                return float(value)
    return 0.0


def groups(pids) -> set[int]:
    out = set()
    for pid in pids:
        try:
            out.add(os.getpgid(pid))
        except ProcessLookupError:
            pass  # it just exited
    return out


def resident(gw) -> set[str]:
    return {m["name"] for m in status(gw)["models"] if m["status"] == "ready"}


def test_two_models_by_name_alias_and_role_through_one_port(orch, gateway):
    testing.make_registry(orch.registry, entry("qwen-a", orch.weights),
                          entry("qwen-b", orch.weights, aliases=["bee"], roles=["caption"]))
    gw = gateway()
    listed = {m["id"]: m["state"] for m in requests.get(f"{gw.url}/models", timeout=5).json()["data"]}
    assert listed == {"qwen-a": "unloaded", "qwen-b": "unloaded"}
    a = chat(gw, "qwen-a")
    assert a.status_code == 200 and a.json()["choices"][0]["message"]["content"] == MESSAGES[0]["content"]
    for ref in ("bee", "org/qwen-b", "role:caption"):
        r = chat(gw, ref)
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "org/qwen-b"
    assert resident(gw) == {"qwen-a", "qwen-b"}
    ports = {m["port"] for m in status(gw)["models"]}
    assert len(ports) == 2 and orch.port not in ports  # ports of their own, not the activate-model port
    listed = {m["id"]: m["state"] for m in requests.get(f"{gw.url}/models", timeout=5).json()["data"]}
    assert listed == {"qwen-a": "loaded", "qwen-b": "loaded"}
    emb = requests.post(f"{gw.url}/embeddings", json={"model": "bee", "input": "abc"}, timeout=10)
    assert emb.status_code == 200 and len(emb.json()["data"][0]["embedding"]) == 8
    comp = requests.post(f"{gw.url}/completions", json={"model": "qwen-a", "prompt": "x y"}, timeout=10)
    assert comp.json()["choices"][0]["text"] == "x y"
    missing = chat(gw, "nope")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]
    assert orch.state() is None  # activate-model's record is untouched


def test_streams_pass_through_as_they_come_and_loading_sends_keepalives(orch, gateway):
    gw = gateway(STANDIN_START_DELAY="1.0", STANDIN_TOKEN_DELAY="0.3")
    began = time.monotonic()
    seen = []
    with chat(gw, "qwen-a", stream=True) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines(decode_unicode=True):
            if line:
                seen.append((time.monotonic() - began, line))
    lines = [line for _, line in seen]
    assert lines[0].startswith(": loading qwen-a")  # comments while the model loads
    data = [(t, line) for t, line in seen if line.startswith("data: ")]
    assert content([line for _, line in data]) == MESSAGES[0]["content"] and data[-1][1] == "data: [DONE]"
    # chunk by chunk: the first word arrived long before the last (5 words, 0.3 s apart), not all at the end
    assert data[-1][0] - data[0][0] > 1.0


def test_an_engine_never_ready_is_a_503_naming_model_and_log_and_leaves_nothing(orch, gateway):
    gw = gateway(STANDIN_NEVER_READY="1", IMAGEWORKS_ACTIVATION_TIMEOUT="1.5")
    r = chat(gw, "qwen-a")
    assert r.status_code == 503
    message = r.json()["error"]["message"]
    assert "qwen-a" in message and "gateway-qwen-a.log" in message
    assert wait_until(lambda: not standin_processes(), 5)
    assert status(gw)["models"] == []
    assert metric(gw, "imageworks_gateway_errors_total", model="qwen-a", kind="server_error") == 1


def test_an_engine_that_dies_mid_stream_gives_an_error_event_and_restarts(orch, gateway):
    gw = gateway(STANDIN_DIE_MIDSTREAM="2", STANDIN_DIE_ONCE_FILE=str(orch.tmp / "died"),
                 STANDIN_TOKEN_DELAY="0.05")
    chat(gw, "qwen-a")  # loaded first: the stream below goes straight to the engine
    first_pid = status(gw)["models"][0]["pid"]
    with chat(gw, "qwen-a", stream=True) as response:
        lines = events(response)
    error = json.loads(lines[-1][6:])["error"]
    assert "qwen-a" in error["message"] and "exited" in error["message"]
    assert len([line for line in lines if '"delta"' in line]) == 2
    assert wait_until(lambda: status(gw)["models"] == [], 5)  # marked unloaded
    assert metric(gw, "imageworks_gateway_evictions_total", model="qwen-a", reason="exited") == 1
    with chat(gw, "qwen-a", stream=True) as response:  # started again, streams whole
        assert content(events(response)) == MESSAGES[0]["content"]
    assert status(gw)["models"][0]["pid"] != first_pid


def _engine_connections(port: int) -> int:
    """Established TCP connections to ``port`` on this machine (/proc/net/tcp)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def test_a_client_that_disconnects_cancels_the_upstream_request(orch, gateway):
    gw = gateway(STANDIN_TOKEN_DELAY="0.1")
    chat(gw, "qwen-a")
    port = status(gw)["models"][0]["port"]
    response = chat(gw, "qwen-a", stream=True, max_tokens=400)
    lines = response.iter_lines(decode_unicode=True)
    assert next(line for line in lines if line.startswith("data: "))
    assert status(gw)["models"][0]["in_flight"] == 1 and _engine_connections(port) >= 1
    response.close()  # the client goes away, 398 words early
    assert wait_until(lambda: status(gw)["models"][0]["in_flight"] == 0, 5)
    assert wait_until(lambda: _engine_connections(port) == 0, 5), "the upstream request was not closed"


def test_sigterm_stops_every_model_the_gateway_started(orch, gateway):
    testing.make_registry(orch.registry, entry("qwen-a", orch.weights), entry("qwen-b", orch.weights))
    gw = gateway(STANDIN_FORK_GRANDCHILD="1")
    assert chat(gw, "qwen-a").status_code == 200 and chat(gw, "qwen-b").status_code == 200
    assert len(standin_processes()) >= 4  # two servers, each with a worker
    assert orch.cli("current-model", "--json", prog="imageworks-models").returncode == 0
    shown = json.loads(orch.cli("current-model", "--json", prog="imageworks-models").stdout)["gateway"]
    assert {m["name"] for m in shown} == {"qwen-a", "qwen-b"}
    assert gw.stop() == 0
    assert not standin_processes()  # 0 orphans, workers included
    assert not (orch.registry / "_staging" / "gateway.json").exists()


def test_a_gateway_killed_hard_leaves_servers_its_successor_stops(orch, gateway):
    gw = gateway()
    chat(gw, "qwen-a")
    gw.proc.send_signal(signal.SIGKILL)
    gw.proc.wait(5)
    assert standin_processes()  # left behind...
    gateway()
    assert wait_until(lambda: not standin_processes(), 10)  # ...and stopped by the next gateway


def test_non_loopback_needs_a_key_and_requests_without_it_get_401(orch, gateway):
    with pytest.raises(RuntimeError, match="without an API key"):
        testing.GatewayProcess(host="0.0.0.0").start()
    key_file = orch.tmp / "gateway.key"
    key_file.write_text("s3cret-key-123\n")
    gw = testing.GatewayProcess(host="0.0.0.0", args=("--api-key-file", str(key_file)),
                                log_path=orch.tmp / "gw-key.log").start()
    try:
        assert requests.get(f"{gw.url}/models", timeout=5).status_code == 401
        assert chat(gw, "qwen-a").status_code == 401
        assert requests.get(f"http://127.0.0.1:{gw.port}/metrics", timeout=5).status_code == 401
        bad = requests.get(f"{gw.url}/models", headers={"Authorization": "Bearer nope"}, timeout=5)
        assert bad.status_code == 401 and bad.json()["error"]["type"] == "invalid_api_key"
        ok = requests.post(f"{gw.url}/chat/completions", headers={"Authorization": "Bearer s3cret-key-123"},
                           json={"model": "qwen-a", "messages": MESSAGES}, timeout=30)
        assert ok.status_code == 200
    finally:
        assert gw.stop() == 0
    logs = "".join(p.read_text(errors="replace") for p in orch.tmp.rglob("*.log"))
    assert "s3cret" not in logs


def test_an_idle_model_is_unloaded_after_its_ttl(orch, gateway):
    testing.make_registry(orch.registry, entry("qwen-a", orch.weights),
                          entry("qwen-b", orch.weights, gateway={"idle_ttl": 0, "pinned": True}))
    gw = gateway(IMAGEWORKS_GATEWAY_IDLE_TTL="1")
    chat(gw, "qwen-a")
    chat(gw, "qwen-b")
    assert resident(gw) == {"qwen-a", "qwen-b"}
    assert wait_until(lambda: resident(gw) == {"qwen-b"}, 10)  # qwen-a idle 1 s (~1.1 s here); qwen-b keeps (ttl 0)
    assert metric(gw, "imageworks_gateway_evictions_total", model="qwen-a", reason="idle") == 1
    (left,) = status(gw)["models"]
    # only qwen-b's server group runs (qwen-a's is stopped just after it leaves the list)
    assert wait_until(lambda: groups(standin_processes()) == {left["pid"]}, 5)


def test_eviction_waits_for_the_stream_in_flight_which_completes_intact(orch, gateway):
    testing.make_registry(orch.registry, entry("qwen-a", orch.weights), entry("qwen-b", orch.weights))
    gw = gateway(IMAGEWORKS_GATEWAY_MEMORY_BUDGET="1", STANDIN_TOKEN_DELAY="0.1")  # room for one at a time
    chat(gw, "qwen-a")
    out = {}

    def stream_a():
        with chat(gw, "qwen-a", stream=True, max_tokens=20) as response:
            out["a"] = events(response)

    reader = threading.Thread(target=stream_a)
    reader.start()
    assert wait_until(lambda: status(gw)["models"][0]["in_flight"] == 1, 5)
    began = time.monotonic()
    b = chat(gw, "qwen-b")  # needs qwen-a's room: waits for its stream
    waited = time.monotonic() - began
    reader.join(10)
    assert b.status_code == 200, b.text
    assert waited > 1.0  # the 20-word stream (2 s) had to end first
    words = MESSAGES[0]["content"].split()
    assert content(out["a"]).split() == (words * 4)[:20] and out["a"][-1] == "data: [DONE]"
    assert resident(gw) == {"qwen-b"}
    assert metric(gw, "imageworks_gateway_evictions_total", model="qwen-a", reason="memory") == 1


def test_idle_models_are_evicted_least_recently_used_first(orch, gateway):
    testing.make_registry(orch.registry, *(entry(n, orch.weights) for n in ("m1", "m2", "m3")))
    gw = gateway()
    chat(gw, "m1")
    one = wait_until(lambda: status(gw)["models"][0]["memory_bytes"], 5)  # measured once it is ready
    gw.stop()
    gw = gateway(IMAGEWORKS_GATEWAY_MEMORY_BUDGET=str(int(2.5 * one)))  # room for two
    chat(gw, "m1")
    time.sleep(0.3)
    chat(gw, "m2")
    assert resident(gw) == {"m1", "m2"}
    chat(gw, "m3")
    assert "m1" not in resident(gw) and "m3" in resident(gw)


def test_max_concurrency_queues_then_answers_429(orch, gateway):
    testing.make_registry(orch.registry, entry("qwen-a", orch.weights, gateway={"max_concurrency": 1}))
    gw = gateway(IMAGEWORKS_GATEWAY_MAX_QUEUE="1", STANDIN_TOKEN_DELAY="0.1")
    chat(gw, "qwen-a")
    results = {}

    def call(key, **extra):
        results[key] = chat(gw, "qwen-a", **extra)

    first = threading.Thread(target=call, args=("first",), kwargs={"max_tokens": 15, "stream": True})
    first.start()
    assert wait_until(lambda: status(gw)["models"][0]["in_flight"] == 1, 5)
    second = threading.Thread(target=call, args=("second",))
    second.start()
    assert wait_until(lambda: status(gw)["models"][0]["queued"] == 1, 5)
    assert metric(gw, "imageworks_gateway_queued", model="qwen-a") == 1
    third = chat(gw, "qwen-a")
    assert third.status_code == 429 and "max_concurrency" in third.json()["error"]["message"]
    first.join(10)
    second.join(10)
    assert results["second"].status_code == 200


def test_drifted_files_are_refused_naming_them(orch, gateway):
    (orch.weights / "model.safetensors").write_bytes(b"x" * 100)
    recorded = orch.cli("verify", "qwen-a")
    assert recorded.returncode == 0 and "recorded" in recorded.stdout, recorded.stdout + recorded.stderr
    (orch.weights / "model.safetensors").write_bytes(b"y" * 100)
    gw = gateway()
    r = chat(gw, "qwen-a")
    assert r.status_code == 409, r.text
    assert "model.safetensors" in r.json()["error"]["message"]
    assert not standin_processes()  # nothing was started
    gw.stop()
    assert chat(gateway(IMAGEWORKS_GATEWAY_VERIFY="off"), "qwen-a").status_code == 200


def test_unload_route_stops_a_model(orch, gateway):
    gw = gateway()
    chat(gw, "qwen-a")
    r = requests.post(f"http://127.0.0.1:{gw.port}/gateway/unload", json={"model": "org/qwen-a"}, timeout=10)
    assert r.json() == {"model": "qwen-a", "unloaded": True}
    assert status(gw)["models"] == [] and wait_until(lambda: not standin_processes(), 5)
    assert metric(gw, "imageworks_gateway_evictions_total", model="qwen-a", reason="request") == 1


def test_metrics_move(orch, gateway):
    gw = gateway()
    before = metric(gw, "imageworks_gateway_requests_total", model="qwen-a", route="chat/completions", code="200")
    for _ in range(3):
        chat(gw, "qwen-a")
    with chat(gw, "qwen-a", stream=True) as response:
        events(response)
    assert metric(gw, "imageworks_gateway_requests_total", model="qwen-a", route="chat/completions",
                  code="200") == before + 4
    assert metric(gw, "imageworks_gateway_load_seconds_count", model="qwen-a") == 1
    assert metric(gw, "imageworks_gateway_time_to_first_byte_seconds_count", model="qwen-a") == 4
    assert metric(gw, "imageworks_gateway_in_flight", model="qwen-a") == 0


def test_gateway_status_command(orch, gateway):
    assert "no gateway is running" in orch.cli("gateway", "status", prog="imageworks-models").stdout
    gw = gateway()
    chat(gw, "qwen-a")
    assert wait_until(lambda: status(gw)["models"][0]["memory_bytes"], 5)
    shown = json.loads(orch.cli("gateway", "status", "--json", prog="imageworks-models").stdout)
    assert shown["running"] and shown["url"] == gw.url and shown["source"] == "gateway"
    (model,) = shown["models"]
    assert model["name"] == "qwen-a" and model["in_flight"] == 0 and model["memory_bytes"] > 0
    text = orch.cli("gateway", "status", prog="imageworks-models").stdout
    assert "qwen-a" in text and "IN FLIGHT" in text
    assert os.environ.get("IMAGEWORKS_REGISTRY_DIR") == str(orch.registry)


def test_gateway_status_asks_with_the_key_file_of_the_settings(orch, gateway):
    """``gateway status`` (and the GUI's card: ``live.gateway.status_for``) sends the key of
    IMAGEWORKS_GATEWAY_API_KEY_FILE; without it a keyed gateway answers 401 and the state file is read."""
    key_file = orch.tmp / "gateway.key"
    key_file.write_text("s3cret-key-456\n")
    gw = gateway("--api-key-file", str(key_file))
    ok = requests.post(f"{gw.url}/chat/completions", headers={"Authorization": "Bearer s3cret-key-456"},
                       json={"model": "qwen-a", "messages": MESSAGES}, timeout=30)
    assert ok.status_code == 200

    keyed = orch.cli("gateway", "status", "--json", prog="imageworks-models",
                     env={"IMAGEWORKS_GATEWAY_API_KEY_FILE": str(key_file)})
    unkeyed = orch.cli("gateway", "status", "--json", prog="imageworks-models")

    assert json.loads(keyed.stdout)["source"] == "gateway", keyed.stderr
    assert json.loads(unkeyed.stdout)["source"] == "state file"
    assert [m["name"] for m in json.loads(unkeyed.stdout)["models"]] == ["qwen-a"]
    assert "s3cret" not in keyed.stdout + keyed.stderr


def test_preload_starts_with_the_gateway_and_pinned_is_never_evicted(orch, gateway):
    testing.make_registry(orch.registry, entry("qwen-a", orch.weights, gateway={"preload": True, "pinned": True}),
                          entry("qwen-b", orch.weights))
    gw = gateway(IMAGEWORKS_GATEWAY_MEMORY_BUDGET="1", IMAGEWORKS_GATEWAY_IDLE_TTL="0.5")
    assert wait_until(lambda: resident(gw) == {"qwen-a"}, 10)  # before any request
    r = chat(gw, "qwen-b")  # no room beside the pinned model, which stays
    assert r.status_code == 503 and "pinned" in r.json()["error"]["message"]
    time.sleep(1.0)
    assert resident(gw) == {"qwen-a"}  # pinned: no idle unload either


def test_full_verify_before_serve_passes_unchanged_files(orch, gateway):
    (orch.weights / "model.safetensors").write_bytes(b"x" * 100)
    assert orch.cli("verify", "qwen-a").returncode == 0
    gw = gateway(IMAGEWORKS_GATEWAY_VERIFY="full")
    assert chat(gw, "qwen-a").status_code == 200
    (orch.weights / "model.safetensors").unlink()
    requests.post(f"http://127.0.0.1:{gw.port}/gateway/unload", json={"model": "qwen-a"}, timeout=10)
    gone = chat(gw, "qwen-a")
    assert gone.status_code == 409 and "model.safetensors" in gone.json()["error"]["message"]


def test_sigterm_while_a_model_loads_leaves_no_orphan(orch, gateway):
    gw = gateway(STANDIN_START_DELAY="30")
    waiting = threading.Thread(target=lambda: chat(gw, "qwen-a", timeout=60), daemon=True)
    waiting.start()
    state = orch.registry / "_staging" / "gateway.json"
    assert wait_until(lambda: state.exists() and json.loads(state.read_text())["models"], 10)  # spawned, loading
    assert standin_processes()
    assert gw.stop() == 0
    assert not standin_processes() and not state.exists()


def test_models_lists_only_what_it_can_serve(orch, gateway):
    testing.make_registry(orch.registry, entry("qwen-a", orch.weights),
                          entry("elsewhere", orch.tmp / "not-downloaded"),
                          entry("old", orch.weights, flags={"deprecated": True}),
                          entry("remote", orch.weights, backend="lmdeploy",
                                backend_config={"base_url": "http://10.0.0.9:23333"}))
    gw = gateway()
    assert [m["id"] for m in requests.get(f"{gw.url}/models", timeout=5).json()["data"]] == ["qwen-a", "qwen-b"]
    r = chat(gw, "elsewhere")
    assert r.status_code >= 400 and "elsewhere" in r.json()["error"]["message"]
    assert not standin_processes()
