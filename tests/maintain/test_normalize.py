"""normalize-formats: re-inspect installed entries' files and bring their recorded facts back in line.

Every test writes four small but real models (a bf16 safetensors folder, an AWQ folder, a vision folder
and a GGUF file) into ``<tmp>/weights``, with old mtimes so the stat cache trusts them, and registers
them with the real ``imageworks-download scan`` into ``<tmp>/configs``. The tests then change what the
registry records or what is on disk and check the rows ``normalize-formats`` shows, what ``--apply``
writes (the discovered layer only, after a backup), and what it leaves alone.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import modelfiles

from imageworks_models.registry import audit
from imageworks_models.maintain.normalize import normalize_formats, plan_normalize
from imageworks_models.registry.store import CURATED_FILE, DISCOVERED_FILE, RegistryStore
from imageworks_models.settings import load_settings
from imageworks_models.integrity.statcache import StatCache

DOWNLOAD = "imageworks-download"
AWQ = "mistral-7b-instruct-vllm-awq"
VLM = "qwen2.5-vl-3b-instruct-vllm-safetensors-bf16"
BF16 = "qwen3-4b-vllm-safetensors-bf16"
GGUF = "qwen3-8b-vllm-gguf-q4_k_m"
ALL = [AWQ, VLM, BF16, GGUF]
OLD = 1_600_000_000  # mtimes far in the past: the stat cache trusts digests of such files
ROW_KEYS = {"action", "name", "path", "changes", "reason"}
REPORT_KEYS = {"dry_run", "rebuild", "written", "backup", "counts", "notes", "rows"}


# --- real model files ---------------------------------------------------------------------------


def make_models(root: Path) -> dict[str, Path]:
    """The four models of ``modelfiles.make_models``, by entry name (the names ``scan`` gives them)."""
    models = modelfiles.make_models(root, gguf_template=False)
    return {BF16: models["bf16"], AWQ: models["awq"], VLM: models["vlm"], GGUF: models["gguf"]}


# --- the registry and running the command -------------------------------------------------------


class Setup:
    def __init__(self, reg: Path, weights: Path, models: dict[str, Path]):
        self.reg, self.weights, self.models = reg, weights, models
        self.logs = reg.parent / "logs"

    @property
    def discovered_path(self) -> Path:
        return self.reg / DISCOVERED_FILE

    def discovered(self, name: str) -> dict | None:
        doc = json.loads(self.discovered_path.read_text(encoding="utf-8"))
        return next((e for e in doc["entries"] if e["name"] == name), None)

    def edit_discovered(self, name: str, change) -> None:
        """Change one entry of the discovered layer's JSON by hand (as a person or an old tool would)."""
        doc = json.loads(self.discovered_path.read_text(encoding="utf-8"))
        change(next(e for e in doc["entries"] if e["name"] == name))
        self.discovered_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")

    def put(self, *, curated: tuple[dict, ...] = (), discovered: tuple[dict, ...] = ()) -> None:
        with RegistryStore(self.reg).edit() as layers:
            for entry in curated:
                layers.curated.put(entry)
            for entry in discovered:
                layers.discovered.put(entry)

    def files(self) -> dict[str, bytes]:
        """Every file under the registry folder (backups included), by relative path."""
        return {str(p.relative_to(self.reg)): p.read_bytes() for p in sorted(self.reg.rglob("*")) if p.is_file()}

    def backups(self) -> list[Path]:
        folder = self.reg / "backups"
        return sorted(folder.iterdir()) if folder.is_dir() else []

    def records(self) -> list[dict]:
        return audit.read(self.logs, limit=None)


@pytest.fixture
def env(tmp_path, monkeypatch, cli) -> Setup:
    reg, weights = tmp_path / "configs", tmp_path / "weights"
    reg.mkdir()
    models = make_models(weights)
    for p in [weights, *weights.rglob("*")]:
        os.utime(p, (OLD, OLD))
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(reg))
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(weights))
    result = cli("scan", "--base", str(weights), prog=DOWNLOAD)
    assert result.exit_code == 0, result.stderr
    setup = Setup(reg, weights, models)
    assert all(setup.discovered(n) for n in ALL), result.stdout
    return setup


def normalize(cli, *args: str):
    return cli("normalize-formats", *args, prog=DOWNLOAD)


def normalize_json(cli, *args: str, exit_code: int = 0) -> dict:
    result = normalize(cli, *args, "--json")
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    doc = json.loads(result.stdout)
    assert set(doc) == REPORT_KEYS
    assert all(set(r) == ROW_KEYS for r in doc["rows"])
    return doc


def rows(doc: dict) -> dict[str, dict]:
    return {r["name"]: r for r in doc["rows"]}


def actions(doc: dict) -> dict[str, str]:
    return {r["name"]: r["action"] for r in doc["rows"]}


def assert_clean_output(result) -> None:
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


# --- nothing to do ------------------------------------------------------------------------------


def test_freshly_scanned_models_are_all_unchanged_and_a_dry_run_writes_nothing(cli, env):
    before, records = env.files(), len(env.records())

    plain = normalize(cli)
    dry = normalize(cli, "--dry-run")
    doc = normalize_json(cli)

    for result in (plain, dry):
        assert result.exit_code == 0, result.stderr
        assert result.stdout == ""  # unchanged rows are not shown: no table at all
        assert "4 unchanged" in result.stderr
        assert "dry run, nothing was written (add --apply)" in result.stderr
        assert_clean_output(result)
    assert doc["dry_run"] is True and doc["rebuild"] is False
    assert doc["written"] == 0 and doc["backup"] == [] and doc["notes"] == []
    assert doc["counts"] == {"unchanged": 4}
    assert actions(doc) == dict.fromkeys(ALL, "unchanged")
    assert all(r["changes"] == {} and r["reason"] is None for r in doc["rows"])
    assert rows(doc)[GGUF]["path"] == str(env.models[GGUF])
    assert env.files() == before
    assert not (env.reg / "backups").exists()
    assert len(env.records()) == records  # the audit trail records writes only


def test_apply_with_nothing_to_change_writes_nothing(cli, env):
    before, records = env.files(), len(env.records())

    result = normalize(cli, "--apply")

    assert result.exit_code == 0, result.stderr
    assert "0 entries changed" in result.stderr
    assert "backup:" not in result.stderr
    assert env.files() == before
    assert len(env.records()) == records


# --- wrong recorded facts -----------------------------------------------------------------------


def falsify(entry: dict) -> None:
    entry["format"] = "safetensors"
    entry["quantization"] = "q8_0"
    entry["download"]["size_bytes"] = 1
    entry["download"]["file_count"] = 7


def wrong(scanned: dict) -> dict:
    """The changes ``falsify`` makes, as [recorded, found] (found: what scan recorded)."""
    return {"format": ["safetensors", "gguf"], "quantization": ["q8_0", "q4_k_m"],
            "size_bytes": [1, scanned["download"]["size_bytes"]], "file_count": [7, 1]}


def test_wrong_recorded_facts_are_shown_as_update_with_recorded_and_found(cli, env):
    size = env.discovered(GGUF)["download"]["size_bytes"]
    env.edit_discovered(GGUF, falsify)
    before = env.files()

    doc = normalize_json(cli, "--dry-run")
    text = normalize(cli)

    assert doc["counts"] == {"unchanged": 3, "update": 1}
    row = rows(doc)[GGUF]
    assert row["action"] == "update"
    assert row["changes"] == {"format": ["safetensors", "gguf"], "quantization": ["q8_0", "q4_k_m"],
                              "size_bytes": [1, size], "file_count": [7, 1]}  # exactly these: same checksum
    assert row["reason"] is None
    assert text.exit_code == 0, text.stderr
    (line,) = [ln for ln in text.stdout.splitlines() if GGUF in ln]
    assert line.split()[:2] == ["would", "update"]
    for cell in ("safetensors → gguf", "q8_0 → q4_k_m", f"1 B → {size} B", "7 → 1"):
        assert cell in line, line
    assert line.rstrip().endswith("="), line  # the checksum column
    assert "1 update, 3 unchanged" in text.stderr or "3 unchanged, 1 update" in text.stderr
    assert env.files() == before  # a dry run writes nothing, not even the merged snapshot


def test_apply_fixes_the_discovered_layer_after_a_backup_of_its_previous_bytes(cli, env):
    scanned = env.discovered(GGUF)
    env.edit_discovered(GGUF, falsify)
    others = {n: env.discovered(n) for n in ALL if n != GGUF}
    previous = env.discovered_path.read_bytes()

    doc = normalize_json(cli, "--apply")

    assert doc["dry_run"] is False and doc["written"] == 1
    assert rows(doc)[GGUF]["action"] == "update" and rows(doc)[GGUF]["changes"] == wrong(scanned)
    assert env.discovered(GGUF) == scanned  # back to what the files say; path, artifacts, the rest kept
    assert {n: env.discovered(n) for n in others} == others
    assert not (env.reg / CURATED_FILE).exists()  # only the discovered layer is written
    (backup,) = env.backups()
    assert doc["backup"] == [str(backup)]
    assert backup.read_bytes() == previous
    assert "normalize" in backup.name
    again = normalize_json(cli)
    assert again["counts"] == {"unchanged": 4}


def test_apply_prints_what_it_changed_and_the_backup(cli, env):
    env.edit_discovered(GGUF, falsify)

    result = normalize(cli, "--apply")

    assert result.exit_code == 0, result.stderr
    (line,) = [ln for ln in result.stdout.splitlines() if GGUF in ln]
    assert line.split()[0] == "update"  # no "would" any more
    assert "1 entry changed" in result.stderr
    (backup,) = env.backups()
    assert f"backup: {backup}" in result.stderr
    assert "dry run" not in result.stderr


def test_no_backup_writes_no_backup(cli, env):
    scanned = env.discovered(AWQ)
    env.edit_discovered(AWQ, lambda e: e.update(quantization="gptq"))

    doc = normalize_json(cli, "--apply", "--no-backup")

    assert rows(doc)[AWQ]["changes"] == {"quantization": ["gptq", "awq"]}
    assert doc["written"] == 1 and doc["backup"] == []
    assert env.discovered(AWQ) == scanned
    assert env.backups() == []


def test_an_entry_without_a_recorded_manifest_gets_one(cli, env):
    scanned = env.discovered(VLM)
    env.edit_discovered(VLM, lambda e: e.pop("artifacts"))

    doc = normalize_json(cli, "--apply")

    row = rows(doc)[VLM]
    assert row["action"] == "update"
    assert row["changes"] == {"aggregate": [None, scanned["artifacts"]["aggregate"]]}
    assert env.discovered(VLM)["artifacts"] == scanned["artifacts"]


def test_apply_records_one_audit_record_naming_the_touched_entries(cli, env):
    env.edit_discovered(GGUF, falsify)
    env.edit_discovered(AWQ, lambda e: e["download"].update(size_bytes=5))
    before = len(env.records())

    doc = normalize_json(cli, "--apply")

    new = env.records()[before:]
    assert len(new) == 1, new
    (rec,) = new
    assert rec["action"] == "registry-write"
    assert rec["command"] == f"{DOWNLOAD} normalize-formats --apply --json"
    assert rec["entries"] == sorted([AWQ, GGUF])
    assert set(rec["files"]) == {DISCOVERED_FILE}
    assert rec["backups"] == doc["backup"]


def test_library_dry_run_and_plan_agree(env):
    env.edit_discovered(GGUF, falsify)
    before = env.files()

    planned = plan_normalize()
    dry = normalize_formats()

    assert [r.as_dict() for r in planned.rows] == [r.as_dict() for r in dry.rows]
    assert dry.dry_run is True and dry.written == 0
    assert env.files() == before


# --- files that changed -------------------------------------------------------------------------


def test_changed_files_are_drift_and_apply_leaves_the_entry_alone(cli, env):
    recorded = env.discovered(AWQ)
    with open(env.models[AWQ] / "model.safetensors", "ab") as fh:
        fh.write(b"\0" * 8)
    before = env.files()

    dry = normalize_json(cli)
    applied = normalize_json(cli, "--apply")

    for doc in (dry, applied):
        row = rows(doc)[AWQ]
        assert row["action"] == "drift"
        assert set(row["changes"]) == {"size_bytes", "aggregate"}
        assert row["changes"]["size_bytes"] == [360, 368]
        old, new = row["changes"]["aggregate"]
        assert old == recorded["artifacts"]["aggregate"] and new.startswith("sha256:") and new != old
        assert "verify --accept" in row["reason"] and f"imageworks-loader verify {AWQ}" in row["reason"]
        assert doc["counts"] == {"drift": 1, "unchanged": 3}
    assert applied["written"] == 0 and applied["backup"] == []
    assert env.files() == before  # not even a backup
    assert env.discovered(AWQ) == recorded


def test_drift_is_left_alone_while_other_entries_are_updated(cli, env):
    recorded = env.discovered(AWQ)
    with open(env.models[AWQ] / "model.safetensors", "ab") as fh:
        fh.write(b"\0" * 8)
    env.edit_discovered(GGUF, falsify)

    result = normalize(cli, "--apply")

    assert result.exit_code == 0, result.stderr
    assert env.discovered(AWQ) == recorded
    assert env.discovered(GGUF)["quantization"] == "q4_k_m"
    assert "1 entry changed" in result.stderr
    assert f"{AWQ}: files differ from the recorded manifest" in result.stderr


def poison_stat_cache(env: Setup, name: str, rel: str) -> None:
    """Change ``rel``'s bytes (same size, old mtime) and make its stat-cache record match the new stat,
    so that only reading every byte can tell: a cache that trusts stat alone says nothing changed."""
    folder = env.models[name]
    target = folder / rel
    data = target.read_bytes()
    target.write_bytes(data[:-32] + b"\x01" * 32)  # the tensor data, not the header
    os.utime(target, (OLD, OLD))
    cache = StatCache.for_root(load_settings().cache_dir, folder)
    assert rel in cache.files, "scan did not fill the stat cache"
    st = os.lstat(target)
    rec = cache.files[rel]
    assert rec[0] == st.st_size and rec[1] == st.st_mtime_ns
    rec[2], rec[3], rec[4] = st.st_ctime_ns, st.st_ino, st.st_dev
    cache._dirty = True
    cache.save()


def test_without_rebuild_the_stat_cache_is_trusted_and_rebuild_reads_every_byte(cli, env):
    recorded = env.discovered(BF16)
    poison_stat_cache(env, BF16, "model.safetensors")

    quick = normalize_json(cli)
    rebuilt = normalize_json(cli, "--rebuild")

    assert quick["rebuild"] is False and rebuilt["rebuild"] is True
    assert rows(quick)[BF16]["action"] == "unchanged"
    row = rows(rebuilt)[BF16]
    assert row["action"] == "drift"
    assert list(row["changes"]) == ["aggregate"]  # same size, same headers: only the checksum
    assert row["changes"]["aggregate"][0] == recorded["artifacts"]["aggregate"]
    assert actions(rebuilt) == {**dict.fromkeys(ALL, "unchanged"), BF16: "drift"}


# --- the curated layer --------------------------------------------------------------------------


def test_a_format_the_curated_layer_sets_is_reported_not_overwritten(cli, env):
    env.put(curated=({"name": BF16, "format": "awq"},))
    before = env.files()

    doc = normalize_json(cli, "--apply")
    text = normalize(cli)

    row = rows(doc)[BF16]
    assert row["action"] == "unchanged" and row["changes"] == {}
    assert "the curated layer sets format = 'awq'" in row["reason"]
    assert "'safetensors'" in row["reason"]
    assert doc["written"] == 0
    assert env.files() == before
    # an unchanged row is not in the table
    assert BF16 not in text.stdout


def test_a_curated_quantization_is_kept_while_other_facts_are_fixed(cli, env):
    env.put(curated=({"name": BF16, "quantization": "fp8"},))
    env.edit_discovered(BF16, lambda e: e["download"].update(file_count=9))
    curated = (env.reg / CURATED_FILE).read_bytes()
    scanned_quant = env.discovered(BF16)["quantization"]

    doc = normalize_json(cli, "--apply")

    row = rows(doc)[BF16]
    assert row["action"] == "update"
    assert row["changes"] == {"file_count": [9, 3]}
    assert "the curated layer sets quantization = 'fp8'" in row["reason"]
    assert (env.reg / CURATED_FILE).read_bytes() == curated
    entry = env.discovered(BF16)
    assert entry["download"]["file_count"] == 3
    assert entry["quantization"] == scanned_quant == "bf16"


def test_drift_stays_drift_when_the_curated_layer_also_sets_the_format(cli, env):
    env.put(curated=({"name": AWQ, "format": "safetensors"},))
    recorded = env.discovered(AWQ)
    with open(env.models[AWQ] / "model.safetensors", "ab") as fh:
        fh.write(b"\0" * 8)

    doc = normalize_json(cli, "--apply")

    row = rows(doc)[AWQ]
    assert env.discovered(AWQ) == recorded  # the recorded manifest is verify --accept's to replace
    assert row["action"] == "drift"
    assert "verify --accept" in row["reason"]


# --- files that are gone ------------------------------------------------------------------------


def remove_files(env: Setup) -> None:
    shutil.rmtree(env.models[BF16])
    env.models[GGUF].unlink()


def test_files_gone_are_missing_and_nothing_is_written(cli, env):
    remove_files(env)
    before = env.files()

    doc = normalize_json(cli, "--apply")

    assert actions(doc) == {AWQ: "unchanged", VLM: "unchanged", BF16: "missing", GGUF: "missing"}
    assert all("--prune-missing" in rows(doc)[n]["reason"] for n in (BF16, GGUF))
    assert doc["written"] == 0
    assert env.files() == before


def test_prune_missing_dry_run_says_would_remove_and_writes_nothing(cli, env):
    remove_files(env)
    before = env.files()

    result = normalize(cli, "--prune-missing")

    assert result.exit_code == 0, result.stderr
    lines = {n: ln for n in (BF16, GGUF) for ln in result.stdout.splitlines() if n in ln}
    assert all(ln.startswith("would remove") for ln in lines.values()), result.stdout
    assert env.files() == before


def test_prune_missing_drops_discovered_entries_and_keeps_curated_parts_not_installed(cli, env):
    env.put(curated=({"name": BF16, "display_name": "Qwen 3 4B", "roles": ["chat"]},))
    curated = (env.reg / CURATED_FILE).read_bytes()
    kept_before = env.discovered(BF16)
    remove_files(env)

    doc = normalize_json(cli, "--prune-missing", "--apply")

    assert actions(doc) == {AWQ: "unchanged", VLM: "unchanged", BF16: "remove", GGUF: "remove"}
    assert "kept its curated part" in rows(doc)[BF16]["reason"]
    assert "entry removed" in rows(doc)[GGUF]["reason"]
    assert doc["written"] == 2 and len(doc["backup"]) == 1
    assert env.discovered(GGUF) is None
    kept = env.discovered(BF16)
    assert "download" not in kept and "artifacts" not in kept
    assert kept == {k: v for k, v in kept_before.items() if k not in ("download", "artifacts")}
    assert (env.reg / CURATED_FILE).read_bytes() == curated

    listed = cli("list", "--include-non-installed", "--json", prog=DOWNLOAD)
    assert listed.exit_code == 0, listed.stderr
    by_name = {e["name"]: e for e in json.loads(listed.stdout)}
    assert GGUF not in by_name
    assert by_name[BF16]["installed"] is False and by_name[BF16]["path"] is None
    assert by_name[BF16]["display_name"] == "Qwen 3 4B"
    assert by_name[AWQ]["installed"] is True
    installed = cli("list", "--json", prog=DOWNLOAD)
    assert BF16 not in {e["name"] for e in json.loads(installed.stdout)}

    again = normalize_json(cli, "--prune-missing")
    assert actions(again) == {AWQ: "unchanged", VLM: "unchanged"}


# --- entries without local files ----------------------------------------------------------------


def test_store_references_and_entries_without_a_path_are_not_inspected_but_counted(cli, env):
    env.put(curated=({"name": "remote-vllm", "backend": "vllm"},),
            discovered=({"name": "llama3-ollama", "backend": "ollama", "download": {"path": "ollama:/llama3:8b"}},))

    doc = normalize_json(cli)
    text = normalize(cli)

    assert set(actions(doc)) == set(ALL)
    assert len(doc["notes"]) == 1
    assert doc["notes"][0].startswith("2 entries have no local files")
    assert "not inspected" in doc["notes"][0]
    assert text.exit_code == 0
    assert "note: 2 entries have no local files" in text.stderr


def test_no_installed_entries_at_all(cli, tmp_path, monkeypatch):
    reg = tmp_path / "empty"
    reg.mkdir()
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(reg))

    result = normalize(cli)
    doc = normalize_json(cli)

    assert result.exit_code == 0, result.stderr
    assert "no installed entries" in result.stderr
    assert doc["rows"] == [] and doc["counts"] == {}


# --- files that cannot be read ------------------------------------------------------------------


def test_a_garbage_safetensors_header_is_drift_without_a_traceback(cli, env):
    (env.models[BF16] / "model.safetensors").write_bytes(b"\xff" * 8 + b"junk")
    before = env.files()

    result = normalize(cli, "--apply")
    doc = normalize_json(cli)

    assert result.exit_code == 0, result.stderr
    assert_clean_output(result)
    row = rows(doc)[BF16]
    assert row["action"] == "drift"
    assert row["changes"]["size_bytes"] == [272, 140]
    assert env.files() == before


def test_an_unreadable_header_is_an_error_even_when_the_bytes_are_the_recorded_ones(cli, env):
    (env.models[BF16] / "model.safetensors").write_bytes(b"\xff" * 8 + b"junk")
    accepted = cli("verify", BF16, "--accept", prog="imageworks-loader")
    assert accepted.exit_code == 0, accepted.stderr
    scan = cli("scan", "--base", str(env.weights), "--update-existing", "--dry-run", "--json", prog=DOWNLOAD)
    assert scan.exit_code == 1 and "header length" in scan.stdout  # what scan makes of the same folder

    doc = normalize_json(cli, exit_code=1)

    row = rows(doc)[BF16]
    assert row["action"] == "error"
    assert "header length" in row["reason"]


def test_an_unreadable_file_is_an_error_row_and_exit_1(cli, env, monkeypatch):
    target = str(env.models[BF16] / "model.safetensors")
    real_open = os.open

    def refusing_open(path, *args, **kwargs):
        if os.fspath(path) == target:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, *args, **kwargs)

    env.edit_discovered(GGUF, falsify)
    monkeypatch.setattr(os, "open", refusing_open)  # root reads anything: chmod 000 would not stop it

    result = normalize(cli, "--rebuild")
    doc = normalize_json(cli, "--rebuild", "--apply", exit_code=1)

    assert result.exit_code == 1
    assert_clean_output(result)
    (line,) = [ln for ln in result.stdout.splitlines() if BF16 in ln]
    assert line.startswith("error")
    assert f"{BF16}: model.safetensors: cannot read {target}: Permission denied" in result.stderr
    row = rows(doc)[BF16]
    assert row["action"] == "error" and row["changes"] == {}
    assert "Permission denied" in row["reason"]
    # the other entries are still handled: the update is written despite the error
    assert rows(doc)[GGUF]["action"] == "update" and doc["written"] == 1
    monkeypatch.setattr(os, "open", real_open)
    assert env.discovered(GGUF)["quantization"] == "q4_k_m"
    assert "download" in env.discovered(BF16)


# --- options ------------------------------------------------------------------------------------


def test_dry_run_and_apply_together_are_a_usage_error(cli, env):
    before = env.files()

    result = normalize(cli, "--dry-run", "--apply")

    assert result.exit_code == 64  # EX_USAGE
    assert "--dry-run and --apply contradict each other" in result.stderr
    assert env.files() == before


def test_json_report_shape(cli, env):
    env.edit_discovered(GGUF, falsify)

    doc = normalize_json(cli, "--rebuild")

    assert doc["rebuild"] is True and doc["dry_run"] is True
    assert isinstance(doc["counts"], dict) and sum(doc["counts"].values()) == len(doc["rows"]) == 4
    assert [r["name"] for r in doc["rows"]] == sorted(ALL)
    for r in doc["rows"]:
        assert isinstance(r["changes"], dict)
        assert all(isinstance(v, list) and len(v) == 2 for v in r["changes"].values())
        assert set(r["changes"]) <= {"format", "quantization", "size_bytes", "file_count", "aggregate"}
