"""The hashers the core registers (sha256; blake3 when installed), kept apart from the hook implementations in
builtins.py so that finding ``sha256`` (every ``verify``) imports no pluggy."""

from __future__ import annotations


def _blake3():
    import blake3

    # AUTO: blake3 splits one large update across cores itself (sha256 cannot be split).
    return blake3.blake3(max_threads=blake3.blake3.AUTO)


def _blake3_single():
    import blake3

    return blake3.blake3()  # max_threads=1: this thread only


_BUILTIN: list | None = None


def builtin_hashers() -> list:
    """The :class:`~imageworks_models.plugin.records.Hasher` records the core registers, built once.

    sha256 always; blake3 when the optional package is installed (pip install 'imageworks-models[blake3]').
    """
    global _BUILTIN
    if _BUILTIN is None:
        import hashlib
        import importlib.util

        from imageworks_models.plugin.records import Hasher

        found = [Hasher(name="sha256", new=hashlib.sha256,
                        description="SHA-256 (hashlib): matches Hugging Face LFS and Ollama blob digests")]
        # find_spec looks for it without importing it. A broken install must not cost us sha256.
        try:
            available = importlib.util.find_spec("blake3") is not None
        except (ImportError, ValueError):
            available = False
        if available:
            found.append(Hasher(name="blake3", new=_blake3, multithreaded=True, single_threaded=_blake3_single,
                                description="BLAKE3 (blake3 package): several times faster, multi-threaded; "
                                            "not comparable with upstream sha256 digests"))
        _BUILTIN = found
    return _BUILTIN
