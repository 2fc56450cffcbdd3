"""The bad-file corpus (RELIABILITY B1-B3, B4, B6, B7, B10-B14).

Every case writes registry files into a fresh folder, runs a read command against it and checks the
promise of the checklist: exit code 1, one clear ``error:`` line naming the file and the place (line:column
for JSON syntax, the JSON path for validation), no traceback, nothing on stdout, and every file in the
folder byte-identical afterwards (no snapshot, backup or ``*.corrupt-*`` file appears; only the writers'
lock file may be created).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from imageworks_models.errors import ReadOnlyRegistryError
from imageworks_models.registry.store import (CURATED_FILE, DISCOVERED_FILE, LOCK_FILE, RegistryStore,
                                              dump_document)

LIST = ("list", "--json", "--include-non-installed")

GOOD_ENTRY = {"name": "good-model", "backend": "vllm", "display_name": "Good"}
GOOD_DISCOVERED = dump_document([{"name": "good-model", "download": {"path": "/nowhere/good", "size_bytes": 10}}])


def doc(entries, *, version=1, **extra) -> str:
    return json.dumps({"schema_version": version, **extra, "entries": entries}, indent=2) + "\n"


def folder_digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def make_registry(tmp_path: Path, curated: str | bytes | None = None, discovered: str | bytes | None = GOOD_DISCOVERED,
                  ) -> Path:
    d = tmp_path / "reg"
    d.mkdir()
    for name, content in ((CURATED_FILE, curated), (DISCOVERED_FILE, discovered)):
        if content is not None:
            (d / name).write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return d


def assert_refused(cli, d: Path, bad_file: str, *args: str) -> list[str]:
    """Run a read command on ``d`` and check the common promises; return stderr's lines."""
    before = folder_digests(d)
    result = cli("--registry-dir", str(d), *(args or LIST))
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    assert str(d / bad_file) in lines[0], lines[0]
    after = folder_digests(d)
    assert set(after) - set(before) <= {LOCK_FILE}, f"new files: {set(after) - set(before)}"
    assert {k: after[k] for k in before} == before, "a file in the registry folder changed"
    return lines


def syntax_place(line: str, bad_file: str) -> tuple[int, int]:
    m = re.search(re.escape(bad_file) + r":(\d+):(\d+): ", line)
    assert m, f"no line:column in {line!r}"
    return int(m.group(1)), int(m.group(2))


# --- B1: truncated, empty --------------------------------------------------------------------------


def test_truncated_json_names_file_line_and_column(cli, tmp_path):
    text = doc([GOOD_ENTRY, {"name": "second", "backend": "ollama", "roles": ["caption"]}])
    cut = text[: len(text) // 2 + 7]
    d = make_registry(tmp_path, cut)
    lines = assert_refused(cli, d, CURATED_FILE)
    line, col = syntax_place(lines[0], CURATED_FILE)
    assert 1 <= line <= cut.count("\n") + 1
    assert col >= 1
    assert "invalid JSON" in lines[0] and "truncated" in lines[0]


def test_truncated_discovered_layer_is_named(cli, tmp_path):
    d = make_registry(tmp_path, doc([GOOD_ENTRY]), GOOD_DISCOVERED[:-20])
    lines = assert_refused(cli, d, DISCOVERED_FILE)
    syntax_place(lines[0], DISCOVERED_FILE)


def test_truncated_json_with_show(cli, tmp_path):
    d = make_registry(tmp_path, doc([GOOD_ENTRY])[:40])
    lines = assert_refused(cli, d, CURATED_FILE, "show", "good-model")
    syntax_place(lines[0], CURATED_FILE)


@pytest.mark.parametrize("content", [b"", b"   \n\t\r\n  \n"], ids=["empty", "whitespace-only"])
def test_empty_file_is_not_an_empty_registry(cli, tmp_path, content):
    d = make_registry(tmp_path, content)
    lines = assert_refused(cli, d, CURATED_FILE)
    assert "empty" in lines[0]


# --- B2: wrong encoding, BOM -------------------------------------------------------------------------


def test_utf8_bom_is_refused(cli, tmp_path):
    d = make_registry(tmp_path, b"\xef\xbb\xbf" + doc([GOOD_ENTRY]).encode())
    lines = assert_refused(cli, d, CURATED_FILE)
    assert "byte-order mark" in lines[0]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_file_is_refused(cli, tmp_path, codec):
    d = make_registry(tmp_path, doc([GOOD_ENTRY]).encode(codec))
    lines = assert_refused(cli, d, CURATED_FILE)
    assert "UTF-16" in lines[0]


def test_invalid_utf8_byte_names_line_and_column(cli, tmp_path):
    text = doc([{"name": "good-model", "backend": "vllm", "display_name": "cafXX"}])
    lineno, line = next((i + 1, ln) for i, ln in enumerate(text.splitlines()) if "cafXX" in ln)
    column = line.index("XX") + 1
    data = text.encode().replace(b"XX", b"\xe9")  # Latin-1 e-acute: not valid UTF-8
    d = make_registry(tmp_path, data)
    lines = assert_refused(cli, d, CURATED_FILE)
    assert syntax_place(lines[0], CURATED_FILE) == (lineno, column)
    assert "UTF-8" in lines[0] and "0xe9" in lines[0]


# --- B6: duplicate keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("text, key, where", [
    ('{"schema_version": 1, "entries": [{"name": "good-model", "backend": "vllm", "backend": "ollama"}]}',
     "backend", "entries[0]"),
    ('{"schema_version": 1, "entries": [{"name": "a", "backend": "vllm"},\n'
     ' {"name": "b", "backend": "vllm", "backend_config": {"port": 8000, "host": "h", "port": 8001}}]}',
     "port", "entries[1].backend_config"),
    ('{"schema_version": 1, "entries": [], "entries": [{"name": "a", "backend": "vllm"}]}', "entries", "$"),
    ('{"schema_version": 1, "schema_version": 1, "entries": []}', "schema_version", "$"),
], ids=["in-entry", "nested-backend_config", "top-level-entries", "top-level-schema_version"])
def test_duplicate_keys_are_detected(cli, tmp_path, text, key, where):
    d = make_registry(tmp_path, text)
    lines = assert_refused(cli, d, CURATED_FILE)
    assert f"duplicate key {key!r}" in lines[0]
    assert f"at {where} " in lines[0], lines[0]


# --- B3 / B14: validation errors, named by JSON path -----------------------------------------------------


def _problem_lines(lines: list[str]) -> list[str]:
    return [ln.strip() for ln in lines[1:] if ln.startswith("  ")]


@pytest.mark.parametrize("bad, path", [
    ({"backend_config": {"port": "abc"}}, "entries[1] ('bad-model').backend_config.port"),
    ({"backend_config": {"port": -1}}, "entries[1] ('bad-model').backend_config.port"),
    ({"backend_config": {"port": 70000}}, "entries[1] ('bad-model').backend_config.port"),
    ({"capabilities": {"vision": "yes"}}, "entries[1] ('bad-model').capabilities.vision"),
    ({"capabilities": {"vision": 1}}, "entries[1] ('bad-model').capabilities.vision"),
    ({"capabilities": {"telepathy": True}}, "entries[1] ('bad-model').capabilities"),
    ({"backend": "Not A Backend"}, "entries[1] ('bad-model').backend"),
    ({"roles": "caption"}, "entries[1] ('bad-model').roles"),
], ids=["port-string", "port-negative", "port-too-big", "capability-str", "capability-int", "capability-unknown",
        "backend-bad", "roles-not-list"])
def test_wrong_types_are_named_by_json_path(cli, tmp_path, bad, path):
    entries = [GOOD_ENTRY, {"name": "bad-model", "backend": "vllm", **bad}]
    d = make_registry(tmp_path, doc(entries))
    lines = assert_refused(cli, d, CURATED_FILE)
    assert "1 invalid value" in lines[0]
    problems = _problem_lines(lines)
    assert len(problems) == 1 and problems[0].startswith(path + ":"), lines
    if "telepathy" in str(bad):
        assert "telepathy" in problems[0]


def test_non_bool_capability_does_not_smuggle_in_unknown_keys(cli, tmp_path):
    # A lax "yes" once made the whole map skip the synonym and unknown-key checks.
    entries = [GOOD_ENTRY, {"name": "bad-model", "backend": "vllm",
                            "capabilities": {"vision": "yes", "telepathy": True}}]
    d = make_registry(tmp_path, doc(entries))
    lines = assert_refused(cli, d, CURATED_FILE)
    problems = _problem_lines(lines)
    assert problems and all(p.startswith("entries[1] ('bad-model').capabilities") for p in problems)


def test_wrong_type_with_show(cli, tmp_path):
    d = make_registry(tmp_path, doc([{"name": "good-model", "backend": "vllm", "backend_config": {"port": "abc"}}]))
    lines = assert_refused(cli, d, CURATED_FILE, "show", "good-model")
    assert any(ln.strip().startswith("entries[0] ('good-model').backend_config.port:") for ln in lines)


def test_all_validation_errors_reported_at_once(cli, tmp_path):
    entries = [
        {"name": "m0", "backend": "vllm", "backend_config": {"port": "abc"}},
        {"name": "m1", "backend": "vllm"},
        {"name": "m2", "backend": "vllm", "capabilities": {"vision": "3"}},
        {"name": "m3", "backend": "vllm", "backend_config": {"port": 0}, "flags": {"deprecated": "maybe"}},
        {"name": "has space", "backend": "vllm"},
    ]
    d = make_registry(tmp_path, doc(entries))
    lines = assert_refused(cli, d, CURATED_FILE)
    problems = _problem_lines(lines)
    assert "5 invalid values" in lines[0]
    expected = ["entries[0] ('m0').backend_config.port", "entries[2] ('m2').capabilities.vision",
                "entries[3] ('m3').backend_config.port", "entries[3] ('m3').flags.deprecated",
                "entries[4] ('has space').name"]
    assert len(problems) == len(expected)
    for want in expected:
        assert sum(p.startswith(want + ":") for p in problems) == 1, (want, problems)


# --- B7: duplicate logical names ---------------------------------------------------------------------


def test_duplicate_name_exact(cli, tmp_path):
    d = make_registry(tmp_path, doc([{"name": "dup", "backend": "vllm"}, {"name": "dup", "backend": "ollama"}]))
    lines = assert_refused(cli, d, CURATED_FILE)
    assert _problem_lines(lines) == ["entries[1] ('dup'): duplicate name 'dup' (also entries[0])"]


def test_duplicate_name_differing_only_by_case(cli, tmp_path):
    d = make_registry(tmp_path, doc([{"name": "Qwen-7B", "backend": "vllm"}, {"name": "qwen-7b", "backend": "vllm"}]))
    lines = assert_refused(cli, d, CURATED_FILE)
    [problem] = _problem_lines(lines)
    assert problem.startswith("entries[1] ('qwen-7b'):")
    assert "'Qwen-7B'" in problem and "case" in problem


def test_duplicate_name_differing_only_by_unicode_form(cli, tmp_path):
    # Fullwidth "Ｑｗｅｎ" is "Qwen" under NFKC: the second entry must never become a second model.
    fullwidth = "\uff31\uff57\uff45\uff4e-7b"
    text = json.dumps({"schema_version": 1, "entries": [{"name": "Qwen-7b", "backend": "vllm"},
                                                        {"name": fullwidth, "backend": "vllm"}]},
                      ensure_ascii=False, indent=2)
    d = make_registry(tmp_path, text)
    lines = assert_refused(cli, d, CURATED_FILE)
    [problem] = _problem_lines(lines)
    assert problem.startswith(f"entries[1] ({fullwidth!r})")


def test_same_name_in_discovered_layer_twice(cli, tmp_path):
    disc = doc([{"name": "good-model", "download": {"path": "/a"}}, {"name": "GOOD-MODEL", "download": {"path": "/b"}}])
    d = make_registry(tmp_path, doc([GOOD_ENTRY]), disc)
    lines = assert_refused(cli, d, DISCOVERED_FILE)
    [problem] = _problem_lines(lines)
    assert problem.startswith("entries[1] ('GOOD-MODEL'):")


# --- B10-B13: schema_version -----------------------------------------------------------------------


def test_missing_schema_version(cli, tmp_path):
    d = make_registry(tmp_path, json.dumps({"entries": [GOOD_ENTRY]}))
    lines = assert_refused(cli, d, CURATED_FILE)
    assert "schema_version" in lines[0]


@pytest.mark.parametrize("version", ['"1"', "true", "1.5", "0", "-1", "null"])
def test_mistyped_schema_version(cli, tmp_path, version):
    d = make_registry(tmp_path, '{"schema_version": %s, "entries": []}\n' % version)
    lines = assert_refused(cli, d, CURATED_FILE)
    assert "schema_version" in lines[0]
    assert version.strip('"') in lines[0] or version in ("true", "null")


def test_top_level_string(cli, tmp_path):
    d = make_registry(tmp_path, '"hello"\n')
    lines = assert_refused(cli, d, CURATED_FILE)
    assert "top level" in lines[0]


@pytest.mark.parametrize("entries", ["{}", '"m1"', "null", "3"])
def test_entries_not_a_list(cli, tmp_path, entries):
    d = make_registry(tmp_path, '{"schema_version": 1, "entries": %s}\n' % entries)
    lines = assert_refused(cli, d, CURATED_FILE)
    assert '"entries"' in lines[0] and "list" in lines[0]


def test_entry_not_an_object(cli, tmp_path):
    d = make_registry(tmp_path, doc([GOOD_ENTRY, "just-a-name"]))
    lines = assert_refused(cli, d, CURATED_FILE)
    assert _problem_lines(lines)[0].startswith("entries[1]:")


def test_newer_schema_reads_but_refuses_writes(cli, tmp_path):
    text = doc([GOOD_ENTRY, {"name": "newer", "backend": "vllm", "future_field": {"x": 1}}], version=2)
    d = make_registry(tmp_path, text)
    before = folder_digests(d)
    result = cli("--registry-dir", str(d), *LIST)
    assert result.exit_code == 0, result.stderr
    assert {r["name"] for r in json.loads(result.stdout)} == {"good-model", "newer"}
    assert folder_digests(d) == before  # a read-only registry gets no snapshot either

    store = RegistryStore(d)
    with pytest.raises(ReadOnlyRegistryError) as info:
        with store.edit() as layers:
            layers.curated.get("newer")["display_name"] = "changed"
    assert "schema_version 2" in str(info.value) and CURATED_FILE in str(info.value)
    after = folder_digests(d)
    assert set(after) - set(before) <= {LOCK_FILE}
    assert {k: after[k] for k in before} == before


# --- dynamic fields in curated -----------------------------------------------------------------------


@pytest.mark.parametrize("field, value, path", [
    ("download", {"path": "/weights/x"}, "download"),
    ("artifacts", {"aggregate": "sha256:" + "a" * 64, "files": []}, "artifacts"),
    ("version_lock", {"locked": True}, "version_lock"),
    ("source", {"provider": "hf", "repo_id": "a/b", "commit": "0123abcd"}, "source.commit"),
])
def test_dynamic_field_in_curated_is_refused(cli, tmp_path, field, value, path):
    d = make_registry(tmp_path, doc([GOOD_ENTRY, {"name": "dyn-model", "backend": "vllm", field: value}]))
    lines = assert_refused(cli, d, CURATED_FILE)
    [problem] = _problem_lines(lines)
    assert problem.startswith(f"entries[1] ('dyn-model').{path}:"), problem
    assert DISCOVERED_FILE in problem


def test_dynamic_field_in_discovered_is_fine(cli, tmp_path):
    disc = doc([{"name": "good-model", "source": {"provider": "hf", "commit": "0123abcd"},
                 "version_lock": {"locked": True}}])
    d = make_registry(tmp_path, doc([GOOD_ENTRY]), disc)
    result = cli("--registry-dir", str(d), *LIST)
    assert result.exit_code == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["locked"] is True


# --- B4: unknown fields in curated are kept --------------------------------------------------------------


def test_unknown_fields_in_curated_are_kept_across_a_write(cli, tmp_path):
    entry = {"name": "good-model", "display_name": "Good", "backend": "vllm",
             "x_team_notes": {"owner": "ana", "tickets": [1, 2]},
             "backend_config": {"port": 8000, "x_numa_node": 1}}
    d = make_registry(tmp_path, doc([entry], comment="kept at the top level too"))
    result = cli("--registry-dir", str(d), *LIST)
    assert result.exit_code == 0, result.stderr

    with RegistryStore(d).edit() as layers:
        layers.curated.get("good-model")["display_name"] = "Renamed"
    written = json.loads((d / CURATED_FILE).read_text())
    [saved] = written["entries"]
    assert saved["display_name"] == "Renamed"
    assert saved["x_team_notes"] == {"owner": "ana", "tickets": [1, 2]}
    assert saved["backend_config"]["x_numa_node"] == 1
    assert written["comment"] == "kept at the top level too"
    assert list(written)[0] == "schema_version"


# --- the fast strict parse (registry/jsonio.py `_fast_loads`) ----------------------------------------------------
# loads_strict parses with orjson first and takes its exact path whenever orjson's result might differ from the
# exact path's or a check might fail; these hold the fast path to that.

ACCEPTED = [
    b'{"schema_version": 1, "entries": [{"name": "a", "n": -922337203685477580, "m": 999999999999999999}]}',
    b'{"a": 1.5, "b": -0.0, "c": 1e-400, "d": 2.2250738585072011e-308, "e": 0.1, "f": 1E+2, "g": [true, false, null]}',
    b'{"d": "sha256:1234567890123456789012345678901234567890123456789012345678901234", "k:1": "x:y"}',
    b'{"s": "\\ud83d\\ude00 \\u00e9 \\" \\\\ \\/ \\n", "t": "\xc3\xa9"}',
    b'[' * 64 + b']' * 64,
    b' \t\r\n{"a" :\n [ 1 , 2 ] } \n',
]
REFUSED = [
    b'{"a": 1, "a": 2}', b'{"a": {"b": 1, "b": 1}}', b'[{"k": 1, "k\\u003a": 2, "k": 3}]',
    b'[9223372036854775808]', b'[-9223372036854775809]', b'{"a": 18446744073709551616}', b'[1' + b'0' * 30 + b']',
    b'[NaN]', b'[-Infinity]', b'[1e400]', b'["\\ud800"]', b'\xef\xbb\xbf{}', b'{"a": "\xff"}',
    b'[' * 65 + b']' * 65, b'[{"a": ' * 40 + b'1' + b'}]' * 40, b'[' * 900 + b']' * 900, b'{"a": 1,}', b'{"a": 1} x', b'\x0c{}',
]


@pytest.mark.parametrize("data", ACCEPTED)
def test_the_fast_parse_gives_what_json_gives(data):
    from imageworks_models.registry.jsonio import _fast_loads, loads_strict

    expected = json.loads(data)
    fast = _fast_loads(data)
    assert fast is not None, "took the exact path"
    assert repr(fast) == repr(expected)  # same values and types, key order included
    assert repr(loads_strict(data, "f.json")) == repr(expected)


@pytest.mark.parametrize("data", REFUSED)
def test_the_fast_parse_leaves_every_refusal_to_the_exact_path(data):
    from imageworks_models.errors import RegistryFileError
    from imageworks_models.registry.jsonio import _fast_loads, loads_strict

    assert _fast_loads(data) is None
    with pytest.raises(RegistryFileError):
        loads_strict(data, "f.json")


def test_digits_in_strings_keep_the_fast_parse(tmp_path):
    # digests after "sha256:" often hold 19 digits in a row; only an integer value sends a file down the exact path
    from imageworks_models.registry.jsonio import _long_integer

    assert not _long_integer(b'{"d": "sha256:12345678901234567890abc", "e": "x 1234567890123456789"}')
    assert _long_integer(b'{"n": 1234567890123456789}') and _long_integer(b'{"n" :\n -1234567890123456789}')
    assert _long_integer(b'[0, 1234567890123456789]') and _long_integer(b'1234567890123456789')
    assert not _long_integer(b'{"blob": "' + b"1" * 100_000 + b'", "n": 12}')  # one run, however long
    assert _long_integer(b'{"blob": "' + b"1" * 100_000 + b'", "n": 1234567890123456789}')


def test_integers_of_19_digits_in_range_are_read_by_the_exact_path():
    from imageworks_models.registry.jsonio import loads_strict

    assert loads_strict(b'[-9223372036854775808, 9223372036854775807]', "f.json") == [-2**63, 2**63 - 1]
