"""Finding a model's chat template, in a Hugging Face folder or embedded in a GGUF file.

The template decides how prompts are built (and whether tools or "thinking" are supported), and two
copies of one model with different templates behave differently; so the registry records where the
template came from and its SHA-256. The places are checked in the order transformers prefers them:
``chat_template.jinja`` (written by transformers 4.43+), ``chat_template.json``, then
``tokenizer_config.json``'s ``chat_template``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from imageworks_models.errors import ArtifactFormatError
from imageworks_models.formats._util import read_bounded
from imageworks_models.formats.hfconfig import read_json

MAX_TEMPLATE_BYTES = 4 << 20


def _result(source: str, path: str, text: str, **extra) -> dict:
    return {"source": source, "path": path, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "text": text, **extra}


def _pick(value: object, path: Path) -> tuple[str, str | None] | None:
    """The template text from a ``chat_template`` value: a string, or a list of ``{name, template}``."""
    if isinstance(value, str):
        return (value, None) if value else None
    if isinstance(value, list):
        named = [t for t in value if isinstance(t, dict) and isinstance(t.get("template"), str)]
        if len(named) != len(value):
            raise ArtifactFormatError(path, "chat_template must be a string or a list of {name, template} objects")
        for t in named:
            if t.get("name") == "default":
                return t["template"], "default"
        if named:
            return named[0]["template"], named[0].get("name") if isinstance(named[0].get("name"), str) else None
        return None
    if value is None:
        return None
    raise ArtifactFormatError(path, "chat_template must be a string or a list of {name, template} objects")


def find_chat_template(folder, *, names: set[str] | frozenset[str] | None = None) -> dict | None:
    """The chat template of a Hugging Face model folder.

    Args:
        folder: the model folder.
        names: the folder's regular files' names, when the caller listed them already (no stat per candidate).

    Returns:
        ``{"source": "file", "path": <file name in the folder>, "sha256": <hex of the UTF-8 text>,
        "text": <template>}`` (plus ``"name"`` when picked from a list of named templates: ``default``,
        else the first), or ``None`` when the folder has none.

    Raises:
        ArtifactFormatError: the first file that holds a template is unreadable, not UTF-8, not JSON,
            or its ``chat_template`` has the wrong type.
    """
    folder = Path(folder)

    def present(name: str) -> bool:
        return name in names if names is not None else (folder / name).is_file()

    jinja = folder / "chat_template.jinja"
    if present(jinja.name):
        data = read_bounded(jinja, MAX_TEMPLATE_BYTES, "template")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ArtifactFormatError(jinja, f"template is not valid UTF-8 (byte {exc.start})") from None
        if text:
            return _result("file", jinja.name, text)
    for name in ("chat_template.json", "tokenizer_config.json"):
        if not present(name):
            continue
        path = folder / name
        picked = _pick(read_json(path).get("chat_template"), path)
        if picked is not None:
            text, template_name = picked
            return _result("file", name, text, **({"name": template_name} if template_name else {}))
    return None


def gguf_chat_template(header, path: str | None = None) -> dict | None:
    """The chat template embedded in a GGUF file (``tokenizer.chat_template``).

    Args:
        header: a :class:`~imageworks_models.formats.gguf.GGUFHeader`.
        path: the GGUF file's name, recorded as ``path``.

    Returns:
        ``{"source": "embedded", "path": path, "key": "tokenizer.chat_template", "sha256": ...,
        "text": ...}``, or ``None`` when the file embeds none.
    """
    text = header.metadata.get("tokenizer.chat_template")
    if not isinstance(text, str) or not text:
        return None
    return _result("embedded", path, text, key="tokenizer.chat_template")
