"""What every export shares: which entries, what must never leave the machine, and how the file is written.

Secrets stay home: an environment variable whose name or value looks like a credential (``HF_TOKEN``,
``*_API_KEY``, ``sk-...``) is left out and reported, and an entry whose command would carry a URL with
``user:password@`` in it is skipped; a last check over the whole rendered file refuses to write one that still
holds such a URL. An existing file is replaced only with ``force``, atomically and under a lock.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Iterable

from imageworks_models.errors import UnsafeLaunchError

# Words of a variable or option name that say it holds a credential (HF_TOKEN, OPENAI_API_KEY, --hf-token,
# AWS_SECRET_ACCESS_KEY), but not VLLM_MAX_TOKENS or --max-num-batched-tokens.
SECRET_WORDS = frozenset({"TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "CREDENTIALS", "APIKEY",
                          "COOKIE", "AUTH", "AUTHORIZATION", "BEARER"})
SECRET_PAIRS = ("API_KEY", "ACCESS_KEY", "PRIVATE_KEY", "SECRET_KEY", "AUTH_KEY")
# Values that are credentials whatever the variable is called (Hugging Face, OpenAI-style, GitHub, GitLab,
# Slack, AWS access key ids).
SECRET_VALUE = re.compile(r"^(hf_[A-Za-z0-9]{8,}|sk-[A-Za-z0-9_-]{8,}|gh[opsu]_[A-Za-z0-9]{8,}|github_pat_|"
                          r"glpat-|xox[abprs]-|AKIA[0-9A-Z]{12,})")
WIDTH = 4096  # a command stays on one line, as people write them in llama-swap's config
CREDENTIAL_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:[^/@\s]*@|[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]+@")


def has_credentials(text: str) -> bool:
    """Whether ``text`` holds a URL with a user (and maybe a password) in it."""
    return bool(CREDENTIAL_URL.search(text))


def secret_name(name: str) -> bool:
    """Whether a variable or option name (``HF_TOKEN``, ``--api-key``) says it holds a credential."""
    text = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper()
    return bool(SECRET_WORDS.intersection(text.split("_"))) or any(p in text for p in SECRET_PAIRS)


@functools.lru_cache(maxsize=4096)
def _secret_option(option: str) -> bool:  # the same few options on thousands of entries
    return secret_name(option)


def is_secret(key: str, value: str) -> bool:
    """Whether the variable ``key=value`` looks like a credential (by its name or by its value)."""
    return secret_name(key) or bool(SECRET_VALUE.match(value.strip())) or has_credentials(value)


def safe_env(entry: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The entry's ``backend_config.env`` as an exported file may carry it: checked by the launch rules
    (:func:`imageworks_models.serving.serverargs.check_env`), without the variables that look like credentials.

    Returns:
        ``(env, left_out)``: the variables kept, and a note for each one left out.

    Raises:
        UnsafeLaunchError: the launch rules refuse the environment.
    """
    from imageworks_models.serving.serverargs import check_env

    raw = (entry.get("backend_config") or {}).get("env")
    notes = []
    if isinstance(raw, dict):  # credentials are left out first: they are not for the allow-list to judge (S11)
        clean = {}
        for key, value in raw.items():
            if isinstance(key, str) and isinstance(value, str) and is_secret(key, value):
                notes.append(f"env {key} left out: it looks like a credential (give it to the server as a secret)")
            else:
                clean[key] = value
        raw = clean
    return check_env(raw, name=entry["name"]), notes


def check_no_credentials(entry: dict[str, Any], texts: Iterable[str]) -> None:
    """Refuse an entry whose rendered command or URLs hold credentials.

    Raises:
        UnsafeLaunchError: one of ``texts`` holds a URL with a user or password (the message does not repeat it).
    """
    for text in texts:
        text = str(text)
        if "@" in text and has_credentials(text):
            raise UnsafeLaunchError(f"{entry['name']}: its command holds a URL with credentials",
                                    hint="remove them from the registry entry; pass tokens as secrets")
        option = text.split("=", 1)[0]
        if (option.startswith("--") and _secret_option(option)) or SECRET_VALUE.match(text.split("=", 1)[-1]):
            raise UnsafeLaunchError(f"{entry['name']}: its command passes a credential"
                                    + (f" ({option})" if option.startswith("--") else ""),
                                    hint="give it to the server as a secret, not on its command line")


def policy(entry: dict[str, Any], settings=None) -> dict[str, Any]:
    """The entry's serving policy for a gateway, read as the gateway reads it (issue 23's
    ``gateway.fleet.Options.of``; point this at it once both are merged): the entry's ``gateway`` object with
    ``idle_ttl`` (seconds idle before unloading; 0: never; default the ``gateway_idle_ttl`` setting where there
    is one, else none), ``preload`` and ``pinned`` (true only when ``true``), ``max_concurrency`` (0: no limit).
    A value that is not a number of 0 or more gives the default, with a warning, as in the gateway.
    """
    import logging

    raw = entry.get("gateway") if isinstance(entry.get("gateway"), dict) else {}
    default_ttl = getattr(settings, "gateway_idle_ttl", None) if settings is not None else None

    def number(key: str, default: Any) -> Any:
        value = raw.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            logging.getLogger("imageworks_models").warning(
                "%s: gateway.%s = %r is not a number >= 0; using %s", entry["name"], key, value, default)
            return default
        return value

    return {"idle_ttl": number("idle_ttl", default_ttl), "preload": raw.get("preload") is True,
            "pinned": raw.get("pinned") is True, "max_concurrency": int(number("max_concurrency", 0) or 0)}


def select(registry, *, names: Iterable[str] = (), role: str | None = None,
           installed_only: bool = False) -> list[dict[str, Any]]:
    """The entries to export: the named ones (names, aliases, served ids, repo ids, unique prefixes), else
    every entry not flagged ``testing`` or ``deprecated``; narrowed by ``role`` and to installed ones.

    Raises:
        EntryNotFoundError: a name matches no entry.
    """
    from imageworks_models.registry.predicates import installed, is_testing, matches_role

    names = list(names)
    if names:
        seen, entries = set(), []
        for name in names:
            entry = registry.get(name)
            if entry["name"] not in seen:
                seen.add(entry["name"])
                entries.append(entry)
    else:
        entries = [e for e in registry if not is_testing(e) and not (e.get("flags") or {}).get("deprecated")]
    if role:
        entries = [e for e in entries if matches_role(e, role)]
    if installed_only:
        entries = [e for e in entries if installed(e)]
    return sorted(entries, key=lambda e: e["name"])


def dump_yaml(doc: Any, *, header: str = "") -> str:
    """``doc`` (dicts, lists, text, numbers, booleans, ``None``) as YAML: block style, keys in the order given.

    PyYAML's emitter (libyaml's when it is there) writes the text from events built here: the same bytes as
    ``yaml.dump(doc, sort_keys=False)`` (tested), in half the time, as its representer and serializer ask the tag
    resolver twice for every scalar and an export repeats the same keys thousands of times.
    """
    import yaml

    out = [yaml.StreamStartEvent(), yaml.DocumentStartEvent(explicit=False)]
    _events(doc, out, yaml, _plain_checker(yaml))
    out += [yaml.DocumentEndEvent(explicit=False), yaml.StreamEndEvent()]
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return header + yaml.emit(out, Dumper=dumper, allow_unicode=True, width=WIDTH)


def _plain_checker(yaml):
    """Whether a text may be written unquoted: it would be read back as text, not a number, boolean or null."""
    import functools

    resolver = yaml.resolver.Resolver()

    @functools.lru_cache(maxsize=65536)
    def plain(text: str) -> bool:
        return resolver.resolve(yaml.ScalarNode, text, (True, False)) == "tag:yaml.org,2002:str"

    return plain


def _events(value: Any, out: list, yaml, plain) -> None:
    if isinstance(value, dict):
        out.append(yaml.MappingStartEvent(None, None, True, flow_style=False))
        for key, item in value.items():
            _events(key, out, yaml, plain)
            _events(item, out, yaml, plain)
        out.append(yaml.MappingEndEvent())
    elif isinstance(value, (list, tuple)):
        out.append(yaml.SequenceStartEvent(None, None, True, flow_style=False))
        for item in value:
            _events(item, out, yaml, plain)
        out.append(yaml.SequenceEndEvent())
    elif isinstance(value, str):
        out.append(yaml.ScalarEvent(None, None, (plain(value), True), value))
    elif isinstance(value, bool):
        out.append(yaml.ScalarEvent(None, None, (True, False), "true" if value else "false"))
    elif isinstance(value, int):
        out.append(yaml.ScalarEvent(None, None, (True, False), str(value)))
    elif isinstance(value, float):
        out.append(yaml.ScalarEvent(None, None, (True, False), _float(value)))
    elif value is None:
        out.append(yaml.ScalarEvent(None, None, (True, False), "null"))
    else:
        raise TypeError(f"cannot write {type(value).__name__} to YAML")


def _float(value: float) -> str:
    # as PyYAML's SafeRepresenter.represent_float writes it
    if value != value:
        return ".nan"
    if value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value).lower()
    if "." not in text and "e" in text:
        text = text.replace("e", ".0e", 1)
    return text


def write_output(path: Path | str, text: str, *, force: bool, dry_run: bool, settings) -> bool:
    """Write ``text`` to ``path`` atomically under a lock; refuse to replace an existing file without ``force``.

    Returns:
        Whether the file was written (``False`` in a dry run).

    Raises:
        ExportError: the path exists (without ``force``), is not a regular file, or the text still holds a URL
            with credentials.
        StorageError: the write failed; the file is unchanged.
    """
    from imageworks_models.errors import ExportError
    from imageworks_models.fs.storage import atomic_write, file_lock

    path = Path(path)
    if has_credentials(text):  # the last line of defence: never write a credential to a file meant to be shared
        raise ExportError(f"refusing to write {path}: the export holds a URL with credentials",
                          hint="remove credentials from the registry entries (see `imageworks-models show NAME`)")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise ExportError(f"{path} exists and is not a regular file", hint="choose another path with -o")
        if not force:
            raise ExportError(f"{path} exists; not overwriting it", hint="pass --force to replace it, or choose "
                                                                         "another path with -o")
    if dry_run:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_name(path.name + ".lock"), timeout=settings.lock_timeout):
        atomic_write(path, text.encode("utf-8"))
    return True
