"""The gateway forwards Ollama entries to the Ollama server (the stand-in of ollamaserver.py), which loads
models itself, and keeps them loaded for the entry's idle_ttl (Ollama's OpenAI routes take no keep_alive)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from imageworks_models.testing import GatewayProcess, run_cli
from ollamastore import write_model

pytest.importorskip("uvicorn", reason="the gateway extra (starlette, uvicorn, httpx, prometheus_client) is missing")


def test_an_ollama_entry_is_forwarded_with_keep_alive_from_its_idle_ttl(ollama_server, store, tmp_path):
    write_model(store, "qwen3", "8b")
    assert run_cli("import-ollama", prog="imageworks-download").exit_code == 0
    gw = GatewayProcess(env={"IMAGEWORKS_GATEWAY_IDLE_TTL": "120"}, log_path=tmp_path / "gw.log").start()
    try:
        r = requests.post(f"{gw.url}/chat/completions", timeout=30,
                          json={"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi there"}]})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "hi there"
        deadline = time.monotonic() + 5
        while True:  # the keep_alive is set again just after the answer; wait until Ollama has acted on it
            answered = [path for method, path in ollama_server.answered if method == "POST"]
            if answered.count("/api/generate") >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        calls = [(path, body) for method, path, body in ollama_server.requests if method == "POST"]
        paths = [path for path, _ in calls]
        chat = paths.index("/v1/chat/completions")
        loads = [i for i, path in enumerate(paths) if path == "/api/generate"]
        assert loads and loads[0] < chat < loads[-1]  # loaded with our keep_alive, and set again after the request
        assert all(calls[i][1] == {"model": "qwen3:8b", "keep_alive": "120s"} for i in loads)
        expires = ollama_server.loaded["qwen3:8b"]
        assert expires < datetime.now(UTC) + timedelta(seconds=125)  # 120 s, not Ollama's default 5 minutes
        listed = {m["served_model_id"]: m for m in requests.get(f"{gw.url}/models", timeout=5).json()["data"]}
        assert listed["qwen3:8b"]["owned_by"] == "ollama" and listed["qwen3:8b"]["state"] == "loaded"
        assert json.loads(requests.get(f"http://127.0.0.1:{gw.port}/gateway/status", timeout=5).text)["models"] == []
    finally:
        assert gw.stop() == 0
