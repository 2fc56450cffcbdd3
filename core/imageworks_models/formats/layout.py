"""What belongs to a model folder, shared by manifests (hashing), scans (stats only) and downloads.

Kept free of imports beyond ``os``: a scan's dry run reads it on every model and must not pay for
the hashing machinery it never uses.
"""

from __future__ import annotations

import os

# huggingface_hub's own bookkeeping inside a downloaded folder: never part of the model
EXCLUDED_DIRS = (".cache/huggingface",)
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
_LFS_POINTER_MAX = 1024  # pointer files are ~130 bytes


def cache_repo_dir_of(real: str) -> str | None:
    """For a resolved Hugging Face cache snapshot path, the ``models--*`` folder its links point into."""
    parent = os.path.dirname(real)
    repo = os.path.dirname(parent)
    if os.path.basename(parent) == "snapshots" and os.path.basename(repo).startswith(("models--", "datasets--",
                                                                                      "spaces--")):
        return repo
    return None


def is_lfs_pointer(path: str | os.PathLike, *, size: int | None = None) -> bool:
    """Whether ``path`` is a git-LFS pointer file (a small text stub) instead of the real content.

    ``size``: its size, when the caller has just stat-ed it (a scan does): no second ``stat``.
    """
    try:
        if (os.stat(path).st_size if size is None else size) > _LFS_POINTER_MAX:
            return False
        with open(path, "rb") as f:
            return f.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX
    except OSError:
        return False
