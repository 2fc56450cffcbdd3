"""Regenerate the README's screenshots of the Models page (docs/gui-*.png).

Builds a small registry the way a user gets one (real model files written by tests/modelfiles.py, registered by
the real ``scan``, plus curated overlays), starts the stand-in Ollama server (plugins/ollama/tests/ollamaserver.py)
with one model loaded, the stand-in nvidia-smi (tests/standins/nvidia_smi.py) describing an H100, and the vLLM
stand-in (plugins/vllm/tests/standin_server.py) as the vLLM binary, runs
``imageworks-models gui`` on a free loopback port, and photographs the main views in headless Chromium
(Debian's ``chromium``) driven by Playwright: the table with the action drawer and cards, an activated model,
a verify's per-file detail, the edit dialog's confirmation, and the import wizard. Nothing leaves the machine.

Run by hand:  uv run python scripts/gui_screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for helpers in (REPO / "tests", REPO / "plugins" / "vllm" / "tests", REPO / "plugins" / "ollama" / "tests"):
    sys.path.insert(0, str(helpers))

from modelfiles import write_bf16, write_gguf  # noqa: E402
from ollamaserver import StandInOllama  # noqa: E402
from ollamastore import write_model  # noqa: E402
from orchestration import STANDIN_COMMAND  # noqa: E402

VIEWPORT = {"width": 1500, "height": 1250}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build(root: Path, env: dict[str, str]) -> str:
    """The demo registry; returns the entry set up to be served by the vLLM stand-in."""
    weights = root / "weights"
    for name in ("Qwen3-4B", "Mistral-7B-Instruct"):
        (weights / name).mkdir(parents=True)
        (weights / name / "config.json").write_text(json.dumps({"model_type": "qwen3", "torch_dtype": "bfloat16",
                                                                 "architectures": ["Qwen3ForCausalLM"]}))
        write_bf16(weights / name / "model.safetensors")
    write_gguf(weights / "Qwen3-8B-Q4_K_M.gguf", 15)
    cli = str(Path(sys.executable).with_name("imageworks-download"))
    subprocess.run([cli, "scan", "--base", str(weights)], env=env, check=True, stdout=subprocess.DEVNULL)
    registry = Path(env["IMAGEWORKS_REGISTRY_DIR"])
    names = sorted(e["name"] for e in json.loads((registry / "model_registry.discovered.json").read_text())["entries"])
    served = next(n for n in names if "4b" in n)
    curated = json.loads((registry / "model_registry.curated.json").read_text()) \
        if (registry / "model_registry.curated.json").exists() else {"schema_version": 1, "entries": []}
    curated["entries"] += [
        {"name": served, "display_name": "Qwen3 4B", "roles": ["chat", "tools"], "aliases": ["house-assistant"],
         "backend_config": {"model_path": str(weights / "Qwen3-4B")}},
        {"name": next(n for n in names if "mistral" in n), "display_name": "Mistral 7B Instruct", "roles": ["chat"]},
        {"name": "bge-embedder", "backend": "lmdeploy", "roles": ["embedding"]},
        {"name": "remote-qwen", "backend": "vllm", "roles": ["caption"],
         "backend_config": {"base_url": "http://127.0.0.1:9/v1"}}]
    curated["entries"].sort(key=lambda e: e["name"])
    (registry / "model_registry.curated.json").write_text(json.dumps(curated, indent=2) + "\n")
    return served


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def choose(page, name: str) -> None:
    page.get_by_label("Selected model").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.get_by_role("heading", name=name, exact=True).wait_for(timeout=20_000)
    page.wait_for_timeout(800)


def settle(page) -> None:
    page.locator('[data-testid="stDataFrame"] canvas').first.wait_for(timeout=30_000)
    page.wait_for_timeout(2000)  # the grid paints after its canvas appears


def shoot(browser, url: str, served: str, out: Path) -> list[Path]:
    from playwright.sync_api import expect

    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(url)
    page.get_by_text("Selected model").first.wait_for(timeout=60_000)
    choose(page, served)
    settle(page)
    made = []

    def snap(name: str) -> None:
        page.mouse.move(5, VIEWPORT["height"] - 5)  # no tooltip in the picture
        page.wait_for_timeout(300)
        path = out / name
        page.screenshot(path=str(path))
        made.append(path)

    snap("gui-models.png")
    page.get_by_role("button", name="Activate via proxy").click()
    page.get_by_role("button", name="Confirm").click()
    grid = page.locator('[data-testid="stDataFrame"]').first
    row = grid.locator("tr", has=page.get_by_role("gridcell", name=served, exact=True, include_hidden=True))
    expect(row.locator('td[aria-colindex="2"]')).to_have_text("✅", timeout=60_000)
    settle(page)
    snap("gui-active.png")
    page.get_by_role("button", name="Stop").click()
    page.get_by_role("button", name="Confirm").click()
    expect(row.locator('td[aria-colindex="2"]')).to_have_text("", timeout=60_000)

    page.get_by_role("button", name="Verify hash").click()
    page.get_by_text("took").first.wait_for(timeout=30_000)
    settle(page)
    page.get_by_text("took").first.scroll_into_view_if_needed()
    snap("gui-verify.png")

    page.get_by_role("button", name="Edit entry").click()
    dialog = page.get_by_role("dialog")
    box = dialog.get_by_label("Display name", exact=True)
    box.fill("Qwen3 4B (house)")
    box.press("Tab")
    page.wait_for_timeout(600)
    dialog.get_by_role("button", name="Save to curated").click()
    dialog.get_by_role("button", name="Confirm save").wait_for(timeout=20_000)
    dialog.get_by_role("button", name="Confirm save").scroll_into_view_if_needed()
    page.wait_for_timeout(800)
    snap("gui-edit.png")
    page.keyboard.press("Escape")
    page.wait_for_timeout(1000)

    page.get_by_role("button", name="Import from downloads").click()
    page.get_by_role("dialog").get_by_text("Discovered entry").wait_for(timeout=20_000)
    page.wait_for_timeout(800)
    snap("gui-import.png")
    context.close()
    return made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="iw-gui-shots-"))
    store = root / "ollama-models"
    (store / "manifests").mkdir(parents=True)
    (store / "blobs").mkdir()
    tag = write_model(store, "llama3.2", "3b").served_id
    ollama = StandInOllama(store).start()
    ollama.loaded[tag] = datetime.now(UTC) + timedelta(hours=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_")}
    env.update(HOME=str(root), IMAGEWORKS_REGISTRY_DIR=str(root / "configs"), IMAGEWORKS_CACHE_DIR=str(root / "cache"),
               IMAGEWORKS_WEIGHTS_ROOT=str(root / "weights"), OLLAMA_HOST=ollama.host, OLLAMA_MODELS=str(store),
               IMAGEWORKS_VLLM_BIN=STANDIN_COMMAND, CHAT_PROXY_VLLM_PORT=str(free_port()),
               CHAT_PROXY_VLLM_SINGLE_PORT="1", IMAGEWORKS_STOP_GRACE="2", USER="operator",
               STANDIN_NVIDIA_SMI=str(root / "gpus.json"),  # an H100, described by the stand-in nvidia-smi
               IMAGEWORKS_NVIDIA_SMI_BIN=f"{sys.executable} {REPO / 'tests' / 'standins' / 'nvidia_smi.py'}",
               STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    (root / "configs").mkdir()
    (root / "gpus.json").write_text(json.dumps({"gpus": [{"name": "NVIDIA H100 80GB HBM3", "total_mib": 81559,
                                                          "used_mib": 600}]}))
    proc = None
    try:
        served = build(root, env)
        port = free_port()
        proc = subprocess.Popen([str(Path(sys.executable).with_name("imageworks-models")), "gui", "--port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_http(f"http://127.0.0.1:{port}/healthz")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                        args=["--disable-background-networking", "--no-sandbox"])
            made = shoot(browser, f"http://127.0.0.1:{port}/Models", served, args.out)
            browser.close()
        for path in made:
            print(path)
    finally:
        if proc is not None:
            subprocess.run([str(Path(sys.executable).with_name("imageworks-models")), "activate-model", "--stop"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        ollama.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
