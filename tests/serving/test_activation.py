"""The serving orchestrator (core ``activation.py`` with the vLLM backend) against the stand-in server: start,
switch, stop, and every failure of RELIABILITY P1-P15 and P17, through the library and through real CLI processes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest
import requests
from orchestration import standin_processes, wait_until

from imageworks_models import errors

LOADER = "imageworks-loader"


def alive(pid: int) -> bool:
    try:
        raw = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return raw[raw.rfind(")") + 2:].split()[0] not in ("Z", "X")


def models_listed(endpoint: str) -> list[str]:
    return [m["id"] for m in requests.get(f"{endpoint}/models", timeout=5).json()["data"]]


# --- start, keep, switch, stop -------------------------------------------------------------------


def test_activate_starts_the_server_and_records_who_it_is(orch):
    result = orch.activate("qwen-a")

    state = orch.state()
    assert state["name"] == "qwen-a" and state["backend"] == "vllm" and state["status"] == "ready"
    assert state["port"] == orch.port and state["endpoint"] == f"http://127.0.0.1:{orch.port}/v1"
    assert state["pid"] == result["pid"] and alive(state["pid"])
    assert state["boot_id"] == open("/proc/sys/kernel/random/boot_id").read().strip()
    assert state["process_start"] > 0 and state["started_at"] and state["ready_at"]
    assert state["command"][-6:] == ["--host", "127.0.0.1", "--port", str(orch.port), "--served-model-name",
                                     "org/qwen-a"]
    assert models_listed(state["endpoint"]) == ["org/qwen-a"]
    assert result["changed"] is True and result["stopped"] is None


def test_activating_the_live_model_again_changes_nothing(orch):
    first = orch.activate("qwen-a")

    again = orch.activate("qwen-a")

    assert again["changed"] is False and again["pid"] == first["pid"]
    assert len([p for p in standin_processes() if p != first["pid"]]) == 1  # one server under its launcher


def test_switching_stops_the_old_group_and_leaves_one_server(orch):
    a = orch.activate("qwen-a")

    b = orch.activate("qwen-b")

    assert b["stopped"]["name"] == "qwen-a" and b["stopped"]["signal"] == "TERM", b["stopped"]
    assert not alive(a["pid"])
    assert orch.state()["name"] == "qwen-b"
    assert models_listed(b["endpoint"]) == ["org/qwen-b"]
    left = standin_processes()
    assert len(left) == 2, [open(f"/proc/{p}/cmdline").read().split("\0") for p in left]  # qwen-b's only


def test_vision_entry_gets_the_multimodal_limit_on_its_command_line(orch):
    b = orch.activate("qwen-b")

    assert b["command"][-2:] == ["--limit-mm-per-prompt", '{"image":1}']


def test_stop_kills_the_group_and_clears_the_state(orch):
    a = orch.activate("qwen-a")

    proc = orch.cli("activate-model", "--stop")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"stopped qwen-a (vllm) (pid {a['pid']}, SIGTERM)"
    assert orch.state() is None and not standin_processes()


def test_stop_with_nothing_active_says_so(orch):
    proc = orch.cli("activate-model", "--stop")

    assert proc.returncode == 0 and proc.stdout.strip() == "nothing was active"


def test_stop_by_name_refuses_another_model(orch):
    orch.activate("qwen-a")

    proc = orch.cli("activate-model", "qwen-b", "--stop")

    assert proc.returncode == 1
    assert "'qwen-b' is not the active model ('qwen-a' is)" in proc.stderr
    assert orch.state()["name"] == "qwen-a"


def test_list_and_select_show_the_live_model(orch):
    orch.activate("qwen-b")

    listed = json.loads(orch.cli("list", "--include-non-installed", "--json").stdout)
    selected = json.loads(orch.cli("select", "qwen-b", "--json").stdout)

    assert {r["name"]: r["active"] for r in listed} == {"qwen-a": False, "qwen-b": True}
    assert selected["active"] is True and selected["endpoint"] == f"http://127.0.0.1:{orch.port}/v1"


def test_current_model_reports_the_live_server(orch):
    a = orch.activate("qwen-a")

    proc = orch.cli("current-model", "--json")

    info = json.loads(proc.stdout)
    assert proc.returncode == 0
    assert info["active"] is True and info["status"] == "ready" and info["pid"] == a["pid"]
    assert info["detail"] == "serving org/qwen-a"


def test_current_model_with_nothing_active(orch):
    proc = orch.cli("current-model")

    assert proc.returncode == 0 and proc.stdout.strip() == "no active model"


def test_dry_run_prints_the_command_and_starts_nothing(orch):
    proc = orch.cli("activate-model", "qwen-a", "--dry-run")

    assert proc.returncode == 0, proc.stderr
    assert f"would start qwen-a on port {orch.port}:" in proc.stdout
    assert f"--port {orch.port} --served-model-name org/qwen-a" in proc.stdout
    assert orch.state() is None and not standin_processes()


def test_dry_run_names_what_it_would_stop(orch):
    a = orch.activate("qwen-a")

    plan = json.loads(orch.cli("activate-model", "qwen-b", "--dry-run", "--json").stdout)

    assert plan["would_stop"] == {"name": "qwen-a", "pid": a["pid"]} and plan["action"] == "start"
    assert orch.state()["name"] == "qwen-a" and alive(a["pid"])


# --- failures: P1, P2, P3, P4 -----------------------------------------------------------------------


def test_p1_never_ready_times_out_within_its_limit_and_leaves_nothing(orch, monkeypatch):
    monkeypatch.setenv("STANDIN_NEVER_READY", "1")
    began = time.monotonic()

    with pytest.raises(errors.ServerNotReadyError) as caught:
        orch.activate("qwen-a", timeout=1.0)

    assert time.monotonic() - began < 1.0 + 3.0  # the limit, then a prompt SIGTERM stop (~0.3 s) and slack
    assert "not ready after 1s (/health answered 503); it was stopped" in caught.value.message
    assert orch.state() is None and not standin_processes()


def test_p2_early_exit_reports_code_and_log_lines_quickly(orch, monkeypatch):
    monkeypatch.setenv("STANDIN_EXIT_CODE", "7")
    began = time.monotonic()

    with pytest.raises(errors.ServerStartError) as caught:
        orch.activate("qwen-a")

    assert time.monotonic() - began < 2.0
    assert caught.value.returncode == 7
    assert "exited with code 7 before it was ready" in caught.value.message
    assert any("simulated crash" in line for line in caught.value.log_tail)
    assert orch.state() is None and not standin_processes()


def test_p2_cli_prints_the_exit_code_and_the_log_tail(orch):
    proc = orch.cli("activate-model", "qwen-a", env={"STANDIN_EXIT_CODE": "9"})

    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert "error: qwen-a: the server exited with code 9 before it was ready" in lines
    assert any(line.startswith("last lines of ") and line.endswith("qwen-a.log:") for line in lines)
    assert any(line.startswith("  | ERROR") and "STANDIN_EXIT_CODE=9" in line for line in lines)
    assert "Traceback" not in proc.stderr


def test_missing_executable_is_a_clear_error(orch, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_VLLM_BIN", "/nonexistent/bin/vllm")

    with pytest.raises(errors.ServerStartError) as caught:
        orch.activate("qwen-a")

    assert caught.value.message == "cannot run '/nonexistent/bin/vllm': no such executable"
    assert "IMAGEWORKS_VLLM_BIN" in caught.value.hint
    assert orch.state() is None


def test_p3_crash_after_ready_is_not_reported_as_active(orch, monkeypatch):
    monkeypatch.setenv("STANDIN_CRASH_AFTER", "0.3")
    a = orch.activate("qwen-a")
    assert wait_until(lambda: not alive(a["pid"]), 5)

    proc = orch.cli("current-model", "--json")

    info = json.loads(proc.stdout)
    assert info["active"] is False
    assert info["previous"]["name"] == "qwen-a" and "no longer running" in info["previous"]["reason"]
    assert orch.state() is None
    assert json.loads(orch.cli("select", "qwen-a", "--json").stdout)["active"] is False


class _Foreign(BaseHTTPRequestHandler):
    """A process that is not ours, answering exactly as a ready server for ``served`` would."""

    served = ""

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b"" if self.path == "/health" else json.dumps({"data": [{"id": self.served}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _foreign_server(port: int, served: str) -> subprocess.Popen:
    vllm_tests = str(Path(__file__).resolve().parents[2] / "plugins" / "vllm" / "tests")
    code = (f"import json, sys; sys.path[:0] = [{os.path.dirname(__file__)!r}, {vllm_tests!r}];"
            "from http.server import ThreadingHTTPServer;"
            "from test_activation import _Foreign;"
            f"_Foreign.served = {served!r};"
            f"ThreadingHTTPServer(('127.0.0.1', {port}), _Foreign).serve_forever()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: _answers(port), 10), "the foreign server did not start"
    return proc


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_p4_port_held_by_a_foreign_process_is_refused_and_left_alone(orch):
    foreign = _foreign_server(orch.port, "org/qwen-a")
    try:
        with pytest.raises(errors.PortInUseError) as caught:
            orch.activate("qwen-a")

        assert f"port {orch.port} is in use by pid {foreign.pid}" in caught.value.message
        assert foreign.poll() is None and _answers(orch.port)
        assert orch.state() is None and not standin_processes()
    finally:
        foreign.terminate()
        foreign.wait()


def test_p4_a_200_from_someone_else_is_never_taken_as_ready(orch, monkeypatch):
    # Our server waits before binding; meanwhile a foreign process takes the port and answers like a ready
    # server for the same served id. The activation must fail, never report ready.
    monkeypatch.setenv("STANDIN_BIND_DELAY", "5")  # the foreign server needs ~0.3 s to take the port first
    outcome = {}

    def run():
        try:
            outcome["result"] = orch.activate("qwen-a", timeout=8)
        except errors.ServingError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    assert wait_until(lambda: (orch.state() or {}).get("status") == "starting", 5)
    foreign = _foreign_server(orch.port, "org/qwen-a")
    try:
        thread.join(20)
        assert "result" not in outcome, "a foreign server's answers were taken as our server being ready"
        assert isinstance(outcome["error"], (errors.PortInUseError, errors.ServerStartError))
        assert foreign.poll() is None
        assert orch.state() is None and wait_until(lambda: not standin_processes(), 5)
    finally:
        foreign.terminate()
        foreign.wait()


# --- stopping: P6, P7 -------------------------------------------------------------------------------


def test_p6_stop_signals_the_whole_group_so_a_left_behind_worker_dies_too(orch, monkeypatch, tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    monkeypatch.setenv("STANDIN_FORK_GRANDCHILD", "1")
    monkeypatch.setenv("STANDIN_PID_FILE", str(pid_file))
    orch.activate("qwen-a")
    grandchild = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 5))
    assert alive(grandchild)

    proc = orch.cli("activate-model", "--stop", env={"IMAGEWORKS_STOP_GRACE": "0.5"})

    assert proc.returncode == 0, proc.stderr
    assert wait_until(lambda: not alive(grandchild), 5)  # the server itself never stops its worker


def test_p6_a_server_ignoring_sigterm_is_killed_after_the_grace_period(orch, monkeypatch):
    monkeypatch.setenv("STANDIN_IGNORE_SIGTERM", "1")
    monkeypatch.setenv("IMAGEWORKS_STOP_GRACE", "0.5")
    a = orch.activate("qwen-a")
    began = time.monotonic()

    from imageworks_models.serving.activation import stop

    out = stop(settings=orch.settings())

    assert out["signal"] == "KILL" and 0.5 <= time.monotonic() - began < 5
    assert not alive(a["pid"]) and not standin_processes()


def test_p7_cli_returns_at_once_though_the_server_keeps_running(orch):
    # capture_output gives the CLI pipes; a server that inherited them would keep communicate() waiting.
    began = time.monotonic()
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), LOADER), "activate-model", "qwen-a"],
                          capture_output=True, text=True, timeout=30)

    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - began < 10
    state = orch.state()
    assert alive(state["pid"])
    fds = os.listdir(f"/proc/{state['pid']}/fd")
    assert sorted(int(fd) for fd in fds)[:3] == [0, 1, 2]
    assert os.readlink(f"/proc/{state['pid']}/fd/0") == "/dev/null"
    assert os.readlink(f"/proc/{state['pid']}/fd/1") == "/dev/null"


# --- stale state: P8, P9, P10/P11 -------------------------------------------------------------------


@pytest.fixture
def bystander():
    """A live process that is not ours (its pid lands in forged state files)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def _forge_state(orch, pid: int, **fields):
    stat = open(f"/proc/{pid}/stat").read()
    start = int(stat[stat.rfind(")") + 2:].split()[19])
    record = {"schema_version": 1, "name": "qwen-a", "backend": "vllm", "served_model_id": "org/qwen-a",
              "status": "ready", "pid": pid, "process_start": start,
              "boot_id": open("/proc/sys/kernel/random/boot_id").read().strip(),
              "launcher": open(f"/proc/{pid}/cmdline").read().split("\0")[:-1], "command": [], "host": "127.0.0.1",
              "port": orch.port, "endpoint": f"http://127.0.0.1:{orch.port}/v1", "log": "x.log",
              "started_at": "2026-01-01T00:00:00+00:00", "ready_at": None, **fields}
    orch.state_file.parent.mkdir(parents=True, exist_ok=True)
    orch.state_file.write_text(json.dumps(record))


@pytest.mark.parametrize("forged, reason", [
    ({"boot_id": "00000000-0000-0000-0000-000000000000"}, "before the last reboot"),  # P8
    ({"process_start": 1}, "pid now belongs to another process"),  # P9: same pid, another start time
    ({"launcher": ["vllm", "serve", "x"]}, "pid now belongs to another process"),  # P9: another command line
])
def test_p8_p9_a_stale_record_never_signals_the_process_now_at_its_pid(orch, bystander, forged, reason):
    _forge_state(orch, bystander.pid, **forged)

    info = json.loads(orch.cli("current-model", "--json").stdout)
    _forge_state(orch, bystander.pid, **forged)
    stopped = orch.cli("activate-model", "--stop", "--json")
    _forge_state(orch, bystander.pid, **forged)
    started = orch.activate("qwen-b")

    assert info["active"] is False and reason in info["previous"]["reason"]
    assert json.loads(stopped.stdout)["signal"] is None and reason in json.loads(stopped.stdout)["stale"]
    assert started["stopped"]["signal"] is None
    assert bystander.poll() is None and alive(bystander.pid)


def test_p10_cli_killed_while_the_server_starts_next_activation_adopts_it(orch):
    cli = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), LOADER), "activate-model", "qwen-a"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "STANDIN_START_DELAY": "2"})
    state = wait_until(lambda: (orch.state() or {}).get("status") == "starting" and orch.state(), 10)
    cli.kill()
    cli.wait()
    assert alive(state["pid"])

    result = orch.activate("qwen-a")

    assert result["pid"] == state["pid"] and result["status"] == "ready" and result["changed"] is True
    assert orch.state()["status"] == "ready"


def test_p11_cli_killed_while_the_server_starts_next_stop_reaps_it(orch):
    cli = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), LOADER), "activate-model", "qwen-a"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "STANDIN_START_DELAY": "5"})
    state = wait_until(lambda: (orch.state() or {}).get("status") == "starting" and orch.state(), 10)
    cli.kill()
    cli.wait()
    orch.seen.add(state["pid"])

    proc = orch.cli("activate-model", "--stop")

    assert proc.returncode == 0 and "stopped qwen-a" in proc.stdout
    assert wait_until(lambda: not alive(state["pid"]), 5) and not standin_processes()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_to_the_cli_while_starting_stops_the_half_started_server(orch, sig):
    cli = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), LOADER), "activate-model", "qwen-a"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "STANDIN_START_DELAY": "5"})
    state = wait_until(lambda: (orch.state() or {}).get("status") == "starting" and orch.state(), 10)
    cli.send_signal(sig)
    _, err = cli.communicate(timeout=15)

    assert cli.returncode == 130, err  # "interrupted", the exit code of the README's table
    assert err.rstrip().endswith("interrupted") and "Traceback" not in err
    assert orch.state() is None
    assert wait_until(lambda: not alive(state["pid"]), 5) and not standin_processes()


# --- concurrency and the state file: P12, P13, P14, P15 -------------------------------------------------


@pytest.mark.parametrize("names", [("qwen-a", "qwen-b"), ("qwen-a", "qwen-a")])
def test_p12_two_activations_at_once_end_with_exactly_one_server(orch, names):
    exe = os.path.join(os.path.dirname(sys.executable), LOADER)
    procs = [subprocess.Popen([exe, "activate-model", n], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for n in names]
    outs = [p.communicate(timeout=60) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], outs
    state = orch.state()
    orch.seen.add(state["pid"])
    assert state["name"] in names and alive(state["pid"])
    servers = [p for p in standin_processes() if p != state["pid"]]
    assert len(servers) == 1  # one server, under the recorded launcher
    assert models_listed(state["endpoint"]) == [f"org/{state['name']}"]


def test_p13_p14_p15_many_switches_leave_one_server_no_zombie_and_a_whole_state_file(orch):
    seen_bad = []
    stop_reading = threading.Event()

    def reader():
        while not stop_reading.is_set():
            try:
                data = orch.state_file.read_bytes()
            except FileNotFoundError:
                continue
            try:
                json.loads(data)
            except ValueError:
                seen_bad.append(data)

    thread = threading.Thread(target=reader)
    thread.start()
    started = []  # every launcher and the server under it
    try:
        for name in ("qwen-a", "qwen-b") * 4:
            result = orch.activate(name)
            servers = [p for p in standin_processes() if p != result["pid"]]
            assert len(servers) == 1
            started += [result["pid"], *servers]
        orch.cli("activate-model", "--stop")  # another process stops our child: we reap it on our next call
        from imageworks_models.serving.activation import current

        assert current(settings=orch.settings())["active"] is False
    finally:
        stop_reading.set()
        thread.join()

    assert seen_bad == []
    assert [pid for pid in started if os.path.exists(f"/proc/{pid}")] == []  # gone, not even a zombie
    assert not [p for p in orch.state_file.parent.iterdir() if p.name.endswith(".tmp")]


# --- refusals before anything starts --------------------------------------------------------------------


@pytest.mark.parametrize("config, message", [
    ({"base_url": "http://gpu-box:8000"}, "error: 'remote' is served remotely at http://gpu-box:8000; nothing is "
                                          "started here"),
    ({"extra_args": ["--port=1"]}, "extra_args may not set --port (found '--port=1')"),
    ({"extra_args": ["--trust-remote-code"]}, "extra_args asks for --trust-remote-code"),
    ({"env": {"LD_PRELOAD": "/tmp/x.so"}}, "backend_config.env may not set LD_PRELOAD"),
], ids=["remote", "port-override", "remote-code", "ld-preload"])
def test_refusals_come_before_anything_starts(imageworks_isolated, tmp_path, monkeypatch, config, message):
    from orchestration import Orchestration, entry

    orch = Orchestration(tmp_path, monkeypatch, entry("remote", tmp_path / "weights" / "model", backend_config=config))
    try:
        proc = orch.cli("activate-model", "remote")

        assert proc.returncode == 1
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert orch.state() is None and not standin_processes()
        assert not (orch.registry / "logs").exists()
    finally:
        assert not orch.cleanup()


# --- logs: P17 ----------------------------------------------------------------------------------------------


def test_p17_server_output_is_bounded(tmp_path):
    from imageworks_models.live import processes

    log = tmp_path / "logs" / "chatty.log"
    chatty = [sys.executable, "-c", "import sys\nfor i in range(20000): print(f'line {i:06d} ' + 'x' * 90)"]
    proc, ident = processes.spawn(chatty, env=dict(os.environ), log_path=log, log_bytes=64 * 1024)
    assert proc.wait(timeout=30) == 0

    sizes = log.stat().st_size + log.with_name("chatty.log.1").stat().st_size
    assert sizes <= 64 * 1024
    assert log.read_text().splitlines()[-1].startswith("line 019999 ")  # the newest output is kept


def test_each_start_gets_a_fresh_log_and_keeps_the_previous_one(orch, monkeypatch):
    monkeypatch.setenv("STANDIN_EXIT_CODE", "4")
    with pytest.raises(errors.ServerStartError):
        orch.activate("qwen-a")
    monkeypatch.delenv("STANDIN_EXIT_CODE")

    result = orch.activate("qwen-a")

    log = result["log"]
    assert "STANDIN_EXIT_CODE=4" not in open(log).read()
    assert "STANDIN_EXIT_CODE=4" in open(log + ".1").read()


def test_log_file_name_is_safe_for_any_entry_name(tmp_path):
    from imageworks_models.serving.activation import log_path_for
    from imageworks_models.testing import test_settings

    settings = test_settings(tmp_path)

    assert log_path_for(settings, "gpt-oss-20b_(MXFP4)").name == "gpt-oss-20b__MXFP4_.log"
    assert log_path_for(settings, "../../etc/passwd").parent == settings.log_dir
    assert log_path_for(settings, "../../etc/passwd").name == "_.._etc_passwd.log"


# --- health and status ------------------------------------------------------------------------------------


def test_health_vllm_reports_the_live_server_and_a_dead_port(orch):
    down = orch.cli("health", "vllm", "--json", prog="imageworks-models")
    orch.activate("qwen-a")

    up = orch.cli("health", "vllm", "--json", prog="imageworks-models")

    assert down.returncode == 1
    row = json.loads(down.stdout)[0]
    assert row["ok"] is False
    assert row["error"] == f"no vLLM server answers at http://127.0.0.1:{orch.port}/v1 (connection refused)"
    assert up.returncode == 0, up.stderr
    row = json.loads(up.stdout)[0]
    assert row["ok"] is True and row["version"] == "0.11.0" and row["loaded"] == [{"model": "org/qwen-a"}]


def test_current_model_says_starting_while_the_server_loads(orch, monkeypatch):
    monkeypatch.setenv("STANDIN_START_DELAY", "2")
    thread = threading.Thread(target=lambda: orch.activate("qwen-a"))
    thread.start()
    try:
        assert wait_until(lambda: (orch.state() or {}).get("status") == "starting", 10)

        info = json.loads(orch.cli("current-model", "--json").stdout)

        assert info["active"] is True and info["status"] == "starting" and info["name"] == "qwen-a"
    finally:
        thread.join(30)
    assert orch.state()["status"] == "ready"


def test_current_model_says_unhealthy_when_the_live_server_stops_answering(orch):
    a = orch.activate("qwen-a")
    server = next(p for p in standin_processes() if p != a["pid"])
    os.kill(server, signal.SIGSTOP)  # alive, holding its port, answering nothing
    try:
        info = json.loads(orch.cli("current-model", "--json").stdout)
    finally:
        os.kill(server, signal.SIGCONT)

    assert info["active"] is True and info["status"] == "unhealthy"
    assert info["detail"] == "no answer within 2s"
    assert orch.state()["name"] == "qwen-a"  # a slow server is reported, not forgotten


def test_activation_switch_and_stop_are_in_the_audit_trail(orch):
    from imageworks_models.registry import audit

    a = orch.activate("qwen-a")
    b = orch.activate("qwen-b")
    orch.cli("activate-model", "--stop")

    recs = [r for r in audit.read(orch.registry / "logs", limit=None) if r["action"] in ("activate", "stop")]
    assert [(r["action"], r["entries"]) for r in recs] == [("activate", ["qwen-a"]), ("activate", ["qwen-b"]),
                                                           ("stop", ["qwen-b"])]
    assert recs[1]["stopped"]["name"] == "qwen-a" and recs[1]["server_pid"] == b["pid"]
    assert recs[0]["server_pid"] == a["pid"] and recs[0]["port"] == orch.port
    assert recs[2]["command"].endswith("activate-model --stop") and recs[2]["signal"] == "TERM"
