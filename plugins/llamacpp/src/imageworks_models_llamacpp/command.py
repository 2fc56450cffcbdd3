"""The llama.cpp server command line for an entry, as an argument list (RELIABILITY S7).

Two servers speak the same OpenAI API: llama.cpp's own ``llama-server`` (the ``llamacpp_bin`` setting, found on
``PATH`` by default) and llama-cpp-python's ``python -m llama_cpp.server``, used when ``llamacpp_bin`` is left
at its default and no ``llama-server`` is on ``PATH``. Their options are spelled differently; the entry's
``backend_config`` says what it wants once:

- ``model_path``: a ``.gguf`` file, a split GGUF's first shard (``-00001-of-0000N.gguf``; every shard must be
  there), or a folder holding one model (plus ``mmproj*.gguf``); default: the entry's ``download.path``, which
  for an entry imported from the Ollama store is its model blob.
- ``mmproj``: the vision projector; default: the folder's ``mmproj*.gguf``, or the Ollama projector blob
  (``metadata.ollama.projector_digest``); ``false`` serves without one.
- ``ctx_size``, ``n_gpu_layers``, ``threads``, ``parallel`` (llama-server only: llama_cpp.server serves one
  request at a time): whole numbers.
- ``chat_template_file``: a template that overrides the one in the GGUF (llama-server: any Jinja file;
  llama_cpp.server: a ``tokenizer_config.json``-style JSON file); ``chat_format``: llama_cpp.server's named
  chat format (its vision formats too, default ``mtmd`` with a projector).
- ``host``, ``port``, ``extra_args``, ``env``, as for the other backends.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from imageworks_models.api import local_base_url, serving_port
from imageworks_models.api import ModelNotPulledError, NotActivatableError, UnsafeLaunchError
from imageworks_models.api import Launch
from imageworks_models.api import (check_env, check_extra_args, check_host, check_positional, check_served_id, model_path)
from imageworks_models.api import split_command

from .plugin import LLAMACPP_PORT

log = logging.getLogger("imageworks_models")

LLAMA_SERVER = "llama-server"
PYTHON_SERVER = "llama_cpp.server"
SPLIT = re.compile(r"(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf", re.IGNORECASE)
DIGEST = re.compile(r"sha256[:-]([0-9a-f]{64})")
# backend_config key -> (llama-server option, llama_cpp.server option or None, lowest value)
NUMBERS = {"ctx_size": ("--ctx-size", "--n_ctx", 0), "n_gpu_layers": ("--n-gpu-layers", "--n_gpu_layers", -1),
           "threads": ("--threads", "--n_threads", 1), "parallel": ("--parallel", None, 1)}
_WHERE = {"host": "backend_config.host", "port": "backend_config.port (or CHAT_PROXY_VLLM_PORT with "
          "CHAT_PROXY_VLLM_SINGLE_PORT=1)", "model": "backend_config.model_path", "alias": "served_model_id",
          "mmproj": "backend_config.mmproj", "key": "nothing: the orchestrator's readiness check sends no API key"}
# Options the orchestrator sets, or that would load another model or change where the server listens.
PROTECTED = {
    LLAMA_SERVER: {"--host": _WHERE["host"], "--port": _WHERE["port"], "--model": _WHERE["model"],
                   "--model-url": _WHERE["model"], "--hf-repo": _WHERE["model"], "--hf-file": _WHERE["model"],
                   "--docker-repo": _WHERE["model"], "--models-dir": _WHERE["model"], "--alias": _WHERE["alias"],
                   "--mmproj": _WHERE["mmproj"], "--mmproj-url": _WHERE["mmproj"], "--api-key": _WHERE["key"],
                   "--api-key-file": _WHERE["key"], "--reuse-port": _WHERE["port"]},
    PYTHON_SERVER: {"--host": _WHERE["host"], "--port": _WHERE["port"], "--model": _WHERE["model"],
                    "--model-alias": _WHERE["alias"], "--clip-model-path": _WHERE["mmproj"],
                    "--hf-model-repo-id": _WHERE["model"], "--api-key": _WHERE["key"],
                    "--config-file": "extra_args itself (a config file sets host, port and models)"},
}
# llama-server's short spellings of those (its parser has no abbreviations, but has these).
SHORT = {"-m": "model", "-mu": "model", "-hf": "model", "-hfr": "model", "-hff": "model", "-dr": "model",
         "-a": "alias", "-mm": "mmproj", "-mmu": "mmproj"}
# Environment variables the servers read as settings (llama-server's LLAMA_ARG_*, pydantic-settings' names in
# llama_cpp.server, where HOST and PORT even override the command line): an entry's env may not set them.
ENV_OWNED = {"HOST", "PORT", "CONFIG_FILE", "MODEL", "MODEL_ALIAS", "CLIP_MODEL_PATH", "HF_MODEL_REPO_ID", "API_KEY",
             "LLAMA_ARG_HOST", "LLAMA_ARG_PORT", "LLAMA_ARG_MODEL", "LLAMA_ARG_MODEL_URL", "LLAMA_ARG_HF_REPO",
             "LLAMA_ARG_HF_FILE", "LLAMA_ARG_ALIAS", "LLAMA_ARG_MMPROJ", "LLAMA_ARG_MMPROJ_URL", "LLAMA_API_KEY"}
NOT_FOUND_HINT = ("install llama.cpp's llama-server (on PATH, or set IMAGEWORKS_LLAMACPP_BIN), or llama-cpp-python's "
                  "server: uv sync --group engine (see the README)")


def server_command(settings) -> tuple[list[str], str]:
    """``(command, flavour)``: ``llamacpp_bin`` split into arguments, or ``python -m llama_cpp.server`` when the
    setting is the default and no ``llama-server`` is on ``PATH`` while llama-cpp-python is installed here.

    Raises:
        ConfigError: the setting cannot be split into a command.
    """
    command = split_command(settings.llamacpp_bin, setting="IMAGEWORKS_LLAMACPP_BIN")
    if settings.origin("llamacpp_bin") == "default" and shutil.which(command[0]) is None and _have_python_server():
        command = [sys.executable, "-m", PYTHON_SERVER]
    flavour = PYTHON_SERVER if PYTHON_SERVER in command else LLAMA_SERVER
    return command, flavour


def _have_python_server() -> bool:
    from importlib.util import find_spec

    return find_spec("llama_cpp") is not None  # finds the package without importing it (no library load)


def _number(cfg: dict[str, Any], key: str, lowest: int, name: str) -> int | None:
    value = cfg.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise UnsafeLaunchError(f"{name}: backend_config.{key} {value!r} is not a whole number >= {lowest}",
                                hint="fix it in the curated layer")
    return value


def _existing(value: Any, *, what: str, name: str) -> Path:
    path = Path(os.path.expanduser(check_positional(value, what=what, name=name)))
    if not path.is_file():
        raise ModelNotPulledError(f"{name}: {what} {path} is not a file",
                                  hint=f"fix backend_config.{what.split('.')[-1]} in the curated layer")
    return path


def _is_projector(path: Path) -> bool:
    return "mmproj" in path.name.lower()


def model_file(entry: dict[str, Any]) -> Path:
    """The GGUF file to load: the given file, the first shard of a split model, or a folder's one model.

    Raises:
        ModelNotPulledError: no model file, or a split model with a shard missing.
        NotActivatableError: a folder holding several models (say which in ``backend_config.model_path``).
        UnsafeLaunchError: the recorded path would be read as an option.
    """
    name = entry["name"]
    path = Path(model_path(entry, backend="llama.cpp"))
    if path.is_dir():
        ggufs = sorted(p for p in path.iterdir() if p.suffix.lower() == ".gguf" and p.is_file()
                       and not _is_projector(p))
        models = sorted({_first_shard(p) for p in ggufs})
        if not models:
            raise ModelNotPulledError(f"{name}: {path} holds no .gguf model file",
                                      hint="download the GGUF weights, or set backend_config.model_path to the file")
        if len(models) > 1:
            raise NotActivatableError(f"{name}: {path} holds several GGUF models "
                                      f"({', '.join(p.name for p in models)})",
                                      hint="set backend_config.model_path to the one to serve")
        path = models[0]
    elif not path.is_file():
        raise ModelNotPulledError(f"{name}: {path} is not a GGUF file or a folder of them",
                                  hint="download it again, or fix backend_config.model_path / download.path")
    return _check_shards(path, name)


def _first_shard(path: Path) -> Path:
    match = SPLIT.fullmatch(path.name)
    if not match:
        return path
    return path.with_name(f"{match['stem']}-00001-of-{match['count']}.gguf")


def _check_shards(path: Path, name: str) -> Path:
    """A split model's first shard, after checking that every shard is there (llama.cpp finds the others by
    name and would fail only after loading part of the model)."""
    match = SPLIT.fullmatch(path.name)
    if not match:
        return path
    count = int(match["count"])
    shards = [path.with_name(f"{match['stem']}-{i:05d}-of-{match['count']}.gguf") for i in range(1, count + 1)]
    missing = [s.name for s in shards if not s.is_file()]
    if count < 1 or missing:
        raise ModelNotPulledError(f"{name}: the split GGUF {shards[0].name if shards else path.name} is missing "
                                  f"{len(missing)} of its {count} shards ({', '.join(missing[:3])}"
                                  f"{', ...' if len(missing) > 3 else ''}) in {path.parent}",
                                  hint="download the missing shards (imageworks-download download <repo> --force)")
    return shards[0]


def projector_file(entry: dict[str, Any], model: Path) -> Path | None:
    """The vision projector to load with ``model``, or ``None``.

    Raises:
        ModelNotPulledError: a configured or recorded projector is not on disk.
        NotActivatableError: a folder holds several projectors and none is configured.
    """
    name = entry["name"]
    cfg = entry.get("backend_config") or {}
    given = cfg.get("mmproj")
    if given is False:
        return None
    if given is not None:
        return _existing(given, what="backend_config.mmproj", name=name)
    digest = ((entry.get("metadata") or {}).get("ollama") or {}).get("projector_digest")
    if isinstance(digest, str) and DIGEST.fullmatch(digest):
        # an Ollama blob: the projector is the blob beside the model blob, named by its digest (read-only, in place)
        blob = model.parent / f"sha256-{DIGEST.fullmatch(digest).group(1)}"
        if not blob.is_file():
            raise ModelNotPulledError(f"{name}: its projector blob {blob} is missing from the Ollama store",
                                      hint=f"ollama pull {entry.get('served_model_id') or name}")
        return blob
    if not _is_folder_model(entry):
        return None
    found = sorted(p for p in model.parent.iterdir() if p.suffix.lower() == ".gguf" and _is_projector(p)
                   and p.is_file())
    if len(found) > 1:
        raise NotActivatableError(f"{name}: {model.parent} holds several projectors "
                                  f"({', '.join(p.name for p in found)})",
                                  hint="set backend_config.mmproj to the one to use (or false for none)")
    return found[0] if found else None


def _is_folder_model(entry: dict[str, Any]) -> bool:
    return Path(os.path.expanduser(model_path(entry, backend="llama.cpp"))).is_dir()


def _check_args(extra: list[str], flavour: str, name: str) -> list[str]:
    for token in extra:
        kind = SHORT.get(token.split("=", 1)[0]) if flavour == LLAMA_SERVER else None
        if kind:
            raise UnsafeLaunchError(f"{name}: extra_args may not set {token!r}; the orchestrator owns it",
                                    hint=f"set {_WHERE[kind]} instead")
    return extra


def _check_env(env: Any, name: str, settings: Any = None) -> dict[str, str]:
    checked = check_env(env, name=name, settings=settings)  # the allow-list and the user's extension (S11)
    for key in checked:
        if key.upper() in ENV_OWNED:
            raise UnsafeLaunchError(f"{name}: backend_config.env may not set {key}: the llama.cpp server reads it as "
                                    "a setting the orchestrator owns (host, port, model, alias, key)",
                                    hint=f"remove {key} from the registry entry")
    return checked


def build_launch(entry: dict[str, Any], *, settings) -> Launch:
    """``llama-server --model F --host H --port P --alias ID --jinja [--mmproj M] [--ctx-size N] [--n-gpu-layers N]
    [--threads N] [--parallel N] [--chat-template-file T] [extra_args...]``, or ``python -m llama_cpp.server
    --model F --host H --port P --model_alias ID [--n_ctx N] [--n_gpu_layers N] [--n_threads N] [--chat_format C
    --clip_model_path M] [extra_args...]``. See the module docstring for ``backend_config``.

    Raises:
        UnsafeLaunchError, ModelNotPulledError, NotActivatableError, ConfigError.
    """
    name = entry["name"]
    cfg = entry.get("backend_config") or {}
    command, flavour = server_command(settings)
    served = check_served_id(entry.get("served_model_id") or name, name=name)
    host = check_host(check_positional(cfg.get("host") or "127.0.0.1", what="backend_config.host", name=name),
                      name=name, settings=settings)
    port = serving_port(cfg, settings, default_port=LLAMACPP_PORT)
    numbers = {key: _number(cfg, key, lowest, name) for key, (_, _, lowest) in NUMBERS.items()}
    extra = _check_args(check_extra_args(cfg.get("extra_args"), name=name, protected=PROTECTED[flavour],
                                         trust_remote_code=False), flavour, name)
    env = _check_env(cfg.get("env"), name, settings)
    model = model_file(entry)
    projector = projector_file(entry, model)
    template = cfg.get("chat_template_file")
    template = _existing(template, what="backend_config.chat_template_file", name=name) if template else None
    chat_format = cfg.get("chat_format")
    if chat_format is not None:
        chat_format = check_positional(chat_format, what="backend_config.chat_format", name=name)
    argv = [*command, "--model", str(model), "--host", host, "--port", str(port)]
    if flavour == LLAMA_SERVER:
        argv += ["--alias", served, "--jinja"]
        if projector:
            argv += ["--mmproj", str(projector)]
        for key, (option, _, _) in NUMBERS.items():
            if numbers[key] is not None:
                argv += [option, str(numbers[key])]
        if template:
            argv += ["--chat-template-file", str(template)]
        if chat_format:
            log.warning("%s: backend_config.chat_format is llama_cpp.server's; llama-server uses the GGUF's template "
                        "(or backend_config.chat_template_file)", name)
    else:
        argv += ["--model_alias", served]
        for key, (_, option, _) in NUMBERS.items():
            if numbers[key] is not None and option:
                argv += [option, str(numbers[key])]
        if numbers["parallel"] is not None:
            log.warning("%s: backend_config.parallel needs llama-server; llama_cpp.server serves one request at a "
                        "time", name)
        if template:
            if template.suffix.lower() != ".json":
                raise NotActivatableError(f"{name}: llama_cpp.server cannot read the chat template {template} (it "
                                          "takes a tokenizer_config.json-style JSON file)",
                                          hint="install llama-server, or point chat_template_file at a JSON file "
                                               "with a chat_template key")
            argv += ["--chat_format", "hf-tokenizer-config", "--hf_tokenizer_config_path", str(template)]
        elif projector:
            argv += ["--chat_format", chat_format or "mtmd", "--clip_model_path", str(projector)]
        elif chat_format:
            argv += ["--chat_format", chat_format]
        # llama_cpp.server takes HOST and PORT from the environment over its own options (pinned here to what
        # the orchestrator checks), and loads a CONFIG_FILE named there instead of the model it is given.
        if "CONFIG_FILE" in os.environ:
            raise NotActivatableError(f"{name}: the environment sets CONFIG_FILE={os.environ['CONFIG_FILE']}, which "
                                      "llama_cpp.server would load instead of this entry's model",
                                      hint="unset CONFIG_FILE in the shell you run imageworks from")
        env = {**env, "HOST": host, "PORT": str(port)}
    argv += extra
    return Launch(argv=tuple(argv), host=host, port=port, served_model_id=served,
                  endpoint=local_base_url({**cfg, "host": host}, settings, default_port=LLAMACPP_PORT),
                  env=env, not_found_hint=NOT_FOUND_HINT, stop_grace=settings.llamacpp_stop_grace)
