"""Memory fit: whether a model fits where it would run, with how much context, before anything loads.

Owns the estimate (``estimate.py``: weights + KV cache + engine overhead, from the header facts that
``formats/memory.py`` reads at inspection time), the device inventory (``devices.py``: NVML or
``nvidia-smi``, and RAM), and the footprints measured after activations (``record_footprint``). May
import ``live`` (what the live model holds), ``registry``, ``formats``, ``pluginhost`` and everything below;
never serving (which calls the preflight here), the CLI or the GUI.
"""

from __future__ import annotations

from typing import Any

from imageworks_models.fit.estimate import VERDICTS, Fit, assess, kv_bytes, kv_bytes_per_token

__all__ = ["VERDICTS", "Fit", "assess", "fit", "fit_all", "kv_bytes", "kv_bytes_per_token", "record_footprint",
           "check_activation"]

FOOTPRINTS_KEPT = 8


def fit(name: str, *, context: int | None = None, parallel: int = 1, kv_dtype: str | None = None,
        gpu: int | None = None, settings=None, plugins=None, inventory=None, registry=None) -> tuple[Fit, Any]:
    """The memory fit of one entry on this machine.

    Args:
        name: entry name, alias, served id, repo id or unique prefix.
        context, parallel, kv_dtype, gpu: see :func:`imageworks_models.fit.estimate.assess`.
        settings, plugins: resolved settings and plugins (loaded when ``None``).
        inventory: a device reading to use (default: read now).
        registry: the loaded registry to find ``name`` in (default: loaded now).

    Returns:
        ``(fit, inventory)``.

    Raises:
        EntryNotFoundError: no such entry.
        ValueError: an unknown KV dtype or GPU index.
    """
    from imageworks_models.registry import open_registry
    from imageworks_models.settings import load_settings
    from imageworks_models.fit.devices import inventory as read_inventory

    settings = settings or load_settings()
    entry = (registry or open_registry(settings)).get(name)
    inv = inventory or read_inventory(settings)
    inv.ours = _reclaim(settings, inv, entry)
    return assess(entry, settings=settings, inventory=inv, context=context, parallel=parallel, kv_dtype=kv_dtype,
                  gpu=gpu, reclaim=inv.ours, plugins=plugins), inv


def fit_all(entries, *, settings, inventory) -> dict[str, Fit]:
    """Each entry's fit at its own context, from recorded facts only (no file is read: ``list --fits``)."""
    from imageworks_models.fit.estimate import facts_of

    out = {}
    for entry in entries:
        facts = facts_of(entry, inspect=False)
        out[entry["name"]] = assess(entry, settings=settings, inventory=inventory, facts=facts or {})
    return out


def _reclaim(settings, inv, entry: dict[str, Any]) -> dict[int, int]:
    """What the server we run now holds (activating ``entry`` stops it first): per GPU from the process table,
    in RAM from its resident size."""
    from imageworks_models.live.active import live_active
    from imageworks_models.fit.devices import group_pids, rss_bytes

    try:
        active = live_active(settings.state_dir)
    except Exception:  # noqa: BLE001 - no reading of the state: nothing reclaimed, never an error
        return {}
    if not active or not active.get("pid"):
        return {}
    pids = group_pids(int(active["pid"]))
    gpu_bytes = sum(inv.process_bytes.get(p, 0) for p in pids)
    out = {-1: rss_bytes(pids)}
    if gpu_bytes and inv.gpus:
        out[inv.gpus[0].index if len(inv.gpus) == 1 else max(inv.gpus, key=lambda g: g.used_bytes).index] = gpu_bytes
    return out


def check_activation(entry: dict[str, Any], *, settings, plugins=None, force: bool = False) -> Fit | None:
    """The activation preflight: a model that will not fit is refused before anything starts.

    Returns:
        The fit (``None`` when nothing could be estimated).

    Raises:
        DoesNotFitError: the verdict is ``does-not-fit`` and ``force`` is not set.
    """
    from imageworks_models.errors import DoesNotFitError
    from imageworks_models.fit.devices import inventory as read_inventory

    inv = read_inventory(settings)
    try:
        result = assess(entry, settings=settings, inventory=inv, reclaim=_reclaim(settings, inv, entry),
                        plugins=plugins)
    except ValueError:
        return None
    if result.verdict == "does-not-fit" and not force:
        more = f"; the largest context that fits is {result.largest_context}" if result.largest_context else ""
        raise DoesNotFitError(f"{entry['name']} will not fit: {result.reason}{more}",
                              hint=f"see `imageworks-models fit {entry['name']}`; "
                                   + (f"run it with {' '.join(result.flags)}, or " if result.flags else "")
                                   + "pass --force to try anyway")
    return result


def record_footprint(settings, name: str, *, backend: str, context: int | None, parallel: int, used_bytes: int,
                     device: str, load_seconds: float | None) -> None:
    """Keep what a model really used after it became ready (``performance.footprints`` of its discovered
    part, the last few per backend); later estimates of the entry start from it."""
    from imageworks_models.registry import store_for
    from imageworks_models.fs.storage import utc_now

    record = {"backend": backend, "context": context, "parallel": parallel, "bytes": int(used_bytes),
              "device": device, "load_seconds": round(load_seconds, 3) if load_seconds is not None else None,
              "measured_at": utc_now()}
    with store_for(settings).edit() as layers:
        if layers.curated.get(name) is None and layers.discovered.get(name) is None:
            return
        part = dict(layers.discovered.get(name) or {"name": name})
        perf = dict(part.get("performance") or {})
        prints = [p for p in perf.get("footprints") or [] if isinstance(p, dict)
                  and not (p.get("backend") == backend and p.get("context") == context
                           and p.get("parallel", 1) == parallel)]
        perf["footprints"] = (prints + [record])[-FOOTPRINTS_KEPT:]
        part["performance"] = perf
        layers.discovered.put(part)
