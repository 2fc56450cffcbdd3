"""The orchestrator's per-activation choices, against the stand-in server: serving an entry with another
backend than its own (``activate-model --backend``), and the SIGTERM grace a backend records with its server."""

from __future__ import annotations

import json
import time

from orchestration import entry, standin_processes


def imported(orch):
    """An entry whose own backend is Ollama (as ``import-ollama`` records them); no Ollama server runs."""
    from imageworks_models import testing

    testing.make_registry(orch.registry, entry("imported", orch.weights, backend="ollama"))
    return "imported"


def test_backend_option_serves_an_entry_with_another_backend_and_stop_by_name_finds_it(orch):
    name = imported(orch)

    result = orch.activate(name, backend="vllm")

    assert result["backend"] == "vllm" and orch.state()["backend"] == "vllm"
    assert result["command"][result["command"].index("serve") + 1] == str(orch.weights)
    proc = orch.cli("activate-model", name, "--stop")  # the orchestrator's server, not an Ollama load
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"stopped {name} (vllm) (pid {result['pid']}, SIGTERM)"
    assert orch.state() is None and not standin_processes()


def test_backend_option_in_a_dry_run_and_refused_with_stop(orch):
    name = imported(orch)

    plan = json.loads(orch.cli("activate-model", name, "--backend", "vllm", "--dry-run", "--json").stdout)
    refused = orch.cli("activate-model", "--stop", "--backend", "vllm")

    assert plan["backend"] == "vllm" and plan["command"][2:4] == ["serve", str(orch.weights)]
    assert refused.returncode == 64 and "--backend applies to activation" in refused.stderr
    assert orch.state() is None


def test_the_grace_recorded_with_a_server_is_the_one_it_gets(orch, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_STOP_GRACE", "30")
    monkeypatch.setenv("STANDIN_IGNORE_SIGTERM", "1")
    active = orch.activate("qwen-a")
    state = orch.state()
    assert state["stop_grace"] is None  # vLLM asks for nothing: the setting applies
    state["stop_grace"] = 0.5  # what a backend's Launch(stop_grace=0.5) records
    orch.state_file.write_text(json.dumps(state))

    began = time.monotonic()
    proc = orch.cli("activate-model", "--stop")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"stopped qwen-a (vllm) (pid {active['pid']}, SIGKILL)",
                                        "   it did not exit within 0.5s of SIGTERM, so it was killed"]
    assert time.monotonic() - began < 10  # not the 30 s of IMAGEWORKS_STOP_GRACE
    assert not standin_processes()
