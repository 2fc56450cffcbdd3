"""The plugin API: the one module a plugin imports from the core.

Everything a plugin may use is named here, and nothing else of the core is promised to stay where it is
(tests/architecture/test_plugin_api.py fails when a plugin, bundled or not, imports another core module).
The bundled plugins (``plugins/hf``, ``plugins/ollama``, ``plugins/vllm``, ``plugins/lmdeploy``,
``plugins/llamacpp``) use only this module, exactly as a third party would::

    from imageworks_models.api import Backend, Launch, Probe, hookimpl, check_extra_args

Names load when first used (PEP 562), so importing this module costs nothing at CLI start-up. The README's
"Writing a plugin" section documents every hook and Protocol method with its exact signature.

Compatibility: names are only added; a name that must go is kept for one minor release with a warning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> module under imageworks_models that defines it ("X:" : the module X itself; "" : the package)
_NAMES: dict[str, str] = {
    # Hooks: decorate your hook functions with ``hookimpl``; ``hookspecs`` is the contract (each hook's docstring).
    "hookimpl": "plugin.hookspecs",
    "hookspecs": "plugin.hookspecs:",
    # Records your ``register`` callbacks take, and the records backends and sources return.
    "Source": "plugin.records",
    "Backend": "plugin.records",
    "Hasher": "plugin.records",
    "ArtifactInfo": "plugin.records",
    "Discovered": "plugin.records",
    "FetchRequest": "plugin.records",
    "Fetched": "plugin.records",
    "Launch": "plugin.records",
    "Probe": "plugin.records",
    # Protocols your implementation objects satisfy (the core checks them with ``isinstance``).
    "ServerBackend": "plugin.protocols",
    "LoadingBackend": "plugin.protocols",
    "HealthReporter": "plugin.protocols",
    "OptionGuard": "plugin.protocols",
    "Scanner": "plugin.protocols",
    "Discoverer": "plugin.protocols",
    "Fetcher": "plugin.protocols",
    "Store": "plugin.protocols",
    "HashObject": "plugin.protocols",
    "Inspector": "plugin.protocols",
    # Progress of long work (downloads, hashing).
    "Progress": "reports",
    "SILENT": "reports",
    # Errors you may raise (one line ``message`` + ``hint``; the CLI prints them, exit code 1).
    "AcquisitionError": "errors",
    "AmbiguousNameError": "errors",
    "ArtifactFormatError": "errors",
    "BackendNotFoundError": "errors",
    "BackendNotRunningError": "errors",
    "BackendTimeoutError": "errors",
    "CapabilityError": "errors",
    "ChangedOnDiskError": "errors",
    "ChecksumMismatchError": "errors",
    "ConfigError": "errors",
    "DiskSpaceError": "errors",
    "DivergenceError": "errors",
    "DoesNotFitError": "errors",
    "DownloadError": "errors",
    "EntryEditError": "errors",
    "EntryNotFoundError": "errors",
    "ExportError": "errors",
    "HasherNotFoundError": "errors",
    "IdentityConflictError": "errors",
    "ImageworksError": "errors",
    "IntegrityError": "errors",
    "LockTimeoutError": "errors",
    "LockedEntryDriftError": "errors",
    "ModelNotPulledError": "errors",
    "NotActivatableError": "errors",
    "NotVerifiableError": "errors",
    "PluginError": "errors",
    "PortInUseError": "errors",
    "ReadOnlyFileError": "errors",
    "ReadOnlyRegistryError": "errors",
    "RegistryError": "errors",
    "RegistryFileError": "errors",
    "RegistryValidationError": "errors",
    "RemoteAccessError": "errors",
    "RemoteNotFoundError": "errors",
    "RemoteUnavailableError": "errors",
    "SchemaVersionError": "errors",
    "SelectionError": "errors",
    "ServerNotReadyError": "errors",
    "ServerStartError": "errors",
    "ServingError": "errors",
    "SourceNotFoundError": "errors",
    "StaleEditError": "errors",
    "StorageError": "errors",
    "UnsafeLaunchError": "errors",
    "UnsafePathError": "errors",
    # Settings.
    "split_command": "settings",
    # Safe files: atomic locked writes, safe names from outside, strict JSON.
    "atomic_write": "fs.storage",
    "file_lock": "fs.storage",
    "fsync_dir": "fs.storage",
    "read_regular": "fs.storage",
    "safe_join": "fs.safepath",
    "check_relative_name": "fs.safepath",
    "blob_path": "fs.safepath",
    "check_sha256_digest": "fs.safepath",
    "loads_strict": "registry.jsonio",
    # Model file formats (headers only).
    "read_gguf_header": "formats.gguf",
    "quant_name": "formats.gguf",
    "read_json": "formats.hfconfig",
    "quantization": "formats.hfconfig",
    "format_from_config": "formats.inspect",
    "is_lfs_pointer": "formats.layout",
    # Hashing.
    "hash_file": "integrity.hashing",
    # The registry (read-only use).
    "open_registry": "registry",
    # Serving: endpoints, the checks every server command line passes, and the live model.
    "local_base_url": "serving.endpoints",
    "serving_port": "serving.endpoints",
    "normalize_host_url": "serving.endpoints",
    "check_base_url": "serving.endpoints",
    "check_env": "serving.serverargs",
    "check_extra_args": "serving.serverargs",
    "check_host": "serving.serverargs",
    "check_positional": "serving.serverargs",
    "check_served_id": "serving.serverargs",
    "model_path": "serving.serverargs",
    "option_name": "serving.serverargs",
    "live_active": "live.active",
    # Asking an OpenAI-compatible server whether it is ready and what it serves (bounded, no redirects, no proxy).
    "ProbeError": "serving.probing",
    "probe_get": "serving.probing",
    "probe_root": "serving.probing",
    "model_ids": "serving.probing",
    "served_ids": "serving.probing",
    "openai_ready": "serving.probing",
    "openai_health": "serving.probing",
    "version_at": "serving.probing",
    # Text a person reads: sizes in binary units, URLs without credentials.
    "human_bytes": "units",
    "redact_url": "redact",
    "redact": "redact",
    # The core's version (for a User-Agent).
    "__version__": "",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    where = _NAMES.get(name)
    if where is None:
        raise AttributeError(f"imageworks_models.api has no {name!r}: plugins may use only the names in "
                             f"imageworks_models.api.__all__")
    if where.endswith(":"):
        value = importlib.import_module("imageworks_models." + where[:-1])
    else:
        value = getattr(importlib.import_module("imageworks_models" + ("." + where if where else "")), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for type checkers and editors; at run time the names load lazily above
    from imageworks_models.errors import *  # noqa: F403
    from imageworks_models.plugin.hookspecs import hookimpl  # noqa: F401
    from imageworks_models.plugin.protocols import *  # noqa: F403
    from imageworks_models.plugin.records import *  # noqa: F403
