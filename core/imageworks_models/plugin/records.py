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
            a file that holds most of the bytes is then hashed alone, with all the cores, instead of one
            thread per file competing for the same cores.
        single_threaded: for a ``multithreaded`` hasher, returns a fresh object whose ``update`` runs on the
            calling thread alone. Given it, files of similar sizes are hashed one per thread with it, which
            overlaps one file's reads with another's hashing (blake3 on eight files: 1.6x faster than one
            file at a time, measured in bench/hash_throughput.py).
    """

    name: str
    description: str
    new: Callable[[], Any]
    multithreaded: bool = False
    single_threaded: Callable[[], Any] | None = None


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
    errors: tuple[str, ...] = ()  # one line per unreadable file: "<file>: <what is wrong>"


KINDS = {"source": Source, "backend": Backend, "hasher": Hasher}


@dataclass(frozen=True)
class Discovered:
    """One model a source found (by scanning a folder, reading a store, or downloading it).

    The core turns it into a registry entry: it inspects ``path`` when ``info`` is ``None``, names the
    entry by the documented rule, and records the manifest.

    Attributes:
        path: absolute path of the model folder, or of the single weight file (a loose GGUF).
        name_hint: what the model is called where it was found (repo name, folder or file stem); the
            entry's family is derived from it.
        provider: the source's name (``hf``, ``ollama``...), recorded as ``source.provider``.
        info: what the source already knows; ``None`` lets the core call ``inspect_artifact``.
        repo_id, revision, commit: where it came from, when known.
        backend: the backend that should serve it, when the source knows better than the default.
        served_model_id: the id clients ask the backend for, when the source knows it.
        placeholder: why this is a placeholder (no real weights), or ``None``.
        problem: why this cannot be recorded as found (shown as a ``skip`` row), or ``None``.
        aliases: other names clients may use for the same files (e.g. more Ollama tags of one blob).
        metadata: source-specific facts recorded under the entry's ``metadata``.
        size_bytes: the model's size when the source knows it without walking ``path``.
        digests: ``{file name relative to path: "sha256:<hex>"}`` known without reading the files (a
            content-addressed store names blobs by digest); the manifest is built from them, unhashed.
    """

    path: str
    name_hint: str
    provider: str
    info: ArtifactInfo | None = None
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None
    backend: str | None = None
    served_model_id: str | None = None
    placeholder: str | None = None
    problem: str | None = None
    aliases: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    size_bytes: int | None = None
    digests: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FetchRequest:
    """What ``download`` asks a source with ``fetch`` to get; see the README's "download".

    Attributes:
        spec: the model to fetch as the user wrote it, e.g. ``"Qwen/Qwen2.5-VL-7B-Instruct-AWQ@main"``.
        dest_root: the weights folder; the model lands in ``dest_root/<owner>/<repo>``.
        location: the location label recorded on the entry.
        format: the wanted format (``awq``, ``gguf``...) or ``None`` for the best the repo offers.
        weights: exact weight file names to take, or empty for the format's rule.
        support_repo: another repo to take tokenizer/config files from.
        include_optional: also take READMEs, licences and other extras.
        force: download again even if the same commit is already in place.
        use_aria2: allow aria2c for large files.
        dry_run: resolve and plan only; write nothing.
        choose: asks the user to pick one of several options (``choose(question, options) -> option``),
            or ``None`` when not interactive (the source then picks by its rule or refuses).
        dest: the model's folder, when the registry already says where it belongs (a curated
            ``backend_config.model_path``); ``None`` for ``dest_root/<owner>/<repo>``.
        commit: the commit an earlier plan of the same request resolved the revision to: fetch exactly that
            one, even if the branch moved since (``None``: resolve the revision now).
    """

    spec: str
    dest_root: str
    location: str
    format: str | None = None
    weights: tuple[str, ...] = ()
    support_repo: str | None = None
    include_optional: bool = False
    force: bool = False
    use_aria2: bool = True
    dry_run: bool = False
    choose: Callable[[str, list[str]], str] | None = None
    dest: str | None = None
    commit: str | None = None


@dataclass(frozen=True)
class Fetched:
    """What a source's ``fetch`` did: the model (as :class:`Discovered`) and the transfer's facts.

    Attributes:
        model: the fetched model, with ``path`` its final folder (or, for a dry run, where it would go).
        files: the file names fetched or planned, relative to ``model.path``.
        total_bytes: their size.
        transferred_bytes: bytes that came over the network in this run (0 for a dry run).
        reused_bytes: bytes already present from an interrupted run and not fetched again.
        digests: ``{file name: "sha256:<hex>"}`` of the files checked against the remote's metadata.
        notes: lines for the user (e.g. "aria2c used for 3 files").
        format, quantization: what the file choice was made for (e.g. ``gguf``/``Q4_K_M``), when known
            before the files are inspected.
    """

    model: Discovered
    files: tuple[str, ...]
    total_bytes: int
    transferred_bytes: int = 0
    reused_bytes: int = 0
    digests: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    format: str | None = None
    quantization: str | None = None


@dataclass(frozen=True)
class Launch:
    """How to start a backend's server for one entry: what a process backend's ``launch(entry, *, settings)``
    returns. The core's orchestrator (:mod:`imageworks_models.serving.activation`) runs it, never through a shell.

    Attributes:
        argv: the full command line, one argument per item (the executable first).
        host: the address the server binds (``--host`` / ``--server-name``).
        port: the port it binds; the orchestrator checks nobody else holds it.
        served_model_id: the id the server must list at ``/v1/models`` before it counts as ready.
        endpoint: the OpenAI-compatible base URL clients use (``http://host:port/v1``).
        env: variables added to the orchestrator's environment for the server (already checked).
        not_found_hint: what to tell the user when ``argv[0]`` cannot be found.
        stop_grace: seconds the server gets between SIGTERM and SIGKILL when it is stopped (recorded with
            it); ``None``: the ``stop_grace`` setting.
    """

    argv: tuple[str, ...]
    host: str
    port: int
    served_model_id: str
    endpoint: str
    env: dict[str, str] = field(default_factory=dict)
    not_found_hint: str = ""
    stop_grace: float | None = None


@dataclass(frozen=True)
class Probe:
    """One readiness check of a server: what a process backend's ``probe(endpoint, served_model_id, *,
    settings)`` returns.

    Attributes:
        ready: it answered health checks and lists the served id.
        detail: why not (``"/health answered 503"``, ``"connection refused"``...), or what it runs when ready.
        version: the server's version, when it says.
    """

    ready: bool
    detail: str = ""
    version: str | None = None
