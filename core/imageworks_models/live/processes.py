"""Model-server processes as the orchestrator sees them: start one in a process group of its own, know it
again later (even from another run of the CLI, P10/P11), tell it from a foreign process that reused its pid
(P8/P9), see who listens on a port (P4), and stop the whole group (P6).

A server is known by a :class:`ServerIdentity`: the pid of its group leader (the launcher, see
:mod:`imageworks_models.live.serverlaunch`), that process's start time in clock ticks since boot, the boot id and
its command line. All of it is read from Linux's ``/proc``; a process whose identity does not match is never
signalled. Nothing here knows what a model server is; backends say what to run.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")
_CHILDREN: dict[int, Any] = {}  # our own Popen objects, reaped here so that no zombie is left (P15)


def boot_id() -> str | None:
    """This boot's id (changes at every reboot), or ``None`` where ``/proc`` has none."""
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str  # R, S, D, Z (zombie), X (dead), ...
    ppid: int
    pgid: int
    sid: int
    start_ticks: int


def proc_stat(pid: int) -> ProcStat | None:
    """``/proc/<pid>/stat``, or ``None`` when the process does not exist."""
    try:
        raw = (PROC / str(pid) / "stat").read_bytes().decode("utf-8", "replace")
    except (OSError, ValueError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = raw[raw.rfind(")") + 2:].split()
    try:
        return ProcStat(pid=pid, state=rest[0], ppid=int(rest[1]), pgid=int(rest[2]), sid=int(rest[3]),
                        start_ticks=int(rest[19]))
    except (IndexError, ValueError):
        return None


def cmdline(pid: int) -> list[str] | None:
    """The process's argument list, or ``None`` when it is gone or unreadable."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0")[:-1]]


def alive(stat: ProcStat | None) -> bool:
    return stat is not None and stat.state not in ("Z", "X")


@dataclass(frozen=True)
class ServerIdentity:
    """Who a recorded server is. ``pid`` leads the server's process group and session."""

    pid: int
    start_ticks: int
    boot_id: str | None
    command: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "process_start": self.start_ticks, "boot_id": self.boot_id,
                "launcher": list(self.command)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "ServerIdentity | None":
        try:
            return cls(pid=int(state["pid"]), start_ticks=int(state["process_start"]),
                       boot_id=state.get("boot_id"), command=tuple(state.get("launcher") or ()))
        except (KeyError, TypeError, ValueError):
            return None


def assess(ident: ServerIdentity) -> str:
    """``"alive"`` (our server's leader runs), ``"exited"`` (it is gone; its group may linger), ``"rebooted"``
    (recorded in an earlier boot), or ``"reused"`` (its pid now belongs to some other process)."""
    current_boot = boot_id()
    if ident.boot_id and current_boot and ident.boot_id != current_boot:
        return "rebooted"
    stat = proc_stat(ident.pid)
    if stat is None:
        return "exited"
    if stat.start_ticks != ident.start_ticks:
        return "reused"
    command = cmdline(ident.pid)
    if command and ident.command and tuple(command) != ident.command:
        return "reused"
    return "alive" if alive(stat) else "exited"


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` in our session's view of ``/proc`` (zombies excluded)."""
    members = []
    try:
        names = os.listdir(PROC)
    except OSError:
        return members
    for name in names:
        if name.isdigit():
            stat = proc_stat(int(name))
            if stat is not None and stat.pgid == pgid and stat.sid == pgid and alive(stat):
                members.append(stat.pid)
    return members


def reap() -> None:
    """Collect our finished server children (one a CLI in another process stopped), so none stays a zombie."""
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            del _CHILDREN[pid]


def child(pid: int):
    """Our own ``Popen`` for ``pid`` when this process started it, else ``None``."""
    return _CHILDREN.get(pid)


def spawn(argv: list[str], *, env: dict[str, str], log_path: Path, log_bytes: int):
    """Start ``argv`` in a new session through the log launcher; returns ``(Popen, ServerIdentity)``.

    The server's stdin is ``/dev/null`` and its output goes only to the launcher, so nothing of ours (a CLI's
    pipe) is inherited and a caller reading our output never waits on the server (P7).

    Raises:
        FileNotFoundError: ``argv[0]`` is not an executable on ``PATH``.
        OSError: the process could not be started.
    """
    import shutil
    import subprocess

    if shutil.which(argv[0], path=env.get("PATH")) is None:
        raise FileNotFoundError(argv[0])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    launcher = [sys.executable, "-I", "-S", str(Path(__file__).with_name("serverlaunch.py")), str(log_path),
                str(log_bytes), "--", *argv]
    reap()
    proc = subprocess.Popen(launcher, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=env, close_fds=True)
    _CHILDREN[proc.pid] = proc
    stat = proc_stat(proc.pid)
    ident = ServerIdentity(pid=proc.pid, start_ticks=stat.start_ticks if stat else 0, boot_id=boot_id(),
                           command=tuple(launcher))
    return proc, ident


def stop_group(ident: ServerIdentity, *, grace: float, poll: float = 0.02) -> str | None:
    """Stop our server's whole process group: SIGTERM, up to ``grace`` seconds, then SIGKILL (P6).

    Only a group we can prove is ours is signalled: its leader matches ``ident``, or the leader is gone and
    its group still has members (a pid that leads a live group cannot be handed to a new process). A reused
    pid or another boot's record is never signalled (P8, P9).

    Returns:
        ``"TERM"`` or ``"KILL"`` (what it took), or ``None`` when nothing of ours was running.
    """
    verdict = assess(ident)
    if verdict in ("rebooted", "reused"):
        return None
    if verdict == "exited" and not group_members(ident.pid):
        _wait_child(ident.pid, 0)
        return None
    used = "TERM"
    # Descendants that left the group (setsid) are ended by the launcher once the server exits; should the
    # launcher itself have to be killed, they are remembered now and ended below (P18).
    strays = descendants(ident.pid)
    _killpg(ident.pid, signal.SIGTERM)
    deadline = time.monotonic() + max(0.0, grace)
    while group_members(ident.pid) and time.monotonic() < deadline:
        _wait_child(ident.pid, 0)
        time.sleep(poll)
    if group_members(ident.pid):
        used = "KILL"
        _killpg(ident.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while group_members(ident.pid) and time.monotonic() < deadline:
            time.sleep(poll)
    _wait_child(ident.pid, 1.0)
    for stat in strays + descendants(ident.pid):
        now = proc_stat(stat.pid)
        if alive(now) and now.start_ticks == stat.start_ticks:  # the same process, not a reused pid
            with_signal = signal.SIGKILL if used == "KILL" else signal.SIGTERM
            try:
                os.kill(stat.pid, with_signal)
            except (ProcessLookupError, PermissionError):
                pass
    return used


def descendants(root: int) -> list[ProcStat]:
    """Live processes below ``root`` (by parent links in ``/proc``), whatever their group or session."""
    stats = {}
    try:
        names = os.listdir(PROC)
    except OSError:
        return []
    for name in names:
        if name.isdigit():
            stat = proc_stat(int(name))
            if alive(stat):
                stats[stat.pid] = stat
    found = []
    for stat in stats.values():
        parent, hops = stat.ppid, 0
        while parent not in (0, 1, root) and parent in stats and hops < 4096:
            parent, hops = stats[parent].ppid, hops + 1
        if parent == root and stat.pid != root:
            found.append(stat)
    return found


def terminate(pid: int, *, grace: float, poll: float = 0.02) -> str | None:
    """Stop a process imageworks has no record of (``activate-model --takeover``, after its command line was
    checked): its whole group if it leads one, else the process; SIGTERM, up to ``grace`` seconds, then SIGKILL.

    Returns:
        ``"TERM"`` or ``"KILL"``, or ``None`` when it was already gone.
    """
    stat = proc_stat(pid)
    if not alive(stat):
        return None
    leader = proc_stat(stat.pgid) if stat.pgid != os.getpgrp() else None
    if alive(leader):
        # a server runs in its own group (under a launcher, as ours do, or as a shell's job): stop all of it,
        # so no worker or launcher is left behind; never our own group
        ident = ServerIdentity(pid=leader.pid, start_ticks=leader.start_ticks, boot_id=boot_id(),
                               command=tuple(cmdline(leader.pid) or ()))
        return stop_group(ident, grace=grace, poll=poll)

    def same() -> bool:
        now = proc_stat(pid)
        return alive(now) and now.start_ticks == stat.start_ticks

    used = "TERM"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + max(0.0, grace)
    while same() and time.monotonic() < deadline:
        _wait_child(pid, 0)
        time.sleep(poll)
    if same():
        used = "KILL"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while same() and time.monotonic() < deadline:
            _wait_child(pid, 0)
            time.sleep(poll)
    return used


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _wait_child(pid: int, timeout: float) -> None:
    proc = _CHILDREN.get(pid)
    if proc is None:
        return
    try:
        proc.wait(timeout=timeout) if timeout else proc.poll()
    except Exception:  # noqa: BLE001 - TimeoutExpired: still running, reaped later
        return
    if proc.returncode is not None:
        _CHILDREN.pop(pid, None)


def _listen_inodes(port: int) -> set[str]:
    """Socket inodes listening on TCP ``port`` (any address, IPv4 or IPv6), from ``/proc/net``."""
    found = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEXIP:HEXPORT; state 0A is LISTEN; the inode is field 10
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        fds = os.listdir(PROC / str(pid) / "fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(PROC / str(pid) / "fd" / fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


@dataclass(frozen=True)
class PortOwners:
    """Who listens on a port: ``ours`` (listening sockets held by our group), ``foreign`` (held by anyone
    else), ``foreign_pids`` (those we may look at, for the message)."""

    ours: int
    foreign: int
    foreign_pids: tuple[int, ...] = ()


def port_owners(port: int, *, pgid: int | None = None) -> PortOwners:
    """Who listens on TCP ``port``: the orchestrator's group ``pgid`` or someone else (P4)."""
    listening = _listen_inodes(port)
    if not listening:
        return PortOwners(0, 0)
    ours = set()
    if pgid is not None:
        for pid in group_members(pgid):
            ours |= _socket_inodes(pid) & listening
    foreign = listening - ours
    pids = []
    if foreign:
        for name in os.listdir(PROC):
            if name.isdigit() and _socket_inodes(int(name)) & foreign:
                pids.append(int(name))
    return PortOwners(len(ours), len(foreign), tuple(sorted(pids)))


def port_bindable(host: str, port: int) -> bool:
    """Whether a server could bind ``host:port`` now (as uvicorn does, with SO_REUSEADDR)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def describe(pid: int) -> str:
    """``pid 123 (python -m http.server 8000)`` for messages."""
    command = " ".join(cmdline(pid) or [])[:120]
    return f"pid {pid}" + (f" ({command})" if command else "")
