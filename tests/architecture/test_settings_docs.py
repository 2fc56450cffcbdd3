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
    # A setting's variable read outside settings.py would be a second, unchecked way to configure the tool. Reads of
    # variables that are not ours (COLUMNS, as click reads it) and handing the environment to a server are allowed.
    core = Path(imageworks_models.__file__).parent
    ours = {s.env for s in settings.SPECS if s.env} | {"IMAGEWORKS_CONFIG"}
    bad = []
    for path in core.rglob("*.py"):
        if path.name in ("settings.py", "testing.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            text = ast.unparse(node) if isinstance(node, (ast.Call, ast.Subscript)) else ""
            if not ("os.environ" in text or "os.getenv" in text):
                continue
            names = {c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
            if names & ours:
                bad.append(f"{path.relative_to(core)}:{node.lineno}: {text}")
    assert bad == []


def test_the_check_finds_a_setting_read_elsewhere(tmp_path):
    node = ast.parse('os.environ.get("IMAGEWORKS_DEBUG", "")').body[0].value
    names = {c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    assert "IMAGEWORKS_DEBUG" in names & {s.env for s in settings.SPECS if s.env}
