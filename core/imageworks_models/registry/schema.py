"""The registry entry schema (pydantic v2).

Imported only when a registry file must be validated (a changed file, or a write): ``list`` on an
unchanged registry reads the merged snapshot and never pays for pydantic.

Every model keeps unknown fields (``extra="allow"``) so a newer tool's or a user's own fields survive
a load/save. Which layer owns which field is in :mod:`.fields`, not here.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator

from imageworks_models.registry import capabilities as caps

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._()+@-]{0,199}$")
BACKEND_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DIGEST_RE = re.compile(r"^([a-z0-9][a-z0-9-]{1,31}):([0-9a-f]{16,256})$")
DIGEST_HEX_LENGTH = {"sha256": 64, "blake3": 64}  # plugin hashers: any even length from 16 to 256


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


def check_name(value: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ValueError("a name is 1-200 characters: letters, digits and . _ ( ) + @ -, starting with a "
                         "letter or digit (no spaces, slashes or colons)")
    if unicodedata.normalize("NFC", value) != value:
        raise ValueError("name is not in Unicode NFC form")
    return value


def _digest(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    match = DIGEST_RE.match(value) if isinstance(value, str) else None
    if match is None or len(match[2]) % 2 or len(match[2]) != DIGEST_HEX_LENGTH.get(match[1], len(match[2])):
        raise ValueError("a digest is 'sha256:' (or another hasher's name and ':') followed by lowercase hex "
                         "digits, 64 of them for sha256 and blake3")
    return value


Digest = Annotated[Optional[str], BeforeValidator(_digest)]
Name = Annotated[str, AfterValidator(check_name)]


class BackendConfig(_Model):
    port: Optional[int] = Field(default=None, ge=1, le=65535)
    host: Optional[str] = None
    model_path: Optional[str] = None
    base_url: Optional[str] = None
    extra_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _http_only(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("base_url must be an http:// or https:// URL")
        return v


class ChatTemplate(_Model):
    source: Optional[str] = None  # embedded | file | external | none
    path: Optional[str] = None
    sha256: Optional[str] = None


class Source(_Model):
    provider: Optional[str] = None  # hf | ollama | local | url ...
    repo_id: Optional[str] = None
    revision: Optional[str] = None
    commit: Optional[str] = None


class Download(_Model):
    path: Optional[str] = None
    location: Optional[str] = None
    format: Optional[str] = None
    size_bytes: Optional[int] = Field(default=None, ge=0)
    file_count: Optional[int] = Field(default=None, ge=0)
    files: Optional[list[str]] = None
    directory_checksum: Optional[str] = None
    downloaded_at: Optional[str] = None
    last_accessed: Optional[str] = None
    # "missing"/"incomplete": set by `verify --fix-missing`, cleared when fine; "deleting": `remove
    # --delete-files` recorded its intent and is deleting the files (running it again finishes, W19)
    status: Optional[Literal["missing", "incomplete", "deleting"]] = None
    status_since: Optional[str] = None


class ArtifactFile(_Model):
    path: str
    size: Optional[int] = Field(default=None, ge=0)
    digest: Digest = None
    link: Optional[str] = None  # a symlink's target, recorded instead of followed
    special: Optional[str] = None  # fifo | socket | device: recorded, never opened


class Artifacts(_Model):
    aggregate: Digest = None
    manifest_version: Optional[int] = None  # None: recorded by the earlier tool (no sizes, another aggregate)
    files: list[ArtifactFile] = Field(default_factory=list)


class VersionLock(_Model):
    locked: bool = False
    expected_aggregate: Digest = None
    last_verified: Optional[str] = None  # the last check that matched
    last_checked: Optional[str] = None  # the last check, whatever it found
    last_status: Optional[Literal["ok", "diverged", "missing"]] = None
    last_mode: Optional[Literal["full", "quick"]] = None


class Flags(_Model):
    deprecated: bool = False
    testing: bool = False  # placeholders and experiments, hidden unless --include-testing


class Entry(_Model):
    """One model variant. ``name`` is the unique logical key; every other field is optional here
    because a layer may hold only part of an entry (the effective entry must have a ``backend``)."""

    name: Name
    display_name: Optional[str] = None
    aliases: list[str] = Field(default_factory=list)
    backend: Optional[str] = None
    backend_config: BackendConfig = Field(default_factory=BackendConfig)
    backend_alternatives: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    role_priority: dict[str, int] = Field(default_factory=dict)
    # Strict: lax bool parsing took "yes"/"on"/1 and then skipped the synonym and unknown-key checks.
    capabilities: dict[str, StrictBool] = Field(default_factory=dict)
    capability_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    served_model_id: Optional[str] = None
    family: Optional[str] = None
    format: Optional[str] = None
    quantization: Optional[str] = None
    license: Optional[str] = None
    source: Optional[Source] = None
    chat_template: Optional[ChatTemplate] = None
    generation_defaults: dict[str, Any] = Field(default_factory=dict)
    download: Optional[Download] = None
    artifacts: Optional[Artifacts] = None
    version_lock: Optional[VersionLock] = None
    flags: Flags = Field(default_factory=Flags)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not BACKEND_RE.match(v):
            raise ValueError("a backend name is lowercase letters, digits, '.', '_' or '-' (e.g. vllm, ollama)")
        return v

    @field_validator("capabilities", mode="before")
    @classmethod
    def _capabilities(cls, v: Any) -> Any:
        folded, unknown, _ = caps.normalize(v)
        if unknown:
            raise ValueError(f"unknown capabilit{'ies' if len(unknown) > 1 else 'y'} "
                             f"{', '.join(map(repr, unknown))} (known: {', '.join(caps.CANONICAL)})")
        return folded

    @field_validator("served_model_id")
    @classmethod
    def _served_id(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and (not v or v.startswith("-") or any(ord(c) < 32 for c in v)):
            raise ValueError("a served model id must be non-empty, must not start with '-' and has no control characters")
        return v

    @field_validator("roles", "aliases")
    @classmethod
    def _no_blank(cls, v: list[str]) -> list[str]:
        if any(not s.strip() for s in v):
            raise ValueError("must not contain blank strings")
        return v


def defaults() -> dict[str, Any]:
    """The value of every top-level field when no layer sets it (the shape of an effective entry)."""
    return Entry.model_construct().model_dump(mode="json", exclude={"name"})
