"""All settings, read in one place, when used (never frozen at import).

Precedence, lowest first: built-in defaults < config file (``imageworks.toml`` or ``[tool.imageworks]``
in ``pyproject.toml``, or the file named by ``IMAGEWORKS_CONFIG``) < environment < command-line flags.
Every resolved value remembers where it came from, which ``imageworks-models config`` shows.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from imageworks_models.errors import ConfigError

REGISTRY_FILES = ("model_registry.curated.json", "model_registry.discovered.json")
APP_NAME = "imageworks-models"


@dataclass(frozen=True)
class SettingSpec:
    """One setting, declared once: ``config`` prints it, the README's table is generated from it
    (:mod:`imageworks_models.present.readme`)."""

    key: str  # the config-file key and the attribute of Settings
    kind: str  # path | str | int | float | bool | list | table
    env: str | None  # the environment variable, or None (config file only)
    default: Callable[[dict[str, Any], Mapping[str, str]], Any]
    help: str  # what it means, one sentence or two
    shown: str | None = None  # how the README shows a default that depends on the machine (paths)


def _derived_dir(name: str) -> Callable[[dict[str, Any], Mapping[str, str]], Path]:
    # The earlier tool kept configs/, _staging/ and logs/ side by side in one project folder; keep
    # that layout whenever the registry folder is called "configs", else nest inside it.
    def default(resolved: dict[str, Any], env: Mapping[str, str]) -> Path:
        reg = Path(resolved["registry_dir"])
        return reg.parent / name if reg.name == "configs" else reg / name

    return default


def user_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """The per-user data folder (``$XDG_DATA_HOME/imageworks-models``, else ``~/.local/share/...``)."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or os.path.join(env.get("HOME") or str(Path.home()), ".local", "share")
    return Path(base) / APP_NAME


def user_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The per-user cache folder (``$XDG_CACHE_HOME/imageworks-models``, else ``~/.cache/...``)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or str(Path.home()), ".cache")
    return Path(base) / APP_NAME


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec("registry_dir", "path", "IMAGEWORKS_REGISTRY_DIR", lambda r, e: user_data_dir(e) / "configs",
                "Folder holding model_registry.curated.json, .discovered.json and the merged snapshot.",
                shown="./configs if present, else $XDG_DATA_HOME/imageworks-models/configs"),
    SettingSpec("state_dir", "path", "IMAGEWORKS_STATE_DIR", _derived_dir("_staging"),
                "Runtime state (active_vllm.json, gateway.json, gui_registry_actions.json).", shown="<root>/_staging"),
    SettingSpec("log_dir", "path", "IMAGEWORKS_LOG_DIR", _derived_dir("logs"),
                "Structured logs (model_downloader.log) and server logs.", shown="<root>/logs"),
    SettingSpec("cache_dir", "path", "IMAGEWORKS_CACHE_DIR", lambda r, e: user_cache_dir(e),
                "Machine-local caches (the stat cache that lets verify --quick skip unchanged files).",
                shown="$XDG_CACHE_HOME/imageworks-models (~/.cache/...)"),
    SettingSpec("weights_root", "path", "IMAGEWORKS_WEIGHTS_ROOT",
                lambda r, e: Path(e.get("HOME") or Path.home()) / "ai-models" / "weights", "Where downloaded weights go.",
                shown="~/ai-models/weights"),
    SettingSpec("location", "str", "IMAGEWORKS_LOCATION", lambda r, e: "local",
                "Location label recorded on downloads (e.g. linux_wsl)."),
    SettingSpec("locations", "table", None, lambda r, e: {},
                "Extra location labels mapped to weight folders (config file only)."),
    SettingSpec("lock_timeout", "float", "IMAGEWORKS_LOCK_TIMEOUT", lambda r, e: 30.0,
                "Seconds to wait for another writer's lock before giving up."),
    SettingSpec("backup_keep", "int", "IMAGEWORKS_BACKUP_KEEP", lambda r, e: 10,
                "How many timestamped backups of each registry file to keep."),
    SettingSpec("hash_algorithm", "str", "IMAGEWORKS_HASH_ALGORITHM", lambda r, e: "sha256",
                "Hasher for new manifests (sha256, or blake3 when installed); verify uses the recorded one."),
    SettingSpec("hash_workers", "int", "IMAGEWORKS_HASH_WORKERS", lambda r, e: 0,
                "Files hashed in parallel (0: one per usable CPU core)."),
    SettingSpec("hf_endpoint", "str", "HF_ENDPOINT", lambda r, e: "https://huggingface.co",
                "The Hugging Face Hub (or a mirror) downloads come from; http(s) only."),
    SettingSpec("use_aria2", "bool", "IMAGEWORKS_USE_ARIA2", lambda r, e: True,
                "Fetch large files with aria2c (several connections) when it is on PATH."),
    SettingSpec("download_connections", "int", "IMAGEWORKS_DOWNLOAD_CONNECTIONS", lambda r, e: 8,
                "Connections per file for aria2c."),
    SettingSpec("download_connect_timeout", "float", "IMAGEWORKS_DOWNLOAD_CONNECT_TIMEOUT", lambda r, e: 10.0,
                "Seconds to wait for a Hub connection before giving up (D23)."),
    SettingSpec("download_read_timeout", "float", "IMAGEWORKS_DOWNLOAD_READ_TIMEOUT", lambda r, e: 60.0,
                "Seconds a Hub request may go without receiving a byte before it is abandoned (D23)."),
    SettingSpec("download_min_rate", "int", "IMAGEWORKS_DOWNLOAD_MIN_RATE", lambda r, e: 1024,
                "Bytes per second a download must average over download_rate_window; slower is a stall "
                "(0: no floor). The partial file is kept for resume."),
    SettingSpec("download_rate_window", "float", "IMAGEWORKS_DOWNLOAD_RATE_WINDOW", lambda r, e: 60.0,
                "Seconds over which download_min_rate is measured."),
    SettingSpec("max_json_bytes", "int", "IMAGEWORKS_MAX_JSON_BYTES", lambda r, e: 64 * 1024 * 1024,
                "Largest JSON file read (registry layers, backups, models.lock, imports); larger is refused."),
    SettingSpec("server_env_allow", "list", "IMAGEWORKS_SERVER_ENV_ALLOW", lambda r, e: [],
                "More variable names (or NAME_* prefixes) backend_config.env may set for a server, beyond the "
                "built-in allow-list; only your own settings can extend it, never a registry or lock file."),
    SettingSpec("allow_public_host", "bool", "IMAGEWORKS_ALLOW_PUBLIC_HOST", lambda r, e: False,
                "Let backend_config.host be a non-loopback address (a server reachable from the network)."),
    SettingSpec("vllm_port", "int", "CHAT_PROXY_VLLM_PORT", lambda r, e: 8000,
                "The single serving port the orchestrator binds the active model to."),
    SettingSpec("single_port", "bool", "CHAT_PROXY_VLLM_SINGLE_PORT", lambda r, e: False,
                "Serve every orchestrated model on vllm_port, whatever port its entry names (off: the entry's "
                "backend_config.port, else the backend's default)."),
    SettingSpec("vllm_bin", "str", "IMAGEWORKS_VLLM_BIN", lambda r, e: "vllm",
                "The vllm command (split like a shell would, never run by one), e.g. /opt/vllm/bin/vllm."),
    SettingSpec("lmdeploy_bin", "str", "IMAGEWORKS_LMDEPLOY_BIN", lambda r, e: "lmdeploy",
                "The lmdeploy command (split like a shell would, never run by one)."),
    SettingSpec("llamacpp_bin", "str", "IMAGEWORKS_LLAMACPP_BIN", lambda r, e: "llama-server",
                "The llama.cpp server command (split like a shell would, never run by one); when it is the default "
                "and not on PATH, llama-cpp-python's `python -m llama_cpp.server` is used."),
    SettingSpec("llamacpp_stop_grace", "float", "IMAGEWORKS_LLAMACPP_STOP_GRACE", lambda r, e: 3.0,
                "Seconds a llama.cpp server gets to exit after SIGTERM before it is killed (llama_cpp.server "
                "finishes the request it is generating first)."),
    SettingSpec("activation_timeout", "float", "IMAGEWORKS_ACTIVATION_TIMEOUT", lambda r, e: 900.0,
                "Seconds a started server may take to become ready (load weights, compile) before it is stopped."),
    SettingSpec("stop_grace", "float", "IMAGEWORKS_STOP_GRACE", lambda r, e: 15.0,
                "Seconds a server gets to exit after SIGTERM before its whole process group is killed."),
    SettingSpec("server_log_bytes", "int", "IMAGEWORKS_SERVER_LOG_BYTES", lambda r, e: 20 * 1024 * 1024,
                "Most bytes kept of a server's output (logs/<name>.log plus one rotated .log.1)."),
    SettingSpec("ollama_host", "str", "OLLAMA_HOST", lambda r, e: "http://127.0.0.1:11434",
                "Where the Ollama server listens."),
    SettingSpec("ollama_models", "path", "OLLAMA_MODELS", lambda r, e: None,
                "The Ollama store (manifests/, blobs/); unset: ~/.ollama/models, then "
                "/usr/share/ollama/.ollama/models.", shown="unset"),
    SettingSpec("ollama_keep_alive", "str", "IMAGEWORKS_OLLAMA_KEEP_ALIVE", lambda r, e: "-1",
                "How long Ollama keeps an activated model loaded (-1: until stopped; 30m, 3600...)."),
    SettingSpec("ollama_timeout", "float", "IMAGEWORKS_OLLAMA_TIMEOUT", lambda r, e: 300.0,
                "Seconds to wait for Ollama to load or unload a model."),
    SettingSpec("plugins", "list", "IMAGEWORKS_PLUGINS", lambda r, e: None,
                "Allowlist of plugins to load (unset: all; empty: none)."),
    SettingSpec("disable_plugins", "list", "IMAGEWORKS_DISABLE_PLUGINS", lambda r, e: [],
                "Plugins not to load."),
    SettingSpec("nvidia_smi_bin", "str", "IMAGEWORKS_NVIDIA_SMI_BIN", lambda r, e: "nvidia-smi",
                "The nvidia-smi command `fit` reads GPU memory from when NVML (nvidia-ml-py) is not installed."),
    SettingSpec("fit_cuda_context_bytes", "int", "IMAGEWORKS_FIT_CUDA_CONTEXT_BYTES", lambda r, e: 512 << 20,
                "Memory fit: what a GPU server process holds before any model (CUDA context, cuBLAS workspace)."),
    SettingSpec("fit_runtime_bytes", "int", "IMAGEWORKS_FIT_RUNTIME_BYTES", lambda r, e: 2 << 30,
                "Memory fit: vLLM/LMDeploy activations, sampler and CUDA graphs beyond weights and KV cache."),
    SettingSpec("fit_compute_bytes", "int", "IMAGEWORKS_FIT_COMPUTE_BYTES", lambda r, e: 256 << 20,
                "Memory fit: llama.cpp/Ollama compute buffers (scratch for one batch)."),
    SettingSpec("fit_gpu_memory_utilization", "float", "IMAGEWORKS_FIT_GPU_MEMORY_UTILIZATION",
                lambda r, e: 0.9, "Memory fit: vLLM's --gpu-memory-utilization when the entry sets none."),
    SettingSpec("gateway_host", "str", "IMAGEWORKS_GATEWAY_HOST", lambda r, e: "127.0.0.1",
                "Where `gateway` listens; any address but loopback needs an API key (gateway_api_key_file)."),
    SettingSpec("gateway_port", "int", "IMAGEWORKS_GATEWAY_PORT", lambda r, e: 8080,
                "The gateway's port (one OpenAI-compatible endpoint for every model)."),
    SettingSpec("gateway_api_key_file", "path", "IMAGEWORKS_GATEWAY_API_KEY_FILE", lambda r, e: None,
                "A file holding the key clients must send (Authorization: Bearer KEY); required off loopback."),
    SettingSpec("gateway_wait_timeout", "float", "IMAGEWORKS_GATEWAY_WAIT_TIMEOUT", lambda r, e: 600.0,
                "Seconds a request waits for its model to load, for a slot, or for a model to drain, before 503."),
    SettingSpec("gateway_idle_ttl", "float", "IMAGEWORKS_GATEWAY_IDLE_TTL", lambda r, e: 1800.0,
                "Seconds a model the gateway started stays loaded unused (0: until evicted); an entry's "
                "gateway.idle_ttl wins."),
    SettingSpec("gateway_memory_budget", "int", "IMAGEWORKS_GATEWAY_MEMORY_BUDGET", lambda r, e: 0,
                "Bytes the gateway's resident models may hold together (0: the memory fit of free GPU memory or "
                "RAM decides)."),
    SettingSpec("gateway_verify", "str", "IMAGEWORKS_GATEWAY_VERIFY", lambda r, e: "quick",
                "Check a model's files before the gateway starts it: quick (unchanged files not re-hashed), full, "
                "or off."),
    SettingSpec("gateway_max_queue", "int", "IMAGEWORKS_GATEWAY_MAX_QUEUE", lambda r, e: 64,
                "Requests that may wait for a model at its max_concurrency; beyond it: 429."),
    SettingSpec("gateway_keepalive_interval", "float", "IMAGEWORKS_GATEWAY_KEEPALIVE_INTERVAL",
                lambda r, e: 5.0, "Seconds between SSE comment lines a streaming client gets while its model loads."),
    SettingSpec("export_vllm_image", "str", "IMAGEWORKS_EXPORT_VLLM_IMAGE", lambda r, e: "vllm/vllm-openai",
                "export --to production-stack: the vLLM engine image (repository) each model runs in."),
    SettingSpec("export_vllm_tag", "str", "IMAGEWORKS_EXPORT_VLLM_TAG", lambda r, e: "latest",
                "export --to production-stack: the engine image's tag (pin a release, e.g. v0.11.0)."),
    SettingSpec("export_gpu_bytes", "int", "IMAGEWORKS_EXPORT_GPU_BYTES", lambda r, e: 80 << 30,
                "export --to production-stack: memory of one cluster GPU; requestGPU is how many such GPUs the "
                "memory-fit estimate needs."),
    SettingSpec("export_max_gpus", "int", "IMAGEWORKS_EXPORT_MAX_GPUS", lambda r, e: 8,
                "export --to production-stack: most GPUs one engine may ask for (more: the entry is skipped)."),
    SettingSpec("export_request_cpu", "int", "IMAGEWORKS_EXPORT_REQUEST_CPU", lambda r, e: 4,
                "export --to production-stack: CPUs each engine requests."),
    SettingSpec("export_host_memory_bytes", "int", "IMAGEWORKS_EXPORT_HOST_MEMORY_BYTES", lambda r, e: 8 << 30,
                "export --to production-stack: host memory each engine requests beyond its weights."),
    SettingSpec("export_pvc_headroom", "float", "IMAGEWORKS_EXPORT_PVC_HEADROOM", lambda r, e: 0.2,
                "export --to production-stack: storage requested beyond the model's size (0.2: 20% more)."),
    SettingSpec("debug", "bool", "IMAGEWORKS_DEBUG", lambda r, e: False,
                "Print the traceback of an error, and keep failed writes with their traceback in the audit trail."),
)
SPEC_BY_KEY = {s.key: s for s in SPECS}


@dataclass(frozen=True)
class Value:
    value: Any
    origin: str  # "default", "config file <path>", "environment <VAR>", "flag", ...


@dataclass
class Settings:
    """Resolved settings; attribute access gives the value, ``origin(key)`` where it came from."""

    values: dict[str, Value]
    config_file: Path | None = None
    cwd: Path = field(default_factory=Path.cwd)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key].value
        except KeyError:
            raise AttributeError(key) from None

    def origin(self, key: str) -> str:
        return self.values[key].origin


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _coerce(spec: SettingSpec, raw: Any, where: str, base: Path) -> Any:
    def bad(what: str) -> ConfigError:
        return ConfigError(f"{where}: {spec.key} = {raw!r} is not {what}",
                           hint=f"{spec.key}: {spec.help}")

    if raw is None:
        return None
    if spec.kind == "path":
        if not isinstance(raw, (str, os.PathLike)) or not str(raw):
            raise bad("a path")
        p = Path(os.path.expanduser(str(raw)))
        return p if p.is_absolute() else (base / p)
    if spec.kind == "str":
        if not isinstance(raw, str):
            raise bad("a string")
        return raw
    if spec.kind == "int":
        if isinstance(raw, bool):
            raise bad("a whole number")
        try:
            return int(str(raw).strip())
        except ValueError:
            raise bad("a whole number") from None
    if spec.kind == "float":
        if isinstance(raw, bool):
            raise bad("a number")
        try:
            return float(str(raw).strip())
        except ValueError:
            raise bad("a number") from None
    if spec.kind == "bool":
        if isinstance(raw, bool):
            return raw
        s = str(raw).strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise bad("true or false (1/0, yes/no)")
    if spec.kind == "list":
        if isinstance(raw, str):
            return [x.strip() for x in raw.split(",") if x.strip()]
        if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
            return raw
        raise bad("a comma-separated list")
    if spec.kind == "table":
        if not isinstance(raw, dict):
            raise bad("a table")
        return {str(k): _coerce(SettingSpec(k, "path", None, lambda r, e: None, ""), v, where, base)
                for k, v in raw.items()}
    raise AssertionError(spec.kind)


def _find_config_file(env: Mapping[str, str], cwd: Path) -> tuple[Path | None, dict[str, Any]]:
    import tomllib  # only when a config file may exist

    explicit = env.get("IMAGEWORKS_CONFIG")
    if explicit:
        path = Path(os.path.expanduser(explicit))
        if not path.is_file():
            raise ConfigError(f"IMAGEWORKS_CONFIG points to {path}, which is not a file",
                              hint="unset IMAGEWORKS_CONFIG or point it to an imageworks.toml")
        candidates = [path]
    else:
        candidates = [cwd / "imageworks.toml", cwd / "pyproject.toml"]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}", hint="fix the file or remove it") from None
        if path.name == "pyproject.toml":
            table = data.get("tool", {}).get("imageworks")
            if table is None and not explicit:
                continue  # a pyproject.toml without our table is not a config file
            return path, table or {}
        return path, data
    return None, {}


def load_settings(*, flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                  cwd: Path | None = None) -> Settings:
    """Resolve every setting from defaults, config file, environment and flags.

    Args:
        flags: values given on the command line (``None`` values are ignored).
        env: the environment to read (default ``os.environ``, read now).
        cwd: the folder to look for ``imageworks.toml`` and ``./configs`` in (default: current).

    Returns:
        The resolved :class:`Settings`.

    Raises:
        ConfigError: an unknown key in the config file, or a value of the wrong type.
    """
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    config_path, file_values = _find_config_file(env, cwd)
    unknown = sorted(set(file_values) - set(SPEC_BY_KEY))
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(SPEC_BY_KEY), n=1)
        raise ConfigError(f"{config_path}: unknown setting {key!r}",
                          hint=f"did you mean {close[0]!r}?" if close else
                          f"known settings: {', '.join(SPEC_BY_KEY)}")
    resolved: dict[str, Any] = {}
    values: dict[str, Value] = {}
    for spec in SPECS:
        if spec.key in flags:
            value = Value(_coerce(spec, flags[spec.key], "flag", cwd), "flag")
        elif spec.env and spec.env in env:
            value = Value(_coerce(spec, env[spec.env], f"environment {spec.env}", cwd), f"environment {spec.env}")
        elif spec.key in file_values:
            value = Value(_coerce(spec, file_values[spec.key], str(config_path), config_path.parent),
                          f"config file {config_path}")
        elif spec.key == "registry_dir" and any((cwd / "configs" / f).is_file() for f in REGISTRY_FILES):
            value = Value(cwd / "configs", "found ./configs")
        else:
            value = Value(spec.default(resolved, env), "default")
        resolved[spec.key] = value.value
        values[spec.key] = value
    return Settings(values=values, config_file=config_path, cwd=cwd)


def split_command(value: str, *, setting: str) -> list[str]:
    """A configured command (``/opt/vllm/bin/vllm``, ``uv run vllm``) as an argument list, split like a shell
    would split it but never run by one.

    Raises:
        ConfigError: the value is empty or its quotes do not match.
    """
    import shlex

    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise ConfigError(f"{setting} = {value!r} cannot be split into a command: {exc}",
                          hint="quote paths with spaces, e.g. '\"/opt/my models/bin/vllm\"'") from None
    if not argv:
        raise ConfigError(f"{setting} is empty", hint=f"unset {setting} to use the default, or name the executable")
    return argv


def debug_enabled(settings: Settings | None = None) -> bool:
    """The ``debug`` setting: from ``settings`` when they are resolved, else from the environment alone (an error
    may come before any setting could be read, e.g. from a broken config file)."""
    if settings is not None:
        return bool(settings.debug)
    spec = SPEC_BY_KEY["debug"]
    try:
        return bool(_coerce(spec, os.environ.get(spec.env or "", ""), "environment", Path.cwd()))
    except ConfigError:
        return False
