"""The Models page in a real browser: headless Chromium (Debian's ``chromium``, installed by ``.ci/run``) driven by
Playwright against ``imageworks-models gui`` running as its own process on 127.0.0.1. Loads the page, filters,
selects a row, verifies, toggles the lock, exports the CSV and presses the keyboard shortcuts; and what the GUI
runbook draws (issue 24): the layout, actions disabled with their reason, activation through the vLLM stand-in
server with the Active column updating by itself, edits validated by the core and confirmed, a two-tab edit
race, per-file verify detail, the Ollama card against the stand-in Ollama server, the gateway card against a
real gateway, ranked search, and every command the page shows run in a shell as pasted.

``scripts/gui_screenshots.py`` makes the README's screenshots the same way.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
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

ROOT = Path(__file__).resolve().parents[2]
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
    idle(page)  # the rest of the drawer follows its heading; a click during the rerun could be lost


def idle(page) -> None:
    """Wait until the page's script run is over (Streamlit's "Running..." status widget is gone)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=30_000)


def caption(page, text: str) -> None:
    """Wait for ``text`` on screen (the grids' hidden accessible tables hold the same words: the action log)."""
    page.get_by_text(text).filter(visible=True).first.wait_for(timeout=20_000)


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


# --- the runbook's page (issue 24) ------------------------------------------------------------------------


def table_cell(page, name: str, column: int):
    """The registry table's cell in ``name``'s row, column ``column`` (1-based; 2 is Active?), from the grid's
    accessible table (what a screen reader reads)."""
    grid = page.locator('[data-testid="stDataFrame"]').first
    row = grid.locator("tr", has=page.get_by_role("gridcell", name=name, exact=True, include_hidden=True))
    return row.locator(f'td[aria-colindex="{column}"]')


def curated_entry(app, name: str) -> dict | None:
    doc = json.loads((app["registry"] / "model_registry.curated.json").read_text())
    return next((e for e in doc["entries"] if e["name"] == name), None)


def type_into(scope, label: str, text: str) -> None:
    box = scope.get_by_label(label, exact=True)
    box.fill(text)
    box.press("Tab")  # Streamlit commits a text field when it loses focus
    box.page.wait_for_timeout(600)


def test_layout_table_left_drawer_right_import_top_right_cards_diff_and_actions(page, app):
    name = app["names"][0]
    choose(page, name)
    table = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
    drawer = page.get_by_role("heading", name=name, exact=True).bounding_box()
    importer = page.get_by_role("button", name="Import from downloads").bounding_box()

    assert table["x"] + table["width"] <= drawer["x"], (table, drawer)  # the drawer is the right-hand panel
    assert importer["x"] >= drawer["x"] and importer["y"] < table["y"], (importer, table)  # top right
    for text in ("Provenance:", "Download path:", "Served id:", "Backend config", "Memory fit:", "Diff viewer",
                 "Recent actions"):
        caption(page, text)
    for backend in ("vllm", "lmdeploy", "ollama"):  # a card each, with its health dot
        page.locator("strong").filter(has_text=re.compile(f"^(🟢|🔴|⚪) {backend}$")).first.wait_for(timeout=20_000)
    page.locator("strong").filter(has_text="🟢 ollama").wait_for()  # the stand-in Ollama is up
    caption(page, "curated over discovered")  # this entry has both layers

    page.get_by_role("button", name="Import from downloads").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Discovered entry").wait_for(timeout=20_000)
    dialog.get_by_role("button", name="Append to curated").wait_for()


def test_actions_that_cannot_be_taken_are_disabled_with_the_reason(page, app):
    choose(page, EMBED)
    for label in ("Activate via proxy", "Verify hash", "Toggle lock", "Stop"):
        assert page.get_by_role("button", name=label).is_disabled(), label
    caption(page, "Activate: not installed")
    caption(page, "Stop: not running")

    choose(page, REMOTE)
    assert page.get_by_role("button", name="Activate via proxy").is_disabled()
    caption(page, "Activate: served remotely at http://127.0.0.1:9/v1; nothing is started here")
    caption(page, "Verify: remote only")

    choose(page, app["served"])
    assert page.get_by_role("button", name="Activate via proxy").is_enabled()
    assert page.get_by_role("button", name="Stop").is_disabled()


def test_activate_then_active_column_and_card_update_without_reload(page, app):
    from playwright.sync_api import expect

    served = app["served"]
    choose(page, served)
    expect(table_cell(page, served, 2)).to_have_text("", timeout=20_000)

    page.get_by_role("button", name="Activate via proxy").click()
    caption(page, f"imageworks-models activate-model {served}")
    page.get_by_role("button", name="Confirm").click()

    page.get_by_text("Activating…").first.wait_for(timeout=20_000)  # the status while the server starts
    expect(table_cell(page, served, 2)).to_have_text("✅", timeout=60_000)  # no reload: the page polls
    caption(page, f"{served} is active at http://127.0.0.1:{app['serve_port']}/v1")
    caption(page, f"active: {served} (ready)")  # the vLLM card
    assert page.get_by_role("button", name="Stop").is_enabled()

    page.get_by_role("button", name="Stop").click()
    page.get_by_role("button", name="Confirm").click()
    expect(table_cell(page, served, 2)).to_have_text("", timeout=60_000)
    caption(page, f"stopped {served}")
    assert wait_until(lambda: not standin_processes(), 10)


def test_edit_errors_show_next_to_the_field_and_a_save_is_confirmed_first(page, app):
    name = app["names"][1]
    choose(page, name)
    page.get_by_role("button", name="Edit entry").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Backend", exact=True).wait_for(timeout=20_000)
    before = (app["registry"] / "model_registry.curated.json").read_bytes()

    type_into(dialog, "Backend", "tensorrt")
    type_into(dialog, "Roles (comma-separated)", "chat, Not A Role")
    dialog.get_by_role("button", name="Save to curated").click()

    backend_error = dialog.get_by_text("backend: no loaded plugin provides the 'tensorrt' backend")
    backend_error.wait_for(timeout=20_000)
    roles_error = dialog.get_by_text("roles: 'Not A Role' is not a role name")
    roles_error.wait_for()
    below = backend_error.bounding_box()["y"]
    assert dialog.get_by_label("Backend", exact=True).bounding_box()["y"] < below < \
        dialog.get_by_label("Backend config (JSON)").bounding_box()["y"]  # right under its field
    assert (app["registry"] / "model_registry.curated.json").read_bytes() == before

    type_into(dialog, "Backend", "vllm")
    type_into(dialog, "Roles (comma-separated)", "chat")
    type_into(dialog, "Display name", "Renamed In The Dialog")
    dialog.get_by_role("button", name="Save to curated").click()
    dialog.get_by_text("change(s) to the curated layer?").wait_for(timeout=20_000)
    dialog.get_by_role("button", name="Confirm save").wait_for()
    assert (app["registry"] / "model_registry.curated.json").read_bytes() == before  # not before the confirm

    dialog.get_by_role("button", name="Confirm save").click()
    dialog.get_by_text("to the curated layer").last.wait_for(timeout=20_000)
    deadline = time.monotonic() + 20
    while (curated_entry(app, name) or {}).get("display_name") != "Renamed In The Dialog":
        assert time.monotonic() < deadline, curated_entry(app, name)
        time.sleep(0.2)
    assert curated_entry(app, name)["roles"] == ["chat"]


def test_two_tabs_editing_the_same_entry_the_second_save_is_refused(browser, app):
    name = app["names"][0]
    tabs = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1500, "height": 1100})
        tab = context.new_page()
        tab.goto(app["url"])
        tab.get_by_text("Selected model").first.wait_for(timeout=60_000)
        choose(tab, name)
        tab.get_by_role("button", name="Edit entry").click()
        tab.get_by_role("dialog").get_by_label("Display name", exact=True).wait_for(timeout=20_000)
        tabs.append((context, tab))
    try:
        (_, first), (_, second) = tabs
        for tab, text in ((first, "From The First Tab"), (second, "From The Second Tab")):
            dialog = tab.get_by_role("dialog")
            type_into(dialog, "Display name", text)
            dialog.get_by_role("button", name="Save to curated").click()
            dialog.get_by_role("button", name="Confirm save").wait_for(timeout=20_000)

        second.get_by_role("dialog").get_by_role("button", name="Confirm save").click()
        second.get_by_text("saved 1 field(s)").wait_for(timeout=20_000)
        first.get_by_role("dialog").get_by_role("button", name="Confirm save").click()
        first.get_by_text("changed since you opened it").wait_for(timeout=20_000)

        assert curated_entry(app, name)["display_name"] == "From The Second Tab"
    finally:
        for context, _ in tabs:
            context.close()


def test_verify_shows_each_file_with_hash_prefixes_and_the_time_taken(page, app):
    gguf = next(n for n in app["names"] if "gguf" in n)
    choose(page, gguf)

    page.get_by_role("button", name="Verify hash").click()

    caption(page, f"verify {gguf}:")
    page.get_by_text("took").first.wait_for(timeout=20_000)
    files = page.locator('[data-testid="stDataFrame"]').filter(
        has=page.get_by_role("columnheader", name="Expected", include_hidden=True))
    files.first.wait_for(timeout=20_000)
    for header in ("File", "Result", "Expected"):  # the narrow drawer scrolls to Actual and Size
        files.first.get_by_role("columnheader", name=header, exact=True, include_hidden=True).wait_for(
            state="attached")
    files.first.get_by_role("gridcell", name="Qwen3-8B-Q4_K_M.gguf", include_hidden=True).wait_for(state="attached")


def test_the_ollama_card_shows_online_and_the_loaded_tag(page, app):
    caption(page, f"loaded: {app['tag']}")
    page.get_by_text("online").first.wait_for()


def test_search_ranks_prefix_matches_before_substrings(page, app):
    page.get_by_role("textbox", name="Search").fill("qwen")
    page.get_by_role("textbox", name="Search").press("Enter")
    caption(page, "3 of 5 entries")

    with page.expect_download() as download:
        page.get_by_role("button", name="Export table (CSV)").click()
    order = [r["name"] for r in csv.DictReader(io.StringIO(Path(download.value.path()).read_text()))]

    assert [n.split("-")[0] for n in order] == ["qwen3", "qwen3", "remote"], order  # names starting "qwen" first


def test_every_command_the_page_shows_runs_as_pasted(page, app):
    """Each command shown (captions, the confirmation) is ASCII and runs in a shell as pasted, with --dry-run
    added where the command has it, against the same registry."""
    import shlex

    gguf = next(n for n in app["names"] if "gguf" in n)
    choose(page, gguf)
    page.get_by_role("button", name="Verify hash").click()
    caption(page, f"imageworks-models verify {gguf} --quick")
    shown = {c for c in page.locator("code").all_inner_texts() if c.startswith("imageworks-")}
    choose(page, app["served"])
    page.get_by_role("button", name="Activate via proxy").click()
    caption(page, f"imageworks-models activate-model {app['served']}")
    shown |= {c for c in page.locator("code").all_inner_texts() if c.startswith("imageworks-")}
    page.get_by_role("button", name="Cancel").click()
    shown = sorted(shown)

    assert len(shown) >= 3, shown  # fit, verify, activate-model at least
    bin_dir = Path(sys.executable).parent
    env = {**app["env"], "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    for line in shown:
        assert line.isascii(), line
        argv = shlex.split(line)
        helptext = subprocess.run(argv[:2] + ["--help"], env=env, capture_output=True, text=True).stdout
        pasted = line + (" --dry-run" if "--dry-run" in helptext else "")
        done = subprocess.run(["bash", "-c", pasted], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (pasted, done.stdout, done.stderr)


def test_a_2000_entry_registry_shows_the_table_then_the_drawer_and_search_ranks_the_exact_name_first(browser,
                                                                                                    tmp_path):
    """The size bench/gui_load.py times: the table comes first, the drawer follows by itself, and a search
    puts the exact name on the table's first row."""
    registry = tmp_path / "configs"
    registry.mkdir()
    backends = ("vllm", "lmdeploy", "ollama")
    entries = [{"name": f"model{i:05d}-{backends[i % 3]}", "backend": backends[i % 3], "display_name": f"Model {i}",
                "download": {"path": f"/nonexistent/m{i}"}} for i in range(2000)]
    (registry / "model_registry.discovered.json").write_text(json.dumps({"schema_version": 1, "entries": entries}))
    env = {**os.environ, "HOME": str(tmp_path), "IMAGEWORKS_REGISTRY_DIR": str(registry),
           "IMAGEWORKS_CACHE_DIR": str(tmp_path / "cache"), "OLLAMA_HOST": f"http://127.0.0.1:{free_port()}",
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("imageworks-models")), "gui", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the GUI did not start within 60 s"
                time.sleep(0.2)
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/Models")
        caption(page, "2000 of 2000 entries")
        page.get_by_role("heading", name="model00000-vllm", exact=True).wait_for(timeout=30_000)  # no click needed

        page.get_by_role("textbox", name="Search").fill("model01234-lmdeploy")
        page.get_by_role("textbox", name="Search").press("Enter")

        from playwright.sync_api import expect

        first = page.locator('[data-testid="stDataFrame"]').first.locator('td[aria-colindex="1"]').first
        expect(first).to_have_text("model01234-lmdeploy", timeout=30_000)
    finally:
        context.close()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def test_the_gateway_card_shows_a_model_the_running_gateway_loaded(page, app):
    """A real ``imageworks-models gateway`` on the same registry: the card says it is not running, then (no
    reload: the page watches the gateway's state file) that it runs, then lists the model a request made it
    load, as ``gateway status`` does."""
    import requests

    from imageworks_models import testing

    served = app["served"]
    gateway_card = page.locator('[data-testid="stVerticalBlock"]').filter(  # the innermost: the card's own box
        has=page.locator("strong").filter(has_text=re.compile(r"^(🟢|⚪) gateway$"))).last
    gateway_card.get_by_text("not running").wait_for(timeout=20_000)
    gw = testing.GatewayProcess(env=app["env"], log_path=app["root"] / "gateway.log").start()
    try:
        page.locator("strong").filter(has_text=re.compile(r"^🟢 gateway$")).wait_for(timeout=20_000)
        gateway_card.get_by_text("Residents: none").wait_for(timeout=20_000)

        answer = requests.post(f"{gw.url}/chat/completions", timeout=60,
                               json={"model": served, "messages": [{"role": "user", "content": "one two"}]})
        assert answer.status_code == 200, answer.text

        gateway_card.get_by_text(re.compile(rf"Residents: {re.escape(served)} \(ready")).wait_for(timeout=20_000)
        gateway_card.get_by_text(f"http://127.0.0.1:{gw.port}").wait_for()
        shown = subprocess.run([str(Path(sys.executable).with_name("imageworks-models")), "gateway", "status",
                                "--json"], env=app["env"], capture_output=True, text=True, timeout=60)
        assert [m["name"] for m in json.loads(shown.stdout)["models"]] == [served]  # what the CLI says too
    finally:
        assert gw.stop() == 0
    gateway_card.get_by_text("not running").wait_for(timeout=20_000)
    assert wait_until(lambda: not standin_processes(), 10)
