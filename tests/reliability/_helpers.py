"""Small helpers shared by the reliability tests (imported by name: tests/conftest.py puts tests/ on sys.path)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

from imageworks_models.registry.store import CURATED_FILE, DISCOVERED_FILE, dump_document


def make_registry(folder: Path, curated: list[dict] | None = None, discovered: list[dict] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CURATED_FILE).write_bytes(dump_document(curated if curated is not None else [
        {"name": "counter", "backend": "vllm", "display_name": "counter 0"}]))
    (folder / DISCOVERED_FILE).write_bytes(dump_document(discovered if discovered is not None else [
        {"name": "counter", "metadata": {"count": 0, "ids": []}}]))
    return folder


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every regular file under ``folder`` (to prove a command changed nothing)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def sources(folder: Path) -> dict[str, str]:
    """sha256 of the registry's source-of-truth files (the two layers; the snapshot is a cache)."""
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() if (folder / name).exists() else "missing"
            for name in (CURATED_FILE, DISCOVERED_FILE)}


def spawn(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``imageworks-models ARGS`` as a real process (exit code, stderr as the user sees them)."""
    exe = Path(sys.executable).with_name("imageworks-models")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=timeout)
