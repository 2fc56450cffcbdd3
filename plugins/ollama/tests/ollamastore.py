"""Write and read a real Ollama model store (``$OLLAMA_MODELS``) in Ollama's exact on-disk layout.

The layout, as Ollama's ``server/manifest.go`` and ``server/create.go`` write it::

    <store>/blobs/sha256-<hex>                                   every blob, named by the sha256 of its bytes
    <store>/manifests/<host>/<namespace>/<name>/<tag>            one manifest per tag (JSON)

A manifest names a config blob (``application/vnd.docker.container.image.v1+json``) and its layers (the GGUF
weights, an optional vision projector, the template, params and license), each by ``sha256:<hex>`` digest.
Ollama writes every JSON file with Go's ``json.Encoder``: compact, ``<``, ``>`` and ``&`` escaped, and a
trailing newline; :func:`go_json` does the same, so the digests here are the digests Ollama would compute.

Test helpers only: nothing here talks to a network.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
PROJECTOR_MEDIA_TYPE = "application/vnd.ollama.image.projector"
TEMPLATE_MEDIA_TYPE = "application/vnd.ollama.image.template"
PARAMS_MEDIA_TYPE = "application/vnd.ollama.image.params"
LICENSE_MEDIA_TYPE = "application/vnd.ollama.image.license"


@dataclass
class ModelInfo:
    """One tag of the store, as Ollama reads it from its manifest and config blob."""

    served_id: str  # Ollama's short name (``DisplayShortest``), as /api/tags lists it
    host: str
    namespace: str
    name: str
    tag: str
    manifest_path: Path
    manifest_digest: str  # sha256 hex of the manifest file's bytes: the "digest" of /api/tags and /api/ps
    config_digest: str  # "sha256:<hex>"
    model_digest: str | None  # "sha256:<hex>" of the GGUF weights layer
    projector_digest: str | None  # "sha256:<hex>" of the vision projector layer, if any
    layers: list[dict]  # the manifest's "layers", in order
    config: dict
    size: int  # Ollama's Manifest.Size(): every layer plus the config blob, as `ollama list` reports it
    family: str
    model_type: str  # parameter size, e.g. "8.0B"
    file_type: str  # quantization level, e.g. "Q4_K_M"

    @property
    def digests(self) -> list[str]:
        """Every blob this tag references: its layers and its config, as Ollama's prune counts them."""
        return [layer["digest"] for layer in self.layers] + [self.config_digest]


def go_json(obj) -> bytes:
    """``obj`` as Go's ``json.NewEncoder(w).Encode`` writes it: compact, HTML-escaped, newline-terminated."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, escaped)  # these characters only occur inside JSON strings
    return (text + "\n").encode()


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def blob_path(store: Path, digest: str) -> Path:
    """Where Ollama keeps the blob ``sha256:<hex>``: ``<store>/blobs/sha256-<hex>``."""
    return Path(store) / "blobs" / digest.replace(":", "-")


def put_blob(store: Path, data: bytes) -> str:
    """Write ``data`` as a blob named by its sha256; returns its digest ``sha256:<hex>``."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = blob_path(store, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def put_blob_file(store: Path, path: Path) -> str:
    """Move the file at ``path`` into the blobs folder under its sha256 name; returns ``sha256:<hex>``."""
    digest = "sha256:" + sha256_file(path)
    target = blob_path(store, digest)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, target)
    return digest


def write_gguf_blob(path: Path, *, arch: str = "llama", name: str = "Model", file_type: int = 15,
                    chat_template: str | None = None, n_tensors: int = 1, context_length: int = 4096) -> Path:
    """Write a small but real GGUF file: general.* and ``<arch>.context_length`` metadata and ``n_tensors``
    float32 tensors. ``file_type`` is GGUF's ``general.file_type`` (15 = Q4_K_M)."""
    writer = gguf.GGUFWriter(path, arch)  # writes general.architecture itself
    writer.add_name(name)
    writer.add_file_type(file_type)
    writer.add_context_length(context_length)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    for i in range(n_tensors):
        writer.add_tensor(f"blk.{i}.weight", np.arange(16, dtype=np.float32).reshape(4, 4) + i)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def write_projector_blob(path: Path, *, name: str = "Projector") -> Path:
    """Write a vision projector GGUF the way llama.cpp's mmproj files look: architecture "clip",
    ``general.type`` "mmproj" and ``clip.has_vision_encoder`` (what Ollama checks to call it a projector)."""
    writer = gguf.GGUFWriter(path, "clip")
    writer.add_name(name)
    writer.add_type("mmproj")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_tensor("v.patch_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def read_gguf_kv(path: Path) -> dict:
    """A GGUF file's metadata (``general.architecture`` → "llama", ...), without the GGUF.* header fields."""
    reader = gguf.GGUFReader(path)
    return {field.name: field.contents() for field in reader.fields.values() if not field.name.startswith("GGUF.")}


def _put_gguf(store: Path, write, **kwargs) -> str:
    """Write a GGUF with ``write`` into a partial file beside the blobs, then move it under its digest."""
    blobs = Path(store) / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=blobs, prefix="sha256-", suffix="-partial")
    os.close(fd)
    write(partial, **kwargs)
    return put_blob_file(store, Path(partial))


def served_id_of(host: str, namespace: str, name: str, tag: str) -> str:
    """Ollama's short name for a tag (model.Name.DisplayShortest): "name:tag" on registry.ollama.ai/library,
    "namespace/name:tag" on registry.ollama.ai, "host/namespace/name:tag" anywhere else."""
    if host.lower() != DEFAULT_HOST:
        return f"{host}/{namespace}/{name}:{tag}"
    if namespace.lower() != DEFAULT_NAMESPACE:
        return f"{namespace}/{name}:{tag}"
    return f"{name}:{tag}"


def parse_served_id(model: str) -> tuple[str, str, str, str]:
    """(host, namespace, name, tag) of a model reference, with Ollama's defaults (model.ParseName): a bare
    "name" is "registry.ollama.ai/library/name:latest", "ns/name" is on registry.ollama.ai, and three
    components are host/namespace/name. Raises ValueError for anything else."""
    path, _, tag = model.rpartition(":") if ":" in model.rpartition("/")[2] else (model, "", DEFAULT_TAG)
    parts = path.split("/")
    if len(parts) > 3 or not all(parts) or not tag:
        raise ValueError(f"invalid model name {model!r}")
    host, namespace, name = [DEFAULT_HOST, DEFAULT_NAMESPACE][: 3 - len(parts)] + parts
    return host, namespace, name, tag


def _layer(media_type: str, digest: str, store: Path) -> dict:
    return {"mediaType": media_type, "digest": digest, "size": blob_path(store, digest).stat().st_size}


def write_model(store: Path, name: str, tag: str = DEFAULT_TAG, *, host: str = DEFAULT_HOST,
                namespace: str = DEFAULT_NAMESPACE, family: str = "llama", model_type: str = "8.0B",
                file_type: str = "Q4_K_M", gguf_file_type: int = 15, projector: bool = False,
                template: str | None = "{{ .Prompt }}", params: dict | None = None, license: str | None = None,
                arch: str | None = None, model_blob: str | None = None) -> ModelInfo:
    """Write one tag into the store as ``ollama pull`` leaves it: the blobs, the config blob and the manifest.

    ``model_blob`` (a digest already in the store) makes this tag share that GGUF blob instead of writing
    one, as two tags of the same weights do. ``arch`` is the GGUF architecture (default: ``family``).
    """
    store = Path(store)
    if model_blob is None:
        model_blob = _put_gguf(store, write_gguf_blob, arch=arch or family, name=name, file_type=gguf_file_type)
    layers = [_layer(MODEL_MEDIA_TYPE, model_blob, store)]
    if projector:
        layers.append(_layer(PROJECTOR_MEDIA_TYPE, _put_gguf(store, write_projector_blob), store))
    for media_type, data in ((TEMPLATE_MEDIA_TYPE, template and template.encode()),
                             (PARAMS_MEDIA_TYPE, params and go_json(params)),
                             (LICENSE_MEDIA_TYPE, license and license.encode())):
        if data:
            layers.append(_layer(media_type, put_blob(store, data), store))
    config = {"model_format": "gguf", "model_family": family, "model_families": [family],
              "model_type": model_type, "file_type": file_type, "architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]}}
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
                "config": _layer(CONFIG_MEDIA_TYPE, put_blob(store, go_json(config)), store), "layers": layers}
    path = store / "manifests" / host / namespace / name / tag
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(go_json(manifest))
    return read_model(store, path)


def read_model(store: Path, manifest_path: Path) -> ModelInfo:
    """Read one manifest and its config blob as Ollama does. Raises (OSError, ValueError, KeyError, ...) if
    either is unreadable."""
    store, manifest_path = Path(store), Path(manifest_path)
    data = manifest_path.read_bytes()
    manifest = json.loads(data)
    config = json.loads(blob_path(store, manifest["config"]["digest"]).read_bytes())
    layers = manifest["layers"]

    def digest_of(media_type):
        return next((layer["digest"] for layer in layers if layer["mediaType"] == media_type), None)

    host, namespace, name, tag = manifest_path.relative_to(store / "manifests").parts
    return ModelInfo(
        served_id=served_id_of(host, namespace, name, tag), host=host, namespace=namespace, name=name, tag=tag,
        manifest_path=manifest_path, manifest_digest=hashlib.sha256(data).hexdigest(),
        config_digest=manifest["config"]["digest"], model_digest=digest_of(MODEL_MEDIA_TYPE),
        projector_digest=digest_of(PROJECTOR_MEDIA_TYPE), layers=layers, config=config,
        size=sum(layer["size"] for layer in layers) + manifest["config"]["size"],
        family=config.get("model_family", ""), model_type=config.get("model_type", ""),
        file_type=config.get("file_type", ""))


def list_models(store: Path) -> list[ModelInfo]:
    """Every readable tag in the store, like Ollama's Manifests(): files exactly four levels under
    ``manifests/``; a manifest or config blob that cannot be read is skipped, as Ollama skips it."""
    models = []
    for path in sorted((Path(store) / "manifests").glob("*/*/*/*")):
        try:
            models.append(read_model(store, path))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return models


def find_model(store: Path, model: str) -> ModelInfo | None:
    """The tag ``model`` names (matched case-insensitively, as Ollama's getExistingName does), or None."""
    try:
        wanted = served_id_of(*parse_served_id(model)).lower()
    except ValueError:
        return None
    return next((info for info in list_models(store) if info.served_id.lower() == wanted), None)
