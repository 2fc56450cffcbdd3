"""The single-active-model orchestrator: which model is live on the serving port, and switching it.

One model is served at a time on the serving port (``CHAT_PROXY_VLLM_PORT``, default 8000; with
``CHAT_PROXY_VLLM_SINGLE_PORT=0`` the entry's own ``backend_config.port``). Its record is
``_staging/active_vllm.json``::

    {"schema_version": 1, "name", "backend", "served_model_id", "status": "starting" | "ready",
     "pid", "process_start", "boot_id", "launcher", "command", "host", "port", "endpoint", "log",
     "started_at", "ready_at", "stop_grace"}

(``stop_grace``: the seconds between SIGTERM and SIGKILL the backend asked for, ``null`` for the setting.)

A backend that loads models into its own running server (Ollama) leaves a record without a process:
``{"schema_version", "kind": "loaded", "name", "backend", "served_model_id", "endpoint", "status": "ready",
"started_at", "ready_at"}``; ``current`` asks that backend whether the model is still loaded, and ``stop``
unloads it.

Backends do the backend-specific work: a process backend's ``launch(entry, *, settings)`` says what to run
(a :class:`~imageworks_models.plugin.records.Launch`) and ``probe(endpoint, served_model_id, *, settings)`` asks the
server whether it is ready (a :class:`~imageworks_models.plugin.records.Probe`). This module holds the state
machine: one lock around every change, the state file written atomically before waiting (so a killed CLI's
server is adopted or reaped by the next command, P10/P11), the old server's whole group stopped before the
new one starts (P13), a foreign listener never taken for ours (P4), and after any failure no process of ours
left and no record of one (P1, P2). The process work is in :mod:`imageworks_models.live.processes`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable

from imageworks_models.live.active import (LOADED, STATE_FILE, _has_identity, is_loaded_record, read_active,
                                          server_state, state_path)

SCHEMA_VERSION = 1
TAIL_LINES = 15
log = logging.getLogger("imageworks_models")


def preflight(entry: dict[str, Any], *, settings: Any = None, plugins: Any = None, quick: bool = True) -> None:
    """Checks every activation runs before it starts a server; today: a locked entry must still match.

    Raises:
        LockedEntryDriftError: the entry is locked and its files differ from the expected aggregate.
        NotVerifiableError: the entry is locked and its files cannot be checked.
    """
    from imageworks_models.integrity.verify import check_activation_allowed

    check_activation_allowed(entry, settings=settings, plugins=plugins, quick=quick)


# --- the recorded server ---------------------------------------------------------------------------


_STALE_REASONS = {
    "exited": "its server is no longer running (it crashed or was stopped outside imageworks)",
    "rebooted": "it was recorded before the last reboot",
    "reused": "its pid now belongs to another process, which was left alone",
    "none": "it records no server process",
}


def log_path_for(settings, name: str) -> Path:
    """``logs/<name>.log``, with characters that do not belong in a file name replaced."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")[:120] or "model"
    return Path(settings.log_dir) / f"{slug}.log"


def log_tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a server's current log (the launcher starts each run with a fresh one)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read()
    except OSError:
        return []
    kept = [line.rstrip() for line in text.decode("utf-8", "replace").splitlines() if line.strip()]
    return _fold_traceback(kept)[-lines:]


def _fold_traceback(lines: list[str]) -> list[str]:
    """A Python server's last traceback as its exception line only: its frames would push out of the tail the
    lines the server logged before it failed, which say why (llama.cpp's "unknown model architecture")."""
    marker = "Traceback (most recent call last):"
    starts = [i for i, line in enumerate(lines) if line.strip() == marker]
    if not starts:
        return lines
    start = starts[-1]
    after = [line for line in lines[start + 1:] if not line.startswith((" ", "\t"))]
    return [*lines[:start], f"(a traceback of {len(lines) - start - len(after)} lines is in the log)", *after]


def _locked(settings, timeout: float):
    from imageworks_models.fs.storage import file_lock

    Path(settings.state_dir).mkdir(parents=True, exist_ok=True)
    return file_lock(state_path(settings.state_dir).with_name(STATE_FILE + ".lock"), timeout=timeout,
                     what="the active-model state (another activate-model is running)")


def _write_state(settings, data: dict[str, Any]) -> None:
    from imageworks_models.fs.storage import atomic_write

    atomic_write(state_path(settings.state_dir), (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _clear_state(settings) -> None:
    try:
        state_path(settings.state_dir).unlink()
    except FileNotFoundError:
        pass


def _stop_recorded(active: dict[str, Any], settings, plugins=None) -> dict[str, Any]:
    """Stop the recorded server if it is provably ours (or unload a model loaded into a backend's server);
    returns what happened."""
    from imageworks_models.live.processes import ServerIdentity, stop_group

    if is_loaded_record(active):
        return _unload_recorded(active, settings, plugins)

    verdict = server_state(active)
    ident = ServerIdentity.from_state(active)
    grace = _grace(active, settings)
    signal_used = stop_group(ident, grace=grace) if ident and verdict in ("alive", "exited") else None
    out = {"name": active.get("name"), "pid": active.get("pid"), "signal": signal_used, "grace": grace}
    if verdict != "alive":
        out["stale"] = _STALE_REASONS[verdict]
    return out


def _grace(active: dict[str, Any], settings) -> float:
    """The recorded server's SIGTERM grace: what its backend asked for, else the ``stop_grace`` setting."""
    grace = active.get("stop_grace")
    if isinstance(grace, (int, float)) and not isinstance(grace, bool) and grace >= 0:
        return float(grace)
    return settings.stop_grace


def _unload_recorded(active: dict[str, Any], settings, plugins) -> dict[str, Any]:
    """Unload a model recorded as loaded into its backend's server (``keep_alive: 0`` for Ollama)."""
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.serving.control import backend_impl

    impl = backend_impl(active.get("backend") or "", plugins or get_plugins(settings))
    impl.deactivate({"name": active.get("name"), "backend": active.get("backend"),
                     "served_model_id": active.get("served_model_id")}, settings=settings)
    return {"name": active.get("name"), "pid": None, "signal": None, "unloaded": active.get("served_model_id")}


def record_loaded(result: dict[str, Any], *, settings, plugins=None, previous_stopped: bool = True) -> dict[str, Any]:
    """Record a model a backend loaded into its own server (Ollama) as the live one, after stopping the live
    process server, if any (one live model, as `activate-model` promises). Called by
    :func:`imageworks_models.serving.control.activate` once the backend's ``activate`` succeeded.

    Returns:
        ``{"stopped": {"name", "pid", "signal"} | None}``: what was stopped first.
    """
    stopped = None
    with _locked(settings, settings.stop_grace + settings.lock_timeout):
        previous = read_active(settings.state_dir)
        if previous is not None and not (is_loaded_record(previous) and previous.get("name") == result["name"]):
            if is_loaded_record(previous):
                try:
                    stopped = _unload_recorded(previous, settings, plugins)
                except Exception as exc:  # noqa: BLE001 - the other model may be gone already; ours is loaded
                    log.warning("could not unload %s: %s", previous.get("name"), exc)
            else:
                stopped = _stop_recorded(previous, settings)
        now = _now()
        _write_state(settings, {"schema_version": SCHEMA_VERSION, "kind": LOADED, "name": result["name"],
                                "backend": result.get("backend"), "served_model_id": result.get("served_model_id"),
                                "endpoint": result.get("endpoint"), "status": "ready", "started_at": now,
                                "ready_at": now})
    return {"stopped": stopped}


def forget_loaded(name: str, *, settings) -> None:
    """Drop the record of ``name`` if it is the loaded live model (after its backend unloaded it)."""
    with _locked(settings, settings.lock_timeout):
        previous = read_active(settings.state_dir)
        if is_loaded_record(previous) and previous.get("name") == name:
            _clear_state(settings)


# --- public operations -----------------------------------------------------------------------------


def _audit(settings, action: str, active: dict[str, Any], **fields: Any) -> None:
    from imageworks_models.registry import audit

    audit.record(settings.log_dir, action, entries=[active.get("name")], backend=active.get("backend"),
                 server_pid=active.get("pid"), port=active.get("port"), **fields)


def _now() -> str:
    from imageworks_models.fs.storage import utc_now

    return utc_now()


def _result(active: dict[str, Any], **extra: Any) -> dict[str, Any]:
    keys = ("name", "backend", "served_model_id", "endpoint", "host", "port", "pid", "status", "log", "command",
            "started_at", "ready_at")
    return {**{k: active.get(k) for k in keys}, **extra}


def start(entry: dict[str, Any], impl: Any, *, settings, plugins=None, timeout: float | None = None,
          progress: Callable[[str], None] | None = None, force: bool = False,
          takeover: bool = False) -> dict[str, Any]:
    """Make ``entry`` the active model: stop whatever runs on the serving port (if ours), start its server,
    wait until it is ready. Called by :func:`imageworks_models.serving.control.activate`.

    Args:
        entry: the registry entry (its backend's implementation has ``launch`` and ``probe``).
        impl: that implementation.
        settings: resolved settings.
        timeout: seconds to wait for readiness (default ``activation_timeout``).
        progress: called with one line at each step (``"stopping qwen-a (pid 123)"``...).
        force: start it even if the memory estimate says it will not fit.
        takeover: stop a server imageworks has no record of that holds the port, if its command line is the
            kind this backend launches (same executable and subcommand); anything else is never signalled.

    Returns:
        The new state (see the module docstring) plus ``changed`` (``False`` when it was already active and
        ready), ``stopped`` (what was stopped, or ``None``) and ``seconds``.

    Raises:
        NotActivatableError: the entry is a remote endpoint.
        LockedEntryDriftError, NotVerifiableError: it is locked and its files differ or cannot be checked.
        UnsafeLaunchError: its backend_config is refused (S7).
        DoesNotFitError: the memory estimate says it will not fit the free memory (``force`` overrides).
        PortInUseError: a process the orchestrator did not start holds the port.
        ServerStartError: the server could not be run or exited before it was ready (exit code, log tail).
        ServerNotReadyError: it was not ready within ``timeout``; it was stopped.
        LockTimeoutError: another activation held the state for too long.
    """
    say = progress or (lambda line: None)
    began = time.monotonic()
    name = entry["name"]
    launch = _prepare(entry, impl, settings=settings, plugins=plugins)
    from imageworks_models.fit import check_activation

    estimate = check_activation(entry, settings=settings, plugins=plugins, force=force)
    timeout = settings.activation_timeout if timeout is None else timeout
    with _locked(settings, timeout + settings.stop_grace + settings.lock_timeout):
        previous = read_active(settings.state_dir)
        stopped = None
        if previous is not None:
            verdict = server_state(previous)
            if verdict == "alive" and previous.get("name") == name and previous.get("command") == list(launch.argv):
                say(f"{name} is already running (pid {previous.get('pid')}); checking it")
                changed = _adopt(previous, impl, launch, settings=settings, deadline=began + timeout)
                return _result(previous, changed=changed, stopped=None, seconds=round(time.monotonic() - began, 3))
            if is_loaded_record(previous):
                say(f"unloading {previous.get('name')} from {previous.get('backend')}")
            elif verdict in ("alive", "exited"):
                say(f"stopping {previous.get('name')} (pid {previous.get('pid')})")
            stopped = _stop_recorded(previous, settings, plugins)
            _clear_state(settings)
        _check_port(launch, takeover=takeover, settings=settings, say=say)
        active = _spawn(entry, launch, settings=settings, say=say)
        _wait_or_clean_up(active, impl, launch, settings=settings, deadline=began + timeout, timeout=timeout)
        active.update(status="ready", ready_at=_now())
        _write_state(settings, active)
    _audit(settings, "activate", active, stopped=stopped)
    _record_footprint(settings, entry, active, estimate)
    say(f"{name} is ready at {launch.endpoint}")
    return _result(active, changed=True, stopped=stopped, seconds=round(time.monotonic() - began, 3))


def _record_footprint(settings, entry: dict[str, Any], active: dict[str, Any], estimate) -> None:
    """What the ready server really holds (GPU memory of its process group, else its resident memory) and how
    long it took to load, kept on the entry for later estimates (fit/__init__.py). Never fails the activation."""
    import logging

    try:
        from imageworks_models.fit import record_footprint
        from imageworks_models.fit.devices import group_pids, inventory, rss_bytes

        pids = group_pids(int(active["pid"]))
        inv = inventory(settings)
        gpu = sum(inv.process_bytes.get(p, 0) for p in pids)
        used, device = (gpu, "gpu") if gpu else (rss_bytes(pids), "cpu")
        if not used:
            return
        seconds = None
        if active.get("started_at") and active.get("ready_at"):
            from datetime import datetime

            seconds = (datetime.fromisoformat(active["ready_at"].replace("Z", "+00:00"))
                       - datetime.fromisoformat(active["started_at"].replace("Z", "+00:00"))).total_seconds()
        record_footprint(settings, entry["name"], backend=str(entry.get("backend")),
                         context=estimate.context if estimate is not None else None,
                         parallel=estimate.parallel if estimate is not None else 1, used_bytes=used, device=device,
                         load_seconds=seconds)
    except Exception as exc:  # noqa: BLE001 - a measurement is a bonus, the model is up either way
        logging.getLogger("imageworks_models").warning("%s: its memory footprint was not recorded: %s",
                                                       entry["name"], exc)


def _prepare(entry: dict[str, Any], impl: Any, *, settings, plugins) -> Any:
    """Every refusal that comes before anything starts: a remote entry, lock drift, the backend's checks (S7)."""
    from imageworks_models.redact import redact_url
    from imageworks_models.errors import NotActivatableError

    base_url = (entry.get("backend_config") or {}).get("base_url")
    if base_url:
        raise NotActivatableError(f"{entry['name']!r} is served remotely at {redact_url(base_url)}; nothing is "
                                  "started here",
                                  hint=f"check it with: imageworks-models health {entry.get('backend')}")
    preflight(entry, settings=settings, plugins=plugins)
    return impl.launch(entry, settings=settings)


def _adopt(active: dict[str, Any], impl, launch, *, settings, deadline: float) -> bool:
    """Take over a running server of the same entry and command (e.g. one a killed CLI started): wait until it
    is ready and record that. Returns whether the record changed (``False``: it was ready already)."""
    from imageworks_models.live.processes import port_owners

    owners = port_owners(launch.port, pgid=active["pid"])
    if active.get("status") == "ready" and not owners.foreign and impl.probe(
            launch.endpoint, launch.served_model_id, settings=settings).ready:
        return False
    _wait_or_clean_up(active, impl, launch, settings=settings, deadline=deadline,
                      timeout=max(0.0, deadline - time.monotonic()))
    active.update(status="ready", ready_at=_now())
    _write_state(settings, active)
    return True


def launcher_prefix(argv) -> tuple[str, ...]:
    """The executable and subcommand words of a launch (``vllm serve``, ``lmdeploy serve api_server``,
    ``python stand_in.py serve``): its leading words before the first option, less the last one (the model)."""
    words = []
    for arg in argv:
        if arg.startswith("-"):
            break
        words.append(arg)
    return tuple(words[:-1] if len(words) > 1 else words)


def launched_like(command: list[str] | None, launch) -> bool:
    """Whether a process's command line is the kind of server ``launch`` starts (the same executable, compared
    by file name, and the same subcommand words), so `--takeover` may stop it."""
    import os

    prefix = launcher_prefix(launch.argv)
    if not command or not prefix or len(command) < len(prefix):
        return False
    head = list(command[:len(prefix)])
    return os.path.basename(head[0]) == os.path.basename(prefix[0]) and head[1:] == list(prefix[1:])


def untracked_holders(port: int) -> list[dict[str, Any]]:
    """The processes listening on ``port`` that no record names: ``[{"pid", "command"}]`` (for messages)."""
    from imageworks_models.live.processes import cmdline, port_owners

    return [{"pid": pid, "command": cmdline(pid) or []} for pid in port_owners(port).foreign_pids]


def _check_port(launch, *, takeover: bool = False, settings=None, say=lambda line: None) -> None:
    from imageworks_models.errors import PortInUseError
    from imageworks_models.live.processes import cmdline, describe, port_bindable, port_owners, terminate

    owners = port_owners(launch.port)
    if not (owners.foreign or not port_bindable(launch.host, launch.port)):
        return
    pids = list(owners.foreign_pids)
    ours = [pid for pid in pids if launched_like(cmdline(pid), launch)]
    who = ", ".join(describe(pid) for pid in pids) or "a process imageworks cannot see"
    if takeover and pids and ours == pids:
        for pid in pids:
            say(f"--takeover: stopping the untracked server {describe(pid)}")
            terminate(pid, grace=settings.stop_grace if settings is not None else 15.0)
        if not port_owners(launch.port).foreign and port_bindable(launch.host, launch.port):
            return
        raise PortInUseError(f"port {launch.port} is still in use after stopping {who}",
                             hint="stop it yourself, then activate again")
    kill = " ".join(str(p) for p in pids)
    if takeover:
        raise PortInUseError(f"port {launch.port} is held by {who}, which is not a server this backend launches "
                             f"({' '.join(launcher_prefix(launch.argv))} ...); --takeover left it alone",
                             hint=(f"stop it yourself (kill {kill}), or " if pids else "") +
                                  "serve on another port (CHAT_PROXY_VLLM_PORT)")
    hint = (f"stop it with `kill {kill}`" if pids else "stop it") + (
        ", or run again with --takeover (it is a server this backend launches, untracked since its record was "
        "removed)" if pids and ours == pids else "") + ", or serve on another port (CHAT_PROXY_VLLM_PORT)"
    raise PortInUseError(f"port {launch.port} is in use by {who}, which imageworks did not start (no record in "
                         f"{STATE_FILE}); it was not touched", hint=hint)


def _spawn(entry: dict[str, Any], launch, *, settings, say) -> dict[str, Any]:
    active = spawn_server(entry, launch, settings=settings, say=say)
    try:
        _write_state(settings, active)
    except BaseException:
        _abandon(active, settings)
        raise
    return active


def spawn_server(entry: dict[str, Any], launch, *, settings, say: Callable[[str], None] = lambda line: None,
                 log_file: Path | None = None) -> dict[str, Any]:
    """Start ``launch`` for ``entry`` through the log launcher; returns its record (the state file's shape,
    ``status: "starting"``), written nowhere: the caller keeps it (the active-model state, or the gateway's).

    Raises:
        ServerStartError: the executable is missing or could not be started.
    """
    import os

    from imageworks_models.errors import ServerStartError
    from imageworks_models.live.processes import spawn

    log_file = log_file or log_path_for(settings, entry["name"])
    say(f"starting {entry['name']}: {_shell_line(launch.argv)}")
    try:
        proc, ident = spawn(list(launch.argv), env={**os.environ, **launch.env}, log_path=log_file,
                            log_bytes=settings.server_log_bytes)
    except FileNotFoundError:
        raise ServerStartError(f"cannot run {launch.argv[0]!r}: no such executable", hint=launch.not_found_hint
                               or "install the backend's server, or point its *_BIN setting at it") from None
    except OSError as exc:
        raise ServerStartError(f"cannot start {launch.argv[0]!r}: {exc.strerror or exc}") from None
    active = {"schema_version": SCHEMA_VERSION, "name": entry["name"], "backend": entry.get("backend"),
              "served_model_id": launch.served_model_id, "status": "starting", **ident.as_dict(),
              "command": list(launch.argv), "host": launch.host, "port": launch.port, "endpoint": launch.endpoint,
              "log": str(log_file), "started_at": _now(), "ready_at": None, "stop_grace": launch.stop_grace}
    return active


def wait_server_ready(record: dict[str, Any], impl, launch, *, settings, timeout: float) -> None:
    """Wait until the server of ``record`` (from :func:`spawn_server`) is ready, as activation does; on any
    failure (exit, foreign listener, timeout, interrupt) its whole group is stopped before the error goes on.

    Raises:
        ServerStartError, PortInUseError, ServerNotReadyError: see :func:`start`.
    """
    try:
        _wait_ready(record, impl, launch, settings=settings, deadline=time.monotonic() + timeout, timeout=timeout)
    except BaseException:
        _stop_recorded(record, settings)
        raise


def stop_server(record: dict[str, Any], *, settings) -> dict[str, Any]:
    """Stop the server of ``record`` if it is provably ours (its whole group: SIGTERM, grace, SIGKILL).

    Returns:
        ``{"name", "pid", "signal", "grace", "stale"?}``.
    """
    return _stop_recorded(record, settings)


def check_port_free(launch) -> None:
    """Refuse a port another process holds (P4).

    Raises:
        PortInUseError: someone listens there, or it cannot be bound.
    """
    _check_port(launch)


def prepare_launch(entry: dict[str, Any], impl: Any, *, settings, plugins=None):
    """Every refusal that comes before a server starts (remote entry, locked-entry drift, S7), then the
    backend's launch plan for ``entry``.

    Raises:
        NotActivatableError, LockedEntryDriftError, NotVerifiableError, UnsafeLaunchError.
    """
    return _prepare(entry, impl, settings=settings, plugins=plugins)


def record_footprint(settings, entry: dict[str, Any], record: dict[str, Any], estimate) -> None:
    """Keep what the ready server of ``record`` holds and how long it took to load (never fails)."""
    _record_footprint(settings, entry, record, estimate)


def _abandon(active: dict[str, Any], settings) -> None:
    """After a failure: no process of ours left, and no record of one."""
    _stop_recorded(active, settings)
    current = read_active(settings.state_dir)
    if current is not None and current.get("pid") == active.get("pid"):
        _clear_state(settings)


def _wait_or_clean_up(active: dict[str, Any], impl, launch, *, settings, deadline: float, timeout: float) -> None:
    try:
        _wait_ready(active, impl, launch, settings=settings, deadline=deadline, timeout=timeout)
    except BaseException:  # KeyboardInterrupt too: a half-started server must not outlive the failure
        _abandon(active, settings)
        raise


def _wait_ready(active: dict[str, Any], impl, launch, *, settings, deadline: float, timeout: float) -> None:
    """Until ready: our process alive, our group (and nobody else) listening on the port, /health and
    /v1/models as the backend's probe checks them. Early exit is noticed within one poll (≤ 0.1 s)."""
    from imageworks_models.errors import PortInUseError, ServerNotReadyError, ServerStartError
    from imageworks_models.live.processes import ServerIdentity, assess, child, describe, port_owners

    ident = ServerIdentity.from_state(active)
    proc = child(ident.pid)
    log_file = Path(active["log"])
    name = active["name"]
    interval = 0.02
    last = "not listening yet"
    while True:
        code = proc.poll() if proc is not None else (None if assess(ident) == "alive" else -1)
        if code is not None:
            if proc is not None:
                proc.wait()
            shown = f"code {code}" if code >= 0 else "an unknown code (started by an earlier run)"
            raise ServerStartError(f"{name}: the server exited with {shown} before it was ready",
                                   returncode=code if code >= 0 else None, log_path=str(log_file),
                                   log_tail=log_tail(log_file),
                                   hint=f"read {log_file}; fix the cause (model path, GPU memory, extra_args) "
                                        "and activate again")
        owners = port_owners(launch.port, pgid=ident.pid)
        if owners.foreign:
            who = ", ".join(describe(pid) for pid in owners.foreign_pids) or "another process"
            raise PortInUseError(f"{name}: port {launch.port} is also held by {who}; its answers are not taken "
                                 "for this server's, which was stopped", hint="stop that process and activate again")
        if owners.ours or not _sees_ports():
            probe = impl.probe(launch.endpoint, launch.served_model_id, settings=settings)
            if probe.ready:
                return
            last = probe.detail or "not ready"
        if time.monotonic() >= deadline:
            raise ServerNotReadyError(f"{name}: the server was not ready after {timeout:g}s ({last}); it was stopped",
                                      log_path=str(log_file), log_tail=log_tail(log_file),
                                      hint=f"read {log_file}; a large model may need a longer "
                                           "IMAGEWORKS_ACTIVATION_TIMEOUT (or --timeout)")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.1)


def _sees_ports() -> bool:
    from imageworks_models.live.processes import PROC

    return (PROC / "net" / "tcp").exists()


def stop(*, settings, name: str | None = None, plugins=None) -> dict[str, Any]:
    """Stop the active model's server (its whole process group) and clear the record.

    Args:
        settings: resolved settings.
        name: only stop if this entry is the active one.

    Returns:
        ``{"stopped": <name or None>, "backend", "pid", "signal": "TERM" | "KILL" | None, "grace": <seconds it
        got after SIGTERM>, "stale": <why the record was stale, if it was>}``; ``stopped`` is ``None`` when
        nothing was recorded. ``signal`` is ``"KILL"`` when it did not exit within ``grace`` and was killed.

    Raises:
        ServingError: ``name`` is given and is not the active model.
        LockTimeoutError: an activation held the state for too long.
    """
    from imageworks_models.errors import ServingError

    with _locked(settings, settings.stop_grace + settings.lock_timeout):
        active = read_active(settings.state_dir)
        if active is None:
            return {"stopped": None, "backend": None, "pid": None, "signal": None}
        if name is not None and active.get("name") != name:
            raise ServingError(f"{name!r} is not the active model ({active.get('name')!r} is)",
                               hint="run `imageworks-loader activate-model --stop` to stop whatever is active")
        out = _stop_recorded(active, settings, plugins)
        _clear_state(settings)
    _audit(settings, "stop", active, signal=out["signal"], stale=out.get("stale"))
    return {"stopped": out["name"], "backend": active.get("backend"), "pid": out["pid"], "signal": out["signal"],
            **({"grace": out["grace"]} if "grace" in out else {}),
            **({"stale": out["stale"]} if "stale" in out else {}),
            **({"unloaded": out["unloaded"]} if out.get("unloaded") else {})}


def current(*, settings, plugins=None, probe: bool = True) -> dict[str, Any]:
    """What is live on the serving port, checked now (P3: a crashed server is not reported as active), and
    the models a running gateway serves (``gateway``: see :func:`imageworks_models.live.gateway.live_models`).
    """
    from imageworks_models.live.gateway import live_models

    return {**_current(settings=settings, plugins=plugins, probe=probe), "gateway": live_models(settings.state_dir)}


def _current(*, settings, plugins=None, probe: bool = True) -> dict[str, Any]:
    """What is live on the serving port, checked now (P3: a crashed server is not reported as active).

    A record whose server is gone is removed (when no activation holds the state) and reported under
    ``previous`` with the reason.

    Returns:
        ``{"active": bool, "status": "ready" | "starting" | "unhealthy" | "none", ...the state's fields...,
        "uptime_s", "detail", "previous": {"name", "reason"} | None}``.
    """
    from imageworks_models.errors import LockTimeoutError
    from imageworks_models.live.processes import reap

    reap()
    active = read_active(settings.state_dir)
    empty = {"active": False, "status": "none", "name": None, "previous": None}
    if active is None:
        untracked = untracked_holders(settings.vllm_port)
        return {**empty, "untracked": untracked} if untracked else empty
    if is_loaded_record(active):
        return _current_loaded(active, settings, plugins, probe)
    if not _has_identity(active):
        return {**_result(active), "active": True, "status": active.get("status") or "unknown",
                "detail": "recorded by the earlier tool: no process to check", "previous": None}
    verdict = server_state(active)
    if verdict != "alive":
        try:
            with _locked(settings, 0.2):
                if read_active(settings.state_dir) == active:
                    _stop_recorded(active, settings)  # reaps a lingering group of ours; never a foreign one
                    _clear_state(settings)
        except LockTimeoutError:
            pass  # an activation is changing it right now
        return {**empty, "previous": {"name": active.get("name"), "reason": _STALE_REASONS[verdict]}}
    out = {**_result(active), "active": True, "previous": None, "detail": None,
           "uptime_s": _uptime(active.get("started_at"))}
    if probe and active.get("status") == "ready":
        out["status"], out["detail"] = _probe_status(active, settings, plugins)
    return out


def _current_loaded(active: dict[str, Any], settings, plugins, probe: bool) -> dict[str, Any]:
    """A model loaded into a backend's server: still loaded there (``/api/ps``), or the record is dropped."""
    from imageworks_models.errors import ImageworksError, LockTimeoutError
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.serving.control import backend_impl

    out = {**_result(active), "active": True, "status": "ready", "previous": None, "detail": None,
           "uptime_s": _uptime(active.get("started_at"))}
    if not probe:
        return out
    try:
        impl = backend_impl(active.get("backend") or "", plugins or get_plugins(settings))
        loaded = [m.get("model") for m in impl.loaded(settings=settings)]
    except ImageworksError as exc:  # the server is down or unreachable: say so, keep the record
        return {**out, "status": "unhealthy", "detail": exc.message}
    if active.get("served_model_id") in loaded:
        return out
    try:
        with _locked(settings, 0.2):
            if read_active(settings.state_dir) == active:
                _clear_state(settings)
    except LockTimeoutError:
        pass
    return {"active": False, "status": "none", "name": None,
            "previous": {"name": active.get("name"),
                         "reason": f"{active.get('backend')} no longer has it loaded (it expired or was unloaded "
                                   "outside imageworks)"}}


def _probe_status(active: dict[str, Any], settings, plugins) -> tuple[str, str | None]:
    from imageworks_models.errors import ImageworksError
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.serving.control import backend_impl

    try:
        impl = backend_impl(active.get("backend") or "", plugins or get_plugins(settings))
        result = impl.probe(active["endpoint"], active["served_model_id"], settings=settings)
    except ImageworksError as exc:
        return "ready", f"not checked: {exc.message}"
    return ("ready", result.detail or None) if result.ready else ("unhealthy", result.detail)


def _uptime(started_at: str | None) -> float | None:
    from datetime import datetime, timezone

    if not started_at:
        return None
    try:
        began = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((datetime.now(timezone.utc) - began).total_seconds(), 1)


def plan(entry: dict[str, Any], impl: Any, *, settings, plugins=None) -> dict[str, Any]:
    """What :func:`start` would do, checked as far as possible without starting or stopping anything.

    Returns:
        ``{"name", "backend", "action": "start" | "keep", "command", "host", "port", "endpoint",
        "served_model_id", "would_stop": {"name", "pid"} | None, "port_holder": <who else listens> | None,
        "lines": [...]}``.

    Raises:
        The same refusals as :func:`start` before it starts anything (remote entry, lock drift, S7).
    """
    from imageworks_models.live.processes import describe, port_owners

    from imageworks_models.serving.serverargs import planning

    name = entry["name"]
    with planning() as missing:
        launch = _prepare(entry, impl, settings=settings, plugins=plugins)
    previous = read_active(settings.state_dir)
    alive = previous is not None and server_state(previous) == "alive"
    keep = alive and previous.get("name") == name and previous.get("command") == list(launch.argv)
    would_stop = {"name": previous.get("name"), "pid": previous.get("pid")} if alive and not keep else None
    owners = port_owners(launch.port, pgid=previous.get("pid") if alive else None)
    holder = ", ".join(describe(p) for p in owners.foreign_pids) or ("another process" if owners.foreign else None)
    lines = [f"would keep {name}: it is already running (pid {previous.get('pid')})" if keep else
             f"would start {name} on port {launch.port}:", "  " + _shell_line(launch.argv)]
    if would_stop:
        lines.insert(0, f"would stop {would_stop['name']} (pid {would_stop['pid']}) first")
    if holder:
        from imageworks_models.live.processes import cmdline

        takeable = owners.foreign_pids and all(launched_like(cmdline(p), launch) for p in owners.foreign_pids)
        lines.append(f"but port {launch.port} is held by {holder}: activation would be refused" +
                     (" (--takeover would stop it: it is a server this backend launches)" if takeable else ""))
    from imageworks_models.fit import check_activation

    estimate = check_activation(entry, settings=settings, plugins=plugins, force=True)
    if estimate is not None and estimate.verdict != "unknown":
        lines.append(f"memory: {estimate.verdict}: {estimate.reason}"
                     + (f" (largest context: {estimate.largest_context})"
                        if estimate.verdict == "does-not-fit" and estimate.largest_context else ""))
    if missing:
        repo = (entry.get("source") or {}).get("repo_id") if (entry.get("source") or {}).get("provider") == "hf" \
            else None
        lines.append(f"but its files are not at {missing[0]} yet: activation would be refused until they are "
                     + (f"downloaded (imageworks-models download {repo})" if repo else "there"))
    lines.append(f"endpoint: {launch.endpoint}   served id: {launch.served_model_id}")
    return {"name": name, "backend": entry.get("backend"), "action": "keep" if keep else "start",
            "command": list(launch.argv), "host": launch.host, "port": launch.port, "endpoint": launch.endpoint,
            "served_model_id": launch.served_model_id, "would_stop": would_stop, "port_holder": holder,
            "files_missing": missing[0] if missing else None,
            "fit": estimate.as_dict() if estimate is not None else None, "lines": lines}


def _shell_line(argv) -> str:
    """The command as a shell would need it typed (for reading and copying; it is never run by a shell)."""
    import shlex

    return " ".join(shlex.quote(a) for a in argv)
