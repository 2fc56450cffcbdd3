"""Strict JSON reading: one clear message with file, line:column or JSON path, and the cause.

``json`` and pydantic silently keep the last of two duplicate keys; a registry edited by hand must not
lose a value that way, so duplicates are an error here. An empty file is an error too: it is what a
crashed writer of another tool leaves, never "an empty registry".
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import RegistryFileError

_BOMS = (
    (b"\xef\xbb\xbf", "a UTF-8 byte-order mark", "remove the first 3 bytes: sed -i '1s/^\\xEF\\xBB\\xBF//' FILE"),
    (b"\xff\xfe\x00\x00", "UTF-32", "convert it: iconv -f UTF-32 -t UTF-8 FILE"),
    (b"\x00\x00\xfe\xff", "UTF-32", "convert it: iconv -f UTF-32 -t UTF-8 FILE"),
    (b"\xff\xfe", "UTF-16", "convert it: iconv -f UTF-16 -t UTF-8 FILE"),
    (b"\xfe\xff", "UTF-16", "convert it: iconv -f UTF-16 -t UTF-8 FILE"),
)

RESTORE_HINT = "restore it with git (git checkout -- FILE) or from the newest file in the backups folder"


class _Dups(dict):
    """A JSON object that had duplicate keys (only built on the error path)."""

    duplicates: list[str]


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _find_dups(node: Any, path: str) -> tuple[str, str] | None:
    if isinstance(node, _Dups):
        return path or "$", node.duplicates[0]
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return None
    for key, child in items:
        sub = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else key)
        found = _find_dups(child, sub)
        if found:
            return found
    return None


def loads_strict(data: bytes, path: str) -> Any:
    """Parse registry JSON from ``data`` (read from ``path``, used in messages).

    Raises:
        RegistryFileError: empty file, a byte-order mark or non-UTF-8 bytes, invalid or truncated
            JSON (with line:column), or duplicate keys (with the JSON path of the object).
    """
    hint = RESTORE_HINT.replace("FILE", path)
    if not data.strip():
        raise RegistryFileError(path, "the file is empty (an empty file is not an empty registry)",
                                hint=f"{hint}, or write {{\"schema_version\": 1, \"entries\": []}} to start afresh")
    for bom, what, fix in _BOMS:
        if data.startswith(bom):
            raise RegistryFileError(path, f"starts with {what}; registry files are UTF-8 without a BOM",
                                    hint=fix.replace("FILE", path))
    if b"\x00" in data:  # never in UTF-8 JSON; UTF-16/32 without a BOM decodes "fine" and then fails obscurely
        raise RegistryFileError(path, "contains NUL bytes: UTF-16 or UTF-32 without a byte-order mark?; "
                                      "registry files are UTF-8", hint=f"convert it: iconv -f UTF-16 -t UTF-8 {path}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(data[: exc.start].decode("utf-8", "replace"), exc.start)
        raise RegistryFileError(path, f"not valid UTF-8 (byte 0x{data[exc.start]:02x})", line=line, column=col,
                                hint=f"re-save the file as UTF-8 (iconv -f LATIN1 -t UTF-8), or {hint}") from None
    found_dup = False

    def pairs(items: list[tuple[str, Any]]) -> dict:
        nonlocal found_dup
        obj = dict(items)
        if len(obj) != len(items):
            found_dup = True
            seen: set[str] = set()
            obj = _Dups(items)
            obj.duplicates = [k for k, _ in items if k in seen or seen.add(k)]
        return obj

    try:
        value = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text.rstrip())
        cause = f"invalid JSON: {exc.msg}" + (" (the file ends too early: truncated?)" if truncated else "")
        raise RegistryFileError(path, cause, line=exc.lineno, column=exc.colno, hint=hint) from None
    except RecursionError:
        raise RegistryFileError(path, "JSON nested too deeply", hint=hint) from None
    if found_dup:
        where, key = _find_dups(value, "")
        raise RegistryFileError(path, f"duplicate key {key!r} in the object at {where} "
                                      "(JSON readers silently keep only the last one)",
                                hint="remove or rename one of the two")
    return value
