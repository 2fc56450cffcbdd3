"""The gateway's resident models: start on demand, keep several when they fit, evict, unload when idle.

Each model the gateway starts is run exactly as ``activate-model`` runs one (the backend's launch plan and S7
checks, the log launcher in a process group of its own, the readiness probe, the whole-group stop:
:mod:`imageworks_models.serving.activation`), but on a free port of its own instead of the one serving port, and
recorded in the gateway's state file (``state.py``), not in ``active_vllm.json``: ``activate-model`` and the
gateway never stop each other's servers.

Everything here runs on the gateway's event loop; the blocking steps (verify, spawn, wait for readiness, stop,
memory readings) run in worker threads. One load or eviction decision is made at a time (``_load_lock``);
requests to models already resident never wait for it.

Memory: with ``gateway_memory_budget`` set, the resident models' measured footprints plus the new model's
(learned from earlier runs, else estimated) must stay within it; otherwise the memory fit (``fit.assess``,
reading free GPU memory or RAM now) decides. When a model does not fit, idle models are evicted: among the
idle ones (no request in flight or waiting, not pinned), those idle at least half as long as the longest-idle
one qualify, and the cheapest to reload (learned load seconds) goes first. A model with requests in flight is
never stopped under them: if nothing idle is left, the least recently used busy model drains (new requests for
it wait) and is stopped when its last request ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from imageworks_models.errors import ServingError
from imageworks_models.plugin.protocols import ServerBackend

log = logging.getLogger("imageworks_models")


class GatewayError(ServingError):
    """A request the gateway cannot serve; ``status`` is the HTTP status it answers with."""

    def __init__(self, message: str, *, status: int = 503, hint: str | None = None, kind: str = "server_error"):
        super().__init__(message, hint=hint)
        self.status = status
        self.kind = kind


@dataclass
class Options:
    """An entry's gateway options (its ``gateway`` object in the registry)."""

    idle_ttl: float
    preload: bool = False
    pinned: bool = False
    max_concurrency: int = 0  # 0: no limit

    @classmethod
    def of(cls, entry: dict[str, Any], settings) -> Options:
        raw = entry.get("gateway") if isinstance(entry.get("gateway"), dict) else {}

        def number(key: str, default: float, kind=float) -> Any:
            value = raw.get(key, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                log.warning("%s: gateway.%s = %r is not a number >= 0; using %s", entry["name"], key, value, default)
                return kind(default)
            return kind(value)

        return cls(idle_ttl=number("idle_ttl", settings.gateway_idle_ttl),
                   preload=raw.get("preload") is True, pinned=raw.get("pinned") is True,
                   max_concurrency=number("max_concurrency", 0, int))


@dataclass(eq=False)
class Resident:
    """One model the gateway started (or is starting)."""

    name: str
    entry: dict[str, Any]
    options: Options
    status: str = "loading"  # loading | ready | draining | stopping | gone
    record: dict[str, Any] | None = None  # the activation record (pid, port, endpoint, log...)
    in_flight: int = 0
    queued: int = 0
    last_used: float = field(default_factory=time.monotonic)
    load_began: float = field(default_factory=time.monotonic)
    load_seconds: float | None = None
    engine_ready_seconds: float | None = None  # spawn to ready, as the engine took it
    memory_bytes: int | None = None
    error: BaseException | None = None
    log_path: str | None = None

    @property
    def endpoint(self) -> str:
        return self.record["endpoint"]

    @property
    def served_model_id(self) -> str:
        return self.record["served_model_id"]

    def idle_for(self, now: float) -> float:
        return now - self.last_used if self.in_flight == 0 and self.queued == 0 else 0.0

    def as_dict(self, now: float) -> dict[str, Any]:
        rec = self.record or {}
        return {"name": self.name, "backend": self.entry.get("backend"), "status": self.status,
                "pid": rec.get("pid"), "port": rec.get("port"), "endpoint": rec.get("endpoint"),
                "served_model_id": rec.get("served_model_id"), "in_flight": self.in_flight, "queued": self.queued,
                "idle_s": round(self.idle_for(now), 1), "memory_bytes": self.memory_bytes,
                "load_seconds": self.load_seconds, "pinned": self.options.pinned,
                "idle_ttl": self.options.idle_ttl or None, "max_concurrency": self.options.max_concurrency or None,
                "log": self.log_path}


class Hooks:
    """What the fleet tells the metrics (the app's Prometheus collectors); all no-ops here."""

    def loaded(self, name: str, seconds: float) -> None: ...
    def evicted(self, name: str, reason: str) -> None: ...
    def queued(self, name: str, delta: int) -> None: ...
    def in_flight(self, name: str, delta: int) -> None: ...


class Fleet:
    """The gateway's resident models. Create on the event loop; call :meth:`close` on shutdown."""

    def __init__(self, *, settings, plugins, identity: dict[str, Any], hooks: Hooks | None = None):
        self.settings = settings
        self.plugins = plugins
        self.identity = identity  # the gateway's own pid/start/boot/host/port for the state file
        self.hooks = hooks or Hooks()
        self.residents: dict[str, Resident] = {}
        self.changed = asyncio.Condition()
        self._load_lock = asyncio.Lock()
        self._reaper: asyncio.Task | None = None
        self._closing = False
        self._tasks: set[asyncio.Task] = set()

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Write the state file and start the idle/exit watcher."""
        self._write_state()
        self._reaper = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        """Stop every model this gateway started (their whole process groups) and remove the state file."""
        from imageworks_models.live.gateway import clear_state

        self._closing = True
        if self._reaper:
            self._reaper.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        # a load being cancelled stops the server it started (see _load and _start_blocking)
        await asyncio.wait(tasks, timeout=self.settings.stop_grace + 5) if tasks else None
        residents = list(self.residents.values())
        self.residents.clear()
        await asyncio.gather(*(asyncio.to_thread(self._stop_blocking, r) for r in residents if r.record),
                             return_exceptions=True)
        for r in residents:
            r.status = "gone"
        clear_state(self.settings.state_dir)

    def preload(self, entries: list[dict[str, Any]]) -> None:
        """Start the entries marked ``gateway.preload`` (in the background; failures are logged)."""
        for entry in entries:
            task = asyncio.get_running_loop().create_task(self._preload_one(entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _preload_one(self, entry: dict[str, Any]) -> None:
        try:
            res = await self.acquire(entry, wait=self.settings.activation_timeout)
            await self.release(res)
        except Exception as exc:  # noqa: BLE001 - a model that cannot preload is reported, the gateway serves on
            log.warning("gateway: preloading %s failed: %s", entry["name"], getattr(exc, "message", exc))

    # --- requests --------------------------------------------------------------------------------------

    async def acquire(self, entry: dict[str, Any], *, wait: float | None = None) -> Resident:
        """A ready resident for ``entry`` with one request slot taken (give it back with :meth:`release`).

        Starts the model if it is not resident; waits while it loads, drains or is at ``max_concurrency``.

        Raises:
            GatewayError: 429 when its queue is full; 503 when it could not be started (the cause and the log
                path), or when waiting took longer than ``wait`` (default ``gateway_wait_timeout``).
            ImageworksError: refusals before anything started (drifted files, S7, will not fit).
        """
        name = entry["name"]
        deadline = time.monotonic() + (self.settings.gateway_wait_timeout if wait is None else wait)
        seen: Resident | None = None  # the resident last waited on
        counted: Resident | None = None  # the resident whose queue this request is counted in
        try:
            while True:
                if self._closing:
                    raise GatewayError("the gateway is shutting down", status=503)
                res = self.residents.get(name)
                if res is None:
                    if seen is not None and seen.error is not None:
                        raise seen.error
                    res = self._begin_load(entry)
                seen = res
                if counted is not None and counted is not res:
                    self._uncount(counted)
                    counted = None
                if res.status == "ready":
                    limit = res.options.max_concurrency
                    if not limit or res.in_flight < limit:
                        if counted is not None:
                            self._uncount(counted)
                            counted = None
                        res.in_flight += 1
                        res.last_used = time.monotonic()
                        self.hooks.in_flight(name, 1)
                        return res
                    if counted is None:
                        if res.queued >= self.settings.gateway_max_queue:
                            raise GatewayError(f"{name} is busy: {res.in_flight} requests in flight (its "
                                               f"max_concurrency) and {res.queued} waiting", status=429,
                                               kind="rate_limit_error",
                                               hint="retry later, or raise gateway.max_concurrency / "
                                                    "IMAGEWORKS_GATEWAY_MAX_QUEUE")
                        res.queued += 1
                        self.hooks.queued(name, 1)
                        counted = res
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._timeout(res)
                async with self.changed:
                    if self.residents.get(name) is res and res.status != "ready" or counted is not None:
                        try:
                            await asyncio.wait_for(self.changed.wait(), timeout=min(remaining, 1.0))
                        except TimeoutError:
                            pass
        finally:
            if counted is not None:
                self._uncount(counted)

    def _uncount(self, res: Resident) -> None:
        res.queued -= 1
        self.hooks.queued(res.name, -1)

    async def release(self, res: Resident) -> None:
        """Give back a request slot taken by :meth:`acquire`."""
        res.in_flight -= 1
        res.last_used = time.monotonic()
        self.hooks.in_flight(res.name, -1)
        async with self.changed:
            self.changed.notify_all()

    async def lost(self, res: Resident) -> bool:
        """After an upstream failure: if the model's server is gone, forget it (the next request restarts it).
        Returns whether it was gone."""
        from imageworks_models.live.processes import ServerIdentity, assess

        ident = ServerIdentity.from_state(res.record or {})
        deadline = time.monotonic() + 1.0  # the log launcher outlives its server by up to 0.3 s (serverlaunch.py)
        while ident is not None and assess(ident) == "alive":
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        await self._drop(res, reason="exited")
        return True

    def _timeout(self, res: Resident) -> GatewayError:
        if res.status == "loading":
            return GatewayError(f"{res.name} is still loading after {self.settings.gateway_wait_timeout:g}s"
                                + (f"; its log: {res.log_path}" if res.log_path else ""),
                                hint="a large model may need a longer IMAGEWORKS_GATEWAY_WAIT_TIMEOUT")
        return GatewayError(f"{res.name}: no free slot within {self.settings.gateway_wait_timeout:g}s "
                            f"({res.in_flight} requests in flight, status {res.status})",
                            hint="retry later, or raise gateway.max_concurrency")

    # --- loading ---------------------------------------------------------------------------------------

    def _begin_load(self, entry: dict[str, Any]) -> Resident:
        from imageworks_models.serving.activation import log_path_for

        res = Resident(name=entry["name"], entry=entry, options=Options.of(entry, self.settings),
                       log_path=str(log_path_for(self.settings, f"gateway-{entry['name']}")))
        self.residents[res.name] = res
        task = asyncio.get_running_loop().create_task(self._load(res))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return res

    async def _load(self, res: Resident) -> None:
        try:
            async with self._load_lock:
                if self._closing:
                    raise GatewayError("the gateway is shutting down", status=503)
                await asyncio.to_thread(self._check_blocking, res)
                await self._make_room(res)
                res.load_began = time.monotonic()
                await asyncio.to_thread(self._start_blocking, res)
        except BaseException as exc:
            res.status = "gone"
            res.error = exc if isinstance(exc, Exception) else GatewayError(f"{res.name}: loading was interrupted")
            if self.residents.get(res.name) is res:
                del self.residents[res.name]
            if res.record:
                await asyncio.to_thread(self._stop_blocking, res)
            self._write_state()
            async with self.changed:
                self.changed.notify_all()
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        res.load_seconds = round(time.monotonic() - res.load_began, 3)
        res.status = "ready"
        res.last_used = time.monotonic()
        self.hooks.loaded(res.name, res.load_seconds)
        async with self.changed:
            self.changed.notify_all()
        self._write_state()
        measuring = asyncio.get_running_loop().create_task(asyncio.to_thread(self._measure_blocking, res))
        self._tasks.add(measuring)
        measuring.add_done_callback(self._tasks.discard)
        if self._closing:
            await self._drop(res, reason="shutdown")

    def _check_blocking(self, res: Resident) -> None:
        """Refusals before anything is stopped for it: its files (gateway_verify) and its launch plan (S7)."""
        from imageworks_models.serving.control import backend_impl

        self._verify(res.entry)
        impl = backend_impl(res.entry.get("backend") or "", self.plugins)
        if not isinstance(impl, ServerBackend):
            raise GatewayError(f"{res.name!r} uses the {res.entry.get('backend')} backend, which the gateway "
                               "cannot start", status=400, kind="invalid_request_error")
        res._impl = impl  # type: ignore[attr-defined]

    def _verify(self, entry: dict[str, Any]) -> None:
        """``gateway_verify`` (quick or full): an entry whose files differ from its recorded manifest, or are
        gone, is refused, naming the files. Entries with no recorded manifest have nothing to compare."""
        from imageworks_models.errors import DivergenceError, IntegrityError
        from imageworks_models.integrity.verify import _recorded_files, _verify_hashes, entry_root

        mode = (self.settings.gateway_verify or "quick").strip().lower()
        if mode == "off":
            return
        if mode not in ("quick", "full"):
            raise GatewayError(f"IMAGEWORKS_GATEWAY_VERIFY={mode!r} is not quick, full or off")
        if not _recorded_files(entry):
            return
        name = entry["name"]
        hint = (f"see `imageworks-loader verify {name}`; if the change is intended, record it with "
                f"`imageworks-loader verify {name} --accept` (or `lock {name} --set-expected` when locked)")
        root = entry_root(entry, explicit=True)
        if root is None or not root.exists():
            raise DivergenceError(f"refusing to serve {name!r}: its files are gone ({root})", hint=hint)
        try:
            result = _verify_hashes(entry, root, quick=mode == "quick", accept=False, algorithm=None,
                                    settings=self.settings, plugins=self.plugins, progress=_silent())
        except IntegrityError as exc:
            raise IntegrityError(f"refusing to serve {name!r}: {exc.message}", hint=hint) from None
        if result.failed:
            files = [c.describe() for c in result.changes]
            raise DivergenceError(f"refusing to serve {name!r}: its files differ from the registry's record "
                                  f"({result.status}): " + "; ".join(files[:10])
                                  + (f"; and {len(files) - 10} more" if len(files) > 10 else ""),
                                  changes=files, hint=hint)

    def _start_blocking(self, res: Resident) -> None:
        """Spawn the model's server on a free port and wait until it is ready (as activation does)."""
        import dataclasses
        from pathlib import Path

        from imageworks_models.serving.activation import check_port_free, prepare_launch, spawn_server, wait_server_ready
        from imageworks_models.fit import check_activation
        from imageworks_models.fs.storage import utc_now

        impl = res._impl  # type: ignore[attr-defined]
        settings = self._on_port(_free_port())
        launch = prepare_launch(res.entry, impl, settings=settings, plugins=self.plugins)
        estimate = None
        if not self.settings.gateway_memory_budget:
            estimate = check_activation(res.entry, settings=self.settings, plugins=self.plugins)
        check_port_free(launch)
        began = time.monotonic()
        record = spawn_server(res.entry, launch, settings=self.settings, log_file=Path(res.log_path))
        res.record = record
        if self._closing:  # the gateway began to shut down while this server started
            self._stop_blocking(res)
            raise GatewayError("the gateway is shutting down", status=503)
        self._write_state()
        wait_server_ready(record, impl, dataclasses.replace(launch), settings=self.settings,
                          timeout=self.settings.activation_timeout)
        res.engine_ready_seconds = time.monotonic() - began
        record.update(status="ready", ready_at=utc_now())
        res._estimate = estimate  # type: ignore[attr-defined]

    def _measure_blocking(self, res: Resident) -> None:
        """After it is ready (off the request's path): what it holds, kept for later estimates."""
        from imageworks_models.serving.activation import record_footprint

        if res.record is None:
            return
        res.memory_bytes = _footprint(res.record, self.settings)
        record_footprint(self.settings, res.entry, res.record, getattr(res, "_estimate", None))

    def _on_port(self, port: int):
        """These settings, with every process backend told to serve on ``port`` (single-port mode)."""
        from imageworks_models.settings import Settings, Value

        values = dict(self.settings.values)
        values["single_port"] = Value(True, "gateway")
        values["vllm_port"] = Value(port, "gateway")
        return Settings(values=values, config_file=self.settings.config_file, cwd=self.settings.cwd)

    # --- memory and eviction ---------------------------------------------------------------------------

    async def _make_room(self, res: Resident) -> None:
        deadline = time.monotonic() + self.settings.gateway_wait_timeout
        while True:
            others = [r for r in self.residents.values() if r is not res and r.status in ("ready", "draining")]
            if not others or await asyncio.to_thread(self._fits, res, others):
                return
            victim = self._pick_idle(others)
            if victim is not None:
                await self._drop(victim, reason="memory")
                continue
            busy = sorted((r for r in others if not r.options.pinned), key=lambda r: r.last_used)
            if not busy:
                raise GatewayError(f"{res.name} does not fit beside the pinned models "
                                   f"({', '.join(r.name for r in others)})",
                                   hint="unpin one (gateway.pinned), or raise IMAGEWORKS_GATEWAY_MEMORY_BUDGET")
            victim = busy[0]
            victim.status = "draining"  # new requests for it wait; it stops when its last one ends
            async with self.changed:
                self.changed.notify_all()
            while victim.in_flight > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    victim.status = "ready"
                    raise GatewayError(f"{res.name} does not fit, and {victim.name} (to make room) still had "
                                       f"{victim.in_flight} requests in flight after "
                                       f"{self.settings.gateway_wait_timeout:g}s")
                async with self.changed:
                    try:
                        await asyncio.wait_for(self.changed.wait(), timeout=min(remaining, 1.0))
                    except TimeoutError:
                        pass
            await self._drop(victim, reason="memory")

    def _fits(self, res: Resident, others: list[Resident]) -> bool:
        budget = self.settings.gateway_memory_budget
        if budget:
            held = [_footprint(r.record, self.settings) or r.memory_bytes or 0 for r in others if r.record]
            # Nothing learned or estimated: assume it is as large as the largest model resident now.
            needed = _needed(res.entry, self.settings, self.plugins) or max(held, default=0)
            return sum(held) + needed <= budget
        from imageworks_models.fit import assess
        from imageworks_models.fit.devices import inventory

        try:
            verdict = assess(res.entry, settings=self.settings, inventory=inventory(self.settings),
                             plugins=self.plugins).verdict
        except ValueError:
            return True
        return verdict != "does-not-fit"

    @staticmethod
    def _pick_idle(others: list[Resident]) -> Resident | None:
        now = time.monotonic()
        idle = [r for r in others if r.status == "ready" and not r.options.pinned and r.in_flight == 0
                and r.queued == 0]
        if not idle:
            return None
        longest = max(r.idle_for(now) for r in idle)
        stale = [r for r in idle if r.idle_for(now) >= longest / 2]
        return min(stale, key=lambda r: (_reload_seconds(r), -r.idle_for(now)))

    async def _drop(self, res: Resident, *, reason: str) -> None:
        if self.residents.get(res.name) is res:
            del self.residents[res.name]
        if res.status == "gone":
            return
        res.status = "stopping"
        self.hooks.evicted(res.name, reason)
        log.info("gateway: stopping %s (%s)", res.name, reason)
        await asyncio.to_thread(self._stop_blocking, res)
        res.status = "gone"
        self._write_state()
        async with self.changed:
            self.changed.notify_all()

    def _stop_blocking(self, res: Resident) -> None:
        from imageworks_models.serving.activation import stop_server

        if res.record:
            stop_server(res.record, settings=self.settings)

    async def unload(self, name: str, *, reason: str = "request") -> bool:
        """Stop a resident model now (waiting for its requests to end). Returns whether one was resident."""
        res = self.residents.get(name)
        if res is None or res.status != "ready":
            return False
        res.status = "draining"
        while res.in_flight:
            async with self.changed:
                await self.changed.wait()
        await self._drop(res, reason=reason)
        return True

    async def _watch(self) -> None:
        """Unload models idle past their ``idle_ttl``; forget models whose server exited."""
        from imageworks_models.live.processes import ServerIdentity, assess, reap

        while True:
            await asyncio.sleep(self._watch_interval())
            try:
                reap()
                now = time.monotonic()
                for res in list(self.residents.values()):
                    if res.status != "ready":
                        continue
                    ident = ServerIdentity.from_state(res.record or {})
                    if ident is not None and assess(ident) != "alive":
                        await self._drop(res, reason="exited")
                    elif (res.options.idle_ttl and not res.options.pinned and res.in_flight == 0
                          and res.queued == 0 and now - res.last_used >= res.options.idle_ttl):
                        await self._drop(res, reason="idle")
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive one bad round
                log.warning("gateway: watching the models failed: %s: %s", type(exc).__name__, exc)

    def _watch_interval(self) -> float:
        ttls = [r.options.idle_ttl for r in self.residents.values() if r.options.idle_ttl]
        return max(0.1, min([1.0] + [t / 4 for t in ttls]))

    def _write_state(self) -> None:
        from imageworks_models.live.gateway import SCHEMA_VERSION, write_state

        models = {r.name: {**r.record, "status": r.record.get("status") if r.status == "ready" else "starting"}
                  for r in self.residents.values() if r.record}
        try:
            write_state(self.settings.state_dir, {"schema_version": SCHEMA_VERSION, **self.identity,
                                                  "models": models})
        except Exception as exc:  # noqa: BLE001 - the record is for recovery; serving goes on
            log.warning("gateway: could not write its state file: %s", exc)

    def snapshot(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [r.as_dict(now) for r in sorted(self.residents.values(), key=lambda r: r.name)]


def _silent():
    from imageworks_models.integrity import hashing

    return hashing.SILENT


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _footprint(record: dict[str, Any] | None, settings) -> int | None:
    """What a running server's process group holds now: its GPU memory when it has any, else resident RAM."""
    if not record or not record.get("pid"):
        return None
    try:
        from imageworks_models.fit.devices import group_pids, inventory, rss_bytes

        pids = group_pids(int(record["pid"]))
        inv = inventory(settings)
        gpu = sum(inv.process_bytes.get(p, 0) for p in pids) if inv.gpus else 0
        return gpu or rss_bytes(pids) or None
    except Exception:  # noqa: BLE001 - a reading is a bonus
        return None


def _learned(entry: dict[str, Any]) -> dict[str, Any] | None:
    prints = [p for p in ((entry.get("performance") or {}).get("footprints") or [])
              if isinstance(p, dict) and p.get("backend") == entry.get("backend")]
    return prints[-1] if prints else None


def _needed(entry: dict[str, Any], settings, plugins) -> int:
    """Bytes the entry will hold once loaded: its learned footprint, else the memory estimate, else 0."""
    learned = _learned(entry)
    if learned and isinstance(learned.get("bytes"), int):
        return learned["bytes"]
    try:
        from imageworks_models.fit import assess
        from imageworks_models.fit.devices import inventory

        return assess(entry, settings=settings, inventory=inventory(settings), plugins=plugins).total_bytes or 0
    except Exception:  # noqa: BLE001 - nothing known: assume it is small
        return 0


def _reload_seconds(res: Resident) -> float:
    if res.load_seconds is not None:
        return res.load_seconds
    learned = _learned(res.entry)
    seconds = learned.get("load_seconds") if learned else None
    return float(seconds) if isinstance(seconds, (int, float)) else float("inf")
