"""The gateway's HTTP side: a Starlette application run by uvicorn, forwarding with httpx.

Routes: ``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings`` (forwarded to the model's own
server, the ``model`` field rewritten to its served id); ``GET /v1/models`` (every servable entry, with its
state); ``GET /metrics`` (Prometheus); ``GET /gateway/status`` (what ``gateway status`` shows). Errors use the
OpenAI shape, ``{"error": {"message", "type", "param", "code"}}``.

Streamed answers are passed through chunk by chunk as the model's server sends them (never collected); a
streaming request for a model that is still loading gets its ``200`` at once and SSE comment lines
(``: loading NAME``) every ``gateway_keepalive_interval`` seconds until the first chunk. A client that goes
away mid-stream closes the upstream request (the engine stops generating); an engine that dies mid-stream
ends the client's stream with an error event and is forgotten, so the next request starts it again.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imageworks_models.errors import EntryNotFoundError, ImageworksError
from imageworks_models.serving.serverargs import is_loopback
from imageworks_models.gateway.fleet import Fleet, GatewayError, Hooks
from imageworks_models.plugin.protocols import LoadingBackend, ServerBackend

log = logging.getLogger("imageworks_models")
MAX_BODY = 64 << 20  # bytes of a request body (images inlined as base64 included)
ROUTES = ("chat/completions", "completions", "embeddings")



def read_api_key(path: Path | None) -> str | None:
    """The key in ``path`` (its first line, stripped), or ``None`` without a file.

    Raises:
        ConfigError: the file is missing, not a regular file, empty, or too large; the key is never shown.
    """
    from imageworks_models.errors import ConfigError

    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"the gateway's API key file {path} is not a file",
                          hint="write the key into it (one line), or point --api-key-file elsewhere")
    raw = path.read_bytes()[:4097]
    key = raw.decode("utf-8", "replace").strip().splitlines()[0].strip() if raw.strip() else ""
    if not key or len(raw) > 4096:
        raise ConfigError(f"the gateway's API key file {path} is empty or longer than 4 KiB",
                          hint="put one key of printable characters on its first line")
    return key


# --- metrics ----------------------------------------------------------------------------------------


class Metrics(Hooks):
    """The gateway's Prometheus collectors, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("imageworks_gateway_requests", "Requests by model, route and HTTP status.",
                                ["model", "route", "code"], registry=r)
        self.errors = Counter("imageworks_gateway_errors", "Failed requests by model and kind of failure.",
                              ["model", "kind"], registry=r)
        self.flight = Gauge("imageworks_gateway_in_flight", "Requests being answered, by model.", ["model"],
                            registry=r)
        self.waiting = Gauge("imageworks_gateway_queued", "Requests waiting for a slot, by model.", ["model"],
                             registry=r)
        self.load = Histogram("imageworks_gateway_load_seconds", "Seconds from a model's start to ready.",
                              ["model"], registry=r, buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800))
        self.evictions = Counter("imageworks_gateway_evictions", "Models stopped, by reason (idle, memory, "
                                 "exited, request, shutdown).", ["model", "reason"], registry=r)
        self.ttfb = Histogram("imageworks_gateway_time_to_first_byte_seconds",
                              "Seconds from a request's arrival to the first byte of the model's answer.", ["model"],
                              registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120))

    def loaded(self, name: str, seconds: float) -> None:
        self.load.labels(name).observe(seconds)

    def evicted(self, name: str, reason: str) -> None:
        self.evictions.labels(name, reason).inc()

    def queued(self, name: str, delta: int) -> None:
        self.waiting.labels(name).inc(delta)

    def in_flight(self, name: str, delta: int) -> None:
        self.flight.labels(name).inc(delta)


# --- the registry, as requests name it --------------------------------------------------------------


class Catalog:
    """Request ``model`` values to entries, cached; reloaded when a registry file changes (checked at most
    once a second)."""

    def __init__(self, settings, plugins):
        self.settings = settings
        self.plugins = plugins
        self._registry = None
        self._stamp: Any = None
        self._checked = 0.0
        self._cache: dict[str, dict[str, Any]] = {}
        self._impls: dict[str, Any] = {}

    def _files_stamp(self):
        from imageworks_models.settings import REGISTRY_FILES

        out = []
        for name in REGISTRY_FILES:
            try:
                st = (Path(self.settings.registry_dir) / name).stat()
                out.append((name, st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append((name, None))
        return tuple(out)

    def registry(self):
        now = time.monotonic()
        if self._registry is None or now - self._checked > 1.0:
            self._checked = now
            stamp = self._files_stamp()
            if self._registry is None or stamp != self._stamp:
                from imageworks_models.registry import open_registry

                self._registry = open_registry(self.settings)
                self._stamp = stamp
                self._cache.clear()
        return self._registry

    def resolve(self, ref: Any) -> dict[str, Any]:
        """The entry a request's ``model`` names.

        Raises:
            GatewayError: 400 without a model, 404 for one the registry does not know.
        """
        if not isinstance(ref, str) or not ref.strip():
            raise GatewayError("the request names no model (\"model\": an entry name, alias, served id or "
                               "role:NAME)", status=400, kind="invalid_request_error")
        registry = self.registry()
        entry = self._cache.get(ref)
        if entry is not None:
            return entry
        try:
            if ref.startswith("role:"):
                from imageworks_models.serving.selection import select

                chosen = select(registry, ref[5:], plugins=self.plugins, settings=self.settings)
                entry = registry.get(chosen.name)
            else:
                entry = registry.get(ref)
        except ImageworksError as exc:
            raise GatewayError(f"model {ref!r}: {exc.message}", status=404, kind="invalid_request_error",
                               hint=exc.hint) from None
        self._cache[ref] = entry
        return entry

    def impl(self, entry: dict[str, Any]):
        backend = entry.get("backend") or ""
        if backend not in self._impls:
            from imageworks_models.serving.control import backend_impl

            try:
                self._impls[backend] = backend_impl(backend, self.plugins)
            except ImageworksError as exc:
                raise GatewayError(f"{entry['name']}: {exc.message}", status=400, kind="invalid_request_error",
                                   hint=exc.hint) from None
        return self._impls[backend]

    def servable(self) -> list[dict[str, Any]]:
        """Entries the gateway can serve: a process backend with its files here, or Ollama; not deprecated,
        not a remote endpoint."""
        from imageworks_models.registry.identity import has_files

        out = []
        for entry in sorted(self.registry(), key=lambda e: e["name"]):
            if (entry.get("flags") or {}).get("deprecated") or (entry.get("backend_config") or {}).get("base_url"):
                continue
            try:
                impl = self.impl(entry)
            except GatewayError:
                continue
            if (isinstance(impl, ServerBackend) and has_files(entry)) or isinstance(impl, LoadingBackend):
                out.append(entry)
        return out


# --- responses --------------------------------------------------------------------------------------


def error_body(message: str, kind: str = "server_error", code: Any = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def error_response(exc: BaseException, model: str | None = None) -> JSONResponse:
    status, kind = _classify(exc)
    message = getattr(exc, "message", None) or str(exc)
    hint = getattr(exc, "hint", None)
    log_path = getattr(exc, "log_path", None)
    if log_path and str(log_path) not in message:
        message += f" (log: {log_path})"
    if hint:
        message += f" (hint: {hint})"
    return JSONResponse(error_body(message, kind, status), status_code=status)


def _classify(exc: BaseException) -> tuple[int, str]:
    from imageworks_models.errors import DivergenceError, DoesNotFitError, IntegrityError, UnsafeLaunchError

    if isinstance(exc, GatewayError):
        return exc.status, exc.kind
    if isinstance(exc, (DivergenceError, IntegrityError)):
        return 409, "files_changed"
    if isinstance(exc, (UnsafeLaunchError, EntryNotFoundError)):
        return 400, "invalid_request_error"
    if isinstance(exc, DoesNotFitError):
        return 503, "insufficient_memory"
    return 503, "server_error"


class Forward(Response):
    """A streamed answer passed through as it comes; stops the pump when the client disconnects."""

    def __init__(self, chunks, *, status_code: int, media_type: str | None):
        self.chunks = chunks  # an async generator; closing it closes the upstream request
        self.status_code = status_code
        self.media_type = media_type
        self.background = None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no"})

    async def __call__(self, scope, receive, send) -> None:
        async def pump() -> None:
            try:
                await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
                async for chunk in self.chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass  # the client went away
            finally:
                await self.chunks.aclose()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return

        pumping = asyncio.ensure_future(pump())
        watching = asyncio.ensure_future(watch())
        done, _ = await asyncio.wait({pumping, watching}, return_when=asyncio.FIRST_COMPLETED)
        if pumping in done:
            watching.cancel()
            pumping.result()
        else:  # disconnected: stop generating for nobody
            pumping.cancel()
            await asyncio.gather(pumping, return_exceptions=True)


# --- the application --------------------------------------------------------------------------------


class Gateway:
    """The gateway's shared parts: settings, catalog, fleet, metrics, the upstream HTTP client."""

    def __init__(self, *, settings, plugins, api_key: str | None, identity: dict[str, Any]):
        self.settings = settings
        self.plugins = plugins
        self.api_key = api_key.encode() if api_key else None
        self.identity = identity
        self.metrics = Metrics()
        self.catalog = Catalog(settings, plugins)
        self.fleet: Fleet | None = None
        self.client: httpx.AsyncClient | None = None
        self.ollama_refreshed: dict[str, float] = {}
        self.ollama_loaded: set[str] = set()  # Ollama models loaded through the gateway (Ollama unloads by itself)
        self.background: set[asyncio.Task] = set()

    # lifespan
    async def startup(self) -> None:
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10.0),
                                        limits=httpx.Limits(max_connections=None, max_keepalive_connections=256))
        self.fleet = Fleet(settings=self.settings, plugins=self.plugins, identity=self.identity, hooks=self.metrics)
        self.fleet.start()
        try:
            preload = [e for e in self.catalog.servable() if (e.get("gateway") or {}).get("preload") is True
                       and isinstance(self.catalog.impl(e), ServerBackend)]
        except ImageworksError as exc:
            log.warning("gateway: no preloading: %s", exc.message)
            preload = []
        self.fleet.preload(preload)

    def closing(self) -> None:
        """Shutdown has begun: requests waiting for a model to load or for a slot get a 503 now, rather than
        holding the shutdown up (a signal handler calls this: it only sets a flag)."""
        if self.fleet is not None:
            self.fleet._closing = True

    async def shutdown(self) -> None:
        if self.fleet is not None:
            await self.fleet.close()
        if self.client is not None:
            await self.client.aclose()

    # routes
    async def models(self, request: Request) -> Response:
        now = int(time.time())
        resident = {r["name"]: r for r in self.fleet.snapshot()}
        data = []
        for entry in self.catalog.servable():
            name = entry["name"]
            r = resident.get(name)
            state = {"ready": "loaded", "draining": "loaded", "loading": "loading"}.get(r["status"], "unloaded") \
                if r else ("loaded" if name in self.ollama_loaded else "unloaded")
            data.append({"id": name, "object": "model", "created": now, "owned_by": entry.get("backend"),
                         "state": state, "aliases": list(entry.get("aliases") or []),
                         "served_model_id": entry.get("served_model_id"), "roles": list(entry.get("roles") or [])})
        return JSONResponse({"object": "list", "data": data})

    async def status(self, request: Request) -> Response:
        return JSONResponse({"url": self.identity.get("url"), "pid": self.identity.get("pid"),
                             "models": self.fleet.snapshot()})

    async def unload(self, request: Request) -> Response:
        """``POST /gateway/unload {"model": NAME}``: stop a resident model once its requests have ended."""
        try:
            payload = json.loads(await request.body() or b"{}")
            entry = self.catalog.resolve(payload.get("model") if isinstance(payload, dict) else None)
        except ValueError:
            return error_response(GatewayError("the body is not JSON", status=400, kind="invalid_request_error"))
        except GatewayError as exc:
            return error_response(exc)
        stopped = await self.fleet.unload(entry["name"], reason="request")
        return JSONResponse({"model": entry["name"], "unloaded": stopped})

    async def metrics_route(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def proxy(self, request: Request) -> Response:
        began = time.monotonic()
        route = request.url.path[4:]  # after "/v1/"
        model = None
        try:
            if int(request.headers.get("content-length") or 0) > MAX_BODY:
                raise GatewayError(f"the request body is larger than {MAX_BODY >> 20} MiB", status=413,
                                   kind="invalid_request_error")
            body = await request.body()
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                raise GatewayError("the request body is not a JSON object", status=400, kind="invalid_request_error")
            model = payload.get("model")
            entry = self.catalog.resolve(model)
            model = entry["name"]
            impl = self.catalog.impl(entry)
            stream = payload.get("stream") is True
            if not isinstance(impl, ServerBackend):
                if isinstance(impl, LoadingBackend):
                    return await self._ollama(entry, payload, route, stream, began)
                raise GatewayError(f"{model!r} uses the {entry.get('backend')} backend, which the gateway cannot "
                                   "serve", status=400, kind="invalid_request_error")
            res = self.fleet.residents.get(model)
            if stream and (res is None or res.status != "ready"):
                return Forward(self._stream_after_load(entry, payload, body, route, began), status_code=200,
                               media_type="text/event-stream")
            res = await self.fleet.acquire(entry)
        except Exception as exc:  # noqa: BLE001 - every failure is an OpenAI-shaped error answer
            return self._failed(model or "-", route, exc)
        return await self._forward(res, payload, body, route, stream, began)

    def _failed(self, model: str, route: str, exc: BaseException) -> Response:
        response = error_response(exc)
        self.metrics.requests.labels(model, route, str(response.status_code)).inc()
        self.metrics.errors.labels(model, _classify(exc)[1]).inc()
        if not isinstance(exc, (ImageworksError,)):
            log.warning("gateway: %s %s: %s: %s", model, route, type(exc).__name__, exc)
        return response

    def _upstream(self, res, payload: dict[str, Any], body: bytes, route: str) -> httpx.Request:
        if payload.get("model") != res.served_model_id:
            payload["model"] = res.served_model_id
            body = json.dumps(payload).encode()
        return self.client.build_request("POST", f"{res.endpoint}/{route}", content=body,
                                         headers={"content-type": "application/json"})

    async def _forward(self, res, payload, body, route, stream, began) -> Response:
        name = res.name
        try:
            upstream = await self.client.send(self._upstream(res, payload, body, route), stream=stream)
        except httpx.HTTPError as exc:
            await self.fleet.release(res)
            gone = await self.fleet.lost(res)
            return self._failed(name, route, GatewayError(
                f"{name}: its server did not answer ({type(exc).__name__})"
                + ("; it had exited and will be started again on the next request" if gone else ""),
                status=502 if not gone else 503, kind="upstream_error"))
        if not stream:
            await self.fleet.release(res)
            self.metrics.ttfb.labels(name).observe(time.monotonic() - began)
            self.metrics.requests.labels(name, route, str(upstream.status_code)).inc()
            return Response(upstream.content, status_code=upstream.status_code,
                            media_type=upstream.headers.get("content-type"))
        return Forward(self._pass(res, upstream, route, began), status_code=upstream.status_code,
                       media_type=upstream.headers.get("content-type"))

    async def _pass(self, res, upstream: httpx.Response, route: str, began: float):
        """The upstream body, chunk by chunk; an error event if the engine fails mid-stream."""
        name = res.name
        first = True
        code = str(upstream.status_code)
        try:
            async for chunk in upstream.aiter_raw():
                if first:
                    self.metrics.ttfb.labels(name).observe(time.monotonic() - began)
                    first = False
                yield chunk
        except httpx.HTTPError as exc:
            code = "error"
            gone = await self.fleet.lost(res)
            self.metrics.errors.labels(name, "engine_exited" if gone else "upstream_error").inc()
            message = (f"{name}: its server " + ("exited" if gone else "failed") + f" mid-stream "
                       f"({type(exc).__name__}); " + ("it will be started again on the next request; "
                                                      if gone else "") + f"log: {res.log_path}")
            yield b"\n\ndata: " + json.dumps(error_body(message, "upstream_error", 502)).encode() + b"\n\n"
        finally:
            await upstream.aclose()
            await self.fleet.release(res)
            self.metrics.requests.labels(name, route, code).inc()

    async def _stream_after_load(self, entry, payload, body, route, began):
        """A streaming request whose model is not ready: keep-alive comments until it is, then its answer."""
        name = entry["name"]
        acquiring = asyncio.ensure_future(self.fleet.acquire(entry))
        interval = max(0.05, self.settings.gateway_keepalive_interval)
        try:
            while True:
                done, _ = await asyncio.wait({acquiring}, timeout=interval)
                if done:
                    break
                yield f": loading {name}\n\n".encode()
        finally:
            if not acquiring.done():
                acquiring.cancel()
                try:
                    res = await acquiring
                except BaseException:  # noqa: BLE001 - cancelled, or it failed: nothing was taken
                    res = None
                if res is not None:
                    await self.fleet.release(res)
        try:
            res = acquiring.result()
        except Exception as exc:  # noqa: BLE001 - the failure goes to the client as an error event
            status, kind = _classify(exc)
            self.metrics.requests.labels(name, route, str(status)).inc()
            self.metrics.errors.labels(name, kind).inc()
            message = error_response(exc).body
            yield b"data: " + message + b"\n\n"
            return
        try:
            upstream = await self.client.send(self._upstream(res, payload, body, route), stream=True)
        except httpx.HTTPError as exc:
            await self.fleet.release(res)
            await self.fleet.lost(res)
            self.metrics.errors.labels(name, "upstream_error").inc()
            yield b"data: " + json.dumps(error_body(f"{name}: its server did not answer ({type(exc).__name__})",
                                                    "upstream_error", 502)).encode() + b"\n\n"
            return
        async for chunk in self._pass(res, upstream, route, began):
            yield chunk

    # Ollama: it loads models itself; the gateway forwards and keeps the model loaded for its idle_ttl.
    async def _ollama(self, entry, payload, route, stream, began) -> Response:
        from imageworks_models.serving.endpoints import normalize_host_url
        from imageworks_models.gateway.fleet import Options

        name = entry["name"]
        served = entry.get("served_model_id") or name
        base = normalize_host_url(self.settings.ollama_host, 11434)
        ttl = Options.of(entry, self.settings).idle_ttl
        keep_alive = f"{int(ttl)}s" if ttl else -1
        await self._ollama_keep(base, name, served, keep_alive)
        payload["model"] = served
        request = self.client.build_request("POST", f"{base}/v1/{route}", content=json.dumps(payload).encode(),
                                            headers={"content-type": "application/json"})
        try:
            upstream = await self.client.send(request, stream=stream)
        except httpx.HTTPError as exc:
            return self._failed(name, route, GatewayError(f"{name}: Ollama at {base} did not answer "
                                                          f"({type(exc).__name__})", status=503,
                                                          hint="start it with `ollama serve`"))
        self.metrics.ttfb.labels(name).observe(time.monotonic() - began)

        def after() -> None:  # Ollama's OpenAI routes reset keep_alive to its default: set ours again (after)
            self.ollama_refreshed.pop(name, None)
            task = asyncio.get_running_loop().create_task(self._ollama_keep(base, name, served, keep_alive))
            self.background.add(task)
            task.add_done_callback(self.background.discard)

        if not stream:
            self.metrics.requests.labels(name, route, str(upstream.status_code)).inc()
            after()
            return Response(upstream.content, status_code=upstream.status_code,
                            media_type=upstream.headers.get("content-type"))

        async def chunks():
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()
                self.metrics.requests.labels(name, route, str(upstream.status_code)).inc()
                after()

        return Forward(chunks(), status_code=upstream.status_code, media_type=upstream.headers.get("content-type"))

    async def _ollama_keep(self, base: str, name: str, served: str, keep_alive) -> None:
        """Load (or keep loaded) ``served`` in Ollama for ``keep_alive`` (``/api/generate`` without a prompt)."""
        if time.monotonic() - self.ollama_refreshed.get(name, -1e9) < 1.0:
            return
        try:
            await self.client.post(f"{base}/api/generate", json={"model": served, "keep_alive": keep_alive},
                                   timeout=self.settings.ollama_timeout)
            self.ollama_refreshed[name] = time.monotonic()
            self.ollama_loaded.add(name)
        except httpx.HTTPError as exc:
            log.warning("gateway: could not set Ollama's keep_alive for %s: %s", name, type(exc).__name__)


def create_app(gateway: Gateway) -> Starlette:
    """The Starlette application of ``gateway`` (API key checked before any route)."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        await gateway.startup()
        try:
            yield
        finally:
            await gateway.shutdown()

    routes = [Route(f"/v1/{r}", gateway.proxy, methods=["POST"]) for r in ROUTES]
    routes += [Route("/v1/models", gateway.models, methods=["GET"]),
               Route("/metrics", gateway.metrics_route, methods=["GET"]),
               Route("/gateway/status", gateway.status, methods=["GET"]),
               Route("/gateway/unload", gateway.unload, methods=["POST"])]
    app = Starlette(routes=routes, lifespan=lifespan)

    inner = app.__call__

    async def guarded(scope, receive, send):
        if scope["type"] == "http" and gateway.api_key is not None:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
            auth = headers.get("authorization", "")
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else headers.get("x-api-key", "")
            if not hmac.compare_digest(given.encode(), gateway.api_key):
                response = JSONResponse(error_body("a valid API key is required (Authorization: Bearer KEY)",
                                                   "invalid_api_key", 401), status_code=401,
                                        headers={"www-authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await inner(scope, receive, send)

    return guarded  # type: ignore[return-value]


def serve(*, settings, plugins, host: str, port: int, api_key: str | None,
          ready: Any = None) -> None:
    """Run the gateway until SIGTERM or Ctrl-C; every model it started is stopped before it returns.

    Raises:
        ConfigError: a non-loopback ``host`` without an API key.
        LockTimeoutError: another gateway uses this state folder.
        PortInUseError: ``host:port`` cannot be bound.
    """
    import os

    import uvicorn

    from imageworks_models.errors import ConfigError, PortInUseError
    from imageworks_models.live.processes import boot_id, cmdline, port_bindable, proc_stat
    from imageworks_models.fs.storage import file_lock, utc_now
    from imageworks_models.live.gateway import STATE_FILE

    if not is_loopback(host) and not api_key:
        raise ConfigError(f"the gateway would listen on {host}, beyond this machine, without an API key",
                          hint="pass --api-key-file FILE (or set IMAGEWORKS_GATEWAY_API_KEY_FILE), or bind 127.0.0.1")
    Path(settings.state_dir).mkdir(parents=True, exist_ok=True)
    lock = file_lock(Path(settings.state_dir) / (STATE_FILE + ".lock"), timeout=0.5,
                     what="the gateway state (another `imageworks-models gateway` runs with this registry)")
    with lock:
        stop_leftovers(settings)
        if not port_bindable(host, port):
            raise PortInUseError(f"the gateway cannot listen on {host}:{port}: the port is in use",
                                 hint="pass --port, or stop what listens there")
        me = os.getpid()
        stat = proc_stat(me)
        url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/v1"
        identity = {"pid": me, "process_start": stat.start_ticks if stat else 0, "boot_id": boot_id(),
                    "launcher": cmdline(me) or [], "host": host, "port": port, "url": url, "started_at": utc_now()}
        gateway = Gateway(settings=settings, plugins=plugins, api_key=api_key, identity=identity)
        config = uvicorn.Config(create_app(gateway), host=host, port=port, log_level="warning", access_log=False,
                                lifespan="on", timeout_graceful_shutdown=5, timeout_keep_alive=30,
                                backlog=4096)
        server = _Server(config)
        server.on_exit = gateway.closing
        if ready is not None:
            ready(url)
        try:
            server.run()
        finally:
            stop_leftovers(settings)  # what a failed shutdown left (normally nothing)


def _server_class():
    import contextlib
    import signal
    import threading

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that SIGTERM and SIGINT end a clean shutdown with exit code 0 (uvicorn
        re-raises the signal afterwards, so the process would report death by SIGTERM)."""

        on_exit = None  # called at the first SIGTERM/SIGINT, before uvicorn waits for open requests

        def handle_exit(self, sig, frame) -> None:
            if self.on_exit is not None and not self.should_exit:
                self.on_exit()
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server


def _Server(config):
    return _server_class()(config)


def stop_leftovers(settings) -> list[str]:
    """Stop the servers a gateway that is no longer running recorded (killed with SIGKILL, a crash), each by
    identity, and remove its state file. Returns their names."""
    from imageworks_models.serving.activation import stop_server
    from imageworks_models.live.gateway import clear_state, gateway_alive, read_state

    data = read_state(settings.state_dir)
    if data is None:
        return []
    import os

    if data.get("pid") != os.getpid() and gateway_alive(data):
        return []
    stopped = []
    for name, record in (data.get("models") or {}).items():
        if isinstance(record, dict):
            out = stop_server(record, settings=settings)
            if out.get("signal"):
                stopped.append(name)
    clear_state(settings.state_dir)
    return stopped
