"""Registry clean-up (docs/runbooks/model-downloader.md, 3.4 and 3.7): prune-duplicates, prune-deprecated, purge-logical-only and
purge-imported, through the CLI (imageworks-download / imageworks-loader views) and the library.

Every command is checked the same way: a dry run leaves every file of the registry folder byte-identical (no
backup, no audit line) and lists exactly the expected rows; an apply removes exactly the expected entries from
the expected layers, leaves every other entry as it was, takes a backup holding the layer's previous bytes
(which, copied back, gives the original registry) unless --no-backup, and writes one audit record."""

from __future__ import annotations

import copy
import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from imageworks_models.registry import audit
from imageworks_models.maintain.cleanup import duplicate_groups, is_placeholder, prune_duplicates, purge_imported
from imageworks_models.registry.store import RegistryStore

LAYERS = ("curated", "discovered")
JSON_KEYS = {"dry_run", "written", "backup", "counts", "notes", "rows"}
ROW_KEYS = {"action", "name", "path", "format", "quantization", "backend", "files", "size_bytes", "provider",
            "reason", "served_model_id"}


def digest(char: str) -> str:
    return "sha256:" + char * 64


# -- helpers -------------------------------------------------------------------------------------------------


def build(folder: Path, curated=(), discovered=()) -> Path:
    """Write a registry through the store (so the merged snapshot is fresh), as a real writer would."""
    with RegistryStore(folder).edit() as layers:
        for entry in curated:
            layers.curated.put(copy.deepcopy(entry))
        for entry in discovered:
            layers.discovered.put(copy.deepcopy(entry))
    return folder


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (``None``) under ``folder``."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes()) for p in sorted(folder.rglob("*"))}


def layer_path(folder: Path, kind: str) -> Path:
    return folder / f"model_registry.{kind}.json"


def layer_entries(folder: Path, kind: str) -> dict[str, dict[str, Any]]:
    path = layer_path(folder, kind)
    if not path.exists():
        return {}
    doc = json.loads(path.read_bytes())
    assert doc["schema_version"] == 1
    return {e["name"]: e for e in doc["entries"]}


def all_layers(folder: Path) -> dict[str, dict[str, dict[str, Any]]]:
    return {kind: layer_entries(folder, kind) for kind in LAYERS}


def invoke_json(cli, args: tuple[str, ...], prog: str) -> dict[str, Any]:
    result = cli(*args, "--json", prog=prog)
    assert result.exit_code == 0, result.stderr + result.stdout
    data = json.loads(result.stdout)
    assert set(data) == JSON_KEYS, data
    assert all(set(row) == ROW_KEYS for row in data["rows"]), data["rows"]
    actions = [r["action"] for r in data["rows"]]
    assert data["counts"] == {a: actions.count(a) for a in set(actions)}
    assert data["written"] == (0 if data["dry_run"] else actions.count("remove"))
    return data


def rows_by_name(rows) -> dict[str, tuple[str, str]]:
    """``{name: (action, reason)}``, checking that no entry has two rows."""
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names)), names
    return {r["name"]: (r["action"], r["reason"]) for r in rows}


def check_rows(rows, expected: dict[str, tuple[str, tuple[str, ...]]]) -> None:
    """The rows name exactly the expected entries, with the expected action, and a reason saying each part."""
    got = rows_by_name(rows)
    assert {n: a for n, (a, _) in got.items()} == {n: a for n, (a, _) in expected.items()}
    for name, (_, parts) in expected.items():
        for part in parts:
            assert part in (got[name][1] or ""), (name, got[name][1], part)


def audit_records(folder: Path) -> list[dict[str, Any]]:
    return audit.read(folder.parent / "logs", limit=None)


# -- the scenarios ---------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    prog: str
    dry: tuple[str, ...]  # the arguments of a dry run
    apply: tuple[str, ...]  # the arguments that write
    label: str  # the word in the backup's name
    layers: Callable[[Path], tuple[list[dict], list[dict]]]  # weights folder -> (curated, discovered)
    rows: dict[str, tuple[str, tuple[str, ...]]]  # name -> (action, parts of the reason)
    removed: dict[str, set[str]] = field(default_factory=dict)  # layer -> names removed from it


def duplicates_layers(weights: Path):
    real = weights / "pathmodel"
    real.mkdir(parents=True)
    link = weights / "pathmodel-link"
    link.symlink_to(real, target_is_directory=True)
    (weights / "solo").mkdir()
    src = {"provider": "hf", "repo_id": "org/src", "commit": "c0ffee"}
    curated = [
        {"name": "pathmodel", "backend": "vllm", "display_name": "Path model"},
        {"name": "twin-1", "backend": "vllm", "display_name": "Twin one"},
        {"name": "twin-2", "backend": "vllm", "display_name": "Twin two"},
        {"name": "solo", "backend": "vllm", "roles": ["caption"]},
        {"name": "revmodel", "backend": "llamacpp", "format": "gguf",
         "source": {"provider": "hf", "repo_id": "org/rev", "revision": "v1.0"}},
    ]
    discovered = [
        {"name": "dup-digest", "backend": "vllm", "artifacts": {"aggregate": digest("1")}},
        {"name": "dup-digest-copy", "backend": "vllm", "artifacts": {"aggregate": digest("1")}},
        {"name": "pathmodel", "download": {"path": str(real), "format": "safetensors"}},
        {"name": "pathmodel-link", "backend": "vllm", "download": {"path": str(link), "format": "safetensors"}},
        {"name": "srcmodel", "backend": "vllm", "source": src, "download": {"format": "safetensors"}},
        {"name": "srcmodel-locked", "backend": "vllm", "source": src, "download": {"format": "SafeTensors"},
         "version_lock": {"locked": True}},
        {"name": "revmodel-again", "backend": "llamacpp", "format": "GGUF",
         "source": {"provider": "hf", "repo_id": "org/rev", "revision": "v1.0"}},
        {"name": "twin-1", "artifacts": {"aggregate": digest("2")}},
        {"name": "twin-2", "artifacts": {"aggregate": digest("2")}},
        # one repo and commit, two formats: two different models
        {"name": "fmt-gguf", "backend": "llamacpp", "download": {"format": "gguf"},
         "source": {"provider": "hf", "repo_id": "org/fmt", "commit": "abc123"}},
        {"name": "fmt-st", "backend": "vllm", "download": {"format": "safetensors"},
         "source": {"provider": "hf", "repo_id": "org/fmt", "commit": "abc123"}},
        {"name": "solo", "download": {"path": str(weights / "solo")}, "artifacts": {"aggregate": digest("3")}},
    ]
    return curated, discovered


def deprecated_layers(weights: Path):
    for name in ("old-curated", "old-real", "old-testing", "current"):
        (weights / name).mkdir(parents=True)
    curated = [
        {"name": "old-curated", "backend": "vllm", "display_name": "Old", "flags": {"deprecated": True}},
        {"name": "old-curated-only", "backend": "vllm", "flags": {"deprecated": True}},
        {"name": "current", "backend": "vllm"},
    ]
    discovered = [
        {"name": "old-curated", "download": {"path": str(weights / "old-curated")}},
        {"name": "old-placeholder", "backend": "ollama", "served_model_id": "gemma3:27b",
         "flags": {"deprecated": True}},
        {"name": "old-real", "backend": "vllm", "flags": {"deprecated": True},
         "download": {"path": str(weights / "old-real")}},
        {"name": "old-testing", "backend": "vllm", "flags": {"deprecated": True, "testing": True},
         "download": {"path": str(weights / "old-testing")}},
        {"name": "old-locked", "backend": "vllm", "flags": {"deprecated": True},
         "version_lock": {"locked": True, "expected_aggregate": digest("4")}},
        {"name": "current", "download": {"path": str(weights / "current")}},
        {"name": "trial", "backend": "vllm", "flags": {"testing": True}},  # testing, not deprecated
    ]
    return curated, discovered


def logical_layers(weights: Path):
    (weights / "real").mkdir(parents=True)
    curated = [{"name": "ghost-curated", "backend": "vllm", "display_name": "Described by hand"}]
    discovered = [
        {"name": "ghost", "backend": "vllm"},
        {"name": "ghost-format", "backend": "vllm", "download": {"format": "gguf", "size_bytes": 0}},
        {"name": "ghost-curated", "source": {"provider": "hf", "repo_id": "org/g"}},
        {"name": "with-artifacts", "backend": "vllm", "artifacts": {"files": [{"path": "model.gguf", "size": 3}]}},
        {"name": "ollama-ref", "backend": "ollama", "download": {"path": "ollama:/qwen3:8b"}},
        {"name": "real", "backend": "vllm", "download": {"path": str(weights / "real")}},
        {"name": "path-gone", "backend": "vllm", "download": {"path": str(weights / "nowhere")}},
    ]
    return curated, discovered


def imported_layers(weights: Path):
    (weights / "hf-only").mkdir(parents=True)
    curated = [
        {"name": "hf-curated", "backend": "vllm", "display_name": "HF curated", "roles": ["caption"],
         "source": {"provider": "hf", "repo_id": "org/c"}},
        {"name": "hf-nobackend", "display_name": "Relies on discovered for its backend"},
        {"name": "hf-curated-only", "backend": "vllm", "source": {"provider": "hf", "repo_id": "org/only"}},
    ]
    discovered = [
        {"name": "hf-only", "backend": "vllm", "source": {"provider": "hf", "repo_id": "org/a", "commit": "c1"},
         "download": {"path": str(weights / "hf-only")}},
        {"name": "ollama-only", "backend": "ollama", "source": {"provider": "ollama"},
         "download": {"path": "ollama:/qwen3:8b"}},
        {"name": "hf-curated", "source": {"commit": "c2"}, "download": {"path": str(weights / "hf-curated")}},
        {"name": "hf-nobackend", "backend": "vllm", "source": {"provider": "hf", "repo_id": "org/nb"}},
        {"name": "local-only", "backend": "vllm", "source": {"provider": "local"}},
        {"name": "noprov", "backend": "vllm", "download": {"path": str(weights / "noprov")}},
        {"name": "noprov-src", "backend": "vllm", "source": {"repo_id": "org/x"}},
    ]
    return curated, discovered


# What purge-imported does for each --providers value: rows, and the discovered parts removed.
IMPORTED_HF = {"hf-only": ("remove", ("imported from hf",)),
               "hf-curated": ("remove", ("imported from hf", "curated part kept")),
               "hf-nobackend": ("skip", ("no backend",))}
IMPORTED_OLLAMA = {"ollama-only": ("remove", ("imported from ollama",))}
IMPORTED_LOCAL = {"local-only": ("remove", ("imported from local",))}
IMPORTED = {
    "hf": IMPORTED_HF,
    "ollama": IMPORTED_OLLAMA,
    "hf,ollama": IMPORTED_HF | IMPORTED_OLLAMA,
    " HF , Ollama ": IMPORTED_HF | IMPORTED_OLLAMA,
    "all": IMPORTED_HF | IMPORTED_OLLAMA | IMPORTED_LOCAL,
}


def removed_names(rows: dict[str, tuple[str, tuple[str, ...]]]) -> set[str]:
    return {n for n, (action, _) in rows.items() if action == "remove"}


DEPRECATED_ROWS = {
    "old-curated": ("remove", ("deprecated", "curated part goes too")),
    "old-curated-only": ("remove", ("deprecated placeholder", "curated part goes too")),
    "old-placeholder": ("remove", ("deprecated placeholder",)),
    "old-real": ("remove", ("deprecated",)),
    "old-testing": ("remove", ("deprecated placeholder",)),
    "old-locked": ("skip", ("locked",)),
}
PLACEHOLDER_ROWS = {n: DEPRECATED_ROWS[n] for n in ("old-curated-only", "old-placeholder", "old-testing",
                                                     "old-locked")}

SCENARIOS = {
    "prune-duplicates": Scenario(
        "imageworks-download", ("prune-duplicates", "--dry-run"), ("prune-duplicates",), "prune-duplicates",
        duplicates_layers,
        rows={"dup-digest-copy": ("remove", ("same files", "dup-digest (kept)")),
              "pathmodel-link": ("remove", ("same files", "pathmodel (kept)")),
              "srcmodel": ("remove", ("same source, revision and format", "srcmodel-locked (kept)")),
              "revmodel-again": ("remove", ("same source, revision and format", "revmodel (kept)")),
              "twin-2": ("skip", ("twin-1", "curated"))},
        removed={"discovered": {"dup-digest-copy", "pathmodel-link", "srcmodel", "revmodel-again"}}),
    "prune-deprecated": Scenario(
        "imageworks-download", ("prune-deprecated", "--dry-run"), ("prune-deprecated",), "prune-deprecated",
        deprecated_layers, rows=DEPRECATED_ROWS,
        removed={"curated": {"old-curated", "old-curated-only"},
                 "discovered": {"old-curated", "old-placeholder", "old-real", "old-testing"}}),
    "prune-deprecated-placeholders": Scenario(
        "imageworks-download", ("prune-deprecated", "--placeholders-only", "--dry-run"),
        ("prune-deprecated", "--placeholders-only"), "prune-deprecated",
        deprecated_layers, rows=PLACEHOLDER_ROWS,
        removed={"curated": {"old-curated-only"}, "discovered": {"old-placeholder", "old-testing"}}),
    "purge-logical-only": Scenario(
        "imageworks-download", ("purge-logical-only", "--dry-run"), ("purge-logical-only",), "purge-logical-only",
        logical_layers,
        rows={"ghost": ("remove", ("no files and no curated part",)),
              "ghost-format": ("remove", ("no files and no curated part",))},
        removed={"discovered": {"ghost", "ghost-format"}}),
    "purge-imported": Scenario(
        "imageworks-loader", ("purge-imported", "--providers", "all"), ("purge-imported", "--providers", "all",
                                                                       "--apply"),
        "purge-imported", imported_layers, rows=IMPORTED["all"],
        removed={"discovered": removed_names(IMPORTED["all"])}),
}


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    """The registry folder (named configs, so the audit log goes to ../logs), set for the CLI and library."""
    reg = tmp_path / "configs"
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(reg))
    return reg


@pytest.fixture
def weights(tmp_path) -> Path:
    return tmp_path / "weights"


def make(folder: Path, weights: Path, scenario: Scenario) -> Path:
    curated, discovered = scenario.layers(weights)
    return build(folder, curated, discovered)


# -- every command: dry run, apply, backup, restore, --no-backup -------------------------------------------------


@pytest.mark.parametrize("key", SCENARIOS)
def test_a_dry_run_lists_the_rows_and_changes_no_file(cli, folder, weights, key):
    scenario = SCENARIOS[key]
    make(folder, weights, scenario)
    before = snapshot(folder)
    assert "model_registry.json" in before and not (folder / "backups").exists()

    data = invoke_json(cli, scenario.dry, scenario.prog)

    assert snapshot(folder) == before  # layers, merged snapshot, lock file: the same bytes; no backups/ folder
    assert not (folder.parent / "logs").exists()  # no audit record either
    assert data["dry_run"] is True and data["written"] == 0 and data["backup"] == []
    check_rows(data["rows"], scenario.rows)


@pytest.mark.parametrize("key", SCENARIOS)
def test_a_dry_run_prints_would_and_says_nothing_was_written(cli, folder, weights, key):
    scenario = SCENARIOS[key]
    make(folder, weights, scenario)
    before = snapshot(folder)

    result = cli(*scenario.dry, prog=scenario.prog)

    assert result.exit_code == 0, result.stderr
    assert snapshot(folder) == before
    assert "note: dry run, nothing was written" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["ACTION", "NAME"] and len(lines) == 2 + len(scenario.rows), result.stdout
    for name, (action, _) in scenario.rows.items():
        tokens = ["would", "remove", name] if action == "remove" else [action, name]
        assert any(line.split()[:len(tokens)] == tokens for line in lines[2:]), (name, result.stdout)


@pytest.mark.parametrize("key", SCENARIOS)
def test_apply_removes_exactly_the_planned_entries_after_a_backup_that_restores_them(cli, folder, weights, key):
    scenario = SCENARIOS[key]
    make(folder, weights, scenario)
    before = all_layers(folder)
    before_bytes = {kind: layer_path(folder, kind).read_bytes() for kind in LAYERS}

    data = invoke_json(cli, scenario.apply, scenario.prog)

    assert data["dry_run"] is False
    check_rows(data["rows"], scenario.rows)
    assert data["written"] == len(removed_names(scenario.rows))
    after = all_layers(folder)
    for kind in LAYERS:
        gone = scenario.removed.get(kind, set())
        assert gone <= set(before[kind])
        assert after[kind] == {n: e for n, e in before[kind].items() if n not in gone}, kind
    # the merged snapshot follows the layers
    effective = RegistryStore(folder).load()
    assert effective.from_snapshot
    survivors = (set(before["curated"]) | set(before["discovered"])) - {
        n for n in removed_names(scenario.rows) if n not in after["curated"]}
    assert set(effective.entries) == survivors

    # one backup per changed layer, in backups/, named after the command, holding the layer's old bytes
    changed = [kind for kind in LAYERS if scenario.removed.get(kind)]
    backups = [Path(p) for p in data["backup"]]
    assert len(backups) == len(changed)
    assert sorted(p.name for p in (folder / "backups").iterdir()) == sorted(p.name for p in backups)
    for kind in changed:
        (backup,) = [p for p in backups if p.name.startswith(f"model_registry.{kind}.")]
        assert backup.parent == folder / "backups" and f".{scenario.label}." in backup.name
        assert backup.read_bytes() == before_bytes[kind]

    # one audit record naming the command and the entries it touched
    (rec,) = audit_records(folder)
    assert rec["action"] == "registry-write"
    assert rec["command"] == " ".join([scenario.prog, *scenario.apply, "--json"])
    assert rec["entries"] == sorted(set().union(*scenario.removed.values()))
    assert sorted(rec["backups"]) == sorted(map(str, backups))

    # copying the backups back gives the original registry
    for kind in changed:
        (backup,) = [p for p in backups if p.name.startswith(f"model_registry.{kind}.")]
        shutil.copyfile(backup, layer_path(folder, kind))
    assert all_layers(folder) == before
    assert set(RegistryStore(folder).load().entries) == set(before["curated"]) | set(before["discovered"])


@pytest.mark.parametrize("key", SCENARIOS)
def test_no_backup_writes_no_backup(cli, folder, weights, key):
    scenario = SCENARIOS[key]
    make(folder, weights, scenario)
    before = all_layers(folder)

    data = invoke_json(cli, (*scenario.apply, "--no-backup"), scenario.prog)

    assert data["dry_run"] is False and data["backup"] == [] and data["written"] > 0
    assert not (folder / "backups").exists()
    for kind in LAYERS:
        assert set(layer_entries(folder, kind)) == set(before[kind]) - scenario.removed.get(kind, set())
    (rec,) = audit_records(folder)
    assert rec["backups"] == []


@pytest.mark.parametrize("key", SCENARIOS)
def test_apply_prints_the_count_and_the_backup(cli, folder, weights, key):
    scenario = SCENARIOS[key]
    make(folder, weights, scenario)

    result = cli(*scenario.apply, prog=scenario.prog)

    assert result.exit_code == 0, result.stderr
    n = len(removed_names(scenario.rows))
    assert f"{n} entr{'y' if n == 1 else 'ies'} changed" in result.stderr
    backups = sorted((folder / "backups").iterdir())
    assert backups and all(f"backup: {b}" in result.stderr for b in backups)
    assert "dry run" not in result.stderr
    for name in removed_names(scenario.rows):
        assert any(line.split()[:2] == ["remove", name] for line in result.stdout.splitlines()), result.stdout


@pytest.mark.parametrize("key", SCENARIOS)
def test_a_second_apply_finds_nothing_to_remove_and_writes_nothing(cli, folder, weights, key):
    scenario = SCENARIOS[key]
    make(folder, weights, scenario)
    invoke_json(cli, scenario.apply, scenario.prog)
    before = snapshot(folder)

    data = invoke_json(cli, scenario.apply, scenario.prog)

    assert data["written"] == 0 and data["backup"] == []
    assert {r["action"] for r in data["rows"]} <= {"skip"}
    assert snapshot(folder) == before
    assert len(audit_records(folder)) == 1  # only the first apply's


# -- prune-duplicates: what is a duplicate, and which one stays ----------------------------------------------------


def test_duplicates_by_digest_real_path_and_source_but_not_by_repo_alone(tmp_path):
    real = tmp_path / "m"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    src = {"provider": "hf", "repo_id": "org/m", "commit": "abc"}
    entries = {e["name"]: e for e in [
        {"name": "d1", "artifacts": {"aggregate": digest("a")}},
        {"name": "d2", "artifacts": {"aggregate": digest("a")}},
        {"name": "d3", "artifacts": {"aggregate": digest("b")}},
        {"name": "p1", "download": {"path": str(real)}},
        {"name": "p2", "download": {"path": str(tmp_path / "link")}},
        {"name": "p3", "download": {"path": str(real) + "/"}},
        {"name": "s1", "source": src, "download": {"format": "gguf"}},
        {"name": "s2", "source": {**src, "commit": None, "revision": "abc"}, "format": "GGUF"},
        {"name": "s3", "source": src, "download": {"format": "safetensors"}},  # another format
        {"name": "s4", "source": {**src, "commit": "def"}, "download": {"format": "gguf"}},  # another commit
        {"name": "s5", "source": {**src, "provider": "modelscope"}, "download": {"format": "gguf"}},
        {"name": "s6", "source": {"provider": "hf", "repo_id": "org/m"}, "download": {"format": "gguf"}},  # no rev
        {"name": "r1", "download": {"path": "relative/m"}},  # not absolute: not comparable
        {"name": "r2", "download": {"path": "relative/m"}},
    ]}

    groups = {(why, tuple(sorted(e["name"] for e in members))) for why, members in duplicate_groups(entries)}

    assert groups == {("same files", ("d1", "d2")), ("same files", ("p1", "p2", "p3")),
                      ("same source, revision and format", ("s1", "s2"))}


def test_entries_sharing_a_repo_in_two_formats_are_left_alone(cli, folder):
    src = {"provider": "hf", "repo_id": "Qwen/Qwen3-8B", "commit": "9c925d6"}
    build(folder, discovered=[
        {"name": "qwen3-8b-vllm", "backend": "vllm", "source": src, "download": {"format": "safetensors"}},
        {"name": "qwen3-8b-gguf", "backend": "llamacpp", "source": src, "download": {"format": "gguf"}},
        {"name": "qwen3-8b-awq", "backend": "vllm", "source": src, "format": "awq"},
    ])
    before = snapshot(folder)

    data = invoke_json(cli, ("prune-duplicates",), "imageworks-download")

    assert data["rows"] == [] and data["written"] == 0
    assert snapshot(folder) == before


# (curated parts, discovered parts, the name kept); every pair shares one aggregate digest.
D = {"artifacts": {"aggregate": digest("c")}}
LOCK = {"version_lock": {"locked": True}}
KEEP_CASES = {
    "curated-over-discovered-only": (
        [{"name": "zz-curated-but-long", "backend": "vllm"}],
        [{"name": "zz-curated-but-long", **D}, {"name": "a", "backend": "vllm", **D}],
        "zz-curated-but-long"),
    "locked-over-unlocked": (
        [], [{"name": "locked-but-long", "backend": "vllm", **D, **LOCK}, {"name": "b", "backend": "vllm", **D}],
        "locked-but-long"),
    "installed-over-not": (
        [], [{"name": "installed-but-long", "backend": "vllm", **D, "download": {"path": "{weights}/here"}},
             {"name": "c", "backend": "vllm", **D, "download": {"path": "{weights}/not-here"}}],
        "installed-but-long"),
    "current-over-deprecated": (
        [], [{"name": "current-but-long", "backend": "vllm", **D},
             {"name": "d", "backend": "vllm", **D, "flags": {"deprecated": True}}],
        "current-but-long"),
    "shortest-name": (
        [], [{"name": "abc", "backend": "vllm", **D}, {"name": "ab", "backend": "vllm", **D}], "ab"),
    # the order of the criteria
    "curated-before-locked": (
        [{"name": "curated-unlocked", "backend": "vllm"}],
        [{"name": "curated-unlocked", **D}, {"name": "e", "backend": "vllm", **D, **LOCK}],
        "curated-unlocked"),
    "locked-before-installed": (
        [], [{"name": "locked-missing", "backend": "vllm", **D, **LOCK, "download": {"path": "{weights}/gone"}},
             {"name": "f", "backend": "vllm", **D, "download": {"path": "{weights}/here"}}],
        "locked-missing"),
    "installed-before-current": (
        [], [{"name": "installed-deprecated", "backend": "vllm", **D, "flags": {"deprecated": True},
              "download": {"path": "{weights}/here"}},
             {"name": "g", "backend": "vllm", **D, "download": {"path": "{weights}/gone"}}],
        "installed-deprecated"),
    "deprecated-before-name": (
        [], [{"name": "long-but-current", "backend": "vllm", **D},
             {"name": "h", "backend": "vllm", **D, "flags": {"deprecated": True}}],
        "long-but-current"),
}


def _fill(entry: dict, weights: Path) -> dict:
    return json.loads(json.dumps(entry).replace("{weights}", str(weights)))


@pytest.mark.parametrize("case", KEEP_CASES)
def test_the_best_of_a_group_is_kept(cli, folder, weights, case):
    curated, discovered, kept = KEEP_CASES[case]
    (weights / "here").mkdir(parents=True)
    build(folder, curated, [_fill(e, weights) for e in discovered])
    names = {e["name"] for e in discovered}
    (other,) = names - {kept}

    data = invoke_json(cli, ("prune-duplicates",), "imageworks-download")

    check_rows(data["rows"], {other: ("remove", (f"same files as {kept} (kept)",))})
    assert set(layer_entries(folder, "discovered")) == {kept}


def test_a_curated_duplicate_is_a_skip_and_both_stay(cli, folder):
    build(folder, [{"name": "mine-a", "backend": "vllm"}, {"name": "mine-b", "backend": "vllm"}],
          [{"name": "mine-a", **D}, {"name": "mine-b", **D}, {"name": "machine", "backend": "vllm", **D}])
    before = all_layers(folder)

    data = invoke_json(cli, ("prune-duplicates",), "imageworks-download")

    check_rows(data["rows"], {"mine-b": ("skip", ("mine-a", "curated", "by hand")),
                              "machine": ("remove", ("mine-a (kept)",))})
    assert data["counts"] == {"skip": 1, "remove": 1} and data["written"] == 1
    assert layer_entries(folder, "curated") == before["curated"]
    assert layer_entries(folder, "discovered") == {n: e for n, e in before["discovered"].items() if n != "machine"}


def test_duplicates_through_a_symlinked_folder(cli, folder, weights):
    real = weights / "store" / "llava"
    real.mkdir(parents=True)
    (weights / "alias").symlink_to(weights / "store", target_is_directory=True)
    build(folder, discovered=[
        {"name": "llava", "backend": "vllm", "download": {"path": str(real)}},
        {"name": "llava-via-link", "backend": "vllm", "download": {"path": str(weights / "alias" / "llava")}},
        {"name": "llava-other", "backend": "vllm", "download": {"path": str(weights / "store" / "other")}},
    ])

    data = invoke_json(cli, ("prune-duplicates", "--dry-run"), "imageworks-download")

    check_rows(data["rows"], {"llava-via-link": ("remove", ("same files as llava (kept)",))})
    assert data["rows"][0]["path"] == str(weights / "alias" / "llava")  # as recorded, not resolved


def test_same_real_folder_is_a_duplicate_even_when_only_one_entry_has_a_digest(cli, folder, weights):
    real = weights / "qwen"
    real.mkdir(parents=True)
    build(folder, discovered=[
        {"name": "qwen", "backend": "vllm", "download": {"path": str(real)}, "artifacts": {"aggregate": digest("e")}},
        {"name": "qwen-rescanned", "backend": "vllm", "download": {"path": str(real)}},
    ])

    data = invoke_json(cli, ("prune-duplicates", "--dry-run"), "imageworks-download")

    check_rows(data["rows"], {"qwen-rescanned": ("remove", ("same files as qwen (kept)",))})


def test_an_entry_a_row_names_as_kept_is_never_removed(cli, folder):
    src = {"provider": "hf", "repo_id": "org/m", "commit": "abc"}
    build(folder, discovered=[
        {"name": "a", "backend": "vllm", "source": src, "format": "gguf"},  # best: shortest name
        {"name": "bb", "backend": "vllm", "source": src, "format": "gguf", "artifacts": {"aggregate": digest("f")}},
        {"name": "ccc", "backend": "vllm", "artifacts": {"aggregate": digest("f")}},
    ])

    data = invoke_json(cli, ("prune-duplicates",), "imageworks-download")

    survivors = set(layer_entries(folder, "discovered"))
    assert survivors == {"a"}  # all three register one model
    kept = {r["reason"].split(" as ", 1)[1].split(" (kept)")[0] for r in data["rows"] if r["action"] == "remove"}
    assert kept <= survivors, data["rows"]


# -- prune-deprecated ---------------------------------------------------------------------------------------------


def test_placeholders(tmp_path):
    assert is_placeholder({"name": "x"})
    assert is_placeholder({"name": "x", "download": {"format": "gguf"}})
    assert is_placeholder({"name": "x", "flags": {"testing": True}, "download": {"path": str(tmp_path)}})
    assert not is_placeholder({"name": "x", "download": {"path": str(tmp_path)}})
    assert not is_placeholder({"name": "x", "flags": {"deprecated": True}, "download": {"path": "ollama:/q:8b"}})


def test_placeholders_only_keeps_deprecated_entries_with_real_files(cli, folder, weights):
    make(folder, weights, SCENARIOS["prune-deprecated"])

    invoke_json(cli, ("prune-deprecated", "--placeholders-only"), "imageworks-download")

    merged = RegistryStore(folder).load().entries
    assert merged["old-real"]["flags"]["deprecated"] and merged["old-curated"]["flags"]["deprecated"]
    assert {"old-real", "old-curated", "old-locked", "current", "trial"} == set(merged)
    assert set(layer_entries(folder, "curated")) == {"old-curated", "current"}


def test_a_locked_deprecated_entry_is_skipped_until_unlocked(cli, folder, weights):
    build(folder, discovered=[{"name": "old-locked", "backend": "vllm", "flags": {"deprecated": True}, **LOCK}])
    before = snapshot(folder)

    data = invoke_json(cli, ("prune-deprecated",), "imageworks-download")

    check_rows(data["rows"], {"old-locked": ("skip", ("unlock it first",))})
    assert data["written"] == 0 and data["backup"] == [] and snapshot(folder) == before

    with RegistryStore(folder).edit() as layers:
        layers.discovered.get("old-locked")["version_lock"]["locked"] = False
    data = invoke_json(cli, ("prune-deprecated",), "imageworks-download")
    check_rows(data["rows"], {"old-locked": ("remove", ("deprecated placeholder",))})
    assert layer_entries(folder, "discovered") == {}


# -- purge-logical-only -------------------------------------------------------------------------------------------


def test_logical_only_keeps_curated_store_references_artifacts_and_recorded_paths(cli, folder, weights):
    make(folder, weights, SCENARIOS["purge-logical-only"])
    before = all_layers(folder)

    invoke_json(cli, ("purge-logical-only",), "imageworks-download")

    after = all_layers(folder)
    assert after["curated"] == before["curated"]
    assert set(after["discovered"]) == {"ghost-curated", "with-artifacts", "ollama-ref", "real", "path-gone"}
    assert after["discovered"]["ghost-curated"] == before["discovered"]["ghost-curated"]


# -- purge-imported -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("providers", IMPORTED)
def test_purge_imported_forgets_only_the_providers_asked_for(cli, folder, weights, providers):
    make(folder, weights, SCENARIOS["purge-imported"])
    before = all_layers(folder)
    expected = IMPORTED[providers]

    dry = invoke_json(cli, ("purge-imported", "--providers", providers), "imageworks-loader")
    data = invoke_json(cli, ("purge-imported", "--providers", providers, "--apply"), "imageworks-loader")

    assert dry["dry_run"] is True and dry["rows"] == data["rows"]
    check_rows(data["rows"], expected)
    gone = removed_names(expected)
    after = all_layers(folder)
    assert after["curated"] == before["curated"]  # curated parts always stay
    assert after["discovered"] == {n: e for n, e in before["discovered"].items() if n not in gone}
    assert {"noprov", "noprov-src"} <= set(after["discovered"])  # no provider: never touched


def test_purge_imported_keeps_the_curated_part_as_the_whole_entry(cli, folder, weights):
    make(folder, weights, SCENARIOS["purge-imported"])
    before = all_layers(folder)

    invoke_json(cli, ("purge-imported", "--providers", "hf", "--apply"), "imageworks-loader")

    entry = RegistryStore(folder).load(use_snapshot=False).get("hf-curated")
    assert entry["display_name"] == "HF curated" and entry["backend"] == "vllm" and entry["roles"] == ["caption"]
    assert entry["source"] == {"provider": "hf", "repo_id": "org/c", "revision": None, "commit": None}
    assert not entry.get("download")
    # the skipped entry (its backend comes from discovered) is whole
    assert layer_entries(folder, "discovered")["hf-nobackend"] == before["discovered"]["hf-nobackend"]


def test_purge_imported_without_apply_is_a_dry_run(cli, folder, weights):
    make(folder, weights, SCENARIOS["purge-imported"])
    before = snapshot(folder)

    result = cli("purge-imported", prog="imageworks-loader")  # default: --providers all, no --apply

    assert result.exit_code == 0, result.stderr
    assert "note: dry run, nothing was written" in result.stderr
    assert snapshot(folder) == before and not (folder.parent / "logs").exists()
    for name in removed_names(IMPORTED["all"]):
        assert any(line.split()[:3] == ["would", "remove", name] for line in result.stdout.splitlines()), \
            result.stdout
    assert "noprov" not in result.stdout


def test_purge_imported_library_default_is_a_dry_run(folder, weights):
    make(folder, weights, SCENARIOS["purge-imported"])
    before = snapshot(folder)

    report = purge_imported(["hf"])

    assert report.dry_run and report.written == 0 and report.counts() == {"remove": 2, "skip": 1}
    assert snapshot(folder) == before


def test_purge_imported_for_an_unknown_provider_changes_nothing(cli, folder, weights):
    make(folder, weights, SCENARIOS["purge-imported"])
    before = snapshot(folder)

    result = cli("purge-imported", "--providers", "modelscope", "--apply", "--json", prog="imageworks-loader")

    assert result.exit_code == 64 and "unknown provider 'modelscope'" in result.stderr and result.stdout == ""
    assert snapshot(folder) == before


# -- concurrency: the apply plans again under the lock ------------------------------------------------------------


def test_apply_plans_from_the_registry_as_it_is_when_applied(cli, folder):
    build(folder, discovered=[{"name": "m", "backend": "vllm", **D}, {"name": "m-copy", "backend": "vllm", **D},
                              {"name": "n", "backend": "vllm", "artifacts": {"aggregate": digest("9")}}])
    planned = invoke_json(cli, ("prune-duplicates", "--dry-run"), "imageworks-download")
    assert [r["name"] for r in planned["rows"]] == ["m-copy"]

    # another writer, between the dry run and the apply: a new duplicate of n, and m-copy gone already
    with RegistryStore(folder).edit() as layers:
        layers.discovered.put({"name": "n-again", "backend": "vllm", "artifacts": {"aggregate": digest("9")}})
        layers.discovered.remove("m-copy")
    data = invoke_json(cli, ("prune-duplicates",), "imageworks-download")

    check_rows(data["rows"], {"n-again": ("remove", ("same files as n (kept)",))})
    assert set(layer_entries(folder, "discovered")) == {"m", "n"}


def test_apply_waits_for_a_writer_holding_the_lock_and_sees_its_change(folder):
    build(folder, discovered=[{"name": "m", "backend": "vllm", **D}])
    inside, release, reports, errors = threading.Event(), threading.Event(), [], []

    def writer():
        try:
            with RegistryStore(folder).edit() as layers:
                inside.set()
                assert release.wait(10)
                layers.discovered.put({"name": "m-late-copy", "backend": "vllm", **D})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def applier():
        try:
            reports.append(prune_duplicates())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    w = threading.Thread(target=writer)
    w.start()
    assert inside.wait(10)
    assert prune_duplicates(dry_run=True).rows == []  # a dry run does not wait for the lock: nothing yet
    a = threading.Thread(target=applier)
    a.start()
    time.sleep(0.3)
    assert a.is_alive()  # waiting for the writer's lock
    release.set()
    w.join(10)
    a.join(10)
    assert not errors, errors
    (report,) = reports
    assert [(r.action, r.name) for r in report.rows] == [("remove", "m-late-copy")]
    assert set(layer_entries(folder, "discovered")) == {"m"}
