"""Concurrent writers, readers during writes, and kill -9 during saves (RELIABILITY W1, W2, W3).

Each test prints its figure straight to the terminal (outside pytest's capture), so a CI log shows
the numbers whatever the reporting flags.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from imageworks_models.fs import storage
from imageworks_models.registry.store import (CURATED_FILE, DISCOVERED_FILE, MERGED_FILE, RegistryStore,
                                              dump_document)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")

WRITERS = 8
UPDATES = 200

WRITER = """
import sys
from imageworks_models.registry.store import RegistryStore

folder, wid, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = RegistryStore(folder, lock_timeout=120)
store.load(use_snapshot=False)  # import everything before the start signal
print("ready", flush=True)
sys.stdin.readline()
for i in range(n):
    with store.edit() as layers:
        meta = layers.discovered.get("counter").setdefault("metadata", {})
        meta["count"] = meta.get("count", 0) + 1
        meta.setdefault("ids", []).append(f"{wid}:{i}")
print("done", flush=True)
"""

READER = """
import sys, time
from imageworks_models.registry.store import RegistryStore

store = RegistryStore(sys.argv[1])
store.load(use_snapshot=False)
print("ready", flush=True)
sys.stdin.readline()
loads = errors = regressions = mismatches = 0
last = -1
while True:
    try:
        registry = store.load()
        meta = registry.get("counter")["metadata"]
        count = meta.get("count", 0)
        if count < last:
            regressions += 1
        if len(meta.get("ids", [])) != count:
            mismatches += 1
        last = count
        loads += 1
    except Exception as exc:  # any error at all is a failure of W2
        errors += 1
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    if last >= int(sys.argv[2]):
        break
print(loads, errors, regressions, mismatches, flush=True)
"""


def make_registry(folder: Path, blob: int = 0) -> RegistryStore:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CURATED_FILE).write_bytes(dump_document([{"name": "counter", "backend": "vllm",
                                                        "display_name": "counter 0"}]))
    (folder / DISCOVERED_FILE).write_bytes(dump_document([{"name": "counter",
                                                           "metadata": {"count": 0, "ids": [], "blob": "x" * blob}}]))
    return RegistryStore(folder)


def spawn(code: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc


def wait_ready(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read()


def go(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()


def figure(capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\n{line}", flush=True)


def test_w1_w2_writer_storm_loses_nothing_and_readers_never_fail(tmp_path, capsys):
    folder = tmp_path / "reg"
    store = make_registry(folder)
    total = WRITERS * UPDATES
    writers = [spawn(WRITER, str(folder), str(w), str(UPDATES)) for w in range(WRITERS)]
    reader = spawn(READER, str(folder), str(total))
    try:
        for p in writers + [reader]:
            wait_ready(p)
        start = time.monotonic()
        go(writers + [reader])
        for p in writers:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0 and out.strip() == "done", err
        secs = time.monotonic() - start
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err
    finally:
        for p in writers + [reader]:
            if p.poll() is None:
                p.kill()
                p.communicate()

    meta = store.load(use_snapshot=False).get("counter")["metadata"]
    ids = meta["ids"]
    lost = total - meta["count"]
    figure(capsys, f"W1: {WRITERS} writers x {UPDATES} updates: {lost} lost ({secs:.2f} s)")
    assert meta["count"] == total
    assert len(ids) == total and len(set(ids)) == total
    assert set(ids) == {f"{w}:{i}" for w in range(WRITERS) for i in range(UPDATES)}
    for w in range(WRITERS):  # each writer's own updates land in its order
        mine = [int(x.split(":")[1]) for x in ids if x.split(":")[0] == str(w)]
        assert mine == list(range(UPDATES))
    # the snapshot agrees with the layers
    assert store.load().from_snapshot
    assert store.load().get("counter")["metadata"]["count"] == total

    loads, errors, regressions, mismatches = map(int, out.split())
    figure(capsys, f"W2: 1 reader, {loads} loads during the storm: {errors} errors, "
                   f"{regressions} went backwards, {mismatches} inconsistent")
    assert errors == 0, err
    assert regressions == 0 and mismatches == 0
    assert loads > 0
    assert storage.leftover_temps(folder / DISCOVERED_FILE) == []


def _saver(folder: str) -> None:
    """Forked child: save both layers in a loop until killed."""
    store = RegistryStore(folder, lock_timeout=30)
    n = 0
    while True:
        n += 1
        with store.edit() as layers:
            cur = layers.curated.get("counter")
            cur["display_name"] = f"counter {n}"
            meta = layers.discovered.get("counter")["metadata"]
            meta["count"] += 1
            meta["blob"] = str(n % 10) * len(meta["blob"])


def _temps(folder: Path) -> list[Path]:
    return [t for f in (CURATED_FILE, DISCOVERED_FILE, MERGED_FILE) for t in storage.leftover_temps(folder / f)]


def test_w3_kill_9_during_saves_never_corrupts_the_registry(tmp_path, capsys):
    folder = tmp_path / "reg"
    store = make_registry(folder, blob=256 * 1024)  # big enough that a kill often lands mid-write
    store.load(use_snapshot=False)  # import everything before forking
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(1234)
    runs, valid, cleaned, last_count = 100, 0, 0, 0
    start = time.monotonic()
    for run in range(runs):
        proc = ctx.Process(target=_saver, args=(str(folder),), daemon=True)
        proc.start()
        time.sleep(rng.uniform(0.005, 0.06))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL

        leftovers = _temps(folder)
        for f in (CURATED_FILE, DISCOVERED_FILE):  # each layer is complete, valid JSON on disk
            json.loads((folder / f).read_bytes())
        registry = store.load()  # validated (or a snapshot of validated layers): never an error
        fresh = store.load(use_snapshot=False)
        assert registry.entries == fresh.entries
        count = fresh.get("counter")["metadata"]["count"]
        assert count >= last_count
        last_count = count
        blob = fresh.get("counter")["metadata"]["blob"]
        assert len(blob) == 256 * 1024 and len(set(blob)) == 1
        valid += 1

        with store.edit() as layers:  # the next write cleans every leftover temp
            layers.curated.get("counter")["display_name"] = f"after kill {run}"
            layers.discovered.get("counter")["metadata"]["count"] += 1
        last_count += 1
        assert _temps(folder) == []
        cleaned += len(leftovers)
    secs = time.monotonic() - start
    child_saves = last_count - runs  # the parent's own edits added one each
    figure(capsys, f"W3: {runs} kill -9 during saves: {valid} valid, {cleaned} leftover temps cleaned "
                   f"({child_saves} saves completed between kills, {secs:.2f} s)")
    assert valid == runs
    assert child_saves >= 10  # the savers really were saving when killed
    assert cleaned >= 1  # and at least one kill landed mid-write
