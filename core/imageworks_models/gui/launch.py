"""``imageworks-models gui``: start the Streamlit app, on loopback unless told otherwise (RELIABILITY S10)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from imageworks_models.serving.serverargs import is_loopback  # noqa: F401 - one definition of loopback (the CLI's gui command uses it)

APP = Path(__file__).with_name("app.py")



def streamlit_argv(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
            "--server.fileWatcherType", "none"]


def check_bind(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback bind without the explicit flag.

    Raises:
        ConfigError: ``host`` is not a loopback address and ``allow_remote`` is false.
    """
    from imageworks_models.errors import ConfigError

    if not is_loopback(host) and not allow_remote:
        raise ConfigError(f"refusing to serve the GUI on {host}: it has no login, and anyone who can reach this "
                          "address could edit the registry, delete files and start or stop models",
                          hint="keep the default 127.0.0.1 (use an SSH tunnel to reach it), or pass --allow-remote "
                               "if this network is trusted")


def run(host: str = "127.0.0.1", port: int = 8501, *, allow_remote: bool = False) -> None:
    """Replace this process with the Streamlit server (signals then reach it directly)."""
    check_bind(host, allow_remote)
    try:
        import streamlit  # noqa: F401
    except ImportError:
        from imageworks_models.errors import ConfigError

        raise ConfigError("the GUI needs Streamlit, which is not installed",
                          hint="pip install 'imageworks-models[gui]'") from None
    argv = streamlit_argv(host, port)
    os.execv(argv[0], argv)
