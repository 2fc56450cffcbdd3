"""Item 6 of issue 17 (RELIABILITY B19): a FIFO, socket or device where a registry file, lock file, state file or
Ollama manifest is expected is never opened for reading (nothing hangs); over-long names are a clear error."""

from __future__ import annotations

import os
import socket
import time

import pytest
from _helpers import cli, make_registry, sources

from imageworks_models.errors import StorageError, UnsafePathError
from imageworks_models.registry.store import CURATED_FILE, DISCOVERED_FILE, LOCK_FILE, RegistryStore
from imageworks_models.fs.safepath import check_relative_name
from imageworks_models.fs.storage import file_lock, read_regular


def odd(path, kind: str):
    if kind == "fifo":
        os.mkfifo(path)
        return None
    import tempfile

    sock = socket.socket(socket.AF_UNIX)
    short = os.path.join(tempfile.mkdtemp(prefix="iw"), "s")  # AF_UNIX paths are limited to 108 bytes
    sock.bind(short)
    os.rename(short, path)
    return sock


@pytest.mark.parametrize("kind", ["fifo", "socket"])
@pytest.mark.parametrize("which", [CURATED_FILE, DISCOVERED_FILE])
def test_b19_an_odd_registry_file_is_refused_at_once(tmp_path, kind, which, figure):
    folder = make_registry(tmp_path / "reg")
    os.unlink(folder / which)
    keep = odd(folder / which, kind)
    try:
        start = time.monotonic()
        result = cli("list", env={**os.environ, "IMAGEWORKS_REGISTRY_DIR": str(folder)}, timeout=30)
        secs = time.monotonic() - start
    finally:
        if keep:
            keep.close()
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert which in line and "not a regular file" in line
    if which == CURATED_FILE and kind == "fifo":
        figure(f"B19: a FIFO as the curated layer: `list` refuses it in {secs:.2f} s (nothing opened for reading)")


def test_b19_an_odd_lock_file_or_character_device_is_never_read(tmp_path):
    folder = make_registry(tmp_path / "reg")
    os.mkfifo(folder / LOCK_FILE)
    before = sources(folder)
    with pytest.raises(StorageError) as info:  # the registry locks its folder; the holder note is refused
        with RegistryStore(folder, lock_timeout=1).edit() as layers:
            layers.curated.get("counter")["display_name"] = "x"
    assert "not a regular file" in info.value.message
    assert sources(folder) == before
    os.mkfifo(tmp_path / "other.lock")
    with pytest.raises(StorageError):
        with file_lock(tmp_path / "other.lock", timeout=1):
            pass
    for device in ("/dev/zero", "/dev/null"):
        with pytest.raises(StorageError):
            read_regular(device)


def test_b19_an_odd_active_state_file_does_not_hang_list(tmp_path):
    folder = make_registry(tmp_path / "reg")
    state = tmp_path / "state"
    state.mkdir()
    os.mkfifo(state / "active_vllm.json")
    env = {**os.environ, "IMAGEWORKS_REGISTRY_DIR": str(folder), "IMAGEWORKS_STATE_DIR": str(state)}
    result = cli("list", "--include-non-installed", env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "active_vllm.json" in result.stderr and "not a regular file" in result.stderr


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_b19_an_odd_ollama_manifest_does_not_hang_import(tmp_path, kind):
    store = tmp_path / "ollama"
    manifest = store / "manifests" / "registry.ollama.ai" / "library" / "tiny"
    manifest.mkdir(parents=True)
    (store / "blobs").mkdir()
    keep = odd(manifest / "latest", kind)
    folder = make_registry(tmp_path / "reg", curated=[], discovered=[])
    before = sources(folder)
    env = {**os.environ, "IMAGEWORKS_REGISTRY_DIR": str(folder), "OLLAMA_MODELS": str(store),
           "OLLAMA_HOST": "http://127.0.0.1:9"}
    try:
        result = cli("import-ollama", "--dry-run", env=env, timeout=30)
    finally:
        if keep:
            keep.close()
    assert "Traceback" not in result.stderr
    assert "tiny" in result.stdout + result.stderr and "regular file" in result.stdout + result.stderr
    assert sources(folder) == before


def test_b19_an_over_long_name_from_a_hub_listing_is_a_clear_error():
    name = "a" * 300 + ".safetensors"
    with pytest.raises(UnsafePathError) as info:
        check_relative_name(f"sub/{name}")
    assert "255" in info.value.message and name[:40] in info.value.message
    check_relative_name("sub/" + "b" * 255)  # the longest allowed


def test_b19_an_over_long_registry_path_is_a_clear_error(tmp_path):
    long_dir = tmp_path / ("d" * 300)
    result = cli("list", env={**os.environ, "IMAGEWORKS_REGISTRY_DIR": str(long_dir)})
    assert result.returncode == 1 and "Traceback" not in result.stderr and "internal error" not in result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert "d" * 300 in line and "too long" in line
