"""The small named records plugins hand to the core through the ``register`` callbacks.

Records are cheap to build: each carries a ``load`` callable that imports and builds the real
implementation only when a command needs it, so registering a plugin never imports heavy libraries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Source:
    """Something that discovers entries (scans a folder, reads a store) and/or fetches them.

    Attributes:
        name: unique source name (e.g. ``hf``, ``ollama``); normalised to lowercase with ``-``.
        description: one line for ``imageworks-models plugins``.
        load: returns the implementation object (see the README's "Writing a plugin").
        provides: what the implementation can do, e.g. ``("discover", "fetch")``.
    """

    name: str
    description: str
    load: Callable[[], Any] | None = None
    provides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Backend:
    """A serving backend: activate / deactivate / health, and the endpoint clients should call.

    Attributes:
        name: the value entries use in their ``backend`` field (e.g. ``vllm``).
        description: one line for ``imageworks-models plugins``.
        endpoint: ``endpoint(entry, settings) -> str``: the OpenAI-compatible base URL for an entry.
        load: returns the implementation object used for activation and health.
        activates: whether the orchestrator may start and stop this backend's servers.
    """

    name: str
    description: str
    endpoint: Callable[[dict, Any], str] | None = None
    load: Callable[[], Any] | None = None
    activates: bool = False


@dataclass(frozen=True)
class Hasher:
    """A named file hasher; digests are stored as ``<name>:<hex>``.

    Attributes:
        name: the algorithm name (``sha256`` is built in and the default).
        description: one line for ``imageworks-models plugins``.
        new: returns a fresh hashlib-style object (``update(bytes)``, ``hexdigest()``).
        multithreaded: ``update`` already spreads one large buffer over several cores (blake3 does);
            files are then hashed one at a time, each with a reader thread ahead, instead of one
            thread per file competing for the same cores.
    """

    name: str
    description: str
    new: Callable[[], Any]
    multithreaded: bool = False


@dataclass(frozen=True)
class ArtifactInfo:
    """What ``inspect_artifact`` learned from a file's or folder's headers.

    Every field is optional: ``None`` means "not known", never "false".
    """

    format: str | None = None  # safetensors | gguf | awq | gptq | ...
    quantization: str | None = None  # q4_k_m | awq | fp8 | ...
    family: str | None = None
    parameter_count: int | None = None
    capabilities: frozenset[str] = frozenset()
    chat_template: dict[str, Any] | None = None  # {source, path, sha256}
    details: dict[str, Any] = field(default_factory=dict)


KINDS = {"source": Source, "backend": Backend, "hasher": Hasher}
