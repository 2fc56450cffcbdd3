"""A server imageworks has no record of holds the serving port (the runbook's advice, "remove
_staging/active_vllm.json", leaves one behind): it is named with its pid and command line and how to stop it;
``activate-model --takeover`` stops it only if it is the kind of server the backend launches (issue 18, item 7).
Real processes: the stand-in vLLM server (standin_server.py) and a foreign HTTP server."""

from __future__ import annotations

import json

import pytest

from imageworks_models.testing import run_cli
from orchestration import standin_processes, wait_until
from test_activation import _answers, _foreign_server


def _orphan_a_server(orch) -> int:
    """Activate qwen-a, then delete the state file as the runbook says: its server runs on, untracked.
    Returns the pid holding the port (the server under the log-bounding launcher the record named)."""
    from imageworks_models.live.processes import port_owners

    leader = orch.activate("qwen-a")["pid"]
    orch.seen.add(leader)
    orch.state_file.unlink()
    [pid] = port_owners(orch.port).foreign_pids
    assert _answers(orch.port) and pid in standin_processes()
    return pid


def test_an_untracked_server_is_named_with_its_command_and_left_alone(orch):
    pid = _orphan_a_server(orch)
    try:
        result = run_cli("activate-model", "qwen-b", prog="imageworks-loader")

        assert result.exit_code == 1
        error = [line for line in result.stderr.splitlines() if line.startswith("error:")][0]
        assert f"port {orch.port} is in use by pid {pid} (" in error and "standin_server.py serve" in error
        assert "which imageworks did not start (no record in active_vllm.json)" in error
        assert f"hint: stop it with `kill {pid}`, or run again with --takeover" in result.stderr
        assert pid in standin_processes() and orch.state() is None

        current = run_cli("current-model", "--json", prog="imageworks-loader")
        data = json.loads(current.stdout)
        assert data["active"] is False and [h["pid"] for h in data["untracked"]] == [pid]
        text = run_cli("current-model", prog="imageworks-loader")
        assert f"held by pid {pid}" in text.stderr and "--takeover" in text.stderr
    finally:
        orch.seen.add(pid)
        from imageworks_models.live.processes import terminate

        terminate(pid, grace=2)


def test_takeover_stops_an_untracked_server_of_ours_and_starts_the_new_one(orch):
    old = _orphan_a_server(orch)
    orch.seen.add(old)

    plan = run_cli("activate-model", "qwen-b", "--dry-run", prog="imageworks-loader")
    assert "--takeover would stop it" in plan.stdout and old in standin_processes()

    result = run_cli("activate-model", "qwen-b", "--takeover", prog="imageworks-loader")

    assert result.exit_code == 0, result.stderr
    assert f"--takeover: stopping the untracked server pid {old}" in result.stderr
    assert wait_until(lambda: old not in standin_processes(), 5)
    state = orch.state()
    assert state["name"] == "qwen-b" and state["pid"] != old
    orch.seen.add(state["pid"])


def test_takeover_never_stops_a_foreign_program(orch):
    foreign = _foreign_server(orch.port, "org/qwen-a")
    try:
        result = run_cli("activate-model", "qwen-a", "--takeover", prog="imageworks-loader")

        assert result.exit_code == 1
        assert f"held by pid {foreign.pid}" in result.stderr and "--takeover left it alone" in result.stderr
        assert foreign.poll() is None and _answers(orch.port)
        assert orch.state() is None and not standin_processes()
    finally:
        foreign.terminate()
        foreign.wait()


@pytest.mark.parametrize("args", [("activate-model", "--stop", "--takeover"),
                                  ("activate-model", "qwen-a", "--dry-run", "--takeover")])
def test_takeover_with_stop_or_dry_run_is_a_usage_error(orch, args):
    result = run_cli(*args, prog="imageworks-loader")
    assert result.exit_code == 64 and "--takeover" in result.stderr
    assert orch.state() is None


def test_launched_like_compares_executable_and_subcommand():
    from types import SimpleNamespace

    from imageworks_models.serving.activation import launched_like, launcher_prefix

    launch = SimpleNamespace(argv=("/opt/vllm/bin/vllm", "serve", "/w/model", "--host", "127.0.0.1"))
    assert launcher_prefix(launch.argv) == ("/opt/vllm/bin/vllm", "serve")
    assert launched_like(["vllm", "serve", "/other/model", "--port", "1"], launch)
    assert not launched_like(["vllm", "bench", "/w/model"], launch)
    assert not launched_like(["python", "-m", "http.server"], launch)
    assert not launched_like(None, launch)
