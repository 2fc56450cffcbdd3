"""export --to production-stack / llama-swap / models.lock, import --from llama-swap (issue 25).

The registry is built through the real store (curated + discovered layers); exports run through the CLI; the
values are checked against the schema the project keeps for the vllm-stack chart, the llama-swap config with
a YAML parser, and `helm template` renders the values when helm and the chart are here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from imageworks_models.registry.store import RegistryStore

GIB = 1 << 30
SECRET = "hf_abcdefghijklmnopqrstuvwx"
LOCK_DIGEST = "sha256:" + "ab" * 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# Llama-3.1-8B's attention shape (32 layers x 8 KV heads x 128) with 16 GB of bf16 weights
LLAMA_8B = {"weights_bytes": 16_060_000_000, "layers": 32, "kv_heads": 8, "head_dim_k": 128, "context_max": 131072}
LLAMA_70B = {"weights_bytes": 141_000_000_000, "layers": 80, "kv_heads": 8, "head_dim_k": 128, "context_max": 131072}


def _registry(root: Path) -> Path:
    """A registry with the kinds of entries an export meets (see each entry's comment)."""
    reg = root / "registry"
    weights = root / "weights"
    (weights / "llama-8b").mkdir(parents=True)
    (weights / "tiny.gguf").write_bytes(b"GGUF")
    curated = [
        # a locked, pinned vLLM model with flags the chart has fields for, an env var and a token in env
        {"name": "llama-3.1-8b-instruct-vllm", "backend": "vllm", "served_model_id": "llama3.1:8b",
         "aliases": ["llama8b"], "roles": ["chat"],
         "backend_config": {"extra_args": ["--max-model-len", "32768", "--enable-chunked-prefill",
                                           "--swap-space", "8"],
                            "env": {"CUDA_VISIBLE_DEVICES": "0", "HF_TOKEN": SECRET, "VLLM_LOGGING_LEVEL": "INFO"}},
         "gateway": {"idle_ttl": 600}},
        # too big for one 80 GiB GPU: tensor parallel
        {"name": "llama-3.1-70b-vllm", "backend": "vllm", "backend_config": {"extra_args": ["--max-model-len", "8192"]},
         "roles": ["chat"]},
        # a vision model, not locked, no commit
        {"name": "qwen2.5-vl-7b-vllm", "backend": "vllm", "capabilities": {"vision": True}},
        {"name": "qwen3-8b-ollama", "backend": "ollama", "served_model_id": "qwen3:8b"},
        {"name": "gguf-on-vllm", "backend": "vllm", "format": "gguf"},
        {"name": "remote-lmdeploy", "backend": "lmdeploy", "backend_config": {"base_url": "http://gpu-box:23333"}},
        # a URL with credentials in its arguments
        {"name": "leaky-vllm", "backend": "vllm",
         "backend_config": {"extra_args": ["--kv-transfer-config", "https://bob:hunter2@cache.example/x"]}},
        # a token on the command line
        {"name": "token-arg-vllm", "backend": "vllm", "backend_config": {"extra_args": ["--hf-token", SECRET]}},
        # llama.cpp, pinned and preloaded for the gateway
        {"name": "tiny-gguf-llamacpp", "backend": "llamacpp", "format": "gguf", "aliases": ["tiny"],
         "backend_config": {"model_path": str(weights / "tiny.gguf"), "ctx_size": 4096, "n_gpu_layers": 99,
                            "extra_args": ["--flash-attn", "on"], "env": {"GGML_CUDA_NO_PINNED": "1"}},
         "gateway": {"idle_ttl": 300, "pinned": True, "preload": True, "max_concurrency": 4}},
    ]
    discovered = [
        {"name": "llama-3.1-8b-instruct-vllm", "download": {"path": str(weights / "llama-8b"),
                                                            "size_bytes": 16_100_000_000},
         "source": {"provider": "hf", "repo_id": "meta-llama/Llama-3.1-8B-Instruct", "revision": "main",
                    "commit": COMMIT},
         "version_lock": {"locked": True, "expected_aggregate": LOCK_DIGEST},
         "metadata": {"memory": LLAMA_8B}},
        {"name": "llama-3.1-70b-vllm", "download": {"path": str(weights / "llama-70b"), "size_bytes": 141_100_000_000},
         "source": {"provider": "hf", "repo_id": "meta-llama/Llama-3.1-70B-Instruct", "commit": COMMIT},
         "metadata": {"memory": LLAMA_70B}},
        {"name": "qwen2.5-vl-7b-vllm", "download": {"path": str(weights / "qwen-vl"), "size_bytes": 16_000_000_000},
         "source": {"provider": "hf", "repo_id": "Qwen/Qwen2.5-VL-7B-Instruct", "revision": "main"},
         "metadata": {"memory": {**LLAMA_8B, "layers": 28, "kv_heads": 4, "context_max": 32768}}},
        {"name": "gguf-on-vllm", "source": {"provider": "hf", "repo_id": "x/y-GGUF"}},
        {"name": "leaky-vllm", "source": {"provider": "hf", "repo_id": "x/leaky"}},
        {"name": "token-arg-vllm", "download": {"path": "/srv/models/t"},
         "source": {"provider": "hf", "repo_id": "x/token"}},
    ]
    with RegistryStore(reg).edit() as layers:
        for entry in curated:
            layers.curated.put(entry)
        for entry in discovered:
            layers.discovered.put(entry)
    return reg


@pytest.fixture
def reg(tmp_path, monkeypatch):
    folder = _registry(tmp_path)
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(folder))
    monkeypatch.setenv("IMAGEWORKS_LLAMACPP_BIN", "llama-server")
    return folder


def _schema():
    from imageworks_models.export import prodstack

    return prodstack.schema()


def _export(cli, target, out, *extra):
    result = cli("export", "--to", target, "-o", str(out), "--json", *extra)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


# -- production stack ---------------------------------------------------------------------------------


def test_production_stack_values_follow_the_kept_chart_schema(cli, reg, tmp_path):
    import jsonschema

    out = tmp_path / "values.yaml"
    report = _export(cli, "production-stack", out)
    text = out.read_text()
    assert text.startswith("# Helm values for the vllm-stack chart 0.1.12")
    values = yaml.safe_load(text)
    jsonschema.validate(values, _schema())
    specs = {s["annotations"]["imageworks.io/entry"]: s for s in values["servingEngineSpec"]["modelSpec"]}
    assert sorted(specs) == ["llama-3.1-70b-vllm", "llama-3.1-8b-instruct-vllm", "qwen2.5-vl-7b-vllm"]
    small = specs["llama-3.1-8b-instruct-vllm"]
    assert small["name"] == "llama-3-1-8b-instruct-vllm"  # a DNS label: the chart names Services after it
    assert (small["modelURL"], small["modelRevision"]) == ("meta-llama/Llama-3.1-8B-Instruct", COMMIT)
    assert (small["repository"], small["tag"], small["replicaCount"]) == ("vllm/vllm-openai", "latest", 1)
    assert small["requestGPU"] == 1 and "tensorParallelSize" not in small["vllmConfig"]
    assert small["labels"]["imageworks.io/manifest"] == "sha256-" + "ab" * 28  # 63 characters, a label's most
    assert small["annotations"]["imageworks.io/manifest-digest"] == LOCK_DIGEST
    config = small["vllmConfig"]
    assert config["maxModelLen"] == 32768 and config["enableChunkedPrefill"] is True
    assert config["enablePrefixCaching"] is True  # the chart would otherwise pass --no-enable-prefix-caching
    assert config["extraArgs"] == ["--served-model-name", "llama3.1:8b", "--swap-space", "8"]
    assert small["env"] == [{"name": "VLLM_LOGGING_LEVEL", "value": "INFO"}]  # the cluster assigns GPUs
    assert small["pvcStorage"] == "18Gi"  # 16.1 GB + 20%, rounded up to whole GiB
    big = specs["llama-3.1-70b-vllm"]
    assert big["requestGPU"] > 1 and big["vllmConfig"]["tensorParallelSize"] == big["requestGPU"]
    vision = specs["qwen2.5-vl-7b-vllm"]
    assert vision["modelRevision"] == "main" and "imageworks.io/manifest" not in vision["labels"]
    assert "--limit-mm-per-prompt" in vision["vllmConfig"]["extraArgs"]
    skipped = {s["name"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"qwen3-8b-ollama", "gguf-on-vllm", "remote-lmdeploy", "leaky-vllm", "tiny-gguf-llamacpp",
                            "token-arg-vllm"}
    assert "passes a credential (--hf-token)" in skipped["token-arg-vllm"]
    assert "vLLM engines only" in skipped["qwen3-8b-ollama"] and "GGUF" in skipped["gguf-on-vllm"]
    assert "remote" in skipped["remote-lmdeploy"] and "credentials" in skipped["leaky-vllm"]
    notes = {r["name"]: r["notes"] for r in report["exported"]}
    assert any("HF_TOKEN left out" in n for n in notes["llama-3.1-8b-instruct-vllm"])
    assert any("CUDA_VISIBLE_DEVICES left out" in n for n in notes["llama-3.1-8b-instruct-vllm"])
    assert any("not locked" in n for n in notes["qwen2.5-vl-7b-vllm"])


def test_gpus_requested_are_what_the_estimate_needs_on_the_configured_gpu(cli, reg, tmp_path, monkeypatch):
    """requestGPU is the fewest GPUs (a tensor parallel size) whose share of memory holds the model at its
    context: fewer on a big card, more on a small one."""
    from imageworks_models.fit.devices import Gpu, Inventory
    from imageworks_models.fit.estimate import assess
    from imageworks_models.registry import open_registry
    from imageworks_models.settings import load_settings

    counts = {}
    for size in (80, 24, 16):
        monkeypatch.setenv("IMAGEWORKS_EXPORT_GPU_BYTES", str(size * GIB))
        out = tmp_path / f"values-{size}.yaml"
        _export(cli, "production-stack", out, "llama-3.1-8b-instruct-vllm")
        spec = yaml.safe_load(out.read_text())["servingEngineSpec"]["modelSpec"][0]
        counts[size] = spec["requestGPU"]
        settings = load_settings()
        gpu = Gpu(index=0, name="g", total_bytes=size * GIB, free_bytes=size * GIB, used_bytes=0)
        fit = assess(open_registry(settings).get("llama-3.1-8b-instruct-vllm"), settings=settings,
                     inventory=Inventory(gpus=[gpu]), context=spec["vllmConfig"]["maxModelLen"], facts=LLAMA_8B)
        share = settings.fit_gpu_memory_utilization * size * GIB
        n = spec["requestGPU"]
        assert (fit.total_bytes - fit.overhead_bytes) / n + fit.overhead_bytes <= share  # it fits on n GPUs
        if n > 1:  # and not on the next smaller tensor parallel size
            assert (fit.total_bytes - fit.overhead_bytes) / (n // 2) + fit.overhead_bytes > share
    assert counts[80] == 1 and counts[16] > counts[24] >= counts[80]


def test_names_roles_and_installed_narrow_the_export(cli, reg, tmp_path):
    report = _export(cli, "production-stack", tmp_path / "a.yaml", "--role", "chat")
    assert [r["name"] for r in report["exported"]] == ["llama-3.1-70b-vllm", "llama-3.1-8b-instruct-vllm"]
    report = _export(cli, "production-stack", tmp_path / "b.yaml", "--installed")
    assert [r["name"] for r in report["exported"]] == ["llama-3.1-8b-instruct-vllm"]  # the only one on disk
    report = _export(cli, "production-stack", tmp_path / "c.yaml", "llama8b")  # an alias
    assert [r["name"] for r in report["exported"]] == ["llama-3.1-8b-instruct-vllm"]


def _chart() -> Path | None:
    path = os.environ.get("IMAGEWORKS_TEST_VLLM_STACK_CHART")
    return Path(path) if path and (Path(path) / "Chart.yaml").is_file() else None


@pytest.mark.skipif(shutil.which("helm") is None or _chart() is None,
                    reason="needs a helm binary on PATH and the vllm-stack 0.1.12 chart folder in "
                           "IMAGEWORKS_TEST_VLLM_STACK_CHART (production-stack's helm/, dependencies built); "
                           "neither is installed here and tests have no network")
def test_helm_template_renders_the_values(cli, reg, tmp_path):
    out = tmp_path / "values.yaml"
    _export(cli, "production-stack", out)
    rendered = subprocess.run(["helm", "template", "vllm", str(_chart()), "-f", str(out)], capture_output=True,
                              text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    deployments = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-deployment-vllm")]
    assert len(deployments) == 3
    command = next(d for d in deployments if "llama-3-1-8b" in d["metadata"]["name"])[
        "spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--revision") + 1] == COMMIT and "--max-model-len" in command


# -- llama-swap -------------------------------------------------------------------------------------------


def test_llama_swap_config_has_the_documented_shape(cli, reg, tmp_path):
    out = tmp_path / "config.yaml"
    report = _export(cli, "llama-swap", out)
    doc = yaml.safe_load(out.read_text())
    models = doc["models"]
    assert set(models) == {"llama-3.1-8b-instruct-vllm", "llama-3.1-70b-vllm", "qwen2.5-vl-7b-vllm",
                           "tiny-gguf-llamacpp"}
    for model_id, item in models.items():
        assert isinstance(item["cmd"], str) and "${PORT}" in item["cmd"], model_id
        assert item["proxy"] == "http://127.0.0.1:${PORT}" and item["checkEndpoint"] == "/health"
        assert all(isinstance(e, str) and "=" in e for e in item.get("env", []))
        assert all(isinstance(a, str) for a in item.get("aliases", []))
    tiny = models["tiny-gguf-llamacpp"]
    assert tiny["cmd"].split()[:3] == ["llama-server", "--model", str(tmp_path / "weights" / "tiny.gguf")]
    assert "--ctx-size 4096" in tiny["cmd"] and "--n-gpu-layers 99" in tiny["cmd"]
    assert tiny["cmd"].endswith("--flash-attn on")
    assert (tiny["ttl"], tiny["concurrencyLimit"], tiny["aliases"]) == (300, 4, ["tiny"])
    assert tiny["env"] == ["GGML_CUDA_NO_PINNED=1"]
    small = models["llama-3.1-8b-instruct-vllm"]
    assert small["cmd"].startswith("vllm serve ") and "--port ${PORT}" in small["cmd"]
    assert small["useModelName"] == "llama3.1:8b" and small["aliases"] == ["llama8b", "llama3.1:8b"]
    assert small["ttl"] == 600
    assert models["llama-3.1-70b-vllm"]["ttl"] == 1800  # no idle_ttl of its own: the gateway_idle_ttl setting
    assert doc["groups"]["pinned"] == {"swap": False, "exclusive": False, "persistent": True,
                                       "members": ["tiny-gguf-llamacpp"]}
    assert doc["groups"]["on-demand"]["swap"] is True
    assert sorted(doc["groups"]["on-demand"]["members"]) == sorted(set(models) - {"tiny-gguf-llamacpp"})
    assert doc["hooks"] == {"on_startup": {"preload": ["tiny-gguf-llamacpp"]}}
    skipped = {s["name"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"qwen3-8b-ollama", "remote-lmdeploy", "leaky-vllm", "gguf-on-vllm", "token-arg-vllm"}
    assert "no model files" in skipped["gguf-on-vllm"] and "loads models itself" in skipped["qwen3-8b-ollama"]


def _comparable(entry: dict) -> dict:
    keep = ("name", "backend", "served_model_id", "aliases")
    out = {k: entry.get(k) for k in keep}
    cfg = entry.get("backend_config") or {}
    out["model_path"] = cfg.get("model_path") or (entry.get("download") or {}).get("path")
    out["args"] = {k: v for k, v in cfg.items() if k not in ("model_path",)}
    out["gateway"] = {k: v for k, v in (entry.get("gateway") or {}).items() if v}
    out["vision"] = bool((entry.get("capabilities") or {}).get("vision"))
    return out


def test_export_then_import_gives_the_same_entries(cli, reg, tmp_path, monkeypatch):
    from imageworks_models.registry import open_registry
    from imageworks_models.settings import load_settings

    # 0 (never unload) stands for "no idle_ttl": entries without one export the gateway_idle_ttl setting
    monkeypatch.setenv("IMAGEWORKS_GATEWAY_IDLE_TTL", "0")
    first = tmp_path / "config.yaml"
    report = _export(cli, "llama-swap", first)
    exported = [r["name"] for r in report["exported"]]
    before = {e["name"]: e for e in open_registry(load_settings())}
    other = tmp_path / "other-box"
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(other))
    result = cli("import", "--from", "llama-swap", str(first), "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert sorted(r["name"] for r in rows if r["action"] == "imported") == sorted(exported)
    after = {e["name"]: e for e in open_registry(load_settings())}
    assert set(after) == set(exported)
    for name in exported:
        want, got = _comparable(before[name]), _comparable(after[name])
        # the env token was never exported, so it cannot come back
        want["args"].get("env", {}).pop("HF_TOKEN", None)
        assert got["name"] == want["name"] and got["backend"] == want["backend"], name
        assert got["model_path"] == want["model_path"], name
        assert got["served_model_id"] == want["served_model_id"] and got["aliases"] == want["aliases"], name
        assert got["gateway"] == want["gateway"] and got["vision"] == want["vision"], name
        assert got["args"] == want["args"], name
    second = tmp_path / "again.yaml"
    _export(cli, "llama-swap", second)
    assert yaml.safe_load(second.read_text()) == yaml.safe_load(first.read_text())


def test_import_keeps_what_the_launch_rules_allow_and_reports_the_rest(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(tmp_path / "registry"))
    config = tmp_path / "config.yaml"
    config.write_text("""
macros:
  models: /srv/models
models:
  "qwen/coder:7b":
    cmd: |
      # the coder
      llama-server --port ${PORT} -m ${models}/coder.gguf -c 8192 \\
        --api-key sk-abcdefghijklmnop --temp 0.2 --jinja
    env: ["HF_TOKEN=hf_abcdefghijklmnopq", "CUDA_VISIBLE_DEVICES=1", "LD_PRELOAD=/tmp/x.so"]
    ttl: 120
  vllm-coder:
    cmd: vllm serve Qwen/Qwen2.5-Coder-7B-Instruct --port ${PORT} --trust-remote-code --max-model-len 16384
      --hf-token hf_abcdefghijklmnopq --max-num-batched-tokens 8192
    useModelName: coder
  docker-thing:
    cmd: docker run --rm -p ${PORT}:8080 ghcr.io/ggml-org/llama.cpp:server
  lm:
    cmd: lmdeploy serve api_server /srv/internvl --server-port ${PORT} --backend pytorch --model-name internvl
groups:
  keep:
    persistent: true
    swap: false
    members: ["lm"]
""")
    dry = cli("import", "--from", "llama-swap", str(config), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    assert not (tmp_path / "registry" / "model_registry.curated.json").exists()  # a dry run writes nothing
    result = cli("import", "--from", "llama-swap", str(config), "--json")
    assert result.exit_code == 0, result.stderr
    rows = {r["id"]: r for r in json.loads(result.stdout)["rows"]}
    assert rows["docker-thing"]["action"] == "skip" and "unknown command 'docker'" in rows["docker-thing"]["notes"][0]
    coder = rows["qwen/coder:7b"]
    assert coder["name"] == "qwen-coder-7b" and coder["backend"] == "llamacpp"
    assert any("--api-key" in n for n in coder["notes"]) and any("HF_TOKEN" in n for n in coder["notes"])
    assert any("LD_PRELOAD" in n for n in coder["notes"])
    assert any("--trust-remote-code" in n for n in rows["vllm-coder"]["notes"])
    from imageworks_models.registry import open_registry
    from imageworks_models.settings import load_settings

    entries = {e["name"]: e for e in open_registry(load_settings())}
    cfg = entries["qwen-coder-7b"]["backend_config"]
    assert cfg["model_path"] == "/srv/models/coder.gguf" and cfg["ctx_size"] == 8192
    assert cfg["extra_args"] == ["--temp", "0.2"] and cfg["env"] == {"CUDA_VISIBLE_DEVICES": "1"}
    assert entries["qwen-coder-7b"]["aliases"] == ["qwen/coder:7b"]
    assert entries["qwen-coder-7b"]["gateway"] == {"idle_ttl": 120}
    vllm = entries["vllm-coder"]
    assert vllm["served_model_id"] == "coder"
    assert vllm["backend_config"]["extra_args"] == ["--max-model-len", "16384", "--max-num-batched-tokens", "8192"]
    assert any("--hf-token left out" in n for n in rows["vllm-coder"]["notes"])
    assert "trust_remote_code" not in vllm["backend_config"]
    lm = entries["lm"]
    assert {k: v for k, v in lm["backend_config"].items() if v} == {"model_path": "/srv/internvl", "engine": "pytorch"}
    assert lm["gateway"] == {"pinned": True}
    curated = (tmp_path / "registry" / "model_registry.curated.json").read_text()
    assert "hf_abcdefghijklmnopq" not in curated and "sk-abcdefghijklmnop" not in curated
    again = cli("import", "--from", "llama-swap", str(config), "--json")  # never overwrites an entry
    assert {r["action"] for r in json.loads(again.stdout)["rows"] if r["name"]} == {"exists"}


def test_import_refuses_what_is_not_a_llama_swap_config(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(tmp_path / "registry"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed\n")
    result = cli("import", "--from", "llama-swap", str(bad))
    assert result.exit_code == 1 and "not valid YAML" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    result = cli("import", "--from", "llama-swap", str(tmp_path / "list.yaml"))
    assert result.exit_code == 1 and "no 'models' mapping" in result.stderr
    deep = tmp_path / "deep.yaml"
    deep.write_text("models: " + "[" * 200 + "]" * 200 + "\n")
    result = cli("import", "--from", "llama-swap", str(deep))
    assert result.exit_code == 1 and "nests deeper" in result.stderr
    result = cli("import", "--from", "llama-swap", str(tmp_path))
    assert result.exit_code != 0


# -- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["production-stack", "llama-swap"])
def test_secrets_never_reach_an_exported_file(cli, reg, tmp_path, target):
    out = tmp_path / "out.yaml"
    _export(cli, target, out)
    text = out.read_text()
    assert SECRET not in text and "HF_TOKEN" not in text
    assert "hunter2" not in text and "bob:" not in text


def test_an_existing_file_is_kept_without_force(cli, reg, tmp_path):
    out = tmp_path / "values.yaml"
    out.write_text("mine\n")
    for target in ("production-stack", "llama-swap", "models.lock"):
        result = cli("export", "--to", target, "-o", str(out))
        assert result.exit_code == 1 and "exists" in result.stderr and "--force" in result.stderr
        assert out.read_text() == "mine\n"
    result = cli("export", "--to", "production-stack", "-o", str(out), "--dry-run")
    assert result.exit_code == 1 and out.read_text() == "mine\n"
    result = cli("export", "--to", "production-stack", "-o", str(out), "--force")
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(out.read_text())["servingEngineSpec"]["modelSpec"]


def test_dry_run_writes_nothing_and_models_lock_is_the_lockfile(cli, reg, tmp_path):
    out = tmp_path / "new.yaml"
    report = _export(cli, "production-stack", out, "--dry-run")
    assert report["written"] is False and not out.exists()
    lock = tmp_path / "models.lock"
    report = _export(cli, "models.lock", lock)
    assert report["written"] is True
    doc = json.loads(lock.read_text())
    assert doc["entries"] == []  # the locked entry has no files with digests: listed as skipped, as `lock export`
    assert [s["name"] for s in report["skipped"]] == ["llama-3.1-8b-instruct-vllm"]


def test_the_yaml_writer_writes_what_pyyaml_dump_writes():
    """dump_yaml builds PyYAML events itself for speed; its text must be PyYAML's own, quoting included."""
    from imageworks_models.export.common import dump_yaml

    doc = {"models": {"a": {"cmd": "llama-server --port ${PORT}", "ttl": 0, "flag": True, "none": None,
                            "ratio": 0.9, "big": 1e20, "list": ["true", "123", "null", "", "~", "0x1f", "1.5", "yes",
                                                                "a: b", "- x", "#c", "é", "multi\nline", " lead"]},
                       "123": [], "empty": {}}}
    expected = yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False,
                         default_flow_style=False, allow_unicode=True, width=4096)
    assert dump_yaml(doc) == expected
    assert yaml.safe_load(dump_yaml(doc)) == doc


def test_stdout_prints_the_file_and_writes_nothing(cli, reg, tmp_path):
    result = cli("export", "--to", "llama-swap", "--stdout")
    assert result.exit_code == 0, result.stderr
    assert set(yaml.safe_load(result.stdout)["models"]) >= {"tiny-gguf-llamacpp", "llama-3.1-8b-instruct-vllm"}
    assert "skipped qwen3-8b-ollama" in result.stderr
    assert not (Path.cwd() / "config.yaml").exists()


def test_import_reads_newer_routing_groups_and_llama_cpp_python(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(tmp_path / "registry"))
    config = tmp_path / "config.yaml"
    config.write_text("""
models:
  small:
    macros:
      file: /m/small.gguf
    cmd: python3 -m llama_cpp.server --model ${file} --host 127.0.0.1 --port ${PORT} --model_alias small-1 --n_ctx 2048
    env: ["HOST=127.0.0.1", "PORT=${PORT}"]
    concurrencyLimit: 2
hooks:
  on_startup:
    preload: [small]
routing:
  router:
    use: group
    settings:
      groups:
        forever: {persistent: true, swap: false, exclusive: false, members: [small]}
""")
    result = cli("import", "--from", "llama-swap", str(config), "--json")
    assert result.exit_code == 0, result.stderr
    from imageworks_models.registry import open_registry
    from imageworks_models.settings import load_settings

    entry = open_registry(load_settings()).get("small")
    assert entry["backend"] == "llamacpp" and entry["served_model_id"] == "small-1"
    cfg = {k: v for k, v in entry["backend_config"].items() if v}
    assert cfg == {"model_path": "/m/small.gguf", "ctx_size": 2048}  # HOST/PORT are the launch's own
    assert entry["gateway"] == {"max_concurrency": 2, "pinned": True, "preload": True}
