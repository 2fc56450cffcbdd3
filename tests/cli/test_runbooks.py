"""The three runbooks (docs/runbooks/: the Model Loader, the Model Downloader and the GUI Models page
guides), their commands run in order as the real console scripts, against the stand-in Hub
(plugins/hf/tests/hubserver.py), the stand-in Ollama (plugins/ollama/tests/ollamaserver.py) and the stand-in
vLLM server (plugins/vllm/tests/standin_server.py): no internal error, no usage error, and the options that
change what is fetched, recorded or shown are seen to take effect (issue 18, "Done means").

``RUNBOOK`` below is the list, in the runbooks' order, with their placeholders filled in.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
for folder in ("plugins/hf/tests", "plugins/ollama/tests", "plugins/vllm/tests"):
    if str(REPO / folder) not in sys.path:
        sys.path.insert(0, str(REPO / folder))

import numpy as np  # noqa: E402
from safetensors.numpy import save as safetensors_save  # noqa: E402

from hubserver import StandInHub  # noqa: E402
from imageworks_models.testing import make_registry  # noqa: E402
from ollamaserver import StandInOllama  # noqa: E402
from ollamastore import write_model  # noqa: E402

BIN = Path(sys.executable).parent
STANDIN = REPO / "plugins" / "vllm" / "tests" / "standin_server.py"
CONFIG = {"model_type": "qwen2_vl", "architectures": ["Qwen2VLForConditionalGeneration"], "torch_dtype": "bfloat16",
          "vision_config": {"depth": 2}}
AWQ = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "torch_dtype": "float16",
       "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}


def js(obj: Any) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def weights(seed: int) -> bytes:
    return safetensors_save({"w": np.random.default_rng(seed).standard_normal(128).astype(np.float16)})


class Run:
    """The environment the runbooks' commands run in, and what they wrote."""

    def __init__(self, tmp: Path, hub: StandInHub, ollama: StandInOllama, store: Path):
        self.tmp, self.hub, self.ollama, self.store = tmp, hub, ollama, store
        self.qwen = "qwen2-vl-2b"
        self.registry = Path(make_registry(tmp / "configs"))
        self.weights = tmp / "ai-models" / "weights"
        self.weights.mkdir(parents=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.env = {**os.environ, "HOME": str(tmp / "home"), "XDG_CACHE_HOME": str(tmp / "cache"),
                    "IMAGEWORKS_REGISTRY_DIR": str(self.registry), "IMAGEWORKS_WEIGHTS_ROOT": str(self.weights),
                    "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp / "hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1",
                    "OLLAMA_HOST": ollama.host, "OLLAMA_MODELS": str(store), "IMAGEWORKS_USE_ARIA2": "0",
                    "IMAGEWORKS_VLLM_BIN": f"{shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))}",
                    "CHAT_PROXY_VLLM_PORT": str(port), "CHAT_PROXY_VLLM_SINGLE_PORT": "1",
                    "IMAGEWORKS_STOP_GRACE": "2", "IMAGEWORKS_ACTIVATION_TIMEOUT": "30"}
        for key in [k for k in self.env if k.startswith(("STANDIN_", "IMAGEWORKS_DEBUG", "COLUMNS"))]:
            del self.env[key]

    def entries(self) -> dict[str, dict]:
        out = subprocess.run([str(BIN / "imageworks-models"), "list", "--json", "--include-non-installed",
                              "--include-testing"], env=self.env, capture_output=True, text=True, check=True)
        return {e["name"]: e for e in json.loads(out.stdout)}

    def newest_backup(self) -> str:
        backups = sorted((self.registry / "backups").glob("model_registry.discovered.*.json"))
        assert backups, "no backup was taken"
        return str(backups[-1])

    def fill(self, word: str) -> str:
        if word == "<backup>":
            return self.newest_backup()
        if word == "<qwen>":  # the installed entry for the local qwen2-vl-2b folder (renamed by rediscovery)
            self.qwen = next(e["name"] for e in self.entries().values()
                             if e["installed"] and e["path"] == str(self.weights / "local" / "qwen2-vl-2b"))
            return self.qwen
        return (word.replace("<hub>", self.hub.url).replace("~/ai-models/weights", str(self.weights))
                .replace("<weights>", str(self.weights)))


Check = Callable[[Run, subprocess.CompletedProcess], None]


def _downloaded(run: Run, proc) -> None:
    folder = run.weights / "org" / "tiny-awq"
    got = sorted(p.name for p in folder.iterdir())
    assert "README.md" in got and "LICENSE" in got, got  # --include-optional
    assert "tokenizer.json" in got, got  # --support-repo brought it
    assert "spare.safetensors" not in got and "model.safetensors" in got, got  # --weights
    [entry] = [e for e in run.entries().values() if e["path"] == str(folder)]
    assert entry["format"] == "awq" and entry["location"] == "linux_wsl", entry  # --format, --location


def _url_download(run: Run, proc) -> None:
    assert (run.weights / "Qwen" / "Qwen2-VL-2B-Instruct" / "model.safetensors").is_file()


def _scan_dry(run: Run, proc) -> None:
    assert "tiny-random-llama  (placeholder" in proc.stdout and "dry run, nothing was written" in proc.stderr


def _scan_testing(run: Run, proc) -> None:
    testing = [e for e in run.entries().values() if "tiny-random" in (e["path"] or "")]
    assert testing, "--include-testing recorded no placeholder"


def _import_dry(run: Run, proc) -> None:
    assert "would add" in proc.stdout and not [e for e in run.entries() if e.endswith("-ollama-gguf-q4_k_m")]


def _import(run: Run, proc) -> None:
    ollama = [e for e in run.entries().values() if e["backend"] == "ollama"]
    assert ollama and all(e["location"] == "linux_wsl" for e in ollama if e["installed"]), ollama
    placeholder = run.entries()["qwen3-8b-ollama-legacy"]
    assert placeholder["deprecated"] is True  # --deprecate-placeholders


def _activated(run: Run, proc) -> None:
    assert f"{run.qwen} is active" in proc.stdout


def _current(run: Run, proc) -> None:
    assert proc.stdout.startswith(f"{run.qwen} (vllm): ready"), proc.stdout


def _stopped(run: Run, proc) -> None:
    assert proc.stdout.startswith(f"stopped {run.qwen}"), proc.stdout


def _locked(run: Run, proc) -> None:
    assert run.entries()[run.qwen]["lock_status"] == "locked"


def _purged(run: Run, proc) -> None:
    assert not [e for e in run.entries().values() if e["installed"] and e["backend"] == "ollama"]


def _rebuilt(run: Run, proc) -> None:
    assert [e for e in run.entries().values() if e["installed"] and e["backend"] == "ollama"]


def _jq_like(run: Run, proc) -> None:
    assert [r["name"] for r in json.loads(proc.stdout) if r["quantization"] == "q4_k_m"]


AWQ_NAME = "tiny-vllm-awq"
# (runbook, command line as the runbook writes it (placeholders filled by Run.fill), exit codes, check)
RUNBOOK: list[tuple[str, str, tuple[int, ...], Check | None]] = [
    # 000: the Model Loader runbook
    ("loader 1", "imageworks-loader list --role vision", (0,), None),
    ("loader 1", "imageworks-loader list --role vision --include-non-installed", (0,), None),
    ("loader 2", "imageworks-loader select qwen2-vl-2b", (0,), None),
    ("loader 3", "imageworks-loader verify qwen2-vl-2b", (0,), None),
    ("loader 3", "imageworks-loader lock qwen2-vl-2b --set-expected", (0,), _locked),
    ("loader 4", "imageworks-loader activate-model qwen2-vl-2b", (0,), _activated),
    ("loader 4", "imageworks-loader current-model", (0,), _current),
    ("loader 4", "imageworks-loader activate-model --stop", (0,), _stopped),
    ("loader 5", "imageworks-download normalize-formats --dry-run", (0,), None),
    # 003: the Model Downloader runbook
    ("downloader 3.1", 'imageworks-download download "org/tiny-awq@main" --format awq --location linux_wsl '
                       '--weights "model.safetensors" --support-repo org/tok --include-optional --non-interactive',
     (0,), _downloaded),
    ("downloader 3.1", "imageworks-download download <hub>/Qwen/Qwen2-VL-2B-Instruct --non-interactive", (0,),
     _url_download),
    ("downloader 3.2", "imageworks-download scan --base ~/ai-models/weights --dry-run", (0,), _scan_dry),
    ("downloader 3.2", "imageworks-download scan --base ~/ai-models/weights --update-existing --include-testing",
     (0,), _scan_testing),
    ("downloader 3.3", "python scripts/import_ollama_models.py --dry-run", (0,), _import_dry),
    ("downloader 3.3", "python scripts/import_ollama_models.py --backend ollama --location linux_wsl "
                       "--deprecate-placeholders", (0,), _import),
    ("downloader 3.4", "imageworks-download normalize-formats --dry-run", (0,), None),
    ("downloader 3.4", "imageworks-download normalize-formats --apply", (0,), None),
    ("downloader 3.4", "imageworks-download normalize-formats --rebuild --prune-missing --apply", (0,), None),
    ("downloader 3.4", "imageworks-download prune-duplicates --dry-run", (0,), None),
    ("downloader 3.4", "imageworks-download prune-deprecated --placeholders-only --dry-run", (0,), None),
    ("downloader 3.4", "imageworks-download purge-logical-only --dry-run", (0,), None),
    ("downloader 3.4", "imageworks-download reset-discovered --backend ollama --dry-run", (0,), None),
    ("downloader 3.4", "imageworks-download restore-ollama --backup <backup> --dry-run", (0,), None),
    ("downloader 3.4", "imageworks-download backfill-ollama-paths --dry-run", (0,), None),
    ("downloader 3.5", "imageworks-download verify", (0,), None),
    ("downloader 3.5", f"imageworks-download verify {AWQ_NAME} --fix-missing", (0,), None),
    ("downloader 3.5", "imageworks-download list --details", (0,), None),
    ("downloader 3.5", "imageworks-download list-roles --show-capabilities", (0,), None),
    ("downloader 3.5", "imageworks-download stats", (0,), None),
    ("downloader 3.6", f"imageworks-download remove {AWQ_NAME} --delete-files --force", (0,), None),
    ("downloader 3.6", f"imageworks-download remove {AWQ_NAME} --purge --delete-files --force", (0,), None),
    ("downloader 3.6", "imageworks-download verify --fix-missing", (0,), None),
    ("downloader 3.6", "imageworks-download normalize-formats --rebuild --prune-missing --apply", (0,), None),
    ("downloader 3.7", "imageworks-loader purge-imported --apply --providers all", (0,), _purged),
    ("downloader 3.7", "imageworks-loader ingest-local-hf --root ~/ai-models/weights", (0,), None),
    ("downloader 3.7", "imageworks-loader rebuild-ollama --location linux_wsl", (0,), _rebuilt),
    ("downloader 3.7", "imageworks-loader discover-all --hf-root ~/ai-models/weights", (0,), None),
    ("downloader 4", "imageworks-download list --json", (0,), _jq_like),
    ("downloader 6", "imageworks-download restore-ollama --backup <backup>", (0,), None),
    # 004: the GUI Models page guide: the CLI equivalents its actions show, on the entry the rediscovery of
    # 3.7 recorded for the local qwen2-vl-2b folder
    ("gui 2.1", "imageworks-models activate-model <qwen>", (0,), _activated),
    ("gui 3", "imageworks-models current-model", (0,), _current),
    ("gui 2.1", "imageworks-models activate-model --stop", (0,), _stopped),
    ("gui 2.2", "imageworks-models verify <qwen>", (0,), None),
    ("gui 2.2", "imageworks-models lock <qwen>", (0,), _locked),
    ("gui 2.2", "imageworks-models unlock <qwen>", (0,), None),
]


@pytest.fixture
def run(tmp_path):
    store = tmp_path / "ollama-models"
    (store / "manifests").mkdir(parents=True)
    (store / "blobs").mkdir()
    write_model(store, "qwen3", "8b")
    write_model(store, "llava", "7b", projector=True)
    with StandInHub() as hub, StandInOllama(store) as ollama:
        hub.add_repo("org/tiny-awq", {"config.json": js(AWQ), "model.safetensors": weights(1),
                                      "spare.safetensors": weights(2), "README.md": b"# tiny\n",
                                      "LICENSE": b"MIT\n"})
        hub.add_repo("org/tok", {"config.json": js(AWQ), "tokenizer.json": js({"version": "1.0"}),
                                 "tokenizer_config.json": js({"chat_template": "{{ messages }}"})})
        hub.add_repo("Qwen/Qwen2-VL-2B-Instruct", {"config.json": js(CONFIG), "model.safetensors": weights(3),
                                                   "preprocessor_config.json": js({"image_size": 448})})
        r = Run(tmp_path, hub, ollama, store)
        qwen = r.weights / "local" / "qwen2-vl-2b"
        qwen.mkdir(parents=True)
        (qwen / "config.json").write_bytes(js(CONFIG))
        (qwen / "model.safetensors").write_bytes(weights(4))
        placeholder = r.weights / "tiny-random-llama"
        placeholder.mkdir()
        (placeholder / "config.json").write_bytes(js(AWQ))
        (placeholder / "model.safetensors").write_bytes(weights(5))
        from imageworks_models.registry.store import RegistryStore

        with RegistryStore(r.registry).edit() as layers:
            layers.curated.put({"name": "qwen2-vl-2b", "backend": "vllm", "served_model_id": "Qwen/Qwen2-VL-2B",
                                "roles": ["caption"], "capabilities": {"text": True, "vision": True},
                                "backend_config": {"model_path": str(qwen)}})
            layers.discovered.put({"name": "qwen2-vl-2b", "download": {"path": str(qwen)}})
            layers.curated.put({"name": "qwen3-8b-ollama-legacy", "backend": "ollama",
                                "served_model_id": "qwen3:8b", "model_path": "ollama:/qwen3:8b"})
        yield r
        subprocess.run([str(BIN / "imageworks-loader"), "activate-model", "--stop"], env=r.env, capture_output=True)


def test_the_runbooks_commands_run_in_order_without_an_internal_error(run):
    for where, line, codes, check in RUNBOOK:
        argv = [run.fill(w) for w in shlex.split(line)]
        if argv[0] == "python":
            argv = [sys.executable, str(REPO / argv[1]), *argv[2:]]
        else:
            argv[0] = str(BIN / argv[0])
        proc = subprocess.run(argv, env=run.env, capture_output=True, text=True, timeout=120, cwd=REPO)
        said = f"[{where}] {line}\nexit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, said
        assert proc.returncode in codes, said
        if check is not None:
            try:
                check(run, proc)
            except AssertionError as exc:
                raise AssertionError(f"{said}\n{exc}") from None
