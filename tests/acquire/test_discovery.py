"""discovery: the naming rule, scan roots, and the stat-keyed inspect cache.

The naming rule (``discovery`` module docstring): ``<family>-<backend>-<format>[-<quant>]``, all lower
case; the family is the repo, folder or file name with format and quantization words removed from its
end; the quant is added only when it says more than the format. Every generated name must pass the
schema's name check.

The cache tests scan through a small source defined here (every folder or ``.gguf`` file directly in the
root is a model) and the real built-in ``inspect_artifact``, counting the inspections it is asked for.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from modelfiles import make_models

from imageworks_models.formats import inspectcache
from imageworks_models.acquire.discovery import check_root, entry_name, family_from, scan
from imageworks_models.errors import AcquisitionError
from imageworks_models.pluginhost.manager import get_plugins
from imageworks_models.plugin.records import Discovered, Source
from imageworks_models.registry.schema import check_name
from imageworks_models.settings import load_settings

# --- the naming rule ------------------------------------------------------------------------------

FAMILIES = [
    ("Qwen2.5-VL-7B-Instruct-AWQ", "qwen2.5-vl-7b-instruct"),
    ("Qwen/Qwen2.5-VL-7B-Instruct-AWQ", "qwen2.5-vl-7b-instruct"),  # a repo id: its name part
    ("Qwen3-8B-Q4_K_M.gguf", "qwen3-8b"),
    ("Qwen3-8B-GGUF", "qwen3-8b"),
    ("Qwen3-8B-BF16.gguf", "qwen3-8b"),
    ("Qwen3-30B-A3B-IQ4_XS.gguf", "qwen3-30b-a3b"),
    ("Qwen3-8B-Instruct-Q4_K_M.GGUF", "qwen3-8b-instruct"),
    ("Meta-Llama-3-8B-Instruct", "meta-llama-3-8b-instruct"),
    ("Llama-3.1-8B-Instruct-GPTQ-INT4", "llama-3.1-8b-instruct"),
    ("Qwen2.5-VL-7B-Instruct-FP8-Dynamic", "qwen2.5-vl-7b-instruct"),
    ("Mistral-7B-Instruct-v0.3-bnb-4bit", "mistral-7b-instruct-v0.3"),
    # split GGUF: every part names the same family
    ("Qwen3-235B-A22B-Q4_K_M-00001-of-00003.gguf", "qwen3-235b-a22b"),
    ("Qwen3-235B-A22B-Q4_K_M-00003-of-00003.gguf", "qwen3-235b-a22b"),
    ("Qwen3-235B-A22B-Q4_K_M-00001-of-00003", "qwen3-235b-a22b"),
    # a name that is only a format word keeps it (a family is never emptied)
    ("AWQ", "awq"),
    ("GGUF", "gguf"),
    ("Q4_K_M.gguf", "q4_k_m"),
    # spaces and other characters
    ("  Phi 3  mini ", "phi-3-mini"),
    ("Llama 3.1 8B Instruct", "llama-3.1-8b-instruct"),
    ("model@v2+beta", "model-v2-beta"),
    ("name:with:colons", "name-with-colons"),
    ("", "model"),
    ("---", "model"),
    (".gguf", "model"),
    # the quant word after a dot (TheBloke's "<model>.<QUANT>.gguf" naming) is a quant word at the end
    ("llama-2-7b-chat.Q4_K_M.gguf", "llama-2-7b-chat"),
    ("mistral-7b-instruct-v0.2.Q5_K_M.gguf", "mistral-7b-instruct-v0.2"),
    # a format word in parentheses is still a format word at the end
    ("Mistral 7B Instruct v0.3 (AWQ)", "mistral-7b-instruct-v0.3"),
]

ODD = ["Café-Model-7B", "Модель-7B", "a/b/c", "_hidden_-model_", "x" * 300,
       "Qwen3 8B [Q4_K_M]", "model (copy 2)", "🦙-llama-7b", "..", "ÅÉÎ", "Tab\tModel\n7B", "a--b---c"]


@pytest.mark.parametrize("hint, family", FAMILIES)
def test_family_from_removes_format_and_quant_words_from_the_end(hint, family):
    assert family_from(hint) == family
    check_name(family)


@pytest.mark.parametrize("hint", ODD + [h for h, _ in FAMILIES])
def test_family_from_odd_characters_gives_a_clean_valid_family(hint):
    family = family_from(hint)

    assert re.fullmatch(r"[a-z0-9._-]+", family), family
    check_name(family[:200])
    assert family[0].isalnum() and family[-1].isalnum(), family
    assert "--" not in family, f"{hint!r} -> {family!r}: a run of odd characters left a double hyphen"


ENTRY_NAMES = [
    (("qwen2.5-vl-7b-instruct", "vllm", "awq", "awq"), "qwen2.5-vl-7b-instruct-vllm-awq"),
    (("qwen2.5-vl-7b-instruct", "vllm", "awq", "AWQ"), "qwen2.5-vl-7b-instruct-vllm-awq"),
    (("qwen2.5-vl-7b-instruct", "vllm", "awq", None), "qwen2.5-vl-7b-instruct-vllm-awq"),
    (("qwen3-8b", "vllm", "gguf", "q4_k_m"), "qwen3-8b-vllm-gguf-q4_k_m"),
    (("qwen3-8b", "vllm", "gguf", "Q4_K_M"), "qwen3-8b-vllm-gguf-q4_k_m"),
    (("qwen3-8b", "vllm", "GGUF", "Q8_0"), "qwen3-8b-vllm-gguf-q8_0"),
    (("qwen3-4b", "vllm", "safetensors", "bf16"), "qwen3-4b-vllm-safetensors-bf16"),
    (("meta-llama-3-8b-instruct", "vllm", "fp8", "fp8"), "meta-llama-3-8b-instruct-vllm-fp8"),
    (("llama-3.1-8b-instruct", "lmdeploy", "gptq", "gptq"), "llama-3.1-8b-instruct-lmdeploy-gptq"),
    (("phi-3-mini", "vllm", "safetensors", None), "phi-3-mini-vllm-safetensors"),
]


@pytest.mark.parametrize("args, name", ENTRY_NAMES)
def test_entry_name(args, name):
    assert entry_name(*args) == name
    check_name(name)
    assert "-awq-awq" not in name and "-fp8-fp8" not in name


def test_entry_name_is_all_lower_case():
    """The rule says all lower case, whatever case the parts come in."""
    name = entry_name("Qwen3-8B", "vLLM", "GGUF", "Q4_K_M")

    assert name == "qwen3-8b-vllm-gguf-q4_k_m"


def test_entry_name_of_a_very_long_family_keeps_backend_format_and_quant():
    """Names are at most 200 characters; cutting must not drop what tells two quants of a model apart."""
    family = family_from("a" * 300)
    q4 = entry_name(family, "vllm", "gguf", "q4_k_m")
    q8 = entry_name(family, "vllm", "gguf", "q8_0")

    for name in (q4, q8):
        check_name(name)
        assert len(name) <= 200
    assert q4.endswith("-vllm-gguf-q4_k_m"), q4[-40:]
    assert q8.endswith("-vllm-gguf-q8_0"), q8[-40:]
    assert q4 != q8


@pytest.mark.parametrize("hint", ODD + [h for h, _ in FAMILIES])
@pytest.mark.parametrize("fmt, quant", [("awq", "awq"), ("gguf", "q4_k_m"), ("gguf", "iq4_xs"),
                                        ("safetensors", "bf16"), ("fp8", None), ("pytorch", None)])
def test_every_generated_name_passes_the_schema_name_check(hint, fmt, quant):
    name = entry_name(family_from(hint), "vllm", fmt, quant)

    check_name(name)
    assert name == name.lower()


# --- scan roots -----------------------------------------------------------------------------------


def test_check_root_refuses_a_symlink_leading_outside_the_configured_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(tmp_path / "weights"))
    (tmp_path / "weights").mkdir()
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")

    with pytest.raises(AcquisitionError) as info:
        check_root(link, load_settings())

    assert "outside the configured weights roots" in info.value.message
    assert str(tmp_path / "elsewhere") in info.value.message


def test_check_root_accepts_a_symlink_into_the_weights_root_and_a_real_folder(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    (weights / "sub").mkdir(parents=True)
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(weights))
    link = tmp_path / "link"
    link.symlink_to(weights / "sub")
    (tmp_path / "plain").mkdir()
    settings = load_settings()

    assert check_root(link, settings) == link
    assert check_root(tmp_path / "plain", settings) == tmp_path / "plain"


def test_check_root_refuses_a_missing_root_and_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    settings = load_settings()

    with pytest.raises(AcquisitionError, match="no such folder"):
        check_root(tmp_path / "missing", settings)
    with pytest.raises(AcquisitionError, match="not a folder"):
        check_root(tmp_path / "file", settings)


# --- the inspect cache ----------------------------------------------------------------------------


class FolderSource:
    """Every folder or ``.gguf`` file directly in the root is one model."""

    def scan(self, root, *, settings):
        for p in sorted(Path(root).iterdir()):
            if p.is_dir() or p.suffix == ".gguf":
                yield Discovered(path=str(p), name_hint=p.name, provider="test")


class CountingHost:
    """The real plugin host, with :class:`FolderSource` as the only scanner and inspections counted."""

    def __init__(self, real):
        self.real = real
        self.inspected: list[str] = []

    def source_impls(self, ability):
        record = Source(name="test", description="a folder of models", load=FolderSource, provides=("scan",))
        return [(record, FolderSource())] if ability == "scan" else []

    def inspect_artifact(self, path):
        self.inspected.append(str(path))
        return self.real.inspect_artifact(path)

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.fixture
def host():
    return CountingHost(get_plugins(load_settings()))


def run_scan(root: Path, host: CountingHost, **kwargs):
    host.inspected.clear()
    return scan([root], settings=load_settings(), plugins=host, **kwargs)


def test_first_scan_inspects_every_model_and_names_them(tmp_path, host):
    make_models(tmp_path / "w")

    report = run_scan(tmp_path / "w", host, dry_run=True)

    rows = {Path(r.path).name: r for r in report.rows}
    assert {n: (r.action, r.name) for n, r in rows.items()} == {
        "Qwen3-4B": ("add", "qwen3-4b-vllm-safetensors-bf16"),
        "Mistral-7B-Instruct-AWQ": ("add", "mistral-7b-instruct-vllm-awq"),
        "Qwen2.5-VL-3B-Instruct": ("add", "qwen2.5-vl-3b-instruct-vllm-safetensors-bf16"),
        "Qwen3-8B-Q4_K_M.gguf": ("add", "qwen3-8b-vllm-gguf-q4_k_m"),
    }
    assert (report.inspected, report.cached) == (4, 0)
    assert len(host.inspected) == 4
    assert rows["Qwen2.5-VL-3B-Instruct"].entry["capabilities"] == {"text": True, "vision": True}
    assert rows["Qwen3-4B"].entry["capabilities"] == {"text": True, "tools": True, "thinking": True}
    assert (load_settings().cache_dir / "inspect-cache.json").is_file()


def test_second_scan_of_an_unchanged_tree_inspects_nothing(tmp_path, host):
    make_models(tmp_path / "w")
    first = run_scan(tmp_path / "w", host, dry_run=True)

    second = run_scan(tmp_path / "w", host, dry_run=True)

    assert (second.inspected, second.cached) == (0, 4)
    assert host.inspected == []
    # the cached facts are the inspected ones: same rows, same entries
    assert [r.as_dict() for r in second.rows] == [r.as_dict() for r in first.rows]
    assert [r.entry for r in second.rows] == [r.entry for r in first.rows]


def test_touching_one_file_reinspects_only_that_model(tmp_path, host):
    models = make_models(tmp_path / "w")
    run_scan(tmp_path / "w", host, dry_run=True)
    later = os.stat(models["awq"] / "config.json").st_mtime + 10
    os.utime(models["awq"] / "config.json", (later, later))

    report = run_scan(tmp_path / "w", host, dry_run=True)

    assert (report.inspected, report.cached) == (1, 3)
    assert host.inspected == [str(models["awq"])]

    # a single-file model: its own stat is its key
    os.utime(models["gguf"], (later, later))
    report = run_scan(tmp_path / "w", host, dry_run=True)
    assert (report.inspected, report.cached) == (1, 3)
    assert host.inspected == [str(models["gguf"])]


def test_a_changed_file_is_seen_through_the_cache(tmp_path, host):
    """A rewritten config (quantization added) is re-inspected and the new facts are used."""
    models = make_models(tmp_path / "w")
    run_scan(tmp_path / "w", host, dry_run=True)
    config = models["bf16"] / "config.json"
    data = json.loads(config.read_text())
    data["quantization_config"] = {"quant_method": "fp8"}
    config.write_text(json.dumps(data))

    report = run_scan(tmp_path / "w", host, dry_run=True)

    row = next(r for r in report.rows if r.path == str(models["bf16"]))
    assert (row.format, row.name) == ("fp8", "qwen3-4b-vllm-fp8")
    assert host.inspected == [str(models["bf16"])]


def test_a_real_scan_uses_the_cache_too_and_records_the_entries(tmp_path, host):
    make_models(tmp_path / "w")
    run_scan(tmp_path / "w", host, dry_run=True)

    report = run_scan(tmp_path / "w", host)

    assert (report.inspected, report.cached, report.written) == (0, 4, 4)
    from imageworks_models.registry import store_for

    names = {e["name"]: e for e in store_for(load_settings()).load()}
    assert names["qwen3-8b-vllm-gguf-q4_k_m"]["source"]["provider"] == "test"
    assert names["mistral-7b-instruct-vllm-awq"]["quantization"] == "awq"


def test_an_unreadable_cache_file_costs_only_a_slower_scan(tmp_path, host):
    make_models(tmp_path / "w")
    cache_file = load_settings().cache_dir / "inspect-cache.json"
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_bytes(b"\x00not json{")

    report = run_scan(tmp_path / "w", host, dry_run=True)

    assert (report.inspected, report.cached) == (4, 0)
    assert [r.action for r in report.rows] == ["add"] * 4
    assert json.loads(cache_file.read_text())["version"] == inspectcache.VERSION  # rewritten, usable next time
    assert run_scan(tmp_path / "w", host, dry_run=True).cached == 4


# --- prefetching a first scan's reads -------------------------------------------------------------


def test_the_prefetcher_touches_only_regular_files_and_stops(tmp_path):
    """A FIFO among the files (or swapped in) never blocks it; it ends when told, or when its parser stops."""
    import threading

    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    os.mkfifo(model / "weights.safetensors")
    os.symlink("/dev/zero", model / "link.bin")
    lone = tmp_path / "x.gguf"
    lone.write_bytes(b"GGUF")
    seen = []
    real_open = os.open

    def spy(path, flags, *args, **kwargs):
        if threading.current_thread().name == "imageworks-prefetch":
            seen.append(os.path.basename(path))
        return real_open(path, flags, *args, **kwargs)

    os.open = spy
    try:
        prefetcher = inspectcache.Prefetcher([str(model), str(lone), str(tmp_path / "gone")])
        for _ in range(3):
            prefetcher.done()
        prefetcher._thread.join(5)
    finally:
        os.open = real_open
    assert not prefetcher._thread.is_alive()
    assert sorted(seen) == ["config.json", "x.gguf"]  # not the FIFO, not the link

    stopped = inspectcache.Prefetcher([str(model)] * (inspectcache.PREFETCH_AHEAD + 10))
    stopped.stop()
    stopped._thread.join(5)
    assert not stopped._thread.is_alive()


def test_a_first_scan_prefetches_and_finds_what_an_unprefetched_scan_finds(tmp_path, host, monkeypatch):
    make_models(tmp_path / "w")
    started = []
    real_init = inspectcache.Prefetcher.__init__

    def counting(self, paths):
        started.append(list(paths))
        real_init(self, paths)

    monkeypatch.setattr(inspectcache.Prefetcher, "__init__", counting)
    first = run_scan(tmp_path / "w", host, dry_run=True)
    assert len(started) == 1 and len(started[0]) == 4  # every model was new to the cache
    again = run_scan(tmp_path / "w", host, dry_run=True)
    assert len(started) == 1  # a rescan of known models prefetches nothing

    class NoPrefetch:
        def __init__(self, paths):
            started.append(None)

        def done(self):
            pass

        def stop(self):
            pass

    monkeypatch.setattr(inspectcache, "Prefetcher", NoPrefetch)
    (load_settings().cache_dir / "inspect-cache.json").unlink()
    plain = run_scan(tmp_path / "w", host, dry_run=True)
    assert plain.inspected == 4 and started[-1] is None
    assert [r.as_dict() for r in first.rows] == [r.as_dict() for r in again.rows] == [r.as_dict() for r in plain.rows]
    assert [r.entry for r in first.rows] == [r.entry for r in plain.rows]
