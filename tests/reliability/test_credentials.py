"""Item 11 of issue 17 (RELIABILITY S12): ``user:password@`` in HF_ENDPOINT, OLLAMA_HOST or any URL is never
printed, logged, audited or shown, and such URLs are parsed correctly (no raw ValueError)."""

from __future__ import annotations

import os
import socket

from _helpers import cli, make_registry

from imageworks_models.registry import audit
from imageworks_models.serving.endpoints import normalize_host_url
from imageworks_models.redact import redact
from imageworks_models.errors import DownloadError

SECRET = "s3cr3t-Pa55"


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_with(**extra) -> dict:
    return {**os.environ, **extra}


def test_s12_config_never_shows_the_password(tmp_path):
    env = env_with(HF_ENDPOINT=f"https://bob:{SECRET}@hub.example", OLLAMA_HOST=f"bob:{SECRET}@127.0.0.1:1",
                   IMAGEWORKS_REGISTRY_DIR=str(tmp_path))
    for args in (["config"], ["config", "--json"]):
        result = cli(*args, env=env)
        assert result.returncode == 0, result.stderr
        assert SECRET not in result.stdout + result.stderr
        assert "***@hub.example" in result.stdout


def test_s12_a_credentialed_ollama_host_is_parsed_and_errors_hide_the_password(tmp_path):
    port = dead_port()
    assert normalize_host_url(f"http://bob:{SECRET}@127.0.0.1:{port}", 11434) == f"http://bob:{SECRET}@127.0.0.1:{port}"
    assert normalize_host_url(f"bob:{SECRET}@[::1]", 11434) == f"http://bob:{SECRET}@[::1]:11434"
    env = env_with(OLLAMA_HOST=f"http://bob:{SECRET}@127.0.0.1:{port}", IMAGEWORKS_REGISTRY_DIR=str(tmp_path))
    result = cli("health", env=env)
    out = result.stdout + result.stderr
    assert SECRET not in out
    assert "ValueError" not in out and "Traceback" not in out and "internal error" not in out


def test_s12_hub_errors_hide_the_password(tmp_path):
    port = dead_port()
    reg = make_registry(tmp_path / "reg", curated=[], discovered=[])
    env = env_with(HF_ENDPOINT=f"http://bob:{SECRET}@127.0.0.1:{port}", IMAGEWORKS_REGISTRY_DIR=str(reg),
                   IMAGEWORKS_WEIGHTS_ROOT=str(tmp_path / "w"), IMAGEWORKS_DOWNLOAD_CONNECT_TIMEOUT="2")
    result = cli("download", "org/model", env=env, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "***@127.0.0.1" in result.stderr  # the error names the endpoint, without the password


def test_s12_errors_the_audit_trail_and_redact_cover_every_form(tmp_path):
    err = DownloadError(f"cannot reach https://bob:{SECRET}@hub.example/api/models", hint=f"check bob:{SECRET}@proxy")
    assert SECRET not in err.message and SECRET not in err.hint and SECRET not in str(err)
    audit.record(tmp_path, "registry-write", url=f"https://tok:{SECRET}@hub.example/x", error=ValueError(
        f"bad http://u:{SECRET}@h"))
    text = (tmp_path / audit.AUDIT_FILE).read_text()
    assert text and SECRET not in text and "***@hub.example" in text
    for raw in (f"https://bob:{SECRET}@h/x", f"ws://{SECRET}@h", f"OLLAMA_HOST=bob:{SECRET}@10.0.0.1:11434"):
        assert SECRET not in redact(raw)
    assert redact("mail me at a@b.c, sha256:" + "a" * 64) == "mail me at a@b.c, sha256:" + "a" * 64
