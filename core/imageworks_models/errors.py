"""Every exception the library raises, grouped by domain.

Each error carries a one-line ``message`` (what and where) and an optional ``hint`` (how to fix), and
an ``exit_code`` the CLI uses: 1 for user errors, 2 for verification divergence. The CLI prints
``error: <message>`` and ``hint: <hint>``; tracebacks only with ``IMAGEWORKS_DEBUG=1``.
"""

from __future__ import annotations

from imageworks_models.redact import redact  # standard library only; every error message goes through it


class ImageworksError(Exception):
    """Base class: a problem the user can act on."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        message, hint = redact(message), redact(hint)
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        """The lines the CLI prints for this error (message first, then any detail)."""
        return [self.message]


# --- configuration ------------------------------------------------------------------------------


class ConfigError(ImageworksError):
    """A configuration file or setting is invalid."""


# --- storage (locks, atomic writes) -------------------------------------------------------------


class StorageError(ImageworksError):
    """A file could not be read, locked or written; the previous file is intact."""


class LockTimeoutError(StorageError):
    """Another process held the lock longer than the timeout."""

    def __init__(self, message: str, *, holder: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.holder = holder


class ChangedOnDiskError(StorageError):
    """A file changed on disk (a hand edit, another tool) between our read and our replace; it was kept (W17)."""


class ReadOnlyFileError(StorageError):
    """A file or folder is marked read-only (no write bit); it is not replaced, even by root (W17)."""


# --- registry -----------------------------------------------------------------------------------


class RegistryError(ImageworksError):
    """Base class for problems with the registry files or their content."""


class RegistryFileError(RegistryError):
    """A registry file cannot be parsed (empty, truncated, wrong encoding, duplicate keys...)."""

    def __init__(self, path: str, cause: str, *, line: int | None = None, column: int | None = None,
                 hint: str | None = None):
        where = path if line is None else f"{path}:{line}:{column or 1}"
        super().__init__(f"{where}: {cause}", hint=hint)
        self.path = path
        self.line = line
        self.column = column
        self.cause = cause


class RegistryValidationError(RegistryError):
    """Entries fail validation; ``problems`` lists every one, each naming file and JSON path."""

    def __init__(self, path: str, problems: list[str], *, hint: str | None = None):
        n = len(problems)
        super().__init__(f"{path}: {n} invalid value{'s' if n != 1 else ''}", hint=hint)
        self.path = path
        self.problems = problems

    def lines(self) -> list[str]:
        return [self.message] + [f"  {p}" for p in self.problems]


class SchemaVersionError(RegistryError):
    """``schema_version`` is missing, mistyped, or newer than this code knows."""


class ReadOnlyRegistryError(RegistryError):
    """The registry was opened read-only (newer schema, or a read-only folder)."""


class EntryNotFoundError(RegistryError):
    """No entry has this name, alias or role."""


class AmbiguousNameError(EntryNotFoundError):
    """Several entries answer to the name typed (an alias, served id or prefix they share); they are listed."""


class IdentityConflictError(RegistryError):
    """Found files would take a name that belongs to an entry whose files are elsewhere (or to two entries)."""


class EntryEditError(RegistryError):
    """An edit of an entry has invalid fields; ``errors`` maps each field to what is wrong. Nothing was written."""

    def __init__(self, errors: dict[str, str], *, name: str):
        super().__init__(f"{name}: {len(errors)} invalid field{'s' if len(errors) != 1 else ''}",
                         hint="fix the fields named above and save again")
        self.errors = errors

    def lines(self) -> list[str]:
        return [self.message] + [f"  {k}: {v}" for k, v in sorted(self.errors.items())]


class StaleEditError(RegistryError):
    """An edit was based on an older copy of the entry (someone else saved it since); nothing was written."""


# --- selection ----------------------------------------------------------------------------------


class SelectionError(ImageworksError):
    """A model could not be selected."""


class CapabilityError(SelectionError):
    """The requested entry or role lacks a required capability."""


# --- integrity (hashing, verify, lock) ----------------------------------------------------------


class IntegrityError(ImageworksError):
    """Files could not be hashed or checked (unreadable, changing, not on the filesystem)."""


class NotVerifiableError(IntegrityError):
    """The entry has no files this tool can check (no path recorded, or a store reference)."""


class DivergenceError(IntegrityError):
    """The files differ from the expected aggregate digest. Exit code 2, as ``verify`` uses."""

    exit_code = 2

    def __init__(self, message: str, *, changes: list[str] | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.changes = list(changes or [])

    def lines(self) -> list[str]:
        return [self.message] + [f"  {c}" for c in self.changes]


class LockedEntryDriftError(DivergenceError):
    """A locked entry's files no longer match its expected aggregate; it may not be activated."""


# --- artifacts (model file formats) ---------------------------------------------------------------


class ArtifactFormatError(ImageworksError):
    """A model file (GGUF, safetensors, config JSON...) is malformed, truncated or hostile.

    ``message`` is ``"<path>: <cause>"``: one line naming the file, so a folder inspection can list one
    line per bad file.
    """

    def __init__(self, path, cause: str, *, hint: str | None = None):
        super().__init__(f"{path}: {cause}", hint=hint)
        self.path = str(path)
        self.cause = cause


# --- plugins ------------------------------------------------------------------------------------


class PluginError(ImageworksError):
    """A plugin is broken or conflicts with another one."""


class BackendNotFoundError(PluginError):
    """An entry names a backend that no installed plugin provides."""


class HasherNotFoundError(PluginError):
    """A digest or option names a hash algorithm that no installed plugin provides."""


# --- acquisition (downloads, scans) -------------------------------------------------------------


class AcquisitionError(ImageworksError):
    """A model could not be fetched or discovered; the registry is unchanged."""


class UnsafePathError(AcquisitionError):
    """A file name from a remote or a store could escape its target folder; nothing was written."""


class SourceNotFoundError(PluginError):
    """No installed plugin provides the source (or the ability) a command needs."""


class RemoteNotFoundError(AcquisitionError):
    """The repository, revision or file does not exist on the remote (or is private)."""


class RemoteAccessError(AcquisitionError):
    """The remote refused access: a gated repository, or a missing or rejected token."""


class RemoteUnavailableError(AcquisitionError):
    """The remote could not be reached or kept failing."""


class DownloadError(AcquisitionError):
    """A transfer failed or delivered wrong bytes; bad files were deleted, nothing was registered."""


class ChecksumMismatchError(DownloadError):
    """A downloaded file's digest differs from the one the remote published."""


class DiskSpaceError(AcquisitionError):
    """Not enough free space for a download (checked before it starts) or the disk filled up."""


# --- export and import (production stack, llama-swap) -------------------------------------------------


class ExportError(ImageworksError):
    """An export could not be written (the file exists, or would carry credentials) or an import file could not
    be read; nothing was written."""


# --- serving (backends: load, stop, health) --------------------------------------------------------


class ServingError(ImageworksError):
    """A backend could not load, stop or report on a model."""


class BackendNotRunningError(ServingError):
    """The backend's server is not running or cannot be reached at the configured address."""


class ModelNotPulledError(ServingError):
    """The backend's server does not have the model (e.g. it was never pulled into Ollama)."""


class BackendTimeoutError(ServingError):
    """The backend's server did not answer in time (loading a large model can take minutes)."""


class NotActivatableError(ServingError):
    """The entry's backend cannot load or stop models from here (remote, or no activation support)."""


class UnsafeLaunchError(ServingError):
    """A server command line or environment from the registry was refused (it could override the host, port,
    model or served name, enable remote code, or inject a library); nothing was started."""


class DoesNotFitError(ServingError):
    """The model's estimated memory is more than the device it would run on has free (``fit`` shows why)."""


class PortInUseError(ServingError):
    """The serving port is held by a process the orchestrator did not start; it is never signalled."""


class _ServerLogMixin:
    log_path: str | None
    log_tail: list[str]

    def lines(self) -> list[str]:
        lines = [self.message]
        if self.log_tail:
            lines.append(f"last lines of {self.log_path}:")
            lines += [f"  | {line}" for line in self.log_tail]
        return lines


class ServerStartError(_ServerLogMixin, ServingError):
    """A started server exited (or could not be run) before it was ready; it and its process group are gone.

    Attributes:
        returncode: the server's exit code (128+N when signal N killed it), ``None`` when not known.
        log_path, log_tail: the server's log and its last lines.
    """

    def __init__(self, message: str, *, hint: str | None = None, returncode: int | None = None,
                 log_path: str | None = None, log_tail: list[str] | None = None):
        super().__init__(message, hint=hint)
        self.returncode = returncode
        self.log_path = log_path
        self.log_tail = log_tail or []


class ServerNotReadyError(_ServerLogMixin, BackendTimeoutError):
    """A started server did not become ready in time; it and its process group were stopped."""

    def __init__(self, message: str, *, hint: str | None = None, log_path: str | None = None,
                 log_tail: list[str] | None = None):
        super().__init__(message, hint=hint)
        self.log_path = log_path
        self.log_tail = log_tail or []
