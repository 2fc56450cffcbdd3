"""End to end with the real engine (llama-cpp-python's server) and tiny real models the tests write: download
from the stand-in Hub, verify, lock, activate, chat through the OpenAI API (plain and streamed), switch, check,
stop; the same for a model in the Ollama store served from its blob; and the engine's failures. The refusals
that come before anything starts (a missing shard, a held port) need no engine and are not marked ``engine``.

Generations are short and greedy (temperature 0): deterministic, and fast on any CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time

import pytest
import requests
import tinygguf
from llamaharness import helper, port_free

from imageworks_models.testing import make_registry

MESSAGES = [{"role": "user", "content": "say hello"}]


def chat(endpoint: str, model: str, *, max_tokens: int = 6) -> str:
    """A plain chat completion's text (the test fails on anything but a 200 with one choice)."""
    response = requests.post(f"{endpoint}/chat/completions", timeout=60,
                             json={"model": model, "messages": MESSAGES, "temperature": 0, "max_tokens": max_tokens})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == model and len(body["choices"]) == 1, body
    assert body["usage"]["completion_tokens"] <= max_tokens
    return body["choices"][0]["message"]["content"]


def chat_streamed(endpoint: str, model: str, *, max_tokens: int = 6) -> tuple[str, bool]:
    """A streamed chat completion: ``(the deltas' text joined, whether "data: [DONE]" ended the stream)``."""
    text, done = [], False
    with requests.post(f"{endpoint}/chat/completions", timeout=60, stream=True,
                       json={"model": model, "messages": MESSAGES, "temperature": 0, "max_tokens": max_tokens,
                             "stream": True}) as response:
        assert response.status_code == 200, response.text
        for line in response.iter_lines(decode_unicode=True):
            if not line or not line.startswith("data: "):
                continue
            data = line[len("data: "):]
            if data == "[DONE]":
                done = True
                continue
            assert not done, "a chunk came after [DONE]"
            chunk = json.loads(data)
            assert chunk["object"] == "chat.completion.chunk" and chunk["model"] == model
            text.append(chunk["choices"][0]["delta"].get("content") or "")
    return "".join(text), done


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def alive(pid: int) -> bool:
    try:
        raw = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return raw[raw.rfind(")") + 2:].split()[0] not in ("Z", "X")


@pytest.fixture
def hub(llama, monkeypatch):
    """The stand-in Hub with two tiny GGUF repos (``org/tiny-a-GGUF``, ``org/tiny-b-GGUF``)."""
    hubserver = helper("hubserver")
    src = llama.tmp / "hub-src"
    src.mkdir()
    with hubserver.StandInHub() as server:
        for name, seed in (("tiny-a", 1), ("tiny-b", 2)):
            model = tinygguf.write_tiny_llama(src / f"{name}-F32.gguf", seed=seed, name=name)
            server.add_repo(f"org/{name}-GGUF", {model.name: model, "README.md": b"# tiny\n"})
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.setenv("HF_HOME", str(llama.tmp / "hf-home"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield server


@pytest.mark.engine
def test_hub_gguf_download_verify_lock_activate_chat_switch_stop(llama, hub):
    names = []
    for repo in ("org/tiny-a-GGUF", "org/tiny-b-GGUF"):
        got = llama.ok("download", repo, "--non-interactive", "--backend", "llamacpp", prog="imageworks-download")
        names.append(got["name"])
    a, b = names
    assert [(r["name"], r["status"]) for r in llama.ok("verify", a)["results"]] == [(a, "ok")]
    assert llama.cli("lock", a).returncode == 0

    first = llama.ok("activate-model", a)

    assert first["backend"] == "llamacpp" and first["endpoint"] == llama.endpoint and first["status"] == "ready"
    assert first["pid"] in llama.processes()  # what the no-process-left checks look for
    assert "llama_cpp.server" in first["command"] and str(llama.weights) in first["command"][first["command"].index(
        "--model") + 1]
    plain = chat(llama.endpoint, first["served_model_id"])
    streamed, done = chat_streamed(llama.endpoint, first["served_model_id"])
    assert plain.strip() and done
    assert streamed == plain  # greedy decoding: the same tokens either way

    second = llama.ok("activate-model", b)

    assert second["stopped"]["name"] == a and second["stopped"]["signal"] == "TERM"
    assert not alive(first["pid"]) and alive(second["pid"])
    other = chat(llama.endpoint, second["served_model_id"])
    assert other.strip() and other != plain  # another model (other random weights) answers
    current = llama.ok("current-model")
    assert (current["name"], current["status"], current["backend"]) == (b, "ready", "llamacpp")

    stopped = llama.ok("activate-model", "--stop")

    assert stopped["name"] == b and stopped["signal"] == "TERM"
    assert llama.state() is None and not llama.processes() and not alive(second["pid"])
    assert port_free(llama.port)


@pytest.fixture
def ollama_store(llama, monkeypatch):
    """An Ollama store holding ``tiny:1b`` and ``small:1b``, two tiny models pulled as Ollama lays them out
    (blobs named by digest); returns the store and the two model blobs."""
    ollamastore = helper("ollamastore")
    store = llama.tmp / "ollama-models"
    (store / "manifests").mkdir(parents=True)
    blobs = []
    for name, seed in (("tiny", 3), ("small", 4)):
        digest = ollamastore.put_blob_file(store, tinygguf.write_tiny_llama(llama.tmp / f"{name}.gguf", seed=seed))
        ollamastore.write_model(store, name, "1b", model_blob=digest, file_type="F32", model_type="0.1M")
        blobs.append(ollamastore.blob_path(store, digest))
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")  # no Ollama server: llama.cpp serves the blobs itself
    return store, blobs


@pytest.mark.engine
def test_ollama_blobs_served_by_llamacpp_in_place(llama, ollama_store):
    store, (blob, other_blob) = ollama_store
    before = {p.name: (p.stat().st_mtime_ns, sha256(p)) for p in (store / "blobs").iterdir()}
    rows = llama.ok("import-ollama", prog="imageworks-download")["rows"]
    names = {r["served_model_id"]: r["name"] for r in rows if r["action"] == "add"}
    name, other = names["tiny:1b"], names["small:1b"]
    assert [(r["name"], r["status"]) for r in llama.ok("verify", name)["results"]] == [(name, "ok")]
    assert llama.cli("lock", name).returncode == 0

    plan = llama.ok("activate-model", name, "--backend", "llamacpp", "--dry-run")
    active = llama.ok("activate-model", name, "--backend", "llamacpp")

    assert plan["command"] == active["command"]
    assert active["backend"] == "llamacpp" and active["served_model_id"] == "tiny:1b"
    assert active["command"][active["command"].index("--model") + 1] == str(blob)  # the blob itself, not a copy
    text, done = chat_streamed(llama.endpoint, "tiny:1b")
    assert text.strip() and done and chat(llama.endpoint, "tiny:1b") == text
    assert not llama.weights.exists() or not any(llama.weights.rglob("*"))

    switched = llama.ok("activate-model", other, "--backend", "llamacpp")

    assert switched["stopped"]["name"] == name and not alive(active["pid"])
    assert switched["command"][switched["command"].index("--model") + 1] == str(other_blob)
    assert chat(llama.endpoint, "small:1b").strip()
    current = llama.ok("current-model")
    assert (current["name"], current["backend"], current["status"]) == (other, "llamacpp", "ready")

    stopped = llama.ok("activate-model", other, "--stop")  # by name: the orchestrator serves it, not Ollama

    assert stopped["stopped"] is True and stopped["backend"] == "llamacpp"
    assert llama.state() is None and not llama.processes() and port_free(llama.port)
    assert {p.name: (p.stat().st_mtime_ns, sha256(p)) for p in (store / "blobs").iterdir()} == before


# --- what the engine refuses, and what is refused before it starts ------------------------------------------


def curated(llama, *entries):
    make_registry(llama.registry, *entries)


def truncated(path):
    """A tiny model cut short inside its tensor data (an interrupted copy)."""
    tinygguf.write_tiny_llama(path)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size - 4096)
    return path


@pytest.mark.engine
@pytest.mark.parametrize("write, says", [
    (tinygguf.write_bad_arch, "unknown model architecture: 'nosucharch'"),
    (truncated, "data is not within the file bounds"),
], ids=["unknown-architecture", "truncated-tensor-data"])
def test_a_model_the_engine_refuses_fails_with_its_log_and_leaves_nothing(llama, write, says):
    bad = write(llama.tmp / "bad.gguf")
    curated(llama, {"name": "bad", "backend": "llamacpp", "backend_config": {"model_path": str(bad)}})

    proc = llama.cli("activate-model", "bad")

    assert proc.returncode == 1
    assert "error: bad: the server exited with code" in proc.stderr
    assert says in proc.stderr  # the engine's own words, from its log
    assert str(llama.registry / "logs" / "bad.log") in proc.stderr
    assert llama.state() is None and not llama.processes() and port_free(llama.port)


def test_a_split_gguf_with_a_missing_shard_is_refused_before_launch(llama):
    folder = llama.tmp / "split"
    folder.mkdir()
    for shard in tinygguf.split_names("tiny", 3):
        tinygguf.write_tiny_llama(folder / shard)
    (folder / "tiny-00002-of-00003.gguf").unlink()
    curated(llama, {"name": "split", "backend": "llamacpp", "backend_config": {"model_path": str(folder)}})

    proc = llama.cli("activate-model", "split")

    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == (f"error: split: the split GGUF tiny-00001-of-00003.gguf is missing 1 of its "
                                           f"3 shards (tiny-00002-of-00003.gguf) in {folder}")
    assert not (llama.registry / "logs" / "split.log").exists()  # nothing was started
    assert llama.state() is None and not llama.processes()


def test_a_port_held_by_another_program_is_refused_and_left_alone(llama):
    model = tinygguf.write_tiny_llama(llama.tmp / "m.gguf")
    curated(llama, {"name": "m", "backend": "llamacpp", "backend_config": {"model_path": str(model)}})
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", llama.port))
        holder.listen()

        proc = llama.cli("activate-model", "m")

        assert proc.returncode == 1 and f"port {llama.port} is in use by pid {os.getpid()}" in proc.stderr
        assert llama.state() is None and not llama.processes()


def established(port: int) -> bool:
    """Whether a TCP connection to ``port`` on this machine is established (``/proc/net/tcp``, state 01)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        if any(f[3] == "01" and int(f[1].rsplit(":", 1)[1], 16) == port for f in (line.split() for line in lines)):
            return True
    return False


@pytest.mark.engine
def test_stop_kills_a_server_that_keeps_generating_after_sigterm(llama, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_LLAMACPP_STOP_GRACE", "2")  # recorded with the server when it starts
    model = tinygguf.write_tiny_llama(llama.tmp / "long.gguf")
    curated(llama, {"name": "long", "backend": "llamacpp", "served_model_id": "long",
                    "backend_config": {"model_path": str(model), "ctx_size": 8192}})
    active = llama.ok("activate-model", "long")
    assert chat(llama.endpoint, "long")  # warm: the next request generates at once

    def generate():  # thousands of tokens (many seconds); llama_cpp.server finishes them before it exits on SIGTERM
        try:
            requests.post(f"{llama.endpoint}/chat/completions", timeout=120,
                          json={"model": "long", "messages": MESSAGES, "temperature": 0, "max_tokens": 8000})
        except requests.RequestException:
            pass  # the server was killed mid-generation

    thread = threading.Thread(target=generate, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not established(llama.port) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)  # the request is read and generating

    began = time.monotonic()
    proc = llama.cli("activate-model", "--stop")
    took = time.monotonic() - began

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"stopped long (llamacpp) (pid {active['pid']}, SIGKILL)",
                                        "   it did not exit within 2s of SIGTERM, so it was killed"]
    assert took < 2 + 4, took  # the grace (IMAGEWORKS_LLAMACPP_STOP_GRACE=2) and a CLI start, not the generation
    assert not llama.processes() and not alive(active["pid"]) and port_free(llama.port)
    thread.join(10)
