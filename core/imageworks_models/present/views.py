"""Read-only summaries of the registry: the rows of ``list``, ``list-roles`` and ``stats``.

Pure functions over effective entries (plain dicts), shared by the CLI, the GUI and library callers.
The JSON shapes they return are documented in the README and kept stable.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from imageworks_models.registry.predicates import (aggregate, drifted, installed, is_store_reference, is_testing,  # noqa: F401 - the views show them
                                                  local_path, lock_status, locked, matches_role)
from imageworks_models.registry.capabilities import true_keys


def row(entry: dict[str, Any], *, active_name: str | None = None) -> dict[str, Any]:
    """The ``list --json`` object for one entry."""
    agg = aggregate(entry)
    download = entry.get("download") or {}
    flags = entry.get("flags") or {}
    return {
        "name": entry["name"],
        "display_name": entry.get("display_name"),
        "aliases": list(entry.get("aliases") or []),
        "backend": entry.get("backend"),
        "roles": list(entry.get("roles") or []),
        "capabilities": true_keys(entry.get("capabilities")),
        "locked": locked(entry),
        "lock_status": lock_status(entry),
        "aggregate": agg,
        "hash_prefix": agg.split(":", 1)[-1][:12] if agg else None,
        "installed": installed(entry),
        "active": entry["name"] == active_name,
        "served_model_id": entry.get("served_model_id"),
        "family": entry.get("family"),
        "format": entry.get("format"),
        "quantization": entry.get("quantization"),
        "path": download.get("path") or local_path(entry),
        "location": download.get("location"),
        "size_bytes": download.get("size_bytes"),
        "deprecated": bool(flags.get("deprecated")),
        "testing": bool(flags.get("testing")),
    }


def list_rows(entries: Iterable[dict[str, Any]], *, role: str | None = None, backend: str | None = None,
              include_non_installed: bool = False, include_testing: bool = False,
              active_name: str | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The rows ``list`` shows, and how many entries each default filter hid.

    Returns:
        ``(rows, hidden)`` where ``hidden`` counts ``{"not_installed": n, "testing": m}``.
    """
    rows: list[dict[str, Any]] = []
    hidden = {"not_installed": 0, "testing": 0}
    for entry in entries:
        if role and not matches_role(entry, role):
            continue
        if backend and entry.get("backend") != backend:
            continue
        r = row(entry, active_name=active_name)
        if not include_testing and r["testing"]:
            hidden["testing"] += 1
            continue
        if not include_non_installed and not r["installed"]:
            hidden["not_installed"] += 1
            continue
        rows.append(r)
    return rows, hidden


def fuzzy_match(query: str, text: str) -> bool:
    """Whether every word of ``query`` appears in ``text`` in order, letters possibly apart ("qw vl awq"
    finds "qwen2.5-vl-7b-instruct-vllm-awq"); case-insensitive."""
    haystack = text.lower()
    pos = 0
    for ch in "".join(query.lower().split()):
        pos = haystack.find(ch, pos)
        if pos < 0:
            return False
        pos += 1
    return True


def _fuzzy_score(query: str, text: str) -> float:
    """0-100: how well ``query`` matches ``text`` (rapidfuzz, in the ``gui`` extra: the best-matching part of
    ``text`` for a shorter query, the whole text for a longer one; 0 without rapidfuzz)."""
    try:
        from rapidfuzz import fuzz
    except ImportError:
        return 0.0
    return fuzz.partial_ratio(query, text) if len(query) <= len(text) else fuzz.ratio(query, text)


FUZZY_CUTOFF = 85.0  # a swapped pair of letters in a 7-letter word still passes


def search_score(query: str, texts: Iterable[str]) -> tuple[int, float] | None:
    """The rank of one row for ``query`` against its name, display name and aliases: ``(tier, -score)``,
    smaller first; tier 0 an exact match, 1 a prefix, 2 a substring, 3 a fuzzy match (a typo, letters
    apart); ``None`` when nothing matches. Case and separators (``-``, ``_``, ``.``, spaces) are ignored.
    Tier 3 is a close spelling (a score of at least ``FUZZY_CUTOFF``), tier 4 the query's letters in order
    but apart ("qw vl awq"); each by score."""
    q = _fold(query)
    best: tuple[int, float] | None = None
    for text in texts:
        if not text:
            continue
        t = _fold(text)
        if t == q:
            return (0, -100.0)
        if t.startswith(q):
            rank = (1, -100.0 * len(q) / max(len(t), 1))
        elif q in t:
            rank = (2, -100.0 * len(q) / max(len(t), 1))
        else:
            score = _fuzzy_score(q, t)
            if score >= FUZZY_CUTOFF:
                rank = (3, -score)
            elif fuzzy_match(q, t):
                rank = (4, -score)
            else:
                continue
        best = rank if best is None or rank < best else best
    return best


def _fold(text: str) -> str:
    return " ".join(text.lower().replace("-", " ").replace("_", " ").replace(".", " ").split())


def search(rows: Iterable[dict[str, Any]], query: str) -> list[dict[str, Any]]:
    """The rows whose name, display name or an alias matches ``query`` (all rows, in order, for an empty one),
    best first: exact matches, then prefixes, then substrings, then fuzzy matches by score (the ranks of
    :func:`search_score`); ties by name. The fuzzy scores of the rows left after the cheap checks are computed
    in one batch (rapidfuzz's C loop), so 2,000 rows take milliseconds."""
    query = query.strip()
    rows = list(rows)
    if not query:
        return rows
    q = _fold(query)
    ranked: list[tuple[tuple[int, float], str, dict[str, Any]]] = []
    rest: list[tuple[int, str]] = []  # (row index, folded text) still to score
    for i, r in enumerate(rows):
        best: tuple[int, float] | None = None
        texts = [_fold(t) for t in (r["name"], r.get("display_name") or "", *(r.get("aliases") or [])) if t]
        for t in texts:
            if t == q:
                rank = (0, -100.0)
            elif t.startswith(q):
                rank = (1, -100.0 * len(q) / len(t))
            elif q in t:
                rank = (2, -100.0 * len(q) / len(t))
            else:
                continue
            best = rank if best is None or rank < best else best
        if best is not None:
            ranked.append((best, r["name"], r))
        else:
            rest += [(i, t) for t in texts]
    best: dict[int, tuple[int, float]] = {}
    for (i, t), score in zip(rest, _batch_scores(q, [t for _, t in rest])):
        if score >= FUZZY_CUTOFF:
            rank = (3, -score)
        elif fuzzy_match(q, t):
            rank = (4, -score)
        else:
            continue
        if i not in best or rank < best[i]:
            best[i] = rank
    ranked += [(rank, rows[i]["name"], rows[i]) for i, rank in best.items()]
    ranked.sort(key=lambda x: (x[0], x[1]))
    return [r for _, _, r in ranked]


def _batch_scores(query: str, texts: list[str]) -> list[float]:
    """:func:`_fuzzy_score` of each text, in two rapidfuzz batches (texts at least as long as the query, and
    shorter ones)."""
    try:
        from rapidfuzz import fuzz, process
    except ImportError:
        return [0.0] * len(texts)
    scores = [0.0] * len(texts)
    for scorer, pick in ((fuzz.partial_ratio, lambda t: len(query) <= len(t)), (fuzz.ratio, lambda t: len(query) > len(t))):
        index = [i for i, t in enumerate(texts) if pick(t)]
        for _, score, j in process.extract(query, [texts[i] for i in index], scorer=scorer, limit=None):
            scores[index[j]] = score
    return scores


CSV_COLUMNS = ("name", "display_name", "backend", "roles", "capabilities", "lock_status", "hash_prefix", "installed",
               "active", "served_model_id", "format", "quantization", "size_bytes", "location", "path")


def rows_csv(rows: Iterable[dict[str, Any]]) -> str:
    """The rows as CSV (the GUI's "Export table"): lists joined with ``;``."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([";".join(r[c]) if isinstance(r.get(c), list) else ("" if r.get(c) is None else r[c])
                         for c in CSV_COLUMNS])
    return out.getvalue()


def roles(entries: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Every role and the entries that play it, best first (``role_priority`` high to low, then name)."""
    table: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        for role in entry.get("roles") or ():
            table.setdefault(role, []).append({
                "name": entry["name"],
                "priority": (entry.get("role_priority") or {}).get(role),
                "backend": entry.get("backend"),
                "capabilities": true_keys(entry.get("capabilities")),
                "installed": installed(entry),
            })
    for members in table.values():
        members.sort(key=lambda m: (-(m["priority"] if m["priority"] is not None else -1), m["name"]))
    return dict(sorted(table.items()))


def stats(entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Counts by backend, format and quantization; installed, locked; disk bytes of installed entries."""
    entries = list(entries)
    by_backend: dict[str, dict[str, int]] = {}
    disk = 0
    n_installed = n_locked = 0
    for entry in entries:
        b = by_backend.setdefault(entry.get("backend") or "none",
                                  {"entries": 0, "installed": 0, "locked": 0, "disk_bytes": 0})
        b["entries"] += 1
        if locked(entry):
            b["locked"] += 1
            n_locked += 1
        if installed(entry):
            size = (entry.get("download") or {}).get("size_bytes") or 0
            b["installed"] += 1
            b["disk_bytes"] += size
            n_installed += 1
            disk += size
    by_location: Counter[str] = Counter()
    for entry in entries:
        download = entry.get("download") or {}
        if installed(entry):
            by_location[download.get("location") or "unknown"] += download.get("size_bytes") or 0
    return {
        "entries": len(entries),
        "installed": n_installed,
        "not_installed": len(entries) - n_installed,
        "locked": n_locked,
        "disk_bytes": disk,
        "by_backend": dict(sorted(by_backend.items())),
        "by_format": dict(sorted(Counter(e.get("format") or "unknown" for e in entries).items())),
        "by_quantization": dict(sorted(Counter(e.get("quantization") or "none" for e in entries).items())),
        "disk_bytes_by_location": dict(sorted(by_location.items())),
    }
