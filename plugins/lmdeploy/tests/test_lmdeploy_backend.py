"""The LMDeploy backend at work: the ``lmdeploy serve api_server`` command line it builds (checked, RELIABILITY S7),
a local server's lifecycle through the orchestrator (against the stand-in server), and the health of remote
endpoints over HTTP (RELIABILITY S9: http(s) only, redirects never followed, the token sent to the configured
endpoint only and never shown).

The ``orch`` fixture (conftest.py) needs the stand-in server from the vLLM plugin's tests; the remote-endpoint
tests use in-process stand-ins (``ThreadingHTTPServer`` on 127.0.0.1).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from imageworks_models import testing
from imageworks_models.errors import ConfigError, ModelNotPulledError, NotActivatableError, UnsafeLaunchError
from imageworks_models.pluginhost.manager import get_plugins
from imageworks_models.testing import run_cli
from imageworks_models.testing import test_settings as settings

pytestmark = pytest.mark.usefixtures("imageworks_isolated")  # from imageworks_models.pytest_plugin

TOKEN = "tok-5up3r-s3cret-value"


# --- the command line ------------------------------------------------------------------------------


@pytest.fixture
def weights(tmp_path) -> Path:
    folder = tmp_path / "weights" / "internvl"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def launch(tmp_path, entry_fields: dict | None = None, backend_config: dict | None = None, **env: str):
    """The backend's Launch for an lmdeploy entry named ``internvl`` (served id ``org/internvl``)."""
    cfg = {"model_path": str(tmp_path / "weights" / "internvl"), **(backend_config or {})}
    entry = {"name": "internvl", "backend": "lmdeploy", "served_model_id": "org/internvl", "backend_config": cfg,
             **(entry_fields or {})}
    impl = get_plugins().backend("lmdeploy").load()
    return impl.launch(entry, settings=settings(tmp_path, **env))


def test_command_exact_argv_with_defaults(tmp_path, weights):
    result = launch(tmp_path)

    assert result.argv == ("lmdeploy", "serve", "api_server", str(weights), "--server-name", "127.0.0.1",
                           "--server-port", "23333", "--backend", "turbomind", "--model-name", "org/internvl")
    assert (result.host, result.port, result.served_model_id) == ("127.0.0.1", 23333, "org/internvl")
    assert result.endpoint == "http://127.0.0.1:23333/v1"
    assert result.env == {}


def test_command_served_id_defaults_to_the_entry_name(tmp_path, weights):
    impl = get_plugins().backend("lmdeploy").load()
    entry = {"name": "internvl", "backend": "lmdeploy", "backend_config": {"model_path": str(weights)}}

    result = impl.launch(entry, settings=settings(tmp_path))

    assert result.argv[-2:] == ("--model-name", "internvl")
    assert result.served_model_id == "internvl"


def test_command_pytorch_engine_with_format_and_extra_args(tmp_path, weights):
    # binding all interfaces needs the user's allow_public_host (issue 17, S11)
    result = launch(tmp_path, backend_config={"engine": "pytorch", "model_format": "awq", "host": "0.0.0.0",
                                              "port": 24000, "extra_args": ["--tp", "2", "--session-len", "8192"],
                                              "env": {"CUDA_VISIBLE_DEVICES": "1"}}, IMAGEWORKS_ALLOW_PUBLIC_HOST="1")

    assert result.argv == ("lmdeploy", "serve", "api_server", str(weights), "--server-name", "0.0.0.0",
                           "--server-port", "24000", "--backend", "pytorch", "--model-format", "awq",
                           "--model-name", "org/internvl", "--tp", "2", "--session-len", "8192")
    assert result.endpoint == "http://127.0.0.1:24000/v1"  # a wildcard bind is reached on loopback
    assert result.env == {"CUDA_VISIBLE_DEVICES": "1"}


@pytest.mark.parametrize("engine, expected", [("turbomind", "turbomind"), ("pytorch", "pytorch"),
                                              ("PyTorch", "pytorch"), (None, "turbomind"), ("", "turbomind")])
def test_command_engine(tmp_path, weights, engine, expected):
    argv = launch(tmp_path, backend_config={"engine": engine}).argv

    assert argv[argv.index("--backend") + 1] == expected
    assert argv.count("--backend") == 1


@pytest.mark.parametrize("engine", ["vllm", "tensorrt", "turbomind; rm -rf /", "--pytorch"])
def test_command_bad_engine_is_refused(tmp_path, weights, engine):
    with pytest.raises(UnsafeLaunchError, match="backend_config.engine"):
        launch(tmp_path, backend_config={"engine": engine})


@pytest.mark.parametrize("entry_fields, backend_config, expected", [
    ({}, {"model_format": "awq"}, "awq"),
    ({}, {"model_format": "HF"}, "hf"),
    ({}, {"model_format": "fp8"}, "fp8"),
    ({"quantization": "gptq"}, {"model_format": "hf"}, "hf"),  # explicit wins over quantization
    ({"quantization": "awq"}, {}, "awq"),
    ({"quantization": "GPTQ"}, {}, "gptq"),
    ({"quantization": "fp8"}, {}, "fp8"),
    ({"format": "awq"}, {}, "awq"),
    ({}, {}, None),
    ({"quantization": "int8"}, {}, None),
    ({"quantization": "q4_k_m", "format": "safetensors"}, {}, None),
])
def test_command_model_format(tmp_path, weights, entry_fields, backend_config, expected):
    argv = launch(tmp_path, entry_fields, backend_config).argv

    if expected is None:
        assert "--model-format" not in argv
    else:
        assert argv.count("--model-format") == 1
        at = argv.index("--model-format")
        assert argv[at + 1] == expected
        assert argv[at + 2:at + 4] == ("--model-name", "org/internvl")


@pytest.mark.parametrize("fmt", ["gguf", "int4", "awq --trust-remote-code", "-h"])
def test_command_bad_model_format_is_refused(tmp_path, weights, fmt):
    with pytest.raises(UnsafeLaunchError, match="backend_config.model_format"):
        launch(tmp_path, backend_config={"model_format": fmt})


@pytest.mark.parametrize("fmt", ["gguf", "GGUF"])
def test_command_gguf_is_not_activatable(tmp_path, weights, fmt):
    with pytest.raises(NotActivatableError, match="GGUF") as info:
        launch(tmp_path, {"format": fmt})
    assert "vllm or ollama" in info.value.hint


@pytest.mark.parametrize("extra", [
    ["--server-port", "1"],
    ["--server_port=1"],
    ["--Server-Port=1"],
    ["--server-p", "1"],  # argparse abbreviations
    ["--server", "0.0.0.0"],
    ["--server-name", "0.0.0.0"],
    ["--server-n=0.0.0.0"],
    ["--model-name", "x"],
    ["--model_name=x"],
    ["--model-n", "x"],
    ["--model", "x"],
    ["--tp", "2", "--server-port", "1"],  # not only in first place
    ["--trust-remote-code"],  # without the entry's opt-in
])
def test_command_hostile_extra_args_are_refused(tmp_path, weights, extra):
    with pytest.raises(UnsafeLaunchError) as info:
        launch(tmp_path, backend_config={"extra_args": extra})
    assert "extra_args" in info.value.message


@pytest.mark.parametrize("extra, flag, value", [
    (["--backend", "pytorch"], "--backend", "pytorch"),
    (["--backend=pytorch"], "--backend=pytorch", None),
    (["--back", "pytorch"], "--back", "pytorch"),  # an argparse abbreviation is the same flag
    (["--model-format", "hf"], "--model-format", "hf"),
    (["--model-f=awq"], "--model-f=awq", None),
])
def test_command_engine_flags_in_extra_args_replace_ours(tmp_path, weights, extra, flag, value):
    # LMDeploy's own engine flags (the shipped catalog's `--backend turbomind`) are the entry's to set: the
    # entry's value is used and the orchestrator's rendering of the same flag is left out, never doubled.
    argv = list(launch(tmp_path, {"quantization": "awq"}, backend_config={"extra_args": extra}).argv)

    option = extra[0].split("=", 1)[0]
    owned = "--backend" if "--backend".startswith(option) else "--model-format"
    assert sum(1 for a in argv if a.split("=", 1)[0] in (owned, option)) == 1, argv
    assert flag in argv and (value is None or argv[argv.index(flag) + 1] == value)


@pytest.mark.parametrize("extra", [["--backend", "vulkan"], ["--model-format=int3"], ["--backend"]])
def test_command_engine_flags_with_bad_values_are_refused(tmp_path, weights, extra):
    with pytest.raises(UnsafeLaunchError, match="not one of"):
        launch(tmp_path, backend_config={"extra_args": extra})


def test_command_extra_args_as_one_string_is_refused(tmp_path, weights):
    with pytest.raises(UnsafeLaunchError, match="one string"):
        launch(tmp_path, backend_config={"extra_args": "--tp 2"})


def test_command_trust_remote_code_with_the_opt_in(tmp_path, weights):
    argv = launch(tmp_path, backend_config={"trust_remote_code": True, "extra_args": ["--trust-remote-code"]}).argv

    assert argv[-1] == "--trust-remote-code"


@pytest.mark.parametrize("served", ["-h", "--help", "--trust-remote-code", "   ", "a\nb"])
def test_command_served_id_read_as_an_option_is_refused(tmp_path, weights, served):
    with pytest.raises(UnsafeLaunchError, match="served_model_id"):
        launch(tmp_path, {"served_model_id": served})


def test_command_served_id_with_shell_characters_is_one_argument(tmp_path, weights):
    served = "x; touch /tmp/p"

    result = launch(tmp_path, {"served_model_id": served})

    assert result.argv[-2:] == ("--model-name", served)
    assert result.served_model_id == served
    assert "touch" not in result.argv and ";" not in result.argv


@pytest.mark.parametrize("host", ["--server-port=1", "-h", "a\nb"])
def test_command_host_read_as_an_option_is_refused(tmp_path, weights, host):
    with pytest.raises(UnsafeLaunchError, match="backend_config.host"):
        launch(tmp_path, backend_config={"host": host})


@pytest.mark.parametrize("env, backend_config, port", [
    ({"CHAT_PROXY_VLLM_SINGLE_PORT": "1", "CHAT_PROXY_VLLM_PORT": "8123"}, {"port": 24000}, 8123),
    ({"CHAT_PROXY_VLLM_SINGLE_PORT": "1", "CHAT_PROXY_VLLM_PORT": "8123"}, {}, 8123),
    ({"CHAT_PROXY_VLLM_SINGLE_PORT": "1"}, {}, 8000),  # CHAT_PROXY_VLLM_PORT's default
    ({"CHAT_PROXY_VLLM_SINGLE_PORT": "0", "CHAT_PROXY_VLLM_PORT": "8123"}, {"port": 24000}, 24000),
    ({"CHAT_PROXY_VLLM_SINGLE_PORT": "0", "CHAT_PROXY_VLLM_PORT": "8123"}, {}, 23333),
    ({}, {"port": 24000}, 24000),
    ({}, {}, 23333),
])
def test_command_port_rules(tmp_path, weights, env, backend_config, port):
    result = launch(tmp_path, backend_config=backend_config, **env)

    assert result.argv[result.argv.index("--server-port") + 1] == str(port)
    assert result.port == port
    assert result.endpoint == f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize("value, prefix", [
    ("uv run lmdeploy", ["uv", "run", "lmdeploy"]),
    ('"/opt/my models/bin/lmdeploy"', ["/opt/my models/bin/lmdeploy"]),
    ("/opt/lmdeploy/bin/lmdeploy", ["/opt/lmdeploy/bin/lmdeploy"]),
    ("python -m lmdeploy", ["python", "-m", "lmdeploy"]),
])
def test_command_lmdeploy_bin_is_split_like_a_shell_would(tmp_path, weights, value, prefix):
    argv = launch(tmp_path, IMAGEWORKS_LMDEPLOY_BIN=value).argv

    assert list(argv[:len(prefix)]) == prefix
    assert argv[len(prefix):len(prefix) + 3] == ("serve", "api_server", str(weights))


@pytest.mark.parametrize("value", ['"/opt/unclosed', "   "])
def test_command_lmdeploy_bin_that_cannot_be_split_is_a_config_error(tmp_path, weights, value):
    with pytest.raises(ConfigError, match="IMAGEWORKS_LMDEPLOY_BIN"):
        launch(tmp_path, IMAGEWORKS_LMDEPLOY_BIN=value)


def test_command_missing_model_files(tmp_path):
    with pytest.raises(ModelNotPulledError):
        launch(tmp_path, backend_config={"model_path": str(tmp_path / "nowhere")})


def test_command_hub_id_is_passed_on(tmp_path):
    argv = launch(tmp_path, backend_config={"model_path": "OpenGVLab/InternVL2-8B"}).argv

    assert argv[1:4] == ("serve", "api_server", "OpenGVLab/InternVL2-8B")


@pytest.mark.parametrize("env", [{"LD_PRELOAD": "/tmp/x.so"}, {"PYTHONPATH": "/tmp"}, {"PATH": "/tmp"}])
def test_command_env_that_loads_code_is_refused(tmp_path, weights, env):
    with pytest.raises(UnsafeLaunchError, match="backend_config.env"):
        launch(tmp_path, backend_config={"env": env})


# --- a local server's lifecycle (the stand-in) ------------------------------------------------------


def served_models(endpoint: str) -> list[dict]:
    response = requests.get(f"{endpoint}/models", timeout=5)
    assert response.status_code == 200
    return response.json()["data"]


def assert_nothing_left(orch) -> None:
    from orchestration import wait_until

    assert wait_until(lambda: not orch.server_pids(), 5), orch.server_pids()
    assert orch.state() is None


def test_library_activate_serves_the_entry_then_deactivate_stops_it(orch):
    from imageworks_models.serving.activation import current
    from imageworks_models.serving.control import deactivate, health

    result = orch.activate("internvl-a")

    assert result["name"] == "internvl-a" and result["backend"] == "lmdeploy"
    assert result["served_model_id"] == "org/internvl-a"
    assert result["port"] == orch.port and result["changed"] is True
    assert result["endpoint"] == f"http://127.0.0.1:{orch.port}/v1"
    command = result["command"]
    assert command[command.index("serve"):] == [
        "serve", "api_server", str(orch.weights), "--server-name", "127.0.0.1", "--server-port", str(orch.port),
        "--backend", "turbomind", "--model-name", "org/internvl-a"]
    assert requests.get(f"http://127.0.0.1:{orch.port}/health", timeout=5).status_code == 200
    cards = served_models(result["endpoint"])
    assert [(c["id"], c["owned_by"]) for c in cards] == [("org/internvl-a", "lmdeploy")]

    live = current(settings=orch.settings())
    assert (live["active"], live["status"], live["name"]) == (True, "ready", "internvl-a")
    rows = health(settings=orch.settings(), backends=["lmdeploy"])
    assert rows == [{"backend": "lmdeploy", "name": "internvl-a", "url": result["endpoint"], "ok": True,
                     "version": None, "loaded": [{"model": "org/internvl-a"}], "error": None, "hint": None}]

    stopped = deactivate("internvl-a", settings=orch.settings())

    assert stopped["stopped"] is True and stopped["name"] == "internvl-a" and stopped["pid"] == result["pid"]
    assert_nothing_left(orch)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{orch.port}/health", timeout=2)
    assert current(settings=orch.settings())["active"] is False


def test_cli_activate_current_and_stop(orch):
    proc = orch.cli("activate-model", "internvl-b", "--json")

    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["name"], result["backend"], result["served_model_id"]) == ("internvl-b", "lmdeploy",
                                                                              "org/internvl-b")
    command = result["command"]
    assert command[command.index("--backend"):] == ["--backend", "pytorch", "--model-format", "awq",
                                                    "--model-name", "org/internvl-b"]
    cards = served_models(result["endpoint"])
    assert [(c["id"], c["owned_by"], c["root"]) for c in cards] == [("org/internvl-b", "lmdeploy",
                                                                     str(orch.weights))]

    now = orch.cli("current-model", "--json")
    assert now.returncode == 0, now.stderr
    info = json.loads(now.stdout)
    assert (info["active"], info["status"], info["name"], info["backend"]) == (True, "ready", "internvl-b",
                                                                              "lmdeploy")
    assert (info["served_model_id"], info["endpoint"], info["pid"]) == ("org/internvl-b", result["endpoint"],
                                                                        result["pid"])

    up = run_cli("health", "lmdeploy", "--json")
    assert up.exit_code == 0, up.stderr
    assert [(r["name"], r["ok"], r["loaded"]) for r in json.loads(up.stdout)] == [
        ("internvl-b", True, [{"model": "org/internvl-b"}])]

    stop = orch.cli("activate-model", "--stop")

    assert stop.returncode == 0, stop.stderr
    assert stop.stdout.startswith("stopped internvl-b (lmdeploy)")
    assert_nothing_left(orch)
    after = json.loads(orch.cli("current-model", "--json").stdout)
    assert after["active"] is False and after["name"] is None


def test_cli_activate_replaces_the_active_lmdeploy_model(orch):
    first = orch.activate("internvl-a")

    proc = orch.cli("activate-model", "internvl-b", "--json")

    assert proc.returncode == 0, proc.stderr
    second = json.loads(proc.stdout)
    assert (second["stopped"]["name"], second["stopped"]["pid"]) == ("internvl-a", first["pid"])
    assert first["pid"] not in orch.server_pids()
    assert [c["id"] for c in served_models(second["endpoint"])] == ["org/internvl-b"]
    assert {os.getpgid(pid) for pid in orch.server_pids()} == {second["pid"]}  # the new server's group only


# --- remote endpoints ---------------------------------------------------------------------------------


class Remote:
    """A stand-in remote endpoint: answers ``routes[path] = (status, json body or None, headers)`` (404
    otherwise), optionally only with the right Bearer token, and records each request's path and
    Authorization header."""

    def __init__(self, routes: dict[str, tuple[int, object, dict]] | None = None, token: str | None = None):
        self.routes = routes or {}
        self.token = token
        self.seen: list[tuple[str, str | None]] = []
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):  # no access log
                pass

            def do_GET(self):
                remote.seen.append((self.path, self.headers.get("Authorization")))
                if remote.token and self.headers.get("Authorization") != f"Bearer {remote.token}":
                    status, body, headers = 401, {"detail": "unauthorized"}, {}
                else:
                    status, body, headers = remote.routes.get(self.path, (404, {"detail": "Not Found"}, {}))
                raw = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def remote_entry(name: str, base_url: str, **cfg) -> dict:
    return {"name": name, "backend": "lmdeploy", "served_model_id": f"org/{name}",
            "backend_config": {"base_url": base_url, **cfg}}


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """``registry(*entries)``: an isolated registry holding ``entries``, made the configured one."""
    def make(*entries):
        folder = testing.make_registry(tmp_path / "registry", *entries)
        monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", folder)
        return folder
    return make


def health_rows(*args: str):
    result = run_cli("health", *args, "--json")
    return result, {r["name"]: r for r in json.loads(result.stdout)}


def test_activating_a_remote_entry_is_refused_and_starts_nothing(orch):
    from imageworks_models.serving.control import activate, plan_activation
    testing.make_registry(orch.registry, remote_entry("internvl-remote", f"http://127.0.0.1:{closed_port()}"))

    with pytest.raises(NotActivatableError, match="served remotely") as info:
        activate("internvl-remote", settings=orch.settings())
    assert "health lmdeploy" in info.value.hint
    with pytest.raises(NotActivatableError):
        plan_activation("internvl-remote", settings=orch.settings())
    proc = orch.cli("activate-model", "internvl-remote")

    assert proc.returncode == 1
    assert "served remotely" in proc.stderr
    assert orch.server_pids() == []
    assert orch.state() is None
    assert not any(Path(orch.settings().log_dir).glob("*.log"))


def test_activating_a_gguf_entry_is_refused_and_starts_nothing(orch):
    from imageworks_models.serving.control import activate
    testing.make_registry(orch.registry, {"name": "internvl-gguf", "backend": "lmdeploy", "format": "gguf",
                                          "backend_config": {"model_path": str(orch.weights)}})

    with pytest.raises(NotActivatableError, match="GGUF"):
        activate("internvl-gguf", settings=orch.settings())
    assert orch.server_pids() == [] and orch.state() is None


def test_health_reports_each_remote_by_its_protocol(registry):
    with Remote({"/health": (200, None, {})}) as lm, \
         Remote({"/v1/models": (200, {"object": "list", "data": [{"id": "m-1"}, {"id": "m-2"}, {"x": 1}]}, {})}) \
            as oa, \
         Remote({"/v2/health/ready": (200, None, {})}) as tri:
        registry(remote_entry("lm-up", lm.url),  # protocol: lmdeploy by default
                 remote_entry("oa-up", f"{oa.url}/v1/", protocol="openai"),
                 remote_entry("tri-up", tri.url, protocol="Triton"))

        result, rows = health_rows("lmdeploy")

    assert result.exit_code == 0, result.stderr
    assert set(rows) == {"lm-up", "oa-up", "tri-up"}
    assert rows["lm-up"] == {"backend": "lmdeploy", "name": "lm-up", "url": lm.url, "protocol": "lmdeploy",
                             "ok": True, "version": None, "loaded": [], "error": None, "hint": None}
    assert rows["oa-up"]["ok"] is True and rows["oa-up"]["protocol"] == "openai"
    assert rows["oa-up"]["loaded"] == [{"model": "m-1"}, {"model": "m-2"}]
    assert rows["tri-up"]["ok"] is True and rows["tri-up"]["protocol"] == "triton"
    assert lm.seen == [("/health", None)]
    assert oa.seen == [("/v1/models", None)]
    assert tri.seen == [("/v2/health/ready", None)]


def test_health_reports_down_and_unhealthy_remotes(registry):
    port = closed_port()
    with Remote({"/health": (503, None, {})}) as busy, Remote({"/health": (200, None, {})}) as up:
        registry(remote_entry("down", f"http://127.0.0.1:{port}"), remote_entry("busy", busy.url),
                 remote_entry("up", up.url),
                 remote_entry("tri-down", f"http://127.0.0.1:{port}/v1", protocol="triton"))

        named, rows = health_rows("lmdeploy")
        table = run_cli("health", "lmdeploy")
        unnamed = run_cli("health", "--json")

    assert named.exit_code == 1
    assert rows["up"]["ok"] is True
    assert rows["down"]["ok"] is False and "connection refused" in rows["down"]["error"]
    assert rows["down"]["error"].startswith("down: ") and f"127.0.0.1:{port}" in rows["down"]["error"]
    assert rows["down"]["hint"] == "check that the remote server is up and base_url is right"
    assert rows["tri-down"]["ok"] is False and "connection refused" in rows["tri-down"]["error"]
    assert rows["busy"]["ok"] is False and "/health answered 503" in rows["busy"]["error"]
    assert table.exit_code == 1
    assert "lmdeploy (down)" in table.stdout and "lmdeploy (busy)" in table.stdout
    assert "/health answered 503" in table.stderr
    assert unnamed.exit_code == 0  # only a backend named on the command line sets the exit code


@pytest.mark.parametrize("protocol, path", [(None, "/health"), ("openai", "/v1/models"),
                                            ("triton", "/v2/health/ready")])
def test_health_sends_the_token_as_bearer_to_the_configured_endpoint(registry, monkeypatch, protocol, path):
    monkeypatch.setenv("LMD_TOKEN", TOKEN)
    cfg = {"api_key_env": "LMD_TOKEN", **({"protocol": protocol} if protocol else {})}
    with Remote({path: (200, {"data": [{"id": "m"}]}, {})}, token=TOKEN) as remote:
        registry(remote_entry("secure", remote.url, **cfg))

        result, rows = health_rows("lmdeploy")
        table = run_cli("health", "lmdeploy")

    assert result.exit_code == 0, result.stdout
    assert rows["secure"]["ok"] is True
    assert remote.seen == [(path, f"Bearer {TOKEN}")] * 2
    for text in (result.stdout, result.stderr, table.stdout, table.stderr):
        assert TOKEN not in text


def test_health_without_the_token_is_unauthorized_with_a_hint(registry, monkeypatch):
    monkeypatch.delenv("LMD_TOKEN", raising=False)
    with Remote({"/health": (200, None, {})}, token=TOKEN) as remote:
        registry(remote_entry("secure", remote.url, api_key_env="LMD_TOKEN"))

        result, rows = health_rows("lmdeploy")

    assert result.exit_code == 1
    assert remote.seen == [("/health", None)]
    assert rows["secure"]["ok"] is False and "/health answered 401" in rows["secure"]["error"]
    assert "api_key_env" in rows["secure"]["hint"]


@pytest.mark.parametrize("protocol, path", [(None, "/health"), ("openai", "/v1/models"),
                                            ("triton", "/v2/health/ready")])
def test_health_never_follows_a_redirect_nor_sends_the_token_there(registry, monkeypatch, protocol, path):
    monkeypatch.setenv("LMD_TOKEN", TOKEN)
    cfg = {"api_key_env": "LMD_TOKEN", **({"protocol": protocol} if protocol else {})}
    with Remote({path: (200, {"data": [{"id": "stolen"}]}, {})}) as elsewhere:
        target = f"http://localhost:{elsewhere.port}{path}"  # another host name (and port)
        with Remote({path: (302, None, {"Location": target})}) as remote:
            registry(remote_entry("moved", remote.url, **cfg))

            result, rows = health_rows("lmdeploy")
            table = run_cli("health", "lmdeploy")

    assert elsewhere.seen == []  # not followed: the other host got no request, so no token
    assert remote.seen == [(path, f"Bearer {TOKEN}")] * 2
    assert result.exit_code == 1 and table.exit_code == 1
    assert rows["moved"]["ok"] is False and rows["moved"]["loaded"] == []
    assert "not followed" in rows["moved"]["error"]
    for text in (result.stdout, result.stderr, table.stdout, table.stderr):
        assert TOKEN not in text


def test_health_of_a_remote_never_shows_the_token_when_it_is_down(registry, monkeypatch):
    monkeypatch.setenv("LMD_TOKEN", TOKEN)
    registry(remote_entry("down", f"http://127.0.0.1:{closed_port()}", api_key_env="LMD_TOKEN"))

    result, rows = health_rows("lmdeploy")
    table = run_cli("health", "lmdeploy")

    assert rows["down"]["ok"] is False
    for text in (result.stdout, result.stderr, table.stdout, table.stderr):
        assert TOKEN not in text


@pytest.mark.parametrize("base_url", ["file:///etc/passwd", "ftp://gpu-box/models", "gopher://gpu-box:70/",
                                      "http://", "//gpu-box:23333", "http://gpu box:23333", 23333, None])
def test_remote_health_of_a_non_http_base_url_is_an_error_row(base_url):
    from imageworks_models_lmdeploy.checks import remote_health

    row = remote_health({"name": "odd", "backend": "lmdeploy", "backend_config": {"base_url": base_url}})

    assert row["ok"] is False and row["loaded"] == []
    assert row["error"].startswith("odd: ") and "not an http(s) URL" in row["error"]
    assert row["hint"]
    assert "root:" not in json.dumps(row)  # /etc/passwd was not read


def test_remote_health_of_an_unknown_protocol_is_an_error_row():
    from imageworks_models_lmdeploy.checks import remote_health

    row = remote_health(remote_entry("odd", f"http://127.0.0.1:{closed_port()}", protocol="grpc"))

    assert row["ok"] is False and "'grpc' is not one of lmdeploy, openai, triton" in row["error"]


def test_registry_refuses_a_file_base_url(tmp_path):
    from imageworks_models.errors import RegistryError

    with pytest.raises(RegistryError):
        testing.make_registry(tmp_path / "registry", remote_entry("odd", "file:///etc/passwd"))


def hand_edited_registry(tmp_path, monkeypatch, *entries) -> None:
    """A registry whose curated file holds ``entries`` as written by hand (not validated on the way in)."""
    from imageworks_models.registry.store import CURATED_FILE

    folder = Path(testing.make_registry(tmp_path / "registry"))
    (folder / CURATED_FILE).write_text(json.dumps({"schema_version": 1, "entries": list(entries)}))
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(folder))


def test_health_with_a_hand_edited_file_base_url_does_not_report_healthy(tmp_path, monkeypatch):
    hand_edited_registry(tmp_path, monkeypatch,
                         remote_entry("down", f"http://127.0.0.1:{closed_port()}"),
                         remote_entry("odd", "file:///etc/passwd"))

    result = run_cli("health", "lmdeploy", "--json")

    assert result.exit_code != 0
    assert "base_url" in result.stdout + result.stderr


def test_health_never_shows_credentials_from_a_base_url(registry):
    registry(remote_entry("cred", f"http://user:{TOKEN}@127.0.0.1:{closed_port()}"))

    result, rows = health_rows("lmdeploy")
    table = run_cli("health", "lmdeploy")

    assert rows["cred"]["ok"] is False and "credentials" in rows["cred"]["error"]
    for text in (result.stdout, result.stderr, table.stdout, table.stderr):
        assert TOKEN not in text
