"""ImageWorks Models: a deterministic registry, downloader and serving orchestrator for local model weights.

The public names below are imported lazily, so ``import imageworks_models`` (and ``--help``) stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "hookimpl": "imageworks_models.plugin.hookspecs",
    "Source": "imageworks_models.plugin.records",
    "Backend": "imageworks_models.plugin.records",
    "Hasher": "imageworks_models.plugin.records",
    "ArtifactInfo": "imageworks_models.plugin.records",
    "Launch": "imageworks_models.plugin.records",
    "Probe": "imageworks_models.plugin.records",
    "load_settings": "imageworks_models.settings",
    "open_registry": "imageworks_models.registry",
    "RegistryStore": "imageworks_models.registry.store",
    "select": "imageworks_models.serving.selection",
    "get_plugins": "imageworks_models.pluginhost.manager",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'imageworks_models' has no attribute {name!r}")
