"""storage.atomic_write / file_lock / backup_file: the promises of RELIABILITY W4-W10, W12, W13."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from imageworks_models.errors import ChangedOnDiskError, LockTimeoutError, StorageError
from imageworks_models.fs import storage


def child(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def temps_of(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")
                  and p.name.endswith(".tmp"))


# --- atomic_write ------------------------------------------------------------------------------------


def test_atomic_write_replaces_content(tmp_path):
    target = tmp_path / "reg.json"
    storage.atomic_write(target, b"first")
    storage.atomic_write(target, b"second, longer")
    assert target.read_bytes() == b"second, longer"
    assert temps_of(target) == []


def test_file_and_folder_are_fsynced(tmp_path, monkeypatch):
    """W7: the temp file's data and the folder's new entry both reach the disk."""
    target = tmp_path / "reg.json"
    target.write_bytes(b"old")
    calls: list[dict] = []
    real_fsync = os.fsync

    def spy(fd):
        st = os.fstat(fd)
        calls.append({"dir": stat.S_ISDIR(st.st_mode), "ino": st.st_ino, "size": st.st_size,
                      "target_content": target.read_bytes()})
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    storage.atomic_write(target, b"new content")
    files = [c for c in calls if not c["dir"]]
    dirs = [c for c in calls if c["dir"]]
    assert files, "the temp file was never fsynced"
    assert dirs, "the folder was never fsynced"
    assert any(c["ino"] == tmp_path.stat().st_ino for c in dirs)
    # the file fsync happens before the rename (target still old), with the full data written
    assert any(c["size"] == len(b"new content") and c["target_content"] == b"old" for c in files)
    # the folder fsync happens after the rename
    assert any(c["target_content"] == b"new content" for c in dirs)
    assert target.stat().st_ino == files[0]["ino"]  # the fsynced file is the one renamed into place


def test_temp_names_are_unique_per_call_and_process(tmp_path):
    """W8."""
    target = tmp_path / "reg.json"
    names = {storage.temp_path_for(target).name for _ in range(500)}
    assert len(names) == 500
    assert all(n.startswith(f".reg.json.{os.getpid()}.") and n.endswith(".tmp") for n in names)
    proc = child("""
        import sys
        from pathlib import Path
        from imageworks_models.fs import storage
        print(storage.temp_path_for(Path(sys.argv[1])).name)
    """, str(target))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    other = out.strip()
    assert other.startswith(f".reg.json.{proc.pid}.") and other not in names


def test_leftover_temp_files_are_removed_by_the_next_write(tmp_path):
    """W4."""
    target = tmp_path / "reg.json"
    target.write_bytes(b"good")
    leftovers = [tmp_path / f".reg.json.{pid}.{hexpart}.tmp" for pid, hexpart in ((1234, "deadbeef"), (99, "00ff00ff"))]
    for p in leftovers:
        p.write_bytes(b"half a fi")
    unrelated = [tmp_path / ".other.json.1234.deadbeef.tmp", tmp_path / "reg.json.bak", tmp_path / ".reg.json.keep"]
    for p in unrelated:
        p.write_bytes(b"keep me")
    assert len(storage.leftover_temps(target)) == 2
    storage.atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert not any(p.exists() for p in leftovers)
    assert all(p.read_bytes() == b"keep me" for p in unrelated)


FSIZE_CHILD = """
import resource, signal, sys
from pathlib import Path
from imageworks_models.fs import storage
from imageworks_models.errors import StorageError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
try:
    storage.atomic_write(Path(sys.argv[1]), b"x" * int(sys.argv[3]))
except StorageError as exc:
    print("StorageError:", exc.message)
    sys.exit(3)
print("written")
"""


def test_write_failing_part_way_keeps_the_old_file(tmp_path):
    """W5/W6: the file size limit is hit mid-write; the good file stays, no temp file is left."""
    target = tmp_path / "reg.json"
    old = b'{"schema_version": 1, "entries": []}\n'
    target.write_bytes(old)
    proc = child(FSIZE_CHILD, str(target), str(64 * 1024), str(1024 * 1024))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (out, err)
    assert out.startswith("StorageError:") and "file size limit" in out
    assert "Traceback" not in err
    assert target.read_bytes() == old
    assert temps_of(target) == []


def test_write_within_the_size_limit_succeeds(tmp_path):
    """The same child and limit with a payload that fits: proves the limit is what failed above."""
    target = tmp_path / "reg.json"
    target.write_bytes(b"old")
    proc = child(FSIZE_CHILD, str(target), str(64 * 1024), str(32 * 1024))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    assert target.read_bytes() == b"x" * 32 * 1024


def test_short_write_is_never_renamed_over_the_good_file(tmp_path, monkeypatch):
    """W6: a short write followed by ENOSPC part way through: the partial temp file is never promoted."""
    target = tmp_path / "reg.json"
    target.write_bytes(b"good")
    real_write = os.write
    state = {"n": 0}

    def short_write(fd, data):
        state["n"] += 1
        if state["n"] > 1:
            raise OSError(28, "No space left on device")
        return real_write(fd, bytes(data)[:3])

    monkeypatch.setattr(os, "write", short_write)
    with pytest.raises(StorageError) as info:
        storage.atomic_write(target, b"a much longer new content")
    assert "no space left" in info.value.message
    monkeypatch.undo()
    assert target.read_bytes() == b"good"
    assert temps_of(target) == []


def test_permission_bits_of_the_target_are_kept(tmp_path):
    target = tmp_path / "reg.json"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    storage.atomic_write(target, b"new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    os.chmod(target, 0o604)
    storage.atomic_write(target, b"newer")
    assert stat.S_IMODE(target.stat().st_mode) == 0o604
    assert target.read_bytes() == b"newer"


def test_new_file_gets_the_umask_default(tmp_path):
    target = tmp_path / "fresh.json"
    old = os.umask(0o022)
    try:
        storage.atomic_write(target, b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_writing_through_a_symlink_updates_the_target_and_keeps_the_link(tmp_path):
    real_dir = tmp_path / "checkout" / "configs"
    real_dir.mkdir(parents=True)
    real = real_dir / "model_registry.curated.json"
    real.write_bytes(b"old")
    link_dir = tmp_path / "registry"
    link_dir.mkdir()
    link = link_dir / "model_registry.curated.json"
    link.symlink_to(real)
    storage.atomic_write(link, b"new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"new"
    assert temps_of(real) == [] and temps_of(link) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores folder permissions, so a read-only folder cannot be tested honestly")
def test_read_only_folder_gives_a_clear_error_and_no_partial_state(tmp_path):
    """W12."""
    folder = tmp_path / "ro"
    folder.mkdir()
    target = folder / "reg.json"
    target.write_bytes(b"good")
    os.chmod(folder, 0o555)
    try:
        with pytest.raises(StorageError) as info:
            storage.atomic_write(target, b"new")
        assert "permission denied" in info.value.message and str(target) in info.value.message
        with pytest.raises(StorageError):
            with storage.file_lock(folder / ".lock", timeout=1):
                pass
        assert sorted(p.name for p in folder.iterdir()) == ["reg.json"]
        assert target.read_bytes() == b"good"
    finally:
        os.chmod(folder, 0o755)


# --- file_lock -----------------------------------------------------------------------------------------


HOLDER = """
import sys, time
from pathlib import Path
from imageworks_models.fs import storage
with storage.file_lock(Path(sys.argv[1]), timeout=10):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _start_holder(lock: Path, seconds: float) -> subprocess.Popen:
    proc = child(HOLDER, str(lock), str(seconds))
    line = proc.stdout.readline()
    assert line.strip() == "locked", proc.stderr.read()
    return proc


def test_lock_excludes_a_second_holder(tmp_path):
    lock = tmp_path / ".lock"
    with storage.file_lock(lock, timeout=1):
        proc = child("""
            import sys
            from pathlib import Path
            from imageworks_models.fs import storage
            from imageworks_models.errors import LockTimeoutError
            try:
                with storage.file_lock(Path(sys.argv[1]), timeout=0.2):
                    print("acquired")
            except LockTimeoutError:
                print("timed out")
        """, str(lock))
        out, err = proc.communicate(timeout=60)
    assert out.strip() == "timed out", err


def test_lock_timeout_names_the_holder(tmp_path):
    """W10."""
    lock = tmp_path / ".model_registry.lock"
    proc = _start_holder(lock, 30)
    try:
        start = time.monotonic()
        with pytest.raises(LockTimeoutError) as info:
            with storage.file_lock(lock, timeout=0.3, what="the registry in /x"):
                pass
        waited = time.monotonic() - start
    finally:
        proc.kill()
        proc.communicate()
    assert 0.25 <= waited < 5
    assert f"pid {proc.pid}" in info.value.message
    assert f"pid {proc.pid}" in (info.value.holder or "")
    assert "the registry in /x" in info.value.message and "0.3s" in info.value.message
    assert info.value.hint


def test_lock_held_by_a_killed_process_is_free_at_once(tmp_path):
    """W9."""
    lock = tmp_path / ".model_registry.lock"
    proc = _start_holder(lock, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    start = time.monotonic()
    with storage.file_lock(lock, timeout=5):
        acquired = time.monotonic() - start
    assert acquired < 0.3, f"took {acquired:.3f} s"


def test_lock_is_released_when_the_block_raises(tmp_path):
    lock = tmp_path / ".lock"
    with pytest.raises(RuntimeError):
        with storage.file_lock(lock, timeout=1):
            raise RuntimeError("boom")
    with storage.file_lock(lock, timeout=0):
        pass
    assert lock.read_text() == ""  # the holder line is cleared on release


# --- backup_file (W13) ------------------------------------------------------------------------------------


def test_backup_rotation_keeps_the_newest(tmp_path):
    src = tmp_path / "model_registry.curated.json"
    backups = tmp_path / "backups"
    made = []
    for i in range(6):
        src.write_bytes(f"version {i}".encode())
        made.append(storage.backup_file(src, backups, keep=3, label="prune"))
        time.sleep(0.002)
    kept = sorted(p for p in backups.iterdir())
    assert len(kept) == 3
    assert kept == sorted(made[-3:])
    assert [p.read_bytes() for p in kept] == [b"version 3", b"version 4", b"version 5"]
    assert all(p.name.startswith("model_registry.curated.2") and p.name.endswith(".prune.json") for p in kept)


def test_backup_rotation_leaves_other_files_alone(tmp_path):
    src = tmp_path / "model_registry.curated.json"
    other = tmp_path / "model_registry.discovered.json"
    backups = tmp_path / "backups"
    backups.mkdir()
    note = backups / "model_registry.curated.README.json"
    note.write_text("a user's own file")
    other.write_text("d")
    storage.backup_file(other, backups, keep=1)
    for i in range(4):
        src.write_text(str(i))
        storage.backup_file(src, backups, keep=2)
        time.sleep(0.002)
    names = sorted(p.name for p in backups.iterdir())
    assert note.name in names
    assert sum(n.startswith("model_registry.discovered.") for n in names) == 1
    assert sum(n.startswith("model_registry.curated.2") for n in names) == 2


def test_backup_of_a_missing_file_is_none(tmp_path):
    assert storage.backup_file(tmp_path / "nope.json", tmp_path / "backups", keep=3) is None
    assert not (tmp_path / "backups").exists()


def _needs_exchange(folder) -> None:
    a, b = folder / ".probe-a", folder / ".probe-b"
    a.write_text("a")
    b.write_text("b")
    swapped = storage._exchange(a, b)
    a.unlink()
    b.unlink()
    if not swapped:
        pytest.skip(f"the filesystem of {folder} has no renameat2(RENAME_EXCHANGE): the compare-then-rename path runs")


def _save_by_hand(path, text: str) -> bytes:
    """An editor's save: a new file renamed over ``path``."""
    tmp = path.with_name(".swp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return text.encode()


def _write_racing_saves(folder, monkeypatch, saves: int):
    """``atomic_write`` of a file whose editor saves it right before each of the first ``saves`` swaps (after our
    last check); returns the file, the bytes each save wrote, and the error the write raised."""
    _needs_exchange(folder)
    path = folder / "layer.json"
    path.write_text("original")
    real, saved = storage._exchange, []

    def edit_then_swap(a, b):
        if len(saved) < saves:
            saved.append(_save_by_hand(path, f"by hand {len(saved)}"))
        return real(a, b)

    monkeypatch.setattr(storage, "_exchange", edit_then_swap)
    with pytest.raises(ChangedOnDiskError) as info:
        storage.atomic_write(path, b"ours", expect=b"original")
    return path, saved, info.value


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2(RENAME_EXCHANGE) is Linux's")
def test_a_hand_edit_saved_in_the_last_instant_before_the_swap_is_put_back(tmp_path, monkeypatch):
    path, saved, _ = _write_racing_saves(tmp_path, monkeypatch, saves=1)
    assert path.read_bytes() == saved[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer.json"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2(RENAME_EXCHANGE) is Linux's")
def test_two_hand_edits_racing_the_swap_are_both_kept(tmp_path, monkeypatch):
    path, saved, error = _write_racing_saves(tmp_path, monkeypatch, saves=2)
    (kept,) = tmp_path.glob("layer.json.kept-*")
    assert path.read_bytes() == saved[0] and kept.read_bytes() == saved[1]
    assert str(kept) in error.message


def test_an_unchanged_file_is_swapped_for_ours(tmp_path):
    path = tmp_path / "layer.json"
    path.write_text("original")
    storage.atomic_write(path, b"ours", expect=b"original")
    assert path.read_bytes() == b"ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer.json"]


def test_a_cache_write_skips_the_fsyncs_and_a_durable_write_makes_them(tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    target = tmp_path / "cache.json"
    storage.atomic_write(target, b"one", durable=False)
    assert target.read_bytes() == b"one" and synced == []
    assert list(tmp_path.iterdir()) == [target]  # no temp file left
    storage.atomic_write(target, b"two")
    assert target.read_bytes() == b"two" and len(synced) == 2  # the file, then its folder


def test_read_regular_reads_a_file_whole_or_limit_plus_one_bytes(tmp_path):
    data = os.urandom(3 * (1 << 20) + 5)  # more than one read's worth past the first
    path = tmp_path / "f"
    path.write_bytes(data)
    assert storage.read_regular(path) == data
    assert storage.read_regular(path, limit=16 << 20) == data
    assert storage.read_regular(path, limit=10) == data[:11]  # one past the limit: the caller sees "too large"
    assert storage.read_regular(path, limit=len(data)) == data
    (tmp_path / "empty").write_bytes(b"")
    assert storage.read_regular(tmp_path / "empty", limit=100) == b""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_read_regular_reads_a_file_whose_size_says_zero():
    # kernel files report size 0 and still have content: read on past the size fstat gives
    status = storage.read_regular("/proc/self/status")
    assert status.startswith(b"Name:") and b"\nPid:" in status
