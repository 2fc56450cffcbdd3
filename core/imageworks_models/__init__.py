"""ImageWorks Models: a deterministic registry, downloader and serving orchestrator for local model weights.

The public names below are imported lazily, so ``import imageworks_models`` (and ``--help``) stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "hookimpl": "imageworks_models.hookspecs",
    "Source": "imageworks_models.records",
    "Backend": "imageworks_models.records",
    "Hasher": "imageworks_models.records",
    "ArtifactInfo": "imageworks_models.records",
    "Launch": "imageworks_models.records",
    "Probe": "imageworks_models.records",
    "load_settings": "imageworks_models.settings",
    "open_registry": "imageworks_models.registry",
    "RegistryStore": "imageworks_models.registry.store",
    "select": "imageworks_models.selection",
    "get_plugins": "imageworks_models.plugins",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'imageworks_models' has no attribute {name!r}")
