"""The stand-in for ``vllm serve`` / ``lmdeploy serve api_server`` (standin_server.py): its command lines,
endpoints and fault switches, run as a real subprocess on a free local port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

SCRIPT = Path(__file__).with_name("standin_server.py")

pytestmark = pytest.mark.usefixtures("imageworks_isolated")  # from imageworks_models.pytest_plugin

HOST = "127.0.0.1"
MODEL_PATH = "/models/qwen2-vl-2b-instruct"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # no proxies from the environment for 127.0.0.1
    return s


HTTP = session()


def vllm_args(port: int, name: str = "qwen-vl") -> list[str]:
    return [
        "serve", MODEL_PATH, "--host", HOST, "--port", str(port), "--served-model-name", name,
        "--limit-mm-per-prompt", "image=4", "--max-model-len", "4096", "--trust-remote-code",
    ]


def lmdeploy_args(port: int, name: str = "internvl") -> list[str]:
    return [
        "serve", "api_server", MODEL_PATH, "--server-name", HOST, "--server-port", str(port),
        "--model-name", name, "--backend", "turbomind", "--model-format", "awq", "--tp", "1",
    ]


def start(args: list[str], **env: str) -> subprocess.Popen:
    full_env = {**os.environ, **env}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args], env=full_env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def health(port: int) -> int | None:
    """The /health status, or None when the connection is refused."""
    try:
        return HTTP.get(f"http://{HOST}:{port}/health", timeout=1).status_code
    except requests.ConnectionError:
        return None


def wait_healthy(proc: subprocess.Popen, port: int, deadline: float = 5.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if health(port) == 200:
            return
        assert proc.poll() is None, f"stand-in exited early with {proc.returncode}"
        time.sleep(0.02)
    raise AssertionError("stand-in not healthy within the deadline")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as dead
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_dead(pid: int, deadline: float = 2.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_vllm_command_line_serves_models_version_and_chat():
    port = free_port()
    proc = start(vllm_args(port))
    try:
        wait_healthy(proc, port)
        response = HTTP.get(f"http://{HOST}:{port}/health", timeout=1)
        assert response.status_code == 200 and response.content == b""

        models = HTTP.get(f"http://{HOST}:{port}/v1/models", timeout=1).json()
        assert models["object"] == "list"
        [card] = models["data"]
        assert card["id"] == "qwen-vl" and card["root"] == MODEL_PATH
        assert card["object"] == "model" and card["owned_by"] == "vllm" and card["parent"] is None
        assert isinstance(card["created"], int) and card["max_model_len"] == 4096

        assert HTTP.get(f"http://{HOST}:{port}/version", timeout=1).json() == {"version": "0.11.0"}

        chat = HTTP.post(f"http://{HOST}:{port}/v1/chat/completions", timeout=1, json={
            "model": "qwen-vl",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [
                    {"type": "text", "text": "describe this"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ]},
            ],
        })
        assert chat.status_code == 200
        body = chat.json()
        assert body["object"] == "chat.completion" and body["model"] == "qwen-vl"
        assert body["choices"][0]["message"] == {"role": "assistant", "content": "describe this"}
        assert body["choices"][0]["finish_reason"] == "stop"

        wrong = HTTP.post(f"http://{HOST}:{port}/v1/chat/completions", timeout=1,
                          json={"model": "nope", "messages": []})
        assert wrong.status_code == 404 and wrong.json()["type"] == "NotFoundError"
        missing = HTTP.get(f"http://{HOST}:{port}/nowhere", timeout=1)
        assert missing.status_code == 404 and missing.json()["code"] == 404
    finally:
        stop(proc)


def test_vllm_model_flag_form_and_startup_log():
    port = free_port()
    proc = start(["serve", "--model", MODEL_PATH, "--host", HOST, "--port", str(port)])
    try:
        wait_healthy(proc, port)
        [card] = HTTP.get(f"http://{HOST}:{port}/v1/models", timeout=1).json()["data"]
        assert card["id"] == MODEL_PATH and card["root"] == MODEL_PATH  # the name defaults to the model
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)  # ~0.06 s; only the bound for a loaded machine
        assert proc.returncode == 0
        assert f"INFO:     Uvicorn running on http://{HOST}:{port}" in out
        assert health(port) is None  # the socket is closed
    finally:
        stop(proc)


def test_lmdeploy_command_line_serves_models_with_model_name():
    port = free_port()
    proc = start(lmdeploy_args(port))
    try:
        wait_healthy(proc, port)
        [card] = HTTP.get(f"http://{HOST}:{port}/v1/models", timeout=1).json()["data"]
        assert card["id"] == "internvl" and card["root"] == MODEL_PATH
        chat = HTTP.post(f"http://{HOST}:{port}/v1/chat/completions", timeout=1,
                         json={"model": "internvl", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.json()["choices"][0]["message"]["content"] == "hi"
    finally:
        stop(proc)


def test_start_delay_is_unhealthy_at_first_then_healthy():
    port = free_port()
    proc = start(vllm_args(port), STANDIN_START_DELAY="0.6")
    try:
        started = time.monotonic()
        first = health(port)
        assert first in (None, 503)
        wait_healthy(proc, port)
        assert time.monotonic() - started >= 0.4
    finally:
        stop(proc)


def test_start_delay_answers_503_after_binding():
    port = free_port()
    proc = start(vllm_args(port), STANDIN_START_DELAY="10")  # ready long after the loop below has seen a 503
    try:
        end = time.monotonic() + 8  # it binds in ~0.05 s; the rest is only the bound for a loaded machine
        seen = set()
        while time.monotonic() < end and 503 not in seen:
            seen.add(health(port))
            time.sleep(0.02)
        assert 503 in seen and 200 not in seen
        chat = HTTP.post(f"http://{HOST}:{port}/v1/chat/completions", timeout=1,
                         json={"messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 503
    finally:
        stop(proc)


def test_exit_code_exits_quickly_with_an_error_line():
    port = free_port()
    proc = start(vllm_args(port), STANDIN_EXIT_CODE="7")
    try:
        out, err = proc.communicate(timeout=10)  # ~0.05 s; only the bound for a loaded machine
        assert proc.returncode == 7
        assert "ERROR" in err and MODEL_PATH in err
        assert health(port) is None
    finally:
        stop(proc)


def test_never_ready_stays_503():
    port = free_port()
    proc = start(vllm_args(port), STANDIN_NEVER_READY="1")
    try:
        end = time.monotonic() + 10  # it binds in ~0.05 s; the sampling below starts once it answers
        while health(port) is None and time.monotonic() < end:
            time.sleep(0.02)
        end = time.monotonic() + 1.0
        seen = []
        while time.monotonic() < end:
            seen.append(health(port))
            time.sleep(0.05)
        assert set(seen) == {503}
        assert proc.poll() is None
    finally:
        stop(proc)


def test_ignore_sigterm_survives_sigterm_and_dies_on_sigkill():
    port = free_port()
    proc = start(vllm_args(port), STANDIN_IGNORE_SIGTERM="1")
    try:
        wait_healthy(proc, port)
        os.killpg(proc.pid, signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None
        assert health(port) == 200
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=2) == -signal.SIGKILL
    finally:
        stop(proc)


def test_fork_grandchild_shares_the_group_and_killpg_kills_both(tmp_path):
    port = free_port()
    pid_file = tmp_path / "grandchild.pid"
    proc = start(vllm_args(port), STANDIN_FORK_GRANDCHILD="1", STANDIN_PID_FILE=str(pid_file))
    grandchild = None
    try:
        wait_healthy(proc, port)
        grandchild = int(pid_file.read_text())
        pgid = os.getpgid(proc.pid)
        assert pgid == proc.pid  # start_new_session made it a group leader
        assert os.getpgid(grandchild) == pgid
        os.killpg(pgid, signal.SIGKILL)
        assert proc.wait(timeout=2) == -signal.SIGKILL
        assert wait_dead(grandchild)
    finally:
        stop(proc)
        if grandchild is not None and alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


def test_crash_after_exits_with_3():
    port = free_port()
    proc = start(vllm_args(port), STANDIN_CRASH_AFTER="0.3")
    try:
        wait_healthy(proc, port)
        _, err = proc.communicate(timeout=10)  # 0.3 s after ready; only the bound for a loaded machine
        assert proc.returncode == 3
        assert "ERROR" in err
        assert health(port) is None
    finally:
        stop(proc)
