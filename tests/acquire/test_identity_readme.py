"""The README's "How entries are identified" walk-through, run line by line as a new user would: the shipped
catalog, a stand-in Hub holding the catalog's Qwen/Qwen3-8B-AWQ, and the console scripts as processes.

The commands are read from the README itself, so the manual and this test cannot drift apart."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HF_TESTS = REPO / "plugins" / "hf" / "tests"
if str(HF_TESTS) not in sys.path:
    sys.path.insert(0, str(HF_TESTS))

from hubserver import StandInHub  # noqa: E402
from test_download import AWQ_CONFIG, js, safetensors_bytes  # noqa: E402

BIN = Path(sys.executable).parent


def readme_walkthrough() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### How entries are identified", 1)[1].split("\n### ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.strip()]


@pytest.fixture
def fresh_checkout(tmp_path, monkeypatch):
    """A copy of the shipped catalog as ./configs in the working folder, nothing else configured."""
    work = tmp_path / "cwd"
    work.mkdir(exist_ok=True)
    shutil.copytree(REPO / "configs", work / "configs", ignore=shutil.ignore_patterns("backups", ".*"))
    monkeypatch.chdir(work)
    return work


def test_the_readme_walkthrough_works_verbatim(fresh_checkout, tmp_path):
    commands = readme_walkthrough()
    assert [c[:2] for c in commands] == [["imageworks-models", "download"], ["imageworks-models", "list"],
                                         ["imageworks-models", "verify"], ["imageworks-models", "lock"],
                                         ["imageworks-models", "activate-model"]]
    with StandInHub() as hub:
        hub.add_repo("Qwen/Qwen3-8B-AWQ", {"config.json": js(AWQ_CONFIG), "model.safetensors": safetensors_bytes(),
                                           "tokenizer_config.json": js({"chat_template": "{{ messages }}"})})
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGEWORKS_", "HF_"))}
        env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_TELEMETRY="1", HF_HOME=str(tmp_path / "hf"),
                   PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
        outputs = []
        for argv in commands:
            done = subprocess.run(argv, cwd=fresh_checkout, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, (argv, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr
            outputs.append(done.stdout)

    home = Path(os.environ["HOME"])  # the test's private HOME: where the catalog's model_path points
    model = home / "ai-models" / "weights" / "Qwen" / "Qwen3-8B-AWQ"
    assert (model / "model.safetensors").is_file()
    listed = outputs[1]
    assert "qwen3-8b-vllm-awq" in listed
    discovered = json.loads((fresh_checkout / "configs" / "model_registry.discovered.json").read_text())
    [entry] = [e for e in discovered["entries"] if e["name"] == "qwen3-8b-vllm-awq"]
    assert entry["download"]["path"] == str(model)
    assert entry["version_lock"]["locked"] is True
    assert not [e for e in discovered["entries"] if e["name"] != "qwen3-8b-vllm-awq" and
                (e.get("source") or {}).get("repo_id") == "Qwen/Qwen3-8B-AWQ"]  # one model, one entry
    assert f"vllm serve {model}" in outputs[4] and "files are not" not in outputs[4]
