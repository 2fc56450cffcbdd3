"""What a plugin's implementation objects offer, as ``typing.Protocol`` s: the core checks them with
``isinstance`` (each is ``runtime_checkable``) instead of probing for attributes one by one.

A record's ``load()`` returns the implementation object. A backend is a :class:`ServerBackend` (the core runs and
stops its server: vLLM, LMDeploy, llama.cpp) or a :class:`LoadingBackend` (it loads models into a server it runs
itself: Ollama); either may also be a :class:`HealthReporter`, and a server backend may be an
:class:`OptionGuard`. A source offers the capabilities its record lists in ``provides``: ``scan``
(:class:`Scanner`), ``discover`` (:class:`Discoverer`), ``fetch`` (:class:`Fetcher`), ``store``
(:class:`Store`). A hasher's ``new()`` returns a :class:`HashObject`; an ``inspect_artifact`` hook is an
:class:`Inspector`. The README's plugin guide lists every method here with its exact signature
(tests/architecture/test_plugin_api.py keeps the two equal).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Protocol, runtime_checkable

if TYPE_CHECKING:
    from imageworks_models.plugin.records import ArtifactInfo, Discovered, Fetched, FetchRequest, Launch, Probe
    from imageworks_models.reports import Progress


@runtime_checkable
class ServerBackend(Protocol):
    """A backend whose model servers the core starts, checks and stops (the whole lifecycle is the core's)."""

    def launch(self, entry: dict[str, Any], *, settings: Any) -> Launch:
        """What to run to serve ``entry``: the command, its environment, host, port and readiness path."""

    def probe(self, endpoint: str, served_model_id: str, *, settings: Any) -> Probe:
        """Ask the server at ``endpoint`` whether it serves ``served_model_id`` yet. Never raises for a server
        that is down or starting: say so in the Probe."""


@runtime_checkable
class LoadingBackend(Protocol):
    """A backend that loads models into a server it runs itself (the core starts no process for it)."""

    def activate(self, entry: dict[str, Any], *, settings: Any) -> dict[str, Any]:
        """Load ``entry`` into the running server; returns ``{"name", "backend", "served_model_id", "endpoint"}``."""

    def deactivate(self, entry: dict[str, Any], *, settings: Any) -> None:
        """Unload ``entry`` from the server."""


@runtime_checkable
class HealthReporter(Protocol):
    """A backend that can say whether its server(s) answer."""

    def health(self, *, settings: Any) -> dict[str, Any] | list[dict[str, Any]]:
        """``{"backend", "url", "ok", "version", "loaded", "error", "hint"}`` (a list for remote endpoints). A
        server that is down is ``ok: False`` with the error, never an exception."""


@runtime_checkable
class OptionGuard(Protocol):
    """A server backend that names the command-line options its launch owns (an entry's ``extra_args`` and an
    imported llama-swap command may not set them)."""

    def protected_options(self, flavour: str | None = None) -> Mapping[str, str]:
        """``{option: the entry field that sets it}``; ``flavour`` picks a variant of the server program."""


@runtime_checkable
class Scanner(Protocol):
    """A source that finds models in a weights folder (``provides=("scan",)``)."""

    def scan(self, root: Path, *, settings: Any) -> Iterator[Discovered]:
        """Every model under ``root``; read headers only, never whole weight files."""


@runtime_checkable
class Discoverer(Protocol):
    """A source that knows its own default location (``provides=("discover",)``)."""

    def discover(self, *, settings: Any) -> Iterator[Discovered]:
        """Every model where this source keeps models by default (e.g. the Hub cache)."""


@runtime_checkable
class Fetcher(Protocol):
    """A source that downloads (``provides=("fetch",)``)."""

    def accepts(self, spec: str) -> bool:
        """Whether ``spec`` (what the user typed after ``download``) is this source's to fetch."""

    def fetch(self, request: FetchRequest, *, settings: Any, progress: Progress, hash_file: Any = None) -> Fetched:
        """Plan (``request.dry_run``) or perform the download; digests are computed while the bytes arrive."""

    def latest_commit(self, repo_id: str, revision: str, *, settings: Any) -> str:
        """The commit ``revision`` names upstream now (for ``check-updates``)."""


@runtime_checkable
class Store(Protocol):
    """A source that reads a model store another program owns (``provides=("store",)``, e.g. Ollama's)."""

    def store_dir(self, *, settings: Any) -> Path:
        """Where the store is."""

    def read(self, *, settings: Any) -> tuple[list[Discovered], list[str], set[str]]:
        """The store's models, the warnings reading it gave, and the blob paths present."""

    def served_tags(self, *, settings: Any) -> set[str] | None:
        """The tags the store's server lists now (``None``: the server is not reachable)."""

    def check(self, found: Discovered, *, settings: Any, plugins: Any = None) -> str | None:
        """Why ``found`` cannot be imported, or ``None``."""

    def removal(self, entry: dict[str, Any], *, settings: Any) -> dict[str, Any]:
        """What removing ``entry`` from the store would do: ``{"command", "tags", "shared"}``."""

    def remove(self, entry: dict[str, Any], *, settings: Any) -> list[str]:
        """Remove ``entry`` from the store; returns the tags removed."""


@runtime_checkable
class HashObject(Protocol):
    """What a hasher's ``new()`` returns: a hashlib-style object (``update`` should release the GIL)."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        """Add ``data``."""

    def hexdigest(self) -> str:
        """The digest so far, in hex."""


@runtime_checkable
class Inspector(Protocol):
    """An ``inspect_artifact`` implementation: identify a model file or folder from its headers."""

    def __call__(self, path: Path) -> ArtifactInfo | None:
        """The artifact's facts, or ``None`` when this plugin does not recognise it."""
