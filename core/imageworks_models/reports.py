"""The reports long operations hand back, shared by every layer: rows of a plan, their counts, and progress.

A scan, a download, an import and every maintenance command plan first and return rows (:class:`Row`), one per
model, each with the action recording it does or would do; :class:`ScanReport` and :class:`ChangeReport` carry
them with what was written, and ``counts()`` tallies them the one way the CLI, the GUI and ``--json`` show.
:class:`Progress` is what long work (hashing, downloads) reports to. Imports nothing of the core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

ACTIONS = ("add", "update", "unchanged", "exists", "remove", "stale", "duplicate", "deprecate", "skip", "conflict",
           "error")


def count_actions(rows: Iterable["Row"]) -> dict[str, int]:
    """How many rows take each action, in the order of :data:`ACTIONS` (then any other action), zeros left out."""
    out: dict[str, int] = {}
    for r in rows:
        out[r.action] = out.get(r.action, 0) + 1
    order = {a: i for i, a in enumerate(ACTIONS)}
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))


@dataclass
class Row:
    """One model a scan or download found, and what recording it does (or would do)."""

    action: str  # one of ACTIONS
    path: str
    name: str | None = None
    format: str | None = None
    quantization: str | None = None
    backend: str | None = None
    files: int = 0
    size_bytes: int = 0
    reason: str | None = None
    provider: str | None = None
    entry: dict[str, Any] | None = field(default=None, repr=False)  # the discovered-layer entry to write
    existing: str | None = None  # the registered entry this row updates
    served_model_id: str | None = None
    digests: dict[str, str] = field(default_factory=dict, repr=False)  # known without hashing (see Discovered)
    replaces: str | None = None  # an entry whose files these are now, under a name that no longer fits them

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "name": self.name, "path": self.path, "format": self.format,
                "quantization": self.quantization, "backend": self.backend, "files": self.files,
                "size_bytes": self.size_bytes, "provider": self.provider, "reason": self.reason,
                "served_model_id": self.served_model_id}


@dataclass
class ScanReport:
    rows: list[Row]
    dry_run: bool
    written: int = 0
    inspected: int = 0
    cached: int = 0
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        return count_actions(self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "written": self.written, "counts": self.counts(),
                "rows": [r.as_dict() for r in self.rows]}


@dataclass
class ChangeReport:
    """The rows of a maintenance command (its diff) and what was written."""

    rows: list[Row]
    dry_run: bool
    backup: list[str] = field(default_factory=list)
    written: int = 0
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return count_actions(self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "written": self.written, "backup": list(self.backup),
                "counts": self.counts(), "notes": list(self.notes), "rows": [r.as_dict() for r in self.rows]}


class Progress:
    """What long hashing work reports to. The CLI shows a rich bar on a TTY; the default is silent.

    ``advance`` is called from worker threads; implementations must be thread-safe.
    """

    def start(self, *, total_bytes: int, files: int, label: str) -> None:
        """Hashing of ``files`` files, ``total_bytes`` bytes in all, for ``label`` begins."""

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more bytes were hashed."""

    def finish(self) -> None:
        """That work is over (finished or failed)."""


SILENT = Progress()
