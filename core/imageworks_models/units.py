"""One unit system for sizes and rates everywhere a person reads them (CLI, GUI, plugins' messages):
binary units, as ``hf`` and ``du -h`` print them (KiB, MiB, GiB). JSON output keeps plain bytes."""

from __future__ import annotations


def human_bytes(n: int | float | None) -> str:
    """``1536`` -> ``"1.5 KiB"``; ``None`` -> ``"-"``; ``0`` -> ``"0 B"``."""
    if not n:
        return "-" if n is None else "0 B"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def human_rate(nbytes: int, seconds: float) -> str | None:
    """``"1.2 GiB/s"``, or ``None`` when no byte moved (or no time passed): a rate of nothing is not shown."""
    if not nbytes or seconds <= 0:
        return None
    return human_bytes(nbytes / seconds) + "/s"
