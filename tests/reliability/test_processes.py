"""Item 9 of issue 17 (RELIABILITY P18): a server grandchild that leaves the process group with ``setsid`` is
still stopped; 100 start/stop cycles leave 0 survivors."""

from __future__ import annotations

import os
import sys
import time

import pytest

from imageworks_models.live import processes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and subreapers are Linux's")


def survivors(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = processes.proc_stat(int(name))
            argv = processes.cmdline(int(name)) or []
            if processes.alive(stat) and argv[:1] and os.path.basename(argv[0]) == "sleep" and marker in argv:
                found.append(int(name))
    return found


def daemonising_server(marker: str) -> list[str]:
    # The grandchild calls setsid (a new session and group: killpg no longer reaches it), as a server's
    # helper daemon would; its output goes elsewhere, so only the process tree ties it to the server.
    return ["sh", "-c", f"setsid sleep {marker} >/dev/null 2>&1 < /dev/null & exec sleep {marker}"]


def test_p18_100_switch_cycles_with_a_setsid_grandchild_leave_no_survivor(tmp_path, figure):
    cycles, left = 100, 0
    env = {"PATH": os.environ["PATH"]}
    start = time.monotonic()
    for cycle in range(cycles):
        marker = f"4{os.getpid() % 1000:03d}.{cycle:03d}7"
        proc, ident = processes.spawn(daemonising_server(marker), env=env, log_path=tmp_path / "server.log",
                                      log_bytes=65536)
        deadline = time.monotonic() + 5
        while len(survivors(marker)) < 2 and time.monotonic() < deadline:  # both sleeps started
            time.sleep(0.005)
        assert len(survivors(marker)) == 2
        processes.stop_group(ident, grace=5)
        deadline = time.monotonic() + 2
        while survivors(marker) and time.monotonic() < deadline:
            time.sleep(0.01)
        stray = survivors(marker)
        left += len(stray)
        for pid in stray:
            os.kill(pid, 9)
    secs = time.monotonic() - start
    figure(f"P18: {cycles} start/stop cycles with a setsid grandchild: {left} survivors ({secs:.2f} s)")
    assert left == 0


def test_p18_the_launcher_ends_a_setsid_grandchild_when_the_server_exits_by_itself(tmp_path):
    marker = f"5{os.getpid() % 1000:03d}.0017"
    argv = ["sh", "-c", f"setsid sleep {marker} >/dev/null 2>&1 < /dev/null & sleep 0.2; exit 3"]
    proc, ident = processes.spawn(argv, env={"PATH": os.environ["PATH"]}, log_path=tmp_path / "server.log",
                                  log_bytes=65536)
    assert proc.wait(timeout=10) == 3
    assert survivors(marker) == []
