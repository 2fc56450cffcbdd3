"""An Ollama activation is the live model (issue 18, item 7): ``current-model`` shows it while the Ollama server
(the stand-in of ollamaserver.py) has it loaded, ``activate-model --stop`` unloads it with ``keep_alive: 0``,
and a model unloaded behind imageworks' back is reported as gone."""

from __future__ import annotations

import json

import ollama
import pytest

from imageworks_models.testing import run_cli
from ollamastore import write_model

pytestmark = pytest.mark.usefixtures("imageworks_isolated")
LOADER = "imageworks-loader"


def _entry(store) -> str:
    write_model(store, "qwen3", "8b")
    assert run_cli("import-ollama", prog="imageworks-download").exit_code == 0
    rows = json.loads(run_cli("list", "--json", "--include-non-installed").stdout)
    [name] = [r["name"] for r in rows if r["served_model_id"] == "qwen3:8b"]
    return name


def _current() -> dict:
    result = run_cli("current-model", "--json", prog=LOADER)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_current_model_shows_an_ollama_activation_and_stop_unloads_it(ollama_server, store):
    name = _entry(store)
    assert run_cli("activate-model", name, prog=LOADER).exit_code == 0

    live = _current()
    assert live["active"] is True and live["name"] == name and live["backend"] == "ollama"
    assert live["status"] == "ready" and live["served_model_id"] == "qwen3:8b"
    text = run_cli("current-model", prog=LOADER).stdout
    assert text.startswith(f"{name} (ollama): ready")
    listed = json.loads(run_cli("list", "--json", "--include-non-installed").stdout)
    assert [r["name"] for r in listed if r["active"]] == [name]

    stopped = run_cli("activate-model", "--stop", prog=LOADER)

    assert stopped.exit_code == 0, stopped.stderr
    assert stopped.stdout.strip() == f"unloaded {name} (qwen3:8b) from ollama"
    unloads = [b for m, p, b in ollama_server.requests if p == "/api/generate" and b.get("keep_alive") == 0]
    assert [b["model"] for b in unloads] == ["qwen3:8b"]
    with ollama.Client(host=ollama_server.url) as client:
        assert [m.model for m in client.ps().models] == []
    assert _current()["active"] is False


def test_a_model_unloaded_outside_imageworks_is_no_longer_live(ollama_server, store):
    name = _entry(store)
    assert run_cli("activate-model", name, prog=LOADER).exit_code == 0
    with ollama.Client(host=ollama_server.url) as client:
        client.generate(model="qwen3:8b", keep_alive=0)  # someone else unloads it

    info = _current()

    assert info["active"] is False and info["previous"]["name"] == name
    assert "no longer has it loaded" in info["previous"]["reason"]
    assert run_cli("activate-model", "--stop", prog=LOADER).stdout.strip() == "nothing was active"


def test_stopping_the_named_ollama_entry_forgets_it(ollama_server, store):
    name = _entry(store)
    assert run_cli("activate-model", name, prog=LOADER).exit_code == 0

    assert run_cli("activate-model", name, "--stop", prog=LOADER).exit_code == 0

    assert _current()["active"] is False
