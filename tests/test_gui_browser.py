"""The Models page in a real browser: headless Chromium (Debian's ``chromium``, installed by ``.ci/run``) driven by
Playwright against ``imageworks-models gui`` running as its own process on 127.0.0.1. Loads the page, filters,
selects a row, verifies, toggles the lock, exports the CSV and presses the keyboard shortcuts; and what the GUI
runbook draws (issue 24): the layout, actions disabled with their reason, activation through the vLLM stand-in
server with the Active column updating by itself, edits validated by the core and confirmed, a two-tab edit
race, per-file verify detail, the Ollama card against the stand-in Ollama server, ranked search, and every
command the page shows run in a shell as pasted.

``scripts/gui_screenshots.py`` makes the README's screenshots the same way.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from modelfiles import write_bf16, write_gguf

from imageworks_models.registry.store import RegistryStore
from imageworks_models.testing import run_cli

ROOT = Path(__file__).resolve().parent.parent
for _helpers in (ROOT / "plugins" / "vllm" / "tests", ROOT / "plugins" / "ollama" / "tests"):
    if str(_helpers) not in sys.path:  # --import-mode=importlib: the stand-ins are imported by name
        sys.path.insert(0, str(_helpers))

from ollamaserver import StandInOllama  # noqa: E402
from ollamastore import write_model  # noqa: E402
from orchestration import STANDIN_COMMAND, reap_orphans, standin_processes, wait_until  # noqa: E402

EMBED = "bge-embedder"  # curated only, lmdeploy, not installed: activate/verify/lock disabled
REMOTE = "remote-qwen"  # curated only, served at a base_url

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Chromium is not installed (.ci/run installs Debian's chromium package)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """A registry of three scanned models (one with roles and an alias, one set up to be served by the vLLM
    stand-in), a not-installed and a remote entry, a stand-in Ollama server with one model loaded, and the GUI
    serving it all."""
    root = tmp_path_factory.mktemp("gui")
    weights = root / "weights"
    for name in ("Qwen3-4B", "Mistral-7B-Instruct"):
        (weights / name).mkdir(parents=True)
        (weights / name / "config.json").write_text(json.dumps({"model_type": "qwen3", "torch_dtype": "bfloat16",
                                                                 "architectures": ["Qwen3ForCausalLM"]}))
        write_bf16(weights / name / "model.safetensors")
    write_gguf(weights / "Qwen3-8B-Q4_K_M.gguf", 15)
    registry = root / "configs"
    registry.mkdir()
    store = root / "ollama-models"
    (store / "manifests").mkdir(parents=True)
    (store / "blobs").mkdir()
    tag = write_model(store, "llama3.2", "3b").served_id
    ollama = StandInOllama(store).start()
    from datetime import UTC, datetime, timedelta

    ollama.loaded[tag] = datetime.now(UTC) + timedelta(hours=1)
    serve_port = free_port()
    env = {**os.environ, "HOME": str(root), "IMAGEWORKS_REGISTRY_DIR": str(registry),
           "IMAGEWORKS_WEIGHTS_ROOT": str(weights), "IMAGEWORKS_CACHE_DIR": str(root / "cache"),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", "OLLAMA_HOST": ollama.host, "OLLAMA_MODELS": str(store),
           "IMAGEWORKS_VLLM_BIN": STANDIN_COMMAND, "CHAT_PROXY_VLLM_PORT": str(serve_port),
           "CHAT_PROXY_VLLM_SINGLE_PORT": "1", "IMAGEWORKS_STOP_GRACE": "2", "IMAGEWORKS_ACTIVATION_TIMEOUT": "30"}
    for key in [k for k in env if k.startswith("STANDIN_")]:
        del env[key]
    old = dict(os.environ)
    os.environ.update(env)
    try:
        assert run_cli("scan", "--base", str(weights), prog="imageworks-download").exit_code == 0
        names = sorted(e["name"] for e in json.loads((registry / "model_registry.discovered.json").read_text())[
            "entries"])
        with RegistryStore(registry).edit() as layers:
            layers.curated.put({"name": names[0], "display_name": "Mistral Instruct", "roles": ["chat"],
                                "aliases": ["house-assistant"]})
            served = next(n for n in names if "4b" in n)
            layers.curated.put({"name": served, "backend_config": {"model_path": str(weights / "Qwen3-4B")}})
            layers.curated.put({"name": EMBED, "backend": "lmdeploy", "roles": ["embedding"]})
            layers.curated.put({"name": REMOTE, "backend": "vllm",
                                "backend_config": {"base_url": "http://127.0.0.1:9/v1"}})
    finally:
        os.environ.clear()
        os.environ.update(old)
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("imageworks-models")), "gui", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        ollama.stop()
        pytest.fail("the GUI did not start within 60 s")
    yield {"url": url + "/Models", "registry": registry, "names": names, "env": env, "served": served,
           "tag": tag, "serve_port": serve_port, "root": root}
    try:
        subprocess.run([str(Path(sys.executable).with_name("imageworks-models")), "activate-model", "--stop"],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        ollama.stop()
        left = standin_processes()
        for pid in left:
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        wait_until(lambda: not standin_processes(), 5)
        reap_orphans(set(left))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--disable-background-networking", "--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, app):
    context = browser.new_context(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
    pg = context.new_page()
    pg.goto(app["url"])
    pg.get_by_text("Selected model").first.wait_for(timeout=60_000)
    pg.wait_for_function("document.__imageworksKeys === true", timeout=20_000)  # the shortcut keys are bound
    yield pg
    context.close()


def choose(page, name: str) -> None:
    """Select ``name`` in the drawer's "Selected model" box and wait for its drawer."""
    page.get_by_label("Selected model").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.get_by_role("heading", name=name, exact=True).wait_for(timeout=20_000)
    page.wait_for_timeout(500)  # the rest of the drawer follows its heading


def caption(page, text: str) -> None:
    page.get_by_text(text).first.wait_for(timeout=20_000)


def locked(app, name: str) -> bool:
    doc = json.loads((app["registry"] / "model_registry.discovered.json").read_text())
    entry = next(e for e in doc["entries"] if e["name"] == name)
    return bool((entry.get("version_lock") or {}).get("locked"))


def test_page_loads_with_the_whole_table_and_a_screenshot(page, app, tmp_path):
    caption(page, "5 of 5 entries")
    target = Path(os.environ.get("GUI_SCREENSHOT") or tmp_path / "gui-models.png")
    page.locator('[data-testid="stDataFrame"] canvas').first.wait_for(timeout=20_000)
    page.wait_for_timeout(2500)  # the grid paints after its canvas appears
    page.screenshot(path=str(target), full_page=False)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fuzzy_search_finds_an_entry_by_its_alias(page, app):
    page.get_by_role("textbox", name="Search").fill("house assist")
    page.get_by_role("textbox", name="Search").press("Enter")

    caption(page, "1 of 5 entries")
    page.get_by_role("heading", name=app["names"][0]).wait_for(timeout=20_000)


def test_backend_filter_in_the_sidebar(page):
    page.get_by_text("Lock status").first.wait_for()
    page.get_by_label("Include not installed").wait_for()
    caption(page, "5 of 5 entries")


def test_select_a_row_and_verify_it(page, app):
    gguf = next(n for n in app["names"] if "gguf" in n)
    choose(page, gguf)

    page.get_by_role("button", name="Verify hash").click()

    caption(page, f"verify {gguf}: ok")
    caption(page, f"imageworks-models verify {gguf}")


def test_toggle_lock_writes_the_registry(page, app):
    name = app["names"][0]
    choose(page, name)
    before = locked(app, name)

    page.get_by_role("button", name="Toggle lock").click()

    deadline = time.monotonic() + 20
    while locked(app, name) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert locked(app, name) != before


def test_export_csv_downloads_the_filtered_table(page, app):
    with page.expect_download() as download:
        page.get_by_role("button", name="Export table (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))

    assert sorted(r["name"] for r in rows) == sorted(app["names"] + [EMBED, REMOTE])
    assert {r["name"]: r["roles"] for r in rows}[app["names"][0]] == "chat"


def test_shortcut_f_focuses_the_search_box(page):
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("f")

    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Search"


def test_shortcut_l_toggles_the_lock_and_a_asks_to_activate(page, app):
    name = app["names"][0]
    choose(page, name)
    before = locked(app, name)
    page.evaluate("document.activeElement && document.activeElement.blur()")

    page.keyboard.press("l")
    deadline = time.monotonic() + 20
    while locked(app, name) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    page.get_by_role("button", name="Activate via proxy").wait_for()
    page.wait_for_timeout(1000)  # the page re-renders after the lock changed
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("a")

    assert locked(app, name) != before
    page.get_by_role("button", name="Confirm").wait_for(timeout=20_000)
    caption(page, f"imageworks-models activate-model {name}")


def test_shortcut_r_reloads_what_another_process_changed(page, app):
    name = app["names"][1]
    with RegistryStore(app["registry"]).edit() as layers:
        layers.curated.put({"name": name, "display_name": "Renamed Elsewhere"})
    page.evaluate("document.activeElement && document.activeElement.blur()")

    page.keyboard.press("r")

    page.get_by_role("textbox", name="Search").fill("Renamed Elsewhere")
    page.get_by_role("textbox", name="Search").press("Enter")
    caption(page, "1 of 5 entries")
