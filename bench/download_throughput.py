"""Download benchmark: our downloader against curl and huggingface_hub, one file, one run, loopback.

Serves one 1 GiB file (LFS, so the resolve URL redirects to the CDN port) from the stand-in Hub in
plugins/hf/tests/hubserver.py, in a process of its own (it sends file bodies with os.sendfile), and
measures, best of --runs,
alternating the tools so each sees the same machine state:

  curl      `curl -sfL -o FILE <resolve url>` (no digest at all)
  hf        huggingface_hub's own `hf_hub_download` of the same file (fresh cache each run; it checks
            the size only)
  ours      the library call `imageworks_models_hf.transfer.fetch` (our reader loop, sha256 computed
            in its own thread while the bytes arrive and compared with the Hub's LFS sha256)
  ours+cli  the whole `imageworks-download download` command (start-up, resolve, fetch, promote,
            manifest from the download's digests, registry write)

then the resume figure: the CLI is killed (SIGKILL) once its partial file passes 50%, run again, and
the bytes the server sent over both runs are compared with the file size (re-fetched share).

Targets: ours >= 1.0x curl and >= 2x hf; re-fetched after a kill at 50% < 5%.

Run by hand:  uv run python bench/download_throughput.py [--runs 3] [--size-mib 1024] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1 << 20
REPO = Path(__file__).resolve().parent.parent
REPO_ID = "bench/one-gib"
NAME = "model.safetensors"


def write_random(path: Path, size: int) -> None:
    """A real safetensors file of ``size`` bytes: one U8 tensor of random bytes (a scan reads its header)."""
    block = os.urandom(16 * MiB)
    header = b""
    for _ in range(3):  # the header's length depends on the data length written in it
        data_len = size - 8 - len(header)
        header = json.dumps({"w": {"dtype": "U8", "shape": [data_len], "data_offsets": [0, data_len]}}).encode()
        header += b" " * (-(8 + len(header)) % 8)
    data_len = size - 8 - len(header)
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header)
        left, i = data_len, 0
        while left:
            chunk = block[: min(left, len(block))]
            f.write(i.to_bytes(8, "little") + chunk[8:])
            left -= len(chunk)
            i += 1


SERVER = f"""
import importlib.util, json, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("hubserver", {str(REPO / "plugins" / "hf" / "tests" / "hubserver.py")!r})
hubserver = importlib.util.module_from_spec(spec)
sys.modules["hubserver"] = hubserver
spec.loader.exec_module(hubserver)
with hubserver.StandInHub() as hub:
    commit = hub.add_repo({REPO_ID!r}, {{{NAME!r}: Path(sys.argv[1]), "config.json": b'{{"model_type": "llama"}}'}})
    for line in sys.stdin:
        command = line.strip()
        if command == "hello":
            answer = {{"url": hub.url, "commit": commit}}
        elif command == "reset":
            hub.reset_stats()
            answer = {{}}
        else:
            answer = {{"sent": sum(v for (repo, path), v in hub.bytes_sent.items() if path == {NAME!r})}}
        print(json.dumps(answer), flush=True)
"""


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    args = ap.parse_args()

    work = Path(args.dir or tempfile.mkdtemp(prefix="iw-dl-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / "source.bin"
    size = args.size_mib * MiB
    if not source.exists() or source.stat().st_size != size:
        print(f"writing {source} ({args.size_mib} MiB)...", file=sys.stderr)
        write_random(source, size)
    expected = hashlib.sha256(source.read_bytes()).hexdigest()

    os.environ.update(HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    # The stand-in Hub runs in its own process: in this one its threads would compete for our GIL.
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(source)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(command: str) -> dict:
        server.stdin.write(command + "\n")
        server.stdin.flush()
        return json.loads(server.stdout.readline())

    try:
        hello = ask("hello")
        url_base, commit = hello["url"], hello["commit"]
        os.environ["HF_ENDPOINT"] = url_base
        url = f"{url_base}/{REPO_ID}/resolve/{commit}/{NAME}"
        out = work / "out"

        def fresh() -> None:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()

        def curl() -> None:
            subprocess.run(["curl", "-sfL", "-o", str(out / NAME), url], check=True)

        def hf() -> None:
            from huggingface_hub import hf_hub_download

            hf_hub_download(REPO_ID, NAME, revision=commit, cache_dir=str(out / "cache"), endpoint=url_base)

        def ours() -> None:
            from imageworks_models_hf import transfer

            target = transfer.Target(url=url, part=out / (NAME + ".part"), size=size, sha256=expected, git_oid=None,
                                     label=NAME, commit=commit)
            outcome = transfer.fetch(target, token_origin=transfer.origin(url_base))
            assert outcome.sha256 == expected

        env = dict(os.environ, IMAGEWORKS_REGISTRY_DIR=str(work / "registry"), IMAGEWORKS_WEIGHTS_ROOT=str(out / "w"),
                   IMAGEWORKS_CACHE_DIR=str(work / "cache"), IMAGEWORKS_USE_ARIA2="0")
        cli = str(Path(sys.executable).parent / "imageworks-download")

        def ours_cli() -> None:
            (work / "registry").mkdir(exist_ok=True)
            for f in (work / "registry").glob("model_registry*.json"):
                f.unlink()
            subprocess.run([cli, "download", f"{REPO_ID}@{commit}", "--non-interactive", "--no-aria2"], check=True,
                           env=env, stdout=subprocess.DEVNULL)

        tools = {"curl": curl, "hf": hf, "ours": ours, "ours+cli": ours_cli}
        best = {k: float("inf") for k in tools}
        for run in range(args.runs):
            for name, fn in tools.items():
                fresh()
                best[name] = min(best[name], timed(fn))
            print(f"run {run + 1}: " + ", ".join(f"{k} {size / best[k] / 1e9:.2f} GB/s" for k in tools),
                  file=sys.stderr)

        # resume after a kill at 50%
        fresh()
        ask("reset")
        part_glob = out / "w" / ".imageworks-staging"
        proc = subprocess.Popen([cli, "download", f"{REPO_ID}@{commit}", "--non-interactive", "--no-aria2"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        killed_at = 0
        while proc.poll() is None:
            parts = list(part_glob.rglob(NAME)) if part_glob.exists() else []
            have = max((p.stat().st_size for p in parts), default=0)
            if have >= size // 2:
                proc.send_signal(signal.SIGKILL)
                killed_at = have
                break
            time.sleep(0.002)
        proc.wait()
        subprocess.run([cli, "download", f"{REPO_ID}@{commit}", "--non-interactive", "--no-aria2"], check=True,
                       env=env, stdout=subprocess.DEVNULL)
        total = ask("stats")["sent"]
        final = out / "w" / "bench" / "one-gib" / NAME
        ok = final.exists() and final.stat().st_size == size
        refetched = (total - size) / size
    finally:
        server.stdin.close()
        server.wait(timeout=10)

    gbps = {k: size / v / 1e9 for k, v in best.items()}
    print(json.dumps({"size_bytes": size, "seconds": best, "gb_per_s": gbps, "killed_at": killed_at,
                      "sent_bytes": total, "refetched_share": refetched}, indent=2))
    print(f"\n{args.size_mib} MiB over loopback, best of {args.runs}:")
    print(f"  ours (sha256 checked)   {gbps['ours']:.2f} GB/s  = {best['curl'] / best['ours']:.2f}x curl "
          f"({gbps['curl']:.2f} GB/s, no digest), {best['hf'] / best['ours']:.2f}x hf_hub_download "
          f"({gbps['hf']:.2f} GB/s, size check only)   targets >= 1.0x, >= 2x")
    print(f"  ours, whole CLI command {gbps['ours+cli']:.2f} GB/s  = {best['curl'] / best['ours+cli']:.2f}x curl")
    print(f"  killed at {killed_at / size:.0%}: the server sent {total / size:.3f}x the file over both runs, "
          f"re-fetched {refetched:.2%} (target < 5%); final file {'complete' if ok else 'MISSING'}")
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
