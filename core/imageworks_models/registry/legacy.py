"""Reading the earlier ImageWorks tool's registry files.

Those files are a top-level JSON list of entries with flat ``download_*`` fields, ``model_aliases``,
``source_provider`` beside a ``source`` map, bare hex digests and dozens of capability synonyms. They
are read as they are and rewritten in this project's shape on the first write, after a backup.
"""

from __future__ import annotations

from typing import Any

from imageworks_models.registry import fields

_DOWNLOAD_KEYS = {
    "download_location": "location",
    "download_path": "path",
    "download_size_bytes": "size_bytes",
    "download_directory_checksum": "directory_checksum",
    "downloaded_at": "downloaded_at",
    "last_accessed": "last_accessed",
}


def _digest(hexdigest: Any) -> Any:
    if isinstance(hexdigest, str) and hexdigest and ":" not in hexdigest:
        return f"sha256:{hexdigest.lower()}"
    return hexdigest or None


def migrate_entry(old: dict[str, Any]) -> dict[str, Any]:
    """One legacy entry in this project's shape; every field is kept (unknown ones as they are)."""
    new: dict[str, Any] = {}
    download: dict[str, Any] = {}
    source: dict[str, Any] = {}
    flags: dict[str, Any] = {}
    for key, value in old.items():
        if key == "model_aliases":
            new["aliases"] = value
        elif key in _DOWNLOAD_KEYS:
            if value not in (None, ""):
                download[_DOWNLOAD_KEYS[key]] = value
        elif key == "download_files":
            if value:
                download["files"] = value
                download["file_count"] = len(value)
        elif key == "download_format":
            if value:
                new.setdefault("format", value)
        elif key == "source_provider":
            if value:
                source["provider"] = value
        elif key == "source":
            if isinstance(value, dict):
                for k, v in value.items():
                    source["repo_id" if k == "huggingface_id" else k] = v
            elif value is not None:
                new["source"] = value  # not a map: leave it for the schema to name
        elif key == "artifacts" and isinstance(value, dict):
            files = [
                {"path": f.get("path"), **({"size": f["size"]} if "size" in f else {}),
                 "digest": _digest(f.get("sha256", f.get("digest")))}
                | {k: v for k, v in f.items() if k not in {"path", "size", "sha256", "digest"}}
                for f in value.get("files") or [] if isinstance(f, dict)
            ]
            aggregate = _digest(value.get("aggregate_sha256", value.get("aggregate")))
            if aggregate or files:
                new["artifacts"] = {"aggregate": aggregate, "files": files}
        elif key == "version_lock" and isinstance(value, dict):
            lock = {"locked": bool(value.get("locked", False)),
                    "expected_aggregate": _digest(value.get("expected_aggregate_sha256",
                                                            value.get("expected_aggregate"))),
                    "last_verified": value.get("last_verified")}
            if lock["locked"] or lock["expected_aggregate"] or lock["last_verified"]:
                new["version_lock"] = lock
        elif key in ("deprecated", "testing"):
            flags[key] = bool(value)
        elif key == "served_model_id" and value == "None":
            new[key] = None  # the earlier tool wrote str(None)
        else:
            new[key] = value
    if download:
        new["download"] = download
    if source:
        new["source"] = source
    if flags:
        new["flags"] = flags
    return fields.ordered(new)
