"""Items 4 and 12 of issue 17 (RELIABILITY B17, D24): strict JSON everywhere we read it, never NaN/Infinity
written, and foreign files refused (restore takes only backups the tool wrote; models.lock is checked field
by field). Every hostile file gives one ``error:`` line (plus the list of invalid fields), exit 1, no
traceback, and every file byte-identical afterwards."""

from __future__ import annotations

import json
import os
import time

import pytest
from _helpers import cli, digests, make_registry, sources

from imageworks_models.errors import RegistryFileError
from imageworks_models.registry.store import CURATED_FILE, RegistryStore, dump_document

HOSTILE_JSON = {
    "NaN": b'{"schema_version": 1, "entries": [{"name": "a", "backend": "vllm", "metadata": {"x": NaN}}]}',
    "Infinity": b'{"schema_version": 1, "entries": [{"name": "a", "backend": "vllm", "metadata": {"x": -Infinity}}]}',
    "1e999": b'{"schema_version": 1, "entries": [{"name": "a", "backend": "vllm", "metadata": {"x": 1e999}}]}',
    "2^63": b'{"schema_version": 1, "entries": [{"name": "a", "backend": "vllm", "metadata": {"x": 9223372036854775808}}]}',
    "5000 digits": b'{"schema_version": 1, "entries": [{"name": "a", "backend": "vllm", "metadata": {"x": '
                   + b"7" * 5000 + b"}}]}",
    "depth 900": b'{"schema_version": 1, "entries": [{"name": "a", "backend": "vllm", "metadata": {"x": '
                 + b"[" * 900 + b"]" * 900 + b"}}]}",
    "depth 65": b'{"schema_version": 1, "entries": [{"name": "a", "backend": "vllm", "metadata": {"x": '
                + b"[" * 62 + b"]" * 62 + b"}}]}",
    "lone surrogate": b'{"schema_version": 1, "entries": [{"name": "a\\udc80", "backend": "vllm"}]}',
    "duplicate key": b'{"schema_version": 1, "entries": [{"name": "a", "backend": "vllm", "backend": "ollama"}]}',
}


def inproc(monkeypatch, *args, env: dict):
    """The same click app in this process (no interpreter start-up), with ``env`` set."""
    from imageworks_models.testing import run_cli

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = run_cli(*args)
    result.returncode = result.exit_code
    return result


def one_error(result) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize("case", sorted(HOSTILE_JSON))
def test_b17_hostile_registry_json_is_one_line_with_position_and_nothing_changes(tmp_path, monkeypatch, case):
    folder = make_registry(tmp_path / "reg")
    (folder / CURATED_FILE).write_bytes(HOSTILE_JSON[case])
    before = digests(folder)
    env = {"IMAGEWORKS_REGISTRY_DIR": str(folder)}
    runs = [inproc(monkeypatch, "list", env=env), inproc(monkeypatch, "remove", "a", "--force", env=env)]
    if case in ("NaN", "depth 900"):  # and once as a real process, as a user runs it
        runs.append(cli("list", env={**os.environ, **env}))
    for result in runs:
        line = one_error(result)
        assert CURATED_FILE in line
        if case not in ("duplicate key", "depth 900"):
            assert f"{CURATED_FILE}:1:" in line, line  # file:line:column
    assert digests(folder) == before


def test_b17_oversized_file_is_refused_by_the_size_setting(tmp_path):
    folder = make_registry(tmp_path / "reg", discovered=[])
    big = dump_document([{"name": "a", "backend": "vllm", "metadata": {"pad": "x" * 4000}}])
    (folder / CURATED_FILE).write_bytes(big)
    before = digests(folder)
    env = {**os.environ, "IMAGEWORKS_REGISTRY_DIR": str(folder), "IMAGEWORKS_MAX_JSON_BYTES": "2048"}
    line = one_error(cli("list", "--include-non-installed", env=env))
    assert "2,048-byte limit" in line
    assert digests(folder) == before
    env["IMAGEWORKS_MAX_JSON_BYTES"] = str(1 << 20)
    assert cli("list", "--include-non-installed", env=env).returncode == 0


def test_b17_nan_and_infinity_are_never_written(tmp_path):
    folder = make_registry(tmp_path / "reg")
    store = RegistryStore(folder)
    before = sources(folder)
    for bad in (float("nan"), float("inf"), "\udc80"):
        with pytest.raises(RegistryFileError):
            with store.edit() as layers:
                layers.discovered.get("counter")["metadata"]["x"] = bad
        assert sources(folder) == before


SHA = "sha256:" + "ab" * 32
GOOD_RECORD = {"name": "m", "backend": "vllm", "source": {"provider": "hf", "repo_id": "o/r", "revision": "main",
                                                           "commit": "c" * 40},
               "aggregate": SHA, "files": [{"path": "model.safetensors", "size": 10, "digest": SHA}]}


def lock_doc(**changes) -> dict:
    record = json.loads(json.dumps(GOOD_RECORD))
    for dotted, value in changes.items():
        node = record
        *parts, last = dotted.split(".")
        for p in parts:
            node = node[int(p)] if p.isdigit() else node[p]
        node[last] = value
    return {"schema_version": 1, "generated_at": "2026-01-01T00:00:00+00:00", "entries": [record]}


BAD_LOCKS = {
    "size -5": lock_doc(**{"files.0.size": -5}),
    "size 2^70": lock_doc(**{"files.0.size": 2**70 // 2**10}),  # still above 2^53, and valid JSON for the reader
    "commit main": lock_doc(**{"source.commit": "main"}),
    "digest 63 hex": lock_doc(**{"files.0.digest": SHA[:-1]}),
    "path ..": lock_doc(**{"files.0.path": "../../etc/passwd"}),
    "absolute path": lock_doc(**{"files.0.path": "/etc/passwd"}),
    "unknown field": lock_doc(**{"files.0.exec": "rm -rf /"}),
    "aggregate md5": lock_doc(aggregate="md5:" + "a" * 32),
}


@pytest.mark.parametrize("case", sorted(BAD_LOCKS))
def test_d24_models_lock_is_checked_field_by_field(tmp_path, monkeypatch, case):
    folder = make_registry(tmp_path / "reg")
    lock = tmp_path / "models.lock"
    lock.write_text(json.dumps(BAD_LOCKS[case]))
    RegistryStore(folder).load()
    before = digests(tmp_path)
    env = {"IMAGEWORKS_REGISTRY_DIR": str(folder), "IMAGEWORKS_WEIGHTS_ROOT": str(tmp_path / "w")}
    result = inproc(monkeypatch, "sync", str(lock), "--dry-run", env=env)
    line = one_error(result)
    assert str(lock) in line
    assert digests(tmp_path) == before


def test_d24_a_models_lock_with_2_pow_70_is_refused_as_strict_json(tmp_path):
    lock = tmp_path / "models.lock"
    lock.write_text(json.dumps(lock_doc(**{"files.0.size": 2**70})))
    env = {**os.environ, "IMAGEWORKS_REGISTRY_DIR": str(make_registry(tmp_path / "reg"))}
    assert "out of range" in one_error(cli("sync", str(lock), "--dry-run", env=env))  # a real process


def backup_name(kind: str = "curated", label: str = "") -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S000000Z", time.gmtime())
    return f"model_registry.{kind}.{stamp}{'.' + label if label else ''}.json"


@pytest.mark.parametrize("content", ["[]", "models.lock", "{}", "hand-named"])
def test_d24_restore_takes_only_backups_the_tool_wrote(tmp_path, monkeypatch, content):
    folder = make_registry(tmp_path / "reg", discovered=[
        {"name": "counter", "backend": "ollama", "download": {"path": "ollama:/counter:latest"}}])
    backups = folder / "backups"
    backups.mkdir()
    if content == "[]":
        path, data = backups / backup_name("discovered"), "[]"
    elif content == "models.lock":
        path, data = backups / backup_name("discovered"), json.dumps(lock_doc())
    elif content == "{}":
        path, data = backups / backup_name("discovered"), "{}"
    else:
        path, data = tmp_path / "my-backup.json", dump_document([]).decode()
    path.write_text(data)
    RegistryStore(folder).load()
    before = digests(folder)
    env = {"IMAGEWORKS_REGISTRY_DIR": str(folder)}
    for extra in ([], ["--dry-run"]):
        line = one_error(inproc(monkeypatch, "restore-ollama", "--backup", str(path), *extra, env=env))
        assert str(path) in line
    assert digests(folder) == before


def test_d24_a_real_backup_restores_with_a_dry_run_diff_first(tmp_path):
    folder = make_registry(tmp_path / "reg", discovered=[
        {"name": "counter", "backend": "ollama", "download": {"path": "ollama:/counter:latest"}}])
    store = RegistryStore(folder)
    with store.edit(backup=True, backup_label="test") as layers:
        layers.discovered.remove("counter")
    [backup] = [p for p in (folder / "backups").iterdir() if ".discovered." in p.name]
    env = {**os.environ, "IMAGEWORKS_REGISTRY_DIR": str(folder)}
    before = digests(folder)
    dry = cli("restore-ollama", "--backup", str(backup), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "counter" in dry.stdout and digests(folder) == before
    done = cli("restore-ollama", "--backup", str(backup), env=env)
    assert done.returncode == 0, done.stderr
    assert store.load(use_snapshot=False).find("counter") is not None
