"""Helpers shared by the readers: strict JSON decoding, bounded small-file reads, length formatting.

Python's ``json`` silently keeps the last of duplicate keys and accepts undecodable bytes when handed
``str`` built with ``errors="replace"``; a registry built from headers must not guess which duplicate a
loader would honour, so both are refused here with one clear line.
"""

from __future__ import annotations

import json
import os
from typing import Any, BinaryIO, Callable, TypeVar

from imageworks_models.errors import ArtifactFormatError

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
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_bounded_int,
                          parse_constant=_no_constant)
    except _DuplicateKey as exc:
        raise ArtifactFormatError(path, f"{what} repeats the key {exc.args[0]!r}") from None
    except _BadNumber as exc:
        raise ArtifactFormatError(path, f"{what} has {exc.args[0]}") from None
    except json.JSONDecodeError as exc:
        raise ArtifactFormatError(path, f"{what} is not valid JSON (line {exc.lineno} column {exc.colno}: "
                                        f"{exc.msg})") from None
    except RecursionError:
        raise ArtifactFormatError(path, f"{what} is nested too deeply") from None


class _BadNumber(ValueError):
    pass


def _bounded_int(token: str) -> int:
    # int() of a 5,000-digit token is slow, and past 4,300 digits Python refuses it with a ValueError that
    # no caller expected (it marked a whole plugin broken, B18): no count in a header needs 20 digits.
    if len(token) > 20:
        raise _BadNumber(f"an integer of {len(token.lstrip('-'))} digits (more than any count can need)")
    return int(token)


def _no_constant(token: str):
    raise _BadNumber(f"{token}, which is not a JSON number")


def read_open(path: object, read: Callable[[BinaryIO], T]) -> T:
    """Open ``path`` and return ``read(file)``; an OS error (at open or mid-read: a disk or a network
    filesystem failing) becomes one ``ArtifactFormatError`` line naming the file. A FIFO, socket or device is
    refused without blocking (B19).
    """
    from imageworks_models.errors import StorageError
    from imageworks_models.fs.storage import open_regular

    try:
        f = os.fdopen(open_regular(path), "rb")  # type: ignore[arg-type]
    except StorageError as exc:
        raise ArtifactFormatError(path, exc.message.replace(f"{path} ", "", 1)) from None
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
    from imageworks_models.errors import StorageError
    from imageworks_models.fs.storage import read_regular

    try:
        data = read_regular(path, limit=max_bytes)  # type: ignore[arg-type]
    except StorageError as exc:
        raise ArtifactFormatError(path, f"the {what}: {exc.message}") from None
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
