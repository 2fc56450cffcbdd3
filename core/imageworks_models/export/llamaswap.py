"""llama-swap's ``config.yaml``, written from our launch plans and read back into curated entries.

Follows llama-swap's documented config (mostlygeek/llama-swap ``config.example.yaml`` and
``docs/configuration.md`` at ``LLAMA_SWAP_SOURCE``). One model per entry::

    models:
      <entry name>:
        cmd: <the backend's launch argv, shell-quoted, with ${PORT} where the port goes>
        proxy: http://127.0.0.1:${PORT}
        checkEndpoint: /health          # /v1/models for llama_cpp.server, which has no /health
        ttl: <gateway idle_ttl>         # left out: llama-swap's globalTTL
        useModelName: <served id>       # when it is not the entry name (vLLM checks the name it is sent)
        aliases: [<entry aliases>, <served id>]
        env: ["NAME=value", ...]        # the launch's checked env, without credentials
        concurrencyLimit: <gateway max_concurrency>
    groups:                             # residency: pinned models stay, the others swap one at a time
      pinned: {swap: false, exclusive: false, persistent: true, members: [...]}
      on-demand: {swap: true, exclusive: false, members: [...]}
    hooks: {on_startup: {preload: [<gateway preload>]}}

``groups`` is the top-level key every llama-swap release reads (newer ones also accept
``routing.router.settings.groups``; import reads both). The command is the same argument list
``activate-model`` would run, built by the backend plugin under the same checks (RELIABILITY S7), so a config
never holds what the orchestrator would refuse.

Import maps each model's command to a backend (``llama-server`` / ``python -m llama_cpp.server`` -> llamacpp,
``vllm serve`` -> vllm, ``lmdeploy serve api_server`` -> lmdeploy), the options we model to their
``backend_config`` fields, and keeps every other option as ``extra_args`` only when the launch rules allow it;
the rest (a protected option, remote code, a credential in ``env``, an unknown program) is reported.
"""

from __future__ import annotations

from imageworks_models.plugin.protocols import ServerBackend

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

LLAMA_SWAP_SOURCE = "commit 0bdb372 (v250+)"
MAX_BYTES = 4 << 20
MAX_DEPTH = 64
PORT_FLAGS = ("--port", "--server-port")
PINNED_GROUP, ON_DEMAND_GROUP = "pinned", "on-demand"
MACRO = re.compile(r"\$\{([A-Za-z0-9_-]+)\}")


class Skip(Exception):
    """An entry llama-swap cannot run from here; the message says why."""


# -- export --------------------------------------------------------------------------------------------


def model_config(entry: dict[str, Any], *, settings, plugins) -> tuple[dict[str, Any], list[str]]:
    """One ``models.<id>`` item for ``entry`` and notes on what was left out.

    Raises:
        Skip: no launch plan here (Ollama, remote, a backend without launch).
        ImageworksError: the backend's launch rules refuse the entry.
    """
    from imageworks_models.serving.serverargs import planning
    from imageworks_models.serving.control import backend_impl
    from imageworks_models.export.common import check_no_credentials, is_secret, policy

    name = entry["name"]
    backend = entry.get("backend") or ""
    if (entry.get("backend_config") or {}).get("base_url"):
        raise Skip("a remote endpoint (backend_config.base_url): llama-swap starts local servers")
    impl = backend_impl(backend, plugins)
    if not isinstance(impl, ServerBackend):
        raise Skip(f"the {backend} backend loads models itself (no server command to give llama-swap)")
    with planning():
        launch = impl.launch(entry, settings=settings)
    argv = list(launch.argv)
    for i, token in enumerate(argv[:-1]):
        if token in PORT_FLAGS and argv[i + 1] == str(launch.port):
            argv[i + 1] = "${PORT}"
    env = dict(launch.env)
    if env.get("PORT") == str(launch.port):  # llama_cpp.server reads its port from the environment
        env["PORT"] = "${PORT}"
    notes = []
    for key in list(env):
        if is_secret(key, env[key]):
            notes.append(f"env {key} left out: it looks like a credential (set it where llama-swap runs)")
            del env[key]
    if "${PORT}" not in argv:
        raise Skip("its command has no port option to give llama-swap's ${PORT}")
    texts = [*argv, *env.values()]
    if any("${" in t and t != "${PORT}" for t in argv) or \
            any("${" in k or ("${" in v and (k, v) != ("PORT", "${PORT}")) for k, v in env.items()):
        raise Skip("its command holds '${', which llama-swap would read as a macro")
    check_no_credentials(entry, [*texts, *(entry.get("aliases") or [])])
    # ${PORT} unquoted, as llama-swap's own examples write it (it is replaced before the command is split)
    cmd = " ".join(t if t == "${PORT}" else shlex.quote(t) for t in argv)
    item: dict[str, Any] = {"cmd": cmd, "proxy": "http://127.0.0.1:${PORT}",
                            "checkEndpoint": "/v1/models" if "llama_cpp.server" in argv else "/health"}
    rules = policy(entry, settings)
    if rules["idle_ttl"] is not None:
        item["ttl"] = int(-(-rules["idle_ttl"] // 1))  # llama-swap counts whole seconds
    served = launch.served_model_id
    if served and served != name:
        item["useModelName"] = served
    aliases = [a for a in (entry.get("aliases") or []) if isinstance(a, str) and a and a != name]
    if served and served != name and served not in aliases:
        aliases.append(served)
    if aliases:
        item["aliases"] = aliases
    if env:
        item["env"] = [f"{k}={v}" for k, v in env.items()]
    if rules["max_concurrency"]:
        item["concurrencyLimit"] = rules["max_concurrency"]
    return item, notes


def config(entries: list[dict[str, Any]], *, settings, plugins) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                                         list[dict[str, Any]]]:
    """The llama-swap config for ``entries``.

    Returns:
        ``(config, exported, skipped)``: ``exported`` is ``[{"name", "notes"}]``, ``skipped`` ``[{"name", "reason"}]``.
    """
    from imageworks_models.errors import ImageworksError
    from imageworks_models.export.common import policy

    models: dict[str, Any] = {}
    exported, skipped = [], []
    pinned, swapping, preload = [], [], []
    for entry in entries:
        try:
            item, notes = model_config(entry, settings=settings, plugins=plugins)
            rules = policy(entry, settings)
        except Skip as why:
            skipped.append({"name": entry["name"], "reason": str(why)})
            continue
        except ImageworksError as exc:
            skipped.append({"name": entry["name"], "reason": exc.message})
            continue
        models[entry["name"]] = item
        exported.append({"name": entry["name"], "notes": notes})
        (pinned if rules["pinned"] else swapping).append(entry["name"])
        if rules["preload"]:
            preload.append(entry["name"])
    _unique_aliases(models, exported)
    doc: dict[str, Any] = {"healthCheckTimeout": int(min(max(settings.activation_timeout, 15), 3600)),
                           "models": models}
    groups = {}
    if pinned:
        groups[PINNED_GROUP] = {"swap": False, "exclusive": False, "persistent": True, "members": pinned}
    if swapping:
        groups[ON_DEMAND_GROUP] = {"swap": True, "exclusive": False, "members": swapping}
    if groups:
        doc["groups"] = groups
    if preload:
        doc["hooks"] = {"on_startup": {"preload": preload}}
    return doc, exported, skipped


def _unique_aliases(models: dict[str, Any], exported: list[dict[str, Any]]) -> None:
    """llama-swap wants every alias unique and no alias equal to a model id: drop the clashes, say which."""
    notes = {row["name"]: row["notes"] for row in exported}
    seen: dict[str, str] = {}
    for model_id, item in models.items():
        kept = []
        for alias in item.get("aliases") or []:
            if alias in models or alias in seen:
                notes[model_id].append(f"alias {alias} left out: it is also "
                                       + ("a model id" if alias in models else f"an alias of {seen[alias]}"))
                continue
            seen[alias] = model_id
            kept.append(alias)
        if kept:
            item["aliases"] = kept
        else:
            item.pop("aliases", None)


def header() -> str:
    return ("# llama-swap config.yaml written by imageworks-models export --to llama-swap (llama-swap "
            f"{LLAMA_SWAP_SOURCE}).\n# Commands are the ones activate-model runs on this machine; ${{PORT}} is "
            "llama-swap's.\n")


# -- import --------------------------------------------------------------------------------------------


def read_config(path: Path | str) -> dict[str, Any]:
    """A llama-swap config file, bounded (size, nesting) and checked for a ``models`` mapping.

    Raises:
        ExportError: not a regular file, too large, not YAML, nested too deep, or no ``models`` mapping.
    """
    import stat

    import yaml

    from imageworks_models.errors import ExportError

    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ExportError(f"{path} does not exist", hint="give the path of llama-swap's config.yaml") from None
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc.strerror or exc}", hint="check the path") from None
    if not stat.S_ISREG(st.st_mode):
        raise ExportError(f"{path} is not a regular file", hint="give the path of llama-swap's config.yaml")
    if st.st_size > MAX_BYTES:
        raise ExportError(f"{path} is {st.st_size} bytes, more than a config file holds ({MAX_BYTES})",
                          hint="check that it is llama-swap's config.yaml")
    text = path.read_bytes().decode("utf-8", errors="replace")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        depth = 0
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ExportError(f"{path} nests deeper than {MAX_DEPTH} levels", hint="check the file")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        doc = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ExportError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})",
                          hint="fix the file (llama-swap would refuse it too)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
        raise ExportError(f"{path} has no 'models' mapping", hint="is it llama-swap's config.yaml?")
    return doc


def _expand(text: str, model_id: str, macros: list[dict[str, Any]]) -> str:
    """llama-swap's macros in ``text``: the model's, then the global ones, then ``${MODEL_ID}``; ``${PORT}``
    stays (it becomes our serving port)."""
    for _ in range(8):  # macros may use macros; llama-swap bounds this too
        def sub(m: re.Match) -> str:
            key = m.group(1)
            if key == "MODEL_ID":
                return model_id
            for table in macros:
                if key in table and not isinstance(table[key], (dict, list)):
                    return str(table[key])
            return m.group(0)

        new = MACRO.sub(sub, text)
        if new == text:
            break
        text = new
    return text


def _argv(cmd: str) -> list[str]:
    """A llama-swap ``cmd`` as llama-swap splits it: comment lines dropped, trailing backslashes joined, POSIX
    shell words (never run by a shell)."""
    lines = []
    for line in cmd.split("\n"):
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        lines.append(stripped[:-1] + " " if stripped.endswith("\\") else line)
    return shlex.split("\n".join(lines))


def _chunks(args: list[str]) -> list[list[str]]:
    """Options with their values: ``["--a", "1", "--b"]`` -> ``[["--a", "1"], ["--b"]]``."""
    out: list[list[str]] = []
    for token in args:
        if token.startswith("-") and not _is_number(token) or not out:
            out.append([token])
        else:
            out[-1].append(token)
    return out


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


# option -> what it sets; "drop": the launch adds it itself; ("cfg", key, kind): a backend_config field;
# "model"/"served": the model path / served id; ("vision", key): capabilities.vision plus a setting.
LLAMA_SERVER_OPTIONS = {
    "--model": "model", "-m": "model", "--host": "drop", "--port": "drop", "--alias": "served", "-a": "served",
    "--jinja": "drop", "--mmproj": ("cfg", "mmproj", str), "-mm": ("cfg", "mmproj", str),
    "--ctx-size": ("cfg", "ctx_size", int), "-c": ("cfg", "ctx_size", int),
    "--n-gpu-layers": ("cfg", "n_gpu_layers", int), "-ngl": ("cfg", "n_gpu_layers", int),
    "--gpu-layers": ("cfg", "n_gpu_layers", int), "--threads": ("cfg", "threads", int), "-t": ("cfg", "threads", int),
    "--parallel": ("cfg", "parallel", int), "-np": ("cfg", "parallel", int),
    "--chat-template-file": ("cfg", "chat_template_file", str)}
PYTHON_SERVER_OPTIONS = {
    "--model": "model", "--host": "drop", "--port": "drop", "--model_alias": "served",
    "--n_ctx": ("cfg", "ctx_size", int), "--n_gpu_layers": ("cfg", "n_gpu_layers", int),
    "--n_threads": ("cfg", "threads", int), "--clip_model_path": ("cfg", "mmproj", str),
    "--chat_format": ("cfg", "chat_format", str)}
VLLM_OPTIONS = {"--model": "model", "--host": "drop", "--port": "drop", "--served-model-name": "served",
                "--limit-mm-per-prompt": ("vision", "limit_mm_per_prompt")}
LMDEPLOY_OPTIONS = {"--server-name": "drop", "--server-port": "drop", "--model-name": "served",
                    "--backend": ("cfg", "engine", str), "--model-format": ("cfg", "model_format", str)}


def _program(argv: list[str]) -> tuple[str, str, list[str], dict[str, Any]] | None:
    """``(backend, flavour, the arguments after the program, option table)`` for a known server command."""
    exe = os.path.basename(argv[0]) if argv else ""
    rest = argv[1:]
    if exe.startswith("llama-server"):
        return "llamacpp", "llama-server", rest, LLAMA_SERVER_OPTIONS
    if re.fullmatch(r"python[0-9.]*", exe) and rest[:2] == ["-m", "llama_cpp.server"]:
        return "llamacpp", "llama_cpp.server", rest[2:], PYTHON_SERVER_OPTIONS
    if exe == "vllm" and rest[:1] == ["serve"]:
        return "vllm", "vllm", rest[1:], VLLM_OPTIONS
    if re.fullmatch(r"python[0-9.]*", exe) and rest[:2] == ["-m", "vllm.entrypoints.openai.api_server"]:
        return "vllm", "vllm", rest[2:], VLLM_OPTIONS
    if exe == "lmdeploy" and rest[:2] == ["serve", "api_server"]:
        return "lmdeploy", "lmdeploy", rest[2:], LMDEPLOY_OPTIONS
    return None


def _protected(backend: str, flavour: str, plugins) -> dict[str, str]:
    """The options the backend's launch owns, from its plugin when it is installed (else the core's short list)."""
    if plugins is not None:
        from imageworks_models.errors import PluginError
        from imageworks_models.plugin.protocols import OptionGuard
        from imageworks_models.serving.control import backend_impl

        try:
            impl = backend_impl(backend, plugins)
        except PluginError:
            impl = None
        if isinstance(impl, OptionGuard):
            return dict(impl.protected_options(flavour))
    return {"--host": "backend_config.host", "--port": "backend_config.port", "--model": "backend_config.model_path"}


def _safe_name(model_id: str) -> str:
    from imageworks_models.registry.schema import NAME_RE

    if NAME_RE.match(model_id):
        return model_id
    name = re.sub(r"[^A-Za-z0-9._()+@-]+", "-", model_id).strip("-._")[:200] or "model"
    return name if name[0].isalnum() else f"m{name}"[:200]


def entry_from(model_id: str, item: Any, *, macros: dict[str, Any], plugins=None) -> tuple[dict[str, Any] | None, list[str]]:
    """The curated entry one llama-swap model becomes, and what was left out (``None``: nothing to import).

    ``item`` is the ``models.<id>`` mapping; ``macros`` the config's global macros.
    """
    from imageworks_models.errors import ImageworksError
    from imageworks_models.serving.serverargs import check_env, check_extra_args
    from imageworks_models.export.common import SECRET_VALUE, has_credentials, is_secret, secret_name

    notes: list[str] = []
    if not isinstance(item, dict) or not isinstance(item.get("cmd"), str):
        return None, ["no cmd: nothing to start"]
    own = item.get("macros") if isinstance(item.get("macros"), dict) else {}
    cmd = _expand(item["cmd"], model_id, [own, macros])
    if has_credentials(cmd):
        return None, ["its command holds a URL with credentials: not imported"]
    try:
        argv = _argv(cmd)
    except ValueError as exc:
        return None, [f"its cmd cannot be split into words ({exc})"]
    known = _program(argv)
    if known is None:
        return None, [f"unknown command {os.path.basename(argv[0]) if argv else '(empty)'!r}: not imported "
                      "(llama-server, python -m llama_cpp.server, vllm serve and lmdeploy serve api_server are)"]
    backend, flavour, args, table = known
    name = _safe_name(model_id)
    cfg: dict[str, Any] = {}
    entry: dict[str, Any] = {"name": name, "backend": backend}
    served = None
    if backend in ("vllm", "lmdeploy") and args and not args[0].startswith("-"):
        cfg["model_path"] = args.pop(0)
    extra: list[str] = []
    protected = _protected(backend, flavour, plugins)
    for chunk in _chunks(args):
        option, _, inline = chunk[0].partition("=")
        values = ([inline] if inline else []) + chunk[1:]
        rule = table.get(option) or table.get(option.replace("_", "-"))
        if rule == "drop":
            continue
        if rule == "model":
            cfg["model_path"] = values[0] if values else None
            continue
        if rule == "served":
            served = values[0] if values else None
            continue
        if isinstance(rule, tuple) and rule[0] == "cfg" and values:
            kind = rule[2]
            try:
                cfg[rule[1]] = kind(values[0])
            except ValueError:
                notes.append(f"{option} {values[0]!r} left out: not a {kind.__name__}")
            if rule[1] == "mmproj":
                entry["capabilities"] = {"vision": True}
            continue
        if isinstance(rule, tuple) and rule[0] == "vision":
            entry["capabilities"] = {"vision": True}
            if values:
                try:
                    limit = json.loads(values[0])
                except ValueError:
                    limit = values[0]
                if limit != {"image": 1}:
                    cfg[rule[1]] = limit
            continue
        if secret_name(option) or any(SECRET_VALUE.match(v) or has_credentials(v) for v in values):
            notes.append(f"{option} left out: it passes a credential (the registry is shared)")
            continue
        try:
            extra += check_extra_args(chunk, name=name, protected=protected)
        except ImageworksError as exc:
            notes.append(f"{' '.join(chunk)[:80]} left out: {exc.message.split(': ', 1)[-1]}")
    if not cfg.get("model_path"):
        return None, notes + ["no model in its command: not imported"]
    if extra:
        cfg["extra_args"] = extra
    env = {}
    for pair in item.get("env") or []:
        key, eq, value = str(pair).partition("=")
        if not eq:
            notes.append(f"env {key!r} left out: not NAME=value")
            continue
        if key in ("HOST", "PORT") and flavour == "llama_cpp.server":
            continue  # the launch sets them
        if is_secret(key, value):
            notes.append(f"env {key} left out: it looks like a credential (the registry is shared)")
            continue
        try:
            env.update(check_env({key: value}, name=name))
        except ImageworksError as exc:
            notes.append(f"env {key} left out: {exc.message.split(': ', 1)[-1]}")
    if env:
        cfg["env"] = env
    use = item.get("useModelName")
    served = use if isinstance(use, str) and use else served
    aliases = [a for a in item.get("aliases") or [] if isinstance(a, str) and a and a != served]
    if name != model_id:
        aliases.insert(0, model_id)
    if served and served != name:
        entry["served_model_id"] = served
    if aliases:
        entry["aliases"] = aliases
    entry["backend_config"] = cfg
    gateway = {}
    ttl = item.get("ttl")
    if isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and ttl >= 0:
        gateway["idle_ttl"] = ttl
    limit = item.get("concurrencyLimit")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        gateway["max_concurrency"] = limit
    if gateway:
        entry["gateway"] = gateway
    return entry, notes


def _groups(doc: dict[str, Any]) -> dict[str, Any]:
    legacy = doc.get("groups")
    if isinstance(legacy, dict):
        return legacy
    router = ((doc.get("routing") or {}).get("router") or {}) if isinstance(doc.get("routing"), dict) else {}
    groups = (router.get("settings") or {}).get("groups") if isinstance(router, dict) else None
    return groups if isinstance(groups, dict) else {}


def entries_from(doc: dict[str, Any], *, plugins=None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every model of a llama-swap config as a curated entry.

    ``plugins``: the loaded plugins, whose backends name the options their launch owns (without them, the
    core's short list: host, port, model).

    Returns:
        ``(entries, rows)``: ``rows`` is ``[{"id", "name", "backend", "action": "import" | "skip", "notes"}]``.
    """
    macros = doc.get("macros") if isinstance(doc.get("macros"), dict) else {}
    persistent = set()
    for group in _groups(doc).values():
        if isinstance(group, dict) and group.get("persistent") is True:
            persistent.update(str(m) for m in group.get("members") or [])
    hooks = doc.get("hooks") if isinstance(doc.get("hooks"), dict) else {}
    preload = set(str(m) for m in ((hooks.get("on_startup") or {}).get("preload") or []))
    entries, rows, taken = [], [], set()
    for model_id in sorted(doc["models"], key=str):
        entry, notes = entry_from(str(model_id), doc["models"][model_id], macros=macros, plugins=plugins)
        if entry is None:
            rows.append({"id": str(model_id), "name": None, "backend": None, "action": "skip", "notes": notes})
            continue
        base, n = entry["name"], 2
        while entry["name"].lower() in taken:  # two ids that become the same name ("a/b", "a:b")
            entry["name"] = f"{base}-{n}"
            n += 1
        taken.add(entry["name"].lower())
        if model_id in persistent:
            entry.setdefault("gateway", {})["pinned"] = True
        if model_id in preload:
            entry.setdefault("gateway", {})["preload"] = True
        entries.append(entry)
        rows.append({"id": str(model_id), "name": entry["name"], "backend": entry["backend"], "action": "import",
                     "notes": notes})
    return entries, rows
