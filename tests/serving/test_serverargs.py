"""serverargs: what a registry entry may put on a model server's command line and in its environment
(RELIABILITY S7), and endpoints.check_base_url / serving_port (S9, the single-port rule).

Every refusal must name the entry (or, where no entry is involved, the setting or field) and say what was wrong.
"""

from __future__ import annotations

import os
import re
from types import SimpleNamespace

import pytest

from imageworks_models.serving.endpoints import check_base_url, serving_port
from imageworks_models.errors import ConfigError, ModelNotPulledError, NotActivatableError, UnsafeLaunchError
from imageworks_models.serving.serverargs import TRUST_REMOTE_CODE, check_env, check_extra_args, check_positional, check_served_id, model_path
from imageworks_models.settings import split_command

NAME = "qwen3-vl-8b-instruct_(FP8)"
# What a vLLM-like backend owns, each with where to change it instead (the plugin's table has the same shape).
PROTECTED = {
    "--host": "backend_config.host",
    "--port": "backend_config.port",
    "--model": "backend_config.model_path",
    "--served-model-name": "served_model_id",
    "--config": "extra_args itself",
}
LEGACY_ARGS = ["--tensor-parallel-size", "1", "--limit-mm-per-prompt", '{"image":1,"video":0}',
               "--chat-template", "/x/t.jinja"]


def extra(args, **kw):
    return check_extra_args(args, name=NAME, protected=PROTECTED, **kw)


# --- extra_args ------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, token, owned", [
    (["--port", "1"], "--port", "--port"),
    (["--port=1"], "--port=1", "--port"),
    (["--PORT", "1"], "--PORT", "--port"),
    (["--Port=1"], "--Port=1", "--port"),
    (["--host", "0.0.0.0"], "--host", "--host"),
    (["--hos", "0.0.0.0"], "--hos", "--host"),  # argparse abbreviation
    (["--ho=0.0.0.0"], "--ho=0.0.0.0", "--host"),
    (["--model", "/other"], "--model", "--model"),
    (["--mod", "/other"], "--mod", "--model"),
    (["--served-model-name", "x"], "--served-model-name", "--served-model-name"),
    (["--served_model_name", "x"], "--served_model_name", "--served-model-name"),  # vLLM reads _ as -
    (["--SERVED_MODEL_NAME=x"], "--SERVED_MODEL_NAME=x", "--served-model-name"),
    (["--serv", "x"], "--serv", "--served-model-name"),
    (["--config", "f.yaml"], "--config", "--config"),
    (["--conf=f.yaml"], "--conf=f.yaml", "--config"),
    (["--max-model-len", "4096", "--port", "1"], "--port", "--port"),  # not only in first place
])
def test_extra_args_cannot_set_an_owned_option_in_any_spelling(args, token, owned):
    with pytest.raises(UnsafeLaunchError) as info:
        extra(args)

    err = info.value
    assert err.message == f"{NAME}: extra_args may not set {owned} (found {token!r}); the orchestrator owns it"
    assert err.hint == f"set {PROTECTED[owned]} instead"


@pytest.mark.parametrize("token", ["--trust-remote-code", "--trust_remote_code", "--TRUST-REMOTE-CODE",
                                   "--trust-remote-code=true", "--trust-remote", "--trust"])
def test_extra_args_cannot_enable_remote_code_without_the_opt_in(token):
    with pytest.raises(UnsafeLaunchError) as info:
        extra(["--max-model-len", "4096", token])

    err = info.value
    assert err.message.startswith(f"{NAME}: ")
    assert TRUST_REMOTE_CODE in err.message and repr(token) in err.message
    assert "backend_config.trust_remote_code: true" in err.hint


@pytest.mark.parametrize("token", ["--trust-remote-code", "--trust-remote"])
def test_extra_args_may_enable_remote_code_when_the_entry_opts_in(token):
    assert extra(["--max-model-len", "4096", token], trust_remote_code=True) == ["--max-model-len", "4096", token]


def test_extra_args_no_trust_remote_code_is_allowed_without_the_opt_in():
    assert extra(["--no-trust-remote-code"]) == ["--no-trust-remote-code"]


def test_extra_args_opt_in_does_not_unlock_owned_options():
    with pytest.raises(UnsafeLaunchError, match="may not set --port"):
        extra(["--trust-remote-code", "--port", "1"], trust_remote_code=True)


@pytest.mark.parametrize("args", [
    LEGACY_ARGS,
    ["--gpu-memory-utilization", "0.87", "--max-model-len", "7168", "--max-num-seqs", "1"],
    ["--enforce-eager", "--dtype", "auto", "--kv-cache-dtype", "fp8", "--swap-space", "4"],
    # longer options that merely start like an owned one are not it
    ["--model-impl", "transformers", "--config-format", "auto", "--model-loader-extra-config", "{}"],
    [],
])
def test_extra_args_legitimate_lists_pass_unchanged(args):
    checked = extra(list(args))

    assert checked == args
    assert all(type(a) is str for a in checked)


def test_extra_args_none_is_no_arguments():
    assert extra(None) == []


def test_extra_args_tuple_is_accepted_as_a_list():
    assert extra(("--max-model-len", "4096")) == ["--max-model-len", "4096"]


def test_extra_args_numbers_are_accepted_as_text():
    assert extra(["--max-model-len", 4096, "--gpu-memory-utilization", 0.9]) == \
        ["--max-model-len", "4096", "--gpu-memory-utilization", "0.9"]


def test_extra_args_one_string_is_refused_with_the_list_form_as_hint():
    with pytest.raises(UnsafeLaunchError) as info:
        extra("--max-model-len 4096 --chat-template '/my templates/t.jinja'")

    err = info.value
    assert err.message == f"{NAME}: backend_config.extra_args is one string, not a list of arguments"
    assert err.hint == "write it as a JSON list, e.g. ['--max-model-len', '4096', '--chat-template', " \
                       "'/my templates/t.jinja']"


def test_extra_args_one_unsplittable_string_is_refused_with_a_generic_hint():
    with pytest.raises(UnsafeLaunchError) as info:
        extra("--chat-template 'unbalanced")

    assert info.value.message.startswith(f"{NAME}: backend_config.extra_args is one string")
    assert info.value.hint == "write it as a JSON list of strings"


@pytest.mark.parametrize("value", [{"--port": 1}, 4096, True])
def test_extra_args_not_a_list_is_refused(value):
    with pytest.raises(UnsafeLaunchError) as info:
        extra(value)

    assert info.value.message == f"{NAME}: backend_config.extra_args must be a list of arguments"
    assert "[" in info.value.hint


@pytest.mark.parametrize("item", [{"port": 1}, True, False, None, ["--port", "1"]])
def test_extra_args_items_that_are_not_text_are_refused(item):
    with pytest.raises(UnsafeLaunchError) as info:
        extra(["--max-model-len", item])

    assert info.value.message == f"{NAME}: extra_args item {item!r} is not text"
    assert "JSON string" in info.value.hint


@pytest.mark.parametrize("item", ["--chat-template\x00/x", "4096\n--port 1", "a\rb", "\x1b[31m"])
def test_extra_args_control_characters_are_refused(item):
    with pytest.raises(UnsafeLaunchError) as info:
        extra(["--max-model-len", item])

    assert info.value.message.startswith(f"{NAME}: extra_args item {item!r} contains a control character")


def test_extra_args_a_tab_is_not_a_control_character_to_refuse():
    assert extra(["--chat-template", "a\tb"]) == ["--chat-template", "a\tb"]


# --- served id -------------------------------------------------------------------------------------


@pytest.mark.parametrize("served", ["-h", "--trust-remote-code", "--port=1", "-"])
def test_served_id_starting_with_a_dash_is_refused(served):
    with pytest.raises(UnsafeLaunchError) as info:
        check_served_id(served, name=NAME)

    assert info.value.message == f"{NAME}: served_model_id {served!r} starts with '-' and would be read as an option"


@pytest.mark.parametrize("served", ["", "   "])
def test_served_id_empty_is_refused(served):
    with pytest.raises(UnsafeLaunchError) as info:
        check_served_id(served, name=NAME)

    assert info.value.message == f"{NAME}: served_model_id is empty"


@pytest.mark.parametrize("served", ["x\x00y", "x\n--trust-remote-code", "x\r"])
def test_served_id_with_control_characters_is_refused(served):
    with pytest.raises(UnsafeLaunchError) as info:
        check_served_id(served, name=NAME)

    assert info.value.message.startswith(f"{NAME}: served_model_id {served!r} contains a control character")


@pytest.mark.parametrize("served", [None, {"id": "x"}, ["x"], True])
def test_served_id_not_text_is_refused(served):
    with pytest.raises(UnsafeLaunchError) as info:
        check_served_id(served, name=NAME)

    assert info.value.message == f"{NAME}: served_model_id {served!r} is not text"


@pytest.mark.parametrize("served", ["x; touch /tmp/p", "$(touch /tmp/p)", "`id`", "a b", "Qwen/Qwen2.5-VL-7B",
                                    "gpt-oss-20b_(MXFP4)", " -h"])
def test_served_id_shell_text_is_accepted_unchanged(served):
    # the command is an argument list: nothing reads these as shell syntax
    assert check_served_id(served, name=NAME) == served


def test_check_positional_refuses_options_and_empty():
    for value in ("-x", "--trust-remote-code", ""):
        with pytest.raises(UnsafeLaunchError) as info:
            check_positional(value, what="backend_config.host", name=NAME)
        assert info.value.message == f"{NAME}: backend_config.host {value!r} would be read as an option"
    assert check_positional("0.0.0.0", what="backend_config.host", name=NAME) == "0.0.0.0"


# --- env -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["LD_PRELOAD", "ld_preload", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONSTARTUP",
                                 "PATH", "BASH_ENV", "ENV", "DYLD_INSERT_LIBRARIES", "NODE_OPTIONS",
                                 "PERL5OPT", "GCONV_PATH"])
def test_env_variables_that_load_code_are_refused(key):
    with pytest.raises(UnsafeLaunchError) as info:
        check_env({"CUDA_VISIBLE_DEVICES": "0", key: "/tmp/evil.so"}, name=NAME)

    err = info.value
    assert err.message == f"{NAME}: backend_config.env may not set {key}: it would load other code into the server"
    assert err.hint.startswith(f"remove {key} from the registry entry")


@pytest.mark.parametrize("key", ["A=B", "HAS SPACE", "", "1ABC", "X-Y", "LD_PRELOAD\x00"])
def test_env_malformed_keys_are_refused(key):
    with pytest.raises(UnsafeLaunchError) as info:
        check_env({key: "1"}, name=NAME)

    assert info.value.message == f"{NAME}: backend_config.env key {key!r} is not a variable name"


def test_env_allowed_variables_pass_as_text():
    env = {"CUDA_VISIBLE_DEVICES": "0,1", "VLLM_USE_V1": 1, "VLLM_ATTENTION_BACKEND": "FLASH_ATTN",
           "HF_HUB_OFFLINE": "1"}

    assert check_env(env, name=NAME) == {"CUDA_VISIBLE_DEVICES": "0,1", "VLLM_USE_V1": "1",
                                         "VLLM_ATTENTION_BACKEND": "FLASH_ATTN", "HF_HUB_OFFLINE": "1"}
    assert check_env(None, name=NAME) == {}


@pytest.mark.parametrize("value", [None, True, {"a": 1}, ["0"], "0\x00", "0\n1"])
def test_env_values_not_text_or_with_control_characters_are_refused(value):
    with pytest.raises(UnsafeLaunchError) as info:
        check_env({"CUDA_VISIBLE_DEVICES": value}, name=NAME)

    assert info.value.message.startswith(f"{NAME}: env CUDA_VISIBLE_DEVICES {value!r} ")


@pytest.mark.parametrize("env", [["CUDA_VISIBLE_DEVICES=0"], "CUDA_VISIBLE_DEVICES=0"])
def test_env_not_an_object_is_refused(env):
    with pytest.raises(UnsafeLaunchError) as info:
        check_env(env, name=NAME)

    assert info.value.message == f"{NAME}: backend_config.env must be an object of variables"


# --- split_command ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value, argv", [
    ("vllm", ["vllm"]),
    ("/opt/vllm/bin/vllm", ["/opt/vllm/bin/vllm"]),
    ("uv run vllm", ["uv", "run", "vllm"]),
    ('"/opt/my venv/bin/python" -m vllm.entrypoints.cli.main',
     ["/opt/my venv/bin/python", "-m", "vllm.entrypoints.cli.main"]),
    ("'/opt/my models/bin/vllm'", ["/opt/my models/bin/vllm"]),
    ("vllm; touch /tmp/p", ["vllm;", "touch", "/tmp/p"]),  # split, never run by a shell: ';' is text
])
def test_split_command_splits_like_a_shell(value, argv):
    assert split_command(value, setting="IMAGEWORKS_VLLM_BIN") == argv


@pytest.mark.parametrize("value", ["", "   ", "\t"])
def test_split_command_empty_is_a_config_error_naming_the_setting(value):
    with pytest.raises(ConfigError) as info:
        split_command(value, setting="IMAGEWORKS_VLLM_BIN")

    assert info.value.message == "IMAGEWORKS_VLLM_BIN is empty"
    assert "unset IMAGEWORKS_VLLM_BIN" in info.value.hint


@pytest.mark.parametrize("value", ['"/opt/my venv/bin/vllm', "'vllm", "vllm \\"])
def test_split_command_unbalanced_quotes_are_a_config_error(value):
    with pytest.raises(ConfigError) as info:
        split_command(value, setting="IMAGEWORKS_VLLM_BIN")

    assert info.value.message.startswith(f"IMAGEWORKS_VLLM_BIN = {value!r} cannot be split into a command")
    assert "quote" in info.value.hint


# --- model_path ------------------------------------------------------------------------------------


def test_model_path_prefers_backend_config_over_download(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    entry = {"name": NAME, "backend_config": {"model_path": str(tmp_path / "a")},
             "download": {"path": str(tmp_path / "b")}}

    assert model_path(entry, backend="vLLM") == str(tmp_path / "a")


def test_model_path_falls_back_to_download_path(tmp_path):
    entry = {"name": NAME, "backend_config": {}, "download": {"path": str(tmp_path)}}

    assert model_path(entry, backend="vLLM") == str(tmp_path)


def test_model_path_none_recorded_is_not_pulled():
    with pytest.raises(ModelNotPulledError) as info:
        model_path({"name": NAME, "backend_config": {"model_path": ""}}, backend="vLLM")

    assert info.value.message.startswith(f"{NAME}: no model files are recorded")
    assert "backend_config.model_path" in info.value.hint


@pytest.mark.parametrize("where", ["model_path", "download"])
def test_model_path_missing_on_disk_is_not_pulled(tmp_path, where):
    gone = str(tmp_path / "gone")
    entry = {"name": NAME, "backend_config": {"model_path": gone}} if where == "model_path" else \
        {"name": NAME, "download": {"path": gone}}

    with pytest.raises(ModelNotPulledError) as info:
        model_path(entry, backend="vLLM")

    assert info.value.message == f"{NAME}: its model files are not at {gone}"


@pytest.mark.parametrize("ref", ["ollama:/qwen2.5vl:7b", "ollama:/x:y", "hf://Qwen/Qwen2-VL"])
def test_model_path_store_reference_is_not_activatable(ref):
    with pytest.raises(NotActivatableError) as info:
        model_path({"name": NAME, "download": {"path": ref}}, backend="vLLM")

    assert info.value.message == f"{NAME}: {ref} is in another program's store; vLLM cannot load it from there"


@pytest.mark.parametrize("path", ["-x", "--trust-remote-code", "/models/x\n--port"])
def test_model_path_that_reads_as_an_option_or_has_control_characters_is_unsafe(path):
    with pytest.raises(UnsafeLaunchError) as info:
        model_path({"name": NAME, "backend_config": {"model_path": path}}, backend="vLLM")

    assert info.value.message.startswith(f"{NAME}: model_path {path!r} ")


@pytest.mark.parametrize("hub_id", ["Qwen/Qwen2-VL", "Qwen/Qwen2.5-VL-7B-Instruct-AWQ", "gpt2"])
def test_model_path_hub_id_passes_through(hub_id):
    assert model_path({"name": NAME, "backend_config": {"model_path": hub_id}}, backend="vLLM") == hub_id


def test_model_path_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "models" / "qwen").mkdir(parents=True)

    got = model_path({"name": NAME, "download": {"path": "~/models/qwen"}}, backend="vLLM")

    assert got == os.path.join(str(tmp_path), "models", "qwen")


def test_model_path_expanded_home_that_is_missing_is_not_pulled(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))

    with pytest.raises(ModelNotPulledError, match=re.escape(f"{NAME}: its model files are not at {tmp_path}")):
        model_path({"name": NAME, "download": {"path": "~/models/qwen"}}, backend="vLLM")


# --- base_url (S9) ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://x", "javascript:alert(1)", "http://", "https://",
                                 "//h:1/v1", "h:1", "", "http://h x/v1", "http://h/\x00", None, 8000,
                                 ["http://h"]])
def test_base_url_other_schemes_or_no_host_are_refused(url):
    with pytest.raises(ConfigError) as info:
        check_base_url(url)

    assert info.value.message == f"backend_config.base_url {url!r} is not an http(s) URL"
    assert "http://host:port" in info.value.hint


@pytest.mark.parametrize("url", ["http://user:pw@h", "https://token@h/v1", "http://:pw@h:1"])
def test_base_url_with_credentials_is_refused_without_echoing_them(url):
    with pytest.raises(ConfigError) as info:
        check_base_url(url)

    assert "carries credentials" in info.value.message
    assert "pw" not in info.value.message and "token" not in info.value.message
    assert "api_key_env" in info.value.hint


@pytest.mark.parametrize("url", ["ftp://user:s3cret@h", "https://user:s3cret@h x"])
def test_base_url_refused_for_its_scheme_never_prints_its_credentials(url):
    with pytest.raises(ConfigError) as info:
        check_base_url(url)

    assert "s3cret" not in info.value.message


@pytest.mark.parametrize("url, expected", [
    ("http://h:1/v1", "http://h:1/v1"),
    ("https://h", "https://h"),
    ("  https://remote.example/v1/  ", "https://remote.example/v1/"),
    ("http://[::1]:8000", "http://[::1]:8000"),
    ("HTTP://h:8000", "HTTP://h:8000"),
])
def test_base_url_http_and_https_are_accepted(url, expected):
    assert check_base_url(url) == expected


# --- serving_port ----------------------------------------------------------------------------------


@pytest.mark.parametrize("single, cfg, expected", [
    (False, {"port": 9001}, 9001),  # off: the entry's port
    (False, {}, 7000),  # off, none in the entry: the backend's default
    (False, None, 7000),
    (True, {"port": 9001}, 8123),  # on: vllm_port, whatever the entry says
    (True, {}, 8123),
])
def test_serving_port_single_port_mode_overrides_the_entry(single, cfg, expected):
    settings = SimpleNamespace(single_port=single, vllm_port=8123)

    assert serving_port(cfg, settings, default_port=7000) == expected


def test_serving_port_from_real_settings(tmp_path):
    from imageworks_models.testing import test_settings

    off = test_settings(tmp_path, CHAT_PROXY_VLLM_PORT="8123")
    on = test_settings(tmp_path, CHAT_PROXY_VLLM_PORT="8123", CHAT_PROXY_VLLM_SINGLE_PORT="1")

    assert off.single_port is False
    assert serving_port({"port": 9001}, off, default_port=off.vllm_port) == 9001
    assert serving_port({}, off, default_port=off.vllm_port) == 8123
    assert serving_port({"port": 9001}, on, default_port=on.vllm_port) == 8123
