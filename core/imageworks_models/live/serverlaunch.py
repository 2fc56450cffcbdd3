"""Runs one model server and keeps its output in a size-bounded log. Standard library only.

    python -I -S serverlaunch.py LOG MAX_BYTES -- COMMAND [ARGS...]

The orchestrator starts this script in a new session, so it leads the server's process group: stopping the
group stops both. Why a launcher at all: a server lives for days and writes as much as it likes; a file it
writes itself cannot be bounded, and a pipe to the short-lived CLI would break when the CLI exits (P7, P17).

- LOG is moved to LOG.1 at start and whenever it passes MAX_BYTES/2, so the two together stay within MAX_BYTES.
- SIGTERM, SIGINT and SIGHUP are ignored here (the server gets them, as the group does), so the server's last
  words are still written while it shuts down.
- It exits with the server's exit code (128+N when signal N killed it) at most 0.3 s after the server exits,
  even when a stray grandchild still holds the output pipe.
- It is a child subreaper: grandchildren the server leaves behind are reaped here, not left as zombies.
- Once the server has exited it ends every descendant still running, even one that left the process group
  with ``setsid`` (SIGTERM, up to END_GRACE seconds, then SIGKILL), and only then exits itself (P18).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

LINGER = 0.3  # seconds to keep draining output after the server exited
END_GRACE = 2.0  # seconds a leftover descendant gets after SIGTERM before SIGKILL


def _descendants(root: int) -> list[tuple[int, int]]:
    """(pid, start time) of every live process below ``root``, read from /proc (empty where there is none)."""
    parents: dict[int, tuple[int, int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                raw = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        rest = raw[raw.rfind(")") + 2:].split()
        if len(rest) > 19 and rest[0] not in ("Z", "X"):
            parents[int(name)] = (int(rest[1]), int(rest[19]))
    found = []
    for pid, (ppid, start) in parents.items():
        seen = 0
        while ppid not in (0, 1, root) and ppid in parents and seen < 4096:
            ppid, seen = parents[ppid][0], seen + 1
        if ppid == root and pid != root:
            found.append((pid, start))
    return found


def _reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def end_descendants(grace: float = END_GRACE) -> int:
    """End every process below this one (a subreaper, so orphans are ours): SIGTERM, then SIGKILL after
    ``grace``. Returns how many there were."""
    me = os.getpid()
    first = _descendants(me)
    targets = first
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid, _ in targets:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while True:
            _reap_all()
            targets = _descendants(me)
            if not targets or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        if not targets:
            break
    _reap_all()
    return len(first)


def _subreaper() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass  # not Linux: orphans go to init, which reaps them


class BoundedLog:
    def __init__(self, path: str, max_bytes: int):
        self.path = path
        self.half = max(4096, max_bytes // 2)
        self._rotate()

    def _rotate(self) -> None:
        try:
            os.replace(self.path, self.path + ".1")
        except FileNotFoundError:
            pass
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.size = 0

    def write(self, data: bytes) -> None:
        while data:
            room = self.half - self.size
            if room <= 0:
                os.close(self.fd)
                self._rotate()
                room = self.half
            chunk, data = data[:room], data[room:]
            try:
                os.write(self.fd, chunk)
            except OSError:
                return  # a full disk must not take the server down with it
            self.size += len(chunk)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: serverlaunch.py LOG MAX_BYTES -- COMMAND [ARGS...]\n")
        return 2
    log = BoundedLog(argv[0], int(argv[1]))
    command = argv[3:]
    _subreaper()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so SIGCHLD reaches the wakeup pipe
    out_r, out_w = os.pipe()
    try:
        server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w)
    except OSError as exc:
        log.write(f"cannot run {command[0]!r}: {exc.strerror or exc}\n".encode())
        return 127
    os.close(out_w)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # after the fork: the server keeps the default handlers
    status = None
    deadline = None
    watched = [out_r, wake_r]
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = select.select(watched, [], [], timeout)[0] if watched else (time.sleep(timeout or 0) or [])
        if wake_r in ready:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        while True:  # reap the server and any orphan handed to us
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == server.pid:
                status = st
                deadline = time.monotonic() + LINGER
        if out_r in ready:
            data = os.read(out_r, 65536)
            if data:
                log.write(data)
            else:
                watched.remove(out_r)
                if status is not None:
                    break
        if deadline is not None and (out_r not in watched or time.monotonic() >= deadline):
            break
    end_descendants()
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
