"""Where huggingface_hub keeps its files (its home, its model cache, the token) and its on/off switches, read
from the environment each time they are asked for.

huggingface_hub's ``constants`` computes these once, when it is imported; this plugin does not import it for
a path (a download never imports it at all), and a library caller may change the environment between calls.
The rules are huggingface_hub's own, to the letter: a variable set to an empty string counts as set (it reads
them with ``os.getenv``), ``~`` and ``$VARS`` are expanded, and ``HUGGINGFACE_HUB_CACHE`` is the older name
of ``HF_HUB_CACHE``. Standard library only.
"""

from __future__ import annotations

import os


def switch_on(name: str) -> bool:
    """Whether huggingface_hub's switch ``name`` (``HF_HUB_OFFLINE``, ``HUGGINGFACE_CO_STAGING``...) is on: set to
    1, ON, YES or TRUE in any case, as its ``constants._is_true`` reads it."""
    return os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE")


def _expand(path: str) -> str:
    return os.path.expandvars(os.path.expanduser(path))


def hf_home() -> str:
    """``HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``, else ``~/.cache/huggingface``."""
    default = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")),
                           "huggingface")
    return _expand(os.environ.get("HF_HOME", default))


def hub_cache() -> str:
    """The model cache downloads go to: ``HF_HUB_CACHE``, else ``HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``
    (the staging Hub changes only the older name's default there, which ``HF_HUB_CACHE`` was already read from)."""
    return _expand(os.environ.get("HF_HUB_CACHE", os.environ.get("HUGGINGFACE_HUB_CACHE",
                                                                   os.path.join(hf_home(), "hub"))))


def token_path() -> str:
    """The file ``hf auth login`` writes the token to: ``HF_TOKEN_PATH``, else ``$HF_HOME/token``; for the staging
    Hub (``HUGGINGFACE_CO_STAGING``) always ``~/.cache/huggingface_staging/token``."""
    if switch_on("HUGGINGFACE_CO_STAGING"):
        return os.path.join(os.path.expanduser("~"), ".cache", "huggingface_staging", "token")
    return _expand(os.environ.get("HF_TOKEN_PATH", os.path.join(hf_home(), "token")))
