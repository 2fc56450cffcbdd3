"""The vLLM backend's ``launch``: the ``vllm serve`` argument list for an entry (RELIABILITY S7), its port
(single-port mode or the entry's), host, endpoint and checked environment.

Entries are plain dicts handed to ``launch`` directly: the curated layer would refuse dynamic fields such as
``download``, and this is about what the command builder does with whatever an entry holds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imageworks_models.errors import ConfigError, ModelNotPulledError, NotActivatableError, UnsafeLaunchError
from imageworks_models.pluginhost.manager import get_plugins
from imageworks_models.testing import test_settings as settings

pytestmark = pytest.mark.usefixtures("imageworks_isolated")  # from imageworks_models.pytest_plugin

LEGACY_CURATED = (Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "imageworks-legacy"
                  / "model_registry.curated.json")
LIMIT_MM = "--limit-mm-per-prompt"


@pytest.fixture
def weights(tmp_path) -> str:
    folder = tmp_path / "weights" / "Qwen" / "Qwen2.5-VL-7B-Instruct-AWQ"
    folder.mkdir(parents=True)
    return str(folder)


def launch(tmp_path, entry, **env):
    return get_plugins().backend("vllm").load().launch(entry, settings=settings(tmp_path, **env))


def entry_of(weights, name="qwen-a", **fields):
    cfg = {"model_path": weights, **fields.pop("backend_config", {})}
    return {"name": name, "backend": "vllm", "backend_config": cfg, **fields}


def tail_after(argv, flag):
    i = argv.index(flag)
    return argv[i + 1]


# --- the command -----------------------------------------------------------------------------------


def test_launch_plain_entry_exact_argv(tmp_path, weights):
    got = launch(tmp_path, entry_of(weights))

    assert got.argv == ("vllm", "serve", weights, "--host", "127.0.0.1", "--port", "8000",
                        "--served-model-name", "qwen-a")
    assert (got.host, got.port, got.served_model_id) == ("127.0.0.1", 8000, "qwen-a")
    assert got.endpoint == "http://127.0.0.1:8000/v1"
    assert got.env == {}
    assert "IMAGEWORKS_VLLM_BIN" in got.not_found_hint


def test_launch_executable_from_imageworks_vllm_bin_split_with_quotes(tmp_path, weights):
    got = launch(tmp_path, entry_of(weights),
                 IMAGEWORKS_VLLM_BIN='"/opt/my venv/bin/python" -m vllm.entrypoints.cli.main')

    assert got.argv[:5] == ("/opt/my venv/bin/python", "-m", "vllm.entrypoints.cli.main", "serve", weights)
    assert got.argv[5:] == ("--host", "127.0.0.1", "--port", "8000", "--served-model-name", "qwen-a")


@pytest.mark.parametrize("value, fragment", [("", "IMAGEWORKS_VLLM_BIN is empty"),
                                             ('"/opt/my venv/bin/vllm', "cannot be split into a command")])
def test_launch_unusable_imageworks_vllm_bin_is_a_config_error(tmp_path, weights, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        launch(tmp_path, entry_of(weights), IMAGEWORKS_VLLM_BIN=value)


def test_launch_served_id_defaults_to_the_entry_name_else_served_model_id(tmp_path, weights):
    assert launch(tmp_path, entry_of(weights, name="gpt-oss-20b_(MXFP4)")).served_model_id == "gpt-oss-20b_(MXFP4)"

    got = launch(tmp_path, entry_of(weights, served_model_id="Qwen/Qwen2.5-VL-7B-Instruct-AWQ"))

    assert got.served_model_id == "Qwen/Qwen2.5-VL-7B-Instruct-AWQ"
    assert tail_after(got.argv, "--served-model-name") == "Qwen/Qwen2.5-VL-7B-Instruct-AWQ"


def test_launch_shell_text_in_the_served_id_arrives_as_one_argument(tmp_path, weights):
    got = launch(tmp_path, entry_of(weights, served_model_id="x; touch /tmp/p"))

    assert got.argv[-2:] == ("--served-model-name", "x; touch /tmp/p")
    assert len(got.argv) == 9
    assert "touch" not in got.argv and "/tmp/p" not in got.argv
    assert got.served_model_id == "x; touch /tmp/p"


@pytest.mark.parametrize("served", ["-h", "--trust-remote-code", "x\n--port 1"])
def test_launch_served_id_read_as_an_option_is_refused(tmp_path, weights, served):
    with pytest.raises(UnsafeLaunchError) as info:
        launch(tmp_path, entry_of(weights, served_model_id=served))

    assert info.value.message.startswith(f"qwen-a: served_model_id {served!r} ")


def test_launch_extra_args_come_last_in_order(tmp_path, weights):
    args = ["--max-model-len", "4096", "--enforce-eager", "--chat-template", "/x/t.jinja"]

    got = launch(tmp_path, entry_of(weights, backend_config={"extra_args": args}))

    assert got.argv[-len(args):] == tuple(args)
    assert got.argv[:-len(args)] == ("vllm", "serve", weights, "--host", "127.0.0.1", "--port", "8000",
                                     "--served-model-name", "qwen-a")


# --- vision ----------------------------------------------------------------------------------------


def test_launch_vision_entry_gets_one_image_per_prompt(tmp_path, weights):
    got = launch(tmp_path, entry_of(weights, capabilities={"vision": True, "text": True}))

    assert got.argv[-2:] == (LIMIT_MM, '{"image":1}')


@pytest.mark.parametrize("capabilities", [None, {}, {"vision": False, "text": True}])
def test_launch_non_vision_entry_gets_no_image_limit(tmp_path, weights, capabilities):
    entry = entry_of(weights)
    if capabilities is not None:
        entry["capabilities"] = capabilities

    assert not any(a.startswith(LIMIT_MM) for a in launch(tmp_path, entry).argv)


@pytest.mark.parametrize("args", [[LIMIT_MM, '{"image":2,"video":0}'], [f'{LIMIT_MM}={{"image":2}}']])
def test_launch_vision_limit_in_extra_args_is_not_duplicated(tmp_path, weights, args):
    got = launch(tmp_path, entry_of(weights, capabilities={"vision": True},
                                    backend_config={"extra_args": args, "limit_mm_per_prompt": {"image": 5}}))

    assert [a for a in got.argv if a.startswith(LIMIT_MM)] == [args[0]]
    assert got.argv[-len(args):] == tuple(args)


@pytest.mark.parametrize("spelling", ["--limit_mm_per_prompt", "--Limit-MM-Per-Prompt"])
def test_launch_vision_limit_in_extra_args_in_another_spelling_is_not_duplicated(tmp_path, weights, spelling):
    got = launch(tmp_path, entry_of(weights, capabilities={"vision": True},
                                    backend_config={"extra_args": [spelling, '{"image":3}']}))

    assert [a for a in got.argv if a.replace("_", "-").lower().startswith(LIMIT_MM)] == [spelling]
    assert got.argv[-2:] == (spelling, '{"image":3}')


def test_launch_vision_limit_in_extra_args_dotted_form_is_not_duplicated(tmp_path, weights):
    got = launch(tmp_path, entry_of(weights, capabilities={"vision": True},
                                    backend_config={"extra_args": [f"{LIMIT_MM}.image", "2"]}))

    assert [a for a in got.argv if a.startswith(LIMIT_MM)] == [f"{LIMIT_MM}.image"]


@pytest.mark.parametrize("limit, expected", [({"image": 2, "video": 0}, '{"image":2,"video":0}'),
                                             ('{"image": 4}', '{"image": 4}')])
def test_launch_vision_limit_overridden_by_backend_config(tmp_path, weights, limit, expected):
    got = launch(tmp_path, entry_of(weights, capabilities={"vision": True},
                                    backend_config={"limit_mm_per_prompt": limit}))

    assert got.argv[-2:] == (LIMIT_MM, expected)
    assert got.argv.count(LIMIT_MM) == 1


# --- remote code -----------------------------------------------------------------------------------


def test_launch_trust_remote_code_opt_in_adds_the_flag_once(tmp_path, weights):
    got = launch(tmp_path, entry_of(weights, backend_config={"trust_remote_code": True}))

    assert got.argv[-3:] == ("--served-model-name", "qwen-a", "--trust-remote-code")
    assert got.argv.count("--trust-remote-code") == 1


@pytest.mark.parametrize("value", [False, "true", 1, None])
def test_launch_without_a_true_opt_in_there_is_no_remote_code(tmp_path, weights, value):
    got = launch(tmp_path, entry_of(weights, backend_config={"trust_remote_code": value}))
    assert "--trust-remote-code" not in got.argv

    with pytest.raises(UnsafeLaunchError) as info:
        launch(tmp_path, entry_of(weights, backend_config={"trust_remote_code": value,
                                                            "extra_args": ["--trust-remote-code"]}))
    assert info.value.message.startswith("qwen-a: extra_args asks for --trust-remote-code")


def test_launch_opt_in_allows_trust_remote_code_in_extra_args(tmp_path, weights):
    got = launch(tmp_path, entry_of(weights, backend_config={"trust_remote_code": True,
                                                             "extra_args": ["--max-model-len", "4096"]}))

    assert got.argv[-3:] == ("--trust-remote-code", "--max-model-len", "4096")


# --- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, owned", [
    (["--port", "1"], "--port"),
    (["--port=1"], "--port"),
    (["--hos", "0.0.0.0"], "--host"),
    (["--served_model_name", "other"], "--served-model-name"),
    (["--serv", "other"], "--served-model-name"),
    (["--model=/other"], "--model"),
    (["--config", "f.yaml"], "--config"),
])
def test_launch_hostile_extra_args_are_refused(tmp_path, weights, args, owned):
    with pytest.raises(UnsafeLaunchError) as info:
        launch(tmp_path, entry_of(weights, backend_config={"extra_args": ["--max-model-len", "4096", *args]}))

    assert info.value.message.startswith(f"qwen-a: extra_args may not set {owned} ")
    assert info.value.hint.startswith("set ")


def test_launch_extra_args_cannot_move_the_server_to_a_unix_socket(tmp_path, weights):
    with pytest.raises(UnsafeLaunchError, match=r"^qwen-a: extra_args .*--uds"):
        launch(tmp_path, entry_of(weights, backend_config={"extra_args": ["--uds", "/tmp/vllm.sock"]}))


def test_launch_extra_args_as_one_string_is_refused_with_the_list_form(tmp_path, weights):
    with pytest.raises(UnsafeLaunchError) as info:
        launch(tmp_path, entry_of(weights, backend_config={"extra_args": "--max-model-len 4096"}))

    assert info.value.message == "qwen-a: backend_config.extra_args is one string, not a list of arguments"
    assert "['--max-model-len', '4096']" in info.value.hint


@pytest.mark.parametrize("env", [{"LD_PRELOAD": "/tmp/evil.so"}, {"PYTHONPATH": "/tmp"}, {"PATH": "/tmp"},
                                 {"A=B": "1"}])
def test_launch_hostile_env_is_refused(tmp_path, weights, env):
    with pytest.raises(UnsafeLaunchError) as info:
        launch(tmp_path, entry_of(weights, backend_config={"env": {"CUDA_VISIBLE_DEVICES": "0", **env}}))

    assert info.value.message.startswith("qwen-a: backend_config.env ")
    assert next(iter(env)) in info.value.message


def test_launch_returns_the_checked_env(tmp_path, weights):
    got = launch(tmp_path, entry_of(weights, backend_config={"env": {"CUDA_VISIBLE_DEVICES": "1", "VLLM_USE_V1": 1}}))

    assert got.env == {"CUDA_VISIBLE_DEVICES": "1", "VLLM_USE_V1": "1"}


@pytest.mark.parametrize("host", ["-x", "--trust-remote-code"])
def test_launch_host_read_as_an_option_is_refused(tmp_path, weights, host):
    with pytest.raises(UnsafeLaunchError, match=r"^qwen-a: backend_config.host .* would be read as an option"):
        launch(tmp_path, entry_of(weights, backend_config={"host": host}))


# --- model files -----------------------------------------------------------------------------------


def test_launch_uses_download_path_when_no_model_path(tmp_path, weights):
    entry = {"name": "qwen-a", "backend": "vllm", "download": {"path": weights}}

    assert launch(tmp_path, entry).argv[2] == weights


def test_launch_model_path_wins_over_download_path(tmp_path, weights):
    other = tmp_path / "other"
    other.mkdir()

    got = launch(tmp_path, entry_of(weights, download={"path": str(other)}))

    assert got.argv[2] == weights


def test_launch_missing_model_files_are_not_pulled(tmp_path):
    with pytest.raises(ModelNotPulledError, match="^qwen-a: its model files are not at "):
        launch(tmp_path, entry_of(str(tmp_path / "gone")))
    with pytest.raises(ModelNotPulledError, match="^qwen-a: no model files are recorded"):
        launch(tmp_path, {"name": "qwen-a", "backend": "vllm"})


def test_launch_store_reference_is_not_activatable(tmp_path):
    with pytest.raises(NotActivatableError, match="vLLM cannot load it"):
        launch(tmp_path, {"name": "qwen-a", "backend": "vllm", "download": {"path": "ollama:/qwen2.5vl:7b"}})


def test_launch_hub_id_is_passed_to_vllm(tmp_path):
    got = launch(tmp_path, {"name": "qwen-a", "backend": "vllm",
                            "backend_config": {"model_path": "Qwen/Qwen2.5-VL-7B-Instruct-AWQ"}})

    assert got.argv[2] == "Qwen/Qwen2.5-VL-7B-Instruct-AWQ"


# --- host, port, endpoint --------------------------------------------------------------------------


@pytest.mark.parametrize("cfg, env, port", [
    ({"port": 9001}, {"CHAT_PROXY_VLLM_PORT": "8123", "CHAT_PROXY_VLLM_SINGLE_PORT": "1"}, 8123),
    ({}, {"CHAT_PROXY_VLLM_PORT": "8123", "CHAT_PROXY_VLLM_SINGLE_PORT": "1"}, 8123),
    ({"port": 9001}, {"CHAT_PROXY_VLLM_PORT": "8123"}, 9001),
    ({"port": 9001}, {"CHAT_PROXY_VLLM_PORT": "8123", "CHAT_PROXY_VLLM_SINGLE_PORT": "0"}, 9001),
    ({}, {"CHAT_PROXY_VLLM_PORT": "8123"}, 8123),
    ({}, {}, 8000),
])
def test_launch_port_rules(tmp_path, weights, cfg, env, port):
    got = launch(tmp_path, entry_of(weights, backend_config=cfg), **env)

    assert got.port == port
    assert tail_after(got.argv, "--port") == str(port)
    assert got.argv.count("--port") == 1
    assert got.endpoint == f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize("host, endpoint_host", [("127.0.0.1", "127.0.0.1"), ("10.1.2.3", "10.1.2.3"),
                                                 ("0.0.0.0", "127.0.0.1"), ("::1", "[::1]")])
def test_launch_binds_backend_config_host(tmp_path, weights, host, endpoint_host):
    # a non-loopback host needs the user's explicit allow_public_host (issue 17, S11)
    got = launch(tmp_path, entry_of(weights, backend_config={"host": host, "port": 9001}),
                 IMAGEWORKS_ALLOW_PUBLIC_HOST="1")

    assert got.host == host
    assert tail_after(got.argv, "--host") == host
    assert got.endpoint == f"http://{endpoint_host}:9001/v1"


@pytest.mark.parametrize("cfg", [{}, {"port": 9001}, {"host": "0.0.0.0", "port": 9001}, {"host": "::1"}])
@pytest.mark.parametrize("env", [{}, {"CHAT_PROXY_VLLM_PORT": "8123"},
                                 {"CHAT_PROXY_VLLM_PORT": "8123", "CHAT_PROXY_VLLM_SINGLE_PORT": "1"}])
def test_launch_endpoint_matches_the_plugin_endpoint(tmp_path, weights, cfg, env):
    entry = entry_of(weights, backend_config=cfg)
    s = settings(tmp_path, **env, IMAGEWORKS_ALLOW_PUBLIC_HOST="1")

    got = get_plugins().backend("vllm").load().launch(entry, settings=s)

    assert got.endpoint == get_plugins().backend("vllm").endpoint(entry, s)
    assert got.endpoint.endswith(f":{got.port}/v1")


# --- the earlier tool's entries --------------------------------------------------------------------


def _legacy_vllm_entries() -> list[dict]:
    if not LEGACY_CURATED.is_file():
        return []
    return [e for e in json.loads(LEGACY_CURATED.read_text(encoding="utf-8")) if e.get("backend") == "vllm"]


LEGACY_VLLM = _legacy_vllm_entries()


def _with_local_weights(entry: dict, folder: str, **cfg) -> dict:
    return {**entry, "backend_config": {**entry["backend_config"], "model_path": folder, **cfg}}


def _asks_remote_code(entry: dict) -> bool:
    return "--trust-remote-code" in entry["backend_config"].get("extra_args", [])


def _legacy_params(remote_code: bool) -> list:
    """The legacy vllm entries that do (or do not) ask for remote code, or one skipped case saying why there are none."""
    chosen = [pytest.param(e, id=e["name"]) for e in LEGACY_VLLM if _asks_remote_code(e) == remote_code]
    return chosen or [pytest.param(None, marks=pytest.mark.skip(
        reason=f"legacy fixtures not found at {LEGACY_CURATED}" if not LEGACY_VLLM else
        f"the legacy fixture has no vllm entry {'asking' if remote_code else 'not asking'} for remote code"))]


def test_legacy_fixture_has_vllm_entries_with_and_without_remote_code():
    if not LEGACY_CURATED.is_file():
        pytest.skip(f"legacy fixtures not found at {LEGACY_CURATED}")
    assert any(_asks_remote_code(e) for e in LEGACY_VLLM)
    assert any(not _asks_remote_code(e) for e in LEGACY_VLLM)


@pytest.mark.parametrize("legacy", _legacy_params(True))
def test_legacy_entries_asking_for_remote_code_are_refused_with_the_opt_in_hint(tmp_path, weights, legacy):
    with pytest.raises(UnsafeLaunchError) as info:
        launch(tmp_path, _with_local_weights(legacy, weights))

    assert info.value.message.startswith(f"{legacy['name']}: extra_args asks for --trust-remote-code")
    assert "backend_config.trust_remote_code: true" in info.value.hint


@pytest.mark.parametrize("legacy", _legacy_params(True))
def test_legacy_entries_asking_for_remote_code_build_once_opted_in(tmp_path, weights, legacy):
    got = launch(tmp_path, _with_local_weights(legacy, weights, trust_remote_code=True))

    assert got.argv[:3] == ("vllm", "serve", weights)
    assert "--trust-remote-code" in got.argv


@pytest.mark.parametrize("legacy", _legacy_params(False))
def test_legacy_entries_without_remote_code_build(tmp_path, weights, legacy):
    cfg = legacy["backend_config"]
    extra = cfg.get("extra_args", [])
    served = legacy.get("served_model_id") or legacy["name"]
    vision_default = [LIMIT_MM, '{"image":1}'] if legacy["capabilities"].get("vision") and LIMIT_MM not in extra \
        else []

    got = launch(tmp_path, _with_local_weights(legacy, weights))

    assert list(got.argv) == ["vllm", "serve", weights, "--host", "127.0.0.1", "--port", str(cfg["port"]),
                              "--served-model-name", served, *vision_default, *extra]
    assert got.endpoint == f"http://127.0.0.1:{cfg['port']}/v1"
    assert "--trust-remote-code" not in got.argv
