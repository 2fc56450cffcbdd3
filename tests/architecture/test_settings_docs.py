"""Settings bound to their docs (issue 19 item 5): each setting is declared once in ``settings.SPECS``; the README's
table is generated (test_readme_generated.py); ``config`` shows every setting; the environment is read nowhere else."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import imageworks_models
from imageworks_models import settings

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_keys_and_variables_are_unique():
    keys = [s.key for s in settings.SPECS]
    envs = [s.env for s in settings.SPECS if s.env]
    assert len(keys) == len(set(keys)) and len(envs) == len(set(envs))


def test_every_setting_has_a_meaning():
    assert all(s.help.strip() for s in settings.SPECS)


def test_config_shows_every_setting(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(tmp_path / "configs"))
    result = cli("config", "--json")
    assert result.exit_code == 0, result.stderr
    assert set(json.loads(result.stdout)) == {s.key for s in settings.SPECS}


def test_debug_is_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("IMAGEWORKS_DEBUG", "yes")
    assert settings.debug_enabled() is True
    monkeypatch.setenv("IMAGEWORKS_DEBUG", "0")
    assert settings.debug_enabled() is False
    monkeypatch.setenv("IMAGEWORKS_DEBUG", "maybe")  # not a boolean: off, never a crash while reporting an error
    assert settings.debug_enabled() is False
    (tmp_path / "imageworks.toml").write_text("debug = true\n")
    monkeypatch.delenv("IMAGEWORKS_DEBUG")
    assert settings.debug_enabled(settings.load_settings(cwd=tmp_path)) is True


def test_the_environment_is_read_only_by_settings():
    # os.environ / os.getenv outside settings.py would be a second, unchecked way to configure the tool. Allowed:
    # handing the environment to a child process (spawn), and the test helpers.
    core = Path(imageworks_models.__file__).parent
    allowed = {"settings.py", "testing.py"}
    bad = []
    for path in core.rglob("*.py"):
        if path.name in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") \
                    and isinstance(node.value, ast.Name) and node.value.id == "os":
                parent_src = ast.unparse(node)
                bad.append(f"{path.relative_to(core)}:{node.lineno}: {parent_src}")
    spawns = [b for b in bad if b.startswith("serving/activation.py")]
    assert len(spawns) <= 1  # the server's environment is built from os.environ plus the entry's allowed env
    assert [b for b in bad if b not in spawns] == []
