"""What a registry entry may put on a model server's command line and in its environment (RELIABILITY S7).

Registry files are edited by hand and shared, so everything taken from them is checked before a server
starts: the command is an argument list (never a shell string), ``extra_args`` cannot take over the options
the orchestrator owns (host, port, model, served name) even through argparse's abbreviations or ``=`` forms,
``--trust-remote-code`` needs the entry's explicit opt-in, ``backend_config.env`` may set only variables on an
allow-list (device selection and tuning knobs; S11) that only the user's own settings can extend, and a
non-loopback ``backend_config.host`` needs the user's explicit choice. Backend plugins call these; nothing here
runs anything.
"""

from __future__ import annotations

import re
import shlex
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator, Mapping

from imageworks_models.errors import UnsafeLaunchError

TRUST_REMOTE_CODE = "--trust-remote-code"
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Variables that make the server's process load or run code other than the server's own: refused even when
# the user's settings allow them, since nothing a registry entry needs comes through them.
_ENV_DENIED_PREFIXES = ("LD_", "DYLD_", "PYTHON", "PERL5", "RUBY")
_ENV_DENIED = frozenset({"PATH", "BASH_ENV", "ENV", "IFS", "SHELLOPTS", "PS4", "GCONV_PATH", "NODE_OPTIONS",
                         "HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS", "JAVA_TOOL_OPTIONS"})
# What backend_config.env may set (S11). Everything else (HOME, OPENSSL_CONF, NCCL_NET_PLUGIN,
# VLLM_LOGGING_CONFIG_PATH, VLLM_PLUGINS... each can point the server at files that run code) is refused
# unless the user's own server_env_allow setting names it. Documented in the README's "Server environment".
ENV_ALLOWED = frozenset({
    # device selection and threads
    "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TOKENIZERS_PARALLELISM",
    "PYTORCH_CUDA_ALLOC_CONF", "NCCL_DEBUG", "NCCL_P2P_DISABLE", "NCCL_IB_DISABLE",
    "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
    "HF_TOKEN",  # a credential, not code: a gated model's server needs it (exports leave it out)
    # vLLM tuning
    "VLLM_ATTENTION_BACKEND", "VLLM_USE_V1", "VLLM_WORKER_MULTIPROC_METHOD", "VLLM_LOGGING_LEVEL",
    "VLLM_ENGINE_ITERATION_TIMEOUT_S", "VLLM_USE_TRITON_FLASH_ATTN", "VLLM_FLASH_ATTN_VERSION",
    "VLLM_ALLOW_LONG_MAX_MODEL_LEN", "VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_OMP_THREADS_BIND",
    "VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_SLEEP_WHEN_IDLE",
    # LMDeploy tuning
    "LMDEPLOY_LOG_LEVEL", "TM_LOG_LEVEL",
    # llama.cpp (ggml) tuning
    "GGML_CUDA_NO_PINNED", "GGML_CUDA_ENABLE_UNIFIED_MEMORY", "GGML_VK_VISIBLE_DEVICES",
    # Ollama tuning
    "OLLAMA_NUM_PARALLEL", "OLLAMA_MAX_LOADED_MODELS", "OLLAMA_KEEP_ALIVE", "OLLAMA_FLASH_ATTENTION",
    "OLLAMA_KV_CACHE_TYPE", "OLLAMA_CONTEXT_LENGTH", "OLLAMA_MAX_QUEUE", "OLLAMA_GPU_OVERHEAD",
    "OLLAMA_SCHED_SPREAD", "OLLAMA_DEBUG", "OLLAMA_LOAD_TIMEOUT",
})


def _user_allowed(key: str, extra: Any) -> bool:
    for item in extra or ():
        item = str(item).strip().upper()
        if item and (key == item or (item.endswith("*") and key.startswith(item[:-1]))):
            return True
    return False


def _text(value: Any, what: str, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UnsafeLaunchError(f"{name}: {what} {value!r} is not text",
                                hint="write it as a JSON string in the registry entry")
    text = str(value)
    if any(ord(c) < 32 and c != "\t" for c in text):
        raise UnsafeLaunchError(f"{name}: {what} {text!r} contains a control character (NUL, newline...)",
                                hint="remove it from the registry entry")
    return text


def check_served_id(served_id: Any, *, name: str) -> str:
    """The served model id, refused when the server would read it as an option (``-h``, ``--trust-remote-code``).

    Raises:
        UnsafeLaunchError: it is empty, not text, has a control character, or starts with ``-``.
    """
    text = _text(served_id, "served_model_id", name)
    if not text.strip():
        raise UnsafeLaunchError(f"{name}: served_model_id is empty", hint="set served_model_id in the curated layer")
    if text.startswith("-"):
        raise UnsafeLaunchError(f"{name}: served_model_id {text!r} starts with '-' and would be read as an option",
                                hint="choose a served id that starts with a letter or digit")
    return text


def check_positional(value: Any, *, what: str, name: str) -> str:
    """A positional argument such as the model path, refused when it would be read as an option."""
    text = _text(value, what, name)
    if not text or text.startswith("-"):
        raise UnsafeLaunchError(f"{name}: {what} {text!r} would be read as an option",
                                hint=f"fix {what} in the registry entry (an absolute path, or ./path)")
    return text


def option_name(token: str) -> str | None:
    """``--Served_Model_Name=x`` -> ``--served-model-name``; ``None`` for values and short options."""
    if not token.startswith("--") or token == "--":
        return None
    return token.split("=", 1)[0].replace("_", "-").lower()


def _matches(option: str, protected: str) -> bool:
    # argparse accepts any unambiguous prefix of a long option (allow_abbrev), so "--hos" is "--host".
    return option == protected or (len(option) > 3 and protected.startswith(option))


def check_extra_args(extra_args: Any, *, name: str, protected: Mapping[str, str],
                     trust_remote_code: bool = False) -> list[str]:
    """``backend_config.extra_args`` as a checked argument list.

    Args:
        extra_args: the entry's value (a list; ``None`` for none).
        name: the entry name, for messages.
        protected: options the orchestrator sets itself, each mapped to where the user should change it
            instead (e.g. ``{"--port": "CHAT_PROXY_VLLM_PORT or backend_config.port"}``).
        trust_remote_code: the entry opted in (``backend_config.trust_remote_code: true``).

    Raises:
        UnsafeLaunchError: not a list of text, a control character, a protected option in any spelling, or
            ``--trust-remote-code`` without the opt-in.
    """
    if extra_args is None:
        return []
    if isinstance(extra_args, str):
        raise UnsafeLaunchError(f"{name}: backend_config.extra_args is one string, not a list of arguments",
                                hint=f"write it as a JSON list, e.g. {shlex.split(extra_args)!r}"
                                if _splits(extra_args) else "write it as a JSON list of strings")
    if not isinstance(extra_args, (list, tuple)):
        raise UnsafeLaunchError(f"{name}: backend_config.extra_args must be a list of arguments",
                                hint='e.g. ["--max-model-len", "4096"]')
    out = []
    if extra_args and not str(extra_args[0]).startswith("-"):
        # it would become another value of the option before it (e.g. a second --served-model-name)
        raise UnsafeLaunchError(f"{name}: backend_config.extra_args must start with an option, not "
                                f"{extra_args[0]!r}", hint='e.g. ["--max-model-len", "4096"]')
    for item in extra_args:
        token = _text(item, "extra_args item", name)
        option = option_name(token)
        if option is not None:
            for owned, where in protected.items():
                if _matches(option, owned):
                    raise UnsafeLaunchError(f"{name}: extra_args may not set {owned} (found {token!r}); "
                                            "the orchestrator owns it", hint=f"set {where} instead")
            if not trust_remote_code and _matches(option, TRUST_REMOTE_CODE):
                raise UnsafeLaunchError(
                    f"{name}: extra_args asks for {TRUST_REMOTE_CODE} (found {token!r}), which runs the model "
                    "repository's own Python code",
                    hint="if you trust that code, set backend_config.trust_remote_code: true in the curated layer "
                         "and drop the flag from extra_args")
        out.append(token)
    return out


def _splits(text: str) -> bool:
    try:
        return bool(shlex.split(text))
    except ValueError:
        return False


def check_env(env: Any, *, name: str, settings: Any = None) -> dict[str, str]:
    """``backend_config.env`` as checked variables for the server (``CUDA_VISIBLE_DEVICES``, ``VLLM_*``...).

    Args:
        env: the entry's ``backend_config.env``.
        name: the entry's name (for messages).
        settings: the user's settings; their ``server_env_allow`` extends :data:`ENV_ALLOWED`. A registry or
            lock file can never extend it.

    Raises:
        UnsafeLaunchError: not a mapping of text, a malformed key, a variable that loads code into the
            server's process (``LD_*``, ``PYTHON*``, ``PATH``...), or one not on the allow-list.
    """
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise UnsafeLaunchError(f"{name}: backend_config.env must be an object of variables",
                                hint='e.g. {"CUDA_VISIBLE_DEVICES": "0"}')
    extra = getattr(settings, "server_env_allow", None) if settings is not None else None
    out = {}
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_KEY.fullmatch(key):
            raise UnsafeLaunchError(f"{name}: backend_config.env key {key!r} is not a variable name",
                                    hint="use letters, digits and _ only")
        upper = key.upper()
        if upper in _ENV_DENIED or upper.startswith(_ENV_DENIED_PREFIXES):
            raise UnsafeLaunchError(f"{name}: backend_config.env may not set {key}: it would load other code "
                                    "into the server", hint=f"remove {key} from the registry entry; set it in the "
                                                            "environment you start imageworks from if you must")
        if key not in ENV_ALLOWED and not _user_allowed(upper, extra):
            raise UnsafeLaunchError(f"{name}: backend_config.env may not set {key}: not on the server environment "
                                    "allow-list", hint=f"remove it from the entry, or, if you trust it, add {key} to "
                                                       "server_env_allow in your imageworks.toml "
                                                       "(IMAGEWORKS_SERVER_ENV_ALLOW)")
        out[key] = _text(value, f"env {key}", name)
    return out


LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    text = host.strip().strip("[]").lower()
    if text in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def check_host(host: str, *, name: str, settings: Any = None, warn: Any = None) -> str:
    """``backend_config.host`` for a server: loopback, or another address only when the user chose it (S11).

    Args:
        host: the address the server is to bind.
        name: the entry's name (for messages).
        settings: the user's settings; ``allow_public_host`` lets a non-loopback host through.
        warn: called with one line when the server will listen beyond this machine (all interfaces says so);
            default: the line goes to stderr.

    Raises:
        UnsafeLaunchError: a non-loopback host without ``allow_public_host``.
    """
    if is_loopback(host):
        return host
    everywhere = host.strip("[]") in ("0.0.0.0", "::", "")
    if not getattr(settings, "allow_public_host", False):
        raise UnsafeLaunchError(f"{name}: backend_config.host {host!r} would make the server reachable from "
                                f"{'every network this machine is on' if everywhere else 'other machines'}",
                                hint="use 127.0.0.1, or allow it explicitly: allow_public_host = true in "
                                     "imageworks.toml (IMAGEWORKS_ALLOW_PUBLIC_HOST=1)")
    if warn is None:
        import sys

        def warn(line: str) -> None:
            sys.stderr.write(line + "\n")
    warn(f"warning: {name}: the server binds {host}"
         + (" (ALL interfaces): anyone who can reach this machine can use it" if everywhere else
            ", reachable from other machines") + "; it has no authentication")
    return host


_PLANNING: "ContextVar[list[str] | None]" = ContextVar("imageworks_planning", default=None)


@contextmanager
def planning() -> Iterator[list[str]]:
    """Render launches for a plan (``activate-model --dry-run``): a model path that is not on disk yet is
    used as it is and collected in the yielded list, instead of refusing; nothing is started in a plan."""
    token = _PLANNING.set([])
    try:
        yield _PLANNING.get()
    finally:
        _PLANNING.reset(token)


def _missing_ok(path: str) -> bool:
    missing = _PLANNING.get()
    if missing is None:
        return False
    missing.append(path)
    return True


def model_path(entry: dict[str, Any], *, backend: str) -> str:
    """What the server loads: ``backend_config.model_path``, else the entry's downloaded files.

    A local path must exist. A value that is not a path (``Qwen/Qwen2.5-VL-7B-Instruct``) is passed on as a
    Hub id, which the server resolves itself.

    Raises:
        ModelNotPulledError: no path is recorded, or the recorded path is not on disk.
        NotActivatableError: the files live in another program's store (``ollama:/...``).
        UnsafeLaunchError: the value would be read as an option or has control characters.
    """
    import os

    from imageworks_models.errors import ModelNotPulledError, NotActivatableError
    from imageworks_models.registry.predicates import is_store_reference

    name = entry["name"]
    configured = (entry.get("backend_config") or {}).get("model_path")
    raw = configured or (entry.get("download") or {}).get("path")
    if not raw:
        raise ModelNotPulledError(f"{name}: no model files are recorded (no download.path or "
                                  "backend_config.model_path)",
                                  hint="download it (imageworks-download download <repo>), or set "
                                       "backend_config.model_path")
    text = check_positional(raw, what="model_path", name=name)
    if is_store_reference(text):
        raise NotActivatableError(f"{name}: {text} is in another program's store; {backend} cannot load it from there",
                                  hint="serve it with its own backend (e.g. ollama), or download the weights")
    from imageworks_models.registry.identity import expand, looks_local as _local

    path = expand(text)
    looks_local = os.path.isabs(path) or _local(text)
    if looks_local and not os.path.exists(path) and _missing_ok(path):
        return path
    if looks_local and not os.path.exists(path):
        raise ModelNotPulledError(f"{name}: its model files are not at {path}",
                                  hint="download them again, or fix backend_config.model_path / download.path")
    if looks_local and os.path.isdir(path) and str(entry.get("format") or "").lower() == "gguf":
        return gguf_file(path, name=name)
    return path


def gguf_file(folder: str, *, name: str) -> str:
    """The GGUF file a server loads from a model folder: its one model file (the first part of a split
    one); an ``mmproj`` projector is not it.

    Raises:
        NotActivatableError: the folder holds no GGUF model file, or several.
    """
    import os
    import re

    from imageworks_models.errors import NotActivatableError

    split = re.compile(r"(?i)-\d{5}-of-\d{5}(?=\.gguf$)")
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(".gguf") and "mmproj" not in f.lower())
    models = sorted({split.sub("", f) for f in files})
    if len(models) != 1:
        raise NotActivatableError(f"{name}: {folder} holds {len(models) or 'no'} GGUF model"
                                  f"{'s' if len(models) != 1 else ''}" + (f" ({', '.join(models[:5])})" if models else ""),
                                  hint="point backend_config.model_path at the .gguf file to serve")
    return os.path.join(folder, files[0])
