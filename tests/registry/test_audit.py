"""The audit trail (``logs/model_downloader.log``): one JSON line per change, naming the command, the entries
it touched and the registry files' digests before and after; rotated; never failing the change it records."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from imageworks_models import testing
from imageworks_models.registry import audit


def sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def registry(tmp_path, monkeypatch) -> Path:
    folder = Path(testing.make_registry(tmp_path / "configs", {"name": "m1", "backend": "vllm"},
                                        {"name": "m2", "backend": "vllm"}))
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(folder))
    return folder


def records(registry: Path) -> list[dict]:
    return audit.read(registry.parent / "logs", limit=None)


def test_a_registry_write_is_recorded_with_command_entries_and_digests(cli, registry):
    curated = registry / "model_registry.curated.json"
    before = sha(curated)

    result = cli("remove", "m1", "--force", prog="imageworks-download")

    assert result.exit_code == 0, result.stderr
    (rec,) = records(registry)
    assert rec["action"] == "registry-write"
    assert rec["command"] == "imageworks-download remove m1 --force"
    assert rec["entries"] == ["m1"]  # m2 is untouched
    assert rec["files"]["model_registry.curated.json"] == {"before": before, "after": sha(curated)}
    assert rec["user"] and rec["host"] and isinstance(rec["pid"], int) and rec["time"].endswith("+00:00")
    assert rec["backups"] and all(Path(b).is_file() for b in rec["backups"])
    assert "traceback" not in rec and "timings" not in rec


def test_a_dry_run_records_nothing(cli, registry):
    result = cli("remove", "m1", "--force", "--dry-run", prog="imageworks-download")

    assert result.exit_code == 0, result.stderr
    assert not (registry.parent / "logs" / audit.AUDIT_FILE).exists()


def test_a_refused_command_records_nothing_without_debug(cli, registry):
    result = cli("remove", "m1", prog="imageworks-download")  # no --force: refused

    assert result.exit_code == 1
    assert not (registry.parent / "logs" / audit.AUDIT_FILE).exists()


def test_with_debug_a_failure_is_recorded_with_its_traceback_and_timings(cli, registry, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_DEBUG", "1")

    result = cli("remove", "nosuch", "--force", prog="imageworks-download")

    assert result.exit_code == 1
    (rec,) = records(registry)
    assert rec["action"] == "failed" and rec["ok"] is False
    assert rec["error"].startswith("EntryNotFoundError: ")
    assert "Traceback (most recent call last)" in rec["traceback"]
    assert rec["timings"]["seconds_since_command_start"] >= 0


def test_a_failure_after_a_global_option_is_recorded_too(cli, registry, monkeypatch):
    # the write is recognised by the command click resolved, not by the first word typed (issue 19 item 4)
    monkeypatch.setenv("IMAGEWORKS_DEBUG", "1")

    result = cli("--registry-dir", str(registry), "remove", "nosuch", "--force", prog="imageworks-download")

    assert result.exit_code == 1
    (rec,) = records(registry)
    assert rec["action"] == "failed" and rec["error"].startswith("EntryNotFoundError: ")


def test_a_failed_read_command_is_not_recorded(cli, registry, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_DEBUG", "1")

    result = cli("--registry-dir", str(registry), "show", "nosuch", prog="imageworks-models")

    assert result.exit_code == 1
    assert records(registry) == []


def test_library_writes_are_recorded_with_the_process_command_line(registry):
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings

    with store_for(load_settings()).edit() as layers:
        layers.curated.get("m2")["display_name"] = "Two"

    (rec,) = records(registry)
    assert rec["entries"] == ["m2"] and rec["command"]  # pytest's own command line here


def test_the_log_is_rotated_and_read_back_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(audit, "MAX_BYTES", 2000)
    for i in range(60):
        audit.record(tmp_path, "registry-write", entries=[f"e{i:02d}"])

    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(audit.AUDIT_FILE) and
                   not p.name.endswith(".lock"))
    assert files == [audit.AUDIT_FILE, f"{audit.AUDIT_FILE}.1", f"{audit.AUDIT_FILE}.2", f"{audit.AUDIT_FILE}.3"]
    assert all((tmp_path / f).stat().st_size <= 2000 for f in files)
    kept = [r["entries"][0] for r in audit.read(tmp_path, limit=None)]
    assert kept == sorted(kept) and kept[-1] == "e59"  # oldest first, newest kept, nothing out of order
    assert [r["entries"][0] for r in audit.read(tmp_path, limit=3)] == ["e57", "e58", "e59"]


def test_an_unwritable_log_never_fails_the_change(cli, registry, caplog):
    (registry.parent / "logs").write_text("a file where the folder should be")

    result = cli("remove", "m1", "--force", prog="imageworks-download")

    assert result.exit_code == 0, result.stderr
    entries = json.loads((registry / "model_registry.curated.json").read_text())["entries"]
    assert [e["name"] for e in entries] == ["m2"]
    assert "could not write the audit record" in caplog.text


def test_hand_edited_lines_are_skipped_when_read(tmp_path):
    audit.record(tmp_path, "stop", entries=["a"])
    with open(tmp_path / audit.AUDIT_FILE, "a") as fh:
        fh.write("not json\n[1, 2]\n")
    audit.record(tmp_path, "activate", entries=["b"])

    assert [r["action"] for r in audit.read(tmp_path)] == ["stop", "activate"]
