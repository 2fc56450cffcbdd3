"""Helpers shared by the readers: strict JSON decoding, bounded small-file reads, length formatting.

Python's ``json`` silently keeps the last of duplicate keys and accepts undecodable bytes when handed
``str`` built with ``errors="replace"``; a registry built from headers must not guess which duplicate a
loader would honour, so both are refused here with one clear line.
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO, Callable, TypeVar

from ..errors import ArtifactFormatError

T = TypeVar("T")


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def loads_strict(data: bytes, path: object, what: str = "JSON") -> Any:
    """Decode ``data`` as strict UTF-8 JSON with duplicate keys refused.

    Args:
        data: the raw bytes.
        path: the file named in error messages.
        what: what the bytes are, for messages (``"header JSON"``...).

    Returns:
        The decoded value (any JSON type; callers check the shape they need).

    Raises:
        ArtifactFormatError: the bytes are not UTF-8, start with a byte-order mark, are not JSON, or
            repeat a key in one object.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        # transformers reads configs with encoding="utf-8", whose json.loads then fails on the BOM:
        # accepting it here would call a folder usable that the real loader refuses.
        raise ArtifactFormatError(path, f"{what} starts with a UTF-8 byte-order mark",
                                  hint="re-save the file as UTF-8 without BOM")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArtifactFormatError(path, f"{what} is not valid UTF-8 (byte {exc.start}: {exc.reason})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        raise ArtifactFormatError(path, f"{what} repeats the key {exc.args[0]!r}") from None
    except json.JSONDecodeError as exc:
        raise ArtifactFormatError(path, f"{what} is not valid JSON (line {exc.lineno} column {exc.colno}: "
                                        f"{exc.msg})") from None
    except RecursionError:
        raise ArtifactFormatError(path, f"{what} is nested too deeply") from None


def read_open(path: object, read: Callable[[BinaryIO], T]) -> T:
    """Open ``path`` and return ``read(file)``; an OS error (at open or mid-read: a disk or a network
    filesystem failing) becomes one ``ArtifactFormatError`` line naming the file.
    """
    try:
        f = open(path, "rb")  # type: ignore[arg-type]
    except OSError as exc:
        raise ArtifactFormatError(path, f"cannot open: {exc.strerror or exc}") from None
    with f:
        try:
            return read(f)
        except OSError as exc:
            raise ArtifactFormatError(path, f"cannot read: {exc.strerror or exc}") from None


def read_bounded(path: object, max_bytes: int, what: str = "file") -> bytes:
    """Read a whole small file, refusing one larger than ``max_bytes`` without reading it all.

    Raises:
        ArtifactFormatError: the file cannot be read or is larger than ``max_bytes``.
    """
    try:
        with open(path, "rb") as f:  # type: ignore[arg-type]
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise ArtifactFormatError(path, f"cannot read the {what}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ArtifactFormatError(path, f"{what} is larger than the {max_bytes} byte limit")
    return data


def format_length(value: int) -> str:
    """A length for a message: huge powers of two as ``2^k`` (lying length fields often are), else decimal."""
    if value >= 1 << 32 and value & (value - 1) == 0:
        return f"2^{value.bit_length() - 1}"
    return str(value)
