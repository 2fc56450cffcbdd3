"""Credentials never reach a person's eyes or a file (RELIABILITY S12): the user-info of every URL is replaced.

What we print, log, audit or show goes through :func:`redact`; errors redact their message and hint when they are
made. Standard library only, importable from every layer.
"""

from __future__ import annotations

import re
from typing import Any

_USERINFO = re.compile(r"(?<=://)[^/@\s\"'<>]*@"  # scheme://user:password@host
                       r"|(?<![\w/@.:%+-])[\w.%+-]+:[^/@\s\"'<>]+@(?=[\w\[])")  # user:password@host (OLLAMA_HOST style)


def redact_url(url: Any) -> str:
    """``url`` for messages and tables, with any ``user:password@`` replaced by ``***@``."""
    return _USERINFO.sub("***@", str(url))


def redact(text: Any) -> Any:
    """``text`` with the user-info (``user:password@``) of every URL in it replaced by ``***@`` (S12); what we
    print, log, audit or show goes through this. Anything but text is returned as it is."""
    if not isinstance(text, str) or "@" not in text:
        return text
    return _USERINFO.sub("***@", text)
