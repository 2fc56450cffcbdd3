"""The gateway end to end with the real engine (llama-cpp-python's server) on two tiny real models: both by name
through one port with the OpenAI client, loaded on demand, unloaded after a short idle TTL, an eviction that
waits for the stream in flight (which completes intact), the engine killed mid-stream, a client that
disconnects, a non-loopback bind without a key, and /metrics values that move.

Generations are greedy (temperature 0) on tiny models: deterministic and fast on any CPU.
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
import tinygguf
from imageworks_models import testing

pytestmark = pytest.mark.engine
openai = pytest.importorskip("openai", reason="the OpenAI client (dev dependency) is missing")
pytest.importorskip("uvicorn", reason="the gateway extra (starlette, uvicorn, httpx, prometheus_client) is missing")
MESSAGES = [{"role": "user", "content": "say hello"}]


def tiny(llama, *names: str, **gateway_options):
    entries = []
    for seed, name in enumerate(names):
        path = tinygguf.write_tiny_llama(llama.tmp / f"{name}.gguf", seed=seed)
        entries.append({"name": name, "backend": "llamacpp", "served_model_id": name,
                        "backend_config": {"model_path": str(path), "ctx_size": 4096},
                        **({"gateway": gateway_options} if gateway_options else {})})
    testing.make_registry(llama.registry, *entries)


@pytest.fixture
def gateway(llama):
    started = []

    def start(*args: str, host: str = "127.0.0.1", **env: str) -> testing.GatewayProcess:
        proc = testing.GatewayProcess(env=env, args=args, host=host, log_path=llama.tmp / f"gw{len(started)}.log")
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        assert proc.stop() in (0, None)
    assert not llama.processes(), "the gateway left engine processes running"


def status(gw) -> dict:
    return requests.get(f"http://127.0.0.1:{gw.port}/gateway/status", timeout=5).json()


def resident(gw) -> dict[str, dict]:
    return {m["name"]: m for m in status(gw)["models"] if m["status"] == "ready"}


def metric(gw, name: str, **labels) -> float:
    text = requests.get(f"http://127.0.0.1:{gw.port}/metrics", timeout=5).text
    want = sorted(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{"):
            head, value = line.rsplit(" ", 1)
            if sorted(head[len(name) + 1:-1].split(",")) == want:
                return float(value)
    return 0.0


def stream_lines(gw, model: str, *, max_tokens: int, on_first=None) -> list[str]:
    """A streamed chat through the gateway: its ``data:`` lines (``on_first`` runs after the first one)."""
    out = []
    with requests.post(f"{gw.url}/chat/completions", stream=True, timeout=120,
                       json={"model": model, "messages": MESSAGES, "temperature": 0, "max_tokens": max_tokens,
                             "stream": True}) as response:
        assert response.status_code == 200
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                out.append(line)
                if len(out) == 1 and on_first is not None:
                    on_first()
    return out


def test_two_tiny_models_by_name_through_one_port_loaded_on_demand(llama, gateway):
    tiny(llama, "tiny-a", "tiny-b")
    gw = gateway()
    client = openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0)
    assert {m.id: m.state for m in client.models.list().data} == {"tiny-a": "unloaded", "tiny-b": "unloaded"}
    assert not llama.processes()  # nothing starts before it is asked for
    a = client.chat.completions.create(model="tiny-a", messages=MESSAGES, temperature=0, max_tokens=6)
    b = client.chat.completions.create(model="tiny-b", messages=MESSAGES, temperature=0, max_tokens=6)
    assert a.choices[0].message.content and b.choices[0].message.content
    assert a.choices[0].message.content != b.choices[0].message.content  # two different models answered
    streamed = client.chat.completions.create(model="tiny-a", messages=MESSAGES, temperature=0, max_tokens=6,
                                              stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == a.choices[0].message.content
    assert set(resident(gw)) == {"tiny-a", "tiny-b"}
    assert {m.id: m.state for m in client.models.list().data} == {"tiny-a": "loaded", "tiny-b": "loaded"}
    # the same answer as the engine gives directly
    direct = requests.post(f"{resident(gw)['tiny-b']['endpoint']}/chat/completions", timeout=60,
                           json={"model": "tiny-b", "messages": MESSAGES, "temperature": 0, "max_tokens": 6}).json()
    assert direct["choices"][0]["message"]["content"] == b.choices[0].message.content
    assert metric(gw, "imageworks_gateway_load_seconds_count", model="tiny-a") == 1
    assert metric(gw, "imageworks_gateway_requests_total", model="tiny-a", route="chat/completions", code="200") == 2


def test_an_idle_model_is_unloaded_after_a_short_ttl(llama, gateway):
    tiny(llama, "tiny-a")
    gw = gateway(IMAGEWORKS_GATEWAY_IDLE_TTL="1")
    assert requests.post(f"{gw.url}/chat/completions", timeout=60, json={"model": "tiny-a", "messages": MESSAGES,
                                                                         "max_tokens": 3}).status_code == 200
    assert llama.processes()
    deadline = time.monotonic() + 10
    while (resident(gw) or llama.processes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not resident(gw) and not llama.processes()
    assert metric(gw, "imageworks_gateway_evictions_total", model="tiny-a", reason="idle") == 1


def test_eviction_waits_for_the_stream_in_flight_which_completes_intact(llama, gateway):
    tiny(llama, "tiny-a", "tiny-b")
    gw = gateway(IMAGEWORKS_GATEWAY_MEMORY_BUDGET="1")  # one model at a time
    reference = stream_lines(gw, "tiny-a", max_tokens=400)  # loads it; the whole stream, undisturbed
    out: dict[str, list[str]] = {}
    asked = threading.Event()
    b_done: list[float] = []

    def ask_b():
        asked.wait(30)
        r = requests.post(f"{gw.url}/chat/completions", timeout=120,
                          json={"model": "tiny-b", "messages": MESSAGES, "temperature": 0, "max_tokens": 3})
        b_done.append(time.monotonic())
        out["b"] = [str(r.status_code)]

    other = threading.Thread(target=ask_b)
    other.start()
    out["a"] = stream_lines(gw, "tiny-a", max_tokens=400, on_first=asked.set)
    a_done = time.monotonic()
    other.join(60)
    assert out["b"] == ["200"]
    assert out["a"] == [line for line in out["a"] if "error" not in line]
    strip = [json.loads(x[6:])["choices"][0] for x in out["a"] if x != "data: [DONE]"]
    ref = [json.loads(x[6:])["choices"][0] for x in reference if x != "data: [DONE]"]
    assert [c["delta"].get("content") for c in strip] == [c["delta"].get("content") for c in ref]  # intact
    assert out["a"][-1] == "data: [DONE]" and b_done[0] >= a_done - 0.5
    assert set(resident(gw)) == {"tiny-b"}
    assert metric(gw, "imageworks_gateway_evictions_total", model="tiny-a", reason="memory") == 1


def _engine_pid(llama, group: int) -> int:
    """The engine process (not its log launcher) of the server group ``group``."""
    for pid in llama.processes():
        if os.getpgid(pid) == group and pid != group:
            return pid
    raise AssertionError("no engine process in the group")


def test_the_engine_killed_mid_stream_gives_an_error_event_and_restarts(llama, gateway):
    tiny(llama, "tiny-a")
    gw = gateway()
    stream_lines(gw, "tiny-a", max_tokens=2)
    group = resident(gw)["tiny-a"]["pid"]
    lines = stream_lines(gw, "tiny-a", max_tokens=3000,
                         on_first=lambda: os.kill(_engine_pid(llama, group), signal.SIGKILL))
    error = json.loads(lines[-1][6:])["error"]
    assert "tiny-a" in error["message"] and "exited" in error["message"] and "gateway-tiny-a.log" in error["message"]
    assert not resident(gw)  # marked unloaded
    again = stream_lines(gw, "tiny-a", max_tokens=4)  # started again on the next request
    assert again[-1] == "data: [DONE]" and resident(gw)["tiny-a"]["pid"] != group


def _connections(port: int) -> int:
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        count += sum(1 for f in (r.split() for r in rows) if f[3] == "01" and int(f[2].rsplit(":", 1)[1], 16) == port)
    return count


def test_a_client_that_disconnects_closes_the_engine_request(llama, gateway):
    tiny(llama, "tiny-a")
    gw = gateway()
    stream_lines(gw, "tiny-a", max_tokens=2)
    port = resident(gw)["tiny-a"]["port"]
    response = requests.post(f"{gw.url}/chat/completions", stream=True, timeout=60,
                             json={"model": "tiny-a", "messages": MESSAGES, "max_tokens": 3000, "stream": True})
    lines = response.iter_lines(decode_unicode=True)
    assert next(line for line in lines if line.startswith("data: "))
    assert _connections(port) >= 1
    response.close()
    deadline = time.monotonic() + 10
    while (_connections(port) or resident(gw)["tiny-a"]["in_flight"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _connections(port) == 0 and resident(gw)["tiny-a"]["in_flight"] == 0
    assert stream_lines(gw, "tiny-a", max_tokens=3)[-1] == "data: [DONE]"  # and it serves on


def test_a_non_loopback_bind_needs_a_key_and_answers_401_without_it(llama, gateway):
    tiny(llama, "tiny-a")
    with pytest.raises(RuntimeError, match="without an API key"):
        testing.GatewayProcess(host="0.0.0.0").start()
    key = llama.tmp / "key"
    key.write_text("k-9f8e7d\n")
    gw = gateway("--api-key-file", str(key), host="0.0.0.0")
    assert requests.get(f"{gw.url}/models", timeout=5).status_code == 401
    client = openai.OpenAI(base_url=gw.url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="tiny-a", messages=MESSAGES, max_tokens=2)
    assert not llama.processes()  # refused before anything started
    good = openai.OpenAI(base_url=gw.url, api_key="k-9f8e7d", max_retries=0)
    assert good.chat.completions.create(model="tiny-a", messages=MESSAGES, max_tokens=2).choices


def test_metrics_move(llama, gateway):
    tiny(llama, "tiny-a")
    gw = gateway()
    labels = {"model": "tiny-a", "route": "chat/completions", "code": "200"}
    assert metric(gw, "imageworks_gateway_requests_total", **labels) == 0
    for n in (1, 2, 3):
        stream_lines(gw, "tiny-a", max_tokens=2)
        assert metric(gw, "imageworks_gateway_requests_total", **labels) == n
    assert metric(gw, "imageworks_gateway_time_to_first_byte_seconds_count", model="tiny-a") == 3
    assert metric(gw, "imageworks_gateway_load_seconds_sum", model="tiny-a") > 0
    assert metric(gw, "imageworks_gateway_in_flight", model="tiny-a") == 0
