"""File names that come from outside (a repo listing, a store manifest) turned into safe local paths.

A remote name is refused, before anything is written, when it could land outside the target folder
under POSIX *or* Windows rules: ``..`` segments, absolute paths, backslashes, drive letters, UNC
paths, NUL and other control characters. A name that passes is joined under the target folder, and
the join is refused again if an existing component on disk is a symlink leading out of it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from imageworks_models.errors import UnsafePathError

_DRIVE = re.compile(r"^[A-Za-z]:")
# Names Windows reserves whatever the extension; a repo file named so cannot be created there.
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
MAX_NAME = 1024
MAX_SEGMENT = 255  # bytes per file or folder name on ext4, XFS, btrfs, NTFS (B19)


def check_relative_name(name: str, *, where: str = "repo file") -> PurePosixPath:
    """Check a ``/``-separated relative file name from a remote listing.

    Args:
        name: the name as the remote gave it (e.g. ``"onnx/model.onnx"``).
        where: what the name is, for the error message.

    Returns:
        The name as a :class:`PurePosixPath` with no empty, ``.`` or ``..`` parts.

    Raises:
        UnsafePathError: the name could escape the target folder on POSIX or Windows.
    """
    problem = _problem(name)
    if problem:
        raise UnsafePathError(f"refusing {where} name {name!r}: {problem}",
                              hint="the remote listing is malformed or hostile; nothing was written")
    return PurePosixPath(name)


def _problem(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return "empty name"
    if len(name) > MAX_NAME:
        return f"longer than {MAX_NAME} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a NUL or control character"
    if "\\" in name:
        return "contains a backslash (a path separator on Windows)"
    if name.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    parts = name.split("/")
    for part in parts:
        if len(part.encode("utf-8", "surrogatepass")) > MAX_SEGMENT:
            return f"has a segment of {len(part)} characters; file systems allow {MAX_SEGMENT} bytes per name"
        if part in ("", "."):
            return "has an empty or '.' path segment"
        if part == "..":
            return "has a '..' segment"
        if part.endswith((" ", ".")) and part.strip(" .") == "":
            return "has a segment of only dots and spaces"
        if ":" in part:
            return "contains ':' (a drive or stream separator on Windows)"
        if _WINDOWS_RESERVED.match(part):
            return f"uses the reserved Windows device name {part!r}"
    return None


def safe_join(root: Path, name: str | PurePosixPath, *, where: str = "repo file") -> Path:
    """``root / name``, refused if ``name`` is unsafe or an existing part of the path leaves ``root``.

    Components that do not exist yet are fine (they will be created as real folders); components that
    exist must resolve inside ``root`` (a symlinked sub-folder pointing elsewhere is refused).

    Raises:
        UnsafePathError: as :func:`check_relative_name`, or when the joined path resolves outside ``root``.
    """
    rel = check_relative_name(str(name), where=where)
    base = Path(os.path.realpath(root))
    target = base.joinpath(*rel.parts)
    probe = target
    while not os.path.lexists(probe) and probe != base:
        probe = probe.parent
    real = Path(os.path.realpath(probe))
    if real != base and base not in real.parents:
        raise UnsafePathError(f"refusing {where} name {str(name)!r}: {probe} resolves outside {base} "
                              f"(to {real})", hint="remove the symlink or choose another target folder")
    return target


_SHA256_DIGEST = re.compile(r"sha256[:-]([0-9a-f]{64})")


def check_sha256_digest(value: object, *, where: str = "digest") -> str:
    """A content digest from a store's manifest, as ``"sha256:<64 lowercase hex>"``.

    Accepts ``sha256:<hex>`` and ``sha256-<hex>`` (Ollama writes both; upper-case hex is normalised).
    Checked before any path is built from it, so ``sha256:../../etc/passwd`` never reaches the disk.

    Raises:
        UnsafePathError: not a string, the wrong length, another algorithm, a NUL or a path in it.
    """
    text = value.lower() if isinstance(value, str) and value[:7].lower() in ("sha256:", "sha256-") else value
    match = _SHA256_DIGEST.fullmatch(text) if isinstance(text, str) and text.isascii() else None
    if match is None:
        shown = repr(value)[:90]
        raise UnsafePathError(f"refusing {where} {shown}: not sha256:<64 hex digits>",
                              hint="the manifest is malformed or hostile; pull the model again")
    return f"sha256:{match.group(1)}"


def blob_path(blobs: Path, digest: object, *, where: str = "digest") -> Path:
    """``blobs/sha256-<hex>`` for a store digest, checked to stay inside ``blobs`` after ``realpath``.

    Raises:
        UnsafePathError: the digest is malformed (see :func:`check_sha256_digest`), or the blob is a
            symlink (or under one) that leads out of ``blobs``.
    """
    hexdigest = check_sha256_digest(digest, where=where).split(":", 1)[1]
    path = Path(blobs) / f"sha256-{hexdigest}"
    base = os.path.realpath(blobs)
    real = os.path.realpath(path)
    if os.path.dirname(real) != base:
        raise UnsafePathError(f"refusing blob {path}: it resolves outside {base} (to {real})",
                              hint="a blob must be a regular file in the store's blobs folder; remove the link")
    return path
