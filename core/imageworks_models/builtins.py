"""Built-in implementations, registered through the same hooks as third-party plugins."""

from __future__ import annotations

import hashlib

from .hookspecs import hookimpl
from .records import Hasher


@hookimpl
def register_hashers(register):
    register(Hasher(name="sha256", new=hashlib.sha256,
                    description="SHA-256 (hashlib): matches Hugging Face LFS and Ollama blob digests"))
