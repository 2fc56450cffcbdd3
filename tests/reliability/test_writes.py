"""Items 1, 2 of issue 17 (RELIABILITY W17, W18): hand edits are never overwritten, read-only files are
refused even as root, and the registry lock survives its lock file being deleted."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from _helpers import cli, digests, make_registry, spawn

from imageworks_models.errors import ChangedOnDiskError, ReadOnlyFileError
from imageworks_models.registry.store import CURATED_FILE, DISCOVERED_FILE, LOCK_FILE, RegistryStore, dump_document

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and flock")


def hand_edit(folder: Path, name: str) -> bytes:
    """What an editor does: read the file, change it, write a new file and rename it over (no lock)."""
    path = folder / CURATED_FILE
    doc = json.loads(path.read_bytes())
    doc["entries"].append({"name": name, "backend": "ollama"})
    data = dump_document(doc["entries"])
    tmp = path.with_name(f".{name}.swp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return data


def test_a_hand_edit_saved_during_our_edit_is_kept_and_nothing_is_written(tmp_path):
    folder = make_registry(tmp_path / "reg")
    store = RegistryStore(folder)
    with pytest.raises(ChangedOnDiskError) as info:
        with store.edit() as layers:
            layers.curated.get("counter")["display_name"] = "ours"
            layers.discovered.get("counter")["metadata"]["count"] = 1
            theirs = hand_edit(folder, "by-hand")  # saved between our read and our replace
    assert (folder / CURATED_FILE).read_bytes() == theirs
    assert json.loads((folder / DISCOVERED_FILE).read_bytes())["entries"][0]["metadata"]["count"] == 0
    assert str(folder / CURATED_FILE) in info.value.message and "run the command again" in info.value.hint


def test_an_edit_of_only_the_other_layer_still_goes_through(tmp_path):
    folder = make_registry(tmp_path / "reg")
    store = RegistryStore(folder)
    with store.edit() as layers:
        layers.discovered.get("counter")["metadata"]["count"] = 7
        theirs = hand_edit(folder, "by-hand")
    assert (folder / CURATED_FILE).read_bytes() == theirs
    assert store.load(use_snapshot=False).get("counter")["metadata"]["count"] == 7
    assert store.load().find("by-hand") is not None  # the snapshot was rebuilt from the hand-edited file


EDITOR = """
import json, os, random, sys, time
from pathlib import Path
path = Path(sys.argv[1]) / "model_registry.curated.json"
n = int(sys.argv[2])
print("ready", flush=True); sys.stdin.readline()
rng = random.Random(7)
for i in range(n):
    doc = json.loads(path.read_bytes())
    doc["entries"].append({"name": f"hand-{i:03d}", "backend": "ollama"})
    doc["entries"].sort(key=lambda e: e["name"])
    tmp = path.with_name(".edit.swp")
    tmp.write_text(json.dumps(doc, indent=2) + "\\n")
    os.replace(tmp, path)
    time.sleep(rng.uniform(0, 0.004))
print("done", flush=True)
"""

TOOL = """
import sys
from imageworks_models.errors import ChangedOnDiskError
from imageworks_models.registry.store import RegistryStore
store = RegistryStore(sys.argv[1], lock_timeout=60)
store.load(use_snapshot=False)
print("ready", flush=True); sys.stdin.readline()
done = refused = 0
while done < int(sys.argv[2]):
    try:
        with store.edit() as layers:
            layers.curated.get("counter")["display_name"] = f"tool {sys.argv[3]} {done}"
        done += 1
    except ChangedOnDiskError:
        refused += 1
print(done, refused, flush=True)
"""


def test_w17_racing_hand_edits_are_never_lost(tmp_path, figure):
    folder = make_registry(tmp_path / "reg")
    edits, tool_saves = 150, 150
    editor = spawn(EDITOR, str(folder), str(edits))
    tools = [spawn(TOOL, str(folder), str(tool_saves), str(t)) for t in range(2)]
    procs = [editor, *tools]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        start = time.monotonic()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=120) for p in procs]
        secs = time.monotonic() - start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    refused = sum(int(out.split()[1]) for out, _ in outs[1:])
    names = {e["name"] for e in json.loads((folder / CURATED_FILE).read_bytes())["entries"]}
    lost = sum(f"hand-{i:03d}" not in names for i in range(edits))
    figure(f"W17: {edits} hand edits racing 2 x {tool_saves} tool saves: {lost} lost, "
           f"{refused} tool saves refused and retried ({secs:.2f} s)")
    assert lost == 0


@pytest.mark.parametrize("what", ["file", "folder"])
def test_w17_a_read_only_curated_file_or_folder_is_refused_even_as_root(tmp_path, what):
    folder = make_registry(tmp_path / "reg")
    RegistryStore(folder).load()  # snapshot written while still writable
    target = folder / CURATED_FILE if what == "file" else folder
    before = digests(folder)
    os.chmod(target, 0o444 if what == "file" else 0o555)
    try:
        with pytest.raises(ReadOnlyFileError) as info:
            with RegistryStore(folder).edit() as layers:
                layers.curated.get("counter")["display_name"] = "changed"
        assert "read-only" in info.value.message and "chmod u+w" in info.value.hint
        result = cli("--registry-dir", str(folder), "remove", "counter", "--purge", "--force")
    finally:
        os.chmod(target, 0o644 if what == "file" else 0o755)
    assert digests(folder) == before
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "read-only" in result.stderr


DELETER = """
import os, sys, time
path = sys.argv[1]
print("ready", flush=True); sys.stdin.readline()
deleted = 0
while not os.path.exists(sys.argv[2]):
    try:
        os.unlink(path); deleted += 1
    except FileNotFoundError:
        pass
    time.sleep(0.01)
print(deleted, flush=True)
"""

WRITER = """
import sys
from imageworks_models.registry.store import RegistryStore
folder, wid, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = RegistryStore(folder, lock_timeout=120)
store.load(use_snapshot=False)
print("ready", flush=True); sys.stdin.readline()
for i in range(n):
    with store.edit() as layers:
        meta = layers.discovered.get("counter").setdefault("metadata", {})
        meta["count"] = meta.get("count", 0) + 1
        meta.setdefault("ids", []).append(f"{wid}:{i}")
print("done", flush=True)
"""


def test_w18_lock_file_deleted_every_10ms_while_8_writers_run_loses_nothing(tmp_path, figure):
    writers_n, updates = 8, 200
    folder = make_registry(tmp_path / "reg")
    stop = tmp_path / "stop"
    deleter = spawn(DELETER, str(folder / LOCK_FILE), str(stop))
    writers = [spawn(WRITER, str(folder), str(w), str(updates)) for w in range(writers_n)]
    procs = [deleter, *writers]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        start = time.monotonic()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in writers:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0 and out.strip() == "done", err
        secs = time.monotonic() - start
        stop.touch()
        out, err = deleter.communicate(timeout=30)
        deleted = int(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    meta = RegistryStore(folder).load(use_snapshot=False).get("counter")["metadata"]
    total = writers_n * updates
    lost = total - meta["count"]
    figure(f"W18: {writers_n} writers x {updates} updates, lock file deleted {deleted} times (every 10 ms): "
           f"{lost} lost ({secs:.2f} s)")
    assert deleted > 10
    assert lost == 0 and sorted(meta["ids"]) == sorted(f"{w}:{i}" for w in range(writers_n) for i in range(updates))
