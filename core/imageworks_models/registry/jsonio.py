"""Strict JSON reading: one clear message with file, line:column or JSON path, and the cause.

``json`` and pydantic silently keep the last of two duplicate keys; a registry edited by hand must not
lose a value that way, so duplicates are an error here. An empty file is an error too: it is what a
crashed writer of another tool leaves, never "an empty registry".
"""

from __future__ import annotations

import json
import re
from typing import Any

from imageworks_models.errors import RegistryFileError

_BOMS = (
    (b"\xef\xbb\xbf", "a UTF-8 byte-order mark", "remove the first 3 bytes: sed -i '1s/^\\xEF\\xBB\\xBF//' FILE"),
    (b"\xff\xfe\x00\x00", "UTF-32", "convert it: iconv -f UTF-32 -t UTF-8 FILE"),
    (b"\x00\x00\xfe\xff", "UTF-32", "convert it: iconv -f UTF-32 -t UTF-8 FILE"),
    (b"\xff\xfe", "UTF-16", "convert it: iconv -f UTF-16 -t UTF-8 FILE"),
    (b"\xfe\xff", "UTF-16", "convert it: iconv -f UTF-16 -t UTF-8 FILE"),
)

MAX_DEPTH = 64
MAX_INT = 2**63  # integers must lie in [-2^63, 2^63): what every JSON reader of the other tools can hold
DEFAULT_MAX_BYTES = 64 * 2**20  # the max_json_bytes setting's default
_CONSTANT = re.compile(r"-?Infinity|NaN")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_DIGITS_AS_ZERO = bytes(48 if 48 <= b <= 57 else b for b in range(256))  # for bytes.translate
_NOT_A_DIGIT = re.compile(rb"[^0]")  # in text translated by _DIGITS_AS_ZERO

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


class _Refused(ValueError):
    """Carries our error out of a ``json`` hook (the decoder would otherwise report its own message)."""

    def __init__(self, error: RegistryFileError):
        super().__init__(error.message)
        self.error = error


def _token_position(text: str, token: str) -> tuple[int | None, int | None]:
    # json's hooks get the token, not its position: the first occurrence outside a string is close enough
    # for a person to find it (the error path only).
    pattern = re.compile(r'"(?:[^"\\]|\\.)*"|' + re.escape(token) + r"(?![0-9.eE])")
    for match in pattern.finditer(text):
        if not match.group().startswith('"'):
            return _line_col(text, match.start())
    return None, None


def _check_depth(value: Any, text: str, path: str, hint: str) -> None:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                line, col = _nth_open(text, MAX_DEPTH + 1)
                raise RegistryFileError(path, f"JSON nested deeper than {MAX_DEPTH} levels", line=line, column=col,
                                        hint=hint)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))


def _nth_open(text: str, depth: int) -> tuple[int | None, int | None]:
    level = 0
    in_string = escaped = False
    for pos, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            if level == depth:
                return _line_col(text, pos)
        elif ch in "]}":
            level -= 1
    return None, None


def _check_surrogates(value: Any, text: str, path: str, hint: str) -> None:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                match = _SURROGATE_ESCAPE.search(text)
                line, col = _line_col(text, match.start()) if match else (None, None)
                raise RegistryFileError(path, "a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair) "
                                              "is not text", line=line, column=col, hint=hint) from None


def dumps_strict(value: Any, *, path: str, **kwargs: Any) -> str:
    """``json.dumps`` that never writes NaN/Infinity or unencodable text (B17).

    Raises:
        RegistryFileError: ``value`` holds a NaN/Infinity float or a lone surrogate; nothing is written.
    """
    try:
        text = json.dumps(value, allow_nan=False, **kwargs)
        text.encode("utf-8")
    except ValueError as exc:
        raise RegistryFileError(path, f"refusing to write a value JSON cannot hold: {exc}",
                                hint="fix the value (NaN and Infinity are not JSON numbers)") from None
    return text


def read_json_file(path: Any, *, limit: int = DEFAULT_MAX_BYTES) -> Any:
    """Read and strictly parse the JSON file ``path``: a regular file of at most ``limit`` bytes.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RegistryFileError: not a regular file, too large, unreadable, or not strict JSON (see :func:`loads_strict`).
    """
    return loads_strict(read_limited(path, limit=limit), str(path))


def read_limited(path: Any, *, limit: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of the regular file ``path``, refused when it is larger than ``limit`` (the max_json_bytes setting).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RegistryFileError: a folder, not a regular file, unreadable, or larger than ``limit``.
    """
    from imageworks_models.errors import StorageError
    from imageworks_models.fs.storage import read_regular

    try:
        data = read_regular(path, limit=limit)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise RegistryFileError(str(path), "is a folder, not a file") from None
    except StorageError as exc:
        raise RegistryFileError(str(path), exc.message.replace(f"{path} ", "", 1), hint=exc.hint) from None
    except OSError as exc:
        raise RegistryFileError(str(path), f"cannot be read: {exc.strerror}", hint="check the file's permissions") from None
    if len(data) > limit:
        raise RegistryFileError(str(path), f"is larger than the {limit:,}-byte limit for JSON files",
                                hint="it is not one of ours; raise max_json_bytes (IMAGEWORKS_MAX_JSON_BYTES) if it is")
    return data


def _fast_loads(data: bytes) -> Any:
    """``data`` parsed by orjson when it passes every check of :func:`loads_strict`, else ``None`` (the exact path
    below then parses it again and words what is wrong).

    orjson refuses what loads_strict refuses of invalid JSON, invalid UTF-8, NaN/Infinity, floats beyond 64 bits
    and lone surrogates, and parses the rest to the same values (tests/test_registry_badfiles.py holds both
    paths to that), but it keeps the last of duplicate keys, nests up to 1,024 levels and reads integers up to
    2^64 (beyond, as floats). Those three are checked here at C speed, without walking the value:

    - integers: no integer token of 19 digits or more (every value of 18 digits lies within |n| < 2^63);
    - depth: the value written with a 2-space indent has no line indented 128 spaces (a member 64 levels in);
    - duplicate keys: the text has as many ``:`` as that rewrite. Each ``:`` is a member's or inside a string;
      the rewrite writes one per member it kept and every string as read, and a dropped duplicate takes its
      ``:`` with it. An escaped colon (``\\u003a``) would be written as ``:``, so such a text takes the exact path.
    """
    try:
        import orjson
    except ImportError:  # pragma: no cover - a dependency; the exact path serves alone without it
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if _long_integer(data) or b"\\u003a" in data or b"\\u003A" in data:
        return None
    try:
        rewritten = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (254 levels): far too deep anyway
        return None
    if b"\n" + b" " * (2 * MAX_DEPTH) in rewritten or data.count(b":") != rewritten.count(b":"):
        return None
    return value


def _long_integer(data: bytes) -> bool:
    """Whether the JSON text ``data`` may hold an integer token of 19 digits or more.

    Every run of 19 digits is found at C speed; it is such a token when what comes before it (past a ``-`` and
    white space) is ``[``, ``,``, the start, or a ``:`` that follows a key's closing quote. Runs inside strings
    (the digits of a digest after ``sha256:``) mostly fail that test; any that pass only cost the exact path.
    """
    digits = data.translate(_DIGITS_AS_ZERO)
    run = b"0" * 19
    space = b" \t\r\n"
    pos = digits.find(run)
    while pos != -1:
        i = pos - 1
        if i >= 0 and data[i] == 0x2D:  # -
            i -= 1
        while i >= 0 and data[i] in space:
            i -= 1
        if i < 0 or data[i] in b"[,":
            return True
        if data[i] == 0x3A:  # :
            i -= 1
            while i >= 0 and data[i] in space:
                i -= 1
            if i < 0 or data[i] == 0x22:  # "
                return True
        end = _NOT_A_DIGIT.search(digits, pos + 19)  # past the whole run (a string may hold a long one)
        pos = digits.find(run, end.start()) if end else -1
    return False


def loads_strict(data: bytes, path: str) -> Any:
    """Parse registry JSON from ``data`` (read from ``path``, used in messages).

    Raises:
        RegistryFileError: empty file, a byte-order mark or non-UTF-8 bytes, invalid or truncated
            JSON (with line:column), duplicate keys (with the JSON path of the object), NaN/Infinity,
            integers beyond 2^63, floats beyond 64 bits, nesting deeper than 64, lone surrogates (B17).
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
    value = _fast_loads(data)
    if value is not None:
        return value
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

    def bad_number(token: str, why: str) -> ValueError:
        line, col = _token_position(text, token)
        return _Refused(RegistryFileError(path, f"{why} ({token[:20]}{'...' if len(token) > 20 else ''})",
                                          line=line, column=col, hint=hint))

    def constant(token: str) -> Any:
        raise bad_number(token, "NaN and Infinity are not JSON numbers")

    def integer(token: str) -> int:
        if len(token) > 20:  # int() of a 5,000-digit string is slow and may be refused by Python itself
            raise bad_number(token, f"integer with {len(token.lstrip('-'))} digits is out of range (|n| < 2^63)")
        value = int(token)
        if not -MAX_INT <= value < MAX_INT:
            raise bad_number(token, "integer out of range (|n| < 2^63)")
        return value

    def real(token: str) -> float:
        value = float(token)
        if value in (float("inf"), float("-inf")):
            raise bad_number(token, "number too large for a 64-bit float")
        return value

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=constant, parse_int=integer,
                           parse_float=real)
    except _Refused as exc:
        raise exc.error from None
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text.rstrip())
        cause = f"invalid JSON: {exc.msg}" + (" (the file ends too early: truncated?)" if truncated else "")
        raise RegistryFileError(path, cause, line=exc.lineno, column=exc.colno, hint=hint) from None
    except RecursionError:
        raise RegistryFileError(path, "JSON nested too deeply", hint=hint) from None
    _check_depth(value, text, path, hint)
    if _SURROGATE_ESCAPE.search(text):
        _check_surrogates(value, text, path, hint)
    if found_dup:
        where, key = _find_dups(value, "")
        raise RegistryFileError(path, f"duplicate key {key!r} in the object at {where} "
                                      "(JSON readers silently keep only the last one)",
                                hint="remove or rename one of the two")
    return value
