"""The ``ollama`` source object the core calls (README, "Writing a plugin": store sources).

It reports each model in the store as a :class:`Discovered` whose ``path`` is the model's GGUF blob
(``blobs/sha256-<hex>``): the bytes an entry's manifest and ``verify`` cover. Tags that share one model
blob (``qwen3:latest`` and ``qwen3:8b``) are one model: one entry, the other tags as aliases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from imageworks_models.api import ArtifactInfo, Discovered

from . import store as st

PROVIDER = "ollama"


def name_hint(model: st.StoreModel) -> str:
    """What strategy A names an entry after: the model name, plus the tag unless it is ``latest``
    (a quant in the tag is dropped by the core's family rule and comes back as the ``-<quant>`` suffix)."""
    return model.name if model.tag.lower() == "latest" else f"{model.name}-{model.tag}"


def primary_tag(served_ids: list[str]) -> str:
    """Which of several tags of one blob names the entry: the shortest, then the first in sort order."""
    return min(served_ids, key=lambda s: (len(s), s))


def _quant_from_header(path: Path) -> str | None:
    from imageworks_models.api import ArtifactFormatError
    from imageworks_models.api import quant_name, read_gguf_header

    try:
        return quant_name(read_gguf_header(path))
    except ArtifactFormatError:
        return None


def _info(model: st.StoreModel) -> ArtifactInfo:
    config = model.config
    quant = model.quantization or (_quant_from_header(model.model.path) if model.model else None)
    family = config.get("model_family") if isinstance(config.get("model_family"), str) else None
    caps = {"text"} | ({"vision"} if model.projector is not None else set())
    template = None
    if model.template_digest:
        template = {"source": "ollama", "sha256": model.template_digest.split(":", 1)[1]}
    details = {k: config[k] for k in ("model_type", "file_type", "model_family") if isinstance(config.get(k), str)}
    return ArtifactInfo(format="gguf", quantization=quant.lower() if quant else None, family=family,
                        capabilities=frozenset(caps), chat_template=template, details=details)


def _metadata(group: list[st.StoreModel]) -> dict:
    first = group[0]
    facts = {"tags": [m.served_id for m in group], "model_digest": first.model.digest if first.model else None,
             "projector_digest": first.projector.digest if first.projector else None,
             "parameter_size": first.config.get("model_type"), "family": first.config.get("model_family")}
    return {"ollama": {k: v for k, v in facts.items() if v is not None}}


def discovered(models: list[st.StoreModel]) -> list[Discovered]:
    """The store's tags as models: bad tags alone (with their problem), good tags grouped by model blob."""
    out: list[Discovered] = []
    groups: dict[tuple[str, str | None], list[st.StoreModel]] = {}
    for m in models:
        if m.problem:
            out.append(Discovered(path=str(m.manifest_path), name_hint=name_hint(m), provider=PROVIDER,
                                  backend=PROVIDER, served_model_id=m.served_id, problem=m.problem))
        elif m.remote:
            out.append(Discovered(path=str(m.manifest_path), name_hint=name_hint(m), provider=PROVIDER,
                                  backend=PROVIDER, served_model_id=m.served_id,
                                  problem=f"a cloud model served by {m.remote}; no weights in the store"))
        else:
            # one model = one model blob and one projector; a projector changes what the model can do
            groups.setdefault((m.model.digest, m.projector.digest if m.projector else None), []).append(m)
    for group in groups.values():
        main = primary_tag([m.served_id for m in group])
        group.sort(key=lambda m: (m.served_id != main, m.served_id))
        first = group[0]
        size = first.model.size + (first.projector.size if first.projector else 0)
        out.append(Discovered(path=str(first.model.path), name_hint=name_hint(first), provider=PROVIDER,
                              info=_info(first), backend=PROVIDER, served_model_id=first.served_id,
                              aliases=tuple(m.served_id for m in group[1:]), metadata=_metadata(group),
                              size_bytes=size, digests={first.model.path.name: first.model.digest}))
    return sorted(out, key=lambda d: d.served_model_id or d.path)


class OllamaSource:
    name = PROVIDER

    def store_dir(self, *, settings) -> Path:
        """The store in use (``ollama_models`` / ``OLLAMA_MODELS``, else Ollama's default places).

        Raises:
            StoreError: no store is there.
        """
        return st.find_store(settings.ollama_models)

    def discover(self, *, settings) -> Iterator[Discovered]:
        """Every model in the store (for ``discover-all``; nothing when there is no store)."""
        try:
            root = self.store_dir(settings=settings)
        except st.StoreError:
            return iter(())
        return iter(discovered(st.read_store(root)))

    def read(self, *, settings) -> tuple[list[Discovered], list[str], set[str]]:
        """``(models, warnings, tags)``: the store's models, one line per problem worth telling, and every
        tag present in the store (bad ones included: a tag that exists is not stale).

        Raises:
            StoreError: there is no readable store.
        """
        models = st.read_store(self.store_dir(settings=settings))
        warnings = [w for m in models for w in m.warnings]
        return discovered(models), warnings, {m.served_id for m in models}

    def served_tags(self, *, settings) -> set[str] | None:
        """The tags the Ollama server lists (``/api/tags``), or ``None`` when it cannot be reached."""
        from imageworks_models.api import ServingError

        from .server import list_tags

        try:
            return set(list_tags(settings=settings, timeout=3.0))
        except ServingError:
            return None

    def check(self, found: Discovered, *, settings, plugins=None) -> str | None:
        """Hash the model's blobs against the digests they are named by; ``None`` if they match, else why."""
        blobs = Path(found.path).parent
        digests = [found.metadata.get("ollama", {}).get(k) for k in ("model_digest", "projector_digest")]
        for digest in filter(None, digests):
            blob = st.Blob(digest, st.blob_path(blobs, digest), 0)
            problem = st.check_blob(blob, plugins=plugins)
            if problem:
                return problem
        return None

    def removal(self, entry: dict, *, settings) -> dict:
        """How to delete an entry's files: Ollama owns the store, so through ``ollama rm`` (or its API),
        which keeps blobs other tags still use. Returns ``{"command": [...], "tags": [...], "shared": [...]}``."""
        from .server import removal_plan

        return removal_plan(entry, settings=settings, store=self._store_or_none(settings))

    def remove(self, entry: dict, *, settings) -> list[str]:
        """Delete the entry's tags through the server's API (``DELETE /api/delete``); returns the tags removed.

        Raises:
            ServerNotRunningError, ModelNotPulledError, BackendTimeoutError: from the server.
        """
        from .server import delete_tags

        plan = self.removal(entry, settings=settings)
        return delete_tags(plan["tags"], settings=settings)

    def _store_or_none(self, settings) -> Path | None:
        try:
            return self.store_dir(settings=settings)
        except st.StoreError:
            return None
