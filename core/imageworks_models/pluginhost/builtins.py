"""Built-in implementations, registered through the same hooks as third-party plugins."""

from __future__ import annotations

import hashlib
import importlib.util

from imageworks_models.plugin.hookspecs import hookimpl
from imageworks_models.plugin.records import Hasher


def _blake3():
    import blake3

    # AUTO: blake3 splits one large update across cores itself (sha256 cannot be split).
    return blake3.blake3(max_threads=blake3.blake3.AUTO)


@hookimpl
def register_hashers(register):
    register(Hasher(name="sha256", new=hashlib.sha256,
                    description="SHA-256 (hashlib): matches Hugging Face LFS and Ollama blob digests"))
    # Offered only when the optional package is installed (pip install 'imageworks-models[blake3]');
    # find_spec looks for it without importing it. A broken install must not cost us sha256.
    try:
        available = importlib.util.find_spec("blake3") is not None
    except (ImportError, ValueError):
        available = False
    if available:
        register(Hasher(name="blake3", new=_blake3, multithreaded=True,
                        description="BLAKE3 (blake3 package): several times faster, multi-threaded; "
                                    "not comparable with upstream sha256 digests"))


@hookimpl
def inspect_artifact(path):
    # imported here: this module is imported at every CLI start and must stay cheap
    from imageworks_models.formats.inspect import inspect_path

    return inspect_path(path)
