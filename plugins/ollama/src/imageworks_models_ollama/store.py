"""Reading an Ollama model store on disk: ``manifests/<host>/<namespace>/<model>/<tag>`` and ``blobs/``.

Everything read here comes from files another program wrote, so nothing is trusted: every digest is
checked (``^sha256[:-][0-9a-f]{64}$``) before a path is built from it and every blob path must stay in
``blobs/`` after ``realpath``; symlinks are never followed; manifests and config blobs are size-capped and
parsed strictly. A bad manifest makes that one model a ``problem`` (the import skips it with a warning),
never the whole store. Only headers and small JSON blobs are read, so a 300-model store reads in well
under a second; hashing the weight blobs is a separate, explicit step (:func:`check_blob`).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from imageworks_models.api import ImageworksError, UnsafePathError
from imageworks_models.api import blob_path, check_sha256_digest

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
SERVICE_STORE = Path("/usr/share/ollama/.ollama/models")  # the Linux install script's service user
MEDIA_MODEL = "application/vnd.ollama.image.model"
MEDIA_PROJECTOR = "application/vnd.ollama.image.projector"
MEDIA_TEMPLATE = "application/vnd.ollama.image.template"
MAX_JSON = 1 << 20  # manifests and config blobs are a few hundred bytes; refuse anything absurd
GGUF_MAGIC = b"GGUF"


class StoreError(ImageworksError):
    """The Ollama store folder is missing or unreadable (one model's problems are not raised)."""


def store_candidates(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where Ollama keeps models, in Ollama's order: ``$OLLAMA_MODELS``, else ``~/.ollama/models``, then
    the Linux service user's ``/usr/share/ollama/.ollama/models``."""
    env = os.environ if env is None else env
    if env.get("OLLAMA_MODELS"):
        return [Path(env["OLLAMA_MODELS"]).expanduser()]
    home = Path(env.get("HOME") or Path.home())
    return [home / ".ollama" / "models", SERVICE_STORE]


def find_store(configured: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The store to read: ``configured`` if given, else the first candidate that has a ``manifests`` folder.

    Raises:
        StoreError: no store exists where Ollama keeps one.
    """
    candidates = [Path(configured).expanduser()] if configured else store_candidates(env)
    for path in candidates:
        if (path / "manifests").is_dir():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise StoreError(f"no Ollama store found (looked in {tried})",
                     hint="set OLLAMA_MODELS (or ollama_models in the config) to the folder holding "
                          "manifests/ and blobs/, or pull a model with `ollama pull` first")


def served_id_of(host: str, namespace: str, name: str, tag: str) -> str:
    """Ollama's short model name: ``name:tag`` on the default registry and namespace, ``namespace/name:tag``
    on the default registry, ``host/namespace/name:tag`` elsewhere (e.g. ``hf.co/org/repo:Q4_K_M``)."""
    if host.lower() == DEFAULT_HOST:  # Ollama compares these case-insensitively
        return f"{name}:{tag}" if namespace.lower() == DEFAULT_NAMESPACE else f"{namespace}/{name}:{tag}"
    return f"{host}/{namespace}/{name}:{tag}"


def parse_served_id(model: str) -> tuple[str, str, str, str]:
    """``(host, namespace, name, tag)`` of an Ollama model name (the inverse of :func:`served_id_of`)."""
    path, _, tag = model.rpartition(":") if ":" in model.rsplit("/", 1)[-1] else (model, "", "")
    parts = path.split("/")
    host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
    if len(parts) == 3:
        host, namespace, name = parts
    elif len(parts) == 2:
        namespace, name = parts
    else:
        name = parts[-1]
    return host, namespace, name, tag or "latest"


@dataclass
class Blob:
    digest: str  # sha256:<hex>
    path: Path
    size: int


@dataclass
class StoreModel:
    """One tag in the store, as its manifest describes it."""

    served_id: str
    manifest_path: Path
    host: str = DEFAULT_HOST
    namespace: str = DEFAULT_NAMESPACE
    name: str = ""
    tag: str = ""
    manifest_digest: str | None = None  # sha256 hex of the manifest file (what /api/tags calls digest)
    model: Blob | None = None
    projector: Blob | None = None
    template_digest: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    gguf: bool = False
    remote: str | None = None  # a cloud model: the weights live on another host
    problem: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def quantization(self) -> str | None:
        value = self.config.get("file_type")
        return value if isinstance(value, str) and value.strip() else None


def _read_small(path: Path, what: str) -> bytes:
    """A small regular file's bytes, without following a symlink at the last component. The open does not block
    (a FIFO put where a manifest belongs would hang it) and ``fstat`` refuses anything but a regular file (B19)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafePathError(f"{what} {path} is a symbolic link; not followed",
                                  hint="pull the model again (ollama pull) so the store holds a real file") from None
        if exc.errno == errno.ENXIO:  # a socket: open() says "no such device or address"
            raise ValueError(f"{what} {path} is not a regular file (a socket)") from None
        raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{what} {path} is not a regular file")
        if st.st_size > MAX_JSON:
            raise ValueError(f"{what} {path} is {st.st_size} bytes, over the {MAX_JSON}-byte limit")
        chunks, left = [], MAX_JSON + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _json(data: bytes, path: Path, what: str) -> Any:
    from imageworks_models.api import RegistryFileError
    from imageworks_models.api import loads_strict

    try:
        return loads_strict(data, str(path))
    except RegistryFileError as exc:
        raise ValueError(f"{what} {path}: {exc.cause}") from None


def _layer_blob(blobs: Path, layer: Any, index: str) -> Blob:
    if not isinstance(layer, dict):
        raise ValueError(f"{index} is not an object")
    digest = check_sha256_digest(layer.get("digest"), where=f"{index} digest")
    size = layer.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"{index} has no valid size")
    return Blob(digest, blob_path(blobs, digest, where=f"{index} digest"), size)


def _check_present(blob: Blob, what: str) -> None:
    """The blob exists as a regular file of the manifest's size (a ``-partial`` file is not the blob)."""
    try:
        st = os.lstat(blob.path)
    except FileNotFoundError:
        partial = any(blob.path.parent.glob(blob.path.name + "-partial*"))
        raise ValueError(f"{what} blob {blob.path.name} is missing"
                         + (" (only a -partial download is there: the pull did not finish)" if partial else ""))
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError(f"{what} blob {blob.path} is a symbolic link; not followed",
                              hint="pull the model again (ollama pull) so the store holds a real file")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{what} blob {blob.path} is not a regular file")
    if st.st_size != blob.size:
        raise ValueError(f"{what} blob {blob.path.name} is {st.st_size} bytes, the manifest says {blob.size} "
                         "(an interrupted pull?)")


def _gguf_magic(path: Path) -> bool:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device is never read (B19)
            return False
        return os.read(fd, 4) == GGUF_MAGIC
    finally:
        os.close(fd)


def read_model(store: Path, host: str, namespace: str, name: str, tag: str) -> StoreModel:
    """One tag's manifest, config and blobs checked; any problem is recorded on the result, never raised."""
    manifest_path = store / "manifests" / host / namespace / name / tag
    model = StoreModel(served_id=served_id_of(host, namespace, name, tag), manifest_path=manifest_path,
                       host=host, namespace=namespace, name=name, tag=tag)
    blobs = store / "blobs"
    try:
        import hashlib

        raw = _read_small(manifest_path, "manifest")
        model.manifest_digest = hashlib.sha256(raw).hexdigest()
        doc = _json(raw, manifest_path, "manifest")
        if not isinstance(doc, dict):
            raise ValueError(f"manifest {manifest_path} is not a JSON object")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ValueError(f"manifest {manifest_path} has no layers list")
        config_ref = doc.get("config")
        if config_ref is not None:  # every manifest Ollama writes has one; without it the GGUF header tells
            config_blob = _layer_blob(blobs, config_ref, "config")
            try:
                config = _json(_read_small(config_blob.path, "config blob"), config_blob.path, "config blob")
                model.config = config if isinstance(config, dict) else {}
            except (ValueError, OSError) as exc:
                model.warnings.append(f"{model.served_id}: {exc}; falling back to the GGUF header")
        for i, layer in enumerate(layers):
            media = layer.get("mediaType") if isinstance(layer, dict) else None
            if media == MEDIA_MODEL:
                blob = _layer_blob(blobs, layer, f"layers[{i}]")
                if model.model is not None and model.model.digest != blob.digest:
                    raise ValueError("manifest has two different model layers")
                model.model = blob  # the same layer listed twice is the same weights
            elif media == MEDIA_PROJECTOR and model.projector is None:
                model.projector = _layer_blob(blobs, layer, f"layers[{i}]")
            elif media == MEDIA_TEMPLATE:
                model.template_digest = _layer_blob(blobs, layer, f"layers[{i}]").digest
            elif isinstance(layer, dict) and layer.get("digest") is not None:
                _layer_blob(blobs, layer, f"layers[{i}]")  # every digest is checked, used or not
        remote = model.config.get("remote_host") or model.config.get("remote_model")
        if model.model is None:
            if remote:
                model.remote = str(model.config.get("remote_host") or remote)
                return model
            raise ValueError("manifest has no model layer")
        _check_present(model.model, "model")
        if model.projector is not None:
            _check_present(model.projector, "projector")
        model.gguf = _gguf_magic(model.model.path)
        if not model.gguf:
            raise ValueError(f"model blob {model.model.path.name} is not a GGUF file")
    except (ValueError, OSError, UnsafePathError) as exc:
        model.problem = getattr(exc, "message", None) or str(exc)
    return model


def _dirs(path: Path) -> Iterator[str]:
    try:
        with os.scandir(path) as it:
            for e in it:
                if not e.name.startswith(".") and e.is_dir(follow_symlinks=False):
                    yield e.name
    except OSError:
        return


def iter_tags(store: Path) -> Iterator[tuple[str, str, str, str]]:
    """``(host, namespace, name, tag)`` of every manifest file, in sorted order, never following links.

    Raises:
        StoreError: the store has no readable ``manifests`` folder.
    """
    root = store / "manifests"
    try:
        hosts = sorted(_dirs(root)) if root.is_dir() and not root.is_symlink() else None
    except OSError:
        hosts = None
    if hosts is None:
        raise StoreError(f"{root} is not a readable folder",
                         hint="point OLLAMA_MODELS at the folder holding manifests/ and blobs/")
    for host in hosts:
        for ns in sorted(_dirs(root / host)):
            for name in sorted(_dirs(root / host / ns)):
                try:
                    with os.scandir(root / host / ns / name) as it:
                        tags = sorted(e.name for e in it if not e.name.startswith(".")
                                      and not e.is_dir(follow_symlinks=False))
                except OSError:
                    continue
                for tag in tags:
                    yield host, ns, name, tag


def read_store(store: Path) -> list[StoreModel]:
    """Every tag in the store (bad ones with ``problem`` set), sorted by served id."""
    return sorted((read_model(store, *parts) for parts in iter_tags(store)), key=lambda m: m.served_id)


def check_blob(blob: Blob, *, plugins=None) -> str | None:
    """Hash a blob and compare it with the digest its name claims; ``None`` when it matches, else why not."""
    from imageworks_models.api import IntegrityError
    from imageworks_models.api import hash_file

    try:
        actual = hash_file(blob.path, algorithm="sha256", plugins=plugins)
    except IntegrityError as exc:
        return exc.message
    if actual != blob.digest:
        return (f"blob {blob.path.name} holds different bytes ({actual[:19]}...) than its digest says: "
                "it is corrupt")
    return None
