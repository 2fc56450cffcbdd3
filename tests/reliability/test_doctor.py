"""Item 7 of issue 17 (RELIABILITY B7, B9): names and ports are unique where they must be. ``doctor`` (JSON too)
reports case/Unicode name clashes across layers, aliases naming other entries, shared (host, port) and shared
served ids; an edit that creates one is warned about, and a write that creates a cross-layer name clash is
refused."""

from __future__ import annotations

import json

import pytest
from _helpers import make_registry, sources

from imageworks_models.maintain.editing import plan_edit
from imageworks_models.errors import RegistryValidationError
from imageworks_models.registry.store import RegistryStore
from imageworks_models.testing import run_cli


@pytest.fixture
def reg(tmp_path, monkeypatch):
    def make(curated, discovered=()):
        folder = make_registry(tmp_path / "reg", curated=curated, discovered=list(discovered))
        monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(folder))
        return folder
    return make


def doctor():
    result = run_cli("doctor", "--json")
    return result.exit_code, json.loads(result.stdout)


def test_a_clean_registry_passes(reg):
    reg([{"name": "a", "backend": "vllm", "backend_config": {"port": 8001}},
         {"name": "b", "backend": "vllm", "backend_config": {"port": 8002}}])
    code, data = doctor()
    assert code == 0 and data == {"checked": 2, "ok": True, "problems": []}


def test_b7_alpha_in_one_layer_and_alpha_in_the_other_is_reported_and_never_created(reg):
    folder = reg([{"name": "Alpha", "backend": "vllm"}], [{"name": "alpha", "backend": "vllm"}])
    code, data = doctor()
    assert code == 1 and [p["kind"] for p in data["problems"]] == ["name-case"]
    assert data["problems"][0]["entries"] == ["Alpha", "alpha"]
    text = run_cli("doctor")
    assert text.exit_code == 1 and "differ only by case" in text.stdout and "1 problem" in text.stderr
    store = RegistryStore(folder)
    before = sources(folder)
    with pytest.raises(RegistryValidationError):  # a write that creates another such pair is refused
        with store.edit() as layers:
            layers.discovered.put({"name": "BETA", "backend": "vllm"})
            layers.curated.put({"name": "beta", "backend": "vllm"})
    assert sources(folder) == before
    with store.edit() as layers:  # unrelated writes still work while the old clash waits for a person
        layers.curated.put({"name": "gamma", "backend": "vllm"})


def test_b9_two_entries_on_one_host_and_port_and_one_served_id_are_reported(reg):
    reg([{"name": "a", "backend": "vllm", "backend_config": {"port": 8001}},
         {"name": "b", "backend": "vllm", "backend_config": {"port": 8001, "host": "0.0.0.0"},
          "served_model_id": "shared"},
         {"name": "c", "backend": "vllm", "backend_config": {"port": 8003}, "served_model_id": "shared"},
         {"name": "d", "backend": "lmdeploy", "backend_config": {"port": 8004}, "aliases": ["a"]}])
    code, data = doctor()
    kinds = sorted((p["kind"], tuple(p["entries"])) for p in data["problems"])
    assert code == 1
    assert kinds == [("alias", ("d", "a")), ("port", ("a", "b")), ("served-id", ("b", "c"))]


def test_b9_an_edit_that_creates_a_port_clash_is_warned_about(reg):
    reg([{"name": "a", "backend": "vllm", "backend_config": {"port": 8001}},
         {"name": "b", "backend": "vllm", "backend_config": {"port": 8002}}])
    plan = plan_edit("b", {"backend_config": {"port": 8001}})
    assert not plan.errors
    assert any("8001" in w for w in plan.warnings)
    assert plan_edit("b", {"backend_config": {"port": 8009}}).warnings == []
