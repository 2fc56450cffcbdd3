"""Building endpoint URLs from an entry's ``backend_config`` (shared by the core and backend plugins)."""

from __future__ import annotations

from typing import Any

from imageworks_models.redact import redact_url


def normalize_host_url(host: str, default_port: int) -> str:
    """``host`` as ``scheme://host:port`` (``OLLAMA_HOST`` style values may omit scheme and port).

    A wildcard bind address (``0.0.0.0``, ``::``) is replaced by loopback: it is where a server
    listens, not where a client can reach it.
    """
    host = host.strip().rstrip("/")
    scheme = "http"
    if "://" in host:
        scheme, host = host.split("://", 1)
    userinfo, at, rest = host.rpartition("@")  # user:password@host:port: kept for the connection, never shown
    if at:
        host, userinfo = rest, userinfo + "@"
    if host.startswith("[") and "]" in host:  # [::1]:port
        addr, _, port = host[1:].partition("]")
        port = port.lstrip(":")
        addr = f"[{addr}]"
    elif host.count(":") == 1:
        addr, port = host.split(":")
    else:
        addr, port = host, ""
    if addr in ("", "0.0.0.0", "[::]", "::"):
        addr = "127.0.0.1"
    return f"{scheme}://{userinfo}{addr}:{port or default_port}"


def check_base_url(url: Any) -> str:
    """A remote endpoint's ``base_url``, which must be an http(s) URL with a host (RELIABILITY S9).

    Raises:
        ConfigError: another scheme (``file:``, ``ftp:``...), no host, a bad port, credentials in the URL, or not
            text. The message never repeats credentials.
    """
    from urllib.parse import urlsplit

    from imageworks_models.errors import ConfigError

    text = url.strip() if isinstance(url, str) else ""
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        port_ok = True
    except ValueError:
        port_ok = False
    if parts.username or parts.password:
        raise ConfigError("backend_config.base_url carries credentials; they would be logged and sent everywhere",
                          hint="remove them from the URL; put the token's variable name in backend_config.api_key_env")
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or any(ord(c) < 33 for c in text):
        shown = redact_url(url) if isinstance(url, str) else url
        raise ConfigError(f"backend_config.base_url {shown!r} is not an http(s) URL",
                          hint="write it as http://host:port or https://host/path")
    return text


def openai_base_url(backend_config: dict[str, Any], *, default_port: int | None,
                    default_host: str = "127.0.0.1") -> str | None:
    """The OpenAI-compatible base URL (``.../v1``) for a ``backend_config``.

    ``base_url`` wins when set; else ``http://<host>:<port>/v1`` from the config, using the defaults
    for what it leaves out. Returns ``None`` when no port is known.
    """
    cfg = backend_config or {}
    if cfg.get("base_url"):
        url = check_base_url(cfg["base_url"]).rstrip("/")
        return url if url.endswith("/v1") else f"{url}/v1"
    port = cfg.get("port") or default_port
    if not port:
        return None
    host = str(cfg.get("host") or default_host)
    if host.count(":") >= 2 and "://" not in host and not host.startswith("["):  # bare IPv6: bracket it
        host = f"[{host}]"
    return f"{normalize_host_url(f'{host}:{port}', port)}/v1"


def serving_port(backend_config: dict[str, Any], settings: Any, *, default_port: int) -> int:
    """The port an orchestrated server of this entry listens on.

    With ``single_port`` (``CHAT_PROXY_VLLM_SINGLE_PORT``=1) every orchestrated model is served on
    ``vllm_port`` (``CHAT_PROXY_VLLM_PORT``), whatever its entry says, so clients need one address; with it off,
    the entry's ``backend_config.port``, else the backend's own default.
    """
    from imageworks_models.errors import ConfigError

    if settings.single_port:
        return int(settings.vllm_port)
    port = (backend_config or {}).get("port") or default_port
    if isinstance(port, bool) or not str(port).isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"backend_config.port {port!r} is not a port number",
                          hint="use a whole number from 1 to 65535, or leave it out")
    return int(port)


def local_base_url(backend_config: dict[str, Any], settings: Any, *, default_port: int) -> str | None:
    """Where clients reach an entry of an orchestrated backend: its remote ``base_url`` if it has one, else
    ``http://<host>:<serving_port>/v1`` (see :func:`serving_port`)."""
    cfg = dict(backend_config or {})
    if not cfg.get("base_url"):
        cfg["port"] = serving_port(cfg, settings, default_port=default_port)
    return openai_base_url(cfg, default_port=default_port)
